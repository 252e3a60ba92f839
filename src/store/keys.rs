//! Key-encryption keys (KEKs) that wrap the tenants' data keys: AWS KMS in production, or a
//! local key (less safe: it sits in a Kubernetes Secret of the operator's namespace) for
//! the embedded default and the demo.
//!
//! A data key is 256 random bits drawn for one tenant; only its wrapped form is stored
//! (`keyring/<tenant>/<key-id>.json`, see `Store`). Wrapping binds the tenant: KMS through
//! the encryption context `{"crossguard:tenant": <uid>}`, the local KEK through AES-GCM's
//! associated data, so a wrapped key copied to another tenant does not unwrap.

use std::collections::HashMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use super::envelope::KeyBytes;

/// The encryption-context key (KMS) naming the tenant a data key belongs to; it appears in
/// the operator's CloudTrail `Decrypt` events.
pub const TENANT_CONTEXT_KEY: &str = "crossguard:tenant";

/// Wrapping or unwrapping a data key failed.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// KMS refused or could not be reached.
    #[error("KMS {operation} with key {key_id} failed: {message}")]
    Kms {
        /// The KMS operation (GenerateDataKey, Decrypt, Encrypt).
        operation: &'static str,
        /// The KEK's key id.
        key_id: String,
        /// KMS's answer.
        message: String,
    },
    /// The wrapped key names a local KEK this operator does not hold.
    #[error(
        "the local key-encryption key {0:?} is not in the key Secret as the operator loaded it at start (the operator reads the Secret once: restart it after changing the Secret, and remove an old key only once `crossguard store-rewrap-keys` has moved every data key off it)"
    )]
    UnknownLocalKek(String),
    /// The wrapped key did not unwrap (wrong KEK, another tenant's key, tampered).
    #[error("unwrapping the data key with local key-encryption key {0:?} failed authentication")]
    Unwrap(String),
    /// A KMS answer or a stored wrapped key has the wrong shape.
    #[error("malformed wrapped data key: {0}")]
    Malformed(&'static str),
    /// The random number generator failed.
    #[error("drawing random bytes failed")]
    Random,
}

/// A key-encryption key: wraps and unwraps tenants' data keys.
#[async_trait::async_trait]
pub trait Kek: Send + Sync {
    /// Which KEK wraps new keys, as recorded beside each wrapped key (`kms:<key id>` or
    /// `local:<id>`).
    fn current(&self) -> String;
    /// A fresh data key for `tenant`: the plaintext (memory only) and its wrapped form.
    async fn generate(&self, tenant: &str) -> Result<(KeyBytes, Vec<u8>), KekError>;
    /// Wrap an existing data key of `tenant` with the current KEK (KEK rotation).
    async fn wrap(&self, tenant: &str, key: &KeyBytes) -> Result<Vec<u8>, KekError>;
    /// Unwrap a data key of `tenant` wrapped by the KEK named `kek` (a [`Kek::current`] value).
    async fn unwrap(&self, tenant: &str, kek: &str, wrapped: &[u8]) -> Result<KeyBytes, KekError>;
}

fn random_key() -> Result<KeyBytes, KekError> {
    let mut key = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(key.as_mut_slice()).map_err(|_| KekError::Random)?;
    Ok(key)
}

/// Local KEKs held by the operator (from a Kubernetes Secret): the current one wraps new
/// keys, older ones still unwrap what they wrapped until `Store::rewrap_data_keys` moved
/// every tenant to the current one.
pub struct LocalKek {
    current: String,
    keys: HashMap<String, KeyBytes>,
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("LocalKek")
            .field("current", &self.current)
            .field("ids", &ids)
            .finish()
    }
}

const LOCAL_WRAP_LABEL: &[u8] = b"crossguard data key\0";

impl LocalKek {
    /// KEKs by id, `current` wrapping new keys; None when `current` is not among them.
    pub fn new(current: &str, keys: HashMap<String, KeyBytes>) -> Option<LocalKek> {
        keys.contains_key(current).then(|| LocalKek {
            current: current.to_string(),
            keys,
        })
    }

    /// A fresh random KEK (what the operator puts in its Secret the first time).
    pub fn random_key() -> Result<KeyBytes, KekError> {
        random_key()
    }

    fn aad(tenant: &str) -> Vec<u8> {
        [LOCAL_WRAP_LABEL, tenant.as_bytes()].concat()
    }

    fn wrap_with(&self, tenant: &str, key: &KeyBytes) -> Result<Vec<u8>, KekError> {
        let kek = &self.keys[&self.current];
        let sealer =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek.as_slice()).expect("32 bytes"));
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KekError::Random)?;
        let mut out = key.to_vec();
        sealer
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(tenant).as_slice()),
                &mut out,
            )
            .map_err(|_| KekError::Random)?;
        Ok([nonce.as_slice(), &out].concat())
    }
}

#[async_trait::async_trait]
impl Kek for LocalKek {
    fn current(&self) -> String {
        format!("local:{}", self.current)
    }

