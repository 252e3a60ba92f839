//! The operator's price cache in the ManagedCluster reconcile: a cluster in a region the
//! bundled table does not cover (eu-west-1, Linux and Windows nodes) is priced from the
//! Price List API (the stateful AWS fake), the answer is cached in memory and in the store
//! and refreshed only after the refresh interval, a restart reads the stored copy, and a
//! failing Price List API leaves the nodes unpriced with the reason while the cluster stays
//! Ready and the next attempt is backed off. Same harness as tests/reconcile.rs: the fake
//! API server as management and customer cluster, `FakeAws` for AWS.

mod support;

use std::sync::Arc;
use std::time::Duration;

use crossguard::analysis::{PriceTable, Report};
use crossguard::api::{CustomerAccount, ManagedCluster};
use crossguard::audit::AuditRecord;
use crossguard::aws::{AwsErrorKind, EksCluster, Instance, InstanceTypeShape};
use crossguard::controller::prices::PriceCache;
use crossguard::controller::{Context, customer_account, managed_cluster};
use crossguard::credentials::Broker;
use crossguard::metrics::Metrics;
use crossguard::store::{S3Options, Store};
use crossguard::testing::ManualClock;
use crossguard::testing::aws::{FakeAws, OPERATOR_ACCOUNT};
use fake_apiserver::FakeApiServer;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use serde_json::json;

const NS: &str = "acme";
const ACCOUNT_ID: &str = "111111111111";
const ROLE: &str = "arn:aws:iam::111111111111:role/crossguard-access";
const REGION: &str = "eu-west-1";
const CLUSTER: &str = "prod";
const REFRESH: Duration = Duration::from_secs(7 * 24 * 3600);

struct World {
    _server: FakeApiServer,
    _customer: FakeApiServer,
    client: kube::Client,
    aws: Arc<FakeAws>,
    clock: Arc<ManualClock>,
    ctx: Arc<Context>,
    dir: tempfile::TempDir,
}

/// Two Linux m5.large nodes and one Windows m5.xlarge node in eu-west-1, with EKS
/// cluster `prod` and its instances in the fake; the Price List fake knows eu-west-1's
/// Linux m5.large and Windows m5.xlarge prices.
async fn world() -> World {
    let (server, client) = support::management_server(NS).await;
    let customer = FakeApiServer::start().await.expect("customer cluster");
    let clock = ManualClock::at(1_800_000_000);
    let aws = FakeAws::new(clock.clone());
    aws.put_cluster(
        ACCOUNT_ID,
        REGION,
        EksCluster {
            name: CLUSTER.into(),
            status: Some("ACTIVE".into()),
            version: Some("1.34".into()),
            endpoint: Some(customer.url()),
            ..Default::default()
        },
    );
    let nodes = [
        ("i-0000000000000000a", "m5.large", "linux"),
        ("i-0000000000000000b", "m5.large", "linux"),
        ("i-0000000000000000c", "m5.xlarge", "windows"),
    ];
    for (id, instance_type, os) in nodes {
        customer
            .seed(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": format!("ip-{id}"), "creationTimestamp": "2026-01-01T00:00:00Z",
                    "labels": {"node.kubernetes.io/instance-type": instance_type, "kubernetes.io/os": os,
                        "topology.kubernetes.io/zone": "eu-west-1a"}},
                "spec": {"providerID": format!("aws:///eu-west-1a/{id}")},
                "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"}}}))
            .unwrap();
        aws.put_instance(
            ACCOUNT_ID,
            REGION,
            Instance {
                id: id.into(),
                instance_type: Some(instance_type.into()),
                state: Some("running".into()),
                tags: [(
                    format!("kubernetes.io/cluster/{CLUSTER}"),
                    "owned".to_string(),
                )]
                .into_iter()
                .collect(),
            },
        );
    }
    for (name, vcpus, memory_mib) in [("m5.large", 2, 8192), ("m5.xlarge", 4, 16384)] {
        aws.put_instance_type(InstanceTypeShape {
            name: name.into(),
            vcpus,
            memory_mib,
            architecture: "amd64".into(),
            max_pods: Some(29),
        });
    }
    aws.put_on_demand_price(REGION, "linux", "m5.large", 0.107);
    aws.put_on_demand_price(REGION, "windows", "m5.xlarge", 0.398);
    // A price for a region the cluster is not in must not be asked for.
    aws.put_on_demand_price("ap-south-1", "linux", "m5.large", 0.101);
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(&client, &aws, &clock, &dir);
    World {
        _server: server,
        _customer: customer,
        client,
        aws,
        clock,
        ctx,
        dir,
    }
}

