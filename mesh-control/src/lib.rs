//! mesh-control: the control plane. Istio config (VirtualService,
//! DestinationRule, Gateway, ServiceEntry, WorkloadEntry, ...) and the
//! service registry become a [`model::MeshSnapshot`]; [`translate`] turns the
//! snapshot into the Envoy xDS resources each proxy needs; [`ca`] issues the
//! workload certificates.

pub mod api;
pub mod app;
pub mod ca;
pub mod cli;
pub mod grpc;
pub mod jwks;
pub mod mesh_config;
pub mod metrics;
pub mod model;
pub mod monitoring;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod translate;
pub mod xds;
