//! HTTP front: one catch-all handler that records the request, parses the
//! Kubernetes URL layout, and dispatches to discovery, ops or watch.
//!
//! Paths handled: /version, /healthz|livez|readyz, /api, /api/v1, /apis,
//! /apis/{g}, /apis/{g}/{v}, and resource paths
//! `{prefix}/[watch/][namespaces/{ns}/]{resource}[/{name}[/{subresource}]]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Shared;
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::ops::{DeleteOpts, ListParams, PatchType, WriteOpts};
use crate::record::RecordedRequest;
use crate::registry::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::State as Store;
use crate::table::{self, IncludeObject};
use crate::watch::{self, WatchParams};

/// Request bodies larger than this are refused (kube-apiserver: 3 MiB objects).
const MAX_BODY: usize = 64 * 1024 * 1024;

struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: &str) -> Self {
        Query(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

/// What the routing needs from the request.
struct Req {
    method: Method,
    query: Query,
    content_type: String,
    accept: String,
    host: String,
    body: Bytes,
}

fn json_response(code: u16, v: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The single axum handler.
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let latency = *shared.latency.lock().unwrap_or_else(|p| p.into_inner());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE);
    let mut rec = RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        content_type: content_type.clone(),
        user_agent: header_str(&parts.headers, header::USER_AGENT),
        authorized: parts.headers.contains_key(header::AUTHORIZATION),
        status: 0,
    };
    let response = match shared.recorder.take_fault(parts.method.as_str(), &path) {
        Some(code) => error_response(&injected(code)),
        None => match axum::body::to_bytes(body, MAX_BODY).await {
            Err(e) => error_response(&ApiError::bad_request(e.to_string())),
            Ok(body) => {
                let r = Req {
                    method: parts.method.clone(),
                    query: Query::parse(&raw_query),
                    content_type: content_type
                        .unwrap_or_default()
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_ascii_lowercase(),
                    accept: header_str(&parts.headers, header::ACCEPT).unwrap_or_default(),
                    host: header_str(&parts.headers, header::HOST).unwrap_or_default(),
                    body,
                };
                route(&shared, &path, r).unwrap_or_else(|e| error_response(&e))
            }
        },
    };
    rec.status = response.status().as_u16();
    tracing::debug!(method = %rec.method, path = %rec.path, status = rec.status, "request");
    shared.recorder.record(rec);
    response
}

fn injected(code: u16) -> ApiError {
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    ApiError::new(code, reason, format!("injected failure ({code})"))
}

fn route(shared: &Arc<Shared>, path: &str, req: Req) -> ApiResult<Response> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let is_get = req.method == Method::GET;
    match segs.as_slice() {
        [] if is_get => Ok(json_response(
            200,
            &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}),
        )),
        ["version"] if is_get => Ok(json_response(200, &discovery::version())),
        ["healthz" | "livez" | "readyz", ..] if is_get => {
            Ok((StatusCode::OK, "ok").into_response())
        }
        ["api"] if is_get => Ok(json_response(200, &discovery::api_versions(&req.host))),
        ["apis"] if is_get => {
            let st = shared.state.lock().expect("state lock");
            Ok(json_response(200, &discovery::api_group_list(&st.registry)))
        }
        ["apis", group] if is_get => {
            let st = shared.state.lock().expect("state lock");
            discovery::api_group(&st.registry, group)
                .map(|d| json_response(200, &d))
                .ok_or_else(ApiError::no_route)
        }
        ["api", "v1"] if is_get => discovery_list(shared, "", "v1"),
        ["apis", "authentication.k8s.io", "v1", "tokenreviews"] => {
            review(shared, req, crate::reviews::token_review)
        }
        ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"] => {
            review(shared, req, crate::reviews::subject_access_review)
        }
        ["apis", group, version] if is_get => discovery_list(shared, group, version),
        ["api", version, rest @ ..] if !rest.is_empty() => resource(shared, "", version, rest, req),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            resource(shared, group, version, rest, req)
        }
        _ => Err(ApiError::no_route()),
    }
}

/// A review is create-only (POST, 201) and never stored, like kube-apiserver's.
fn review(
    shared: &Arc<Shared>,
    req: Req,
    answer: fn(&crate::reviews::Reviews, Value) -> ApiResult<Value>,
) -> ApiResult<Response> {
    if req.method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let body = decode_body(&req)?;
    let table = shared
        .reviews
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(json_response(201, &answer(&table, body)?))
}

