//! The AWS Price List Query API's documents (`pricing:GetProducts`, service code
//! `AmazonEC2`): the filters crossguard sends and the typed parse of each `PriceList`
//! entry into an on-demand hourly price.
//!
//! A `PriceList` entry is a JSON document (a string inside the GetProducts answer) with the
//! product's attributes and its terms
//! (<https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html>,
//! <https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-an-offer.html>):
//!
//! ```json
//! {"product": {"attributes": {"instanceType": "m5.large", "regionCode": "eu-west-1",
//!                             "operatingSystem": "Linux", ...}, "sku": "..."},
//!  "terms": {"OnDemand": {"<sku>.<offer>": {"priceDimensions": {"<sku>.<offer>.<rate>":
//!             {"unit": "Hrs", "pricePerUnit": {"USD": "0.1070000000"}}}}}},
//!  "publicationDate": "2026-11-01T00:00:00Z"}
//! ```
//!
//! Only a document with exactly one positive USD price per `Hrs` across its on-demand
//! terms is a price; anything else (no on-demand term, a zero or missing price, another
//! unit, several different hourly prices, malformed JSON) is skipped and counted, never
//! guessed at.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// The Price List API's service code for EC2.
pub const SERVICE_CODE: &str = "AmazonEC2";

/// The Price List API's default endpoint region; it has endpoints in only a few regions
/// (us-east-1, eu-central-1, ap-south-1, …), whatever region the prices are for.
pub const DEFAULT_ENDPOINT_REGION: &str = "us-east-1";

/// An operating system as the Price List's `operatingSystem` attribute names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PriceListOs {
    /// `Linux` (Linux/UNIX, what EKS's Amazon Linux and Bottlerocket nodes are billed as).
    Linux,
    /// `Windows`, license included.
    Windows,
}

impl PriceListOs {
    /// The `kubernetes.io/os` label value (`linux`, `windows`) of this operating system.
    pub fn from_node_os(os: &str) -> Option<PriceListOs> {
        match os {
            "linux" => Some(PriceListOs::Linux),
            "windows" => Some(PriceListOs::Windows),
            _ => None,
        }
    }

    /// The `kubernetes.io/os` label value.
    pub fn node_os(self) -> &'static str {
        match self {
            PriceListOs::Linux => "linux",
            PriceListOs::Windows => "windows",
        }
    }

    /// The `operatingSystem` attribute value.
    pub fn attribute(self) -> &'static str {
        match self {
            PriceListOs::Linux => "Linux",
            PriceListOs::Windows => "Windows",
        }
    }
}

/// The TERM_MATCH filters of one GetProducts query: `(field, value)`, every one required.
///
/// They select AWS's on-demand "Linux" and "Windows, license included" instance prices as
/// the EC2 pricing page lists them: shared tenancy, no pre-installed software (no SQL
/// Server), capacity actually used (not an unused Capacity Reservation), and the license
/// model `No License required` (the license-included rate; Windows BYOL is
/// `Bring your own license`).
pub fn filters(region: &str, os: PriceListOs) -> [(&'static str, String); 6] {
    [
        ("regionCode", region.to_string()),
        ("operatingSystem", os.attribute().to_string()),
        ("tenancy", "Shared".to_string()),
        ("preInstalledSw", "NA".to_string()),
        ("capacitystatus", "Used".to_string()),
        ("licenseModel", "No License required".to_string()),
    ]
}

/// One PriceList document, as far as crossguard reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    product: Product,
    #[serde(default)]
    terms: Terms,
    #[serde(default)]
    publication_date: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Product {
    attributes: Attributes,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    instance_type: String,
}

#[derive(Debug, Default, Deserialize)]
struct Terms {
    #[serde(rename = "OnDemand", default)]
    on_demand: HashMap<String, Term>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Term {
    #[serde(default)]
    price_dimensions: HashMap<String, PriceDimension>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceDimension {
    unit: String,
    #[serde(default)]
    price_per_unit: HashMap<String, String>,
}

/// Why a PriceList document gave no price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// Not JSON, or not the document shape (no `product.attributes.instanceType`).
    #[error("not a PriceList product document: {0}")]
    Malformed(String),
    /// No on-demand term with a positive USD price per hour.
    #[error("no positive on-demand USD price per hour")]
    NoHourlyPrice,
    /// Several different on-demand hourly prices; none is taken.
    #[error("several different on-demand hourly prices")]
    Ambiguous,
}

/// One parsed document: the instance type, its on-demand USD price per hour, and the
/// document's publication date.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductPrice {
    /// e.g. m5.large.
    pub instance_type: String,
    /// USD per instance-hour, > 0.
    pub hourly_usd: f64,
    /// The document's `publicationDate`, when it has one.
    pub publication_date: Option<String>,
}

/// Parse one PriceList document; see the module documentation for what counts as a price.
pub fn parse_product(document: &str) -> Result<ProductPrice, SkipReason> {
    let doc: Document =
        serde_json::from_str(document).map_err(|e| SkipReason::Malformed(e.to_string()))?;
    let mut price: Option<f64> = None;
    for term in doc.terms.on_demand.values() {
        for dim in term.price_dimensions.values() {
            if dim.unit != "Hrs" {
                continue;
            }
            let Some(usd) = dim
                .price_per_unit
                .get("USD")
                .and_then(|p| p.trim().parse::<f64>().ok())
                .filter(|p| p.is_finite() && *p > 0.0)
            else {
                continue;
            };
            match price {
                Some(seen) if seen != usd => return Err(SkipReason::Ambiguous),
                _ => price = Some(usd),
            }
        }
    }
    Ok(ProductPrice {
        instance_type: doc.product.attributes.instance_type,
        hourly_usd: price.ok_or(SkipReason::NoHourlyPrice)?,
        publication_date: doc.publication_date,
    })
}

/// The on-demand prices of one region and operating system, from every page of a
/// GetProducts query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnDemandPriceList {
    /// Instance type → USD per instance-hour.
    pub hourly_usd: BTreeMap<String, f64>,
    /// Documents that gave no price (see [`SkipReason`]), or whose instance type another
    /// document priced differently (then neither price is kept).
    pub skipped: usize,
    /// The latest `publicationDate` among the documents, when any had one.
    pub published: Option<String>,
}

