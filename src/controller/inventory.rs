//! The ManagedCluster pipeline's inventory stage: what EKS, Auto Scaling and EC2 say about
//! one cluster, read with the customer session, and which of it carries crossguard's
//! management tags for that cluster.

use std::collections::BTreeSet;

use super::failure::{Category, Failure, Retry};
use crate::api::Inventory;
use crate::aws::{
    AutoScalingGroup, AwsError, AwsErrorKind, CustomerClients, EksCluster, Instance,
    InstanceTypeShape, Nodegroup, is_managed_for,
};

/// The condition type of this stage.
pub const CONDITION: &str = "InventoryCollected";

/// Everything read from AWS about one cluster.
pub struct Collected {
    /// The counts for status.
    pub inventory: Inventory,
    /// DescribeCluster's answer.
    pub cluster: EksCluster,
    /// The cluster's nodegroups.
    pub nodegroups: Vec<Nodegroup>,
    /// Their Auto Scaling groups.
    pub groups: Vec<AutoScalingGroup>,
    /// The cluster's live instances.
    pub instances: Vec<Instance>,
    /// Shapes of the instance types in use (DescribeInstanceTypes).
    pub instance_types: Vec<InstanceTypeShape>,
}

/// Describe the cluster, its nodegroups, their Auto Scaling groups and the cluster's
/// instances, and count what carries crossguard's management tags for this cluster.
pub async fn collect_inventory(
    clients: &CustomerClients,
    cluster: &str,
) -> Result<Inventory, AwsError> {
    Ok(collect(clients, cluster).await?.inventory)
}

/// Like [`collect_inventory`], keeping what was read for the analysis.
pub async fn collect(clients: &CustomerClients, cluster: &str) -> Result<Collected, AwsError> {
    let eks = clients.eks.describe_cluster(cluster).await?;
    let mut inventory = Inventory {
        kubernetes_version: eks.version.clone(),
        cluster_status: eks.status.clone(),
        ..Default::default()
    };
    let mut nodegroups = Vec::new();
    let mut instances = Vec::new();
    let mut asg_names = BTreeSet::new();
    for name in clients.eks.list_nodegroups(cluster).await? {
        let ng = clients.eks.describe_nodegroup(cluster, &name).await?;
        inventory.nodegroups += 1;
        if is_managed_for(&ng.tags, cluster) {
            inventory.managed_nodegroups += 1;
        }
        asg_names.extend(ng.auto_scaling_groups.iter().cloned());
        nodegroups.push(ng);
    }
    let asg_names: Vec<String> = asg_names.into_iter().collect();
    let groups = clients.autoscaling.describe_groups(&asg_names).await?;
    for group in &groups {
        inventory.auto_scaling_groups += 1;
        if is_managed_for(&group.tags, cluster) {
            inventory.managed_auto_scaling_groups += 1;
        }
    }
    for instance in clients.ec2.describe_cluster_instances(cluster).await? {
        if instance
            .state
            .as_deref()
            .is_some_and(|s| s == "terminated" || s == "shutting-down")
        {
            continue;
        }
        inventory.instances += 1;
        if is_managed_for(&instance.tags, cluster) {
            inventory.managed_instances += 1;
        }
        instances.push(instance);
    }
    let types: BTreeSet<String> = instances
        .iter()
        .filter_map(|i| i.instance_type.clone())
        .collect();
    let types: Vec<String> = types.into_iter().collect();
    let instance_types = clients.ec2.describe_instance_types(&types).await?;
    Ok(Collected {
        inventory,
        cluster: eks,
        nodegroups,
        groups,
        instances,
        instance_types,
    })
}

/// An inventory call's failure as the stage's outcome: transient errors back off,
/// a missing cluster or a missing permission says what to fix.
pub fn failure(e: AwsError, cluster: &str, region: &str, account_id: &str) -> Failure {
    let (category, message, retry) = match e.kind {
        k if k.is_transient() => (
            Category::AwsUnavailable,
            format!(
                "AWS could not be reached or throttled us while reading the inventory; retrying with backoff: {e}"
            ),
            Retry::Backoff,
        ),
        AwsErrorKind::NotFound => (
            Category::ClusterNotFound,
            format!("EKS cluster {cluster} was not found in {region} of account {account_id}: {e}"),
            Retry::After(super::WAIT_RETRY),
        ),
        AwsErrorKind::AccessDenied => (
            Category::AccessDenied,
            format!(
                "The role lacks a permission crossguard needs; update it from `crossguard onboarding-template`: {e}"
            ),
            Retry::After(super::WAIT_RETRY),
        ),
        _ => (
            Category::InventoryFailed,
            e.to_string(),
            Retry::After(super::WAIT_RETRY),
        ),
    };
    Failure::new(category, message, retry).on(CONDITION)
}

/// The one-line summary in the stage's condition.
pub fn summary(inventory: &Inventory) -> String {
    format!(
        "{} nodegroups ({} managed), {} Auto Scaling groups ({} managed), {} instances ({} managed)",
        inventory.nodegroups,
        inventory.managed_nodegroups,
        inventory.auto_scaling_groups,
        inventory.managed_auto_scaling_groups,
        inventory.instances,
        inventory.managed_instances
    )
}
