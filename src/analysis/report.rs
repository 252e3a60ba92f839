//! The analysis report (stored in full) and its [`Summary`] (for status).
//!
//! Savings are attributed in order so that nothing is counted twice: consolidation
//! removes nodes; right-sizing prices the *remaining* nodes of a group on a cheaper type;
//! spot discounts the part of the (right-sized) group cost that spot-eligible workloads
//! account for. Nodes of unknown price are counted, listed with the reason and left out
//! of every sum.
//!
//! Money is added up in whole cents: every node line's monthly cost is rounded to the
//! cent once, and every total (a nodegroup's cost, the cluster's cost, the savings of a
//! category) is the exact sum of the lines under it, so the figures add up as printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::commitments::{Book, CommitmentsReport, Coverage, NodeCoverage, Usage};
use super::consolidation::{Blocker, Outcome};
use super::input::AnalysisInput;
use super::model::{Model, NodeM, PinReason, Role, SpotBasis};
use super::prices::{PriceSource, PriceTable, family, os_name};
use super::rightsizing::{RightSizing, fmt_cpu};
use super::spot::SpotCandidate;
use super::{AnalysisSettings, ScaleDownProfile};

/// Kind of recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Category {
    /// Remove nodes whose pods fit elsewhere.
    Consolidation,
    /// Use a cheaper instance type.
    RightSizing,
    /// Run replicated stateless workloads on spot capacity (estimate).
    Spot,
}

impl Category {
    fn label(self) -> &'static str {
        match self {
            Category::Consolidation => "consolidation",
            Category::RightSizing => "right-sizing",
            Category::Spot => "spot (estimate)",
        }
    }
}

/// One recommendation, with its saving and the reasoning behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// What kind of change.
    pub category: Category,
    /// The nodegroup it applies to.
    pub nodegroup: String,
    /// Monthly saving in the report currency.
    pub monthly_saving: f64,
    /// One line: what to do.
    pub summary: String,
    /// Why, step by step, in words a customer's engineer can check.
    pub reasoning: Vec<String>,
    /// True when the saving rests on an estimate (spot discount).
    pub estimate: bool,
    /// Where the price behind the saving comes from, when it is not the list price (spot:
    /// the spot price history or the estimated discount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_basis: Option<String>,
    /// Nodes concerned (at most `maxListedNodes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// How many more nodes are concerned but not listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_nodes: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Monthly savings by category.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Savings {
    /// From removing nodes.
    pub consolidation: f64,
    /// From cheaper instance types.
    pub rightsizing: f64,
    /// From spot (estimate).
    pub spot: f64,
    /// Sum of the above.
    pub total: f64,
}

/// Requested versus allocatable resources over a set of nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Utilization {
    /// Nodes counted.
    pub nodes: usize,
    /// Sum of pod CPU requests, millicores.
    pub cpu_requested_millis: i64,
    /// Sum of allocatable CPU, millicores.
    pub cpu_allocatable_millis: i64,
    /// Sum of pod memory requests, bytes.
    pub memory_requested_bytes: i64,
    /// Sum of allocatable memory, bytes.
    pub memory_allocatable_bytes: i64,
    /// Requested / allocatable CPU, percent.
    pub cpu_percent: f64,
    /// Requested / allocatable memory, percent.
    pub memory_percent: f64,
}

impl Utilization {
    fn finish(mut self) -> Self {
        let pct = |a: i64, b: i64| {
            if b > 0 {
                round2(a as f64 * 100.0 / b as f64)
            } else {
                0.0
            }
        };
        self.cpu_percent = pct(self.cpu_requested_millis, self.cpu_allocatable_millis);
        self.memory_percent = pct(self.memory_requested_bytes, self.memory_allocatable_bytes);
        self
    }
}

/// A node whose cost is unknown (its type or its price is missing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpricedNode {
    /// Node name.
    pub node: String,
    /// Its instance type, if known at all.
    pub instance_type: Option<String>,
    /// Why it has no price (which price is missing, and how to supply it).
    #[serde(default)]
    pub reason: String,
}

/// How a node is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    /// EC2 on-demand.
    OnDemand,
    /// EC2 spot (`eks.amazonaws.com/capacityType=SPOT` or `karpenter.sh/capacity-type=spot`).
    Spot,
    /// An EKS Fargate "node" (`eks.amazonaws.com/compute-type=fargate`), billed per pod.
    Fargate,
}

/// The scale-down rule that keeps a node, and the case at hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptBy {
    /// The rule, a stable identifier (`local-storage`, `kube-system-pod-without-pdb`,
    /// `no-room`…; docs/analysis.md "Scale-down profiles" lists them).
    pub rule: String,
    /// The object and reason, e.g. `jobs/scratchy-rs-1: pod with local storage (…)`.
    pub detail: String,
}

/// One node: what it is, what it costs and why, and what consolidation does with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLine {
    /// Node name.
    pub node: String,
    /// Its nodegroup (or `nodepool/…`, `(fargate)`, `(no nodegroup)`).
    pub nodegroup: String,
    /// Its instance type, if known.
    pub instance_type: Option<String>,
    /// Its region.
    pub region: String,
    /// `kubernetes.io/os` (`linux` when unlabelled).
    pub operating_system: String,
    /// How it is bought.
    pub capacity_type: CapacityType,
    /// Monthly cost in the report currency, rounded to the cent; `null` when unknown.
    pub monthly_cost: Option<f64>,
    /// How the cost was computed (which price, which rate).
    pub price_basis: String,
    /// Why the cost is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced_reason: Option<String>,
    /// Consolidation removes it.
    pub removable: bool,
    /// Why consolidation keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_by: Option<KeptBy>,
    /// The commitments (Reserved Instances, Savings Plans) that cover it, and its
    /// effective hourly cost under them; `monthly_cost` is then that effective cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment: Option<NodeCoverage>,
}

/// A node consolidation would remove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovableNode {
    /// Node name.
    pub node: String,
    /// Its nodegroup.
    pub nodegroup: String,
    /// Its instance type.
    pub instance_type: Option<String>,
    /// What it costs per month.
    pub monthly_cost: f64,
    /// Pods that move off it.
    pub pods_moved: usize,
}

/// Per-nodegroup view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodegroupReport {
    /// Nodegroup name (or `nodepool/…`, or "(no nodegroup)").
    pub name: String,
    /// Instance types of its nodes.
    pub instance_types: Vec<String>,
    /// Node count.
    pub nodes: usize,
    /// Nodes of unknown cost.
    pub unpriced_nodes: usize,
    /// Monthly cost of its priced nodes.
    pub monthly_cost: f64,
    /// Utilization now.
    pub utilization: Utilization,
    /// Nodes consolidation removes.
    pub removable_nodes: usize,
    /// Why the others stay: reason → node count.
    pub kept_because: BTreeMap<String, usize>,
}

