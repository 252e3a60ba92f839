//! Consolidation: which nodes can be removed by moving their pods onto the others.
//!
//! # Algorithm (greedy node removal with first-fit-decreasing placement)
//!
//! 1. Every node gets a *usable* capacity: allocatable CPU and memory times
//!    `1 - headroom`, and its allocatable pod slots. Its free capacity is usable minus the
//!    requests of every pod on it now (DaemonSet, static and pinned pods included), so a
//!    node already above the headroom line receives nothing.
//! 2. A node is a *removal candidate* unless it is an EKS Fargate node (billed per pod;
//!    never a source nor a destination) or something pins it: a node annotation
//!    (`scale-down-disabled`, `do-not-disrupt`), an unknown price (the saving could not be
//!    stated), or a pinned pod on it — no controller, hostPath or memory-backed emptyDir,
//!    `safe-to-evict=false` / `do-not-disrupt`, required pod affinity on the hostname, a
//!    nodeSelector/affinity naming the node itself (hostname, `metadata.name`), or a
//!    PodDisruptionBudget that allows no disruption right now. DaemonSet and static pods
//!    never move: they disappear with their node.
//! 3. Candidates are tried one at a time in a fixed order: emptiest first (smallest
//!    dominant share of movable requests; ties: the more expensive node first, then by
//!    name). The order of *destinations* is the reverse: non-candidates first, then
//!    candidates from the fullest down, so pods flow toward nodes that will stay. The
//!    whole pass is repeated with two more candidate orders (priciest first, least load
//!    per dollar first), the three passes in parallel threads, and the pass with the
//!    largest saving is kept (ties: the order listed here).
//! 4. To try a candidate, its movable pods are sorted by dominant share, largest first,
//!    and each is placed on the *first* node in destination order that is not removed, is
//!    Ready and schedulable, has a known price (a node of unknown price is never treated
//!    as free room) and is not Fargate, whose class its signature allows (nodeSelector,
//!    required node affinity, taints/tolerations, operating system, zone lock for PVC
//!    pods and zone-level spread or anti-affinity), that has room for its CPU, memory and
//!    one pod slot, and that breaks no hostname anti-affinity in either direction. If every pod finds a place, the node
//!    is removed and the placements are kept; otherwise they are rolled back and the node
//!    stays. A nodegroup is never taken below its `minSize`.
//!
//! First fit is answered by one segment tree per node class over destination order,
//! holding the maximum free CPU, memory and pod slots of each subtree: the first fitting
//! node is found in O(log n) per allowed class instead of a scan, which keeps the whole
//! pass near-linear in pods.
//!
//! # Limits
//! Greedy removal can miss the optimum (the property test measures how often); requests,
//! not usage, are what is packed (as the scheduler does); preferred (soft) affinities are
//! ignored; zone-level spread/anti-affinity is honoured by keeping the pods involved in
//! their zone rather than by recomputing skew; local PersistentVolumes cannot be told
//! from EBS ones without PV objects in the snapshot, so they are treated as zonal.

use super::model::{HostTerms, Model, NodeM, PodM, Res, Role};

/// A segment tree over leaves holding free (cpu, mem, pods); internal nodes hold the
/// component-wise maximum of their subtree. The three figures of a tree node sit
/// together (24 bytes), so a step of the descent mostly reads one cache line, not three.
pub(crate) struct FitTree {
    size: usize,
    max: Vec<Res>,
}

/// What a leaf that may not receive pods holds: below any need.
const NO_ROOM: Res = Res {
    cpu: i64::MIN,
    mem: i64::MIN,
    pods: i64::MIN,
};

impl FitTree {
    /// A tree with `n` leaves, all unavailable.
    pub fn new(n: usize) -> FitTree {
        let size = n.max(1).next_power_of_two();
        FitTree {
            size,
            max: vec![NO_ROOM; 2 * size],
        }
    }

