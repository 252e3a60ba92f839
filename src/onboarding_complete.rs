//! `crossguard onboarding-complete`: the last step of onboarding a customer account. The
//! customer deployed the role (CloudFormation stack or Terraform) and hands back its
//! outputs; this sets the CustomerAccount's `spec.roleArn` from the `RoleArn` output (or
//! from `--role-arn`), after checking that it is an IAM role in that account, with a JSON
//! merge patch through the Kubernetes API (kubeconfig found as kubectl finds it:
//! `KUBECONFIG`, `~/.kube/config`, or in-cluster). The operator then verifies the role.
//!
//! Accepted stack outputs, under the names `crossguard onboarding-template` gives them:
//! - `aws cloudformation describe-stacks --stack-name S --query 'Stacks[0].Outputs' --output json`:
//!   `[{"OutputKey": "RoleArn", "OutputValue": "arn:aws:iam::…:role/…"}, …]`
//!   (the whole `describe-stacks` answer, `{"Stacks": [{"Outputs": […]}]}`, works too);
//! - `terraform output -json`: `{"role_arn": {"value": "arn:aws:iam::…:role/…", …}, …}`
//!   (the Terraform form's output name; `RoleArn` is accepted too).

use std::path::{Path, PathBuf};

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::Value;

use crate::api::CustomerAccount;
use crate::api::validate::is_role_arn;

/// The name of the CloudFormation stack output holding the role's ARN.
pub const ROLE_ARN_OUTPUT: &str = crate::onboarding::cloudformation::ROLE_ARN_OUTPUT;

/// The name of the Terraform output holding the role's ARN.
pub const TERRAFORM_ROLE_ARN_OUTPUT: &str = crate::onboarding::terraform::ROLE_ARN_OUTPUT;

/// Command-line arguments of `crossguard onboarding-complete`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["role_arn", "stack_outputs"])))]
pub struct Args {
    /// The account to complete: customeraccount/<name> (also ca/<name>, or just <name>).
    pub target: String,
    /// Namespace of the CustomerAccount (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The role's ARN, as the customer reported it.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The outputs of the customer's stack, from which the `RoleArn` output is read:
    /// `aws cloudformation describe-stacks --query 'Stacks[0].Outputs' --output json` or
    /// `terraform output -json`; `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub stack_outputs: Option<PathBuf>,
}

/// Why the role ARN could not be taken or set; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    /// The target is not `customeraccount/<name>`.
    #[error(
        "{0:?} is not a CustomerAccount: give customeraccount/<name> (or ca/<name>, or the name alone)"
    )]
    Target(String),
    /// The stack outputs file could not be read.
    #[error("reading the stack outputs {path}: {source}")]
    Read {
        /// The file given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The stack outputs are not JSON.
    #[error(
        "the stack outputs {path} are not JSON ({source}); give the output of `aws cloudformation describe-stacks --query 'Stacks[0].Outputs' --output json` or `terraform output -json`"
    )]
    Json {
        /// The file given.
        path: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The outputs are JSON of neither shape.
    #[error(
        "the stack outputs {path} are neither CloudFormation outputs (a list of {{OutputKey, OutputValue}}) nor `terraform output -json` (an object of {{value}}); give one of them"
    )]
    Shape {
        /// The file given.
        path: String,
    },
    /// The outputs are `null` or an empty list: the stack has no outputs (yet).
    #[error("{}", no_outputs(path, found, status.as_deref()))]
    NoOutputs {
        /// The file given.
        path: String,
        /// `null` or `[]`, as found.
        found: &'static str,
        /// The stack's `StackStatus`, when the file is a whole describe-stacks answer.
        status: Option<String>,
    },
    /// No `RoleArn` output (`role_arn` for Terraform), or one without a value.
    #[error(
        "the stack outputs {path} have no {ROLE_ARN_OUTPUT} output (Terraform: {TERRAFORM_ROLE_ARN_OUTPUT}) with a value (found: {found}); was the stack made from `crossguard onboarding-template`? Or give the ARN with --role-arn"
    )]
    MissingOutput {
        /// The file given.
        path: String,
        /// The output names present, comma-separated, or `none`.
        found: String,
    },
    /// The ARN is not an IAM role ARN.
    #[error("{0:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")]
    NotARole(String),
    /// The role is in another account than the CustomerAccount's.
    #[error(
        "the role {arn} is in account {role_account}, but CustomerAccount {name} is account {account_id}; the customer deployed the stack in another account, or this is another customer's stack"
    )]
    OtherAccount {
        /// The role's ARN.
        arn: String,
        /// The account in the ARN.
        role_account: String,
        /// The CustomerAccount's name.
        name: String,
        /// Its `spec.accountId`.
        account_id: String,
    },
    /// The CustomerAccount does not exist.
    #[error("CustomerAccount {name} not found in namespace {namespace}")]
    NotFound {
        /// Its name.
        name: String,
        /// Where it was looked for.
        namespace: String,
    },
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// The call.
        what: String,
        /// kube's error.
        source: kube::Error,
    },
}

