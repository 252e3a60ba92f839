//! Opt-in automation: remove the nodes the consolidation found removable, one guarded,
//! journaled step at a time.
//!
//! A run (see [`run`]) first settles any action a previous run left pending (the operator
//! may have been killed mid-action); a run that had something to settle stops there, and
//! the next run plans from fresh facts. Otherwise it walks the plan:
//! - **dry run** (`automation.dryRun`, the default): every candidate is judged by the guard
//!   against what was just read, and recorded as Planned or refused. Nothing is called in
//!   AWS and nothing is written in the customer's cluster, not even to settle a leftover.
//! - **live**, within the disruption budget, for a termination: describe the resources
//!   again and ask the guard; re-read the node (someone may have cordoned it since: then
//!   it is left alone); record the intent (phase Draining); cordon and drain the node;
//!   record the intent (phase Calling); describe again and ask the guard again, right
//!   before the call; make the one call the guard's approval allows; record the result and
//!   clear the intent in one write. For a nodegroup scale-in (EKS chooses, drains and
//!   removes the instance, so crossguard does not drain): describe, guard, intent
//!   (Calling), describe, guard, call, result. Refusals, failures and drain timeouts
//!   uncordon the node and clear the intent; when the uncordon fails, a Draining intent
//!   stays so the next run tries again.
//!
//! Restart safety: an intent in phase Draining means no AWS call was sent, so the node is
//! uncordoned and the action abandoned. An intent in phase Calling means the call may have
//! been sent: it is never sent again. Instead the resources are described until they show
//! the call took effect (→ Succeeded), or until [`VERIFY_GRACE`] has passed without effect
//! (→ Failed, node uncordoned). A call that failed without a definite answer (timeout, lost
//! connection, server error) is treated the same way as one interrupted by a restart.

pub mod drain;
pub mod guard;
pub mod plan;

use std::time::Duration;

use async_trait::async_trait;

use crate::api::{ActionRecord, PendingAction, RefusalRecord};
use crate::audit::CallObserver;
use crate::aws::{AwsError, AwsErrorKind, CustomerClients};
use drain::Drained;
use guard::{Approval, Evidence, Mutation, Refusal};
use plan::{AwsView, Budget, Candidate, Plan};

/// How long after a possibly-sent call crossguard keeps checking for its effect before it
/// concludes that the call did not happen.
pub const VERIFY_GRACE: Duration = Duration::from_secs(120);
/// How soon to look again while a possibly-sent call is being verified.
pub const VERIFY_RETRY: Duration = Duration::from_secs(10);

/// Outcomes shown in status.
pub const PLANNED: &str = "Planned";
/// See [`PLANNED`].
pub const SUCCEEDED: &str = "Succeeded";
/// See [`PLANNED`].
pub const FAILED: &str = "Failed";
/// See [`PLANNED`].
pub const ABANDONED: &str = "Abandoned";

/// Phases of a pending action.
pub const PHASE_DRAINING: &str = "Draining";
/// See [`PHASE_DRAINING`].
pub const PHASE_CALLING: &str = "Calling";

/// Where a run writes what must survive it, and Events.
#[async_trait]
pub trait Journal: Send {
    /// Durably record, in one write: the pending action (or that there is none), the
    /// finished action (if any) and the time of a node removal (if any). On error nothing
    /// is known to have been recorded.
    async fn record(
        &mut self,
        intent: Option<&PendingAction>,
        done: Option<&ActionRecord>,
        removed: Option<jiff::Timestamp>,
    ) -> Result<(), String>;
    /// Publish an Event about the ManagedCluster.
    async fn event(&mut self, warning: bool, reason: &str, note: &str);
}

/// What a run is allowed to do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The EKS cluster name (the value of the cluster tag).
    pub cluster: String,
    /// Only plan.
    pub dry_run: bool,
    /// The disruption budget.
    pub budget: Budget,
    /// How long a drain may take.
    pub drain_timeout: Duration,
}

