//! Turning the consolidation result into concrete, bounded actions. Pure: no I/O.
//!
//! For every node the consolidation found removable (in the order it found them), the plan
//! picks how to remove it:
//! - its Auto Scaling group carries the management tags → drain it, then terminate exactly
//!   that instance with TerminateInstanceInAutoScalingGroup (decrementing the group), which
//!   removes the node that was drained and no other;
//! - otherwise, when its group carries no crossguard tag at all and it belongs to an EKS
//!   managed nodegroup → lower the nodegroup's desired size by one with
//!   UpdateNodegroupConfig (EKS does not copy nodegroup tags to the group it creates, so
//!   customers often tag only the nodegroup). crossguard drains nothing then: EKS picks
//!   which instance goes, by the group's termination policy (not necessarily this node),
//!   and drains and terminates it itself;
//! - otherwise → a termination in its group, which the guard will refuse as untagged.
//!
//! Untagged resources are deliberately kept in the plan: the guard refuses them and the
//! refusal is shown to the customer, rather than silently skipping. Nodes younger than the
//! budget's minimum age, nodes whose instance is not running and nodes whose group cannot be
//! found are skipped with a reason. How many candidates become actions is the executor's
//! job ([`Budget::allowed`]), since refusals do not use the budget.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::guard::{Evidence, Mutation};
use crate::analysis::RemovableNode;
use crate::aws::{AutoScalingGroup, Instance, Nodegroup, is_managed_for};

/// Every crossguard tag key starts with this.
const TAG_PREFIX: &str = "crossguard.dev/";

/// What the plan needs to know about a node of the customer's cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// EC2 instance id from its providerID.
    pub instance_id: Option<String>,
    /// When the Node object was created.
    pub created: Option<jiff::Timestamp>,
    /// Already marked unschedulable (by someone else, or by an earlier removal).
    pub cordoned: bool,
}

/// The AWS side of the cluster, as read at the start of the run.
#[derive(Debug, Clone, Default)]
pub struct AwsView<'a> {
    /// The cluster's nodegroups.
    pub nodegroups: &'a [Nodegroup],
    /// The nodegroups' Auto Scaling groups.
    pub groups: &'a [AutoScalingGroup],
    /// The cluster's live instances.
    pub instances: &'a [Instance],
}

/// One node to remove and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The node the consolidation found removable: the one drained and terminated by a
    /// termination; for a nodegroup scale-in only the reason for it (EKS picks the node).
    pub node: String,
    /// Its instance.
    pub instance_id: String,
    /// Its nodegroup as the analysis saw it (label or instance tag).
    pub nodegroup: String,
    /// The call that removes it.
    pub mutation: Mutation,
    /// The EKS nodegroup owning the Auto Scaling group of a termination, if any.
    pub owning_nodegroup: Option<String>,
}

/// A removable node the plan leaves alone, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The node.
    pub node: String,
    /// Why.
    pub reason: String,
}

/// The plan of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// In the order to try them.
    pub candidates: Vec<Candidate>,
    /// Left alone.
    pub skipped: Vec<Skipped>,
}

/// The disruption budget, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most nodes removed in one run.
    pub max_per_run: u32,
    /// Most nodes removed in any hour.
    pub max_per_hour: u32,
    /// Younger nodes are never removed.
    pub min_node_age: Duration,
}

impl Budget {
    /// How many nodes this run may remove, given when earlier removals happened.
    pub fn allowed(&self, removals: &[jiff::Timestamp], now: jiff::Timestamp) -> u32 {
        let hour_ago = now.as_second() - 3600;
        let last_hour = removals.iter().filter(|t| t.as_second() > hour_ago).count() as u32;
        self.max_per_run
            .min(self.max_per_hour.saturating_sub(last_hour))
    }
}