    /// Set a leaf's free capacity (`None`: may not receive pods).
    pub fn set(&mut self, leaf: usize, free: Option<Res>) {
        let mut i = leaf + self.size;
        self.max[i] = free.unwrap_or(NO_ROOM);
        while i > 1 {
            i /= 2;
            let (l, r) = (self.max[2 * i], self.max[2 * i + 1]);
            let m = Res {
                cpu: l.cpu.max(r.cpu),
                mem: l.mem.max(r.mem),
                pods: l.pods.max(r.pods),
            };
            if self.max[i] == m {
                // Every node above already holds what it would be recomputed to.
                break;
            }
            self.max[i] = m;
        }
    }

    /// The first leaf before `limit` with room for `need` that `accept` agrees to.
    pub fn first_fit(
        &self,
        need: Res,
        limit: usize,
        accept: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        self.descend(1, 0, self.size, need, limit, accept)
    }

    fn descend(
        &self,
        i: usize,
        lo: usize,
        hi: usize,
        need: Res,
        limit: usize,
        accept: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let have = self.max[i];
        if lo >= limit || have.cpu < need.cpu || have.mem < need.mem || have.pods < need.pods {
            return None;
        }
        if hi - lo == 1 {
            return accept(lo).then_some(lo);
        }
        let mid = (lo + hi) / 2;
        self.descend(2 * i, lo, mid, need, limit, accept)
            .or_else(|| self.descend(2 * i + 1, mid, hi, need, limit, accept))
    }
}

/// Why a node stays.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Blocker {
    /// An EKS Fargate node: billed per pod, nothing to remove.
    Fargate,
    /// Node-level annotation.
    NodePinned(&'static str),
    /// A pod (index) that must not move.
    PodPinned(u32),
    /// The node's price is unknown.
    UnknownPrice,
    /// Its nodegroup is at its minimum size.
    MinSize(i64),
    /// This pod (index) found no other node.
    NoRoom(u32),
}

/// Result of consolidation.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Removed nodes, in removal order.
    pub removed: Vec<u32>,
    /// (pod, destination node) for every pod that moves.
    pub moves: Vec<(u32, u32)>,
    /// Nodes that stay, with the reason.
    pub blocked: Vec<(u32, Blocker)>,
    /// Final node of every pod (removed nodes' DaemonSet/static pods keep theirs).
    pub node_of_pod: Vec<u32>,
    /// Per node: removed?
    pub is_removed: Vec<bool>,
}

/// Usable capacity of a node after headroom (CPU and memory only).
pub(crate) fn usable(node: &NodeM<'_>, headroom: f64) -> Res {
    let keep = 1.0 - headroom.clamp(0.0, 0.95);
    Res {
        cpu: (node.alloc.cpu as f64 * keep) as i64,
        mem: (node.alloc.mem as f64 * keep) as i64,
        pods: node.alloc.pods,
    }
}

/// A pod's size relative to a node: the larger of its CPU and memory shares.
pub(crate) fn dominant_share(req: Res, alloc: Res) -> f64 {
    let share = |r: i64, a: i64| {
        if a > 0 {
            r as f64 / a as f64
        } else if r > 0 {
            f64::INFINITY
        } else {
            0.0
        }
    };
    share(req.cpu, alloc.cpu).max(share(req.mem, alloc.mem))
}

/// First pinned pod on a node, if any.
fn pinned_pod(model: &Model<'_>, node: usize) -> Option<u32> {
    model.node_pods[node]
        .iter()
        .copied()
        .find(|&p| matches!(model.pods[p as usize].role, Role::Pinned(_)))
}

/// Would placing pod `p` on a node holding `members` break hostname anti-affinity (either
/// way)?
fn host_terms_ok(pods: &[PodM<'_>], terms: &HostTerms, p: u32, members: &[u32]) -> bool {
    let pod = &pods[p as usize];
    members.iter().all(|&q| {
        !pod.host_terms.iter().any(|&t| terms.selects(t, q))
            && !pods[q as usize]
                .host_terms
                .iter()
                .any(|&t| terms.selects(t, p))
    })
}

/// Order in which removal candidates are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Emptiest first (smallest dominant share of movable requests), pricier first on ties.
    Emptiest,
    /// Most expensive first, emptiest first on ties.
    Priciest,
    /// Least movable load per dollar first.
    LoadPerDollar,
}

