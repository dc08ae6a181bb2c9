//! The HTTP path: a connection manager per listener that routes each request
//! and forwards it, or answers it locally.

pub mod access;
pub mod access_log;
pub mod client_cert;
pub mod cors;
pub mod fault;
pub mod forward;
pub mod grpc;
pub mod info;
pub mod jwt;
pub mod mirror;
pub mod observe;
pub mod proxy;
pub mod route;
pub mod server;
pub mod upgrade;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

/// Response bodies: streamed from upstream or made here.
pub type Body = BoxBody<Bytes, hyper::Error>;
