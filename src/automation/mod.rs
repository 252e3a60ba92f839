//! Opt-in automation: remove the nodes the consolidation found removable, one guarded,
//! journaled step at a time.
//!
//! A run (see [`run`]) first settles any action a previous run left pending (the operator
//! may have been killed mid-action), then walks the plan:
//! - **dry run** (`automation.dryRun`, the default): every candidate is judged by the guard
//!   against what was just read, and recorded as Planned or refused; nothing is called.
//! - **live**: for each candidate, within the disruption budget: describe the resources
//!   again and ask the guard; record the intent (phase Draining); cordon and drain the node;
//!   describe again and ask the guard again, immediately before the call; record the intent
//!   (phase Calling); make the one call the guard's approval allows; clear the intent.
//!   Any refusal, failure or drain timeout uncordons the node and clears the intent.
//!
//! Restart safety: an intent in phase Draining means no AWS call was sent, so the node is
//! uncordoned and the action abandoned (the next plan starts from fresh facts). An intent in
//! phase Calling means the call may have been sent: it is never sent again. Instead the
//! resources are described until they show the call took effect (→ Succeeded), or until
//! [`VERIFY_GRACE`] has passed without effect (→ Failed, node uncordoned).

pub mod drain;
pub mod guard;
pub mod plan;

use std::time::Duration;

use async_trait::async_trait;

use crate::api::{ActionRecord, PendingAction, RefusalRecord};
use crate::audit::CallObserver;
use crate::aws::{AwsError, CustomerClients};
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

/// Where a run writes what must survive it: the intent (durably, before acting) and Events.
#[async_trait]
pub trait Journal: Send {
    /// Record the pending action (or that there is none). Must be durable when it returns.
    async fn record_intent(&mut self, intent: Option<&PendingAction>) -> Result<(), String>;
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

/// What a run did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Actions taken or planned, oldest first.
    pub actions: Vec<ActionRecord>,
    /// Refusals, oldest first.
    pub refusals: Vec<RefusalRecord>,
    /// Nodes removed in this run (times).
    pub removals: Vec<jiff::Timestamp>,
    /// Look again this soon (a possibly-sent call is being verified); no plan was run.
    pub verify_again: Option<Duration>,
    /// Candidates the budget held back.
    pub deferred: usize,
}

/// Why a run stopped early. Nothing is left half done: the intent is cleared and the node
/// uncordoned before this is returned, except when recording the intent itself failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Recording the intent failed.
    #[error("could not record the pending action: {0}")]
    Journal(String),
    /// An AWS describe failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
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
        node: Some(node.to_string()),
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
        }),
        _ => None,
    }
}

