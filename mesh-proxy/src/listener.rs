//! Listeners at run time: accepting connections, recovering their original
//! destination, handing them to the listener for that destination, and
//! choosing a filter chain the way Envoy does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::config::{
    ChainMatch, ClientConnections, ConnectionAccess, DynamicMetadata, Facts, FilterChain, Listener,
    ListenerKind, Transport,
};
use crate::drain::Drain;
use crate::http::access_log::AccessLogger;
use crate::http::proxy::HttpState;
use crate::lb::Downstream;
use crate::telemetry::spans::HttpTracing;
use crate::telemetry::{HttpTelemetry, TcpTelemetry, Telemetry};
use crate::tls::client_hello::{self, ClientHello, Parsed};
use crate::tls::{DownstreamTls, ServerTls};
use crate::upstream::{Upstream, Upstreams};
use crate::{http, tcp};

/// How long to wait for a client's first bytes when a chain matches on
/// what they hold (transport, server name, application protocol).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the rest of a ClientHello may take once its first byte came;
/// past it the connection is closed, as Envoy's listener filter timeout does.
const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// A listener ready to serve.
#[derive(Debug)]
pub struct Runtime {
    pub name: String,
    pub address: SocketAddr,
    pub bind_to_port: bool,
    /// The connections it accepts drain when this does: when the listener
    /// is removed or replaced, or the proxy shuts down.
    pub drain: Drain,
    use_original_dst: bool,
    restores_original_dst: bool,
    chains: Vec<Chain>,
    default_chain: Option<Chain>,
    /// Some chain matches on the transport, server name or application
    /// protocol, so the first bytes must be read.
    sniffs: bool,
    /// Some chain matches on application protocols, which plaintext HTTP
    /// offers too.
    inspects_http: bool,
}

#[derive(Debug)]
struct Chain {
    matcher: ChainMatch,
    handler: Handler,
    /// Network RBAC and external authorization: who may connect at all.
    access: Arc<[ConnectionAccess]>,
    /// Where external authorizers are found.
    upstreams: Arc<Upstreams>,
    /// Terminates TLS before the handler sees the bytes.
    tls: Option<ServerTls>,
}

/// What the first bytes of a connection told.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Sniffed {
    transport: Option<Transport>,
    hello: ClientHello,
}

#[derive(Debug)]
enum Handler {
    /// Read at each request, so that new routes and clusters reach the
    /// open connections of a listener whose definition did not change.
    Http(Arc<ArcSwap<HttpState>>),
    Tcp {
        /// The clusters that exist, by weight; with none, connections are
        /// closed.
        targets: Vec<(Arc<Upstream>, u32)>,
        telemetry: Option<Arc<TcpTelemetry>>,
        limits: ClientConnections,
    },
}

