//! TokenReview (authentication.k8s.io/v1) and SubjectAccessReview
//! (authorization.k8s.io/v1), answered from a small table the tests set
//! ([`Reviews`]): which bearer tokens are valid and for whom, and what each
//! user or group may do in which namespace. This stands in for the real
//! server's authenticators and RBAC authorizer for a client that *asks*
//! (like crossguard's dashboard); requests to the fake itself are still
//! never authenticated or authorised.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Cause};

/// The answers to TokenReviews and SubjectAccessReviews. Empty: every token
/// is unauthenticated and every access denied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reviews {
    /// Valid bearer tokens and who they authenticate.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// What users and groups may do (a subject may appear in several grants).
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// One valid bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenEntry {
    /// The token as the client presents it.
    pub token: String,
    /// `status.user.username` of the TokenReview.
    pub username: String,
    /// `status.user.groups`.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Permission for a user or group, like one RoleBinding rule: a verb on a
/// resource of an API group, in one namespace or (None) in every namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// A username, or a group prefixed with `group:`.
    pub subject: String,
    /// The namespace; absent = cluster-wide (a ClusterRoleBinding).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Verbs (`*` = any).
    pub verbs: Vec<String>,
    /// API group (`""` core, `*` any).
    pub api_group: String,
    /// Resources (`*` = any).
    pub resources: Vec<String>,
}

impl Grant {
    /// `verbs` on `resources` of `api_group` for `subject` in `namespace`.
    pub fn new(
        subject: &str,
        namespace: Option<&str>,
        verbs: &[&str],
        api_group: &str,
        resources: &[&str],
    ) -> Grant {
        Grant {
            subject: subject.to_string(),
            namespace: namespace.map(str::to_string),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            api_group: api_group.to_string(),
            resources: resources.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn covers(&self, subjects: &[String], attrs: &Attributes) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        subjects.contains(&self.subject)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == attrs.namespace)
            && any(&self.verbs, &attrs.verb)
            && (self.api_group == "*" || self.api_group == attrs.group)
            && any(&self.resources, &attrs.resource)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Attributes {
    namespace: String,
    verb: String,
    group: String,
    resource: String,
    subresource: String,
}

/// Answer a TokenReview: the posted object with its `status` filled in.
pub fn token_review(reviews: &Reviews, mut body: Value) -> ApiResult<Value> {
    check_kind(&body, "authentication.k8s.io/v1", "TokenReview")?;
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenReview",
            "",
            vec![Cause::new(
                "FieldValueRequired",
                "spec.token",
                "Required value",
            )],
        ));
    }
    let status = match reviews.tokens.iter().find(|t| t.token == token) {
        Some(t) => json!({
            "authenticated": true,
            "user": {"username": t.username, "uid": format!("uid-{}", t.username), "groups": t.groups},
        }),
        // kube-apiserver answers an unknown token with `authenticated` unset and an
        // empty user (and an error when an authenticator failed).
        None => json!({"user": {}}),
    };
    body["status"] = status;
    Ok(body)
}

/// Answer a SubjectAccessReview: allowed when a grant covers the user or one
/// of the groups; the posted object with its `status` filled in.
pub fn subject_access_review(reviews: &Reviews, mut body: Value) -> ApiResult<Value> {
    check_kind(&body, "authorization.k8s.io/v1", "SubjectAccessReview")?;
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let user = spec.get("user").and_then(Value::as_str).unwrap_or_default();
    let mut subjects = vec![user.to_string()];
    for g in spec
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(g) = g.as_str() {
            subjects.push(format!("group:{g}"));
        }
    }
    let Some(attrs) = spec.get("resourceAttributes") else {
        return Err(ApiError::invalid(
            "authorization.k8s.io",
            "SubjectAccessReview",
            "",
            vec![Cause::new(
                "FieldValueRequired",
                "spec.resourceAttributes",
                "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        ));
    };
    let attrs: Attributes = serde_json::from_value(attrs.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    if user.is_empty() && subjects.len() == 1 {
        return Err(ApiError::invalid(
            "authorization.k8s.io",
            "SubjectAccessReview",
            "",
            vec![Cause::new(
                "FieldValueRequired",
                "spec.user",
                "Invalid value: \"\": at least one of user or group must be specified",
            )],
        ));
    }
    // The fake grants no subresource access through a resource grant.
    let allowed =
        attrs.subresource.is_empty() && reviews.grants.iter().any(|g| g.covers(&subjects, &attrs));
    body["status"] = if allowed {
        json!({"allowed": true, "reason": "allowed by the fake's review table"})
    } else {
        json!({"allowed": false})
    };
    Ok(body)
}

fn check_kind(body: &Value, api_version: &str, kind: &str) -> ApiResult<()> {
    if body.get("kind").and_then(Value::as_str) == Some(kind)
        && body.get("apiVersion").and_then(Value::as_str) == Some(api_version)
    {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "the body is not a {api_version} {kind}"
        )))
    }
}
