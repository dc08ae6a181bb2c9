//! `bookinfo productpage|details|reviews|ratings [--port N] [--address IP]`

use std::io::IsTerminal;

use anyhow::Context;
use bookinfo::{Args, Config};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let config = Config::from_args(&args, &|name| std::env::var(name).ok())?;
    tracing::info!(?config, "starting");
    bookinfo::run(config)
        .await
        .with_context(|| format!("serving on {}:{}", args.address, args.port))
}
