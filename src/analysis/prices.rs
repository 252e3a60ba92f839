//! Instance data and on-demand prices.
//!
//! Two sources feed a [`PriceTable`]: the bundled file `data/prices/on-demand.json`
//! (approximate public on-demand Linux prices; its `source` and `asOf` fields say where
//! the numbers come from) and, at run time, `DescribeInstanceTypes` for vCPU, memory and
//! architecture ([`PriceTable::with_instance_types`]). A prices file in the same format
//! overrides any subset of either ([`PriceTable::with_overrides`]), e.g. negotiated rates.
//! A type with no price is *unknown*: callers report it as such and never price it at zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The bundled table, compiled into the binary so offline analysis needs no files.
const BUNDLED: &str = include_str!("../../data/prices/on-demand.json");

/// What is known about one instance type (the fields DescribeInstanceTypes gives us).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTypeInfo {
    /// Default vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    #[serde(rename = "memoryMiB")]
    pub memory_mib: u64,
    /// Kubernetes architecture name: amd64 or arm64.
    pub architecture: String,
    /// Pods per node with the EKS VPC CNI defaults, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pods: Option<u32>,
}

/// Instance types by name (`m5.large`), from the bundled file or DescribeInstanceTypes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceCatalog {
    types: BTreeMap<String, InstanceTypeInfo>,
}

impl InstanceCatalog {
    /// A catalog from (name, info) pairs, e.g. mapped from DescribeInstanceTypes.
    pub fn from_types(types: impl IntoIterator<Item = (String, InstanceTypeInfo)>) -> Self {
        InstanceCatalog {
            types: types.into_iter().collect(),
        }
    }

    /// The info for one type.
    pub fn get(&self, name: &str) -> Option<&InstanceTypeInfo> {
        self.types.get(name)
    }

    /// All types, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &InstanceTypeInfo)> {
        self.types.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when there are no types.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// A prices file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The JSON does not have the price-table shape.
    #[error("prices file is not a valid price table")]
    Parse(#[from] serde_json::Error),
    /// A price is negative or not a number.
    #[error("price for {instance_type} in {region} must be a finite number >= 0")]
    InvalidPrice {
        /// Region of the bad entry.
        region: String,
        /// Instance type of the bad entry.
        instance_type: String,
    },
}

/// The on-wire format of a price table (bundled file and override files alike).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceFile {
    #[serde(default)]
    source: String,
    #[serde(default)]
    as_of: String,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    instance_types: BTreeMap<String, InstanceTypeInfo>,
    #[serde(default)]
    on_demand_hourly: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Instance catalog plus on-demand hourly prices per region, with provenance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    /// Where the prices come from (one entry per layered source).
    pub sources: Vec<PriceSource>,
    /// Currency of every price (USD).
    pub currency: String,
    /// vCPU, memory and architecture per type.
    pub catalog: InstanceCatalog,
    on_demand: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Provenance of one layer of a price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceSource {
    /// Free text: who compiled the numbers and how.
    pub source: String,
    /// Date (or month) the numbers describe.
    pub as_of: String,
}

impl PriceTable {
    /// The table compiled into the binary (approximate public prices; see its `source`).
    pub fn bundled() -> PriceTable {
        PriceTable::from_json(BUNDLED.as_bytes())
            .expect("bundled price table is valid JSON (tested)")
    }

    /// A table from a prices file in the bundled format.
    pub fn from_json(bytes: &[u8]) -> Result<PriceTable, PriceError> {
        let file: PriceFile = serde_json::from_slice(bytes)?;
        for (region, prices) in &file.on_demand_hourly {
            for (instance_type, price) in prices {
                if !price.is_finite() || *price < 0.0 {
                    return Err(PriceError::InvalidPrice {
                        region: region.clone(),
                        instance_type: instance_type.clone(),
                    });
                }
            }
        }
        Ok(PriceTable {
            sources: vec![PriceSource {
                source: file.source,
                as_of: file.as_of,
            }],
            currency: file.currency.unwrap_or_else(|| "USD".to_string()),
            catalog: InstanceCatalog {
                types: file.instance_types,
            },
            on_demand: file.on_demand_hourly,
        })
    }

    /// This table with every entry of `other` laid over it (prices and instance data).
    pub fn with_overrides(mut self, other: PriceTable) -> PriceTable {
        self.sources.extend(other.sources);
        self.catalog.types.extend(other.catalog.types);
        for (region, prices) in other.on_demand {
            self.on_demand.entry(region).or_default().extend(prices);
        }
        self
    }

