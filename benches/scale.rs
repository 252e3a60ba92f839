//! One operator, many tenants (issue #13): N CustomerAccounts and N ManagedClusters (N =
//! 100, 300 and 1,000) reconciled by both controllers as `crossguard run` wires them, with
//! the stateful in-memory AWS fake (`crossguard::testing::aws::FakeAws`) in place of AWS.
//! Prints, for each N: time until all 2N objects are Ready from the operator's start,
//! reconciles per second at steady state, p50/p99 reconcile latency, the operator's peak
//! RSS and its growth per tenant between the sizes, AssumeRole calls per account, and
//! management API server requests per reconcile. Figures are recorded in BENCHMARKS.md
//! ("Scale: 1,000 tenants").
//!
//! Run: `make bench-scale` (or `cargo bench --bench scale`; `-- --tenants 1000` for one
//! size, `-- --repeat 1` for one run of each instead of [`DEFAULT_REPEAT`]). Each run of a
//! size starts a fresh operator process; the runs go in rounds (every size once, then
//! again), and the summary takes growth per tenant between the sizes' medians, with each
//! round's own peak RSS less the AWS fake beside it. It is not a test: `make test` does not build or run it.
//!
//! Four processes, so that the operator's memory is measured alone:
//! - this one, the orchestrator: seeds the management cluster, watches for Ready, makes the
//!   steady-state changes, and reads the API server's request log (its own requests carry
//!   the user agent [`BENCH_AGENT`] and are not counted);
//! - the management API server (`fake_apiserver`, this binary re-run with
//!   `CROSSGUARD_SCALE_ROLE=apiserver`), logging every request;
//! - the customer cluster's API server (`CROSSGUARD_SCALE_ROLE=customer`): three nodes and
//!   four pods, shared by every ManagedCluster (each account's EKS cluster points at it),
//!   so that a snapshot is a few KiB and the figures exclude snapshots in flight;
//! - the operator (`CROSSGUARD_SCALE_ROLE=operator`): `controller::run` with the default
//!   concurrency, the broker, a file store and the AWS fake holding each account's role,
//!   EKS cluster, nodegroup, Auto Scaling group and three instances. Its peak RSS is the
//!   operator's plus the fake's, whose share is measured apart with a counting allocator.
//!
//! The run starts cold: every account, its ExternalId Secret (owned by the account, as the
//! operator makes it) and every cluster exist, and each customer's role already trusts the
//! ExternalId, as after an operator restart or a failover to a fresh replica. Onboarding
//! (the ExternalId generated, then trusted by the customer) is covered by the tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossguard::analysis::PriceTable;
use crossguard::api::{CustomerAccount, ManagedCluster};
use crossguard::aws::{
    AutoScalingGroup, EksCluster, Instance, InstanceTypeShape, Nodegroup, TAG_CLUSTER, TAG_MANAGED,
};
use crossguard::clock::{Clock, SystemClock};
use crossguard::controller::{self, Context};
use crossguard::credentials::Broker;
use crossguard::http::Readiness;
use crossguard::metrics::Metrics;
use crossguard::store::{S3Options, Store};
use crossguard::testing::aws::FakeAws;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt, Resource, ResourceExt};
use serde_json::{Value, json};

/// Counts live heap bytes, to tell the AWS fake's share of the operator process apart.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Which process this is (unset: the orchestrator).
const ROLE: &str = "CROSSGUARD_SCALE_ROLE";
/// The sizes run by default.
const SIZES: [u64; 3] = [100, 300, 1000];

/// How many times each size runs unless `--repeat` says otherwise. A single run's peak
/// RSS moves by several MiB with the allocator's timing (BENCHMARKS.md, "Memory per
/// tenant"), which over 200 tenants is tens of KiB per tenant; the summary's growth per
/// tenant is taken between the sizes' medians.
const DEFAULT_REPEAT: usize = 5;
/// The namespace of every tenant.
const NS: &str = "tenants";
const REGION: &str = "us-east-1";
const CLUSTER: &str = "prod";
/// The orchestrator's user agent: its requests are not the operator's.
const BENCH_AGENT: &str = "crossguard-scale-bench";
/// The customer cluster's instances (the same ids in every account: accounts are
/// separate worlds in the fake).
const INSTANCES: [&str; 3] = [
    "i-0000000000000000a",
    "i-0000000000000000b",
    "i-0000000000000000c",
];
/// The CA bundle every fake EKS cluster reports, as EKS always does (a self-signed
/// certificate made for this benchmark; the customer cluster is served over plain HTTP, so
/// it is never used to verify anything). Without one the operator's client for the
/// customer cluster falls back to the OS trust store, which is loaded and parsed again for
/// every analysis: a case EKS never presents.
const EKS_CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBgDCCASegAwIBAgIUPiCChQFYnKbdDXAN0URRBNttN8IwCgYIKoZIzj0EAwIw\n\
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAgFw0yNjExMzAxNzQwNTVaGA8yMTI2MTEw\n\
NjE3NDA1NVowFTETMBEGA1UEAwwKa3ViZXJuZXRlczBZMBMGByqGSM49AgEGCCqG\n\
SM49AwEHA0IABNJr1ILFjd8AgBJfcV2YCmfY+FJ7gGed+isjCpeYlk51RhamumCD\n\
TfkHbZPDvV1KL4XPAAeEwD70jNaEB5Dj9HGjUzBRMB0GA1UdDgQWBBTduS0VRaph\n\
CgV1t7iEduyANWfRZDAfBgNVHSMEGDAWgBTduS0VRaphCgV1t7iEduyANWfRZDAP\n\
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIBQNX5syMq39rnG0uOLZ\n\
puiDI/jHAfKW53Zh80l6e4YFAiAXpian6U/HVigiBNkUZ7+LS0C5+WigS/B7dt2k\n\
IF8YFQ==\n\
-----END CERTIFICATE-----\n\
";
/// How long all 2N objects may take to become Ready before the run is declared failed.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// No reconcile finished for this long: the operator is idle.
const QUIET: Duration = Duration::from_secs(3);

