//! The access-key audit of a CustomerAccount, in process: the reconciler against the fake
//! API server, the stateful AWS fake (IAM users and keys, back-dated by creating them in
//! the past of the test's clock) and a local HTTP receiver standing in for Slack and a
//! generic webhook, with failures on demand. Time is the test's clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use crossguard::analysis::PriceTable;
use crossguard::api::CustomerAccount;
use crossguard::audit::AuditRecord;
use crossguard::aws::{AwsErrorKind, TAG_MANAGED};
use crossguard::controller::{Context, customer_account};
use crossguard::credentials::Broker;
use crossguard::keyaudit::notify::Sender;
use crossguard::metrics::Metrics;
use crossguard::store::{S3Options, Store};
use crossguard::testing::ManualClock;
use crossguard::testing::aws::FakeAws;
use fake_apiserver::FakeApiServer;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt, ResourceExt};
use serde_json::{Value, json};

const NS: &str = "acme";
const ACCOUNT_ID: &str = "111111111111";
const ROLE: &str = "arn:aws:iam::111111111111:role/crossguard-access";
const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;
const BOT_TOKEN: &str = "xoxb-CANARY-bot-token-0000000000";
const CANARY: &str = "CANARY";

// ---------------------------------------------------------------- the receiver

#[derive(Clone, Debug)]
struct Received {
    path: String,
    auth: Option<String>,
    body: Value,
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    /// Answers to give before the normal ones: (status, body, retry-after).
    scripted: VecDeque<(u16, String, Option<u64>)>,
    /// Answer every request with this until cleared.
    always: Option<(u16, String)>,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    fn texts(&self) -> Vec<(String, String)> {
        self.received()
            .into_iter()
            .map(|r| {
                let to = r.body["channel"].as_str().unwrap_or(&r.path).to_string();
                (to, r.body["text"].as_str().unwrap_or_default().to_string())
            })
            .collect()
    }

    fn script(&self, status: u16, body: &str, retry_after: Option<u64>, times: usize) {
        let mut st = self.state.lock().unwrap();
        for _ in 0..times {
            st.scripted
                .push_back((status, body.to_string(), retry_after));
        }
    }

    fn fail_always(&self, answer: Option<(u16, &str)>) {
        self.state.lock().unwrap().always = answer.map(|(s, b)| (s, b.to_string()));
    }
}

async fn answer(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut st = state.lock().unwrap();
    let forced = st
        .always
        .clone()
        .map(|(s, b)| (s, b, None))
        .or_else(|| st.scripted.pop_front());
    if let Some((status, body, retry_after)) = forced {
        let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return response;
    }
    st.received.push(Received {
        path: uri.path().to_string(),
        auth: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default().to_string()),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    });
    match uri.path() {
        "/api/chat.postMessage" => (StatusCode::OK, r#"{"ok":true,"ts":"1.2"}"#).into_response(),
        "/hooks/slack-CANARY" => (StatusCode::OK, "ok").into_response(),
        _ => (StatusCode::OK, "{}").into_response(),
    }
}

// ---------------------------------------------------------------- the world

struct World {
    _server: FakeApiServer,
    client: kube::Client,
    aws: Arc<FakeAws>,
    clock: Arc<ManualClock>,
    ctx: Arc<Context>,
    receiver: Receiver,
    store: Store,
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
}

fn ago(days: i64) -> Timestamp {
    Timestamp::from_second(NOW - days * DAY).unwrap()
}

