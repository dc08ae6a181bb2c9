//! `tcp_proxy`: bytes both ways between the client and an endpoint, over
//! TLS to the endpoints whose transport socket says so.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tls::{self, UpstreamIo};
use crate::upstream::Upstream;

/// Proxies one accepted connection; half-closes are passed on.
pub async fn proxy_connection<S>(upstream: Arc<Upstream>, mut client: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(pick) = upstream.balancer.pick() else {
        tracing::debug!(cluster = %upstream.cluster.name, "no endpoint; closing the connection");
        return;
    };
    let address = pick.endpoint().address;
    let Some(mut server) = connect(&upstream, address).await else {
        upstream
            .stats
            .cx_connect_fail
            .fetch_add(1, Ordering::Relaxed);
        // Outlier detection counts a connect failure as a 503, and a
        // connection as a success, as Envoy's tcp_proxy reports them.
        pick.report(503);
        return;
    };
    pick.report(200);
    upstream.stats.cx_total.fetch_add(1, Ordering::Relaxed);
    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
        tracing::debug!(%address, error = %err, "tcp proxy connection ended with an error");
    }
}

/// A connection to the endpoint, with the TLS handshake done if it has TLS;
/// both within the cluster's connect timeout.
async fn connect(upstream: &Upstream, address: SocketAddr) -> Option<UpstreamIo> {
    let limit = upstream.cluster.connect_timeout;
    let tcp = tokio::time::timeout(limit, TcpStream::connect(address))
        .await
        .ok()?
        .ok()?;
    let _ = tcp.set_nodelay(true);
    let (Some(tls), Some(stats)) = (upstream.tls.get(&address), &upstream.stats.tls) else {
        return Some(UpstreamIo::Plain(tcp));
    };
    tls::connect(tls, address, tcp, limit, stats).await.ok()
}
