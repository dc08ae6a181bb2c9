//! Listeners at run time: accepting connections, recovering their original
//! destination, handing them to the listener for that destination, and
//! choosing a filter chain the way Envoy does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};

use crate::config::{ChainMatch, FilterChain, Listener, ListenerKind, Transport};
use crate::drain::Drain;
use crate::http::access_log::AccessLogger;
use crate::http::proxy::HttpState;
use crate::stats::ListenerStats;
use crate::telemetry::{HttpTelemetry, TcpTelemetry, Telemetry};
use crate::upstream::{Upstream, Upstreams};
use crate::{http, tcp};

/// How long to wait for a client's first bytes when a chain matches on the transport.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(1);

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// A listener ready to serve.
#[derive(Debug)]
pub struct Runtime {
    pub name: String,
    pub address: SocketAddr,
    pub bind_to_port: bool,
    use_original_dst: bool,
    chains: Vec<Chain>,
    default_chain: Option<Chain>,
    /// Some chain matches on the transport, so the first bytes must be read.
    sniffs: bool,
}

#[derive(Debug)]
struct Chain {
    matcher: ChainMatch,
    handler: Handler,
}

#[derive(Debug)]
enum Handler {
    Http(Arc<HttpState>),
    Tcp(Arc<Upstream>, Option<Arc<TcpTelemetry>>),
}

/// Listeners that do not bind, found by the original destination of a
/// connection: first by exact address, then by port on a wildcard address.
#[derive(Debug, Default)]
pub struct Handoffs {
    exact: HashMap<SocketAddr, Arc<Runtime>>,
    by_port: HashMap<u16, Arc<Runtime>>,
}

impl Handoffs {
    pub fn new(listeners: &[Arc<Runtime>]) -> Handoffs {
        let mut table = Handoffs::default();
        for listener in listeners.iter().filter(|l| !l.bind_to_port) {
            if listener.address.ip().is_unspecified() {
                table
                    .by_port
                    .insert(listener.address.port(), Arc::clone(listener));
            } else {
                table.exact.insert(listener.address, Arc::clone(listener));
            }
        }
        table
    }

    fn find(&self, destination: SocketAddr) -> Option<&Arc<Runtime>> {
        self.exact
            .get(&destination)
            .or_else(|| self.by_port.get(&destination.port()))
    }
}

impl Runtime {
    /// Prepares a listener's chains; `http` collects the HTTP states for the admin pages.
    pub fn build(
        listener: &Listener,
        upstreams: &Arc<Upstreams>,
        telemetry: &Arc<Telemetry>,
        http: &mut Vec<Arc<HttpState>>,
    ) -> anyhow::Result<Runtime> {
        let mut build_chain = |chain: &FilterChain| -> anyhow::Result<Chain> {
            let handler = match &chain.kind {
                ListenerKind::Http(manager) => {
                    let access_logs = manager
                        .access_logs
                        .iter()
                        .map(AccessLogger::open)
                        .collect::<Result<Arc<[_]>, _>>()
                        .map_err(|err| {
                            anyhow::anyhow!(
                                "listener {:?}: cannot open an access log: {err}",
                                listener.name
                            )
                        })?;
                    let state = Arc::new(HttpState {
                        manager: Arc::clone(manager),
                        upstreams: Arc::clone(upstreams),
                        stats: ListenerStats::default(),
                        access_logs,
                        telemetry: HttpTelemetry::new(telemetry, manager, listener.direction),
                    });
                    http.push(Arc::clone(&state));
                    Handler::Http(state)
                }
                ListenerKind::Tcp(tcp) => Handler::Tcp(
                    Arc::clone(&upstreams[&tcp.cluster]),
                    tcp.stats.as_ref().map(|stats| {
                        Arc::new(TcpTelemetry::new(telemetry, stats, listener.direction))
                    }),
                ),
            };
            Ok(Chain {
                matcher: chain.matcher.clone(),
                handler,
            })
        };
        let chains = listener
            .chains
            .iter()
            .map(&mut build_chain)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let default_chain = listener
            .default_chain
            .as_ref()
            .map(&mut build_chain)
            .transpose()?;
        let sniffs = chains.iter().any(|c| c.matcher.transport.is_some());
        Ok(Runtime {
            name: listener.name.clone(),
            address: listener.address,
            bind_to_port: listener.bind_to_port,
            use_original_dst: listener.use_original_dst,
            chains,
            default_chain,
            sniffs,
        })
    }

