//! A directory of Istio YAML (`--config-dir`), read recursively and watched.
//!
//! The directory is polled: every [`POLL_INTERVAL`] the size and modification
//! time of each `.yaml`, `.yml` and `.json` file is compared with the last
//! look, and only files that changed are read again. Polling needs no
//! platform support, works the same on network and container-mounted
//! volumes (where inotify events are unreliable), and costs one `stat` per
//! file per tick, which is nothing for the tens or hundreds of files such a
//! directory holds.
//!
//! Each file is checked as `meshctl validate` checks it. A file with any
//! problem (YAML syntax, an unknown field, a broken rule) is left out as a
//! whole and its problems are logged as warnings with the same messages;
//! the other files keep serving. A file that was good and turns bad loses
//! its config, as in Istio's file-based config (which drops a file it cannot
//! parse): the directory says what runs, and a half-edited file must not
//! keep an old version alive unnoticed. The same resource (kind, namespace,
//! name) in two files is reported and the first file in path order wins.
//!
//! Hidden files and directories (names starting with `.`) are passed over:
//! editors keep swap files there, and Kubernetes ConfigMap volumes keep a
//! second copy of every file under `..data`.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_api::load::{self, Problem};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ConfigSet, ConfigSource, Entry};

/// How often the directory is looked at; a change is served within about
/// this long (plus the time to read the changed files).
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A watched directory of Istio config.
#[derive(Debug)]
pub struct DirectorySource {
    dir: PathBuf,
    sender: watch::Sender<Arc<ConfigSet>>,
    poller: JoinHandle<()>,
}

impl DirectorySource {
    /// Reads `dir` now, then watches it from a task on the current tokio
    /// runtime until the source is dropped. Fails when `dir` is not a
    /// readable directory.
    pub fn start(dir: &Path) -> io::Result<DirectorySource> {
        let mut scanner = Scanner::new(dir);
        let first = scanner.scan()?.unwrap_or_default();
        let sender = watch::Sender::new(Arc::new(first));
        let poller = tokio::spawn(poll(scanner, sender.clone()));
        Ok(DirectorySource {
            dir: dir.to_owned(),
            sender,
            poller,
        })
    }
}

impl Drop for DirectorySource {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

impl ConfigSource for DirectorySource {
    fn name(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    fn subscribe(&self) -> watch::Receiver<Arc<ConfigSet>> {
        self.sender.subscribe()
    }
}

/// Looks at the directory every [`POLL_INTERVAL`] and publishes what changed.
async fn poll(mut scanner: Scanner, sender: watch::Sender<Arc<ConfigSet>>) {
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        // Reading files blocks; keep it off the runtime's workers.
        let scanned = tokio::task::spawn_blocking(move || {
            let result = scanner.scan();
            (scanner, result)
        })
        .await;
        let Ok((back, result)) = scanned else { return };
        scanner = back;
        match result {
            Ok(Some(set)) => {
                sender.send_replace(Arc::new(set));
            }
            Ok(None) => {}
            // Keep serving what was read last: the directory may be in the
            // middle of being replaced.
            Err(err) => tracing::warn!(
                dir = %scanner.dir.display(),
                "cannot read the config directory, keeping the last config: {err}"
            ),
        }
    }
}

/// What identifies a version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// One file as last read.
#[derive(Debug)]
struct File {
    stamp: Stamp,
    /// `None` when it could not be read.
    text: Option<String>,
    /// Its resources, empty when it has problems.
    entries: Vec<Entry>,
    problems: Vec<Problem>,
}

/// The directory as last seen.
#[derive(Debug)]
struct Scanner {
    dir: PathBuf,
    /// Hashed, not ordered: every tick looks up every file, and ordered
    /// paths compare component by component.
    files: HashMap<PathBuf, File>,
    /// Problems of the last published set, so each is logged once.
    logged: Vec<Problem>,
}

impl Scanner {
    fn new(dir: &Path) -> Scanner {
        Scanner {
            dir: dir.to_owned(),
            files: HashMap::new(),
            logged: Vec::new(),
        }
    }

