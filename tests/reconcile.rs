//! In-process reconcile tests: both reconcilers run against the in-process fake API server
//! (as the management cluster and as the customer's cluster) and the stateful AWS fake
//! (`crossguard::testing::aws`), with no operator process and no emulator. Every exit of
//! both pipelines is driven here, and every reconcile checks two invariants of the
//! controller design (docs/architecture.md): status is written at most once, and the calls
//! it made reach the tenant's audit log whatever the outcome.

mod support;

use std::sync::Arc;
use std::time::Duration;

use crossguard::analysis::PriceTable;
use crossguard::api::{CustomerAccount, ManagedCluster};
use crossguard::audit::AuditRecord;
use crossguard::aws::{
    AutoScalingGroup, AwsError, EksCluster, Instance, InstanceTypeShape, Nodegroup, TAG_CLUSTER,
    TAG_MANAGED,
};
use crossguard::controller::{self, Context, customer_account, managed_cluster};
use crossguard::credentials::Broker;
use crossguard::metrics::Metrics;
use crossguard::store::{S3Options, Store};
use crossguard::testing::ManualClock;
use crossguard::testing::aws::FakeAws;
use fake_apiserver::FakeApiServer;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

const NS: &str = "acme";
const ACCOUNT_ID: &str = "111111111111";
const ROLE: &str = "arn:aws:iam::111111111111:role/crossguard-access";
const REGION: &str = "us-east-1";
const CLUSTER: &str = "prod";

struct World {
    server: FakeApiServer,
    customer: FakeApiServer,
    client: kube::Client,
    aws: Arc<FakeAws>,
    clock: Arc<ManualClock>,
    ctx: Arc<Context>,
    _dir: tempfile::TempDir,
}

fn error(code: &str, status: u16, operation: &'static str) -> AwsError {
    AwsError::new(
        "test",
        operation,
        Some(code.into()),
        Some(format!("{code} injected by the test")),
        Some(status),
        None,
    )
}

/// Management cluster with the CRDs and namespace `acme`, a customer cluster with three
/// lightly loaded nodes, and an AWS account holding EKS cluster `prod` (one managed
/// nodegroup, its group and three instances). No crossguard object exists yet.
async fn world() -> World {
    let (server, client) = support::management_server(NS).await;

    let customer = FakeApiServer::start().await.expect("customer cluster");
    let ids: Vec<String> = (0..3).map(|i| format!("i-000000000000000{i}")).collect();
    for id in &ids {
        customer
            .seed(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": format!("ip-{id}"), "creationTimestamp": "2026-01-01T00:00:00Z",
                    "labels": {"node.kubernetes.io/instance-type": "m5.large", "eks.amazonaws.com/nodegroup": "ng",
                        "topology.kubernetes.io/zone": "us-east-1a"}},
                "spec": {"providerID": format!("aws:///us-east-1a/{id}")},
                "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"}}}))
            .expect("node");
    }
    customer
        .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .ok();
    customer
        .seed(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": true}]},
            "spec": {"nodeName": format!("ip-{}", ids[1]), "containers": [{"name": "w", "image": "w",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Running"}}))
        .expect("pod");

    let clock = ManualClock::at(1_800_000_000);
    let aws = FakeAws::new(clock.clone());
    let managed = [
        (TAG_MANAGED.to_string(), "true".to_string()),
        (TAG_CLUSTER.to_string(), CLUSTER.to_string()),
    ];
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
    aws.put_nodegroup(
        ACCOUNT_ID,
        REGION,
        Nodegroup {
            name: "ng".into(),
            cluster_name: CLUSTER.into(),
            status: Some("ACTIVE".into()),
            tags: managed.iter().cloned().collect(),
            auto_scaling_groups: vec!["asg-ng".into()],
            min_size: Some(1),
            max_size: Some(6),
            desired_size: Some(3),
            instance_types: vec!["m5.large".into()],
        },
    );
    aws.put_group(
        ACCOUNT_ID,
        REGION,
        AutoScalingGroup {
            name: "asg-ng".into(),
            tags: managed.iter().cloned().collect(),
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
    for id in &ids {
        let mut tags: std::collections::BTreeMap<String, String> =
            managed.iter().cloned().collect();
        tags.insert(format!("kubernetes.io/cluster/{CLUSTER}"), "owned".into());
        aws.put_instance(
            ACCOUNT_ID,
            REGION,
            Instance {
                id: id.clone(),
                instance_type: Some("m5.large".into()),
                state: Some("running".into()),
                tags,
            },
        );
    }
    aws.put_instance_type(InstanceTypeShape {
        name: "m5.large".into(),
        vcpus: 2,
        memory_mib: 8192,
        architecture: "amd64".into(),
        max_pods: Some(29),
    });

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
    let ctx = Arc::new(Context::new(
        client.clone(),
        broker,
        metrics,
        clock.clone(),
        store,
        PriceTable::bundled(),
    ));
    World {
        server,
        customer,
        client,
        aws,
        clock,
        ctx,
        _dir: dir,
    }
}

impl World {
    fn accounts(&self) -> Api<CustomerAccount> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn clusters(&self) -> Api<ManagedCluster> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn create_account(&self, name: &str, extra: serde_json::Value) -> CustomerAccount {
        let mut spec = json!({"accountId": ACCOUNT_ID, "roleArn": ROLE, "regions": [REGION],
            "sessionDuration": "1h"});
        merge(&mut spec, extra);
        let obj: CustomerAccount = serde_json::from_value(json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}))
        .unwrap();
        self.accounts()
            .create(&PostParams::default(), &obj)
            .await
            .unwrap()
    }

    async fn create_cluster(&self, name: &str, extra: serde_json::Value) -> ManagedCluster {
        let mut spec = json!({"accountRef": {"name": "acme"}, "region": REGION,
            "clusterName": CLUSTER, "analysisInterval": "15m"});
        merge(&mut spec, extra);
        let obj: ManagedCluster = serde_json::from_value(json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "ManagedCluster",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}))
        .unwrap();
        self.clusters()
            .create(&PostParams::default(), &obj)
            .await
            .unwrap()
    }

    /// Status writes (PATCH of a status subresource) since the last `clear_requests`.
    fn status_writes(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
            .count()
    }

    /// One reconcile of CustomerAccount `name` as kube-runtime would run it (the first
    /// reconcile of a new object only adds the finalizer, so that one is done first). Asserts
    /// that status was written at most once.
    async fn reconcile_account(&self, name: &str) -> Result<Action, controller::Error> {
        let mut obj = self.accounts().get(name).await.unwrap();
        if obj.finalizers().is_empty() {
            customer_account::reconcile(Arc::new(obj), self.ctx.clone())
                .await
                .expect("adding the finalizer");
            obj = self.accounts().get(name).await.unwrap();
        }
        self.server.clear_requests();
        let result = customer_account::reconcile(Arc::new(obj), self.ctx.clone()).await;
        assert!(self.status_writes() <= 1, "status written more than once");
        result
    }

    /// The same for ManagedCluster `name`.
    async fn reconcile_cluster(&self, name: &str) -> Result<Action, controller::Error> {
        let mut obj = self.clusters().get(name).await.unwrap();
        if obj.finalizers().is_empty() {
            managed_cluster::reconcile(Arc::new(obj), self.ctx.clone())
                .await
                .expect("adding the finalizer");
            obj = self.clusters().get(name).await.unwrap();
        }
        self.server.clear_requests();
        let result = managed_cluster::reconcile(Arc::new(obj), self.ctx.clone()).await;
        assert!(self.status_writes() <= 1, "status written more than once");
        result
    }

    /// An account `acme` that is Ready: created, its ExternalId put in the fake role's
    /// trust, verified.
    async fn ready_account(&self) -> CustomerAccount {
        self.create_account("acme", json!({})).await;
        let _ = self.reconcile_account("acme").await;
        let external_id = self.account_status("acme").await["externalId"]
            .as_str()
            .expect("externalId in status")
            .to_string();
        self.aws.add_role(ROLE, &external_id);
        self.reconcile_account("acme").await.expect("verified");
        let account = self.accounts().get("acme").await.unwrap();
        assert_eq!(
            ready(&account_status_of(&account)),
            ("True".into(), "Verified".into())
        );
        account
    }

    async fn account_status(&self, name: &str) -> serde_json::Value {
        account_status_of(&self.accounts().get(name).await.unwrap())
    }

    async fn cluster_status(&self, name: &str) -> serde_json::Value {
        let mc = self.clusters().get(name).await.unwrap();
        serde_json::to_value(&mc.status).unwrap()
    }

    /// Every audit record stored for tenant `uid`.
    async fn audit(&self, uid: &str) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        for key in self.ctx.store.keys(uid).await.unwrap() {
            if !key.contains("/audit/") {
                continue;
            }
            let bytes = self.ctx.store.get(&key).await.unwrap();
            for line in String::from_utf8(bytes).unwrap().lines() {
                out.push(serde_json::from_str(line).unwrap());
            }
        }
        out
    }
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

fn account_status_of(account: &CustomerAccount) -> serde_json::Value {
    serde_json::to_value(&account.status).unwrap()
}

fn condition(status: &serde_json::Value, type_: &str) -> (String, String, String) {
    let c = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
    (
        c["status"].as_str().unwrap().to_string(),
        c["reason"].as_str().unwrap().to_string(),
        c["message"].as_str().unwrap().to_string(),
    )
}

fn ready(status: &serde_json::Value) -> (String, String) {
    let (s, r, _) = condition(status, "Ready");
    (s, r)
}

fn category(result: &Result<Action, controller::Error>) -> &'static str {
    match result {
        Err(e) => e.category().as_str(),
        Ok(_) => "ok",
    }
}

