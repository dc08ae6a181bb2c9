//! Starting the proxy from its config, and stopping it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::drain::{self, Drain, Trigger};
use crate::live::Live;
use crate::logging::LogControl;
use crate::telemetry::Telemetry;
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
}

/// What the process adds to the bootstrap.
#[derive(Debug, Default)]
pub struct Options {
    /// Changes the log filter (the admin server's `/logging`).
    pub log: Option<Arc<dyn LogControl>>,
    /// The control plane's `host:port`, over the bootstrap's ADS cluster.
    pub xds_address: Option<String>,
}

/// Binds every listener and the admin server, and starts serving.
pub async fn start(bootstrap: Bootstrap) -> anyhow::Result<Running> {
    start_with(bootstrap, Options::default()).await
}

/// Like [`start`], with the process's [`Options`]. With a control plane, the
/// static resources are served at once and the rest as xDS brings it.
pub async fn start_with(bootstrap: Bootstrap, options: Options) -> anyhow::Result<Running> {
    let config = Config::from_bootstrap(&bootstrap)?;
    let target = xds::target(&bootstrap, &config, options.xds_address.as_deref())?;
    let (trigger, drain) = drain::channel();
    let telemetry = Arc::new(Telemetry::new(&config.node));
    let live = Arc::new(Live::new(Arc::clone(&telemetry), drain.clone()));
    live.apply(&config).await?;
    if target.is_none() {
        live.mark_ready();
    }
    let listeners = live.view().listeners.clone();
    let status = Arc::new(ArcSwap::from_pointee(xds::dump::Snapshot::default()));
    let admin = match config.admin {
        Some(address) => {
            let socket = TcpListener::bind(address)
                .await
                .map_err(|err| anyhow::anyhow!("admin: cannot bind {address}: {err}"))?;
            let local = socket.local_addr()?;
            let state = Arc::new(AdminState {
                bootstrap: bootstrap.clone(),
                live: Arc::clone(&live),
                xds: target.is_some().then(|| Arc::clone(&status)),
                telemetry,
                trigger: trigger.clone(),
                log: options.log,
            });
            tokio::spawn(admin::serve(socket, state, drain.clone()));
            Some(local)
        }
        None => None,
    };
    if let Some(target) = target {
        let protocol = xds::protocol::Protocol::new(bootstrap.clone(), xds::node(&bootstrap));
        tokio::spawn(xds::run(
            target,
            protocol,
            Arc::clone(&live),
            status,
            drain.clone(),
        ));
    }
    Ok(Running {
        listeners,
        admin,
        trigger,
        drain,
        live,
    })
}

impl Running {
    /// Resolves when a drain was asked for (by `/quitquitquit`).
    pub async fn drain_requested(&self) {
        self.drain.clone().started().await;
    }

    /// Drains, then waits until every connection has closed or `limit` passes.
    /// Returns the number of connections still open.
    pub async fn shutdown(self, limit: Duration) -> usize {
        self.trigger.start();
        let deadline = tokio::time::Instant::now() + limit;
        while self.live.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.live.open_connections()
    }
}
