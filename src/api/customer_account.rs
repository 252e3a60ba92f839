//! `CustomerAccount`: one customer AWS account reached through a cross-account IAM role.

// kube's printcolumn(...) repeats `type_ = ...` by design; the lint misreads it.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, Mode};

/// A customer's AWS account that crossguard reaches by assuming a cross-account IAM role.
///
/// crossguard generates the ExternalId for the role's trust policy and shows it in
/// `status.externalId`; the customer creates the role from `crossguard onboarding-template`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "crossguard.dev",
    version = "v1alpha1",
    kind = "CustomerAccount",
    doc = "A customer AWS account that crossguard reaches through a cross-account IAM role and ExternalId.",
    plural = "customeraccounts",
    shortname = "ca",
    category = "crossguard",
    namespaced,
    status = "CustomerAccountStatus",
    printcolumn(name = "Account", type_ = "string", json_path = ".spec.accountId"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Expires",
        type_ = "string",
        json_path = ".status.credentialsExpireAt"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.roleArn.matches('^arn:aws(-cn|-us-gov)?:iam::' + self.accountId + ':role/')",
        "message": "roleArn must be an IAM role in the account given by accountId (arn:aws:iam::<accountId>:role/<name>)"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct CustomerAccountSpec {
    /// The customer's 12-digit AWS account id.
    #[schemars(pattern(r"^[0-9]{12}$"))]
    pub account_id: String,

    /// ARN of the IAM role crossguard assumes in that account, e.g.
    /// arn:aws:iam::111122223333:role/crossguard-access. It must belong to accountId.
    #[schemars(pattern(
        r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"
    ))]
    pub role_arn: String,

    /// AWS regions crossguard may call in this account, e.g. [us-east-1, eu-west-1].
    #[schemars(
        length(min = 1, max = 32),
        inner(pattern(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$"))
    )]
    pub regions: Vec<String>,

    /// The most crossguard may ever do in this account: ReadOnly (default) or Automated.
    /// A ManagedCluster's mode may not exceed it.
    #[serde(default)]
    pub mode: Mode,

    /// How long each assumed-role session lasts, between 15m and 1h (default 1h).
    /// The role's MaxSessionDuration must allow it.
    #[serde(default = "default_session_duration")]
    #[schemars(pattern(r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "duration(self) >= duration('15m') && duration(self) <= duration('1h')",
            "message": "sessionDuration must be between 15m and 1h"
        }
    ]))]
    pub session_duration: String,

    /// Stop calling this account: sessions are dropped and nothing is reconciled until false.
    #[serde(default)]
    pub suspend: bool,

    /// How many days reports and snapshots of this account are kept (default 365).
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub data_retention_days: u32,

    /// Age monitor for the account's long-lived IAM access keys.
    #[serde(default)]
    pub access_key_audit: AccessKeyAudit,
}

/// Settings of the access-key age monitor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.warnDays.all(d, d < self.disableDay)",
        "message": "every warnDays entry must be smaller than disableDay"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyAudit {
    /// Whether to audit the age of the account's IAM access keys.
    #[serde(default)]
    pub enabled: bool,

    /// Key ages in days at which the key's owner is warned (default 76, 81, 86).
    #[serde(default = "default_warn_days")]
    #[schemars(length(max = 10), inner(range(min = 1, max = 3650)))]
    pub warn_days: Vec<u32>,

    /// Key age in days at which the key is disabled (default 91), when enforce is true.
    #[serde(default = "default_disable_day")]
    #[schemars(range(min = 1, max = 3650))]
    pub disable_day: u32,

    /// Actually disable keys older than disableDay; when false they are only reported.
    #[serde(default)]
    pub enforce: bool,

    /// Where warnings go.
    #[serde(default)]
    pub notifications: KeyAuditNotifications,
}

/// Where key-age warnings are sent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyAuditNotifications {
    /// SNS topic in the customer's account to publish warnings to (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^arn:aws(-cn|-us-gov)?:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$"))]
    pub sns_topic_arn: Option<String>,

    /// IAM user tag whose value names the key's owner (default "owner").
    #[serde(default = "default_owner_tag")]
    #[schemars(length(min = 1, max = 128))]
    pub owner_tag_key: String,

    /// Also emit a Kubernetes Warning Event on the CustomerAccount for each warning (default true).
    #[serde(default = "default_true")]
    pub kubernetes_events: bool,
}

impl Default for AccessKeyAudit {
    fn default() -> Self {
        AccessKeyAudit {
            enabled: false,
            warn_days: default_warn_days(),
            disable_day: default_disable_day(),
            enforce: false,
            notifications: KeyAuditNotifications::default(),
        }
    }
}

impl Default for KeyAuditNotifications {
    fn default() -> Self {
        KeyAuditNotifications {
            sns_topic_arn: None,
            owner_tag_key: default_owner_tag(),
            kubernetes_events: true,
        }
    }
}

/// What crossguard last observed about the account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerAccountStatus {
    /// Ready, CredentialsValid and TrustPolicy conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,

    /// The ExternalId the customer must put in the role's trust policy (sts:ExternalId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,

    /// The identity STS reported for the assumed role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_identity: Option<VerifiedIdentity>,

    /// When the current session's credentials expire (RFC 3339); they are refreshed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_expire_at: Option<String>,

    /// When crossguard last proved the role works (AssumeRole + GetCallerIdentity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_at: Option<String>,

    /// The metadata.generation the status was computed from.
    #[serde(default)]
    pub observed_generation: i64,
}

/// Caller identity reported by STS GetCallerIdentity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedIdentity {
    /// The assumed-role ARN, including the session name.
    pub arn: String,
    /// The account the session lives in; always equal to spec.accountId.
    pub account: String,
}

fn default_session_duration() -> String {
    "1h".to_string()
}
fn default_retention_days() -> u32 {
    365
}
fn default_warn_days() -> Vec<u32> {
    vec![76, 81, 86]
}
fn default_disable_day() -> u32 {
    91
}
fn default_owner_tag() -> String {
    "owner".to_string()
}
fn default_true() -> bool {
    true
}