    async fn generate(&self, tenant: &str) -> Result<(KeyBytes, Vec<u8>), KekError> {
        let key = random_key()?;
        let wrapped = self.wrap_with(tenant, &key)?;
        Ok((key, wrapped))
    }

    async fn wrap(&self, tenant: &str, key: &KeyBytes) -> Result<Vec<u8>, KekError> {
        self.wrap_with(tenant, key)
    }

    async fn unwrap(&self, tenant: &str, kek: &str, wrapped: &[u8]) -> Result<KeyBytes, KekError> {
        let id = kek
            .strip_prefix("local:")
            .ok_or_else(|| KekError::UnknownLocalKek(kek.to_string()))?;
        let kek_bytes = self
            .keys
            .get(id)
            .ok_or_else(|| KekError::UnknownLocalKek(id.to_string()))?;
        if wrapped.len() != NONCE_LEN + 32 + 16 {
            return Err(KekError::Malformed("local wrapped key length"));
        }
        let opener = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, kek_bytes.as_slice()).expect("32 bytes"),
        );
        let nonce: [u8; NONCE_LEN] = wrapped[..NONCE_LEN].try_into().expect("length checked");
        let mut buf = Zeroizing::new(wrapped[NONCE_LEN..].to_vec());
        let plain = opener
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(tenant).as_slice()),
                &mut buf,
            )
            .map_err(|_| KekError::Unwrap(id.to_string()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(plain);
        Ok(key)
    }
}

/// AWS KMS as the KEK, called with the operator's own identity (IRSA / Pod Identity).
#[derive(Debug, Clone)]
pub struct KmsKek {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsKek {
    /// Wrap new data keys with the KMS key `key_id` (key id, ARN or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: &str) -> KmsKek {
        KmsKek {
            client,
            key_id: key_id.to_string(),
        }
    }

    fn fail(&self, operation: &'static str) -> impl FnOnce(String) -> KekError + '_ {
        move |message| KekError::Kms {
            operation,
            key_id: self.key_id.clone(),
            message,
        }
    }
}

fn into_key(blob: aws_sdk_kms::primitives::Blob) -> Result<KeyBytes, KekError> {
    let mut bytes = blob.into_inner();
    let mut key = Zeroizing::new([0u8; 32]);
    let ok = bytes.len() == 32;
    if ok {
        key.copy_from_slice(&bytes);
    }
    bytes.zeroize();
    ok.then_some(key)
        .ok_or(KekError::Malformed("KMS plaintext is not 32 bytes"))
}

fn sdk_message<E: std::error::Error + 'static>(e: aws_sdk_kms::error::SdkError<E>) -> String {
    let e = aws_sdk_kms::error::DisplayErrorContext(e);
    e.to_string()
}

#[async_trait::async_trait]
impl Kek for KmsKek {
    fn current(&self) -> String {
        format!("kms:{}", self.key_id)
    }

    async fn generate(&self, tenant: &str) -> Result<(KeyBytes, Vec<u8>), KekError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .encryption_context(TENANT_CONTEXT_KEY, tenant)
            .send()
            .await
            .map_err(|e| self.fail("GenerateDataKey")(sdk_message(e)))?;
        let wrapped = out
            .ciphertext_blob
            .ok_or(KekError::Malformed(
                "GenerateDataKey returned no CiphertextBlob",
            ))?
            .into_inner();
        let key = into_key(
            out.plaintext
                .ok_or(KekError::Malformed("GenerateDataKey returned no Plaintext"))?,
        )?;
        Ok((key, wrapped))
    }

    async fn wrap(&self, tenant: &str, key: &KeyBytes) -> Result<Vec<u8>, KekError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(aws_sdk_kms::primitives::Blob::new(key.to_vec()))
            .encryption_context(TENANT_CONTEXT_KEY, tenant)
            .send()
            .await
            .map_err(|e| self.fail("Encrypt")(sdk_message(e)))?;
        Ok(out
            .ciphertext_blob
            .ok_or(KekError::Malformed("Encrypt returned no CiphertextBlob"))?
            .into_inner())
    }

    async fn unwrap(&self, tenant: &str, kek: &str, wrapped: &[u8]) -> Result<KeyBytes, KekError> {
        let key_id = kek.strip_prefix("kms:").unwrap_or(&self.key_id);
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped.to_vec()))
            .encryption_context(TENANT_CONTEXT_KEY, tenant)
            .send()
            .await
            .map_err(|e| KekError::Kms {
                operation: "Decrypt",
                key_id: key_id.to_string(),
                message: sdk_message(e),
            })?;
        into_key(
            out.plaintext
                .ok_or(KekError::Malformed("Decrypt returned no Plaintext"))?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(current: &str, ids: &[(&str, u8)]) -> LocalKek {
        let keys = ids
            .iter()
            .map(|(id, b)| (id.to_string(), Zeroizing::new([*b; 32])))
            .collect();
        LocalKek::new(current, keys).unwrap()
    }

    #[tokio::test]
    async fn local_wrapping_binds_the_tenant_and_the_kek() {
        let kek = local("k1", &[("k1", 1)]);
        let (key, wrapped) = kek.generate("uid-a").await.unwrap();
        assert_eq!(kek.current(), "local:k1");
        assert_eq!(
            *kek.unwrap("uid-a", "local:k1", &wrapped).await.unwrap(),
            *key
        );
        assert!(matches!(
            kek.unwrap("uid-b", "local:k1", &wrapped).await,
            Err(KekError::Unwrap(_))
        ));
        assert!(matches!(
            kek.unwrap("uid-a", "local:k9", &wrapped).await,
            Err(KekError::UnknownLocalKek(_))
        ));
        let other = local("k1", &[("k1", 2)]);
        assert!(other.unwrap("uid-a", "local:k1", &wrapped).await.is_err());
        // After a KEK rotation the old KEK still unwraps; re-wrapping moves to the new one.
        let rotated = local("k2", &[("k1", 1), ("k2", 3)]);
        let old = rotated.unwrap("uid-a", "local:k1", &wrapped).await.unwrap();
        let rewrapped = rotated.wrap("uid-a", &old).await.unwrap();
        let only_new = local("k2", &[("k2", 3)]);
        assert_eq!(
            *only_new
                .unwrap("uid-a", "local:k2", &rewrapped)
                .await
                .unwrap(),
            *key
        );
        assert!(LocalKek::new("k3", HashMap::new()).is_none());
        assert!(!format!("{kek:?}").contains("[1,"), "no key bytes in Debug");
    }
}

