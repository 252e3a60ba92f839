//! The set of served resources: built-ins preloaded at start, custom
//! resources added and removed as CRDs come and go. Routing, discovery and
//! storage all look resources up here.

use std::sync::Arc;

use serde_json::Value;

use crate::error::Cause;

/// Where objects of a resource live in the store: `(group, plural)`.
/// Several served versions (and the two Event APIs) share one key.
pub type StorageKey = (String, String);

/// How a served version maps onto its storage representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Stored as served; only `apiVersion` is rewritten (CRD "None" conversion).
    Plain,
    /// core/v1 Event served from events.k8s.io/v1 storage.
    CoreEvent,
}

/// One `additionalPrinterColumns` entry of a CRD version.
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// What a CRD version adds on top of a plain resource.
#[derive(Clone, Debug, Default)]
pub struct CustomVersion {
    pub schema: Option<Value>,
    pub printer_columns: Vec<PrinterColumn>,
}

/// One served group/version/resource.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    /// Has a `/status` subresource: main writes ignore `.status` and vice versa.
    pub status: bool,
    /// Tracks `metadata.generation` (bumped on spec changes).
    pub generation: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub storage: StorageKey,
    pub view: View,
    /// Set for custom resources (served because of a CRD).
    pub custom: Option<Arc<CustomVersion>>,
}

impl ResourceInfo {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn is_custom(&self) -> bool {
        self.custom.is_some()
    }

    pub fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }
}

/// All served resources, in registration order (discovery keeps it).
#[derive(Clone, Debug, Default)]
pub struct Registry {
    resources: Vec<ResourceInfo>,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    generation: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
}

