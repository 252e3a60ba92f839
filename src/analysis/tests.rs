//! Rule-by-rule tests of the analysis, a property test against a brute-force optimum,
//! and the synthetic low-utilization cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EmptyDirVolumeSource, HostPathVolumeSource, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaimVolumeSource, Pod,
    PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec, ResourceRequirements, Taint,
    Toleration, Volume,
};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::consolidation::{Outcome, consolidate, usable};
use super::model::{self, Model, Res, Role};
use super::*;
use crate::aws::Nodegroup;
use crate::cluster::snapshot::ClusterSnapshot;
use crate::testing::dump::{self, snapshot_from_documents, snapshot_from_dump};
use crate::testing::synthetic::{SyntheticSpec, generate, make_node};

// ---------------------------------------------------------------- test kit

/// The analysis of a typed snapshot, as the operator runs it.
fn analyze(
    snap: &ClusterSnapshot,
    aws: &AwsInventory,
    prices: &PriceTable,
    settings: &AnalysisSettings,
) -> Report {
    super::analyze(&AnalysisInput::from(snap.clone()), aws, prices, settings)
}

const GI: i64 = 1 << 30;

/// A small cluster under construction.
#[derive(Default)]
struct Kit {
    snap: ClusterSnapshot,
    aws: AwsInventory,
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Kit {
    /// A node of `ty` in `group`, zone a, with the given allocatable.
    fn node(
        &mut self,
        name: &str,
        ty: &str,
        group: &str,
        cpu_m: i64,
        mem: i64,
        pods: i64,
    ) -> usize {
        let l = labels(&[
            ("kubernetes.io/hostname", name),
            ("node.kubernetes.io/instance-type", ty),
            ("eks.amazonaws.com/nodegroup", group),
            ("topology.kubernetes.io/zone", "us-east-1a"),
            ("topology.kubernetes.io/region", "us-east-1"),
            ("pool", group),
        ]);
        self.snap
            .nodes
            .push(make_node(name, l, (cpu_m, mem, pods), vec![], None));
        self.snap.nodes.len() - 1
    }
    /// An m5.large-sized node (2 vCPU, 8 GiB nominal).
    fn m5(&mut self, name: &str) -> usize {
        self.node(name, "m5.large", "ng", 1930, 7 * GI, 29)
    }
    fn taint(&mut self, node: usize, key: &str, effect: &str) {
        let spec = self.snap.nodes[node]
            .spec
            .get_or_insert_with(Default::default);
        spec.taints.get_or_insert_with(Vec::new).push(Taint {
            key: key.into(),
            value: Some("x".into()),
            effect: effect.into(),
            time_added: None,
        });
    }
    fn node_label(&mut self, node: usize, key: &str, value: &str) {
        self.snap.nodes[node]
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }
    /// A pod owned by a ReplicaSet, on `node`.
    fn pod(&mut self, name: &str, node: &str, cpu_m: i64, mem_mi: i64) -> usize {
        self.pod_owned(name, node, cpu_m, mem_mi, Some(("ReplicaSet", "rs-1")))
    }
    fn pod_owned(
        &mut self,
        name: &str,
        node: &str,
        cpu_m: i64,
        mem_mi: i64,
        owner: Option<(&str, &str)>,
    ) -> usize {
        let requests: BTreeMap<String, Quantity> = [
            ("cpu".to_string(), Quantity(format!("{cpu_m}m"))),
            ("memory".to_string(), Quantity(format!("{mem_mi}Mi"))),
        ]
        .into();
        self.snap.pods.push(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some(labels(&[("app", name)])),
                owner_references: owner.map(|(kind, uid)| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: kind.into(),
                        name: uid.into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(requests),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        });
        self.snap.pods.len() - 1
    }
    fn spec(&mut self, pod: usize) -> &mut PodSpec {
        self.snap.pods[pod].spec.as_mut().expect("spec")
    }
    fn pod_label(&mut self, pod: usize, key: &str, value: &str) {
        self.snap.pods[pod]
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }
    fn tolerate(&mut self, pod: usize, key: &str) {
        self.spec(pod)
            .tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                ..Default::default()
            });
    }
    fn volume(&mut self, pod: usize, v: Volume) {
        self.spec(pod).volumes.get_or_insert_with(Vec::new).push(v);
    }
    fn pdb(
        &mut self,
        name: &str,
        app: &str,
        max_unavailable: Option<i32>,
        status_allowed: Option<i32>,
    ) {
        self.snap.pod_disruption_budgets.push(PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: max_unavailable.map(IntOrString::Int),
                min_available: if max_unavailable.is_none() {
                    Some(IntOrString::Int(1))
                } else {
                    None
                },
                selector: Some(LabelSelector {
                    match_labels: Some(labels(&[("app", app)])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: status_allowed.map(|a| PodDisruptionBudgetStatus {
                disruptions_allowed: a,
                expected_pods: 1,
                current_healthy: 1,
                desired_healthy: 1,
                ..Default::default()
            }),
        });
    }
    fn report(&self) -> Report {
        analyze(
            &self.snap,
            &self.aws,
            &PriceTable::bundled(),
            &AnalysisSettings::default(),
        )
    }
    fn removed(&self) -> Vec<String> {
        self.report()
            .consolidation
            .removable_nodes
            .into_iter()
            .map(|n| n.node)
            .collect()
    }
}

fn m5_month() -> f64 {
    0.096 * 730.0
}

// ---------------------------------------------------------------- consolidation rules

#[test]
fn underused_node_is_removed_and_saving_is_its_price() {
    let mut k = Kit::default();
    k.m5("a");
    k.m5("b");
    k.pod("p1", "a", 500, 512);
    k.pod("p2", "b", 300, 256);
    let r = k.report();
    assert_eq!(r.consolidation.removable_nodes.len(), 1);
    // The emptier node goes: b.
    assert_eq!(r.consolidation.removable_nodes[0].node, "b");
    assert_eq!(r.consolidation.pods_moved, 1);
    assert_eq!(r.consolidation.pods_unplaced, 0);
    assert!((r.current_monthly_cost - 2.0 * m5_month()).abs() < 0.01);
    assert!((r.savings.consolidation - m5_month()).abs() < 0.01);
    assert_eq!(r.summary().monthly_cost, "$140.16");
}

#[test]
fn pdb_that_allows_no_disruption_blocks_removal() {
    for (max_unavailable, status) in [(Some(0), None), (Some(1), Some(0)), (None, None)] {
        let mut k = Kit::default();
        k.m5("a");
        k.m5("b");
        k.pod("p1", "a", 500, 512);
        k.pod("guarded", "b", 300, 256);
        // (None, None): minAvailable 1 with one matching pod → nothing may be disrupted.
        k.pdb("guard", "guarded", max_unavailable, status);
        let r = k.report();
        assert_eq!(
            r.consolidation
                .removable_nodes
                .iter()
                .map(|n| n.node.as_str())
                .collect::<Vec<_>>(),
            vec!["a"],
            "{max_unavailable:?}/{status:?}: b is pinned, a can move onto it"
        );
        let g = &r.nodegroups[0];
        assert_eq!(g.kept_because.get("pdb"), Some(&1), "{g:?}");
    }
    // A PDB that allows one disruption does not pin.
    let mut k = Kit::default();
    k.m5("a");
    k.m5("b");
    k.pod("p1", "a", 500, 512);
    k.pod("guarded", "b", 300, 256);
    k.pdb("guard", "guarded", Some(1), Some(1));
    assert_eq!(k.removed(), vec!["b"]);
}

#[test]
fn daemonset_pods_neither_move_nor_need_room() {
    let mut k = Kit::default();
    k.m5("a");
    k.m5("b");
    k.pod("p1", "a", 1500, 512);
    // A DaemonSet pod far too big to fit on a: it does not move, it goes with b.
    k.pod_owned("ds-b", "b", 1000, 4096, Some(("DaemonSet", "ds")));
    k.pod_owned("ds-a", "a", 100, 64, Some(("DaemonSet", "ds")));
    let r = k.report();
    assert_eq!(
        r.consolidation
            .removable_nodes
            .iter()
            .map(|n| n.node.as_str())
            .collect::<Vec<_>>(),
        vec!["b"]
    );
    assert_eq!(r.consolidation.pods_moved, 0);
    assert_eq!(r.counts.node_bound_pods, 2);
}

#[test]
fn taint_without_toleration_blocks_a_move() {
    let build = |tolerate: bool, effect: &str| {
        let mut k = Kit::default();
        let a = k.m5("a");
        k.m5("b");
        k.taint(a, "dedicated", effect);
        k.pod_owned("pinned-on-a", "a", 100, 64, None); // keeps a from being removed
        let p = k.pod("mover", "b", 300, 256);
        if tolerate {
            k.tolerate(p, "dedicated");
        }
        k.removed()
    };
    assert!(
        build(false, "NoSchedule").is_empty(),
        "NoSchedule taint without toleration"
    );
    assert!(
        build(false, "NoExecute").is_empty(),
        "NoExecute taint without toleration"
    );
    assert_eq!(build(true, "NoSchedule"), vec!["b"], "tolerated");
    assert_eq!(
        build(false, "PreferNoSchedule"),
        vec!["b"],
        "PreferNoSchedule only scores"
    );
}

type Setup = Box<dyn Fn(&mut Kit, usize)>;

fn annotate(k: &mut Kit, pod: usize, pairs: &[(&str, &str)]) {
    k.snap.pods[pod]
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .extend(labels(pairs));
}

fn host_path(name: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: "/x".into(),
            type_: None,
        }),
        ..Default::default()
    }
}

fn empty_dir(name: &str, medium: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(String::from),
            size_limit: None,
        }),
        ..Default::default()
    }
}

const CA_LOCAL_VOLUMES: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes";
const CA_SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";

