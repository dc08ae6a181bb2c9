//! Proxyless gRPC clients (node metadata `GENERATOR=grpc`), as istiod's
//! `grpcgen`: the shape gRPC's xDS client reads (gRFC A27, A28, A31, A44).
//!
//! A channel to `xds:///reviews.default.svc.cluster.local:9080` subscribes
//! LDS to that name; it gets an `api_listener` Listener whose connection
//! manager points over RDS to `outbound|9080||reviews.default.svc.cluster.local`
//! (istiod names the route configuration after the service's cluster). The
//! route configuration has one virtual host, the service's, with the routes
//! of its VirtualService; the clusters they name are EDS clusters, one per
//! service port and per DestinationRule subset, with the subset's endpoints.
//!
//! The client names everything it subscribes to, and the ADS server sends
//! only those, so listeners are built here for every visible service port
//! under every name a client may dial: the FQDN and, for
//! `<name>.<ns>.svc.<domain>` hosts, `<name>.<ns>`, `<name>.<ns>.svc` and,
//! from the same namespace, `<name>` — each followed by `:<port>`.
//!
//! What gRPC reads of a route: path, prefix and regex matches, header
//! matches, weighted clusters, `max_stream_duration` (the VirtualService
//! timeout), retries on gRPC status conditions (`cancelled`,
//! `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`)
//! with `num_retries` and back-off, and fault injection. Mirrors, hash
//! policies and CORS are left off, since gRPC acts on none of them (and
//! refuses a per-route config for a filter it does not know).
//!
//! Left out: only STATIC (EDS) services get resources; clusters balance
//! ROUND_ROBIN whatever the DestinationRule says (no ring hash, no least
//! request), carry no TLS (istiod's `grpcgen` only turns on ISTIO_MUTUAL
//! when asked, with certificate providers we do not serve) and no outlier
//! detection; of the connection pool only `http2MaxRequests` applies (gRFC
//! A32); server-side listeners (`xds.istio.io/grpc/lds/inbound/...`) are
//! not built.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, circuit_breakers::Thresholds, cluster,
};
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use mesh_api::names::ClusterName;
use mesh_api::networking::service_entry::Resolution;

use super::Resources;
use super::context::{Context, port_kind};
use super::filters::FAULT;
use super::http_route::{self, destination_policy};
use super::policy::{self, Policy};
use super::proto::{ads, any, seconds, u32v};
use super::{endpoint, route as routes};
use crate::model::{Service, ServicePort};

const ROUTER: &str = "envoy.filters.http.router";

/// Every resource a proxyless gRPC client may ask for.
pub fn build(ctx: &Context) -> Resources {
    let mut out = Resources::default();
    for service in &ctx.services {
        if service.resolution != Resolution::Static {
            continue;
        }
        for port in &service.ports {
            if port_kind(port).is_none() {
                continue;
            }
            let route_name = ClusterName::outbound(port.number, "", &service.hostname).to_string();
            out.listeners.extend(
                dial_names(ctx, service)
                    .into_iter()
                    .map(|host| api_listener(format!("{host}:{}", port.number), &route_name)),
            );
            out.routes
                .push(route_configuration(ctx, service, port.number, route_name));
            clusters(ctx, service, port, &mut out);
        }
    }
    out.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    out.routes.sort_by(|a, b| a.name.cmp(&b.name));
    out.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    out.endpoints
        .sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    out
}

/// The host names a client may dial the service by (without the port).
fn dial_names(ctx: &Context, service: &Service) -> Vec<String> {
    let host = &service.hostname;
    let mut names = vec![host.clone()];
    if let Some(short) = host.strip_suffix(&format!(".svc.{}", ctx.domain()))
        && let Some((name, namespace)) = short.split_once('.')
    {
        if namespace == ctx.proxy.namespace {
            names.push(name.to_owned());
        }
        names.push(short.to_owned());
        names.push(format!("{short}.svc"));
    }
    names
}

/// A listener gRPC resolves a target with: an HTTP connection manager
/// (fault injection, then the router) that reads its routes over RDS.
fn api_listener(name: String, route_name: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.clone(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_name.to_owned(),
        })),
        http_filters: vec![
            http_filter(FAULT, any(&HttpFault::default())),
            http_filter(ROUTER, any(&Router::default())),
        ],
        ..HttpConnectionManager::default()
    };
    Listener {
        name,
        api_listener: Some(ApiListener {
            api_listener: Some(any(&hcm)),
        }),
        ..Listener::default()
    }
}

