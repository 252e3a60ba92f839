//! The ManagedCluster pipeline's analysis stage: read the customer cluster with an EKS
//! token (sanitized as it arrives), analyse it with the AWS inventory and the price table,
//! and store the sanitized snapshot and the report under the tenant's prefix.

use kube::ResourceExt;

use super::Context;
use super::failure::{Category, Failure, Retry};
use super::inventory::Collected;
use crate::analysis::{AnalysisInput, AnalysisSettings, AwsInventory, InstanceTypeInfo};
use crate::api::{CustomerAccount, ManagedCluster};
use crate::audit::CallObserver;
use crate::cluster::reader;
use crate::cluster::snapshot::SnapshotWriter;
use crate::cluster::token::eks_token;
use crate::sanitize::Sanitizer;
use crate::store::Kind;

/// The condition type of this stage.
pub const CONDITION: &str = "Analysed";

/// What one analysis produced.
pub struct Analysed {
    /// The status-sized summary of the report.
    pub summary: crate::analysis::Summary,
    /// Monthly cost of the priced nodes, whole USD (`status.monthlyCost`).
    pub monthly_cost: i64,
    /// Monthly saving found, whole USD (`status.potentialSavings`).
    pub potential_savings: i64,
    /// Where the report is stored (store location + key).
    pub report_ref: String,
    /// The nodes consolidation would remove (for automation).
    pub removable: Vec<crate::analysis::RemovableNode>,
    /// Name, instance and age of every node (for automation).
    pub nodes: Vec<crate::automation::plan::NodeFacts>,
    /// The customer cluster, reached with the EKS token.
    pub client: kube::Client,
    /// What the status should say about the prices (a failed or stale Price List fetch).
    pub price_notes: Vec<String>,
    /// The report's figures as exported per cluster on `/metrics`.
    pub figures: crate::metrics::ClusterFigures,
    /// Where the report's prices came from, one line (the report's `pricesSource`).
    pub price_source: String,
}