/// What a listener's chains are built with.
#[derive(Debug)]
pub struct BuildContext<'a> {
    pub upstreams: &'a Arc<Upstreams>,
    pub telemetry: &'a Arc<Telemetry>,
    /// See [`Runtime::drain`].
    pub drain: Drain,
    /// The listener this one replaces, and whether its definition is the
    /// same. Its counters carry over; when the same, so do its open HTTP
    /// connections, which see the new tables from their next request on.
    pub previous: Option<(&'a Runtime, bool)>,
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
        context: &BuildContext<'_>,
        http: &mut Vec<Arc<HttpState>>,
    ) -> anyhow::Result<Runtime> {
        let BuildContext {
            upstreams,
            telemetry,
            ..
        } = context;
        let previous_chains: Vec<&Chain> = match context.previous {
            Some((previous, _)) => previous
                .chains
                .iter()
                .chain(&previous.default_chain)
                .collect(),
            None => Vec::new(),
        };
        let mut position = 0;
        let mut build_chain = |chain: &FilterChain| -> anyhow::Result<Chain> {
            let previous = previous_chains.get(position).map(|c| &c.handler);
            position += 1;
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
                    let previous = match previous {
                        Some(Handler::Http(slot)) => Some(slot),
                        _ => None,
                    };
                    let state = Arc::new(HttpState {
                        manager: Arc::clone(manager),
                        upstreams: Arc::clone(upstreams),
                        stats: previous
                            .map_or_else(Arc::default, |slot| Arc::clone(&slot.load().stats)),
                        access_logs,
                        telemetry: HttpTelemetry::new(telemetry, manager, listener.direction),
                        tracing: manager.tracing.as_ref().map(|config| {
                            Arc::new(HttpTracing::new(
                                telemetry,
                                config,
                                listener.direction,
                                upstreams,
                            ))
                        }),
                    });
                    http.push(Arc::clone(&state));
                    match previous {
                        Some(slot) if context.previous.is_some_and(|(_, same)| same) => {
                            slot.store(state);
                            Handler::Http(Arc::clone(slot))
                        }
                        _ => Handler::Http(Arc::new(ArcSwap::new(state))),
                    }
                }
                ListenerKind::Tcp(tcp) => Handler::Tcp {
                    targets: tcp
                        .clusters
                        .iter()
                        .filter_map(|(name, weight)| Some((upstreams.get(name)?.clone(), *weight)))
                        .collect(),
                    telemetry: tcp.stats.as_ref().map(|stats| {
                        Arc::new(TcpTelemetry::new(telemetry, stats, listener.direction))
                    }),
                    limits: tcp.connections,
                },
            };
            Ok(Chain {
                matcher: chain.matcher.clone(),
                handler,
                access: Arc::clone(&chain.access),
                upstreams: Arc::clone(upstreams),
                tls: chain.tls.clone(),
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
        let inspects_http = chains
            .iter()
            .any(|c| !c.matcher.application_protocols.is_empty());
        let sniffs = inspects_http
            || chains.iter().any(|c| {
                let m = &c.matcher;
                m.transport.is_some() || !m.server_names.is_empty()
            });
        Ok(Runtime {
            name: listener.name.clone(),
            address: listener.address,
            bind_to_port: listener.bind_to_port,
            drain: context.drain.clone(),
            use_original_dst: listener.use_original_dst,
            restores_original_dst: listener.restores_original_dst,
            chains,
            default_chain,
            sniffs,
            inspects_http,
        })
    }

    /// The chain for a connection to `destination`, as Envoy ranks them:
    /// destination port, then the longest destination prefix, then the
    /// server name (exact, then the longest wildcard), then the transport,
    /// then the application protocols; unset criteria match anything but
    /// lose to set ones.
    fn select(&self, destination: SocketAddr, sniffed: &Sniffed) -> Option<&Chain> {
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
                .filter(|r| r.contains(destination.ip()))
                .map(|r| u32::from(r.len) + 1)
                .max()
        });
        let server_name = sniffed.hello.server_name.as_deref();
        narrow(&mut candidates, |m| {
            if m.server_names.is_empty() {
                return Some(0);
            }
            let name = server_name?;
            m.server_names
                .iter()
                .filter_map(|pattern| server_name_rank(pattern, name))
                .max()
        });
        narrow(&mut candidates, |m| {
            match (m.transport, sniffed.transport) {
                (None, _) => Some(0),
                (Some(wanted), Some(seen)) if wanted == seen => Some(1),
                _ => None,
            }
        });
        narrow(&mut candidates, |m| {
            if m.application_protocols.is_empty() {
                return Some(0);
            }
            let offered = &sniffed.hello.alpn;
            m.application_protocols
                .iter()
                .any(|p| offered.contains(p))
                .then_some(1)
        });
        candidates.first().copied().or(self.default_chain.as_ref())
    }
}

/// How well `pattern` matches a server name: exact beats any wildcard, and
/// a longer wildcard suffix beats a shorter one.
fn server_name_rank(pattern: &str, name: &str) -> Option<u32> {
    match pattern.strip_prefix('*') {
        Some(suffix) => (name.len() > suffix.len() && name.ends_with(suffix))
            .then(|| u32::try_from(suffix.len()).unwrap_or(u32::MAX - 1)),
        None => (pattern == name).then_some(u32::MAX),
    }
}

/// Keeps the candidates with the best score; `None` rules a candidate out.
fn narrow(candidates: &mut Vec<&Chain>, score: impl Fn(&ChainMatch) -> Option<u32>) {
    let best = candidates.iter().filter_map(|c| score(&c.matcher)).max();
    candidates.retain(|c| best.is_some() && score(&c.matcher) == best);
}

/// Accepts connections until `stop` starts, each for the listener's config
/// of the moment.
pub async fn accept_loop(
    socket: TcpListener,
    listener: Arc<ArcSwap<Runtime>>,
    handoffs: Arc<ArcSwap<Handoffs>>,
    stop: Drain,
    connections: Arc<()>,
) {
    let mut stopped = std::pin::pin!(stop.started());
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
            () = stopped.as_mut() => return,
        };
        let (listener, handoffs, open) = (
            listener.load_full(),
            handoffs.load_full(),
            Arc::clone(&connections),
        );
        tokio::spawn(async move {
            serve(stream, &listener, &handoffs).await;
            drop(open);
        });
    }
}

