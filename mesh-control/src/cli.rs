//! The command line: flags, logging, signals.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use mesh_api::names::SpiffeId;

use crate::api;
use crate::app::{self, Options};
use crate::ca::service::CaService;
use crate::ca::token::TokenKey;
use crate::ca::{CaFiles, CertificateAuthority};
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
    /// Istio's MeshConfig as YAML (the `mesh` key of istiod's ConfigMap):
    /// `trustDomain`, `rootNamespace`, `outboundTrafficPolicy.mode`, and
    /// tracing (`enableTracing`, `defaultConfig.tracing`,
    /// `extensionProviders` with `opentelemetry`, `defaultProviders.tracing`).
    /// Other fields are ignored. Read once, at start.
    #[arg(long, global = true, env = "MESH_CONTROL_MESH_CONFIG")]
    pub mesh_config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `mesh_control=debug`.
    #[arg(long, default_value = "info", env = "MESH_CONTROL_LOG")]
    pub log: String,
    /// The CA's directory, laid out as Istio's `cacerts`: a plugged-in
    /// intermediate (ca-cert.pem, ca-key.pem, root-cert.pem,
    /// cert-chain.pem), or where a self-signed root is made on first start
    /// and kept. Without it there is no CA and no secure port.
    #[arg(long, global = true, env = "MESH_CONTROL_CA_DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Port of the certificate service and of ADS over mTLS (with a CA).
    #[arg(long, default_value_t = 15012, env = "MESH_CONTROL_SECURE_PORT")]
    pub secure_port: u16,
    /// Lifetime of a workload certificate when the request names none.
    #[arg(long, default_value = "24h", value_parser = mesh_api::Duration::parse_flag, env = "MESH_CONTROL_DEFAULT_CERT_TTL")]
    pub default_cert_ttl: Duration,
    /// The longest lifetime a workload certificate gets, whatever is asked.
    #[arg(long, default_value = "2160h", value_parser = mesh_api::Duration::parse_flag, env = "MESH_CONTROL_MAX_CERT_TTL")]
    pub max_cert_ttl: Duration,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Prints a bootstrap token for one workload identity: given to a
    /// proxy (`--ca-token-file`), it gets that identity's certificate and
    /// no other. Needs `--ca-dir`.
    Token {
        #[arg(long)]
        namespace: String,
        #[arg(long, default_value = "default")]
        service_account: String,
    },
}

/// The MeshConfig file's settings, or Istio's defaults without one.
fn mesh_config(args: &Args) -> anyhow::Result<MeshConfig> {
    Ok(match &args.mesh_config {
        Some(path) => crate::mesh_config::read(path)?,
        None => MeshConfig::default(),
    })
}

/// The CA of `dir`, made there on first use, and its token key.
fn certificate_service(
    args: &Args,
    dir: &std::path::Path,
    trust_domain: &str,
) -> anyhow::Result<CaService> {
    let files = CaFiles::load_or_create(dir, trust_domain)?;
    Ok(CaService {
        ca: Arc::new(CertificateAuthority::new(
            files,
            args.default_cert_ttl,
            args.max_cert_ttl,
        )),
        tokens: Arc::new(TokenKey::load_or_create(dir)?),
    })
}

/// `mesh-control token`: prints the token of one identity.
fn print_token(args: &Args, namespace: &str, service_account: &str) -> anyhow::Result<()> {
    let dir = args
        .ca_dir
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("mesh-control token needs --ca-dir"))?;
    let trust_domain = mesh_config(args)?.trust_domain;
    let tokens = TokenKey::load_or_create(dir)?;
    println!(
        "{}",
        tokens.issue(&SpiffeId::new(&trust_domain, namespace, service_account))
    );
    Ok(())
}

/// Serves the config directory and the config API's store, with the
/// ServiceEntry registry, as xDS until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Command::Token {
        namespace,
        service_account,
    }) = &args.command
    {
        return print_token(&args, namespace, service_account);
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&args.log)?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mesh = mesh_config(&args)?;
    if let Some(tracing) = &mesh.tracing {
        tracing::info!(provider = %tracing.name, service = %tracing.service, port = tracing.port, sampling = tracing.sampling, "proxies trace requests");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ca = args
        .ca_dir
        .as_deref()
        .map(|dir| certificate_service(&args, dir, &mesh.trust_domain))
        .transpose()?;
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
        let (jwks_sender, jwks) = watch::channel(Arc::default());
        let inputs = Inputs {
            mesh,
            sources: sources.clone(),
            registries: vec![Arc::new(ServiceEntryRegistry)],
            jwks: Some(jwks),
        };
        let (sender, snapshots) = watch::channel(Arc::new(inputs.build(1)));
        tokio::spawn(snapshot::publish(inputs, sender));
        tokio::spawn(crate::jwks::follow(snapshots.clone(), jwks_sender));
        let api = move |request| {
            let store = Arc::clone(&store);
            async move { api::handle(&store, request).await }
        };
        let options = Options {
            address: args.address,
            xds_port: args.xds_port,
            monitoring_port: args.monitoring_port,
            api: Some(Arc::new(api)),
            config_sources: sources,
            ca: ca.map(Arc::new),
            secure_port: args.secure_port,
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