/// Each scale-down rule, under both profiles: (case, setup, rule that keeps the node under
/// cluster-autoscaler, under karpenter). `None`: the pod moves and its node goes.
#[test]
fn scale_down_rules_follow_the_profile() {
    let cases: Vec<(&str, Setup, Option<&str>, Option<&str>)> = vec![
        (
            "hostPath",
            Box::new(|k: &mut Kit, p| k.volume(p, host_path("h"))),
            Some("local-storage"),
            None,
        ),
        (
            "disk emptyDir",
            Box::new(|k: &mut Kit, p| k.volume(p, empty_dir("scratch", None))),
            Some("local-storage"),
            None,
        ),
        (
            "memory emptyDir is not local storage",
            Box::new(|k: &mut Kit, p| k.volume(p, empty_dir("m", Some("Memory")))),
            None,
            None,
        ),
        (
            "local volumes all named in safe-to-evict-local-volumes",
            Box::new(|k: &mut Kit, p| {
                k.volume(p, empty_dir("tmp", None));
                k.volume(p, host_path("cache"));
                annotate(k, p, &[(CA_LOCAL_VOLUMES, "tmp, cache")]);
            }),
            None,
            None,
        ),
        (
            "one local volume not named",
            Box::new(|k: &mut Kit, p| {
                k.volume(p, empty_dir("tmp", None));
                k.volume(p, empty_dir("data", None));
                annotate(k, p, &[(CA_LOCAL_VOLUMES, "tmp")]);
            }),
            Some("local-storage"),
            None,
        ),
        (
            "safe-to-evict=true lifts local storage",
            Box::new(|k: &mut Kit, p| {
                k.volume(p, host_path("h"));
                annotate(k, p, &[(CA_SAFE_TO_EVICT, "true")]);
            }),
            None,
            None,
        ),
        (
            "kube-system pod without a PDB",
            Box::new(|k: &mut Kit, p| {
                k.snap.pods[p].metadata.namespace = Some("kube-system".into())
            }),
            Some("kube-system-pod-without-pdb"),
            None,
        ),
        (
            "kube-system pod with a PDB that allows disruption",
            Box::new(|k: &mut Kit, p| {
                k.snap.pods[p].metadata.namespace = Some("kube-system".into());
                k.pdb("p2-pdb", "p2", Some(1), Some(1));
                k.snap.pod_disruption_budgets[0].metadata.namespace = Some("kube-system".into());
            }),
            None,
            None,
        ),
        (
            "kube-system DaemonSet pod goes with its node",
            Box::new(|k: &mut Kit, p| {
                k.snap.pods[p].metadata.namespace = Some("kube-system".into());
                k.snap.pods[p].metadata.owner_references.as_mut().unwrap()[0].kind =
                    "DaemonSet".into();
            }),
            None,
            None,
        ),
        (
            "safe-to-evict=false",
            Box::new(|k: &mut Kit, p| annotate(k, p, &[(CA_SAFE_TO_EVICT, "false")])),
            Some("safe-to-evict-false"),
            None,
        ),
        (
            "do-not-disrupt",
            Box::new(|k: &mut Kit, p| annotate(k, p, &[("karpenter.sh/do-not-disrupt", "true")])),
            Some("do-not-disrupt"),
            Some("do-not-disrupt"),
        ),
        (
            "no controller",
            Box::new(|k: &mut Kit, p| k.snap.pods[p].metadata.owner_references = None),
            Some("no-controller"),
            Some("no-controller"),
        ),
        (
            "safe-to-evict=true overrides a missing controller",
            Box::new(|k: &mut Kit, p| {
                k.snap.pods[p].metadata.owner_references = None;
                annotate(k, p, &[(CA_SAFE_TO_EVICT, "true")]);
            }),
            None,
            None,
        ),
        (
            "PDB that allows no disruption",
            Box::new(|k: &mut Kit, _| k.pdb("p2-pdb", "p2", Some(0), None)),
            Some("pdb"),
            Some("pdb"),
        ),
    ];
    for profile in [
        ScaleDownProfile::ClusterAutoscaler,
        ScaleDownProfile::Karpenter,
    ] {
        for (what, setup, ca_rule, karpenter_rule) in &cases {
            let rule = match profile {
                ScaleDownProfile::ClusterAutoscaler => ca_rule,
                ScaleDownProfile::Karpenter => karpenter_rule,
            };
            let mut k = Kit::default();
            k.m5("a");
            k.m5("b");
            k.pod("p1", "a", 800, 512);
            let p = k.pod("p2", "b", 300, 256);
            setup(&mut k, p);
            let settings = AnalysisSettings {
                scale_down_profile: profile,
                ..Default::default()
            };
            let r = analyze(&k.snap, &k.aws, &PriceTable::bundled(), &settings);
            assert_eq!(r.scale_down_profile, profile);
            let removed: Vec<&str> = r
                .consolidation
                .removable_nodes
                .iter()
                .map(|n| n.node.as_str())
                .collect();
            let b = r.nodes.iter().find(|n| n.node == "b").unwrap();
            match rule {
                Some(rule) => {
                    assert_eq!(removed, ["a"], "{profile} {what}: b stays, a moves onto it");
                    let kept = b.kept_by.as_ref().expect("b is kept");
                    assert_eq!(kept.rule, *rule, "{profile} {what}: {}", kept.detail);
                    assert!(kept.detail.contains("/p2"), "{}", kept.detail);
                }
                None => assert_eq!(removed, ["b"], "{profile} {what}: does not keep b"),
            }
        }
    }
}

#[test]
fn node_annotations_follow_the_profile() {
    for (annotation, ca, karpenter) in [
        (
            "cluster-autoscaler.kubernetes.io/scale-down-disabled",
            true,
            false,
        ),
        ("karpenter.sh/do-not-disrupt", true, true),
    ] {
        for (profile, keeps) in [
            (ScaleDownProfile::ClusterAutoscaler, ca),
            (ScaleDownProfile::Karpenter, karpenter),
        ] {
            let mut k = Kit::default();
            let a = k.m5("a");
            k.m5("b");
            k.pod("p1", "b", 800, 512);
            k.snap.nodes[a].metadata.annotations = Some(labels(&[(annotation, "true")]));
            let settings = AnalysisSettings {
                scale_down_profile: profile,
                ..Default::default()
            };
            let r = analyze(&k.snap, &k.aws, &PriceTable::bundled(), &settings);
            let line = &r.nodes[0];
            assert_eq!(line.removable, !keeps, "{profile} {annotation}");
            if keeps {
                assert_eq!(line.kept_by.as_ref().unwrap().rule, "node-annotation");
            }
        }
    }
}

#[test]
fn node_selector_is_respected() {
    let mut k = Kit::default();
    let a = k.m5("a");
    k.m5("b");
    k.node_label(a, "disk", "hdd");
    k.pod_owned("stay", "a", 100, 64, None);
    let p = k.pod("needs-ssd", "b", 300, 256);
    k.spec(p).node_selector = Some(labels(&[("disk", "ssd")]));
    assert!(k.removed().is_empty());
    k.node_label(a, "disk", "ssd");
    assert_eq!(k.removed(), vec!["b"]);
}

#[test]
fn required_node_affinity_operators_are_respected() {
    let affinity = |key: &str, op: &str, values: &[&str]| Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: key.into(),
                        operator: op.into(),
                        values: Some(values.iter().map(|v| v.to_string()).collect()),
                    }]),
                    match_fields: None,
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    // (requirement, can move onto a (which has gpu=none, no "spot" label))
    let cases = [
        (affinity("gpu", "In", &["none", "t4"]), true),
        (affinity("gpu", "In", &["t4"]), false),
        (affinity("gpu", "NotIn", &["none"]), false),
        (affinity("gpu", "NotIn", &["t4"]), true),
        (affinity("spot", "DoesNotExist", &[]), true),
        (affinity("spot", "Exists", &[]), false),
        (affinity("gpu", "Exists", &[]), true),
    ];
    for (aff, movable) in cases {
        let mut k = Kit::default();
        let a = k.m5("a");
        k.m5("b");
        k.node_label(a, "gpu", "none");
        k.pod_owned("stay", "a", 100, 64, None);
        let p = k.pod("mover", "b", 300, 256);
        k.spec(p).affinity = Some(aff.clone());
        assert_eq!(!k.removed().is_empty(), movable, "{aff:?}");
    }
}

#[test]
fn pods_naming_their_node_pin_it_and_daemonset_affinity_keeps_classes_few() {
    let mut k = Kit::default();
    for n in ["a", "b", "c"] {
        k.m5(n);
        let ds = k.pod_owned(&format!("ds-{n}"), n, 10, 16, Some(("DaemonSet", "ds")));
        k.spec(ds).affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: None,
                        match_fields: Some(vec![NodeSelectorRequirement {
                            key: "metadata.name".into(),
                            operator: "In".into(),
                            values: Some(vec![n.into()]),
                        }]),
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    k.pod("free", "a", 100, 64);
    let p = k.pod("by-name", "b", 100, 64);
    k.spec(p).node_selector = Some(labels(&[("kubernetes.io/hostname", "b")]));
    let prices = PriceTable::bundled();
    let settings = AnalysisSettings::default();
    let input = AnalysisInput::from(k.snap.clone());
    let m = model::build(&input, &k.aws, &prices, &settings);
    assert_eq!(
        m.n_classes, 1,
        "per-node DaemonSet affinity must not split nodes into classes"
    );
    assert!(matches!(
        m.pods[4].role,
        Role::Pinned(model::PinReason::NodeName)
    ));
    // b is pinned by its pod; a's pod moves to b (or c) and both a and c go.
    let mut removed = k.removed();
    removed.sort();
    assert_eq!(removed, vec!["a", "c"]);
}

#[test]
fn pods_per_node_limit_is_respected() {
    let mut k = Kit::default();
    k.node("a", "m5.large", "ng", 1930, 7 * GI, 3);
    k.m5("b");
    k.pod_owned("x1", "a", 10, 16, None);
    k.pod("x2", "a", 10, 16);
    k.pod("x3", "a", 10, 16);
    k.pod("tiny", "b", 10, 16);
    // a is full by pod count (3/3) and pinned; b's pod has nowhere to go.
    let r = k.report();
    assert!(r.consolidation.removable_nodes.is_empty());
    assert_eq!(r.nodegroups[0].kept_because.get("no-room"), Some(&1));
}

#[test]
fn headroom_keeps_destinations_below_the_line() {
    let run = |headroom: f64| {
        let mut k = Kit::default();
        k.m5("a");
        k.m5("b");
        k.pod_owned("big", "a", 1600, 256, None); // 83% of a's CPU
        k.pod("small", "b", 150, 128);
        let settings = AnalysisSettings {
            headroom,
            ..Default::default()
        };
        analyze(&k.snap, &k.aws, &PriceTable::bundled(), &settings)
            .consolidation
            .removable_nodes
            .len()
    };
    assert_eq!(run(0.0), 1, "1750m of 1930m fits without headroom");
    assert_eq!(run(0.10), 0, "1750m > 90% of 1930m");
}

/// Every type of the instance facts file, as a node in us-east-1: each is priced from the
/// bundled table (the list price, exactly) or reported unpriced with the reason; the total
/// is the sum of the priced lines.
#[test]
fn every_type_in_the_facts_file_is_priced_or_reported_unpriced() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let facts: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("data/prices/source/ec2-instance-facts.json")).unwrap(),
    )
    .unwrap();
    let list: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("data/prices/source/ec2-on-demand-prices.json")).unwrap(),
    )
    .unwrap();
    let list = &list["regions"]["us-east-1"];
    let types: Vec<&String> = facts["instanceTypes"].as_object().unwrap().keys().collect();
    assert_eq!(types.len(), 1409);
    let mut k = Kit::default();
    for (i, ty) in types.iter().enumerate() {
        k.node(&format!("n{i}"), ty, "all", 1930, 7 * GI, 29);
    }
    let r = k.report();
    assert_eq!(r.nodes.len(), types.len());
    let (mut priced, mut cents) = (0, 0i64);
    for (line, ty) in r.nodes.iter().zip(&types) {
        match (line.monthly_cost, list.get(ty.as_str())) {
            (Some(cost), Some(price)) => {
                let want = (price.as_f64().unwrap() * 730.0 * 100.0).round() as i64;
                assert_eq!((cost * 100.0).round() as i64, want, "{ty}");
                assert!(line.unpriced_reason.is_none());
                priced += 1;
                cents += want;
            }
            (None, None) => {
                let reason = line.unpriced_reason.as_deref().expect("a reason");
                assert!(reason.contains(ty.as_str()), "{reason}");
            }
            (cost, price) => panic!("{ty}: priced {cost:?}, list price {price:?}"),
        }
    }
    assert_eq!(priced + r.unpriced_nodes, types.len());
    assert!(priced > 1300, "{priced}");
    assert_eq!((r.current_monthly_cost * 100.0).round() as i64, cents);
}