/// Snapshot the customer cluster with an EKS token, read the spot prices and commitments
/// for its nodes ([`super::billing`]), analyse it with the AWS inventory, and store the
/// sanitized snapshot and the report under the tenant's prefix.
#[allow(clippy::too_many_arguments)]
pub async fn analyse(
    cluster: &ManagedCluster,
    account: &CustomerAccount,
    ctx: &Context,
    session: &crate::credentials::AccountSession,
    collected: &Collected,
    clients: &crate::aws::CustomerClients,
    observer: &dyn CallObserver,
    now: jiff::Timestamp,
) -> Result<Analysed, AnalyseError> {
    let (url, ca) = match &cluster.spec.api_endpoint {
        Some(e) => (Some(e.url.clone()), e.ca_bundle.clone()),
        None => (
            collected.cluster.endpoint.clone(),
            collected.cluster.certificate_authority.clone(),
        ),
    };
    let url = url.ok_or(AnalyseError::NoEndpoint)?;
    // Wait for room in the analyses' memory budget, and keep it until the analysis ends;
    // before the EKS token is made, which a long wait would let expire.
    let uid = cluster.metadata.uid.as_deref().unwrap_or_default();
    let reserved = ctx
        .analysis_memory
        .reserve(uid, collected.instances.len())
        .await;
    tracing::debug!(namespace = %cluster.namespace().unwrap_or_default(), name = %cluster.name_any(), reserved_mib = reserved.mib, budget_mib = ctx.analysis_memory.budget_mib(), "reading the cluster");
    let token = eks_token(
        &session.credentials,
        &cluster.spec.region,
        &cluster.spec.cluster_name,
        std::time::SystemTime::now(),
    )
    .map_err(AnalyseError::Token)?;
    let client =
        reader::client_for(&url, ca.as_deref(), token.token).map_err(AnalyseError::Endpoint)?;
    let sanitizer = Sanitizer::new(&cluster.spec.sanitizer.extra_sensitive_names);
    let tenant = account.metadata.uid.clone().unwrap_or_default();
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    // The sanitized snapshot goes to the store as it is read, and only the analysis's lean
    // input stays in memory: a 150,000-pod cluster never has to fit in memory as typed
    // objects or as one JSON buffer.
    let upload = ctx
        .store
        .put_parts(&tenant, Kind::Snapshot, &ns, &name, now)
        .await
        .map_err(AnalyseError::StoreSnapshot)?;
    let mut snapshot = SnapshotWriter::new(upload, &now.to_string());
    let mut input = AnalysisInput {
        taken_at: now.to_string(),
        ..AnalysisInput::default()
    };
    let read = reader::read_cluster(&client, &sanitizer, observer, &mut snapshot, &mut |o| {
        input.keep(o)
    })
    .await;
    match read {
        Ok(objects) => ctx.analysis_memory.read(uid, objects),
        Err(e) => {
            snapshot.abort().await;
            return Err(match e {
                reader::ReadError::Snapshot { cause } => AnalyseError::StoreSnapshot(cause),
                source => AnalyseError::ReadCluster { url, source },
            });
        }
    }
    // Completed before the analysis, so a report never points at a snapshot that is not
    // there.
    let snapshot_key = snapshot
        .finish()
        .await
        .map_err(AnalyseError::StoreSnapshot)?;
    // Prices the bundle and the prices file lack come from the Price List API (cached),
    // fetched here so that the analysis itself stays pure. DescribeInstanceTypes shapes
    // travel in the inventory and win inside the analysis.
    let (prices, price_notes, list_prices) = match &ctx.price_cache {
        Some(cache) => {
            let needed = super::prices::needed_prices(&input.nodes, &collected.instances);
            let priced = cache
                .table_for(&cluster.spec.region, &needed, observer)
                .await;
            (priced.table, priced.notes, priced.listed)
        }
        None => (ctx.prices.clone(), Vec::new(), Default::default()),
    };
    let nodes = super::automation::node_facts(&input.nodes);
    // Spot prices and commitments for what the nodes run on; a failed read never fails
    // the reconcile (the report says what was unavailable).
    let markets = super::billing::NodeMarkets::of(&input);
    let inventory = AwsInventory {
        region: cluster.spec.region.clone(),
        nodegroups: collected.nodegroups.clone(),
        instances: collected.instances.clone(),
        instance_types: collected
            .instance_types
            .iter()
            .map(|t| {
                let info = InstanceTypeInfo {
                    vcpus: t.vcpus,
                    memory_mib: t.memory_mib,
                    architecture: t.architecture.clone(),
                    max_pods: t.max_pods,
                };
                (t.name.clone(), info)
            })
            .collect(),
        spot_prices: super::billing::spot_prices(clients, &markets, now).await,
        commitments: super::billing::commitments(clients, &markets, &cluster.spec.region, now)
            .await,
        list_prices,
    };
    // CPU-bound (about a second at 150,000 pods): off the async workers, so other
    // reconciles, the health endpoints and metrics keep being served meanwhile.
    let settings = AnalysisSettings {
        scale_down_profile: match cluster.spec.scale_down_profile {
            crate::api::ScaleDownProfile::ClusterAutoscaler => {
                crate::analysis::ScaleDownProfile::ClusterAutoscaler
            }
            crate::api::ScaleDownProfile::Karpenter => crate::analysis::ScaleDownProfile::Karpenter,
        },
        ..AnalysisSettings::default()
    };
    let analysis = tokio::task::spawn_blocking(move || {
        crate::analysis::analyze(&input, &inventory, &prices, &settings)
    });
    let report = match analysis.await {
        Ok(report) => report,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => {
            forget_snapshot(ctx, &snapshot_key).await;
            return Err(AnalyseError::Interrupted);
        }
    };
    let report_json = serde_json::to_vec_pretty(&report).expect("reports serialize");
    let key = match ctx
        .store
        .put(&tenant, Kind::Report, &ns, &name, now, report_json)
        .await
    {
        Ok(key) => key,
        Err(e) => {
            forget_snapshot(ctx, &snapshot_key).await;
            return Err(AnalyseError::StoreReport(e));
        }
    };
    drop(reserved);
    let summary = report.summary();
    let figures = crate::metrics::ClusterFigures {
        monthly_cost: report.current_monthly_cost,
        savings: [
            report.savings.consolidation,
            report.savings.rightsizing,
            report.savings.spot,
        ],
        nodes: summary.nodes,
        unpriced_nodes: u32::try_from(report.unpriced_nodes).unwrap_or(u32::MAX),
        cpu_requested_ratio: report.utilization.cpu_percent / 100.0,
        memory_requested_ratio: report.utilization.memory_percent / 100.0,
        analysed_at: jiff::Timestamp::now().as_second(),
    };
    Ok(Analysed {
        figures,
        price_source: report.prices_source.clone(),
        summary,
        monthly_cost: crate::api::whole_units(report.current_monthly_cost),
        potential_savings: crate::api::whole_units(report.savings.total),
        report_ref: format!("{}/{key}", ctx.store.location.trim_end_matches('/')),
        removable: report.consolidation.removable_nodes,
        nodes,
        client,
        price_notes,
    })
}

