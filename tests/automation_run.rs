//! The automation executor against the stateful AWS fake (`crossguard::testing::aws`) and
//! the in-process fake API server as the customer's cluster: dry run, a guarded removal, tags removed between
//! plan and call, a drain blocked by a PodDisruptionBudget, and restart settlement of both
//! intent phases. (The same paths against moto and the real binary are in
//! tests/automation_e2e.rs.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crossguard::analysis::RemovableNode;
use crossguard::api::{ActionRecord, PendingAction};
use crossguard::audit::NoAudit;
use crossguard::automation::plan::{self, AwsView, Budget, NodeFacts, Plan};
use crossguard::automation::{self, ClusterAccess, Journal, Outcome, Settings};
use crossguard::aws::{
    AutoScalingGroup, AwsError, EksCluster, Instance, Nodegroup, TAG_CLUSTER, TAG_MANAGED,
};
use crossguard::clock::{Clock, SystemClock};
use crossguard::testing::aws::{FakeAws, World};
use serde_json::json;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";

/// One nodegroup `ng` with group `asg` and three instances, all managed for `prod`, after
/// `tweak`.
fn fake(tweak: impl FnOnce(&mut World)) -> Arc<FakeAws> {
    let tags = BTreeMap::from([
        (TAG_MANAGED.to_string(), "true".to_string()),
        (TAG_CLUSTER.to_string(), "prod".to_string()),
    ]);
    let ids: Vec<String> = (0..3).map(|i| format!("i-{i}")).collect();
    let aws = FakeAws::new(Arc::new(SystemClock));
    aws.put_cluster(
        ACCOUNT,
        REGION,
        EksCluster {
            name: "prod".into(),
            status: Some("ACTIVE".into()),
            ..Default::default()
        },
    );
    aws.put_nodegroup(
        ACCOUNT,
        REGION,
        Nodegroup {
            name: "ng".into(),
            cluster_name: "prod".into(),
            status: Some("ACTIVE".into()),
            tags: tags.clone(),
            auto_scaling_groups: vec!["asg".into()],
            min_size: Some(1),
            max_size: Some(6),
            desired_size: Some(3),
            instance_types: vec!["m5.large".into()],
        },
    );
    aws.put_group(
        ACCOUNT,
        REGION,
        AutoScalingGroup {
            name: "asg".into(),
            tags: tags.clone(),
            min_size: 1,
            max_size: 6,
            desired_capacity: 3,
            instance_ids: ids.clone(),
            instance_states: ids
                .iter()
                .map(|id| (id.clone(), "InService".to_string()))
                .collect(),
        },
    );
    for id in ids {
        aws.put_instance(
            ACCOUNT,
            REGION,
            Instance {
                id,
                instance_type: Some("m5.large".into()),
                state: Some("running".into()),
                tags: tags.clone(),
            },
        );
    }
    aws.with_world(ACCOUNT, REGION, tweak);
    aws
}

/// The mutating calls made, as `Operation target`.
fn mutating(aws: &FakeAws) -> Vec<String> {
    aws.mutating_calls()
        .into_iter()
        .map(|c| format!("{} {}", c.operation, c.target))
        .collect()
}

/// The AWS side as the run reads it at its start: every nodegroup, group and instance.
struct View {
    nodegroups: Vec<Nodegroup>,
    groups: Vec<AutoScalingGroup>,
    instances: Vec<Instance>,
}

impl View {
    fn of(aws: &FakeAws) -> View {
        aws.with_world(ACCOUNT, REGION, |w| View {
            nodegroups: w.nodegroups.values().cloned().collect(),
            groups: w.groups.values().cloned().collect(),
            instances: w.instances.values().cloned().collect(),
        })
    }

    fn aws(&self) -> AwsView<'_> {
        AwsView {
            nodegroups: &self.nodegroups,
            groups: &self.groups,
            instances: &self.instances,
        }
    }
}

/// Keeps what a run records in memory (like status) and can run a hook when an intent is
/// recorded.
#[derive(Default)]
struct MemJournal {
    intents: Vec<Option<PendingAction>>,
    done: Vec<ActionRecord>,
    removals: Vec<jiff::Timestamp>,
    events: Vec<(bool, String, String)>,
    on_draining: Option<Box<dyn FnMut() + Send>>,
}

