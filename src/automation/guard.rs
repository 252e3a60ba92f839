//! The tag guard: the one gate between a planned action and a mutating AWS call.
//!
//! Immediately before each mutating call the executor describes the exact resources again
//! and hands what it saw ([`Evidence`]) to [`check`]. Only `check` can make the approval
//! tokens ([`ApprovedTermination`], [`ApprovedNodegroupScale`]): they live beside the AWS
//! traits that consume them ([`crate::aws::approval`]), their fields are private, they are
//! not `Clone`, their constructors are crate-private and called here only (a test in
//! `aws::approval` fails if any other file calls them), and the mutating methods of the AWS
//! traits take them by value. So no code path reaches a mutating SDK call
//! without passing the guard, and one approval pays for exactly one call.
//!
//! Rules (every one must hold, otherwise the action is refused with the first broken rule):
//! - `TerminateInstanceInAutoScalingGroup`: the instance and its Auto Scaling group both
//!   carry `crossguard.dev/managed=true` and `crossguard.dev/cluster=<this cluster>`; the
//!   instance is running and still a member of that group; the group stays at or above its
//!   minimum size after the decrement; and when the group belongs to an EKS nodegroup, that
//!   nodegroup carries both tags too, belongs to this cluster, still owns the group, and
//!   stays at or above its own minimum size (its size is what shrinks).
//!   The instance must also be InService in its group (not already terminating).
//! - `UpdateNodegroupConfig`: the nodegroup carries both tags, belongs to this cluster, is
//!   ACTIVE, its desired size is still what the plan saw, the new size is exactly one
//!   less and not below its minimum, the instance that made a node removable is in the
//!   nodegroup's group, and that group is at rest (as many instances in service as
//!   desired): a scale-in EKS is still carrying out is never stacked on.

use std::collections::BTreeMap;
use std::fmt;

pub use crate::aws::approval::{ApprovedNodegroupScale, ApprovedTermination};
use crate::aws::{AutoScalingGroup, Instance, Nodegroup, TAG_CLUSTER, TAG_MANAGED};

/// The AWS action names, as IAM and CloudTrail spell them.
pub const TERMINATE_ACTION: &str = "autoscaling:TerminateInstanceInAutoScalingGroup";
/// See [`TERMINATE_ACTION`].
pub const SCALE_NODEGROUP_ACTION: &str = "eks:UpdateNodegroupConfig";

/// A mutation the executor wants to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Terminate one instance of an Auto Scaling group, decrementing its desired capacity.
    TerminateInstance {
        /// The group.
        group: String,
        /// The instance.
        instance_id: String,
    },
    /// Lower an EKS managed nodegroup's desired size by one. EKS chooses, drains and
    /// terminates the instance that goes.
    ScaleNodegroup {
        /// The nodegroup.
        nodegroup: String,
        /// Its desired size when the action was planned.
        from: i32,
        /// The desired size to set (`from - 1`).
        to: i32,
        /// The instance the consolidation found removable, which must be one of the
        /// nodegroup's: the reason for the scale-in.
        because_of: String,
    },
}

impl Mutation {
    /// The IAM action name of the call this mutation makes.
    pub fn action(&self) -> &'static str {
        match self {
            Mutation::TerminateInstance { .. } => TERMINATE_ACTION,
            Mutation::ScaleNodegroup { .. } => SCALE_NODEGROUP_ACTION,
        }
    }

    /// The resource the call is made on, for status, Events and the audit log.
    pub fn target(&self) -> String {
        match self {
            Mutation::TerminateInstance { group, instance_id } => {
                format!("autoScalingGroup/{group}/instance/{instance_id}")
            }
            Mutation::ScaleNodegroup {
                nodegroup,
                from,
                to,
                ..
            } => format!("nodegroup/{nodegroup} desiredSize {from}->{to}"),
        }
    }
}

/// What a fresh describe of the resources returned, right before the call. `None` means
/// the describe found nothing.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The Auto Scaling group: the one a termination acts in, or the one of the nodegroup
    /// being scaled.
    pub group: Option<AutoScalingGroup>,
    /// The instance (terminations).
    pub instance: Option<Instance>,
    /// The nodegroup: the one being scaled, or the one owning the group.
    pub nodegroup: Option<Nodegroup>,
    /// For terminations: whether the group belongs to an EKS nodegroup (then `nodegroup`
    /// must be present and pass too). Decided from the fresh group's `eks:nodegroup-name`
    /// tag as well as from the plan.
    pub group_has_nodegroup: bool,
}