fn account_id(i: usize) -> String {
    format!("{:012}", 200_000_000_000u64 + i as u64)
}

fn role_arn(i: usize) -> String {
    format!("arn:aws:iam::{}:role/crossguard-access", account_id(i))
}

/// Account `i`'s ExternalId: 48 letters and digits, as the operator makes them.
fn external_id(i: usize) -> String {
    format!("ScaleBenchExternalId{i:028}")
}

fn main() {
    crossguard::install_crypto_provider();
    match std::env::var(ROLE).as_deref() {
        Ok("apiserver") => serve_api(false),
        Ok("customer") => serve_api(true),
        Ok("operator") => operator(),
        Ok(other) => panic!("unknown {ROLE}={other}"),
        Err(_) => orchestrate(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // As `#[tokio::main]` in crossguard's main: one worker per core.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------- API servers

/// Serve a fake API server until stdin closes (the orchestrator is gone or done). The
/// management one logs every request to `CROSSGUARD_SCALE_REQUEST_LOG`.
fn serve_api(customer: bool) {
    runtime().block_on(async {
        let options = fake_apiserver::Options {
            request_log: std::env::var_os("CROSSGUARD_SCALE_REQUEST_LOG").map(PathBuf::from),
            ..Default::default()
        };
        let server = fake_apiserver::FakeApiServer::start_with(([127, 0, 0, 1], 0).into(), options)
            .await
            .expect("fake apiserver");
        if customer {
            seed_customer_cluster(&server);
        }
        println!("listening on {}", server.url());
        std::io::stdout().flush().expect("stdout");
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await
        .expect("stdin reader");
        server.shutdown().await;
    });
}

/// Three m5.large nodes (the instances every account's group holds) with a web pod, a
/// batch pod and two DaemonSet pods.
fn seed_customer_cluster(server: &fake_apiserver::FakeApiServer) {
    for id in INSTANCES {
        server
            .seed(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": format!("ip-{id}"), "creationTimestamp": "2026-01-01T00:00:00Z",
                    "labels": {"node.kubernetes.io/instance-type": "m5.large",
                        "eks.amazonaws.com/nodegroup": "ng", "topology.kubernetes.io/zone": "us-east-1a"}},
                "spec": {"providerID": format!("aws:///us-east-1a/{id}")},
                "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"},
                    "capacity": {"cpu": "2", "memory": "8Gi", "pods": "29"}}}))
            .expect("node");
    }
    server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .expect("namespace");
    let pod = |name: &str, ns: &str, node: &str, owner: Value, cpu: &str, memory: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [owner]},
            "spec": {"nodeName": format!("ip-{node}"), "containers": [{"name": "c", "image": "app:1",
                "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
            "status": {"phase": "Running"}})
    };
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "rs-web", "controller": true});
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds", "controller": true});
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "name": "report", "uid": "job", "controller": true});
    for obj in [
        pod("web-5d4f-0", "shop", INSTANCES[0], rs, "500m", "512Mi"),
        pod("report-1", "shop", INSTANCES[1], job, "250m", "256Mi"),
        pod(
            "agent-a",
            "kube-system",
            INSTANCES[0],
            ds.clone(),
            "50m",
            "64Mi",
        ),
        pod("agent-b", "kube-system", INSTANCES[1], ds, "50m", "64Mi"),
    ] {
        server.seed(obj).expect("pod");
    }
}

// ---------------------------------------------------------------------- the operator

/// Start times of open `reconcile` spans and the durations of closed ones: the latency of
/// every reconcile as the operator's own span measures it (`reconcile_with_finalizer`).
mod timing {
    use std::sync::{Arc, Mutex};
    use std::time::{Instant, SystemTime};

    use tracing::span::{Attributes, Id};
    use tracing::{Subscriber, field::Field, field::Visit};
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::registry::LookupSpan;

    /// One finished reconcile.
    #[derive(Clone, Copy)]
    pub struct Sample {
        pub account: bool,
        pub seconds: f64,
        /// When it ended, milliseconds since the Unix epoch.
        pub ended_ms: u128,
    }

    #[derive(Clone, Default)]
    pub struct Reconciles(pub Arc<Mutex<Vec<Sample>>>);

    struct Started(Instant, bool);

