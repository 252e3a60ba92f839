//! What a customer deploys to let crossguard in, and what the operator's own role needs.
//!
//! The customer's side is one IAM role, trusted only by the operator's principal with the
//! account's ExternalId, granting exactly the calls crossguard makes (read-only, plus
//! reading the role itself for the posture check), and optionally the access-key audit
//! reads, the tag-conditioned key deactivation, and in automated mode tag-conditioned
//! scale-in. [`role`] builds that role once as a deployment-neutral model; it is rendered
//! as a CloudFormation template ([`cloudformation`]) or as Terraform ([`terraform`]), so
//! both carry the same policy documents. [`operator`] prints the operator's own IAM policy
//! and trust policy; [`from_cluster`] reads a CustomerAccount to fill in the options.

pub mod cli;
pub mod cloudformation;
pub mod from_cluster;
pub mod operator;
pub mod terraform;

use serde_json::{Value, json};

pub use cloudformation::template;

/// Every read call crossguard makes in a customer account (`sts:GetCallerIdentity` is always
/// allowed by AWS and cannot be granted, so it is not listed).
pub const READ_ONLY_ACTIONS: &[&str] = &[
    "eks:DescribeCluster",
    "eks:ListNodegroups",
    "eks:DescribeNodegroup",
    "autoscaling:DescribeAutoScalingGroups",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeReservedInstances",
    "savingsplans:DescribeSavingsPlans",
    "savingsplans:DescribeSavingsPlanRates",
];

/// Mutating calls granted only in automated mode, each only on tag-managed resources.
pub const AUTOMATED_ACTIONS: &[&str] = &[
    "autoscaling:TerminateInstanceInAutoScalingGroup",
    "eks:UpdateNodegroupConfig",
];

/// Reads of the role itself for the daily posture check (`crate::posture`), granted in
/// every mode. The first four act on the role (resource type `role`) and are scoped to this
/// role's own ARN; `iam:GetPolicy` and `iam:GetPolicyVersion` act on policies (resource type
/// `policy`), see [`ROLE_POSTURE_POLICY_RESOURCE`].
pub const ROLE_POSTURE_ACTIONS: &[&str] = &[
    "iam:GetRole",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
];

/// Resource of `iam:GetPolicy`/`iam:GetPolicyVersion`: every managed policy (the pattern is
/// `Fn::Sub`-ed). It cannot be narrower: the point of the check is to read whatever managed
/// policy someone attaches to the role later, so the ARNs are unknown when the template is
/// written, and IAM has no condition key tying a policy to the roles it is attached to.
/// AWS managed policies live under the pseudo-account `aws` (`arn:aws:iam::aws:policy/…`),
/// which parliament rejects as a malformed ARN, so the account field is `*` rather than
/// listing `aws` and `${AWS::AccountId}`. That reaches no further in practice: IAM policies
/// have no resource-based policies, so no other account's customer managed policy can be
/// read from this one whatever this role's policy says.
pub const ROLE_POSTURE_POLICY_RESOURCE: &str = "arn:${AWS::Partition}:iam::*:policy/*";

/// Reads of the access-key age monitor, granted with `--key-audit`. `iam:ListUsers` has no
/// resource type in the IAM Service Authorization Reference (so `Resource: "*"`); the other
/// three act on `user` and are scoped to `arn:…:iam::<account>:user/*`.
pub const KEY_AUDIT_READ_ACTIONS: &[&str] = &[
    "iam:ListUsers",
    "iam:ListUserTags",
    "iam:ListAccessKeys",
    "iam:GetAccessKeyLastUsed",
];

/// Deactivating a stale access key, granted with `--key-audit-enforce`, only on IAM users
/// tagged `crossguard.dev/managed=true`.
pub const KEY_AUDIT_ENFORCE_ACTIONS: &[&str] = &["iam:UpdateAccessKey"];

/// Tagging calls explicitly denied on any `crossguard.dev/*` key, in every template: the
/// management tag decides what crossguard may mutate (Auto Scaling groups, nodegroups, and
/// with `--key-audit-enforce` IAM users), so the role must never tag anything into
/// management, even if the customer later attaches a broader policy. Denying in every mode
/// (not only when a mutation is granted) keeps one statement in one place and costs a
/// read-only role nothing.
pub const TAG_ACTIONS: &[&str] = &[
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:DeleteTags",
    "eks:TagResource",
    "eks:UntagResource",
    "iam:TagUser",
    "iam:UntagUser",
];

/// Tag key marking a resource as managed by crossguard (value "true").
pub const MANAGED_TAG: &str = "crossguard.dev/managed";
/// Tag key naming the cluster a managed resource belongs to.
pub const CLUSTER_TAG: &str = "crossguard.dev/cluster";
/// Pattern the trust policy requires for `sts:SourceIdentity` when asked to.
pub const SOURCE_IDENTITY_PATTERN: &str = "crossguard-*";

/// Which permissions the role gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Describe/List calls only.
    #[value(alias = "ReadOnly")]
    ReadOnly,
    /// Read-only plus tag-conditioned scale-in calls.
    #[value(alias = "Automated")]
    Automated,
}

