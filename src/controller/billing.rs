//! The ManagedCluster pipeline's billing reads, between reading the cluster and analysing
//! it: the current spot prices of the cluster's instance types in its zones
//! (ec2:DescribeSpotPriceHistory) and the account's commitments (ec2:DescribeReservedInstances,
//! savingsplans:DescribeSavingsPlans and DescribeSavingsPlanRates), all with the customer
//! session. None of them fails the reconcile: a failed or denied read leaves the analysis
//! with the configured spot discount or without those commitments, and the report says so.

use std::collections::BTreeSet;

use crate::analysis::{AnalysisInput, Commitments, SpotPriceHistory};
use crate::aws::{CustomerClients, product_description};

/// Node labels the reads are scoped by (the same the analysis prices with).
const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
const LABEL_INSTANCE_TYPE_BETA: &str = "beta.kubernetes.io/instance-type";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
const LABEL_OS: &str = "kubernetes.io/os";
const LABEL_COMPUTE_TYPE: &str = "eks.amazonaws.com/compute-type";

/// Reserved Instance and Savings Plan states read: the active ones are applied; retired
/// ones are reported for a while after they end (`analysis::commitments::RECENTLY_EXPIRED_DAYS`).
const STATES: &[&str] = &["active", "retired"];

/// The instance types, zones and EC2 product descriptions of the cluster's EC2 nodes
/// (Fargate nodes have none), sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeMarkets {
    /// e.g. m5.large.
    pub types: Vec<String>,
    /// e.g. us-east-1a.
    pub zones: Vec<String>,
    /// `Linux/UNIX`, `Windows`.
    pub products: Vec<String>,
}

impl NodeMarkets {
    /// What the cluster's nodes run on, from their labels.
    pub fn of(input: &AnalysisInput) -> Self {
        let (mut types, mut zones, mut products) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for node in &input.nodes {
            let Some(labels) = node.metadata.labels.as_ref() else {
                continue;
            };
            if labels
                .get(LABEL_COMPUTE_TYPE)
                .is_some_and(|v| v == "fargate")
            {
                continue;
            }
            if let Some(t) = labels
                .get(LABEL_INSTANCE_TYPE)
                .or_else(|| labels.get(LABEL_INSTANCE_TYPE_BETA))
            {
                types.insert(t.to_string());
            }
            if let Some(z) = labels.get(LABEL_ZONE) {
                zones.insert(z.to_string());
            }
            products.insert(
                product_description(
                    labels
                        .get(LABEL_OS)
                        .map(|os| os.as_str())
                        .unwrap_or("linux"),
                )
                .to_string(),
            );
        }
        NodeMarkets {
            types: types.into_iter().collect(),
            zones: zones.into_iter().collect(),
            products: products.into_iter().collect(),
        }
    }
}

/// The current spot prices of the cluster's types in its zones; `Unavailable` with the
/// reason when the call fails (never an error).
pub async fn spot_prices(
    clients: &CustomerClients,
    markets: &NodeMarkets,
    now: jiff::Timestamp,
) -> SpotPriceHistory {
    match clients
        .ec2
        .describe_spot_price_history(&markets.types, &markets.zones, &markets.products, now)
        .await
    {
        Ok(prices) => SpotPriceHistory::Read(prices),
        Err(e) => {
            tracing::warn!(error = %e, "spot price history unavailable; using the configured spot discount");
            SpotPriceHistory::Unavailable(e.to_string())
        }
    }
}

/// The account's Reserved Instances in `region` and its Savings Plans, with the active
/// plans' rates for the cluster's types in `region`. A failed read is noted in
/// [`Commitments::unavailable`] (never an error).
pub async fn commitments(
    clients: &CustomerClients,
    markets: &NodeMarkets,
    region: &str,
    now: jiff::Timestamp,
) -> Commitments {
    let mut out = Commitments {
        read_at: Some(now),
        ..Commitments::default()
    };
    match clients.ec2.describe_reserved_instances(STATES).await {
        Ok(ris) => out.reserved_instances = ris,
        Err(e) => out.unavailable.push(e.to_string()),
    }
    match clients.savings_plans.describe_savings_plans(STATES).await {
        Ok(plans) => out.savings_plans = plans,
        Err(e) => out.unavailable.push(e.to_string()),
    }
    let active: Vec<String> = out
        .savings_plans
        .iter()
        .filter(|p| p.state == "active" && p.end > now)
        .filter(|p| p.plan_type == "Compute" || p.plan_type == "EC2Instance")
        .filter(|p| p.region.as_deref().is_none_or(|r| r == region))
        .map(|p| p.id.clone())
        .collect();
    for id in active {
        match clients
            .savings_plans
            .describe_savings_plan_rates(&id, &markets.types, region)
            .await
        {
            Ok(rates) => out.savings_plan_rates.extend(rates),
            Err(e) => out.unavailable.push(e.to_string()),
        }
    }
    if !out.unavailable.is_empty() {
        tracing::warn!(failed = ?out.unavailable, "some commitments could not be read; they are not applied");
    }
    out
}
