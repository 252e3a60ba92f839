//! Reconciles `CustomerAccount`: ExternalId → validate → session (AssumeRole +
//! GetCallerIdentity) → status. Customer-side problems become conditions that say what to
//! fix; only transient failures are errors that back off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use tracing::Instrument;

use super::status::{apply_status, publish_transition};
use super::{Context, Error, FINALIZER, kube_err};
use crate::api::{
    Condition, ConditionStatus, CustomerAccount, CustomerAccountStatus, VerifiedIdentity,
    set_condition, validate,
};
use crate::audit::{CallObserver, Tenant};
use crate::credentials::{AccountSession, BrokerError, SessionParams};

/// Length of generated ExternalIds (AWS allows 2–1224 characters).
pub const EXTERNAL_ID_LEN: usize = 48;
/// Key of the ExternalId in its Secret.
pub const EXTERNAL_ID_KEY: &str = "externalId";
/// How often a working account is re-verified at the latest.
const MAX_RECHECK: Duration = Duration::from_secs(15 * 60);
/// How often an account with a customer-side problem is retried.
const PROBLEM_RETRY: Duration = Duration::from_secs(2 * 60);

/// Annotation on a CustomerAccount that rotates its ExternalId: set it (or change its
/// value) to any new string, e.g. a date, to get a fresh ExternalId.
pub const ROTATE_ANNOTATION: &str = "crossguard.dev/rotate-external-id";
/// Annotation on the ExternalId Secret recording the rotation request last honoured.
const ROTATED_FOR_ANNOTATION: &str = "crossguard.dev/rotated-for";
/// Condition reason while the customer has not yet put a rotated ExternalId in place.
const ROTATED_REASON: &str = "ExternalIdRotated";

/// Name of the Secret that holds the account's ExternalId.
pub fn external_id_secret_name(account: &str) -> String {
    format!("crossguard-externalid-{account}")
}

/// A fresh ExternalId from the operating system's CSPRNG.
pub fn generate_external_id() -> String {
    use rand::TryRngCore;
    let mut rng = rand::rngs::OsRng.unwrap_err();
    Alphanumeric.sample_string(&mut rng, EXTERNAL_ID_LEN)
}

