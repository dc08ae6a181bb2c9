//! The shared parts of proxies' resources, built once per scope and
//! snapshot: the first proxy of a scope to need its part builds it, the
//! others of the scope wait for it and share it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use super::resources::Part;
use crate::translate::ScopeKey;

/// Parts by scope, for the newest snapshot seen.
#[derive(Debug, Default)]
pub struct Scopes {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The snapshot version `parts` are of.
    version: u64,
    parts: HashMap<ScopeKey, Arc<OnceLock<Arc<Part>>>>,
    /// The newest part built for each scope before `version`, while a
    /// proxy holds it: a new part keeps the bytes of its unchanged
    /// resources.
    previous: HashMap<ScopeKey, Weak<Part>>,
}

impl Scopes {
    /// The part of `key` for snapshot `version`, built by `build` (given
    /// the previous part of the scope) unless another proxy did.
    pub fn get(
        &self,
        key: &ScopeKey,
        version: u64,
        build: impl FnOnce(Option<&Part>) -> Part,
    ) -> Arc<Part> {
        let (cell, previous) = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if version < state.version {
                // A proxy still on an older snapshot: built for it alone.
                drop(state);
                return Arc::new(build(None));
            }
            if version > state.version {
                state.advance(version);
            }
            let previous = state.previous.get(key).and_then(Weak::upgrade);
            let cell = Arc::clone(state.parts.entry(key.clone()).or_default());
            (cell, previous)
        };
        Arc::clone(cell.get_or_init(|| Arc::new(build(previous.as_deref()))))
    }
}

impl State {
    /// Moves to a newer snapshot: the parts built so far become the
    /// previous ones; scopes no proxy holds a part of are forgotten.
    fn advance(&mut self, version: u64) {
        for (key, cell) in self.parts.drain() {
            if let Some(part) = cell.get() {
                self.previous.insert(key, Arc::downgrade(part));
            }
        }
        self.previous.retain(|_, part| part.strong_count() > 0);
        self.version = version;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MeshSnapshot, Proxy};
    use crate::translate::{Resources, scope_key};

    fn key(namespace: &str) -> ScopeKey {
        let node = envoy_types::pb::envoy::config::core::v3::Node {
            id: format!("sidecar~10.0.0.1~app.{namespace}~{namespace}.svc.cluster.local"),
            ..Default::default()
        };
        let proxy = Proxy::from_node(&node).unwrap();
        scope_key(&proxy, &MeshSnapshot::default()).unwrap()
    }

    #[test]
    fn one_build_per_scope_and_snapshot_and_the_previous_part_is_offered() {
        let scopes = Scopes::default();
        let builds = std::sync::atomic::AtomicUsize::new(0);
        let build = |previous: Option<&Part>| {
            builds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert!(previous.is_none());
            Part::new(Resources::default(), None)
        };
        let a1 = scopes.get(&key("a"), 1, build);
        let a1_again = scopes.get(&key("a"), 1, |_| unreachable!("built once"));
        assert!(Arc::ptr_eq(&a1, &a1_again));
        scopes.get(&key("b"), 1, build);
        assert_eq!(builds.load(std::sync::atomic::Ordering::Relaxed), 2);

        let mut offered = None;
        let a2 = scopes.get(&key("a"), 2, |previous| {
            offered = previous.map(std::ptr::from_ref);
            Part::new(Resources::default(), previous)
        });
        assert_eq!(offered, Some(Arc::as_ptr(&a1)));
        assert!(!Arc::ptr_eq(&a1, &a2));
        // An older snapshot is built apart and does not disturb the newer.
        let old = scopes.get(&key("a"), 1, |previous| {
            assert!(previous.is_none());
            Part::new(Resources::default(), None)
        });
        assert!(!Arc::ptr_eq(&old, &a2));
        assert!(Arc::ptr_eq(
            &a2,
            &scopes.get(&key("a"), 2, |_| unreachable!())
        ));
    }

    #[test]
    fn scopes_no_proxy_holds_are_forgotten() {
        let scopes = Scopes::default();
        let held = scopes.get(&key("a"), 1, |_| Part::new(Resources::default(), None));
        drop(scopes.get(&key("b"), 1, |_| Part::new(Resources::default(), None)));
        scopes.get(&key("c"), 2, |_| Part::new(Resources::default(), None));
        let state = scopes.state.lock().unwrap();
        assert!(state.previous.contains_key(&key("a")));
        assert!(!state.previous.contains_key(&key("b")));
        drop(held);
    }
}
