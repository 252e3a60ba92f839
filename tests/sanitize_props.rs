//! Property tests for the sanitizer: random Kubernetes objects of every workload kind, alone
//! and in Lists of mixed kinds, with unique canary secrets planted everywhere a secret can
//! hide (sensitive-named env values, secret-looking values under innocent names, args in
//! every flag style, URLs with credentials, probes and lifecycle hooks, valueFrom/envFrom
//! extras, last-applied and other annotations on objects and pod templates, labels,
//! termination messages), including the places other tools miss (init and ephemeral
//! containers, CronJob templates, last-applied annotations).
//!
//! Every case asserts: no canary survives anywhere in the serialized output; sanitizing is
//! idempotent; names, images, resources, replicas and ordinary env values are unchanged.
//! 5,000 + 3,000 + 2,000 = 10,000 cases.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use crossguard::sanitize::{Sanitizer, sanitize_documents, write_documents};
use proptest::prelude::*;
use proptest::string::string_regex;
use serde_json::{Value, json};

/// A generated fragment and the canaries planted in it.
type Planted<T> = (T, Vec<String>);

const SENSITIVE_NAMES: &[&str] = &[
    "DB_PASSWORD",
    "PGPASSWORD",
    "mysqlRootPassword",
    "REDIS_PASS",
    "CLIENT_SECRET",
    "GITHUB_TOKEN",
    "apiKey",
    "API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "SIGNING_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "BASIC_AUTH",
    "OAUTH2_CLIENT_ID",
    "PRIVATE_KEY",
    "TLS_CERT",
    "SENTRY_DSN",
    "DB_CONNECTION_STRING",
    "CONN_STR",
    "SESSION_COOKIE",
    "PASSWORD_SALT",
    "REQUEST_SIGNATURE",
    "ACCESS_KEY_ID",
    "TENANT_REF", // configured extra
];

const INNOCENT_NAMES: &[&str] = &[
    "LOG_LEVEL",
    "MODE",
    "REGION",
    "SETTINGS",
    "CONFIG",
    "DATA",
    "EXTRA_OPTS",
    "OPTIONS",
    "TARGET",
    "ENDPOINT",
    "NOTE",
];

/// Values that must never be redacted.
const INNOCENT_VALUES: &[&str] = &[
    "info",
    "8080",
    "true",
    "/var/lib/x",
    "us-east-1",
    "500m",
    "2Gi",
    "db.internal",
    "nginx:1.25",
    "registry.example.com/team/app:v1.2.3",
    "http://otel-collector.observability.svc.cluster.local:4317",
    "-XX:MaxRAMPercentage=75.0",
    "Europe/Berlin",
    "kafka-0.kafka-headless.kafka.svc.cluster.local:9092",
    "arn:aws:iam::123456789012:role/app",
];

/// Built once: compiling the rules per case would dominate the run time.
static SANITIZER: LazyLock<Sanitizer> =
    LazyLock::new(|| Sanitizer::new(&["tenant-ref".to_string()]));

fn sanitizer() -> &'static Sanitizer {
    &SANITIZER
}

fn re(pattern: &str) -> impl Strategy<Value = String> + use<> {
    string_regex(pattern).expect("valid strategy regex")
}

/// A unique plain token: it is only caught because of where it is planted.
fn canary() -> impl Strategy<Value = String> {
    prop::array::uniform14(b'a'..=b'z')
        .prop_map(|letters| format!("zq{}", String::from_utf8_lossy(&letters)))
}

fn name() -> impl Strategy<Value = String> {
    re("[a-z][a-z0-9]{2,8}(-[a-z0-9]{2,6}){0,2}")
}

