//! gRPC over hyper, for the control plane's services: messages read from a
//! request body one at a time, and response bodies written from a channel
//! of frames ending with the status in trailers.
//!
//! Written here rather than taken from tonic's server for two reasons of
//! scale: tonic encodes each response into a buffer of its own (a push of
//! the mesh's config to two thousand proxies would hold two thousand
//! copies), and keeps a stream's read buffer at the size of its largest
//! message (a sidecar's EDS request names thousands of clusters). tonic
//! still gives the status codes and their headers.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::http::{HeaderMap, HeaderValue, Response, header};
use prost::Message;
use tokio::sync::mpsc;
use tonic::{Code, Status};

/// The largest request read, as tonic's default.
const MAX_MESSAGE: usize = 4 << 20;
/// A gRPC message's prefix: a compression flag and a length.
const MESSAGE_PREFIX: usize = 5;

/// A response body: gRPC messages, then the status in trailers.
#[derive(Debug, Default)]
pub struct Body {
    frames: Option<mpsc::Receiver<Frame<Bytes>>>,
}

impl Body {
    /// A body written by whoever holds the sender.
    pub fn from_channel(frames: mpsc::Receiver<Frame<Bytes>>) -> Body {
        Body {
            frames: Some(frames),
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.frames {
            Some(frames) => frames.poll_recv(cx).map(|frame| frame.map(Ok)),
            None => Poll::Ready(None),
        }
    }
}

/// The frames of a response body.
pub type Frames = mpsc::Sender<Frame<Bytes>>;

/// Ends a stream with `status` in its trailers.
pub async fn finish(tx: &Frames, status: &Status) {
    let _ = tx.send(Frame::trailers(trailers(status))).await;
}

fn trailers(status: &Status) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    if status.add_header(&mut trailers).is_err() {
        trailers.insert(
            Status::GRPC_STATUS,
            HeaderValue::from(Code::Internal as i32),
        );
    }
    trailers
}

/// The response of a unary call: its message and an OK status, or the
/// error status alone.
pub fn unary<M: Message>(result: Result<M, Status>) -> Response<Body> {
    let message = match result {
        Ok(message) => message,
        Err(status) => return status.into_http(),
    };
    let encoded = message.encode_to_vec();
    let mut data = BytesMut::with_capacity(MESSAGE_PREFIX + encoded.len());
    data.put_u8(0);
    data.put_u32(u32::try_from(encoded.len()).unwrap_or(u32::MAX));
    data.put_slice(&encoded);
    let (tx, rx) = mpsc::channel(2);
    // Room for both frames: nothing waits.
    let _ = tx.try_send(Frame::data(data.freeze()));
    let _ = tx.try_send(Frame::trailers(trailers(&Status::ok(""))));
    let mut response = Response::new(Body::from_channel(rx));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The messages of a request body, read one at a time; the buffer is let
/// go after each.
#[derive(Debug)]
pub struct Messages<M> {
    body: Incoming,
    buffer: BytesMut,
    message: std::marker::PhantomData<fn() -> M>,
}

impl<M: Message + Default> Messages<M> {
    pub fn new(body: Incoming) -> Messages<M> {
        Messages {
            body,
            buffer: BytesMut::new(),
            message: std::marker::PhantomData,
        }
    }

    /// The next message; `None` when the client ended the stream.
    pub async fn message(&mut self) -> Result<Option<M>, Status> {
        loop {
            if let Some(message) = self.take()? {
                return Ok(Some(message));
            }
            match self.body.frame().await {
                None if self.buffer.is_empty() => return Ok(None),
                None => {
                    return Err(Status::invalid_argument(
                        "the stream ended inside a message",
                    ));
                }
                Some(Err(err)) => return Err(Status::from_error(Box::new(err))),
                Some(Ok(frame)) => {
                    // Trailers carry nothing a request needs.
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// A whole message from the buffer, if one is there.
    fn take(&mut self) -> Result<Option<M>, Status> {
        let Some(prefix) = self.buffer.get(..MESSAGE_PREFIX) else {
            return Ok(None);
        };
        if prefix[0] != 0 {
            return Err(Status::unimplemented("compressed requests are not read"));
        }
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if length > MAX_MESSAGE {
            return Err(Status::resource_exhausted(format!(
                "a request of {length} bytes is over the limit of {MAX_MESSAGE}"
            )));
        }
        if self.buffer.len() < MESSAGE_PREFIX + length {
            return Ok(None);
        }
        self.buffer.advance(MESSAGE_PREFIX);
        let message = self.buffer.split_to(length);
        if self.buffer.is_empty() {
            // Let the allocation go with the message.
            self.buffer = BytesMut::new();
        }
        M::decode(message)
            .map(Some)
            .map_err(|err| Status::invalid_argument(format!("a request does not read: {err}")))
    }
}