async fn world() -> World {
    crossguard::install_crypto_provider();
    let server = FakeApiServer::start().await.unwrap();
    let client = kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &CustomerAccount::crd())
        .await
        .unwrap();
    server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .unwrap();
    let receiver = Receiver::start().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let secret: Secret = serde_json::from_value(json!({
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "key-audit-delivery"},
    "stringData": {
        "slack-bot-token": BOT_TOKEN,
        "webhook-url": format!("{}/hooks/generic-CANARY", receiver.url),
    }}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let clock = ManualClock::at(NOW);
    let aws = FakeAws::new(clock.clone());
    // alice: engineer, owned, managed, key 81 days old -> warned.
    aws.put_iam_user(
        ACCOUNT_ID,
        "alice",
        &[
            ("type", "engineer"),
            ("slack-id", "U0ALICE"),
            ("full-name", "Alice Doe"),
            (TAG_MANAGED, "true"),
        ],
    );
    aws.put_access_key(ACCOUNT_ID, "alice", "AKIAALICE00000000001", ago(81));
    // bob: owned, managed, key 95 days old -> disabled (grace 0 in these tests).
    aws.put_iam_user(
        ACCOUNT_ID,
        "bob",
        &[("slack-id", "U0BOB"), (TAG_MANAGED, "true")],
    );
    aws.put_access_key(ACCOUNT_ID, "bob", "AKIABOB0000000000001", ago(95));
    aws.put_access_key(ACCOUNT_ID, "bob", "AKIABOB0000000000002", ago(10));
    // carol: no tags at all, key 120 days old -> overdue, never disabled, unowned.
    aws.put_iam_user(ACCOUNT_ID, "carol", &[]);
    aws.put_access_key(ACCOUNT_ID, "carol", "AKIACAROL00000000001", ago(120));

    let metrics = Arc::new(Metrics::new());
    let broker = Arc::new(Broker::new(
        aws.clone(),
        clock.clone(),
        metrics.clone(),
        "crossguard-test",
    ));
    let store = Store::open("memory://", &S3Options::default()).unwrap();
    let ctx = context(&client, &broker, &metrics, &clock, &store, &receiver);
    World {
        _server: server,
        client,
        aws,
        clock,
        ctx,
        receiver,
        store,
        broker,
        metrics,
    }
}

/// A context as a (re)started operator builds it, over the same store.
fn context(
    client: &kube::Client,
    broker: &Arc<Broker>,
    metrics: &Arc<Metrics>,
    clock: &Arc<ManualClock>,
    store: &Store,
    receiver: &Receiver,
) -> Arc<Context> {
    let sender = Sender::new(&format!("{}/api", receiver.url), Duration::from_secs(5)).unwrap();
    Arc::new(
        Context::new(
            client.clone(),
            broker.clone(),
            metrics.clone(),
            clock.clone(),
            store.clone(),
            PriceTable::bundled(),
        )
        .with_notifier(sender),
    )
}

