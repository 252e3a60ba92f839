//! The credentials broker: one per process, shared by both controllers. It assumes each
//! customer's role with that account's ExternalId, proves the session lives in the right
//! account, caches it in memory only (keyed by the CustomerAccount's UID, so a re-created
//! account never reuses a session), refreshes it ahead of expiry and drops it on eviction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

use crate::audit::CallObserver;
use crate::aws::{
    AssumeRoleRequest, AwsError, AwsErrorKind, CallerIdentity, ClientFactory, CustomerClients,
    SessionCredentials, Sts,
};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// Refresh once this share of a session's lifetime has passed…
const REFRESH_FRACTION: f64 = 0.8;
/// …and never later than this before expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// What a caller must say to get a session for one CustomerAccount.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionParams {
    /// The CustomerAccount's metadata.uid: the cache key.
    pub uid: String,
    /// Namespace of the CustomerAccount (for the session name).
    pub namespace: String,
    /// Name of the CustomerAccount (for the session name).
    pub name: String,
    /// spec.accountId: the session must live in this account.
    pub account_id: String,
    /// spec.roleArn.
    pub role_arn: String,
    /// The account's ExternalId.
    pub external_id: String,
    /// Requested session length.
    pub duration: Duration,
    /// Region for the identity check.
    pub region: String,
}

/// A verified customer session. Dropping the last reference wipes its secrets.
pub struct AccountSession {
    /// The temporary credentials.
    pub credentials: SessionCredentials,
    /// Who STS says the session is; its account equals the requested account.
    pub identity: CallerIdentity,
    /// When the session was obtained and verified.
    pub verified_at: Timestamp,
    /// When it will be replaced (local clock).
    pub refresh_at: Timestamp,
    /// When it expires (local clock: receipt time plus the lifetime STS granted).
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for AccountSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSession")
            .field("identity", &self.identity)
            .field("expiration", &self.credentials.expiration)
            .finish_non_exhaustive()
    }
}

/// Why no session could be had. The message alone is what a customer reads in the
/// CustomerAccount's status, so it carries AWS's answer; that answer is therefore not also
/// the error's `source()` (the field is not called `source`), and a `{:#}` chain prints it
/// once.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// sts:AssumeRole failed.
    #[error("could not assume role {role_arn}: {aws}")]
    AssumeRole {
        /// The role.
        role_arn: String,
        /// What AWS said (part of the message, not the `source()`).
        aws: AwsError,
    },
    /// sts:GetCallerIdentity with the new session failed.
    #[error("could not verify the assumed session: {aws}")]
    VerifyIdentity {
        /// What AWS said (part of the message, not the `source()`).
        aws: AwsError,
    },
    /// The session lives in a different account than spec.accountId; it was discarded.
    #[error("the role's session is in account {actual}, not {expected}; the session was discarded")]
    AccountMismatch {
        /// spec.accountId.
        expected: String,
        /// What STS reported.
        actual: String,
    },
}

impl BrokerError {
    /// The CamelCase reason used for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BrokerError::AssumeRole { aws, .. } => match aws.kind {
                AwsErrorKind::AccessDenied => "AssumeRoleDenied",
                AwsErrorKind::NotFound => "RoleNotFound",
                AwsErrorKind::InvalidCredentials => "OperatorCredentialsInvalid",
                AwsErrorKind::Throttled | AwsErrorKind::Unavailable => "AwsUnavailable",
                AwsErrorKind::Other => "AssumeRoleFailed",
            },
            BrokerError::VerifyIdentity { aws } if aws.kind.is_transient() => "AwsUnavailable",
            BrokerError::VerifyIdentity { .. } => "IdentityCheckFailed",
            BrokerError::AccountMismatch { .. } => "AccountMismatch",
        }
    }

    /// Worth retrying soon without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            BrokerError::AssumeRole { aws, .. } | BrokerError::VerifyIdentity { aws } => {
                aws.kind.is_transient()
            }
            BrokerError::AccountMismatch { .. } => false,
        }
    }
}

/// What the cached session was made from; any change means a new AssumeRole.
#[derive(Clone, PartialEq)]
struct Fingerprint {
    account_id: String,
    role_arn: String,
    external_id: String,
    duration: Duration,
}

