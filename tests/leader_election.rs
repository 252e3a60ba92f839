//! Two replicas of the real binary against one API server: only the Lease holder
//! reconciles, the standby takes over when the leader is killed, and a leader that loses
//! its Lease stops and exits instead of acting on.

mod support;

use std::time::{Duration, Instant};

use crossguard::api::ManagedCluster;
use kube::Api;
use support::{Env, kubectl, wait_for};

/// Short enough for a test, long enough for a loaded machine to renew in time.
const LEASE_SECONDS: &str = "8";
const RENEW_BEFORE_SECONDS: &str = "4";
const TIMEOUT: Duration = Duration::from_secs(120);

/// One field of the leader Lease's spec, as kubectl prints it; `None` when empty.
fn lease_field(env: &Env, field: &str) -> Option<String> {
    let (ok, out, _) = kubectl(
        &env.kubeconfig,
        &[
            "get",
            "lease",
            "crossguard-leader",
            "-n",
            "default",
            "-o",
            &format!("jsonpath={{.spec.{field}}}"),
        ],
    );
    (ok && !out.trim().is_empty()).then(|| out.trim().to_string())
}

fn holder(env: &Env) -> Option<String> {
    lease_field(env, "holderIdentity")
}

async fn wait_until_leading(env: &Env, name: &str) {
    wait_for(&format!("{name} to lead"), TIMEOUT, || async {
        (holder(env).as_deref() == Some(name)).then_some(())
    })
    .await;
}

/// How `op` exited, waiting at most [`TIMEOUT`] (its log in the failure message).
async fn exit_of(op: &mut support::Operator) -> std::process::ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = op.try_wait() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the replica is still running:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn replica(env: &Env, name: &str) -> support::Operator {
    env.operator(&[
        ("POD_NAME", name),
        ("RUST_LOG", "info,crossguard=debug,kube_lease_manager=debug"),
        ("CROSSGUARD_LEADER_LEASE_SECONDS", LEASE_SECONDS),
        (
            "CROSSGUARD_LEADER_RENEW_BEFORE_SECONDS",
            RENEW_BEFORE_SECONDS,
        ),
    ])
}

