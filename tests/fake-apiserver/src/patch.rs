//! Patch mechanics: JSON merge patch (RFC 7386) and JSON patch (RFC 6902)
//! through the `json-patch` crate, a strategic-merge approximation, and the
//! field bookkeeping behind the server-side apply emulation.

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// RFC 7386 merge patch.
pub fn merge_patch(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

/// Splits a JSON pointer into its parent pointer and last token.
fn split_pointer(path: &str) -> (&str, String) {
    match path.rfind('/') {
        Some(i) => (
            &path[..i],
            path[i + 1..].replace("~1", "/").replace("~0", "~"),
        ),
        None => ("", path.to_string()),
    }
}

/// The `test` op as kube-apiserver's json-patch library evaluates it: a
/// missing key (whose parent exists) equals `null` — kube-runtime's
/// finalizer helper relies on `test /metadata/finalizers null`.
fn k8s_test(doc: &Value, path: &str, expected: &Value) -> Result<(), String> {
    let failed = || format!("testing value {path} failed: test failed");
    if path.is_empty() {
        return if doc == expected {
            Ok(())
        } else {
            Err(failed())
        };
    }
    let (parent, key) = split_pointer(path);
    let Some(container) = doc.pointer(parent) else {
        return Err(format!(
            "test operation does not apply: is missing path: {path}: missing value"
        ));
    };
    let found = match container {
        Value::Object(m) => m.get(&key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => {
            return Err(format!(
                "test operation does not apply: is missing path: {path}: missing value"
            ));
        }
    };
    match found {
        None | Some(Value::Null) if expected.is_null() => Ok(()),
        Some(v) if v == expected => Ok(()),
        _ => Err(failed()),
    }
}

/// RFC 6902 JSON patch with kube-apiserver's error shapes: a malformed
/// patch is 400, an op that cannot apply is 422.
pub fn json_patch(doc: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    let patch: json_patch::Patch =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut work = doc.clone();
    for op in &patch.0 {
        if let PatchOperation::Test(t) = op {
            k8s_test(&work, t.path.as_str(), &t.value).map_err(ApiError::patch_unprocessable)?;
            continue;
        }
        json_patch::patch(&mut work, std::slice::from_ref(op)).map_err(|e| {
            let path = op.path().as_str().to_string();
            let msg = match e.kind {
                PatchErrorKind::InvalidFromPointer => format!(
                    "{} operation does not apply: doc is missing from path: {path}: missing value",
                    op_name(op)
                ),
                PatchErrorKind::CannotMoveInsideItself => {
                    format!("move operation does not apply: cannot move {path} into itself")
                }
                _ => format!(
                    "{} operation does not apply: doc is missing path: {path}: missing value",
                    op_name(op)
                ),
            };
            ApiError::patch_unprocessable(msg)
        })?;
    }
    *doc = work;
    Ok(())
}

/// Strategic merge patch, approximated: merge-patch semantics, plus lists
/// of objects merged by `name` (or `type` for conditions), `$patch:
/// delete|replace`, `$retainKeys` and `$deleteFromPrimitiveList/`; other
/// `$` directives (e.g. `$setElementOrder/`) are dropped. Real SMP uses
/// per-field merge keys and strategies from the Go types.
pub fn strategic_merge(doc: &mut Value, patch: &Value) {
    let Some(pmap) = patch.as_object() else {
        *doc = strip_directives(patch);
        return;
    };
    if pmap.get("$patch").and_then(Value::as_str) == Some("replace") {
        *doc = strip_directives(patch);
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let target = doc.as_object_mut().expect("object");
    if let Some(keep) = pmap.get("$retainKeys").and_then(Value::as_array) {
        target.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    for (k, pv) in pmap {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (target.get_mut(field), pv.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match pv {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(po) if po.get("$patch").and_then(Value::as_str) == Some("delete") => {
                target.remove(k);
            }
            Value::Object(_) => {
                let entry = target.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(entry, pv);
            }
            Value::Array(items) => {
                let merge_key = merge_key_for(k, target.get(k), items);
                match (merge_key, target.get_mut(k)) {
                    (Some(mk), Some(Value::Array(existing))) => {
                        merge_list(existing, items, mk);
                    }
                    _ => {
                        target.insert(k.clone(), strip_directives(pv));
                    }
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

fn merge_key_for(field: &str, existing: Option<&Value>, items: &[Value]) -> Option<&'static str> {
    let all_have = |key: &str| {
        items.iter().all(|i| i.get(key).is_some())
            && existing
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().all(|i| i.get(key).is_some()))
    };
    if field == "conditions" && all_have("type") {
        Some("type")
    } else if all_have("name") {
        Some("name")
    } else {
        None
    }
}

fn merge_list(existing: &mut Vec<Value>, patch: &[Value], key: &str) {
    for p in patch {
        let id = p.get(key).cloned();
        let pos = existing.iter().position(|e| e.get(key) == id.as_ref());
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => strategic_merge(&mut existing[i], p),
            (None, false) => existing.push(strip_directives(p)),
            (None, true) => {}
        }
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

// ---- server-side apply bookkeeping ----

/// Metadata fields owned by the server, never by an apply manager.
const SYSTEM_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The part of an applied configuration a manager owns on this endpoint:
/// `.status` only for the status subresource, everything but `.status`
/// (when a status subresource exists) for the main resource.
pub fn apply_scope(applied: &Value, status_endpoint: bool, has_status: bool) -> Value {
    let mut out = Map::new();
    let Some(m) = applied.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "status" if status_endpoint || !has_status => {
                out.insert(k.clone(), v.clone());
            }
            "status" => {}
            _ if status_endpoint => {}
            "metadata" => {
                if let Some(meta) = v.as_object() {
                    let kept: Map<String, Value> = meta
                        .iter()
                        .filter(|(k, _)| !SYSTEM_META.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if !kept.is_empty() {
                        out.insert(k.clone(), Value::Object(kept));
                    }
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Leaf fields of an applied configuration: scalars, lists (atomic) and
/// empty maps (not the root), each with its path.
pub fn leaves(v: &Value) -> Vec<(Vec<String>, Value)> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
        match v {
            Value::Object(m) if !m.is_empty() || path.is_empty() => {
                for (k, c) in m {
                    path.push(k.clone());
                    walk(c, path, out);
                    path.pop();
                }
            }
            other => out.push((path.clone(), other.clone())),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

pub fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

/// Removes the value at `path`, dropping maps emptied by the removal.
pub fn remove_path(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(m) = v.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        m.remove(first);
        return;
    }
    if let Some(child) = m.get_mut(first) {
        remove_path(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            m.remove(first);
        }
    }
}

/// `.spec.x.y` as kube-apiserver prints field paths in apply conflicts.
pub fn dotted(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// Merges an applied configuration into the live object: maps merge
/// recursively, lists and scalars are replaced, `null` removes.
pub fn apply_merge(live: &mut Value, applied: &Value) {
    let Some(am) = applied.as_object() else {
        *live = applied.clone();
        return;
    };
    if !live.is_object() {
        *live = Value::Object(Map::new());
    }
    let lm = live.as_object_mut().expect("object");
    for (k, av) in am {
        match av {
            Value::Null => {
                lm.remove(k);
            }
            Value::Object(_) => apply_merge(lm.entry(k.clone()).or_insert(Value::Null), av),
            other => {
                lm.insert(k.clone(), other.clone());
            }
        }
    }
}

/// Removes from `live` the fields a manager applied before (`prev`) but no
/// longer applies, unless another manager still applies them.
pub fn remove_dropped(live: &mut Value, prev: &Value, applied: &Value, others: &[&Value]) {
    for (path, _) in leaves(prev) {
        if path.is_empty() {
            continue;
        }
        let still_applied = value_at(applied, &path).is_some()
            || (1..path.len())
                .any(|n| value_at(applied, &path[..n]).is_some_and(|v| !v.is_object()));
        let owned_elsewhere = others.iter().any(|o| value_at(o, &path).is_some());
        if !still_applied && !owned_elsewhere {
            remove_path(live, &path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls() {
        let mut d = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut d, &json!({"a": null, "b": {"c": 5}}));
        assert_eq!(d, json!({"b": {"c": 5, "d": 3}}));
    }

    #[test]
    fn json_patch_test_null_on_missing_key_passes() {
        let mut d = json!({"metadata": {"name": "x"}});
        let p = br#"[{"op":"test","path":"/metadata/finalizers","value":null},
                     {"op":"add","path":"/metadata/finalizers","value":["f"]}]"#;
        json_patch(&mut d, p).unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["f"]));
    }

    #[test]
    fn json_patch_test_failures_are_422_and_atomic() {
        let mut d = json!({"metadata": {"name": "x"}});
        let p = br#"[{"op":"add","path":"/metadata/labels","value":{"a":"b"}},
                     {"op":"test","path":"/metadata/finalizers","value":["f"]}]"#;
        let e = json_patch(&mut d, p).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(e.reason, "Invalid");
        assert_eq!(
            e.details.unwrap()["causes"][0]["message"],
            "testing value /metadata/finalizers failed: test failed"
        );
        assert!(
            d["metadata"].get("labels").is_none(),
            "patch must be atomic"
        );

        let p = br#"[{"op":"test","path":"/spec/missing/deep","value":1}]"#;
        let e = json_patch(&mut d, p).unwrap_err();
        assert!(
            e.details.unwrap()["causes"][0]["message"]
                .as_str()
                .unwrap()
                .contains("is missing path: /spec/missing/deep")
        );

        let e = json_patch(&mut d, b"{not json").unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn json_patch_remove_missing_is_422() {
        let mut d = json!({"a": 1});
        let e = json_patch(&mut d, br#"[{"op":"remove","path":"/b"}]"#).unwrap_err();
        assert_eq!(e.code, 422);
    }

    #[test]
    fn strategic_merge_merges_named_lists() {
        let mut d = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "args": ["x"]},
            {"name": "b", "image": "b:1"}]}});
        let p = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "a:2"}, {"name": "b", "$patch": "delete"}]}});
        strategic_merge(&mut d, &p);
        assert_eq!(
            d,
            json!({"spec": {"containers": [{"name": "a", "image": "a:2", "args": ["x"]}]}})
        );
    }

    #[test]
    fn apply_scope_splits_status() {
        let a = json!({"apiVersion": "v1", "kind": "X",
            "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"x": 1}, "status": {"y": 2}});
        assert_eq!(
            apply_scope(&a, false, true),
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"x": 1}})
        );
        assert_eq!(apply_scope(&a, true, true), json!({"status": {"y": 2}}));
    }

    #[test]
    fn dropped_fields_are_removed_unless_owned_elsewhere() {
        let mut live = json!({"spec": {"a": 1, "b": 2, "c": 3, "list": [1, 2]}});
        let prev = json!({"spec": {"a": 1, "b": 2, "list": [1, 2]}});
        let applied = json!({"spec": {"a": 1}});
        let other = json!({"spec": {"b": 2}});
        remove_dropped(&mut live, &prev, &applied, &[&other]);
        apply_merge(&mut live, &applied);
        assert_eq!(live, json!({"spec": {"a": 1, "b": 2, "c": 3}}));
    }
}
