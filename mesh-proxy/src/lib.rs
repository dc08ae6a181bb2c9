//! mesh-proxy: the sidecar and gateway proxy of the mesh.
//!
//! It runs from Envoy v3 configuration: a bootstrap file (see [`config`] for
//! the supported subset) and, when it names a control plane, xDS over ADS
//! ([`xds`]), swapped in live ([`live`]).
//! [`app::start`] binds every listener and returns the addresses actually
//! bound, so that tests can use port 0.

pub mod activity;
pub mod admin;
pub mod app;
pub mod config;
pub mod dns;
pub mod drain;
pub mod ext_authz;
pub mod grpc_call;
pub mod health;
pub mod http;
pub mod identity;
pub mod lb;
pub mod listener;
pub mod live;
pub mod logging;
pub mod outlier;
pub mod stats;
pub mod tcp;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod xds;

mod cli;
#[cfg(test)]
mod testing;

pub use cli::{Args, run};
