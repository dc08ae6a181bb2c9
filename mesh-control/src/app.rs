//! Starting the control plane's servers: ADS on the xDS port and the
//! monitoring pages, fed by a stream of snapshots and a generator.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::model::MeshSnapshot;
use crate::monitoring::{self, ApiHandler, Monitoring};
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
    /// Shared with the config sources, which count rejected config.
    pub metrics: Arc<Metrics>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            xds_port: 15010,
            monitoring_port: 15014,
            debounce: Debounce::default(),
            api: None,
            metrics: Arc::default(),
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
            .finish_non_exhaustive()
    }
}

/// The running servers; dropping this stops them.
#[derive(Debug)]
pub struct Running {
    pub xds: SocketAddr,
    pub monitoring: SocketAddr,
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
    let xds_task = tokio::spawn(ads.serve(xds_listener, stopped.clone()));
    let state = Arc::new(Monitoring {
        connections: Arc::clone(&connections),
        metrics: Arc::clone(&metrics),
        pushes,
        api: options.api,
    });
    let monitoring_task = tokio::spawn(monitoring::serve(monitoring_listener, state, stopped));
    tracing::info!(%xds, %monitoring, "serving");
    Ok(Running {
        xds,
        monitoring,
        metrics,
        connections,
        shutdown,
        tasks: vec![xds_task, monitoring_task],
    })
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
        let text = serde_json::json!({
            "xds": self.xds.to_string(),
            "monitoring": self.monitoring.to_string(),
        })
        .to_string();
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
