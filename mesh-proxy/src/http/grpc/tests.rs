use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use super::{code, is_request, local_reply, percent_encode, status_for, timeout};
use crate::http::Body;
use crate::http::info::ResponseFlags;
use crate::http::proxy;

fn content_type(value: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
    headers
}

async fn body_of(response: Response<Body>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

#[test]
fn grpc_requests_are_told_by_content_type() {
    for grpc in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc;charset=utf-8",
    ] {
        assert!(is_request(&content_type(grpc)), "{grpc}");
    }
    for other in [
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/json",
        "text/plain",
    ] {
        assert!(!is_request(&content_type(other)), "{other}");
    }
    assert!(!is_request(&HeaderMap::new()));
}

#[test]
fn http_statuses_map_as_grpc_documents() {
    let cases = [
        (400, code::INTERNAL),
        (401, code::UNAUTHENTICATED),
        (403, code::PERMISSION_DENIED),
        (404, code::UNIMPLEMENTED),
        (429, code::UNAVAILABLE),
        (502, code::UNAVAILABLE),
        (503, code::UNAVAILABLE),
        (504, code::UNAVAILABLE),
        (500, code::UNKNOWN),
        (418, code::UNKNOWN),
    ];
    for (http, grpc) in cases {
        assert_eq!(
            status_for(StatusCode::from_u16(http).unwrap()),
            grpc,
            "{http}"
        );
    }
}

#[test]
fn messages_are_percent_encoded() {
    assert_eq!(percent_encode(b"plain text"), "plain text");
    assert_eq!(percent_encode("50% \u{e9}\n".as_bytes()), "50%25 %C3%A9%0A");
}

#[tokio::test]
async fn a_local_reply_becomes_trailers_only() {
    let mut reply = proxy::local_reply(
        StatusCode::UNAUTHORIZED,
        "Jwt is expired",
        ResponseFlags::NONE,
    );
    reply.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"x\""),
    );
    let response = local_reply(reply);
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers[CONTENT_TYPE], "application/grpc");
    assert_eq!(headers["grpc-status"], "16");
    assert_eq!(headers["grpc-message"], "Jwt is expired");
    assert_eq!(
        headers[WWW_AUTHENTICATE], "Bearer realm=\"x\"",
        "the challenge stays"
    );
    assert_eq!(body_of(response).await, "");
}

#[tokio::test]
async fn an_empty_text_sends_no_message() {
    let reply = proxy::local_reply(StatusCode::FORBIDDEN, "", ResponseFlags::NONE);
    let response = local_reply(reply);
    assert_eq!(response.headers()["grpc-status"], "7");
    assert!(!response.headers().contains_key("grpc-message"));
}

#[tokio::test]
async fn an_upstream_response_passes_unchanged() {
    let mut upstream = proxy::reply(StatusCode::SERVICE_UNAVAILABLE, Bytes::from_static(b"busy"));
    upstream
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let response = local_reply(upstream);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
    assert!(!response.headers().contains_key("grpc-status"));
    assert_eq!(body_of(response).await, "busy");
}

#[test]
fn grpc_timeouts_are_read_with_their_units() {
    use std::time::Duration;
    let deadline = |value: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", HeaderValue::from_static(value));
        timeout(&headers)
    };
    assert_eq!(deadline("1H"), Some(Duration::from_secs(3600)));
    assert_eq!(deadline("2M"), Some(Duration::from_secs(120)));
    assert_eq!(deadline("3S"), Some(Duration::from_secs(3)));
    assert_eq!(deadline("250m"), Some(Duration::from_millis(250)));
    assert_eq!(deadline("7u"), Some(Duration::from_micros(7)));
    assert_eq!(
        deadline("99999999n"),
        Some(Duration::from_nanos(99_999_999))
    );
    for malformed in ["", "S", "100", "123456789S", "1.5S", "10s", "-1S"] {
        assert_eq!(deadline(malformed), None, "{malformed:?}");
    }
    assert_eq!(timeout(&HeaderMap::new()), None);
}

#[tokio::test]
async fn a_reply_can_carry_its_own_grpc_status() {
    let mut reply = proxy::local_reply(
        StatusCode::GATEWAY_TIMEOUT,
        "downstream duration timeout",
        ResponseFlags::NONE,
    );
    reply
        .extensions_mut()
        .get_mut::<crate::http::info::ResponseInfo>()
        .unwrap()
        .local_grpc_status = Some(code::DEADLINE_EXCEEDED);
    let response = local_reply(reply);
    assert_eq!(response.headers()["grpc-status"], "4");
}