/// A fresh operator context (new price cache, new broker) on the store in `dir`: what a
/// restarted operator has.
fn context(
    client: &kube::Client,
    aws: &Arc<FakeAws>,
    clock: &Arc<ManualClock>,
    dir: &tempfile::TempDir,
) -> Arc<Context> {
    let metrics = Arc::new(Metrics::new());
    let broker = Arc::new(Broker::new(
        aws.clone(),
        clock.clone(),
        metrics.clone(),
        "crossguard-test",
    ));
    let store = Store::open(
        &format!("file://{}", dir.path().display()),
        &S3Options::default(),
    )
    .unwrap();
    let cache = PriceCache::new(
        aws.pricing(),
        "us-east-1",
        PriceTable::bundled(),
        None,
        REFRESH,
        store.clone(),
        clock.clone(),
    );
    Arc::new(
        Context::new(
            client.clone(),
            broker,
            metrics,
            clock.clone(),
            store,
            PriceTable::bundled(),
        )
        .with_price_cache(cache),
    )
}

impl World {
    fn accounts(&self) -> Api<CustomerAccount> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn clusters(&self) -> Api<ManagedCluster> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Account `acme` Ready, and ManagedCluster `prod` in eu-west-1 analysed every minute.
    async fn ready_account_and_cluster(&self) -> String {
        let account: CustomerAccount = serde_json::from_value(json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": "acme", "namespace": NS},
            "spec": {"accountId": ACCOUNT_ID, "roleArn": ROLE, "regions": [REGION], "sessionDuration": "1h"}}))
        .unwrap();
        self.accounts()
            .create(&PostParams::default(), &account)
            .await
            .unwrap();
        for _ in 0..2 {
            let obj = self.accounts().get("acme").await.unwrap();
            let _ = customer_account::reconcile(Arc::new(obj), self.ctx.clone()).await;
        }
        let status =
            serde_json::to_value(&self.accounts().get("acme").await.unwrap().status).unwrap();
        let external_id = status["externalId"]
            .as_str()
            .expect("externalId")
            .to_string();
        self.aws.add_role(ROLE, &external_id);
        let obj = self.accounts().get("acme").await.unwrap();
        customer_account::reconcile(Arc::new(obj), self.ctx.clone())
            .await
            .expect("account verified");
        let cluster: ManagedCluster = serde_json::from_value(json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "ManagedCluster",
            "metadata": {"name": CLUSTER, "namespace": NS},
            "spec": {"accountRef": {"name": "acme"}, "region": REGION, "clusterName": CLUSTER,
                "analysisInterval": "1m"}}))
        .unwrap();
        self.clusters()
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
        // The first reconcile of a new object only adds the finalizer.
        let obj = self.clusters().get(CLUSTER).await.unwrap();
        managed_cluster::reconcile(Arc::new(obj), self.ctx.clone())
            .await
            .expect("finalizer");
        self.accounts()
            .get("acme")
            .await
            .unwrap()
            .uid()
            .expect("uid")
    }

    /// One reconcile of the cluster with `ctx`; it must succeed.
    async fn reconcile(&self, ctx: &Arc<Context>) {
        let obj = self.clusters().get(CLUSTER).await.unwrap();
        managed_cluster::reconcile(Arc::new(obj), ctx.clone())
            .await
            .expect("reconcile succeeds whatever the Price List API does");
    }

    /// (status, reason, message) of a condition of the cluster.
    async fn condition(&self, type_: &str) -> (String, String, String) {
        let status =
            serde_json::to_value(&self.clusters().get(CLUSTER).await.unwrap().status).unwrap();
        let c = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
        (
            c["status"].as_str().unwrap().into(),
            c["reason"].as_str().unwrap().into(),
            c["message"].as_str().unwrap().into(),
        )
    }

    /// The latest stored report of tenant `uid`.
    async fn latest_report(&self, uid: &str) -> Report {
        let keys = self.ctx.store.keys(uid).await.unwrap();
        let key = keys
            .iter()
            .filter(|k| k.contains("/reports/"))
            .max()
            .expect("a stored report");
        serde_json::from_slice(&self.ctx.store.get(key).await.unwrap()).unwrap()
    }

    /// Every audit record stored for tenant `uid`.
    async fn audit(&self, uid: &str) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        for key in self.ctx.store.keys(uid).await.unwrap() {
            if key.contains("/audit/") {
                let bytes = self.ctx.store.get(&key).await.unwrap();
                for line in String::from_utf8(bytes).unwrap().lines() {
                    out.push(serde_json::from_str(line).unwrap());
                }
            }
        }
        out
    }
}

