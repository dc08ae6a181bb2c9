//! The mesh's shared language.
//!
//! - [`networking`] and [`security`]: Istio's configuration kinds, read from the
//!   same YAML users write for Istio (every apiVersion Istio serves).
//! - [`load`]: reads multi-document YAML into typed resources, with the file and
//!   line of every problem.
//! - [`validate`]: the semantic rules Istio's validating webhook applies.
//! - [`crd`]: CustomResourceDefinitions generated from the types.
//! - [`names`]: SPIFFE ids, service host names, xDS cluster names and node ids.

pub mod ca;
pub mod crd;
pub mod duration;
pub mod emit;
pub mod envoy;
pub mod load;
pub mod names;
pub mod networking;
pub mod security;
pub mod selector;
pub mod time;
pub mod validate;

pub use load::Resource;

mod status;

pub use duration::Duration;
pub use status::IstioStatus;
