//! The processes of the local mesh: started as children of `meshctl local
//! up`, each in its own process group with its output in a log file, and
//! stopped in the reverse order of their start.
//!
//! The mesh's own parts (mesh-control, mesh-proxy, the Bookinfo apps) are
//! this same executable in another role ([`crate::role`]); they ask the
//! kernel to end them when the supervisor dies, so that even a killed
//! `meshctl` leaves nothing behind.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::{Child, Command};

use super::state::Process;
use crate::role::SUPERVISOR_ENV;

/// What to run.
#[derive(Debug, Clone)]
pub enum Program {
    /// `meshctl <role> ...`: this executable.
    Meshctl,
    /// A command found on `PATH` (or a path).
    External(OsString),
}

impl Program {
    /// `meshctl` names this executable; any other word is external.
    pub fn from_word(word: &str) -> Program {
        if word == "meshctl" {
            Program::Meshctl
        } else {
            Program::External(word.into())
        }
    }
}

/// One child.
#[derive(Debug)]
struct Running {
    name: String,
    child: Child,
    log: PathBuf,
    /// Reported once when it exits on its own.
    reported: bool,
}

/// Every child, in start order.
#[derive(Debug, Default)]
pub struct Children {
    running: Vec<Running>,
}

impl Children {
    /// Starts `name` with its output appended to `log`.
    pub fn spawn(
        &mut self,
        name: &str,
        program: &Program,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<Process> {
        let executable = match program {
            Program::Meshctl => std::env::current_exe().context("cannot find meshctl itself")?,
            Program::External(word) => PathBuf::from(word),
        };
        let output = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(&executable)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(SUPERVISOR_ENV, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            // Ctrl-C in the terminal reaches the supervisor alone, which
            // stops the children in order.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", executable.display()))?;
        let pid = child.id().unwrap_or_default();
        self.running.push(Running {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            reported: false,
        });
        Ok(Process {
            name: name.to_owned(),
            pid,
            log: log.to_owned(),
        })
    }

    /// Whether `name` still runs; an error with the end of its log if not.
    pub fn check(&mut self, name: &str) -> anyhow::Result<()> {
        let Some(running) = self.running.iter_mut().find(|r| r.name == name) else {
            anyhow::bail!("{name} was never started");
        };
        match running.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                running.reported = true;
                Err(exited(&running.name, status, &running.log))
            }
        }
    }

    /// The first child that exited since the last call, with why.
    pub fn newly_exited(&mut self) -> Option<anyhow::Error> {
        self.running.iter_mut().find_map(|running| {
            if running.reported {
                return None;
            }
            let status = running.child.try_wait().ok()??;
            running.reported = true;
            Some(exited(&running.name, status, &running.log))
        })
    }

    /// Stops every child, the last started first: SIGTERM to its process
    /// group (the child and whatever it started), then SIGKILL for a group
    /// whose child has not ended within `grace`.
    pub async fn stop_all(&mut self, grace: Duration) {
        while let Some(mut running) = self.running.pop() {
            let group = running
                .child
                .id()
                .and_then(|id| Pid::from_raw(i32::try_from(id).ok()?));
            if let Some(group) = group {
                let _ = kill_process_group(group, Signal::TERM);
            }
            if tokio::time::timeout(grace, running.child.wait())
                .await
                .is_err()
            {
                let _ = running.child.kill().await;
            }
            if let Some(group) = group {
                // What the child started and left behind.
                let _ = kill_process_group(group, Signal::KILL);
            }
        }
    }
}

/// Says that `name` exited, with the last lines of its log.
fn exited(name: &str, status: ExitStatus, log: &Path) -> anyhow::Error {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
    anyhow::anyhow!(
        "{name} exited ({status}); the end of {}:\n  {tail}",
        log.display()
    )
}
