//! Faults of the controller runtime, as an SRE would meet them with the real binary (against
//! the fake API server and the AWS emulator): a stored object this version cannot read must
//! not stall the other tenants, `/readyz` must mean the watches are established, and a
//! signal stops the operator within seconds even when the API server cannot be reached.

mod support;

use std::time::{Duration, Instant};

use kube::api::Api;
use serde_json::{Value, json};

use crossguard::api::CustomerAccount;
use support::{http_status, kubectl_apply_yaml, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

/// A CustomerAccount in namespace acme for the emulator's seeded account and role.
fn account_yaml(name: &str) -> String {
    format!(
        r#"apiVersion: crossguard.dev/v1alpha1
kind: CustomerAccount
metadata: {{name: {name}, namespace: acme}}
spec:
  accountId: "111111111111"
  roleArn: arn:aws:iam::111111111111:role/crossguard-access
  regions: [us-east-1]
  sessionDuration: 1h
"#
    )
}

/// The account's ExternalId once its Ready condition is True.
async fn ready_external_id(accounts: &Api<CustomerAccount>, name: &str) -> String {
    wait_for(
        &format!("CustomerAccount {name} Ready"),
        TIMEOUT,
        || async {
            let status = accounts.get(name).await.ok()?.status?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            if ready.is_true() {
                status.external_id
            } else {
                None
            }
        },
    )
    .await
}

/// The Ready condition of a stored object, read raw (the typed API cannot read a bad one).
fn raw_ready(server: &fake_apiserver::FakeApiServer, name: &str) -> Option<Value> {
    let obj = server.get_object(
        "crossguard.dev/v1alpha1",
        "customeraccounts",
        Some("acme"),
        name,
    )?;
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_account_is_reported_on_itself_and_stalls_no_other_tenant() {
    let env = support::Env::start().await;
    let crds = support::repo().join("crds");
    env.kubectl(&["apply", "--validate=false", "-f", crds.to_str().unwrap()]);
    env.kubectl(&["create", "namespace", "acme"]);
    let dir = env.dir.path();
    for name in ["good-a", "good-b"] {
        kubectl_apply_yaml(
            dir,
            &env.kubeconfig,
            &format!("{name}.yaml"),
            &account_yaml(name),
        );
    }
    // What an older CRD or a write that bypassed the schema leaves in storage: an integer
    // where this version reads a duration string.
    env.server
        .seed(json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": "bad", "namespace": "acme", "uid": "seeded-bad", "generation": 1},
            "spec": {
                "accountId": "111111111111",
                "roleArn": "arn:aws:iam::111111111111:role/crossguard-access",
                "regions": ["us-east-1"],
                "sessionDuration": 30,
            },
        }))
        .expect("seed a malformed CustomerAccount");

    let operator = env.operator(&[]);
    let accounts: Api<CustomerAccount> = Api::namespaced(env.client().await, "acme");
    let mut external_ids = Vec::new();
    for name in ["good-a", "good-b"] {
        external_ids.push(ready_external_id(&accounts, name).await);
    }

    // The bad one says on itself what is wrong, naming the field.
    let ready = wait_for("Ready=False InvalidObject on bad", TIMEOUT, || async {
        raw_ready(&env.server, "bad").filter(|c| c["reason"] == "InvalidObject")
    })
    .await;
    assert_eq!(ready["status"], "False", "{ready}");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.sessionDuration") && message.contains("integer `30`"),
        "{message}"
    );
    wait_for("bad's status observes its generation", TIMEOUT, || async {
        let bad = env.server.get_object(
            "crossguard.dev/v1alpha1",
            "customeraccounts",
            Some("acme"),
            "bad",
        )?;
        (bad["status"]["observedGeneration"] == bad["metadata"]["generation"]).then_some(())
    })
    .await;
    // ...and in a Warning Event on it.
    let event = wait_for("InvalidObject Event on bad", TIMEOUT, || async {
        env.server
            .list_objects("events.k8s.io/v1", "events", Some("acme"))
            .into_iter()
            .find(|e| e["regarding"]["name"] == "bad" && e["reason"] == "InvalidObject")
    })
    .await;
    assert_eq!(event["type"], "Warning", "{event}");
    assert!(
        event["note"]
            .as_str()
            .is_some_and(|n| n.contains("spec.sessionDuration")),
        "{event}"
    );

    // A relist (every resourceVersion expired) reads the bad object again; a new account
    // created afterwards still becomes Ready.
    env.server.compact();
    kubectl_apply_yaml(dir, &env.kubeconfig, "good-c.yaml", &account_yaml("good-c"));
    external_ids.push(ready_external_id(&accounts, "good-c").await);
    let (code, body) = http_status(&operator.http, "/readyz");
    assert_eq!(code, 200, "{body}");

    // The log names the bad object and its field, and carries no tenant's ExternalId.
    let log = operator.log_text();
    let reported = log
        .lines()
        .filter(|l| {
            l.contains("WARN") && l.contains("name=bad") && l.contains("spec.sessionDuration")
        })
        .count();
    assert!(
        (1..=4).contains(&reported),
        "reported once per change of the object, not in a loop ({reported} times):\n{log}"
    );
    for id in &external_ids {
        assert!(
            !log.contains(id.as_str()),
            "an ExternalId reached the operator's log:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_crds_not_ready_and_says_how_to_fix_then_recovers_without_restart() {
    let env = support::Env::start().await;
    let operator = env.operator(&[]);

    // Blind: not ready, and the log says which CRDs are missing and how to install them.
    wait_for("missing-CRD errors in the log", TIMEOUT, || async {
        let log = operator.log_text();
        let both = [
            "customeraccounts.crossguard.dev",
            "managedclusters.crossguard.dev",
        ]
        .iter()
        .all(|crd| {
            log.lines().any(|l| {
                l.contains("ERROR") && l.contains(crd) && l.contains("kubectl apply -f crds/")
            })
        });
        both.then_some(())
    })
    .await;
    let (code, body) = http_status(&operator.http, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("customeraccounts.crossguard.dev"), "{body}");
    // kube-runtime retries the watch with backoff; the same failure is logged once, not
    // on every retry.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = operator.log_text();
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    assert_eq!(errors, 2, "one error per missing CRD:\n{log}");
    let (code, _) = http_status(&operator.http, "/readyz");
    assert_eq!(code, 503);

    // Installing the CRDs is enough: the operator becomes ready and reconciles, same process.
    let crds = support::repo().join("crds");
    env.kubectl(&["apply", "--validate=false", "-f", crds.to_str().unwrap()]);
    env.kubectl(&["create", "namespace", "acme"]);
    kubectl_apply_yaml(
        env.dir.path(),
        &env.kubeconfig,
        "acme.yaml",
        &account_yaml("acme"),
    );
    wait_for("/readyz 200 after installing the CRDs", TIMEOUT, || async {
        (http_status(&operator.http, "/readyz").0 == 200).then_some(())
    })
    .await;
    let accounts: Api<CustomerAccount> = Api::namespaced(env.client().await, "acme");
    ready_external_id(&accounts, "acme").await;
    let log = operator.log_text();
    assert_eq!(
        log.matches("controllers starting").count(),
        1,
        "one process did it all:\n{log}"
    );
}

/// A kubeconfig for an API server on `port` of loopback.
fn kubeconfig_for(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let config = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster:
    server: https://127.0.0.1:{port}
    insecure-skip-tls-verify: true
users:
- name: someone
  user:
    token: not-a-real-token
contexts:
- name: gone
  context: {{cluster: gone, user: someone}}
current-context: gone
"
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// The API server is down (nothing listens on its port): SIGTERM, as the kubelet sends
/// it, and SIGINT (Ctrl-C) each stop the operator within seconds instead of waiting for an
/// initial list that never completes, and the log names the server it could not reach.
#[test]
fn a_signal_stops_the_operator_promptly_when_the_api_server_is_unreachable() {
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens there: free_port released it.
        let port = support::free_port();
        let kubeconfig = kubeconfig_for(dir.path(), port);
        let mut operator =
            support::Operator::start(dir.path(), &kubeconfig, "http://127.0.0.1:1", &[]);
        let url = format!("https://127.0.0.1:{port}/");

        // The watches are failing before the signal comes.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !operator
            .log_text()
            .contains(&format!("cannot reach the Kubernetes API server {url}"))
        {
            assert!(
                Instant::now() < deadline,
                "the log does not name the unreachable API server {url}:\n{}",
                operator.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        let pid = libc::pid_t::try_from(operator.pid()).unwrap();
        // SAFETY: kill(2) with our own child's pid and a standard signal.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "sending {name}");
        let sent = Instant::now();
        let status = loop {
            if let Some(status) = operator.try_wait() {
                break status;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "still running 10 s after {name}:\n{}",
                operator.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = operator.log_text();
        assert!(status.success(), "{name}: exit {status}:\n{log}");
        assert!(log.contains(&format!("{name} received")), "{log}");
        assert!(log.contains("shut down"), "{log}");
    }
}

/// The API server goes away under a running leader (watches established, Lease held):
/// SIGTERM still stops the operator within seconds, with a clean exit, although neither
/// the running watches nor the Lease hand-over can reach the server, and the log names
/// the server it lost. 20 s is a hang detector (the bug was a wait of over 11 minutes),
/// not a performance bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_stops_the_operator_promptly_after_the_api_server_went_away() {
    let mut env = support::Env::start().await;
    env.apply_examples();
    let mut operator = env.operator(&[]);
    wait_for("the operator to be ready", TIMEOUT, || async {
        (http_status(&operator.http, "/readyz").0 == 200).then_some(())
    })
    .await;
    let url = env.server.url();
    let url = url.trim_end_matches('/');
    // Stop the management cluster's API server for good (a fresh one, never used, takes
    // its place in `env` so that the harness stays whole).
    let placeholder = fake_apiserver::FakeApiServer::start().await.unwrap();
    std::mem::replace(&mut env.server, placeholder)
        .shutdown()
        .await;
    wait_for("the log to name the lost API server", TIMEOUT, || async {
        operator
            .log_text()
            .lines()
            .any(|l| l.contains("cannot reach the Kubernetes API server") && l.contains(url))
            .then_some(())
    })
    .await;

    let pid = libc::pid_t::try_from(operator.pid()).unwrap();
    // SAFETY: kill(2) with our own child's pid and a standard signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = operator.try_wait() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM:\n{}",
            operator.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("stopped {:?} after SIGTERM", sent.elapsed());
    let log = operator.log_text();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    // Not a flood: the same unreachable-server error is logged at error level once per
    // distinct message, not on every retry.
    let errors = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("cannot reach the Kubernetes API server"))
        .count();
    assert!(errors <= 6, "{errors} error lines for one outage:\n{log}");
}
