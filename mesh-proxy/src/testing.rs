//! Building configs from Envoy JSON in unit tests.

use serde_json::{Value, json};

use crate::config::{Config, ConfigError, HttpAccess, ListenerKind};

/// A bootstrap with one HTTP listener serving `virtual_hosts`, and a static
/// cluster for each name in `clusters`.
pub fn http_bootstrap(virtual_hosts: Value, clusters: &[&str]) -> Value {
    json!({
        "static_resources": {
            "listeners": [{
                "name": "http",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "http",
                        "route_config": {"name": "local", "virtual_hosts": virtual_hosts},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
                    }
                }]}]
            }],
            "clusters": clusters.iter().map(|name| json!({
                "name": name,
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}}}}
                ]}]}
            })).collect::<Vec<_>>()
        }
    })
}

/// What one HTTP filter before the router compiles to (`jwt_authn`, RBAC
/// or `ext_authz`): `name`, and `config` as its typed config of `type_url`,
/// on a listener routing to cluster `a`; `clusters` are defined too.
pub fn access_filter(name: &str, type_url: &str, config: Value, clusters: &[&str]) -> HttpAccess {
    let mut typed = json!({"@type": type_url});
    typed
        .as_object_mut()
        .expect("@type is an object field")
        .extend(config.as_object().expect("a typed config object").clone());
    let mut bootstrap = http_bootstrap(
        json!([{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "a"}}]}]),
        &[&["a"], clusters].concat(),
    );
    let filters = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
        [0]["typed_config"]["http_filters"];
    let router = filters[0].take();
    *filters = json!([{"name": name, "typed_config": typed}, router]);
    let mut config = compile(&bootstrap).expect("the filter compiles");
    let ListenerKind::Http(manager) = &mut config.listeners[0].chains[0].kind else {
        panic!("an HTTP listener");
    };
    let manager = std::sync::Arc::get_mut(manager).expect("not shared yet");
    manager.access.pop().expect("an access filter")
}

pub fn compile(bootstrap: &Value) -> Result<Config, ConfigError> {
    let parsed = mesh_api::envoy::from_json(bootstrap).expect("valid Envoy JSON");
    Config::from_bootstrap(&parsed)
}

/// An EDS cluster over ADS whose endpoints are published as `service`.
pub fn eds_cluster(name: &str, service: &str) -> Value {
    json!({"name": name, "type": "EDS", "eds_cluster_config": {
        "service_name": service, "eds_config": {"ads": {}, "resource_api_version": "V3"}}})
}

/// A `ClusterLoadAssignment` of endpoints on 127.0.0.1.
pub fn assignment(name: &str, ports: &[u16]) -> Value {
    json!({"cluster_name": name, "endpoints": [{"lb_endpoints": ports.iter().map(|port| json!(
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
    )).collect::<Vec<_>>()}]})
}

/// A listener on 127.0.0.1 whose HTTP routes come over RDS as `routes`.
pub fn rds_listener(name: &str, routes: &str) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "rds": {"route_config_name": routes, "config_source": {"ads": {}}},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

/// A route configuration sending everything to `cluster`.
pub fn route_config(name: &str, cluster: &str) -> Value {
    json!({"name": name, "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]})
}

/// Envoy JSON as the message `M`.
pub fn proto<M: prost::Message + Default + prost::Name>(value: &Value) -> M {
    mesh_api::envoy::from_json(value).expect("valid Envoy JSON")
}

/// Compiles a bootstrap whose one cluster, `a`, also has `fields`.
pub fn compile_with_cluster(fields: Value) -> Result<Config, ConfigError> {
    let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}});
    let mut bootstrap = http_bootstrap(
        json!([{"name": "all", "domains": ["*"], "routes": [route]}]),
        &["a"],
    );
    let cluster = &mut bootstrap["static_resources"]["clusters"][0];
    for (key, value) in fields.as_object().expect("an object of cluster fields") {
        cluster[key] = value.clone();
    }
    compile(&bootstrap)
}

/// What the certificate provider offers once it has a certificate: a
/// self-signed one for `spiffe://cluster.local/ns/default/sa/default`,
/// trusted as the root too.
pub fn provided_secrets() -> crate::identity::Provided {
    use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, secret,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://cluster.local/ns/default/sa/default"
            .try_into()
            .unwrap(),
    )];
    let cert = params.self_signed(&key).unwrap();
    let certified = rustls::sign::CertifiedKey::from_der(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        &rustls::crypto::ring::default_provider(),
    )
    .unwrap();
    let root = secret::Type::ValidationContext(CertificateValidationContext {
        trusted_ca: Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString(cert.pem())),
            ..DataSource::default()
        }),
        ..CertificateValidationContext::default()
    });
    crate::identity::Provided::Ready(std::sync::Arc::new(crate::identity::MeshSecrets {
        identity: std::sync::Arc::new(crate::tls::RotatingIdentity::new(std::sync::Arc::new(
            certified,
        ))),
        root,
    }))
}
