//! Workloads as Istio's metrics label them, and their exchange in HTTP
//! headers: `x-envoy-peer-metadata` holds a base64 protobuf `Struct` of the
//! sender's node metadata, `x-envoy-peer-metadata-id` its node id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use http::{HeaderMap, HeaderName, HeaderValue};
use prost::Message;

use crate::config::NodeInfo;

pub static PEER_METADATA: HeaderName = HeaderName::from_static("x-envoy-peer-metadata");
pub static PEER_METADATA_ID: HeaderName = HeaderName::from_static("x-envoy-peer-metadata-id");

/// Label keys Istio reads a workload's app and version from, in order.
const APP_LABELS: [&str; 2] = ["app", "app.kubernetes.io/name"];
const VERSION_LABELS: [&str; 2] = ["version", "app.kubernetes.io/version"];
const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
const CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";

/// Peers remembered by their header value; beyond this the cache starts over.
const PEER_CACHE_SIZE: usize = 1024;

/// One side of a request, as the metrics' `source_*` and `destination_*`
/// labels describe it. Empty fields print as `unknown`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Workload {
    /// The pod or instance name (`NAME`).
    pub name: String,
    pub namespace: String,
    /// The deployment or other owner (`WORKLOAD_NAME`).
    pub workload: String,
    /// `CLUSTER_ID`.
    pub cluster: String,
    pub service_account: String,
    pub app: String,
    pub version: String,
    pub canonical_service: String,
    pub canonical_revision: String,
}

impl Workload {
    /// The local workload, from the bootstrap's node metadata.
    pub fn local(node: &NodeInfo) -> Workload {
        let get = |key: &str| node.metadata.get(key).cloned().unwrap_or_default();
        Workload::from_parts(
            get("NAME"),
            get("NAMESPACE"),
            get("WORKLOAD_NAME"),
            get("CLUSTER_ID"),
            get("SERVICE_ACCOUNT"),
            &node.labels,
        )
    }

    fn from_parts(
        name: String,
        namespace: String,
        workload: String,
        cluster: String,
        service_account: String,
        labels: &HashMap<String, String>,
    ) -> Workload {
        let first = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()).cloned())
                .unwrap_or_default()
        };
        let app = first(&APP_LABELS);
        let version = first(&VERSION_LABELS);
        // As Istio's injector defaults them.
        let canonical_service = Some(first(&[CANONICAL_NAME, "app.kubernetes.io/name", "app"]))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| workload.clone());
        let canonical_revision = Some(first(&[CANONICAL_REVISION, VERSION_LABELS[1], "version"]))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "latest".into());
        Workload {
            name,
            namespace,
            workload,
            cluster,
            service_account,
            app,
            version,
            canonical_service,
            canonical_revision,
        }
    }

    /// The `x-envoy-peer-metadata` value that describes this workload.
    pub fn header_value(&self) -> HeaderValue {
        let labels = [
            ("app", &self.app),
            ("version", &self.version),
            (CANONICAL_NAME, &self.canonical_service),
            (CANONICAL_REVISION, &self.canonical_revision),
        ];
        let mut fields: HashMap<String, Value> = [
            ("NAME", &self.name),
            ("NAMESPACE", &self.namespace),
            ("WORKLOAD_NAME", &self.workload),
            ("CLUSTER_ID", &self.cluster),
            ("SERVICE_ACCOUNT", &self.service_account),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), string_value(v)))
        .collect();
        let labels = labels
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), string_value(v)))
            .collect();
        fields.insert(
            "LABELS".into(),
            Value {
                kind: Some(value::Kind::StructValue(Struct { fields: labels })),
            },
        );
        let bytes = Struct { fields }.encode_to_vec();
        HeaderValue::try_from(STANDARD.encode(bytes)).expect("base64 is a valid header value")
    }

    /// Reads an `x-envoy-peer-metadata` value; `None` when it is not one.
    pub fn from_header(value: &[u8]) -> Option<Workload> {
        let trimmed = value
            .strip_suffix(b"==")
            .or(value.strip_suffix(b"="))
            .unwrap_or(value);
        let bytes = STANDARD_NO_PAD.decode(trimmed).ok()?;
        let fields = Struct::decode(bytes.as_slice()).ok()?.fields;
        let get = |key: &str| match fields.get(key).and_then(|v| v.kind.as_ref()) {
            Some(value::Kind::StringValue(s)) => s.clone(),
            _ => String::new(),
        };
        let labels = match fields.get("LABELS").and_then(|v| v.kind.as_ref()) {
            Some(value::Kind::StructValue(labels)) => labels
                .fields
                .iter()
                .filter_map(|(k, v)| match &v.kind {
                    Some(value::Kind::StringValue(s)) => Some((k.clone(), s.clone())),
                    _ => None,
                })
                .collect(),
            _ => HashMap::new(),
        };
        Some(Workload::from_parts(
            get("NAME"),
            get("NAMESPACE"),
            get("WORKLOAD_NAME"),
            get("CLUSTER_ID"),
            get("SERVICE_ACCOUNT"),
            &labels,
        ))
    }
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.to_owned())),
    }
}

