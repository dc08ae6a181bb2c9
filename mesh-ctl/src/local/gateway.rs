//! The local mesh's ingress gateway: a router proxy labelled as Istio's
//! `istio-ingressgateway`, so that Gateways selecting
//! `istio: ingressgateway` bind to it, and its own ServiceEntry, which maps
//! the Gateway ports users write (80 and 8080 for HTTP, 443 for HTTPS) to
//! the ports it binds on this host, as the Kubernetes Service in front of
//! Istio's gateway maps them to its container's ports.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::proxy::ProxyNode;

const NAME: &str = "istio-ingressgateway";
const NAMESPACE: &str = "istio-system";

/// Where the gateway takes traffic.
#[derive(Debug, Clone, Copy)]
pub struct Gateway {
    pub address: IpAddr,
    pub http_port: u16,
    pub https_port: u16,
}

impl Gateway {
    fn labels() -> BTreeMap<String, String> {
        [("app", NAME), ("istio", "ingressgateway")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    pub fn node(&self) -> ProxyNode {
        ProxyNode {
            kind: "router",
            name: NAME.to_owned(),
            namespace: NAMESPACE.to_owned(),
            ip: self.address,
            labels: Gateway::labels(),
            service_account: format!("{NAME}-service-account"),
        }
    }

    /// The gateway's ServiceEntry and WorkloadEntry.
    pub fn config(&self) -> Vec<Value> {
        let metadata = json!({"name": NAME, "namespace": NAMESPACE});
        vec![
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": metadata,
                "spec": {
                    "hosts": [format!("{NAME}.{NAMESPACE}.svc.cluster.local")],
                    "location": "MESH_INTERNAL",
                    "resolution": "STATIC",
                    "ports": [
                        {"number": 80, "name": "http2", "protocol": "HTTP", "targetPort": self.http_port},
                        {"number": 8080, "name": "http", "protocol": "HTTP", "targetPort": self.http_port},
                        {"number": 443, "name": "https", "protocol": "HTTPS", "targetPort": self.https_port},
                    ],
                    "workloadSelector": {"labels": Gateway::labels()},
                },
            }),
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "WorkloadEntry",
                "metadata": metadata,
                "spec": {
                    "address": self.address.to_string(),
                    "labels": Gateway::labels(),
                    "serviceAccount": format!("{NAME}-service-account"),
                },
            }),
        ]
    }
}
