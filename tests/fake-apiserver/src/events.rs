//! core/v1 Events as a view of events.k8s.io/v1 storage.
//!
//! kube-runtime's Recorder writes events.k8s.io/v1; `kubectl describe` reads
//! core/v1 with `fieldSelector=involvedObject.*`. Events are stored in the
//! events.k8s.io shape; the core view renames fields and fills the legacy
//! ones (source, first/lastTimestamp, count) from their modern equivalents,
//! so that an event written through one API is meaningful through the other.

use serde_json::{Map, Value, json};

use crate::meta::{format_micro, format_seconds, parse_time};

/// Field renames between events.k8s.io/v1 (left) and core/v1 (right).
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn seconds_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .and_then(parse_time)
        .map(format_seconds)
}

/// events.k8s.io/v1 (stored) -> core/v1 (served).
pub fn to_core(stored: &Value) -> Value {
    let Some(src) = stored.as_object() else {
        return stored.clone();
    };
    let mut out = Map::new();
    for (k, v) in src {
        let key = RENAMES
            .iter()
            .find(|(new, _)| new == k)
            .map(|(_, old)| *old)
            .unwrap_or(k.as_str());
        out.insert(key.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    // Fill the legacy fields core clients (kubectl describe/get) sort and print by.
    let event_time = seconds_of(src.get("eventTime"));
    if !out.contains_key("firstTimestamp")
        && let Some(t) = &event_time
    {
        out.insert("firstTimestamp".into(), json!(t));
    }
    if !out.contains_key("lastTimestamp") {
        let last = seconds_of(stored.pointer("/series/lastObservedTime")).or(event_time);
        if let Some(t) = last {
            out.insert("lastTimestamp".into(), json!(t));
        }
    }
    if !out.contains_key("count") {
        let count = stored
            .pointer("/series/count")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        out.insert("count".into(), json!(count));
    }
    if !out.contains_key("source")
        && let Some(c) = src.get("reportingController")
    {
        out.insert("source".into(), json!({"component": c}));
    }
    Value::Object(out)
}

/// core/v1 (request body) -> events.k8s.io/v1 (stored).
pub fn from_core(served: &Value) -> Value {
    let Some(src) = served.as_object() else {
        return served.clone();
    };
    let mut out = Map::new();
    for (k, v) in src {
        let key = RENAMES
            .iter()
            .find(|(_, old)| old == k)
            .map(|(new, _)| *new)
            .unwrap_or(k.as_str());
        out.insert(key.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    // events.k8s.io requires eventTime; legacy writers often only set
    // first/lastTimestamp.
    if out.get("eventTime").is_none_or(Value::is_null) {
        let t = ["firstTimestamp", "lastTimestamp"]
            .iter()
            .find_map(|k| src.get(*k).and_then(Value::as_str).and_then(parse_time))
            .or_else(|| {
                served
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .and_then(parse_time)
            });
        if let Some(t) = t {
            out.insert("eventTime".into(), json!(format_micro(t)));
        }
    }
    if out.get("reportingController").is_none_or(Value::is_null)
        && let Some(c) = served.pointer("/source/component")
    {
        out.insert("reportingController".into(), c.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_event_reads_as_core() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "eventTime": "2024-01-02T03:04:05.678901Z",
            "regarding": {"kind": "Thing", "name": "t"},
            "note": "hello", "reason": "Ready", "type": "Normal",
            "reportingController": "crossguard",
            "series": {"count": 4, "lastObservedTime": "2024-01-02T03:10:00.000000Z"}
        });
        let core = to_core(&ev);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "t");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "crossguard");
        assert_eq!(core["source"]["component"], "crossguard");
        assert_eq!(core["firstTimestamp"], "2024-01-02T03:04:05Z");
        assert_eq!(core["lastTimestamp"], "2024-01-02T03:10:00Z");
        assert_eq!(core["count"], 4);
        assert!(core.get("regarding").is_none());
    }

    #[test]
    fn core_event_is_stored_modern() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "message": "m", "count": 2, "source": {"component": "kubelet"},
            "firstTimestamp": "2024-01-02T03:04:05Z", "lastTimestamp": "2024-01-02T03:05:05Z"
        });
        let ev = from_core(&core);
        assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
        assert_eq!(ev["regarding"]["name"], "p");
        assert_eq!(ev["note"], "m");
        assert_eq!(ev["deprecatedCount"], 2);
        assert_eq!(ev["deprecatedSource"]["component"], "kubelet");
        assert_eq!(ev["reportingController"], "kubelet");
        assert_eq!(ev["eventTime"], "2024-01-02T03:04:05.000000Z");
        // And back: the core view shows what the core writer wrote.
        let back = to_core(&ev);
        assert_eq!(back["count"], 2);
        assert_eq!(back["lastTimestamp"], "2024-01-02T03:05:05Z");
        assert_eq!(back["message"], "m");
    }
}
