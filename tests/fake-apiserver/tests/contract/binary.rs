//! The `fake-apiserver` binary: announces its URL, writes a kubeconfig and a
//! request log, and exits cleanly on SIGTERM.

use std::process::Stdio;

use k8s_openapi::api::core::v1::Namespace;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::SECS;

#[tokio::test]
async fn binary_serves_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let log = dir.path().join("requests.jsonl");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fake-apiserver"))
        .args(["--listen", "127.0.0.1:0", "--namespace", "team-a"])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--request-log")
        .arg(&log)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(SECS, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = line.strip_prefix("listening on ").expect(&line);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.cluster_url.to_string().trim_end_matches('/'), url);
    assert_eq!(config.default_namespace, "team-a");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_from(config).unwrap();
    let ns: kube::Api<Namespace> = kube::Api::all(client);
    ns.get("kube-system").await.unwrap();

    let logged = std::fs::read_to_string(&log).unwrap();
    let entry: serde_json::Value = serde_json::from_str(logged.lines().last().unwrap()).unwrap();
    assert_eq!(entry["path"], "/api/v1/namespaces/kube-system");
    assert_eq!(entry["status"], 200);
    assert_eq!(
        entry["authorized"], true,
        "kubeconfig carries a dummy token"
    );

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(SECS, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
