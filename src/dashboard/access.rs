//! Who is looking, and what they may see: the viewer's bearer token checked with a
//! TokenReview (authentication.k8s.io/v1), each namespace authorised with a
//! SubjectAccessReview (authorization.k8s.io/v1), as `kubectl` would be. No user database
//! of our own; answers are cached for a short time so that a page view does not cost the
//! API server a review per namespace.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

/// The API group of the resources the dashboard shows.
pub const GROUP: &str = "crossguard.dev";
/// The resource whose `get` in a namespace lets a viewer see its clusters (and history).
pub const MANAGED_CLUSTERS: &str = "managedclusters";
/// The resource whose `get` in a namespace lets a viewer see its accounts (and key audit).
pub const CUSTOMER_ACCOUNTS: &str = "customeraccounts";

/// How long a review's answer is reused (a revoked token or binding takes effect within it).
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// At most this many answers are cached (tokens × namespaces × resources); beyond, expired
/// ones go first, then the whole cache.
pub const CACHE_CAPACITY: usize = 4096;

/// An authenticated viewer, as the TokenReview named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// `status.user.username`.
    pub username: String,
    /// `status.user.uid`.
    pub uid: Option<String>,
    /// `status.user.groups`.
    pub groups: Vec<String>,
    /// A digest of the token (never the token itself) keying the cached decisions.
    token_digest: [u8; 32],
}

/// A review could not be made (the API server failed or refused the operator).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Creating the TokenReview failed.
    #[error("creating a TokenReview failed: {0}")]
    TokenReview(#[source] kube::Error),
    /// Creating the SubjectAccessReview failed.
    #[error(
        "creating a SubjectAccessReview for {verb} {resource} in namespace {namespace} failed: {source}"
    )]
    SubjectAccessReview {
        /// The verb asked about.
        verb: String,
        /// The resource asked about.
        resource: String,
        /// The namespace asked about.
        namespace: String,
        /// The API server's error.
        source: kube::Error,
    },
}

/// The two questions the dashboard asks the API server (a trait so that the cache can be
/// tested without one).
#[async_trait]
pub trait Reviewer: Send + Sync {
    /// Who `token` authenticates; None when it is not valid.
    async fn authenticate(&self, token: &str) -> Result<Option<Viewer>, AccessError>;
    /// Whether `viewer` may `verb` `resource` (of [`GROUP`]) in `namespace`.
    async fn allowed(
        &self,
        viewer: &Viewer,
        verb: &str,
        resource: &str,
        namespace: &str,
    ) -> Result<bool, AccessError>;
}

/// [`Reviewer`] through the operator's Kubernetes client (needs `create` on tokenreviews
/// and subjectaccessreviews, which the chart's ClusterRole grants).
pub struct KubeReviewer {
    client: kube::Client,
}

impl KubeReviewer {
    /// Reviews through `client`.
    pub fn new(client: kube::Client) -> KubeReviewer {
        KubeReviewer { client }
    }
}

/// SHA-256 of a token: what the cache keys on, so that no token is kept in memory longer
/// than its request.
fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[async_trait]
impl Reviewer for KubeReviewer {
    async fn authenticate(&self, token: &str) -> Result<Option<Viewer>, AccessError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let answered = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(AccessError::TokenReview)?;
        let Some(status) = answered.status else {
            return Ok(None);
        };
        if status.authenticated != Some(true) {
            return Ok(None);
        }
        let user = status.user.unwrap_or_default();
        Ok(user
            .username
            .filter(|u| !u.is_empty())
            .map(|username| Viewer {
                username,
                uid: user.uid,
                groups: user.groups.unwrap_or_default(),
                token_digest: digest(token),
            }))
    }

    async fn allowed(
        &self,
        viewer: &Viewer,
        verb: &str,
        resource: &str,
        namespace: &str,
    ) -> Result<bool, AccessError> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(viewer.username.clone()),
                uid: viewer.uid.clone(),
                groups: Some(viewer.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()),
                    verb: Some(verb.to_string()),
                    group: Some(GROUP.to_string()),
                    resource: Some(resource.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answered = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|source| AccessError::SubjectAccessReview {
                verb: verb.to_string(),
                resource: resource.to_string(),
                namespace: namespace.to_string(),
                source,
            })?;
        Ok(answered
            .status
            .is_some_and(|s| s.allowed && s.denied != Some(true)))
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Token([u8; 32]),
    Access([u8; 32], String, String, String),
}

#[derive(Clone)]
enum Answer {
    Viewer(Option<Viewer>),
    Allowed(bool),
}

/// A [`Reviewer`] whose answers are reused for [`CACHE_TTL`], at most [`CACHE_CAPACITY`]
/// of them. Errors are not cached.
pub struct CachedReviewer<R> {
    inner: R,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<Key, (Instant, Answer)>>,
}

impl<R: Reviewer> CachedReviewer<R> {
    /// Cache `inner`'s answers with the default TTL and capacity.
    pub fn new(inner: R) -> Self {
        Self::with_limits(inner, CACHE_TTL, CACHE_CAPACITY)
    }

