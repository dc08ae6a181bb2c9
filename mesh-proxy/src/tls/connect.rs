//! Connections to a cluster's endpoints, over TLS for those whose transport
//! socket says so. A failed handshake is a failed connection: it fails the
//! connect (so retries on `connect-failure` and the `UF` flag apply) and is
//! counted under the cluster's `ssl.*` stats, as Envoy names them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::{CertificateError, Error as TlsFailure};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::ClientTls;

/// Why a TLS connection to an endpoint failed; the text is what access logs
/// print as `UPSTREAM_TRANSPORT_FAILURE_REASON`.
#[derive(Debug, thiserror::Error)]
#[error("TLS error: {0}")]
pub struct HandshakeError(pub String);

/// The `ssl.*` counters of a cluster with TLS endpoints.
#[derive(Debug, Default)]
pub struct TlsStats {
    pub handshake: AtomicU64,
    pub connection_error: AtomicU64,
    pub fail_verify_error: AtomicU64,
    pub fail_verify_san: AtomicU64,
}

impl TlsStats {
    pub fn render(&self, label: &str, out: &mut String) {
        let series = [
            ("handshake", &self.handshake),
            ("connection_error", &self.connection_error),
            ("fail_verify_error", &self.fail_verify_error),
            ("fail_verify_san", &self.fail_verify_san),
        ];
        for (name, value) in series {
            let _ = writeln!(
                out,
                "envoy_cluster_ssl_{name}{{{label}}} {}",
                value.load(Ordering::Relaxed)
            );
        }
    }

    fn failed(&self, err: &io::Error) {
        self.connection_error.fetch_add(1, Ordering::Relaxed);
        let verify = match err.get_ref().and_then(|e| e.downcast_ref::<TlsFailure>()) {
            Some(TlsFailure::InvalidCertificate(CertificateError::NotValidForName)) => {
                &self.fail_verify_san
            }
            Some(TlsFailure::InvalidCertificate(_)) => &self.fail_verify_error,
            _ => return,
        };
        verify.fetch_add(1, Ordering::Relaxed);
    }
}

/// A connection to an endpoint, plain or TLS.
#[derive(Debug)]
pub enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Completes the TLS handshake on `tcp`, within `limit`.
pub async fn connect(
    tls: &ClientTls,
    endpoint: SocketAddr,
    tcp: TcpStream,
    limit: Duration,
    stats: &TlsStats,
) -> Result<UpstreamIo, HandshakeError> {
    let connector = TlsConnector::from(Arc::clone(&tls.config));
    let handshake = connector.connect(tls.server_name(endpoint), tcp);
    let result = match tokio::time::timeout(limit, handshake).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "handshake timed out",
        )),
    };
    match result {
        Ok(stream) => {
            stats.handshake.fetch_add(1, Ordering::Relaxed);
            Ok(UpstreamIo::Tls(Box::new(stream)))
        }
        Err(err) => {
            stats.failed(&err);
            tracing::debug!(%endpoint, error = %err, "upstream TLS handshake failed");
            Err(HandshakeError(err.to_string()))
        }
    }
}

/// Why a connection to an endpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to {endpoint}: {source}")]
    Tcp {
        endpoint: SocketAddr,
        source: io::Error,
    },
    #[error("connecting to {0}: timed out")]
    TimedOut(SocketAddr),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

/// Connections to a cluster's endpoints: TCP with `TCP_NODELAY`, then TLS
/// for the endpoints whose transport socket asks for it, each step within
/// the cluster's connect timeout.
#[derive(Debug, Clone)]
pub struct Connector {
    tls: Arc<HashMap<SocketAddr, Arc<ClientTls>>>,
    timeout: Duration,
    stats: Arc<TlsStats>,
    /// The local address connections come from, when not the kernel's choice.
    bind: Option<SocketAddr>,
    /// TLS for addresses outside the map (an ORIGINAL_DST cluster's).
    others: Option<Arc<ClientTls>>,
}

impl Connector {
    pub fn new(
        tls: Arc<HashMap<SocketAddr, Arc<ClientTls>>>,
        timeout: Duration,
        stats: Arc<TlsStats>,
    ) -> Connector {
        Connector {
            tls,
            timeout,
            stats,
            bind: None,
            others: None,
        }
    }

    /// Connections to addresses outside the map speak `tls`, when given:
    /// an ORIGINAL_DST cluster's endpoints are not known in advance.
    pub fn others_with(mut self, tls: Option<Arc<ClientTls>>) -> Connector {
        self.others = tls;
        self
    }

    /// Connections come from `bind` (Istio binds inbound passthrough
    /// connections to 127.0.0.6, which its iptables rules let through).
    pub fn bound_to(mut self, bind: Option<SocketAddr>) -> Connector {
        self.bind = bind;
        self
    }

    /// How long each step of a connection may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn connect(&self, endpoint: SocketAddr) -> Result<UpstreamIo, ConnectError> {
        let tcp = match tokio::time::timeout(self.timeout, self.tcp(endpoint)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => return Err(ConnectError::Tcp { endpoint, source }),
            Err(_) => return Err(ConnectError::TimedOut(endpoint)),
        };
        // Requests and responses are written whole; Nagle would only delay them.
        let _ = tcp.set_nodelay(true);
        match self.tls.get(&endpoint).or(self.others.as_ref()) {
            Some(tls) => Ok(connect(tls, endpoint, tcp, self.timeout, &self.stats).await?),
            None => Ok(UpstreamIo::Plain(tcp)),
        }
    }
}

impl Connector {
    async fn tcp(&self, endpoint: SocketAddr) -> io::Result<TcpStream> {
        let Some(bind) = self.bind else {
            return TcpStream::connect(endpoint).await;
        };
        let socket = match endpoint {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(bind)?;
        socket.connect(endpoint).await
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
