//! The operator's read of a customer cluster streams: every listed page goes through the
//! sanitizer into the stored snapshot (uploaded in parts) and the analysis's lean input,
//! and nothing else is kept. These tests read a synthetic cluster from the in-process fake
//! API server, check that the stored snapshot is exactly what was read (sanitized), that
//! the lean input equals the conversion of that snapshot, and that a read which fails
//! half-way leaves nothing in the store.

use std::path::Path;

use crossguard::analysis::AnalysisInput;
use crossguard::audit::NoAudit;
use crossguard::cluster::reader::{self, PAGE_SIZE, ReadError};
use crossguard::cluster::snapshot::{ClusterSnapshot, SnapshotWriter};
use crossguard::sanitize::Sanitizer;
use crossguard::store::{Kind, PART_SIZE, S3Options, Store};
use crossguard::testing::dump::snapshot_to_list;
use crossguard::testing::synthetic::{SyntheticSpec, generate};
use serde_json::json;

const CANARY: &str = "canary-7f3a9c1e-never-stored";
const TENANT: &str = "uid-acme";

fn at() -> jiff::Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

/// A fake customer cluster holding a synthetic cluster of `pods` pods, one of whose
/// containers carries a secret in its environment, plus a Secret the reader must never
/// list.
async fn customer_cluster(pods: usize) -> (fake_apiserver::FakeApiServer, ClusterSnapshot) {
    let server = fake_apiserver::FakeApiServer::start().await.unwrap();
    let mut cluster = generate(&SyntheticSpec {
        nodes: pods / 30,
        pods,
        seed: 9,
        ..Default::default()
    });
    let container = &mut cluster.snapshot.pods[0].spec.as_mut().unwrap().containers[0];
    container.env = Some(vec![
        serde_json::from_value(json!({"name": "DB_PASSWORD", "value": CANARY})).unwrap(),
    ]);
    for item in snapshot_to_list(&cluster.snapshot)["items"]
        .as_array()
        .unwrap()
    {
        server.seed(item.clone()).unwrap();
    }
    server
        .seed(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default"},
            "stringData": {"password": CANARY}}))
        .unwrap();
    server.clear_requests();
    (server, cluster.snapshot)
}

fn client(server: &fake_apiserver::FakeApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

/// Read the cluster into a snapshot stored in `store`, keeping the lean input and (for
/// comparison) every object handed over.
async fn read(
    server: &fake_apiserver::FakeApiServer,
    store: &Store,
) -> (
    Result<usize, ReadError>,
    SnapshotWriter,
    AnalysisInput,
    ClusterSnapshot,
) {
    let upload = store
        .put_parts(TENANT, Kind::Snapshot, "acme", "prod", at())
        .await
        .unwrap();
    let mut snapshot = SnapshotWriter::new(upload, &at().to_string());
    let mut input = AnalysisInput {
        taken_at: at().to_string(),
        ..Default::default()
    };
    let mut handed = ClusterSnapshot {
        taken_at: at().to_string(),
        ..Default::default()
    };
    let read = reader::read_cluster(
        &client(server),
        &Sanitizer::default(),
        &NoAudit,
        &mut snapshot,
        &mut |o| {
            handed.keep(o.clone());
            input.keep(o);
        },
    )
    .await;
    (read, snapshot, input, handed)
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn the_stored_snapshot_is_what_was_read_in_pages_and_the_lean_input_its_conversion() {
    crossguard::install_crypto_provider();
    // About 2.5 KB per pod: a snapshot of several parts.
    let pods = 3 * PART_SIZE / 2_000;
    let (server, seeded) = customer_cluster(pods).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = Store::open(&url, &S3Options::default()).unwrap();

    let (read, snapshot, input, handed) = read(&server, &store).await;
    let objects = read.unwrap();
    assert!(
        snapshot.written() > 2 * PART_SIZE as u64,
        "{}",
        snapshot.written()
    );
    let key = snapshot.finish().await.unwrap();

    // Every object of the listed kinds, once; pods in pages of PAGE_SIZE.
    assert_eq!(handed.nodes.len(), seeded.nodes.len());
    assert_eq!(handed.pods.len(), seeded.pods.len());
    assert_eq!(handed.deployments.len(), seeded.deployments.len());
    assert_eq!(handed.replica_sets.len(), seeded.replica_sets.len());
    assert_eq!(handed.daemon_sets.len(), seeded.daemon_sets.len());
    let listed = handed.nodes.len()
        + handed.pods.len()
        + handed.deployments.len()
        + handed.replica_sets.len()
        + handed.stateful_sets.len()
        + handed.daemon_sets.len()
        + handed.jobs.len()
        + handed.cron_jobs.len()
        + handed.pod_disruption_budgets.len();
    assert_eq!(objects, listed);
    let pod_pages = server
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/pods")
        .count();
    assert_eq!(pod_pages, pods.div_ceil(PAGE_SIZE as usize));
    assert!(!server.requests().iter().any(|r| r.targets("secrets")));

    // The stored document is a ClusterSnapshot holding exactly what was handed over.
    let bytes = store.get(&key).await.unwrap();
    let stored: ClusterSnapshot = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        serde_json::to_value(&stored).unwrap(),
        serde_json::to_value(&handed).unwrap()
    );
    // Sanitized before it was stored or analysed.
    assert!(!String::from_utf8_lossy(&bytes).contains(CANARY));
    assert!(!format!("{input:?}").contains(CANARY));
    // The lean input is the conversion of the stored snapshot.
    assert_eq!(input, AnalysisInput::from(stored));
    // One object in the store, no staging file beside it.
    assert_eq!(store.keys(TENANT).await.unwrap(), [key]);
    assert_eq!(
        files_under(dir.path()).len(),
        1,
        "{:?}",
        files_under(dir.path())
    );
}

#[tokio::test]
async fn a_read_that_fails_half_way_leaves_nothing_in_the_store() {
    crossguard::install_crypto_provider();
    let (server, _) = customer_cluster(1_200).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = Store::open(&url, &S3Options::default()).unwrap();
    // Nodes, pods and workloads are read and written; then listing Jobs fails.
    server.inject_failure(Some("GET"), "/apis/batch/v1/jobs", 500, 1);

    let (read, snapshot, _, handed) = read(&server, &store).await;
    let err = read.unwrap_err();
    assert!(err.to_string().contains("listing jobs failed"), "{err}");
    assert!(!handed.pods.is_empty() && snapshot.written() > 0);
    snapshot.abort().await;
    assert_eq!(store.keys(TENANT).await.unwrap(), Vec::<String>::new());
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn erasure_removes_the_staging_file_of_an_upload_a_killed_operator_left() {
    crossguard::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = Store::open(&url, &S3Options::default()).unwrap();
    let mut upload = store
        .put_parts(TENANT, Kind::Snapshot, "acme", "prod", at())
        .await
        .unwrap();
    upload.write(CANARY.as_bytes());
    upload.ready().await.unwrap();
    // As a SIGKILL would: no abort, no drop.
    std::mem::forget(upload);
    let left = files_under(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    // The listing does not show it, so only the directory's removal erases it.
    assert_eq!(store.keys(TENANT).await.unwrap(), Vec::<String>::new());
    store.purge(TENANT).await.unwrap();
    // Only the deletion record (tenant, time, counts; no customer data) is left.
    assert_eq!(
        files_under(dir.path()),
        [format!("{}/erasures/{TENANT}.json", dir.path().display())]
    );
}
