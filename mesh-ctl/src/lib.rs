//! `meshctl`: the mesh's command line, modelled on `istioctl`.

mod apply;
mod control_plane;
mod dashboard;
mod get;
mod inputs;
mod local;
mod manifest;
mod proxy_config;
mod proxy_status;
mod role;
pub mod traces;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command line of the mesh: validate and apply config, generate manifests.
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
    /// Create or replace Istio config in the control plane, checked first.
    Apply(apply::Args),
    /// Delete the Istio config that files name from the control plane.
    Delete(apply::Args),
    /// List the control plane's Istio config of one kind (vs, dr, gw, se, we, ...).
    Get(get::Args),
    /// Generate install manifests.
    Manifest {
        #[command(subcommand)]
        command: manifest::Command,
    },
    /// Print the version of meshctl.
    Version,
    /// Whether each proxy has the control plane's latest config.
    #[command(name = "proxy-status", visible_alias = "ps")]
    ProxyStatus(proxy_status::Args),
    /// The most recent traces of the trace collector, as trees.
    Traces(traces::Args),
    /// Receives spans over OTLP/gRPC and serves recent traces as JSON.
    TraceCollector(traces::CollectorArgs),
    /// The xDS config the control plane sent to a proxy.
    #[command(name = "proxy-config", visible_alias = "pc")]
    ProxyConfig {
        #[command(subcommand)]
        command: proxy_config::Command,
    },
    /// Bookinfo on the local mesh: mesh-control, the four services with
    /// their sidecars and an ingress gateway on 127.0.0.1:8080; runs until Ctrl-C.
    Demo(local::DemoArgs),
    /// The local mesh: workloads with sidecars on this host, no cluster.
    Local {
        #[command(subcommand)]
        command: local::Command,
    },
    #[command(name = "mesh-control", hide = true)]
    MeshControl(role::RoleArgs),
    #[command(name = "mesh-proxy", hide = true)]
    MeshProxy(role::RoleArgs),
    #[command(name = "bookinfo", hide = true)]
    Bookinfo(role::RoleArgs),
    /// Serve a live service graph of the mesh and its applied config.
    Dashboard(dashboard::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(&args, &mut std::io::stdout().lock()),
        Command::Apply(args) => apply::run(apply::Action::Apply, &args, &mut std::io::stdout()),
        Command::Delete(args) => apply::run(apply::Action::Delete, &args, &mut std::io::stdout()),
        Command::Get(args) => get::run(&args, &mut std::io::stdout().lock()),
        Command::Manifest { command } => manifest::run(command),
        Command::ProxyStatus(args) => proxy_status::run(&args, &mut std::io::stdout().lock()),
        Command::ProxyConfig { command } => {
            proxy_config::run(&command, &mut std::io::stdout().lock())
        }
        Command::Demo(args) => local::demo::run(&args, &mut std::io::stdout()),
        Command::Local { command } => local::run(&command, &mut std::io::stdout()),
        Command::MeshControl(args) => role::run(role::Role::MeshControl, args),
        Command::MeshProxy(args) => role::run(role::Role::MeshProxy, args),
        Command::Bookinfo(args) => role::run(role::Role::Bookinfo, args),
        Command::Traces(args) => traces::run(&args, &mut std::io::stdout().lock()),
        Command::TraceCollector(args) => traces::run_collector(&args),
        Command::Dashboard(args) => dashboard::run(&args),
        Command::Version => {
            println!("meshctl {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}
