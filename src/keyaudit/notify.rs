//! Delivery of key-age messages: one copy of one [`Message`] to one [`Route`] per
//! [`Sender::send`] call, with the outcome classified so that the outbox can decide when to
//! try again ([`DeliveryError::retry_after`], [`DeliveryError::is_permanent`]).
//!
//! Destinations and their credentials come from the CustomerAccount's Secret
//! ([`Destinations::from_secret`]); tokens and URLs stay in [`SecretString`]s and never appear
//! in `Debug` output or error messages. `send` makes exactly one attempt, bounded by the
//! sender's timeout: retry timing belongs to the outbox, which records every message before
//! sending it.
//!
//! Slack references for the behaviour below:
//! - chat.postMessage: <https://docs.slack.dev/reference/methods/chat.postMessage>
//! - Web API errors and rate limits (HTTP 429 + `Retry-After` seconds):
//!   <https://docs.slack.dev/apis/web-api/rate-limits>
//! - incoming webhooks and their errors:
//!   <https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks>

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Secret key of the Slack bot token (`xoxb-…`, needs the `chat:write` scope).
pub const SLACK_BOT_TOKEN_KEY: &str = "slack-bot-token";
/// Secret key of the Slack incoming-webhook URL (`https://hooks.slack.com/services/…`).
pub const SLACK_WEBHOOK_URL_KEY: &str = "slack-webhook-url";
/// Secret key of the generic JSON webhook URL.
pub const WEBHOOK_URL_KEY: &str = "webhook-url";

/// Wait used when a rate-limit answer has no readable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Longest wait we accept from `Retry-After`, so a garbled header cannot park a message.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Shortest wait, so `Retry-After: 0` does not make the outbox spin.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
/// How much of an answer's body is read (Slack's answers are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
/// Longest error message we produce (they end up in logs and Events).
const MAX_MESSAGE: usize = 300;
/// Longest token we accept; Slack's (including rotating ones) are far shorter.
const MAX_TOKEN: usize = 1024;

/// Delivery credentials read from the CustomerAccount's Secret. Keys: `slack-bot-token`
/// (xoxb-…, needs chat:write), `slack-webhook-url` (Slack incoming webhook), `webhook-url`
/// (generic JSON webhook). Any subset; at least one.
pub struct Destinations {
    slack_bot_token: Option<SecretString>,
    slack_webhook_url: Option<SecretString>,
    webhook_url: Option<SecretString>,
}

impl Destinations {
    /// Read the Secret's `data`. Values are trimmed (a file made by `kubectl create secret
    /// --from-file` often ends in a newline); other keys are ignored. Errors name the key,
    /// never its value.
    pub fn from_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<Destinations, ConfigError> {
        let slack_bot_token = read(data, SLACK_BOT_TOKEN_KEY)?
            .map(|token| check_token(SLACK_BOT_TOKEN_KEY, token))
            .transpose()?;
        let slack_webhook_url = read(data, SLACK_WEBHOOK_URL_KEY)?
            .map(|url| check_url(url).map_err(|reason| invalid_url(SLACK_WEBHOOK_URL_KEY, reason)))
            .transpose()?;
        let webhook_url = read(data, WEBHOOK_URL_KEY)?
            .map(|url| check_url(url).map_err(|reason| invalid_url(WEBHOOK_URL_KEY, reason)))
            .transpose()?;
        if slack_bot_token.is_none() && slack_webhook_url.is_none() && webhook_url.is_none() {
            return Err(ConfigError::NoDestination);
        }
        Ok(Destinations {
            slack_bot_token: slack_bot_token.map(SecretString::from),
            slack_webhook_url: slack_webhook_url.map(SecretString::from),
            webhook_url: webhook_url.map(SecretString::from),
        })
    }

