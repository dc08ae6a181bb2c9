//! `/config_dump` in Envoy's `ConfigDump` shape: the bootstrap, then the
//! dynamic clusters, listeners, route configurations and secrets with the
//! version and time of the response that brought them (endpoints too, with
//! `?include_eds`, as Envoy does). Private keys are never shown.

use std::time::SystemTime;

use envoy_types::pb::envoy::admin::v3::{
    BootstrapConfigDump, ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump,
    RoutesConfigDump, SecretsConfigDump, clusters_config_dump, endpoints_config_dump,
    listeners_config_dump, routes_config_dump, secrets_config_dump,
};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use prost::{Message, Name};

use super::protocol::{Kind, Protocol, TypeState};
use crate::config::Resources;

/// The accepted resources and where each type stands, as of the last response.
#[derive(Debug, Default)]
pub struct Snapshot {
    resources: Resources,
    types: Vec<(Kind, TypeState)>,
}

impl Snapshot {
    pub fn of(protocol: &Protocol) -> Snapshot {
        Snapshot {
            resources: protocol.accepted().clone(),
            types: Kind::ALL
                .into_iter()
                .map(|kind| (kind, protocol.type_state(kind).clone()))
                .collect(),
        }
    }

    fn state(&self, kind: Kind) -> (String, Option<Timestamp>) {
        self.types
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, state)| (state.version.clone(), state.last_updated.map(timestamp)))
            .unwrap_or_default()
    }
}

/// The dump as JSON; `snapshot` is `None` without a control plane.
pub fn render(
    bootstrap: &Bootstrap,
    snapshot: Option<&Snapshot>,
    include_eds: bool,
) -> Result<serde_json::Value, String> {
    let mut bootstrap = bootstrap.clone();
    if let Some(statics) = &mut bootstrap.static_resources {
        statics.secrets.iter_mut().for_each(redact);
    }
    let mut configs = vec![pack(&BootstrapConfigDump {
        bootstrap: Some(bootstrap),
        last_updated: None,
    })];
    if let Some(snapshot) = snapshot {
        configs.extend(dynamic(snapshot, include_eds));
    }
    mesh_api::envoy::to_json(&ConfigDump { configs }).map_err(|err| err.to_string())
}

fn dynamic(snapshot: &Snapshot, include_eds: bool) -> Vec<Any> {
    let resources = &snapshot.resources;
    let (version_info, last_updated) = snapshot.state(Kind::Cluster);
    let clusters = ClustersConfigDump {
        version_info: version_info.clone(),
        dynamic_active_clusters: resources
            .clusters
            .values()
            .map(|cluster| clusters_config_dump::DynamicCluster {
                version_info: version_info.clone(),
                cluster: Some(pack(cluster)),
                last_updated,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let (version_info, last_updated) = snapshot.state(Kind::Listener);
    let listeners = ListenersConfigDump {
        version_info: version_info.clone(),
        dynamic_listeners: resources
            .listeners
            .iter()
            .map(|(name, listener)| listeners_config_dump::DynamicListener {
                name: name.clone(),
                active_state: Some(listeners_config_dump::DynamicListenerState {
                    version_info: version_info.clone(),
                    listener: Some(pack(listener)),
                    last_updated,
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let (version_info, last_updated) = snapshot.state(Kind::Route);
    let routes = RoutesConfigDump {
        dynamic_route_configs: resources
            .routes
            .values()
            .map(|route| routes_config_dump::DynamicRouteConfig {
                version_info: version_info.clone(),
                route_config: Some(pack(route)),
                last_updated,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let (version_info, last_updated) = snapshot.state(Kind::Secret);
    let secrets = SecretsConfigDump {
        dynamic_active_secrets: resources
            .secrets
            .iter()
            .map(|(name, secret)| {
                let mut secret = secret.clone();
                redact(&mut secret);
                secrets_config_dump::DynamicSecret {
                    name: name.clone(),
                    version_info: version_info.clone(),
                    last_updated,
                    secret: Some(pack(&secret)),
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    };
    let mut configs = vec![pack(&clusters), pack(&listeners)];
    if include_eds {
        let (version_info, last_updated) = snapshot.state(Kind::Endpoint);
        configs.push(pack(&EndpointsConfigDump {
            dynamic_endpoint_configs: resources
                .endpoints
                .values()
                .map(|assignment| endpoints_config_dump::DynamicEndpointConfig {
                    version_info: version_info.clone(),
                    endpoint_config: Some(pack(assignment)),
                    last_updated,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }));
    }
    configs.extend([pack(&routes), pack(&secrets)]);
    configs
}

/// Replaces a certificate's private key, as Envoy's dump does.
fn redact(secret: &mut Secret) {
    if let Some(secret::Type::TlsCertificate(cert)) = &mut secret.r#type
        && cert.private_key.is_some()
    {
        cert.private_key = Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString("[redacted]".into())),
            ..Default::default()
        });
    }
}

fn pack<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn timestamp(time: SystemTime) -> Timestamp {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}
