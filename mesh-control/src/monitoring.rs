//! The monitoring server (istiod's port 15014):
//!
//! - `GET /ready`: 200 once a snapshot is being served.
//! - `GET /metrics`: Prometheus text ([`crate::metrics`]).
//! - `GET /debug/syncz[?namespace=NS]`: each connected proxy's sync status,
//!   shaped like istiod's (what `meshctl proxy-status` prints).
//! - `GET /debug/config_dump?proxyID=ID`: the resources last sent to a proxy
//!   (node id or `<pod>.<namespace>`), as Envoy's admin `ConfigDump` JSON.
//! - `GET /debug/config_problems`: what the config sources left out and why
//!   (invalid files, resources defined twice), and the served config that
//!   cannot be honoured (CUSTOM AuthorizationPolicies whose authorizer
//!   cannot be asked, for the snapshot served and the proxies connected),
//!   as a JSON list.
//! - `/api/...`: handed to an [`ApiHandler`] when one is given (the config
//!   API that `meshctl apply` talks to); 404 otherwise.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use mesh_api::load::Problem;
use mesh_api::validate::Path;

use crate::metrics::Metrics;
use crate::store::{ConfigSet, ConfigSource};
use crate::translate;
use crate::xds::{self, Connections, Push, stopped};

/// The response of an [`ApiHandler`].
pub type ApiFuture = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// Serves the requests under `/api/` (the whole request, path included).
pub trait ApiHandler: Send + Sync + 'static {
    fn handle(&self, request: Request<Incoming>) -> ApiFuture;
}

impl<F, Fut> ApiHandler for F
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    fn handle(&self, request: Request<Incoming>) -> ApiFuture {
        Box::pin(self(request))
    }
}

/// What the monitoring pages read.
pub struct Monitoring {
    pub connections: Arc<Connections>,
    pub metrics: Arc<Metrics>,
    pub pushes: watch::Receiver<Push>,
    pub api: Option<Arc<dyn ApiHandler>>,
    /// In order of precedence, as the snapshot merges them.
    pub config_sources: Vec<Arc<dyn ConfigSource>>,
}

impl std::fmt::Debug for Monitoring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitoring")
            .field("connections", &self.connections.len())
            .field("api", &self.api.is_some())
            .field("config_sources", &self.config_sources.len())
            .finish_non_exhaustive()
    }
}

/// Serves the pages until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<Monitoring>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "monitoring accept failed");
                    continue;
                }
            },
            () = stopped(&mut shutdown) => return,
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(page(&state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn page(state: &Monitoring, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path().starts_with("/api/") {
        return match &state.api {
            Some(api) => api.handle(request).await,
            None => text(
                StatusCode::NOT_FOUND,
                "no config API is served here\n".into(),
            ),
        };
    }
    if request.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served\n".into(),
        );
    }
    let query = request.uri().query().unwrap_or_default();
    match request.uri().path() {
        "/ready" => text(StatusCode::OK, "ready\n".into()),
        "/metrics" => {
            state
                .metrics
                .set_services(state.pushes.borrow().snapshot.services.len());
            let mut response = text(StatusCode::OK, state.metrics.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/debug/syncz" => {
            let mut statuses = xds::syncz(&state.connections);
            if let Some(namespace) = query_param(query, "namespace") {
                statuses.retain(|s| s.namespace == namespace);
            }
            json(&serde_json::to_value(statuses).unwrap_or_default())
        }
        "/debug/config_dump" => config_dump(state, query).await,
        "/debug/config_problems" => json(&config_problems(state)),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

async fn config_dump(state: &Monitoring, query: &str) -> Response<Full<Bytes>> {
    let Some(proxy_id) = query_param(query, "proxyID") else {
        return text(StatusCode::BAD_REQUEST, "proxyID is required\n".into());
    };
    let Some(dump) = xds::config_dump(&state.connections, &proxy_id) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("config dump could not find connection for proxyID {proxy_id:?}\n"),
        );
    };
    // Writing JSON decodes the descriptor pool: work for a blocking thread.
    match tokio::task::spawn_blocking(move || mesh_api::envoy::to_json(&dump)).await {
        Ok(Ok(value)) => json(&value),
        Ok(Err(err)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")),
        Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")),
    }
}

/// The problems of every source, of resources two sources both define, as
/// the snapshot sees them (the config they name is not being served), and
/// of policies served that cannot be honoured.
fn config_problems(state: &Monitoring) -> serde_json::Value {
    let sets: Vec<Arc<ConfigSet>> = state.config_sources.iter().map(|s| s.current()).collect();
    let merged = ConfigSet::merge(sets.iter().map(AsRef::as_ref));
    let snapshot = Arc::clone(&state.pushes.borrow().snapshot);
    let served = translate::authorization_problems(&snapshot, &state.connections.proxies());
    merged
        .problems
        .iter()
        .cloned()
        .chain(served.into_iter().map(|p| policy_problem(p, &merged)))
        .map(|problem| {
            serde_json::json!({
                "file": problem.file,
                "line": problem.line,
                "subject": problem.subject,
                "path": problem.path.as_ref().map(ToString::to_string),
                "reason": problem.reason,
                "message": problem.to_string(),
            })
        })
        .collect()
}

/// A policy's problem, placed where its source read it.
fn policy_problem(problem: translate::PolicyProblem, set: &ConfigSet) -> Problem {
    let kind = "AuthorizationPolicy";
    let source = set.entries.iter().find(|entry| {
        let key = crate::store::Key::of(&entry.resource);
        key.kind == kind && key.namespace == problem.namespace && key.name == problem.name
    });
    let path = problem
        .field
        .split('.')
        .fold(Path::root(), |path, field| path.field(field));
    Problem {
        file: source.map(|e| e.source.file.clone()).unwrap_or_default(),
        line: source.map_or(0, |e| e.source.line),
        subject: Some(format!("{kind} {}/{}", problem.namespace, problem.name)),
        path: Some(path),
        reason: problem.reason,
    }
}

/// The first value of `name` in a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    let mut response = text(StatusCode::OK, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let query = "namespace=default&proxyID=sidecar%7E10.0.0.1%7Eapp.default%7Edefault.svc.cluster.local";
        assert_eq!(
            query_param(query, "proxyID").as_deref(),
            Some("sidecar~10.0.0.1~app.default~default.svc.cluster.local")
        );
        assert_eq!(query_param(query, "namespace").as_deref(), Some("default"));
        assert_eq!(query_param(query, "other"), None);
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
