//! The read-only web dashboard (issue #16), served on the operator's HTTP port: an
//! overview of the CustomerAccounts and ManagedClusters the viewer may see, a page per
//! cluster (cost and savings charts from its history, the latest recommendations with
//! their reasoning, recent actions and refusals, the account's key-audit findings) and the
//! history as JSON. Server-rendered HTML and SVG, no script, nothing from a CDN.
//!
//! Access follows Kubernetes RBAC ([`access`]): the viewer's bearer token (an
//! `Authorization: Bearer` header, or the HttpOnly cookie the sign-in form sets) is checked
//! with a TokenReview and each namespace with a SubjectAccessReview for `get
//! managedclusters` (clusters, history, report) or `get customeraccounts` (accounts and
//! their key audit). No token or an invalid one: 401. A namespace the viewer may not read
//! is left out of the overview, and its pages answer 403.

pub mod access;
pub mod chart;
pub mod html;
pub mod views;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kube::Api;
use kube::api::ListParams;

use crate::api::{CustomerAccount, ManagedCluster};
use crate::history::{self, HistoryPoint};
use crate::store::Store;
use access::{CUSTOMER_ACCOUNTS, CachedReviewer, KubeReviewer, MANAGED_CLUSTERS, Reviewer, Viewer};

/// The cookie that carries the viewer's token after signing in (HttpOnly, SameSite=Strict).
pub const TOKEN_COOKIE: &str = "crossguard_token";
/// How long the sign-in cookie lives, in seconds (the token's own expiry still applies).
pub const COOKIE_MAX_AGE_SECONDS: u32 = 8 * 3600;
/// The ranges the cluster page offers, in days.
pub const RANGES: [u32; 4] = [7, 30, 90, 365];
/// The range of a cluster page that names none, in days.
pub const DEFAULT_RANGE_DAYS: u32 = 30;
/// The longest history a request may ask for: a year and a day (leap years).
pub const MAX_SINCE_DAYS: i64 = 366;

/// What the dashboard reads with: the operator's own client (objects) and store (history,
/// reports), and the reviewer deciding what each viewer may see.
pub struct Dashboard {
    client: kube::Client,
    store: Store,
    reviewer: Arc<dyn Reviewer>,
    /// The one namespace the operator watches (`--namespace`), or None for all.
    namespace: Option<String>,
}

impl Dashboard {
    /// A dashboard reading through `client` and `store`, reviewing access through `client`
    /// with answers cached for [`access::CACHE_TTL`]; only `namespace` when the operator
    /// watches only that one.
    pub fn new(client: kube::Client, store: Store, namespace: Option<String>) -> Dashboard {
        let reviewer = Arc::new(CachedReviewer::new(KubeReviewer::new(client.clone())));
        Dashboard {
            client,
            store,
            reviewer,
            namespace,
        }
    }

    fn all<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }
}

/// Where the HTTP server finds the dashboard: it starts before the Kubernetes client and
/// the store exist, so the dashboard is put in once they do (until then its pages answer
/// 503). A disabled dashboard serves no route at all.
#[derive(Default)]
pub struct Slot {
    enabled: bool,
    dashboard: OnceLock<Arc<Dashboard>>,
}

impl Slot {
    /// A slot for an enabled (`true`) or disabled dashboard.
    pub fn new(enabled: bool) -> Slot {
        Slot {
            enabled,
            dashboard: OnceLock::new(),
        }
    }

    /// Whether the dashboard's routes are served.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Put the dashboard in (once; later calls are ignored).
    pub fn fill(&self, dashboard: Dashboard) {
        let _ = self.dashboard.set(Arc::new(dashboard));
    }

    fn get(&self) -> Option<Arc<Dashboard>> {
        self.dashboard.get().cloned()
    }
}

/// A history `since` parameter that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Neither `<n>d`, `<n>h` nor an RFC 3339 time.
    #[error(
        "parsing since={0:?}: expected a number of days or hours (30d, 12h) or an RFC 3339 time"
    )]
    Unparsable(String),
    /// Zero, or longer than [`MAX_SINCE_DAYS`].
    #[error("since={0:?} is out of range: from 1h to {MAX_SINCE_DAYS}d")]
    OutOfRange(String),
}

