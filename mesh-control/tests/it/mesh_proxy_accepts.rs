//! What translate emits is inside what mesh-proxy runs: the resources of a
//! productpage sidecar, for the Bookinfo registry and each walkthrough
//! config, and of the ingress gateway compile with `Config::from_resources`
//! as mesh-proxy's xDS client receives them, with the certificates SDS
//! would deliver (and DNS clusters with their hosts looked up).

use crate::common;

use std::collections::BTreeMap;

use common::{Source, ingress_gateway, productpage, read, registry, snapshot, testdata};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use mesh_api::envoy::{Descriptors, from_json};
use mesh_control::translate::{Resources, translate};
use mesh_proxy::config::{Config, HttpAccess};
use mesh_proxy::dns::DnsTable;
use mesh_proxy::identity::Provided;
use serde_json::{Value, json};

/// The catch-all clusters of a capturing sidecar, ORIGINAL_DST both.
const ORIGINAL_DST_CLUSTERS: [&str; 2] = ["PassthroughCluster", "InboundPassthroughCluster"];

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
    let received = received(resources, secrets);
    let bootstrap: Bootstrap = from_json(&json!({
        "node": {"id": "sidecar~127.0.0.10~productpage-v1-6b9f.default~default.svc.cluster.local"},
    }))
    .unwrap();
    // DNS clusters' hosts answer with a documentation address, as a
    // resolver would once it has looked them up.
    let wanted = Config::from_resources(&bootstrap, &received)
        .references
        .hosts;
    let dns = DnsTable::with(
        wanted
            .into_keys()
            .map(|host| (host, vec!["192.0.2.1".parse().unwrap()])),
    );
    let compiled = Config::from_resources_with(&bootstrap, &received, &Provided::Off, &dns);
    assert!(
        compiled.references.missing.is_empty(),
        "{scenario}: {:?}",
        compiled.references.missing
    );
    let config = compiled
        .config
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
    for name in ORIGINAL_DST_CLUSTERS {
        assert!(
            config.clusters[name].original_dst.is_some(),
            "{scenario}: {name}"
        );
    }
    let inbound = &config.clusters["InboundPassthroughCluster"];
    assert_eq!(
        inbound.bind,
        Some("127.0.0.6:0".parse().unwrap()),
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

/// External services as Istio's egress tasks declare them: looked up by
/// DNS (STRICT_DNS), and one address per connection (LOGICAL_DNS).
const DNS_ENTRIES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin-ext, namespace: default}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  location: MESH_EXTERNAL
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-ext, namespace: default}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS_ROUND_ROBIN
  location: MESH_EXTERNAL
"#;

