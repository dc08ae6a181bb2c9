use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use serde_json::json;

use super::*;

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn bootstrap() -> Value {
    json!({
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": HCM,
                        "stat_prefix": "ingress",
                        "route_config": {"virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "echo", "timeout": "0.25s"}}]
                        }]}
                    }
                }]}]
            }],
            "clusters": [{
                "name": "echo",
                "connectTimeout": "1s",
                "load_assignment": {"cluster_name": "echo", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}
                ]}]}
            }]
        }
    })
}

#[test]
fn reads_a_bootstrap_with_typed_config() {
    let parsed: Bootstrap = from_json(&bootstrap()).unwrap();
    let resources = parsed.static_resources.unwrap();
    let listener = &resources.listeners[0];
    assert_eq!(listener.name, "ingress");
    let any = listener.filter_chains[0].filters[0]
        .config_type
        .clone()
        .unwrap();
    let envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any) = any
    else {
        panic!("typed config expected");
    };
    assert_eq!(any.type_url, HCM);
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    assert_eq!(hcm.stat_prefix, "ingress");
    assert_eq!(resources.clusters[0].connect_timeout.unwrap().seconds, 1);
}

#[test]
fn writes_back_what_it_read() {
    let parsed: Bootstrap = from_json(&bootstrap()).unwrap();
    let written = to_json(&parsed).unwrap();
    let again: Bootstrap = from_json(&written).unwrap();
    assert_eq!(parsed, again);
    let typed = &written["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(typed["@type"], HCM);
    assert_eq!(typed["stat_prefix"], "ingress");
}

#[test]
fn names_unknown_fields_and_types() {
    let mut doc = bootstrap();
    doc["static_resources"]["clusters"][0]["connect_timout"] = json!("1s");
    let err = from_json::<Bootstrap>(&doc).unwrap_err().to_string();
    assert!(err.contains("connect_timout"), "{err}");

    let mut doc = bootstrap();
    doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["@type"] =
        json!("type.googleapis.com/envoy.nope.v3.Nope");
    let err = from_json::<Bootstrap>(&doc).unwrap_err().to_string();
    assert!(err.contains("envoy.nope.v3.Nope"), "{err}");
}
