//! Spot prices as billed, and the account's commitments (Reserved Instances and Savings
//! Plans): which of the cluster's on-demand nodes run under which commitment, how much of
//! each commitment they use, and what removing or replacing nodes really saves.
//!
//! # How commitments are applied (as AWS bills them)
//! AWS applies commitments to each hour's usage in this order, and so does [`apply`]:
//! 1. **Zonal Reserved Instances** (scope `Availability Zone`): instance type, platform,
//!    tenancy and zone must match; one RI covers one instance-hour (EC2 User Guide, "How
//!    Reserved Instance discounts are applied", zonal).
//! 2. **Regional Reserved Instances**: any zone of the region. Linux/UNIX RIs of default
//!    tenancy are *size-flexible*: they cover any size of their family by normalization
//!    factor (nano 0.25, micro 0.5, small 1, medium 2, large 4, xlarge 8, N·xlarge 8·N),
//!    applied to the smallest sizes first, and may cover part of an instance (one m5.large
//!    RI covers half an m5.xlarge hour) (same guide, "Instance size flexibility"; AWS
//!    Billing "Monitoring your size flexible reservations"). Other regional RIs match the
//!    instance type exactly.
//! 3. **Savings Plans**, after Reserved Instances: EC2 Instance Savings Plans before
//!    Compute Savings Plans, each plan to the usage with the highest savings percentage
//!    first, at the plan's rate for that usage, until the hourly commitment is used up
//!    (Savings Plans User Guide, "How Savings Plans apply to your AWS usage").
//!
//! Commitments apply account-wide: other instances of the account (outside this cluster,
//! or in other clusters) may be using them, and crossguard sees only this cluster's. The
//! coverage computed here is therefore the *most* the cluster can get; the report says "up
//! to" where that matters. Spot instances, Fargate and nodes of unknown price are never
//! covered. Nodes are assumed to run with default (shared) tenancy, as EKS nodes do.
//!
//! # What a change saves
//! The commitments are paid whether used or not. Removing or replacing a node therefore
//! saves the on-demand cost that was *not* covered: the analysis applies the commitments to
//! the cluster before and after the planned change and takes the difference of the
//! uncovered on-demand cost. Removing a covered node saves nothing until its commitment
//! is used elsewhere (here: by another node of the cluster that was paying on-demand).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::aws::{ReservedInstance, SavingsPlan, SavingsPlanRate, SpotPrice};

use super::prices::family;

/// Expired Reserved Instances and Savings Plans are reported for this many days after their
/// end (so that a lapsed commitment is noticed), then no longer.
pub const RECENTLY_EXPIRED_DAYS: i64 = 30;

/// What ec2:DescribeSpotPriceHistory said about the cluster's instance types and zones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SpotPriceHistory {
    /// Not read (offline analysis): spot nodes are priced with the configured discount.
    #[default]
    NotRead,
    /// The current price per type, zone and product description.
    Read(Vec<SpotPrice>),
    /// The call failed; the reason, for the report.
    Unavailable(String),
}

impl SpotPriceHistory {
    /// The current price of `instance_type` in `zone` for `product` (`Linux/UNIX`,
    /// `Windows`).
    pub fn price(&self, instance_type: &str, zone: &str, product: &str) -> Option<&SpotPrice> {
        match self {
            SpotPriceHistory::Read(prices) => prices.iter().find(|p| {
                p.instance_type == instance_type
                    && p.availability_zone == zone
                    && p.product_description == product
            }),
            _ => None,
        }
    }

    /// The highest current price of `instance_type` for `product` among `zones` (any zone
    /// when `zones` is empty): what a spot node of that type costs at most wherever in the
    /// cluster's zones it lands, so that a spot saving built on it is never overstated.
    pub fn highest<'s>(
        &'s self,
        instance_type: &str,
        product: &str,
        zones: &[&str],
    ) -> Option<&'s SpotPrice> {
        let SpotPriceHistory::Read(prices) = self else {
            return None;
        };
        prices
            .iter()
            .filter(|p| p.instance_type == instance_type && p.product_description == product)
            .filter(|p| zones.is_empty() || zones.contains(&p.availability_zone.as_str()))
            .max_by(|a, b| {
                a.usd_per_hour
                    .total_cmp(&b.usd_per_hour)
                    .then(b.availability_zone.cmp(&a.availability_zone))
            })
    }

    /// Why there is no history, when it was asked for and failed.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            SpotPriceHistory::Unavailable(reason) => Some(reason),
            _ => None,
        }
    }
}