#[test]
fn mesh_proxy_runs_dns_service_entries() {
    let _descriptors = Descriptors::get();
    let mut snapshot = snapshot(Vec::new());
    let (services, endpoints) = registry(&read(Source::Text(DNS_ENTRIES)));
    snapshot.services.extend(services);
    snapshot.endpoints.extend(endpoints);
    let resources = translate(&productpage(), &snapshot);
    let kinds: Vec<_> = resources
        .clusters
        .iter()
        .filter_map(|c| match c.cluster_discovery_type {
            Some(ClusterDiscoveryType::Type(t))
                if t == DiscoveryType::StrictDns as i32
                    || t == DiscoveryType::LogicalDns as i32 =>
            {
                Some(c.name.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        ["outbound|5432||db.example.com", "outbound|80||httpbin.org"]
    );
    accepts(&resources, &secrets(), "DNS service entries");
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

/// The inbound HTTP manager of a sidecar's port 9080, as mesh-proxy
/// compiles what translate makes of `policies`.
fn inbound_http(
    proxy: &mesh_control::model::Proxy,
    policies: &str,
) -> std::sync::Arc<mesh_proxy::config::HttpManager> {
    inbound_http_of(proxy, &snapshot(read(Source::Text(policies))))
}

/// [`inbound_http`] for a snapshot.
fn inbound_http_of(
    proxy: &mesh_control::model::Proxy,
    snapshot: &mesh_control::model::MeshSnapshot,
) -> std::sync::Arc<mesh_proxy::config::HttpManager> {
    let resources = translate(proxy, snapshot);
    let bootstrap: Bootstrap = from_json(&json!({"node": {"id": proxy.id.to_string()}})).unwrap();
    let mut received = received(&resources, &secrets());
    for name in ORIGINAL_DST_CLUSTERS {
        received.clusters.insert(
            name.to_owned(),
            Cluster {
                name: name.to_owned(),
                ..Cluster::default()
            },
        );
    }
    let config = Config::from_resources(&bootstrap, &received)
        .config
        .unwrap_or_else(|err| panic!("mesh-proxy refuses the RBAC config: {err}"));
    let inbound = config
        .listeners
        .iter()
        .find(|l| l.name == "virtualInbound")
        .unwrap();
    inbound
        .chains
        .iter()
        .find_map(|chain| match &chain.kind {
            mesh_proxy::config::ListenerKind::Http(manager) if chain.name == "0.0.0.0_9080" => {
                Some(std::sync::Arc::clone(manager))
            }
            _ => None,
        })
        .expect("an HTTP chain for 9080")
}

fn allowed(
    manager: &mesh_proxy::config::HttpManager,
    method: &str,
    path: &str,
    peer: Option<&str>,
) -> bool {
    let parts = http::Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let facts = mesh_proxy::config::Facts {
        request: Some(&parts),
        peer,
        remote: "127.0.0.10".parse().unwrap(),
        destination_ip: "127.0.0.31".parse().unwrap(),
        destination_port: 9080,
        server_name: None,
    };
    // Only RBAC decides here: no token is checked, no authorizer asked.
    manager.access.iter().all(|filter| match filter {
        HttpAccess::Rbac(rbac) => rbac.decide(&facts).allowed,
        HttpAccess::Jwt(_) | HttpAccess::ExtAuthz(_) => true,
    })
}

const PRODUCTPAGE_ID: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
const RATINGS_ID: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-ratings";
const ELSEWHERE_ID: &str = "spiffe://cluster.local/ns/shop/sa/cart";

#[test]
fn authorization_policies_a_bookinfo_user_writes_are_enforced_by_mesh_proxy() {
    let _descriptors = Descriptors::get();
    let reviews = common::sidecar("reviews", "v1", "127.0.0.31");
    let policies = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-from-productpage, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-delete, namespace: mesh-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {methods: [DELETE]}}]
";
    let manager = inbound_http(&reviews, policies);
    assert!(allowed(&manager, "GET", "/reviews/0", Some(PRODUCTPAGE_ID)));
    assert!(
        !allowed(&manager, "GET", "/reviews/0", Some(RATINGS_ID)),
        "another principal"
    );
    assert!(!allowed(&manager, "GET", "/reviews/0", None), "plain text");
    assert!(
        !allowed(&manager, "DELETE", "/reviews/0", Some(PRODUCTPAGE_ID)),
        "DELETE denied mesh-wide"
    );

    let ratings = common::sidecar("ratings", "v1", "127.0.0.40");
    let policies = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-get, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  rules:
  - from: [{source: {namespaces: [default]}}]
    to: [{operation: {methods: [GET], paths: [/ratings/*]}}]
";
    let manager = inbound_http(&ratings, policies);
    assert!(allowed(&manager, "GET", "/ratings/0", Some(PRODUCTPAGE_ID)));
    assert!(!allowed(
        &manager,
        "POST",
        "/ratings/0",
        Some(PRODUCTPAGE_ID)
    ));
    assert!(!allowed(&manager, "GET", "/health", Some(PRODUCTPAGE_ID)));
    assert!(
        !allowed(&manager, "GET", "/ratings/0", Some(ELSEWHERE_ID)),
        "another namespace"
    );

    // No policy: everything; `spec: {}`: nothing; `rules: [{}]`: everything.
    let open = inbound_http(&ratings, "");
    assert!(allowed(&open, "DELETE", "/anything", None));
    let deny_all = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: default}
spec: {}
";
    assert!(!allowed(
        &inbound_http(&ratings, deny_all),
        "GET",
        "/ratings/0",
        Some(PRODUCTPAGE_ID)
    ));
    let allow_all = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: default}
spec: {rules: [{}]}
";
    assert!(allowed(
        &inbound_http(&ratings, allow_all),
        "DELETE",
        "/x",
        None
    ));
    // A JWT condition cannot be checked yet: the ALLOW rule matches nothing.
    let jwt = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: default}
spec:
  rules:
  - from: [{source: {requestPrincipals: ['*']}}]
";
    assert!(!allowed(
        &inbound_http(&ratings, jwt),
        "GET",
        "/ratings/0",
        Some(PRODUCTPAGE_ID)
    ));
}

#[test]
fn mesh_proxy_runs_traced_sidecar_and_gateway_configs() {
    let _descriptors = Descriptors::get();
    let mesh = mesh_control::mesh_config::parse(
        "mesh.yaml",
        "extensionProviders:\n\
         - name: otel\n  opentelemetry: {service: ratings.default.svc.cluster.local, port: 9080}\n\
         defaultProviders: {tracing: [otel]}\n",
    )
    .unwrap();
    let traced = |proxy: &mesh_control::model::Proxy, config| {
        let mut snapshot = snapshot(config);
        snapshot.mesh = mesh.clone();
        let resources = translate(proxy, &snapshot);
        let encoded: Vec<u8> = resources
            .listeners
            .iter()
            .flat_map(prost::Message::encode_to_vec)
            .collect();
        let tracer = b"envoy.tracers.opentelemetry";
        assert!(
            encoded.windows(tracer.len()).any(|w| w == tracer),
            "{}: no tracing in the listeners",
            proxy.id
        );
        resources
    };
    accepts(&traced(&productpage(), Vec::new()), &secrets(), "traced");
    let gateway = ingress_gateway();
    let config = read(Source::File(&testdata().join("bookinfo-gateway.yaml")));
    let resources = traced(&gateway, config);
    let bootstrap: Bootstrap = from_json(&json!({"node": {"id": gateway.id.to_string()}})).unwrap();
    Config::from_resources(&bootstrap, &received(&resources, &secrets()))
        .config
        .unwrap_or_else(|err| panic!("mesh-proxy refuses the traced gateway: {err}"));
}

#[test]
fn custom_and_audit_policies_compile_in_mesh_proxy() {
    let _descriptors = Descriptors::get();
    let policies = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: CUSTOM
  provider: {name: authz}
  rules:
  - to: [{operation: {paths: [/admin/*]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: mesh-system}
spec:
  action: AUDIT
  rules:
  - to: [{operation: {methods: [DELETE]}}]
";
    let mut snapshot = snapshot(read(Source::Text(policies)));
    snapshot.mesh = mesh_control::mesh_config::parse(
        "mesh.yaml",
        "extensionProviders:\n\
         - name: authz\n  envoyExtAuthzGrpc: {service: ratings.default.svc.cluster.local, port: 9080}\n",
    )
    .unwrap();
    let reviews = common::sidecar("reviews", "v1", "127.0.0.31");
    let manager = inbound_http_of(&reviews, &snapshot);
    assert!(
        matches!(
            manager.access.as_slice(),
            [
                HttpAccess::Rbac(_),
                HttpAccess::ExtAuthz(_),
                HttpAccess::Rbac(_)
            ]
        ),
        "{:?}",
        manager.access
    );
    assert!(
        allowed(&manager, "DELETE", "/reviews/0", None),
        "AUDIT refuses nothing"
    );
    accepts(
        &translate(&reviews, &snapshot),
        &secrets(),
        "CUSTOM and AUDIT",
    );
}
