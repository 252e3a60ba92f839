//! `ManagedCluster`: one EKS cluster in a CustomerAccount of the same namespace.

// kube's printcolumn(...) repeats `type_ = ...` by design; the lint misreads it.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, Mode};

/// An EKS cluster crossguard observes (and, when allowed, optimises) in a customer's account.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "crossguard.dev",
    version = "v1alpha1",
    kind = "ManagedCluster",
    doc = "An EKS cluster in a CustomerAccount of the same namespace that crossguard inventories and analyses.",
    plural = "managedclusters",
    shortname = "mc",
    category = "crossguard",
    namespaced,
    status = "ManagedClusterStatus",
    printcolumn(
        name = "Account",
        type_ = "string",
        json_path = ".spec.accountRef.name"
    ),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Nodes",
        type_ = "integer",
        json_path = ".status.inventory.instances"
    ),
    printcolumn(name = "Cost/Mo", type_ = "integer", json_path = ".status.monthlyCost"),
    printcolumn(
        name = "Savings/Mo",
        type_ = "integer",
        json_path = ".status.potentialSavings"
    ),
    printcolumn(
        name = "Analysed",
        type_ = "date",
        json_path = ".status.lastAnalysisAt"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSpec {
    /// The CustomerAccount (in this namespace) whose role reaches the cluster.
    pub account_ref: AccountRef,

    /// AWS region of the cluster; must be one of the account's regions.
    #[schemars(pattern(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$"))]
    pub region: String,

    /// Name of the EKS cluster.
    #[schemars(pattern(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"))]
    pub cluster_name: String,

    /// ReadOnly (default) or Automated; may not exceed the CustomerAccount's mode.
    #[serde(default)]
    pub mode: Mode,

    /// How often the cluster is inventoried and analysed, between 1m and 24h (default 15m).
    #[serde(default = "default_analysis_interval")]
    #[schemars(transform = super::duration::analysis_interval)]
    pub analysis_interval: String,

    /// Whose scale-down rules decide which pods keep their node when consolidation is
    /// judged: ClusterAutoscaler (default: cluster-autoscaler's defaults, the stricter
    /// ones) or Karpenter (its consolidation rules). Use the one the cluster runs; the
    /// report names the rule that kept each node (docs/analysis.md "Scale-down profiles").
    #[serde(default)]
    pub scale_down_profile: ScaleDownProfile,

    /// What automation may do when mode is Automated.
    #[serde(default)]
    pub automation: Automation,

    /// Override the cluster's Kubernetes API endpoint (default: from EKS DescribeCluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<ApiEndpoint>,

    /// Extra rules for stripping sensitive data from workloads before analysis.
    #[serde(default)]
    pub sanitizer: SanitizerSettings,
}

/// Reference to a CustomerAccount. Accounts are never shared across namespaces.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    /// Name of the CustomerAccount (a Kubernetes object name).
    #[schemars(length(min = 1, max = 253))]
    #[schemars(pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub name: String,
    /// Must be empty or this ManagedCluster's own namespace; any other value is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Automation settings; all actions are bounded by the disruption budget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Automation {
    /// Only plan and record actions, never execute them (default true).
    #[serde(default = "default_true")]
    pub dry_run: bool,

    /// Upper bounds on how much a single run may disrupt.
    #[serde(default)]
    pub disruption_budget: DisruptionBudget,

    /// How long a node drain may take before it is abandoned and the node uncordoned (default 10m).
    #[serde(default = "default_drain_timeout")]
    #[schemars(transform = super::duration::drain_timeout)]
    pub drain_timeout: String,
}

/// Bounds on automated disruption.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.maxNodesPerRun <= self.maxNodesPerHour",
        "message": "maxNodesPerRun may not exceed maxNodesPerHour"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudget {
    /// Most nodes removed in one run (default 1).
    #[serde(default = "default_one")]
    #[schemars(range(min = 0, max = 100))]
    pub max_nodes_per_run: u32,
    /// Most nodes removed in any hour (default 3).
    #[serde(default = "default_three")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_nodes_per_hour: u32,
    /// Nodes younger than this are never removed (default 1h).
    #[serde(default = "default_min_node_age")]
    #[schemars(transform = super::duration::min_node_age)]
    pub min_node_age: String,
}

