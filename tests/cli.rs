//! `crossguard analyze` and `crossguard sanitize` behave like the tools users know
//! (docs/cli.md): a file or `-` for stdin with the same result, one `-o` whose every value
//! parses, bad input as exit status 1 with one clear line, a closed pipe ending quietly
//! by SIGPIPE, and a text summary that names the nodes to remove and the rules keeping
//! the others. Everything here runs the real binary.

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crossguard::testing::dump;
use crossguard::testing::synthetic::{SyntheticSpec, generate};
use serde_json::Value;

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(name)
}

/// Runs the binary with `stdin` (empty when `None`), without a backtrace setting that
/// would change what errors print.
fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    // A command that fails before reading stdin closes it: a broken pipe here is fine.
    let _ = writer.join().unwrap();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A synthetic cluster's dump of `nodes` nodes, as kubectl prints it.
fn synthetic_dump(dir: &Path, nodes: usize) -> PathBuf {
    let c = generate(&SyntheticSpec {
        nodes,
        pods: nodes * 25,
        seed: 11,
        ..Default::default()
    });
    let path = dir.join("dump.json");
    let list = dump::snapshot_to_list(&c.snapshot);
    std::fs::write(&path, serde_json::to_vec_pretty(&list).unwrap()).unwrap();
    path
}

/// The error lines of a failed run: exit status 1, nothing on stdout, and exactly one
/// line starting `error: ` (the `read N nodes…` progress line may precede it).
fn one_error(out: &Output, what: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(out.stdout.is_empty(), "{what}: no output on stdout");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{what}: one error line in {stderr}");
    for noise in ["Caused by", "Stack backtrace", "panicked"] {
        assert!(!stderr.contains(noise), "{what}: {stderr}");
    }
    errors[0].to_string()
}

#[test]
fn input_without_nodes_or_objects_is_an_error_not_a_tight_cluster() {
    let dir = tempfile::tempdir().unwrap();
    // An empty file, `{}`, an empty List, a List of other kinds only.
    for (name, body) in [
        (
            "services.json",
            &br#"{"kind":"List","items":[{"kind":"Service","metadata":{"name":"s"}}]}"#[..],
        ),
        ("empty.json", &b""[..]),
        ("object.json", &b"{}"[..]),
        (
            "list.json",
            &br#"{"apiVersion":"v1","kind":"List","items":[]}"#[..],
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let line = one_error(&run(&["analyze", path.to_str().unwrap()], None), name);
        assert!(
            line.contains("no nodes found") && line.contains(name),
            "{line}"
        );
        // The same through stdin names stdin.
        let line = one_error(&run(&["analyze", "-"], Some(body)), name);
        assert!(line.contains("no nodes found in stdin"), "{line}");
    }
    // sanitize: nothing to sanitize is an error too, and so is input that does not parse.
    let line = one_error(&run(&["sanitize"], Some(b"")), "sanitize empty");
    assert!(
        line.contains("no Kubernetes objects found in stdin"),
        "{line}"
    );
    let line = one_error(&run(&["sanitize", "-"], Some(b"{oops")), "sanitize broken");
    assert!(line.contains("reading the objects in stdin"), "{line}");
}

#[test]
fn an_unparsable_quantity_names_its_object_and_field() {
    let mut list: Value =
        serde_json::from_slice(&std::fs::read(case("scale-down-blockers.json")).unwrap()).unwrap();
    let node = list["items"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|i| i["kind"] == "Node")
        .unwrap();
    node["status"]["allocatable"]["cpu"] = Value::from("lots");
    let name = node["metadata"]["name"].as_str().unwrap().to_string();
    let body = serde_json::to_vec(&list).unwrap();
    let line = one_error(&run(&["analyze", "-"], Some(&body)), "cpu: lots");
    assert!(
        line.contains(&format!("Node {name}")) && line.contains("status.allocatable.cpu \"lots\""),
        "{line}"
    );
}

/// A bad prices file is refused before the dump is read (the dump here does not even
/// exist), with its path and what is wrong, on one line.
#[test]
fn a_malformed_prices_file_is_rejected_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let missing_dump = dir.path().join("no-such-dump.json");
    for (name, body, says) in [
        ("syntax.json", &b"{oops"[..], "key must be a string"),
        (
            "typo.json",
            &br#"{"onDemandHourlyy":{"us-east-1":{"m5.large":0.05}}}"#[..],
            "unknown field `onDemandHourlyy`",
        ),
        ("empty.json", &b"{}"[..], "holds no prices"),
        (
            "negative.json",
            &br#"{"onDemandHourly":{"us-east-1":{"m5.large":-1}}}"#[..],
            "must be a finite number >= 0",
        ),
    ] {
        let prices = dir.path().join(name);
        std::fs::write(&prices, body).unwrap();
        for flag in ["--prices-file", "--prices"] {
            let out = run(
                &[
                    "analyze",
                    missing_dump.to_str().unwrap(),
                    flag,
                    prices.to_str().unwrap(),
                ],
                None,
            );
            let line = one_error(&out, name);
            assert!(
                line.contains(&format!("the prices file {}", prices.display()))
                    && line.contains(says),
                "{line}"
            );
            assert!(!line.contains("no-such-dump"), "{line}");
            // The cause appears once even though two layers describe the same failure.
            assert_eq!(line.matches(says).count(), 1, "{line}");
        }
    }
}

