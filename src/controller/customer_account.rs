//! Reconciles `CustomerAccount`. The pipeline ([`pipeline`]) reads as the flow in
//! docs/architecture.md: validate → ExternalId → (suspended?) → (roleArn set? else wait
//! for the customer's role, no AWS call) → session (AssumeRole + GetCallerIdentity) →
//! retention → status. Customer-side problems end the run with a
//! condition that says what to fix; only transient failures back off. The tenant's audit
//! trail is flushed on every exit.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::external_id::{self, Issued};
use super::failure::{Category, Failure, Retry};
use super::session::{self, uid};
use super::{AWAITING_ROLE_RECHECK, Context, Draft, Error, PROBLEM_RETRY};
use crate::api::{
    CHECK_REQUESTED_AT, ConditionStatus, CustomerAccount, CustomerAccountStatus, Mode,
    VerifiedIdentity, validate,
};
use crate::audit::{AuditTrail, CallObserver};
use crate::credentials::{AccountSession, BrokerError};

/// How often a working account is re-verified at the latest.
const MAX_RECHECK: Duration = Duration::from_secs(15 * 60);
/// Condition reason while the customer has not yet put a rotated ExternalId in place.
const ROTATED: &str = "ExternalIdRotated";
/// Condition reason after a new ExternalId was generated, until AssumeRole succeeds.
const ISSUED: &str = "ExternalIdIssued";
/// The trust-policy condition.
const TRUST: &str = "TrustPolicy";
/// The session condition.
const CREDENTIALS: &str = "CredentialsValid";
/// Condition reason while `spec.roleArn` is not set (the same word as the category).
pub const AWAITING_ROLE: &str = "AwaitingCustomerRole";

/// Entry point for the controller.
pub async fn reconcile(account: Arc<CustomerAccount>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::reconcile_with_finalizer(account, ctx, apply, cleanup).await
}

/// One reconcile: run the pipeline, flush the audit trail whatever happened, conclude.
async fn apply(
    account: Arc<CustomerAccount>,
    ctx: Arc<Context>,
) -> (Result<Action, Error>, &'static str) {
    let api: Api<CustomerAccount> =
        Api::namespaced(ctx.client.clone(), &account.namespace().unwrap_or_default());
    let generation = account.metadata.generation.unwrap_or_default();
    let mut draft = Draft::new(account.status.clone(), generation, ctx.clock.now());
    draft.status.observed_generation = generation;
    let mut trail = None;
    let result = pipeline(&account, &ctx, &mut draft, &mut trail).await;
    let result = ctx.flush(trail.as_deref(), result).await;
    super::conclude(&ctx, &api, account.as_ref(), draft, result).await
}

/// The stages, in order. Each either adds to `draft` or stops with a [`Failure`].
async fn pipeline(
    account: &CustomerAccount,
    ctx: &Context,
    draft: &mut Draft<CustomerAccountStatus>,
    trail: &mut Option<Arc<AuditTrail>>,
) -> Result<Action, Failure> {
    let valid = validate(account, ctx, draft)?;
    let external_id = ensure_external_id(account, ctx, draft).await?;
    not_suspended(account, ctx, draft)?;
    let Some(role_arn) = account.spec.role_arn.as_deref() else {
        // Nothing to call AWS with: stored data still ages out, then the account waits.
        let waiting = awaiting_role(account, ctx, draft);
        retention(account, ctx).await?;
        return Err(waiting);
    };
    let audit = trail.insert(ctx.audit(session::tenant(account, None)));
    let verified = verify(
        account,
        role_arn,
        external_id,
        valid.session_duration,
        ctx,
        audit,
        draft,
    )
    .await;
    // Retention runs whether or not AWS answered: it concerns what is stored here. A
    // failed verification is what status reports first, a failed sweep after it.
    let retained = retention(account, ctx).await;
    let session = verified?;
    let hygiene = account_hygiene(account, ctx, &session, audit, &valid, draft).await;
    retained?;
    let until_refresh = (session.refresh_at.as_second() - ctx.clock.now().as_second()).max(1);
    let wait = Duration::from_secs(until_refresh as u64).min(MAX_RECHECK);
    Ok(Action::requeue(hygiene.map_or(wait, |h| h.min(wait))))
}

