//! `meta.k8s.io/v1 Table` rendering for `kubectl get` (Accept: ...;as=Table).
//!
//! Custom resources use their CRD version's additionalPrinterColumns through
//! a small JSONPath evaluator; built-ins get Name + Age (plus a few
//! well-known columns for namespaces and events).

use serde_json::{Value, json};

use crate::registry::{PrinterColumn, ResourceInfo, View};

/// What each row carries in `object` (the `includeObject` query parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Field(String),
    Index(i64),
    Wildcard,
    Filter {
        path: Vec<Tok>,
        equal: bool,
        value: String,
    },
}

/// Parses the JSONPath subset printer columns use: `.a.b`, `['a.b']`,
/// `[0]`, `[*]`, `[?(@.type=="Ready")]`, optionally wrapped in `{}`.
fn parse_path(src: &str) -> Option<Vec<Tok>> {
    let s = src.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(s);
    let s = s.strip_prefix('$').unwrap_or(s);
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if name == "*" {
                    toks.push(Tok::Wildcard);
                } else if !name.is_empty() {
                    toks.push(Tok::Field(name));
                }
            }
            '[' => {
                let close = find_close(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                toks.push(parse_bracket(inner.trim())?);
                i = close + 1;
            }
            _ => {
                // A bare leading name (`metadata.name`).
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    name.push(chars[i]);
                    i += 1;
                }
                toks.push(Tok::Field(name));
            }
        }
    }
    Some(toks)
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (j, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

fn parse_bracket(inner: &str) -> Option<Tok> {
    if inner == "*" {
        return Some(Tok::Wildcard);
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
        let (lhs, equal, rhs) = if let Some((l, r)) = f.split_once("==") {
            (l, true, r)
        } else if let Some((l, r)) = f.split_once("!=") {
            (l, false, r)
        } else {
            return None;
        };
        let path = parse_path(lhs.trim().strip_prefix('@')?)?;
        return Some(Tok::Filter {
            path,
            equal,
            value: unquote(rhs),
        });
    }
    if inner.starts_with('\'') || inner.starts_with('"') {
        return Some(Tok::Field(unquote(inner)));
    }
    inner.parse::<i64>().ok().map(Tok::Index)
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn eval<'a>(toks: &[Tok], root: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for t in toks {
        let mut next = Vec::new();
        for v in cur {
            match t {
                Tok::Field(name) => next.extend(v.get(name)),
                Tok::Index(i) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                    }
                }
                Tok::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Tok::Filter { path, equal, value } => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter().filter(|el| {
                            let got = eval(path, el);
                            let hit = got.first().is_some_and(|g| scalar_string(g) == *value);
                            hit == *equal
                        }));
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

/// Evaluates a printer-column JSONPath; `None` when nothing matches.
pub fn json_path(obj: &Value, path: &str) -> Option<Value> {
    let toks = parse_path(path)?;
    let found = eval(&toks, obj);
    match found.len() {
        0 => None,
        1 => Some(found[0].clone()),
        _ => Some(Value::String(
            found
                .iter()
                .map(|v| scalar_string(v))
                .collect::<Vec<_>>()
                .join(","),
        )),
    }
}

/// kubectl's relative age ("5s", "3m", "2d4h", ...), i.e. apimachinery's
/// `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(v: &Value, now: jiff::Timestamp) -> Value {
    match v.as_str().and_then(crate::meta::parse_time) {
        Some(t) => json!(human_duration(now.as_second() - t.as_second())),
        None => Value::Null,
    }
}

