//! Write a synthetic cluster as one `kubectl get -o json` List, to measure `crossguard
//! analyze` on a dump of a chosen size (BENCHMARKS.md "Peak memory of `crossguard
//! analyze`"):
//!
//! ```text
//! cargo run --release --example synthetic-dump -- NODES PODS SEED > dump.json
//! ```
//!
//! The cluster comes from `crossguard::testing::synthetic` (the analysis benchmark's
//! generator: env vars, probes and status on every pod, so the bytes per pod are
//! realistic); the same arguments always give the same bytes.

use std::io::Write;

use crossguard::testing::dump;
use crossguard::testing::synthetic::{SyntheticSpec, generate};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |a| {
            a.parse()
                .unwrap_or_else(|_| panic!("argument {} must be a number, got {a:?}", i + 1))
        })
    };
    let spec = SyntheticSpec {
        nodes: number(0, 2_800) as usize,
        pods: number(1, 84_000) as usize,
        seed: number(2, 1),
        ..Default::default()
    };
    let cluster = generate(&spec);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    dump::write_snapshot_list(&cluster.snapshot, &mut out)?;
    out.flush()
}
