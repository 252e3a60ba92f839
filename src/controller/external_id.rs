//! The per-account ExternalId (the confused-deputy defence of cross-account roles): made
//! once from the OS CSPRNG, kept in a Secret owned by the CustomerAccount, rotated only by
//! the rotation annotation, and read by both controllers through the one reader here.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};

use super::failure::{Category, Failure, KubeOp, Retry};
use crate::api::CustomerAccount;

/// Length of generated ExternalIds (AWS allows 2–1224 characters).
pub const EXTERNAL_ID_LEN: usize = 48;
/// Shortest value ever accepted from the Secret: anything shorter was not made by us.
const MIN_LEN: usize = 32;
/// Key of the ExternalId in its Secret.
pub const EXTERNAL_ID_KEY: &str = "externalId";
/// Annotation on a CustomerAccount that rotates its ExternalId: set it (or change its
/// value) to any new string, e.g. a date, to get a fresh ExternalId.
pub const ROTATE_ANNOTATION: &str = "crossguard.dev/rotate-external-id";
/// Annotation on the ExternalId Secret recording the rotation request last honoured.
const ROTATED_FOR_ANNOTATION: &str = "crossguard.dev/rotated-for";

/// Name of the Secret that holds the account's ExternalId.
pub fn secret_name(account: &str) -> String {
    format!("crossguard-externalid-{account}")
}

/// A fresh ExternalId from the operating system's CSPRNG: [`EXTERNAL_ID_LEN`] ASCII
/// letters and digits.
pub fn generate() -> String {
    use rand::TryRngCore;
    let mut rng = rand::rngs::OsRng.unwrap_err();
    Alphanumeric.sample_string(&mut rng, EXTERNAL_ID_LEN)
}

/// How the ExternalId returned by [`ensure`] came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// It was already in the Secret.
    Existing,
    /// The Secret did not exist: a new ExternalId was generated (a new or re-created
    /// account), so the customer's trust policy must be given this value.
    Created,
    /// The rotation annotation asked for a new value and got it.
    Rotated,
}

/// Why the ExternalId could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ExternalIdError {
    /// GET of the Secret failed.
    #[error("kubernetes get secret {namespace}/{name} failed: {cause}")]
    Get {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The client error (in the message, which customers read; not repeated as the
        /// error's source).
        cause: kube::Error,
    },
    /// CREATE of the Secret failed.
    #[error("kubernetes create secret {namespace}/{name} failed: {cause}")]
    Create {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The client error (in the message, which customers read; not repeated as the
        /// error's source).
        cause: kube::Error,
    },
    /// The rotation PATCH failed.
    #[error("kubernetes patch secret {namespace}/{name} (rotation) failed: {cause}")]
    Rotate {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The client error (in the message, which customers read; not repeated as the
        /// error's source).
        cause: kube::Error,
    },
    /// A Secret of that name exists but this CustomerAccount (this UID) does not own it,
    /// or it holds no usable value: it is never trusted as a source of ExternalIds.
    #[error(
        "Secret {namespace}/{name} exists but was not created for this CustomerAccount (for example it was left by an earlier account of the same name). crossguard never trusts an ExternalId it did not generate for this account: delete it (`kubectl delete secret -n {namespace} {name}`) and crossguard generates a new ExternalId, which the customer's trust policy must then require. crossguard looks again every 2 minutes (or at once when the CustomerAccount changes)"
    )]
    Conflict {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// The Secret does not exist yet (read-only callers do not create it).
    #[error(
        "Secret {namespace}/{name} with the account's ExternalId does not exist yet; the CustomerAccount controller creates it"
    )]
    Missing {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
}

impl From<ExternalIdError> for Failure {
    fn from(e: ExternalIdError) -> Self {
        let message = e.to_string();
        match e {
            ExternalIdError::Get { .. } => Failure::new(
                Category::Kubernetes(KubeOp::GetExternalIdSecret),
                message,
                Retry::Backoff,
            ),
            ExternalIdError::Create { .. } => Failure::new(
                Category::Kubernetes(KubeOp::CreateExternalIdSecret),
                message,
                Retry::Backoff,
            ),
            ExternalIdError::Rotate { .. } => Failure::new(
                Category::Kubernetes(KubeOp::RotateExternalIdSecret),
                message,
                Retry::Backoff,
            ),
            // A human has to act; the Secret's deletion is a watched change of an owned
            // object only when it is ours, so look again on a timer too.
            ExternalIdError::Conflict { .. } => Failure::new(
                Category::ExternalIdSecretConflict,
                message,
                Retry::After(super::PROBLEM_RETRY),
            )
            .on("TrustPolicy"),
            ExternalIdError::Missing { .. } => Failure::new(
                Category::AccountNotReady,
                message,
                Retry::After(super::PROBLEM_RETRY),
            ),
        }
    }
}