/// A Kubernetes API endpoint with the CA that signs its certificate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiEndpoint {
    /// URL of the API server, e.g. https://ABCD.gr7.us-east-1.eks.amazonaws.com.
    #[schemars(pattern(r"^https?://[^\s/]+(:[0-9]+)?/?$"))]
    pub url: String,
    /// Base64-encoded PEM CA bundle; empty means the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// Additional sanitizer rules on top of the built-in ones.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SanitizerSettings {
    /// Extra case-insensitive substrings; env vars whose names contain one are redacted.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(min = 1, max = 128)))]
    pub extra_sensitive_names: Vec<String>,
}

/// What crossguard last observed about the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterStatus {
    /// Ready, AccountResolved, InventoryCollected and Automation conditions, one per type.
    #[serde(default)]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,

    /// The mode in force: the lower of this cluster's and its account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_mode: Option<Mode>,

    /// What crossguard found in the account for this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,

    /// Estimated monthly cost of the cluster's priced nodes, in whole units of `currency`
    /// (e.g. 1235 for $1234.56; the report at reportRef has the cents): an integer, so
    /// `kubectl get --sort-by=.status.monthlyCost` and alerts compare it as a number.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "amount::deserialize"
    )]
    pub monthly_cost: Option<i64>,

    /// Monthly saving the latest analysis found, in whole units of `currency` (e.g. 321).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "amount::deserialize"
    )]
    pub potential_savings: Option<i64>,

    /// ISO 4217 code of monthlyCost and potentialSavings; always USD (AWS prices in USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,

    /// When the latest inventory/analysis finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_analysis_at: Option<String>,

    /// Where the latest stored report lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_ref: Option<String>,

    /// The latest actions taken or planned (newest first, at most 20).
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub recent_actions: Vec<ActionRecord>,

    /// The latest actions the tag guard refused (newest first, at most 20).
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub refusals: Vec<RefusalRecord>,

    /// The action in progress, written before it starts and cleared when it ends, so that
    /// after a restart crossguard checks what happened instead of acting twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_action: Option<PendingAction>,

    /// When automation removed nodes within the last hour (RFC 3339), for the disruption
    /// budget's hourly limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    #[schemars(extend("items" = {"type": "string", "format": "date-time"}))]
    pub recent_removals: Vec<String>,

    /// The metadata.generation the status was computed from.
    #[serde(default)]
    pub observed_generation: i64,
}

/// The currency of `monthlyCost` and `potentialSavings`: AWS prices EC2 in US dollars.
pub const CURRENCY: &str = "USD";

/// Whole units of money from an amount, rounded half away from zero (never `-0`).
pub fn whole_units(amount: f64) -> i64 {
    amount.round() as i64
}

/// Reading the money fields of status in both the current form (an integer) and the form
/// written before they became numbers (a string such as "$1234.56" or "-$1.00"), so an
/// upgraded operator reads the statuses its predecessor wrote. Such a status has no
/// `currency`, so it differs from what the operator computes and is rewritten as numbers
/// on the next status write.
///
/// Integers rather than fractional numbers: kubectl decodes a whole-valued JSON number
/// (`120.0`) as an integer and a fractional one (`10.5`) as a float, and its `--sort-by`
/// then fails on the mix ("unsortable interface").
mod amount {
    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Number(x)) => Ok(Some(super::whole_units(x))),
            Some(Raw::Text(s)) => parse_legacy(&s)
                .map(|x| Some(super::whole_units(x)))
                .ok_or_else(|| D::Error::custom(format!("{s:?} is not an amount such as 1234"))),
        }
    }

    /// "$1234.56", "-$1.00" or a bare "12.5" → the number.
    pub(super) fn parse_legacy(s: &str) -> Option<f64> {
        let s = s.trim();
        let (negative, rest) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let digits = rest.strip_prefix('$').unwrap_or(rest).replace(',', "");
        let x: f64 = digits.parse().ok().filter(|x: &f64| x.is_finite())?;
        Some(if negative { -x } else { x })
    }
}

/// Counts of what belongs to the cluster in the customer's account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// EKS Kubernetes version of the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// EKS cluster status, e.g. ACTIVE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_status: Option<String>,
    /// Managed nodegroups of the cluster.
    pub nodegroups: u32,
    /// Nodegroups that carry both crossguard management tags for this cluster.
    pub managed_nodegroups: u32,
    /// Auto Scaling groups behind the cluster's nodegroups.
    pub auto_scaling_groups: u32,
    /// Auto Scaling groups that carry both management tags.
    pub managed_auto_scaling_groups: u32,
    /// Running EC2 instances of the cluster.
    pub instances: u32,
    /// Instances that carry both management tags.
    pub managed_instances: u32,
}

