//! Table-driven tests of the object walker and the argument rules. The classifiers have
//! their own tables in `rules.rs`.

use serde_json::{Value, json};

use super::*;

fn s() -> Sanitizer {
    Sanitizer::new(&["tenant".to_string()])
}

/// A Pod whose only container has this env list.
fn pod_with_env(env: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "app", "image": "nginx:1.25", "env": env}]}})
}

fn env_value(obj: &Value) -> &Value {
    &obj["spec"]["containers"][0]["env"][0]["value"]
}

#[test]
fn env_values_by_name_and_by_value() {
    // (name, value, redacted?)
    let cases: &[(&str, &str, bool)] = &[
        ("DB_PASSWORD", "x", true),
        ("apiKey", "short", true),
        ("TENANT_ID", "acme", true), // configured extra
        ("CLIENT_SECRET", "", true),
        ("GREETING", "AKIAIOSFODNN7EXAMPLE", true),
        ("GREETING", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", true),
        (
            "DATABASE_URL",
            "postgres://app:hunter2@db.internal:5432/app",
            true,
        ),
        (
            "JAVA_OPTS",
            "-Xmx1g -Djavax.net.ssl.keyStorePassword=changeit",
            true,
        ),
        ("SETTINGS", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", true),
        ("LOG_LEVEL", "info", false),
        ("PORT", "8080", false),
        ("DATA_DIR", "/var/lib/x", false),
        ("AWS_REGION", "us-east-1", false),
        ("MEMORY", "512Mi", false),
        ("ENABLED", "true", false),
        ("DB_HOST", "db.internal", false),
        (
            "KEYCLOAK_URL",
            "https://sso.example.com/auth/realms/main",
            false,
        ),
        (
            "SIDECAR_IMAGE",
            "quay.io/jetstack/cert-manager-controller:v1.14.0",
            false,
        ),
        (
            "GIT_COMMIT",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            true,
        ), // decided: 40-hex is redacted
    ];
    for &(name, value, redacted) in cases {
        let mut obj = pod_with_env(json!([{"name": name, "value": value}]));
        let r = s().sanitize(&mut obj);
        let expected = if redacted { REDACTED } else { value };
        assert_eq!(env_value(&obj), expected, "{name}={value}");
        assert_eq!(r.env, usize::from(redacted), "{name}={value}");
        assert_eq!(
            obj["spec"]["containers"][0]["env"][0]["name"], name,
            "the name is kept"
        );
    }
}

#[test]
fn non_string_env_values() {
    let mut obj = pod_with_env(json!([
        {"name": "PIN_PASSWORD", "value": 1234},
        {"name": "REPLICAS", "value": 3},
        {"name": "NESTED", "value": {"a": "b"}},
        "not-an-env-var",
        {"value": "no name"},
        {"name": "X", "value": "1", "extra": "dropped"},
    ]));
    s().sanitize(&mut obj);
    let env = &obj["spec"]["containers"][0]["env"];
    assert_eq!(env[0]["value"], REDACTED);
    assert_eq!(env[1]["value"], 3);
    assert_eq!(env[2]["value"], REDACTED);
    assert_eq!(env[3], REDACTED);
    assert_eq!(env[4]["value"], REDACTED);
    assert_eq!(env[5], json!({"name": "X", "value": "1"}));
}

#[test]
fn value_from_keeps_only_references() {
    let cases: &[(Value, Value, bool)] = &[
        (
            json!({"secretKeyRef": {"name": "db", "key": "password", "optional": true}}),
            json!({"secretKeyRef": {"name": "db", "key": "password"}}),
            true,
        ),
        (
            json!({"configMapKeyRef": {"name": "cfg", "key": "url"}}),
            json!({"configMapKeyRef": {"name": "cfg", "key": "url"}}),
            false,
        ),
        (
            json!({"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}),
            json!({"fieldRef": {"fieldPath": "metadata.name"}}),
            true,
        ),
        (
            json!({"resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}}),
            json!({"resourceFieldRef": {"resource": "limits.memory"}}),
            true,
        ),
        (
            json!({"fileKeyRef": {"volumeName": "v", "path": "p.env", "key": "K", "optional": false}}),
            json!({"fileKeyRef": {"volumeName": "v", "path": "p.env", "key": "K"}}),
            true,
        ),
        (json!({"vaultRef": {"token": "s.abc"}}), json!({}), true),
        (
            json!({"secretKeyRef": {"name": {"inline": "x"}, "key": "k"}}),
            json!({"secretKeyRef": {"key": "k"}}),
            true,
        ),
        (json!("inline-secret"), json!({}), true),
    ];
    for (input, expected, changed) in cases {
        let mut obj = pod_with_env(json!([{"name": "DB_PASSWORD", "valueFrom": input}]));
        let r = s().sanitize(&mut obj);
        assert_eq!(
            &obj["spec"]["containers"][0]["env"][0]["valueFrom"], expected,
            "{input}"
        );
        assert_eq!(r.value_from, usize::from(*changed), "{input}");
    }
}

#[test]
fn env_from_keeps_only_names() {
    let mut obj = json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "envFrom": [
        {"prefix": "DB_", "secretRef": {"name": "db", "optional": true}},
        {"configMapRef": {"name": "cfg"}},
        {"unknownRef": {"value": "x"}},
    ]}]}});
    let r = s().sanitize(&mut obj);
    assert_eq!(
        obj["spec"]["containers"][0]["envFrom"],
        json!([{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "cfg"}}, {}])
    );
    assert_eq!(r.value_from, 2);
}