/// A value that looks like a secret whatever its name; the canary is the secret part.
fn secret_value() -> impl Strategy<Value = Planted<String>> {
    let whole = |s: String| (s.clone(), vec![s]);
    prop_oneof![
        re("(AKIA|ASIA)[A-Z0-9]{16}").prop_map(whole),
        re("gh[pos]_[A-Za-z0-9]{36}").prop_map(whole),
        re("github_pat_[A-Za-z0-9_]{40}").prop_map(whole),
        re("xox[abprs]-[0-9]{10}-[A-Za-z0-9]{24}").prop_map(whole),
        re("[sr]k_live_[A-Za-z0-9]{24}").prop_map(whole),
        re("eyJ[A-Za-z0-9_-]{20}\\.eyJ[A-Za-z0-9_-]{30}\\.[A-Za-z0-9_-]{43}").prop_map(whole),
        re("[A-Za-z0-9+/]{64}").prop_map(|body| (
            format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"),
            vec![body]
        )),
        canary().prop_map(|pw| (
            format!("postgres://app:{pw}@db.internal:5432/app"),
            vec![pw]
        )),
        canary().prop_map(|tok| (format!("https://{tok}@github.com/org/repo.git"), vec![tok])),
        canary().prop_map(|pw| (
            format!("-Xmx1g -Djavax.net.ssl.keyStorePassword={pw}"),
            vec![pw]
        )),
        canary().prop_map(|pw| (format!("Server=db;Database=app;Password={pw};"), vec![pw])),
        re("[A-Z][a-z]{6}[0-9]{2}[!#%^*]").prop_map(whole),
        // Random hex (38 digits plus a guaranteed letter and digit).
        re("[0-9a-f]{38}")
            .prop_map(|h| format!("{h}a1"))
            .prop_map(whole),
        // High entropy: letters and digits cycling through the three classes.
        prop::collection::vec((0u8..26, 0u8..26, 0u8..10), 11).prop_map(|triples| {
            let s: String = triples
                .into_iter()
                .flat_map(|(u, l, d)| {
                    [
                        char::from(b'A' + u),
                        char::from(b'a' + l),
                        char::from(b'0' + d),
                    ]
                })
                .collect();
            (s.clone(), vec![s])
        }),
    ]
}

/// Secret values that are also valid label values (≤ 63 chars of `[A-Za-z0-9._-]`).
fn label_secret() -> impl Strategy<Value = Planted<String>> {
    let whole = |s: String| (s.clone(), vec![s]);
    prop_oneof![
        re("(AKIA|ASIA)[A-Z0-9]{16}").prop_map(whole),
        re("gh[pos]_[A-Za-z0-9]{36}").prop_map(whole),
        re("[0-9a-f]{38}")
            .prop_map(|h| format!("{h}a1"))
            .prop_map(whole),
    ]
}

fn innocent_env() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(INNOCENT_NAMES),
        prop::sample::select(INNOCENT_VALUES),
    )
        .prop_map(|(n, v)| json!({"name": n, "value": v}))
}

fn planted_env() -> impl Strategy<Value = Planted<Value>> {
    prop_oneof![
        // A sensitive name with an ordinary-looking value.
        (prop::sample::select(SENSITIVE_NAMES), canary()).prop_map(|(n, c)| (json!({"name": n, "value": c}), vec![c])),
        // A secret-looking value under an innocent name.
        (prop::sample::select(INNOCENT_NAMES), secret_value()).prop_map(|(n, (v, c))| (json!({"name": n, "value": v}), c)),
        // valueFrom with extra fields next to the reference.
        (prop::sample::select(SENSITIVE_NAMES), canary(), canary()).prop_map(|(n, c1, c2)| {
            let mut e = json!({"name": n, "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"},
                                                        "inline": {"value": c2}}});
            e["valueFrom"]["secretKeyRef"][c1.as_str()] = json!("x");
            (e, vec![c1, c2])
        }),
    ]
}

/// One self-contained group of arguments carrying a secret, in some flag style.
fn planted_args() -> impl Strategy<Value = Planted<Vec<String>>> {
    prop_oneof![
        canary().prop_map(|c| (vec![format!("--password={c}")], vec![c])),
        canary().prop_map(|c| (vec![format!("-password={c}")], vec![c])),
        canary().prop_map(|c| (vec!["--token".into(), c.clone()], vec![c])),
        canary().prop_map(|c| (vec!["--api-key".into(), c.clone()], vec![c])),
        canary().prop_map(|c| (vec![format!("--client-secret={c}")], vec![c])),
        canary().prop_map(|c| (vec![format!("-p{c}")], vec![c])),
        canary().prop_map(|c| (vec!["-p".into(), c.clone()], vec![c])),
        canary().prop_map(|c| (vec!["-u".into(), format!("admin:{c}")], vec![c])),
        canary().prop_map(|c| (vec![format!("--user=admin:{c}")], vec![c])),
        canary().prop_map(|c| (
            vec![format!("--db-url=postgres://app:{c}@db:5432/app")],
            vec![c]
        )),
        canary().prop_map(|c| (
            vec![format!("https://admin:{c}@internal.example.com/hook")],
            vec![c]
        )),
        canary().prop_map(|c| (vec![format!("-Ddb.password={c}")], vec![c])),
        canary().prop_map(|c| (
            vec![
                "sh".into(),
                "-c".into(),
                format!("export DB_PASSWORD={c} && exec app")
            ],
            vec![c]
        )),
        canary().prop_map(|c| (
            vec![
                "sh".into(),
                "-c".into(),
                format!("mysql -uroot -p{c} app < init.sql")
            ],
            vec![c]
        )),
        secret_value().prop_map(|(v, c)| (vec![format!("--settings={v}")], c)),
        label_secret().prop_map(|(v, c)| (vec![v], c)),
    ]
}

