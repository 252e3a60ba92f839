//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas can run
//! and only one reconciles and acts.
//!
//! The lease itself is kept by `kube-lease-manager` (acquire, renew before expiry, take
//! over an expired lease; conflicts resolved by server-side apply field ownership). On top
//! of it this module keeps crossguard's own rule for acting: a replica may make a mutating
//! AWS call only while [`Leadership::is_leading`] holds, which needs both
//! - the lease manager's last word to be "leader", and
//! - a *deadline* not yet passed: the Lease's `renewTime + leaseDurationSeconds` as last
//!   read back from the API server, minus [`SAFETY_MARGIN`]. A watchdog re-reads the Lease
//!   every [`ElectionConfig::check_every`]; when the API server cannot be reached the
//!   deadline is not extended, so a partitioned leader stops acting before a standby can
//!   take the expired lease over (client-go's leader election has the same rule: stop
//!   before `leaseDuration` runs out). Passing the deadline, or reading another holder,
//!   ends leadership at once.
//!
//! Losing the lease (another holder, a renewal error, the deadline passing) is final for
//! the process: [`Leadership::lost`] resolves, `crossguard run` shuts down and exits with
//! an error, and Kubernetes restarts the pod as a standby (controller-runtime's
//! `leaderelection` ends its manager the same way).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::sync::Notify;

/// Time kept between the deadline this replica acts by and the Lease's real expiry, for
/// a mutating call already started and for clock drift between replicas.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(2);

/// The shortest renewal lead time that works: the renewal must be read back (every second,
/// plus a round trip) before the acting deadline, [`SAFETY_MARGIN`] before expiry.
pub const MIN_RENEW_BEFORE: Duration = Duration::from_secs(4);

/// How a replica takes part in the election.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Namespace of the Lease (the operator's own namespace).
    pub namespace: String,
    /// Lease name, e.g. `crossguard-leader`.
    pub lease_name: String,
    /// This replica's identity (the pod name), written as `holderIdentity`.
    pub identity: String,
    /// `leaseDurationSeconds`: how long a standby waits after the last renewal before it
    /// takes over (client-go's default is 15 s).
    pub lease_duration: Duration,
    /// How long before expiry the leader renews (must exceed a renewal's round trip).
    pub renew_before: Duration,
    /// How often the watchdog re-reads the Lease to move the acting deadline, and how long
    /// to wait before trying again when the Lease cannot be reached at start.
    pub check_every: Duration,
    /// The API server's URL, named when it cannot be reached.
    pub api_server: String,
}

/// Whether this replica may act now; shared by the controllers and the AWS adapters.
#[derive(Debug, Default)]
pub struct Leadership {
    leading: AtomicBool,
    /// Unix milliseconds until which acting is allowed (0: never).
    deadline_ms: AtomicI64,
    lost: AtomicBool,
    lost_notify: Notify,
    /// Asks the keeper task to release the Lease (graceful shutdown).
    step_down: Notify,
    /// The keeper task released the Lease (or there was none to release).
    released: Notify,
}

impl Leadership {
    /// Leadership of a replica that runs alone (election off): always leading.
    pub fn sole() -> Arc<Leadership> {
        let l = Leadership::default();
        l.leading.store(true, Ordering::Release);
        l.deadline_ms.store(i64::MAX, Ordering::Release);
        Arc::new(l)
    }