impl Mode {
    /// The CLI spelling (`read-only`, `automated`), used in descriptions.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadOnly => "read-only",
            Mode::Automated => "automated",
        }
    }
}

impl From<crate::api::Mode> for Mode {
    fn from(mode: crate::api::Mode) -> Self {
        match mode {
            crate::api::Mode::ReadOnly => Mode::ReadOnly,
            crate::api::Mode::Automated => Mode::Automated,
        }
    }
}

/// Version of the role's template, stamped into every rendering (CloudFormation
/// `Metadata.crossguard.templateVersion` and `Description`, the Terraform header and role
/// description). Bumped whenever the role's permissions or the template's parameters
/// change, so a deployed stack can be compared with what this crossguard prints.
/// 2: ExternalId and operator principal as parameters, EKS ARNs scoped to regions.
pub const TEMPLATE_VERSION: u32 = 2;

/// crossguard's own version (Cargo package version), stamped next to [`TEMPLATE_VERSION`].
pub const CROSSGUARD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Placeholder for the AWS partition (`aws`, `aws-cn`, `aws-us-gov`) in the role model's
/// strings; CloudFormation resolves it with `Fn::Sub`, Terraform with `aws_partition`.
pub const PARTITION: &str = "${AWS::Partition}";
/// Placeholder for the account the role is created in.
pub const ACCOUNT: &str = "${AWS::AccountId}";
/// Placeholder for the ExternalId parameter (Terraform: `var.external_id`).
pub const EXTERNAL_ID: &str = "${ExternalId}";
/// Placeholder for the operator principal parameter (Terraform: `var.operator_principal`).
pub const OPERATOR_PRINCIPAL: &str = "${OperatorPrincipal}";

/// Name of the CloudFormation parameter / Terraform variable holding the ExternalId.
pub const EXTERNAL_ID_PARAMETER: (&str, &str) = ("ExternalId", "external_id");
/// Name of the CloudFormation parameter / Terraform variable holding the operator principal.
pub const OPERATOR_PRINCIPAL_PARAMETER: (&str, &str) = ("OperatorPrincipal", "operator_principal");

/// Characters STS accepts in an ExternalId (`[\w+=,.@:/-]`, 2 to 1224 of them; AWS STS
/// API reference, AssumeRole). crossguard generates 32 letters and digits.
pub const EXTERNAL_ID_CHARS: &str = "A-Za-z0-9_+=,.@:/-";

/// Inputs of [`role`] and of its renderings.
#[derive(Clone, Debug)]
pub struct TemplateOptions {
    /// The customer's AWS account id (12 digits); `None` for the generic template
    /// (StackSets, Launch Stack), which works in any account.
    pub account_id: Option<String>,
    /// Read-only or automated permissions.
    pub mode: Mode,
    /// EKS cluster names; scopes the EKS permissions (required in automated mode).
    pub clusters: Vec<String>,
    /// AWS regions (the CustomerAccount's `spec.regions`) scoping the EKS and Auto Scaling
    /// ARNs; empty means every region.
    pub regions: Vec<String>,
    /// ARN of the operator's IAM role, the only principal trusted: the default of the
    /// `OperatorPrincipal` parameter; `None` leaves the parameter without a default.
    pub operator_principal: Option<String>,
    /// The CustomerAccount's status.externalId: the default of the `ExternalId` parameter;
    /// `None` (generic template) leaves it to whoever deploys the stack.
    pub external_id: Option<String>,
    /// The generic template: no per-account defaults (`account_id` and `external_id` must
    /// be `None`). Otherwise both, and the operator principal, are required.
    pub generic: bool,
    /// Also require `sts:SourceIdentity` like `crossguard-*` on every session.
    pub require_source_identity: bool,
    /// Name of the role created.
    pub role_name: String,
    /// Grant the access-key audit reads ([`KEY_AUDIT_READ_ACTIONS`]).
    pub key_audit: bool,
    /// Also grant deactivating keys of managed users ([`KEY_AUDIT_ENFORCE_ACTIONS`]);
    /// implies `key_audit`.
    pub key_audit_enforce: bool,
}

