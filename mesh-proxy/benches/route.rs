//! Route selection over large route tables, compiled from Envoy JSON the way
//! the proxy compiles its bootstrap: a hit on the first, middle and last
//! route (or virtual host), and a miss that scans them all.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use http::request::Parts;
use mesh_proxy::config::{Config, ListenerKind, RouteTable};
use serde_json::{Value, json};

const ROUTES: usize = 1000;

/// Route `i`: a path prefix, an exact path, a regex, or a prefix with a
/// header match, in turn.
fn route(i: usize) -> Value {
    let matcher = match i % 4 {
        0 => json!({"prefix": format!("/svc{i}/")}),
        1 => json!({"path": format!("/exact/{i}")}),
        2 => json!({"safe_regex": {"regex": format!("^/re/{i}/[0-9]+$")}}),
        _ => json!({"prefix": "/hdr/", "headers": [
            {"name": "x-route", "string_match": {"exact": i.to_string()}}]}),
    };
    json!({"name": format!("route-{i}"), "match": matcher, "route": {"cluster": "backend"}})
}

/// A request that route `i` is the first to match.
fn request_for(i: usize, host: &str) -> Parts {
    let builder = match i % 4 {
        0 => http::Request::get(format!("/svc{i}/items")),
        1 => http::Request::get(format!("/exact/{i}")),
        2 => http::Request::get(format!("/re/{i}/42")),
        _ => http::Request::get("/hdr/items").header("x-route", i.to_string()),
    };
    request(builder.header("host", host))
}

fn request(builder: http::request::Builder) -> Parts {
    builder.body(()).unwrap().into_parts().0
}

/// The route table of a bootstrap with one HTTP listener.
fn compile(virtual_hosts: Value) -> RouteTable {
    let bootstrap = json!({"static_resources": {
        "listeners": [{
            "name": "http",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "http",
                    "route_config": {"name": "bench", "virtual_hosts": virtual_hosts},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
                }
            }]}]
        }],
        "clusters": [{"name": "backend", "load_assignment": {"cluster_name": "backend",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address":
                {"address": "127.0.0.1", "port_value": 8080}}}}]}]}}]
    }});
    let bootstrap: Bootstrap = mesh_api::envoy::from_json(&bootstrap).expect("valid Envoy JSON");
    let mut config = Config::from_bootstrap(&bootstrap).expect("a valid bootstrap");
    let chain = config.listeners.remove(0).chains.remove(0);
    let ListenerKind::Http(manager) = chain.kind else {
        panic!("an HTTP listener")
    };
    std::sync::Arc::try_unwrap(manager)
        .expect("the only reference")
        .routes
}

fn routes(c: &mut Criterion) {
    let routes: Vec<Value> = (0..ROUTES).map(route).collect();
    let table = compile(json!([{"name": "all", "domains": ["*"], "routes": routes}]));
    let mut group = c.benchmark_group("1000 routes");
    for (name, at) in [("first", 0), ("middle", ROUTES / 2), ("last", ROUTES - 1)] {
        let parts = request_for(at, "example.com");
        let (_, picked) = mesh_proxy::http::route::select(&table, &parts).unwrap();
        assert_eq!(picked.name, format!("route-{at}"), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| mesh_proxy::http::route::select(black_box(&table), black_box(&parts)))
        });
    }
    let miss = request(http::Request::get("/nothing/here").header("host", "example.com"));
    assert!(mesh_proxy::http::route::select(&table, &miss).is_none());
    group.bench_function("miss", |b| {
        b.iter(|| mesh_proxy::http::route::select(black_box(&table), black_box(&miss)))
    });
    group.finish();
}

fn virtual_hosts(c: &mut Criterion) {
    // As Istio names them: the service's full name, short name and with port.
    let hosts: Vec<Value> = (0..ROUTES)
        .map(|i| {
            json!({"name": format!("svc{i}.default.svc.cluster.local:80"),
                "domains": [format!("svc{i}.default.svc.cluster.local"), format!("svc{i}"),
                    format!("svc{i}.default.svc.cluster.local:80")],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]})
        })
        .collect();
    let table = compile(Value::Array(hosts));
    let mut group = c.benchmark_group("1000 virtual hosts");
    for (name, at) in [("first", 0), ("middle", ROUTES / 2), ("last", ROUTES - 1)] {
        let host = format!("svc{at}.default.svc.cluster.local");
        let parts = request(http::Request::get("/").header("host", host.as_str()));
        let (vhost, _) = mesh_proxy::http::route::select(&table, &parts).unwrap();
        assert_eq!(vhost.name, format!("{host}:80"));
        group.bench_function(name, |b| {
            b.iter(|| mesh_proxy::http::route::select(black_box(&table), black_box(&parts)))
        });
    }
    let miss = request(http::Request::get("/").header("host", "unknown.example.com"));
    assert!(mesh_proxy::http::route::select(&table, &miss).is_none());
    group.bench_function("miss", |b| {
        b.iter(|| mesh_proxy::http::route::select(black_box(&table), black_box(&miss)))
    });
    group.finish();
}

criterion_group!(benches, routes, virtual_hosts);
criterion_main!(benches);