    /// Where one message for `audience` goes: Owner{slack_id} -> SlackDirect{user} when a
    /// bot token exists; Team -> SlackChannel{team_channel} (bot token + channel given),
    /// SlackWebhook, Webhook — each that is configured. Owner messages never go to the
    /// generic webhook or the team channel (the caller sends a separate Team message).
    ///
    /// An owner's `slack_id` comes from an IAM tag the customer controls; it must look like
    /// a Slack member id (`U…`/`W…`, upper-case letters and digits), because chat.postMessage
    /// also accepts channel ids and names, and a tag holding `C0123` or `#general` would
    /// otherwise publish the private message. Such an owner gets no route (the team copy
    /// still goes out).
    pub fn routes(&self, audience: &Audience, team_channel: Option<&str>) -> Vec<Route> {
        let mut routes = Vec::new();
        match audience {
            Audience::Owner { slack_id } => {
                let user = slack_id.trim();
                if self.slack_bot_token.is_some() && is_slack_member_id(user) {
                    routes.push(Route::SlackDirect {
                        user: user.to_string(),
                    });
                }
            }
            Audience::Team => {
                if self.slack_bot_token.is_some()
                    && let Some(channel) = team_channel.map(str::trim).filter(|c| !c.is_empty())
                {
                    routes.push(Route::SlackChannel {
                        channel: channel.to_string(),
                    });
                }
                if self.slack_webhook_url.is_some() {
                    routes.push(Route::SlackWebhook);
                }
                if self.webhook_url.is_some() {
                    routes.push(Route::Webhook);
                }
            }
        }
        routes
    }

    /// The secret values, for scrubbing error text.
    fn secrets(&self) -> Vec<&str> {
        [
            &self.slack_bot_token,
            &self.slack_webhook_url,
            &self.webhook_url,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose_secret())
        .collect()
    }
}

impl fmt::Debug for Destinations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Option<SecretString>| if s.is_some() { "[set]" } else { "[unset]" };
        f.debug_struct("Destinations")
            .field("slack_bot_token", &shown(&self.slack_bot_token))
            .field("slack_webhook_url", &shown(&self.slack_webhook_url))
            .field("webhook_url", &shown(&self.webhook_url))
            .finish()
    }
}

/// Who a message is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// The key's owner, privately; `slack_id` is their Slack member id (e.g. U012AB3CD).
    Owner { slack_id: String },
    /// The account's team.
    Team,
}

/// One copy's destination; stored in the outbox, so Serialize/Deserialize/Clone/Debug/
/// PartialEq/Eq/Hash/Ord, and it holds no secret. Serialized as `{"kind": <label>, …}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Route {
    /// A private message from the bot to a Slack member (chat.postMessage with the user id
    /// as `channel`).
    #[serde(rename = "slack_dm")]
    SlackDirect { user: String },
    /// A message from the bot to a channel id (the bot must be a member).
    #[serde(rename = "slack_channel")]
    SlackChannel { channel: String },
    /// The Slack incoming webhook of the Secret.
    #[serde(rename = "slack_webhook")]
    SlackWebhook,
    /// The generic JSON webhook of the Secret.
    #[serde(rename = "webhook")]
    Webhook,
}

impl Route {
    /// `slack_dm` | `slack_channel` | `slack_webhook` | `webhook`, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Route::SlackDirect { .. } => "slack_dm",
            Route::SlackChannel { .. } => "slack_channel",
            Route::SlackWebhook => "slack_webhook",
            Route::Webhook => "webhook",
        }
    }
}

/// One message, the same for every route it goes to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Stable id, e.g. `warn/AKIA…/81/owner`: the generic webhook's `Idempotency-Key`.
    pub id: String,
    /// The text, in Slack mrkdwn.
    pub text: String,
    /// Structured copy for the generic webhook; an object's members are merged into the
    /// top level of its JSON (`id` and `text` win), anything else but `null` is sent as
    /// `fields`.
    pub fields: serde_json::Value,
}

/// Sends message copies over HTTPS; cheap to clone, share one per process.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    post_message: Url,
    timeout: Duration,
}