/// The start of the range `since` names, relative to `now`: `<n>d` (days), `<n>h` (hours),
/// or an RFC 3339 time; at most [`MAX_SINCE_DAYS`] back.
pub fn parse_since(since: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, RangeError> {
    let s = since.trim();
    let unparsable = || RangeError::Unparsable(since.to_string());
    let out_of_range = || RangeError::OutOfRange(since.to_string());
    let hours: i64 = if let Some(n) = s.strip_suffix('d') {
        n.parse::<i64>()
            .map_err(|_| unparsable())?
            .saturating_mul(24)
    } else if let Some(n) = s.strip_suffix('h') {
        n.parse::<i64>().map_err(|_| unparsable())?
    } else {
        let at: jiff::Timestamp = s.parse().map_err(|_| unparsable())?;
        let back = now.as_second() - at.as_second();
        return if (0..=MAX_SINCE_DAYS * 86_400).contains(&back) {
            Ok(at)
        } else {
            Err(out_of_range())
        };
    };
    if !(1..=MAX_SINCE_DAYS * 24).contains(&hours) {
        return Err(out_of_range());
    }
    Ok(now - jiff::SignedDuration::from_hours(hours))
}

/// The cluster page's range in days from its `range` parameter: one of [`RANGES`]
/// (`7d`…`365d`), else [`DEFAULT_RANGE_DAYS`].
pub fn page_range(range: Option<&str>) -> u32 {
    range
        .and_then(|r| r.strip_suffix('d'))
        .and_then(|d| d.parse().ok())
        .filter(|d| RANGES.contains(d))
        .unwrap_or(DEFAULT_RANGE_DAYS)
}

/// The dashboard's routes, or none when it is disabled.
pub fn router(slot: Arc<Slot>) -> Router {
    if !slot.enabled() {
        return Router::new();
    }
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard/", get(overview))
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", post(logout))
        .route(
            "/dashboard/namespaces/{namespace}/managedclusters/{name}",
            get(cluster_page),
        )
        .route(
            "/api/v1/namespaces/{namespace}/managedclusters/{name}/history",
            get(history_json),
        )
        .with_state(slot)
}

/// Headers on every dashboard answer: no caching of customer data, and a policy that runs
/// no script at all (a second line of defence behind escaping).
fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn html(status: StatusCode, body: String) -> Response {
    secured(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    secured(
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(body).unwrap_or_default(),
        )
            .into_response(),
    )
}

/// A failure answered as a page (`Html`) or as a Kubernetes-style Status (`Json`).
#[derive(Clone, Copy)]
enum Format {
    Html,
    Json,
}

fn failure(format: Format, status: StatusCode, message: &str) -> Response {
    match format {
        Format::Html if status == StatusCode::UNAUTHORIZED => {
            html(status, html::login_page(Some(message)))
        }
        Format::Html => html(
            status,
            html::page(
                status.canonical_reason().unwrap_or("Error"),
                None,
                &format!(
                    "<h1>{}</h1><p>{}</p><p><a href=\"/dashboard/\">Overview</a></p>",
                    status.as_u16(),
                    html::Esc(message)
                ),
            ),
        ),
        Format::Json => json(
            status,
            &serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": message, "code": status.as_u16(),
            }),
        ),
    }
}

/// The bearer token of the request: the Authorization header, else the sign-in cookie.
fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = auth.trim().split_once(' ')?;
        return (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
            .then(|| token.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// The dashboard and the authenticated viewer, or the answer that ends the request.
async fn authenticate(
    slot: &Slot,
    headers: &HeaderMap,
    format: Format,
) -> Result<(Arc<Dashboard>, Viewer), Response> {
    let Some(dashboard) = slot.get() else {
        return Err(failure(
            format,
            StatusCode::SERVICE_UNAVAILABLE,
            "the operator is starting: the dashboard is not ready yet",
        ));
    };
    let Some(token) = token(headers) else {
        return Err(failure(
            format,
            StatusCode::UNAUTHORIZED,
            "sign in with a Kubernetes bearer token",
        ));
    };
    match dashboard.reviewer.authenticate(&token).await {
        Ok(Some(viewer)) => Ok((dashboard, viewer)),
        Ok(None) => Err(failure(
            format,
            StatusCode::UNAUTHORIZED,
            "the token was not accepted by the Kubernetes API server (expired or invalid)",
        )),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: reviewing a token failed");
            Err(failure(
                format,
                StatusCode::SERVICE_UNAVAILABLE,
                "the token could not be checked (the Kubernetes API server did not answer the TokenReview)",
            ))
        }
    }
}

/// Whether `viewer` may `get` `resource` in `namespace`; a failed review denies.
async fn may_get(d: &Dashboard, viewer: &Viewer, resource: &str, namespace: &str) -> bool {
    match d.reviewer.allowed(viewer, "get", resource, namespace).await {
        Ok(allowed) => allowed,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: a SubjectAccessReview failed; denying");
            false
        }
    }
}

