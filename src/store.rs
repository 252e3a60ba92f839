//! Where reports, sanitized snapshots and the audit log are kept: an object store (a local
//! directory by default, S3 with SSE-KMS in production) with every key under the tenant's
//! prefix, so retention and erasure are prefix operations.
//!
//! Layout: `tenants/<account-uid>/<kind>/<namespace>/<cluster>/<YYYYMMDDTHHMMSSZ>[-<n>].<ext>`
//! (`history/` segments are rewritten in place through [`Store::put_named`]; see
//! [`crate::history`]),
//! and, outside every tenant, `prices/<region>.json` (public list prices fetched from the
//! AWS Price List API, shared by all tenants).
//! The time in the key (not the store's modification time) drives retention, so the rule is
//! the same on every backend and testable with a fake clock.
//!
//! Erasure first writes the tenant's deletion record, `erasures/<account-uid>.json`
//! (outside every tenant's prefix; UID, times, ids of the destroyed data keys, object
//! count, no customer data), and every tenant write checks it before and after it lands: a
//! write still in flight when the tenant is erased either lands before the erasure lists
//! the prefix (and is deleted with the rest) or sees the record and deletes what it wrote.
//! Either way nothing stays under an erased prefix.
//!
//! With [`Store::with_encryption`] (what the operator always does) every tenant object is
//! sealed client-side under the tenant's data key ([`envelope`]), the wrapped data keys sit
//! at `keyring/<account-uid>/<key-id>.json`, and erasing a tenant destroys them right after
//! the deletion record is written, before its objects are deleted
//! (docs/data-protection.md).

pub mod envelope;
pub mod keys;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use envelope::{Binding, EnvelopeError, KeyBytes, Sealer};
use keys::{Kek, KekError};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// What kind of object a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Analysis reports (JSON).
    Report,
    /// Sanitized cluster snapshots (JSON).
    Snapshot,
    /// Audit records (JSON lines).
    Audit,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Report => "reports",
            Kind::Snapshot => "snapshots",
            Kind::Audit => "audit",
        }
    }
    fn ext(self) -> &'static str {
        match self {
            Kind::Audit => "jsonl",
            _ => "json",
        }
    }
}

/// A store operation failed. Customers read the message in status conditions (a failed
/// report write, retention sweep or audit flush), so it carries the backend's answer; that
/// answer is therefore not also the `source()`, and a `{:#}` chain prints it once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not usable.
    #[error("invalid store URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The backend failed.
    #[error("object store {operation} failed: {cause}")]
    Backend {
        /// What was being done.
        operation: &'static str,
        /// The backend error (part of the message, not the `source()`).
        cause: object_store::Error,
    },
    /// Client-side encryption failed; see [`CryptoError`].
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The tenant was erased (its CustomerAccount was deleted): nothing is written for it
    /// any more. A write that raced the erasure was deleted again.
    #[error("tenant {tenant} was erased: nothing is stored for it any more")]
    TenantErased {
        /// The tenant's UID.
        tenant: String,
    },
}

impl StoreError {
    /// Whether the write was refused because the tenant was erased.
    pub fn is_tenant_erased(&self) -> bool {
        matches!(self, StoreError::TenantErased { .. })
    }
}

/// A client-side encryption step of the store failed. Kept apart from [`StoreError`]'s
/// backend cases so that callers can tell "the data cannot be opened" from "the store is
/// unavailable".
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Sealing or opening an object failed (for opening: wrong key, moved or renamed object,
    /// tampered or truncated data; never returned as garbage).
    #[error("{operation} object {key} failed: {cause}")]
    Envelope {
        /// `sealing` or `opening`.
        operation: &'static str,
        /// The object key.
        key: String,
        /// What went wrong.
        cause: EnvelopeError,
    },
    /// The key-encryption key (KMS or the local key) could not generate, wrap or unwrap
    /// the tenant's data key.
    #[error("{operation} the data key of tenant {tenant} failed: {cause}")]
    DataKey {
        /// `generating`, `unwrapping` or `re-wrapping`.
        operation: &'static str,
        /// The tenant (CustomerAccount UID).
        tenant: String,
        /// The KEK's answer.
        cause: KekError,
    },
    /// The tenant was erased: its data keys were destroyed, so its data cannot be read
    /// (writes are refused earlier, with [`StoreError::TenantErased`]).
    #[error(
        "the data keys of tenant {tenant} were destroyed at {destroyed_at} when its CustomerAccount was erased: its stored data can no longer be read"
    )]
    KeyDestroyed {
        /// The tenant (CustomerAccount UID).
        tenant: String,
        /// When its keys were destroyed.
        destroyed_at: jiff::Timestamp,
    },
    /// The data key an object names is not in the tenant's keyring.
    #[error("data key {key_id} of tenant {tenant} named by object {key} is not in the keyring")]
    KeyMissing {
        /// The tenant (CustomerAccount UID).
        tenant: String,
        /// The key id in the object's header.
        key_id: String,
        /// The object key.
        key: String,
    },
    /// A plaintext object of a kind that was always stored encrypted: not written by
    /// crossguard, so refused rather than believed.
    #[error(
        "object {0} is plaintext, but objects of its kind were always stored encrypted: it was not written by crossguard and is not read"
    )]
    UnexpectedPlaintext(String),
    /// An encrypted object read through a store opened without encryption.
    #[error("object {0} is encrypted, and this store was opened without a key-encryption key")]
    NoKeys(String),
    /// A keyring entry or deletion record does not parse.
    #[error("stored {what} {key} is malformed: {reason}")]
    Record {
        /// `data key` or `deletion record`.
        what: &'static str,
        /// Its key.
        key: String,
        /// The parse error.
        reason: String,
    },
}

fn backend(operation: &'static str) -> impl FnOnce(object_store::Error) -> StoreError {
    move |cause| StoreError::Backend { operation, cause }
}

/// Options for the S3 backend.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// KMS key for SSE-KMS; every object is encrypted with it when set.
    pub sse_kms_key_id: Option<String>,
    /// Endpoint override (emulators, S3-compatible stores); plain http is allowed only here.
    pub endpoint: Option<String>,
}

/// The report store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// Where it points, for logs and status (never contains credentials).
    pub location: String,
    /// The directory of a `file://` store, where writes the process did not live to finish
    /// leave staging files that the object store's listing hides
    /// ([`Store::remove_interrupted_writes`]).
    local_root: Option<PathBuf>,
    /// Client-side encryption; None only for stores opened by tests and tools that read
    /// plaintext (`Store::open` without [`Store::with_encryption`]).
    encryption: Option<Arc<Encryption>>,
    /// Tenants this process has seen erased (a deletion record never goes away, so a hit
    /// here spares the store a read on every later write).
    erased: Arc<Mutex<HashSet<String>>>,
}

/// How tenants' data keys are managed.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    /// How long a plaintext data key stays cached in memory after it was unwrapped.
    pub cache_for: Duration,
    /// Age after which new objects get a new data key (old objects keep theirs).
    pub rotate_after: Duration,
}

impl Default for KeyPolicy {
    /// Keys cached for 5 minutes (one KMS Decrypt per tenant per 5 minutes at most),
    /// rotated every 30 days.
    fn default() -> Self {
        KeyPolicy {
            cache_for: Duration::from_secs(300),
            rotate_after: Duration::from_secs(30 * 86_400),
        }
    }
}

/// The key-encryption key, the key policy and the cache of unwrapped data keys.
struct Encryption {
    kek: Arc<dyn Kek>,
    policy: KeyPolicy,
    cache: Mutex<HashMap<String, TenantKeys>>,
}

/// Unwrapped data keys of one tenant, each dropped (and wiped) `cache_for` after loading.
#[derive(Default)]
struct TenantKeys {
    /// The key new objects get, and when it was created.
    current: Option<(String, jiff::Timestamp)>,
    keys: HashMap<String, (Arc<KeyBytes>, Instant)>,
}