fn sanitize_args(args: &[&str]) -> (Vec<String>, usize) {
    let mut obj = json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "args": args}]}});
    let r = s().sanitize(&mut obj);
    let out = obj["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    (out, r.args)
}

#[test]
fn args_in_every_flag_style() {
    let red = REDACTED;
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["--password=hunter2"],
            vec![format!("--password={red}")],
        ),
        (vec!["-password=hunter2"], vec![format!("-p{red}")]),
        (
            vec!["--db-password", "hunter2", "--port", "5432"],
            vec![
                "--db-password".into(),
                red.into(),
                "--port".into(),
                "5432".into(),
            ],
        ),
        (vec!["--token", "abc"], vec!["--token".into(), red.into()]),
        (
            vec!["--token", "--verbose"],
            vec!["--token".into(), "--verbose".into()],
        ),
        (
            vec!["--api-key=abc", "--name=web"],
            vec![format!("--api-key={red}"), "--name=web".into()],
        ),
        (vec!["-pSECRET"], vec![format!("-p{red}")]),
        (vec!["-p", "hunter2"], vec!["-p".into(), red.into()]),
        (vec!["-p", "8080"], vec!["-p".into(), "8080".into()]),
        (vec!["-u", "root"], vec!["-u".into(), "root".into()]),
        (vec!["-u", "admin:hunter2"], vec!["-u".into(), red.into()]),
        (vec!["--user=admin:hunter2"], vec![format!("--user={red}")]),
        (
            vec!["--db-url=postgres://u:p@h/db"],
            vec![format!("--db-url={red}")],
        ),
        (vec!["postgres://u:p@h/db"], vec![red.into()]),
        (
            vec!["--header=Authorization: Bearer abc123def456"],
            vec![format!("--header={red}")],
        ),
        (
            vec!["--from-literal=password=x"],
            vec![format!("--from-literal={red}")],
        ),
        (
            vec!["-Ddb.password=x", "-Xmx1g"],
            vec![format!("-Ddb.password={red}"), "-Xmx1g".into()],
        ),
        (vec!["AKIAIOSFODNN7EXAMPLE"], vec![red.into()]),
        (vec!["--AKIAIOSFODNN7EXAMPLE"], vec![red.into()]),
        (
            vec!["sh", "-c", "export PASSWORD=x; exec app"],
            vec!["sh".into(), "-c".into(), red.into()],
        ),
        (
            vec!["sh", "-c", "mysql -uroot -phunter2 app"],
            vec!["sh".into(), "-c".into(), red.into()],
        ),
        (
            vec![
                "--port=8080",
                "--log-level",
                "info",
                "--config",
                "/etc/app/config.yaml",
                "serve",
            ],
            vec![
                "--port=8080".into(),
                "--log-level".into(),
                "info".into(),
                "--config".into(),
                "/etc/app/config.yaml".into(),
                "serve".into(),
            ],
        ),
        (
            vec!["--", "-", "---x"],
            vec!["--".into(), "-".into(), "---x".into()],
        ),
        (vec!["--password="], vec!["--password=".into()]),
        (vec!["--password"], vec!["--password".into()]),
    ];
    for (input, expected) in cases {
        let (out, count) = sanitize_args(&input);
        assert_eq!(out, expected, "{input:?}");
        assert_eq!(
            count,
            out.iter().zip(&input).filter(|(a, b)| a != b).count(),
            "{input:?}"
        );
        // Idempotent on its own output.
        let again: Vec<&str> = out.iter().map(String::as_str).collect();
        assert_eq!(sanitize_args(&again), (out.clone(), 0), "{input:?} twice");
    }
}

