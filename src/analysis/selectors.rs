//! Scheduling predicates, evaluated the way kube-scheduler's filters do: label selectors
//! (PDBs, inter-pod terms), node selector requirements (nodeSelector, required node
//! affinity) and taints/tolerations.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Operator of a node selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// One node requirement, owned so that pod constraints can be interned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Req {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

/// Pseudo label key under which a node's name is visible to `matchFields`
/// (`metadata.name`, the only field the scheduler supports there).
pub(crate) const NAME_FIELD: &str = "\u{0}metadata.name";

impl Req {
    /// Convert an API requirement; `None` for an operator the scheduler would reject
    /// (such a term matches no node).
    pub fn from_api(r: &NodeSelectorRequirement, field: bool) -> Option<Req> {
        let op = match r.operator.as_str() {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => Op::Gt,
            "Lt" => Op::Lt,
            _ => return None,
        };
        let key = if field {
            if r.key != "metadata.name" {
                return None;
            }
            NAME_FIELD.to_string()
        } else {
            r.key.clone()
        };
        let mut values = r.values.clone().unwrap_or_default();
        values.sort();
        Some(Req { key, op, values })
    }

    /// Does a node whose value for `self.key` is `value` satisfy this requirement?
    pub fn matches(&self, value: Option<&str>) -> bool {
        match self.op {
            Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Gt | Op::Lt => {
                let (Some(v), [bound]) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.as_slice(),
                ) else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if self.op == Op::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// Does `selector` select an object with `labels`? A missing selector selects nothing
/// (PDB and pod-affinity semantics); an empty one selects everything.
pub(crate) fn label_selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    if let Some(ml) = &selector.match_labels
        && !ml.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key).map(String::as_str);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // An invalid operator makes the selector invalid; the API server rejects it.
            _ => false,
        }
    })
}

/// A toleration, owned so that pod constraints can be interned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Tol {
    key: String,
    exists: bool,
    value: String,
    effect: String,
}

impl Tol {
    /// Convert an API toleration.
    pub fn from_api(t: &Toleration) -> Tol {
        Tol {
            key: t.key.clone().unwrap_or_default(),
            exists: t.operator.as_deref() == Some("Exists"),
            value: t.value.clone().unwrap_or_default(),
            effect: t.effect.clone().unwrap_or_default(),
        }
    }

    /// Does this toleration tolerate `taint` (core/v1 `Toleration.ToleratesTaint`)?
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if self.key.is_empty() {
            // An empty key with Exists tolerates everything; with Equal it is invalid.
            return self.exists;
        }
        self.key == taint.key && (self.exists || self.value == taint.value.as_deref().unwrap_or(""))
    }
}

/// Taints that keep pods off a node unless tolerated (PreferNoSchedule only scores).
pub(crate) fn is_hard_taint(taint: &Taint) -> bool {
    taint.effect == "NoSchedule" || taint.effect == "NoExecute"
}

