//! The two controllers and what they share.

mod automation;
pub mod customer_account;
pub mod managed_cluster;
mod runner;
mod status;

pub use runner::run;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, ResourceExt};

use crate::analysis::PriceTable;
use crate::audit::{AuditTrail, Tenant};
use crate::aws::AwsError;
use crate::clock::Clock;
use crate::credentials::{Broker, BrokerError};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Finalizer crossguard puts on both kinds.
pub const FINALIZER: &str = "crossguard.dev/cleanup";

/// What every reconcile needs.
pub struct Context {
    /// Client of the management cluster.
    pub client: Client,
    /// The shared credentials broker.
    pub broker: Arc<Broker>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event publisher.
    pub recorder: Recorder,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Report, snapshot and audit store.
    pub store: Store,
    /// On-demand prices and instance shapes for the analysis.
    pub prices: PriceTable,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context publishing Events as `crossguard`.
    pub fn new(
        client: Client,
        broker: Arc<Broker>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        store: Store,
        prices: PriceTable,
    ) -> Self {
        let reporter = Reporter {
            controller: "crossguard".into(),
            instance: std::env::var("POD_NAME")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            broker,
            metrics,
            clock,
            store,
            prices,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn backoff(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        // 5s, 10s, 20s, … capped at 5 minutes.
        Duration::from_secs(5u64.saturating_mul(1 << (*n - 1).min(6)).min(300))
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Everything a reconcile can fail with; invalid specs and customer-side problems are
/// reported in status instead and are not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes {operation} failed: {source}")]
    Kube {
        /// What we were doing.
        operation: &'static str,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A session could not be had for a transient reason.
    #[error("{0}")]
    Broker(#[source] BrokerError),
    /// An AWS call failed for a transient reason.
    #[error("{0}")]
    Aws(#[source] AwsError),
    /// The report/audit store failed.
    #[error("{0}")]
    Store(#[source] StoreError),
    /// The ExternalId Secret exists but does not belong to this CustomerAccount.
    #[error("secret {namespace}/{name} exists but is not owned by this CustomerAccount")]
    SecretConflict {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

impl Error {
    /// Label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApi",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.category(),
                _ => "Finalizer",
            },
            Error::Broker(e) => e.reason(),
            Error::Aws(_) => "AwsUnavailable",
            Error::Store(_) => "StoreUnavailable",
            Error::SecretConflict { .. } => "ExternalIdSecretConflict",
        }
    }
}

impl Context {
    /// A fresh audit trail for calls made for `tenant` in this reconcile.
    pub fn audit(&self, tenant: Tenant) -> Arc<AuditTrail> {
        AuditTrail::new(tenant, self.clock.clone(), self.metrics.clone())
    }
}

fn kube_err(operation: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { operation, source }
}

pub(crate) fn error_policy<K: kube::Resource<DynamicType = ()>>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    );
    let delay = ctx.backoff(key);
    tracing::warn!(kind = %K::kind(&()), namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any(),
        category = error.category(), error = %error, retry_in_secs = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}
