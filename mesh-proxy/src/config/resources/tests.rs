use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use serde_json::{Value, json};

use crate::config::{Action, Compiled, Config, ListenerKind, Resources};
use crate::testing::{
    assignment, compile, eds_cluster, http_bootstrap, proto, rds_listener, route_config,
};

fn by_name<M: prost::Message + Default + prost::Name>(
    values: &[Value],
    key: &str,
) -> BTreeMap<String, M> {
    values
        .iter()
        .map(|v| (v[key].as_str().unwrap().to_owned(), proto(v)))
        .collect()
}

pub(crate) fn resources(
    listeners: &[Value],
    routes: &[Value],
    clusters: &[Value],
    cla: &[Value],
) -> Resources {
    Resources {
        listeners: by_name(listeners, "name"),
        routes: by_name(routes, "name"),
        clusters: by_name(clusters, "name"),
        endpoints: by_name(cla, "cluster_name"),
        secrets: Default::default(),
    }
}

fn compiled(resources: &Resources) -> Compiled {
    Config::from_resources(&Bootstrap::default(), resources)
}

fn forward_cluster(config: &Config) -> Option<String> {
    let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
        panic!("an HTTP listener")
    };
    let route = manager.routes.virtual_hosts.first()?.routes.first()?;
    match &route.action {
        Action::Forward(forward) => Some(forward.clusters[0].0.clone()),
        _ => None,
    }
}

#[test]
fn eds_clusters_and_rds_routes_compile_from_their_resources() {
    let all = resources(
        &[rds_listener("http", "80")],
        &[route_config("80", "reviews")],
        &[eds_cluster("reviews", "reviews.svc")],
        &[assignment("reviews.svc", &[9001, 9002])],
    );
    let compiled = compiled(&all);
    assert!(compiled.is_complete(), "{compiled:?}");
    let references = &compiled.references;
    assert!(!compiled.awaits_secret);
    assert_eq!(references.routes, ["80".to_owned()].into());
    assert_eq!(references.endpoints, ["reviews.svc".to_owned()].into());
    let config = compiled.config.unwrap();
    let ports: Vec<u16> = config.clusters["reviews"]
        .endpoints
        .iter()
        .map(|e| e.address.port())
        .collect();
    assert_eq!(ports, [9001, 9002]);
    assert_eq!(forward_cluster(&config).as_deref(), Some("reviews"));
}

#[test]
fn missing_routes_and_endpoints_are_awaited_not_refused() {
    let compiled = compiled(&resources(
        &[rds_listener("http", "80")],
        &[],
        &[eds_cluster("reviews", "")],
        &[],
    ));
    assert!(!compiled.is_complete());
    // Without a service name the cluster's own name is the EDS name.
    assert_eq!(
        compiled.references.missing,
        [
            "cluster_load_assignment \"reviews\"".to_owned(),
            "route_configuration \"80\"".to_owned()
        ]
        .into()
    );
    let config = compiled.config.unwrap();
    assert!(config.clusters["reviews"].endpoints.is_empty());
    assert_eq!(forward_cluster(&config), None);
}

#[test]
fn routes_to_unknown_clusters_are_accepted_over_xds() {
    let compiled = compiled(&resources(
        &[rds_listener("http", "80")],
        &[route_config("80", "later")],
        &[],
        &[],
    ));
    assert!(compiled.is_complete(), "{compiled:?}");
}

#[test]
fn errors_name_the_dynamic_resource_and_field() {
    let mut bad_route = route_config("80", "reviews");
    bad_route["virtual_hosts"][0]["routes"][0]["match"] = json!({"safe_regex": {"regex": "("}});
    let mut bad_cla = assignment("reviews", &[1]);
    bad_cla["endpoints"][0]["lb_endpoints"][0]["load_balancing_weight"] = json!(0);
    let mut bad_source = eds_cluster("reviews", "");
    bad_source["eds_cluster_config"]["eds_config"] = json!({"path_config_source": {"path": "/x"}});
    let cases = [
        (
            resources(&[rds_listener("http", "80")], &[bad_route], &[], &[]),
            "route_configuration \"80\": virtual_hosts[0].routes[0].match.safe_regex.regex: ",
        ),
        (
            resources(&[], &[], &[eds_cluster("reviews", "")], &[bad_cla]),
            "cluster_load_assignment \"reviews\": endpoints[0].lb_endpoints[0].load_balancing_weight: weights must be at least 1",
        ),
        (
            resources(&[], &[], &[bad_source], &[]),
            "cluster \"reviews\": eds_cluster_config.eds_config: config sources other than ads is not supported by this proxy",
        ),
    ];
    for (resources, expected) in cases {
        let message = compiled(&resources).config.unwrap_err().to_string();
        assert!(message.starts_with(expected), "{message}");
    }
}

