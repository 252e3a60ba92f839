//! The cost of the store's client-side encryption and of the operator's zeroing allocator
//! on the path an analysis takes through the store (`cargo bench --bench store`, or
//! `make bench`); issue #15 asks for "under 5% on the store path at 5,000 nodes".
//!
//! On a synthetic 5,000-node / 150,000-pod cluster (`crossguard::testing::synthetic`):
//! 1. writing the snapshot (per-object writes of about 2.5 KiB each, as the snapshot writer
//!    does, with `ready()` between pages of 500 objects) and the report into a `file://`
//!    store, plaintext versus sealed under a tenant data key (AES-256-GCM, STREAM chunks
//!    of 64 KiB), and reading the report back;
//! 2. the whole store path of an analysis as far as it runs without a cluster: stream the
//!    dump into the lean input (parse, allow-list, redact), analyze, write snapshot and
//!    report — with the system allocator and a plaintext store (the baseline), with an
//!    encrypted store, and with an encrypted store and the zeroing allocator
//!    (`crossguard::alloc::ZeroOnFree`, what the operator binary runs with).
//!
//! Reading the cluster over HTTP is left out, so the path here is shorter than the
//! operator's and the ratios overstate the relative cost. Best of three rounds, the
//! variants alternating within each round. Prints Markdown for BENCHMARKS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossguard::alloc::ZeroOnFree;
use crossguard::analysis::{AnalysisInput, AnalysisSettings, PriceTable, analyze};
use crossguard::sanitize::Sanitizer;
use crossguard::store::keys::{Kek, LocalKek};
use crossguard::store::{KeyPolicy, Kind, S3Options, Store};
use crossguard::testing::dump;
use crossguard::testing::synthetic::{SyntheticSpec, generate};

/// The system allocator, or [`ZeroOnFree`] while `ZEROING` is set. Both hand out the
/// system allocator's blocks, so a block may be freed in the other mode than it was
/// allocated in.
struct Switchable;

static ZEROING: AtomicBool = AtomicBool::new(false);

