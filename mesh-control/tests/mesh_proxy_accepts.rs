//! What translate emits is inside what mesh-proxy runs: the resources of a
//! productpage sidecar, for the Bookinfo registry and each walkthrough
//! config, made into a static bootstrap (each EDS cluster's assignment
//! inlined as a STATIC `load_assignment`, each RDS reference replaced by
//! its route configuration, the SDS certificates given as static secrets)
//! compile with `Config::from_bootstrap`. The ingress gateway's resources
//! are compiled as they arrive over xDS, with `Config::from_resources`.

mod common;

use std::collections::BTreeMap;

use common::{Source, ingress_gateway, productpage, read, snapshot, testdata};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use mesh_api::envoy::{Descriptors, from_json, to_json};
use mesh_control::translate::{Resources, translate};
use mesh_proxy::config::Config;
use serde_json::{Value, json};

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// Clusters mesh-proxy cannot build yet (ORIGINAL_DST), by name. They stay
/// in the bootstrap as STATIC clusters without endpoints so that the
/// listeners naming them still compile; every other cluster goes in as
/// translate wrote it.
const ORIGINAL_DST_CLUSTERS: [&str; 2] = ["PassthroughCluster", "InboundPassthroughCluster"];

fn statics(resources: &Resources) -> Value {
    let assignments: Vec<Value> = resources
        .endpoints
        .iter()
        .map(|e| to_json(e).unwrap())
        .collect();
    let routes: Vec<Value> = resources
        .routes
        .iter()
        .map(|r| to_json(r).unwrap())
        .collect();
    let clusters: Vec<Value> = resources
        .clusters
        .iter()
        .map(|c| {
            let mut cluster = to_json(c).unwrap();
            if cluster["type"] == "EDS" {
                let assignment = assignments
                    .iter()
                    .find(|a| a["cluster_name"] == cluster["name"])
                    .unwrap_or_else(|| panic!("no assignment for {}", cluster["name"]));
                let object = cluster.as_object_mut().unwrap();
                object.remove("eds_cluster_config");
                object.insert("type".into(), json!("STATIC"));
                object.insert("load_assignment".into(), assignment.clone());
            }
            if ORIGINAL_DST_CLUSTERS.contains(&cluster["name"].as_str().unwrap()) {
                assert_eq!(cluster["type"], "ORIGINAL_DST");
                cluster = json!({"name": cluster["name"], "type": "STATIC"});
            }
            cluster
        })
        .collect();
    let listeners: Vec<Value> = resources
        .listeners
        .iter()
        .map(|l| {
            let mut listener = to_json(l).unwrap();
            for chain in listener["filter_chains"].as_array_mut().unwrap() {
                for filter in chain["filters"].as_array_mut().unwrap() {
                    let config = &mut filter["typed_config"];
                    if config["@type"] != HCM || config.get("rds").is_none() {
                        continue;
                    }
                    let name = config["rds"]["route_config_name"].clone();
                    let route = routes.iter().find(|r| r["name"] == name).unwrap();
                    let object = config.as_object_mut().unwrap();
                    object.remove("rds");
                    object.insert("route_config".into(), route.clone());
                }
            }
            listener
        })
        .collect();
    json!({"listeners": listeners, "clusters": clusters})
}

/// The workload certificate and trust bundle SDS would deliver.
fn secrets() -> Value {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names.push(rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from(
            "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
        )
        .unwrap(),
    ));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    json!([
        {"name": "default", "tls_certificate": {
            "certificate_chain": {"inline_string": cert.pem()},
            "private_key": {"inline_string": key.serialize_pem()}}},
        {"name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": ca.pem()}}}
    ])
}

fn accepts(resources: &Resources, secrets: &Value, scenario: &str) {
    let mut statics = statics(resources);
    statics["secrets"] = secrets.clone();
    let bootstrap: Bootstrap = from_json(&json!({
        "node": {"id": "sidecar~127.0.0.10~productpage-v1-6b9f.default~default.svc.cluster.local"},
        "static_resources": statics,
    }))
    .unwrap_or_else(|err| panic!("{scenario}: not a bootstrap: {err}"));
    let config = Config::from_bootstrap(&bootstrap)
        .unwrap_or_else(|err| panic!("{scenario}: mesh-proxy refuses it: {err}"));
    assert_eq!(
        config.listeners.len(),
        resources.listeners.len(),
        "{scenario}"
    );
    assert_eq!(
        config.clusters.len(),
        resources.clusters.len(),
        "{scenario}"
    );
}

#[test]
fn mesh_proxy_runs_the_bookinfo_sidecar_config() {
    let _descriptors = Descriptors::get();
    let secrets = secrets();
    let proxy = productpage();
    accepts(
        &translate(&proxy, &snapshot(Vec::new())),
        &secrets,
        "no config",
    );
    let dir = testdata();
    let rules = read(Source::File(&dir.join("destination-rule-all-mtls.yaml")));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && !n.starts_with("platform-"))
        .collect();
    files.sort();
    for file in files {
        let mut config = read(Source::File(&dir.join(&file)));
        if !file.starts_with("destination-rule") {
            config.extend(rules.iter().cloned());
        }
        accepts(&translate(&proxy, &snapshot(config)), &secrets, &file);
    }
}

fn by_name<T: Clone>(items: &[T], name: impl Fn(&T) -> &str) -> BTreeMap<String, T> {
    items
        .iter()
        .map(|item| (name(item).to_owned(), item.clone()))
        .collect()
}

/// The resources as mesh-proxy's xDS client holds them, by name, with
/// the mesh certificates SDS would deliver.
fn received(resources: &Resources, secrets: &Value) -> mesh_proxy::config::Resources {
    let mut all: Vec<Secret> = secrets
        .as_array()
        .unwrap()
        .iter()
        .map(|s| from_json(s).unwrap())
        .collect();
    all.extend(resources.secrets.iter().cloned());
    mesh_proxy::config::Resources {
        listeners: by_name(&resources.listeners, |l| &l.name),
        routes: by_name(&resources.routes, |r| &r.name),
        clusters: by_name(&resources.clusters, |c| &c.name),
        endpoints: by_name(&resources.endpoints, |e| &e.cluster_name),
        secrets: by_name(&all, |s| &s.name),
    }
}

#[test]
fn mesh_proxy_runs_the_bookinfo_ingress_gateway_config() {
    let _descriptors = Descriptors::get();
    let config = read(Source::File(&testdata().join("bookinfo-gateway.yaml")));
    let resources = translate(&ingress_gateway(), &snapshot(config));
    let bootstrap: Bootstrap = from_json(&json!({
        "node": {"id": ingress_gateway().id.to_string()},
    }))
    .unwrap();
    let compiled = Config::from_resources(&bootstrap, &received(&resources, &secrets()));
    assert!(
        compiled.references.missing.is_empty(),
        "{:?}",
        compiled.references.missing
    );
    let config = compiled
        .config
        .unwrap_or_else(|err| panic!("mesh-proxy refuses the gateway's config: {err}"));
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.clusters.len(), resources.clusters.len());
    assert!(
        compiled.references.routes.contains("http.8080"),
        "{:?}",
        compiled.references.routes
    );
}
