//! Operator memory per analysis (`cargo bench --bench operator_memory`, or `make bench`).
//!
//! The real `crossguard run` binary (this build's, or the one named by
//! `CROSSGUARD_BENCH_OPERATOR`, to compare builds in one run) against the usual harness:
//! the fake management API server, moto behind the shim, and a fake customer API server
//! (in this process) holding a synthetic cluster from `crossguard::testing::synthetic`.
//! For each size it starts a fresh operator, applies the example CustomerAccount and
//! ManagedCluster, waits until the cluster is `Analysed`, and reads the operator's peak
//! resident set (`VmHWM` in `/proc/<pid>/status`): everything the process ever held at
//! once, snapshot read, upload and analysis included.
//!
//! Sizes: `CROSSGUARD_BENCH_CLUSTERS` as `NODESxPODS,…` (default `1000x30000,5000x150000`).
//! Prints a Markdown table for BENCHMARKS.md. Figures, not a test.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use crossguard::api::ManagedCluster;
use crossguard::testing::dump::snapshot_to_list;
use crossguard::testing::synthetic::{SyntheticSpec, generate};
use kube::Api;

/// `VmHWM` and `VmRSS` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn sizes() -> Vec<(usize, usize)> {
    let spec = std::env::var("CROSSGUARD_BENCH_CLUSTERS")
        .unwrap_or_else(|_| "1000x30000,5000x150000".into());
    spec.split(',')
        .map(|s| {
            let (n, p) = s
                .split_once('x')
                .expect("CROSSGUARD_BENCH_CLUSTERS: NODESxPODS,…");
            (n.trim().parse().unwrap(), p.trim().parse().unwrap())
        })
        .collect()
}

struct Row {
    nodes: usize,
    pods: usize,
    snapshot_mib: f64,
    idle_mib: f64,
    peak_mib: f64,
    seconds: f64,
}

async fn measure(nodes: usize, pods: usize) -> Row {
    let env = support::Env::start().await;
    let cluster = generate(&SyntheticSpec {
        nodes,
        pods,
        seed: 1,
        ..Default::default()
    });
    let list = snapshot_to_list(&cluster.snapshot);
    drop(cluster);
    for item in list["items"].as_array().expect("items") {
        env.customer.seed(item.clone()).expect("seed");
    }
    drop(list);
    env.customer.clear_requests();

    // Allocator settings given to the bench reach the operator too (e.g. MALLOC_ARENA_MAX).
    let malloc: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MALLOC_"))
        .collect();
    // One replica, no leader election: the fake API servers share this process, and
    // while the customer's serves 150,000 pods a Lease renewal can be answered too late.
    let mut operator_env: Vec<(&str, &str)> =
        vec![("RUST_LOG", "info"), ("CROSSGUARD_LEADER_ELECT", "false")];
    operator_env.extend(malloc.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut operator = match std::env::var("CROSSGUARD_BENCH_OPERATOR") {
        Ok(binary) => support::Operator::start_binary(
            std::path::Path::new(&binary),
            env.dir.path(),
            &env.kubeconfig,
            &env.moto.url,
            &operator_env,
        ),
        Err(_) => env.operator(&operator_env),
    };
    let pid = operator.pid();
    let crds = support::repo().join("crds");
    env.kubectl(&["apply", "--validate=false", "-f", crds.to_str().unwrap()]);
    // Started and idle: its watches are up.
    support::wait_for(
        "the operator to be ready",
        Duration::from_secs(60),
        || async { (support::http_status(&operator.http, "/readyz").0 == 200).then_some(()) },
    )
    .await;
    let (_, idle) = memory_kib(pid);
    let started = Instant::now();
    env.apply_examples();
    let clusters: Api<ManagedCluster> = Api::namespaced(env.client().await, "acme");
    support::wait_for(
        "ManagedCluster acme-prod to be Analysed",
        Duration::from_secs(1800),
        || async {
            let mc = clusters.get("acme-prod").await.ok()?;
            let analysed = mc.status?.conditions.iter().any(|c| {
                c.type_ == "Analysed" && c.status == crossguard::api::ConditionStatus::True
            });
            analysed.then_some(())
        },
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let (peak, _) = memory_kib(pid);
    let mut snapshot_bytes = 0;
    let mut files = Vec::new();
    support::files_under(&env.dir.path().join("store"), &mut files);
    for f in files
        .iter()
        .filter(|f| f.to_string_lossy().contains("/snapshots/"))
    {
        snapshot_bytes += std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    }
    operator.stop();
    Row {
        nodes,
        pods,
        snapshot_mib: snapshot_bytes as f64 / (1024.0 * 1024.0),
        idle_mib: idle as f64 / 1024.0,
        peak_mib: peak as f64 / 1024.0,
        seconds,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let binary = std::env::var("CROSSGUARD_BENCH_OPERATOR")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_crossguard").to_string());
    println!("## Operator memory per analysis");
    println!();
    println!("Operator: `{binary}`");
    println!();
    println!(
        "| nodes | pods | stored snapshot (MiB) | RSS idle (MiB) | peak RSS (MiB) | peak / snapshot | apply → Analysed (s) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (nodes, pods) in sizes() {
        let r = runtime.block_on(measure(nodes, pods));
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.2}× | {:.1} |",
            r.nodes,
            r.pods,
            r.snapshot_mib,
            r.idle_mib,
            r.peak_mib,
            r.peak_mib / r.snapshot_mib.max(f64::MIN_POSITIVE),
            r.seconds
        );
    }
}
