//! Reconciles `ManagedCluster`. The pipeline ([`pipeline`]) reads as the flow in
//! docs/architecture.md: validate → resolve the account (same namespace only) → session
//! from the broker → inventory of EKS, Auto Scaling and EC2 → snapshot, sanitize, analyse
//! and store → automate (only in Automated mode) → status. Every stage that cannot go on
//! returns a [`Failure`]; [`super::conclude`] turns it into status, an Event, the metric
//! label and the requeue, and the tenant's audit trail is flushed on every exit.

use std::sync::Arc;
use std::time::Duration;

use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::analyse::{self, Analysed};
use super::failure::{Category, Failure, KubeOp, Retry};
use super::inventory::{self, Collected};
use super::{Context, Draft, Error, external_id, session};
use crate::api::{
    ConditionStatus, CustomerAccount, ManagedCluster, ManagedClusterStatus, Mode, validate,
};
use crate::audit::{AuditTrail, CallObserver};
use crate::aws::CustomerClients;
use crate::credentials::AccountSession;

pub use super::WAIT_RETRY;

/// Entry point for the controller.
pub async fn reconcile(cluster: Arc<ManagedCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::reconcile_with_finalizer(cluster, ctx, apply, cleanup).await
}

/// One reconcile: read status from the API server, run the pipeline, flush the audit
/// trail whatever happened, conclude.
async fn apply(
    cluster: Arc<ManagedCluster>,
    ctx: Arc<Context>,
) -> (Result<Action, Error>, &'static str) {
    let api: Api<ManagedCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    // Status from the API server, not the watch cache: the cache may not have seen this
    // operator's latest writes yet (an automation intent cleared, a removal recorded), and
    // every status write below starts from what is read here.
    let old = match api.get_status(&cluster.name_any()).await {
        Ok(current) => current.status,
        Err(e) => {
            let f = Failure::kube(KubeOp::GetStatus, "get ManagedCluster status", e);
            let category = f.category.as_str();
            super::status::publish(
                &ctx,
                cluster.as_ref(),
                false,
                category,
                &f.message,
                "Reconcile",
            )
            .await;
            return (Err(Error::Stage(f)), category);
        }
    };
    let generation = cluster.metadata.generation.unwrap_or_default();
    let mut draft = Draft::new(old, generation, ctx.clock.now());
    let mut trail = None;
    let result = pipeline(&cluster, &ctx, &api, &mut draft, &mut trail).await;
    if result.as_ref().is_err_and(|f| {
        matches!(
            f.category,
            Category::AccountDeleting | Category::AccountNotFound
        )
    }) {
        // The account's data is erased (or being erased): point at nothing there.
        draft.status.report_ref = None;
    }
    let result = ctx.flush(trail.as_deref(), result).await;
    super::conclude(&ctx, &api, cluster.as_ref(), draft, result).await
}

/// The stages, in order. Each either adds to `draft` or stops with a [`Failure`].
async fn pipeline(
    cluster: &ManagedCluster,
    ctx: &Context,
    api: &Api<ManagedCluster>,
    draft: &mut Draft<ManagedClusterStatus>,
    trail: &mut Option<Arc<AuditTrail>>,
) -> Result<Action, Failure> {
    let valid = validate(cluster)?;
    let (account, role_arn) = resolve_account(cluster, ctx).await?;
    // Ownership was decided from the watch cache; the account just read may have moved to
    // another shard since. Then this shard neither calls AWS nor acts for it.
    if !ctx.shard.owns_account(account.metadata.labels.as_ref()) {
        tracing::info!(namespace = %cluster.namespace().unwrap_or_default(), name = %cluster.name_any(),
            account = %account.name_any(), "the account moved to another shard; this reconcile stops here");
        return Ok(Action::await_change());
    }
    let (mode, session_duration) = check_against_account(cluster, &account, draft)?;
    if let Some(wait) = not_due(draft, &valid, mode, cluster) {
        return Ok(Action::requeue(wait));
    }
    // Erasing the account cancels this: nothing more is read, called or stored for it.
    let erased = ctx.tenant_work(&session::uid(&account));
    let run = observe_and_act(
        cluster,
        ctx,
        api,
        &account,
        &role_arn,
        session_duration,
        mode,
        &valid,
        draft,
        trail,
    );
    tokio::select! {
        biased;
        () = erased.cancelled() => Err(erased_during_run(&account)),
        result = run => result,
    }
}

