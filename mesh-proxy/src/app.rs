//! Starting the proxy from its config, and stopping it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::drain::{self, Drain, Trigger};
use crate::logging::LogControl;
use crate::telemetry::Telemetry;
use crate::{listener, upstream};

/// A running proxy: the addresses it bound, and the means to stop it.
#[derive(Debug)]
pub struct Running {
    /// Listener names and the addresses actually bound (port 0 resolved).
    pub listeners: Vec<(String, SocketAddr)>,
    pub admin: Option<SocketAddr>,
    trigger: Trigger,
    drain: Drain,
    /// One clone per open connection; the count tells when draining is done.
    connections: Arc<()>,
}

/// Binds every listener and the admin server, and starts serving.
pub async fn start(bootstrap: Bootstrap) -> anyhow::Result<Running> {
    start_with_log(bootstrap, None).await
}

/// Like [`start`], with the admin server's `/logging` changing the log filter through `log`.
pub async fn start_with_log(
    bootstrap: Bootstrap,
    log: Option<Arc<dyn LogControl>>,
) -> anyhow::Result<Running> {
    let config = Config::from_bootstrap(&bootstrap)?;
    let upstreams = Arc::new(upstream::build(&config));
    let (trigger, drain) = drain::channel();
    crate::health::start(&upstreams, &drain);
    let connections = Arc::new(());
    let telemetry = Arc::new(Telemetry::new(&config.node));
    let mut http_states = Vec::new();
    let runtimes = config
        .listeners
        .iter()
        .map(|l| {
            listener::Runtime::build(l, &upstreams, &telemetry, &mut http_states).map(Arc::new)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let handoffs = Arc::new(listener::Handoffs::new(&runtimes));
    let mut bound = Vec::new();
    for runtime in &runtimes {
        if !runtime.bind_to_port {
            bound.push((runtime.name.clone(), runtime.address));
            continue;
        }
        let socket = TcpListener::bind(runtime.address).await.map_err(|err| {
            anyhow::anyhow!(
                "listener {:?}: cannot bind {}: {err}",
                runtime.name,
                runtime.address
            )
        })?;
        bound.push((runtime.name.clone(), socket.local_addr()?));
        tokio::spawn(listener::accept_loop(
            socket,
            Arc::clone(runtime),
            Arc::clone(&handoffs),
            drain.clone(),
            Arc::clone(&connections),
        ));
    }
    let admin = match config.admin {
        Some(address) => {
            let socket = TcpListener::bind(address)
                .await
                .map_err(|err| anyhow::anyhow!("admin: cannot bind {address}: {err}"))?;
            let local = socket.local_addr()?;
            let state = Arc::new(AdminState {
                bootstrap,
                listeners: bound.clone(),
                http: http_states,
                upstreams,
                telemetry,
                trigger: trigger.clone(),
                log,
            });
            tokio::spawn(admin::serve(socket, state, drain.clone()));
            Some(local)
        }
        None => None,
    };
    Ok(Running {
        listeners: bound,
        admin,
        trigger,
        drain,
        connections,
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
        // Each connection task holds a clone; ours is the one left when all are done.
        while Arc::strong_count(&self.connections) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Arc::strong_count(&self.connections) - 1
    }
}
