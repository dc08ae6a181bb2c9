use serde_json::json;

use crate::config::{Action, LbPolicy, ListenerKind};
use crate::testing::{compile, http_bootstrap};

fn error(bootstrap: serde_json::Value) -> String {
    compile(&bootstrap).unwrap_err().to_string()
}

fn catch_all(route: serde_json::Value) -> serde_json::Value {
    json!([{"name": "all", "domains": ["*"], "routes": [route]}])
}

#[test]
fn compiles_routes_clusters_and_weights() {
    let mut bootstrap = http_bootstrap(
        catch_all(json!({"match": {"prefix": "/"}, "route": {
            "weighted_clusters": {"clusters": [{"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}]},
            "timeout": "2.5s", "prefix_rewrite": "/v2/"}})),
        &["v1", "v2"],
    );
    bootstrap["static_resources"]["clusters"][1]["lb_policy"] = json!("RANDOM");
    let config = compile(&bootstrap).unwrap();
    let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
        panic!()
    };
    let Action::Forward(forward) = &manager.routes.virtual_hosts[0].routes[0].action else {
        panic!()
    };
    assert_eq!(
        forward.clusters,
        [("v1".to_owned(), 90), ("v2".to_owned(), 10)]
    );
    assert_eq!(
        forward.timeout,
        crate::config::RequestTimeout::Router {
            timeout: Some(std::time::Duration::from_millis(2500)),
            grpc: None
        }
    );
    assert_eq!(forward.prefix_rewrite.as_deref(), Some("/v2/"));
    assert_eq!(config.clusters["v1"].lb, LbPolicy::RoundRobin);
    assert_eq!(config.clusters["v2"].lb, LbPolicy::Random);
    assert_eq!(config.clusters["v2"].endpoints[0].address.port(), 1);
}

#[test]
fn errors_name_the_resource_and_field() {
    let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "missing"}});
    assert_eq!(
        error(http_bootstrap(catch_all(route), &[])),
        "listener \"http\": -: cluster \"missing\" is not defined"
    );

    let bad_regex =
        json!({"match": {"safe_regex": {"regex": "(unclosed"}}, "route": {"cluster": "a"}});
    let message = error(http_bootstrap(catch_all(bad_regex), &["a"]));
    assert!(
        message.starts_with("listener \"http\": filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].match.safe_regex.regex: \"(unclosed\" is not a valid RE2 regex"),
        "{message}"
    );

    let mut bootstrap = http_bootstrap(
        catch_all(json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}})),
        &["a"],
    );
    bootstrap["static_resources"]["clusters"][0]["cluster_type"] =
        json!({"name": "envoy.clusters.aggregate"});
    assert_eq!(
        error(bootstrap),
        "cluster \"a\": cluster_type: custom cluster types is not supported by this proxy"
    );

    let mut bootstrap = http_bootstrap(
        catch_all(json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}})),
        &["a"],
    );
    bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"] = json!([{"name": "envoy.filters.http.ext_proc", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"}}]);
    assert_eq!(
        error(bootstrap),
        "listener \"http\": filter_chains[0].filters[0].typed_config.http_filters[0]: HTTP filter \"envoy.filters.http.ext_proc\" is not supported by this proxy"
    );

    let mut bootstrap = http_bootstrap(
        catch_all(json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}})),
        &["a"],
    );
    bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] =
        json!("localhost");
    assert_eq!(
        error(bootstrap),
        "listener \"http\": address.socket_address.address: \"localhost\" is not an IP address"
    );
}

