use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::config::{
    AbortStatus, Config, Fault, FaultAbort, FaultDelay, HttpManager, ListenerKind,
};
use crate::testing::{compile, http_bootstrap};

const HTTP_FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const HCM: &str = "listener \"http\": filter_chains[0].filters[0].typed_config";

/// An `HTTPFault` as a typed config.
fn typed(fault: Value) -> Value {
    let mut typed = json!({"@type": HTTP_FAULT});
    typed
        .as_object_mut()
        .unwrap()
        .extend(fault.as_object().unwrap().clone());
    typed
}

/// One catch-all route to cluster "a", with `per_route` as its
/// `typed_per_filter_config`, and `filters` before the router.
fn bootstrap(filters: Value, per_route: Value) -> Value {
    let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "a"},
        "typed_per_filter_config": per_route});
    let mut bootstrap = http_bootstrap(
        json!([{"name": "all", "domains": ["*"], "routes": [route]}]),
        &["a"],
    );
    let http_filters = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
        [0]["typed_config"]["http_filters"];
    let router = http_filters[0].take();
    let mut list = filters.as_array().unwrap().clone();
    list.push(router);
    *http_filters = Value::Array(list);
    bootstrap
}

/// The fault filter first, with `config`.
fn with_filter(config: Value, per_route: Value) -> Value {
    bootstrap(
        json!([{"name": "envoy.filters.http.fault", "typed_config": typed(config)}]),
        per_route,
    )
}

fn manager(config: &Config) -> &HttpManager {
    let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
        panic!("an HTTP listener")
    };
    manager
}

fn error(bootstrap: Value) -> String {
    compile(&bootstrap).unwrap_err().to_string()
}

fn filter_error(config: Value) -> String {
    error(with_filter(config, json!({})))
}

fn route_error(config: Value) -> String {
    error(with_filter(
        json!({}),
        json!({"envoy.filters.http.fault": typed(config)}),
    ))
}

#[test]
fn filter_level_fault_compiles() {
    let config = compile(&with_filter(
        json!({
            "delay": {"fixed_delay": "1.5s", "percentage": {"numerator": 100}},
            "abort": {"http_status": 503, "percentage": {"numerator": 2500, "denominator": "TEN_THOUSAND"}}
        }),
        json!({}),
    ))
    .unwrap();
    let manager = manager(&config);
    assert_eq!(
        manager.fault,
        Some(Fault {
            delay: Some(FaultDelay {
                delay: Duration::from_millis(1500),
                per_million: 1_000_000
            }),
            abort: Some(FaultAbort {
                status: AbortStatus::Http(StatusCode::SERVICE_UNAVAILABLE),
                body: "fault filter abort".into(),
                per_million: 250_000
            }),
        })
    );
    assert_eq!(manager.routes.virtual_hosts[0].routes[0].fault, None);
}

#[test]
fn filter_without_config_or_without_faults_is_empty() {
    let empty = compile(&with_filter(json!({}), json!({}))).unwrap();
    assert_eq!(manager(&empty).fault, Some(Fault::default()));

    let by_name = compile(&bootstrap(
        json!([{"name": "envoy.filters.http.fault"}]),
        json!({}),
    ))
    .unwrap();
    assert_eq!(manager(&by_name).fault, Some(Fault::default()));

    let without = compile(&bootstrap(json!([]), json!({}))).unwrap();
    assert_eq!(manager(&without).fault, None);
}

#[test]
fn route_override_compiles() {
    let config = compile(&with_filter(
        json!({"abort": {"http_status": 500, "percentage": {"numerator": 100}}}),
        json!({"envoy.filters.http.fault": typed(json!({
            "abort": {"grpc_status": 14, "response_body": "unavailable", "percentage": {"numerator": 1, "denominator": "MILLION"}}
        }))}),
    ))
    .unwrap();
    let route = &manager(&config).routes.virtual_hosts[0].routes[0];
    assert_eq!(
        route.fault,
        Some(Fault {
            delay: None,
            abort: Some(FaultAbort {
                status: AbortStatus::Grpc(14),
                body: "unavailable".into(),
                per_million: 1
            }),
        })
    );
}

#[test]
fn percentages_follow_envoy() {
    let abort_share = |percentage: Value| {
        let mut abort = json!({"http_status": 503});
        if !percentage.is_null() {
            abort["percentage"] = percentage;
        }
        let config = compile(&with_filter(json!({"abort": abort}), json!({}))).unwrap();
        manager(&config)
            .fault
            .as_ref()
            .unwrap()
            .abort
            .as_ref()
            .unwrap()
            .per_million
    };
    assert_eq!(abort_share(Value::Null), 0, "unset is 0/100, as in Envoy");
    assert_eq!(abort_share(json!({})), 0);
    assert_eq!(abort_share(json!({"numerator": 50})), 500_000);
    assert_eq!(
        abort_share(json!({"numerator": 5, "denominator": "TEN_THOUSAND"})),
        500
    );
    assert_eq!(
        abort_share(json!({"numerator": 7, "denominator": "MILLION"})),
        7
    );
    assert_eq!(
        abort_share(json!({"numerator": 250})),
        1_000_000,
        "capped at 100%"
    );
    assert_eq!(abort_share(json!({"numerator": u32::MAX})), 1_000_000);
}

