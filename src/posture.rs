//! Role posture: compares the customer's role (trust policy, permission policies, session
//! length) with what crossguard needs, as printed by `crossguard onboarding-template`, and
//! names every difference that widens access. Pure functions over the documents IAM returns
//! (`GetRole`, `GetRolePolicy`, `GetPolicyVersion`); the controller stage makes the calls.
//!
//! Rules follow the IAM User Guide's policy evaluation logic and the Service Authorization
//! Reference (which condition keys each action supports); each check cites its source.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::onboarding::{
    AUTOMATED_ACTIONS, KEY_AUDIT_ENFORCE_ACTIONS, KEY_AUDIT_READ_ACTIONS, MANAGED_TAG,
    READ_ONLY_ACTIONS, ROLE_POSTURE_ACTIONS,
};

/// Longest session crossguard asks for (`CustomerAccount.spec.sessionDuration` is at most
/// 1h); a role allowing longer lets a leaked session outlive a revoked trust for longer.
pub const MAX_SESSION_SECONDS: i32 = 3600;

/// Sentence ending every [`summary`] that reports findings.
pub const FIX_HINT: &str =
    "Re-deploy the template printed by `crossguard onboarding-template` to fix the role.";

/// Upper bound of [`summary`]'s length in bytes (a Kubernetes condition message stays short).
pub const SUMMARY_LIMIT: usize = 1000;

/// At most this many items are listed in one finding's message.
const LIST_LIMIT: usize = 5;

/// The role as IAM returns it: trust policy, session limit and every permission policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleDocuments {
    /// The role's ARN.
    pub role_arn: String,
    /// The trust policy (`AssumeRolePolicyDocument`), URL-decoded JSON.
    pub trust_policy: Value,
    /// `MaxSessionDuration` in seconds.
    pub max_session_duration: i32,
    /// Inline policies: (policy name, document).
    pub inline: Vec<(String, Value)>,
    /// Attached managed policies: (policy ARN, default version's document).
    pub attached: Vec<(String, Value)>,
}

/// What crossguard expects of the role for one CustomerAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// The account's ExternalId (`status.externalId`).
    pub external_id: String,
    /// IAM role ARN of the operator, when known; then no other principal may be trusted.
    pub operator_principal: Option<String>,
    /// Automated mode: the scale-in mutations are used.
    pub automated: bool,
    /// The access-key audit reads are used.
    pub key_audit: bool,
    /// Deactivating keys of managed users is used (implies `key_audit`).
    pub key_audit_enforce: bool,
}

impl Expectations {
    /// Every action crossguard calls with this role, from the constants the onboarding
    /// template grants.
    pub fn used_actions(&self) -> Vec<&'static str> {
        let mut used: Vec<&'static str> = READ_ONLY_ACTIONS
            .iter()
            .chain(ROLE_POSTURE_ACTIONS)
            .copied()
            .collect();
        if self.automated {
            used.extend(AUTOMATED_ACTIONS);
        }
        if self.key_audit || self.key_audit_enforce {
            used.extend(KEY_AUDIT_READ_ACTIONS);
        }
        if self.key_audit_enforce {
            used.extend(KEY_AUDIT_ENFORCE_ACTIONS);
        }
        used
    }
}

/// One difference between the role and what crossguard needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// "trust policy", the inline policy's name, the attached policy's ARN, or the role's
    /// ARN for role settings.
    pub policy: String,
    /// The statement's Sid, else "statement N" (1-based); "MaxSessionDuration" for the
    /// session limit.
    pub statement: String,
    /// What is wrong.
    pub kind: FindingKind,
    /// What is wrong, for a customer's engineer; never contains ExternalId values.
    pub message: String,
}

/// Kinds of [`Finding`], serialized CamelCase like condition reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum FindingKind {
    /// A trust statement allows `sts:AssumeRole` without `StringEquals` on `sts:ExternalId`
    /// (IAM User Guide, "Access to AWS accounts owned by third parties": the ExternalId is
    /// what stops a confused deputy).
    ExternalIdMissing,
    /// The trust statement requires an ExternalId other than (or besides) this account's.
    ExternalIdMismatch,
    /// The trust policy trusts more than crossguard's operator: `*`, an account root or bare
    /// account id (IAM User Guide, "AWS JSON policy elements: Principal": these delegate to
    /// every principal of the account), `NotPrincipal`, a service or federated principal,
    /// or a role other than the known operator.
    TrustTooBroad,
    /// An Allow statement grants actions crossguard does not call: `*`, `service:*`,
    /// wildcards, `NotAction`, unused actions such as `iam:PassRole`, or an AWS managed
    /// policy wider than the template.
    ExcessGrant,
    /// A mutating action is granted without requiring `crossguard.dev/managed=true` through
    /// a resource-tag condition key the action supports.
    UnconditionedMutation,
    /// A tag condition key the action never carries (another service's `ResourceTag`, or
    /// `aws:RequestTag` on an action that creates nothing): the statement can never match,
    /// so crossguard's call is denied (IAM User Guide, "Condition element": a missing key
    /// makes a positive condition operator false).
    UnmatchableTagCondition,
    /// `MaxSessionDuration` above [`MAX_SESSION_SECONDS`].
    SessionTooLong,
}

