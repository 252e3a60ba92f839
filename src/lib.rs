//! crossguard: a Kubernetes operator that reaches customers' AWS accounts and EKS clusters
//! through cross-account IAM roles, reads them read-only by default, and reports what the
//! clusters cost. See docs/architecture.md for the modules and the flow of a reconcile; each
//! step of it is one module here.

pub mod alloc;
pub mod analysis;
pub mod api;
pub mod audit;
pub mod automation;
pub mod aws;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod controller;
pub mod crdgen;
pub mod credentials;
pub mod dashboard;
pub mod history;
pub mod http;
pub mod keyaudit;
pub mod leader;
pub mod metrics;
pub mod onboarding;
pub mod onboarding_complete;
pub mod posture;
pub mod sanitize;
pub mod seal;
pub mod shard;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// kube and the AWS SDK each bring a rustls crypto backend; pick one for the process.
/// Call once before building any client (repeated calls are harmless).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
