//! The onboarding CloudFormation templates, printed by the real CLI, pass `cfn-lint` and
//! every policy in them passes `parliament` with zero findings; the Terraform rendering
//! parses (python-hcl2) into the same policies; `onboarding-rbac`'s commands survive the
//! shell; `operator-policy` passes parliament; `--from` reads a CustomerAccount from a fake
//! API server. The Python tools run offline from the harness venv (`make tools`).

mod support;

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

/// Resolves `Fn::Sub` and `Ref` the way CloudFormation would in the commercial partition
/// with the parameters' defaults (or, for the generic template, these values), so that
/// parliament sees concrete ARNs.
fn resolve(v: &Value) -> Value {
    let sub = |s: &str| {
        s.replace("${AWS::Partition}", "aws")
            .replace("${AWS::AccountId}", ACCOUNT)
            .replace("${ExternalId}", "cg-ext-0123456789")
            .replace("${OperatorPrincipal}", OPERATOR)
    };
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
            Value::String(sub(m["Fn::Sub"].as_str().unwrap()))
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Ref") => {
            Value::String(sub(&format!("${{{}}}", m["Ref"].as_str().unwrap())))
        }
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
    let (findings, stderr, code) = parliament_findings(policy);
    assert!(
        code == Some(0) && findings.is_empty() && stderr.is_empty(),
        "parliament on {name} (exit {code:?}): {findings:#?}\n{stderr}\n{policy:#}"
    );
}

