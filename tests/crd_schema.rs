//! The generated CRDs as a user meets them through an API server (the fake, which checks
//! patterns and evaluates CEL rules with kube-cel): human messages for bad durations,
//! and a ManagedCluster status written by an older operator (money as strings) that the
//! current types read and rewrite as numbers.

mod support;

use crossguard::api::{CustomerAccount, ManagedCluster, ManagedClusterStatus};
use fake_apiserver::FakeApiServer;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "acme";

async fn server() -> (FakeApiServer, kube::Client) {
    let (server, client) = support::management_server(NS).await;
    (server, client)
}

fn account(session_duration: &str) -> Value {
    json!({
        "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
        "metadata": {"name": "a", "namespace": NS},
        "spec": {"accountId": "111122223333",
                 "roleArn": "arn:aws:iam::111122223333:role/crossguard",
                 "regions": ["us-east-1"], "sessionDuration": session_duration}
    })
}

fn cluster(analysis_interval: &str) -> Value {
    json!({
        "apiVersion": "crossguard.dev/v1alpha1", "kind": "ManagedCluster",
        "metadata": {"name": "c", "namespace": NS},
        "spec": {"accountRef": {"name": "a"}, "region": "us-east-1", "clusterName": "prod",
                 "analysisInterval": analysis_interval}
    })
}

/// The message of a refused create, or None when it was created.
async fn create_error<K>(api: &Api<K>, obj: Value) -> Option<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let obj: K = serde_json::from_value(obj).expect("object shape");
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => None,
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{e:?}");
            Some(e.message)
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn bad_durations_are_refused_with_a_message_that_names_the_field() {
    let (_server, client) = server().await;
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), NS);
    let clusters: Api<ManagedCluster> = Api::namespaced(client, NS);
    for bad in ["", "abc", "90", "1.5h", "-1h", "1m1h"] {
        let message = create_error(&accounts, account(bad))
            .await
            .unwrap_or_else(|| panic!("sessionDuration {bad:?} was accepted"));
        assert!(
            message.contains("sessionDuration must be a duration such as 15m or 1h"),
            "{bad:?}: {message}"
        );
        // The CEL range rule never ran duration() on it (its error named the parser).
        assert!(!message.contains("must be between"), "{bad:?}: {message}");
        assert!(
            !message.to_lowercase().contains("duration("),
            "{bad:?}: {message}"
        );

        let message = create_error(&clusters, cluster(bad))
            .await
            .unwrap_or_else(|| panic!("analysisInterval {bad:?} was accepted"));
        assert!(
            message.contains("analysisInterval must be a duration such as 15m or 1h"),
            "{bad:?}: {message}"
        );
        assert!(!message.contains("must be between"), "{bad:?}: {message}");
    }
    // A well-formed duration out of range gets the range message alone.
    let message = create_error(&accounts, account("2h"))
        .await
        .expect("2h refused");
    assert!(
        message.contains("sessionDuration must be between 15m and 1h"),
        "{message}"
    );
    assert!(!message.contains("must be a duration"), "{message}");
    // And good ones pass.
    assert_eq!(create_error(&accounts, account("45m")).await, None);
    assert_eq!(create_error(&clusters, cluster("1h30m")).await, None);
}

#[tokio::test]
async fn a_status_with_money_as_strings_is_read_and_rewritten_as_numbers() {
    let (server, client) = server().await;
    // What an operator before the change left behind: the API server keeps it as stored.
    let mut old = cluster("15m");
    old["status"] = json!({
        "monthlyCost": "$1234.56", "potentialSavings": "$321.00", "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Analysed",
                        "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z",
                        "observedGeneration": 1}]
    });
    server.seed(old).expect("seed");
    let clusters: Api<ManagedCluster> = Api::namespaced(client, NS);

    // The operator's own types read it (a watch or get would fail on a string otherwise).
    let read = clusters.get("c").await.expect("old status reads");
    let status = read.status.clone().expect("status");
    assert_eq!(status.monthly_cost, Some(1235));
    assert_eq!(status.potential_savings, Some(321));
    assert_eq!(status.currency, None);

    // What the controller computes from it carries the currency, so it differs and is
    // written (the controller skips a status write only when nothing changed).
    let new = ManagedClusterStatus {
        currency: Some(crossguard::api::CURRENCY.to_string()),
        ..status.clone()
    };
    assert_ne!(Some(&new), read.status.as_ref());
    let patch = json!({"apiVersion": "crossguard.dev/v1alpha1", "kind": "ManagedCluster",
                       "metadata": {"name": "c"}, "status": new});
    clusters
        .patch_status(
            "c",
            &PatchParams::apply(crossguard::api::FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .expect("the schema accepts the new status");
    let raw: Api<kube::core::DynamicObject> = Api::namespaced_with(
        clusters.clone().into_client(),
        NS,
        &kube::discovery::ApiResource::erase::<ManagedCluster>(&()),
    );
    let stored = raw.get("c").await.unwrap().data["status"].clone();
    assert_eq!(stored["monthlyCost"], json!(1235), "{stored}");
    assert_eq!(stored["potentialSavings"], json!(321), "{stored}");
    assert_eq!(stored["currency"], "USD", "{stored}");
}

/// What a user types: `kubectl get mc --sort-by=.status.monthlyCost` orders by amount (as
/// strings, "$10.50" sorted before "$9.00"; as a mix of whole and fractional numbers,
/// kubectl refused to sort), and the printer columns show the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sorts_clusters_by_monthly_cost_as_numbers() {
    let (server, _client) = server().await;
    for (name, cost) in [("big", 10), ("small", 9), ("huge", 120)] {
        let mut mc = cluster("15m");
        mc["metadata"]["name"] = json!(name);
        mc["status"] = json!({"monthlyCost": cost, "potentialSavings": 3, "currency": "USD"});
        server.seed(mc).expect("seed");
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let (sorted, table) = tokio::task::spawn_blocking(move || {
        let sorted = support::kubectl_ok(
            &kubeconfig,
            &[
                "get",
                "mc",
                "-n",
                NS,
                "--sort-by=.status.monthlyCost",
                "-o",
                "name",
            ],
        );
        let table = support::kubectl_ok(&kubeconfig, &["get", "mc", "-n", NS, "huge"]);
        (sorted, table)
    })
    .await
    .unwrap();
    let names: Vec<&str> = sorted.lines().collect();
    assert_eq!(
        names,
        [
            "managedcluster.crossguard.dev/small",
            "managedcluster.crossguard.dev/big",
            "managedcluster.crossguard.dev/huge"
        ],
        "{sorted}"
    );
    // Columns by their header's offset: empty cells (no mode, no inventory) leave gaps.
    let (header, row) = (table.lines().next().unwrap(), table.lines().nth(1).unwrap());
    let at = |column: &str| {
        let start = header.find(column).unwrap();
        row[start..].split_whitespace().next().unwrap()
    };
    assert_eq!(at("COST/MO"), "120", "{table}");
    assert_eq!(at("SAVINGS/MO"), "3", "{table}");
}
