//! The HTTP filters of sidecar connection managers, and the network stats
//! filter of TCP chains, as istiod writes them.
//!
//! Outbound: `istio.metadata_exchange` (upstream discovery and
//! propagation), `envoy.filters.http.cors`, `envoy.filters.http.fault`,
//! `istio.stats`, router. Inbound: `istio.metadata_exchange` (downstream),
//! `istio.stats` with `disable_host_header_fallback`, router — istiod puts
//! no CORS or fault filter on inbound listeners, since VirtualServices act
//! on the client side. istiod's outbound `istio.alpn` filter is left out:
//! its effect is written into each cluster's ALPN (see [`super::tls`]).

use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

use super::proto::{SortedStruct, any, sorted_structure};

pub const FAULT: &str = "envoy.filters.http.fault";
pub const CORS: &str = "envoy.filters.http.cors";
const PEER_METADATA_CONFIG: &str = "type.googleapis.com/io.istio.http.peer_metadata.Config";

/// Which way a listener's traffic goes, relative to the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// `udpa.type.v1.TypedStruct`: a filter config given as a `Struct` with
/// its type, which istiod uses for configs Envoy's protos do not define.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypedStruct {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<SortedStruct>,
}

impl Name for TypedStruct {
    const NAME: &'static str = "TypedStruct";
    const PACKAGE: &'static str = "udpa.type.v1";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

/// `stats.PluginConfig`, the config of `istio.stats` (the fields istiod
/// sets on sidecars).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginConfig {
    #[prost(bool, tag = "6")]
    pub disable_host_header_fallback: bool,
}

impl Name for PluginConfig {
    const NAME: &'static str = "PluginConfig";
    const PACKAGE: &'static str = "stats";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..HttpFilter::default()
    }
}

/// Peer metadata in HTTP headers: read the other side's, send ours.
fn metadata_exchange(direction: Direction) -> HttpFilter {
    let side = match direction {
        Direction::Inbound => "downstream",
        Direction::Outbound => "upstream",
    };
    let value = sorted_structure(serde_json::json!({
        format!("{side}_discovery"): [{"istio_headers": {}}, {"workload_discovery": {}}],
        format!("{side}_propagation"): [{"istio_headers": {}}],
    }));
    let config = TypedStruct {
        type_url: PEER_METADATA_CONFIG.into(),
        value: Some(value),
    };
    http_filter("istio.metadata_exchange", any(&config))
}

fn stats_config(direction: Direction) -> Any {
    any(&PluginConfig {
        // The server side knows which service it is; the Host header may lie.
        disable_host_header_fallback: direction == Direction::Inbound,
    })
}

/// The HTTP filter chain of a sidecar connection manager.
pub fn http_filters(direction: Direction) -> Vec<HttpFilter> {
    let mut filters = vec![metadata_exchange(direction)];
    if direction == Direction::Outbound {
        filters.push(http_filter(CORS, any(&Cors::default())));
        filters.push(http_filter(FAULT, any(&HttpFault::default())));
    }
    filters.push(http_filter("istio.stats", stats_config(direction)));
    filters.push(http_filter(
        "envoy.filters.http.router",
        any(&Router::default()),
    ));
    filters
}

/// `istio.stats` in front of a `tcp_proxy`.
pub fn tcp_stats(direction: Direction) -> Filter {
    Filter {
        name: "istio.stats".into(),
        config_type: Some(filter::ConfigType::TypedConfig(stats_config(direction))),
    }
}
