//! The snapshot type: what is read from a customer cluster, after sanitizing; and the
//! writer that stores it as it is read.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::{Deserialize, Serialize};

use crate::store::{ObjectWriter, StoreError};

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

/// One sanitized object as the reader hands it over, tagged with its kind. Handed over
/// once, by move, and never kept as an `Object`: its size (that of the largest kind) is
/// not worth a box per object.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Object {
    /// A Node.
    Node(Node),
    /// A Pod.
    Pod(Pod),
    /// A Deployment.
    Deployment(Deployment),
    /// A ReplicaSet.
    ReplicaSet(ReplicaSet),
    /// A StatefulSet.
    StatefulSet(StatefulSet),
    /// A DaemonSet.
    DaemonSet(DaemonSet),
    /// A Job.
    Job(Job),
    /// A CronJob.
    CronJob(CronJob),
    /// A PodDisruptionBudget.
    PodDisruptionBudget(PodDisruptionBudget),
}

impl ClusterSnapshot {
    /// Add `object` to the list of its kind.
    pub fn keep(&mut self, object: Object) {
        match object {
            Object::Node(o) => self.nodes.push(o),
            Object::Pod(o) => self.pods.push(o),
            Object::Deployment(o) => self.deployments.push(o),
            Object::ReplicaSet(o) => self.replica_sets.push(o),
            Object::StatefulSet(o) => self.stateful_sets.push(o),
            Object::DaemonSet(o) => self.daemon_sets.push(o),
            Object::Job(o) => self.jobs.push(o),
            Object::CronJob(o) => self.cron_jobs.push(o),
            Object::PodDisruptionBudget(o) => self.pod_disruption_budgets.push(o),
        }
    }
}

/// Writes a [`ClusterSnapshot`] document (the same JSON as serializing one) object by
/// object as the reader lists them, so a snapshot never has to be held in memory whole:
/// `{"takenAt": …, "nodes": [ … ], "pods": [ … ], …}`. Lists are written in the order the
/// reader starts them, each once; a list never started is absent (and reads back empty).
#[derive(Debug)]
pub struct SnapshotWriter {
    out: ObjectWriter,
    /// The next item is the first of the open list (no comma before it).
    first_item: bool,
    buf: Vec<u8>,
}

impl SnapshotWriter {
    /// Start the document in `out`, taken at `taken_at` (RFC 3339).
    pub fn new(mut out: ObjectWriter, taken_at: &str) -> Self {
        let mut buf = b"{\"takenAt\":".to_vec();
        serde_json::to_writer(&mut buf, taken_at).expect("a string serializes");
        out.write(&buf);
        SnapshotWriter {
            out,
            first_item: true,
            buf,
        }
    }

    /// Open the list `field` (a [`ClusterSnapshot`] field name in camelCase, e.g.
    /// `replicaSets`); the previous list, if any, must have been closed.
    pub fn begin_list(&mut self, field: &str) {
        self.buf.clear();
        self.buf.push(b',');
        serde_json::to_writer(&mut self.buf, field).expect("a string serializes");
        self.buf.extend_from_slice(b":[");
        self.out.write(&self.buf);
        self.first_item = true;
    }

    /// Append one object to the open list.
    pub fn item(&mut self, object: &impl Serialize) -> Result<(), serde_json::Error> {
        self.buf.clear();
        if !self.first_item {
            self.buf.push(b',');
        }
        serde_json::to_writer(&mut self.buf, object)?;
        self.out.write(&self.buf);
        self.first_item = false;
        Ok(())
    }

    /// Close the open list.
    pub fn end_list(&mut self) {
        self.out.write(b"]");
    }

    /// Wait until the store has taken enough of what was written (see
    /// [`ObjectWriter::ready`]); call it between pages.
    pub async fn ready(&mut self) -> Result<(), StoreError> {
        self.out.ready().await
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.out.written()
    }

    /// End the document and complete the object; returns its key.
    pub async fn finish(mut self) -> Result<String, StoreError> {
        self.out.write(b"}");
        self.out.finish().await
    }

    /// Discard the object (a read that failed half-way): nothing is kept under its key.
    pub async fn abort(self) {
        self.out.abort().await
    }
}
