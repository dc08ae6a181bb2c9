//! Starting the proxy from its config, and stopping it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::{self, Config};
use crate::dns::{DnsTable, Resolver};
use crate::drain::{self, Drain, Trigger};
use crate::identity::{CaOptions, CertificateProvider, Provided};
use crate::live::Live;
use crate::logging::LogControl;
use crate::telemetry::Telemetry;
use crate::telemetry::export::{self, ExportTask};
use crate::xds;

/// A running proxy: the addresses it bound, and the means to stop it.
#[derive(Debug)]
pub struct Running {
    /// Listener names and the addresses actually bound (port 0 resolved),
    /// of the static listeners; `/listeners` shows the current ones.
    pub listeners: Vec<(String, SocketAddr)>,
    pub admin: Option<SocketAddr>,
    trigger: Trigger,
    drain: Drain,
    live: Arc<Live>,
    spans: ExportTask,
}

/// What the process adds to the bootstrap.
#[derive(Debug, Default)]
pub struct Options {
    /// Changes the log filter (the admin server's `/logging`).
    pub log: Option<Arc<dyn LogControl>>,
    /// The control plane's `host:port`, over the bootstrap's ADS cluster.
    pub xds_address: Option<String>,
    /// The mesh's CA, for the workload certificate (see [`crate::identity`]).
    pub ca: Option<CaOptions>,
    /// Where to write the admin server's address once the static resources
    /// are served, or before they wait for the workload certificate.
    pub admin_address_path: Option<PathBuf>,
}

/// Binds every listener and the admin server, and starts serving.
pub async fn start(bootstrap: Bootstrap) -> anyhow::Result<Running> {
    start_with(bootstrap, Options::default()).await
}

/// Like [`start`], with the process's [`Options`]. With a control plane, the
/// static resources are served at once and the rest as xDS brings it. With
/// a CA, the admin server is up first, and static resources that need the
/// workload certificate are served once it has come.
pub async fn start_with(bootstrap: Bootstrap, options: Options) -> anyhow::Result<Running> {
    let (trigger, drain) = drain::channel();
    let node = Arc::new(config::node_info(&bootstrap));
    let provider = match options.ca {
        Some(ca) => Some(CertificateProvider::start(ca, &node, drain.clone())?),
        None => None,
    };
    let (spans, exporter) = export::channel(export::QUEUE_CAPACITY);
    let telemetry = Arc::new(Telemetry::new(&node, spans));
    let live = Arc::new(Live::new(Arc::clone(&telemetry), drain.clone()));
    let status = Arc::new(ArcSwap::from_pointee(xds::dump::Snapshot::default()));
    let dynamic = bootstrap.dynamic_resources.is_some() || options.xds_address.is_some();
    let admin = match config::admin_address(&bootstrap)? {
        Some(address) => {
            let state = AdminState {
                bootstrap: bootstrap.clone(),
                live: Arc::clone(&live),
                xds: dynamic.then(|| Arc::clone(&status)),
                telemetry,
                identity: provider.clone(),
                trigger: trigger.clone(),
                log: options.log,
            };
            Some(serve_admin(address, state, &drain).await?)
        }
        None => None,
    };
    let mut announce = Announce(options.admin_address_path.zip(admin));
    let resolver = Resolver::new();
    let mut inputs = StaticInputs::new(&bootstrap, provider.as_deref(), &resolver);
    let config = statics(&mut inputs, &drain, &mut announce).await?;
    let target = xds::target(&bootstrap, &config, options.xds_address.as_deref())?;
    live.apply(&config).await?;
    announce.now()?;
    if target.is_none() {
        live.mark_ready();
    }
    match target {
        Some(target) => {
            let provided = provider.as_ref().map_or(Provided::Off, |p| p.provided());
            let protocol = xds::protocol::Protocol::new(bootstrap.clone(), xds::node(&bootstrap))
                .with_provided(provided)
                .with_resolver(resolver);
            tokio::spawn(xds::run(
                target,
                protocol,
                Arc::clone(&live),
                status,
                drain.clone(),
                provider.as_ref().map(|p| p.watch()),
            ));
        }
        None => {
            tokio::spawn(follow_statics(inputs, Arc::clone(&live), drain.clone()));
        }
    }
    let listeners = live.view().listeners.clone();
    Ok(Running {
        listeners,
        admin,
        trigger,
        drain,
        live,
        spans: exporter.start(),
    })
}

async fn serve_admin(
    address: SocketAddr,
    state: AdminState,
    drain: &Drain,
) -> anyhow::Result<SocketAddr> {
    let socket = TcpListener::bind(address)
        .await
        .map_err(|err| anyhow::anyhow!("admin: cannot bind {address}: {err}"))?;
    let local = socket.local_addr()?;
    tokio::spawn(admin::serve(socket, Arc::new(state), drain.clone()));
    Ok(local)
}

