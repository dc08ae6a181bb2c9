use http::Request;
use serde_json::json;

use super::select;
use crate::config::{Action, Config, ListenerKind, RouteTable};
use crate::testing::{compile, http_bootstrap};

fn table(virtual_hosts: serde_json::Value) -> Config {
    compile(&http_bootstrap(virtual_hosts, &["a", "b", "c", "d", "e"])).unwrap()
}

fn routes(config: &Config) -> &RouteTable {
    let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
        panic!("an HTTP listener")
    };
    &manager.routes
}

fn route(cluster: &str, matcher: serde_json::Value) -> serde_json::Value {
    json!({"match": matcher, "route": {"cluster": cluster}})
}

/// The cluster a request goes to, or "-" when no route matches.
fn chosen(config: &Config, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut request = Request::builder().uri(path).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (parts, ()) = request.body(()).unwrap().into_parts();
    match select(routes(config), &parts).map(|(_, r)| &r.action) {
        Some(Action::Forward(forward)) => forward.clusters[0].0.clone(),
        Some(_) => "local".into(),
        None => "-".into(),
    }
}

#[test]
fn virtual_hosts_rank_exact_then_suffix_then_prefix_then_any() {
    let table = table(json!([
        {"name": "any", "domains": ["*"], "routes": [route("a", json!({"prefix": "/"}))]},
        {"name": "prefix", "domains": ["api.*"], "routes": [route("b", json!({"prefix": "/"}))]},
        {"name": "suffix", "domains": ["*.example.com"], "routes": [route("c", json!({"prefix": "/"}))]},
        {"name": "exact", "domains": ["www.example.com", "reviews:9080"], "routes": [route("d", json!({"prefix": "/"}))]}
    ]));
    assert_eq!(chosen(&table, "www.example.com", "/", &[]), "d");
    assert_eq!(chosen(&table, "WWW.example.com:8080", "/", &[]), "d");
    assert_eq!(chosen(&table, "shop.example.com", "/", &[]), "c");
    assert_eq!(chosen(&table, "api.example.com", "/", &[]), "c");
    assert_eq!(chosen(&table, "api.local", "/", &[]), "b");
    assert_eq!(chosen(&table, "other", "/", &[]), "a");
}

#[test]
fn routes_match_paths_and_headers_in_order() {
    let table = table(json!([{"name": "all", "domains": ["*"], "routes": [
        route("a", json!({"path": "/productpage"})),
        route("b", json!({"prefix": "/api", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]})),
        route("c", json!({"safe_regex": {"regex": "/api/v[0-9]+/.*"}})),
        route("d", json!({"prefix": "/", "headers": [{"name": "x-debug", "present_match": true, "invert_match": true}]}))
    ]}]));
    assert_eq!(chosen(&table, "h", "/productpage", &[]), "a");
    assert_eq!(chosen(&table, "h", "/productpage/x", &[]), "d");
    assert_eq!(
        chosen(&table, "h", "/api/v1/products", &[("end-user", "jason")]),
        "b"
    );
    assert_eq!(
        chosen(&table, "h", "/api/v1/products", &[("end-user", "alice")]),
        "c"
    );
    assert_eq!(chosen(&table, "h", "/api/vx/products", &[]), "d");
    assert_eq!(chosen(&table, "h", "/anything", &[("x-debug", "1")]), "-");
}

#[test]
fn header_matchers() {
    let header = |m: serde_json::Value| {
        let mut matcher = json!({"name": "x-v"});
        matcher
            .as_object_mut()
            .unwrap()
            .extend(m.as_object().unwrap().clone());
        table(
            json!([{"name": "all", "domains": ["*"], "routes": [route("a", json!({"prefix": "/", "headers": [matcher]}))]}]),
        )
    };
    let prefix = header(json!({"string_match": {"prefix": "ab"}}));
    assert_eq!(chosen(&prefix, "h", "/", &[("x-v", "abc")]), "a");
    assert_eq!(chosen(&prefix, "h", "/", &[("x-v", "cab")]), "-");
    assert_eq!(chosen(&prefix, "h", "/", &[]), "-");
    let suffix = header(json!({"string_match": {"suffix": "bc"}}));
    assert_eq!(chosen(&suffix, "h", "/", &[("x-v", "abc")]), "a");
    let regex = header(json!({"string_match": {"safe_regex": {"regex": "v[12]"}}}));
    assert_eq!(chosen(&regex, "h", "/", &[("x-v", "v2")]), "a");
    assert_eq!(
        chosen(&regex, "h", "/", &[("x-v", "v22")]),
        "-",
        "regexes match the whole value"
    );
    let absent = header(json!({"present_match": false}));
    assert_eq!(chosen(&absent, "h", "/", &[]), "a");
    assert_eq!(chosen(&absent, "h", "/", &[("x-v", "1")]), "-");
}

#[test]
fn query_parameters_and_pseudo_headers() {
    let table = table(json!([{"name": "all", "domains": ["*"], "routes": [
        route("a", json!({"prefix": "/", "query_parameters": [{"name": "v", "string_match": {"exact": "2"}}]})),
        route("b", json!({"prefix": "/", "query_parameters": [{"name": "debug", "present_match": true}]})),
        route("c", json!({"prefix": "/", "headers": [{"name": ":method", "string_match": {"exact": "DELETE"}}]})),
        route("d", json!({"prefix": "/", "headers": [{"name": ":path", "string_match": {"prefix": "/x?"}}]})),
        route("e", json!({"prefix": "/"}))
    ]}]));
    assert_eq!(chosen(&table, "h", "/p?v=2", &[]), "a");
    assert_eq!(chosen(&table, "h", "/p?w=1&v=2", &[]), "a");
    assert_eq!(chosen(&table, "h", "/p?v=22", &[]), "e");
    assert_eq!(chosen(&table, "h", "/p?debug", &[]), "b");
    assert_eq!(chosen(&table, "h", "/x?q", &[]), "d");
    assert_eq!(chosen(&table, "h", "/x", &[]), "e");
    let (parts, ()) = Request::delete("/p")
        .header("host", "h")
        .body(())
        .unwrap()
        .into_parts();
    let cluster = match select(routes(&table), &parts).map(|(_, r)| &r.action) {
        Some(Action::Forward(forward)) => forward.clusters[0].0.clone(),
        _ => String::new(),
    };
    assert_eq!(cluster, "c");
}
