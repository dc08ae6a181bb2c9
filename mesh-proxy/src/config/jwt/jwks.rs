//! JSON Web Key Sets: the public keys a provider checks signatures with,
//! and the signature check itself (with ring, which the proxy's TLS
//! already uses).
//!
//! Keys: `RSA` (`n`, `e`), `EC` on P-256 and P-384 (`x`, `y`), `OKP`
//! Ed25519 (`x`) and `oct` (`k`, for HMAC). Algorithms: RS256/384/512,
//! PS256/384/512, ES256, ES384, EdDSA, HS256/384/512. Keys of other types
//! or curves are skipped, as Envoy skips them; a set with no usable key is
//! refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{hmac, signature};
use serde_json::Value;

/// One public key.
#[derive(Debug, Clone)]
pub struct Jwk {
    /// Empty when the key has none: it is then tried for every token.
    pub kid: String,
    /// Empty when the key does not restrict its algorithm.
    pub alg: String,
    pub material: KeyMaterial,
}

#[derive(Debug, Clone)]
pub enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (`04 || x || y`).
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
    Hmac(Vec<u8>),
}

impl Jwk {
    /// Whether this key may check a token signed with `alg` and key id `kid`.
    pub fn fits(&self, alg: &str, kid: Option<&str>) -> bool {
        let kid_fits = match kid {
            Some(kid) => self.kid.is_empty() || self.kid == kid,
            None => true,
        };
        let alg_fits = self.alg.is_empty() || self.alg == alg;
        let family_fits = match &self.material {
            KeyMaterial::Rsa { .. } => alg.starts_with("RS") || alg.starts_with("PS"),
            KeyMaterial::P256(_) => alg == "ES256",
            KeyMaterial::P384(_) => alg == "ES384",
            KeyMaterial::Ed25519(_) => alg == "EdDSA",
            KeyMaterial::Hmac(_) => alg.starts_with("HS"),
        };
        kid_fits && alg_fits && family_fits
    }

    /// Whether `sig` is this key's signature of `message` with `alg`.
    pub fn verify(&self, alg: &str, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Rsa { n, e } => {
                let Some(params) = rsa_params(alg) else {
                    return false;
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            KeyMaterial::P256(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            KeyMaterial::P384(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            KeyMaterial::Ed25519(key) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, key)
                    .verify(message, sig)
                    .is_ok()
            }
            KeyMaterial::Hmac(secret) => {
                let algorithm = match alg {
                    "HS256" => hmac::HMAC_SHA256,
                    "HS384" => hmac::HMAC_SHA384,
                    "HS512" => hmac::HMAC_SHA512,
                    _ => return false,
                };
                hmac::verify(&hmac::Key::new(algorithm, secret), message, sig).is_ok()
            }
        }
    }
}

/// Whether tokens signed with `alg` can be checked at all.
pub fn supported_alg(alg: &str) -> bool {
    rsa_params(alg).is_some()
        || matches!(
            alg,
            "ES256" | "ES384" | "EdDSA" | "HS256" | "HS384" | "HS512"
        )
}

fn rsa_params(alg: &str) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
        "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// Reads a JWKS document (`{"keys": [...]}`).
pub(super) fn parse(text: &[u8]) -> Result<Vec<Jwk>, String> {
    let doc: Value =
        serde_json::from_slice(text).map_err(|err| format!("the JWKS is not JSON: {err}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no \"keys\" list")?;
    let usable: Vec<Jwk> = keys.iter().filter_map(key).collect();
    // As Envoy does, a key set without a key this proxy can use is taken:
    // every token then fails to verify, and the rest of the config (and
    // every other provider) keeps working.
    if usable.is_empty() {
        tracing::warn!(
            keys = keys.len(),
            "a JWKS has no usable public key; tokens checked against it fail"
        );
    }
    Ok(usable)
}

/// One key, or `None` when it is of a kind this proxy cannot use.
fn key(value: &Value) -> Option<Jwk> {
    let text = |name: &str| value.get(name).and_then(Value::as_str);
    let bytes = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(text(name)?.trim_end_matches('='))
            .ok()
    };
    let material = match (text("kty")?, text("crv")) {
        ("RSA", _) => KeyMaterial::Rsa {
            n: bytes("n")?,
            e: bytes("e")?,
        },
        ("EC", Some("P-256")) => KeyMaterial::P256(point(bytes("x")?, bytes("y")?, 32)?),
        ("EC", Some("P-384")) => KeyMaterial::P384(point(bytes("x")?, bytes("y")?, 48)?),
        ("OKP", Some("Ed25519")) => KeyMaterial::Ed25519(bytes("x")?),
        ("oct", _) => KeyMaterial::Hmac(bytes("k")?),
        _ => return None,
    };
    Some(Jwk {
        kid: text("kid").unwrap_or_default().to_owned(),
        alg: text("alg").unwrap_or_default().to_owned(),
        material,
    })
}

fn point(x: Vec<u8>, y: Vec<u8>, size: usize) -> Option<Vec<u8>> {
    if x.len() != size || y.len() != size {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(4);
    point.extend(x);
    point.extend(y);
    Some(point)
}
