//! Sanitizer throughput, as a ratio against plain `serde_json::from_slice::<Value>` of the
//! same bytes. Generates a synthetic `kubectl get pods -o json` List (realistic pods with
//! init and sidecar containers, ~15 env vars each, some secrets, last-applied annotations)
//! and reports, best of several repetitions:
//!   (a) parse:             `serde_json::from_slice::<serde_json::Value>`
//!   (b) parse + sanitize:  the same, then `Sanitizer::sanitize` on every item
//!   (c) sanitize alone:    `Sanitizer::sanitize` on an already parsed List
//!
//! Run with `cargo bench --bench sanitize`; `CROSSGUARD_BENCH_PODS` and
//! `CROSSGUARD_BENCH_REPS` change the size (default 20000 pods) and repetitions (5).

use std::hint::black_box;
use std::time::{Duration, Instant};

use crossguard::sanitize::{Redactions, Sanitizer};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const APPS: &[&str] = &[
    "checkout",
    "cart",
    "payments",
    "search",
    "catalog",
    "auth-gateway",
    "notifier",
    "reports",
];
const NAMESPACES: &[&str] = &["prod", "staging", "payments", "platform", "data"];

fn env_list(rng: &mut StdRng, app: &str, secrets: bool) -> Value {
    let level = *["info", "debug", "warn"].choose(rng).unwrap();
    let mut env = vec![
        json!({"name": "LOG_LEVEL", "value": level}),
        json!({"name": "PORT", "value": "8080"}),
        json!({"name": "APP_NAME", "value": app}),
        json!({"name": "AWS_REGION", "value": "us-east-1"}),
        json!({"name": "DB_HOST", "value": format!("{app}-db.{}.svc.cluster.local", NAMESPACES.choose(rng).unwrap())}),
        json!({"name": "DB_PORT", "value": "5432"}),
        json!({"name": "DB_NAME", "value": format!("{}_production", app.replace('-', "_"))}),
        json!({"name": "JAVA_OPTS", "value": "-XX:MaxRAMPercentage=75.0 -XX:+UseContainerSupport -Dfile.encoding=UTF-8"}),
        json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.observability.svc.cluster.local:4317"}),
        json!({"name": "FEATURE_FLAGS", "value": "new-checkout,fast-search"}),
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}),
        json!({"name": "MEMORY_LIMIT", "valueFrom": {"resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}}}),
        json!({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": format!("{app}-db"), "key": "password"}}}),
    ];
    if secrets {
        let token: String = (0..40)
            .map(|_| {
                *b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    .choose(rng)
                    .unwrap() as char
            })
            .collect();
        env.push(json!({"name": "API_TOKEN", "value": token}));
        env.push(json!({"name": "DATABASE_URL", "value": format!("postgres://{app}:hunter2@{app}-db:5432/{app}")}));
    } else {
        env.push(json!({"name": "CACHE_TTL", "value": "300"}));
        env.push(json!({"name": "TZ", "value": "Europe/Berlin"}));
    }
    Value::Array(env)
}

fn container(rng: &mut StdRng, name: &str, app: &str, secrets: bool) -> Value {
    let tag = format!(
        "v{}.{}.{}",
        rng.random_range(1..4),
        rng.random_range(0..30),
        rng.random_range(0..10)
    );
    json!({
        "name": name,
        "image": format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{app}/{name}:{tag}"),
        "imagePullPolicy": "IfNotPresent",
        "args": ["--port=8080", "--log-format=json", "--config", "/etc/app/config.yaml"],
        "env": env_list(rng, app, secrets),
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10,
                           "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "livenessProbe": {"exec": {"command": ["/bin/health", "--timeout=2s"]}, "periodSeconds": 10},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": true},
                         {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
    })
}

fn pod(rng: &mut StdRng, i: usize) -> Value {
    let app = *APPS.choose(rng).unwrap();
    let ns = *NAMESPACES.choose(rng).unwrap();
    let hash: String = (0..10)
        .map(|_| *b"bcdfghjklmnpqrstvwxz2456789".choose(rng).unwrap() as char)
        .collect();
    let name = format!("{app}-{hash}-{:05x}", i % 0xfffff);
    let secrets = rng.random_bool(0.3);
    let spec = json!({
        "initContainers": [container(rng, "migrate", app, secrets)],
        "containers": [container(rng, "app", app, secrets), container(rng, "proxy", app, false)],
        "volumes": [{"name": "config", "configMap": {"name": format!("{app}-config"), "defaultMode": 420}},
                    {"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}],
        "nodeName": format!("ip-10-0-{}-{}.ec2.internal", rng.random_range(0..255), rng.random_range(0..255)),
        "serviceAccountName": app,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
    });
    let mut annotations = json!({"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
        "kubectl.kubernetes.io/restartedAt": "2024-01-15T10:30:00Z"});
    if i.is_multiple_of(5) {
        let applied = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec});
        annotations["kubectl.kubernetes.io/last-applied-configuration"] =
            Value::String(applied.to_string());
    }
    let started = |n: &str| {
        json!({"name": n, "ready": true, "restartCount": 0, "started": true,
        "image": format!("{app}/{n}:v1"), "imageID": format!("docker-pullable://{app}/{n}@sha256:{:064x}", i),
        "containerID": format!("containerd://{:064x}", i * 7), "state": {"running": {"startedAt": "2024-01-15T10:31:00Z"}}})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns, "uid": format!("{:08x}-1111-4222-8333-{:012x}", i, i * 31),
            "resourceVersion": (1_000_000 + i).to_string(), "creationTimestamp": "2024-01-15T10:30:00Z",
            "generateName": format!("{app}-{hash}-"),
            "labels": {"app": app, "pod-template-hash": hash, "app.kubernetes.io/name": app, "app.kubernetes.io/version": "1.4.2"},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-{hash}"),
                                 "uid": format!("{:08x}-aaaa-4bbb-8ccc-{:012x}", i / 3, i), "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": spec,
        "status": {
            "phase": "Running", "hostIP": "10.0.1.12", "podIP": format!("10.0.{}.{}", (i / 250) % 255, i % 250), "qosClass": "Burstable",
            "startTime": "2024-01-15T10:30:05Z",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-15T10:31:00Z"},
                           {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-01-15T10:30:00Z"}],
            "initContainerStatuses": [{"name": "migrate", "ready": true, "restartCount": 0, "image": "m", "imageID": "m",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2024-01-15T10:30:10Z", "finishedAt": "2024-01-15T10:30:50Z"}}}],
            "containerStatuses": [started("app"), started("proxy")],
        },
    })
}

fn best<T>(reps: usize, mut f: impl FnMut() -> (Duration, T)) -> Duration {
    (0..reps)
        .map(|_| black_box(f()).0)
        .min()
        .unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn main() {
    let pods: usize = std::env::var("CROSSGUARD_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let reps: usize = std::env::var("CROSSGUARD_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut rng = StdRng::seed_from_u64(42);
    let items: Vec<Value> = (0..pods).map(|i| pod(&mut rng, i)).collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items});
    // kubectl prints indented JSON.
    let bytes = serde_json::to_vec_pretty(&list).expect("serialize");
    drop(list);
    let sanitizer = Sanitizer::default();

    let parse = best(reps, || {
        let start = Instant::now();
        let v: Value = serde_json::from_slice(&bytes).expect("parse");
        (start.elapsed(), v)
    });
    let mut redactions = Redactions::default();
    let parse_sanitize = best(reps, || {
        let start = Instant::now();
        let mut v: Value = serde_json::from_slice(&bytes).expect("parse");
        let mut r = Redactions::default();
        for item in v["items"].as_array_mut().expect("items") {
            r += sanitizer.sanitize(item);
        }
        redactions = r;
        (start.elapsed(), v)
    });
    let sanitize_only = best(reps, || {
        let mut v: Value = serde_json::from_slice(&bytes).expect("parse");
        let start = Instant::now();
        for item in v["items"].as_array_mut().expect("items") {
            black_box(sanitizer.sanitize(item));
        }
        (start.elapsed(), v)
    });

    let mib = bytes.len() as f64 / (1024.0 * 1024.0);
    println!(
        "sanitizer benchmark: {pods} pods, {:.1} MiB of JSON, best of {reps}",
        mib
    );
    println!("redactions per pass: {redactions:?}");
    println!(
        "(a) parse             {:>10}  {:>7.1} MiB/s",
        secs(parse),
        mib / parse.as_secs_f64()
    );
    println!(
        "(b) parse + sanitize  {:>10}  {:>7.1} MiB/s",
        secs(parse_sanitize),
        mib / parse_sanitize.as_secs_f64()
    );
    println!(
        "(c) sanitize alone    {:>10}  {:>7.1} MiB/s",
        secs(sanitize_only),
        mib / sanitize_only.as_secs_f64()
    );
    println!(
        "ratio (b)/(a) = {:.2}",
        parse_sanitize.as_secs_f64() / parse.as_secs_f64()
    );
    println!(
        "ratio (c)/(a) = {:.2}",
        sanitize_only.as_secs_f64() / parse.as_secs_f64()
    );
}
