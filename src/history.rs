//! Per-cluster cost and savings history (issue #16): one compact [`HistoryPoint`] per
//! analysis, kept in the store under the tenant's prefix (so it is encrypted with the
//! tenant's data key, swept by retention and erased with the tenant), read back for
//! `crossguard history`, the dashboard and its HTTP endpoint.
//!
//! INTERFACE AGREED BETWEEN BRANCHES `history` (implements it) AND `dashboard` (uses it).
//! Field names and the two functions' signatures are fixed; the storage layout behind
//! them is the `history` branch's to choose.

use std::collections::BTreeMap;

use crate::store::{Store, StoreError};

/// One analysis of one ManagedCluster, as kept in its history. All money in USD.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    /// When the analysis finished.
    pub at: jiff::Timestamp,
    /// Monthly cost of the priced nodes (730 hours at the effective hourly price).
    pub monthly_cost: f64,
    /// Potential monthly savings by category (the categories of
    /// `crate::metrics::SAVINGS_CATEGORIES`).
    pub potential_savings: BTreeMap<String, f64>,
    /// Monthly savings automation actually realised so far: the hourly price of the nodes
    /// it removed × 730, summed over confirmed actions.
    pub realised_savings: f64,
    /// Nodes analysed.
    pub nodes: u32,
    /// Nodes of unknown price (in no sum).
    pub unpriced_nodes: u32,
    /// Pod CPU requests / allocatable CPU.
    pub cpu_requested_ratio: f64,
    /// Pod memory requests / allocatable memory.
    pub memory_requested_ratio: f64,
    /// Automation actions taken (confirmed) since the previous point.
    pub actions: u32,
    /// Automation refusals since the previous point.
    pub refusals: u32,
    /// Where the prices came from (the report's price source, e.g. bundled table + date).
    pub price_source: String,
}

/// A history operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The store failed (including an erased tenant or an undecryptable object).
    #[error("{operation} the history of {namespace}/{cluster} failed: {source}")]
    Store {
        /// `appending to` or `reading`.
        operation: &'static str,
        /// The ManagedCluster's namespace.
        namespace: String,
        /// The ManagedCluster's name.
        cluster: String,
        /// The store's error.
        source: StoreError,
    },
    /// A stored history object does not parse.
    #[error("the stored history object {key} is malformed: {reason}")]
    Malformed {
        /// Its key.
        key: String,
        /// The parse error.
        reason: String,
    },
}

/// Append `point` to the history of `namespace/cluster` of `tenant` (CustomerAccount UID).
pub async fn append(
    store: &Store,
    tenant: &str,
    namespace: &str,
    cluster: &str,
    point: &HistoryPoint,
) -> Result<(), HistoryError> {
    let _ = (store, tenant, namespace, cluster, point);
    todo!("implemented on branch history")
}

/// The points of `namespace/cluster` of `tenant` with `at >= since`, oldest first.
pub async fn read(
    store: &Store,
    tenant: &str,
    namespace: &str,
    cluster: &str,
    since: jiff::Timestamp,
) -> Result<Vec<HistoryPoint>, HistoryError> {
    let _ = (store, tenant, namespace, cluster, since);
    todo!("implemented on branch history")
}
