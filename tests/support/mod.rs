//! Shared pieces of the end-to-end tests: the AWS emulator (moto behind our shim), the real
//! kubectl, and the real operator binary, all on loopback. Every process is killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python (from `make tools`), or a clear failure.
pub fn python() -> PathBuf {
    let venv = std::env::var_os("CROSSGUARD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} not found: run `make tools` (or set CROSSGUARD_VENV)",
        py.display()
    );
    py
}

/// The kubectl binary from `make tools`, or a clear failure.
pub fn kubectl_bin() -> PathBuf {
    let path = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools/bin/kubectl"));
    assert!(
        path.exists(),
        "{} not found: run `make tools` (or set KUBECTL)",
        path.display()
    );
    path
}

/// A free loopback port (racy by nature, good enough for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `tests/harness/<script>` with the venv's python on a free loopback port
/// (`--port 0 --port-file dir/<name>.port`, stderr to `dir/<name>.log`), and wait up to
/// `timeout_secs` for it to say which port; returns the process and `http://127.0.0.1:PORT`.
fn start_harness_server(
    dir: &Path,
    script: &str,
    name: &'static str,
    args: &[&str],
    timeout_secs: u64,
) -> (Proc, String) {
    let port_file = dir.join(format!("{name}.port"));
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).expect("harness server log");
    let child = Command::new(python())
        .arg(repo().join("tests/harness").join(script))
        .args(["--port", "0", "--port-file"])
        .arg(&port_file)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    let proc = Proc { child, name };
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file)
            && let Ok(p) = p.trim().parse::<u16>()
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "{script} did not start; see {}",
            log_path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    (proc, format!("http://127.0.0.1:{port}"))
}

/// moto behind `tests/harness/moto_shim.py`, on a free loopback port.
pub struct Moto {
    pub url: String,
    /// Where customer_change.py notes the session keys it acted with.
    harness_keys: PathBuf,
    _proc: Proc,
}

impl Moto {
    /// Start the emulator and wait until it answers.
    pub fn start(dir: &Path) -> Moto {
        let (proc, url) = start_harness_server(dir, "moto_shim.py", "moto", &[], 60);
        Moto {
            url,
            harness_keys: dir.join("harness-keys.txt"),
            _proc: proc,
        }
    }

    /// Seed one customer account with `tests/harness/seed.py`; returns its JSON summary.
    pub fn seed(&self, args: &[&str]) -> serde_json::Value {
        harness_json("seed.py", &self.url, args)
    }

    /// Forget the calls recorded so far.
    pub fn clear_calls(&self) {
        http_request(&self.url, "DELETE", "/_crossguard/calls", "");
    }