    struct Kind(bool);
    impl Visit for Kind {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "kind" {
                self.0 = format!("{value:?}").contains("CustomerAccount");
            }
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Reconciles {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let meta = attrs.metadata();
            if meta.name() != "reconcile" || !meta.target().starts_with("crossguard") {
                return;
            }
            let mut kind = Kind(false);
            attrs.record(&mut kind);
            if let Some(span) = ctx.span(id) {
                span.extensions_mut()
                    .insert(Started(Instant::now(), kind.0));
            }
        }

        fn on_close(&self, id: Id, ctx: Context<'_, S>) {
            let Some(span) = ctx.span(&id) else { return };
            let ext = span.extensions();
            let Some(Started(at, account)) = ext.get::<Started>() else {
                return;
            };
            let sample = Sample {
                account: *account,
                seconds: at.elapsed().as_secs_f64(),
                ended_ms: super::epoch_ms(SystemTime::now()),
            };
            self.0.lock().expect("samples").push(sample);
        }
    }
}

fn epoch_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

fn now_ms() -> u128 {
    epoch_ms(SystemTime::now())
}

/// `(VmHWM, VmRSS)` of this process in KiB, from /proc/self/status.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The AWS world of account `i`: its role trusting [`external_id`], EKS cluster `prod`
/// (endpoint: the shared customer cluster), one managed nodegroup, its group and three
/// instances.
fn seed_account(aws: &FakeAws, i: usize, customer_url: &str, ca_bundle: &str) {
    let account = account_id(i);
    aws.add_role(&role_arn(i), &external_id(i));
    let managed: BTreeMap<String, String> = [
        (TAG_MANAGED.to_string(), "true".to_string()),
        (TAG_CLUSTER.to_string(), CLUSTER.to_string()),
    ]
    .into();
    aws.put_cluster(
        &account,
        REGION,
        EksCluster {
            name: CLUSTER.into(),
            status: Some("ACTIVE".into()),
            version: Some("1.34".into()),
            endpoint: Some(customer_url.to_string()),
            certificate_authority: Some(ca_bundle.to_string()),
            ..Default::default()
        },
    );
    aws.put_nodegroup(
        &account,
        REGION,
        Nodegroup {
            name: "ng".into(),
            cluster_name: CLUSTER.into(),
            status: Some("ACTIVE".into()),
            tags: managed.clone(),
            auto_scaling_groups: vec!["asg-ng".into()],
            min_size: Some(1),
            max_size: Some(6),
            desired_size: Some(3),
            instance_types: vec!["m5.large".into()],
        },
    );
    aws.put_group(
        &account,
        REGION,
        AutoScalingGroup {
            name: "asg-ng".into(),
            tags: managed.clone(),
            min_size: 1,
            max_size: 6,
            desired_capacity: 3,
            instance_ids: INSTANCES.iter().map(|s| s.to_string()).collect(),
            instance_states: INSTANCES
                .iter()
                .map(|id| (id.to_string(), "InService".to_string()))
                .collect(),
        },
    );
    for id in INSTANCES {
        let mut tags = managed.clone();
        tags.insert(format!("kubernetes.io/cluster/{CLUSTER}"), "owned".into());
        aws.put_instance(
            &account,
            REGION,
            Instance {
                id: id.into(),
                instance_type: Some("m5.large".into()),
                state: Some("running".into()),
                tags,
            },
        );
    }
}

/// The operator process: the AWS fake with `CROSSGUARD_SCALE_TENANTS` accounts, both
/// controllers against `CROSSGUARD_SCALE_API`. Prints `started`, then answers every
/// `report` line on stdin with one JSON line of figures; stops when stdin closes.
fn operator() {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"));
    let tenants: usize = env("CROSSGUARD_SCALE_TENANTS").parse().expect("tenants");
    let api = env("CROSSGUARD_SCALE_API");
    let customer = env("CROSSGUARD_SCALE_CUSTOMER");
    let store_dir = env("CROSSGUARD_SCALE_STORE");
    // As `crossguard run` does before its runtime starts.
    crossguard::alloc::limit_malloc_arenas(crossguard::alloc::OPERATOR_MALLOC_ARENAS);

    // Logs as `crossguard run` makes them (JSON at info), written nowhere, plus the timing
    // of every reconcile span.
    use tracing_subscriber::prelude::*;
    let samples = timing::Reconciles::default();
    tracing_subscriber::registry()
        .with(samples.clone())
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::sink)
                .with_filter(crossguard::telemetry::filter(None)),
        )
        .init();

    runtime().block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let heap_before = LIVE.load(Ordering::Relaxed);
        let aws = FakeAws::new(clock.clone());
        aws.put_instance_type(InstanceTypeShape {
            name: "m5.large".into(),
            vcpus: 2,
            memory_mib: 8192,
            architecture: "amd64".into(),
            max_pods: Some(29),
        });
        let ca_bundle = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(EKS_CA_PEM)
        };
        for i in 0..tenants {
            seed_account(&aws, i, &customer, &ca_bundle);
        }
        let fake_seeded = LIVE.load(Ordering::Relaxed).saturating_sub(heap_before);

        let client = kube::Client::try_from(kube::Config::new(api.parse().expect("API URL")))
            .expect("client");
        let metrics = Arc::new(Metrics::new());
        let broker = Arc::new(Broker::new(
            aws.clone(),
            clock.clone(),
            metrics.clone(),
            "crossguard-scale-bench",
        ));
        let store =
            Store::open(&format!("file://{store_dir}"), &S3Options::default()).expect("file store");
        let ctx = Arc::new(Context::new(
            client,
            broker,
            metrics.clone(),
            clock,
            store,
            PriceTable::bundled(),
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controllers = tokio::spawn(controller::run(
            ctx,
            Some(NS.to_string()),
            Arc::new(Readiness::default()),
            api,
            async move {
                let _ = stopped.await;
            },
        ));
        println!("started");
        std::io::stdout().flush().expect("stdout");

        let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<String>(4);
        std::thread::spawn(move || {
            for line in std::io::stdin().lines().map_while(Result::ok) {
                if lines_tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = lines.recv().await {
            let mut words = line.split_whitespace();
            if words.next() != Some("report") {
                continue;
            }
            let from: u128 = words
                .next()
                .and_then(|w| w.parse().ok())
                .expect("report FROM_MS [final]");
            let mut report = report(&aws, &metrics, &samples, fake_seeded, tenants, from);
            if words.next() == Some("final") {
                // What the fake's call records hold: what clearing them frees.
                let before = LIVE.load(Ordering::Relaxed);
                aws.clear_calls();
                report["fake_aws_records_bytes"] =
                    json!(before.saturating_sub(LIVE.load(Ordering::Relaxed)));
            }
            println!("{report}");
            std::io::stdout().flush().expect("stdout");
        }
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), controllers).await;
    });
}

