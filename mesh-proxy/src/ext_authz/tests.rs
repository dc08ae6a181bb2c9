use envoy_types::pb::envoy::service::auth::v3::{CheckResponse, check_response};
use http::header::HeaderMap;
use serde_json::json;

use super::*;
use crate::config::{AuthzService, HttpAccess, HttpService};
use crate::testing::access_filter;

/// The `ext_authz` filter compiled from `config`.
fn filter(config: serde_json::Value) -> crate::config::ExtAuthz {
    let type_url = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
    match access_filter("envoy.filters.http.ext_authz", type_url, config, &["authz"]) {
        HttpAccess::ExtAuthz(filter) => filter,
        _ => panic!("an ext_authz filter"),
    }
}

fn http_filter() -> crate::config::ExtAuthz {
    filter(json!({"http_service": {
        "server_uri": {"uri": "http://authz", "cluster": "authz", "timeout": "1s"},
        "authorization_response": {
            "allowed_upstream_headers": {"patterns": [{"exact": "x-user"}]},
            "allowed_upstream_headers_to_append": {"patterns": [{"exact": "x-tag"}]},
            "allowed_client_headers_on_success": {"patterns": [{"prefix": "x-seen"}]}
        }
    }}))
}

fn service(filter: &crate::config::ExtAuthz) -> &HttpService {
    match &filter.service {
        AuthzService::Http(service) => service,
        AuthzService::Grpc { .. } => panic!("an HTTP service"),
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
}

#[test]
fn an_http_200_allows_with_the_headers_picked() {
    let filter = http_filter();
    let answer = headers(&[
        ("x-user", "alice"),
        ("x-tag", "a"),
        ("x-seen-by", "authz"),
        ("x-secret", "s"),
        ("content-length", "0"),
    ]);
    let verdict =
        http_service::verdict(service(&filter), StatusCode::OK, answer, Bytes::new()).unwrap();
    let Verdict::Allow(allowance) = verdict else {
        panic!("allowed");
    };
    let upstream: Vec<(&str, &str, bool)> = allowance
        .upstream
        .iter()
        .map(|(n, v, append)| (n.as_str(), v.to_str().unwrap(), *append))
        .collect();
    assert_eq!(upstream, [("x-user", "alice", false), ("x-tag", "a", true)]);
    assert_eq!(allowance.response, headers(&[("x-seen-by", "authz")]));
}

#[test]
fn other_http_answers_deny_and_5xx_is_an_error() {
    let filter = http_filter();
    let answer = headers(&[
        ("x-reason", "no"),
        ("host", "authz"),
        ("content-length", "6"),
    ]);
    let verdict = http_service::verdict(
        service(&filter),
        StatusCode::UNAUTHORIZED,
        answer,
        Bytes::from_static(b"denied"),
    )
    .unwrap();
    assert_eq!(
        verdict,
        Verdict::Deny {
            status: StatusCode::UNAUTHORIZED,
            headers: headers(&[("x-reason", "no")]),
            body: Bytes::from_static(b"denied"),
        },
        "every header but host and the framing, when none is picked"
    );
    let failed = http_service::verdict(
        service(&filter),
        StatusCode::SERVICE_UNAVAILABLE,
        HeaderMap::new(),
        Bytes::new(),
    );
    assert!(matches!(failed, Err(AskError::Failed(s)) if s == 503));
}

#[test]
fn grpc_statuses_decide() {
    use envoy_types::pb::envoy::config::core::v3::{HeaderValue as Header, HeaderValueOption};
    use envoy_types::pb::envoy::service::auth::v3::{DeniedHttpResponse, OkHttpResponse};
    use envoy_types::pb::envoy::r#type::v3::HttpStatus;
    use envoy_types::pb::google::rpc::Status;

    let option = |key: &str, value: &str| HeaderValueOption {
        header: Some(Header {
            key: key.into(),
            value: value.into(),
            ..Header::default()
        }),
        ..HeaderValueOption::default()
    };
    let ok = CheckResponse {
        status: Some(Status::default()),
        http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
            headers: vec![option("x-user", "alice")],
            headers_to_remove: vec!["x-token".into()],
            ..OkHttpResponse::default()
        })),
        ..CheckResponse::default()
    };
    let Ok(Verdict::Allow(allowance)) = grpc::verdict(ok) else {
        panic!("allowed");
    };
    assert_eq!(allowance.upstream.len(), 1);
    assert_eq!(allowance.remove, ["x-token"]);

    let denied = CheckResponse {
        status: Some(Status {
            code: 7,
            ..Status::default()
        }),
        http_response: Some(check_response::HttpResponse::DeniedResponse(
            DeniedHttpResponse {
                status: Some(HttpStatus { code: 401 }),
                headers: vec![option("x-reason", "no")],
                body: "go away".into(),
            },
        )),
        ..CheckResponse::default()
    };
    assert_eq!(
        grpc::verdict(denied).unwrap(),
        Verdict::Deny {
            status: StatusCode::UNAUTHORIZED,
            headers: headers(&[("x-reason", "no")]),
            body: Bytes::from_static(b"go away"),
        }
    );
    let bare = CheckResponse {
        status: Some(Status {
            code: 7,
            ..Status::default()
        }),
        ..CheckResponse::default()
    };
    assert!(matches!(
        grpc::verdict(bare),
        Ok(Verdict::Deny { status, .. }) if status == StatusCode::FORBIDDEN
    ));
}

#[test]
fn check_requests_carry_the_allowed_headers_and_the_body() {
    let filter = filter(json!({
        "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}},
        "allowed_headers": {"patterns": [{"prefix": "x-"}]},
        "with_request_body": {"max_request_bytes": 4, "allow_partial_message": true}
    }));
    let (mut parts, ()) = http::Request::post("/orders?id=1")
        .header("host", "shop")
        .header("x-user", "alice")
        .header("cookie", "secret")
        .body(())
        .unwrap()
        .into_parts();
    parts.extensions.insert(Downstream {
        remote: "10.0.0.2:5000".parse().unwrap(),
        local: "10.0.0.1:8080".parse().unwrap(),
        restored: false,
    });
    let sent = body::Sent {
        bytes: Bytes::from_static(b"abcd"),
        partial: true,
    };
    let request = grpc::check_request(&filter, &parts, Some(&sent));
    let attributes = request.attributes.unwrap();
    let http = attributes.request.unwrap().http.unwrap();
    assert_eq!(http.method, "POST");
    assert_eq!(http.path, "/orders?id=1");
    assert_eq!(http.host, "shop");
    assert_eq!(http.body, "abcd");
    assert_eq!(http.headers["x-user"], "alice");
    assert_eq!(http.headers["x-envoy-auth-partial-body"], "true");
    assert_eq!(http.headers[":method"], "POST");
    assert!(!http.headers.contains_key("cookie"), "not allowed");
    let source = attributes.source.unwrap().address.unwrap().address.unwrap();
    let address::Address::SocketAddress(source) = source else {
        panic!("a socket address");
    };
    assert_eq!(source.address, "10.0.0.2");
}
