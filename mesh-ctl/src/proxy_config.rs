//! `meshctl proxy-config` (`pc`) `cluster|listener|route|endpoint <proxy>`:
//! the xDS resources the control plane last sent to a proxy, read from its
//! `/debug/config_dump`, in istioctl's tables or as JSON.
//!
//! `<proxy>` is a node id, `<pod>.<namespace>`, or a pod in `default`.
//! Unlike istioctl, which asks the proxy's admin port, this shows what the
//! control plane sent: endpoint health is the one the control plane set, and
//! OUTLIER CHECK (an ejection only the proxy knows about) reads `OK`.

use std::io::Write;
use std::process::ExitCode;

use serde_json::Value;

use crate::control_plane::{Address, escape, table};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE.
    Cluster(Args),
    /// Listeners, one row per filter chain: ADDRESS, PORT, MATCH, DESTINATION.
    Listener(Args),
    /// Routes: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE.
    Route(Args),
    /// Endpoints: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER.
    Endpoint(Args),
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The proxy: node id, `<pod>.<namespace>`, or `<pod>` in `default`.
    pub proxy: String,
    #[command(flatten)]
    pub remote: Address,
    /// `short` (a table) or `json` (the resources).
    #[arg(short, long, default_value = "short", value_parser = ["short", "json"])]
    pub output: String,
}

/// Where one kind of resource sits in a config dump, and how it is shown.
struct Kind {
    /// The admin message holding it, e.g. `ClustersConfigDump`.
    dump_type: &'static str,
    /// The field of each entry that holds the resource.
    field: &'static str,
    header: &'static [&'static str],
    rows: fn(&[Value]) -> Vec<Vec<String>>,
}

impl Command {
    fn parts(&self) -> (&Args, Kind) {
        match self {
            Command::Cluster(args) => (
                args,
                Kind {
                    dump_type: "ClustersConfigDump",
                    field: "cluster",
                    header: &[
                        "SERVICE FQDN",
                        "PORT",
                        "SUBSET",
                        "DIRECTION",
                        "TYPE",
                        "DESTINATION RULE",
                    ],
                    rows: cluster_rows,
                },
            ),
            Command::Listener(args) => (
                args,
                Kind {
                    dump_type: "ListenersConfigDump",
                    field: "listener",
                    header: &["ADDRESS", "PORT", "MATCH", "DESTINATION"],
                    rows: listener_rows,
                },
            ),
            Command::Route(args) => (
                args,
                Kind {
                    dump_type: "RoutesConfigDump",
                    field: "route_config",
                    header: &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
                    rows: route_rows,
                },
            ),
            Command::Endpoint(args) => (
                args,
                Kind {
                    dump_type: "EndpointsConfigDump",
                    field: "endpoint_config",
                    header: &["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
                    rows: endpoint_rows,
                },
            ),
        }
    }
}

pub fn run(command: &Command, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let (args, kind) = command.parts();
    let dump = args.remote.get_json(&format!(
        "/debug/config_dump?proxyID={}",
        escape(&proxy_id(&args.proxy))
    ))?;
    let resources = resources(&dump, kind.dump_type, kind.field);
    if args.output == "json" {
        writeln!(out, "{}", serde_json::to_string_pretty(&resources)?)?;
    } else {
        table(out, kind.header, &(kind.rows)(&resources))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A pod name alone means the `default` namespace, as istioctl's `<pod[.ns]>`.
fn proxy_id(proxy: &str) -> String {
    if proxy.contains('~') || proxy.contains('.') {
        proxy.to_owned()
    } else {
        format!("{proxy}.default")
    }
}

/// The resources of one kind in a config dump: each entry's `field`, found at
/// any depth of the entry (listeners sit in `active_state`).
fn resources(dump: &Value, dump_type: &str, field: &str) -> Vec<Value> {
    let suffix = format!(".{dump_type}");
    let Some(section) = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["@type"].as_str().is_some_and(|t| t.ends_with(&suffix)))
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Some(object) = section.as_object() {
        for entries in object.values().filter_map(Value::as_array) {
            for entry in entries {
                if let Some(resource) = find_field(entry, field) {
                    found.push(resource.clone());
                }
            }
        }
    }
    found
}

fn find_field<'a>(value: &'a Value, field: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    object
        .get(field)
        .or_else(|| object.values().find_map(|v| find_field(v, field)))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

/// `name.namespace` of the Istio config a resource came from (the
/// `istio.config` metadata istiod sets: `/apis/<group>/<version>/namespaces/<ns>/<kind>/<name>`).
fn istio_config(resource: &Value) -> String {
    let path = text(&resource["metadata"]["filter_metadata"]["istio"]["config"]);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [.., "namespaces", namespace, _kind, name] => format!("{name}.{namespace}"),
        _ => "-".into(),
    }
}

fn cluster_rows(clusters: &[Value]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|cluster| {
            let name = text(&cluster["name"]);
            let parts: Vec<&str> = name.split('|').collect();
            let (fqdn, port, subset, direction) = match parts.as_slice() {
                [direction @ ("inbound" | "outbound"), port, subset, host] => (
                    (*host).to_owned(),
                    (*port).to_owned(),
                    or_dash((*subset).to_owned()),
                    (*direction).to_owned(),
                ),
                _ => (name.clone(), "-".into(), "-".into(), "-".into()),
            };
            let kind = match (&cluster["type"], &cluster["cluster_type"]["name"]) {
                (Value::String(t), _) => t.clone(),
                (_, Value::String(custom)) => custom.clone(),
                _ => "STATIC".into(),
            };
            vec![fqdn, port, subset, direction, kind, istio_config(cluster)]
        })
        .collect();
    rows.sort();
    rows
}