/// The operator's figures so far, as one JSON object; latency of the reconciles that
/// ended at or after `from_ms` (ms since the Unix epoch).
fn report(
    aws: &FakeAws,
    metrics: &Metrics,
    samples: &timing::Reconciles,
    fake_seeded: usize,
    tenants: usize,
    from_ms: u128,
) -> Value {
    let (hwm, rss) = rss_kib();
    let mut reconciles = BTreeMap::new();
    for line in metrics.encode().lines() {
        if let Some(rest) = line.strip_prefix("crossguard_reconciles_total{")
            && let Some((labels, value)) = rest.rsplit_once("} ")
        {
            reconciles.insert(labels.to_string(), value.parse::<f64>().unwrap_or(0.0));
        }
    }
    let assumed = aws.calls_of("AssumeRole");
    let mut per_role: BTreeMap<String, usize> = BTreeMap::new();
    for request in aws.assume_role_requests() {
        *per_role.entry(request.role_arn).or_default() += 1;
    }
    let all_once = (0..tenants).all(|i| per_role.get(&role_arn(i)) == Some(&1));
    let (mut secs, mut last_end_ms, mut by_kind) = (Vec::new(), 0, [0usize; 2]);
    for s in samples.0.lock().expect("samples").iter() {
        last_end_ms = last_end_ms.max(s.ended_ms);
        if s.ended_ms >= from_ms {
            secs.push(s.seconds);
            by_kind[usize::from(s.account)] += 1;
        }
    }
    secs.sort_by(f64::total_cmp);
    let at = |q: f64| {
        secs.get(((secs.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    json!({
        "vm_hwm_kib": hwm,
        "vm_rss_kib": rss,
        "live_heap_bytes": LIVE.load(Ordering::Relaxed),
        "fake_aws_seeded_bytes": fake_seeded,
        "aws_calls": aws.calls().len(),
        "assume_role_calls": assumed.len(),
        "assume_role_requests": per_role.values().sum::<usize>(),
        "accounts_assumed": per_role.len(),
        "every_account_assumed_exactly_once": all_once,
        "reconciles": reconciles,
        "latency": {"count": secs.len(), "accounts": by_kind[1], "clusters": by_kind[0],
            "p50": at(0.50), "p99": at(0.99), "max": secs.last().copied().unwrap_or(0.0)},
        "last_end_ms": last_end_ms.to_string(),
    })
}

// ---------------------------------------------------------------------- the orchestrator

/// A child process of this binary, killed on drop.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(role: &str, env: &[(&str, String)]) -> Proc {
        let exe = std::env::current_exe().expect("current exe");
        // A profiler for the operator process alone, e.g.
        // CROSSGUARD_SCALE_OPERATOR_WRAPPER="heaptrack -o /tmp/operator" (split on spaces).
        let wrapper = std::env::var("CROSSGUARD_SCALE_OPERATOR_WRAPPER")
            .ok()
            .filter(|w| role == "operator" && !w.trim().is_empty());
        let mut cmd = match wrapper {
            Some(wrapper) => {
                let mut words = wrapper.split_whitespace();
                let mut cmd = Command::new(words.next().expect("a wrapper command"));
                cmd.args(words).arg(&exe);
                cmd
            }
            None => Command::new(&exe),
        };
        cmd.env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn a bench process");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Proc {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read child");
        assert!(!line.is_empty(), "a bench process exited early");
        line.trim().to_string()
    }

    /// The URL an API server child printed.
    fn url(&mut self) -> String {
        let line = self.line();
        line.strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected: {line}"))
            .to_string()
    }

    /// The operator's figures, latency of the reconciles ended since `from_ms`; `final`
    /// also measures (and clears) the AWS fake's call records.
    fn report(&mut self, from_ms: u128, last: bool) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin");
        let last = if last { " final" } else { "" };
        writeln!(stdin, "report {from_ms}{last}").expect("ask for a report");
        stdin.flush().expect("flush");
        serde_json::from_str(&self.line()).expect("report JSON")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Close stdin (the child stops by itself) and wait up to 20 s.
    fn finish(mut self) {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin.take();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The orchestrator's command line (clap: unknown or repeated flags and bad values are
/// refused with a usage message instead of silently running the defaults).
#[derive(clap::Parser)]
#[command(
    name = "scale",
    about = "One operator, many tenants: see BENCHMARKS.md \"Scale\""
)]
struct Args {
    /// Numbers of tenants to run, ascending, each once (growth per tenant is taken
    /// between consecutive sizes).
    #[arg(long, value_delimiter = ',', default_values_t = SIZES, value_parser = clap::value_parser!(u64).range(1..))]
    tenants: Vec<u64>,
    /// How many times each size runs (a fresh operator each time; medians in the summary).
    #[arg(long, default_value_t = DEFAULT_REPEAT as u64, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn orchestrate() {
    use clap::Parser;
    let args = Args::parse();
    let sizes: Vec<usize> = args.tenants.iter().map(|&n| n as usize).collect();
    if !sizes.windows(2).all(|w| w[0] < w[1]) {
        use clap::CommandFactory;
        Args::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                "--tenants takes ascending sizes, each once: growth per tenant is taken between them",
            )
            .exit();
    }
    let repeat = args.repeat as usize;
    println!(
        "scale benchmark: N CustomerAccounts + N ManagedClusters, one operator \
         (--max-concurrent-reconciles {}), {} cores, each size {repeat} time(s)",
        controller::DEFAULT_MAX_CONCURRENT_RECONCILES,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // Rounds, not one size after another: a change in the machine's load then falls on
    // every size alike instead of on one.
    let mut results: Vec<Vec<Outcome>> = sizes.iter().map(|_| Vec::new()).collect();
    for round in 1..=repeat {
        for (i, &n) in sizes.iter().enumerate() {
            let result = runtime().block_on(run_size(n));
            print_result(&result, round, repeat);
            results[i].push(result);
        }
    }
    print_summary(&results);
}

/// What one size measured.
struct Outcome {
    tenants: usize,
    ready_secs: f64,
    first_report: Value,
    final_report: Value,
    cold_requests: Requests,
    steady_requests: Requests,
    steady_reconciles: f64,
    steady_secs: f64,
    cold_latency: Latency,
    steady_latency: Latency,
    cold_reconciles: f64,
    customer_requests: usize,
}

#[derive(Default, Clone, Copy)]
struct Requests {
    total: usize,
    watches: usize,
    writes: usize,
}

#[derive(Default, Clone, Copy)]
struct Latency {
    count: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

async fn run_size(n: usize) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("requests.jsonl");
    let customer_log = dir.path().join("customer-requests.jsonl");
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).expect("store dir");
    let mut api = Proc::spawn(
        "apiserver",
        &[("CROSSGUARD_SCALE_REQUEST_LOG", log.display().to_string())],
    );
    let api_url = api.url();
    let mut customer = Proc::spawn(
        "customer",
        &[(
            "CROSSGUARD_SCALE_REQUEST_LOG",
            customer_log.display().to_string(),
        )],
    );
    let customer_url = customer.url();

    let mut config = kube::Config::new(api_url.parse().expect("url"));
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(BENCH_AGENT),
    ));
    let client = kube::Client::try_from(config).expect("client");
    let seeding = Instant::now();
    seed_management(&client, n).await;
    eprintln!(
        "[{n}] seeded {n} accounts, Secrets and clusters in {:.1}s",
        seeding.elapsed().as_secs_f64()
    );

    let (mut seen, watches) = watch_ready(&client);
    // The watches have listed (nothing is Ready yet) before the operator starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut operator = Proc::spawn(
        "operator",
        &[
            ("CROSSGUARD_SCALE_TENANTS", n.to_string()),
            ("CROSSGUARD_SCALE_API", api_url.clone()),
            ("CROSSGUARD_SCALE_CUSTOMER", customer_url.clone()),
            ("CROSSGUARD_SCALE_STORE", store.display().to_string()),
            ("RUST_LOG", "info".into()),
        ],
    );
    if std::env::var_os("CROSSGUARD_SCALE_OPERATOR_WRAPPER").is_some() {
        // The wrapper may print about itself first.
        while operator.line() != "started" {}
    } else {
        assert_eq!(operator.line(), "started");
    }
    let started = Instant::now();
    wait_ready(&mut seen, n, 1, &operator).await;
    let ready_secs = started.elapsed().as_secs_f64();
    eprintln!("[{n}] all {} Ready after {ready_secs:.1}s", 2 * n);

    // Let the reconciles that Ready itself triggers (a cluster is re-queued when its
    // account's status changes) finish, then take the cold-start figures.
    let first_report = wait_quiet(&mut operator, 0).await;
    let cold_requests = count_requests(&log);
    let cold_latency = latency(&first_report);
    let cold_reconciles = total_reconciles(&first_report);

    // Steady state: every tenant changed once, all sessions cached. Each cluster gets a
    // new spec (a new generation, so a full analysis runs again) and each account a new
    // annotation (a re-verification through its cached session).
    let steady_from = now_ms();
    let touched = Instant::now();
    touch_all(&client, n).await;
    eprintln!(
        "[{n}] changed all {} objects in {:.1}s",
        2 * n,
        touched.elapsed().as_secs_f64()
    );
    // Each cluster was created at generation 1 and changed once.
    wait_ready(&mut seen, n, 2, &operator).await;
    wait_quiet(&mut operator, steady_from).await;
    let final_report = operator.report(steady_from, true);
    let steady_end_ms = last_end(&final_report);
    let steady_latency = latency(&final_report);
    let steady_reconciles = total_reconciles(&final_report) - cold_reconciles;
    let steady_secs = steady_end_ms.saturating_sub(steady_from) as f64 / 1000.0;
    let all_requests = count_requests(&log);
    let steady_requests = Requests {
        total: all_requests.total - cold_requests.total,
        watches: all_requests.watches - cold_requests.watches,
        writes: all_requests.writes - cold_requests.writes,
    };
    let customer_requests = count_requests(&customer_log).total;

    watches.iter().for_each(|w| w.abort());
    operator.finish();
    api.finish();
    customer.finish();
    Outcome {
        tenants: n,
        ready_secs,
        first_report,
        final_report,
        cold_requests,
        steady_requests,
        steady_reconciles,
        steady_secs,
        cold_latency,
        steady_latency,
        cold_reconciles,
        customer_requests,
    }
}

