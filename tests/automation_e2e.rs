//! Automation end to end: the real binary against moto (through the shim) and two fake API
//! servers (management cluster, customer cluster), driven with kubectl. Covers the dry-run
//! pass, scale-in through both mutating calls, the tag guard refusing resources whose tags
//! change between plan and call, the operator killed between intent and completion, and
//! least privilege: what the operator called equals what the automated template grants.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use kube::Api;
use serde_json::{Value, json};

use crossguard::api::{ManagedCluster, ManagedClusterStatus};
use support::{Env, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);
const TERMINATE: &str = "TerminateInstanceInAutoScalingGroup";
const SCALE: &str = "UpdateNodegroupConfig";

async fn status(env: &Env) -> (i64, ManagedClusterStatus) {
    let api: Api<ManagedCluster> = Api::namespaced(env.client().await, "acme");
    let mc = api.get("acme-prod").await.expect("get ManagedCluster");
    (
        mc.metadata.generation.unwrap_or_default(),
        mc.status.unwrap_or_default(),
    )
}

fn condition(s: &ManagedClusterStatus, type_: &str) -> Option<(String, String)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// Mutating AWS calls the emulator served: (action, account).
fn mutating_calls(env: &Env) -> Vec<(String, String)> {
    env.moto
        .calls()
        .iter()
        .filter(|c| c["action"] == TERMINATE || c["action"] == SCALE)
        .map(|c| {
            (
                c["action"].as_str().unwrap_or_default().to_string(),
                c["account_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// "service:Action" of every call made with the customer's session.
fn customer_actions(env: &Env) -> BTreeSet<String> {
    env.moto
        .calls()
        .iter()
        .filter(|c| c["account_id"] == "111111111111" && c["action"] != "GetCallerIdentity")
        .filter(|c| c["action"] != "AssumeRole")
        .map(|c| {
            format!(
                "{}:{}",
                c["service"].as_str().unwrap_or_default(),
                c["action"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Writes the operator made in the customer's cluster: (method, path).
fn customer_writes(env: &Env) -> Vec<(String, String)> {
    env.customer
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

fn unschedulable(env: &Env, node: &str) -> bool {
    env.customer
        .get_object("v1", "nodes", None, node)
        .and_then(|n| n.pointer("/spec/unschedulable").and_then(Value::as_bool))
        .unwrap_or(false)
}

fn node_of(instance: &str) -> String {
    format!("ip-{instance}.ec2.internal")
}

/// What EKS's cloud controller does once an instance is gone: delete its Node.
async fn delete_node(env: &Env, node: &str) {
    let mut config = kube::Config::new(env.customer.url().parse().unwrap());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
    nodes
        .delete(node, &Default::default())
        .await
        .expect("delete node");
}

/// The actions the automated onboarding template grants, read from the template itself.
/// The automated template the customer deploys in this test.
fn automated_template() -> Value {
    support::onboarding_template(&[
        "--account-id",
        "111111111111",
        "--mode",
        "automated",
        "--cluster",
        "prod",
        "--external-id",
        "x".repeat(40).as_str(),
        "--operator-principal",
        "arn:aws:iam::123456789012:role/crossguard-operator",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_then_scale_in_refuses_untagged_and_calls_exactly_what_is_granted() {
    let env = Env::start().await;
    env.apply_examples();
    let managed = &env.seeded["nodegroups"]["managed-ng"];
    let managed_asg = managed["asg"].as_str().unwrap().to_string();
    let managed_instances: Vec<String> = managed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    let budget = |per_hour: u32| {
        json!({"dryRun": true, "drainTimeout": "1m",
            "disruptionBudget": {"maxNodesPerRun": 1, "maxNodesPerHour": per_hour, "minNodeAge": "1h"}})
    };
    env.automate(budget(3));
    // The customer's role is the automated template's (the operator reads it for the
    // role-posture check, so its policies must be there to be read).
    let template = automated_template();
    support::customer_deploys(&env.moto, env.dir.path(), &template);
    env.moto.clear_calls();
    let _operator = env.operator(&[]);
    let mut called = BTreeSet::new();

    // 1. Dry run: plans for the managed nodegroup, a refusal for the untagged one, no writes.
    let s = wait_for("a dry-run pass", TIMEOUT, || async {
        let (_, s) = status(&env).await;
        let dry = condition(&s, "Automation").is_some_and(|(r, _)| r == "DryRun");
        (dry && !s.recent_actions.is_empty() && !s.refusals.is_empty()).then_some(s)
    })
    .await;
    assert!(
        s.recent_actions
            .iter()
            .all(|a| a.dry_run && a.outcome == "Planned"),
        "{:?}",
        s.recent_actions
    );
    let planned = &s.recent_actions[0];
    assert_eq!(
        planned.action,
        "autoscaling:TerminateInstanceInAutoScalingGroup"
    );
    assert!(planned.target.contains(&managed_asg), "{planned:?}");
    assert!(
        s.refusals
            .iter()
            .any(|r| r.action == "eks:UpdateNodegroupConfig"
                && r.target.starts_with("nodegroup/legacy-ng")
                && r.reason == "nodegroup legacy-ng does not carry crossguard.dev/managed=true"),
        "{:?}",
        s.refusals
    );
    assert_eq!(
        mutating_calls(&env),
        vec![],
        "a dry run calls nothing mutating"
    );
    assert_eq!(
        customer_writes(&env),
        vec![],
        "a dry run writes nothing in the customer cluster"
    );
    // The customer sees the refusal where they look.
    let described = env.kubectl(&["describe", "managedcluster", "acme-prod", "-n", "acme"]);
    assert!(
        described.contains("Refusals") && described.contains("legacy-ng"),
        "{described}"
    );
    let events = env.kubectl(&["get", "events", "-n", "acme", "-o", "json"]);
    assert!(
        events.contains("ActionPlanned") && events.contains("Refused"),
        "{events}"
    );
    called.extend(customer_actions(&env));
    env.moto.clear_calls();

    // 2. Live: one node of the managed nodegroup drained and its instance terminated.
    let mut live = budget(3);
    live["dryRun"] = json!(false);
    env.set_automation(live);
    let s = wait_for("a node removed", TIMEOUT, || async {
        let (_, s) = status(&env).await;
        s.recent_actions
            .iter()
            .any(|a| !a.dry_run && a.outcome == "Succeeded")
            .then_some(s)
    })
    .await;
    let done = s
        .recent_actions
        .iter()
        .find(|a| a.outcome == "Succeeded")
        .unwrap()
        .clone();
    let node = done.node.clone().unwrap();
    let instance = managed_instances
        .iter()
        .find(|i| node_of(i) == node)
        .unwrap_or_else(|| panic!("removed node {node} is not in the managed nodegroup"))
        .clone();
    assert_eq!(
        mutating_calls(&env),
        vec![(TERMINATE.to_string(), "111111111111".to_string())]
    );
    let aws = env.moto.customer_state();
    assert_eq!(aws["groups"][&managed_asg]["desired"], 2, "{aws}");
    assert_ne!(aws["instances"][&instance], "running", "{aws}");
    assert!(s.pending_action.is_none());
    // In the customer cluster: only cordon and evictions, of that node and its pods, which
    // is what the automated RBAC grants.
    let writes = customer_writes(&env);
    assert!(!writes.is_empty());
    for (method, path) in &writes {
        let cordon = method == "PATCH" && path == &format!("/api/v1/nodes/{node}");
        let evict = method == "POST"
            && path.starts_with("/api/v1/namespaces/")
            && path.ends_with("/eviction");
        assert!(cordon || evict, "unexpected write {method} {path}");
    }
    assert!(unschedulable(&env, &node));
    // The legacy nodegroup's untagged group and instances were never touched.
    for (ng, _) in env.seeded["nodegroups"].as_object().unwrap() {
        if ng == "legacy-ng" {
            let asg = env.seeded["nodegroups"][ng]["asg"].as_str().unwrap();
            assert_eq!(aws["groups"][asg]["desired"], 2);
        }
    }
    called.extend(customer_actions(&env));
    delete_node(&env, &node).await;
    // EKS follows its group's new size (moto does not): play that part.
    env.moto
        .customer_change(&["sync-nodegroup", "prod", "managed-ng"]);

    // 3. The customer moves management to the nodegroup: untags the group. The next node
    // of the nodegroup goes through UpdateNodegroupConfig instead.
    env.moto.customer_change(&[
        "untag-asg",
        &managed_asg,
        "crossguard.dev/managed",
        "crossguard.dev/cluster",
    ]);
    env.moto.clear_calls();
    env.customer.clear_requests();
    let mut live = budget(4);
    live["dryRun"] = json!(false);
    env.set_automation(live);
    let s = wait_for("a nodegroup scaled in", TIMEOUT, || async {
        let (_, s) = status(&env).await;
        s.recent_actions
            .iter()
            .any(|a| a.outcome == "Succeeded" && a.action == "eks:UpdateNodegroupConfig")
            .then_some(s)
    })
    .await;
    assert_eq!(
        mutating_calls(&env),
        vec![(SCALE.to_string(), "111111111111".to_string())]
    );
    let scaled = s
        .recent_actions
        .iter()
        .find(|a| a.action == "eks:UpdateNodegroupConfig")
        .unwrap();
    assert_eq!(
        scaled.node, None,
        "EKS chooses the node of a nodegroup scale-in"
    );
    let aws = env.moto.customer_state();
    assert_eq!(
        aws["nodegroups"]["managed-ng"]["scaling"]["desiredSize"], 1,
        "{aws}"
    );
    assert_eq!(customer_writes(&env), vec![], "EKS drains, not crossguard");
    called.extend(customer_actions(&env));
    // EKS now drains and removes an instance of its choosing; play that part.
    let instance = aws["groups"][&managed_asg]["instances"][0]
        .as_str()
        .unwrap()
        .to_string();
    env.moto.customer_change(&["terminate-instance", &instance]);
    delete_node(&env, &node_of(&instance)).await;

    // 4. Nothing changed since: a new pass makes no mutating call and no new refusal.
    let refusals_before = s.refusals.len();
    env.moto.clear_calls();
    env.customer.clear_requests();
    let mut live = budget(5);
    live["dryRun"] = json!(false);
    env.set_automation(live);
    let (generation, _) = status(&env).await;
    let s = wait_for("a pass on the new generation", TIMEOUT, || async {
        let (_, s) = status(&env).await;
        let automation = condition(&s, "Automation");
        (s.observed_generation == generation
            && automation.is_some_and(|(r, _)| r == "Active")
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.observed_generation == generation))
        .then_some(s)
    })
    .await;
    assert_eq!(
        mutating_calls(&env),
        vec![],
        "an unchanged cluster gets no mutating call"
    );
    assert_eq!(customer_writes(&env), vec![]);
    assert_eq!(s.refusals.len(), refusals_before, "{:?}", s.refusals);
    // The pass did judge candidates (the untagged nodegroup's node, refused again).
    let (_, message) = condition(&s, "Automation").unwrap();
    assert!(
        message.contains("0 nodes removed") && message.contains("1 refused"),
        "{message}"
    );
    called.extend(customer_actions(&env));

    // Least privilege, automated half: every action called is granted, every granted
    // action was called (the read-only half is in e2e.rs).
    let granted = support::granted_actions(&template);
    assert_eq!(
        called, granted,
        "actions called vs granted by the automated template"
    );

    // Every mutating call is in the audit log, marked as such.
    let mut files = Vec::new();
    support::files_under(&env.dir.path().join("store"), &mut files);
    let audit: Vec<Value> = files
        .iter()
        .filter(|f| f.to_string_lossy().contains("/audit/"))
        .flat_map(|f| {
            support::read_stored(f)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    for op in [TERMINATE, SCALE] {
        assert!(
            audit.iter().any(|r| r["operation"] == op
                && r["mutating"] == true
                && r["outcome"] == "success"),
            "{op} missing from the audit log"
        );
    }
    assert!(audit.iter().any(|r| {
        r["service"] == "guard"
            && r["outcome"]
                .as_str()
                .unwrap_or_default()
                .starts_with("refused: nodegroup legacy-ng")
    }));
    let events = env.kubectl(&["get", "events", "-n", "acme", "-o", "json"]);
    assert!(events.contains("NodeRemoved"), "{events}");
    // An Event per mutating call: both AWS calls and the cordons (the removed nodes held
    // only DaemonSet pods here; evictions are checked in the guard tests).
    let events: Value = serde_json::from_str(&events).unwrap();
    let notes: Vec<(&str, &str)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["reason"].as_str()?,
                e["message"].as_str().or(e["note"].as_str())?,
            ))
        })
        .collect();
    for (reason, what) in [
        (TERMINATE, "autoscaling TerminateInstanceInAutoScalingGroup"),
        (SCALE, "eks UpdateNodegroupConfig"),
        ("Cordon", "kubernetes cordon nodes/"),
    ] {
        assert!(
            notes.iter().any(|(r, n)| *r == reason && n.contains(what)),
            "no Event for {what}: {notes:?}"
        );
    }
}

/// A node whose removal the plan approved, with the drain held open by refused evictions,
/// while `change` alters tags in AWS; once the drain completes the guard must refuse.
async fn refused_when_changed_during_drain(change: &[&str], expect: &str) {
    let env = Env::start().await;
    // A second web pod on every managed node, so each drain has a pod to evict.
    for (i, id) in env.seeded["nodegroups"]["managed-ng"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        env.customer
            .seed(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("web-5d4f-x{i}"), "namespace": "shop", "labels": {"app": "web"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "rs-web", "controller": true}]},
                "spec": {"nodeName": node_of(id.as_str().unwrap()),
                    "containers": [{"name": "web", "image": "nginx:1.27", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
                "status": {"phase": "Running"}}))
            .unwrap();
    }
    env.customer
        .inject_failure(Some("POST"), "/eviction", 429, 100_000);
    env.apply_examples();
    env.automate(json!({"dryRun": false, "drainTimeout": "2m",
            "disruptionBudget": {"maxNodesPerRun": 1, "maxNodesPerHour": 3, "minNodeAge": "1h"}}));
    let _operator = env.operator(&[]);
    let node = wait_for("a node being drained", TIMEOUT, || async {
        let (_, s) = status(&env).await;
        s.pending_action
            .filter(|p| p.phase == "Draining")
            .map(|p| p.node)
            .filter(|n| unschedulable(&env, n))
    })
    .await;
    let args: Vec<String> = change
        .iter()
        .map(|a| {
            a.replace(
                "{asg}",
                env.seeded["nodegroups"]["managed-ng"]["asg"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.moto.customer_change(&args);
    env.customer.clear_failures();
    let s = wait_for("the refusal", TIMEOUT, || async {
        let (_, s) = status(&env).await;
        let refused = s.refusals.iter().any(|r| {
            r.reason.contains(expect)
                && r.reason
                    .contains(&format!("checked after draining node {node}"))
        });
        (s.pending_action.is_none() && refused).then_some(s)
    })
    .await;
    assert!(
        s.recent_actions.iter().all(|a| a.outcome != "Succeeded"),
        "{:?}",
        s.recent_actions
    );
    assert_eq!(mutating_calls(&env), vec![], "nothing changed in AWS");
    let aws = env.moto.customer_state();
    for group in aws["groups"].as_object().unwrap().values() {
        assert_eq!(
            group["instances"].as_array().unwrap().len() as i64,
            group["desired"].as_i64().unwrap()
        );
    }
    assert_eq!(aws["nodegroups"]["managed-ng"]["scaling"]["desiredSize"], 3);
    assert!(
        !unschedulable(&env, &node),
        "the drained node was given back"
    );
    // The eviction, the cordon and the uncordon each have their Event.
    let events = env.kubectl(&["get", "events", "-n", "acme", "-o", "json"]);
    let events: Value = serde_json::from_str(&events).unwrap();
    let reasons: BTreeSet<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for reason in ["Cordon", "Evict", "Uncordon"] {
        assert!(reasons.contains(reason), "no {reason} Event: {reasons:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_refuses_a_group_untagged_between_plan_and_call() {
    refused_when_changed_during_drain(
        &[
            "untag-asg",
            "{asg}",
            "crossguard.dev/managed",
            "crossguard.dev/cluster",
        ],
        "does not carry crossguard.dev/managed=true",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_refuses_a_group_tagged_for_another_cluster() {
    refused_when_changed_during_drain(
        &["tag-asg", "{asg}", "crossguard.dev/cluster=staging"],
        r#"is tagged crossguard.dev/cluster="staging", not this cluster ("prod")"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_refuses_a_nodegroup_whose_tag_was_removed_between_plan_and_call() {
    refused_when_changed_during_drain(
        &[
            "untag-nodegroup",
            "prod",
            "managed-ng",
            "crossguard.dev/managed",
        ],
        "nodegroup managed-ng does not carry crossguard.dev/managed=true",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_intent_and_completion_acts_exactly_once() {
    let env = Env::start().await;
    env.apply_examples();
    env.automate(json!({"dryRun": false, "drainTimeout": "1m",
            "disruptionBudget": {"maxNodesPerRun": 1, "maxNodesPerHour": 1, "minNodeAge": "1h"}}));
    // The termination is held in flight for a while: the operator dies waiting for it,
    // and AWS completes it afterwards.
    env.moto.fault(json!({"action": TERMINATE, "delay": 6}));
    let mut operator = env.operator(&[]);
    env.moto.wait_for_call(TERMINATE, TIMEOUT).await;
    operator.stop();
    let (_, s) = status(&env).await;
    let pending = s
        .pending_action
        .expect("the intent was recorded before the call");
    assert_eq!(pending.phase, "Calling");

    let _operator = env.operator(&[]);
    let s = wait_for(
        "the action confirmed after the restart",
        TIMEOUT,
        || async {
            let (_, s) = status(&env).await;
            (s.pending_action.is_none()
                && s.recent_actions.iter().any(|a| a.outcome == "Succeeded"))
            .then_some(s)
        },
    )
    .await;
    let done = s
        .recent_actions
        .iter()
        .find(|a| a.outcome == "Succeeded")
        .unwrap();
    assert_eq!(done.node.as_deref(), Some(pending.node.as_str()));
    assert!(
        done.message
            .as_deref()
            .unwrap_or_default()
            .contains("confirmed after the fact"),
        "{done:?}"
    );
    assert_eq!(env.moto.count_calls(TERMINATE), 1, "never acted twice");
    let aws = env.moto.customer_state();
    let asg = env.seeded["nodegroups"]["managed-ng"]["asg"]
        .as_str()
        .unwrap();
    assert_eq!(aws["groups"][asg]["desired"], 2, "{aws}");
}
