//! meshctl's integration tests: the real binary against real files,
//! processes and a headless browser.
//!
//! One test binary for the crate, not one per file: every test binary links
//! the whole dependency tree, so each file of its own cost link time and
//! about 80 MB of disk.

mod common;
mod config;
mod crds;
mod dashboard;
mod local_mesh;
mod proxy_status;
mod traces;
mod validate;
