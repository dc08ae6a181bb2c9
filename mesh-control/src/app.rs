//! Starting the control plane's servers: ADS on the xDS port, the
//! monitoring pages, and with a CA the secure port (certificates, and ADS
//! over mTLS), fed by a stream of snapshots and a generator.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ca::service::{self, CaService};
use crate::metrics::Metrics;
use crate::model::MeshSnapshot;
use crate::monitoring::{self, ApiHandler, Monitoring};
use crate::store::ConfigSource;
use crate::xds::{Ads, Connections, Debounce, Generator, debounce};

/// Where and how to serve.
#[derive(Clone)]
pub struct Options {
    /// The IP both servers bind to.
    pub address: IpAddr,
    /// 0 picks a free port.
    pub xds_port: u16,
    pub monitoring_port: u16,
    pub debounce: Debounce,
    /// Serves `/api/` on the monitoring port.
    pub api: Option<Arc<dyn ApiHandler>>,
    /// The config sources whose problems `/debug/config_problems` lists.
    pub config_sources: Vec<Arc<dyn ConfigSource>>,
    /// Shared with the config sources, which count rejected config.
    pub metrics: Arc<Metrics>,
    /// Serves the secure port when set.
    pub ca: Option<Arc<CaService>>,
    /// The secure port; 0 picks a free one.
    pub secure_port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            xds_port: 15010,
            monitoring_port: 15014,
            debounce: Debounce::default(),
            api: None,
            config_sources: Vec::new(),
            metrics: Arc::default(),
            ca: None,
            secure_port: 15012,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("address", &self.address)
            .field("xds_port", &self.xds_port)
            .field("monitoring_port", &self.monitoring_port)
            .field("debounce", &self.debounce)
            .field("api", &self.api.is_some())
            .field("config_sources", &self.config_sources.len())
            .field("ca", &self.ca.is_some())
            .field("secure_port", &self.secure_port)
            .finish_non_exhaustive()
    }
}

/// The running servers; dropping this stops them.
#[derive(Debug)]
pub struct Running {
    pub xds: SocketAddr,
    pub monitoring: SocketAddr,
    /// With a CA.
    pub secure: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub connections: Arc<Connections>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds both servers and starts serving. `snapshots` is the config store's
/// output: its current value is served at once (so `/ready` turns 200 as soon
/// as the servers are up), and later values are debounced and pushed.
pub async fn start(
    options: Options,
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    generator: Arc<dyn Generator>,
) -> std::io::Result<Running> {
    let xds_listener = TcpListener::bind((options.address, options.xds_port)).await?;
    let monitoring_listener = TcpListener::bind((options.address, options.monitoring_port)).await?;
    let xds = xds_listener.local_addr()?;
    let monitoring = monitoring_listener.local_addr()?;

    let (shutdown, stopped) = watch::channel(false);
    let pushes = debounce(snapshots, options.debounce);
    let connections = Arc::new(Connections::default());
    let metrics = options.metrics;
    let ads = Ads::new(
        generator,
        pushes.clone(),
        Arc::clone(&connections),
        Arc::clone(&metrics),
        stopped.clone(),
    );
    let mut tasks = Vec::new();
    let mut secure = None;
    if let Some(ca) = options.ca {
        let listener = TcpListener::bind((options.address, options.secure_port)).await?;
        secure = Some(listener.local_addr()?);
        let names = serving_names(options.address);
        let tls = service::tls_config(&ca.ca, &names).map_err(std::io::Error::other)?;
        tasks.push(tokio::spawn(service::serve(
            listener,
            Arc::new(tls),
            ca,
            ads.clone(),
            stopped.clone(),
        )));
    }
    let xds_task = tokio::spawn(ads.serve(xds_listener, stopped.clone()));
    let state = Arc::new(Monitoring {
        connections: Arc::clone(&connections),
        metrics: Arc::clone(&metrics),
        pushes,
        api: options.api,
        config_sources: options.config_sources,
    });
    let monitoring_task = tokio::spawn(monitoring::serve(monitoring_listener, state, stopped));
    tracing::info!(%xds, %monitoring, secure = ?secure, "serving");
    tasks.extend([xds_task, monitoring_task]);
    Ok(Running {
        xds,
        monitoring,
        secure,
        metrics,
        connections,
        shutdown,
        tasks,
    })
}

/// The names the secure port's certificate carries: those istiod's has in
/// a cluster, and what a local client dials.
fn serving_names(address: IpAddr) -> Vec<String> {
    let mut names: Vec<String> = [
        "istiod.mesh-system.svc",
        "mesh-control.mesh-system.svc",
        "localhost",
        "127.0.0.1",
    ]
    .map(String::from)
    .into();
    if !address.is_unspecified() && !address.is_loopback() {
        names.push(address.to_string());
    }
    names
}

impl Running {
    /// Ends every stream, stops accepting, and waits for the servers.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }

    /// Writes the bound addresses as JSON (`{"xds": "...", "monitoring":
    /// "..."}`), atomically, so that a reader never sees half a file.
    pub fn write_addresses(&self, path: &Path) -> std::io::Result<()> {
        let mut addresses = serde_json::json!({
            "xds": self.xds.to_string(),
            "monitoring": self.monitoring.to_string(),
        });
        if let Some(secure) = self.secure {
            addresses["secure"] = secure.to_string().into();
        }
        let text = addresses.to_string();
        let partial = path.with_extension("partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, path)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