/// The same bytes from a file and from stdin give the same output, for every `-o`
/// value of both subcommands; `--snapshot FILE` (the old spelling) still works.
#[test]
fn stdin_and_a_file_give_the_same_output() {
    let path = case("scale-down-blockers.json");
    let bytes = std::fs::read(&path).unwrap();
    let file: &'static str = path.to_str().unwrap().to_string().leak();
    for (args, formats) in [
        (vec!["analyze"], vec!["text", "json", "yaml", "csv"]),
        (vec!["sanitize"], vec!["json", "yaml"]),
    ] {
        for format in formats {
            let with = |input: &'static str| {
                let mut a: Vec<&str> = args.clone();
                a.extend([input, "-o", format]);
                a
            };
            let from_file = run(&with(file), None);
            let from_stdin = run(&with("-"), Some(&bytes));
            assert!(from_file.status.success(), "{}", text(&from_file.stderr));
            assert!(from_stdin.status.success(), "{}", text(&from_stdin.stderr));
            assert!(!from_file.stdout.is_empty());
            assert_eq!(
                text(&from_file.stdout),
                text(&from_stdin.stdout),
                "{args:?} -o {format}"
            );
        }
    }
    let old = run(&["analyze", "--snapshot", file, "-o", "json"], None);
    let new = run(&["analyze", file, "-o", "json"], None);
    assert!(old.status.success());
    assert_eq!(old.stdout, new.stdout);
    // Both at once is a usage error (exit status 2), not a silent choice.
    let both = run(&["analyze", file, "--snapshot", file], None);
    assert_eq!(both.status.code(), Some(2));
}

/// Every `-o` value prints what it says: JSON and YAML parse into the same report, CSV
/// parses with a header and one row per node whose figures are the report's; a value a
/// subcommand cannot print is a usage error listing the ones it can.
#[test]
fn every_output_format_parses() {
    let path = case("scale-down-blockers.json");
    let file = path.to_str().unwrap();
    let out = |format: &str| {
        let o = run(&["analyze", file, "-o", format], None);
        assert!(o.status.success(), "{format}: {}", text(&o.stderr));
        o.stdout
    };
    let json: Value = serde_json::from_slice(&out("json")).unwrap();
    let yaml: Value = serde_yaml::from_slice(&out("yaml")).unwrap();
    assert_eq!(json, yaml);
    assert!(json["currentMonthlyCost"].as_f64().unwrap() > 0.0);

    let csv_bytes = out("csv");
    let mut reader = csv::Reader::from_reader(&csv_bytes[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, crossguard::cli::csv::COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(rows.len(), nodes.len());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut total_cents = 0;
    for (row, node) in rows.iter().zip(nodes) {
        assert_eq!(&row[col("node")], node["node"].as_str().unwrap());
        let cost: f64 = row[col("monthly_cost")].parse().unwrap();
        assert_eq!(cost, node["monthlyCost"].as_f64().unwrap());
        total_cents += (cost * 100.0).round() as i64;
        let removable = node["removable"].as_bool().unwrap();
        assert_eq!(
            &row[col("recommendation")],
            if removable { "remove" } else { "keep" }
        );
        assert_eq!(
            &row[col("kept_by_rule")],
            node["keptBy"]["rule"].as_str().unwrap_or("")
        );
    }
    let total = json["currentMonthlyCost"].as_f64().unwrap();
    assert_eq!(total_cents, (total * 100.0).round() as i64);

    let wrong = run(&["sanitize", file, "-o", "csv"], None);
    assert_eq!(wrong.status.code(), Some(2));
    let stderr = text(&wrong.stderr);
    assert!(
        stderr.contains("invalid value 'csv'") && stderr.contains("[possible values: json, yaml]"),
        "{stderr}"
    );
    let wrong = run(&["analyze", file, "-o", "xml"], None);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(text(&wrong.stderr).contains("text, json, yaml, csv"));
}

/// A reader that goes away (`crossguard analyze … | head -1`) ends the process by SIGPIPE
/// with nothing on stderr but the progress line, as `jq` and `kubectl` end.
#[test]
fn a_closed_pipe_ends_quietly_by_sigpipe() {
    let path = case("scale-down-blockers.json");
    let file = path.to_str().unwrap();
    let runs: Vec<Vec<&str>> = vec![
        vec!["analyze", file, "-o", "text"],
        vec!["analyze", file, "-o", "json"],
        vec!["analyze", file, "-o", "yaml"],
        vec!["analyze", file, "-o", "csv"],
        vec!["sanitize", file],
        vec!["sanitize", file, "-o", "yaml"],
    ];
    for args in runs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crossguard"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before anything is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.lines().all(|l| l.starts_with("read ")),
            "{args:?}: nothing but progress on stderr: {stderr}"
        );
    }
}

