//! A CUSTOM AuthorizationPolicy has `reviews`' sidecar ask an external
//! authorizer (a MeshConfig `envoyExtAuthzHttp` provider) about some paths,
//! and an AUDIT policy changes no decision.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::mesh::{Ca, ControlPlane, Http, Identity, V1Only, app, serve, workspace, write_config};

/// What the authorizer answers a denied request with.
const AUTHORIZER_DENIES: &str = "denied by the authorizer";

/// An HTTP authorizer: 200 for requests with `x-allow: yes`, else 403;
/// counts what it is asked.
async fn authorizer(asked: Arc<AtomicU64>) -> SocketAddr {
    serve(move |request| {
        asked.fetch_add(1, Ordering::Relaxed);
        match request.headers().get("x-allow").is_some_and(|v| v == "yes") {
            true => (200, String::new()),
            false => (403, AUTHORIZER_DENIES.to_owned()),
        }
    })
    .await
}

/// The authorizer as a service of the registry, and the policies: CUSTOM
/// on `/admin/*` of `reviews`, AUDIT on everything.
fn authorization_config(authorizer: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext-authz, namespace: default}}
spec:
  hosts: [ext-authz.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8000, name: http, protocol: HTTP}}]
  endpoints: [{{address: {ip}, ports: {{http: {port}}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: admin, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: CUSTOM
  provider: {{name: ext-authz}}
  rules:
  - to: [{{operation: {{paths: ['/admin/*']}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: audit-everything, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: AUDIT
  rules:
  - {{}}
",
        ip = authorizer.ip(),
        port = authorizer.port()
    )
}

const EXT_AUTHZ_MESH: &str = "extensionProviders:
- name: ext-authz
  envoyExtAuthzHttp:
    service: ext-authz.default.svc.cluster.local
    port: 8000
    timeout: 5s
    includeRequestHeadersInCheck: [x-allow]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_policy_asks_the_external_authorizer() {
    let (dir, config_dir) = workspace();
    let mesh = V1Only::write(&config_dir, app("v1").await);
    let asked = Arc::new(AtomicU64::new(0));
    let authorizer = authorizer(Arc::clone(&asked)).await;
    let authorization = authorization_config(authorizer);
    write_config(&config_dir, "authz.yaml", &authorization);
    let mesh_file = dir.path().join("meshconfig.yaml");
    std::fs::write(&mesh_file, EXT_AUTHZ_MESH).unwrap();
    let flags = ["--mesh-config", mesh_file.to_str().unwrap()];
    let plane = ControlPlane::start_with(dir.path(), 0, 0, &flags).await;
    let ca = Ca::new();
    let mut proxies = mesh.sidecars(dir.path(), &Identity::Static(&ca), plane.xds);
    let http = Http::new();
    mesh.wait_for_v1(&http, &mut proxies, "v1 through the client sidecar")
        .await;
    assert_eq!(
        asked.load(Ordering::Relaxed),
        0,
        "paths outside the CUSTOM policy are not put to the authorizer"
    );

    assert_eq!(
        mesh.get(&http, "/admin/users", &[]).await,
        Ok((403, AUTHORIZER_DENIES.into()))
    );
    assert_eq!(
        mesh.get(&http, "/admin/users", &[("x-allow", "yes")]).await,
        Ok((200, "v1".into()))
    );
    assert_eq!(asked.load(Ordering::Relaxed), 2);
    // The AUDIT policy matches every request and refuses none.
    for _ in 0..5 {
        assert_eq!(
            mesh.get(&http, "/reviews/0", &[]).await,
            Ok((200, "v1".into()))
        );
    }
    for proxy in &mut proxies {
        proxy.assert_alive("a sidecar");
    }
}
