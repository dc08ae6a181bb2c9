//! `meshctl dashboard`: a live service graph of the mesh, in the spirit of
//! Kiali's, with the applied Istio config beside it.
//!
//! Every few seconds the dashboard reads the list of proxies ([`targets`]),
//! scrapes their Istio metrics ([`scrape`], [`prometheus`]) and turns the
//! difference between two scrapes into a graph of workloads with request
//! rates, error rates and latencies ([`graph`]); it also reads the control
//! plane's config and problems ([`config`]). The page ([`server`]) polls the
//! result as JSON and draws it.

mod config;
mod fetch;
mod graph;
mod prometheus;
mod refresh;
mod scrape;
mod server;
mod targets;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::control_plane::Address;

/// Serves the dashboard until interrupted.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The IP to serve on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// The port to serve on; 0 picks a free one.
    #[arg(long, default_value_t = 20001)]
    pub port: u16,
    /// Write the bound `ip:port` here once listening (useful with port 0).
    #[arg(long)]
    pub address_file: Option<PathBuf>,
    /// The proxies to read: a JSON list of `{"workload", "namespace", "app",
    /// "version", "kind": "sidecar"|"gateway", "admin": "ip:port"}`, read
    /// again at every refresh; a missing file means no proxies yet.
    /// Without it, the running local mesh's dashboard is shown instead.
    #[arg(long)]
    pub targets: Option<PathBuf>,
    #[command(flatten)]
    pub control_plane: Address,
    /// Open the dashboard in a browser.
    #[arg(long)]
    pub open: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Some(targets) = args.targets.clone() else {
        return show_local(args.open);
    };
    crate::role::follow_supervisor()?;
    // Scrapes and a few page loads every few seconds: two workers are plenty,
    // and leave the machine's other cores to the mesh being watched.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args, targets))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: &Args, targets: PathBuf) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((args.address, args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.address, args.port))?;
    let bound = listener.local_addr()?;
    let state = refresh::start(targets, args.control_plane.base());
    if let Some(path) = &args.address_file {
        write_address(path, bound)
            .with_context(|| format!("cannot write the address to {}", path.display()))?;
    }
    let url = format!("http://{bound}/");
    println!("Dashboard: {url}");
    if args.open {
        open_browser(url);
    }
    tokio::select! {
        () = server::serve(listener, state) => {}
        signal = shutdown_signal() => signal?,
    }
    Ok(())
}

/// Prints (and with `open`, opens) the running local mesh's dashboard.
fn show_local(open: bool) -> anyhow::Result<ExitCode> {
    let Some(address) = crate::local::running().and_then(|s| s.dashboard) else {
        anyhow::bail!(
            "no local mesh runs here (start one with `meshctl demo`), and no --targets to serve a dashboard for"
        );
    };
    let url = format!("http://{address}/");
    println!("Dashboard: {url}");
    if open {
        open_url(&url);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the address atomically, so that a reader never sees half of it.
fn write_address(path: &Path, address: SocketAddr) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, address.to_string())?;
    std::fs::rename(&partial, path)
}

/// Asks the desktop to open `url`; the dashboard serves whether or not it can.
fn open_browser(url: String) {
    tokio::task::spawn_blocking(move || open_url(&url));
}

fn open_url(url: &str) {
    match std::process::Command::new("xdg-open").arg(url).status() {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("xdg-open {url} failed ({status}); open it by hand"),
        Err(err) => eprintln!("cannot run xdg-open ({err}); open {url} by hand"),
    }
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        result = tokio::signal::ctrl_c() => result?,
    }
    Ok(())
}