impl From<&SessionParams> for Fingerprint {
    fn from(p: &SessionParams) -> Self {
        Fingerprint {
            account_id: p.account_id.clone(),
            role_arn: p.role_arn.clone(),
            external_id: p.external_id.clone(),
            duration: p.duration,
        }
    }
}

struct Cached {
    fingerprint: Fingerprint,
    session: Arc<AccountSession>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// The per-process credentials broker.
pub struct Broker {
    factory: Arc<dyn ClientFactory>,
    sts: Arc<dyn Sts>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    source_identity: String,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Broker {
    /// A broker assuming roles as `source_identity` with the factory's operator identity.
    pub fn new(
        factory: Arc<dyn ClientFactory>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        source_identity: impl Into<String>,
    ) -> Self {
        Broker {
            sts: factory.operator_sts(),
            factory,
            clock,
            metrics,
            source_identity: source_identity.into(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, uid: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(uid.to_string()).or_default().clone()
    }

    /// A verified session for the account, from the cache when still fresh. Concurrent
    /// callers for the same account wait for one AssumeRole instead of each making one.
    pub async fn session(
        &self,
        params: &SessionParams,
        observer: &Arc<dyn CallObserver>,
    ) -> Result<Arc<AccountSession>, BrokerError> {
        let slot = self.slot(&params.uid);
        let mut guard = slot.lock().await;
        let fingerprint = Fingerprint::from(params);
        let now = self.clock.now();
        if let Some(cached) = guard.as_ref()
            && cached.fingerprint == fingerprint
            && now < cached.session.refresh_at
        {
            self.metrics.session_lookup(true);
            return Ok(cached.session.clone());
        }
        self.metrics.session_lookup(false);
        // Whatever was cached is stale or was made for other parameters: drop it first, so a
        // failure below never leaves an old session usable.
        *guard = None;
        let result = self.assume_and_verify(params, now, observer).await;
        match &result {
            Ok(session) => {
                self.metrics.assume_role("success");
                *guard = Some(Cached {
                    fingerprint,
                    session: session.clone(),
                });
            }
            Err(e) => self.metrics.assume_role(e.reason()),
        }
        drop(guard);
        self.publish_gauges();
        result
    }

    async fn assume_and_verify(
        &self,
        p: &SessionParams,
        now: Timestamp,
        observer: &Arc<dyn CallObserver>,
    ) -> Result<Arc<AccountSession>, BrokerError> {
        let request = AssumeRoleRequest {
            role_arn: p.role_arn.clone(),
            external_id: p.external_id.clone(),
            session_name: session_name(&p.namespace, &p.name),
            source_identity: self.source_identity.clone(),
            duration_seconds: p.duration.as_secs().clamp(900, 3600) as i32,
        };
        let assumed = self.sts.assume_role(&request).await;
        let (outcome, request_id) = match &assumed {
            Ok(_) => ("success", None),
            Err(e) => (e.kind.as_str(), e.request_id.as_deref()),
        };
        observer.call("sts", "AssumeRole", &p.role_arn, outcome, request_id, false);
        let credentials = assumed.map_err(|aws| BrokerError::AssumeRole {
            role_arn: p.role_arn.clone(),
            aws,
        })?;
        let clients =
            self.factory
                .customer(&p.account_id, &credentials, &p.region, observer.clone());
        let identity = clients
            .identity
            .caller_identity()
            .await
            .map_err(|aws| BrokerError::VerifyIdentity { aws })?;
        if identity.account != p.account_id {
            // `credentials` is dropped (and wiped) here, never cached or returned.
            return Err(BrokerError::AccountMismatch {
                expected: p.account_id.clone(),
                actual: identity.account,
            });
        }
        let expires_at =
            Timestamp::from_second(now.as_second() + credentials.lifetime.as_secs() as i64)
                .unwrap_or(now);
        let refresh_at = refresh_time(now, expires_at);
        Ok(Arc::new(AccountSession {
            credentials,
            identity,
            verified_at: now,
            refresh_at,
            expires_at,
        }))
    }

    /// Clients acting with `session` in `region`, reporting every call to `observer`.
    pub fn clients(
        &self,
        session: &AccountSession,
        region: &str,
        observer: Arc<dyn CallObserver>,
    ) -> CustomerClients {
        self.factory.customer(
            &session.identity.account,
            &session.credentials,
            region,
            observer,
        )
    }

    /// Forget the account's session (suspended, deleted, or changed); its secrets are wiped
    /// once the last in-flight user drops it.
    pub fn evict(&self, uid: &str) {
        let removed = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
        drop(removed);
        self.publish_gauges();
    }

    /// Number of accounts with a cached session.
    pub fn sessions_held(&self) -> usize {
        self.cached_expirations().len()
    }

    fn cached_expirations(&self) -> Vec<Timestamp> {
        let slots: Vec<Slot> = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        // A slot locked by an in-flight refresh is skipped; the gauge catches up after it.
        slots
            .iter()
            .filter_map(|s| {
                s.try_lock()
                    .ok()
                    .and_then(|g| g.as_ref().map(|c| c.session.expires_at))
            })
            .collect()
    }

    fn publish_gauges(&self) {
        let expirations = self.cached_expirations();
        let now = self.clock.now();
        let nearest = expirations
            .iter()
            .min()
            .map(|e| e.as_second() - now.as_second());
        self.metrics.sessions(expirations.len(), nearest);
    }
}

/// When to replace a session issued at `issued` that expires at `expires`: at 80% of its
/// lifetime, but at least five minutes before expiry (and never before it was issued).
pub fn refresh_time(issued: Timestamp, expires: Timestamp) -> Timestamp {
    let lifetime = (expires.as_second() - issued.as_second()).max(0);
    let by_fraction = issued.as_second() + (lifetime as f64 * REFRESH_FRACTION) as i64;
    let by_margin = expires.as_second() - REFRESH_MARGIN.as_secs() as i64;
    let at = by_fraction.min(by_margin).max(issued.as_second());
    Timestamp::from_second(at).unwrap_or(issued)
}

/// RoleSessionName naming the tenant: `crossguard@<namespace>.<name>`, trimmed to STS's
/// 64-character limit and character set.
pub fn session_name(namespace: &str, name: &str) -> String {
    let raw = format!("crossguard@{namespace}.{name}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ManualClock;
    use crate::testing::aws::FakeAws;

    fn no_audit() -> Arc<dyn CallObserver> {
        Arc::new(crate::audit::NoAudit)
    }

    /// The role of account 111122223333 trusts the operator with ExternalId "x" x 40.
    fn setup() -> (Arc<ManualClock>, Arc<FakeAws>, Broker) {
        let clock = ManualClock::at(1_800_000_000);
        let aws = FakeAws::new(clock.clone());
        aws.add_role(&params("", ACCOUNT).role_arn, &"x".repeat(40));
        let broker = Broker::new(
            aws.clone(),
            clock.clone(),
            Arc::new(Metrics::new()),
            "crossguard-operator",
        );
        (clock, aws, broker)
    }

    const ACCOUNT: &str = "111122223333";

    fn assume_calls(aws: &FakeAws) -> usize {
        aws.calls_of("AssumeRole").len()
    }

    fn params(uid: &str, account: &str) -> SessionParams {
        SessionParams {
            uid: uid.into(),
            namespace: "team-a".into(),
            name: "acme".into(),
            account_id: account.into(),
            role_arn: format!("arn:aws:iam::{account}:role/crossguard-access"),
            external_id: "x".repeat(40),
            duration: Duration::from_secs(3600),
            region: "us-east-1".into(),
        }
    }

    #[tokio::test]
    async fn cached_until_eighty_percent_then_refreshed() {
        let (clock, aws, broker) = setup();
        let p = params("uid-1", "111122223333");
        let first = broker.session(&p, &no_audit()).await.unwrap();
        clock.advance(Duration::from_secs(2879)); // just before 80% of one hour
        let second = broker.session(&p, &no_audit()).await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(assume_calls(&aws), 1);
        clock.advance(Duration::from_secs(1)); // 80% reached
        let third = broker.session(&p, &no_audit()).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &third));
        assert_eq!(assume_calls(&aws), 2);
    }

    #[tokio::test]
    async fn request_carries_external_id_duration_session_name_and_source_identity() {
        let (_, aws, broker) = setup();
        let mut p = params("uid-1", "111122223333");
        p.duration = Duration::from_secs(900);
        broker.session(&p, &no_audit()).await.unwrap();
        let req = aws.assume_role_requests()[0].clone();
        assert_eq!(req.external_id, "x".repeat(40));
        assert_eq!(req.duration_seconds, 900);
        assert_eq!(req.session_name, "crossguard@team-a.acme");
        assert_eq!(req.source_identity, "crossguard-operator");
    }

    #[tokio::test]
    async fn keyed_by_uid_and_parameters() {
        let (_, aws, broker) = setup();
        broker
            .session(&params("uid-1", "111122223333"), &no_audit())
            .await
            .unwrap();
        // Same name, new UID (deleted and re-created): never reuse.
        broker
            .session(&params("uid-2", "111122223333"), &no_audit())
            .await
            .unwrap();
        assert_eq!(assume_calls(&aws), 2);
        // Same UID, rotated ExternalId (the customer's trust policy follows): re-assume.
        let mut rotated = params("uid-1", "111122223333");
        rotated.external_id = "y".repeat(40);
        aws.add_role(&rotated.role_arn, &rotated.external_id);
        broker.session(&rotated, &no_audit()).await.unwrap();
        assert_eq!(assume_calls(&aws), 3);
        broker.evict("uid-1");
        assert_eq!(broker.sessions_held(), 1);
        broker.session(&rotated, &no_audit()).await.unwrap();
        assert_eq!(assume_calls(&aws), 4);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_assume_role() {
        let (_, aws, broker) = setup();
        // AssumeRole takes a while, so the other callers arrive while it is in flight.
        aws.delay("AssumeRole", Duration::from_millis(20));
        let broker = Arc::new(broker);
        let p = params("uid-1", "111122223333");
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (b, p) = (broker.clone(), p.clone());
                tokio::spawn(async move { b.session(&p, &no_audit()).await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(assume_calls(&aws), 1);
    }

    #[tokio::test]
    async fn account_mismatch_is_refused_and_not_cached() {
        let (_, aws, broker) = setup();
        aws.override_caller_account(Some("999988887777"));
        let err = broker
            .session(&params("uid-1", "111122223333"), &no_audit())
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "AccountMismatch");
        assert!(err.to_string().contains("999988887777"));
        assert_eq!(broker.sessions_held(), 0);
    }

    #[tokio::test]
    async fn failed_refresh_leaves_no_stale_session() {
        let (clock, aws, broker) = setup();
        let p = params("uid-1", "111122223333");
        broker.session(&p, &no_audit()).await.unwrap();
        clock.advance(Duration::from_secs(3000));
        aws.fail("AssumeRole", AwsErrorKind::AccessDenied, usize::MAX);
        let err = broker.session(&p, &no_audit()).await.unwrap_err();
        assert_eq!(err.reason(), "AssumeRoleDenied");
        assert!(!err.is_transient());
        assert_eq!(broker.sessions_held(), 0);
    }

    #[test]
    fn refresh_time_rules() {
        let t = |s| Timestamp::from_second(s).unwrap();
        // 1h session: 80% = 48 min, which is earlier than 5 min before expiry.
        assert_eq!(refresh_time(t(0), t(3600)), t(2880));
        // 15 min session: 80% = 12 min, but 5 min before expiry = 10 min wins.
        assert_eq!(refresh_time(t(0), t(900)), t(600));
        // Already nearly expired: refresh immediately.
        assert_eq!(refresh_time(t(100), t(200)), t(100));
    }

    #[test]
    fn session_names_fit_sts_rules() {
        assert_eq!(session_name("ns", "acme"), "crossguard@ns.acme");
        let long = session_name(&"n".repeat(63), &"a".repeat(253));
        assert_eq!(long.len(), 64);
        assert!(
            session_name("ns", "a/b c")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        );
    }
}