#[test]
fn a_region_missing_from_the_table_is_unpriced_never_another_regions_figure() {
    let mut k = Kit::default();
    let a = k.node("dublin", "m5.large", "ng", 1930, 7 * GI, 29);
    k.node_label(a, "topology.kubernetes.io/region", "eu-west-1");
    k.node("old", "m4.large", "legacy", 1930, 7 * GI, 29);
    let r = k.report();
    let dublin = r.nodes.iter().find(|n| n.node == "dublin").unwrap();
    assert_eq!(dublin.monthly_cost, None);
    assert_eq!(dublin.region, "eu-west-1");
    let reason = dublin.unpriced_reason.as_deref().unwrap();
    assert!(
        reason.contains("eu-west-1") && reason.contains("m5.large"),
        "{reason}"
    );
    assert_eq!(r.unpriced_examples[0].reason, reason);
    // A previous-generation type is in the real table.
    let old = r.nodes.iter().find(|n| n.node == "old").unwrap();
    assert_eq!(old.monthly_cost, Some(73.0));
    assert!(old.price_basis.contains("$0.1/h"), "{}", old.price_basis);
    assert_eq!(r.current_monthly_cost, 73.0);
    assert!(r.render_text().contains(reason));
    assert!(r.prices_source.contains("AWS Pricing API"));
    assert_eq!(r.price_sources, PriceTable::bundled().sources);
}

#[test]
fn pods_stay_on_their_operating_system() {
    // Two Linux nodes (one unlabelled: the kubelet default is linux) and a Windows node
    // with plenty of room; a Windows price is supplied so that price is not what keeps it.
    let build = |windows_selector: bool| {
        let mut k = Kit::default();
        let a = k.m5("lin-a");
        k.node_label(a, "kubernetes.io/os", "linux");
        k.m5("lin-unlabelled");
        let w = k.node("win", "m5.large", "win", 1930, 7 * GI, 29);
        k.node_label(w, "kubernetes.io/os", "windows");
        k.pod("web-1", "lin-a", 1200, 512);
        k.pod("web-2", "lin-unlabelled", 1200, 512);
        let p = k.pod("dotnet", "win", 100, 128);
        if windows_selector {
            k.spec(p).node_selector = Some(labels(&[("kubernetes.io/os", "windows")]));
        }
        let mut prices = PriceTable::bundled();
        prices.set_on_demand_for("windows", "us-east-1", "m5.large", 0.188);
        analyze(&k.snap, &k.aws, &prices, &AnalysisSettings::default())
    };
    for selector in [true, false] {
        let r = build(selector);
        // The Linux pods do not fit together on one Linux node, and may not use the
        // Windows node: both Linux nodes stay; the Windows pod has no other Windows node.
        assert!(
            r.consolidation.removable_nodes.is_empty(),
            "{selector}: {r:#?}"
        );
        let win = r.nodes.iter().find(|n| n.node == "win").unwrap();
        assert_eq!(win.operating_system, "windows");
        assert_eq!(win.monthly_cost, Some(137.24));
        assert!(win.price_basis.contains("Windows"), "{}", win.price_basis);
        assert_eq!(win.kept_by.as_ref().unwrap().rule, "no-room");
        let unlabelled = r.nodes.iter().find(|n| n.node == "lin-unlabelled").unwrap();
        assert_eq!(unlabelled.operating_system, "linux");
        // Right-sizing a Windows group looks only at Windows prices (only m5.large here).
        assert!(
            !r.recommendations
                .iter()
                .any(|x| x.category == Category::RightSizing && x.nodegroup == "win"),
        );
    }
    // Without the Windows price the node is unpriced, never at the Linux rate.
    let mut k = Kit::default();
    let w = k.m5("win");
    k.node_label(w, "kubernetes.io/os", "windows");
    let r = k.report();
    assert_eq!(r.nodes[0].monthly_cost, None);
    assert!(
        r.nodes[0]
            .unpriced_reason
            .as_deref()
            .unwrap()
            .contains("Windows")
    );
    assert_eq!(r.current_monthly_cost, 0.0);
}

#[test]
fn capacity_provisioned_annotation_is_read_as_eks_writes_it() {
    use super::model::parse_capacity_provisioned as parse;
    assert_eq!(parse("0.5vCPU 1GB"), Some((0.5, 1.0)));
    assert_eq!(parse("0.25vCPU 0.5GB"), Some((0.25, 0.5)));
    assert_eq!(parse("16vCPU 120GB"), Some((16.0, 120.0)));
    assert_eq!(parse(" 2vCPU   4GB "), Some((2.0, 4.0)));
    for bad in [
        "",
        "0.5vCPU",
        "1GB",
        "half a vCPU",
        "-1vCPU 2GB",
        "NaNvCPU 1GB",
    ] {
        assert_eq!(parse(bad), None, "{bad:?}");
    }
}

/// A Fargate node running `pod` with the given CapacityProvisioned annotation.
fn fargate_node(k: &mut Kit, name: &str, capacity: Option<&str>) -> usize {
    let n = k.node(name, "", "", 2000, 4 * GI, 1);
    let l = k.snap.nodes[n].metadata.labels.as_mut().unwrap();
    l.remove("node.kubernetes.io/instance-type");
    l.remove("eks.amazonaws.com/nodegroup");
    l.insert("eks.amazonaws.com/compute-type".into(), "fargate".into());
    let p = k.pod(&format!("{name}-pod"), name, 500, 1024);
    if let Some(c) = capacity {
        k.snap.pods[p].metadata.annotations = Some(labels(&[("CapacityProvisioned", c)]));
    }
    n
}

#[test]
fn fargate_nodes_are_billed_per_pod_and_never_consolidated() {
    let mut k = Kit::default();
    k.m5("ec2");
    k.pod("small", "ec2", 100, 64);
    fargate_node(&mut k, "fargate-1", Some("0.5vCPU 1GB"));
    fargate_node(&mut k, "fargate-2", Some("2vCPU 4GB"));
    let r = k.report();
    let line = |name: &str| r.nodes.iter().find(|n| n.node == name).unwrap().clone();
    let f1 = line("fargate-1");
    assert_eq!(f1.capacity_type, report::CapacityType::Fargate);
    assert_eq!(f1.nodegroup, "(fargate)");
    // (0.5 × 0.04048 + 1 × 0.004445) × 730 = 18.02; (2 × 0.04048 + 4 × 0.004445) × 730 = 72.08
    assert_eq!(f1.monthly_cost, Some(18.02));
    assert_eq!(line("fargate-2").monthly_cost, Some(72.08));
    assert!(f1.price_basis.contains("0.5 vCPU"), "{}", f1.price_basis);
    assert_eq!(f1.kept_by.as_ref().unwrap().rule, "fargate");
    // The EC2 node's pod would fit on either Fargate node by its numbers: never planned.
    assert!(r.consolidation.removable_nodes.is_empty());
    assert_eq!(r.current_monthly_cost, 70.08 + 18.02 + 72.08);
    assert!(r.recommendations.iter().all(|x| x.nodegroup != "(fargate)"));

    // Without the annotation, or outside the regions with rates, a Fargate pod is unpriced.
    let mut k = Kit::default();
    fargate_node(&mut k, "bare", None);
    let f = fargate_node(&mut k, "dublin", Some("1vCPU 2GB"));
    k.node_label(f, "topology.kubernetes.io/region", "eu-west-1");
    let r = k.report();
    assert_eq!(r.unpriced_nodes, 2);
    let reasons: Vec<&str> = r
        .nodes
        .iter()
        .map(|n| n.unpriced_reason.as_deref().unwrap())
        .collect();
    assert!(reasons[0].contains("CapacityProvisioned"), "{reasons:?}");
    assert!(
        reasons[1].contains("no Fargate rates for eu-west-1"),
        "{reasons:?}"
    );
}

#[test]
fn unknown_instance_type_is_reported_unknown_never_zero() {
    let mut k = Kit::default();
    k.m5("a");
    k.node("mystery", "x9.weird", "ng", 1930, 7 * GI, 29);
    k.pod("p1", "a", 500, 512);
    k.pod("p2", "mystery", 100, 128);
    let r = k.report();
    assert_eq!(r.unpriced_nodes, 1);
    assert_eq!(r.unpriced_examples[0].node, "mystery");
    assert_eq!(
        r.unpriced_examples[0].instance_type.as_deref(),
        Some("x9.weird")
    );
    assert!(
        (r.current_monthly_cost - m5_month()).abs() < 0.01,
        "the unknown node adds nothing to the known total"
    );
    // It is never "removed" for a saving we cannot state, and never receives pods as if
    // it were free: a's pod has nowhere else to go, so nothing is removed.
    assert!(r.consolidation.removable_nodes.is_empty(), "{r:#?}");
    assert_eq!(r.savings.consolidation, 0.0);
    assert_eq!(
        r.nodes[0].kept_by.as_ref().unwrap().rule,
        "no-room",
        "a stays"
    );
    assert_eq!(r.nodes[1].kept_by.as_ref().unwrap().rule, "unknown-price");
    assert!(
        r.optimized_monthly_cost > 0.0,
        "never 'optimized cost $0.00'"
    );
    assert!(!r.render_text().contains("100.0%"));
    assert_eq!(r.summary().unpriced_nodes, 1);
    // With a priced node beside it, a's pod moves there, not onto the unknown node.
    let mut k2 = Kit::default();
    k2.m5("a");
    k2.m5("b");
    k2.node("mystery", "x9.weird", "ng", 1930, 7 * GI, 29);
    k2.pod("p1", "a", 500, 512);
    k2.pod("p2", "b", 900, 512);
    k2.pod("p3", "mystery", 100, 128);
    let r2 = k2.report();
    assert_eq!(r2.consolidation.removable_nodes.len(), 1);
    assert_eq!(r2.consolidation.removable_nodes[0].node, "a");
    let text = r.render_text();
    assert!(
        text.contains("UNKNOWN cost") && text.contains("x9.weird"),
        "{text}"
    );
    assert!(r.notes.iter().any(|n| n.contains("unknown")));
    // A node with no type at all is unknown too.
    let mut k = Kit::default();
    k.m5("a");
    let n = k.m5("untyped");
    k.snap.nodes[n]
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("node.kubernetes.io/instance-type");
    let r = k.report();
    assert_eq!(r.unpriced_nodes, 1);
    assert_eq!(r.unpriced_examples[0].instance_type, None);
}

