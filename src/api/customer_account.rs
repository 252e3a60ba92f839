//! `CustomerAccount`: one customer AWS account reached through a cross-account IAM role.

// kube's printcolumn(...) repeats `type_ = ...` by design; the lint misreads it.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, Mode};

/// A customer's AWS account that crossguard reaches by assuming a cross-account IAM role.
///
/// Onboarding order (docs/onboarding-flow.md): apply it with `accountId` and `regions`
/// only; crossguard generates the ExternalId for the role's trust policy, shows it in
/// `status.externalId` and waits (`Ready=False`, reason `AwaitingCustomerRole`, no AWS
/// calls); the customer creates the role from `crossguard onboarding-template`; setting
/// `spec.roleArn` (`crossguard onboarding-complete` or `kubectl patch`) starts verification.
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
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Expires",
        type_ = "string",
        json_path = ".status.credentialsExpireAt"
    ),
    printcolumn(name = "Keys", type_ = "integer", json_path = ".status.keyAudit.keys"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.roleArn) || self.roleArn.matches('^arn:aws(-cn|-us-gov)?:iam::' + self.accountId + ':role/')",
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
    /// Leave it out until the customer has created the role: the account then gets its
    /// ExternalId and waits (`Ready=False`, reason `AwaitingCustomerRole`) without calling
    /// AWS. Set it with `crossguard onboarding-complete` (from the stack's `RoleArn`
    /// output) or `kubectl patch`; removing it again drops the session and waits again.
    // Absent rather than null in the schema (`with = "String"`): a null would reach the
    // CEL rule as a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    #[schemars(pattern(
        r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"
    ))]
    pub role_arn: Option<String>,

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
    #[schemars(transform = super::duration::session_duration)]
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

/// Annotation on a CustomerAccount asking for the access-key scan and the role-posture
/// check now rather than at their schedule; any new value (e.g. a timestamp) is one request.
pub const CHECK_REQUESTED_AT: &str = "crossguard.dev/check-requested-at";

/// Settings of the access-key age monitor: every IAM user's access keys in the account are
/// scanned (`iam:ListUsers`, `ListUserTags`, `ListAccessKeys`, `GetAccessKeyLastUsed`), the
/// owner and the team are told on a ladder of key ages, and, with `enforce`, a key is made
/// `Inactive` on its deadline if its user carries `crossguard.dev/managed=true`. Ages are
/// whole UTC days since the key's CreateDate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.warnDays.all(d, d < self.disableDay)",
        "message": "every warnDays entry must be smaller than disableDay"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyAudit {
    /// Whether to audit the age of the account's IAM access keys (default false).
    #[serde(default)]
    pub enabled: bool,

    /// Actually disable keys on their deadline (iam:UpdateAccessKey to Inactive, never a
    /// delete, only for users tagged crossguard.dev/managed=true). When false (the
    /// default) the audit reports what it would disable and changes nothing.
    #[serde(default)]
    pub enforce: bool,

    /// How often the account is scanned, as a Go-style duration between 1h and 168h
    /// (default 24h). Each account's scans are offset by a fixed jitter of up to a tenth
    /// of the interval, so that many accounts do not scan at once.
    #[serde(default = "default_scan_interval")]
    #[schemars(transform = super::duration::scan_interval)]
    pub scan_interval: String,

    /// Key ages in days at which an engineer's key's owner and the team are warned
    /// (default 76, 81, 86). Also used for users whose type tag is missing or unknown.
    #[serde(default = "default_warn_days")]
    #[schemars(length(max = 10), inner(range(min = 1, max = 3650)))]
    pub warn_days: Vec<u32>,

    /// Key age in days at which an engineer's key is disabled (default 91).
    #[serde(default = "default_disable_day")]
    #[schemars(range(min = 1, max = 3650))]
    pub disable_day: u32,

    /// Thresholds for users whose type tag says `machine`; when absent they get the
    /// engineers' thresholds above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<KeyAgeThresholds>,

    /// On the first scan of an account, keys already past their deadline get this many
    /// days of grace with a final warning instead of being disabled at once (default 7).
    #[serde(default = "default_grace_days")]
    #[schemars(range(max = 90))]
    pub first_scan_grace_days: u32,

    /// Names of the IAM user tags that say whose a user is.
    #[serde(default)]
    pub owner_tags: OwnerTags,

    /// Where warnings go.
    #[serde(default)]
    pub notifications: KeyAuditNotifications,
}

/// A warning ladder and deadline, in days of key age.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.warnDays.all(d, d < self.disableDay)",
        "message": "every warnDays entry must be smaller than disableDay"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct KeyAgeThresholds {
    /// Key ages in days at which the owner and the team are warned.
    #[schemars(length(max = 10), inner(range(min = 1, max = 3650)))]
    pub warn_days: Vec<u32>,
    /// Key age in days at which the key is disabled.
    #[schemars(range(min = 1, max = 3650))]
    pub disable_day: u32,
}

/// Names of the IAM user tags that identify a user's owner.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnerTags {
    /// Tag whose value is `engineer` or `machine` (default `type`).
    #[serde(default = "default_type_tag", rename = "type")]
    #[schemars(length(min = 1, max = 128))]
    pub kind: String,
    /// Tag whose value is the owner's Slack member id, e.g. U012AB3CD (default `slack-id`).
    /// A user without it is "unowned": its messages go to the team channel only.
    #[serde(default = "default_slack_tag")]
    #[schemars(length(min = 1, max = 128))]
    pub slack_id: String,
    /// Tag whose value is the owner's full name, used in messages (default `full-name`).
    #[serde(default = "default_name_tag")]
    #[schemars(length(min = 1, max = 128))]
    pub full_name: String,
}