fn discovery_list(shared: &Arc<Shared>, group: &str, version: &str) -> ApiResult<Response> {
    let st = shared.state.lock().expect("state lock");
    discovery::resource_list(&st.registry, group, version)
        .map(|d| json_response(200, &d))
        .ok_or_else(ApiError::no_route)
}

fn list_params(q: &Query) -> ApiResult<ListParams> {
    Ok(ListParams {
        label: LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?,
        field: FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())?,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_token: q.get("continue").map(str::to_string),
    })
}

fn write_opts(q: &Query) -> WriteOpts {
    WriteOpts {
        field_manager: q.get("fieldManager").map(str::to_string),
        force: q.flag("force"),
        strict: q.get("fieldValidation") == Some("Strict"),
    }
}

fn decode_body(req: &Req) -> ApiResult<Value> {
    if req.body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if req.content_type == "application/vnd.kubernetes.protobuf" {
        return crate::proto::decode(&req.body).map_err(|e| {
            ApiError::unsupported_media_type(&["application/json", "application/yaml"])
                .with_message_suffix(&e)
        });
    }
    let v: Result<Value, String> = if req.content_type.contains("yaml") {
        serde_yaml::from_slice(&req.body).map_err(|e| e.to_string())
    } else if req.content_type.is_empty() || req.content_type.contains("json") {
        serde_json::from_slice(&req.body).map_err(|e| e.to_string())
    } else {
        return Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ]));
    };
    v.map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

fn delete_opts(req: &Req) -> ApiResult<DeleteOpts> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let propagation = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| req.query.get("propagationPolicy").map(str::to_string))
        .or_else(
            || match body.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some("Orphan".into()),
                _ => None,
            },
        );
    let s = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_string);
    Ok(DeleteOpts {
        propagation,
        precondition_uid: s("/preconditions/uid"),
        precondition_rv: s("/preconditions/resourceVersion"),
    })
}

fn patch_type(ct: &str) -> ApiResult<PatchType> {
    match ct {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
            "application/strategic-merge-patch+json",
        ])),
    }
}

/// Runs a write against the real state, or a throwaway copy for dryRun.
fn write<T>(
    shared: &Arc<Shared>,
    dry_run: bool,
    f: impl FnOnce(&mut Store) -> ApiResult<T>,
) -> ApiResult<T> {
    let mut st = shared.state.lock().expect("state lock");
    if dry_run {
        let mut scratch = st.dry_clone();
        f(&mut scratch)
    } else {
        f(&mut st)
    }
}

