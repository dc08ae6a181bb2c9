//! A proxy's resources encoded once per snapshot, by type and name, and the
//! selection a subscription asks for with its version.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

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
    pub fn new(resources: &Resources) -> Encoded {
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
        .into();
        Encoded { by_type }
    }

    pub fn of(&self, xds_type: XdsType) -> Set {
        self.by_type.get(&xds_type).cloned().unwrap_or_default()
    }
}

fn encode<M: Message + Name>(messages: &[M], name: impl Fn(&M) -> &String) -> Set {
    let type_url = M::type_url();
    Arc::new(
        messages
            .iter()
            .map(|m| {
                let any = Any {
                    type_url: type_url.clone(),
                    value: m.encode_to_vec(),
                };
                (name(m).clone(), any)
            })
            .collect(),
    )
}

/// What a client asked for, of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    All,
    Names(BTreeSet<String>),
}

impl Subscription {
    /// Reads a request's names given what the stream subscribed to before:
    /// `*`, or none for CDS and LDS, mean all; but once a client has named resources of a wildcard type (as gRPC's xDS
    /// client does for LDS and CDS), an empty list unsubscribes from all of
    /// them instead of asking for everything, as the xDS protocol says.
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
    let mut hasher = DefaultHasher::new();
    for (name, any) in set {
        name.hash(&mut hasher);
        any.type_url.hash(&mut hasher);
        any.value.hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
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
        Encoded::new(&Resources {
            clusters: list,
            ..Resources::default()
        })
        .of(XdsType::Cluster)
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