impl Sender {
    /// `slack_api` is the Web API base, https://slack.com/api in production (tests and the
    /// demo point it at a local receiver). `timeout` bounds each attempt, from connecting
    /// to the end of the answer. Redirects are not followed (a webhook that redirects is
    /// refused rather than sent somewhere unchecked).
    pub fn new(slack_api: &str, timeout: Duration) -> Result<Sender, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        let base = check_url(slack_api.trim().trim_end_matches('/'))
            .map_err(|reason| ConfigError::InvalidSlackApi { reason })?;
        let post_message = Url::parse(&format!("{base}/chat.postMessage"))
            .map_err(|_| ConfigError::InvalidSlackApi { reason: NOT_A_URL })?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("crossguard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Client {
                message: bounded(e.without_url().to_string()),
            })?;
        Ok(Sender {
            client,
            post_message,
            timeout,
        })
    }

    /// Send one copy of `message` over `route`, once. `Ok` means the destination accepted
    /// it; see [`DeliveryError`] for what each failure means to the caller.
    pub async fn send(
        &self,
        to: &Destinations,
        route: &Route,
        message: &Message,
    ) -> Result<(), DeliveryError> {
        let secrets = to.secrets();
        // The client's timeout covers connect to end of body; this one also covers our own
        // reading of the answer, so the bound holds whatever the receiver does.
        let attempt = async {
            match route {
                Route::SlackDirect { user } => {
                    if !is_slack_member_id(user) {
                        return Err(DeliveryError::Rejected {
                            message: "the owner's Slack id is not a member id (U… or W…)".into(),
                        });
                    }
                    self.post_message(to, route, user, message).await
                }
                Route::SlackChannel { channel } => {
                    if !is_slack_id(channel) {
                        return Err(DeliveryError::Rejected {
                            message: "the team channel is not a Slack channel id".into(),
                        });
                    }
                    self.post_message(to, route, channel, message).await
                }
                Route::SlackWebhook => self.slack_webhook(to, message).await,
                Route::Webhook => self.webhook(to, message).await,
            }
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out()),
        };
        result.map_err(|e| e.scrubbed(&secrets))
    }

    /// chat.postMessage with the bot token; `channel` is a member id (DM) or a channel id.
    async fn post_message(
        &self,
        to: &Destinations,
        route: &Route,
        channel: &str,
        message: &Message,
    ) -> Result<(), DeliveryError> {
        let token = to
            .slack_bot_token
            .as_ref()
            .ok_or(DeliveryError::NotConfigured {
                route: route.label(),
            })?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| DeliveryError::Rejected {
                message: "the bot token is not a valid HTTP header value".into(),
            })?;
        auth.set_sensitive(true);
        let body = serde_json::json!({
            "channel": channel,
            "text": message.text,
            "unfurl_links": false,
            "unfurl_media": false,
        });
        let response = self
            .client
            .post(self.post_message.clone())
            .header(AUTHORIZATION, auth)
            // Slack asks for the charset on JSON bodies (else a `missing_charset` warning).
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.network_error(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = match read_bounded(response).await {
            Ok(body) => Some(body),
            // A cut-off 200: we cannot tell whether Slack posted the message.
            Err(e) if status == StatusCode::OK => return Err(self.network_error(e)),
            Err(_) => None,
        };
        classify_web_api(status, &headers, body.as_deref())
    }

    /// POST `{"text": …}` to the Slack incoming webhook.
    async fn slack_webhook(
        &self,
        to: &Destinations,
        message: &Message,
    ) -> Result<(), DeliveryError> {
        let url = stored_url(to.slack_webhook_url.as_ref(), "slack_webhook")?;
        let body = serde_json::json!({ "text": message.text });
        let response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.network_error(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            return Ok(());
        }
        // Slack's webhook errors are a short plain-text code (`invalid_payload`, `no_service`).
        let body = read_bounded(response).await.unwrap_or_default();
        Err(classify_http(
            "Slack incoming webhook",
            status,
            &headers,
            slack_code(&String::from_utf8_lossy(&body)),
        ))
    }

    /// POST the message as JSON to the generic webhook, with `Idempotency-Key: <id>` so a
    /// receiver can drop the copy the outbox resends after an unanswered attempt.
    async fn webhook(&self, to: &Destinations, message: &Message) -> Result<(), DeliveryError> {
        let url = stored_url(to.webhook_url.as_ref(), "webhook")?;
        let key = HeaderValue::from_str(&message.id).map_err(|_| DeliveryError::Rejected {
            message: "the message id is not a valid Idempotency-Key header value".into(),
        })?;
        let response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .body(webhook_body(message).to_string())
            .send()
            .await
            .map_err(|e| self.network_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The receiver is arbitrary: its body is not quoted in our errors.
        Err(classify_http("webhook", status, response.headers(), None))
    }

    fn timed_out(&self) -> DeliveryError {
        DeliveryError::Transient {
            message: format!("no complete answer within {} ms", self.timeout.as_millis()),
        }
    }

    /// A failure below HTTP (connect, TLS, reset, timeout). reqwest's errors carry the URL,
    /// which holds the webhook's secret: drop it, keep the cause chain.
    fn network_error(&self, error: reqwest::Error) -> DeliveryError {
        if error.is_timeout() {
            return self.timed_out();
        }
        let error = error.without_url();
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        DeliveryError::Transient { message: text }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("post_message", &self.post_message.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why one copy was not delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The destination asked us to slow down (HTTP 429, or Slack's `ratelimited`); try this
    /// copy again after `retry_after` (from `Retry-After`, 30 s when absent, 1 s..15 min).
    #[error("rate limited; retry after {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// Worth trying again later: network error, timeout, HTTP 5xx, Slack's
    /// `internal_error`/`fatal_error`/`service_unavailable`/`request_timeout`, or an
    /// unreadable answer.
    #[error("delivery failed, will retry: {message}")]
    Transient { message: String },
    /// The destination refused this copy; resending it unchanged will not help (bad or
    /// revoked token, missing scope, unknown channel or user, archived channel, HTTP 4xx).
    #[error("delivery refused: {message}")]
    Rejected { message: String },
    /// The Secret has no credential for this route (it changed since the route was chosen).
    #[error("the delivery Secret has nothing for route {route}")]
    NotConfigured { route: &'static str },
}

impl DeliveryError {
    /// How long to wait before trying this copy again, when the destination said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// `rate_limited` | `transient` | `rejected` | `not_configured`, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DeliveryError::RateLimited { .. } => "rate_limited",
            DeliveryError::Transient { .. } => "transient",
            DeliveryError::Rejected { .. } => "rejected",
            DeliveryError::NotConfigured { .. } => "not_configured",
        }
    }

    /// True when resending the same copy cannot succeed until the Secret or the
    /// destination changes.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DeliveryError::Rejected { .. } | DeliveryError::NotConfigured { .. }
        )
    }

    /// Remove every secret from the message and bound its length (last line of defence:
    /// causes from the HTTP stack may quote what they were given).
    fn scrubbed(self, secrets: &[&str]) -> DeliveryError {
        let scrub = |mut text: String| {
            for secret in secrets {
                for part in secret_parts(secret) {
                    text = text.replace(part.as_str(), "[redacted]");
                }
            }
            bounded(text)
        };
        match self {
            DeliveryError::Transient { message } => DeliveryError::Transient {
                message: scrub(message),
            },
            DeliveryError::Rejected { message } => DeliveryError::Rejected {
                message: scrub(message),
            },
            other => other,
        }
    }
}

