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
use crate::model::{Endpoint, NamedEndpoint, Service, ServicePort};

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
/// Addresses only, as EDS takes them.
pub fn by_locality(
    ctx: &Context,
    service: &Service,
    port: &ServicePort,
    labels: &BTreeMap<String, String>,
) -> Vec<LocalityLbEndpoints> {
    grouped(ctx, service, port, labels, false)
}

/// Like [`by_locality`], with the service's endpoints named by host too, for
/// a DNS cluster (whose proxy looks them up).
pub fn with_named(
    ctx: &Context,
    service: &Service,
    port: &ServicePort,
    labels: &BTreeMap<String, String>,
) -> Vec<LocalityLbEndpoints> {
    grouped(ctx, service, port, labels, true)
}

fn grouped(
    ctx: &Context,
    service: &Service,
    port: &ServicePort,
    labels: &BTreeMap<String, String>,
    named: bool,
) -> Vec<LocalityLbEndpoints> {
    // Each endpoint with its weight, by locality.
    let mut groups: BTreeMap<&str, Vec<(LbEndpoint, u32)>> = BTreeMap::new();
    for endpoint in ctx.endpoints(service) {
        if selects(labels, &endpoint.labels) {
            let member = (lb_endpoint(ctx, endpoint, port), weight(endpoint));
            groups.entry(&endpoint.locality).or_default().push(member);
        }
    }
    let names = if named {
        &service.named_endpoints[..]
    } else {
        &[]
    };
    for named in names {
        if selects(labels, &named.labels) {
            let member = (named_lb_endpoint(ctx, named, port), named.weight.max(1));
            groups.entry(&named.locality).or_default().push(member);
        }
    }
    groups
        .into_iter()
        .map(|(locality, members)| {
            let weight = members.iter().map(|(_, w)| w).sum();
            LocalityLbEndpoints {
                locality: Some(parse_locality(locality)),
                lb_endpoints: members.into_iter().map(|(e, _)| e).collect(),
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
    let number = endpoint_port(endpoint, port);
    let mesh_tls =
        endpoint.mesh_tls && offers_mtls(ctx, &endpoint.namespace, &endpoint.labels, number);
    lb_endpoint_at(
        &endpoint.address.to_string(),
        number,
        weight(endpoint),
        mesh_tls,
    )
}

/// A named endpoint as a DNS cluster's: its host, which the proxy looks up.
fn named_lb_endpoint(ctx: &Context, named: &NamedEndpoint, port: &ServicePort) -> LbEndpoint {
    let number = named
        .ports
        .get(&port.name)
        .copied()
        .unwrap_or(port.target_port.unwrap_or(port.number));
    let mesh_tls = named.mesh_tls && offers_mtls(ctx, &named.namespace, &named.labels, number);
    lb_endpoint_at(&named.host, number, named.weight.max(1), mesh_tls)
}

/// A port whose PeerAuthentication is DISABLE takes plain text only: auto
/// mTLS must not offer it TLS.
fn offers_mtls(
    ctx: &Context,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    port: u16,
) -> bool {
    ctx.peer_authentications.mode(namespace, labels, port) != MtlsMode::Disable
}

/// An endpoint at `address:port`; `mesh_tls` marks it for Istio's
/// `tlsMode: istio` transport socket match.
fn lb_endpoint_at(address: &str, port: u16, weight: u32, mesh_tls: bool) -> LbEndpoint {
    let mut metadata = Metadata::default();
    if mesh_tls {
        metadata.filter_metadata.insert(
            TRANSPORT_SOCKET_MATCH.to_owned(),
            structure(serde_json::json!({"tlsMode": "istio"})),
        );
    }
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
            address: Some(socket(address, port)),
            ..EnvoyEndpoint::default()
        })),
        health_status: HealthStatus::Healthy as i32,
        metadata: Some(metadata).filter(|m| !m.filter_metadata.is_empty()),
        load_balancing_weight: u32v(weight),
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