async fn serve(stream: TcpStream, listener: &Arc<Runtime>, handoffs: &Handoffs) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let restored = listener
        .restores_original_dst
        .then(|| original_destination(&stream))
        .flatten();
    let destination = restored.unwrap_or(local);
    let target = match listener.use_original_dst {
        true => handoffs.find(destination).unwrap_or(listener),
        false => listener,
    };
    let drain = target.drain.clone();
    let sniffed = if target.sniffs {
        match sniff(&stream, target.inspects_http).await {
            Some(sniffed) => sniffed,
            None => {
                tracing::debug!(listener = %target.name, "unreadable ClientHello; closing");
                return;
            }
        }
    } else {
        Sniffed::default()
    };
    let Some(chain) = target.select(destination, &sniffed) else {
        tracing::debug!(listener = %target.name, %destination, "no filter chain matches; closing");
        return;
    };
    let _ = stream.set_nodelay(true);
    // The local address is where the client meant to connect, as Envoy
    // restores it behind an original-destination listener.
    let downstream = stream.peer_addr().ok().map(|remote| Downstream {
        remote,
        local: destination,
        restored: restored.is_some(),
    });
    let Some(tls) = &chain.tls else {
        if !connection_allowed(chain, downstream, None, &sniffed).await {
            return;
        }
        return handle(&chain.handler, stream, downstream, None, false, drain).await;
    };
    let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
    let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::debug!(listener = %target.name, error = %err, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(listener = %target.name, "TLS handshake timed out");
            return;
        }
    };
    let (info, h2) = handshake_info(stream.get_ref().1, chain, tls);
    if !connection_allowed(chain, downstream, Some(&info), &sniffed).await {
        return;
    }
    handle(&chain.handler, stream, downstream, Some(info), h2, drain).await;
}

/// Whether the chain's network RBAC and `ext_authz` filters, in their
/// order, let the connection in; a refused one is closed, as Envoy does.
async fn connection_allowed(
    chain: &Chain,
    downstream: Option<Downstream>,
    tls: Option<&DownstreamTls>,
    sniffed: &Sniffed,
) -> bool {
    if chain.access.is_empty() {
        return true;
    }
    let Some(downstream) = downstream else {
        return false;
    };
    let facts = Facts::new(None, downstream, tls, sniffed.hello.server_name.as_deref());
    let mut metadata = DynamicMetadata::default();
    for filter in chain.access.iter() {
        let allowed = match filter {
            ConnectionAccess::Rbac(rbac) => {
                let decision = rbac.decide(&facts);
                metadata.merge(decision.metadata);
                decision.allowed
            }
            ConnectionAccess::ExtAuthz(authz) => {
                let upstream = chain.upstreams.get(&authz.cluster).map(AsRef::as_ref);
                // Boxed, as the HTTP filter's call: too large to carry inline.
                Box::pin(crate::ext_authz::connection_allowed(
                    authz, upstream, downstream, facts.peer, &metadata,
                ))
                .await
            }
        };
        if !allowed {
            tracing::debug!(remote = %downstream.remote, peer = ?facts.peer, "access denied to the connection; closing");
            return false;
        }
    }
    true
}

/// Hands a connection, maybe decrypted, to its chain's filter.
async fn handle<S>(
    handler: &Handler,
    stream: S,
    downstream: Option<Downstream>,
    tls: Option<DownstreamTls>,
    http2: bool,
    drain: Drain,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match handler {
        Handler::Http(state) => {
            let state = Arc::clone(state);
            http::server::serve_connection(state, stream, downstream, tls, http2, drain).await
        }
        Handler::Tcp { targets, .. } if targets.is_empty() => {
            tracing::debug!("tcp_proxy cluster not found; closing the connection");
        }
        Handler::Tcp {
            targets,
            telemetry,
            limits,
        } => {
            let upstream = crate::lb::by_weight(targets);
            let upstream = Arc::clone(upstream);
            tcp::proxy_connection(upstream, telemetry.clone(), *limits, stream, downstream).await
        }
    }
}

