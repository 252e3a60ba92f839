//! Contract tests: each pins one behaviour of kube-apiserver that the fake
//! emulates, through the HTTP API (raw requests, kube-rs, kubectl).

mod binary;
mod common;
mod crd;
mod crud;
mod events;
mod kube_client;
mod kubectl;
mod list;
mod patch;
mod reviews;
mod watch;
