//! Read a customer cluster's state, read-only: nodes, pods, workloads and PDBs, page by
//! page (`limit`/`continue`) so even a 150,000-pod cluster never has to fit in one
//! response or in memory, sanitizing every object as it arrives. Secrets and ConfigMaps are never read:
//! there is no code path here that names them.

use base64::Engine as _;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client, Resource};
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::snapshot::{Object, SnapshotWriter};
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
    /// Writing the sanitized snapshot to the store failed.
    #[error("storing the snapshot failed: {cause}")]
    Snapshot {
        /// The store error (part of the message, not the `source()`).
        cause: crate::store::StoreError,
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

/// List every object of `K` in all namespaces, page by page; sanitize each object before
/// it is decoded, write it to `snapshot` as the list `field`, and hand it to `keep`. Only
/// one page is held at a time, and the snapshot's upload is waited for between pages.
#[allow(clippy::too_many_arguments)]
async fn list_kind<K>(
    client: &Client,
    kind: &'static str,
    field: &str,
    wrap: fn(K) -> Object,
    sanitizer: &Sanitizer,
    observer: &dyn CallObserver,
    snapshot: &mut SnapshotWriter,
    keep: &mut (dyn FnMut(Object) + Send),
) -> Result<usize, ReadError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Serialize,
{
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let mut count = 0;
    let mut token: Option<String> = None;
    snapshot.begin_list(field);
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
            let typed: K =
                serde_json::from_value(value).map_err(|cause| ReadError::Decode { kind, cause })?;
            snapshot
                .item(&typed)
                .map_err(|cause| ReadError::Decode { kind, cause })?;
            keep(wrap(typed));
            count += 1;
        }
        snapshot
            .ready()
            .await
            .map_err(|cause| ReadError::Snapshot { cause })?;
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    snapshot.end_list();
    Ok(count)
}

/// Read the cluster: only `list` requests, on exactly the resources [`super::rbac`] grants,
/// page by page. Each object is sanitized as it arrives, written to `snapshot`, and handed
/// to `keep` (which keeps what it needs of it, e.g. the analysis's lean input), so the
/// memory a read needs is one page plus what `keep` keeps, however large the cluster.
/// Returns how many objects were read. On an error the snapshot is incomplete: the caller
/// aborts it.
pub async fn read_cluster(
    client: &Client,
    sanitizer: &Sanitizer,
    observer: &dyn CallObserver,
    snapshot: &mut SnapshotWriter,
    keep: &mut (dyn FnMut(Object) + Send),
) -> Result<usize, ReadError> {
    let s = snapshot;
    let (c, z, o) = (client, sanitizer, observer);
    Ok(
        list_kind(c, "nodes", "nodes", Object::Node, z, o, s, keep).await?
            + list_kind(c, "pods", "pods", Object::Pod, z, o, s, keep).await?
            + list_kind(
                c,
                "deployments",
                "deployments",
                Object::Deployment,
                z,
                o,
                s,
                keep,
            )
            .await?
            + list_kind(
                c,
                "replicasets",
                "replicaSets",
                Object::ReplicaSet,
                z,
                o,
                s,
                keep,
            )
            .await?
            + list_kind(
                c,
                "statefulsets",
                "statefulSets",
                Object::StatefulSet,
                z,
                o,
                s,
                keep,
            )
            .await?
            + list_kind(
                c,
                "daemonsets",
                "daemonSets",
                Object::DaemonSet,
                z,
                o,
                s,
                keep,
            )
            .await?
            + list_kind(c, "jobs", "jobs", Object::Job, z, o, s, keep).await?
            + list_kind(c, "cronjobs", "cronJobs", Object::CronJob, z, o, s, keep).await?
            + list_kind(
                c,
                "poddisruptionbudgets",
                "podDisruptionBudgets",
                Object::PodDisruptionBudget,
                z,
                o,
                s,
                keep,
            )
            .await?,
    )
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