/// The failure of a run stopped because its account was deleted and erased meanwhile.
fn erased_during_run(account: &CustomerAccount) -> Failure {
    Failure::new(
        Category::AccountDeleting,
        format!(
            "CustomerAccount {:?} was deleted and its stored data erased: the run in progress was stopped and nothing more is stored for it",
            account.name_any()
        ),
        Retry::AwaitChange,
    )
    .on("AccountResolved")
}

/// The stages that call AWS and the customer cluster and store for the tenant.
#[allow(clippy::too_many_arguments)]
async fn observe_and_act(
    cluster: &ManagedCluster,
    ctx: &Context,
    api: &Api<ManagedCluster>,
    account: &CustomerAccount,
    role_arn: &str,
    session_duration: Duration,
    mode: Mode,
    valid: &validate::ValidCluster,
    draft: &mut Draft<ManagedClusterStatus>,
    trail: &mut Option<Arc<AuditTrail>>,
) -> Result<Action, Failure> {
    let audit = trail.insert(ctx.audit(session::tenant(account, Some(cluster.name_any()))));
    let session = open_session(account, role_arn, session_duration, ctx, audit).await?;
    let observer: Arc<dyn CallObserver> = audit.clone();
    let clients = ctx.broker.clients(&session, &cluster.spec.region, observer);
    let collected = collect(cluster, account, &clients, mode, draft).await?;
    let analysed = analyse::analyse(
        cluster,
        account,
        ctx,
        &session,
        &collected,
        &clients,
        audit.as_ref(),
        draft.now,
    )
    .await?;
    record_analysis(cluster, &analysed, mode, draft);
    ctx.metrics.cluster_analysed(
        &cluster.namespace().unwrap_or_default(),
        &cluster.name_any(),
        &analysed.figures,
    );
    let tally = automate(
        cluster, ctx, api, &clients, &collected, &analysed, audit, valid, mode, draft,
    )
    .await;
    super::history::record(
        ctx,
        cluster,
        &session::uid(account),
        draft.now,
        &analysed,
        &tally,
    )
    .await;
    Ok(Action::requeue(
        tally.verify_again.unwrap_or(valid.analysis_interval),
    ))
}

fn validate(cluster: &ManagedCluster) -> Result<validate::ValidCluster, Failure> {
    validate::managed_cluster(cluster).map_err(|problems| {
        Failure::new(
            Category::InvalidSpec,
            format!("Fix the spec: {}", problems.join("; ")),
            Retry::AwaitChange,
        )
    })
}

