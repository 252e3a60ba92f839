//! The key-age monitor's delivery layer against real HTTP: an in-process receiver that
//! records requests and answers as each test scripts it (Slack's `ok:false` errors, 429 with
//! Retry-After, 5xx, slow answers), and one run through `tests/harness/receiver.py`, the
//! stand-in the demo and end-to-end tests use.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use crossguard::keyaudit::notify::{
    Audience, ConfigError, DeliveryError, Destinations, Message, Route, Sender,
};

const TOKEN: &str = "xoxb-1111-2222-abcdef";

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Recorded {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn new(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    fn slack_error(error: &str) -> Reply {
        Reply::new(
            200,
            &serde_json::json!({"ok": false, "error": error}).to_string(),
        )
    }
    fn retry_after(mut self, value: &str) -> Reply {
        self.headers.push(("retry-after", value.to_string()));
        self
    }
    fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    replies: VecDeque<Reply>,
}

/// Slack and both webhooks on one loopback port: `/api/chat.postMessage`, `/hooks/slack/…`,
/// `/hooks/generic/…`. Answers like the real thing unless a reply is scripted.
struct Receiver {
    base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { base, inner }
    }

    /// The next request gets `reply`.
    fn then(&self, reply: Reply) {
        self.inner.lock().unwrap().replies.push_back(reply);
    }

    fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    fn last(&self) -> Recorded {
        self.requests().pop().expect("a request arrived")
    }

    fn sender(&self, timeout: Duration) -> Sender {
        Sender::new(&format!("{}/api", self.base), timeout).expect("sender")
    }

    /// A Secret with all three keys pointing here (with `marker` in each secret value).
    fn secret(&self, marker: &str) -> BTreeMap<String, Vec<u8>> {
        secret(
            &format!("xoxb-{marker}-token"),
            &format!("{}/hooks/slack/T0/B0/{marker}", self.base),
            &format!("{}/hooks/generic/{marker}?sig={marker}", self.base),
        )
    }

    fn destinations(&self) -> Destinations {
        let mut data = self.secret("x");
        data.insert("slack-bot-token".into(), TOKEN.as_bytes().to_vec());
        Destinations::from_secret(&data).expect("destinations")
    }
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let reply = {
        let mut inner = inner.lock().unwrap();
        inner.requests.push(Recorded {
            path: path.clone(),
            headers,
            body: body.to_vec(),
        });
        inner.replies.pop_front()
    };
    let reply = reply.unwrap_or_else(|| {
        if path.starts_with("/api/") {
            Reply::new(
                200,
                r#"{"ok":true,"channel":"D1","ts":"1700000000.000100"}"#,
            )
        } else if path.starts_with("/hooks/slack") {
            Reply::new(200, "ok")
        } else {
            Reply::new(200, "{}")
        }
    });
    tokio::time::sleep(reply.delay).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

fn secret(token: &str, slack_hook: &str, generic: &str) -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("slack-bot-token".to_string(), token.as_bytes().to_vec()),
        (
            "slack-webhook-url".to_string(),
            slack_hook.as_bytes().to_vec(),
        ),
        ("webhook-url".to_string(), generic.as_bytes().to_vec()),
    ])
}

fn message() -> Message {
    Message {
        id: "warn/AKIAEXAMPLE0001/81/owner".into(),
        text: "Your access key *AKIAEXAMPLE0001* is 81 days old.".into(),
        fields: serde_json::json!({"access_key_id": "AKIAEXAMPLE0001", "age_days": 81}),
    }
}

fn dm() -> Route {
    Route::SlackDirect {
        user: "U012AB3CD".into(),
    }
}

fn channel() -> Route {
    Route::SlackChannel {
        channel: "C012AB3CD".into(),
    }
}

