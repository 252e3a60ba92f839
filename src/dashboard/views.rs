//! The dashboard's pages, rendered from the objects, the history and the report (pure:
//! data in, HTML out). Every value from them goes through [`Esc`].

use std::fmt::Write as _;

use super::chart::{self, Series};
use super::html::{self, Esc, path_segment, percent, usd};
use crate::analysis::report::Report;
use crate::api::{Condition, ConditionStatus, CustomerAccount, ManagedCluster};
use crate::history::HistoryPoint;

/// Colour of the cost line.
const COST: &str = "#1f6feb";
/// Colour of the potential savings line.
const POTENTIAL: &str = "#bf8700";
/// Colour of the realised savings line.
const REALISED: &str = "#1a7f37";

/// The Ready condition as a CSS class and a short text (`True`, or `False: Reason`).
fn ready(conditions: &[Condition]) -> (&'static str, String) {
    match conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == ConditionStatus::True => ("ok", format!("Ready: {}", c.reason)),
        Some(c) if c.status == ConditionStatus::False => {
            ("bad", format!("Not ready: {}", c.reason))
        }
        Some(c) => ("unknown", format!("Unknown: {}", c.reason)),
        None => ("unknown", "No status yet".to_string()),
    }
}

fn cell_ready(conditions: &[Condition]) -> String {
    let (class, text) = ready(conditions);
    let message = conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.as_str())
        .unwrap_or_default();
    format!(
        r#"<td class="{class}" title="{}">{}</td>"#,
        Esc(message),
        Esc(&text)
    )
}