fn find<'a>(records: &'a [AuditRecord], operation: &str) -> Vec<&'a AuditRecord> {
    records
        .iter()
        .filter(|r| r.operation == operation)
        .collect()
}

// ---------------------------------------------------------------- CustomerAccount

#[tokio::test]
async fn account_happy_path_after_the_customer_trusts_the_external_id() {
    let w = world().await;
    let created = w.create_account("acme", json!({})).await;
    // First pass: the ExternalId is issued; the role does not trust it yet.
    let first = w.reconcile_account("acme").await;
    assert_eq!(
        category(&first),
        "ok",
        "a denied role is the customer's to fix"
    );
    assert_eq!(first.unwrap(), Action::requeue(controller::PROBLEM_RETRY));
    let status = w.account_status("acme").await;
    assert_eq!(ready(&status), ("False".into(), "AssumeRoleDenied".into()));
    let (trust, reason, message) = condition(&status, "TrustPolicy");
    assert_eq!(
        (trust.as_str(), reason.as_str()),
        ("False", "ExternalIdIssued")
    );
    assert!(message.contains("status.externalId"), "{message}");
    let external_id = status["externalId"].as_str().unwrap().to_string();
    assert_eq!(external_id.len(), 48);

    w.aws.add_role(ROLE, &external_id);
    let second = w.reconcile_account("acme").await.expect("verified");
    assert_eq!(second, Action::requeue(Duration::from_secs(15 * 60)));
    let status = w.account_status("acme").await;
    assert_eq!(ready(&status), ("True".into(), "Verified".into()));
    assert_eq!(condition(&status, "TrustPolicy").1, "ExternalIdAccepted");
    assert_eq!(status["verifiedIdentity"]["account"], ACCOUNT_ID);
    assert_eq!(
        status["externalId"],
        external_id.as_str(),
        "never changes by itself"
    );

    // Both AssumeRole calls, the denied one included, are in the tenant's audit log.
    let audit = w.audit(&created.uid().unwrap()).await;
    let mut outcomes: Vec<&str> = find(&audit, "AssumeRole")
        .iter()
        .map(|r| r.outcome.as_str())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["access_denied", "success"], "{audit:?}");
    assert!(!find(&audit, "GetCallerIdentity").is_empty());

    // Nothing changed: the next pass reuses the session and writes no status.
    let calls = w.aws.calls().len();
    w.reconcile_account("acme").await.unwrap();
    assert_eq!(w.status_writes(), 0);
    assert_eq!(w.aws.calls_of("AssumeRole").len(), 2, "session reused");
    assert!(w.aws.calls().len() >= calls);
}

/// An account applied before its customer made the role (no spec.roleArn).
async fn create_awaiting_account(w: &World) -> CustomerAccount {
    let obj: CustomerAccount = serde_json::from_value(json!({
        "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
        "metadata": {"name": "acme", "namespace": NS},
        "spec": {"accountId": ACCOUNT_ID, "regions": [REGION]}}))
    .unwrap();
    w.accounts()
        .create(&PostParams::default(), &obj)
        .await
        .unwrap()
}

