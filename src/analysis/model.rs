//! The compact model the recommendations work on, built once from the snapshot.
//!
//! Each node and pod is reduced to what scheduling needs: integer requests, a role (does
//! it stay, move, or pin its node) and an interned *scheduling signature* (nodeSelector,
//! required node affinity, tolerations and any "stay in this zone" restriction). Nodes
//! are grouped into *classes* that look the same to every signature in the cluster (equal
//! values for every label key some signature mentions, equal hard taints), so the
//! label/taint predicates are evaluated once per (signature, class), not per (pod, node).

use foldhash::{HashMap, HashMapExt};

use compact_str::CompactString;

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::commitments::{Commitments, SpotPriceHistory};
use super::input::{AnalysisInput, Container, Node, Pod, PodDisruptionBudget, PodSpec, SmallMap};
use super::prices::{LINUX, PriceTable, Unpriced, family};
use super::quantity::{parse_count, parse_cpu_millis, parse_memory_bytes};
use super::selectors::{
    NAME_FIELD, Req, Tol, is_hard_taint, label_selector_matches, tolerates_all,
};
use super::{AnalysisSettings, AwsInventory, ScaleDownProfile};

/// Label with the EKS managed nodegroup of a node.
pub const LABEL_NODEGROUP: &str = "eks.amazonaws.com/nodegroup";
/// Tag EKS puts on a managed nodegroup's instances, naming the nodegroup (the fallback for
/// nodes without [`LABEL_NODEGROUP`]).
pub const TAG_EKS_NODEGROUP: &str = "eks:nodegroup-name";
/// Label with the instance type of a node.
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
const LABEL_INSTANCE_TYPE_BETA: &str = "beta.kubernetes.io/instance-type";
/// Label with the availability zone of a node.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
const LABEL_REGION: &str = "topology.kubernetes.io/region";
/// Label with the operating system of a node (`linux`, `windows`), set by the kubelet.
pub const LABEL_OS: &str = "kubernetes.io/os";
const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
const LABEL_EKS_CAPACITY: &str = "eks.amazonaws.com/capacityType";
const LABEL_KARPENTER_CAPACITY: &str = "karpenter.sh/capacity-type";
const LABEL_KARPENTER_POOL: &str = "karpenter.sh/nodepool";
const ANN_SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
const ANN_SAFE_TO_EVICT_LOCAL_VOLUMES: &str =
    "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes";
const ANN_DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
const ANN_SCALE_DOWN_DISABLED: &str = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
const ANN_MIRROR: &str = "kubernetes.io/config.mirror";
/// Label EKS puts on Fargate "nodes" (value `fargate`).
pub const LABEL_COMPUTE_TYPE: &str = "eks.amazonaws.com/compute-type";
/// Annotation EKS puts on a Fargate pod with what it is billed for, e.g. `0.5vCPU 1GB`.
const ANN_CAPACITY_PROVISIONED: &str = "CapacityProvisioned";
/// Nodegroup name under which Fargate nodes are reported.
pub const FARGATE_GROUP: &str = "(fargate)";
/// Name used for nodes that belong to no nodegroup we can see.
pub const NO_NODEGROUP: &str = "(no nodegroup)";

/// CPU (millicores), memory (bytes) and pod slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Res {
    pub cpu: i64,
    pub mem: i64,
    pub pods: i64,
}

impl Res {
    pub fn add(&mut self, o: Res) {
        self.cpu += o.cpu;
        self.mem += o.mem;
        self.pods += o.pods;
    }
    pub fn sub(&mut self, o: Res) {
        self.cpu -= o.cpu;
        self.mem -= o.mem;
        self.pods -= o.pods;
    }
    #[cfg(test)]
    pub fn fits_in(&self, free: Res) -> bool {
        self.cpu <= free.cpu && self.mem <= free.mem && self.pods <= free.pods
    }
}

/// Why a pod cannot be moved by consolidation (and so pins its node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinReason {
    /// No controller would recreate it.
    NoController,
    /// hostPath or disk-backed emptyDir volume (described) not named in
    /// `safe-to-evict-local-volumes` (cluster-autoscaler profile).
    LocalStorage(String),
    /// A kube-system pod no PodDisruptionBudget covers (cluster-autoscaler profile).
    KubeSystemNoPdb,
    /// An annotation asks not to evict it.
    DoNotEvict(&'static str),
    /// A PodDisruptionBudget (index) allows no disruption.
    Pdb(u32),
    /// Required pod affinity on the hostname: it must stay next to another pod.
    HostAffinity,
    /// Its nodeSelector or node affinity names its node (hostname or metadata.name).
    NodeName,
}

/// What consolidation does with a pod when its node goes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// Runs on every (matching) node; goes away with the node.
    DaemonSet,
    /// Static (mirror) pod; bound to the node.
    Static,
    /// Can be rescheduled elsewhere.
    Movable,
    /// Must not be moved; its node cannot be removed.
    Pinned(PinReason),
}

/// Namespaces a pod-affinity term looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Namespaces<'a> {
    List(Vec<&'a str>),
    All,
}

/// A required "not on the same host as pods matching …" term (hostname anti-affinity, or
/// a hostname topology spread treated conservatively as one).
#[derive(Debug, Clone)]
pub(crate) struct HostTerm<'a> {
    pub namespaces: Namespaces<'a>,
    pub selector: Option<&'a LabelSelector>,
}

impl HostTerm<'_> {
    #[cfg(test)]
    pub fn matches(&self, pod: &PodM<'_>) -> bool {
        self.selects(pod.namespace, pod.labels)
    }

    /// Does the term select a pod of `namespace` with `labels`?
    pub fn selects(&self, namespace: &str, labels: &SmallMap<CompactString>) -> bool {
        let ns_ok = match &self.namespaces {
            Namespaces::All => true,
            Namespaces::List(l) => l.contains(&namespace),
        };
        ns_ok && label_selector_matches(self.selector, labels)
    }
}

// Equal namespaces and an equal selector (by value) are the same term, so the replicas of
// one Deployment share one interned term.
impl PartialEq for HostTerm<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.namespaces == other.namespaces && self.selector == other.selector
    }
}

impl Eq for HostTerm<'_> {}

impl std::hash::Hash for HostTerm<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.namespaces.hash(state);
        // LabelSelector has no Hash; its fields do, but for the requirements' operator
        // and values, which are hashed one by one.
        let Some(selector) = self.selector else {
            state.write_u8(0);
            return;
        };
        state.write_u8(1);
        selector.match_labels.hash(state);
        for e in selector.match_expressions.iter().flatten() {
            (&e.key, &e.operator, &e.values).hash(state);
        }
    }
}

/// The cluster's hostname terms, interned, with the label sets each selects: consolidation
/// asks "does term `t` select the pods of label set `l`" with a search in a short sorted
/// list instead of comparing a namespace and labels for every pod on every node it tries.
#[derive(Debug, Default)]
pub(crate) struct HostTerms {
    /// Per pod (as [`Model::pods`]), its label set; empty when there are no terms.
    label_set: Vec<u32>,
    /// Per term, the label sets (indices as in `label_set`) it selects, ascending.
    selected: Vec<Vec<u32>>,
}