/// A wrapped data key as stored at `keyring/<tenant>/<key-id>.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataKeyRecord {
    tenant: String,
    key_id: String,
    created_at: jiff::Timestamp,
    /// The KEK that wrapped it (`kms:<key id>` or `local:<id>`).
    kek: String,
    /// The wrapped key, base64.
    wrapped_key: String,
}

/// The evidence an erasure leaves at `erasures/<tenant>.json`: who, when, how much, and
/// which data keys were destroyed; no customer data. Written first ([`Store::begin_erasure`]:
/// from then on nothing is written for the tenant and no key is made for it), completed
/// once the keys and objects are gone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureRecord {
    /// The tenant (CustomerAccount UID).
    pub tenant: String,
    /// When the erasure started (the record was written); the tenant's data keys were
    /// destroyed right after.
    pub erased_at: jiff::Timestamp,
    /// Ids of the data keys destroyed.
    pub data_keys_destroyed: Vec<String>,
    /// Objects deleted (all erasure attempts together); None until completed.
    pub objects_deleted: Option<usize>,
    /// When the last object was deleted; None while the erasure is incomplete.
    pub completed_at: Option<jiff::Timestamp>,
}

/// The kinds (directories under a tenant's prefix) that were stored before client-side
/// encryption, and so may still hold plaintext objects; every other kind is refused in
/// plaintext (docs/data-protection.md "Existing plaintext stores").
const PLAINTEXT_BEFORE_ENCRYPTION: [&str; 4] = ["reports", "snapshots", "audit", "state"];

/// How old a `file://` staging file must be to count as left by a write that never
/// finished (no write of ours takes anywhere near this long).
const INTERRUPTED_WRITE_AGE: Duration = Duration::from_secs(60 * 60);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish()
    }
}