/// Consolidation details for automation and audit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsolidationDetail {
    /// Every node to remove, in the order it was found removable.
    pub removable_nodes: Vec<RemovableNode>,
    /// Pods that move.
    pub pods_moved: usize,
    /// Pods that would have no node after the moves (always 0: removal is all or nothing
    /// per node; reported as a check).
    pub pods_unplaced: usize,
}

/// Object counts of the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Nodes.
    pub nodes: usize,
    /// Running or pending pods bound to a node of the snapshot.
    pub pods: usize,
    /// Pods not bound to a known node (pending).
    pub unbound_pods: usize,
    /// DaemonSet and static pods (stay with their node).
    pub node_bound_pods: usize,
    /// Pods that pin their node.
    pub pinned_pods: usize,
    /// Pods consolidation may move.
    pub movable_pods: usize,
}

/// The full analysis report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// When the analysed snapshot was taken.
    pub snapshot_taken_at: String,
    /// Region(s) priced.
    pub regions: Vec<String>,
    /// Currency of every amount.
    pub currency: String,
    /// Hours per month used to turn hourly prices into monthly ones.
    pub hours_per_month: f64,
    /// Whose scale-down rules decided which nodes stay (`cluster-autoscaler`, `karpenter`).
    #[serde(default)]
    pub scale_down_profile: ScaleDownProfile,
    /// Where the prices come from, as one line.
    pub prices_source: String,
    /// Where the prices come from: each layer with its date.
    #[serde(default)]
    pub price_sources: Vec<PriceSource>,
    /// What the priced nodes cost per month now.
    pub current_monthly_cost: f64,
    /// What they would cost after every recommendation.
    pub optimized_monthly_cost: f64,
    /// Savings by category.
    pub savings: Savings,
    /// Nodes of unknown cost (not in any sum).
    pub unpriced_nodes: usize,
    /// Some of them, for the reader.
    pub unpriced_examples: Vec<UnpricedNode>,
    /// Utilization now.
    pub utilization: Utilization,
    /// Utilization after consolidation.
    pub utilization_after_consolidation: Utilization,
    /// Object counts.
    pub counts: Counts,
    /// Per nodegroup.
    pub nodegroups: Vec<NodegroupReport>,
    /// Top recommendations, largest saving first.
    pub recommendations: Vec<Recommendation>,
    /// Consolidation details.
    pub consolidation: ConsolidationDetail,
    /// Every node, in snapshot order: its price and what consolidation does with it.
    /// (Reports stored before this field existed read back with none.)
    #[serde(default)]
    pub nodes: Vec<NodeLine>,
    /// The account's Reserved Instances and Savings Plans, their use by this cluster, and
    /// the nodes they cover; absent when they were not read (offline analysis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitments: Option<CommitmentsReport>,
    /// Caveats the reader must know (estimates, price source).
    pub notes: Vec<String>,
    /// The AWS inventory the analysis used (absent offline); `crossguard analyze
    /// --inventory` reads it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_inventory: Option<super::AwsInventory>,
}

/// What status carries: small and bounded at any cluster size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Monthly cost, e.g. "$1234.56" (priced nodes).
    pub monthly_cost: String,
    /// Monthly savings, e.g. "$456.78".
    pub monthly_savings: String,
    /// Savings as a share of cost, e.g. "37.0%".
    pub savings_percent: String,
    /// Nodes analysed.
    pub nodes: u32,
    /// Nodes of unknown cost.
    pub unpriced_nodes: u32,
    /// The largest recommendation, one line, at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_recommendation: Option<String>,
}

/// An amount in whole cents, rounded half away from zero (`-0.0` is `0`).
fn to_cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

/// A share of 0..=100 percent rounded to hundredths, never `-0.0`.
fn round2(x: f64) -> f64 {
    let r = (x * 100.0).round() / 100.0;
    if r == 0.0 { 0.0 } else { r }
}

/// Cents as an amount.
fn from_cents(c: i64) -> f64 {
    c as f64 / 100.0
}

/// How a node's cost is computed, in words a reader can check against the bill.
fn price_basis(nd: &NodeM<'_>, prices: &PriceTable, settings: &AnalysisSettings) -> String {
    let os = os_name(nd.os);
    if nd.fargate {
        let (vcpu, gb) = nd.fargate_capacity;
        return match prices.fargate_rates(&nd.region) {
            Some(r) if nd.hourly.is_some() => format!(
                "Fargate: its pods are provisioned with {vcpu} vCPU × ${}/vCPU-hour + {gb} GB × ${}/GB-hour",
                r.vcpu, r.memory_gb
            ),
            _ => "unknown".to_string(),
        };
    }
    let _ = settings;
    match (
        &nd.spot_basis,
        nd.on_demand_hourly,
        nd.instance_type.as_deref(),
    ) {
        (
            Some(SpotBasis::History {
                zone,
                timestamp,
                price,
            }),
            _,
            Some(t),
        ) => format!("{t} {os} spot price history, {zone}, {timestamp}: ${price}/h"),
        (Some(SpotBasis::Estimated { discount, why }), Some(od), Some(t)) => format!(
            "{t} {os} on-demand ${od}/h minus an ESTIMATED {:.0}% spot discount (estimated discount: {why})",
            discount * 100.0
        ),
        (None, Some(od), Some(t)) => format!("{t} {os} on-demand list price ${od}/h"),
        _ => "unknown".to_string(),
    }
}

/// The words for a node's commitment coverage, appended to its price basis.
fn coverage_basis(c: &NodeCoverage) -> String {
    let parts: Vec<String> = c
        .covered_by
        .iter()
        .map(|b| {
            let kind = match b.kind {
                super::commitments::CommitmentKind::ReservedInstance => "Reserved Instance",
                super::commitments::CommitmentKind::SavingsPlan => "Savings Plan",
            };
            format!(
                "{:.0}% by {kind} {} at ${}/h",
                b.fraction * 100.0,
                b.commitment,
                b.hourly
            )
        })
        .collect();
    let rest = if c.uncovered_fraction > 0.0 {
        format!(", {:.0}% on demand", c.uncovered_fraction * 100.0)
    } else {
        String::new()
    };
    format!(
        "; covered {}{rest}: effective ${}/h (up to this low: other instances of the account may use the commitments first)",
        parts.join(", "),
        c.effective_hourly
    )
}