    /// Act inside account 111111111111 as its owner would, with
    /// `tests/harness/customer_change.py` (tag changes, instance termination); returns stdout.
    pub fn customer_change(&self, args: &[&str]) -> String {
        let out = Command::new(python())
            .arg(repo().join("tests/harness/customer_change.py"))
            .args(["--endpoint", &self.url])
            .env("CROSSGUARD_HARNESS_KEYS_FILE", &self.harness_keys)
            .args(args)
            .output()
            .expect("run customer_change.py");
        assert!(
            out.status.success(),
            "customer_change.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The calls made by anyone but the harness scripts (customer_change.py), i.e. by the
    /// operator, in arrival order.
    pub fn operator_calls(&self) -> Vec<serde_json::Value> {
        let harness: Vec<String> = std::fs::read_to_string(&self.harness_keys)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        self.calls()
            .into_iter()
            .filter(|c| !harness.iter().any(|k| c["access_key_id"] == k.as_str()))
            .collect()
    }

    /// The account's nodegroups, groups and instance states as AWS has them.
    pub fn customer_state(&self) -> serde_json::Value {
        serde_json::from_str(&self.customer_change(&["state", "prod"])).expect("state JSON")
    }

    /// Arm a fault of the shim (see moto_shim.py: error or delay).
    pub fn fault(&self, fault: serde_json::Value) {
        http_request(&self.url, "POST", "/_crossguard/faults", &fault.to_string());
    }

    /// Wait up to `timeout` until a call of `action` reached the emulator (a call held by a
    /// delay fault is recorded while it is held).
    pub async fn wait_for_call(&self, action: &str, timeout: Duration) {
        wait_for(&format!("a {action} call"), timeout, || async {
            self.calls()
                .iter()
                .any(|c| c["action"] == action)
                .then_some(())
        })
        .await;
    }

    /// The environment a self-hosted operator needs to act as the `crossguard-operator`
    /// user that `trust.py setup` printed in `setup`.
    pub fn trusted_operator_env(setup: &serde_json::Value) -> [(&'static str, &str); 2] {
        let user = &setup["crossguard-operator"];
        [
            (
                "AWS_ACCESS_KEY_ID",
                user["access_key_id"].as_str().expect("access_key_id"),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                user["secret_access_key"]
                    .as_str()
                    .expect("secret_access_key"),
            ),
        ]
    }

    /// How many calls of `action` the emulator served (or holds).
    pub fn count_calls(&self, action: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c["action"] == action)
            .count()
    }

    /// Disarm every fault of the shim.
    pub fn clear_faults(&self) {
        http_request(&self.url, "DELETE", "/_crossguard/faults", "");
    }

    /// Every AWS call the emulator served, in order.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        let body = http_get(&self.url, "/_crossguard/calls");
        serde_json::from_str(&body).expect("calls JSON")
    }
}

/// Run `tests/harness/trust.py ARGS` against the emulator (a role in account 123456789012
/// whose trust policy moto enforces, requiring one ExternalId); returns its JSON.
pub fn trust(moto: &Moto, args: &[&str]) -> serde_json::Value {
    harness_json("trust.py", &moto.url, args)
}

/// Run `tests/harness/SCRIPT --endpoint ENDPOINT ARGS`, require success, and return the
/// JSON it prints.
fn harness_json(script: &str, endpoint: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(repo().join("tests/harness").join(script))
        .args(["--endpoint", endpoint])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} prints JSON: {e}"))
}

/// The customer changes the trust policy of the role `trust.py setup` made (`setup` is
/// what it printed) to require `external_id`, with the admin key setup printed.
pub fn trust_update(moto: &Moto, setup: &serde_json::Value, external_id: &str) {
    let admin = &setup["crossguard-test-admin"];
    trust(
        moto,
        &[
            "update",
            "--external-id",
            external_id,
            "--admin-key",
            admin["access_key_id"].as_str().expect("admin key"),
            "--admin-secret",
            admin["secret_access_key"].as_str().expect("admin secret"),
        ],
    );
}