fn innocent_args() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(
            &[
                "serve",
                "--port=8080",
                "--log-level",
                "info",
                "--config",
                "/etc/app/config.yaml",
                "-v",
                "--dry-run",
            ][..],
        ),
        0..4,
    )
    .prop_map(|v| v.into_iter().map(String::from).collect())
}

/// Which list of a container a planted argument group goes to.
#[derive(Debug, Clone, Copy)]
enum ArgPlace {
    Command,
    Args,
    Liveness,
    PreStop,
}

fn container() -> impl Strategy<Value = Planted<Value>> {
    (
        name(),
        re("[a-z]{3,8}(/[a-z]{3,8})?:v[0-9]\\.[0-9]{1,2}"),
        (1u32..4000, 1u32..64),
        prop::collection::vec(innocent_env(), 0..4),
        prop::collection::vec(planted_env(), 0..3),
        innocent_args(),
        prop::collection::vec(
            (planted_args(), prop::sample::select(&[ArgPlace::Command, ArgPlace::Args, ArgPlace::Liveness, ArgPlace::PreStop][..])),
            0..3,
        ),
        prop::option::of(canary()),
        prop::option::of(canary()),
    )
        .prop_flat_map(|(name, image, (cpu, mem), innocent, planted, args, arg_groups, header, probe_path)| {
            let mut canaries = Vec::new();
            let mut env: Vec<Value> = innocent;
            for (e, c) in planted {
                env.push(e);
                canaries.extend(c);
            }
            let mut lists: [Vec<String>; 4] = [Vec::new(), args, vec!["/bin/check".into()], vec!["/bin/drain".into()]];
            for ((group, c), place) in arg_groups {
                lists[place as usize].extend(group);
                canaries.extend(c);
            }
            let [command, args, liveness, pre_stop] = lists;
            let mut c = json!({
                "name": name,
                "image": image,
                "resources": {"requests": {"cpu": format!("{cpu}m"), "memory": format!("{mem}Mi")}},
                "env": env,
                "args": args,
                "livenessProbe": {"exec": {"command": liveness}},
                "lifecycle": {"preStop": {"exec": {"command": pre_stop}}},
            });
            if !command.is_empty() {
                c["command"] = json!(command);
            }
            if let Some(h) = header {
                c["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": 8080,
                    "httpHeaders": [{"name": "Authorization", "value": format!("Bearer {h}")}]}});
                canaries.push(h);
            }
            if let Some(p) = probe_path {
                c["startupProbe"] = json!({"httpGet": {"path": format!("/started?token={p}"), "port": 8080}});
                canaries.push(p);
            }
            // Shuffle the env list so planted entries are not always last.
            let env = c["env"].as_array().cloned().unwrap_or_default();
            Just(env).prop_shuffle().prop_map(move |env| {
                let mut c = c.clone();
                c["env"] = Value::Array(env);
                (c, canaries.clone())
            })
        })
}

fn containers(range: std::ops::Range<usize>) -> impl Strategy<Value = Planted<Vec<Value>>> {
    prop::collection::vec(container(), range).prop_map(|cs| {
        let mut canaries = Vec::new();
        let values = cs
            .into_iter()
            .map(|(c, cn)| {
                canaries.extend(cn);
                c
            })
            .collect();
        (values, canaries)
    })
}

fn pod_spec() -> impl Strategy<Value = Planted<Value>> {
    (containers(1..3), containers(0..2), containers(0..2)).prop_map(
        |((cs, c1), (inits, c2), (eph, c3))| {
            let mut spec = json!({"containers": cs, "restartPolicy": "Always"});
            if !inits.is_empty() {
                spec["initContainers"] = json!(inits);
            }
            if !eph.is_empty() {
                spec["ephemeralContainers"] = json!(eph);
            }
            (spec, [c1, c2, c3].concat())
        },
    )
}