fn listener_rows(listeners: &[Value]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for listener in listeners {
        let socket = &listener["address"]["socket_address"];
        let address = or_dash(text(&socket["address"]));
        let port = or_dash(text(&socket["port_value"]));
        if let Some(api) = listener["api_listener"]["api_listener"].as_object() {
            let filter = serde_json::json!({ "typed_config": api });
            rows.push(vec![
                address.clone(),
                port.clone(),
                "ALL".into(),
                destination(&[filter]),
            ]);
        }
        let chains = listener["filter_chains"].as_array().into_iter().flatten();
        let default_chain = listener.get("default_filter_chain").into_iter();
        for chain in chains.chain(default_chain) {
            let filters = chain["filters"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            rows.push(vec![
                address.clone(),
                port.clone(),
                chain_match(&chain["filter_chain_match"]),
                destination(filters),
            ]);
        }
        if listener["filter_chains"]
            .as_array()
            .is_none_or(Vec::is_empty)
            && listener.get("default_filter_chain").is_none()
            && listener.get("api_listener").is_none()
        {
            rows.push(vec![address, port, "ALL".into(), "-".into()]);
        }
    }
    rows
}

/// A filter chain match in istioctl's words: `SNI: a; Trans: tls; App: h2; Addr: 10.0.0.0/8`.
fn chain_match(matching: &Value) -> String {
    let list = |field: &str| -> Vec<String> {
        matching[field]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect()
    };
    let mut parts = Vec::new();
    if let Some(port) = matching.get("destination_port") {
        parts.push(format!("Port: {}", text(port)));
    }
    let names = list("server_names");
    if !names.is_empty() {
        parts.push(format!("SNI: {}", names.join(",")));
    }
    if let Some(transport) = matching.get("transport_protocol") {
        parts.push(format!("Trans: {}", text(transport)));
    }
    let alpn = list("application_protocols");
    if !alpn.is_empty() {
        parts.push(format!("App: {}", alpn.join(",")));
    }
    let ranges: Vec<String> = matching["prefix_ranges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| format!("{}/{}", text(&r["address_prefix"]), text(&r["prefix_len"])))
        .collect();
    if !ranges.is_empty() {
        parts.push(format!("Addr: {}", ranges.join(",")));
    }
    if parts.is_empty() {
        "ALL".into()
    } else {
        parts.join("; ")
    }
}

/// Where a chain's traffic goes: the HTTP route config, or the TCP cluster.
fn destination(filters: &[Value]) -> String {
    for filter in filters {
        let config = &filter["typed_config"];
        let kind = text(&config["@type"]);
        if kind.ends_with(".HttpConnectionManager") {
            if let Some(name) = config["rds"]["route_config_name"].as_str() {
                return format!("Route: {name}");
            }
            return format!("Inline Route: {}", text(&config["route_config"]["name"]));
        }
        if kind.ends_with(".TcpProxy") {
            if let Some(cluster) = config["cluster"].as_str() {
                return format!("Cluster: {cluster}");
            }
            let weighted: Vec<String> = config["weighted_clusters"]["clusters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| text(&c["name"]))
                .collect();
            return format!("Clusters: {}", weighted.join(","));
        }
    }
    "Non-HTTP/Non-TCP".into()
}

fn route_rows(configs: &[Value]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for config in configs {
        let name = text(&config["name"]);
        for vhost in config["virtual_hosts"].as_array().into_iter().flatten() {
            let domains = domains(&vhost["domains"]);
            let routes: Vec<&Value> = vhost["routes"].as_array().into_iter().flatten().collect();
            if routes.is_empty() {
                rows.push(vec![
                    name.clone(),
                    text(&vhost["name"]),
                    domains.clone(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            for route in routes {
                rows.push(vec![
                    name.clone(),
                    text(&vhost["name"]),
                    domains.clone(),
                    path_match(&route["match"]),
                    istio_config(route),
                ]);
            }
        }
    }
    rows
}

/// The first two domains, and how many more, as istioctl shortens them.
fn domains(domains: &Value) -> String {
    let all: Vec<String> = domains.as_array().into_iter().flatten().map(text).collect();
    match all.len() {
        0 => "-".into(),
        1 | 2 => all.join(", "),
        n => format!("{}, {} + {} more...", all[0], all[1], n - 2),
    }
}

fn path_match(matching: &Value) -> String {
    if let Some(prefix) = matching["prefix"].as_str() {
        format!("{prefix}*")
    } else if let Some(path) = matching["path"].as_str() {
        path.to_owned()
    } else if let Some(prefix) = matching["path_separated_prefix"].as_str() {
        format!("{prefix}/*")
    } else if let Some(regex) = matching["safe_regex"]["regex"].as_str() {
        regex.to_owned()
    } else if matching.get("connect_matcher").is_some() {
        "CONNECT".into()
    } else {
        "/*".into()
    }
}

fn endpoint_rows(assignments: &[Value]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for assignment in assignments {
        let cluster = text(&assignment["cluster_name"]);
        for locality in assignment["endpoints"].as_array().into_iter().flatten() {
            for lb_endpoint in locality["lb_endpoints"].as_array().into_iter().flatten() {
                let address = &lb_endpoint["endpoint"]["address"];
                let socket = &address["socket_address"];
                let endpoint = match socket["address"].as_str() {
                    Some(ip) => format!("{ip}:{}", text(&socket["port_value"])),
                    None => or_dash(text(&address["pipe"]["path"])),
                };
                let status = match lb_endpoint["health_status"].as_str() {
                    None | Some("UNKNOWN") => "HEALTHY".to_owned(),
                    Some(status) => status.to_owned(),
                };
                rows.push(vec![endpoint, status, "OK".into(), cluster.clone()]);
            }
        }
    }
    rows.sort();
    rows
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dump() -> Value {
        json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
             "dynamic_active_clusters": [
                {"cluster": {"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "type": "EDS",
                    "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"}}}}},
                {"cluster": {"name": "BlackHoleCluster"}},
                {"cluster": {"name": "inbound|9080||", "type": "ORIGINAL_DST"}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "dynamic_listeners": [{"name": "virtualInbound", "active_state": {"listener": {
                "name": "virtualInbound",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
                "filter_chains": [
                    {"filter_chain_match": {"destination_port": 9080, "transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]},
                     "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "route_config": {"name": "inbound|9080||"}}}]},
                    {"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                        "cluster": "InboundPassthroughCluster"}}]}]}}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
             "dynamic_route_configs": [{"route_config": {"name": "9080", "virtual_hosts": [
                {"name": "reviews.default.svc.cluster.local:9080",
                 "domains": ["reviews.default.svc.cluster.local", "reviews", "reviews.default", "10.0.0.5"],
                 "routes": [{"match": {"prefix": "/"},
                    "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}}}}]},
                {"name": "allow_any", "domains": ["*"], "routes": [{"match": {"path": "/exact"}}]}]}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
             "dynamic_endpoint_configs": [{"endpoint_config": {"cluster_name": "outbound|9080|v1|reviews.default.svc.cluster.local",
                "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "10.1.0.2", "port_value": 9080}}}},
                    {"endpoint": {"address": {"socket_address": {"address": "10.1.0.1", "port_value": 9080}}}, "health_status": "UNHEALTHY"}]}]}}]}
        ]})
    }

    #[test]
    fn clusters() {
        let rows = cluster_rows(&resources(&dump(), "ClustersConfigDump", "cluster"));
        assert_eq!(
            rows,
            vec![
                vec!["", "9080", "-", "inbound", "ORIGINAL_DST", "-"],
                vec!["BlackHoleCluster", "-", "-", "-", "STATIC", "-"],
                vec![
                    "reviews.default.svc.cluster.local",
                    "9080",
                    "v1",
                    "outbound",
                    "EDS",
                    "reviews.default"
                ],
            ]
        );
    }

    #[test]
    fn listeners() {
        let rows = listener_rows(&resources(&dump(), "ListenersConfigDump", "listener"));
        assert_eq!(
            rows,
            vec![
                vec![
                    "0.0.0.0",
                    "15006",
                    "Port: 9080; Trans: raw_buffer; App: http/1.1,h2c",
                    "Inline Route: inbound|9080||"
                ],
                vec![
                    "0.0.0.0",
                    "15006",
                    "ALL",
                    "Cluster: InboundPassthroughCluster"
                ],
            ]
        );
    }

    #[test]
    fn routes() {
        let rows = route_rows(&resources(&dump(), "RoutesConfigDump", "route_config"));
        assert_eq!(
            rows,
            vec![
                vec![
                    "9080",
                    "reviews.default.svc.cluster.local:9080",
                    "reviews.default.svc.cluster.local, reviews + 2 more...",
                    "/*",
                    "reviews.default"
                ],
                vec!["9080", "allow_any", "*", "/exact", "-"],
            ]
        );
    }

    #[test]
    fn endpoints() {
        let rows = endpoint_rows(&resources(
            &dump(),
            "EndpointsConfigDump",
            "endpoint_config",
        ));
        let cluster = "outbound|9080|v1|reviews.default.svc.cluster.local";
        assert_eq!(
            rows,
            vec![
                vec!["10.1.0.1:9080", "UNHEALTHY", "OK", cluster],
                vec!["10.1.0.2:9080", "HEALTHY", "OK", cluster],
            ]
        );
        assert_eq!(proxy_id("reviews-v1"), "reviews-v1.default");
        assert_eq!(proxy_id("reviews-v1.bookinfo"), "reviews-v1.bookinfo");
    }
}
