//! `tcp_proxy`: bytes both ways between the client and an endpoint.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpStream;

use crate::upstream::Upstream;

/// Proxies one accepted connection; half-closes are passed on.
pub async fn proxy_connection(upstream: Arc<Upstream>, mut client: TcpStream) {
    let Some(pick) = upstream.balancer.pick() else {
        tracing::debug!(cluster = %upstream.cluster.name, "no endpoint; closing the connection");
        return;
    };
    let address = pick.endpoint().address;
    let connect = tokio::time::timeout(
        upstream.cluster.connect_timeout,
        TcpStream::connect(address),
    );
    let mut server = match connect.await {
        Ok(Ok(server)) => server,
        _ => {
            upstream
                .stats
                .cx_connect_fail
                .fetch_add(1, Ordering::Relaxed);
            // Outlier detection counts a connect failure as a 503, and a
            // connection as a success, as Envoy's tcp_proxy reports them.
            pick.report(503);
            return;
        }
    };
    pick.report(200);
    upstream.stats.cx_total.fetch_add(1, Ordering::Relaxed);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
        tracing::debug!(%address, error = %err, "tcp proxy connection ended with an error");
    }
}