/// Spot prices, Reserved Instances and a Savings Plan for the seeded cluster's account (see
/// moto_shim.py's controls), so the operator makes every billing read the read-only
/// template grants: current spot prices for m5.large and t3.large in us-east-1a; a zonal
/// RI for one m5.large in us-east-1a (No Upfront, $0.06/h); a regional t3.large RI that
/// expired ten days ago; and an EC2 Instance Savings Plan for m5 in us-east-1 of $0.20/h at
/// $0.06/h per m5.large, so that the two m5.large nodes the RI leaves use $0.12/h of it
/// (60%) and the t3.large nodes stay on demand.
pub fn seed_billing(moto: &Moto, account: &str) {
    use serde_json::json;
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("now");
    let day = jiff::SignedDuration::from_hours(24);
    let at = |days: i64| (now + day * days as i32).to_string();
    let post = |path: &str, body: serde_json::Value| {
        let out = http_request(&moto.url, "POST", path, &body.to_string());
        assert!(out.contains("\"ok\""), "{path}: {out}");
    };
    post(
        "/_crossguard/spot-prices",
        json!({"account_id": account, "region": "us-east-1", "prices": [
            {"instance_type": "m5.large", "availability_zone": "us-east-1a", "product_description": "Linux/UNIX", "price": 0.04, "timestamp": at(-1)},
            {"instance_type": "m5.large", "availability_zone": "us-east-1a", "product_description": "Linux/UNIX", "price": 0.035, "timestamp": at(0)},
            {"instance_type": "t3.large", "availability_zone": "us-east-1a", "product_description": "Linux/UNIX", "price": 0.025, "timestamp": at(0)},
        ]}),
    );
    post(
        "/_crossguard/reserved-instances",
        json!({"account_id": account, "region": "us-east-1", "reserved_instances": [
            {"id": "ri-zonal-m5", "instance_type": "m5.large", "availability_zone": "us-east-1a", "count": 1,
             "state": "active", "start": at(-100), "end": at(265), "hourly_charge": 0.06},
            {"id": "ri-expired-t3", "instance_type": "t3.large", "count": 2,
             "state": "retired", "start": at(-375), "end": at(-10), "hourly_charge": 0.05},
        ]}),
    );
    post(
        "/_crossguard/savings-plans",
        json!({"account_id": account, "savings_plans": [
            {"id": "sp-ec2-m5", "type": "EC2Instance", "state": "active", "commitment": 0.2,
             "region": "us-east-1", "ec2_instance_family": "m5",
             "start": at(-30), "end": at(335), "rates": [
                {"instance_type": "m5.large", "region": "us-east-1", "product_description": "Linux/UNIX", "rate": 0.06},
            ]},
        ]}),
    );
}

/// A plain HTTP/1.0 GET on loopback; returns the body.
pub fn http_get(base: &str, path: &str) -> String {
    http_request(base, "GET", path, "")
}

/// A plain HTTP/1.0 request with a JSON body on loopback; returns the response body.
pub fn http_request(base: &str, method: &str, path: &str, body: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Run kubectl against `kubeconfig`; returns (success, stdout, stderr).
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run kubectl and require success.
pub fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(kubeconfig, args);
    assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
    out
}

/// The real operator binary, pointed at the fake API server and the emulator.
pub struct Operator {
    pub http: String,
    pub log: PathBuf,
    proc: Option<Proc>,
}

impl Operator {
    /// Start `crossguard run` with `extra_env` on top of the standard emulator settings.
    pub fn start(
        dir: &Path,
        kubeconfig: &Path,
        aws_endpoint: &str,
        extra_env: &[(&str, &str)],
    ) -> Operator {
        let binary = Path::new(env!("CARGO_BIN_EXE_crossguard"));
        Operator::start_binary(binary, dir, kubeconfig, aws_endpoint, extra_env)
    }