impl OnDemandPriceList {
    /// Collect parsed documents; an instance type two documents price differently is
    /// dropped and counted as skipped, as unparsable documents are.
    pub fn from_documents<'a>(documents: impl IntoIterator<Item = &'a str>) -> OnDemandPriceList {
        let mut list = OnDemandPriceList::default();
        let mut conflicting = std::collections::BTreeSet::new();
        for doc in documents {
            match parse_product(doc) {
                Ok(p) => {
                    if p.publication_date > list.published {
                        list.published = p.publication_date.clone();
                    }
                    if conflicting.contains(&p.instance_type) {
                        list.skipped += 1;
                        continue;
                    }
                    match list.hourly_usd.get(&p.instance_type) {
                        Some(seen) if *seen != p.hourly_usd => {
                            list.hourly_usd.remove(&p.instance_type);
                            conflicting.insert(p.instance_type);
                            list.skipped += 2;
                        }
                        _ => {
                            list.hourly_usd.insert(p.instance_type, p.hourly_usd);
                        }
                    }
                }
                Err(reason) => {
                    tracing::debug!(%reason, "skipped a PriceList document");
                    list.skipped += 1;
                }
            }
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document shaped as GetProducts returns them (attributes trimmed to the usual
    /// ones), with one on-demand term and a reserved term that must be ignored.
    fn document(instance_type: &str, os: &str, on_demand: &[(&str, &str)]) -> String {
        let dims: serde_json::Map<String, serde_json::Value> = on_demand
            .iter()
            .enumerate()
            .map(|(i, (unit, usd))| {
                (
                    format!("SKU1.JRTCKXETXF.{i}"),
                    serde_json::json!({"unit": unit, "endRange": "Inf", "beginRange": "0",
                        "description": format!("{usd} per On Demand {os} {instance_type} Instance Hour"),
                        "appliesTo": [], "rateCode": format!("SKU1.JRTCKXETXF.{i}"),
                        "pricePerUnit": {"USD": usd}}),
                )
            })
            .collect();
        serde_json::json!({
            "product": {"productFamily": "Compute Instance", "sku": "SKU1", "attributes": {
                "instanceType": instance_type, "regionCode": "eu-west-1", "location": "EU (Ireland)",
                "operatingSystem": os, "tenancy": "Shared", "preInstalledSw": "NA",
                "capacitystatus": "Used", "licenseModel": "No License required",
                "operation": if os == "Windows" { "RunInstances:0002" } else { "RunInstances" },
                "vcpu": "2", "memory": "8 GiB", "servicecode": "AmazonEC2"}},
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {"SKU1.JRTCKXETXF": {"offerTermCode": "JRTCKXETXF", "sku": "SKU1",
                    "effectiveDate": "2026-11-01T00:00:00Z", "termAttributes": {},
                    "priceDimensions": dims}},
                "Reserved": {"SKU1.4NA7Y494T4": {"priceDimensions": {"SKU1.4NA7Y494T4.6YS6EN2CT7":
                    {"unit": "Hrs", "pricePerUnit": {"USD": "0.0610000000"}}}}}
            },
            "version": "20261101000000",
            "publicationDate": "2026-11-01T00:00:00Z"
        })
        .to_string()
    }

    #[test]
    fn an_on_demand_hourly_price_is_read_and_reserved_terms_ignored() {
        let p = parse_product(&document("m5.large", "Linux", &[("Hrs", "0.1070000000")])).unwrap();
        assert_eq!(p.instance_type, "m5.large");
        assert_eq!(p.hourly_usd, 0.107);
        assert_eq!(p.publication_date.as_deref(), Some("2026-11-01T00:00:00Z"));
    }

    #[test]
    fn zero_missing_other_unit_or_ambiguous_prices_are_not_prices() {
        let zero = document("m5.large", "Linux", &[("Hrs", "0.0000000000")]);
        assert_eq!(parse_product(&zero), Err(SkipReason::NoHourlyPrice));
        let other_unit = document("m5.large", "Linux", &[("Quantity", "12.0")]);
        assert_eq!(parse_product(&other_unit), Err(SkipReason::NoHourlyPrice));
        let not_a_number = document("m5.large", "Linux", &[("Hrs", "n/a")]);
        assert_eq!(parse_product(&not_a_number), Err(SkipReason::NoHourlyPrice));
        let two = document("m5.large", "Linux", &[("Hrs", "0.1"), ("Hrs", "0.2")]);
        assert_eq!(parse_product(&two), Err(SkipReason::Ambiguous));
        let same_twice = document("m5.large", "Linux", &[("Hrs", "0.1"), ("Hrs", "0.10")]);
        assert_eq!(parse_product(&same_twice).unwrap().hourly_usd, 0.1);
        let no_usd = r#"{"product":{"attributes":{"instanceType":"m5.large"}},
            "terms":{"OnDemand":{"a":{"priceDimensions":{"b":{"unit":"Hrs","pricePerUnit":{"CNY":"0.7"}}}}}}}"#;
        assert_eq!(parse_product(no_usd), Err(SkipReason::NoHourlyPrice));
        let no_terms = r#"{"product":{"attributes":{"instanceType":"m5.large"}}}"#;
        assert_eq!(parse_product(no_terms), Err(SkipReason::NoHourlyPrice));
        for bad in [
            "not json",
            "[]",
            r#"{"product":{"attributes":{}}}"#,
            r#"{"product":{"attributes":{"instanceType":7}}}"#,
        ] {
            assert!(
                matches!(parse_product(bad), Err(SkipReason::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_page_set_keeps_prices_and_counts_what_it_skipped() {
        let docs = [
            document("m5.large", "Windows", &[("Hrs", "0.1990000000")]),
            document("m5.xlarge", "Windows", &[("Hrs", "0.3980000000")]),
            document("c5.large", "Windows", &[("Hrs", "0")]),
            "{truncated".to_string(),
            // The same type priced twice, differently: neither figure is kept.
            document("r5.large", "Windows", &[("Hrs", "0.2")]),
            document("r5.large", "Windows", &[("Hrs", "0.3")]),
            document("r5.large", "Windows", &[("Hrs", "0.2")]),
            // The same price twice is one price.
            document("m5.large", "Windows", &[("Hrs", "0.199")]),
        ];
        let list = OnDemandPriceList::from_documents(docs.iter().map(String::as_str));
        assert_eq!(
            list.hourly_usd
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
            [("m5.large", 0.199), ("m5.xlarge", 0.398)]
        );
        assert_eq!(list.skipped, 5);
        assert_eq!(list.published.as_deref(), Some("2026-11-01T00:00:00Z"));
    }

    #[test]
    fn filters_select_shared_tenancy_license_included_used_capacity() {
        let f = filters("eu-west-1", PriceListOs::Windows);
        let get = |k: &str| f.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("regionCode"), Some("eu-west-1"));
        assert_eq!(get("operatingSystem"), Some("Windows"));
        assert_eq!(get("tenancy"), Some("Shared"));
        assert_eq!(get("preInstalledSw"), Some("NA"));
        assert_eq!(get("capacitystatus"), Some("Used"));
        assert_eq!(get("licenseModel"), Some("No License required"));
        assert_eq!(
            PriceListOs::from_node_os("windows"),
            Some(PriceListOs::Windows)
        );
        assert_eq!(PriceListOs::from_node_os("plan9"), None);
    }
}
