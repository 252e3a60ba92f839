//! Minimal decoding of Kubernetes protobuf request bodies.
//!
//! Since client-go 1.31 the typed clientset sends built-in objects as
//! `application/vnd.kubernetes.protobuf`, so `kubectl create namespace`
//! (and `create configmap|secret`) POST protobuf. Responses are always
//! JSON (client-go decodes by the response Content-Type). Only the types
//! below are understood; any other protobuf body gets 415.

use base64::Engine;
use serde_json::{Map, Value, json};

/// How one field is decoded.
#[derive(Clone, Copy)]
enum F {
    Str,
    Int,
    Bool,
    /// metav1.Time {seconds=1, nanos=2} -> RFC 3339.
    Time,
    Msg(&'static [Field]),
    RepStr,
    RepMsg(&'static [Field]),
    MapStr,
    MapBytes,
}

type Field = (u32, &'static str, F);

const OWNER_REF: &[Field] = &[
    (1, "kind", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (5, "apiVersion", F::Str),
    (6, "controller", F::Bool),
    (7, "blockOwnerDeletion", F::Bool),
];

const OBJECT_META: &[Field] = &[
    (1, "name", F::Str),
    (2, "generateName", F::Str),
    (3, "namespace", F::Str),
    (5, "uid", F::Str),
    (6, "resourceVersion", F::Str),
    (7, "generation", F::Int),
    (8, "creationTimestamp", F::Time),
    (9, "deletionTimestamp", F::Time),
    (10, "deletionGracePeriodSeconds", F::Int),
    (11, "labels", F::MapStr),
    (12, "annotations", F::MapStr),
    (13, "ownerReferences", F::RepMsg(OWNER_REF)),
    (14, "finalizers", F::RepStr),
];

const NAMESPACE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(&[(1, "finalizers", F::RepStr)])),
    (3, "status", F::Msg(&[(1, "phase", F::Str)])),
];

const CONFIG_MAP: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapStr),
    (3, "binaryData", F::MapBytes),
    (4, "immutable", F::Bool),
];

const SECRET: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapBytes),
    (3, "type", F::Str),
    (4, "stringData", F::MapStr),
    (5, "immutable", F::Bool),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    match (api_version, kind) {
        ("v1", "Namespace") => Some(NAMESPACE),
        ("v1", "ConfigMap") => Some(CONFIG_MAP),
        ("v1", "Secret") => Some(SECRET),
        _ => None,
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
        let end = self.pos.checked_add(len).ok_or("length overflow")?;
        let b = self.buf.get(self.pos..end).ok_or("truncated field")?;
        self.pos = end;
        Ok(b)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => {
                self.pos += 8;
                Ok(())
            }
            2 => self.bytes().map(|_| ()),
            5 => {
                self.pos += 4;
                Ok(())
            }
            w => Err(format!("unsupported wire type {w}")),
        }
    }

    /// Iterates `(field number, wire type)` keys until the end.
    fn next_key(&mut self) -> Result<Option<(u32, u64)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        Ok(Some(((key >> 3) as u32, key & 7)))
    }
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), json!(""));
    while let Some((num, wire)) = r.next_key()? {
        match (num, wire) {
            (1, 2) => k = utf8(r.bytes()?)?,
            (2, 2) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(r.bytes()?))
            }
            (2, 2) => v = json!(utf8(r.bytes()?)?),
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

/// A zero time (the Go zero value) decodes to `None`.
fn time(b: &[u8]) -> Result<Option<Value>, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut secs = 0i64;
    while let Some((num, wire)) = r.next_key()? {
        match (num, wire) {
            (1, 0) => secs = r.varint()? as i64,
            (_, w) => r.skip(w)?,
        }
    }
    if secs == 0 {
        return Ok(None);
    }
    let ts = jiff::Timestamp::from_second(secs).map_err(|e| e.to_string())?;
    Ok(Some(json!(crate::meta::format_seconds(ts))))
}

fn decode_message(fields: &[Field], b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut out = Map::new();
    while let Some((num, wire)) = r.next_key()? {
        let Some((_, name, kind)) = fields.iter().find(|(n, _, _)| *n == num) else {
            r.skip(wire)?;
            continue;
        };
        let name = name.to_string();
        match (kind, wire) {
            (F::Str, 2) => {
                // gogo-protobuf writes empty strings; JSON would omit them.
                let s = utf8(r.bytes()?)?;
                if !s.is_empty() {
                    out.insert(name, json!(s));
                }
            }
            (F::Int, 0) => {
                let n = r.varint()? as i64;
                if n != 0 {
                    out.insert(name, json!(n));
                }
            }
            (F::Bool, 0) => {
                out.insert(name, json!(r.varint()? != 0));
            }
            (F::Time, 2) => {
                if let Some(t) = time(r.bytes()?)? {
                    out.insert(name, t);
                }
            }
            (F::Msg(inner), 2) => {
                let v = decode_message(inner, r.bytes()?)?;
                out.insert(name, v);
            }
            (F::RepStr, 2) => {
                let s = utf8(r.bytes()?)?;
                push(&mut out, name, json!(s));
            }
            (F::RepMsg(inner), 2) => {
                let v = decode_message(inner, r.bytes()?)?;
                push(&mut out, name, v);
            }
            (F::MapStr | F::MapBytes, 2) => {
                let (k, v) = map_entry(r.bytes()?, matches!(kind, F::MapBytes))?;
                let m = out.entry(name).or_insert_with(|| json!({}));
                m[k] = v;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: String, v: Value) {
    if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
        a.push(v);
    }
}

/// Decodes a `k8s\0`-prefixed runtime.Unknown envelope into JSON.
/// `Err` carries the reason (unknown type, malformed body).
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let inner = body
        .strip_prefix(b"k8s\0")
        .ok_or("missing protobuf magic")?;
    let mut r = Reader { buf: inner, pos: 0 };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((num, wire)) = r.next_key()? {
        match (num, wire) {
            (1, 2) => {
                let tm = decode_message(
                    &[(1, "apiVersion", F::Str), (2, "kind", F::Str)],
                    r.bytes()?,
                )?;
                api_version = tm["apiVersion"].as_str().unwrap_or_default().to_string();
                kind = tm["kind"].as_str().unwrap_or_default().to_string();
            }
            (2, 2) => raw = r.bytes()?,
            (_, w) => r.skip(w)?,
        }
    }
    let schema = schema_for(&api_version, &kind)
        .ok_or_else(|| format!("protobuf bodies for {api_version} {kind} are not supported"))?;
    let mut obj = decode_message(schema, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_namespace_envelope() {
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let labels = [field(1, b"team"), field(2, b"a")].concat();
        let meta = [field(1, b"team-a"), field(11, &labels)].concat();
        let ns = [field(1, &meta), field(2, &field(1, b"kubernetes"))].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &ns)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "team-a", "labels": {"team": "a"}},
                "spec": {"finalizers": ["kubernetes"]}})
        );
    }

    #[test]
    fn secret_bytes_become_base64() {
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let entry = [field(1, b"k"), field(2, b"hi")].concat();
        let secret = [field(1, &field(1, b"s")), field(2, &entry)].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        assert_eq!(decode(&body).unwrap()["data"]["k"], "aGk=");
    }

    #[test]
    fn unknown_types_are_refused() {
        let type_meta = [field(1, b"apps/v1"), field(2, b"Deployment")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta)].concat();
        assert!(decode(&body).unwrap_err().contains("not supported"));
    }
}