#[async_trait]
impl Journal for MemJournal {
    async fn record(
        &mut self,
        intent: Option<&PendingAction>,
        done: Option<&ActionRecord>,
        removed: Option<jiff::Timestamp>,
    ) -> Result<(), String> {
        if intent.is_some_and(|i| i.phase == automation::PHASE_DRAINING)
            && let Some(hook) = self.on_draining.as_mut()
        {
            hook();
        }
        self.intents.push(intent.cloned());
        self.done.extend(done.cloned());
        self.removals.extend(removed);
        Ok(())
    }
    async fn event(&mut self, warning: bool, reason: &str, note: &str) {
        self.events.push((warning, reason.into(), note.into()));
    }
}

impl MemJournal {
    fn phases(&self) -> Vec<Option<String>> {
        self.intents
            .iter()
            .map(|i| i.as_ref().map(|i| i.phase.clone()))
            .collect()
    }
}

struct Cluster {
    server: fake_apiserver::FakeApiServer,
    client: kube::Client,
}

/// Nodes n-0..n-2 on i-0..i-2, a web pod on n-1 (optionally under a PDB allowing nothing),
/// and a DaemonSet pod on every node.
async fn cluster(pdb_blocks: bool) -> Cluster {
    crossguard::install_crypto_provider();
    let server = fake_apiserver::FakeApiServer::start().await.unwrap();
    for i in 0..3 {
        server
            .seed(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": format!("n-{i}"), "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"providerID": format!("aws:///us-east-1a/i-{i}")}}))
            .unwrap();
        server
            .seed(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("agent-{i}"), "namespace": "kube-system",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds", "controller": true}]},
                "spec": {"nodeName": format!("n-{i}"), "containers": [{"name": "a", "image": "a"}]},
                "status": {"phase": "Running"}}))
            .unwrap();
    }
    server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .ok();
    server
        .seed(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": true}]},
            "spec": {"nodeName": "n-1", "containers": [{"name": "w", "image": "w"}]},
            "status": {"phase": "Running"}}))
        .unwrap();
    if pdb_blocks {
        server
            .seed(
                json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
                "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1,
                    "expectedPods": 1, "observedGeneration": 1}}),
            )
            .unwrap();
    }
    // As the operator's customer-cluster client: no automatic retry of 429 (see reader.rs).
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    Cluster { server, client }
}

fn nodes() -> Vec<NodeFacts> {
    (0..3)
        .map(|i| NodeFacts {
            name: format!("n-{i}"),
            instance_id: Some(format!("i-{i}")),
            created: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            cordoned: false,
        })
        .collect()
}

fn settings(dry_run: bool) -> Settings {
    Settings {
        cluster: "prod".into(),
        dry_run,
        budget: Budget {
            max_per_run: 1,
            max_per_hour: 3,
            min_node_age: Duration::from_secs(3600),
        },
        drain_timeout: Duration::from_secs(3),
    }
}

fn the_plan(v: &View) -> Plan {
    let removable = vec![RemovableNode {
        node: "n-1".into(),
        nodegroup: "ng".into(),
        instance_type: Some("m5.large".into()),
        monthly_cost: 70.0,
        pods_moved: 1,
    }];
    plan::plan(
        "prod",
        &removable,
        &nodes(),
        &v.aws(),
        &settings(false).budget,
        SystemClock.now(),
    )
}

async fn go(
    aws: &FakeAws,
    c: &Cluster,
    dry_run: bool,
    pending: Option<&PendingAction>,
    journal: &mut MemJournal,
) -> Outcome {
    let v = View::of(aws);
    let p = the_plan(&v);
    let sole = crossguard::leader::Leadership::sole();
    let access = ClusterAccess {
        client: &c.client,
        observer: &NoAudit,
        leadership: &sole,
    };
    automation::run(
        &settings(dry_run),
        &p,
        &v.aws(),
        pending,
        &[],
        &aws.clients(ACCOUNT, REGION, Arc::new(NoAudit)),
        &access,
        journal,
        &SystemClock,
    )
    .await
}

