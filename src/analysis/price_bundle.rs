//! The generator of the bundled price table (`make prices`).
//!
//! Reads the real AWS list prices and instance facts in `data/prices/source/` (copied from
//! the team's `shared/data/`; its README gives their source, date and limits) and the
//! hand-transcribed Fargate rates beside them, and writes `data/prices/on-demand.json` in
//! the prices-file format of [`super::prices`]:
//! - `instanceTypes`: every type of `ec2-instance-facts.json`, with its vCPUs, memory
//!   (MiB), architecture (EC2's `x86_64` written as Kubernetes' `amd64`) and `eksMaxPods`
//!   (ENIs on the default card × (IPv4 per ENI − 1) + 2, the EKS VPC CNI default);
//! - `onDemandHourly`: the Linux on-demand hourly prices of every region of
//!   `ec2-on-demand-prices.json` whose currency is USD, unchanged. Regions in another
//!   currency (cn-north-1, CNY) are left out rather than mixed into USD totals;
//! - `fargate`: the rates of `fargate.json`, with their own source and date;
//! - `source`/`asOf`: the commit, paths and generation time the price file names.
//!
//! The output is deterministic (sorted, one entry per line), so a test can tell when the
//! committed file is stale ("run `make prices`"), as the CRD test does for `make crds`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::prices::{FargateFile, InstanceTypeInfo};

/// Where the inputs live, relative to the repository root.
pub const SOURCE_DIR: &str = "data/prices/source";
/// The generated file, relative to the repository root.
pub const BUNDLED_PATH: &str = "data/prices/on-demand.json";
/// The input files in [`SOURCE_DIR`].
pub const PRICES_FILE: &str = "ec2-on-demand-prices.json";
/// Instance facts input.
pub const FACTS_FILE: &str = "ec2-instance-facts.json";
/// Fargate rates input.
pub const FARGATE_FILE: &str = "fargate.json";

