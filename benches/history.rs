//! Cost and savings history (issue #16): one cluster's simulated year, 35,040 points 15
//! minutes apart (an injected clock), written into an encrypted `file://` store (local
//! key-encryption key, AES-256-GCM data key, as the operator's default), then timed:
//! reading the full year, the last 30 days, the newest point, and appending one point at
//! the end of a month (the largest read-modify-write a point costs).
//!
//! Run: `make bench-history` (or `cargo bench --bench history`). Figures go to
//! BENCHMARKS.md "History" by hand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossguard::clock::Clock as _;
use crossguard::history::{self, HistoryPoint};
use crossguard::store::keys::LocalKek;
use crossguard::store::{KeyPolicy, S3Options, Store};
use crossguard::testing::ManualClock;

const POINTS: u32 = 35_040;
const RUNS: usize = 7;

fn point(at: jiff::Timestamp, i: u32) -> HistoryPoint {
    // Figures of the shape a real analysis gives (cents, ratios, a dated price source).
    let wobble = f64::from(i % 97) * 0.37;
    HistoryPoint {
        at,
        monthly_cost: 18_250.44 + wobble,
        potential_savings: [
            ("consolidation".to_string(), 2_190.05 + wobble),
            ("rightsizing".to_string(), 730.0),
            ("spot".to_string(), 1_204.5 - wobble),
        ]
        .into(),
        realised_savings: f64::from(i / 2_000) * 70.08,
        nodes: 40 + i % 5,
        unpriced_nodes: u32::from(i.is_multiple_of(50)),
        cpu_requested_ratio: 0.41 + f64::from(i % 10) / 100.0,
        memory_requested_ratio: 0.57,
        actions: u32::from(i.is_multiple_of(200)),
        refusals: u32::from(i.is_multiple_of(300)),
        price_source: "bundled on-demand list prices (AWS Price List, 2026-11-01)".into(),
    }
}

/// Median and fastest of `RUNS` runs of `f`.
async fn time<F, Fut, T>(mut f: F) -> (Duration, Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = f().await;
        times.push(start.elapsed());
        last = Some(out);
    }
    times.sort();
    (times[RUNS / 2], times[0], last.expect("RUNS > 0"))
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = e.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&e.path())
        } else {
            meta.len()
        };
    }
    total
}

#[tokio::main]
async fn main() {
    crossguard::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let keys = [("bench".to_string(), LocalKek::random_key().unwrap())].into();
    let store = Store::open(
        &format!("file://{}", dir.path().display()),
        &S3Options::default(),
    )
    .unwrap()
    .with_encryption(
        Arc::new(LocalKek::new("bench", keys).unwrap()),
        KeyPolicy::default(),
    );
    let (tenant, ns, cluster) = ("uid-bench", "acme", "acme-prod");

    let clock = ManualClock::at(
        "2026-01-01T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second(),
    );
    let mut year = Vec::with_capacity(POINTS as usize);
    for i in 0..POINTS {
        year.push(point(clock.now(), i));
        clock.advance(Duration::from_secs(15 * 60));
    }
    // All but the last point in bulk; the last one (2026-12-31 23:45, the 2,976th of
    // December) through `append`, timed below on copies of the store's December segment.
    let (bulk, last) = year.split_at(year.len() - 1);
    let start = Instant::now();
    history::append_all(&store, tenant, ns, cluster, bulk)
        .await
        .unwrap();
    let written = start.elapsed();

    // Appending at the end of a month: read, open, extend, seal, write ~1 MB. Each run
    // appends to a fresh copy of December (the same size every time).
    let december = "history/acme/acme-prod/20270101T000000Z.jsonl";
    let full = store.get_named(tenant, december).await.unwrap().unwrap();
    let (append_median, append_fastest, ()) = time(|| {
        let (store, full, last) = (store.clone(), full.clone(), last[0].clone());
        async move {
            store.put_named(tenant, december, full).await.unwrap();
            history::append(&store, tenant, ns, cluster, &last)
                .await
                .unwrap();
        }
    })
    .await;

    let everything = jiff::Timestamp::MIN;
    let (year_median, year_fastest, got) =
        time(|| history::read(&store, tenant, ns, cluster, everything)).await;
    let got = got.unwrap();
    assert_eq!(got.len(), POINTS as usize, "the whole year reads back");
    // In order, as written (money to well within a cent: serde_json's default float
    // parsing may differ from the written f64 in the last bit).
    assert!(got.iter().zip(&year).all(|(a, b)| a.at == b.at
        && a.nodes == b.nodes
        && (a.monthly_cost - b.monthly_cost).abs() < 1e-6
        && (a.realised_savings - b.realised_savings).abs() < 1e-6));
    let month_ago = clock.now() - jiff::SignedDuration::from_hours(30 * 24);
    let (days_median, days_fastest, got30) =
        time(|| history::read(&store, tenant, ns, cluster, month_ago)).await;
    let got30 = got30.unwrap();
    let (latest_median, latest_fastest, newest) =
        time(|| history::latest(&store, tenant, ns, cluster)).await;
    assert_eq!(newest.unwrap().unwrap().at, year[year.len() - 1].at);

    let bytes = dir_bytes(&dir.path().join("tenants"));
    let segments = store.list_named(tenant, "history").await.unwrap().len();
    println!(
        "history bench: {POINTS} points (one cluster, one year at 15 minutes), encrypted file:// store"
    );
    println!(
        "  stored: {segments} segments, {:.1} MiB on disk ({:.0} bytes per point, sealed JSON lines); bulk write {:.2?}",
        bytes as f64 / 1_048_576.0,
        bytes as f64 / f64::from(POINTS),
        written
    );
    println!("  (median / fastest of {RUNS} runs)");
    println!(
        "  read the full year ({} points): {year_median:.2?} / {year_fastest:.2?}",
        POINTS
    );
    println!(
        "  read the last 30 days ({} points): {days_median:.2?} / {days_fastest:.2?}",
        got30.len()
    );
    println!("  newest point (latest): {latest_median:.2?} / {latest_fastest:.2?}");
    println!(
        "  append one point to a full month (2,975 -> 2,976 points): {append_median:.2?} / {append_fastest:.2?}"
    );
}