fn every_route() -> [Route; 4] {
    [dm(), channel(), Route::SlackWebhook, Route::Webhook]
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn slack_messages_are_posted_with_the_bot_token() {
    let rx = Receiver::start().await;
    let sender = rx.sender(TIMEOUT);
    let to = rx.destinations();
    for (route, channel) in [(dm(), "U012AB3CD"), (channel(), "C012AB3CD")] {
        sender.send(&to, &route, &message()).await.expect("sent");
        let req = rx.last();
        assert_eq!(req.path, "/api/chat.postMessage");
        assert_eq!(
            req.header("authorization"),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert!(
            req.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(
            req.json(),
            serde_json::json!({
                "channel": channel,
                "text": message().text,
                "unfurl_links": false,
                "unfurl_media": false,
            })
        );
    }
}

#[tokio::test]
async fn webhooks_get_their_own_shapes() {
    let rx = Receiver::start().await;
    let sender = rx.sender(TIMEOUT);
    let to = rx.destinations();

    sender
        .send(&to, &Route::SlackWebhook, &message())
        .await
        .expect("sent");
    let req = rx.last();
    assert_eq!(req.path, "/hooks/slack/T0/B0/x");
    assert_eq!(
        req.header("authorization"),
        None,
        "the bot token is for the Web API only"
    );
    assert_eq!(req.json(), serde_json::json!({"text": message().text}));

    sender
        .send(&to, &Route::Webhook, &message())
        .await
        .expect("sent");
    let req = rx.last();
    assert_eq!(req.path, "/hooks/generic/x");
    assert_eq!(req.header("authorization"), None);
    assert_eq!(
        req.header("idempotency-key"),
        Some("warn/AKIAEXAMPLE0001/81/owner")
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        serde_json::json!({
            "id": "warn/AKIAEXAMPLE0001/81/owner",
            "text": message().text,
            "access_key_id": "AKIAEXAMPLE0001",
            "age_days": 81,
        })
    );
}

#[tokio::test]
async fn slack_ok_false_errors_are_classified() {
    let rx = Receiver::start().await;
    let sender = rx.sender(TIMEOUT);
    let to = rx.destinations();
    for (error, label) in [
        ("internal_error", "transient"),
        ("fatal_error", "transient"),
        ("service_unavailable", "transient"),
        ("request_timeout", "transient"),
        ("invalid_auth", "rejected"),
        ("not_authed", "rejected"),
        ("token_revoked", "rejected"),
        ("account_inactive", "rejected"),
        ("channel_not_found", "rejected"),
        ("not_in_channel", "rejected"),
        ("is_archived", "rejected"),
        ("missing_scope", "rejected"),
        ("user_not_found", "rejected"),
        ("msg_too_long", "rejected"),
        ("brand_new_error", "rejected"),
    ] {
        rx.then(Reply::slack_error(error));
        let err = sender.send(&to, &dm(), &message()).await.unwrap_err();
        assert_eq!(err.label(), label, "{error}: {err}");
        assert_eq!(err.is_permanent(), label == "rejected", "{error}");
        assert_eq!(err.retry_after(), None);
        assert!(err.to_string().contains(error), "{err}");
    }
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let rx = Receiver::start().await;
    let sender = rx.sender(TIMEOUT);
    let to = rx.destinations();
    let secs = Duration::from_secs;
    for route in every_route() {
        for (reply, want) in [
            (Reply::new(429, "").retry_after("7"), secs(7)),
            (Reply::new(429, "").retry_after("later"), secs(30)),
            (Reply::new(429, ""), secs(30)),
            (Reply::new(429, "").retry_after("99999"), secs(900)),
        ] {
            rx.then(reply.clone());
            let err = sender.send(&to, &route, &message()).await.unwrap_err();
            assert_eq!(
                err,
                DeliveryError::RateLimited { retry_after: want },
                "{route:?} {reply:?}"
            );
            assert_eq!(err.retry_after(), Some(want));
            assert!(!err.is_permanent());
        }
    }
    // Slack may also say so in a 200.
    rx.then(Reply::slack_error("ratelimited").retry_after("3"));
    let err = sender.send(&to, &channel(), &message()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(secs(3)));
}

#[tokio::test]
async fn http_errors_are_classified_per_route() {
    let rx = Receiver::start().await;
    let sender = rx.sender(TIMEOUT);
    let to = rx.destinations();
    for route in every_route() {
        for (reply, label) in [
            (Reply::new(500, ""), "transient"),
            (Reply::new(503, "service_unavailable"), "transient"),
            (Reply::new(502, "<html>bad gateway</html>"), "transient"),
            (Reply::new(400, "invalid_payload"), "rejected"),
            (Reply::new(403, "action_prohibited"), "rejected"),
            (Reply::new(404, "no_service"), "rejected"),
            (Reply::new(410, "channel_is_archived"), "rejected"),
            (Reply::new(301, ""), "rejected"),
        ] {
            rx.then(reply.clone());
            let err = sender.send(&to, &route, &message()).await.unwrap_err();
            assert_eq!(err.label(), label, "{route:?} {reply:?}: {err}");
            assert!(err.to_string().contains(&reply.status.to_string()), "{err}");
        }
    }
    // Slack's webhook codes are quoted, so the customer sees which one it was.
    rx.then(Reply::new(404, "no_service"));
    let err = sender
        .send(&to, &Route::SlackWebhook, &message())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no_service"), "{err}");
    // A generic webhook's body is never quoted.
    rx.then(Reply::new(400, "see https://internal.example/logs"));
    let err = sender
        .send(&to, &Route::Webhook, &message())
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("internal.example"), "{err}");
}

#[tokio::test]
async fn an_unreadable_slack_answer_is_transient() {
    let rx = Receiver::start().await;
    let sender = rx.sender(TIMEOUT);
    let to = rx.destinations();
    for body in ["<html>proxy error</html>", "", r#"{"channel":"D1"}"#] {
        rx.then(Reply::new(200, body));
        let err = sender.send(&to, &dm(), &message()).await.unwrap_err();
        assert_eq!(err.label(), "transient", "{body:?}: {err}");
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient() {
    let rx = Receiver::start().await;
    let timeout = Duration::from_millis(300);
    let sender = rx.sender(timeout);
    let to = rx.destinations();
    for route in every_route() {
        rx.then(Reply::new(200, r#"{"ok":true}"#).delayed(Duration::from_secs(3)));
        let started = Instant::now();
        let err = sender.send(&to, &route, &message()).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.label(), "transient", "{route:?}: {err}");
        assert!(
            took < Duration::from_millis(1500),
            "{route:?} took {took:?}"
        );
        assert!(took >= timeout, "{route:?} gave up after {took:?}");
    }
}

#[tokio::test]
async fn nothing_listening_is_transient() {
    let port = support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let sender = Sender::new(&format!("{base}/api"), TIMEOUT).unwrap();
    let to = Destinations::from_secret(&secret(
        TOKEN,
        &format!("{base}/hooks/slack/x"),
        &format!("{base}/hooks/generic/x"),
    ))
    .unwrap();
    for route in every_route() {
        let err = sender.send(&to, &route, &message()).await.unwrap_err();
        assert_eq!(err.label(), "transient", "{route:?}: {err}");
        // The cause is kept (without the URL), so an operator can tell what went wrong.
        assert!(err.to_string().contains("onnect"), "{route:?}: {err}");
    }
}

#[tokio::test]
async fn a_route_without_its_credential_is_not_configured() {
    let rx = Receiver::start().await;
    let sender = rx.sender(TIMEOUT);
    let only_generic = Destinations::from_secret(&BTreeMap::from([(
        "webhook-url".to_string(),
        format!("{}/hooks/generic/x", rx.base).into_bytes(),
    )]))
    .unwrap();
    assert_eq!(
        only_generic.routes(
            &Audience::Owner {
                slack_id: "U012AB3CD".into()
            },
            None
        ),
        vec![]
    );
    for route in [dm(), channel(), Route::SlackWebhook] {
        let err = sender
            .send(&only_generic, &route, &message())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            DeliveryError::NotConfigured {
                route: route.label()
            }
        );
        assert!(err.is_permanent());
        assert_eq!(err.label(), "not_configured");
    }
    assert!(rx.requests().is_empty(), "nothing was sent");
}

/// With a bot token and webhook URLs carrying a marker, no error of any kind, no Debug
/// and no Display shows the marker.
#[tokio::test]
async fn canary_secrets_never_surface() {
    const CANARY: &str = "CANARY";
    let rx = Receiver::start().await;
    let sender = rx.sender(Duration::from_millis(300));
    let to = Destinations::from_secret(&rx.secret("CANARY7f3a")).unwrap();
    let mut seen = vec![format!("{to:?}"), format!("{sender:?}")];

    let replies = [
        Reply::slack_error("invalid_auth"),
        Reply::slack_error("ratelimited"),
        Reply::new(200, "not json"),
        Reply::new(429, "").retry_after("2"),
        Reply::new(500, "CANARY in the body"),
        Reply::new(404, "no_service"),
        Reply::new(301, "").retry_after("1"),
        Reply::new(200, "{}").delayed(Duration::from_secs(2)),
    ];
    for route in every_route() {
        for reply in &replies {
            rx.then(reply.clone());
            match sender.send(&to, &route, &message()).await {
                Err(err) => seen.push(format!("{err} / {err:?}")),
                // A webhook takes any prompt 200 as success.
                Ok(()) => assert!(
                    matches!(route, Route::SlackWebhook | Route::Webhook) && reply.status == 200,
                    "{route:?} {reply:?}"
                ),
            }
        }
    }
    // Nothing listening: connection errors from the HTTP stack.
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let gone = Destinations::from_secret(&secret(
        "xoxb-CANARY-token",
        &format!("{closed}/hooks/slack/CANARY"),
        &format!("{closed}/hooks/generic?CANARY=1"),
    ))
    .unwrap();
    let dead = Sender::new(&format!("{closed}/api"), TIMEOUT).unwrap();
    for route in every_route() {
        let err = dead.send(&gone, &route, &message()).await.unwrap_err();
        seen.push(format!("{err} / {err:?}"));
    }
    // Refused Secrets.
    for (token, hook, generic) in [
        ("CANARY-not-a-token", "https://h/x", "https://g/x"),
        ("xoxb-CANARY token", "https://h/x", "https://g/x"),
        ("xoxb-ok", "http://example.com/CANARY", "https://g/x"),
        ("xoxb-ok", "https://h/x", "CANARY"),
        ("xoxb-ok", "https://h/x", "https://g/CAN\nARY"),
    ] {
        let err: ConfigError =
            Destinations::from_secret(&secret(token, hook, generic)).unwrap_err();
        seen.push(format!("{err} / {err:?}"));
    }
    assert!(seen.len() > 35);
    for text in &seen {
        assert!(!text.contains(CANARY), "secret surfaced: {text}");
        assert!(!text.contains("ARY\n"), "secret surfaced: {text}");
    }
    // The receiver did get the real values: the marker was really in play.
    let got = rx.requests();
    assert!(got.iter().any(|r| r.path.contains(CANARY)));
    assert!(got.iter().any(|r| {
        r.header("authorization")
            .is_some_and(|a| a.contains(CANARY))
    }));
}

/// `tests/harness/receiver.py` (the demo's stand-in) accepts what `Sender` sends, logs
/// it without the token, and its fail control produces a rate limit.
#[tokio::test]
async fn python_receiver_takes_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = support::Receiver::start_with(dir.path(), &["--token", TOKEN]);
    let log = dir.path().join("receiver.jsonl");
    let base = receiver.url.clone();
    let to = Destinations::from_secret(&secret(
        TOKEN,
        &format!("{base}/hooks/slack/T0/B0/hooksecret"),
        &format!("{base}/hooks/generic"),
    ))
    .unwrap();
    let sender = Sender::new(&format!("{base}/api"), TIMEOUT).unwrap();
    for route in every_route() {
        sender
            .send(&to, &route, &message())
            .await
            .unwrap_or_else(|e| panic!("{route:?}: {e}"));
    }

    let body = support::http_get(&base, "/_receiver/messages");
    let got: Vec<serde_json::Value> = serde_json::from_str(&body).expect("messages JSON");
    let seen: Vec<(&str, &serde_json::Value)> = got
        .iter()
        .map(|m| (m["path"].as_str().unwrap(), &m["channel"]))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/api/chat.postMessage", &serde_json::json!("U012AB3CD")),
            ("/api/chat.postMessage", &serde_json::json!("C012AB3CD")),
            ("/hooks/slack", &serde_json::Value::Null),
            ("/hooks/generic", &serde_json::Value::Null),
        ]
    );
    assert!(got.iter().all(|m| m["text"] == message().text.as_str()));
    assert_eq!(got[3]["idempotency_key"], "warn/AKIAEXAMPLE0001/81/owner");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.lines().count(), 4);
    assert!(
        !logged.contains(TOKEN) && !logged.contains("hooksecret"),
        "{logged}"
    );

    support::http_request(
        &base,
        "POST",
        "/_receiver/fail",
        r#"{"path": "/api/chat.postMessage", "status": 429, "error": "ratelimited", "retry_after": 2, "count": 1}"#,
    );
    let err = sender.send(&to, &dm(), &message()).await.unwrap_err();
    assert_eq!(
        err,
        DeliveryError::RateLimited {
            retry_after: Duration::from_secs(2)
        }
    );
    // Only the next one.
    sender
        .send(&to, &dm(), &message())
        .await
        .expect("sent after the rate limit");

    // A wrong token is refused as Slack would.
    let wrong = Destinations::from_secret(&BTreeMap::from([(
        "slack-bot-token".to_string(),
        b"xoxb-someone-else".to_vec(),
    )]))
    .unwrap();
    let err = sender.send(&wrong, &dm(), &message()).await.unwrap_err();
    assert!(
        err.is_permanent() && err.to_string().contains("invalid_auth"),
        "{err}"
    );
}
