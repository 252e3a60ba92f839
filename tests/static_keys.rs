//! The legacy identity source: long-lived keys read from a Kubernetes Secret
//! (--static-credentials-secret) are what the operator signs its AssumeRole with.

mod support;

use std::time::Duration;

use fake_apiserver::FakeApiServer;
use support::{Moto, Operator, kubectl_ok, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_uses_keys_from_the_named_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let moto = Moto::start(dir.path());
    moto.seed(&["--account-id", "111111111111", "--cluster-name", "prod"]);
    moto.clear_calls();
    kubectl_ok(
        &kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            support::repo().join("crds").to_str().unwrap(),
        ],
    );
    kubectl_ok(&kubeconfig, &["create", "namespace", "acme"]);
    kubectl_ok(&kubeconfig, &["create", "namespace", "crossguard"]);
    kubectl_ok(
        &kubeconfig,
        &[
            "create",
            "secret",
            "generic",
            "operator-keys",
            "-n",
            "crossguard",
            "--from-literal=AWS_ACCESS_KEY_ID=AKIASTATICKEYTEST001",
            "--from-literal=AWS_SECRET_ACCESS_KEY=staticSecretForTheLegacyPathTest0000000",
        ],
    );
    kubectl_ok(
        &kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            support::repo()
                .join("examples/customeraccount.yaml")
                .to_str()
                .unwrap(),
        ],
    );
    support::set_example_role(&kubeconfig);
    let mut operator = Operator::start(
        dir.path(),
        &kubeconfig,
        &moto.url,
        &[
            (
                "CROSSGUARD_STATIC_CREDENTIALS_SECRET",
                "crossguard/operator-keys",
            ),
            // The environment's keys must NOT be what is used.
            ("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY01"),
        ],
    );
    wait_for(
        "AssumeRole signed with the Secret's key",
        Duration::from_secs(60),
        || async {
            moto.calls()
                .iter()
                .find(|c| c["action"] == "AssumeRole")
                .map(|c| c["access_key_id"].clone())
        },
    )
    .await
    .as_str()
    .filter(|k| *k == "AKIASTATICKEYTEST001")
    .expect("the AssumeRole was signed with the key from the Secret");
    assert!(
        operator
            .log_text()
            .contains("prefer IRSA or EKS Pod Identity"),
        "the less safe option is flagged"
    );
    operator.stop();
}

/// The operator's own long-lived key is watched on the same ladder as customers' keys:
/// an 85-day-old key is warned about in the log and exported as a metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_warns_about_its_own_ageing_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let moto = Moto::start(dir.path());
    // The operator's IAM user lives in the operator's own account.
    let own = ["--account-id", "123456789012"];
    moto.customer_change(&[&own[..], &["iam-user", "crossguard-legacy"]].concat());
    let key = moto
        .customer_change(&[&own[..], &["access-key", "crossguard-legacy", "85"]].concat())
        .trim()
        .to_string();
    kubectl_ok(
        &kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            support::repo().join("crds").to_str().unwrap(),
        ],
    );
    kubectl_ok(&kubeconfig, &["create", "namespace", "crossguard"]);
    kubectl_ok(
        &kubeconfig,
        &[
            "create",
            "secret",
            "generic",
            "operator-keys",
            "-n",
            "crossguard",
            &format!("--from-literal=AWS_ACCESS_KEY_ID={key}"),
            "--from-literal=AWS_SECRET_ACCESS_KEY=moto-does-not-check-this-secret-0000000",
        ],
    );
    let operator = Operator::start(
        dir.path(),
        &kubeconfig,
        &moto.url,
        &[(
            "CROSSGUARD_STATIC_CREDENTIALS_SECRET",
            "crossguard/operator-keys",
        )],
    );
    let line = wait_for("the key-age warning", Duration::from_secs(60), || async {
        operator
            .log_text()
            .lines()
            .find(|l| l.contains("the operator's own access key must be rotated by day 91"))
            .map(str::to_string)
    })
    .await;
    assert!(
        line.contains("WARN") && line.contains("age_days=85"),
        "{line}"
    );
    let metrics = support::http_get(&operator.http, "/metrics");
    assert!(
        metrics.contains("crossguard_operator_access_key_age_days 85"),
        "{metrics}"
    );
}
