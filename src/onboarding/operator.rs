//! What the operator's own IAM role needs (`crossguard operator-policy`): the calls the
//! operator makes with its own identity, never with a customer session.
//!
//! - `sts:AssumeRole` and `sts:SetSourceIdentity` on the customers' crossguard roles
//!   (`crate::aws::sdk` `SdkSts::assume_role` sets a source identity on every session, which
//!   needs `sts:SetSourceIdentity` in the caller's policy as well as in the role's trust).
//! - `pricing:GetProducts` for on-demand prices the bundled table lacks
//!   (`crate::controller::prices`, `SdkFactory::operator_pricing`), unless the operator runs
//!   with `--no-price-list-api`.
//! - With an `s3://` store (`crate::store`, through `object_store`): `s3:ListBucket` under
//!   the prefix, `s3:GetObject` (GET and HEAD), `s3:PutObject` (PUT and the multipart
//!   upload calls), `s3:AbortMultipartUpload` (a failed large write) and `s3:DeleteObject`
//!   (retention and erasure).
//! - With SSE-KMS on that store: `kms:GenerateDataKey` (writes) and `kms:Decrypt` (reads,
//!   and completing multipart uploads) on that key.
//!
//! The trust policy lets the operator's Kubernetes ServiceAccount in: IRSA
//! (`sts:AssumeRoleWithWebIdentity` from the cluster's OIDC provider, for exactly that
//! ServiceAccount) or EKS Pod Identity (`pods.eks.amazonaws.com`).

use serde_json::{Value, json};

/// The S3 calls' IAM actions on objects under the store's prefix.
pub const STORE_OBJECT_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
];
/// The KMS actions SSE-KMS needs from whoever reads and writes the objects.
pub const STORE_KMS_ACTIONS: &[&str] = &["kms:GenerateDataKey", "kms:Decrypt"];
/// Assuming a customer role with a source identity.
pub const ASSUME_ACTIONS: &[&str] = &["sts:AssumeRole", "sts:SetSourceIdentity"];
/// The AWS Price List Query API.
pub const PRICING_ACTIONS: &[&str] = &["pricing:GetProducts"];

/// Where the operator keeps its reports (`--store-url s3://bucket[/prefix]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Store {
    /// The bucket's name.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
}

impl std::str::FromStr for S3Store {
    type Err = String;

