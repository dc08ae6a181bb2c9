//! The workload certificate, from the mesh's CA, as Istio's pilot-agent
//! provides it to Envoy: the proxy is its own agent.
//!
//! With `--ca-address` (`https://host:port`), the proxy makes an ECDSA
//! P-256 key in memory, asks the CA's `IstioCertificateService` to certify
//! it for the workload's SPIFFE id ([`workload::spiffe_id`]) for
//! `--cert-ttl` (default 24h), and offers the result to TLS contexts as two
//! SDS secrets, the names Istio's agent serves:
//! - `default`: a `tls_certificate`, the chain and the key;
//! - `ROOTCA`: a `validation_context` whose `trusted_ca` is the last
//!   certificate of the chain (the `--ca-root-cert` file when the chain
//!   holds the leaf only).
//!
//! Explicit config wins: a secret of the same name in
//! `static_resources.secrets` or received over SDS is used instead, and the
//! provider fills in `default` and `ROOTCA` only where nothing else defines
//! them. Over xDS the names are still subscribed to, so that a control
//! plane may provide them.
//!
//! The CA is reached over TLS whose server certificate must chain to
//! `--ca-root-cert` and name the host of `--ca-address`; each request
//! carries `authorization: Bearer <token>` from `--ca-token-file`, read
//! afresh each time. What the CA returns is used only once checked
//! ([`chain`]): it must chain to `--ca-root-cert`, be valid now, name the
//! workload's SPIFFE id and certify the key asked for.
//!
//! Start-up: config that refers to `default` or `ROOTCA` while no
//! certificate has come yet is held, as config waiting for an SDS secret
//! is: a static bootstrap is served once the first certificate arrives,
//! and over xDS a config is not served until it has. Until then, and
//! whatever the config, `/ready` answers 503. A CA that cannot be reached or
//! refuses is asked again with jittered backoff; each failure is logged with
//! the CA's reason.
//!
//! Rotation: at half the certificate's lifetime a new key and certificate
//! replace the old ones in place: TLS handshakes that start afterwards
//! present the new certificate, established connections keep theirs, and
//! listeners and clusters are not rebuilt (only a new root rebuilds the
//! TLS contexts that trust it). A failed renewal is retried with backoff
//! while the current certificate stays in use.
//!
//! The key is never written to disk and never shown: `/config_dump` does
//! not list these secrets, and `/certs` and the logs show serial numbers,
//! SANs and validity only. `/certs` lists the workload certificate as
//! Envoy's does; the stats page has `envoy_server_days_until_first_cert_expiring`,
//! `mesh_proxy_workload_cert_expiry_timestamp_seconds`, and how long
//! renewals take from their first attempt to the new certificate in use
//! (`mesh_proxy_workload_cert_rotation_seconds`, a summary, and
//! `mesh_proxy_workload_cert_last_rotation_seconds`); the log line of each
//! renewal says it too (`took_ms`).

mod ca_client;
pub(crate) mod chain;
mod csr;
mod rotation;
pub mod workload;
mod x509;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, secret,
};
use mesh_api::names::SpiffeId;
use tokio::sync::watch;

pub use chain::Details;
pub use x509::{Fields, rfc2253, rfc3339};

use crate::config::NodeInfo;
use crate::drain::Drain;
use crate::tls::RotatingIdentity;

/// The SDS name of the workload certificate.
pub const DEFAULT_SECRET: &str = "default";
/// The SDS name of the mesh's root.
pub const ROOT_SECRET: &str = "ROOTCA";

/// Where the CA is and how to ask it.
#[derive(Debug, Clone)]
pub struct CaOptions {
    /// `https://host:port`.
    pub address: String,
    /// PEM: the roots the CA's server certificate, and the certificates it
    /// issues, chain to.
    pub root_cert: PathBuf,
    /// Holds the bearer token; none sends no credential.
    pub token_file: Option<PathBuf>,
    /// The lifetime asked for.
    pub ttl: Duration,
}

/// What the provider offers for `default` and `ROOTCA`, as the config sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Provided {
    /// No CA: nothing is provided.
    #[default]
    Off,
    /// The first certificate has not arrived: the names are awaited.
    Pending,
    Ready(Arc<MeshSecrets>),
}

/// The workload certificate and the mesh root, as secrets.
#[derive(Debug, Clone)]
pub struct MeshSecrets {
    /// `default`; the same for the provider's whole life, renewed in place.
    pub identity: Arc<RotatingIdentity>,
    /// `ROOTCA`: a validation context.
    pub root: secret::Type,
}

impl PartialEq for MeshSecrets {
    fn eq(&self, other: &MeshSecrets) -> bool {
        Arc::ptr_eq(&self.identity, &other.identity) && self.root == other.root
    }
}

/// The certificate in use.
#[derive(Debug)]
pub struct Current {
    pub leaf: Details,
    pub root: Details,
    identity: Arc<RotatingIdentity>,
}

/// Gets and renews the workload certificate, and tells the config when what
/// it provides changes (the first certificate, a new root).
#[derive(Debug)]
pub struct CertificateProvider {
    id: SpiffeId,
    provided: watch::Sender<Provided>,
    current: ArcSwapOption<Current>,
    rotations: Rotations,
}