#[test]
fn static_bootstraps_refuse_eds_and_rds() {
    let mut bootstrap = http_bootstrap(json!([]), &["a"]);
    bootstrap["static_resources"]["clusters"][0] = eds_cluster("a", "");
    assert_eq!(
        compile(&bootstrap).unwrap_err().to_string(),
        "cluster \"a\": type: EDS in a static bootstrap (use STATIC) is not supported by this proxy"
    );
    let bootstrap = json!({"static_resources": {"listeners": [rds_listener("http", "80")]}});
    assert_eq!(
        compile(&bootstrap).unwrap_err().to_string(),
        "listener \"http\": filter_chains[0].filters[0].typed_config.rds: RDS in a static bootstrap (use route_config) is not supported by this proxy"
    );
}

#[test]
fn sds_secrets_are_awaited_then_used() {
    let mut listener = rds_listener("https", "80");
    listener["filter_chains"][0]["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {"tls_certificate_sds_secret_configs": [
                {"name": "default", "sds_config": {"ads": {}}}]}
        }
    });
    let mut all = resources(&[listener], &[route_config("80", "a")], &[], &[]);
    let waiting = compiled(&all);
    assert_eq!(waiting.references.secrets, ["default".to_owned()].into());
    assert_eq!(
        waiting.references.missing,
        ["secret \"default\"".to_owned()].into()
    );
    assert!(waiting.awaits_secret);

    // Other errors are not excused by a missing secret.
    let mut broken = all.clone();
    broken.clusters.insert(
        "bad".into(),
        proto(&json!({"name": "bad", "connect_timeout": "-1s"})),
    );
    let refused = compiled(&broken);
    assert!(!refused.awaits_secret);
    assert!(
        refused
            .config
            .unwrap_err()
            .to_string()
            .starts_with("cluster \"bad\": connect_timeout")
    );

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["a.example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let secret = json!({"name": "default", "tls_certificate": {
        "certificate_chain": {"inline_string": cert.pem()},
        "private_key": {"inline_string": key.serialize_pem()}}});
    all.secrets.insert("default".into(), proto(&secret));
    let ready = compiled(&all);
    assert!(ready.is_complete(), "{ready:?}");
    assert!(ready.config.unwrap().listeners[0].chains[0].tls.is_some());
}

#[test]
fn fingerprints_follow_definitions_and_endpoints_not_routes() {
    let before = resources(
        &[rds_listener("http", "80")],
        &[route_config("80", "a")],
        &[eds_cluster("a", ""), eds_cluster("b", "")],
        &[assignment("a", &[1]), assignment("b", &[2])],
    );
    let mut after = resources(
        &[rds_listener("http", "80")],
        &[route_config("80", "b")],
        &[eds_cluster("a", ""), eds_cluster("b", "")],
        &[assignment("a", &[1]), assignment("b", &[3])],
    );
    let prints = |r: &Resources| compiled(r).config.unwrap().fingerprints;
    let (one, two) = (prints(&before), prints(&after));
    assert_eq!(one.listeners["http"], two.listeners["http"]);
    assert_eq!(one.clusters["a"], two.clusters["a"]);
    assert_ne!(one.clusters["b"], two.clusters["b"]);
    after
        .listeners
        .insert("http".into(), proto(&rds_listener("http", "other")));
    assert_ne!(one.listeners["http"], prints(&after).listeners["http"]);
}

#[test]
fn equal_definitions_are_unchanged_whatever_order_their_maps_encode_in() {
    // Istio's service metadata: a Struct per service, which prost encodes in
    // its HashMap's order, different for every copy.
    let mut cluster = eds_cluster("a", "");
    let services: Vec<Value> = (0..8)
        .map(|i| json!({"host": format!("s{i}.ns.svc.cluster.local"), "name": format!("s{i}"), "namespace": "ns"}))
        .collect();
    cluster["metadata"] = json!({"filter_metadata": {"istio": {"services": services}}});
    let build = || {
        resources(
            &[rds_listener("http", "80")],
            &[route_config("80", "a")],
            &[cluster.clone()],
            &[assignment("a", &[1])],
        )
    };
    let prints = |r: &Resources| compiled(r).config.unwrap().fingerprints;
    for _ in 0..20 {
        let (one, two) = (build(), build());
        assert_eq!(prints(&one).clusters["a"], prints(&two).clusters["a"]);
    }
}
