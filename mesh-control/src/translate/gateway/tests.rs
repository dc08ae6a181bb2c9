//! Gateway translation: host matching between servers and
//! VirtualServices, httpsRedirect, PASSTHROUGH SNI chains and terminated
//! TLS credentials.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, virtual_host};
use mesh_api::envoy::{Descriptors, to_json};
use mesh_api::names::ProxyKind;
use mesh_api::networking::gateway::Protocol;
use mesh_api::networking::service_entry::{Location, Resolution};
use serde_json::{Value, json};

use super::hosts::{for_namespace, intersection, qualify, subset_of};
use crate::model::{Endpoint, MeshSnapshot, Proxy, Service, ServicePort};
use crate::translate::{Resources, translate};

fn service(host: &str, port: u16, protocol: Protocol) -> Arc<Service> {
    Arc::new(Service {
        hostname: host.into(),
        namespace: "default".into(),
        addresses: Vec::new(),
        ports: vec![ServicePort {
            name: protocol.as_str().to_ascii_lowercase(),
            number: port,
            protocol: Some(protocol),
            target_port: None,
        }],
        resolution: Resolution::Static,
        location: Location::MeshInternal,
        export_to: Vec::new(),
        subject_alt_names: Vec::new(),
        named_endpoints: Vec::new(),
    })
}

fn gateway_proxy() -> Proxy {
    Proxy {
        id: "router~10.0.0.9~gw-abc.istio-system~istio-system.svc.cluster.local"
            .parse()
            .unwrap(),
        kind: ProxyKind::Router,
        namespace: "istio-system".into(),
        ip: "10.0.0.9".parse().unwrap(),
        labels: [("istio".to_owned(), "ingressgateway".to_owned())].into(),
        service_account: "gw".into(),
        workload_name: "gw".into(),
        grpc_generator: false,
        locality: String::new(),
        metadata: BTreeMap::new(),
    }
}

fn gateway(yaml: &str) -> Resources {
    let snapshot = MeshSnapshot {
        config: crate::translate::tests::config(yaml),
        services: vec![
            service("reviews.default.svc.cluster.local", 9080, Protocol::Http),
            service("ratings.default.svc.cluster.local", 9080, Protocol::Http),
            service("db.default.svc.cluster.local", 5432, Protocol::Tcp),
            service("api.default.svc.cluster.local", 8443, Protocol::Tls),
        ],
        ..MeshSnapshot::default()
    };
    translate(&gateway_proxy(), &snapshot)
}

fn route_config<'a>(resources: &'a Resources, name: &str) -> &'a RouteConfiguration {
    resources
        .routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route configuration {name}"))
}

