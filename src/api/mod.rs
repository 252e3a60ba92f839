//! The custom resources crossguard reconciles (group `crossguard.dev`, version `v1alpha1`).

mod conditions;
mod customer_account;
pub mod duration;
mod managed_cluster;
pub mod validate;

pub use conditions::{
    Condition, ConditionStatus, find as conditions_find, remove_condition, set_condition,
};
pub use customer_account::{
    AccessKeyAudit, CHECK_REQUESTED_AT, CustomerAccount, CustomerAccountSpec,
    CustomerAccountStatus, KeyAgeThresholds, KeyAuditNotifications, KeyAuditStatus, KeyFinding,
    OwnerTags, RolePostureStatus, VerifiedIdentity,
};
pub use managed_cluster::{
    AccountRef, ActionRecord, ApiEndpoint, Automation, CURRENCY, DisruptionBudget, Inventory,
    ManagedCluster, ManagedClusterSpec, ManagedClusterStatus, PendingAction, RefusalRecord,
    SanitizerSettings, ScaleDownProfile, whole_units,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every crossguard resource.
pub const GROUP: &str = "crossguard.dev";
/// Field manager name used for server-side apply of status.
pub const FIELD_MANAGER: &str = "crossguard";

/// How far crossguard may go in a customer's account.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum Mode {
    /// Only Describe/List calls; nothing in the customer's account or cluster is changed.
    #[default]
    ReadOnly,
    /// Tag-managed EC2 instances, Auto Scaling groups and nodegroups may be changed.
    Automated,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::ReadOnly => "ReadOnly",
            Mode::Automated => "Automated",
        })
    }
}
