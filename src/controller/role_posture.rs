//! The CustomerAccount's role-posture stage: read the role crossguard assumes (GetRole,
//! ListRolePolicies, GetRolePolicy, ListAttachedRolePolicies, GetPolicy, GetPolicyVersion)
//! and check it against what crossguard asked for ([`crate::posture`]). Runs at the first
//! verification, when the spec changes, and then daily; never fails the reconcile. The
//! outcome is the `RolePosture` condition and `status.rolePosture`.

use std::time::Duration;

use super::Draft;
use crate::api::{
    ConditionStatus, CustomerAccount, CustomerAccountStatus, Mode, RolePostureStatus,
};
use crate::aws::{AwsError, AwsErrorKind, Iam};
use crate::posture::{self, Expectations, RoleDocuments};

/// The condition this stage owns.
pub const ROLE_POSTURE: &str = "RolePosture";
/// How often the role is read again.
pub const RECHECK: Duration = Duration::from_secs(24 * 60 * 60);

/// Check the role when due; returns when it next wants to run.
pub(super) async fn run(
    account: &CustomerAccount,
    iam: &dyn Iam,
    operator_principal: Option<&str>,
    forced: bool,
    draft: &mut Draft<CustomerAccountStatus>,
) -> Duration {
    let now = draft.now;
    let generation = draft.generation;
    let last = draft
        .status
        .role_posture
        .as_ref()
        .and_then(|p| p.checked_at.as_deref())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let same_spec = crate::api::conditions_find(&draft.status.conditions, ROLE_POSTURE)
        .is_some_and(|c| c.observed_generation == generation);
    if let Some(last) = last.filter(|_| same_spec && !forced) {
        let due = last.as_second() + RECHECK.as_secs() as i64;
        if now.as_second() < due {
            return Duration::from_secs((due - now.as_second()) as u64);
        }
    }
    let expect = Expectations {
        external_id: draft.status.external_id.clone().unwrap_or_default(),
        operator_principal: operator_principal.map(str::to_string),
        automated: account.spec.mode == Mode::Automated,
        key_audit: account.spec.access_key_audit.enabled,
        key_audit_enforce: account.spec.access_key_audit.enabled
            && account.spec.access_key_audit.enforce,
    };
    // Only run with a session, which needs spec.roleArn.
    let role_arn = account.spec.role_arn.as_deref().unwrap_or_default();
    match read_role(iam, role_arn).await {
        Ok(docs) => {
            let findings = posture::check(&docs, &expect);
            draft.status.role_posture = Some(RolePostureStatus {
                checked_at: Some(now.to_string()),
                findings: findings.iter().map(|f| f.message.clone()).collect(),
            });
            match findings.first() {
                None => draft.ok(
                    ROLE_POSTURE,
                    "AsRequested",
                    "The role requires this account's ExternalId, trusts only the operator, grants only what crossguard calls, and its tag conditions can match",
                ),
                Some(first) => draft.set(
                    ROLE_POSTURE,
                    ConditionStatus::False,
                    &format!("{:?}", first.kind),
                    posture::summary(&findings),
                ),
            }
            RECHECK
        }
        Err(e) => {
            let message = if e.kind == AwsErrorKind::AccessDenied {
                format!(
                    "crossguard cannot read its role ({e}); re-deploy the template printed by `crossguard onboarding-template` (it grants reading this one role)"
                )
            } else {
                format!("Reading the role failed and is retried: {e}")
            };
            draft.set(
                ROLE_POSTURE,
                ConditionStatus::Unknown,
                "RoleUnreadable",
                message,
            );
            Duration::from_secs(60 * 60)
        }
    }
}

/// The role's name: the last segment of its ARN (roles may have paths).
fn role_name(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().unwrap_or(role_arn)
}

async fn read_role(iam: &dyn Iam, role_arn: &str) -> Result<RoleDocuments, AwsError> {
    let name = role_name(role_arn);
    let role = iam.get_role(name).await?;
    let mut inline = Vec::new();
    for policy in iam.list_role_policies(name).await? {
        let doc = iam.get_role_policy(name, &policy).await?;
        inline.push((policy, doc));
    }
    let mut attached = Vec::new();
    for arn in iam.list_attached_role_policies(name).await? {
        let version = iam.get_policy_default_version(&arn).await?;
        let doc = iam.get_policy_version(&arn, &version).await?;
        attached.push((arn, doc));
    }
    Ok(RoleDocuments {
        role_arn: role.arn,
        trust_policy: role.trust_policy,
        max_session_duration: role.max_session_duration,
        inline,
        attached,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn role_names_drop_the_path() {
        assert_eq!(
            super::role_name("arn:aws:iam::1:role/crossguard-access"),
            "crossguard-access"
        );
        assert_eq!(
            super::role_name("arn:aws:iam::1:role/team/x/crossguard"),
            "crossguard"
        );
    }
}
