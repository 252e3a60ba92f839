//! End to end: the real `crossguard` binary prices a cluster in a region the bundled table
//! does not cover (eu-west-1) from the AWS Price List API, as the test shim fakes it
//! (`tests/harness/moto_shim.py`, fixture `tests/harness/price_list.json`), with the
//! operator's own identity, and a restarted operator reads the stored copy instead of
//! calling again.

mod support;

use std::time::Duration;

use crossguard::analysis::Report;
use crossguard::api::ManagedCluster;
use kube::api::Api;
use serde_json::{Value, json};
use support::{http_get, kubectl_apply_yaml, kubectl_ok, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);
/// The access key of the operator's own identity in `support::Operator`'s environment.
const OPERATOR_KEY: &str = "testing";

/// The ManagedCluster's status once an analysis newer than `after` has finished.
async fn analysed_after(clusters: &Api<ManagedCluster>, after: Option<String>) -> Value {
    wait_for("ManagedCluster acme-prod analysed", TIMEOUT, || {
        let after = after.clone();
        async move {
            let mc = clusters.get("acme-prod").await.ok()?;
            let status = serde_json::to_value(mc.status.as_ref()?).ok()?;
            let analysed = status["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Analysed" && c["status"] == "True");
            let at = status["lastAnalysisAt"].as_str().map(str::to_string);
            (analysed && at.is_some() && at != after).then_some(status)
        }
    })
    .await
}

fn report_at(status: &Value) -> Report {
    let reference = status["reportRef"].as_str().expect("reportRef");
    let path = reference.strip_prefix("file://").expect("a file store");
    serde_json::from_str(&support::read_stored(std::path::Path::new(path))).expect("a report")
}

