//! What the debug pages show of the connected proxies: their sync status
//! (`/debug/syncz`, shaped like istiod's) and the resources last sent to one
//! proxy as Envoy's admin `ConfigDump`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::admin::v3::{
    ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump, RoutesConfigDump,
    SecretsConfigDump, clusters_config_dump, endpoints_config_dump, listeners_config_dump,
    routes_config_dump, secrets_config_dump,
};
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use mesh_api::names::ProxyKind;
use prost::{Message, Name};
use serde::{Deserialize, Serialize};

use super::XdsType;
use super::connection::{Connection, Connections, Sent, lock};

/// One proxy's sync status. The fields are istiod's `SyncStatus` (the
/// `*_sent`/`*_acked` fields hold nonces, as istiod's), plus the namespace,
/// and per type URL in `resources` the versions, subscribed names and NACK.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    #[serde(default)]
    pub cluster_id: String,
    pub proxy: String,
    #[serde(default)]
    pub proxy_type: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub istio_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_sent: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_acked: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listener_sent: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listener_acked: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub route_sent: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub route_acked: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint_sent: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint_acked: String,
    /// By type URL, for the types the proxy subscribed to.
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceStatus>,
}

/// The state of one type for one proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceStatus {
    /// The nonce last sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sent: String,
    /// The nonce last ACKed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub acked: String,
    #[serde(default, rename = "sentTime", skip_serializing_if = "String::is_empty")]
    pub sent_time: String,
    /// The reason of the proxy's last NACK, until it ACKs again.
    #[serde(
        default,
        rename = "lastError",
        skip_serializing_if = "String::is_empty"
    )]
    pub last_error: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version_sent: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version_acked: String,
    /// Subscribed resource names; `*` for all.
    #[serde(default)]
    pub names: Vec<String>,
    /// How many resources the last response carried.
    #[serde(default)]
    pub resource_count: usize,
}

/// The status of every connected proxy, sorted by proxy id.
pub fn syncz(connections: &Connections) -> Vec<SyncStatus> {
    let mut all: Vec<SyncStatus> = connections
        .all()
        .iter()
        .map(|c| sync_status(&lock(c)))
        .collect();
    all.sort_by(|a, b| a.proxy.cmp(&b.proxy));
    all
}

fn sync_status(connection: &Connection) -> SyncStatus {
    let mut status = SyncStatus {
        cluster_id: connection.cluster_id.clone(),
        proxy: connection.node_id.clone(),
        proxy_type: match connection.proxy.kind {
            ProxyKind::Sidecar => "sidecar",
            ProxyKind::Router => "router",
            ProxyKind::Waypoint => "waypoint",
        }
        .into(),
        namespace: connection.proxy.namespace.clone(),
        istio_version: connection
            .proxy
            .metadata
            .get("ISTIO_VERSION")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .into(),
        ..SyncStatus::default()
    };
    for (xds_type, watch) in &connection.watches {
        let (acked_version, acked_nonce) = watch.acked.clone().unwrap_or_default();
        let resource = ResourceStatus {
            sent: watch
                .sent
                .as_ref()
                .map(|s| s.nonce.clone())
                .unwrap_or_default(),
            acked: acked_nonce,
            sent_time: watch
                .sent
                .as_ref()
                .map(|s| mesh_api::time::rfc3339_millis(s.at))
                .unwrap_or_default(),
            last_error: watch
                .nack
                .as_ref()
                .map(|n| n.message.clone())
                .unwrap_or_default(),
            version_sent: watch
                .sent
                .as_ref()
                .map(|s| s.version.clone())
                .unwrap_or_default(),
            version_acked: acked_version,
            names: watch.subscription.names(),
            resource_count: watch.sent.as_ref().map_or(0, |s| s.resources.len()),
        };
        let (sent, acked) = match xds_type {
            XdsType::Cluster => (&mut status.cluster_sent, &mut status.cluster_acked),
            XdsType::Listener => (&mut status.listener_sent, &mut status.listener_acked),
            XdsType::Route => (&mut status.route_sent, &mut status.route_acked),
            XdsType::Endpoint => (&mut status.endpoint_sent, &mut status.endpoint_acked),
            XdsType::Secret => (&mut String::new(), &mut String::new()),
        };
        sent.clone_from(&resource.sent);
        acked.clone_from(&resource.acked);
        status
            .resources
            .insert(xds_type.type_url().to_owned(), resource);
    }
    status
}