/// A time for people: to the second, in UTC (status keeps nanoseconds).
fn when(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// [`when`] of an RFC 3339 status field; the text as it is when it does not parse.
fn when_str(v: Option<&str>) -> String {
    match v.map(|s| s.parse::<jiff::Timestamp>()) {
        Some(Ok(t)) => when(t),
        _ => or_dash(v),
    }
}

fn or_dash(v: Option<&str>) -> String {
    v.map(|s| Esc(s).to_string())
        .unwrap_or_else(|| "—".to_string())
}

fn cluster_link(c: &ManagedCluster) -> String {
    format!(
        "/dashboard/namespaces/{}/managedclusters/{}",
        path_segment(c.metadata.namespace.as_deref().unwrap_or_default()),
        path_segment(c.metadata.name.as_deref().unwrap_or_default()),
    )
}

/// The overview: every account and cluster given (already filtered to what the viewer may
/// see), with status, cost, savings and last analysis.
pub fn overview(viewer: &str, accounts: &[CustomerAccount], clusters: &[ManagedCluster]) -> String {
    let mut b = String::from("<h1>Overview</h1>");
    b.push_str("<h2>ManagedClusters</h2>");
    if clusters.is_empty() {
        b.push_str(r#"<p class="muted" id="no-clusters">No ManagedCluster in a namespace where you may get managedclusters.</p>"#);
    } else {
        b.push_str(r#"<table id="clusters"><tr><th>Namespace</th><th>Name</th><th>Account</th><th>EKS cluster</th><th>Status</th><th>Monthly cost</th><th>Potential savings</th><th>Last analysis</th></tr>"#);
        for c in clusters {
            let st = c.status.clone().unwrap_or_default();
            let _ = write!(
                b,
                r#"<tr class="cluster"><td>{ns}</td><td><a href="{href}">{name}</a></td><td>{acct}</td><td>{eks} ({region})</td>{ready}<td class="num">{cost}</td><td class="num">{savings}</td><td>{last}</td></tr>"#,
                ns = Esc(c.metadata.namespace.as_deref().unwrap_or_default()),
                href = Esc(&cluster_link(c)),
                name = Esc(c.metadata.name.as_deref().unwrap_or_default()),
                acct = Esc(&c.spec.account_ref.name),
                eks = Esc(&c.spec.cluster_name),
                region = Esc(&c.spec.region),
                ready = cell_ready(&st.conditions),
                cost = st
                    .monthly_cost
                    .map(|v| usd(v as f64, 0))
                    .unwrap_or_else(|| "—".into()),
                savings = st
                    .potential_savings
                    .map(|v| usd(v as f64, 0))
                    .unwrap_or_else(|| "—".into()),
                last = when_str(st.last_analysis_at.as_deref()),
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>CustomerAccounts</h2>");
    if accounts.is_empty() {
        b.push_str(r#"<p class="muted" id="no-accounts">No CustomerAccount in a namespace where you may get customeraccounts.</p>"#);
    } else {
        b.push_str(r#"<table id="accounts"><tr><th>Namespace</th><th>Name</th><th>AWS account</th><th>Mode</th><th>Status</th><th>Access keys (expiring / disabled / overdue)</th><th>Role posture findings</th></tr>"#);
        for a in accounts {
            let st = a.status.clone().unwrap_or_default();
            let keys = st
                .key_audit
                .as_ref()
                .map(|k| {
                    format!(
                        "{} keys ({} / {} / {})",
                        k.keys, k.expiring, k.disabled, k.overdue
                    )
                })
                .unwrap_or_else(|| "not audited".to_string());
            let posture = st
                .role_posture
                .as_ref()
                .map(|p| p.findings.len().to_string())
                .unwrap_or_else(|| "—".to_string());
            let _ = write!(
                b,
                r#"<tr class="account"><td>{ns}</td><td>{name}</td><td>{id}</td><td>{mode}</td>{ready}<td>{keys}</td><td class="num">{posture}</td></tr>"#,
                ns = Esc(a.metadata.namespace.as_deref().unwrap_or_default()),
                name = Esc(a.metadata.name.as_deref().unwrap_or_default()),
                id = Esc(&a.spec.account_id),
                mode = Esc(&a.spec.mode.to_string()),
                ready = cell_ready(&st.conditions),
                keys = Esc(&keys),
                posture = Esc(&posture),
            );
        }
        b.push_str("</table>");
    }
    html::page("Overview", Some(viewer), &b)
}

/// What the cluster page shows.
pub struct ClusterPage<'a> {
    /// The cluster.
    pub cluster: &'a ManagedCluster,
    /// Its account, when the viewer may get customeraccounts in the namespace.
    pub account: Option<&'a CustomerAccount>,
    /// Its history over the range, or why it could not be read.
    pub history: Result<Vec<HistoryPoint>, String>,
    /// Its latest report, or why it could not be read.
    pub report: Result<Option<Report>, String>,
    /// The range shown, in days.
    pub days: u32,
    /// Start of the range.
    pub since: jiff::Timestamp,
    /// End of the range.
    pub now: jiff::Timestamp,
}

/// The first `max` characters of `s`, with an ellipsis when it is longer.
fn short(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Total potential savings of a history point.
pub fn potential_total(p: &HistoryPoint) -> f64 {
    p.potential_savings.values().sum()
}

/// The page of one cluster.
pub fn cluster(viewer: &str, page: &ClusterPage<'_>) -> String {
    let c = page.cluster;
    let ns = c.metadata.namespace.as_deref().unwrap_or_default();
    let name = c.metadata.name.as_deref().unwrap_or_default();
    let st = c.status.clone().unwrap_or_default();
    let (class, text) = ready(&st.conditions);
    let message = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<h1>ManagedCluster <span id="cluster-name">{}/{}</span></h1><p>EKS cluster {} in {}, account {}, mode {}. <span class="{class}">{}</span> <span class="muted">{}</span></p>"#,
        Esc(ns),
        Esc(name),
        Esc(&c.spec.cluster_name),
        Esc(&c.spec.region),
        Esc(&c.spec.account_ref.name),
        Esc(&st.effective_mode.unwrap_or(c.spec.mode).to_string()),
        Esc(&text),
        Esc(&message),
    );
    b.push_str(r#"<nav class="ranges">Range: "#);
    for d in super::RANGES {
        let current = if d == page.days {
            r#" class="current""#
        } else {
            ""
        };
        let _ = write!(b, r#"<a href="?range={d}d"{current}>{d} days</a>"#);
    }
    b.push_str("</nav>");
    history_section(&mut b, page);
    report_section(&mut b, &page.report);
    actions_section(&mut b, &st);
    if let Some(account) = page.account {
        account_section(&mut b, account);
    }
    html::page(&format!("{ns}/{name}"), Some(viewer), &b)
}

fn history_section(b: &mut String, page: &ClusterPage<'_>) {
    let points = match &page.history {
        Ok(points) => points,
        Err(e) => {
            let _ = write!(
                b,
                r#"<p class="bad">The history could not be read: {}</p>"#,
                Esc(e)
            );
            return;
        }
    };
    let _ = write!(
        b,
        r#"<p class="muted" id="history-count">{} analyses in the last {} days.</p>"#,
        points.len(),
        page.days
    );
    if let Some(last) = points.last() {
        let by_category: Vec<String> = last
            .potential_savings
            .iter()
            .map(|(k, v)| format!("{k} {}", usd(*v, 2)))
            .collect();
        let _ = write!(
            b,
            r#"<h2>Latest analysis</h2><table id="latest"><tr><th>Analysed at</th><td id="latest-at">{at}</td></tr><tr><th>Monthly cost</th><td class="num" id="latest-monthly-cost">{cost}</td></tr><tr><th>Potential savings</th><td class="num" id="latest-potential-savings">{pot}</td></tr><tr><th>by category</th><td>{cats}</td></tr><tr><th>Realised savings</th><td class="num" id="latest-realised-savings">{real}</td></tr><tr><th>Nodes (unpriced)</th><td class="num">{nodes} ({unpriced})</td></tr><tr><th>CPU / memory requested</th><td class="num">{cpu} / {mem}</td></tr><tr><th>Actions / refusals</th><td class="num">{act} / {ref_}</td></tr><tr><th>Prices</th><td><details><summary>{src_short}</summary>{src}</details></td></tr></table>"#,
            at = Esc(&when(last.at)),
            cost = usd(last.monthly_cost, 2),
            pot = usd(potential_total(last), 2),
            cats = Esc(&by_category.join(", ")),
            real = usd(last.realised_savings, 2),
            nodes = last.nodes,
            unpriced = last.unpriced_nodes,
            cpu = percent(last.cpu_requested_ratio),
            mem = percent(last.memory_requested_ratio),
            act = last.actions,
            ref_ = last.refusals,
            src = Esc(&last.price_source),
            src_short = Esc(&short(&last.price_source, 60)),
        );
    }
    let cost = Series {
        name: "Monthly cost".into(),
        colour: COST,
        points: points.iter().map(|p| (p.at, p.monthly_cost)).collect(),
    };
    let potential = Series {
        name: "Potential savings".into(),
        colour: POTENTIAL,
        points: points.iter().map(|p| (p.at, potential_total(p))).collect(),
    };
    let realised = Series {
        name: "Realised savings".into(),
        colour: REALISED,
        points: points.iter().map(|p| (p.at, p.realised_savings)).collect(),
    };
    let legend = |series: &[&Series]| {
        let spans: Vec<String> = series
            .iter()
            .map(|s| {
                format!(
                    r#"<span><i style="background:{}"></i>{}</span>"#,
                    s.colour,
                    Esc(&s.name)
                )
            })
            .collect();
        format!(r#"<div class="legend">{}</div>"#, spans.join(""))
    };
    let _ = write!(
        b,
        r#"<h2>Monthly cost</h2><div id="cost-chart">{}</div>{}<h2>Savings</h2><div id="savings-chart">{}</div>{}"#,
        chart::line_chart(
            "Monthly cost (USD)",
            page.since,
            page.now,
            std::slice::from_ref(&cost)
        ),
        legend(&[&cost]),
        chart::line_chart(
            "Monthly savings (USD)",
            page.since,
            page.now,
            &[potential.clone(), realised.clone()]
        ),
        legend(&[&potential, &realised]),
    );
}

fn report_section(b: &mut String, report: &Result<Option<Report>, String>) {
    b.push_str("<h2>Recommendations</h2>");
    let report = match report {
        Err(e) => {
            let _ = write!(
                b,
                r#"<p class="bad">The latest report could not be read: {}</p>"#,
                Esc(e)
            );
            return;
        }
        Ok(None) => {
            b.push_str(r#"<p class="muted">No report yet: the cluster has not been analysed.</p>"#);
            return;
        }
        Ok(Some(r)) => r,
    };
    let _ = write!(
        b,
        r#"<p class="muted">From the analysis of the snapshot taken at {}.</p><details><summary>Where the prices come from</summary><p class="muted">{}</p></details>"#,
        Esc(&report.snapshot_taken_at),
        Esc(&report.prices_source)
    );
    if report.recommendations.is_empty() {
        b.push_str(r#"<p>No recommendation: nothing to save found.</p>"#);
    } else {
        b.push_str(r#"<table id="recommendations"><tr><th>Category</th><th>Nodegroup</th><th>Monthly saving</th><th>What and why</th></tr>"#);
        for r in &report.recommendations {
            let category = serde_json::to_value(r.category)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let reasoning: String = r
                .reasoning
                .iter()
                .map(|step| format!("<li>{}</li>", Esc(step)))
                .collect();
            let basis = r
                .price_basis
                .as_deref()
                .map(|p| format!(r#"<br><span class="muted">Price basis: {}</span>"#, Esc(p)))
                .unwrap_or_default();
            let _ = write!(
                b,
                r#"<tr class="recommendation"><td>{cat}{est}</td><td>{ng}</td><td class="num">{saving}</td><td><strong>{summary}</strong><ul class="reasoning">{reasoning}</ul>{basis}</td></tr>"#,
                cat = Esc(&category),
                est = if r.estimate { " (estimate)" } else { "" },
                ng = Esc(&r.nodegroup),
                saving = usd(r.monthly_saving, 2),
                summary = Esc(&r.summary),
            );
        }
        b.push_str("</table>");
    }
    if !report.notes.is_empty() {
        let notes: String = report
            .notes
            .iter()
            .map(|n| format!("<li>{}</li>", Esc(n)))
            .collect();
        let _ = write!(b, r#"<ul class="muted">{notes}</ul>"#);
    }
}

fn actions_section(b: &mut String, st: &crate::api::ManagedClusterStatus) {
    b.push_str("<h2>Recent actions</h2>");
    if let Some(p) = &st.pending_action {
        let _ = write!(
            b,
            r#"<p class="unknown">In progress since {}: {} of node {} ({}).</p>"#,
            Esc(&p.started_at),
            Esc(&p.action),
            Esc(&p.node),
            Esc(&p.phase)
        );
    }
    if st.recent_actions.is_empty() {
        b.push_str(r#"<p class="muted">None.</p>"#);
    } else {
        b.push_str(r#"<table id="actions"><tr><th>Time</th><th>Action</th><th>Target</th><th>Node</th><th>Outcome</th><th>Message</th></tr>"#);
        for a in st.recent_actions.iter().rev() {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                Esc(&a.time),
                Esc(&a.action),
                if a.dry_run { " (dry run)" } else { "" },
                Esc(&a.target),
                or_dash(a.node.as_deref()),
                Esc(&a.outcome),
                or_dash(a.message.as_deref()),
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>Refusals</h2>");
    if st.refusals.is_empty() {
        b.push_str(r#"<p class="muted">None.</p>"#);
    } else {
        b.push_str(r#"<table id="refusals"><tr><th>Time</th><th>Action</th><th>Target</th><th>Why it was refused</th></tr>"#);
        for r in st.refusals.iter().rev() {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                Esc(&r.time),
                Esc(&r.action),
                Esc(&r.target),
                Esc(&r.reason),
            );
        }
        b.push_str("</table>");
    }
}

fn account_section(b: &mut String, account: &CustomerAccount) {
    let st = account.status.clone().unwrap_or_default();
    let _ = write!(
        b,
        r#"<h2>Account {} (AWS {})</h2>"#,
        Esc(account.metadata.name.as_deref().unwrap_or_default()),
        Esc(&account.spec.account_id)
    );
    match &st.key_audit {
        None => b.push_str(r#"<p class="muted">Access-key audit: not enabled or not run yet.</p>"#),
        Some(k) => {
            let _ = write!(
                b,
                r#"<p>Access-key audit{}: {} users, {} keys; {} expiring, {} disabled, {} overdue, {} new, {} unowned.</p>"#,
                k.last_scan_at
                    .as_deref()
                    .map(|t| format!(" at {}", Esc(t)))
                    .unwrap_or_default(),
                k.users,
                k.keys,
                k.expiring,
                k.disabled,
                k.overdue,
                k.new,
                k.unowned
            );
            if !k.findings.is_empty() {
                b.push_str(r#"<table id="key-findings"><tr><th>User</th><th>Access key</th><th>Age (days)</th><th>Finding</th><th>Message</th></tr>"#);
                for f in &k.findings {
                    let _ = write!(
                        b,
                        r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
                        Esc(&f.user),
                        Esc(&f.access_key_id),
                        f.age_days,
                        Esc(&f.finding),
                        Esc(&f.message)
                    );
                }
                b.push_str("</table>");
            }
        }
    }
    if let Some(p) = &st.role_posture {
        if p.findings.is_empty() {
            b.push_str(r#"<p class="ok">Role posture: no finding.</p>"#);
        } else {
            let items: String = p
                .findings
                .iter()
                .map(|f| format!("<li>{}</li>", Esc(f)))
                .collect();
            let _ = write!(
                b,
                r#"<p class="bad">Role posture findings:</p><ul id="posture-findings">{items}</ul>"#
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ManagedClusterSpec, ManagedClusterStatus, RefusalRecord};

    const EVIL: &str = r#"<script>alert("x")</script>"#;

    fn cluster(ns: &str, name: &str) -> ManagedCluster {
        let spec: ManagedClusterSpec = serde_json::from_value(serde_json::json!({
            "accountRef": {"name": "acme"}, "region": "eu-west-1", "clusterName": EVIL,
        }))
        .unwrap();
        let mut c = ManagedCluster::new(name, spec);
        c.metadata.namespace = Some(ns.to_string());
        c.status = Some(ManagedClusterStatus {
            conditions: vec![Condition::new(
                "Ready",
                ConditionStatus::False,
                "AssumeRoleDenied",
                EVIL,
                1,
                jiff::Timestamp::UNIX_EPOCH,
            )],
            monthly_cost: Some(12345),
            potential_savings: Some(2345),
            refusals: vec![RefusalRecord {
                time: "t".into(),
                action: "scale-in".into(),
                target: "asg".into(),
                reason: EVIL.into(),
            }],
            ..Default::default()
        });
        c
    }

    #[test]
    fn the_overview_escapes_what_users_wrote_and_links_each_cluster() {
        let page = overview(EVIL, &[], &[cluster("team-a", "prod")]);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(page.contains(r#"href="/dashboard/namespaces/team-a/managedclusters/prod""#));
        assert!(page.contains("$12,345") && page.contains("$2,345"));
        assert!(page.contains("Not ready: AssumeRoleDenied"));
    }

    #[test]
    fn the_cluster_page_shows_the_latest_point_and_both_charts() {
        let c = cluster("team-a", "prod");
        let at = |h: i64| jiff::Timestamp::from_second(1_767_225_600 + h * 3600).unwrap();
        let point = |h: i64, cost: f64| HistoryPoint {
            at: at(h),
            monthly_cost: cost,
            potential_savings: [
                ("consolidation".to_string(), 100.0),
                ("spot".to_string(), 20.5),
            ]
            .into_iter()
            .collect(),
            realised_savings: 7.25,
            nodes: 4,
            unpriced_nodes: 0,
            cpu_requested_ratio: 0.5,
            memory_requested_ratio: 0.25,
            actions: 1,
            refusals: 0,
            price_source: EVIL.into(),
        };
        let page = ClusterPage {
            cluster: &c,
            account: None,
            history: Ok(vec![point(0, 1000.0), point(1, 1234.5)]),
            report: Ok(None),
            days: 7,
            since: at(0),
            now: at(2),
        };
        let html = super::cluster("viewer", &page);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains(r#"id="latest-monthly-cost">$1,234.50<"#));
        assert!(html.contains(r#"id="latest-potential-savings">$120.50<"#));
        assert!(html.contains(r#"id="latest-realised-savings">$7.25<"#));
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(html.matches("<polyline").count(), 3);
        assert!(html.contains(r#"<a href="?range=7d" class="current">"#));
        assert!(html.contains("No report yet"));
    }

    #[test]
    fn unreadable_history_and_report_are_said_not_hidden() {
        let c = cluster("team-a", "prod");
        let page = ClusterPage {
            cluster: &c,
            account: None,
            history: Err(format!("store failed {EVIL}")),
            report: Err("report gone".into()),
            days: 30,
            since: jiff::Timestamp::UNIX_EPOCH,
            now: jiff::Timestamp::UNIX_EPOCH,
        };
        let html = super::cluster("viewer", &page);
        assert!(html.contains("The history could not be read: store failed &lt;script&gt;"));
        assert!(html.contains("The latest report could not be read: report gone"));
    }
}
