//! Status conditions in the shape `kubectl wait --for=condition=…` and humans expect.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether a condition holds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One observation about the resource, following the Kubernetes condition conventions: the
/// same fields, limits and formats as upstream `metav1.Condition`, so generic tooling
/// (`kubectl wait --for=condition=…`, kstatus, alerting on conditions) reads it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. Ready or CredentialsValid.
    #[serde(rename = "type")]
    #[schemars(
        length(max = 316),
        pattern(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$")
    )]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// CamelCase reason for the last transition, e.g. AssumeRoleDenied.
    #[schemars(
        length(min = 1, max = 1024),
        pattern(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    )]
    pub reason: String,
    /// What happened and what to do about it.
    #[schemars(length(max = 32768))]
    pub message: String,
    /// When the status or reason last changed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// The metadata.generation this condition was computed from.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub observed_generation: i64,
}

impl Condition {
    /// A new condition stamped with `now`.
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        generation: i64,
        now: jiff::Timestamp,
    ) -> Self {
        Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.into(),
            last_transition_time: now.to_string(),
            observed_generation: generation,
        }
    }

    /// True when the condition holds.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// Insert or replace the condition of the same type, keeping the old transition time when
/// neither status nor reason changed (so an unchanged observation causes no status write).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status && old.reason == new.reason {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// Remove the condition of the given type, if present.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn unchanged_status_and_reason_keep_transition_time() {
        let mut cs = vec![Condition::new(
            "Ready",
            ConditionStatus::True,
            "Verified",
            "ok",
            1,
            at(100),
        )];
        set_condition(
            &mut cs,
            Condition::new(
                "Ready",
                ConditionStatus::True,
                "Verified",
                "still ok",
                2,
                at(200),
            ),
        );
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, at(100).to_string());
        assert_eq!(cs[0].message, "still ok");
        assert_eq!(cs[0].observed_generation, 2);
    }

    #[test]
    fn changed_reason_moves_transition_time() {
        let mut cs = vec![Condition::new(
            "Ready",
            ConditionStatus::False,
            "A",
            "",
            1,
            at(100),
        )];
        set_condition(
            &mut cs,
            Condition::new("Ready", ConditionStatus::False, "B", "", 1, at(200)),
        );
        assert_eq!(cs[0].last_transition_time, at(200).to_string());
        set_condition(
            &mut cs,
            Condition::new("Other", ConditionStatus::True, "C", "", 1, at(300)),
        );
        assert_eq!(cs.len(), 2);
        assert!(find(&cs, "Other").unwrap().is_true());
    }
}