#[test]
fn nodegroup_min_size_is_respected() {
    let mut k = Kit::default();
    for n in ["a", "b", "c"] {
        k.m5(n);
        k.pod(&format!("p-{n}"), n, 100, 64);
    }
    assert_eq!(k.removed().len(), 2);
    k.aws.nodegroups.push(Nodegroup {
        name: "ng".into(),
        min_size: Some(2),
        ..Default::default()
    });
    let r = k.report();
    assert_eq!(r.consolidation.removable_nodes.len(), 1);
    assert_eq!(r.nodegroups[0].kept_because.get("min-size"), Some(&2));
}

#[test]
fn hostname_anti_affinity_is_respected_both_ways() {
    let anti = Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(labels(&[("tier", "db")])),
                    ..Default::default()
                }),
                topology_key: "kubernetes.io/hostname".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    for mover_has_term in [true, false] {
        let mut k = Kit::default();
        k.m5("a");
        k.m5("b");
        let stay = k.pod_owned("db-0", "a", 100, 64, None);
        k.pod_label(stay, "tier", "db");
        let mover = k.pod("db-1", "b", 100, 64);
        k.pod_label(mover, "tier", "db");
        if mover_has_term {
            k.spec(mover).affinity = Some(anti.clone());
        } else {
            k.spec(stay).affinity = Some(anti.clone());
        }
        assert!(k.removed().is_empty(), "mover_has_term={mover_has_term}");
    }
}

#[test]
fn pvc_pods_stay_in_their_zone() {
    let mut k = Kit::default();
    let a = k.m5("a");
    k.m5("b");
    k.pod_owned("stay", "a", 100, 64, None);
    let p = k.pod_owned("db-0", "b", 300, 256, Some(("StatefulSet", "db")));
    k.volume(
        p,
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "data-db-0".into(),
                read_only: None,
            }),
            ..Default::default()
        },
    );
    k.node_label(a, "topology.kubernetes.io/zone", "us-east-1b");
    assert!(
        k.removed().is_empty(),
        "EBS volume is in zone a, the only other node in b"
    );
    k.node_label(a, "topology.kubernetes.io/zone", "us-east-1a");
    assert_eq!(k.removed(), vec!["b"]);
}

#[test]
fn cordoned_and_not_ready_nodes_receive_nothing() {
    let mut k = Kit::default();
    let a = k.m5("a");
    k.m5("b");
    k.pod_owned("stay", "a", 100, 64, None);
    k.pod("mover", "b", 300, 256);
    k.snap.nodes[a].spec.as_mut().unwrap().unschedulable = Some(true);
    assert!(k.removed().is_empty());
}

#[test]
fn effective_requests_follow_the_scheduler() {
    let c = |name: &str, cpu: &str, mem: &str, sidecar: bool| Container {
        name: name.into(),
        restart_policy: sidecar.then(|| "Always".to_string()),
        resources: Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity(mem.into())),
                ]
                .into(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    let spec = PodSpec {
        containers: vec![
            c("app", "500m", "256Mi", false),
            c("proxy", "100m", "64Mi", false),
        ],
        init_containers: Some(vec![
            c("migrate", "2", "128Mi", false),
            c("mesh", "200m", "32Mi", true),
        ]),
        overhead: Some([("cpu".to_string(), Quantity("10m".into()))].into()),
        ..Default::default()
    };
    // max(600 + 200 sidecar, 2000 init) + 10 overhead; memory max(320 + 32, 128).
    assert_eq!(model::pod_requests(&spec.clone().into()), (2010, 352 << 20));
}

// ---------------------------------------------------------------- right-sizing and spot

#[test]
fn rightsizing_picks_a_cheaper_type_that_fits_packed_workload_and_largest_pod() {
    let mut k = Kit::default();
    k.aws.nodegroups.push(Nodegroup {
        name: "big".into(),
        min_size: Some(2),
        ..Default::default()
    });
    for n in ["a", "b"] {
        k.node(n, "m5.4xlarge", "big", 15890, 60 * GI, 234);
    }
    for i in 0..6 {
        k.pod(
            &format!("w{i}"),
            if i % 2 == 0 { "a" } else { "b" },
            500,
            1024,
        );
    }
    let r = k.report();
    assert!(r.consolidation.removable_nodes.is_empty(), "minSize 2");
    let rec = r
        .recommendations
        .iter()
        .find(|r| r.category == Category::RightSizing)
        .expect("right-sizing");
    // 3 CPU / 6 GiB over ≥ 2 nodes: two m5.xlarge-class or smaller nodes, far cheaper than 2 × m5.4xlarge.
    assert!(rec.monthly_saving > 0.5 * 2.0 * 0.768 * 730.0, "{rec:?}");
    assert!(
        rec.summary.starts_with("switch 2 × m5.4xlarge to 2 × "),
        "{}",
        rec.summary
    );
    assert!(r.savings.rightsizing > 0.0);

    // A pod needing 6 CPU rules out anything below 8 vCPU.
    let mut k2 = Kit::default();
    k2.aws.nodegroups.push(Nodegroup {
        name: "big".into(),
        min_size: Some(2),
        ..Default::default()
    });
    k2.node("a", "m5.4xlarge", "big", 15890, 60 * GI, 234);
    k2.node("b", "m5.4xlarge", "big", 15890, 60 * GI, 234);
    k2.pod("huge", "a", 6000, 1024);
    k2.pod("small", "b", 100, 128);
    let r2 = k2.report();
    let rec = r2
        .recommendations
        .iter()
        .find(|r| r.category == Category::RightSizing)
        .expect("right-sizing");
    let to_type = rec.summary.rsplit(' ').next().unwrap();
    let info = PriceTable::bundled().catalog.get(to_type).cloned().unwrap();
    assert!(info.vcpus >= 8, "{to_type} must hold a 6-CPU pod");
}

#[test]
fn rightsizing_respects_instance_type_selectors() {
    let mut k = Kit::default();
    k.aws.nodegroups.push(Nodegroup {
        name: "big".into(),
        min_size: Some(2),
        ..Default::default()
    });
    k.node("a", "m5.4xlarge", "big", 15890, 60 * GI, 234);
    k.node("b", "m5.4xlarge", "big", 15890, 60 * GI, 234);
    let p = k.pod("w", "a", 500, 512);
    k.spec(p).node_selector = Some(labels(&[(
        "node.kubernetes.io/instance-type",
        "m5.4xlarge",
    )]));
    k.pod("v", "b", 500, 512);
    let r = k.report();
    assert!(
        r.recommendations
            .iter()
            .all(|r| r.category != Category::RightSizing),
        "{:?}",
        r.recommendations
    );
}

fn deployment(k: &mut Kit, name: &str, replicas: i32, pvc: bool) {
    let mut spec = PodSpec::default();
    if pvc {
        spec.volumes = Some(vec![Volume {
            name: "d".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "d".into(),
                read_only: None,
            }),
            ..Default::default()
        }]);
    }
    k.snap.deployments.push(Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("d-{name}")),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[("app", name)])),
                    ..Default::default()
                }),
                spec: Some(spec.clone()),
            },
            ..Default::default()
        }),
        status: None,
    });
    k.snap.replica_sets.push(ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-rs")),
            namespace: Some("default".into()),
            uid: Some(format!("rs-{name}")),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: name.into(),
                uid: format!("d-{name}"),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        ..Default::default()
    });
    for i in 0..replicas {
        let p = k.pod_owned(
            &format!("{name}-{i}"),
            if i % 2 == 0 { "a" } else { "b" },
            400,
            512,
            Some(("ReplicaSet", &format!("rs-{name}"))),
        );
        k.pod_label(p, "app", name);
        if pvc {
            k.spec(p).volumes = spec.volumes.clone();
        }
    }
}

#[test]
fn spot_candidates_are_replicated_stateless_and_disruptable() {
    let spot_deps = |setup: &dyn Fn(&mut Kit)| {
        let mut k = Kit::default();
        k.aws.nodegroups.push(Nodegroup {
            name: "ng".into(),
            min_size: Some(2),
            ..Default::default()
        });
        k.m5("a");
        k.m5("b");
        setup(&mut k);
        let r = k.report();
        r.recommendations
            .into_iter()
            .filter(|r| r.category == Category::Spot)
            .collect::<Vec<_>>()
    };
    let recs = spot_deps(&|k| deployment(k, "web", 3, false));
    assert_eq!(recs.len(), 1);
    assert!(recs[0].estimate && recs[0].reasoning.iter().any(|l| l.contains("ESTIMATED")));
    assert_eq!(recs[0].summary, "run this nodegroup on spot capacity");
    assert!(
        spot_deps(&|k| deployment(k, "single", 1, false)).is_empty(),
        "one replica"
    );
    assert!(
        spot_deps(&|k| deployment(k, "db", 3, true)).is_empty(),
        "PVC"
    );
    assert!(
        spot_deps(&|k| {
            deployment(k, "guarded", 3, false);
            k.pdb("g", "guarded", Some(0), None);
        })
        .is_empty(),
        "PDB forbids disruption"
    );
    // Mixed group: only part of the cost moves to spot.
    let recs = spot_deps(&|k| {
        deployment(k, "web", 2, false);
        deployment(k, "db", 2, true);
    });
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].summary, "move 1 Deployment to a spot nodegroup");
}

// ---------------------------------------------------------------- report, dump, determinism