/// parliament's findings on `policy`, its stderr and exit code.
fn parliament_findings(policy: &Value) -> (Vec<Value>, String, Option<i32>) {
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
    (
        findings,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
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
            "cg-x1",
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
        "cg-x1",
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

/// `crossguard onboarding-template ARGS` with the usual per-account values, raw output.
fn template_text(args: &[&str]) -> String {
    let out = crossguard(
        &[
            &[
                "onboarding-template",
                "--account-id",
                ACCOUNT,
                "--operator-principal",
                OPERATOR,
                "--external-id",
                "cg-ext-0123456789",
            ],
            args,
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn yaml_generic_and_region_scoped_templates_pass_cfn_lint_and_parliament() {
    let dir = tempfile::tempdir().unwrap();
    // YAML, what people paste into the console, lints like the JSON and says the same.
    for args in [
        &["-o", "yaml"][..],
        &[
            "-o",
            "yaml",
            "--mode",
            "Automated",
            "--cluster",
            "prod",
            "--region",
            "eu-west-1",
            "--region",
            "us-east-1",
        ][..],
    ] {
        let yaml = template_text(args);
        let path = dir.path().join("t.yaml");
        std::fs::write(&path, &yaml).unwrap();
        cfn_lint(&path);
        let parsed: Value = serde_yaml::from_str(&yaml).unwrap();
        let json_args: Vec<&str> = args[2..].to_vec();
        assert_eq!(
            parsed,
            print_template(&json_args),
            "YAML and JSON differ for {args:?}"
        );
    }
    check(
        "regions",
        &[
            "--mode",
            "automated",
            "--cluster",
            "prod",
            "--region",
            "eu-west-1",
            "--region",
            "us-east-1",
        ],
        3,
    );
    // The generic template: no account, no ExternalId default; the operator principal
    // default is kept (it is the same for every customer).
    let out = crossguard(&[
        "onboarding-template",
        "--generic",
        "--operator-principal",
        OPERATOR,
        "--mode",
        "automated",
        "--cluster",
        "prod",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generic: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(generic["Parameters"]["ExternalId"].get("Default").is_none());
    assert_eq!(
        generic["Parameters"]["OperatorPrincipal"]["Default"],
        OPERATOR
    );
    assert!(!generic.to_string().contains(ACCOUNT));
    let path = dir.path().join("generic.json");
    std::fs::write(&path, generic.to_string()).unwrap();
    cfn_lint(&path);
    for (name, doc) in policies(&generic) {
        parliament(&format!("generic/{name}"), &doc);
    }
}

#[test]
fn template_refuses_missing_or_contradictory_values_with_a_clear_error() {
    for (args, needle) in [
        (
            &[
                "onboarding-template",
                "--account-id",
                ACCOUNT,
                "--operator-principal",
                OPERATOR,
            ][..],
            "no external id",
        ),
        (
            &[
                "onboarding-template",
                "--account-id",
                ACCOUNT,
                "--external-id",
                "abc123",
            ][..],
            "no operator principal",
        ),
        (
            &[
                "onboarding-template",
                "--generic",
                "--external-id",
                "abc123",
            ][..],
            "cannot be used with",
        ),
        (
            &[
                "onboarding-template",
                "--account-id",
                ACCOUNT,
                "--operator-principal",
                OPERATOR,
                "--external-id",
                "abc123",
                "--region",
                "us-east-1;id",
            ][..],
            "invalid AWS region \"us-east-1;id\"",
        ),
        (
            &["onboarding-template", "--from", "managedcluster/prod"][..],
            "expected customeraccount/NAME",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
            .args(args)
            .env_remove("CROSSGUARD_OPERATOR_PRINCIPAL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    // The operator principal from the variable the chart sets on the operator.
    let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args([
            "onboarding-template",
            "--account-id",
            ACCOUNT,
            "--external-id",
            "abc123",
        ])
        .env("CROSSGUARD_OPERATOR_PRINCIPAL", OPERATOR)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["Parameters"]["OperatorPrincipal"]["Default"], OPERATOR);
}

/// `path` parsed by python-hcl2 into JSON (quotes stripped, heredocs kept).
fn parse_hcl(path: &Path) -> Value {
    let script = "import hcl2, json, sys\n\
        from hcl2.utils import SerializationOptions as O\n\
        o = O(strip_string_quotes=True, explicit_blocks=False, with_comments=False)\n\
        print(json.dumps(hcl2.load(open(sys.argv[1]), serialization_options=o)))";
    let out = Command::new(venv_tool("python"))
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-hcl2 on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A heredoc policy as Terraform would send it, with the data sources and variables
/// resolved like [`resolve`] resolves the CloudFormation template.
fn terraform_document(heredoc: &Value) -> Value {
    let text = heredoc.as_str().unwrap();
    let body = text
        .strip_prefix("<<EOT\n")
        .and_then(|t| t.strip_suffix("\nEOT"))
        .unwrap_or_else(|| panic!("not a heredoc: {text}"));
    let body = body
        .replace("${data.aws_partition.current.partition}", "aws")
        .replace("${data.aws_caller_identity.current.account_id}", ACCOUNT)
        .replace("${var.external_id}", "cg-ext-0123456789")
        .replace("${var.operator_principal}", OPERATOR);
    assert!(!body.contains("${"), "unresolved interpolation in {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn terraform_parses_and_carries_the_same_policies_as_cloudformation() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--mode", "read-only"][..],
        &[
            "--mode",
            "automated",
            "--cluster",
            "prod",
            "--cluster",
            "staging",
            "--region",
            "eu-west-1",
            "--key-audit-enforce",
            "--require-source-identity",
        ][..],
    ] {
        let hcl = template_text(&[args, &["-o", "terraform"]].concat());
        let path = dir.path().join("main.tf");
        std::fs::write(&path, &hcl).unwrap();
        let tf = parse_hcl(&path);
        let cfn = print_template(args);

        // Variables with the CLI's values as defaults, each validated.
        let vars: serde_json::Map<String, Value> = tf["variable"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|v| v.as_object().unwrap().clone())
            .collect();
        assert_eq!(vars["external_id"]["default"], "cg-ext-0123456789");
        assert_eq!(vars["operator_principal"]["default"], OPERATOR);
        for v in vars.values() {
            assert!(
                v["validation"][0]["condition"]
                    .as_str()
                    .unwrap()
                    .contains("regex")
            );
        }
        // The output onboarding-complete reads.
        assert_eq!(
            tf["output"][0]["role_arn"]["value"],
            "${aws_iam_role.crossguard.arn}"
        );

        let resources = tf["resource"].as_array().unwrap();
        let role = resources
            .iter()
            .find_map(|r| r.get("aws_iam_role"))
            .unwrap()["crossguard"]
            .clone();
        let cfn_props = resolve(&cfn["Resources"]["CrossguardRole"]["Properties"]);
        assert_eq!(role["name"], cfn_props["RoleName"]);
        assert_eq!(
            role["max_session_duration"],
            cfn_props["MaxSessionDuration"]
        );
        assert_eq!(
            terraform_document(&role["assume_role_policy"]),
            cfn_props["AssumeRolePolicyDocument"],
            "trust policy"
        );
        let mut tf_policies: Vec<(String, Value)> = resources
            .iter()
            .filter_map(|r| r.get("aws_iam_role_policy"))
            .flat_map(|r| r.as_object().unwrap().values().cloned().collect::<Vec<_>>())
            .map(|p| {
                assert_eq!(p["role"], "${aws_iam_role.crossguard.id}");
                (
                    p["name"].as_str().unwrap().to_string(),
                    terraform_document(&p["policy"]),
                )
            })
            .collect();
        tf_policies.sort_by(|a, b| a.0.cmp(&b.0));
        let mut cfn_policies: Vec<(String, Value)> = cfn_props["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["PolicyName"].as_str().unwrap().to_string(),
                    p["PolicyDocument"].clone(),
                )
            })
            .collect();
        cfn_policies.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(tf_policies, cfn_policies, "{args:?}");
        assert!(!tf_policies.is_empty());
    }
}

/// Each `aws …` command printed in `onboarding-rbac`'s comments, continuation lines joined.
fn printed_commands(doc: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut continued = false;
    for line in doc.lines().take_while(|l| l.starts_with('#')) {
        let text = line.trim_start_matches('#').trim();
        if continued {
            out.last_mut()
                .unwrap()
                .push_str(&format!(" {}", text.trim_end_matches('\\').trim()));
        } else if text.starts_with("aws eks ") && line.starts_with("#   ") && !text.contains('<') {
            out.push(text.trim_end_matches('\\').trim().to_string());
        } else {
            continue;
        }
        continued = text.ends_with('\\');
    }
    out
}

#[test]
fn onboarding_rbac_commands_parse_in_bash_and_pass_their_arguments_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // A stand-in `aws` printing one argument per line shows what the shell passed.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let aws = bin.join("aws");
    std::fs::write(&aws, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
    let role = "arn:aws:iam::111122223333:role/team/crossguard-access";
    let out = crossguard(&[
        "onboarding-rbac",
        "--cluster",
        "prod",
        "--cluster",
        "Stage_2",
        "--role-arn",
        role,
        "--region",
        "eu-west-1",
        "--mode",
        "Automated",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = String::from_utf8(out.stdout).unwrap();
    let commands = printed_commands(&doc);
    assert_eq!(commands.len(), 4, "{doc}");
    for command in &commands {
        let syntax = Command::new("bash")
            .args(["-n", "-c", command])
            .output()
            .unwrap();
        assert!(syntax.status.success(), "bash -n {command}");
        let run = Command::new("bash")
            .args(["-c", command])
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        let args = String::from_utf8(run.stdout).unwrap();
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(
            args[..2],
            [
                "eks",
                if command.contains("describe") {
                    "describe-cluster"
                } else {
                    "create-access-entry"
                }
            ]
        );
        assert!(
            args.windows(2).any(|w| w == ["--region", "eu-west-1"]),
            "{args:?}"
        );
        if command.contains("create-access-entry") {
            assert!(args.windows(2).any(|w| w == ["--principal-arn", role]));
            let groups = args
                .iter()
                .position(|a| *a == "--kubernetes-groups")
                .unwrap();
            assert_eq!(
                args[groups + 1..],
                ["crossguard:readonly", "crossguard:drain"]
            );
        }
    }
    // The aws-auth alternative: the role without its path, the groups the RBAC binds.
    assert!(
        doc.contains("#    - rolearn: arn:aws:iam::111122223333:role/crossguard-access\n"),
        "{doc}"
    );
    assert!(doc.contains("#        - crossguard:readonly\n#        - crossguard:drain\n"));
    assert!(doc.contains("authenticationMode"));
    // The RBAC itself still parses as YAML objects.
    let objects: Vec<Value> = doc
        .split("\n---\n")
        .skip(1)
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect();
    assert_eq!(objects.len(), 4);
}

#[test]
fn onboarding_rbac_refuses_a_bad_region_or_account_and_builds_the_role_from_the_account() {
    for (args, needle) in [
        (
            &["--region", "eu west 1"][..],
            "invalid AWS region \"eu west 1\"",
        ),
        (
            &["--account-id", "12"][..],
            "account id \"12\" is not 12 digits",
        ),
        (&[][..], "no role"),
    ] {
        let out = crossguard(&[&["onboarding-rbac", "--cluster", "prod"], args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = crossguard(&[
        "onboarding-rbac",
        "--cluster",
        "prod",
        "--account-id",
        ACCOUNT,
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!(
        "--principal-arn arn:aws:iam::{ACCOUNT}:role/crossguard-access "
    )));
}

#[test]
fn operator_policy_passes_parliament_for_irsa_and_pod_identity() {
    let kms = "arn:aws:kms:us-east-1:999988887777:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    for trust in [
        &[
            "--trust",
            "irsa",
            "--oidc-provider",
            "arn:aws:iam::999988887777:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABCDEF0123",
        ][..],
        &["--trust", "pod-identity"][..],
    ] {
        let out = crossguard(
            &[
                &[
                    "operator-policy",
                    "--store",
                    "s3://crossguard-reports/prod",
                    "--kms-key",
                    kms,
                ],
                trust,
            ]
            .concat(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let both: Value = serde_json::from_slice(&out.stdout).unwrap();
        parliament("operator/permissions", &both["PermissionsPolicy"]);
        // As for the customer's trust policy: parliament needs a Resource to check the rest.
        let mut trust_doc = both["TrustPolicy"].clone();
        for s in trust_doc["Statement"].as_array_mut().unwrap() {
            s["Resource"] =
                Value::String("arn:aws:iam::999988887777:role/crossguard-operator".into());
        }
        if trust[1] == "irsa" {
            // parliament knows the SAML and a few web identity providers, not EKS's OIDC
            // issuers nor their per-issuer condition keys (`<issuer>:sub`, `<issuer>:aud`,
            // IAM User Guide, "Configure a role for IRSA"): exactly those three findings.
            let (findings, _, _) = parliament_findings(&trust_doc);
            let mut issues: Vec<String> = findings
                .iter()
                .map(|f| {
                    format!(
                        "{} {}",
                        f["issue"].as_str().unwrap(),
                        f["detail"].as_str().unwrap()
                    )
                })
                .collect();
            issues.sort();
            let issuer = "oidc.eks.us-east-1.amazonaws.com/id/ABCDEF0123";
            assert_eq!(
                issues,
                [
                    format!(
                        "UNKNOWN_CONDITION_FOR_ACTION Unknown condition {issuer}:aud for action sts:AssumeRoleWithWebIdentity"
                    ),
                    format!(
                        "UNKNOWN_CONDITION_FOR_ACTION Unknown condition {issuer}:sub for action sts:AssumeRoleWithWebIdentity"
                    ),
                    format!(
                        "UNKNOWN_FEDERATION_SOURCE arn:aws:iam::999988887777:oidc-provider/{issuer}"
                    ),
                ],
                "{findings:#?}"
            );
            assert_eq!(
                trust_doc["Statement"][0]["Action"],
                "sts:AssumeRoleWithWebIdentity"
            );
            assert_eq!(
                trust_doc["Statement"][0]["Condition"]["StringEquals"]["oidc.eks.us-east-1.amazonaws.com/id/ABCDEF0123:sub"],
                "system:serviceaccount:crossguard:crossguard"
            );
        } else {
            parliament("operator/trust", &trust_doc);
        }
        let text = both.to_string();
        for action in [
            "sts:AssumeRole",
            "sts:SetSourceIdentity",
            "pricing:GetProducts",
            "s3:PutObject",
            "kms:GenerateDataKey",
        ] {
            assert!(text.contains(action), "{action} missing");
        }
    }
    for (args, needle) in [
        (
            &["--kms-key", "alias/x", "--store", "s3://b-1/p"][..],
            "not a key ARN",
        ),
        (&["--trust", "irsa"][..], "--oidc-provider"),
        (&["--store", "file:///tmp"][..], "not an s3:// URL"),
    ] {
        let out = crossguard(&[&["operator-policy"], args].concat());
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_reads_the_customer_account_and_its_clusters() {
    crossguard::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = fake_apiserver::FakeApiServer::start().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    support::kubectl_ok(
        &kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            support::repo().join("crds").to_str().unwrap(),
        ],
    );
    server
        .seed(serde_json::json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": "acme", "namespace": "acme"},
            "spec": {"accountId": ACCOUNT, "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/crossguard-access"),
                     "regions": ["eu-west-1"], "mode": "Automated"},
        }))
        .unwrap();
    server
        .seed(serde_json::json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "ManagedCluster",
            "metadata": {"name": "acme-prod", "namespace": "acme"},
            "spec": {"accountRef": {"name": "acme"}, "region": "eu-west-1", "clusterName": "prod"},
        }))
        .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_crossguard"))
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("CROSSGUARD_OPERATOR_PRINCIPAL", OPERATOR)
            .output()
            .unwrap()
    };
    // No ExternalId published yet: a clear error, nothing printed.
    let out = run(&[
        "onboarding-template",
        "--from",
        "customeraccount/acme",
        "-n",
        "acme",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wait for status.externalId"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let out = run(&[
        "onboarding-template",
        "--from",
        "customeraccount/nobody",
        "-n",
        "acme",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CustomerAccount acme/nobody not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Once the operator published it, the template is the account's.
    support::kubectl_ok(
        &kubeconfig,
        &[
            "patch",
            "customeraccount",
            "acme",
            "-n",
            "acme",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"externalId":"cgPublished0123456789"}}"#,
        ],
    );
    let out = run(&[
        "onboarding-template",
        "--from",
        "customeraccount/acme",
        "-n",
        "acme",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        t["Parameters"]["ExternalId"]["Default"],
        "cgPublished0123456789"
    );
    assert_eq!(t["Metadata"]["crossguard"]["mode"], "automated");
    assert_eq!(
        t["Metadata"]["crossguard"]["clusters"],
        serde_json::json!(["prod"])
    );
    assert_eq!(
        t["Metadata"]["crossguard"]["regions"],
        serde_json::json!(["eu-west-1"])
    );
    assert!(t["Description"].as_str().unwrap().contains(ACCOUNT));
    // Explicit flags override.
    let out = run(&[
        "onboarding-template",
        "--from",
        "ca/acme",
        "-n",
        "acme",
        "--mode",
        "read-only",
        "--region",
        "us-east-1",
    ]);
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["Metadata"]["crossguard"]["mode"], "read-only");
    assert_eq!(
        t["Metadata"]["crossguard"]["regions"],
        serde_json::json!(["us-east-1"])
    );
    // onboarding-rbac takes the clusters, their regions and the role from the same account.
    let out = run(&[
        "onboarding-rbac",
        "--from",
        "customeraccount/acme",
        "-n",
        "acme",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = String::from_utf8(out.stdout).unwrap();
    assert!(doc.contains(&format!("create-access-entry --cluster-name prod --region eu-west-1 --principal-arn arn:aws:iam::{ACCOUNT}:role/crossguard-access ")), "{doc}");
    assert!(doc.contains("crossguard-drain"));
}
