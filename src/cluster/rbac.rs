//! What the customer grants crossguard inside their EKS cluster, generated so it always
//! matches what the reader lists: read-only access to nodes, pods, workloads and PDBs, and
//! nothing for Secrets or ConfigMaps. Automated mode adds a separate role for draining:
//! `patch` on nodes (cordon/uncordon) and `create` on `pods/eviction`, nothing else.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::ObjectMeta;

/// The Kubernetes group the customer maps crossguard's role to (EKS access entry).
pub const READONLY_GROUP: &str = "crossguard:readonly";
/// Name of the ClusterRole and ClusterRoleBinding.
pub const READONLY_NAME: &str = "crossguard-readonly";

/// (API group, resources) the reader lists; `reader::read_cluster` lists exactly these.
pub const READ_RESOURCES: [(&str, &[&str]); 4] = [
    ("", &["nodes", "pods"]),
    (
        "apps",
        &["deployments", "replicasets", "statefulsets", "daemonsets"],
    ),
    ("batch", &["jobs", "cronjobs"]),
    ("policy", &["poddisruptionbudgets"]),
];

/// The Kubernetes group for the drain permissions (automated mode only).
pub const DRAIN_GROUP: &str = "crossguard:drain";
/// Name of the drain ClusterRole and ClusterRoleBinding.
pub const DRAIN_NAME: &str = "crossguard-drain";

/// (API group, resource, verbs) the drain needs; `automation::drain` makes exactly these
/// writes: cordon/uncordon patch the node, evictions are created on the pod.
pub const DRAIN_RULES: [(&str, &str, &[&str]); 2] = [
    ("", "nodes", &["patch"]),
    ("", "pods/eviction", &["create"]),
];

/// The read-only ClusterRole and its binding to [`READONLY_GROUP`].
pub fn readonly() -> (ClusterRole, ClusterRoleBinding) {
    let rules = READ_RESOURCES
        .iter()
        .map(|(group, resources)| PolicyRule {
            api_groups: Some(vec![group.to_string()]),
            resources: Some(resources.iter().map(|r| r.to_string()).collect()),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        })
        .collect();
    role_and_binding(READONLY_NAME, READONLY_GROUP, rules)
}

/// The drain ClusterRole and its binding to [`DRAIN_GROUP`] (automated mode).
pub fn drain() -> (ClusterRole, ClusterRoleBinding) {
    let rules = DRAIN_RULES
        .iter()
        .map(|(group, resource, verbs)| PolicyRule {
            api_groups: Some(vec![group.to_string()]),
            resources: Some(vec![resource.to_string()]),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        })
        .collect();
    role_and_binding(DRAIN_NAME, DRAIN_GROUP, rules)
}

fn role_and_binding(
    name: &str,
    group: &str,
    rules: Vec<PolicyRule>,
) -> (ClusterRole, ClusterRoleBinding) {
    let meta = || ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(
            [(
                "app.kubernetes.io/managed-by".to_string(),
                "crossguard-onboarding".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: meta(),
        rules: Some(rules),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            name: group.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    (role, binding)
}

/// Why the onboarding document cannot be printed for these inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RbacError {
    /// Not an EKS cluster name; it would end up in a shell command and in YAML.
    #[error(
        "invalid EKS cluster name {0:?}: 1-100 letters, digits, '-' and '_', starting with a letter or digit"
    )]
    ClusterName(String),
    /// Not an IAM role ARN; EKS access entries take the role's ARN.
    #[error(
        "{0:?} is not an IAM role ARN: expected arn:aws:iam::<12-digit account id>:role/<name> (or the aws-cn / aws-us-gov partition)"
    )]
    RoleArn(String),
    /// Not an AWS region code; it would end up in a shell command.
    #[error("invalid AWS region {0:?}: expected a region code like us-east-1")]
    Region(String),
}

