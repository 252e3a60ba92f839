//! Checks the Helm chart in `charts/crossguard` with the real `helm` binary:
//! it lints cleanly, and the rendered manifests keep the promises made to
//! customers' security reviews (restricted pod security, least-privilege RBAC,
//! IRSA wiring, no writable `/tmp`, a NetworkPolicy). Every value combination the
//! chart README documents is rendered and checked with `kubernetes-validate --strict`
//! against the Kubernetes 1.34 schemas and with `checkov`, both offline.
//!
//! Each tool is taken from its environment variable (`$HELM`, `$CHECKOV`,
//! `$KUBERNETES_VALIDATE`), else `.tools/bin/` in this crate, else `PATH`. A missing
//! tool fails the tests (run `make tools`), it never skips them.

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

/// The tool `name` to run: `$env_var`, else `.tools/bin/<name>` (installed by `make
/// tools`), else `name` on `PATH`; panics with instructions when there is none.
fn tool(name: &str, env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/bin")
        .join(name);
    if bundled.is_file() {
        return bundled;
    }
    match Command::new(name).arg("--version").output() {
        Ok(_) => PathBuf::from(name),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "{name} not found: set ${env_var}, or run `make tools` to install it into {}",
            bundled.display()
        ),
        Err(e) => panic!("cannot run {name} from PATH: {e}"),
    }
}

/// The helm binary to use; panics with instructions when there is none.
fn helm() -> PathBuf {
    tool("helm", "HELM")
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

/// The one object of `kind` named `name`.
fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    match of_kind(docs, kind)
        .into_iter()
        .filter(|d| d["metadata"]["name"] == name)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [one] => one,
        other => panic!("expected exactly one {kind} {name}, found {}", other.len()),
    }
}