/// Set (Some) or remove (None) spec.roleArn of `acme` with a merge patch.
async fn set_role(w: &World, role: Option<&str>) {
    w.accounts()
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"roleArn": role}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_account_without_role_gets_its_external_id_and_waits_without_aws_calls() {
    let w = world().await;
    create_awaiting_account(&w).await;
    let result = w.reconcile_account("acme").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(controller::AWAITING_ROLE_RECHECK)
    );
    assert!(controller::AWAITING_ROLE_RECHECK >= Duration::from_secs(60 * 60));
    let status = w.account_status("acme").await;
    let (ready_status, reason, message) = condition(&status, "Ready");
    assert_eq!(
        (ready_status.as_str(), reason.as_str()),
        ("False", "AwaitingCustomerRole")
    );
    for next in [
        "crossguard onboarding-template --from customeraccount/acme -n acme",
        "crossguard onboarding-template --account-id 111111111111",
        "kubectl get customeraccount acme -n acme -o jsonpath='{.status.externalId}'",
        "crossguard onboarding-complete customeraccount/acme -n acme --stack-outputs",
        "kubectl patch customeraccount acme -n acme --type merge -p '{\"spec\":{\"roleArn\":\"arn:aws:iam::111111111111:role/crossguard-access\"}}'",
    ] {
        assert!(message.contains(next), "{next:?} missing from: {message}");
    }
    assert_eq!(
        condition(&status, "CredentialsValid").1,
        "AwaitingCustomerRole"
    );
    assert_eq!(condition(&status, "TrustPolicy").1, "ExternalIdIssued");
    let external_id = status["externalId"]
        .as_str()
        .expect("ExternalId issued")
        .to_string();
    assert!(w.aws.calls().is_empty(), "{:?}", w.aws.calls());

    // Looked at again without a change: still no call, no status write.
    w.reconcile_account("acme").await.unwrap();
    assert!(w.aws.calls().is_empty());
    assert_eq!(w.status_writes(), 0);

    // The customer deployed the role; its ARN is set: verified as usual.
    w.aws.add_role(ROLE, &external_id);
    set_role(&w, Some(ROLE)).await;
    w.reconcile_account("acme").await.expect("verified");
    let status = w.account_status("acme").await;
    assert_eq!(ready(&status), ("True".into(), "Verified".into()));
    assert_eq!(condition(&status, "TrustPolicy").1, "ExternalIdAccepted");
    assert_eq!(
        status["externalId"],
        external_id.as_str(),
        "the same ExternalId"
    );

    // Removed again: back to waiting, the session dropped, no call with the old role.
    set_role(&w, None).await;
    w.aws.clear_calls();
    w.reconcile_account("acme").await.unwrap();
    let status = w.account_status("acme").await;
    assert_eq!(ready(&status).1, "AwaitingCustomerRole");
    assert!(
        status.get("verifiedIdentity").is_none_or(|v| v.is_null()),
        "{status}"
    );
    assert_eq!(condition(&status, "TrustPolicy").0, "Unknown");
    assert!(w.aws.calls().is_empty(), "{:?}", w.aws.calls());

    // Another role (re-onboarding): a fresh AssumeRole of that role, not the cached one.
    let other = "arn:aws:iam::111111111111:role/crossguard-access-v2";
    w.aws.add_role(other, &external_id);
    set_role(&w, Some(other)).await;
    w.reconcile_account("acme").await.expect("verified");
    assert_eq!(ready(&w.account_status("acme").await).1, "Verified");
    let assumed: Vec<String> = w
        .aws
        .calls_of("AssumeRole")
        .into_iter()
        .map(|c| c.target)
        .collect();
    assert_eq!(assumed, [other.to_string()]);
}

#[tokio::test]
async fn a_cluster_of_an_account_awaiting_its_role_waits_then_proceeds() {
    let w = world().await;
    create_awaiting_account(&w).await;
    w.reconcile_account("acme").await.unwrap();
    w.create_cluster("acme-prod", json!({})).await;
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(controller::AWAITING_ROLE_RECHECK)
    );
    let status = w.cluster_status("acme-prod").await;
    let (s, reason, message) = condition(&status, "Ready");
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "AwaitingCustomerRole")
    );
    assert!(
        message.contains("awaits its customer's IAM role"),
        "{message}"
    );
    assert!(
        message.contains("onboarding-complete"),
        "the account's next step: {message}"
    );
    assert_eq!(condition(&status, "AccountResolved").0, "False");
    assert!(w.aws.calls().is_empty(), "{:?}", w.aws.calls());

    // The role is set and verified: the cluster proceeds.
    let external_id = w.account_status("acme").await["externalId"]
        .as_str()
        .unwrap()
        .to_string();
    w.aws.add_role(ROLE, &external_id);
    set_role(&w, Some(ROLE)).await;
    w.reconcile_account("acme").await.expect("verified");
    w.reconcile_cluster("acme-prod").await.expect("observed");
    assert_eq!(
        ready(&w.cluster_status("acme-prod").await),
        ("True".into(), "Observed".into())
    );

    // The role removed while the account's status still says Ready (not reconciled yet):
    // the cluster makes no call with the old role either.
    set_role(&w, None).await;
    w.aws.clear_calls();
    w.clock.advance(Duration::from_secs(15 * 60 + 1));
    w.reconcile_cluster("acme-prod").await.unwrap();
    assert_eq!(
        ready(&w.cluster_status("acme-prod").await).1,
        "AwaitingCustomerRole"
    );
    assert!(w.aws.calls().is_empty(), "{:?}", w.aws.calls());
}

#[tokio::test]
async fn account_with_an_invalid_spec_waits_for_a_fix_without_calling_aws() {
    let w = world().await;
    // The schema would refuse this; seed() writes it as an older CRD could have left it.
    w.server
        .seed(
            json!({"apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": "acme", "namespace": NS, "uid": "uid-bad", "generation": 1},
            "spec": {"accountId": ACCOUNT_ID, "roleArn": "arn:aws:iam::222222222222:role/elsewhere",
                "regions": [REGION], "sessionDuration": "1h"}}),
        )
        .unwrap();
    let result = w.reconcile_account("acme").await;
    assert_eq!(result.unwrap(), Action::await_change());
    let status = w.account_status("acme").await;
    assert_eq!(ready(&status).1, "InvalidSpec");
    assert_eq!(condition(&status, "CredentialsValid").0, "Unknown");
    assert!(w.aws.calls().is_empty());
    let generation = w.accounts().get("acme").await.unwrap().metadata.generation;
    assert_eq!(status["observedGeneration"], json!(generation));
}

#[tokio::test]
async fn suspended_account_makes_no_calls() {
    let w = world().await;
    w.create_account("acme", json!({"suspend": true})).await;
    let result = w.reconcile_account("acme").await;
    assert_eq!(result.unwrap(), Action::await_change());
    let status = w.account_status("acme").await;
    assert_eq!(ready(&status).1, "Suspended");
    assert!(
        status["externalId"].is_string(),
        "the ExternalId is still issued"
    );
    assert!(w.aws.calls().is_empty());
}

