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

/// `google.protobuf.Struct` with its fields in key order, so that the same
/// JSON always encodes to the same bytes (prost writes a `HashMap` in its
/// own, random order). Configs inside an `Any` use it: their bytes travel
/// as they are, and a proxy compares them to tell whether a resource changed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SortedStruct {
    #[prost(btree_map = "string, message", tag = "1")]
    pub fields: std::collections::BTreeMap<String, SortedValue>,
}

/// `google.protobuf.Value`, field for field.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SortedValue {
    #[prost(oneof = "SortedKind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<SortedKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SortedKind {
    #[prost(int32, tag = "1")]
    Null(i32),
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
    #[prost(message, tag = "5")]
    Struct(SortedStruct),
    #[prost(message, tag = "6")]
    List(SortedList),
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SortedList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<SortedValue>,
}

/// A JSON object as a [`SortedStruct`] (anything else gives an empty one).
pub fn sorted_structure(json: serde_json::Value) -> SortedStruct {
    match sorted_value(json).kind {
        Some(SortedKind::Struct(s)) => s,
        _ => SortedStruct::default(),
    }
}

fn sorted_value(json: serde_json::Value) -> SortedValue {
    let kind = match json {
        serde_json::Value::Null => SortedKind::Null(0),
        serde_json::Value::Bool(b) => SortedKind::Bool(b),
        serde_json::Value::Number(n) => SortedKind::Number(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => SortedKind::String(s),
        serde_json::Value::Array(items) => SortedKind::List(SortedList {
            values: items.into_iter().map(sorted_value).collect(),
        }),
        serde_json::Value::Object(fields) => SortedKind::Struct(SortedStruct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k, sorted_value(v)))
                .collect(),
        }),
    };
    SortedValue { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn sorted_structs_encode_the_same_every_time_and_read_as_structs() {
        let json = serde_json::json!({
            "b": [1, "two", {"z": true, "a": null}], "a": {"y": 1, "x": 2}, "c": "3"
        });
        let bytes = sorted_structure(json.clone()).encode_to_vec();
        for _ in 0..10 {
            assert_eq!(sorted_structure(json.clone()).encode_to_vec(), bytes);
        }
        let decoded = Struct::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, structure(json));
    }
}
