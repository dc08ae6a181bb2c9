//! HTTP/1.1 upgrades (WebSocket): the request goes upstream with its
//! `Upgrade` header; on `101 Switching Protocols` both connections are
//! handed over and bytes are copied both ways until either side closes.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::Body;
use super::info::ResponseFlags;
use super::proxy::local_reply;
use crate::upstream::Upstream;

/// Whether the client asks to switch protocols.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

/// Forwards an upgrade request; `parts` already has its hop-by-hop headers removed.
pub async fn forward(
    upstream: &Upstream,
    mut parts: Parts,
    protocol: HeaderValue,
    path_and_query: &str,
    body: Body,
) -> Response<Body> {
    let Some(client_side) = parts.extensions.remove::<OnUpgrade>() else {
        return local_reply(
            StatusCode::BAD_REQUEST,
            "upgrade not possible on this connection",
            ResponseFlags::NONE,
        );
    };
    let Some(pick) = upstream.pick_for(&parts) else {
        upstream.stats.response(503);
        return local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy upstream",
            ResponseFlags::UH,
        );
    };
    let Ok(uri) = path_and_query.parse::<Uri>() else {
        return local_reply(StatusCode::BAD_REQUEST, "invalid path", ResponseFlags::NONE);
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    parts.headers.insert(header::UPGRADE, protocol);
    let request = Request::from_parts(parts, body);
    let mut response = match upstream.pool.send(&pick, request).await {
        Ok(response) => response,
        Err(_) => {
            upstream.stats.response(503);
            return local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers",
                ResponseFlags::UF,
            );
        }
    };
    upstream.stats.response(response.status().as_u16());
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let server_side = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let _in_flight = pick;
            let (Ok(client), Ok(server)) = (client_side.await, server_side.await) else {
                return;
            };
            let (mut client, mut server) = (TokioIo::new(client), TokioIo::new(server));
            if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
                tracing::debug!(error = %err, "upgraded connection ended with an error");
            }
        });
    }
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, body.boxed())
}
