//! Right-sizing: a cheaper instance type for a nodegroup that still fits its workload.
//!
//! # Algorithm
//! Runs per nodegroup on the nodes that remain after consolidation, with the pods they
//! then hold. DaemonSet and static pods become a per-node overhead (the largest seen on
//! any node of the group); every other pod is workload, including pinned pods, because
//! replacing the nodes replaces them too (the reasoning says how many nodes need care).
//! For each type of the same architecture priced for the group's operating system in its
//! region, of a family in `AnalysisSettings::rightsizing_families` and not bare metal
//! (burstable `t*` families only when the group already runs them):
//!
//! 1. estimate its allocatable with the EKS AMI reservation formula (CPU: 6% of the first
//!    core, 1% of the second, 0.5% of the next two, 0.25% above four; memory: 255 MiB +
//!    11 MiB per max pod + 100 MiB eviction threshold) and apply the headroom;
//! 2. require the largest pod (by CPU and by memory) to fit on one node beside the
//!    DaemonSet overhead, and every pod's node constraints to accept a node of that type
//!    (a selector on the instance type label rules a type out);
//! 3. take a volume lower bound on the node count; types whose lower bound cannot beat
//!    the current cost by the minimum saving are dropped;
//! 4. for the few cheapest remaining types, pack the workload with first-fit-decreasing
//!    (the same segment tree as consolidation) to get a real node count, never below the
//!    nodegroup's `minSize`.
//!
//! The cheapest verified type wins if it saves at least `min_rightsizing_saving` of the
//! group's cost. Hostname anti-affinity and zone balance are not modelled here; the
//! estimate assumes the new nodegroup spans the same zones.

use std::collections::{BTreeMap, BTreeSet};

use super::AnalysisSettings;
use super::consolidation::{FitTree, Outcome, dominant_share};
use super::model::{LABEL_INSTANCE_TYPE, Model, Res, Role};
use super::prices::{InstanceTypeInfo, PriceTable, family};

/// A right-sizing finding for one nodegroup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RightSizing {
    pub nodegroup: String,
    pub from_types: Vec<String>,
    pub from_nodes: usize,
    pub from_hourly: f64,
    pub to_type: String,
    pub to_nodes: usize,
    pub to_hourly: f64,
    pub reasoning: Vec<String>,
}

const MIB: i64 = 1 << 20;

/// Allocatable of a fresh EKS node of this type (AMI defaults), before headroom.
pub(crate) fn estimated_allocatable(info: &InstanceTypeInfo) -> Res {
    let cores = i64::from(info.vcpus);
    // Reserved millicores, in tenths of a millicore to keep 0.25% exact.
    let tenths: i64 = (0..cores)
        .map(|i| match i {
            0 => 600,
            1 => 100,
            2 | 3 => 50,
            _ => 25,
        })
        .sum();
    let max_pods = i64::from(info.max_pods.unwrap_or(110));
    let mem = info.memory_mib as i64 * MIB - (255 + 11 * max_pods + 100) * MIB;
    Res {
        cpu: cores * 1000 - (tenths + 9) / 10,
        mem: mem.max(0),
        pods: max_pods,
    }
}

