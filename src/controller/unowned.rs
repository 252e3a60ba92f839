//! Objects no shard owns, reported by shard 0 of a split fleet: `Sharded=False` with
//! reason `NoShardOwner` on the object (and a Warning Event when that starts), and
//! `crossguard_unowned_objects{kind}`.
//!
//! That condition is the only thing written to an object this shard does not own: no
//! finalizer, no other condition, no AWS call. The write is a merge patch of the status's
//! conditions guarded by the object's `resourceVersion`, so it never overwrites a status
//! that an owner wrote in the meantime (a 409 is retried at the next sweep, which sees the
//! owner's status). The owner's next status write replaces the condition by
//! `Sharded=True` ([`super::conclude`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use super::Context;
use crate::api::{Condition, ConditionStatus, CustomerAccount, FIELD_MANAGER, ManagedCluster};
use crate::shard::{CONDITION, Owner, REASON_UNOWNED};

/// How often the stores are looked at for objects no shard owns. Only in-memory caches
/// are read; the API server is written to only for a newly unowned object.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// One unowned object: kind, namespace, name.
type Key = (&'static str, String, String);

/// Report objects no shard owns until `shutdown`, from `accounts` (every account's
/// metadata) and `clusters` (every cluster).
pub(super) async fn report(
    ctx: Arc<Context>,
    accounts: Store<PartialObjectMeta<CustomerAccount>>,
    clusters: Store<DeserializeGuard<ManagedCluster>>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let work = async {
        if !listed(&accounts).await || !listed(&clusters).await {
            return;
        }
        tracing::info!(every = ?SWEEP_EVERY, "reporting CustomerAccounts and ManagedClusters no shard owns");
        // What was reported, by object: (uid, message). Written again only when that changes.
        let mut reported: HashMap<Key, (String, String)> = HashMap::new();
        loop {
            sweep(&ctx, &accounts, &clusters, &mut reported).await;
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    };
    futures::future::select(work.boxed(), shutdown.boxed()).await;
}

/// One look at the stores: set the gauges, report what became unowned.
async fn sweep(
    ctx: &Context,
    accounts: &Store<PartialObjectMeta<CustomerAccount>>,
    clusters: &Store<DeserializeGuard<ManagedCluster>>,
    reported: &mut HashMap<Key, (String, String)>,
) {
    let shard = ctx.shard;
    let account_kind = CustomerAccount::kind(&()).to_string();
    let cluster_kind = ManagedCluster::kind(&()).to_string();
    let mut unowned: Vec<(Key, String, String)> = Vec::new();
    for account in accounts.state() {
        if let Owner::Nobody(why) = shard.account_owner(account.metadata.labels.as_ref()) {
            unowned.push((
                (
                    "CustomerAccount",
                    account.namespace().unwrap_or_default(),
                    account.name_any(),
                ),
                account.uid().unwrap_or_default(),
                why.message(shard.count()),
            ));
        }
    }
    let account_count = unowned.len();
    tracing::debug!(
        accounts = accounts.state().len(),
        unowned = account_count,
        "sweep"
    );
    for cluster in clusters.state() {
        let Ok(cluster) = &cluster.0 else { continue };
        let ns = cluster.namespace().unwrap_or_default();
        let name = &cluster.spec.account_ref.name;
        let account = accounts.get(&ObjectRef::new(name).within(&ns));
        let labels = account.as_ref().map(|a| a.metadata.labels.as_ref());
        if let Owner::Nobody(why) = shard.cluster_owner(name, labels) {
            unowned.push((
                ("ManagedCluster", ns, cluster.name_any()),
                cluster.uid().unwrap_or_default(),
                why.message(shard.count()),
            ));
        }
    }
    ctx.metrics.set_unowned(&account_kind, account_count);
    ctx.metrics
        .set_unowned(&cluster_kind, unowned.len() - account_count);
    reported.retain(|key, _| unowned.iter().any(|(k, _, _)| k == key));
    for (key, uid, message) in unowned {
        if reported.get(&key) == Some(&(uid.clone(), message.clone())) {
            continue;
        }
        let written = match key.0 {
            "CustomerAccount" => mark::<CustomerAccount>(ctx, &key.1, &key.2, &uid, &message).await,
            _ => mark::<ManagedCluster>(ctx, &key.1, &key.2, &uid, &message).await,
        };
        match written {
            Ok(()) => {
                reported.insert(key, (uid, message));
            }
            Err(e) => tracing::debug!(kind = key.0, namespace = %key.1, name = %key.2, error = %e,
                "could not report an unowned object; trying again at the next sweep"),
        }
    }
}

/// Set `Sharded=False NoShardOwner` with `message` on the object, unless it says so
/// already; a Warning Event when it did not say so before.
async fn mark<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
    uid: &str,
    message: &str,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &resource);
    let Some(stored) = api.get_opt(name).await? else {
        return Ok(()); // gone: nothing to report
    };
    if stored.uid().as_deref() != Some(uid) {
        return Ok(()); // re-created: the next sweep sees the new one
    }
    let mut conditions: Vec<Condition> = match stored
        .data
        .pointer("/status/conditions")
        .map(|c| serde_json::from_value(c.clone()))
    {
        None => Vec::new(),
        Some(Ok(conditions)) => conditions,
        // Unreadable conditions: leave them to the owner to fix rather than replace them.
        Some(Err(_)) => return Ok(()),
    };
    let before = crate::api::conditions_find(&conditions, CONDITION).cloned();
    if before.as_ref().is_some_and(|c| {
        c.status == ConditionStatus::False && c.reason == REASON_UNOWNED && c.message == message
    }) {
        return Ok(());
    }
    let generation = stored.metadata.generation.unwrap_or_default();
    crate::api::set_condition(
        &mut conditions,
        Condition::new(
            CONDITION,
            ConditionStatus::False,
            REASON_UNOWNED,
            message.to_string(),
            generation,
            ctx.clock.now(),
        ),
    );
    // resourceVersion makes this a compare-and-swap: a status an owner wrote since the
    // read is never overwritten (409, retried at the next sweep).
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": stored.resource_version() },
        "status": { "conditions": conditions },
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch_status(name, &params, &Patch::Merge(&patch))
        .await?;
    tracing::warn!(kind = %K::kind(&()), namespace = %ns, name = %name, "{message}");
    let was_unowned = before.is_some_and(|c| c.reason == REASON_UNOWNED);
    if !was_unowned {
        let event = Event {
            type_: EventType::Warning,
            reason: REASON_UNOWNED.to_string(),
            note: Some(message.chars().take(1000).collect()),
            action: "Shard".to_string(),
            secondary: None,
        };
        let reference = ObjectReference {
            api_version: Some(K::api_version(&()).to_string()),
            kind: Some(K::kind(&()).to_string()),
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            uid: Some(uid.to_string()),
            resource_version: stored.resource_version(),
            ..ObjectReference::default()
        };
        if let Err(e) = ctx.recorder().publish(&event, &reference).await {
            tracing::warn!(error = %e, "could not publish the NoShardOwner event");
        }
    }
    Ok(())
}

/// Wait until `store`'s initial list is done; false when its writer is gone. Polls
/// instead of awaiting [`Store::wait_until_ready`]: that future keeps only the last
/// waiter's waker (kube-runtime's `DelayedInit` wraps one oneshot receiver), so with
/// several concurrent waiters (reconciles, the unowned report) some would never wake.
pub(super) async fn listed<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match store.wait_until_ready().now_or_never() {
            Some(result) => return result.is_ok(),
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
