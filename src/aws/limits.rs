//! Per-customer-account AWS budgets, so that one tenant never spends another's and
//! crossguard never causes a customer's own tools to be throttled:
//!
//! - a **client-side rate limit** per service, account and region ([`RateLimits`]): every
//!   request waits for a token first, at most [`RateLimits::max_wait`], and fails with the
//!   code [`CLIENT_RATE_LIMIT_CODE`] (kind `Throttled`, so the reconcile backs off) instead
//!   of hanging when no token comes in time;
//! - an **SDK retry budget** per service, account and region: a custom
//!   [`RetryPartition`] with its own [`TokenBucket`]. The SDK's default partition is named
//!   after the service and region only (`ec2-us-east-1`), so one throttled customer would
//!   drain the retry tokens of every tenant in that region.
//!
//! Both are held only for accounts in use: a rate-limit entry is dropped once its bucket is
//! full again (indistinguishable from a new one: governor's `retain_recent`), a retry
//! partition once it has been idle for [`PARTITION_IDLE`] and its bucket is full, or idle for
//! [`PARTITION_FORGET`] whatever its state (a deleted account). Sweeps run at most every
//! [`SWEEP_EVERY`], when clients are built.
//!
//! Sources: Amazon EC2 throttles each account per region and per API action with a token
//! bucket of 100 tokens refilled at 20 per second for non-mutating actions such as
//! `DescribeInstances`, shared by every caller in the account (the customer's own tools, the
//! console, other vendors): <https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html>.
//! The SDK's retry partitions and token bucket: `aws_smithy_runtime::client::retries`
//! (`RetryPartition::custom`, `TokenBucket`), set per client with `retry_partition` on each
//! service's config builder.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sts::config::retry::{RetryPartition, TokenBucket};
use governor::{DefaultKeyedRateLimiter, Jitter, Quota, RateLimiter};

use super::AwsError;
use crate::metrics::Metrics;

/// The error code of a request crossguard did not send because its own rate limit for the
/// account had no token within [`RateLimits::max_wait`]. Classified as `Throttled`.
pub const CLIENT_RATE_LIMIT_CODE: &str = "ClientRateLimitExceeded";

/// The services crossguard calls on a customer's behalf, as named in metrics and flags.
pub const SERVICES: [&str; 6] = ["ec2", "autoscaling", "eks", "sts", "iam", "savingsplans"];

/// Services whose API is global: one budget per account, whatever region a client names.
const GLOBAL_SERVICES: [&str; 2] = ["iam", "savingsplans"];

/// A retry partition idle this long whose token bucket is full again is dropped.
pub const PARTITION_IDLE: Duration = Duration::from_secs(10 * 60);
/// A retry partition idle this long is dropped whatever its bucket holds (a deleted or
/// suspended account; a returning one starts with a full budget).
pub const PARTITION_FORGET: Duration = Duration::from_secs(60 * 60);
/// How often, at most, unused entries are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One token bucket: `burst` requests at once, refilled at `per_second` requests per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Bucket size: requests that may go out back to back (≥ 1).
    pub burst: u32,
    /// Refill rate in requests per second (≥ 1).
    pub per_second: u32,
}

impl RateLimit {
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        let rate = NonZeroU32::new(self.per_second).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(rate).allow_burst(burst)
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.burst, self.per_second)
    }
}

/// The client-side rate limits per service and how long a request may wait for a token.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// Limit per service (keys from [`SERVICES`]), applied per account and region (per
    /// account for IAM and Savings Plans, which are global).
    pub per_service: BTreeMap<&'static str, RateLimit>,
    /// Longest a request waits for a token before it fails with
    /// [`CLIENT_RATE_LIMIT_CODE`].
    pub max_wait: Duration,
    /// Size of each retry partition's token bucket (the SDK's default, 500, in production;
    /// tests make it small). A retry after a throttling error or a server error costs 5
    /// tokens, after a timeout 10; a success gives one back.
    pub retry_capacity: usize,
}

