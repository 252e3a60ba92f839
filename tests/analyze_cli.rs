//! `crossguard analyze --snapshot FILE` on a realistic `kubectl get -o json` dump: the
//! summary a customer reads, the full report with `-o json`, planted secrets nowhere in
//! either, and clear errors for input that is not a dump.

use std::process::{Command, Output};

use crossguard::testing::dump;
use crossguard::testing::synthetic::{SyntheticSpec, generate};
use serde_json::Value;

const CANARY: &str = "cLiCaNaRy-5d1e8a7b";

fn crossguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A dump as kubectl prints it (pretty JSON), of a synthetic cluster whose pods carry a
/// planted secret in an env var, an argument and an annotation.
fn dump_file(dir: &std::path::Path) -> std::path::PathBuf {
    let c = generate(&SyntheticSpec {
        nodes: 12,
        pods: 300,
        seed: 7,
        ..Default::default()
    });
    let mut list = dump::snapshot_to_list(&c.snapshot);
    for item in list["items"].as_array_mut().unwrap() {
        if item["kind"] != "Pod" {
            continue;
        }
        item["metadata"]["annotations"]["example.com/note"] = Value::from(CANARY);
        let container = &mut item["spec"]["containers"][0];
        container["env"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "DB_PASSWORD", "value": CANARY}));
        container["args"] = serde_json::json!([format!("--password={CANARY}")]);
    }
    let path = dir.join("dump.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&list).unwrap()).unwrap();
    path
}