fn resource(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    req: Req,
) -> ApiResult<Response> {
    let (legacy_watch, rest) = match rest.split_first() {
        Some((&"watch", r)) => (true, r),
        _ => (false, rest),
    };
    // `namespaces/{ns}/...` scopes a namespaced resource, except for the
    // namespace object's own subresources (`namespaces/{name}/status`).
    let (ns, rest) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"))
    {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.is_empty() || rest.len() > 3 {
        return Err(ApiError::no_route());
    }
    let (plural, name, sub) = (rest[0], rest.get(1).copied(), rest.get(2).copied());
    let info: ResourceInfo = {
        let st = shared.state.lock().expect("state lock");
        st.registry
            .find(group, version, plural)
            .cloned()
            .ok_or_else(ApiError::no_route)?
    };
    if (!info.namespaced && ns.is_some()) || (info.namespaced && ns.is_none() && name.is_some()) {
        return Err(ApiError::no_route());
    }
    let ns = ns.as_deref();
    let q = &req.query;
    let dry_run = q.get("dryRun") == Some("All");
    let table =
        table::wants_table(&req.accept).then(|| IncludeObject::parse(q.get("includeObject")));
    let m = &req.method;

    match (name, sub) {
        (None, _) if *m == Method::GET => {
            let lp = list_params(q)?;
            if legacy_watch || q.flag("watch") {
                return start_watch(shared, info, ns, lp, q, table);
            }
            let res = {
                let mut st = shared.state.lock().expect("state lock");
                st.list_served(&info, ns, &lp)?
            };
            let mut list_meta = json!({"resourceVersion": res.resource_version});
            if let Some(c) = &res.continue_token {
                list_meta["continue"] = json!(c);
            }
            if let Some(n) = res.remaining {
                list_meta["remainingItemCount"] = json!(n);
            }
            if let Some(include) = table {
                return Ok(json_response(
                    200,
                    &table::render(&info, &res.items, list_meta, include),
                ));
            }
            Ok(json_response(
                200,
                &json!({"apiVersion": info.api_version(), "kind": info.list_kind(),
                        "metadata": list_meta, "items": res.items}),
            ))
        }
        (None, _) if *m == Method::POST => {
            if info.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let body = decode_body(&req)?;
            let created = write(shared, dry_run, |st| {
                st.create(&info, ns, body, &write_opts(q))
            })?;
            Ok(json_response(201, &created))
        }
        (None, _) if *m == Method::DELETE => {
            let lp = list_params(q)?;
            let out = write(shared, dry_run, |st| st.delete_collection(&info, ns, &lp))?;
            Ok(json_response(200, &out))
        }
        (None, _) => Err(ApiError::method_not_allowed()),
        (Some(name), None) if *m == Method::GET && legacy_watch => {
            let mut lp = list_params(q)?;
            lp.field = FieldSelector::parse(&format!("metadata.name={name}"))?;
            start_watch(shared, info, ns, lp, q, table)
        }
        (Some(name), None | Some("status")) if *m == Method::GET => {
            if sub.is_some() && !info.status {
                return Err(ApiError::no_route());
            }
            let obj = shared
                .state
                .lock()
                .expect("state lock")
                .get_served(&info, ns, name)?;
            if let Some(include) = table {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(json!(""));
                return Ok(json_response(
                    200,
                    &table::render(&info, &[obj], json!({"resourceVersion": rv}), include),
                ));
            }
            Ok(json_response(200, &obj))
        }
        (Some(name), None | Some("status")) if *m == Method::PUT => {
            let status_ep = sub == Some("status");
            if status_ep && !info.status {
                return Err(ApiError::no_route());
            }
            let body = decode_body(&req)?;
            let out = write(shared, dry_run, |st| {
                st.update(&info, ns, name, body, status_ep, &write_opts(q))
            })?;
            Ok(json_response(200, &out))
        }
        (Some(name), None | Some("status")) if *m == Method::PATCH => {
            let status_ep = sub == Some("status");
            if status_ep && !info.status {
                return Err(ApiError::no_route());
            }
            let pt = patch_type(&req.content_type)?;
            if req.body.is_empty() {
                return Err(ApiError::bad_request("the request body is empty"));
            }
            let (out, created) = write(shared, dry_run, |st| {
                st.patch(&info, ns, name, pt, &req.body, status_ep, &write_opts(q))
            })?;
            Ok(json_response(if created { 201 } else { 200 }, &out))
        }
        (Some(name), None) if *m == Method::DELETE => {
            let opts = delete_opts(&req)?;
            let out = write(shared, dry_run, |st| st.delete(&info, ns, name, &opts))?;
            Ok(json_response(200, &out))
        }
        (Some(name), Some("eviction")) if info.is("", "pods") => {
            if *m != Method::POST {
                return Err(ApiError::method_not_allowed());
            }
            let nsv = ns.unwrap_or_default();
            let out = write(shared, dry_run, |st| st.evict(&info, nsv, name))?;
            Ok(json_response(201, &out))
        }
        (Some(_), Some(s)) if s != "status" || !info.status => Err(ApiError::no_route()),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn start_watch(
    shared: &Arc<Shared>,
    info: ResourceInfo,
    ns: Option<&str>,
    lp: ListParams,
    q: &Query,
    table: Option<IncludeObject>,
) -> ApiResult<Response> {
    let send_initial_events = q.flag("sendInitialEvents");
    let bookmarks = q.flag("allowWatchBookmarks");
    if send_initial_events {
        // kube-apiserver's validation for streaming lists.
        let mut causes = Vec::new();
        if q.get("resourceVersionMatch") != Some("NotOlderThan") {
            causes.push(crate::error::Cause::new(
                "FieldValueInvalid",
                "resourceVersionMatch",
                "Invalid value: \"\": sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !bookmarks {
            causes.push(crate::error::Cause::new(
                "FieldValueForbidden",
                "allowWatchBookmarks",
                "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", causes));
        }
    }
    let params = WatchParams {
        info,
        namespace: ns.map(str::to_string),
        label: lp.label,
        field: lp.field,
        resource_version: q.get("resourceVersion").map(str::to_string),
        send_initial_events,
        bookmarks,
        timeout: q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|t| *t > 0)
            .map(Duration::from_secs),
        table,
    };
    let stream = watch::start(shared.clone(), params)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}
