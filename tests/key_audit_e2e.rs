//! The access-key audit and the role-posture check end to end: the real operator binary
//! against the fake API server, moto (IAM users with back-dated keys) and receiver.py
//! standing in for Slack, driven with kubectl. Also least privilege for the key-audit
//! template: what the operator called equals what `--key-audit-enforce` grants.

mod support;

use std::time::Duration;

use kube::api::Api;
use serde_json::{Value, json};

use crossguard::api::CustomerAccount;
use support::{Env, Receiver, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);
const OPERATOR: &str = "arn:aws:iam::123456789012:role/crossguard-operator";
const BOT_TOKEN: &str = "xoxb-CANARY-e2e-token-1111111111";

fn condition(a: &CustomerAccount, type_: &str) -> Option<(String, String, String)> {
    let c = a
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((
        format!("{:?}", c.status),
        c.reason.clone(),
        c.message.clone(),
    ))
}

fn keys(env: &Env) -> Value {
    serde_json::from_str(&env.moto.customer_change(&["keys"])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_ladder_disable_new_key_and_role_posture_against_moto() {
    let env = Env::start().await;
    let receiver = Receiver::start(env.dir.path());
    let moto = &env.moto;
    moto.customer_change(&[
        "iam-user",
        "alice",
        "type=engineer",
        "slack-id=U0ALICE",
        "full-name=Alice Doe",
        "crossguard.dev/managed=true",
    ]);
    let alice = moto
        .customer_change(&["access-key", "alice", "81"])
        .trim()
        .to_string();
    moto.customer_change(&[
        "iam-user",
        "bob",
        "slack-id=U0BOB",
        "crossguard.dev/managed=true",
    ]);
    let bob = moto
        .customer_change(&["access-key", "bob", "95"])
        .trim()
        .to_string();
    moto.customer_change(&["iam-user", "carol"]);
    let carol = moto
        .customer_change(&["access-key", "carol", "120"])
        .trim()
        .to_string();

    env.apply_examples();
    env.kubectl(&[
        "create",
        "secret",
        "generic",
        "key-audit-delivery",
        "-n",
        "acme",
        &format!("--from-literal=slack-bot-token={BOT_TOKEN}"),
        &format!(
            "--from-literal=webhook-url={}/hooks/generic/CANARY",
            receiver.url
        ),
    ]);
    let audit = json!({"spec": {"accessKeyAudit": {"enabled": true, "enforce": true,
        "firstScanGraceDays": 0,
        "notifications": {"secretName": "key-audit-delivery", "slackChannel": "C0TEAM"}}}});
    support::merge_patch_acme(
        &env.kubeconfig,
        "customeraccount",
        "acme",
        &audit.to_string(),
    );
    let operator = env.operator(&[
        ("CROSSGUARD_SLACK_API_URL", &format!("{}/api", receiver.url)),
        ("CROSSGUARD_OPERATOR_PRINCIPAL", OPERATOR),
    ]);
    let client = env.client().await;
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), "acme");

    // The first scan: alice warned, bob's key disabled, carol's reported (not tagged).
    let account = wait_for("KeyAudit Scanned with nothing pending", TIMEOUT, || async {
        let a = accounts.get("acme").await.ok()?;
        let scanned = condition(&a, "KeyAudit").is_some_and(|c| c.1 == "Scanned");
        let pending = a.status.as_ref()?.key_audit.as_ref()?.pending_notifications;
        (scanned && pending == 0).then_some(a)
    })
    .await;
    let k = keys(&env);
    assert_eq!(k["bob"][&bob], "Inactive", "{k}");
    assert_eq!(k["alice"][&alice], "Active");
    assert_eq!(
        k["carol"][&carol], "Active",
        "carol carries no management tag"
    );
    let ka = account.status.as_ref().unwrap().key_audit.clone().unwrap();
    assert_eq!(
        (ka.keys, ka.expiring, ka.disabled, ka.overdue),
        (3, 1, 1, 1),
        "{ka:?}"
    );
    let messages = receiver.messages();
    let to = |channel: &str, needle: &str| {
        messages
            .iter()
            .filter(|m| {
                m["channel"] == channel && m["text"].as_str().unwrap_or_default().contains(needle)
            })
            .count()
    };
    assert_eq!(to("U0ALICE", "81 days old"), 1, "{messages:#?}");
    assert_eq!(to("U0BOB", "has been disabled"), 1);
    assert_eq!(to("C0TEAM", &carol), 1);
    assert!(messages.iter().any(|m| m["path"] == "/hooks/generic"));

    // The seeded role trusts the operator's whole account: the posture says so.
    let (status, reason, message) = condition(&account, "RolePosture").expect("RolePosture");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "TrustTooBroad"),
        "{message}"
    );
    assert!(message.contains("onboarding-template"), "{message}");

    // The customer deploys the printed template (key audit with enforcement), a new key
    // appears, bob's key is switched back on, and someone asks for a check now.
    let external_id = account
        .status
        .as_ref()
        .unwrap()
        .external_id
        .clone()
        .unwrap();
    let template = support::onboarding_template(&[
        "--account-id",
        "111111111111",
        "--mode",
        "read-only",
        "--cluster",
        "prod",
        "--operator-principal",
        OPERATOR,
        "--external-id",
        &external_id,
        "--key-audit-enforce",
    ]);
    support::customer_deploys(moto, env.dir.path(), &template);
    let fresh = moto
        .customer_change(&["access-key", "alice"])
        .trim()
        .to_string();
    moto.customer_change(&["key-status", "bob", &bob, "Active"]);
    env.kubectl(&[
        "annotate",
        "customeraccount",
        "acme",
        "-n",
        "acme",
        "--overwrite",
        "crossguard.dev/check-requested-at=now",
    ]);
    let account = wait_for("the requested check", TIMEOUT, || async {
        let a = accounts.get("acme").await.ok()?;
        let s = a.status.as_ref()?;
        (s.last_handled_check_request.as_deref() == Some("now")
            && s.key_audit.as_ref()?.pending_notifications == 0)
            .then_some(a)
    })
    .await;
    let (status, reason, message) = condition(&account, "RolePosture").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "AsRequested"),
        "{message}"
    );
    assert_eq!(
        keys(&env)["bob"][&bob],
        "Inactive",
        "re-enabled, disabled again"
    );
    let messages = receiver.messages();
    let count = |channel: &str, needle: &str| {
        messages
            .iter()
            .filter(|m| {
                m["channel"] == channel && m["text"].as_str().unwrap_or_default().contains(needle)
            })
            .count()
    };
    assert_eq!(count("U0ALICE", "was this you?"), 1, "{messages:#?}");
    assert!(count("U0ALICE", &fresh) >= 1);
    assert_eq!(count("U0BOB", "is active again"), 1);
    assert_eq!(count("U0ALICE", "81 days old"), 1, "never repeated");

    // Least privilege both ways: the actions called with the customer's session equal the
    // actions this template grants (the ManagedCluster of examples/ made the EKS, Auto
    // Scaling and EC2 reads).
    let called = support::operator_actions(moto);
    let granted = support::granted_actions(&template);
    assert_eq!(
        called, granted,
        "actions called vs granted by --key-audit-enforce"
    );
    let updates: Vec<Value> = moto
        .operator_calls()
        .into_iter()
        .filter(|c| c["action"] == "UpdateAccessKey")
        .collect();
    assert_eq!(updates.len(), 2, "bob's key, twice: {updates:#?}");

    // The bot token and webhook URL are nowhere the customer or an operator looks.
    let everything = [
        env.kubectl(&["get", "customeraccount", "acme", "-n", "acme", "-o", "yaml"]),
        env.kubectl(&["get", "events", "-n", "acme", "-o", "yaml"]),
        operator.log_text(),
        support::http_get(&operator.http, "/metrics"),
        {
            let mut files = Vec::new();
            support::files_under(&env.dir.path().join("store"), &mut files);
            files
                .iter()
                // Sealed objects: search what they decrypt to.
                .map(|f| support::read_stored(f))
                .collect()
        },
    ];
    for text in &everything {
        assert!(
            !text.contains("CANARY") && !text.contains("xoxb-"),
            "a delivery secret leaked: {text}"
        );
    }
    let printed = env.kubectl(&["get", "customeraccounts", "-n", "acme"]);
    assert!(printed.contains("KEYS"), "{printed}");
}
