//! Wiring of the two controllers into kube-runtime: watches, the account → clusters
//! mapping, shutdown on signal.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};

use super::{Context, customer_account, error_policy, managed_cluster};
use crate::api::{CustomerAccount, ManagedCluster};

/// Run both controllers until a shutdown signal; `namespace` limits them to one namespace.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let api = |client: Client| -> (Api<CustomerAccount>, Api<ManagedCluster>) {
        match &namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client, ns),
            ),
            None => (Api::all(client.clone()), Api::all(client)),
        }
    };
    let (accounts, clusters) = api(ctx.client.clone());

    let account_controller = Controller::new(accounts.clone(), watcher::Config::default())
        .shutdown_on_signal()
        .run(customer_account::reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));

    let cluster_controller = Controller::new(clusters, watcher::Config::default());
    let clusters_store = cluster_controller.store();
    let cluster_controller = cluster_controller
        // A change to an account (it became Ready, was suspended…) re-reconciles its clusters.
        .watches(
            accounts,
            watcher::Config::default(),
            move |account: CustomerAccount| {
                let ns = account.namespace();
                let name = account.name_any();
                clusters_store
                    .state()
                    .into_iter()
                    .filter(|mc| mc.namespace() == ns && mc.spec.account_ref.name == name)
                    .map(|mc| kube::runtime::reflector::ObjectRef::from_obj(mc.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(managed_cluster::reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));

    tokio::join!(account_controller, cluster_controller);
}
