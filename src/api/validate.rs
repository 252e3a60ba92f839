//! Spec validation done again in the reconciler: the API server's schema checks can be
//! bypassed (older CRD, a server without CEL, direct etcd writes), so every rule that
//! matters is enforced here too, with messages a customer's engineer can act on.

use std::sync::LazyLock;
use std::time::Duration;

use kube::core::cel::{CompiledSchema, Validator};
use regex::Regex;

use super::{CustomerAccount, ManagedCluster};

static DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(super::duration::PATTERN).expect("static regex"));
static ACCOUNT_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9]{12}$").expect("static regex"));
static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws(-cn|-us-gov)?:iam::([0-9]{12}):role/[A-Za-z0-9+=,.@_/-]{1,512}$")
        .expect("static regex")
});
static REGION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$").expect("static regex")
});
/// A Kubernetes object name (DNS-1123 subdomain), as the CRD's `spec.accountRef.name`.
pub const OBJECT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
static OBJECT_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(OBJECT_NAME_PATTERN).expect("static regex"));
static CLUSTER_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$").expect("static regex"));

/// Whether `name` is a valid EKS cluster name: 1-100 letters, digits, `-` and `_`,
/// starting with a letter or digit.
pub fn is_cluster_name(name: &str) -> bool {
    CLUSTER_NAME.is_match(name)
}

/// Whether `arn` is an IAM role ARN: `arn:aws[-cn|-us-gov]:iam::<12 digits>:role/<path/name>`.
pub fn is_role_arn(arn: &str) -> bool {
    ROLE_ARN.is_match(arn)
}

/// Whether `id` is an AWS account id: exactly 12 decimal digits.
pub fn is_account_id(id: &str) -> bool {
    ACCOUNT_ID.is_match(id)
}

/// Whether `region` looks like an AWS region code (`us-east-1`, `us-gov-west-1`,
/// `cn-north-1`): the same rule as the CRD's `spec.regions` and `spec.region`.
pub fn is_region(region: &str) -> bool {
    REGION.is_match(region)
}

/// Session lengths STS accepts for role chaining and that we allow.
pub const MIN_SESSION: Duration = Duration::from_secs(15 * 60);
/// Sessions never last longer than one hour.
pub const MAX_SESSION: Duration = Duration::from_secs(60 * 60);
/// Shortest access-key scan interval (`spec.accessKeyAudit.scanInterval`).
pub const MIN_KEY_SCAN: Duration = Duration::from_secs(60 * 60);
/// Longest access-key scan interval: a week.
pub const MAX_KEY_SCAN: Duration = Duration::from_secs(168 * 60 * 60);

/// The parts of a CustomerAccount spec the reconciler needs, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidAccount {
    /// Requested session length, within [MIN_SESSION, MAX_SESSION].
    pub session_duration: Duration,
    /// How often the access-key audit scans, within 1h..=168h.
    pub key_scan_interval: Duration,
}

/// The parts of a ManagedCluster spec the reconciler needs, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidCluster {
    /// How often to inventory and analyse.
    pub analysis_interval: Duration,
    /// How long a drain may take.
    pub drain_timeout: Duration,
    /// Nodes younger than this are never removed.
    pub min_node_age: Duration,
}

/// Parse a duration of whole hours, minutes and seconds such as "1h", "15m" or "1h30m"
/// ([`super::duration::PATTERN`], what the CRD accepts). The error is the CRD's own message,
/// `spec.sessionDuration: sessionDuration must be a duration such as 15m or 1h`.
pub fn parse_duration(field: &str, value: &str) -> Result<Duration, String> {
    let not_a_duration = || {
        let name = field.rsplit('.').next().unwrap_or(field);
        format!("{field}: {}", super::duration::not_a_duration(name))
    };
    if !DURATION.is_match(value) {
        return Err(not_a_duration());
    }
    let parsed: kube::core::Duration = value.parse().map_err(|_| not_a_duration())?;
    Ok(parsed.into())
}

/// Each kind's CEL rules (`x-kubernetes-validations`), compiled once. Generating the CRD
/// schema and compiling its rules on every call (`kube::core::cel::validate_cel`) was
/// among a reconcile's largest costs in the scale benchmark (BENCHMARKS.md, "Scale").
static ACCOUNT_RULES: LazyLock<CompiledSchema> = LazyLock::new(compiled_rules::<CustomerAccount>);
static CLUSTER_RULES: LazyLock<CompiledSchema> = LazyLock::new(compiled_rules::<ManagedCluster>);