impl World {
    fn accounts(&self) -> Api<CustomerAccount> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Account `acme` with the key audit as `audit` (merged over enabled, enforce, grace 0,
    /// the delivery Secret and team channel), verified.
    async fn account(&self, audit: Value) {
        let mut settings = json!({"enabled": true, "enforce": true, "firstScanGraceDays": 0,
            "notifications": {"secretName": "key-audit-delivery", "slackChannel": "C0TEAM"}});
        for (k, v) in audit.as_object().unwrap() {
            settings[k] = v.clone();
        }
        let obj: CustomerAccount = serde_json::from_value(json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": "acme", "namespace": NS},
            "spec": {"accountId": ACCOUNT_ID, "roleArn": ROLE, "regions": ["us-east-1"],
                "accessKeyAudit": settings}}))
        .unwrap();
        self.accounts()
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
        self.reconcile().await; // finalizer
        self.reconcile().await; // ExternalId
        let external_id = self.status().await["externalId"]
            .as_str()
            .unwrap()
            .to_string();
        self.aws.add_role(ROLE, &external_id);
    }

    async fn reconcile(&self) -> Duration {
        let obj = self.accounts().get("acme").await.unwrap();
        let action = customer_account::reconcile(Arc::new(obj), self.ctx.clone())
            .await
            .expect("reconcile");
        // kube's Action has no getter; its Debug is `Action { requeue_after: Some(120s) }`.
        let text = format!("{action:?}");
        let secs: f64 = text
            .split("Some(")
            .nth(1)
            .and_then(|s| s.split("s)").next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(f64::MAX);
        Duration::from_secs_f64(secs.min(1e9))
    }

    async fn status(&self) -> Value {
        serde_json::to_value(self.accounts().get("acme").await.unwrap().status).unwrap()
    }

    async fn condition(&self, type_: &str) -> (String, String, String) {
        let s = self.status().await;
        let c = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap_or(Value::Null);
        (
            c["status"].as_str().unwrap_or_default().into(),
            c["reason"].as_str().unwrap_or_default().into(),
            c["message"].as_str().unwrap_or_default().into(),
        )
    }

    fn key_active(&self, id: &str) -> bool {
        self.aws.access_key(ACCOUNT_ID, id).unwrap().active
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(Duration::from_secs(secs as u64));
    }

    async fn request_check(&self, value: &str) {
        self.accounts()
            .patch(
                "acme",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                "crossguard.dev/check-requested-at": value}}})),
            )
            .await
            .unwrap();
    }

    /// Every object the store holds for the tenant, as text.
    async fn stored(&self) -> String {
        let uid = self.accounts().get("acme").await.unwrap().uid().unwrap();
        let mut out = String::new();
        for key in self.store.keys(&uid).await.unwrap() {
            out.push_str(&String::from_utf8_lossy(
                &self.store.get(&key).await.unwrap(),
            ));
        }
        out
    }

    async fn audit(&self) -> Vec<AuditRecord> {
        let uid = self.accounts().get("acme").await.unwrap().uid().unwrap();
        let mut out = Vec::new();
        for key in self.store.keys(&uid).await.unwrap() {
            if key.contains("/audit/") {
                let bytes = self.store.get(&key).await.unwrap();
                for line in String::from_utf8(bytes).unwrap().lines() {
                    out.push(serde_json::from_str(line).unwrap());
                }
            }
        }
        out
    }

    async fn events(&self) -> Vec<Value> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), NS);
        api.list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .map(|e| serde_json::to_value(e).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn count(texts: &[(String, String)], to: &str, needle: &str) -> usize {
    texts
        .iter()
        .filter(|(t, text)| t.contains(to) && text.contains(needle))
        .count()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn the_ladder_warns_disables_exactly_one_key_and_spares_the_untagged_user() {
    let w = world().await;
    w.account(json!({})).await;
    w.reconcile().await;

    assert!(
        !w.key_active("AKIABOB0000000000001"),
        "bob's 95-day key is disabled"
    );
    assert!(
        w.key_active("AKIABOB0000000000002"),
        "bob's other key is untouched"
    );
    assert!(w.key_active("AKIAALICE00000000001"));
    assert!(
        w.key_active("AKIACAROL00000000001"),
        "carol carries no management tag"
    );
    let updates = w.aws.calls_of("UpdateAccessKey");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].target, "bob/AKIABOB0000000000001 Inactive");

    let texts = w.receiver.texts();
    assert_eq!(count(&texts, "U0ALICE", "81 days old"), 1, "{texts:#?}");
    assert_eq!(count(&texts, "C0TEAM", "AKIAALICE00000000001"), 1);
    assert_eq!(count(&texts, "U0BOB", "has been disabled"), 1);
    assert_eq!(
        count(&texts, "C0TEAM", "unowned"),
        1,
        "carol's overdue key, to the team: {texts:#?}"
    );
    assert_eq!(
        count(&texts, "/hooks/generic", "unowned"),
        1,
        "and to the generic webhook"
    );
    assert_eq!(
        count(&texts, "U", "AKIACAROL"),
        0,
        "carol has no owner to message privately"
    );
    assert_eq!(count(&texts, "U0BOB", "2 active access keys"), 1);
    assert!(texts.iter().all(|(_, t)| !t.contains(CANARY)));
    let dm = w
        .receiver
        .received()
        .into_iter()
        .find(|r| r.path == "/api/chat.postMessage")
        .unwrap();
    assert_eq!(dm.auth.as_deref(), Some(&*format!("Bearer {BOT_TOKEN}")));
    assert!(
        w.receiver
            .received()
            .iter()
            .any(|r| r.path == "/hooks/generic-CANARY"
                && r.body["event"] == "AccessKeyDisabled"
                && r.body["accessKeyId"] == "AKIABOB0000000000001")
    );

    let s = w.status().await;
    let k = &s["keyAudit"];
    assert_eq!(
        (k["users"].as_u64(), k["keys"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(k["expiring"], 1);
    assert_eq!(k["disabled"], 1);
    assert_eq!(k["overdue"], 1, "carol's");
    assert_eq!(k["unowned"], 1);
    assert_eq!(k["usersWithMultipleActiveKeys"], 1);
    assert_eq!(k["pendingNotifications"], 0);
    assert!(
        k["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["finding"] == "Overdue"
                && f["user"] == "carol"
                && f["message"].as_str().unwrap().contains("not tagged"))
    );
    let (status, reason, message) = w.condition("KeyAudit").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "Scanned"),
        "{message}"
    );
    let events = w.events().await;
    assert!(
        events.iter().any(|e| e["reason"] == "AccessKeyDisabled"),
        "{events:#?}"
    );

    let audit = w.audit().await;
    for op in [
        "ListUsers",
        "ListUserTags",
        "ListAccessKeys",
        "GetAccessKeyLastUsed",
        "UpdateAccessKey",
    ] {
        assert!(
            audit
                .iter()
                .any(|r| r.service == "iam" && r.operation == op),
            "{op} audited"
        );
    }
    assert!(
        audit
            .iter()
            .any(|r| r.service == "keyaudit" && r.operation == "Deliver" && r.outcome == "sent")
    );
    assert!(
        audit
            .iter()
            .any(|r| r.service == "iam" && r.operation == "UpdateAccessKey" && r.mutating)
    );

    // A day later nothing is repeated.
    let before = w.receiver.received().len();
    w.advance(DAY + 3 * 3600);
    w.reconcile().await;
    assert_eq!(
        w.receiver.received().len(),
        before,
        "{:#?}",
        &w.receiver.texts()[before..]
    );
    assert_eq!(w.aws.calls_of("UpdateAccessKey").len(), 1);
}

#[tokio::test]
async fn without_enforce_nothing_is_disabled_and_the_team_hears_what_would_be() {
    let w = world().await;
    w.account(json!({"enforce": false})).await;
    w.reconcile().await;
    assert!(w.aws.calls_of("UpdateAccessKey").is_empty());
    assert!(w.key_active("AKIABOB0000000000001"));
    let texts = w.receiver.texts();
    assert_eq!(
        count(&texts, "C0TEAM", "enforce is false"),
        2,
        "bob's and carol's: {texts:#?}"
    );
    assert_eq!(w.status().await["keyAudit"]["overdue"], 2);
}

#[tokio::test]
async fn new_and_reenabled_keys_are_reported_and_the_reenabled_one_disabled_again() {
    let w = world().await;
    w.account(json!({})).await;
    w.reconcile().await;
    let before = w.receiver.received().len();
    w.aws
        .put_access_key(ACCOUNT_ID, "alice", "AKIAALICE00000000002", ago(0));
    w.aws.with_iam(ACCOUNT_ID, |iam| {
        iam.keys
            .iter_mut()
            .find(|k| k.id == "AKIABOB0000000000001")
            .unwrap()
            .active = true;
    });
    w.advance(3600);
    w.request_check("now").await;
    w.reconcile().await;
    let texts = w.receiver.texts()[before..].to_vec();
    assert_eq!(count(&texts, "U0ALICE", "was this you?"), 1, "{texts:#?}");
    assert_eq!(
        count(&texts, "C0TEAM", "AKIAALICE00000000002"),
        2,
        "new key, and alice's two keys"
    );
    assert_eq!(count(&texts, "U0BOB", "is active again"), 1);
    assert!(
        !w.key_active("AKIABOB0000000000001"),
        "disabled again under enforce"
    );
    assert_eq!(w.aws.calls_of("UpdateAccessKey").len(), 2);
    let events = w.events().await;
    assert!(events.iter().any(|e| e["reason"] == "NewAccessKey"));
    assert!(events.iter().any(|e| e["reason"] == "AccessKeyReactivated"));
    assert_eq!(w.status().await["lastHandledCheckRequest"], "now");
}

#[tokio::test]
async fn a_restart_between_deciding_and_sending_sends_each_message_exactly_once() {
    let w = world().await;
    // The first operator decides and writes its outbox, then every send fails (as if it
    // died before any got out).
    w.receiver.fail_always(Some((503, "down")));
    w.account(json!({})).await;
    w.reconcile().await;
    assert!(w.receiver.received().is_empty());
    let pending = w.status().await["keyAudit"]["pendingNotifications"]
        .as_u64()
        .unwrap();
    assert!(pending >= 6, "{pending}");
    assert!(
        !w.key_active("AKIABOB0000000000001"),
        "a disable goes ahead while delivery fails"
    );
    let (status, reason, _) = w.condition("KeyAudit").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NotificationsFailing")
    );

    // A new operator over the same store, once delivery works again.
    let restarted = World {
        ctx: context(
            &w.client,
            &w.broker,
            &w.metrics,
            &w.clock,
            &w.store,
            &w.receiver,
        ),
        ..w
    };
    restarted.receiver.fail_always(None);
    restarted.advance(3 * 60);
    restarted.reconcile().await;
    let texts = restarted.receiver.texts();
    assert_eq!(count(&texts, "U0ALICE", "81 days old"), 1, "{texts:#?}");
    assert_eq!(count(&texts, "U0BOB", "has been disabled"), 1);
    let n = restarted.receiver.received().len();
    restarted.advance(2 * 3600);
    restarted.reconcile().await;
    restarted.request_check("again").await;
    restarted.reconcile().await;
    assert_eq!(
        restarted.receiver.received().len(),
        n,
        "nothing is sent twice"
    );
    assert_eq!(
        restarted.status().await["keyAudit"]["pendingNotifications"],
        0
    );
}

