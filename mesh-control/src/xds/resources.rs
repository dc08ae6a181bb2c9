//! Resources encoded once and shared: what a proxy is sent, by type and
//! name, and the selection a subscription asks for with its version.
//!
//! A proxy's resources come in parts: the part it shares with every proxy
//! of its scope (a sidecar's outbound clusters, endpoints, routes and
//! listeners: almost everything, and the same for a whole namespace), and
//! its own (inbound). Each part is a [`Part`]: per type a [`Layer`] of
//! resources encoded once, as the `resources` field of a
//! `DiscoveryResponse` carries them, so that a response to any number of
//! proxies is those bytes as they are, never copied or encoded again.
//!
//! A part is built from the previous part of the same scope: a resource
//! equal to the one before keeps its bytes. That makes versions follow
//! content rather than encoding (prost writes a `Struct` or `Metadata` map
//! in a random order each time), so that a change to one VirtualService
//! sends routes, and not every cluster again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::google::protobuf::Any;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use prost::{Message, Name};

use super::XdsType;
use crate::translate::Resources;

/// The field number of `DiscoveryResponse.resources`.
const RESOURCES_FIELD: u32 = 2;

/// Resources of one type, each encoded as an `Any`, and all of them as the
/// `resources` fields of one response.
#[derive(Debug, Default, PartialEq)]
pub struct Layer {
    /// Each resource's `Any`, by name: a slice of `fields`.
    by_name: BTreeMap<String, Bytes>,
    /// Every resource as a `resources` field (key, length, `Any`), concatenated.
    fields: Bytes,
    /// Of the names and bytes: equal content, equal hash.
    hash: u64,
}

impl Layer {
    /// A layer of encoded `Any`s, by name.
    fn new(anys: impl IntoIterator<Item = (String, Bytes)>) -> Layer {
        let anys: Vec<(String, Bytes)> = anys.into_iter().collect();
        let size = anys
            .iter()
            .map(|(_, any)| 1 + encoded_len_varint(any.len() as u64) + any.len())
            .sum();
        let mut fields = BytesMut::with_capacity(size);
        let mut spans = Vec::with_capacity(anys.len());
        let mut hasher = DefaultHasher::new();
        for (name, any) in anys {
            name.hash(&mut hasher);
            any.hash(&mut hasher);
            encode_key(RESOURCES_FIELD, WireType::LengthDelimited, &mut fields);
            encode_varint(any.len() as u64, &mut fields);
            let start = fields.len();
            fields.put_slice(&any);
            spans.push((name, start..fields.len()));
        }
        let fields = fields.freeze();
        let by_name = spans
            .into_iter()
            .map(|(name, span)| (name, fields.slice(span)))
            .collect();
        Layer {
            by_name,
            fields,
            hash: hasher.finish(),
        }
    }
}

/// Every type's layer of one part, and the messages it was encoded from,
/// against which the next part of the same scope is compared.
#[derive(Debug, Default)]
pub struct Part {
    messages: Resources,
    layers: BTreeMap<XdsType, Arc<Layer>>,
}

impl Part {
    /// Encodes `resources`, keeping the bytes of every resource equal to
    /// the one of the same name in `previous`.
    pub fn new(mut resources: Resources, previous: Option<&Part>) -> Part {
        resources.sort();
        let layers = [
            (
                XdsType::Cluster,
                layer(
                    XdsType::Cluster,
                    &resources.clusters,
                    |c| &c.name,
                    previous,
                    |r| &r.clusters,
                ),
            ),
            (
                XdsType::Endpoint,
                layer(
                    XdsType::Endpoint,
                    &resources.endpoints,
                    |e| &e.cluster_name,
                    previous,
                    |r| &r.endpoints,
                ),
            ),
            (
                XdsType::Listener,
                layer(
                    XdsType::Listener,
                    &resources.listeners,
                    |l| &l.name,
                    previous,
                    |r| &r.listeners,
                ),
            ),
            (
                XdsType::Route,
                layer(
                    XdsType::Route,
                    &resources.routes,
                    |r| &r.name,
                    previous,
                    |r| &r.routes,
                ),
            ),
            (
                XdsType::Secret,
                layer(
                    XdsType::Secret,
                    &resources.secrets,
                    |s| &s.name,
                    previous,
                    |r| &r.secrets,
                ),
            ),
        ]
        .into_iter()
        .map(|(t, layer)| {
            // An unchanged layer is the previous one, shared.
            let same = previous
                .and_then(|p| p.layers.get(&t))
                .filter(|old| ***old == layer);
            (t, same.cloned().unwrap_or_else(|| Arc::new(layer)))
        })
        .collect();
        Part {
            messages: resources,
            layers,
        }
    }

