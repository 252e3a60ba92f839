//! Savings analysis: a pure function from a sanitized cluster snapshot, the AWS
//! inventory and a price table to a [`Report`] — what the cluster costs, what it could
//! cost, and why.
//!
//! The steps, each in its own module with its algorithm documented there:
//! [`model`] reduces the snapshot to integers and interned constraints;
//! [`consolidation`] removes nodes whose pods fit elsewhere; [`rightsizing`] looks for a
//! cheaper instance type per nodegroup; [`spot`] finds replicated stateless workloads;
//! [`report`] puts the money on it. The analysis reads an [`AnalysisInput`], the
//! allow-listed part of the cluster objects it needs: [`input`] parses it straight from a
//! `kubectl get -o json` dump (the offline path of `crossguard analyze`) or converts a
//! stored, sanitized [`ClusterSnapshot`](crate::cluster::snapshot::ClusterSnapshot).
//! Synthetic clusters and the snapshot <-> dump converter used by the tests and benchmarks
//! are test support, outside the library's release build (`crate::testing`).

pub mod commitments;
mod consolidation;
pub mod input;
mod model;
pub mod price_bundle;
pub mod prices;
pub mod quantity;
pub mod report;
// Crate-visible for the synthetic clusters of `crate::testing`, which size nodes as it does.
pub(crate) mod rightsizing;
mod selectors;
mod spot;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use commitments::{
    CommitmentKind, CommitmentLine, Commitments, CommitmentsReport, CoveredBy, NodeCoverage,
    SpotPriceHistory,
};
pub use input::{AnalysisInput, InputError};
pub use model::instance_id;
pub use prices::{
    FargateRates, InstanceCatalog, InstanceTypeInfo, ListedPrices, PriceError, PriceSource,
    PriceTable, Unpriced,
};
pub use report::{
    CapacityType, Category, ConsolidationDetail, KeptBy, NodeLine, Recommendation, RemovableNode,
    Report, Summary,
};

use crate::aws::{Instance, Nodegroup};

/// The AWS side of the analysis input: what EKS, Auto Scaling and EC2 said about the
/// cluster. Empty for offline runs (nodes then speak for themselves through labels).
///
/// The operator copies it into every report (`awsInventory`, keeping only what the
/// analysis reads), so that `crossguard analyze --inventory REPORT.json` on a dump of the
/// same objects computes the operator's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AwsInventory {
    /// Region of the cluster; empty to take it from node labels or the settings.
    pub region: String,
    /// Managed nodegroups (their `min_size` bounds consolidation).
    pub nodegroups: Vec<Nodegroup>,
    /// EC2 instances of the cluster, matched to nodes through `spec.providerID`.
    pub instances: Vec<Instance>,
    /// Instance shapes from DescribeInstanceTypes, by type name; they win over the
    /// bundled table's.
    pub instance_types: BTreeMap<String, InstanceTypeInfo>,
    /// Current spot prices of the cluster's instance types and zones
    /// (ec2:DescribeSpotPriceHistory); not read offline.
    pub spot_prices: SpotPriceHistory,
    /// The account's Reserved Instances and Savings Plans; not read offline.
    pub commitments: Commitments,
    /// On-demand prices the operator took from the AWS Price List API for this region, by
    /// `kubernetes.io/os` value (what the bundled table lacks; empty for regions it
    /// covers). Not applied by [`analyze`], whose table already holds them: `crossguard
    /// analyze --inventory` lays them over the bundled table, under `--prices-file`, as
    /// the operator did.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub list_prices: BTreeMap<String, ListedPrices>,
}

impl AwsInventory {
    /// True when nothing is known from AWS (an offline analysis of a dump).
    pub fn is_empty(&self) -> bool {
        self.nodegroups.is_empty() && self.instances.is_empty() && self.instance_types.is_empty()
    }

    /// The same inventory with only what the analysis reads: instance tags other than
    /// `eks:nodegroup-name` and nodegroup tags are dropped (they are the customer's, and the
    /// analysis never looks at them). This is the form reports carry.
    pub fn for_analysis(mut self) -> AwsInventory {
        for i in &mut self.instances {
            i.tags.retain(|k, _| k == model::TAG_EKS_NODEGROUP);
        }
        for g in &mut self.nodegroups {
            g.tags.clear();
        }
        self
    }
}