    /// Looks at every file; the new config when anything in it changed.
    fn scan(&mut self) -> io::Result<Option<ConfigSet>> {
        let paths = config_files(&self.dir)?;
        let before = self.files.len();
        self.files.retain(|path, _| paths.contains_key(path));
        let mut changed = self.files.len() != before;
        for (path, stamp) in paths {
            changed |= self.refresh(path, stamp);
        }
        if !changed {
            return Ok(None);
        }
        let set = self.config();
        for problem in set.problems.iter().filter(|p| !self.logged.contains(p)) {
            tracing::warn!(dir = %self.dir.display(), "config left out: {problem}");
        }
        self.logged = set.problems.clone();
        tracing::info!(
            dir = %self.dir.display(),
            resources = set.entries.len(),
            problems = set.problems.len(),
            "config directory read"
        );
        Ok(Some(set))
    }

    /// Reads a file again if its stamp moved; true when its content changed.
    fn refresh(&mut self, path: PathBuf, stamp: Stamp) -> bool {
        if self.files.get(&path).is_some_and(|f| f.stamp == stamp) {
            return false;
        }
        let name = path.display().to_string();
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let cached = self.files.get_mut(&path);
                if let Some(file) = cached.filter(|f| f.text.as_deref() == Some(text.as_str())) {
                    file.stamp = stamp;
                    return false;
                }
                read_file(&name, stamp, text)
            }
            Err(err) => unreadable(&name, stamp, &err),
        };
        self.files.insert(path, file);
        true
    }

    /// The valid config of every file, in path order.
    fn config(&self) -> ConfigSet {
        let mut files: Vec<(&PathBuf, &File)> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.cmp(b.0));
        let entries = files.iter().flat_map(|(_, f)| f.entries.iter().cloned());
        let mut set = ConfigSet::from_entries(entries);
        let problems = files.iter().flat_map(|(_, f)| f.problems.iter().cloned());
        let duplicates = std::mem::take(&mut set.problems);
        set.problems = problems.chain(duplicates).collect();
        set
    }
}

/// Loads and checks one file's text: all of its resources, or none.
fn read_file(name: &str, stamp: Stamp, text: String) -> File {
    let mut report = load::load_str(name, &text);
    report.validate();
    let entries = if report.problems.is_empty() {
        report
            .resources
            .into_iter()
            .map(|loaded| Entry {
                resource: Arc::new(loaded.resource),
                source: loaded.source,
            })
            .collect()
    } else {
        Vec::new()
    };
    File {
        stamp,
        text: Some(text),
        entries,
        problems: report.problems,
    }
}

/// A file that is listed but cannot be read (permissions, not UTF-8).
fn unreadable(name: &str, stamp: Stamp, err: &io::Error) -> File {
    File {
        stamp,
        text: None,
        entries: Vec::new(),
        problems: vec![Problem::unreadable(name, err)],
    }
}

/// Every config file below `dir` with its stamp.
fn config_files(dir: &Path) -> io::Result<HashMap<PathBuf, Stamp>> {
    let mut files = HashMap::new();
    collect(dir, &mut files)?;
    Ok(files)
}

fn collect(dir: &Path, files: &mut HashMap<PathBuf, Stamp>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symbolic links, as ConfigMap volumes need. Other entries
        // are looked at through the directory (no walk of the whole path
        // for each of thousands of files, four times a second).
        let metadata = match entry.file_type() {
            Ok(kind) if kind.is_symlink() => std::fs::metadata(&path),
            _ => entry.metadata(),
        };
        let Ok(metadata) = metadata else {
            // A dangling link, or a file removed since the listing.
            continue;
        };
        if metadata.is_dir() {
            // A subdirectory that vanished meanwhile is simply not there.
            if let Err(err) = collect(&path, files)
                && err.kind() != io::ErrorKind::NotFound
            {
                return Err(err);
            }
        } else if is_config(&path) {
            let stamp = Stamp {
                len: metadata.len(),
                modified: metadata.modified().ok(),
            };
            files.insert(path, stamp);
        }
    }
    Ok(())
}

fn is_config(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

#[cfg(test)]
mod tests;
