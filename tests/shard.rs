//! Two shards of the real binary (`--shard 0/2`, `--shard 1/2`) against one API server and
//! the AWS emulator: each reconciles only the CustomerAccounts labelled for it and their
//! ManagedClusters, an unlabelled account and its cluster get `Sharded=False NoShardOwner`
//! and `crossguard_unowned_objects`, and relabelling an account moves it (and its cluster)
//! to the other shard.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crossguard::api::{Condition, CustomerAccount, ManagedCluster};
use kube::{Api, Resource};
use support::{Env, kubectl, wait_for};

const TIMEOUT: Duration = Duration::from_secs(180);

/// An account and its cluster in namespace `name`, on the emulator's account and EKS
/// cluster, the cluster's API at the customer fake; `shard` is the label, if any.
fn tenant_yaml(name: &str, shard: Option<&str>, customer: &str) -> String {
    let labels = shard
        .map(|s| format!("\n  labels: {{crossguard.dev/shard: \"{s}\"}}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {name}}}
---
apiVersion: crossguard.dev/v1alpha1
kind: CustomerAccount
metadata:
  name: {name}
  namespace: {name}{labels}
spec:
  accountId: "111111111111"
  roleArn: arn:aws:iam::111111111111:role/crossguard-access
  regions: [us-east-1]
---
apiVersion: crossguard.dev/v1alpha1
kind: ManagedCluster
metadata: {{name: {name}-prod, namespace: {name}}}
spec:
  accountRef: {{name: {name}}}
  region: us-east-1
  clusterName: prod
  apiEndpoint: {{url: "{customer}"}}
"#
    )
}

fn sharded(conditions: Option<&Vec<Condition>>) -> Option<(bool, String, String)> {
    let c = conditions?.iter().find(|c| c.type_ == "Sharded")?;
    Some((c.is_true(), c.reason.clone(), c.message.clone()))
}

fn ready(conditions: Option<&Vec<Condition>>) -> bool {
    conditions
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.is_true())
}

/// Wait until account `name` says it is reconciled by shard `index` of 2, and is Ready.
async fn account_owned_by(client: &kube::Client, name: &str, index: u32) -> CustomerAccount {
    let api: Api<CustomerAccount> = Api::namespaced(client.clone(), name);
    let expected = format!("Reconciled by shard {index} of 2");
    wait_for(
        &format!("CustomerAccount {name} Ready under shard {index}"),
        TIMEOUT,
        || async {
            let a = api.get(name).await.ok()?;
            let status = a.status.as_ref()?;
            let (owned, reason, message) = sharded(Some(&status.conditions))?;
            (owned
                && reason == "ShardOwner"
                && message.contains(&expected)
                && ready(Some(&status.conditions)))
            .then_some(a)
        },
    )
    .await
}

/// Wait until cluster `<name>-prod` says it is reconciled by shard `index` of 2, and is
/// analysed and Ready.
async fn cluster_owned_by(client: &kube::Client, name: &str, index: u32) -> ManagedCluster {
    let api: Api<ManagedCluster> = Api::namespaced(client.clone(), name);
    let expected = format!("Reconciled by shard {index} of 2");
    let cluster = format!("{name}-prod");
    wait_for(
        &format!("ManagedCluster {cluster} analysed under shard {index}"),
        TIMEOUT,
        || async {
            let c = api.get(&cluster).await.ok()?;
            let status = c.status.as_ref()?;
            let (owned, _, message) = sharded(Some(&status.conditions))?;
            status.last_analysis_at.as_deref()?;
            (owned && message.contains(&expected) && ready(Some(&status.conditions))).then_some(c)
        },
    )
    .await
}

/// The message of `name`'s `Sharded=False NoShardOwner` condition, once it has one.
async fn unowned_message<K>(api: &Api<K>, name: &str) -> String
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    wait_for(&format!("{name} reported unowned"), TIMEOUT, || async {
        let obj = serde_json::to_value(api.get(name).await.ok()?).ok()?;
        let conditions: Vec<Condition> =
            serde_json::from_value(obj.pointer("/status/conditions")?.clone()).ok()?;
        let (owned, reason, message) = sharded(Some(&conditions))?;
        (!owned && reason == "NoShardOwner").then_some(message)
    })
    .await
}

