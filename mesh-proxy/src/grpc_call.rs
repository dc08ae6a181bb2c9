//! Unary gRPC calls the proxy makes itself (span export, external
//! authorization): one of the cluster's endpoints, its connection pool
//! (TLS included) over HTTP/2 whatever the cluster's own protocol, a
//! length-prefixed message each way, and the status in the headers or
//! trailers. The endpoint is told how the call went, for outlier
//! detection and least-request balancing.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use prost::Message;

use crate::http::observe::grpc_status;
use crate::upstream::Upstream;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the cluster has no endpoint")]
    NoEndpoint,
    #[error("{0}")]
    Request(#[from] crate::upstream::SendError),
    #[error("reading the answer: {0}")]
    Body(#[from] hyper::Error),
    #[error("the server answered HTTP {0}")]
    Http(StatusCode),
    #[error("the server answered grpc-status {0:?}")]
    Grpc(Option<u32>),
    #[error("the answer is not a {0}")]
    Decode(&'static str),
}

/// Calls `path` (`/package.Service/Method`) on one of `upstream`'s endpoints.
pub async fn unary<Q, A>(
    upstream: &Upstream,
    path: &'static str,
    request: &Q,
) -> Result<A, CallError>
where
    Q: Message,
    A: Message + Default,
{
    let pick = upstream.balancer.pick().ok_or(CallError::NoEndpoint)?;
    let mut call = Request::new(
        Full::new(frame(request))
            .map_err(|never| match never {})
            .boxed(),
    );
    *call.method_mut() = http::Method::POST;
    *call.uri_mut() = Uri::from_static(path);
    *call.version_mut() = http::Version::HTTP_2;
    let headers = call.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    let response = upstream.grpc_pool().send(&pick, call).await;
    pick.report(response.as_ref().map_or(503, |r| r.status().as_u16()));
    let response = response?;
    if response.status() != StatusCode::OK {
        return Err(CallError::Http(response.status()));
    }
    let in_headers = grpc_status(response.headers());
    let collected = response.into_body().collect().await?;
    let status = in_headers.or_else(|| collected.trailers().and_then(grpc_status));
    if status != Some(0) {
        return Err(CallError::Grpc(status));
    }
    unframe(collected.to_bytes()).ok_or(CallError::Decode(std::any::type_name::<A>()))
}

/// gRPC's framing: no compression, the length, the message.
fn frame(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut buffer = BytesMut::with_capacity(5 + len);
    buffer.put_u8(0);
    buffer.put_u32(len as u32);
    message
        .encode(&mut buffer)
        .expect("the buffer has room for the message");
    buffer.freeze()
}

/// The one uncompressed message of a unary answer.
fn unframe<A: Message + Default>(mut bytes: Bytes) -> Option<A> {
    if bytes.len() < 5 || bytes.get_u8() != 0 {
        return None;
    }
    let len = bytes.get_u32() as usize;
    if bytes.len() < len {
        return None;
    }
    A::decode(bytes.split_to(len)).ok()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
    use envoy_types::pb::google::rpc::Status;

    use super::*;

    #[test]
    fn messages_survive_the_framing() {
        let response = CheckResponse {
            status: Some(Status {
                code: 7,
                ..Status::default()
            }),
            ..CheckResponse::default()
        };
        let framed = frame(&response);
        assert_eq!(framed[0], 0, "not compressed");
        assert_eq!(unframe::<CheckResponse>(framed), Some(response));
        assert_eq!(unframe::<CheckResponse>(Bytes::from_static(&[1, 0])), None);
        assert_eq!(
            unframe::<CheckResponse>(Bytes::from_static(&[0, 0, 0, 0, 9, 1])),
            None,
            "shorter than it says"
        );
    }
}
