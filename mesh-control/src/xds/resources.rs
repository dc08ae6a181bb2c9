//! A proxy's resources encoded once per snapshot, by type and name, and the
//! selection a subscription asks for with its version.
//!
//! Proxies of one namespace mostly get the same resources (every cluster,
//! endpoint and route of the mesh), so equal sets are shared between them
//! through an [`Interner`]: a thousand services encode to megabytes, which
//! thousands of proxies would otherwise each hold a copy of.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::XdsType;
use crate::translate::Resources;

/// Encoded resources of one type, by name.
pub type Set = Arc<BTreeMap<String, Any>>;

/// Every resource of one proxy, encoded.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    by_type: BTreeMap<XdsType, Set>,
}

impl Encoded {
    /// Encodes `resources`, sharing each type's set with other proxies that
    /// have an equal one.
    pub fn new(resources: &Resources, interner: &Interner) -> Encoded {
        let Resources {
            listeners,
            routes,
            clusters,
            endpoints,
            secrets,
        } = resources;
        let by_type = [
            (XdsType::Cluster, encode(clusters, |c| &c.name)),
            (XdsType::Endpoint, encode(endpoints, |e| &e.cluster_name)),
            (XdsType::Listener, encode(listeners, |l| &l.name)),
            (XdsType::Route, encode(routes, |r| &r.name)),
            (XdsType::Secret, encode(secrets, |s| &s.name)),
        ]
        .map(|(xds_type, set)| (xds_type, interner.intern(xds_type, set)))
        .into();
        Encoded { by_type }
    }

    pub fn of(&self, xds_type: XdsType) -> Set {
        self.by_type.get(&xds_type).cloned().unwrap_or_default()
    }
}

fn encode<M: Message + Name>(
    messages: &[M],
    name: impl Fn(&M) -> &String,
) -> BTreeMap<String, Any> {
    let type_url = M::type_url();
    messages
        .iter()
        .map(|m| {
            let any = Any {
                type_url: type_url.clone(),
                value: m.encode_to_vec(),
            };
            (name(m).clone(), any)
        })
        .collect()
}

/// Sets of encoded resources by type and content, held weakly: a set lives
/// as long as a proxy holds it.
#[derive(Debug)]
pub struct Interner {
    sets: Mutex<Sets>,
}

#[derive(Debug)]
struct Sets {
    by_content: HashMap<(XdsType, u64), Weak<BTreeMap<String, Any>>>,
    /// Dead entries are dropped when the map grows to this size.
    prune_at: usize,
}

const FIRST_PRUNE: usize = 64;

impl Default for Interner {
    fn default() -> Self {
        Interner {
            sets: Mutex::new(Sets {
                by_content: HashMap::new(),
                prune_at: FIRST_PRUNE,
            }),
        }
    }
}

impl Interner {
    /// The shared set equal to `set`, or `set` itself, now shared.
    pub fn intern(&self, xds_type: XdsType, set: BTreeMap<String, Any>) -> Set {
        let key = (xds_type, content_hash(&set));
        let existing = self.lock().by_content.get(&key).and_then(Weak::upgrade);
        // Compared outside the lock: sets can be megabytes.
        if let Some(existing) = existing
            && *existing == set
        {
            return existing;
        }
        let set = Arc::new(set);
        let mut sets = self.lock();
        sets.by_content.insert(key, Arc::downgrade(&set));
        if sets.by_content.len() >= sets.prune_at {
            sets.by_content.retain(|_, set| set.strong_count() > 0);
            sets.prune_at = (2 * sets.by_content.len()).max(FIRST_PRUNE);
        }
        set
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sets> {
        self.sets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a client asked for, of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    All,
    Names(BTreeSet<String>),
}

impl Subscription {
    /// Reads a request's names given what the stream subscribed to before:
    /// `*`, or none for CDS and LDS, mean all; but once a client has named
    /// resources of a wildcard type (as gRPC's xDS client does for LDS and
    /// CDS), an empty list unsubscribes from all of them instead of asking
    /// for everything, as the xDS protocol says.
    pub fn from_names(
        xds_type: XdsType,
        names: &[String],
        previous: Option<&Subscription>,
    ) -> Subscription {
        let named_before = matches!(previous, Some(Subscription::Names(_)));
        if names.iter().any(|n| n == "*")
            || (names.is_empty() && xds_type.wildcard() && !named_before)
        {
            Subscription::All
        } else {
            Subscription::Names(names.iter().cloned().collect())
        }
    }

    /// The resources of `all` that this subscription wants.
    pub fn select(&self, all: &Set) -> Set {
        match self {
            Subscription::All => Arc::clone(all),
            // Every name (as a sidecar's EDS and RDS usually ask): the set
            // itself, shared rather than copied.
            Subscription::Names(names)
                if names.len() == all.len() && all.keys().all(|k| names.contains(k)) =>
            {
                Arc::clone(all)
            }
            Subscription::Names(names) => Arc::new(
                names
                    .iter()
                    .filter_map(|name| Some((name.clone(), all.get(name)?.clone())))
                    .collect(),
            ),
        }
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            Subscription::All => vec!["*".into()],
            Subscription::Names(names) => names.iter().cloned().collect(),
        }
    }
}

/// The version of a set of resources: a hash of their names and bytes, so
/// that equal content always has the same version, across reconnects too.
pub fn version(set: &BTreeMap<String, Any>) -> String {
    format!("{:016x}", content_hash(set))
}

fn content_hash(set: &BTreeMap<String, Any>) -> u64 {
    let mut hasher = DefaultHasher::new();
    for (name, any) in set {
        name.hash(&mut hasher);
        any.type_url.hash(&mut hasher);
        any.value.hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;

    use super::*;

    fn cluster(name: &str, timeout_secs: i64) -> Cluster {
        Cluster {
            name: name.into(),
            connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: timeout_secs,
                nanos: 0,
            }),
            ..Cluster::default()
        }
    }

