//! Checks the Helm chart in `charts/crossguard` with the real `helm` binary:
//! it lints cleanly, and the rendered manifests keep the promises made to
//! customers' security reviews (restricted pod security, least-privilege RBAC,
//! IRSA wiring, no writable `/tmp`).
//!
//! `helm` is taken from `$HELM`, else `.tools/bin/helm` in this crate, else
//! `PATH`. A missing `helm` fails the tests (run `make tools`), it never
//! skips them.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

const RELEASE: &str = "crossguard";
const RELEASE_NAMESPACE: &str = "crossguard-system";
const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The operator's rules: (API group, resources, verbs). Every verb it uses and
/// not one more; keep in sync with `templates/rbac.yaml` and the README.
const EXPECTED_RULES: &[(&str, &[&str], &[&str])] = &[
    (
        "crossguard.dev",
        &["customeraccounts", "managedclusters"],
        &["get", "list", "watch", "patch", "update"],
    ),
    (
        "crossguard.dev",
        &["customeraccounts/status", "managedclusters/status"],
        &["get", "patch"],
    ),
    (
        "crossguard.dev",
        &["customeraccounts/finalizers", "managedclusters/finalizers"],
        &["update"],
    ),
    ("", &["secrets"], &["get", "create", "patch"]),
    ("events.k8s.io", &["events"], &["create", "patch"]),
];

// ---------------------------------------------------------------- helpers

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/crossguard")
}

/// The helm binary to use; panics with instructions when there is none.
fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/helm");
    if bundled.is_file() {
        return bundled;
    }
    match Command::new("helm").arg("version").output() {
        Ok(_) => PathBuf::from("helm"),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "helm not found: set $HELM, or run `make tools` to install it into {}",
            bundled.display()
        ),
        Err(e) => panic!("cannot run helm from PATH: {e}"),
    }
}

/// Runs helm with `args` and returns its stdout; panics with stderr on failure.
fn run_helm(args: &[&str]) -> String {
    let helm = helm();
    let output = Command::new(&helm)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run `make tools`)", helm.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`helm {}` failed ({}):\n{stdout}\n{stderr}",
        args.join(" "),
        output.status
    );
    stdout
}

/// Renders the chart with the given `--set` values and parses every document.
fn render(sets: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().expect("chart path is UTF-8"),
        "--namespace",
        RELEASE_NAMESPACE,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = run_helm(&args);
    serde_yaml::Deserializer::from_str(&out)
        .map(|doc| Value::deserialize(doc).expect("helm template output is valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    match of_kind(docs, kind).as_slice() {
        [one] => one,
        other => panic!("expected exactly one {kind}, found {}", other.len()),
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().map(|v| v.as_str().expect("string")).collect())
        .unwrap_or_default()
}

/// Flattens RBAC rules into (group, resource, verb) triples.
fn rule_triples(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut triples = BTreeSet::new();
    for rule in role["rules"].as_array().expect("role has rules") {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "unexpected nonResourceURLs rule: {rule}"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    triples.insert((group.to_owned(), resource.to_owned(), verb.to_owned()));
                }
            }
        }
    }
    triples
}

fn expected_triples() -> BTreeSet<(String, String, String)> {
    let mut triples = BTreeSet::new();
    for (group, resources, verbs) in EXPECTED_RULES {
        for resource in *resources {
            for verb in *verbs {
                triples.insert((group.to_string(), resource.to_string(), verb.to_string()));
            }
        }
    }
    triples
}

fn assert_exact_rules(role: &Value) {
    let text = role["rules"].to_string();
    assert!(!text.contains('*'), "wildcard in RBAC rules: {text}");
    let actual = rule_triples(role);
    let expected = expected_triples();
    let extra: Vec<_> = actual.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "RBAC rules differ from what the operator uses\n  extra (remove): {extra:?}\n  missing (add): {missing:?}"
    );
}

