//! The two controllers and what they share.
//!
//! Each controller's `apply` is a pipeline of stages (see docs/architecture.md). A stage
//! either adds to the status [`Draft`] or stops the run with a [`Failure`]; [`conclude`]
//! is the one place that turns the outcome into conditions, an Event, the metric label
//! and the requeue decision, and writes status once.

pub mod admission;
mod analyse;
mod automation;
mod billing;
pub mod customer_account;
pub mod external_id;
pub mod failure;
mod history;
pub mod inventory;
pub mod key_audit;
pub mod managed_cluster;
pub mod prices;
mod role_posture;
mod runner;
pub mod session;
mod status;
mod unowned;

pub use failure::{Category, Failure, KubeOp, Retry};
pub use runner::{SHUTDOWN_GRACE, run, shutdown_signal};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::analysis::PriceTable;
use crate::api::{
    Condition, ConditionStatus, CustomerAccountStatus, ManagedClusterStatus, set_condition,
};
use crate::audit::{AuditTrail, Tenant};
use crate::clock::Clock;
use crate::credentials::Broker;
use crate::metrics::Metrics;
use crate::store::Store;

/// Finalizer crossguard puts on both kinds.
pub const FINALIZER: &str = "crossguard.dev/cleanup";
/// How often a customer-side problem (a role not deployed yet, a cluster not found) is
/// looked at again.
pub const PROBLEM_RETRY: Duration = Duration::from_secs(2 * 60);
/// How often a ManagedCluster waiting on its account, or on a customer-side fix (a cluster
/// not found, a permission missing, its API unreachable), is looked at again.
pub const WAIT_RETRY: Duration = Duration::from_secs(60);
/// How long an account awaiting its customer's role (no `spec.roleArn`), and its clusters,
/// wait before being looked at again without a change: nothing can change on AWS's side
/// that crossguard would see, and setting the role is a spec change that wakes them at once.
pub const AWAITING_ROLE_RECHECK: Duration = Duration::from_secs(6 * 60 * 60);
/// Slack's Web API base URL.
pub const SLACK_API: &str = "https://slack.com/api";
/// Reconciles each controller runs at once by default (`--max-concurrent-reconciles`).
///
/// kube-runtime's own default is unbounded: every object due at once (a restart, a relist,
/// thousands of tenants) would reconcile at the same time, holding that many customer
/// snapshots in memory and bursting the API server and AWS. Reconciles mostly wait on the
/// network (AWS, the customer's API server), so far more than the machine's cores can run:
/// with 16, fifteen tenants stuck on slow or failing endpoints (each bounded by its own
/// timeouts and backoff) still leave a slot for everyone else, while at most 16 cluster
/// snapshots are in flight.
pub const DEFAULT_MAX_CONCURRENT_RECONCILES: u16 = 16;

/// How long one notification request may take.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay after a transient failure; it doubles per consecutive failure.
const BACKOFF_MIN: Duration = Duration::from_secs(5);
/// Largest delay before jitter; jitter adds up to as much again (so at most 5 minutes).
const BACKOFF_MAX: Duration = Duration::from_secs(150);

/// What every reconcile needs.
pub struct Context {
    /// Client of the management cluster.
    pub client: Client,
    /// The shared credentials broker.
    pub broker: Arc<Broker>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Who publishes this replica's Events ([`Context::recorder`]).
    reporter: Reporter,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Report, snapshot and audit store.
    pub store: Store,
    /// On-demand prices and instance shapes for the analysis (the bundle with the
    /// `--prices-file` laid over it), used as it is when there is no price cache.
    pub prices: PriceTable,
    /// Prices from the AWS Price List API for what `prices` does not cover; None: no
    /// fetching (offline, or tests that do not need it).
    pub price_cache: Option<Arc<prices::PriceCache>>,
    /// Sends key-audit notifications (Slack, webhooks); None when it could not be built.
    pub notifier: Option<Arc<crate::keyaudit::notify::Sender>>,
    /// The operator's own role ARN, which customers' trust policies should name.
    pub operator_principal: Option<String>,
    /// Whether this replica leads ([`crate::leader`]).
    pub leadership: Arc<crate::leader::Leadership>,
    /// Reconciles each controller runs at once (never two of the same object).
    pub max_concurrent_reconciles: u16,
    /// Which CustomerAccounts (and their ManagedClusters) this replica owns
    /// ([`crate::shard`]); default: all of them.
    pub shard: crate::shard::Shard,
    /// The memory budget analyses reserve from before they read a customer cluster
    /// ([`admission`]); default: [`admission::DEFAULT_BUDGET_MIB`].
    pub analysis_memory: Arc<admission::AnalysisMemory>,
    /// Backoff state per object with consecutive transient failures.
    failures: Mutex<HashMap<String, ExponentialBackoff>>,
    /// Audit records a reconcile could not write (the store was unavailable), per tenant
    /// and scope, written by the next reconcile of the same scope.
    unwritten_audit: Mutex<HashMap<String, Vec<crate::audit::AuditRecord>>>,
    /// One cancellation token per tenant (CustomerAccount UID) with work in this process;
    /// erasing the tenant cancels it ([`Context::cancel_tenant`]), which stops its
    /// analyses in flight. A cancelled token stays, so work started later stops at once.
    tenant_work: Mutex<HashMap<String, tokio_util::sync::CancellationToken>>,
}

