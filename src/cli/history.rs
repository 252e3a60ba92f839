//! `crossguard history`: a ManagedCluster's cost and savings history
//! ([`crate::history`]) as a table for people, JSON for programs, or CSV for
//! spreadsheets. The store and the tenant are resolved by the binary; this module parses
//! `--since` and renders the points.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::history::HistoryPoint;
use crate::metrics::SAVINGS_CATEGORIES;

use super::OutputFormat;

/// The formats `history -o` accepts: `table` (the default, also spelled `text`), `json`,
/// `csv`.
pub fn output_parser() -> impl clap::builder::TypedValueParser {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new([
        PossibleValue::new("table").alias("text"),
        PossibleValue::new("json"),
        PossibleValue::new("csv"),
    ])
    .map(|s: String| match s.as_str() {
        "json" => OutputFormat::Json,
        "csv" => OutputFormat::Csv,
        _ => OutputFormat::Text,
    })
}

/// `--since` is neither a duration nor a time.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid --since {value:?}: give a duration back from now such as 30d, 12h or 1y, or an RFC 3339 time such as 2026-01-01T00:00:00Z"
)]
pub struct SinceError {
    /// What was given.
    pub value: String,
}

/// The start of the range `--since value` asks for: `now` minus a duration (`30d`, `12h`,
/// `1y` = 365.25 days, humantime's units), or an RFC 3339 time.
pub fn parse_since(value: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, SinceError> {
    let bad = || SinceError {
        value: value.to_string(),
    };
    if let Ok(at) = value.parse::<jiff::Timestamp>() {
        return Ok(at);
    }
    let back = humantime::parse_duration(value.trim()).map_err(|_| bad())?;
    let back = jiff::SignedDuration::try_from(back).map_err(|_| bad())?;
    Ok(now.checked_sub(back).unwrap_or(jiff::Timestamp::MIN))
}

/// The savings categories of `points`: [`SAVINGS_CATEGORIES`] first, then any other a
/// point carries, so every column is stable and none is lost.
fn categories(points: &[HistoryPoint]) -> Vec<String> {
    let mut out: Vec<String> = SAVINGS_CATEGORIES.iter().map(|c| c.to_string()).collect();
    let extra: BTreeSet<&String> = points
        .iter()
        .flat_map(|p| p.potential_savings.keys())
        .filter(|k| !SAVINGS_CATEGORIES.contains(&k.as_str()))
        .collect();
    out.extend(extra.into_iter().cloned());
    out
}

fn total_savings(p: &HistoryPoint) -> f64 {
    p.potential_savings.values().sum()
}

/// CSV with a header row, one row per point, oldest first. Columns: `at` (RFC 3339),
/// `monthly_cost`, `potential_savings_<category>` for each category, `potential_savings`
/// (their sum), `realised_savings`, `nodes`, `unpriced_nodes`, `cpu_requested_ratio`,
/// `memory_requested_ratio`, `actions`, `refusals`, `price_source`. Money in USD per month.
pub fn to_csv(points: &[HistoryPoint]) -> Result<Vec<u8>, ::csv::Error> {
    let cats = categories(points);
    let mut out = ::csv::Writer::from_writer(Vec::new());
    let mut header = vec!["at".to_string(), "monthly_cost".to_string()];
    header.extend(cats.iter().map(|c| format!("potential_savings_{c}")));
    header.extend(
        [
            "potential_savings",
            "realised_savings",
            "nodes",
            "unpriced_nodes",
            "cpu_requested_ratio",
            "memory_requested_ratio",
            "actions",
            "refusals",
            "price_source",
        ]
        .map(str::to_string),
    );
    out.write_record(&header)?;
    for p in points {
        let mut row = vec![p.at.to_string(), money(p.monthly_cost)];
        row.extend(cats.iter().map(|c| {
            p.potential_savings
                .get(c)
                .map(|v| money(*v))
                .unwrap_or_default()
        }));
        row.extend([
            money(total_savings(p)),
            money(p.realised_savings),
            p.nodes.to_string(),
            p.unpriced_nodes.to_string(),
            format!("{:.4}", p.cpu_requested_ratio),
            format!("{:.4}", p.memory_requested_ratio),
            p.actions.to_string(),
            p.refusals.to_string(),
            p.price_source.clone(),
        ]);
        out.write_record(&row)?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

fn money(v: f64) -> String {
    format!("{v:.2}")
}

/// JSON: the array of points as stored (camelCase fields, RFC 3339 times), pretty-printed.
pub fn to_json(points: &[HistoryPoint]) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(points).expect("history points serialize");
    out.push(b'\n');
    out
}

/// A table for a terminal: one line per point (time to the minute, monthly cost, potential
/// savings in total and by category, realised savings, nodes, CPU and memory requested,
/// actions and refusals), then the price sources with the periods they cover.
pub fn to_table(namespace: &str, cluster: &str, points: &[HistoryPoint]) -> String {
    let cats = categories(points);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "History of ManagedCluster {namespace}/{cluster}: {} points; USD per month (730 hours)",
        points.len()
    );
    let mut header = format!("{:<19}  {:>11}  {:>11}", "TIME (UTC)", "COST", "SAVINGS");
    for c in &cats {
        let _ = write!(header, "  {:>13}", c.to_uppercase());
    }
    let _ = write!(
        header,
        "  {:>11}  {:>5}  {:>4}  {:>4}  {:>7}  {:>8}",
        "REALISED", "NODES", "CPU", "MEM", "ACTIONS", "REFUSALS"
    );
    let _ = writeln!(out, "{}", header.trim_end());
    for p in points {
        let mut line = format!(
            "{:<19}  {:>11.2}  {:>11.2}",
            p.at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            p.monthly_cost,
            total_savings(p)
        );
        for c in &cats {
            match p.potential_savings.get(c) {
                Some(v) => {
                    let _ = write!(line, "  {v:>13.2}");
                }
                None => {
                    let _ = write!(line, "  {:>13}", "-");
                }
            }
        }
        let nodes = if p.unpriced_nodes > 0 {
            format!("{}*", p.nodes)
        } else {
            p.nodes.to_string()
        };
        let _ = writeln!(
            line,
            "  {:>11.2}  {:>5}  {:>3.0}%  {:>3.0}%  {:>7}  {:>8}",
            p.realised_savings,
            nodes,
            p.cpu_requested_ratio * 100.0,
            p.memory_requested_ratio * 100.0,
            p.actions,
            p.refusals
        );
        out.push_str(&line);
    }
    if points.iter().any(|p| p.unpriced_nodes > 0) {
        out.push_str("* some nodes have no known price and are in no sum\n");
    }
    // Each run of one price source, so a change of prices shows where it happened.
    let mut runs: Vec<(&str, jiff::Timestamp, jiff::Timestamp)> = Vec::new();
    for p in points {
        match runs.last_mut() {
            Some((source, _, last)) if *source == p.price_source => *last = p.at,
            _ => runs.push((&p.price_source, p.at, p.at)),
        }
    }
    for (source, first, last) in runs {
        let _ = writeln!(
            out,
            "Prices {} .. {}: {source}",
            first.strftime("%Y-%m-%d %H:%M"),
            last.strftime("%Y-%m-%d %H:%M")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn point(at: &str, source: &str) -> HistoryPoint {
        HistoryPoint {
            at: t(at),
            monthly_cost: 1234.5,
            potential_savings: [
                ("consolidation".to_string(), 100.0),
                ("rightsizing".to_string(), 20.25),
                ("spot".to_string(), 3.0),
            ]
            .into(),
            realised_savings: 70.08,
            nodes: 4,
            unpriced_nodes: 1,
            cpu_requested_ratio: 0.5,
            memory_requested_ratio: 0.25,
            actions: 1,
            refusals: 2,
            price_source: source.into(),
        }
    }

    #[test]
    fn since_takes_durations_and_times_and_names_bad_values() {
        let now = t("2026-12-01T00:00:00Z");
        assert_eq!(parse_since("30d", now).unwrap(), t("2026-11-01T00:00:00Z"));
        assert_eq!(parse_since("12h", now).unwrap(), t("2026-11-30T12:00:00Z"));
        assert_eq!(
            parse_since("2026-01-01T00:00:00Z", now).unwrap(),
            t("2026-01-01T00:00:00Z")
        );
        let err = parse_since("last week", now).unwrap_err().to_string();
        assert!(err.contains("invalid --since \"last week\""), "{err}");
        assert!(parse_since("-3d", now).is_err());
    }

    #[test]
    fn csv_has_a_column_per_category_and_quotes_the_price_source() {
        let points = [point("2026-11-01T00:00:00Z", "bundled, 2026-11-01")];
        let text = String::from_utf8(to_csv(&points).unwrap()).unwrap();
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header[2], "potential_savings_consolidation");
        assert_eq!(header.len(), 14);
        let row = rows.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "2026-11-01T00:00:00Z");
        assert_eq!(&row[5], "123.25");
        assert_eq!(&row[6], "70.08");
        assert_eq!(&row[13], "bundled, 2026-11-01");
    }

    #[test]
    fn json_reads_back_as_the_points() {
        let points = vec![point("2026-11-01T00:00:00Z", "bundled")];
        let back: Vec<HistoryPoint> = serde_json::from_slice(&to_json(&points)).unwrap();
        assert_eq!(back, points);
    }

    #[test]
    fn the_table_lines_up_and_shows_where_prices_changed() {
        let points = [
            point("2026-11-01T00:00:00Z", "bundled 2026-10"),
            point("2026-11-01T00:15:00Z", "bundled 2026-10"),
            point("2026-11-01T00:30:00Z", "Price List 2026-11"),
        ];
        let table = to_table("acme", "acme-prod", &points);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("acme/acme-prod: 3 points"), "{table}");
        assert!(lines[1].starts_with("TIME (UTC)") && lines[1].contains("CONSOLIDATION"));
        assert!(lines[2].starts_with("2026-11-01 00:00"), "{table}");
        assert!(lines[2].contains("1234.50") && lines[2].contains("123.25"));
        assert!(
            lines[2].contains("4*") && lines[2].contains(" 50%"),
            "{table}"
        );
        assert_eq!(lines[2].len(), lines[3].len(), "{table}");
        assert!(table.contains("Prices 2026-11-01 00:00 .. 2026-11-01 00:15: bundled 2026-10"));
        assert!(table.contains("Prices 2026-11-01 00:30 .. 2026-11-01 00:30: Price List 2026-11"));
    }
}