/// Why [`TemplateOptions::validate`] refused the options. The messages name the flag's
/// value so the person running `crossguard onboarding-template` can correct it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// An AWS account id is exactly 12 decimal digits.
    #[error("account id {0:?} is not 12 digits")]
    AccountId(String),
    /// The trusted principal must be an IAM role (or legacy IAM user) ARN.
    #[error(
        "operator principal {0:?} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>, or the aws-cn / aws-us-gov partition)"
    )]
    OperatorPrincipal(String),
    /// STS accepts 2-1224 characters of `[\w+=,.@:/-]` as ExternalId.
    #[error("external id {0:?} is not 2-1224 letters, digits or _+=,.@:/-")]
    ExternalId(String),
    /// A per-account template needs the account id.
    #[error(
        "no account id: pass --account-id (or --from customeraccount/NAME), or --generic for the template without per-account defaults"
    )]
    MissingAccountId,
    /// A per-account template needs the ExternalId.
    #[error(
        "no external id: pass --external-id with the CustomerAccount's status.externalId (or --from customeraccount/NAME), or --generic for the template without per-account defaults"
    )]
    MissingExternalId,
    /// A per-account template needs the operator principal.
    #[error(
        "no operator principal: pass --operator-principal or set CROSSGUARD_OPERATOR_PRINCIPAL to the operator's IAM role ARN (the chart's operatorPrincipal, or its irsaRoleArn)"
    )]
    MissingOperatorPrincipal,
    /// The generic template carries no per-account values.
    #[error("--generic takes no account id or external id: they are the stack's parameters")]
    GenericWithAccountValues,
    /// Automated permissions are scoped to named clusters; there is no "every cluster".
    #[error("automated mode needs at least one --cluster")]
    NoCluster,
    /// EKS cluster names are 1-100 letters, digits, `-` and `_`, starting with a letter or
    /// digit (they end up inside ARNs).
    #[error(
        "invalid EKS cluster name {0:?}: 1-100 letters, digits, '-' and '_', starting with a letter or digit"
    )]
    ClusterName(String),
    /// Region codes like `us-east-1` (they end up inside ARNs).
    #[error("invalid AWS region {0:?}: expected a region code like us-east-1")]
    Region(String),
    /// IAM role names are 1-64 of letters, digits and `+=,.@_-` (they end up inside ARNs).
    #[error("invalid role name {0:?}")]
    RoleName(String),
}

/// Whether `value` is an ExternalId STS accepts (see [`EXTERNAL_ID_CHARS`]).
pub fn is_external_id(value: &str) -> bool {
    (2..=1224).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
}

/// Whether `name` is an IAM role name: 1-64 of letters, digits and `+=,.@_-`.
pub fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

impl TemplateOptions {
    /// Rejects options that would produce a useless or unsafe template.
    pub fn validate(&self) -> Result<(), TemplateError> {
        use crate::api::validate::{is_account_id, is_cluster_name, is_region, is_role_arn};
        if self.generic {
            if self.account_id.is_some() || self.external_id.is_some() {
                return Err(TemplateError::GenericWithAccountValues);
            }
        } else {
            if self.account_id.is_none() {
                return Err(TemplateError::MissingAccountId);
            }
            if self.external_id.is_none() {
                return Err(TemplateError::MissingExternalId);
            }
            if self.operator_principal.is_none() {
                return Err(TemplateError::MissingOperatorPrincipal);
            }
        }
        if let Some(id) = self.account_id.as_ref().filter(|id| !is_account_id(id)) {
            return Err(TemplateError::AccountId(id.clone()));
        }
        if let Some(p) = self.operator_principal.as_ref().filter(|p| !is_role_arn(p)) {
            return Err(TemplateError::OperatorPrincipal(p.clone()));
        }
        if let Some(e) = self.external_id.as_ref().filter(|e| !is_external_id(e)) {
            return Err(TemplateError::ExternalId(e.clone()));
        }
        if self.mode == Mode::Automated && self.clusters.is_empty() {
            return Err(TemplateError::NoCluster);
        }
        if let Some(c) = self.clusters.iter().find(|c| !is_cluster_name(c)) {
            return Err(TemplateError::ClusterName(c.clone()));
        }
        if let Some(r) = self.regions.iter().find(|r| !is_region(r)) {
            return Err(TemplateError::Region(r.clone()));
        }
        if !is_role_name(&self.role_name) {
            return Err(TemplateError::RoleName(self.role_name.clone()));
        }
        Ok(())
    }

    /// Whether the key-audit reads are granted (`key_audit_enforce` implies them).
    pub fn key_audit_reads(&self) -> bool {
        self.key_audit || self.key_audit_enforce
    }

    /// One line saying what the template creates, with both version stamps.
    pub fn description(&self) -> String {
        let account = match &self.account_id {
            Some(id) => format!(" for account {id}"),
            None => String::new(),
        };
        format!(
            "crossguard {} access role{account} (crossguard {CROSSGUARD_VERSION}, template version {TEMPLATE_VERSION})",
            self.mode.as_str()
        )
    }
}

/// One inline policy of the role.
#[derive(Clone, Debug, PartialEq)]
pub struct RolePolicy {
    /// The policy's name in IAM (`crossguard-read-only`, …).
    pub name: &'static str,
    /// The policy document; its strings may hold the placeholders [`PARTITION`] and
    /// [`ACCOUNT`].
    pub document: Value,
}

/// The IAM role a customer creates, independent of how it is deployed: the CloudFormation
/// and Terraform renderings substitute the placeholders ([`PARTITION`], [`ACCOUNT`],
/// [`EXTERNAL_ID`], [`OPERATOR_PRINCIPAL`]) with their own syntax and change nothing else.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleModel {
    /// The role's name.
    pub name: String,
    /// The role's IAM description.
    pub description: String,
    /// Longest session, in seconds (one hour: crossguard never asks for more).
    pub max_session_seconds: u32,
    /// The trust policy (`AssumeRolePolicyDocument`).
    pub trust: Value,
    /// The inline policies, in a stable order.
    pub policies: Vec<RolePolicy>,
}