// SAFETY: every call is forwarded to `System` or to `ZeroOnFree` (itself `System` plus
// zeroing before free) with the caller's arguments.
unsafe impl GlobalAlloc for Switchable {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; ZeroOnFree frees through System.
        unsafe {
            if ZEROING.load(Ordering::Relaxed) {
                ZeroOnFree.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; ZeroOnFree's realloc is GlobalAlloc's default
        // (allocate, copy, free the old block wiped), as in the operator.
        unsafe {
            if ZEROING.load(Ordering::Relaxed) {
                ZeroOnFree.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[global_allocator]
static ALLOC: Switchable = Switchable;

const TENANT: &str = "0b0c5d4e-bench-tenant";
/// Bytes per snapshot write: the synthetic dump's average object size.
const OBJECT: usize = 2_510;
/// Writes between `ready()` calls (the reader pages lists 500 objects at a time).
const PAGE: usize = 500;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn open(dir: &std::path::Path, encrypted: bool) -> Store {
    let store = Store::open(&format!("file://{}", dir.display()), &S3Options::default())
        .expect("a file:// store opens");
    if !encrypted {
        return store;
    }
    let kek: Arc<dyn Kek> = Arc::new(
        LocalKek::new(
            "bench",
            HashMap::from([(
                "bench".to_string(),
                LocalKek::random_key().expect("random KEK"),
            )]),
        )
        .expect("current KEK is present"),
    );
    store.with_encryption(kek, KeyPolicy::default())
}

/// Write `snapshot` as the snapshot writer does and `report` as one object; returns the
/// report's key.
async fn write(store: &Store, snapshot: &[u8], report: &[u8], at: jiff::Timestamp) -> String {
    let mut out = store
        .put_parts(TENANT, Kind::Snapshot, "bench", "prod", at)
        .await
        .expect("snapshot upload starts");
    for (i, object) in snapshot.chunks(OBJECT).enumerate() {
        out.write(object);
        if i % PAGE == PAGE - 1 {
            out.ready().await.expect("parts upload");
        }
    }
    out.finish().await.expect("snapshot completes");
    store
        .put(TENANT, Kind::Report, "bench", "prod", at, report.to_vec())
        .await
        .expect("report stored")
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Plain,
    Encrypted,
    EncryptedZeroing,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Plain => "system allocator, plaintext store (baseline)",
            Variant::Encrypted => "system allocator, encrypted store",
            Variant::EncryptedZeroing => {
                "zeroing allocator, encrypted store (the operator as shipped)"
            }
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let prices = PriceTable::bundled();
    let settings = AnalysisSettings::default();
    let sanitizer = Sanitizer::default();
    // STORE_BENCH_NODES=100 for a quick check that the benchmark runs; figures are at 5,000.
    let nodes: usize = std::env::var("STORE_BENCH_NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let spec = SyntheticSpec {
        nodes,
        pods: nodes * 30,
        seed: 1,
        ..Default::default()
    };
    let cluster = generate(&spec);
    let mut bytes = Vec::new();
    dump::write_snapshot_list(&cluster.snapshot, &mut bytes).expect("write to memory");
    drop(cluster);
    let file = tempfile::NamedTempFile::new().expect("temporary file");
    std::fs::write(file.path(), &bytes).expect("write the dump");
    let report = {
        let input =
            AnalysisInput::from_reader(std::fs::File::open(file.path()).expect("open"), &sanitizer)
                .expect("valid dump");
        serde_json::to_vec_pretty(&analyze(&input, &Default::default(), &prices, &settings))
            .expect("reports serialize")
    };
    println!("## Store encryption benchmark");
    println!();
    println!(
        "Synthetic cluster: {} nodes, {} pods (seed 1); snapshot written {:.1} MiB in {}-byte writes, report {:.1} KiB.",
        spec.nodes,
        spec.pods,
        bytes.len() as f64 / (1 << 20) as f64,
        OBJECT,
        report.len() as f64 / 1024.0
    );
    println!();

    let mut at = jiff::Timestamp::from_second(1_780_000_000).expect("valid time");
    let mut next = || {
        at += jiff::SignedDuration::from_secs(1);
        at
    };

    // 1: the store alone.
    let mut store_write = [Duration::MAX; 2];
    let mut store_read = [Duration::MAX; 2];
    for _ in 0..3 {
        for (i, encrypted) in [false, true].into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = open(dir.path(), encrypted);
            // The data key is made (and cached) by a first small write, as the operator's
            // first write of the day would.
            rt.block_on(store.put_state(TENANT, "warm", b"{}".to_vec()))
                .expect("state stored");
            let t = Instant::now();
            let key = rt.block_on(write(&store, &bytes, &report, next()));
            store_write[i] = store_write[i].min(t.elapsed());
            let t = Instant::now();
            let back = rt.block_on(store.get(&key)).expect("report reads back");
            store_read[i] = store_read[i].min(t.elapsed());
            assert!(back == report, "the report must read back unchanged");
            if encrypted {
                let raw = std::fs::read(dir.path().join(&key)).expect("raw object");
                assert!(raw.starts_with(b"CGSE"), "the stored report must be sealed");
            }
        }
    }
    println!("| store step (file://, page cache) | plaintext | encrypted | difference |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, [p, e]: [Duration; 2]| {
        // + 0.0 turns a rounded -0 into 0.
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:+.1} ms |",
            ms(p),
            ms(e),
            ((ms(e) - ms(p)) * 10.0).round() / 10.0 + 0.0
        );
    };
    row("write snapshot + report", store_write);
    row("read the report back", store_read);
    println!();

    // 2: the store path of an analysis.
    let variants = [
        Variant::Plain,
        Variant::Encrypted,
        Variant::EncryptedZeroing,
    ];
    let mut best = [Duration::MAX; 3];
    for _ in 0..3 {
        for (i, &variant) in variants.iter().enumerate() {
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = open(dir.path(), variant != Variant::Plain);
            rt.block_on(store.put_state(TENANT, "warm", b"{}".to_vec()))
                .expect("state stored");
            let at = next();
            ZEROING.store(variant == Variant::EncryptedZeroing, Ordering::SeqCst);
            let t = Instant::now();
            let input = AnalysisInput::from_reader(
                std::fs::File::open(file.path()).expect("open"),
                &sanitizer,
            )
            .expect("valid dump");
            let analysis = analyze(&input, &Default::default(), &prices, &settings);
            drop(input);
            let json = serde_json::to_vec_pretty(&analysis).expect("reports serialize");
            rt.block_on(write(&store, &bytes, &json, at));
            drop((analysis, json));
            best[i] = best[i].min(t.elapsed());
            ZEROING.store(false, Ordering::SeqCst);
        }
    }
    println!(
        "| store path of one analysis (stream dump → input, analyze, store) | time | vs baseline |"
    );
    println!("|---|---:|---:|");
    for (i, variant) in variants.iter().enumerate() {
        println!(
            "| {} | {:.0} ms | {:.3}× |",
            variant.label(),
            ms(best[i]),
            best[i].as_secs_f64() / best[0].as_secs_f64()
        );
    }
    println!();
    println!(
        "Encryption adds {:+.1}% to the store path; encryption and the zeroing allocator together {:+.1}%.",
        (best[1].as_secs_f64() / best[0].as_secs_f64() - 1.0) * 100.0,
        (best[2].as_secs_f64() / best[0].as_secs_f64() - 1.0) * 100.0
    );
}