/// Why the guard said no; shown to the customer as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The IAM action that was refused.
    pub action: &'static str,
    /// The resource.
    pub target: String,
    /// The first rule that did not hold.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} refused: {}",
            self.action, self.target, self.reason
        )
    }
}

/// What the guard hands back when every rule holds.
#[derive(Debug)]
pub enum Approval {
    /// Go ahead with the termination.
    Terminate(ApprovedTermination),
    /// Go ahead with the nodegroup update.
    ScaleNodegroup(ApprovedNodegroupScale),
}

/// Which of the management tags are wrong on a resource, or None when both are right.
fn tag_problem(
    kind: &str,
    name: &str,
    tags: &BTreeMap<String, String>,
    cluster: &str,
) -> Option<String> {
    match tags.get(TAG_MANAGED).map(String::as_str) {
        Some("true") => {}
        Some(other) => {
            return Some(format!(
                "{kind} {name} has {TAG_MANAGED}={other:?}, not \"true\""
            ));
        }
        None => return Some(format!("{kind} {name} does not carry {TAG_MANAGED}=true")),
    }
    match tags.get(TAG_CLUSTER).map(String::as_str) {
        Some(c) if c == cluster => None,
        Some(other) => Some(format!(
            "{kind} {name} is tagged {TAG_CLUSTER}={other:?}, not this cluster ({cluster:?})"
        )),
        None => Some(format!(
            "{kind} {name} does not carry {TAG_CLUSTER}={cluster}"
        )),
    }
}

