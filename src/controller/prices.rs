//! The operator's price cache: on-demand list prices from the AWS Price List API
//! (`pricing:GetProducts`, the operator's own identity) for the regions and operating
//! systems the bundled table and the `--prices-file` do not cover, kept in memory and in
//! the store (`prices/<region>.json`, with the fetch time) so that a restart reads them
//! back instead of calling again.
//!
//! When a ManagedCluster is analysed, [`PriceCache::table_for`] is given the
//! (operating system, instance type) pairs of its nodes. For each operating system with a
//! type that neither the bundle nor the prices file prices in the cluster's region, it
//! uses the cached Price List answer when it is younger than the refresh interval, and
//! otherwise fetches one. A failed fetch never fails the reconcile: a cached answer, even
//! an old one, is still used; without one, the nodes stay unpriced and their reason (and
//! the report's notes, and the Analysed condition) say that the Price List API could not
//! be reached. The next attempt for that region and operating system is backed off
//! exponentially (5 minutes doubling to 6 hours, with jitter), so an unreachable API is not
//! called on every reconcile.
//!
//! Layers, lowest first: bundled table < Price List API < prices file. Every layer used is
//! one of the table's [`PriceSource`]s, named with its date or fetch time in every report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use serde::{Deserialize, Serialize};

use crate::analysis::{ListedPrices, PriceTable, instance_id};
use crate::audit::CallObserver;
use crate::aws::price_list::PriceListOs;
use crate::aws::{Instance, Pricing};
use crate::clock::Clock;
use crate::store::Store;

/// Default age after which a cached Price List answer is fetched again: AWS publishes
/// EC2 price changes a few times a month at most, and a week-old list price is still the
/// list price in all but rare cases.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// First delay before another attempt after a failed fetch; it doubles per failure.
const RETRY_MIN: Duration = Duration::from_secs(5 * 60);
/// Longest delay between attempts (before jitter).
const RETRY_MAX: Duration = Duration::from_secs(6 * 60 * 60);

/// One operating system's Price List answer for one region, as stored (and as reports
/// carry it in their inventory).
type StoredList = ListedPrices;

/// The stored object `prices/<region>.json`: `kubernetes.io/os` value → answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredRegion {
    region: String,
    on_demand: BTreeMap<String, StoredList>,
}

/// Failed attempts for one region and operating system.
struct Retry {
    delays: ExponentialBackoff,
    not_before: jiff::Timestamp,
    error: String,
}

#[derive(Default)]
struct State {
    /// Region → what is known (from the store or fetched by this process).
    regions: HashMap<String, StoredRegion>,
    /// Regions already looked up in the store.
    loaded: BTreeSet<String>,
    retries: HashMap<(String, PriceListOs), Retry>,
}

/// A price table for one analysis, and what the status should say about its sources.
pub struct PricedFor {
    /// Bundle < Price List answers for the region < prices file.
    pub table: PriceTable,
    /// Problems worth a line in the Analysed condition (a failed fetch, a stale answer).
    pub notes: Vec<String>,
    /// The Price List answers laid into `table`, by `kubernetes.io/os` value (for the
    /// report's inventory).
    pub listed: BTreeMap<String, ListedPrices>,
}

/// On-demand prices from the Price List API, cached in memory and in the store; see the
/// module documentation.
pub struct PriceCache {
    pricing: Arc<dyn Pricing>,
    endpoint_region: String,
    bundled: PriceTable,
    overrides: Option<PriceTable>,
    /// `bundled` with `overrides`: what needs no fetch.
    covered: PriceTable,
    refresh: Duration,
    store: Store,
    clock: Arc<dyn Clock>,
    /// One lock for all regions: a fetch is rare (per region and operating system, at most
    /// once per refresh interval or retry delay), and serialising them keeps two
    /// reconciles of the same region from fetching twice.
    state: tokio::sync::Mutex<State>,
}

