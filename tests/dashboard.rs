//! The dashboard of the real operator binary against the harness (fake API server with a
//! TokenReview/SubjectAccessReview table, moto, the customer cluster): who sees what, the
//! history endpoint against what `history::append` stored, the sign-in cookie, and a real
//! browser (headless Chromium) rendering the pages.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crossguard::api::{CustomerAccount, ManagedCluster};
use crossguard::history::{self, HistoryPoint};
use fake_apiserver::{Grant, Reviews, TokenEntry};
use kube::Api;
use support::wait_for;

const TIMEOUT: Duration = Duration::from_secs(90);
/// Sees namespace acme only.
const ALICE: &str = "alice-token";
/// Sees every namespace (a group with a cluster-wide grant).
const AUDITOR: &str = "auditor-token";

/// An HTTP/1.0 answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request to the operator with the given extra headers (and a form body for POST).
fn request(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body.as_bytes()).expect("send body");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn get(base: &str, path: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(base, "GET", path, &headers, "")
}

fn reviews() -> Reviews {
    Reviews {
        tokens: vec![
            TokenEntry {
                token: ALICE.into(),
                username: "alice".into(),
                groups: vec!["system:authenticated".into()],
            },
            TokenEntry {
                token: AUDITOR.into(),
                username: "audrey".into(),
                groups: vec!["auditors".into(), "system:authenticated".into()],
            },
        ],
        grants: vec![
            Grant::new(
                "alice",
                Some("acme"),
                &["get", "list", "watch"],
                "crossguard.dev",
                &["managedclusters", "customeraccounts"],
            ),
            Grant::new("group:auditors", None, &["get"], "crossguard.dev", &["*"]),
        ],
    }
}

/// The harness with acme analysed, a second namespace `globex` holding a cluster alice may
/// not see, the review table set, and the operator running.
struct Setup {
    env: support::Env,
    operator: support::Operator,
    /// CustomerAccount acme's UID: the tenant of acme-prod's history.
    tenant: String,
}

async fn setup() -> Setup {
    let env = support::Env::start().await;
    env.apply_examples();
    env.kubectl(&["create", "namespace", "globex"]);
    let globex = env.dir.path().join("globex.yaml");
    std::fs::write(
        &globex,
        "apiVersion: crossguard.dev/v1alpha1\nkind: ManagedCluster\n\
         metadata: {name: globex-secret-project, namespace: globex}\n\
         spec: {accountRef: {name: globex}, region: us-east-1, clusterName: globex-eks}\n",
    )
    .unwrap();
    env.kubectl(&["apply", "--validate=false", "-f", globex.to_str().unwrap()]);
    env.server.set_reviews(reviews());
    let operator = env.operator(&[]);
    let client = env.client().await;
    let clusters: Api<ManagedCluster> = Api::namespaced(client.clone(), "acme");
    wait_for("acme-prod analysed (status.reportRef)", TIMEOUT, || async {
        let c = clusters.get("acme-prod").await.ok()?;
        c.status.and_then(|s| s.report_ref)
    })
    .await;
    let accounts: Api<CustomerAccount> = Api::namespaced(client, "acme");
    let tenant = accounts
        .get("acme")
        .await
        .expect("account acme")
        .metadata
        .uid
        .expect("uid");
    Setup {
        env,
        operator,
        tenant,
    }
}

/// The operator's store, opened as the operator opens it (file store, the local key Secret
/// the operator created in namespace default).
async fn operator_store(env: &support::Env) -> crossguard::store::Store {
    let client = env.client().await;
    let kek = crossguard::store::keys::local_kek_from_secret(
        &client,
        "default",
        "crossguard-store-kek",
        false,
    )
    .await
    .expect("the operator's key Secret");
    crossguard::store::Store::open(
        &format!("file://{}", env.dir.path().join("store").display()),
        &crossguard::store::S3Options::default(),
    )
    .expect("store")
    .with_encryption(
        std::sync::Arc::new(kek),
        crossguard::store::KeyPolicy::default(),
    )
}