    fn clusters(list: Vec<Cluster>) -> Set {
        Encoded::new(
            &Resources {
                clusters: list,
                ..Resources::default()
            },
            &Interner::default(),
        )
        .of(XdsType::Cluster)
    }

    #[test]
    fn equal_sets_are_shared_and_dead_ones_forgotten() {
        let interner = Interner::default();
        let encode = |list: Vec<Cluster>| {
            Encoded::new(
                &Resources {
                    clusters: list,
                    ..Resources::default()
                },
                &interner,
            )
            .of(XdsType::Cluster)
        };
        let a = encode(vec![cluster("a", 1), cluster("b", 1)]);
        let same = encode(vec![cluster("a", 1), cluster("b", 1)]);
        let changed = encode(vec![cluster("a", 2), cluster("b", 1)]);
        assert!(Arc::ptr_eq(&a, &same));
        assert!(!Arc::ptr_eq(&a, &changed));
        for timeout in 0..2 * FIRST_PRUNE as i64 {
            encode(vec![cluster("a", 10 + timeout)]);
        }
        assert!(interner.lock().by_content.len() < FIRST_PRUNE);
        let again = encode(vec![cluster("a", 1), cluster("b", 1)]);
        assert!(Arc::ptr_eq(&a, &again), "a set in use stays shared");
    }

    #[test]
    fn a_subscription_to_every_name_shares_the_set() {
        let all = clusters(vec![cluster("a", 1), cluster("b", 1)]);
        let every = Subscription::from_names(XdsType::Endpoint, &["a".into(), "b".into()], None);
        assert!(Arc::ptr_eq(&every.select(&all), &all));
        let other = Subscription::from_names(XdsType::Endpoint, &["a".into(), "c".into()], None);
        assert_eq!(other.select(&all).keys().collect::<Vec<_>>(), vec!["a"]);
    }

    #[test]
    fn versions_follow_content() {
        let a = clusters(vec![cluster("a", 1), cluster("b", 1)]);
        let same = clusters(vec![cluster("a", 1), cluster("b", 1)]);
        let changed = clusters(vec![cluster("a", 2), cluster("b", 1)]);
        assert_eq!(version(&a), version(&same));
        assert_ne!(version(&a), version(&changed));
        assert_ne!(version(&a), version(&BTreeMap::new()));
    }

    #[test]
    fn subscriptions_select_by_name() {
        let all = clusters(vec![cluster("a", 1), cluster("b", 1)]);
        let wildcard = Subscription::from_names(XdsType::Cluster, &[], None);
        assert_eq!(wildcard, Subscription::All);
        assert_eq!(wildcard.select(&all).len(), 2);
        let named = Subscription::from_names(XdsType::Endpoint, &["b".into(), "zz".into()], None);
        assert_eq!(
            named.select(&all).keys().collect::<Vec<_>>(),
            vec!["b"],
            "unknown names are left out"
        );
        let nothing = Subscription::from_names(XdsType::Endpoint, &[], None);
        assert!(nothing.select(&all).is_empty());
        assert_eq!(
            Subscription::from_names(XdsType::Route, &["*".into()], None),
            Subscription::All
        );
        // Named LDS/CDS select by name; emptied later, they select nothing.
        let named = Subscription::from_names(XdsType::Cluster, &["b".into()], None);
        assert_eq!(named.select(&all).keys().collect::<Vec<_>>(), vec!["b"]);
        let emptied = Subscription::from_names(XdsType::Cluster, &[], Some(&named));
        assert!(emptied.select(&all).is_empty());
        let still_all = Subscription::from_names(XdsType::Cluster, &[], Some(&wildcard));
        assert_eq!(still_all, Subscription::All);
    }
}