#[tokio::test]
async fn a_left_over_external_id_secret_is_a_conflict_shown_in_status() {
    let w = world().await;
    // An earlier account of the same name left its Secret behind (another owner UID).
    w.server
        .seed(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "crossguard-externalid-acme", "namespace": NS,
                "ownerReferences": [{"apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
                    "name": "acme", "uid": "uid-of-the-old-account", "controller": true}]},
            "data": {"externalId": "b2xkLXZhbHVlLW9sZC12YWx1ZS1vbGQtdmFsdWUtb2xkLXZhbHVl"}}))
        .unwrap();
    w.create_account("acme", json!({})).await;
    let result = w.reconcile_account("acme").await;
    assert_eq!(result.unwrap(), Action::requeue(controller::PROBLEM_RETRY));
    let status = w.account_status("acme").await;
    let (ready_status, reason, message) = condition(&status, "Ready");
    assert_eq!(
        (ready_status.as_str(), reason.as_str()),
        ("False", "ExternalIdSecretConflict")
    );
    assert!(
        message.contains("kubectl delete secret -n acme crossguard-externalid-acme"),
        "{message}"
    );
    assert_eq!(
        condition(&status, "TrustPolicy").1,
        "ExternalIdSecretConflict"
    );
    assert!(
        status["externalId"].is_null(),
        "a foreign value is never shown"
    );
    assert!(w.aws.calls().is_empty());

    // Following the advice: a new ExternalId is issued and status says the trust policy
    // must be given the new value.
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(w.client.clone(), NS)
        .delete("crossguard-externalid-acme", &DeleteParams::default())
        .await
        .unwrap();
    let _ = w.reconcile_account("acme").await;
    let status = w.account_status("acme").await;
    let (_, reason, message) = condition(&status, "TrustPolicy");
    assert_eq!(reason, "ExternalIdIssued");
    assert!(message.contains("earlier account"), "{message}");
    assert!(status["externalId"].is_string());
}

#[tokio::test]
async fn throttled_sts_backs_off_and_shows_in_status_and_audit() {
    let w = world().await;
    let created = w.create_account("acme", json!({})).await;
    w.aws
        .fail("AssumeRole", error("Throttling", 400, "AssumeRole"), 1);
    let result = w.reconcile_account("acme").await;
    assert_eq!(category(&result), "AwsUnavailable");
    let status = w.account_status("acme").await;
    assert_eq!(ready(&status), ("False".into(), "AwsUnavailable".into()));
    assert_eq!(condition(&status, "CredentialsValid").1, "AwsUnavailable");
    let audit = w.audit(&created.uid().unwrap()).await;
    assert_eq!(find(&audit, "AssumeRole").len(), 1, "{audit:?}");
    assert_eq!(find(&audit, "AssumeRole")[0].outcome, "throttled");
}

#[tokio::test]
async fn kubernetes_failures_are_categorised_by_call() {
    let w = world().await;
    w.create_account("acme", json!({})).await;
    w.server
        .inject_failure(Some("GET"), "secrets/crossguard-externalid-acme", 500, 1);
    let result = w.reconcile_account("acme").await;
    assert_eq!(category(&result), "KubernetesGetSecretFailed");
    assert_eq!(
        ready(&w.account_status("acme").await).1,
        "KubernetesGetSecretFailed"
    );

    w.server
        .inject_failure(Some("PATCH"), "customeraccounts/acme/status", 500, 1);
    let result = w.reconcile_account("acme").await;
    assert_eq!(category(&result), "KubernetesPatchStatusFailed");
}

#[tokio::test]
async fn a_rotation_not_yet_in_the_trust_policy_is_named_as_such() {
    let w = world().await;
    w.ready_account().await;
    let old = w.account_status("acme").await["externalId"]
        .as_str()
        .unwrap()
        .to_string();
    w.accounts()
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"crossguard.dev/rotate-external-id": "2026-11-30"}}})),
        )
        .await
        .unwrap();
    let result = w.reconcile_account("acme").await;
    assert_eq!(result.unwrap(), Action::requeue(controller::PROBLEM_RETRY));
    let status = w.account_status("acme").await;
    let new = status["externalId"].as_str().unwrap();
    assert_ne!(new, old);
    let (_, reason, message) = condition(&status, "Ready");
    assert_eq!(reason, "ExternalIdRotated");
    assert!(message.contains(new), "{message}");
    assert_eq!(condition(&status, "CredentialsValid").1, "AssumeRoleDenied");
}

#[tokio::test]
async fn deleting_an_account_erases_its_stored_data() {
    let w = world().await;
    let account = w.ready_account().await;
    let uid = account.uid().unwrap();
    assert!(!w.ctx.store.keys(&uid).await.unwrap().is_empty());
    w.accounts()
        .delete("acme", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = w.accounts().get("acme").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    customer_account::reconcile(Arc::new(deleting), w.ctx.clone())
        .await
        .unwrap();
    assert!(w.ctx.store.keys(&uid).await.unwrap().is_empty());
    assert!(w.accounts().get_opt("acme").await.unwrap().is_none());
}

// ---------------------------------------------------------------- ManagedCluster

#[tokio::test]
async fn cluster_happy_path_then_nothing_until_due() {
    let w = world().await;
    let account = w.ready_account().await;
    w.create_cluster("acme-prod", json!({})).await;
    let result = w.reconcile_cluster("acme-prod").await.expect("observed");
    assert_eq!(result, Action::requeue(Duration::from_secs(15 * 60)));
    assert_eq!(w.status_writes(), 1);
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status), ("True".into(), "Observed".into()));
    assert_eq!(condition(&status, "AccountResolved").0, "True");
    assert_eq!(condition(&status, "InventoryCollected").0, "True");
    assert_eq!(condition(&status, "Analysed").0, "True");
    assert_eq!(status["inventory"]["instances"], 3);
    assert_eq!(status["inventory"]["managedNodegroups"], 1);
    assert!(
        status["reportRef"]
            .as_str()
            .is_some_and(|r| r.contains("/reports/"))
    );
    let audit = w.audit(&account.uid().unwrap()).await;
    for op in [
        "DescribeCluster",
        "ListNodegroups",
        "DescribeNodegroup",
        "DescribeInstances",
    ] {
        assert!(!find(&audit, op).is_empty(), "{op} not audited: {audit:?}");
    }
    assert!(
        audit.iter().any(|r| r.service == "kubernetes"),
        "customer-cluster reads are audited too"
    );

    // Not due: no AWS call, no status write.
    w.aws.clear_calls();
    let again = w.reconcile_cluster("acme-prod").await.unwrap();
    assert!(again != Action::await_change());
    assert!(w.aws.calls().is_empty(), "{:?}", w.aws.calls());
    assert_eq!(w.status_writes(), 0);

    // Due again after the interval.
    w.clock.advance(Duration::from_secs(15 * 60 + 1));
    w.reconcile_cluster("acme-prod").await.unwrap();
    assert!(!w.aws.calls_of("DescribeCluster").is_empty());
}

