//! `make prices`: regenerate the bundled price table `data/prices/on-demand.json` from
//! `data/prices/source/` (see `crossguard::analysis::price_bundle`).
//!
//! Usage: `pricegen [REPO_ROOT]` (default: the current directory).

fn main() -> anyhow::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let path = crossguard::analysis::price_bundle::write(&root)?;
    println!("wrote {}", path.display());
    Ok(())
}