#[tokio::test]
async fn slack_errors_rate_limits_and_outages_are_retried_without_duplicates() {
    let w = world().await;
    // 200 with ok:false (Slack's usual error answer), then a 429 with Retry-After, then a 500.
    w.receiver
        .script(200, r#"{"ok":false,"error":"internal_error"}"#, None, 1);
    w.receiver
        .script(429, r#"{"ok":false,"error":"ratelimited"}"#, Some(120), 1);
    w.receiver.script(500, "oops", None, 1);
    w.account(json!({})).await;
    let wait = w.reconcile().await;
    assert!(
        wait <= Duration::from_secs(120),
        "retried within the Retry-After: {wait:?}"
    );
    let (_, reason, message) = w.condition("KeyAudit").await;
    assert_eq!(reason, "NotificationsFailing", "{message}");
    assert!(
        !message.contains(CANARY) && !message.contains("xoxb"),
        "{message}"
    );
    for _ in 0..4 {
        w.advance(3600);
        w.reconcile().await;
    }
    let texts = w.receiver.texts();
    assert_eq!(count(&texts, "U0ALICE", "81 days old"), 1, "{texts:#?}");
    assert_eq!(
        count(&texts, "C0TEAM", "AKIAALICE00000000001 of IAM user alice"),
        1
    );
    assert_eq!(w.status().await["keyAudit"]["pendingNotifications"], 0);
    let (status, reason, _) = w.condition("KeyAudit").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Scanned"));
    let metrics = w.metrics.encode();
    assert!(
        metrics.contains(
            "crossguard_key_audit_notifications_total{route=\"slack_dm\",outcome=\"sent\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("crossguard_access_keys_disabled_total"));
}

#[tokio::test]
async fn tokens_and_webhook_urls_appear_in_no_output() {
    let w = world().await;
    w.receiver.script(403, "action_prohibited", None, 2);
    w.receiver
        .script(200, r#"{"ok":false,"error":"invalid_auth"}"#, None, 2);
    w.account(json!({})).await;
    for _ in 0..3 {
        w.reconcile().await;
        w.advance(3600);
    }
    let account = serde_json::to_string(&w.accounts().get("acme").await.unwrap()).unwrap();
    let events = serde_json::to_string(&w.events().await).unwrap();
    let stored = w.stored().await;
    let metrics = w.metrics.encode();
    for (what, text) in [
        ("status", &account),
        ("events", &events),
        ("store", &stored),
        ("metrics", &metrics),
    ] {
        assert!(!text.contains(CANARY), "canary in {what}: {text}");
        assert!(!text.contains("xoxb-"), "bot token in {what}");
    }
    assert!(
        stored.contains("AKIAALICE00000000001"),
        "the store holds the audit state"
    );
}

#[tokio::test]
async fn a_failed_scan_is_reported_and_keeps_the_account_ready() {
    let w = world().await;
    w.account(json!({})).await;
    w.aws.fail("ListUsers", AwsErrorKind::AccessDenied, 1);
    let wait = w.reconcile().await;
    let (status, reason, message) = w.condition("KeyAudit").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ScanFailed"));
    assert!(
        message.contains("onboarding-template --key-audit"),
        "{message}"
    );
    assert_eq!(w.condition("Ready").await.0, "True");
    assert!(wait <= Duration::from_secs(15 * 60));
    w.advance(16 * 60);
    w.reconcile().await;
    assert_eq!(w.condition("KeyAudit").await.1, "Scanned");
}

#[tokio::test]
async fn a_disabled_audit_makes_no_iam_calls_and_shows_nothing() {
    let w = world().await;
    w.account(json!({"enabled": false})).await;
    w.reconcile().await;
    for op in ["ListUsers", "UpdateAccessKey"] {
        assert!(w.aws.calls_of(op).is_empty());
    }
    assert!(w.status().await.get("keyAudit").is_none());
    assert_eq!(w.condition("KeyAudit").await.0, "");
}

#[tokio::test]
async fn turning_the_audit_off_and_on_is_a_fresh_start_with_the_grace() {
    let w = world().await;
    w.account(json!({"firstScanGraceDays": 7})).await;
    w.reconcile().await;
    assert!(
        w.key_active("AKIABOB0000000000001"),
        "grace at the first scan"
    );
    w.accounts()
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"accessKeyAudit": {"enabled": false}}})),
        )
        .await
        .unwrap();
    w.reconcile().await;
    let uid = w.accounts().get("acme").await.unwrap().uid().unwrap();
    assert_eq!(
        w.store.get_state(&uid, "key-audit").await.unwrap(),
        None,
        "state removed"
    );
    assert!(w.status().await.get("keyAudit").is_none());
    // Thirty days later it is turned on again: still a first scan, so grace, not a disable.
    w.advance(30 * DAY);
    w.accounts()
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"accessKeyAudit": {"enabled": true}}})),
        )
        .await
        .unwrap();
    w.reconcile().await;
    assert!(w.key_active("AKIABOB0000000000001"));
    assert!(w.aws.calls_of("UpdateAccessKey").is_empty());
    let findings = w.status().await["keyAudit"]["findings"].to_string();
    assert!(findings.contains("after the grace period"), "{findings}");
}

