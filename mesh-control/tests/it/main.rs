//! mesh-control's integration tests: its API, CA, xDS server, configuration
//! pipeline, and the local mesh end to end.
//!
//! One test binary for the crate, not one per file: every test binary links
//! the whole dependency tree, so each file of its own cost link time and
//! about 80 MB of disk.

mod api;
mod binary;
mod ca;
mod common;
mod directory;
mod e2e;
mod golden;
mod grpc_xds;
mod mesh_proxy_accepts;
mod monitoring;
mod snapshot;
mod support;
mod xds;
