//! Prometheus metrics (`crossguard_*`), served on `/metrics`.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kind: String,
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SavingsLabels {
    namespace: String,
    name: String,
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    namespace: String,
    name: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    namespace: String,
    name: String,
    outcome: String,
}

/// A gauge holding a float (dollars, ratios, timestamps).
type FloatGauge = Gauge<f64, AtomicU64>;

/// Savings categories of [`ClusterFigures::savings`], in the report's order.
pub const SAVINGS_CATEGORIES: [&str; 3] = ["consolidation", "rightsizing", "spot"];

/// Outcomes of finished automation actions counted by
/// `crossguard_managedcluster_automation_actions_total` (the journal's action results).
/// Spelled out here (`automation::SUCCEEDED`, `FAILED`, `ABANDONED`) so that metrics
/// depends on no pipeline module; a test in `controller::automation` keeps them equal.
pub const ACTION_OUTCOMES: [&str; 3] = ["Succeeded", "Failed", "Abandoned"];

/// What one analysis of a ManagedCluster found, as exported per cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterFigures {
    /// Monthly cost of the priced nodes, USD (730 hours at the effective hourly price).
    pub monthly_cost: f64,
    /// Monthly savings found, USD, by [`SAVINGS_CATEGORIES`].
    pub savings: [f64; 3],
    /// Nodes analysed.
    pub nodes: u32,
    /// Nodes of unknown price (in no sum).
    pub unpriced_nodes: u32,
    /// Pod CPU requests / allocatable CPU, 0..=1 (can exceed 1 on an overcommitted cluster).
    pub cpu_requested_ratio: f64,
    /// Pod memory requests / allocatable memory, 0..=1.
    pub memory_requested_ratio: f64,
    /// When the analysis finished, seconds since the Unix epoch.
    pub analysed_at: i64,
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
    ready: Family<ObjectLabels, Gauge>,
    cluster_cost: Family<AccountLabels, FloatGauge>,
    cluster_savings: Family<SavingsLabels, FloatGauge>,
    cluster_nodes: Family<AccountLabels, Gauge>,
    cluster_unpriced: Family<AccountLabels, Gauge>,
    cluster_requested: Family<ResourceLabels, FloatGauge>,
    cluster_analysed_at: Family<AccountLabels, Gauge>,
    cluster_realised: Family<AccountLabels, FloatGauge>,
    cluster_actions: Family<ActionLabels, Counter>,
    cluster_refusals: Family<AccountLabels, Counter>,
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
        // Per-object series: one set per CustomerAccount / ManagedCluster, removed when the
        // object is deleted, so their number is bounded by the objects the operator owns.
        let ready = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "ready",
            "1 when the last reconcile of the object ended with Ready=True, 0 when it ended on a failing stage (the Ready condition's reason says which), by kind, namespace and name",
            ready.clone(),
        );
        let cluster_cost = Family::<AccountLabels, FloatGauge>::default();
        registry.register(
            "managedcluster_monthly_cost_dollars",
            "Monthly cost of the cluster's priced nodes at the last analysis, USD (730 hours at each node's effective hourly price)",
            cluster_cost.clone(),
        );
        let cluster_savings = Family::<SavingsLabels, FloatGauge>::default();
        registry.register(
            "managedcluster_potential_savings_dollars",
            "Monthly saving the last analysis found, USD, by category (consolidation, rightsizing, spot)",
            cluster_savings.clone(),
        );
        let cluster_nodes = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "managedcluster_nodes",
            "Nodes the last analysis of the cluster read",
            cluster_nodes.clone(),
        );
        let cluster_unpriced = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "managedcluster_unpriced_nodes",
            "Nodes of unknown price at the last analysis (in neither cost nor savings)",
            cluster_unpriced.clone(),
        );
        let cluster_requested = Family::<ResourceLabels, FloatGauge>::default();
        registry.register(
            "managedcluster_requested_ratio",
            "Pod requests over allocatable capacity of the cluster's nodes at the last analysis, by resource (cpu, memory)",
            cluster_requested.clone(),
        );
        let cluster_analysed_at = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "managedcluster_last_analysis_timestamp_seconds",
            "When the last successful analysis of the cluster finished, seconds since the Unix epoch",
            cluster_analysed_at.clone(),
        );
        let cluster_realised = Family::<AccountLabels, FloatGauge>::default();
        registry.register(
            "managedcluster_realised_savings_dollars",
            "Monthly saving automation realised on the cluster, USD: the monthly cost of every node it removed (confirmed actions), summed since the cluster's history began (docs/history.md)",
            cluster_realised.clone(),
        );
        let cluster_actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "managedcluster_automation_actions",
            "Automation actions finished on the cluster's nodes, by outcome (Succeeded, Failed, Abandoned)",
            cluster_actions.clone(),
        );
        let cluster_refusals = Family::<AccountLabels, Counter>::default();
        registry.register(
            "managedcluster_refusals",
            "Actions the tag guard refused for the cluster (each also an Event with reason Refused)",
            cluster_refusals.clone(),
        );
        Metrics {
            ready,
            cluster_cost,
            cluster_savings,
            cluster_nodes,
            cluster_unpriced,
            cluster_requested,
            cluster_analysed_at,
            cluster_realised,
            cluster_actions,
            cluster_refusals,
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

    /// Record whether the last reconcile of `kind` `namespace`/`name` ended Ready.
    pub fn set_ready(&self, kind: &str, namespace: &str, name: &str, ready: bool) {
        self.ready
            .get_or_create(&ObjectLabels {
                kind: kind.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
            .set(i64::from(ready));
    }

    /// Publish what the latest analysis of ManagedCluster `namespace`/`name` found.
    pub fn cluster_analysed(&self, namespace: &str, name: &str, f: &ClusterFigures) {
        let key = object(namespace, name);
        self.cluster_cost.get_or_create(&key).set(f.monthly_cost);
        for (category, value) in SAVINGS_CATEGORIES.iter().zip(f.savings) {
            self.cluster_savings
                .get_or_create(&SavingsLabels {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    category: category.to_string(),
                })
                .set(value);
        }
        self.cluster_nodes
            .get_or_create(&key)
            .set(i64::from(f.nodes));
        self.cluster_unpriced
            .get_or_create(&key)
            .set(i64::from(f.unpriced_nodes));
        for (resource, value) in [
            ("cpu", f.cpu_requested_ratio),
            ("memory", f.memory_requested_ratio),
        ] {
            self.cluster_requested
                .get_or_create(&ResourceLabels {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    resource: resource.to_string(),
                })
                .set(value);
        }
        self.cluster_analysed_at
            .get_or_create(&key)
            .set(f.analysed_at);
    }

    /// Publish the realised savings of ManagedCluster `namespace`/`name` (USD a month, the
    /// history's `realisedSavings` after its latest point).
    pub fn cluster_realised_savings(&self, namespace: &str, name: &str, dollars: f64) {
        self.cluster_realised
            .get_or_create(&object(namespace, name))
            .set(dollars);
    }

    /// Count one finished automation action of ManagedCluster `namespace`/`name`;
    /// `outcome` is one of [`ACTION_OUTCOMES`].
    pub fn cluster_action(&self, namespace: &str, name: &str, outcome: &str) {
        self.cluster_actions
            .get_or_create(&ActionLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Count one tag-guard refusal for ManagedCluster `namespace`/`name`.
    pub fn cluster_refusal(&self, namespace: &str, name: &str) {
        self.cluster_refusals
            .get_or_create(&object(namespace, name))
            .inc();
    }

    /// Drop every per-object series of a deleted object, so the exported series stay
    /// bounded by the objects that exist.
    pub fn forget_object(&self, kind: &str, namespace: &str, name: &str) {
        self.ready.remove(&ObjectLabels {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
        let key = object(namespace, name);
        if kind == "CustomerAccount" {
            self.forget_key_ages(namespace, name);
            self.access_keys_disabled.remove(&key);
            return;
        }
        self.cluster_cost.remove(&key);
        self.cluster_nodes.remove(&key);
        self.cluster_unpriced.remove(&key);
        self.cluster_analysed_at.remove(&key);
        self.cluster_realised.remove(&key);
        self.cluster_refusals.remove(&key);
        for category in SAVINGS_CATEGORIES {
            self.cluster_savings.remove(&SavingsLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                category: category.to_string(),
            });
        }
        for resource in ["cpu", "memory"] {
            self.cluster_requested.remove(&ResourceLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                resource: resource.to_string(),
            });
        }
        for outcome in ACTION_OUTCOMES {
            self.cluster_actions.remove(&ActionLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                outcome: outcome.to_string(),
            });
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

fn object(namespace: &str, name: &str) -> AccountLabels {
    AccountLabels {
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cluster_series_appear_and_leave_with_the_cluster() {
        let m = Metrics::new();
        let figures = ClusterFigures {
            monthly_cost: 331.72,
            savings: [280.0, 23.47, 0.0],
            nodes: 5,
            unpriced_nodes: 1,
            cpu_requested_ratio: 0.25,
            memory_requested_ratio: 0.5,
            analysed_at: 1_800_000_000,
        };
        m.cluster_analysed("acme", "prod", &figures);
        m.cluster_analysed("acme", "staging", &figures);
        m.cluster_action("acme", "prod", "Succeeded");
        m.cluster_refusal("acme", "prod");
        m.cluster_realised_savings("acme", "prod", 70.08);
        m.set_ready("ManagedCluster", "acme", "prod", true);
        let text = m.encode();
        for line in [
            r#"crossguard_managedcluster_monthly_cost_dollars{namespace="acme",name="prod"} 331.72"#,
            r#"crossguard_managedcluster_potential_savings_dollars{namespace="acme",name="prod",category="rightsizing"} 23.47"#,
            r#"crossguard_managedcluster_nodes{namespace="acme",name="prod"} 5"#,
            r#"crossguard_managedcluster_unpriced_nodes{namespace="acme",name="prod"} 1"#,
            r#"crossguard_managedcluster_requested_ratio{namespace="acme",name="prod",resource="memory"} 0.5"#,
            r#"crossguard_managedcluster_last_analysis_timestamp_seconds{namespace="acme",name="prod"} 1800000000"#,
            r#"crossguard_managedcluster_automation_actions_total{namespace="acme",name="prod",outcome="Succeeded"} 1"#,
            r#"crossguard_managedcluster_refusals_total{namespace="acme",name="prod"} 1"#,
            r#"crossguard_managedcluster_realised_savings_dollars{namespace="acme",name="prod"} 70.08"#,
            r#"crossguard_ready{kind="ManagedCluster",namespace="acme",name="prod"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        m.forget_object("ManagedCluster", "acme", "prod");
        let text = m.encode();
        assert!(!text.contains(r#"name="prod""#), "{text}");
        assert!(
            text.contains(r#"crossguard_managedcluster_nodes{namespace="acme",name="staging"} 5"#),
            "{text}"
        );
    }

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