/// The account-level checks that need a session and never fail the reconcile: the role
/// posture and the access-key audit, at their schedule or at once when the
/// `crossguard.dev/check-requested-at` annotation has a new value. Returns when they next
/// want to run.
async fn account_hygiene(
    account: &CustomerAccount,
    ctx: &Context,
    session: &AccountSession,
    audit: &Arc<AuditTrail>,
    valid: &validate::ValidAccount,
    draft: &mut Draft<CustomerAccountStatus>,
) -> Option<Duration> {
    let region = account
        .spec
        .regions
        .first()
        .map(String::as_str)
        .unwrap_or("us-east-1");
    let observer: Arc<dyn CallObserver> = audit.clone();
    let clients = ctx.broker.clients(session, region, observer);
    let request = account.annotations().get(CHECK_REQUESTED_AT).cloned();
    let forced = request.is_some() && request != draft.status.last_handled_check_request;
    let posture = super::role_posture::run(
        account,
        clients.iam.as_ref(),
        ctx.operator_principal.as_deref(),
        forced,
        draft,
    )
    .await;
    let keys = super::key_audit::run(
        account,
        ctx,
        &clients,
        audit,
        valid.key_scan_interval,
        forced,
        draft,
    )
    .await;
    if forced {
        draft.status.last_handled_check_request = request;
    }
    Some(keys.map_or(posture, |k| k.min(posture)))
}

fn validate(
    account: &CustomerAccount,
    ctx: &Context,
    draft: &mut Draft<CustomerAccountStatus>,
) -> Result<validate::ValidAccount, Failure> {
    validate::customer_account(account).map_err(|problems| {
        ctx.broker.evict(&uid(account));
        let message = format!("Fix the spec: {}", problems.join("; "));
        draft.set(
            CREDENTIALS,
            ConditionStatus::Unknown,
            "InvalidSpec",
            &message,
        );
        clear_session(&mut draft.status);
        Failure::new(Category::InvalidSpec, message, Retry::AwaitChange)
    })
}

/// The account's ExternalId into status; a new or rotated one also tells the customer, in
/// the `TrustPolicy` condition and an Event, that the trust policy needs this value.
async fn ensure_external_id(
    account: &CustomerAccount,
    ctx: &Context,
    draft: &mut Draft<CustomerAccountStatus>,
) -> Result<String, Failure> {
    let (external_id, issued) = external_id::ensure(account, &ctx.client).await?;
    let issued = unannounced(
        account,
        draft.status.external_id.as_deref(),
        &external_id,
        issued,
    );
    draft.status.external_id = Some(external_id.clone());
    let (reason, message) = match issued {
        Issued::Existing => return Ok(external_id),
        Issued::Rotated => (ROTATED, rotation_message(account, &external_id)),
        Issued::Created => (ISSUED, issued_message(account)),
    };
    ctx.broker.evict(&uid(account));
    draft.set(TRUST, ConditionStatus::False, reason, &message);
    let action = if issued == Issued::Rotated {
        "RotateExternalId"
    } else {
        "IssueExternalId"
    };
    super::status::publish(
        ctx,
        account,
        issued != Issued::Rotated,
        reason,
        &message,
        action,
    )
    .await;
    Ok(external_id)
}

/// How `current` came to be, as the customer must hear it. An ExternalId that differs
/// from the one status last published was issued or rotated by a run that could not write
/// status (the API server refused the write, or the operator died between the Secret write
/// and the status write): it is announced now, as a rotation when the rotation annotation
/// asked for one, else as a new ExternalId, instead of being taken in silently.
fn unannounced(
    account: &CustomerAccount,
    published: Option<&str>,
    current: &str,
    issued: Issued,
) -> Issued {
    match (issued, published) {
        (Issued::Existing, Some(old)) if old != current => {
            if account
                .annotations()
                .contains_key(external_id::ROTATE_ANNOTATION)
            {
                Issued::Rotated
            } else {
                Issued::Created
            }
        }
        _ => issued,
    }
}