/// The note an analysis without AWS inventory carries: what the operator knows that a dump
/// does not, and how to give it.
pub const NO_INVENTORY_NOTE: &str = "No AWS inventory (an offline analysis of a dump): nodegroup minimum sizes, the nodegroup and type of unlabelled nodes and DescribeInstanceTypes shapes are unknown, so consolidation is bounded by the pods alone and may remove nodes a nodegroup's minimum size keeps. The operator's report for the same cluster uses them; `crossguard analyze --inventory <operator report>` reproduces its figures.";

/// Knobs of the analysis; every field has a sensible default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AnalysisSettings {
    /// Fraction of each destination node's allocatable CPU and memory kept free (0.1 = 10%).
    pub headroom: f64,
    /// Region used when neither the inventory nor the node labels name one.
    pub region: String,
    /// Estimated spot discount per instance family (0.6 = 60% below on-demand).
    pub spot_discount: BTreeMap<String, f64>,
    /// Estimated spot discount for families not listed.
    pub default_spot_discount: f64,
    /// Minimum right-sizing saving, as a fraction of the nodegroup's cost.
    pub min_rightsizing_saving: f64,
    /// Hours in a billing month.
    pub hours_per_month: f64,
    /// How many recommendations the report's top list keeps.
    pub top_recommendations: usize,
    /// How many node names a recommendation lists (the rest are counted).
    pub max_listed_nodes: usize,
    /// Instance families right-sizing may recommend (bare-metal sizes never): by default
    /// the current-generation general-purpose (m5, m6i, m6g, m7i, m7g), compute-optimized
    /// (c5, c6i, c6g, c7g), memory-optimized (r5, r6i, r6g) and burstable (t3, t3a)
    /// families. The price table knows many more types (previous generations, GPU,
    /// storage and HPC types) that are not sensible targets for moving a workload.
    pub rightsizing_families: Vec<String>,
    /// Which autoscaler's rules decide that a pod keeps its node (docs/analysis.md "Scale-down
    /// profiles").
    pub scale_down_profile: ScaleDownProfile,
}

/// The scale-down rules consolidation applies: whose rules decide which pods may be
/// evicted to remove a node. Both keep nodes whose pods fit nowhere else, pods without a
/// controller (unless `cluster-autoscaler.kubernetes.io/safe-to-evict: "true"`; nothing
/// would recreate them), pods annotated `karpenter.sh/do-not-disrupt: "true"`, pods whose
/// PodDisruptionBudget allows no disruption, and pods that must stay beside another pod or
/// on their node by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleDownProfile {
    /// cluster-autoscaler's defaults (its FAQ, "What types of pods can prevent CA from
    /// removing a node?", with `--skip-nodes-with-local-storage` and
    /// `--skip-nodes-with-system-pods` at their default `true`), which platform teams know
    /// and expect; additionally: a pod with a hostPath or disk-backed emptyDir volume not
    /// named in `cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes` keeps its
    /// node, as does a kube-system pod (not DaemonSet, not mirror) no PodDisruptionBudget
    /// covers, and one annotated `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`
    /// (`safe-to-evict: "true"` lifts the first two); a node annotated
    /// `cluster-autoscaler.kubernetes.io/scale-down-disabled: "true"` stays.
    #[default]
    ClusterAutoscaler,
    /// Karpenter's consolidation rules (karpenter.sh, Concepts → Disruption, "Pod-Level
    /// Controls"): only `karpenter.sh/do-not-disrupt` (pod or node) and blocking
    /// PodDisruptionBudgets keep a node; local volumes, kube-system pods without a PDB and
    /// cluster-autoscaler's annotations do not.
    Karpenter,
}

impl ScaleDownProfile {
    /// The name used in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleDownProfile::ClusterAutoscaler => "cluster-autoscaler",
            ScaleDownProfile::Karpenter => "karpenter",
        }
    }
}