/// Most audit records kept in memory per tenant and scope while the store is unavailable
/// (a reconcile makes tens of calls; this covers hours of retries). Beyond it the oldest
/// are dropped, with an error in the log saying how many.
const MAX_UNWRITTEN_AUDIT: usize = 20_000;

/// The key of a tenant's audit scope: its UID and the ManagedCluster, if any.
fn audit_scope(tenant: &Tenant) -> String {
    format!(
        "{}/{}/{}",
        tenant.uid,
        tenant.namespace,
        tenant.cluster.as_deref().unwrap_or("")
    )
}

impl Context {
    /// An Event recorder for one publication. kube's [`Recorder`] keeps every Event it
    /// published in the last 6 minutes (to fold repeats into a series) and is meant to
    /// be made per reconcile; one shared for the process held the Events of every
    /// tenant's last transitions, about 6 KiB per tenant after a start or failover
    /// (BENCHMARKS.md "Scale"). Events are published on transitions only, so a repeat
    /// within minutes is a new Event rather than a count on the old one.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

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
            reporter,
            client,
            broker,
            metrics,
            clock,
            store,
            prices,
            price_cache: None,
            notifier: crate::keyaudit::notify::Sender::new(SLACK_API, NOTIFY_TIMEOUT)
                .ok()
                .map(Arc::new),
            operator_principal: None,
            leadership: crate::leader::Leadership::sole(),
            max_concurrent_reconciles: DEFAULT_MAX_CONCURRENT_RECONCILES,
            shard: crate::shard::Shard::ALL,
            analysis_memory: Arc::new(admission::AnalysisMemory::default()),
            failures: Mutex::new(HashMap::new()),
            unwritten_audit: Mutex::new(HashMap::new()),
            tenant_work: Mutex::new(HashMap::new()),
        }
    }

    /// Cordon, eviction and uncordon in customer clusters only while `leadership` leads
    /// (mutating AWS calls are gated in the SDK adapters); default: a sole replica.
    pub fn with_leadership(mut self, leadership: Arc<crate::leader::Leadership>) -> Self {
        self.leadership = leadership;
        self
    }

    /// Let analyses that run at once reserve at most `mib` MiB between them.
    pub fn with_analysis_memory_budget(mut self, mib: u32) -> Self {
        self.analysis_memory = Arc::new(admission::AnalysisMemory::new(mib));
        self
    }

    /// Run at most `n` reconciles at once in each controller (at least 1).
    pub fn with_max_concurrent_reconciles(mut self, n: u16) -> Self {
        self.max_concurrent_reconciles = n.max(1);
        self
    }

    /// Own only `shard`'s CustomerAccounts and their ManagedClusters.
    pub fn with_shard(mut self, shard: crate::shard::Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Send key-audit notifications through `sender` (e.g. one whose Slack API base is a
    /// local receiver in tests and the demo).
    pub fn with_notifier(mut self, sender: crate::keyaudit::notify::Sender) -> Self {
        self.notifier = Some(Arc::new(sender));
        self
    }

    /// Fetch what the price table does not cover from the AWS Price List API through
    /// `cache` (which then supplies every analysis's table; see [`prices`]).
    pub fn with_price_cache(mut self, cache: prices::PriceCache) -> Self {
        self.price_cache = Some(Arc::new(cache));
        self
    }

    /// Name the operator's own role for the role-posture check.
    pub fn with_operator_principal(mut self, principal: Option<String>) -> Self {
        self.operator_principal = principal;
        self
    }

    /// The delay before retrying `key` after another transient failure: exponential from
    /// 5 s, doubling to 150 s, plus random jitter of up to the delay itself, so that many
    /// tenants failing together (an AWS outage) do not retry in lockstep.
    fn backoff(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .entry(key)
            .or_insert_with(|| {
                ExponentialBuilder::default()
                    .with_min_delay(BACKOFF_MIN)
                    .with_max_delay(BACKOFF_MAX)
                    .with_factor(2.0)
                    .with_jitter()
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(BACKOFF_MAX)
    }

    /// Forget the backoff of an object this replica no longer reconciles (it left the
    /// watch: deleted, or moved to another shard).
    fn forget_failures(&self, kind: &str, namespace: &str, name: &str) {
        self.succeeded(&format!("{kind}/{namespace}/{name}"));
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// A fresh audit trail for calls made for `tenant` in this reconcile, carrying the
    /// records earlier reconciles of the same scope could not write.
    pub fn audit(&self, tenant: Tenant) -> Arc<AuditTrail> {
        let carried = self
            .unwritten_audit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&audit_scope(&tenant))
            .unwrap_or_default();
        AuditTrail::resume(tenant, self.clock.clone(), self.metrics.clone(), carried)
    }

    /// Keep what `trail` could not write for the next reconcile of its scope.
    async fn carry_unwritten(&self, trail: &AuditTrail) {
        let records = trail.take_unwritten().await;
        if records.is_empty() {
            return;
        }
        let mut carried = self
            .unwritten_audit
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let kept = carried.entry(audit_scope(trail.tenant())).or_default();
        kept.extend(records);
        if kept.len() > MAX_UNWRITTEN_AUDIT {
            let dropped = kept.len() - MAX_UNWRITTEN_AUDIT;
            kept.drain(..dropped);
            tracing::error!(
                dropped,
                "the store has been unavailable too long: the oldest unwritten audit records were dropped"
            );
        }
    }

    /// The token that is cancelled when the tenant with this UID is erased; work for the
    /// tenant stops when it is.
    pub fn tenant_work(&self, uid: &str) -> tokio_util::sync::CancellationToken {
        self.tenant_work
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(uid.to_string())
            .or_default()
            .clone()
    }

    /// Stop all work for the tenant with this UID, now and later (it is being erased).
    pub fn cancel_tenant(&self, uid: &str) {
        self.tenant_work(uid).cancel();
    }

    /// Forget the unwritten audit records of the tenant with this UID (it was erased).
    pub fn forget_unwritten_audit(&self, uid: &str) {
        let prefix = format!("{uid}/");
        self.unwritten_audit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|scope, _| !scope.starts_with(&prefix));
    }

    /// Append `trail`'s records to the tenant's audit log at the end of a reconcile,
    /// whatever `result` is, and return the reconcile's result: a failed write makes a
    /// successful run fail (and retry with backoff); after a failed run the run's own
    /// failure is kept and the failed write is logged. Either way the unwritten records are
    /// kept in memory and written by the next reconcile of the same scope.
    async fn flush(
        &self,
        trail: Option<&AuditTrail>,
        result: Result<Action, Failure>,
    ) -> Result<Action, Failure> {
        let Some(trail) = trail else { return result };
        let Err(e) = trail.flush(&self.store).await else {
            return result;
        };
        if e.is_tenant_erased() {
            // Records of calls made for an erased tenant are not kept anywhere.
            drop(trail.take_unwritten().await);
            tracing::info!(
                "the tenant was erased during this reconcile: its audit records are dropped"
            );
            return result;
        }
        // Not lost: the next reconcile of the same scope writes them first.
        self.carry_unwritten(trail).await;
        let lost = Failure::new(
            Category::StoreUnavailable,
            format!("The audit log could not be written: {e}"),
            Retry::Backoff,
        );
        match result {
            Ok(_) => Err(lost),
            Err(failure) => {
                tracing::warn!(error = %lost, "audit records of a failed reconcile were not written yet; the next reconcile writes them");
                Err(failure)
            }
        }
    }
}

/// Why a reconcile failed, as kube-runtime sees it: a transient stage failure, or the
/// finalizer machinery. Customer-side problems end the reconcile successfully with a
/// condition that says what to fix and are not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stage failed for a transient reason; retried with backoff.
    #[error(transparent)]
    Stage(Failure),
    /// Adding or removing the finalizer failed, or the work inside it did.
    #[error(transparent)]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The category: metric label and Event reason.
    pub fn category(&self) -> Category {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Stage(f) => f.category,
            Error::Finalizer(inner) => match inner.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.category(),
                _ => Category::Finalizer,
            },
        }
    }

    /// Adding or removing the finalizer was refused with a conflict (409) or a failed
    /// JSON-patch test (422). Whether that was a race is decided by the caller, which
    /// compares resource versions.
    fn is_finalizer_conflict(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        let Error::Finalizer(inner) = self else {
            return false;
        };
        matches!(inner.as_ref(),
            F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s))
                if s.code == 409 || s.code == 422)
    }
}

