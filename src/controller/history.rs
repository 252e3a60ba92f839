//! The ManagedCluster pipeline's last stage: one [`HistoryPoint`] per successful analysis
//! (the report's figures, what automation confirmed and refused in the same run) appended
//! to the cluster's history ([`crate::history`]). A failed append never fails the
//! reconcile, and is never silent: a warning log and a Warning Event `HistoryNotRecorded`.

use kube::ResourceExt;

use super::Context;
use super::analyse::Analysed;
use super::automation::Tally;
use crate::analysis::RemovableNode;
use crate::api::{ActionRecord, ManagedCluster};
use crate::history::{self, HistoryError, HistoryPoint};
use crate::metrics::SAVINGS_CATEGORIES;

/// Append this run's point, stamped `at` (the run's time, which status.lastAnalysisAt
/// also shows), to the cluster's history; failures are logged and published, not returned.
pub(super) async fn record(
    ctx: &Context,
    cluster: &ManagedCluster,
    tenant: &str,
    at: jiff::Timestamp,
    analysed: &Analysed,
    tally: &Tally,
) {
    let (ns, name) = (cluster.namespace().unwrap_or_default(), cluster.name_any());
    if let Err(e) = append(ctx, tenant, &ns, &name, at, analysed, tally).await {
        tracing::warn!(namespace = %ns, name = %name, error = %e, "the analysis was not recorded in the cluster's history");
        super::status::publish(
            ctx,
            cluster,
            false,
            "HistoryNotRecorded",
            &format!("This analysis is missing from the cluster's cost history: {e}"),
            "History",
        )
        .await;
    }
}

async fn append(
    ctx: &Context,
    tenant: &str,
    ns: &str,
    name: &str,
    at: jiff::Timestamp,
    analysed: &Analysed,
    tally: &Tally,
) -> Result<(), HistoryError> {
    // Realised savings are cumulative: the previous point's plus this run's removals.
    let before = history::latest(&ctx.store, tenant, ns, name)
        .await?
        .map_or(0.0, |p| p.realised_savings);
    let point = point(
        at,
        analysed,
        tally,
        before + realised(&tally.confirmed, &analysed.removable),
    );
    history::append(&ctx.store, tenant, ns, name, &point).await?;
    ctx.metrics
        .cluster_realised_savings(ns, name, point.realised_savings);
    Ok(())
}

/// The history point of one run.
fn point(at: jiff::Timestamp, analysed: &Analysed, tally: &Tally, realised: f64) -> HistoryPoint {
    let f = &analysed.figures;
    HistoryPoint {
        at,
        monthly_cost: f.monthly_cost,
        potential_savings: SAVINGS_CATEGORIES
            .iter()
            .zip(f.savings)
            .map(|(c, v)| (c.to_string(), v))
            .collect(),
        realised_savings: realised,
        nodes: f.nodes,
        unpriced_nodes: f.unpriced_nodes,
        cpu_requested_ratio: f.cpu_requested_ratio,
        memory_requested_ratio: f.memory_requested_ratio,
        actions: u32::try_from(tally.confirmed.len()).unwrap_or(u32::MAX),
        refusals: tally.refusals,
        price_source: analysed.price_source.clone(),
    }
}

/// Monthly savings realised by `confirmed` actions: for each node removed, its hourly price
/// × 730 (the report's `hoursPerMonth`), i.e. its monthly cost in this run's report. A
/// nodegroup scale-in (`desiredSize A->B`, EKS chooses the node) counts A−B nodes at the
/// price of the node the analysis found removable in that nodegroup. A node the report does
/// not price (or no longer lists: an action verified in a later run, after the node left)
/// adds nothing rather than a guess.
fn realised(confirmed: &[ActionRecord], removable: &[RemovableNode]) -> f64 {
    use crate::automation::guard::{SCALE_NODEGROUP_ACTION, TERMINATE_ACTION};
    let priced = |found: Option<&RemovableNode>, what: &str| {
        if found.is_none() {
            tracing::debug!(
                what,
                "a removed node has no price in this run's report: not counted as realised"
            );
        }
        found.map(|r| r.monthly_cost)
    };
    confirmed
        .iter()
        .filter_map(|a| match a.action.as_str() {
            TERMINATE_ACTION => {
                let node = a.node.as_deref()?;
                priced(removable.iter().find(|r| r.node == node), node)
            }
            SCALE_NODEGROUP_ACTION => {
                let (nodegroup, removed) = scale_in(&a.target)?;
                let found = match a.node.as_deref() {
                    Some(node) => removable.iter().find(|r| r.node == node),
                    None => removable.iter().find(|r| r.nodegroup == nodegroup),
                };
                priced(found, nodegroup).map(|cost| cost * f64::from(removed))
            }
            _ => None,
        })
        .sum()
}

/// The nodegroup and the number of nodes removed of a scale-in target
/// `nodegroup/<name> desiredSize <from>-><to>`.
fn scale_in(target: &str) -> Option<(&str, u32)> {
    let rest = target.strip_prefix("nodegroup/")?;
    let (nodegroup, sizes) = rest.split_once(" desiredSize ")?;
    let (from, to) = sizes.split_once("->")?;
    let (from, to): (u32, u32) = (from.trim().parse().ok()?, to.trim().parse().ok()?);
    Some((nodegroup, from.checked_sub(to)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(node: &str, action: &str) -> ActionRecord {
        ActionRecord {
            time: "2026-11-23T12:00:00Z".into(),
            action: action.into(),
            target: format!("i-{node}"),
            node: Some(node.into()),
            outcome: crate::automation::SUCCEEDED.into(),
            message: None,
            dry_run: false,
        }
    }

    fn removable(node: &str, monthly_cost: f64) -> RemovableNode {
        RemovableNode {
            node: node.into(),
            nodegroup: "ng".into(),
            instance_type: Some("m5.large".into()),
            monthly_cost,
            pods_moved: 1,
        }
    }

    #[test]
    fn realised_savings_are_the_removed_nodes_monthly_prices() {
        let terminate = crate::automation::guard::TERMINATE_ACTION;
        let removable = [removable("a", 0.096 * 730.0), removable("b", 70.08)];
        let confirmed = [action("a", terminate), action("b", terminate)];
        let got = realised(&confirmed, &removable);
        assert!((got - (70.08 + 70.08)).abs() < 1e-9, "{got}");
        // An unpriced node, and an action that removes no node, add nothing.
        let other = [action("gone", terminate), action("a", "ec2:Other")];
        assert_eq!(realised(&other, &removable), 0.0);
        // A nodegroup scale-in of two nodes, EKS choosing them: at the removable node's price.
        let mut scale = action("x", crate::automation::guard::SCALE_NODEGROUP_ACTION);
        scale.node = None;
        scale.target = "nodegroup/ng desiredSize 4->2".into();
        assert!((realised(&[scale], &removable) - 2.0 * 70.08).abs() < 1e-9);
        assert_eq!(scale_in("nodegroup/ng desiredSize 2->3"), None);
    }
}