    /// True while this replica holds the Lease and its deadline has not passed.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
            && !self.lost.load(Ordering::Acquire)
            && now_ms() < self.deadline_ms.load(Ordering::Acquire)
    }

    /// True once leadership was held and lost.
    pub fn has_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Resolves once leadership was held and is lost (never, for [`Leadership::sole`]).
    pub async fn lost(&self) {
        loop {
            let notified = self.lost_notify.notified();
            if self.lost.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Stop acting and hand the Lease back, so a standby takes over at once instead of
    /// after `leaseDurationSeconds` (graceful shutdown). Waits at most `within`.
    pub async fn step_down(&self, within: Duration) {
        self.leading.store(false, Ordering::Release);
        if self.deadline_ms.load(Ordering::Acquire) == i64::MAX {
            return; // a sole replica has no Lease
        }
        let released = self.released.notified();
        self.step_down.notify_one();
        if tokio::time::timeout(within, released).await.is_err() {
            tracing::warn!(
                "the leader Lease was not released in time; a standby takes over when it expires"
            );
        }
    }

    fn lose(&self, why: &str) {
        if !self.lost.swap(true, Ordering::AcqRel) {
            self.leading.store(false, Ordering::Release);
            tracing::error!(
                reason = why,
                "leadership lost: this replica stops acting and exits"
            );
            self.lost_notify.notify_waiters();
        }
    }

    fn extend_to(&self, deadline_ms: i64) {
        self.deadline_ms.fetch_max(deadline_ms, Ordering::AcqRel);
    }
}

/// Why the election could not run.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The durations cannot work: the renewal must start at least [`SAFETY_MARGIN`] before
    /// the lease expires.
    #[error(
        "the leader lease ({lease:?}) must be longer than its renewal lead time ({renew_before:?}) plus {SAFETY_MARGIN:?}"
    )]
    Durations {
        /// `leaseDurationSeconds`.
        lease: Duration,
        /// How long before expiry the leader renews.
        renew_before: Duration,
    },
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Wait until this replica leads, then keep the lease in the background. `on_standby` runs
/// once the Lease could be reached (the replica then stands by, ready). Returns the
/// [`Leadership`] the controllers and AWS adapters consult; its [`Leadership::lost`]
/// resolves when the lease is lost.
///
/// # Errors
/// [`ElectionError::Durations`] for durations that cannot work. A Lease that cannot be
/// created or read (API server unreachable, RBAC) is retried, with the reason logged.
pub async fn lead(
    client: kube::Client,
    config: ElectionConfig,
    on_standby: impl FnOnce(),
) -> Result<Arc<Leadership>, ElectionError> {
    if config.renew_before < MIN_RENEW_BEFORE
        || config.renew_before + SAFETY_MARGIN >= config.lease_duration
    {
        return Err(ElectionError::Durations {
            lease: config.lease_duration,
            renew_before: config.renew_before,
        });
    }
    // Until the first `true`, errors (API server not there yet, RBAC on its way) are
    // retried here. The lease manager's standby sleeps until the holder's lease would
    // expire, on the state it last read; a holder that stepped down (released the Lease on
    // shutdown) is noticed by polling, and a fresh manager then reads the free Lease and
    // takes it at once.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut manager = build_manager(&client, &config).await;
    // The Lease is reachable: a standby from now on (ready: a rollout may go on).
    on_standby();
    tracing::info!(
        lease = %format!("{}/{}", config.namespace, config.lease_name),
        identity = %config.identity,
        "waiting to lead"
    );
    loop {
        let changed = tokio::select! {
            changed = manager.changed() => changed,
            () = released_by_holder(&leases, &config) => {
                manager = build_manager(&client, &config).await;
                continue;
            }
        };
        match changed {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                warn_retrying(&config, &e);
                tokio::time::sleep(config.check_every.max(Duration::from_secs(1))).await;
                // A fresh manager re-reads (and re-creates a deleted) Lease.
                manager = build_manager(&client, &config).await;
            }
        }
    }
    let leadership = Arc::new(Leadership::default());
    if let LeaseRead::Ours(deadline) = own_deadline(&leases, &config).await {
        leadership.extend_to(deadline);
    }
    leadership.leading.store(true, Ordering::Release);
    tracing::info!(identity = %config.identity, "leading: controllers start");

    // The lease manager renews inside `changed()`; it returns only on a change or error.
    let keeper = leadership.clone();
    tokio::spawn(async move {
        let why = tokio::select! {
            changed = manager.changed() => match changed {
                Ok(_) => "another replica holds the lease".to_string(),
                Err(e) => format!("renewing the lease failed: {e}"),
            },
            () = keeper.step_down.notified() => {
                match manager.release().await {
                    Ok(()) => tracing::info!("leader Lease released"),
                    Err(e) => tracing::warn!(error = %e, "releasing the leader Lease failed"),
                }
                keeper.released.notify_one();
                return;
            }
        };
        keeper.lose(&why);
    });
    // The watchdog moves the acting deadline from what the API server says.
    let watched = leadership.clone();
    let elected_at = now_ms();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(config.check_every).await;
            // Lost, or stepping down (shutdown): nothing left to watch.
            if watched.lost.load(Ordering::Acquire) || !watched.leading.load(Ordering::Acquire) {
                return;
            }
            match own_deadline(&leases, &config).await {
                LeaseRead::Ours(deadline) => {
                    watched.extend_to(deadline);
                    if !watched.is_leading() {
                        watched.lose("the renewal read back came after the acting deadline");
                        return;
                    }
                }
                LeaseRead::Theirs(holder) => {
                    watched.lose(&format!("the lease is held by {holder}"));
                    return;
                }
                // Nothing read: acting stops at the deadline, and so does the process (as
                // client-go's and controller-runtime's leader election do).
                // (A deadline never read yet gets one lease duration from election.)
                LeaseRead::Unknown
                    if !watched.is_leading()
                        && (watched.deadline_ms.load(Ordering::Acquire) != 0
                            || now_ms()
                                > elected_at + config.lease_duration.as_millis() as i64) =>
                {
                    watched.lose("no renewal of the lease could be read back before the deadline");
                    return;
                }
                LeaseRead::Unknown => {}
            }
        }
    });
    Ok(leadership)
}

/// A lease manager for `config`, retrying (with the reason logged) until the Lease can be
/// created or read.
async fn build_manager(
    client: &kube::Client,
    config: &ElectionConfig,
) -> kube_lease_manager::LeaseManager {
    loop {
        let built =
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &config.lease_name)
                .with_namespace(&config.namespace)
                .with_identity(&config.identity)
                .with_duration(config.lease_duration.as_secs())
                .with_grace(config.renew_before.as_secs())
                // The field manager stays the crate's per-identity default: server-side
                // apply's ownership conflicts stop two replicas taking the lease at once.
                .build()
                .await;
        match built {
            Ok(manager) => return manager,
            Err(e) => {
                warn_retrying(config, &e);
                tokio::time::sleep(config.check_every.max(Duration::from_secs(1))).await;
            }
        }
    }
}