#[test]
fn summary_stays_small_and_report_renders() {
    let c = generate(&SyntheticSpec {
        nodes: 60,
        pods: 1800,
        ..Default::default()
    });
    let r = analyze(
        &c.snapshot,
        &c.aws,
        &PriceTable::bundled(),
        &AnalysisSettings::default(),
    );
    let s = r.summary();
    assert!(s.monthly_cost.starts_with('$') && s.monthly_cost.contains('.'));
    assert!(s.monthly_savings.starts_with('$'));
    assert!(serde_json::to_vec(&s).unwrap().len() < 1024);
    assert!(r.recommendations.len() <= AnalysisSettings::default().top_recommendations);
    let text = r.render_text();
    for needle in [
        "current cost",
        "optimized cost",
        "consolidation",
        "spot (estimate)",
        "utilization",
        "NODEGROUP",
        "Prices:",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // The JSON report round-trips.
    let back: Report = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn analysis_is_deterministic() {
    let c = generate(&SyntheticSpec {
        nodes: 40,
        pods: 1200,
        seed: 7,
        ..Default::default()
    });
    let run = || {
        serde_json::to_string(&analyze(
            &c.snapshot,
            &c.aws,
            &PriceTable::bundled(),
            &AnalysisSettings::default(),
        ))
        .unwrap()
    };
    assert_eq!(run(), run());
    let again = generate(&SyntheticSpec {
        nodes: 40,
        pods: 1200,
        seed: 7,
        ..Default::default()
    });
    assert_eq!(
        serde_json::to_string(&again.snapshot).unwrap(),
        serde_json::to_string(&c.snapshot).unwrap()
    );
}

#[test]
fn kubectl_dump_gives_the_same_analysis_offline() {
    let c = generate(&SyntheticSpec {
        nodes: 30,
        pods: 900,
        seed: 3,
        ..Default::default()
    });
    let mut list = dump::snapshot_to_list(&c.snapshot);
    // Kinds the analysis does not use are skipped; a nested typed list is flattened.
    list["items"].as_array_mut().unwrap().push(
        serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}}),
    );
    let bytes = serde_json::to_vec(&list).unwrap();
    let snap = snapshot_from_dump(&bytes, &crate::sanitize::Sanitizer::default()).unwrap();
    assert_eq!(snap.nodes.len(), c.snapshot.nodes.len());
    assert_eq!(snap.pods.len(), c.snapshot.pods.len());
    assert_eq!(
        snap.pod_disruption_budgets.len(),
        c.snapshot.pod_disruption_budgets.len()
    );
    // Offline there is no inventory: nodes speak through their labels.
    let offline = analyze(
        &snap,
        &AwsInventory::default(),
        &PriceTable::bundled(),
        &AnalysisSettings::default(),
    );
    let online = analyze(
        &c.snapshot,
        &AwsInventory::default(),
        &PriceTable::bundled(),
        &AnalysisSettings::default(),
    );
    assert_eq!(offline.summary(), online.summary());
    assert!(offline.current_monthly_cost > 0.0 && offline.unpriced_nodes == 0);

    let typed = serde_json::json!({"kind": "PodList", "apiVersion": "v1", "items": [
        {"metadata": {"name": "p", "namespace": "x"}, "spec": {"containers": []}}
    ]});
    let (s, stats) = dump::snapshot_from_documents_with_stats(vec![typed]).unwrap();
    assert_eq!((s.pods.len(), stats.used), (1, 1));
    let bad = serde_json::json!({"kind": "Pod", "metadata": {"name": "broken"}, "spec": {"containers": 5}});
    let err = snapshot_from_documents(vec![bad]).unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
}

#[test]
fn prices_override_changes_cost() {
    let mut k = Kit::default();
    k.m5("a");
    k.pod("p", "a", 100, 64);
    let negotiated = PriceTable::from_json(br#"{"source":"contract","asOf":"2026-01","onDemandHourly":{"us-east-1":{"m5.large":0.05}}}"#).unwrap();
    let r = analyze(
        &k.snap,
        &k.aws,
        &PriceTable::bundled().with_overrides(negotiated),
        &AnalysisSettings::default(),
    );
    assert_eq!(r.summary().monthly_cost, "$36.50");
    assert!(r.prices_source.contains("contract"));
}

// ---------------------------------------------------------------- placement checker

/// Check a consolidation outcome from first principles: removed nodes were removable,
/// every movable pod of a removed node moved to a kept, schedulable node its constraints
/// allow, nothing pinned moved, no destination exceeds its usable capacity, and no
/// hostname anti-affinity is broken. Returns the number of violations found.
fn violations(model: &Model<'_>, out: &Outcome, headroom: f64) -> Vec<String> {
    let mut v = Vec::new();
    let mut moved = vec![false; model.pods.len()];
    for &(p, dest) in &out.moves {
        let pod = &model.pods[p as usize];
        let d = &model.nodes[dest as usize];
        moved[p as usize] = true;
        if pod.role != Role::Movable {
            v.push(format!("{} moved but is {:?}", pod.name, pod.role));
        }
        if !out.is_removed[pod.node as usize] {
            v.push(format!("{} moved off a kept node", pod.name));
        }
        if out.is_removed[dest as usize] || !d.destination_ok {
            v.push(format!(
                "{} moved to removed/unschedulable {}",
                pod.name, d.name
            ));
        }
        if !model.sigs[pod.sig as usize].allows(|k| d.label(k), d.taints) {
            v.push(format!("{} not allowed on {}", pod.name, d.name));
        }
    }
    for (p, pod) in model.pods.iter().enumerate() {
        if out.is_removed[pod.node as usize] && pod.role == Role::Movable && !moved[p] {
            v.push(format!("{} left on removed node", pod.name));
        }
        if out.is_removed[pod.node as usize] && matches!(pod.role, Role::Pinned(_)) {
            v.push(format!("pinned {} on removed node", pod.name));
        }
    }
    for &r in &out.removed {
        let n = &model.nodes[r as usize];
        if n.hourly.is_none() || n.pin.is_some() {
            v.push(format!("{} removed but unpriced or pinned", n.name));
        }
    }
    let mut load = vec![Res::default(); model.nodes.len()];
    let mut received = vec![false; model.nodes.len()];
    for (p, &n) in out.node_of_pod.iter().enumerate() {
        load[n as usize].add(model.pods[p].req);
        if moved[p] {
            received[n as usize] = true;
        }
    }
    for (i, n) in model.nodes.iter().enumerate() {
        if received[i] && !load[i].fits_in(usable(n, headroom)) {
            v.push(format!(
                "{} over capacity: {:?} > {:?}",
                n.name,
                load[i],
                usable(n, headroom)
            ));
        }
    }
    // Hostname anti-affinity on the final placement, for pods that moved.
    let mut on: Vec<Vec<usize>> = vec![Vec::new(); model.nodes.len()];
    for (p, &n) in out.node_of_pod.iter().enumerate() {
        if !out.is_removed[n as usize] {
            on[n as usize].push(p);
        }
    }
    for pods in &on {
        for &a in pods {
            for &b in pods {
                if a != b
                    && (moved[a] || moved[b])
                    && model.pods[a]
                        .host_terms
                        .iter()
                        .any(|&t| model.host_term_list[t as usize].matches(&model.pods[b]))
                {
                    v.push(format!(
                        "{} and {} share a host despite anti-affinity",
                        model.pods[a].name, model.pods[b].name
                    ));
                }
            }
        }
    }
    v
}

#[test]
fn synthetic_cluster_at_13_percent_cpu_consolidates_heavily_with_nothing_unplaced() {
    let c = generate(&SyntheticSpec {
        nodes: 300,
        pods: 6000,
        target_cpu_utilization: 0.13,
        seed: 13,
        ..Default::default()
    });
    let settings = AnalysisSettings::default();
    let prices = PriceTable::bundled();
    let r = analyze(&c.snapshot, &c.aws, &prices, &settings);
    assert!(
        (r.utilization.cpu_percent - 13.0).abs() < 2.5,
        "generator hits ~13% CPU: {}",
        r.utilization.cpu_percent
    );
    assert_eq!(r.consolidation.pods_unplaced, 0);
    let share = r.savings.consolidation / r.current_monthly_cost;
    assert!(
        share > 0.40,
        "consolidation saves {:.0}% of {}",
        share * 100.0,
        r.current_monthly_cost
    );
    assert!(r.utilization_after_consolidation.cpu_percent > 2.0 * r.utilization.cpu_percent);
    // And the placement behind it is valid, checked independently.
    let input = AnalysisInput::from(c.snapshot.clone());
    let model = model::build(&input, &c.aws, &prices, &settings);
    let out = consolidate(&model, settings.headroom);
    let v = violations(&model, &out, settings.headroom);
    assert!(v.is_empty(), "{:?}", &v[..v.len().min(5)]);
    // The synthetic mix exercises every blocker kind the report knows.
    let kept: BTreeMap<String, usize> = r
        .nodegroups
        .iter()
        .flat_map(|g| g.kept_because.clone())
        .collect();
    assert!(
        kept.contains_key("pdb")
            || kept.contains_key("local-storage")
            || kept.contains_key("no-controller"),
        "{kept:?}"
    );
}

// ---------------------------------------------------------------- property test vs brute force

mod brute_force {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    #[derive(Debug, Clone)]
    struct NodeGen {
        size: u8, // 0: m5.large, 1: m5.xlarge, 2: c5.large
        pool_b: bool,
        tainted: bool,
        max_pods: i64,
    }
    #[derive(Debug, Clone)]
    struct PodGen {
        node: usize,
        cpu_m: i64,
        mem_mi: i64,
        kind: u8, // 0..=79 movable, 80..=84 DaemonSet, 85..=89 bare, 90..=94 hostPath, 95..=99 PDB forbids
        wants_pool_b: Option<bool>,
        tolerates: bool,
    }

    fn cluster() -> impl Strategy<Value = (Vec<NodeGen>, Vec<PodGen>)> {
        (2usize..=8).prop_flat_map(|n| {
            let nodes = prop::collection::vec(
                (0u8..3, any::<bool>(), prop::bool::weighted(0.2), 3i64..=12).prop_map(
                    |(size, pool_b, tainted, max_pods)| NodeGen {
                        size,
                        pool_b,
                        tainted,
                        max_pods,
                    },
                ),
                n,
            );
            let pods = prop::collection::vec(
                (
                    0..n,
                    10i64..=1200,
                    16i64..=3000,
                    0u8..100,
                    prop::option::weighted(0.25, any::<bool>()),
                    prop::bool::weighted(0.3),
                )
                    .prop_map(
                        |(node, cpu_m, mem_mi, kind, wants_pool_b, tolerates)| PodGen {
                            node,
                            cpu_m,
                            mem_mi,
                            kind,
                            wants_pool_b,
                            tolerates,
                        },
                    ),
                0..=(3 * n),
            );
            (nodes, pods)
        })
    }

    fn build(nodes: &[NodeGen], pods: &[PodGen]) -> Kit {
        let mut k = Kit::default();
        for (i, n) in nodes.iter().enumerate() {
            let (ty, cpu, mem) = match n.size {
                0 => ("m5.large", 1930, 7 * GI),
                1 => ("m5.xlarge", 3920, 14 * GI),
                _ => ("c5.large", 1930, 3 * GI),
            };
            let idx = k.node(&format!("n{i}"), ty, "ng", cpu, mem, n.max_pods);
            k.node_label(idx, "pool", if n.pool_b { "b" } else { "a" });
            if n.tainted {
                k.taint(idx, "dedicated", "NoSchedule");
            }
        }
        for (j, p) in pods.iter().enumerate() {
            let name = format!("p{j}");
            let node = format!("n{}", p.node);
            let idx = match p.kind {
                80..=84 => k.pod_owned(&name, &node, p.cpu_m, p.mem_mi, Some(("DaemonSet", "ds"))),
                85..=89 => k.pod_owned(&name, &node, p.cpu_m, p.mem_mi, None),
                _ => k.pod(&name, &node, p.cpu_m, p.mem_mi),
            };
            if (90..=94).contains(&p.kind) {
                k.volume(
                    idx,
                    Volume {
                        name: "h".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: "/h".into(),
                            type_: None,
                        }),
                        ..Default::default()
                    },
                );
            }
            if p.kind >= 95 {
                k.pdb(&format!("pdb{j}"), &name, Some(0), None);
            }
            if let Some(b) = p.wants_pool_b {
                k.spec(idx).node_selector = Some(labels(&[("pool", if b { "b" } else { "a" })]));
            }
            if p.tolerates {
                k.tolerate(idx, "dedicated");
            }
        }
        k
    }

    /// Can every movable pod of the `removed` nodes be placed on the other nodes?
    /// Exhaustive backtracking, largest pod first, with a capacity-sum bound.
    fn feasible(
        model: &Model<'_>,
        removed: &[bool],
        headroom: f64,
        gens: &[NodeGen],
        pod_gens: &[PodGen],
    ) -> bool {
        let mut free: Vec<Res> = model.nodes.iter().map(|n| usable(n, headroom)).collect();
        for p in &model.pods {
            free[p.node as usize].sub(p.req);
        }
        let mut moving: Vec<usize> = (0..model.pods.len())
            .filter(|&p| {
                removed[model.pods[p].node as usize] && model.pods[p].role == Role::Movable
            })
            .collect();
        moving.sort_by_key(|&p| {
            std::cmp::Reverse(model.pods[p].req.cpu.max(model.pods[p].req.mem >> 20))
        });
        // Constraints straight from the generator, not from the model's signatures.
        let allowed = |p: usize, n: usize| {
            let pg = &pod_gens[p];
            let ng = &gens[n];
            !removed[n]
                && pg.wants_pool_b.is_none_or(|b| b == ng.pool_b)
                && (!ng.tainted || pg.tolerates)
        };
        // Remaining demand per suffix, for a capacity-sum bound.
        let mut suffix = vec![Res::default(); moving.len() + 1];
        for i in (0..moving.len()).rev() {
            suffix[i] = suffix[i + 1];
            suffix[i].add(model.pods[moving[i]].req);
        }
        let key = |n: usize| (gens[n].pool_b, gens[n].tainted);
        #[allow(clippy::too_many_arguments)]
        fn go(
            i: usize,
            moving: &[usize],
            suffix: &[Res],
            free: &mut [Res],
            removed: &[bool],
            model: &Model<'_>,
            allowed: &dyn Fn(usize, usize) -> bool,
            key: &dyn Fn(usize) -> (bool, bool),
        ) -> bool {
            let Some(&p) = moving.get(i) else { return true };
            let mut room = Res::default();
            for (n, f) in free.iter().enumerate() {
                if !removed[n] {
                    room.add(Res {
                        cpu: f.cpu.max(0),
                        mem: f.mem.max(0),
                        pods: f.pods.max(0),
                    });
                }
            }
            if !suffix[i].fits_in(room) {
                return false;
            }
            let req = model.pods[p].req;
            // Nodes with equal free capacity and equal labels/taints are interchangeable.
            let mut tried: Vec<(Res, (bool, bool))> = Vec::new();
            for n in 0..free.len() {
                if !allowed(p, n) || !req.fits_in(free[n]) || tried.contains(&(free[n], key(n))) {
                    continue;
                }
                tried.push((free[n], key(n)));
                free[n].sub(req);
                let ok = go(i + 1, moving, suffix, free, removed, model, allowed, key);
                free[n].add(req);
                if ok {
                    return true;
                }
            }
            false
        }
        go(
            0, &moving, &suffix, &mut free, removed, model, &allowed, &key,
        )
    }

    /// Largest saving over every removable subset (brute force).
    fn optimum(model: &Model<'_>, headroom: f64, gens: &[NodeGen], pods: &[PodGen]) -> f64 {
        let n = model.nodes.len();
        let candidate: Vec<bool> = (0..n)
            .map(|i| {
                model.nodes[i].hourly.is_some()
                    && model.nodes[i].pin.is_none()
                    && !model
                        .pods
                        .iter()
                        .any(|p| p.node as usize == i && matches!(p.role, Role::Pinned(_)))
            })
            .collect();
        let mut subsets: Vec<(f64, u32)> = (0u32..(1 << n))
            .filter(|m| (0..n).all(|i| m & (1 << i) == 0 || candidate[i]))
            .map(|m| {
                (
                    (0..n)
                        .filter(|i| m & (1 << i) != 0)
                        .map(|i| model.nodes[i].hourly.unwrap())
                        .sum(),
                    m,
                )
            })
            .collect();
        subsets.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (saving, m) in subsets {
            let removed: Vec<bool> = (0..n).map(|i| m & (1 << i) != 0).collect();
            if feasible(model, &removed, headroom, gens, pods) {
                return saving;
            }
        }
        0.0
    }

    #[test]
    fn consolidation_is_valid_and_never_beats_the_brute_force_optimum() {
        let config = Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        let stats = std::cell::RefCell::new((0usize, 0usize, 0usize)); // (cases, matches, with any saving possible)
        let headroom = AnalysisSettings::default().headroom;
        runner
            .run(&cluster(), |(nodes, pods)| {
                let k = build(&nodes, &pods);
                let prices = PriceTable::bundled();
                let input = AnalysisInput::from(k.snap.clone());
                let model = model::build(&input, &k.aws, &prices, &AnalysisSettings::default());
                prop_assert_eq!(model.pods.len(), pods.len());
                let out = consolidate(&model, headroom);
                let v = violations(&model, &out, headroom);
                prop_assert!(v.is_empty(), "{:?}", v);
                // The generator's own semantics, independent of the model's signatures.
                for &(p, dest) in &out.moves {
                    let (pg, ng) = (&pods[p as usize], &nodes[dest as usize]);
                    prop_assert!(pg.wants_pool_b.is_none_or(|b| b == ng.pool_b));
                    prop_assert!(!ng.tainted || pg.tolerates);
                }
                let greedy: f64 = out
                    .removed
                    .iter()
                    .map(|&i| model.nodes[i as usize].hourly.unwrap())
                    .sum();
                let best = optimum(&model, headroom, &nodes, &pods);
                prop_assert!(
                    greedy <= best + 1e-9,
                    "greedy {} > optimum {}",
                    greedy,
                    best
                );
                let mut s = stats.borrow_mut();
                s.0 += 1;
                s.1 += usize::from((greedy - best).abs() < 1e-9);
                s.2 += usize::from(best > 0.0);
                Ok(())
            })
            .unwrap();
        let (cases, matches, nontrivial) = *stats.borrow();
        let rate = matches as f64 * 100.0 / cases as f64;
        eprintln!(
            "consolidation matched the brute-force optimum in {matches}/{cases} cases ({rate:.1}%); {nontrivial} cases had a positive optimum"
        );
        assert!(cases >= 300);
        assert!(
            rate >= 80.0,
            "greedy should match the optimum most of the time, got {rate:.1}%"
        );
    }
}