impl Default for RateLimits {
    /// Defaults well inside what AWS allows each account, since the customer's own tools
    /// share the same budget:
    /// - `ec2`: 20 burst, 5/s — a fifth of EC2's bucket (100) and a quarter of its refill
    ///   (20/s) for each non-mutating action; ours covers every EC2 action together.
    /// - `autoscaling`, `eks`, `sts`, `iam`: 10 burst, 2/s; `savingsplans`: 5 burst, 1/s.
    ///   AWS publishes no per-account figures for these APIs; a reconcile makes a handful
    ///   of such calls (the key audit: one ListUserTags and ListAccessKeys per IAM user), so
    ///   the limits only bite on a customer with very many users or groups.
    fn default() -> Self {
        let limit = |burst, per_second| RateLimit { burst, per_second };
        RateLimits {
            per_service: BTreeMap::from([
                ("ec2", limit(20, 5)),
                ("autoscaling", limit(10, 2)),
                ("eks", limit(10, 2)),
                ("sts", limit(10, 2)),
                ("iam", limit(10, 2)),
                ("savingsplans", limit(5, 1)),
            ]),
            max_wait: Duration::from_secs(30),
            retry_capacity: 500,
        }
    }
}

impl RateLimits {
    /// These limits with `SERVICE=BURST/PER_SECOND` overrides (the `--aws-rate-limit`
    /// flag), e.g. `ec2=40/10`. Errors name the bad part.
    pub fn with_overrides<S: AsRef<str>>(mut self, overrides: &[S]) -> Result<Self, String> {
        for o in overrides {
            let (service, limit) = parse_override(o.as_ref())?;
            self.per_service.insert(service, limit);
        }
        Ok(self)
    }
}

/// Parse one `SERVICE=BURST/PER_SECOND` override.
pub fn parse_override(value: &str) -> Result<(&'static str, RateLimit), String> {
    let usage = "expected SERVICE=BURST/PER_SECOND, e.g. ec2=20/5";
    let (service, limit) = value
        .split_once('=')
        .ok_or_else(|| format!("\"{value}\": {usage}"))?;
    let service = SERVICES
        .iter()
        .find(|s| **s == service.trim())
        .ok_or_else(|| {
            format!(
                "\"{value}\": unknown service \"{service}\" (one of {})",
                SERVICES.join(", ")
            )
        })?;
    let (burst, rate) = limit
        .split_once('/')
        .ok_or_else(|| format!("\"{value}\": {usage}"))?;
    let number = |what: &str, s: &str| -> Result<u32, String> {
        match s.trim().parse::<u32>() {
            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
            _ => Err(format!(
                "\"{value}\": {what} must be a whole number from 1 to 10000"
            )),
        }
    };
    Ok((
        service,
        RateLimit {
            burst: number("BURST", burst)?,
            per_second: number("PER_SECOND", rate)?,
        },
    ))
}

type Key = (String, String);

struct Partition {
    partition: RetryPartition,
    bucket: TokenBucket,
    last_used: Instant,
}

