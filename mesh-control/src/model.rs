//! What the control plane knows, in the shape translation needs: services
//! with their ports and endpoints, the proxies asking for config, mesh-wide
//! settings, and the Istio config that applies. A [`MeshSnapshot`] is
//! immutable; a change builds a new one.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use mesh_api::load::Resource;
use mesh_api::names::{DEFAULT_TRUST_DOMAIN, NodeId, ProxyKind, SYSTEM_NAMESPACE};
use mesh_api::networking::gateway::Protocol;
use mesh_api::networking::service_entry::{Location, Resolution};

/// A service: a host name with ports, reached through its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The FQDN, e.g. `reviews.default.svc.cluster.local` or `api.example.com`.
    pub hostname: String,
    /// The namespace of the config (ServiceEntry) that declares the service.
    pub namespace: String,
    /// Virtual IPs clients use; empty when none was assigned.
    pub addresses: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    pub location: Location,
    /// Namespaces that see the service (`*` all, `.` its own, `~` none).
    pub export_to: Vec<String>,
    /// SPIFFE ids the service's servers present (ServiceEntry
    /// `subjectAltNames`, and the service accounts of its endpoints).
    pub subject_alt_names: Vec<String>,
    /// Endpoints given by host name (a DNS ServiceEntry's), which the proxy
    /// looks up itself; never in the registry's endpoints, which are IPs.
    pub named_endpoints: Vec<NamedEndpoint>,
}

/// An endpoint of a DNS ServiceEntry given by host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedEndpoint {
    pub host: String,
    /// Port numbers by service port name, every service port filled in.
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    /// The workload's namespace, for its PeerAuthentication.
    pub namespace: String,
    /// `region/zone/subzone`, possibly partial.
    pub locality: String,
    pub weight: u32,
    /// The workload runs a sidecar and speaks mesh mTLS (`tlsMode: istio`).
    pub mesh_tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub number: u16,
    /// `None` when the protocol is left to detection.
    pub protocol: Option<Protocol>,
    /// Where endpoints receive the port's traffic unless they say otherwise.
    pub target_port: Option<u16>,
}

/// One endpoint of a service: a workload (WorkloadEntry, inline ServiceEntry
/// endpoint, later a pod) at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The service's hostname and namespace (the ServiceEntry's).
    pub service: String,
    pub service_namespace: String,
    pub address: IpAddr,
    /// Port numbers by service port name; a missing name uses the service
    /// port's target port, or its number.
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    /// The workload's namespace and service account, for its SPIFFE id.
    pub namespace: String,
    pub service_account: String,
    /// `region/zone/subzone`, possibly partial.
    pub locality: String,
    pub network: String,
    pub weight: u32,
    /// The endpoint runs a sidecar and speaks mesh mTLS (`tlsMode: istio`).
    pub mesh_tls: bool,
}

/// A proxy asking for config: what its node id and metadata say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub id: NodeId,
    pub kind: ProxyKind,
    pub namespace: String,
    pub ip: IpAddr,
    /// `LABELS` from the node metadata.
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub workload_name: String,
    /// `GENERATOR=grpc`: a proxyless gRPC client.
    pub grpc_generator: bool,
    /// The node's `region/zone/subzone`, for locality load balancing.
    pub locality: String,
    /// The raw node metadata, for what the fields above do not cover.
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// Mesh-wide settings (Istio's MeshConfig; see [`crate::mesh_config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MeshConfig {
    pub trust_domain: String,
    /// Where mesh-wide policies live.
    pub root_namespace: String,
    /// The DNS domain of services, `cluster.local`.
    pub domain: String,
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// Where proxies send trace spans; none by default.
    pub tracing: Option<TracingProvider>,
    /// The external authorizers of `extensionProviders`, by name, for
    /// AuthorizationPolicy's CUSTOM action.
    pub ext_authz: BTreeMap<String, ExtAuthzProvider>,
}