fn unschedulable(c: &Cluster, node: &str) -> bool {
    c.server
        .get_object("v1", "nodes", None, node)
        .and_then(|n| n.pointer("/spec/unschedulable").and_then(|v| v.as_bool()))
        .unwrap_or(false)
}

fn pod_exists(c: &Cluster, ns: &str, name: &str) -> bool {
    c.server.get_object("v1", "pods", Some(ns), name).is_some()
}

fn cordon(c: &Cluster, node: &str) {
    let i = node.trim_start_matches("n-");
    c.server
        .seed(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"providerID": format!("aws:///us-east-1a/i-{i}"), "unschedulable": true}}))
        .unwrap();
}

#[tokio::test]
async fn dry_run_plans_and_touches_nothing() {
    let aws = fake(|_| {});
    let c = cluster(false).await;
    let mut j = MemJournal::default();
    let out = go(&aws, &c, true, None, &mut j).await;
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(out.planned.len(), 1);
    assert_eq!(out.planned[0].outcome, "Planned");
    assert!(out.planned[0].dry_run);
    assert!(mutating(&aws).is_empty());
    assert!(j.intents.is_empty(), "a dry run records no intent");
    assert!(
        !c.server.requests().iter().any(|r| r.is_write()),
        "no write to the cluster"
    );
}

#[tokio::test]
async fn live_run_drains_then_terminates_exactly_that_instance() {
    let aws = fake(|_| {});
    let c = cluster(false).await;
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, None, &mut j).await;
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(
        mutating(&aws),
        vec!["TerminateInstanceInAutoScalingGroup asg/i-1"]
    );
    assert_eq!(j.done.len(), 1);
    assert_eq!(j.done[0].outcome, "Succeeded");
    assert_eq!(
        j.removals.len(),
        1,
        "the removal is recorded with the result"
    );
    // Intent before acting, then Calling, then cleared (with the result, in one write).
    assert_eq!(
        j.phases(),
        vec![Some("Draining".into()), Some("Calling".into()), None]
    );
    assert!(unschedulable(&c, "n-1"), "the removed node stays cordoned");
    assert!(!pod_exists(&c, "shop", "web-0"), "the web pod was evicted");
    assert!(
        pod_exists(&c, "kube-system", "agent-1"),
        "DaemonSet pods are not evicted"
    );
    let evictions: Vec<_> = c
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .collect();
    assert_eq!(evictions.len(), 1);
    assert!(j.events.iter().any(|(w, r, _)| !w && r == "NodeRemoved"));

    // The same cluster again: the instance is no longer running, nothing more happens.
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, None, &mut j).await;
    assert!(
        out.finished.is_empty() && out.refusals.is_empty() && j.intents.is_empty(),
        "{out:?}"
    );
    assert_eq!(
        mutating(&aws).len(),
        1,
        "an unchanged cluster causes no mutating call"
    );
}

#[tokio::test]
async fn nodegroup_scale_in_lets_eks_choose_and_drains_nothing() {
    let aws = fake(|w| {
        w.group_mut("asg").tags.clear(); // only the nodegroup is tagged (EKS does not copy its tags)
        for i in w.instances.values_mut() {
            i.tags.clear();
        }
    });
    let c = cluster(false).await;
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, None, &mut j).await;
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(
        mutating(&aws),
        vec!["UpdateNodegroupConfig prod/ng desiredSize=2"]
    );
    assert_eq!(
        j.phases(),
        vec![Some("Calling".into()), None],
        "no drain phase"
    );
    assert_eq!(j.done[0].outcome, "Succeeded");
    assert_eq!(
        j.done[0].node, None,
        "EKS picks the node, so none is named as removed"
    );
    assert!(
        !c.server.requests().iter().any(|r| r.is_write()),
        "crossguard drained nothing"
    );

    // Until EKS has removed an instance, the nodegroup is not at rest: no second scale-in.
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, None, &mut j).await;
    assert_eq!(mutating(&aws).len(), 1, "{out:?}");
    assert!(
        out.refusals[0].reason.contains("still changing size"),
        "{out:?}"
    );
}

