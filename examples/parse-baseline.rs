//! The baseline of the analysis time goal as a process of its own: read a file and parse
//! it with `serde_json::from_slice::<serde_json::Value>`, nothing else. Run against
//! `crossguard analyze` on the same dump by `benches/analyze-cli.sh` (`make bench-cli`),
//! so that both are timed the same way, each in a fresh process:
//!
//! ```text
//! cargo run --release --example parse-baseline -- dump.json
//! ```
//!
//! Prints the parse time alone (file read excluded) to stderr. Like `crossguard analyze`,
//! it exits without freeing what it parsed: the comparison is read and parse against
//! read, parse and analysis, with neither paying for a teardown.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: parse-baseline DUMP.json")?;
    let bytes = std::fs::read(&path)?;
    let started = std::time::Instant::now();
    let value: serde_json::Value = serde_json::from_slice(&bytes)?;
    eprintln!("parsed in {} ms", started.elapsed().as_millis());
    std::mem::forget((value, bytes));
    Ok(())
}
