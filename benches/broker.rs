//! Credential broker at scale, against the AWS emulator: 1,000 CustomerAccounts asked for
//! a session every 10 simulated seconds over a simulated 2 hours (an injectable clock, so
//! the run takes seconds, not hours). Prints AssumeRole calls per session lifetime, the
//! cache hit ratio, and the broker's memory per cached session.
//!
//! Run: `make bench` (or `cargo bench --bench broker` with CROSSGUARD_VENV set).

#[path = "../tests/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use crossguard::audit::{CallObserver, NoAudit};
use crossguard::aws::sdk::SdkFactory;
use crossguard::credentials::{Broker, SessionParams};
use crossguard::metrics::Metrics;
use crossguard::testing::ManualClock;
use futures::StreamExt;

/// Counts live heap bytes, to measure what the cache holds.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ACCOUNTS: usize = 1000;
const TICK: i64 = 10;
const HORIZON: i64 = 2 * 3600;

fn params(i: usize) -> SessionParams {
    let account = format!("{:012}", 100_000_000_000u64 + i as u64);
    SessionParams {
        uid: format!("uid-{i}"),
        namespace: "bench".into(),
        name: format!("account-{i}"),
        role_arn: format!("arn:aws:iam::{account}:role/crossguard-access"),
        account_id: account,
        external_id: format!("bench-external-id-{i:06}-0123456789abcdef"),
        duration: Duration::from_secs(3600),
        region: "us-east-1".into(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    crossguard::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = support::Moto::start(dir.path());
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "bench"))
        .load()
        .await;
    let metrics = Arc::new(Metrics::new());
    let start = jiff::Timestamp::now().as_second();
    let clock = ManualClock::at(start);
    let factory = Arc::new(SdkFactory::from_config(config, metrics.clone()));
    let broker = Arc::new(Broker::new(
        factory,
        clock.clone(),
        metrics.clone(),
        "crossguard-bench",
    ));
    let observer: Arc<dyn CallObserver> = Arc::new(NoAudit);
    let all: Vec<SessionParams> = (0..ACCOUNTS).map(params).collect();

    let mut lookups = 0usize;
    let wall = Instant::now();
    let mut t = 0;
    while t < HORIZON {
        clock.set(jiff::Timestamp::from_second(start + t).expect("valid time"));
        let results: Vec<_> = futures::stream::iter(all.iter())
            .map(|p| {
                let (broker, observer) = (broker.clone(), observer.clone());
                async move { broker.session(p, &observer).await.map(|_| ()) }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        lookups += results.len();
        assert!(
            results.iter().all(Result::is_ok),
            "every lookup must succeed"
        );
        t += TICK;
    }
    let elapsed = wall.elapsed();
    let held = broker.sessions_held();
    // What evicting every session frees is exactly what the cache held.
    let before = LIVE.load(Ordering::Relaxed);
    for p in &all {
        broker.evict(&p.uid);
    }
    let bytes_per_session = before.saturating_sub(LIVE.load(Ordering::Relaxed)) / ACCOUNTS;

    let text = metrics.encode();
    let metric = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let hits = metric("crossguard_session_cache_hits_total");
    let misses = metric("crossguard_session_cache_misses_total");
    let calls = moto.calls();
    let mut per_role: HashMap<String, usize> = HashMap::new();
    for c in calls.iter().filter(|c| c["action"] == "AssumeRole") {
        *per_role
            .entry(c["access_key_id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let assume_roles = metric("crossguard_assume_role_calls_total{outcome=\"success\"}");
    // Sessions refresh at 80% of their hour (48 min): within 2 h each account needs one
    // session starting at 0, 48 and 96 minutes.
    let lifetimes_per_account = (HORIZON as f64 / (0.8 * 3600.0)).ceil();
    println!(
        "broker benchmark: {ACCOUNTS} accounts, one lookup each every {TICK}s over {}h simulated",
        HORIZON / 3600
    );
    println!(
        "  wall time                         {:.1}s",
        elapsed.as_secs_f64()
    );
    println!("  lookups                           {lookups}");
    println!("  AssumeRole calls                  {assume_roles}");
    println!(
        "  AssumeRole per account            {:.2} (session lifetimes started per account: {lifetimes_per_account})",
        assume_roles / ACCOUNTS as f64
    );
    println!(
        "  AssumeRole per session lifetime   {:.3}",
        assume_roles / (ACCOUNTS as f64 * lifetimes_per_account)
    );
    println!(
        "  cache hit ratio                   {:.4} ({hits} hits, {misses} misses)",
        hits / (hits + misses)
    );
    println!(
        "  broker heap per cached session    {bytes_per_session} bytes (freed by evicting all {held})"
    );
}