/// The resources last sent to a proxy (node id or `<pod>.<namespace>`), as
/// Envoy's admin `ConfigDump`; private keys are redacted, as Envoy does.
pub fn config_dump(connections: &Connections, proxy_id: &str) -> Option<ConfigDump> {
    let connection = connections.find(proxy_id)?;
    let connection = lock(&connection);
    let sent = |t: XdsType| connection.watches.get(&t).and_then(|w| w.sent.clone());
    let entries = |t: XdsType| -> Vec<(String, Any, String, Timestamp)> {
        sent(t)
            .map(|s| {
                s.resources
                    .anys()
                    .into_iter()
                    .map(|(name, any)| (name.to_owned(), any, s.version.clone(), timestamp(s.at)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let version = |t: XdsType| sent(t).map(|s: Sent| s.version).unwrap_or_default();

    let clusters = ClustersConfigDump {
        version_info: version(XdsType::Cluster),
        dynamic_active_clusters: entries(XdsType::Cluster)
            .into_iter()
            .map(
                |(_, any, version_info, at)| clusters_config_dump::DynamicCluster {
                    version_info,
                    cluster: Some(any),
                    last_updated: Some(at),
                    ..Default::default()
                },
            )
            .collect(),
        ..Default::default()
    };
    let endpoints = EndpointsConfigDump {
        dynamic_endpoint_configs: entries(XdsType::Endpoint)
            .into_iter()
            .map(
                |(_, any, version_info, at)| endpoints_config_dump::DynamicEndpointConfig {
                    version_info,
                    endpoint_config: Some(any),
                    last_updated: Some(at),
                    ..Default::default()
                },
            )
            .collect(),
        ..Default::default()
    };
    let listeners = ListenersConfigDump {
        version_info: version(XdsType::Listener),
        dynamic_listeners: entries(XdsType::Listener)
            .into_iter()
            .map(
                |(name, any, version_info, at)| listeners_config_dump::DynamicListener {
                    name,
                    active_state: Some(listeners_config_dump::DynamicListenerState {
                        version_info,
                        listener: Some(any),
                        last_updated: Some(at),
                    }),
                    ..Default::default()
                },
            )
            .collect(),
        ..Default::default()
    };
    let routes = RoutesConfigDump {
        dynamic_route_configs: entries(XdsType::Route)
            .into_iter()
            .map(
                |(_, any, version_info, at)| routes_config_dump::DynamicRouteConfig {
                    version_info,
                    route_config: Some(any),
                    last_updated: Some(at),
                    ..Default::default()
                },
            )
            .collect(),
        ..Default::default()
    };
    let secrets = SecretsConfigDump {
        dynamic_active_secrets: entries(XdsType::Secret)
            .into_iter()
            .map(
                |(name, any, version_info, at)| secrets_config_dump::DynamicSecret {
                    name,
                    version_info,
                    last_updated: Some(at),
                    secret: Some(redacted(any)),
                    ..Default::default()
                },
            )
            .collect(),
        ..Default::default()
    };
    Some(ConfigDump {
        configs: vec![
            pack(&clusters),
            pack(&endpoints),
            pack(&listeners),
            pack(&routes),
            pack(&secrets),
        ],
    })
}

fn pack<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// A secret with its private key replaced by `[redacted]`.
fn redacted(any: Any) -> Any {
    let Ok(mut secret) = Secret::decode(any.value.as_slice()) else {
        return any;
    };
    if let Some(secret::Type::TlsCertificate(certificate)) = &mut secret.r#type
        && certificate.private_key.is_some()
    {
        certificate.private_key = Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString("[redacted]".into())),
            ..Default::default()
        });
    }
    pack(&secret)
}

fn timestamp(time: SystemTime) -> Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate;

    use super::*;

    #[test]
    fn dates_and_redaction() {
        let time = UNIX_EPOCH + std::time::Duration::from_millis(1_763_941_501_123);
        assert_eq!(
            mesh_api::time::rfc3339_millis(time),
            "2025-11-23T23:45:01.123Z"
        );
        let inline = |s: &str| DataSource {
            specifier: Some(data_source::Specifier::InlineString(s.into())),
            ..Default::default()
        };
        let secret = Secret {
            name: "default".into(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(inline("CERT")),
                private_key: Some(inline("KEY")),
                ..Default::default()
            })),
        };
        let shown = Secret::decode(redacted(pack(&secret)).value.as_slice()).unwrap();
        let Some(secret::Type::TlsCertificate(certificate)) = shown.r#type else {
            panic!("still a certificate");
        };
        assert_eq!(certificate.certificate_chain, Some(inline("CERT")));
        assert_eq!(certificate.private_key, Some(inline("[redacted]")));
    }
}
