//! `tcp_proxy`: bytes both ways between the client and an endpoint, over
//! TLS to the endpoints whose transport socket says so.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::activity::{self, Activity, Ended};
use crate::config::ClientConnections;
use crate::lb::Downstream;
use crate::telemetry::TcpTelemetry;
use crate::telemetry::metrics::TcpSeries;
use crate::upstream::Upstream;

/// Proxies one accepted connection; half-closes are passed on. Both sides
/// are closed when it stays idle or lives too long, as `limits` say.
pub async fn proxy_connection<S>(
    upstream: Arc<Upstream>,
    telemetry: Option<Arc<TcpTelemetry>>,
    limits: ClientConnections,
    client: S,
    downstream: Option<Downstream>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The connection's age counts from its acceptance, not from the end
    // of the upstream connect.
    let aged = activity::after(limits.max_duration);
    let Some(pick) = upstream.pick_for_connection(downstream) else {
        tracing::debug!(cluster = %upstream.cluster.name, "no endpoint; closing the connection");
        return;
    };
    let address = pick.endpoint().address;
    let Ok(mut server) = upstream.connector.connect(address).await else {
        upstream
            .stats
            .connections
            .connect_fail
            .fetch_add(1, Ordering::Relaxed);
        // Outlier detection counts a connect failure as a 503, and a
        // connection as a success, as Envoy's tcp_proxy reports them.
        pick.report(503);
        return;
    };
    pick.report(200);
    let _open = upstream.stats.connections.opened();
    let series = telemetry.map(|t| t.open(upstream.service.as_ref()));
    let activity = Activity::new();
    let mut client = Counted {
        inner: client,
        series: series.clone(),
        activity: limits.idle_timeout.is_some().then_some(&activity),
    };
    let stop = async {
        tokio::select! {
            () = activity.idle_for(limits.idle_timeout) => "idle timeout",
            () = aged => "max connection duration",
        }
    };
    let copy = std::pin::pin!(tokio::io::copy_bidirectional(&mut client, &mut server));
    match activity::until(copy, stop).await {
        Ended::Done(Ok(_)) => {}
        Ended::Done(Err(err)) => {
            tracing::debug!(%address, error = %err, "tcp proxy connection ended with an error");
        }
        Ended::Stopped(why) => tracing::debug!(%address, "{why}: closing a tcp proxy connection"),
    }
    if let Some(series) = series {
        series.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The client's side of a connection, counting bytes into the Istio TCP
/// metrics as they pass, so that long connections show in them at once.
/// Every byte either way passes here, so it also notes when the
/// connection was last active, when an idle timeout needs that.
struct Counted<'a, S> {
    inner: S,
    series: Option<Arc<TcpSeries>>,
    activity: Option<&'a Activity>,
}

impl<S> Counted<'_, S> {
    fn count(&self, pick: impl Fn(&TcpSeries) -> &AtomicU64, bytes: usize) {
        if bytes == 0 {
            return;
        }
        if let Some(activity) = self.activity {
            activity.touch();
        }
        if let Some(series) = &self.series {
            pick(series).fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.count(|s| &s.received, read);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &polled {
            self.count(|s| &s.sent, *written);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