const ALL: &[&str] = &["all"];

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    Builtin { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false, status: true, generation: false, short: &["ns"], categories: &[] },
    Builtin { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true, status: false, generation: false, short: &[], categories: &[] },
    Builtin { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true, status: false, generation: false, short: &["cm"], categories: &[] },
    Builtin { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true, status: false, generation: false, short: &["ev"], categories: &[] },
    Builtin { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false, status: true, generation: false, short: &["no"], categories: &[] },
    Builtin { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true, status: true, generation: true, short: &["po"], categories: ALL },
    Builtin { group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount", namespaced: true, status: false, generation: false, short: &["sa"], categories: &[] },
    Builtin { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true, status: true, generation: false, short: &["svc"], categories: ALL },
    Builtin { group: "apps", version: "v1", plural: "deployments", kind: "Deployment", namespaced: true, status: true, generation: true, short: &["deploy"], categories: ALL },
    Builtin { group: "apps", version: "v1", plural: "replicasets", kind: "ReplicaSet", namespaced: true, status: true, generation: true, short: &["rs"], categories: ALL },
    Builtin { group: "apps", version: "v1", plural: "statefulsets", kind: "StatefulSet", namespaced: true, status: true, generation: true, short: &["sts"], categories: ALL },
    Builtin { group: "apps", version: "v1", plural: "daemonsets", kind: "DaemonSet", namespaced: true, status: true, generation: true, short: &["ds"], categories: ALL },
    Builtin { group: "batch", version: "v1", plural: "jobs", kind: "Job", namespaced: true, status: true, generation: true, short: &[], categories: ALL },
    Builtin { group: "batch", version: "v1", plural: "cronjobs", kind: "CronJob", namespaced: true, status: true, generation: true, short: &["cj"], categories: ALL },
    Builtin { group: "policy", version: "v1", plural: "poddisruptionbudgets", kind: "PodDisruptionBudget", namespaced: true, status: true, generation: true, short: &["pdb"], categories: &[] },
    Builtin { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event", namespaced: true, status: false, generation: false, short: &["ev"], categories: &[] },
    Builtin { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true, status: false, generation: false, short: &[], categories: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles", kind: "ClusterRole", namespaced: false, status: false, generation: false, short: &[], categories: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings", kind: "ClusterRoleBinding", namespaced: false, status: false, generation: false, short: &[], categories: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", kind: "Role", namespaced: true, status: false, generation: false, short: &[], categories: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", kind: "RoleBinding", namespaced: true, status: false, generation: false, short: &[], categories: &[] },
    Builtin { group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", kind: "CustomResourceDefinition", namespaced: false, status: true, generation: true, short: &["crd", "crds"], categories: &["api-extensions"] },
];

/// The singular name kube-apiserver derives for built-ins: lowercased kind.
fn singular_of(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

impl Registry {
    /// The built-in resources every fake server starts with.
    pub fn with_builtins() -> Self {
        let resources = BUILTINS
            .iter()
            .map(|b| {
                // Both Event APIs are views of one store (events.k8s.io shape).
                let (storage, view) = if b.plural == "events" {
                    let view = if b.group.is_empty() {
                        View::CoreEvent
                    } else {
                        View::Plain
                    };
                    (("events.k8s.io".to_string(), "events".to_string()), view)
                } else {
                    ((b.group.to_string(), b.plural.to_string()), View::Plain)
                };
                ResourceInfo {
                    group: b.group.into(),
                    version: b.version.into(),
                    plural: b.plural.into(),
                    singular: singular_of(b.kind),
                    kind: b.kind.into(),
                    namespaced: b.namespaced,
                    status: b.status,
                    generation: b.generation,
                    short_names: b.short.iter().map(|s| s.to_string()).collect(),
                    categories: b.categories.iter().map(|s| s.to_string()).collect(),
                    storage,
                    view,
                    custom: None,
                }
            })
            .collect();
        Registry { resources }
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn all(&self) -> &[ResourceInfo] {
        &self.resources
    }

    /// Groups other than core, each with its versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            if r.group.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(g, _)| g == &r.group) {
                Some((_, vs)) => {
                    if !vs.contains(&r.version) {
                        vs.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        for (_, vs) in &mut out {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceInfo> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// Replaces whatever a CRD served before with `infos` (all its versions).
    pub fn set_custom(&mut self, storage: &StorageKey, infos: Vec<ResourceInfo>) {
        self.remove_custom(storage);
        self.resources.extend(infos);
    }

    pub fn remove_custom(&mut self, storage: &StorageKey) {
        self.resources
            .retain(|r| !(r.is_custom() && &r.storage == storage));
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by numbers.
fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let major_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..major_end].parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[major_end..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match num.parse::<u64>() {
        Ok(n) => (level, major, n),
        Err(_) => (0, 0, 0),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Names a CRD asks for, with the defaults kube-apiserver fills in.
#[derive(Clone, Debug)]
pub struct CrdNames {
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub storage_version: String,
}

/// Validates a CustomResourceDefinition and returns its names plus one
/// `ResourceInfo` per served version.
pub fn parse_crd(crd: &Value) -> Result<(CrdNames, Vec<ResourceInfo>), Vec<Cause>> {
    let mut causes = Vec::new();
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    let group = str_at(crd, &["spec", "group"]).unwrap_or_default();
    let plural = str_at(crd, &["spec", "names", "plural"]).unwrap_or_default();
    let kind = str_at(crd, &["spec", "names", "kind"]).unwrap_or_default();
    if group.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if kind.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = str_at(crd, &["spec", "scope"]).unwrap_or_default();
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            causes.push(Cause::new(
                "FieldValueNotSupported",
                "spec.scope",
                format!(
                    "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
            true
        }
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let storage_versions: Vec<&Value> = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .collect();
    if !versions.is_empty() && storage_versions.len() != 1 {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.pointer("/schema/openAPIV3Schema").is_none() {
            causes.push(Cause::new(
                "FieldValueRequired",
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(causes);
    }

    let names = CrdNames {
        group: group.to_string(),
        plural: plural.to_string(),
        singular: str_at(crd, &["spec", "names", "singular"])
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_ascii_lowercase()),
        kind: kind.to_string(),
        list_kind: str_at(crd, &["spec", "names", "listKind"])
            .map(str::to_string)
            .unwrap_or_else(|| format!("{kind}List")),
        short_names: strings(crd.pointer("/spec/names/shortNames")),
        categories: strings(crd.pointer("/spec/names/categories")),
        storage_version: storage_versions[0]
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    let storage: StorageKey = (names.group.clone(), names.plural.clone());
    let infos = versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .map(|v| {
            let printer_columns = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|cols| {
                    cols.iter()
                        .map(|c| PrinterColumn {
                            name: str_at(c, &["name"]).unwrap_or_default().to_string(),
                            type_: str_at(c, &["type"]).unwrap_or("string").to_string(),
                            format: str_at(c, &["format"]).unwrap_or_default().to_string(),
                            description: str_at(c, &["description"])
                                .unwrap_or_default()
                                .to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            json_path: str_at(c, &["jsonPath"]).unwrap_or_default().to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            ResourceInfo {
                group: names.group.clone(),
                version: str_at(v, &["name"]).unwrap_or_default().to_string(),
                plural: names.plural.clone(),
                singular: names.singular.clone(),
                kind: names.kind.clone(),
                namespaced,
                status: v.pointer("/subresources/status").is_some(),
                generation: true,
                short_names: names.short_names.clone(),
                categories: names.categories.clone(),
                storage: storage.clone(),
                view: View::Plain,
                custom: Some(Arc::new(CustomVersion {
                    schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                    printer_columns,
                })),
            }
        })
        .collect();
    Ok((names, infos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_ordering_prefers_ga_then_beta_then_alpha() {
        let mut vs = vec!["v1alpha1", "v2beta1", "v1", "v1beta2", "v2"];
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(vs, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1"]);
    }

    #[test]
    fn crd_name_must_match_plural_and_group() {
        let crd = json!({
            "metadata": {"name": "wrong"},
            "spec": {"group": "x.dev", "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        });
        let causes = parse_crd(&crd).unwrap_err();
        assert_eq!(causes[0].field, "metadata.name");
    }

    #[test]
    fn crd_registers_served_versions_only() {
        let crd = json!({
            "metadata": {"name": "things.x.dev"},
            "spec": {"group": "x.dev", "scope": "Cluster",
                "names": {"plural": "things", "kind": "Thing", "shortNames": ["th"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1beta1", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        });
        let (names, infos) = parse_crd(&crd).unwrap();
        assert_eq!(names.list_kind, "ThingList");
        assert_eq!(names.singular, "thing");
        assert_eq!(infos.len(), 1);
        assert!(infos[0].status);
        assert!(!infos[0].namespaced);
        assert_eq!(infos[0].short_names, vec!["th"]);
    }
}
