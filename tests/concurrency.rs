//! Bounded reconcile concurrency (issue #13): both controllers run in-process
//! (`controller::run`, as `crossguard run` wires them) against the in-process fake API server
//! and the stateful AWS fake. One tenant's AWS calls hang for a minute; another tenant's
//! reconcile must not wait for it while a slot is free, and with one slot it does, which
//! shows the first result comes from the concurrency and not from luck.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossguard::analysis::PriceTable;
use crossguard::api::CustomerAccount;
use crossguard::controller::{self, Context};
use crossguard::credentials::Broker;
use crossguard::http::Readiness;
use crossguard::metrics::Metrics;
use crossguard::store::{S3Options, Store};
use crossguard::testing::ManualClock;
use crossguard::testing::aws::FakeAws;
use fake_apiserver::FakeApiServer;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "tenants";
const REGION: &str = "us-east-1";
/// The slow tenant's account and the other one's.
const SLOW: &str = "111111111111";
const FAST: &str = "222222222222";
/// How long every AWS call of the slow tenant hangs: far longer than the test waits.
const HANG: Duration = Duration::from_secs(60);
/// How long the other tenant may take to become Ready with a free slot.
const PROMPT: Duration = Duration::from_secs(5);

fn role(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/crossguard-access")
}

struct Running {
    accounts: Api<CustomerAccount>,
    aws: Arc<FakeAws>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    controllers: tokio::task::JoinHandle<()>,
    _server: FakeApiServer,
    _dir: tempfile::TempDir,
}

impl Running {
    /// The management cluster with the CRDs, the AWS fake with no roles yet, and both
    /// controllers running with `concurrency` slots each.
    async fn start(concurrency: u16) -> Running {
        let (server, client) = support::management_server(NS).await;
        let clock = ManualClock::at(1_800_000_000);
        let aws = FakeAws::new(clock.clone());
        let metrics = Arc::new(Metrics::new());
        let broker = Arc::new(Broker::new(
            aws.clone(),
            clock.clone(),
            metrics.clone(),
            "crossguard-test",
        ));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &format!("file://{}", dir.path().display()),
            &S3Options::default(),
        )
        .unwrap();
        let ctx = Arc::new(
            Context::new(
                client.clone(),
                broker,
                metrics,
                clock,
                store,
                PriceTable::bundled(),
            )
            .with_max_concurrent_reconciles(concurrency),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controllers = tokio::spawn(controller::run(
            ctx,
            Some(NS.to_string()),
            Arc::new(Readiness::default()),
            server.url(),
            async move {
                let _ = stopped.await;
            },
        ));
        Running {
            accounts: Api::namespaced(client, NS),
            aws,
            stop: Some(stop),
            controllers,
            _server: server,
            _dir: dir,
        }
    }

    async fn create_account(&self, name: &str, account: &str) {
        let obj: CustomerAccount = serde_json::from_value(json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"accountId": account, "roleArn": role(account), "regions": [REGION],
                "sessionDuration": "1h"}}))
        .unwrap();
        self.accounts
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }

    /// The ExternalId the operator generated for `name` (its first reconcile writes it,
    /// with AssumeRole denied since the fake role does not trust it yet).
    async fn external_id(&self, name: &str) -> String {
        wait_until(
            &format!("{name} has an ExternalId"),
            Duration::from_secs(20),
            || async {
                let obj = self.accounts.get(name).await.ok()?;
                let status = serde_json::to_value(&obj.status).ok()?;
                status["externalId"].as_str().map(str::to_string)
            },
        )
        .await
    }

    /// Change an annotation: a change worth a reconcile, so `name` is reconciled again now.
    async fn touch(&self, name: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {"test.crossguard.dev/touch": value}}});
        self.accounts
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn is_ready(&self, name: &str) -> bool {
        let Ok(obj) = self.accounts.get(name).await else {
            return false;
        };
        let status = serde_json::to_value(&obj.status).unwrap_or_default();
        status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }

    /// Stop the controllers without waiting out the slow tenant's hanging reconcile.
    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.controllers.abort();
    }
}

async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Both tenants onboarded, the slow one's calls hanging and its reconcile in flight; then
/// the other tenant is changed. Returns how long the other tenant took to become Ready,
/// None when it was not Ready within [`PROMPT`].
async fn other_tenant_while_one_hangs(running: &Running) -> Option<Duration> {
    running.create_account("slow", SLOW).await;
    running.create_account("fast", FAST).await;
    let slow_id = running.external_id("slow").await;
    let fast_id = running.external_id("fast").await;
    running.aws.add_role(&role(SLOW), &slow_id);
    running.aws.add_role(&role(FAST), &fast_id);
    running.aws.delay_account(SLOW, HANG);

    // The slow tenant's reconcile starts: AssumeRole (the operator's own call) answers, then
    // its first call in the account (GetCallerIdentity) hangs.
    let assumed_before = running.aws.assume_role_requests().len();
    running.touch("slow", "1").await;
    wait_until(
        "the slow tenant's reconcile is in flight",
        Duration::from_secs(20),
        || async {
            let slow_arn = role(SLOW);
            (running.aws.assume_role_requests()[assumed_before..]
                .iter()
                .any(|r| r.role_arn == slow_arn))
            .then_some(())
        },
    )
    .await;

    let started = Instant::now();
    running.touch("fast", "1").await;
    while started.elapsed() < PROMPT {
        if running.is_ready("fast").await {
            assert!(
                !running.is_ready("slow").await,
                "the slow tenant is still hanging"
            );
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_tenant_does_not_delay_another_tenants_reconcile() {
    let running = Running::start(controller::DEFAULT_MAX_CONCURRENT_RECONCILES).await;
    let took = other_tenant_while_one_hangs(&running).await;
    running.stop();
    let took = took.expect("the other tenant became Ready while the slow one hung");
    // Measured at about 0.2 s here; the bound leaves room for a loaded machine.
    eprintln!("other tenant Ready {took:?} after its change, while the slow tenant hung");
    assert!(took < PROMPT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_slot_the_hanging_tenant_does_hold_up_the_other() {
    // The control: the same scenario with --max-concurrent-reconciles=1.
    let running = Running::start(1).await;
    let took = other_tenant_while_one_hangs(&running).await;
    running.stop();
    assert_eq!(
        took, None,
        "with one slot the other tenant waits for the slow one"
    );
}