/// The role for `opts` (which should have passed [`TemplateOptions::validate`]).
pub fn role(opts: &TemplateOptions) -> RoleModel {
    let mut policies = vec![RolePolicy {
        name: "crossguard-read-only",
        document: read_only_policy(opts),
    }];
    if opts.mode == Mode::Automated {
        policies.push(RolePolicy {
            name: "crossguard-automated",
            document: automated_policy(opts),
        });
    }
    if opts.key_audit_reads() {
        policies.push(RolePolicy {
            name: "crossguard-key-audit",
            document: key_audit_policy(opts),
        });
    }
    RoleModel {
        name: opts.role_name.clone(),
        description: format!(
            "Assumed by crossguard ({}, template version {TEMPLATE_VERSION})",
            opts.mode.as_str()
        ),
        max_session_seconds: 3600,
        trust: trust_policy(opts),
        policies,
    }
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>` with the placeholders.
fn arn(service: &str, region: &str, resource: &str) -> Value {
    Value::String(format!(
        "arn:{PARTITION}:{service}:{region}:{ACCOUNT}:{resource}"
    ))
}

/// The regions ARNs are scoped to: the given ones, or every region.
fn regions(opts: &TemplateOptions) -> Vec<&str> {
    if opts.regions.is_empty() {
        vec!["*"]
    } else {
        opts.regions.iter().map(String::as_str).collect()
    }
}

fn cluster_arns(opts: &TemplateOptions, name: &str) -> Vec<Value> {
    regions(opts)
        .into_iter()
        .map(|r| arn("eks", r, &format!("cluster/{name}")))
        .collect()
}

fn nodegroup_arns(opts: &TemplateOptions, name: &str) -> Vec<Value> {
    regions(opts)
        .into_iter()
        .map(|r| arn("eks", r, &format!("nodegroup/{name}/*")))
        .collect()
}

fn read_only_policy(opts: &TemplateOptions) -> Value {
    // Without cluster names, scope EKS reads to every cluster of this account.
    let names: Vec<&str> = if opts.clusters.is_empty() {
        vec!["*"]
    } else {
        opts.clusters.iter().map(String::as_str).collect()
    };
    let mut statements = vec![
        json!({
            "Sid": "ReadEksClusters",
            "Effect": "Allow",
            "Action": ["eks:DescribeCluster", "eks:ListNodegroups"],
            "Resource": names.iter().flat_map(|c| cluster_arns(opts, c)).collect::<Vec<_>>(),
        }),
        json!({
            "Sid": "ReadEksNodegroups",
            "Effect": "Allow",
            "Action": ["eks:DescribeNodegroup"],
            "Resource": names.iter().flat_map(|c| nodegroup_arns(opts, c)).collect::<Vec<_>>(),
        }),
    ];
    // These Describe calls support no resource-level permissions: "*" is the only option.
    statements.push(json!({
        "Sid": "ReadComputeInventory",
        "Effect": "Allow",
        "Action": [
            "autoscaling:DescribeAutoScalingGroups",
            "ec2:DescribeInstances",
            "ec2:DescribeInstanceTypes",
        ],
        "Resource": "*",
    }));
    // Spot prices and the account's Reserved Instances, to price nodes as billed: these
    // EC2 Describe calls support no resource-level permissions either.
    statements.push(json!({
        "Sid": "ReadSpotPricesAndReservations",
        "Effect": "Allow",
        "Action": [
            "ec2:DescribeSpotPriceHistory",
            "ec2:DescribeReservedInstances",
        ],
        "Resource": "*",
    }));
    // The account's Savings Plans and their rates act on `savingsplan` resources (Service
    // Authorization Reference, AWS Savings Plans): any plan of this account. Savings
    // Plans are global (no region in the ARN).
    statements.push(json!({
        "Sid": "ReadSavingsPlans",
        "Effect": "Allow",
        "Action": [
            "savingsplans:DescribeSavingsPlans",
            "savingsplans:DescribeSavingsPlanRates",
        ],
        "Resource": arn("savingsplans", "", "savingsplan/*"),
    }));
    statements.push(json!({
        "Sid": "ReadOwnRole",
        "Effect": "Allow",
        "Action": &ROLE_POSTURE_ACTIONS[..4],
        "Resource": role_arn(opts),
    }));
    statements.push(json!({
        "Sid": "ReadManagedPolicies",
        "Effect": "Allow",
        "Action": &ROLE_POSTURE_ACTIONS[4..],
        "Resource": ROLE_POSTURE_POLICY_RESOURCE,
    }));
    statements.push(deny_management_tag_changes());
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn role_arn(opts: &TemplateOptions) -> Value {
    arn("iam", "", &format!("role/{}", opts.role_name))
}

fn deny_management_tag_changes() -> Value {
    json!({
        "Sid": "DenyManagementTagChanges",
        "Effect": "Deny",
        "Action": TAG_ACTIONS,
        "Resource": "*",
        "Condition": { "ForAnyValue:StringLike": { "aws:TagKeys": "crossguard.dev/*" } },
    })
}

fn key_audit_policy(opts: &TemplateOptions) -> Value {
    let users = arn("iam", "", "user/*");
    let mut statements = vec![
        json!({
            "Sid": "ListIamUsers",
            "Effect": "Allow",
            "Action": &KEY_AUDIT_READ_ACTIONS[..1],
            "Resource": "*",
        }),
        json!({
            "Sid": "ReadIamUserKeys",
            "Effect": "Allow",
            "Action": &KEY_AUDIT_READ_ACTIONS[1..],
            "Resource": users,
        }),
    ];
    if opts.key_audit_enforce {
        // aws:ResourceTag and iam:ResourceTag are both documented for the `user` resource;
        // aws: is the one parliament knows for this action, and matches the automated policy.
        statements.push(json!({
            "Sid": "DeactivateManagedUserKeys",
            "Effect": "Allow",
            "Action": KEY_AUDIT_ENFORCE_ACTIONS,
            "Resource": users,
            "Condition": { "StringEquals": {
                format!("aws:ResourceTag/{MANAGED_TAG}"): "true",
            }},
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn automated_policy(opts: &TemplateOptions) -> Value {
    let mut statements = Vec::new();
    // One statement per cluster: aws:ResourceTag/<key> is single-valued, so plain
    // StringEquals (not ForAnyValue) is the correct operator, and keeping clusters apart
    // makes each grant readable on its own.
    for (i, cluster) in opts.clusters.iter().enumerate() {
        let mut resources: Vec<Value> = regions(opts)
            .into_iter()
            .map(|r| {
                arn(
                    "autoscaling",
                    r,
                    "autoScalingGroup:*:autoScalingGroupName/*",
                )
            })
            .collect();
        resources.extend(nodegroup_arns(opts, cluster));
        statements.push(json!({
            "Sid": format!("ScaleInManaged{i}"),
            "Effect": "Allow",
            "Action": AUTOMATED_ACTIONS,
            "Resource": resources,
            "Condition": { "StringEquals": {
                format!("aws:ResourceTag/{MANAGED_TAG}"): "true",
                format!("aws:ResourceTag/{CLUSTER_TAG}"): cluster,
            }},
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The trust policy: only the operator principal, only with the ExternalId (both the
/// placeholders of the template's parameters). Setting a source identity is a separate
/// statement because `sts:ExternalId` is not a condition key of `sts:SetSourceIdentity`;
/// that statement only constrains the identity's value, and the session still needs
/// `sts:AssumeRole`, which requires the ExternalId.
pub fn trust_policy(opts: &TemplateOptions) -> Value {
    let mut assume = json!({ "StringEquals": { "sts:ExternalId": EXTERNAL_ID } });
    if opts.require_source_identity {
        assume["StringLike"] = json!({ "sts:SourceIdentity": SOURCE_IDENTITY_PATTERN });
    }
    let principal = json!({ "AWS": OPERATOR_PRINCIPAL });
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CrossguardOperatorAssume",
                "Effect": "Allow",
                "Principal": principal,
                "Action": "sts:AssumeRole",
                "Condition": assume,
            },
            {
                "Sid": "CrossguardOperatorSourceIdentity",
                "Effect": "Allow",
                "Principal": principal,
                "Action": "sts:SetSourceIdentity",
                "Condition": { "StringLike": { "sts:SourceIdentity": SOURCE_IDENTITY_PATTERN } },
            },
        ],
    })
}

/// Every string of `value` with `replace` applied (for rendering the placeholders).
pub(crate) fn map_strings(value: &Value, replace: &dyn Fn(&str) -> Value) -> Value {
    match value {
        Value::String(s) => replace(s),
        Value::Array(a) => Value::Array(a.iter().map(|v| map_strings(v, replace)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), map_strings(v, replace)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: Mode, clusters: &[&str]) -> TemplateOptions {
        TemplateOptions {
            account_id: Some("111122223333".into()),
            mode,
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
            regions: vec![],
            operator_principal: Some("arn:aws:iam::999988887777:role/crossguard-operator".into()),
            external_id: Some("ext-123".into()),
            generic: false,
            require_source_identity: true,
            role_name: "crossguard-access".into(),
            key_audit: false,
            key_audit_enforce: false,
        }
    }

    /// Every mode × key-audit flag combination, with a cluster so automated is valid.
    fn all_options() -> Vec<TemplateOptions> {
        let mut out = Vec::new();
        for mode in [Mode::ReadOnly, Mode::Automated] {
            for (key_audit, key_audit_enforce) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                let mut o = opts(mode, &["prod"]);
                o.key_audit = key_audit;
                o.key_audit_enforce = key_audit_enforce;
                out.push(o);
            }
        }
        out
    }

    fn statements(t: &Value) -> Vec<Value> {
        policies(t)
            .iter()
            .flat_map(|p| p["Statement"].as_array().unwrap().clone())
            .collect()
    }

    fn sorted(actions: &[&[&str]]) -> Vec<String> {
        let mut v: Vec<String> = actions.concat().iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    fn policies(t: &Value) -> Vec<Value> {
        t["Resources"]["CrossguardRole"]["Properties"]["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["PolicyDocument"].clone())
            .collect()
    }

    fn actions(stmt: &Value) -> Vec<String> {
        match &stmt["Action"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_owned()).collect(),
            _ => panic!("no Action in {stmt}"),
        }
    }

    fn allowed(t: &Value) -> Vec<String> {
        let mut out: Vec<String> = policies(t)
            .iter()
            .flat_map(|p| p["Statement"].as_array().unwrap().clone())
            .filter(|s| s["Effect"] == "Allow")
            .flat_map(|s| actions(&s))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn read_only_grants_exactly_the_read_actions() {
        for clusters in [&[][..], &["prod"][..]] {
            let t = template(&opts(Mode::ReadOnly, clusters));
            assert_eq!(
                allowed(&t),
                sorted(&[READ_ONLY_ACTIONS, ROLE_POSTURE_ACTIONS])
            );
            for a in allowed(&t) {
                assert!(!a.contains('*'), "wildcard action {a}");
                assert!(!AUTOMATED_ACTIONS.contains(&a.as_str()));
                let verb = a.split(':').nth(1).unwrap();
                assert!(
                    ["Describe", "List", "Get"]
                        .iter()
                        .any(|p| verb.starts_with(p)),
                    "mutating action {a}"
                );
            }
        }
    }

    #[test]
    fn each_mode_and_flag_grants_exactly_its_action_set() {
        for o in all_options() {
            let mut want: Vec<&[&str]> = vec![READ_ONLY_ACTIONS, ROLE_POSTURE_ACTIONS];
            if o.mode == Mode::Automated {
                want.push(AUTOMATED_ACTIONS);
            }
            if o.key_audit || o.key_audit_enforce {
                want.push(KEY_AUDIT_READ_ACTIONS);
            }
            if o.key_audit_enforce {
                want.push(KEY_AUDIT_ENFORCE_ACTIONS);
            }
            let t = template(&o);
            assert_eq!(
                allowed(&t),
                sorted(&want),
                "mode {:?} key_audit {} enforce {}",
                o.mode,
                o.key_audit,
                o.key_audit_enforce
            );
        }
    }

    #[test]
    fn role_posture_reads_are_scoped_to_the_role_and_managed_policies() {
        for o in all_options() {
            let t = template(&o);
            let by_sid = |sid: &str| {
                statements(&t)
                    .into_iter()
                    .find(|s| s["Sid"] == sid)
                    .unwrap_or_else(|| panic!("no {sid}"))
            };
            let own = by_sid("ReadOwnRole");
            assert_eq!(
                actions(&own),
                [
                    "iam:GetRole",
                    "iam:ListRolePolicies",
                    "iam:GetRolePolicy",
                    "iam:ListAttachedRolePolicies"
                ]
            );
            assert_eq!(
                own["Resource"],
                json!({ "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/crossguard-access" })
            );
            let managed = by_sid("ReadManagedPolicies");
            assert_eq!(actions(&managed), ["iam:GetPolicy", "iam:GetPolicyVersion"]);
            assert_eq!(
                managed["Resource"],
                json!({ "Fn::Sub": ROLE_POSTURE_POLICY_RESOURCE })
            );
        }
    }

    #[test]
    fn key_audit_reads_are_scoped_to_users() {
        let mut o = opts(Mode::ReadOnly, &[]);
        o.key_audit = true;
        let t = template(&o);
        for s in statements(&t) {
            let acts = actions(&s);
            if acts.iter().any(|a| a == "iam:ListUsers") {
                // ListUsers supports no resource-level permissions.
                assert_eq!(acts, ["iam:ListUsers"]);
                assert_eq!(s["Resource"], "*");
            } else if acts
                .iter()
                .any(|a| KEY_AUDIT_READ_ACTIONS.contains(&a.as_str()))
            {
                assert_eq!(
                    s["Resource"],
                    json!({ "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*" })
                );
            }
        }
    }

    #[test]
    fn update_access_key_always_carries_the_managed_tag_condition() {
        let mut seen = 0;
        for o in all_options() {
            for s in statements(&template(&o)) {
                if s["Effect"] != "Allow" || !actions(&s).iter().any(|a| a == "iam:UpdateAccessKey")
                {
                    continue;
                }
                seen += 1;
                assert_eq!(actions(&s), ["iam:UpdateAccessKey"]);
                assert_eq!(
                    s["Condition"],
                    json!({ "StringEquals": { format!("aws:ResourceTag/{MANAGED_TAG}"): "true" } })
                );
                assert_eq!(
                    s["Resource"],
                    json!({ "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*" })
                );
                assert!(o.key_audit_enforce);
            }
        }
        // Granted in exactly the four enforce combinations (2 modes × key_audit on/off).
        assert_eq!(seen, 4);
    }

    #[test]
    fn eks_reads_are_scoped_to_the_clusters() {
        let t = template(&opts(Mode::ReadOnly, &["prod"]));
        let text = t.to_string();
        assert!(text.contains(":cluster/prod\""));
        assert!(text.contains(":nodegroup/prod/*\""));
        // Grants only: the tag-change Deny names eks:TagResource on "*" on purpose.
        for s in policies(&t)[0]["Statement"].as_array().unwrap() {
            if s["Effect"] == "Allow" && actions(s).iter().any(|a| a.starts_with("eks:")) {
                assert_ne!(s["Resource"], "*");
            }
        }
    }

    #[test]
    fn automated_mutations_all_carry_both_tag_conditions() {
        let t = template(&opts(Mode::Automated, &["prod", "staging"]));
        let mut seen = Vec::new();
        for p in policies(&t) {
            for s in p["Statement"].as_array().unwrap() {
                let acts = actions(s);
                if s["Effect"] != "Allow"
                    || !acts.iter().any(|a| AUTOMATED_ACTIONS.contains(&a.as_str()))
                {
                    continue;
                }
                let eq = &s["Condition"]["StringEquals"];
                assert_eq!(eq[format!("aws:ResourceTag/{MANAGED_TAG}")], "true", "{s}");
                let cluster = eq[format!("aws:ResourceTag/{CLUSTER_TAG}")]
                    .as_str()
                    .unwrap();
                assert!(
                    s["Resource"]
                        .to_string()
                        .contains(&format!("nodegroup/{cluster}/"))
                );
                seen.push(cluster.to_owned());
                let mut a = acts.clone();
                a.sort();
                let mut want: Vec<String> =
                    AUTOMATED_ACTIONS.iter().map(|s| s.to_string()).collect();
                want.sort();
                assert_eq!(a, want);
            }
        }
        assert_eq!(seen, ["prod", "staging"]);
        assert_eq!(
            allowed(&t),
            sorted(&[READ_ONLY_ACTIONS, ROLE_POSTURE_ACTIONS, AUTOMATED_ACTIONS])
        );
    }

    #[test]
    fn every_template_denies_management_tag_changes_including_iam_users() {
        for o in all_options() {
            let deny: Vec<Value> = statements(&template(&o))
                .into_iter()
                .filter(|s| s["Effect"] == "Deny")
                .collect();
            assert_eq!(deny.len(), 1);
            let mut got = actions(&deny[0]);
            got.sort();
            assert_eq!(got, sorted(&[TAG_ACTIONS]));
            for a in [
                "iam:TagUser",
                "iam:UntagUser",
                "eks:TagResource",
                "ec2:CreateTags",
            ] {
                assert!(got.iter().any(|g| g == a), "{a} not denied");
            }
            assert_eq!(deny[0]["Resource"], "*");
            assert_eq!(
                deny[0]["Condition"]["ForAnyValue:StringLike"]["aws:TagKeys"],
                "crossguard.dev/*"
            );
        }
    }

    #[test]
    fn trust_policy_is_only_the_operator_with_external_id() {
        let operator = json!({ "AWS": { "Ref": "OperatorPrincipal" } });
        for require in [true, false] {
            for mode in [Mode::ReadOnly, Mode::Automated] {
                let mut o = opts(mode, &["prod"]);
                o.require_source_identity = require;
                let t = template(&o);
                let props = &t["Resources"]["CrossguardRole"]["Properties"];
                assert_eq!(props["MaxSessionDuration"], 3600);
                let stmts = props["AssumeRolePolicyDocument"]["Statement"]
                    .as_array()
                    .unwrap();
                assert_eq!(stmts.len(), 2);
                for s in stmts {
                    assert_eq!(s["Effect"], "Allow");
                    assert_eq!(s["Principal"], operator);
                    assert!(s.get("NotPrincipal").is_none());
                    assert_eq!(
                        s["Condition"]["StringLike"]["sts:SourceIdentity"].as_str(),
                        if require || s["Action"] == "sts:SetSourceIdentity" {
                            Some(SOURCE_IDENTITY_PATTERN)
                        } else {
                            None
                        }
                    );
                }
                let assume = &stmts[0];
                assert_eq!(assume["Action"], "sts:AssumeRole");
                assert_eq!(
                    assume["Condition"]["StringEquals"],
                    json!({ "sts:ExternalId": { "Ref": "ExternalId" } })
                );
                assert_eq!(t["Parameters"]["ExternalId"]["Default"], "ext-123");
                assert_eq!(
                    t["Parameters"]["OperatorPrincipal"]["Default"],
                    "arn:aws:iam::999988887777:role/crossguard-operator"
                );
                assert_eq!(stmts[1]["Action"], "sts:SetSourceIdentity");
            }
        }
    }

    #[test]
    fn no_managed_policies() {
        for mode in [Mode::ReadOnly, Mode::Automated] {
            let t = template(&opts(mode, &["prod"]));
            let props = &t["Resources"]["CrossguardRole"]["Properties"];
            assert!(props.get("ManagedPolicyArns").is_none());
            assert!(!t.to_string().contains("arn:aws:iam::aws:policy"));
        }
    }

    #[test]
    fn validate_rejects_bad_input() {
        assert_eq!(opts(Mode::Automated, &["prod"]).validate(), Ok(()));
        assert_eq!(opts(Mode::ReadOnly, &[]).validate(), Ok(()));
        assert_eq!(
            opts(Mode::Automated, &[]).validate(),
            Err(TemplateError::NoCluster)
        );
        let long = "c".repeat(101);
        for bad in [
            "a/b",
            "",
            "-prod",
            "_prod",
            "Bad Cluster;rm -rf",
            long.as_str(),
        ] {
            assert_eq!(
                opts(Mode::Automated, &["prod", bad]).validate(),
                Err(TemplateError::ClusterName(bad.into()))
            );
        }
        assert_eq!(
            opts(Mode::Automated, &["0prod", "Prod_eu-1", &"c".repeat(100)]).validate(),
            Ok(())
        );
        let mut o = opts(Mode::ReadOnly, &[]);
        o.account_id = Some("123".into());
        assert_eq!(o.validate(), Err(TemplateError::AccountId("123".into())));
        let mut o = opts(Mode::ReadOnly, &[]);
        o.operator_principal = Some("crossguard".into());
        let err = o.validate().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("operator principal \"crossguard\" is not an IAM role ARN"),
            "{err}"
        );
        for bad in [" ", "x", "a b", "a\"b", &"e".repeat(1225)] {
            let mut o = opts(Mode::ReadOnly, &[]);
            o.external_id = Some(bad.into());
            assert_eq!(o.validate(), Err(TemplateError::ExternalId(bad.into())));
        }
        let mut o = opts(Mode::ReadOnly, &[]);
        o.regions = vec!["us-east-1".into(), "us-east-1;id".into()];
        assert_eq!(
            o.validate(),
            Err(TemplateError::Region("us-east-1;id".into()))
        );
        // Per-account templates need all three values; the generic one none of the
        // per-account ones.
        let mut o = opts(Mode::ReadOnly, &[]);
        o.external_id = None;
        assert_eq!(o.validate(), Err(TemplateError::MissingExternalId));
        o.account_id = None;
        assert_eq!(o.validate(), Err(TemplateError::MissingAccountId));
        o.generic = true;
        assert_eq!(o.validate(), Ok(()));
        o.operator_principal = None;
        assert_eq!(o.validate(), Ok(()));
        o.external_id = Some("ext-123".into());
        assert_eq!(o.validate(), Err(TemplateError::GenericWithAccountValues));
        let mut o = opts(Mode::ReadOnly, &[]);
        o.operator_principal = None;
        assert_eq!(o.validate(), Err(TemplateError::MissingOperatorPrincipal));
        for bad in ["", "a/b", "${AWS::Region}", &"r".repeat(65)] {
            let mut o = opts(Mode::ReadOnly, &[]);
            o.role_name = bad.into();
            assert_eq!(o.validate(), Err(TemplateError::RoleName(bad.into())));
        }
        let mut o = opts(Mode::ReadOnly, &[]);
        o.role_name = "Crossguard+Access=1,2.x@y_z-".into();
        assert_eq!(o.validate(), Ok(()));
    }

    #[test]
    fn regions_scope_every_eks_and_autoscaling_arn() {
        let mut o = opts(Mode::Automated, &["prod"]);
        o.regions = vec!["eu-west-1".into(), "us-east-1".into()];
        let t = template(&o);
        let mut scoped = 0;
        for s in statements(&t) {
            let resources = match &s["Resource"] {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for r in resources {
                let Some(arn) = r["Fn::Sub"].as_str() else {
                    continue;
                };
                let arn = arn
                    .replace(PARTITION, "aws")
                    .replace(ACCOUNT, "111122223333");
                let region = arn.split(':').nth(3).unwrap();
                if arn.contains(":eks:") || arn.contains(":autoscaling:") {
                    assert!(["eu-west-1", "us-east-1"].contains(&region), "{arn}");
                    scoped += 1;
                }
            }
        }
        // Cluster, nodegroup (read), ASG and nodegroup (scale-in) ARNs, in two regions.
        assert_eq!(scoped, 8);
        assert_eq!(
            t["Metadata"]["crossguard"]["regions"],
            json!(["eu-west-1", "us-east-1"])
        );
    }

    #[test]
    fn templates_carry_both_version_stamps() {
        let t = template(&opts(Mode::ReadOnly, &[]));
        assert_eq!(
            t["Metadata"]["crossguard"]["templateVersion"],
            TEMPLATE_VERSION
        );
        assert_eq!(t["Metadata"]["crossguard"]["version"], CROSSGUARD_VERSION);
        let description = t["Description"].as_str().unwrap();
        assert!(description.contains(&format!("crossguard {CROSSGUARD_VERSION}")));
        assert!(description.contains(&format!("template version {TEMPLATE_VERSION}")));
        assert_eq!(
            t["Outputs"]["RoleArn"]["Value"],
            json!({ "Fn::GetAtt": ["CrossguardRole", "Arn"] })
        );
    }

    #[test]
    fn generic_template_has_parameters_without_account_defaults() {
        let mut o = opts(Mode::ReadOnly, &[]);
        o.generic = true;
        o.account_id = None;
        o.external_id = None;
        let t = template(&o);
        assert!(t["Parameters"]["ExternalId"].get("Default").is_none());
        assert!(!t.to_string().contains("111122223333"));
        assert_eq!(
            t["Parameters"]["OperatorPrincipal"]["Default"],
            "arn:aws:iam::999988887777:role/crossguard-operator"
        );
    }

    #[test]
    fn mode_accepts_the_cli_and_the_crd_spellings() {
        use clap::ValueEnum;
        for (spelling, mode) in [
            ("read-only", Mode::ReadOnly),
            ("ReadOnly", Mode::ReadOnly),
            ("automated", Mode::Automated),
            ("Automated", Mode::Automated),
        ] {
            assert_eq!(Mode::from_str(spelling, false), Ok(mode), "{spelling}");
        }
        assert!(Mode::from_str("readonly", false).is_err());
    }
}
