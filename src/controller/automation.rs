//! The ManagedCluster controller's side of automation: the journal that writes intents to
//! status, merging a run's records into status, and the Events and audit records of
//! decisions that made no call (plans and refusals).

use async_trait::async_trait;
use kube::{Api, ResourceExt};

use super::Context;
use super::inventory::Collected;
use super::status::{apply_status, publish};
use crate::analysis::RemovableNode;
use crate::api::{
    ActionRecord, Condition, ConditionStatus, ManagedCluster, ManagedClusterStatus, PendingAction,
    RefusalRecord, set_condition,
};
use crate::audit::{AuditTrail, CallObserver};
use crate::automation::plan::{self, AwsView, Budget, NodeFacts};
use crate::automation::{self, ClusterAccess, Journal, Outcome, Settings};
use crate::aws::CustomerClients;

/// Most records kept in each status list.
const KEEP: usize = 20;

/// Writes intents into the ManagedCluster's status (server-side apply of the whole status,
/// so the write is durable when it returns) and publishes Events.
struct StatusJournal<'a> {
    api: &'a Api<ManagedCluster>,
    cluster: &'a ManagedCluster,
    ctx: &'a Context,
    trail: &'a AuditTrail,
    status: ManagedClusterStatus,
}

#[async_trait]
impl Journal for StatusJournal<'_> {
    async fn record(
        &mut self,
        intent: Option<&PendingAction>,
        done: Option<&ActionRecord>,
        removed: Option<jiff::Timestamp>,
    ) -> Result<(), String> {
        let before = self.status.clone();
        self.status.pending_action = intent.cloned();
        if let Some(done) = done {
            self.status.recent_actions.insert(0, done.clone());
            self.status.recent_actions.truncate(KEEP);
        }
        if let Some(t) = removed {
            self.status.recent_removals.push(t.to_string());
        }
        match apply_status(self.api, self.cluster, None, &self.status).await {
            Ok(()) => {
                // The calls that led here (describes, the guard's decision, cordons and
                // evictions, a finished call) go to the audit log now, not at the end of a
                // run that a drain can keep going for minutes: a restart then loses at
                // most the call in flight, whose intent status holds.
                if let Err(e) = self.trail.flush(&self.ctx.store).await {
                    tracing::warn!(error = %e, "audit records kept for the end of the run");
                }
                Ok(())
            }
            Err(e) => {
                // Whether the write landed is unknown: keep what is known to be durable, so
                // the final status write cannot drop an action under way (the next run
                // settles the last recorded intent by looking).
                self.status = before;
                Err(e.to_string())
            }
        }
    }

    async fn event(&mut self, warning: bool, reason: &str, note: &str) {
        publish(self.ctx, self.cluster, !warning, reason, note, "Automation").await;
    }
}

/// Everything one automation run needs from the reconcile.
pub(super) struct Inputs<'a> {
    pub cluster: &'a ManagedCluster,
    pub api: &'a Api<ManagedCluster>,
    pub ctx: &'a Context,
    pub clients: &'a CustomerClients,
    pub collected: &'a Collected,
    pub removable: &'a [RemovableNode],
    pub nodes: &'a [NodeFacts],
    pub client: &'a kube::Client,
    pub trail: &'a AuditTrail,
    pub drain_timeout: std::time::Duration,
    pub min_node_age: std::time::Duration,
}

/// What one automation run did, for the cluster's history.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// How soon to look again when a possibly-sent call is being verified.
    pub verify_again: Option<std::time::Duration>,
    /// Actions confirmed done in this run (outcome Succeeded, not dry runs), oldest first.
    pub confirmed: Vec<ActionRecord>,
    /// Refusals announced in this run (a refusal repeated while nothing changes counts
    /// once, like its Event and metric).
    pub refusals: u32,
}