/// This proxy's side of the exchange, encoded once.
#[derive(Debug)]
pub struct LocalPeer {
    pub workload: Arc<Workload>,
    metadata: HeaderValue,
    id: Option<HeaderValue>,
}

impl LocalPeer {
    pub fn new(node: &NodeInfo) -> LocalPeer {
        let workload = Workload::local(node);
        LocalPeer {
            metadata: workload.header_value(),
            id: HeaderValue::try_from(node.id.as_str())
                .ok()
                .filter(|id| !id.is_empty()),
            workload: Arc::new(workload),
        }
    }

    /// Adds our metadata headers, replacing any the message carried.
    pub fn propagate(&self, headers: &mut HeaderMap) {
        headers.insert(PEER_METADATA.clone(), self.metadata.clone());
        match &self.id {
            Some(id) => headers.insert(PEER_METADATA_ID.clone(), id.clone()),
            None => headers.remove(&PEER_METADATA_ID),
        };
    }
}

/// Decoded peers by header value, so that each request costs a lookup.
#[derive(Debug, Default)]
pub struct PeerCache {
    peers: Mutex<HashMap<HeaderValue, Arc<Workload>>>,
}

impl PeerCache {
    /// Takes the peer metadata headers out of `headers` and returns the peer
    /// they describe, if they hold one.
    pub fn discover(&self, headers: &mut HeaderMap) -> Option<Arc<Workload>> {
        headers.remove(&PEER_METADATA_ID);
        let value = headers.remove(&PEER_METADATA)?;
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(peer) = peers.get(&value) {
            return Some(Arc::clone(peer));
        }
        let peer = Arc::new(Workload::from_header(value.as_bytes())?);
        if peers.len() >= PEER_CACHE_SIZE {
            peers.clear();
        }
        peers.insert(value, Arc::clone(&peer));
        Some(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeInfo {
        NodeInfo {
            id: "sidecar~10.0.0.1~reviews-v2-abc.default~default.svc.cluster.local".into(),
            metadata: [
                ("NAME", "reviews-v2-abc"),
                ("NAMESPACE", "default"),
                ("WORKLOAD_NAME", "reviews-v2"),
                ("CLUSTER_ID", "Kubernetes"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            labels: [("app", "reviews"), ("version", "v2")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            zone: String::new(),
        }
    }

    #[test]
    fn labels_default_as_istio_does() {
        let local = Workload::local(&node());
        assert_eq!(local.app, "reviews");
        assert_eq!(local.version, "v2");
        assert_eq!(local.canonical_service, "reviews");
        assert_eq!(local.canonical_revision, "v2");
        let bare = Workload::local(&NodeInfo {
            metadata: [("WORKLOAD_NAME".to_owned(), "job".to_owned())].into(),
            ..NodeInfo::default()
        });
        assert_eq!(bare.canonical_service, "job");
        assert_eq!(bare.canonical_revision, "latest");
    }

    #[test]
    fn headers_round_trip_and_are_taken_out() {
        let local = LocalPeer::new(&node());
        let mut headers = HeaderMap::new();
        local.propagate(&mut headers);
        assert!(headers.contains_key(&PEER_METADATA_ID));
        let cache = PeerCache::default();
        let peer = cache.discover(&mut headers).expect("a peer");
        assert_eq!(*peer, *local.workload);
        assert!(headers.is_empty());
        // The second time comes from the cache.
        local.propagate(&mut headers);
        assert!(Arc::ptr_eq(&peer, &cache.discover(&mut headers).unwrap()));
    }

    #[test]
    fn garbage_headers_describe_no_peer() {
        let cache = PeerCache::default();
        for garbage in ["", "!!!", "AAAA", "ZZZZZZZZ"] {
            let mut headers = HeaderMap::new();
            headers.insert(&PEER_METADATA, HeaderValue::from_static(garbage));
            if let Some(peer) = cache.discover(&mut headers) {
                // Valid base64 of bytes that happen to parse: an empty workload.
                assert_eq!(peer.namespace, "");
            }
            assert!(headers.is_empty());
        }
    }
}
