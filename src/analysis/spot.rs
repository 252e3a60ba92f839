//! Spot candidates: replicated stateless workloads whose nodes could be spot.
//!
//! # Rule
//! A Deployment is a candidate when it has at least two replicas, its pod template has
//! no PersistentVolumeClaim (or generic ephemeral) volume, and no PodDisruptionBudget
//! selecting its pods allows zero disruptions. Its pods must also be movable (nothing
//! pins them).
//!
//! # Estimate
//! Per nodegroup (on-demand nodes left after consolidation), the group's cost is split
//! among its pods by dominant share (the larger of a pod's CPU and memory fraction of its
//! node). The candidates' part of that cost, times the family's configured spot discount,
//! is the saving. When every non-DaemonSet pod of the group qualifies, the whole group
//! could be a spot nodegroup; otherwise the candidates could move to one. There is no
//! spot price feed offline, so the discount is a configurable *estimate* and the report
//! says so.

use std::collections::{BTreeMap, BTreeSet};

use super::AnalysisSettings;
use super::consolidation::{Outcome, dominant_share};
use super::model::{Model, NO_NODEGROUP, Role};
use super::prices::family;

/// A spot finding for one nodegroup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpotCandidate {
    pub nodegroup: String,
    /// Eligible Deployments as `namespace/name`, sorted.
    pub deployments: Vec<String>,
    pub eligible_pods: usize,
    /// Fraction of the group's cost attributed to eligible pods (0..=1).
    pub share: f64,
    /// Every non-DaemonSet pod qualifies.
    pub whole_group: bool,
    pub family: String,
    pub discount: f64,
}

/// Spot candidates per nodegroup; see the module documentation.
pub(crate) fn spot_candidates(
    model: &Model<'_>,
    outcome: &Outcome,
    settings: &AnalysisSettings,
) -> Vec<SpotCandidate> {
    struct Acc {
        total: f64,
        eligible: f64,
        workload_pods: usize,
        eligible_pods: usize,
        deployments: BTreeSet<String>,
        family: Option<String>,
    }
    let mut groups: BTreeMap<&str, Acc> = BTreeMap::new();
    for (p, pod) in model.pods.iter().enumerate() {
        let n = outcome.node_of_pod[p] as usize;
        let node = &model.nodes[n];
        if outcome.is_removed[n]
            || node.spot
            || node.fargate
            || node.hourly.is_none()
            || node.nodegroup == NO_NODEGROUP
        {
            continue;
        }
        let acc = groups
            .entry(node.nodegroup.as_str())
            .or_insert_with(|| Acc {
                total: 0.0,
                eligible: 0.0,
                workload_pods: 0,
                eligible_pods: 0,
                deployments: BTreeSet::new(),
                family: node.instance_type.as_deref().map(|t| family(t).to_string()),
            });
        let weight = dominant_share(pod.req, node.alloc);
        acc.total += weight;
        if matches!(pod.role, Role::DaemonSet | Role::Static) {
            continue;
        }
        acc.workload_pods += 1;
        if pod.role == Role::Movable
            && let Some(d) = pod.deployment
            && model.deployments[d as usize].spot_eligible()
        {
            let dep = &model.deployments[d as usize];
            acc.eligible += weight;
            acc.eligible_pods += 1;
            acc.deployments
                .insert(format!("{}/{}", dep.namespace, dep.name));
        }
    }
    groups
        .into_iter()
        .filter(|(_, a)| a.eligible_pods > 0)
        .map(|(g, a)| {
            let whole_group = a.eligible_pods == a.workload_pods;
            let fam = a.family.unwrap_or_default();
            SpotCandidate {
                nodegroup: g.to_string(),
                deployments: a.deployments.into_iter().collect(),
                eligible_pods: a.eligible_pods,
                share: if whole_group {
                    1.0
                } else if a.total > 0.0 {
                    (a.eligible / a.total).min(1.0)
                } else {
                    a.eligible_pods as f64 / a.workload_pods as f64
                },
                whole_group,
                discount: settings.spot_discount_for(&fam),
                family: fam,
            }
        })
        .collect()
}
