//! Scheduling predicates, evaluated the way kube-scheduler's filters do: label selectors
//! (PDBs, inter-pod terms), node selector requirements (nodeSelector, required node
//! affinity) and taints/tolerations.

use compact_str::CompactString;

use super::input::SmallMap;

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
/// (PDB and pod-affinity semantics); an empty one selects everything (policy/v1 PDBs).
///
/// For a valid selector this is what kube-core's `Selector::matches` answers (a property
/// test below holds the two together). It is not built on kube-core's `Selector` because
/// that type is made by *moving* a `LabelSelector` into sets of owned strings: the
/// analysis borrows selectors straight from the snapshot and checks them inside its
/// hottest loops (every PDB candidate of every pod, every hostname anti-affinity pair the
/// consolidation tries over 150,000 pods, see BENCHMARKS.md), where a clone and a
/// conversion per check would cost more than the match itself.
///
/// An invalid selector selects nothing, as in Kubernetes: `labels.NewRequirement` (via
/// `metav1.LabelSelectorAsSelector`) refuses `In`/`NotIn` without values,
/// `Exists`/`DoesNotExist` with values and any other operator, and the PDB lookups
/// (client-go's `GetPodPodDisruptionBudgets`, the eviction API, scheduler preemption)
/// treat a selector that fails to convert as matching no pod. kube-core is laxer here: it
/// accepts `NotIn` with an empty list (which would select everything) and `Exists` with
/// values. Label key and value syntax is not checked: the API server refuses such
/// selectors when the object is written.
pub(crate) fn label_selector_matches(
    selector: Option<&LabelSelector>,
    labels: &SmallMap<CompactString>,
) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    if let Some(ml) = &selector.match_labels
        && !ml
            .iter()
            .all(|(k, v)| labels.get(k.as_str()).map(CompactString::as_str) == Some(v.as_str()))
    {
        return false;
    }
    // Requirements are ANDed, so one invalid requirement (false) makes the whole
    // selector select nothing.
    selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(e.key.as_str()).map(CompactString::as_str);
        let values = e.values.as_deref().unwrap_or_default();
        match (e.operator.as_str(), values.is_empty()) {
            ("In", false) => value.is_some_and(|v| values.iter().any(|x| x == v)),
            ("NotIn", false) => value.is_none_or(|v| !values.iter().any(|x| x == v)),
            ("Exists", true) => value.is_some(),
            ("DoesNotExist", true) => value.is_none(),
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

    /// The same labels as the API types hold them.
    fn btree(labels: &SmallMap<CompactString>) -> std::collections::BTreeMap<String, String> {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> SmallMap<CompactString> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
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
            match_labels: Some(btree(&labels(ml))),
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

    fn requirement(key: &str, op: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.map(|vs| vs.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn with_expression(e: LabelSelectorRequirement) -> LabelSelector {
        LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![e]),
        }
    }

    #[test]
    fn invalid_selectors_select_nothing_as_in_kubernetes() {
        use kube::core::{Selector, SelectorExt};
        let l = labels(&[("app", "web")]);
        // (requirement, what kube-core makes of it: None = refused, Some(matches))
        let cases = [
            (requirement("app", "In", None), None),
            (requirement("app", "In", Some(&[])), Some(false)),
            (requirement("app", "NotIn", None), None),
            (requirement("app", "NotIn", Some(&[])), Some(true)),
            (requirement("app", "Exists", Some(&["web"])), Some(true)),
            (requirement("env", "DoesNotExist", Some(&["x"])), Some(true)),
            (requirement("app", "Gt", Some(&["1"])), None),
            (requirement("app", "Equals", Some(&["web"])), None),
        ];
        for (e, kube_core) in cases {
            let selector = with_expression(e);
            assert!(
                !label_selector_matches(Some(&selector), &l),
                "{selector:?} is invalid in Kubernetes and must select nothing"
            );
            let theirs = Selector::try_from(selector.clone())
                .ok()
                .map(|s| s.matches(&btree(&l)));
            assert_eq!(theirs, kube_core, "kube-core on {selector:?}");
        }
        // One invalid requirement spoils a selector whose other parts match.
        let mut selector = with_expression(requirement("app", "NotIn", Some(&[])));
        selector.match_labels = Some(btree(&l));
        assert!(!label_selector_matches(Some(&selector), &l));
    }

    proptest::proptest! {
        /// On valid selectors the hand-written matcher and kube-core's agree.
        #[test]
        fn valid_selectors_match_as_kube_core_does(
            label_pairs in proptest::collection::btree_map("[abc]", "[xyz]", 0..4),
            match_labels in proptest::option::of(
                proptest::collection::btree_map("[abc]", "[xyz]", 0..3)
            ),
            expressions in proptest::collection::vec(
                (
                    "[abc]",
                    proptest::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist"]),
                    proptest::collection::vec("[xyz]", 1..3),
                    proptest::bool::ANY,
                ),
                0..3,
            ),
        ) {
            use kube::core::{Selector, SelectorExt};
            let match_expressions = expressions
                .into_iter()
                .map(|(key, op, values, empty_as_none)| LabelSelectorRequirement {
                    key,
                    operator: op.to_string(),
                    values: match op {
                        "In" | "NotIn" => Some(values),
                        _ if empty_as_none => None,
                        _ => Some(Vec::new()),
                    },
                })
                .collect();
            let selector = LabelSelector {
                match_labels,
                match_expressions: Some(match_expressions),
            };
            let theirs = Selector::try_from(selector.clone()).expect("a valid selector");
            proptest::prop_assert_eq!(
                label_selector_matches(
                    Some(&selector),
                    &label_pairs.iter().map(|(k, v)| (k.into(), v.into())).collect(),
                ),
                theirs.matches(&label_pairs)
            );
        }
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