#[test]
fn command_probes_and_lifecycle() {
    let mut obj = json!({"kind": "Pod", "spec": {"containers": [{
        "name": "a",
        "command": ["app", "--token", "abc"],
        "livenessProbe": {"exec": {"command": ["check", "--password=x"]}},
        "readinessProbe": {"httpGet": {"path": "/health?token=abc", "port": 8080,
            "httpHeaders": [{"name": "Authorization", "value": "Bearer x"}, {"name": "X-Env", "value": "prod"}]}},
        "startupProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "curl -u admin:pw http://x/drain"]}},
                      "postStart": {"httpGet": {"path": "/", "httpHeaders": [{"name": "X-Api-Key", "value": "k"}]}}}
    }]}});
    let r = s().sanitize(&mut obj);
    let c = &obj["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["app", "--token", REDACTED]));
    assert_eq!(
        c["livenessProbe"]["exec"]["command"],
        json!(["check", format!("--password={REDACTED}")])
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], REDACTED);
    assert_eq!(
        c["readinessProbe"]["httpGet"]["httpHeaders"][0]["value"],
        REDACTED
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["httpHeaders"][1]["value"],
        "prod"
    );
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["lifecycle"]["preStop"]["exec"]["command"][2], REDACTED);
    assert_eq!(
        c["lifecycle"]["postStart"]["httpGet"]["httpHeaders"][0]["value"],
        REDACTED
    );
    assert_eq!(r.args, 3);
    assert_eq!(r.other, 3);
}

/// Where the pod spec lives, per kind.
fn pod_spec_at<'a>(obj: &'a Value, kind: &str) -> &'a Value {
    match kind {
        "Pod" => &obj["spec"],
        "PodTemplate" => &obj["template"]["spec"],
        "CronJob" => &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &obj["spec"]["template"]["spec"],
    }
}

fn workload(kind: &str, pod_spec: Value, template_annotations: Value) -> Value {
    let template = json!({"metadata": {"labels": {"app": "web"}, "annotations": template_annotations}, "spec": pod_spec});
    let mut obj = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "w", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}",
        "deployment.kubernetes.io/revision": "3"}}});
    match kind {
        "Pod" => {
            obj["spec"] = template["spec"].clone();
            obj["metadata"]["annotations"]["extra"] = template_annotations;
        }
        "PodTemplate" => obj["template"] = template,
        "CronJob" => {
            obj["spec"] = json!({"schedule": "*/5 * * * *", "jobTemplate": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}"}}, "spec": {"template": template}}})
        }
        _ => {
            obj["spec"] = json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template})
        }
    }
    obj
}