impl Store {
    /// Open `file:///dir` (created if missing), `s3://bucket[/prefix]` or `memory://`.
    pub fn open(url: &str, s3: &S3Options) -> Result<Store, StoreError> {
        let bad = |reason: &str| StoreError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(bad(
                    "file URLs need an absolute path, e.g. file:///var/lib/crossguard",
                ));
            }
            std::fs::create_dir_all(dir).map_err(|e| bad(&e.to_string()))?;
            let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(&e.to_string()))?;
            return Ok(Store {
                inner: Arc::new(fs),
                location: url.to_string(),
                local_root: Some(PathBuf::from(dir)),
                encryption: None,
                erased: Arc::default(),
            });
        }
        if url == "memory://" {
            return Ok(Store {
                inner: Arc::new(InMemory::new()),
                location: url.to_string(),
                local_root: None,
                encryption: None,
                erased: Arc::default(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("s3 URLs need a bucket, e.g. s3://my-bucket/crossguard"));
            }
            // The operator's own identity (IRSA / Pod Identity / AWS_* variables), never a customer's.
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = &s3.endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            if let Some(key) = &s3.sse_kms_key_id {
                builder = builder.with_sse_kms_encryption(key);
            }
            let s3store = builder.build().map_err(|e| bad(&e.to_string()))?;
            let inner: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
                Arc::new(s3store)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(
                    s3store,
                    prefix.trim_matches('/'),
                ))
            };
            return Ok(Store {
                inner,
                location: url.to_string(),
                local_root: None,
                encryption: None,
                erased: Arc::default(),
            });
        }
        Err(bad("use file:///path, s3://bucket[/prefix] or memory://"))
    }

    fn tenant_prefix(tenant: &str) -> Path {
        Path::from(format!("tenants/{tenant}"))
    }

    /// Encrypt everything stored for tenants from now on: data keys per tenant, wrapped by
    /// `kek`, managed by `policy`. Public list prices (`prices/`) stay plaintext.
    pub fn with_encryption(mut self, kek: Arc<dyn Kek>, policy: KeyPolicy) -> Store {
        self.encryption = Some(Arc::new(Encryption {
            kek,
            policy,
            cache: Mutex::new(HashMap::new()),
        }));
        self
    }

    /// Whether objects are sealed client-side.
    pub fn encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// Seal `bytes` for the object `key` of `tenant` (unchanged without encryption).
    async fn seal(
        &self,
        tenant: &str,
        kind: &str,
        key: &Path,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let Some(enc) = &self.encryption else {
            return Ok(bytes);
        };
        let (id, data_key) = self.write_key(enc, tenant).await?;
        let binding = Binding {
            tenant,
            kind,
            key: key.as_ref(),
        };
        let sealed = envelope::seal(&data_key, &id, binding, &bytes);
        // The plaintext may be customer data: wipe our copy.
        drop(zeroize::Zeroizing::new(bytes));
        sealed.map_err(|cause| {
            CryptoError::Envelope {
                operation: "sealing",
                key: key.to_string(),
                cause,
            }
            .into()
        })
    }

    /// Open what was read from `key`: sealed objects with the data key their header names;
    /// plaintext ones (written before encryption, or outside every tenant) as they are.
    async fn open_object(&self, key: &str, bytes: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        if !envelope::is_sealed(&bytes) {
            if self.encryption.is_some() && key.starts_with("tenants/") {
                // Only kinds that existed before encryption can hold plaintext; anything
                // else in plaintext was planted, not left by an older version.
                let kind = key.split('/').nth(2).unwrap_or_default();
                if !PLAINTEXT_BEFORE_ENCRYPTION.contains(&kind) {
                    return Err(CryptoError::UnexpectedPlaintext(key.to_string()).into());
                }
                tracing::debug!(key, "read a plaintext object written before encryption");
            }
            return Ok(bytes);
        }
        let Some(enc) = &self.encryption else {
            return Err(CryptoError::NoKeys(key.to_string()).into());
        };
        let envelope_error = |cause| CryptoError::Envelope {
            operation: "opening",
            key: key.to_string(),
            cause,
        };
        let mut parts = key.splitn(4, '/');
        let (Some("tenants"), Some(tenant), Some(kind)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(
                envelope_error(EnvelopeError::Header("sealed object outside a tenant")).into(),
            );
        };
        let id = envelope::key_id(&bytes).map_err(envelope_error)?;
        let data_key = self.read_key(enc, tenant, id, key).await?;
        let binding = Binding { tenant, kind, key };
        Ok(envelope::open(&data_key, binding, &bytes).map_err(envelope_error)?)
    }

    fn keyring_prefix(tenant: &str) -> Path {
        Path::from(format!("keyring/{tenant}"))
    }

    fn erasure_key(tenant: &str) -> Path {
        Path::from(format!("erasures/{tenant}.json"))
    }

    /// The deletion record of an erased (or being erased) tenant, None when it was never
    /// erased.
    pub async fn erasure_record(&self, tenant: &str) -> Result<Option<ErasureRecord>, StoreError> {
        let key = Self::erasure_key(tenant);
        match self.inner.get(&key).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(backend("get"))?;
                serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                    CryptoError::Record {
                        what: "deletion record",
                        key: key.to_string(),
                        reason: e.to_string(),
                    }
                    .into()
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend("get")(e)),
        }
    }

    /// Refuse to use any data key of an erased tenant (even one from a restored keyring).
    async fn refuse_keys_if_erased(&self, tenant: &str) -> Result<(), StoreError> {
        match self.erasure_record(tenant).await? {
            Some(record) => Err(CryptoError::KeyDestroyed {
                tenant: tenant.to_string(),
                destroyed_at: record.erased_at,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// The wrapped data keys of `tenant`, oldest first.
    async fn data_key_records(
        &self,
        tenant: &str,
    ) -> Result<Vec<(Path, DataKeyRecord)>, StoreError> {
        let metas: Vec<_> = self
            .inner
            .list(Some(&Self::keyring_prefix(tenant)))
            .try_collect()
            .await
            .map_err(backend("list"))?;
        let mut records = Vec::with_capacity(metas.len());
        for meta in metas {
            let bytes = match self.inner.get(&meta.location).await {
                Ok(got) => got.bytes().await.map_err(backend("get"))?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(backend("get")(e)),
            };
            let record: DataKeyRecord =
                serde_json::from_slice(&bytes).map_err(|e| CryptoError::Record {
                    what: "data key",
                    key: meta.location.to_string(),
                    reason: e.to_string(),
                })?;
            records.push((meta.location, record));
        }
        records.sort_by(|a, b| (a.1.created_at, &a.1.key_id).cmp(&(b.1.created_at, &b.1.key_id)));
        Ok(records)
    }

    async fn unwrap_record(
        &self,
        enc: &Encryption,
        record: &DataKeyRecord,
    ) -> Result<KeyBytes, StoreError> {
        let fail = |cause| CryptoError::DataKey {
            operation: "unwrapping",
            tenant: record.tenant.clone(),
            cause,
        };
        let wrapped = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(&record.wrapped_key)
                .map_err(|_| fail(KekError::Malformed("wrapped key is not base64")))?,
        );
        Ok(enc
            .kek
            .unwrap(&record.tenant, &record.kek, &wrapped)
            .await
            .map_err(fail)?)
    }

    fn cache_key(
        enc: &Encryption,
        tenant: &str,
        id: &str,
        key: Arc<KeyBytes>,
        current: Option<jiff::Timestamp>,
    ) {
        let mut cache = enc.cache.lock().expect("key cache lock");
        let entry = cache.entry(tenant.to_string()).or_default();
        entry.keys.insert(id.to_string(), (key, Instant::now()));
        if let Some(created) = current {
            entry.current = Some((id.to_string(), created));
        }
    }

    fn cached(enc: &Encryption, tenant: &str, id: Option<&str>) -> Option<(String, Arc<KeyBytes>)> {
        let mut cache = enc.cache.lock().expect("key cache lock");
        // Expired keys leave memory (and are wiped) whichever tenant asks.
        cache.retain(|_, t| {
            t.keys
                .retain(|_, (_, at)| at.elapsed() < enc.policy.cache_for);
            !t.keys.is_empty()
        });
        let entry = cache.get(tenant)?;
        let id = match id {
            Some(id) => id.to_string(),
            None => {
                let (id, created) = entry.current.as_ref()?;
                let age = jiff::Timestamp::now().duration_since(*created);
                if age.unsigned_abs() >= enc.policy.rotate_after {
                    return None;
                }
                id.clone()
            }
        };
        entry.keys.get(&id).map(|(k, _)| (id, k.clone()))
    }

    /// The data key new objects of `tenant` are sealed with: the newest, unless older than
    /// the rotation age; a new one when there is none. Never for an erased tenant.
    async fn write_key(
        &self,
        enc: &Encryption,
        tenant: &str,
    ) -> Result<(String, Arc<KeyBytes>), StoreError> {
        if let Some(hit) = Self::cached(enc, tenant, None) {
            return Ok(hit);
        }
        self.refuse_erased(tenant).await?;
        let now = jiff::Timestamp::now();
        if let Some((_, newest)) = self.data_key_records(tenant).await?.pop() {
            let age = now.duration_since(newest.created_at).unsigned_abs();
            if age < enc.policy.rotate_after {
                let key = Arc::new(self.unwrap_record(enc, &newest).await?);
                Self::cache_key(
                    enc,
                    tenant,
                    &newest.key_id,
                    key.clone(),
                    Some(newest.created_at),
                );
                return Ok((newest.key_id, key));
            }
        }
        let (key, wrapped) =
            enc.kek
                .generate(tenant)
                .await
                .map_err(|cause| CryptoError::DataKey {
                    operation: "generating",
                    tenant: tenant.to_string(),
                    cause,
                })?;
        let mut suffix = [0u8; 4];
        aws_lc_rs::rand::fill(&mut suffix).map_err(|_| CryptoError::DataKey {
            operation: "generating",
            tenant: tenant.to_string(),
            cause: KekError::Random,
        })?;
        let key_id = format!(
            "{}-{:08x}",
            now.strftime("%Y%m%dT%H%M%SZ"),
            u32::from_be_bytes(suffix)
        );
        let record = DataKeyRecord {
            tenant: tenant.to_string(),
            key_id: key_id.clone(),
            created_at: now,
            kek: enc.kek.current(),
            wrapped_key: base64::engine::general_purpose::STANDARD.encode(&wrapped),
        };
        let path = Path::from(format!("keyring/{tenant}/{key_id}.json"));
        let body = serde_json::to_vec(&record).expect("data key record serializes");
        self.inner
            .put(&path, PutPayload::from(body))
            .await
            .map_err(backend("put"))?;
        // An erasure that started meanwhile may have listed the keyring before this key
        // was there: its deletion record is already written, so seeing none now means the
        // erasure will see (and destroy) the key.
        if let Err(e) = self.refuse_erased(tenant).await {
            let _ = self.inner.delete(&path).await;
            return Err(e);
        }
        let key = Arc::new(key);
        Self::cache_key(enc, tenant, &key_id, key.clone(), Some(now));
        tracing::info!(tenant, key_id, kek = %record.kek, "created a data key");
        Ok((key_id, key))
    }

    /// The data key `id` of `tenant` that the object `object` names.
    async fn read_key(
        &self,
        enc: &Encryption,
        tenant: &str,
        id: &str,
        object: &str,
    ) -> Result<Arc<KeyBytes>, StoreError> {
        if let Some((_, key)) = Self::cached(enc, tenant, Some(id)) {
            return Ok(key);
        }
        // An erased tenant's keys are never used again, even from a restored old keyring.
        self.refuse_keys_if_erased(tenant).await?;
        let path = Path::from(format!("keyring/{tenant}/{id}.json"));
        let bytes = match self.inner.get(&path).await {
            Ok(got) => got.bytes().await.map_err(backend("get"))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(CryptoError::KeyMissing {
                    tenant: tenant.to_string(),
                    key_id: id.to_string(),
                    key: object.to_string(),
                }
                .into());
            }
            Err(e) => return Err(backend("get")(e)),
        };
        let record: DataKeyRecord =
            serde_json::from_slice(&bytes).map_err(|e| CryptoError::Record {
                what: "data key",
                key: path.to_string(),
                reason: e.to_string(),
            })?;
        if record.tenant != tenant || record.key_id != id {
            return Err(CryptoError::Record {
                what: "data key",
                key: path.to_string(),
                reason: "names another tenant or key".into(),
            }
            .into());
        }
        let key = Arc::new(self.unwrap_record(enc, &record).await?);
        Self::cache_key(enc, tenant, id, key.clone(), None);
        Ok(key)
    }

    /// Re-wrap every data key of `tenant` that another KEK wrapped with the current one
    /// (KEK rotation: no object is rewritten); returns how many were re-wrapped.
    pub async fn rewrap_data_keys(&self, tenant: &str) -> Result<usize, StoreError> {
        let Some(enc) = &self.encryption else {
            return Ok(0);
        };
        let current = enc.kek.current();
        let mut rewrapped = 0;
        for (path, mut record) in self.data_key_records(tenant).await? {
            if record.kek == current {
                continue;
            }
            let key = self.unwrap_record(enc, &record).await?;
            let wrapped =
                enc.kek
                    .wrap(tenant, &key)
                    .await
                    .map_err(|cause| CryptoError::DataKey {
                        operation: "re-wrapping",
                        tenant: tenant.to_string(),
                        cause,
                    })?;
            record.kek = current.clone();
            record.wrapped_key = base64::engine::general_purpose::STANDARD.encode(&wrapped);
            let body = serde_json::to_vec(&record).expect("data key record serializes");
            self.inner
                .put(&path, PutPayload::from(body))
                .await
                .map_err(backend("put"))?;
            rewrapped += 1;
        }
        Ok(rewrapped)
    }

    /// The tenants that have data keys (for KEK rotation over all of them).
    pub async fn tenants_with_keys(&self) -> Result<Vec<String>, StoreError> {
        let listed = self
            .inner
            .list_with_delimiter(Some(&Path::from("keyring")))
            .await
            .map_err(backend("list"))?;
        let mut tenants: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        tenants.sort();
        Ok(tenants)
    }

    /// Store one object for `tenant`/`namespace`/`cluster` stamped with `at`; returns its key.
    pub async fn put(
        &self,
        tenant: &str,
        kind: Kind,
        namespace: &str,
        cluster: &str,
        at: jiff::Timestamp,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        self.refuse_erased(tenant).await?;
        let key = self.fresh_key(tenant, kind, namespace, cluster, at).await?;
        let bytes = self.seal(tenant, kind.dir(), &key, bytes).await?;
        self.inner
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(backend("put"))?;
        self.undo_if_erased(tenant, &key).await?;
        Ok(key.to_string())
    }

    /// Start writing one object for `tenant`/`namespace`/`cluster` stamped with `at`, in
    /// parts, for objects too large to hold in memory (a 150,000-pod cluster's snapshot is
    /// hundreds of MB): [`ObjectWriter`] uploads each [`PART_SIZE`] part as it fills (S3
    /// multipart upload; a staging file renamed at the end on `file://`). The object only
    /// appears under its key once [`ObjectWriter::finish`] succeeds; an aborted or dropped
    /// writer leaves nothing readable behind.
    pub async fn put_parts(
        &self,
        tenant: &str,
        kind: Kind,
        namespace: &str,
        cluster: &str,
        at: jiff::Timestamp,
    ) -> Result<ObjectWriter, StoreError> {
        self.refuse_erased(tenant).await?;
        let key = self.fresh_key(tenant, kind, namespace, cluster, at).await?;
        let sealer = match &self.encryption {
            Some(enc) => {
                let (id, data_key) = self.write_key(enc, tenant).await?;
                let binding = Binding {
                    tenant,
                    kind: kind.dir(),
                    key: key.as_ref(),
                };
                Some(Sealer::new(&data_key, &id, binding).map_err(|cause| {
                    CryptoError::Envelope {
                        operation: "sealing",
                        key: key.to_string(),
                        cause,
                    }
                })?)
            }
            None => None,
        };
        let upload = self
            .inner
            .put_multipart(&key)
            .await
            .map_err(backend("put"))?;
        Ok(ObjectWriter {
            upload: object_store::WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
            key,
            written: 0,
            sealer,
            failed: None,
            tenant: tenant.to_string(),
            store: self.clone(),
        })
    }

    /// The key for a new object: `…/<stamp>.<ext>`, or `…/<stamp>-<n>.<ext>` when a second
    /// object lands in the same second (objects are never overwritten).
    async fn fresh_key(
        &self,
        tenant: &str,
        kind: Kind,
        namespace: &str,
        cluster: &str,
        at: jiff::Timestamp,
    ) -> Result<Path, StoreError> {
        let stamp = at.strftime("%Y%m%dT%H%M%SZ").to_string();
        let base = format!(
            "tenants/{tenant}/{}/{namespace}/{cluster}/{stamp}",
            kind.dir()
        );
        let mut key = Path::from(format!("{base}.{}", kind.ext()));
        for n in 1.. {
            match self.inner.head(&key).await {
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(backend("head")(e)),
                Ok(_) => key = Path::from(format!("{base}-{n}.{}", kind.ext())),
            }
        }
        Ok(key)
    }

    /// Read an object back (opened with its tenant's data key when sealed).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let got = self
            .inner
            .get(&Path::from(key))
            .await
            .map_err(backend("get"))?;
        let bytes = got.bytes().await.map_err(backend("get"))?.to_vec();
        self.open_object(key, bytes).await
    }

    /// Write (replace) the tenant's state object `name`, at
    /// `tenants/<tenant>/state/<name>.json`; returns its key. State objects carry no time
    /// stamp, so retention leaves them alone; erasure removes them with the rest.
    pub async fn put_state(
        &self,
        tenant: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        self.put_named(tenant, &format!("state/{name}.json"), bytes)
            .await
    }

    /// Read the tenant's state object `name`; None when it was never written.
    pub async fn get_state(&self, tenant: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_named(tenant, &format!("state/{name}.json")).await
    }

    /// Delete the object at `key` (as [`Store::put`] returned it); deleting one that does
    /// not exist is fine.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend("delete")(e)),
        }
    }

    /// Delete the tenant's state object `name`; deleting one that does not exist is fine.
    pub async fn delete_state(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.delete_named(tenant, &format!("state/{name}.json"))
            .await
    }

    /// Write (replace) the cached list prices of `region` at `prices/<region>.json`, outside
    /// every tenant's prefix: public list prices carry no tenant data, are shared by all
    /// tenants, and are neither swept by retention nor erased with a tenant.
    pub async fn put_prices(&self, region: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
        let key = Path::from(format!("prices/{region}.json"));
        self.inner
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(backend("put"))?;
        Ok(key.to_string())
    }

    /// Read the cached list prices of `region`; None when they were never written.
    pub async fn get_prices(&self, region: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = Path::from(format!("prices/{region}.json"));
        match self.inner.get(&key).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(backend("get"))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend("get")(e)),
        }
    }

    /// Every key under the tenant's prefix.
    pub async fn keys(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.sorted_keys(&Self::tenant_prefix(tenant)).await
    }

    /// Every key under `prefix`, whole, in ascending order.
    async fn sorted_keys(&self, prefix: &Path) -> Result<Vec<String>, StoreError> {
        let metas: Vec<_> = self
            .inner
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(backend("list"))?;
        let mut keys: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
        keys.sort();
        Ok(keys)
    }

    /// Delete the tenant's objects stamped before `cutoff`, and what writes interrupted more
    /// than an hour ago left behind; returns how many were deleted.
    pub async fn sweep(&self, tenant: &str, cutoff: jiff::Timestamp) -> Result<usize, StoreError> {
        let mut deleted = self
            .remove_interrupted_writes(tenant, INTERRUPTED_WRITE_AGE)
            .await?;
        for key in self.keys(tenant).await? {
            if stamp_of(&key).is_some_and(|t| t < cutoff) {
                self.inner
                    .delete(&Path::from(key.as_str()))
                    .await
                    .map_err(backend("delete"))?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Erase the tenant (crypto-shredding): record the erasure ([`Store::begin_erasure`], if
    /// the caller has not already), destroy its wrapped data
    /// keys (so every copy of its objects, backups included, stays sealed for good), then
    /// delete everything under its prefix (on a `file://` store with the staging files of
    /// uploads an operator killed mid-write left there, which the listing does not show),
    /// and complete the deletion record ([`Store::erasure_record`]). Returns how many
    /// objects and staging files were deleted. Safe to repeat: an already empty prefix
    /// deletes nothing. From the first step on, writes for the tenant fail
    /// ([`StoreError::TenantErased`]) and reads of its objects fail
    /// ([`CryptoError::KeyDestroyed`]).
    pub async fn purge(&self, tenant: &str) -> Result<usize, StoreError> {
        let record_key = Self::erasure_key(tenant);
        let keyring = self.data_key_records(tenant).await?;
        let mut record = match self.erasure_record(tenant).await? {
            Some(r) => r,
            None => ErasureRecord {
                tenant: tenant.to_string(),
                erased_at: jiff::Timestamp::now(),
                data_keys_destroyed: Vec::new(),
                objects_deleted: None,
                completed_at: None,
            },
        };
        for (_, k) in &keyring {
            if !record.data_keys_destroyed.contains(&k.key_id) {
                record.data_keys_destroyed.push(k.key_id.clone());
            }
        }
        self.put_erasure_record(&record_key, &record).await?;
        self.remember_erased(tenant);
        // A key made after the listing above (a write racing the erasure) is found here.
        for (path, _) in keyring.iter().chain(&self.data_key_records(tenant).await?) {
            match self.inner.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend("delete")(e)),
            }
        }
        if let Some(enc) = &self.encryption {
            enc.cache.lock().expect("key cache lock").remove(tenant);
        }
        let mut deleted = self
            .remove_interrupted_writes(tenant, Duration::ZERO)
            .await?;
        for key in self.keys(tenant).await? {
            match self.inner.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(backend("delete")(e)),
            }
        }
        record.objects_deleted = Some(record.objects_deleted.unwrap_or(0) + deleted);
        record.completed_at = Some(jiff::Timestamp::now());
        self.put_erasure_record(&record_key, &record).await?;
        Ok(deleted)
    }

    async fn put_erasure_record(
        &self,
        key: &Path,
        record: &ErasureRecord,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(record).expect("deletion record serializes");
        self.inner
            .put(key, PutPayload::from(body))
            .await
            .map_err(backend("put"))?;
        Ok(())
    }
}