#[tokio::test]
async fn a_throttled_describe_cluster_shows_in_status_event_and_audit() {
    let w = world().await;
    let account = w.ready_account().await;
    w.create_cluster("acme-prod", json!({})).await;
    w.reconcile_cluster("acme-prod").await.expect("observed");
    // The spec changes while EKS throttles: status must not keep saying Ready/Observed.
    w.clusters()
        .patch(
            "acme-prod",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"analysisInterval": "30m"}})),
        )
        .await
        .unwrap();
    let generation = w
        .clusters()
        .get("acme-prod")
        .await
        .unwrap()
        .metadata
        .generation;
    w.aws.fail(
        "DescribeCluster",
        error("ThrottlingException", 429, "DescribeCluster"),
        usize::MAX,
    );
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(category(&result), "AwsUnavailable");
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status), ("False".into(), "AwsUnavailable".into()));
    assert_eq!(condition(&status, "InventoryCollected").1, "AwsUnavailable");
    assert_eq!(status["observedGeneration"], json!(generation));
    let events = w
        .server
        .list_objects("events.k8s.io/v1", "events", Some(NS));
    assert!(
        events.iter().any(|e| e["reason"] == "AwsUnavailable"),
        "no Event: {events:?}"
    );
    let audit = w.audit(&account.uid().unwrap()).await;
    assert!(
        find(&audit, "DescribeCluster")
            .iter()
            .any(|r| r.outcome == "throttled" && r.cluster.as_deref() == Some("acme-prod")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_new_cluster_gets_status_even_when_describe_instances_fails() {
    let w = world().await;
    w.ready_account().await;
    w.create_cluster("acme-prod", json!({})).await;
    w.aws.fail(
        "DescribeInstances",
        error("InternalError", 500, "DescribeInstances"),
        usize::MAX,
    );
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(category(&result), "AwsUnavailable");
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status), ("False".into(), "AwsUnavailable".into()));
    assert_eq!(status["observedGeneration"], 1);
}

#[tokio::test]
async fn a_failed_assume_role_for_a_cluster_reaches_the_audit_log() {
    let w = world().await;
    let account = w.ready_account().await;
    w.create_cluster("acme-prod", json!({})).await;
    // The cached session is gone (e.g. expired) and the customer removed the trust.
    w.ctx.broker.evict(&account.uid().unwrap());
    w.aws.fail(
        "AssumeRole",
        error("AccessDenied", 403, "AssumeRole"),
        usize::MAX,
    );
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status).1, "AccountNotReady");
    let audit = w.audit(&account.uid().unwrap()).await;
    assert!(
        find(&audit, "AssumeRole")
            .iter()
            .any(|r| r.outcome != "success" && r.cluster.as_deref() == Some("acme-prod")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn customer_side_inventory_problems_say_what_to_fix() {
    let w = world().await;
    w.ready_account().await;
    w.create_cluster("acme-prod", json!({"clusterName": "missing"}))
        .await;
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status).1, "ClusterNotFound");
    assert_eq!(
        condition(&status, "InventoryCollected").1,
        "ClusterNotFound"
    );

    w.create_cluster("acme-prod-2", json!({})).await;
    w.aws.fail(
        "DescribeNodegroup",
        error("AccessDeniedException", 403, "DescribeNodegroup"),
        usize::MAX,
    );
    let result = w.reconcile_cluster("acme-prod-2").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    let (_, reason, message) = condition(&w.cluster_status("acme-prod-2").await, "Ready");
    assert_eq!(reason, "AccessDenied");
    assert!(message.contains("onboarding-template"), "{message}");
}

#[tokio::test]
async fn account_reference_problems() {
    let w = world().await;
    // No account yet.
    w.create_cluster("acme-prod", json!({})).await;
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    assert_eq!(
        ready(&w.cluster_status("acme-prod").await).1,
        "AccountNotFound"
    );
    assert_eq!(
        condition(&w.cluster_status("acme-prod").await, "AccountResolved").1,
        "AccountNotFound"
    );

    // Another namespace.
    w.create_cluster(
        "elsewhere",
        json!({"accountRef": {"name": "acme", "namespace": "other"}}),
    )
    .await;
    let result = w.reconcile_cluster("elsewhere").await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(
        ready(&w.cluster_status("elsewhere").await).1,
        "CrossNamespaceReference"
    );

    // An account that is not Ready yet (its role does not trust the ExternalId).
    w.create_account("acme", json!({})).await;
    let _ = w.reconcile_account("acme").await;
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    let (_, reason, message) = condition(&w.cluster_status("acme-prod").await, "Ready");
    assert_eq!(reason, "AccountNotReady");
    assert!(message.contains("AssumeRoleDenied"), "{message}");

    // A mode above the account's, and a region the account does not list.
    let external_id = w.account_status("acme").await["externalId"]
        .as_str()
        .unwrap()
        .to_string();
    w.aws.add_role(ROLE, &external_id);
    w.reconcile_account("acme").await.unwrap();
    w.create_cluster(
        "too-much",
        json!({"mode": "Automated", "region": "eu-west-1"}),
    )
    .await;
    let result = w.reconcile_cluster("too-much").await;
    assert_eq!(result.unwrap(), Action::await_change());
    let (_, reason, message) = condition(&w.cluster_status("too-much").await, "Ready");
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("eu-west-1") && message.contains("exceeds"),
        "{message}"
    );

    // An account being deleted.
    let mut account = w.accounts().get("acme").await.unwrap();
    account
        .finalizers_mut()
        .push("example.com/hold".to_string());
    w.accounts()
        .replace("acme", &PostParams::default(), &account)
        .await
        .unwrap();
    w.accounts()
        .delete("acme", &DeleteParams::default())
        .await
        .unwrap();
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(
        ready(&w.cluster_status("acme-prod").await).1,
        "AccountDeleting"
    );
}

