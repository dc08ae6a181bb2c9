//! `meshctl` in the role of another of the mesh's programs: the local mesh
//! runs its control plane, proxies and sample apps as children of one
//! executable, the way k3s ships one binary. The roles are hidden commands
//! taking the other program's own flags: `meshctl mesh-control --ca-dir ...`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use rustix::process::{Signal, getppid, set_parent_process_death_signal};

/// Names the supervisor's pid in a child's environment: the child ends
/// when its supervisor does.
pub const SUPERVISOR_ENV: &str = "MESHCTL_SUPERVISOR_PID";

/// The programs `meshctl` can be.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    MeshControl,
    MeshProxy,
    Bookinfo,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::MeshControl => "mesh-control",
            Role::MeshProxy => "mesh-proxy",
            Role::Bookinfo => "bookinfo",
        }
    }
}

/// The rest of the command line, passed to the role's own parser.
#[derive(Debug, clap::Args)]
pub struct RoleArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Runs `role` with `args` as its command line.
pub fn run(role: Role, args: RoleArgs) -> anyhow::Result<ExitCode> {
    follow_supervisor()?;
    let argv = std::iter::once(OsString::from(role.name())).chain(args.args);
    match role {
        Role::MeshControl => mesh_control::cli::run(mesh_control::cli::Args::parse_from(argv))?,
        Role::MeshProxy => mesh_proxy::run(mesh_proxy::Args::parse_from(argv))?,
        Role::Bookinfo => bookinfo::cli::run(bookinfo::Args::parse_from(argv))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Under a supervisor, asks for SIGTERM when it dies, and ends at once if
/// it died already (between our start and the request). Every process the
/// local mesh starts from this executable calls it first.
pub fn follow_supervisor() -> anyhow::Result<()> {
    let Some(supervisor) = std::env::var(SUPERVISOR_ENV)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok())
    else {
        return Ok(());
    };
    set_parent_process_death_signal(Some(Signal::TERM))?;
    if getppid().map(|p| p.as_raw_nonzero().get()) != Some(supervisor) {
        anyhow::bail!("the meshctl that started this process (pid {supervisor}) has exited");
    }
    Ok(())
}