/// Run automation and fold the result into `status`. Returns how soon to look again when a
/// possibly-sent call is being verified, and what was confirmed and refused. Never fails
/// the reconcile: a failed run is in the `Automation` condition, and intents already
/// written stay for the next run to settle.
pub(super) async fn automate(input: Inputs<'_>, status: &mut ManagedClusterStatus) -> Tally {
    let Inputs {
        cluster,
        api,
        ctx,
        clients,
        collected,
        removable,
        nodes,
        client,
        trail,
        drain_timeout,
        min_node_age,
    } = input;
    let observer: &dyn CallObserver = trail;
    let now = ctx.clock.now();
    // `status` started from a fresh read of the API server (see `apply`), so the pending
    // intent and the removal times are this operator's latest writes.
    let spec = &cluster.spec.automation;
    let budget = Budget {
        max_per_run: spec.disruption_budget.max_nodes_per_run,
        max_per_hour: spec.disruption_budget.max_nodes_per_hour,
        min_node_age,
    };
    let settings = Settings {
        cluster: cluster.spec.cluster_name.clone(),
        dry_run: spec.dry_run,
        budget,
        drain_timeout,
    };
    let view = AwsView {
        nodegroups: &collected.nodegroups,
        groups: &collected.groups,
        instances: &collected.instances,
    };
    let the_plan = plan::plan(&settings.cluster, removable, nodes, &view, &budget, now);
    let removals: Vec<jiff::Timestamp> = status
        .recent_removals
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
    let mut journal = StatusJournal {
        api,
        cluster,
        ctx,
        trail,
        status: status.clone(),
    };
    let access = ClusterAccess {
        client,
        observer,
        leadership: &ctx.leadership,
    };
    let pending = status.pending_action.clone();
    let calls_before = trail.records().len();
    let outcome = automation::run(
        &settings,
        &the_plan,
        &view,
        pending.as_ref(),
        &removals,
        clients,
        &access,
        &mut journal,
        ctx.clock.as_ref(),
    )
    .await;
    // What the journal wrote (intents, finished actions, removal times) is the base now.
    *status = journal.status;
    // An Event for every mutating call this run made (AWS, cordon, eviction), as audited.
    // The reason is the operation: Events are aggregated by reason, so repeats of one
    // operation (evictions) become one Event whose series counts them.
    for r in trail
        .records()
        .iter()
        .skip(calls_before)
        .filter(|r| r.mutating)
    {
        let mut reason = r.operation.clone();
        if let Some(first) = reason.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        publish(
            ctx,
            cluster,
            r.outcome == "success",
            &reason,
            &format!("{} {} {}: {}", r.service, r.operation, r.target, r.outcome),
            "Audit",
        )
        .await;
    }
    let (ns, name) = (cluster.namespace().unwrap_or_default(), cluster.name_any());
    for a in &outcome.finished {
        ctx.metrics.cluster_action(&ns, &name, &a.outcome);
    }
    for r in &outcome.refusals {
        observer.call(
            "guard",
            &r.action,
            &r.target,
            &format!("refused: {}", r.reason),
            None,
            false,
        );
    }
    for a in &outcome.planned {
        observer.call(
            "guard",
            &a.action,
            &a.target,
            "planned (dry run)",
            None,
            false,
        );
    }
    let (new_planned, new_refusals) = merge(status, &outcome, now);
    // Counted as announced: a refusal repeated by every run while nothing changes is
    // counted once, like its Event.
    for _ in &new_refusals {
        ctx.metrics.cluster_refusal(&ns, &name);
    }
    for a in &new_planned {
        publish(
            ctx,
            cluster,
            true,
            "ActionPlanned",
            &format!(
                "Dry run: would {} {}",
                if a.action == automation::guard::TERMINATE_ACTION {
                    format!(
                        "drain node {} and call {} on",
                        a.node.as_deref().unwrap_or("?"),
                        a.action
                    )
                } else {
                    format!("call {} on", a.action)
                },
                a.target
            ),
            "Automation",
        )
        .await;
    }
    for r in &new_refusals {
        publish(
            ctx,
            cluster,
            false,
            "Refused",
            &format!(
                "Tag guard refused {} on {}: {}",
                r.action, r.target, r.reason
            ),
            "Automation",
        )
        .await;
    }
    let generation = cluster.metadata.generation.unwrap_or_default();
    let (state, reason, message) = summary(&settings, &outcome, the_plan.skipped.len());
    set_condition(
        &mut status.conditions,
        Condition::new("Automation", state, reason, message, generation, now),
    );
    Tally {
        verify_again: outcome.verify_again,
        confirmed: outcome
            .finished
            .iter()
            .filter(|a| a.outcome == automation::SUCCEEDED && !a.dry_run)
            .cloned()
            .collect(),
        refusals: u32::try_from(new_refusals.len()).unwrap_or(u32::MAX),
    }
}

fn summary(
    settings: &Settings,
    o: &Outcome,
    skipped: usize,
) -> (ConditionStatus, &'static str, String) {
    if let Some(e) = &o.error {
        return (
            ConditionStatus::False,
            "RunFailed",
            format!("Automation stopped: {e}"),
        );
    }
    if let Some(wait) = o.verify_again {
        return (
            ConditionStatus::True,
            "Verifying",
            format!(
                "An action may have been sent without a definite answer (or before a restart); checking its effect again in {}s before doing anything else",
                wait.as_secs()
            ),
        );
    }
    if let Some(left) = &o.left_pending {
        return (ConditionStatus::False, "ActionLeftPending", left.clone());
    }
    let count = |outcome: &str| o.finished.iter().filter(|a| a.outcome == outcome).count();
    let tail = format!(
        "{} refused by the tag guard, {} held back by the disruption budget, {} removable nodes skipped",
        o.refusals.len(),
        o.deferred,
        skipped
    );
    if settings.dry_run {
        (
            ConditionStatus::True,
            "DryRun",
            format!(
                "Dry run (automation.dryRun): {} actions planned, nothing executed; {tail}",
                o.planned.len()
            ),
        )
    } else {
        (
            ConditionStatus::True,
            "Active",
            format!(
                "{} nodes removed, {} actions failed; {tail}",
                count(automation::SUCCEEDED),
                count(automation::FAILED) + count(automation::ABANDONED)
            ),
        )
    }
}

