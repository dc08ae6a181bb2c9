//! The admin server (Envoy's port 15000): readiness, stats, config dump,
//! listener addresses, cluster endpoints (`/clusters`), the workload
//! certificate (`/certs`), the log level (`/logging`), and `/quitquitquit`.

mod certs;
mod clusters;

use std::convert::Infallible;
use std::fmt::Write;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::HttpAccess;
use crate::drain::{Drain, Trigger};
use crate::identity::CertificateProvider;
use crate::live::Live;
use crate::logging::{self, LogControl};
use crate::stats::ClusterStats;
use crate::xds;

/// What the admin pages show.
#[derive(Debug)]
pub struct AdminState {
    pub bootstrap: Bootstrap,
    /// The current listeners and clusters.
    pub live: Arc<Live>,
    /// What the control plane sent, when there is one.
    pub xds: Option<Arc<ArcSwap<xds::dump::Snapshot>>>,
    /// Istio's standard metrics.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// The workload certificate's provider, with a CA.
    pub identity: Option<Arc<CertificateProvider>>,
    pub trigger: Trigger,
    /// Changes the log filter (`/logging`), when the process allows it.
    pub log: Option<Arc<dyn LogControl>>,
}

/// Serves the admin pages until the drain starts.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, drain: Drain) {
    let mut drained = std::pin::pin!(drain.started());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => { tracing::warn!(error = %err, "admin accept failed"); continue; }
            },
            () = drained.as_mut() => return,
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(page(&state, &request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn page(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        // Envoy's server state: LIVE once the first whole config is served
        // and, with a CA, the workload certificate has come.
        (&Method::GET, "/ready" | "/healthz/ready") => match ready(state) {
            true => text(StatusCode::OK, "LIVE\n".into()),
            false => text(StatusCode::SERVICE_UNAVAILABLE, "INITIALIZING\n".into()),
        },
        (&Method::GET, "/listeners") => {
            let mut out = String::new();
            for (name, address) in &state.live.view().listeners {
                let _ = writeln!(out, "{name}::{address}");
            }
            text(StatusCode::OK, out)
        }
        (&Method::GET, "/stats/prometheus") => text(StatusCode::OK, prometheus(state)),
        (&Method::GET, "/config_dump") => {
            let include_eds = has_param(request, "include_eds");
            let snapshot = state.xds.as_ref().map(|xds| xds.load_full());
            match xds::dump::render(&state.bootstrap, snapshot.as_deref(), include_eds) {
                Ok(json) => json_response(serde_json::to_string_pretty(&json).unwrap_or_default()),
                Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")),
            }
        }
        (&Method::GET, "/certs") => json_response(
            serde_json::to_string_pretty(&certs::json(state.identity.as_deref()))
                .unwrap_or_default(),
        ),
        (&Method::GET, "/clusters") => {
            let upstreams = Arc::clone(&state.live.view().upstreams);
            if !has_param(request, "format=json") {
                return text(StatusCode::OK, clusters::text(&upstreams));
            }
            match clusters::json(&upstreams) {
                Ok(body) => json_response(body),
                Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")),
            }
        }
        (method @ (&Method::GET | &Method::POST), "/logging") => {
            let (status, body) = logging::page(
                state.log.as_deref(),
                method == Method::POST,
                request.uri().query(),
            );
            text(status, body)
        }
        (&Method::POST, "/quitquitquit") => {
            state.trigger.start();
            text(StatusCode::OK, "OK\n".into())
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn ready(state: &AdminState) -> bool {
    state.live.is_ready()
        && state
            .identity
            .as_ref()
            .is_none_or(|provider| provider.has_certificate())
}

/// Whether the query has this parameter (`name` or `name=value`).
fn has_param(request: &Request<Incoming>, param: &str) -> bool {
    request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == param || p.split_once('=').is_some_and(|(name, _)| name == param))
    })
}

fn prometheus(state: &AdminState) -> String {
    let mut out = String::new();
    let view = state.live.view();
    for (name, upstream) in view.upstreams.iter() {
        upstream.stats.render(name, &mut out);
        ClusterStats::render_membership(name, upstream.balancer.membership(), &mut out);
    }
    for http in &view.http {
        let prefix = &http.manager.stat_prefix;
        http.stats.render(prefix, &mut out);
        let access = &http.manager.access;
        if access.iter().any(|f| matches!(f, HttpAccess::ExtAuthz(_))) {
            http.stats.ext_authz.render(prefix, &mut out);
        }
    }
    state.telemetry.metrics.render(&mut out);
    state.telemetry.tracer.queue.stats.render(&mut out);
    if let Some(provider) = &state.identity {
        provider.render_metrics(&mut out);
    }
    out
}

fn json_response(body: String) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::OK, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