#[tokio::test]
async fn tags_removed_between_plan_and_call_are_refused_and_the_node_given_back() {
    for strip in ["group", "nodegroup", "instance", "other-cluster"] {
        let aws = fake(|_| {});
        let c = cluster(false).await;
        let mut j = MemJournal::default();
        let hook_aws = aws.clone();
        j.on_draining = Some(Box::new(move || {
            hook_aws.with_world(ACCOUNT, REGION, |w| match strip {
                "group" => w.group_mut("asg").tags.clear(),
                "nodegroup" => {
                    w.nodegroup_mut("prod", "ng").tags.remove(TAG_MANAGED);
                }
                "instance" => w.instance_mut("i-1").tags.clear(),
                _ => {
                    w.group_mut("asg")
                        .tags
                        .insert(TAG_CLUSTER.into(), "staging".into());
                }
            })
        }));
        let out = go(&aws, &c, false, None, &mut j).await;
        assert!(mutating(&aws).is_empty(), "{strip}: nothing called");
        assert_eq!(out.refusals.len(), 1, "{strip}: {out:?}");
        assert!(
            out.refusals[0]
                .reason
                .contains("checked after draining node n-1"),
            "{out:?}"
        );
        assert_eq!(j.intents.last(), Some(&None), "{strip}: intent cleared");
        assert!(!unschedulable(&c, "n-1"), "{strip}: node uncordoned");
        assert!(j.removals.is_empty());
    }
}

#[tokio::test]
async fn pdb_blocked_drain_times_out_and_uncordons() {
    let aws = fake(|_| {});
    let c = cluster(true).await;
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, None, &mut j).await;
    assert!(mutating(&aws).is_empty());
    assert_eq!(j.done[0].outcome, "Failed", "{out:?}");
    let message = j.done[0].message.clone().unwrap();
    assert!(
        message.contains("drain timed out") && message.contains("disruption budget"),
        "{message}"
    );
    assert!(pod_exists(&c, "shop", "web-0"), "the protected pod stays");
    assert!(!unschedulable(&c, "n-1"));
    assert_eq!(j.intents.last(), Some(&None));
}

#[tokio::test]
async fn a_pod_without_controller_stops_the_drain() {
    let aws = fake(|_| {});
    let c = cluster(false).await;
    c.server
        .seed(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "bare", "namespace": "shop"},
            "spec": {"nodeName": "n-1", "containers": [{"name": "b", "image": "b"}]},
            "status": {"phase": "Running"}}))
        .unwrap();
    let mut j = MemJournal::default();
    go(&aws, &c, false, None, &mut j).await;
    assert!(mutating(&aws).is_empty());
    assert!(
        j.done[0]
            .message
            .as_deref()
            .unwrap()
            .contains("shop/bare has no controller"),
        "{:?}",
        j.done
    );
    assert!(pod_exists(&c, "shop", "bare"), "never evicted");
    assert!(!unschedulable(&c, "n-1"));
}

#[tokio::test]
async fn a_call_without_a_definite_answer_is_verified_not_repeated() {
    let aws = fake(|_| {});
    let c = cluster(false).await;
    aws.fail(
        "TerminateInstanceInAutoScalingGroup",
        AwsError::new(
            "autoscaling",
            "TerminateInstanceInAutoScalingGroup",
            None,
            Some("request timed out".into()),
            None,
            None,
        ),
        1,
    );
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, None, &mut j).await;
    assert_eq!(out.verify_again, Some(automation::VERIFY_RETRY), "{out:?}");
    assert_eq!(
        j.phases().last(),
        Some(&Some("Calling".to_string())),
        "the intent stays"
    );
    assert!(
        unschedulable(&c, "n-1"),
        "the node stays cordoned while unknown"
    );
    // The next run looks, and does not call again while the effect may still come.
    let pending = j.intents.last().cloned().flatten().unwrap();
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, Some(&pending), &mut j).await;
    assert_eq!(out.verify_again, Some(automation::VERIFY_RETRY));
    assert_eq!(mutating(&aws).len(), 1, "never sent twice");

    // A definite rejection (a 4xx service error) is a plain failure: node given back.
    let aws = fake(|_| {});
    let c = cluster(false).await;
    aws.fail(
        "TerminateInstanceInAutoScalingGroup",
        AwsError::new(
            "autoscaling",
            "TerminateInstanceInAutoScalingGroup",
            Some("ValidationError".into()),
            Some("no".into()),
            Some(400),
            None,
        ),
        1,
    );
    let mut j = MemJournal::default();
    go(&aws, &c, false, None, &mut j).await;
    assert_eq!(j.done[0].outcome, "Failed");
    assert_eq!(j.intents.last(), Some(&None));
    assert!(!unschedulable(&c, "n-1"));
}