    fn layer(&self, xds_type: XdsType) -> Option<&Arc<Layer>> {
        self.layers.get(&xds_type).filter(|l| !l.by_name.is_empty())
    }
}

/// Encodes `messages` (sorted by name), reusing the bytes of each message
/// equal to the one of the same name in `previous` (`of` picks the list).
fn layer<M: Message + Name + PartialEq>(
    xds_type: XdsType,
    messages: &[M],
    name: impl Fn(&M) -> &String,
    previous: Option<&Part>,
    of: impl Fn(&Resources) -> &Vec<M>,
) -> Layer {
    let type_url = M::type_url();
    let unchanged = |message: &M| -> Option<Bytes> {
        let previous = previous?;
        let old = of(&previous.messages);
        let wanted = name(message);
        let at = old
            .binary_search_by(|m| name(m).as_str().cmp(wanted))
            .ok()?;
        if old[at] != *message {
            return None;
        }
        previous.layers.get(&xds_type)?.by_name.get(wanted).cloned()
    };
    Layer::new(messages.iter().map(|message| {
        let any = unchanged(message).unwrap_or_else(|| {
            Any {
                type_url: type_url.clone(),
                value: message.encode_to_vec(),
            }
            .encode_to_vec()
            .into()
        });
        (name(message).clone(), any)
    }))
}

/// A proxy's resources of one type: its layers, whose names do not overlap.
#[derive(Debug, Clone, Default)]
pub struct Set {
    layers: Vec<Arc<Layer>>,
}

impl Set {
    pub fn len(&self) -> usize {
        self.layers.iter().map(|l| l.by_name.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.layers.iter().flat_map(|l| l.by_name.keys())
    }

    fn get(&self, name: &str) -> Option<&Bytes> {
        self.layers.iter().find_map(|l| l.by_name.get(name))
    }

    /// The resources, decoded into `Any`s, by name.
    pub fn anys(&self) -> BTreeMap<&str, Any> {
        self.layers
            .iter()
            .flat_map(|l| &l.by_name)
            .filter_map(|(name, any)| Some((name.as_str(), Any::decode(any.clone()).ok()?)))
            .collect()
    }

    /// The version of the content: a hash of the layers' hashes, so that
    /// equal content always has the same version, across reconnects too.
    pub fn version(&self) -> String {
        let mut hasher = DefaultHasher::new();
        for layer in &self.layers {
            layer.hash.hash(&mut hasher);
        }
        format!("{:016x}", hasher.finish())
    }

    /// The resources as the `resources` fields of a response, in pieces.
    pub fn fields(&self) -> impl Iterator<Item = &Bytes> {
        self.layers.iter().map(|l| &l.fields)
    }

    /// The bytes `fields` adds up to.
    pub fn fields_len(&self) -> usize {
        self.layers.iter().map(|l| l.fields.len()).sum()
    }

    /// Whether `names` are exactly the names of the set.
    fn named_exactly(&self, names: &BTreeSet<String>) -> bool {
        if names.len() != self.len() {
            return false;
        }
        match self.layers.as_slice() {
            // Both sorted: one pass, no lookups.
            [layer] => names.iter().eq(layer.by_name.keys()),
            _ => self.names().all(|name| names.contains(name)),
        }
    }

    /// Whether both hold the very same layers (and so the same content).
    fn same_layers(&self, other: &Set) -> bool {
        self.layers.len() == other.layers.len()
            && self
                .layers
                .iter()
                .zip(&other.layers)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// Every type's resources for one proxy: its scope's shared part, then
/// its own.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    pub shared: Option<Arc<Part>>,
    pub own: Arc<Part>,
}

impl Encoded {
    pub fn of(&self, xds_type: XdsType) -> Set {
        let layers = self
            .shared
            .as_deref()
            .and_then(|p| p.layer(xds_type))
            .into_iter()
            .chain(self.own.layer(xds_type))
            .cloned()
            .collect();
        Set { layers }
    }
}

/// What a client asked for, of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    All,
    /// Shared between streams that name the same resources: two thousand
    /// sidecars each naming three thousand clusters would otherwise hold
    /// six million strings.
    Names(Arc<BTreeSet<String>>),
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
        let before = match previous {
            Some(Subscription::Names(before)) => Some(before),
            _ => None,
        };
        if names.iter().any(|n| n == "*")
            || (names.is_empty() && xds_type.wildcard() && before.is_none())
        {
            return Subscription::All;
        }
        // Every ACK repeats the names: in the same order, they are read
        // without building a set.
        if let Some(before) = before
            && names.len() == before.len()
            && names.iter().eq(before.iter())
        {
            return Subscription::Names(Arc::clone(before));
        }
        let names: BTreeSet<String> = names.iter().cloned().collect();
        match before {
            Some(before) if **before == names => Subscription::Names(Arc::clone(before)),
            _ => Subscription::Names(shared_names(names)),
        }
    }