/// `spec.accountRef`, resolved in this namespace only, Ready, with a role, and not being
/// deleted; returned with its `spec.roleArn`. An account awaiting its customer's role
/// (reason `AwaitingCustomerRole`, or a `roleArn` removed since it was last Ready) is
/// [`AccountRefError::AwaitingRole`]: the cluster waits too, without any AWS call.
async fn resolve_account(
    cluster: &ManagedCluster,
    ctx: &Context,
) -> Result<(Box<CustomerAccount>, String), AccountRefError> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.spec.account_ref.name.clone();
    if let Some(other) = cluster
        .spec
        .account_ref
        .namespace
        .as_deref()
        .filter(|n| *n != ns)
    {
        return Err(AccountRefError::CrossNamespace {
            other: other.to_string(),
            ns,
        });
    }
    // Read guarded: an account this version cannot deserialize is reported here by name,
    // never dumped (whole, ExternalId included) into a client's parse-error log line.
    let accounts: Api<DeserializeGuard<CustomerAccount>> = Api::namespaced(ctx.client.clone(), &ns);
    let account = accounts
        .get_opt(&name)
        .await
        .map_err(AccountRefError::Get)?
        .ok_or_else(|| AccountRefError::NotFound {
            name: name.clone(),
            ns,
        })?
        .0
        .map_err(|invalid| AccountRefError::Unreadable {
            name: name.clone(),
            error: invalid.error,
        })?;
    if account.metadata.deletion_timestamp.is_some() {
        return Err(AccountRefError::Deleting { name });
    }
    let ready = account
        .status
        .as_ref()
        .and_then(|s| crate::api::conditions_find(&s.conditions, "Ready"));
    let awaiting = |message: String| AccountRefError::AwaitingRole {
        name: name.clone(),
        message,
    };
    match ready {
        Some(c) if c.is_true() => match account.spec.role_arn.clone() {
            Some(role_arn) => Ok((Box::new(account), role_arn)),
            None => Err(awaiting(
                "Its spec.roleArn was removed; the account's own status says what to do next."
                    .into(),
            )),
        },
        // A pointer to the account's next steps, not its whole message: this one is also
        // an Event, whose message the API server cuts at 1 KiB (mid-command, as seen).
        Some(c) if c.reason == super::customer_account::AWAITING_ROLE => {
            let ns = account.namespace().unwrap_or_default();
            Err(awaiting(format!(
                "Next: print the customer's template with `crossguard onboarding-template --from customeraccount/{name} -n {ns}`, then set the role from their stack's outputs with `crossguard onboarding-complete customeraccount/{name} -n {ns} --stack-outputs outputs.json`; `kubectl describe customeraccount {name} -n {ns}` lists every command."
            )))
        }
        Some(c) => Err(AccountRefError::NotReady {
            name,
            reason: c.reason.clone(),
            message: c.message.clone(),
        }),
        None => Err(AccountRefError::NotVerified { name }),
    }
}

/// Why `spec.accountRef` could not be used.
#[derive(Debug, thiserror::Error)]
enum AccountRefError {
    #[error(
        "spec.accountRef points at namespace {other:?}; a ManagedCluster may only use a CustomerAccount in its own namespace ({ns:?})"
    )]
    CrossNamespace { other: String, ns: String },
    #[error("kubernetes get CustomerAccount failed: {0}")]
    Get(kube::Error),
    #[error("CustomerAccount {name:?} does not exist in namespace {ns:?}")]
    NotFound { name: String, ns: String },
    #[error("CustomerAccount {name:?} is being deleted")]
    Deleting { name: String },
    #[error("CustomerAccount {name:?} is not Ready ({reason}): {message}")]
    NotReady {
        name: String,
        reason: String,
        message: String,
    },
    #[error("CustomerAccount {name:?} has not been verified yet")]
    NotVerified { name: String },
    #[error(
        "CustomerAccount {name:?} awaits its customer's IAM role (no spec.roleArn yet): this cluster waits too and no AWS call is made for it. {message}"
    )]
    AwaitingRole { name: String, message: String },
    #[error(
        "CustomerAccount {name:?} cannot be read by this version of crossguard ({error}); its own status says how to fix it"
    )]
    Unreadable { name: String, error: String },
}