#[tokio::test]
async fn invalid_cluster_spec_waits_for_a_fix() {
    let w = world().await;
    w.server
        .seed(
            json!({"apiVersion": "crossguard.dev/v1alpha1", "kind": "ManagedCluster",
            "metadata": {"name": "bad", "namespace": NS, "uid": "uid-mc-bad", "generation": 1},
            "spec": {"accountRef": {"name": "acme"}, "region": "mars-1", "clusterName": CLUSTER,
                "analysisInterval": "15m"}}),
        )
        .unwrap();
    let result = w.reconcile_cluster("bad").await;
    assert_eq!(result.unwrap(), Action::await_change());
    let (_, reason, message) = condition(&w.cluster_status("bad").await, "Ready");
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("mars-1"), "{message}");
    assert!(w.aws.calls().is_empty());
}

#[tokio::test]
async fn an_unreachable_or_refusing_customer_cluster_fails_the_analysis_stage() {
    let w = world().await;
    w.ready_account().await;
    // A closed port: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    w.create_cluster("acme-prod", json!({"apiEndpoint": {"url": url}}))
        .await;
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status).1, "ClusterUnreachable");
    assert_eq!(condition(&status, "Analysed").1, "ClusterUnreachable");
    assert_eq!(condition(&status, "InventoryCollected").0, "True");

    w.create_cluster("acme-prod-2", json!({})).await;
    w.customer
        .inject_failure(Some("GET"), "/api/v1/nodes", 403, usize::MAX);
    let result = w.reconcile_cluster("acme-prod-2").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    let (_, reason, message) = condition(&w.cluster_status("acme-prod-2").await, "Ready");
    assert_eq!(reason, "ClusterAccessDenied");
    assert!(message.contains("onboarding-rbac"), "{message}");
}

#[tokio::test]
async fn an_unwritable_store_fails_the_analysis_with_backoff() {
    let w = world().await;
    w.ready_account().await;
    w.create_cluster("acme-prod", json!({})).await;
    // Replace the store root by a plain file: every write fails.
    let root = w._dir.path().to_path_buf();
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(category(&result), "StoreUnavailable");
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status).1, "StoreUnavailable");
    assert!(status["reportRef"].is_null());
    std::fs::remove_file(&root).unwrap();
}

#[tokio::test]
async fn read_only_with_an_action_left_pending_says_so() {
    let w = world().await;
    w.ready_account().await;
    w.create_cluster("acme-prod", json!({})).await;
    w.reconcile_cluster("acme-prod").await.unwrap();
    let pending = json!({"status": {"pendingAction": {"startedAt": "2026-01-01T00:00:00Z",
        "phase": "Draining", "node": "ip-i-0000000000000001",
        "action": "autoscaling:TerminateInstanceInAutoScalingGroup"}}});
    w.clusters()
        .patch_status("acme-prod", &PatchParams::default(), &Patch::Merge(pending))
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(16 * 60));
    w.reconcile_cluster("acme-prod").await.unwrap();
    let (state, reason, message) = condition(&w.cluster_status("acme-prod").await, "Automation");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("False", "ActionLeftPending")
    );
    assert!(message.contains("ip-i-0000000000000001"), "{message}");
    assert!(w.aws.mutating_calls().is_empty());
}

#[tokio::test]
async fn automated_dry_run_plans_and_calls_nothing_mutating() {
    let w = world().await;
    w.create_account("acme", json!({"mode": "Automated"})).await;
    let _ = w.reconcile_account("acme").await;
    let external_id = w.account_status("acme").await["externalId"]
        .as_str()
        .unwrap()
        .to_string();
    w.aws.add_role(ROLE, &external_id);
    w.reconcile_account("acme").await.unwrap();
    w.create_cluster("acme-prod", json!({"mode": "Automated"}))
        .await;
    w.reconcile_cluster("acme-prod").await.unwrap();
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status).1, "Observed");
    let (state, reason, _) = condition(&status, "Automation");
    assert_eq!((state.as_str(), reason.as_str()), ("True", "DryRun"));
    assert!(w.aws.mutating_calls().is_empty());
}

#[tokio::test]
async fn metrics_count_each_outcome_by_its_category() {
    let w = world().await;
    w.create_cluster("acme-prod", json!({})).await;
    let _ = w.reconcile_cluster("acme-prod").await;
    let text = w.ctx.metrics.encode();
    assert!(
        text.contains(
            r#"crossguard_reconciles_total{kind="ManagedCluster",outcome="AccountNotFound"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_finalizer_race_with_a_stale_cache_is_retried_not_failed() {
    let w = world().await;
    w.create_account("acme", json!({"suspend": true})).await;
    // The watch cache still holds the object as created, without the finalizer that an
    // earlier reconcile already added: adding it again fails the API server's patch test.
    let stale = w.accounts().get("acme").await.unwrap();
    customer_account::reconcile(Arc::new(stale.clone()), w.ctx.clone())
        .await
        .unwrap();
    assert!(
        !w.accounts()
            .get("acme")
            .await
            .unwrap()
            .finalizers()
            .is_empty()
    );
    let result = customer_account::reconcile(Arc::new(stale), w.ctx.clone()).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(1)));
    let text = w.ctx.metrics.encode();
    assert!(
        text.contains(
            r#"crossguard_reconciles_total{kind="CustomerAccount",outcome="conflict"} 1"#
        ),
        "{text}"
    );
    assert!(!text.contains("FinalizerFailed"), "{text}");
}

#[tokio::test]
async fn a_cluster_of_an_unreadable_account_names_it_without_reading_it_whole() {
    let w = world().await;
    // Stored around the schema, as an older CRD could leave it: an integer duration.
    w.server
        .seed(
            json!({"apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": "acme", "namespace": NS, "uid": "uid-unreadable"},
            "spec": {"accountId": ACCOUNT_ID, "roleArn": ROLE, "regions": [REGION],
                "sessionDuration": 30},
            "status": {"externalId": "CANARYEXTERNALID0123456789abcdefghijklmnop"}}),
        )
        .unwrap();
    w.create_cluster("acme-prod", json!({})).await;
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    let (_, reason, message) = condition(&w.cluster_status("acme-prod").await, "Ready");
    assert_eq!(reason, "AccountNotReady");
    assert!(message.contains("cannot be read"), "{message}");
    assert!(
        message.contains("sessionDuration") || message.contains("integer"),
        "{message}"
    );
    assert!(!message.contains("CANARYEXTERNALID"), "{message}");
    assert!(w.aws.calls().is_empty());
}