/// The cluster's on-demand usage with the account's commitments applied, as it changes
/// with the planned removals and replacements (see [`super::commitments`]).
struct Scenario<'b> {
    book: &'b Book<'b>,
    /// (usage, nodegroup, node index; `None` for a planned replacement node).
    items: Vec<(Usage<'b>, &'b str, Option<usize>)>,
    coverage: Coverage,
    /// Uncovered on-demand cost per hour.
    uncovered: f64,
}

impl<'b> Scenario<'b> {
    fn new(book: &'b Book<'b>, items: Vec<(Usage<'b>, &'b str, Option<usize>)>) -> Self {
        let mut s = Scenario {
            book,
            items,
            coverage: Coverage::default(),
            uncovered: 0.0,
        };
        s.recompute();
        s
    }

    fn recompute(&mut self) {
        let usages: Vec<Usage<'b>> = self.items.iter().map(|x| x.0.clone()).collect();
        self.coverage = self.book.apply(&usages);
        self.uncovered = self.coverage.uncovered_on_demand(&usages);
    }

    /// Uncovered on-demand cost per hour of one nodegroup's usages.
    fn group_uncovered(&self, group: &str) -> f64 {
        self.items
            .iter()
            .zip(&self.coverage.uncovered)
            .filter(|(x, _)| x.1 == group)
            .map(|(x, f)| x.0.on_demand_hourly * f)
            .sum()
    }
}

/// "$1234.56": rounded to the cent, never "$-0.00" (an amount that rounds to zero is
/// "$0.00"; a negative one, which the analysis never produces, is "-$1.00").
pub fn money(x: f64) -> String {
    let c = to_cents(x);
    let sign = if c < 0 { "-" } else { "" };
    let c = c.unsigned_abs();
    format!("{sign}${}.{:02}", c / 100, c % 100)
}

/// How many nodes the text output lists by name in each section (`-o json` and `-o csv`
/// list all).
const LISTED_IN_TEXT: usize = 20;

/// "$1,234.56": [`money`] with thousands separators, for people reading a report.
pub fn dollars(x: f64) -> String {
    let c = to_cents(x);
    let sign = if c < 0 { "-" } else { "" };
    let c = c.unsigned_abs();
    format!("{sign}${}.{:02}", group_thousands(c / 100), c % 100)
}

/// "1 node", "2 nodes", "1,234 pods": a count and its noun, singular for exactly one.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    let noun = if n == 1 { singular } else { plural };
    format!("{} {noun}", group_thousands(n as u64))
}

/// 1234567 → "1,234,567".
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// "37.0%": one decimal, never "-0.0%".
fn percent(x: f64) -> String {
    let tenths = (x * 10.0).round();
    if tenths == 0.0 {
        "0.0%".to_string()
    } else {
        format!("{:.1}%", tenths / 10.0)
    }
}

impl Report {
    /// The status-sized summary of this report.
    pub fn summary(&self) -> Summary {
        let pct = if self.current_monthly_cost > 0.0 {
            self.savings.total * 100.0 / self.current_monthly_cost
        } else {
            0.0
        };
        Summary {
            monthly_cost: money(self.current_monthly_cost),
            monthly_savings: money(self.savings.total),
            savings_percent: percent(pct),
            nodes: u32::try_from(self.counts.nodes).unwrap_or(u32::MAX),
            unpriced_nodes: u32::try_from(self.unpriced_nodes).unwrap_or(u32::MAX),
            top_recommendation: self.recommendations.first().map(|r| {
                let line = format!("{} ({}/mo)", r.summary, money(r.monthly_saving));
                if line.chars().count() > 200 {
                    line.chars().take(199).chain(['…']).collect()
                } else {
                    line
                }
            }),
        }
    }

    /// Which figures of this report rest on an estimate rather than a price: spot savings
    /// at a configured discount, spot nodes priced at that discount, nodes of unknown cost
    /// left out of the totals. Empty when every figure is a list or recorded price.
    pub fn estimates(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.savings.spot > 0.0 {
            out.push(format!(
                "spot savings ({}/month) are an estimate: spot prices change and spot capacity can be interrupted (each spot recommendation says which discount or price it used)",
                dollars(self.savings.spot)
            ));
        }
        let estimated_nodes: Vec<&NodeLine> = self
            .nodes
            .iter()
            .filter(|n| {
                n.capacity_type == CapacityType::Spot && n.price_basis.contains("ESTIMATED")
            })
            .collect();
        if !estimated_nodes.is_empty() {
            let cost: f64 = estimated_nodes.iter().filter_map(|n| n.monthly_cost).sum();
            out.push(format!(
                "{} already on spot: {}/month of the current cost is on-demand minus an estimated spot discount",
                count(estimated_nodes.len(), "node", "nodes"),
                dollars(cost)
            ));
        }
        if self.unpriced_nodes > 0 {
            out.push(format!(
                "{} of unknown cost: in no total, so the real cost is higher than shown",
                count(self.unpriced_nodes, "node", "nodes")
            ));
        }
        out
    }