fn not_suspended(
    account: &CustomerAccount,
    ctx: &Context,
    draft: &mut Draft<CustomerAccountStatus>,
) -> Result<(), Failure> {
    if !account.spec.suspend {
        return Ok(());
    }
    ctx.broker.evict(&uid(account));
    let message =
        "spec.suspend is true: no calls are made to this account and its session was dropped";
    draft.set(CREDENTIALS, ConditionStatus::Unknown, "Suspended", message);
    clear_session(&mut draft.status);
    Err(Failure::new(
        Category::Suspended,
        message,
        Retry::AwaitChange,
    ))
}

/// No `spec.roleArn`: the customer has not created the role yet, or it was removed. Any
/// cached session is dropped (no call is ever made with a role no longer named), status
/// forgets the verified identity, and `CredentialsValid` and `Ready` say what to do next.
/// The account is looked at again after [`AWAITING_ROLE_RECHECK`] or when its spec changes.
fn awaiting_role(
    account: &CustomerAccount,
    ctx: &Context,
    draft: &mut Draft<CustomerAccountStatus>,
) -> Failure {
    ctx.broker.evict(&uid(account));
    clear_session(&mut draft.status);
    let message = awaiting_role_message(account, ctx.operator_principal.as_deref());
    draft.set(
        CREDENTIALS,
        ConditionStatus::Unknown,
        AWAITING_ROLE,
        &message,
    );
    // A new ExternalId keeps its own TrustPolicy message; anything else (e.g. "accepted"
    // by a role since removed) no longer holds.
    let pending = crate::api::conditions_find(&draft.status.conditions, TRUST)
        .is_some_and(|c| c.reason == ISSUED || c.reason == ROTATED);
    if !pending {
        draft.set(
            TRUST,
            ConditionStatus::Unknown,
            AWAITING_ROLE,
            "No role to check yet: spec.roleArn is not set",
        );
    }
    Failure::new(
        Category::AwaitingCustomerRole,
        message,
        Retry::After(AWAITING_ROLE_RECHECK),
    )
}

/// What the operator user does next for an account without `spec.roleArn`: print the
/// customer's template for this account (`onboarding-template --from`, which reads the
/// account id, regions, mode and ExternalId from the CustomerAccount; or the same by
/// `kubectl get -o jsonpath`), then set the role ARN from the stack's `RoleArn` output
/// (`crossguard onboarding-complete`) or with `kubectl patch`. `operator_principal` is the
/// operator's own role (`CROSSGUARD_OPERATOR_PRINCIPAL`), the template's trusted
/// principal, when known.
pub fn awaiting_role_message(
    account: &CustomerAccount,
    operator_principal: Option<&str>,
) -> String {
    let name = account.name_any();
    let ns = account.namespace().unwrap_or_else(|| "default".into());
    let id = &account.spec.account_id;
    let principal = operator_principal.unwrap_or("<the operator's IAM role ARN>");
    let mode = if account.spec.mode == Mode::Automated {
        " --mode automated --cluster <EKS cluster name>"
    } else {
        ""
    };
    format!(
        "No spec.roleArn yet: crossguard makes no AWS call for this account until the customer's role exists and its ARN is set. \
         1) Give the customer the role template for this account: \
         crossguard onboarding-template --from customeraccount/{name} -n {ns} --operator-principal {principal} > crossguard-role.json \
         (without access to this cluster: crossguard onboarding-template --account-id {id}{mode} --operator-principal {principal} \
         --external-id \"$(kubectl get customeraccount {name} -n {ns} -o jsonpath='{{.status.externalId}}')\") \
         2) When their stack is deployed, set the role from its outputs \
         (aws cloudformation describe-stacks --stack-name <stack> --query 'Stacks[0].Outputs' --output json > outputs.json, or terraform output -json > outputs.json): \
         crossguard onboarding-complete customeraccount/{name} -n {ns} --stack-outputs outputs.json \
         -- or directly: kubectl patch customeraccount {name} -n {ns} --type merge \
         -p '{{\"spec\":{{\"roleArn\":\"arn:aws:iam::{id}:role/crossguard-access\"}}}}'"
    )
}

