//! Running code when a response has been sent: access logs and metrics need
//! the final byte count and, for gRPC, the status in the trailers. The hook
//! runs when the body ends, fails, or is dropped because the client went away.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::Body;

/// How a response body ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Done {
    /// Body bytes sent (headers and trailers not included).
    pub body_bytes: u64,
    /// `grpc-status` from the trailers, if they held one.
    pub grpc_status: Option<u32>,
}

/// Returns `response` with a body that calls `hook` once, when it is done.
pub fn when_done<F>(response: Response<Body>, hook: F) -> Response<Body>
where
    F: FnOnce(Done) + Send + Sync + 'static,
{
    let (parts, body) = response.into_parts();
    let body = Observed {
        inner: body,
        done: Done::default(),
        hook: Some(hook),
    };
    Response::from_parts(parts, Body::new(body))
}

/// `grpc-status` as a number, from headers or trailers.
pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

struct Observed<F: FnOnce(Done)> {
    inner: Body,
    done: Done,
    hook: Option<F>,
}

impl<F: FnOnce(Done)> Observed<F> {
    fn finish(&mut self) {
        if let Some(hook) = self.hook.take() {
            hook(self.done);
        }
    }
}

// The hook is only ever moved out, never pinned.
impl<F: FnOnce(Done)> Unpin for Observed<F> {}

impl<F: FnOnce(Done)> HttpBody for Observed<F> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.done.body_bytes += data.len() as u64;
                } else if let Some(trailers) = frame.trailers_ref() {
                    self.done.grpc_status = grpc_status(trailers);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(Done)> Drop for Observed<F> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::{BodyExt, Full};

    use super::*;

    fn collect(response: Response<Body>) -> Bytes {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async { response.into_body().collect().await.unwrap().to_bytes() })
    }

    #[test]
    fn counts_bytes_and_reads_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        let frames = vec![
            Frame::data(Bytes::from_static(b"hello ")),
            Frame::data(Bytes::from_static(b"world")),
            Frame::trailers(trailers),
        ];
        let body = Body::new(Frames(frames.into_iter()));
        let seen = Arc::new(Mutex::new(None));
        let hook = {
            let seen = Arc::clone(&seen);
            move |done| *seen.lock().unwrap() = Some(done)
        };
        let response = when_done(Response::new(body), hook);
        assert_eq!(collect(response), "hello world");
        assert_eq!(
            *seen.lock().unwrap(),
            Some(Done {
                body_bytes: 11,
                grpc_status: Some(14)
            })
        );
    }

    #[test]
    fn a_dropped_body_still_reports() {
        let body = Full::new(Bytes::from_static(b"unread"))
            .map_err(|never| match never {})
            .boxed();
        let seen = Arc::new(Mutex::new(None));
        let hook = {
            let seen = Arc::clone(&seen);
            move |done| *seen.lock().unwrap() = Some(done)
        };
        drop(when_done(Response::new(body), hook));
        assert_eq!(*seen.lock().unwrap(), Some(Done::default()));
    }

    /// A body of ready frames.
    struct Frames(std::vec::IntoIter<Frame<Bytes>>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = hyper::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            Poll::Ready(self.0.next().map(Ok))
        }
    }
}
