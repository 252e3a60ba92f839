//! Wiring of the two controllers into kube-runtime: watches that read each object on its
//! own (one unreadable object cannot stall the others), the account → clusters mapping,
//! readiness, watch failures an operator can act on, shutdown on signal.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::{
    DeserializeGuard, NamespaceResourceScope, PartialObjectMeta, error_boundary::InvalidObject,
};
use kube::runtime::controller::{self as kube_controller, Action};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::failure::{Category, Failure, KubeOp};
use super::{Context, Error, customer_account, error_policy, managed_cluster};
use crate::api::{
    Condition, ConditionStatus, CustomerAccount, FIELD_MANAGER, ManagedCluster, set_condition,
};
use crate::http::Readiness;
use crate::shard::Owner;

/// A watched object that may not be readable as this version's type.
type Guarded<K> = DeserializeGuard<K>;

/// How long running reconciles may take to finish after the shutdown signal; after that
/// the controllers stop anyway (well inside Kubernetes' default 30 s grace period).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the operator");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Run both controllers until `shutdown` resolves; `namespace` limits them to one
/// namespace. `readiness` turns ready once both kinds' watches completed their initial
/// list. `api_server` (the client's cluster URL) is named when it cannot be reached.
///
/// Shutdown is bounded: a controller whose initial list never completed has run no
/// reconcile and stops at once (kube-runtime holds its reconciles until the list is done,
/// so its graceful shutdown would wait for a list that may never come when the API server
/// is unreachable); running reconciles get [`SHUTDOWN_GRACE`] to finish.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    readiness: Arc<Readiness>,
    api_server: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shutdown = shutdown.boxed().shared();
    let client = ctx.client.clone();
    let shard = ctx.shard;
    let accounts: Api<Guarded<CustomerAccount>> = scoped(&client, namespace.as_deref());
    let clusters: Api<Guarded<ManagedCluster>> = scoped(&client, namespace.as_deref());
    let account_kind = CustomerAccount::kind(&()).to_string();
    let cluster_kind = ManagedCluster::kind(&()).to_string();
    readiness.register(&account_kind);
    readiness.register(&cluster_kind);
    let failures = Arc::new(WatchFailures::new(
        client.clone(),
        readiness.clone(),
        api_server,
    ));
    // A shard lists and caches only its own accounts (server-side label selection).
    let owned_accounts = match shard.account_selector() {
        Some(selector) => watcher::Config::default().labels(&selector),
        None => watcher::Config::default(),
    };
    if shard.is_sharded() {
        tracing::info!(shard = %shard, selector = ?shard.account_selector(),
            "sharded: reconciling only the CustomerAccounts labelled for this shard and their ManagedClusters");
    }

    let (accounts_reader, accounts_writer) = reflector::store();
    let account_controller = Controller::for_stream(
        trigger(
            accounts.clone(),
            owned_accounts.clone(),
            accounts_writer,
            account_gone(ctx.clone()),
            |_| {},
        ),
        accounts_reader,
    );
    let accounts_ready = account_controller.store();
    let accounts_listed = account_controller.store();
    let accounts_owned = account_controller.store();
    let account_failures = failures.clone();
    // Bounded concurrency: a slow tenant holds one slot, never the others' (kube-runtime's
    // default is unbounded).
    let config = || kube_controller::Config::default().concurrency(ctx.max_concurrent_reconciles);
    let account_controller = account_controller
        .with_config(config())
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_account, error_policy, ctx.clone())
        .for_each(move |result| {
            let failures = account_failures.clone();
            async move { failures.observe(result).await }
        });
    let account_controller = unless_never_listed(
        account_controller,
        accounts_listed,
        shutdown.clone(),
        &account_kind,
    );

    let (clusters_reader, clusters_writer) = reflector::store();
    let by_account = Arc::new(ClustersByAccount::default());
    let cluster_controller = Controller::for_stream(
        trigger(
            clusters,
            watcher::Config::default(),
            clusters_writer,
            {
                let ctx = ctx.clone();
                move |ns: &str, name: &str, _uid: &str| {
                    ctx.forget_failures(&ManagedCluster::kind(&()), ns, name)
                }
            },
            {
                let by_account = by_account.clone();
                move |event| by_account.apply(event)
            },
        ),
        clusters_reader,
    );
    let clusters_ready = cluster_controller.store();
    let clusters_listed = cluster_controller.store();
    let clusters_seen = cluster_controller.store();
    let cluster_failures = failures.clone();
    // Shard 0 of a split fleet also watches every account's metadata (cheap: no spec or
    // status), to report what no shard owns and to own clusters whose account is gone.
    // That watch decides which clusters it owns, so the replica is not ready until it has
    // listed them too.
    let meta_kind = format!("{account_kind} metadata");
    if shard.reports_unowned() {
        readiness.register(&meta_kind);
    }
    let (index, cluster_controller, all_accounts_listed) = if shard.reports_unowned() {
        let (meta_reader, meta_writer) = reflector::store();
        // An Api of PartialObjectMeta asks for metadata only.
        let all: Api<PartialObjectMeta<CustomerAccount>> = scoped(&client, namespace.as_deref());
        let all_accounts = watcher(all, watcher::Config::default())
            .default_backoff()
            .modify(|meta| {
                // Only the labels are needed; managedFields can be most of an object.
                meta.metadata.managed_fields = None;
                meta.metadata.annotations = None;
            })
            .reflect(meta_writer)
            .touched_objects();
        let reader = meta_reader.clone();
        let report = super::unowned::report(
            ctx.clone(),
            meta_reader.clone(),
            clusters_seen,
            shutdown.clone(),
        );
        tokio::spawn(report);
        let controller = cluster_controller.watches_stream(all_accounts, move |account| {
            by_account.referring(
                &account.namespace().unwrap_or_default(),
                &account.name_any(),
            )
        });
        (AccountIndex::All(reader), controller, Some(meta_reader))
    } else {
        let controller =
            // A change to an account (it became Ready, was suspended, moved to or from this
            // shard…) re-reconciles its clusters.
            cluster_controller.watches(accounts, owned_accounts, move |account| {
                clusters_of(&by_account, &account)
            });
        (AccountIndex::Owned(accounts_owned), controller, None)
    };
    let index = Arc::new(index);
    let cluster_controller = cluster_controller
        .with_config(config())
        .graceful_shutdown_on(shutdown.clone())
        .run(
            move |cluster, ctx| reconcile_cluster(cluster, ctx, index.clone()),
            error_policy,
            ctx.clone(),
        )
        .for_each(move |result| {
            let failures = cluster_failures.clone();
            async move { failures.observe(result).await }
        });
    let cluster_controller = unless_never_listed(
        cluster_controller,
        clusters_listed,
        shutdown.clone(),
        &cluster_kind,
    );

    let established = async {
        let all_accounts = async {
            if let Some(store) = all_accounts_listed {
                failures.established(meta_kind.clone(), store).await;
            }
        };
        tokio::join!(
            failures.established(account_kind.clone(), accounts_ready),
            failures.established(cluster_kind.clone(), clusters_ready),
            all_accounts,
        );
        // Readiness stays until the controllers stop.
        std::future::pending::<()>().await
    };
    let deadline = async {
        shutdown.await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = async { tokio::join!(account_controller, cluster_controller) } => {}
        _ = established => {}
        _ = deadline => tracing::warn!(
            grace = ?SHUTDOWN_GRACE,
            "reconciles still running after the shutdown grace period; stopping anyway"
        ),
    }
    readiness.stopped();
}

