//! Test support: what crossguard's tests and benchmarks share, kept out of release builds.
//!
//! Compiled only for the crate's own unit tests and with the `testing` feature, which the
//! dev-dependency of the crate on itself turns on for integration tests and benches;
//! `cargo build --release` leaves it out, so nothing here ships in the operator.
//!
//! - [`synthetic`]: realistic, deterministic clusters for analysis tests and benchmarks.
//! - [`dump`]: typed snapshot <-> `kubectl get -o json` `List`, for tests and benchmarks.

pub mod dump;
pub mod synthetic;
