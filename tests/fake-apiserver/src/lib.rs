//! A dev-only, in-memory Kubernetes API server that speaks the real HTTP
//! API closely enough for kube-rs, kube-runtime and kubectl: resourceVersion
//! and generation semantics, list/watch with bookmarks and 410 Gone,
//! merge/JSON/strategic/apply patches, the status subresource, finalizers,
//! garbage collection, CRD registration with schema validation, Tables and
//! discovery. See README.md for what it does not emulate.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = fake_apiserver::FakeApiServer::start().await?;
//! let kubeconfig = server.kubeconfig_yaml("default");
//! // ... point a client at server.url() or the kubeconfig ...
//! assert!(server.requests().iter().all(|r| !r.targets("secrets")));
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod discovery;
mod error;
mod events;
mod http;
mod meta;
mod ops;
mod patch;
mod proto;
mod record;
mod registry;
mod reviews;
mod schema;
mod selector;
mod store;
mod table;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use record::RecordedRequest;
pub use reviews::{Grant, Reviews, TokenEntry};

/// State shared by the HTTP handlers and watch tasks.
pub(crate) struct Shared {
    pub(crate) state: Mutex<store::State>,
    pub(crate) recorder: record::Recorder,
    pub(crate) bookmark_interval: Duration,
    /// How long every request waits before it is handled ([`FakeApiServer::set_latency`]).
    pub(crate) latency: Mutex<Duration>,
    /// The answers to TokenReviews and SubjectAccessReviews ([`FakeApiServer::set_reviews`]).
    pub(crate) reviews: Mutex<reviews::Reviews>,
}

/// Start-up options beyond the listen address.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK
    /// (kube-apiserver: about a minute; short here so tests see them).
    pub bookmark_interval: Duration,
    /// Append every recorded request as a JSON line to this file.
    pub request_log: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bookmark_interval: Duration::from_secs(2),
            request_log: None,
        }
    }
}

/// A running fake API server. Dropping it stops the server too.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> std::io::Result<FakeApiServer> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on the given address (port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<FakeApiServer> {
        Self::start_with(addr, Options::default()).await
    }

    /// Starts with explicit options.
    pub async fn start_with(addr: SocketAddr, options: Options) -> std::io::Result<FakeApiServer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(store::State::new()),
            recorder: record::Recorder::new(options.request_log.as_deref())?,
            bookmark_interval: options.bookmark_interval,
            latency: Mutex::new(Duration::ZERO),
            reviews: Mutex::new(reviews::Reviews::default()),
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "fake apiserver stopped with an error");
            }
        });
        Ok(FakeApiServer {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig (cluster, user with a dummy token, context,
    /// current-context) pointing at this server.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: fake\n  user:\n    token: fake-token\n\
             contexts:\n\
             - name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\n\
             current-context: fake\n\
             preferences: {{}}\n",
            url = self.url()
        )
    }

    /// Writes `kubeconfig_yaml("default")` to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml("default"))
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.all()
    }

    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Invalidates every resourceVersion handed out so far and closes open
    /// watches: clients re-watching from an old resourceVersion get a
    /// 410 Gone ERROR event (and must re-list); old `continue` tokens 410 too.
    pub fn compact(&self) {
        self.lock().compact();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Reads an object as a client of `api_version`/`kind_plural` would see
    /// it (`"v1"`, `"pods"`; `"crossguard.dev/v1alpha1"`, `"customeraccounts"`).
    pub fn get_object(
        &self,
        api_version: &str,
        kind_plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = self.lock();
        let info = st.find_resource(api_version, kind_plural)?;
        st.get_served(&info, namespace, name).ok()
    }

    /// Lists objects (all namespaces when `namespace` is None).
    pub fn list_objects(
        &self,
        api_version: &str,
        kind_plural: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        let mut st = self.lock();
        let Some(info) = st.find_resource(api_version, kind_plural) else {
            return Vec::new();
        };
        st.list_served(&info, namespace, &ops::ListParams::default())
            .map(|r| r.items)
            .unwrap_or_default()
    }

    /// Test setup backdoor: stores `obj` as given, status included and
    /// without validation (like writing to etcd), creating or replacing it.
    /// Watchers see the change. Returns the stored object.
    pub fn seed(&self, obj: Value) -> Result<Value, String> {
        self.lock().seed(obj)
    }

    /// Makes the next `times` requests whose method matches (None = any)
    /// and whose path contains `path_contains` fail with `status` (a
    /// Status body) without being handled.
    pub fn inject_failure(
        &self,
        method: Option<&str>,
        path_contains: &str,
        status: u16,
        times: usize,
    ) {
        self.shared
            .recorder
            .add_fault(method, path_contains, status, times);
    }

    /// Makes every request from now on wait `latency` before it is handled (a slow or
    /// distant API server); `Duration::ZERO` turns it off.
    pub fn set_latency(&self, latency: Duration) {
        *self
            .shared
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = latency;
    }

    /// Sets what TokenReviews and SubjectAccessReviews answer (replacing the table): the
    /// valid tokens and whom they authenticate, and each user's or group's grants.
    pub fn set_reviews(&self, table: Reviews) {
        *self
            .shared
            .reviews
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = table;
    }

    /// Disarms every fault [`inject_failure`](Self::inject_failure) armed.
    pub fn clear_failures(&self) {
        self.shared.recorder.clear_faults();
    }

    /// Stops accepting requests, ends watch streams, and waits for the
    /// server task.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn stop_now(&mut self) {
        self.lock().close_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, store::State> {
        self.shared.state.lock().expect("state lock")
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop_now();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