/// Entry point for the controller.
pub async fn reconcile(account: Arc<CustomerAccount>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = account.namespace().unwrap_or_default();
    let api: Api<CustomerAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let span = tracing::info_span!("reconcile", kind = "CustomerAccount", namespace = %ns, name = %account.name_any());
    let key = format!("CustomerAccount/{ns}/{}", account.name_any());
    let result = finalizer(&api, FINALIZER, account, |event| async {
        match event {
            Finalizer::Apply(account) => apply(account, &ctx).await,
            Finalizer::Cleanup(account) => cleanup(account, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let outcome = match &result {
        Ok(_) => {
            ctx.succeeded(&key);
            "ok"
        }
        Err(e) => e.category(),
    };
    ctx.metrics
        .reconcile("CustomerAccount", outcome, started.elapsed());
    result
}

async fn apply(account: Arc<CustomerAccount>, ctx: &Context) -> Result<Action, Error> {
    let ns = account.namespace().unwrap_or_default();
    let api: Api<CustomerAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let old = account.status.clone();
    let mut status = old.clone().unwrap_or_default();
    let generation = account.metadata.generation.unwrap_or_default();
    status.observed_generation = generation;
    let now = ctx.clock.now();
    let cond = |t: &str, s: ConditionStatus, r: &str, m: String| {
        Condition::new(t, s, r, m, generation, now)
    };

    let valid = match validate::customer_account(&account) {
        Ok(v) => v,
        Err(problems) => {
            ctx.broker.evict(&uid(&account));
            let message = format!("Fix the spec: {}", problems.join("; "));
            set_condition(
                &mut status.conditions,
                cond(
                    "Ready",
                    ConditionStatus::False,
                    "InvalidSpec",
                    message.clone(),
                ),
            );
            set_condition(
                &mut status.conditions,
                cond(
                    "CredentialsValid",
                    ConditionStatus::Unknown,
                    "InvalidSpec",
                    message,
                ),
            );
            clear_session(&mut status);
            finish(&api, &account, ctx, old.as_ref(), &status).await?;
            return Ok(Action::await_change());
        }
    };

    let (external_id, rotated) = ensure_external_id(&account, ctx).await?;
    status.external_id = Some(external_id.clone());
    let rotation_pending = rotated
        || crate::api::conditions_find(&status.conditions, "TrustPolicy")
            .is_some_and(|c| c.reason == ROTATED_REASON);
    let rotation_message = format!(
        "The ExternalId was rotated: update the trust policy of {} to require sts:ExternalId = {external_id}; crossguard retries until AssumeRole succeeds with it",
        account.spec.role_arn
    );
    if rotated {
        ctx.broker.evict(&uid(&account));
        set_condition(
            &mut status.conditions,
            cond(
                "TrustPolicy",
                ConditionStatus::False,
                ROTATED_REASON,
                rotation_message.clone(),
            ),
        );
        super::status::publish(
            ctx,
            account.as_ref(),
            false,
            ROTATED_REASON,
            &rotation_message,
            "RotateExternalId",
        )
        .await;
    }

    if account.spec.suspend {
        ctx.broker.evict(&uid(&account));
        let message =
            "spec.suspend is true: no calls are made to this account and its session was dropped"
                .to_string();
        set_condition(
            &mut status.conditions,
            cond(
                "Ready",
                ConditionStatus::False,
                "Suspended",
                message.clone(),
            ),
        );
        set_condition(
            &mut status.conditions,
            cond(
                "CredentialsValid",
                ConditionStatus::Unknown,
                "Suspended",
                message,
            ),
        );
        clear_session(&mut status);
        finish(&api, &account, ctx, old.as_ref(), &status).await?;
        return Ok(Action::await_change());
    }

    let params = session_params(&account, external_id, valid.session_duration);
    let trail = ctx.audit(tenant(&account, None));
    let observer: Arc<dyn CallObserver> = trail.clone();
    let outcome = ctx.broker.session(&params, &observer).await;
    trail.flush(&ctx.store).await.map_err(Error::Store)?;
    // Retention: reports and logs older than dataRetentionDays go.
    let cutoff = jiff::Timestamp::from_second(
        now.as_second() - i64::from(account.spec.data_retention_days) * 86_400,
    )
    .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let swept = ctx
        .store
        .sweep(&uid(&account), cutoff)
        .await
        .map_err(Error::Store)?;
    if swept > 0 {
        tracing::info!(objects = swept, "retention sweep deleted old reports");
    }
    match outcome {
        Ok(session) => {
            record_session(&mut status, &session);
            let message = format!(
                "Assumed {} as {}",
                account.spec.role_arn, session.identity.arn
            );
            set_condition(
                &mut status.conditions,
                cond(
                    "CredentialsValid",
                    ConditionStatus::True,
                    "Verified",
                    message.clone(),
                ),
            );
            set_condition(
                &mut status.conditions,
                cond(
                    "TrustPolicy",
                    ConditionStatus::True,
                    "ExternalIdAccepted",
                    "The role trusts crossguard with this account's ExternalId".into(),
                ),
            );
            set_condition(
                &mut status.conditions,
                cond("Ready", ConditionStatus::True, "Verified", message),
            );
            finish(&api, &account, ctx, old.as_ref(), &status).await?;
            let until_refresh =
                (session.refresh_at.as_second() - ctx.clock.now().as_second()).max(1) as u64;
            Ok(Action::requeue(
                Duration::from_secs(until_refresh).min(MAX_RECHECK),
            ))
        }
        Err(e) => {
            let message = explain(&account, &e);
            set_condition(
                &mut status.conditions,
                cond(
                    "CredentialsValid",
                    ConditionStatus::False,
                    e.reason(),
                    message.clone(),
                ),
            );
            if rotation_pending && e.reason() == "AssumeRoleDenied" {
                set_condition(
                    &mut status.conditions,
                    cond(
                        "TrustPolicy",
                        ConditionStatus::False,
                        ROTATED_REASON,
                        rotation_message.clone(),
                    ),
                );
                set_condition(
                    &mut status.conditions,
                    cond(
                        "Ready",
                        ConditionStatus::False,
                        ROTATED_REASON,
                        rotation_message,
                    ),
                );
                clear_session(&mut status);
                finish(&api, &account, ctx, old.as_ref(), &status).await?;
                return Ok(Action::requeue(PROBLEM_RETRY));
            }
            if e.reason() == "AssumeRoleDenied" {
                set_condition(
                    &mut status.conditions,
                    cond(
                        "TrustPolicy",
                        ConditionStatus::False,
                        "AssumeRoleDenied",
                        message.clone(),
                    ),
                );
            }
            set_condition(
                &mut status.conditions,
                cond("Ready", ConditionStatus::False, e.reason(), message),
            );
            clear_session(&mut status);
            finish(&api, &account, ctx, old.as_ref(), &status).await?;
            if e.is_transient() {
                Err(Error::Broker(e))
            } else {
                Ok(Action::requeue(PROBLEM_RETRY))
            }
        }
    }
}

async fn cleanup(account: Arc<CustomerAccount>, ctx: &Context) -> Result<Action, Error> {
    // The session is dropped (and wiped); the ExternalId Secret is garbage-collected with
    // the account through its owner reference; everything stored for the tenant is erased
    // before the finalizer goes. If erasure fails the finalizer stays and status says why.
    ctx.broker.evict(&uid(&account));
    match ctx.store.purge(&uid(&account)).await {
        Ok(n) => tracing::info!(objects = n, "erased the tenant's stored data"),
        Err(e) => {
            let ns = account.namespace().unwrap_or_default();
            let api: Api<CustomerAccount> = Api::namespaced(ctx.client.clone(), &ns);
            let old = account.status.clone();
            let mut status = old.clone().unwrap_or_default();
            let message =
                format!("Deleting: erasing this account's stored data failed and is retried: {e}");
            set_condition(
                &mut status.conditions,
                Condition::new(
                    "Ready",
                    ConditionStatus::False,
                    "ErasureFailed",
                    message,
                    account.metadata.generation.unwrap_or_default(),
                    ctx.clock.now(),
                ),
            );
            finish(&api, &account, ctx, old.as_ref(), &status).await?;
            return Err(Error::Store(e));
        }
    }
    tracing::info!(namespace = %account.namespace().unwrap_or_default(), name = %account.name_any(), "account deleted, session dropped");
    Ok(Action::await_change())
}

async fn finish(
    api: &Api<CustomerAccount>,
    account: &CustomerAccount,
    ctx: &Context,
    old: Option<&CustomerAccountStatus>,
    new: &CustomerAccountStatus,
) -> Result<(), Error> {
    publish_transition(
        ctx,
        account,
        old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
        &new.conditions,
    )
    .await;
    apply_status(api, account, old, new).await?;
    Ok(())
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

fn uid(account: &CustomerAccount) -> String {
    account.metadata.uid.clone().unwrap_or_default()
}

/// What the broker needs for this account.
pub fn session_params(
    account: &CustomerAccount,
    external_id: String,
    duration: Duration,
) -> SessionParams {
    SessionParams {
        uid: uid(account),
        namespace: account.namespace().unwrap_or_default(),
        name: account.name_any(),
        account_id: account.spec.account_id.clone(),
        role_arn: account.spec.role_arn.clone(),
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

/// A message a customer's engineer can act on.
fn explain(account: &CustomerAccount, e: &BrokerError) -> String {
    let role = &account.spec.role_arn;
    match e.reason() {
        "AssumeRoleDenied" => format!(
            "AWS denied sts:AssumeRole on {role}. Check that the role exists, that its trust policy allows crossguard's principal and requires sts:ExternalId equal to status.externalId, and that sts:SourceIdentity is allowed. ({e})"
        ),
        "RoleNotFound" => format!(
            "The role {role} does not exist in account {}. Create it from `crossguard onboarding-template`. ({e})",
            account.spec.account_id
        ),
        "AccountMismatch" => format!(
            "{e}. Point spec.roleArn at a role in account {}.",
            account.spec.account_id
        ),
        "OperatorCredentialsInvalid" => format!(
            "crossguard's own AWS credentials were rejected; check the operator's IRSA/Pod Identity setup. ({e})"
        ),
        "AwsUnavailable" => {
            format!("AWS could not be reached or throttled us; retrying with backoff. ({e})")
        }
        _ => e.to_string(),
    }
}

/// Read the account's ExternalId from its Secret, creating the Secret (owned by the
/// account) with a fresh random value the first time, and replacing the value when the
/// rotation annotation asks for it. Returns the ExternalId and whether it was just rotated.
pub async fn ensure_external_id(
    account: &CustomerAccount,
    ctx: &Context,
) -> Result<(String, bool), Error> {
    let ns = account.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = external_id_secret_name(&account.name_any());
    let conflict = || Error::SecretConflict {
        namespace: ns.clone(),
        name: name.clone(),
    };
    let rotate_for = account.annotations().get(ROTATE_ANNOTATION).cloned();
    let existing = match secrets
        .get_opt(&name)
        .await
        .map_err(kube_err("get ExternalId secret"))?
    {
        Some(secret) => secret,
        None => {
            let owner = account.controller_owner_ref(&()).into_iter().collect();
            let mut annotations = BTreeMap::new();
            if let Some(token) = &rotate_for {
                annotations.insert(ROTATED_FOR_ANNOTATION.to_string(), token.clone());
            }
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    owner_references: Some(owner),
                    annotations: Some(annotations),
                    labels: Some(BTreeMap::from([
                        (
                            "app.kubernetes.io/managed-by".to_string(),
                            "crossguard".to_string(),
                        ),
                        (
                            "crossguard.dev/customer-account".to_string(),
                            account.name_any(),
                        ),
                    ])),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    EXTERNAL_ID_KEY.to_string(),
                    ByteString(generate_external_id().into_bytes()),
                )])),
                type_: Some("Opaque".into()),
                ..Default::default()
            };
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(created) => {
                    return read_owned_external_id(account, &created)
                        .map(|id| (id, false))
                        .ok_or_else(conflict);
                }
                // Lost a race with ourselves: continue with what is there if it is ours.
                Err(kube::Error::Api(s)) if s.code == 409 => secrets
                    .get(&name)
                    .await
                    .map_err(kube_err("get ExternalId secret"))?,
                Err(e) => return Err(kube_err("create ExternalId secret")(e)),
            }
        }
    };
    let current = read_owned_external_id(account, &existing).ok_or_else(conflict)?;
    let honoured = existing.annotations().get(ROTATED_FOR_ANNOTATION);
    let Some(token) = rotate_for.filter(|t| Some(t) != honoured) else {
        return Ok((current, false));
    };
    // resourceVersion in the patch makes it conditional: two racing reconciles cannot
    // both rotate.
    let fresh = generate_external_id();
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": existing.resource_version(),
            "annotations": { ROTATED_FOR_ANNOTATION: token },
        },
        "data": { EXTERNAL_ID_KEY: ByteString(fresh.clone().into_bytes()) },
    });
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_err("rotate ExternalId"))?;
    tracing::info!(namespace = %ns, name = %account.name_any(), "ExternalId rotated");
    Ok((fresh, true))
}