impl PriceCache {
    /// A cache calling `pricing` (bound to the Price List endpoint in `endpoint_region`),
    /// laying its answers over `bundled` and under `overrides` (the `--prices-file`), and
    /// keeping them in `store` for `refresh`.
    pub fn new(
        pricing: Arc<dyn Pricing>,
        endpoint_region: impl Into<String>,
        bundled: PriceTable,
        overrides: Option<PriceTable>,
        refresh: Duration,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> PriceCache {
        let covered = match &overrides {
            Some(o) => bundled.clone().with_overrides(o.clone()),
            None => bundled.clone(),
        };
        PriceCache {
            pricing,
            endpoint_region: endpoint_region.into(),
            bundled,
            overrides,
            covered,
            refresh,
            store,
            clock,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The price table for nodes in `region` that need `needed` ((`kubernetes.io/os`
    /// value, instance type) pairs), fetching from the Price List API what is neither
    /// covered nor cached and fresh. Never fails: what could not be fetched is a gap in
    /// the table, with the reason. Each GetProducts page is reported to `observer`.
    pub async fn table_for(
        &self,
        region: &str,
        needed: &BTreeSet<(String, String)>,
        observer: &dyn CallObserver,
    ) -> PricedFor {
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        let mut notes = Vec::new();
        self.load(&mut state, region).await;
        let mut gaps = Vec::new();
        let oses: BTreeSet<PriceListOs> = needed
            .iter()
            .filter_map(|(os, _)| PriceListOs::from_node_os(os))
            .collect();
        for os in oses {
            let missing = needed
                .iter()
                .any(|(o, t)| o == os.node_os() && !self.covered.has_on_demand(o, region, t));
            if !missing {
                continue;
            }
            let cached = state
                .regions
                .get(region)
                .and_then(|r| r.on_demand.get(os.node_os()))
                .cloned();
            let fresh = cached
                .as_ref()
                .is_some_and(|c| age(now, c.fetched_at) < self.refresh);
            if fresh {
                continue;
            }
            let key = (region.to_string(), os);
            if let Some(retry) = state.retries.get(&key).filter(|r| now < r.not_before) {
                let why = format!(
                    "the AWS Price List API could not be reached ({}); next attempt after {}",
                    retry.error, retry.not_before
                );
                match cached {
                    Some(c) => notes.push(stale_note(region, os, &c, &why)),
                    None => gaps.push((os, why)),
                }
                continue;
            }
            match self.pricing.on_demand_prices(region, os, observer).await {
                Ok(list) => {
                    state.retries.remove(&key);
                    if list.skipped > 0 {
                        tracing::info!(
                            region,
                            os = os.attribute(),
                            skipped = list.skipped,
                            "Price List documents without a usable on-demand price were skipped"
                        );
                    }
                    let stored = StoredList {
                        fetched_at: now,
                        endpoint_region: self.endpoint_region.clone(),
                        published: list.published,
                        skipped: list.skipped,
                        hourly_usd: list.hourly_usd,
                    };
                    let entry =
                        state
                            .regions
                            .entry(region.to_string())
                            .or_insert_with(|| StoredRegion {
                                region: region.to_string(),
                                ..StoredRegion::default()
                            });
                    entry.on_demand.insert(os.node_os().to_string(), stored);
                    let bytes = serde_json::to_vec_pretty(entry).expect("prices serialize");
                    if let Err(e) = self.store.put_prices(region, bytes).await {
                        // Kept in memory: this process does not call again; a restart will.
                        tracing::warn!(error = %e, region, "could not store the fetched prices");
                    }
                }
                Err(e) => {
                    let retry = state.retries.entry(key).or_insert_with(|| Retry {
                        delays: ExponentialBuilder::default()
                            .with_min_delay(RETRY_MIN)
                            .with_max_delay(RETRY_MAX)
                            .with_factor(2.0)
                            .with_jitter()
                            .without_max_times()
                            .build(),
                        not_before: now,
                        error: String::new(),
                    });
                    let delay = retry.delays.next().unwrap_or(RETRY_MAX);
                    retry.not_before = now.checked_add(delay).unwrap_or(jiff::Timestamp::MAX);
                    retry.error = e.to_string();
                    tracing::warn!(error = %e, region, os = os.attribute(), retry_after = %retry.not_before, "fetching on-demand prices from the AWS Price List API failed");
                    let why = format!(
                        "the AWS Price List API could not be reached ({e}); next attempt after {}",
                        retry.not_before
                    );
                    match cached {
                        Some(c) => notes.push(stale_note(region, os, &c, &why)),
                        None => gaps.push((os, why)),
                    }
                }
            }
        }
        let mut table = self.bundled.clone();
        let mut listed = BTreeMap::new();
        if let Some(entry) = state.regions.get(region) {
            for (os, list) in &entry.on_demand {
                // Prices were checked when parsed (> 0, finite); a stored copy edited by
                // hand is checked again here and left out whole if wrong, from the table
                // and from what the report carries.
                match list.layer(os, region) {
                    Ok(layer) => {
                        listed.insert(os.clone(), list.clone());
                        table = table.with_overrides(layer);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, region, os, "stored prices are invalid; ignored")
                    }
                }
                if list.hourly_usd.is_empty() {
                    gaps.extend(PriceListOs::from_node_os(os).map(|o| {
                        (
                            o,
                            format!(
                                "the AWS Price List API lists no on-demand {} prices for {region} (fetched {})",
                                o.attribute(),
                                list.fetched_at
                            ),
                        )
                    }));
                }
            }
        }
        if let Some(overrides) = &self.overrides {
            table = table.with_overrides(overrides.clone());
        }
        for (os, why) in gaps {
            notes.push(format!(
                "{} prices for {region} are missing: {why}",
                os.attribute()
            ));
            table.note_gap(os.node_os(), region, why);
        }
        PricedFor {
            table,
            notes,
            listed,
        }
    }

    /// Read `prices/<region>.json` once per process; an unreadable copy is ignored (and
    /// fetched again), not fatal.
    async fn load(&self, state: &mut State, region: &str) {
        if !state.loaded.insert(region.to_string()) {
            return;
        }
        match self.store.get_prices(region).await {
            Ok(None) => {}
            Ok(Some(bytes)) => match serde_json::from_slice::<StoredRegion>(&bytes) {
                Ok(stored) if stored.region == region => {
                    state.regions.insert(region.to_string(), stored);
                }
                Ok(_) => {
                    tracing::warn!(region, "stored prices are for another region; ignored")
                }
                Err(e) => {
                    tracing::warn!(error = %e, region, "stored prices are unreadable; ignored")
                }
            },
            Err(e) => {
                // Not marked loaded: the next analysis tries the store again.
                state.loaded.remove(region);
                tracing::warn!(error = %e, region, "could not read stored prices");
            }
        }
    }
}

fn age(now: jiff::Timestamp, then: jiff::Timestamp) -> Duration {
    Duration::from_secs(now.as_second().saturating_sub(then.as_second()).max(0) as u64)
}

fn stale_note(region: &str, os: PriceListOs, cached: &StoredList, why: &str) -> String {
    format!(
        "{} prices for {region} are from the AWS Price List API as fetched {} and could not be refreshed: {why}",
        os.attribute(),
        cached.fetched_at
    )
}

/// The (`kubernetes.io/os` value, instance type) pairs of `nodes` that need an on-demand
/// price: the type from the node's label or its EC2 instance (by providerID); Fargate
/// nodes are billed per pod and need none.
pub fn needed_prices(
    nodes: &[crate::analysis::input::Node],
    instances: &[Instance],
) -> BTreeSet<(String, String)> {
    let by_id: HashMap<&str, &Instance> = instances.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut needed = BTreeSet::new();
    for node in nodes {
        let labels = node.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(|v| v.as_str());
        if label("eks.amazonaws.com/compute-type") == Some("fargate") {
            continue;
        }
        let os = label("kubernetes.io/os").unwrap_or(crate::analysis::prices::LINUX);
        let instance_type = label("node.kubernetes.io/instance-type")
            .or_else(|| label("beta.kubernetes.io/instance-type"))
            .map(str::to_string)
            .or_else(|| {
                node.spec
                    .as_ref()
                    .and_then(|s| s.provider_id.as_deref())
                    .and_then(instance_id)
                    .and_then(|id| by_id.get(id))
                    .and_then(|i| i.instance_type.clone())
            });
        if let Some(t) = instance_type {
            needed.insert((os.to_string(), t));
        }
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: &[(&str, &str)], provider: Option<&str>) -> crate::analysis::input::Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
            "spec": {"providerID": provider},
        }))
        .unwrap()
    }