impl std::fmt::Display for ScaleDownProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScaleDownProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cluster-autoscaler" => Ok(ScaleDownProfile::ClusterAutoscaler),
            "karpenter" => Ok(ScaleDownProfile::Karpenter),
            other => Err(format!(
                "unknown scale-down profile {other:?}: expected cluster-autoscaler or karpenter"
            )),
        }
    }
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        // Typical observed spot discounts by family; estimates, labelled as such.
        let spot_discount = [
            ("m5", 0.60),
            ("m6i", 0.60),
            ("m6g", 0.55),
            ("m7i", 0.55),
            ("m7g", 0.50),
            ("c5", 0.60),
            ("c6i", 0.60),
            ("c6g", 0.55),
            ("c7g", 0.50),
            ("r5", 0.65),
            ("r6i", 0.60),
            ("r6g", 0.55),
            ("t3", 0.65),
            ("t3a", 0.65),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let rightsizing_families = [
            "m5", "m6i", "m6g", "m7i", "m7g", "c5", "c6i", "c6g", "c7g", "r5", "r6i", "r6g", "t3",
            "t3a",
        ]
        .map(String::from)
        .to_vec();
        AnalysisSettings {
            headroom: 0.10,
            region: "us-east-1".to_string(),
            spot_discount,
            default_spot_discount: 0.50,
            min_rightsizing_saving: 0.05,
            hours_per_month: 730.0,
            top_recommendations: 10,
            max_listed_nodes: 20,
            rightsizing_families,
            scale_down_profile: ScaleDownProfile::default(),
        }
    }
}

impl AnalysisSettings {
    /// The spot discount estimate for an instance family, clamped to [0, 0.95].
    pub fn spot_discount_for(&self, family: &str) -> f64 {
        self.spot_discount
            .get(family)
            .copied()
            .unwrap_or(self.default_spot_discount)
            .clamp(0.0, 0.95)
    }
}

/// Analyse one cluster. Pure and deterministic: the same inputs give the same report.
/// The input is read from a dump ([`AnalysisInput::from_reader`] as it streams in, or
/// [`AnalysisInput::from_dump`] from memory) or converted from a
/// sanitized [`ClusterSnapshot`](crate::cluster::snapshot::ClusterSnapshot)
/// (`AnalysisInput::from(snapshot)`).
pub fn analyze(
    input: &AnalysisInput,
    aws: &AwsInventory,
    prices: &PriceTable,
    settings: &AnalysisSettings,
) -> Report {
    analyze_timed(input, aws, prices, settings).0
}

/// Wall-clock time of each analysis step (for metrics and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimings {
    /// Building the compact model from the snapshot.
    pub model: std::time::Duration,
    /// Consolidation (all candidate orders).
    pub consolidation: std::time::Duration,
    /// Right-sizing.
    pub rightsizing: std::time::Duration,
    /// Spot candidates.
    pub spot: std::time::Duration,
    /// Assembling the report.
    pub report: std::time::Duration,
    /// Pods the consolidation looked at (bound, unfinished).
    pub pods: usize,
}

/// [`analyze`], also returning how long each step took. The report does not depend on
/// the timings.
pub fn analyze_timed(
    input: &AnalysisInput,
    aws: &AwsInventory,
    prices: &PriceTable,
    settings: &AnalysisSettings,
) -> (Report, StepTimings) {
    let mut t = StepTimings::default();
    let clock = std::time::Instant::now();
    // DescribeInstanceTypes shapes win over the table's (a clone only when there are any).
    let prices = if aws.instance_types.is_empty() {
        std::borrow::Cow::Borrowed(prices)
    } else {
        std::borrow::Cow::Owned(
            prices.clone().with_instance_types(
                aws.instance_types
                    .iter()
                    .map(|(name, info)| (name.clone(), info.clone())),
            ),
        )
    };
    let prices = prices.as_ref();
    let model = model::build(input, aws, prices, settings);
    t.model = clock.elapsed();
    t.pods = model.pods.len();
    let clock = std::time::Instant::now();
    let outcome = consolidation::consolidate(&model, settings.headroom);
    t.consolidation = clock.elapsed();
    let clock = std::time::Instant::now();
    let rightsizing = rightsizing::rightsize(&model, &outcome, prices, settings);
    t.rightsizing = clock.elapsed();
    let clock = std::time::Instant::now();
    let spot = spot::spot_candidates(&model, &outcome, settings);
    t.spot = clock.elapsed();
    let clock = std::time::Instant::now();
    let report = report::build(
        input,
        &model,
        &outcome,
        &rightsizing,
        &spot,
        prices,
        settings,
    );
    let mut report = report;
    if aws.is_empty() {
        report.notes.push(NO_INVENTORY_NOTE.to_string());
    } else {
        report.aws_inventory = Some(aws.clone().for_analysis());
    }
    t.report = clock.elapsed();
    (report, t)
}