/// Resolves once the Lease has no holder (checked every `check_every`, starting after one
/// interval so an unheld Lease is first left to the lease manager).
async fn released_by_holder(leases: &Api<Lease>, config: &ElectionConfig) {
    loop {
        tokio::time::sleep(config.check_every).await;
        if let Ok(lease) = read_lease(leases, config).await
            && lease
                .spec
                .and_then(|s| s.holder_identity)
                .is_none_or(|h| h.is_empty())
        {
            return;
        }
    }
}

/// One read of the Lease, bounded by the renewal lead time so that a hung request never
/// holds a caller past the acting deadline; the error says why in a log-ready line.
async fn read_lease(leases: &Api<Lease>, config: &ElectionConfig) -> Result<Lease, String> {
    match tokio::time::timeout(config.renew_before, leases.get(&config.lease_name)).await {
        Ok(Ok(lease)) => Ok(lease),
        Ok(Err(e)) => Err(format!("reading the leader Lease failed: {e}")),
        Err(_) => Err("reading the leader Lease timed out".to_string()),
    }
}

/// Log why the Lease could not be used, in the words an operator acts on.
fn warn_retrying(config: &ElectionConfig, error: &kube_lease_manager::LeaseManagerError) {
    let lease = format!("{}/{}", config.namespace, config.lease_name);
    match error {
        kube_lease_manager::LeaseManagerError::KubeError(
            kube::Error::HyperError(_) | kube::Error::Service(_),
        ) => tracing::error!(
            "cannot reach the Kubernetes API server {}: {error}; retrying (check KUBECONFIG or the in-cluster service)",
            config.api_server
        ),
        kube_lease_manager::LeaseManagerError::KubeError(kube::Error::Api(status))
            if status.code == 403 =>
        {
            tracing::error!(
                "the API server refused the leader Lease {lease}: {error}; the ServiceAccount needs create, get and patch on leases in {} (the Helm chart's RBAC grants them)",
                config.namespace
            )
        }
        _ => tracing::warn!(lease = %lease, error = %error, "leader election failed; retrying"),
    }
}

/// What a read of the Lease says about this replica's leadership.
enum LeaseRead {
    /// This replica holds it: `renewTime + leaseDurationSeconds - SAFETY_MARGIN`, Unix ms.
    Ours(i64),
    /// Another replica holds it (named).
    Theirs(String),
    /// The Lease could not be read, or says nothing usable.
    Unknown,
}

async fn own_deadline(leases: &Api<Lease>, config: &ElectionConfig) -> LeaseRead {
    let lease = match read_lease(leases, config).await {
        Ok(lease) => lease,
        Err(why) => {
            tracing::warn!("{why}");
            return LeaseRead::Unknown;
        }
    };
    let Some(spec) = lease.spec else {
        return LeaseRead::Theirs("nobody".to_string());
    };
    match spec.holder_identity.as_deref() {
        Some(me) if me == config.identity => {}
        Some(other) if !other.is_empty() => return LeaseRead::Theirs(other.to_string()),
        _ => return LeaseRead::Theirs("nobody".to_string()),
    }
    match (spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) => LeaseRead::Ours(
            renewed.0.as_millisecond() + i64::from(seconds) * 1000
                - SAFETY_MARGIN.as_millis() as i64,
        ),
        _ => LeaseRead::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sole_replica_always_leads_and_never_loses() {
        let l = Leadership::sole();
        assert!(l.is_leading());
    }

    #[test]
    fn leading_needs_the_flag_and_a_deadline_in_the_future() {
        let l = Leadership::default();
        assert!(!l.is_leading(), "not elected yet");
        l.leading.store(true, Ordering::Release);
        assert!(!l.is_leading(), "no deadline read back yet");
        l.extend_to(now_ms() + 10_000);
        assert!(l.is_leading());
        // A deadline is only ever moved forward.
        l.extend_to(now_ms() - 10_000);
        assert!(l.is_leading());
        l.deadline_ms.store(now_ms() - 1, Ordering::Release);
        assert!(!l.is_leading(), "deadline passed");
    }

    #[tokio::test]
    async fn losing_is_final_and_wakes_every_waiter() {
        let l = Arc::new(Leadership::default());
        l.leading.store(true, Ordering::Release);
        l.extend_to(now_ms() + 60_000);
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.lost().await }
        });
        tokio::task::yield_now().await;
        l.lose("test");
        waiter.await.unwrap();
        assert!(!l.is_leading());
        l.extend_to(now_ms() + 120_000);
        assert!(!l.is_leading(), "a lost leadership never comes back");
        l.lost().await;
    }
}
