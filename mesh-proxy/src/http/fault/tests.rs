use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::{abort_reply, chance, for_request, inject};
use crate::config::{AbortStatus, Fault, FaultAbort, FaultDelay, ListenerKind, Route};
use crate::stats::ListenerStats;
use crate::testing::{compile, http_bootstrap};

fn abort(status: AbortStatus, per_million: u32) -> FaultAbort {
    FaultAbort {
        status,
        body: "fault filter abort".into(),
        per_million,
    }
}

async fn body_of(response: http::Response<crate::http::Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn http_abort_has_the_status_and_body() {
    let response = abort_reply(&abort(AbortStatus::Http(StatusCode::IM_A_TEAPOT), 1));
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(body_of(response).await, "fault filter abort");
}

#[tokio::test]
async fn grpc_abort_is_trailers_only() {
    let response = abort_reply(&abort(AbortStatus::Grpc(14), 1));
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], "14");
    assert_eq!(headers["grpc-message"], "fault filter abort");
    assert_eq!(body_of(response).await, "");
}

#[test]
fn chances() {
    assert!((0..10_000).all(|_| !chance(0)));
    assert!((0..10_000).all(|_| chance(1_000_000)));
    let hits = (0..100_000).filter(|_| chance(250_000)).count();
    assert!((23_000..27_000).contains(&hits), "{hits} of 100000 at 25%");
}

#[test]
fn the_route_override_wins() {
    let typed = |status: u32| {
        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "abort": {"http_status": status, "percentage": {"numerator": 100}}})
    };
    let route = |path: &str, per_route: Value| json!({"match": {"path": path}, "route": {"cluster": "a"}, "typed_per_filter_config": per_route});
    let mut bootstrap = http_bootstrap(
        json!([{"name": "all", "domains": ["*"], "routes": [
            route("/override", json!({"envoy.filters.http.fault": typed(500)})),
            route("/off", json!({"envoy.filters.http.fault": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}})),
            route("/default", json!({}))
        ]}]),
        &["a"],
    );
    let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    let with_filter = json!([{"name": "envoy.filters.http.fault", "typed_config": typed(503)}, hcm["http_filters"][0]]);
    let without_filter = hcm["http_filters"].clone();
    hcm["http_filters"] = with_filter;
    let config = compile(&bootstrap).unwrap();
    let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
        panic!()
    };
    let routes = &manager.routes.virtual_hosts[0].routes;
    let status = |route: Option<&Route>| {
        let fault = for_request(manager, route)?;
        Some(fault.abort.as_ref().map(|a| a.status))
    };
    let http = |code| Some(Some(AbortStatus::Http(StatusCode::from_u16(code).unwrap())));
    assert_eq!(status(Some(&routes[0])), http(500));
    assert_eq!(
        status(Some(&routes[1])),
        Some(None),
        "an empty override turns faults off"
    );
    assert_eq!(status(Some(&routes[2])), http(503));
    assert_eq!(
        status(None),
        http(503),
        "the filter's own fault applies without a route"
    );

    bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"] = without_filter;
    let config = compile(&bootstrap).unwrap();
    let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
        panic!()
    };
    let routes = &manager.routes.virtual_hosts[0].routes;
    assert_eq!(
        for_request(manager, Some(&routes[0])),
        None,
        "overrides need the filter, as in Envoy"
    );
}

#[tokio::test]
async fn inject_counts_what_it_does() {
    let stats = ListenerStats::default();
    let fault = Fault {
        delay: Some(FaultDelay {
            delay: Duration::from_millis(20),
            per_million: 1_000_000,
        }),
        abort: Some(abort(AbortStatus::Http(StatusCode::SERVICE_UNAVAILABLE), 0)),
    };
    let started = std::time::Instant::now();
    assert!(inject(Some(&fault), &stats).await.abort.is_none());
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert!(inject(None, &stats).await.abort.is_none());

    let fault = Fault {
        delay: None,
        abort: Some(abort(
            AbortStatus::Http(StatusCode::SERVICE_UNAVAILABLE),
            1_000_000,
        )),
    };
    let response = inject(Some(&fault), &stats).await.abort.expect("an abort");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stats.fault_delays_injected.load(Ordering::Relaxed), 1);
    assert_eq!(stats.fault_aborts_injected.load(Ordering::Relaxed), 1);
}