/// The delivery Secret or the sender's settings are unusable. Messages name the Secret
/// key, never its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// None of the three keys is present.
    #[error(
        "the delivery Secret has none of the keys `slack-bot-token`, `slack-webhook-url`, `webhook-url`"
    )]
    NoDestination,
    /// A value is not UTF-8.
    #[error("Secret key `{key}` is not UTF-8 text")]
    NotText { key: &'static str },
    /// A value is empty or only whitespace.
    #[error("Secret key `{key}` is empty")]
    Empty { key: &'static str },
    /// The bot token does not look like a Slack token.
    #[error("Secret key `{key}` does not hold a Slack bot token: {reason}")]
    InvalidToken {
        key: &'static str,
        reason: &'static str,
    },
    /// A webhook URL is not usable.
    #[error("Secret key `{key}` does not hold a usable URL: {reason}")]
    InvalidUrl {
        key: &'static str,
        reason: &'static str,
    },
    /// The Slack Web API base given to [`Sender::new`] is not usable.
    #[error("the Slack API base URL is not usable: {reason}")]
    InvalidSlackApi { reason: &'static str },
    /// [`Sender::new`] was given a zero timeout.
    #[error("the delivery timeout must be longer than zero")]
    ZeroTimeout,
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {message}")]
    Client { message: String },
}

impl ConfigError {
    /// `InvalidNotificationSecret` for problems with the Secret's content,
    /// `NotifierSetupFailed` for the sender's own settings: a condition/Event reason.
    pub fn category(&self) -> &'static str {
        match self {
            ConfigError::NoDestination
            | ConfigError::NotText { .. }
            | ConfigError::Empty { .. }
            | ConfigError::InvalidToken { .. }
            | ConfigError::InvalidUrl { .. } => "InvalidNotificationSecret",
            ConfigError::InvalidSlackApi { .. }
            | ConfigError::ZeroTimeout
            | ConfigError::Client { .. } => "NotifierSetupFailed",
        }
    }
}

const NOT_A_URL: &str = "not an absolute http(s) URL";

/// A present key's trimmed text.
fn read<'a>(
    data: &'a BTreeMap<String, Vec<u8>>,
    key: &'static str,
) -> Result<Option<&'a str>, ConfigError> {
    let Some(bytes) = data.get(key) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::NotText { key })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(ConfigError::Empty { key });
    }
    Ok(Some(text))
}

