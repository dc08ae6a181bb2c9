//! The proxies of the local mesh: one sidecar per workload and the ingress
//! gateway, each a `meshctl mesh-proxy` configured by mesh-control over ADS
//! and certified by its CA with a bootstrap token.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde_json::{Value, json};

use super::state::{ControlPlane, StateDir};

/// Who a proxy is, as its node says.
#[derive(Debug, Clone)]
pub struct ProxyNode {
    /// `sidecar` or `router`.
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    pub ip: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
}

impl ProxyNode {
    /// Istio's node id: `<kind>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`.
    pub fn id(&self) -> String {
        format!(
            "{}~{}~{}.{}~{}.svc.cluster.local",
            self.kind, self.ip, self.name, self.namespace, self.namespace
        )
    }

    /// The bootstrap: the node, with `INTERCEPTION_MODE: NONE` (nothing is
    /// captured: every listener binds its address), and a loopback admin
    /// server on a free port.
    pub fn bootstrap(&self) -> Value {
        json!({
            "node": {
                "id": self.id(),
                "cluster": format!("{}.{}", self.labels.get("app").unwrap_or(&self.name), self.namespace),
                "metadata": {
                    "NAMESPACE": self.namespace,
                    "WORKLOAD_NAME": self.name,
                    "SERVICE_ACCOUNT": self.service_account,
                    "LABELS": self.labels,
                    "INTERCEPTION_MODE": "NONE",
                },
            },
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        })
    }

    /// Where the proxy's files go, by name.
    fn file(&self, dir: &StateDir, extension: &str) -> PathBuf {
        dir.proxies()
            .join(format!("{}.{}.{extension}", self.name, self.namespace))
    }

    /// Where the proxy writes its admin address once bound.
    pub fn admin_file(&self, dir: &StateDir) -> PathBuf {
        self.file(dir, "admin")
    }

    /// Writes the bootstrap and returns the `meshctl mesh-proxy` arguments.
    pub fn arguments(
        &self,
        dir: &StateDir,
        control_plane: &ControlPlane,
        token: PathBuf,
    ) -> anyhow::Result<Vec<String>> {
        let bootstrap = self.file(dir, "json");
        std::fs::write(&bootstrap, serde_json::to_vec_pretty(&self.bootstrap())?)?;
        let path = |p: PathBuf| p.display().to_string();
        Ok(vec![
            "mesh-proxy".into(),
            "--bootstrap".into(),
            path(bootstrap),
            "--xds-address".into(),
            control_plane.xds.to_string(),
            "--ca-address".into(),
            format!("https://{}", control_plane.secure),
            "--ca-root-cert".into(),
            path(dir.ca().join("root-cert.pem")),
            "--ca-token-file".into(),
            path(token),
            "--admin-address-path".into(),
            path(self.admin_file(dir)),
            // A sidecar carries one workload's traffic: one thread is plenty
            // and costs the least.
            "--concurrency".into(),
            "1".into(),
            "--drain-timeout".into(),
            "1s".into(),
        ])
    }
}

/// The address a proxy wrote to its admin address file, once it has.
pub fn admin_address(file: &std::path::Path) -> Option<SocketAddr> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}