/// Every finding for the role, in document order: trust policy, inline policies, attached
/// policies, then role settings. Deny statements are never findings.
pub fn check(docs: &RoleDocuments, expect: &Expectations) -> Vec<Finding> {
    let mut out = check_trust(&docs.trust_policy, expect);
    let used: Vec<String> = expect
        .used_actions()
        .iter()
        .map(|a| a.to_ascii_lowercase())
        .collect();
    for (name, doc) in docs.inline.iter().chain(&docs.attached) {
        check_permissions(name, doc, &used, &mut out);
    }
    if docs.max_session_duration > MAX_SESSION_SECONDS {
        out.push(Finding {
            policy: docs.role_arn.clone(),
            statement: "MaxSessionDuration".into(),
            kind: FindingKind::SessionTooLong,
            message: format!(
                "allows sessions of {} s; crossguard needs at most {MAX_SESSION_SECONDS} s \
                 (1 hour), and a longer session outlives a revoked trust for longer",
                docs.max_session_duration
            ),
        });
    }
    out
}

/// One sentence naming each finding (policy, statement, what), for a Kubernetes condition
/// message, at most [`SUMMARY_LIMIT`] bytes: findings that do not fit are counted as
/// "and N more". Ends with [`FIX_HINT`].
pub fn summary(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "The role trusts only crossguard's operator with this account's ExternalId \
                and grants nothing beyond what crossguard uses."
            .into();
    }
    let n = findings.len();
    let intro = format!(
        "The role has {n} posture problem{}: ",
        if n == 1 { "" } else { "s" }
    );
    let tail = format!(". {FIX_HINT}");
    // Room for the longest possible "; and N more".
    let more_room = format!("; and {n} more").len();
    let budget = SUMMARY_LIMIT.saturating_sub(intro.len() + tail.len() + more_room);
    let mut body = String::new();
    let mut shown = 0;
    for f in findings {
        let item = format!("{} {}: {}", f.policy, f.statement, f.message);
        let sep = if body.is_empty() { "" } else { "; " };
        if body.len() + sep.len() + item.len() <= budget {
            body.push_str(sep);
            body.push_str(&item);
            shown += 1;
        } else if body.is_empty() {
            // A single oversized finding is cut rather than dropped.
            body = truncate(&item, budget.saturating_sub(3));
            body.push_str("...");
            shown += 1;
        } else {
            break;
        }
    }
    if shown < n {
        body.push_str(&format!("; and {} more", n - shown));
    }
    format!("{intro}{body}{tail}")
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// `Statement` is an object or a list of objects (IAM User Guide, "Statement" element).
fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => Vec::new(),
    }
}

fn label(stmt: &Value, index: usize) -> String {
    match stmt["Sid"].as_str() {
        Some(sid) if !sid.is_empty() => sid.to_owned(),
        _ => format!("statement {}", index + 1),
    }
}

/// A policy value that is a string or a list of strings.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn is_allow(stmt: &Value) -> bool {
    stmt["Effect"].as_str() == Some("Allow")
}

/// IAM action matching: case-insensitive, `*` any run of characters, `?` one character
/// (IAM User Guide, "Action" element).
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<u8> = pattern.bytes().map(|b| b.to_ascii_lowercase()).collect();
    let t: Vec<u8> = text.bytes().map(|b| b.to_ascii_lowercase()).collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Whether an Allow statement covers `action` through `Action` or `NotAction`.
fn covers(stmt: &Value, action: &str) -> bool {
    if let Some(not) = stmt.get("NotAction") {
        return !strings(not).iter().any(|p| glob(p, action));
    }
    strings(&stmt["Action"]).iter().any(|p| glob(p, action))
}

fn list(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(LIST_LIMIT)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LIST_LIMIT {
        s.push_str(&format!(" and {} more", items.len() - LIST_LIMIT));
    }
    s
}

fn check_trust(trust: &Value, expect: &Expectations) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, stmt) in statements(trust).into_iter().enumerate() {
        if !is_allow(stmt) {
            continue;
        }
        let finding = |kind, message| Finding {
            policy: "trust policy".into(),
            statement: label(stmt, i),
            kind,
            message,
        };
        let broad = broad_principals(stmt, expect.operator_principal.as_deref());
        if !broad.is_empty() {
            out.push(finding(
                FindingKind::TrustTooBroad,
                format!("trusts more than crossguard's operator: {}", list(&broad)),
            ));
        }
        if covers(stmt, "sts:AssumeRole")
            && let Some((kind, message)) = external_id_problem(stmt, &expect.external_id)
        {
            out.push(finding(kind, message));
        }
    }
    out
}

