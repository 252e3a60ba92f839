//! What both controllers need to get a session for a CustomerAccount: the tenant its calls
//! are recorded for, the broker's parameters, and how a broker failure reads in status.

use std::time::Duration;

use kube::ResourceExt;

use super::failure::{Category, Failure, Retry};
use crate::api::CustomerAccount;
use crate::audit::Tenant;
use crate::credentials::{BrokerError, SessionParams};

/// The CustomerAccount's UID: the key of its session, ExternalId owner and store prefix.
pub fn uid(account: &CustomerAccount) -> String {
    account.metadata.uid.clone().unwrap_or_default()
}

/// Who calls made for this account (and optionally one of its clusters) are made for.
pub fn tenant(account: &CustomerAccount, cluster: Option<String>) -> Tenant {
    Tenant {
        uid: uid(account),
        account_id: account.spec.account_id.clone(),
        namespace: account.namespace().unwrap_or_default(),
        cluster,
    }
}

/// What the broker needs for this account and `role_arn` (its `spec.roleArn`, which the
/// caller checked is set). The session's region is the account's first region (STS is
/// global; the region only picks the regional STS endpoint).
pub fn session_params(
    account: &CustomerAccount,
    role_arn: &str,
    external_id: String,
    duration: Duration,
) -> SessionParams {
    SessionParams {
        uid: uid(account),
        namespace: account.namespace().unwrap_or_default(),
        name: account.name_any(),
        account_id: account.spec.account_id.clone(),
        role_arn: role_arn.to_string(),
        external_id,
        duration,
        region: account
            .spec
            .regions
            .first()
            .cloned()
            .unwrap_or_else(|| "us-east-1".into()),
    }
}

/// The category of a broker failure (the broker's own reason word).
pub fn category(e: &BrokerError) -> Category {
    match e.reason() {
        "AssumeRoleDenied" => Category::AssumeRoleDenied,
        "RoleNotFound" => Category::RoleNotFound,
        "OperatorCredentialsInvalid" => Category::OperatorCredentialsInvalid,
        "AwsUnavailable" => Category::AwsUnavailable,
        "IdentityCheckFailed" => Category::IdentityCheckFailed,
        "AccountMismatch" => Category::AccountMismatch,
        _ => Category::AssumeRoleFailed,
    }
}

/// A message a customer's engineer can act on.
pub fn explain(account: &CustomerAccount, e: &BrokerError) -> String {
    let role = account
        .spec
        .role_arn
        .as_deref()
        .unwrap_or("(no spec.roleArn)");
    match category(e) {
        Category::AssumeRoleDenied => format!(
            "AWS denied sts:AssumeRole on {role}. Check that the role exists, that its trust policy allows crossguard's principal and requires sts:ExternalId equal to status.externalId, and that sts:SourceIdentity is allowed. ({e})"
        ),
        Category::RoleNotFound => format!(
            "The role {role} does not exist in account {}. Create it from `crossguard onboarding-template`. ({e})",
            account.spec.account_id
        ),
        Category::AccountMismatch => format!(
            "{e}. Point spec.roleArn at a role in account {}.",
            account.spec.account_id
        ),
        Category::OperatorCredentialsInvalid => format!(
            "crossguard's own AWS credentials were rejected; check the operator's IRSA/Pod Identity setup. ({e})"
        ),
        Category::AwsUnavailable => {
            format!("AWS could not be reached or throttled us; retrying with backoff. ({e})")
        }
        _ => e.to_string(),
    }
}

/// A broker failure as the CustomerAccount's `CredentialsValid` stage: transient ones back
/// off, customer-side ones are looked at again after `retry`.
pub fn failure(account: &CustomerAccount, e: &BrokerError, retry: Duration) -> Failure {
    Failure::new(
        category(e),
        explain(account, e),
        if e.is_transient() {
            Retry::Backoff
        } else {
            Retry::After(retry)
        },
    )
    .on("CredentialsValid")
}