/// The CustomerAccount's name from `customeraccount/<name>`, `customeraccounts/<name>`,
/// `customeraccount.crossguard.dev/<name>`, `ca/<name>` or a bare `<name>`.
pub fn parse_target(target: &str) -> Result<String, CompleteError> {
    let name = match target.split_once('/') {
        Some((kind, name))
            if matches!(
                kind.to_ascii_lowercase().as_str(),
                "customeraccount"
                    | "customeraccounts"
                    | "customeraccount.crossguard.dev"
                    | "customeraccounts.crossguard.dev"
                    | "ca"
            ) =>
        {
            name
        }
        Some(_) => return Err(CompleteError::Target(target.to_string())),
        None => target,
    };
    let dns_label = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if dns_label {
        Ok(name.to_string())
    } else {
        Err(CompleteError::Target(target.to_string()))
    }
}

fn no_outputs(path: &str, found: &str, status: Option<&str>) -> String {
    match status {
        Some(status) if status.ends_with("_COMPLETE") && !status.contains("ROLLBACK") => format!(
            "the stack in {path} is {status} but has no outputs ({found}): it was not made from `crossguard onboarding-template` (whose stack has a {ROLE_ARN_OUTPUT} output), or its outputs were removed; give the role's ARN with --role-arn"
        ),
        Some(status) => format!(
            "the stack in {path} is {status} and has no outputs ({found}) yet: wait until it is CREATE_COMPLETE (a *_FAILED or ROLLBACK status means the customer must fix and redeploy it), or give the ARN with --role-arn"
        ),
        None => format!(
            "the stack outputs {path} are empty ({found}): the stack has no outputs yet. Is it still being created, or did it fail? `aws cloudformation describe-stacks --stack-name <stack> --query 'Stacks[0].StackStatus'` must say CREATE_COMPLETE (or UPDATE_COMPLETE) before its {ROLE_ARN_OUTPUT} output exists; or give the ARN with --role-arn"
        ),
    }
}

/// The `RoleArn` output's value from stack outputs (`path` only names them in errors).
pub fn role_arn_from_outputs(outputs: &Value, path: &str) -> Result<String, CompleteError> {
    let missing = |found: Vec<&str>| CompleteError::MissingOutput {
        path: path.to_string(),
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
    };
    // The whole describe-stacks answer: its first stack's outputs.
    // (A stack without outputs has no `Outputs` key there.)
    let status = outputs
        .pointer("/Stacks/0/StackStatus")
        .and_then(Value::as_str)
        .map(str::to_string);
    let outputs = if outputs.get("Stacks").is_some() {
        outputs.pointer("/Stacks/0/Outputs").unwrap_or(&Value::Null)
    } else {
        outputs
    };
    match outputs {
        Value::Null => Err(CompleteError::NoOutputs {
            path: path.to_string(),
            found: "null",
            status,
        }),
        Value::Array(items) if items.is_empty() => Err(CompleteError::NoOutputs {
            path: path.to_string(),
            found: "[]",
            status,
        }),
        Value::Array(items) => {
            let keyed: Option<Vec<(&str, Option<&str>)>> = items
                .iter()
                .map(|o| {
                    let key = o.get("OutputKey")?.as_str()?;
                    Some((key, o.get("OutputValue").and_then(Value::as_str)))
                })
                .collect();
            let keyed = keyed.ok_or_else(|| CompleteError::Shape {
                path: path.to_string(),
            })?;
            match keyed.iter().find(|(k, _)| *k == ROLE_ARN_OUTPUT) {
                Some((_, Some(value))) => Ok(value.to_string()),
                Some((_, None)) => Err(missing(vec!["RoleArn without a value"])),
                None => Err(missing(keyed.iter().map(|(k, _)| *k).collect())),
            }
        }
        Value::Object(map) if map.values().all(|v| v.get("value").is_some()) => {
            let output = map
                .get(TERRAFORM_ROLE_ARN_OUTPUT)
                .or_else(|| map.get(ROLE_ARN_OUTPUT));
            match output.and_then(|v| v["value"].as_str()) {
                Some(value) => Ok(value.to_string()),
                None => Err(missing(map.keys().map(String::as_str).collect())),
            }
        }
        _ => Err(CompleteError::Shape {
            path: path.to_string(),
        }),
    }
}