fn cost_of(report: &Report, instance_type: &str) -> Vec<Option<f64>> {
    report
        .nodes
        .iter()
        .filter(|n| n.instance_type.as_deref() == Some(instance_type))
        .map(|n| n.monthly_cost)
        .collect()
}

#[tokio::test]
async fn a_cluster_in_eu_west_1_is_priced_from_the_price_list_cached_and_read_back_after_a_restart()
{
    let w = world().await;
    let uid = w.ready_account_and_cluster().await;
    w.aws.clear_calls();

    w.reconcile(&w.ctx).await;
    let (ready, _, _) = w.condition("Ready").await;
    assert_eq!(ready, "True");
    let report = w.latest_report(&uid).await;
    assert_eq!(report.unpriced_nodes, 0, "{:?}", report.unpriced_examples);
    let h = report.hours_per_month;
    let cents = |hourly: f64| Some((hourly * h * 100.0).round() / 100.0);
    assert_eq!(cost_of(&report, "m5.large"), [cents(0.107), cents(0.107)]);
    assert_eq!(cost_of(&report, "m5.xlarge"), [cents(0.398)]);
    let api_sources: Vec<_> = report
        .price_sources
        .iter()
        .filter(|s| s.source.starts_with("AWS Price List API"))
        .collect();
    assert_eq!(api_sources.len(), 2, "{:?}", report.price_sources);
    for s in &api_sources {
        assert!(s.source.contains("eu-west-1"), "{s:?}");
        assert_eq!(s.as_of, "fetched 2027-01-15T08:00:00Z");
    }

    // One GetProducts per operating system, with the operator's identity, at the Price
    // List endpoint, for the cluster's region only.
    let calls = w.aws.calls_of("GetProducts");
    let targets: Vec<&str> = calls.iter().map(|c| c.target.as_str()).collect();
    assert_eq!(targets, ["eu-west-1/Linux", "eu-west-1/Windows"]);
    assert!(calls.iter().all(|c| c.account == OPERATOR_ACCOUNT
        && c.region == "us-east-1"
        && c.outcome == "success"));
    // Audited with the reconcile that made them.
    let audited: Vec<String> = w
        .audit(&uid)
        .await
        .iter()
        .filter(|r| r.operation == "GetProducts")
        .map(|r| format!("{}:{} {} {}", r.service, r.operation, r.target, r.outcome))
        .collect();
    assert_eq!(
        audited,
        [
            "pricing:GetProducts eu-west-1/Linux success",
            "pricing:GetProducts eu-west-1/Windows success"
        ]
    );
    // Stored outside every tenant's prefix, with the fetch time.
    let stored = w
        .ctx
        .store
        .get_prices(REGION)
        .await
        .unwrap()
        .expect("stored");
    let stored: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(
        stored["onDemand"]["windows"]["hourlyUsd"]["m5.xlarge"],
        0.398
    );
    assert_eq!(
        stored["onDemand"]["linux"]["fetchedAt"],
        "2027-01-15T08:00:00Z"
    );
    assert!(
        w.ctx
            .store
            .keys(&uid)
            .await
            .unwrap()
            .iter()
            .all(|k| !k.contains("prices")),
        "price data is not tenant data"
    );

    // Within the refresh interval: analysed again, no call.
    w.clock.advance(Duration::from_secs(2 * 60));
    w.aws.clear_calls();
    w.reconcile(&w.ctx).await;
    assert!(w.aws.calls_of("GetProducts").is_empty());
    assert_eq!(w.latest_report(&uid).await.unpriced_nodes, 0);

    // A restarted operator (new context, same store) reads the stored copy.
    let restarted = context(&w.client, &w.aws, &w.clock, &w.dir);
    w.clock.advance(Duration::from_secs(2 * 60));
    w.reconcile(&restarted).await;
    assert!(w.aws.calls_of("GetProducts").is_empty());
    let report = w.latest_report(&uid).await;
    assert_eq!(report.unpriced_nodes, 0);
    assert_eq!(cost_of(&report, "m5.xlarge"), [cents(0.398)]);

    // After the refresh interval, fetched again, with the new price.
    w.aws
        .put_on_demand_price(REGION, "windows", "m5.xlarge", 0.41);
    w.clock.advance(REFRESH);
    w.reconcile(&restarted).await;
    assert_eq!(w.aws.calls_of("GetProducts").len(), 2);
    assert_eq!(
        cost_of(&w.latest_report(&uid).await, "m5.xlarge"),
        [cents(0.41)]
    );
}