#[tokio::test]
async fn messages_wait_for_a_secret_and_team_copies_for_a_route() {
    let w = world().await;
    // No Secret named yet: the ladder runs and its messages wait.
    w.account(json!({"notifications": {"secretName": null, "slackChannel": null}}))
        .await;
    w.reconcile().await;
    let pending = w.status().await["keyAudit"]["pendingNotifications"]
        .as_u64()
        .unwrap();
    assert!(pending >= 6, "{pending}");
    assert!(w.receiver.received().is_empty());
    assert_eq!(w.condition("KeyAudit").await.1, "Scanned");
    // A Secret with only a bot token and no team channel: owners hear, the team's copies
    // wait, and the condition says why.
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), NS);
    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bot-only"}, "stringData": {"slack-bot-token": BOT_TOKEN}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    w.accounts()
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"accessKeyAudit": {
            "notifications": {"secretName": "bot-only"}}}})),
        )
        .await
        .unwrap();
    let wait = w.reconcile().await;
    assert!(
        wait >= Duration::from_secs(5 * 60),
        "no busy loop while waiting for a route: {wait:?}"
    );
    let texts = w.receiver.texts();
    assert_eq!(count(&texts, "U0ALICE", "81 days old"), 1, "{texts:#?}");
    assert_eq!(count(&texts, "C0", ""), 0, "no team channel yet");
    let (status, reason, message) = w.condition("KeyAudit").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NotificationRouteMissing"),
        "{message}"
    );
    assert!(message.contains("slackChannel"), "{message}");
    // The channel is set: the waiting team copies go, once each.
    w.accounts()
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"accessKeyAudit": {
            "notifications": {"slackChannel": "C0TEAM"}}}})),
        )
        .await
        .unwrap();
    w.reconcile().await;
    w.advance(3600);
    w.reconcile().await;
    let texts = w.receiver.texts();
    assert_eq!(
        count(&texts, "C0TEAM", "AKIAALICE00000000001 of IAM user alice"),
        1,
        "{texts:#?}"
    );
    assert_eq!(count(&texts, "U0ALICE", "81 days old"), 1);
    assert_eq!(w.status().await["keyAudit"]["pendingNotifications"], 0);
    assert_eq!(w.condition("KeyAudit").await.1, "Scanned");
}

