//! The onboarding CloudFormation templates, printed by the real CLI, pass `cfn-lint` and
//! every policy in them passes `parliament` with zero findings (both tools run offline from
//! the harness venv; `make tools` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const ACCOUNT: &str = "111122223333";
const OPERATOR: &str = "arn:aws:iam::999988887777:role/crossguard-operator";

fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("CROSSGUARD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let tool = venv.join("bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run make tools",
        tool.display()
    );
    tool
}

fn print_template(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args([
            "onboarding-template",
            "--account-id",
            ACCOUNT,
            "--operator-principal",
            OPERATOR,
            "--external-id",
            "cg-ext-0123456789",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Resolves `Fn::Sub` the way CloudFormation would in the commercial partition, so that
/// parliament sees concrete ARNs.
fn resolve(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => Value::String(
            m["Fn::Sub"]
                .as_str()
                .unwrap()
                .replace("${AWS::Partition}", "aws")
                .replace("${AWS::AccountId}", ACCOUNT),
        ),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), resolve(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(resolve).collect()),
        other => other.clone(),
    }
}

/// Every policy document of the template, by name.
fn policies(template: &Value) -> Vec<(String, Value)> {
    let props = &template["Resources"]["CrossguardRole"]["Properties"];
    let role_arn = format!(
        "arn:aws:iam::{ACCOUNT}:role/{}",
        props["RoleName"].as_str().unwrap()
    );
    let mut trust = resolve(&props["AssumeRolePolicyDocument"]);
    // parliament has no trust-policy mode and reports "Statement contains neither Resource
    // nor NotResource" for any trust policy (IAM forbids Resource there). Instead of
    // allow-listing that finding, which could hide others, give each statement the role
    // itself as Resource, which is what a trust policy implicitly applies to, so that
    // every other check (principal, actions, condition keys) runs.
    for s in trust["Statement"].as_array_mut().unwrap() {
        s["Resource"] = Value::String(role_arn.clone());
    }
    let mut out = vec![("trust".to_owned(), trust)];
    for p in props["Policies"].as_array().unwrap() {
        out.push((
            p["PolicyName"].as_str().unwrap().to_owned(),
            resolve(&p["PolicyDocument"]),
        ));
    }
    out
}

fn cfn_lint(path: &Path) {
    // No ignored checks: the templates must be clean at the default (warning) level.
    let out = Command::new(venv_tool("cfn-lint"))
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cfn-lint on {} (exit {:?}):\n{}{}",
        path.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn parliament(name: &str, policy: &Value) {
    use std::io::Write as _;
    // The policy goes on stdin: parliament refuses --file when stdin is not a terminal.
    // No finding is allow-listed; INFO is the lowest severity, so nothing is filtered.
    let mut child = Command::new(venv_tool("parliament"))
        .args(["--json", "--minimum_severity", "INFO"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(policy.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let findings: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        out.status.success() && findings.is_empty() && out.stderr.is_empty(),
        "parliament on {name} (exit {:?}): {findings:#?}\n{}\n{policy:#}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check(label: &str, args: &[&str], expected_policies: usize) {
    let template = print_template(args);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{label}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&template).unwrap()).unwrap();
    cfn_lint(&path);
    let docs = policies(&template);
    assert_eq!(docs.len(), expected_policies);
    for (name, doc) in &docs {
        parliament(&format!("{label}/{name}"), doc);
    }
}

#[test]
fn read_only_template_passes_cfn_lint_and_parliament() {
    check("read-only", &["--mode", "read-only"], 2);
    check(
        "read-only-cluster",
        &["--mode", "read-only", "--cluster", "prod"],
        2,
    );
}

#[test]
fn automated_template_passes_cfn_lint_and_parliament() {
    check(
        "automated",
        &[
            "--mode",
            "automated",
            "--cluster",
            "prod",
            "--cluster",
            "staging",
            "--require-source-identity",
        ],
        3,
    );
}

#[test]
fn key_audit_templates_pass_cfn_lint_and_parliament() {
    check(
        "read-only-key-audit",
        &["--mode", "read-only", "--key-audit"],
        3,
    );
    // --key-audit-enforce alone implies the audit reads.
    check(
        "read-only-key-audit-enforce",
        &["--mode", "read-only", "--key-audit-enforce"],
        3,
    );
    check(
        "automated-key-audit-enforce",
        &[
            "--mode",
            "automated",
            "--cluster",
            "prod",
            "--key-audit",
            "--key-audit-enforce",
            "--require-source-identity",
        ],
        4,
    );
}

#[test]
fn key_audit_enforce_implies_the_audit_reads() {
    let template = print_template(&["--key-audit-enforce"]);
    let text = template.to_string();
    for action in ["iam:ListUsers", "iam:ListAccessKeys", "iam:UpdateAccessKey"] {
        assert!(text.contains(action), "{action} missing");
    }
    let without = print_template(&[]).to_string();
    assert!(!without.contains("iam:ListUsers"));
    assert!(!without.contains("iam:UpdateAccessKey"));
}

#[test]
fn automated_without_cluster_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args([
            "onboarding-template",
            "--account-id",
            ACCOUNT,
            "--operator-principal",
            OPERATOR,
            "--external-id",
            "x",
            "--mode",
            "automated",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cluster"));
}

/// The customer's role, as `onboarding-rbac --role-arn` takes it.
const CUSTOMER_ROLE: &str = "arn:aws:iam::111122223333:role/crossguard-access";

/// Run the real binary with `args`.
fn crossguard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn onboarding_rbac_refuses_a_bad_cluster_name_or_role_arn_and_prints_nothing() {
    for (cluster, role, bad) in [
        ("Bad Cluster;rm -rf", CUSTOMER_ROLE, "Bad Cluster;rm -rf"),
        ("prod", "arn:aws:iam::111122223333:role/x;id", "role/x;id"),
        ("prod", "crossguard-access", "crossguard-access"),
    ] {
        let out = crossguard(&["onboarding-rbac", "--cluster", cluster, "--role-arn", role]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cluster} {role} accepted");
        assert!(stderr.contains(bad), "the error names {bad:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing printed to paste");
    }
    let ok = crossguard(&[
        "onboarding-rbac",
        "--cluster",
        "prod",
        "--role-arn",
        CUSTOMER_ROLE,
    ]);
    assert!(ok.status.success());
    let yaml = String::from_utf8_lossy(&ok.stdout);
    assert!(
        yaml.contains(&format!(
            "aws eks create-access-entry --cluster-name prod --principal-arn {CUSTOMER_ROLE} "
        )),
        "{yaml}"
    );
}

#[test]
fn onboarding_template_refuses_a_bad_cluster_name() {
    let out = crossguard(&[
        "onboarding-template",
        "--account-id",
        ACCOUNT,
        "--operator-principal",
        OPERATOR,
        "--external-id",
        "x",
        "--cluster",
        "prod",
        "--cluster",
        "Bad Cluster;rm -rf",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Bad Cluster;rm -rf"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn mode_takes_the_crd_spelling_on_both_subcommands() {
    let rbac = |mode: &str| {
        let out = crossguard(&[
            "onboarding-rbac",
            "--cluster",
            "prod",
            "--role-arn",
            CUSTOMER_ROLE,
            "--mode",
            mode,
        ]);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(rbac("Automated"), rbac("automated"));
    assert!(rbac("Automated").contains("crossguard-drain"));
    assert_eq!(rbac("ReadOnly"), rbac("read-only"));
    assert!(!rbac("ReadOnly").contains("crossguard-drain"));

    let automated = print_template(&["--mode", "Automated", "--cluster", "prod"]);
    assert_eq!(
        automated,
        print_template(&["--mode", "automated", "--cluster", "prod"])
    );
    assert!(
        automated
            .to_string()
            .contains("TerminateInstanceInAutoScalingGroup")
    );
    assert_eq!(
        print_template(&["--mode", "ReadOnly"]),
        print_template(&["--mode", "read-only"])
    );
}
