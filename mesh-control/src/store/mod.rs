//! Where Istio config comes from. Every source (a watched directory, the
//! in-memory store fed by the control plane's API, later a Kubernetes watch)
//! offers the same [`ConfigSource`] face: the valid config it holds now, the
//! problems of what it left out, and a `watch` channel that changes with it.
//!
//! Only valid config is ever offered: a source checks what it reads with the
//! same loader and rules as `meshctl validate`, and problems carry the same
//! `file:line: Kind ns/name: field: reason` messages.

mod directory;
mod kinds;
mod memory;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use mesh_api::load::{Problem, Resource, Source};
use tokio::sync::watch;

pub use directory::{DirectorySource, POLL_INTERVAL};
pub use kinds::KindName;
pub use memory::{Applied, Changes, MemoryStore, Outcome, Refused};

/// A source of Istio config.
pub trait ConfigSource: Send + Sync + fmt::Debug {
    /// A short name for logs (`dir:/etc/mesh`, `api`).
    fn name(&self) -> String;

    /// The config the source holds now.
    fn current(&self) -> Arc<ConfigSet> {
        self.subscribe().borrow().clone()
    }

    /// A receiver that sees every new [`ConfigSet`]; `changed()` fails once
    /// the source is gone.
    fn subscribe(&self) -> watch::Receiver<Arc<ConfigSet>>;
}

/// Identifies a resource: kind, namespace, name. Orders config the way the
/// snapshot lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn of(resource: &Resource) -> Key {
        Key {
            kind: resource.kind().to_owned(),
            namespace: resource.namespace().to_owned(),
            name: resource.name().to_owned(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One valid resource and where it was read.
#[derive(Clone, Debug)]
pub struct Entry {
    pub resource: Arc<Resource>,
    pub source: Source,
}

/// What a source holds at one moment: valid resources in (kind, namespace,
/// name) order, and the problems of what it left out.
#[derive(Clone, Debug, Default)]
pub struct ConfigSet {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

impl ConfigSet {
    /// Builds a set from entries in order of precedence: of two entries with
    /// the same key the first is kept and the second reported.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> ConfigSet {
        let mut kept: BTreeMap<Key, Entry> = BTreeMap::new();
        let mut problems = Vec::new();
        for entry in entries {
            let key = Key::of(&entry.resource);
            if let Some(first) = kept.get(&key) {
                problems.push(duplicate(&key, &entry.source, &first.source));
                continue;
            }
            kept.insert(key, entry);
        }
        ConfigSet {
            entries: kept.into_values().collect(),
            problems,
        }
    }

    /// Several sets as one: earlier sets take precedence over later ones for
    /// the same key, and every set's problems are kept.
    pub fn merge<'a>(sets: impl IntoIterator<Item = &'a ConfigSet>) -> ConfigSet {
        let sets: Vec<&ConfigSet> = sets.into_iter().collect();
        let entries = sets.iter().flat_map(|set| set.entries.iter().cloned());
        let mut merged = ConfigSet::from_entries(entries);
        let own = sets.iter().flat_map(|set| set.problems.iter().cloned());
        let duplicates = std::mem::take(&mut merged.problems);
        merged.problems = own.chain(duplicates).collect();
        merged
    }

    /// The resources alone, in order.
    pub fn resources(&self) -> Vec<Arc<Resource>> {
        self.entries.iter().map(|e| e.resource.clone()).collect()
    }
}

/// The problem of a resource defined twice.
fn duplicate(key: &Key, again: &Source, first: &Source) -> Problem {
    Problem {
        file: again.file.clone(),
        line: again.line,
        subject: Some(format!("{} {}/{}", key.kind, key.namespace, key.name)),
        path: None,
        reason: format!(
            "already defined at {}:{}; this definition is ignored",
            first.file, first.line
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests;
