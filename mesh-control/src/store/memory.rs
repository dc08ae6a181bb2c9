//! The in-memory store behind the control plane's config API (`meshctl
//! apply`, `delete`, `get`). What comes in is checked at the door with the
//! same loader and rules as `meshctl validate`; a request with any invalid
//! document is refused as a whole, so the store never holds half of it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use mesh_api::load::{self, Problem, Resource, Skipped};
use tokio::sync::watch;

use super::{ConfigSet, ConfigSource, Entry, Key, KindName};

/// Istio config held in memory, fed over the API.
#[derive(Debug)]
pub struct MemoryStore {
    entries: Mutex<BTreeMap<Key, Entry>>,
    sender: watch::Sender<Arc<ConfigSet>>,
}

/// What happened to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
    Deleted,
    NotFound,
}

/// One resource of a request and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub key: Key,
    pub outcome: Outcome,
}

/// The result of an accepted request.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub applied: Vec<Applied>,
    /// Documents of kinds this store does not hold (Service, Deployment, ...).
    pub passed_over: Vec<Skipped>,
}

/// Why a request was refused, one problem per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(problems))]
pub struct Refused {
    pub problems: Vec<Problem>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore {
            entries: Mutex::default(),
            sender: watch::Sender::new(Arc::default()),
        }
    }

    /// Creates or replaces every resource in `text` (multi-document YAML or
    /// JSON; `source` names it in problems), or none of them if any is invalid.
    pub fn apply_yaml(&self, source: &str, text: &str) -> Result<Changes, Refused> {
        let mut report = load::load_str(source, text);
        report.validate();
        refuse_problems(&report, source)?;
        let mut entries = self.lock();
        let applied = report
            .resources
            .into_iter()
            .map(|loaded| {
                let entry = Entry {
                    resource: Arc::new(loaded.resource),
                    source: loaded.source,
                };
                let key = Key::of(&entry.resource);
                let outcome = match entries.get(&key) {
                    None => Outcome::Created,
                    Some(old) if same(&old.resource, &entry.resource) => Outcome::Unchanged,
                    Some(_) => Outcome::Configured,
                };
                if outcome != Outcome::Unchanged {
                    entries.insert(key.clone(), entry);
                }
                Applied { key, outcome }
            })
            .collect();
        let changes = Changes {
            applied,
            passed_over: report.skipped,
        };
        self.publish_if_changed(&entries, &changes.applied);
        Ok(changes)
    }

    /// Deletes every resource named in `text` (only kind, namespace and name
    /// matter, but the documents must read).
    pub fn delete_yaml(&self, source: &str, text: &str) -> Result<Changes, Refused> {
        let report = load::load_str(source, text);
        refuse_problems(&report, source)?;
        let mut entries = self.lock();
        let applied = report
            .resources
            .iter()
            .map(|loaded| remove(&mut entries, Key::of(&loaded.resource)))
            .collect();
        let changes = Changes {
            applied,
            passed_over: report.skipped,
        };
        self.publish_if_changed(&entries, &changes.applied);
        Ok(changes)
    }

    /// Deletes one resource.
    pub fn delete(&self, key: &Key) -> Applied {
        let mut entries = self.lock();
        let applied = remove(&mut entries, key.clone());
        self.publish_if_changed(&entries, std::slice::from_ref(&applied));
        applied
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Resource>> {
        self.lock().get(key).map(|e| e.resource.clone())
    }

    /// Resources of `kind` (as [`Resource::kind`] spells it), in one namespace
    /// or all, ordered by namespace and name.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Arc<Resource>> {
        self.lock()
            .iter()
            .filter(|(key, _)| key.kind == kind)
            .filter(|(key, _)| namespace.is_none_or(|ns| key.namespace == ns))
            .map(|(_, entry)| entry.resource.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, Entry>> {
        // A panic while holding the lock cannot leave the map half-written:
        // every change is one insert or remove.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_if_changed(&self, entries: &BTreeMap<Key, Entry>, applied: &[Applied]) {
        let changed = applied.iter().any(|a| {
            matches!(
                a.outcome,
                Outcome::Created | Outcome::Configured | Outcome::Deleted
            )
        });
        if changed {
            let set = ConfigSet {
                entries: entries.values().cloned().collect(),
                problems: Vec::new(),
            };
            self.sender.send_replace(Arc::new(set));
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl ConfigSource for MemoryStore {
    fn name(&self) -> String {
        "api".into()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<ConfigSet>> {
        self.sender.subscribe()
    }
}

impl fmt::Display for Applied {
    /// As kubectl reports it: `virtualservice.networking.istio.io/reviews created`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match self.outcome {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::NotFound => "not found",
        };
        let kind = KindName::of(&self.key.kind).qualified();
        write!(f, "{kind}/{} {outcome}", self.key.name)
    }
}

fn remove(entries: &mut BTreeMap<Key, Entry>, key: Key) -> Applied {
    let outcome = match entries.remove(&key) {
        Some(_) => Outcome::Deleted,
        None => Outcome::NotFound,
    };
    Applied { key, outcome }
}

fn refuse_problems(report: &load::Report, source: &str) -> Result<(), Refused> {
    if !report.problems.is_empty() {
        return Err(Refused {
            problems: report.problems.clone(),
        });
    }
    if report.resources.is_empty() && report.skipped.is_empty() {
        return Err(Refused {
            problems: vec![Problem {
                file: source.to_owned(),
                line: 1,
                subject: None,
                path: None,
                reason: "no objects passed: the input holds no Kubernetes object".into(),
            }],
        });
    }
    Ok(())
}

/// Whether two resources say the same thing (whatever version they were read from).
fn same(a: &Resource, b: &Resource) -> bool {
    a.to_value() == b.to_value()
}

fn lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests;
