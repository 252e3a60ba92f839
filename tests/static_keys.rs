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