/// One action crossguard took or planned.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    /// When (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// The AWS call, e.g. autoscaling:TerminateInstanceInAutoScalingGroup.
    pub action: String,
    /// The resource acted on.
    pub target: String,
    /// The Kubernetes node the action removes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Planned, Succeeded, Failed or Abandoned.
    pub outcome: String,
    /// What happened, for Failed and Abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// True when it was only planned (dry run).
    pub dry_run: bool,
}

/// An action under way: the intent recorded before acting.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingAction {
    /// When the action started (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub started_at: String,
    /// Draining (nothing called in AWS yet) or Calling (the AWS call may have been sent).
    pub phase: String,
    /// The node being removed.
    pub node: String,
    /// The AWS call, e.g. eks:UpdateNodegroupConfig.
    pub action: String,
    /// The Auto Scaling group of a termination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scaling_group: Option<String>,
    /// The instance of a termination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The nodegroup of a scale-in, or the one owning the group of a termination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodegroup: Option<String>,
    /// Desired size before a nodegroup scale-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_size: Option<i32>,
    /// Desired size after a nodegroup scale-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_size: Option<i32>,
}

/// One action the tag guard refused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalRecord {
    /// When (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// The refused action.
    pub action: String,
    /// The resource it would have touched.
    pub target: String,
    /// Why it was refused.
    pub reason: String,
}

impl Default for Automation {
    fn default() -> Self {
        Automation {
            dry_run: true,
            disruption_budget: DisruptionBudget::default(),
            drain_timeout: default_drain_timeout(),
        }
    }
}

impl Default for DisruptionBudget {
    fn default() -> Self {
        DisruptionBudget {
            max_nodes_per_run: default_one(),
            max_nodes_per_hour: default_three(),
            min_node_age: default_min_node_age(),
        }
    }
}

fn default_analysis_interval() -> String {
    "15m".to_string()
}
fn default_drain_timeout() -> String {
    "10m".to_string()
}
fn default_min_node_age() -> String {
    "1h".to_string()
}
fn default_true() -> bool {
    true
}
fn default_one() -> u32 {
    1
}
fn default_three() -> u32 {
    3
}

/// Whose scale-down rules the analysis applies (`spec.scaleDownProfile`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ScaleDownProfile {
    /// cluster-autoscaler's defaults: local storage, kube-system pods without a
    /// PodDisruptionBudget and its safe-to-evict annotations keep a node.
    #[default]
    ClusterAutoscaler,
    /// Karpenter's consolidation rules: only do-not-disrupt and blocking
    /// PodDisruptionBudgets keep a node.
    Karpenter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_fields_are_numbers_with_a_currency() {
        let status = ManagedClusterStatus {
            monthly_cost: Some(1235),
            potential_savings: Some(0),
            currency: Some(CURRENCY.to_string()),
            ..Default::default()
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["monthlyCost"], 1235);
        assert!(json["monthlyCost"].is_i64(), "{json}");
        assert_eq!(json["potentialSavings"], 0);
        assert_eq!(json["currency"], "USD");
        let back: ManagedClusterStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn a_status_written_before_the_numbers_is_read_and_differs_from_the_new_form() {
        let old: ManagedClusterStatus = serde_json::from_value(serde_json::json!({
            "monthlyCost": "$1234.56",
            "potentialSavings": "-$1.00",
            "observedGeneration": 3
        }))
        .unwrap();
        assert_eq!(old.monthly_cost, Some(1235));
        assert_eq!(old.potential_savings, Some(-1));
        assert_eq!(old.currency, None);
        // What the controller writes carries the currency, so the old form is rewritten.
        let new = ManagedClusterStatus {
            currency: Some(CURRENCY.to_string()),
            ..old.clone()
        };
        assert_ne!(old, new);
        assert_eq!(serde_json::to_value(&new).unwrap()["monthlyCost"], 1235);
    }

    #[test]
    fn legacy_amounts_parse_and_garbage_is_an_error() {
        for (text, want) in [
            ("$0.00", 0.0),
            ("$1,234.50", 1234.5),
            ("-$1.00", -1.0),
            ("12.5", 12.5),
        ] {
            assert_eq!(amount::parse_legacy(text), Some(want), "{text}");
        }
        let err = serde_json::from_value::<ManagedClusterStatus>(
            serde_json::json!({"monthlyCost": "lots"}),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("\"lots\" is not an amount"),
            "{err}"
        );
        for (amount, want) in [(1234.5, 1235), (0.49, 0), (-0.4, 0), (-1.5, -2)] {
            assert_eq!(whole_units(amount), want, "{amount}");
        }
    }
}
