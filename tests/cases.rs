//! The shared fault cases (`tests/cases/*.json`, copied from the team's `shared/cases/`;
//! expected values in `tests/cases/README.md`) run through the real binary:
//! `crossguard analyze --snapshot FILE -o json` and `crossguard sanitize < FILE`. Each
//! test asserts the figures the README gives, so a number that would not survive a
//! comparison with the customer's bill fails here.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use serde_json::Value;

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(name)
}

fn crossguard(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("stdin accepts the case");
    }
    drop(input);
    child.wait_with_output().expect("the binary finishes")
}

/// `crossguard analyze` on `path` with `extra` arguments: (JSON report, text summary).
fn analyze(path: &Path, extra: &[&str]) -> (Value, String) {
    let path = path.to_str().unwrap();
    let mut args = vec!["analyze", "--snapshot", path, "-o", "json"];
    args.extend_from_slice(extra);
    let out = crossguard(&args, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "analyze -o json failed: {stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("-o json prints JSON");
    let mut args = vec!["analyze", "--snapshot", path];
    args.extend_from_slice(extra);
    let out = crossguard(&args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 summary");
    assert_no_negative_zero(&json, &text);
    (json, text)
}

/// No money figure anywhere prints as a negative zero.
fn assert_no_negative_zero(json: &Value, text: &str) {
    assert!(!text.contains("$-0.00"), "{text}");
    assert!(!text.contains("-0.0%"), "{text}");
    let rendered = serde_json::to_string(json).unwrap();
    assert!(!rendered.contains("-0.0"), "{rendered}");
}

/// Cents, to compare money without float noise.
fn cents(v: &Value) -> i64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    (x * 100.0).round() as i64
}

/// The report's line for node `name`.
fn node<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .expect("the report lists its nodes")
        .iter()
        .find(|n| n["node"] == name)
        .unwrap_or_else(|| panic!("no line for node {name} in {report:#}"))
}

fn removable(report: &Value) -> Vec<String> {
    let mut names: Vec<String> = report["consolidation"]["removableNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn windows_node_is_priced_only_from_a_windows_price() {
    // Offline, the bundled table has no Windows price: the node is unpriced, not Linux.
    let (r, text) = analyze(&case("windows-node.json"), &[]);
    let win = node(&r, "win-a");
    assert_eq!(win["operatingSystem"], "windows");
    assert!(win["monthlyCost"].is_null(), "{win:#}");
    let reason = win["unpricedReason"].as_str().expect("a reason");
    assert!(reason.contains("Windows"), "{reason}");
    assert_eq!(cents(&node(&r, "lin-a")["monthlyCost"]), 7008);
    assert_eq!(cents(&r["currentMonthlyCost"]), 2 * 7008);
    assert_eq!(r["unpricedNodes"], 1);
    assert!(text.contains("win-a"), "{text}");

    // The storefront pods can only move between the two Linux nodes: one goes, not both.
    let gone = removable(&r);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(gone[0].starts_with("lin-"), "{gone:?}");
    assert_eq!(cents(&r["savings"]["consolidation"]), 7008);
    assert_eq!(node(&r, "win-a")["removable"], false);

    // A prices file with a Windows price (m5.large, Windows, license included) prices it.
    let dir = tempfile::tempdir().unwrap();
    let prices = write_temp(
        dir.path(),
        "windows-prices.json",
        br#"{"source":"AWS EC2 on-demand pricing, Windows (license included)","asOf":"2026-11",
            "onDemandHourlyByOs":{"windows":{"us-east-1":{"m5.large":0.188}}}}"#,
    );
    let (r, _) = analyze(
        &case("windows-node.json"),
        &["--prices-file", prices.to_str().unwrap()],
    );
    let win = node(&r, "win-a");
    assert_eq!(cents(&win["monthlyCost"]), 13724, "{win:#}");
    assert!(win["unpricedReason"].is_null());
    assert_eq!(cents(&r["currentMonthlyCost"]), 2 * 7008 + 13724);
    assert_eq!(r["unpricedNodes"], 0);
    // Its pod fits on no other Windows node, and no Linux pod lands on it.
    assert_eq!(win["removable"], false);
    assert_eq!(win["keptBy"]["rule"], "no-room", "{win:#}");
    assert_eq!(removable(&r).len(), 1);
    assert_eq!(cents(&r["savings"]["consolidation"]), 7008);
    assert!(
        r["priceSources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["source"].as_str().unwrap().contains("Windows")),
        "{:#}",
        r["priceSources"]
    );
}

#[test]
fn fargate_pod_is_priced_from_capacity_provisioned_and_never_consolidated() {
    let (r, _) = analyze(&case("fargate-pod.json"), &[]);
    let fargate = node(&r, "fargate-ip-10-1-9-20.ec2.internal");
    assert_eq!(fargate["capacityType"], "fargate");
    // (0.5 × $0.04048 + 1 × $0.004445) × 730 = $18.02
    assert_eq!(cents(&fargate["monthlyCost"]), 1802, "{fargate:#}");
    assert_eq!(cents(&r["currentMonthlyCost"]), 7008 + 1802);
    assert_eq!(r["unpricedNodes"], 0);
    // Never removable, and nothing is planned onto it: the m5.large's pod has nowhere to go.
    assert_eq!(fargate["removable"], false);
    assert_eq!(fargate["keptBy"]["rule"], "fargate");
    assert!(removable(&r).is_empty());
    assert_eq!(r["consolidation"]["podsMoved"], 0);
    // Never right-sized and never a spot candidate.
    let group = fargate["nodegroup"].as_str().unwrap();
    for rec in r["recommendations"].as_array().unwrap() {
        assert_ne!(rec["nodegroup"], group, "{rec:#}");
    }
}

#[test]
fn previous_generation_types_are_priced_from_the_table() {
    let (r, _) = analyze(&case("previous-generation.json"), &[]);
    assert_eq!(cents(&node(&r, "old-1")["monthlyCost"]), 14600);
    assert_eq!(cents(&node(&r, "new-1")["monthlyCost"]), 7008);
    assert_eq!(cents(&r["currentMonthlyCost"]), 21608);
    assert_eq!(r["unpricedNodes"], 0);
}

#[test]
fn no_saving_is_claimed_by_moving_pods_onto_a_node_of_unknown_price() {
    // The same case with the old node's type unknown to any table.
    let raw = std::fs::read_to_string(case("previous-generation.json")).unwrap();
    let raw = raw.replace("\"m4.xlarge\"", "\"x9.unknown\"");
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "unknown.json", raw.as_bytes());
    let (r, text) = analyze(&path, &[]);
    assert_eq!(r["unpricedNodes"], 1);
    assert_eq!(cents(&r["currentMonthlyCost"]), 7008);
    assert!(removable(&r).is_empty(), "{:#}", r["consolidation"]);
    assert_eq!(cents(&r["savings"]["consolidation"]), 0);
    assert_eq!(
        cents(&r["optimizedMonthlyCost"]),
        7008 - cents(&r["savings"]["total"])
    );
    assert!(!text.contains("100.0%"), "{text}");
    let old = node(&r, "old-1");
    assert!(old["monthlyCost"].is_null());
    assert!(
        old["unpricedReason"]
            .as_str()
            .unwrap()
            .contains("x9.unknown"),
        "{old:#}"
    );
}