impl From<AccountRefError> for Failure {
    fn from(e: AccountRefError) -> Self {
        let message = e.to_string();
        let (category, retry) = match e {
            AccountRefError::Get(_) => {
                let f = Failure::new(
                    Category::Kubernetes(KubeOp::GetCustomerAccount),
                    message,
                    Retry::Backoff,
                );
                return f.on("AccountResolved");
            }
            AccountRefError::CrossNamespace { .. } => {
                (Category::CrossNamespaceReference, Retry::AwaitChange)
            }
            AccountRefError::NotFound { .. } => {
                (Category::AccountNotFound, Retry::After(WAIT_RETRY))
            }
            AccountRefError::Deleting { .. } => (Category::AccountDeleting, Retry::AwaitChange),
            // The account's watch wakes the cluster when the role is set.
            AccountRefError::AwaitingRole { .. } => (
                Category::AwaitingCustomerRole,
                Retry::After(super::AWAITING_ROLE_RECHECK),
            ),
            AccountRefError::NotReady { .. }
            | AccountRefError::NotVerified { .. }
            | AccountRefError::Unreadable { .. } => {
                (Category::AccountNotReady, Retry::After(WAIT_RETRY))
            }
        };
        Failure::new(category, message, retry).on("AccountResolved")
    }
}

/// The cluster's region and mode must fit the account's; returns the effective mode and
/// the account's session length.
fn check_against_account(
    cluster: &ManagedCluster,
    account: &CustomerAccount,
    draft: &mut Draft<ManagedClusterStatus>,
) -> Result<(Mode, Duration), Failure> {
    let mut problems = Vec::new();
    if !account.spec.regions.contains(&cluster.spec.region) {
        problems.push(format!(
            "spec.region {} is not one of CustomerAccount {:?}'s regions {:?}",
            cluster.spec.region,
            account.name_any(),
            account.spec.regions
        ));
    }
    if cluster.spec.mode > account.spec.mode {
        problems.push(format!(
            "spec.mode {} exceeds CustomerAccount {:?}'s mode {}; lower it or raise the account's",
            cluster.spec.mode,
            account.name_any(),
            account.spec.mode
        ));
    }
    let account_valid = validate::customer_account(account);
    if !problems.is_empty() {
        return Err(Failure::new(
            Category::InvalidSpec,
            problems.join("; "),
            Retry::AwaitChange,
        ));
    }
    let Ok(account_valid) = account_valid else {
        return Err(Failure::new(
            Category::AccountNotReady,
            "the CustomerAccount's spec is invalid",
            Retry::AwaitChange,
        ));
    };
    draft.ok(
        "AccountResolved",
        "Resolved",
        format!("Using CustomerAccount {:?}", account.name_any()),
    );
    Ok((
        cluster.spec.mode.min(account.spec.mode),
        account_valid.session_duration,
    ))
}

/// Nothing changed since the last complete run and it is not due yet: no AWS calls.
fn not_due(
    draft: &Draft<ManagedClusterStatus>,
    valid: &validate::ValidCluster,
    mode: Mode,
    cluster: &ManagedCluster,
) -> Option<Duration> {
    let can_settle = mode == Mode::Automated && !cluster.spec.automation.dry_run;
    next_run_in(
        draft.old.as_ref(),
        draft.generation,
        valid.analysis_interval,
        draft.now,
        can_settle,
    )
}

/// A session for the account from the broker. Every call it makes (AssumeRole included)
/// is recorded in `audit`, which is flushed on every exit.
async fn open_session(
    account: &CustomerAccount,
    role_arn: &str,
    duration: Duration,
    ctx: &Context,
    audit: &Arc<AuditTrail>,
) -> Result<Arc<AccountSession>, Failure> {
    let external_id = external_id::read(account, &ctx.client).await?;
    let params = session::session_params(account, role_arn, external_id, duration);
    let observer: Arc<dyn CallObserver> = audit.clone();
    ctx.broker.session(&params, &observer).await.map_err(|e| {
        if e.is_transient() {
            Failure::new(
                Category::AwsUnavailable,
                format!(
                    "No session for CustomerAccount {:?} yet, retrying with backoff: {e}",
                    account.name_any()
                ),
                Retry::Backoff,
            )
        } else {
            Failure::new(
                Category::AccountNotReady,
                format!(
                    "No session for CustomerAccount {:?}: {e}",
                    account.name_any()
                ),
                Retry::After(WAIT_RETRY),
            )
        }
    })
}