/// Right-sizing per nodegroup; see the module documentation.
pub(crate) fn rightsize(
    model: &Model<'_>,
    outcome: &Outcome,
    prices: &PriceTable,
    settings: &AnalysisSettings,
) -> Vec<RightSizing> {
    let mut groups: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (i, node) in model.nodes.iter().enumerate() {
        if !outcome.is_removed[i] {
            groups
                .entry(node.nodegroup.as_str())
                .or_default()
                .push(i as u32);
        }
    }
    let mut pods_on: Vec<Vec<u32>> = vec![Vec::new(); model.nodes.len()];
    for (p, &node) in outcome.node_of_pod.iter().enumerate() {
        if !outcome.is_removed[node as usize] {
            pods_on[node as usize].push(p as u32);
        }
    }
    let keep = 1.0 - settings.headroom.clamp(0.0, 0.95);
    // Groups are independent: each is sized on its own thread (inline when none can be
    // started), and the findings are collected in group order, so the report does not
    // depend on which finishes first.
    let one = |group: &str, nodes: Vec<u32>| -> Option<RightSizing> {
        if group == super::model::NO_NODEGROUP {
            return None;
        }
        let first = &model.nodes[nodes[0] as usize];
        let types: BTreeSet<&str> = nodes
            .iter()
            .filter_map(|&n| model.nodes[n as usize].instance_type.as_deref())
            .collect();
        // One operating system per group: its types are priced at that system's rates.
        let all_priced = nodes.iter().all(|&n| {
            let nd = &model.nodes[n as usize];
            nd.hourly.is_some()
                && !nd.spot
                && !nd.fargate
                && nd.instance_type.is_some()
                && nd.os == first.os
        });
        let archs: BTreeSet<&str> = types
            .iter()
            .filter_map(|t| prices.catalog.get(t))
            .map(|i| i.architecture.as_str())
            .collect();
        if !all_priced || archs.len() != 1 {
            return None;
        }
        let arch = *archs.iter().next().expect("one arch");
        let burstable_now = types.iter().any(|t| family(t).starts_with('t'));
        let current: f64 = nodes
            .iter()
            .map(|&n| model.nodes[n as usize].hourly.unwrap_or(0.0))
            .sum();

        let mut overhead = Res::default();
        let mut work: Vec<(Res, u32, u32)> = Vec::new(); // (req, sig, class)
        let mut pinned_nodes = 0;
        for &n in &nodes {
            let mut ds = Res::default();
            let mut pinned = false;
            for &p in &pods_on[n as usize] {
                let pod = &model.pods[p as usize];
                match pod.role {
                    Role::DaemonSet | Role::Static => ds.add(pod.req),
                    Role::Pinned(_) => {
                        pinned = true;
                        work.push((pod.req, pod.sig, model.nodes[n as usize].class));
                    }
                    Role::Movable => work.push((pod.req, pod.sig, model.nodes[n as usize].class)),
                }
            }
            pinned_nodes += usize::from(pinned);
            overhead = Res {
                cpu: overhead.cpu.max(ds.cpu),
                mem: overhead.mem.max(ds.mem),
                pods: overhead.pods.max(ds.pods),
            };
        }
        let mut total = Res::default();
        let (mut max_cpu, mut max_mem) = (0, 0);
        for w in &work {
            total.add(w.0);
            max_cpu = max_cpu.max(w.0.cpu);
            max_mem = max_mem.max(w.0.mem);
        }
        let sig_classes: BTreeSet<(u32, u32)> = work.iter().map(|w| (w.1, w.2)).collect();
        let min_nodes = model.min_size.get(group).copied().unwrap_or(0).max(1) as usize;
        let threshold = current * (1.0 - settings.min_rightsizing_saving);

        // Feasible types with their lower-bound cost.
        let mut options: Vec<(f64, &str, &InstanceTypeInfo, f64, Res)> = Vec::new();
        for (name, info, hourly) in prices.priced_types_for(first.os, &first.region) {
            if info.architecture != arch || (types.len() == 1 && types.contains(name)) {
                continue;
            }
            if !settings
                .rightsizing_families
                .iter()
                .any(|f| f == family(name))
                || name.contains(".metal")
            {
                continue;
            }
            if family(name).starts_with('t') && !burstable_now {
                continue;
            }
            let alloc = estimated_allocatable(info);
            let cap = Res {
                cpu: (alloc.cpu as f64 * keep) as i64 - overhead.cpu,
                mem: (alloc.mem as f64 * keep) as i64 - overhead.mem,
                pods: alloc.pods - overhead.pods,
            };
            if cap.cpu < max_cpu
                || cap.mem < max_mem
                || cap.pods < 1
                || cap.cpu <= 0
                || cap.mem <= 0
            {
                continue;
            }
            let constraints_ok = sig_classes.iter().all(|&(sig, class)| {
                let sig = &model.sigs[sig as usize];
                if !sig.mentions_instance_type() {
                    return true;
                }
                let rep = model
                    .nodes
                    .iter()
                    .find(|nd| nd.class == class)
                    .expect("class has a node");
                sig.allows(
                    |k| {
                        if k == LABEL_INSTANCE_TYPE || k == "beta.kubernetes.io/instance-type" {
                            Some(name)
                        } else {
                            rep.label(k)
                        }
                    },
                    rep.taints,
                )
            });
            if !constraints_ok {
                continue;
            }
            let div = |a: i64, b: i64| ((a + b - 1) / b).max(0) as usize;
            let lower = div(total.cpu, cap.cpu)
                .max(div(total.mem, cap.mem))
                .max(div(total.pods, cap.pods))
                .max(min_nodes);
            let cost = lower as f64 * hourly;
            if cost < threshold {
                options.push((cost, name, info, hourly, cap));
            }
        }
        options.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));

        let mut best: Option<(f64, &str, usize, f64)> = None;
        for &(_, name, _, hourly, cap) in options.iter().take(4) {
            let bins = ffd_bins(&work, cap).max(min_nodes);
            let cost = bins as f64 * hourly;
            if cost < threshold && best.is_none_or(|b| cost < b.0) {
                best = Some((cost, name, bins, hourly));
            }
        }
        if let Some((cost, to, bins, hourly)) = best {
            let from: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            let to_info = prices.catalog.get(to).expect("priced types have info");
            let mut reasoning = vec![
                format!(
                    "After consolidation the group runs {} of {} costing ${:.4}/h; its workload requests {} CPU and {} of memory in {}, the largest pod {} CPU / {}.",
                    super::report::count(nodes.len(), "node", "nodes"),
                    from.join(", "),
                    current,
                    fmt_cpu(total.cpu),
                    fmt_mem(total.mem),
                    super::report::count(work.len(), "pod", "pods"),
                    fmt_cpu(max_cpu),
                    fmt_mem(max_mem)
                ),
                format!(
                    "First-fit-decreasing packs it onto {bins} × {to} ({} vCPU, {} memory, {arch}; ${hourly:.4}/h each) = ${cost:.4}/h, keeping {:.0}% headroom and {} CPU / {} per node for DaemonSets.",
                    to_info.vcpus,
                    fmt_mem(to_info.memory_mib as i64 * 1024 * 1024),
                    settings.headroom * 100.0,
                    fmt_cpu(overhead.cpu),
                    fmt_mem(overhead.mem)
                ),
            ];
            if pinned_nodes > 0 {
                reasoning.push(format!(
                    "{} pods that pin them (no controller, local storage or a blocking PDB); replace those in a maintenance window.",
                    super::report::count(pinned_nodes, "node holds", "nodes hold")
                ));
            }
            return Some(RightSizing {
                nodegroup: group.to_string(),
                from_types: from,
                from_nodes: nodes.len(),
                from_hourly: current,
                to_type: to.to_string(),
                to_nodes: bins,
                to_hourly: cost,
                reasoning,
            });
        }
        None
    };
    std::thread::scope(|s| {
        let one = &one;
        let running: Vec<_> = groups
            .into_iter()
            .map(|(group, nodes)| {
                std::thread::Builder::new()
                    .name("rightsizing".into())
                    .spawn_scoped(s, {
                        let nodes = nodes.clone();
                        move || one(group, nodes)
                    })
                    .map_err(|_| (group, nodes))
            })
            .collect();
        running
            .into_iter()
            .filter_map(|r| match r {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err((group, nodes)) => one(group, nodes),
            })
            .collect()
    })
}