/// Shard 0's `crossguard_unowned_objects` for accounts and clusters.
fn unowned_gauges(op: &support::Operator) -> (Option<String>, Option<String>) {
    (
        metric(op, r#"crossguard_unowned_objects{kind="CustomerAccount"}"#),
        metric(op, r#"crossguard_unowned_objects{kind="ManagedCluster"}"#),
    )
}

/// The value of `metric` (with labels, as printed) in `op`'s /metrics, if exported.
fn metric(op: &support::Operator, metric: &str) -> Option<String> {
    let (status, body) = support::http_status(&op.http, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{metric} ")).map(str::to_string))
}

/// Tenant (account UID) directories in a file store.
fn tenants(store: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(store.join("tenants"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// `reportingInstance` and reason of every Event about objects in namespace `ns`, but
/// `skip`.
fn event_reporters(kubeconfig: &Path, ns: &str, skip: &str) -> Vec<(String, String)> {
    let (ok, out, err) = kubectl(
        kubeconfig,
        &["get", "events.events.k8s.io", "-n", ns, "-o", "json"],
    );
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["regarding"]["name"] != skip)
        .map(|e| {
            (
                e["reportingInstance"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn lease_holder(kubeconfig: &Path, name: &str) -> Option<String> {
    let (ok, out, _) = kubectl(
        kubeconfig,
        &[
            "get",
            "lease",
            name,
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    (ok && !out.trim().is_empty()).then(|| out.trim().to_string())
}

/// Whether `log` shows that the shard saw ManagedCluster `<ns>-prod` and left it alone.
fn skipped(log: &str, ns: &str) -> bool {
    log.lines().any(|l| {
        l.contains("not reconciled here") && l.contains(&format!("namespace={ns} name={ns}-prod"))
    })
}

fn shard(env: &Env, index: u32, store: &Path) -> support::Operator {
    env.operator(&[
        ("CROSSGUARD_SHARD", &format!("{index}/2")),
        ("POD_NAME", &format!("shard-{index}")),
        (
            "CROSSGUARD_STORE_URL",
            &format!("file://{}", store.display()),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_split_the_fleet_report_the_unowned_and_follow_a_relabel() {
    let env = Env::start().await;
    env.kubectl(&[
        "apply",
        "--validate=false",
        "-f",
        support::repo().join("crds").to_str().unwrap(),
    ]);
    let customer = env.customer.url();
    let dir = env.dir.path();
    for (name, label) in [
        ("acme", Some("0")),
        ("globex", Some("1")),
        ("initech", None),
    ] {
        support::kubectl_apply_yaml(
            dir,
            &env.kubeconfig,
            &format!("{name}.yaml"),
            &tenant_yaml(name, label, &customer),
        );
    }
    // A cluster whose account does not exist belongs to shard 0 (to report it and to let
    // it go when deleted), whatever namespace it is in.
    support::kubectl_apply_yaml(
        dir,
        &env.kubeconfig,
        "ghost.yaml",
        r#"apiVersion: crossguard.dev/v1alpha1
kind: ManagedCluster
metadata: {name: ghost, namespace: globex}
spec:
  accountRef: {name: ghost}
  region: us-east-1
  clusterName: prod
"#,
    );
    let client = env.client().await;
    let stores: [PathBuf; 2] = [dir.join("store-0"), dir.join("store-1")];
    let op0 = shard(&env, 0, &stores[0]);
    let op1 = shard(&env, 1, &stores[1]);

    // Each shard reconciles its own account and cluster, under its own Lease.
    let acme = account_owned_by(&client, "acme", 0).await;
    let globex = account_owned_by(&client, "globex", 1).await;
    cluster_owned_by(&client, "acme", 0).await;
    cluster_owned_by(&client, "globex", 1).await;
    assert_eq!(
        lease_holder(&env.kubeconfig, "crossguard-leader").as_deref(),
        Some("shard-0")
    );
    assert_eq!(
        lease_holder(&env.kubeconfig, "crossguard-leader-shard-1").as_deref(),
        Some("shard-1")
    );

    let globex_clusters: Api<ManagedCluster> = Api::namespaced(client.clone(), "globex");
    wait_for("ghost reported by shard 0", TIMEOUT, || async {
        let c = globex_clusters.get("ghost").await.ok()?;
        let conditions = c.status.as_ref().map(|s| &s.conditions);
        let (owned, _, message) = sharded(conditions)?;
        let ready = conditions?.iter().find(|c| c.type_ == "Ready")?;
        (owned && message.contains("shard 0 of 2") && ready.reason == "AccountNotFound")
            .then_some(())
    })
    .await;

    // The unlabelled account and its cluster: reported by shard 0, touched by nobody else.
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), "initech");
    let clusters: Api<ManagedCluster> = Api::namespaced(client.clone(), "initech");
    let message = unowned_message(&accounts, "initech").await;
    assert!(
        message.contains("no crossguard.dev/shard label") && message.contains("fleet runs 2"),
        "{message}"
    );
    let message = unowned_message(&clusters, "initech-prod").await;
    assert!(
        message.contains("CustomerAccount initech, which no shard owns"),
        "{message}"
    );
    wait_for("the unowned gauges", TIMEOUT, || async {
        let one = Some("1".to_string());
        (unowned_gauges(&op0) == (one.clone(), one)).then_some(())
    })
    .await;
    assert_eq!(
        metric(
            &op1,
            r#"crossguard_unowned_objects{kind="CustomerAccount"}"#
        ),
        None,
        "only shard 0 reports unowned objects"
    );
    // Nothing but that condition was written: no finalizer, no Ready, no ExternalId Secret.
    let initech = accounts.get("initech").await.unwrap();
    assert!(
        initech.meta().finalizers.is_none(),
        "{:?}",
        initech.metadata
    );
    let status = initech.status.clone().unwrap();
    assert_eq!(
        status
            .conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect::<Vec<_>>(),
        ["Sharded"]
    );
    assert_eq!(status.external_id, None);
    let (found, _, _) = kubectl(
        &env.kubeconfig,
        &[
            "get",
            "secret",
            "crossguard-externalid-initech",
            "-n",
            "initech",
        ],
    );
    assert!(
        !found,
        "no shard generated an ExternalId for the unowned account"
    );
    let initech_prod = clusters.get("initech-prod").await.unwrap();
    assert!(initech_prod.meta().finalizers.is_none());

    // Each shard's work shows only in its own store, Events and log.
    let uid = |a: &CustomerAccount| a.meta().uid.clone().unwrap();
    assert_eq!(tenants(&stores[0]), [uid(&acme)]);
    assert_eq!(tenants(&stores[1]), [uid(&globex)]);
    for (ns, instance) in [
        ("acme", "shard-0"),
        ("globex", "shard-1"),
        ("initech", "shard-0"),
    ] {
        let reporters = event_reporters(&env.kubeconfig, ns, "ghost");
        assert!(!reporters.is_empty(), "events in {ns}");
        assert!(
            reporters.iter().all(|(who, _)| who == instance),
            "{ns}: {reporters:?}"
        );
    }
    assert!(
        event_reporters(&env.kubeconfig, "initech", "")
            .iter()
            .all(|(_, reason)| reason == "NoShardOwner")
    );
    // Each shard saw the other's cluster and the unowned one, and left them alone.
    let (log0, log1) = (op0.log_text(), op1.log_text());
    assert!(
        skipped(&log0, "globex") && !skipped(&log0, "acme"),
        "{log0}"
    );
    assert!(
        skipped(&log1, "acme") && !skipped(&log1, "globex"),
        "{log1}"
    );
    assert!(skipped(&log0, "initech") && skipped(&log1, "initech"));

    // Labelling the unowned account gives it and its cluster to shard 1; the report clears.
    label_moves(&env, &client, "initech", 1).await;
    wait_for("the unowned gauges back at 0", TIMEOUT, || async {
        let zero = Some("0".to_string());
        (unowned_gauges(&op0) == (zero.clone(), zero)).then_some(())
    })
    .await;

    // Relabelling an owned account moves it and its cluster from shard 0 to shard 1.
    label_moves(&env, &client, "acme", 1).await;
    assert!(
        tenants(&stores[1]).contains(&uid(&acme)),
        "shard 1 now stores acme's reports"
    );
    // ...and shard 0 now leaves acme's cluster alone.
    wait_for("shard 0 to skip acme-prod", TIMEOUT, || async {
        skipped(&op0.log_text(), "acme").then_some(())
    })
    .await;
    // Put back unchanged (a label set back after a mistake), it returns to shard 0 at once:
    // shard 0 forgot it when it left its watch, so its return triggers a reconcile.
    label_moves(&env, &client, "acme", 0).await;
    drop((op0, op1));
}

/// Label account `name` (in its own namespace) for `shard` and wait until it and its
/// cluster say that shard owns them.
async fn label_moves(env: &support::Env, client: &kube::Client, name: &str, shard: u32) {
    env.kubectl(&[
        "label",
        "--overwrite",
        "customeraccount",
        name,
        "-n",
        name,
        &format!("crossguard.dev/shard={shard}"),
    ]);
    account_owned_by(client, name, shard).await;
    cluster_owned_by(client, name, shard).await;
}

/// `crossguard run --shard` with a bad value stops before doing anything, saying what to
/// write instead.
#[test]
fn a_bad_shard_flag_is_refused_with_a_clear_error() {
    for (value, says) in [
        (
            "2/2",
            "the shard index counts from 0, so it must be below the shard count 2 (0 to 1)",
        ),
        ("x", "--shard must be N/M"),
        ("1/x", "count M \"x\" is not a whole number"),
        ("0/0", "the shard count must be 1 to 64"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossguard"))
            .args(["run", "--shard", value])
            .env_clear()
            .output()
            .expect("run crossguard");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(
            stderr.contains(says)
                && stderr.contains(&format!("invalid value '{value}' for '--shard")),
            "{value}: {stderr}"
        );
    }
    // The environment variable the chart could set is checked the same way.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .arg("run")
        .env_clear()
        .env("CROSSGUARD_SHARD", "3/2")
        .output()
        .expect("run crossguard");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("below the shard count 2"));
}