/// The inventory stage; its counts go into status.
async fn collect(
    cluster: &ManagedCluster,
    account: &CustomerAccount,
    clients: &CustomerClients,
    mode: Mode,
    draft: &mut Draft<ManagedClusterStatus>,
) -> Result<Collected, Failure> {
    let spec = &cluster.spec;
    let collected = inventory::collect(clients, &spec.cluster_name)
        .await
        .map_err(|e| {
            inventory::failure(
                e,
                &spec.cluster_name,
                &spec.region,
                &account.spec.account_id,
            )
        })?;
    draft.ok(
        inventory::CONDITION,
        "Collected",
        inventory::summary(&collected.inventory),
    );
    draft.status.inventory = Some(collected.inventory.clone());
    draft.status.effective_mode = Some(mode);
    draft.status.observed_generation = draft.generation;
    Ok(collected)
}

/// The analysis results go into status before automation runs, so that every status write
/// automation makes (its intents) already says this run's analysis is done.
fn record_analysis(
    cluster: &ManagedCluster,
    outcome: &Analysed,
    mode: Mode,
    draft: &mut Draft<ManagedClusterStatus>,
) {
    let summary = &outcome.summary;
    draft.status.monthly_cost = Some(outcome.monthly_cost);
    draft.status.potential_savings = Some(outcome.potential_savings);
    draft.status.currency = Some(crate::api::CURRENCY.to_string());
    draft.status.report_ref = Some(outcome.report_ref.clone());
    draft.status.last_analysis_at = Some(draft.now.to_string());
    let mut message = format!(
        "{} nodes analysed: {} a month, {} ({}) could be saved",
        summary.nodes, summary.monthly_cost, summary.monthly_savings, summary.savings_percent
    );
    if summary.unpriced_nodes > 0 {
        message.push_str(&format!(
            "; {} nodes have an unknown price",
            summary.unpriced_nodes
        ));
    }
    for note in &outcome.price_notes {
        message.push_str("; ");
        message.push_str(note);
    }
    draft.ok(analyse::CONDITION, "Analysed", message);
    draft.ok(
        "Ready",
        "Observed",
        format!(
            "Cluster {} observed in {}",
            cluster.spec.cluster_name,
            effective_mode_text(mode)
        ),
    );
}

/// Automation (Automated mode only). Returns how soon to look again while a
/// possibly-sent call is being verified, and what was confirmed and refused.
#[allow(clippy::too_many_arguments)]
async fn automate(
    cluster: &ManagedCluster,
    ctx: &Context,
    api: &Api<ManagedCluster>,
    clients: &CustomerClients,
    collected: &Collected,
    analysed: &Analysed,
    trail: &AuditTrail,
    valid: &validate::ValidCluster,
    mode: Mode,
    draft: &mut Draft<ManagedClusterStatus>,
) -> super::automation::Tally {
    if mode == Mode::Automated {
        let inputs = super::automation::Inputs {
            cluster,
            api,
            ctx,
            clients,
            collected,
            removable: &analysed.removable,
            nodes: &analysed.nodes,
            client: &analysed.client,
            trail,
            drain_timeout: valid.drain_timeout,
            min_node_age: valid.min_node_age,
        };
        return super::automation::automate(inputs, &mut draft.status).await;
    }
    if let Some(p) = &draft.status.pending_action {
        // ReadOnly now means no write at all, not even an uncordon: say what is left.
        let message = format!(
            "Automation was turned off during {} on node {} (phase {}): the node may still be cordoned. Set mode Automated again to settle it, or uncordon the node by hand",
            p.action, p.node, p.phase
        );
        draft.set(
            "Automation",
            ConditionStatus::False,
            "ActionLeftPending",
            message,
        );
    } else {
        crate::api::remove_condition(&mut draft.status.conditions, "Automation");
    }
    super::automation::Tally::default()
}