impl HostTerms {
    /// Interns the label sets of `pods` (each pod's namespace and labels, as
    /// [`Model::pods`]) and finds the sets each of `terms` (distinct; [`PodM::host_terms`]
    /// index them) selects. A term's verdict on a pod depends on the pod's
    /// namespace and the values of the label keys the term's selector names, nothing else,
    /// so pods equal in those share a set however their other labels differ (a
    /// StatefulSet's pod-name label). Without terms nothing is done.
    fn new(terms: &[HostTerm<'_>], pods: &[(&str, &SmallMap<CompactString>)]) -> HostTerms {
        if terms.is_empty() {
            return HostTerms::default();
        }
        let mut keys: Vec<&str> = terms
            .iter()
            .filter_map(|t| t.selector)
            .flat_map(|s| {
                let labels = s.match_labels.iter().flatten().map(|(k, _)| k.as_str());
                let exprs = s.match_expressions.iter().flatten().map(|e| e.key.as_str());
                labels.chain(exprs)
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        // A set's first pod stands for it.
        let mut sets: Vec<(&str, &SmallMap<CompactString>)> = Vec::new();
        let mut label_set = Vec::with_capacity(pods.len());
        // [namespace, the value of each key] -> set
        let mut index: HashMap<Vec<Option<&str>>, u32> = HashMap::new();
        let mut seen: Vec<Option<&str>> = Vec::with_capacity(keys.len() + 1);
        for &(namespace, labels) in pods {
            seen.clear();
            seen.push(Some(namespace));
            seen.extend(
                keys.iter()
                    .map(|k| labels.get(*k).map(CompactString::as_str)),
            );
            label_set.push(match index.get(seen.as_slice()) {
                Some(&set) => set,
                None => {
                    let set = sets.len() as u32;
                    sets.push((namespace, labels));
                    index.insert(seen.clone(), set);
                    set
                }
            });
        }
        // Sets by (key, value), so that a term is tried only on sets that can match it.
        let mut by_value: HashMap<(&str, &str), Vec<u32>> = HashMap::new();
        for (set, (_, labels)) in sets.iter().enumerate() {
            for &k in &keys {
                if let Some(v) = labels.get(k) {
                    by_value
                        .entry((k, v.as_str()))
                        .or_default()
                        .push(set as u32);
                }
            }
        }
        let all: Vec<u32> = (0..sets.len() as u32).collect();
        let selected = terms
            .iter()
            .map(|t| {
                // A matchLabels pair, or an In requirement, that every selected set must
                // have: its sets (ascending, as pushed); else every set.
                let required = t.selector.and_then(|s| {
                    let pair = s.match_labels.iter().flatten().next();
                    pair.map(|(k, v)| vec![(k.as_str(), v.as_str())])
                        .or_else(|| {
                            s.match_expressions
                                .iter()
                                .flatten()
                                .find(|e| e.operator == "In")
                                .map(|e| {
                                    let values = e.values.iter().flatten();
                                    values.map(|v| (e.key.as_str(), v.as_str())).collect()
                                })
                        })
                });
                let mut candidates: Vec<u32> = match required {
                    Some(pairs) => pairs
                        .iter()
                        .flat_map(|p| by_value.get(p).into_iter().flatten().copied())
                        .collect(),
                    None => all.clone(),
                };
                candidates.sort_unstable();
                candidates.dedup();
                candidates.retain(|&set| {
                    let (namespace, labels) = sets[set as usize];
                    t.selects(namespace, labels)
                });
                candidates
            })
            .collect();
        HostTerms {
            label_set,
            selected,
        }
    }

    /// Does term `term` select pod `pod` (an index into [`Model::pods`])?
    pub fn selects(&self, term: u32, pod: u32) -> bool {
        let set = self.label_set[pod as usize];
        self.selected[term as usize].binary_search(&set).is_ok()
    }
}

/// Interned node constraints of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Sig {
    node_selector: Vec<(String, String)>,
    /// Required node affinity: OR of terms, each an AND of requirements.
    terms: Option<Vec<Vec<Req>>>,
    /// Extra ANDed requirements (stay in the current zone/domain).
    extra: Vec<Req>,
    tolerations: Vec<Tol>,
}

impl Sig {
    /// Does a node with these labels and taints satisfy the signature?
    pub fn allows<'l>(&self, label: impl Fn(&str) -> Option<&'l str>, taints: &[Taint]) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| label(k) == Some(v.as_str()))
            && self.extra.iter().all(|r| r.matches(label(&r.key)))
            && self.terms.as_ref().is_none_or(|terms| {
                terms
                    .iter()
                    .any(|t| t.iter().all(|r| r.matches(label(&r.key))))
            })
            && tolerates_all(&self.tolerations, taints)
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.node_selector
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.extra.iter().map(|r| r.key.as_str()))
            .chain(
                self.terms
                    .iter()
                    .flatten()
                    .flatten()
                    .map(|r| r.key.as_str()),
            )
    }

    /// True when the signature names the instance type (right-sizing would break it).
    pub fn mentions_instance_type(&self) -> bool {
        self.keys()
            .any(|k| k == LABEL_INSTANCE_TYPE || k == LABEL_INSTANCE_TYPE_BETA)
    }
}

/// One node, reduced.
#[derive(Debug, Clone)]
pub(crate) struct NodeM<'a> {
    pub name: &'a str,
    pub labels: &'a SmallMap<CompactString>,
    pub taints: &'a [Taint],
    pub nodegroup: String,
    pub instance_type: Option<String>,
    pub region: String,
    pub alloc: Res,
    /// Operating system (`kubernetes.io/os`; `linux` when the label is missing).
    pub os: &'a str,
    /// Hourly price; `None` when the type or its price is unknown.
    pub hourly: Option<f64>,
    /// The on-demand list price `hourly` derives from (equal unless spot).
    pub on_demand_hourly: Option<f64>,
    /// Why `hourly` is `None`.
    pub unpriced: Option<Unpriced>,
    pub spot: bool,
    /// How a spot node's price was found (`None` for other nodes).
    pub spot_basis: Option<SpotBasis>,
    /// Availability Zone (`topology.kubernetes.io/zone`, else the providerID's).
    pub zone: Option<&'a str>,
    /// An EKS Fargate node: billed per pod, never removed, never a destination.
    pub fargate: bool,
    /// For Fargate nodes: the vCPUs and GB its pods are provisioned with.
    pub fargate_capacity: (f64, f64),
    /// Ready, not cordoned, priced and not Fargate: may receive pods. A node of unknown
    /// price receives nothing, so no saving rests on moving pods onto it as if it were free.
    pub destination_ok: bool,
    /// Node-level reason it must not be removed.
    pub pin: Option<&'static str>,
    pub class: u32,
}

impl<'a> NodeM<'a> {
    pub fn label(&self, key: &str) -> Option<&'a str> {
        if key == NAME_FIELD {
            return Some(self.name);
        }
        if key == LABEL_OS {
            return Some(self.os);
        }
        self.labels.get(key).map(CompactString::as_str)
    }
}

/// Where a spot node's hourly price comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SpotBasis {
    /// ec2:DescribeSpotPriceHistory's current price for the node's type, zone and OS.
    History {
        zone: String,
        timestamp: jiff::Timestamp,
        price: f64,
    },
    /// The configured per-family discount off the on-demand price, and why no history price
    /// was used.
    Estimated { discount: f64, why: String },
}

/// The zone in a providerID such as `aws:///us-east-1a/i-0123456789abcdef0`.
fn provider_zone(provider_id: &str) -> Option<&str> {
    provider_id
        .strip_prefix("aws:///")?
        .split('/')
        .next()
        .filter(|z| !z.is_empty())
}