/// How long renewals took, from their first attempt to the new certificate
/// in use (the first certificate is not a renewal).
#[derive(Debug, Default)]
struct Rotations {
    count: AtomicU64,
    total_micros: AtomicU64,
    last_micros: AtomicU64,
}

impl Rotations {
    fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_micros.fetch_add(micros, Ordering::Relaxed);
        self.last_micros.store(micros, Ordering::Relaxed);
    }

    /// A summary of every rotation's duration, and a gauge of the last.
    fn render(&self, out: &mut String) {
        let seconds = |micros: &AtomicU64| micros.load(Ordering::Relaxed) as f64 / 1e6;
        let name = "mesh_proxy_workload_cert_rotation_seconds";
        let _ = writeln!(out, "# TYPE {name} summary");
        let _ = writeln!(out, "{name}_sum {}", seconds(&self.total_micros));
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
        let name = "mesh_proxy_workload_cert_last_rotation_seconds";
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {}", seconds(&self.last_micros));
    }
}

impl CertificateProvider {
    /// Starts asking the CA for the certificate of the workload `node`
    /// describes, until the drain starts.
    pub fn start(
        options: CaOptions,
        node: &NodeInfo,
        drain: Drain,
    ) -> anyhow::Result<Arc<CertificateProvider>> {
        let id = workload::spiffe_id(node)?;
        let path = &options.root_cert;
        let pem = std::fs::read(path).map_err(|err| {
            anyhow::anyhow!("cannot read --ca-root-cert {}: {err}", path.display())
        })?;
        let roots = crate::tls::certificates(&pem)
            .map_err(|err| anyhow::anyhow!("--ca-root-cert {}: {err}", path.display()))?;
        let client = ca_client::CaClient::new(&options.address, &pem, options.token_file)?;
        let provider = Arc::new(CertificateProvider {
            id: id.clone(),
            provided: watch::Sender::new(Provided::Pending),
            current: ArcSwapOption::empty(),
            rotations: Rotations::default(),
        });
        let issuer = rotation::Issuer {
            client,
            id,
            ttl: options.ttl,
            trusted: chain::Trusted { roots, pem },
        };
        tracing::info!(identity = %provider.id, ca = %options.address, "asking the CA for the workload certificate");
        tokio::spawn(rotation::run(issuer, Arc::clone(&provider), drain));
        Ok(provider)
    }

    /// The workload's SPIFFE id.
    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    /// What is provided now.
    pub fn provided(&self) -> Provided {
        self.provided.borrow().clone()
    }

    /// Changes when the first certificate comes and when the root changes;
    /// not at each renewal, which happens in place.
    pub fn watch(&self) -> watch::Receiver<Provided> {
        self.provided.subscribe()
    }

    pub fn current(&self) -> Option<Arc<Current>> {
        self.current.load_full()
    }

    pub fn has_certificate(&self) -> bool {
        self.current.load().is_some()
    }

    fn publish(&self, issued: chain::Issued) {
        let identity = match self.current() {
            Some(current) => {
                current.identity.replace(issued.key);
                Arc::clone(&current.identity)
            }
            None => Arc::new(RotatingIdentity::new(issued.key)),
        };
        self.current.store(Some(Arc::new(Current {
            leaf: issued.leaf,
            root: issued.root,
            identity: Arc::clone(&identity),
        })));
        let ready = Provided::Ready(Arc::new(MeshSecrets {
            identity,
            root: trusting(issued.root_pem),
        }));
        self.provided.send_if_modified(|provided| {
            let changed = *provided != ready;
            *provided = ready;
            changed
        });
    }

    /// The expiry gauges and the rotations' durations, in Prometheus' text
    /// format.
    pub fn render_metrics(&self, out: &mut String) {
        let Some(current) = self.current() else {
            return;
        };
        self.rotations.render(out);
        let first = current
            .leaf
            .fields
            .not_after
            .min(current.root.fields.not_after);
        let _ = writeln!(
            out,
            "# TYPE envoy_server_days_until_first_cert_expiring gauge"
        );
        let _ = writeln!(
            out,
            "envoy_server_days_until_first_cert_expiring {}",
            days_until(first)
        );
        let _ = writeln!(
            out,
            "# TYPE mesh_proxy_workload_cert_expiry_timestamp_seconds gauge"
        );
        let _ = writeln!(
            out,
            "mesh_proxy_workload_cert_expiry_timestamp_seconds {}",
            current.leaf.fields.not_after
        );
    }
}

/// Whole days from now until `not_after` (Unix seconds); 0 once past.
pub fn days_until(not_after: i64) -> u64 {
    u64::try_from((not_after - rotation::now()) / 86_400).unwrap_or(0)
}

/// A validation context trusting `pem`.
fn trusting(pem: Vec<u8>) -> secret::Type {
    secret::Type::ValidationContext(CertificateValidationContext {
        trusted_ca: Some(DataSource {
            specifier: Some(data_source::Specifier::InlineBytes(pem)),
            ..DataSource::default()
        }),
        ..CertificateValidationContext::default()
    })
}