    /// A readable multi-line summary for terminals.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let pct = if self.current_monthly_cost > 0.0 {
            self.savings.total * 100.0 / self.current_monthly_cost
        } else {
            0.0
        };
        let _ = writeln!(s, "crossguard savings analysis");
        let _ = writeln!(
            s,
            "  snapshot:        {}",
            if self.snapshot_taken_at.is_empty() {
                "(time unknown)"
            } else {
                &self.snapshot_taken_at
            }
        );
        let _ = writeln!(
            s,
            "  {:<17}{}",
            if self.regions.len() == 1 {
                "region:"
            } else {
                "regions:"
            },
            self.regions.join(", ")
        );
        let _ = writeln!(
            s,
            "  scale-down:      {} profile (which pods keep their node; see notes)",
            self.scale_down_profile
        );
        let _ = writeln!(
            s,
            "  nodes / pods:    {} / {} ({} movable, {} pinned, {} DaemonSet/static, {} unscheduled)",
            group_thousands(self.counts.nodes as u64),
            group_thousands(self.counts.pods as u64),
            group_thousands(self.counts.movable_pods as u64),
            group_thousands(self.counts.pinned_pods as u64),
            group_thousands(self.counts.node_bound_pods as u64),
            group_thousands(self.counts.unbound_pods as u64)
        );
        let _ = writeln!(s);
        let unpriced = if self.unpriced_nodes > 0 {
            format!(
                " + {} of UNKNOWN cost",
                count(self.unpriced_nodes, "node", "nodes")
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  current cost:    {}/month{unpriced}",
            dollars(self.current_monthly_cost)
        );
        let _ = writeln!(
            s,
            "  optimized cost:  {}/month",
            dollars(self.optimized_monthly_cost)
        );
        let _ = writeln!(
            s,
            "  savings:         {}/month ({})",
            dollars(self.savings.total),
            percent(pct)
        );
        let _ = writeln!(
            s,
            "    consolidation    {}",
            dollars(self.savings.consolidation)
        );
        let _ = writeln!(
            s,
            "    right-sizing     {}",
            dollars(self.savings.rightsizing)
        );
        let _ = writeln!(s, "    spot (estimate)  {}", dollars(self.savings.spot));
        let estimates = self.estimates();
        if !estimates.is_empty() {
            let _ = writeln!(s, "  estimates:");
            for e in &estimates {
                let _ = writeln!(s, "    - {e}");
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "  utilization (requested / allocatable):");
        let (u, a) = (&self.utilization, &self.utilization_after_consolidation);
        let _ = writeln!(
            s,
            "    CPU     {:5.1}%  -> {:5.1}% after consolidation",
            u.cpu_percent, a.cpu_percent
        );
        let _ = writeln!(
            s,
            "    memory  {:5.1}%  -> {:5.1}% after consolidation",
            u.memory_percent, a.memory_percent
        );
        if !self.unpriced_examples.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "  nodes of unknown cost (not in any total):");
            for n in &self.unpriced_examples {
                let _ = writeln!(
                    s,
                    "    {} ({}): {}",
                    n.node,
                    n.instance_type
                        .as_deref()
                        .unwrap_or("instance type unknown"),
                    n.reason
                );
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  {:<28} {:<22} {:>6} {:>12} {:>6} {:>6} {:>9}",
            "NODEGROUP", "TYPES", "NODES", "COST/MO", "CPU", "MEM", "REMOVABLE"
        );
        for g in &self.nodegroups {
            let mut types = g.instance_types.join(",");
            if types.len() > 22 {
                types.truncate(21);
                types.push('…');
            }
            // A group of unknown cost is not "$0.00"; a partly priced one shows what is known.
            let cost = if g.unpriced_nodes >= g.nodes {
                "unknown".to_string()
            } else if g.unpriced_nodes > 0 {
                format!("{}+?", dollars(g.monthly_cost))
            } else {
                dollars(g.monthly_cost)
            };
            let _ = writeln!(
                s,
                "  {:<28} {:<22} {:>6} {:>12} {:>5.1}% {:>5.1}% {:>9}",
                g.name,
                types,
                g.nodes,
                cost,
                g.utilization.cpu_percent,
                g.utilization.memory_percent,
                g.removable_nodes
            );
        }
        if let Some(c) = &self.commitments {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "  commitments (read {}; account-wide: other instances may use them first, so coverage is \"up to\"):",
                c.read_at
            );
            if c.commitments.is_empty() {
                let _ = writeln!(s, "    none active or recently expired");
            }
            for l in &c.commitments {
                let _ = writeln!(
                    s,
                    "    {} [{}] {}, scope {}, ends {} ({} days): {:.1}% used by this cluster ({})",
                    l.id,
                    l.state,
                    l.description,
                    l.scope,
                    l.end,
                    l.days_to_expiry,
                    l.utilization_percent,
                    l.used_by_cluster
                );
            }
            let _ = writeln!(
                s,
                "    {} covered; on-demand nodes {}/month at list prices, {}/month effective",
                count(c.covered_nodes, "node", "nodes"),
                dollars(c.on_demand_monthly_cost),
                dollars(c.effective_monthly_cost)
            );
            for u in &c.unavailable {
                let _ = writeln!(s, "    unavailable: {u}");
            }
        }
        let removable = &self.consolidation.removable_nodes;
        if !removable.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "  nodes to remove ({}; their pods fit on the nodes that stay):",
                count(removable.len(), "node", "nodes")
            );
            let listed = removable.len().min(LISTED_IN_TEXT);
            for n in removable.iter().take(listed) {
                let _ = writeln!(
                    s,
                    "    {} ({}, {}): {}/month, {}",
                    n.node,
                    n.nodegroup,
                    n.instance_type
                        .as_deref()
                        .unwrap_or("instance type unknown"),
                    dollars(n.monthly_cost),
                    count(n.pods_moved, "pod moves", "pods move")
                );
            }
            if removable.len() > listed {
                let _ = writeln!(
                    s,
                    "    … and {} more (-o json or -o csv lists all)",
                    group_thousands((removable.len() - listed) as u64)
                );
            }
        }
        let kept: Vec<&NodeLine> = self.nodes.iter().filter(|n| n.kept_by.is_some()).collect();
        if !kept.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "  nodes that stay ({}; {} scale-down profile; node: rule: pod and reason):",
                count(kept.len(), "node", "nodes"),
                self.scale_down_profile
            );
            let listed = kept.len().min(LISTED_IN_TEXT);
            for n in kept.iter().take(listed) {
                let k = n.kept_by.as_ref().expect("filtered");
                let _ = writeln!(s, "    {}: {}: {}", n.node, k.rule, k.detail);
            }
            if kept.len() > listed {
                let _ = writeln!(
                    s,
                    "    … and {} more (-o json or -o csv lists all)",
                    group_thousands((kept.len() - listed) as u64)
                );
            }
        }
        let _ = writeln!(s);
        if self.recommendations.is_empty() {
            let _ = writeln!(
                s,
                "  no recommendations: every node is kept by a rule above, or removing or resizing it saves nothing."
            );
        } else {
            let _ = writeln!(s, "  top recommendations:");
        }
        for (i, r) in self.recommendations.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {}. [{}] {}: {} — saves {}/month",
                i + 1,
                r.category.label(),
                r.nodegroup,
                r.summary,
                dollars(r.monthly_saving)
            );
            for line in &r.reasoning {
                let _ = writeln!(s, "       - {line}");
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "  notes:");
        for n in &self.notes {
            let _ = writeln!(s, "    - {n}");
        }
        s
    }
}

fn pin_text(model: &Model<'_>, reason: &PinReason) -> String {
    match reason {
        PinReason::NoController => "pod without a controller".into(),
        PinReason::LocalStorage(what) => format!(
            "pod with local storage ({what}, not named in cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes)"
        ),
        PinReason::DoNotEvict(a) => format!("pod annotated {a}"),
        PinReason::Pdb(i) => {
            let p = &model.pdbs[*i as usize];
            format!(
                "PodDisruptionBudget {}/{} allows no disruption",
                p.namespace, p.name
            )
        }
        PinReason::KubeSystemNoPdb => {
            "kube-system pod that no PodDisruptionBudget covers (cluster-autoscaler evicts kube-system pods only under a PDB)".into()
        }
        PinReason::HostAffinity => "pod with required pod affinity on the hostname".into(),
        PinReason::NodeName => "pod that selects its node by name".into(),
    }
}

