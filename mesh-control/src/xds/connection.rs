//! One proxy's ADS stream as state: per type what it subscribed to, what was
//! sent (version, nonce, resources), what it ACKed and its last NACK. No I/O
//! here: requests and new resources go in, responses come out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

use super::XdsType;
use super::resources::{Encoded, Selected, Set, Subscription};
use super::response::Response;
use crate::model::Proxy;

/// Makes nonces unique per response, and across restarts of the process.
#[derive(Debug)]
pub struct Nonces {
    prefix: u32,
    next: AtomicU64,
}

impl Default for Nonces {
    fn default() -> Self {
        Nonces {
            prefix: fastrand::u32(..),
            next: AtomicU64::new(1),
        }
    }
}

impl Nonces {
    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n}", self.prefix)
    }
}

/// A response sent for one type.
#[derive(Debug, Clone)]
pub struct Sent {
    pub version: String,
    pub nonce: String,
    pub at: SystemTime,
    pub resources: Set,
}

/// A rejection of a response by the proxy.
#[derive(Debug, Clone)]
pub struct Nack {
    /// The version the proxy kept (the last one it accepted).
    pub version: String,
    pub nonce: String,
    pub message: String,
    pub at: SystemTime,
}

/// One type on one stream.
#[derive(Debug, Clone)]
pub struct Watch {
    pub subscription: Subscription,
    pub sent: Option<Sent>,
    /// The version and nonce of the last ACK.
    pub acked: Option<(String, String)>,
    /// Cleared by the next ACK.
    pub nack: Option<Nack>,
    /// What the subscription last selected, reused while the resources
    /// are the same.
    selected: Option<Selected>,
}

/// What a request led to.
#[derive(Debug, Default)]
pub struct Handled {
    pub response: Option<Response>,
    /// The proxy rejected the last response of this type, for this reason.
    pub nack: Option<String>,
}

/// A connected proxy and the state of its stream.
#[derive(Debug)]
pub struct Connection {
    pub proxy: Proxy,
    /// The node id as the proxy sent it.
    pub node_id: String,
    /// `CLUSTER_ID` from the node metadata, `Kubernetes` when absent, as istiod.
    pub cluster_id: String,
    pub connected_at: SystemTime,
    /// The proxy's resources for the newest snapshot.
    encoded: Encoded,
    pub watches: BTreeMap<XdsType, Watch>,
}

impl Connection {
    pub fn new(proxy: Proxy, node_id: String, encoded: Encoded) -> Connection {
        let cluster_id = proxy
            .metadata
            .get("CLUSTER_ID")
            .and_then(serde_json::Value::as_str)
            .filter(|c| !c.is_empty())
            .unwrap_or("Kubernetes")
            .to_owned();
        Connection {
            proxy,
            node_id,
            cluster_id,
            connected_at: SystemTime::now(),
            encoded,
            watches: BTreeMap::new(),
        }
    }

    /// Handles one request of a known type.
    pub fn request(
        &mut self,
        xds_type: XdsType,
        request: &DiscoveryRequest,
        nonces: &Nonces,
    ) -> Handled {
        let previous = self.watches.get(&xds_type).map(|w| &w.subscription);
        let subscription = Subscription::from_names(xds_type, &request.resource_names, previous);
        let Some(watch) = self.watches.get_mut(&xds_type) else {
            // A first request, or the first on this stream after a reconnect
            // (which may carry the nonce of the previous server): answer it.
            self.watches.insert(
                xds_type,
                Watch {
                    subscription,
                    sent: None,
                    acked: None,
                    nack: None,
                    selected: None,
                },
            );
            return Handled {
                response: Some(self.respond(xds_type, nonces)),
                nack: None,
            };
        };
        let last_nonce = watch.sent.as_ref().map(|s| s.nonce.as_str());
        if !request.response_nonce.is_empty() && Some(request.response_nonce.as_str()) != last_nonce
        {
            // Stale: the proxy has not yet seen the newest response, and will
            // answer that one.
            return Handled::default();
        }
        let mut handled = Handled::default();
        if request.response_nonce.is_empty() {
            // The proxy asks again from scratch; it gets a response.
        } else if let Some(error) = &request.error_detail {
            watch.nack = Some(Nack {
                version: request.version_info.clone(),
                nonce: request.response_nonce.clone(),
                message: error.message.clone(),
                at: SystemTime::now(),
            });
            handled.nack = Some(error.message.clone());
        } else {
            watch.acked = Some((request.version_info.clone(), request.response_nonce.clone()));
            watch.nack = None;
        }
        let renewed = request.response_nonce.is_empty();
        if renewed || watch.subscription != subscription {
            watch.subscription = subscription;
            watch.selected = None;
            handled.response = Some(self.respond(xds_type, nonces));
        }
        handled
    }

