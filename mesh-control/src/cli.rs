//! The command line: flags, logging, signals.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::api;
use crate::app::{self, Options};
use crate::model::MeshConfig;
use crate::registry::ServiceEntryRegistry;
use crate::snapshot::{self, Inputs};
use crate::store::{ConfigSource, DirectorySource, MemoryStore};
use crate::xds::{Generator, Translate};

/// The mesh's control plane: Istio config and services in, xDS out.
#[derive(Debug, Parser)]
#[command(name = "mesh-control", version, about)]
pub struct Args {
    /// Port of the ADS (xDS) gRPC server, plaintext.
    #[arg(long, default_value_t = 15010, env = "MESH_CONTROL_XDS_PORT")]
    pub xds_port: u16,
    /// Port of /metrics, /ready and /debug/*.
    #[arg(long, default_value_t = 15014, env = "MESH_CONTROL_MONITORING_PORT")]
    pub monitoring_port: u16,
    /// IP to bind. Loopback by default: the local mesh runs every proxy on
    /// this machine, and the plaintext xDS port should not be reachable from
    /// elsewhere. In a pod, where istiod binds every interface, use 0.0.0.0.
    #[arg(long, default_value = "127.0.0.1", env = "MESH_CONTROL_BIND_ADDRESS")]
    pub address: IpAddr,
    /// Write the bound addresses here once listening, as JSON
    /// `{"xds": "ip:port", "monitoring": "ip:port"}` (useful with port 0).
    #[arg(long, env = "MESH_CONTROL_ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,
    /// A directory of Istio YAML, watched: changes apply within a second,
    /// and a bad file is reported and left out while the rest keeps serving.
    #[arg(long, env = "MESH_CONTROL_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `mesh_control=debug`.
    #[arg(long, default_value = "info", env = "MESH_CONTROL_LOG")]
    pub log: String,
}

/// Serves the config directory and the config API's store, with the
/// ServiceEntry registry, as xDS until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&args.log)?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = Arc::new(MemoryStore::new());
        let mut sources: Vec<Arc<dyn ConfigSource>> = Vec::new();
        if let Some(dir) = &args.config_dir {
            let directory = DirectorySource::start(dir).map_err(|err| {
                anyhow::anyhow!("cannot read the config directory {}: {err}", dir.display())
            })?;
            sources.push(Arc::new(directory));
        }
        sources.push(Arc::clone(&store) as Arc<dyn ConfigSource>);
        let inputs = Inputs {
            mesh: MeshConfig::default(),
            sources,
            registries: vec![Arc::new(ServiceEntryRegistry)],
        };
        let (sender, snapshots) = watch::channel(Arc::new(inputs.build(1)));
        tokio::spawn(snapshot::publish(inputs, sender));
        let api = move |request| {
            let store = Arc::clone(&store);
            async move { api::handle(&store, request).await }
        };
        let options = Options {
            address: args.address,
            xds_port: args.xds_port,
            monitoring_port: args.monitoring_port,
            api: Some(Arc::new(api)),
            ..Options::default()
        };
        let generator: Arc<dyn Generator> = Arc::new(Translate);
        let running = app::start(options, snapshots, generator).await?;
        if let Some(path) = &args.address_file {
            running.write_addresses(path)?;
        }
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        running.shutdown().await;
        Ok(())
    })
}
