//! Drives the real kubectl binary against the fake: a user's journey with crossguard
//! (create namespace, apply CRD + CR, get, wait, describe, delete).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

use crate::common::*;

fn kubectl_path() -> Option<PathBuf> {
    let p = match std::env::var_os("KUBECTL") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/kubectl"),
    };
    p.is_file().then_some(p)
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.args(args)
            .arg("--request-timeout=20s")
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::time::timeout(Duration::from_secs(30), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("run kubectl");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed: {}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

const CR: &str = r#"apiVersion: example.dev/v1
kind: Widget
metadata:
  name: w1
  namespace: team-a
  finalizers: [example.dev/cleanup]
spec:
  size: 3
"#;

#[tokio::test]
async fn kubectl_user_journey() {
    let Some(bin) = kubectl_path() else {
        eprintln!("SKIPPED kubectl_user_journey: no kubectl at $KUBECTL or .tools/bin/kubectl");
        return;
    };
    let ctx = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    ctx.server.write_kubeconfig(&kubeconfig).unwrap();
    let k = Kubectl { bin, kubeconfig };

    // Typed clientset: this POST is protobuf.
    assert!(
        k.ok(&["create", "namespace", "team-a"])
            .await
            .contains("created")
    );
    let crd_file = dir.path().join("crd.json");
    std::fs::write(&crd_file, widget_crd().to_string()).unwrap();
    let cr_file = dir.path().join("cr.yaml");
    std::fs::write(&cr_file, CR).unwrap();
    k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        crd_file.to_str().unwrap(),
    ])
    .await;
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.dev",
        "--timeout=10s",
    ])
    .await;
    k.ok(&["apply", "--validate=false", "-f", cr_file.to_str().unwrap()])
        .await;
    // Re-applying is accepted (client-side apply computes a merge patch).
    k.ok(&["apply", "--validate=false", "-f", cr_file.to_str().unwrap()])
        .await;

    let table = k.ok(&["get", "widgets", "-n", "team-a"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "READY", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["w1", "3"], "{table}");
    let short = k.ok(&["get", "wd", "-A"]).await;
    assert!(short.starts_with("NAMESPACE"), "{short}");
    let as_json: serde_json::Value = serde_json::from_str(
        &k.ok(&["get", "widget", "w1", "-n", "team-a", "-o", "json"])
            .await,
    )
    .unwrap();
    assert_eq!(as_json["spec"]["color"], "red");
    let as_yaml = k
        .ok(&["get", "widget", "w1", "-n", "team-a", "-o", "yaml"])
        .await;
    assert!(as_yaml.contains("size: 3"));

    // kubectl wait returns once a status patch makes Ready true.
    let wait = k
        .command(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "-n",
            "team-a",
            "--timeout=20s",
        ])
        .output();
    let wait = tokio::spawn(wait);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!wait.is_finished(), "wait must block until Ready");
    let patched = ctx
        .patch(
            "/apis/example.dev/v1/namespaces/team-a/widgets/w1/status",
            MERGE,
            r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Reconciled","message":"ok"}]}}"#,
        )
        .await;
    assert_eq!(patched.status, 200);
    let out = tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));

    // An events.k8s.io/v1 Event (kube-runtime Recorder) shows in describe.
    let uid = as_json["metadata"]["uid"].as_str().unwrap().to_string();
    let reference: ObjectReference = serde_json::from_value(json!({
        "apiVersion": "example.dev/v1", "kind": "Widget", "name": "w1",
        "namespace": "team-a", "uid": uid}))
    .unwrap();
    Recorder::new(
        ctx.client.clone(),
        Reporter {
            controller: "crossguard".into(),
            instance: None,
        },
    )
    .publish(
        &Event {
            type_: EventType::Normal,
            reason: "Reconciled".into(),
            note: Some("widget is ready".into()),
            action: "Reconcile".into(),
            secondary: None,
        },
        &reference,
    )
    .await
    .unwrap();
    let described = k.ok(&["describe", "widget", "w1", "-n", "team-a"]).await;
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert!(events.contains("Reconciled"), "{described}");
    assert!(events.contains("widget is ready"), "{described}");
    assert!(events.contains("crossguard"), "{described}");
    let ready_row = k
        .ok(&["get", "widgets", "-n", "team-a", "--no-headers"])
        .await;
    assert!(ready_row.contains("True"), "{ready_row}");

    // kubectl delete waits for the finalizer to go.
    let delete = tokio::spawn(
        k.command(&["delete", "widget", "w1", "-n", "team-a", "--timeout=20s"])
            .output(),
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!delete.is_finished(), "delete must wait for finalizers");
    let obj = ctx
        .server
        .get_object("example.dev/v1", "widgets", Some("team-a"), "w1")
        .expect("still there while finalizing");
    assert!(obj["metadata"]["deletionTimestamp"].is_string());
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "-n",
        "team-a",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    let out = tokio::time::timeout(Duration::from_secs(20), delete)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = k.run(&["get", "widget", "w1", "-n", "team-a"]).await;
    assert!(!gone.ok);
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);

    let ns = k.ok(&["get", "ns"]).await;
    assert!(ns.contains("team-a") && ns.contains("Active"), "{ns}");
    let reqs = ctx.server.requests();
    assert!(reqs.iter().all(|r| r.status < 500));
    assert!(
        reqs.iter().any(|r| r.method == "POST"
            && r.path == "/api/v1/namespaces"
            && r.content_type.as_deref() == Some("application/vnd.kubernetes.protobuf")
            && r.status == 201),
        "kubectl create namespace sends protobuf and it is understood"
    );
    assert!(reqs.iter().all(|r| {
        r.user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("kubectl/") || ua.starts_with("fake-apiserver"))
    }));
}