/// The account's Reserved Instances (of the cluster's region) and Savings Plans, with the
/// plans' rates for the cluster's instance types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Commitments {
    /// When they were read; expiry is counted from here. `None`: not read (offline
    /// analysis), and nothing below is used.
    pub read_at: Option<jiff::Timestamp>,
    /// DescribeReservedInstances (active and retired).
    pub reserved_instances: Vec<ReservedInstance>,
    /// DescribeSavingsPlans (active and retired).
    pub savings_plans: Vec<SavingsPlan>,
    /// DescribeSavingsPlanRates of the active plans for the cluster's instance types.
    pub savings_plan_rates: Vec<SavingsPlanRate>,
    /// Reads that failed, e.g. `ec2:DescribeReservedInstances failed (AccessDenied): …`.
    pub unavailable: Vec<String>,
}

/// Kind of commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitmentKind {
    /// An EC2 Reserved Instance.
    ReservedInstance,
    /// A Savings Plan (Compute or EC2 Instance).
    SavingsPlan,
}

/// The part of a node's hour one commitment covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoveredBy {
    /// The Reserved Instance or Savings Plan id.
    pub commitment: String,
    /// Its kind.
    pub kind: CommitmentKind,
    /// Share of the node's instance-hour it covers (0..=1).
    pub fraction: f64,
    /// What that share costs per hour under the commitment, USD (an RI's effective rate:
    /// upfront spread over the term plus hourly charges; a Savings Plan's rate).
    pub hourly: f64,
}

/// How a node's hour is paid with the commitments applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCoverage {
    /// The commitments covering it, in the order AWS applies them.
    pub covered_by: Vec<CoveredBy>,
    /// Share of the hour not covered, paid at the on-demand rate (0..=1).
    pub uncovered_fraction: f64,
    /// The on-demand list price per hour, USD.
    pub on_demand_hourly: f64,
    /// What the node's hour costs with the commitments applied, USD: the covered shares at
    /// their commitment's rate plus the uncovered share on demand. Up to this much lower
    /// than on demand: other instances of the account may use the commitments first.
    pub effective_hourly: f64,
}

/// One commitment, with what this cluster's instances make of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitmentLine {
    /// ReservedInstancesId or savingsPlanId.
    pub id: String,
    /// Its kind.
    pub kind: CommitmentKind,
    /// What it is, one line (type/family, platform, offering, plan type).
    pub description: String,
    /// The reserved instance type (RIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// The instance family it covers (size-flexible RIs, EC2 Instance Savings Plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_family: Option<String>,
    /// Where it applies: an Availability Zone (zonal RI), a region (regional RI, EC2
    /// Instance Savings Plan) or `any region` (Compute Savings Plan).
    pub scope: String,
    /// Instances reserved (RIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    /// Hourly commitment in USD (Savings Plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_commitment: Option<f64>,
    /// End of the term (RFC 3339).
    pub end: String,
    /// Whole days from the analysis to the end (truncated toward zero); negative once
    /// expired.
    pub days_to_expiry: i64,
    /// `active`, or `expired` (not applied; listed for [`RECENTLY_EXPIRED_DAYS`] days), or
    /// AWS's state when it is neither (e.g. `payment-pending`, not applied).
    pub state: String,
    /// Share of the commitment this cluster's instances use, percent: instance-hours (in
    /// normalized units for size-flexible RIs) or dollars of commitment per hour.
    pub utilization_percent: f64,
    /// The same in words, e.g. `1 of 2 instances` or `$0.60/h of $1.00/h`.
    pub used_by_cluster: String,
    /// Nodes it covers (in part or in full).
    pub nodes: Vec<String>,
}

