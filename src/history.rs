//! Per-cluster cost and savings history (issue #16): one compact [`HistoryPoint`] per
//! analysis, kept in the store under the tenant's prefix (so it is encrypted with the
//! tenant's data key, swept by retention and erased with the tenant), read back for
//! `crossguard history`, the dashboard and its HTTP endpoint.
//!
//! The interface ([`HistoryPoint`], [`append`], [`read`]) is shared with the dashboard.
//!
//! # Layout
//!
//! One *segment* object per cluster per calendar month (UTC), at
//! `tenants/<account-uid>/history/<namespace>/<cluster>/<YYYYMMDD>T000000Z.jsonl`, holding
//! that month's points as JSON lines (one [`HistoryPoint`] per line, oldest first). The
//! stamp in the name is the segment's **end**: the first instant of the next month
//! (exclusive). So the store's generic retention sweep ([`Store::sweep`], which deletes
//! objects stamped before the cutoff) deletes a segment only once every point in it is
//! older than the cutoff, and [`sweep`] trims the one segment that straddles the cutoff.
//!
//! Why this layout: object stores have no append, so appending is a read-modify-write of
//! the current month's segment (at most ~2,976 points, about 1 MB); only the elected
//! leader appends, so there is no concurrent writer. A year is 12 or 13 objects, read in
//! as many GETs and parsed in one pass (BENCHMARKS.md "History"). Each segment is an
//! ordinary tenant object: sealed with the tenant's data key (the `history` kind and the
//! key bound as associated data), refused once the tenant is erased, deleted by erasure.

use std::collections::BTreeMap;

use crate::store::{Store, StoreError};

/// One analysis of one ManagedCluster, as kept in its history. All money in USD.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    /// When the analysis finished.
    pub at: jiff::Timestamp,
    /// Monthly cost of the priced nodes (730 hours at the effective hourly price).
    pub monthly_cost: f64,
    /// Potential monthly savings by category (the categories of
    /// `crate::metrics::SAVINGS_CATEGORIES`).
    pub potential_savings: BTreeMap<String, f64>,
    /// Monthly savings automation actually realised so far: the hourly price of the nodes
    /// it removed × 730, summed over confirmed actions.
    pub realised_savings: f64,
    /// Nodes analysed.
    pub nodes: u32,
    /// Nodes of unknown price (in no sum).
    pub unpriced_nodes: u32,
    /// Pod CPU requests / allocatable CPU.
    pub cpu_requested_ratio: f64,
    /// Pod memory requests / allocatable memory.
    pub memory_requested_ratio: f64,
    /// Automation actions taken (confirmed) since the previous point.
    pub actions: u32,
    /// Automation refusals since the previous point.
    pub refusals: u32,
    /// Where the prices came from (the report's price source, e.g. bundled table + date).
    pub price_source: String,
}

/// A history operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The store failed (including an erased tenant or an undecryptable object).
    #[error("{operation} the history of {namespace}/{cluster} failed: {source}")]
    Store {
        /// `appending to` or `reading`.
        operation: &'static str,
        /// The ManagedCluster's namespace.
        namespace: String,
        /// The ManagedCluster's name.
        cluster: String,
        /// The store's error.
        source: StoreError,
    },
    /// A stored history object does not parse.
    #[error("the stored history object {key} is malformed: {reason}")]
    Malformed {
        /// Its key.
        key: String,
        /// The parse error.
        reason: String,
    },
}

/// The object kind (first component under the tenant's prefix) of history segments.
pub const KIND: &str = "history";

/// The segment of the month holding `at`: its relative key under the tenant's prefix.
fn segment_of(namespace: &str, cluster: &str, at: jiff::Timestamp) -> String {
    let end = month_end(at);
    format!(
        "{KIND}/{namespace}/{cluster}/{}.jsonl",
        end.strftime("%Y%m%dT%H%M%SZ")
    )
}

/// The first instant of the month after the one holding `at` (UTC).
fn month_end(at: jiff::Timestamp) -> jiff::Timestamp {
    let date = at.to_zoned(jiff::tz::TimeZone::UTC).date();
    let (year, month) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    jiff::civil::date(year, month, 1)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("a month start in UTC exists")
        .timestamp()
}

