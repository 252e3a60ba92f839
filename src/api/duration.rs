//! The schema of the spec's duration fields (`sessionDuration`, `analysisInterval`, …).
//!
//! A duration is whole hours, minutes and seconds in that order, at least one of them:
//! `1h`, `15m`, `1h30m`, `90s`. The CRD checks it twice, as kube-apiserver reports
//! them: a `pattern`, and a CEL rule whose message names the field in words
//! (`"sessionDuration must be a duration such as 15m or 1h"`). The range rule is guarded
//! by the same expression, so CEL never calls `duration()` on a string it cannot parse
//! (which answered with the CEL parser's internal error). The operator's own validation
//! ([`super::validate::parse_duration`]) uses the same pattern and the same message.

use schemars::Schema;
use serde_json::json;

/// Whole hours, minutes and seconds, in that order, at least one of them.
pub const PATTERN: &str = "^([0-9]+h([0-9]+m)?([0-9]+s)?|[0-9]+m([0-9]+s)?|[0-9]+s)$";

/// Longest duration string accepted (`999h59m59s` is 10).
pub const MAX_LENGTH: u64 = 32;

/// The message for a value that is not a duration: `"<name> must be a duration such as
/// 15m or 1h"`, where `name` is the field's own name.
pub fn not_a_duration(name: &str) -> String {
    format!("{name} must be a duration such as 15m or 1h")
}

/// Give a string field the duration pattern, the human CEL rule and, with `range`, a
/// guarded `min..=max` rule (bounds in the same syntax, e.g. `("15m", "1h")`).
fn duration_field(schema: &mut Schema, name: &str, range: Option<(&str, &str)>) {
    let is_duration = format!("self.matches('{PATTERN}')");
    let mut rules = vec![json!({"rule": is_duration, "message": not_a_duration(name)})];
    if let Some((min, max)) = range {
        rules.push(json!({
            "rule": format!(
                "!{is_duration} || (duration(self) >= duration('{min}') && duration(self) <= duration('{max}'))"
            ),
            "message": format!("{name} must be between {min} and {max}"),
        }));
    }
    schema.insert("pattern".into(), json!(PATTERN));
    // Bounds the CEL cost estimate: kube-apiserver refuses a CRD whose rules could cost
    // too much on a string of unbounded length (regex matching is priced by length).
    schema.insert("maxLength".into(), json!(MAX_LENGTH));
    schema.insert("x-kubernetes-validations".into(), json!(rules));
}

/// `spec.sessionDuration` of a CustomerAccount: 15m to 1h.
pub(super) fn session_duration(schema: &mut Schema) {
    duration_field(schema, "sessionDuration", Some(("15m", "1h")));
}

/// `spec.accessKeyAudit.scanInterval` of a CustomerAccount: 1h to 168h.
pub(super) fn scan_interval(schema: &mut Schema) {
    duration_field(schema, "scanInterval", Some(("1h", "168h")));
}

/// `spec.analysisInterval` of a ManagedCluster: 1m to 24h.
pub(super) fn analysis_interval(schema: &mut Schema) {
    duration_field(schema, "analysisInterval", Some(("1m", "24h")));
}

/// `spec.automation.drainTimeout` of a ManagedCluster.
pub(super) fn drain_timeout(schema: &mut Schema) {
    duration_field(schema, "drainTimeout", None);
}

/// `spec.automation.disruptionBudget.minNodeAge` of a ManagedCluster.
pub(super) fn min_node_age(schema: &mut Schema) {
    duration_field(schema, "minNodeAge", None);
}