#[test]
fn scale_down_follows_cluster_autoscaler_defaults() {
    let (r, text) = analyze(&case("scale-down-blockers.json"), &[]);
    assert_eq!(r["scaleDownProfile"], "cluster-autoscaler");
    assert!(text.contains("cluster-autoscaler"), "{text}");
    assert_eq!(removable(&r), ["n3", "n4"]);
    assert_eq!(cents(&r["savings"]["consolidation"]), 14016);
    let n1 = node(&r, "n1");
    assert_eq!(n1["keptBy"]["rule"], "local-storage", "{n1:#}");
    assert!(n1["keptBy"]["detail"].as_str().unwrap().contains("scratch"));
    let n2 = node(&r, "n2");
    assert_eq!(
        n2["keptBy"]["rule"], "kube-system-pod-without-pdb",
        "{n2:#}"
    );
    assert!(
        n2["keptBy"]["detail"]
            .as_str()
            .unwrap()
            .contains("metrics-server")
    );
    // The nodegroup's reasoning names both rules too.
    let kept = &r["nodegroups"][0]["keptBecause"];
    assert_eq!(kept["local-storage"], 1, "{kept:#}");
    assert_eq!(kept["kube-system-pod-without-pdb"], 1, "{kept:#}");

    // Karpenter applies neither rule: n1 and n2 may go too.
    let (r, text) = analyze(
        &case("scale-down-blockers.json"),
        &["--scale-down-profile", "karpenter"],
    );
    assert_eq!(r["scaleDownProfile"], "karpenter");
    assert!(text.contains("karpenter"), "{text}");
    assert_eq!(removable(&r).len(), 3, "{:#}", r["consolidation"]);
    for n in ["n1", "n2"] {
        let rule = &node(&r, n)["keptBy"]["rule"];
        assert!(
            rule.is_null() || rule == "no-room",
            "{n} kept by {rule} under karpenter"
        );
    }
}

/// Every base64-looking run of `s` (16+ characters), decoded.
fn decoded_runs(s: &str) -> Vec<String> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
        .filter(|run| run.len() >= 16)
        .filter_map(|run| {
            base64::engine::general_purpose::STANDARD
                .decode(run)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .collect()
}

#[test]
fn sanitize_removes_every_marked_value_and_keeps_the_rest() {
    let input = std::fs::read(case("sensitive-names.json")).unwrap();
    let out = crossguard(&["sanitize"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("CgCase5"), "{text}");
    for run in decoded_runs(&text) {
        assert!(
            !run.contains("CgCase5"),
            "a marked value survives base64: {run}"
        );
    }
    let doc: Value = serde_json::from_str(&text).unwrap();
    let env = doc["items"][0]["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env kept");
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} dropped: {env:#?}"))["value"]
            .clone()
    };
    for name in [
        "ADMIN_PASSCODE",
        "PGPASS",
        "WALLET_MNEMONIC",
        "DOCKER_CONFIG_JSON",
        "NPMRC",
    ] {
        assert_eq!(value(name), "[redacted by crossguard]", "{name}");
    }
    assert_eq!(value("LOG_LEVEL"), "info");
    assert_eq!(value("CLIENT_ID"), "storefront-web");
}