fn point(days_ago: i64, monthly_cost: f64) -> HistoryPoint {
    HistoryPoint {
        at: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days_ago),
        monthly_cost,
        potential_savings: BTreeMap::from([
            ("consolidation".to_string(), monthly_cost / 4.0),
            ("rightsizing".to_string(), 10.0),
            ("spot".to_string(), 0.0),
        ]),
        realised_savings: 3.5,
        nodes: 6,
        unpriced_nodes: 0,
        cpu_requested_ratio: 0.4,
        memory_requested_ratio: 0.3,
        actions: 0,
        refusals: 1,
        price_source: "bundled on-demand list prices".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_each_viewer_only_what_rbac_lets_them_get() {
    let s = setup().await;
    let http = s.operator.http.as_str();

    // No token, or one the API server does not accept: 401 and no data.
    for token in [None, Some("not-a-valid-token")] {
        for path in [
            "/dashboard/",
            "/dashboard/namespaces/acme/managedclusters/acme-prod",
            "/api/v1/namespaces/acme/managedclusters/acme-prod/history?since=30d",
        ] {
            let a = get(http, path, token);
            assert_eq!(a.status, 401, "{path} with {token:?}: {}", a.body);
            assert!(
                !a.body.contains("acme-prod") && !a.body.contains("$"),
                "{}",
                a.body
            );
        }
    }

    // alice may get in acme only: globex is absent from her overview, its pages are 403.
    let overview = get(http, "/dashboard/", Some(ALICE));
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(
        overview.body.contains(">acme-prod</a>"),
        "{}",
        overview.body
    );
    assert!(!overview.body.contains("globex"), "{}", overview.body);
    assert!(
        overview
            .header("content-security-policy")
            .is_some_and(|p| p.contains("default-src 'none'")),
        "{:?}",
        overview.headers
    );
    let denied = get(
        http,
        "/dashboard/namespaces/globex/managedclusters/globex-secret-project",
        Some(ALICE),
    );
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(!denied.body.contains("globex-eks"));
    let denied_json = get(
        http,
        "/api/v1/namespaces/globex/managedclusters/globex-secret-project/history",
        Some(ALICE),
    );
    assert_eq!(denied_json.status, 403, "{}", denied_json.body);
    // 403 whether or not the object exists: a denied viewer learns nothing.
    // Names that are not Kubernetes names never reach the operator's API path.
    let traversal = get(
        http,
        "/api/v1/namespaces/acme%2F..%2F..%2Fapi%2Fv1%2Fnamespaces%2Fdefault/managedclusters/x/history",
        Some(AUDITOR),
    );
    assert_eq!(traversal.status, 404, "{}", traversal.body);
    let missing = get(
        http,
        "/dashboard/namespaces/globex/managedclusters/no-such-cluster",
        Some(ALICE),
    );
    assert_eq!(missing.status, 403);

    // A cluster-wide reader sees both namespaces.
    let audit = get(http, "/dashboard/", Some(AUDITOR));
    assert_eq!(audit.status, 200);
    assert!(
        audit.body.contains(">acme-prod</a>") && audit.body.contains(">globex-secret-project</a>")
    );

    // Reviews are cached: repeated views with one token cost no more TokenReviews.
    let reviews_so_far = |kind: &str| {
        s.env
            .server
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with(kind))
            .count()
    };
    let (tokens, accesses) = (
        reviews_so_far("tokenreviews"),
        reviews_so_far("subjectaccessreviews"),
    );
    for _ in 0..5 {
        assert_eq!(get(http, "/dashboard/", Some(ALICE)).status, 200);
    }
    assert_eq!(reviews_so_far("tokenreviews"), tokens);
    assert_eq!(reviews_so_far("subjectaccessreviews"), accesses);
    // The operator asked with its own credentials; the viewer's token went only into the
    // TokenReview body, never as the operator's Authorization.
    assert!(tokens >= 2 && accesses >= 2, "{tokens} {accesses}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_sets_an_http_only_strict_cookie_and_the_cookie_is_enough() {
    let s = setup().await;
    let http = s.operator.http.as_str();
    let refused = request(http, "POST", "/dashboard/login", &[], "token=wrong");
    assert_eq!(refused.status, 401);
    assert!(refused.header("set-cookie").is_none());
    let cross_site = request(
        http,
        "POST",
        "/dashboard/login",
        &[("Origin", "https://evil.example")],
        &format!("token={ALICE}"),
    );
    assert_eq!(cross_site.status, 403);
    assert!(cross_site.header("set-cookie").is_none());

    let signed_in = request(
        http,
        "POST",
        "/dashboard/login",
        &[],
        &format!("token={ALICE}"),
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.header("location"), Some("/dashboard/"));
    let cookie = signed_in.header("set-cookie").expect("a cookie");
    assert!(
        cookie.starts_with(&format!("crossguard_token={ALICE};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let with_cookie = request(
        http,
        "GET",
        "/dashboard/",
        &[("Cookie", &format!("crossguard_token={ALICE}"))],
        "",
    );
    assert_eq!(with_cookie.status, 200);
    assert!(with_cookie.body.contains(">acme-prod</a>"));
    assert!(!with_cookie.body.contains("globex"));
    let signed_out = request(http, "POST", "/dashboard/logout", &[], "");
    assert_eq!(signed_out.status, 303);
    assert!(
        signed_out
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("crossguard_token=;") && c.contains("Max-Age=0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_endpoint_and_the_cluster_page_show_what_was_appended() {
    let s = setup().await;
    let http = s.operator.http.as_str();
    let store = operator_store(&s.env).await;
    let status_cost = Api::<ManagedCluster>::namespaced(s.env.client().await, "acme")
        .get("acme-prod")
        .await
        .expect("acme-prod")
        .status
        .and_then(|st| st.monthly_cost)
        .expect("status.monthlyCost");
    // Older analyses than the operator's own: 40, 20 and 3 days ago.
    for (days, cost) in [(40, 900.0), (20, 1000.0), (3, 1100.0)] {
        history::append(&store, &s.tenant, "acme", "acme-prod", &point(days, cost))
            .await
            .expect("append");
    }
    let stored = |since_days: i64| {
        let store = store.clone();
        let tenant = s.tenant.clone();
        async move {
            let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * since_days);
            history::read(&store, &tenant, "acme", "acme-prod", since)
                .await
                .expect("read")
        }
    };
    for (since, days) in [("30d", 30), ("90d", 90)] {
        let a = get(
            http,
            &format!("/api/v1/namespaces/acme/managedclusters/acme-prod/history?since={since}"),
            Some(ALICE),
        );
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        let served: Vec<HistoryPoint> = serde_json::from_value(body["points"].clone()).unwrap();
        let expected = stored(days).await;
        // Equal up to analyses the operator appended between the two reads.
        assert!(served.len() <= expected.len());
        assert_eq!(served[..], expected[..served.len()], "since={since}");
        let old = served.iter().filter(|p| p.monthly_cost == 900.0).count();
        assert_eq!(
            old,
            usize::from(days == 90),
            "the 40-day-old point, since={since}"
        );
        assert!(served.iter().any(|p| p.monthly_cost == 1100.0));
        // The operator's own analysis is there too, with the cost its status shows.
        assert!(
            served
                .iter()
                .any(|p| (p.monthly_cost.round() as i64 - status_cost).abs() <= 1),
            "no point of the operator's analysis ({status_cost}/month) in {served:?}"
        );
    }
    let bad = get(
        http,
        "/api/v1/namespaces/acme/managedclusters/acme-prod/history?since=2y",
        Some(ALICE),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);

    let page = get(
        http,
        "/dashboard/namespaces/acme/managedclusters/acme-prod?range=90d",
        Some(ALICE),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let latest = stored(90).await.last().cloned().expect("a point");
    let cost = crossguard::dashboard::html::usd(latest.monthly_cost, 2);
    assert!(
        page.body
            .contains(&format!(r#"id="latest-monthly-cost">{cost}<"#)),
        "{cost} not on the page:\n{}",
        page.body
    );
    assert_eq!(page.body.matches("<svg").count(), 2);
    assert!(page.body.contains("<polyline"));
    // The report's recommendations with their reasoning, and the refusals of status.
    assert!(
        page.body.contains(r#"id="recommendations""#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"<ul class="reasoning"><li>"#));
}

/// Chromium from `make tools` (tests/harness/install-tools.sh) or the system.
fn chromium() -> Option<PathBuf> {
    let candidates = [
        support::repo().join(".tools/bin/chromium"),
        PathBuf::from("/usr/bin/chromium"),
        PathBuf::from("/usr/bin/chromium-browser"),
    ];
    candidates.into_iter().find(|p| p.exists())
}

/// A bearer proxy in front of the operator for `token` (a headless browser cannot send a
/// header or a cookie of its own); returns its URL and the process.
fn bearer_proxy(dir: &Path, upstream: &str, token: &str) -> (String, support::Proc) {
    let token_file = dir.join(format!("{token}.txt"));
    std::fs::write(&token_file, token).unwrap();
    let mut child = Command::new(support::python())
        .arg(support::repo().join("tests/harness/bearer_proxy.py"))
        .args(["--upstream", upstream, "--token-file"])
        .arg(&token_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bearer proxy");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).expect("proxy's first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening on …")
        .to_string();
    (
        url,
        support::Proc {
            child,
            name: "bearer_proxy",
        },
    )
}

/// `chromium --headless` on `url`: the rendered DOM, and a screenshot at `png`.
fn browse(chromium: &Path, profile: &Path, url: &str, png: &Path, size: &str) -> String {
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ];
    let dom = Command::new(chromium)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .expect("chromium --dump-dom");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot = Command::new(chromium)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={size}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .expect("chromium --screenshot");
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    String::from_utf8(dom.stdout).expect("DOM is UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_renders_the_dashboard() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED: no chromium (apt-get install chromium, or `make tools` as root); the browser test did not run"
        );
        return;
    };
    let s = setup().await;
    let store = operator_store(&s.env).await;
    // Ninety daily analyses around the figure the operator just computed, rising and
    // falling a little, so that the screenshots look like a cluster's quarter.
    let client = s.env.client().await;
    let status_cost = Api::<ManagedCluster>::namespaced(client, "acme")
        .get("acme-prod")
        .await
        .expect("acme-prod")
        .status
        .and_then(|st| st.monthly_cost)
        .unwrap_or(250) as f64;
    for day in (1..=90).rev() {
        let wave = 1.0 + 0.15 * ((day as f64) / 9.0).sin() + 0.002 * day as f64;
        let mut p = point(day, (status_cost * wave * 100.0).round() / 100.0);
        p.realised_savings = if day < 30 { 12.5 } else { 0.0 };
        history::append(&store, &s.tenant, "acme", "acme-prod", &p)
            .await
            .expect("append");
    }
    let dir = s.env.dir.path();
    let (proxy, _proxy) = bearer_proxy(dir, &s.operator.http, ALICE);
    let profile = dir.join("chromium-profile");

    let overview_png = dir.join("dashboard-overview.png");
    let overview = browse(
        &chromium,
        &profile,
        &format!("{proxy}/dashboard/"),
        &overview_png,
        "1280,520",
    );
    assert!(overview.contains(">acme-prod</a>"), "{overview}");
    assert!(overview.contains("Overview") && overview.contains("alice"));
    assert!(
        !overview.contains("globex"),
        "denied namespace rendered:\n{overview}"
    );

    let cluster_png = dir.join("dashboard-cluster.png");
    let cluster = browse(
        &chromium,
        &profile,
        &format!("{proxy}/dashboard/namespaces/acme/managedclusters/acme-prod?range=90d"),
        &cluster_png,
        "1280,1500",
    );
    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 90);
    let stored = history::read(&store, &s.tenant, "acme", "acme-prod", since)
        .await
        .expect("read");
    let latest = stored.last().expect("a point");
    let cost = crossguard::dashboard::html::usd(latest.monthly_cost, 2);
    assert!(cluster.contains(&cost), "{cost} not rendered:\n{cluster}");
    assert!(cluster.contains(&format!("{} analyses in the last 90 days", stored.len())));
    assert_eq!(cluster.matches("<svg").count(), 2, "{cluster}");
    assert_eq!(cluster.matches("<polyline").count(), 3, "{cluster}");
    assert!(cluster.contains(r#"id="recommendations""#));

    let denied_png = dir.join("dashboard-denied.png");
    let denied = browse(
        &chromium,
        &profile,
        &format!("{proxy}/dashboard/namespaces/globex/managedclusters/globex-secret-project"),
        &denied_png,
        "800,300",
    );
    assert!(
        denied.contains("403") && !denied.contains("globex-eks"),
        "{denied}"
    );

    for png in [&overview_png, &cluster_png] {
        let bytes = std::fs::read(png).expect("screenshot");
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
            "{}",
            png.display()
        );
    }
    // CROSSGUARD_UPDATE_SCREENSHOTS=1 refreshes the README's images from this run.
    if std::env::var_os("CROSSGUARD_UPDATE_SCREENSHOTS").is_some() {
        let images = support::repo().join("docs/images");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::copy(&overview_png, images.join("dashboard-overview.png")).unwrap();
        std::fs::copy(&cluster_png, images.join("dashboard-cluster.png")).unwrap();
    }
}
