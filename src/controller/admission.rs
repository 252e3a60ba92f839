//! How many analyses run at once, bounded by the memory they are expected to need rather
//! than by their number: many small clusters analyse side by side, a 5,000-node cluster
//! waits until it can run alone, and together they stay inside the operator's memory
//! limit.
//!
//! An analysis reserves, before it reads the customer cluster, [`BASE_MIB`] plus
//! [`BYTES_PER_OBJECT`] for each object it expects to read: as many as the last read of
//! that cluster found, or [`OBJECTS_PER_NODE`] per EC2 instance of the cluster when it was
//! never read since the operator started. It keeps the reservation until the analysis
//! ends. A reservation larger than the whole budget is cut to the budget, so the largest
//! cluster still runs, alone.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

/// Memory an analysis keeps per object read (the analysis's lean input, its share of
/// the snapshot's upload and of the analysis itself), in bytes. Measured by
/// `benches/operator_memory.rs` (BENCHMARKS.md, "Operator memory per analysis"): the
/// operator's peak resident set grew by 113 MiB for a 1,000-node, 30,000-pod cluster and
/// by 399 MiB for a 5,000-node, 150,000-pod one: 2.5-2.8 KiB per pod above
/// [`BASE_MIB`]; rounded up.
pub const BYTES_PER_OBJECT: u64 = 3 * 1024;

/// Memory an analysis needs whatever the cluster's size, in MiB: one listed page of 500
/// objects as JSON and as objects, and the snapshot's upload buffers
/// ([`crate::store::PARTS_IN_FLIGHT`] + 1 parts of 5 MiB).
pub const BASE_MIB: u32 = 32;

/// Objects expected per node of a cluster never read: 30 pods (the median pods per node
/// is far below EKS's max-pods figures) and their share of workloads.
pub const OBJECTS_PER_NODE: usize = 40;

/// The default budget, in MiB: with the chart's default memory limit (1 GiB), what the
/// idle operator and its watch caches of 1,000 tenants leave (BENCHMARKS.md).
pub const DEFAULT_BUDGET_MIB: u32 = 768;

/// The analyses' shared memory budget.
#[derive(Debug)]
pub struct AnalysisMemory {
    budget_mib: u32,
    permits: Semaphore,
    /// Objects the last read of each ManagedCluster (by UID) found.
    last_read: Mutex<HashMap<String, usize>>,
}

/// A reservation of the budget, returned when dropped.
#[derive(Debug)]
pub struct Reserved<'a> {
    /// What was reserved, in MiB.
    pub mib: u32,
    _permit: SemaphorePermit<'a>,
}

impl AnalysisMemory {
    /// A budget of `budget_mib` MiB (at least 1).
    pub fn new(budget_mib: u32) -> Self {
        let budget_mib = budget_mib.max(1);
        AnalysisMemory {
            budget_mib,
            permits: Semaphore::new(budget_mib as usize),
            last_read: Mutex::new(HashMap::new()),
        }
    }

    /// The budget, in MiB.
    pub fn budget_mib(&self) -> u32 {
        self.budget_mib
    }

    /// What an analysis of the ManagedCluster `uid`, whose EC2 inventory lists
    /// `instances` instances, is expected to need, in MiB, cut to the budget.
    pub fn estimate_mib(&self, uid: &str, instances: usize) -> u32 {
        let objects = self
            .last_read
            .lock()
            .expect("admission lock")
            .get(uid)
            .copied()
            .unwrap_or(instances.max(1) * OBJECTS_PER_NODE);
        let mib = (objects as u64 * BYTES_PER_OBJECT).div_ceil(1024 * 1024);
        (u64::from(BASE_MIB) + mib).min(u64::from(self.budget_mib)) as u32
    }

    /// Wait until the analysis of `uid` fits in the budget and reserve what it needs.
    pub async fn reserve(&self, uid: &str, instances: usize) -> Reserved<'_> {
        let mib = self.estimate_mib(uid, instances);
        let permit = self
            .permits
            .acquire_many(mib)
            .await
            .expect("the budget's semaphore is never closed");
        Reserved {
            mib,
            _permit: permit,
        }
    }

    /// Remember that a read of `uid` found `objects` objects (for its next estimate).
    pub fn read(&self, uid: &str, objects: usize) {
        self.last_read
            .lock()
            .expect("admission lock")
            .insert(uid.to_string(), objects);
    }

    /// Forget `uid` (its ManagedCluster is gone).
    pub fn forget(&self, uid: &str) {
        self.last_read.lock().expect("admission lock").remove(uid);
    }
}

impl Default for AnalysisMemory {
    fn default() -> Self {
        AnalysisMemory::new(DEFAULT_BUDGET_MIB)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn estimates_come_from_the_last_read_or_the_instances_and_fit_the_budget() {
        let memory = AnalysisMemory::new(600);
        // Never read: 40 objects per instance.
        let guess = BASE_MIB + (1000 * 40 * 3 * 1024u64).div_ceil(1 << 20) as u32;
        assert_eq!(memory.estimate_mib("a", 1000), guess);
        // Read: what the last read found.
        memory.read("a", 10_000);
        assert_eq!(memory.estimate_mib("a", 1000), BASE_MIB + 30);
        // Larger than the budget: the whole budget, so it still runs (alone).
        memory.read("a", 5_000_000);
        assert_eq!(memory.estimate_mib("a", 1000), 600);
        memory.forget("a");
        assert_eq!(memory.estimate_mib("a", 1000), guess);
        // An empty inventory still reserves for one node.
        assert_eq!(memory.estimate_mib("b", 0), BASE_MIB + 1);
    }

    #[tokio::test]
    async fn a_large_analysis_waits_for_the_budget_and_is_not_starved() {
        let memory = AnalysisMemory::new(100);
        let small = memory.reserve("small", 1).await;
        assert_eq!(small.mib, BASE_MIB + 1);
        memory.read("large", 1_000_000);
        let large = memory.reserve("large", 1);
        tokio::pin!(large);
        let waits = Duration::from_millis(50);
        assert!(
            tokio::time::timeout(waits, &mut large).await.is_err(),
            "the large analysis must wait for the budget"
        );
        // Reservations are served in order: a small one asked for later waits behind the
        // large one, so a stream of small clusters cannot starve a large one.
        let other = memory.reserve("other", 1);
        tokio::pin!(other);
        assert!(tokio::time::timeout(waits, &mut other).await.is_err());
        drop(small);
        let large = tokio::time::timeout(Duration::from_secs(5), large)
            .await
            .expect("runs once the budget is free");
        assert_eq!(large.mib, 100);
        assert!(tokio::time::timeout(waits, &mut other).await.is_err());
        drop(large);
        let other = tokio::time::timeout(Duration::from_secs(5), other)
            .await
            .expect("runs after the large one");
        assert_eq!(other.mib, BASE_MIB + 1);
    }
}