/// Where key-age warnings are sent. Tokens and URLs live in a Secret in the
/// CustomerAccount's namespace, under the keys `slack-bot-token` (a bot token allowed
/// `chat:write`; owners get a private message and `slackChannel` gets the team's copy),
/// `slack-webhook-url` (an incoming webhook for the team channel) and `webhook-url` (a
/// generic JSON webhook). Any subset may be set; they never appear in status, logs,
/// Events, metrics or the store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyAuditNotifications {
    /// Name of the Secret (same namespace) holding the delivery credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,

    /// Slack channel id for the team's copy when sent with the bot token, e.g. C012AB3CD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[A-Z0-9]{3,32}$"))]
    pub slack_channel: Option<String>,

    /// Also emit a Kubernetes Event on the CustomerAccount for each disable, new key and
    /// re-enabled key (default true).
    #[serde(default = "default_true")]
    pub kubernetes_events: bool,
}

impl Default for AccessKeyAudit {
    fn default() -> Self {
        AccessKeyAudit {
            enabled: false,
            enforce: false,
            scan_interval: default_scan_interval(),
            warn_days: default_warn_days(),
            disable_day: default_disable_day(),
            machine: None,
            first_scan_grace_days: default_grace_days(),
            owner_tags: OwnerTags::default(),
            notifications: KeyAuditNotifications::default(),
        }
    }
}

impl Default for OwnerTags {
    fn default() -> Self {
        OwnerTags {
            kind: default_type_tag(),
            slack_id: default_slack_tag(),
            full_name: default_name_tag(),
        }
    }
}

impl Default for KeyAuditNotifications {
    fn default() -> Self {
        KeyAuditNotifications {
            secret_name: None,
            slack_channel: None,
            kubernetes_events: true,
        }
    }
}

/// What crossguard last observed about the account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerAccountStatus {
    /// Ready, CredentialsValid and TrustPolicy conditions, one per type.
    #[serde(default)]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,

    /// The ExternalId the customer must put in the role's trust policy (sts:ExternalId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,

    /// The identity STS reported for the assumed role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_identity: Option<VerifiedIdentity>,

    /// When the current session's credentials expire (RFC 3339); they are refreshed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub credentials_expire_at: Option<String>,

    /// When crossguard last proved the role works (AssumeRole + GetCallerIdentity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_verified_at: Option<String>,

    /// The metadata.generation the status was computed from.
    #[serde(default)]
    pub observed_generation: i64,

    /// The value of the `crossguard.dev/check-requested-at` annotation last acted on: a
    /// different value makes the next reconcile scan keys and read the role at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_check_request: Option<String>,

    /// What the last access-key scan found (absent while the audit is disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_audit: Option<KeyAuditStatus>,

    /// What the last check of the customer's role found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_posture: Option<RolePostureStatus>,
}

/// Summary of the last access-key scan. Counts are of access keys unless named otherwise.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyAuditStatus {
    /// When the last complete scan finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_scan_at: Option<String>,
    /// When the next scan is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub next_scan_at: Option<String>,
    /// IAM users scanned.
    #[serde(default)]
    pub users: u32,
    /// Access keys scanned (active and inactive).
    #[serde(default)]
    pub keys: u32,
    /// Active keys at or past their first warning day and before their deadline (keys in
    /// a grace period count here).
    #[serde(default)]
    pub expiring: u32,
    /// Keys crossguard has disabled and that are still inactive.
    #[serde(default)]
    pub disabled: u32,
    /// Active keys past their deadline (and any grace) that were not disabled: enforce is
    /// off, the user is not tagged crossguard.dev/managed=true, or the disable failed.
    #[serde(default)]
    pub overdue: u32,
    /// Keys first seen in the last scan.
    #[serde(default)]
    pub new: u32,
    /// Keys whose user has no owner tag.
    #[serde(default)]
    pub unowned: u32,
    /// Keys whose user carries a current exemption.
    #[serde(default)]
    pub exempt: u32,
    /// Users with more than one active key.
    #[serde(default)]
    pub users_with_multiple_active_keys: u32,
    /// Keys crossguard disabled that were found active again.
    #[serde(default)]
    pub reactivated: u32,
    /// Notifications decided but not delivered yet (they are retried).
    #[serde(default)]
    pub pending_notifications: u32,
    /// The keys that need attention, most urgent first (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<KeyFinding>,
}

/// One access key that needs attention.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyFinding {
    /// IAM user name.
    pub user: String,
    /// The access key id (never the secret).
    pub access_key_id: String,
    /// Whole UTC days since the key's CreateDate.
    pub age_days: u32,
    /// What is the matter: Expiring, Overdue, Disabled, New, Reactivated, Exempt,
    /// InvalidExemption or MultipleActiveKeys.
    pub finding: String,
    /// Explanation, e.g. the deadline or why a key was not disabled.
    pub message: String,
}

/// What the last check of the customer's role found.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolePostureStatus {
    /// When the role was last read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub checked_at: Option<String>,
    /// Problems found, each naming the policy and statement (empty when clean).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
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
fn default_scan_interval() -> String {
    "24h".to_string()
}
fn default_grace_days() -> u32 {
    7
}
fn default_type_tag() -> String {
    "type".to_string()
}
fn default_slack_tag() -> String {
    "slack-id".to_string()
}
fn default_name_tag() -> String {
    "full-name".to_string()
}
fn default_true() -> bool {
    true
}
