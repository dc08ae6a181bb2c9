//! Small builders for the protobuf values every resource needs: durations,
//! wrappers, `Any`, `Struct`s written as JSON, and the ADS config source.

use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, config_source::ConfigSourceSpecifier,
};
use envoy_types::pb::google::protobuf::{
    Any, BoolValue, Duration, ListValue, Struct, UInt32Value, Value, value::Kind,
};
use prost::{Message, Name};

/// Envoy's "no limit" for counters (2^32-1), which Istio sets on every
/// circuit breaker threshold.
pub const UNLIMITED: u32 = u32::MAX;

pub fn duration(d: std::time::Duration) -> Duration {
    Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn seconds(secs: u64) -> Duration {
    duration(std::time::Duration::from_secs(secs))
}

pub fn u32v(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

pub fn boolv(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

pub fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// The config source istiod points every dynamic resource at: the ADS
/// stream the proxy already has open.
pub fn ads() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        initial_fetch_timeout: Some(seconds(0)),
        resource_api_version: ApiVersion::V3 as i32,
        ..ConfigSource::default()
    }
}

/// A TCP socket address; `host` may be an IP or, for DNS clusters, a name.
pub fn socket(host: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..SocketAddress::default()
        })),
    }
}

/// A JSON object as a protobuf `Struct` (anything else gives an empty one).
pub fn structure(json: serde_json::Value) -> Struct {
    match value(json).kind {
        Some(Kind::StructValue(s)) => s,
        _ => Struct::default(),
    }
}

fn value(json: serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(value).collect(),
        }),
        serde_json::Value::Object(fields) => Kind::StructValue(Struct {
            fields: fields.into_iter().map(|(k, v)| (k, value(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}