    #[test]
    fn needed_prices_come_from_labels_or_the_instance_and_skip_fargate() {
        let nodes = [
            node(&[("node.kubernetes.io/instance-type", "m5.large")], None),
            node(
                &[("kubernetes.io/os", "windows")],
                Some("aws:///eu-west-1a/i-0123456789abcdef0"),
            ),
            node(
                &[
                    ("eks.amazonaws.com/compute-type", "fargate"),
                    ("node.kubernetes.io/instance-type", "m5.large"),
                    ("kubernetes.io/os", "windows"),
                ],
                None,
            ),
            node(&[], None),
        ];
        let instances = [Instance {
            id: "i-0123456789abcdef0".into(),
            instance_type: Some("m5.xlarge".into()),
            ..Default::default()
        }];
        let needed = needed_prices(&nodes, &instances);
        assert_eq!(
            needed.into_iter().collect::<Vec<_>>(),
            [
                ("linux".to_string(), "m5.large".to_string()),
                ("windows".to_string(), "m5.xlarge".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn a_stale_answer_is_still_used_when_its_refresh_fails() {
        use crate::audit::NoAudit;
        use crate::aws::AwsErrorKind;
        use crate::store::S3Options;
        use crate::testing::ManualClock;
        use crate::testing::aws::FakeAws;

        let clock = ManualClock::at(1_800_000_000);
        let aws = FakeAws::new(clock.clone());
        aws.put_on_demand_price("eu-west-1", "linux", "m5.large", 0.107);
        let store = Store::open("memory://", &S3Options::default()).unwrap();
        let cache = PriceCache::new(
            aws.pricing(),
            "us-east-1",
            PriceTable::bundled(),
            None,
            Duration::from_secs(3600),
            store,
            clock.clone(),
        );
        let needed = BTreeSet::from([("linux".to_string(), "m5.large".to_string())]);
        let first = cache.table_for("eu-west-1", &needed, &NoAudit).await;
        assert!(first.notes.is_empty(), "{:?}", first.notes);
        assert_eq!(
            first.table.on_demand_hourly("eu-west-1", "m5.large"),
            Some(0.107)
        );

        // Past the refresh interval the API fails: the old answer stays, and says so.
        clock.advance(Duration::from_secs(2 * 3600));
        aws.fail("GetProducts", AwsErrorKind::Throttled, 1);
        let stale = cache.table_for("eu-west-1", &needed, &NoAudit).await;
        assert_eq!(
            stale.table.on_demand_hourly("eu-west-1", "m5.large"),
            Some(0.107)
        );
        assert_eq!(stale.table.gaps().count(), 0);
        assert!(
            stale.notes.len() == 1
                && stale.notes[0]
                    .contains("as fetched 2027-01-15T08:00:00Z and could not be refreshed")
                && stale.notes[0].contains("pricing:GetProducts failed"),
            "{:?}",
            stale.notes
        );
        // Backed off: the next analysis does not call; after the delay it does, and the
        // new answer replaces the old one.
        let calls = aws.calls_of("GetProducts").len();
        cache.table_for("eu-west-1", &needed, &NoAudit).await;
        assert_eq!(aws.calls_of("GetProducts").len(), calls);
        aws.put_on_demand_price("eu-west-1", "linux", "m5.large", 0.11);
        clock.advance(RETRY_MIN * 2 + Duration::from_secs(1));
        let fresh = cache.table_for("eu-west-1", &needed, &NoAudit).await;
        assert_eq!(aws.calls_of("GetProducts").len(), calls + 1);
        assert!(fresh.notes.is_empty(), "{:?}", fresh.notes);
        assert_eq!(
            fresh.table.on_demand_hourly("eu-west-1", "m5.large"),
            Some(0.11)
        );
        // A type the bundle covers needs no call at all.
        let covered = BTreeSet::from([("linux".to_string(), "m5.large".to_string())]);
        cache.table_for("us-east-1", &covered, &NoAudit).await;
        assert_eq!(aws.calls_of("GetProducts").len(), calls + 1);
    }

    #[test]
    fn a_stored_answer_names_its_source_and_fetch_time() {
        let list = StoredList {
            fetched_at: "2026-11-30T11:00:00Z".parse().unwrap(),
            endpoint_region: "us-east-1".into(),
            published: Some("2026-11-01T00:00:00Z".into()),
            skipped: 2,
            hourly_usd: BTreeMap::from([("m5.large".to_string(), 0.199)]),
        };
        let t = list.layer("windows", "eu-west-1").unwrap();
        assert_eq!(
            t.on_demand_hourly_for("windows", "eu-west-1", "m5.large"),
            Ok(0.199)
        );
        let source = &t.sources[0];
        assert_eq!(source.as_of, "fetched 2026-11-30T11:00:00Z");
        for part in [
            "AWS Price List API",
            "eu-west-1",
            "Windows on-demand",
            "published 2026-11-01T00:00:00Z",
            "2 products without a usable price skipped",
        ] {
            assert!(source.source.contains(part), "{part}: {}", source.source);
        }
    }
}