    /// This table with instance data from DescribeInstanceTypes, which wins over the file.
    pub fn with_instance_types(
        mut self,
        types: impl IntoIterator<Item = (String, InstanceTypeInfo)>,
    ) -> PriceTable {
        self.catalog.types.extend(types);
        self
    }

    /// Set or replace one on-demand price.
    pub fn set_on_demand(&mut self, region: &str, instance_type: &str, hourly: f64) {
        self.on_demand
            .entry(region.to_string())
            .or_default()
            .insert(instance_type.to_string(), hourly);
    }

    /// The on-demand hourly price of `instance_type` in `region`, if the table has it.
    pub fn on_demand_hourly(&self, region: &str, instance_type: &str) -> Option<f64> {
        self.on_demand.get(region)?.get(instance_type).copied()
    }

    /// Types that have both instance data and a price in `region`, by name.
    pub fn priced_types<'a>(
        &'a self,
        region: &str,
    ) -> impl Iterator<Item = (&'a str, &'a InstanceTypeInfo, f64)> + 'a {
        let prices = self.on_demand.get(region);
        self.catalog.iter().filter_map(move |(name, info)| {
            prices
                .and_then(|p| p.get(name))
                .map(|price| (name, info, *price))
        })
    }

    /// Human-readable provenance, e.g. for the report.
    pub fn provenance(&self) -> String {
        self.sources
            .iter()
            .map(|s| {
                format!(
                    "{} (as of {})",
                    s.source,
                    if s.as_of.is_empty() {
                        "unknown"
                    } else {
                        &s.as_of
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; overridden by: ")
    }
}

/// The instance family of a type name (`m6g.xlarge` → `m6g`).
pub fn family(instance_type: &str) -> &str {
    instance_type.split('.').next().unwrap_or(instance_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_table_has_families_regions_and_provenance() {
        let t = PriceTable::bundled();
        assert!(t.sources[0].source.contains("Not a live fetch"));
        assert!(!t.sources[0].as_of.is_empty());
        for ty in [
            "m5.large",
            "m6i.4xlarge",
            "m6g.xlarge",
            "m7i.2xlarge",
            "m7g.large",
            "c5.xlarge",
            "c6i.large",
        ] {
            for region in ["us-east-1", "eu-west-1", "ap-northeast-1"] {
                assert!(
                    t.on_demand_hourly(region, ty).is_some_and(|p| p > 0.0),
                    "{ty} in {region}"
                );
            }
        }
        for ty in [
            "c6g.2xlarge",
            "c7g.4xlarge",
            "r5.large",
            "r6i.xlarge",
            "r6g.2xlarge",
            "t3.large",
            "t3a.xlarge",
        ] {
            assert!(t.catalog.get(ty).is_some(), "{ty}");
        }
        assert_eq!(t.catalog.get("m6g.large").unwrap().architecture, "arm64");
        assert_eq!(t.catalog.get("m5.xlarge").unwrap().memory_mib, 16384);
        assert_eq!(t.on_demand_hourly("us-east-1", "m5.large"), Some(0.096));
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let negotiated = PriceTable::from_json(
            br#"{"source":"contract 42","asOf":"2026-01","onDemandHourly":{"us-east-1":{"m5.large":0.05,"x9.huge":1.0}}}"#,
        )
        .unwrap();
        let t = PriceTable::bundled().with_overrides(negotiated);
        assert_eq!(t.on_demand_hourly("us-east-1", "m5.large"), Some(0.05));
        assert_eq!(t.on_demand_hourly("us-east-1", "m5.xlarge"), Some(0.192));
        assert_eq!(t.on_demand_hourly("us-east-1", "x9.huge"), Some(1.0));
        assert!(t.provenance().contains("contract 42"));
        // A price without instance data is not offered as a right-sizing target.
        assert!(
            t.priced_types("us-east-1")
                .all(|(name, _, _)| name != "x9.huge")
        );
    }

    #[test]
    fn describe_instance_types_wins_over_file_data() {
        let info = InstanceTypeInfo {
            vcpus: 2,
            memory_mib: 9000,
            architecture: "amd64".into(),
            max_pods: Some(30),
        };
        let t = PriceTable::bundled().with_instance_types([("m5.large".to_string(), info.clone())]);
        assert_eq!(t.catalog.get("m5.large"), Some(&info));
    }

    #[test]
    fn negative_prices_are_rejected() {
        let err = PriceTable::from_json(br#"{"onDemandHourly":{"us-east-1":{"m5.large":-1}}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("m5.large"));
        assert!(PriceTable::from_json(b"[1,2]").is_err());
    }
}
