//! `with_request_body`: the start of the request body is read before the
//! authorizer is asked, and the whole body still goes upstream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::config::BodyBuffer;
use crate::http::Body;

/// What the authorizer is sent of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub bytes: Bytes,
    /// The body is longer than what is sent.
    pub partial: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the body is longer than the authorizer may be sent")]
    TooLarge,
    #[error("reading the body: {0}")]
    Client(#[from] hyper::Error),
}

/// Reads up to `limit.max_bytes` of `body`: what to send the authorizer,
/// and the body to forward, whole. A longer body is refused unless
/// `allow_partial`.
pub async fn read(mut body: Body, limit: BodyBuffer) -> Result<(Sent, Body), ReadError> {
    let mut frames = VecDeque::new();
    let mut data = BytesMut::new();
    let mut ended = false;
    // Past the limit, or at it with more to come, the body is too long.
    while data.len() <= limit.max_bytes && !ended {
        if data.len() == limit.max_bytes && body.is_end_stream() {
            ended = true;
            break;
        }
        match body.frame().await {
            Some(frame) => {
                let frame = frame?;
                if let Some(chunk) = frame.data_ref() {
                    data.extend_from_slice(chunk);
                }
                frames.push_back(frame);
            }
            None => ended = true,
        }
    }
    let partial = !ended;
    if partial && !limit.allow_partial {
        return Err(ReadError::TooLarge);
    }
    let bytes = data.freeze();
    let sent = Sent {
        bytes: bytes.slice(..bytes.len().min(limit.max_bytes)),
        partial,
    };
    let rest = (!ended).then_some(body);
    Ok((sent, Body::new(Replay { frames, rest })))
}

/// The frames already read, then the rest of the body.
struct Replay {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<Body>,
}

impl HttpBody for Replay {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(frame) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match &mut self.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        let mut hint = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |r| r.size_hint());
        // The upper bound first: a lower bound above it is refused.
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + buffered);
        }
        hint.set_lower(hint.lower() + buffered);
        hint
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{Full, StreamBody};

    use super::*;

    fn chunked(chunks: &[&'static str]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, hyper::Error>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        BodyExt::boxed(StreamBody::new(tokio_stream::iter(frames)))
    }

    fn limit(max_bytes: usize, allow_partial: bool) -> BodyBuffer {
        BodyBuffer {
            max_bytes,
            allow_partial,
            pack_as_bytes: false,
        }
    }

    async fn whole(body: Body) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_short_body_is_sent_whole_and_forwarded_whole() {
        let (sent, body) = read(chunked(&["ab", "cd"]), limit(10, false))
            .await
            .unwrap();
        assert_eq!(sent.bytes, "abcd");
        assert!(!sent.partial);
        assert_eq!(whole(body).await, "abcd");

        let exact = Full::new(Bytes::from_static(b"abcd"))
            .map_err(|never| match never {})
            .boxed();
        let (sent, body) = read(exact, limit(4, false)).await.unwrap();
        assert_eq!((sent.bytes.as_ref(), sent.partial), (&b"abcd"[..], false));
        assert_eq!(whole(body).await, "abcd");
    }

    #[tokio::test]
    async fn a_long_body_is_cut_or_refused() {
        let (sent, body) = read(chunked(&["abc", "def", "gh"]), limit(4, true))
            .await
            .unwrap();
        assert_eq!(sent.bytes, "abcd");
        assert!(sent.partial);
        assert_eq!(whole(body).await, "abcdefgh", "forwarded whole");
        let refused = read(chunked(&["abc", "def"]), limit(4, false)).await;
        assert!(matches!(refused, Err(ReadError::TooLarge)));
    }
}