    /// The resources of `all` that this subscription wants. `last` is what
    /// the previous call returned for this subscription: when `all` is made
    /// of the same layers, so is the answer.
    pub fn select(&self, all: &Set, last: Option<&Selected>) -> Selected {
        if let Some(last) = last
            && last.from.same_layers(all)
        {
            return last.clone();
        }
        let set = match self {
            Subscription::All => all.clone(),
            // Every name (as a sidecar's EDS and RDS usually ask): the set
            // itself, shared rather than copied.
            Subscription::Names(names) if all.named_exactly(names) => all.clone(),
            Subscription::Names(names) => Set {
                layers: vec![Arc::new(Layer::new(
                    names
                        .iter()
                        .filter_map(|name| Some((name.clone(), all.get(name)?.clone()))),
                ))],
            },
        };
        Selected {
            from: all.clone(),
            set,
        }
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            Subscription::All => vec!["*".into()],
            Subscription::Names(names) => names.iter().cloned().collect(),
        }
    }
}

/// Sets of subscribed names by content, held weakly: a set lives as long
/// as a stream subscribes to it.
static NAMES: LazyLock<Mutex<NameSets>> = LazyLock::new(Mutex::default);

#[derive(Debug, Default)]
struct NameSets {
    by_hash: HashMap<u64, Vec<Weak<BTreeSet<String>>>>,
    /// Dead entries are dropped when the map grows to this size.
    prune_at: usize,
}

/// The shared set equal to `names`, or `names` itself, now shared.
fn shared_names(names: BTreeSet<String>) -> Arc<BTreeSet<String>> {
    let mut hasher = DefaultHasher::new();
    names.hash(&mut hasher);
    let hash = hasher.finish();
    let mut sets = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let equal = sets.by_hash.get(&hash).and_then(|candidates| {
        candidates
            .iter()
            .filter_map(Weak::upgrade)
            .find(|set| **set == names)
    });
    if let Some(set) = equal {
        return set;
    }
    let set = Arc::new(names);
    sets.by_hash
        .entry(hash)
        .or_default()
        .push(Arc::downgrade(&set));
    if sets.by_hash.len() >= sets.prune_at {
        sets.by_hash.retain(|_, candidates| {
            candidates.retain(|set| set.strong_count() > 0);
            !candidates.is_empty()
        });
        sets.prune_at = (2 * sets.by_hash.len()).max(64);
    }
    set
}

/// What a subscription selected from a set, remembered with the set.
#[derive(Debug, Clone)]
pub struct Selected {
    from: Set,
    pub set: Set,
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

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

    fn part(list: Vec<Cluster>, previous: Option<&Part>) -> Part {
        let resources = Resources {
            clusters: list,
            ..Resources::default()
        };
        Part::new(resources, previous)
    }

    fn encoded(shared: Option<Part>, own: Part) -> Encoded {
        Encoded {
            shared: shared.map(Arc::new),
            own: Arc::new(own),
        }
    }

    fn clusters(part: &Part) -> Set {
        Set {
            layers: part.layer(XdsType::Cluster).cloned().into_iter().collect(),
        }
    }

    fn select(subscription: &Subscription, all: &Set) -> Set {
        subscription.select(all, None).set
    }

    #[test]
    fn unchanged_resources_keep_their_bytes_and_layers_are_shared() {
        // Metadata with several keys encodes in a different order each
        // time; an equal cluster must still keep its bytes and version.
        let text = |s: &str| Value {
            kind: Some(Kind::StringValue(s.into())),
        };
        let with_metadata = |name: &str| Cluster {
            metadata: Some(Metadata {
                filter_metadata: [(
                    "istio".to_owned(),
                    Struct {
                        fields: (0..16).map(|i| (format!("k{i}"), text("v"))).collect(),
                    },
                )]
                .into(),
                ..Metadata::default()
            }),
            ..cluster(name, 1)
        };
        let first = part(vec![with_metadata("a"), cluster("b", 1)], None);
        let again = part(vec![with_metadata("a"), cluster("b", 1)], Some(&first));
        assert!(Arc::ptr_eq(
            first.layer(XdsType::Cluster).unwrap(),
            again.layer(XdsType::Cluster).unwrap()
        ));
        assert_eq!(clusters(&first).version(), clusters(&again).version());
        let changed = part(vec![with_metadata("a"), cluster("b", 2)], Some(&again));
        assert_ne!(clusters(&changed).version(), clusters(&again).version());
        let a = |p: &Part| p.layer(XdsType::Cluster).unwrap().by_name["a"].clone();
        assert_eq!(
            a(&changed),
            a(&first),
            "the unchanged cluster keeps its bytes"
        );
    }