/// The text summary of the scale-down case names the two nodes consolidation removes and,
/// per kept node, the pod and the cluster-autoscaler rule that keep it.
#[test]
fn text_names_the_nodes_to_remove_and_the_rules_keeping_the_others() {
    let out = run(
        &[
            "analyze",
            case("scale-down-blockers.json").to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    let section = |title: &str| -> Vec<String> {
        let start = summary
            .find(title)
            .unwrap_or_else(|| panic!("no {title:?} in {summary}"));
        summary[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let remove = section("nodes to remove (2 nodes;");
    assert_eq!(remove.len(), 2, "{remove:?}");
    assert!(remove[0].starts_with("n3 (general, m5.large): $70.08/month, 1 pod moves"));
    assert!(remove[1].starts_with("n4 (general, m5.large): $70.08/month, 1 pod moves"));
    let stay = section("nodes that stay (2 nodes; cluster-autoscaler scale-down profile");
    assert_eq!(stay.len(), 2, "{stay:?}");
    assert!(
        stay[0].starts_with("n1: local-storage: jobs/scratchy-rs-1: pod with local storage"),
        "{stay:?}"
    );
    assert!(
        stay[1].starts_with("n2: kube-system-pod-without-pdb: kube-system/metrics-server-rs-1"),
        "{stay:?}"
    );
    assert!(summary.contains("saves $140.16/month"), "{summary}");
    assert!(!summary.contains("(s)"), "plurals are spelt out: {summary}");
    assert!(!summary.contains("already tight"), "{summary}");
}

/// What a finance reader needs: thousands separators, spelt-out plurals, no `$-0.00`, and
/// the estimated figures named as such (spot at a configured discount, unpriced nodes).
#[test]
fn text_reads_well_for_finance_and_names_its_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic_dump(dir.path(), 60);
    let file = path.to_str().unwrap();
    let json: Value =
        serde_json::from_slice(&run(&["analyze", file, "-o", "json"], None).stdout).unwrap();
    let cost = json["currentMonthlyCost"].as_f64().unwrap();
    assert!(cost >= 1000.0, "the cluster costs over $1,000 ({cost})");
    let cents = (cost * 100.0).round() as u64;
    let expected = format!(
        "${}.{:02}/month",
        crossguard::analysis::report::group_thousands(cents / 100),
        cents % 100
    );
    assert!(expected.contains(','), "{expected}");
    let summary = text(&run(&["analyze", file], None).stdout);
    assert!(
        summary.contains(&format!("current cost:    {expected}")),
        "{expected} in {summary}"
    );
    assert!(
        !summary.contains("$-0.00") && !summary.contains("(s)"),
        "{summary}"
    );

    // The Windows case: a spot saving at the configured discount and an unpriced node.
    let out = run(
        &["analyze", case("windows-node.json").to_str().unwrap()],
        None,
    );
    let summary = text(&out.stdout);
    let start = summary
        .find("  estimates:\n")
        .expect("an estimates section");
    let estimates = &summary[start..summary[start..].find("\n\n").unwrap() + start];
    assert!(
        estimates.contains("spot savings ($37.23/month) are an estimate"),
        "{estimates}"
    );
    assert!(
        estimates.contains("1 node of unknown cost: in no total"),
        "{estimates}"
    );
    assert!(summary.contains("+ 1 node of UNKNOWN cost"), "{summary}");
    // A nodegroup of unknown cost is not "$0.00".
    let windows_row = summary
        .lines()
        .find(|l| l.trim_start().starts_with("windows-ng"))
        .unwrap();
    assert!(
        windows_row.contains("unknown") && !windows_row.contains("$0.00"),
        "{windows_row}"
    );

    // A case with only list prices has no estimates section.
    let out = run(
        &[
            "analyze",
            case("scale-down-blockers.json").to_str().unwrap(),
        ],
        None,
    );
    assert!(!text(&out.stdout).contains("estimates:"));
}

/// `--help` documents the positional input and the one price flag; the old spellings
/// stay out of it.
#[test]
fn help_shows_one_name_per_flag() {
    let help = text(&run(&["analyze", "--help"], None).stdout);
    assert!(
        help.contains("[FILE]") && help.contains("--prices-file <FILE>"),
        "{help}"
    );
    assert!(
        !help.contains("--snapshot") && !help.contains("--prices "),
        "{help}"
    );
    assert!(help.contains("csv"), "{help}");
    let help = text(&run(&["run", "--help"], None).stdout);
    assert!(help.contains("--prices-file <FILE>"), "{help}");
}