/// `controller`, ended as soon as `shutdown` resolves if `store` never completed its
/// initial list (no reconcile has run then, so there is nothing to wait for).
async fn unless_never_listed<K>(
    controller: impl Future<Output = ()>,
    store: Store<K>,
    shutdown: impl Future<Output = ()>,
    kind: &str,
) where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let never_listed = async {
        shutdown.await;
        if store.wait_until_ready().now_or_never().is_some() {
            // Listed: let the graceful shutdown finish the running reconciles.
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = controller => {}
        _ = never_listed => tracing::info!(
            kind = %kind,
            "stopped the {kind} controller; its initial list never completed, so no reconcile ran"
        ),
    }
}

/// What this replica drops when an account leaves its watch: deleted (the finalizer's
/// cleanup already did the same), or relabelled to another shard, which owns it from
/// then on: its cached AWS session (wiped), its key-age gauges (the new owner exports
/// them) and its backoff.
fn account_gone(ctx: Arc<Context>) -> impl Fn(&str, &str, &str) + Send + 'static {
    move |ns, name, uid| {
        ctx.broker.evict(uid);
        ctx.metrics.forget_key_ages(ns, name);
        ctx.forget_failures(&CustomerAccount::kind(&()), ns, name);
    }
}

/// The watch that triggers reconciles of `K`, reflected into the controller's store. Only
/// changes worth a reconcile pass ([`worth_a_reconcile`]); the store still sees every
/// change. When an object leaves the watch (deleted, or relabelled out of a shard's label
/// selector, also while the watch was down) its fingerprint is forgotten, so that it
/// triggers again if it comes back unchanged (a shard label put back), and `on_gone` is
/// told its namespace, name and UID; `observe` sees every event, as the store does.
/// kube-runtime's `predicate_filter` would keep the
/// fingerprint for an hour and drop the object's return.
fn trigger<K>(
    api: Api<Guarded<K>>,
    config: watcher::Config,
    writer: reflector::store::Writer<Guarded<K>>,
    on_gone: impl Fn(&str, &str, &str) + Send + 'static,
    observe: impl Fn(&watcher::Event<Guarded<K>>) + Send + 'static,
) -> impl futures::Stream<Item = Result<Guarded<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use watcher::Event;
    /// What was last seen of an object in the watch: its fingerprint and UID.
    struct Seen {
        fingerprint: Option<u64>,
        uid: String,
    }
    let key = |obj: &Guarded<K>| (obj.namespace().unwrap_or_default(), obj.name_any());
    let mut seen: HashMap<(String, String), Seen> = HashMap::new();
    // Objects listed by a relist in progress.
    let mut relisted: Option<HashSet<(String, String)>> = None;
    watcher(api, config)
        .default_backoff()
        // The cache holds every object for the process's life; managedFields (who set
        // which field, one entry per field manager) is often most of an object and
        // nothing here reads it. Patches never send the cached object back.
        .modify(|obj| obj.meta_mut().managed_fields = None)
        .reflect(writer)
        .filter_map(move |event| {
            if let Ok(event) = &event {
                observe(event);
            }
            let out = match event {
                Err(e) => Some(Err(e)),
                Ok(Event::Init) => {
                    relisted = Some(HashSet::new());
                    None
                }
                Ok(Event::Apply(obj) | Event::InitApply(obj)) => {
                    let k = key(&obj);
                    if let Some(listed) = &mut relisted {
                        listed.insert(k.clone());
                    }
                    let fingerprint = worth_a_reconcile(&obj);
                    let uid = obj.uid().unwrap_or_default();
                    let before = seen.insert(k, Seen { fingerprint, uid });
                    let changed = before.is_none_or(|b| b.fingerprint != fingerprint);
                    changed.then_some(Ok(obj))
                }
                Ok(Event::Delete(obj)) => {
                    let (ns, name) = key(&obj);
                    seen.remove(&(ns.clone(), name.clone()));
                    on_gone(&ns, &name, &obj.uid().unwrap_or_default());
                    None
                }
                Ok(Event::InitDone) => {
                    // Gone while the watch was down: no Delete event came for them.
                    if let Some(listed) = relisted.take() {
                        seen.retain(|(ns, name), s| {
                            let kept = listed.contains(&(ns.clone(), name.clone()));
                            if !kept {
                                on_gone(ns, name, &s.uid);
                            }
                            kept
                        });
                    }
                    None
                }
            };
            std::future::ready(out)
        })
}