/// What a run did, beyond what it recorded through the [`Journal`].
#[derive(Debug, Default)]
pub struct Outcome {
    /// Planned actions (dry run), oldest first.
    pub planned: Vec<ActionRecord>,
    /// Refusals, oldest first.
    pub refusals: Vec<RefusalRecord>,
    /// Actions finished in this run (also recorded through the journal), oldest first.
    pub finished: Vec<ActionRecord>,
    /// Look again this soon: a possibly-sent call is being verified.
    pub verify_again: Option<Duration>,
    /// An action is left pending that only a live run (or a human) can settle.
    pub left_pending: Option<String>,
    /// Candidates the budget held back.
    pub deferred: usize,
    /// Why the run stopped early, if it did. Nothing is left half done when it does: the
    /// intent is cleared and the node uncordoned, except when recording itself failed
    /// (then the last recorded intent is settled by the next run).
    pub error: Option<RunError>,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Recording the intent failed.
    #[error("could not record the pending action: {0}")]
    Journal(String),
    /// An AWS describe failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// This replica no longer holds the leader Lease: nothing more is done to the
    /// customer's cluster, and the intent stays for the next leader.
    #[error("this replica no longer holds the leader lease; the next leader takes the action over")]
    NotLeading,
}

fn record(
    now: jiff::Timestamp,
    action: &str,
    target: String,
    node: &str,
    outcome: &str,
    message: Option<String>,
    dry_run: bool,
) -> ActionRecord {
    ActionRecord {
        time: now.to_string(),
        action: action.to_string(),
        target,
        node: (!node.is_empty()).then(|| node.to_string()),
        outcome: outcome.to_string(),
        message,
        dry_run,
    }
}

fn refusal_record(now: jiff::Timestamp, r: &Refusal) -> RefusalRecord {
    RefusalRecord {
        time: now.to_string(),
        action: r.action.to_string(),
        target: r.target.clone(),
        reason: r.reason.clone(),
    }
}

/// The intent for a candidate in `phase`.
pub fn intent(c: &Candidate, phase: &str, started: jiff::Timestamp) -> PendingAction {
    let mut p = PendingAction {
        started_at: started.to_string(),
        phase: phase.to_string(),
        node: c.node.clone(),
        action: c.mutation.action().to_string(),
        auto_scaling_group: None,
        instance_id: Some(c.instance_id.clone()),
        nodegroup: None,
        from_size: None,
        to_size: None,
    };
    match &c.mutation {
        Mutation::TerminateInstance { group, .. } => {
            p.auto_scaling_group = Some(group.clone());
            p.nodegroup = c.owning_nodegroup.clone();
        }
        Mutation::ScaleNodegroup {
            nodegroup,
            from,
            to,
            ..
        } => {
            p.nodegroup = Some(nodegroup.clone());
            p.from_size = Some(*from);
            p.to_size = Some(*to);
        }
    }
    p
}

/// The mutation an intent was about, if it is well formed.
fn mutation_of(p: &PendingAction) -> Option<Mutation> {
    match p.action.as_str() {
        guard::TERMINATE_ACTION => Some(Mutation::TerminateInstance {
            group: p.auto_scaling_group.clone()?,
            instance_id: p.instance_id.clone()?,
        }),
        guard::SCALE_NODEGROUP_ACTION => Some(Mutation::ScaleNodegroup {
            nodegroup: p.nodegroup.clone()?,
            from: p.from_size?,
            to: p.to_size?,
            because_of: p.instance_id.clone()?,
        }),
        _ => None,
    }
}

