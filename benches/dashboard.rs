//! The dashboard's cost of drawing a year: a cluster page over 365 days of 15-minute
//! analyses (35,040 history points), rendered from points already read, against
//! serializing the same points as the history JSON endpoint does. Reading the history from
//! the store is the history module's and is not part of this figure.
//!
//! Run with `cargo bench --bench dashboard`; `CROSSGUARD_BENCH_REPS` sets the repetitions
//! (default 20). Prints the median and best of each and the page's size.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use crossguard::api::{ManagedCluster, ManagedClusterSpec};
use crossguard::dashboard::views::{self, ClusterPage};
use crossguard::history::HistoryPoint;

fn year() -> Vec<HistoryPoint> {
    let start: jiff::Timestamp = "2025-12-01T00:00:00Z".parse().unwrap();
    (0..35_040)
        .map(|i| {
            let f = i as f64;
            HistoryPoint {
                at: start + jiff::SignedDuration::from_secs(i * 900),
                monthly_cost: 12_000.0 + 1_500.0 * (f / 2_000.0).sin(),
                potential_savings: BTreeMap::from([
                    (
                        "consolidation".to_string(),
                        2_000.0 + 300.0 * (f / 700.0).cos(),
                    ),
                    ("rightsizing".to_string(), 800.0),
                    ("spot".to_string(), 1_200.0),
                ]),
                realised_savings: (f / 100.0).floor(),
                nodes: 40 + (i % 7) as u32,
                unpriced_nodes: 0,
                cpu_requested_ratio: 0.45,
                memory_requested_ratio: 0.38,
                actions: u32::from(i % 96 == 0),
                refusals: 0,
                price_source: "bundled on-demand list prices".into(),
            }
        })
        .collect()
}

fn stats(mut runs: Vec<Duration>) -> (Duration, Duration) {
    runs.sort();
    (runs[runs.len() / 2], runs[0])
}

fn main() {
    let reps: usize = std::env::var("CROSSGUARD_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let spec: ManagedClusterSpec = serde_json::from_value(serde_json::json!({
        "accountRef": {"name": "acme"}, "region": "eu-west-1", "clusterName": "prod",
    }))
    .unwrap();
    let mut cluster = ManagedCluster::new("acme-prod", spec);
    cluster.metadata.namespace = Some("acme".into());
    let points = year();
    let since = points[0].at;
    let now = points[points.len() - 1].at;

    let mut page_runs = Vec::new();
    let mut size = 0;
    for _ in 0..reps {
        let page = ClusterPage {
            cluster: &cluster,
            account: None,
            history: Ok(points.clone()),
            report: Ok(None),
            days: 365,
            since,
            now,
        };
        let t = Instant::now();
        let html = black_box(views::cluster("viewer", &page));
        page_runs.push(t.elapsed());
        size = html.len();
    }
    let mut json_runs = Vec::new();
    let mut json_size = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let body = black_box(serde_json::to_vec(&points).unwrap());
        json_runs.push(t.elapsed());
        json_size = body.len();
    }
    let (page_median, page_best) = stats(page_runs);
    let (json_median, json_best) = stats(json_runs);
    println!(
        "cluster page, 365 days, {} points: median {page_median:?}, best {page_best:?}, {size} bytes of HTML",
        points.len()
    );
    println!(
        "history JSON of the same points:  median {json_median:?}, best {json_best:?}, {json_size} bytes"
    );
    println!(
        "page / JSON (medians): {:.2}",
        page_median.as_secs_f64() / json_median.as_secs_f64()
    );
}