/// The ExternalId in `secret`, only if the Secret is owned by this very account (same UID):
/// a Secret someone else created is never trusted as a source of ExternalIds.
fn read_owned_external_id(account: &CustomerAccount, secret: &Secret) -> Option<String> {
    let uid = account.meta().uid.as_deref()?;
    let owned = secret
        .owner_references()
        .iter()
        .any(|o| o.uid == uid && o.controller == Some(true));
    if !owned {
        return None;
    }
    let value = secret.data.as_ref()?.get(EXTERNAL_ID_KEY)?;
    let value = String::from_utf8(value.0.clone()).ok()?;
    (value.len() >= 32).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    #[test]
    fn external_ids_are_long_alphanumeric_and_unique() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| generate_external_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter()
                .all(|id| id.len() == EXTERNAL_ID_LEN
                    && id.chars().all(|c| c.is_ascii_alphanumeric()))
        );
    }

    fn account_with_uid(uid: &str) -> CustomerAccount {
        let spec = serde_json::from_value(serde_json::json!({
            "accountId": "111122223333",
            "roleArn": "arn:aws:iam::111122223333:role/r",
            "regions": ["us-east-1"],
        }))
        .unwrap();
        let mut ca = CustomerAccount::new("acme", spec);
        ca.metadata.uid = Some(uid.into());
        ca
    }

    fn secret(owner_uid: &str, controller: bool, value: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    uid: owner_uid.into(),
                    controller: Some(controller),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                EXTERNAL_ID_KEY.to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_secret_owned_by_this_account_is_trusted() {
        let ca = account_with_uid("uid-1");
        let good = "a".repeat(48);
        assert_eq!(
            read_owned_external_id(&ca, &secret("uid-1", true, &good)),
            Some(good.clone())
        );
        assert_eq!(
            read_owned_external_id(&ca, &secret("uid-2", true, &good)),
            None
        );
        assert_eq!(
            read_owned_external_id(&ca, &secret("uid-1", false, &good)),
            None
        );
        assert_eq!(
            read_owned_external_id(&ca, &secret("uid-1", true, "short")),
            None
        );
    }
}