fn pending(phase: &str, started: jiff::Timestamp) -> PendingAction {
    let v = View::of(&fake(|_| {}));
    automation::intent(&the_plan(&v).candidates[0], phase, started)
}

#[tokio::test]
async fn restart_in_draining_phase_uncordons_and_plans_only_next_run() {
    let aws = fake(|_| {});
    let c = cluster(false).await;
    cordon(&c, "n-1");
    let mut j = MemJournal::default();
    let p = pending("Draining", SystemClock.now());
    let out = go(&aws, &c, false, Some(&p), &mut j).await;
    assert_eq!(j.done[0].outcome, "Abandoned");
    assert!(!unschedulable(&c, "n-1"));
    assert_eq!(j.intents, vec![None]);
    assert!(
        mutating(&aws).is_empty(),
        "settling stops the run: no new action from a stale plan"
    );
    assert!(out.finished.len() == 1 && out.planned.is_empty());
}

#[tokio::test]
async fn a_dry_run_leaves_a_leftover_intent_alone() {
    let aws = fake(|_| {});
    let c = cluster(false).await;
    cordon(&c, "n-1");
    c.server.clear_requests();
    let mut j = MemJournal::default();
    let p = pending("Draining", SystemClock.now());
    let out = go(&aws, &c, true, Some(&p), &mut j).await;
    assert!(
        out.left_pending
            .as_deref()
            .unwrap()
            .contains("dryRun is false"),
        "{out:?}"
    );
    assert!(
        unschedulable(&c, "n-1"),
        "a dry run writes nothing, not even an uncordon"
    );
    assert!(!c.server.requests().iter().any(|r| r.is_write()));
    assert!(j.intents.is_empty());
    assert_eq!(
        out.planned.len(),
        1,
        "planning still shows what would happen"
    );
}

#[tokio::test]
async fn restart_in_calling_phase_never_calls_again() {
    // The call landed before the restart: confirmed, not repeated.
    let aws = fake(|_| {});
    let c = cluster(false).await;
    aws.with_world(ACCOUNT, REGION, |w| {
        let g = w.group_mut("asg");
        g.instance_ids.retain(|i| i != "i-1");
        g.desired_capacity = 2;
        w.instance_mut("i-1").state = Some("terminated".into());
    });
    let mut j = MemJournal::default();
    let p = pending("Calling", SystemClock.now());
    go(&aws, &c, false, Some(&p), &mut j).await;
    assert_eq!(j.done[0].outcome, "Succeeded");
    assert_eq!(j.removals.len(), 1, "counted against the hourly budget");
    assert!(
        mutating(&aws).is_empty(),
        "confirmed by describing, not by calling again"
    );

    // Held by a lifecycle hook (still running, Terminating:Wait in the group): took effect.
    let aws = fake(|w| {
        w.group_mut("asg")
            .instance_states
            .insert("i-1".into(), "Terminating:Wait".into());
    });
    let mut j = MemJournal::default();
    go(&aws, &c, false, Some(&p), &mut j).await;
    assert_eq!(j.done[0].outcome, "Succeeded");
    assert!(mutating(&aws).is_empty());

    // No effect yet, within the grace period: wait, and do nothing else at all.
    let aws = fake(|_| {});
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, Some(&p), &mut j).await;
    assert_eq!(out.verify_again, Some(automation::VERIFY_RETRY));
    assert!(out.finished.is_empty() && mutating(&aws).is_empty() && j.intents.is_empty());

    // No effect after the grace period (or an unreadable start): Failed, node uncordoned,
    // intent cleared, and still no call in this run.
    for started in ["old", "garbage"] {
        let mut p = pending(
            "Calling",
            SystemClock.now() - jiff::SignedDuration::from_secs(600),
        );
        if started == "garbage" {
            p.started_at = "not a time".into();
        }
        cordon(&c, "n-1");
        let mut j = MemJournal::default();
        go(&aws, &c, false, Some(&p), &mut j).await;
        assert_eq!(j.done[0].outcome, "Failed", "{started}");
        assert!(
            j.done[0]
                .message
                .as_deref()
                .unwrap()
                .contains("had no effect")
        );
        assert_eq!(j.intents, vec![None]);
        assert!(!unschedulable(&c, "n-1"));
        assert!(mutating(&aws).is_empty());
    }
}