impl Store {
    /// The key of the tenant object at `rel` (`<kind>/<…>`), refusing empty components.
    fn named_key(tenant: &str, rel: &str) -> Result<(Path, String), StoreError> {
        let kind = rel.split('/').next().unwrap_or_default();
        if rel.split('/').any(str::is_empty) {
            return Err(StoreError::Url {
                url: format!("tenants/{tenant}/{rel}"),
                reason: "an object key has an empty component".into(),
            });
        }
        Ok((
            Path::from(format!("tenants/{tenant}/{rel}")),
            kind.to_string(),
        ))
    }

    /// Write (replace) the tenant's object at `tenants/<tenant>/<rel>`, where `rel` is
    /// `<kind>/<…>` and `<kind>` is bound into the encryption's associated data; returns its
    /// key. For objects that are rewritten in place (history segments); refused for an
    /// erased tenant exactly like [`Store::put`]. Retention applies when the file name starts
    /// with a `YYYYMMDDTHHMMSSZ` stamp.
    pub async fn put_named(
        &self,
        tenant: &str,
        rel: &str,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        self.refuse_erased(tenant).await?;
        let (key, kind) = Self::named_key(tenant, rel)?;
        let bytes = self.seal(tenant, &kind, &key, bytes).await?;
        self.inner
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(backend("put"))?;
        self.undo_if_erased(tenant, &key).await?;
        Ok(key.to_string())
    }