/// The guard. `cluster` is the EKS cluster name of the ManagedCluster making the call.
pub fn check(cluster: &str, mutation: &Mutation, evidence: &Evidence) -> Result<Approval, Refusal> {
    let refuse = |reason: String| Refusal {
        action: mutation.action(),
        target: mutation.target(),
        reason,
    };
    match mutation {
        Mutation::TerminateInstance { group, instance_id } => {
            let g = evidence
                .group
                .as_ref()
                .filter(|g| g.name == *group)
                .ok_or_else(|| refuse(format!("Auto Scaling group {group} was not found")))?;
            if let Some(p) = tag_problem("Auto Scaling group", group, &g.tags, cluster) {
                return Err(refuse(p));
            }
            let i = evidence
                .instance
                .as_ref()
                .filter(|i| i.id == *instance_id)
                .ok_or_else(|| refuse(format!("instance {instance_id} was not found")))?;
            if let Some(p) = tag_problem("instance", instance_id, &i.tags, cluster) {
                return Err(refuse(p));
            }
            if i.state.as_deref() != Some("running") {
                return Err(refuse(format!(
                    "instance {instance_id} is {}, not running",
                    i.state.as_deref().unwrap_or("in an unknown state")
                )));
            }
            if !g.instance_ids.iter().any(|id| id == instance_id) {
                return Err(refuse(format!(
                    "instance {instance_id} is not a member of Auto Scaling group {group}"
                )));
            }
            if let Some(state) = g
                .instance_states
                .get(instance_id)
                .filter(|s| *s != "InService")
            {
                return Err(refuse(format!(
                    "instance {instance_id} is {state} in Auto Scaling group {group}, not InService"
                )));
            }
            if g.desired_capacity - 1 < g.min_size {
                return Err(refuse(format!(
                    "Auto Scaling group {group} is at desired capacity {} with minimum {}; one less would go below its minimum",
                    g.desired_capacity, g.min_size
                )));
            }
            if evidence.group_has_nodegroup {
                let ng = evidence.nodegroup.as_ref().ok_or_else(|| {
                    refuse(format!(
                        "the nodegroup owning Auto Scaling group {group} was not found"
                    ))
                })?;
                nodegroup_problem(ng, cluster).map_or(Ok(()), |p| Err(refuse(p)))?;
                if !ng.auto_scaling_groups.iter().any(|n| n == group) {
                    return Err(refuse(format!(
                        "nodegroup {} no longer owns Auto Scaling group {group}",
                        ng.name
                    )));
                }
                // The nodegroup's minimum counts too (EKS may keep the group's own at 0).
                if let Some(min) = ng.min_size
                    && g.desired_capacity - 1 < min
                {
                    return Err(refuse(format!(
                        "nodegroup {} has minimum size {min}; Auto Scaling group {group} at {} would go below it",
                        ng.name, g.desired_capacity
                    )));
                }
            }
            Ok(Approval::Terminate(ApprovedTermination::new(
                group.clone(),
                instance_id.clone(),
            )))
        }
        Mutation::ScaleNodegroup {
            nodegroup,
            from,
            to,
            because_of,
        } => {
            let ng = evidence
                .nodegroup
                .as_ref()
                .filter(|n| n.name == *nodegroup)
                .ok_or_else(|| refuse(format!("nodegroup {nodegroup} was not found")))?;
            nodegroup_problem(ng, cluster).map_or(Ok(()), |p| Err(refuse(p)))?;
            if ng.status.as_deref() != Some("ACTIVE") {
                return Err(refuse(format!(
                    "nodegroup {nodegroup} is {}, not ACTIVE",
                    ng.status.as_deref().unwrap_or("in an unknown state")
                )));
            }
            let desired = ng
                .desired_size
                .ok_or_else(|| refuse(format!("nodegroup {nodegroup} reports no desired size")))?;
            if desired != *from {
                return Err(refuse(format!(
                    "nodegroup {nodegroup}'s desired size changed since the plan ({from} planned, {desired} now)"
                )));
            }
            if *to != from - 1 {
                return Err(refuse(format!(
                    "a run lowers a nodegroup by one node at a time, not {from}->{to}"
                )));
            }
            let min = ng.min_size.unwrap_or(0);
            if *to < min {
                return Err(refuse(format!(
                    "nodegroup {nodegroup} has minimum size {min}; {to} would go below it"
                )));
            }
            // The removable instance must be one of this nodegroup's, and the nodegroup at
            // rest: an earlier scale-in EKS has not finished yet must not be stacked on.
            let g = evidence
                .group
                .as_ref()
                .filter(|g| ng.auto_scaling_groups.contains(&g.name))
                .ok_or_else(|| {
                    refuse(format!(
                        "the Auto Scaling group of nodegroup {nodegroup} was not found"
                    ))
                })?;
            if !g.instance_ids.contains(because_of) {
                return Err(refuse(format!(
                    "instance {because_of} is not in nodegroup {nodegroup}'s Auto Scaling group {}",
                    g.name
                )));
            }
            let in_service = g
                .instance_ids
                .iter()
                .filter(|id| g.instance_states.get(*id).is_none_or(|s| s == "InService"))
                .count() as i32;
            // Launching, terminating (EKS drains behind a Terminating:Wait hook) or
            // detaching instances mean a change is still under way.
            let changing = g
                .instance_states
                .values()
                .any(|s| s != "InService" && !s.starts_with("Standby"));
            if changing || g.desired_capacity != desired || in_service != desired {
                return Err(refuse(format!(
                    "nodegroup {nodegroup} is still changing size (desired {desired}; its group wants {} and has {in_service} instances in service)",
                    g.desired_capacity
                )));
            }
            Ok(Approval::ScaleNodegroup(ApprovedNodegroupScale::new(
                cluster.to_string(),
                nodegroup.clone(),
                *to,
            )))
        }
    }
}

