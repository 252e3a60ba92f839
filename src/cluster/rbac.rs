//! What the customer grants crossguard inside their EKS cluster, generated so it always
//! matches what the reader lists: read-only access to nodes, pods, workloads and PDBs, and
//! nothing for Secrets or ConfigMaps.

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

/// The read-only ClusterRole and its binding to [`READONLY_GROUP`].
pub fn readonly() -> (ClusterRole, ClusterRoleBinding) {
    let meta = || ObjectMeta {
        name: Some(READONLY_NAME.to_string()),
        labels: Some(
            [(
                "app.kubernetes.io/managed-by".to_string(),
                "crossguard-onboarding".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let rules = READ_RESOURCES
        .iter()
        .map(|(group, resources)| PolicyRule {
            api_groups: Some(vec![group.to_string()]),
            resources: Some(resources.iter().map(|r| r.to_string()).collect()),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        })
        .collect();
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
            name: READONLY_NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            name: READONLY_GROUP.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    (role, binding)
}

/// The onboarding document: RBAC as YAML, with the EKS access-entry commands as comments.
pub fn readonly_yaml(cluster: &str, role_arn: &str) -> String {
    let (role, binding) = readonly();
    let mut out = format!(
        "# Read-only access for crossguard in EKS cluster {cluster}. Apply with kubectl, then map\n\
         # crossguard's role to the group with an EKS access entry:\n\
         #   aws eks create-access-entry --cluster-name {cluster} --principal-arn {role_arn} \\\n\
         #     --kubernetes-groups {READONLY_GROUP}\n\
         # It grants get/list/watch on nodes, pods, workloads and PodDisruptionBudgets only:\n\
         # no Secrets, no ConfigMaps, no writes.\n"
    );
    for doc in [
        serde_yaml::to_string(&role),
        serde_yaml::to_string(&binding),
    ] {
        out.push_str("---\n");
        out.push_str(&doc.expect("RBAC objects serialize"));
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
    }
}