    /// Read the tenant's object at `tenants/<tenant>/<rel>` (opened with its data key);
    /// None when there is none.
    pub async fn get_named(&self, tenant: &str, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (key, _) = Self::named_key(tenant, rel)?;
        match self.inner.get(&key).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(backend("get"))?.to_vec();
                Ok(Some(self.open_object(key.as_ref(), bytes).await?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend("get")(e)),
        }
    }

    /// The keys under `tenants/<tenant>/<rel_prefix>/`, relative to the tenant's prefix
    /// (`<rel_prefix>/<…>`), sorted. Lists only that prefix, not the whole tenant.
    pub async fn list_named(
        &self,
        tenant: &str,
        rel_prefix: &str,
    ) -> Result<Vec<String>, StoreError> {
        let (prefix, _) = Self::named_key(tenant, rel_prefix)?;
        let strip = format!("tenants/{tenant}/");
        Ok(self
            .sorted_keys(&prefix)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&strip).map(str::to_string))
            .collect())
    }

    /// Delete the tenant's object at `tenants/<tenant>/<rel>`; one that does not exist is
    /// fine.
    pub async fn delete_named(&self, tenant: &str, rel: &str) -> Result<(), StoreError> {
        let (key, _) = Self::named_key(tenant, rel)?;
        match self.inner.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend("delete")(e)),
        }
    }
}

/// The size of each part [`ObjectWriter`] uploads: 5 MiB, S3's minimum part size (every
/// part but the last must be at least that large; AWS S3 `UploadPart` documentation).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts an [`ObjectWriter`] may have in flight before [`ObjectWriter::ready`] waits: with
/// the part being filled, at most `(PARTS_IN_FLIGHT + 1) * PART_SIZE` bytes are buffered.
pub const PARTS_IN_FLIGHT: usize = 2;

/// An object being written in parts; see [`Store::put_parts`]. Call [`ready`](Self::ready)
/// between writes to bound what is buffered, then [`finish`](Self::finish) or
/// [`abort`](Self::abort).
#[derive(Debug)]
pub struct ObjectWriter {
    upload: object_store::WriteMultipart,
    key: Path,
    written: u64,
    /// Seals the plaintext chunk by chunk on an encrypted store.
    sealer: Option<Sealer>,
    /// A sealing failure, reported by the next `ready` or `finish`.
    failed: Option<EnvelopeError>,
    /// Whose object this is, checked against its deletion record when it completes.
    tenant: String,
    store: Store,
}

impl ObjectWriter {
    /// Append `bytes`; a part is handed to the backend each time [`PART_SIZE`] bytes are
    /// buffered.
    pub fn write(&mut self, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        match &mut self.sealer {
            None => self.upload.write(bytes),
            Some(sealer) => match sealer.push(bytes) {
                Ok(sealed) => self.upload.write(&sealed),
                Err(e) => self.failed = Some(e),
            },
        }
    }

