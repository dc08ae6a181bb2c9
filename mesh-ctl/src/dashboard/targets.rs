//! The list of proxies the dashboard reads: a JSON file that whoever runs
//! the proxies (the local mesh) keeps up to date, read again at every
//! refresh so that workloads coming and going show up.
//!
//! ```json
//! [{"workload": "reviews-v2", "namespace": "default", "app": "reviews",
//!   "version": "v2", "kind": "sidecar", "admin": "127.0.0.1:15000"}]
//! ```

use std::io::ErrorKind;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One proxy and the workload it serves. Other fields in the file (the
/// local mesh also writes each workload's address) are passed over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub workload: String,
    pub namespace: String,
    pub app: String,
    pub version: String,
    pub kind: ProxyKind,
    /// The admin server's `ip:port`; its Prometheus text is at
    /// `/stats/prometheus`.
    pub admin: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    Sidecar,
    Gateway,
}

/// The targets in `path`; none when the file does not exist (yet).
pub fn read(path: &Path) -> anyhow::Result<Vec<Target>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => anyhow::bail!("cannot read the targets file {}: {err}", path.display()),
    };
    serde_json::from_str(&text).map_err(|err| {
        anyhow::anyhow!(
            "the targets file {} is not a JSON list of proxies: {err}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_list_and_a_missing_file_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.json");
        assert_eq!(read(&path).unwrap(), []);
        std::fs::write(
            &path,
            r#"[{"workload": "istio-ingressgateway", "namespace": "mesh-system",
                "app": "istio-ingressgateway", "version": "unknown",
                "kind": "gateway", "admin": "127.0.0.1:15000"}]"#,
        )
        .unwrap();
        let targets = read(&path).unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].kind, ProxyKind::Gateway);
        assert_eq!(targets[0].admin, "127.0.0.1:15000");
        std::fs::write(&path, r#"[{"workload": "x"}]"#).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("not a JSON list of proxies"), "{err}");
    }
}
