//! ObjectMeta helpers: system fields (uid, timestamps, generated names) and
//! the name/label validation kube-apiserver applies to every object.

use rand::Rng;
use serde_json::{Map, Value};

use crate::error::Cause;

/// RFC 3339 with second precision, the format of `metav1.Time`.
pub fn now_rfc3339() -> String {
    format_seconds(jiff::Timestamp::now())
}

pub fn format_seconds(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 with microseconds, the format of `metav1.MicroTime`.
pub fn format_micro(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse::<jiff::Timestamp>().ok()
}

/// A random version-4 UUID, as kube-apiserver assigns to `metadata.uid`.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The 5-character suffix `generateName` gets (same alphabet as
/// apimachinery: no vowels, no confusable digits).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub fn name_of(v: &Value) -> &str {
    str_at(v, "/metadata/name").unwrap_or_default()
}

pub fn namespace_of(v: &Value) -> &str {
    str_at(v, "/metadata/namespace").unwrap_or_default()
}

pub fn uid_of(v: &Value) -> &str {
    str_at(v, "/metadata/uid").unwrap_or_default()
}

/// `metadata` as a mutable map, created if missing.
pub fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = Value::Object(Map::new());
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn owner_uids(v: &Value) -> Vec<String> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn resource_version(v: &Value) -> &str {
    str_at(v, "/metadata/resourceVersion").unwrap_or_default()
}

/// Everything that makes up the "spec" for generation purposes: the object
/// without `metadata`, and without `status` when status is a subresource
/// (what kube-apiserver compares for CRs).
pub fn spec_part(v: &Value, status_is_subresource: bool) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        if status_is_subresource {
            m.remove("status");
        }
        m.remove("apiVersion");
        m.remove("kind");
    }
    c
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Name validation: namespaces must be DNS labels, everything else DNS
/// subdomains (the common case for kube-apiserver's built-ins and all CRs).
pub fn validate_name(name: &str, is_namespace: bool) -> Option<Cause> {
    if is_namespace {
        if !is_dns1123_label(name) {
            return Some(Cause::new(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: \"{name}\": {DNS1123_LABEL_MSG}"),
            ));
        }
    } else if !is_dns1123_subdomain(name) {
        return Some(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": {DNS1123_SUBDOMAIN_MSG}"),
        ));
    }
    None
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn is_label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(k),
    }
}

fn is_label_value(v: &str) -> bool {
    v.is_empty() || is_qualified_name_part(v)
}

/// Label key/value syntax checks (`metadata.labels`), as in apimachinery.
pub fn validate_labels(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) else {
        return causes;
    };
    for (k, v) in labels {
        if !is_label_key(k) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "metadata.labels",
                format!(
                    "Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                ),
            ));
        }
        match v.as_str() {
            Some(s) if is_label_value(s) => {}
            _ => {
                let shown = v.as_str().map(str::to_string).unwrap_or(v.to_string());
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "metadata.labels",
                    format!(
                        "Invalid value: \"{shown}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                    ),
                ));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uid_has_v4_shape() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(new_uid(), u);
    }

    #[test]
    fn suffix_uses_safe_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn names_are_validated_like_kube() {
        assert!(validate_name("my-app.example", false).is_none());
        assert!(validate_name("My_App", false).is_some());
        assert!(validate_name("a.b", true).is_some());
        assert!(validate_name("team-a", true).is_none());
    }

    #[test]
    fn label_syntax_is_checked() {
        let ok = json!({"metadata": {"labels": {"app.kubernetes.io/name": "x", "e": ""}}});
        assert!(validate_labels(&ok).is_empty());
        let bad = json!({"metadata": {"labels": {"a": "-bad-"}}});
        assert_eq!(validate_labels(&bad).len(), 1);
        let long = json!({"metadata": {"labels": {"a": "x".repeat(64)}}});
        assert_eq!(validate_labels(&long).len(), 1);
    }

    #[test]
    fn timestamps_format_like_metav1() {
        let ts: jiff::Timestamp = "2024-05-01T10:20:30.123456789Z".parse().unwrap();
        assert_eq!(format_seconds(ts), "2024-05-01T10:20:30Z");
        assert_eq!(format_micro(ts), "2024-05-01T10:20:30.123456Z");
    }
}