/// AssumeRole with the ExternalId and GetCallerIdentity, through the broker's cache.
async fn verify(
    account: &CustomerAccount,
    role_arn: &str,
    external_id: String,
    duration: Duration,
    ctx: &Context,
    audit: &Arc<AuditTrail>,
    draft: &mut Draft<CustomerAccountStatus>,
) -> Result<Arc<AccountSession>, Failure> {
    let params = session::session_params(account, role_arn, external_id, duration);
    let observer: Arc<dyn CallObserver> = audit.clone();
    match ctx.broker.session(&params, &observer).await {
        Ok(session) => {
            record_session(&mut draft.status, &session);
            let message = format!("Assumed {role_arn} as {}", session.identity.arn);
            draft.ok(CREDENTIALS, "Verified", &message);
            draft.ok(
                TRUST,
                "ExternalIdAccepted",
                "The role trusts crossguard with this account's ExternalId",
            );
            draft.ok("Ready", "Verified", message);
            Ok(session)
        }
        Err(e) => {
            clear_session(&mut draft.status);
            Err(verify_failure(account, &e, draft))
        }
    }
}

/// A failed verification, with the trust-policy condition when AWS denied the role: a
/// rotation (or a newly issued ExternalId) the customer has not applied yet is named as
/// such, with the value to put in the trust policy.
fn verify_failure(
    account: &CustomerAccount,
    e: &BrokerError,
    draft: &mut Draft<CustomerAccountStatus>,
) -> Failure {
    let failure = session::failure(account, e, PROBLEM_RETRY);
    if failure.category != Category::AssumeRoleDenied {
        return failure;
    }
    let pending = crate::api::conditions_find(&draft.status.conditions, TRUST)
        .filter(|c| c.reason == ROTATED || c.reason == ISSUED)
        .map(|c| c.reason.clone());
    match pending.as_deref() {
        Some(ROTATED) => {
            // CredentialsValid keeps AWS's word; Ready and TrustPolicy say what to do.
            draft.set(
                CREDENTIALS,
                ConditionStatus::False,
                failure.category.as_str(),
                &failure.message,
            );
            let external_id = draft.status.external_id.clone().unwrap_or_default();
            Failure::new(
                Category::ExternalIdRotated,
                rotation_message(account, &external_id),
                Retry::After(PROBLEM_RETRY),
            )
            .on(TRUST)
        }
        // A new ExternalId: the trust policy condition keeps saying so; Ready says denied.
        Some(_) => failure,
        None => {
            draft.set(
                TRUST,
                ConditionStatus::False,
                "AssumeRoleDenied",
                &failure.message,
            );
            failure
        }
    }
}

/// The role the customer's trust policy belongs to, as messages name it.
fn the_role(account: &CustomerAccount) -> String {
    match &account.spec.role_arn {
        Some(arn) => arn.clone(),
        None => "the role the customer creates from `crossguard onboarding-template`".into(),
    }
}

fn rotation_message(account: &CustomerAccount, external_id: &str) -> String {
    format!(
        "The ExternalId was rotated: update the trust policy of {} to require sts:ExternalId = {external_id}; crossguard retries until AssumeRole succeeds with it",
        the_role(account)
    )
}