#[test]
fn connection_options_are_kept_and_the_rest_refused() {
    let key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    let with_common = |common: serde_json::Value| {
        let mut bootstrap = http_bootstrap(
            catch_all(json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}})),
            &["a"],
        );
        bootstrap["static_resources"]["clusters"][0]["typed_extension_protocol_options"] = json!({key: {"@type": format!("type.googleapis.com/{key}"), "common_http_protocol_options": common}});
        bootstrap
    };
    let config = compile(&with_common(json!({
        "idle_timeout": "30s", "max_requests_per_connection": 1, "max_connection_duration": "0s"
    })))
    .unwrap();
    let connections = config.clusters["a"].connections;
    assert_eq!(
        connections.idle_timeout,
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(connections.max_requests.map(|n| n.get()), Some(1));
    assert_eq!(connections.max_duration, None, "0s turns it off");

    let defaults = compile(&with_common(json!({}))).unwrap().clusters["a"].connections;
    assert_eq!(
        defaults.idle_timeout,
        Some(std::time::Duration::from_secs(3600)),
        "Envoy's default"
    );

    assert_eq!(
        error(with_common(json!({"max_stream_duration": "1s"}))),
        format!(
            "cluster \"a\": typed_extension_protocol_options.{key}.common_http_protocol_options.max_stream_duration: max_stream_duration is not supported by this proxy"
        )
    );
}

#[test]
fn client_connections_close_after_an_hour_idle_unless_configured() {
    let with_common = |common: serde_json::Value| {
        let mut bootstrap = http_bootstrap(
            catch_all(json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}})),
            &["a"],
        );
        bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["common_http_protocol_options"] = common;
        bootstrap
    };
    let manager = |bootstrap| {
        let config = compile(&bootstrap).unwrap();
        let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
            panic!()
        };
        (
            manager.connections.idle_timeout,
            manager.connections.max_duration,
        )
    };
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(manager(with_common(json!(null))), (Some(hour), None));
    assert_eq!(
        manager(with_common(
            json!({"idle_timeout": "0s", "max_connection_duration": "10s"})
        )),
        (None, Some(std::time::Duration::from_secs(10))),
        "0s turns the idle timeout off"
    );
    assert_eq!(
        error(with_common(json!({"idle_timeout": "-1s"}))),
        "listener \"http\": filter_chains[0].filters[0].typed_config.common_http_protocol_options.idle_timeout: durations must not be negative"
    );
}