/// Read the account's ExternalId from its Secret, creating the Secret (owned by the
/// account) with a fresh value the first time, and replacing the value when the rotation
/// annotation asks for it.
pub async fn ensure(
    account: &CustomerAccount,
    client: &Client,
) -> Result<(String, Issued), ExternalIdError> {
    let ns = account.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let name = secret_name(&account.name_any());
    let conflict = || ExternalIdError::Conflict {
        namespace: ns.clone(),
        name: name.clone(),
    };
    let get_failed = |cause| ExternalIdError::Get {
        namespace: ns.clone(),
        name: name.clone(),
        cause,
    };
    let rotate_for = account.annotations().get(ROTATE_ANNOTATION).cloned();
    let existing = match secrets.get_opt(&name).await.map_err(get_failed)? {
        Some(secret) => secret,
        None => {
            let secret = new_secret(account, &name, rotate_for.as_deref());
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(created) => {
                    return read_owned(account, &created)
                        .map(|id| (id, Issued::Created))
                        .ok_or_else(conflict);
                }
                // Lost a race with ourselves: continue with what is there if it is ours.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    secrets.get(&name).await.map_err(get_failed)?
                }
                Err(cause) => {
                    return Err(ExternalIdError::Create {
                        namespace: ns.clone(),
                        name: name.clone(),
                        cause,
                    });
                }
            }
        }
    };
    let current = read_owned(account, &existing).ok_or_else(conflict)?;
    let honoured = existing.annotations().get(ROTATED_FOR_ANNOTATION);
    let Some(token) = rotate_for.filter(|t| Some(t) != honoured) else {
        return Ok((current, Issued::Existing));
    };
    // resourceVersion in the patch makes it conditional: two racing reconciles cannot
    // both rotate.
    let fresh = generate();
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": existing.resource_version(),
            "annotations": { ROTATED_FOR_ANNOTATION: token },
        },
        "data": { EXTERNAL_ID_KEY: ByteString(fresh.clone().into_bytes()) },
    });
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|cause| ExternalIdError::Rotate {
            namespace: ns.clone(),
            name: name.clone(),
            cause,
        })?;
    tracing::info!(namespace = %ns, name = %account.name_any(), "ExternalId rotated");
    Ok((fresh, Issued::Rotated))
}

/// Read the account's ExternalId without creating or rotating anything (the
/// ManagedCluster controller's view).
pub async fn read(account: &CustomerAccount, client: &Client) -> Result<String, ExternalIdError> {
    let ns = account.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let name = secret_name(&account.name_any());
    let secret = secrets
        .get_opt(&name)
        .await
        .map_err(|cause| ExternalIdError::Get {
            namespace: ns.clone(),
            name: name.clone(),
            cause,
        })?
        .ok_or_else(|| ExternalIdError::Missing {
            namespace: ns.clone(),
            name: name.clone(),
        })?;
    read_owned(account, &secret).ok_or(ExternalIdError::Conflict {
        namespace: ns,
        name,
    })
}

fn new_secret(account: &CustomerAccount, name: &str, rotate_for: Option<&str>) -> Secret {
    let owner = account.controller_owner_ref(&()).into_iter().collect();
    let mut annotations = BTreeMap::new();
    if let Some(token) = rotate_for {
        annotations.insert(ROTATED_FOR_ANNOTATION.to_string(), token.to_string());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: account.namespace(),
            owner_references: Some(owner),
            annotations: Some(annotations),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "crossguard".to_string(),
                ),
                (
                    "crossguard.dev/customer-account".to_string(),
                    account.name_any(),
                ),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            EXTERNAL_ID_KEY.to_string(),
            ByteString(generate().into_bytes()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// The ExternalId in `secret`, only if the Secret is controlled by this very account (same
/// UID) and holds a value at least [`MIN_LEN`] long: a Secret someone else created is never
/// trusted as a source of ExternalIds. The one reader both controllers use.
fn read_owned(account: &CustomerAccount, secret: &Secret) -> Option<String> {
    let uid = account.meta().uid.as_deref()?;
    let owned = secret
        .owner_references()
        .iter()
        .any(|o| o.uid == uid && o.controller == Some(true));
    if !owned {
        return None;
    }
    let value = secret.data.as_ref()?.get(EXTERNAL_ID_KEY)?;
    let value = String::from_utf8(value.0.clone()).ok()?;
    (value.len() >= MIN_LEN).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    #[test]
    fn external_ids_are_long_alphanumeric_and_unique() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter()
                .all(|id| id.len() == EXTERNAL_ID_LEN
                    && id.chars().all(|c| c.is_ascii_alphanumeric()))
        );
    }

    fn account_with_uid(uid: &str) -> CustomerAccount {
        let spec = serde_json::from_value(serde_json::json!({
            "accountId": "111122223333",
            "roleArn": "arn:aws:iam::111122223333:role/r",
            "regions": ["us-east-1"],
        }))
        .unwrap();
        let mut ca = CustomerAccount::new("acme", spec);
        ca.metadata.uid = Some(uid.into());
        ca
    }

    fn secret(owner_uid: &str, controller: bool, value: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    uid: owner_uid.into(),
                    controller: Some(controller),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                EXTERNAL_ID_KEY.to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_secret_owned_by_this_account_is_trusted() {
        let ca = account_with_uid("uid-1");
        let good = "a".repeat(48);
        assert_eq!(
            read_owned(&ca, &secret("uid-1", true, &good)),
            Some(good.clone())
        );
        assert_eq!(read_owned(&ca, &secret("uid-2", true, &good)), None);
        assert_eq!(read_owned(&ca, &secret("uid-1", false, &good)), None);
        assert_eq!(read_owned(&ca, &secret("uid-1", true, "short")), None);
        assert_eq!(
            read_owned(&ca, &secret("uid-1", true, &"b".repeat(31))),
            None
        );
    }

    #[test]
    fn a_conflict_tells_what_to_do() {
        let f = Failure::from(ExternalIdError::Conflict {
            namespace: "acme".into(),
            name: secret_name("acme"),
        });
        assert_eq!(f.category, Category::ExternalIdSecretConflict);
        assert!(
            f.message
                .contains("kubectl delete secret -n acme crossguard-externalid-acme"),
            "{}",
            f.message
        );
        assert_eq!(f.condition, Some("TrustPolicy"));
    }
}
