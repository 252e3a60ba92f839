//! The operator's own HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, and the
//! dashboard's ([`crate::dashboard`]) unless it is disabled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Shared state of the HTTP endpoints.
#[derive(Clone)]
pub struct HttpState {
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
    /// What `/readyz` answers.
    pub readiness: Arc<Readiness>,
    /// The dashboard, once the Kubernetes client and the store exist.
    pub dashboard: Arc<crate::dashboard::Slot>,
}

/// The entry [`Readiness::standby`] adds.
const STANDBY: &str = "standby (waiting for the leader lease)";

/// Whether the operator can see what it manages: ready once every watch the controllers
/// registered has completed its initial list, until they stop. Before that `/readyz`
/// answers 503 with what it is waiting for (e.g. a CRD that is not installed). A standby
/// replica (leader election) is ready: it is healthy and takes over when needed.
#[derive(Debug, Default)]
pub struct Readiness {
    watches: Mutex<BTreeMap<String, Watch>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Watch {
    /// Initial list not done; the last known reason, if any.
    Waiting(Option<String>),
    /// Initial list done: the controller sees every object of the kind.
    Established,
    /// The controllers stopped.
    Stopped,
}

impl Readiness {
    /// Count `watch` (a kind's name) as not established yet.
    pub fn register(&self, watch: &str) {
        self.lock().insert(watch.to_string(), Watch::Waiting(None));
    }

    /// Note why `watch` is not established yet (shown by `/readyz`). Ignored once it is:
    /// kube-runtime retries a broken watch by itself and the controller keeps its cache.
    pub fn problem(&self, watch: &str, why: &str) {
        if let Some(state @ Watch::Waiting(_)) = self.lock().get_mut(watch) {
            *state = Watch::Waiting(Some(why.to_string()));
        }
    }

    /// `watch` completed its initial list.
    pub fn established(&self, watch: &str) {
        self.lock().insert(watch.to_string(), Watch::Established);
    }

    /// This replica waits for the leader Lease: ready (a rollout may go on; it takes over
    /// when the leader goes), with no watches of its own yet.
    pub fn standby(&self) {
        self.lock().insert(STANDBY.to_string(), Watch::Established);
    }

    /// This replica leads: the standby entry goes, the controllers' watches decide.
    pub fn leading(&self) {
        self.lock().remove(STANDBY);
    }

    /// The controllers stopped: not ready any more.
    pub fn stopped(&self) {
        for state in self.lock().values_mut() {
            *state = Watch::Stopped;
        }
    }

    /// `Ok` when ready, otherwise what is missing, for a human reading `/readyz`.
    pub fn check(&self) -> Result<(), String> {
        let watches = self.lock();
        if watches.is_empty() {
            return Err("starting: the controllers are not running yet".to_string());
        }
        let mut missing = Vec::new();
        for (watch, state) in watches.iter() {
            match state {
                Watch::Established => {}
                Watch::Stopped => missing.push(format!("{watch}: controller stopped")),
                Watch::Waiting(None) => {
                    missing.push(format!("{watch}: waiting for the initial list"))
                }
                Watch::Waiting(Some(why)) => missing.push(format!("{watch}: {why}")),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("\n"))
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Watch>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The router serving the operator's endpoints.
pub fn router(state: HttpState) -> Router {
    let dashboard = crate::dashboard::router(state.dashboard.clone());
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(dashboard)
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(missing) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{missing}\n"),
        ),
    }
}

/// Bind `addr` and serve until the future is dropped; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    Ok((bound, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_until_every_registered_watch_is_established() {
        let r = Readiness::default();
        assert_eq!(
            r.check(),
            Err("starting: the controllers are not running yet".to_string())
        );
        r.register("CustomerAccount");
        r.register("ManagedCluster");
        r.problem(
            "CustomerAccount",
            "CRD customeraccounts.crossguard.dev is not installed",
        );
        r.established("ManagedCluster");
        assert_eq!(
            r.check(),
            Err(
                "CustomerAccount: CRD customeraccounts.crossguard.dev is not installed".to_string()
            )
        );
        r.established("CustomerAccount");
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn a_later_watch_error_does_not_unready_but_stopping_does() {
        let r = Readiness::default();
        r.register("CustomerAccount");
        r.established("CustomerAccount");
        r.problem("CustomerAccount", "watch failed");
        assert_eq!(r.check(), Ok(()));
        r.stopped();
        assert_eq!(
            r.check(),
            Err("CustomerAccount: controller stopped".to_string())
        );
    }
}