/// A fingerprint of what is worth a reconcile: the spec (through `generation`, which a
/// deletion also bumps), the UID (a re-created object), annotations (the ExternalId
/// rotation), labels, finalizers (the first reconcile only adds ours) and the deletion
/// mark. Status-only updates do not change it, above all this operator's own status
/// writes: otherwise a failing stage whose message changes on every attempt (a timestamped
/// object key, a request id) would trigger the next attempt at once and defeat the
/// backoff, calling the customer's AWS account every couple of seconds.
fn worth_a_reconcile<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.uid.hash(&mut h);
    meta.generation.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// An API of `K` in `namespace`, or in all namespaces.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The clusters referring to `account`; none when the account cannot be read.
fn clusters_of(
    clusters: &ClustersByAccount,
    account: &Guarded<CustomerAccount>,
) -> Vec<ObjectRef<Guarded<ManagedCluster>>> {
    let Ok(account) = &account.0 else {
        return Vec::new();
    };
    clusters.referring(
        &account.namespace().unwrap_or_default(),
        &account.name_any(),
    )
}

/// The readable ManagedClusters by the CustomerAccount their `spec.accountRef` names,
/// kept up to date from the cluster watch's events (the same events that fill the cluster
/// controller's store), so that an account's event finds its clusters in O(its clusters)
/// instead of copying and scanning the whole cluster cache (O(N) per account event, O(N²)
/// over a fleet's start). kube-runtime's `Store` has no secondary index, hence this map.
/// An unreadable cluster is not in it: its account reference cannot be trusted.
#[derive(Default)]
struct ClustersByAccount {
    inner: Mutex<AccountIndexState>,
}

/// What [`ClustersByAccount`] holds: both directions of the cluster → account mapping,
/// and the clusters of a relist in progress.
#[derive(Default)]
struct AccountIndexState {
    /// (namespace, account name) → names of the clusters in that namespace naming it.
    clusters: HashMap<(String, String), HashSet<String>>,
    /// (namespace, cluster name) → the account name it refers to.
    account_of: HashMap<(String, String), String>,
    /// (namespace, cluster name, account name) of the clusters a relist has brought so
    /// far; replaces everything when the relist is done, as the store does.
    relisted: Option<Vec<(String, String, String)>>,
}

impl AccountIndexState {
    fn insert(&mut self, ns: String, cluster: String, account: String) {
        if let Some(old) = self
            .account_of
            .insert((ns.clone(), cluster.clone()), account.clone())
        {
            if old == account {
                return;
            }
            self.unlink(&ns, &cluster, old);
        }
        self.clusters
            .entry((ns, account))
            .or_default()
            .insert(cluster);
    }

    fn remove(&mut self, ns: &str, cluster: &str) {
        if let Some(old) = self
            .account_of
            .remove(&(ns.to_string(), cluster.to_string()))
        {
            self.unlink(ns, cluster, old);
        }
    }

    /// Drop `cluster` from `account`'s set, and the set when it is left empty.
    fn unlink(&mut self, ns: &str, cluster: &str, account: String) {
        let key = (ns.to_string(), account);
        if let Some(names) = self.clusters.get_mut(&key) {
            names.remove(cluster);
            if names.is_empty() {
                self.clusters.remove(&key);
            }
        }
    }
}

