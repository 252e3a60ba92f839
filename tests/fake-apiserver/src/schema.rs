//! Custom resource handling against a CRD version's `openAPIV3Schema`, in the
//! order kube-apiserver applies it: prune unknown fields (and non-nullable
//! nulls), apply `default`s, then validate the basics.
//!
//! Validated: type, required, enum, pattern, minimum/maximum (+exclusive),
//! minLength/maxLength, minItems/maxItems, nullable, int-or-string.
//! CEL rules (`x-kubernetes-validations`) are evaluated with kube-cel, the
//! same engine kube's client-side validation uses, unless a value has the wrong
//! type or an unsupported enum value (kube-apiserver's "blocking" errors).
//! Not evaluated: allOf/anyOf/oneOf/not, format, min/maxProperties,
//! list-type uniqueness.

use serde_json::{Map, Value};

use crate::error::Cause;

/// Result of running an object through its schema.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Validation failures (422 when non-empty).
    pub causes: Vec<Cause>,
    /// Paths of unknown fields that were pruned (`fieldValidation=Strict`
    /// turns these into errors).
    pub pruned: Vec<String>,
}

/// Prunes and defaults `obj` in place, then validates it.
pub fn process(schema: &Value, obj: &mut Value) -> Outcome {
    let mut out = Outcome::default();
    prune(schema, obj, "", true, &mut out.pruned);
    apply_defaults(schema, obj, true);
    validate(schema, obj, "", true, &mut out.causes);
    out
}

/// Evaluates the schema's CEL rules (`x-kubernetes-validations`) on `obj`,
/// with `old` for transition rules; failures become `FieldValueInvalid`
/// causes carrying the rule's message, as kube-apiserver reports them.
pub fn cel(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    match kube_cel::validate(schema, obj, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| {
                let field = e.field_path.clone();
                let message = format!("Invalid value: \"object\": {}", e.message);
                Cause::new("FieldValueInvalid", field, message)
            })
            .collect(),
    }
}

/// The compiled regex of a schema `pattern` (None when it does not compile), compiled once
/// per distinct pattern: compiling it on every write was a quarter of this server's CPU
/// in the scale benchmark (every status write is validated against the whole schema).
fn pattern(p: &str) -> Option<regex::Regex> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> =
        LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    compiled
        .entry(p.to_string())
        .or_insert_with(|| regex::Regex::new(p).ok())
        .clone()
}

/// Drops the causes about values `old` already had at the same path (validation
/// ratcheting: what was stored before the schema forbade it may stay, unchanged).
pub fn ratchet(causes: Vec<Cause>, new: &Value, old: Option<&Value>) -> Vec<Cause> {
    let Some(old) = old else { return causes };
    causes
        .into_iter()
        .filter(|c| match (at_path(new, &c.field), at_path(old, &c.field)) {
            (Some(n), Some(o)) => n != o,
            (None, None) => false,
            _ => true,
        })
        .collect()
}

/// The value at a cause's field path (`spec.items[0].name`); None when absent.
fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            cur = cur.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// Root fields every object carries whatever the schema says.
fn is_root_meta(root: bool, key: &str) -> bool {
    root && matches!(key, "apiVersion" | "kind" | "metadata")
}

fn prune(schema: &Value, v: &mut Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    if flag(schema, "x-kubernetes-int-or-string") {
        return;
    }
    match v {
        Value::Object(map) => {
            if flag(schema, "x-kubernetes-embedded-resource") {
                // apiVersion/kind/metadata of embedded objects survive pruning.
                return prune_object(schema, map, path, true, pruned);
            }
            prune_object(schema, map, path, root, pruned)
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, it) in items.iter_mut().enumerate() {
                    prune(item_schema, it, &format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    root: bool,
    pruned: &mut Vec<String>,
) {
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let props = properties(schema);
    let additional = schema.get("additionalProperties");
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if is_root_meta(root, &k) {
            continue;
        }
        let child_schema = props
            .and_then(|p| p.get(&k))
            .or_else(|| additional.filter(|a| a.is_object()));
        match child_schema {
            Some(cs) => {
                if map[&k].is_null() && !flag(cs, "nullable") {
                    map.remove(&k);
                    continue;
                }
                if let Some(child) = map.get_mut(&k) {
                    prune(cs, child, &join(path, &k), false, pruned);
                }
            }
            None if preserve || additional == Some(&Value::Bool(true)) => {}
            None => {
                map.remove(&k);
                pruned.push(join(path, &k));
            }
        }
    }
}

fn apply_defaults(schema: &Value, v: &mut Value, root: bool) {
    match v {
        Value::Object(map) => {
            if let Some(props) = properties(schema) {
                for (k, ps) in props {
                    if is_root_meta(root, k) {
                        continue;
                    }
                    if !map.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = map.get_mut(k) {
                        apply_defaults(ps, child, false);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let props = properties(schema);
                for (k, child) in map.iter_mut() {
                    if props.is_none_or(|p| !p.contains_key(k)) {
                        apply_defaults(add, child, false);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for it in items {
                    apply_defaults(is, it, false);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// How kube-apiserver prints a value inside "Invalid value: ..." messages.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    match want {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn validate(schema: &Value, v: &Value, path: &str, root: bool, causes: &mut Vec<Cause>) {
    if v.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    schema["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(v.is_string() || type_ok("integer", v)) {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{}\": {path} in body must be of type integer-or-string: \"{}\"",
                    type_name(v),
                    type_name(v)
                ),
            ));
        }
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str)
        && !type_ok(want, v)
    {
        causes.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"{}\": {path} in body must be of type {want}: \"{}\"",
                type_name(v),
                type_name(v)
            ),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(show).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                list.join(", ")
            ),
        ));
    }
    let invalid = |causes: &mut Vec<Cause>, detail: String| {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {}: {path} in body {detail}", show(v)),
        ));
    };
    match v {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause::new(
                    "FieldValueTooLong",
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                invalid(causes, format!("should be at least {min} chars long"));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && let Some(re) = pattern(p)
                && !re.is_match(s)
            {
                invalid(causes, format!("should match '{p}'"));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if flag(schema, "exclusiveMinimum") {
                    if x <= min {
                        invalid(causes, format!("should be greater than {}", num(min)));
                    }
                } else if x < min {
                    invalid(
                        causes,
                        format!("should be greater than or equal to {}", num(min)),
                    );
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if flag(schema, "exclusiveMaximum") {
                    if x >= max {
                        invalid(causes, format!("should be less than {}", num(max)));
                    }
                } else if x > max {
                    invalid(
                        causes,
                        format!("should be less than or equal to {}", num(max)),
                    );
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {len}: must have at most {max} items"),
                ));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && len < min
            {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {len}: {path} in body should have at least {min} items"
                    ),
                ));
            }
            if let Some(is) = schema.get("items") {
                for (i, it) in items.iter().enumerate() {
                    validate(is, it, &format!("{path}[{i}]"), false, causes);
                }
            }
        }
        Value::Object(map) => {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) && !is_root_meta(root, r) {
                        causes.push(Cause::new(
                            "FieldValueRequired",
                            join(path, r),
                            "Required value",
                        ));
                    }
                }
            }
            let props = properties(schema);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                if is_root_meta(root, k) {
                    continue;
                }
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    validate(cs, child, &join(path, k), false, causes);
                }
            }
        }
        _ => {}
    }
}

