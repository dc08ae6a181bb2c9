//! `meshctl local down`: stops the mesh's supervisor, which stops the rest
//! in order; ends whatever it left behind; removes the directory.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

use super::state::{StateDir, alive};
use crate::role::SUPERVISOR_ENV;

/// How long the supervisor gets to stop everything before the rest is
/// ended here.
const GRACE: Duration = Duration::from_secs(20);

pub fn run(dir: &StateDir, keep: bool, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let Some(state) = dir.read()? else {
        writeln!(out, "No local mesh in {}.", dir.root.display())?;
        if !keep {
            dir.wipe()?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    if state.supervisor_running() {
        writeln!(
            out,
            "Stopping the local mesh (meshctl pid {})...",
            state.supervisor
        )?;
        signal(state.supervisor, Signal::TERM);
        let deadline = Instant::now() + GRACE;
        while state.supervisor_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if state.supervisor_running() {
            writeln!(
                out,
                "meshctl (pid {}) did not stop within {GRACE:?}; ending it.",
                state.supervisor
            )?;
            signal(state.supervisor, Signal::KILL);
        }
    }
    // A supervisor that was killed leaves its children to end on their
    // own; end any that have not, if they are still ours, with whatever
    // they started (each leads its own process group).
    for process in &state.processes {
        if alive(process.pid) && started_by(process.pid, state.supervisor) {
            writeln!(out, "Ending {} (pid {}).", process.name, process.pid)?;
            signal_group(process.pid, Signal::KILL);
        }
    }
    if keep {
        writeln!(out, "Stopped; {} is kept.", dir.root.display())?;
    } else {
        dir.wipe()?;
        writeln!(out, "Stopped; removed {}.", dir.root.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

fn signal_group(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, signal);
    }
}

/// Whether the process's environment names `supervisor` as the meshctl
/// that started it: a recycled pid belongs to something else.
fn started_by(pid: u32, supervisor: u32) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("{SUPERVISOR_ENV}={supervisor}");
    environ
        .split(|b| *b == 0)
        .any(|entry| entry == wanted.as_bytes())
}