/// Tags and ownership of a nodegroup.
fn nodegroup_problem(ng: &Nodegroup, cluster: &str) -> Option<String> {
    if ng.cluster_name != cluster {
        return Some(format!(
            "nodegroup {} belongs to cluster {:?}, not {cluster:?}",
            ng.name, ng.cluster_name
        ));
    }
    tag_problem("nodegroup", &ng.name, &ng.tags, cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "prod";

    fn tags(managed: Option<&str>, cluster: Option<&str>) -> BTreeMap<String, String> {
        let mut t = BTreeMap::from([("team".to_string(), "x".to_string())]);
        if let Some(m) = managed {
            t.insert(TAG_MANAGED.into(), m.into());
        }
        if let Some(c) = cluster {
            t.insert(TAG_CLUSTER.into(), c.into());
        }
        t
    }

    fn good() -> Evidence {
        Evidence {
            group: Some(AutoScalingGroup {
                name: "asg-a".into(),
                tags: tags(Some("true"), Some(CLUSTER)),
                min_size: 1,
                max_size: 6,
                desired_capacity: 3,
                instance_ids: vec!["i-1".into(), "i-2".into(), "i-3".into()],
                instance_states: ["i-1", "i-2", "i-3"]
                    .iter()
                    .map(|i| (i.to_string(), "InService".to_string()))
                    .collect(),
            }),
            instance: Some(Instance {
                id: "i-2".into(),
                instance_type: Some("m5.large".into()),
                state: Some("running".into()),
                tags: tags(Some("true"), Some(CLUSTER)),
            }),
            nodegroup: Some(Nodegroup {
                name: "ng-a".into(),
                cluster_name: CLUSTER.into(),
                status: Some("ACTIVE".into()),
                tags: tags(Some("true"), Some(CLUSTER)),
                auto_scaling_groups: vec!["asg-a".into()],
                min_size: Some(1),
                max_size: Some(6),
                desired_size: Some(3),
                instance_types: vec!["m5.large".into()],
            }),
            group_has_nodegroup: true,
        }
    }

    fn terminate() -> Mutation {
        Mutation::TerminateInstance {
            group: "asg-a".into(),
            instance_id: "i-2".into(),
        }
    }

    fn scale() -> Mutation {
        Mutation::ScaleNodegroup {
            nodegroup: "ng-a".into(),
            from: 3,
            to: 2,
            because_of: "i-2".into(),
        }
    }

    fn refused(m: &Mutation, e: &Evidence) -> String {
        match check(CLUSTER, m, e) {
            Ok(a) => panic!("expected a refusal, got {a:?}"),
            Err(r) => r.reason,
        }
    }

    /// Every combination of the two tags on one resource; only (true, this cluster) passes.
    fn tag_variants() -> Vec<(Option<&'static str>, Option<&'static str>, bool)> {
        let mut v = Vec::new();
        for managed in [None, Some("true"), Some("false"), Some("True"), Some("")] {
            for cluster in [None, Some(CLUSTER), Some("staging"), Some("Prod"), Some("")] {
                v.push((
                    managed,
                    cluster,
                    managed == Some("true") && cluster == Some(CLUSTER),
                ));
            }
        }
        v
    }

    #[test]
    fn approves_fully_tagged_termination_and_scale() {
        match check(CLUSTER, &terminate(), &good()).unwrap() {
            Approval::Terminate(t) => {
                assert_eq!((t.group(), t.instance_id()), ("asg-a", "i-2"));
            }
            other => panic!("{other:?}"),
        }
        match check(CLUSTER, &scale(), &good()).unwrap() {
            Approval::ScaleNodegroup(s) => {
                assert_eq!(
                    (s.cluster(), s.nodegroup(), s.desired()),
                    ("prod", "ng-a", 2)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn termination_needs_both_tags_on_group_instance_and_owning_nodegroup() {
        for (m, c, ok) in tag_variants() {
            let mut e = good();
            e.group.as_mut().unwrap().tags = tags(m, c);
            assert_eq!(
                check(CLUSTER, &terminate(), &e).is_ok(),
                ok,
                "group {m:?} {c:?}"
            );
            let mut e = good();
            e.instance.as_mut().unwrap().tags = tags(m, c);
            assert_eq!(
                check(CLUSTER, &terminate(), &e).is_ok(),
                ok,
                "instance {m:?} {c:?}"
            );
            let mut e = good();
            e.nodegroup.as_mut().unwrap().tags = tags(m, c);
            assert_eq!(
                check(CLUSTER, &terminate(), &e).is_ok(),
                ok,
                "nodegroup {m:?} {c:?}"
            );
            // A group without a nodegroup does not look at nodegroup tags at all.
            e.group_has_nodegroup = false;
            e.nodegroup = None;
            assert!(check(CLUSTER, &terminate(), &e).is_ok());
        }
    }

    #[test]
    fn nodegroup_scale_needs_both_tags_on_the_nodegroup() {
        for (m, c, ok) in tag_variants() {
            let mut e = good();
            e.nodegroup.as_mut().unwrap().tags = tags(m, c);
            // Group and instance tags are irrelevant for a nodegroup call.
            e.group.as_mut().unwrap().tags.clear();
            e.instance = None;
            assert_eq!(check(CLUSTER, &scale(), &e).is_ok(), ok, "{m:?} {c:?}");
        }
    }

    #[test]
    fn refusal_reasons_name_resource_and_rule() {
        let mut e = good();
        e.group.as_mut().unwrap().tags = tags(None, None);
        assert_eq!(
            refused(&terminate(), &e),
            "Auto Scaling group asg-a does not carry crossguard.dev/managed=true"
        );
        let mut e = good();
        e.group.as_mut().unwrap().tags = tags(Some("true"), Some("staging"));
        assert!(refused(&terminate(), &e).contains("not this cluster"));
        let mut e = good();
        e.nodegroup.as_mut().unwrap().tags.remove(TAG_CLUSTER);
        let r = check(CLUSTER, &scale(), &e).unwrap_err();
        assert_eq!(r.action, SCALE_NODEGROUP_ACTION);
        assert_eq!(r.target, "nodegroup/ng-a desiredSize 3->2");
        assert_eq!(
            r.to_string(),
            "eks:UpdateNodegroupConfig on nodegroup/ng-a desiredSize 3->2 refused: nodegroup ng-a does not carry crossguard.dev/cluster=prod"
        );
    }

    #[test]
    fn termination_refuses_missing_or_mismatched_resources() {
        let mut e = good();
        e.group = None;
        assert!(refused(&terminate(), &e).contains("was not found"));
        let mut e = good();
        e.group.as_mut().unwrap().name = "asg-other".into();
        assert!(refused(&terminate(), &e).contains("was not found"));
        let mut e = good();
        e.instance = None;
        assert!(refused(&terminate(), &e).contains("instance i-2 was not found"));
        let mut e = good();
        e.instance.as_mut().unwrap().id = "i-9".into();
        assert!(refused(&terminate(), &e).contains("was not found"));
        let mut e = good();
        e.group.as_mut().unwrap().instance_ids = vec!["i-1".into()];
        assert!(refused(&terminate(), &e).contains("not a member"));
        for state in [
            None,
            Some("stopped"),
            Some("shutting-down"),
            Some("terminated"),
        ] {
            let mut e = good();
            e.instance.as_mut().unwrap().state = state.map(String::from);
            assert!(
                refused(&terminate(), &e).contains("not running"),
                "{state:?}"
            );
        }
        let mut e = good();
        e.nodegroup = None;
        assert!(refused(&terminate(), &e).contains("owning Auto Scaling group"));
        let mut e = good();
        e.nodegroup.as_mut().unwrap().cluster_name = "staging".into();
        assert!(refused(&terminate(), &e).contains("belongs to cluster"));
        let mut e = good();
        e.nodegroup.as_mut().unwrap().auto_scaling_groups = vec!["asg-b".into()];
        assert!(refused(&terminate(), &e).contains("no longer owns"));
    }

    #[test]
    fn never_below_minimum() {
        for (desired, min, ok) in [
            (3, 1, true),
            (2, 1, true),
            (1, 1, false),
            (2, 2, false),
            (0, 0, false),
        ] {
            let mut e = good();
            let g = e.group.as_mut().unwrap();
            g.desired_capacity = desired;
            g.min_size = min;
            assert_eq!(
                check(CLUSTER, &terminate(), &e).is_ok(),
                ok,
                "asg {desired}/{min}"
            );

            let mut e = good();
            let ng = e.nodegroup.as_mut().unwrap();
            ng.desired_size = Some(desired);
            ng.min_size = Some(min);
            let g = e.group.as_mut().unwrap();
            g.desired_capacity = desired;
            g.instance_ids = ["i-1", "i-2", "i-3"][..desired.clamp(0, 3) as usize]
                .iter()
                .map(|i| i.to_string())
                .collect();
            let m = Mutation::ScaleNodegroup {
                nodegroup: "ng-a".into(),
                from: desired,
                to: desired - 1,
                because_of: "i-2".into(),
            };
            assert_eq!(
                check(CLUSTER, &m, &e).is_ok(),
                ok,
                "nodegroup {desired}/{min}"
            );
        }
    }

    #[test]
    fn termination_respects_the_owning_nodegroups_minimum() {
        let mut e = good();
        e.group.as_mut().unwrap().min_size = 0;
        e.group.as_mut().unwrap().desired_capacity = 1;
        e.nodegroup.as_mut().unwrap().min_size = Some(1);
        assert!(refused(&terminate(), &e).contains("nodegroup ng-a has minimum size 1"));
        e.group.as_mut().unwrap().desired_capacity = 2;
        assert!(check(CLUSTER, &terminate(), &e).is_ok());
    }

    #[test]
    fn nodegroup_scale_refuses_stale_or_odd_plans() {
        let mut e = good();
        e.nodegroup.as_mut().unwrap().desired_size = Some(4);
        assert!(refused(&scale(), &e).contains("changed since the plan"));
        let mut e = good();
        e.nodegroup.as_mut().unwrap().desired_size = None;
        assert!(refused(&scale(), &e).contains("no desired size"));
        let two_at_once = Mutation::ScaleNodegroup {
            nodegroup: "ng-a".into(),
            from: 3,
            to: 1,
            because_of: "i-2".into(),
        };
        assert!(refused(&two_at_once, &good()).contains("one node at a time"));
        for status in [None, Some("UPDATING"), Some("DEGRADED"), Some("DELETING")] {
            let mut e = good();
            e.nodegroup.as_mut().unwrap().status = status.map(String::from);
            assert!(refused(&scale(), &e).contains("not ACTIVE"), "{status:?}");
        }
        let mut e = good();
        e.nodegroup.as_mut().unwrap().cluster_name = "staging".into();
        assert!(refused(&scale(), &e).contains("belongs to cluster"));
        let mut e = good();
        e.nodegroup = None;
        assert!(refused(&scale(), &e).contains("was not found"));
        let mut e = good();
        e.nodegroup.as_mut().unwrap().name = "ng-b".into();
        assert!(refused(&scale(), &e).contains("was not found"));
    }

    #[test]
    fn nodegroup_scale_needs_the_instance_in_its_group_and_the_group_at_rest() {
        let mut e = good();
        e.group.as_mut().unwrap().instance_ids = vec!["i-1".into(), "i-3".into(), "i-4".into()];
        assert!(refused(&scale(), &e).contains("instance i-2 is not in nodegroup ng-a"));
        let mut e = good();
        e.group = None;
        assert!(
            refused(&scale(), &e).contains("Auto Scaling group of nodegroup ng-a was not found")
        );
        let mut e = good();
        e.group.as_mut().unwrap().name = "asg-elsewhere".into();
        assert!(refused(&scale(), &e).contains("was not found"));
        // EKS has not finished the previous scale-in: the group still wants or runs more.
        let mut e = good();
        e.group.as_mut().unwrap().desired_capacity = 4;
        assert!(refused(&scale(), &e).contains("still changing size"));
        let mut e = good();
        e.group
            .as_mut()
            .unwrap()
            .instance_states
            .insert("i-3".into(), "Terminating:Wait".into());
        assert!(refused(&scale(), &e).contains("still changing size"));
        // What EKS shows right after a scale-in from 4: the group already wants 3 and has 3
        // in service, while the fourth instance drains behind its lifecycle hook.
        let mut e = good();
        let g = e.group.as_mut().unwrap();
        g.instance_ids.push("i-4".into());
        g.instance_states
            .insert("i-4".into(), "Terminating:Wait".into());
        assert!(refused(&scale(), &e).contains("still changing size"));
        // Standby instances are parked on purpose and do not block.
        let mut e = good();
        let g = e.group.as_mut().unwrap();
        g.instance_ids.push("i-5".into());
        g.instance_states.insert("i-5".into(), "Standby".into());
        assert!(check(CLUSTER, &scale(), &e).is_ok());
    }

    #[test]
    fn termination_needs_the_instance_in_service() {
        for state in [
            "Terminating",
            "Terminating:Wait",
            "Pending",
            "Detaching",
            "Standby",
        ] {
            let mut e = good();
            e.group
                .as_mut()
                .unwrap()
                .instance_states
                .insert("i-2".into(), state.into());
            assert!(
                refused(&terminate(), &e).contains("not InService"),
                "{state}"
            );
        }
    }

    #[test]
    fn request_tokens_differ_per_intent_and_stay_valid() {
        let approve = || match check(CLUSTER, &scale(), &good()).unwrap() {
            Approval::ScaleNodegroup(s) => s,
            other => panic!("{other:?}"),
        };
        let a = approve().with_request_token("2026-06-01T12:00:00Z");
        let b = approve().with_request_token("2026-06-01T13:00:00Z");
        assert_ne!(a.idempotency_token(), b.idempotency_token());
        assert_eq!(
            a.idempotency_token(),
            approve()
                .with_request_token("2026-06-01T12:00:00Z")
                .idempotency_token(),
            "the same intent, the same token"
        );
        assert_eq!(a.idempotency_token().len(), "crossguard-".len() + 32);
        assert!(
            a.idempotency_token()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
        assert_eq!(a.desired(), 2, "the token changes nothing else");
    }

    #[test]
    fn another_cluster_is_never_this_cluster() {
        // The same resources, fully tagged for "prod", are refused for a "staging" guard.
        assert!(check("staging", &terminate(), &good()).is_err());
        assert!(check("staging", &scale(), &good()).is_err());
    }
}
