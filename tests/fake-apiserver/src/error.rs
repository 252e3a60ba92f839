//! API errors rendered as `meta/v1 Status` objects, with the HTTP codes,
//! reasons and message shapes kube-apiserver uses, so clients that branch on
//! `code`/`reason` (kube-rs, kubectl) behave as they would against a real one.

use serde_json::{Value, json};

use crate::registry::ResourceInfo;

/// One `details.causes` entry of a Status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable cause, e.g. `FieldValueRequired`.
    pub reason: String,
    /// Human-readable detail, e.g. `Required value`.
    pub message: String,
    /// JSON path of the offending field, e.g. `spec.replicas`.
    pub field: String,
}

impl Cause {
    pub fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            message: message.into(),
            field: field.into(),
        }
    }

    fn to_json(&self) -> Value {
        let mut c = json!({"reason": self.reason, "message": self.message});
        if !self.field.is_empty() {
            c["field"] = json!(self.field);
        }
        c
    }
}

/// A failed request: becomes a `Status` body with `code` as HTTP status.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// `resource.group` as kube-apiserver prints a qualified resource.
fn qualified(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.plural.clone()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

fn resource_details(info: &ResourceInfo, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": info.plural});
    if !info.group.is_empty() {
        d["group"] = json!(info.group);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(resource_details(info, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified(info)),
            )
        }
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        ApiError {
            details: Some(json!({"name": ns, "kind": "namespaces"})),
            ..Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
        }
    }

    /// A path that matches no registered resource.
    pub fn no_route() -> Self {
        ApiError {
            details: Some(json!({})),
            ..Self::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(resource_details(info, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(info)),
            )
        }
    }

    /// The optimistic-concurrency failure clients retry on.
    pub fn conflict_modified(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict(info: &ResourceInfo, name: &str, detail: &str) -> Self {
        ApiError {
            details: Some(resource_details(info, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                    qualified(info)
                ),
            )
        }
    }

    /// Server-side apply conflicts: 409 with one cause per contested field.
    pub fn apply_conflict(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes.iter().map(|c| c.message.clone()).collect();
        let noun = if causes.len() == 1 {
            "conflict"
        } else {
            "conflicts"
        };
        let mut details = resource_details(info, name);
        details["causes"] = Value::Array(causes.iter().map(Cause::to_json).collect());
        ApiError {
            details: Some(details),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {} {noun}: {}",
                    causes.len(),
                    list.join("\n")
                ),
            )
        }
    }

    /// 422 Invalid, message `Kind.group "name" is invalid: field: detail, ...`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let parts: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let summary = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let mut details = json!({"name": name, "kind": kind});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        details["causes"] = Value::Array(causes.iter().map(Cause::to_json).collect());
        ApiError {
            details: Some(details),
            ..Self::new(
                422,
                "Invalid",
                format!("{gk} \"{name}\" is invalid: {summary}"),
            )
        }
    }

    /// What kube-apiserver returns when a JSON patch cannot be applied
    /// (`NewGenericServerResponse(422, ...)` with the patch error as cause).
    pub fn patch_unprocessable(detail: impl Into<String>) -> Self {
        ApiError {
            details: Some(json!({"causes": [{
                "reason": "UnexpectedServerResponse",
                "message": detail.into(),
            }]})),
            ..Self::new(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        ApiError {
            details: Some(json!({})),
            ..Self::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        }
    }

    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// Appends detail to the message (e.g. why a body was unsupported).
    pub fn with_message_suffix(mut self, detail: &str) -> Self {
        self.message = format!("{} ({detail})", self.message);
        self
    }

    /// 410 for a watch or continue token older than the compaction point.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn forbidden(message: impl Into<String>, details: Value) -> Self {
        ApiError {
            details: Some(details),
            ..Self::new(403, "Forbidden", message)
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object sent as the response body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