/// The data key of the local KEK Secret naming the KEK that wraps new data keys; every
/// other data key `kek-<id>` holds one KEK (32 bytes).
pub const SECRET_CURRENT: &str = "current";

/// Reading or creating the local KEK Secret failed.
#[derive(Debug, thiserror::Error)]
pub enum KekSecretError {
    /// The Kubernetes API refused or could not be reached.
    #[error("{operation} Secret {namespace}/{name} failed: {cause}")]
    Api {
        /// `reading` or `creating`.
        operation: &'static str,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The API's answer.
        cause: kube::Error,
    },
    /// The Secret does not hold a usable KEK.
    #[error("Secret {namespace}/{name} holds no usable key-encryption key: {reason}")]
    Invalid {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Drawing the KEK failed.
    #[error("generating a local key-encryption key failed: {0}")]
    Generate(KekError),
}

/// The local KEK from the Secret `namespace/name`; with `create`, the Secret is created
/// the first time (one random KEK, id `1`) — the operator does that once; tools only read.
pub async fn local_kek_from_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    create: bool,
) -> Result<LocalKek, KekSecretError> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let api_error = |operation| {
        move |cause| KekSecretError::Api {
            operation,
            namespace: namespace.to_string(),
            name: name.to_string(),
            cause,
        }
    };
    let secret = match api.get_opt(name).await.map_err(api_error("reading"))? {
        Some(secret) => secret,
        None if create => {
            let kek = random_key().map_err(KekSecretError::Generate)?;
            let mut secret = Secret::default();
            secret.metadata.name = Some(name.to_string());
            secret.metadata.labels = Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "crossguard".to_string(),
                )]
                .into(),
            );
            secret.type_ = Some("Opaque".into());
            secret.data = Some(
                [
                    (SECRET_CURRENT.to_string(), ByteString(b"1".to_vec())),
                    ("kek-1".to_string(), ByteString(kek.to_vec())),
                ]
                .into(),
            );
            match api.create(&Default::default(), &secret).await {
                Ok(created) => created,
                // Another replica created it first: use theirs.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    api.get(name).await.map_err(api_error("reading"))?
                }
                Err(e) => return Err(api_error("creating")(e)),
            }
        }
        None => {
            return Err(KekSecretError::Invalid {
                namespace: namespace.to_string(),
                name: name.to_string(),
                reason: "it does not exist (the operator creates it on its first start)".into(),
            });
        }
    };
    let invalid = |reason: String| KekSecretError::Invalid {
        namespace: namespace.to_string(),
        name: name.to_string(),
        reason,
    };
    let data = secret.data.unwrap_or_default();
    let current = data
        .get(SECRET_CURRENT)
        .and_then(|b| std::str::from_utf8(&b.0).ok())
        .map(|s| s.trim().to_string())
        .ok_or_else(|| invalid(format!("no {SECRET_CURRENT:?} entry")))?;
    let mut keys = HashMap::new();
    for (entry, value) in &data {
        if let Some(id) = entry.strip_prefix("kek-") {
            let bytes: [u8; 32] = value
                .0
                .as_slice()
                .try_into()
                .map_err(|_| invalid(format!("{entry} is not 32 bytes")))?;
            keys.insert(id.to_string(), Zeroizing::new(bytes));
        }
    }
    LocalKek::new(&current, keys).ok_or_else(|| invalid(format!("no kek-{current} entry")))
}