/// One pod bound to a node in the snapshot and not finished, reduced.
#[derive(Debug, Clone)]
pub(crate) struct PodM<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub labels: &'a SmallMap<CompactString>,
    pub node: u32,
    pub req: Res,
    pub role: Role,
    pub sig: u32,
    /// Its required hostname anti-affinity terms (and hostname spread constraints), as
    /// indices of the cluster's distinct terms ([`HostTerms`] answers for them).
    pub host_terms: Vec<u32>,
    /// Index into [`Model::deployments`] when a Deployment owns it (via its ReplicaSet).
    pub deployment: Option<u32>,
}

/// A Deployment with what spot eligibility needs.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentM<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub replicas: i32,
    pub has_pvc: bool,
    /// A PDB covering its pods allows no disruption.
    pub pdb_forbids: bool,
}

impl DeploymentM<'_> {
    /// Replicated, stateless and disruptable: a spot candidate.
    pub fn spot_eligible(&self) -> bool {
        self.replicas >= 2 && !self.has_pvc && !self.pdb_forbids
    }
}

/// A PodDisruptionBudget, reduced.
#[derive(Debug, Clone)]
pub(crate) struct PdbM<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub forbids: bool,
}

/// The whole reduced cluster.
#[derive(Debug)]
pub(crate) struct Model<'a> {
    pub nodes: Vec<NodeM<'a>>,
    pub pods: Vec<PodM<'a>>,
    pub node_pods: Vec<Vec<u32>>,
    pub sigs: Vec<Sig>,
    pub host_terms: HostTerms,
    /// The distinct hostname terms ([`PodM::host_terms`] index them), for the tests, which
    /// check placements against the terms themselves.
    #[cfg(test)]
    pub host_term_list: Vec<HostTerm<'a>>,
    pub n_classes: usize,
    /// `allowed[sig * n_classes + class]`.
    allowed: Vec<bool>,
    pub deployments: Vec<DeploymentM<'a>>,
    pub pdbs: Vec<PdbM<'a>>,
    /// Min size per nodegroup name, from the AWS inventory.
    pub min_size: HashMap<String, i64>,
    /// Pods not bound to a known node (pending, or on a node missing from the snapshot).
    pub unbound_pods: usize,
    /// Current spot prices, when read.
    pub spot_prices: &'a SpotPriceHistory,
    /// The account's Reserved Instances and Savings Plans, when read.
    pub commitments: &'a Commitments,
}

impl Model<'_> {
    /// May a pod with signature `sig` run on nodes of `class`?
    pub fn allowed(&self, sig: u32, class: u32) -> bool {
        self.allowed[sig as usize * self.n_classes + class as usize]
    }
}

fn quantity<F: Fn(&str) -> Option<i64>>(
    map: Option<&SmallMap<CompactString>>,
    key: &str,
    parse: F,
) -> Option<i64> {
    map.and_then(|m| m.get(key)).and_then(|q| parse(q))
}

/// The effective request of a pod as the scheduler computes it: max(app containers +
/// sidecars, each init container + the sidecars started before it), plus overhead;
/// pod-level `resources.requests` win where set.
pub(crate) fn pod_requests(spec: &PodSpec) -> (i64, i64) {
    let req = |c: &Container| {
        let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        (
            quantity(r, "cpu", parse_cpu_millis).unwrap_or(0),
            quantity(r, "memory", parse_memory_bytes).unwrap_or(0),
        )
    };
    let (mut cpu, mut mem) = spec
        .containers
        .iter()
        .map(req)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let (mut side_cpu, mut side_mem, mut init_cpu, mut init_mem) = (0, 0, 0, 0);
    for c in spec.init_containers.iter().flatten() {
        let (c_cpu, c_mem) = req(c);
        let (this_cpu, this_mem) = if c.restart_policy.as_deref() == Some("Always") {
            side_cpu += c_cpu;
            side_mem += c_mem;
            (side_cpu, side_mem)
        } else {
            (c_cpu + side_cpu, c_mem + side_mem)
        };
        init_cpu = init_cpu.max(this_cpu);
        init_mem = init_mem.max(this_mem);
    }
    cpu = (cpu + side_cpu).max(init_cpu);
    mem = (mem + side_mem).max(init_mem);
    let pod_level = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
    if let Some(c) = quantity(pod_level, "cpu", parse_cpu_millis) {
        cpu = c;
    }
    if let Some(m) = quantity(pod_level, "memory", parse_memory_bytes) {
        mem = m;
    }
    let overhead = spec.overhead.as_ref();
    cpu += quantity(overhead, "cpu", parse_cpu_millis).unwrap_or(0);
    mem += quantity(overhead, "memory", parse_memory_bytes).unwrap_or(0);
    (cpu, mem)
}

fn node_alloc(node: &Node) -> Res {
    let status = node.status.as_ref();
    let alloc = status.and_then(|s| s.allocatable.as_ref());
    let cap = status.and_then(|s| s.capacity.as_ref());
    let get = |key: &str, parse: fn(&str) -> Option<i64>| {
        quantity(alloc, key, parse).or_else(|| quantity(cap, key, parse))
    };
    Res {
        cpu: get("cpu", parse_cpu_millis).unwrap_or(0),
        mem: get("memory", parse_memory_bytes).unwrap_or(0),
        pods: get("pods", parse_count).unwrap_or(110),
    }
}

fn node_ready(node: &Node) -> bool {
    match node.status.as_ref().and_then(|s| s.conditions.as_ref()) {
        // A dump without conditions says nothing against the node.
        None => true,
        Some(conds) => conds
            .iter()
            .find(|c| c.type_ == "Ready")
            .is_none_or(|c| c.status == "True"),
    }
}

/// The vCPUs and GB of a Fargate pod's `CapacityProvisioned` annotation (`0.5vCPU 1GB`,
/// `2vCPU 4GB`), as EKS writes it.
pub(crate) fn parse_capacity_provisioned(value: &str) -> Option<(f64, f64)> {
    let (mut vcpu, mut gb) = (None, None);
    for part in value.split_whitespace() {
        if let Some(v) = part.strip_suffix("vCPU") {
            vcpu = v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
        } else if let Some(g) = part.strip_suffix("GB") {
            gb = g.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
        }
    }
    Some((vcpu?, gb?))
}

/// The EC2 instance id in a providerID such as `aws:///us-east-1a/i-0123456789abcdef0`.
pub fn instance_id(provider_id: &str) -> Option<&str> {
    provider_id
        .rsplit('/')
        .next()
        .filter(|s| s.starts_with("i-"))
}

/// Is this PDB's budget exhausted, or does its spec allow no voluntary disruption?
/// The status (kept by the disruption controller) is authoritative when present;
/// otherwise the spec is resolved against the `matching` pods of the snapshot, treating
/// them as healthy. Percentages round up as the disruption controller does.
fn pdb_forbids(pdb: &PodDisruptionBudget, matching: i64) -> bool {
    if let Some(status) = &pdb.status
        && status.expected_pods > 0
    {
        return status.disruptions_allowed <= 0;
    }
    let spec = pdb.spec.as_ref();
    let resolve = |v: &IntOrString| -> i64 {
        match v {
            IntOrString::Int(i) => i64::from(*i),
            IntOrString::String(s) => {
                let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(100);
                (pct * matching + 99) / 100
            }
        }
    };
    if let Some(max) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        return resolve(max) <= 0;
    }
    let min = spec
        .and_then(|s| s.min_available.as_ref())
        .map(resolve)
        .unwrap_or(1);
    matching - min <= 0
}