async fn login_form() -> Response {
    html(StatusCode::OK, html::login_page(None))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// Whether a cookie value can carry `token` as it is (RFC 6265 cookie-octets): JWTs and
/// legacy ServiceAccount tokens can; anything else is refused rather than mangled.
fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 8192
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

/// A cross-site form post (Origin of another host) is refused: signing a victim in as
/// someone else is an attack too.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

fn cookie(headers: &HeaderMap, value: &str, max_age: u32) -> String {
    // Behind a TLS-terminating Ingress the cookie must not travel over plain HTTP;
    // through `kubectl port-forward` (http://localhost) it cannot be Secure.
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    format!(
        "{TOKEN_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

async fn login(
    State(slot): State<Arc<Slot>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return failure(
            Format::Html,
            StatusCode::FORBIDDEN,
            "cross-site sign-in refused",
        );
    }
    let token = form.token.trim().to_string();
    if !cookie_safe(&token) {
        return failure(
            Format::Html,
            StatusCode::UNAUTHORIZED,
            "that is not a Kubernetes bearer token",
        );
    }
    let mut with_token = HeaderMap::new();
    with_token.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("cookie-safe is header-safe"),
    );
    if let Err(response) = authenticate(&slot, &with_token, Format::Html).await {
        return response;
    }
    let mut response = Redirect::to("/dashboard/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie(&headers, &token, COOKIE_MAX_AGE_SECONDS)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    secured(response)
}

async fn logout(headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return failure(
            Format::Html,
            StatusCode::FORBIDDEN,
            "cross-site sign-out refused",
        );
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie(&headers, "", 0)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    secured(response)
}

async fn overview(State(slot): State<Arc<Slot>>, headers: HeaderMap) -> Response {
    let (d, viewer) = match authenticate(&slot, &headers, Format::Html).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lp = ListParams::default();
    let (cluster_api, account_api) = (d.all::<ManagedCluster>(), d.all::<CustomerAccount>());
    let (clusters, accounts) = futures::join!(cluster_api.list(&lp), account_api.list(&lp));
    let (clusters, accounts) = match (clusters, accounts) {
        (Ok(c), Ok(a)) => (c.items, a.items),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "dashboard: listing the custom resources failed");
            return failure(
                Format::Html,
                StatusCode::SERVICE_UNAVAILABLE,
                "the Kubernetes API server did not list the ManagedClusters and CustomerAccounts",
            );
        }
    };
    let namespaces: BTreeSet<String> = clusters
        .iter()
        .filter_map(|c| c.metadata.namespace.clone())
        .chain(accounts.iter().filter_map(|a| a.metadata.namespace.clone()))
        .collect();
    let decisions = futures::future::join_all(namespaces.iter().map(|ns| {
        let (d, viewer) = (&d, &viewer);
        async move {
            let (c, a) = futures::join!(
                may_get(d, viewer, MANAGED_CLUSTERS, ns),
                may_get(d, viewer, CUSTOMER_ACCOUNTS, ns),
            );
            (ns.clone(), c, a)
        }
    }))
    .await;
    let may = |resource: &str, ns: &Option<String>| {
        decisions.iter().any(|(n, c, a)| {
            Some(n) == ns.as_ref() && if resource == MANAGED_CLUSTERS { *c } else { *a }
        })
    };
    let clusters: Vec<ManagedCluster> = clusters
        .into_iter()
        .filter(|c| may(MANAGED_CLUSTERS, &c.metadata.namespace))
        .collect();
    let accounts: Vec<CustomerAccount> = accounts
        .into_iter()
        .filter(|a| may(CUSTOMER_ACCOUNTS, &a.metadata.namespace))
        .collect();
    html(
        StatusCode::OK,
        views::overview(&viewer.username, &accounts, &clusters),
    )
}

/// Whether `namespace` is a DNS label and `name` a DNS subdomain (RFC 1123), as
/// Kubernetes requires: anything else cannot exist, and must not reach a request path the
/// operator's client builds (`..`, `/` and `?` are refused here).
pub fn valid_names(namespace: &str, name: &str) -> bool {
    fn label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }
    label(namespace) && name.len() <= 253 && name.split('.').all(label)
}