/// The CRDs, the namespace, and for each tenant its account, the account's ExternalId
/// Secret (controlled by the account, as the operator creates it) and its cluster.
async fn seed_management(client: &kube::Client, n: usize) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [CustomerAccount::crd(), ManagedCluster::crd()] {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("crd");
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace"),
        )
        .await
        .expect("namespace");
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), NS);
    let clusters: Api<ManagedCluster> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (accounts, clusters, secrets) = (&accounts, &clusters, &secrets);
            async move {
                let name = format!("tenant-{i:04}");
                let account: CustomerAccount = serde_json::from_value(json!({
                    "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"accountId": account_id(i), "roleArn": role_arn(i),
                        "regions": [REGION], "sessionDuration": "1h"}}))
                .expect("account");
                let account = accounts
                    .create(&PostParams::default(), &account)
                    .await
                    .expect("create account");
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("crossguard-externalid-{name}")),
                        namespace: Some(NS.into()),
                        owner_references: account.controller_owner_ref(&()).map(|o| vec![o]),
                        labels: Some(BTreeMap::from([
                            ("app.kubernetes.io/managed-by".into(), "crossguard".into()),
                            ("crossguard.dev/customer-account".into(), name.clone()),
                        ])),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([(
                        "externalId".to_string(),
                        ByteString(external_id(i).into_bytes()),
                    )])),
                    type_: Some("Opaque".into()),
                    ..Default::default()
                };
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .expect("create secret");
                let cluster: ManagedCluster = serde_json::from_value(json!({
                    "apiVersion": "crossguard.dev/v1alpha1", "kind": "ManagedCluster",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"accountRef": {"name": name}, "region": REGION,
                        "clusterName": CLUSTER, "analysisInterval": "15m"}}))
                .expect("cluster");
                clusters
                    .create(&PostParams::default(), &cluster)
                    .await
                    .expect("create cluster");
            }
        })
        .await;
}

