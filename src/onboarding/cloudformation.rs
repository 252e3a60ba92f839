//! The role as a CloudFormation template: the ExternalId and the operator principal are
//! template parameters (so one reviewed template serves every customer, as a Launch Stack
//! link or a StackSet across an AWS Organization), the CLI's values their defaults, and the
//! output `RoleArn` is what the operator puts in the CustomerAccount's `spec.roleArn`.

use serde_json::{Value, json};

use super::{
    CROSSGUARD_VERSION, EXTERNAL_ID_CHARS, EXTERNAL_ID_PARAMETER, OPERATOR_PRINCIPAL_PARAMETER,
    TEMPLATE_VERSION, TemplateOptions, role,
};

/// Logical id of the role in the template.
pub const ROLE_RESOURCE: &str = "CrossguardRole";
/// Key of the stack output holding the role's ARN (`onboarding-complete` reads it).
pub const ROLE_ARN_OUTPUT: &str = "RoleArn";

/// `AllowedPattern` of the `OperatorPrincipal` parameter: an IAM role ARN, the same rule as
/// [`crate::api::validate::is_role_arn`].
pub const OPERATOR_PRINCIPAL_PATTERN: &str =
    "^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$";

/// The CloudFormation template (JSON value; print it as JSON or YAML) creating the
/// crossguard role in the customer account.
pub fn template(opts: &TemplateOptions) -> Value {
    let role = role(opts);
    let policies: Vec<Value> = role
        .policies
        .iter()
        .map(|p| json!({ "PolicyName": p.name, "PolicyDocument": intrinsics(&p.document) }))
        .collect();
    let (external_id, _) = EXTERNAL_ID_PARAMETER;
    let (operator, _) = OPERATOR_PRINCIPAL_PARAMETER;
    let mut external_param = json!({
        "Type": "String",
        "Description": "The ExternalId crossguard shows in the CustomerAccount's status.externalId; the role trusts only sessions that present it",
        "MinLength": 2,
        "MaxLength": 1224,
        "AllowedPattern": format!("^[{EXTERNAL_ID_CHARS}]+$"),
        "ConstraintDescription": "2-1224 letters, digits or _+=,.@:/- (STS's rule for ExternalId)",
    });
    if let Some(value) = &opts.external_id {
        external_param["Default"] = json!(value);
    }
    let mut operator_param = json!({
        "Type": "String",
        "Description": "ARN of the crossguard operator's own IAM role, the only principal this role trusts",
        "AllowedPattern": OPERATOR_PRINCIPAL_PATTERN,
        "ConstraintDescription": "an IAM role ARN: arn:aws:iam::<12-digit account id>:role/<name>",
    });
    if let Some(value) = &opts.operator_principal {
        operator_param["Default"] = json!(value);
    }
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": opts.description(),
        "Metadata": {
            "crossguard": {
                "version": CROSSGUARD_VERSION,
                "templateVersion": TEMPLATE_VERSION,
                "mode": opts.mode.as_str(),
                "clusters": opts.clusters,
                "regions": opts.regions,
                "keyAudit": opts.key_audit_reads(),
                "keyAuditEnforce": opts.key_audit_enforce,
            },
            // Groups and labels the parameters in the CloudFormation console.
            "AWS::CloudFormation::Interface": {
                "ParameterGroups": [{
                    "Label": { "default": "Given by the crossguard operator" },
                    "Parameters": [external_id, operator],
                }],
                "ParameterLabels": {
                    external_id: { "default": "ExternalId (CustomerAccount status.externalId)" },
                    operator: { "default": "crossguard operator role ARN" },
                },
            },
        },
        "Parameters": {
            external_id: external_param,
            operator: operator_param,
        },
        "Resources": {
            ROLE_RESOURCE: {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": role.name,
                    "Description": role.description,
                    "MaxSessionDuration": role.max_session_seconds,
                    "AssumeRolePolicyDocument": intrinsics(&role.trust),
                    "Policies": policies,
                },
            },
        },
        "Outputs": {
            ROLE_ARN_OUTPUT: {
                "Description": "Put this ARN in the CustomerAccount's spec.roleArn",
                "Value": { "Fn::GetAtt": [ROLE_RESOURCE, "Arn"] },
            },
        },
    })
}

/// The model's placeholders as CloudFormation intrinsics: a string that is exactly a
/// parameter's placeholder becomes `{"Ref": …}`, any other string holding a placeholder
/// `{"Fn::Sub": …}` (whose `${AWS::Partition}` / `${AWS::AccountId}` syntax the model
/// already uses), and plain strings stay as they are.
fn intrinsics(value: &Value) -> Value {
    super::map_strings(value, &|s| {
        for (placeholder, (parameter, _)) in [
            (super::EXTERNAL_ID, EXTERNAL_ID_PARAMETER),
            (super::OPERATOR_PRINCIPAL, OPERATOR_PRINCIPAL_PARAMETER),
        ] {
            if s == placeholder {
                return json!({ "Ref": parameter });
            }
        }
        if s.contains("${") {
            json!({ "Fn::Sub": s })
        } else {
            json!(s)
        }
    })
}