/// The cluster `namespace/name` and its account, for a viewer allowed to get it.
async fn visible_cluster(
    d: &Dashboard,
    viewer: &Viewer,
    namespace: &str,
    name: &str,
    format: Format,
) -> Result<(ManagedCluster, Option<CustomerAccount>), Response> {
    if !valid_names(namespace, name) {
        return Err(failure(
            format,
            StatusCode::NOT_FOUND,
            "not a Kubernetes namespace and object name",
        ));
    }
    // Authorise before reading, so that a denied viewer cannot tell whether it exists.
    if d.namespace.as_deref().is_some_and(|only| only != namespace) {
        return Err(failure(
            format,
            StatusCode::NOT_FOUND,
            &format!(
                "this operator manages namespace {} only",
                d.namespace.as_deref().unwrap_or_default()
            ),
        ));
    }
    if !may_get(d, viewer, MANAGED_CLUSTERS, namespace).await {
        return Err(failure(
            format,
            StatusCode::FORBIDDEN,
            &format!(
                "{} may not get managedclusters.crossguard.dev in namespace {namespace}",
                viewer.username
            ),
        ));
    }
    let clusters = Api::<ManagedCluster>::namespaced(d.client.clone(), namespace);
    let cluster = match clusters.get_opt(name).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(failure(
                format,
                StatusCode::NOT_FOUND,
                &format!("ManagedCluster {namespace}/{name} not found"),
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, namespace, name, "dashboard: reading a ManagedCluster failed");
            return Err(failure(
                format,
                StatusCode::SERVICE_UNAVAILABLE,
                "the Kubernetes API server did not answer",
            ));
        }
    };
    // A ManagedCluster may only use a CustomerAccount of its own namespace.
    let account = Api::<CustomerAccount>::namespaced(d.client.clone(), namespace)
        .get_opt(&cluster.spec.account_ref.name)
        .await
        .ok()
        .flatten();
    Ok((cluster, account))
}

/// The cluster's history since `since` (empty without an account: nothing was analysed).
async fn read_history(
    d: &Dashboard,
    cluster: &ManagedCluster,
    account: Option<&CustomerAccount>,
    since: jiff::Timestamp,
) -> Result<Vec<HistoryPoint>, history::HistoryError> {
    let Some(tenant) = account.and_then(|a| a.metadata.uid.as_deref()) else {
        return Ok(Vec::new());
    };
    let namespace = cluster.metadata.namespace.as_deref().unwrap_or_default();
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    history::read(&d.store, tenant, namespace, name, since).await
}

/// The latest report of the cluster, from its `status.reportRef`; None when there is none
/// yet, an error message when it cannot be read.
async fn read_report(
    d: &Dashboard,
    cluster: &ManagedCluster,
) -> Result<Option<crate::analysis::report::Report>, String> {
    let Some(reference) = cluster
        .status
        .as_ref()
        .and_then(|s| s.report_ref.as_deref())
    else {
        return Ok(None);
    };
    let key = reference
        .strip_prefix(&format!("{}/", d.store.location.trim_end_matches('/')))
        .unwrap_or(reference);
    let bytes = d
        .store
        .get(key)
        .await
        .map_err(|e| format!("reading the report {key}: {e}"))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("parsing the report {key}: {e}"))
}

#[derive(serde::Deserialize)]
struct PageQuery {
    range: Option<String>,
}

async fn cluster_page(
    State(slot): State<Arc<Slot>>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    let (d, viewer) = match authenticate(&slot, &headers, Format::Html).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let (cluster, account) =
        match visible_cluster(&d, &viewer, &namespace, &name, Format::Html).await {
            Ok(c) => c,
            Err(response) => return response,
        };
    let days = page_range(query.range.as_deref());
    let now = jiff::Timestamp::now();
    let since = now - jiff::SignedDuration::from_hours(i64::from(days) * 24);
    let (history, report, account_visible) = futures::join!(
        read_history(&d, &cluster, account.as_ref(), since),
        read_report(&d, &cluster),
        may_get(&d, &viewer, CUSTOMER_ACCOUNTS, &namespace),
    );
    let page = views::ClusterPage {
        cluster: &cluster,
        account: account.as_ref().filter(|_| account_visible),
        history: history.map_err(|e| e.to_string()),
        report,
        days,
        since,
        now,
    };
    html(StatusCode::OK, views::cluster(&viewer.username, &page))
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    since: Option<String>,
}

