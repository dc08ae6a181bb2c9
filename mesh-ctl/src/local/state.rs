//! The local mesh's directory: everything it writes lives here, so that
//! `meshctl local down` can stop what runs and wipe it.
//!
//! ```text
//! <dir>/state.json        what runs: the supervisor, processes, addresses
//! <dir>/targets.json      the proxies the dashboard reads
//! <dir>/ca/               the CA's root and key, and the token key
//! <dir>/tokens/<name>     each proxy's bootstrap token for the CA
//! <dir>/proxies/<name>.*  each proxy's bootstrap and admin address
//! <dir>/logs/<name>.log   each process's output
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Where the local mesh lives unless `--state-dir` says otherwise:
/// `$XDG_STATE_HOME/meshctl/local`, else `~/.local/state/meshctl/local`.
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("meshctl").join("local")
}

/// The `--state-dir` flag every `local` command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct DirArg {
    /// The local mesh's directory (default `$XDG_STATE_HOME/meshctl/local`).
    #[arg(long = "state-dir", env = "MESHCTL_STATE_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl DirArg {
    pub fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(default_dir)
    }

    /// The directory other commands look in: `MESHCTL_STATE_DIR`, else the
    /// default.
    pub fn from_env() -> DirArg {
        DirArg {
            dir: std::env::var_os("MESHCTL_STATE_DIR").map(PathBuf::from),
        }
    }
}

/// What runs, as `state.json` records it; rewritten as the mesh starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// The `meshctl local up` process that started and watches the rest.
    pub supervisor: u32,
    /// When it started (clock ticks after boot, from `/proc`): a pid
    /// recycled by another process after a crash or a reboot is not it.
    #[serde(default)]
    pub supervisor_started: u64,
    pub processes: Vec<Process>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlane>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<SocketAddr>,
    /// The trace collector's HTTP address (`/api/traces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces: Option<SocketAddr>,
    pub workloads: Vec<WorkloadState>,
    /// Start-up finished: every process is ready.
    #[serde(default)]
    pub ready: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Process {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
}

/// mesh-control's addresses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ControlPlane {
    pub xds: SocketAddr,
    pub secure: SocketAddr,
    pub monitoring: SocketAddr,
}

/// One workload as the dashboard and `local status` show it; the gateway
/// is one too, of kind `gateway`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkloadState {
    pub workload: String,
    pub namespace: String,
    pub app: String,
    pub version: String,
    pub kind: String,
    /// The proxy's admin server, once it listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
    /// Where the mesh reaches the workload.
    pub address: String,
}

/// The directory of one local mesh.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: PathBuf) -> StateDir {
        StateDir { root }
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    pub fn targets_file(&self) -> PathBuf {
        self.root.join("targets.json")
    }

    pub fn ca(&self) -> PathBuf {
        self.root.join("ca")
    }

    pub fn tokens(&self) -> PathBuf {
        self.root.join("tokens")
    }

    pub fn proxies(&self) -> PathBuf {
        self.root.join("proxies")
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Empties the directory for a new mesh, unless one still runs there.
    pub fn prepare(&self) -> anyhow::Result<()> {
        if let Some(state) = self.read()?
            && state.supervisor_running()
        {
            anyhow::bail!(
                "a local mesh is already running from {} (meshctl pid {}): stop it with `meshctl local down`",
                self.root.display(),
                state.supervisor
            );
        }
        self.wipe()?;
        for dir in [self.ca(), self.tokens(), self.proxies(), self.logs()] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(())
    }

    /// Removes the directory and everything in it.
    pub fn wipe(&self) -> anyhow::Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("cannot remove {}", self.root.display()))
            }
            _ => Ok(()),
        }
    }

    /// `state.json`, or `None` when no mesh was started here.
    pub fn read(&self) -> anyhow::Result<Option<State>> {
        let path = self.state_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is not a local mesh state file", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes `state.json` and `targets.json` in one step each, so that
    /// readers never see half a file.
    pub fn write(&self, state: &State) -> anyhow::Result<()> {
        write_atomically(&self.state_file(), &serde_json::to_vec_pretty(state)?)?;
        let targets: Vec<&WorkloadState> = state
            .workloads
            .iter()
            .filter(|w| w.admin.is_some())
            .collect();
        write_atomically(&self.targets_file(), &serde_json::to_vec_pretty(&targets)?)
    }
}

/// The `{"name": "ip:port", ...}` a process writes once it listens
/// (mesh-control's `--address-file`, the trace collector's).
#[derive(Debug)]
pub struct AddressFile(serde_json::Map<String, serde_json::Value>);

impl AddressFile {
    /// The file's addresses, once it has been written.
    pub fn read(file: &Path) -> Option<AddressFile> {
        serde_json::from_slice(&std::fs::read(file).ok()?)
            .ok()
            .map(AddressFile)
    }

    pub fn get(&self, name: &str) -> Option<SocketAddr> {
        self.0.get(name)?.as_str()?.parse().ok()
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

impl State {
    /// Whether the supervisor that wrote this state still runs.
    pub fn supervisor_running(&self) -> bool {
        alive(self.supervisor) && start_time(self.supervisor) == Some(self.supervisor_started)
    }
}

/// The fields of `/proc/<pid>/stat` after the command: the state first.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (command) state ...`: the command may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Whether a process with this id runs (a zombie, exited and waiting to
/// be reaped, does not).
pub fn alive(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|fields| fields.into_iter().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// When the process started, in clock ticks after boot (`starttime`, the
/// 22nd field of its stat).
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}