/// The rule (a stable identifier, the key of `keptBecause`) and the case at hand.
fn kept_by(model: &Model<'_>, b: &Blocker) -> KeptBy {
    let (rule, detail) = match b {
        Blocker::Fargate => (
            "fargate",
            "an EKS Fargate node: billed per pod, never removed nor planned onto".to_string(),
        ),
        Blocker::NodePinned(a) => ("node-annotation", format!("node {a}")),
        Blocker::UnknownPrice => (
            "unknown-price",
            "its price is unknown, so removing it saves an unknown amount".to_string(),
        ),
        Blocker::MinSize(m) => ("min-size", format!("the nodegroup is at its minSize {m}")),
        Blocker::PodPinned(p) => {
            let pod = &model.pods[*p as usize];
            let Role::Pinned(reason) = &pod.role else {
                unreachable!("pinned blocker names a pinned pod")
            };
            let rule = match reason {
                PinReason::NoController => "no-controller",
                PinReason::LocalStorage(_) => "local-storage",
                PinReason::KubeSystemNoPdb => "kube-system-pod-without-pdb",
                PinReason::DoNotEvict(a) if a.starts_with("karpenter.sh") => "do-not-disrupt",
                PinReason::DoNotEvict(_) => "safe-to-evict-false",
                PinReason::Pdb(_) => "pdb",
                PinReason::HostAffinity => "pod-affinity",
                PinReason::NodeName => "node-name-selector",
            };
            (
                rule,
                format!(
                    "{}/{}: {}",
                    pod.namespace,
                    pod.name,
                    pin_text(model, reason)
                ),
            )
        }
        Blocker::NoRoom(p) => {
            let pod = &model.pods[*p as usize];
            (
                "no-room",
                format!(
                    "{}/{} ({} CPU, {} memory) fits on no other node its constraints allow",
                    pod.namespace,
                    pod.name,
                    fmt_cpu(pod.req.cpu),
                    super::rightsizing::fmt_mem(pod.req.mem)
                ),
            )
        }
    };
    KeptBy {
        rule: rule.to_string(),
        detail,
    }
}

fn utilization(
    model: &Model<'_>,
    nodes: impl Iterator<Item = usize>,
    pods_on: &[Vec<u32>],
) -> Utilization {
    let mut u = Utilization::default();
    for n in nodes {
        let node = &model.nodes[n];
        u.nodes += 1;
        u.cpu_allocatable_millis += node.alloc.cpu;
        u.memory_allocatable_bytes += node.alloc.mem;
        for &p in &pods_on[n] {
            u.cpu_requested_millis += model.pods[p as usize].req.cpu;
            u.memory_requested_bytes += model.pods[p as usize].req.mem;
        }
    }
    u.finish()
}

fn list_nodes(names: Vec<String>, max: usize) -> (Vec<String>, usize) {
    let more = names.len().saturating_sub(max);
    (names.into_iter().take(max).collect(), more)
}