thread_local! {
    /// A CEL evaluator with the Kubernetes functions registered (`Send`, not `Sync`).
    static CEL: Validator = Validator::new();
}

/// The CEL rules of `T`'s CRD schema, as `validate_cel` would compile them.
fn compiled_rules<T: kube::CustomResourceExt>() -> CompiledSchema {
    let crd = T::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("derived CRD has an openAPIV3Schema");
    kube::core::cel::compile_schema(
        &serde_json::to_value(schema).expect("CRD schema serializes to JSON"),
    )
}

/// The messages of the CEL rules `obj` breaks.
fn cel_messages<T: serde::Serialize>(obj: &T, rules: &CompiledSchema) -> Vec<String> {
    let object = serde_json::to_value(obj).expect("resource serializes to JSON");
    messages(CEL.with(|cel| cel.validate_compiled(rules, &object, None)))
}

/// One message per broken rule: `field.path: message`, or the message alone at the root.
fn messages(result: Result<(), kube::core::cel::ValidationErrors>) -> Vec<String> {
    match result {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| {
                if e.field_path.is_empty() {
                    e.message
                } else {
                    format!("{}: {}", e.field_path, e.message)
                }
            })
            .collect(),
    }
}

/// Check a CustomerAccount's spec; on failure every problem is listed.
pub fn customer_account(ca: &CustomerAccount) -> Result<ValidAccount, Vec<String>> {
    let spec = &ca.spec;
    let mut errors = Vec::new();
    if !ACCOUNT_ID.is_match(&spec.account_id) {
        errors.push(format!(
            "spec.accountId: \"{}\" is not a 12-digit AWS account id",
            spec.account_id
        ));
    }
    // No roleArn yet is valid: the account awaits its customer's role.
    let role_arn = spec.role_arn.as_deref();
    match role_arn.map(|arn| (arn, ROLE_ARN.captures(arn))) {
        None => {}
        Some((arn, None)) => errors.push(format!(
            "spec.roleArn: \"{arn}\" is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
        )),
        Some((_, Some(c))) if c.get(2).map(|m| m.as_str()) != Some(spec.account_id.as_str()) => errors.push(format!(
            "spec.roleArn: the role is in account {} but spec.accountId is {}; the role must be in the customer's account",
            c.get(2).map(|m| m.as_str()).unwrap_or_default(),
            spec.account_id
        )),
        Some(_) => {}
    }
    if spec.regions.is_empty() {
        errors.push("spec.regions: list at least one AWS region".to_string());
    }
    for r in spec.regions.iter().filter(|r| !REGION.is_match(r)) {
        errors.push(format!(
            "spec.regions: \"{r}\" is not an AWS region name such as us-east-1"
        ));
    }
    if !(1..=3650).contains(&spec.data_retention_days) {
        errors.push("spec.dataRetentionDays: must be between 1 and 3650".to_string());
    }
    let audit = &spec.access_key_audit;
    if audit.warn_days.iter().any(|d| *d >= audit.disable_day) {
        errors.push(
            "spec.accessKeyAudit: every warnDays entry must be smaller than disableDay".to_string(),
        );
    }
    if let Some(machine) = &audit.machine
        && machine.warn_days.iter().any(|d| *d >= machine.disable_day)
    {
        errors.push(
            "spec.accessKeyAudit.machine: every warnDays entry must be smaller than disableDay"
                .to_string(),
        );
    }
    let key_scan_interval =
        match parse_duration("spec.accessKeyAudit.scanInterval", &audit.scan_interval) {
            Ok(d) if (MIN_KEY_SCAN..=MAX_KEY_SCAN).contains(&d) => d,
            Ok(_) => {
                errors.push(format!(
                    "spec.accessKeyAudit.scanInterval: \"{}\" must be between 1h and 168h",
                    audit.scan_interval
                ));
                MAX_KEY_SCAN
            }
            Err(e) => {
                errors.push(e);
                MAX_KEY_SCAN
            }
        };
    let session_duration = match parse_duration("spec.sessionDuration", &spec.session_duration) {
        Ok(d) if (MIN_SESSION..=MAX_SESSION).contains(&d) => Some(d),
        Ok(_) => {
            errors.push(format!(
                "spec.sessionDuration: \"{}\" must be between 15m and 1h",
                spec.session_duration
            ));
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    // The schema's CEL rules are evaluated too, so reconciler and API server never disagree.
    for message in cel_messages(ca, &ACCOUNT_RULES) {
        if !errors
            .iter()
            .any(|e| e.ends_with(&message) || message.ends_with(e.as_str()))
        {
            errors.push(message);
        }
    }
    match session_duration {
        Some(session_duration) if errors.is_empty() => Ok(ValidAccount {
            session_duration,
            key_scan_interval,
        }),
        _ => Err(dedup(errors)),
    }
}

/// Check a ManagedCluster's spec on its own (the account reference is resolved separately).
pub fn managed_cluster(mc: &ManagedCluster) -> Result<ValidCluster, Vec<String>> {
    let spec = &mc.spec;
    let mut errors = Vec::new();
    if spec.account_ref.name.is_empty() {
        errors.push("spec.accountRef.name: name the CustomerAccount in this namespace".to_string());
    } else if spec.account_ref.name.len() > 253 || !OBJECT_NAME.is_match(&spec.account_ref.name) {
        errors.push(format!(
            "spec.accountRef.name: {:?} is not a Kubernetes object name (lowercase letters, digits, '-' and '.'); name the CustomerAccount in this namespace",
            spec.account_ref.name
        ));
    }
    if !REGION.is_match(&spec.region) {
        errors.push(format!(
            "spec.region: \"{}\" is not an AWS region name such as us-east-1",
            spec.region
        ));
    }
    if !CLUSTER_NAME.is_match(&spec.cluster_name) {
        errors.push(format!(
            "spec.clusterName: \"{}\" is not a valid EKS cluster name",
            spec.cluster_name
        ));
    }
    let budget = &spec.automation.disruption_budget;
    if budget.max_nodes_per_run > budget.max_nodes_per_hour {
        errors.push(
            "spec.automation.disruptionBudget: maxNodesPerRun may not exceed maxNodesPerHour"
                .to_string(),
        );
    }
    let mut durations = Vec::new();
    for (field, value) in [
        (
            "spec.automation.drainTimeout",
            &spec.automation.drain_timeout,
        ),
        (
            "spec.automation.disruptionBudget.minNodeAge",
            &budget.min_node_age,
        ),
    ] {
        match parse_duration(field, value) {
            Ok(d) => durations.push(d),
            Err(e) => errors.push(e),
        }
    }
    let interval = match parse_duration("spec.analysisInterval", &spec.analysis_interval) {
        Ok(d) if (Duration::from_secs(60)..=Duration::from_secs(24 * 3600)).contains(&d) => Some(d),
        Ok(_) => {
            errors.push(format!(
                "spec.analysisInterval: \"{}\" must be between 1m and 24h",
                spec.analysis_interval
            ));
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    for message in cel_messages(mc, &CLUSTER_RULES) {
        if !errors
            .iter()
            .any(|e| e.ends_with(&message) || message.ends_with(e.as_str()))
        {
            errors.push(message);
        }
    }
    match (interval, durations.as_slice()) {
        (Some(analysis_interval), &[drain_timeout, min_node_age]) if errors.is_empty() => {
            Ok(ValidCluster {
                analysis_interval,
                drain_timeout,
                min_node_age,
            })
        }
        _ => Err(dedup(errors)),
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|e| seen.insert(e.clone()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccountRef, CustomerAccountSpec, ManagedClusterSpec};

    type SpecEdit = Box<dyn FnOnce(&mut serde_json::Value)>;
    type ClusterEdit = Box<dyn FnOnce(&mut ManagedClusterSpec)>;

    fn account(mutate: impl FnOnce(&mut serde_json::Value)) -> CustomerAccount {
        let mut spec = serde_json::json!({
            "accountId": "111122223333",
            "roleArn": "arn:aws:iam::111122223333:role/crossguard-access",
            "regions": ["us-east-1"],
        });
        mutate(&mut spec);
        let spec: CustomerAccountSpec = serde_json::from_value(spec).expect("spec parses");
        CustomerAccount::new("acme", spec)
    }

    fn cluster(mutate: impl FnOnce(&mut ManagedClusterSpec)) -> ManagedCluster {
        let mut spec: ManagedClusterSpec = serde_json::from_value(serde_json::json!({
            "accountRef": {"name": "acme"},
            "region": "us-east-1",
            "clusterName": "prod",
        }))
        .expect("spec parses");
        mutate(&mut spec);
        ManagedCluster::new("prod", spec)
    }

    #[test]
    fn defaults_are_valid_and_one_hour() {
        let ok = customer_account(&account(|_| {})).expect("valid");
        assert_eq!(ok.session_duration, MAX_SESSION);
        let ok = managed_cluster(&cluster(|_| {})).expect("valid");
        assert_eq!(ok.analysis_interval, Duration::from_secs(900));
    }

    #[test]
    fn rejects_role_in_another_account_with_both_accounts_named() {
        let errs = customer_account(&account(|s| {
            s["roleArn"] = "arn:aws:iam::999988887777:role/x".into()
        }))
        .expect_err("must be rejected");
        assert!(
            errs.iter()
                .any(|e| e.contains("999988887777") && e.contains("111122223333")),
            "{errs:?}"
        );
    }

    #[test]
    fn table_of_bad_account_specs() {
        let cases: Vec<(&str, SpecEdit)> = vec![
            (
                "spec.accountId",
                Box::new(|s| s["accountId"] = "12345".into()),
            ),
            (
                "spec.roleArn",
                Box::new(|s| s["roleArn"] = "arn:aws:iam::111122223333:user/bob".into()),
            ),
            (
                "spec.regions",
                Box::new(|s| s["regions"] = serde_json::json!([])),
            ),
            (
                "spec.regions",
                Box::new(|s| s["regions"] = serde_json::json!(["Mars-1"])),
            ),
            (
                "spec.sessionDuration",
                Box::new(|s| s["sessionDuration"] = "2h".into()),
            ),
            (
                "spec.sessionDuration",
                Box::new(|s| s["sessionDuration"] = "10m".into()),
            ),
            (
                "spec.sessionDuration",
                Box::new(|s| s["sessionDuration"] = "soon".into()),
            ),
            (
                "spec.dataRetentionDays",
                Box::new(|s| s["dataRetentionDays"] = 0.into()),
            ),
            (
                "spec.accessKeyAudit",
                Box::new(|s| {
                    s["accessKeyAudit"] = serde_json::json!({"warnDays": [95], "disableDay": 91})
                }),
            ),
        ];
        for (field, mutate) in cases {
            let errs = customer_account(&account(mutate)).expect_err(field);
            assert!(
                errs.iter().any(|e| e.starts_with(field)),
                "{field}: {errs:?}"
            );
        }
    }

    #[test]
    fn a_value_that_is_not_a_duration_gets_the_crds_own_message_once() {
        for bad in ["", "abc", "90", "1.5h", "-1h", "1m1h", "15 m"] {
            let errs =
                customer_account(&account(|s| s["sessionDuration"] = bad.into())).unwrap_err();
            assert_eq!(
                errs,
                ["spec.sessionDuration: sessionDuration must be a duration such as 15m or 1h"],
                "{bad:?}"
            );
            let errs =
                managed_cluster(&cluster(|s| s.analysis_interval = bad.to_string())).unwrap_err();
            assert_eq!(
                errs,
                ["spec.analysisInterval: analysisInterval must be a duration such as 15m or 1h"],
                "{bad:?}"
            );
            let errs = managed_cluster(&cluster(|s| s.automation.drain_timeout = bad.to_string()))
                .unwrap_err();
            assert_eq!(
                errs,
                ["spec.automation.drainTimeout: drainTimeout must be a duration such as 15m or 1h"],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn session_duration_bounds_are_inclusive() {
        for d in ["15m", "30m", "1h", "45m30s"] {
            assert!(
                customer_account(&account(|s| s["sessionDuration"] = d.into())).is_ok(),
                "{d}"
            );
        }
    }

    #[test]
    fn table_of_bad_cluster_specs() {
        let cases: Vec<(&str, ClusterEdit)> = vec![
            ("spec.region", Box::new(|s| s.region = "nowhere".into())),
            (
                "spec.clusterName",
                Box::new(|s| s.cluster_name = "-bad name".into()),
            ),
            (
                "spec.analysisInterval",
                Box::new(|s| s.analysis_interval = "10s".into()),
            ),
            (
                "spec.analysisInterval",
                Box::new(|s| s.analysis_interval = "48h".into()),
            ),
            (
                "spec.automation.drainTimeout",
                Box::new(|s| s.automation.drain_timeout = "x".into()),
            ),
            (
                "spec.automation.disruptionBudget",
                Box::new(|s| {
                    s.automation.disruption_budget.max_nodes_per_run = 5;
                    s.automation.disruption_budget.max_nodes_per_hour = 2;
                }),
            ),
            (
                "spec.accountRef.name",
                Box::new(|s| {
                    s.account_ref = AccountRef {
                        name: String::new(),
                        namespace: None,
                    }
                }),
            ),
            (
                "spec.accountRef.name",
                Box::new(|s| {
                    s.account_ref = AccountRef {
                        name: "<b>acme</b>".into(),
                        namespace: None,
                    }
                }),
            ),
        ];
        for (field, mutate) in cases {
            let errs = managed_cluster(&cluster(mutate)).expect_err(field);
            assert!(
                errs.iter().any(|e| e.starts_with(field)),
                "{field}: {errs:?}"
            );
        }
    }

    /// An account applied before its customer created the role has no roleArn: valid for
    /// the reconciler and for the schema's CEL rule, which only binds a roleArn that is set.
    #[test]
    fn an_account_without_role_arn_is_valid() {
        let awaiting = account(|s| {
            s.as_object_mut().unwrap().remove("roleArn");
        });
        assert_eq!(awaiting.spec.role_arn, None);
        customer_account(&awaiting).expect("no roleArn is valid");
        assert!(kube::core::cel::validate_cel(&awaiting).is_ok());
        assert_eq!(
            cel_messages(&awaiting, &ACCOUNT_RULES),
            Vec::<String>::new()
        );
        // Serialized without the field, so a server-side apply never writes a null.
        assert!(
            serde_json::to_value(&awaiting.spec)
                .unwrap()
                .get("roleArn")
                .is_none()
        );
    }

    /// The CEL rules in the generated schema must agree with the reconciler: each rule is
    /// evaluated here by a real CEL engine against accepted and rejected objects.
    #[test]
    fn schema_cel_rules_accept_good_and_reject_bad_objects() {
        assert!(kube::core::cel::validate_cel(&account(|_| {})).is_ok());
        let bad_role = account(|s| s["roleArn"] = "arn:aws:iam::999988887777:role/x".into());
        let errs = kube::core::cel::validate_cel(&bad_role)
            .expect_err("CEL must reject")
            .into_vec();
        assert!(
            errs.iter()
                .any(|e| e.message.contains("roleArn must be an IAM role")),
            "{errs:?}"
        );
        let long = account(|s| s["sessionDuration"] = "2h".into());
        let errs = kube::core::cel::validate_cel(&long)
            .expect_err("CEL must reject")
            .into_vec();
        assert!(
            errs.iter()
                .any(|e| e.message.contains("between 15m and 1h")),
            "{errs:?}"
        );
        let warn = account(|s| {
            s["accessKeyAudit"] = serde_json::json!({"warnDays": [95], "disableDay": 91})
        });
        assert!(kube::core::cel::validate_cel(&warn).is_err());
        let fast = cluster(|s| s.analysis_interval = "5s".into());
        let errs = kube::core::cel::validate_cel(&fast)
            .expect_err("CEL must reject")
            .into_vec();
        assert!(
            errs.iter()
                .any(|e| e.message.contains("between 1m and 24h")),
            "{errs:?}"
        );
        let budget = cluster(|s| s.automation.disruption_budget.max_nodes_per_run = 9);
        assert!(kube::core::cel::validate_cel(&budget).is_err());
        assert!(kube::core::cel::validate_cel(&cluster(|_| {})).is_ok());
    }

    /// The rules compiled once give exactly the messages `validate_cel` (which generates
    /// the schema and compiles them on every call) gives, for good and bad objects of both
    /// kinds, on whichever thread asks.
    #[test]
    fn compiled_rules_agree_with_validate_cel() {
        fn expected<T: kube::CustomResourceExt + serde::Serialize>(obj: &T) -> Vec<String> {
            messages(kube::core::cel::validate_cel(obj))
        }
        let accounts = [
            account(|_| {}),
            account(|s| s["roleArn"] = "arn:aws:iam::999988887777:role/x".into()),
            account(|s| s["sessionDuration"] = "2h".into()),
            account(|s| {
                s["accessKeyAudit"] = serde_json::json!({"warnDays": [95], "disableDay": 91})
            }),
        ];
        let clusters = [
            cluster(|_| {}),
            cluster(|s| s.analysis_interval = "5s".into()),
            cluster(|s| s.automation.disruption_budget.max_nodes_per_run = 9),
        ];
        let mut rejected = 0;
        for a in &accounts {
            let expected = expected(a);
            rejected += usize::from(!expected.is_empty());
            assert_eq!(cel_messages(a, &ACCOUNT_RULES), expected);
            let again =
                std::thread::scope(|t| t.spawn(|| cel_messages(a, &ACCOUNT_RULES)).join().unwrap());
            assert_eq!(again, expected);
        }
        for c in &clusters {
            let expected = expected(c);
            rejected += usize::from(!expected.is_empty());
            assert_eq!(cel_messages(c, &CLUSTER_RULES), expected);
        }
        assert_eq!(rejected, 5, "every bad object is rejected");
    }
}