fn is_ready(conditions: &[crossguard::api::Condition]) -> bool {
    crossguard::api::conditions_find(conditions, "Ready").is_some_and(|c| c.is_true())
}

/// What the orchestrator's watches have seen: the Ready accounts, and for each Ready
/// cluster the generation it was last analysed at.
#[derive(Clone, Default, PartialEq)]
struct Seen {
    accounts: std::collections::HashSet<String>,
    clusters: std::collections::HashMap<String, i64>,
}

impl Seen {
    /// Ready clusters analysed at generation `generation` or later.
    fn clusters_at(&self, generation: i64) -> usize {
        self.clusters.values().filter(|g| **g >= generation).count()
    }
}

/// Watch both kinds (one watch each, like the operator's: no polling load on the API
/// server) and publish what is Ready after every event. Abort the tasks when done.
fn watch_ready(
    client: &kube::Client,
) -> (
    tokio::sync::watch::Receiver<Seen>,
    [tokio::task::JoinHandle<()>; 2],
) {
    use kube::runtime::{WatchStreamExt, watcher};
    let (tx, rx) = tokio::sync::watch::channel(Seen::default());
    let tx = Arc::new(tx);
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), NS);
    let clusters: Api<ManagedCluster> = Api::namespaced(client.clone(), NS);
    let account_tx = tx.clone();
    let watching_accounts = tokio::spawn(
        watcher(accounts, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .for_each(move |event| {
                if let Ok(a) = event {
                    let ready = a.status.as_ref().is_some_and(|s| is_ready(&s.conditions));
                    account_tx.send_if_modified(|seen| {
                        if ready {
                            seen.accounts.insert(a.name_any())
                        } else {
                            seen.accounts.remove(&a.name_any())
                        }
                    });
                }
                futures::future::ready(())
            }),
    );
    let watching_clusters = tokio::spawn(
        watcher(clusters, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .for_each(move |event| {
                if let Ok(c) = event {
                    let analysed = c
                        .status
                        .as_ref()
                        .filter(|s| is_ready(&s.conditions))
                        .map(|s| s.observed_generation);
                    tx.send_if_modified(|seen| match analysed {
                        Some(g) => seen.clusters.insert(c.name_any(), g) != Some(g),
                        None => seen.clusters.remove(&c.name_any()).is_some(),
                    });
                }
                futures::future::ready(())
            }),
    );
    (rx, [watching_accounts, watching_clusters])
}

/// Wait until `n` accounts are Ready and `n` clusters Ready at `generation` or later.
async fn wait_ready(
    seen: &mut tokio::sync::watch::Receiver<Seen>,
    n: usize,
    generation: i64,
    operator: &Proc,
) {
    let waited = tokio::time::timeout(
        READY_TIMEOUT,
        seen.wait_for(|s| s.accounts.len() == n && s.clusters_at(generation) == n),
    )
    .await
    .map(|_| ());
    if waited.is_err() {
        let s = seen.borrow();
        panic!(
            "[{n}] only {} accounts Ready and {} clusters Ready at generation {generation} after {READY_TIMEOUT:?} (operator pid {})",
            s.accounts.len(),
            s.clusters_at(generation),
            operator.pid()
        );
    }
}

/// Change every cluster's spec (analysisInterval 15m → 16m: a new generation) and every
/// account's annotations.
async fn touch_all(client: &kube::Client, n: usize) {
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), NS);
    let clusters: Api<ManagedCluster> = Api::namespaced(client.clone(), NS);
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (accounts, clusters) = (&accounts, &clusters);
            async move {
                let name = format!("tenant-{i:04}");
                let spec = json!({"spec": {"analysisInterval": "16m"}});
                clusters
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&spec))
                    .await
                    .expect("patch cluster");
                let touch =
                    json!({"metadata": {"annotations": {"bench.crossguard.dev/touch": "1"}}});
                accounts
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&touch))
                    .await
                    .expect("patch account");
            }
        })
        .await;
}

