//! End to end, the onboarding order of docs/onboarding-flow.md with the real binary, the
//! fake API server, moto and kubectl: the CustomerAccount applied without a role gets its
//! ExternalId and waits (AwaitingCustomerRole) with no AWS call, its ManagedCluster waits
//! too; `crossguard onboarding-complete` refuses bad stack outputs with a clear message and
//! a non-zero exit, then sets the role from good ones, and both become Ready.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kube::Api;

use crossguard::api::{CustomerAccount, ManagedCluster};
use support::{kubectl_ok, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

/// `crossguard onboarding-complete ARGS` with the management cluster's kubeconfig; returns
/// whether it succeeded, stdout and stderr.
fn onboarding_complete(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .arg("onboarding-complete")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run crossguard onboarding-complete");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ready_reason(conditions: Option<&Vec<crossguard::api::Condition>>) -> Option<(bool, String)> {
    let c = conditions?.iter().find(|c| c.type_ == "Ready")?;
    Some((c.is_true(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_first_then_role_from_stack_outputs() {
    let env = support::Env::start().await;
    let repo = support::repo();
    env.kubectl(&[
        "apply",
        "--validate=false",
        "-f",
        repo.join("crds").to_str().unwrap(),
    ]);
    env.kubectl(&["create", "namespace", "acme"]);
    // examples/ as they are: the CustomerAccount has no roleArn, and the schema (its CEL
    // rule included) accepts that.
    env.kubectl(&[
        "apply",
        "--validate=false",
        "-f",
        repo.join("examples").to_str().unwrap(),
    ]);
    support::patch_acme_prod(
        &env.kubeconfig,
        &format!(
            r#"{{"spec":{{"apiEndpoint":{{"url":"{}"}}}}}}"#,
            env.customer.url()
        ),
    );
    let _operator = env.operator(&[(
        "CROSSGUARD_OPERATOR_PRINCIPAL",
        "arn:aws:iam::123456789012:role/crossguard-operator",
    )]);
    let client = env.client().await;
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), "acme");
    let clusters: Api<ManagedCluster> = Api::namespaced(client.clone(), "acme");

    // 1-2. The ExternalId is issued; the account and its cluster wait, saying what to do.
    let (external_id, message) = wait_for("the account to await its role", TIMEOUT, || async {
        let ca = accounts.get("acme").await.ok()?;
        let status = ca.status?;
        let c = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (c.reason == "AwaitingCustomerRole" && !c.is_true())
            .then(|| (status.external_id.clone(), c.message.clone()))
    })
    .await;
    let external_id = external_id.expect("status.externalId issued before any role");
    assert!(
        message.contains("--operator-principal arn:aws:iam::123456789012:role/crossguard-operator")
            && message.contains("crossguard onboarding-complete customeraccount/acme -n acme")
            && message.contains("kubectl patch customeraccount acme -n acme --type merge"),
        "{message}"
    );
    wait_for(
        "the cluster to wait for the account's role",
        TIMEOUT,
        || async {
            let mc = clusters.get("acme-prod").await.ok()?;
            (ready_reason(mc.status.as_ref().map(|s| &s.conditions))?
                == (false, "AwaitingCustomerRole".to_string()))
                .then_some(())
        },
    )
    .await;
    // `kubectl get ca` shows why.
    let table = kubectl_ok(&env.kubeconfig, &["get", "ca", "-n", "acme"]);
    assert!(
        table.contains("REASON") && table.contains("AwaitingCustomerRole"),
        "{table}"
    );
    // No AWS call at all was made by the operator (moto's own record of every call).
    let calls = env.moto.operator_calls();
    assert!(
        calls.is_empty(),
        "calls made while awaiting the role: {calls:#?}"
    );

    // 3. The customer deploys the role with that ExternalId (seed.py plays the stack)...
    let seeded = env.moto.seed(&[
        "--account-id",
        "111111111111",
        "--cluster-name",
        "prod",
        "--external-id",
        &external_id,
    ]);
    let role_arn = seeded["role_arn"].as_str().expect("role_arn").to_string();
    let dir = env.dir.path();
    let write = |name: &str, json: serde_json::Value| {
        let path = dir.join(name);
        std::fs::write(&path, json.to_string()).unwrap();
        path.to_str().unwrap().to_string()
    };
    // ...and hands back outputs. Bad ones are refused, clearly, and nothing is set.
    let cases = [
        (
            write(
                "no-role.json",
                serde_json::json!([{"OutputKey": "BucketName", "OutputValue": "b"}]),
            ),
            "have no RoleArn output (Terraform: role_arn) with a value (found: BucketName)",
        ),
        (
            write(
                "other-account.json",
                serde_json::json!([{"OutputKey": "RoleArn",
                    "OutputValue": "arn:aws:iam::222222222222:role/crossguard-access"}]),
            ),
            "is in account 222222222222, but CustomerAccount acme is account 111111111111",
        ),
        (
            write(
                "not-a-role.json",
                serde_json::json!({"RoleArn": {"value": "arn:aws:iam::111111111111:user/bob",
                    "type": "string", "sensitive": false}}),
            ),
            "is not an IAM role ARN",
        ),
    ];
    for (file, expected) in &cases {
        let (ok, _, err) = onboarding_complete(
            &env.kubeconfig,
            &[
                "customeraccount/acme",
                "-n",
                "acme",
                "--stack-outputs",
                file,
            ],
        );
        assert!(!ok, "{file} must be refused");
        assert!(err.contains(expected), "{file}: {err}");
    }
    let (ok, _, err) = onboarding_complete(
        &env.kubeconfig,
        &["managedcluster/acme-prod", "--role-arn", &role_arn],
    );
    assert!(!ok && err.contains("is not a CustomerAccount"), "{err}");
    let account = accounts.get("acme").await.unwrap();
    assert_eq!(account.spec.role_arn, None, "nothing set by a refused run");

    // The real outputs: the role ARN is set, the account verified, the cluster observed.
    let outputs = write(
        "outputs.json",
        serde_json::json!([
            {"OutputKey": "ExternalId", "OutputValue": external_id},
            {"OutputKey": "RoleArn", "OutputValue": role_arn},
        ]),
    );
    let (ok, out, err) = onboarding_complete(
        &env.kubeconfig,
        &[
            "customeraccount/acme",
            "-n",
            "acme",
            "--stack-outputs",
            &outputs,
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("spec.roleArn set to {role_arn}")),
        "{out}"
    );
    wait_for("the account to be Ready", TIMEOUT, || async {
        let ca = accounts.get("acme").await.ok()?;
        ready_reason(ca.status.as_ref().map(|s| &s.conditions))?
            .0
            .then_some(())
    })
    .await;
    let account = accounts.get("acme").await.unwrap();
    assert_eq!(account.spec.role_arn.as_deref(), Some(role_arn.as_str()));
    assert_eq!(
        account.status.unwrap().external_id.as_deref(),
        Some(external_id.as_str()),
        "the ExternalId the customer deployed with"
    );
    wait_for("the cluster to be Ready", TIMEOUT, || async {
        let mc = clusters.get("acme-prod").await.ok()?;
        ready_reason(mc.status.as_ref().map(|s| &s.conditions))?
            .0
            .then_some(())
    })
    .await;
    assert!(
        env.moto
            .operator_calls()
            .iter()
            .any(|c| c["action"] == "AssumeRole"),
        "verified with AssumeRole once the role was set"
    );
}
