//! The CA's signing certificate and key, from a directory laid out as
//! Istio's `cacerts` secret:
//!
//! | file | what |
//! |---|---|
//! | `ca-cert.pem` | the certificate that signs workload certificates |
//! | `ca-key.pem` | its key (mode 0600) |
//! | `root-cert.pem` | the root proxies trust |
//! | `cert-chain.pem` | from `ca-cert.pem` up to the root |
//!
//! When `ca-cert.pem` and `ca-key.pem` are there, they are used as they
//! are: a plugged-in intermediate of an organisation's PKI. When the
//! directory holds neither, a self-signed root (ECDSA P-256, ten years) is
//! made and written there, so that restarts keep the mesh's identities.
//! One of the two without the other is an error, not a reason to make a
//! new root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

const CA_CERT: &str = "ca-cert.pem";
const CA_KEY: &str = "ca-key.pem";
const ROOT_CERT: &str = "root-cert.pem";
const CERT_CHAIN: &str = "cert-chain.pem";
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The signing certificate and key, and what proxies are given with it.
pub struct CaFiles {
    pub(super) issuer: Issuer<'static, KeyPair>,
    /// From the signing certificate up to the root, PEM each.
    pub(super) chain_pem: Vec<String>,
    pub(super) root_pem: String,
}

impl std::fmt::Debug for CaFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("CaFiles")
            .field("chain", &self.chain_pem.len())
            .finish_non_exhaustive()
    }
}

/// Why the CA's files could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "{dir}: {present} is there but {missing} is not; give both, or neither to make a new root"
    )]
    Half {
        dir: PathBuf,
        present: &'static str,
        missing: &'static str,
    },
}

impl CaFiles {
    /// The CA kept in `dir`, made there first if the directory has none.
    pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<CaFiles, LoadError> {
        let cert = dir.join(CA_CERT);
        let key = dir.join(CA_KEY);
        match (cert.exists(), key.exists()) {
            (true, true) => load(dir),
            (false, false) => create(dir, trust_domain),
            (true, false) => Err(LoadError::Half {
                dir: dir.to_owned(),
                present: CA_CERT,
                missing: CA_KEY,
            }),
            (false, true) => Err(LoadError::Half {
                dir: dir.to_owned(),
                present: CA_KEY,
                missing: CA_CERT,
            }),
        }
    }
}

fn load(dir: &Path) -> Result<CaFiles, LoadError> {
    let cert_pem = read(&dir.join(CA_CERT))?;
    let key_path = dir.join(CA_KEY);
    let key = KeyPair::from_pem(&read(&key_path)?).map_err(|err| LoadError::Invalid {
        path: key_path.clone(),
        reason: err.to_string(),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|err| LoadError::Invalid {
        path: dir.join(CA_CERT),
        reason: err.to_string(),
    })?;
    // Without a chain file the signing certificate is the root itself.
    let chain_path = dir.join(CERT_CHAIN);
    let chain_pem = if chain_path.exists() {
        split_pem(&read(&chain_path)?)
    } else {
        vec![cert_pem.clone()]
    };
    let root_path = dir.join(ROOT_CERT);
    let root_pem = if root_path.exists() {
        read(&root_path)?
    } else {
        chain_pem.last().cloned().unwrap_or(cert_pem)
    };
    if split_pem(&root_pem).len() != 1 {
        return Err(LoadError::Invalid {
            path: root_path,
            reason: "expected exactly one PEM certificate".into(),
        });
    }
    Ok(CaFiles {
        issuer,
        chain_pem,
        root_pem,
    })
}

fn create(dir: &Path, trust_domain: &str) -> Result<CaFiles, LoadError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let invalid = |reason: rcgen::Error| LoadError::Invalid {
        path: dir.join(CA_CERT),
        reason: reason.to_string(),
    };
    let key = KeyPair::generate().map_err(invalid)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    params
        .distinguished_name
        .push(DnType::CommonName, "Root CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + ROOT_LIFETIME).into();
    let root = params.self_signed(&key).map_err(invalid)?;
    let root_pem = root.pem();
    // The key first: a directory with a certificate but no key is refused
    // at the next start, never silently replaced.
    write(&dir.join(CA_KEY), &key.serialize_pem(), 0o600)?;
    write(&dir.join(ROOT_CERT), &root_pem, 0o644)?;
    write(&dir.join(CERT_CHAIN), &root_pem, 0o644)?;
    write(&dir.join(CA_CERT), &root_pem, 0o644)?;
    tracing::info!(dir = %dir.display(), "made a new self-signed root CA");
    Ok(CaFiles {
        issuer: Issuer::new(params, key),
        chain_pem: vec![root_pem.clone()],
        root_pem,
    })
}

fn read(path: &Path) -> Result<String, LoadError> {
    fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a new file with `mode`, refusing to overwrite one.
fn write(path: &Path, text: &str, mode: u32) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// The PEM blocks of a file, each with its armour.
fn split_pem(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    text.split_inclusive(END)
        .filter(|block| block.contains(END))
        .map(|block| format!("{}\n", block.trim()))
        .collect()
}