    /// Cache `inner`'s answers for `ttl`, at most `capacity` of them.
    pub fn with_limits(inner: R, ttl: Duration, capacity: usize) -> Self {
        CachedReviewer {
            inner,
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Answers cached now (for tests and debugging).
    pub fn cached(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, Answer)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &Key) -> Option<Answer> {
        let entries = self.lock();
        let (at, answer) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| answer.clone())
    }

    fn put(&self, key: Key, answer: Answer) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), answer));
    }
}

#[async_trait]
impl<R: Reviewer> Reviewer for CachedReviewer<R> {
    async fn authenticate(&self, token: &str) -> Result<Option<Viewer>, AccessError> {
        let key = Key::Token(digest(token));
        if let Some(Answer::Viewer(v)) = self.get(&key) {
            return Ok(v);
        }
        let viewer = self.inner.authenticate(token).await?;
        self.put(key, Answer::Viewer(viewer.clone()));
        Ok(viewer)
    }

    async fn allowed(
        &self,
        viewer: &Viewer,
        verb: &str,
        resource: &str,
        namespace: &str,
    ) -> Result<bool, AccessError> {
        let key = Key::Access(
            viewer.token_digest,
            verb.to_string(),
            resource.to_string(),
            namespace.to_string(),
        );
        if let Some(Answer::Allowed(a)) = self.get(&key) {
            return Ok(a);
        }
        let allowed = self
            .inner
            .allowed(viewer, verb, resource, namespace)
            .await?;
        self.put(key, Answer::Allowed(allowed));
        Ok(allowed)
    }
}

#[cfg(test)]
impl Viewer {
    /// A viewer for tests, as if authenticated by `token`.
    pub fn for_tests(username: &str, token: &str) -> Viewer {
        Viewer {
            username: username.to_string(),
            uid: None,
            groups: Vec::new(),
            token_digest: digest(token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Knows token "good" (user alice, allowed in namespace "a" only) and counts calls.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Reviewer for Counting {
        async fn authenticate(&self, token: &str) -> Result<Option<Viewer>, AccessError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok((token == "good").then(|| Viewer::for_tests("alice", token)))
        }
        async fn allowed(
            &self,
            _: &Viewer,
            verb: &str,
            _: &str,
            namespace: &str,
        ) -> Result<bool, AccessError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(verb == "get" && namespace == "a")
        }
    }

    #[tokio::test]
    async fn answers_are_reused_within_the_ttl_and_asked_again_after() {
        let cache =
            CachedReviewer::with_limits(Counting::default(), Duration::from_millis(200), 16);
        let viewer = cache.authenticate("good").await.unwrap().expect("valid");
        assert_eq!(viewer.username, "alice");
        assert!(cache.authenticate("bad").await.unwrap().is_none());
        assert!(
            cache
                .allowed(&viewer, "get", MANAGED_CLUSTERS, "a")
                .await
                .unwrap()
        );
        assert!(
            !cache
                .allowed(&viewer, "get", MANAGED_CLUSTERS, "b")
                .await
                .unwrap()
        );
        assert_eq!(cache.inner.calls.load(Ordering::SeqCst), 4);
        // The same four questions again: all from the cache, same answers.
        assert!(cache.authenticate("good").await.unwrap().is_some());
        assert!(cache.authenticate("bad").await.unwrap().is_none());
        assert!(
            cache
                .allowed(&viewer, "get", MANAGED_CLUSTERS, "a")
                .await
                .unwrap()
        );
        assert!(
            !cache
                .allowed(&viewer, "get", MANAGED_CLUSTERS, "b")
                .await
                .unwrap()
        );
        assert_eq!(cache.inner.calls.load(Ordering::SeqCst), 4);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            cache
                .allowed(&viewer, "get", MANAGED_CLUSTERS, "a")
                .await
                .unwrap()
        );
        assert_eq!(cache.inner.calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let cache = CachedReviewer::with_limits(Counting::default(), CACHE_TTL, 8);
        let viewer = cache.authenticate("good").await.unwrap().expect("valid");
        for i in 0..100 {
            cache
                .allowed(&viewer, "get", MANAGED_CLUSTERS, &format!("ns-{i}"))
                .await
                .unwrap();
            assert!(cache.cached() <= 8, "{} cached", cache.cached());
        }
    }

    #[tokio::test]
    async fn decisions_are_per_token_not_per_username() {
        // Two tokens of the same user (one since narrowed) must not share answers.
        let cache = CachedReviewer::new(Counting::default());
        let one = Viewer::for_tests("alice", "one");
        let two = Viewer::for_tests("alice", "two");
        cache
            .allowed(&one, "get", MANAGED_CLUSTERS, "a")
            .await
            .unwrap();
        cache
            .allowed(&two, "get", MANAGED_CLUSTERS, "a")
            .await
            .unwrap();
        assert_eq!(cache.inner.calls.load(Ordering::SeqCst), 2);
    }
}
