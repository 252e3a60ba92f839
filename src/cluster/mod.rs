//! The customer's EKS cluster as crossguard sees it: a read-only snapshot of nodes and
//! workloads (never Secrets or ConfigMaps).

pub mod rbac;
pub mod reader;
pub mod snapshot;
pub mod token;
