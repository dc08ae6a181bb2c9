//! The local mesh: the control plane, each workload with its own sidecar
//! process and an ingress gateway, all on loopback addresses of this host
//! (`meshctl local up|down|status`, and `meshctl demo` for Bookinfo).
//!
//! Workloads are described with Istio's kinds for VMs (ServiceEntry,
//! WorkloadEntry) plus a [`spec::LocalWorkload`] saying which command runs
//! each; [`plan`] tells how they are wired. State lives in one directory
//! ([`state`]).

pub mod demo;
mod down;
mod gateway;
mod observe;
mod plan;
mod process;
mod proxy;
mod spec;
mod state;
mod status;
mod up;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub use demo::Args as DemoArgs;
pub use state::{DirArg, StateDir};

/// The state of the local mesh running from `MESHCTL_STATE_DIR` (or the
/// default directory), if one runs: other commands talk to it by default.
pub fn running() -> Option<state::State> {
    let dir = StateDir::new(DirArg::from_env().path());
    dir.read().ok()?.filter(state::State::supervisor_running)
}

use crate::inputs;
use crate::validate::print_problems;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Starts the workloads the files describe, each with a sidecar, with
    /// mesh-control and an ingress gateway; runs until Ctrl-C.
    Up(UpArgs),
    /// Stops a local mesh and removes its directory.
    Down(DownArgs),
    /// Shows what runs in the local mesh.
    Status(DirArg),
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Files or directories of Istio config and LocalWorkloads. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub options: up::Options,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Keep the directory (logs, CA) after stopping.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(command: &Command, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    match command {
        Command::Up(args) => {
            let (inputs, unreadable) = inputs::read(&args.files);
            start(&inputs, unreadable, None, &args.options, out)
        }
        Command::Down(args) => down::run(&StateDir::new(args.dir.path()), args.keep, out),
        Command::Status(dir) => status::run(&StateDir::new(dir.path()), out),
    }
}

/// Reads and checks the inputs, places the workloads, and runs the mesh.
fn start(
    inputs: &[inputs::Input],
    unreadable: Vec<mesh_api::load::Problem>,
    first_page: Option<up::FirstPage>,
    options: &up::Options,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let mut read = spec::Inputs::read(inputs);
    read.problems.extend(unreadable);
    let workloads = match plan::resolve(&read) {
        Ok(workloads) if read.problems.is_empty() => workloads,
        Ok(_) => Vec::new(),
        Err(problems) => {
            read.problems.extend(problems);
            Vec::new()
        }
    };
    let report = mesh_api::load::Report {
        problems: std::mem::take(&mut read.problems),
        ..Default::default()
    };
    if print_problems(&report, out)? {
        return Ok(ExitCode::FAILURE);
    }
    if workloads.is_empty() {
        writeln!(out, "error: no LocalWorkload in the inputs: nothing to run")?;
        return Ok(ExitCode::FAILURE);
    }
    let workloads = plan::place(&read, workloads)?;
    let plan = up::Plan {
        istio: read.istio,
        workloads,
        first_page,
    };
    up::run(plan, options)
}