#[test]
fn every_kind_and_container_list() {
    let kinds = [
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
    ];
    for kind in kinds {
        let env =
            json!([{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "MODE", "value": "fast"}]);
        let pod_spec = json!({
            "containers": [{"name": "a", "image": "app:1", "env": env, "args": ["--token", "t1"]}],
            "initContainers": [{"name": "i", "image": "init:1", "env": env}],
            "ephemeralContainers": [{"name": "e", "image": "debug:1", "env": env}],
        });
        let annotations = if kind == "Pod" {
            json!("plain")
        } else {
            json!({"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "payments"})
        };
        let mut obj = workload(kind, pod_spec, annotations);
        let r = s().sanitize(&mut obj);
        let spec = pod_spec_at(&obj, kind);
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            assert_eq!(spec[list][0]["env"][0]["value"], REDACTED, "{kind} {list}");
            assert_eq!(spec[list][0]["env"][1]["value"], "fast", "{kind} {list}");
        }
        assert_eq!(spec["containers"][0]["args"][1], REDACTED, "{kind}");
        assert_eq!(spec["containers"][0]["image"], "app:1", "{kind}");
        assert!(
            obj["metadata"]["annotations"]
                .get("kubectl.kubernetes.io/last-applied-configuration")
                .is_none(),
            "{kind}"
        );
        assert_eq!(
            obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3",
            "{kind}"
        );
        assert_eq!(r.pod_specs, 1, "{kind}");
        assert_eq!(r.env, 3, "{kind}");
        if kind != "Pod" {
            let template = match kind {
                "PodTemplate" => &obj["template"],
                "CronJob" => &obj["spec"]["jobTemplate"]["spec"]["template"],
                _ => &obj["spec"]["template"],
            };
            assert_eq!(
                template["metadata"]["annotations"],
                json!({"team": "payments"}),
                "{kind}"
            );
            assert_eq!(
                template["metadata"]["labels"],
                json!({"app": "web"}),
                "{kind}"
            );
        }
        if kind == "CronJob" {
            assert_eq!(
                obj["spec"]["jobTemplate"]["metadata"]["annotations"],
                json!({})
            );
            assert_eq!(obj["spec"]["schedule"], "*/5 * * * *");
        }
    }
}

#[test]
fn lists_of_mixed_kinds() {
    let pod = pod_with_env(json!([{"name": "TOKEN", "value": "t"}]));
    let deploy = workload(
        "Deployment",
        json!({"containers": [{"name": "a", "env": [{"name": "API_KEY", "value": "k"}]}]}),
        json!({}),
    );
    let mut list = json!({"apiVersion": "v1", "kind": "List", "items": [pod, deploy,
        {"kind": "PodList", "items": [pod_with_env(json!([{"name": "SECRET", "value": "s"}]))]}]});
    let r = s().sanitize(&mut list);
    assert_eq!(
        list["items"][0]["spec"]["containers"][0]["env"][0]["value"],
        REDACTED
    );
    assert_eq!(
        list["items"][1]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        REDACTED
    );
    assert_eq!(
        list["items"][2]["items"][0]["spec"]["containers"][0]["env"][0]["value"],
        REDACTED
    );
    assert_eq!(r.env, 3);
    assert_eq!(r.objects, 5);
    assert_eq!(r.pod_specs, 3);
}

#[test]
fn annotations() {
    // (key, value, expected value or None when removed)
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "kubectl.kubernetes.io/last-applied-configuration",
            "{\"apiVersion\":\"v1\"}",
            None,
        ),
        ("kapp.k14s.io/original", "{}", None),
        (
            "example.com/snapshot",
            r#"{"spec":{"containers":[]}}"#,
            None,
        ),
        ("example.com/config", r#"[{"name":"a","env":[]}]"#, None),
        (
            "example.com/manifest",
            "apiVersion: v1\nkind: Pod\nspec:\n  containers: []\n",
            None,
        ),
        (
            "example.com/settings",
            r#"{"retries":3}"#,
            Some(r#"{"retries":3}"#),
        ),
        (
            "example.com/settings2",
            r#"{"password":"x"}"#,
            Some(REDACTED),
        ),
        ("example.com/broken-json", "{not json", Some("{not json")),
        ("deployment.kubernetes.io/desired-replicas", "3", Some("3")),
        ("meta.helm.sh/release-name", "web", Some("web")),
        (
            "kubernetes.io/change-cause",
            "kubectl create secret generic x --from-literal=password=foo",
            Some(REDACTED),
        ),
        ("example.com/ci-token", "abc", Some(REDACTED)),
        ("checksum/secret", "abc", Some(REDACTED)),
        ("example.com/owner", "AKIAIOSFODNN7EXAMPLE", Some(REDACTED)),
        (
            "cluster-autoscaler.kubernetes.io/safe-to-evict",
            "true",
            Some("true"),
        ),
        ("example.com/redacted-already", REDACTED, Some(REDACTED)),
    ];
    for &(key, value, expected) in cases {
        let mut obj = json!({"kind": "Deployment", "metadata": {"annotations": {key: value}},
            "spec": {"template": {"metadata": {"annotations": {key: value}}, "spec": {"containers": []}}}});
        let r = s().sanitize(&mut obj);
        for md in [&obj["metadata"], &obj["spec"]["template"]["metadata"]] {
            assert_eq!(
                md["annotations"].get(key).and_then(Value::as_str),
                expected,
                "{key}"
            );
        }
        let changed = expected != Some(value);
        assert_eq!(r.annotations, 2 * usize::from(changed), "{key}");
    }
}

#[test]
fn labels_and_selectors_keep_ordinary_values() {
    let mut obj = json!({"kind": "Deployment",
        "metadata": {"labels": {"app": "web", "version": "v1.2.3", "leak": "AKIAIOSFODNN7EXAMPLE"}},
        "spec": {"selector": {"matchLabels": {"app": "web", "leak": "AKIAIOSFODNN7EXAMPLE"},
                              "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "AKIAIOSFODNN7EXAMPLE"]}]},
                 "template": {"metadata": {"labels": {"app": "web", "leak": "AKIAIOSFODNN7EXAMPLE"}}, "spec": {"containers": []}}}});
    let r = s().sanitize(&mut obj);
    assert_eq!(
        obj["metadata"]["labels"],
        json!({"app": "web", "version": "v1.2.3", "leak": REDACTED})
    );
    assert_eq!(
        obj["spec"]["selector"]["matchLabels"],
        json!({"app": "web", "leak": REDACTED})
    );
    assert_eq!(
        obj["spec"]["selector"]["matchExpressions"][0]["values"],
        json!(["front", REDACTED])
    );
    assert_eq!(
        obj["spec"]["template"]["metadata"]["labels"],
        json!({"app": "web", "leak": REDACTED})
    );
    assert_eq!(r.labels, 4);

    // ReplicationController: a plain map selector.
    let mut rc = json!({"kind": "ReplicationController", "spec": {"selector": {"app": "web", "x": "AKIAIOSFODNN7EXAMPLE"}}});
    s().sanitize(&mut rc);
    assert_eq!(rc["spec"]["selector"], json!({"app": "web", "x": REDACTED}));
}

#[test]
fn volumes_status_and_data() {
    let mut pod = json!({"kind": "Pod", "spec": {"containers": [], "volumes": [
        {"name": "s", "csi": {"driver": "secrets-store.csi.k8s.io", "volumeAttributes": {"secretProviderClass": "aws", "region": "us-east-1", "clientToken": "abc"}}},
        {"name": "f", "flexVolume": {"driver": "x", "options": {"password": "p", "size": "10Gi"}}}]},
        "status": {"containerStatuses": [{"name": "a", "lastState": {"terminated": {"exitCode": 1,
            "message": "connect postgres://app:hunter2@db:5432 failed"}}, "state": {"waiting": {"message": "Back-off"}}}]}});
    let r = s().sanitize(&mut pod);
    let attrs = &pod["spec"]["volumes"][0]["csi"]["volumeAttributes"];
    assert_eq!(
        attrs,
        &json!({"secretProviderClass": REDACTED, "region": "us-east-1", "clientToken": REDACTED})
    );
    assert_eq!(
        pod["spec"]["volumes"][1]["flexVolume"]["options"],
        json!({"password": REDACTED, "size": "10Gi"})
    );
    assert_eq!(
        pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["message"],
        REDACTED
    );
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        "Back-off"
    );
    assert_eq!(r.other, 4);

    let mut secret = json!({"kind": "Secret", "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "t"}});
    s().sanitize(&mut secret);
    assert_eq!(
        secret,
        json!({"kind": "Secret", "data": {"password": REDACTED_BASE64}, "stringData": {"token": REDACTED}})
    );
    let mut cm = json!({"kind": "ConfigMap", "data": {"app.yaml": "db: postgres://u:p@h"}, "binaryData": {"b": "AAEC"}});
    s().sanitize(&mut cm);
    assert_eq!(
        cm,
        json!({"kind": "ConfigMap", "data": {"app.yaml": REDACTED}, "binaryData": {"b": REDACTED_BASE64}})
    );
}

#[test]
fn redacted_base64_is_redacted_in_base64() {
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(REDACTED),
        REDACTED_BASE64
    );
}

#[test]
fn non_objects_and_unknown_shapes_are_left_alone() {
    for mut v in [
        json!(null),
        json!("AKIAIOSFODNN7EXAMPLE"),
        json!([1, 2]),
        json!({"kind": "Service", "spec": {"ports": [{"port": 80}]}}),
    ] {
        let before = v.clone();
        let r = s().sanitize(&mut v);
        assert_eq!(v, before);
        assert_eq!(r.total(), 0);
    }
}

#[test]
fn sanitizing_twice_changes_nothing() {
    let mut obj = workload(
        "CronJob",
        json!({"containers": [{"name": "a", "image": "app:1",
            "env": [{"name": "DB_PASSWORD", "value": "x"}, {"name": "URL", "value": "https://u:p@h"},
                    {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}}],
            "envFrom": [{"prefix": "P_", "secretRef": {"name": "s"}}],
            "args": ["--token", "t", "-pX", "--password=y", "-p", "z", "--db=postgres://u:p@h"]}]}),
        json!({"note": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"}),
    );
    let sanitizer = s();
    let first = sanitizer.sanitize(&mut obj);
    assert!(first.total() > 0);
    let once = obj.clone();
    let second = sanitizer.sanitize(&mut obj);
    assert_eq!(obj, once);
    assert_eq!(second.total(), 0);
    assert_eq!(second.pod_specs, first.pod_specs);
}

#[test]
fn output_still_decodes_as_typed_objects() {
    use k8s_openapi::api::{apps::v1::Deployment, batch::v1::CronJob, core::v1::Pod};
    let env = json!([{"name": "DB_PASSWORD", "value": "x"},
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}},
        {"name": "F", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]);
    let pod_spec = json!({"containers": [{"name": "a", "image": "app:1", "env": env,
        "envFrom": [{"prefix": "P_", "configMapRef": {"name": "c"}}], "args": ["--token", "t"],
        "readinessProbe": {"httpGet": {"path": "/?token=x", "port": 80, "httpHeaders": [{"name": "Authorization", "value": "x"}]}}}]});
    for kind in ["Pod", "Deployment", "CronJob"] {
        let mut obj = workload(kind, pod_spec.clone(), json!({"a": "b"}));
        if kind != "Pod" {
            obj["apiVersion"] = json!(if kind == "CronJob" {
                "batch/v1"
            } else {
                "apps/v1"
            });
        }
        s().sanitize(&mut obj);
        let decoded = match kind {
            "Pod" => serde_json::from_value::<Pod>(obj).map(drop),
            "Deployment" => serde_json::from_value::<Deployment>(obj).map(drop),
            _ => serde_json::from_value::<CronJob>(obj).map(drop),
        };
        decoded.unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

#[test]
fn documents_json_object_list_stream_and_array() {
    let sanitizer = s();
    let pod = pod_with_env(json!([{"name": "TOKEN", "value": "t"}]));
    let list = json!({"kind": "List", "items": [pod.clone()]});
    let inputs = [
        serde_json::to_vec_pretty(&pod).unwrap(),
        serde_json::to_vec(&list).unwrap(),
        format!("{pod}\n{pod}  {pod}").into_bytes(),
        format!("[{pod},{pod}]").into_bytes(),
        format!("\u{feff}{pod}").into_bytes(),
    ];
    let expected_docs = [1, 1, 3, 2, 1];
    for (input, n) in inputs.iter().zip(expected_docs) {
        let (docs, r) = sanitize_documents_counted(input, &sanitizer).unwrap();
        assert_eq!(docs.len(), n);
        assert_eq!(r.env, n);
        assert!(!serde_json::to_string(&docs).unwrap().contains("\"t\""));
    }
    assert!(sanitize_documents(b"  \n", &sanitizer).unwrap().is_empty());
}

#[test]
fn documents_yaml_multi_document() {
    let input = b"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    image: nginx\n    env:\n    - name: DB_PASSWORD\n      value: hunter2\n---\n# only a comment\n---\nkind: List\nitems:\n- kind: Pod\n  spec:\n    containers:\n    - name: c\n      args: [\"--token\", \"abc\"]\n";
    let docs = sanitize_documents(input, &s()).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(
        docs[0]["spec"]["containers"][0]["env"][0]["value"],
        REDACTED
    );
    assert_eq!(
        docs[1]["items"][0]["spec"]["containers"][0]["args"][1],
        REDACTED
    );
    // YAML flow syntax that merely starts like JSON.
    let docs = sanitize_documents(
        b"{kind: Pod, spec: {containers: [{name: a, env: [{name: TOKEN, value: t}]}]}}",
        &s(),
    )
    .unwrap();
    assert_eq!(
        docs[0]["spec"]["containers"][0]["env"][0]["value"],
        REDACTED
    );
}

#[test]
fn documents_errors() {
    let sanitizer = s();
    let cases: &[(&[u8], &str)] = &[
        (b"{\"kind\": \"Pod\",", "InvalidInput"),
        (b"\"just a string\"", "InvalidInput"),
        (b"kind: Pod\n  bad: indentation\n: x", "InvalidInput"),
        (b"[1, 2]", "InvalidInput"),
    ];
    for (input, category) in cases {
        let err = sanitize_documents(input, &sanitizer).unwrap_err();
        assert_eq!(err.category(), *category, "{err}");
    }
    let err = sanitize_documents(b"{\"kind\":\"Pod\"} 42", &sanitizer).unwrap_err();
    assert!(
        matches!(
            err,
            SanitizeError::NotAnObject {
                index: 1,
                found: "a number"
            }
        ),
        "{err}"
    );
}

#[test]
fn write_documents_round_trips() {
    let sanitizer = s();
    let docs = sanitize_documents(
        format!(
            "{}\n{}",
            pod_with_env(json!([{"name": "A", "value": "1"}])),
            json!({"kind": "Pod", "spec": {}})
        )
        .as_bytes(),
        &sanitizer,
    )
    .unwrap();
    for json in [true, false] {
        let mut out = Vec::new();
        write_documents(&docs, json, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text.contains("---"), !json);
        assert_eq!(
            sanitize_documents(&out, &sanitizer).unwrap(),
            docs,
            "json={json}"
        );
    }
}

#[test]
fn redactions_add_up() {
    let mut a = Redactions {
        env: 1,
        args: 2,
        objects: 1,
        ..Default::default()
    };
    a += Redactions {
        annotations: 3,
        other: 1,
        pod_specs: 2,
        ..Default::default()
    };
    assert_eq!(a.total(), 7);
    assert_eq!(a.pod_specs, 2);
    assert_eq!(serde_json::to_value(a).unwrap()["valueFrom"], 0);
}