#[test]
fn analyze_reads_a_kubectl_dump_and_keeps_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dump_file(dir.path());
    let raw = std::fs::read_to_string(&path).unwrap();
    assert!(raw.contains(CANARY), "the canary is planted");
    let path = path.to_str().unwrap();

    let out = crossguard(&["analyze", "--snapshot", path]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("current cost:"), "{stdout}");
    assert!(stdout.contains("nodes / pods:    12 / "), "{stdout}");
    assert!(stderr.contains("read 12 nodes"), "{stderr}");

    let out = crossguard(&["analyze", "--snapshot", path, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("-o json prints JSON");
    assert!(report["currentMonthlyCost"].as_f64().unwrap() > 0.0);
    assert!(report["savings"]["total"].as_f64().unwrap() > 0.0);
    assert_eq!(report["unpricedNodes"], 0);

    for out in [&stdout, &text(&out.stdout), &stderr, &text(&out.stderr)] {
        assert!(!out.contains(CANARY));
    }
}

#[test]
fn analyze_refuses_what_is_not_a_dump() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        br#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":5}}]}"#,
    )
    .unwrap();
    let out = crossguard(&["analyze", "--snapshot", bad.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bad.json"), "{stderr}");
    assert!(stderr.contains("at object 1 (Pod)"), "{stderr}");

    let missing = dir.path().join("missing.json");
    let out = crossguard(&["analyze", "--snapshot", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("missing.json"));
    // A dump without nodes: tests/cli.rs, input_without_nodes_or_objects_is_an_error….
}

/// An unparsable quantity is reported with its object and field, not read as zero.
#[test]
fn an_unparsable_quantity_is_an_error_naming_its_object() {
    let dir = tempfile::tempdir().unwrap();
    let path = dump_file(dir.path());
    let mut list: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let pod = list["items"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|i| i["kind"] == "Pod")
        .unwrap();
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = Value::from("lots");
    let name = format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap(),
        pod["metadata"]["name"].as_str().unwrap()
    );
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
    let out = crossguard(&["analyze", "--snapshot", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("Pod {name}"))
            && stderr.contains("spec.containers[0].resources.requests.cpu \"lots\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// `analyze` and `sanitize` both read a file or `-` (stdin), with the same result.
#[test]
fn analyze_and_sanitize_read_a_file_or_stdin() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dump_file(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let piped = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crossguard"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = bytes.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        out
    };
    let file = path.to_str().unwrap();
    for (from_file, from_stdin) in [
        (
            vec!["analyze", "--snapshot", file, "-o", "json"],
            vec!["analyze", "--snapshot", "-", "-o", "json"],
        ),
        (vec!["sanitize", file], vec!["sanitize", "-"]),
        (vec!["sanitize", file], vec!["sanitize"]),
    ] {
        let a = crossguard(&from_file);
        let b = piped(&from_stdin);
        assert!(
            a.status.success() && b.status.success(),
            "{}",
            text(&b.stderr)
        );
        assert!(!a.stdout.is_empty());
        assert_eq!(
            text(&a.stdout),
            text(&b.stdout),
            "{from_file:?} vs {from_stdin:?}"
        );
    }
}

/// The dump is read as a stream: where it breaks is named (file, document, object, line
/// and column), from a file and from stdin alike, and nothing is printed on stdout.
#[test]
fn a_broken_dump_is_reported_where_it_broke() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(dump_file(dir.path())).unwrap();
    // Cut inside the last pod (pods come last in the List).
    let cut = bytes.len() - 200;
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &bytes[..cut]).unwrap();
    let out = crossguard(&["analyze", "--snapshot", truncated.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("reading the dump {}", truncated.display()))
            && stderr.contains("reading JSON document 0 failed at object")
            && stderr.contains("(Pod)")
            && stderr.contains("EOF while parsing"),
        "{stderr}"
    );
    assert!(
        stderr.contains(" at line ") && stderr.contains(" column "),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // The same bytes on stdin: the same message, naming stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args(["analyze", "--snapshot", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes[..cut].to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let piped = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let piped_err = text(&piped.stderr);
    assert!(!piped.status.success());
    let tail = |s: &str| {
        s.split_once("reading JSON document")
            .map(|(_, t)| t.to_string())
    };
    assert!(piped_err.contains("reading the dump stdin"), "{piped_err}");
    assert_eq!(tail(&piped_err), tail(&stderr));

    // Documents that are no Kubernetes objects, and objects that are no List of them.
    for (name, body, expected) in [
        (
            "number.json",
            &b"42\n"[..],
            "document 0 is a number, not a Kubernetes object",
        ),
        (
            "strings.json",
            &br#"["a","b"]"#[..],
            "invalid type: string \"a\", expected a Kubernetes object at line 1 column 4",
        ),
        (
            "stream.json",
            &b"{\"kind\":\"Node\"}\n\"text\"\n"[..],
            "document 1 is a string, not a Kubernetes object",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let out = crossguard(&["analyze", "--snapshot", path.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{name}");
        assert!(
            stderr.contains(&format!("reading the dump {}", path.display()))
                && stderr.contains(expected),
            "{name}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{name}");
    }
}

/// An I/O error while reading names the file and the system's reason.
#[test]
fn a_dump_that_cannot_be_read_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory opens like a file on Linux; reading it fails (EISDIR).
    let out = crossguard(&["analyze", "--snapshot", dir.path().to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("reading the dump {}", dir.path().display()))
            && stderr.contains("reading the input failed")
            && stderr.contains("Is a directory"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// `--inventory` gives the dump what only AWS knows (nodegroup minimum sizes above all): the
/// figures are the library's for the same objects and inventory, and the report carries the
/// inventory; without it the report says what it could not know. Inputs that hold no
/// inventory are refused with a message naming the file.
#[test]
fn analyze_with_the_operators_inventory_computes_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let c = generate(&SyntheticSpec {
        nodes: 12,
        pods: 300,
        seed: 7,
        ..Default::default()
    });
    assert!(c.aws.nodegroups.iter().any(|g| g.min_size > Some(0)));
    let dump_path = dir.path().join("dump.json");
    std::fs::write(
        &dump_path,
        serde_json::to_vec(&dump::snapshot_to_list(&c.snapshot)).unwrap(),
    )
    .unwrap();
    let inventory_path = dir.path().join("inventory.json");
    std::fs::write(&inventory_path, serde_json::to_vec(&c.aws).unwrap()).unwrap();
    let run = |extra: &[&str]| -> Value {
        let mut args = vec![
            "analyze",
            "--snapshot",
            dump_path.to_str().unwrap(),
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = crossguard(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let expected = crossguard::analysis::analyze(
        &crossguard::analysis::AnalysisInput::from(c.snapshot.clone()),
        &c.aws,
        &crossguard::analysis::PriceTable::bundled(),
        &Default::default(),
    );
    let expected = serde_json::to_value(&expected).unwrap();
    let with = run(&["--inventory", inventory_path.to_str().unwrap()]);
    for field in ["currentMonthlyCost", "savings", "recommendations", "nodes"] {
        assert_eq!(with[field], expected[field], "{field}");
    }
    assert!(with["awsInventory"]["nodegroups"].is_array());
    // A stored report is an inventory file too: analysing again with it changes nothing.
    let report_path = dir.path().join("report.json");
    std::fs::write(&report_path, serde_json::to_vec(&with).unwrap()).unwrap();
    let again = run(&["--inventory", report_path.to_str().unwrap()]);
    assert_eq!(again["savings"], with["savings"]);

    let without = run(&[]);
    assert!(without.get("awsInventory").is_none());
    let notes = without["notes"].to_string();
    assert!(notes.contains("No AWS inventory"), "{notes}");

    // An offline report, an object without inventory, and a file that is not JSON.
    let offline = dir.path().join("offline.json");
    std::fs::write(&offline, serde_json::to_vec(&without).unwrap()).unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    for (file, says) in [
        (&offline, "made without AWS inventory"),
        (&empty, "holds no AWS inventory"),
        (&garbage, "parsing the inventory in"),
    ] {
        let file = file.to_str().unwrap();
        let out = crossguard(&[
            "analyze",
            "--snapshot",
            dump_path.to_str().unwrap(),
            "--inventory",
            file,
        ]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success() && out.stdout.is_empty(), "{file}");
        assert!(stderr.contains(says) && stderr.contains(file), "{stderr}");
    }
}