/// Virtual host names with the clusters of their routes.
fn virtual_hosts(config: &RouteConfiguration) -> Vec<(String, Vec<String>)> {
    config
        .virtual_hosts
        .iter()
        .map(|v| {
            let clusters = v
                .routes
                .iter()
                .map(|r| {
                    to_json(r).unwrap()["route"]["cluster"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            (v.name.clone(), clusters)
        })
        .collect()
}

fn listener(resources: &Resources, name: &str) -> Value {
    let listener = resources
        .listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}"));
    to_json(listener).unwrap()
}

const HTTP_GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["default/*.example.com", "./admin.example.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 9999, name: http, protocol: HTTP}
    hosts: ["*"]
"#;

#[test]
fn host_matching_keeps_the_narrower_host_and_reads_namespaces() {
    assert!(subset_of("a.example.com", "*.example.com"));
    assert!(subset_of("*.a.example.com", "*.example.com"));
    assert!(subset_of("*.example.com", "*"));
    assert!(!subset_of("example.com", "*.example.com"));
    assert!(!subset_of("*.example.com", "a.example.com"));

    let hosts: Vec<String> = ["default/*.example.com", "./admin.example.com", "any.org"]
        .iter()
        .map(|h| qualify(h, "istio-system"))
        .collect();
    assert_eq!(
        hosts,
        [
            "default/*.example.com",
            "istio-system/admin.example.com",
            "*/any.org"
        ]
    );
    assert_eq!(
        for_namespace(&hosts, "default"),
        ["*.example.com", "any.org"]
    );
    assert_eq!(
        for_namespace(&hosts, "istio-system"),
        ["admin.example.com", "any.org"]
    );

    let vs_hosts = [
        "a.example.com".to_owned(),
        "*".to_owned(),
        "reviews".to_owned(),
    ];
    assert_eq!(
        intersection(&["*.example.com"], &vs_hosts, "default", "cluster.local"),
        ["a.example.com", "*.example.com"]
    );
    assert_eq!(
        intersection(&["*"], &vs_hosts[2..], "default", "cluster.local"),
        ["reviews.default.svc.cluster.local"]
    );
    assert!(intersection(&["b.org"], &vs_hosts[..1], "default", "cluster.local").is_empty());
}

#[test]
fn virtual_services_bind_by_gateway_name_and_server_host_namespace() {
    let _descriptors = Descriptors::get();
    let resources = gateway(&format!(
        "{HTTP_GATEWAY}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.example.com]
  gateways: [istio-system/web]
  http:
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: admin, namespace: istio-system}
spec:
  hosts: [admin.example.com, shop.example.com]
  gateways: [web]
  http:
  - route: [{destination: {host: ratings.default.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: elsewhere, namespace: other}
spec:
  hosts: [x.example.com]
  gateways: [istio-system/web]
  http:
  - route: [{destination: {host: reviews.default.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: not-bound, namespace: default}
spec:
  hosts: [y.example.com]
  gateways: [web]
  http:
  - route: [{destination: {host: reviews}}]
"#
    ));
    let names: Vec<&str> = resources
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["0.0.0.0_8080"],
        "the egress gateway does not select it"
    );
    let reviews = "outbound|9080||reviews.default.svc.cluster.local".to_owned();
    let ratings = "outbound|9080||ratings.default.svc.cluster.local".to_owned();
    // `shop.example.com` is under `default/*.example.com` for the default
    // VirtualService only; `admin` binds through `./`; `other` and the
    // VirtualService naming `default/web` get nothing.
    assert_eq!(
        virtual_hosts(route_config(&resources, "http.8080")),
        [
            ("admin.example.com:8080".to_owned(), vec![ratings]),
            ("shop.example.com:8080".to_owned(), vec![reviews]),
        ]
    );
    let vhost = &route_config(&resources, "http.8080").virtual_hosts[1];
    assert_eq!(vhost.domains, ["shop.example.com", "shop.example.com:*"]);
}

#[test]
fn a_gateway_without_routes_answers_404_from_a_blackhole_host() {
    let resources = gateway(HTTP_GATEWAY);
    let config = route_config(&resources, "http.8080");
    assert_eq!(config.virtual_hosts.len(), 1);
    assert_eq!(config.virtual_hosts[0].name, "blackhole:8080");
    assert!(config.virtual_hosts[0].routes.is_empty());
}

#[test]
fn https_redirect_requires_tls_on_every_virtual_host() {
    let config = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["a.example.com", "b.example.com"]
    tls: {httpsRedirect: true}
"#;
    let all = virtual_host::TlsRequirementType::All as i32;
    // No VirtualService: a host per server host, still redirecting.
    let resources = gateway(config);
    let hosts = &route_config(&resources, "http.8080").virtual_hosts;
    let names: Vec<&str> = hosts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["a.example.com:8080", "b.example.com:8080"]);
    assert!(
        hosts
            .iter()
            .all(|v| v.require_tls == all && v.routes.is_empty())
    );

    let resources = gateway(&format!(
        "{config}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: istio-system}
spec:
  hosts: [a.example.com]
  gateways: [web]
  http:
  - route: [{destination: {host: reviews.default.svc.cluster.local}}]
"#
    ));
    let hosts = &route_config(&resources, "http.8080").virtual_hosts;
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].require_tls, all);
    assert_eq!(hosts[0].routes.len(), 1);
}

#[test]
fn passthrough_servers_get_an_sni_chain_per_tls_match() {
    let _descriptors = Descriptors::get();
    let resources = gateway(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: ["*.example.com"]
  gateways: [istio-system/tls]
  tls:
  - match: [{sniHosts: [api.example.com], port: 8443}]
    route: [{destination: {host: api, port: {number: 8443}}}]
  - match: [{sniHosts: [api.example.com, db.example.com]}]
    route: [{destination: {host: db}}]
  - match: [{sniHosts: [old.example.com], port: 9443}]
    route: [{destination: {host: db}}]
  - match: [{sniHosts: [other.example.com]}]
    route: [{destination: {host: db}}]
"#,
    );
    let listener = listener(&resources, "0.0.0.0_8443");
    assert_eq!(
        listener["listener_filters"][0]["name"],
        "envoy.filters.listener.tls_inspector"
    );
    let chains: Vec<(Value, Value)> = listener["filter_chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(c.get("transport_socket").is_none(), "passed through: {c}");
            (
                c["filter_chain_match"]["server_names"].clone(),
                c["filters"][1]["typed_config"]["cluster"].clone(),
            )
        })
        .collect();
    // The second match reuses `api.example.com` and is left out; the third
    // is for another port.
    assert_eq!(
        chains,
        [
            (
                json!(["api.example.com"]),
                json!("outbound|8443||api.default.svc.cluster.local")
            ),
            (
                json!(["other.example.com"]),
                json!("outbound|5432||db.default.svc.cluster.local")
            ),
        ]
    );
    assert!(resources.routes.is_empty());
}

#[test]
fn terminated_https_servers_match_sni_and_name_their_credentials() {
    let _descriptors = Descriptors::get();
    let resources = gateway(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: secure, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https-shop, protocol: HTTPS}
    hosts: ["shop.example.com"]
    tls: {mode: SIMPLE, credentialName: shop-cert}
  - port: {number: 8443, name: https-admin, protocol: HTTPS}
    hosts: ["admin.example.com"]
    tls:
      mode: MUTUAL
      serverCertificate: /etc/certs/admin.pem
      privateKey: /etc/certs/admin-key.pem
      caCertificates: /etc/certs/clients.pem
  - port: {number: 8443, name: http-plain, protocol: HTTP}
    hosts: ["plain.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: istio-system}
spec:
  hosts: [shop.example.com, admin.example.com]
  gateways: [secure]
  http:
  - route: [{destination: {host: reviews.default.svc.cluster.local}}]
"#,
    );
    let listener = listener(&resources, "0.0.0.0_8443");
    let chains = listener["filter_chains"].as_array().unwrap();
    assert_eq!(chains.len(), 2, "the HTTP server cannot share a TLS port");

    let shop = &chains[0];
    assert_eq!(
        shop["filter_chain_match"]["server_names"],
        json!(["shop.example.com"])
    );
    let hcm = &shop["filters"][0]["typed_config"];
    assert_eq!(
        hcm["rds"]["route_config_name"],
        "https.8443.https-shop.secure.istio-system"
    );
    // As istiod: the gateway replaces what clients say of their
    // certificates with what it saw itself.
    assert_eq!(hcm["forward_client_cert_details"], "SANITIZE_SET");
    assert_eq!(
        hcm["set_current_client_cert_details"],
        json!({"subject": true, "cert": true, "dns": true, "uri": true})
    );
    let tls = &shop["transport_socket"]["typed_config"];
    let common = &tls["common_tls_context"];
    assert_eq!(common["alpn_protocols"], json!(["h2", "http/1.1"]));
    assert_eq!(
        common["tls_certificate_sds_secret_configs"][0]["name"],
        "kubernetes://shop-cert"
    );
    assert!(common.get("combined_validation_context").is_none());
    assert!(
        tls.get("require_client_certificate")
            .is_none_or(|r| r == false)
    );

    let admin = &chains[1]["transport_socket"]["typed_config"];
    assert_eq!(admin["require_client_certificate"], true);
    let common = &admin["common_tls_context"];
    assert_eq!(
        common["tls_certificate_sds_secret_configs"][0]["name"],
        "file-cert:/etc/certs/admin.pem~/etc/certs/admin-key.pem"
    );
    assert_eq!(
        common["combined_validation_context"]["validation_context_sds_secret_config"]["name"],
        "file-root:/etc/certs/clients.pem"
    );
    let secrets: Vec<Value> = resources
        .secrets
        .iter()
        .map(|s| to_json(s).unwrap())
        .collect();
    assert_eq!(
        secrets,
        [
            json!({"name": "file-cert:/etc/certs/admin.pem~/etc/certs/admin-key.pem",
                   "tls_certificate": {
                       "certificate_chain": {"filename": "/etc/certs/admin.pem"},
                       "private_key": {"filename": "/etc/certs/admin-key.pem"}}}),
            json!({"name": "file-root:/etc/certs/clients.pem",
                   "validation_context": {"trusted_ca": {"filename": "/etc/certs/clients.pem"}}}),
        ]
    );

    let names: Vec<&str> = resources.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "https.8443.https-admin.secure.istio-system",
            "https.8443.https-shop.secure.istio-system"
        ]
    );
    let shop_routes = route_config(&resources, "https.8443.https-shop.secure.istio-system");
    assert_eq!(
        virtual_hosts(shop_routes),
        [(
            "shop.example.com:8443".to_owned(),
            vec!["outbound|9080||reviews.default.svc.cluster.local".to_owned()]
        )]
    );
}