fn has_pvc(spec: Option<&PodSpec>) -> bool {
    spec.and_then(|s| s.volumes.as_ref()).is_some_and(|v| {
        v.iter()
            .any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
    })
}

/// The first of a pod's *local* volumes, as cluster-autoscaler counts them (its FAQ,
/// "What types of pods can prevent CA from removing a node?"): hostPath, and emptyDir not
/// backed by memory; ConfigMap, Secret, projected and `medium: Memory` emptyDir volumes are
/// not local storage. Volumes named in the pod's comma-separated
/// `cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes` annotation are skipped.
/// Returns (volume name, kind). PVCs do not count, but EBS volumes are zonal, so such pods
/// stay in their zone.
fn local_storage<'s>(
    spec: &'s PodSpec,
    safe_volumes: Option<&str>,
) -> Option<(&'s str, &'static str)> {
    let listed =
        |name: &str| safe_volumes.is_some_and(|list| list.split(',').any(|v| v.trim() == name));
    spec.volumes.iter().flatten().find_map(|v| {
        let kind = if v.host_path.is_some() {
            "hostPath"
        } else if v
            .empty_dir
            .as_ref()
            .is_some_and(|e| e.medium.as_deref() != Some("Memory"))
        {
            "disk-backed emptyDir"
        } else {
            return None;
        };
        (!listed(&v.name)).then_some((v.name.as_str(), kind))
    })
}

fn namespaces<'a>(
    own: &'a str,
    list: Option<&'a Vec<String>>,
    ns_selector: Option<&LabelSelector>,
) -> Namespaces<'a> {
    // Any namespaceSelector (even one we cannot evaluate: namespaces are not in the
    // snapshot) is treated as "all namespaces", which can only add conflicts.
    if ns_selector.is_some() {
        return Namespaces::All;
    }
    match list {
        Some(l) if !l.is_empty() => Namespaces::List(l.iter().map(String::as_str).collect()),
        _ => Namespaces::List(vec![own]),
    }
}

/// The PodDisruptionBudgets of one namespace, indexed so that a pod's are found without
/// testing every selector of the namespace against it (a namespace can hold hundreds, one
/// per workload). A selector with `matchLabels` is filed under one of its pairs, the one
/// the fewest of the namespace's selectors share (a pod it selects carries every pair, so
/// any would do; the rarest keeps the others out of a shared bucket, e.g.
/// `app.kubernetes.io/component: server` on many). Selectors without `matchLabels`
/// (expressions only, or empty) are tested against every pod: a namespace with many of
/// those costs what a scan did.
#[derive(Default)]
struct NamespacePdbs<'a> {
    /// (label key, value) -> PDB indices, ascending, filed under the pair.
    by_label: HashMap<(&'a str, &'a str), Vec<u32>>,
    /// PDBs whose selector has no `matchLabels`, ascending.
    unindexed: Vec<u32>,
}

impl<'a> NamespacePdbs<'a> {
    /// Index the PDBs `indices` (ascending) of one namespace; `all` is the snapshot's list.
    fn new(all: &'a [PodDisruptionBudget], indices: &[u32]) -> Self {
        // A PDB without a selector selects no pod (policy/v1), so it is filed nowhere.
        let selector = |i: u32| all[i as usize].selector();
        let pairs = |i: u32| {
            selector(i)
                .and_then(|s| s.match_labels.as_ref())
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str()))
        };
        let mut shared: HashMap<(&str, &str), usize> = HashMap::new();
        for &i in indices {
            for pair in pairs(i) {
                *shared.entry(pair).or_default() += 1;
            }
        }
        let mut index = NamespacePdbs::default();
        for &i in indices {
            if selector(i).is_none() {
                continue;
            }
            // The first of the rarest pairs (BTreeMap order), so the filing is deterministic.
            match pairs(i).min_by_key(|pair| shared[pair]) {
                Some(pair) => index.by_label.entry(pair).or_default().push(i),
                None => index.unindexed.push(i),
            }
        }
        index
    }

    /// Indices (ascending, as listed in the snapshot) of the PDBs selecting `labels`.
    fn selecting(&self, all: &[PodDisruptionBudget], labels: &SmallMap<CompactString>) -> Vec<u32> {
        let mut found: Vec<u32> = self.unindexed.clone();
        for (k, v) in labels.iter() {
            if let Some(filed) = self.by_label.get(&(k.as_str(), v.as_str())) {
                found.extend_from_slice(filed);
            }
        }
        found.retain(|&i| label_selector_matches(all[i as usize].selector(), labels));
        found.sort_unstable();
        found
    }
}

/// A required constraint on a non-hostname topology domain (zone…): every pod it
/// selects, and its owner, is kept inside its current domain, which leaves the
/// per-domain counts it constrains unchanged.
struct DomainTerm<'a> {
    key: &'a str,
    namespaces: Namespaces<'a>,
    selector: Option<&'a LabelSelector>,
}