impl ClustersByAccount {
    /// Follow one event of the cluster watch.
    fn apply(&self, event: &watcher::Event<Guarded<ManagedCluster>>) {
        use watcher::Event;
        let entry = |obj: &Guarded<ManagedCluster>| {
            let ns = obj.namespace().unwrap_or_default();
            let name = obj.name_any();
            let account = obj
                .0
                .as_ref()
                .ok()
                .map(|mc| mc.spec.account_ref.name.clone());
            (ns, name, account)
        };
        let mut state = self.lock();
        match event {
            Event::Init => state.relisted = Some(Vec::new()),
            Event::InitApply(obj) => {
                if let (ns, name, Some(account)) = entry(obj) {
                    state
                        .relisted
                        .get_or_insert_with(Vec::new)
                        .push((ns, name, account));
                }
            }
            Event::InitDone => {
                let listed = state.relisted.take().unwrap_or_default();
                let mut fresh = AccountIndexState::default();
                for (ns, name, account) in listed {
                    fresh.insert(ns, name, account);
                }
                *state = fresh;
            }
            Event::Apply(obj) => match entry(obj) {
                (ns, name, Some(account)) => state.insert(ns, name, account),
                (ns, name, None) => state.remove(&ns, &name),
            },
            Event::Delete(obj) => {
                let (ns, name, _) = entry(obj);
                state.remove(&ns, &name);
            }
        }
    }