fn leader_gauge(op: &support::Operator) -> Option<String> {
    let (status, body) = support::http_status(&op.http, "/metrics");
    (status == 200).then(|| {
        body.lines()
            .find(|l| l.starts_with("crossguard_leader "))
            .unwrap_or_default()
            .to_string()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_the_standby_takes_over_and_a_deposed_leader_exits() {
    let env = Env::start().await;
    env.apply_examples();
    let clusters: Api<ManagedCluster> = Api::namespaced(env.client().await, "acme");

    let mut a = replica(&env, "replica-a");
    let first = wait_for("a leader", TIMEOUT, || async { holder(&env) }).await;
    assert_eq!(first, "replica-a");
    let mut b = replica(&env, "replica-b");

    // The leader reconciles; the standby is ready, says it stands by, and reconciles nothing.
    wait_for("ManagedCluster acme-prod analysed", TIMEOUT, || async {
        let c = clusters.get("acme-prod").await.ok()?;
        c.status?.last_analysis_at
    })
    .await;
    assert_eq!(
        support::http_status(&b.http, "/readyz").0,
        200,
        "a standby is ready"
    );
    assert_eq!(leader_gauge(&a).as_deref(), Some("crossguard_leader 1"));
    assert_eq!(leader_gauge(&b).as_deref(), Some("crossguard_leader 0"));
    let standby_log = b.log_text();
    assert!(standby_log.contains("waiting to lead"), "{standby_log}");
    assert!(!standby_log.contains("reconcile"), "{standby_log}");

    // The leader dies without releasing the Lease: the standby takes it over once it
    // expires, and reconciles (a spec change gets a new analysis).
    a.stop();
    let killed = Instant::now();
    wait_until_leading(&env, "replica-b").await;
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?} (lease {LEASE_SECONDS} s)");
    let before = clusters
        .get("acme-prod")
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap_or_default();
    support::patch_acme_prod(&env.kubeconfig, r#"{"spec":{"analysisInterval":"20m"}}"#);
    wait_for("the new leader reconciles the change", TIMEOUT, || async {
        let c = clusters.get("acme-prod").await.ok()?;
        (c.status?.observed_generation > before).then_some(())
    })
    .await;
    assert_eq!(leader_gauge(&b).as_deref(), Some("crossguard_leader 1"));

    // Someone else takes the Lease (a partition healed in another replica's favour): the
    // deposed leader stops and exits with an error, so its pod restarts as a standby.
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    env.kubectl(&[
        "patch",
        "lease",
        "crossguard-leader",
        "-n",
        "default",
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"spec":{{"holderIdentity":"replica-c","renewTime":"{now}","leaseDurationSeconds":600}}}}"#),
    ]);
    let status = exit_of(&mut b).await;
    assert!(!status.success(), "{status:?}");
    let log = b.log_text();
    assert!(log.contains("leadership lost"), "{log}");
}

/// The leader is killed while its scale-in call is in flight (the emulator holds the call
/// and completes it later): the standby takes the lease over, finds the intent the old
/// leader recorded in status, verifies instead of calling again, and confirms the action.
/// Exactly one mutating call reaches AWS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_taking_over_mid_action_confirms_it_without_acting_again() {
    const TERMINATE: &str = "TerminateInstanceInAutoScalingGroup";
    let env = Env::start().await;
    env.apply_examples();
    env.automate(serde_json::json!({"dryRun": false, "drainTimeout": "1m",
        "disruptionBudget": {"maxNodesPerRun": 1, "maxNodesPerHour": 1, "minNodeAge": "1h"}}));
    env.moto
        .fault(serde_json::json!({"action": TERMINATE, "delay": 6}));
    let clusters: Api<ManagedCluster> = Api::namespaced(env.client().await, "acme");

    let mut a = replica(&env, "replica-a");
    wait_until_leading(&env, "replica-a").await;
    let _b = replica(&env, "replica-b");
    env.moto.wait_for_call(TERMINATE, TIMEOUT).await;
    a.stop();
    let pending = clusters
        .get("acme-prod")
        .await
        .unwrap()
        .status
        .unwrap_or_default()
        .pending_action
        .expect("the intent was recorded before the call");
    assert_eq!(pending.phase, "Calling");

    wait_until_leading(&env, "replica-b").await;
    let status = wait_for(
        "the action confirmed by the new leader",
        TIMEOUT,
        || async {
            let s = clusters.get("acme-prod").await.ok()?.status?;
            (s.pending_action.is_none()
                && s.recent_actions.iter().any(|a| a.outcome == "Succeeded"))
            .then_some(s)
        },
    )
    .await;
    let done = status
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
}

/// A leader stopped with SIGTERM (a rollout, a drain) hands the Lease back, so the standby
/// takes over at once instead of waiting for it to expire: the standby's acquireTime is
/// earlier than the old leader's last renewTime plus the (long) lease duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_gracefully_releases_the_lease() {
    let env = Env::start().await;
    env.apply_examples();
    let long = |name| {
        env.operator(&[
            ("POD_NAME", name),
            ("CROSSGUARD_LEADER_LEASE_SECONDS", "120"),
            ("CROSSGUARD_LEADER_RENEW_BEFORE_SECONDS", "10"),
        ])
    };
    let mut a = long("replica-a");
    wait_until_leading(&env, "replica-a").await;
    let _b = long("replica-b");
    let lease =
        |field: &str| lease_field(&env, field).and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let last_renewal = lease("renewTime").expect("renewTime");
    // SAFETY: kill(2) with our own child's pid and a standard signal.
    let pid = libc::pid_t::try_from(a.pid()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = exit_of(&mut a).await;
    assert!(status.success(), "{status:?}\n{}", a.log_text());
    assert!(
        a.log_text().contains("leader Lease released"),
        "{}",
        a.log_text()
    );
    wait_until_leading(&env, "replica-b").await;
    let acquired = lease("acquireTime").expect("acquireTime");
    assert!(
        acquired < last_renewal + jiff::SignedDuration::from_secs(120),
        "taken over at {acquired}, before the old lease ({last_renewal} + 120 s) could expire"
    );
}
