//! The confused-deputy defence against an emulator that enforces it: with moto's auth
//! enforcement on, a role whose trust policy requires an ExternalId refuses the wrong one,
//! and crossguard reports that as a trust-policy problem (AssumeRoleDenied).

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use crossguard::audit::{CallObserver, NoAudit};
use crossguard::aws::sdk::SdkFactory;
use crossguard::clock::SystemClock;
use crossguard::credentials::{Broker, SessionParams};
use crossguard::metrics::Metrics;
use support::{Moto, http_request, repo, trust, trust_update};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_external_id_is_denied_and_right_one_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let good = "good-external-id-0123456789abcdefghijkl";
    let setup = trust(&moto, &["setup", "--external-id", good]);
    http_request(
        &moto.url,
        "POST",
        "/_crossguard/enforce-auth",
        r#"{"after": 0}"#,
    );

    let user = &setup["crossguard-operator"];
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            user["access_key_id"].as_str().unwrap(),
            user["secret_access_key"].as_str().unwrap(),
            None,
            None,
            "tests",
        ))
        .load()
        .await;
    let metrics = Arc::new(Metrics::new());
    let broker = Broker::new(
        Arc::new(SdkFactory::from_config(config, metrics.clone())),
        Arc::new(SystemClock),
        metrics.clone(),
        "crossguard-test",
    );
    let observer: Arc<dyn CallObserver> = Arc::new(NoAudit);
    let params = |uid: &str, external_id: &str| SessionParams {
        uid: uid.into(),
        namespace: "ns".into(),
        name: "self".into(),
        account_id: "123456789012".into(),
        role_arn: setup["role_arn"].as_str().unwrap().into(),
        external_id: external_id.into(),
        duration: Duration::from_secs(900),
        region: "us-east-1".into(),
    };

    let denied = broker
        .session(
            &params("uid-wrong", "an-attacker-guessed-external-id-000000"),
            &observer,
        )
        .await;
    let err = denied.expect_err("a wrong ExternalId must be refused");
    assert_eq!(err.reason(), "AssumeRoleDenied", "{err}");
    assert!(!err.is_transient());

    let session = broker
        .session(&params("uid-right", good), &observer)
        .await
        .expect("the right ExternalId works");
    assert_eq!(session.identity.account, "123456789012");
    assert!(
        session
            .identity
            .arn
            .contains("assumed-role/crossguard-selfhosted/"),
        "{}",
        session.identity.arn
    );

    // The customer rotates: the old id stops working, the new one works.
    let rotated = "rotated-external-id-0123456789abcdefghij";
    trust_update(&moto, &setup, rotated);
    let old = broker.session(&params("uid-old", good), &observer).await;
    assert_eq!(
        old.expect_err("old id refused after rotation").reason(),
        "AssumeRoleDenied"
    );
    broker
        .session(&params("uid-new", rotated), &observer)
        .await
        .expect("rotated id accepted");
    let text = metrics.encode();
    assert!(
        text.contains(r#"crossguard_assume_role_calls_total{outcome="AssumeRoleDenied"} 2"#),
        "{text}"
    );
}

/// End to end: the operator's status tells the customer what to fix when the trust policy
/// does not carry crossguard's ExternalId, and turns Ready once it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_policy_problem_is_surfaced_and_cleared() {
    use fake_apiserver::FakeApiServer;
    use support::{Operator, kubectl_ok, wait_for};

    crossguard::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let moto = Moto::start(dir.path());
    // The role starts out trusting some other ExternalId than the one crossguard will generate.
    let setup = trust(
        &moto,
        &[
            "setup",
            "--external-id",
            "not-the-one-crossguard-generated-000",
        ],
    );
    http_request(
        &moto.url,
        "POST",
        "/_crossguard/enforce-auth",
        r#"{"after": 0}"#,
    );

    kubectl_ok(
        &kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            repo().join("crds").to_str().unwrap(),
        ],
    );
    kubectl_ok(&kubeconfig, &["create", "namespace", "self"]);
    let manifest = dir.path().join("account.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: crossguard.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: selfhosted, namespace: self}}\nspec:\n  accountId: \"123456789012\"\n  roleArn: {}\n  regions: [us-east-1]\n  sessionDuration: 15m\n",
            setup["role_arn"].as_str().unwrap()
        ),
    )
    .unwrap();
    kubectl_ok(
        &kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ],
    );
    let mut operator = Operator::start(
        dir.path(),
        &kubeconfig,
        &moto.url,
        &Moto::trusted_operator_env(&setup),
    );
    let get = |path: &str| {
        kubectl_ok(
            &kubeconfig,
            &[
                "get",
                "customeraccount",
                "selfhosted",
                "-n",
                "self",
                "-o",
                &format!("jsonpath={path}"),
            ],
        )
    };

    let message = wait_for("TrustPolicy=False", Duration::from_secs(60), || async {
        let status = get("{.status.conditions[?(@.type==\"TrustPolicy\")].status}");
        (status == "False").then(|| get("{.status.conditions[?(@.type==\"TrustPolicy\")].message}"))
    })
    .await;
    let external_id = get("{.status.externalId}");
    assert_eq!(
        get("{.status.conditions[?(@.type==\"Ready\")].reason}"),
        "AssumeRoleDenied"
    );
    assert!(
        message.contains("sts:ExternalId") && message.contains("status.externalId"),
        "{message}"
    );

    // The customer puts crossguard's ExternalId in the trust policy; a touch re-triggers.
    trust_update(&moto, &setup, &external_id);
    kubectl_ok(
        &kubeconfig,
        &[
            "annotate",
            "customeraccount",
            "selfhosted",
            "-n",
            "self",
            "example.com/touched=1",
        ],
    );
    wait_for(
        "Ready=True once the trust policy is fixed",
        Duration::from_secs(60),
        || async {
            (get("{.status.conditions[?(@.type==\"Ready\")].status}") == "True").then_some(())
        },
    )
    .await;
    assert_eq!(
        get("{.status.conditions[?(@.type==\"TrustPolicy\")].reason}"),
        "ExternalIdAccepted"
    );
    assert_eq!(get("{.status.verifiedIdentity.account}"), "123456789012");
    operator.stop();
}