/// Build the plan for `cluster` from the consolidation's removable nodes.
pub fn plan(
    cluster: &str,
    removable: &[RemovableNode],
    nodes: &[NodeFacts],
    aws: &AwsView<'_>,
    budget: &Budget,
    now: jiff::Timestamp,
) -> Plan {
    let nodes: HashMap<&str, &NodeFacts> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let instances: HashMap<&str, &Instance> =
        aws.instances.iter().map(|i| (i.id.as_str(), i)).collect();
    let group_of: HashMap<&str, &AutoScalingGroup> = aws
        .groups
        .iter()
        .flat_map(|g| g.instance_ids.iter().map(move |id| (id.as_str(), g)))
        .collect();
    let owner_of_group: HashMap<&str, &Nodegroup> = aws
        .nodegroups
        .iter()
        .flat_map(|n| n.auto_scaling_groups.iter().map(move |g| (g.as_str(), n)))
        .collect();
    let nodegroup_by_name: HashMap<&str, &Nodegroup> = aws
        .nodegroups
        .iter()
        .map(|n| (n.name.as_str(), n))
        .collect();
    // Nodegroups this plan already scales in.
    let mut scaled: BTreeSet<&str> = BTreeSet::new();

    let mut out = Plan::default();
    for r in removable {
        let skip = |reason: String| Skipped {
            node: r.node.clone(),
            reason,
        };
        let Some(facts) = nodes.get(r.node.as_str()) else {
            out.skipped
                .push(skip("the node is not in the snapshot".into()));
            continue;
        };
        match facts.created {
            Some(created) => {
                let age = now.as_second() - created.as_second();
                if age < budget.min_node_age.as_secs() as i64 {
                    out.skipped.push(skip(format!(
                        "the node is younger ({}s) than the budget's minimum node age ({}s)",
                        age.max(0),
                        budget.min_node_age.as_secs()
                    )));
                    continue;
                }
            }
            None => {
                out.skipped.push(skip("the node's age is unknown".into()));
                continue;
            }
        }
        if facts.cordoned {
            // Someone is already working on it (a person, an upgrade, an autoscaler): leave
            // it to them, and never uncordon it later.
            out.skipped
                .push(skip("the node is already cordoned".into()));
            continue;
        }
        let Some(id) = facts.instance_id.as_deref() else {
            out.skipped.push(skip(
                "the node has no EC2 instance id in its providerID".into(),
            ));
            continue;
        };
        if instances.get(id).and_then(|i| i.state.as_deref()) != Some("running") {
            out.skipped.push(skip(format!(
                "instance {id} is not a running instance of the cluster"
            )));
            continue;
        }
        let group = group_of.get(id).copied();
        // The nodegroup is the one owning the instance's group; the label only when the
        // instance is in no group crossguard can see (then only a refusal can follow).
        let nodegroup = group
            .and_then(|g| owner_of_group.get(g.name.as_str()).copied())
            .or_else(|| nodegroup_by_name.get(r.nodegroup.as_str()).copied());
        let terminate = |g: &AutoScalingGroup| Candidate {
            node: r.node.clone(),
            instance_id: id.to_string(),
            nodegroup: r.nodegroup.clone(),
            mutation: Mutation::TerminateInstance {
                group: g.name.clone(),
                instance_id: id.to_string(),
            },
            owning_nodegroup: owner_of_group.get(g.name.as_str()).map(|n| n.name.clone()),
        };
        // Fall back to the nodegroup only when the group carries no crossguard tag at all
        // (EKS does not copy nodegroup tags to its group). A group with a crossguard tag
        // that is wrong (another cluster, managed=false) is a statement: the termination is
        // planned and the guard refuses it.
        let group_silent = |g: &AutoScalingGroup| !g.tags.keys().any(|k| k.starts_with(TAG_PREFIX));
        let candidate = match (group, nodegroup) {
            (Some(g), _) if is_managed_for(&g.tags, cluster) => terminate(g),
            (Some(g), Some(_)) if !group_silent(g) => terminate(g),
            (_, Some(ng)) => {
                // EKS chooses, drains and removes the instance of a nodegroup scale-in, so
                // one per nodegroup per run: the next waits until that one is done.
                if !scaled.insert(ng.name.as_str()) {
                    out.skipped.push(skip(format!(
                        "nodegroup {} is already scaled in by one in this run",
                        ng.name
                    )));
                    continue;
                }
                let Some(from) = ng.desired_size else {
                    out.skipped.push(skip(format!(
                        "nodegroup {} reports no desired size",
                        ng.name
                    )));
                    continue;
                };
                Candidate {
                    node: r.node.clone(),
                    instance_id: id.to_string(),
                    nodegroup: r.nodegroup.clone(),
                    mutation: Mutation::ScaleNodegroup {
                        nodegroup: ng.name.clone(),
                        from,
                        to: from - 1,
                        because_of: id.to_string(),
                    },
                    owning_nodegroup: None,
                }
            }
            (Some(g), None) => terminate(g),
            (None, None) => {
                out.skipped.push(skip(format!(
                    "instance {id} belongs to no Auto Scaling group or nodegroup crossguard can see"
                )));
                continue;
            }
        };
        out.candidates.push(candidate);
    }
    out
}