/// Number of identical bins of capacity `cap` first-fit-decreasing needs for `work`.
fn ffd_bins(work: &[(Res, u32, u32)], cap: Res) -> usize {
    let mut order: Vec<usize> = (0..work.len()).collect();
    order.sort_by(|&a, &b| {
        dominant_share(work[b].0, cap)
            .total_cmp(&dominant_share(work[a].0, cap))
            .then(a.cmp(&b))
    });
    let mut tree = FitTree::new(work.len().max(1));
    let mut free: Vec<Res> = Vec::new();
    for i in order {
        let need = work[i].0;
        let j = match tree.first_fit(need, free.len(), &mut |_| true) {
            Some(j) => j,
            None => {
                free.push(cap);
                free.len() - 1
            }
        };
        free[j].sub(need);
        tree.set(j, Some(free[j]));
    }
    free.len()
}

/// "1.5" style CPU from millicores.
pub(crate) fn fmt_cpu(millis: i64) -> String {
    let s = format!("{:.2}", millis as f64 / 1000.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// "12.5 GiB" style memory from bytes.
pub(crate) fn fmt_mem(bytes: i64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eks_reservation_formula() {
        let info = |vcpus, memory_mib, max_pods| InstanceTypeInfo {
            vcpus,
            memory_mib,
            architecture: "amd64".into(),
            max_pods: Some(max_pods),
        };
        // m5.large: 2 vCPU → 70m reserved; 8 GiB − (255 + 11×29 + 100) MiB.
        assert_eq!(
            estimated_allocatable(&info(2, 8192, 29)),
            Res {
                cpu: 1930,
                mem: (8192 - 674) * MIB,
                pods: 29
            }
        );
        // 16 vCPU: 60 + 10 + 5 + 5 + 12 × 2.5 = 110m.
        assert_eq!(
            estimated_allocatable(&info(16, 65536, 234)).cpu,
            16000 - 110
        );
    }

    #[test]
    fn ffd_counts_bins() {
        let cap = Res {
            cpu: 1000,
            mem: 1000,
            pods: 10,
        };
        let w = |cpu| {
            (
                Res {
                    cpu,
                    mem: 1,
                    pods: 1,
                },
                0,
                0,
            )
        };
        assert_eq!(ffd_bins(&[w(600), w(600), w(400), w(400)], cap), 2);
        assert_eq!(ffd_bins(&[w(600), w(600), w(600)], cap), 3);
        assert_eq!(ffd_bins(&[], cap), 0);
        let many: Vec<_> = (0..25).map(|_| w(1)).collect();
        assert_eq!(ffd_bins(&many, cap), 3, "pod slots limit bins too");
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_cpu(1500), "1.5");
        assert_eq!(fmt_cpu(2000), "2");
        assert_eq!(fmt_cpu(250), "0.25");
        assert_eq!(fmt_mem(3 << 29), "1.5 GiB");
    }
}
