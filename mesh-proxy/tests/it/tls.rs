//! TLS end to end: to upstreams (verified by CA and SAN, with client
//! certificates), terminated on listeners (mTLS, ALPN), and filter chains
//! chosen by SNI and ALPN.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use support::{
    Ca, Echo, Leaf, Proxy, TlsClient, TlsEcho, bootstrap, cluster, downstream_tls, echoed_header,
    get, http_listener, server_of, tcp_listener, upstream_tls,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WITHIN: Duration = Duration::from_secs(20);
const ECHO_ID: &str = "spiffe://cluster.local/ns/default/sa/echo";
const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/server";

fn catch_all(cluster: &str) -> Value {
    json!([{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}])
}

/// A route per path prefix: `/<cluster>/` goes to that cluster.
fn by_prefix(clusters: &[&str]) -> Value {
    let routes: Vec<Value> = clusters
        .iter()
        .map(|c| json!({"match": {"prefix": format!("/{c}/")}, "route": {"cluster": c}}))
        .collect();
    json!([{"name": "all", "domains": ["*"], "routes": routes}])
}

fn tls_cluster(name: &str, endpoint: SocketAddr, context: Value) -> Value {
    let mut c = cluster(name, &[endpoint]);
    c["transport_socket"] = upstream_tls(context);
    c
}

fn trusting(ca: &Ca, sans: Value) -> Value {
    json!({"trusted_ca": {"inline_string": ca.pem}, "match_typed_subject_alt_names": sans})
}

fn uri_san(exact: &str) -> Value {
    json!([{"san_type": "URI", "matcher": {"exact": exact}}])
}

fn cert(leaf: &Leaf) -> Value {
    json!({"certificate_chain": {"inline_string": leaf.cert}, "private_key": {"inline_string": leaf.key}})
}

/// A filter chain terminating TLS and serving HTTP to `cluster`.
fn tls_http_chain(name: &str, cluster: &str, matcher: Value, context: Value) -> Value {
    let listener = http_listener(name, catch_all(cluster));
    let mut chain = listener["filter_chains"][0].clone();
    chain["filter_chain_match"] = matcher;
    chain["transport_socket"] = downstream_tls(context);
    chain
}

fn listener_with(name: &str, chains: Vec<Value>) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector"}],
        "filter_chains": chains
    })
}

