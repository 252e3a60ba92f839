//! History end to end: the real `crossguard` binary reconciles the examples against the
//! fake API server and the AWS emulator, appends a point per analysis to the cluster's
//! (encrypted) history, and `crossguard history` prints it with the operator's identity:
//! the point's figures are the stored report's; automation's removals show as realised
//! savings; unknown clusters, empty ranges and bad `--since` values are clear errors.

mod support;

use std::process::Command;
use std::time::Duration;

use kube::Api;
use serde_json::{Value, json};

use crossguard::api::ManagedCluster;
use support::{Env, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

/// `crossguard history` against the operator's file store, with the test's kubeconfig
/// (the local key Secret and the ManagedCluster are read through it).
fn history(env: &Env, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .arg("history")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", &env.kubeconfig)
        .env(
            "CROSSGUARD_STORE_URL",
            format!("file://{}", env.dir.path().join("store").display()),
        )
        .output()
        .expect("crossguard history")
}

fn history_json(env: &Env) -> Option<Vec<Value>> {
    let out = history(env, &["-n", "acme", "--cluster", "acme-prod", "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("history -o json is JSON"))
}

async fn cluster(env: &Env) -> ManagedCluster {
    let api: Api<ManagedCluster> = Api::namespaced(env.client().await, "acme");
    api.get("acme-prod").await.expect("get ManagedCluster")
}

/// The report `status.reportRef` names, decrypted (`store-get`).
fn report_of(mc: &ManagedCluster) -> Value {
    let reference = mc.status.as_ref().unwrap().report_ref.clone().unwrap();
    let path = reference.strip_prefix("file://").unwrap();
    serde_json::from_str(&support::read_stored(std::path::Path::new(path))).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_analysis_appends_the_reports_figures_and_the_cli_prints_them() {
    let env = Env::start().await;
    env.apply_examples();
    let mut operator = env.operator(&[]);
    let points = wait_for("a history point", TIMEOUT, || async {
        history_json(&env).filter(|p| !p.is_empty())
    })
    .await;
    let mc = cluster(&env).await;
    let report = report_of(&mc);
    let p = points.last().unwrap();
    assert_eq!(p["monthlyCost"], report["currentMonthlyCost"], "{p}");
    for category in ["consolidation", "rightsizing", "spot"] {
        assert_eq!(
            p["potentialSavings"][category], report["savings"][category],
            "{category}: {p}"
        );
    }
    assert_eq!(
        p["nodes"].as_u64(),
        Some(report["nodes"].as_array().unwrap().len() as u64)
    );
    assert_eq!(p["unpricedNodes"], report["unpricedNodes"]);
    assert_eq!(p["priceSource"], report["pricesSource"]);
    let cpu = report["utilization"]["cpuPercent"].as_f64().unwrap() / 100.0;
    assert!(
        (p["cpuRequestedRatio"].as_f64().unwrap() - cpu).abs() < 1e-12,
        "{p}"
    );
    assert_eq!(
        p["realisedSavings"], 0.0,
        "nothing automated in ReadOnly mode"
    );
    assert_eq!(
        (p["actions"].as_u64(), p["refusals"].as_u64()),
        (Some(0), Some(0))
    );

    // The history is sealed on disk, under the tenant's prefix.
    let uid = env.kubectl(&[
        "get",
        "customeraccount",
        "acme",
        "-n",
        "acme",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let dir = env
        .dir
        .path()
        .join("store/tenants")
        .join(uid.trim())
        .join("history/acme/acme-prod");
    let segments: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(segments.len(), 1, "{dir:?}");
    let raw = std::fs::read(segments[0].path()).unwrap();
    assert_eq!(&raw[..4], b"CGSE", "a sealed envelope");
    assert!(!String::from_utf8_lossy(&raw).contains("monthlyCost"));

    // Table and CSV carry the same point.
    let table = history(&env, &["-n", "acme", "--cluster", "acme-prod"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("History of ManagedCluster acme/acme-prod"),
        "{table}"
    );
    let cost = format!("{:.2}", p["monthlyCost"].as_f64().unwrap());
    assert!(table.lines().nth(2).unwrap().contains(&cost), "{table}");
    let csv = history(
        &env,
        &[
            "-n",
            "acme",
            "--cluster",
            "acme-prod",
            "-o",
            "csv",
            "--since",
            "1h",
        ],
    );
    assert!(csv.status.success(), "{}", stderr(&csv));
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(
        csv.starts_with("at,monthly_cost,potential_savings_consolidation,"),
        "{csv}"
    );
    assert!(csv.lines().nth(1).unwrap().contains(&cost), "{csv}");
    // --account-uid reads without resolving the cluster.
    let by_uid = history(
        &env,
        &[
            "-n",
            "acme",
            "--cluster",
            "acme-prod",
            "--account-uid",
            uid.trim(),
            "-o",
            "json",
        ],
    );
    assert!(by_uid.status.success(), "{}", stderr(&by_uid));

    // Clear errors, exit status 1.
    let unknown = history(&env, &["-n", "acme", "--cluster", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("ManagedCluster acme/nope not found"),
        "{}",
        stderr(&unknown)
    );
    let bad = history(
        &env,
        &["-n", "acme", "--cluster", "acme-prod", "--since", "lately"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("invalid --since \"lately\""),
        "{}",
        stderr(&bad)
    );
    let empty = history(
        &env,
        &[
            "-n",
            "acme",
            "--cluster",
            "acme-prod",
            "--since",
            "2999-01-01T00:00:00Z",
        ],
    );
    assert_eq!(empty.status.code(), Some(1));
    assert!(
        stderr(&empty).contains("no history for ManagedCluster acme/acme-prod"),
        "{}",
        stderr(&empty)
    );
    let format = history(
        &env,
        &["-n", "acme", "--cluster", "acme-prod", "-o", "yaml"],
    );
    assert_eq!(format.status.code(), Some(2), "clap refuses the format");

    // A second analysis appends a second point.
    support::patch_acme_prod(&env.kubeconfig, r#"{"spec":{"analysisInterval":"5m"}}"#);
    let more = wait_for("a second point", TIMEOUT, || async {
        history_json(&env).filter(|p| p.len() >= 2)
    })
    .await;
    assert!(
        more[0]["at"].as_str() < more[1]["at"].as_str(),
        "oldest first"
    );

    // Erasure removes the history with the tenant.
    env.kubectl(&[
        "delete",
        "customeraccount",
        "acme",
        "-n",
        "acme",
        "--wait=true",
    ]);
    let gone = history(
        &env,
        &[
            "-n",
            "acme",
            "--cluster",
            "acme-prod",
            "--account-uid",
            uid.trim(),
        ],
    );
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("no history"), "{}", stderr(&gone));
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
    operator.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_automation_removed_shows_as_realised_savings() {
    let env = Env::start().await;
    env.apply_examples();
    env.automate(json!({"dryRun": false, "drainTimeout": "1m",
        "disruptionBudget": {"maxNodesPerRun": 1, "maxNodesPerHour": 3, "minNodeAge": "1h"}}));
    let template = support::onboarding_template(&[
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
    ]);
    support::customer_deploys(&env.moto, env.dir.path(), &template);
    let mut operator = env.operator(&[]);
    // The point of the run that removed the node.
    let points = wait_for("a point with an action", TIMEOUT, || async {
        history_json(&env).filter(|p| p.iter().any(|p| p["actions"].as_u64() > Some(0)))
    })
    .await;
    let mc = cluster(&env).await;
    let done = mc
        .status
        .as_ref()
        .unwrap()
        .recent_actions
        .iter()
        .find(|a| a.outcome == "Succeeded" && !a.dry_run)
        .cloned()
        .expect("a node removed");
    let node = done.node.clone().unwrap();
    let acted = points
        .iter()
        .position(|p| p["actions"].as_u64() > Some(0))
        .unwrap();
    let p = &points[acted];
    assert_eq!(p["actions"], 1, "{p}");
    // Its price: the node's monthly cost in the reports of the runs before its removal.
    let reports: Vec<String> = std::fs::read_dir(env.dir.path().join("store/tenants"))
        .unwrap()
        .flatten()
        .flat_map(|t| {
            let mut files = Vec::new();
            support::files_under(&t.path().join("reports"), &mut files);
            files
        })
        .map(|f| support::read_stored(&f))
        .collect();
    let cost = reports
        .iter()
        .filter_map(|r| {
            let r: Value = serde_json::from_str(r).ok()?;
            r["consolidation"]["removableNodes"]
                .as_array()?
                .iter()
                .find(|n| n["node"] == node.as_str())
                .and_then(|n| n["monthlyCost"].as_f64())
        })
        .next()
        .expect("the removed node was removable in a report");
    assert!(cost > 0.0);
    assert!(
        (p["realisedSavings"].as_f64().unwrap() - cost).abs() < 1e-9,
        "{p} vs {cost}"
    );
    // Cumulative: every later point carries it on.
    for later in &points[acted..] {
        assert!(
            later["realisedSavings"].as_f64().unwrap() >= cost,
            "{later}"
        );
    }
    for earlier in &points[..acted] {
        assert_eq!(earlier["realisedSavings"], 0.0, "{earlier}");
    }
    operator.stop();
}
