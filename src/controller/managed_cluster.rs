//! Reconciles `ManagedCluster`: validate → resolve the account (same namespace only) →
//! session from the broker → inventory of EKS, Auto Scaling and EC2 → status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};
use tracing::Instrument;

use super::status::{apply_status, publish_transition};
use super::{Context, Error, FINALIZER, kube_err};
use crate::analysis::{AnalysisInput, AnalysisSettings, AwsInventory, InstanceTypeInfo};
use crate::api::{
    Condition, ConditionStatus, CustomerAccount, Inventory, ManagedCluster, ManagedClusterStatus,
    Mode, set_condition, validate,
};
use crate::audit::CallObserver;
use crate::aws::{
    AutoScalingGroup, AwsErrorKind, CustomerClients, EksCluster, Instance, InstanceTypeShape,
    Nodegroup, is_managed_for,
};
use crate::cluster::reader;
use crate::cluster::token::eks_token;
use crate::controller::customer_account::{
    EXTERNAL_ID_KEY, external_id_secret_name, session_params, tenant,
};
use crate::sanitize::Sanitizer;
use crate::store::Kind;

/// How often a cluster waiting on its account (or on a customer-side fix) is retried.
const WAIT_RETRY: Duration = Duration::from_secs(60);

/// Entry point for the controller.
pub async fn reconcile(cluster: Arc<ManagedCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = cluster.namespace().unwrap_or_default();
    let key = format!("ManagedCluster/{ns}/{}", cluster.name_any());
    let span = tracing::info_span!("reconcile", kind = "ManagedCluster", namespace = %ns, name = %cluster.name_any());
    let api: Api<ManagedCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, cluster, |event| async {
        match event {
            Finalizer::Apply(cluster) => apply(cluster, &ctx).await,
            Finalizer::Cleanup(cluster) => cleanup(cluster, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let outcome = match &result {
        Ok(_) => {
            ctx.succeeded(&key);
            "ok"
        }
        Err(e) => e.category(),
    };
    ctx.metrics
        .reconcile("ManagedCluster", outcome, started.elapsed());
    result
}

/// The outcome of resolving `spec.accountRef`.
enum Resolved {
    Account(Box<CustomerAccount>),
    Problem {
        reason: &'static str,
        message: String,
        retry: Option<Duration>,
    },
}

async fn resolve_account(cluster: &ManagedCluster, ctx: &Context) -> Result<Resolved, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let reference = &cluster.spec.account_ref;
    if let Some(other) = reference.namespace.as_deref().filter(|n| *n != ns) {
        return Ok(Resolved::Problem {
            reason: "CrossNamespaceReference",
            message: format!(
                "spec.accountRef points at namespace {other:?}; a ManagedCluster may only use a CustomerAccount in its own namespace ({ns:?})"
            ),
            retry: None,
        });
    }
    let accounts: Api<CustomerAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(account) = accounts
        .get_opt(&reference.name)
        .await
        .map_err(kube_err("get CustomerAccount"))?
    else {
        return Ok(Resolved::Problem {
            reason: "AccountNotFound",
            message: format!(
                "CustomerAccount {:?} does not exist in namespace {ns:?}",
                reference.name
            ),
            retry: Some(WAIT_RETRY),
        });
    };
    if account.metadata.deletion_timestamp.is_some() {
        return Ok(Resolved::Problem {
            reason: "AccountDeleting",
            message: format!("CustomerAccount {:?} is being deleted", reference.name),
            retry: None,
        });
    }
    let ready = account
        .status
        .as_ref()
        .and_then(|s| crate::api::conditions_find(&s.conditions, "Ready"));
    match ready {
        Some(c) if c.is_true() => Ok(Resolved::Account(Box::new(account))),
        Some(c) => Ok(Resolved::Problem {
            reason: "AccountNotReady",
            message: format!(
                "CustomerAccount {:?} is not Ready ({}): {}",
                reference.name, c.reason, c.message
            ),
            retry: Some(WAIT_RETRY),
        }),
        None => Ok(Resolved::Problem {
            reason: "AccountNotReady",
            message: format!(
                "CustomerAccount {:?} has not been verified yet",
                reference.name
            ),
            retry: Some(WAIT_RETRY),
        }),
    }
}

async fn apply(cluster: Arc<ManagedCluster>, ctx: &Context) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let api: Api<ManagedCluster> = Api::namespaced(ctx.client.clone(), &ns);
    // Status from the API server, not the watch cache: the cache may not have seen this
    // operator's latest writes yet (an automation intent cleared, a removal recorded), and
    // every status write below starts from what is read here.
    let old = api
        .get_status(&cluster.name_any())
        .await
        .map_err(kube_err("get ManagedCluster status"))?
        .status;
    let mut status = old.clone().unwrap_or_default();
    let generation = cluster.metadata.generation.unwrap_or_default();
    let now = ctx.clock.now();
    let cond = |t: &str, s: ConditionStatus, r: &str, m: String| {
        Condition::new(t, s, r, m, generation, now)
    };

    let valid = match validate::managed_cluster(&cluster) {
        Ok(v) => v,
        Err(problems) => {
            let message = format!("Fix the spec: {}", problems.join("; "));
            status.observed_generation = generation;
            set_condition(
                &mut status.conditions,
                cond("Ready", ConditionStatus::False, "InvalidSpec", message),
            );
            finish(&api, &cluster, ctx, old.as_ref(), &status).await?;
            return Ok(Action::await_change());
        }
    };

    let account = match resolve_account(&cluster, ctx).await? {
        Resolved::Account(a) => a,
        Resolved::Problem {
            reason,
            message,
            retry,
        } => {
            status.observed_generation = generation;
            set_condition(
                &mut status.conditions,
                cond(
                    "AccountResolved",
                    ConditionStatus::False,
                    reason,
                    message.clone(),
                ),
            );
            set_condition(
                &mut status.conditions,
                cond("Ready", ConditionStatus::False, reason, message),
            );
            finish(&api, &cluster, ctx, old.as_ref(), &status).await?;
            return Ok(retry
                .map(Action::requeue)
                .unwrap_or_else(Action::await_change));
        }
    };

    let mut problems = Vec::new();
    if !account.spec.regions.contains(&cluster.spec.region) {
        problems.push(format!(
            "spec.region {} is not one of CustomerAccount {:?}'s regions {:?}",
            cluster.spec.region,
            account.name_any(),
            account.spec.regions
        ));
    }
    if cluster.spec.mode > account.spec.mode {
        problems.push(format!(
            "spec.mode {} exceeds CustomerAccount {:?}'s mode {}; lower it or raise the account's",
            cluster.spec.mode,
            account.name_any(),
            account.spec.mode
        ));
    }
    let account_valid = validate::customer_account(&account);
    if !problems.is_empty() || account_valid.is_err() {
        let message = if problems.is_empty() {
            "the CustomerAccount's spec is invalid".to_string()
        } else {
            problems.join("; ")
        };
        let reason = if problems.is_empty() {
            "AccountNotReady"
        } else {
            "InvalidSpec"
        };
        status.observed_generation = generation;
        set_condition(
            &mut status.conditions,
            cond("Ready", ConditionStatus::False, reason, message),
        );
        finish(&api, &cluster, ctx, old.as_ref(), &status).await?;
        return Ok(Action::await_change());
    }
    let effective_mode = cluster.spec.mode.min(account.spec.mode);
    set_condition(
        &mut status.conditions,
        cond(
            "AccountResolved",
            ConditionStatus::True,
            "Resolved",
            format!("Using CustomerAccount {:?}", account.name_any()),
        ),
    );

    // Nothing changed since the last complete run and it is not due yet: do no AWS calls.
    let can_settle = effective_mode == Mode::Automated && !cluster.spec.automation.dry_run;
    if let Some(wait) = not_due(
        old.as_ref(),
        generation,
        valid.analysis_interval,
        now,
        can_settle,
    ) {
        return Ok(Action::requeue(wait));
    }

    let external_id = read_external_id(&account, ctx).await?;
    let session_duration = account_valid
        .map(|v| v.session_duration)
        .unwrap_or(validate::MAX_SESSION);
    let params = session_params(&account, external_id, session_duration);
    let trail = ctx.audit(tenant(&account, Some(cluster.name_any())));
    let observer: Arc<dyn CallObserver> = trail.clone();
    let session = match ctx.broker.session(&params, &observer).await {
        Ok(s) => s,
        Err(e) if e.is_transient() => return Err(Error::Broker(e)),
        Err(e) => {
            let message = format!(
                "No session for CustomerAccount {:?}: {e}",
                account.name_any()
            );
            status.observed_generation = generation;
            set_condition(
                &mut status.conditions,
                cond("Ready", ConditionStatus::False, "AccountNotReady", message),
            );
            finish(&api, &cluster, ctx, old.as_ref(), &status).await?;
            return Ok(Action::requeue(WAIT_RETRY));
        }
    };
    let clients = ctx
        .broker
        .clients(&session, &cluster.spec.region, observer.clone());
    let collected = collect(&clients, &cluster.spec.cluster_name).await;
    // Automation state is carried over from the last status unless the run changes it.
    let collected = match collected {
        Ok(c) => c,
        Err(e) => {
            trail.flush(&ctx.store).await.map_err(Error::Store)?;
            if e.kind.is_transient() {
                return Err(Error::Aws(e));
            }
            let (reason, message) = match e.kind {
                AwsErrorKind::NotFound => (
                    "ClusterNotFound",
                    format!(
                        "EKS cluster {} was not found in {} of account {}: {e}",
                        cluster.spec.cluster_name, cluster.spec.region, account.spec.account_id
                    ),
                ),
                AwsErrorKind::AccessDenied => (
                    "AccessDenied",
                    format!(
                        "The role lacks a permission crossguard needs; update it from `crossguard onboarding-template`: {e}"
                    ),
                ),
                _ => ("InventoryFailed", e.to_string()),
            };
            status.observed_generation = generation;
            set_condition(
                &mut status.conditions,
                cond(
                    "InventoryCollected",
                    ConditionStatus::False,
                    reason,
                    message.clone(),
                ),
            );
            set_condition(
                &mut status.conditions,
                cond("Ready", ConditionStatus::False, reason, message),
            );
            finish(&api, &cluster, ctx, old.as_ref(), &status).await?;
            return Ok(Action::requeue(WAIT_RETRY));
        }
    };
    let inventory = collected.inventory.clone();
    let message = format!(
        "{} nodegroups ({} managed), {} Auto Scaling groups ({} managed), {} instances ({} managed)",
        inventory.nodegroups,
        inventory.managed_nodegroups,
        inventory.auto_scaling_groups,
        inventory.managed_auto_scaling_groups,
        inventory.instances,
        inventory.managed_instances
    );
    status.inventory = Some(inventory);
    status.effective_mode = Some(effective_mode);
    status.observed_generation = generation;
    set_condition(
        &mut status.conditions,
        cond(
            "InventoryCollected",
            ConditionStatus::True,
            "Collected",
            message,
        ),
    );

    // Read the cluster itself (sanitized as it arrives), analyse, and store both.
    let analysed = analyse(
        &cluster,
        &account,
        ctx,
        &session,
        &collected,
        trail.as_ref(),
        now,
    )
    .await;
    let outcome = match analysed {
        Ok(outcome) => outcome,
        Err(e) => {
            trail.flush(&ctx.store).await.map_err(Error::Store)?;
            return match e {
                AnalyseError::Store(e) => Err(Error::Store(e)),
                AnalyseError::Cluster { reason, message } => {
                    set_condition(
                        &mut status.conditions,
                        cond("Analysed", ConditionStatus::False, reason, message.clone()),
                    );
                    set_condition(
                        &mut status.conditions,
                        cond("Ready", ConditionStatus::False, reason, message),
                    );
                    finish(&api, &cluster, ctx, old.as_ref(), &status).await?;
                    Ok(Action::requeue(WAIT_RETRY))
                }
            };
        }
    };
    // The analysis results go into status before automation runs, so that every status
    // write automation makes (its intents) already says this run's analysis is done.
    status.monthly_cost = Some(outcome.summary.monthly_cost.clone());
    status.potential_savings = Some(outcome.summary.monthly_savings.clone());
    status.report_ref = Some(outcome.report_ref.clone());
    status.last_analysis_at = Some(now.to_string());
    let mut message = format!(
        "{} nodes analysed: {} a month, {} ({}) could be saved",
        outcome.summary.nodes,
        outcome.summary.monthly_cost,
        outcome.summary.monthly_savings,
        outcome.summary.savings_percent
    );
    if outcome.summary.unpriced_nodes > 0 {
        message.push_str(&format!(
            "; {} nodes have an unknown price",
            outcome.summary.unpriced_nodes
        ));
    }
    set_condition(
        &mut status.conditions,
        cond("Analysed", ConditionStatus::True, "Analysed", message),
    );
    set_condition(
        &mut status.conditions,
        cond(
            "Ready",
            ConditionStatus::True,
            "Observed",
            format!(
                "Cluster {} observed in {}",
                cluster.spec.cluster_name,
                effective_mode_text(effective_mode)
            ),
        ),
    );
    let mut verify_again = None;
    if effective_mode == Mode::Automated {
        let automated = super::automation::automate(
            super::automation::Inputs {
                cluster: &cluster,
                api: &api,
                ctx,
                clients: &clients,
                collected: &collected,
                removable: &outcome.removable,
                nodes: &outcome.nodes,
                client: &outcome.client,
                trail: trail.as_ref(),
                drain_timeout: valid.drain_timeout,
                min_node_age: valid.min_node_age,
            },
            &mut status,
        )
        .await;
        match automated {
            Ok(v) => verify_again = v,
            Err(e) => {
                trail.flush(&ctx.store).await.map_err(Error::Store)?;
                return Err(e);
            }
        }
    } else if let Some(p) = &status.pending_action {
        // ReadOnly now means no write at all, not even an uncordon: say what is left.
        set_condition(
            &mut status.conditions,
            cond(
                "Automation",
                ConditionStatus::False,
                "ActionLeftPending",
                format!(
                    "Automation was turned off during {} on node {} (phase {}): the node may still be cordoned. Set mode Automated again to settle it, or uncordon the node by hand",
                    p.action, p.node, p.phase
                ),
            ),
        );
    } else {
        crate::api::remove_condition(&mut status.conditions, "Automation");
    }
    trail.flush(&ctx.store).await.map_err(Error::Store)?;
    finish(&api, &cluster, ctx, old.as_ref(), &status).await?;
    Ok(Action::requeue(
        verify_again.unwrap_or(valid.analysis_interval),
    ))
}

/// What one analysis produced.
struct Analysed {
    summary: crate::analysis::Summary,
    report_ref: String,
    /// The nodes consolidation would remove (for automation).
    removable: Vec<crate::analysis::RemovableNode>,
    /// Name, instance and age of every node (for automation).
    nodes: Vec<crate::automation::plan::NodeFacts>,
    /// The customer cluster, reached with the EKS token.
    client: kube::Client,
}

/// Why no analysis could be made.
enum AnalyseError {
    /// The customer's cluster could not be reached or read; what to do is in the message.
    Cluster {
        reason: &'static str,
        message: String,
    },
    /// Storing the snapshot or report failed (transient).
    Store(crate::store::StoreError),
}

/// Snapshot the customer cluster with an EKS token, analyse it with the AWS inventory,
/// and store the sanitized snapshot and the report under the tenant's prefix.
async fn analyse(
    cluster: &ManagedCluster,
    account: &CustomerAccount,
    ctx: &Context,
    session: &crate::credentials::AccountSession,
    collected: &Collected,
    observer: &dyn CallObserver,
    now: jiff::Timestamp,
) -> Result<Analysed, AnalyseError> {
    let problem = |reason: &'static str, message: String| AnalyseError::Cluster { reason, message };
    let (url, ca) = match &cluster.spec.api_endpoint {
        Some(e) => (Some(e.url.clone()), e.ca_bundle.clone()),
        None => (
            collected.cluster.endpoint.clone(),
            collected.cluster.certificate_authority.clone(),
        ),
    };
    let url = url.ok_or_else(|| {
        problem(
            "NoEndpoint",
            "EKS reports no API endpoint for the cluster; set spec.apiEndpoint".to_string(),
        )
    })?;
    let token = eks_token(
        &session.credentials,
        &cluster.spec.region,
        &cluster.spec.cluster_name,
        std::time::SystemTime::now(),
    )
    .map_err(|e| problem("TokenFailed", e.to_string()))?;
    let client = reader::client_for(&url, ca.as_deref(), token.token)
        .map_err(|e| problem("InvalidEndpoint", e.to_string()))?;
    let sanitizer = Sanitizer::new(&cluster.spec.sanitizer.extra_sensitive_names);
    let snapshot = reader::read_snapshot(&client, &sanitizer, observer, now.to_string()).await.map_err(|e| {
        if e.is_forbidden() {
            problem(
                "ClusterAccessDenied",
                format!("The cluster refused crossguard's role: grant it the read-only access from `crossguard onboarding-rbac` ({e})"),
            )
        } else {
            problem("ClusterUnreachable", format!("Could not read the cluster at {url}: {e}"))
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
                "AnalysisInterrupted",
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
        .map_err(AnalyseError::Store)?;
    let report_json = serde_json::to_vec_pretty(&report).expect("reports serialize");
    let key = ctx
        .store
        .put(&tenant, Kind::Report, &ns, &name, now, report_json)
        .await
        .map_err(AnalyseError::Store)?;
    Ok(Analysed {
        summary: report.summary(),
        report_ref: format!("{}/{key}", ctx.store.location.trim_end_matches('/')),
        removable: report.consolidation.removable_nodes,
        nodes,
        client,
    })
}

fn effective_mode_text(mode: Mode) -> &'static str {
    match mode {
        Mode::ReadOnly => "ReadOnly mode",
        Mode::Automated => "Automated mode",
    }
}

/// Time left until the next run is due, when the last run covered this generation and
/// succeeded; None when a run should happen now. A pending action that this run could
/// settle (`can_settle`: Automated, not a dry run) makes a run due every
/// [`VERIFY_RETRY`](crate::automation::VERIFY_RETRY), not on every status write.
fn not_due(
    old: Option<&ManagedClusterStatus>,
    generation: i64,
    interval: Duration,
    now: jiff::Timestamp,
    can_settle: bool,
) -> Option<Duration> {
    let old = old?;
    let ready = crate::api::conditions_find(&old.conditions, "Ready")?;
    if !ready.is_true() || old.observed_generation != generation {
        return None;
    }
    let last: jiff::Timestamp = old.last_analysis_at.as_deref()?.parse().ok()?;
    let interval = if can_settle && old.pending_action.is_some() {
        interval.min(crate::automation::VERIFY_RETRY)
    } else {
        interval
    };
    let due = last.as_second() + interval.as_secs() as i64;
    let left = due - now.as_second();
    (left > 0).then(|| Duration::from_secs(left as u64))
}

async fn read_external_id(account: &CustomerAccount, ctx: &Context) -> Result<String, Error> {
    let ns = account.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = external_id_secret_name(&account.name_any());
    let secret = secrets
        .get(&name)
        .await
        .map_err(kube_err("get ExternalId secret"))?;
    let uid = account.metadata.uid.as_deref().unwrap_or_default();
    let owned = secret
        .owner_references()
        .iter()
        .any(|o| o.uid == uid && o.controller == Some(true));
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(EXTERNAL_ID_KEY))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .filter(|_| owned)
        .ok_or(Error::SecretConflict {
            namespace: ns,
            name,
        })
}

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
) -> Result<Inventory, crate::aws::AwsError> {
    Ok(collect(clients, cluster).await?.inventory)
}

/// Like [`collect_inventory`], keeping what was read for the analysis.
pub async fn collect(
    clients: &CustomerClients,
    cluster: &str,
) -> Result<Collected, crate::aws::AwsError> {
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

async fn cleanup(cluster: Arc<ManagedCluster>, ctx: &Context) -> Result<Action, Error> {
    // Nothing in the customer's account is owned by a ManagedCluster; forget per-cluster state.
    ctx.succeeded(&format!(
        "ManagedCluster/{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    ));
    tracing::info!(namespace = %cluster.namespace().unwrap_or_default(), name = %cluster.name_any(), "cluster deleted");
    Ok(Action::await_change())
}

async fn finish(
    api: &Api<ManagedCluster>,
    cluster: &ManagedCluster,
    ctx: &Context,
    old: Option<&ManagedClusterStatus>,
    new: &ManagedClusterStatus,
) -> Result<(), Error> {
    publish_transition(
        ctx,
        cluster,
        old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
        &new.conditions,
    )
    .await;
    apply_status(api, cluster, old, new).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(ready: bool, generation: i64, last: &str) -> ManagedClusterStatus {
        let s = if ready {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        ManagedClusterStatus {
            conditions: vec![Condition::new(
                "Ready",
                s,
                "Observed",
                "",
                generation,
                jiff::Timestamp::UNIX_EPOCH,
            )],
            last_analysis_at: Some(last.into()),
            observed_generation: generation,
            ..Default::default()
        }
    }

    #[test]
    fn due_rules() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let interval = Duration::from_secs(900);
        let recent = status(true, 3, "2026-01-01T00:05:00Z");
        assert_eq!(
            not_due(Some(&recent), 3, interval, now, true),
            Some(Duration::from_secs(600))
        );
        // A new generation, a failed last run or an elapsed interval all mean: run now.
        assert_eq!(not_due(Some(&recent), 4, interval, now, true), None);
        let failed = status(false, 3, "2026-01-01T00:05:00Z");
        assert_eq!(not_due(Some(&failed), 3, interval, now, true), None);
        let old = status(true, 3, "2025-12-31T23:00:00Z");
        assert_eq!(not_due(Some(&old), 3, interval, now, true), None);
        assert_eq!(not_due(None, 3, interval, now, true), None);
        // A pending action brings the next run forward to the verify interval when it can be
        // settled, and only then; never to "every status write".
        let mut pending = status(true, 3, "2026-01-01T00:09:55Z");
        pending.pending_action = Some(crate::api::PendingAction {
            started_at: "2026-01-01T00:09:50Z".into(),
            phase: "Calling".into(),
            node: "n".into(),
            action: "eks:UpdateNodegroupConfig".into(),
            auto_scaling_group: None,
            instance_id: Some("i-1".into()),
            nodegroup: Some("ng".into()),
            from_size: Some(3),
            to_size: Some(2),
        });
        assert_eq!(
            not_due(Some(&pending), 3, interval, now, true),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            not_due(Some(&pending), 3, interval, now, false),
            Some(Duration::from_secs(895))
        );
        let later: jiff::Timestamp = "2026-01-01T00:10:06Z".parse().unwrap();
        assert_eq!(not_due(Some(&pending), 3, interval, later, true), None);
    }
}
