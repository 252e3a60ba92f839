//! The role as Terraform (HCL) for customers who manage IAM with Terraform: the same role,
//! trust policy and inline policies as the CloudFormation template (both are rendered from
//! [`super::role`]), with variables `external_id` and `operator_principal` (the CLI's
//! values their defaults) and the output `role_arn`.
//!
//! `terraform output -json` then prints `{"role_arn": {"sensitive": false, "type":
//! "string", "value": "arn:aws:iam::…:role/crossguard-access"}}`: the ARN is at
//! `.role_arn.value`.

use std::fmt::Write as _;

use super::{
    ACCOUNT, EXTERNAL_ID, EXTERNAL_ID_CHARS, EXTERNAL_ID_PARAMETER, OPERATOR_PRINCIPAL,
    OPERATOR_PRINCIPAL_PARAMETER, PARTITION, TemplateOptions, role,
};

/// Name of the Terraform output holding the role's ARN.
pub const ROLE_ARN_OUTPUT: &str = "role_arn";
/// The role's resource address (`aws_iam_role.<name>`).
pub const ROLE_RESOURCE: &str = "crossguard";

/// Each placeholder of the role model and the Terraform expression it becomes.
const INTERPOLATIONS: [(&str, &str); 4] = [
    (PARTITION, "data.aws_partition.current.partition"),
    (ACCOUNT, "data.aws_caller_identity.current.account_id"),
    (EXTERNAL_ID, "var.external_id"),
    (OPERATOR_PRINCIPAL, "var.operator_principal"),
];

/// The Terraform configuration (one file, HCL) creating the crossguard role.
pub fn render(opts: &TemplateOptions) -> String {
    let role = role(opts);
    let (_, external_var) = EXTERNAL_ID_PARAMETER;
    let (_, operator_var) = OPERATOR_PRINCIPAL_PARAMETER;
    let mut out = String::new();
    let _ = writeln!(out, "# {}", opts.description());
    out.push_str(
        "# Printed by `crossguard onboarding-template -o terraform`. Apply it in the customer account\n\
         # (terraform init && terraform apply), then hand the output to the crossguard operator:\n\
         #   terraform output -json   # {\"role_arn\": {\"value\": \"arn:aws:iam::…\", …}}\n\n",
    );
    out.push_str(
        "terraform {\n  required_providers {\n    aws = {\n      source  = \"hashicorp/aws\"\n      version = \">= 4.0\"\n    }\n  }\n}\n\n",
    );
    variable(
        &mut out,
        external_var,
        "The ExternalId crossguard shows in the CustomerAccount's status.externalId; the role trusts only sessions that present it.",
        opts.external_id.as_deref(),
        &format!(
            "length(var.{external_var}) >= 2 && length(var.{external_var}) <= 1224 && can(regex(\"^[{EXTERNAL_ID_CHARS}]+$\", var.{external_var}))"
        ),
        "external_id must be 2-1224 letters, digits or _+=,.@:/- (STS's rule for ExternalId).",
    );
    variable(
        &mut out,
        operator_var,
        "ARN of the crossguard operator's own IAM role, the only principal this role trusts.",
        opts.operator_principal.as_deref(),
        &format!(
            "can(regex(\"{}\", var.{operator_var}))",
            super::cloudformation::OPERATOR_PRINCIPAL_PATTERN
        ),
        "operator_principal must be an IAM role ARN: arn:aws:iam::<12-digit account id>:role/<name>.",
    );
    out.push_str(
        "data \"aws_partition\" \"current\" {}\n\ndata \"aws_caller_identity\" \"current\" {}\n\n",
    );
    let _ = write!(
        out,
        "resource \"aws_iam_role\" \"{ROLE_RESOURCE}\" {{\n  name                 = {}\n  description          = {}\n  max_session_duration = {}\n  assume_role_policy   = {}\n}}\n\n",
        string(&role.name),
        string(&role.description),
        role.max_session_seconds,
        heredoc(&role.trust),
    );
    for policy in &role.policies {
        let _ = write!(
            out,
            "resource \"aws_iam_role_policy\" \"{}\" {{\n  name   = {}\n  role   = aws_iam_role.{ROLE_RESOURCE}.id\n  policy = {}\n}}\n\n",
            policy.name.replace('-', "_"),
            string(policy.name),
            heredoc(&policy.document),
        );
    }
    let _ = write!(
        out,
        "output \"{ROLE_ARN_OUTPUT}\" {{\n  description = \"Put this ARN in the CustomerAccount's spec.roleArn\"\n  value       = aws_iam_role.{ROLE_RESOURCE}.arn\n}}\n"
    );
    out
}

fn variable(
    out: &mut String,
    name: &str,
    description: &str,
    default: Option<&str>,
    condition: &str,
    error: &str,
) {
    let _ = write!(
        out,
        "variable \"{name}\" {{\n  description = {}\n  type        = string\n",
        string(description)
    );
    if let Some(value) = default {
        let _ = writeln!(out, "  default     = {}", string(value));
    }
    let _ = write!(
        out,
        "\n  validation {{\n    condition     = {condition}\n    error_message = {}\n  }}\n}}\n\n",
        string(error)
    );
}

/// `s` as an HCL quoted string: `\` and `"` escaped, and `${` / `%{` doubled so that
/// nothing in the value is read as an interpolation or a template directive.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    escape_templates(&out)
}

fn escape_templates(s: &str) -> String {
    s.replace("${", "$${").replace("%{", "%%{")
}

/// A policy document as a heredoc of pretty-printed JSON: literal `${` and `%{` escaped,
/// then the model's placeholders turned into Terraform interpolations.
fn heredoc(document: &serde_json::Value) -> String {
    let json = serde_json::to_string_pretty(document).expect("a JSON value serializes");
    let mut text = escape_templates(&json);
    for (placeholder, expression) in INTERPOLATIONS {
        text = text.replace(&format!("${placeholder}"), &format!("${{{expression}}}"));
    }
    format!("<<EOT\n{text}\nEOT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_quotes_and_interpolation() {
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("${x} %{y}"), r#""$${x} %%{y}""#);
    }

    #[test]
    fn heredoc_turns_placeholders_into_interpolations_and_escapes_the_rest() {
        let doc = serde_json::json!({
            "a": format!("arn:{PARTITION}:iam::{ACCOUNT}:role/x"),
            "b": EXTERNAL_ID,
            "c": "${aws:username}",
        });
        let text = heredoc(&doc);
        assert!(text.starts_with("<<EOT\n") && text.ends_with("\nEOT"));
        assert!(text.contains(
            "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/x"
        ));
        assert!(text.contains("\"${var.external_id}\""));
        assert!(text.contains("$${aws:username}"));
    }
}