/// Describe, right now, every resource the guard must see for `c`.
async fn describe(
    clients: &CustomerClients,
    cluster: &str,
    c: &Candidate,
) -> Result<Evidence, AwsError> {
    let nodegroup = |name: String| async move {
        match clients.eks.describe_nodegroup(cluster, &name).await {
            Ok(ng) => Ok(Some(ng)),
            Err(e) if e.kind == crate::aws::AwsErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    Ok(match &c.mutation {
        Mutation::TerminateInstance { group, instance_id } => Evidence {
            group: clients
                .autoscaling
                .describe_groups(std::slice::from_ref(group))
                .await?
                .into_iter()
                .find(|g| g.name == *group),
            instance: clients.ec2.describe_instance(instance_id).await?,
            nodegroup: match &c.owning_nodegroup {
                Some(n) => nodegroup(n.clone()).await?,
                None => None,
            },
            group_has_nodegroup: c.owning_nodegroup.is_some(),
        },
        Mutation::ScaleNodegroup { nodegroup: n, .. } => Evidence {
            nodegroup: nodegroup(n.clone()).await?,
            ..Evidence::default()
        },
    })
}

/// Has the call of a Calling intent taken effect?
async fn took_effect(
    clients: &CustomerClients,
    cluster: &str,
    m: &Mutation,
) -> Result<bool, AwsError> {
    match m {
        Mutation::TerminateInstance { group, instance_id } => {
            let gone = clients
                .ec2
                .describe_instance(instance_id)
                .await?
                .is_none_or(|i| {
                    i.state.as_deref() != Some("running") && i.state.as_deref() != Some("pending")
                });
            if gone {
                return Ok(true);
            }
            let member = clients
                .autoscaling
                .describe_groups(std::slice::from_ref(group))
                .await?
                .iter()
                .any(|g| g.instance_ids.iter().any(|id| id == instance_id));
            Ok(!member)
        }
        Mutation::ScaleNodegroup { nodegroup, to, .. } => {
            let ng = clients.eks.describe_nodegroup(cluster, nodegroup).await?;
            Ok(ng.desired_size.is_some_and(|d| d <= *to))
        }
    }
}

/// The customer cluster, for cordon and eviction.
pub struct ClusterAccess<'a> {
    /// Client with the EKS token.
    pub client: &'a kube::Client,
    /// Where its calls are recorded.
    pub observer: &'a dyn CallObserver,
}

/// Uncordon after an abandoned action; a failure is reported in the message, not fatal.
async fn uncordon(access: &ClusterAccess<'_>, node: &str) -> Option<String> {
    drain::set_unschedulable(access.client, node, false, access.observer)
        .await
        .err()
        .map(|e| format!("; uncordoning node {node} failed ({e}), uncordon it by hand"))
}

/// Settle an action a previous run left pending. Returns Some(delay) when the run must stop
/// here and look again later.
async fn settle(
    pending: &PendingAction,
    settings: &Settings,
    clients: &CustomerClients,
    access: &ClusterAccess<'_>,
    journal: &mut dyn Journal,
    now: jiff::Timestamp,
    out: &mut Outcome,
) -> Result<Option<Duration>, RunError> {
    let target = mutation_of(pending).map(|m| m.target()).unwrap_or_default();
    let finish = |outcome: &str, message: Option<String>| {
        record(
            now,
            &pending.action,
            target.clone(),
            &pending.node,
            outcome,
            message,
            false,
        )
    };
    let mutation = mutation_of(pending);
    match (pending.phase.as_str(), mutation) {
        (PHASE_CALLING, Some(m)) => {
            if took_effect(clients, &settings.cluster, &m).await? {
                out.actions.push(finish(
                    SUCCEEDED,
                    Some("confirmed after a restart: the call had taken effect".into()),
                ));
                out.removals.push(now);
                journal
                    .record_intent(None)
                    .await
                    .map_err(RunError::Journal)?;
                journal
                    .event(
                        false,
                        "ActionConfirmed",
                        &format!(
                            "{} on {target} took effect (confirmed after a restart)",
                            pending.action
                        ),
                    )
                    .await;
                return Ok(None);
            }
            let started: jiff::Timestamp = pending.started_at.parse().unwrap_or(now);
            if now.as_second() - started.as_second() < VERIFY_GRACE.as_secs() as i64 {
                // The call may still land: do nothing else until we know.
                return Ok(Some(VERIFY_RETRY));
            }
            let note = uncordon(access, &pending.node).await;
            let message = format!(
                "the call may have been sent before a restart but had no effect after {}s{}",
                VERIFY_GRACE.as_secs(),
                note.unwrap_or_default()
            );
            journal
                .event(
                    true,
                    "ActionFailed",
                    &format!("{} on {target}: {message}", pending.action),
                )
                .await;
            out.actions.push(finish(FAILED, Some(message)));
            journal
                .record_intent(None)
                .await
                .map_err(RunError::Journal)?;
            Ok(None)
        }
        _ => {
            // Draining (or unreadable): no AWS call was sent. Give the node back.
            let note = uncordon(access, &pending.node).await;
            let message = format!(
                "interrupted while draining; node uncordoned, nothing was called in AWS{}",
                note.unwrap_or_default()
            );
            journal
                .event(
                    true,
                    "ActionAbandoned",
                    &format!("{} on {target}: {message}", pending.action),
                )
                .await;
            out.actions.push(finish(ABANDONED, Some(message)));
            journal
                .record_intent(None)
                .await
                .map_err(RunError::Journal)?;
            Ok(None)
        }
    }
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
    clock: &dyn crate::credentials::Clock,
) -> Result<Outcome, RunError> {
    let mut out = Outcome::default();
    if let Some(p) = pending
        && let Some(wait) =
            settle(p, settings, clients, access, journal, clock.now(), &mut out).await?
    {
        out.verify_again = Some(wait);
        return Ok(out);
    }
    let earlier: Vec<jiff::Timestamp> = removals.iter().chain(&out.removals).copied().collect();
    let allowed = settings.budget.allowed(&earlier, clock.now()) as usize;
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
            out.actions.push(record(
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
        match execute(settings, c, clients, access, journal, clock, &mut out).await? {
            Step::Removed => used += 1,
            Step::Refused => {}
            Step::Stop => break,
        }
    }
    Ok(out)
}

enum Step {
    Removed,
    Refused,
    Stop,
}

/// Remove one node: guard, intent, drain, guard again, intent, call.
async fn execute(
    settings: &Settings,
    c: &Candidate,
    clients: &CustomerClients,
    access: &ClusterAccess<'_>,
    journal: &mut dyn Journal,
    clock: &dyn crate::credentials::Clock,
    out: &mut Outcome,
) -> Result<Step, RunError> {
    let action = c.mutation.action();
    let target = c.mutation.target();
    let refuse = |r: Refusal, out: &mut Outcome| out.refusals.push(refusal_record(clock.now(), &r));

    // Do not drain a node whose removal the guard would refuse anyway.
    if let Err(r) = guard::check(
        &settings.cluster,
        &c.mutation,
        &describe(clients, &settings.cluster, c).await?,
    ) {
        tracing::info!(node = %c.node, refusal = %r, "guard refused before draining");
        refuse(r, out);
        return Ok(Step::Refused);
    }
    tracing::info!(node = %c.node, action, target = %target, "draining node");
    let started = clock.now();
    journal
        .record_intent(Some(&intent(c, PHASE_DRAINING, started)))
        .await
        .map_err(RunError::Journal)?;

    // Abandon: give the node back, clear the intent, say why.
    async fn abandon(
        c: &Candidate,
        access: &ClusterAccess<'_>,
        journal: &mut dyn Journal,
    ) -> Result<Option<String>, RunError> {
        let note = uncordon(access, &c.node).await;
        journal
            .record_intent(None)
            .await
            .map_err(RunError::Journal)?;
        Ok(note)
    }

    let drained =
        match drain::set_unschedulable(access.client, &c.node, true, access.observer).await {
            Ok(()) => {
                drain::evict_all(
                    access.client,
                    &c.node,
                    settings.drain_timeout,
                    access.observer,
                )
                .await
            }
            Err(e) => Err(e),
        };
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
        Err(e) => Some(format!("drain failed: {e}")),
    };
    if let Some(message) = failure {
        tracing::warn!(node = %c.node, %message, "drain failed");
        let message = format!(
            "{message}; node uncordoned{}",
            abandon(c, access, journal).await?.unwrap_or_default()
        );
        journal
            .event(true, "DrainFailed", &format!("node {}: {message}", c.node))
            .await;
        out.actions.push(record(
            clock.now(),
            action,
            target,
            &c.node,
            FAILED,
            Some(message),
            false,
        ));
        return Ok(Step::Stop);
    }

    // The guard again, on a fresh describe, immediately before the call.
    let evidence = match describe(clients, &settings.cluster, c).await {
        Ok(e) => e,
        Err(e) => {
            abandon(c, access, journal).await?;
            return Err(e.into());
        }
    };
    let approval = match guard::check(&settings.cluster, &c.mutation, &evidence) {
        Ok(a) => a,
        Err(mut r) => {
            tracing::warn!(node = %c.node, refusal = %r, "guard refused after draining");
            let note = abandon(c, access, journal).await?.unwrap_or_default();
            r.reason = format!(
                "{} (checked after draining node {}, which was uncordoned{note})",
                r.reason, c.node
            );
            // The controller announces it with the other new refusals.
            refuse(r, out);
            return Ok(Step::Refused);
        }
    };
    journal
        .record_intent(Some(&intent(c, PHASE_CALLING, started)))
        .await
        .map_err(RunError::Journal)?;
    tracing::info!(node = %c.node, action, target = %target, "calling");
    let called = match approval {
        Approval::Terminate(t) => clients.autoscaling.terminate_instance(t).await,
        Approval::ScaleNodegroup(s) => clients.eks.update_nodegroup_size(s).await,
    };
    match called {
        Ok(()) => {
            journal
                .record_intent(None)
                .await
                .map_err(RunError::Journal)?;
            journal
                .event(
                    false,
                    "NodeRemoved",
                    &format!("{action} on {target}: node {} drained and removed", c.node),
                )
                .await;
            out.actions.push(record(
                clock.now(),
                action,
                target,
                &c.node,
                SUCCEEDED,
                None,
                false,
            ));
            out.removals.push(clock.now());
            Ok(Step::Removed)
        }
        Err(e) => {
            // AWS answered with an error: the call did not take effect.
            let note = abandon(c, access, journal).await?.unwrap_or_default();
            let message = format!("{e}; node uncordoned{note}");
            journal
                .event(
                    true,
                    "ActionFailed",
                    &format!("{action} on {target}: {message}"),
                )
                .await;
            out.actions.push(record(
                clock.now(),
                action,
                target,
                &c.node,
                FAILED,
                Some(message),
                false,
            ));
            Ok(Step::Stop)
        }
    }
}