fn containers(deployment: &Value) -> Vec<&Value> {
    let spec = &deployment["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .filter_map(|key| spec[key].as_array())
        .flatten()
        .collect()
}

fn operator_container(docs: &[Value]) -> &Value {
    let deployment = only(docs, "Deployment");
    match containers(deployment).as_slice() {
        [one] => one,
        other => panic!("expected one operator container, found {}", other.len()),
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn helm_lint_is_clean() {
    let chart = chart_dir();
    let out = run_helm(&["lint", "--strict", chart.to_str().expect("UTF-8")]);
    for level in ["[WARNING]", "[ERROR]"] {
        assert!(!out.contains(level), "helm lint reported {level}:\n{out}");
    }
}

#[test]
fn deployment_meets_the_restricted_pod_security_standard() {
    let docs = render(&[]);
    let deployment = only(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "the operator needs its SA token"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    let container = operator_container(&docs);
    let sc = &container["securityContext"];
    assert_eq!(
        sc["runAsNonRoot"], true,
        "container must run as non-root: {sc}"
    );
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["runAsGroup"], 65532);
    assert_eq!(
        sc["readOnlyRootFilesystem"], true,
        "root FS must be read-only: {sc}"
    );
    assert_eq!(
        sc["allowPrivilegeEscalation"], false,
        "no privilege escalation: {sc}"
    );
    assert_ne!(sc["privileged"], true, "must not be privileged: {sc}");
    assert_eq!(
        strings(&sc["capabilities"]["drop"]),
        ["ALL"],
        "must drop ALL: {sc}"
    );
    assert!(
        sc["capabilities"].get("add").is_none(),
        "must add no capabilities: {sc}"
    );
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");

    let resources = &container["resources"];
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                resources[bound][resource].is_string(),
                "missing resources.{bound}.{resource}: {resources}"
            );
        }
    }
}

#[test]
fn deployment_runs_the_operator_with_the_expected_flags_and_probes() {
    let docs = render(&[]);
    let deployment = only(&docs, "Deployment");
    // The default file store is per pod: one replica, replaced with Recreate (an old pod
    // from before leader election would not wait for the Lease), still elected.
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());

    let container = operator_container(&docs);
    assert_eq!(container["image"], "ghcr.io/crossguard/crossguard:0.1.0");
    assert_eq!(
        strings(&container["args"]),
        [
            "run",
            "--http-addr",
            "0.0.0.0:8080",
            "--log-format",
            "json",
            "--leader-election-id",
            "crossguard-leader",
            "--leader-lease-seconds",
            "15",
            "--leader-renew-before-seconds",
            "5"
        ],
        "all namespaces by default: no --namespace"
    );
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field);
    }
    let env: Vec<(&str, &str)> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(env.contains(&("RUST_LOG", "info")), "{env:?}");
    assert!(
        env.contains(&("CROSSGUARD_STORE_URL", "file:///var/lib/crossguard")),
        "{env:?}"
    );
    assert_eq!(container["ports"][0]["name"], "http");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http");

    let service = only(&docs, "Service");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
}

#[test]
fn cluster_role_grants_exactly_the_rules_the_operator_uses() {
    let docs = render(&[]);
    assert_exact_rules(only(&docs, "ClusterRole"));

    let binding = only(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(
        binding["roleRef"]["name"],
        only(&docs, "ClusterRole")["metadata"]["name"]
    );
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(
        binding["subjects"][0]["name"],
        only(&docs, "ServiceAccount")["metadata"]["name"]
    );
    assert_eq!(binding["subjects"][0]["namespace"], RELEASE_NAMESPACE);
    // The one namespaced Role is leader election's, in the release namespace.
    for kind in ["Role", "RoleBinding"] {
        let names: Vec<&Value> = of_kind(&docs, kind)
            .into_iter()
            .map(|r| &r["metadata"]["name"])
            .collect();
        assert_eq!(names, ["crossguard-leader-election"], "{kind}");
    }
}

#[test]
fn no_rule_mentions_configmaps() {
    for sets in [&[][..], &["watchNamespace=team-a"][..]] {
        let docs = render(sets);
        for role in of_kind(&docs, "ClusterRole")
            .into_iter()
            .chain(of_kind(&docs, "Role"))
        {
            let mentioned = rule_triples(role)
                .into_iter()
                .any(|(_, resource, _)| resource.starts_with("configmaps"));
            assert!(!mentioned, "{} grants access to configmaps", role["kind"]);
        }
    }
}

#[test]
fn irsa_role_arn_annotates_the_service_account() {
    let default = render(&[]);
    let sa = only(&default, "ServiceAccount");
    assert!(
        sa["metadata"]["annotations"].get(IRSA_ANNOTATION).is_none(),
        "no IRSA annotation unless irsaRoleArn is set (Pod Identity needs none): {sa}"
    );

    let arn = "arn:aws:iam::123456789012:role/x";
    let docs = render(&[&format!("irsaRoleArn={arn}")]);
    let sa = only(&docs, "ServiceAccount");
    assert_eq!(sa["metadata"]["annotations"][IRSA_ANNOTATION], arn);
    let principal = |docs: &[serde_json::Value]| {
        only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "CROSSGUARD_OPERATOR_PRINCIPAL")
            .map(|e| e["value"].as_str().unwrap().to_string())
    };
    assert_eq!(
        principal(&docs).as_deref(),
        Some(arn),
        "the role-posture check knows the operator's role"
    );
    assert_eq!(principal(&default), None);
    let other = "arn:aws:iam::123456789012:role/pod-identity";
    let docs = render(&[&format!("operatorPrincipal={other}")]);
    assert_eq!(principal(&docs).as_deref(), Some(other));
    assert_eq!(
        only(&docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
}

#[test]
fn watch_namespace_yields_a_role_and_role_binding_instead_of_cluster_rbac() {
    let docs = render(&["watchNamespace=team-a"]);
    assert!(
        of_kind(&docs, "ClusterRole").is_empty(),
        "no ClusterRole when namespaced"
    );
    assert!(
        of_kind(&docs, "ClusterRoleBinding").is_empty(),
        "no ClusterRoleBinding when namespaced"
    );

    let role = of_kind(&docs, "Role")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == "team-a")
        .expect("a Role in team-a");
    assert_exact_rules(role);

    let binding = of_kind(&docs, "RoleBinding")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == "team-a")
        .expect("a RoleBinding in team-a");
    assert_eq!(binding["metadata"]["namespace"], "team-a");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["namespace"], RELEASE_NAMESPACE);

    let args = strings(&operator_container(&docs)["args"]);
    assert!(
        args.windows(2).any(|w| w == ["--namespace", "team-a"]),
        "operator must be told to watch team-a only: {args:?}"
    );
}

