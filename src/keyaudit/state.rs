//! What the key audit remembers between scans, stored per tenant as one JSON object
//! (`tenants/<uid>/state/key-audit.json`): the keys seen and which ladder steps were
//! notified, the keys crossguard disabled, and the outbox of notifications not yet
//! delivered. A step is marked notified in the same write that queues its messages, and a
//! message leaves the outbox in the write that follows its delivery: a restart in between
//! neither loses nor repeats a decision, and at most the one message in flight can repeat.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::notify::{Audience, Message};

/// Name of the state object in the tenant's store prefix.
pub const STATE_OBJECT: &str = "key-audit";
/// How long the ids of delivered messages are remembered (a little over a year, longer
/// than any ladder).
pub const SENT_MEMORY_DAYS: i64 = 400;

/// The key audit's memory for one CustomerAccount.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditState {
    /// Format version of this object (1).
    #[serde(default)]
    pub version: u32,
    /// When the first complete scan of the account finished; keys present then are the
    /// baseline (not "new") and get the first-scan grace if already overdue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_scan_at: Option<Timestamp>,
    /// When the last complete scan finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_at: Option<Timestamp>,
    /// Every key seen in the last scan, by access key id.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyRecord>,
    /// Per user, the active key ids last reported as "more than one active key".
    #[serde(default)]
    pub multiple_active: BTreeMap<String, Vec<String>>,
    /// Keys crossguard is about to disable (key id → user), written before the call, so a
    /// restart after the call and before its result was recorded still tells the owner.
    #[serde(default)]
    pub disabling: BTreeMap<String, String>,
    /// Messages decided and not delivered yet, oldest first.
    #[serde(default)]
    pub outbox: Vec<Outgoing>,
    /// Ids of delivered messages and when they were delivered.
    #[serde(default)]
    pub sent: BTreeMap<String, Timestamp>,
}

/// What is remembered about one access key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// The IAM user the key belongs to.
    pub user: String,
    /// When a scan first saw the key.
    pub first_seen: Timestamp,
    /// For keys already past their deadline at the first scan: the end of their grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<Timestamp>,
    /// Ladder steps already notified (`warn-76`, `final-<grace end>`, `would-disable`, `not-managed`,
    /// `new`, `disabled-<time>`, `reactivated-<time>`).
    #[serde(default)]
    pub notified: BTreeSet<String>,
    /// Whether a message already told the owner this key would be disabled on its
    /// deadline; without one, a due disable gets a final warning and the grace first.
    #[serde(default)]
    pub warned_disable: bool,
    /// When crossguard last set the key Inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Timestamp>,
}

/// Who a queued message is for. The routes (Slack DM, channel, webhooks) are worked out
/// at delivery from the Secret as it is then, so a Secret fixed later still delivers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Recipient {
    /// The key's owner, privately.
    Owner {
        /// Slack member id.
        slack_id: String,
    },
    /// The team channel and webhooks.
    Team,
}

impl Recipient {
    /// The notify layer's audience.
    pub fn audience(&self) -> Audience {
        match self {
            Recipient::Owner { slack_id } => Audience::Owner {
                slack_id: slack_id.clone(),
            },
            Recipient::Team => Audience::Team,
        }
    }
}

/// One message waiting for delivery.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Outgoing {
    /// Who it is for.
    pub to: Recipient,
    /// The message; its id is unique per decision and recipient.
    pub message: Message,
    /// Route labels it was already delivered to (a message leaves the outbox once every
    /// route it has is done).
    #[serde(default)]
    pub delivered: BTreeSet<String>,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// Delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this time (rate limits and backoff).
    pub next_attempt_at: Timestamp,
    /// Why the last attempt failed (never containing a token or URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl AuditState {
    /// Parse a stored state; a newer or unreadable object is an error, never a silent reset
    /// (a reset would repeat every notification).
    pub fn from_json(bytes: &[u8]) -> Result<AuditState, String> {
        let state: AuditState = serde_json::from_slice(bytes)
            .map_err(|e| format!("the stored key-audit state is unreadable: {e}"))?;
        if state.version > 1 {
            return Err(format!(
                "the stored key-audit state has format version {}, newer than this operator understands (1)",
                state.version
            ));
        }
        Ok(state)
    }

    /// The stored form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Queue `message` for `to` unless a message with its id is queued or was delivered.
    pub fn enqueue(&mut self, to: Recipient, message: Message, now: Timestamp) -> bool {
        if self.sent.contains_key(&message.id)
            || self.outbox.iter().any(|o| o.message.id == message.id)
        {
            return false;
        }
        self.outbox.push(Outgoing {
            to,
            message,
            delivered: BTreeSet::new(),
            queued_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
        });
        true
    }

    /// Forget delivered-message ids older than [`SENT_MEMORY_DAYS`].
    pub fn prune_sent(&mut self, now: Timestamp) {
        let cutoff = now.as_second() - SENT_MEMORY_DAYS * 86_400;
        self.sent.retain(|_, at| at.as_second() >= cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> Message {
        Message {
            id: id.to_string(),
            text: "t".into(),
            fields: serde_json::json!({}),
        }
    }

    #[test]
    fn a_message_is_queued_once_and_never_after_delivery() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut state = AuditState::default();
        assert!(state.enqueue(Recipient::Team, message("a"), now));
        assert!(!state.enqueue(Recipient::Team, message("a"), now));
        state.outbox.clear();
        state.sent.insert("a".into(), now);
        assert!(!state.enqueue(Recipient::Team, message("a"), now));
        let later = Timestamp::from_second(now.as_second() + 401 * 86_400).unwrap();
        state.prune_sent(later);
        assert!(state.sent.is_empty());
    }

    #[test]
    fn state_round_trips_and_garbage_is_an_error() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut state = AuditState {
            version: 1,
            first_scan_at: Some(now),
            ..Default::default()
        };
        state.enqueue(Recipient::Team, message("x"), now);
        let back = AuditState::from_json(&state.to_json()).unwrap();
        assert_eq!(back, state);
        assert!(AuditState::from_json(b"{not json").is_err());
    }
}