async fn cleanup(cluster: Arc<ManagedCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Nothing in the customer's account is owned by a ManagedCluster; forget per-cluster state.
    ctx.analysis_memory
        .forget(cluster.metadata.uid.as_deref().unwrap_or_default());
    ctx.succeeded(&format!(
        "ManagedCluster/{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    ));
    tracing::info!(namespace = %cluster.namespace().unwrap_or_default(), name = %cluster.name_any(), "cluster deleted");
    Ok(Action::await_change())
}

fn effective_mode_text(mode: Mode) -> &'static str {
    match mode {
        Mode::ReadOnly => "ReadOnly mode",
        Mode::Automated => "Automated mode",
    }
}

/// Time left until the next run is due, when the last run covered this generation and
/// succeeded; None when a run should happen now. A pending action that this run could
/// settle (`can_settle`: Automated, not a dry run) makes a run due every
/// [`VERIFY_RETRY`](crate::automation::VERIFY_RETRY), not on every status write.
fn next_run_in(
    old: Option<&ManagedClusterStatus>,
    generation: i64,
    interval: Duration,
    now: jiff::Timestamp,
    can_settle: bool,
) -> Option<Duration> {
    let old = old?;
    let ready = crate::api::conditions_find(&old.conditions, "Ready")?;
    if !ready.is_true() || old.observed_generation != generation {
        return None;
    }
    let last: jiff::Timestamp = old.last_analysis_at.as_deref()?.parse().ok()?;
    let interval = if can_settle && old.pending_action.is_some() {
        interval.min(crate::automation::VERIFY_RETRY)
    } else {
        interval
    };
    let due = last.as_second() + interval.as_secs() as i64;
    let left = due - now.as_second();
    (left > 0).then(|| Duration::from_secs(left as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Condition;

    fn status(ready: bool, generation: i64, last: &str) -> ManagedClusterStatus {
        let s = if ready {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        ManagedClusterStatus {
            conditions: vec![Condition::new(
                "Ready",
                s,
                "Observed",
                "",
                generation,
                jiff::Timestamp::UNIX_EPOCH,
            )],
            last_analysis_at: Some(last.into()),
            observed_generation: generation,
            ..Default::default()
        }
    }

    #[test]
    fn due_rules() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let interval = Duration::from_secs(900);
        let recent = status(true, 3, "2026-01-01T00:05:00Z");
        assert_eq!(
            next_run_in(Some(&recent), 3, interval, now, true),
            Some(Duration::from_secs(600))
        );
        // A new generation, a failed last run or an elapsed interval all mean: run now.
        assert_eq!(next_run_in(Some(&recent), 4, interval, now, true), None);
        let failed = status(false, 3, "2026-01-01T00:05:00Z");
        assert_eq!(next_run_in(Some(&failed), 3, interval, now, true), None);
        let old = status(true, 3, "2025-12-31T23:00:00Z");
        assert_eq!(next_run_in(Some(&old), 3, interval, now, true), None);
        assert_eq!(next_run_in(None, 3, interval, now, true), None);
        // A pending action brings the next run forward to the verify interval when it can be
        // settled, and only then; never to "every status write".
        let mut pending = status(true, 3, "2026-01-01T00:09:55Z");
        pending.pending_action = Some(crate::api::PendingAction {
            started_at: "2026-01-01T00:09:50Z".into(),
            phase: "Calling".into(),
            node: "n".into(),
            action: "eks:UpdateNodegroupConfig".into(),
            auto_scaling_group: None,
            instance_id: Some("i-1".into()),
            nodegroup: Some("ng".into()),
            from_size: Some(3),
            to_size: Some(2),
        });
        assert_eq!(
            next_run_in(Some(&pending), 3, interval, now, true),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            next_run_in(Some(&pending), 3, interval, now, false),
            Some(Duration::from_secs(895))
        );
        let later: jiff::Timestamp = "2026-01-01T00:10:06Z".parse().unwrap();
        assert_eq!(next_run_in(Some(&pending), 3, interval, later, true), None);
    }
}