/// An `envoyExtAuthzHttp` or `envoyExtAuthzGrpc` extension provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtAuthzProvider {
    /// The authorizer's host name, or `namespace/hostname`.
    pub service: String,
    pub port: u16,
    /// How long an answer may take; istiod's default is 600s.
    pub timeout: Option<std::time::Duration>,
    /// Let requests through when the authorizer cannot be asked.
    pub fail_open: bool,
    /// The status of requests refused because the authorizer could not
    /// be asked; 403 when unset.
    pub status_on_error: Option<u16>,
    pub include_request_body: Option<RequestBodyInCheck>,
    pub kind: ExtAuthzKind,
}

/// `includeRequestBodyInCheck`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBodyInCheck {
    pub max_request_bytes: u32,
    pub allow_partial_message: bool,
    pub pack_as_bytes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtAuthzKind {
    /// Asked over `envoy.service.auth.v3.Authorization/Check`; also checks
    /// TCP connections.
    Grpc,
    /// Asked in plain HTTP; only HTTP requests.
    Http(HttpAuthorizer),
}

/// What an `envoyExtAuthzHttp` provider says beyond where it is. Header
/// lists hold names, `prefix*` or `*suffix`, matched ignoring case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpAuthorizer {
    pub path_prefix: String,
    pub include_request_headers: Vec<String>,
    /// Sorted by name.
    pub include_additional_headers: BTreeMap<String, String>,
    pub headers_to_upstream_on_allow: Vec<String>,
    pub headers_to_downstream_on_deny: Vec<String>,
    pub headers_to_downstream_on_allow: Vec<String>,
}

/// The tracing provider of `defaultProviders.tracing`: an OpenTelemetry
/// collector of `extensionProviders`, with `defaultConfig.tracing`.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingProvider {
    pub name: String,
    /// The collector's host name, or `namespace/hostname`.
    pub service: String,
    pub port: u16,
    /// Percentage of requests sampled, 0 to 100.
    pub sampling: f64,
    pub max_path_tag_length: Option<u32>,
    /// Sorted by tag.
    pub custom_tags: Vec<CustomTag>,
}

/// A tag `defaultConfig.tracing.custom_tags` adds to every span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTag {
    pub tag: String,
    pub value: TagValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    Literal(String),
    /// The proxy's environment variable `name`.
    Environment {
        name: String,
        default: String,
    },
    /// The request header `name`.
    Header {
        name: String,
        default: String,
    },
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            root_namespace: SYSTEM_NAMESPACE.into(),
            domain: "cluster.local".into(),
            outbound_traffic_policy: OutboundTrafficPolicy::AllowAny,
            tracing: None,
            ext_authz: BTreeMap::new(),
        }
    }
}

/// What happens to traffic for hosts the registry does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutboundTrafficPolicy {
    /// Passed through to its original destination.
    #[default]
    AllowAny,
    /// Refused (`BlackHoleCluster`, 502 for HTTP).
    RegistryOnly,
}

/// Everything translation reads, at one version.
#[derive(Debug, Clone, Default)]
pub struct MeshSnapshot {
    /// Changes whenever anything in the snapshot changes.
    pub version: u64,
    pub mesh: MeshConfig,
    /// Valid Istio config, in a stable order (kind, namespace, name).
    pub config: Vec<Arc<Resource>>,
    pub services: Vec<Arc<Service>>,
    pub endpoints: Vec<Arc<Endpoint>>,
    /// The key sets fetched for RequestAuthentication rules without inline
    /// `jwks`, fetched outside translation so that it stays pure.
    pub jwks: Arc<FetchedJwks>,
}

/// JWKS documents by the URL they were fetched from (see [`jwks_url`]);
/// a URL that is missing has not been fetched, or failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedJwks(pub BTreeMap<String, Arc<str>>);

/// Where the keys of a JWT rule without inline `jwks` come from: its
/// `jwksUri`, or else its issuer's OpenID Connect discovery document,
/// which names the key set. `None` for inline keys.
pub fn jwks_url(rule: &mesh_api::security::request_authentication::JwtRule) -> Option<String> {
    if !rule.jwks.is_empty() {
        return None;
    }
    if !rule.jwks_uri.is_empty() {
        return Some(rule.jwks_uri.clone());
    }
    let issuer = rule.issuer.trim_end_matches('/');
    Some(format!("{issuer}{OPENID_DISCOVERY}"))
}