/// True when every hard taint is tolerated by one of `tolerations`.
pub(crate) fn tolerates_all(tolerations: &[Tol], taints: &[Taint]) -> bool {
    taints
        .iter()
        .filter(|t| is_hard_taint(t))
        .all(|taint| tolerations.iter().any(|t| t.tolerates(taint)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> Req {
        Req::from_api(
            &NodeSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            },
            false,
        )
        .unwrap()
    }

    #[test]
    fn node_requirements_table() {
        let cases: &[(Req, Option<&str>, bool)] = &[
            (req("pool", "In", &["a", "b"]), Some("a"), true),
            (req("pool", "In", &["a", "b"]), Some("c"), false),
            (req("pool", "In", &["a"]), None, false),
            (req("pool", "NotIn", &["a"]), Some("b"), true),
            (req("pool", "NotIn", &["a"]), Some("a"), false),
            (req("pool", "NotIn", &["a"]), None, true),
            (req("gpu", "Exists", &[]), Some(""), true),
            (req("gpu", "Exists", &[]), None, false),
            (req("gpu", "DoesNotExist", &[]), None, true),
            (req("gpu", "DoesNotExist", &[]), Some("1"), false),
            (req("cores", "Gt", &["4"]), Some("8"), true),
            (req("cores", "Gt", &["4"]), Some("4"), false),
            (req("cores", "Lt", &["4"]), Some("2"), true),
            (req("cores", "Lt", &["4"]), Some("x"), false),
        ];
        for (r, value, want) in cases {
            assert_eq!(r.matches(*value), *want, "{r:?} on {value:?}");
        }
        let bad = NodeSelectorRequirement {
            key: "k".into(),
            operator: "Near".into(),
            values: None,
        };
        assert!(Req::from_api(&bad, false).is_none());
    }

    #[test]
    fn label_selectors_follow_api_semantics() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(!label_selector_matches(None, &l));
        assert!(label_selector_matches(Some(&LabelSelector::default()), &l));
        let sel = |ml: &[(&str, &str)], exprs: Vec<(&str, &str, &[&str])>| LabelSelector {
            match_labels: Some(labels(ml)),
            match_expressions: Some(
                exprs
                    .into_iter()
                    .map(|(k, op, vs)| LabelSelectorRequirement {
                        key: k.into(),
                        operator: op.into(),
                        values: Some(vs.iter().map(|v| v.to_string()).collect()),
                    })
                    .collect(),
            ),
        };
        assert!(label_selector_matches(
            Some(&sel(&[("app", "web")], vec![])),
            &l
        ));
        assert!(!label_selector_matches(
            Some(&sel(&[("app", "db")], vec![])),
            &l
        ));
        assert!(label_selector_matches(
            Some(&sel(&[], vec![("tier", "In", &["front", "back"])])),
            &l
        ));
        assert!(!label_selector_matches(
            Some(&sel(&[], vec![("tier", "NotIn", &["front"])])),
            &l
        ));
        assert!(label_selector_matches(
            Some(&sel(&[], vec![("env", "DoesNotExist", &[])])),
            &l
        ));
        assert!(!label_selector_matches(
            Some(&sel(&[], vec![("env", "Exists", &[])])),
            &l
        ));
    }

    #[test]
    fn tolerations_table() {
        let taint = |k: &str, v: Option<&str>, e: &str| Taint {
            key: k.into(),
            value: v.map(Into::into),
            effect: e.into(),
            time_added: None,
        };
        let tol = |k: Option<&str>, op: Option<&str>, v: Option<&str>, e: Option<&str>| {
            Tol::from_api(&Toleration {
                key: k.map(Into::into),
                operator: op.map(Into::into),
                value: v.map(Into::into),
                effect: e.map(Into::into),
                toleration_seconds: None,
            })
        };
        let dedicated = taint("dedicated", Some("gpu"), "NoSchedule");
        assert!(tol(Some("dedicated"), None, Some("gpu"), None).tolerates(&dedicated));
        assert!(
            tol(
                Some("dedicated"),
                Some("Equal"),
                Some("gpu"),
                Some("NoSchedule")
            )
            .tolerates(&dedicated)
        );
        assert!(!tol(Some("dedicated"), None, Some("cpu"), None).tolerates(&dedicated));
        assert!(
            !tol(Some("dedicated"), None, Some("gpu"), Some("NoExecute")).tolerates(&dedicated)
        );
        assert!(tol(Some("dedicated"), Some("Exists"), None, None).tolerates(&dedicated));
        assert!(tol(None, Some("Exists"), None, None).tolerates(&dedicated));
        assert!(!tol(None, None, None, None).tolerates(&dedicated));
        let soft = taint("spot", None, "PreferNoSchedule");
        assert!(tolerates_all(&[], std::slice::from_ref(&soft)));
        assert!(!tolerates_all(&[], &[soft, dedicated]));
    }
}
