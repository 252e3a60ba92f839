//! Never leaks: the emulator hands out unique marker strings as every session's secret key
//! and token; after full reconciles (including failures and retries) at trace log level,
//! the markers must appear nowhere: not in logs, statuses, Events, metrics or the store.
//! The run includes an ExternalId rotation and an automated scale-in.

mod support;

use std::time::Duration;

use kube::Api;
use serde_json::Value;
use support::{http_get, http_request, kubectl_ok, wait_for};

const SECRET: &str = "CANARYSECRETd3f9a1";
const TOKEN: &str = "CANARYTOKENb7c2e4";

fn ready(v: &Value) -> Option<bool> {
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_credentials_appear_nowhere() {
    let env = support::Env::start().await;
    let (moto, kubeconfig) = (&env.moto, &env.kubeconfig);
    let body = format!(r#"{{"secret_access_key":"{SECRET}","session_token":"{TOKEN}"}}"#);
    http_request(&moto.url, "POST", "/_crossguard/canary", &body);
    // Failures on the way: a throttled AssumeRole and two failed nodegroup reads.
    http_request(
        &moto.url,
        "POST",
        "/_crossguard/faults",
        r#"{"action":"AssumeRole","status":400,"code":"Throttling","count":1}"#,
    );
    http_request(
        &moto.url,
        "POST",
        "/_crossguard/faults",
        r#"{"action":"DescribeNodegroup","status":503,"code":"ServiceUnavailable","count":2}"#,
    );

    env.apply_examples();
    let mut operator = env.operator(&[("RUST_LOG", "trace")]);

    let client = env.client().await;
    let clusters: Api<crossguard::api::ManagedCluster> = Api::namespaced(client.clone(), "acme");
    wait_for(
        "acme-prod Ready after the injected failures",
        Duration::from_secs(120),
        || async {
            let c = clusters.get("acme-prod").await.ok()?;
            let v = serde_json::to_value(&c).ok()?;
            ready(&v).filter(|r| *r)
        },
    )
    .await;
    // Rotate the ExternalId too: a new session (and a new canary) mid-run.
    let get = |path: &str| {
        kubectl_ok(
            kubeconfig,
            &[
                "get",
                "customeraccount",
                "acme",
                "-n",
                "acme",
                "-o",
                &format!("jsonpath={path}"),
            ],
        )
    };
    let before = get("{.status.externalId}");
    kubectl_ok(
        kubeconfig,
        &[
            "annotate",
            "customeraccount",
            "acme",
            "-n",
            "acme",
            "crossguard.dev/rotate-external-id=1",
        ],
    );
    let issued = wait_for(
        "a second session after rotation",
        Duration::from_secs(60),
        || async {
            let v: Value =
                serde_json::from_str(&http_get(&moto.url, "/_crossguard/canary")).ok()?;
            let n = v["issued"].as_u64()?;
            (n >= 2).then_some(n)
        },
    )
    .await;
    assert!(issued >= 2, "the canary must actually have been handed out");
    let after = wait_for(
        "status shows the rotated ExternalId",
        Duration::from_secs(30),
        || async {
            let now = get("{.status.externalId}");
            (now != before && now.len() >= 32).then_some(now)
        },
    )
    .await;
    let events = kubectl_ok(kubeconfig, &["get", "events", "-n", "acme", "-o", "json"]);
    assert!(
        events.contains("ExternalIdRotated") && events.contains(&after),
        "the rotation Event names the new value"
    );
    // Automation too: a guarded scale-in (drain, evictions, a mutating AWS call, intents in
    // status, Events per call, guard decisions in the audit log).
    env.automate(serde_json::json!({"dryRun": false}));
    wait_for(
        "a node removed by automation",
        Duration::from_secs(90),
        || async {
            let c = clusters.get("acme-prod").await.ok()?;
            c.status?
                .recent_actions
                .iter()
                .any(|a| a.outcome == "Succeeded")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Everything a human or a machine could read.
    let mut haystacks: Vec<(String, String)> = Vec::new();
    haystacks.push(("operator log".into(), operator.log_text()));
    haystacks.push(("metrics".into(), http_get(&operator.http, "/metrics")));
    for kind in ["customeraccounts", "managedclusters", "events", "secrets"] {
        let out = kubectl_ok(kubeconfig, &["get", kind, "-A", "-o", "json"]);
        haystacks.push((format!("kubectl get {kind}"), out));
    }
    haystacks.push((
        "kubectl describe".into(),
        kubectl_ok(
            kubeconfig,
            &["describe", "customeraccounts,managedclusters", "-n", "acme"],
        ),
    ));
    let mut stored = Vec::new();
    support::files_under(&env.dir.path().join("store"), &mut stored);
    assert!(
        !stored.is_empty(),
        "the store must hold the audit log at least"
    );
    for path in stored {
        // The files hold ciphertext: search what they decrypt to.
        haystacks.push((path.display().to_string(), support::read_stored(&path)));
    }
    assert!(
        haystacks[0].1.contains("TRACE"),
        "the operator must really have logged at trace level"
    );
    for (name, text) in &haystacks {
        for marker in [SECRET, TOKEN, support::WORKLOAD_CANARY] {
            assert!(!text.contains(marker), "{marker} leaked into {name}");
        }
    }
    operator.stop();
}
