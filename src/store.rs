//! Where reports, sanitized snapshots and the audit log are kept: an object store (a local
//! directory by default, S3 with SSE-KMS in production) with every key under the tenant's
//! prefix, so retention and erasure are prefix operations.
//!
//! Layout: `tenants/<account-uid>/<kind>/<namespace>/<cluster>/<YYYYMMDDTHHMMSSZ>[-<n>].<ext>`,
//! and, outside every tenant, `prices/<region>.json` (public list prices fetched from the
//! AWS Price List API, shared by all tenants).
//! The time in the key (not the store's modification time) drives retention, so the rule is
//! the same on every backend and testable with a fake clock.
//!
//! Erasure first writes a tombstone, `erased/<account-uid>.json` (outside every tenant's
//! prefix, holding only the UID and the time), and every tenant write checks it before and
//! after it lands: a write still in flight when the tenant is erased either lands before
//! the erasure lists the prefix (and is deleted with the rest) or sees the tombstone and
//! deletes what it wrote. Either way nothing stays under an erased prefix.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// Tenants this process has seen erased (a tombstone never goes away, so a hit here
    /// spares the store a read on every later write).
    erased: Arc<Mutex<HashSet<String>>>,
}

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
                erased: Arc::default(),
            });
        }
        if url == "memory://" {
            return Ok(Store {
                inner: Arc::new(InMemory::new()),
                location: url.to_string(),
                local_root: None,
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
                erased: Arc::default(),
            });
        }
        Err(bad("use file:///path, s3://bucket[/prefix] or memory://"))
    }

    fn tenant_prefix(tenant: &str) -> Path {
        Path::from(format!("tenants/{tenant}"))
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
        let upload = self
            .inner
            .put_multipart(&key)
            .await
            .map_err(backend("put"))?;
        Ok(ObjectWriter {
            upload: object_store::WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
            key,
            written: 0,
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

    /// Read an object back.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let got = self
            .inner
            .get(&Path::from(key))
            .await
            .map_err(backend("get"))?;
        Ok(got.bytes().await.map_err(backend("get"))?.to_vec())
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
        self.refuse_erased(tenant).await?;
        let key = Path::from(format!("tenants/{tenant}/state/{name}.json"));
        self.inner
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(backend("put"))?;
        self.undo_if_erased(tenant, &key).await?;
        Ok(key.to_string())
    }

    /// Read the tenant's state object `name`; None when it was never written.
    pub async fn get_state(&self, tenant: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = Path::from(format!("tenants/{tenant}/state/{name}.json"));
        match self.inner.get(&key).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(backend("get"))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend("get")(e)),
        }
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
        let key = Path::from(format!("tenants/{tenant}/state/{name}.json"));
        match self.inner.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend("delete")(e)),
        }
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
        let prefix = Self::tenant_prefix(tenant);
        let metas: Vec<_> = self
            .inner
            .list(Some(&prefix))
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

    /// Delete everything under the tenant's prefix, on a `file://` store with the staging
    /// files of uploads an operator killed mid-write left there (the listing does not show
    /// those); returns how many objects and staging files were deleted. Safe to repeat: an
    /// already empty prefix deletes nothing.
    pub async fn purge(&self, tenant: &str) -> Result<usize, StoreError> {
        let mut deleted = self
            .remove_interrupted_writes(tenant, Duration::ZERO)
            .await?;
        for key in self.keys(tenant).await? {
            match self.inner.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(backend("delete")(e)),
            }
        }
        Ok(deleted)
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
    /// Whose object this is, checked against the tombstones when it completes.
    tenant: String,
    store: Store,
}

impl ObjectWriter {
    /// Append `bytes`; a part is handed to the backend each time [`PART_SIZE`] bytes are
    /// buffered.
    pub fn write(&mut self, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        self.upload.write(bytes);
    }

    /// Wait until fewer than [`PARTS_IN_FLIGHT`] parts are being uploaded. An error is a
    /// failed part: the object cannot be completed, so [`abort`](Self::abort) it.
    pub async fn ready(&mut self) -> Result<(), StoreError> {
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
    pub async fn finish(self) -> Result<String, StoreError> {
        if let Err(e) = self.store.refuse_erased(&self.tenant).await {
            self.upload.abort().await.ok();
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
    fn tombstone_key(tenant: &str) -> Path {
        Path::from(format!("erased/{tenant}.json"))
    }

    /// Record that `tenant` is erased, before its objects are deleted: from then on every
    /// write for it fails with [`StoreError::TenantErased`] (in this process and in any
    /// other replica sharing the store). The tombstone holds the UID and `at`, no customer
    /// data, and stays after the erasure as its evidence. Writing it again is fine.
    pub async fn write_tombstone(
        &self,
        tenant: &str,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let body = serde_json::json!({ "tenant": tenant, "erasedAt": at.to_string() });
        self.inner
            .put(
                &Self::tombstone_key(tenant),
                PutPayload::from(body.to_string().into_bytes()),
            )
            .await
            .map_err(backend("write tombstone"))?;
        self.remember_erased(tenant);
        Ok(())
    }

    /// Whether `tenant` was erased (its tombstone exists).
    pub async fn is_erased(&self, tenant: &str) -> Result<bool, StoreError> {
        if self
            .erased
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(tenant)
        {
            return Ok(true);
        }
        match self.inner.head(&Self::tombstone_key(tenant)).await {
            Ok(_) => {
                self.remember_erased(tenant);
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend("read tombstone")(e)),
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
        assert!(left.is_empty(), "{left:?}");
        assert!(is_staging_name("a.json#12") && !is_staging_name("a.json#x1"));
        assert!(!is_staging_name("a.json") && !is_staging_name("a.json#"));
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

        store.write_tombstone("uid-a", at).await.unwrap();
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

        // Another process sharing the store (a second replica) sees the tombstone too.
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
        // The tombstone stays, and names no customer data.
        let tomb = std::fs::read_to_string(dir.path().join("erased/uid-a.json")).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&tomb).unwrap(),
            serde_json::json!({"tenant": "uid-a", "erasedAt": "2026-11-23T12:00:00Z"})
        );
    }

    /// A write that lands after the erasure listed the prefix is deleted by the writer: the
    /// re-check after the write, not only the one before it.
    #[tokio::test]
    async fn a_write_that_passed_the_check_before_the_tombstone_deletes_itself() {
        let store = Store::open("memory://", &S3Options::default()).unwrap();
        let at = t("2026-11-23T12:00:00Z");
        store.refuse_erased("uid-a").await.unwrap();
        // The erasure happens between the check and the write.
        store.write_tombstone("uid-a", at).await.unwrap();
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
