//! Prometheus metrics (`crossguard_*`), served on `/metrics`.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCallLabels {
    service: String,
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabels {
    service: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AssumeRoleLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyAgeLabels {
    namespace: String,
    name: String,
    band: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLimitLabels {
    service: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    route: String,
    outcome: String,
}

/// Age bands of [`Metrics::key_ages`]: under the first warning, warned, past the deadline.
pub const KEY_AGE_BANDS: [&str; 3] = ["ok", "expiring", "overdue"];

/// All of crossguard's metrics and the registry that serves them.
pub struct Metrics {
    registry: Mutex<Registry>,
    aws_calls: Family<AwsCallLabels, Counter>,
    rate_limited: Family<RateLimitLabels, Counter>,
    rate_limit_wait: Family<ServiceLabels, Histogram>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<KindLabels, Histogram>,
    assume_role: Family<AssumeRoleLabels, Counter>,
    audit_records: Family<AuditLabels, Counter>,
    session_cache_hits: Counter,
    session_cache_misses: Counter,
    sessions_held: Gauge,
    nearest_expiry_seconds: Gauge,
    access_keys: Family<KeyAgeLabels, Gauge>,
    access_keys_disabled: Family<AccountLabels, Counter>,
    key_notifications: Family<NotificationLabels, Counter>,
    operator_key_age_days: Gauge,
    leader: Gauge,
    unowned: Family<KindLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("crossguard");
        let aws_calls = Family::<AwsCallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "AWS API calls by service, operation and outcome",
            aws_calls.clone(),
        );
        // Labelled by service only: an account label would grow with the fleet.
        let rate_limited = Family::<RateLimitLabels, Counter>::default();
        registry.register(
            "aws_rate_limited_calls",
            "AWS calls held back by crossguard's own per-account rate limit, by service and outcome (delayed: sent after a wait; rejected: not sent, no token within the maximum wait)",
            rate_limited.clone(),
        );
        let rate_limit_wait = Family::<ServiceLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 13))
        });
        registry.register(
            "aws_rate_limit_wait_seconds",
            "Time AWS calls held back by the per-account rate limit waited for a token, by service",
            rate_limit_wait.clone(),
        );
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome (ok or error category)",
            reconciles.clone(),
        );
        let reconcile_seconds = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_seconds.clone(),
        );
        let assume_role = Family::<AssumeRoleLabels, Counter>::default();
        registry.register(
            "assume_role_calls",
            "sts:AssumeRole calls by outcome or failure reason",
            assume_role.clone(),
        );
        let audit_records = Family::<AuditLabels, Counter>::default();
        registry.register(
            "audit_records",
            "Audit records of calls made on customers' behalf",
            audit_records.clone(),
        );
        let session_cache_hits = Counter::default();
        registry.register(
            "session_cache_hits",
            "Session requests served from the cache",
            session_cache_hits.clone(),
        );
        let session_cache_misses = Counter::default();
        registry.register(
            "session_cache_misses",
            "Session requests that needed an AssumeRole",
            session_cache_misses.clone(),
        );
        let sessions_held = Gauge::default();
        registry.register(
            "sessions_held",
            "Customer sessions held in memory",
            sessions_held.clone(),
        );
        let nearest_expiry_seconds = Gauge::default();
        registry.register(
            "session_nearest_expiry_seconds",
            "Seconds until the soonest-expiring held session expires",
            nearest_expiry_seconds.clone(),
        );
        let access_keys = Family::<KeyAgeLabels, Gauge>::default();
        registry.register(
            "access_keys",
            "Active IAM access keys found by the last key-age scan of each CustomerAccount, by age band (ok, expiring, overdue)",
            access_keys.clone(),
        );
        let access_keys_disabled = Family::<AccountLabels, Counter>::default();
        registry.register(
            "access_keys_disabled",
            "IAM access keys crossguard set Inactive, per CustomerAccount",
            access_keys_disabled.clone(),
        );
        let key_notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "key_audit_notifications",
            "Key-audit notification attempts by route (slack_dm, slack_channel, slack_webhook, webhook) and outcome (sent or the failure)",
            key_notifications.clone(),
        );
        let operator_key_age_days = Gauge::default();
        registry.register(
            "operator_access_key_age_days",
            "Age in whole days of the operator's own long-lived access key (only with --static-credentials-secret)",
            operator_key_age_days.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and reconciles, 0 while it stands by",
            leader.clone(),
        );
        let unowned = Family::<KindLabels, Gauge>::default();
        registry.register(
            "unowned_objects",
            "CustomerAccounts and ManagedClusters no shard owns, so that nothing reconciles them (exported by shard 0 of a sharded fleet; docs/operations.md \"Sharding\")",
            unowned.clone(),
        );
        Metrics {
            unowned,
            leader,
            operator_key_age_days,
            registry: Mutex::new(registry),
            access_keys,
            access_keys_disabled,
            key_notifications,
            aws_calls,
            rate_limited,
            rate_limit_wait,
            reconciles,
            reconcile_seconds,
            assume_role,
            audit_records,
            session_cache_hits,
            session_cache_misses,
            sessions_held,
            nearest_expiry_seconds,
        }
    }

    /// One call held back by the per-account rate limit for `waited`; `outcome` is
    /// `delayed` (then sent) or `rejected` (not sent).
    pub fn rate_limit_wait(&self, service: &str, outcome: &str, waited: Duration) {
        self.rate_limited
            .get_or_create(&RateLimitLabels {
                service: service.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.rate_limit_wait
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .observe(waited.as_secs_f64());
    }

    /// Set the active-key counts of one CustomerAccount by band (see [`KEY_AGE_BANDS`]).
    pub fn key_ages(&self, namespace: &str, name: &str, counts: [u32; 3]) {
        for (band, count) in KEY_AGE_BANDS.iter().zip(counts) {
            self.access_keys
                .get_or_create(&KeyAgeLabels {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    band: band.to_string(),
                })
                .set(i64::from(count));
        }
    }

    /// Forget the active-key counts of one CustomerAccount (audit turned off).
    pub fn forget_key_ages(&self, namespace: &str, name: &str) {
        for band in KEY_AGE_BANDS {
            self.access_keys.remove(&KeyAgeLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                band: band.to_string(),
            });
        }
    }

    /// Count one access key crossguard disabled.
    pub fn key_disabled(&self, namespace: &str, name: &str) {
        self.access_keys_disabled
            .get_or_create(&AccountLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
            .inc();
    }

    /// Set the age of the operator's own access key.
    /// Whether this replica leads (1) or stands by (0).
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Set how many objects of `kind` no shard owns.
    pub fn set_unowned(&self, kind: &str, count: usize) {
        self.unowned
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Record the age of the operator's own access key.
    pub fn operator_key_age(&self, days: u32) {
        self.operator_key_age_days.set(i64::from(days));
    }

    /// Count one notification attempt.
    pub fn key_notification(&self, route: &str, outcome: &str) {
        self.key_notifications
            .get_or_create(&NotificationLabels {
                route: route.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Count one AWS call.
    pub fn aws_call(&self, service: &str, operation: &str, outcome: &str) {
        self.aws_calls
            .get_or_create(&AwsCallLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Count one finished reconcile and its duration.
    pub fn reconcile(&self, kind: &str, outcome: &str, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.reconcile_seconds
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Count one AssumeRole by outcome ("success" or a failure reason).
    pub fn assume_role(&self, outcome: &str) {
        self.assume_role
            .get_or_create(&AssumeRoleLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Count one audit record.
    pub fn audit_record(&self, service: &str, outcome: &str) {
        self.audit_records
            .get_or_create(&AuditLabels {
                service: service.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Count a session cache hit or miss.
    pub fn session_lookup(&self, hit: bool) {
        if hit {
            self.session_cache_hits.inc()
        } else {
            self.session_cache_misses.inc()
        };
    }

    /// Publish how many sessions are held and the seconds until the nearest expiry.
    pub fn sessions(&self, held: usize, nearest_expiry_seconds: Option<i64>) {
        self.sessions_held.set(held as i64);
        self.nearest_expiry_seconds
            .set(nearest_expiry_seconds.unwrap_or(0));
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_with_labels() {
        let m = Metrics::new();
        m.aws_call("sts", "AssumeRole", "success");
        m.aws_call("sts", "AssumeRole", "success");
        m.reconcile("CustomerAccount", "ok", Duration::from_millis(20));
        m.sessions(3, Some(1200));
        let text = m.encode();
        assert!(text.contains(r#"crossguard_aws_calls_total{service="sts",operation="AssumeRole",outcome="success"} 2"#), "{text}");
        assert!(
            text.contains(r#"crossguard_reconciles_total{kind="CustomerAccount",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains("crossguard_sessions_held 3"), "{text}");
        assert!(
            text.contains("crossguard_session_nearest_expiry_seconds 1200"),
            "{text}"
        );
    }
}