/// Property: the report's figures add up as printed. Every total is the exact sum (in
/// cents) of the lines under it, whatever mix of priced, unpriced, spot, Windows and
/// Fargate nodes, and no money figure prints as a negative zero.
mod totals {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct NodeGen {
        ty: u8,    // m5.large, m5.xlarge, c5.large, m4.large, x9.unknown
        group: u8, // a, b, c
        kind: u8,  // 0..=5 on-demand Linux, 6 spot, 7 Windows, 8 Fargate, 9 eu-west-1
    }

    /// (node index, CPU millicores, memory MiB, owned by a ReplicaSet).
    type PodGen = (usize, i64, i64, bool);

    fn cluster() -> impl Strategy<Value = (Vec<NodeGen>, Vec<PodGen>)> {
        (1usize..=10).prop_flat_map(|n| {
            let nodes = prop::collection::vec(
                (0u8..5, 0u8..3, 0u8..10).prop_map(|(ty, group, kind)| NodeGen { ty, group, kind }),
                n,
            );
            let pods = prop::collection::vec(
                (0..n, 10i64..=1500, 16i64..=4000, prop::bool::weighted(0.6)),
                0..=(3 * n),
            );
            (nodes, pods)
        })
    }

    fn build(nodes: &[NodeGen], pods: &[PodGen]) -> Kit {
        let mut k = Kit::default();
        for (i, n) in nodes.iter().enumerate() {
            let ty = [
                "m5.large",
                "m5.xlarge",
                "c5.large",
                "m4.large",
                "x9.unknown",
            ][n.ty as usize];
            let group = ["a", "b", "c"][n.group as usize];
            let name = format!("n{i}");
            let idx = k.node(&name, ty, group, 1930, 7 * GI, 29);
            match n.kind {
                6 => k.node_label(idx, "eks.amazonaws.com/capacityType", "SPOT"),
                7 => k.node_label(idx, "kubernetes.io/os", "windows"),
                8 => {
                    k.node_label(idx, "eks.amazonaws.com/compute-type", "fargate");
                    let l = k.snap.nodes[idx].metadata.labels.as_mut().unwrap();
                    l.remove("eks.amazonaws.com/nodegroup");
                }
                9 => k.node_label(idx, "topology.kubernetes.io/region", "eu-west-1"),
                _ => {}
            }
        }
        for (j, &(node, cpu, mem, deployment)) in pods.iter().enumerate() {
            let owner = deployment.then_some(("ReplicaSet", "rs-1"));
            let p = k.pod_owned(&format!("p{j}"), &format!("n{node}"), cpu, mem, owner);
            if nodes[node].kind == 8 {
                let capacity = format!("{}vCPU {}GB", cpu as f64 / 1000.0, (mem + 1023) / 1024);
                k.snap.pods[p].metadata.annotations =
                    Some(labels(&[("CapacityProvisioned", &capacity)]));
            }
        }
        k
    }

    fn cents(x: f64) -> i64 {
        (x * 100.0).round() as i64
    }