/// The dashboard's rules: create TokenReviews and SubjectAccessReviews, nothing else.
fn dashboard_triples() -> BTreeSet<(String, String, String)> {
    [
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    ]
    .into_iter()
    .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
    .collect()
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
    assert_exact_rules(named(&docs, "ClusterRole", RELEASE));

    let binding = named(&docs, "ClusterRoleBinding", RELEASE);
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(
        binding["roleRef"]["name"],
        named(&docs, "ClusterRole", RELEASE)["metadata"]["name"]
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
fn the_dashboard_gets_create_on_reviews_only_and_can_be_turned_off() {
    let docs = render(&[]);
    let role = named(&docs, "ClusterRole", "crossguard-dashboard");
    assert!(!role["rules"].to_string().contains('*'));
    assert_eq!(rule_triples(role), dashboard_triples());
    let binding = named(&docs, "ClusterRoleBinding", "crossguard-dashboard");
    assert_eq!(binding["roleRef"]["name"], "crossguard-dashboard");
    assert_eq!(
        binding["subjects"][0]["name"],
        only(&docs, "ServiceAccount")["metadata"]["name"]
    );
    assert_eq!(binding["subjects"][0]["namespace"], RELEASE_NAMESPACE);
    assert!(!strings(&operator_container(&docs)["args"]).contains(&"--dashboard=false"));

    let off = render(&["dashboard.enabled=false"]);
    assert!(
        of_kind(&off, "ClusterRole")
            .iter()
            .all(|r| r["metadata"]["name"] != "crossguard-dashboard")
    );
    assert!(
        of_kind(&off, "ClusterRoleBinding")
            .iter()
            .all(|r| r["metadata"]["name"] != "crossguard-dashboard")
    );
    assert!(strings(&operator_container(&off)["args"]).contains(&"--dashboard=false"));
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
    // Only the dashboard's (TokenReview and SubjectAccessReview are cluster-scoped).
    for kind in ["ClusterRole", "ClusterRoleBinding"] {
        let names: Vec<&Value> = of_kind(&docs, kind)
            .into_iter()
            .map(|r| &r["metadata"]["name"])
            .collect();
        assert_eq!(names, ["crossguard-dashboard"], "{kind} when namespaced");
    }
    assert_eq!(
        rule_triples(named(&docs, "ClusterRole", "crossguard-dashboard")),
        dashboard_triples()
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

// ---------------------------------------------------------------- network policy

fn network_policy(docs: &[Value]) -> &Value {
    only(docs, "NetworkPolicy")
}

/// The egress rules as (ports as "PROTOCOL/port", peers), in order.
fn egress_rules(policy: &Value) -> Vec<(Vec<String>, Vec<Value>)> {
    policy["spec"]["egress"]
        .as_array()
        .expect("egress rules")
        .iter()
        .map(|rule| {
            let ports = rule["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let port = match &p["port"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("{}/{port}", p["protocol"].as_str().unwrap_or("TCP"))
                })
                .collect();
            let peers = rule["to"].as_array().cloned().unwrap_or_default();
            (ports, peers)
        })
        .collect()
}

fn ip_block(cidr: &str) -> Value {
    serde_json::json!({"ipBlock": {"cidr": cidr}})
}

/// By default the operator pods accept nothing but traffic from their own node (probes),
/// and may reach only DNS (the cluster's CoreDNS), HTTPS anywhere (AWS endpoints, the EKS
/// API servers: NetworkPolicy cannot name hosts) and the EKS Pod Identity Agent.
#[test]
fn network_policy_is_on_by_default_and_allows_only_what_the_operator_needs() {
    let docs = render(&[]);
    let policy = network_policy(&docs);
    assert_eq!(policy["metadata"]["namespace"], RELEASE_NAMESPACE);
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        only(&docs, "Deployment")["spec"]["selector"]["matchLabels"],
        "the policy must select exactly the operator pods"
    );
    assert_eq!(
        strings(&policy["spec"]["policyTypes"]),
        ["Ingress", "Egress"]
    );
    assert_eq!(
        policy["spec"]["ingress"],
        serde_json::json!([]),
        "no ingress peer unless configured"
    );

    let kube_dns = serde_json::json!({
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    });
    assert_eq!(
        egress_rules(policy),
        vec![
            (
                vec!["UDP/53".to_string(), "TCP/53".to_string()],
                vec![kube_dns]
            ),
            (vec!["TCP/443".to_string()], vec![ip_block("0.0.0.0/0")]),
            (
                vec!["TCP/80".to_string()],
                vec![ip_block("169.254.170.23/32")]
            ),
        ]
    );

    // The ingress port, once peers are allowed, is the container's named HTTP port.
    let docs = render(&["networkPolicy.ingress.podSelectors[0].matchLabels.app=prometheus"]);
    let ingress = &network_policy(&docs)["spec"]["ingress"];
    assert_eq!(
        ingress[0]["ports"],
        serde_json::json!([{"port": "http", "protocol": "TCP"}])
    );
    assert_eq!(operator_container(&docs)["ports"][0]["name"], "http");
}

/// Each documented network policy option renders the rule the README says it does.
#[test]
fn network_policy_options_shape_its_rules() {
    let docs = render_values(
        r#"
networkPolicy:
  ingress:
    namespaceSelectors:
      - matchLabels: {kubernetes.io/metadata.name: monitoring}
    podSelectors:
      - matchLabels: {app: dashboard-proxy}
    from:
      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress}}
        podSelector: {matchLabels: {app.kubernetes.io/name: ingress-nginx}}
  egress:
    dns:
      to:
        - ipBlock: {cidr: 169.254.20.10/32}
    kubernetesApi:
      cidrs: [10.0.0.0/19, 10.0.32.0/19]
      ports: [443, 6443]
    aws:
      cidrs: [10.0.128.0/24]
    podIdentityAgent:
      cidrs: []
    extra:
      - to: [{ipBlock: {cidr: 10.0.0.10/32}}]
        ports: [{port: 3128, protocol: TCP}]
"#,
    );
    let policy = network_policy(&docs);
    assert_eq!(
        policy["spec"]["ingress"],
        serde_json::json!([{
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
                {"podSelector": {"matchLabels": {"app": "dashboard-proxy"}}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}},
            ],
            "ports": [{"port": "http", "protocol": "TCP"}],
        }])
    );
    assert_eq!(
        egress_rules(policy),
        vec![
            (
                vec!["UDP/53".to_string(), "TCP/53".to_string()],
                vec![ip_block("169.254.20.10/32")]
            ),
            (
                vec!["TCP/443".to_string(), "TCP/6443".to_string()],
                vec![ip_block("10.0.0.0/19"), ip_block("10.0.32.0/19")]
            ),
            (vec!["TCP/443".to_string()], vec![ip_block("10.0.128.0/24")]),
            (vec!["TCP/3128".to_string()], vec![ip_block("10.0.0.10/32")]),
        ],
        "DNS, the API server, the narrowed AWS endpoints, the proxy; no Pod Identity rule"
    );

    // No AWS CIDRs: no HTTPS rule at all (everything through `extra`, e.g. a proxy).
    let docs = render(&["networkPolicy.egress.aws.cidrs=null"]);
    let ports: Vec<_> = egress_rules(network_policy(&docs))
        .into_iter()
        .flat_map(|(ports, _)| ports)
        .collect();
    assert!(!ports.contains(&"TCP/443".to_string()), "{ports:?}");

    assert!(of_kind(&render(&["networkPolicy.enabled=false"]), "NetworkPolicy").is_empty());
    // An upgrade with --reuse-values from before the policy existed renders none, so the
    // upgrade never cuts an install's traffic by surprise.
    assert!(of_kind(&render(&["networkPolicy=null"]), "NetworkPolicy").is_empty());

    // A misspelt CIDR fails the install instead of rendering a policy the API refuses.
    let out = Command::new(helm())
        .args(["template", RELEASE, chart_dir().to_str().unwrap()])
        .args(["--set", "networkPolicy.egress.aws.cidrs={10.0.0.0/33}"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("/networkPolicy/egress/aws/cidrs/0"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------- documented options

/// Every value combination the chart README documents (its install examples, the sections
/// on identity, namespaces, high availability, prices, monitoring and network policy, and
/// the values table), as values files. Each is rendered with its CRDs and checked by
/// `kubernetes-validate --strict` and by `checkov`.
const DOCUMENTED_OPTIONS: &[(&str, &str)] = &[
    ("defaults", ""),
    (
        "irsa",
        "awsRegion: eu-west-1\nirsaRoleArn: arn:aws:iam::111122223333:role/crossguard-operator\n",
    ),
    (
        "pod-identity",
        "operatorPrincipal: arn:aws:iam::111122223333:role/crossguard-operator\n",
    ),
    ("watch-namespace", "watchNamespace: team-a\n"),
    (
        "ha-s3-store",
        "store:\n  url: s3://reports/crossguard\n  sseKmsKeyId: alias/crossguard-reports\n",
    ),
    (
        "s3-store-tuned-election",
        "store: {url: s3://reports/crossguard}\nreplicaCount: 3\n\
         leaderElection: {leaseDurationSeconds: 30, renewBeforeSeconds: 10}\n\
         podDisruptionBudget: {enabled: false}\n",
    ),
    (
        "file-store-one-replica",
        "replicaCount: 1\nstore: {url: file:///var/lib/crossguard, sizeLimit: null}\n",
    ),
    ("no-leader-election", "leaderElection: {enabled: false}\n"),
    (
        "prices",
        "prices:\n  configMap: negotiated-prices\n  priceList: {region: ap-south-1, refreshInterval: 24h}\n",
    ),
    ("no-price-list", "prices: {priceList: {enabled: false}}\n"),
    (
        "monitoring",
        "serviceMonitor: {enabled: true, interval: 15s, scrapeTimeout: 5s, labels: {release: kube-prometheus-stack}}\n\
         service: {port: 9090, prometheusScrape: true, annotations: {team: platform}}\n\
         grafanaDashboard: {enabled: true, namespace: monitoring, annotations: {grafana_folder: crossguard}}\n\
         prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}, analysisStaleAfterSeconds: 7200, notReadyFor: 1h}\n\
         networkPolicy:\n  ingress:\n    namespaceSelectors:\n\
         \x20     - matchLabels: {kubernetes.io/metadata.name: monitoring}\n",
    ),
    ("no-network-policy", "networkPolicy: {enabled: false}\n"),
    (
        "network-policy-restricted",
        "networkPolicy:\n  ingress:\n    podSelectors: [{matchLabels: {app: dashboard-proxy}}]\n\
         \x20   from:\n      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n\
         \x20       podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}\n\
         \x20 egress:\n    dns: {to: [{ipBlock: {cidr: 169.254.20.10/32}}]}\n\
         \x20   kubernetesApi: {cidrs: [10.0.0.0/19, 10.0.32.0/19], ports: [443, 6443]}\n\
         \x20   aws: {cidrs: [10.0.128.0/24, \"::/0\"]}\n\
         \x20   podIdentityAgent: {cidrs: [169.254.170.23/32, \"fd00:ec2::23/128\"]}\n\
         \x20   extra:\n      - to: [{ipBlock: {cidr: 10.0.0.10/32}}]\n\
         \x20       ports: [{port: 3128, protocol: TCP}]\n\
         extraEnv:\n  - {name: HTTPS_PROXY, value: \"http://10.0.0.10:3128\"}\n\
         \x20 - {name: AWS_PROXY_URL, value: \"http://10.0.0.10:3128\"}\n",
    ),
    (
        "existing-service-account-and-rbac",
        "serviceAccount: {create: false, name: crossguard-platform}\nrbac: {create: false}\n",
    ),
    (
        "names-image-and-scheduling",
        "nameOverride: guard\nfullnameOverride: cg\n\
         image:\n  repository: registry.example.com/crossguard\n\
         \x20 tag: \"0.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n\
         \x20 pullPolicy: Always\n\
         imagePullSecrets: [{name: registry-creds}]\n\
         logLevel: info,crossguard=debug\nlogFormat: text\n\
         serviceAccount: {annotations: {team: platform}}\n\
         resources: {requests: {cpu: 200m, memory: 256Mi}, limits: {cpu: \"1\", memory: 1Gi}}\n\
         podAnnotations: {team: platform}\npodLabels: {team: platform}\n\
         nodeSelector: {kubernetes.io/os: linux}\n\
         tolerations: [{key: dedicated, operator: Equal, value: platform, effect: NoSchedule}]\n\
         affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: \
         [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]}]}}}\n\
         priorityClassName: system-cluster-critical\n",
    ),
];

/// A temporary directory for rendered manifests. Not a hidden one (tempfile's default
/// `.tmpXXXX`): checkov skips hidden directories.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("crossguard-chart-")
        .tempdir()
        .unwrap()
}

/// Renders the chart with `values` (YAML) and parses every document.
fn render_values(values: &str) -> Vec<Value> {
    let dir = scratch_dir();
    let out = render_documented(dir.path(), "values", values);
    parse_docs(&out)
}

fn parse_docs(out: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(out)
        .map(|doc| Value::deserialize(doc).expect("helm template output is valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Renders the chart, CRDs included, with `values` into `<dir>/<name>.yaml`; returns the
/// rendered text.
fn render_documented(dir: &Path, name: &str, values: &str) -> String {
    let values_file = dir.join(format!("{name}.values.yaml"));
    std::fs::write(&values_file, values).unwrap();
    let chart = chart_dir();
    let out = run_helm(&[
        "template",
        RELEASE,
        chart.to_str().expect("UTF-8"),
        "--namespace",
        RELEASE_NAMESPACE,
        "--include-crds",
        "-f",
        values_file.to_str().expect("UTF-8"),
    ]);
    std::fs::remove_file(&values_file).unwrap();
    std::fs::write(dir.join(format!("{name}.yaml")), &out).unwrap();
    out
}

/// Renders every documented option into `dir`; returns (name, documents) per option.
fn render_all_documented(dir: &Path) -> Vec<(&'static str, Vec<Value>)> {
    DOCUMENTED_OPTIONS
        .iter()
        .map(|(name, values)| (*name, parse_docs(&render_documented(dir, name, values))))
        .collect()
}

/// Kinds that are not part of the Kubernetes API, so kubernetes-validate has no schema for
/// them (it warns and moves on); their shape is checked by the tests above.
const KINDS_WITHOUT_KUBERNETES_SCHEMA: &[&str] = &["ServiceMonitor", "PrometheusRule"];

/// The Kubernetes version whose schemas the rendered chart must satisfy.
const KUBERNETES_VERSION: &str = "1.34";

/// Runs `kubernetes-validate --strict` for Kubernetes 1.34 on `files`; returns its exit
/// status and its output lines.
fn kubernetes_validate(files: &[PathBuf]) -> (std::process::ExitStatus, Vec<String>) {
    let validate = tool("kubernetes-validate", "KUBERNETES_VALIDATE");
    let out = Command::new(&validate)
        .args(["--kubernetes-version", KUBERNETES_VERSION, "--strict"])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run `make tools`)", validate.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text.lines().map(str::to_owned).collect())
}

/// Every manifest of every documented option, CRDs included, is valid against the
/// Kubernetes 1.34 schemas with unknown fields rejected: the API server would accept it
/// and no value is silently dropped.
#[test]
fn every_documented_option_renders_valid_kubernetes_1_34_manifests() {
    let dir = scratch_dir();
    let rendered = render_all_documented(dir.path());
    let files: Vec<PathBuf> = rendered
        .iter()
        .map(|(name, _)| dir.path().join(format!("{name}.yaml")))
        .collect();
    let (status, lines) = kubernetes_validate(&files);
    let report = lines.join("\n");
    assert!(status.success(), "kubernetes-validate failed:\n{report}");
    for line in &lines {
        let ok = line.starts_with("INFO ")
            || (line.starts_with("WARN ")
                && KINDS_WITHOUT_KUBERNETES_SCHEMA
                    .iter()
                    .any(|kind| line.contains(&format!("schema for kind {kind} "))));
        assert!(ok, "kubernetes-validate: {line}\n{report}");
    }
    // Each document was validated (none skipped for want of a schema), against 1.34.
    for ((name, docs), file) in rendered.iter().zip(&files) {
        let file = file.to_str().unwrap();
        for doc in docs {
            let kind = doc["kind"].as_str().expect("kind");
            if KINDS_WITHOUT_KUBERNETES_SCHEMA.contains(&kind) {
                continue;
            }
            let passed = format!(
                "INFO {file} passed for resource {}/{} against version {KUBERNETES_VERSION}",
                kind.to_lowercase(),
                doc["metadata"]["name"].as_str().expect("name"),
            );
            assert!(
                lines.contains(&passed),
                "{name}: {kind} was not validated:\n{report}"
            );
        }
    }
    let crds = rendered[0]
        .1
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .count();
    assert_eq!(crds, 2, "the CRDs are rendered and validated too");

    // --strict really rejects what the API server would drop: the pod security context is
    // passed through from values unchecked by the chart's own schema.
    let typo = render_documented(
        dir.path(),
        "typo",
        "podSecurityContext: {runAsNonRoot: true, runAsUsr: 65532}\n",
    );
    assert!(typo.contains("runAsUsr"));
    let (status, lines) = kubernetes_validate(&[dir.path().join("typo.yaml")]);
    assert!(
        !status.success()
            && lines
                .iter()
                .any(|l| l.starts_with("ERROR ") && l.contains("runAsUsr")),
        "a misspelt field must fail validation: {lines:?}"
    );
}

/// checkov findings the chart keeps on purpose, with the reason: skipped by `checkov.io/skipN`
/// annotations on the Deployment (so a customer's own checkov run skips them too, and
/// shows why), and justified under the same ID in the chart README's "checkov" section.
const CHECKOV_SKIPS: &[(&str, &str)] = &[
    (
        "CKV_K8S_38",
        "the operator talks to this cluster's API server with its ServiceAccount token",
    ),
    (
        "CKV_K8S_43",
        "the image digest is not known when the chart is packaged; pin it with image.tag",
    ),
    (
        "CKV_K8S_15",
        "with a pinned tag or digest IfNotPresent pulls the same image without a registry round trip on every start",
    ),
];

/// checkov (offline: `--skip-download`, no update check) over every documented option, CRDs included:
/// no failed check, and the only skipped ones are those above, for the reasons above.
#[test]
fn checkov_passes_every_documented_option() {
    let dir = scratch_dir();
    let rendered = render_all_documented(dir.path());
    let checkov = tool("checkov", "CHECKOV");
    let out = Command::new(&checkov)
        .args(["--directory", dir.path().to_str().expect("UTF-8")])
        .args([
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ])
        // Offline and deterministic: no guidelines download, no PyPI update check.
        .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run `make tools`)", checkov.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("checkov printed no JSON report ({e}):\n{stdout}\n{stderr}"));
    // One framework: one report object (checkov prints a list for several).
    assert_eq!(report["check_type"], "kubernetes", "{stdout}");
    let results = &report["results"];
    let failed: Vec<String> = results["failed_checks"]
        .as_array()
        .expect("failed_checks")
        .iter()
        .map(|c| {
            format!(
                "{} {} ({} in {})",
                c["check_id"], c["check_name"], c["resource"], c["file_path"]
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "checkov failed checks (fix the chart, or skip with a reason in templates/deployment.yaml, CHECKOV_SKIPS and the README):\n{}",
        failed.join("\n")
    );
    assert!(
        out.status.success(),
        "checkov exited with {}:\n{stderr}",
        out.status
    );
    assert_eq!(
        report["summary"]["parsing_errors"], 0,
        "{}",
        report["summary"]
    );

    let file_of = |c: &Value| {
        c["file_path"]
            .as_str()
            .expect("file_path")
            .trim_start_matches('/')
            .to_string()
    };
    // Every rendered option was scanned.
    let scanned: BTreeSet<String> = results["passed_checks"]
        .as_array()
        .expect("passed_checks")
        .iter()
        .map(file_of)
        .collect();
    for (name, _) in &rendered {
        assert!(
            scanned.contains(&format!("{name}.yaml")),
            "{name} not scanned: {scanned:?}"
        );
    }
    // Exactly the listed skips, with their reasons, in every option.
    let skipped: BTreeSet<(String, String, String)> = results["skipped_checks"]
        .as_array()
        .expect("skipped_checks")
        .iter()
        .map(|c| {
            (
                file_of(c),
                c["check_id"].as_str().expect("check_id").to_string(),
                c["check_result"]["suppress_comment"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = rendered
        .iter()
        .flat_map(|(name, _)| {
            CHECKOV_SKIPS.iter().map(move |(id, reason)| {
                (format!("{name}.yaml"), id.to_string(), reason.to_string())
            })
        })
        .collect();
    assert_eq!(skipped, expected, "checkov skips differ from CHECKOV_SKIPS");

    let readme = std::fs::read_to_string(chart_dir().join("README.md")).unwrap();
    for (id, reason) in CHECKOV_SKIPS {
        let row = readme
            .lines()
            .find(|l| l.contains(&format!("`{id}`")))
            .unwrap_or_else(|| panic!("chart README does not justify the skipped {id}"));
        assert!(
            row.contains(reason),
            "chart README's {id} row must say: {reason}"
        );
    }
}

// ---------------------------------------------------------------- docs in sync

/// Key paths of values.yaml, each with its value.
fn value_paths(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.push((path.clone(), child.clone()));
            value_paths(&path, child, out);
        }
    }
}

/// Every value in values.yaml is in the chart README's values table (itself, or the object
/// it belongs to) and in values.schema.json, which rejects unknown keys.
#[test]
fn every_value_is_documented_in_the_readme_and_the_schema() {
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap(),
    )
    .unwrap();
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).unwrap();
    let documented = |path: &str| readme.contains(&format!("| `{path}` |"));
    let mut paths = Vec::new();
    value_paths("", &values, &mut paths);
    let mut missing = Vec::new();
    for (path, value) in &paths {
        let parts: Vec<&str> = path.split('.').collect();
        let has_children = value.as_object().is_some_and(|m| !m.is_empty());
        let covered = (1..=parts.len()).any(|n| documented(&parts[..n].join(".")));
        if !covered && !has_children {
            missing.push(format!("README values table: `{path}`"));
        }
        // The schema describes each key, down to objects it leaves free-form.
        let mut node = &schema;
        for part in &parts {
            if let Some(target) = node["$ref"].as_str() {
                node = &schema["definitions"][target.trim_start_matches("#/definitions/")];
            }
            if node.get("properties").is_none() {
                break;
            }
            node = &node["properties"][part];
            if node.is_null() {
                missing.push(format!("values.schema.json: {path}"));
                break;
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented values:\n{}",
        missing.join("\n")
    );
}

/// The value of environment variable `name` of the operator container, if set.
fn env_value<'a>(docs: &'a [Value], name: &str) -> Option<&'a str> {
    operator_container(docs)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

#[test]
fn concurrency_and_aws_rate_limits_reach_the_operator_and_default_to_its_own_defaults() {
    use crossguard::aws::limits::RateLimits;
    let docs = render(&[]);
    assert_eq!(
        env_value(&docs, "CROSSGUARD_MAX_CONCURRENT_RECONCILES"),
        Some(
            crossguard::controller::DEFAULT_MAX_CONCURRENT_RECONCILES
                .to_string()
                .as_str()
        )
    );
    assert_eq!(
        env_value(&docs, "CROSSGUARD_AWS_RATE_LIMIT_MAX_WAIT"),
        Some("30s")
    );
    assert_eq!(
        env_value(&docs, "CROSSGUARD_ANALYSIS_MEMORY_BUDGET"),
        Some(
            crossguard::controller::admission::DEFAULT_BUDGET_MIB
                .to_string()
                .as_str()
        )
    );
    // The chart's documented defaults are the operator's: applying them changes nothing.
    let limits = env_value(&docs, "CROSSGUARD_AWS_RATE_LIMITS").expect("rate limits");
    let parts: Vec<&str> = limits.split(',').collect();
    assert_eq!(
        parts.len(),
        crossguard::aws::limits::SERVICES.len(),
        "{limits}"
    );
    assert_eq!(
        RateLimits::default().with_overrides(&parts).unwrap(),
        RateLimits::default()
    );

    // One service overridden; a service set to null falls back to the operator's default;
    // an upgrade with --reuse-values from before these values renders the defaults.
    let docs = render(&[
        "awsRateLimits.ec2.burst=40",
        "awsRateLimits.iam=null",
        "maxConcurrentReconciles=4",
        "analysisMemoryBudget=1536",
        "awsRateLimitMaxWait=1m",
    ]);
    let limits = env_value(&docs, "CROSSGUARD_AWS_RATE_LIMITS").unwrap();
    assert!(
        limits.contains("ec2=40/5") && !limits.contains("iam="),
        "{limits}"
    );
    assert_eq!(
        env_value(&docs, "CROSSGUARD_MAX_CONCURRENT_RECONCILES"),
        Some("4")
    );
    assert_eq!(
        env_value(&docs, "CROSSGUARD_AWS_RATE_LIMIT_MAX_WAIT"),
        Some("1m")
    );
    assert_eq!(
        env_value(&docs, "CROSSGUARD_ANALYSIS_MEMORY_BUDGET"),
        Some("1536")
    );
    let reused = render(&[
        "awsRateLimits=null",
        "maxConcurrentReconciles=null",
        "analysisMemoryBudget=null",
        "awsRateLimitMaxWait=null",
    ]);
    assert_eq!(env_value(&reused, "CROSSGUARD_AWS_RATE_LIMITS"), None);
    assert_eq!(
        env_value(&reused, "CROSSGUARD_MAX_CONCURRENT_RECONCILES"),
        Some("16")
    );
    assert_eq!(
        env_value(&reused, "CROSSGUARD_AWS_RATE_LIMIT_MAX_WAIT"),
        Some("30s")
    );
    assert_eq!(
        env_value(&reused, "CROSSGUARD_ANALYSIS_MEMORY_BUDGET"),
        Some("768")
    );

    // The schema refuses what the operator would refuse at start-up.
    for (set, says) in [
        ("awsRateLimits.ec2.burst=0", "/awsRateLimits/ec2"),
        ("awsRateLimits.s3.burst=1", "additional properties 's3'"),
        ("maxConcurrentReconciles=0", "/maxConcurrentReconciles"),
        ("analysisMemoryBudget=10", "/analysisMemoryBudget"),
        ("awsRateLimitMaxWait=soon", "/awsRateLimitMaxWait"),
        ("awsRateLimitMaxWait=0s", "/awsRateLimitMaxWait"),
        ("awsRateLimitMaxWait=11m", "/awsRateLimitMaxWait"),
        ("awsRateLimitMaxWait=601s", "/awsRateLimitMaxWait"),
    ] {
        let chart = chart_dir();
        let out = Command::new(helm())
            .args(["template", RELEASE, chart.to_str().unwrap(), "--set", set])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(says),
            "{set}: {stderr}"
        );
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

    let sharded = render(&["shard.index=1", "shard.count=3", "store.url=s3://b/p"]);
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
        (
            vec!["shard.index=1", "shard.count=2"],
            "shard.count 2 needs a shared store",
        ),
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

// ---------------------------------------------------------------- dashboard and alerts

/// The sample names the operator exports: from each `# TYPE` line of a registry in which
/// every metric has a series (a family without one is not printed), counters with
/// `_total`, histograms with `_bucket`, `_sum` and `_count`.
fn exported_metric_names() -> BTreeSet<String> {
    let m = crossguard::metrics::Metrics::new();
    m.aws_call("sts", "AssumeRole", "success");
    m.rate_limit_wait("ec2", "delayed", std::time::Duration::from_millis(5));
    m.reconcile("ManagedCluster", "ok", std::time::Duration::from_millis(5));
    m.assume_role("success");
    m.audit_record("ec2", "success");
    m.session_lookup(true);
    m.session_lookup(false);
    m.sessions(1, Some(60));
    m.key_ages("acme", "acme", [1, 0, 0]);
    m.key_disabled("acme", "acme");
    m.key_notification("webhook", "sent");
    m.operator_key_age(3);
    m.set_leader(true);
    m.set_unowned("ManagedCluster", 0);
    m.set_ready("ManagedCluster", "acme", "prod", true);
    m.cluster_analysed("acme", "prod", &Default::default());
    m.cluster_action("acme", "prod", "Failed");
    m.cluster_refusal("acme", "prod");
    m.cluster_realised_savings("acme", "prod", 0.0);
    let text = m.encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Every `crossguard_*` name in a PromQL expression.
fn metric_names_in(expr: &str) -> Vec<String> {
    let re = regex::Regex::new(r"crossguard_[a-zA-Z0-9_]+").unwrap();
    re.find_iter(expr).map(|m| m.as_str().to_string()).collect()
}

fn monitoring_docs() -> Vec<Value> {
    render(&[
        "grafanaDashboard.enabled=true",
        "prometheusRule.enabled=true",
    ])
}

/// The dashboard's and the alerts' expressions name only metrics the operator exports, and
/// every panel and alert has at least one.
#[test]
fn the_dashboard_and_the_alerts_use_only_exported_metrics() {
    let exported = exported_metric_names();
    assert!(exported.contains("crossguard_managedcluster_monthly_cost_dollars"));
    let docs = monitoring_docs();
    let config_map = of_kind(&docs, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("the dashboard ConfigMap, labelled for the Grafana sidecar");
    let dashboard: Value =
        serde_json::from_str(config_map["data"]["crossguard.json"].as_str().unwrap())
            .expect("the dashboard is JSON");
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names_in(expr);
            assert!(!names.is_empty(), "{expr} names no crossguard metric");
            for name in names {
                assert!(
                    exported.contains(&name),
                    "dashboard panel {}: {name} is not exported",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    let rule = only(&docs, "PrometheusRule");
    for r in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let expr = r["expr"].as_str().unwrap();
        let names = metric_names_in(expr);
        assert!(!names.is_empty(), "{expr} names no crossguard metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "alert {}: {name} is not exported",
                r["alert"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} metric references checked");
}

/// The alerts' unit tests, run by promtool against the rendered rules: what fires, when,
/// and what stays quiet.
const ALERT_TESTS: &str = r#"rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # analysed at t=0 (Unix 0) and never again: stale once an hour has passed
      - series: 'crossguard_managedcluster_last_analysis_timestamp_seconds{namespace="acme",name="prod"}'
        values: '0x120'
      - series: 'crossguard_ready{kind="CustomerAccount",namespace="acme",name="acme"}'
        values: '1x10 0x60'
      - series: 'crossguard_ready{kind="ManagedCluster",namespace="acme",name="prod"}'
        values: '1x120'
      - series: 'crossguard_managedcluster_refusals_total{namespace="acme",name="prod"}'
        values: '0x30 1x60'
      - series: 'crossguard_managedcluster_automation_actions_total{namespace="acme",name="prod",outcome="Succeeded"}'
        values: '0x30 3x60'
      - series: 'crossguard_managedcluster_automation_actions_total{namespace="acme",name="prod",outcome="Failed"}'
        values: '0x120'
      - series: 'crossguard_access_keys_disabled_total{namespace="acme",name="acme"}'
        values: '0x120'
    alert_rule_test:
      - eval_time: 65m
        alertname: CrossguardAnalysisStale
      - eval_time: 75m
        alertname: CrossguardAnalysisStale
        exp_alerts:
          - exp_labels: {severity: warning, namespace: acme, name: prod}
            exp_annotations:
              summary: "ManagedCluster acme/prod has not been analysed for 1h 15m 0s"
              description: "The cluster's last successful analysis is older than 3600s; its cost and savings figures are stale. The Ready and Analysed conditions (kubectl describe managedcluster) say which stage fails."
      - eval_time: 30m
        alertname: CrossguardCustomerAccountNotReady
      - eval_time: 45m
        alertname: CrossguardCustomerAccountNotReady
        exp_alerts:
          - exp_labels: {severity: warning, kind: CustomerAccount, namespace: acme, name: acme}
            exp_annotations:
              summary: "CustomerAccount acme/acme is not Ready"
              description: "crossguard cannot use the customer's role (or is waiting for it: reason AwaitingCustomerRole). kubectl get customeraccount shows the reason; the Ready condition's message says what to do."
      - eval_time: 90m
        alertname: CrossguardManagedClusterNotReady
      - eval_time: 40m
        alertname: CrossguardRefusalsRising
        exp_alerts:
          - exp_labels: {severity: info, namespace: acme, name: prod}
            exp_annotations:
              summary: "The tag guard refused actions for ManagedCluster acme/prod"
              description: "Automation planned actions on resources without the cluster's management tags and refused them. status.refusals and the Refused Events list them."
      - eval_time: 40m
        alertname: CrossguardAutomationFailing
      - eval_time: 40m
        alertname: CrossguardAccessKeysDisabled
"#;

/// promtool checks the rendered rules and runs [`ALERT_TESTS`] on them: each alert fires
/// on what it is for, after its `for`, and not on healthy series (successful actions, a
/// Ready cluster, no disabled key).
#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let promtool = tool("promtool", "PROMTOOL");
    let docs = monitoring_docs();
    let rule = only(&docs, "PrometheusRule");
    let dir = scratch_dir();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("alerts_test.yaml"), ALERT_TESTS).unwrap();
    for args in [
        ["check", "rules", "rules.yaml"],
        ["test", "rules", "alerts_test.yaml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {}: {e} (run `make tools`)", promtool.display())
            });
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