#[test]
fn unsupported_fields_are_refused_by_name() {
    let filter = format!("{HCM}.http_filters[0].typed_config");
    let cases = [
        (
            json!({"abort": {"header_abort": {}}}),
            "abort.header_abort: header_abort",
        ),
        (
            json!({"delay": {"header_delay": {}}}),
            "delay.header_delay: header_delay",
        ),
        (
            json!({"max_active_faults": 3}),
            "max_active_faults: max_active_faults",
        ),
        (
            json!({"response_rate_limit": {"fixed_limit": {"limit_kbps": 1}}}),
            "response_rate_limit: response_rate_limit",
        ),
        (
            json!({"downstream_nodes": ["productpage"]}),
            "downstream_nodes: downstream_nodes",
        ),
        (
            json!({"headers": [{"name": "x-user", "present_match": true}]}),
            "headers: headers",
        ),
        (
            json!({"upstream_cluster": "a"}),
            "upstream_cluster: upstream_cluster",
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(
            filter_error(config.clone()),
            format!("{filter}.{expected} is not supported by this proxy")
        );
        let route = format!(
            "{HCM}.route_config.virtual_hosts[0].routes[0].typed_per_filter_config[\"envoy.filters.http.fault\"]"
        );
        assert_eq!(
            route_error(config),
            format!("{route}.{expected} is not supported by this proxy")
        );
    }
}

#[test]
fn invalid_values_are_refused() {
    let filter = format!("{HCM}.http_filters[0].typed_config");
    assert_eq!(
        filter_error(json!({"abort": {"http_status": 700}})),
        format!("{filter}.abort.http_status: 700 is not an HTTP status in [200, 600)")
    );
    assert_eq!(
        filter_error(json!({"abort": {"http_status": 100}})),
        format!("{filter}.abort.http_status: 100 is not an HTTP status in [200, 600)")
    );
    assert_eq!(
        filter_error(json!({"abort": {"percentage": {"numerator": 1}}})),
        format!("{filter}.abort.http_status: http_status or grpc_status is required")
    );
    assert_eq!(
        filter_error(json!({"delay": {"percentage": {"numerator": 1}}})),
        format!("{filter}.delay.fixed_delay: fixed_delay is required")
    );
    assert_eq!(
        filter_error(json!({"delay": {"fixed_delay": "0s"}})),
        format!("{filter}.delay.fixed_delay: the delay must be greater than zero")
    );
}

#[test]
fn per_filter_config_is_only_for_the_fault_filter_on_routes() {
    let routes = format!("{HCM}.route_config.virtual_hosts[0].routes[0]");
    assert_eq!(
        error(with_filter(
            json!({}),
            json!({"envoy.filters.http.ext_authz": {"@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"}})
        )),
        format!(
            "{routes}.typed_per_filter_config[\"envoy.filters.http.ext_authz\"]: per-route config for \"envoy.filters.http.ext_authz\" (only \"envoy.filters.http.fault\") is not supported by this proxy"
        )
    );
    assert_eq!(
        error(with_filter(
            json!({}),
            json!({"envoy.filters.http.fault": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"}})
        )),
        format!(
            "{routes}.typed_per_filter_config[\"envoy.filters.http.fault\"].@type: type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy for the fault filter (only envoy.extensions.filters.http.fault.v3.HTTPFault) is not supported by this proxy"
        )
    );

    let mut on_vhost = with_filter(json!({}), json!({}));
    on_vhost["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"][0]["typed_per_filter_config"] =
        json!({"envoy.filters.http.fault": typed(json!({}))});
    assert_eq!(
        error(on_vhost),
        format!(
            "{HCM}.route_config.virtual_hosts[0].typed_per_filter_config: typed_per_filter_config anywhere but on routes is not supported by this proxy"
        )
    );
}

#[test]
fn filter_placement() {
    let fault = json!({"name": "envoy.filters.http.fault", "typed_config": typed(json!({}))});
    let router = json!({"name": "envoy.filters.http.router"});
    assert_eq!(
        error(bootstrap(json!([router, fault]), json!({}))),
        format!("{HCM}.http_filters[1]: the fault filter must come before the router")
    );
    assert_eq!(
        error(bootstrap(json!([fault, fault]), json!({}))),
        format!("{HCM}.http_filters[1]: more than one fault filter is not supported by this proxy")
    );
    let mut disabled = fault.clone();
    disabled["disabled"] = json!(true);
    assert_eq!(
        error(bootstrap(json!([disabled]), json!({}))),
        format!(
            "{HCM}.http_filters[0].disabled: a disabled fault filter is not supported by this proxy"
        )
    );
}