/// Read the stack outputs from `path` (`-` for stdin) and take their `RoleArn`.
pub fn read_role_arn(path: &Path) -> Result<String, CompleteError> {
    let shown = path.display().to_string();
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|source| CompleteError::Read {
        path: shown.clone(),
        source,
    })?;
    let outputs: Value = serde_json::from_str(&text).map_err(|source| CompleteError::Json {
        path: shown.clone(),
        source,
    })?;
    role_arn_from_outputs(&outputs, &shown)
}

/// Check that `arn` is an IAM role in `account_id` (the CustomerAccount `name`'s).
pub fn check_role_arn(arn: &str, name: &str, account_id: &str) -> Result<(), CompleteError> {
    if !is_role_arn(arn) {
        return Err(CompleteError::NotARole(arn.to_string()));
    }
    // arn:<partition>:iam::<account>:role/<name>
    let role_account = arn.split(':').nth(4).unwrap_or_default();
    if role_account != account_id {
        return Err(CompleteError::OtherAccount {
            arn: arn.to_string(),
            role_account: role_account.to_string(),
            name: name.to_string(),
            account_id: account_id.to_string(),
        });
    }
    Ok(())
}

/// Set `spec.roleArn` of CustomerAccount `name` to `arn` after checking it belongs to the
/// account's `spec.accountId` (a JSON merge patch: nothing else of the spec is touched).
/// Returns the patched account.
pub async fn set_role_arn(
    client: kube::Client,
    namespace: &str,
    name: &str,
    arn: &str,
) -> Result<CustomerAccount, CompleteError> {
    let api: Api<CustomerAccount> = Api::namespaced(client, namespace);
    let account = api
        .get_opt(name)
        .await
        .map_err(|source| CompleteError::Kube {
            what: format!("reading CustomerAccount {name} in namespace {namespace}"),
            source,
        })?
        .ok_or_else(|| CompleteError::NotFound {
            name: name.to_string(),
            namespace: namespace.to_string(),
        })?;
    check_role_arn(arn, name, &account.spec.account_id)?;
    let patch = serde_json::json!({"spec": {"roleArn": arn}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| CompleteError::Kube {
            what: format!(
                "setting spec.roleArn of CustomerAccount {name} in namespace {namespace}"
            ),
            source,
        })
}

/// The whole command: find the ARN, check it, patch the account, say what happens next.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let name = parse_target(&args.target)?;
    let arn = match (&args.role_arn, &args.stack_outputs) {
        (Some(arn), _) => arn.trim().to_string(),
        (None, Some(path)) => read_role_arn(path)?,
        (None, None) => anyhow::bail!("give --role-arn ARN or --stack-outputs FILE"),
    };
    // Checked before connecting, so a bad ARN is reported even without a cluster.
    if !is_role_arn(&arn) {
        return Err(CompleteError::NotARole(arn).into());
    }
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!(
            "no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {e}"
        )
    })?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let account = set_role_arn(client, &namespace, &name, &arn).await?;
    println!(
        "customeraccount/{} in namespace {namespace}: spec.roleArn set to {arn}; crossguard verifies it now (kubectl get customeraccount {} -n {namespace} -w)",
        account.name_any(),
        account.name_any()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:iam::111122223333:role/crossguard-access";

    #[test]
    fn targets_name_a_customer_account() {
        for t in [
            "customeraccount/acme",
            "customeraccounts/acme",
            "CustomerAccount/acme",
            "ca/acme",
            "customeraccount.crossguard.dev/acme",
            "acme",
        ] {
            assert_eq!(parse_target(t).unwrap(), "acme", "{t}");
        }
        for t in [
            "managedcluster/acme",
            "customeraccount/",
            "ca/Acme",
            "a/b/c",
            "",
        ] {
            assert!(
                matches!(parse_target(t), Err(CompleteError::Target(_))),
                "{t}"
            );
        }
    }

    #[test]
    fn reads_role_arn_from_cloudformation_and_terraform_outputs() {
        let cfn = json!([
            {"OutputKey": "ExternalId", "OutputValue": "x"},
            {"OutputKey": "RoleArn", "OutputValue": ARN, "Description": "…"}
        ]);
        assert_eq!(role_arn_from_outputs(&cfn, "o.json").unwrap(), ARN);
        let describe = json!({"Stacks": [{"StackName": "s", "Outputs": cfn}]});
        assert_eq!(role_arn_from_outputs(&describe, "o.json").unwrap(), ARN);
        let tf = json!({
            "RoleArn": {"sensitive": false, "type": "string", "value": ARN},
            "role_name": {"sensitive": false, "type": "string", "value": "crossguard-access"}
        });
        assert_eq!(role_arn_from_outputs(&tf, "o.json").unwrap(), ARN);
        // What `terraform output -json` prints for onboarding-template -o terraform.
        let ours = json!({
            TERRAFORM_ROLE_ARN_OUTPUT: {"sensitive": false, "type": "string", "value": ARN}
        });
        assert_eq!(role_arn_from_outputs(&ours, "o.json").unwrap(), ARN);
    }

    #[test]
    fn outputs_without_role_arn_say_what_they_have() {
        let cfn = json!([{"OutputKey": "BucketName", "OutputValue": "b"}]);
        let err = role_arn_from_outputs(&cfn, "o.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no RoleArn output") && err.contains("BucketName"),
            "{err}"
        );
        let tf = json!({"roleArn": {"value": ARN}});
        let err = role_arn_from_outputs(&tf, "o.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("found: roleArn"), "{err}");
        let valueless = json!([{"OutputKey": "RoleArn", "OutputValue": null}]);
        let err = role_arn_from_outputs(&valueless, "o.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("RoleArn without a value"), "{err}");
        let none = role_arn_from_outputs(&json!({}), "o.json")
            .unwrap_err()
            .to_string();
        assert!(none.contains("found: none"), "{none}");
    }

    /// `--query 'Stacks[0].Outputs'` prints `null` for a stack still being created (and
    /// for what moto's `cloudformation deploy` leaves): say that, not "wrong shape".
    #[test]
    fn a_stack_without_outputs_is_named_as_such() {
        for (outputs, found, says) in [
            (json!(null), "null", "StackStatus"),
            (json!([]), "[]", "StackStatus"),
            (
                json!({"Stacks": [{"StackName": "s", "StackStatus": "CREATE_IN_PROGRESS"}]}),
                "null",
                "is CREATE_IN_PROGRESS",
            ),
            (
                json!({"Stacks": [{"StackName": "s", "StackStatus": "CREATE_COMPLETE"}]}),
                "null",
                "not made from `crossguard onboarding-template`",
            ),
        ] {
            let err = role_arn_from_outputs(&outputs, "o.json").unwrap_err();
            assert!(
                matches!(&err, CompleteError::NoOutputs { found: f, .. } if *f == found),
                "{outputs}: {err}"
            );
            let text = err.to_string();
            assert!(
                text.contains("no outputs") && text.contains(says) && text.contains("--role-arn"),
                "{text}"
            );
        }
        for shape in [
            json!("arn"),
            json!({"RoleArn": ARN}),
            json!([{"Key": "RoleArn"}]),
        ] {
            assert!(
                matches!(
                    role_arn_from_outputs(&shape, "o.json"),
                    Err(CompleteError::Shape { .. })
                ),
                "{shape}"
            );
        }
    }

    #[test]
    fn role_arn_must_be_a_role_in_the_account() {
        check_role_arn(ARN, "acme", "111122223333").unwrap();
        check_role_arn(
            "arn:aws-us-gov:iam::111122223333:role/path/r",
            "acme",
            "111122223333",
        )
        .unwrap();
        let other = check_role_arn(ARN, "acme", "999988887777")
            .unwrap_err()
            .to_string();
        assert!(
            other.contains("111122223333") && other.contains("999988887777"),
            "{other}"
        );
        for bad in [
            "arn:aws:iam::111122223333:user/bob",
            "arn:aws:iam::111122223333:policy/p",
            "crossguard-access",
            "",
        ] {
            assert!(
                matches!(
                    check_role_arn(bad, "acme", "111122223333"),
                    Err(CompleteError::NotARole(_))
                ),
                "{bad}"
            );
        }
    }
}
