//! Label and field selectors (`?labelSelector=` / `?fieldSelector=`), and
//! structured `LabelSelector` objects (PDBs).
//!
//! Field selectors are generic here: any dotted path is accepted and compared
//! by its string form (kube-apiserver only allows a per-resource whitelist).

use serde_json::Value;

use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; an empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<Req>);

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn bad_selector(part: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: found '{part}', expected: valid label selector"
    ))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad_selector(part));
            }
            if let Some(key) = part.strip_prefix('!') {
                reqs.push(Req::NotExists(key.trim().to_string()));
                continue;
            }
            let key_end = part
                .find(|c: char| c.is_whitespace() || "=!<>(".contains(c))
                .unwrap_or(part.len());
            let key = part[..key_end].to_string();
            if key.is_empty() {
                return Err(bad_selector(part));
            }
            let rest = part[key_end..].trim_start();
            let req = if rest.is_empty() {
                Req::Exists(key)
            } else if let Some(v) = rest.strip_prefix("==") {
                Req::Eq(key, v.trim().to_string())
            } else if let Some(v) = rest.strip_prefix("!=") {
                Req::NotEq(key, v.trim().to_string())
            } else if let Some(v) = rest.strip_prefix('=') {
                Req::Eq(key, v.trim().to_string())
            } else if let Some(v) = rest.strip_prefix('>') {
                Req::Gt(key, v.trim().parse().map_err(|_| bad_selector(part))?)
            } else if let Some(v) = rest.strip_prefix('<') {
                Req::Lt(key, v.trim().parse().map_err(|_| bad_selector(part))?)
            } else if let Some(v) = rest.strip_prefix("notin") {
                Req::NotIn(key, parse_set(v).ok_or_else(|| bad_selector(part))?)
            } else if let Some(v) = rest.strip_prefix("in") {
                Req::In(key, parse_set(v).ok_or_else(|| bad_selector(part))?)
            } else {
                return Err(bad_selector(part));
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Converts a structured `metav1.LabelSelector` (matchLabels +
    /// matchExpressions). `None` selects nothing, as for PDBs.
    pub fn from_object(sel: Option<&Value>) -> Option<Self> {
        let sel = sel?;
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Req::Eq(k.clone(), v.as_str().unwrap_or_default().into()));
            }
        }
        for e in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e.get("key").and_then(Value::as_str)?.to_string();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            reqs.push(match e.get("operator").and_then(Value::as_str)? {
                "In" => Req::In(key, values),
                "NotIn" => Req::NotIn(key, values),
                "Exists" => Req::Exists(key),
                "DoesNotExist" => Req::NotExists(key),
                _ => return None,
            });
        }
        Some(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Matches an object by its `metadata.labels`.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Req::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

/// A parsed field selector: `path=value`, `path==value`, `path!=value`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(terms));
        }
        for part in s.split(',') {
            let part = part.trim();
            let (path, eq, value) = if let Some((p, v)) = part.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = part.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = part.split_once('=') {
                (p, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            terms.push((path.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let got = field_string(obj, path);
            (got == *want) == *eq
        })
    }
}

/// A field's value as a selector compares it: strings as-is, numbers and
/// booleans printed, missing fields as "".
fn field_string(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("missing!=web"));
        assert!(m("tier in (front, back)"));
        assert!(!m("tier notin (front,back)"));
        assert!(m("missing notin (a)"));
        assert!(!m("missing in (a)"));
        assert!(m("app"));
        assert!(!m("!app"));
        assert!(m("!missing"));
        assert!(m("app=web,tier in (front)"));
        assert!(!m("app=web,tier=back"));
        assert!(m("n>4"));
        assert!(!m("n<5"));
        assert!(m(""));
    }

    #[test]
    fn label_parse_errors_are_bad_requests() {
        assert_eq!(LabelSelector::parse("a in b").unwrap_err().code, 400);
        assert_eq!(LabelSelector::parse("=x").unwrap_err().code, 400);
    }

    #[test]
    fn field_selectors_use_dotted_paths() {
        let ev = json!({"metadata": {"name": "e1", "namespace": "ns"},
            "involvedObject": {"name": "thing", "kind": "Thing"}, "count": 3});
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&ev);
        assert!(m("metadata.name=e1"));
        assert!(m("metadata.namespace==ns,involvedObject.name=thing"));
        assert!(!m("involvedObject.kind!=Thing"));
        assert!(m("count=3"));
        assert!(m("spec.nodeName="));
        assert!(FieldSelector::parse("bogus").is_err());
    }

    #[test]
    fn structured_selectors() {
        let sel = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]});
        let s = LabelSelector::from_object(Some(&sel)).unwrap();
        assert!(s.matches(&obj(json!({"app": "web", "tier": "front"}))));
        assert!(!s.matches(&obj(json!({"app": "web"}))));
        assert!(LabelSelector::from_object(None).is_none());
    }
}