    /// The proxy's resources for the newest snapshot.
    pub fn encoded(&self) -> &Encoded {
        &self.encoded
    }

    /// Takes the resources of a new snapshot; returns, in push order, the
    /// responses for the subscribed types whose content changed.
    pub fn update(&mut self, encoded: Encoded, nonces: &Nonces) -> Vec<Response> {
        self.encoded = encoded;
        let mut changed = Vec::new();
        for (xds_type, watch) in &mut self.watches {
            let selected = watch
                .subscription
                .select(&self.encoded.of(*xds_type), watch.selected.as_ref());
            let version = selected.set.version();
            watch.selected = Some(selected);
            if watch.sent.as_ref().map(|s| &s.version) != Some(&version) {
                changed.push(*xds_type);
            }
        }
        changed
            .into_iter()
            .map(|xds_type| self.respond(xds_type, nonces))
            .collect()
    }

    fn respond(&mut self, xds_type: XdsType, nonces: &Nonces) -> Response {
        let watch = self
            .watches
            .get_mut(&xds_type)
            .expect("responses are only built for watched types");
        let selected = watch
            .subscription
            .select(&self.encoded.of(xds_type), watch.selected.as_ref());
        let resources = selected.set.clone();
        watch.selected = Some(selected);
        let sent = Sent {
            version: resources.version(),
            nonce: nonces.next(),
            at: SystemTime::now(),
            resources,
        };
        let response = Response {
            xds_type,
            version: sent.version.clone(),
            nonce: sent.nonce.clone(),
            resources: sent.resources.clone(),
        };
        watch.sent = Some(sent);
        response
    }
}

/// The connected proxies, for the debug pages.
#[derive(Debug, Default)]
pub struct Connections {
    next_id: AtomicU64,
    by_id: Mutex<BTreeMap<u64, Arc<Mutex<Connection>>>>,
}

impl Connections {
    pub fn insert(&self, connection: Connection) -> (u64, Arc<Mutex<Connection>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Mutex::new(connection));
        self.lock().insert(id, Arc::clone(&shared));
        (id, shared)
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every connection, oldest first.
    pub fn all(&self) -> Vec<Arc<Mutex<Connection>>> {
        self.lock().values().cloned().collect()
    }

    /// The proxy of every connection, oldest first.
    pub fn proxies(&self) -> Vec<Proxy> {
        self.all().iter().map(|c| lock(c).proxy.clone()).collect()
    }

    /// The newest connection of a proxy, by node id or `<pod>.<namespace>`.
    pub fn find(&self, proxy_id: &str) -> Option<Arc<Mutex<Connection>>> {
        self.all().into_iter().rev().find(|c| {
            let c = lock(c);
            let id = &c.proxy.id;
            c.node_id == proxy_id || format!("{}.{}", id.pod, id.namespace) == proxy_id
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Mutex<Connection>>>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Locks a connection; a panic elsewhere does not make its state unreadable.
pub fn lock(connection: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::google::rpc::Status;

    use super::*;
    use crate::translate::Resources;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

    use crate::xds::resources::Part;

    const NODE: &str = "sidecar~10.0.0.1~app-1.default~default.svc.cluster.local";

    fn resources(clusters: &[&str], timeout: i64) -> Encoded {
        let resources = Resources {
            clusters: clusters
                .iter()
                .map(|name| Cluster {
                    name: (*name).into(),
                    connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                        seconds: timeout,
                        nanos: 0,
                    }),
                    ..Cluster::default()
                })
                .collect(),
            endpoints: clusters
                .iter()
                .map(|name| ClusterLoadAssignment {
                    cluster_name: (*name).into(),
                    ..ClusterLoadAssignment::default()
                })
                .collect(),
            ..Resources::default()
        };
        Encoded {
            shared: None,
            own: Arc::new(Part::new(resources, None)),
        }
    }

    fn connection(encoded: Encoded) -> Connection {
        let node = Node {
            id: NODE.into(),
            ..Node::default()
        };
        Connection::new(Proxy::from_node(&node).unwrap(), NODE.into(), encoded)
    }

    fn request(
        xds_type: XdsType,
        names: &[&str],
        answered: Option<&DiscoveryResponse>,
    ) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: xds_type.type_url().into(),
            resource_names: names.iter().map(|n| (*n).into()).collect(),
            version_info: answered.map(|r| r.version_info.clone()).unwrap_or_default(),
            response_nonce: answered.map(|r| r.nonce.clone()).unwrap_or_default(),
            ..DiscoveryRequest::default()
        }
    }