    /// [`start`](Self::start) with another build of the operator (e.g. an older one, to
    /// compare builds in one benchmark run).
    pub fn start_binary(
        binary: &Path,
        dir: &Path,
        kubeconfig: &Path,
        aws_endpoint: &str,
        extra_env: &[(&str, &str)],
    ) -> Operator {
        let port = free_port();
        let log_path = dir.join(format!("operator-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("operator log");
        let mut cmd = Command::new(binary);
        cmd.args(["run", "--http-addr", &format!("127.0.0.1:{port}")])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info,crossguard=debug")
            .env(
                "CROSSGUARD_STORE_URL",
                format!("file://{}", dir.join("store").display()),
            )
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start crossguard");
        LOG_DIRS.lock().unwrap().push(dir.to_path_buf());
        let op = Operator {
            http: format!("http://127.0.0.1:{port}"),
            log: log_path,
            proc: Some(Proc {
                child,
                name: "crossguard",
            }),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(op.http.trim_start_matches("http://")).is_err() {
            assert!(
                Instant::now() < deadline,
                "operator did not start:\n{}",
                op.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        op
    }

    /// Everything the operator logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The operator's process id, to signal it.
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("operator running").child.id()
    }

    /// How the operator exited, once it has (without waiting).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        let proc = self.proc.as_mut()?;
        proc.child.try_wait().expect("operator status")
    }

    /// Stop the operator (SIGKILL) and wait for it.
    pub fn stop(&mut self) {
        self.proc.take();
    }
}

/// Directories whose `*.log` files are printed when a wait times out.
static LOG_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Print the tail of every log of the harness, to explain a failure.
pub fn dump_logs() {
    for dir in LOG_DIRS.lock().unwrap().iter() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                eprintln!("===== {} (last {} lines)", path.display(), tail.len());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Poll `check` every 200ms until it returns Some, or panic with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            dump_logs();
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The content of a file of the operator's file store (`<dir>/store/…`), opened by
/// `crossguard store-get` with the local key Secret the operator under test created (the
/// files hold ciphertext); plaintext files (keyring entries, deletion records, prices)
/// come back as they are.
pub fn read_stored(path: &Path) -> String {
    let store = path
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("store"))
        })
        .expect("a file under <dir>/store");
    let kubeconfig = store.parent().unwrap().join("kubeconfig");
    let key = path.strip_prefix(store).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .arg("store-get")
        .arg(key)
        .env("KUBECONFIG", &kubeconfig)
        .env(
            "CROSSGUARD_STORE_URL",
            format!("file://{}", store.display()),
        )
        .output()
        .expect("crossguard store-get");
    assert!(
        out.status.success(),
        "store-get {}: {}",
        key.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stored objects are UTF-8")
}

/// Lines of a reader, for scanning logs.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::File::open(path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default()
}

/// A secret planted in the customer cluster's workloads; it must never leave the cluster.
pub const WORKLOAD_CANARY: &str = "wOrKlOaDcAnArY-7f3e9b2a";

/// Fill a fake API server playing the customer's EKS cluster: one Node per seeded instance
/// (providerID, instance type and nodegroup labels as EKS sets them), a lightly used
/// Deployment, a DaemonSet pod per node, and a Secret and a ConfigMap that crossguard must
/// never read. Workloads carry a planted secret in env, args and last-applied annotation.
pub fn seed_customer_cluster(server: &fake_apiserver::FakeApiServer, seeded: &serde_json::Value) {
    use serde_json::json;
    let mut nodes = Vec::new();
    for (ng, group) in seeded["nodegroups"].as_object().expect("nodegroups") {
        let instance_type = group["instance_type"].as_str().unwrap_or("m5.large");
        for id in group["instances"].as_array().expect("instances") {
            let id = id.as_str().unwrap();
            let name = format!("ip-{id}.ec2.internal");
            server
                .seed(json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {
                        "node.kubernetes.io/instance-type": instance_type,
                        "eks.amazonaws.com/nodegroup": ng,
                        "topology.kubernetes.io/region": "us-east-1",
                        "topology.kubernetes.io/zone": "us-east-1a",
                        "kubernetes.io/hostname": name,
                    }},
                    "spec": {"providerID": format!("aws:///us-east-1a/{id}")},
                    "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"}},
                }))
                .expect("seed node");
            nodes.push(name);
        }
    }
    server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .ok();
    let secret_env = json!([
        {"name": "DB_PASSWORD", "value": WORKLOAD_CANARY},
        {"name": "LOG_LEVEL", "value": "info"},
    ]);
    let template = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "web", "image": "nginx:1.27",
            "args": [format!("--api-token={WORKLOAD_CANARY}")],
            "env": secret_env,
            "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}},
        }]},
    });
    server
        .seed(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "dep-web",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{{\"password\":\"{WORKLOAD_CANARY}\"}}")}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        }))
        .expect("seed deployment");
    server
        .seed(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-5d4f", "namespace": "shop", "uid": "rs-web",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "dep-web", "controller": true}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        }))
        .expect("seed replicaset");
    for (i, node) in nodes.iter().enumerate() {
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!(node);
        if i < 3 {
            server
                .seed(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("web-5d4f-{i}"), "namespace": "shop", "labels": {"app": "web"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "rs-web", "controller": true}]},
                    "spec": spec, "status": {"phase": "Running"},
                }))
                .expect("seed pod");
        }
        server
            .seed(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("node-agent-{i}"), "namespace": "kube-system",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "node-agent", "uid": "ds", "controller": true}]},
                "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "agent:1", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]},
                "status": {"phase": "Running"},
            }))
            .expect("seed daemonset pod");
    }
    server
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
            "data": {"password": "aHVudGVyMg=="}}))
        .expect("seed secret");
    server
        .seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"},
            "data": {"dsn": format!("postgres://app:{WORKLOAD_CANARY}@db/app")}}))
        .expect("seed configmap");
}