#[test]
fn original_dst_clusters_read_their_header_port_and_bind_address() {
    use crate::testing::compile_with_cluster;
    let original = |fields: serde_json::Value| {
        let mut all = json!({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"});
        for (key, value) in fields.as_object().unwrap() {
            all[key] = value.clone();
        }
        compile_with_cluster(all)
    };
    let config = original(json!({})).unwrap();
    let cluster = &config.clusters["a"];
    assert_eq!(cluster.original_dst, Some(super::OriginalDst::default()));
    assert!(cluster.endpoints.is_empty());

    let config = original(json!({
        "original_dst_lb_config": {"use_http_header": true, "upstream_port_override": 8080},
        "upstream_bind_config": {"source_address": {"address": "127.0.0.6", "port_value": 0}}
    }))
    .unwrap();
    let cluster = &config.clusters["a"];
    let dst = cluster.original_dst.as_ref().unwrap();
    assert_eq!(dst.header.as_ref().unwrap(), "x-envoy-original-dst-host");
    assert_eq!(dst.port, Some(8080));
    assert_eq!(cluster.bind, Some("127.0.0.6:0".parse().unwrap()));

    let err = |result: Result<super::Config, super::ConfigError>| result.unwrap_err().to_string();
    assert_eq!(
        err(compile_with_cluster(json!({"type": "ORIGINAL_DST"}))),
        "cluster \"a\": lb_policy: an ORIGINAL_DST cluster needs CLUSTER_PROVIDED"
    );
    assert_eq!(
        err(compile_with_cluster(
            json!({"lb_policy": "CLUSTER_PROVIDED"})
        )),
        "cluster \"a\": lb_policy: CLUSTER_PROVIDED is for ORIGINAL_DST clusters only"
    );
    assert_eq!(
        err(original(
            json!({"upstream_bind_config": {"freebind": true}})
        )),
        "cluster \"a\": upstream_bind_config: fields other than source_address is not supported by this proxy"
    );
}

#[test]
fn original_destinations_come_from_the_header_or_the_restored_address() {
    let redirected = crate::lb::Downstream {
        remote: "10.0.0.9:41000".parse().unwrap(),
        local: "10.0.0.5:9080".parse().unwrap(),
        restored: true,
    };
    let direct = crate::lb::Downstream {
        restored: false,
        ..redirected
    };
    let header = "x-envoy-original-dst-host";
    let mut headers = http::HeaderMap::new();
    headers.insert(header, "10.0.0.7:80".parse().unwrap());
    let plain = super::OriginalDst::default();
    assert_eq!(
        plain.target(Some(redirected), Some(&headers)),
        Some(redirected.local)
    );
    assert_eq!(
        plain.target(Some(direct), None),
        None,
        "not redirected: it would loop"
    );
    assert_eq!(plain.target(None, None), None);
    let by_header = super::OriginalDst {
        header: Some(http::HeaderName::from_static(header)),
        port: None,
    };
    assert_eq!(
        by_header.target(Some(direct), Some(&headers)),
        Some("10.0.0.7:80".parse().unwrap())
    );
    assert_eq!(
        by_header.target(Some(redirected), Some(&http::HeaderMap::new())),
        Some(redirected.local)
    );
    headers.insert(header, "not-an-address".parse().unwrap());
    assert_eq!(
        by_header.target(Some(redirected), Some(&headers)),
        None,
        "a bad header is no host"
    );
    let overridden = super::OriginalDst {
        header: None,
        port: Some(15000),
    };
    assert_eq!(
        overridden.target(Some(redirected), None),
        Some("10.0.0.5:15000".parse().unwrap())
    );
}
#[test]
fn request_timeouts_follow_the_route_and_grpc_deadlines() {
    use crate::config::RequestTimeout;
    use std::time::Duration;
    let timeout_of = |action: serde_json::Value| {
        let mut route = json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}});
        for (key, value) in action.as_object().unwrap() {
            route["route"][key] = value.clone();
        }
        let config = compile(&http_bootstrap(catch_all(route), &["a"])).unwrap();
        let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
            panic!()
        };
        let Action::Forward(forward) = &manager.routes.virtual_hosts[0].routes[0].action else {
            panic!()
        };
        forward.timeout
    };
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        map
    };
    let grpc = headers(&[
        ("content-type", "application/grpc"),
        ("grpc-timeout", "250m"),
    ]);
    let grpc_no_deadline = headers(&[("content-type", "application/grpc")]);
    let plain = headers(&[("grpc-timeout", "250m")]);
    let secs = Duration::from_secs;

    // Envoy's default, and `0s` for none.
    assert_eq!(
        timeout_of(json!({})).for_request(&plain),
        (Some(secs(15)), false)
    );
    assert_eq!(
        timeout_of(json!({"timeout": "0s"})).for_request(&plain),
        (None, false)
    );

    // istiod's sidecar routes: `timeout` with `max_grpc_timeout`.
    let istio = timeout_of(json!({"timeout": "5s", "max_grpc_timeout": "5s"}));
    assert_eq!(
        istio.for_request(&grpc),
        (Some(Duration::from_millis(250)), false)
    );
    assert_eq!(istio.for_request(&grpc_no_deadline), (Some(secs(5)), false));
    assert_eq!(
        istio.for_request(&plain),
        (Some(secs(5)), false),
        "not gRPC"
    );
    let uncapped = timeout_of(json!({"timeout": "0s", "max_grpc_timeout": "0s"}));
    assert_eq!(
        uncapped.for_request(&grpc),
        (Some(Duration::from_millis(250)), false)
    );
    assert_eq!(uncapped.for_request(&grpc_no_deadline), (None, false));
    let offset = timeout_of(json!({"max_grpc_timeout": "0s", "grpc_timeout_offset": "0.05s"}));
    assert_eq!(
        offset.for_request(&grpc),
        (Some(Duration::from_millis(200)), false)
    );

    // `max_stream_duration`: the route's `timeout` is not used.
    let stream = timeout_of(json!({"timeout": "1s", "max_stream_duration": {
        "max_stream_duration": "3s", "grpc_timeout_header_max": "0.1s"}}));
    assert!(matches!(stream, RequestTimeout::Stream { .. }));
    assert_eq!(
        stream.for_request(&grpc),
        (Some(Duration::from_millis(100)), true)
    );
    assert_eq!(stream.for_request(&plain), (Some(secs(3)), true));
    assert_eq!(stream.for_request(&grpc_no_deadline), (Some(secs(3)), true));
}
