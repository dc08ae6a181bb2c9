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
        Some(std::time::Duration::from_millis(2500))
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
    bootstrap["static_resources"]["clusters"][0]["type"] = json!("STRICT_DNS");
    assert_eq!(
        error(bootstrap),
        "cluster \"a\": type: discovery types other than STATIC and EDS is not supported by this proxy"
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