    fn sealing_failed(&mut self) -> Result<(), StoreError> {
        match self.failed.take() {
            Some(cause) => Err(CryptoError::Envelope {
                operation: "sealing",
                key: self.key.to_string(),
                cause,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Wait until fewer than [`PARTS_IN_FLIGHT`] parts are being uploaded. An error is a
    /// failed part: the object cannot be completed, so [`abort`](Self::abort) it.
    pub async fn ready(&mut self) -> Result<(), StoreError> {
        self.sealing_failed()?;
        self.upload
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(backend("put"))
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Upload what is left and complete the object; returns its key. On an error the
    /// upload is aborted and nothing is left under the key; a tenant erased meanwhile is
    /// [`StoreError::TenantErased`], and the object is deleted again.
    pub async fn finish(mut self) -> Result<String, StoreError> {
        if let Some(sealer) = self.sealer.take() {
            match sealer.finish() {
                Ok(last) => self.upload.write(&last),
                Err(e) => self.failed = Some(e),
            }
        }
        let refused = match self.sealing_failed() {
            Ok(()) => self.store.refuse_erased(&self.tenant).await,
            Err(e) => Err(e),
        };
        if let Err(e) = refused {
            self.abort().await;
            return Err(e);
        }
        self.upload.finish().await.map_err(backend("put"))?;
        self.store.undo_if_erased(&self.tenant, &self.key).await?;
        Ok(self.key.to_string())
    }

    /// Give up: cancel the parts in flight and discard what was uploaded. Best effort (an
    /// S3 upload that cannot be aborted now is removed by the bucket's
    /// `AbortIncompleteMultipartUpload` lifecycle rule; see the chart README).
    pub async fn abort(self) {
        if let Err(e) = self.upload.abort().await {
            tracing::warn!(key = %self.key, error = %e, "aborting a partial upload failed");
        }
    }
}

impl Store {
    /// Record that `tenant` is erased, before anything of it is destroyed: writes its
    /// deletion record ([`ErasureRecord`], no customer data; kept as the evidence) unless
    /// one exists. From then on every write for the tenant fails with
    /// [`StoreError::TenantErased`] (in this process and in any other replica sharing the
    /// store), and no data key is ever made for it again. Repeating it is fine.
    pub async fn begin_erasure(&self, tenant: &str, at: jiff::Timestamp) -> Result<(), StoreError> {
        if self.erasure_record(tenant).await?.is_none() {
            let record = ErasureRecord {
                tenant: tenant.to_string(),
                erased_at: at,
                data_keys_destroyed: Vec::new(),
                objects_deleted: None,
                completed_at: None,
            };
            self.put_erasure_record(&Self::erasure_key(tenant), &record)
                .await?;
        }
        self.remember_erased(tenant);
        Ok(())
    }

    /// Whether `tenant` was erased (its deletion record exists).
    pub async fn is_erased(&self, tenant: &str) -> Result<bool, StoreError> {
        if self
            .erased
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(tenant)
        {
            return Ok(true);
        }
        match self.inner.head(&Self::erasure_key(tenant)).await {
            Ok(_) => {
                self.remember_erased(tenant);
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend("read deletion record")(e)),
        }
    }

    fn remember_erased(&self, tenant: &str) {
        self.erased
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string());
    }

    /// The check at the top of every tenant write.
    async fn refuse_erased(&self, tenant: &str) -> Result<(), StoreError> {
        if self.is_erased(tenant).await? {
            return Err(StoreError::TenantErased {
                tenant: tenant.to_string(),
            });
        }
        Ok(())
    }

    /// The check after a tenant write landed: if the tenant was erased meanwhile, the
    /// erasure may have listed the prefix before this object was there, so delete it here.
    async fn undo_if_erased(&self, tenant: &str, key: &Path) -> Result<(), StoreError> {
        if !self.is_erased(tenant).await? {
            return Ok(());
        }
        match self.inner.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(backend("delete")(e)),
        }
        tracing::info!(%key, "deleted an object written while its tenant was erased");
        Err(StoreError::TenantErased {
            tenant: tenant.to_string(),
        })
    }

    /// Remove the tenant's staging files older than `age` from a `file://` store; returns
    /// how many. object_store's LocalFileSystem writes an object to `<key>#<digits>` and
    /// renames it into place, so a process killed mid-write leaves that file behind, and
    /// its listing hides such names: without this neither retention nor erasure would ever
    /// see them. On S3 an interrupted multipart upload is invisible and holds no object;
    /// the bucket's `AbortIncompleteMultipartUpload` lifecycle rule removes its parts.
    async fn remove_interrupted_writes(
        &self,
        tenant: &str,
        age: Duration,
    ) -> Result<usize, StoreError> {
        let Some(root) = &self.local_root else {
            return Ok(0);
        };
        let dir = root.join(Self::tenant_prefix(tenant).as_ref());
        let removed = tokio::task::spawn_blocking(move || remove_staging_files(&dir, age))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        removed.map_err(|e| {
            backend("remove interrupted writes")(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })
        })
    }
}

/// Whether `name` is a LocalFileSystem staging file name: `<name>#<digits>`.
fn is_staging_name(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Remove the staging files under `dir` (recursively) not modified for `age`; a missing
/// `dir` holds none.
fn remove_staging_files(dir: &std::path::Path, age: Duration) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            removed += remove_staging_files(&entry.path(), age)?;
        } else if is_staging_name(&entry.file_name().to_string_lossy()) {
            let idle = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
            if idle >= age {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

/// The time stamped into a key, if it has one.
fn stamp_of(key: &str) -> Option<jiff::Timestamp> {
    let file = key.rsplit('/').next()?;
    let stamp = file.get(..16)?;
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", stamp)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn urls_are_checked() {
        assert!(Store::open("memory://", &S3Options::default()).is_ok());
        assert!(Store::open("file://relative", &S3Options::default()).is_err());
        assert!(Store::open("ftp://x", &S3Options::default()).is_err());
        assert!(Store::open("s3://", &S3Options::default()).is_err());
    }

    #[tokio::test]
    async fn keys_are_per_tenant_and_never_overwritten() {
        let store = Store::open("memory://", &S3Options::default()).unwrap();
        let at = t("2026-11-23T12:00:00Z");
        let a = store
            .put("uid-a", Kind::Report, "ns", "prod", at, b"1".to_vec())
            .await
            .unwrap();
        let b = store
            .put("uid-a", Kind::Report, "ns", "prod", at, b"2".to_vec())
            .await
            .unwrap();
        assert_eq!(a, "tenants/uid-a/reports/ns/prod/20261123T120000Z.json");
        assert_eq!(b, "tenants/uid-a/reports/ns/prod/20261123T120000Z-1.json");
        store
            .put("uid-b", Kind::Snapshot, "ns", "prod", at, b"3".to_vec())
            .await
            .unwrap();
        assert_eq!(store.keys("uid-a").await.unwrap().len(), 2);
        assert_eq!(store.get(&a).await.unwrap(), b"1");
        assert_eq!(
            store.keys("uid-b").await.unwrap(),
            vec!["tenants/uid-b/snapshots/ns/prod/20261123T120000Z.json"]
        );
        // Deleting by key removes that object only, and twice is fine.
        store.delete(&b).await.unwrap();
        store.delete(&b).await.unwrap();
        assert_eq!(store.keys("uid-a").await.unwrap(), vec![a.clone()]);
    }

    #[tokio::test]
    async fn state_objects_are_replaced_kept_by_retention_and_erased() {
        let store = Store::open("memory://", &S3Options::default()).unwrap();
        assert_eq!(store.get_state("uid-a", "key-audit").await.unwrap(), None);
        store
            .put_state("uid-a", "key-audit", b"1".to_vec())
            .await
            .unwrap();
        let key = store
            .put_state("uid-a", "key-audit", b"2".to_vec())
            .await
            .unwrap();
        assert_eq!(key, "tenants/uid-a/state/key-audit.json");
        assert_eq!(
            store.get_state("uid-a", "key-audit").await.unwrap(),
            Some(b"2".to_vec())
        );
        assert_eq!(store.get_state("uid-b", "key-audit").await.unwrap(), None);
        let swept = store
            .sweep("uid-a", t("2100-01-01T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(swept, 0, "retention never removes state");
        store.delete_state("uid-b", "key-audit").await.unwrap();
        store
            .put_state("uid-a", "other", b"3".to_vec())
            .await
            .unwrap();
        store.delete_state("uid-a", "other").await.unwrap();
        assert_eq!(store.get_state("uid-a", "other").await.unwrap(), None);
        assert_eq!(store.purge("uid-a").await.unwrap(), 1);
        assert_eq!(store.get_state("uid-a", "key-audit").await.unwrap(), None);
    }

    #[tokio::test]
    async fn sweep_deletes_only_what_is_older_than_the_cutoff() {
        let store = Store::open("memory://", &S3Options::default()).unwrap();
        for day in [
            "2025-01-01T00:00:00Z",
            "2026-06-01T00:00:00Z",
            "2026-11-20T00:00:00Z",
        ] {
            store
                .put("uid-a", Kind::Report, "ns", "prod", t(day), b"r".to_vec())
                .await
                .unwrap();
            store
                .put("uid-a", Kind::Audit, "ns", "prod", t(day), b"a".to_vec())
                .await
                .unwrap();
        }
        store
            .put(
                "uid-b",
                Kind::Report,
                "ns",
                "prod",
                t("2025-01-01T00:00:00Z"),
                b"r".to_vec(),
            )
            .await
            .unwrap();
        let deleted = store
            .sweep("uid-a", t("2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(deleted, 2);
        let left = store.keys("uid-a").await.unwrap();
        assert_eq!(left.len(), 4);
        assert!(left.iter().all(|k| !k.contains("2025")));
        assert_eq!(
            store.keys("uid-b").await.unwrap().len(),
            1,
            "another tenant is untouched"
        );
    }

    #[tokio::test]
    async fn purge_empties_the_tenant_prefix_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = Store::open(&url, &S3Options::default()).unwrap();
        let at = t("2026-11-23T12:00:00Z");
        store
            .put("uid-a", Kind::Report, "ns", "prod", at, b"r".to_vec())
            .await
            .unwrap();
        store
            .put("uid-a", Kind::Snapshot, "ns", "prod", at, b"s".to_vec())
            .await
            .unwrap();
        store
            .put("uid-b", Kind::Report, "ns", "prod", at, b"r".to_vec())
            .await
            .unwrap();
        assert_eq!(store.purge("uid-a").await.unwrap(), 2);
        assert!(store.keys("uid-a").await.unwrap().is_empty());
        assert_eq!(store.purge("uid-a").await.unwrap(), 0);
        assert_eq!(store.keys("uid-b").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn writes_a_killed_process_left_are_swept_when_stale_and_erased_always() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = Store::open(&url, &S3Options::default()).unwrap();
        let at = t("2026-11-23T12:00:00Z");
        let kept = store
            .put("uid-a", Kind::Report, "ns", "prod", at, b"r".to_vec())
            .await
            .unwrap();
        // What a write killed midway leaves: `<key>#<digits>`, which listing hides.
        let staging = |name: &str, age: Duration| {
            let path = dir
                .path()
                .join("tenants/uid-a/snapshots/ns/prod")
                .join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"{\"half").unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(std::time::SystemTime::now() - age)
                .unwrap();
            path
        };
        let stale = staging("20261123T110000Z.json#3", Duration::from_secs(2 * 3600));
        let fresh = staging("20261123T115959Z.json#4", Duration::ZERO);
        assert_eq!(store.keys("uid-a").await.unwrap(), vec![kept.clone()]);

        // Retention (nothing old enough among the objects) takes the stale one only: the
        // fresh one may be a write in flight.
        assert_eq!(store.sweep("uid-a", at).await.unwrap(), 1);
        assert!(!stale.exists() && fresh.exists());
        assert_eq!(store.keys("uid-a").await.unwrap(), vec![kept]);

        // Erasure takes everything.
        assert_eq!(store.purge("uid-a").await.unwrap(), 2);
        let mut left = Vec::new();
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        walk(dir.path(), &mut left);
        // Only the deletion record (no customer data) is left.
        assert_eq!(left, [dir.path().join("erasures/uid-a.json")]);
        assert!(is_staging_name("a.json#12") && !is_staging_name("a.json#x1"));
        assert!(!is_staging_name("a.json") && !is_staging_name("a.json#"));
    }

    fn local_kek(current: &str, ids: &[(&str, u8)]) -> Arc<dyn Kek> {
        let keys = ids
            .iter()
            .map(|(id, b)| (id.to_string(), zeroize::Zeroizing::new([*b; 32])))
            .collect();
        Arc::new(keys::LocalKek::new(current, keys).unwrap())
    }

    fn encrypted(url: &str, kek: Arc<dyn Kek>) -> Store {
        Store::open(url, &S3Options::default())
            .unwrap()
            .with_encryption(kek, KeyPolicy::default())
    }

    fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                out.extend(files(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out.sort();
        out
    }

    fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
        for file in files(from) {
            let target = to.join(file.strip_prefix(from).unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&file, &target).unwrap();
        }
    }

    const SECRET: &[u8] = b"{\"cluster\":\"prod\",\"note\":\"tenant-secret-marker\"}";

    #[tokio::test]
    async fn everything_stored_for_a_tenant_is_ciphertext_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = encrypted(&url, local_kek("1", &[("1", 7)]));
        let at = t("2026-11-23T12:00:00Z");
        let report = store
            .put("uid-a", Kind::Report, "ns", "prod", at, SECRET.to_vec())
            .await
            .unwrap();
        store
            .put_state("uid-a", "key-audit", SECRET.to_vec())
            .await
            .unwrap();
        let mut w = store
            .put_parts("uid-a", Kind::Snapshot, "ns", "prod", at)
            .await
            .unwrap();
        let big: Vec<u8> = SECRET
            .iter()
            .cycle()
            .take(PART_SIZE + 200_000)
            .copied()
            .collect();
        for part in big.chunks(100_000) {
            w.write(part);
            w.ready().await.unwrap();
        }
        let snapshot = w.finish().await.unwrap();
        for file in files(dir.path()) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(20).any(|w| w == b"tenant-secret-marker"),
                "plaintext in {file:?}"
            );
        }
        assert_eq!(store.get(&report).await.unwrap(), SECRET);
        assert_eq!(store.get(&snapshot).await.unwrap(), big);
        assert_eq!(
            store
                .get_state("uid-a", "key-audit")
                .await
                .unwrap()
                .unwrap(),
            SECRET
        );
        // One data key for the tenant, wrapped, beside its data.
        assert_eq!(store.data_key_records("uid-a").await.unwrap().len(), 1);
        // A fresh process (empty cache) with the same KEK reads it; another KEK does not,
        // and says why instead of returning garbage.
        let again = encrypted(&url, local_kek("1", &[("1", 7)]));
        assert_eq!(again.get(&report).await.unwrap(), SECRET);
        let wrong = encrypted(&url, local_kek("1", &[("1", 8)]));
        let err = wrong.get(&report).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Crypto(CryptoError::DataKey { .. })),
            "{err}"
        );
        let plain = Store::open(&url, &S3Options::default()).unwrap();
        let err = plain.get(&report).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Crypto(CryptoError::NoKeys(_))),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_object_moved_to_another_tenant_or_renamed_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = encrypted(&url, local_kek("1", &[("1", 7)]));
        let at = t("2026-11-23T12:00:00Z");
        let a = store
            .put("uid-a", Kind::Report, "ns", "prod", at, SECRET.to_vec())
            .await
            .unwrap();
        // uid-b has a key of its own; copy uid-a's object (and key id) under uid-b.
        store
            .put("uid-b", Kind::Report, "ns", "prod", at, b"{}".to_vec())
            .await
            .unwrap();
        let moved = a.replace("uid-a", "uid-b").replace(".json", "-9.json");
        let renamed = a.replace("20261123T120000Z", "20261124T120000Z");
        for target in [&moved, &renamed] {
            let to = dir.path().join(target);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(dir.path().join(&a), &to).unwrap();
        }
        assert!(store.get(&moved).await.is_err(), "moved to another tenant");
        // Even uid-a's own key id under uid-b's keyring is not there.
        let err = store.get(&renamed).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Crypto(CryptoError::Envelope {
                    operation: "opening",
                    ..
                })
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn erasure_destroys_the_keys_so_a_backup_copy_no_longer_opens() {
        let live = tempfile::tempdir().unwrap();
        let url = format!("file://{}", live.path().display());
        let kek = local_kek("1", &[("1", 7)]);
        let store = encrypted(&url, kek.clone());
        let at = t("2026-11-23T12:00:00Z");
        let a = store
            .put("uid-a", Kind::Report, "ns", "prod", at, SECRET.to_vec())
            .await
            .unwrap();
        let b = store
            .put("uid-b", Kind::Report, "ns", "prod", at, SECRET.to_vec())
            .await
            .unwrap();
        // A backup of the whole store, as a snapshot or a bucket replica would take it.
        let backup = tempfile::tempdir().unwrap();
        copy_tree(live.path(), backup.path());

        assert_eq!(store.purge("uid-a").await.unwrap(), 1);
        let record = store.erasure_record("uid-a").await.unwrap().unwrap();
        assert_eq!(record.objects_deleted, Some(1));
        assert_eq!(record.data_keys_destroyed.len(), 1);
        assert!(record.completed_at.is_some());
        let evidence = std::fs::read_to_string(live.path().join("erasures/uid-a.json")).unwrap();
        assert!(!evidence.contains("tenant-secret-marker") && !evidence.contains("prod"));

        // The operator (same KEK, even a fresh process) pointed at the backup's data but
        // the live keyring, where the key is gone: the erased tenant's copy does not open,
        // the other tenant's does.
        for dir in [live.path(), backup.path()] {
            std::fs::create_dir_all(dir.join("erasures")).unwrap();
        }
        let restored = tempfile::tempdir().unwrap();
        copy_tree(backup.path(), restored.path());
        std::fs::remove_dir_all(restored.path().join("keyring")).unwrap();
        copy_tree(
            &live.path().join("keyring"),
            &restored.path().join("keyring"),
        );
        copy_tree(
            &live.path().join("erasures"),
            &restored.path().join("erasures"),
        );
        let operator = encrypted(
            &format!("file://{}", restored.path().display()),
            kek.clone(),
        );
        let err = operator.get(&a).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Crypto(CryptoError::KeyDestroyed { .. })),
            "{err}"
        );
        assert_eq!(operator.get(&b).await.unwrap(), SECRET);
        // Without the deletion record it is still unreadable: the key is simply missing.
        std::fs::remove_dir_all(restored.path().join("erasures")).unwrap();
        let err = operator.get(&a).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Crypto(CryptoError::KeyMissing { .. })),
            "{err}"
        );
        // The backup's own (old) keyring would still open it: destroying the wrapped key
        // only shreds copies taken without the keyring, so the keyring is never backed up
        // with the data (docs/data-protection.md).

        // A write for the erased tenant fails loudly and makes no new key.
        let err = store
            .put("uid-a", Kind::Report, "ns", "prod", at, SECRET.to_vec())
            .await
            .unwrap_err();
        assert!(err.is_tenant_erased(), "{err}");
        assert!(store.data_key_records("uid-a").await.unwrap().is_empty());
        assert!(store.keys("uid-a").await.unwrap().is_empty());
        // Erasing again is harmless and keeps the evidence.
        assert_eq!(store.purge("uid-a").await.unwrap(), 0);
        let again = store.erasure_record("uid-a").await.unwrap().unwrap();
        assert_eq!(again.erased_at, record.erased_at);
        assert_eq!(again.data_keys_destroyed, record.data_keys_destroyed);
    }

    #[tokio::test]
    async fn rotation_keeps_old_objects_readable_and_the_kek_rotates_without_rewriting() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let rotate_each_write = KeyPolicy {
            rotate_after: Duration::ZERO,
            ..KeyPolicy::default()
        };
        let store = Store::open(&url, &S3Options::default())
            .unwrap()
            .with_encryption(local_kek("1", &[("1", 7)]), rotate_each_write);
        let at = t("2026-11-23T12:00:00Z");
        let first = store
            .put("uid-a", Kind::Report, "ns", "prod", at, b"one".to_vec())
            .await
            .unwrap();
        let second = store
            .put("uid-a", Kind::Report, "ns", "prod", at, b"two".to_vec())
            .await
            .unwrap();
        assert_eq!(store.data_key_records("uid-a").await.unwrap().len(), 2);
        let header_id = |k: &str| {
            let bytes = std::fs::read(dir.path().join(k)).unwrap();
            envelope::key_id(&bytes).unwrap().to_string()
        };
        assert_ne!(header_id(&first), header_id(&second));
        assert_eq!(store.get(&first).await.unwrap(), b"one");

        // KEK rotation: the new KEK joins the Secret as current, keys are re-wrapped, the
        // old KEK can go; no object is rewritten.
        let before = std::fs::read(dir.path().join(&first)).unwrap();
        let rotated = encrypted(&url, local_kek("2", &[("1", 7), ("2", 9)]));
        assert_eq!(rotated.tenants_with_keys().await.unwrap(), ["uid-a"]);
        assert_eq!(rotated.rewrap_data_keys("uid-a").await.unwrap(), 2);
        assert_eq!(rotated.rewrap_data_keys("uid-a").await.unwrap(), 0);
        let only_new = encrypted(&url, local_kek("2", &[("2", 9)]));
        assert_eq!(only_new.get(&first).await.unwrap(), b"one");
        assert_eq!(only_new.get(&second).await.unwrap(), b"two");
        assert_eq!(std::fs::read(dir.path().join(&first)).unwrap(), before);
    }

    #[tokio::test]
    async fn plaintext_objects_from_before_encryption_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let old = Store::open(&url, &S3Options::default()).unwrap();
        let at = t("2026-11-23T12:00:00Z");
        let key = old
            .put(
                "uid-a",
                Kind::Report,
                "ns",
                "prod",
                at,
                b"{\"old\":1}".to_vec(),
            )
            .await
            .unwrap();
        old.put_state("uid-a", "key-audit", b"{}".to_vec())
            .await
            .unwrap();
        let store = encrypted(&url, local_kek("1", &[("1", 7)]));
        assert_eq!(store.get(&key).await.unwrap(), b"{\"old\":1}");
        // State is re-written sealed at its next update.
        store
            .put_state("uid-a", "key-audit", b"{\"n\":2}".to_vec())
            .await
            .unwrap();
        let raw = std::fs::read(dir.path().join("tenants/uid-a/state/key-audit.json")).unwrap();
        assert!(envelope::is_sealed(&raw));
        // A kind that never existed in plaintext (history came with encryption) is refused
        // in plaintext: such an object was planted, not left by an older version.
        let planted = dir
            .path()
            .join("tenants/uid-a/history/ns/prod/20261201T000000Z.jsonl");
        std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
        std::fs::write(&planted, b"{\"monthlyCost\":99999}\n").unwrap();
        let err = store
            .get_named("uid-a", "history/ns/prod/20261201T000000Z.jsonl")
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Crypto(CryptoError::UnexpectedPlaintext(_))),
            "{err}"
        );
        assert_eq!(
            store
                .get_state("uid-a", "key-audit")
                .await
                .unwrap()
                .unwrap(),
            b"{\"n\":2}"
        );
    }

    #[tokio::test]
    async fn an_erased_tenant_is_never_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = Store::open(&url, &S3Options::default()).unwrap();
        let at = t("2026-11-23T12:00:00Z");
        // A multipart write begun before the erasure, finished after it.
        let mut in_flight = store
            .put_parts("uid-a", Kind::Snapshot, "ns", "prod", at)
            .await
            .unwrap();
        in_flight.write(b"{}");
        store
            .put("uid-a", Kind::Report, "ns", "prod", at, b"r".to_vec())
            .await
            .unwrap();
        assert!(!store.is_erased("uid-a").await.unwrap());

        store.begin_erasure("uid-a", at).await.unwrap();
        // The report and the in-flight write's staging file.
        assert_eq!(store.purge("uid-a").await.unwrap(), 2);
        let late = in_flight.finish().await.unwrap_err();
        assert!(late.is_tenant_erased(), "{late}");
        let put = store
            .put("uid-a", Kind::Audit, "ns", "prod", at, b"a".to_vec())
            .await
            .unwrap_err();
        assert!(put.is_tenant_erased());
        let state = store
            .put_state("uid-a", "key-audit", b"s".to_vec())
            .await
            .unwrap_err();
        assert!(state.is_tenant_erased());
        assert!(
            store
                .put_parts("uid-a", Kind::Snapshot, "ns", "prod", at)
                .await
                .unwrap_err()
                .is_tenant_erased()
        );
        assert!(store.keys("uid-a").await.unwrap().is_empty());

        // Another process sharing the store (a second replica) sees the deletion record too.
        let other = Store::open(&url, &S3Options::default()).unwrap();
        assert!(other.is_erased("uid-a").await.unwrap());
        assert!(!other.is_erased("uid-b").await.unwrap());
        other
            .put("uid-b", Kind::Report, "ns", "prod", at, b"r".to_vec())
            .await
            .unwrap();
        let mut files = Vec::new();
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path().display().to_string());
                }
            }
        }
        walk(&dir.path().join("tenants/uid-a"), &mut files);
        assert!(files.is_empty(), "{files:?}");
        // The deletion record stays, and names no customer data.
        let record = std::fs::read_to_string(dir.path().join("erasures/uid-a.json")).unwrap();
        let mut record: serde_json::Value = serde_json::from_str(&record).unwrap();
        assert!(record["completedAt"].is_string(), "{record}");
        record.as_object_mut().unwrap().remove("completedAt");
        assert_eq!(
            record,
            serde_json::json!({
                "tenant": "uid-a",
                "erasedAt": "2026-11-23T12:00:00Z",
                "dataKeysDestroyed": [],
                "objectsDeleted": 2
            })
        );
    }

    /// A write that lands after the erasure listed the prefix is deleted by the writer: the
    /// re-check after the write, not only the one before it.
    #[tokio::test]
    async fn a_write_that_passed_the_check_before_the_erasure_deletes_itself() {
        let store = Store::open("memory://", &S3Options::default()).unwrap();
        let at = t("2026-11-23T12:00:00Z");
        store.refuse_erased("uid-a").await.unwrap();
        // The erasure happens between the check and the write.
        store.begin_erasure("uid-a", at).await.unwrap();
        store.purge("uid-a").await.unwrap();
        let key = Path::from("tenants/uid-a/reports/ns/prod/20261123T120000Z.json");
        store
            .inner
            .put(&key, PutPayload::from(b"late".to_vec()))
            .await
            .unwrap();
        let e = store.undo_if_erased("uid-a", &key).await.unwrap_err();
        assert!(e.is_tenant_erased());
        assert!(store.keys("uid-a").await.unwrap().is_empty());
    }

    #[test]
    fn stamps_parse_from_keys() {
        assert_eq!(
            stamp_of("tenants/u/reports/n/c/20261123T120000Z-3.json"),
            Some(t("2026-11-23T12:00:00Z"))
        );
        assert_eq!(stamp_of("tenants/u/reports/n/c/garbage.json"), None);
    }
}
