//! Outbound route configurations, one per HTTP port and named by it
//! (`9080`): a virtual host per service on that port (`<fqdn>:<port>`),
//! routed by the VirtualService that applies or by the `default` route,
//! then the catch-all `allow_any` or `block_all`.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::route::v3::{
    Decorator, DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost, route, route_action, route_match,
};
use mesh_api::names::ClusterName;

use super::cluster::PASSTHROUGH;
use super::context::{Context, PortKind, port_kind};
use super::http_route::{self, agreed_hash_policy, destination_policy};
use super::policy;
use super::proto::{boolv, seconds};
use crate::model::{OutboundTrafficPolicy, Service};

/// Every HTTP port of the visible services, with its services.
pub fn http_ports<'a>(ctx: &Context<'a>) -> BTreeMap<u16, Vec<&'a Service>> {
    let mut ports: BTreeMap<u16, Vec<&Service>> = BTreeMap::new();
    for service in &ctx.services {
        for port in &service.ports {
            if matches!(port_kind(port), Some(PortKind::Http { .. })) {
                ports.entry(port.number).or_default().push(service);
            }
        }
    }
    ports
}

pub fn outbound(ctx: &Context) -> Vec<RouteConfiguration> {
    http_ports(ctx)
        .into_iter()
        .map(|(port, services)| {
            let mut virtual_hosts: Vec<VirtualHost> = services
                .iter()
                .map(|service| virtual_host(ctx, service, port))
                .collect();
            virtual_hosts.push(catch_all(ctx));
            RouteConfiguration {
                name: port.to_string(),
                virtual_hosts,
                validate_clusters: boolv(false),
                ignore_port_in_host_matching: true,
                ..RouteConfiguration::default()
            }
        })
        .collect()
}

fn virtual_host(ctx: &Context, service: &Service, port: u16) -> VirtualHost {
    let routes = match ctx.virtual_service(service) {
        Some(vs) => http_route::routes(ctx, vs, port),
        None => vec![default_route(ctx, service, port)],
    };
    VirtualHost {
        name: format!("{}:{port}", service.hostname),
        domains: domains(ctx, service, port),
        routes,
        include_request_attempt_count: true,
        ..VirtualHost::default()
    }
}

/// The names a client may use for the service, with and without the port:
/// the FQDN, its short forms (`reviews`, `reviews.default`,
/// `reviews.default.svc`, the first only from the same namespace), and
/// the VIPs.
pub fn domains(ctx: &Context, service: &Service, port: u16) -> Vec<String> {
    let host = &service.hostname;
    let mut names = vec![host.clone()];
    if let Some(short) = host.strip_suffix(&format!(".svc.{}", ctx.domain())) {
        // `short` is `<name>.<namespace>`.
        if let Some((name, namespace)) = short.split_once('.')
            && namespace == ctx.proxy.namespace
        {
            names.push(name.to_owned());
        }
        names.push(short.to_owned());
        names.push(format!("{short}.svc"));
    }
    names.extend(service.addresses.iter().map(|ip| match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }));
    names
        .into_iter()
        .flat_map(|name| {
            let with_port = format!("{name}:{port}");
            [name, with_port]
        })
        .collect()
}

/// The route of a service no VirtualService covers: all of it to the
/// service's cluster, with Istio's default retries and no timeout.
fn default_route(ctx: &Context, service: &Service, port: u16) -> Route {
    let cluster = ClusterName::outbound(port, "", &service.hostname).to_string();
    let policy = destination_policy(ctx, &service.hostname, "", port);
    let timeout = seconds(0);
    Route {
        name: "default".into(),
        r#match: Some(prefix_all()),
        decorator: Some(Decorator {
            operation: format!("{}:{port}/*", service.hostname),
            ..Decorator::default()
        }),
        #[allow(deprecated)]
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster)),
            timeout: Some(timeout),
            max_grpc_timeout: Some(timeout),
            retry_policy: http_route::retry(None, policy::retry_other_hosts(&policy)),
            hash_policy: agreed_hash_policy(std::slice::from_ref(&policy)),
            ..RouteAction::default()
        })),
        ..Route::default()
    }
}

fn prefix_all() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
        ..RouteMatch::default()
    }
}

/// Hosts the registry does not know: passed through (`allow_any`) or
/// refused with 502 (`block_all`), per `outboundTrafficPolicy`.
fn catch_all(ctx: &Context) -> VirtualHost {
    let (name, action) = match ctx.outbound_traffic_policy() {
        OutboundTrafficPolicy::AllowAny => (
            "allow_any",
            #[allow(deprecated)]
            route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                    PASSTHROUGH.into(),
                )),
                timeout: Some(seconds(0)),
                max_grpc_timeout: Some(seconds(0)),
                ..RouteAction::default()
            }),
        ),
        OutboundTrafficPolicy::RegistryOnly => (
            "block_all",
            route::Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..DirectResponseAction::default()
            }),
        ),
    };
    VirtualHost {
        name: name.into(),
        domains: vec!["*".into()],
        routes: vec![Route {
            name: name.into(),
            r#match: Some(prefix_all()),
            action: Some(action),
            ..Route::default()
        }],
        include_request_attempt_count: true,
        ..VirtualHost::default()
    }
}
