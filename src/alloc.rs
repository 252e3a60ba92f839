//! The operator's global allocator: the system allocator, with every block zeroed before
//! it is freed. Customer session credentials are sealed ([`crate::seal`]), but signing a
//! request needs them in plaintext for a moment, and the AWS SDK and its HTTP stack copy
//! the session token into buffers of their own (the `x-amz-security-token` header, the
//! serialized request) that they free without wiping. Zeroing on free is what keeps those
//! copies from lingering in freed heap memory between requests (`tests/sealed_memory.rs`
//! fails without it: three copies of the token, one per request). Its run-time cost,
//! measured by `benches/store.rs` (BENCHMARKS.md "Store encryption"): about 8% of an
//! analysis's store path at 5,000 nodes, which frees hundreds of MB of parse buffers.

use std::alloc::{GlobalAlloc, Layout, System};

/// [`System`], zeroing each block before freeing it. Reallocation is `GlobalAlloc`'s
/// default (allocate, copy, free the old block through [`ZeroOnFree::dealloc`]), so a
/// block that moves is wiped too.
pub struct ZeroOnFree;

// SAFETY: every call is forwarded to `System` with the caller's layout; the only addition
// is writing zeros into a block the caller owns and is about to give back.
unsafe impl GlobalAlloc for ZeroOnFree {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` points at `layout.size()` bytes this allocator handed out and the
        // caller still owns; black_box keeps the compiler from dropping the writes as dead
        // stores before free.
        unsafe {
            std::ptr::write_bytes(ptr, 0, layout.size());
            std::hint::black_box(ptr);
            System.dealloc(ptr, layout)
        }
    }
}

/// Arenas `crossguard run` and `crossguard analyze` let glibc's malloc keep
/// (`M_ARENA_MAX`). glibc gives threads up to 8 arenas per core (mallopt(3)); each keeps
/// the memory freed into it, so the tokio workers and the blocking pool (file store,
/// analyses) spread the transient memory of reconciles over up to 16 heaps on 2 cores and
/// the resident size drifts upward in arena-sized steps. Two arenas bound that drift: in
/// the scale benchmark (BENCHMARKS.md "Memory per tenant", 2026-12-01, two runs each, same
/// code otherwise) the resident size per tenant (less the AWS fake) from 100 to 300
/// tenants fell from 59 KiB to 26–32 KiB; from 300 to 1,000 it stayed at 38–44 KiB.
/// (Sixteen later runs of the 100 -> 300 step spread over 18.6–61.1 KiB, median 45.4:
/// BENCHMARKS.md "The 100->300 step, again".) `crossguard analyze` sets the same limit
/// before its reader starts worker threads: on the 203 MB dump of BENCHMARKS.md
/// "Analysis" its peak RSS went from 287,540–289,620 KiB to 281,304–283,236 KiB, and its
/// wall time stayed within the noise (1.15–1.37 s before, 1.17–1.36 s after; five
/// alternating runs each, 2026-12-01).
pub const OPERATOR_MALLOC_ARENAS: i32 = 2;

/// Limit glibc's malloc to `arenas` arenas; call it before the process starts threads
/// (the tokio runtime's, the dump reader's workers). Returns whether the limit was set:
/// false on other C libraries (musl has no arenas) or when glibc refused the value.
pub fn limit_malloc_arenas(arenas: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a tunable of the allocator; M_ARENA_MAX takes any
        // positive count.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = arenas;
        false
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_accepts_the_arena_limit() {
        assert!(super::limit_malloc_arenas(super::OPERATOR_MALLOC_ARENAS));
    }
}
