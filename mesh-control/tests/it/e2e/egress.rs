//! Egress as Istio's tasks set it up: an external service declared by a
//! ServiceEntry with `resolution: DNS`, reached through the client's
//! sidecar, which looks its host up itself.

use std::collections::BTreeMap;

use super::mesh::{
    Ca, ControlPlane, Http, Identity, app, client_sidecar, loopback_ips, sidecar, wait_for,
    workspace, write_config,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_service_entry_is_reached_through_the_sidecar() {
    let (dir, config_dir) = workspace();
    let client_ip = loopback_ips(1)[0];
    let external = app("external").await;
    let port = external.port();
    // The endpoint is a host name the sidecar looks up (to 127.0.0.1).
    let config = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external, namespace: default}}
spec:
  hosts: [external.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  endpoints: [{{address: localhost}}]
---
{}",
        client_sidecar(client_ip, port, "external.test")
    );
    write_config(&config_dir, "egress.yaml", &config);
    let plane = ControlPlane::start(dir.path(), 0, 0).await;
    let ca = Ca::new();
    let labels = BTreeMap::from([("app", "client")]);
    let mut client = sidecar(
        dir.path(),
        "client",
        client_ip,
        &labels,
        &Identity::Static(&ca),
        plane.xds,
    );
    let http = Http::new();
    let url = format!("http://{client_ip}:{port}/");
    let host = format!("external.test:{port}");
    wait_for("the external service through the sidecar", async || {
        client.assert_alive("the client's sidecar");
        match http.get_with(&url, &[("host", host.as_str())]).await {
            Ok((200, body)) if body == "external" => Some(()),
            _ => None,
        }
    })
    .await;
}
