//! Clusters: one per visible service port (`outbound|9080||host`) and per
//! DestinationRule subset (`outbound|9080|v1|host`), the proxy's inbound
//! clusters (`inbound|9080||`), and the catch-alls `PassthroughCluster`,
//! `BlackHoleCluster` and `InboundPassthroughCluster`.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, circuit_breakers::Thresholds, cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    BindConfig, Metadata, SocketAddress, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use mesh_api::names::ClusterName;
use mesh_api::networking::destination_rule::{DestinationRuleSpec, Subset};
use mesh_api::networking::service_entry::Resolution;

use super::context::{Config, Context, InboundPort, PortKind, port_kind};
use super::policy::{self, DEFAULT_CONNECT_TIMEOUT_SECS, Policy};
use super::proto::{UNLIMITED, seconds, socket, structure, u32v};
use super::tls;
use super::{endpoint, locality};
use crate::model::{Service, ServicePort};

pub const PASSTHROUGH: &str = "PassthroughCluster";
pub const BLACKHOLE: &str = "BlackHoleCluster";
pub const INBOUND_PASSTHROUGH: &str = "InboundPassthroughCluster";
/// The address inbound passthrough connections come from, so that they are
/// not captured again (istiod's choice).
const INBOUND_PASSTHROUGH_BIND: &str = "127.0.0.6";

/// Clusters, and the load assignments of the EDS ones.
#[derive(Debug, Default)]
pub struct Clusters {
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
}

/// What every sidecar of one scope gets alike: the clusters of the visible
/// services with their load assignments, `BlackHoleCluster` and
/// `PassthroughCluster`.
pub fn outbound(ctx: &Context) -> Clusters {
    let mut out = Clusters::default();
    for service in &ctx.services {
        if service.resolution == Resolution::DynamicDns {
            continue;
        }
        let rule = ctx.destination_rule(service);
        for port in &service.ports {
            let Some(kind) = port_kind(port) else {
                continue;
            };
            outbound_clusters(ctx, service, port, kind, rule, &mut out);
        }
    }
    out.clusters.push(blackhole());
    // Without capture there is no original destination to pass through to.
    if ctx.sidecar.captures_outbound() {
        out.clusters.push(passthrough());
    }
    out.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    out.endpoints
        .sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    out
}

/// The proxy's own clusters: `inbound|<port>||` and `InboundPassthroughCluster`.
pub fn inbound(ctx: &Context) -> Vec<Cluster> {
    let mut clusters: Vec<Cluster> = ctx
        .inbound_ports()
        .iter()
        .map(|inbound| inbound_cluster(ctx, inbound))
        .collect();
    if ctx.sidecar.captures_inbound() {
        clusters.push(inbound_passthrough());
    }
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    clusters
}

/// The service port's cluster, and one per subset of its DestinationRule.
fn outbound_clusters(
    ctx: &Context,
    service: &Service,
    port: &ServicePort,
    kind: PortKind,
    rule: Option<Config<DestinationRuleSpec>>,
    out: &mut Clusters,
) {
    let top = Policy::merge(
        &Policy::default(),
        rule.and_then(|r| r.spec.traffic_policy.as_ref()),
        port.number,
    );
    let outbound = Outbound {
        ctx,
        service,
        port,
        kind,
        rule,
    };
    outbound.cluster(None, &top, out);
    for subset in rule.map_or(&[][..], |r| &r.spec.subsets[..]) {
        let merged = Policy::merge(&top, subset.traffic_policy.as_ref(), port.number);
        outbound.cluster(Some(subset), &merged, out);
    }
}

struct Outbound<'a> {
    ctx: &'a Context<'a>,
    service: &'a Service,
    port: &'a ServicePort,
    kind: PortKind,
    rule: Option<Config<'a, DestinationRuleSpec>>,
}