#[tokio::test]
async fn endpoint_problems_fail_the_analysis_stage_with_what_to_set() {
    let w = world().await;
    w.ready_account().await;
    // EKS reports no endpoint and none is configured.
    w.aws.with_world(ACCOUNT_ID, REGION, |world| {
        world.cluster_mut(CLUSTER).endpoint = None;
    });
    w.create_cluster("acme-prod", json!({})).await;
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    let (_, reason, message) = condition(&w.cluster_status("acme-prod").await, "Analysed");
    assert_eq!(reason, "NoEndpoint");
    assert!(message.contains("spec.apiEndpoint"), "{message}");

    // A configured endpoint whose CA bundle is not base64.
    w.create_cluster(
        "acme-prod-2",
        json!({"apiEndpoint": {"url": w.customer.url(), "caBundle": "not base64!"}}),
    )
    .await;
    let result = w.reconcile_cluster("acme-prod-2").await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(managed_cluster::WAIT_RETRY)
    );
    assert_eq!(
        ready(&w.cluster_status("acme-prod-2").await).1,
        "InvalidEndpoint"
    );
}

#[tokio::test]
async fn a_failed_status_read_backs_off_before_any_call() {
    let w = world().await;
    w.ready_account().await;
    w.create_cluster("acme-prod", json!({})).await;
    w.aws.clear_calls();
    w.server
        .inject_failure(Some("GET"), "managedclusters/acme-prod/status", 500, 1);
    let result = w.reconcile_cluster("acme-prod").await;
    assert_eq!(category(&result), "KubernetesGetStatusFailed");
    assert!(w.aws.calls().is_empty());
}

#[tokio::test]
async fn deleting_a_cluster_forgets_it_and_leaves_the_account_alone() {
    let w = world().await;
    let account = w.ready_account().await;
    w.create_cluster("acme-prod", json!({})).await;
    w.reconcile_cluster("acme-prod").await.unwrap();
    w.clusters()
        .delete("acme-prod", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = w.clusters().get("acme-prod").await.unwrap();
    let result = managed_cluster::reconcile(Arc::new(deleting), w.ctx.clone()).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert!(w.clusters().get_opt("acme-prod").await.unwrap().is_none());
    assert!(w.aws.mutating_calls().is_empty());
    assert!(
        !w.ctx
            .store
            .keys(&account.uid().unwrap())
            .await
            .unwrap()
            .is_empty(),
        "the account's data stays until the account goes"
    );
}

#[tokio::test]
async fn a_failed_erasure_keeps_the_finalizer_and_says_why() {
    let w = world().await;
    w.ready_account().await;
    w.accounts()
        .delete("acme", &DeleteParams::default())
        .await
        .unwrap();
    // The store cannot be listed: erasure must not pretend it happened.
    let root = w._dir.path().to_path_buf();
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    let deleting = w.accounts().get("acme").await.unwrap();
    let result = customer_account::reconcile(Arc::new(deleting), w.ctx.clone()).await;
    std::fs::remove_file(&root).unwrap();
    assert_eq!(category(&result), "ErasureFailed");
    let account = w.accounts().get("acme").await.unwrap();
    assert!(!account.finalizers().is_empty(), "the finalizer stays");
    assert_eq!(ready(&account_status_of(&account)).1, "ErasureFailed");
}

/// `spec.scaleDownProfile` reaches the analysis: a kube-system pod without a
/// PodDisruptionBudget keeps its node under cluster-autoscaler's rules, not under
/// Karpenter's, and each report says which rules it applied.
#[tokio::test]
async fn the_cluster_chooses_its_scale_down_profile() {
    let w = world().await;
    w.ready_account().await;
    w.customer
        .seed(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "coredns-0", "namespace": "kube-system",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "coredns-1", "uid": "rs-dns", "controller": true}]},
            "spec": {"nodeName": "ip-i-0000000000000002", "containers": [{"name": "dns", "image": "dns",
                "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}}}]},
            "status": {"phase": "Running"}}))
        .expect("pod");
    w.create_cluster("by-ca", json!({})).await;
    w.create_cluster("by-karpenter", json!({"scaleDownProfile": "Karpenter"}))
        .await;
    let mut reports = Vec::new();
    for name in ["by-ca", "by-karpenter"] {
        w.reconcile_cluster(name).await.expect("observed");
        let key = w.cluster_status(name).await["reportRef"]
            .as_str()
            .expect("reportRef")
            .to_string();
        // reportRef is the store location followed by the key.
        let key = &key[key.find("tenants/").expect("a tenant key")..];
        let report: serde_json::Value =
            serde_json::from_slice(&w.ctx.store.get(key).await.unwrap()).unwrap();
        reports.push(report);
    }
    assert_eq!(reports[0]["scaleDownProfile"], "cluster-autoscaler");
    assert_eq!(reports[1]["scaleDownProfile"], "karpenter");
    let text = |r: &serde_json::Value| r.to_string();
    assert!(
        text(&reports[0]).contains("kube-system-pod-without-pdb"),
        "cluster-autoscaler's rules keep the node of a kube-system pod without a PDB: {}",
        reports[0]
    );
    assert!(
        !text(&reports[1]).contains("kube-system-pod-without-pdb"),
        "Karpenter's do not"
    );
}

/// The report stored by the last analysis of ManagedCluster `name`.
async fn stored_report(w: &World, name: &str) -> serde_json::Value {
    let key = w.cluster_status(name).await["reportRef"]
        .as_str()
        .expect("reportRef")
        .to_string();
    let key = &key[key.find("tenants/").expect("a tenant key")..];
    serde_json::from_slice(&w.ctx.store.get(key).await.unwrap()).unwrap()
}