/// Status of either kind, as the shared conclusion needs it.
pub trait ObjectStatus: Serialize + PartialEq + Clone + Default + Send {
    /// The conditions.
    fn conditions(&self) -> &Vec<Condition>;
    /// The conditions, to change.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    /// Record the generation the conditions speak about.
    fn set_observed_generation(&mut self, generation: i64);
}

impl ObjectStatus for CustomerAccountStatus {
    fn conditions(&self) -> &Vec<Condition> {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn set_observed_generation(&mut self, generation: i64) {
        self.observed_generation = generation;
    }
}

impl ObjectStatus for ManagedClusterStatus {
    fn conditions(&self) -> &Vec<Condition> {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn set_observed_generation(&mut self, generation: i64) {
        self.observed_generation = generation;
    }
}

/// The status one reconcile builds up; [`conclude`] writes it once.
pub struct Draft<S> {
    /// Status as it was when the reconcile started (None: never written).
    pub old: Option<S>,
    /// Status being built.
    pub status: S,
    /// `metadata.generation` of the object being reconciled.
    pub generation: i64,
    /// The reconcile's "now".
    pub now: jiff::Timestamp,
}

impl<S: ObjectStatus> Draft<S> {
    /// Start from `old` (or an empty status).
    pub fn new(old: Option<S>, generation: i64, now: jiff::Timestamp) -> Self {
        Draft {
            status: old.clone().unwrap_or_default(),
            old,
            generation,
            now,
        }
    }