fn check_token(key: &'static str, token: &str) -> Result<String, ConfigError> {
    let invalid = |reason| ConfigError::InvalidToken { key, reason };
    if !token.starts_with("xox") {
        return Err(invalid(
            "expected a Slack token starting with `xox` (e.g. xoxb-…)",
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "contains whitespace, control or non-ASCII characters",
        ));
    }
    if token.len() > MAX_TOKEN {
        return Err(invalid("longer than 1024 characters"));
    }
    Ok(token.to_string())
}

fn invalid_url(key: &'static str, reason: &'static str) -> ConfigError {
    ConfigError::InvalidUrl { key, reason }
}

/// An https URL, or an http one to a loopback host (tests, the demo). Returns it as given.
fn check_url(url: &str) -> Result<String, &'static str> {
    // The URL parser silently drops tabs and newlines inside a URL; refuse them instead.
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters");
    }
    let parsed = Url::parse(url).map_err(|_| NOT_A_URL)?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => {
            return Err("must be https:// (http:// only for 127.0.0.1, ::1 and localhost)");
        }
        _ => return Err(NOT_A_URL),
    }
    if parsed.host().is_none() {
        return Err(NOT_A_URL);
    }
    Ok(url.to_string())
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A Slack member id: U… or W… followed by upper-case letters and digits.
fn is_slack_member_id(id: &str) -> bool {
    (id.starts_with('U') || id.starts_with('W')) && is_slack_id(id)
}