#[tokio::test]
async fn budget_counts_earlier_removals() {
    let aws = fake(|_| {});
    let c = cluster(false).await;
    let v = View::of(&aws);
    let p = the_plan(&v);
    let mut s = settings(false);
    s.budget.max_per_hour = 1;
    let earlier = [SystemClock.now() - jiff::SignedDuration::from_secs(600)];
    let mut j = MemJournal::default();
    let sole = crossguard::leader::Leadership::sole();
    let access = ClusterAccess {
        client: &c.client,
        observer: &NoAudit,
        leadership: &sole,
    };
    let out = automation::run(
        &s,
        &p,
        &v.aws(),
        None,
        &earlier,
        &aws.clients(ACCOUNT, REGION, Arc::new(NoAudit)),
        &access,
        &mut j,
        &SystemClock,
    )
    .await;
    assert_eq!(
        out.deferred, 1,
        "one removal in the last hour uses the hourly budget of 1"
    );
    assert!(out.finished.is_empty() && mutating(&aws).is_empty());
}

#[tokio::test]
async fn a_node_that_cannot_be_uncordoned_keeps_its_intent_until_it_can() {
    let aws = fake(|_| {});
    let c = cluster(false).await;
    // Both the cordon and the uncordon of n-1 fail.
    c.server
        .inject_failure(Some("PATCH"), "/api/v1/nodes/n-1", 500, 2);
    let mut j = MemJournal::default();
    go(&aws, &c, false, None, &mut j).await;
    assert!(mutating(&aws).is_empty());
    assert_eq!(j.done[0].outcome, "Failed");
    assert!(
        j.done[0]
            .message
            .as_deref()
            .unwrap()
            .contains("retried next run"),
        "{:?}",
        j.done
    );
    let kept = j
        .intents
        .last()
        .cloned()
        .flatten()
        .expect("the intent stays");
    assert_eq!(kept.phase, "Draining");
    // Next run: the uncordon works, the intent goes, and nothing else happens in that run.
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, Some(&kept), &mut j).await;
    assert_eq!(j.done[0].outcome, "Abandoned", "{out:?}");
    assert_eq!(j.intents, vec![None]);
    assert!(mutating(&aws).is_empty());
    assert!(out.planned.is_empty());
}

/// A replica that does not (or no longer) hold the leader Lease does nothing to the
/// customer's cluster and makes no mutating call: the run stops after recording its
/// intent, which the next leader settles, as if this replica had died there.
#[tokio::test]
async fn a_replica_that_does_not_lead_neither_cordons_nor_calls() {
    let aws = fake(|_| {});
    let c = cluster(false).await;
    let mut j = MemJournal::default();
    let v = View::of(&aws);
    let p = the_plan(&v);
    let not_leading = crossguard::leader::Leadership::default();
    let access = ClusterAccess {
        client: &c.client,
        observer: &NoAudit,
        leadership: &not_leading,
    };
    let out = automation::run(
        &settings(false),
        &p,
        &v.aws(),
        None,
        &[],
        &aws.clients(ACCOUNT, REGION, Arc::new(NoAudit)),
        &access,
        &mut j,
        &SystemClock,
    )
    .await;
    let error = out
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        error.contains("no longer holds the leader lease"),
        "{error}"
    );
    assert!(mutating(&aws).is_empty());
    assert!(!unschedulable(&c, "n-1"), "not cordoned");
    assert!(pod_exists(&c, "shop", "web-0"), "nothing evicted");
    assert_eq!(
        j.phases(),
        vec![Some("Draining".into())],
        "the intent stays"
    );
}