/// Principals of an Allow trust statement other than crossguard's operator.
fn broad_principals(stmt: &Value, operator: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if stmt.get("NotPrincipal").is_some() {
        out.push("NotPrincipal (every principal not listed)".to_owned());
    }
    match &stmt["Principal"] {
        Value::String(s) if s == "*" => out.push("every principal (*)".to_owned()),
        Value::Object(m) => {
            for (kind, values) in m {
                for v in strings(values) {
                    if kind != "AWS" {
                        out.push(format!("{kind} principal {v}"));
                    } else if v == "*" {
                        out.push("every AWS principal (*)".to_owned());
                    } else if let Some(account) = account_of_root(v) {
                        out.push(format!("every principal of account {account} ({v})"));
                    } else if matches!(operator, Some(op) if op != v) {
                        out.push(format!("{v}, which is not the operator"));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// The account of `arn:<partition>:iam::<account>:root` or a bare 12-digit account id,
/// which both delegate trust to every principal of that account.
fn account_of_root(principal: &str) -> Option<&str> {
    let is_account = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    if is_account(principal) {
        return Some(principal);
    }
    let parts: Vec<&str> = principal.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, "root"] if is_account(account) => Some(*account),
        _ => None,
    }
}

/// `sts:ExternalId` must be required with `StringEquals` and equal this account's. The
/// value found is never put in a message: it may be another tenant's ExternalId.
fn external_id_problem(stmt: &Value, expected: &str) -> Option<(FindingKind, String)> {
    let found = stmt["Condition"]["StringEquals"]
        .as_object()
        .and_then(|m| find_key(m, "sts:ExternalId"));
    let Some(values) = found else {
        return Some((
            FindingKind::ExternalIdMissing,
            "allows sts:AssumeRole without requiring this account's ExternalId \
             (StringEquals on sts:ExternalId)"
                .into(),
        ));
    };
    let values = strings(values);
    if values == [expected] {
        None
    } else if values.contains(&expected) {
        Some((
            FindingKind::ExternalIdMismatch,
            "accepts sts:ExternalId values besides this account's ExternalId".into(),
        ))
    } else {
        Some((
            FindingKind::ExternalIdMismatch,
            "requires an sts:ExternalId that differs from this account's ExternalId".into(),
        ))
    }
}

/// Condition keys are case-insensitive (IAM User Guide, "Condition element").
fn find_key<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Mutating actions crossguard may be granted; each must be limited to managed resources.
fn mutating_actions() -> impl Iterator<Item = &'static str> {
    AUTOMATED_ACTIONS
        .iter()
        .chain(KEY_AUDIT_ENFORCE_ACTIONS)
        .copied()
}

/// Prefixes of the `<prefix>:ResourceTag/<key>` condition keys an action supports, per the
/// Service Authorization Reference: `autoscaling:TerminateInstanceInAutoScalingGroup`
/// (resource `autoScalingGroup`) takes `autoscaling:ResourceTag` and `aws:ResourceTag`;
/// `eks:UpdateNodegroupConfig` (resource `nodegroup`) only `aws:ResourceTag`;
/// `iam:UpdateAccessKey` (resource `user`) `iam:ResourceTag` and `aws:ResourceTag`.
fn resource_tag_prefixes(action: &str) -> &'static [&'static str] {
    match action.split(':').next().unwrap_or_default() {
        "autoscaling" => &["autoscaling", "aws"],
        "iam" => &["iam", "aws"],
        _ => &["aws"],
    }
}

/// Operators under which an absent key still matches: negated ones, `...IfExists`, `Null`
/// and `ForAllValues:` (IAM User Guide, "Condition operators").
fn matches_when_absent(operator: &str) -> bool {
    operator.contains("Not")
        || operator.ends_with("IfExists")
        || operator == "Null"
        || operator.starts_with("ForAllValues:")
}

/// For one mutating action of an Allow statement: the tag keys it can never carry, and
/// whether `crossguard.dev/managed=true` is required through a key it does carry.
fn tag_condition(stmt: &Value, action: &str) -> (Vec<String>, bool) {
    let prefixes = resource_tag_prefixes(action);
    let mut unmatchable = Vec::new();
    let mut managed = false;
    let Some(conditions) = stmt["Condition"].as_object() else {
        return (unmatchable, managed);
    };
    for (operator, block) in conditions {
        let Some(block) = block.as_object() else {
            continue;
        };
        for (key, values) in block {
            let lower = key.to_ascii_lowercase();
            let Some((prefix, rest)) = lower.split_once(':') else {
                continue;
            };
            if let Some(tag) = rest.strip_prefix("resourcetag/") {
                if !prefixes.contains(&prefix) {
                    if !matches_when_absent(operator) {
                        unmatchable.push(format!("{key} on {action}"));
                    }
                } else if tag.eq_ignore_ascii_case(MANAGED_TAG) && requires_true(operator, values) {
                    managed = true;
                }
            } else if prefix == "aws"
                && rest.starts_with("requesttag/")
                && !matches_when_absent(operator)
            {
                // Scale-in and key deactivation create nothing, so no request carries tags.
                unmatchable.push(format!("{key} on {action}"));
            }
        }
    }
    (unmatchable, managed)
}

fn requires_true(operator: &str, values: &Value) -> bool {
    let values = strings(values);
    match operator {
        "StringEquals" => values == ["true"],
        "StringEqualsIgnoreCase" => values.len() == 1 && values[0].eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn is_aws_managed(policy_arn: &str) -> bool {
    let parts: Vec<&str> = policy_arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "iam", "", "aws", rest] if rest.starts_with("policy/"))
}

/// The patterns of an Allow statement that grant more than `used` (lowercase actions).
fn excess_patterns(stmt: &Value, used: &[String]) -> Vec<String> {
    let mut excess = Vec::new();
    if stmt.get("NotAction").is_some() {
        excess.push("NotAction (every action not listed)".to_owned());
    }
    for pattern in strings(&stmt["Action"]) {
        let lower = pattern.to_ascii_lowercase();
        let covered: Vec<&String> = used.iter().filter(|u| glob(&lower, u)).collect();
        if lower == "*" {
            excess.push("* (every action of every service)".to_owned());
        } else if let Some(service) = lower.strip_suffix(":*") {
            excess.push(format!(
                "{pattern} (every {service} action; crossguard uses {})",
                covered.len()
            ));
        } else if lower.contains(['*', '?']) {
            excess.push(if covered.is_empty() {
                format!("{pattern} (crossguard uses none of what it matches)")
            } else {
                format!(
                    "{pattern} (more than the {} used action{} it covers)",
                    covered.len(),
                    if covered.len() == 1 { "" } else { "s" }
                )
            });
        } else if lower == "iam:passrole" {
            excess.push(format!(
                "{pattern} (hands roles to AWS services, which then act with them)"
            ));
        } else if covered.is_empty() {
            excess.push(pattern.to_owned());
        }
    }
    excess.dedup();
    excess
}

fn check_permissions(name: &str, doc: &Value, used: &[String], out: &mut Vec<Finding>) {
    let aws_managed = is_aws_managed(name);
    for (i, stmt) in statements(doc).into_iter().enumerate() {
        if !is_allow(stmt) {
            continue;
        }
        let finding = |kind, message| Finding {
            policy: name.to_owned(),
            statement: label(stmt, i),
            kind,
            message,
        };
        let excess = excess_patterns(stmt, used);
        if !excess.is_empty() {
            let message = if aws_managed {
                format!(
                    "AWS managed policy grants more than crossguard uses ({}); detach it",
                    list(&excess)
                )
            } else {
                format!("grants more than crossguard uses: {}", list(&excess))
            };
            out.push(finding(FindingKind::ExcessGrant, message));
        }
        let mut unconditioned = Vec::new();
        let mut unmatchable = Vec::new();
        for action in mutating_actions().filter(|a| covers(stmt, a)) {
            let (bad_keys, managed) = tag_condition(stmt, action);
            if !bad_keys.is_empty() {
                unmatchable.extend(bad_keys);
            } else if !managed {
                unconditioned.push(action.to_owned());
            }
        }
        if !unconditioned.is_empty() {
            out.push(finding(
                FindingKind::UnconditionedMutation,
                format!(
                    "grants {} without requiring the resource tag {MANAGED_TAG}=true",
                    list(&unconditioned)
                ),
            ));
        }
        if !unmatchable.is_empty() {
            out.push(finding(
                FindingKind::UnmatchableTagCondition,
                format!(
                    "conditions on tag keys the action never carries, so crossguard's call \
                     is denied: {}",
                    list(&unmatchable)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onboarding::{self, Mode, TemplateOptions};
    use serde_json::json;

    const ACCOUNT: &str = "111122223333";
    const OPERATOR: &str = "arn:aws:iam::999988887777:role/crossguard-operator";
    const EXTERNAL_ID: &str = "cg-ext-0123456789abcdef";

    /// Resolves `Fn::Sub` and `Ref` of the pseudo parameters and of the template's
    /// parameters (deployed with their defaults), as CloudFormation would in the
    /// commercial partition.
    fn resolve(v: &Value) -> Value {
        let pseudo = |s: &str| {
            s.replace("${AWS::Partition}", "aws")
                .replace("${AWS::AccountId}", ACCOUNT)
                .replace("${ExternalId}", EXTERNAL_ID)
                .replace("${OperatorPrincipal}", OPERATOR)
        };
        match v {
            Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
                Value::String(pseudo(m["Fn::Sub"].as_str().unwrap()))
            }
            Value::Object(m) if m.len() == 1 && m.contains_key("Ref") => {
                Value::String(pseudo(&format!("${{{}}}", m["Ref"].as_str().unwrap())))
            }
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), resolve(v))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(resolve).collect()),
            other => other.clone(),
        }
    }

    /// The role a deployed template creates, as IAM would return it.
    fn role_from_template(o: &TemplateOptions) -> RoleDocuments {
        let t = resolve(&onboarding::template(o));
        let props = &t["Resources"]["CrossguardRole"]["Properties"];
        RoleDocuments {
            role_arn: format!(
                "arn:aws:iam::{ACCOUNT}:role/{}",
                props["RoleName"].as_str().unwrap()
            ),
            trust_policy: props["AssumeRolePolicyDocument"].clone(),
            max_session_duration: props["MaxSessionDuration"].as_i64().unwrap() as i32,
            inline: props["Policies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["PolicyName"].as_str().unwrap().to_owned(),
                        p["PolicyDocument"].clone(),
                    )
                })
                .collect(),
            attached: Vec::new(),
        }
    }

    fn options(mode: Mode, key_audit: bool, enforce: bool, source: bool) -> TemplateOptions {
        TemplateOptions {
            account_id: Some(ACCOUNT.into()),
            mode,
            clusters: vec!["prod".into(), "staging".into()],
            regions: vec![],
            operator_principal: Some(OPERATOR.into()),
            external_id: Some(EXTERNAL_ID.into()),
            generic: false,
            require_source_identity: source,
            role_name: "crossguard-access".into(),
            key_audit,
            key_audit_enforce: enforce,
        }
    }

    fn expect(automated: bool) -> Expectations {
        Expectations {
            external_id: EXTERNAL_ID.into(),
            operator_principal: Some(OPERATOR.into()),
            automated,
            key_audit: false,
            key_audit_enforce: false,
        }
    }

    /// The automated template's role, clean, to which each test adds one problem.
    fn base() -> RoleDocuments {
        role_from_template(&options(Mode::Automated, false, false, true))
    }

    fn with_inline(statement: Value) -> Vec<Finding> {
        let mut role = base();
        role.inline.push((
            "extra".into(),
            json!({ "Version": "2012-10-17", "Statement": [statement] }),
        ));
        check(&role, &expect(true))
    }

    fn with_trust(statement: Value) -> Vec<Finding> {
        let mut role = base();
        role.trust_policy = json!({ "Version": "2012-10-17", "Statement": [statement] });
        check(&role, &expect(true))
    }

    fn only(findings: &[Finding], kind: FindingKind) -> &Finding {
        let of_kind: Vec<&Finding> = findings.iter().filter(|f| f.kind == kind).collect();
        assert_eq!(of_kind.len(), 1, "{kind:?} in {findings:#?}");
        of_kind[0]
    }

    fn assume(principal: Value, condition: Value) -> Value {
        json!({
            "Sid": "Assume",
            "Effect": "Allow",
            "Principal": principal,
            "Action": "sts:AssumeRole",
            "Condition": condition,
        })
    }

    fn with_external_id() -> Value {
        json!({ "StringEquals": { "sts:ExternalId": EXTERNAL_ID } })
    }

    #[test]
    fn every_template_variant_has_no_findings() {
        for mode in [Mode::ReadOnly, Mode::Automated] {
            for (key_audit, enforce) in [(false, false), (true, false), (false, true), (true, true)]
            {
                for source in [false, true] {
                    let role = role_from_template(&options(mode, key_audit, enforce, source));
                    for operator in [Some(OPERATOR.to_owned()), None] {
                        let e = Expectations {
                            external_id: EXTERNAL_ID.into(),
                            operator_principal: operator,
                            automated: mode == Mode::Automated,
                            key_audit,
                            key_audit_enforce: enforce,
                        };
                        assert_eq!(check(&role, &e), [], "{mode:?} {key_audit} {enforce}");
                    }
                }
            }
        }
    }

    #[test]
    fn grants_of_a_wider_mode_are_excess() {
        let role = role_from_template(&options(Mode::Automated, true, true, false));
        let e = expect(false);
        let findings = check(&role, &e);
        let kinds: Vec<FindingKind> = findings.iter().map(|f| f.kind).collect();
        assert!(
            kinds.iter().all(|k| *k == FindingKind::ExcessGrant),
            "{findings:#?}"
        );
        let text = format!("{findings:?}");
        for a in [
            "eks:UpdateNodegroupConfig",
            "iam:ListUsers",
            "iam:UpdateAccessKey",
        ] {
            assert!(text.contains(a), "{a} not reported");
        }
        assert!(findings.iter().any(|f| f.statement == "ScaleInManaged0"));
    }

    #[test]
    fn read_only_access_attached_is_excess() {
        let mut role = base();
        role.attached.push((
            "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
            json!({ "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Action": ["ec2:Describe*", "eks:Describe*", "iam:Get*", "s3:Get*"],
                "Resource": "*",
            }]}),
        ));
        let findings = check(&role, &expect(true));
        let f = only(&findings, FindingKind::ExcessGrant);
        assert_eq!(f.policy, "arn:aws:iam::aws:policy/ReadOnlyAccess");
        assert_eq!(f.statement, "statement 1");
        assert!(f.message.starts_with("AWS managed policy"), "{}", f.message);
        assert!(
            f.message
                .contains("ec2:Describe* (more than the 4 used actions it covers)")
        );
        assert!(
            f.message
                .contains("s3:Get* (crossguard uses none of what it matches)")
        );
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn star_action_is_excess_and_unconditioned() {
        let findings =
            with_inline(json!({ "Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "*" }));
        let f = only(&findings, FindingKind::ExcessGrant);
        assert_eq!((f.policy.as_str(), f.statement.as_str()), ("extra", "All"));
        assert!(
            f.message.contains("* (every action of every service)"),
            "{}",
            f.message
        );
        let f = only(&findings, FindingKind::UnconditionedMutation);
        assert!(f.message.contains("eks:UpdateNodegroupConfig"));
        assert!(f.message.contains("iam:UpdateAccessKey"));
    }

    #[test]
    fn service_wildcard_is_excess_even_with_the_tag_condition() {
        let findings = with_inline(json!({
            "Effect": "Allow",
            "Action": "EKS:*",
            "Resource": "*",
            "Condition": { "StringEquals": { "aws:ResourceTag/crossguard.dev/managed": "true" } },
        }));
        let f = only(&findings, FindingKind::ExcessGrant);
        assert_eq!(f.statement, "statement 1");
        assert!(
            f.message
                .contains("EKS:* (every eks action; crossguard uses 4)"),
            "{}",
            f.message
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn pass_role_is_excess() {
        let findings = with_inline(json!({
            "Sid": "Pass", "Effect": "Allow", "Action": ["eks:DescribeCluster", "iam:PassRole"], "Resource": "*",
        }));
        let f = only(&findings, FindingKind::ExcessGrant);
        assert_eq!(f.statement, "Pass");
        assert!(
            f.message.contains("iam:PassRole (hands roles"),
            "{}",
            f.message
        );
        assert!(!f.message.contains("DescribeCluster"));
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn not_action_is_excess() {
        let findings = with_inline(json!({
            "Sid": "AllButIam", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*",
        }));
        let f = only(&findings, FindingKind::ExcessGrant);
        assert_eq!(f.statement, "AllButIam");
        assert!(f.message.contains("NotAction (every action not listed)"));
        // It covers the scale-in actions, with no tag condition.
        let f = only(&findings, FindingKind::UnconditionedMutation);
        assert!(
            f.message
                .contains("autoscaling:TerminateInstanceInAutoScalingGroup")
        );
        assert!(!f.message.contains("iam:UpdateAccessKey"));
    }

    #[test]
    fn deny_statements_are_never_findings() {
        let findings = with_inline(json!({ "Effect": "Deny", "NotAction": "*", "Resource": "*" }));
        assert_eq!(findings, []);
    }

    #[test]
    fn trust_without_external_id_is_reported() {
        let findings = with_trust(assume(json!({ "AWS": OPERATOR }), json!({})));
        let f = only(&findings, FindingKind::ExternalIdMissing);
        assert_eq!(
            (f.policy.as_str(), f.statement.as_str()),
            ("trust policy", "Assume")
        );
        assert_eq!(findings.len(), 1);
        // StringLike (a pattern) is not requiring the ExternalId.
        let findings = with_trust(assume(
            json!({ "AWS": OPERATOR }),
            json!({ "StringLike": { "sts:ExternalId": "*" } }),
        ));
        only(&findings, FindingKind::ExternalIdMissing);
        // sts:* and * also allow AssumeRole; a statement in list form too.
        for action in [
            json!("sts:*"),
            json!("*"),
            json!(["sts:TagSession", "STS:AssumeRole"]),
        ] {
            let mut s = assume(json!({ "AWS": OPERATOR }), json!({}));
            s["Action"] = action;
            only(&with_trust(s), FindingKind::ExternalIdMissing);
        }
    }

    #[test]
    fn wrong_external_id_is_reported_without_its_value() {
        let other = "other-tenant-ext-id-5551234";
        for value in [json!(other), json!([EXTERNAL_ID, other])] {
            let findings = with_trust(assume(
                json!({ "AWS": OPERATOR }),
                json!({ "StringEquals": { "sts:ExternalId": value } }),
            ));
            let f = only(&findings, FindingKind::ExternalIdMismatch);
            assert_eq!(f.statement, "Assume");
            assert!(!format!("{findings:?}").contains(other));
            assert!(!summary(&findings).contains(other));
            assert!(!summary(&findings).contains(EXTERNAL_ID));
        }
    }

    #[test]
    fn account_root_principal_is_too_broad() {
        for root in [
            "arn:aws:iam::999988887777:root",
            "arn:aws-us-gov:iam::999988887777:root",
            "999988887777",
        ] {
            let findings = with_trust(assume(
                json!({ "AWS": [OPERATOR, root] }),
                with_external_id(),
            ));
            let f = only(&findings, FindingKind::TrustTooBroad);
            assert_eq!(f.statement, "Assume");
            assert!(
                f.message
                    .contains("every principal of account 999988887777"),
                "{}",
                f.message
            );
            assert_eq!(findings.len(), 1);
        }
    }

    #[test]
    fn star_principal_is_too_broad() {
        for principal in [json!("*"), json!({ "AWS": "*" })] {
            let findings = with_trust(assume(principal, with_external_id()));
            let f = only(&findings, FindingKind::TrustTooBroad);
            assert!(f.message.contains("(*)"), "{}", f.message);
        }
    }

    #[test]
    fn another_role_service_or_not_principal_is_too_broad() {
        let other = "arn:aws:iam::999988887777:role/someone-else";
        let f = with_trust(assume(json!({ "AWS": other }), with_external_id()));
        assert!(only(&f, FindingKind::TrustTooBroad).message.contains(other));
        // Without a known operator, a specific role cannot be judged.
        let mut role = base();
        role.trust_policy =
            json!({ "Statement": assume(json!({ "AWS": other }), with_external_id()) });
        let mut e = expect(true);
        e.operator_principal = None;
        assert_eq!(check(&role, &e), []);
        let f = with_trust(json!({
            "Effect": "Allow", "Principal": { "Service": "ec2.amazonaws.com" }, "Action": "sts:AssumeRole",
        }));
        assert!(
            only(&f, FindingKind::TrustTooBroad)
                .message
                .contains("Service principal ec2.amazonaws.com")
        );
        let f = with_trust(json!({
            "Effect": "Allow", "NotPrincipal": { "AWS": OPERATOR }, "Action": "sts:AssumeRole",
            "Condition": with_external_id(),
        }));
        assert!(
            only(&f, FindingKind::TrustTooBroad)
                .message
                .contains("NotPrincipal")
        );
    }

    #[test]
    fn unconditioned_update_nodegroup_config_is_reported() {
        let findings = with_inline(json!({
            "Sid": "Scale", "Effect": "Allow", "Action": "eks:UpdateNodegroupConfig", "Resource": "*",
        }));
        let f = only(&findings, FindingKind::UnconditionedMutation);
        assert_eq!(
            (f.policy.as_str(), f.statement.as_str()),
            ("extra", "Scale")
        );
        assert!(f.message.contains("eks:UpdateNodegroupConfig"));
        assert!(f.message.contains("crossguard.dev/managed=true"));
        assert_eq!(findings.len(), 1);
        // IfExists passes when the tag is absent, so it does not limit to managed resources.
        let findings = with_inline(json!({
            "Effect": "Allow", "Action": "eks:UpdateNodegroupConfig", "Resource": "*",
            "Condition": { "StringEqualsIfExists": { "aws:ResourceTag/crossguard.dev/managed": "true" } },
        }));
        only(&findings, FindingKind::UnconditionedMutation);
    }

    #[test]
    fn autoscaling_tag_key_on_an_eks_action_is_unmatchable() {
        let findings = with_inline(json!({
            "Sid": "Scale", "Effect": "Allow",
            "Action": ["eks:UpdateNodegroupConfig", "autoscaling:TerminateInstanceInAutoScalingGroup"],
            "Resource": "*",
            "Condition": { "StringEquals": { "autoscaling:ResourceTag/crossguard.dev/managed": "true" } },
        }));
        let f = only(&findings, FindingKind::UnmatchableTagCondition);
        assert_eq!(f.statement, "Scale");
        assert!(
            f.message.contains(
                "autoscaling:ResourceTag/crossguard.dev/managed on eks:UpdateNodegroupConfig"
            ),
            "{}",
            f.message
        );
        // The same key is valid for the autoscaling action.
        assert!(!f.message.contains("on autoscaling:"));
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn request_tag_on_terminate_is_unmatchable() {
        let findings = with_inline(json!({
            "Sid": "Terminate", "Effect": "Allow",
            "Action": "autoscaling:TerminateInstanceInAutoScalingGroup", "Resource": "*",
            "Condition": { "StringEquals": { "aws:RequestTag/crossguard.dev/managed": "true" } },
        }));
        let f = only(&findings, FindingKind::UnmatchableTagCondition);
        assert_eq!(f.statement, "Terminate");
        assert!(f.message.contains(
            "aws:RequestTag/crossguard.dev/managed on autoscaling:TerminateInstanceInAutoScalingGroup"
        ));
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn update_access_key_accepts_iam_or_aws_resource_tag_only() {
        let mut role = base();
        let mut e = expect(true);
        e.key_audit_enforce = true;
        for (key, kind) in [
            ("iam:ResourceTag/crossguard.dev/managed", None),
            ("aws:ResourceTag/crossguard.dev/managed", None),
            (
                "ec2:ResourceTag/crossguard.dev/managed",
                Some(FindingKind::UnmatchableTagCondition),
            ),
            (
                "iam:ResourceTag/owner",
                Some(FindingKind::UnconditionedMutation),
            ),
        ] {
            role.inline = vec![(
                "keys".into(),
                json!({ "Statement": { "Effect": "Allow", "Action": "iam:UpdateAccessKey",
                    "Resource": "*", "Condition": { "StringEquals": { key: "true" } } } }),
            )];
            let kinds: Vec<FindingKind> = check(&role, &e).iter().map(|f| f.kind).collect();
            assert_eq!(kinds, kind.into_iter().collect::<Vec<_>>(), "{key}");
        }
    }

    #[test]
    fn long_sessions_are_reported() {
        let mut role = base();
        role.max_session_duration = 7200;
        let findings = check(&role, &expect(true));
        let f = only(&findings, FindingKind::SessionTooLong);
        assert_eq!(f.policy, "arn:aws:iam::111122223333:role/crossguard-access");
        assert_eq!(f.statement, "MaxSessionDuration");
        assert!(f.message.contains("7200 s"));
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("ec2:Describe*", "EC2:DescribeInstances"));
        assert!(glob("*", "iam:PassRole"));
        assert!(glob("iam:?etRole", "iam:GetRole"));
        assert!(glob("*:Get*", "iam:GetRole"));
        assert!(!glob("ec2:Describe*", "ec2:TerminateInstances"));
        assert!(!glob("iam:GetRole", "iam:GetRolePolicy"));
    }

    #[test]
    fn summary_names_each_finding_and_ends_with_the_fix() {
        let findings = with_trust(assume(json!("*"), json!({})));
        let s = summary(&findings);
        assert!(
            s.starts_with("The role has 2 posture problems: trust policy Assume: trusts more"),
            "{s}"
        );
        assert!(
            s.contains("trust policy Assume: allows sts:AssumeRole without"),
            "{s}"
        );
        assert!(s.ends_with(&format!(". {FIX_HINT}")), "{s}");
        assert!(!summary(&[]).contains("Re-deploy"));
    }

    #[test]
    fn summary_is_bounded_and_counts_the_rest() {
        let f = |i: usize| Finding {
            policy: format!("policy-{i}"),
            statement: "statement 1".into(),
            kind: FindingKind::ExcessGrant,
            message: "grants more than crossguard uses: ".to_owned() + &"x".repeat(80),
        };
        let findings: Vec<Finding> = (0..40).map(f).collect();
        let s = summary(&findings);
        assert!(s.len() <= SUMMARY_LIMIT, "{}", s.len());
        assert!(s.contains("policy-0 statement 1"));
        let shown = s.matches("statement 1:").count();
        assert!(s.contains(&format!("; and {} more. ", 40 - shown)), "{s}");
        assert!(s.ends_with(FIX_HINT));
        // One oversized finding is cut, not dropped.
        let mut big = f(0);
        big.message = "y".repeat(5000);
        let s = summary(&[big]);
        assert!(s.len() <= SUMMARY_LIMIT && s.contains("policy-0") && s.ends_with(FIX_HINT));
    }

    #[test]
    fn summary_never_contains_another_tenants_external_id() {
        let other = "tenant-b-0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c";
        let mut role = base();
        role.trust_policy = json!({ "Statement": [
            assume(json!({ "AWS": "*" }), json!({ "StringEquals": { "sts:ExternalId": other } })),
            assume(json!({ "AWS": OPERATOR }), json!({ "StringEquals": { "sts:ExternalId": [other, EXTERNAL_ID] } })),
        ]});
        let findings = check(&role, &expect(true));
        assert_eq!(findings.len(), 3, "{findings:#?}");
        let s = summary(&findings);
        assert!(!s.contains(other) && !s.contains(&other[..16]), "{s}");
        assert!(!serde_json::to_string(&findings).unwrap().contains(other));
    }

    #[test]
    fn findings_serialize_with_camel_case_kinds() {
        let mut role = base();
        role.max_session_duration = 43200;
        let v = serde_json::to_value(check(&role, &expect(true))).unwrap();
        assert_eq!(v[0]["kind"], "SessionTooLong");
        assert_eq!(v[0]["statement"], "MaxSessionDuration");
    }
}