#[test]
fn no_container_mounts_tmp() {
    let docs = render(&[]);
    let deployment = only(&docs, "Deployment");
    for container in containers(deployment) {
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let path = mount["mountPath"].as_str().expect("mountPath");
            assert!(
                path != "/tmp" && !path.starts_with("/tmp/"),
                "container {} mounts {path}: credentials must never touch disk",
                container["name"]
            );
        }
    }
    // The only writable path is the report store.
    let mounts: Vec<&str> = operator_container(&docs)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["/var/lib/crossguard"]);
}

#[test]
fn negotiated_prices_come_from_a_read_only_configmap_and_kms_key_is_passed() {
    let docs = render(&[
        "prices.configMap=negotiated",
        "store.sseKmsKeyId=alias/reports",
    ]);
    let container = operator_container(&docs);
    let env: Vec<(&str, &str)> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
        .collect();
    assert!(
        env.contains(&(
            "CROSSGUARD_PRICES_FILE",
            "/etc/crossguard/prices/prices.json"
        )),
        "{env:?}"
    );
    assert!(
        env.contains(&("CROSSGUARD_STORE_SSE_KMS_KEY_ID", "alias/reports")),
        "{env:?}"
    );
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == "/etc/crossguard/prices")
        .expect("prices mount");
    assert_eq!(mount["readOnly"], true, "only the report store is writable");
    let deployment = only(&docs, "Deployment");
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "prices")
        .expect("prices volume");
    assert_eq!(volume["configMap"]["name"], "negotiated");
    // Without the value nothing is mounted and the bundled table is used.
    let plain = render(&[]);
    assert!(
        !serde_json::to_string(operator_container(&plain))
            .unwrap()
            .contains("CROSSGUARD_PRICES_FILE")
    );
}

/// The chart deploys the image `scripts/image.sh` tags: `<repository>:<appVersion>`, where
/// appVersion is the crate's version.
#[test]
fn the_default_image_is_the_one_the_build_tags() {
    let chart =
        std::fs::read_to_string(support_repo().join("charts/crossguard/Chart.yaml")).unwrap();
    let app_version = chart
        .lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("appVersion");
    assert_eq!(app_version, env!("CARGO_PKG_VERSION"));
    let docs = render(&[]);
    let image = only(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        image,
        format!("ghcr.io/crossguard/crossguard:{app_version}")
    );
    let script = std::fs::read_to_string(support_repo().join("scripts/image.sh")).unwrap();
    assert!(script.contains("tag=ghcr.io/crossguard/crossguard:$version"));
    let containerfile = std::fs::read_to_string(support_repo().join("Containerfile")).unwrap();
    assert!(containerfile.contains("USER 65532:65532") && containerfile.contains("FROM scratch"));
}

