use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::*;

const KEYS: &str = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;

/// An issuer on loopback: `/keys`, its discovery document, and `/broken`.
async fn issuer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let (status, body) = match request.uri().path() {
                    "/keys" => (StatusCode::OK, KEYS.to_owned()),
                    "/.well-known/openid-configuration" => (
                        StatusCode::OK,
                        format!(r#"{{"jwks_uri":"http://{address}/keys"}}"#),
                    ),
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                };
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn key_sets_come_by_url_or_by_discovery_and_failures_say_why() {
    let address = issuer().await;
    let timeout = Duration::from_secs(10);
    let direct = fetch(&format!("http://{address}/keys"), timeout)
        .await
        .unwrap();
    assert_eq!(direct, KEYS);
    let discovered = fetch(&format!("http://{address}{OPENID_DISCOVERY}"), timeout)
        .await
        .unwrap();
    assert_eq!(discovered, KEYS);
    let err = fetch(&format!("http://{address}/broken"), timeout)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    let err = fetch("ftp://example/keys", timeout).await.unwrap_err();
    assert!(matches!(err, FetchError::Url(_)), "{err}");
}

fn snapshot(address: SocketAddr) -> Arc<MeshSnapshot> {
    let yaml = format!(
        "\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: default}}
spec:
  jwtRules:
  - issuer: http://{address}
    timeout: 2s
  - issuer: https://broken.example
    jwksUri: http://{address}/broken
  - issuer: inline
    jwks: '{KEYS}'
"
    );
    Arc::new(MeshSnapshot {
        config: crate::translate::tests::config(&yaml),
        ..MeshSnapshot::default()
    })
}

#[tokio::test]
async fn followed_snapshots_get_the_keys_they_name() {
    let address = issuer().await;
    let snapshot = snapshot(address);
    let wanted = wanted(&snapshot);
    let discovery = format!("http://{address}{OPENID_DISCOVERY}");
    let broken = format!("http://{address}/broken");
    assert_eq!(
        wanted.keys().collect::<Vec<_>>(),
        [&discovery, &broken],
        "inline keys need no fetch"
    );
    assert_eq!(
        wanted[&discovery],
        (Duration::from_secs(2), "default/jwt".to_owned())
    );

    let (_snapshots, following) = watch::channel(snapshot);
    let (keys, mut fetched) = watch::channel(Arc::<FetchedJwks>::default());
    let task = tokio::spawn(follow(following, keys));
    tokio::time::timeout(Duration::from_secs(20), fetched.changed())
        .await
        .expect("keys in time")
        .unwrap();
    let keys = fetched.borrow().clone();
    assert_eq!(
        keys.0.get(&discovery).map(|k| k.to_string()),
        Some(KEYS.to_owned())
    );
    assert!(
        !keys.0.contains_key(&broken),
        "a failed fetch gives no keys"
    );
    task.abort();
}