/// A run is kept whole or not at all: delete the snapshot of a run that stores no report.
async fn forget_snapshot(ctx: &Context, key: &str) {
    if let Err(e) = ctx.store.delete(key).await {
        tracing::warn!(error = %e, key, "could not delete the snapshot of a run that stored no report");
    }
}

/// Why the analysis stage stopped; each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyseError {
    /// Neither EKS nor `spec.apiEndpoint` gives an API server URL.
    #[error("EKS reports no API endpoint for the cluster; set spec.apiEndpoint")]
    NoEndpoint,
    /// The EKS token (a presigned sts:GetCallerIdentity) could not be made.
    #[error("making the EKS token failed")]
    Token(#[source] crate::cluster::token::TokenError),
    /// The endpoint URL or CA bundle is unusable.
    #[error("the cluster's endpoint is unusable")]
    Endpoint(#[source] reader::ReadError),
    /// Listing the cluster's objects failed.
    #[error("could not read the cluster at {url}")]
    ReadCluster {
        /// The API server.
        url: String,
        /// What failed.
        #[source]
        source: reader::ReadError,
    },
    /// The blocking analysis task was cancelled (shutdown).
    #[error("the analysis was cancelled because the operator is shutting down")]
    Interrupted,
    /// Storing the sanitized snapshot failed.
    #[error("storing the sanitized snapshot failed")]
    StoreSnapshot(#[source] crate::store::StoreError),
    /// Storing the report failed.
    #[error("storing the report failed")]
    StoreReport(#[source] crate::store::StoreError),
}

impl From<AnalyseError> for Failure {
    fn from(e: AnalyseError) -> Self {
        let text = super::failure::describe(&e);
        let (category, message, retry) = match &e {
            AnalyseError::NoEndpoint => {
                (Category::NoEndpoint, text, Retry::After(super::WAIT_RETRY))
            }
            AnalyseError::Token(_) => {
                (Category::TokenFailed, text, Retry::After(super::WAIT_RETRY))
            }
            AnalyseError::Endpoint(_) => (
                Category::InvalidEndpoint,
                text,
                Retry::After(super::WAIT_RETRY),
            ),
            AnalyseError::ReadCluster { source, .. } if source.is_forbidden() => (
                Category::ClusterAccessDenied,
                format!(
                    "The cluster refused crossguard's role: grant it the read-only access from `crossguard onboarding-rbac` ({text})"
                ),
                Retry::After(super::WAIT_RETRY),
            ),
            AnalyseError::ReadCluster { .. } => (
                Category::ClusterUnreachable,
                text,
                Retry::After(super::WAIT_RETRY),
            ),
            AnalyseError::Interrupted => (
                Category::AnalysisInterrupted,
                text,
                Retry::After(super::WAIT_RETRY),
            ),
            AnalyseError::StoreSnapshot(s) | AnalyseError::StoreReport(s)
                if s.is_tenant_erased() =>
            {
                (Category::AccountDeleting, text, Retry::AwaitChange)
            }
            AnalyseError::StoreSnapshot(_) | AnalyseError::StoreReport(_) => {
                (Category::StoreUnavailable, text, Retry::Backoff)
            }
        };
        Failure::new(category, message, retry).on(CONDITION)
    }
}