/// `value` as one POSIX shell word: unchanged when it only holds characters no shell
/// treats specially, otherwise in single quotes (an inner `'` becomes `'"'"'`). The
/// inputs are validated first; this keeps a printed command safe to paste regardless.
pub fn shell_quote(value: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b);
    if !value.is_empty() && value.bytes().all(plain) {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', r#"'"'"'"#))
}

/// The onboarding document: RBAC as YAML, with the EKS access-entry commands as comments.
pub fn readonly_yaml(cluster: &str, role_arn: &str) -> Result<String, RbacError> {
    rbac_yaml(cluster, role_arn, false)
}

/// The onboarding document for read-only (`automated` false) or automated mode, which adds
/// the separate drain role. Refuses a cluster name or role ARN EKS would not accept.
pub fn rbac_yaml(cluster: &str, role_arn: &str, automated: bool) -> Result<String, RbacError> {
    onboarding_document(&[(cluster.to_string(), None)], role_arn, automated)
}

/// Kubernetes user name crossguard's sessions get in an `aws-auth` mapRoles entry (access
/// entries name the session by default); `{{SessionName}}` is the STS session name.
pub const AWS_AUTH_USERNAME: &str = "crossguard:{{SessionName}}";

/// The onboarding document for `clusters` (name, and region when known): the RBAC as YAML,
/// preceded by comments with the commands that give crossguard's role access to each
/// cluster, an EKS access entry (clusters whose authentication mode is `API` or
/// `API_AND_CONFIG_MAP`, with the command that checks it) or, for clusters still on the
/// `aws-auth` ConfigMap, the mapRoles entry to add. Every value printed into a command is
/// validated and shell-quoted.
pub fn onboarding_document(
    clusters: &[(String, Option<String>)],
    role_arn: &str,
    automated: bool,
) -> Result<String, RbacError> {
    for (cluster, region) in clusters {
        if !crate::api::validate::is_cluster_name(cluster) {
            return Err(RbacError::ClusterName(cluster.clone()));
        }
        if let Some(r) = region
            .as_ref()
            .filter(|r| !crate::api::validate::is_region(r))
        {
            return Err(RbacError::Region(r.clone()));
        }
    }
    if !crate::api::validate::is_role_arn(role_arn) {
        return Err(RbacError::RoleArn(role_arn.to_string()));
    }
    let role_arg = shell_quote(role_arn);
    let groups: Vec<&str> = if automated {
        vec![READONLY_GROUP, DRAIN_GROUP]
    } else {
        vec![READONLY_GROUP]
    };
    let names: Vec<&str> = clusters.iter().map(|(c, _)| c.as_str()).collect();
    let mut out = if automated {
        format!(
            "# Access for crossguard in EKS cluster(s) {}, automated mode.\n\
             # {READONLY_NAME}: get/list/watch on nodes, pods, workloads and PodDisruptionBudgets.\n\
             # {DRAIN_NAME}: patch nodes (cordon/uncordon) and create pods/eviction (evictions honour\n\
             # PodDisruptionBudgets). No Secrets, no ConfigMaps, no other writes.\n",
            names.join(", ")
        )
    } else {
        format!(
            "# Read-only access for crossguard in EKS cluster(s) {}.\n\
             # It grants get/list/watch on nodes, pods, workloads and PodDisruptionBudgets only:\n\
             # no Secrets, no ConfigMaps, no writes.\n",
            names.join(", ")
        )
    };
    out.push_str(
        "#\n# 1. Apply this file in each cluster: kubectl apply -f <this file>\n\
         # 2. Map crossguard's role to the group(s) below. EKS access entries need the cluster's\n\
         #    authentication mode to be API or API_AND_CONFIG_MAP; check it with the first command\n\
         #    (CONFIG_MAP means: use the aws-auth entry in 3. instead, or switch the cluster with\n\
         #    aws eks update-cluster-config --name <cluster> --access-config authenticationMode=API_AND_CONFIG_MAP):\n",
    );
    let group_args: Vec<String> = groups.iter().map(|g| shell_quote(g)).collect();
    for (cluster, region) in clusters {
        let region_arg = region
            .as_ref()
            .map(|r| format!(" --region {}", shell_quote(r)))
            .unwrap_or_default();
        let cluster_arg = shell_quote(cluster);
        out.push_str(&format!(
            "#   aws eks describe-cluster --name {cluster_arg}{region_arg} --query cluster.accessConfig.authenticationMode --output text\n\
             #   aws eks create-access-entry --cluster-name {cluster_arg}{region_arg} --principal-arn {role_arg} \\\n\
             #     --kubernetes-groups {}\n",
            group_args.join(" ")
        ));
    }
    // aws-auth takes the role ARN without its path (a known limitation of aws-auth).
    let aws_auth_arn = match role_arn.split_once(":role/") {
        Some((head, name)) => format!("{head}:role/{}", name.rsplit('/').next().unwrap_or(name)),
        None => role_arn.to_string(),
    };
    out.push_str(&format!(
        "# 3. Only for a cluster whose authentication mode is CONFIG_MAP: instead of the access entry,\n\
         #    add this item to data.mapRoles of the aws-auth ConfigMap\n\
         #    (kubectl edit configmap aws-auth -n kube-system):\n\
         #    - rolearn: {aws_auth_arn}\n\
         #      username: \"{AWS_AUTH_USERNAME}\"\n\
         #      groups:\n"
    ));
    for g in &groups {
        out.push_str(&format!("#        - {g}\n"));
    }
    out.push_str(
        "# To revoke crossguard's access at once: aws eks delete-access-entry --cluster-name <cluster>\n\
         # --principal-arn <role> (or remove the aws-auth item), or delete the role's stack.\n",
    );
    let mut objects = vec![readonly()];
    if automated {
        objects.push(drain());
    }
    for (role, binding) in objects {
        for doc in [
            serde_yaml::to_string(&role),
            serde_yaml::to_string(&binding),
        ] {
            out.push_str("---\n");
            out.push_str(&doc.expect("RBAC objects serialize"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readonly_role_grants_only_reads_and_never_secrets_or_configmaps() {
        let (role, binding) = readonly();
        let rules = role.rules.unwrap();
        let mut granted = Vec::new();
        for rule in &rules {
            assert_eq!(rule.verbs, ["get", "list", "watch"], "{rule:?}");
            for r in rule.resources.as_ref().unwrap() {
                assert!(
                    !r.contains('*') && r != "secrets" && r != "configmaps",
                    "{r}"
                );
                granted.push(r.clone());
            }
        }
        granted.sort();
        let mut read: Vec<String> = READ_RESOURCES
            .iter()
            .flat_map(|(_, rs)| rs.iter().map(|r| r.to_string()))
            .collect();
        read.sort();
        assert_eq!(granted, read);
        assert_eq!(binding.subjects.unwrap()[0].name, READONLY_GROUP);
        let yaml =
            readonly_yaml("prod", "arn:aws:iam::111122223333:role/crossguard-access").unwrap();
        assert!(yaml.contains("create-access-entry --cluster-name prod"));
        assert!(!yaml.contains("- secrets") && !yaml.contains("- configmaps"));
        assert!(!yaml.contains(DRAIN_NAME), "read-only has no drain role");
    }

    #[test]
    fn drain_role_is_separate_and_only_cordons_and_evicts() {
        let (role, binding) = drain();
        let rules = role.rules.unwrap();
        let granted: Vec<(String, String, Vec<String>)> = rules
            .iter()
            .flat_map(|r| {
                r.resources.clone().unwrap().into_iter().map(move |res| {
                    (
                        r.api_groups.clone().unwrap()[0].clone(),
                        res,
                        r.verbs.clone(),
                    )
                })
            })
            .collect();
        assert_eq!(
            granted,
            vec![
                (
                    "".to_string(),
                    "nodes".to_string(),
                    vec!["patch".to_string()]
                ),
                (
                    "".to_string(),
                    "pods/eviction".to_string(),
                    vec!["create".to_string()]
                ),
            ]
        );
        assert_eq!(binding.subjects.unwrap()[0].name, DRAIN_GROUP);
        assert_eq!(binding.role_ref.name, DRAIN_NAME);
        let yaml = rbac_yaml("prod", "arn:aws:iam::111122223333:role/x", true).unwrap();
        assert!(yaml.contains(READONLY_NAME) && yaml.contains(DRAIN_NAME));
        assert!(yaml.contains(&format!(
            "--kubernetes-groups {READONLY_GROUP} {DRAIN_GROUP}"
        )));
        // The objects (after the comments, which mention delete-access-entry for revoking).
        let (_, objects) = yaml.split_once("\n---\n").unwrap();
        assert!(
            !objects.contains("- secrets")
                && !objects.contains("- configmaps")
                && !objects.contains("delete")
        );
    }

    const ROLE: &str = "arn:aws:iam::111122223333:role/crossguard-access";

    #[test]
    fn refuses_cluster_names_eks_would_not_accept() {
        let long = "c".repeat(101);
        for bad in [
            "Bad Cluster;rm -rf",
            "",
            "-leading-dash",
            "_leading-underscore",
            "a/b",
            "prod$(id)",
            "prod\nkind: Secret",
            "préprod",
            long.as_str(),
        ] {
            for automated in [false, true] {
                let err = rbac_yaml(bad, ROLE, automated).unwrap_err();
                assert_eq!(err, RbacError::ClusterName(bad.to_string()));
                assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
            }
        }
        for good in ["prod", "0prod", "Prod_eu-1", &"c".repeat(100)] {
            assert!(rbac_yaml(good, ROLE, true).is_ok(), "{good}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_iam_role_arn() {
        for bad in [
            "",
            "crossguard-access",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::11112222333:role/short-account",
            "arn:aws:sts::111122223333:assumed-role/x/y",
            "arn:aws:iam::111122223333:role/x; rm -rf /",
            "arn:aws:iam::111122223333:role/x'y",
            "arn:aws:iam::111122223333:role/",
            "arn:aws-eu:iam::111122223333:role/x",
        ] {
            let err = rbac_yaml("prod", bad, false).unwrap_err();
            assert_eq!(err, RbacError::RoleArn(bad.to_string()));
        }
        for good in [
            ROLE,
            "arn:aws:iam::111122223333:role/team/platform/crossguard-access",
            "arn:aws-cn:iam::111122223333:role/x",
            "arn:aws-us-gov:iam::111122223333:role/x+=,.@_-",
        ] {
            let yaml = rbac_yaml("prod", good, false).unwrap();
            assert!(yaml.contains(&format!("--principal-arn {good} ")), "{yaml}");
        }
    }

    #[test]
    fn shell_quote_leaves_plain_words_and_single_quotes_the_rest() {
        for (value, quoted) in [
            ("prod", "prod"),
            (ROLE, ROLE),
            ("", "''"),
            ("Bad Cluster;rm -rf", "'Bad Cluster;rm -rf'"),
            ("$(id)`id`", "'$(id)`id`'"),
            ("it's", r#"'it'"'"'s'"#),
            ("a\nb", "'a\nb'"),
            ("*", "'*'"),
        ] {
            assert_eq!(shell_quote(value), quoted, "{value:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Whatever the value, a POSIX shell reads the quoted word back as exactly it.
        #[test]
        fn shell_quote_round_trips_through_sh(value in "[^\\x00]{0,24}") {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {}", shell_quote(&value)))
                .output()
                .expect("sh");
            proptest::prop_assert!(out.status.success());
            proptest::prop_assert_eq!(String::from_utf8_lossy(&out.stdout), value);
        }
    }
}
