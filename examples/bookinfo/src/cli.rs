//! The command line: logging, the runtime, and one service until it stops.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::{Args, Config};

/// Runs the service `args` names until it fails or the process ends; logs
/// go to standard error, filtered by `RUST_LOG` (default `info`).
pub fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = Config::from_args(&args, &|name| std::env::var(name).ok())?;
    tracing::info!(?config, "starting");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(crate::run(config))
        .with_context(|| format!("serving on {}:{}", args.address, args.port))
}
