//! Request mirroring: a copy of the request goes to another cluster, its
//! answer is dropped. Only bodies small enough to buffer are mirrored.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};

use crate::config::Mirror;
use crate::http::fault::chance;
use crate::upstream::Upstreams;

/// Sends the copies this request is chosen for, without waiting for them.
pub fn send_copies(
    upstreams: &Upstreams,
    mirrors: &[Mirror],
    parts: &Parts,
    path_and_query: &str,
    body: &Bytes,
) {
    for mirror in mirrors.iter().filter(|m| chance(m.per_million)) {
        let Some(upstream) = upstreams.get(&mirror.cluster).cloned() else {
            continue;
        };
        let Some(pick) = upstream.pick_for(parts) else {
            continue;
        };
        let Ok(uri) = path_and_query.parse::<Uri>() else {
            continue;
        };
        let mut copy = parts.clone();
        copy.uri = uri;
        if mirror.shadow_suffix {
            shadow_host(&mut copy);
        }
        let request = Request::from_parts(
            copy,
            Full::new(body.clone())
                .map_err(|never| match never {})
                .boxed(),
        );
        tokio::spawn(async move {
            match upstream.pool.send(&pick, request).await {
                Ok(response) => {
                    upstream.stats.response(response.status().as_u16());
                    // Read the answer to the end so the connection can be reused.
                    let _ = response.into_body().collect().await;
                }
                Err(err) => {
                    tracing::debug!(cluster = %upstream.cluster.name, error = %err, "mirror failed")
                }
            }
        });
    }
}

/// `reviews:9080` becomes `reviews-shadow:9080`, as Envoy marks mirrored traffic.
fn shadow_host(parts: &mut Parts) {
    let Some(host) = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return;
    };
    let shadow = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{name}-shadow:{port}")
        }
        _ => format!("{host}-shadow"),
    };
    if let Ok(value) = HeaderValue::from_str(&shadow) {
        parts.headers.insert(header::HOST, value);
    }
}