fn http_filter(name: &str, config: envoy_types::pb::google::protobuf::Any) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..HttpFilter::default()
    }
}

/// The service's one virtual host on `port`, routed by its VirtualService
/// or all to the service's cluster.
fn route_configuration(
    ctx: &Context,
    service: &Service,
    port: u16,
    name: String,
) -> RouteConfiguration {
    let routes = match ctx.virtual_service(service) {
        Some(vs) => http_route::routes(ctx, vs, port),
        None => vec![default_route(ctx, service, port)],
    };
    RouteConfiguration {
        name,
        virtual_hosts: vec![VirtualHost {
            name: format!("{}:{port}", service.hostname),
            domains: routes::domains(ctx, service, port),
            routes: routes.into_iter().map(for_grpc).collect(),
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}

fn default_route(ctx: &Context, service: &Service, port: u16) -> Route {
    let cluster = ClusterName::outbound(port, "", &service.hostname).to_string();
    let policy = destination_policy(ctx, &service.hostname, "", port);
    Route {
        name: "default".into(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..RouteMatch::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster)),
            max_stream_duration: Some(route_action::MaxStreamDuration {
                max_stream_duration: Some(seconds(0)),
                grpc_timeout_header_max: Some(seconds(0)),
                ..Default::default()
            }),
            retry_policy: http_route::retry(None, policy::retry_other_hosts(&policy)),
            ..RouteAction::default()
        })),
        ..Route::default()
    }
}

/// A sidecar's route trimmed to what gRPC acts on (its timeout as
/// `max_stream_duration`): a per-route config for a
/// filter gRPC does not run (CORS) would make it refuse the whole route
/// configuration; mirrors, hash policies (without ring hash) and host
/// predicates it ignores.
fn for_grpc(mut route: Route) -> Route {
    route
        .typed_per_filter_config
        .retain(|filter, _| filter == FAULT);
    if let Some(route::Action::Route(action)) = &mut route.action {
        // gRPC reads the deadline from max_stream_duration, not from the
        // deprecated max_grpc_timeout that sidecars get.
        #[allow(deprecated)]
        if let Some(timeout) = action.max_grpc_timeout.take() {
            action.max_stream_duration = Some(route_action::MaxStreamDuration {
                max_stream_duration: Some(timeout),
                grpc_timeout_header_max: Some(timeout),
                ..Default::default()
            });
        }
        action.request_mirror_policies.clear();
        action.hash_policy.clear();
        if let Some(retry) = &mut action.retry_policy {
            retry.retry_host_predicate.clear();
            retry.host_selection_retry_max_attempts = 0;
        }
    }
    route.decorator = None;
    route
}

/// The service port's EDS cluster and one per DestinationRule subset, with
/// their endpoints.
fn clusters(ctx: &Context, service: &Service, port: &ServicePort, out: &mut Resources) {
    let rule = ctx.destination_rule(service);
    let top = Policy::merge(
        &Policy::default(),
        rule.and_then(|r| r.spec.traffic_policy.as_ref()),
        port.number,
    );
    let no_labels = BTreeMap::new();
    let mut add = |subset: &str, labels: &BTreeMap<String, String>, policy: &Policy| {
        let name = ClusterName::outbound(port.number, subset, &service.hostname).to_string();
        out.endpoints
            .push(endpoint::assignment(&name, ctx, service, port, labels));
        out.clusters.push(eds_cluster(name, policy));
    };
    add("", &no_labels, &top);
    for subset in rule.map_or(&[][..], |r| &r.spec.subsets[..]) {
        let merged = Policy::merge(&top, subset.traffic_policy.as_ref(), port.number);
        add(&subset.name, &subset.labels, &merged);
    }
}

fn eds_cluster(name: String, policy: &Policy) -> Cluster {
    let max_requests = policy
        .connection_pool
        .as_ref()
        .and_then(|pool| pool.http.as_ref()?.http2_max_requests)
        .filter(|max| *max > 0);
    Cluster {
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: name.clone(),
        }),
        lb_policy: cluster::LbPolicy::RoundRobin as i32,
        circuit_breakers: max_requests.map(|max| CircuitBreakers {
            thresholds: vec![Thresholds {
                max_requests: u32v(max as u32),
                ..Thresholds::default()
            }],
            ..CircuitBreakers::default()
        }),
        name,
        ..Cluster::default()
    }
}

#[cfg(test)]
mod tests;