/// Fold a run's records into status, newest first and bounded. A planned action or a
/// refusal identical to one already listed is not listed (or announced) again, so a
/// cluster that does not change does not churn its status. Returns the new ones.
fn merge(
    status: &mut ManagedClusterStatus,
    o: &Outcome,
    now: jiff::Timestamp,
) -> (Vec<ActionRecord>, Vec<RefusalRecord>) {
    let mut new_planned = Vec::new();
    for a in &o.planned {
        let repeat = status
            .recent_actions
            .iter()
            .any(|b| b.dry_run && b.action == a.action && b.target == a.target && b.node == a.node);
        if repeat {
            continue;
        }
        new_planned.push(a.clone());
        status.recent_actions.insert(0, a.clone());
    }
    status.recent_actions.truncate(KEEP);
    let mut new_refusals = Vec::new();
    for r in &o.refusals {
        if status
            .refusals
            .iter()
            .any(|b| b.action == r.action && b.target == r.target && b.reason == r.reason)
        {
            continue;
        }
        new_refusals.push(r.clone());
        status.refusals.insert(0, r.clone());
    }
    status.refusals.truncate(KEEP);
    let hour_ago = now.as_second() - 3600;
    status.recent_removals.retain(|t| {
        t.parse::<jiff::Timestamp>()
            .is_ok_and(|t| t.as_second() > hour_ago)
    });
    // The hourly budget caps removals at 1000 an hour, the schema's bound.
    let excess = status.recent_removals.len().saturating_sub(1000);
    status.recent_removals.drain(..excess);
    (new_planned, new_refusals)
}

/// The node facts the plan needs, from the snapshot.
pub(super) fn node_facts(nodes: &[crate::analysis::input::Node]) -> Vec<NodeFacts> {
    nodes
        .iter()
        .filter_map(|n| {
            Some(NodeFacts {
                name: n.metadata.name.as_deref()?.to_string(),
                instance_id: n
                    .spec
                    .as_ref()
                    .and_then(|s| s.provider_id.as_deref())
                    .and_then(crate::analysis::instance_id)
                    .map(str::to_string),
                created: n.metadata.creation_timestamp,
                cordoned: n
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_action_outcomes_are_the_journals() {
        assert_eq!(
            crate::metrics::ACTION_OUTCOMES,
            [
                automation::SUCCEEDED,
                automation::FAILED,
                automation::ABANDONED
            ]
        );
    }

    fn action(outcome: &str, dry_run: bool, node: &str) -> ActionRecord {
        ActionRecord {
            time: "2026-06-01T12:00:00Z".into(),
            action: automation::guard::TERMINATE_ACTION.into(),
            target: format!("autoScalingGroup/a/instance/{node}"),
            node: Some(node.into()),
            outcome: outcome.into(),
            message: None,
            dry_run,
        }
    }

    #[test]
    fn repeated_plans_and_refusals_are_listed_once_and_lists_stay_bounded() {
        let now: jiff::Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        let mut status = ManagedClusterStatus::default();
        let refusal = RefusalRecord {
            time: now.to_string(),
            action: "eks:UpdateNodegroupConfig".into(),
            target: "nodegroup/legacy desiredSize 2->1".into(),
            reason: "untagged".into(),
        };
        let o = Outcome {
            planned: vec![action("Planned", true, "n1")],
            refusals: vec![refusal.clone()],
            ..Outcome::default()
        };
        let (p, r) = merge(&mut status, &o, now);
        assert_eq!((p.len(), r.len()), (1, 1));
        let (p, r) = merge(&mut status, &o, now);
        assert_eq!((p.len(), r.len()), (0, 0), "nothing new the second time");
        assert_eq!((status.recent_actions.len(), status.refusals.len()), (1, 1));
        // Lists stay bounded, newest first.
        for i in 0..30 {
            let o = Outcome {
                planned: vec![action("Planned", true, &format!("n{i}"))],
                ..Outcome::default()
            };
            merge(&mut status, &o, now);
        }
        assert_eq!(status.recent_actions.len(), KEEP);
        assert_eq!(status.recent_actions[0].node.as_deref(), Some("n29"));
        // Removal times older than an hour drop out.
        status.recent_removals = vec![now.to_string(); 30];
        merge(&mut status, &Outcome::default(), now);
        assert_eq!(status.recent_removals.len(), 30);
        let later: jiff::Timestamp = "2026-06-01T13:00:01Z".parse().unwrap();
        merge(&mut status, &Outcome::default(), later);
        assert!(status.recent_removals.is_empty());
    }
}
