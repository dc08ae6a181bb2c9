//! Istio's telemetry filters and metadata, as istiod writes them into Envoy
//! config: `istio.stats` (the standard metrics), `istio.metadata_exchange`
//! (peer metadata in HTTP headers), the node's workload metadata and the
//! services a cluster stands for.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value};

use super::listener::{decode, type_name};
use super::{At, ConfigError};

/// The type of `istio.stats`' config.
pub(super) const STATS_CONFIG: &str = "stats.PluginConfig";
/// The type istiod names in the `TypedStruct` of `istio.metadata_exchange`.
const PEER_METADATA_CONFIG: &str = "io.istio.http.peer_metadata.Config";
const TYPED_STRUCTS: [&str; 2] = ["xds.type.v3.TypedStruct", "udpa.type.v1.TypedStruct"];

/// Istio reports TCP byte counts of open connections this often by default.
const DEFAULT_TCP_REPORTING: Duration = Duration::from_secs(15);

/// `istio.stats`: which standard metrics a listener reports, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsConfig {
    /// Report as a shared server-side proxy (`waypoint`); otherwise the
    /// reporter follows the listener's traffic direction.
    pub server_gateway: bool,
    /// Never take `destination_service` from the Host header.
    pub disable_host_header_fallback: bool,
    pub tcp_reporting: Duration,
    pub overrides: Vec<MetricOverride>,
}

/// One entry of `metrics`: drop a metric or some of its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricOverride {
    /// The metric without its `istio_` prefix, e.g. `requests_total`; `None`
    /// for every metric.
    pub metric: Option<String>,
    pub drop: bool,
    pub tags_to_remove: Vec<String>,
}

/// `istio.metadata_exchange`: which peer metadata headers are read and written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerExchange {
    /// Read the caller's metadata from the request headers.
    pub downstream_discovery: bool,
    /// Send ours in the response headers.
    pub downstream_propagation: bool,
    /// Read the upstream's metadata from the response headers.
    pub upstream_discovery: bool,
    /// Send ours in the request headers.
    pub upstream_propagation: bool,
}

/// A service a cluster stands for, from its `istio` filter metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    /// The FQDN, e.g. `reviews.default.svc.cluster.local`.
    pub host: String,
    pub name: String,
    pub namespace: String,
}

/// The local workload, from the bootstrap's `node` (Istio's `ISTIO_META_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// Node metadata keys as Istio names them, with string values.
    pub metadata: HashMap<String, String>,
    /// `LABELS`: the workload's labels.
    pub labels: HashMap<String, String>,
    /// The node's `locality.zone`.
    pub zone: String,
}

