//! The snapshot type: what is read from a customer cluster, after sanitizing.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::{Deserialize, Serialize};

/// Everything analysis needs from one customer cluster at one point in time. Workload
/// objects are stored sanitized: no secret-looking env values, args or annotations.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSnapshot {
    /// When the snapshot was taken (RFC 3339).
    #[serde(default)]
    pub taken_at: String,
    /// Nodes.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Pods of all namespaces.
    #[serde(default)]
    pub pods: Vec<Pod>,
    /// Deployments.
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    /// ReplicaSets (to map pods to their Deployments).
    #[serde(default)]
    pub replica_sets: Vec<ReplicaSet>,
    /// StatefulSets.
    #[serde(default)]
    pub stateful_sets: Vec<StatefulSet>,
    /// DaemonSets.
    #[serde(default)]
    pub daemon_sets: Vec<DaemonSet>,
    /// Jobs.
    #[serde(default)]
    pub jobs: Vec<Job>,
    /// CronJobs.
    #[serde(default)]
    pub cron_jobs: Vec<CronJob>,
    /// PodDisruptionBudgets.
    #[serde(default)]
    pub pod_disruption_budgets: Vec<PodDisruptionBudget>,
}
