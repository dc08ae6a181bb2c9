use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mesh_control::model::{MeshSnapshot, Proxy};
use mesh_control::translate::Resources;
use tokio::sync::watch;

fn main() -> ExitCode {
    // An empty mesh until the config store and `translate` are wired in here.
    let (_store, snapshots) = watch::channel(Arc::new(MeshSnapshot::default()));
    let generator = Arc::new(|_: &Proxy, _: &MeshSnapshot| Resources::default());
    match mesh_control::cli::run(mesh_control::cli::Args::parse(), snapshots, generator) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