/// `stats.PluginConfig`, the fields this proxy reads.
#[derive(Clone, PartialEq, prost::Message)]
struct PluginConfig {
    #[prost(bool, tag = "6")]
    disable_host_header_fallback: bool,
    #[prost(message, optional, tag = "7")]
    tcp_reporting_duration: Option<envoy_types::pb::google::protobuf::Duration>,
    #[prost(message, repeated, tag = "8")]
    metrics: Vec<MetricConfig>,
    #[prost(message, repeated, tag = "9")]
    definitions: Vec<MetricDefinition>,
    #[prost(int32, tag = "10")]
    reporter: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MetricConfig {
    #[prost(map = "string, string", tag = "1")]
    dimensions: HashMap<String, String>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, repeated, tag = "3")]
    tags_to_remove: Vec<String>,
    #[prost(string, tag = "4")]
    r#match: String,
    #[prost(bool, tag = "5")]
    drop: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MetricDefinition {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TypedStruct {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Struct>,
}

/// Compiles `istio.stats`' config; `at` is the `typed_config`.
pub(super) fn stats(any: &Any, at: &At) -> Result<StatsConfig, ConfigError> {
    let config: PluginConfig = decode(any, at)?;
    if !config.definitions.is_empty() {
        return Err(at.field("definitions").unsupported("custom metrics"));
    }
    let overrides = config
        .metrics
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            let at = at.field("metrics").index(i);
            if !metric.dimensions.is_empty() {
                return Err(at
                    .field("dimensions")
                    .unsupported("labels computed by CEL expressions"));
            }
            if !metric.r#match.is_empty() {
                return Err(at.field("match").unsupported("conditional overrides"));
            }
            Ok(MetricOverride {
                metric: Some(metric.name.trim_start_matches("istio_").to_owned())
                    .filter(|n| !n.is_empty()),
                drop: metric.drop,
                tags_to_remove: metric.tags_to_remove.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    let server_gateway = match config.reporter {
        0 => false,
        1 => true,
        other => {
            return Err(at
                .field("reporter")
                .error(format_args!("unknown reporter {other}")));
        }
    };
    Ok(StatsConfig {
        server_gateway,
        disable_host_header_fallback: config.disable_host_header_fallback,
        tcp_reporting: match &config.tcp_reporting_duration {
            Some(d) => super::duration(d, &at.field("tcp_reporting_duration"))?,
            None => DEFAULT_TCP_REPORTING,
        },
        overrides,
    })
}

/// Whether `any` is a `TypedStruct` holding the peer metadata filter's config.
pub(super) fn is_peer_exchange(any: &Any) -> bool {
    TYPED_STRUCTS.contains(&type_name(any))
        && TypedStruct::decode_from(any)
            .is_some_and(|t| t.type_url.rsplit('/').next() == Some(PEER_METADATA_CONFIG))
}

impl TypedStruct {
    fn decode_from(any: &Any) -> Option<TypedStruct> {
        prost::Message::decode(any.value.as_slice()).ok()
    }
}

/// Compiles `istio.metadata_exchange`'s config; `at` is the `typed_config`.
/// Only the `istio_headers` method exchanges anything; `workload_discovery`
/// needs a workload registry pushed to the proxy, which Istio has only in
/// ambient mode, so it finds nothing here and is passed over.
pub(super) fn peer_exchange(any: &Any, at: &At) -> Result<PeerExchange, ConfigError> {
    let typed: TypedStruct = decode(any, at)?;
    let at = at.field("value");
    let mut exchange = PeerExchange::default();
    for (key, value) in typed.value.map(|v| v.fields).unwrap_or_default() {
        let at = at.field(&key);
        let slot = match key.as_str() {
            "downstream_discovery" => &mut exchange.downstream_discovery,
            "downstream_propagation" => &mut exchange.downstream_propagation,
            "upstream_discovery" => &mut exchange.upstream_discovery,
            "upstream_propagation" => &mut exchange.upstream_propagation,
            // Labels beyond the standard ones; the standard ones are always sent.
            "additional_labels" | "shared_with_upstream" => continue,
            _ => return Err(at.unsupported(format_args!("{key:?}"))),
        };
        *slot = uses_istio_headers(&value, &at)?;
    }
    Ok(exchange)
}

/// Whether a discovery or propagation list holds `istio_headers`.
fn uses_istio_headers(methods: &Value, at: &At) -> Result<bool, ConfigError> {
    let Some(value::Kind::ListValue(list)) = &methods.kind else {
        return Err(at.error("a list of methods is expected"));
    };
    let mut headers = false;
    for (i, method) in list.values.iter().enumerate() {
        let at = at.index(i);
        let Some(value::Kind::StructValue(method)) = &method.kind else {
            return Err(at.error("a method is an object with one key"));
        };
        for name in method.fields.keys() {
            match name.as_str() {
                "istio_headers" => headers = true,
                "workload_discovery" => {}
                other => {
                    return Err(at
                        .field(other)
                        .unsupported(format_args!("peer metadata method {other:?}")));
                }
            }
        }
    }
    Ok(headers)
}

/// The services in a cluster's `metadata.filter_metadata.istio.services`.
pub(super) fn services(metadata: Option<&Metadata>) -> Vec<ServiceRef> {
    let Some(istio) = metadata.and_then(|m| m.filter_metadata.get("istio")) else {
        return Vec::new();
    };
    let Some(value::Kind::ListValue(list)) =
        istio.fields.get("services").and_then(|v| v.kind.as_ref())
    else {
        return Vec::new();
    };
    list.values
        .iter()
        .filter_map(|service| match &service.kind {
            Some(value::Kind::StructValue(s)) => Some(ServiceRef {
                host: string(s, "host"),
                name: string(s, "name"),
                namespace: string(s, "namespace"),
            }),
            _ => None,
        })
        .collect()
}

/// The bootstrap's node: its id, and its metadata flattened to strings
/// (`LABELS` kept apart).
pub(super) fn node(node: Option<&envoy_types::pb::envoy::config::core::v3::Node>) -> NodeInfo {
    let Some(node) = node else {
        return NodeInfo::default();
    };
    let fields = node
        .metadata
        .as_ref()
        .map(|m| &m.fields)
        .cloned()
        .unwrap_or_default();
    let mut info = NodeInfo {
        id: node.id.clone(),
        zone: node
            .locality
            .as_ref()
            .map(|l| l.zone.clone())
            .unwrap_or_default(),
        ..NodeInfo::default()
    };
    for (key, value) in &fields {
        match &value.kind {
            Some(value::Kind::StringValue(s)) => {
                info.metadata.insert(key.clone(), s.clone());
            }
            Some(value::Kind::StructValue(labels)) if key == "LABELS" => {
                info.labels = labels
                    .fields
                    .keys()
                    .map(|k| (k.clone(), string(labels, k)))
                    .collect();
            }
            _ => {}
        }
    }
    if !node.cluster.is_empty() {
        info.metadata
            .entry("CLUSTER".into())
            .or_insert_with(|| node.cluster.clone());
    }
    info
}

fn string(s: &Struct, key: &str) -> String {
    match s.fields.get(key).and_then(|v| v.kind.as_ref()) {
        Some(value::Kind::StringValue(v)) => v.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn any<M: Message>(type_name: &str, message: &M) -> Any {
        Any {
            type_url: format!("type.googleapis.com/{type_name}"),
            value: message.encode_to_vec(),
        }
    }

    fn at() -> At {
        At::resource("listener", "l")
    }

    #[test]
    fn stats_overrides_drop_and_remove_labels() {
        let config = PluginConfig {
            disable_host_header_fallback: true,
            metrics: vec![MetricConfig {
                name: "requests_total".into(),
                tags_to_remove: vec!["source_principal".into()],
                ..MetricConfig::default()
            }],
            ..PluginConfig::default()
        };
        let compiled = stats(&any(STATS_CONFIG, &config), &at()).unwrap();
        assert!(compiled.disable_host_header_fallback);
        assert_eq!(compiled.tcp_reporting, DEFAULT_TCP_REPORTING);
        assert_eq!(
            compiled.overrides,
            [MetricOverride {
                metric: Some("requests_total".into()),
                drop: false,
                tags_to_remove: vec!["source_principal".into()],
            }]
        );
    }

    #[test]
    fn cel_dimensions_are_refused_by_field() {
        let config = PluginConfig {
            metrics: vec![MetricConfig {
                dimensions: [("x".to_owned(), "request.host".to_owned())].into(),
                ..MetricConfig::default()
            }],
            ..PluginConfig::default()
        };
        let err = stats(&any(STATS_CONFIG, &config), &at()).unwrap_err();
        assert_eq!(err.field, "metrics[0].dimensions");
    }

    fn methods(names: &[&str]) -> Value {
        let list = names
            .iter()
            .map(|name| Value {
                kind: Some(value::Kind::StructValue(Struct {
                    fields: [(
                        (*name).to_owned(),
                        Value {
                            kind: Some(value::Kind::StructValue(Struct::default())),
                        },
                    )]
                    .into(),
                })),
            })
            .collect();
        Value {
            kind: Some(value::Kind::ListValue(
                envoy_types::pb::google::protobuf::ListValue { values: list },
            )),
        }
    }

    fn peer_config(fields: Vec<(&str, Value)>) -> Any {
        let typed = TypedStruct {
            type_url: format!("type.googleapis.com/{PEER_METADATA_CONFIG}"),
            value: Some(Struct {
                fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            }),
        };
        any("udpa.type.v1.TypedStruct", &typed)
    }

    #[test]
    fn istiod_sidecar_inbound_exchange() {
        let config = peer_config(vec![
            (
                "downstream_discovery",
                methods(&["istio_headers", "workload_discovery"]),
            ),
            ("downstream_propagation", methods(&["istio_headers"])),
        ]);
        assert!(is_peer_exchange(&config));
        let exchange = peer_exchange(&config, &at()).unwrap();
        assert_eq!(
            exchange,
            PeerExchange {
                downstream_discovery: true,
                downstream_propagation: true,
                ..PeerExchange::default()
            }
        );
    }

    #[test]
    fn unknown_exchange_methods_are_refused() {
        let config = peer_config(vec![("upstream_discovery", methods(&["baggage"]))]);
        let err = peer_exchange(&config, &at()).unwrap_err();
        assert_eq!(err.field, "value.upstream_discovery[0].baggage");
    }
}
