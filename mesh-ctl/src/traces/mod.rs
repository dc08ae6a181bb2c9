//! A trace collector for the local mesh, and `meshctl traces`.
//!
//! The library API, for whatever runs the collector (`meshctl
//! trace-collector`, the local mesh):
//! - [`TraceStore::new`]`(capacity)`: the most recent traces, in memory;
//! - [`serve_otlp`]`(listener, store, shutdown)`: OTLP/gRPC
//!   (`opentelemetry.proto.collector.trace.v1.TraceService/Export`), where
//!   proxies export spans;
//! - [`serve_http`]`(listener, store, shutdown)`: `GET /api/traces` and
//!   `GET /api/traces/<id>` as JSON, for dashboards.
//!
//! `meshctl traces` reads `/api/traces` and prints the most recent traces
//! as indented trees ([`tree::render`]).

mod serve;
mod store;
mod tree;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

pub use serve::{DEFAULT_LIMIT, serve_http, serve_otlp};
pub use store::{SpanRecord, Trace, TraceStore};
pub use tree::render;

/// `meshctl traces`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The trace collector's HTTP address (`meshctl trace-collector
    /// --http-port`); default: the running local mesh's, else 127.0.0.1:16686.
    #[arg(long, env = "MESH_TRACE_COLLECTOR")]
    pub collector: Option<String>,
    /// How many of the most recent traces to print.
    #[arg(long, default_value_t = 1)]
    pub limit: usize,
}

/// What `GET /api/traces` answers.
#[derive(Debug, serde::Deserialize)]
struct Listing {
    traces: Vec<Trace>,
}

/// `meshctl trace-collector`.
#[derive(Debug, clap::Args)]
pub struct CollectorArgs {
    /// Where proxies export spans over OTLP/gRPC (0: any free port).
    #[arg(long, default_value_t = 4317)]
    pub otlp_port: u16,
    /// Where `/api/traces` is served (0: any free port).
    #[arg(long, default_value_t = 16686)]
    pub http_port: u16,
    /// The IP both servers bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// Write `{"otlp": "ip:port", "http": "ip:port"}` here once listening.
    #[arg(long)]
    pub address_file: Option<PathBuf>,
    /// How many traces to keep; older ones are dropped.
    #[arg(long, default_value_t = 100)]
    pub max_traces: usize,
}

/// Prints the most recent traces, most recent first.
pub fn run(args: &Args, out: &mut impl std::io::Write) -> anyhow::Result<ExitCode> {
    let collector = args
        .collector
        .clone()
        .or_else(|| Some(crate::local::running()?.traces?.to_string()))
        .unwrap_or_else(|| "127.0.0.1:16686".to_owned());
    let base = if collector.contains("://") {
        collector.trim_end_matches('/').to_owned()
    } else {
        format!("http://{collector}")
    };
    let url = format!("{base}/api/traces?limit={}", args.limit);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = runtime
        .block_on(get(&url))
        .with_context(|| format!("cannot reach the trace collector at {collector}"))?;
    let listing: Listing =
        serde_json::from_slice(&body).context("the collector did not answer a list of traces")?;
    if listing.traces.is_empty() {
        writeln!(out, "no traces yet")?;
    }
    for trace in &listing.traces {
        write!(out, "{}", render(trace))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(url: &str) -> anyhow::Result<Bytes> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(url.parse()?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        anyhow::bail!("{url}: {status}: {}", String::from_utf8_lossy(&body).trim());
    }
    Ok(body)
}

/// Runs the collector until SIGTERM or SIGINT.
pub fn run_collector(args: &CollectorArgs) -> anyhow::Result<ExitCode> {
    crate::role::follow_supervisor()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let otlp = bind(args.address, args.otlp_port).await?;
        let http = bind(args.address, args.http_port).await?;
        let (otlp_address, http_address) = (otlp.local_addr()?, http.local_addr()?);
        if let Some(path) = &args.address_file {
            write_addresses(path, otlp_address, http_address)?;
        }
        eprintln!("trace collector: OTLP/gRPC on {otlp_address}, traces on http://{http_address}/api/traces");
        let store = TraceStore::new(args.max_traces);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let otlp = tokio::spawn(serve_otlp(otlp, store.clone(), wait(stopped.clone())));
        let http = tokio::spawn(serve_http(http, store, wait(stopped)));
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop.send(true);
        otlp.await?;
        http.await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn bind(ip: IpAddr, port: u16) -> anyhow::Result<TcpListener> {
    let address = SocketAddr::new(ip, port);
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot bind {address}"))
}

/// Writes then renames, so that a reader never sees half the file.
fn write_addresses(
    path: &std::path::Path,
    otlp: SocketAddr,
    http: SocketAddr,
) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    let text = serde_json::json!({"otlp": otlp.to_string(), "http": http.to_string()});
    std::fs::write(&partial, text.to_string())?;
    std::fs::rename(&partial, path)?;
    Ok(())
}