fn issued_message(account: &CustomerAccount) -> String {
    match account.spec.role_arn {
        Some(_) => format!(
            "crossguard generated a new ExternalId for this account: the trust policy of {} must require sts:ExternalId equal to status.externalId (a role made for an earlier account of the same name trusts the old value and must be updated); crossguard retries until AssumeRole succeeds with it",
            the_role(account)
        ),
        None => "crossguard generated the ExternalId for this account (status.externalId): the trust policy of the role the customer creates from `crossguard onboarding-template` must require sts:ExternalId equal to it".into(),
    }
}

/// Reports, logs and history points older than `spec.dataRetentionDays` go.
async fn retention(account: &CustomerAccount, ctx: &Context) -> Result<(), Failure> {
    let now = ctx.clock.now();
    let cutoff = jiff::Timestamp::from_second(
        now.as_second() - i64::from(account.spec.data_retention_days) * 86_400,
    )
    .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let swept = ctx.store.sweep(&uid(account), cutoff).await.map_err(|e| {
        Failure::new(
            Category::StoreUnavailable,
            format!("The retention sweep of this account's stored data failed: {e}"),
            Retry::Backoff,
        )
    })?;
    if swept > 0 {
        tracing::info!(objects = swept, "retention sweep deleted old reports");
    }
    // History segments straddling the cutoff keep their newer points only.
    let trimmed = crate::history::sweep(&ctx.store, &uid(account), cutoff)
        .await
        .map_err(|e| {
            Failure::new(
                Category::StoreUnavailable,
                format!("The retention sweep of this account's cost history failed: {e}"),
                Retry::Backoff,
            )
        })?;
    if trimmed > 0 {
        tracing::info!(
            points = trimmed,
            "retention sweep dropped old history points"
        );
    }
    Ok(())
}