/// What a finished handshake tells the HTTP layer, and whether ALPN chose
/// HTTP/2. The `x-forwarded-client-cert` element is made here, once for
/// the connection, when its connection manager writes one.
fn handshake_info(
    session: &rustls::ServerConnection,
    chain: &Chain,
    tls: &ServerTls,
) -> (DownstreamTls, bool) {
    let peer = session.peer_certificates().unwrap_or_default();
    // The client's leaf, read once for its SPIFFE id and the XFCC element.
    let leaf = peer
        .first()
        .and_then(|der| webpki::EndEntityCert::try_from(der).ok());
    let peer_uri_san = leaf
        .as_ref()
        .and_then(|leaf| leaf.valid_uri_names().next())
        .map(Arc::from);
    let client_cert_element = match (&chain.handler, &leaf) {
        (Handler::Http(state), Some(leaf)) => http::client_cert::element(
            &state.load().manager.client_cert,
            &tls.local_uri_sans,
            peer,
            leaf,
        ),
        _ => None,
    };
    let info = DownstreamTls {
        server_name: session.server_name().map(Arc::from),
        peer_uri_san,
        peer_certificate: !peer.is_empty(),
        client_cert_element,
    };
    (info, session.alpn_protocol() == Some(b"h2"))
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

/// The TLS inspector: TLS with the ClientHello's SNI and ALPN when the
/// client starts with one; raw when it starts with anything else, or says
/// nothing for a while (server-first protocols). The bytes are peeked, not
/// read. `None` when a ClientHello is too large or too slow to arrive.
async fn sniff(stream: &TcpStream, inspect_http: bool) -> Option<Sniffed> {
    let raw = Sniffed {
        transport: Some(Transport::Raw),
        hello: ClientHello::default(),
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(SNIFF_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => {}
        Ok(Ok(1)) if inspect_http => return Some(http_inspector(stream, raw).await),
        _ => return Some(raw),
    }
    let hello = tokio::time::timeout(CLIENT_HELLO_TIMEOUT, peek_client_hello(stream))
        .await
        .ok()??;
    Some(match hello {
        Some(hello) => Sniffed {
            transport: Some(Transport::Tls),
            hello,
        },
        None => raw,
    })
}

/// The HTTP inspector: a plaintext connection that starts with an HTTP/1
/// request line or the HTTP/2 preface offers `http/1.1` or `h2c`, as Envoy
/// reports them, so that chains can match on `application_protocols`.
async fn http_inspector(stream: &TcpStream, mut raw: Sniffed) -> Sniffed {
    let mut buffer = [0u8; HTTP_INSPECT_BYTES];
    let deadline = tokio::time::Instant::now() + SNIFF_TIMEOUT;
    let mut seen = 0;
    loop {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.peek(&mut buffer)).await else {
            break;
        };
        match http_protocol(&buffer[..n]) {
            Some(Some(protocol)) => {
                raw.hello.alpn = vec![protocol.to_owned()];
                break;
            }
            Some(None) => break,
            None if n == 0 || n == buffer.len() => break,
            None => {}
        }
        if n == seen {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = n;
    }
    raw
}

/// Enough bytes to see an HTTP/1 request line of a usual length.
const HTTP_INSPECT_BYTES: usize = 8 * 1024;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// `Some(Some(protocol))` for HTTP, `Some(None)` for anything else, `None`
/// while the bytes so far cannot tell.
fn http_protocol(bytes: &[u8]) -> Option<Option<&'static str>> {
    let shared = bytes.len().min(H2_PREFACE.len());
    if bytes[..shared] == H2_PREFACE[..shared] {
        return (shared == H2_PREFACE.len()).then_some(Some("h2c"));
    }
    // METHOD SP target SP HTTP/1.x CRLF
    let method_len = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    match bytes.get(method_len) {
        None if method_len < 20 => return None,
        Some(b' ') if method_len > 0 => {}
        _ => return Some(None),
    }
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
        let printable = bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
        return if printable { None } else { Some(None) };
    };
    let line = &bytes[..end];
    let http1 = line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0");
    Some(http1.then_some("http/1.1"))
}

/// Peeks until the ClientHello is complete: `Some(None)` for bytes that are
/// not one, `None` for one past the size limit or a closed connection.
async fn peek_client_hello(stream: &TcpStream) -> Option<Option<ClientHello>> {
    // Room for the largest hello accepted, split into several records.
    let mut buffer = vec![0u8; client_hello::MAX_CLIENT_HELLO + 64 * 5];
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buffer).await.ok()?;
        match client_hello::parse(&buffer[..n]) {
            Parsed::Hello(hello) => return Some(Some(hello)),
            Parsed::NotTls => return Some(None),
            Parsed::TooLarge => return None,
            Parsed::Incomplete if n == 0 || n == buffer.len() => return None,
            Parsed::Incomplete => {}
        }
        // A peek returns at once while unread bytes wait, so pause before
        // looking again unless more have come.
        if n == seen {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = n;
    }
}

#[cfg(test)]
mod tests;
