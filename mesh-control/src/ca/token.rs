//! Bootstrap tokens: how a workload of the local mesh proves who it is to
//! the CA, where a pod would show its service-account token.
//!
//! A token names one SPIFFE id and carries an HMAC-SHA256 of it under a key
//! only mesh-control holds (`token-key` in the CA directory, mode 0600):
//! `mesh1.<base64url id>.<base64url tag>`. Whoever launches a workload
//! (`mesh-control token`, or the local demo) gives it its token; the token
//! gets a certificate for that id and no other. Tokens do not expire:
//! changing the key revokes them all.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mesh_api::names::SpiffeId;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::LoadError;

const KEY_FILE: &str = "token-key";
const KEY_LEN: usize = 32;
const PREFIX: &str = "mesh1";

/// The key tokens are signed with.
pub struct TokenKey(hmac::Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

/// Why a token was refused; none of them repeats the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not a mesh bootstrap token")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token names {0:?}, which is not a SPIFFE id")]
    BadIdentity(String),
}

impl TokenKey {
    /// The key kept in `dir`, made there first if there is none.
    pub fn load_or_create(dir: &Path) -> Result<TokenKey, LoadError> {
        let path = dir.join(KEY_FILE);
        let io = |source| LoadError::Io {
            path: path.clone(),
            source,
        };
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| LoadError::Io {
                        path: dir.to_owned(),
                        source,
                    })?;
                let mut bytes = vec![0; KEY_LEN];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| LoadError::Invalid {
                        path: path.clone(),
                        reason: "no randomness for a new key".into(),
                    })?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(&bytes).map_err(io)?;
                bytes
            }
            Err(err) => return Err(io(err)),
        };
        if bytes.len() < KEY_LEN {
            return Err(LoadError::Invalid {
                path,
                reason: format!("a key of {} bytes; {KEY_LEN} are needed", bytes.len()),
            });
        }
        Ok(TokenKey(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// A token for `identity`.
    pub fn issue(&self, identity: &SpiffeId) -> String {
        let id = identity.to_string();
        let tag = hmac::sign(&self.0, id.as_bytes());
        format!(
            "{PREFIX}.{}.{}",
            URL_SAFE_NO_PAD.encode(id),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The identity `token` was issued for.
    pub fn verify(&self, token: &str) -> Result<SpiffeId, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(PREFIX), Some(id), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let id = URL_SAFE_NO_PAD
            .decode(id)
            .map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.0, &id, &tag).map_err(|_| TokenError::BadSignature)?;
        let id = String::from_utf8(id).map_err(|_| TokenError::Malformed)?;
        id.parse().map_err(|_| TokenError::BadIdentity(id))
    }
}