impl Outbound<'_> {
    fn cluster(&self, subset: Option<&Subset>, policy: &Policy, out: &mut Clusters) {
        let (ctx, service, port) = (self.ctx, self.service, self.port);
        let subset_name = subset.map_or("", |s| s.name.as_str());
        let name = ClusterName::outbound(port.number, subset_name, &service.hostname).to_string();
        let no_labels = BTreeMap::new();
        let labels = subset.map_or(&no_labels, |s| &s.labels);
        let mut c = Cluster {
            name: name.clone(),
            ..Cluster::default()
        };
        policy::apply_load_balancer(&mut c, policy);
        let original_dst = service.resolution == Resolution::None || policy.passthrough();
        if original_dst {
            c.cluster_discovery_type = discovery(cluster::DiscoveryType::OriginalDst);
            c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
            c.lb_config = None;
        } else if service.resolution == Resolution::Static {
            c.cluster_discovery_type = discovery(cluster::DiscoveryType::Eds);
            c.eds_cluster_config = Some(cluster::EdsClusterConfig {
                eds_config: Some(super::proto::ads()),
                service_name: name.clone(),
            });
            let mut assignment = endpoint::assignment(&name, ctx, service, port, labels);
            locality::apply(&mut assignment.endpoints, &ctx.proxy.locality, policy);
            out.endpoints.push(assignment);
        } else {
            let kind = if service.resolution == Resolution::DnsRoundRobin {
                cluster::DiscoveryType::LogicalDns
            } else {
                cluster::DiscoveryType::StrictDns
            };
            c.cluster_discovery_type = discovery(kind);
            c.dns_lookup_family = cluster::DnsLookupFamily::V4Only as i32;
            let mut endpoints = self.dns_endpoints(labels);
            locality::apply(&mut endpoints, &ctx.proxy.locality, policy);
            c.load_assignment = Some(ClusterLoadAssignment {
                cluster_name: name.clone(),
                endpoints,
                ..ClusterLoadAssignment::default()
            });
        }
        let http2 = matches!(self.kind, PortKind::Http { http2: true });
        policy::apply_connection_pool(&mut c, policy, http2);
        policy::apply_outlier_detection(&mut c, policy);
        locality::apply_to_cluster(&mut c, policy);
        tls::apply(
            &mut c,
            ctx,
            service,
            port.number,
            subset_name,
            self.kind,
            policy.tls.as_ref(),
        );
        c.metadata = Some(self.metadata(subset_name));
        out.clusters.push(c);
    }

    /// A DNS cluster resolves its endpoints' addresses, or the service's
    /// host name when it has none.
    fn dns_endpoints(&self, labels: &BTreeMap<String, String>) -> Vec<LocalityLbEndpoints> {
        let groups = endpoint::with_named(self.ctx, self.service, self.port, labels);
        if !groups.is_empty() || !labels.is_empty() {
            return groups;
        }
        vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(
                    envoy_types::pb::envoy::config::endpoint::v3::Endpoint {
                        address: Some(socket(&self.service.hostname, self.port.number)),
                        ..Default::default()
                    },
                )),
                load_balancing_weight: u32v(1),
                ..LbEndpoint::default()
            }],
            ..LocalityLbEndpoints::default()
        }]
    }

    /// `filter_metadata.istio`: the service (which Istio's metrics report
    /// as the destination), the port, the subset and the DestinationRule.
    fn metadata(&self, subset: &str) -> Metadata {
        let mut istio = serde_json::json!({
            "services": [service_ref(self.ctx, self.service)],
            "default_original_port": self.port.number,
        });
        if !subset.is_empty() {
            istio["subset"] = subset.into();
        }
        if let Some(rule) = self.rule {
            istio["config"] = format!(
                "/apis/networking.istio.io/v1/namespaces/{}/destination-rule/{}",
                rule.namespace, rule.name
            )
            .into();
        }
        istio_metadata(istio)
    }
}