/// Assemble the report from the steps' results.
pub(crate) fn build(
    snap: &AnalysisInput,
    model: &Model<'_>,
    outcome: &Outcome,
    rightsizing: &[RightSizing],
    spot: &[SpotCandidate],
    prices: &PriceTable,
    settings: &AnalysisSettings,
) -> Report {
    let h = settings.hours_per_month;
    let n = model.nodes.len();

    // Pods per node before and after.
    let before = &model.node_pods;
    let mut after: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (p, &node) in outcome.node_of_pod.iter().enumerate() {
        if !outcome.is_removed[node as usize] {
            after[node as usize].push(p as u32);
        }
    }
    let pods_unplaced = outcome
        .node_of_pod
        .iter()
        .enumerate()
        .filter(|&(p, &node)| {
            outcome.is_removed[node as usize]
                && !matches!(model.pods[p].role, Role::DaemonSet | Role::Static)
        })
        .count();

    let mut counts = Counts {
        nodes: n,
        pods: model.pods.len(),
        unbound_pods: model.unbound_pods,
        ..Counts::default()
    };
    for p in &model.pods {
        match p.role {
            Role::DaemonSet | Role::Static => counts.node_bound_pods += 1,
            Role::Pinned(_) => counts.pinned_pods += 1,
            Role::Movable => counts.movable_pods += 1,
        }
    }

    // The account's commitments applied to the cluster's on-demand nodes: a covered node
    // costs its effective rate (super::commitments).
    let book = Book::new(model.commitments);
    let mut usages: Vec<Usage<'_>> = Vec::new();
    let mut usage_node: Vec<usize> = Vec::new();
    for (i, nd) in model.nodes.iter().enumerate() {
        if let (false, false, Some(t), Some(od)) =
            (nd.spot, nd.fargate, nd.instance_type.as_deref(), nd.hourly)
        {
            usages.push(Usage {
                instance_type: t,
                zone: nd.zone,
                product: crate::aws::product_description(nd.os),
                region: &nd.region,
                on_demand_hourly: od,
            });
            usage_node.push(i);
        }
    }
    let mut node_cov: Vec<Option<NodeCoverage>> = vec![None; n];
    let mut scenario = None;
    let mut commitment_lines = Vec::new();
    if !book.is_empty() {
        let cov = book.apply(&usages);
        for (k, &i) in usage_node.iter().enumerate() {
            node_cov[i] = Some(book.node_coverage(&cov, k, &usages[k]));
        }
        let names: Vec<&str> = usage_node.iter().map(|&i| model.nodes[i].name).collect();
        commitment_lines = book.lines(model.commitments, &cov, &names);
        let items = usages
            .iter()
            .cloned()
            .zip(&usage_node)
            .map(|(u, &i)| (u, model.nodes[i].nodegroup.as_str(), Some(i)))
            .collect();
        scenario = Some(Scenario::new(&book, items));
    } else if model.commitments.read_at.is_some() {
        commitment_lines = book.lines(model.commitments, &Coverage::default(), &[]);
    }
    // Each node's monthly cost, rounded to the cent once; every total sums these.
    let node_cents: Vec<Option<i64>> = model
        .nodes
        .iter()
        .zip(&node_cov)
        .map(|(nd, c)| match c {
            Some(c) if !c.covered_by.is_empty() => Some(to_cents(c.effective_hourly * h)),
            _ => nd.hourly.map(|x| to_cents(x * h)),
        })
        .collect();
    let current_cents: i64 = node_cents.iter().flatten().sum();
    let unpriced: Vec<usize> = (0..n)
        .filter(|&i| model.nodes[i].hourly.is_none())
        .collect();

    // Consolidation per nodegroup.
    let mut moved_from: Vec<usize> = vec![0; n];
    for &(p, _) in &outcome.moves {
        moved_from[model.pods[p as usize].node as usize] += 1;
    }
    let removable: Vec<RemovableNode> = outcome
        .removed
        .iter()
        .map(|&i| {
            let nd = &model.nodes[i as usize];
            RemovableNode {
                node: nd.name.to_string(),
                nodegroup: nd.nodegroup.clone(),
                instance_type: nd.instance_type.clone(),
                monthly_cost: from_cents(node_cents[i as usize].unwrap_or(0)),
                pods_moved: moved_from[i as usize],
            }
        })
        .collect();

    let mut group_nodes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, nd) in model.nodes.iter().enumerate() {
        group_nodes
            .entry(nd.nodegroup.as_str())
            .or_default()
            .push(i);
    }
    let mut kept: Vec<Option<KeptBy>> = vec![None; n];
    for (i, b) in &outcome.blocked {
        kept[*i as usize] = Some(kept_by(model, b));
    }

    let mut recs: Vec<Recommendation> = Vec::new();
    let mut nodegroups = Vec::new();
    // Savings per category in cents: the sum of the recommendations' savings.
    let (mut consolidation_cents, mut rightsizing_cents, mut spot_cents) = (0i64, 0i64, 0i64);
    let rs_by_group: BTreeMap<&str, &RightSizing> = rightsizing
        .iter()
        .map(|r| (r.nodegroup.as_str(), r))
        .collect();
    for (&group, nodes) in &group_nodes {
        let mut types: Vec<String> = nodes
            .iter()
            .filter_map(|&i| model.nodes[i].instance_type.clone())
            .collect();
        types.sort();
        types.dedup();
        let removed: Vec<usize> = nodes
            .iter()
            .copied()
            .filter(|&i| outcome.is_removed[i])
            .collect();
        let mut kept_because: BTreeMap<String, usize> = BTreeMap::new();
        let mut examples: BTreeMap<String, String> = BTreeMap::new();
        for &i in nodes {
            if let Some(k) = &kept[i] {
                *kept_because.entry(k.rule.clone()).or_default() += 1;
                examples
                    .entry(k.rule.clone())
                    .or_insert_with(|| k.detail.clone());
            }
        }
        let group_cents: i64 = nodes.iter().filter_map(|&i| node_cents[i]).sum();
        let util = utilization(model, nodes.iter().copied(), before);
        if !removed.is_empty() {
            let list_cents: i64 = removed.iter().filter_map(|&i| node_cents[i]).sum();
            let mut commitment_note = None;
            let saving_cents: i64 = match scenario.as_mut() {
                // Commitments are paid whether used or not: the saving is the on-demand
                // cost that was not covered, before versus after the removals.
                Some(sc) => {
                    let before = sc.uncovered;
                    sc.items
                        .retain(|x| x.2.is_none_or(|i| !removed.contains(&i)));
                    sc.recompute();
                    let saving = to_cents((before - sc.uncovered).max(0.0) * h);
                    commitment_note = Some(format!(
                        "With the account's Reserved Instances and Savings Plans applied (RIs first, then Savings Plans, as AWS bills them), removing these nodes saves {}/month, the on-demand cost they were not covered for, not their {}/month: a node covered by a commitment saves nothing until the commitment is used elsewhere (the commitment is recomputed over the remaining nodes).",
                        money(from_cents(saving)),
                        money(from_cents(list_cents))
                    ));
                    saving
                }
                None => list_cents,
            };
            let pods_moved: usize = removed.iter().map(|&i| moved_from[i]).sum();
            let util_after = utilization(
                model,
                nodes.iter().copied().filter(|&i| !outcome.is_removed[i]),
                &after,
            );
            let mut reasoning = vec![
                format!(
                    "{} of {} can be emptied: their {} fit on the remaining nodes with {:.0}% headroom, honouring requests (CPU, memory, pods per node), nodeSelector, required node affinity, taints/tolerations, hostname anti-affinity and zone locks.",
                    removed.len(),
                    count(nodes.len(), "node", "nodes"),
                    count(pods_moved, "movable pod", "movable pods"),
                    settings.headroom * 100.0
                ),
                format!(
                    "Requested/allocatable in this group goes from {:.1}% to {:.1}% CPU and {:.1}% to {:.1}% memory; DaemonSet pods leave with their nodes.",
                    util.cpu_percent,
                    util_after.cpu_percent,
                    util.memory_percent,
                    util_after.memory_percent
                ),
            ];
            for (kind, n) in &kept_because {
                reasoning.push(format!(
                    "{} by rule {kind} of the {} scale-down profile, e.g. {}.",
                    count(*n, "node stays", "nodes stay"),
                    settings.scale_down_profile,
                    examples[kind]
                ));
            }
            reasoning.extend(commitment_note);
            let (listed, more) = list_nodes(
                removed
                    .iter()
                    .map(|&i| model.nodes[i].name.to_string())
                    .collect(),
                settings.max_listed_nodes,
            );
            consolidation_cents += saving_cents;
            recs.push(Recommendation {
                category: Category::Consolidation,
                nodegroup: group.to_string(),
                monthly_saving: from_cents(saving_cents),
                summary: format!(
                    "remove {} of {} ({})",
                    removed.len(),
                    count(nodes.len(), "node", "nodes"),
                    types.join(", ")
                ),
                reasoning,
                estimate: false,
                price_basis: None,
                nodes: listed,
                more_nodes: more,
            });
        }
        let mut group_after_hourly: f64 = nodes
            .iter()
            .filter(|&&i| !outcome.is_removed[i])
            .filter_map(|&i| model.nodes[i].hourly)
            .sum();
        let mut group_family = types.first().map(|t| family(t).to_string());
        let mut group_type = types.first().cloned();
        if let Some(r) = rs_by_group.get(group) {
            let mut reasoning = r.reasoning.clone();
            let list_saving = to_cents((r.from_hourly - r.to_hourly) * h);
            let saving = match scenario.as_mut() {
                // With commitments: the uncovered on-demand cost before versus after the
                // replacement. The new nodes may be covered by size-flexible regional RIs
                // of their family; Savings Plan rates are known only for the types the
                // cluster runs, so they are taken as uncovered by plans (the saving shown
                // is then the least it can be).
                Some(sc) => {
                    let before = sc.uncovered;
                    let first = sc.items.iter().find(|x| x.1 == group).map(|x| x.0.clone());
                    sc.items.retain(|x| x.1 != group);
                    if let (Some(first), true) = (first, r.to_nodes > 0) {
                        for _ in 0..r.to_nodes {
                            sc.items.push((
                                Usage {
                                    instance_type: r.to_type.as_str(),
                                    zone: None,
                                    product: first.product,
                                    region: first.region,
                                    on_demand_hourly: r.to_hourly / r.to_nodes as f64,
                                },
                                group,
                                None,
                            ));
                        }
                    }
                    sc.recompute();
                    let saving = to_cents((before - sc.uncovered).max(0.0) * h);
                    reasoning.push(format!(
                        "With the account's Reserved Instances and Savings Plans applied, switching saves {}/month of the {}/month difference in list price: the replaced nodes' covered hours were paid for by commitments, which save nothing until they are used elsewhere.",
                        money(from_cents(saving)),
                        money(from_cents(list_saving))
                    ));
                    saving
                }
                None => list_saving,
            };
            rightsizing_cents += saving;
            group_type = Some(r.to_type.clone());
            group_after_hourly = r.to_hourly;
            group_family = Some(family(&r.to_type).to_string());
            recs.push(Recommendation {
                category: Category::RightSizing,
                nodegroup: group.to_string(),
                monthly_saving: from_cents(saving),
                summary: format!(
                    "switch {} × {} to {} × {}",
                    r.from_nodes,
                    r.from_types.join("/"),
                    r.to_nodes,
                    r.to_type
                ),
                reasoning,
                estimate: false,
                price_basis: None,
                nodes: Vec::new(),
                more_nodes: 0,
            });
        }
        if let Some(c) = spot.iter().find(|c| c.nodegroup == group) {
            let fam = group_family.clone().unwrap_or_else(|| c.family.clone());
            let (discount, basis, from_history) = super::spot::discount(
                model,
                prices,
                settings,
                group_type.as_deref().or(c.instance_type.as_deref()),
                &c.os,
                &c.region,
            );
            // Committed capacity is paid for either way: only the group's on-demand cost
            // not covered by commitments can become cheaper on spot.
            let base_hourly = match &scenario {
                Some(sc) => sc.group_uncovered(group),
                None => group_after_hourly,
            };
            let saving = to_cents(base_hourly * c.share * discount * h);
            if saving > 0 {
                spot_cents += saving;
                let (shown, more) = list_nodes(c.deployments.clone(), 5);
                let deps = if more > 0 {
                    format!("{} and {more} more", shown.join(", "))
                } else {
                    shown.join(", ")
                };
                let summary = if c.whole_group {
                    "run this nodegroup on spot capacity".to_string()
                } else {
                    format!(
                        "move {} to a spot nodegroup",
                        count(c.deployments.len(), "Deployment", "Deployments")
                    )
                };
                recs.push(Recommendation {
                    category: Category::Spot,
                    nodegroup: group.to_string(),
                    monthly_saving: from_cents(saving),
                    summary,
                    reasoning: vec![
                        format!(
                            "{} of {} ({deps}) have ≥ 2 replicas, no PersistentVolumeClaims and no PodDisruptionBudget that forbids disruption.",
                            count(c.eligible_pods, "pod", "pods"),
                            count(c.deployments.len(), "Deployment", "Deployments")
                        ),
                        if from_history {
                            format!(
                                "They account for {:.0}% of the group's {}cost (by dominant resource share); at the current spot price ({basis}) that is the saving shown. Spot prices change and spot capacity can be interrupted: check interruption rates before acting.",
                                c.share * 100.0,
                                if scenario.is_some() { "uncovered on-demand " } else { "" },
                            )
                        } else {
                            format!(
                                "They account for {:.0}% of the group's {}cost (by dominant resource share); at an ESTIMATED {:.0}% spot discount for {fam} that is the saving shown ({basis}). Check current spot prices and interruption rates before acting.",
                                c.share * 100.0,
                                if scenario.is_some() { "uncovered on-demand " } else { "" },
                                discount * 100.0
                            )
                        },
                    ],
                    estimate: true,
                    price_basis: Some(basis.clone()),
                    nodes: Vec::new(),
                    more_nodes: 0,
                });
            }
        }
        nodegroups.push(NodegroupReport {
            name: group.to_string(),
            instance_types: types,
            nodes: nodes.len(),
            unpriced_nodes: nodes
                .iter()
                .filter(|&&i| model.nodes[i].hourly.is_none())
                .count(),
            monthly_cost: from_cents(group_cents),
            utilization: util,
            removable_nodes: removed.len(),
            kept_because,
        });
    }
    recs.sort_by(|a, b| {
        b.monthly_saving
            .total_cmp(&a.monthly_saving)
            .then(a.category.cmp(&b.category))
            .then(a.nodegroup.cmp(&b.nodegroup))
    });
    recs.truncate(settings.top_recommendations);

    let total_cents = consolidation_cents + rightsizing_cents + spot_cents;
    let savings = Savings {
        consolidation: from_cents(consolidation_cents),
        rightsizing: from_cents(rightsizing_cents),
        spot: from_cents(spot_cents),
        total: from_cents(total_cents),
    };
    let mut regions: Vec<String> = model.nodes.iter().map(|nd| nd.region.clone()).collect();
    regions.sort();
    regions.dedup();

    let mut notes = vec![
        format!("Prices: {}.", prices.provenance()),
        match model.spot_prices {
            super::SpotPriceHistory::NotRead => "Spot prices: no spot price history was read; spot nodes and spot savings use a configurable per-family discount (an estimate).".to_string(),
            super::SpotPriceHistory::Unavailable(reason) => format!("Spot prices: the spot price history was unavailable ({reason}); spot nodes and spot savings use a configurable per-family discount (an estimate)."),
            super::SpotPriceHistory::Read(_) => "Spot prices: spot nodes are priced at their type's current price in their zone from ec2:DescribeSpotPriceHistory; spot savings use the highest current price of the type among the cluster's zones, and the configured per-family discount (an estimate) only where the history has no price. Each spot node and recommendation names its basis.".to_string(),
        },
        "Consolidation packs resource requests, not observed usage, as the scheduler does.".to_string(),
        match settings.scale_down_profile {
            ScaleDownProfile::ClusterAutoscaler => "Scale-down rules: cluster-autoscaler's defaults. A node stays when a pod on it has a hostPath or disk-backed emptyDir volume not named in cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes, is a kube-system pod without a PodDisruptionBudget, is annotated safe-to-evict=false or karpenter.sh/do-not-disrupt=true, has no controller, or is held by a PodDisruptionBudget that allows no disruption.".to_string(),
            ScaleDownProfile::Karpenter => "Scale-down rules: Karpenter's. A node stays when a pod on it is annotated karpenter.sh/do-not-disrupt=true, has no controller, or is held by a PodDisruptionBudget that allows no disruption; local volumes and kube-system pods without a PDB do not keep it (cluster-autoscaler's defaults would).".to_string(),
        },
    ];
    let estimated_spot = model
        .nodes
        .iter()
        .filter(|nd| matches!(nd.spot_basis, Some(SpotBasis::Estimated { .. })))
        .count();
    if estimated_spot > 0 {
        notes.push(format!(
            "{} already on spot {} priced at on-demand minus the estimated spot discount (their price basis says why).",
            count(estimated_spot, "node", "nodes"),
            if estimated_spot == 1 { "is" } else { "are" }
        ));
    }
    if let Some(at) = model.commitments.read_at {
        let covered = node_cov
            .iter()
            .flatten()
            .filter(|c| !c.covered_by.is_empty())
            .count();
        notes.push(format!(
            "Commitments (read {at}): Reserved Instances apply first (zonal, then regional with size flexibility), then Savings Plans (EC2 Instance before Compute, highest savings percentage first), as AWS bills them. They apply account-wide: other instances of the account may use them, and crossguard sees only this cluster's, so the coverage shown ({}) and the effective costs are the most this cluster can get (\"up to\"). Savings count only the on-demand cost not covered: removing a covered node saves nothing until its commitment is used elsewhere.",
            count(covered, "node", "nodes")
        ));
        for u in &model.commitments.unavailable {
            notes.push(format!(
                "Commitments could not all be read, so those are not applied: {u}."
            ));
        }
    }
    if !unpriced.is_empty() {
        notes.push(format!(
            "{} an unknown instance type or price; their cost is unknown and excluded from every total, and nothing is planned onto them (add their prices with a prices file).",
            count(unpriced.len(), "node has", "nodes have")
        ));
    }
    for (os, region, why) in prices.gaps() {
        notes.push(format!(
            "{} prices for {region} are missing: {why}.",
            super::prices::os_name(os)
        ));
    }
    let lines: Vec<NodeLine> = model
        .nodes
        .iter()
        .enumerate()
        .map(|(i, nd)| NodeLine {
            node: nd.name.to_string(),
            nodegroup: nd.nodegroup.clone(),
            instance_type: nd.instance_type.clone(),
            region: nd.region.clone(),
            operating_system: nd.os.to_string(),
            capacity_type: if nd.fargate {
                CapacityType::Fargate
            } else if nd.spot {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            },
            monthly_cost: node_cents[i].map(from_cents),
            price_basis: price_basis(nd, prices, settings),
            unpriced_reason: nd.unpriced.as_ref().map(ToString::to_string),
            removable: outcome.is_removed[i],
            kept_by: kept[i].take(),
            commitment: node_cov[i].take().filter(|c| !c.covered_by.is_empty()),
        })
        .map(|mut line| {
            if let Some(c) = &line.commitment {
                line.price_basis.push_str(&coverage_basis(c));
            }
            line
        })
        .collect();
    let commitments = model.commitments.read_at.map(|at| {
        let on_demand: i64 = usage_node
            .iter()
            .zip(&usages)
            .map(|(_, u)| to_cents(u.on_demand_hourly * h))
            .sum();
        let effective: i64 = usage_node.iter().filter_map(|&i| node_cents[i]).sum();
        CommitmentsReport {
            read_at: at.to_string(),
            commitments: commitment_lines,
            covered_nodes: lines.iter().filter(|l| l.commitment.is_some()).count(),
            on_demand_monthly_cost: from_cents(on_demand),
            effective_monthly_cost: from_cents(effective),
            unavailable: model.commitments.unavailable.clone(),
        }
    });

    Report {
        snapshot_taken_at: snap.taken_at.clone(),
        regions,
        currency: prices.currency.clone(),
        hours_per_month: h,
        scale_down_profile: settings.scale_down_profile,
        prices_source: prices.provenance(),
        price_sources: prices.sources.clone(),
        current_monthly_cost: from_cents(current_cents),
        optimized_monthly_cost: from_cents((current_cents - total_cents).max(0)),
        savings,
        unpriced_nodes: unpriced.len(),
        unpriced_examples: unpriced
            .iter()
            .take(settings.max_listed_nodes)
            .map(|&i| UnpricedNode {
                node: model.nodes[i].name.to_string(),
                instance_type: model.nodes[i].instance_type.clone(),
                reason: model.nodes[i]
                    .unpriced
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            })
            .collect(),
        utilization: utilization(model, 0..n, before),
        utilization_after_consolidation: utilization(
            model,
            (0..n).filter(|&i| !outcome.is_removed[i]),
            &after,
        ),
        counts,
        nodegroups,
        recommendations: recs,
        consolidation: ConsolidationDetail {
            pods_moved: outcome.moves.len(),
            pods_unplaced,
            removable_nodes: removable,
        },
        nodes: lines,
        commitments,
        notes,
        aws_inventory: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_counts_read_as_a_person_writes_them() {
        for (x, want) in [
            (0.0, "$0.00"),
            (-0.004, "$0.00"),
            (999.999, "$1,000.00"),
            (1234.5, "$1,234.50"),
            (1_234_567.891, "$1,234,567.89"),
            (-1234.0, "-$1,234.00"),
        ] {
            assert_eq!(dollars(x), want, "{x}");
        }
        assert_eq!(count(0, "node", "nodes"), "0 nodes");
        assert_eq!(count(1, "node", "nodes"), "1 node");
        assert_eq!(count(2, "node", "nodes"), "2 nodes");
        assert_eq!(count(12_345, "pod", "pods"), "12,345 pods");
        assert_eq!(group_thousands(100), "100");
        assert_eq!(group_thousands(100_000), "100,000");
    }

    #[test]
    fn money_and_percentages_never_print_a_negative_zero() {
        for (x, want) in [
            (0.0, "$0.00"),
            (-0.0, "$0.00"),
            (-0.004, "$0.00"),
            (0.004, "$0.00"),
            (0.005, "$0.01"),
            (70.08, "$70.08"),
            (1234.5, "$1234.50"),
            (-1.0, "-$1.00"),
            (f64::from(-0.0f32), "$0.00"),
        ] {
            assert_eq!(money(x), want, "{x}");
        }
        // The sum of no f64 is -0.0: what printed a group total as $-0.00.
        let empty: f64 = std::iter::empty::<f64>().sum();
        assert_eq!(money(empty), "$0.00");
        assert_eq!(percent(-0.0), "0.0%");
        assert_eq!(percent(-0.04), "0.0%");
        assert_eq!(percent(37.04), "37.0%");
        assert_eq!(round2(-0.0).to_string(), "0");
        assert_eq!(from_cents(to_cents(-0.0)).to_string(), "0");
    }
}