/// A TCP server on the ingress gateway and the VirtualService bound to it,
/// without its `tcp` rules.
const TCP_GATEWAY: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: db, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 15432, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db]
  gateways: [istio-system/db]
"#;

#[test]
fn tcp_servers_follow_the_first_applicable_tcp_rule() {
    let _descriptors = Descriptors::get();
    let resources = gateway(&format!(
        "{TCP_GATEWAY}  tcp:
  - match: [{{port: 1}}]
    route: [{{destination: {{host: reviews}}}}]
  - route: [{{destination: {{host: db}}}}]
"
    ));
    let listener = listener(&resources, "0.0.0.0_15432");
    let chain = &listener["filter_chains"][0];
    assert_eq!(chain["filters"][0]["name"], "istio.stats");
    assert_eq!(
        chain["filters"][0]["typed_config"]["disable_host_header_fallback"],
        true
    );
    assert_eq!(
        chain["filters"][1]["typed_config"]["cluster"],
        "outbound|5432||db.default.svc.cluster.local"
    );
    assert!(listener.get("listener_filters").is_none());
}

#[test]
fn weighted_tcp_routes_split_connections() {
    let _descriptors = Descriptors::get();
    let resources = gateway(&format!(
        "{TCP_GATEWAY}  tcp:
  - route:
    - {{destination: {{host: db, subset: v1}}, weight: 80}}
    - {{destination: {{host: db, subset: v2}}, weight: 20}}
"
    ));
    let listener = listener(&resources, "0.0.0.0_15432");
    assert_eq!(
        listener["filter_chains"][0]["filters"][1]["typed_config"]["weighted_clusters"],
        json!({"clusters": [
            {"name": "outbound|5432|v1|db.default.svc.cluster.local", "weight": 80},
            {"name": "outbound|5432|v2|db.default.svc.cluster.local", "weight": 20},
        ]})
    );
}