fn get_products(calls: &[Value]) -> Vec<&Value> {
    calls
        .iter()
        .filter(|c| c["action"] == "GetProducts")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_prices_a_region_outside_the_bundle_from_the_price_list_with_its_own_identity() {
    crossguard::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = fake_apiserver::FakeApiServer::start().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let moto = support::Moto::start(dir.path());
    let seeded = moto.seed(&[
        "--account-id",
        "111111111111",
        "--cluster-name",
        "prod",
        "--region",
        "eu-west-1",
    ]);
    let customer = fake_apiserver::FakeApiServer::start().await.unwrap();
    support::seed_customer_cluster(&customer, &seeded);
    // One Windows node as well (its instance is not in EC2: the label names its type).
    customer
        .seed(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "win-0", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"node.kubernetes.io/instance-type": "m5.xlarge", "kubernetes.io/os": "windows",
                    "eks.amazonaws.com/nodegroup": "windows-ng"}},
            "spec": {"providerID": "aws:///eu-west-1a/i-0aaaaaaaaaaaaaaaa"},
            "status": {"allocatable": {"cpu": "3920m", "memory": "15Gi", "pods": "29"}}}))
        .unwrap();
    moto.clear_calls();

    kubectl_ok(
        &kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            support::repo().join("crds").to_str().unwrap(),
        ],
    );
    kubectl_ok(&kubeconfig, &["create", "namespace", "acme"]);
    kubectl_apply_yaml(
        dir.path(),
        &kubeconfig,
        "acme.yaml",
        &format!(
            r#"apiVersion: crossguard.dev/v1alpha1
kind: CustomerAccount
metadata: {{name: acme, namespace: acme}}
spec:
  accountId: "111111111111"
  roleArn: arn:aws:iam::111111111111:role/crossguard-access
  regions: [eu-west-1]
---
apiVersion: crossguard.dev/v1alpha1
kind: ManagedCluster
metadata: {{name: acme-prod, namespace: acme}}
spec:
  accountRef: {{name: acme}}
  region: eu-west-1
  clusterName: prod
  analysisInterval: 1h
  apiEndpoint: {{url: "{}"}}
"#,
            customer.url()
        ),
    );
    let mut operator = support::Operator::start(dir.path(), &kubeconfig, &moto.url, &[]);
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let clusters: Api<ManagedCluster> = Api::namespaced(client, "acme");

    let status = analysed_after(&clusters, None).await;
    let report = report_at(&status);
    assert_eq!(report.regions, ["eu-west-1"]);
    assert_eq!(report.unpriced_nodes, 0, "{:?}", report.unpriced_examples);
    let h = report.hours_per_month;
    let cents = |hourly: f64| Some((hourly * h * 100.0).round() / 100.0);
    for n in &report.nodes {
        let expected = match (n.operating_system.as_str(), n.instance_type.as_deref()) {
            ("windows", Some("m5.xlarge")) => 0.398,
            ("linux", Some("m5.large")) => 0.107,
            ("linux", Some("t3.large")) => 0.0912,
            other => panic!("unexpected node {other:?}"),
        };
        assert_eq!(n.monthly_cost, cents(expected), "{}", n.node);
    }
    let listed: Vec<&str> = report
        .price_sources
        .iter()
        .filter(|s| s.source.starts_with("AWS Price List API"))
        .map(|s| s.source.as_str())
        .collect();
    assert_eq!(listed.len(), 2, "{:?}", report.price_sources);
    assert!(
        listed.iter().all(|s| s.contains("eu-west-1")
            && s.contains("1 products without a usable price skipped")
            && s.contains("published 2026-11-01T00:00:00Z")),
        "{listed:?}"
    );

    // The report carries the Price List answers it priced with, so `crossguard analyze
    // --inventory <the stored report>` on a kubectl dump of the same cluster gives the
    // operator's figures. Without it, the nodes (no region label) are priced at the default
    // region's bundled rates, and the Windows node not at all.
    let report_path = status["reportRef"]
        .as_str()
        .unwrap()
        .strip_prefix("file://")
        .unwrap();
    let stored: Value =
        serde_json::from_str(&support::read_stored(std::path::Path::new(report_path))).unwrap();
    // The stored report is sealed: analyze reads its decrypted copy (`store-get`).
    let report_copy = dir.path().join("report.json").display().to_string();
    std::fs::write(&report_copy, serde_json::to_vec(&stored).unwrap()).unwrap();
    let listed = &stored["awsInventory"]["listPrices"];
    assert_eq!(
        listed["windows"]["hourlyUsd"]["m5.xlarge"], 0.398,
        "{listed}"
    );
    assert_eq!(listed["linux"]["hourlyUsd"]["t3.large"], 0.0912, "{listed}");
    let offline =
        support::analyze_customer_dump(&customer, dir.path(), &["--inventory", &report_copy]);
    support::assert_same_figures(&offline, &stored);
    let without = support::analyze_customer_dump(&customer, dir.path(), &[]);
    assert_eq!(
        without["unpricedNodes"], 1,
        "{}",
        without["unpricedExamples"]
    );
    assert_ne!(without["currentMonthlyCost"], stored["currentMonthlyCost"]);

    // Every page of GetProducts (3 Linux and 3 Windows products of eu-west-1 pass the
    // filters; the shim serves 2 per page) went to the Price List endpoint region with the
    // operator's own key, never a customer session, and not into the customer's account.
    let calls = moto.operator_calls();
    let pages = get_products(&calls);
    assert_eq!(pages.len(), 4, "{pages:?}");
    for c in &pages {
        assert_eq!(c["access_key_id"], OPERATOR_KEY, "{c}");
        assert_eq!(c["service"], "pricing", "{c}");
        assert_eq!(c["region"], "us-east-1", "{c}");
        assert_eq!(c["status"], 200, "{c}");
        assert_ne!(c["account_id"], "111111111111", "{c}");
    }
    let describe = calls
        .iter()
        .find(|c| c["action"] == "DescribeCluster")
        .expect("the inventory was read");
    assert_ne!(
        describe["access_key_id"], OPERATOR_KEY,
        "customer calls use the assumed session"
    );
    assert!(
        !support::operator_actions(&moto).contains("pricing:GetProducts"),
        "the customer's role is not asked for pricing"
    );
    let metrics = http_get(&operator.http, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("crossguard_aws_calls_total{")
                && l.contains(r#"service="pricing""#)
                && l.contains(r#"operation="GetProducts""#)
                && l.contains(r#"outcome="success""#)
                && l.ends_with(" 4")),
        "{metrics}"
    );
    let stored: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("store/prices/eu-west-1.json")).expect("stored prices"),
    )
    .unwrap();
    assert_eq!(stored["onDemand"]["linux"]["hourlyUsd"]["t3.large"], 0.0912);

    // A restarted operator analyses again (the spec changed) from the stored copy.
    operator.stop();
    moto.clear_calls();
    support::patch_acme_prod(&kubeconfig, r#"{"spec":{"analysisInterval":"2h"}}"#);
    let _operator = support::Operator::start(dir.path(), &kubeconfig, &moto.url, &[]);
    let again = analysed_after(
        &clusters,
        status["lastAnalysisAt"].as_str().map(str::to_string),
    )
    .await;
    assert_eq!(report_at(&again).unpriced_nodes, 0);
    assert!(
        get_products(&moto.operator_calls()).is_empty(),
        "the stored prices were used"
    );
}