async fn nodegroup(
    clients: &CustomerClients,
    cluster: &str,
    name: &str,
) -> Result<Option<crate::aws::Nodegroup>, AwsError> {
    match clients.eks.describe_nodegroup(cluster, name).await {
        Ok(ng) => Ok(Some(ng)),
        Err(e) if e.kind == AwsErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn group(
    clients: &CustomerClients,
    name: &str,
) -> Result<Option<crate::aws::AutoScalingGroup>, AwsError> {
    Ok(clients
        .autoscaling
        .describe_groups(&[name.to_string()])
        .await?
        .into_iter()
        .find(|g| g.name == name))
}

/// Describe, right now, every resource the guard must see for `m`.
async fn describe(
    clients: &CustomerClients,
    cluster: &str,
    m: &Mutation,
    planned_owner: Option<&str>,
) -> Result<Evidence, AwsError> {
    Ok(match m {
        Mutation::TerminateInstance {
            group: name,
            instance_id,
        } => {
            let g = group(clients, name).await?;
            // The owner as the group says it now, or as the plan saw it.
            let owner = g
                .as_ref()
                .and_then(|g| g.tags.get("eks:nodegroup-name").cloned())
                .or_else(|| planned_owner.map(str::to_string));
            Evidence {
                nodegroup: match &owner {
                    Some(n) => nodegroup(clients, cluster, n).await?,
                    None => None,
                },
                group_has_nodegroup: owner.is_some(),
                group: g,
                instance: clients.ec2.describe_instance(instance_id).await?,
            }
        }
        Mutation::ScaleNodegroup { nodegroup: n, .. } => {
            let ng = nodegroup(clients, cluster, n).await?;
            let g = match ng.as_ref().and_then(|n| n.auto_scaling_groups.first()) {
                Some(name) => group(clients, name).await?,
                None => None,
            };
            Evidence {
                nodegroup: ng,
                group: g,
                ..Evidence::default()
            }
        }
    })
}

/// Has the call of a Calling intent taken effect?
async fn took_effect(
    clients: &CustomerClients,
    cluster: &str,
    m: &Mutation,
) -> Result<bool, AwsError> {
    match m {
        Mutation::TerminateInstance {
            group: name,
            instance_id,
        } => {
            let gone = clients
                .ec2
                .describe_instance(instance_id)
                .await?
                .is_none_or(|i| !matches!(i.state.as_deref(), Some("running" | "pending")));
            if gone {
                return Ok(true);
            }
            // Out of the group, or on its way out (a lifecycle hook may hold it running).
            Ok(group(clients, name).await?.is_none_or(|g| {
                !g.instance_ids.contains(instance_id)
                    || g.instance_states
                        .get(instance_id)
                        .is_some_and(|s| s.starts_with("Terminating") || s.starts_with("Detach"))
            }))
        }
        Mutation::ScaleNodegroup {
            nodegroup: n, to, ..
        } => Ok(nodegroup(clients, cluster, n)
            .await?
            .and_then(|ng| ng.desired_size)
            .is_some_and(|d| d <= *to)),
    }
}

/// The customer cluster, for cordon and eviction.
pub struct ClusterAccess<'a> {
    /// Client with the EKS token.
    pub client: &'a kube::Client,
    /// Where its calls are recorded.
    pub observer: &'a dyn CallObserver,
    /// Cordon, eviction and uncordon happen only while this replica leads
    /// ([`crate::leader`]); otherwise the run stops with [`RunError::NotLeading`] and the
    /// recorded intent is left to the next leader, as if this replica had died there.
    pub leadership: &'a crate::leader::Leadership,
}

/// Give back the node of an action, if the action cordons one (a nodegroup scale-in does
/// not); a failure is reported, not fatal.
async fn give_back(access: &ClusterAccess<'_>, action: &str, node: &str) -> GivenBack {
    if !cordons(action) {
        return GivenBack::nothing();
    }
    if !access.leadership.is_leading() {
        return GivenBack {
            note: format!(
                "; node {node} left cordoned: this replica no longer leads, the next leader gives it back"
            ),
            ok: false,
        };
    }
    match drain::set_unschedulable(access.client, node, false, access.observer).await {
        Ok(()) => GivenBack {
            note: format!("; node {node} uncordoned"),
            ok: true,
        },
        Err(e) => GivenBack {
            note: format!("; uncordoning node {node} failed ({e}), retried next run"),
            ok: false,
        },
    }
}

/// How giving a node back went.
struct GivenBack {
    /// For messages.
    note: String,
    /// False when the node may still be cordoned.
    ok: bool,
}

impl GivenBack {
    /// Nothing to give back (the action never cordoned).
    fn nothing() -> Self {
        GivenBack {
            note: String::new(),
            ok: true,
        }
    }

    /// The intent to keep: none when the node is back, else a Draining one (nothing is in
    /// flight in AWS any more; only the uncordon is left), so the next run retries it.
    fn leftover(&self, mut intent: PendingAction) -> Option<PendingAction> {
        (!self.ok).then(|| {
            intent.phase = PHASE_DRAINING.to_string();
            intent
        })
    }
}

/// Did crossguard cordon the node of this action? (A nodegroup scale-in never does.)
fn cordons(action: &str) -> bool {
    action == guard::TERMINATE_ACTION
}

/// Settle an action a previous run left pending.
async fn settle(
    pending: &PendingAction,
    settings: &Settings,
    clients: &CustomerClients,
    access: &ClusterAccess<'_>,
    journal: &mut dyn Journal,
    now: jiff::Timestamp,
    out: &mut Outcome,
) -> Result<(), RunError> {
    let Some(m) = mutation_of(pending) else {
        out.left_pending = Some(format!(
            "status.pendingAction for node {} cannot be read; check the node and the {} resources by hand, then remove it from status",
            pending.node, pending.action
        ));
        return Ok(());
    };
    let target = m.target();
    let finish = |outcome: &str, message: String| {
        record(
            now,
            &pending.action,
            target.clone(),
            &pending.node,
            outcome,
            Some(message),
            false,
        )
    };
    let calling = pending.phase == PHASE_CALLING;
    if calling && took_effect(clients, &settings.cluster, &m).await? {
        let done = finish(
            SUCCEEDED,
            "confirmed after the fact: the call had taken effect".into(),
        );
        journal
            .record(None, Some(&done), Some(now))
            .await
            .map_err(RunError::Journal)?;
        journal
            .event(
                false,
                "ActionConfirmed",
                &format!(
                    "{} on {target} took effect (confirmed by describing it)",
                    pending.action
                ),
            )
            .await;
        out.finished.push(done);
        return Ok(());
    }
    if calling {
        // Unreadable start time: assume the grace period is over.
        let started = pending.started_at.parse::<jiff::Timestamp>().ok();
        let within_grace = started
            .is_some_and(|s| now.as_second() - s.as_second() < VERIFY_GRACE.as_secs() as i64);
        if within_grace {
            // The call may still land: do nothing else until we know.
            out.verify_again = Some(VERIFY_RETRY);
            return Ok(());
        }
    }
    if settings.dry_run {
        // Settling the rest means writing (uncordon); a dry run writes nothing.
        out.left_pending = Some(format!(
            "{} on {target} (node {}, phase {}) is unfinished; it is settled when automation.dryRun is false",
            pending.action, pending.node, pending.phase
        ));
        return Ok(());
    }
    let given = give_back(access, &pending.action, &pending.node).await;
    if let Some(keep) = given.leftover(pending.clone()) {
        journal
            .record(Some(&keep), None, None)
            .await
            .map_err(RunError::Journal)?;
        out.left_pending = Some(format!(
            "{} on {target} is over, but node {} could not be uncordoned yet{}",
            pending.action, pending.node, given.note
        ));
        return Ok(());
    }
    let note = given.note;
    let (outcome, reason, message) = if calling {
        (
            FAILED,
            "ActionFailed",
            format!(
                "the call may have been sent but had no effect after {}s{note}",
                VERIFY_GRACE.as_secs()
            ),
        )
    } else {
        (
            ABANDONED,
            "ActionAbandoned",
            format!("abandoned before any call took effect{note}"),
        )
    };
    let done = finish(outcome, message.clone());
    journal
        .record(None, Some(&done), None)
        .await
        .map_err(RunError::Journal)?;
    journal
        .event(
            true,
            reason,
            &format!("{} on {target}: {message}", pending.action),
        )
        .await;
    out.finished.push(done);
    Ok(())
}

/// One automation run. `removals` are the earlier removal times (for the hourly budget).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    settings: &Settings,
    plan: &Plan,
    view: &AwsView<'_>,
    pending: Option<&PendingAction>,
    removals: &[jiff::Timestamp],
    clients: &CustomerClients,
    access: &ClusterAccess<'_>,
    journal: &mut dyn Journal,
    clock: &dyn crate::clock::Clock,
) -> Outcome {
    let mut out = Outcome::default();
    if let Some(p) = pending {
        // Settle first; planning waits for the next run, on facts read after settling.
        if let Err(e) = settle(p, settings, clients, access, journal, clock.now(), &mut out).await {
            out.error = Some(e);
        }
        if out.left_pending.is_none() || !settings.dry_run {
            return out;
        }
    }
    let allowed = settings.budget.allowed(removals, clock.now()) as usize;
    let mut used = 0;
    for c in &plan.candidates {
        // First the guard on what the plan read (no calls): what it refuses is reported
        // whatever the budget, so an untagged nodegroup is visible even in a busy cluster.
        if let Err(r) = guard::check(
            &settings.cluster,
            &c.mutation,
            &plan::plan_evidence(c, view),
        ) {
            tracing::info!(node = %c.node, refusal = %r, "guard refused a planned action");
            out.refusals.push(refusal_record(clock.now(), &r));
            continue;
        }
        if used >= allowed {
            out.deferred += 1;
            continue;
        }
        if settings.dry_run {
            used += 1;
            out.planned.push(record(
                clock.now(),
                c.mutation.action(),
                c.mutation.target(),
                &c.node,
                PLANNED,
                None,
                true,
            ));
            continue;
        }
        match execute(settings, c, clients, access, journal, clock, &mut out).await {
            Ok(Step::Removed) => used += 1,
            Ok(Step::Refused) => {}
            Ok(Step::Stop) => break,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    out
}

enum Step {
    Removed,
    Refused,
    Stop,
}

/// Remove one node: guard, intent, (drain, guard again, intent,) call, result.
async fn execute(
    settings: &Settings,
    c: &Candidate,
    clients: &CustomerClients,
    access: &ClusterAccess<'_>,
    journal: &mut dyn Journal,
    clock: &dyn crate::clock::Clock,
    out: &mut Outcome,
) -> Result<Step, RunError> {
    let action = c.mutation.action();
    let target = c.mutation.target();
    let cluster = settings.cluster.as_str();
    let owner = c.owning_nodegroup.as_deref();
    let drains = cordons(action);

    // Do not start on a node whose removal the guard would refuse anyway.
    if let Err(r) = guard::check(
        cluster,
        &c.mutation,
        &describe(clients, cluster, &c.mutation, owner).await?,
    ) {
        tracing::info!(node = %c.node, refusal = %r, "guard refused before starting");
        out.refusals.push(refusal_record(clock.now(), &r));
        return Ok(Step::Refused);
    }
    let started = clock.now();

    if drains {
        // Cordoned since the snapshot was taken: someone else is on it; leave it to them.
        match drain::is_cordoned(access.client, &c.node, access.observer).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(node = %c.node, "node was cordoned by someone else meanwhile; left alone");
                return Ok(Step::Refused);
            }
            Err(e) => {
                tracing::warn!(node = %c.node, error = %e, "could not read the node; left alone");
                return Ok(Step::Stop);
            }
        }
        journal
            .record(Some(&intent(c, PHASE_DRAINING, started)), None, None)
            .await
            .map_err(RunError::Journal)?;
        tracing::info!(node = %c.node, action, target = %target, "draining node");
        if !access.leadership.is_leading() {
            return Err(RunError::NotLeading);
        }
        let drained =
            match drain::set_unschedulable(access.client, &c.node, true, access.observer).await {
                Ok(()) => {
                    drain::evict_all(
                        access.client,
                        &c.node,
                        settings.drain_timeout,
                        access.observer,
                        access.leadership,
                    )
                    .await
                }
                Err(e) => Err(drain::DrainError::Kube(e)),
            };
        // Not the leader any more: no uncordon either; the intent stays as it is.
        if matches!(drained, Err(drain::DrainError::NotLeading)) || !access.leadership.is_leading()
        {
            return Err(RunError::NotLeading);
        }
        tracing::info!(node = %c.node, result = ?drained, "drain finished");
        let failure = match drained {
            Ok(Drained::Empty { .. }) => None,
            Ok(Drained::TimedOut {
                remaining,
                last_refusal,
            }) => Some(format!(
                "drain timed out after {}s with {remaining} pods left{}",
                settings.drain_timeout.as_secs(),
                last_refusal.map(|r| format!(" ({r})")).unwrap_or_default()
            )),
            Err(e) => Some(format!("drain stopped: {e}")),
        };
        if let Some(message) = failure {
            let given = give_back(access, action, &c.node).await;
            let keep = given.leftover(intent(c, PHASE_DRAINING, started));
            let message = format!("{message}{}", given.note);
            tracing::warn!(node = %c.node, %message, "drain failed");
            let done = record(
                clock.now(),
                action,
                target,
                &c.node,
                FAILED,
                Some(message.clone()),
                false,
            );
            journal
                .record(keep.as_ref(), Some(&done), None)
                .await
                .map_err(RunError::Journal)?;
            journal
                .event(true, "DrainFailed", &format!("node {}: {message}", c.node))
                .await;
            out.finished.push(done);
            return Ok(Step::Stop);
        }
    }
    journal
        .record(Some(&intent(c, PHASE_CALLING, started)), None, None)
        .await
        .map_err(RunError::Journal)?;
    // The guard again, on a fresh describe, immediately before the call.
    let checked = match describe(clients, cluster, &c.mutation, owner).await {
        Ok(evidence) => guard::check(cluster, &c.mutation, &evidence).map_err(Ok),
        Err(e) => Err(Err(e)),
    };
    let approval = match checked {
        Ok(a) => a,
        Err(failed) => {
            // Nothing was called: give the node back and clear the intent.
            let given = give_back(access, action, &c.node).await;
            journal
                .record(
                    given.leftover(intent(c, PHASE_DRAINING, started)).as_ref(),
                    None,
                    None,
                )
                .await
                .map_err(RunError::Journal)?;
            let note = given.note;
            return match failed {
                Ok(mut r) => {
                    tracing::warn!(node = %c.node, refusal = %r, "guard refused right before the call");
                    if drains {
                        r.reason = format!(
                            "{} (checked after draining node {}{note})",
                            r.reason, c.node
                        );
                    }
                    out.refusals.push(refusal_record(clock.now(), &r));
                    Ok(Step::Refused)
                }
                Err(e) => Err(e.into()),
            };
        }
    };
    tracing::info!(node = %c.node, action, target = %target, "calling");
    let called = match approval {
        Approval::Terminate(t) => clients.autoscaling.terminate_instance(t).await,
        Approval::ScaleNodegroup(s) => {
            let s = s.with_request_token(&started.as_second().to_string());
            clients.eks.update_nodegroup_size(s).await
        }
    };
    let node = if drains { c.node.as_str() } else { "" };
    match called {
        Ok(()) => {
            let message = (!drains).then(|| {
                format!(
                    "EKS chooses, drains and removes the instance (node {} was found removable)",
                    c.node
                )
            });
            let done = record(
                clock.now(),
                action,
                target.clone(),
                node,
                SUCCEEDED,
                message,
                false,
            );
            journal
                .record(None, Some(&done), Some(clock.now()))
                .await
                .map_err(RunError::Journal)?;
            journal
                .event(
                    false,
                    "NodeRemoved",
                    &format!("{action} on {target} succeeded"),
                )
                .await;
            out.finished.push(done);
            Ok(Step::Removed)
        }
        Err(e) if e.outcome_unknown => {
            // No definite answer: the call may have taken effect. Keep the intent; the next
            // run verifies it and never sends it again.
            journal
                .event(
                    true,
                    "ActionUnconfirmed",
                    &format!("{action} on {target}: {e}; verifying before anything else"),
                )
                .await;
            out.verify_again = Some(VERIFY_RETRY);
            Ok(Step::Stop)
        }
        Err(e) => {
            // AWS rejected it: nothing happened.
            let given = give_back(access, action, &c.node).await;
            let keep = given.leftover(intent(c, PHASE_DRAINING, started));
            let message = format!("{e}{}", given.note);
            journal
                .event(
                    true,
                    "ActionFailed",
                    &format!("{action} on {target}: {message}"),
                )
                .await;
            let done = record(
                clock.now(),
                action,
                target,
                node,
                FAILED,
                Some(message),
                false,
            );
            journal
                .record(keep.as_ref(), Some(&done), None)
                .await
                .map_err(RunError::Journal)?;
            out.finished.push(done);
            Ok(Step::Stop)
        }
    }
}