/// The generator could not read or understand an input.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// An input file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// An input file is not in the expected shape.
    #[error("{file} is not in the expected shape")]
    Parse {
        /// The file name.
        file: &'static str,
        /// What failed.
        #[source]
        source: serde_json::Error,
    },
    /// The generated file could not be written.
    #[error("writing {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PricesIn {
    source: String,
    #[serde(default)]
    source_files: Vec<SourceFileIn>,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    currency_by_region: BTreeMap<String, String>,
    unit: String,
    regions: BTreeMap<String, BTreeMap<String, f64>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceFileIn {
    path: String,
    #[serde(default)]
    generated_at: String,
    #[serde(default)]
    currency: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FactsIn {
    source: String,
    #[serde(default)]
    source_date: String,
    instance_types: BTreeMap<String, FactIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FactIn {
    vcpu: Option<u32>,
    #[serde(rename = "memoryMiB")]
    memory_mib: Option<u64>,
    arch: Option<String>,
    #[serde(default)]
    eks_max_pods: Option<u32>,
}

fn parse<'a, T: Deserialize<'a>>(file: &'static str, bytes: &'a [u8]) -> Result<T, BundleError> {
    serde_json::from_slice(bytes).map_err(|source| BundleError::Parse { file, source })
}

/// Kubernetes' architecture name for EC2's (`x86_64` → `amd64`; `arm64` stays).
fn kubernetes_arch(ec2: &str) -> &str {
    match ec2 {
        "x86_64" => "amd64",
        other => other,
    }
}

/// A JSON string literal.
fn lit(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The bundled file's text from the three inputs' bytes.
pub fn generate(prices: &[u8], facts: &[u8], fargate: &[u8]) -> Result<String, BundleError> {
    let prices: PricesIn = parse(PRICES_FILE, prices)?;
    let facts: FactsIn = parse(FACTS_FILE, facts)?;
    let fargate: FargateFile = parse(FARGATE_FILE, fargate)?;

    let currency = if prices.currency.is_empty() {
        "USD".to_string()
    } else {
        prices.currency.clone()
    };
    let currency_of = |region: &str| {
        prices
            .currency_by_region
            .get(region)
            .cloned()
            .unwrap_or_else(|| currency.clone())
    };
    let (kept, left_out): (Vec<_>, Vec<_>) = prices
        .regions
        .iter()
        .partition(|(region, _)| currency_of(region) == currency);
    // The newest generation time among the price files used is the table's date.
    let as_of = prices
        .source_files
        .iter()
        .filter(|f| f.currency.is_empty() || f.currency == currency)
        .map(|f| f.generated_at.as_str())
        .max()
        .unwrap_or_default()
        .to_string();
    let generated: Vec<String> = prices
        .source_files
        .iter()
        .filter(|f| f.currency.is_empty() || f.currency == currency)
        .map(|f| format!("{} generated {}", f.path, f.generated_at))
        .collect();
    let source = format!(
        "AWS EC2 on-demand list prices ({}) from the AWS Pricing API as published in {} ({}); instance facts from {} (as of {})",
        prices.unit,
        prices.source,
        generated.join(", "),
        facts.source,
        facts.source_date
    );
    let mut note = format!(
        "Generated by `make prices` (src/analysis/price_bundle.rs) from {SOURCE_DIR}; do not edit. Regions: {}.",
        kept.iter()
            .map(|(r, _)| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !left_out.is_empty() {
        let _ = write!(
            note,
            " Left out (not priced in {currency}): {}.",
            left_out
                .iter()
                .map(|(r, _)| format!("{r} ({})", currency_of(r)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    note.push_str(
        " Linux only; other regions, Windows, spot, Reserved Instances and Savings Plans are not in it: nodes it cannot price are reported unpriced.",
    );

    // Types the facts give no vCPU, memory or architecture for (network limits only) cannot
    // be right-sizing targets; their prices are still bundled.
    let shapes: Vec<(&String, InstanceTypeInfo)> = facts
        .instance_types
        .iter()
        .filter_map(|(name, f)| {
            Some((
                name,
                InstanceTypeInfo {
                    vcpus: f.vcpu?,
                    memory_mib: f.memory_mib?,
                    architecture: kubernetes_arch(f.arch.as_deref()?).to_string(),
                    max_pods: f.eks_max_pods,
                },
            ))
        })
        .collect();
    let shapeless = facts.instance_types.len() - shapes.len();
    if shapeless > 0 {
        let _ = write!(
            note,
            " {shapeless} types of the facts file have no vCPU/memory/architecture there and are not in instanceTypes (DescribeInstanceTypes supplies them at run time)."
        );
    }

    let mut out = String::from("{\n");
    let _ = writeln!(out, " \"source\": {},", lit(&source));
    let _ = writeln!(out, " \"asOf\": {},", lit(&as_of));
    let _ = writeln!(out, " \"currency\": {},", lit(&currency));
    let _ = writeln!(out, " \"note\": {},", lit(&note));
    let _ = writeln!(out, " \"fargate\": {{");
    let _ = writeln!(out, "  \"source\": {},", lit(&fargate.source));
    let _ = writeln!(out, "  \"asOf\": {},", lit(&fargate.as_of));
    let _ = writeln!(
        out,
        "  \"hourly\": {}",
        serde_json::to_string(&fargate.hourly).expect("rates serialize")
    );
    let _ = writeln!(out, " }},");
    let _ = writeln!(out, " \"instanceTypes\": {{");
    let n = shapes.len();
    for (i, (name, info)) in shapes.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}: {}{}",
            lit(name),
            serde_json::to_string(info).expect("instance info serializes"),
            if i + 1 < n { "," } else { "" }
        );
    }
    let _ = writeln!(out, " }},");
    let _ = writeln!(out, " \"onDemandHourly\": {{");
    for (r, (region, types)) in kept.iter().enumerate() {
        let _ = writeln!(out, "  {}: {{", lit(region));
        for (i, (name, price)) in types.iter().enumerate() {
            let _ = writeln!(
                out,
                "   {}: {}{}",
                lit(name),
                serde_json::to_string(price).expect("prices serialize"),
                if i + 1 < types.len() { "," } else { "" }
            );
        }
        let _ = writeln!(out, "  }}{}", if r + 1 < kept.len() { "," } else { "" });
    }
    out.push_str(" }\n}\n");
    Ok(out)
}

fn read(path: PathBuf) -> Result<Vec<u8>, BundleError> {
    std::fs::read(&path).map_err(|source| BundleError::Read { path, source })
}

/// The bundled file's text from the inputs in `root`/[`SOURCE_DIR`].
pub fn generate_from(root: &Path) -> Result<String, BundleError> {
    let dir = root.join(SOURCE_DIR);
    generate(
        &read(dir.join(PRICES_FILE))?,
        &read(dir.join(FACTS_FILE))?,
        &read(dir.join(FARGATE_FILE))?,
    )
}

/// Regenerate `root`/[`BUNDLED_PATH`]; returns the path written.
pub fn write(root: &Path) -> Result<PathBuf, BundleError> {
    let text = generate_from(root)?;
    let path = root.join(BUNDLED_PATH);
    std::fs::write(&path, text).map_err(|source| BundleError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Does the committed `root`/[`BUNDLED_PATH`] differ from what [`write`] would write?
pub fn is_stale(root: &Path) -> Result<bool, BundleError> {
    let want = generate_from(root)?;
    Ok(std::fs::read_to_string(root.join(BUNDLED_PATH))
        .ok()
        .as_deref()
        != Some(want.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::PriceTable;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn bundled_prices_are_in_sync_with_their_sources() {
        assert!(
            !is_stale(root()).unwrap(),
            "{BUNDLED_PATH} is stale, run `make prices`"
        );
    }

    #[test]
    fn generator_keeps_every_fact_and_every_usd_price_unchanged() {
        let dir = root().join(SOURCE_DIR);
        let facts: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(FACTS_FILE)).unwrap()).unwrap();
        let prices: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(PRICES_FILE)).unwrap()).unwrap();
        let table = PriceTable::from_json(generate_from(root()).unwrap().as_bytes()).unwrap();
        let facts = facts["instanceTypes"].as_object().unwrap();
        let shaped = facts.values().filter(|f| f.get("vcpu").is_some()).count();
        assert_eq!(table.catalog.len(), shaped);
        assert!(shaped > 1300, "{shaped}");
        for (name, f) in facts {
            let Some(info) = table.catalog.get(name) else {
                assert!(
                    f.get("vcpu").is_none(),
                    "{name} has a shape but was left out"
                );
                continue;
            };
            assert_eq!(u64::from(info.vcpus), f["vcpu"].as_u64().unwrap(), "{name}");
            assert_eq!(info.memory_mib, f["memoryMiB"].as_u64().unwrap(), "{name}");
            let arch = if f["arch"] == "x86_64" {
                "amd64"
            } else {
                "arm64"
            };
            assert_eq!(info.architecture, arch, "{name}");
            assert_eq!(
                info.max_pods.map(u64::from),
                f["eksMaxPods"].as_u64(),
                "{name}"
            );
        }
        let mut compared = 0;
        for (region, types) in prices["regions"].as_object().unwrap() {
            let usd = prices["currencyByRegion"][region] == "USD";
            for (name, price) in types.as_object().unwrap() {
                let bundled = table.on_demand_hourly(region, name);
                if usd {
                    assert_eq!(bundled, price.as_f64(), "{name} in {region}");
                    compared += 1;
                } else {
                    assert_eq!(bundled, None, "{region} is not in USD: left out");
                }
            }
        }
        assert_eq!(compared, 1367 + 549 + 770);
        // Provenance comes from the inputs: the Karpenter commit and the Fargate page.
        assert!(table.sources[0].source.contains("karpenter-provider-aws@"));
        assert_eq!(table.sources[0].as_of, "2026-07-20T13:44:38Z");
        assert!(
            table.sources[1]
                .source
                .contains("aws.amazon.com/fargate/pricing")
        );
        let rates = table.fargate_rates("us-east-1").unwrap();
        assert_eq!((rates.vcpu, rates.memory_gb), (0.04048, 0.004445));
    }

    #[test]
    fn malformed_inputs_name_the_file() {
        let err = generate(b"{}", b"{}", b"{}").unwrap_err();
        assert!(err.to_string().contains(PRICES_FILE), "{err}");
    }
}