    /// The chain for a connection to `destination`, as Envoy ranks them:
    /// destination port, then the longest destination prefix, then the
    /// transport; unset criteria match anything but lose to set ones.
    fn select(&self, destination: SocketAddr, transport: Option<Transport>) -> Option<&Chain> {
        let mut candidates: Vec<&Chain> = self.chains.iter().collect();
        narrow(&mut candidates, |m| match m.destination_port {
            Some(port) if port == destination.port() => Some(1),
            Some(_) => None,
            None => Some(0),
        });
        narrow(&mut candidates, |m| {
            if m.prefix_ranges.is_empty() {
                return Some(0);
            }
            m.prefix_ranges
                .iter()
                .filter(|r| contains(r.ip, r.len, destination.ip()))
                .map(|r| u32::from(r.len) + 1)
                .max()
        });
        narrow(&mut candidates, |m| match (m.transport, transport) {
            (None, _) => Some(0),
            (Some(wanted), Some(seen)) if wanted == seen => Some(1),
            _ => None,
        });
        candidates.first().copied().or(self.default_chain.as_ref())
    }
}

/// Keeps the candidates with the best score; `None` rules a candidate out.
fn narrow(candidates: &mut Vec<&Chain>, score: impl Fn(&ChainMatch) -> Option<u32>) {
    let best = candidates.iter().filter_map(|c| score(&c.matcher)).max();
    candidates.retain(|c| best.is_some() && score(&c.matcher) == best);
}

fn contains(network: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (network, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// Accepts connections until the drain starts.
pub async fn accept_loop(
    socket: TcpListener,
    listener: Arc<Runtime>,
    handoffs: Arc<Handoffs>,
    drain: Drain,
    connections: Arc<()>,
) {
    let mut drained = std::pin::pin!(drain.clone().started());
    loop {
        let stream = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = drained.as_mut() => return,
        };
        let (listener, handoffs, drain, open) = (
            Arc::clone(&listener),
            Arc::clone(&handoffs),
            drain.clone(),
            Arc::clone(&connections),
        );
        tokio::spawn(async move {
            serve(stream, &listener, &handoffs, drain).await;
            drop(open);
        });
    }
}

async fn serve(stream: TcpStream, listener: &Arc<Runtime>, handoffs: &Handoffs, drain: Drain) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let destination = if listener.use_original_dst {
        original_destination(&stream).unwrap_or(local)
    } else {
        local
    };
    let target = match listener.use_original_dst {
        true => handoffs.find(destination).unwrap_or(listener),
        false => listener,
    };
    let transport = if target.sniffs {
        Some(sniff(&stream).await)
    } else {
        None
    };
    let Some(chain) = target.select(destination, transport) else {
        tracing::debug!(listener = %target.name, %destination, "no filter chain matches; closing");
        return;
    };
    match &chain.handler {
        Handler::Http(state) => {
            http::server::serve_connection(Arc::clone(state), stream, drain).await
        }
        Handler::Tcp(upstream, telemetry) => {
            tcp::proxy_connection(Arc::clone(upstream), telemetry.clone(), stream).await
        }
    }
}

/// Where the client meant to connect before an iptables REDIRECT (SO_ORIGINAL_DST).
fn original_destination(stream: &TcpStream) -> Option<SocketAddr> {
    let socket = SockRef::from(stream);
    let local = stream.local_addr().ok()?;
    let address = if local.is_ipv4() {
        socket.original_dst_v4()
    } else {
        socket.original_dst_v6()
    };
    address.ok()?.as_socket()
}

/// TLS when the first byte starts a handshake record; raw otherwise, or when
/// the client says nothing for a while (server-first protocols).
async fn sniff(stream: &TcpStream) -> Transport {
    let mut first = [0u8; 1];
    match tokio::time::timeout(SNIFF_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => Transport::Tls,
        _ => Transport::Raw,
    }
}

#[cfg(test)]
mod tests;