/// A Slack object id (member, channel): upper-case letters and digits, 3..=32 long.
fn is_slack_id(id: &str) -> bool {
    (3..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn stored_url(url: Option<&SecretString>, route: &'static str) -> Result<Url, DeliveryError> {
    let url = url.ok_or(DeliveryError::NotConfigured { route })?;
    Url::parse(url.expose_secret()).map_err(|_| DeliveryError::Rejected {
        message: "the stored URL is not valid".into(),
    })
}

/// `{"id", "text", …fields}` for the generic webhook.
fn webhook_body(message: &Message) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    match &message.fields {
        serde_json::Value::Object(fields) => body.extend(fields.clone()),
        serde_json::Value::Null => {}
        other => {
            body.insert("fields".into(), other.clone());
        }
    }
    body.insert("id".into(), message.id.clone().into());
    body.insert("text".into(), message.text.clone().into());
    serde_json::Value::Object(body)
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

/// Slack Web API answers: HTTP status first, then the `ok`/`error` of a 200's JSON body
/// (Slack reports most errors as HTTP 200 with `"ok": false`).
fn classify_web_api(
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Result<(), DeliveryError> {
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        #[serde(default)]
        error: Option<String>,
    }
    let answer = body.and_then(|b| serde_json::from_slice::<Answer>(b).ok());
    if status != StatusCode::OK {
        let code = answer
            .as_ref()
            .and_then(|a| a.error.as_deref())
            .and_then(slack_code);
        return Err(classify_http(
            "Slack chat.postMessage",
            status,
            headers,
            code,
        ));
    }
    match answer {
        Some(Answer { ok: true, .. }) => Ok(()),
        Some(Answer { error, .. }) => {
            let code = error.as_deref().and_then(slack_code).unwrap_or("unknown");
            Err(classify_slack_error(code, headers.get(RETRY_AFTER)))
        }
        None => Err(DeliveryError::Transient {
            message: "Slack chat.postMessage answered HTTP 200 without a readable JSON body".into(),
        }),
    }
}

/// The `error` of a Slack `"ok": false` answer.
fn classify_slack_error(code: &str, retry_after: Option<&HeaderValue>) -> DeliveryError {
    match code {
        "ratelimited" | "rate_limited" => DeliveryError::RateLimited {
            retry_after: parse_retry_after(retry_after),
        },
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            DeliveryError::Transient {
                message: format!("Slack chat.postMessage failed: {code}"),
            }
        }
        // invalid_auth, not_authed, token_revoked, account_inactive, channel_not_found,
        // not_in_channel, is_archived, missing_scope, user_not_found, msg_too_long, and
        // any error we do not know: resending the same request will not change the answer.
        _ => DeliveryError::Rejected {
            message: format!("Slack chat.postMessage refused the message: {code}"),
        },
    }
}

/// A non-success HTTP status from any destination.
fn classify_http(
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    code: Option<&str>,
) -> DeliveryError {
    let detail = code.map(|c| format!(" ({c})")).unwrap_or_default();
    let message = format!("{what} answered HTTP {}{detail}", status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS {
        DeliveryError::RateLimited {
            retry_after: parse_retry_after(headers.get(RETRY_AFTER)),
        }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        // 408: the receiver gave up reading our request; nothing about it was wrong.
        DeliveryError::Transient { message }
    } else {
        // Other 4xx, and 3xx (redirects are not followed).
        DeliveryError::Rejected { message }
    }
}

/// `Retry-After` in whole seconds (what Slack sends), clamped to 1 s..15 min; 30 s when
/// missing or not a number.
fn parse_retry_after(value: Option<&HeaderValue>) -> Duration {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER))
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

/// A Slack error code we are willing to repeat in our messages (`[a-z0-9_]`, short).
fn slack_code(text: &str) -> Option<&str> {
    let code = text.trim();
    (!code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(code)
}

/// The pieces of a secret that must not appear in text: the whole value, and for a URL
/// its path and query (where webhook secrets live) and the URL as re-serialized.
fn secret_parts(secret: &str) -> Vec<String> {
    let mut parts = vec![secret.to_string()];
    if let Ok(url) = Url::parse(secret) {
        parts.push(url.as_str().to_string());
        let path = url.path();
        if path.len() > 1 {
            parts.push(path.to_string());
        }
        if let Some(query) = url.query().filter(|q| !q.is_empty()) {
            parts.push(query.to_string());
        }
    }
    parts
}

/// At most [`MAX_MESSAGE`] characters.
fn bounded(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_MESSAGE) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "xoxb-1234-5678-SECRETVALUE";
    const HOOK: &str = "https://hooks.slack.com/services/T000/B000/SECRETVALUE";
    const GENERIC: &str = "https://alerts.example.com/in?key=SECRETVALUE";

    fn secret(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    fn all() -> Destinations {
        Destinations::from_secret(&secret(&[
            (SLACK_BOT_TOKEN_KEY, TOKEN.as_bytes()),
            (SLACK_WEBHOOK_URL_KEY, HOOK.as_bytes()),
            (WEBHOOK_URL_KEY, GENERIC.as_bytes()),
        ]))
        .expect("valid secret")
    }

    #[test]
    fn each_key_alone_is_enough_and_values_are_trimmed() {
        for (key, value, exposed) in [
            (SLACK_BOT_TOKEN_KEY, format!("{TOKEN}\n"), TOKEN),
            (SLACK_WEBHOOK_URL_KEY, format!("  {HOOK}\r\n"), HOOK),
            (WEBHOOK_URL_KEY, format!("{GENERIC}\n"), GENERIC),
            (
                WEBHOOK_URL_KEY,
                "http://127.0.0.1:8080/x".into(),
                "http://127.0.0.1:8080/x",
            ),
            (
                WEBHOOK_URL_KEY,
                "http://[::1]:8080/x".into(),
                "http://[::1]:8080/x",
            ),
            (
                WEBHOOK_URL_KEY,
                "http://localhost/x".into(),
                "http://localhost/x",
            ),
        ] {
            let d = Destinations::from_secret(&secret(&[(key, value.as_bytes()), ("other", b"x")]))
                .unwrap_or_else(|e| panic!("{key}={value:?}: {e}"));
            assert_eq!(d.secrets(), vec![exposed], "{key}");
        }
    }

    #[test]
    fn bad_values_are_refused_naming_the_key_not_the_value() {
        let cases: &[(&str, &[u8], &str)] = &[
            (SLACK_BOT_TOKEN_KEY, b"", "Empty"),
            (SLACK_BOT_TOKEN_KEY, b" \n", "Empty"),
            (
                SLACK_BOT_TOKEN_KEY,
                b"SECRETVALUE-not-slack",
                "InvalidToken",
            ),
            (SLACK_BOT_TOKEN_KEY, b"xoxb-SECRET VALUE", "InvalidToken"),
            (SLACK_BOT_TOKEN_KEY, b"xoxb-SECRET\nVALUE", "InvalidToken"),
            (SLACK_BOT_TOKEN_KEY, b"xoxb-SECRET\x01VALUE", "InvalidToken"),
            (
                SLACK_BOT_TOKEN_KEY,
                "xoxb-SECRETVALUÉ".as_bytes(),
                "InvalidToken",
            ),
            (SLACK_BOT_TOKEN_KEY, b"\xff\xfeSECRETVALUE", "NotText"),
            (
                SLACK_WEBHOOK_URL_KEY,
                b"http://hooks.slack.com/SECRETVALUE",
                "InvalidUrl",
            ),
            (
                SLACK_WEBHOOK_URL_KEY,
                b"hooks.slack.com/SECRETVALUE",
                "InvalidUrl",
            ),
            (
                SLACK_WEBHOOK_URL_KEY,
                b"https://hooks.slack.com/SECRET\tVALUE",
                "InvalidUrl",
            ),
            (
                WEBHOOK_URL_KEY,
                b"ftp://example.com/SECRETVALUE",
                "InvalidUrl",
            ),
            (
                WEBHOOK_URL_KEY,
                b"http://10.0.0.1/SECRETVALUE",
                "InvalidUrl",
            ),
            (
                WEBHOOK_URL_KEY,
                b"http://localhost.evil.com/SECRETVALUE",
                "InvalidUrl",
            ),
            (WEBHOOK_URL_KEY, b"", "Empty"),
        ];
        for (key, value, kind) in cases {
            let err = Destinations::from_secret(&secret(&[(key, value)]))
                .expect_err(&format!("{key}={value:?} must be refused"));
            let text = format!("{err} {err:?}");
            assert!(
                format!("{err:?}").starts_with(kind),
                "{key}={value:?}: {err:?}"
            );
            assert!(text.contains(key), "{text}");
            assert!(!text.contains("SECRET"), "{text}");
            assert_eq!(err.category(), "InvalidNotificationSecret");
        }
        // One bad key spoils the Secret even when another is fine: a typo must not go
        // unnoticed because the team copy still arrives somewhere.
        let err = Destinations::from_secret(&secret(&[
            (SLACK_BOT_TOKEN_KEY, TOKEN.as_bytes()),
            (WEBHOOK_URL_KEY, b"http://example.com/SECRETVALUE"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::InvalidUrl {
                key: WEBHOOK_URL_KEY,
                ..
            }
        ));
    }

    #[test]
    fn a_secret_without_any_key_is_refused() {
        let err =
            Destinations::from_secret(&secret(&[("slack-token", TOKEN.as_bytes())])).unwrap_err();
        assert_eq!(err, ConfigError::NoDestination);
        assert!(err.to_string().contains("slack-bot-token"));
        assert!(!err.to_string().contains("SECRET"));
    }

    #[test]
    fn debug_redacts_every_value() {
        let d = all();
        let debug = format!("{d:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("[set]"));
        let sender = Sender::new("https://slack.com/api/", Duration::from_secs(5)).unwrap();
        assert!(format!("{sender:?}").contains("https://slack.com/api/chat.postMessage"));
    }

    fn owner(id: &str) -> Audience {
        Audience::Owner {
            slack_id: id.into(),
        }
    }

    #[test]
    fn routes_follow_the_audience_and_what_is_configured() {
        let only = |key: &str, value: &str| {
            Destinations::from_secret(&secret(&[(key, value.as_bytes())])).unwrap()
        };
        let bot = only(SLACK_BOT_TOKEN_KEY, TOKEN);
        let hook = only(SLACK_WEBHOOK_URL_KEY, HOOK);
        let generic = only(WEBHOOK_URL_KEY, GENERIC);
        let every = all();
        let dm = |u: &str| Route::SlackDirect { user: u.into() };
        let channel = || Route::SlackChannel {
            channel: "C012AB3CD".into(),
        };
        let cases: Vec<(&Destinations, Audience, Option<&str>, Vec<Route>)> = vec![
            (
                &bot,
                owner("U012AB3CD"),
                Some("C012AB3CD"),
                vec![dm("U012AB3CD")],
            ),
            (&bot, owner(" W012AB3CD "), None, vec![dm("W012AB3CD")]),
            // Not a member id: a channel id, a channel name, lower case, empty.
            (&bot, owner("C012AB3CD"), None, vec![]),
            (&bot, owner("#general"), None, vec![]),
            (&bot, owner("u012ab3cd"), None, vec![]),
            (&bot, owner(""), None, vec![]),
            (&hook, owner("U012AB3CD"), None, vec![]),
            (&generic, owner("U012AB3CD"), None, vec![]),
            (&bot, Audience::Team, Some("C012AB3CD"), vec![channel()]),
            (&bot, Audience::Team, None, vec![]),
            (&bot, Audience::Team, Some(" "), vec![]),
            (
                &hook,
                Audience::Team,
                Some("C012AB3CD"),
                vec![Route::SlackWebhook],
            ),
            (&generic, Audience::Team, None, vec![Route::Webhook]),
            (
                &every,
                Audience::Team,
                Some("C012AB3CD"),
                vec![channel(), Route::SlackWebhook, Route::Webhook],
            ),
            (
                &every,
                owner("U012AB3CD"),
                Some("C012AB3CD"),
                vec![dm("U012AB3CD")],
            ),
        ];
        for (d, audience, team_channel, want) in cases {
            assert_eq!(
                d.routes(&audience, team_channel),
                want,
                "{d:?} {audience:?} {team_channel:?}"
            );
        }
    }

    #[test]
    fn routes_serialize_with_their_label_and_no_secret() {
        for route in [
            Route::SlackDirect {
                user: "U1AB".into(),
            },
            Route::SlackChannel {
                channel: "C1AB".into(),
            },
            Route::SlackWebhook,
            Route::Webhook,
        ] {
            let json = serde_json::to_value(&route).unwrap();
            assert_eq!(json["kind"], route.label());
            assert_eq!(serde_json::from_value::<Route>(json).unwrap(), route);
        }
    }

    #[test]
    fn slack_errors_are_classified() {
        for (code, label) in [
            ("ratelimited", "rate_limited"),
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
            ("something_new", "rejected"),
        ] {
            let err = classify_slack_error(code, None);
            assert_eq!(err.label(), label, "{code}");
            assert_eq!(err.is_permanent(), label == "rejected", "{code}");
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_bounded() {
        let h = |v: &str| HeaderValue::from_str(v).unwrap();
        assert_eq!(parse_retry_after(Some(&h("7"))), Duration::from_secs(7));
        assert_eq!(parse_retry_after(Some(&h(" 7 "))), Duration::from_secs(7));
        assert_eq!(parse_retry_after(Some(&h("0"))), Duration::from_secs(1));
        assert_eq!(
            parse_retry_after(Some(&h("86400"))),
            Duration::from_secs(900)
        );
        assert_eq!(parse_retry_after(Some(&h("soon"))), Duration::from_secs(30));
        assert_eq!(parse_retry_after(Some(&h("-3"))), Duration::from_secs(30));
        assert_eq!(parse_retry_after(None), Duration::from_secs(30));
    }

    #[test]
    fn webhook_body_merges_fields_under_id_and_text() {
        let message = |fields| Message {
            id: "warn/AKIA1/81/team".into(),
            text: "hello".into(),
            fields,
        };
        let body = webhook_body(&message(serde_json::json!({"age_days": 81, "id": "x"})));
        assert_eq!(
            body,
            serde_json::json!({"id": "warn/AKIA1/81/team", "text": "hello", "age_days": 81})
        );
        let body = webhook_body(&message(serde_json::Value::Null));
        assert_eq!(
            body,
            serde_json::json!({"id": "warn/AKIA1/81/team", "text": "hello"})
        );
        let body = webhook_body(&message(serde_json::json!([1])));
        assert_eq!(body["fields"], serde_json::json!([1]));
    }

    #[test]
    fn scrubbing_removes_secrets_and_bounds_length() {
        let secrets = [TOKEN, HOOK, GENERIC];
        let err = DeliveryError::Transient {
            message: format!(
                "a {TOKEN} b {HOOK} c /services/T000/B000/SECRETVALUE d key=SECRETVALUE {}",
                "x".repeat(1000)
            ),
        }
        .scrubbed(&secrets);
        let text = err.to_string();
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.chars().count() < MAX_MESSAGE + 60, "{text}");
    }

    #[test]
    fn sender_refuses_bad_settings() {
        assert_eq!(
            Sender::new("https://slack.com/api", Duration::ZERO).unwrap_err(),
            ConfigError::ZeroTimeout
        );
        assert!(matches!(
            Sender::new("http://slack.com/api", Duration::from_secs(1)).unwrap_err(),
            ConfigError::InvalidSlackApi { .. }
        ));
        assert!(Sender::new("http://127.0.0.1:9/api", Duration::from_secs(1)).is_ok());
    }
}