    #[test]
    fn shared_and_own_layers_make_one_set() {
        let shared = part(vec![cluster("outbound|80||a", 1)], None);
        let own = part(vec![cluster("inbound|80||", 1)], None);
        let set = encoded(Some(shared), own).of(XdsType::Cluster);
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.anys().keys().copied().collect::<Vec<_>>(),
            vec!["inbound|80||", "outbound|80||a"]
        );
        let response = super::super::response::Response {
            xds_type: XdsType::Cluster,
            version: set.version(),
            nonce: "n".into(),
            resources: set.clone(),
        };
        let decoded = response.decode();
        assert_eq!(decoded.resources.len(), 2);
        let names: Vec<String> = decoded
            .resources
            .iter()
            .map(|any| Cluster::decode(any.value.as_slice()).unwrap().name)
            .collect();
        assert_eq!(names, vec!["outbound|80||a", "inbound|80||"]);
    }

    #[test]
    fn a_subscription_to_every_name_shares_the_set() {
        let all = clusters(&part(vec![cluster("a", 1), cluster("b", 1)], None));
        let every = Subscription::from_names(XdsType::Endpoint, &["a".into(), "b".into()], None);
        let selected = every.select(&all, None);
        assert!(selected.set.same_layers(&all));
        let again = every.select(&all, Some(&selected));
        assert!(again.set.same_layers(&all));
        let other = Subscription::from_names(XdsType::Endpoint, &["a".into(), "c".into()], None);
        assert_eq!(
            select(&other, &all)
                .anys()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec!["a"]
        );
    }

    #[test]
    fn streams_naming_the_same_resources_share_one_set() {
        let shared = |s: &Subscription| match s {
            Subscription::Names(names) => Arc::clone(names),
            Subscription::All => panic!("named"),
        };
        let names = ["eds-b".to_owned(), "eds-a".to_owned()];
        let first = Subscription::from_names(XdsType::Endpoint, &names, None);
        let second = Subscription::from_names(XdsType::Endpoint, &names, None);
        assert!(Arc::ptr_eq(&shared(&first), &shared(&second)));
        let sorted = ["eds-a".to_owned(), "eds-b".to_owned()];
        let ack = Subscription::from_names(XdsType::Endpoint, &sorted, Some(&first));
        assert!(Arc::ptr_eq(&shared(&first), &shared(&ack)));
        let more = Subscription::from_names(XdsType::Endpoint, &["eds-c".to_owned()], Some(&ack));
        assert_eq!(shared(&more).iter().collect::<Vec<_>>(), vec!["eds-c"]);
    }

    #[test]
    fn versions_follow_content() {
        let a = clusters(&part(vec![cluster("a", 1), cluster("b", 1)], None));
        let same = clusters(&part(vec![cluster("a", 1), cluster("b", 1)], None));
        let changed = clusters(&part(vec![cluster("a", 2), cluster("b", 1)], None));
        assert_eq!(a.version(), same.version());
        assert_ne!(a.version(), changed.version());
        assert_ne!(a.version(), Set::default().version());
    }

    #[test]
    fn subscriptions_select_by_name() {
        let all = clusters(&part(vec![cluster("a", 1), cluster("b", 1)], None));
        let names = |set: Set| {
            set.anys()
                .keys()
                .map(|k| (*k).to_owned())
                .collect::<Vec<_>>()
        };
        let wildcard = Subscription::from_names(XdsType::Cluster, &[], None);
        assert_eq!(wildcard, Subscription::All);
        assert_eq!(select(&wildcard, &all).len(), 2);
        let named = Subscription::from_names(XdsType::Endpoint, &["b".into(), "zz".into()], None);
        assert_eq!(
            names(select(&named, &all)),
            vec!["b"],
            "unknown names are left out"
        );
        let nothing = Subscription::from_names(XdsType::Endpoint, &[], None);
        assert!(select(&nothing, &all).is_empty());
        assert_eq!(
            Subscription::from_names(XdsType::Route, &["*".into()], None),
            Subscription::All
        );
        // Named LDS/CDS select by name; emptied later, they select nothing.
        let named = Subscription::from_names(XdsType::Cluster, &["b".into()], None);
        assert_eq!(names(select(&named, &all)), vec!["b"]);
        let emptied = Subscription::from_names(XdsType::Cluster, &[], Some(&named));
        assert!(select(&emptied, &all).is_empty());
        let still_all = Subscription::from_names(XdsType::Cluster, &[], Some(&wildcard));
        assert_eq!(still_all, Subscription::All);
    }
}
