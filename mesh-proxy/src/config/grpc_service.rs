//! A `GrpcService` the proxy calls itself (span export, external
//! authorization): `envoy_grpc` naming a cluster, and a `timeout`. Calls
//! go to one of the cluster's endpoints and name it as their authority;
//! `envoy_grpc.authority` is not used.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::GrpcService;
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;

use super::{At, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcTarget {
    pub cluster: String,
    /// `None` when the service does not say.
    pub timeout: Option<Duration>,
}

pub(super) fn compile(service: &GrpcService, at: &At) -> Result<GrpcTarget, ConfigError> {
    if !service.initial_metadata.is_empty() {
        return Err(at.field("initial_metadata").unsupported("initial_metadata"));
    }
    if service.retry_policy.is_some() {
        return Err(at.field("retry_policy").unsupported("retry_policy"));
    }
    let cluster = match &service.target_specifier {
        Some(TargetSpecifier::EnvoyGrpc(grpc)) if !grpc.cluster_name.is_empty() => {
            let at = at.field("envoy_grpc");
            if grpc.retry_policy.is_some() {
                return Err(at.field("retry_policy").unsupported("retry_policy"));
            }
            grpc.cluster_name.clone()
        }
        Some(TargetSpecifier::GoogleGrpc(_)) => {
            return Err(at.field("google_grpc").unsupported("google_grpc"));
        }
        _ => {
            return Err(at
                .field("envoy_grpc")
                .field("cluster_name")
                .error("a cluster is required"));
        }
    };
    let timeout = service
        .timeout
        .as_ref()
        .map(|t| super::duration(t, &at.field("timeout")))
        .transpose()?;
    Ok(GrpcTarget { cluster, timeout })
}