fn support_repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// High availability: two replicas with a shared (S3) store, spread over nodes, with a
/// PodDisruptionBudget; the leader Lease's RBAC only in the release namespace and only for
/// that Lease; and combinations that would let two replicas act, or lose data on
/// failover, refused with a message.
#[test]
fn ha_needs_a_shared_store_and_leader_election_and_gets_a_pdb_and_spread() {
    let docs = render(&["store.url=s3://bucket/prefix"]);
    let deployment = only(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let spread = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        spread["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let pdb = only(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    let lease_role = of_kind(&docs, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "crossguard-leader-election")
        .expect("leader election Role");
    assert_eq!(lease_role["metadata"]["namespace"], RELEASE_NAMESPACE);
    assert_eq!(
        lease_role["rules"],
        serde_json::json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["crossguard-leader"], "verbs": ["get", "patch"]},
        ])
    );
    let lease_binding = of_kind(&docs, "RoleBinding")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "crossguard-leader-election")
        .expect("leader election RoleBinding");
    assert_eq!(lease_binding["metadata"]["namespace"], RELEASE_NAMESPACE);
    assert_eq!(
        lease_binding["roleRef"]["name"],
        "crossguard-leader-election"
    );

    // An upgrade with --reuse-values from before these values existed renders the
    // defaults instead of failing.
    let reused = render(&[
        "store.url=s3://bucket/prefix",
        "leaderElection=null",
        "podDisruptionBudget=null",
    ]);
    assert_eq!(only(&reused, "Deployment")["spec"]["replicas"], 2);
    assert_eq!(of_kind(&reused, "PodDisruptionBudget").len(), 1);

    // Without election (even with an S3 store): one replica, Recreate, no Lease RBAC,
    // told not to elect.
    let single = render(&[
        "store.url=s3://bucket/prefix",
        "leaderElection.enabled=false",
    ]);
    let deployment = only(&single, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert!(strings(&operator_container(&single)["args"]).contains(&"--leader-elect=false"));
    assert!(of_kind(&single, "Role").is_empty());

    for (sets, says) in [
        (vec!["replicaCount=2"], "needs a shared store"),
        (
            vec![
                "store.url=s3://b/p",
                "leaderElection.enabled=false",
                "replicaCount=2",
            ],
            "needs leaderElection.enabled",
        ),
        (
            vec![
                "leaderElection.leaseDurationSeconds=8",
                "leaderElection.renewBeforeSeconds=6",
            ],
            "at least renewBeforeSeconds + 3",
        ),
    ] {
        assert_refused(&sets, says);
    }
}

/// One release per shard: `shard.count` > 1 passes `--shard index/count`, the release keeps
/// its own Lease (named after the release) and RBAC; unsharded passes no `--shard`; an
/// index at or above the count, or out of the schema's range, is refused at install.
#[test]
fn a_shard_release_runs_its_shard_under_its_own_lease() {
    let unsharded = render(&[]);
    assert!(!strings(&operator_container(&unsharded)["args"]).contains(&"--shard"));
    let explicit_one = render(&["shard.index=0", "shard.count=1"]);
    assert!(!strings(&operator_container(&explicit_one)["args"]).contains(&"--shard"));

    let sharded = render(&["shard.index=1", "shard.count=3"]);
    let args = strings(&operator_container(&sharded)["args"]);
    let at = args.iter().position(|a| *a == "--shard").expect("--shard");
    assert_eq!(args[at + 1], "1/3");
    let lease = args
        .iter()
        .position(|a| *a == "--leader-election-id")
        .expect("lease");
    assert_eq!(args[lease + 1], "crossguard-leader");
    let role = of_kind(&sharded, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "crossguard-leader-election")
        .expect("leader election Role");
    assert_eq!(role["rules"][1]["resourceNames"][0], "crossguard-leader");

    // --reuse-values from before shards existed: unsharded.
    let reused = render(&["shard=null"]);
    assert!(!strings(&operator_container(&reused)["args"]).contains(&"--shard"));

    for (sets, says) in [
        (
            vec!["shard.index=2", "shard.count=2"],
            "shard.index 2 must be below shard.count 2",
        ),
        (
            vec!["shard.index=1"],
            "shard.index 1 must be below shard.count 1",
        ),
        (vec!["shard.index=-1", "shard.count=2"], "/shard/index"),
        (vec!["shard.count=0"], "/shard/count"),
        (vec!["shard.count=65"], "/shard/count"),
    ] {
        assert_refused(&sets, says);
    }
}

/// `helm template` with `sets` fails, and its error contains `says`.
fn assert_refused(sets: &[&str], says: &str) {
    let chart = chart_dir();
    let mut args = vec!["template", RELEASE, chart.to_str().unwrap()];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = Command::new(helm()).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(says),
        "{sets:?}: {stderr}"
    );
}