/// The usual end-to-end setting: a management cluster (fake API server + kubeconfig), the
/// AWS emulator with account 111111111111 and its EKS cluster `prod` seeded, and a second
/// fake API server playing that cluster, filled by [`seed_customer_cluster`].
pub struct Env {
    /// Holds logs, the kubeconfig and the file store.
    pub dir: tempfile::TempDir,
    /// The management cluster.
    pub server: fake_apiserver::FakeApiServer,
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// The AWS emulator (the seeder's calls already cleared).
    pub moto: Moto,
    /// What seed.py created.
    pub seeded: serde_json::Value,
    /// The customer's cluster.
    pub customer: fake_apiserver::FakeApiServer,
}

impl Env {
    /// Start everything; no CRDs or resources are applied yet.
    pub async fn start() -> Env {
        crossguard::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let server = fake_apiserver::FakeApiServer::start()
            .await
            .expect("fake apiserver");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("write kubeconfig");
        let moto = Moto::start(dir.path());
        let seeded = moto.seed(&["--account-id", "111111111111", "--cluster-name", "prod"]);
        seed_billing(&moto, "111111111111");
        moto.clear_calls();
        let customer = fake_apiserver::FakeApiServer::start()
            .await
            .expect("customer cluster");
        seed_customer_cluster(&customer, &seeded);
        customer.clear_requests();
        Env {
            dir,
            server,
            kubeconfig,
            moto,
            seeded,
            customer,
        }
    }

    /// kubectl against the management cluster, requiring success.
    pub fn kubectl(&self, args: &[&str]) -> String {
        kubectl_ok(&self.kubeconfig, args)
    }

    /// Apply the CRDs, create namespace `acme`, apply `examples/`, set CustomerAccount
    /// acme's role ARN as onboarding does once the customer's role exists (the example
    /// has none: [`set_example_role`]) and point ManagedCluster acme-prod at the customer
    /// cluster (moto's EKS endpoints are not real servers).
    pub fn apply_examples(&self) {
        self.kubectl(&[
            "apply",
            "--validate=false",
            "-f",
            repo().join("crds").to_str().unwrap(),
        ]);
        self.kubectl(&["create", "namespace", "acme"]);
        self.kubectl(&[
            "apply",
            "--validate=false",
            "-f",
            repo().join("examples").to_str().unwrap(),
        ]);
        set_example_role(&self.kubeconfig);
        let endpoint = format!(
            r#"{{"spec":{{"apiEndpoint":{{"url":"{}"}}}}}}"#,
            self.customer.url()
        );
        patch_acme_prod(&self.kubeconfig, &endpoint);
    }

    /// Put CustomerAccount acme and ManagedCluster acme-prod in Automated mode, the
    /// cluster with the given `spec.automation`.
    pub fn automate(&self, automation: serde_json::Value) {
        merge_patch_acme(
            &self.kubeconfig,
            "customeraccount",
            "acme",
            r#"{"spec":{"mode":"Automated"}}"#,
        );
        self.set_automation(automation);
    }

    /// Set ManagedCluster acme-prod's `spec.automation` (merged), in Automated mode.
    pub fn set_automation(&self, automation: serde_json::Value) {
        let patch = serde_json::json!({"spec": {"mode": "Automated", "automation": automation}})
            .to_string();
        self.kubectl(&[
            "patch",
            "managedcluster",
            "acme-prod",
            "-n",
            "acme",
            "--type",
            "merge",
            "-p",
            &patch,
        ]);
    }