    /// A zonal m5.large RI, a size-flexible regional c5.xlarge RI and a Compute Savings Plan
    /// with rates for m5.large and c5.large.
    fn commitments_for_totals() -> Commitments {
        use crate::aws::{ReservedInstance, SavingsPlan, SavingsPlanRate};
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let ri = |id: &str, ty: &str, zone: Option<&str>| ReservedInstance {
            id: id.into(),
            instance_type: ty.into(),
            availability_zone: zone.map(Into::into),
            instance_count: 1,
            product_description: "Linux/UNIX".into(),
            tenancy: "default".into(),
            state: "active".into(),
            start: t("2026-01-01T00:00:00Z"),
            end: t("2027-01-01T00:00:00Z"),
            duration_seconds: 31_536_000,
            offering_class: "standard".into(),
            offering_type: "Partial Upfront".into(),
            fixed_price: 200.0,
            usage_price: 0.0,
            recurring_hourly: 0.03,
        };
        let rate = |ty: &str, usd: f64| SavingsPlanRate {
            savings_plan_id: "sp".into(),
            instance_type: ty.into(),
            region: "us-east-1".into(),
            product_description: "Linux/UNIX".into(),
            usd_per_hour: usd,
        };
        Commitments {
            read_at: Some(t("2026-11-30T00:00:00Z")),
            reserved_instances: vec![
                ri("ri-z", "m5.large", Some("us-east-1a")),
                ri("ri-r", "c5.xlarge", None),
            ],
            savings_plans: vec![SavingsPlan {
                id: "sp".into(),
                arn: String::new(),
                plan_type: "Compute".into(),
                state: "active".into(),
                region: None,
                ec2_instance_family: None,
                commitment_per_hour: 0.1,
                start: t("2026-01-01T00:00:00Z"),
                end: t("2027-01-01T00:00:00Z"),
                payment_option: "No Upfront".into(),
            }],
            savings_plan_rates: vec![rate("m5.large", 0.062), rate("c5.large", 0.055)],
            unavailable: Vec::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn report_totals_are_the_sums_of_its_lines((nodes, pods) in cluster(), committed in any::<bool>()) {
            let mut k = build(&nodes, &pods);
            if committed {
                k.aws.commitments = commitments_for_totals();
            }
            let settings = AnalysisSettings {
                top_recommendations: usize::MAX,
                ..Default::default()
            };
            let mut prices = PriceTable::bundled();
            prices.set_on_demand_for("windows", "us-east-1", "m5.large", 0.188);
            let r = analyze(&k.snap, &k.aws, &prices, &settings);

            let lines: i64 = r.nodes.iter().filter_map(|n| n.monthly_cost).map(cents).sum();
            prop_assert_eq!(lines, cents(r.current_monthly_cost));
            let groups: i64 = r.nodegroups.iter().map(|g| cents(g.monthly_cost)).sum();
            prop_assert_eq!(groups, cents(r.current_monthly_cost));
            for g in &r.nodegroups {
                let of_group: i64 = r
                    .nodes
                    .iter()
                    .filter(|n| n.nodegroup == g.name)
                    .filter_map(|n| n.monthly_cost)
                    .map(cents)
                    .sum();
                prop_assert_eq!(of_group, cents(g.monthly_cost), "{}", g.name);
            }
            let unpriced = r.nodes.iter().filter(|n| n.monthly_cost.is_none()).count();
            prop_assert_eq!(unpriced, r.unpriced_nodes);
            prop_assert!(r.nodes.iter().all(|n| n.monthly_cost.is_some() != n.unpriced_reason.is_some()));

            let removed: i64 = r.consolidation.removable_nodes.iter().map(|n| cents(n.monthly_cost)).sum();
            if committed {
                // Covered nodes save at most what was not covered.
                let list: i64 = r.consolidation.removable_nodes.iter()
                    .map(|n| r.nodes.iter().find(|l| l.node == n.node).unwrap())
                    .map(|l| l.commitment.as_ref().map_or(cents(l.monthly_cost.unwrap()), |c| cents(c.on_demand_hourly * 730.0)))
                    .sum();
                prop_assert!(cents(r.savings.consolidation) <= list + 1, "{} > {}", r.savings.consolidation, list);
                let c = r.commitments.as_ref().unwrap();
                prop_assert!(c.commitments.iter().all(|l| (0.0..=100.0).contains(&l.utilization_percent)));
            } else {
                prop_assert_eq!(removed, cents(r.savings.consolidation));
            }
            for n in &r.nodes {
                let listed = r.consolidation.removable_nodes.iter().any(|x| x.node == n.node);
                prop_assert_eq!(n.removable, listed);
                prop_assert_eq!(n.removable, n.kept_by.is_none());
                // Removed nodes are priced EC2 nodes.
                prop_assert!(!n.removable || (n.monthly_cost.is_some() && n.capacity_type != report::CapacityType::Fargate));
            }
            let by = |c: Category| -> i64 {
                r.recommendations.iter().filter(|x| x.category == c).map(|x| cents(x.monthly_saving)).sum()
            };
            prop_assert_eq!(by(Category::Consolidation), cents(r.savings.consolidation));
            prop_assert_eq!(by(Category::RightSizing), cents(r.savings.rightsizing));
            prop_assert_eq!(by(Category::Spot), cents(r.savings.spot));
            prop_assert_eq!(
                cents(r.savings.consolidation) + cents(r.savings.rightsizing) + cents(r.savings.spot),
                cents(r.savings.total)
            );
            prop_assert_eq!(
                cents(r.optimized_monthly_cost),
                (cents(r.current_monthly_cost) - cents(r.savings.total)).max(0)
            );
            prop_assert!(r.savings.total <= r.current_monthly_cost + 1e-9);

            let text = r.render_text();
            let json = serde_json::to_string(&r).unwrap();
            let summary = serde_json::to_string(&r.summary()).unwrap();
            for s in [&text, &json, &summary] {
                prop_assert!(!s.contains("-0.0"), "{}", s);
                prop_assert!(!s.contains("$-"), "{}", s);
            }
        }
    }
}

/// Spot prices as billed and the account's commitments (`super::commitments`), rule by rule.
mod billing {
    use super::*;
    use crate::aws::{ReservedInstance, SavingsPlan, SavingsPlanRate, SpotPrice};

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-11-30T12:00:00Z";

    fn spot_price(ty: &str, zone: &str, price: f64, at: &str) -> SpotPrice {
        SpotPrice {
            instance_type: ty.into(),
            availability_zone: zone.into(),
            product_description: "Linux/UNIX".into(),
            usd_per_hour: price,
            timestamp: ts(at),
        }
    }

    fn ri(id: &str, ty: &str, zone: Option<&str>, count: u32) -> ReservedInstance {
        ReservedInstance {
            id: id.into(),
            instance_type: ty.into(),
            availability_zone: zone.map(Into::into),
            instance_count: count,
            product_description: "Linux/UNIX".into(),
            tenancy: "default".into(),
            state: "active".into(),
            start: ts("2026-01-01T00:00:00Z"),
            end: ts("2027-01-01T00:00:00Z"),
            duration_seconds: 31_536_000,
            offering_class: "standard".into(),
            offering_type: "No Upfront".into(),
            fixed_price: 0.0,
            usage_price: 0.0,
            recurring_hourly: 0.06,
        }
    }

    fn plan(id: &str, commitment: f64) -> SavingsPlan {
        SavingsPlan {
            id: id.into(),
            arn: format!("arn:aws:savingsplans::111122223333:savingsplan/{id}"),
            plan_type: "Compute".into(),
            state: "active".into(),
            region: None,
            ec2_instance_family: None,
            commitment_per_hour: commitment,
            start: ts("2026-01-01T00:00:00Z"),
            end: ts("2027-01-01T00:00:00Z"),
            payment_option: "No Upfront".into(),
        }
    }

    fn rate(plan: &str, ty: &str, usd: f64) -> SavingsPlanRate {
        SavingsPlanRate {
            savings_plan_id: plan.into(),
            instance_type: ty.into(),
            region: "us-east-1".into(),
            product_description: "Linux/UNIX".into(),
            usd_per_hour: usd,
        }
    }

    fn commitments(
        ris: Vec<ReservedInstance>,
        plans: Vec<SavingsPlan>,
        rates: Vec<SavingsPlanRate>,
    ) -> Commitments {
        Commitments {
            read_at: Some(ts(NOW)),
            reserved_instances: ris,
            savings_plans: plans,
            savings_plan_rates: rates,
            unavailable: Vec::new(),
        }
    }

