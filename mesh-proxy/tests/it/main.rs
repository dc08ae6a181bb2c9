//! mesh-proxy end to end: real mesh-proxy processes between real clients and
//! servers on loopback.
//!
//! One test binary for the crate, not one per file: every test binary links
//! the whole dependency tree, so each file of its own cost link time and
//! about 80 MB of disk.

mod access_log;
mod balancing;
mod connection_pool;
mod ext_authz;
mod fault;
mod grpc;
mod health;
mod http;
mod identity;
mod istio_metrics;
mod jwt;
mod listeners;
mod protocols;
mod rbac;
mod resilience;
mod support;
mod tcp;
mod tls;
mod tracing;
mod xds;