#[tokio::test]
async fn upstream_tls_is_verified_by_ca_and_san() {
    let ca = Ca::new("mesh");
    let foreign = Ca::new("foreign");
    let leaf = ca.issue(&["echo.default.svc"], &[ECHO_ID]);
    let echo = TlsEcho::start("tls-echo", leaf.server_config(None, &[])).await;
    let names = ["good", "dns", "wrong-san", "foreign-ca", "unverified"];
    let clusters = json!([
        tls_cluster(
            "good",
            echo.address,
            json!({"sni": "echo.default.svc",
            "common_tls_context": {"validation_context": trusting(&ca, uri_san(ECHO_ID))}})
        ),
        tls_cluster(
            "dns",
            echo.address,
            json!({"common_tls_context": {"validation_context":
            trusting(&ca, json!([{"san_type": "DNS", "matcher": {"suffix": ".default.svc"}}]))}})
        ),
        tls_cluster(
            "wrong-san",
            echo.address,
            json!({"common_tls_context": {
            "validation_context": trusting(&ca, uri_san("spiffe://cluster.local/ns/default/sa/other"))}})
        ),
        tls_cluster(
            "foreign-ca",
            echo.address,
            json!({"common_tls_context": {
            "validation_context": trusting(&foreign, uri_san(ECHO_ID))}})
        ),
        tls_cluster("unverified", echo.address, json!({}))
    ]);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut listener = http_listener("http", by_prefix(&names));
    listener["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] = json!([{
        "name": "envoy.access_loggers.file",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": log.path(), "log_format": {"text_format_source": {"inline_string":
                "%REQ(:PATH)% %RESPONSE_FLAGS% %UPSTREAM_TRANSPORT_FAILURE_REASON%\n"}}}
    }]);
    let proxy = Proxy::start(&bootstrap(json!([listener]), clusters)).await;
    let address = proxy.listener("http");
    for ok in ["good", "dns", "unverified"] {
        let (status, body) = get(address, &format!("/{ok}/"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{ok}: {body}");
        assert_eq!(server_of(&body), "tls-echo");
    }
    for failing in ["wrong-san", "foreign-ca"] {
        let (status, _) = get(address, &format!("/{failing}/"), &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{failing}");
        let series =
            format!("envoy_cluster_upstream_cx_connect_fail{{envoy_cluster_name=\"{failing}\"}}");
        assert!(proxy.stat(&series).await >= 1, "{series}");
    }
    let handshakes = "envoy_cluster_ssl_handshake{envoy_cluster_name=\"good\"}";
    assert!(proxy.stat(handshakes).await >= 1);
    let san = "envoy_cluster_ssl_fail_verify_san{envoy_cluster_name=\"wrong-san\"}";
    assert!(proxy.stat(san).await >= 1);
    let chain = "envoy_cluster_ssl_fail_verify_error{envoy_cluster_name=\"foreign-ca\"}";
    assert!(proxy.stat(chain).await >= 1);
    let logged = wait_for_log(&log, "/foreign-ca/").await;
    let line = logged
        .lines()
        .find(|l| l.starts_with("/wrong-san/"))
        .unwrap();
    assert!(line.contains(" UF TLS error"), "{line}");
}

#[tokio::test]
async fn client_certificates_come_from_static_secrets() {
    let ca = Ca::new("mesh");
    let echo_leaf = ca.issue(&["echo"], &[ECHO_ID]);
    let echo = TlsEcho::start("mtls-echo", echo_leaf.server_config(Some(&ca), &[])).await;
    let client = ca.issue(&[], &[CLIENT_ID]);
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("cert.pem");
    std::fs::write(&cert_file, &client.cert).unwrap();
    let context = |certs: Value| {
        json!({"common_tls_context": {
            "tls_certificate_sds_secret_configs": certs,
            "validation_context_sds_secret_config": {"name": "ROOTCA"}}})
    };
    let mut config = bootstrap(
        json!([http_listener("http", by_prefix(&["mtls", "anonymous"]))]),
        json!([
            tls_cluster("mtls", echo.address, context(json!([{"name": "default"}]))),
            tls_cluster("anonymous", echo.address, context(json!([])))
        ]),
    );
    config["static_resources"]["secrets"] = json!([
        {"name": "default", "tls_certificate": {
            "certificate_chain": {"filename": cert_file},
            "private_key": {"inline_string": client.key}}},
        {"name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": ca.pem}}}
    ]);
    let proxy = Proxy::start(&config).await;
    let (status, body) = get(proxy.listener("http"), "/mtls/", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(echoed_header(&body, "x-tls-peer"), CLIENT_ID);
    let (status, _) = get(proxy.listener("http"), "/anonymous/", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

/// A sidecar pair: the client side originates mTLS with a SPIFFE
/// certificate (chosen by Istio's `tlsMode` transport socket match), the
/// server side requires it and logs the client's SPIFFE id.
#[tokio::test]
async fn a_proxy_pair_speaks_mtls_with_spiffe_ids() {
    let ca = Ca::new("cluster.local");
    let echo = Echo::start("app").await;
    let server_leaf = ca.issue(&[], &[SERVER_ID]);
    let client_leaf = ca.issue(&[], &[CLIENT_ID]);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut chain = tls_http_chain(
        "inbound",
        "app",
        json!({}),
        json!({
            "require_client_certificate": true,
            "common_tls_context": {
                "alpn_protocols": ["istio", "h2", "http/1.1"],
                "tls_certificates": [cert(&server_leaf)],
                "validation_context": trusting(&ca, json!([{"san_type": "URI", "matcher": {"prefix": "spiffe://cluster.local/"}}]))
            }
        }),
    );
    chain["filters"][0]["typed_config"]["access_log"] = json!([{
        "name": "envoy.access_loggers.file",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": log.path(), "log_format": {"text_format_source": {"inline_string": "peer=%DOWNSTREAM_PEER_URI_SAN%\n"}}}
    }]);
    // Istio's metrics on the server side report the caller's identity.
    chain["filters"][0]["typed_config"]["http_filters"] = json!([
        {"name": "istio.stats", "typed_config": {"@type": "type.googleapis.com/stats.PluginConfig"}},
        {"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    ]);
    // The application learns who called, as Istio's sidecars tell it.
    chain["filters"][0]["typed_config"]["forward_client_cert_details"] = json!("APPEND_FORWARD");
    chain["filters"][0]["typed_config"]["set_current_client_cert_details"] =
        json!({"subject": true, "dns": true, "uri": true});
    let mut inbound = listener_with("inbound", vec![chain]);
    inbound["traffic_direction"] = json!("INBOUND");
    let server = Proxy::start(&bootstrap(
        json!([inbound]),
        json!([cluster("app", &[echo.address])]),
    ))
    .await;

    let mut outbound = cluster("outbound", &[server.listener("inbound")]);
    outbound["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["metadata"] =
        json!({"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}});
    outbound["transport_socket_matches"] = json!([
        {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "transport_socket": upstream_tls(json!({
            "sni": "outbound_.80_._.server.default.svc.cluster.local",
            "common_tls_context": {
                "alpn_protocols": ["istio"],
                "tls_certificates": [cert(&client_leaf)],
                "combined_validation_context": {
                    "default_validation_context": {"match_typed_subject_alt_names": uri_san(SERVER_ID)},
                    "validation_context_sds_secret_config": {"name": "ROOTCA"}
                }
            }
        }))},
        {"name": "tlsMode-disabled", "match": {}, "transport_socket": {"name": "envoy.transport_sockets.raw_buffer"}}
    ]);
    let mut config = bootstrap(
        json!([http_listener("outbound", catch_all("outbound"))]),
        json!([outbound]),
    );
    config["static_resources"]["secrets"] = json!([{"name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": ca.pem}}}]);
    let client = Proxy::start(&config).await;

    // A header the application forged is dropped by its own sidecar
    // (SANITIZE, the default); the server's sidecar sets the real one.
    let forged = [(
        "x-forwarded-client-cert",
        "URI=spiffe://cluster.local/ns/x/sa/admin",
    )];
    let (status, body) = get(client.listener("outbound"), "/hello", &forged).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server_of(&body), "app");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        reply["headers"]["x-forwarded-client-cert"],
        format!(
            "By={SERVER_ID};Hash={};Subject=\"CN=rcgen self signed cert\";URI={CLIENT_ID}",
            client_leaf.fingerprint()
        )
    );
    let logged = wait_for_log(&log, "peer=").await;
    assert_eq!(logged.trim(), format!("peer={CLIENT_ID}"));
    let (_, metrics) = get(server.admin, "/stats/prometheus", &[]).await;
    let request = metrics
        .lines()
        .find(|l| l.starts_with("istio_requests_total{"))
        .unwrap_or_else(|| panic!("no istio_requests_total in {metrics}"));
    assert!(
        request.contains(&format!("source_principal=\"{CLIENT_ID}\""))
            && request.contains("connection_security_policy=\"mutual_tls\""),
        "{request}"
    );

    // Without a client certificate the server side refuses the handshake.
    let anonymous = TlsClient {
        sni: "server",
        alpn: &[],
        ca: &ca,
        identity: None,
    };
    let refused = anonymous.try_get(server.listener("inbound"), "/").await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
}

/// What the application behind a sidecar sees of `x-forwarded-client-cert`
/// under each `forward_client_cert_details` mode, when the caller's
/// sidecar passes on a header its application forged and connects with
/// mTLS. Istio's gateway details (with `cert`) go with `SANITIZE_SET`, its
/// sidecar details with the others.
#[tokio::test]
async fn client_cert_header_over_mtls_in_each_mode() {
    const MODES: [&str; 5] = [
        "SANITIZE",
        "FORWARD_ONLY",
        "APPEND_FORWARD",
        "SANITIZE_SET",
        "ALWAYS_FORWARD_ONLY",
    ];
    let ca = Ca::new("cluster.local");
    let echo = Echo::start("app").await;
    let server_leaf = ca.issue(&[], &[SERVER_ID]);
    let client_leaf = ca.issue(&["client.default.svc"], &[CLIENT_ID]);
    let server_tls = json!({
        "require_client_certificate": true,
        "common_tls_context": {
            "tls_certificates": [cert(&server_leaf)],
            "validation_context": {"trusted_ca": {"inline_string": ca.pem}}
        }
    });
    let inbound: Vec<Value> = MODES
        .iter()
        .map(|mode| {
            let mut chain = tls_http_chain(mode, "app", json!({}), server_tls.clone());
            let hcm = &mut chain["filters"][0]["typed_config"];
            hcm["forward_client_cert_details"] = json!(mode);
            hcm["set_current_client_cert_details"] = match *mode {
                "SANITIZE_SET" => json!({"subject": true, "cert": true, "dns": true, "uri": true}),
                _ => json!({"subject": true, "dns": true, "uri": true}),
            };
            listener_with(mode, vec![chain])
        })
        .collect();
    let server = Proxy::start(&bootstrap(
        json!(inbound),
        json!([cluster("app", &[echo.address])]),
    ))
    .await;
    let client_tls = json!({"common_tls_context": {
        "tls_certificates": [cert(&client_leaf)],
        "validation_context": trusting(&ca, uri_san(SERVER_ID))}});
    let clusters: Vec<Value> = MODES
        .iter()
        .map(|mode| tls_cluster(mode, server.listener(mode), client_tls.clone()))
        .collect();
    let mut outbound = http_listener("outbound", by_prefix(&MODES));
    outbound["filter_chains"][0]["filters"][0]["typed_config"]["forward_client_cert_details"] =
        json!("ALWAYS_FORWARD_ONLY");
    let client = Proxy::start(&bootstrap(json!([outbound]), json!(clusters))).await;

    let forged = "By=spiffe://cluster.local/ns/x/sa/x;URI=spiffe://cluster.local/ns/x/sa/admin";
    let (by, hash) = (SERVER_ID, client_leaf.fingerprint());
    let about_client =
        format!("Subject=\"CN=rcgen self signed cert\";URI={CLIENT_ID};DNS=client.default.svc");
    // Envoy's URL encoding of PEM.
    let pem = [
        ("\n", "%0A"),
        (" ", "%20"),
        ("+", "%2B"),
        ("/", "%2F"),
        ("=", "%3D"),
    ]
    .iter()
    .fold(client_leaf.cert.clone(), |text, (from, to)| {
        text.replace(from, to)
    });
    let expected = [
        String::new(),
        forged.to_owned(),
        format!("{forged},By={by};Hash={hash};{about_client}"),
        format!("By={by};Hash={hash};Cert=\"{pem}\";{about_client}"),
        forged.to_owned(),
    ];
    for (mode, expected) in MODES.iter().zip(expected) {
        let sent = [("x-forwarded-client-cert", forged)];
        let (status, body) = get(client.listener("outbound"), &format!("/{mode}/"), &sent).await;
        assert_eq!(status, StatusCode::OK, "{mode}: {body}");
        assert_eq!(
            echoed_header(&body, "x-forwarded-client-cert"),
            expected,
            "{mode}"
        );
    }
}

#[tokio::test]
async fn alpn_h2_is_spoken_on_both_sides() {
    let ca = Ca::new("mesh");
    let echo_leaf = ca.issue(&["echo"], &[]);
    let echo = TlsEcho::start("h2-echo", echo_leaf.server_config(None, &["h2"])).await;
    let mut upstream = tls_cluster(
        "h2",
        echo.address,
        json!({"common_tls_context": {
        "alpn_protocols": ["h2"], "validation_context": {"trusted_ca": {"inline_string": ca.pem}}}}),
    );
    upstream["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}});
    let front = ca.issue(&["front.example.com"], &[]);
    let chain = tls_http_chain(
        "front",
        "h2",
        json!({}),
        json!({"common_tls_context": {
        "alpn_protocols": ["h2", "http/1.1"], "tls_certificates": [cert(&front)]}}),
    );
    let proxy = Proxy::start(&bootstrap(
        json!([listener_with("front", vec![chain])]),
        json!([upstream]),
    ))
    .await;
    let address = proxy.listener("front");
    for (offered, expected) in [
        (&["h2", "http/1.1"][..], "h2"),
        (&["http/1.1"][..], "http/1.1"),
    ] {
        let client = TlsClient {
            sni: "front.example.com",
            alpn: offered,
            ca: &ca,
            identity: None,
        };
        let (status, body, negotiated) = client.get(address, "/").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(negotiated, expected);
        assert_eq!(echoed_header(&body, "x-tls-alpn"), "h2");
    }
}

#[tokio::test]
async fn tcp_proxy_reaches_a_tls_upstream() {
    let ca = Ca::new("mesh");
    let leaf = ca.issue(&["echo"], &[ECHO_ID]);
    let echo = TlsEcho::start("tcp-tls-echo", leaf.server_config(None, &[])).await;
    let proxy = Proxy::start(&bootstrap(
        json!([tcp_listener("tcp", "tls")]),
        json!([tls_cluster(
            "tls",
            echo.address,
            json!({"common_tls_context": {
            "validation_context": trusting(&ca, uri_san(ECHO_ID))}})
        )]),
    ))
    .await;
    let (status, body) = get(proxy.listener("tcp"), "/through", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server_of(&body), "tcp-tls-echo");
}

#[tokio::test]
async fn chains_are_chosen_by_sni_and_alpn() {
    let ca = Ca::new("mesh");
    let (a, b, h2) = (
        Echo::start("a").await,
        Echo::start("b").await,
        Echo::start("h2").await,
    );
    let leaf = ca.issue(&["a.example.com", "*.b.example.com", "c.example.com"], &[]);
    let context = |alpn: &[&str]| json!({"common_tls_context": {"alpn_protocols": alpn, "tls_certificates": [cert(&leaf)]}});
    let chains = vec![
        tls_http_chain(
            "a",
            "a",
            json!({"server_names": ["a.example.com"]}),
            context(&[]),
        ),
        tls_http_chain(
            "b",
            "b",
            json!({"server_names": ["*.b.example.com"]}),
            context(&[]),
        ),
        tls_http_chain(
            "h2",
            "h2",
            json!({"server_names": ["c.example.com"], "application_protocols": ["h2"]}),
            context(&["h2"]),
        ),
        tls_http_chain(
            "h1",
            "a",
            json!({"server_names": ["c.example.com"]}),
            context(&["http/1.1"]),
        ),
    ];
    let proxy = Proxy::start(&bootstrap(
        json!([listener_with("gateway", chains)]),
        json!([
            cluster("a", &[a.address]),
            cluster("b", &[b.address]),
            cluster("h2", &[h2.address])
        ]),
    ))
    .await;
    let address = proxy.listener("gateway");
    let served = |sni: &'static str, alpn: &'static [&'static str]| {
        let ca = &ca;
        async move {
            let (status, body, _) = TlsClient {
                sni,
                alpn,
                ca,
                identity: None,
            }
            .get(address, "/")
            .await;
            assert_eq!(status, StatusCode::OK, "{sni}: {body}");
            server_of(&body)
        }
    };
    assert_eq!(served("a.example.com", &[]).await, "a");
    assert_eq!(served("x.b.example.com", &[]).await, "b");
    assert_eq!(served("c.example.com", &["h2"]).await, "h2");
    assert_eq!(served("c.example.com", &["http/1.1"]).await, "a");
}

#[tokio::test]
async fn garbage_on_a_tls_listener_is_closed_and_the_proxy_lives() {
    let ca = Ca::new("mesh");
    let echo = Echo::start("app").await;
    let leaf = ca.issue(&["app.example.com"], &[]);
    let chain = tls_http_chain(
        "tls",
        "app",
        json!({"transport_protocol": "tls"}),
        json!({"common_tls_context": {"tls_certificates": [cert(&leaf)]}}),
    );
    let proxy = Proxy::start(&bootstrap(
        json!([listener_with("tls", vec![chain])]),
        json!([cluster("app", &[echo.address])]),
    ))
    .await;
    let address = proxy.listener("tls");
    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        &[0x16, 3, 1, 0, 8, 1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef],
        &[
            0x16, 3, 3, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
        ],
    ];
    for bytes in garbage {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(WITHIN, stream.read(&mut buffer)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the connection stayed open after {bytes:?}"
        );
    }
    let client = TlsClient {
        sni: "app.example.com",
        alpn: &[],
        ca: &ca,
        identity: None,
    };
    let (status, body, _) = client.get(address, "/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The log file's text once it holds `needle`.
async fn wait_for_log(log: &tempfile::NamedTempFile, needle: &str) -> String {
    support::eventually(async || {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        match text.contains(needle) {
            true => Ok(text),
            false => Err(format!("{needle:?} never logged: {text:?}")),
        }
    })
    .await
}