fn col(name: &str, type_: &str, format: &str, path: &str, description: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        format: format.into(),
        description: description.into(),
        priority: 0,
        json_path: path.into(),
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";

/// Marker path for the synthetic "kind/name" column of core events.
const EVENT_OBJECT: &str = "<event-object>";

fn columns_for(info: &ResourceInfo) -> Vec<PrinterColumn> {
    let name = col("Name", "string", "name", ".metadata.name", NAME_DESC);
    let age = col("Age", "date", "", ".metadata.creationTimestamp", AGE_DESC);
    if let Some(custom) = &info.custom {
        if custom.printer_columns.is_empty() {
            return vec![name, age];
        }
        let mut cols = vec![name];
        cols.extend(custom.printer_columns.iter().cloned());
        return cols;
    }
    match (info.group.as_str(), info.plural.as_str(), info.view) {
        ("", "namespaces", _) => vec![
            name,
            col(
                "Status",
                "string",
                "",
                ".status.phase",
                "The status of the namespace",
            ),
            age,
        ],
        ("", "events", View::CoreEvent) => vec![
            col(
                "Last Seen",
                "date",
                "",
                ".lastTimestamp",
                "Time of the last occurrence",
            ),
            col("Type", "string", "", ".type", "Type of this event"),
            col(
                "Reason",
                "string",
                "",
                ".reason",
                "Why the action was taken",
            ),
            col(
                "Object",
                "string",
                "",
                EVENT_OBJECT,
                "The object this Event is about",
            ),
            col(
                "Message",
                "string",
                "",
                ".message",
                "A human-readable description",
            ),
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions", _) => vec![
            name,
            col(
                "Created At",
                "date",
                "",
                ".metadata.creationTimestamp",
                AGE_DESC,
            ),
        ],
        _ => vec![name, age],
    }
}

fn cell(c: &PrinterColumn, obj: &Value, now: jiff::Timestamp) -> Value {
    if c.json_path == EVENT_OBJECT {
        let kind = crate::meta::str_at(obj, "/involvedObject/kind").unwrap_or_default();
        let name = crate::meta::str_at(obj, "/involvedObject/name").unwrap_or_default();
        return json!(format!("{}/{name}", kind.to_ascii_lowercase()));
    }
    let Some(v) = json_path(obj, &c.json_path) else {
        return Value::Null;
    };
    match c.type_.as_str() {
        "date" => age_of(&v, now),
        "integer" => match &v {
            Value::Number(_) => v,
            Value::String(s) => s.parse::<i64>().map(|n| json!(n)).unwrap_or(v),
            _ => v,
        },
        "number" | "boolean" => v,
        _ => match v {
            Value::String(_) => v,
            Value::Null => Value::Null,
            other => json!(scalar_string(&other)),
        },
    }
}

fn row_object(obj: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(obj.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        })),
    }
}

/// Renders served objects as a Table. `list_meta` becomes `metadata`.
pub fn render(
    info: &ResourceInfo,
    objs: &[Value],
    list_meta: Value,
    include: IncludeObject,
) -> Value {
    let now = jiff::Timestamp::now();
    let cols = columns_for(info);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.type_, "format": c.format,
                   "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(c, o, now)).collect();
            let mut row = json!({"cells": cells});
            if let Some(obj) = row_object(o, include) {
                row["object"] = obj;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj() -> Value {
        json!({
            "metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"regions": ["eu-west-1", "us-east-1"], "replicas": 3},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Synced", "status": "False"}]}
        })
    }

    #[test]
    fn jsonpath_subset() {
        let o = obj();
        assert_eq!(json_path(&o, ".metadata.name"), Some(json!("a")));
        assert_eq!(
            json_path(&o, "{.spec.regions[0]}"),
            Some(json!("eu-west-1"))
        );
        assert_eq!(json_path(&o, ".spec.regions[-1]"), Some(json!("us-east-1")));
        assert_eq!(
            json_path(&o, r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("True"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type=='Synced')].status"),
            Some(json!("False"))
        );
        assert_eq!(
            json_path(&o, ".spec.regions[*]"),
            Some(json!("eu-west-1,us-east-1"))
        );
        assert_eq!(
            json_path(&o, r".metadata.labels.app\.kubernetes\.io/name"),
            Some(json!("x"))
        );
        assert_eq!(
            json_path(&o, ".metadata.labels['app.kubernetes.io/name']"),
            Some(json!("x"))
        );
        assert_eq!(json_path(&o, ".status.missing"), None);
    }

    #[test]
    fn human_durations_match_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(180), "3m");
        assert_eq!(human_duration(190), "3m10s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(4 * 3600 + 120), "4h2m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(2 * 86400), "2d");
        assert_eq!(human_duration(3 * 86400 + 7200), "3d2h");
        assert_eq!(human_duration(30 * 86400), "30d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn accept_negotiation() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
