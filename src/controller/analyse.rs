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
use crate::cluster::token::eks_token;
use crate::sanitize::Sanitizer;
use crate::store::Kind;

/// The condition type of this stage.
pub const CONDITION: &str = "Analysed";

/// What one analysis produced.
pub struct Analysed {
    /// The status-sized summary of the report.
    pub summary: crate::analysis::Summary,
    /// Where the report is stored (store location + key).
    pub report_ref: String,
    /// The nodes consolidation would remove (for automation).
    pub removable: Vec<crate::analysis::RemovableNode>,
    /// Name, instance and age of every node (for automation).
    pub nodes: Vec<crate::automation::plan::NodeFacts>,
    /// The customer cluster, reached with the EKS token.
    pub client: kube::Client,
}

/// Snapshot the customer cluster with an EKS token, analyse it with the AWS inventory,
/// and store the sanitized snapshot and the report under the tenant's prefix.
pub async fn analyse(
    cluster: &ManagedCluster,
    account: &CustomerAccount,
    ctx: &Context,
    session: &crate::credentials::AccountSession,
    collected: &Collected,
    observer: &dyn CallObserver,
    now: jiff::Timestamp,
) -> Result<Analysed, Failure> {
    let problem = |category: Category, message: String| {
        Failure::new(category, message, Retry::After(super::WAIT_RETRY)).on(CONDITION)
    };
    let (url, ca) = match &cluster.spec.api_endpoint {
        Some(e) => (Some(e.url.clone()), e.ca_bundle.clone()),
        None => (
            collected.cluster.endpoint.clone(),
            collected.cluster.certificate_authority.clone(),
        ),
    };
    let url = url.ok_or_else(|| {
        problem(
            Category::NoEndpoint,
            "EKS reports no API endpoint for the cluster; set spec.apiEndpoint".to_string(),
        )
    })?;
    let token = eks_token(
        &session.credentials,
        &cluster.spec.region,
        &cluster.spec.cluster_name,
        std::time::SystemTime::now(),
    )
    .map_err(|e| problem(Category::TokenFailed, e.to_string()))?;
    let client = reader::client_for(&url, ca.as_deref(), token.token)
        .map_err(|e| problem(Category::InvalidEndpoint, e.to_string()))?;
    let sanitizer = Sanitizer::new(&cluster.spec.sanitizer.extra_sensitive_names);
    let snapshot = reader::read_snapshot(&client, &sanitizer, observer, now.to_string()).await.map_err(|e| {
        if e.is_forbidden() {
            problem(
                Category::ClusterAccessDenied,
                format!("The cluster refused crossguard's role: grant it the read-only access from `crossguard onboarding-rbac` ({e})"),
            )
        } else {
            problem(Category::ClusterUnreachable, format!("Could not read the cluster at {url}: {e}"))
        }
    })?;
    let inventory = AwsInventory {
        region: cluster.spec.region.clone(),
        nodegroups: collected.nodegroups.clone(),
        instances: collected.instances.clone(),
    };
    // Instance shapes from DescribeInstanceTypes win over the bundled table's.
    let prices = ctx
        .prices
        .clone()
        .with_instance_types(collected.instance_types.iter().map(|t| {
            let info = InstanceTypeInfo {
                vcpus: t.vcpus,
                memory_mib: t.memory_mib,
                architecture: t.architecture.clone(),
                max_pods: t.max_pods,
            };
            (t.name.clone(), info)
        }));
    // What automation and the store need from the typed snapshot is taken first; the
    // analysis then gets the snapshot's fields moved into its lean input, not copied.
    let nodes = super::automation::node_facts(&snapshot);
    let snapshot_json = serde_json::to_vec(&snapshot).expect("snapshots serialize");
    let input = AnalysisInput::from(snapshot);
    // CPU-bound (about a second at 150,000 pods): off the async workers, so other
    // reconciles, the health endpoints and metrics keep being served meanwhile.
    let analysis = tokio::task::spawn_blocking(move || {
        crate::analysis::analyze(&input, &inventory, &prices, &AnalysisSettings::default())
    });
    let report = match analysis.await {
        Ok(report) => report,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => {
            return Err(problem(
                Category::AnalysisInterrupted,
                "The analysis was cancelled because the operator is shutting down".to_string(),
            ));
        }
    };
    let tenant = account.metadata.uid.clone().unwrap_or_default();
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    ctx.store
        .put(&tenant, Kind::Snapshot, &ns, &name, now, snapshot_json)
        .await
        .map_err(store_failed)?;
    let report_json = serde_json::to_vec_pretty(&report).expect("reports serialize");
    let key = ctx
        .store
        .put(&tenant, Kind::Report, &ns, &name, now, report_json)
        .await
        .map_err(store_failed)?;
    Ok(Analysed {
        summary: report.summary(),
        report_ref: format!("{}/{key}", ctx.store.location.trim_end_matches('/')),
        removable: report.consolidation.removable_nodes,
        nodes,
        client,
    })
}

fn store_failed(e: crate::store::StoreError) -> Failure {
    Failure::new(
        Category::StoreUnavailable,
        format!("The snapshot or report could not be stored: {e}"),
        Retry::Backoff,
    )
    .on(CONDITION)
}