/// The end stamp in a segment's key, None for a key that is not a segment.
fn segment_end(rel: &str) -> Option<jiff::Timestamp> {
    let name = rel.rsplit('/').next()?.strip_suffix(".jsonl")?;
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", name)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

fn store_error(
    operation: &'static str,
    namespace: &str,
    cluster: &str,
) -> impl FnOnce(StoreError) -> HistoryError {
    let (namespace, cluster) = (namespace.to_string(), cluster.to_string());
    move |source| HistoryError::Store {
        operation,
        namespace,
        cluster,
        source,
    }
}

/// The points of a segment; the error is the parse error's text (see [`malformed`]).
fn parse_lines(bytes: &[u8]) -> Result<Vec<HistoryPoint>, String> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).map_err(|e| e.to_string()))
        .collect()
}

fn malformed(key: &str) -> impl FnOnce(String) -> HistoryError {
    let key = key.to_string();
    move |reason| HistoryError::Malformed { key, reason }
}

fn write_line(out: &mut Vec<u8>, point: &HistoryPoint) {
    serde_json::to_writer(&mut *out, point).expect("a history point serializes");
    out.push(b'\n');
}

/// Append `point` to the history of `namespace/cluster` of `tenant` (CustomerAccount UID).
///
/// One read-modify-write of the segment of `point.at`'s month. Fails with
/// [`HistoryError::Store`] (`StoreError::TenantErased`) for an erased tenant, creating
/// nothing.
pub async fn append(
    store: &Store,
    tenant: &str,
    namespace: &str,
    cluster: &str,
    point: &HistoryPoint,
) -> Result<(), HistoryError> {
    append_all(
        store,
        tenant,
        namespace,
        cluster,
        std::slice::from_ref(point),
    )
    .await
}

/// Append `points` (any order) to the history of `namespace/cluster` of `tenant`: one
/// read-modify-write per month they fall in (for back-fills and simulations, where
/// [`append`] per point would rewrite each segment thousands of times). Within a segment
/// points stay in time order: a point older than the segment's last one is inserted in
/// place.
pub async fn append_all(
    store: &Store,
    tenant: &str,
    namespace: &str,
    cluster: &str,
    points: &[HistoryPoint],
) -> Result<(), HistoryError> {
    let fail = || store_error("appending to", namespace, cluster);
    let mut by_segment: BTreeMap<String, Vec<&HistoryPoint>> = BTreeMap::new();
    for point in points {
        by_segment
            .entry(segment_of(namespace, cluster, point.at))
            .or_default()
            .push(point);
    }
    for (rel, mut new) in by_segment {
        new.sort_by_key(|p| p.at);
        let mut bytes = store
            .get_named(tenant, &rel)
            .await
            .map_err(fail())?
            .unwrap_or_default();
        let in_order = match bytes.iter().rposition(|b| *b == b'\n') {
            // The common case: the new points are newer than the last stored one, so the
            // segment is extended without parsing it.
            Some(end) => {
                let start = bytes[..end]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                let last: HistoryPoint = parse_lines(&bytes[start..end])
                    .map_err(malformed(&rel))?
                    .pop()
                    .ok_or_else(|| HistoryError::Malformed {
                        key: rel.clone(),
                        reason: "empty last line".into(),
                    })?;
                last.at <= new[0].at
            }
            None => true,
        };
        if in_order {
            for point in new {
                write_line(&mut bytes, point);
            }
        } else {
            let mut all = parse_lines(&bytes).map_err(malformed(&rel))?;
            all.extend(new.into_iter().cloned());
            all.sort_by_key(|p| p.at);
            bytes.clear();
            for point in &all {
                write_line(&mut bytes, point);
            }
        }
        store.put_named(tenant, &rel, bytes).await.map_err(fail())?;
    }
    Ok(())
}

/// The points of `namespace/cluster` of `tenant` with `at >= since`, oldest first.
///
/// Reads only the segments that can hold such points (one per month); an unknown cluster
/// or an erased-and-deleted tenant has an empty history. A segment that cannot be opened
/// (e.g. its tenant's data keys were destroyed) is [`HistoryError::Store`].
pub async fn read(
    store: &Store,
    tenant: &str,
    namespace: &str,
    cluster: &str,
    since: jiff::Timestamp,
) -> Result<Vec<HistoryPoint>, HistoryError> {
    use futures::{StreamExt, TryStreamExt};
    let fail = || store_error("reading", namespace, cluster);
    let segments: Vec<String> = store
        .list_named(tenant, &format!("{KIND}/{namespace}/{cluster}"))
        .await
        .map_err(fail())?
        .into_iter()
        .filter(|rel| segment_end(rel).is_some_and(|end| end > since))
        .collect();
    // A few GETs in flight: on S3 a year is 12 round trips, not worth serialising.
    let bodies: Vec<(String, Option<Vec<u8>>)> = futures::stream::iter(segments)
        .map(|rel| async move {
            let got = store.get_named(tenant, &rel).await;
            got.map(|bytes| (rel, bytes))
        })
        .buffered(4)
        .try_collect()
        .await
        .map_err(fail())?;
    let mut points = Vec::new();
    for (rel, bytes) in bodies {
        // Deleted between the listing and the GET (a retention sweep): nothing to read.
        let Some(bytes) = bytes else { continue };
        points.extend(
            parse_lines(&bytes)
                .map_err(malformed(&rel))?
                .into_iter()
                .filter(|p| p.at >= since),
        );
    }
    // Already ordered in the normal case (segments sorted by month, points by time), where
    // this stable sort is a linear pass.
    points.sort_by_key(|p| p.at);
    Ok(points)
}