async fn cleanup(account: Arc<CustomerAccount>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The deletion record first: from then on no write for the tenant lands (here or in
    // another replica), and the tenant's analyses in flight here are stopped. Then the session is
    // dropped (and wiped); the ExternalId Secret is garbage-collected with the account
    // through its owner reference; everything stored for the tenant is erased before the
    // finalizer goes. If erasure fails the finalizer stays and status says why.
    let tenant = uid(&account);
    let begun = ctx.store.begin_erasure(&tenant, ctx.clock.now()).await;
    ctx.cancel_tenant(&tenant);
    let erased = match begun {
        Ok(()) => ctx.store.purge(&tenant).await,
        Err(e) => Err(e),
    };
    ctx.broker.evict(&tenant);
    ctx.forget_unwritten_audit(&tenant);
    ctx.metrics.forget_key_ages(
        &account.namespace().unwrap_or_default(),
        &account.name_any(),
    );
    match erased {
        Ok(n) => {
            tracing::info!(objects = n, "erased the tenant's stored data");
            // Crypto-shredding evidence on the account (docs/data-protection.md).
            if let Ok(Some(record)) = ctx.store.erasure_record(&tenant).await {
                let note = format!(
                    "Destroyed data keys [{}] of this account at {}, then deleted {} stored objects; copies of its data can no longer be decrypted. Deletion record: erasures/{}.json",
                    record.data_keys_destroyed.join(", "),
                    record.erased_at,
                    record.objects_deleted.unwrap_or(n),
                    record.tenant
                );
                super::status::publish(
                    &ctx,
                    account.as_ref(),
                    true,
                    "DataKeysDestroyed",
                    &note,
                    "Erase",
                )
                .await;
            }
        }
        Err(e) => {
            let api: Api<CustomerAccount> =
                Api::namespaced(ctx.client.clone(), &account.namespace().unwrap_or_default());
            let generation = account.metadata.generation.unwrap_or_default();
            let draft = Draft::new(account.status.clone(), generation, ctx.clock.now());
            let failure = Failure::new(
                Category::ErasureFailed,
                format!("Deleting: erasing this account's stored data failed and is retried: {e}"),
                Retry::Backoff,
            );
            return super::conclude(&ctx, &api, account.as_ref(), draft, Err(failure))
                .await
                .0;
        }
    }
    tracing::info!(namespace = %account.namespace().unwrap_or_default(), name = %account.name_any(), "account deleted, session dropped");
    Ok(Action::await_change())
}

fn record_session(status: &mut CustomerAccountStatus, session: &AccountSession) {
    status.verified_identity = Some(VerifiedIdentity {
        arn: session.identity.arn.clone(),
        account: session.identity.account.clone(),
    });
    status.credentials_expire_at = Some(session.credentials.expiration.to_string());
    status.last_verified_at = Some(session.verified_at.to_string());
}

fn clear_session(status: &mut CustomerAccountStatus) {
    status.verified_identity = None;
    status.credentials_expire_at = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(annotations: &[(&str, &str)]) -> CustomerAccount {
        let spec = serde_json::from_value(serde_json::json!({
            "accountId": "111122223333",
            "roleArn": "arn:aws:iam::111122223333:role/r",
            "regions": ["us-east-1"],
        }))
        .unwrap();
        let mut ca = CustomerAccount::new("acme", spec);
        for (k, v) in annotations {
            ca.annotations_mut().insert(k.to_string(), v.to_string());
        }
        ca
    }

    #[test]
    fn the_awaiting_role_message_gives_this_accounts_commands() {
        let mut ca = account(&[]);
        ca.metadata.namespace = Some("tenant-a".into());
        ca.spec.role_arn = None;
        let message = awaiting_role_message(&ca, None);
        for part in [
            "crossguard onboarding-template --from customeraccount/acme -n tenant-a --operator-principal <the operator's IAM role ARN> > crossguard-role.json",
            "crossguard onboarding-template --account-id 111122223333 --operator-principal <the operator's IAM role ARN>",
            "kubectl get customeraccount acme -n tenant-a -o jsonpath='{.status.externalId}'",
            "crossguard onboarding-complete customeraccount/acme -n tenant-a --stack-outputs outputs.json",
            r#"kubectl patch customeraccount acme -n tenant-a --type merge -p '{"spec":{"roleArn":"arn:aws:iam::111122223333:role/crossguard-access"}}'"#,
        ] {
            assert!(message.contains(part), "{part:?} missing from {message}");
        }
        assert!(!message.contains("--mode automated"));
        ca.spec.mode = Mode::Automated;
        let principal = "arn:aws:iam::999988887777:role/crossguard-operator";
        let message = awaiting_role_message(&ca, Some(principal));
        assert!(
            message.contains(&format!(
                "--mode automated --cluster <EKS cluster name> --operator-principal {principal}"
            )),
            "{message}"
        );
        // The TrustPolicy message of a new ExternalId names no role that does not exist.
        assert!(!issued_message(&ca).contains("None"));
        assert!(issued_message(&ca).contains("onboarding-template"));
    }

    #[test]
    fn an_external_id_status_never_published_is_announced() {
        let plain = account(&[]);
        let rotating = account(&[(external_id::ROTATE_ANNOTATION, "2026-11-30")]);
        let (old, new) = ("a".repeat(48), "b".repeat(48));
        // Status already says it, or said nothing yet: as issued.
        for issued in [Issued::Existing, Issued::Created, Issued::Rotated] {
            assert_eq!(unannounced(&rotating, Some(&new), &new, issued), issued);
            assert_eq!(unannounced(&plain, None, &new, issued), issued);
        }
        // The Secret moved on without status: a rotation the annotation asked for, else a
        // new ExternalId (the Secret was re-created).
        assert_eq!(
            unannounced(&rotating, Some(&old), &new, Issued::Existing),
            Issued::Rotated
        );
        assert_eq!(
            unannounced(&plain, Some(&old), &new, Issued::Existing),
            Issued::Created
        );
        // A fresh rotation or creation is reported as such.
        assert_eq!(
            unannounced(&plain, Some(&old), &new, Issued::Rotated),
            Issued::Rotated
        );
    }
}
