//! `meshctl`: the mesh's command line, modelled on `istioctl`.

mod manifest;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command line of the mesh: validate config, generate manifests.
#[derive(Debug, Parser)]
#[command(name = "meshctl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check Istio configuration files, as the validating webhook would.
    Validate(validate::Args),
    /// Generate install manifests.
    Manifest {
        #[command(subcommand)]
        command: manifest::Command,
    },
    /// Print the version of meshctl.
    Version,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(&args, &mut std::io::stdout().lock()),
        Command::Manifest { command } => manifest::run(command),
        Command::Version => {
            println!("meshctl {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}