/// The newest point of `namespace/cluster` of `tenant`, None for an empty history. Reads
/// only the newest non-empty segment (one GET in the normal case), not the whole history.
pub async fn latest(
    store: &Store,
    tenant: &str,
    namespace: &str,
    cluster: &str,
) -> Result<Option<HistoryPoint>, HistoryError> {
    let fail = || store_error("reading", namespace, cluster);
    let segments = store
        .list_named(tenant, &format!("{KIND}/{namespace}/{cluster}"))
        .await
        .map_err(fail())?;
    for rel in segments.iter().rev().filter(|r| segment_end(r).is_some()) {
        let Some(bytes) = store.get_named(tenant, rel).await.map_err(fail())? else {
            continue;
        };
        if let Some(newest) = parse_lines(&bytes)
            .map_err(malformed(rel))?
            .into_iter()
            .max_by_key(|p| p.at)
        {
            return Ok(Some(newest));
        }
    }
    Ok(None)
}

/// Apply retention to the history of every cluster of `tenant`: segments that end before
/// `cutoff` are deleted, and the segment that straddles it is rewritten without its points
/// older than `cutoff`. Returns how many points were dropped from rewritten segments
/// (whole segments are counted by the store's own sweep when it gets there first).
pub async fn sweep(
    store: &Store,
    tenant: &str,
    cutoff: jiff::Timestamp,
) -> Result<usize, HistoryError> {
    let fail = |source| HistoryError::Store {
        operation: "sweeping",
        namespace: "*".into(),
        cluster: "*".into(),
        source,
    };
    let mut dropped = 0;
    for rel in store.list_named(tenant, KIND).await.map_err(fail)? {
        let Some(end) = segment_end(&rel) else {
            continue;
        };
        if end <= cutoff {
            store.delete_named(tenant, &rel).await.map_err(fail)?;
            continue;
        }
        // Only a segment whose month starts before the cutoff can hold older points.
        let Some(start) = month_start_before(end) else {
            continue;
        };
        if start >= cutoff {
            continue;
        }
        let Some(bytes) = store.get_named(tenant, &rel).await.map_err(fail)? else {
            continue;
        };
        let points = parse_lines(&bytes).map_err(malformed(&rel))?;
        let kept: Vec<_> = points.iter().filter(|p| p.at >= cutoff).collect();
        if kept.len() == points.len() {
            continue;
        }
        dropped += points.len() - kept.len();
        if kept.is_empty() {
            store.delete_named(tenant, &rel).await.map_err(fail)?;
        } else {
            let mut out = Vec::with_capacity(bytes.len());
            for point in kept {
                write_line(&mut out, point);
            }
            store.put_named(tenant, &rel, out).await.map_err(fail)?;
        }
    }
    Ok(dropped)
}