    /// The readable clusters in `ns` whose `spec.accountRef` names `account`.
    fn referring(&self, ns: &str, account: &str) -> Vec<ObjectRef<Guarded<ManagedCluster>>> {
        let state = self.lock();
        state
            .clusters
            .get(&(ns.to_string(), account.to_string()))
            .map(|names| {
                names
                    .iter()
                    .map(|name| ObjectRef::new(name).within(ns))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AccountIndexState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a shard knows of the accounts, to tell which ManagedClusters it owns.
enum AccountIndex {
    /// This shard's own accounts (shards 1 and up): a cluster is owned when its account
    /// is here.
    Owned(Store<Guarded<CustomerAccount>>),
    /// Every account's metadata (shard 0 of a split fleet, and only it): a cluster is
    /// owned when its account is labelled for shard 0, or does not exist.
    All(Store<PartialObjectMeta<CustomerAccount>>),
}

impl AccountIndex {
    /// Whether this shard owns `cluster`, once the accounts' initial list is done; None
    /// when that cannot be told now (the API server did not answer).
    async fn owns(&self, ctx: &Context, cluster: &ManagedCluster) -> Option<bool> {
        let shard = ctx.shard;
        let ns = cluster.namespace().unwrap_or_default();
        let name = &cluster.spec.account_ref.name;
        match self {
            AccountIndex::Owned(store) => {
                if !super::unowned::listed(store).await {
                    return Some(false);
                }
                if let Some(account) = store.get(&ObjectRef::new(name).within(&ns)) {
                    return Some(shard.owns_account(account.meta().labels.as_ref()));
                }
                // Not in the cache: not this shard's, or so new (or just relabelled here)
                // that the account watch has not brought it yet while the cluster's own
                // watch did. The API server says which.
                let api: Api<CustomerAccount> = Api::namespaced(ctx.client.clone(), &ns);
                match api.get_metadata_opt(name).await {
                    Ok(account) => Some(
                        account.is_some_and(|a| shard.owns_account(a.metadata.labels.as_ref())),
                    ),
                    Err(e) => {
                        tracing::debug!(namespace = %ns, account = %name, error = %e,
                            "cannot tell whether this shard owns the account; looking again shortly");
                        None
                    }
                }
            }
            AccountIndex::All(store) => {
                if !super::unowned::listed(store).await {
                    return Some(false);
                }
                if let Some(account) = store.get(&ObjectRef::new(name).within(&ns)) {
                    return Some(
                        shard.cluster_owner(name, Some(account.metadata.labels.as_ref()))
                            == Owner::This,
                    );
                }
                // Not in the cache: gone, or created so recently that the account watch
                // has not brought it yet (it may belong to another shard). Only an account
                // the API server does not have either makes the cluster shard 0's.
                let api: Api<CustomerAccount> = Api::namespaced(ctx.client.clone(), &ns);
                match api.get_metadata_opt(name).await {
                    Ok(None) => Some(shard.cluster_owner(name, None) == Owner::This),
                    Ok(Some(account)) => Some(
                        shard.cluster_owner(name, Some(account.metadata.labels.as_ref()))
                            == Owner::This,
                    ),
                    Err(e) => {
                        tracing::debug!(namespace = %ns, account = %name, error = %e,
                            "cannot tell whether the account exists; looking again shortly");
                        None
                    }
                }
            }
        }
    }
}

/// Reconcile a readable account; report an unreadable one on itself. An account of
/// another shard (the watch is label-selected, so only a label changed since) is left
/// alone.
async fn reconcile_account(
    obj: Arc<Guarded<CustomerAccount>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.shard.owns_account(obj.meta().labels.as_ref()) {
        tracing::debug!(namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any(),
            "CustomerAccount belongs to another shard or none; not reconciled here");
        return Ok(Action::await_change());
    }
    match &obj.0 {
        Ok(account) => customer_account::reconcile(Arc::new(account.clone()), ctx).await,
        Err(invalid) => report_invalid::<CustomerAccount>(&obj, invalid, &ctx).await,
    }
}

/// Reconcile a readable cluster this shard owns; report an unreadable one on itself
/// (shard 0 does, in a split fleet: its account cannot be read from it). A cluster of
/// another shard, or of none, is never touched.
async fn reconcile_cluster(
    obj: Arc<Guarded<ManagedCluster>>,
    ctx: Arc<Context>,
    accounts: Arc<AccountIndex>,
) -> Result<Action, Error> {
    match &obj.0 {
        Ok(cluster) => {
            let owned = if ctx.shard.is_sharded() {
                accounts.owns(&ctx, cluster).await
            } else {
                Some(true)
            };
            let Some(owned) = owned else {
                return Ok(Action::requeue(Duration::from_secs(5)));
            };
            if !owned {
                tracing::debug!(namespace = %cluster.namespace().unwrap_or_default(), name = %cluster.name_any(),
                    "ManagedCluster's account belongs to another shard or none; not reconciled here");
                return Ok(Action::await_change());
            }
            managed_cluster::reconcile(Arc::new(cluster.clone()), ctx).await
        }
        Err(invalid) if !ctx.shard.is_sharded() || ctx.shard.reports_unowned() => {
            report_invalid::<ManagedCluster>(&obj, invalid, &ctx).await
        }
        Err(_) => Ok(Action::await_change()),
    }
}

/// An object this version cannot read: say so on the object itself (`Ready=False`,
/// reason `InvalidObject`, naming the field) and in a Warning Event, then wait until it
/// changes. The typed API cannot read it, so the status is written as a merge patch
/// through the untyped one. Only the object's name and the field path are logged.
async fn report_invalid<K>(
    guarded: &Guarded<K>,
    invalid: &InvalidObject,
    ctx: &Context,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let started = Instant::now();
    let kind = K::kind(&());
    let ns = invalid.metadata.namespace.clone().unwrap_or_default();
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let result = write_invalid::<K>(guarded, ctx, &ns, &name).await;
    let outcome = match &result {
        Ok(_) => Category::InvalidObject.as_str(),
        Err(e) => e.category().as_str(),
    };
    ctx.metrics.reconcile(&kind, outcome, started.elapsed());
    result
}

/// Read the object as stored, name the unreadable field, and write the condition and
/// Event unless they already say the same for this generation.
async fn write_invalid<K>(
    guarded: &Guarded<K>,
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let kind = K::kind(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &ApiResource::erase::<K>(&()));
    let stored = api.get_opt(name).await.map_err(|e| {
        Error::Stage(Failure::kube(
            KubeOp::GetStatus,
            "reading the object as stored",
            e,
        ))
    })?;
    // Gone, or readable again by now: the watch brings the new version.
    let Some(stored) = stored else {
        return Ok(Action::await_change());
    };
    let raw = serde_json::to_value(&stored).unwrap_or_default();
    let Some(problem) = unreadable_field::<K>(raw) else {
        return Ok(Action::await_change());
    };
    let message = problem.message(&kind, K::plural(&()).as_ref(), ns, name, &stored);
    let generation = stored.metadata.generation.unwrap_or_default();
    let status = stored.data.get("status");
    let mut conditions: Vec<Condition> = status
        .and_then(|s| s.get("conditions"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let reason = Category::InvalidObject.as_str();
    let already = conditions.iter().any(|c| {
        c.type_ == "Ready"
            && c.status == ConditionStatus::False
            && c.reason == reason
            && c.message == message
    }) && status.and_then(|s| s.get("observedGeneration"))
        == Some(&generation.into());
    if already {
        return Ok(Action::await_change());
    }
    tracing::warn!(kind = %kind, namespace = %ns, name = %name, field = %problem.path,
        "object cannot be read as this version's {kind}; reported on its status");
    let ready = Condition::new(
        "Ready",
        ConditionStatus::False,
        reason,
        message.clone(),
        generation,
        ctx.clock.now(),
    );
    set_condition(&mut conditions, ready);
    let patch = serde_json::json!({
        "status": { "conditions": conditions, "observedGeneration": generation }
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch_status(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            Error::Stage(Failure::kube(
                KubeOp::PatchStatus,
                "merge patch of an unreadable object's status",
                e,
            ))
        })?;
    super::status::publish(ctx, guarded, false, reason, &message, "Reconcile").await;
    Ok(Action::await_change())
}

/// Where and why a stored object does not deserialize as `K`.
#[derive(Debug, Clone, PartialEq)]
struct Unreadable {
    /// Dotted path of the field, e.g. `spec.sessionDuration`.
    path: String,
    /// What is wrong with it, e.g. "invalid type: integer `30`, expected a string".
    what: String,
}

impl Unreadable {
    /// The condition message: the field, what is wrong, and how to fix it.
    fn message(
        &self,
        kind: &str,
        plural: &str,
        ns: &str,
        name: &str,
        stored: &DynamicObject,
    ) -> String {
        let edit = if self.path.starts_with("status.") {
            format!("kubectl edit {plural} {name} -n {ns} --subresource=status")
        } else {
            format!("kubectl edit {plural} {name} -n {ns}")
        };
        let mut message = format!(
            "This {kind} cannot be read by this version of crossguard: {}: {}. Correct \
             the field ({edit}); it is not reconciled until then. An older CRD or a write \
             that bypassed the schema can leave such a value.",
            self.path, self.what
        );
        if stored.metadata.deletion_timestamp.is_some() {
            message.push_str(
                " Its deletion also waits for the fix: crossguard erases the tenant's data \
                 before letting it go.",
            );
        }
        message
    }
}

/// Why `raw` does not deserialize as `K`, naming the field; None when it does.
fn unreadable_field<K: DeserializeOwned>(raw: serde_json::Value) -> Option<Unreadable> {
    match serde_path_to_error::deserialize::<_, K>(raw) {
        Ok(_) => None,
        Err(e) => Some(Unreadable {
            path: e.path().to_string(),
            what: e.inner().to_string(),
        }),
    }
}

/// Watch failures, logged once per distinct failure (kube-runtime retries a failed watch
/// with backoff, so the same error comes back every few seconds) and shown by `/readyz`
/// while a kind is not established.
struct WatchFailures {
    client: Client,
    readiness: Arc<Readiness>,
    /// The API server's URL, named when it cannot be reached.
    api_server: String,
    /// (kind, message) pairs logged since that kind's watch was last established.
    logged: Mutex<HashSet<(String, String)>>,
}

impl WatchFailures {
    fn new(client: Client, readiness: Arc<Readiness>, api_server: String) -> Self {
        WatchFailures {
            client,
            readiness,
            api_server,
            logged: Mutex::new(HashSet::new()),
        }
    }

    /// Wait until `store`'s initial list is done, then count `kind` as established.
    async fn established<K>(&self, kind: String, store: Store<K>)
    where
        K: kube::runtime::reflector::Lookup + Clone + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        // Polled, like every other wait for a store's first list (see `unowned::listed`).
        if super::unowned::listed(&store).await {
            tracing::info!(kind = %kind, "watch established: initial list done");
            self.readiness.established(&kind);
            self.lock().retain(|(k, _)| *k != kind);
        }
    }

    /// Look at one result of a controller's stream: watch failures are explained and
    /// logged once; reconcile failures were already logged by the error policy.
    async fn observe<K, E>(
        &self,
        result: Result<(ObjectRef<K>, Action), kube_controller::Error<E, watcher::Error>>,
    ) where
        K: Resource,
        E: std::error::Error,
    {
        match result {
            Err(kube_controller::Error::QueueError(e)) => self.watch_failed(&e).await,
            Err(kube_controller::Error::RunnerError(e)) => {
                tracing::error!(error = %e, "controller runner failed");
            }
            Err(kube_controller::Error::ObjectNotFound(obj)) => {
                tracing::debug!(object = %obj, "object to reconcile is gone");
            }
            Err(kube_controller::Error::ReconcilerFailed(..)) | Ok(_) => {}
        }
    }

    /// Explain a failed watch: a missing CRD names the fix, a refusal names the RBAC.
    async fn watch_failed(&self, error: &watcher::Error) {
        let code = match error {
            watcher::Error::InitialListFailed(kube::Error::Api(s))
            | watcher::Error::WatchStartFailed(kube::Error::Api(s))
            | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.code),
            watcher::Error::WatchError(s) => Some(s.code),
            _ => None,
        };
        match code {
            Some(404) => {
                let missing = missing_crds(&self.client).await;
                for (kind, crd) in &missing {
                    let message = format!(
                        "the CustomResourceDefinition {crd} is not installed, so crossguard \
                         cannot watch {kind} objects: install the CRDs with `kubectl apply -f \
                         crds/` (or the Helm chart, which carries them); crossguard picks them \
                         up without a restart"
                    );
                    self.readiness.problem(
                        kind,
                        &format!("CRD {crd} is not installed (kubectl apply -f crds/)"),
                    );
                    self.log_once(kind, &message, || {
                        tracing::error!(kind = %kind, crd = %crd, "{message}");
                    });
                }
                if missing.is_empty() {
                    let message = format!("watch failed: {error}");
                    self.log_once("", &message, || tracing::error!("{message}"));
                }
            }
            Some(403) => {
                let message = format!(
                    "the API server refused crossguard's watch: {error}; its ServiceAccount \
                     needs get, list and watch on customeraccounts and managedclusters \
                     (the Helm chart's RBAC grants them)"
                );
                self.log_once("", &message, || tracing::error!("{message}"));
            }
            // The resourceVersion expired: the watcher lists again, as designed.
            Some(410) => tracing::debug!(error = %error, "watch expired; relisting"),
            // No answer at all: connection refused, DNS, TLS, timeout.
            None if unanswered(error) => {
                let message = format!(
                    "cannot reach the Kubernetes API server {}: {error}; retrying with \
                     backoff (check KUBECONFIG or the in-cluster service, and that the \
                     server is up and reachable from here)",
                    self.api_server
                );
                let why = format!("API server {} unreachable", self.api_server);
                for kind in [CustomerAccount::kind(&()), ManagedCluster::kind(&())] {
                    self.readiness.problem(&kind, &why);
                }
                self.log_once(
                    "",
                    &message,
                    || tracing::error!(api_server = %self.api_server, "{message}"),
                );
            }
            _ => {
                let message = format!("watch failed, retrying with backoff: {error}");
                self.log_once("", &message, || tracing::warn!("{message}"));
            }
        }
    }

    /// Run `log` unless (`kind`, `message`) was logged since `kind` was last established;
    /// repeats go to debug.
    fn log_once(&self, kind: &str, message: &str, log: impl FnOnce()) {
        if self.lock().insert((kind.to_string(), message.to_string())) {
            log();
        } else {
            tracing::debug!("{message}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.logged.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether the watch failed without any answer from the API server (as opposed to an
/// error status or an undecodable answer).
fn unanswered(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => {
            matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
        }
        _ => false,
    }
}

/// The kinds (and their CRD names) the API server does not serve, from discovery of
/// crossguard's API group. Discovery is open to every authenticated client, so this needs
/// no RBAC on CustomResourceDefinitions.
async fn missing_crds(client: &Client) -> Vec<(String, String)> {
    let kinds = [
        (CustomerAccount::kind(&()), CustomerAccount::plural(&())),
        (ManagedCluster::kind(&()), ManagedCluster::plural(&())),
    ];
    let served: Vec<String> = match client
        .list_api_group_resources(&CustomerAccount::api_version(&()))
        .await
    {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "discovery of crossguard's API group failed");
            return Vec::new();
        }
    };
    let group = CustomerAccount::group(&());
    kinds
        .into_iter()
        .filter(|(_, plural)| !served.iter().any(|s| s == plural))
        .map(|(kind, plural)| (kind.to_string(), format!("{plural}.{group}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changes_worth_a_reconcile_trigger_one() {
        let base: CustomerAccount = serde_json::from_value(json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": "acme", "namespace": "acme", "uid": "u1", "generation": 3,
                "resourceVersion": "10"},
            "spec": {"accountId": "111111111111", "roleArn": "arn:aws:iam::111111111111:role/r",
                "regions": ["us-east-1"]},
        }))
        .unwrap();
        let print = |obj: &CustomerAccount| worth_a_reconcile(obj);
        // A status-only update (our own write): new resourceVersion and status, same print.
        let mut status_only = base.clone();
        status_only.metadata.resource_version = Some("11".into());
        status_only.status = Some(Default::default());
        assert_eq!(print(&status_only), print(&base));
        // A spec change, the rotation annotation, our finalizer, a deletion, a re-creation.
        let mut spec = base.clone();
        spec.metadata.generation = Some(4);
        let mut rotation = base.clone();
        rotation.annotations_mut().insert(
            "crossguard.dev/rotate-external-id".into(),
            "2026-11-30".into(),
        );
        let mut finalizer = base.clone();
        finalizer
            .finalizers_mut()
            .push(super::super::FINALIZER.into());
        let mut deleting = base.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-11-30T00:00:00Z".parse().unwrap(),
            ));
        let mut recreated = base.clone();
        recreated.metadata.uid = Some("u2".into());
        for changed in [spec, rotation, finalizer, deleting, recreated] {
            assert_ne!(print(&changed), print(&base), "{:?}", changed.metadata);
        }
    }

    fn account(spec: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": "bad", "namespace": "acme"},
            "spec": spec,
        })
    }

    fn guarded<K: Resource + DeserializeOwned>(obj: serde_json::Value) -> Guarded<K> {
        serde_json::from_value(obj).expect("guarded deserialization never fails")
    }

    fn cluster(name: &str, ns: &str, account: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "ManagedCluster",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"accountRef": {"name": account}, "region": "us-east-1", "clusterName": "prod"},
        })
    }

    #[test]
    fn an_account_maps_to_its_readable_clusters_and_an_unreadable_one_to_none() {
        let store = ClustersByAccount::default();
        for obj in [
            cluster("prod", "acme", json!("acme")),
            cluster("dev", "acme", json!("acme")),
            cluster("theirs", "acme", json!("globex")),
            cluster("elsewhere", "other", json!("acme")),
            // Unreadable: its account reference cannot be trusted, so it maps from nothing.
            cluster("broken", "acme", json!(42)),
        ] {
            store.apply(&watcher::Event::Apply(guarded(obj)));
        }
        let good = account(json!({
            "accountId": "111111111111",
            "roleArn": "arn:aws:iam::111111111111:role/crossguard-access",
            "regions": ["us-east-1"],
        }));
        let mut good = guarded::<CustomerAccount>(good);
        good.meta_mut().name = Some("acme".into());
        let mut names: Vec<String> = clusters_of(&store, &good)
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        assert_eq!(names, ["dev", "prod"]);

        let mut bad = guarded::<CustomerAccount>(account(json!({"sessionDuration": 30})));
        bad.meta_mut().name = Some("acme".into());
        assert!(bad.0.is_err());
        assert!(clusters_of(&store, &bad).is_empty());
    }

    /// The names of the clusters the index maps `account` in `ns` to, sorted.
    fn referring(index: &ClustersByAccount, ns: &str, account: &str) -> Vec<String> {
        let mut names: Vec<String> = index
            .referring(ns, account)
            .into_iter()
            .map(|r| {
                assert_eq!(r.namespace.as_deref(), Some(ns));
                r.name
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_index_of_clusters_by_account_follows_the_watch() {
        use watcher::Event;
        let index = ClustersByAccount::default();
        let apply = |obj| index.apply(&Event::Apply(guarded::<ManagedCluster>(obj)));
        apply(cluster("prod", "acme", json!("acme")));
        apply(cluster("dev", "acme", json!("acme")));
        assert_eq!(referring(&index, "acme", "acme"), ["dev", "prod"]);

        // Its accountRef changed: it leaves the old account and joins the new one.
        apply(cluster("dev", "acme", json!("globex")));
        assert_eq!(referring(&index, "acme", "acme"), ["prod"]);
        assert_eq!(referring(&index, "acme", "globex"), ["dev"]);
        // It became unreadable: it maps from nothing.
        apply(cluster("dev", "acme", json!(42)));
        assert!(referring(&index, "acme", "globex").is_empty());
        // Deleted.
        index.apply(&Event::Delete(guarded(cluster(
            "prod",
            "acme",
            json!("acme"),
        ))));
        assert!(referring(&index, "acme", "acme").is_empty());

        // A relist (the watch's resourceVersion expired): what it did not bring is gone
        // once it is done, and until then the index answers as before, like the store.
        apply(cluster("old", "acme", json!("acme")));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(guarded(cluster(
            "new",
            "acme",
            json!("acme"),
        ))));
        assert_eq!(referring(&index, "acme", "acme"), ["old"]);
        index.apply(&Event::InitDone);
        assert_eq!(referring(&index, "acme", "acme"), ["new"]);
        let state = index.lock();
        assert_eq!(state.account_of.len(), 1, "nothing stale is kept");
        assert_eq!(state.clusters.len(), 1, "empty sets are dropped");
    }

    /// The index gives what a scan of the whole cluster cache gave (the code it replaced),
    /// for a fleet of random apply and delete events.
    #[test]
    fn the_index_agrees_with_a_scan_of_the_cache() {
        use rand::{Rng, SeedableRng};
        let (store, mut writer) = kube::runtime::reflector::store::<Guarded<ManagedCluster>>();
        let index = ClustersByAccount::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for _ in 0..2_000 {
            let ns = format!("ns{}", rng.random_range(0..3));
            let name = format!("c{}", rng.random_range(0..40));
            let account = match rng.random_range(0..6) {
                0 => json!(7),
                n => json!(format!("a{n}")),
            };
            let obj = guarded::<ManagedCluster>(cluster(&name, &ns, account));
            let event = if rng.random_range(0..4) == 0 {
                watcher::Event::Delete(obj)
            } else {
                watcher::Event::Apply(obj)
            };
            writer.apply_watcher_event(&event);
            index.apply(&event);
        }
        for ns in ["ns0", "ns1", "ns2"] {
            for n in 1..6 {
                let account = format!("a{n}");
                let mut scanned: Vec<String> = store
                    .state()
                    .iter()
                    .filter(|g| {
                        g.0.as_ref().is_ok_and(|mc| {
                            mc.namespace().as_deref() == Some(ns)
                                && mc.spec.account_ref.name == account
                        })
                    })
                    .map(|g| g.name_any())
                    .collect();
                scanned.sort();
                assert_eq!(referring(&index, ns, &account), scanned, "{ns}/{account}");
            }
        }
    }

    #[test]
    fn an_unreadable_field_is_named_with_its_path() {
        let raw = account(json!({
            "accountId": "111111111111",
            "roleArn": "arn:aws:iam::111111111111:role/crossguard-access",
            "regions": ["us-east-1"],
            "sessionDuration": 30,
        }));
        let problem = unreadable_field::<CustomerAccount>(raw).expect("unreadable");
        assert_eq!(problem.path, "spec.sessionDuration");
        assert!(
            problem.what.contains("integer `30`") && problem.what.contains("string"),
            "{}",
            problem.what
        );
    }

    #[test]
    fn a_readable_object_has_no_problem() {
        let raw = account(json!({
            "accountId": "111111111111",
            "roleArn": "arn:aws:iam::111111111111:role/crossguard-access",
            "regions": ["us-east-1"],
            "sessionDuration": "30m",
        }));
        assert_eq!(unreadable_field::<CustomerAccount>(raw), None);
    }

    #[test]
    fn the_message_names_the_field_and_the_fix() {
        let problem = Unreadable {
            path: "spec.sessionDuration".into(),
            what: "invalid type: integer `30`, expected a string".into(),
        };
        let mut stored = DynamicObject::new("bad", &ApiResource::erase::<CustomerAccount>(&()));
        let message = problem.message(
            "CustomerAccount",
            "customeraccounts",
            "acme",
            "bad",
            &stored,
        );
        assert!(message.contains("spec.sessionDuration: invalid type: integer `30`"));
        assert!(message.contains("kubectl edit customeraccounts bad -n acme"));
        assert!(!message.contains("deletion"));
        stored.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let status = Unreadable {
            path: "status.externalId".into(),
            ..problem
        };
        let message = status.message(
            "CustomerAccount",
            "customeraccounts",
            "acme",
            "bad",
            &stored,
        );
        assert!(message.contains("--subresource=status"), "{message}");
        assert!(message.contains("deletion also waits"), "{message}");
    }
}