    fn update(conn: &mut Connection, encoded: Encoded, nonces: &Nonces) -> Vec<DiscoveryResponse> {
        conn.update(encoded, nonces)
            .iter()
            .map(Response::decode)
            .collect()
    }

    #[test]
    fn ack_nack_and_stale_nonces() {
        let nonces = Nonces::default();
        let mut conn = connection(resources(&["a", "b"], 1));
        let first = conn
            .request(
                XdsType::Cluster,
                &request(XdsType::Cluster, &[], None),
                &nonces,
            )
            .response
            .unwrap()
            .decode();
        assert_eq!(first.resources.len(), 2);
        let ack = conn.request(
            XdsType::Cluster,
            &request(XdsType::Cluster, &[], Some(&first)),
            &nonces,
        );
        assert!(ack.response.is_none() && ack.nack.is_none());
        let watch = &conn.watches[&XdsType::Cluster];
        assert_eq!(watch.acked.as_ref().unwrap().0, first.version_info);

        let second = update(&mut conn, resources(&["a", "b"], 2), &nonces);
        assert_eq!(second.len(), 1);
        let mut nack = request(XdsType::Cluster, &[], Some(&first));
        nack.response_nonce = second[0].nonce.clone();
        nack.error_detail = Some(Status {
            message: "bad cluster a".into(),
            ..Status::default()
        });
        assert_eq!(
            conn.request(XdsType::Cluster, &nack, &nonces)
                .nack
                .as_deref(),
            Some("bad cluster a")
        );
        assert_eq!(
            conn.watches[&XdsType::Cluster]
                .nack
                .as_ref()
                .unwrap()
                .message,
            "bad cluster a"
        );
        // The ACK of an older response is stale and changes nothing.
        let stale = conn.request(
            XdsType::Cluster,
            &request(XdsType::Cluster, &[], Some(&first)),
            &nonces,
        );
        assert!(stale.response.is_none());
        assert!(conn.watches[&XdsType::Cluster].nack.is_some());
        // A fix arrives and is ACKed: the NACK is forgotten.
        let third = update(&mut conn, resources(&["a", "b"], 3), &nonces);
        conn.request(
            XdsType::Cluster,
            &request(XdsType::Cluster, &[], Some(&third[0])),
            &nonces,
        );
        let watch = &conn.watches[&XdsType::Cluster];
        assert!(watch.nack.is_none());
        assert_eq!(watch.acked.as_ref().unwrap().0, third[0].version_info);
    }

    #[test]
    fn updates_push_only_changed_types_and_names_answer_at_once() {
        let nonces = Nonces::default();
        let mut conn = connection(resources(&["a", "b"], 1));
        let cds = conn
            .request(
                XdsType::Cluster,
                &request(XdsType::Cluster, &[], None),
                &nonces,
            )
            .response
            .unwrap()
            .decode();
        let eds = conn
            .request(
                XdsType::Endpoint,
                &request(XdsType::Endpoint, &["a"], None),
                &nonces,
            )
            .response
            .unwrap()
            .decode();
        assert_eq!(eds.resources.len(), 1);
        // A new name is answered even with an ACK.
        let more = conn
            .request(
                XdsType::Endpoint,
                &request(XdsType::Endpoint, &["a", "b"], Some(&eds)),
                &nonces,
            )
            .response
            .unwrap()
            .decode();
        assert_eq!(more.resources.len(), 2);
        assert_ne!(more.nonce, eds.nonce);
        // Same endpoints, new cluster timeouts: only CDS goes out.
        let pushed = update(&mut conn, resources(&["a", "b"], 5), &nonces);
        assert_eq!(pushed.len(), 1);
        assert_eq!(pushed[0].type_url, XdsType::Cluster.type_url());
        assert_ne!(pushed[0].version_info, cds.version_info);
        // Nothing changed: nothing goes out.
        assert!(update(&mut conn, resources(&["a", "b"], 5), &nonces).is_empty());
        // A new cluster: CDS first, then EDS only if its names changed; here
        // the subscription is unchanged (a, b) so only CDS.
        let pushed = update(&mut conn, resources(&["a", "b", "c"], 5), &nonces);
        assert_eq!(
            pushed
                .iter()
                .map(|r| r.type_url.as_str())
                .collect::<Vec<_>>(),
            vec![XdsType::Cluster.type_url()]
        );
        // A removed cluster changes both, in Envoy's order.
        let pushed = update(&mut conn, resources(&["b", "c"], 5), &nonces);
        assert_eq!(
            pushed
                .iter()
                .map(|r| r.type_url.as_str())
                .collect::<Vec<_>>(),
            vec![XdsType::Cluster.type_url(), XdsType::Endpoint.type_url()]
        );
    }
}