/// The first instant of the month before the one starting at `end`.
fn month_start_before(end: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let date = end.to_zoned(jiff::tz::TimeZone::UTC).date();
    let (year, month) = if date.month() == 1 {
        (date.year() - 1, 12)
    } else {
        (date.year(), date.month() - 1)
    };
    jiff::civil::date(year, month, 1)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::keys::{Kek, LocalKek};
    use crate::store::{KeyPolicy, S3Options};

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn kek() -> Arc<dyn Kek> {
        let keys = [("k1".to_string(), zeroize::Zeroizing::new([7u8; 32]))].into();
        Arc::new(LocalKek::new("k1", keys).unwrap())
    }

    fn encrypted(url: &str) -> Store {
        Store::open(url, &S3Options::default())
            .unwrap()
            .with_encryption(kek(), KeyPolicy::default())
    }

    /// The two backends the tests run on: a `file://` temp dir (kept alive by the guard)
    /// and `memory://`.
    fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let file = encrypted(&format!("file://{}", dir.path().display()));
        vec![(file, Some(dir)), (encrypted("memory://"), None)]
    }

    fn point(at: jiff::Timestamp, i: u32) -> HistoryPoint {
        HistoryPoint {
            at,
            monthly_cost: 1000.0 + f64::from(i),
            potential_savings: [
                ("rightsizing".to_string(), 10.0 + f64::from(i)),
                ("spot".to_string(), 5.5),
            ]
            .into(),
            realised_savings: f64::from(i) * 0.5,
            nodes: 10 + i % 7,
            unpriced_nodes: i % 2,
            cpu_requested_ratio: 0.25,
            memory_requested_ratio: 0.5,
            actions: i % 3,
            refusals: i % 5,
            price_source: "bundled on-demand list prices (2026-11-01)".into(),
        }
    }

    #[test]
    fn segments_are_named_by_the_end_of_their_month() {
        assert_eq!(
            segment_of("ns", "prod", t("2026-01-31T23:59:59Z")),
            "history/ns/prod/20260201T000000Z.jsonl"
        );
        assert_eq!(
            segment_of("ns", "prod", t("2026-12-01T00:00:00Z")),
            "history/ns/prod/20270101T000000Z.jsonl"
        );
        assert_eq!(
            segment_end("history/ns/prod/20270101T000000Z.jsonl"),
            Some(t("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            month_start_before(t("2027-01-01T00:00:00Z")),
            Some(t("2026-12-01T00:00:00Z"))
        );
    }

    #[tokio::test]
    async fn appended_points_read_back_in_order_from_since_and_are_sealed() {
        for (store, dir) in stores() {
            let at = t("2026-03-31T23:45:00Z");
            for i in 0..4u32 {
                let p = point(at + jiff::SignedDuration::from_mins(15 * i64::from(i)), i);
                append(&store, "uid-a", "ns", "prod", &p).await.unwrap();
            }
            // An out-of-order point lands in its place.
            let late = point(t("2026-04-01T00:05:00Z"), 9);
            append(&store, "uid-a", "ns", "prod", &late).await.unwrap();
            let all = read(&store, "uid-a", "ns", "prod", jiff::Timestamp::MIN)
                .await
                .unwrap();
            let ats: Vec<String> = all.iter().map(|p| p.at.to_string()).collect();
            assert_eq!(
                ats,
                [
                    "2026-03-31T23:45:00Z",
                    "2026-04-01T00:00:00Z",
                    "2026-04-01T00:05:00Z",
                    "2026-04-01T00:15:00Z",
                    "2026-04-01T00:30:00Z"
                ]
            );
            assert_eq!(all[0], point(at, 0));
            let since = read(&store, "uid-a", "ns", "prod", t("2026-04-01T00:10:00Z"))
                .await
                .unwrap();
            assert_eq!(since.len(), 2);
            // Another cluster, another tenant: separate histories.
            assert!(
                read(&store, "uid-a", "ns", "dev", jiff::Timestamp::MIN)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                read(&store, "uid-b", "ns", "prod", jiff::Timestamp::MIN)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let keys = store.keys("uid-a").await.unwrap();
            assert_eq!(
                keys,
                [
                    "tenants/uid-a/history/ns/prod/20260401T000000Z.jsonl",
                    "tenants/uid-a/history/ns/prod/20260501T000000Z.jsonl"
                ]
            );
            if let Some(dir) = dir {
                // On disk the segments are ciphertext: no price source in clear.
                let raw = std::fs::read(dir.path().join(&keys[1])).unwrap();
                assert!(crate::store::envelope::is_sealed(&raw));
                assert!(!String::from_utf8_lossy(&raw).contains("bundled"));
            }
        }
    }

    #[tokio::test]
    async fn a_simulated_year_reads_back_complete_and_ordered() {
        // An injected clock: 35,040 analyses 15 minutes apart from 2026-01-01.
        let clock = crate::testing::ManualClock::at(t("2026-01-01T00:00:00Z").as_second());
        use crate::clock::Clock as _;
        let mut year = Vec::with_capacity(35_040);
        for i in 0..35_040u32 {
            year.push(point(clock.now(), i));
            clock.advance(std::time::Duration::from_secs(15 * 60));
        }
        for (store, _dir) in stores() {
            // The last day through `append` one point at a time, the rest in bulk.
            let (bulk, last_day) = year.split_at(35_040 - 96);
            append_all(&store, "uid-a", "ns", "prod", bulk)
                .await
                .unwrap();
            for p in last_day {
                append(&store, "uid-a", "ns", "prod", p).await.unwrap();
            }
            let got = read(&store, "uid-a", "ns", "prod", jiff::Timestamp::MIN)
                .await
                .unwrap();
            assert_eq!(got.len(), 35_040);
            assert!(got == year, "the year reads back as written, in order");
            assert_eq!(store.keys("uid-a").await.unwrap().len(), 12);
            let last_30 = read(&store, "uid-a", "ns", "prod", t("2026-12-01T00:00:00Z"))
                .await
                .unwrap();
            assert_eq!(last_30.len(), 31 * 96);
        }
    }

    #[tokio::test]
    async fn retention_drops_old_segments_and_old_points() {
        for (store, _dir) in stores() {
            let points: Vec<_> = (0..90u32)
                .map(|d| {
                    point(
                        t("2026-01-01T12:00:00Z")
                            + jiff::SignedDuration::from_hours(24 * i64::from(d)),
                        d,
                    )
                })
                .collect();
            append_all(&store, "uid-a", "ns", "prod", &points)
                .await
                .unwrap();
            // The store's own sweep: January's segment ends before the cutoff, February's
            // does not.
            let cutoff = t("2026-02-10T00:00:00Z");
            assert_eq!(store.sweep("uid-a", cutoff).await.unwrap(), 1);
            let dropped = sweep(&store, "uid-a", cutoff).await.unwrap();
            assert_eq!(dropped, 9, "Feb 1..9 go");
            let left = read(&store, "uid-a", "ns", "prod", jiff::Timestamp::MIN)
                .await
                .unwrap();
            assert_eq!(left.len(), 90 - 31 - 9);
            assert!(left.iter().all(|p| p.at >= cutoff));
            assert_eq!(left[0].at, t("2026-02-10T12:00:00Z"));
            // Repeating it changes nothing.
            assert_eq!(sweep(&store, "uid-a", cutoff).await.unwrap(), 0);
            // A cutoff past everything leaves no history object.
            sweep(&store, "uid-a", t("2027-01-01T00:00:00Z"))
                .await
                .unwrap();
            assert!(store.keys("uid-a").await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn erasure_removes_the_history_and_an_erased_tenant_cannot_append() {
        for (store, dir) in stores() {
            let p = point(t("2026-05-05T05:00:00Z"), 1);
            append(&store, "uid-a", "ns", "prod", &p).await.unwrap();
            append(&store, "uid-b", "ns", "prod", &p).await.unwrap();
            // A backup of uid-a's segment taken before the erasure.
            let backup = dir.as_ref().map(|d| {
                let key = "tenants/uid-a/history/ns/prod/20260601T000000Z.jsonl";
                (
                    d.path().join(key),
                    std::fs::read(d.path().join(key)).unwrap(),
                )
            });
            store
                .begin_erasure("uid-a", t("2026-05-06T00:00:00Z"))
                .await
                .unwrap();
            store.purge("uid-a").await.unwrap();
            assert!(store.keys("uid-a").await.unwrap().is_empty());
            assert!(
                read(&store, "uid-a", "ns", "prod", jiff::Timestamp::MIN)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let err = append(&store, "uid-a", "ns", "prod", &p).await.unwrap_err();
            assert!(
                matches!(&err, HistoryError::Store { source, .. } if source.is_tenant_erased()),
                "{err}"
            );
            assert!(
                store.keys("uid-a").await.unwrap().is_empty(),
                "nothing recreated"
            );
            // The restored backup stays sealed for good.
            if let Some((path, bytes)) = backup {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, bytes).unwrap();
                let err = read(&store, "uid-a", "ns", "prod", jiff::Timestamp::MIN)
                    .await
                    .unwrap_err();
                assert!(err.to_string().contains("destroyed"), "{err}");
            }
            // The other tenant's history is untouched.
            assert_eq!(
                read(&store, "uid-b", "ns", "prod", jiff::Timestamp::MIN)
                    .await
                    .unwrap(),
                vec![p]
            );
        }
    }

    #[tokio::test]
    async fn a_malformed_segment_is_an_error_naming_it() {
        let store = encrypted("memory://");
        store
            .put_named(
                "uid-a",
                "history/ns/prod/20260201T000000Z.jsonl",
                b"{not json\n".to_vec(),
            )
            .await
            .unwrap();
        let err = read(&store, "uid-a", "ns", "prod", jiff::Timestamp::MIN)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("history/ns/prod/20260201T000000Z.jsonl is malformed"),
            "{err}"
        );
    }
}
