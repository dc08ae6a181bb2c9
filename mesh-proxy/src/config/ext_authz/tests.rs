use prost::{Message, Name};
use serde_json::{Value, json};

use super::*;
use crate::testing::proto;

fn any<M: Message + Name + Default>(config: &Value) -> Any {
    let message: M = proto(config);
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn at() -> At {
    At::resource("listener", "inbound").field("typed_config")
}

fn http(config: Value) -> Result<ExtAuthz, ConfigError> {
    http_filter(&any::<EnvoyExtAuthz>(&config), &at())
}

/// istiod's filter for an `envoyExtAuthzHttp` provider.
fn istio_http() -> Value {
    json!({
        "http_service": {
            "server_uri": {"uri": "http://authz.foo.svc.cluster.local",
                "cluster": "outbound|9000||authz.foo.svc.cluster.local", "timeout": "10s"},
            "path_prefix": "/check",
            "authorization_request": {"headers_to_add": [{"key": "x-header-1", "value": "value-1"}]},
            "authorization_response": {
                "allowed_upstream_headers": {"patterns": [{"exact": "Authorization", "ignore_case": true}]},
                "allowed_client_headers": {"patterns": [{"prefix": "x-prefix-", "ignore_case": true}]},
                "allowed_client_headers_on_success": {"patterns": [{"suffix": "-suffix", "ignore_case": true}]}
            }
        },
        "allowed_headers": {"patterns": [{"exact": "X-Custom-Id", "ignore_case": true}]},
        "failure_mode_allow": true,
        "status_on_error": {"code": "ServiceUnavailable"},
        "transport_api_version": "V3",
        "with_request_body": {"max_request_bytes": 2048, "allow_partial_message": true},
        "filter_enabled_metadata": {"filter": "envoy.filters.http.rbac",
            "path": [{"key": "istio_ext_authz_shadow_effective_policy_id"}],
            "value": {"string_match": {"prefix": "istio-ext-authz-default"}}}
    })
}

#[test]
fn compiles_what_istiod_writes_for_an_http_provider() {
    let filter = http(istio_http()).unwrap();
    let AuthzService::Http(service) = &filter.service else {
        panic!("an HTTP service");
    };
    assert_eq!(
        service.cluster,
        "outbound|9000||authz.foo.svc.cluster.local"
    );
    assert_eq!(service.path_prefix, "/check");
    assert_eq!(filter.timeout, Duration::from_secs(10));
    assert_eq!(service.headers_to_add[0].0, "x-header-1");
    assert!(any_matches(&service.upstream_headers, "authorization"));
    assert!(any_matches(&service.client_headers, "x-prefix-session"));
    assert!(any_matches(
        &service.client_headers_on_success,
        "x-a-suffix"
    ));
    assert!(
        any_matches(&filter.allowed_headers, "x-custom-id"),
        "case folded"
    );
    assert!(!any_matches(&filter.allowed_headers, "x-other"));
    assert!(filter.failure_mode_allow);
    assert_eq!(filter.status_on_error, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        filter.with_request_body,
        Some(BodyBuffer {
            max_bytes: 2048,
            allow_partial: true,
            pack_as_bytes: false
        })
    );
    assert!(filter.enabled_when.is_some());
}

#[test]
fn a_grpc_authorizer_waits_200ms_unless_told_and_errors_answer_403() {
    let filter = http(json!({"grpc_service": {"envoy_grpc": {
        "cluster_name": "outbound|9000||authz.foo.svc.cluster.local",
        "authority": "authz.foo.svc.cluster.local"}}}))
    .unwrap();
    assert!(
        matches!(&filter.service, AuthzService::Grpc { cluster } if cluster.starts_with("outbound|9000"))
    );
    assert_eq!(filter.timeout, DEFAULT_GRPC_TIMEOUT);
    assert_eq!(filter.status_on_error, StatusCode::FORBIDDEN);
    assert!(filter.allowed_headers.is_empty());

    let network: EnvoyNetworkExtAuthz = proto(&json!({
        "stat_prefix": "tcp.",
        "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}, "timeout": "0.5s"},
        "failure_mode_allow": true,
        "transport_api_version": "V3"
    }));
    let network = network_filter(
        &Any {
            type_url: EnvoyNetworkExtAuthz::type_url(),
            value: network.encode_to_vec(),
        },
        &at(),
    )
    .unwrap();
    assert_eq!(network.cluster, "authz");
    assert_eq!(network.timeout, Duration::from_millis(500));
    assert!(network.failure_mode_allow);
}

#[test]
fn unsupported_fields_are_refused_by_name() {
    let refused = |field: &str, value: Value| {
        let mut config = istio_http();
        config[field] = value;
        http(config).unwrap_err()
    };
    let err = refused("include_peer_certificate", json!(true));
    assert_eq!(err.field, "typed_config.include_peer_certificate");
    let err = refused("transport_api_version", json!("V2"));
    assert_eq!(err.field, "typed_config.transport_api_version");
    let err = refused("status_on_error", json!({"code": "Continue"}));
    assert!(err.reason.contains("100"), "{err}");

    let mut google =
        json!({"grpc_service": {"google_grpc": {"target_uri": "x", "stat_prefix": "y"}}});
    let err = http(google.take()).unwrap_err();
    assert_eq!(err.field, "typed_config.grpc_service.google_grpc");
    let err = http(json!({"http_service": {"server_uri": {"uri": "http://a", "cluster": "a"}}}))
        .unwrap_err();
    assert_eq!(err.field, "typed_config.http_service.server_uri.timeout");
    let err = http(json!({})).unwrap_err();
    assert!(err.reason.contains("grpc_service or http_service"), "{err}");
}
