//! Status writes (one server-side apply, only when something changed) and transition Events.

use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Context;
use super::failure::{Failure, KubeOp};
use crate::api::{Condition, FIELD_MANAGER};

/// Server-side apply `new` as the object's status unless it equals `old`.
pub(super) async fn apply_status<K, S>(
    api: &Api<K>,
    obj: &K,
    old: Option<&S>,
    new: &S,
) -> Result<(), Failure>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": obj.name_any() },
        "status": new,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|e| Failure::kube(KubeOp::PatchStatus, "server-side apply of status", e))?;
    Ok(())
}

/// Publish an Event when the Ready condition changed status or reason.
pub(super) async fn publish_transition<K>(
    ctx: &Context,
    obj: &K,
    old: &[Condition],
    new: &[Condition],
) where
    K: Resource<DynamicType = ()>,
{
    let Some(now) = crate::api::conditions_find(new, "Ready") else {
        return;
    };
    let before = crate::api::conditions_find(old, "Ready");
    if before.is_some_and(|b| b.status == now.status && b.reason == now.reason) {
        return;
    }
    publish(
        ctx,
        obj,
        now.is_true(),
        &now.reason,
        &now.message,
        "Reconcile",
    )
    .await;
}

/// Publish one Event; failures are logged, never fatal.
pub(super) async fn publish<K>(
    ctx: &Context,
    obj: &K,
    normal: bool,
    reason: &str,
    note: &str,
    action: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_: if normal {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder().publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}
