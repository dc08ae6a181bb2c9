//! `meshctl local status`: what runs in the local mesh, and whether each
//! proxy is ready.

use std::io::Write;
use std::process::ExitCode;

use super::state::{State, StateDir, alive};
use crate::control_plane::table;

pub fn run(dir: &StateDir, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let Some(state) = dir.read()?.filter(State::supervisor_running) else {
        writeln!(out, "No local mesh runs from {}.", dir.root.display())?;
        return Ok(ExitCode::FAILURE);
    };
    writeln!(
        out,
        "Local mesh in {} (meshctl pid {}), {}.",
        dir.root.display(),
        state.supervisor,
        if state.ready { "up" } else { "starting" }
    )?;
    if let Some(control_plane) = state.control_plane {
        writeln!(
            out,
            "Control plane: xDS {}, CA {}, API http://{}",
            control_plane.xds, control_plane.secure, control_plane.monitoring
        )?;
    }
    if let Some(gateway) = state.gateway {
        writeln!(out, "Ingress gateway: http://{gateway}/")?;
    }
    if let Some(dashboard) = state.dashboard {
        writeln!(out, "Dashboard: http://{dashboard}/")?;
    }
    writeln!(out)?;
    let rows: Vec<Vec<String>> = state
        .processes
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.pid.to_string(),
                if alive(p.pid) { "running" } else { "exited" }.into(),
                memory(p.pid).map_or_else(|| "-".into(), |kib| format!("{:.1} MiB", kib / 1024.0)),
                p.log.display().to_string(),
            ]
        })
        .collect();
    table(
        out,
        &["PROCESS", "PID", "STATE", "MEMORY (PSS)", "LOG"],
        &rows,
    )?;
    writeln!(out)?;
    let rows: Vec<Vec<String>> = state
        .workloads
        .iter()
        .map(|w| {
            vec![
                format!("{}.{}", w.workload, w.namespace),
                w.kind.clone(),
                w.address.clone(),
                w.admin.map(|a| a.to_string()).unwrap_or_default(),
            ]
        })
        .collect();
    table(out, &["WORKLOAD", "KIND", "ADDRESS", "ADMIN"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// The process's proportional set size in KiB: its private memory plus its
/// share of what it shares (every process here maps the same executable,
/// which RSS would count in full each time).
fn memory(pid: u32) -> Option<f64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}