struct Partitions {
    by_key: HashMap<(&'static str, String, String), Partition>,
    last_sweep: Instant,
}

/// The budgets of every customer account this process calls, shared by all clients.
pub struct AccountLimits {
    limits: RateLimits,
    limiters: HashMap<&'static str, DefaultKeyedRateLimiter<Key>>,
    partitions: Mutex<Partitions>,
    metrics: Arc<Metrics>,
}

/// The region part of a key: IAM and Savings Plans are global.
fn scope(service: &str, region: &str) -> String {
    if GLOBAL_SERVICES.contains(&service) {
        "global".to_string()
    } else {
        region.to_string()
    }
}

impl AccountLimits {
    /// Budgets with `limits`, reporting waits to `metrics`.
    pub fn new(limits: RateLimits, metrics: Arc<Metrics>) -> Self {
        let limiters = limits
            .per_service
            .iter()
            .map(|(service, limit)| (*service, RateLimiter::keyed(limit.quota())))
            .collect();
        AccountLimits {
            limits,
            limiters,
            partitions: Mutex::new(Partitions {
                by_key: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            metrics,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Wait until `account` may send one `service` request in `region`: at once when its
    /// bucket has a token, else up to [`RateLimits::max_wait`], then an error of kind
    /// `Throttled` with code [`CLIENT_RATE_LIMIT_CODE`] (nothing was sent).
    pub async fn admit(
        &self,
        service: &'static str,
        operation: &'static str,
        account: &str,
        region: &str,
    ) -> Result<(), AwsError> {
        let Some(limiter) = self.limiters.get(service) else {
            return Ok(());
        };
        let key = (account.to_string(), scope(service, region));
        if limiter.check_key(&key).is_ok() {
            return Ok(());
        }
        let started = Instant::now();
        // Jitter spreads the waiters of one account so they do not wake together.
        let ready =
            limiter.until_key_ready_with_jitter(&key, Jitter::up_to(Duration::from_millis(50)));
        let admitted = tokio::time::timeout(self.limits.max_wait, ready).await;
        let waited = started.elapsed();
        match admitted {
            Ok(()) => {
                self.metrics.rate_limit_wait(service, "delayed", waited);
                Ok(())
            }
            Err(_) => {
                self.metrics.rate_limit_wait(service, "rejected", waited);
                let limit = self.limits.per_service[service];
                Err(AwsError::new(
                    service,
                    operation,
                    Some(CLIENT_RATE_LIMIT_CODE.to_string()),
                    Some(format!(
                        "not sent: crossguard's own {service} rate limit for this account \
                         ({} burst, {}/s) had no room within {}s; retried after a backoff",
                        limit.burst,
                        limit.per_second,
                        self.limits.max_wait.as_secs()
                    )),
                    None,
                    None,
                ))
            }
        }
    }

    /// The retry partition of `account` for `service` in `region`: the same token bucket
    /// for every client of that account, service and region while it is in use.
    pub fn retry_partition(
        &self,
        service: &'static str,
        account: &str,
        region: &str,
    ) -> RetryPartition {
        let now = Instant::now();
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(partitions.last_sweep) >= SWEEP_EVERY {
            partitions.last_sweep = now;
            Self::sweep_partitions(&mut partitions, now);
            for limiter in self.limiters.values() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        let region = scope(service, region);
        let key = (service, account.to_string(), region);
        let capacity = self.limits.retry_capacity;
        let entry = partitions
            .by_key
            .entry(key)
            .or_insert_with_key(|(s, a, r)| {
                let bucket = TokenBucket::builder().capacity(capacity).build();
                Partition {
                    partition: RetryPartition::custom(format!("crossguard-{s}-{a}-{r}"))
                        .token_bucket(bucket.clone())
                        .build(),
                    bucket,
                    last_used: now,
                }
            });
        entry.last_used = now;
        entry.partition.clone()
    }

    fn sweep_partitions(partitions: &mut Partitions, now: Instant) {
        partitions.by_key.retain(|_, p| {
            let idle = now.saturating_duration_since(p.last_used);
            idle < PARTITION_IDLE || (idle < PARTITION_FORGET && !p.bucket.is_full())
        });
    }

    /// How many retry partitions and rate-limit entries are held (for tests and sizing).
    pub fn held(&self) -> (usize, usize) {
        let partitions = self
            .partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .len();
        let limiters = self.limiters.values().map(|l| l.len()).sum();
        (partitions, limiters)
    }

    /// Sweep as if it were `now` (tests: time travel without waiting an hour).
    #[cfg(test)]
    fn sweep_at(&self, now: Instant) {
        let mut partitions = self.partitions.lock().unwrap();
        Self::sweep_partitions(&mut partitions, now);
        for limiter in self.limiters.values() {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::AwsErrorKind;

    /// Budgets whose EC2 limit is `burst` at once and `per_second` after.
    fn limits(burst: u32, per_second: u32, max_wait: Duration) -> AccountLimits {
        let mut l = RateLimits::default();
        l.per_service.insert("ec2", RateLimit { burst, per_second });
        l.max_wait = max_wait;
        AccountLimits::new(l, Arc::new(Metrics::new()))
    }

    /// One admission of a `service` request for `account` in `region`.
    async fn admit(
        l: &AccountLimits,
        service: &'static str,
        account: &str,
        region: &str,
    ) -> Result<(), AwsError> {
        l.admit(service, "Op", account, region).await
    }

    #[test]
    fn overrides_parse_and_bad_ones_say_why() {
        let l = RateLimits::default()
            .with_overrides(&["ec2=40/10", " iam = 3/1"])
            .unwrap();
        assert_eq!(
            l.per_service["ec2"],
            RateLimit {
                burst: 40,
                per_second: 10
            }
        );
        assert_eq!(
            l.per_service["iam"],
            RateLimit {
                burst: 3,
                per_second: 1
            }
        );
        assert_eq!(
            l.per_service["eks"],
            RateLimit {
                burst: 10,
                per_second: 2
            }
        );
        let err = |s: &str| RateLimits::default().with_overrides(&[s]).unwrap_err();
        assert!(err("ec2").contains("SERVICE=BURST/PER_SECOND"));
        assert!(err("s3=1/1").contains("unknown service \"s3\""));
        assert!(err("ec2=0/1").contains("BURST must be"));
        assert!(err("ec2=5/x").contains("PER_SECOND must be"));
        assert!(err("ec2=5").contains("SERVICE=BURST/PER_SECOND"));
    }

    #[test]
    fn defaults_stay_well_inside_the_ec2_describe_budget() {
        // EC2: 100 tokens, 20/s refill per account, region and non-mutating action.
        let ec2 = RateLimits::default().per_service["ec2"];
        assert!(ec2.burst <= 100 / 4 && ec2.per_second <= 20 / 4, "{ec2}");
        assert!(
            SERVICES
                .iter()
                .all(|s| RateLimits::default().per_service.contains_key(s))
        );
    }

    #[tokio::test]
    async fn a_burst_passes_then_calls_wait_for_the_refill() {
        let l = limits(3, 10, Duration::from_secs(5));
        let started = Instant::now();
        for _ in 0..3 {
            admit(&l, "ec2", "111111111111", "us-east-1").await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_millis(50));
        // The fourth waits for one refill (100 ms at 10/s).
        admit(&l, "ec2", "111111111111", "us-east-1").await.unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(80), "{took:?}");
        let text = l.metrics.encode();
        assert!(
            text.contains(
                "crossguard_aws_rate_limited_calls_total{service=\"ec2\",outcome=\"delayed\"} 1"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn accounts_and_regions_have_separate_buckets_and_iam_is_global() {
        let l = limits(1, 1, Duration::from_millis(10));
        admit(&l, "ec2", "a", "us-east-1").await.unwrap();
        // Another account, and the same account in another region, still have their token.
        admit(&l, "ec2", "b", "us-east-1").await.unwrap();
        admit(&l, "ec2", "a", "eu-west-1").await.unwrap();
        // Another service has its own bucket.
        admit(&l, "eks", "a", "us-east-1").await.unwrap();
        let again = admit(&l, "ec2", "a", "us-east-1").await;
        assert!(again.is_err());
        // IAM is global: two regions share one bucket (burst 10).
        for i in 0..10 {
            let region = if i % 2 == 0 { "us-east-1" } else { "eu-west-1" };
            admit(&l, "iam", "a", region).await.unwrap();
        }
        assert!(admit(&l, "iam", "a", "ap-south-1").await.is_err());
    }

    #[tokio::test]
    async fn no_token_within_the_bound_is_a_throttled_error_not_a_hang() {
        let l = limits(1, 1, Duration::from_millis(100));
        admit(&l, "ec2", "a", "us-east-1").await.unwrap();
        let started = Instant::now();
        let err = l
            .admit("ec2", "DescribeInstances", "a", "us-east-1")
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_millis(600),
            "{took:?}"
        );
        assert_eq!(err.kind, AwsErrorKind::Throttled);
        assert!(err.kind.is_transient());
        assert_eq!(err.code.as_deref(), Some(CLIENT_RATE_LIMIT_CODE));
        assert!(!err.outcome_unknown, "nothing was sent");
        assert!(err.message.starts_with("not sent:"), "{}", err.message);
        assert!(l.metrics.encode().contains(
            "crossguard_aws_rate_limited_calls_total{service=\"ec2\",outcome=\"rejected\"} 1"
        ));
    }

    #[test]
    fn one_partition_per_account_service_and_region_shared_while_in_use() {
        let l = limits(1, 1, Duration::from_secs(1));
        let a = l.retry_partition("ec2", "a", "us-east-1");
        assert_eq!(a, l.retry_partition("ec2", "a", "us-east-1"));
        assert_ne!(a, l.retry_partition("ec2", "b", "us-east-1"));
        assert_ne!(a, l.retry_partition("ec2", "a", "eu-west-1"));
        assert_ne!(a, l.retry_partition("eks", "a", "us-east-1"));
        // Global services: one partition per account.
        assert_eq!(
            l.retry_partition("iam", "a", "us-east-1"),
            l.retry_partition("iam", "a", "eu-west-1")
        );
        assert_eq!(a.to_string(), "crossguard-ec2-a-us-east-1");
        assert_eq!(l.held().0, 5);
    }

    #[tokio::test]
    async fn unused_entries_are_dropped_so_state_does_not_grow_with_past_accounts() {
        let l = limits(2, 1000, Duration::from_secs(1));
        for account in 0..50 {
            let account = account.to_string();
            l.retry_partition("ec2", &account, "us-east-1");
            admit(&l, "ec2", &account, "us-east-1").await.unwrap();
        }
        assert_eq!(l.held(), (50, 50));
        // Still in use: kept.
        l.sweep_at(Instant::now());
        assert_eq!(l.held().0, 50);
        // At 1000/s every bucket is full again within a few ms: governor drops them.
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Idle long enough with a full retry bucket: dropped.
        l.sweep_at(Instant::now() + PARTITION_IDLE);
        assert_eq!(l.held(), (0, 0));
    }
}
