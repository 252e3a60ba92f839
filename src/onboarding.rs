//! CloudFormation templates a customer deploys to let crossguard in: one IAM role, trusted
//! only by the operator's principal with the account's ExternalId, granting exactly the
//! calls crossguard makes (read-only) plus, in automated mode, tag-conditioned mutations.

use serde_json::{Value, json};

/// Every read call crossguard makes in a customer account (`sts:GetCallerIdentity` is always
/// allowed by AWS and cannot be granted, so it is not listed).
pub const READ_ONLY_ACTIONS: &[&str] = &[
    "eks:DescribeCluster",
    "eks:ListNodegroups",
    "eks:DescribeNodegroup",
    "autoscaling:DescribeAutoScalingGroups",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
];

/// Mutating calls granted only in automated mode, each only on tag-managed resources.
pub const AUTOMATED_ACTIONS: &[&str] = &[
    "autoscaling:TerminateInstanceInAutoScalingGroup",
    "eks:UpdateNodegroupConfig",
];

/// Tagging calls explicitly denied on any `crossguard.dev/*` key.
pub const TAG_ACTIONS: &[&str] = &[
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:DeleteTags",
    "eks:TagResource",
    "eks:UntagResource",
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
    ReadOnly,
    /// Read-only plus tag-conditioned scale-in calls.
    Automated,
}

/// Inputs of [`template`].
#[derive(Clone, Debug)]
pub struct TemplateOptions {
    /// The customer's AWS account id (12 digits).
    pub account_id: String,
    /// Read-only or automated permissions.
    pub mode: Mode,
    /// EKS cluster names; scopes the EKS permissions (required in automated mode).
    pub clusters: Vec<String>,
    /// ARN of the operator's IAM role, the only principal trusted.
    pub operator_principal: String,
    /// The CustomerAccount's status.externalId.
    pub external_id: String,
    /// Also require `sts:SourceIdentity` like `crossguard-*` on every session.
    pub require_source_identity: bool,
    /// Name of the role created.
    pub role_name: String,
}

/// Why [`TemplateOptions::validate`] refused the options. The messages name the flag's
/// value so the person running `crossguard onboarding-template` can correct it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// An AWS account id is exactly 12 decimal digits.
    #[error("account id {0:?} is not 12 digits")]
    AccountId(String),
    /// The trusted principal must be an IAM ARN (`arn:…`).
    #[error("operator principal {0:?} is not an ARN")]
    OperatorPrincipal(String),
    /// Without an ExternalId the trust policy would not defend against a confused deputy.
    #[error("external id is empty")]
    EmptyExternalId,
    /// Automated permissions are scoped to named clusters; there is no "every cluster".
    #[error("automated mode needs at least one --cluster")]
    NoCluster,
    /// EKS cluster names are letters, digits, `-` and `_` (they end up inside ARNs).
    #[error("invalid cluster name {0:?}")]
    ClusterName(String),
}

impl TemplateOptions {
    /// Rejects options that would produce a useless or unsafe template.
    pub fn validate(&self) -> Result<(), TemplateError> {
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TemplateError::AccountId(self.account_id.clone()));
        }
        if !self.operator_principal.starts_with("arn:") {
            return Err(TemplateError::OperatorPrincipal(
                self.operator_principal.clone(),
            ));
        }
        if self.external_id.trim().is_empty() {
            return Err(TemplateError::EmptyExternalId);
        }
        if self.mode == Mode::Automated && self.clusters.is_empty() {
            return Err(TemplateError::NoCluster);
        }
        if let Some(c) = self.clusters.iter().find(|c| {
            c.is_empty()
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }) {
            return Err(TemplateError::ClusterName(c.clone()));
        }
        Ok(())
    }
}

fn sub(s: String) -> Value {
    json!({ "Fn::Sub": s })
}

fn cluster_arn(name: &str) -> Value {
    sub(format!(
        "arn:${{AWS::Partition}}:eks:*:${{AWS::AccountId}}:cluster/{name}"
    ))
}