/// The commitments part of a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitmentsReport {
    /// When the commitments were read (RFC 3339).
    pub read_at: String,
    /// Every active commitment, and those expired in the last [`RECENTLY_EXPIRED_DAYS`].
    pub commitments: Vec<CommitmentLine>,
    /// Nodes covered in full or in part.
    pub covered_nodes: usize,
    /// What the cluster's on-demand nodes would cost per month at list prices.
    pub on_demand_monthly_cost: f64,
    /// What they cost per month with the commitments applied (the node lines' sum).
    pub effective_monthly_cost: f64,
    /// Reads that failed: the commitments they would have returned are not applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

/// One node's on-demand hour that commitments may cover.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Usage<'a> {
    pub instance_type: &'a str,
    /// The node's Availability Zone, when known (zonal RIs need it).
    pub zone: Option<&'a str>,
    /// `Linux/UNIX` or `Windows`.
    pub product: &'static str,
    pub region: &'a str,
    pub on_demand_hourly: f64,
}

/// An active commitment, in the order AWS applies them.
#[derive(Debug, Clone, Copy)]
enum Active<'a> {
    Zonal(&'a ReservedInstance),
    Regional(&'a ReservedInstance),
    Plan(&'a SavingsPlan),
}

/// The active commitments, ordered as AWS applies them, with the plans' rates.
pub(crate) struct Book<'a> {
    order: Vec<Active<'a>>,
    rates: HashMap<(&'a str, &'a str, &'a str, &'a str), f64>,
}

/// The result of applying a [`Book`] to a set of usages.
#[derive(Debug, Clone, Default)]
pub(crate) struct Coverage {
    /// Per usage: (commitment index in the book, fraction, hourly cost of that fraction).
    pub shares: Vec<Vec<(usize, f64, f64)>>,
    /// Per usage: fraction not covered.
    pub uncovered: Vec<f64>,
    /// Per commitment: used capacity (RIs: instances or normalized units; plans: USD/h).
    pub used: Vec<f64>,
}

impl Coverage {
    /// The on-demand cost per hour not covered by any commitment.
    pub fn uncovered_on_demand(&self, usages: &[Usage<'_>]) -> f64 {
        usages
            .iter()
            .zip(&self.uncovered)
            .map(|(u, f)| u.on_demand_hourly * f)
            .sum()
    }

    /// What usage `i`'s hour costs with the commitments applied.
    pub fn effective_hourly(&self, i: usize, usage: &Usage<'_>) -> f64 {
        self.shares[i].iter().map(|s| s.2).sum::<f64>() + self.uncovered[i] * usage.on_demand_hourly
    }
}

/// The normalization factor of an instance size (EC2 User Guide, "Instance size
/// flexibility"); `None` for sizes without one here (metal), which are then matched exactly.
pub(crate) fn normalization_factor(instance_type: &str) -> Option<f64> {
    let size = instance_type.split_once('.')?.1;
    Some(match size {
        "nano" => 0.25,
        "micro" => 0.5,
        "small" => 1.0,
        "medium" => 2.0,
        "large" => 4.0,
        "xlarge" => 8.0,
        s => 8.0 * s.strip_suffix("xlarge")?.parse::<f64>().ok()?,
    })
}

fn active_at(
    state: &str,
    start: jiff::Timestamp,
    end: jiff::Timestamp,
    at: jiff::Timestamp,
) -> bool {
    state == "active" && start <= at && at < end
}

/// A size-flexible RI: regional, Linux/UNIX, default tenancy, with a normalization factor.
fn size_flexible(ri: &ReservedInstance) -> bool {
    ri.availability_zone.is_none()
        && ri.product_description == "Linux/UNIX"
        && ri.tenancy == "default"
        && normalization_factor(&ri.instance_type).is_some()
}

impl<'a> Book<'a> {
    /// The commitments active at `commitments.read_at`, in the order AWS applies them.
    /// Empty when they were not read.
    pub fn new(commitments: &'a Commitments) -> Self {
        let mut order = Vec::new();
        let mut rates = HashMap::new();
        let Some(at) = commitments.read_at else {
            return Book { order, rates };
        };
        let mut ris: Vec<&ReservedInstance> = commitments
            .reserved_instances
            .iter()
            .filter(|r| active_at(&r.state, r.start, r.end, at) && r.tenancy == "default")
            .collect();
        ris.sort_by(|a, b| a.id.cmp(&b.id));
        order.extend(
            ris.iter()
                .filter(|r| r.availability_zone.is_some())
                .map(|r| Active::Zonal(r)),
        );
        order.extend(
            ris.iter()
                .filter(|r| r.availability_zone.is_none())
                .map(|r| Active::Regional(r)),
        );
        let mut plans: Vec<&SavingsPlan> = commitments
            .savings_plans
            .iter()
            .filter(|p| active_at(&p.state, p.start, p.end, at))
            .filter(|p| p.plan_type == "EC2Instance" || p.plan_type == "Compute")
            .collect();
        plans.sort_by(|a, b| {
            (a.plan_type != "EC2Instance")
                .cmp(&(b.plan_type != "EC2Instance"))
                .then(a.id.cmp(&b.id))
        });
        order.extend(plans.into_iter().map(Active::Plan));
        for r in &commitments.savings_plan_rates {
            rates.insert(
                (
                    r.savings_plan_id.as_str(),
                    r.instance_type.as_str(),
                    r.region.as_str(),
                    r.product_description.as_str(),
                ),
                r.usd_per_hour,
            );
        }
        Book { order, rates }
    }

    /// Any commitment to apply.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The id of commitment `c`.
    pub fn id(&self, c: usize) -> &'a str {
        match self.order[c] {
            Active::Zonal(r) | Active::Regional(r) => &r.id,
            Active::Plan(p) => &p.id,
        }
    }

    /// Apply the commitments to `usages` as AWS does (see the module documentation).
    pub fn apply(&self, usages: &[Usage<'_>]) -> Coverage {
        let n = usages.len();
        let mut cov = Coverage {
            shares: vec![Vec::new(); n],
            uncovered: vec![1.0; n],
            used: vec![0.0; self.order.len()],
        };
        const EPS: f64 = 1e-9;
        for (c, active) in self.order.iter().enumerate() {
            match *active {
                Active::Zonal(ri) | Active::Regional(ri) if !size_flexible(ri) => {
                    let mut left = f64::from(ri.instance_count);
                    let rate = ri.effective_hourly();
                    for (i, u) in usages.iter().enumerate() {
                        if left <= EPS {
                            break;
                        }
                        let zone_ok = match &ri.availability_zone {
                            Some(z) => u.zone == Some(z.as_str()),
                            None => true,
                        };
                        if u.instance_type != ri.instance_type
                            || u.product != ri.product_description
                            || !zone_ok
                            || cov.uncovered[i] <= EPS
                        {
                            continue;
                        }
                        let take = cov.uncovered[i].min(left);
                        left -= take;
                        cov.uncovered[i] -= take;
                        cov.used[c] += take;
                        cov.shares[i].push((c, take, take * rate));
                    }
                }
                Active::Zonal(ri) | Active::Regional(ri) => {
                    let ri_nf = normalization_factor(&ri.instance_type).unwrap_or(1.0);
                    let mut left = f64::from(ri.instance_count) * ri_nf;
                    let rate_per_unit = ri.effective_hourly() / ri_nf;
                    let fam = family(&ri.instance_type);
                    let mut candidates: Vec<(usize, f64)> = usages
                        .iter()
                        .enumerate()
                        .filter(|(_, u)| {
                            u.product == "Linux/UNIX" && family(u.instance_type) == fam
                        })
                        .filter_map(|(i, u)| Some((i, normalization_factor(u.instance_type)?)))
                        .collect();
                    // Smallest sizes first.
                    candidates.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                    for (i, nf) in candidates {
                        if left <= EPS {
                            break;
                        }
                        if cov.uncovered[i] <= EPS {
                            continue;
                        }
                        let units = (cov.uncovered[i] * nf).min(left);
                        let fraction = units / nf;
                        left -= units;
                        cov.uncovered[i] -= fraction;
                        cov.used[c] += units;
                        cov.shares[i].push((c, fraction, units * rate_per_unit));
                    }
                }
                Active::Plan(plan) => {
                    let mut left = plan.commitment_per_hour;
                    let mut candidates: Vec<(usize, f64, f64)> = usages
                        .iter()
                        .enumerate()
                        .filter(|(i, u)| cov.uncovered[*i] > EPS && u.on_demand_hourly > 0.0)
                        .filter_map(|(i, u)| {
                            let rate = *self.rates.get(&(
                                plan.id.as_str(),
                                u.instance_type,
                                u.region,
                                u.product,
                            ))?;
                            Some((i, rate, 1.0 - rate / u.on_demand_hourly))
                        })
                        .collect();
                    // Highest savings percentage first.
                    candidates.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
                    for (i, rate, _) in candidates {
                        if left <= EPS {
                            break;
                        }
                        let cost = cov.uncovered[i] * rate;
                        let (fraction, spent) = if cost <= left || rate <= 0.0 {
                            (cov.uncovered[i], cost)
                        } else {
                            (left / rate, left)
                        };
                        left -= spent;
                        cov.uncovered[i] -= fraction;
                        cov.used[c] += spent;
                        cov.shares[i].push((c, fraction, spent));
                    }
                }
            }
        }
        for u in &mut cov.uncovered {
            if *u < EPS {
                *u = 0.0;
            }
        }
        cov
    }

    /// The capacity of commitment `c` in the unit of [`Coverage::used`].
    fn capacity(&self, c: usize) -> f64 {
        match self.order[c] {
            Active::Zonal(ri) | Active::Regional(ri) if size_flexible(ri) => {
                f64::from(ri.instance_count)
                    * normalization_factor(&ri.instance_type).unwrap_or(1.0)
            }
            Active::Zonal(ri) | Active::Regional(ri) => f64::from(ri.instance_count),
            Active::Plan(p) => p.commitment_per_hour,
        }
    }

    /// The node-line view of usage `i`'s coverage.
    pub fn node_coverage(&self, cov: &Coverage, i: usize, usage: &Usage<'_>) -> NodeCoverage {
        NodeCoverage {
            covered_by: cov.shares[i]
                .iter()
                .map(|&(c, fraction, hourly)| CoveredBy {
                    commitment: self.id(c).to_string(),
                    kind: match self.order[c] {
                        Active::Plan(_) => CommitmentKind::SavingsPlan,
                        _ => CommitmentKind::ReservedInstance,
                    },
                    fraction: round4(fraction),
                    hourly: round6(hourly),
                })
                .collect(),
            uncovered_fraction: round4(cov.uncovered[i]),
            on_demand_hourly: usage.on_demand_hourly,
            effective_hourly: round6(cov.effective_hourly(i, usage)),
        }
    }

    /// One line per commitment: the active ones with what `cov` uses of them, then those
    /// that expired in the last [`RECENTLY_EXPIRED_DAYS`] days (or are in another state).
    /// `names[i]` names usage `i`'s node.
    pub fn lines(
        &self,
        commitments: &Commitments,
        cov: &Coverage,
        names: &[&str],
    ) -> Vec<CommitmentLine> {
        let Some(at) = commitments.read_at else {
            return Vec::new();
        };
        let days = |end: jiff::Timestamp| (end.as_second() - at.as_second()) / 86_400;
        let mut lines = Vec::new();
        let mut shown = std::collections::BTreeSet::new();
        for c in 0..self.order.len() {
            let nodes: Vec<String> = cov
                .shares
                .iter()
                .enumerate()
                .filter(|(_, s)| s.iter().any(|x| x.0 == c))
                .map(|(i, _)| names[i].to_string())
                .collect();
            let capacity = self.capacity(c);
            let used = cov.used[c];
            let pct = if capacity > 0.0 {
                used * 100.0 / capacity
            } else {
                0.0
            };
            let line = match self.order[c] {
                Active::Zonal(ri) | Active::Regional(ri) => {
                    let flexible = size_flexible(ri);
                    let used_by_cluster = if flexible {
                        format!(
                            "{} of {} normalized units ({} × {}, size-flexible)",
                            trim(used),
                            trim(capacity),
                            ri.instance_count,
                            ri.instance_type
                        )
                    } else {
                        format!("{} of {} instances", trim(used), ri.instance_count)
                    };
                    let mut l = ri_line(
                        ri,
                        days(ri.end),
                        "active".into(),
                        pct,
                        used_by_cluster,
                        nodes,
                    );
                    if flexible {
                        l.instance_family = Some(family(&ri.instance_type).to_string());
                    }
                    l
                }
                Active::Plan(p) => plan_line(
                    p,
                    days(p.end),
                    "active".into(),
                    pct,
                    format!("${:.4}/h of ${:.4}/h", used, p.commitment_per_hour),
                    nodes,
                ),
            };
            shown.insert(line.id.clone());
            lines.push(line);
        }
        let recent = |end: jiff::Timestamp| days(end) >= -RECENTLY_EXPIRED_DAYS;
        for ri in &commitments.reserved_instances {
            if shown.contains(&ri.id) || !recent(ri.end) {
                continue;
            }
            let state = if ri.end <= at || ri.state == "retired" {
                "expired".to_string()
            } else if ri.tenancy != "default" {
                format!(
                    "{} (dedicated tenancy: not applied to the cluster's default-tenancy nodes)",
                    ri.state
                )
            } else {
                ri.state.clone()
            };
            lines.push(ri_line(
                ri,
                days(ri.end),
                state,
                0.0,
                "not applied".into(),
                Vec::new(),
            ));
        }
        for p in &commitments.savings_plans {
            if shown.contains(&p.id) || !recent(p.end) {
                continue;
            }
            let state = if p.end <= at || p.state == "retired" {
                "expired".to_string()
            } else if p.plan_type != "Compute" && p.plan_type != "EC2Instance" {
                format!(
                    "{} ({} plan: does not apply to EC2 nodes)",
                    p.state, p.plan_type
                )
            } else {
                p.state.clone()
            };
            lines.push(plan_line(
                p,
                days(p.end),
                state,
                0.0,
                "not applied".into(),
                Vec::new(),
            ));
        }
        lines
    }
}

fn ri_line(
    ri: &ReservedInstance,
    days_to_expiry: i64,
    state: String,
    pct: f64,
    used_by_cluster: String,
    nodes: Vec<String>,
) -> CommitmentLine {
    CommitmentLine {
        id: ri.id.clone(),
        kind: CommitmentKind::ReservedInstance,
        description: format!(
            "Reserved Instance: {} × {} {}, {} {}, {}, effective ${:.4}/h per instance",
            ri.instance_count,
            ri.instance_type,
            ri.product_description,
            ri.offering_class,
            ri.offering_type,
            if ri.availability_zone.is_some() {
                "zonal"
            } else {
                "regional"
            },
            ri.effective_hourly()
        ),
        instance_type: Some(ri.instance_type.clone()),
        instance_family: None,
        scope: ri
            .availability_zone
            .clone()
            .unwrap_or_else(|| "region".to_string()),
        instance_count: Some(ri.instance_count),
        hourly_commitment: None,
        end: ri.end.to_string(),
        days_to_expiry,
        state,
        utilization_percent: round2(pct),
        used_by_cluster,
        nodes,
    }
}

fn plan_line(
    p: &SavingsPlan,
    days_to_expiry: i64,
    state: String,
    pct: f64,
    used_by_cluster: String,
    nodes: Vec<String>,
) -> CommitmentLine {
    let kind = match p.plan_type.as_str() {
        "EC2Instance" => "EC2 Instance Savings Plan",
        "Compute" => "Compute Savings Plan",
        _ => "Savings Plan",
    };
    CommitmentLine {
        id: p.id.clone(),
        kind: CommitmentKind::SavingsPlan,
        description: format!(
            "{kind} ({}): ${}/h committed, {}",
            p.plan_type, p.commitment_per_hour, p.payment_option
        ),
        instance_type: None,
        instance_family: p.ec2_instance_family.clone(),
        scope: p.region.clone().unwrap_or_else(|| "any region".to_string()),
        instance_count: None,
        hourly_commitment: Some(p.commitment_per_hour),
        end: p.end.to_string(),
        days_to_expiry,
        state,
        utilization_percent: round2(pct),
        used_by_cluster,
        nodes,
    }
}

fn trim(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

fn round2(x: f64) -> f64 {
    let r = (x * 100.0).round() / 100.0;
    if r == 0.0 { 0.0 } else { r }
}

fn round4(x: f64) -> f64 {
    let r = (x * 10_000.0).round() / 10_000.0;
    if r == 0.0 { 0.0 } else { r }
}

fn round6(x: f64) -> f64 {
    let r = (x * 1_000_000.0).round() / 1_000_000.0;
    if r == 0.0 { 0.0 } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    pub(crate) fn ri(
        id: &str,
        ty: &str,
        zone: Option<&str>,
        count: u32,
        end: &str,
    ) -> ReservedInstance {
        ReservedInstance {
            id: id.into(),
            instance_type: ty.into(),
            availability_zone: zone.map(Into::into),
            instance_count: count,
            product_description: "Linux/UNIX".into(),
            tenancy: "default".into(),
            state: "active".into(),
            start: ts("2025-01-01T00:00:00Z"),
            end: ts(end),
            duration_seconds: 31_536_000,
            offering_class: "standard".into(),
            offering_type: "No Upfront".into(),
            fixed_price: 0.0,
            usage_price: 0.0,
            recurring_hourly: 0.06,
        }
    }

    fn usage<'a>(ty: &'a str, zone: &'a str, od: f64) -> Usage<'a> {
        Usage {
            instance_type: ty,
            zone: Some(zone),
            product: "Linux/UNIX",
            region: "us-east-1",
            on_demand_hourly: od,
        }
    }

    #[test]
    fn normalization_factors_follow_the_ec2_table() {
        assert_eq!(normalization_factor("m5.large"), Some(4.0));
        assert_eq!(normalization_factor("m5.xlarge"), Some(8.0));
        assert_eq!(normalization_factor("m5.12xlarge"), Some(96.0));
        assert_eq!(normalization_factor("t3.nano"), Some(0.25));
        assert_eq!(normalization_factor("m5.metal"), None);
    }

    #[test]
    fn effective_hourly_spreads_the_upfront_price_over_the_term() {
        let mut r = ri("ri-1", "m5.large", None, 1, "2026-01-01T00:00:00Z");
        r.fixed_price = 876.0; // 8760 hours
        r.recurring_hourly = 0.01;
        assert!((r.effective_hourly() - 0.11).abs() < 1e-12);
    }

    #[test]
    fn a_size_flexible_regional_ri_covers_smallest_sizes_first_and_part_of_a_larger_one() {
        let c = Commitments {
            read_at: Some(ts("2025-06-01T00:00:00Z")),
            reserved_instances: vec![ri("ri-1", "m5.xlarge", None, 1, "2026-01-01T00:00:00Z")],
            ..Default::default()
        };
        let book = Book::new(&c);
        // 8 units: the m5.large (4) in full, then half of the first m5.xlarge (8).
        let usages = [
            usage("m5.xlarge", "us-east-1a", 0.192),
            usage("m5.large", "us-east-1b", 0.096),
            usage("m5.xlarge", "us-east-1c", 0.192),
        ];
        let cov = book.apply(&usages);
        assert_eq!(cov.uncovered, vec![0.5, 0.0, 1.0]);
        assert_eq!(cov.used, vec![8.0]);
        let line = &book.lines(&c, &cov, &["a", "b", "c"])[0];
        assert_eq!(line.utilization_percent, 100.0);
        assert_eq!(line.nodes, ["a", "b"]);
        assert_eq!(line.instance_family.as_deref(), Some("m5"));
    }
}
