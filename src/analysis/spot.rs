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
//! could be a spot nodegroup; otherwise the candidates could move to one.
//!
//! # Discount
//! When ec2:DescribeSpotPriceHistory was read (the operator), the discount is the group's
//! instance type's current spot price against its on-demand price. The price taken is the
//! *highest* current one among the Availability Zones the cluster's nodes run in: spot
//! nodes may land in any of them, and the highest price never overstates the saving. Only
//! when the history has no price for the type (offline analysis, the call failed or was
//! denied, or no zone offers the type) does the configured per-family discount stand in,
//! as an *estimate*; the report says which basis it used.

use std::collections::{BTreeMap, BTreeSet};

use super::AnalysisSettings;
use super::commitments::SpotPriceHistory;
use super::consolidation::{Outcome, dominant_share};
use super::model::{Model, NO_NODEGROUP, Role};
use super::prices::{PriceTable, family, os_name};

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
    /// The group's (first) instance type and its nodes' operating system.
    pub instance_type: Option<String>,
    pub os: String,
    pub region: String,
}

/// The spot discount for `instance_type` on `os` in `region` and the words saying where it
/// comes from; see the module documentation. Returns (discount, basis, from history).
pub(crate) fn discount(
    model: &Model<'_>,
    prices: &PriceTable,
    settings: &AnalysisSettings,
    instance_type: Option<&str>,
    os: &str,
    region: &str,
) -> (f64, String, bool) {
    let fam = instance_type.map(family).unwrap_or_default();
    let product = crate::aws::product_description(os);
    let mut zones: Vec<&str> = model
        .nodes
        .iter()
        .filter(|n| !n.fargate)
        .filter_map(|n| n.zone)
        .collect();
    zones.sort_unstable();
    zones.dedup();
    let why = match (model.spot_prices, instance_type) {
        (_, None) => "the instance type is unknown".to_string(),
        (SpotPriceHistory::NotRead, _) => "no spot price history was read".to_string(),
        (SpotPriceHistory::Unavailable(reason), _) => {
            format!("the spot price history was unavailable: {reason}")
        }
        (SpotPriceHistory::Read(_), Some(t)) => {
            let od = prices.on_demand_hourly_for(os, region, t).ok();
            match (model.spot_prices.highest(t, product, &zones), od) {
                (Some(p), Some(od)) if od > 0.0 => {
                    let d = (1.0 - p.usd_per_hour / od).clamp(0.0, 1.0);
                    let basis = format!(
                        "spot price history: {t} {} at ${}/h in {} (since {}), the highest current price among the cluster's zones ({}), against ${od}/h on demand: {:.0}% below",
                        os_name(os),
                        p.usd_per_hour,
                        p.availability_zone,
                        p.timestamp,
                        zones.join(", "),
                        d * 100.0
                    );
                    return (d, basis, true);
                }
                (Some(_), _) => format!("the on-demand price of {t} in {region} is unknown"),
                (None, _) => format!(
                    "the spot price history has no current price for {t} {product} in the cluster's zones"
                ),
            }
        }
    };
    let d = settings.spot_discount_for(fam);
    (
        d,
        format!(
            "estimated discount: the configured {:.0}% for {fam} ({why})",
            d * 100.0
        ),
        false,
    )
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
        /// Indices into `model.deployments`: named once per group at the end, not once
        /// per pod (tens of thousands of pods share a few thousand Deployments).
        deployments: BTreeSet<u32>,
        family: Option<String>,
        instance_type: Option<String>,
        os: String,
        region: String,
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
                instance_type: node.instance_type.clone(),
                os: node.os.to_string(),
                region: node.region.clone(),
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
            acc.eligible += weight;
            acc.eligible_pods += 1;
            acc.deployments.insert(d);
        }
    }
    groups
        .into_iter()
        .filter(|(_, a)| a.eligible_pods > 0)
        .map(|(g, a)| {
            let whole_group = a.eligible_pods == a.workload_pods;
            let fam = a.family.unwrap_or_default();
            let mut deployments: Vec<String> = a
                .deployments
                .into_iter()
                .map(|d| {
                    let dep = &model.deployments[d as usize];
                    format!("{}/{}", dep.namespace, dep.name)
                })
                .collect();
            // In the order of the names, as the report has always listed them.
            deployments.sort_unstable();
            deployments.dedup();
            SpotCandidate {
                nodegroup: g.to_string(),
                deployments,
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
                instance_type: a.instance_type,
                os: a.os,
                region: a.region,
            }
        })
        .collect()
}
