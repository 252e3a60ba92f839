//! `crossguard analyze -o csv`: the report as a spreadsheet, one row per node, with a
//! header row. Written with the `csv` crate so that fields holding commas, quotes or line
//! breaks (price bases, reasons) are quoted as RFC 4180 and spreadsheets read them back
//! as one cell.
//!
//! Columns (amounts in the report's currency, per month of `hoursPerMonth` hours):
//!
//! | column | meaning |
//! | --- | --- |
//! | `node` | node name |
//! | `nodegroup` | its nodegroup (`nodepool/…`, `(fargate)`, `(no nodegroup)`) |
//! | `instance_type` | EC2 instance type, empty when unknown |
//! | `region` | AWS region |
//! | `operating_system` | `linux`, `windows` |
//! | `capacity_type` | `on-demand`, `spot`, `fargate` |
//! | `monthly_cost` | what the node costs now, `1234.56`; empty when unknown |
//! | `currency` | e.g. `USD` |
//! | `cost_is` | `list price`, `estimate` (spot at a configured discount) or `unknown` |
//! | `price_basis` | how the cost was computed, or why it is unknown |
//! | `recommendation` | `remove` (consolidation empties it) or `keep` |
//! | `monthly_saving_if_removed` | the node's cost when it is removed, else empty |
//! | `kept_by_rule` | the scale-down rule keeping it (`local-storage`, `no-room`, …) |
//! | `kept_by` | the pod and reason behind that rule |
//! | `nodegroup_recommendations` | right-sizing and spot recommendations for its nodegroup, `; `-separated, each with its monthly saving |

use crate::analysis::{CapacityType, Category, Report};

/// The header row, in column order (see the module documentation).
pub const COLUMNS: [&str; 15] = [
    "node",
    "nodegroup",
    "instance_type",
    "region",
    "operating_system",
    "capacity_type",
    "monthly_cost",
    "currency",
    "cost_is",
    "price_basis",
    "recommendation",
    "monthly_saving_if_removed",
    "kept_by_rule",
    "kept_by",
    "nodegroup_recommendations",
];

/// `report` as CSV text: the header row and one row per node, in snapshot order.
pub fn report_csv(report: &Report) -> Result<Vec<u8>, ::csv::Error> {
    let mut out = ::csv::Writer::from_writer(Vec::new());
    out.write_record(COLUMNS)?;
    for n in &report.nodes {
        let amount = |x: f64| format!("{x:.2}");
        let cost_is = match (n.monthly_cost, n.capacity_type) {
            (None, _) => "unknown",
            (Some(_), CapacityType::Spot) if n.price_basis.contains("ESTIMATED") => "estimate",
            (Some(_), _) => "list price",
        };
        let basis = n.unpriced_reason.as_deref().unwrap_or(&n.price_basis);
        let (rule, kept_by) = n
            .kept_by
            .as_ref()
            .map(|k| (k.rule.as_str(), k.detail.as_str()))
            .unwrap_or_default();
        // Consolidation is per node; right-sizing and spot are per nodegroup.
        let group_recs: Vec<String> = report
            .recommendations
            .iter()
            .filter(|r| r.nodegroup == n.nodegroup && r.category != Category::Consolidation)
            .map(|r| {
                format!(
                    "{}{} ({}/month)",
                    if r.estimate { "estimate: " } else { "" },
                    r.summary,
                    amount(r.monthly_saving)
                )
            })
            .collect();
        let capacity = match n.capacity_type {
            CapacityType::OnDemand => "on-demand",
            CapacityType::Spot => "spot",
            CapacityType::Fargate => "fargate",
        };
        out.write_record([
            n.node.as_str(),
            n.nodegroup.as_str(),
            n.instance_type.as_deref().unwrap_or(""),
            n.region.as_str(),
            n.operating_system.as_str(),
            capacity,
            &n.monthly_cost.map(amount).unwrap_or_default(),
            report.currency.as_str(),
            cost_is,
            basis,
            if n.removable { "remove" } else { "keep" },
            &if n.removable {
                n.monthly_cost.map(amount).unwrap_or_default()
            } else {
                String::new()
            },
            rule,
            kept_by,
            &group_recs.join("; "),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}