fn nodegroup_arn(name: &str) -> Value {
    sub(format!(
        "arn:${{AWS::Partition}}:eks:*:${{AWS::AccountId}}:nodegroup/{name}/*"
    ))
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
            "Resource": names.iter().map(|c| cluster_arn(c)).collect::<Vec<_>>(),
        }),
        json!({
            "Sid": "ReadEksNodegroups",
            "Effect": "Allow",
            "Action": ["eks:DescribeNodegroup"],
            "Resource": names.iter().map(|c| nodegroup_arn(c)).collect::<Vec<_>>(),
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
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn automated_policy(opts: &TemplateOptions) -> Value {
    let mut statements = Vec::new();
    // One statement per cluster: aws:ResourceTag/<key> is single-valued, so plain
    // StringEquals (not ForAnyValue) is the correct operator, and keeping clusters apart
    // makes each grant readable on its own.
    for (i, cluster) in opts.clusters.iter().enumerate() {
        statements.push(json!({
            "Sid": format!("ScaleInManaged{i}"),
            "Effect": "Allow",
            "Action": AUTOMATED_ACTIONS,
            "Resource": [
                sub("arn:${AWS::Partition}:autoscaling:*:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/*".into()),
                nodegroup_arn(cluster),
            ],
            "Condition": { "StringEquals": {
                format!("aws:ResourceTag/{MANAGED_TAG}"): "true",
                format!("aws:ResourceTag/{CLUSTER_TAG}"): cluster,
            }},
        }));
    }
    statements.push(json!({
        "Sid": "DenyManagementTagChanges",
        "Effect": "Deny",
        "Action": TAG_ACTIONS,
        "Resource": "*",
        "Condition": { "ForAnyValue:StringLike": { "aws:TagKeys": "crossguard.dev/*" } },
    }));
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The trust policy: only the operator principal, only with the ExternalId. Setting a
/// source identity is a separate statement because `sts:ExternalId` is not a condition key
/// of `sts:SetSourceIdentity`; that statement only constrains the identity's value, and the
/// session still needs `sts:AssumeRole`, which requires the ExternalId.
pub fn trust_policy(opts: &TemplateOptions) -> Value {
    let mut assume = json!({ "StringEquals": { "sts:ExternalId": opts.external_id } });
    if opts.require_source_identity {
        assume["StringLike"] = json!({ "sts:SourceIdentity": SOURCE_IDENTITY_PATTERN });
    }
    let principal = json!({ "AWS": opts.operator_principal });
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

/// The CloudFormation template (JSON) creating the crossguard role in the customer account.
pub fn template(opts: &TemplateOptions) -> Value {
    let mut policies = vec![json!({
        "PolicyName": "crossguard-read-only",
        "PolicyDocument": read_only_policy(opts),
    })];
    if opts.mode == Mode::Automated {
        policies.push(json!({
            "PolicyName": "crossguard-automated",
            "PolicyDocument": automated_policy(opts),
        }));
    }
    let mode = match opts.mode {
        Mode::ReadOnly => "read-only",
        Mode::Automated => "automated",
    };
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!(
            "crossguard {mode} access role for account {}", opts.account_id
        ),
        "Resources": {
            "CrossguardRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": opts.role_name,
                    "Description": format!("Assumed by crossguard ({mode})"),
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": trust_policy(opts),
                    "Policies": policies,
                },
            },
        },
        "Outputs": {
            "RoleArn": {
                "Description": "Put this ARN in the CustomerAccount's spec.roleArn",
                "Value": { "Fn::GetAtt": ["CrossguardRole", "Arn"] },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: Mode, clusters: &[&str]) -> TemplateOptions {
        TemplateOptions {
            account_id: "111122223333".into(),
            mode,
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
            operator_principal: "arn:aws:iam::999988887777:role/crossguard-operator".into(),
            external_id: "ext-123".into(),
            require_source_identity: true,
            role_name: "crossguard-access".into(),
        }
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
            let mut want: Vec<String> = READ_ONLY_ACTIONS.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(allowed(&t), want);
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
    fn eks_reads_are_scoped_to_the_clusters() {
        let t = template(&opts(Mode::ReadOnly, &["prod"]));
        let text = t.to_string();
        assert!(text.contains(":cluster/prod\""));
        assert!(text.contains(":nodegroup/prod/*\""));
        for s in policies(&t)[0]["Statement"].as_array().unwrap() {
            if actions(s).iter().any(|a| a.starts_with("eks:")) {
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
                    || acts.iter().all(|a| READ_ONLY_ACTIONS.contains(&a.as_str()))
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
        let mut want: Vec<&str> = READ_ONLY_ACTIONS
            .iter()
            .chain(AUTOMATED_ACTIONS)
            .copied()
            .collect();
        want.sort();
        assert_eq!(allowed(&t), want);
    }

    #[test]
    fn automated_denies_management_tag_changes() {
        let t = template(&opts(Mode::Automated, &["prod"]));
        let deny: Vec<Value> = policies(&t)
            .iter()
            .flat_map(|p| p["Statement"].as_array().unwrap().clone())
            .filter(|s| s["Effect"] == "Deny")
            .collect();
        assert_eq!(deny.len(), 1);
        let mut got = actions(&deny[0]);
        got.sort();
        let mut want: Vec<String> = TAG_ACTIONS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(deny[0]["Resource"], "*");
        assert_eq!(
            deny[0]["Condition"]["ForAnyValue:StringLike"]["aws:TagKeys"],
            "crossguard.dev/*"
        );
    }

    #[test]
    fn trust_policy_is_only_the_operator_with_external_id() {
        let operator = json!({ "AWS": "arn:aws:iam::999988887777:role/crossguard-operator" });
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
                    json!({ "sts:ExternalId": "ext-123" })
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
        assert_eq!(
            opts(Mode::ReadOnly, &["a/b"]).validate(),
            Err(TemplateError::ClusterName("a/b".into()))
        );
        let mut o = opts(Mode::ReadOnly, &[]);
        o.account_id = "123".into();
        assert_eq!(o.validate(), Err(TemplateError::AccountId("123".into())));
        let mut o = opts(Mode::ReadOnly, &[]);
        o.operator_principal = "crossguard".into();
        let err = o.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "operator principal \"crossguard\" is not an ARN"
        );
        let mut o = opts(Mode::ReadOnly, &[]);
        o.external_id = " ".into();
        assert_eq!(o.validate(), Err(TemplateError::EmptyExternalId));
    }
}