#[tokio::test]
async fn a_failing_price_list_leaves_nodes_unpriced_with_the_reason_and_backs_off() {
    let w = world().await;
    let uid = w.ready_account_and_cluster().await;
    w.aws.clear_calls();
    w.aws
        .fail("GetProducts", AwsErrorKind::Unavailable, usize::MAX);

    w.reconcile(&w.ctx).await;
    let (ready, _, _) = w.condition("Ready").await;
    assert_eq!(
        ready, "True",
        "a Price List failure never fails the reconcile"
    );
    let (analysed, _, message) = w.condition("Analysed").await;
    assert_eq!(analysed, "True");
    assert!(
        message.contains("3 nodes have an unknown price")
            && message.contains("Linux prices for eu-west-1 are missing: the AWS Price List API could not be reached")
            && message.contains("Windows prices for eu-west-1 are missing"),
        "{message}"
    );
    let report = w.latest_report(&uid).await;
    assert_eq!(report.unpriced_nodes, 3);
    for n in &report.nodes {
        let reason = n.unpriced_reason.as_deref().unwrap_or_default();
        assert!(
            n.monthly_cost.is_none()
                && reason.contains("in eu-west-1")
                && reason.contains("the AWS Price List API could not be reached")
                && reason.contains("pricing:GetProducts failed"),
            "{reason}"
        );
    }
    assert!(
        report.notes.iter().any(|n| n.contains(
            "prices for eu-west-1 are missing: the AWS Price List API could not be reached"
        )),
        "{:?}",
        report.notes
    );
    assert_eq!(w.aws.calls_of("GetProducts").len(), 2);
    let failed: Vec<_> = w
        .audit(&uid)
        .await
        .into_iter()
        .filter(|r| r.operation == "GetProducts")
        .map(|r| r.outcome)
        .collect();
    assert_eq!(failed, ["unavailable", "unavailable"]);

    // The next analysis, two minutes later, does not call again (backed off >= 5 minutes).
    w.clock.advance(Duration::from_secs(2 * 60));
    w.reconcile(&w.ctx).await;
    assert_eq!(w.aws.calls_of("GetProducts").len(), 2);
    let (_, _, message) = w.condition("Analysed").await;
    assert!(message.contains("next attempt after"), "{message}");

    // Once the API answers again and the delay (at most 10 minutes the first time) is
    // over, the nodes are priced.
    w.aws.clear_failures();
    w.clock.advance(Duration::from_secs(11 * 60));
    w.reconcile(&w.ctx).await;
    assert_eq!(w.aws.calls_of("GetProducts").len(), 4);
    let report = w.latest_report(&uid).await;
    assert_eq!(report.unpriced_nodes, 0, "{:?}", report.unpriced_examples);
    let (_, _, message) = w.condition("Analysed").await;
    assert!(!message.contains("Price List"), "{message}");
}