#[test]
fn tcp_routes_close_connections_as_the_first_destinations_rule_says() {
    let _descriptors = Descriptors::get();
    let rule = "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db
  trafficPolicy:
    connectionPool:
      tcp: {idleTimeout: 30s, maxConnectionDuration: 1h}
";
    let resources = gateway(&format!(
        "{TCP_GATEWAY}  tcp:
  - route:
    - {{destination: {{host: db, subset: v1}}, weight: 80}}
    - {{destination: {{host: reviews}}, weight: 20}}
{rule}"
    ));
    let limited = listener(&resources, "0.0.0.0_15432");
    let proxy = &limited["filter_chains"][0]["filters"][1]["typed_config"];
    assert_eq!(proxy["idle_timeout"], "30s");
    assert_eq!(proxy["max_downstream_connection_duration"], "3600s");

    // Without a rule, the proxy's defaults apply.
    let resources = gateway(&format!(
        "{TCP_GATEWAY}  tcp:
  - route: [{{destination: {{host: db}}}}]
"
    ));
    let unlimited = listener(&resources, "0.0.0.0_15432");
    let proxy = &unlimited["filter_chains"][0]["filters"][1]["typed_config"];
    assert!(proxy.get("idle_timeout").is_none(), "{proxy}");
}

/// The gateway's own service, as Kubernetes' `istio-ingressgateway`: port
/// 80 to target port 8080, with the gateway proxy as its endpoint.
fn own_service(snapshot: &mut MeshSnapshot, proxy: &Proxy) {
    let mut service = service(
        "istio-ingressgateway.istio-system.svc.cluster.local",
        80,
        Protocol::Http,
    );
    let own = Arc::get_mut(&mut service).unwrap();
    own.namespace = "istio-system".into();
    own.ports[0].target_port = Some(8080);
    snapshot.endpoints.push(Arc::new(Endpoint {
        service: service.hostname.clone(),
        service_namespace: "istio-system".into(),
        address: proxy.ip,
        ports: BTreeMap::new(),
        labels: proxy.labels.clone(),
        namespace: "istio-system".into(),
        service_account: "gw".into(),
        locality: String::new(),
        network: String::new(),
        weight: 1,
        mesh_tls: false,
    }));
    snapshot.services.push(service);
}

#[test]
fn a_server_port_binds_the_target_port_of_the_gateways_own_service() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"#;
    let mut snapshot = MeshSnapshot {
        config: crate::translate::tests::config(yaml),
        ..MeshSnapshot::default()
    };
    let mut proxy = gateway_proxy();
    own_service(&mut snapshot, &proxy);

    let resources = translate(&proxy, &snapshot);
    let bound = listener(&resources, "0.0.0.0_8080");
    assert_eq!(bound["address"]["socket_address"]["port_value"], 8080);
    route_config(&resources, "http.8080");

    // A gateway sharing its host with other proxies binds its own address;
    // service ports 80 and 8080 may both lead to one port there.
    proxy.ip = "127.0.0.1".parse().unwrap();
    proxy
        .metadata
        .insert("INTERCEPTION_MODE".into(), "NONE".into());
    snapshot.endpoints.clear();
    snapshot.services.clear();
    own_service(&mut snapshot, &proxy);
    let own = Arc::get_mut(&mut snapshot.services[0]).unwrap();
    own.ports[0].target_port = Some(18080);
    let mut second = own.ports[0].clone();
    second.number = 8080;
    second.name = "http-alt".into();
    own.ports.push(second);
    let resources = translate(&proxy, &snapshot);
    let bound = listener(&resources, "127.0.0.1_18080");
    assert_eq!(
        bound["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 18080})
    );
    route_config(&resources, "http.18080");
}