    /// Set one condition, stamped with this generation and time.
    pub fn set(
        &mut self,
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) {
        let c = Condition::new(
            type_,
            status,
            reason,
            message.into(),
            self.generation,
            self.now,
        );
        set_condition(self.status.conditions_mut(), c);
    }

    /// Set `type_` to True.
    pub fn ok(&mut self, type_: &str, reason: &str, message: impl Into<String>) {
        self.set(type_, ConditionStatus::True, reason, message);
    }

    /// Record a stage failure: `Ready` and the stage's condition go False with the
    /// failure's category and message, and the generation counts as observed (the spec
    /// was read; this is what it led to).
    fn fail(&mut self, failure: &Failure) {
        let reason = failure.category.as_str();
        if let Some(stage) = failure.condition {
            self.set(stage, ConditionStatus::False, reason, &failure.message);
        }
        self.set("Ready", ConditionStatus::False, reason, &failure.message);
        self.status.set_observed_generation(self.generation);
    }
}

/// End a reconcile: fold the pipeline's result into the draft (a failure sets `Ready` and
/// its stage condition False), publish an Event when `Ready` changed, write status once
/// (only when it changed), and decide what kube-runtime does next. Returns that decision
/// and the metric outcome (`ok`, or the failure's category).
pub async fn conclude<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    mut draft: Draft<S>,
    result: Result<Action, Failure>,
) -> (Result<Action, Error>, &'static str)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: ObjectStatus,
{
    if let Err(failure) = &result {
        draft.fail(failure);
    }
    mark_shard(ctx, &mut draft);
    let old_conditions = draft
        .old
        .as_ref()
        .map(|s| s.conditions().as_slice())
        .unwrap_or_default();
    status::publish_transition(ctx, obj, old_conditions, draft.status.conditions()).await;
    let written = status::apply_status(api, obj, draft.old.as_ref(), &draft.status).await;
    if let Err(write) = &written {
        // Status cannot say it, so an Event does.
        status::publish(
            ctx,
            obj,
            false,
            write.category.as_str(),
            &write.message,
            "Reconcile",
        )
        .await;
    }
    let outcome = match &result {
        Ok(_) => "ok",
        Err(f) => f.category.as_str(),
    };
    let decision = match (result, written) {
        (Err(f), _) if f.retry == Retry::Backoff => Err(Error::Stage(f)),
        (_, Err(write)) => Err(Error::Stage(write)),
        (Ok(action), Ok(())) => Ok(action),
        (Err(f), Ok(())) => Ok(match f.retry {
            Retry::After(d) => Action::requeue(d),
            _ => Action::await_change(),
        }),
    };
    let outcome = match &decision {
        Err(e) => e.category().as_str(),
        Ok(_) => outcome,
    };
    (decision, outcome)
}

/// Say on the object which shard reconciles it (`Sharded=True`) in a sharded fleet, which
/// also replaces a `Sharded=False` that shard 0 wrote while no shard owned it; unsharded,
/// drop the condition (a fleet merged back into one Deployment).
fn mark_shard<S: ObjectStatus>(ctx: &Context, draft: &mut Draft<S>) {
    use crate::shard::{CONDITION, REASON_OWNED};
    if ctx.shard.is_sharded() {
        draft.ok(CONDITION, REASON_OWNED, ctx.shard.owned_message());
    } else {
        crate::api::remove_condition(draft.status.conditions_mut(), CONDITION);
    }
}

/// Run `apply`/`cleanup` under the finalizer, count the outcome and the duration, and
/// reset the object's backoff when it succeeded. Shared by both controllers.
async fn reconcile_with_finalizer<K, A, AF, C, CF>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    apply: A,
    cleanup: C,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    A: FnOnce(Arc<K>, Arc<Context>) -> AF,
    AF: std::future::Future<Output = (Result<Action, Error>, &'static str)>,
    C: FnOnce(Arc<K>, Arc<Context>) -> CF,
    CF: std::future::Future<Output = Result<Action, Error>>,
{
    use kube::runtime::finalizer::{Event, finalizer};
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let kind = K::kind(&());
    let ns = obj.namespace().unwrap_or_default();
    let key = format!("{kind}/{ns}/{}", obj.name_any());
    let span =
        tracing::info_span!("reconcile", kind = %kind, namespace = %ns, name = %obj.name_any());
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let (name, seen_version) = (obj.name_any(), obj.resource_version());
    let mut applied: Option<&'static str> = None;
    let mut cleaned = false;
    let slot = &mut applied;
    let cleaned_slot = &mut cleaned;
    let inner_ctx = ctx.clone();
    let result = finalizer(&api, FINALIZER, obj, move |event| async move {
        match event {
            Event::Apply(obj) => {
                let (result, outcome) = apply(obj, inner_ctx).await;
                *slot = Some(outcome);
                result
            }
            Event::Cleanup(obj) => {
                let result = cleanup(obj, inner_ctx).await;
                *cleaned_slot = result.is_ok();
                result
            }
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let (result, outcome) = match result {
        Err(e) if e.is_finalizer_conflict() && is_stale(&api, &name, &seen_version).await => {
            tracing::debug!(%kind, namespace = %ns, "finalizer write raced a newer version; retrying");
            (Ok(Action::requeue(Duration::from_secs(1))), "conflict")
        }
        Err(e) => {
            let category = e.category().as_str();
            (Err(e), category)
        }
        Ok(action) => (Ok(action), applied.unwrap_or("ok")),
    };
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    if cleaned {
        ctx.metrics.forget_object(&kind, &ns, &name);
    } else if let Some(stage) = applied {
        ctx.metrics.set_ready(&kind, &ns, &name, stage == "ok");
    }
    ctx.metrics.reconcile(&kind, outcome, started.elapsed());
    result
}

/// Whether the object changed on the API server since the version this reconcile was
/// handed (the watch cache was behind): then a refused finalizer write was a race, not a
/// fault. A schema rejection of the same version is a fault and stays one.
async fn is_stale<K>(api: &Api<K>, name: &str, seen: &Option<String>) -> bool
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.get_metadata_opt(name).await {
        Ok(Some(current)) => current.metadata.resource_version != *seen,
        Ok(None) => true,
        Err(_) => false,
    }
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
        category = %error.category(), error = %error, retry_in_secs = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}
