//! Endpoints of a cluster: a service's endpoints on one port, optionally
//! narrowed to a subset's labels, grouped by locality.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Locality, Metadata};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};

use mesh_api::security::peer_authentication::MtlsMode;

use super::context::{Context, endpoint_port, selects};
use super::proto::{socket, structure, u32v};
use crate::model::{Endpoint, Service, ServicePort};

/// Where an endpoint's metadata tells the cluster's `transport_socket_matches`
/// which transport to use.
const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";

/// The assignment of an EDS cluster.
pub fn assignment(
    name: &str,
    ctx: &Context,
    service: &Service,
    port: &ServicePort,
    labels: &BTreeMap<String, String>,
) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: by_locality(ctx, service, port, labels),
        ..ClusterLoadAssignment::default()
    }
}

/// The service's endpoints carrying `labels`, one group per locality (in
/// locality order), each group weighted by the sum of its endpoints' weights.
pub fn by_locality(
    ctx: &Context,
    service: &Service,
    port: &ServicePort,
    labels: &BTreeMap<String, String>,
) -> Vec<LocalityLbEndpoints> {
    let mut groups: BTreeMap<&str, Vec<&Endpoint>> = BTreeMap::new();
    for endpoint in ctx.endpoints(service) {
        if selects(labels, &endpoint.labels) {
            groups.entry(&endpoint.locality).or_default().push(endpoint);
        }
    }
    groups
        .into_iter()
        .map(|(locality, endpoints)| {
            let lb_endpoints: Vec<LbEndpoint> = endpoints
                .iter()
                .map(|e| lb_endpoint(ctx, e, port))
                .collect();
            let weight = endpoints.iter().map(|e| weight(e)).sum();
            LocalityLbEndpoints {
                locality: Some(parse_locality(locality)),
                lb_endpoints,
                load_balancing_weight: u32v(weight),
                ..LocalityLbEndpoints::default()
            }
        })
        .collect()
}

fn weight(endpoint: &Endpoint) -> u32 {
    endpoint.weight.max(1)
}

fn lb_endpoint(ctx: &Context, endpoint: &Endpoint, port: &ServicePort) -> LbEndpoint {
    let mut metadata = Metadata::default();
    let number = endpoint_port(endpoint, port);
    // A port whose PeerAuthentication is DISABLE takes plain text only:
    // auto mTLS must not offer it TLS.
    let disabled = ctx
        .peer_authentications
        .mode(&endpoint.namespace, &endpoint.labels, number)
        == MtlsMode::Disable;
    if endpoint.mesh_tls && !disabled {
        metadata.filter_metadata.insert(
            TRANSPORT_SOCKET_MATCH.to_owned(),
            structure(serde_json::json!({"tlsMode": "istio"})),
        );
    }
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
            address: Some(socket(&endpoint.address.to_string(), number)),
            ..EnvoyEndpoint::default()
        })),
        health_status: HealthStatus::Healthy as i32,
        metadata: Some(metadata).filter(|m| !m.filter_metadata.is_empty()),
        load_balancing_weight: u32v(weight(endpoint)),
    }
}

/// `region/zone/subzone`, any part possibly missing.
pub fn parse_locality(text: &str) -> Locality {
    let mut parts = text.splitn(3, '/').map(str::to_owned);
    Locality {
        region: parts.next().unwrap_or_default(),
        zone: parts.next().unwrap_or_default(),
        sub_zone: parts.next().unwrap_or_default(),
    }
}