/// Run consolidation on the model (see the module documentation) once per candidate
/// [`Order`] and keep the largest saving; ties go to the earlier order. Each pass is
/// cheap, and no single greedy order dominates: emptiest-first frees many small nodes,
/// priciest-first wins when a large node's pods fit on small ones.
pub(crate) fn consolidate(model: &Model<'_>, headroom: f64) -> Outcome {
    let saving = |o: &Outcome| {
        o.removed
            .iter()
            .filter_map(|&i| model.nodes[i as usize].hourly)
            .sum::<f64>()
    };
    // The passes only read the model, so they run side by side (inline when no thread
    // can be started); the winner is picked in the fixed order below, so the result does
    // not depend on which finishes first.
    let [first, rest @ ..] = std::thread::scope(|s| {
        [Order::Emptiest, Order::Priciest, Order::LoadPerDollar]
            .map(|order| {
                std::thread::Builder::new()
                    .name("consolidation".into())
                    .spawn_scoped(s, move || consolidate_ordered(model, headroom, order))
                    .map_err(|_| order)
            })
            .map(|pass| match pass {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(order) => consolidate_ordered(model, headroom, order),
            })
    });
    let mut best = first;
    for next in rest {
        if saving(&next) > saving(&best) + 1e-9 {
            best = next;
        }
    }
    best
}

