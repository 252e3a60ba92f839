//! The automation executor against a stateful fake of the AWS calls and the in-process fake
//! API server as the customer's cluster: dry run, a guarded removal, tags removed between
//! plan and call, a drain blocked by a PodDisruptionBudget, and restart settlement of both
//! intent phases. (The same paths against moto and the real binary are in
//! tests/automation_e2e.rs.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use crossguard::analysis::RemovableNode;
use crossguard::api::{ActionRecord, PendingAction};
use crossguard::audit::NoAudit;
use crossguard::automation::guard::{ApprovedNodegroupScale, ApprovedTermination};
use crossguard::automation::plan::{self, AwsView, Budget, NodeFacts, Plan};
use crossguard::automation::{self, ClusterAccess, Journal, Outcome, Settings};
use crossguard::aws::{
    AutoScaling, AutoScalingGroup, AwsError, CallerIdentity, CustomerClients, Ec2, Eks, EksCluster,
    Identity, Instance, InstanceTypeShape, Nodegroup, TAG_CLUSTER, TAG_MANAGED,
};
use crossguard::clock::{Clock, SystemClock};
use serde_json::json;

/// One nodegroup `ng` with group `asg` and three instances, all managed for `prod`.
#[derive(Clone)]
struct World {
    nodegroup: Nodegroup,
    group: AutoScalingGroup,
    instances: Vec<Instance>,
}

#[derive(Default)]
struct Aws {
    world: Mutex<Option<World>>,
    mutating: Mutex<Vec<String>>,
    /// The next termination fails with this error (and has no effect).
    fail_terminate: Mutex<Option<AwsError>>,
}

fn world() -> World {
    let tags = BTreeMap::from([
        (TAG_MANAGED.to_string(), "true".to_string()),
        (TAG_CLUSTER.to_string(), "prod".to_string()),
    ]);
    let ids: Vec<String> = (0..3).map(|i| format!("i-{i}")).collect();
    World {
        nodegroup: Nodegroup {
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
        group: AutoScalingGroup {
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
        instances: ids
            .into_iter()
            .map(|id| Instance {
                id,
                instance_type: Some("m5.large".into()),
                state: Some("running".into()),
                tags: tags.clone(),
            })
            .collect(),
    }
}

impl Aws {
    fn new(w: World) -> Arc<Self> {
        Arc::new(Aws {
            world: Mutex::new(Some(w)),
            mutating: Mutex::new(vec![]),
            fail_terminate: Mutex::new(None),
        })
    }
    fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(self.world.lock().unwrap().as_mut().unwrap())
    }
    fn mutating(&self) -> Vec<String> {
        self.mutating.lock().unwrap().clone()
    }
    fn clients(self: &Arc<Self>) -> CustomerClients {
        CustomerClients {
            identity: self.clone(),
            eks: self.clone(),
            autoscaling: self.clone(),
            ec2: self.clone(),
        }
    }
}

fn not_found(op: &'static str) -> AwsError {
    AwsError::new(
        "test",
        op,
        Some("ResourceNotFoundException".into()),
        None,
        Some(404),
        None,
    )
}

#[async_trait]
impl Identity for Aws {
    async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        unreachable!()
    }
}

#[async_trait]
impl Eks for Aws {
    async fn describe_cluster(&self, _: &str) -> Result<EksCluster, AwsError> {
        unreachable!()
    }
    async fn list_nodegroups(&self, _: &str) -> Result<Vec<String>, AwsError> {
        unreachable!()
    }
    async fn describe_nodegroup(&self, _: &str, name: &str) -> Result<Nodegroup, AwsError> {
        self.with(|w| (w.nodegroup.name == name).then(|| w.nodegroup.clone()))
            .ok_or_else(|| not_found("DescribeNodegroup"))
    }
    async fn update_nodegroup_size(&self, a: ApprovedNodegroupScale) -> Result<(), AwsError> {
        self.mutating.lock().unwrap().push(format!(
            "UpdateNodegroupConfig {} {}",
            a.nodegroup(),
            a.desired()
        ));
        self.with(|w| w.nodegroup.desired_size = Some(a.desired()));
        Ok(())
    }
}

#[async_trait]
impl AutoScaling for Aws {
    async fn describe_groups(&self, names: &[String]) -> Result<Vec<AutoScalingGroup>, AwsError> {
        Ok(self.with(|w| {
            names
                .contains(&w.group.name)
                .then(|| w.group.clone())
                .into_iter()
                .collect()
        }))
    }
    async fn terminate_instance(&self, a: ApprovedTermination) -> Result<(), AwsError> {
        self.mutating.lock().unwrap().push(format!(
            "TerminateInstanceInAutoScalingGroup {} {}",
            a.group(),
            a.instance_id()
        ));
        if let Some(e) = self.fail_terminate.lock().unwrap().take() {
            return Err(e);
        }
        self.with(|w| {
            w.group.instance_ids.retain(|i| i != a.instance_id());
            w.group.instance_states.remove(a.instance_id());
            w.group.desired_capacity -= 1;
            for i in &mut w.instances {
                if i.id == a.instance_id() {
                    i.state = Some("shutting-down".into());
                }
            }
        });
        Ok(())
    }
}