async fn history_json(
    State(slot): State<Arc<Slot>>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let (d, viewer) = match authenticate(&slot, &headers, Format::Json).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let now = jiff::Timestamp::now();
    let since = match parse_since(query.since.as_deref().unwrap_or("30d"), now) {
        Ok(s) => s,
        Err(e) => return failure(Format::Json, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let (cluster, account) =
        match visible_cluster(&d, &viewer, &namespace, &name, Format::Json).await {
            Ok(c) => c,
            Err(response) => return response,
        };
    match read_history(&d, &cluster, account.as_ref(), since).await {
        Ok(points) => json(
            StatusCode::OK,
            &serde_json::json!({
                "namespace": namespace, "name": name, "since": since, "points": points,
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: reading a history failed");
            failure(
                Format::Json,
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn since_takes_days_hours_or_a_time_within_a_year() {
        let day = jiff::SignedDuration::from_hours(24);
        assert_eq!(parse_since("30d", now()), Ok(now() - day * 30));
        assert_eq!(parse_since("365d", now()), Ok(now() - day * 365));
        assert_eq!(
            parse_since("12h", now()),
            Ok(now() - jiff::SignedDuration::from_hours(12))
        );
        assert_eq!(
            parse_since("2026-11-01T00:00:00Z", now()),
            Ok("2026-11-01T00:00:00Z".parse().unwrap())
        );
        for bad in ["", "30", "d", "1.5d", "30m", "yesterday", "30 d"] {
            assert!(
                matches!(parse_since(bad, now()), Err(RangeError::Unparsable(_))),
                "{bad:?}"
            );
        }
        for far in [
            "0d",
            "0h",
            "-1d",
            "367d",
            "9999999999999999d",
            "2020-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ] {
            assert!(
                matches!(parse_since(far, now()), Err(RangeError::OutOfRange(_))),
                "{far:?}"
            );
        }
    }

    #[test]
    fn only_kubernetes_names_reach_the_api_path() {
        assert!(valid_names("acme", "acme-prod"));
        assert!(valid_names("a", "prod.eu-west-1"));
        for (ns, name) in [
            ("", "x"),
            ("acme", ""),
            ("Acme", "x"),
            ("acme", "../secrets"),
            ("acme/../kube-system", "x"),
            ("acme", "x/y"),
            ("acme", "x?watch=1"),
            ("acme", "a..b"),
            ("-acme", "x"),
            ("acme", "x-"),
            ("acme", "ünï"),
        ] {
            assert!(!valid_names(ns, name), "{ns:?} {name:?}");
        }
        assert!(!valid_names(&"a".repeat(64), "x"));
        let label = "a".repeat(63);
        assert!(valid_names("acme", &[label.as_str(); 3].join(".")));
        assert!(
            !valid_names("acme", &[label.as_str(); 4].join(".")),
            "255 characters"
        );
    }

    #[test]
    fn page_ranges_are_the_offered_ones_only() {
        assert_eq!(page_range(None), 30);
        assert_eq!(page_range(Some("7d")), 7);
        assert_eq!(page_range(Some("365d")), 365);
        assert_eq!(page_range(Some("12d")), 30);
        assert_eq!(page_range(Some("<script>")), 30);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_token_comes_from_the_bearer_header_or_the_cookie() {
        assert_eq!(
            token(&headers(&[("authorization", "Bearer abc.def")])).as_deref(),
            Some("abc.def")
        );
        assert_eq!(
            token(&headers(&[("authorization", "bearer  abc ")])).as_deref(),
            Some("abc")
        );
        assert_eq!(token(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(token(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(
            token(&headers(&[("cookie", "a=1; crossguard_token=tok.en; b=2")])).as_deref(),
            Some("tok.en")
        );
        assert_eq!(token(&headers(&[("cookie", "crossguard_token=")])), None);
        assert_eq!(token(&headers(&[("cookie", "other=x")])), None);
        assert_eq!(token(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_tls() {
        let plain = cookie(&HeaderMap::new(), "t", 60);
        assert_eq!(
            plain,
            "crossguard_token=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let tls = cookie(&headers(&[("x-forwarded-proto", "https")]), "t", 60);
        assert!(tls.ends_with("; Secure"));
        assert!(cookie_safe("eyJhbGciOi.eyJpc3Mi.sig-_"));
        for bad in ["", "a b", "a;b", "a\"b", "a,b", "a\\b", "é"] {
            assert!(!cookie_safe(bad), "{bad:?}");
        }
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        assert!(same_origin(&HeaderMap::new()));
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:8080")
        ])));
    }
}
