//! The command line: flags, logging, signals.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, reload};

use crate::app;
use crate::config::read_bootstrap;
use crate::identity::CaOptions;
use crate::logging::{LogControl, ReloadableFilter};

/// The mesh's proxy, configured like Envoy.
#[derive(Debug, Parser)]
#[command(name = "mesh-proxy", version, about)]
pub struct Args {
    /// Envoy bootstrap file (YAML or JSON) with static_resources and admin.
    #[arg(short = 'c', long = "bootstrap", env = "MESH_PROXY_BOOTSTRAP")]
    pub bootstrap: PathBuf,
    /// Write the admin server's address to this file once it is bound.
    #[arg(long, env = "MESH_PROXY_ADMIN_ADDRESS_PATH")]
    pub admin_address_path: Option<PathBuf>,
    /// How long in-flight requests may take to finish at shutdown.
    #[arg(long, default_value = "5s", value_parser = mesh_api::Duration::parse_flag, env = "MESH_PROXY_DRAIN_TIMEOUT")]
    pub drain_timeout: Duration,
    /// Log filter, e.g. `info` or `mesh_proxy=debug`; the admin server's
    /// `/logging` changes it at run time.
    #[arg(long, default_value = "info", env = "MESH_PROXY_LOG")]
    pub log: String,
    /// Worker threads, as Envoy's `--concurrency`; 0 uses every core. One
    /// worker runs the whole proxy on a single thread, which costs the least
    /// CPU per request: a sidecar's load is one workload's.
    #[arg(long, default_value_t = 2, env = "MESH_PROXY_CONCURRENCY")]
    pub concurrency: usize,
    /// The control plane's ADS server (`host:port`, plaintext gRPC), instead
    /// of the one the bootstrap's `dynamic_resources.ads_config` names.
    #[arg(long, env = "MESH_PROXY_XDS_ADDRESS")]
    pub xds_address: Option<String>,
    /// The mesh's CA (`https://host:port`), which certifies the workload:
    /// its certificate becomes the SDS secrets `default` and `ROOTCA`.
    #[arg(long, env = "MESH_PROXY_CA_ADDRESS", requires = "ca_root_cert")]
    pub ca_address: Option<String>,
    /// PEM of the root the CA's TLS certificate chains to; the certificates
    /// the CA issues must chain to it too, and it is `ROOTCA` when the CA
    /// returns the leaf alone.
    #[arg(long, env = "MESH_PROXY_CA_ROOT_CERT", value_name = "FILE")]
    pub ca_root_cert: Option<PathBuf>,
    /// A file holding the token sent to the CA as `authorization: Bearer
    /// <token>`; read at each request, so that it may be rotated.
    #[arg(long, env = "MESH_PROXY_CA_TOKEN_FILE", value_name = "FILE")]
    pub ca_token_file: Option<PathBuf>,
    /// The lifetime asked for the workload certificate; it is renewed at half.
    #[arg(long, default_value = "24h", value_parser = mesh_api::Duration::parse_flag, env = "MESH_PROXY_CERT_TTL")]
    pub cert_ttl: Duration,
}

impl Args {
    fn ca(&self) -> Option<CaOptions> {
        Some(CaOptions {
            address: self.ca_address.clone()?,
            root_cert: self.ca_root_cert.clone()?,
            token_file: self.ca_token_file.clone(),
            ttl: self.cert_ttl,
        })
    }
}

fn runtime(concurrency: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match concurrency {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if concurrency > 1 {
        builder.worker_threads(concurrency);
    }
    builder.enable_all().build()
}

/// Runs the proxy until SIGTERM, SIGINT or `/quitquitquit`, then drains.
pub fn run(args: Args) -> anyhow::Result<()> {
    // The filter sits in a reload layer, so that `/logging` can swap it.
    let (filter, handle) = reload::Layer::new(EnvFilter::try_new(&args.log)?);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    let log: Arc<dyn LogControl> = Arc::new(ReloadableFilter::new(handle, &args.log));
    // Reading Envoy JSON decodes a large descriptor pool; doing it on its own
    // thread keeps that memory in the thread's arena, which is returned to
    // the system when the thread ends, instead of pinning the main heap.
    let bootstrap =
        std::thread::scope(|scope| scope.spawn(|| read_bootstrap(&args.bootstrap)).join())
            .map_err(|_| anyhow::anyhow!("reading the bootstrap panicked"))??;
    let runtime = runtime(args.concurrency)?;
    runtime.block_on(async move {
        let options = app::Options {
            log: Some(log),
            ca: args.ca(),
            xds_address: args.xds_address,
            admin_address_path: args.admin_address_path,
        };
        let running = app::start_with(bootstrap, options).await?;
        for (name, address) in &running.listeners {
            tracing::info!(listener = %name, %address, "listening");
        }
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            () = running.drain_requested() => {}
        }
        tracing::info!("draining");
        let open = running.shutdown(args.drain_timeout).await;
        if open > 0 {
            tracing::warn!(open, "connections still open after the drain timeout");
        }
        Ok(())
    })
}