#[tokio::test]
async fn a_disable_the_role_does_not_allow_is_reported() {
    let w = world().await;
    w.account(json!({})).await;
    w.aws.fail("UpdateAccessKey", AwsErrorKind::AccessDenied, 1);
    w.reconcile().await;
    assert!(w.key_active("AKIABOB0000000000001"));
    let (status, reason, message) = w.condition("KeyAudit").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "DisableFailed"),
        "{message}"
    );
    assert!(
        message.contains("--key-audit-enforce") && message.contains("AKIABOB0000000000001"),
        "{message}"
    );
    assert_eq!(w.condition("Ready").await.0, "True");
    // The next scan tries again and succeeds.
    w.request_check("retry").await;
    w.reconcile().await;
    assert!(!w.key_active("AKIABOB0000000000001"));
    assert_eq!(w.condition("KeyAudit").await.1, "Scanned");
}

#[tokio::test]
async fn each_new_key_gets_its_own_event() {
    let w = world().await;
    w.account(json!({})).await;
    w.reconcile().await;
    w.aws
        .put_access_key(ACCOUNT_ID, "alice", "AKIAALICE00000000002", ago(0));
    w.aws
        .put_access_key(ACCOUNT_ID, "carol", "AKIACAROL00000000002", ago(0));
    w.request_check("new-keys").await;
    w.reconcile().await;
    let events = serde_json::to_string(&w.events().await).unwrap();
    for key in ["AKIAALICE00000000002", "AKIACAROL00000000002"] {
        assert!(
            events.contains(&format!("New access key {key}")),
            "{events}"
        );
    }
}