/// Build the model. Deterministic: everything is indexed in snapshot order.
pub(crate) fn build<'a>(
    snap: &'a AnalysisInput,
    aws: &'a AwsInventory,
    prices: &PriceTable,
    settings: &AnalysisSettings,
) -> Model<'a> {
    static EMPTY_LABELS: SmallMap<CompactString> = SmallMap::new();
    let instances: HashMap<&str, &crate::aws::Instance> =
        aws.instances.iter().map(|i| (i.id.as_str(), i)).collect();
    let min_size: HashMap<String, i64> = aws
        .nodegroups
        .iter()
        .filter_map(|g| g.min_size.map(|m| (g.name.clone(), i64::from(m))))
        .collect();

    // Nodes.
    let mut nodes = Vec::with_capacity(snap.nodes.len());
    let mut node_index: HashMap<&str, u32> = HashMap::with_capacity(snap.nodes.len());
    for node in &snap.nodes {
        let Some(name) = node.metadata.name.as_deref() else {
            continue;
        };
        let labels = node.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS);
        let spec = node.spec.as_ref();
        let instance = spec
            .and_then(|s| s.provider_id.as_deref())
            .and_then(instance_id)
            .and_then(|id| instances.get(id).copied());
        let instance_type = labels
            .get(LABEL_INSTANCE_TYPE)
            .or_else(|| labels.get(LABEL_INSTANCE_TYPE_BETA))
            .map(|t| t.to_string())
            .or_else(|| instance.and_then(|i| i.instance_type.clone()));
        let fargate = labels
            .get(LABEL_COMPUTE_TYPE)
            .is_some_and(|v| v == "fargate");
        let nodegroup = labels
            .get(LABEL_NODEGROUP)
            .map(|g| g.to_string())
            .or_else(|| instance.and_then(|i| i.tags.get(TAG_EKS_NODEGROUP).cloned()))
            .or_else(|| {
                labels
                    .get(LABEL_KARPENTER_POOL)
                    .map(|p| format!("nodepool/{p}"))
            })
            .unwrap_or_else(|| if fargate { FARGATE_GROUP } else { NO_NODEGROUP }.to_string());
        let region = if !aws.region.is_empty() {
            aws.region.clone()
        } else {
            labels
                .get(LABEL_REGION)
                .map(|r| r.to_string())
                .unwrap_or_else(|| settings.region.clone())
        };
        let spot = labels.get(LABEL_EKS_CAPACITY).is_some_and(|v| v == "SPOT")
            || labels
                .get(LABEL_KARPENTER_CAPACITY)
                .is_some_and(|v| v == "spot");
        let os = labels
            .get(LABEL_OS)
            .map(CompactString::as_str)
            .unwrap_or(LINUX);
        // Exactly this region, operating system and type: nothing else stands in. Fargate
        // nodes are priced per pod below.
        let on_demand =
            match instance_type.as_deref() {
                _ if fargate => prices.fargate_rates(&region).map(|_| 0.0).ok_or_else(|| {
                    Unpriced::FargateNoRates {
                        region: region.clone(),
                    }
                }),
                None => Err(Unpriced::NoInstanceType),
                Some(t) => prices.on_demand_hourly_for(os, &region, t),
            };
        let zone = labels
            .get(LABEL_ZONE)
            .map(CompactString::as_str)
            .or_else(|| {
                spec.and_then(|s| s.provider_id.as_deref())
                    .and_then(provider_zone)
            });
        // A spot node costs its type's current spot price in its zone (as billed); the
        // configured discount stands in only when the history has no such price.
        let history = match (spot && !fargate, instance_type.as_deref(), zone) {
            (true, Some(t), Some(z)) => {
                aws.spot_prices
                    .price(t, z, crate::aws::product_description(os))
            }
            _ => None,
        };
        let spot_basis = match (spot && !fargate, history, instance_type.as_deref()) {
            (false, _, _) => None,
            (true, Some(p), _) => Some(SpotBasis::History {
                zone: p.availability_zone.clone(),
                timestamp: p.timestamp,
                price: p.usd_per_hour,
            }),
            (true, None, t) => Some(SpotBasis::Estimated {
                discount: settings.spot_discount_for(family(t.unwrap_or_default())),
                why: match (&aws.spot_prices, zone) {
                    (SpotPriceHistory::NotRead, _) => "no spot price history was read".into(),
                    (SpotPriceHistory::Unavailable(reason), _) => {
                        format!("the spot price history was unavailable: {reason}")
                    }
                    (SpotPriceHistory::Read(_), None) => {
                        "the node's zone is unknown, so its spot price cannot be looked up".into()
                    }
                    (SpotPriceHistory::Read(_), Some(z)) => format!(
                        "the spot price history has no current price for {} {} in {z}",
                        instance_type.as_deref().unwrap_or("this type"),
                        crate::aws::product_description(os)
                    ),
                },
            }),
        };
        let (hourly, on_demand) = match (&spot_basis, on_demand) {
            (Some(SpotBasis::History { price, .. }), od) => (Some(*price), od),
            (Some(SpotBasis::Estimated { discount, .. }), Ok(od)) => {
                (Some(od * (1.0 - discount)), Ok(od))
            }
            (_, Ok(od)) => (Some(od), Ok(od)),
            (_, Err(e)) => (None, Err(e)),
        };
        let annotations = node.metadata.annotations.as_ref();
        let pin = if settings.scale_down_profile == ScaleDownProfile::ClusterAutoscaler
            && annotations
                .and_then(|a| a.get(ANN_SCALE_DOWN_DISABLED))
                .is_some_and(|v| v == "true")
        {
            Some("annotated cluster-autoscaler.kubernetes.io/scale-down-disabled=true")
        } else if annotations
            .and_then(|a| a.get(ANN_DO_NOT_DISRUPT))
            .is_some_and(|v| v == "true")
        {
            Some("annotated karpenter.sh/do-not-disrupt=true")
        } else {
            None
        };
        node_index.insert(name, nodes.len() as u32);
        nodes.push(NodeM {
            name,
            labels,
            taints: spec.and_then(|s| s.taints.as_deref()).unwrap_or_default(),
            nodegroup,
            instance_type,
            region,
            alloc: node_alloc(node),
            os,
            hourly,
            on_demand_hourly: on_demand.as_ref().ok().copied(),
            // A spot node priced from the history is priced even when its on-demand
            // price is unknown.
            unpriced: if hourly.is_some() {
                None
            } else {
                on_demand.err()
            },
            spot_basis,
            zone,
            spot,
            fargate,
            fargate_capacity: (0.0, 0.0),
            destination_ok: !fargate
                && node_ready(node)
                && !spec.and_then(|s| s.unschedulable).unwrap_or(false),
            pin,
            class: 0,
        });
    }

    // Owners: ReplicaSet uid -> Deployment index.
    let mut deployments = Vec::with_capacity(snap.deployments.len());
    let mut deployment_by_uid: HashMap<&str, u32> = HashMap::new();
    for d in &snap.deployments {
        let spec = d.spec.as_ref();
        if let Some(uid) = d.metadata.uid.as_deref() {
            deployment_by_uid.insert(uid, deployments.len() as u32);
        }
        deployments.push(DeploymentM {
            namespace: d.metadata.namespace.as_deref().unwrap_or("default"),
            name: d.metadata.name.as_deref().unwrap_or(""),
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            has_pvc: has_pvc(spec.and_then(|s| s.template.spec.as_ref())),
            pdb_forbids: false,
        });
    }
    let deployment_by_name: HashMap<(&str, &str), u32> = deployments
        .iter()
        .enumerate()
        .map(|(i, d)| ((d.namespace, d.name), i as u32))
        .collect();
    let mut rs_to_deployment: HashMap<&str, u32> = HashMap::new();
    for rs in &snap.replica_sets {
        let Some(uid) = rs.metadata.uid.as_deref() else {
            continue;
        };
        let ns = rs.metadata.namespace.as_deref().unwrap_or("default");
        if let Some(owner) = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            && owner.kind == "Deployment"
            && let Some(&d) = deployment_by_uid
                .get(owner.uid.as_str())
                .or_else(|| deployment_by_name.get(&(ns, owner.name.as_str())))
        {
            rs_to_deployment.insert(uid, d);
        }
    }

    // PDBs by namespace, indexed by their selectors' matchLabels.
    let mut pdb_indices: HashMap<&str, Vec<u32>> = HashMap::new();
    for (i, p) in snap.pod_disruption_budgets.iter().enumerate() {
        pdb_indices
            .entry(p.metadata.namespace.as_deref().unwrap_or("default"))
            .or_default()
            .push(i as u32);
    }
    let pdbs_by_ns: HashMap<&str, NamespacePdbs<'a>> = pdb_indices
        .into_iter()
        .map(|(ns, indices)| {
            (
                ns,
                NamespacePdbs::new(&snap.pod_disruption_budgets, &indices),
            )
        })
        .collect();

    // Pass 1 over pods: requests, role, PDB membership, host terms, domain terms.
    struct Pending<'a> {
        pod: &'a Pod,
        pdbs: Vec<u32>,
        host_affinity: bool,
        no_controller: bool,
        local: Option<(&'a str, &'static str)>,
        safe_to_evict_false: bool,
        do_not_disrupt: bool,
        safe_to_evict: bool,
    }
    let mut pods: Vec<PodM<'a>> = Vec::with_capacity(snap.pods.len());
    let mut pending: Vec<Pending<'a>> = Vec::with_capacity(snap.pods.len());
    let mut pdb_matching = vec![0i64; snap.pod_disruption_budgets.len()];
    let mut host_term_list: Vec<HostTerm<'a>> = Vec::new();
    let mut host_term_index: HashMap<HostTerm<'a>, u32> = HashMap::new();
    let mut intern_host_term = |term: HostTerm<'a>| -> u32 {
        let next = host_term_list.len() as u32;
        *host_term_index.entry(term).or_insert_with_key(|t| {
            host_term_list.push(t.clone());
            next
        })
    };
    let mut domain_terms: Vec<DomainTerm<'a>> = Vec::new();
    let mut domain_owner: Vec<(u32, &'a str)> = Vec::new();
    let mut unbound_pods = 0;
    for pod in &snap.pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            continue;
        }
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let Some(&node) = spec.node_name.as_deref().and_then(|n| node_index.get(n)) else {
            unbound_pods += 1;
            continue;
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let labels = pod.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS);
        let annotations = pod.metadata.annotations.as_ref();
        let (cpu, mem) = pod_requests(spec);
        if nodes[node as usize].fargate {
            let nd = &mut nodes[node as usize];
            match annotations
                .and_then(|a| a.get(ANN_CAPACITY_PROVISIONED))
                .and_then(|v| parse_capacity_provisioned(v))
            {
                Some((vcpu, gb)) => {
                    nd.fargate_capacity.0 += vcpu;
                    nd.fargate_capacity.1 += gb;
                }
                None => {
                    nd.unpriced.get_or_insert(Unpriced::FargateNoCapacity {
                        pod: format!("{namespace}/{}", pod.metadata.name.as_deref().unwrap_or("")),
                    });
                }
            }
        }
        let controller = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        let is_mirror = annotations.is_some_and(|a| a.contains_key(ANN_MIRROR));
        let role = match controller.map(|o| o.kind.as_str()) {
            Some("DaemonSet") => Role::DaemonSet,
            Some("Node") => Role::Static,
            _ if is_mirror => Role::Static,
            _ => Role::Movable,
        };
        let deployment = controller
            .filter(|o| o.kind == "ReplicaSet")
            .and_then(|o| rs_to_deployment.get(o.uid.as_str()).copied());
        let pod_idx = pods.len() as u32;

        let mut p = Pending {
            pod,
            pdbs: Vec::new(),
            host_affinity: false,
            no_controller: controller.is_none(),
            local: local_storage(
                spec,
                annotations
                    .and_then(|a| a.get(ANN_SAFE_TO_EVICT_LOCAL_VOLUMES))
                    .map(CompactString::as_str),
            ),
            safe_to_evict_false: false,
            do_not_disrupt: false,
            safe_to_evict: false,
        };
        if let Some(a) = annotations {
            p.safe_to_evict_false = a.get(ANN_SAFE_TO_EVICT).is_some_and(|v| v == "false");
            p.do_not_disrupt = a.get(ANN_DO_NOT_DISRUPT).is_some_and(|v| v == "true");
            p.safe_to_evict = a.get(ANN_SAFE_TO_EVICT).is_some_and(|v| v == "true");
        }
        let mut host_terms = Vec::new();
        if role == Role::Movable {
            if let Some(ns_pdbs) = pdbs_by_ns.get(namespace) {
                p.pdbs = ns_pdbs.selecting(&snap.pod_disruption_budgets, labels);
                for &i in &p.pdbs {
                    pdb_matching[i as usize] += 1;
                }
            }
            let affinity = spec.affinity.as_ref();
            for term in affinity
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .into_iter()
                .flatten()
            {
                let ns = namespaces(
                    namespace,
                    term.namespaces.as_ref(),
                    term.namespace_selector.as_ref(),
                );
                if term.topology_key == LABEL_HOSTNAME {
                    host_terms.push(intern_host_term(HostTerm {
                        namespaces: ns,
                        selector: term.label_selector.as_ref(),
                    }));
                } else {
                    domain_terms.push(DomainTerm {
                        key: &term.topology_key,
                        namespaces: ns,
                        selector: term.label_selector.as_ref(),
                    });
                    domain_owner.push((pod_idx, &term.topology_key));
                }
            }
            for term in affinity
                .and_then(|a| a.pod_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .into_iter()
                .flatten()
            {
                if term.topology_key == LABEL_HOSTNAME {
                    p.host_affinity = true;
                } else {
                    domain_owner.push((pod_idx, &term.topology_key));
                }
            }
            for c in spec.topology_spread_constraints.iter().flatten() {
                if c.when_unsatisfiable != "DoNotSchedule" {
                    continue;
                }
                let ns = Namespaces::List(vec![namespace]);
                if c.topology_key == LABEL_HOSTNAME {
                    // One matching pod per host keeps any hostname skew ≤ 1 ≤ maxSkew.
                    host_terms.push(intern_host_term(HostTerm {
                        namespaces: ns,
                        selector: c.label_selector.as_ref(),
                    }));
                } else {
                    domain_terms.push(DomainTerm {
                        key: &c.topology_key,
                        namespaces: ns,
                        selector: c.label_selector.as_ref(),
                    });
                    domain_owner.push((pod_idx, &c.topology_key));
                }
            }
            if has_pvc(Some(spec)) {
                domain_owner.push((pod_idx, LABEL_ZONE));
            }
        }
        pods.push(PodM {
            namespace,
            name: pod.metadata.name.as_deref().unwrap_or(""),
            labels,
            node,
            req: Res { cpu, mem, pods: 1 },
            role,
            sig: 0,
            host_terms,
            deployment,
        });
        pending.push(p);
    }
    // The hostname terms' label sets are found beside the rest of the model, on another
    // thread (inline when none can be started): they need only the pods' namespaces and
    // labels, which are final here.
    let labelled: Vec<(&str, &SmallMap<CompactString>)> = if host_term_list.is_empty() {
        Vec::new()
    } else {
        pods.iter().map(|p| (p.namespace, p.labels)).collect()
    };
    std::thread::scope(|scope| {
        let host_terms = std::thread::Builder::new()
            .name("host-terms".into())
            .spawn_scoped(scope, || HostTerms::new(&host_term_list, &labelled));

        // Fargate nodes cost what their pods are provisioned with.
        for nd in nodes.iter_mut().filter(|n| n.fargate) {
            let rates = prices.fargate_rates(&nd.region);
            nd.hourly = match (rates, &nd.unpriced) {
                (Some(r), None) => Some(r.hourly(nd.fargate_capacity.0, nd.fargate_capacity.1)),
                _ => None,
            };
            nd.on_demand_hourly = nd.hourly;
        }
        for nd in nodes.iter_mut().filter(|n| n.hourly.is_none()) {
            nd.destination_ok = false;
        }

        // PDB verdicts, then pod pins.
        let pdbs: Vec<PdbM<'a>> = snap
            .pod_disruption_budgets
            .iter()
            .zip(&pdb_matching)
            .map(|(p, &m)| PdbM {
                namespace: p.metadata.namespace.as_deref().unwrap_or("default"),
                name: p.metadata.name.as_deref().unwrap_or(""),
                forbids: pdb_forbids(p, m),
            })
            .collect();
        for (pod, p) in pods.iter_mut().zip(&pending) {
            if pod.role != Role::Movable {
                continue;
            }
            let forbidding = p.pdbs.iter().copied().find(|&i| pdbs[i as usize].forbids);
            if let Some(d) = pod.deployment
                && forbidding.is_some()
            {
                deployments[d as usize].pdb_forbids = true;
            }
            // The scale-down rules of the profile (docs/analysis.md "Scale-down profiles"): cluster-
            // autoscaler's defaults, or Karpenter's, which leave out the CA-only rules.
            let ca = settings.scale_down_profile == ScaleDownProfile::ClusterAutoscaler;
            pod.role = if ca && p.safe_to_evict_false {
                Role::Pinned(PinReason::DoNotEvict(
                    "cluster-autoscaler.kubernetes.io/safe-to-evict=false",
                ))
            } else if p.do_not_disrupt {
                Role::Pinned(PinReason::DoNotEvict("karpenter.sh/do-not-disrupt=true"))
            } else if p.no_controller && !p.safe_to_evict {
                Role::Pinned(PinReason::NoController)
            } else if let (true, Some((name, kind)), false) = (ca, p.local, p.safe_to_evict) {
                Role::Pinned(PinReason::LocalStorage(format!("{kind} volume {name}")))
            } else if ca && !p.safe_to_evict && pod.namespace == "kube-system" && p.pdbs.is_empty()
            {
                Role::Pinned(PinReason::KubeSystemNoPdb)
            } else if p.host_affinity {
                Role::Pinned(PinReason::HostAffinity)
            } else if let Some(i) = forbidding {
                Role::Pinned(PinReason::Pdb(i))
            } else {
                Role::Movable
            };
        }
        // A Deployment whose template a forbidding PDB selects is not spot-eligible even
        // when none of its pods is running right now.
        for (d, dep) in snap.deployments.iter().zip(deployments.iter_mut()) {
            let template_labels = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref());
            if let Some(labels) = template_labels
                && let Some(ns_pdbs) = pdbs_by_ns.get(dep.namespace)
                && ns_pdbs
                    .selecting(&snap.pod_disruption_budgets, labels)
                    .iter()
                    .any(|&i| pdbs[i as usize].forbids)
            {
                dep.pdb_forbids = true;
            }
        }

        // Domain locks: pods selected by a domain term, and the term owners, stay in their domain.
        let mut extra: Vec<Vec<Req>> = vec![Vec::new(); pods.len()];
        let lock = |extra: &mut Vec<Vec<Req>>,
                    pods: &[PodM<'_>],
                    nodes: &[NodeM<'_>],
                    i: usize,
                    key: &str| {
            let value = nodes[pods[i].node as usize].label(key);
            let r = match value {
                Some(v) => Req {
                    key: key.to_string(),
                    op: super::selectors::Op::In,
                    values: vec![v.to_string()],
                },
                None => Req {
                    key: key.to_string(),
                    op: super::selectors::Op::DoesNotExist,
                    values: vec![],
                },
            };
            if !extra[i].contains(&r) {
                extra[i].push(r);
            }
        };
        for &(i, key) in &domain_owner {
            lock(&mut extra, &pods, &nodes, i as usize, key);
        }
        if !domain_terms.is_empty() {
            let mut seen: HashMap<(String, String, String), ()> = HashMap::new();
            for t in &domain_terms {
                let id = (
                    t.key.to_string(),
                    format!("{:?}", t.namespaces),
                    t.selector
                        .map(|s| serde_json::to_string(s).unwrap_or_default())
                        .unwrap_or_default(),
                );
                if seen.insert(id, ()).is_some() {
                    continue;
                }
                for i in 0..pods.len() {
                    let p = &pods[i];
                    let ns_ok = match &t.namespaces {
                        Namespaces::All => true,
                        Namespaces::List(l) => l.contains(&p.namespace),
                    };
                    if p.role == Role::Movable
                        && ns_ok
                        && label_selector_matches(t.selector, p.labels)
                    {
                        lock(&mut extra, &pods, &nodes, i, t.key);
                    }
                }
            }
        }

        // Operating system: a pod runs the one its nodeSelector names, else its node's (linux
        // unless labelled), and is never planned onto a node of another. Only needed when the
        // cluster mixes systems.
        if nodes.iter().any(|n| n.os != nodes[0].os) {
            for (i, (pod, p)) in pods.iter().zip(&pending).enumerate() {
                if pod.role != Role::Movable {
                    continue;
                }
                let os = p
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_selector.as_ref())
                    .and_then(|s| s.get(LABEL_OS))
                    .map(CompactString::as_str)
                    .unwrap_or(nodes[pod.node as usize].os);
                let r = Req {
                    key: LABEL_OS.to_string(),
                    op: super::selectors::Op::In,
                    values: vec![os.to_string()],
                };
                if !extra[i].contains(&r) {
                    extra[i].push(r);
                }
            }
        }

        // Pass 2: intern signatures.
        let mut sigs: Vec<Sig> = Vec::new();
        let mut sig_index: HashMap<Sig, u32> = HashMap::new();
        for ((pod, p), mut extra) in pods.iter_mut().zip(&pending).zip(extra) {
            if matches!(pod.role, Role::DaemonSet | Role::Static) {
                // They never move; real DaemonSet pods carry a per-node matchFields affinity
                // that would otherwise split every node into its own class.
                let next = sigs.len() as u32;
                pod.sig = *sig_index.entry(Sig::default()).or_insert_with_key(|s| {
                    sigs.push(s.clone());
                    next
                });
                continue;
            }
            let spec = p.pod.spec.as_ref().expect("pods without spec were skipped");
            let mut node_selector: Vec<(String, String)> = spec
                .node_selector
                .iter()
                .flatten()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            node_selector.sort();
            let terms = spec
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|sel| {
                    sel.node_selector_terms
                        .iter()
                        .filter_map(|t| {
                            // An empty term matches nothing; a term with a bad operator too.
                            let exprs = t
                                .match_expressions
                                .iter()
                                .flatten()
                                .map(|r| Req::from_api(r, false));
                            let fields = t
                                .match_fields
                                .iter()
                                .flatten()
                                .map(|r| Req::from_api(r, true));
                            let reqs: Option<Vec<Req>> = exprs.chain(fields).collect();
                            reqs.filter(|r| !r.is_empty())
                        })
                        .collect::<Vec<_>>()
                });
            let mut tolerations: Vec<Tol> = spec
                .tolerations
                .iter()
                .flatten()
                .map(Tol::from_api)
                .collect();
            tolerations.sort();
            tolerations.dedup();
            extra.sort();
            let sig = Sig {
                node_selector,
                terms,
                extra,
                tolerations,
            };
            if pod.role == Role::Movable
                && sig.keys().any(|k| k == LABEL_HOSTNAME || k == NAME_FIELD)
            {
                // Selecting one node by name: it can only run where it is.
                pod.role = Role::Pinned(PinReason::NodeName);
            }
            let next = sigs.len() as u32;
            pod.sig = *sig_index.entry(sig).or_insert_with_key(|s| {
                sigs.push(s.clone());
                next
            });
        }

        // Node classes over the label keys any movable pod's signature mentions, plus hard
        // taints. (Pods that do not move never query classes.)
        let mut used = vec![false; sigs.len()];
        for p in &pods {
            if p.role == Role::Movable {
                used[p.sig as usize] = true;
            }
        }
        let mut keys: Vec<&str> = sigs
            .iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .flat_map(|(s, _)| s.keys())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        // (label values for `keys`, hard taints as (key, value, effect)) -> class id.
        type ClassKey<'k> = (
            Vec<Option<&'k str>>,
            Vec<(&'k str, Option<&'k str>, &'k str)>,
        );
        let mut class_index: HashMap<ClassKey<'_>, u32> = HashMap::new();
        let mut representatives: Vec<u32> = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            let values: Vec<Option<&str>> = keys.iter().map(|k| node.label(k)).collect();
            let taints: Vec<(&str, Option<&str>, &str)> = node
                .taints
                .iter()
                .filter(|t| is_hard_taint(t))
                .map(|t| (t.key.as_str(), t.value.as_deref(), t.effect.as_str()))
                .collect();
            let next = representatives.len() as u32;
            node.class = *class_index.entry((values, taints)).or_insert_with(|| {
                representatives.push(i as u32);
                next
            });
        }
        let n_classes = representatives.len().max(1);
        let mut allowed = vec![false; sigs.len() * n_classes];
        for (s, sig) in sigs.iter().enumerate() {
            for (c, &rep) in representatives.iter().enumerate() {
                let node = &nodes[rep as usize];
                allowed[s * n_classes + c] = sig.allows(|k| node.label(k), node.taints);
            }
        }

        let mut node_pods = vec![Vec::new(); nodes.len()];
        for (i, p) in pods.iter().enumerate() {
            node_pods[p.node as usize].push(i as u32);
        }

        let host_terms = match host_terms {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => HostTerms::new(&host_term_list, &labelled),
        };
        Model {
            nodes,
            pods,
            node_pods,
            sigs,
            host_terms,
            #[cfg(test)]
            host_term_list: host_term_list.clone(),
            n_classes,
            allowed,
            deployments,
            pdbs,
            min_size,
            unbound_pods,
            spot_prices: &aws.spot_prices,
            commitments: &aws.commitments,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    use super::*;
    use crate::analysis::input::PdbSpec;

    const KEYS: [&str; 3] = ["app", "tier", "team"];
    const VALUES: [&str; 2] = ["a", "b"];

    fn pairs() -> impl Strategy<Value = Vec<(usize, usize)>> {
        proptest::collection::vec((0..KEYS.len(), 0..VALUES.len()), 0..3)
    }

    /// A selector as clusters write them: none, empty, matchLabels and/or up to three
    /// expressions (valid or not: an `In` without values selects nothing).
    fn selector() -> impl Strategy<Value = Option<LabelSelector>> {
        let expression =
            (0..KEYS.len(), 0..5usize, 0..3usize).prop_map(|(k, op, n)| LabelSelectorRequirement {
                key: KEYS[k].into(),
                operator: ["In", "NotIn", "Exists", "DoesNotExist", "Bogus"][op].into(),
                values: (n > 0).then(|| VALUES[..n.min(2)].iter().map(|v| v.to_string()).collect()),
            });
        (
            any::<bool>(),
            proptest::option::of(pairs()),
            proptest::option::of(proptest::collection::vec(expression, 0..4)),
        )
            .prop_map(|(present, labels, expressions)| {
                present.then(|| LabelSelector {
                    match_labels: labels.map(|l| {
                        l.into_iter()
                            .map(|(k, v)| (KEYS[k].to_string(), VALUES[v].to_string()))
                            .collect::<BTreeMap<_, _>>()
                    }),
                    match_expressions: expressions,
                })
            })
    }

    proptest! {
        /// The index finds exactly the PDBs whose selector matches, in snapshot order, as
        /// testing every selector of the namespace would.
        #[test]
        fn pdb_index_selects_what_every_selector_would(
            selectors in proptest::collection::vec((selector(), proptest::bool::weighted(0.9)), 0..12),
            pods in proptest::collection::vec(pairs(), 1..8),
        ) {
            let all: Vec<PodDisruptionBudget> = selectors
                .into_iter()
                .map(|(selector, with_spec)| PodDisruptionBudget {
                    // Without a spec, as without a selector, a PDB selects nothing.
                    spec: with_spec.then(|| PdbSpec {
                        selector,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect();
            let indices: Vec<u32> = (0..all.len() as u32).collect();
            let index = NamespacePdbs::new(&all, &indices);
            for pod in pods {
                let labels: SmallMap<CompactString> = pod
                    .into_iter()
                    .map(|(k, v)| (CompactString::from(KEYS[k]), CompactString::from(VALUES[v])))
                    .collect();
                let expected: Vec<u32> = (0..all.len() as u32)
                    .filter(|&i| label_selector_matches(all[i as usize].selector(), &labels))
                    .collect();
                prop_assert_eq!(index.selecting(&all, &labels), expected);
            }
        }

        /// The interned hostname terms answer, for every term and pod, what the term
        /// itself answers: equal terms share an entry, and pods that differ only in labels
        /// no term names share a label set without changing a verdict.
        #[test]
        fn host_terms_select_what_each_term_would(
            terms in proptest::collection::vec(
                (selector(), proptest::option::of(proptest::collection::vec(0..3usize, 0..3))),
                0..10,
            ),
            pods in proptest::collection::vec((0..3usize, pairs(), any::<bool>()), 1..12),
        ) {
            const NAMESPACES: [&str; 3] = ["default", "team-a", "team-b"];
            let selectors: Vec<Option<LabelSelector>> =
                terms.iter().map(|(s, _)| s.clone()).collect();
            let mut list: Vec<HostTerm<'_>> = Vec::new();
            let mut index: HashMap<HostTerm<'_>, u32> = HashMap::new();
            let mut ids = Vec::new();
            for (selector, (_, namespaces)) in selectors.iter().zip(&terms) {
                let term = HostTerm {
                    namespaces: match namespaces {
                        Some(l) => Namespaces::List(l.iter().map(|&n| NAMESPACES[n]).collect()),
                        None => Namespaces::All,
                    },
                    selector: selector.as_ref(),
                };
                let next = list.len() as u32;
                ids.push(*index.entry(term.clone()).or_insert_with(|| {
                    list.push(term.clone());
                    next
                }));
                prop_assert_eq!(&list[*ids.last().unwrap() as usize], &term);
            }
            // Equal terms, and only those, share an entry.
            for (i, a) in list.iter().enumerate() {
                for b in &list[i + 1..] {
                    prop_assert_ne!(a, b);
                }
            }
            let labels: Vec<(usize, SmallMap<CompactString>)> = pods
                .iter()
                .enumerate()
                .map(|(i, (ns, pairs, unique))| {
                    let mut l: SmallMap<CompactString> = pairs
                        .iter()
                        .map(|&(k, v)| (CompactString::from(KEYS[k]), CompactString::from(VALUES[v])))
                        .collect();
                    if *unique {
                        // A label no term names, different on every pod.
                        l.insert("pod-name".into(), format!("pod-{i}").into());
                    }
                    (*ns, l)
                })
                .collect();
            let labelled: Vec<(&str, &SmallMap<CompactString>)> =
                labels.iter().map(|(ns, l)| (NAMESPACES[*ns], l)).collect();
            let host = HostTerms::new(&list, &labelled);
            for (t, term) in list.iter().enumerate() {
                for (p, &(namespace, l)) in labelled.iter().enumerate() {
                    prop_assert_eq!(
                        host.selects(t as u32, p as u32),
                        term.selects(namespace, l),
                        "term {:?} on pod {} in {} with {:?}", term, p, namespace, l
                    );
                }
            }
        }
    }
}