/// Metadata with a name, labels and annotations, some carrying canaries.
fn metadata(name: String) -> impl Strategy<Value = Planted<Value>> {
    (
        prop::option::of(canary()),
        prop::option::of(canary()),
        prop::option::of(secret_value()),
        prop::option::of(label_secret()),
        prop::option::of(canary()),
    )
        .prop_map(move |(last_applied, named, secret, label, snapshot)| {
            let mut canaries = Vec::new();
            let mut annotations =
                json!({"deployment.kubernetes.io/revision": "2", "team": "payments"});
            let mut labels = json!({"app": name});
            if let Some(c) = last_applied {
                let applied = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [
                    {"name": "app", "env": [{"name": "MODE", "value": c}]}]}});
                annotations["kubectl.kubernetes.io/last-applied-configuration"] =
                    json!(applied.to_string());
                canaries.push(c);
            }
            if let Some(c) = named {
                annotations["vault.example.com/agent-token"] = json!(c);
                canaries.push(c);
            }
            if let Some((v, c)) = secret {
                annotations["example.com/owner-note"] = json!(v);
                canaries.extend(c);
            }
            if let Some((v, c)) = label {
                labels["leak"] = json!(v);
                canaries.extend(c);
            }
            if let Some(c) = snapshot {
                annotations["example.com/snapshot"] =
                    json!(json!({"env": [{"name": "X", "value": c}]}).to_string());
                canaries.push(c);
            }
            (
                json!({"name": name, "labels": labels, "annotations": annotations}),
                canaries,
            )
        })
}

fn template() -> impl Strategy<Value = Planted<Value>> {
    (name(), pod_spec()).prop_flat_map(|(n, (spec, c1))| {
        metadata(n).prop_map(move |(md, c2)| {
            (
                json!({"metadata": md, "spec": spec.clone()}),
                [c1.clone(), c2].concat(),
            )
        })
    })
}

const KINDS: &[&str] = &[
    "Pod",
    "PodTemplate",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "Rollout",
    "ScheduledWorkload",
];

/// One object of a random kind with its pod template(s) in the right place.
fn object() -> impl Strategy<Value = Planted<Value>> {
    (prop::sample::select(KINDS), name(), template(), 0u64..10, prop::option::of(canary())).prop_flat_map(
        |(kind, n, (template, c1), replicas, message)| {
            metadata(n).prop_map(move |(md, c2)| {
                let mut canaries = [c1.clone(), c2].concat();
                let mut obj = json!({"apiVersion": "v1", "kind": kind, "metadata": md});
                let selector = json!({"matchLabels": template["metadata"]["labels"].clone()});
                match kind {
                    "Pod" => {
                        obj["spec"] = template["spec"].clone();
                        if let Some(m) = &message {
                            obj["status"] = json!({"containerStatuses": [{"name": "app", "lastState": {"terminated": {
                                "exitCode": 1, "message": format!("connect postgres://app:{m}@db:5432 failed")}}}]});
                            canaries.push(m.clone());
                        }
                    }
                    "PodTemplate" => obj["template"] = template.clone(),
                    "CronJob" | "ScheduledWorkload" => {
                        obj["spec"] = json!({"schedule": "*/5 * * * *", "jobTemplate": {
                            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                            "spec": {"template": template.clone()}}});
                    }
                    "Job" => obj["spec"] = json!({"template": template.clone(), "backoffLimit": 3}),
                    "ReplicationController" => {
                        obj["spec"] = json!({"replicas": replicas, "selector": template["metadata"]["labels"].clone(),
                            "template": template.clone()})
                    }
                    _ => obj["spec"] = json!({"replicas": replicas, "selector": selector, "template": template.clone()}),
                }
                (obj, canaries)
            })
        },
    )
}