    /// A kube client for the management cluster.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("config");
        kube::Client::try_from(config).expect("client")
    }

    /// Start the operator against this setting.
    pub fn operator(&self, extra_env: &[(&str, &str)]) -> Operator {
        Operator::start(self.dir.path(), &self.kubeconfig, &self.moto.url, extra_env)
    }
}

/// A plain HTTP/1.0 GET on loopback; returns the status code and the body (0 and an empty
/// body when nothing answers).
/// `crossguard analyze -o json` (plus `extra` flags) on a `kubectl get … -o json` dump of
/// the customer cluster `customer`, as a user would make it; the dump is written into `dir`.
pub fn analyze_customer_dump(
    customer: &fake_apiserver::FakeApiServer,
    dir: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let kubeconfig = dir.join("customer.kubeconfig");
    customer.write_kubeconfig(&kubeconfig).unwrap();
    let dump = dir.join("customer-dump.json");
    let objects = "nodes,pods,deployments,replicasets,statefulsets,daemonsets,jobs,cronjobs,pdb";
    std::fs::write(
        &dump,
        kubectl_ok(&kubeconfig, &["get", objects, "-A", "-o", "json"]),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args([
            "analyze",
            "--snapshot",
            dump.to_str().unwrap(),
            "-o",
            "json",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The figures an offline analysis with the operator's inventory must share with the
/// operator's stored report: costs, savings, what is unpriced, and the recommendations.
pub fn assert_same_figures(offline: &serde_json::Value, stored: &serde_json::Value) {
    for field in [
        "currentMonthlyCost",
        "optimizedMonthlyCost",
        "savings",
        "unpricedNodes",
        "recommendations",
        "priceSources",
    ] {
        assert_eq!(offline[field], stored[field], "{field}");
    }
}

/// The role seed.py creates in account 111111111111.
pub const EXAMPLE_ROLE: &str = "arn:aws:iam::111111111111:role/crossguard-access";

/// `kubectl patch KIND NAME -n acme --type merge -p PATCH` (KIND `customeraccount` or
/// `managedcluster`), failing the test if kubectl fails.
pub fn merge_patch_acme(kubeconfig: &Path, kind: &str, name: &str, patch: &str) {
    kubectl_ok(
        kubeconfig,
        &[
            "patch", kind, name, "-n", "acme", "--type", "merge", "-p", patch,
        ],
    );
}

/// Set CustomerAccount acme's `spec.roleArn` to [`EXAMPLE_ROLE`] with `kubectl patch`, the
/// last onboarding step (examples/customeraccount.yaml is applied without a role).
pub fn set_example_role(kubeconfig: &Path) {
    let patch = format!(r#"{{"spec":{{"roleArn":"{EXAMPLE_ROLE}"}}}}"#);
    merge_patch_acme(kubeconfig, "customeraccount", "acme", &patch);
}

/// `kubectl patch --type merge` of ManagedCluster acme-prod in namespace acme with `patch`.
pub fn patch_acme_prod(kubeconfig: &Path, patch: &str) {
    merge_patch_acme(kubeconfig, "managedcluster", "acme-prod", patch);
}

/// What an audit observer heard of one call: service, operation, target, outcome,
/// mutating, and whether a request id came with it.
pub type Heard = (String, String, String, String, bool, bool);

/// An audit observer that keeps what it hears, in order.
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<Heard>>);

impl crossguard::audit::CallObserver for Recorder {
    fn call(
        &self,
        service: &str,
        operation: &str,
        target: &str,
        outcome: &str,
        request_id: Option<&str>,
        mutating: bool,
    ) {
        self.0.lock().unwrap().push((
            service.into(),
            operation.into(),
            target.into(),
            outcome.into(),
            mutating,
            request_id.is_some(),
        ));
    }
}

pub fn http_status(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).is_err() {
        return (0, String::new());
    }
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

/// Write `yaml` to a file in `dir` and `kubectl apply` it.
pub fn kubectl_apply_yaml(dir: &Path, kubeconfig: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write manifest");
    kubectl_ok(
        kubeconfig,
        &["apply", "--validate=false", "-f", path.to_str().unwrap()],
    )
}

/// `crossguard onboarding-template ARGS`, parsed.
pub fn onboarding_template(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .arg("onboarding-template")
        .args(args)
        .output()
        .expect("run onboarding-template");
    assert!(
        out.status.success(),
        "onboarding-template {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("template JSON")
}

/// Every action an Allow statement of the template's role policies grants.
pub fn granted_actions(template: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let mut granted = std::collections::BTreeSet::new();
    for resource in template["Resources"].as_object().unwrap().values() {
        for p in resource["Properties"]["Policies"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            for st in p["PolicyDocument"]["Statement"].as_array().unwrap() {
                if st["Effect"] != "Allow" {
                    continue;
                }
                match &st["Action"] {
                    serde_json::Value::String(a) => {
                        granted.insert(a.clone());
                    }
                    serde_json::Value::Array(a) => {
                        granted.extend(a.iter().filter_map(|x| x.as_str().map(String::from)))
                    }
                    _ => {}
                }
            }
        }
    }
    granted
}

/// `service:Action` of every call the operator made inside account 111111111111 (the
/// harness's own calls excluded; GetCallerIdentity needs no grant).
pub fn operator_actions(moto: &Moto) -> std::collections::BTreeSet<String> {
    moto.operator_calls()
        .iter()
        .filter(|c| c["account_id"] == "111111111111")
        .filter(|c| c["action"] != "GetCallerIdentity" && c["action"] != "AssumeRole")
        .map(|c| {
            format!(
                "{}:{}",
                c["service"].as_str().unwrap_or_default(),
                c["action"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// The customer deploys the role from `template` (its trust and inline policies replace
/// the seeded ones) and attaches a guardrail policy of their own that only denies, as
/// organisations often do; crossguard's posture check reads both.
pub fn customer_deploys(moto: &Moto, dir: &Path, template: &serde_json::Value) {
    let path = dir.join("crossguard-role.json");
    std::fs::write(&path, template.to_string()).expect("write template");
    moto.customer_change(&["deploy-template", path.to_str().unwrap()]);
    let guardrail = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "NoLeavingTheOrganization", "Effect": "Deny",
        "Action": "organizations:LeaveOrganization", "Resource": "*"}]});
    moto.customer_change(&["attach-policy", "org-guardrail", &guardrail.to_string()]);
}

/// `tests/harness/receiver.py`: a local stand-in for Slack's Web API and webhooks.
pub struct Receiver {
    pub url: String,
    _proc: Proc,
}

impl Receiver {
    /// Start it on a free port, logging to `dir/receiver.jsonl`.
    pub fn start(dir: &Path) -> Receiver {
        Receiver::start_with(dir, &[])
    }

    /// The same with extra arguments (e.g. `--token T`).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Receiver {
        let log = dir.join("receiver.jsonl");
        let mut args = vec!["--log", log.to_str().unwrap(), "--exit-with-parent"];
        args.extend_from_slice(extra);
        let (proc, url) = start_harness_server(dir, "receiver.py", "receiver", &args, 30);
        Receiver { url, _proc: proc }
    }

    /// Every request it logged.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&http_get(&self.url, "/_receiver/messages")).unwrap_or_default()
    }
}

/// A fake management API server holding crossguard's two CRDs and the namespace
/// `namespace`, with a kube client for it; the crypto provider is installed first.
pub async fn management_server(namespace: &str) -> (fake_apiserver::FakeApiServer, kube::Client) {
    use crossguard::api::{CustomerAccount, ManagedCluster};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;

    crossguard::install_crypto_provider();
    let server = fake_apiserver::FakeApiServer::start()
        .await
        .expect("fake apiserver");
    let client = kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    for crd in [CustomerAccount::crd(), ManagedCluster::crd()] {
        crds.create(&kube::api::PostParams::default(), &crd)
            .await
            .expect("crd");
    }
    server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        .expect("namespace");
    (server, client)
}
