//! Two tenants reconciled concurrently against the AWS emulator: every call made with a
//! tenant's session must land in that tenant's account, and each sees only its own cluster.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use crossguard::audit::{AuditTrail, CallObserver, Tenant};
use crossguard::aws::sdk::SdkFactory;
use crossguard::clock::SystemClock;
use crossguard::controller::inventory::collect;
use crossguard::credentials::{Broker, SessionParams};
use crossguard::metrics::Metrics;
use support::Moto;

/// An SDK configuration pointing at the emulator with the operator's (fake) identity.
pub async fn emulator_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

fn params(uid: &str, account: &str) -> SessionParams {
    SessionParams {
        uid: uid.into(),
        namespace: format!("tenant-{account}"),
        name: "account".into(),
        account_id: account.into(),
        role_arn: format!("arn:aws:iam::{account}:role/crossguard-access"),
        external_id: format!("external-id-for-{account}-0123456789abcdef"),
        duration: Duration::from_secs(3600),
        region: "us-east-1".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tenants_never_share_sessions_or_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let tenants = [
        ("uid-a", "111111111111", "alpha"),
        ("uid-b", "222222222222", "beta"),
    ];
    let mut seeded = HashMap::new();
    for (_, account, cluster) in tenants {
        seeded.insert(
            account,
            moto.seed(&["--account-id", account, "--cluster-name", cluster]),
        );
    }
    moto.clear_calls();

    let metrics = Arc::new(Metrics::new());
    let factory = Arc::new(SdkFactory::from_config(
        emulator_config(&moto.url).await,
        metrics.clone(),
    ));
    let broker = Arc::new(Broker::new(
        factory,
        Arc::new(SystemClock),
        metrics.clone(),
        "crossguard-test",
    ));

    // 2 tenants x 8 interleaved reconciles, all in flight at once.
    let mut tasks = Vec::new();
    for round in 0..8 {
        for (uid, account, cluster) in tenants {
            let (broker, metrics) = (broker.clone(), metrics.clone());
            tasks.push(tokio::spawn(async move {
                let trail = AuditTrail::new(
                    Tenant {
                        uid: uid.into(),
                        account_id: account.into(),
                        namespace: "ns".into(),
                        cluster: Some(cluster.into()),
                    },
                    Arc::new(SystemClock),
                    metrics,
                );
                let observer: Arc<dyn CallObserver> = trail.clone();
                let session = broker
                    .session(&params(uid, account), &observer)
                    .await
                    .expect("session");
                assert_eq!(session.identity.account, account, "round {round}");
                let clients = broker.clients(&session, "us-east-1", observer);
                let collected = collect(&clients, cluster).await.expect("inventory");
                // DescribeInstanceTypes gives the shapes the analysis uses.
                let m5 = collected
                    .instance_types
                    .iter()
                    .find(|t| t.name == "m5.large")
                    .expect("m5.large shape");
                assert_eq!(
                    (m5.vcpus, m5.memory_mib, m5.architecture.as_str()),
                    (2, 8192, "amd64")
                );
                assert_eq!(m5.max_pods, Some(29), "ENIs x (IPs per ENI - 1) + 2");
                let inventory = collected.inventory;
                (
                    account,
                    session.credentials.access_key_id.clone(),
                    inventory,
                    trail.records(),
                )
            }));
        }
    }
    let mut keys: HashMap<String, &str> = HashMap::new();
    for task in tasks {
        let (account, key, inventory, records) = task.await.unwrap();
        let seed = &seeded[account];
        let instances: usize = seed["nodegroups"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n["instances"].as_array().unwrap().len())
            .sum();
        assert_eq!(
            inventory.instances as usize, instances,
            "{account}: {inventory:?}"
        );
        assert_eq!(inventory.nodegroups, 2);
        // The audit trail names the tenant's own account on every record.
        assert!(records.iter().all(|r| r.account_id == account));
        assert!(records.iter().any(|r| r.operation == "DescribeCluster"));
        if let Some(previous) = keys.insert(key.clone(), account) {
            assert_eq!(previous, account, "one access key served two tenants");
        }
    }
    // One session per tenant (single flight + cache), never shared.
    assert_eq!(keys.len(), 2, "{keys:?}");

    // The emulator's own record: each call made with a tenant's key ran in that tenant's account.
    let calls = moto.calls();
    let mut checked = 0;
    for call in &calls {
        if let Some(account) = call["access_key_id"].as_str().and_then(|k| keys.get(k)) {
            assert_eq!(call["account_id"].as_str(), Some(*account), "{call}");
            checked += 1;
        }
    }
    assert!(
        checked >= 16 * 4,
        "expected every reconcile's calls to be attributed, got {checked}"
    );
    let assume_roles = calls.iter().filter(|c| c["action"] == "AssumeRole").count();
    assert_eq!(assume_roles, 2, "exactly one AssumeRole per tenant");
}
