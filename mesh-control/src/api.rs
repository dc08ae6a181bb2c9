//! The control plane's config API, which `meshctl apply`, `delete` and `get`
//! speak. It is mounted on the monitoring server under `/api/v1/`:
//!
//! | request | does |
//! |---|---|
//! | `POST /api/v1/config?source=NAME` with YAML or JSON | creates or replaces every resource, or none if any is invalid |
//! | `DELETE /api/v1/config?source=NAME` with YAML or JSON | deletes the resources the documents name |
//! | `GET /api/v1/config/KIND?namespace=NS&output=json\|yaml` | lists a kind, in one namespace or all |
//! | `GET /api/v1/config/KIND/NS/NAME?output=json\|yaml` | one resource |
//! | `DELETE /api/v1/config/KIND/NS/NAME` | deletes one resource |
//!
//! `KIND` is any name kubectl would take: `VirtualService`,
//! `virtualservices`, `vs`, `virtualservices.networking.istio.io`. `source`
//! names the input in problems (a file name; `request` when absent).
//! Applies and deletes answer with one line per resource, as kubectl prints
//! them (`virtualservice.networking.istio.io/reviews created`). Invalid input
//! is refused with 400 and the same messages as `meshctl validate`, one per
//! line. Lists are a Kubernetes `List`, JSON unless `output=yaml`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::store::{Changes, Key, KindName, MemoryStore, Outcome};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the API lives on the server.
pub const PREFIX: &str = "/api/v1/";

/// The largest request body accepted.
const MAX_BODY: usize = 16 << 20;

/// Answers one request to the config API.
pub async fn handle<B>(store: &MemoryStore, request: Request<B>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let query = Query::parse(request.uri().query().unwrap_or_default());
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/api/v1/config") else {
        return text(StatusCode::NOT_FOUND, format!("no such API path: {path}"));
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let method = request.method().clone();
    match (method, parts.as_slice()) {
        (Method::POST, []) | (Method::DELETE, []) => {
            let deleting = request.method() == Method::DELETE;
            let body = match read_body(request.into_body()).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let source = query.get("source").unwrap_or("request");
            let result = if deleting {
                store.delete_yaml(source, &body)
            } else {
                store.apply_yaml(source, &body)
            };
            match result {
                Ok(changes) => changes_response(&changes),
                Err(refused) => text(StatusCode::BAD_REQUEST, format!("{refused}\n")),
            }
        }
        (Method::GET, [kind]) => {
            let Some(kind) = KindName::find(kind) else {
                return unknown_kind(kind);
            };
            let items: Vec<Value> = store
                .list(&kind.kind, query.get("namespace"))
                .iter()
                .map(|r| object(r))
                .collect();
            let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
            render(&list, query.get("output"))
        }
        (Method::GET, [kind, namespace, name]) | (Method::DELETE, [kind, namespace, name]) => {
            let Some(kind) = KindName::find(kind) else {
                return unknown_kind(kind);
            };
            let key = Key {
                kind: kind.kind.clone(),
                namespace: (*namespace).to_owned(),
                name: (*name).to_owned(),
            };
            if request.method() == Method::DELETE {
                let applied = store.delete(&key);
                return changes_response(&Changes {
                    applied: vec![applied],
                    passed_over: Vec::new(),
                });
            }
            match store.get(&key) {
                Some(resource) => render(&object(&resource), query.get("output")),
                None => text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "{}/{} not found in namespace {}\n",
                        kind.qualified(),
                        name,
                        namespace
                    ),
                ),
            }
        }
        (_, [] | [_] | [_, _, _]) => text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on {path}", request.method()),
        ),
        _ => text(StatusCode::NOT_FOUND, format!("no such API path: {path}")),
    }
}

/// A resource as a Kubernetes object, with its namespace always written.
fn object(resource: &mesh_api::Resource) -> Value {
    let mut value = resource.to_value();
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata
            .entry("namespace")
            .or_insert_with(|| resource.namespace().into());
    }
    value
}

/// One line per resource; 404 when something to delete was not there.
fn changes_response(changes: &Changes) -> Response<Full<Bytes>> {
    let mut body = String::new();
    for applied in &changes.applied {
        body.push_str(&format!("{applied}\n"));
    }
    for skipped in &changes.passed_over {
        body.push_str(&format!(
            "{}:{}: {} {} passed over: not a kind the mesh's config store holds\n",
            skipped.source.file, skipped.source.line, skipped.api_version, skipped.kind
        ));
    }
    let missing = changes
        .applied
        .iter()
        .any(|a| a.outcome == Outcome::NotFound);
    let status = if missing {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    text(status, body)
}

fn render(value: &Value, output: Option<&str>) -> Response<Full<Bytes>> {
    match output {
        None | Some("json") => {
            let body = serde_json::to_string_pretty(value).expect("JSON values serialize") + "\n";
            respond(StatusCode::OK, "application/json", body)
        }
        Some("yaml") => respond(
            StatusCode::OK,
            "application/yaml",
            mesh_api::emit::to_yaml(value),
        ),
        Some(other) => text(
            StatusCode::BAD_REQUEST,
            format!("unknown output format {other:?}; use json or yaml\n"),
        ),
    }
}

fn unknown_kind(kind: &str) -> Response<Full<Bytes>> {
    text(
        StatusCode::NOT_FOUND,
        format!("the server doesn't have a resource type {kind:?}\n"),
    )
}

async fn read_body<B>(body: B) -> Result<String, Response<Full<Bytes>>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return Err(text(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body (at most {MAX_BODY} bytes): {err}\n"),
            ));
        }
    };
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        text(
            StatusCode::BAD_REQUEST,
            "the request body is not UTF-8\n".into(),
        )
    })
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A URL query string, percent-decoded.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Query {
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        Query(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Decodes `%XX` escapes and `+` (a space, in a form-encoded query).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let query = Query::parse("source=%2Ftmp%2Fa+b.yaml&namespace=&output=yaml");
        assert_eq!(query.get("source"), Some("/tmp/a b.yaml"));
        assert_eq!(query.get("namespace"), None);
        assert_eq!(query.get("output"), Some("yaml"));
        assert_eq!(percent_decode("100%"), "100%");
    }
}