/// One greedy pass with candidates tried in `order`.
pub(crate) fn consolidate_ordered(model: &Model<'_>, headroom: f64, order: Order) -> Outcome {
    let n = model.nodes.len();
    let mut free: Vec<Res> = model.nodes.iter().map(|nd| usable(nd, headroom)).collect();
    for p in &model.pods {
        free[p.node as usize].sub(p.req);
    }

    // Candidates and their order.
    let mut blocked: Vec<(u32, Blocker)> = Vec::new();
    let mut candidates: Vec<(f64, f64, u32)> = Vec::new();
    for (i, node) in model.nodes.iter().enumerate() {
        let blocker = if node.fargate {
            Some(Blocker::Fargate)
        } else if let Some(reason) = node.pin {
            Some(Blocker::NodePinned(reason))
        } else if let Some(p) = pinned_pod(model, i) {
            Some(Blocker::PodPinned(p))
        } else if node.hourly.is_none() {
            Some(Blocker::UnknownPrice)
        } else {
            None
        };
        match blocker {
            Some(b) => blocked.push((i as u32, b)),
            None => {
                let mut movable = Res::default();
                for &p in &model.node_pods[i] {
                    let pod = &model.pods[p as usize];
                    if pod.role == Role::Movable {
                        movable.add(pod.req);
                    }
                }
                candidates.push((
                    dominant_share(movable, node.alloc),
                    node.hourly.unwrap_or(0.0),
                    i as u32,
                ));
            }
        }
    }
    candidates.sort_by(|a, b| {
        let by_name = || {
            model.nodes[a.2 as usize]
                .name
                .cmp(model.nodes[b.2 as usize].name)
        };
        match order {
            Order::Emptiest => a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)),
            Order::Priciest => b.1.total_cmp(&a.1).then(a.0.total_cmp(&b.0)),
            Order::LoadPerDollar => (a.0 / a.1.max(1e-9))
                .total_cmp(&(b.0 / b.1.max(1e-9)))
                .then(b.1.total_cmp(&a.1)),
        }
        .then_with(by_name)
    });

    // Destination order: stayers first, then candidates fullest first.
    let mut is_candidate = vec![false; n];
    for c in &candidates {
        is_candidate[c.2 as usize] = true;
    }
    let mut order: Vec<u32> = (0..n as u32)
        .filter(|&i| !is_candidate[i as usize])
        .collect();
    order.extend(candidates.iter().rev().map(|c| c.2));
    let mut pos = vec![0usize; n];
    for (k, &node) in order.iter().enumerate() {
        pos[node as usize] = k;
    }

    // One tree per class, leaves in destination order.
    let mut class_nodes: Vec<Vec<u32>> = vec![Vec::new(); model.n_classes];
    for &node in &order {
        class_nodes[model.nodes[node as usize].class as usize].push(node);
    }
    let mut leaf = vec![0usize; n];
    let mut trees: Vec<FitTree> = Vec::with_capacity(model.n_classes);
    for members in &class_nodes {
        let mut t = FitTree::new(members.len());
        for (j, &node) in members.iter().enumerate() {
            leaf[node as usize] = j;
            let nd = &model.nodes[node as usize];
            t.set(j, nd.destination_ok.then_some(free[node as usize]));
        }
        trees.push(t);
    }
    let mut sig_classes: Vec<Option<Vec<u32>>> = vec![None; model.sigs.len()];

    let mut members: Vec<Vec<u32>> = model.node_pods.clone();
    // Per node: how many of its members carry hostname terms. Most pods have none, and a
    // pod without terms fits beside members without terms with no pairwise check.
    let has_terms = |p: u32| !model.pods[p as usize].host_terms.is_empty();
    let mut with_terms: Vec<u32> = members
        .iter()
        .map(|m| m.iter().filter(|&&p| has_terms(p)).count() as u32)
        .collect();
    let mut node_of_pod: Vec<u32> = model.pods.iter().map(|p| p.node).collect();
    let mut is_removed = vec![false; n];
    let mut removed = Vec::new();
    let mut group_nodes: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for node in &model.nodes {
        *group_nodes.entry(node.nodegroup.as_str()).or_default() += 1;
    }
    let mut tentative: Vec<(u32, u32)> = Vec::new();
    let mut moving: Vec<u32> = Vec::new();

    for &(_, _, c) in &candidates {
        let c = c as usize;
        let node = &model.nodes[c];
        if let Some(&min) = model.min_size.get(&node.nodegroup)
            && group_nodes[node.nodegroup.as_str()] <= min
        {
            blocked.push((c as u32, Blocker::MinSize(min)));
            continue;
        }
        let class = node.class as usize;
        trees[class].set(leaf[c], None);
        moving.clear();
        moving.extend(
            members[c]
                .iter()
                .copied()
                .filter(|&p| model.pods[p as usize].role == Role::Movable),
        );
        moving.sort_by(|&a, &b| {
            let (pa, pb) = (&model.pods[a as usize], &model.pods[b as usize]);
            dominant_share(pb.req, node.alloc)
                .total_cmp(&dominant_share(pa.req, node.alloc))
                .then(a.cmp(&b))
        });
        tentative.clear();
        let mut failed = None;
        for &p in &moving {
            let pod = &model.pods[p as usize];
            let classes = sig_classes[pod.sig as usize].get_or_insert_with(|| {
                (0..model.n_classes as u32)
                    .filter(|&k| model.allowed(pod.sig, k))
                    .collect()
            });
            let mut best: Option<(usize, u32)> = None;
            for &k in classes.iter() {
                let nodes_k = &class_nodes[k as usize];
                let limit = match best {
                    Some((bp, _)) => nodes_k.partition_point(|&m| pos[m as usize] < bp),
                    None => nodes_k.len(),
                };
                let mut accept = |j: usize| {
                    let dest = nodes_k[j] as usize;
                    (pod.host_terms.is_empty() && with_terms[dest] == 0)
                        || host_terms_ok(&model.pods, &model.host_terms, p, &members[dest])
                };
                if let Some(j) = trees[k as usize].first_fit(pod.req, limit, &mut accept) {
                    let dest = nodes_k[j];
                    best = Some((pos[dest as usize], dest));
                }
            }
            let Some((_, dest)) = best else {
                failed = Some(p);
                break;
            };
            let d = dest as usize;
            free[d].sub(pod.req);
            trees[model.nodes[d].class as usize].set(leaf[d], Some(free[d]));
            members[d].push(p);
            with_terms[d] += u32::from(has_terms(p));
            tentative.push((p, dest));
        }
        match failed {
            None => {
                is_removed[c] = true;
                removed.push(c as u32);
                *group_nodes
                    .get_mut(node.nodegroup.as_str())
                    .expect("counted") -= 1;
                members[c].retain(|&p| model.pods[p as usize].role != Role::Movable);
                with_terms[c] = members[c].iter().filter(|&&p| has_terms(p)).count() as u32;
                for &(p, dest) in &tentative {
                    node_of_pod[p as usize] = dest;
                }
            }
            Some(p) => {
                for &(q, dest) in tentative.iter().rev() {
                    let d = dest as usize;
                    free[d].add(model.pods[q as usize].req);
                    trees[model.nodes[d].class as usize].set(leaf[d], Some(free[d]));
                    let popped = members[d].pop();
                    debug_assert_eq!(popped, Some(q));
                    with_terms[d] -= u32::from(has_terms(q));
                }
                trees[class].set(leaf[c], node.destination_ok.then_some(free[c]));
                blocked.push((c as u32, Blocker::NoRoom(p)));
            }
        }
    }
    blocked.sort_by_key(|b| b.0);
    // A pod may have moved twice (onto a node removed later): report final destinations.
    let moves = (0..model.pods.len() as u32)
        .filter(|&p| node_of_pod[p as usize] != model.pods[p as usize].node)
        .map(|p| (p, node_of_pod[p as usize]))
        .collect();
    Outcome {
        removed,
        moves,
        blocked,
        node_of_pod,
        is_removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// After any sequence of updates, `first_fit` answers what a scan of the leaves
        /// in order answers (the early stop in `set` included).
        #[test]
        fn fit_tree_answers_as_a_scan_does(
            n in 1usize..40,
            updates in proptest::collection::vec(
                (0usize..40, proptest::option::of((0i64..8, 0i64..8, 0i64..3))),
                0..120,
            ),
            queries in proptest::collection::vec(((0i64..8, 0i64..8, 0i64..3), 0usize..45, 0usize..40), 1..20),
        ) {
            let mut tree = FitTree::new(n);
            let mut leaves: Vec<Option<Res>> = vec![None; n];
            for (leaf, free) in updates {
                let leaf = leaf % n;
                let free = free.map(|(cpu, mem, pods)| Res { cpu, mem, pods });
                tree.set(leaf, free);
                leaves[leaf] = free;
            }
            for ((cpu, mem, pods), limit, refused) in queries {
                let need = Res { cpu, mem, pods };
                let fits = |j: usize| {
                    leaves[j].is_some_and(|f| f.cpu >= cpu && f.mem >= mem && f.pods >= pods)
                };
                let want = (0..limit.min(n)).find(|&j| fits(j) && j != refused);
                prop_assert_eq!(tree.first_fit(need, limit, &mut |j| j != refused), want);
            }
        }
    }

    #[test]
    fn fit_tree_finds_first_fitting_leaf_before_limit() {
        let mut t = FitTree::new(5);
        let r = |cpu, mem| Some(Res { cpu, mem, pods: 1 });
        t.set(0, r(100, 100));
        t.set(1, r(500, 50));
        t.set(2, r(500, 500));
        t.set(3, None);
        t.set(4, r(1000, 1000));
        let need = Res {
            cpu: 400,
            mem: 400,
            pods: 1,
        };
        assert_eq!(t.first_fit(need, 5, &mut |_| true), Some(2));
        assert_eq!(t.first_fit(need, 2, &mut |_| true), None);
        assert_eq!(t.first_fit(need, 5, &mut |j| j != 2), Some(4));
        t.set(2, r(500, 300));
        assert_eq!(t.first_fit(need, 5, &mut |_| true), Some(4));
        assert_eq!(
            t.first_fit(
                Res {
                    cpu: 1,
                    mem: 1,
                    pods: 2
                },
                5,
                &mut |_| true
            ),
            None
        );
    }
}