    /// Parses `s3://bucket[/prefix]`, the operator's `--store-url` syntax.
    fn from_str(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            format!("{url:?} is not an s3:// URL (the operator's --store-url, s3://bucket/prefix)")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3 bucket naming rules: 3-63 of lowercase letters, digits, '.' and '-'.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(format!(
                "{bucket:?} is not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.contains(['*', '?', '$', '"']) {
            return Err(format!("store prefix {prefix:?} may not hold * ? $ or \""));
        }
        Ok(S3Store {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// How the operator's pod gets its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// IAM Roles for Service Accounts: the cluster's OIDC provider.
    Irsa {
        /// `arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>`.
        oidc_provider_arn: String,
        /// The operator's namespace.
        namespace: String,
        /// The operator's ServiceAccount.
        service_account: String,
    },
    /// EKS Pod Identity (the association names namespace and ServiceAccount).
    PodIdentity,
}

/// Inputs of [`permissions_policy`].
#[derive(Clone, Debug)]
pub struct OperatorPolicyOptions {
    /// The customers' role name, or a pattern with `*` (the template's `--role-name`,
    /// `crossguard-access` by default).
    pub role_name: String,
    /// Customer account ids the operator may enter; empty means any account (the
    /// customers' trust policies, each with its ExternalId, still decide).
    pub accounts: Vec<String>,
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// Whether the operator calls the Price List API (`--no-price-list-api` not set).
    pub price_list_api: bool,
    /// The S3 store, if any.
    pub store: Option<S3Store>,
    /// The SSE-KMS key ARN, if any.
    pub kms_key_arn: Option<String>,
}

/// Why the operator policy cannot be printed for these inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorPolicyError {
    /// Not an IAM role name pattern.
    #[error("invalid role name {0:?}: 1-64 letters, digits, +=,.@_- and * wildcards")]
    RoleName(String),
    /// Not a 12-digit account id.
    #[error("account id {0:?} is not 12 digits")]
    AccountId(String),
    /// Unknown partition.
    #[error("partition {0:?} is not aws, aws-cn or aws-us-gov")]
    Partition(String),
    /// IAM needs the key's ARN, not an alias or a bare id.
    #[error("KMS key {0:?} is not a key ARN (arn:aws:kms:<region>:<account>:key/<id>)")]
    KmsKey(String),
    /// A KMS key without an S3 store has nothing to encrypt.
    #[error("--kms-key needs --store s3://…: the key encrypts the S3 store")]
    KmsWithoutStore,
    /// Not an OIDC provider ARN.
    #[error(
        "OIDC provider {0:?} is not an IAM OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/<issuer host and path>; see aws eks describe-cluster --query cluster.identity.oidc.issuer)"
    )]
    OidcProvider(String),
    /// Not a Kubernetes name.
    #[error("{0:?} is not a Kubernetes namespace or ServiceAccount name")]
    KubernetesName(String),
}

impl OperatorPolicyOptions {
    /// Rejects what would print a broken or wider-than-meant policy.
    pub fn validate(&self) -> Result<(), OperatorPolicyError> {
        let pattern_ok = super::is_role_name(&self.role_name.replace('*', "x"));
        if !pattern_ok {
            return Err(OperatorPolicyError::RoleName(self.role_name.clone()));
        }
        if let Some(a) = self
            .accounts
            .iter()
            .find(|a| !crate::api::validate::is_account_id(a))
        {
            return Err(OperatorPolicyError::AccountId(a.clone()));
        }
        if !["aws", "aws-cn", "aws-us-gov"].contains(&self.partition.as_str()) {
            return Err(OperatorPolicyError::Partition(self.partition.clone()));
        }
        if let Some(key) = &self.kms_key_arn {
            if self.store.is_none() {
                return Err(OperatorPolicyError::KmsWithoutStore);
            }
            if !is_kms_key_arn(key) {
                return Err(OperatorPolicyError::KmsKey(key.clone()));
            }
        }
        Ok(())
    }
}

fn is_kms_key_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "kms"
        && crate::api::validate::is_region(parts[3])
        && crate::api::validate::is_account_id(parts[4])
        && parts[5].strip_prefix("key/").is_some_and(|id| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl Trust {
    /// Rejects what is not an OIDC provider ARN or a Kubernetes name.
    pub fn validate(&self) -> Result<(), OperatorPolicyError> {
        if let Trust::Irsa {
            oidc_provider_arn,
            namespace,
            service_account,
        } = self
        {
            if oidc_issuer(oidc_provider_arn).is_none() {
                return Err(OperatorPolicyError::OidcProvider(oidc_provider_arn.clone()));
            }
            for name in [namespace, service_account] {
                if !is_dns_label_or_subdomain(name) {
                    return Err(OperatorPolicyError::KubernetesName(name.clone()));
                }
            }
        }
        Ok(())
    }
}

/// The issuer (host and path, no scheme) of an IAM OIDC provider ARN.
fn oidc_issuer(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("iam::")?;
    let (account, issuer) = rest.split_once(":oidc-provider/")?;
    let issuer_ok = !issuer.is_empty()
        && issuer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./-_".contains(&b));
    (partition.starts_with("aws") && crate::api::validate::is_account_id(account) && issuer_ok)
        .then_some(issuer)
}

/// A Kubernetes object name (RFC 1123 subdomain: lowercase letters, digits, `-`, `.`).
fn is_dns_label_or_subdomain(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// The operator role's permissions policy.
pub fn permissions_policy(opts: &OperatorPolicyOptions) -> Value {
    let p = &opts.partition;
    let accounts: Vec<&str> = if opts.accounts.is_empty() {
        vec!["*"]
    } else {
        opts.accounts.iter().map(String::as_str).collect()
    };
    let mut statements = vec![json!({
        "Sid": "AssumeCustomerRoles",
        "Effect": "Allow",
        "Action": ASSUME_ACTIONS,
        "Resource": accounts
            .iter()
            .map(|a| format!("arn:{p}:iam::{a}:role/{}", opts.role_name))
            .collect::<Vec<_>>(),
    })];
    if opts.price_list_api {
        // The Price List Query API has no resource-level permissions.
        statements.push(json!({
            "Sid": "ReadPriceList",
            "Effect": "Allow",
            "Action": PRICING_ACTIONS,
            "Resource": "*",
        }));
    }
    if let Some(store) = &opts.store {
        let objects = if store.prefix.is_empty() {
            format!("arn:{p}:s3:::{}/*", store.bucket)
        } else {
            format!("arn:{p}:s3:::{}/{}/*", store.bucket, store.prefix)
        };
        let mut list = json!({
            "Sid": "ListStore",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": format!("arn:{p}:s3:::{}", store.bucket),
        });
        if !store.prefix.is_empty() {
            // Listing only under the operator's prefix.
            list["Condition"] =
                json!({ "StringLike": { "s3:prefix": [format!("{}/*", store.prefix)] } });
        }
        statements.push(list);
        statements.push(json!({
            "Sid": "ReadWriteStore",
            "Effect": "Allow",
            "Action": STORE_OBJECT_ACTIONS,
            "Resource": objects,
        }));
    }
    if let Some(key) = &opts.kms_key_arn {
        statements.push(json!({
            "Sid": "EncryptStore",
            "Effect": "Allow",
            "Action": STORE_KMS_ACTIONS,
            "Resource": key,
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The operator role's trust policy.
pub fn trust_policy(trust: &Trust) -> Value {
    match trust {
        Trust::Irsa {
            oidc_provider_arn,
            namespace,
            service_account,
        } => {
            let issuer = oidc_issuer(oidc_provider_arn).unwrap_or_default();
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "CrossguardServiceAccount",
                    "Effect": "Allow",
                    "Principal": { "Federated": oidc_provider_arn },
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": { "StringEquals": {
                        format!("{issuer}:sub"): format!("system:serviceaccount:{namespace}:{service_account}"),
                        format!("{issuer}:aud"): "sts.amazonaws.com",
                    }},
                }],
            })
        }
        // Pod Identity's agent assumes the role and tags the session with the pod's
        // namespace, ServiceAccount and cluster; the association decides which
        // ServiceAccount gets it.
        Trust::PodIdentity => json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "EksPodIdentity",
                "Effect": "Allow",
                "Principal": { "Service": "pods.eks.amazonaws.com" },
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> OperatorPolicyOptions {
        OperatorPolicyOptions {
            role_name: "crossguard-access".into(),
            accounts: vec![],
            partition: "aws".into(),
            price_list_api: true,
            store: Some("s3://reports-bucket/crossguard".parse().unwrap()),
            kms_key_arn: Some(
                "arn:aws:kms:us-east-1:999988887777:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                    .into(),
            ),
        }
    }

    fn actions(policy: &Value) -> Vec<String> {
        let mut out: Vec<String> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn grants_exactly_the_calls_the_operator_makes_with_its_own_identity() {
        let policy = permissions_policy(&opts());
        let mut want: Vec<String> = [
            ASSUME_ACTIONS,
            PRICING_ACTIONS,
            &["s3:ListBucket"],
            STORE_OBJECT_ACTIONS,
            STORE_KMS_ACTIONS,
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect();
        want.sort();
        assert_eq!(actions(&policy), want);
        let stmts = policy["Statement"].as_array().unwrap();
        assert_eq!(
            stmts[0]["Resource"],
            json!(["arn:aws:iam::*:role/crossguard-access"])
        );
        let list = stmts.iter().find(|s| s["Sid"] == "ListStore").unwrap();
        assert_eq!(list["Resource"], "arn:aws:s3:::reports-bucket");
        assert_eq!(
            list["Condition"]["StringLike"]["s3:prefix"],
            json!(["crossguard/*"])
        );
        let rw = stmts.iter().find(|s| s["Sid"] == "ReadWriteStore").unwrap();
        assert_eq!(rw["Resource"], "arn:aws:s3:::reports-bucket/crossguard/*");
    }

    #[test]
    fn without_store_or_price_list_only_assume_role_is_granted() {
        let o = OperatorPolicyOptions {
            store: None,
            kms_key_arn: None,
            price_list_api: false,
            accounts: vec!["111122223333".into(), "444455556666".into()],
            ..opts()
        };
        let policy = permissions_policy(&o);
        assert_eq!(
            actions(&policy),
            ["sts:AssumeRole", "sts:SetSourceIdentity"]
        );
        assert_eq!(
            policy["Statement"][0]["Resource"],
            json!([
                "arn:aws:iam::111122223333:role/crossguard-access",
                "arn:aws:iam::444455556666:role/crossguard-access"
            ])
        );
    }

    #[test]
    fn validate_rejects_bad_input() {
        assert_eq!(opts().validate(), Ok(()));
        let bad = [
            OperatorPolicyOptions {
                role_name: "a/b".into(),
                ..opts()
            },
            OperatorPolicyOptions {
                accounts: vec!["123".into()],
                ..opts()
            },
            OperatorPolicyOptions {
                partition: "aws-eu".into(),
                ..opts()
            },
            OperatorPolicyOptions {
                kms_key_arn: Some("alias/reports".into()),
                ..opts()
            },
            OperatorPolicyOptions {
                store: None,
                ..opts()
            },
        ];
        for o in bad {
            assert!(o.validate().is_err(), "{o:?}");
        }
        for url in ["s3://", "s3://A_B", "file:///tmp", "s3://bucket/a*"] {
            assert!(url.parse::<S3Store>().is_err(), "{url}");
        }
        assert_eq!(
            "s3://b-1.x/".parse::<S3Store>().unwrap(),
            S3Store {
                bucket: "b-1.x".into(),
                prefix: String::new()
            }
        );
    }

    #[test]
    fn irsa_trusts_exactly_the_service_account() {
        let trust = Trust::Irsa {
            oidc_provider_arn:
                "arn:aws:iam::999988887777:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123"
                    .into(),
            namespace: "crossguard".into(),
            service_account: "crossguard".into(),
        };
        assert_eq!(trust.validate(), Ok(()));
        let doc = trust_policy(&trust);
        let cond = &doc["Statement"][0]["Condition"]["StringEquals"];
        assert_eq!(
            cond["oidc.eks.us-east-1.amazonaws.com/id/ABC123:sub"],
            "system:serviceaccount:crossguard:crossguard"
        );
        assert_eq!(
            cond["oidc.eks.us-east-1.amazonaws.com/id/ABC123:aud"],
            "sts.amazonaws.com"
        );
        for bad in [
            Trust::Irsa {
                oidc_provider_arn: "oidc.eks.us-east-1.amazonaws.com/id/ABC".into(),
                namespace: "crossguard".into(),
                service_account: "crossguard".into(),
            },
            Trust::Irsa {
                oidc_provider_arn:
                    "arn:aws:iam::999988887777:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/A"
                        .into(),
                namespace: "Cross Guard".into(),
                service_account: "crossguard".into(),
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
