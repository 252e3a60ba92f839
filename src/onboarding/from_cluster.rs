//! `--from customeraccount/<name>`: the onboarding commands read the account id, regions,
//! mode, access-key audit settings and ExternalId from a CustomerAccount, and the cluster
//! names (with their regions) from the ManagedClusters referring to it, through the
//! Kubernetes API (KUBECONFIG, like kubectl).

use kube::api::{Api, ListParams};

use crate::api::{CustomerAccount, ManagedCluster};

/// What the onboarding commands take from a CustomerAccount and its ManagedClusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountFacts {
    /// `namespace/name` of the CustomerAccount, for messages.
    pub reference: String,
    /// `spec.accountId`.
    pub account_id: String,
    /// `spec.regions`.
    pub regions: Vec<String>,
    /// `spec.mode`.
    pub mode: super::Mode,
    /// `status.externalId`, once the operator has published it.
    pub external_id: Option<String>,
    /// `spec.roleArn`, when set.
    pub role_arn: Option<String>,
    /// `spec.accessKeyAudit.enabled`.
    pub key_audit: bool,
    /// `spec.accessKeyAudit.enforce`.
    pub key_audit_enforce: bool,
    /// `(spec.clusterName, spec.region)` of each ManagedCluster referring to the account,
    /// sorted.
    pub clusters: Vec<(String, String)>,
}

/// Why `--from` could not read the account.
#[derive(Debug, thiserror::Error)]
pub enum FromError {
    /// Not `customeraccount/<name>`.
    #[error(
        "--from {0:?}: expected customeraccount/NAME (or ca/NAME, customeraccounts.crossguard.dev/NAME, or the name alone)"
    )]
    Reference(String),
    /// The account does not exist.
    #[error(
        "CustomerAccount {0} not found (check the name and -n NAMESPACE; kubectl get customeraccounts -A lists them)"
    )]
    NotFound(String),
    /// Reading it failed.
    #[error("reading CustomerAccount {reference}")]
    Read {
        /// `namespace/name`.
        reference: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Listing ManagedClusters failed.
    #[error("listing the ManagedClusters of CustomerAccount {reference}")]
    ListClusters {
        /// `namespace/name`.
        reference: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// The name in `customeraccount/<name>` (kubectl's resource/name spellings).
pub fn parse_reference(reference: &str) -> Result<String, FromError> {
    let bad = || FromError::Reference(reference.to_string());
    // The name alone also works, as `onboarding-complete` takes it.
    let (kind, name) = reference
        .split_once('/')
        .unwrap_or(("customeraccount", reference));
    let kind_ok = [
        "customeraccount",
        "customeraccounts",
        "ca",
        "customeraccount.crossguard.dev",
        "customeraccounts.crossguard.dev",
    ]
    .contains(&kind.to_ascii_lowercase().as_str());
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if kind_ok && name_ok {
        Ok(name.to_string())
    } else {
        Err(bad())
    }
}

/// Reads CustomerAccount `namespace/name` and the ManagedClusters referring to it.
pub async fn read_account(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<AccountFacts, FromError> {
    let reference = format!("{namespace}/{name}");
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), namespace);
    let account = accounts
        .get_opt(name)
        .await
        .map_err(|source| FromError::Read {
            reference: reference.clone(),
            source,
        })?
        .ok_or_else(|| FromError::NotFound(reference.clone()))?;
    // ManagedClusters may live in other namespaces (spec.accountRef.namespace); without
    // the right to list them cluster-wide, the account's own namespace is searched.
    let list = match Api::<ManagedCluster>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 => {
            Api::<ManagedCluster>::namespaced(client, namespace)
                .list(&ListParams::default())
                .await
        }
        other => other,
    }
    .map_err(|source| FromError::ListClusters {
        reference: reference.clone(),
        source,
    })?;
    let mut clusters: Vec<(String, String)> = list
        .items
        .iter()
        .filter(|mc| {
            let own_ns = mc.metadata.namespace.as_deref().unwrap_or_default();
            let ref_ns = mc.spec.account_ref.namespace.as_deref().unwrap_or(own_ns);
            mc.spec.account_ref.name == name && ref_ns == namespace
        })
        .map(|mc| (mc.spec.cluster_name.clone(), mc.spec.region.clone()))
        .collect();
    clusters.sort();
    clusters.dedup();
    let spec = &account.spec;
    Ok(AccountFacts {
        reference,
        account_id: spec.account_id.clone(),
        regions: spec.regions.clone(),
        mode: spec.mode.into(),
        external_id: account
            .status
            .as_ref()
            .and_then(|s| s.external_id.clone())
            .filter(|e| !e.is_empty()),
        role_arn: spec.role_arn.clone().filter(|r| !r.is_empty()),
        key_audit: spec.access_key_audit.enabled,
        key_audit_enforce: spec.access_key_audit.enforce,
        clusters,
    })
}

/// A Kubernetes client from KUBECONFIG (or in-cluster), and the namespace to use: `-n`,
/// else the kubeconfig context's namespace.
pub async fn client(namespace: Option<&str>) -> anyhow::Result<(kube::Client, String)> {
    use anyhow::Context as _;
    let config = kube::Config::infer()
        .await
        .context("reading the Kubernetes client configuration (KUBECONFIG or in-cluster)")?;
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .with_context(|| format!("building a Kubernetes client for {server}"))?;
    Ok((client, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_take_kubectl_spellings() {
        for ok in [
            "customeraccount/acme",
            "customeraccounts/acme",
            "ca/acme",
            "CustomerAccount/acme",
            "customeraccounts.crossguard.dev/acme",
            "acme",
        ] {
            assert_eq!(parse_reference(ok).unwrap(), "acme", "{ok}");
        }
        for bad in ["Acme", "managedcluster/acme", "ca/", "ca/Acme", "ca/a b"] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }
}