/// The billing reads (spot prices, Reserved Instances, Savings Plans and their rates) are
/// made with the customer session, audited, and priced into the report.
#[tokio::test]
async fn spot_prices_and_commitments_are_read_audited_and_priced() {
    use crossguard::aws::{ReservedInstance, SavingsPlan, SavingsPlanRate, SpotPrice};
    use crossguard::clock::Clock;
    let w = world().await;
    let account = w.ready_account().await;
    w.customer
        .seed(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "ip-spot", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"node.kubernetes.io/instance-type": "m5.large", "eks.amazonaws.com/nodegroup": "spot-ng",
                    "eks.amazonaws.com/capacityType": "SPOT", "topology.kubernetes.io/zone": "us-east-1a"}},
            "spec": {"providerID": "aws:///us-east-1a/i-0000000000000009"},
            "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"}}}))
        .expect("spot node");
    let now = w.clock.now();
    let days = |d: i64| now + jiff::SignedDuration::from_hours(24 * d);
    w.aws.put_spot_price(
        ACCOUNT_ID,
        REGION,
        SpotPrice {
            instance_type: "m5.large".into(),
            availability_zone: "us-east-1a".into(),
            product_description: "Linux/UNIX".into(),
            usd_per_hour: 0.031,
            timestamp: days(-1),
        },
    );
    w.aws.put_reserved_instance(
        ACCOUNT_ID,
        REGION,
        ReservedInstance {
            id: "ri-1".into(),
            instance_type: "m5.large".into(),
            availability_zone: Some("us-east-1a".into()),
            instance_count: 1,
            product_description: "Linux/UNIX".into(),
            tenancy: "default".into(),
            state: "active".into(),
            start: days(-10),
            end: days(355),
            duration_seconds: 31_536_000,
            offering_class: "standard".into(),
            offering_type: "All Upfront".into(),
            fixed_price: 438.0, // $0.05/h over 8760 hours
            usage_price: 0.0,
            recurring_hourly: 0.0,
        },
    );
    w.aws.put_savings_plan(
        ACCOUNT_ID,
        SavingsPlan {
            id: "sp-1".into(),
            arn: "arn:aws:savingsplans::111111111111:savingsplan/sp-1".into(),
            plan_type: "Compute".into(),
            state: "active".into(),
            region: None,
            ec2_instance_family: None,
            commitment_per_hour: 0.1,
            start: days(-10),
            end: days(355),
            payment_option: "No Upfront".into(),
        },
        vec![SavingsPlanRate {
            savings_plan_id: "sp-1".into(),
            instance_type: "m5.large".into(),
            region: REGION.into(),
            product_description: "Linux/UNIX".into(),
            usd_per_hour: 0.06,
        }],
    );
    w.create_cluster("acme-prod", json!({})).await;
    w.reconcile_cluster("acme-prod").await.expect("observed");
    let report = stored_report(&w, "acme-prod").await;
    let node = |name: &str| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == name)
            .unwrap()
            .clone()
    };
    let spot = node("ip-spot");
    assert_eq!(spot["monthlyCost"], 22.63, "{spot}"); // 0.031 × 730
    assert!(
        spot["priceBasis"]
            .as_str()
            .unwrap()
            .contains("spot price history, us-east-1a"),
        "{spot}"
    );
    // The RI takes the first on-demand node; the plan's $0.10/h covers the second in full
    // ($0.06/h) and two thirds of the third.
    let first = node("ip-i-0000000000000000");
    assert_eq!(first["commitment"]["coveredBy"][0]["commitment"], "ri-1");
    assert_eq!(first["monthlyCost"], 36.5); // 0.05 × 730
    let third = node("ip-i-0000000000000002");
    assert_eq!(third["commitment"]["uncoveredFraction"], 0.3333, "{third}");
    let lines = report["commitments"]["commitments"].as_array().unwrap();
    let sp = lines.iter().find(|l| l["id"] == "sp-1").unwrap();
    assert_eq!(sp["utilizationPercent"], 100.0, "{sp}");
    assert_eq!(sp["daysToExpiry"], 355);
    let audit = w.audit(&account.uid().unwrap()).await;
    for op in [
        "DescribeSpotPriceHistory",
        "DescribeReservedInstances",
        "DescribeSavingsPlans",
        "DescribeSavingsPlanRates",
    ] {
        assert_eq!(find(&audit, op).len(), 1, "{op} audited once: {audit:?}");
    }
}

/// A denied or failed billing read never fails the reconcile: the analysis falls back to
/// the configured spot discount and leaves the commitments out, and says so.
#[tokio::test]
async fn failed_billing_reads_leave_the_reconcile_ready_and_the_report_says_why() {
    use crossguard::aws::AwsErrorKind;
    let w = world().await;
    w.ready_account().await;
    w.aws
        .fail("DescribeSpotPriceHistory", AwsErrorKind::AccessDenied, 1);
    w.aws
        .fail("DescribeReservedInstances", AwsErrorKind::Throttled, 1);
    w.aws
        .fail("DescribeSavingsPlans", AwsErrorKind::AccessDenied, 1);
    w.create_cluster("acme-prod", json!({})).await;
    w.reconcile_cluster("acme-prod").await.expect("observed");
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status), ("True".into(), "Observed".into()));
    assert_eq!(condition(&status, "Analysed").0, "True");
    let report = stored_report(&w, "acme-prod").await;
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("the spot price history was unavailable (ec2:DescribeSpotPriceHistory failed (UnauthorizedOperation)"),
        "{notes}"
    );
    let unavailable = report["commitments"]["unavailable"].as_array().unwrap();
    assert_eq!(unavailable.len(), 2, "{unavailable:?}");
    assert!(
        unavailable[0]
            .as_str()
            .unwrap()
            .contains("DescribeReservedInstances")
    );
    assert!(
        unavailable[1]
            .as_str()
            .unwrap()
            .contains("DescribeSavingsPlans")
    );
}

#[tokio::test]
async fn a_history_append_that_fails_is_an_event_not_a_failed_analysis() {
    let w = world().await;
    let account = w.ready_account().await;
    let uid = account.uid().unwrap();
    w.create_cluster("acme-prod", json!({})).await;
    // A damaged newest segment: the append cannot read the previous point.
    w.ctx
        .store
        .put_named(
            &uid,
            "history/acme/acme-prod/29990101T000000Z.jsonl",
            b"not a point\n".to_vec(),
        )
        .await
        .unwrap();
    let result = w.reconcile_cluster("acme-prod").await.expect("observed");
    assert_eq!(result, Action::requeue(Duration::from_secs(15 * 60)));
    let status = w.cluster_status("acme-prod").await;
    assert_eq!(ready(&status), ("True".into(), "Observed".into()));
    assert_eq!(condition(&status, "Analysed").0, "True");
    let events = w
        .server
        .list_objects("events.k8s.io/v1", "events", Some(NS));
    let event = events
        .iter()
        .find(|e| e["reason"] == "HistoryNotRecorded")
        .unwrap_or_else(|| panic!("no HistoryNotRecorded Event: {events:?}"));
    assert_eq!(event["type"], "Warning");
    assert!(
        event["note"]
            .as_str()
            .is_some_and(|n| n.contains("29990101T000000Z.jsonl is malformed")),
        "{event}"
    );
    // Without the damage the next run appends its point (the failed one appended none).
    w.ctx
        .store
        .delete_named(&uid, "history/acme/acme-prod/29990101T000000Z.jsonl")
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(16 * 60));
    w.reconcile_cluster("acme-prod").await.expect("observed");
    let points =
        crossguard::history::read(&w.ctx.store, &uid, NS, "acme-prod", jiff::Timestamp::MIN)
            .await
            .unwrap();
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(
        points[0].at,
        crossguard::clock::Clock::now(w.clock.as_ref())
    );
}