fn istio_metadata(istio: serde_json::Value) -> Metadata {
    Metadata {
        filter_metadata: [("istio".to_owned(), structure(istio))].into(),
        ..Metadata::default()
    }
}

/// `{host, name, namespace}` of a service, as Istio's telemetry reads it.
/// The name is the first label of a `<name>.<namespace>.svc.<domain>`
/// host, else the whole host (Istio names ServiceEntry services so).
pub fn service_ref(ctx: &Context, service: &Service) -> serde_json::Value {
    let suffix = format!(".svc.{}", ctx.domain());
    let name = match service.hostname.strip_suffix(&suffix) {
        Some(short) => short.split('.').next().unwrap_or(short),
        None => service.hostname.as_str(),
    };
    serde_json::json!({
        "host": service.hostname,
        "name": name,
        "namespace": service.namespace,
    })
}

fn discovery(kind: cluster::DiscoveryType) -> Option<cluster::ClusterDiscoveryType> {
    Some(cluster::ClusterDiscoveryType::Type(kind as i32))
}

fn unlimited() -> Option<CircuitBreakers> {
    Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: u32v(UNLIMITED),
            max_pending_requests: u32v(UNLIMITED),
            max_requests: u32v(UNLIMITED),
            max_retries: u32v(UNLIMITED),
            track_remaining: true,
            ..Thresholds::default()
        }],
        ..CircuitBreakers::default()
    })
}

/// `inbound|<port>||`: the local application. istiod makes this an
/// ORIGINAL_DST cluster bound to 127.0.0.6 (the pod's own IP is the
/// original destination); here the application listens beside the proxy,
/// so the cluster is STATIC to `127.0.0.1:<port>`, or to the Sidecar
/// ingress port's `defaultEndpoint`.
fn inbound_cluster(ctx: &Context, inbound: &InboundPort) -> Cluster {
    let name = ClusterName::inbound(inbound.port).to_string();
    let services: Vec<serde_json::Value> = inbound
        .services
        .iter()
        .map(|s| service_ref(ctx, s))
        .collect();
    Cluster {
        name: name.clone(),
        cluster_discovery_type: discovery(cluster::DiscoveryType::Static),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        circuit_breakers: unlimited(),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(
                        envoy_types::pb::envoy::config::endpoint::v3::Endpoint {
                            address: Some(super::sidecar_scope::inbound_address(ctx, inbound)),
                            ..Default::default()
                        },
                    )),
                    ..LbEndpoint::default()
                }],
                ..LocalityLbEndpoints::default()
            }],
            ..ClusterLoadAssignment::default()
        }),
        metadata: Some(istio_metadata(serde_json::json!({"services": services}))),
        ..Cluster::default()
    }
}

/// Traffic to hosts the registry does not know, sent where it was going.
fn passthrough() -> Cluster {
    Cluster {
        name: PASSTHROUGH.into(),
        cluster_discovery_type: discovery(cluster::DiscoveryType::OriginalDst),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        circuit_breakers: unlimited(),
        ..Cluster::default()
    }
}

/// Nowhere: a static cluster with no endpoints.
fn blackhole() -> Cluster {
    Cluster {
        name: BLACKHOLE.into(),
        cluster_discovery_type: discovery(cluster::DiscoveryType::Static),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        ..Cluster::default()
    }
}

/// Inbound traffic to ports no service declares, passed to the application.
fn inbound_passthrough() -> Cluster {
    Cluster {
        name: INBOUND_PASSTHROUGH.into(),
        cluster_discovery_type: discovery(cluster::DiscoveryType::OriginalDst),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        circuit_breakers: unlimited(),
        upstream_bind_config: Some(BindConfig {
            source_address: Some(SocketAddress {
                address: INBOUND_PASSTHROUGH_BIND.into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                ..SocketAddress::default()
            }),
            ..BindConfig::default()
        }),
        ..Cluster::default()
    }
}