/// Writes the admin server's address to a file, once: when the static
/// resources are served, or before they wait for the workload certificate.
#[derive(Debug)]
struct Announce(Option<(PathBuf, SocketAddr)>);

impl Announce {
    /// Writes then renames, so that a reader never sees half an address.
    fn now(&mut self) -> std::io::Result<()> {
        let Some((path, address)) = self.0.take() else {
            return Ok(());
        };
        let partial = path.with_extension("partial");
        std::fs::write(&partial, address.to_string())?;
        std::fs::rename(&partial, path)
    }
}

/// What the static resources are compiled with besides themselves: the
/// certificate provider's secrets, and the addresses of DNS clusters' hosts.
struct StaticInputs {
    bootstrap: Bootstrap,
    provided: Option<watch::Receiver<Provided>>,
    resolver: Arc<Resolver>,
    dns: watch::Receiver<Arc<DnsTable>>,
}

impl StaticInputs {
    fn new(
        bootstrap: &Bootstrap,
        provider: Option<&CertificateProvider>,
        resolver: &Arc<Resolver>,
    ) -> StaticInputs {
        StaticInputs {
            bootstrap: bootstrap.clone(),
            provided: provider.map(CertificateProvider::watch),
            resolver: Arc::clone(resolver),
            dns: resolver.subscribe(),
        }
    }

    /// Compiles with the inputs of now, and looks up the hosts it names.
    fn compile(&mut self) -> config::Compiled {
        let provided = match &mut self.provided {
            Some(watch) => watch.borrow_and_update().clone(),
            None => Provided::Off,
        };
        let dns = Arc::clone(&self.dns.borrow_and_update());
        let compiled = Config::from_bootstrap_with(&self.bootstrap, &provided, &dns);
        // A compile stopped by a missing secret has not seen every host.
        let whole = !compiled.awaits_secret;
        self.resolver.follow(&compiled.references.hosts, whole);
        compiled
    }

    /// Returns when an input changes; an error once the provider is gone.
    async fn changed(&mut self) -> anyhow::Result<()> {
        let provided = async {
            match &mut self.provided {
                Some(watch) => watch.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = provided => Ok(changed?),
            changed = self.dns.changed() => Ok(changed?),
        }
    }
}

/// The static resources compiled; when they need the workload certificate,
/// once it has come, and when they name DNS hosts, once these were looked up.
async fn statics(
    inputs: &mut StaticInputs,
    drain: &Drain,
    announce: &mut Announce,
) -> anyhow::Result<Config> {
    loop {
        let compiled = inputs.compile();
        match compiled.config {
            Err(err) if compiled.awaits_secret => {
                tracing::info!(reason = %err, "the static config waits for the workload certificate");
                announce.now()?;
            }
            Ok(_) if !compiled.references.missing.is_empty() => {
                tracing::info!(missing = ?compiled.references.missing, "the static config waits for DNS lookups");
            }
            config => return Ok(config?),
        }
        tokio::select! {
            changed = inputs.changed() => changed?,
            () = drain.clone().started() => {
                anyhow::bail!("stopped before the static config could be compiled")
            }
        }
    }
}

/// Compiles the static resources again when an input changes (a new mesh
/// root, a DNS host's new addresses), until the drain starts.
async fn follow_statics(mut inputs: StaticInputs, live: Arc<Live>, drain: Drain) {
    let mut drained = std::pin::pin!(drain.started());
    loop {
        tokio::select! {
            changed = inputs.changed() => if changed.is_err() { return },
            () = drained.as_mut() => return,
        }
        let applied = match inputs.compile().config {
            Ok(config) => live.apply(&config).await,
            Err(err) => Err(err.into()),
        };
        match applied {
            Ok(()) => tracing::info!("static config applied again"),
            Err(err) => tracing::error!(error = %err, "cannot apply the static config again"),
        }
    }
}

impl Running {
    /// Resolves when a drain was asked for (by `/quitquitquit`).
    pub async fn drain_requested(&self) {
        self.drain.clone().started().await;
    }

    /// Drains, then waits until every connection has closed or `limit`
    /// passes; then sends the spans not exported yet, within what is left
    /// of `limit` (a second at least). Returns the number of connections
    /// still open.
    pub async fn shutdown(self, limit: Duration) -> usize {
        self.trigger.start();
        let deadline = tokio::time::Instant::now() + limit;
        while self.live.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let open = self.live.open_connections();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.spans.flush(left.max(Duration::from_secs(1))).await;
        open
    }
}