    fn line<'r>(r: &'r Report, node: &str) -> &'r NodeLine {
        r.nodes.iter().find(|n| n.node == node).unwrap()
    }

    fn commitment<'r>(r: &'r Report, id: &str) -> &'r CommitmentLine {
        let c = r.commitments.as_ref().expect("commitments read");
        c.commitments.iter().find(|l| l.id == id).unwrap()
    }

    fn zone(k: &mut Kit, node: usize, zone: &str) {
        k.node_label(node, "topology.kubernetes.io/zone", zone);
    }

    fn spot(k: &mut Kit, node: usize) {
        k.node_label(node, "eks.amazonaws.com/capacityType", "SPOT");
    }

    fn pin(k: &mut Kit, node: usize) {
        k.snap.nodes[node].metadata.annotations =
            Some(labels(&[("karpenter.sh/do-not-disrupt", "true")]));
    }

    #[test]
    fn a_spot_node_costs_its_zones_current_spot_price() {
        let mut k = Kit::default();
        let a = k.m5("a");
        spot(&mut k, a);
        let b = k.m5("b");
        spot(&mut k, b);
        zone(&mut k, b, "us-east-1b");
        k.aws.spot_prices = SpotPriceHistory::Read(vec![
            spot_price("m5.large", "us-east-1a", 0.035, "2026-11-30T10:00:00Z"),
            spot_price("m5.large", "us-east-1b", 0.05, "2026-11-30T11:00:00Z"),
        ]);
        let r = k.report();
        assert_eq!(line(&r, "a").monthly_cost, Some(25.55)); // 0.035 × 730
        assert_eq!(line(&r, "b").monthly_cost, Some(36.5)); // 0.05 × 730
        assert_eq!(
            line(&r, "a").price_basis,
            "m5.large Linux spot price history, us-east-1a, 2026-11-30T10:00:00Z: $0.035/h"
        );
        assert!(
            line(&r, "b")
                .price_basis
                .contains("spot price history, us-east-1b, 2026-11-30T11:00:00Z")
        );
        assert_eq!(r.current_monthly_cost, 62.05);
    }

    #[test]
    fn without_a_history_price_a_spot_node_falls_back_to_the_estimated_discount_and_says_why() {
        for (history, why) in [
            (SpotPriceHistory::NotRead, "no spot price history was read"),
            (
                SpotPriceHistory::Unavailable(
                    "ec2:DescribeSpotPriceHistory failed (UnauthorizedOperation): denied".into(),
                ),
                "the spot price history was unavailable: ec2:DescribeSpotPriceHistory failed",
            ),
            (
                SpotPriceHistory::Read(vec![spot_price("m5.large", "us-east-1b", 0.05, NOW)]),
                "no current price for m5.large Linux/UNIX in us-east-1a",
            ),
        ] {
            let mut k = Kit::default();
            let a = k.m5("a");
            spot(&mut k, a);
            k.aws.spot_prices = history;
            let r = k.report();
            let l = line(&r, "a");
            // 0.096 × (1 - 0.60 for m5) × 730 = 28.032
            assert_eq!(l.monthly_cost, Some(28.03));
            assert!(
                l.price_basis
                    .contains("ESTIMATED 60% spot discount (estimated discount:"),
                "{}",
                l.price_basis
            );
            assert!(l.price_basis.contains(why), "{}", l.price_basis);
        }
    }

    #[test]
    fn a_spot_candidate_uses_the_highest_current_price_among_the_clusters_zones() {
        let mut k = Kit::default();
        k.aws.nodegroups.push(Nodegroup {
            name: "ng".into(),
            min_size: Some(2),
            ..Default::default()
        });
        k.m5("a");
        let b = k.m5("b");
        zone(&mut k, b, "us-east-1b");
        deployment(&mut k, "web", 3, false);
        k.aws.spot_prices = SpotPriceHistory::Read(vec![
            spot_price("m5.large", "us-east-1a", 0.024, NOW),
            spot_price("m5.large", "us-east-1b", 0.048, NOW),
            // A zone the cluster does not use is not considered.
            spot_price("m5.large", "us-east-1c", 0.09, NOW),
        ]);
        // No right-sizing, so the spot price looked up is the group's own type's.
        let settings = AnalysisSettings {
            rightsizing_families: Vec::new(),
            ..Default::default()
        };
        let report = |k: &Kit| analyze(&k.snap, &k.aws, &PriceTable::bundled(), &settings);
        let r = report(&k);
        let rec = r
            .recommendations
            .iter()
            .find(|x| x.category == Category::Spot)
            .expect("a spot recommendation");
        let basis = rec.price_basis.as_deref().unwrap();
        assert!(
            basis.contains("$0.048/h in us-east-1b") && basis.contains("50% below"),
            "{basis}"
        );
        // The whole group (2 × $0.096/h) at 50% off.
        assert_eq!(rec.monthly_saving, 70.08);
        // Without the history, the configured estimate (60% for m5).
        k.aws.spot_prices = SpotPriceHistory::NotRead;
        let r = report(&k);
        let rec = r
            .recommendations
            .iter()
            .find(|x| x.category == Category::Spot)
            .unwrap();
        assert!(
            rec.price_basis
                .as_deref()
                .unwrap()
                .starts_with("estimated discount")
        );
        assert_eq!(rec.monthly_saving, 84.1); // 140.16 × 0.6 = 84.096
    }

    #[test]
    fn a_zonal_ri_covers_a_node_of_its_type_in_its_zone_only() {
        let mut k = Kit::default();
        let a = k.m5("a");
        let b = k.m5("b");
        zone(&mut k, b, "us-east-1b");
        pin(&mut k, a);
        pin(&mut k, b);
        k.aws.commitments = commitments(
            vec![ri("ri-zonal", "m5.large", Some("us-east-1b"), 1)],
            vec![],
            vec![],
        );
        let r = k.report();
        assert!(line(&r, "a").commitment.is_none());
        assert_eq!(line(&r, "a").monthly_cost, Some(70.08));
        let b = line(&r, "b");
        let cov = b.commitment.as_ref().unwrap();
        assert_eq!(cov.covered_by[0].commitment, "ri-zonal");
        assert_eq!(cov.effective_hourly, 0.06);
        assert_eq!(b.monthly_cost, Some(43.8));
        assert!(
            b.price_basis.contains("100% by Reserved Instance ri-zonal"),
            "{}",
            b.price_basis
        );
        let l = commitment(&r, "ri-zonal");
        assert_eq!(
            (l.utilization_percent, l.scope.as_str()),
            (100.0, "us-east-1b")
        );
        assert_eq!(l.nodes, ["b"]);
        assert_eq!(l.days_to_expiry, 31);
        let text = r.render_text();
        assert!(
            text.contains("ri-zonal [active]") && text.contains("100.0% used by this cluster"),
            "{text}"
        );
        assert_eq!(r.current_monthly_cost, 113.88);
        let c = r.commitments.as_ref().unwrap();
        assert_eq!(
            (c.on_demand_monthly_cost, c.effective_monthly_cost),
            (140.16, 113.88)
        );
    }

    #[test]
    fn a_regional_ri_covers_any_zone_and_other_sizes_of_its_family() {
        let mut k = Kit::default();
        let a = k.node("a", "m5.xlarge", "ng", 3920, 15 * GI, 58);
        let b = k.m5("b");
        zone(&mut k, b, "us-east-1c");
        pin(&mut k, a);
        pin(&mut k, b);
        // One m5.xlarge reservation = 8 units: the m5.large (4, smallest first) in full
        // and half of the m5.xlarge (8).
        k.aws.commitments = commitments(
            vec![ri("ri-regional", "m5.xlarge", None, 1)],
            vec![],
            vec![],
        );
        let r = k.report();
        let cb = line(&r, "b").commitment.as_ref().unwrap();
        assert_eq!(cb.uncovered_fraction, 0.0);
        let ca = line(&r, "a").commitment.as_ref().unwrap();
        assert_eq!(ca.uncovered_fraction, 0.5);
        // Half at the RI's rate ($0.06/h for 8 units → $0.03/h), half on demand ($0.096/h).
        assert_eq!(ca.effective_hourly, 0.126);
        assert_eq!(commitment(&r, "ri-regional").scope, "region");
        assert_eq!(commitment(&r, "ri-regional").utilization_percent, 100.0);
    }

    #[test]
    fn an_expired_ri_is_reported_but_not_applied() {
        let mut k = Kit::default();
        let a = k.m5("a");
        pin(&mut k, a);
        let mut old = ri("ri-old", "m5.large", Some("us-east-1a"), 1);
        old.end = ts("2026-11-20T12:00:00Z");
        old.state = "retired".into();
        let mut ancient = ri("ri-ancient", "m5.large", Some("us-east-1a"), 1);
        ancient.end = ts("2025-01-01T00:00:00Z");
        ancient.state = "retired".into();
        k.aws.commitments = commitments(vec![old, ancient], vec![], vec![]);
        let r = k.report();
        assert!(line(&r, "a").commitment.is_none());
        assert_eq!(line(&r, "a").monthly_cost, Some(70.08));
        let l = commitment(&r, "ri-old");
        assert_eq!(
            (l.state.as_str(), l.days_to_expiry, l.utilization_percent),
            ("expired", -10, 0.0)
        );
        // Expired long ago: no longer listed.
        assert_eq!(r.commitments.as_ref().unwrap().commitments.len(), 1);
    }

    #[test]
    fn a_savings_plan_at_sixty_percent_covers_every_node_it_has_a_rate_for() {
        let mut k = Kit::default();
        for n in ["a", "b", "c"] {
            let i = k.m5(n);
            pin(&mut k, i);
        }
        // 3 × $0.06/h = $0.18/h of a $0.30/h commitment.
        k.aws.commitments = commitments(
            vec![],
            vec![plan("sp-1", 0.30)],
            vec![rate("sp-1", "m5.large", 0.06)],
        );
        let r = k.report();
        let l = commitment(&r, "sp-1");
        assert_eq!(l.utilization_percent, 60.0);
        assert_eq!(l.used_by_cluster, "$0.1800/h of $0.3000/h");
        assert_eq!(l.scope, "any region");
        for n in ["a", "b", "c"] {
            assert_eq!(line(&r, n).monthly_cost, Some(43.8), "{n}");
        }
    }

    #[test]
    fn reserved_instances_apply_before_savings_plans_and_plans_to_the_highest_discount_first() {
        let mut k = Kit::default();
        let a = k.m5("a");
        let b = k.m5("b");
        let c = k.node("c", "c5.large", "ng", 1930, 3 * GI, 29);
        for i in [a, b, c] {
            pin(&mut k, i);
        }
        // The RI takes node a; the plan's $0.05/h goes to the usage with the highest
        // discount: c5.large ($0.085 → $0.04, 53%) before m5.large ($0.096 → $0.06, 38%).
        k.aws.commitments = commitments(
            vec![ri("ri-1", "m5.large", Some("us-east-1a"), 1)],
            vec![plan("sp-1", 0.05)],
            vec![
                rate("sp-1", "m5.large", 0.06),
                rate("sp-1", "c5.large", 0.04),
            ],
        );
        let r = k.report();
        let by = |n: &str| {
            line(&r, n)
                .commitment
                .as_ref()
                .map(|c| {
                    c.covered_by
                        .iter()
                        .map(|x| (x.commitment.clone(), x.fraction))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        assert_eq!(by("a"), [("ri-1".to_string(), 1.0)]);
        assert_eq!(by("c"), [("sp-1".to_string(), 1.0)]);
        // What is left of the plan ($0.01/h) covers a sixth of node b at $0.06/h.
        assert_eq!(by("b"), [("sp-1".to_string(), 0.1667)]);
        assert_eq!(commitment(&r, "sp-1").utilization_percent, 100.0);
    }

    #[test]
    fn removing_a_covered_node_saves_nothing_and_an_uncovered_one_its_on_demand_price() {
        // Two m5.large, one removable. Without commitments it saves its list price.
        let two = |c: Commitments| {
            let mut k = Kit::default();
            k.m5("a");
            k.m5("b");
            k.pod("p", "a", 100, 128);
            k.aws.commitments = c;
            k.report()
        };
        let r = two(Commitments::default());
        assert_eq!(r.savings.consolidation, 70.08);
        // Both covered by RIs: the removal saves nothing (the RIs are paid either way).
        let r = two(commitments(
            vec![ri("ri-2", "m5.large", Some("us-east-1a"), 2)],
            vec![],
            vec![],
        ));
        assert_eq!(r.consolidation.removable_nodes.len(), 1);
        assert_eq!(r.savings.consolidation, 0.0);
        assert!(
            r.recommendations
                .iter()
                .all(|x| x.category != Category::Consolidation || x.monthly_saving == 0.0)
        );
        // One RI for two nodes: whichever goes, the RI covers the other, so the removal saves
        // one on-demand price.
        let r = two(commitments(
            vec![ri("ri-1", "m5.large", Some("us-east-1a"), 1)],
            vec![],
            vec![],
        ));
        assert_eq!(r.savings.consolidation, 70.08);
        let rec = r
            .recommendations
            .iter()
            .find(|x| x.category == Category::Consolidation)
            .unwrap();
        assert!(
            rec.reasoning
                .iter()
                .any(|l| l.contains("saves nothing until the commitment is used elsewhere"))
        );

        // An m5.large under a zonal RI and a c5.large on demand: removing the covered one
        // saves nothing, removing the uncovered one its on-demand price.
        let mixed = |keep: &str| {
            let mut k = Kit::default();
            let a = k.m5("a");
            let c = k.node("c", "c5.large", "ng", 1930, 7 * GI, 29);
            pin(&mut k, if keep == "a" { a } else { c });
            k.aws.commitments = commitments(
                vec![ri("ri-1", "m5.large", Some("us-east-1a"), 1)],
                vec![],
                vec![],
            );
            k.report()
        };
        let r = mixed("a");
        assert_eq!(r.consolidation.removable_nodes[0].node, "c");
        assert_eq!(r.savings.consolidation, 62.05); // 0.085 × 730
        let r = mixed("c");
        assert_eq!(r.consolidation.removable_nodes[0].node, "a");
        assert_eq!(r.savings.consolidation, 0.0);
        assert_eq!(r.current_monthly_cost, 43.8 + 62.05);
    }

    #[test]
    fn failed_commitment_reads_are_noted_in_the_report() {
        let mut k = Kit::default();
        k.m5("a");
        k.aws.commitments = Commitments {
            read_at: Some(ts(NOW)),
            unavailable: vec![
                "savingsplans:DescribeSavingsPlans failed (AccessDeniedException): denied".into(),
            ],
            ..Default::default()
        };
        let r = k.report();
        let c = r.commitments.as_ref().unwrap();
        assert_eq!(c.unavailable.len(), 1);
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("could not all be read") && n.contains("DescribeSavingsPlans"))
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("account-wide") && n.contains("up to"))
        );
    }
}