#[async_trait]
impl Ec2 for Aws {
    async fn describe_cluster_instances(&self, _: &str) -> Result<Vec<Instance>, AwsError> {
        unreachable!()
    }
    async fn describe_instance(&self, id: &str) -> Result<Option<Instance>, AwsError> {
        Ok(self.with(|w| w.instances.iter().find(|i| i.id == id).cloned()))
    }
    async fn describe_instance_types(
        &self,
        _: &[String],
    ) -> Result<Vec<InstanceTypeShape>, AwsError> {
        unreachable!()
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

fn the_plan(w: &World) -> Plan {
    let removable = vec![RemovableNode {
        node: "n-1".into(),
        nodegroup: "ng".into(),
        instance_type: Some("m5.large".into()),
        monthly_cost: 70.0,
        pods_moved: 1,
    }];
    let view = AwsView {
        nodegroups: std::slice::from_ref(&w.nodegroup),
        groups: std::slice::from_ref(&w.group),
        instances: &w.instances,
    };
    plan::plan(
        "prod",
        &removable,
        &nodes(),
        &view,
        &settings(false).budget,
        SystemClock.now(),
    )
}

async fn go(
    aws: &Arc<Aws>,
    c: &Cluster,
    dry_run: bool,
    pending: Option<&PendingAction>,
    journal: &mut MemJournal,
) -> Outcome {
    let w = aws.with(|w| w.clone());
    let p = the_plan(&w);
    let view = AwsView {
        nodegroups: std::slice::from_ref(&w.nodegroup),
        groups: std::slice::from_ref(&w.group),
        instances: &w.instances,
    };
    let access = ClusterAccess {
        client: &c.client,
        observer: &NoAudit,
    };
    automation::run(
        &settings(dry_run),
        &p,
        &view,
        pending,
        &[],
        &aws.clients(),
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
    let aws = Aws::new(world());
    let c = cluster(false).await;
    let mut j = MemJournal::default();
    let out = go(&aws, &c, true, None, &mut j).await;
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(out.planned.len(), 1);
    assert_eq!(out.planned[0].outcome, "Planned");
    assert!(out.planned[0].dry_run);
    assert!(aws.mutating().is_empty());
    assert!(j.intents.is_empty(), "a dry run records no intent");
    assert!(
        !c.server.requests().iter().any(|r| r.is_write()),
        "no write to the cluster"
    );
}

#[tokio::test]
async fn live_run_drains_then_terminates_exactly_that_instance() {
    let aws = Aws::new(world());
    let c = cluster(false).await;
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, None, &mut j).await;
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(
        aws.mutating(),
        vec!["TerminateInstanceInAutoScalingGroup asg i-1"]
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
        aws.mutating().len(),
        1,
        "an unchanged cluster causes no mutating call"
    );
}

#[tokio::test]
async fn nodegroup_scale_in_lets_eks_choose_and_drains_nothing() {
    let mut w = world();
    w.group.tags.clear(); // only the nodegroup is tagged (EKS does not copy its tags)
    for i in &mut w.instances {
        i.tags.clear();
    }
    let aws = Aws::new(w);
    let c = cluster(false).await;
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, None, &mut j).await;
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(aws.mutating(), vec!["UpdateNodegroupConfig ng 2"]);
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
    assert_eq!(aws.mutating().len(), 1, "{out:?}");
    assert!(
        out.refusals[0].reason.contains("still changing size"),
        "{out:?}"
    );
}

#[tokio::test]
async fn tags_removed_between_plan_and_call_are_refused_and_the_node_given_back() {
    for strip in ["group", "nodegroup", "instance", "other-cluster"] {
        let aws = Aws::new(world());
        let c = cluster(false).await;
        let mut j = MemJournal::default();
        let hook_aws = aws.clone();
        j.on_draining = Some(Box::new(move || {
            hook_aws.with(|w| match strip {
                "group" => w.group.tags.clear(),
                "nodegroup" => {
                    w.nodegroup.tags.remove(TAG_MANAGED);
                }
                "instance" => w.instances[1].tags.clear(),
                _ => {
                    w.group.tags.insert(TAG_CLUSTER.into(), "staging".into());
                }
            })
        }));
        let out = go(&aws, &c, false, None, &mut j).await;
        assert!(aws.mutating().is_empty(), "{strip}: nothing called");
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
    let aws = Aws::new(world());
    let c = cluster(true).await;
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, None, &mut j).await;
    assert!(aws.mutating().is_empty());
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
    let aws = Aws::new(world());
    let c = cluster(false).await;
    c.server
        .seed(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "bare", "namespace": "shop"},
            "spec": {"nodeName": "n-1", "containers": [{"name": "b", "image": "b"}]},
            "status": {"phase": "Running"}}))
        .unwrap();
    let mut j = MemJournal::default();
    go(&aws, &c, false, None, &mut j).await;
    assert!(aws.mutating().is_empty());
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
    let aws = Aws::new(world());
    let c = cluster(false).await;
    *aws.fail_terminate.lock().unwrap() = Some(AwsError::new(
        "autoscaling",
        "TerminateInstanceInAutoScalingGroup",
        None,
        Some("request timed out".into()),
        None,
        None,
    ));
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
    assert_eq!(aws.mutating().len(), 1, "never sent twice");

    // A definite rejection (a 4xx service error) is a plain failure: node given back.
    let aws = Aws::new(world());
    let c = cluster(false).await;
    *aws.fail_terminate.lock().unwrap() = Some(AwsError::new(
        "autoscaling",
        "TerminateInstanceInAutoScalingGroup",
        Some("ValidationError".into()),
        Some("no".into()),
        Some(400),
        None,
    ));
    let mut j = MemJournal::default();
    go(&aws, &c, false, None, &mut j).await;
    assert_eq!(j.done[0].outcome, "Failed");
    assert_eq!(j.intents.last(), Some(&None));
    assert!(!unschedulable(&c, "n-1"));
}

