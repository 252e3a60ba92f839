//! Draining a node of the customer's cluster before its instance is removed: cordon it,
//! then evict its pods through the Eviction API so PodDisruptionBudgets are respected.
//! DaemonSet pods (they would come straight back and leave with the node), mirror pods
//! (the kubelet owns them) and finished pods are left alone. When pods are still there at
//! the deadline, the drain gives up; the caller uncordons the node.
//!
//! These are the only writes crossguard makes in a customer cluster, and only in Automated
//! mode with `automation.dryRun: false`: the `automated` RBAC of `crossguard onboarding-rbac`
//! grants exactly `patch` on nodes and `create` on `pods/eviction`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{EvictParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};

use crate::audit::CallObserver;

/// Pause between eviction rounds (PDB-blocked evictions are retried).
const ROUND: Duration = Duration::from_secs(2);

/// How a drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drained {
    /// No pod that needs to move is left on the node.
    Empty {
        /// Pods evicted.
        evicted: usize,
    },
    /// The deadline passed with pods still on the node.
    TimedOut {
        /// Pods still there.
        remaining: usize,
        /// The last refusal (e.g. the disruption budget message), if any.
        last_refusal: Option<String>,
    },
}

/// Why a drain stopped before it was done.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The cluster's API failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A pod without a controller would have to go: nothing would bring it back.
    #[error("pod {0} has no controller; evicting it would delete it for good")]
    Unmanaged(String),
    /// This replica no longer holds the leader Lease; the next leader takes the drain over
    /// from the recorded intent.
    #[error("this replica no longer holds the leader lease")]
    NotLeading,
}

fn outcome(r: &Result<impl Sized, kube::Error>) -> String {
    match r {
        Ok(_) => "success".to_string(),
        Err(kube::Error::Api(s)) => format!("http_{}", s.code),
        Err(_) => "unavailable".to_string(),
    }
}

/// Mark the node (un)schedulable.
pub async fn set_unschedulable(
    client: &Client,
    node: &str,
    unschedulable: bool,
    observer: &dyn CallObserver,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({ "spec": { "unschedulable": unschedulable } });
    let r = nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    let op = if unschedulable { "cordon" } else { "uncordon" };
    observer.call(
        "kubernetes",
        op,
        &format!("nodes/{node}"),
        &outcome(&r),
        None,
        true,
    );
    r.map(|_| ())
}

/// Is the node marked unschedulable right now (read fresh, not from the snapshot)?
pub async fn is_cordoned(
    client: &Client,
    node: &str,
    observer: &dyn CallObserver,
) -> Result<bool, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let r = nodes.get(node).await;
    observer.call(
        "kubernetes",
        "get",
        &format!("nodes/{node}"),
        &outcome(&r),
        None,
        false,
    );
    Ok(r?.spec.and_then(|s| s.unschedulable).unwrap_or(false))
}

/// Does this pod have to leave the node before the node goes?
fn must_move(pod: &Pod) -> bool {
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let daemon = pod.metadata.owner_references.as_ref().is_some_and(|o| {
        o.iter()
            .any(|r| r.kind == "DaemonSet" && r.controller == Some(true))
    });
    !(finished || mirror || daemon)
}

/// Has the pod a controller (ReplicaSet, StatefulSet, Job, …) that would recreate it?
fn controlled(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| r.controller == Some(true)))
}

/// Evict every pod that must move off `node` (which the caller has cordoned), retrying
/// refused evictions until `timeout`. Stops without evicting anything more when a pod
/// without a controller is on the node (the consolidation never plans such a node; one may
/// have been scheduled since).
pub async fn evict_all(
    client: &Client,
    node: &str,
    timeout: Duration,
    observer: &dyn CallObserver,
    leadership: &crate::leader::Leadership,
) -> Result<Drained, DrainError> {
    let deadline = Instant::now() + timeout;
    let all: Api<Pod> = Api::all(client.clone());
    let mut evicted = 0;
    let mut last_refusal = None;
    loop {
        let listed = all
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await;
        observer.call(
            "kubernetes",
            "list",
            &format!("pods on node {node}"),
            &outcome(&listed),
            None,
            false,
        );
        let pods: Vec<Pod> = listed?.items.into_iter().filter(must_move).collect();
        if let Some(bare) = pods.iter().find(|p| !controlled(p)) {
            return Err(DrainError::Unmanaged(format!(
                "{}/{}",
                bare.metadata.namespace.as_deref().unwrap_or_default(),
                bare.metadata.name.as_deref().unwrap_or_default()
            )));
        }
        if pods.is_empty() {
            return Ok(Drained::Empty { evicted });
        }
        if Instant::now() >= deadline {
            return Ok(Drained::TimedOut {
                remaining: pods.len(),
                last_refusal,
            });
        }
        for pod in &pods {
            // Checked before every eviction: a replica that lost the lease stops here.
            if !leadership.is_leading() {
                return Err(DrainError::NotLeading);
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let r = api.evict(&name, &EvictParams::default()).await;
            observer.call(
                "kubernetes",
                "evict",
                &format!("pods/{ns}/{name}"),
                &outcome(&r),
                None,
                true,
            );
            match r {
                Ok(_) => evicted += 1,
                // Gone already.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                // A PodDisruptionBudget says not now; try again next round.
                Err(kube::Error::Api(s)) if s.code == 429 => {
                    last_refusal = Some(format!("pod {ns}/{name}: {}", s.message));
                }
                Err(e) => return Err(e.into()),
            }
        }
        tokio::time::sleep(ROUND.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn daemonset_mirror_and_finished_pods_stay() {
        assert!(must_move(&pod(
            serde_json::json!({"metadata": {"name": "a"}})
        )));
        assert!(must_move(&pod(
            serde_json::json!({"metadata": {"name": "a",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]}})
        )));
        assert!(!must_move(&pod(
            serde_json::json!({"metadata": {"name": "a",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u", "controller": true}]}})
        )));
        assert!(!must_move(&pod(
            serde_json::json!({"metadata": {"name": "a",
            "annotations": {"kubernetes.io/config.mirror": "x"}}})
        )));
        assert!(!must_move(&pod(
            serde_json::json!({"metadata": {"name": "a"},
            "status": {"phase": "Succeeded"}})
        )));
        assert!(!must_move(&pod(
            serde_json::json!({"metadata": {"name": "a"},
            "status": {"phase": "Failed"}})
        )));
    }
}