/// Reports (latency since `from_ms`) until no reconcile has finished for [`QUIET`];
/// returns the last.
async fn wait_quiet(operator: &mut Proc, from_ms: u128) -> Value {
    loop {
        let report = operator.report(from_ms, false);
        let last = last_end(&report);
        if now_ms().saturating_sub(last) >= QUIET.as_millis() {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// When the operator's last reconcile ended, ms since the Unix epoch.
fn last_end(report: &Value) -> u128 {
    report["last_end_ms"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn latency(report: &Value) -> Latency {
    let l = &report["latency"];
    let f = |k: &str| l[k].as_f64().unwrap_or(0.0);
    Latency {
        count: l["count"].as_u64().unwrap_or(0) as usize,
        p50: f("p50"),
        p99: f("p99"),
        max: f("max"),
    }
}

fn total_reconciles(report: &Value) -> f64 {
    report["reconciles"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.as_f64())
        .sum()
}

/// The operator's requests in an API server's log (the orchestrator's are left out).
fn count_requests(log: &Path) -> Requests {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = Requests::default();
    for line in text.lines() {
        let Ok(r) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if r["user_agent"] == BENCH_AGENT {
            continue;
        }
        out.total += 1;
        let query = r["query"].as_str().unwrap_or_default();
        if query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1")
        {
            out.watches += 1;
        }
        if matches!(
            r["method"].as_str(),
            Some("POST" | "PUT" | "PATCH" | "DELETE")
        ) {
            out.writes += 1;
        }
    }
    out
}

fn kib(report: &Value, field: &str) -> f64 {
    report[field].as_f64().unwrap_or(0.0)
}

fn print_result(o: &Outcome, round: usize, rounds: usize) {
    let n = o.tenants;
    let r = &o.final_report;
    println!("\n== {n} CustomerAccounts + {n} ManagedClusters (run {round} of {rounds})");
    println!(
        "  all {} Ready after                 {:.1}s (from the operator's start)",
        2 * n,
        o.ready_secs
    );
    println!(
        "  cold start: reconciles             {} ({:.1}/s over the time to Ready)",
        o.cold_reconciles,
        o.cold_reconciles / o.ready_secs
    );
    println!(
        "  cold start: latency p50/p99/max    {:.3}s / {:.3}s / {:.3}s ({} reconciles)",
        o.cold_latency.p50, o.cold_latency.p99, o.cold_latency.max, o.cold_latency.count
    );
    println!(
        "  cold start: API requests/reconcile {:.2} ({} requests, {} watches, {} writes)",
        o.cold_requests.total as f64 / o.cold_reconciles,
        o.cold_requests.total,
        o.cold_requests.watches,
        o.cold_requests.writes
    );
    println!(
        "  steady state: reconciles/s         {:.1} ({} reconciles in {:.1}s, every tenant changed once)",
        o.steady_reconciles / o.steady_secs,
        o.steady_reconciles,
        o.steady_secs
    );
    println!(
        "  steady state: latency p50/p99/max  {:.3}s / {:.3}s / {:.3}s",
        o.steady_latency.p50, o.steady_latency.p99, o.steady_latency.max
    );
    println!(
        "  steady state: API requests/reconcile {:.2} ({} requests, {} watches, {} writes)",
        o.steady_requests.total as f64 / o.steady_reconciles,
        o.steady_requests.total,
        o.steady_requests.watches,
        o.steady_requests.writes
    );
    println!(
        "  customer API requests              {} ({:.1} per cluster)",
        o.customer_requests,
        o.customer_requests as f64 / n as f64
    );
    println!(
        "  AssumeRole calls                   {} for {n} accounts ({} accounts assumed; exactly once each: {})",
        r["assume_role_calls"], r["accounts_assumed"], r["every_account_assumed_exactly_once"]
    );
    println!(
        "  operator peak RSS (VmHWM)          {:.1} MiB (VmRSS at the end {:.1} MiB; after cold start {:.1} MiB)",
        kib(r, "vm_hwm_kib") / 1024.0,
        kib(r, "vm_rss_kib") / 1024.0,
        kib(&o.first_report, "vm_rss_kib") / 1024.0,
    );
    println!(
        "  live heap at the end               {:.1} MiB (the AWS fake's seeded world: {:.1} KiB per tenant; its records of {} calls: {:.1} KiB per tenant)",
        kib(r, "live_heap_bytes") / 1048576.0,
        kib(r, "fake_aws_seeded_bytes") / 1024.0 / n as f64,
        r["aws_calls"],
        kib(r, "fake_aws_records_bytes") / 1024.0 / n as f64,
    );
    println!("  reconciles by kind and outcome     {}", r["reconciles"]);
}

/// The median of `values` (the mean of the middle two when their number is even); NaN
/// when there are none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `runs` per size (each size's runs in round order): a table of each size's medians, then
/// the growth per tenant between consecutive sizes, from the medians and round by round.
fn print_summary(runs: &[Vec<Outcome>]) {
    if runs.len() < 2 && runs.first().is_none_or(|r| r.len() < 2) {
        return;
    }
    let med = |size: &[Outcome], f: &dyn Fn(&Outcome) -> f64| median(size.iter().map(f).collect());
    let hwm = |o: &Outcome| kib(&o.final_report, "vm_hwm_kib");
    let rss = |o: &Outcome| kib(&o.final_report, "vm_rss_kib");
    let heap = |o: &Outcome| kib(&o.final_report, "live_heap_bytes") / 1024.0;
    let fake = |o: &Outcome| {
        (kib(&o.final_report, "fake_aws_seeded_bytes")
            + kib(&o.final_report, "fake_aws_records_bytes"))
            / 1024.0
    };
    println!(
        "\n== per size: medians of {} run(s) each (peak RSS: min-max of the runs too)",
        runs.iter().map(Vec::len).max().unwrap_or(0)
    );
    println!(
        "  {:>6} {:>10} {:>12} {:>15} {:>14} {:>16} {:>14}",
        "N", "Ready (s)", "HWM (MiB)", "HWM range", "steady rec/s", "API req/rec", "Ready s/tenant"
    );
    for size in runs {
        let Some(first) = size.first() else { continue };
        let (lo, hi) = size
            .iter()
            .map(hwm)
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let ready = med(size, &|o| o.ready_secs);
        println!(
            "  {:>6} {:>10.1} {:>12.1} {:>15} {:>14.1} {:>16.2} {:>14.4}",
            first.tenants,
            ready,
            med(size, &hwm) / 1024.0,
            format!("{:.1}-{:.1}", lo / 1024.0, hi / 1024.0),
            med(size, &|o| o.steady_reconciles / o.steady_secs),
            med(size, &|o| o.steady_requests.total as f64
                / o.steady_reconciles),
            ready / first.tenants as f64
        );
    }
    if runs.len() < 2 {
        return;
    }
    println!("\n== per tenant: growth between sizes (a tenant = one account + one cluster)");
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (Some(a0), Some(b0)) = (a.first(), b.first()) else {
            continue;
        };
        let dn = b0.tenants as f64 - a0.tenants as f64;
        // KiB per tenant from size a to size b of `f` (KiB).
        let step = |fa: f64, fb: f64| (fb - fa) / dn;
        let of_medians = |f: &dyn Fn(&Outcome) -> f64| step(med(a, f), med(b, f));
        let less_fake = |x: &Outcome, y: &Outcome| step(hwm(x), hwm(y)) - step(fake(x), fake(y));
        let by_round: Vec<String> = a
            .iter()
            .zip(b)
            .map(|(x, y)| format!("{:.1}", less_fake(x, y)))
            .collect();
        println!(
            "  {} -> {}, between the medians: peak RSS {:.1} KiB/tenant, RSS at the end {:.1}, live heap {:.1}, \
             of which the AWS fake's world and call records {:.1}: operator peak RSS less the fake {:.1} KiB/tenant; \
             Ready time {:.1} ms/tenant",
            a0.tenants,
            b0.tenants,
            of_medians(&hwm),
            of_medians(&rss),
            of_medians(&heap),
            of_medians(&fake),
            of_medians(&hwm) - of_medians(&fake),
            of_medians(&|o| o.ready_secs) * 1000.0,
        );
        println!(
            "  {} -> {}, round by round: operator peak RSS less the fake {} KiB/tenant",
            a0.tenants,
            b0.tenants,
            by_round.join(", ")
        );
    }
}
