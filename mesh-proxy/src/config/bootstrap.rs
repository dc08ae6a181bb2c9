//! Envoy bootstrap files (`static_resources`, `admin`), YAML or JSON.

use crate::dns::DnsTable;
use std::path::Path;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;

use super::resources::{self, Compiled, Sources};
use super::tls::Secrets;
use super::{Config, ConfigError};
use crate::identity::Provided;

/// Reads a bootstrap file; errors name the file and, where known, the line.
pub fn read_bootstrap(path: &Path) -> anyhow::Result<Bootstrap> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read bootstrap {}: {err}", path.display()))?;
    let (documents, error) = mesh_api::load::parse_documents(&text);
    if let Some(error) = error {
        anyhow::bail!("{}:{}: {}", path.display(), error.line, error.reason);
    }
    let [document] = documents.as_slice() else {
        anyhow::bail!(
            "{}: a bootstrap file holds exactly one document",
            path.display()
        );
    };
    mesh_api::envoy::from_json(&document.value)
        .map_err(|err| anyhow::anyhow!("{}: bootstrap: {err}", path.display()))
}

impl Config {
    /// Compiles the static resources of a bootstrap.
    pub fn from_bootstrap(bootstrap: &Bootstrap) -> Result<Config, ConfigError> {
        Config::from_bootstrap_with(bootstrap, &Provided::Off, &DnsTable::default()).config
    }

    /// Like [`Config::from_bootstrap`], with `default` and `ROOTCA` from the
    /// certificate provider for the names the static secrets do not define;
    /// while it has no certificate yet, a compile that needs one says it
    /// awaits a secret. DNS clusters get the addresses in `dns`.
    pub fn from_bootstrap_with(
        bootstrap: &Bootstrap,
        provided: &Provided,
        dns: &DnsTable,
    ) -> Compiled {
        let resources = bootstrap.static_resources.clone().unwrap_or_default();
        let secrets = match Secrets::compile(&resources.secrets) {
            Ok(secrets) => secrets.with_provided(provided.clone()),
            Err(err) => return Compiled::failed(err),
        };
        let sources = Sources::bootstrap(secrets, dns);
        let clusters: Vec<_> = resources.clusters.iter().collect();
        let listeners: Vec<_> = resources.listeners.iter().collect();
        let config = resources::compile(bootstrap, &clusters, &listeners, &sources);
        Compiled::of(config, sources)
    }
}