/// What the plan knew about a candidate's resources, as the guard's evidence: used for the
/// dry-run verdict. Execution never uses this; it describes the resources again.
pub fn plan_evidence(candidate: &Candidate, aws: &AwsView<'_>) -> Evidence {
    match &candidate.mutation {
        Mutation::TerminateInstance { group, instance_id } => Evidence {
            group: aws.groups.iter().find(|g| g.name == *group).cloned(),
            instance: aws.instances.iter().find(|i| i.id == *instance_id).cloned(),
            nodegroup: candidate
                .owning_nodegroup
                .as_ref()
                .and_then(|n| aws.nodegroups.iter().find(|g| g.name == *n).cloned()),
            group_has_nodegroup: candidate.owning_nodegroup.is_some(),
        },
        Mutation::ScaleNodegroup { nodegroup, .. } => {
            let ng = aws
                .nodegroups
                .iter()
                .find(|g| g.name == *nodegroup)
                .cloned();
            Evidence {
                group: ng.as_ref().and_then(|n| {
                    aws.groups
                        .iter()
                        .find(|g| n.auto_scaling_groups.contains(&g.name))
                        .cloned()
                }),
                nodegroup: ng,
                ..Evidence::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::guard::check;
    use crate::aws::{TAG_CLUSTER, TAG_MANAGED};
    use std::collections::BTreeMap;

    fn managed() -> BTreeMap<String, String> {
        BTreeMap::from([
            (TAG_MANAGED.to_string(), "true".to_string()),
            (TAG_CLUSTER.to_string(), "prod".to_string()),
        ])
    }

    fn now() -> jiff::Timestamp {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn budget() -> Budget {
        Budget {
            max_per_run: 1,
            max_per_hour: 3,
            min_node_age: Duration::from_secs(3600),
        }
    }

    struct World {
        nodegroups: Vec<Nodegroup>,
        groups: Vec<AutoScalingGroup>,
        instances: Vec<Instance>,
        nodes: Vec<NodeFacts>,
    }

    impl World {
        fn view(&self) -> AwsView<'_> {
            AwsView {
                nodegroups: &self.nodegroups,
                groups: &self.groups,
                instances: &self.instances,
            }
        }
    }

    /// Two nodegroups of three nodes: `tagged` (nodegroup, group and instances tagged) and
    /// `ngonly` (only the nodegroup tagged), plus `legacy` (nothing tagged).
    fn world() -> World {
        let mut w = World {
            nodegroups: vec![],
            groups: vec![],
            instances: vec![],
            nodes: vec![],
        };
        for (ng, ng_tags, group_tags) in [
            ("tagged", managed(), managed()),
            ("ngonly", managed(), BTreeMap::new()),
            ("legacy", BTreeMap::new(), BTreeMap::new()),
        ] {
            let ids: Vec<String> = (0..3).map(|i| format!("i-{ng}-{i}")).collect();
            w.nodegroups.push(Nodegroup {
                name: ng.into(),
                cluster_name: "prod".into(),
                status: Some("ACTIVE".into()),
                tags: ng_tags,
                auto_scaling_groups: vec![format!("asg-{ng}")],
                min_size: Some(1),
                max_size: Some(6),
                desired_size: Some(3),
                instance_types: vec![],
            });
            w.groups.push(AutoScalingGroup {
                name: format!("asg-{ng}"),
                tags: group_tags.clone(),
                min_size: 1,
                max_size: 6,
                desired_capacity: 3,
                instance_ids: ids.clone(),
                instance_states: ids
                    .iter()
                    .map(|id| (id.clone(), "InService".to_string()))
                    .collect(),
            });
            for id in ids {
                w.instances.push(Instance {
                    id: id.clone(),
                    instance_type: Some("m5.large".into()),
                    state: Some("running".into()),
                    tags: group_tags.clone(),
                });
                w.nodes.push(NodeFacts {
                    name: format!("node-{id}"),
                    instance_id: Some(id),
                    created: Some("2026-05-01T00:00:00Z".parse().unwrap()),
                    cordoned: false,
                });
            }
        }
        w
    }

    fn removable(node: &str, ng: &str) -> RemovableNode {
        RemovableNode {
            node: node.into(),
            nodegroup: ng.into(),
            instance_type: Some("m5.large".into()),
            monthly_cost: 70.0,
            pods_moved: 1,
        }
    }

    #[test]
    fn tagged_group_terminates_the_exact_instance() {
        let w = world();
        let p = plan(
            "prod",
            &[removable("node-i-tagged-1", "tagged")],
            &w.nodes,
            &w.view(),
            &budget(),
            now(),
        );
        assert_eq!(p.skipped, vec![]);
        assert_eq!(
            p.candidates[0].mutation,
            Mutation::TerminateInstance {
                group: "asg-tagged".into(),
                instance_id: "i-tagged-1".into()
            }
        );
        assert_eq!(p.candidates[0].owning_nodegroup.as_deref(), Some("tagged"));
        let e = plan_evidence(&p.candidates[0], &w.view());
        assert!(check("prod", &p.candidates[0].mutation, &e).is_ok());
    }

    #[test]
    fn nodegroup_only_tags_scale_the_nodegroup_once_per_run() {
        let w = world();
        let p = plan(
            "prod",
            &[
                removable("node-i-ngonly-0", "ngonly"),
                removable("node-i-ngonly-1", "ngonly"),
            ],
            &w.nodes,
            &w.view(),
            &budget(),
            now(),
        );
        let sizes: Vec<_> = p
            .candidates
            .iter()
            .map(|c| match &c.mutation {
                Mutation::ScaleNodegroup { from, to, .. } => (*from, *to),
                other => panic!("{other:?}"),
            })
            .collect();
        // EKS picks and removes the instance; the next scale-in waits for the next run.
        assert_eq!(sizes, vec![(3, 2)]);
        assert!(p.skipped[0].reason.contains("already scaled in by one"));
        let c = &p.candidates[0];
        assert!(
            matches!(&c.mutation, Mutation::ScaleNodegroup { because_of, .. } if because_of == "i-ngonly-0")
        );
        assert!(check("prod", &c.mutation, &plan_evidence(c, &w.view())).is_ok());
    }

    #[test]
    fn the_nodegroup_is_the_one_owning_the_instances_group_not_the_label() {
        let w = world();
        // The node's label claims ngonly, but its instance runs in legacy's group.
        let p = plan(
            "prod",
            &[removable("node-i-legacy-1", "ngonly")],
            &w.nodes,
            &w.view(),
            &budget(),
            now(),
        );
        let c = &p.candidates[0];
        assert!(
            matches!(&c.mutation, Mutation::ScaleNodegroup { nodegroup, .. } if nodegroup == "legacy"),
            "{c:?}"
        );
        assert!(check("prod", &c.mutation, &plan_evidence(c, &w.view())).is_err());
    }

    #[test]
    fn a_group_tagged_for_another_cluster_is_not_bypassed_through_its_nodegroup() {
        let mut w = world();
        // The nodegroup is tagged for prod, but its group says it belongs to staging.
        w.groups[1]
            .tags
            .insert(TAG_CLUSTER.to_string(), "staging".to_string());
        let p = plan(
            "prod",
            &[removable("node-i-ngonly-0", "ngonly")],
            &w.nodes,
            &w.view(),
            &budget(),
            now(),
        );
        let c = &p.candidates[0];
        assert!(
            matches!(c.mutation, Mutation::TerminateInstance { .. }),
            "{c:?}"
        );
        let refusal = check("prod", &c.mutation, &plan_evidence(c, &w.view())).unwrap_err();
        assert!(
            refusal.reason.contains("asg-ngonly does not carry"),
            "{refusal}"
        );
    }

    #[test]
    fn untagged_nodes_stay_in_the_plan_for_the_guard_to_refuse() {
        let w = world();
        let p = plan(
            "prod",
            &[removable("node-i-legacy-2", "legacy")],
            &w.nodes,
            &w.view(),
            &budget(),
            now(),
        );
        let c = &p.candidates[0];
        assert!(matches!(c.mutation, Mutation::ScaleNodegroup { .. }));
        let refusal = check("prod", &c.mutation, &plan_evidence(c, &w.view())).unwrap_err();
        assert!(
            refusal.reason.contains("nodegroup legacy does not carry"),
            "{refusal}"
        );
    }

    #[test]
    fn young_unknown_and_dead_nodes_are_skipped() {
        let mut w = world();
        w.nodes[0].created = Some("2026-06-01T11:30:00Z".parse().unwrap());
        w.nodes[1].created = None;
        w.nodes[2].instance_id = None;
        w.instances[3].state = Some("shutting-down".into());
        w.groups[0].instance_ids.clear();
        w.nodegroups.retain(|n| n.name != "tagged");
        w.nodes.push(NodeFacts {
            name: "orphan".into(),
            instance_id: Some("i-tagged-0".into()),
            created: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            cordoned: false,
        });
        let p = plan(
            "prod",
            &[
                removable("node-i-tagged-0", "tagged"),
                removable("node-i-tagged-1", "tagged"),
                removable("node-i-tagged-2", "tagged"),
                removable("node-i-ngonly-0", "ngonly"),
                removable("orphan", "tagged"),
                removable("missing", "tagged"),
            ],
            &w.nodes,
            &w.view(),
            &budget(),
            now(),
        );
        assert_eq!(p.candidates, vec![]);
        let reasons: Vec<&str> = p.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons[0].contains("younger"), "{reasons:?}");
        assert!(reasons[1].contains("age is unknown"));
        assert!(reasons[2].contains("no EC2 instance id"));
        assert!(reasons[3].contains("not a running instance"));
        assert!(reasons[4].contains("no Auto Scaling group or nodegroup"));
        assert!(reasons[5].contains("not in the snapshot"));
    }

    #[test]
    fn cordoned_nodes_are_left_to_whoever_cordoned_them() {
        let mut w = world();
        w.nodes[1].cordoned = true;
        let p = plan(
            "prod",
            &[removable("node-i-tagged-1", "tagged")],
            &w.nodes,
            &w.view(),
            &budget(),
            now(),
        );
        assert!(p.candidates.is_empty());
        assert_eq!(p.skipped[0].reason, "the node is already cordoned");
    }

    #[test]
    fn budget_counts_the_last_hour_and_caps_each_run() {
        let b = Budget {
            max_per_run: 2,
            max_per_hour: 3,
            min_node_age: Duration::ZERO,
        };
        let t = |s: &str| -> jiff::Timestamp { s.parse().unwrap() };
        assert_eq!(b.allowed(&[], now()), 2);
        assert_eq!(b.allowed(&[t("2026-06-01T11:30:00Z")], now()), 2);
        assert_eq!(
            b.allowed(
                &[t("2026-06-01T11:30:00Z"), t("2026-06-01T11:40:00Z")],
                now()
            ),
            1
        );
        let three = [
            t("2026-06-01T11:10:00Z"),
            t("2026-06-01T11:30:00Z"),
            t("2026-06-01T11:40:00Z"),
        ];
        assert_eq!(b.allowed(&three, now()), 0);
        // An hour later the oldest no longer counts.
        assert_eq!(b.allowed(&three, t("2026-06-01T12:10:01Z")), 1);
        let zero = Budget {
            max_per_run: 0,
            ..b
        };
        assert_eq!(zero.allowed(&[], now()), 0);
    }
}