fn num(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["accountId"],
                    "properties": {
                        "accountId": {"type": "string", "pattern": "^[0-9]{12}$"},
                        "mode": {"type": "string", "enum": ["ReadOnly", "Automated"], "default": "ReadOnly"},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
                        "name": {"type": "string", "minLength": 2, "maxLength": 4},
                        "regions": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true},
                        "nested": {"type": "object", "default": {}, "properties": {
                            "interval": {"type": "string", "default": "5m"}}}
                    }
                },
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn prunes_unknown_fields_but_keeps_preserved_ones() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "T", "metadata": {"name": "a"},
            "spec": {"accountId": "123456789012", "bogus": 1,
                "tags": {"k": "v"}, "free": {"anything": {"goes": true}}},
            "extra": true});
        let out = process(&schema(), &mut o);
        assert!(out.causes.is_empty());
        let mut pruned = out.pruned.clone();
        pruned.sort();
        assert_eq!(pruned, vec!["extra", "spec.bogus"]);
        assert!(o.get("extra").is_none());
        assert!(o["spec"].get("bogus").is_none());
        assert_eq!(o["spec"]["tags"]["k"], "v");
        assert_eq!(o["spec"]["free"]["anything"]["goes"], true);
        assert_eq!(o["metadata"]["name"], "a");
    }

    #[test]
    fn applies_defaults_recursively() {
        let mut o = json!({"spec": {"accountId": "123456789012"}});
        assert!(process(&schema(), &mut o).causes.is_empty());
        assert_eq!(o["spec"]["mode"], "ReadOnly");
        assert_eq!(o["spec"]["nested"]["interval"], "5m");
    }

    #[test]
    fn reports_each_violation_with_its_field() {
        let mut o = json!({"spec": {"mode": "Chaos", "replicas": 9, "name": "toolong",
            "regions": [], "port": true, "tags": {"k": 1}}});
        let causes = process(&schema(), &mut o).causes;
        let fields: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason.as_str()))
            .collect();
        assert!(fields.contains(&("spec.accountId", "FieldValueRequired")));
        assert!(fields.contains(&("spec.mode", "FieldValueNotSupported")));
        assert!(fields.contains(&("spec.replicas", "FieldValueInvalid")));
        assert!(fields.contains(&("spec.name", "FieldValueTooLong")));
        assert!(fields.contains(&("spec.regions", "FieldValueInvalid")));
        assert!(fields.contains(&("spec.port", "FieldValueTypeInvalid")));
        assert!(fields.contains(&("spec.tags.k", "FieldValueTypeInvalid")));
        let replicas = causes.iter().find(|c| c.field == "spec.replicas").unwrap();
        assert_eq!(
            replicas.message,
            "Invalid value: 9: spec.replicas in body should be less than or equal to 5"
        );
    }

    #[test]
    fn pattern_and_type_errors() {
        let mut o =
            json!({"spec": {"accountId": "abc", "replicas": "two", "regions": ["a", "b", "c"]}});
        let causes = process(&schema(), &mut o).causes;
        let msg = |f: &str| {
            causes
                .iter()
                .find(|c| c.field == f)
                .unwrap()
                .message
                .clone()
        };
        assert_eq!(
            msg("spec.accountId"),
            "Invalid value: \"abc\": spec.accountId in body should match '^[0-9]{12}$'"
        );
        assert_eq!(
            msg("spec.replicas"),
            "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        );
        assert_eq!(
            msg("spec.regions"),
            "Too many: 3: must have at most 2 items"
        );
    }

    #[test]
    fn non_nullable_nulls_are_pruned_then_defaulted() {
        let mut o = json!({"spec": {"accountId": "123456789012", "mode": null}});
        assert!(process(&schema(), &mut o).causes.is_empty());
        assert_eq!(o["spec"]["mode"], "ReadOnly");
    }
}