/// The discovery document's path under an issuer.
pub const OPENID_DISCOVERY: &str = "/.well-known/openid-configuration";

impl Proxy {
    /// `IDLE_TIMEOUT` from the node metadata (`ISTIO_META_IDLE_TIMEOUT`):
    /// how long connections to this proxy's listeners may idle. A value
    /// that is not a duration counts as unset, as istiod ignores it.
    pub fn idle_timeout(&self) -> Option<std::time::Duration> {
        let text = self.metadata.get("IDLE_TIMEOUT")?.as_str()?;
        let parsed = text.parse::<mesh_api::duration::Duration>().ok()?;
        Some(parsed.as_std())
    }

    /// Reads a proxy's node: the id (`sidecar~10.1.2.3~pod.ns~ns.svc.cluster.local`)
    /// and Istio's metadata keys (`NAMESPACE`, `LABELS`, `SERVICE_ACCOUNT`,
    /// `WORKLOAD_NAME`, `GENERATOR`).
    pub fn from_node(
        node: &envoy_types::pb::envoy::config::core::v3::Node,
    ) -> Result<Proxy, mesh_api::names::NameError> {
        let id: NodeId = node.id.parse()?;
        let metadata: BTreeMap<String, serde_json::Value> = node
            .metadata
            .as_ref()
            .map(|m| {
                m.fields
                    .iter()
                    .map(|(k, v)| (k.clone(), json_value(v)))
                    .collect()
            })
            .unwrap_or_default();
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let labels = metadata
            .get("LABELS")
            .and_then(serde_json::Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let namespace = Some(text("NAMESPACE"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.namespace.clone());
        Ok(Proxy {
            kind: id.kind,
            ip: id.ip,
            namespace,
            labels,
            service_account: text("SERVICE_ACCOUNT"),
            workload_name: text("WORKLOAD_NAME"),
            grpc_generator: text("GENERATOR") == "grpc",
            locality: node.locality.as_ref().map_or_else(String::new, |l| {
                format!("{}/{}/{}", l.region, l.zone, l.sub_zone)
                    .trim_end_matches('/')
                    .to_owned()
            }),
            metadata,
            id,
        })
    }
}

/// A protobuf `Value` as JSON.
fn json_value(value: &envoy_types::pb::google::protobuf::Value) -> serde_json::Value {
    use envoy_types::pb::google::protobuf::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::json!(n),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        ),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(json_value).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

    use super::*;

    fn string(s: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }

    #[test]
    fn a_sidecar_node_reads_into_a_proxy() {
        let labels = Struct {
            fields: [
                ("app".to_owned(), string("reviews")),
                ("version".to_owned(), string("v2")),
            ]
            .into(),
        };
        let node = Node {
            id: "sidecar~10.1.2.3~reviews-v2-abc.default~default.svc.cluster.local".into(),
            metadata: Some(Struct {
                fields: [
                    ("NAMESPACE".to_owned(), string("default")),
                    ("SERVICE_ACCOUNT".to_owned(), string("bookinfo-reviews")),
                    ("WORKLOAD_NAME".to_owned(), string("reviews-v2")),
                    (
                        "LABELS".to_owned(),
                        Value {
                            kind: Some(Kind::StructValue(labels)),
                        },
                    ),
                ]
                .into(),
            }),
            ..Node::default()
        };
        let proxy = Proxy::from_node(&node).unwrap();
        assert_eq!(proxy.kind, ProxyKind::Sidecar);
        assert_eq!(proxy.ip.to_string(), "10.1.2.3");
        assert_eq!(proxy.namespace, "default");
        assert_eq!(proxy.labels["version"], "v2");
        assert_eq!(proxy.service_account, "bookinfo-reviews");
        assert!(!proxy.grpc_generator);
        assert!(Proxy::from_node(&Node::default()).is_err());
    }
}
