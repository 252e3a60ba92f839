//! Read a customer cluster's state, read-only: nodes, pods, workloads and PDBs, page by
//! page (`limit`/`continue`) so even a 150,000-pod cluster never has to fit in one
//! response, sanitizing every object as it arrives. Secrets and ConfigMaps are never read:
//! there is no code path here that names them.

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client, Resource};
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use super::snapshot::ClusterSnapshot;
use crate::audit::CallObserver;
use crate::sanitize::Sanitizer;

/// Objects per list page.
pub const PAGE_SIZE: u32 = 500;

/// Reading the customer cluster failed. The message is what a customer reads in the
/// ManagedCluster's status, so it carries the client's answer; that answer is therefore
/// not also the `source()`, and a `{:#}` chain prints it once.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The endpoint or CA bundle is unusable.
    #[error("invalid cluster endpoint: {0}")]
    Endpoint(String),
    /// A list call failed.
    #[error("listing {kind} failed: {cause}")]
    List {
        /// What was being listed.
        kind: &'static str,
        /// The client error (part of the message, not the `source()`).
        cause: kube::Error,
    },
    /// An object did not have the expected shape.
    #[error("decoding {kind} failed: {cause}")]
    Decode {
        /// What was being decoded.
        kind: &'static str,
        /// The decode error (part of the message, not the `source()`).
        cause: serde_json::Error,
    },
}

impl ReadError {
    /// True when the cluster refused us (401/403): the customer must grant access.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ReadError::List { cause: kube::Error::Api(s), .. } if s.code == 401 || s.code == 403)
    }
}

/// A client for the customer cluster at `url`, trusting `ca_bundle_b64` (base64 PEM, as
/// EKS returns it) and authenticating with `token`.
pub fn client_for(
    url: &str,
    ca_bundle_b64: Option<&str>,
    token: SecretString,
) -> Result<Client, ReadError> {
    let uri = url
        .parse()
        .map_err(|e| ReadError::Endpoint(format!("{url}: {e}")))?;
    let mut config = kube::Config::new(uri);
    if let Some(b64) = ca_bundle_b64.filter(|s| !s.is_empty()) {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| ReadError::Endpoint(format!("CA bundle is not base64: {e}")))?;
        config.root_cert = Some(pem_certificates(&pem)?);
    }
    config.auth_info.token = Some(token);
    // kube retries 429/503/504 by default with backoff of up to minutes. Not here: a 429 from
    // the Eviction API means a PodDisruptionBudget said no, and the drain must see that to
    // honour its own timeout; a failed read fails the reconcile, which is retried anyway.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| ReadError::Endpoint(e.to_string()))
}

/// DER certificates from a PEM bundle.
fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, ReadError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| ReadError::Endpoint("CA bundle is not PEM text".into()))?;
    let mut certs = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match (line, &mut body) {
            ("-----BEGIN CERTIFICATE-----", None) => body = Some(String::new()),
            ("-----END CERTIFICATE-----", Some(b)) => {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|e| {
                        ReadError::Endpoint(format!("bad certificate in CA bundle: {e}"))
                    })?;
                certs.push(der);
                body = None;
            }
            (l, Some(b)) => b.push_str(l),
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err(ReadError::Endpoint("CA bundle holds no certificate".into()));
    }
    Ok(certs)
}

/// List every object of `K` in all namespaces, page by page, sanitizing each object
/// before it is decoded and kept.
async fn list_all<K>(
    client: &Client,
    kind: &'static str,
    sanitizer: &Sanitizer,
    observer: &dyn CallObserver,
) -> Result<Vec<K>, ReadError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(t) = token.take() {
            params = params.continue_token(&t);
        }
        let page = api.list(&params).await;
        let outcome = match &page {
            Ok(_) => "success".to_string(),
            Err(kube::Error::Api(s)) => s.reason.clone(),
            Err(_) => "unreachable".to_string(),
        };
        observer.call("kubernetes", "list", kind, &outcome, None, false);
        let page = page.map_err(|cause| ReadError::List { kind, cause })?;
        for object in page.items {
            let mut value =
                serde_json::to_value(object).map_err(|cause| ReadError::Decode { kind, cause })?;
            if let Some(map) = value.as_object_mut() {
                map.insert("apiVersion".into(), resource.api_version.clone().into());
                map.insert("kind".into(), resource.kind.clone().into());
            }
            sanitizer.sanitize(&mut value);
            out.push(
                serde_json::from_value(value).map_err(|cause| ReadError::Decode { kind, cause })?,
            );
        }
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(out),
        }
    }
}

/// Read the whole snapshot. Only `list` requests on the resources named here are made.
pub async fn read_snapshot(
    client: &Client,
    sanitizer: &Sanitizer,
    observer: &dyn CallObserver,
    taken_at: String,
) -> Result<ClusterSnapshot, ReadError> {
    Ok(ClusterSnapshot {
        taken_at,
        nodes: list_all::<Node>(client, "nodes", sanitizer, observer).await?,
        pods: list_all::<Pod>(client, "pods", sanitizer, observer).await?,
        deployments: list_all::<Deployment>(client, "deployments", sanitizer, observer).await?,
        replica_sets: list_all::<ReplicaSet>(client, "replicasets", sanitizer, observer).await?,
        stateful_sets: list_all::<StatefulSet>(client, "statefulsets", sanitizer, observer).await?,
        daemon_sets: list_all::<DaemonSet>(client, "daemonsets", sanitizer, observer).await?,
        jobs: list_all::<Job>(client, "jobs", sanitizer, observer).await?,
        cron_jobs: list_all::<CronJob>(client, "cronjobs", sanitizer, observer).await?,
        pod_disruption_budgets: list_all::<PodDisruptionBudget>(
            client,
            "poddisruptionbudgets",
            sanitizer,
            observer,
        )
        .await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ca_bundles_must_hold_certificates() {
        crate::install_crypto_provider();
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\nAwQ=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_certificates(pem.as_bytes()).unwrap(),
            vec![vec![0, 1, 2, 3, 4]]
        );
        assert!(pem_certificates(b"not a pem").is_err());
        let b64 = base64::engine::general_purpose::STANDARD.encode("garbage");
        assert!(
            client_for(
                "https://example.invalid",
                Some(&b64),
                SecretString::from("t".to_string())
            )
            .is_err()
        );
        assert!(
            client_for(
                "http://127.0.0.1:1",
                None,
                SecretString::from("t".to_string())
            )
            .is_ok()
        );
    }
}
