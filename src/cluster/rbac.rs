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

/// (API group, resources) the reader lists; `reader::read_snapshot` lists exactly these.
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

/// The onboarding document: RBAC as YAML, with the EKS access-entry commands as comments.
pub fn readonly_yaml(cluster: &str, role_arn: &str) -> String {
    rbac_yaml(cluster, role_arn, false)
}

/// The onboarding document for read-only (`automated` false) or automated mode, which adds
/// the separate drain role.
pub fn rbac_yaml(cluster: &str, role_arn: &str, automated: bool) -> String {
    let mut out = if automated {
        format!(
            "# Access for crossguard in EKS cluster {cluster}, automated mode. Apply with kubectl,\n\
             # then map crossguard's role to both groups with an EKS access entry:\n\
             #   aws eks create-access-entry --cluster-name {cluster} --principal-arn {role_arn} \\\n\
             #     --kubernetes-groups {READONLY_GROUP} {DRAIN_GROUP}\n\
             # {READONLY_NAME}: get/list/watch on nodes, pods, workloads and PodDisruptionBudgets.\n\
             # {DRAIN_NAME}: patch nodes (cordon/uncordon) and create pods/eviction (evictions honour\n\
             # PodDisruptionBudgets). No Secrets, no ConfigMaps, no other writes.\n"
        )
    } else {
        format!(
            "# Read-only access for crossguard in EKS cluster {cluster}. Apply with kubectl, then map\n\
             # crossguard's role to the group with an EKS access entry:\n\
             #   aws eks create-access-entry --cluster-name {cluster} --principal-arn {role_arn} \\\n\
             #     --kubernetes-groups {READONLY_GROUP}\n\
             # It grants get/list/watch on nodes, pods, workloads and PodDisruptionBudgets only:\n\
             # no Secrets, no ConfigMaps, no writes.\n"
        )
    };
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
    out
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
        let yaml = readonly_yaml("prod", "arn:aws:iam::111122223333:role/crossguard-access");
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
        let yaml = rbac_yaml("prod", "arn:aws:iam::111122223333:role/x", true);
        assert!(yaml.contains(READONLY_NAME) && yaml.contains(DRAIN_NAME));
        assert!(yaml.contains(&format!(
            "--kubernetes-groups {READONLY_GROUP} {DRAIN_GROUP}"
        )));
        assert!(
            !yaml.contains("- secrets")
                && !yaml.contains("- configmaps")
                && !yaml.contains("delete")
        );
    }
}