fn pending(phase: &str, started: jiff::Timestamp) -> PendingAction {
    let w = world();
    automation::intent(&the_plan(&w).candidates[0], phase, started)
}

#[tokio::test]
async fn restart_in_draining_phase_uncordons_and_plans_only_next_run() {
    let aws = Aws::new(world());
    let c = cluster(false).await;
    cordon(&c, "n-1");
    let mut j = MemJournal::default();
    let p = pending("Draining", SystemClock.now());
    let out = go(&aws, &c, false, Some(&p), &mut j).await;
    assert_eq!(j.done[0].outcome, "Abandoned");
    assert!(!unschedulable(&c, "n-1"));
    assert_eq!(j.intents, vec![None]);
    assert!(
        aws.mutating().is_empty(),
        "settling stops the run: no new action from a stale plan"
    );
    assert!(out.finished.len() == 1 && out.planned.is_empty());
}

#[tokio::test]
async fn a_dry_run_leaves_a_leftover_intent_alone() {
    let aws = Aws::new(world());
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
    let aws = Aws::new(world());
    let c = cluster(false).await;
    aws.with(|w| {
        w.group.instance_ids.retain(|i| i != "i-1");
        w.group.desired_capacity = 2;
        w.instances[1].state = Some("terminated".into());
    });
    let mut j = MemJournal::default();
    let p = pending("Calling", SystemClock.now());
    go(&aws, &c, false, Some(&p), &mut j).await;
    assert_eq!(j.done[0].outcome, "Succeeded");
    assert_eq!(j.removals.len(), 1, "counted against the hourly budget");
    assert!(
        aws.mutating().is_empty(),
        "confirmed by describing, not by calling again"
    );

    // Held by a lifecycle hook (still running, Terminating:Wait in the group): took effect.
    let aws = Aws::new(world());
    aws.with(|w| {
        w.group
            .instance_states
            .insert("i-1".into(), "Terminating:Wait".into());
    });
    let mut j = MemJournal::default();
    go(&aws, &c, false, Some(&p), &mut j).await;
    assert_eq!(j.done[0].outcome, "Succeeded");
    assert!(aws.mutating().is_empty());

    // No effect yet, within the grace period: wait, and do nothing else at all.
    let aws = Aws::new(world());
    let mut j = MemJournal::default();
    let out = go(&aws, &c, false, Some(&p), &mut j).await;
    assert_eq!(out.verify_again, Some(automation::VERIFY_RETRY));
    assert!(out.finished.is_empty() && aws.mutating().is_empty() && j.intents.is_empty());

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
        assert!(aws.mutating().is_empty());
    }
}

#[tokio::test]
async fn budget_counts_earlier_removals() {
    let aws = Aws::new(world());
    let c = cluster(false).await;
    let w = aws.with(|w| w.clone());
    let p = the_plan(&w);
    let view = AwsView {
        nodegroups: std::slice::from_ref(&w.nodegroup),
        groups: std::slice::from_ref(&w.group),
        instances: &w.instances,
    };
    let mut s = settings(false);
    s.budget.max_per_hour = 1;
    let earlier = [SystemClock.now() - jiff::SignedDuration::from_secs(600)];
    let mut j = MemJournal::default();
    let access = ClusterAccess {
        client: &c.client,
        observer: &NoAudit,
    };
    let out = automation::run(
        &s,
        &p,
        &view,
        None,
        &earlier,
        &aws.clients(),
        &access,
        &mut j,
        &SystemClock,
    )
    .await;
    assert_eq!(
        out.deferred, 1,
        "one removal in the last hour uses the hourly budget of 1"
    );
    assert!(out.finished.is_empty() && aws.mutating().is_empty());
}

#[tokio::test]
async fn a_node_that_cannot_be_uncordoned_keeps_its_intent_until_it_can() {
    let aws = Aws::new(world());
    let c = cluster(false).await;
    // Both the cordon and the uncordon of n-1 fail.
    c.server
        .inject_failure(Some("PATCH"), "/api/v1/nodes/n-1", 500, 2);
    let mut j = MemJournal::default();
    go(&aws, &c, false, None, &mut j).await;
    assert!(aws.mutating().is_empty());
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
    assert!(aws.mutating().is_empty());
    assert!(out.planned.is_empty());
}