/// A List of mixed kinds, sometimes with a nested typed list.
fn list() -> impl Strategy<Value = Planted<Value>> {
    (prop::collection::vec(object(), 1..4), prop::option::of(object()), prop::sample::select(&["List", "PodList"][..])).prop_map(
        |(objects, nested, kind)| {
            let mut canaries = Vec::new();
            let mut items: Vec<Value> = objects
                .into_iter()
                .map(|(o, c)| {
                    canaries.extend(c);
                    o
                })
                .collect();
            if let Some((o, c)) = nested {
                items.push(json!({"apiVersion": "v1", "kind": "DeploymentList", "items": [o]}));
                canaries.extend(c);
            }
            (json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": ""}, "items": items}), canaries)
        },
    )
}

/// Everything that must survive: names, images, resources, replicas, schedules, and env
/// entries whose value is an ordinary one. Strings (like annotation values) are not entered.
fn skeleton(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(n)), Some(Value::String(val))) =
                (m.get("name"), m.get("value"))
                && INNOCENT_VALUES.contains(&val.as_str())
            {
                out.insert(format!("{path} env {n}={val}"));
            }
            for (k, child) in m {
                let p = format!("{path}/{k}");
                if matches!(
                    k.as_str(),
                    "name" | "image" | "resources" | "replicas" | "schedule" | "kind"
                ) {
                    out.insert(format!("{p}={child}"));
                }
                skeleton(child, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                skeleton(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// How the object reaches the sanitizer.
#[derive(Debug, Clone, Copy)]
enum Input {
    Direct,
    Json,
    Yaml,
}

fn check(obj: Value, canaries: &[String], input: Input) -> Result<(), TestCaseError> {
    let sanitizer = sanitizer();
    let mut before = BTreeSet::new();
    skeleton(&obj, "", &mut before);

    let out = match input {
        Input::Direct => {
            let mut o = obj.clone();
            sanitizer.sanitize(&mut o);
            o
        }
        Input::Json => {
            let docs = sanitize_documents(&serde_json::to_vec(&obj).unwrap(), sanitizer).unwrap();
            prop_assert_eq!(docs.len(), 1);
            docs.into_iter().next().unwrap()
        }
        Input::Yaml => {
            let docs =
                sanitize_documents(serde_yaml::to_string(&obj).unwrap().as_bytes(), sanitizer)
                    .unwrap();
            prop_assert_eq!(docs.len(), 1);
            docs.into_iter().next().unwrap()
        }
    };

    let text = serde_json::to_string(&out).unwrap();
    for c in canaries {
        prop_assert!(
            !text.contains(c.as_str()),
            "canary {} survived in {}",
            c,
            text
        );
    }
    let mut after = BTreeSet::new();
    skeleton(&out, "", &mut after);
    prop_assert_eq!(&before, &after, "non-secret fields changed");

    let mut again = out.clone();
    let second = sanitizer.sanitize(&mut again);
    prop_assert_eq!(&again, &out, "not idempotent");
    prop_assert_eq!(
        second.total(),
        0,
        "second pass redacted something: {:?}",
        second
    );
    Ok(())
}

fn input() -> impl Strategy<Value = Input> {
    prop::sample::select(&[Input::Direct, Input::Json, Input::Yaml][..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn single_objects_of_every_kind((obj, canaries) in object(), how in input()) {
        check(obj, &canaries, how)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn lists_of_mixed_kinds((list, canaries) in list(), how in input()) {
        check(list, &canaries, how)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Several documents in one input (a JSON stream or multi-document YAML), written back
    /// out in both formats: still no canary, and the output reads back unchanged.
    #[test]
    fn document_streams(objects in prop::collection::vec(object(), 1..4), yaml_in in any::<bool>(), json_out in any::<bool>()) {
        let sanitizer = sanitizer();
        let canaries: Vec<String> = objects.iter().flat_map(|(_, c)| c.clone()).collect();
        let docs: Vec<Value> = objects.into_iter().map(|(o, _)| o).collect();
        let mut input = Vec::new();
        write_documents(&docs, !yaml_in, &mut input).unwrap();
        let sanitized = sanitize_documents(&input, sanitizer).unwrap();
        prop_assert_eq!(sanitized.len(), docs.len());
        let mut output = Vec::new();
        write_documents(&sanitized, json_out, &mut output).unwrap();
        let text = String::from_utf8(output.clone()).unwrap();
        for c in &canaries {
            prop_assert!(!text.contains(c.as_str()), "canary {} survived", c);
        }
        prop_assert_eq!(sanitize_documents(&output, sanitizer).unwrap(), sanitized);
    }
}

#[test]
fn generated_names_are_classified_as_intended() {
    let s = sanitizer();
    for n in SENSITIVE_NAMES {
        assert!(s.is_sensitive_name(n), "{n}");
    }
    for n in INNOCENT_NAMES {
        assert!(!s.is_sensitive_name(n), "{n}");
    }
    for v in INNOCENT_VALUES {
        assert!(!s.looks_like_secret(v), "{v}");
    }
}
