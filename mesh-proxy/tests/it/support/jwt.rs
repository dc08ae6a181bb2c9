//! Signing JSON Web Tokens for tests: EC keys made on the spot, and one
//! RSA test key (ring signs with RSA but cannot make RSA keys), with the
//! JWKS that publishes their public halves.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

/// A 2048-bit RSA key made for these tests only.
const RSA_TEST_KEY: &str = include_str!("../../data/jwt-rsa-test-key.pem");

/// A private key and its key id.
pub struct Signer {
    pub kid: String,
    key: Key,
}

enum Key {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
}

impl Signer {
    /// The RSA test key, for RS* and PS* tokens.
    pub fn rsa(kid: &str) -> Signer {
        let body: String = RSA_TEST_KEY
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(body).expect("the test key is base64");
        let key = RsaKeyPair::from_pkcs8(&der).expect("the test key is an RSA key");
        Signer::new(kid, Key::Rsa(key))
    }

    /// A new P-256 key, for ES256 tokens.
    pub fn p256(kid: &str) -> Signer {
        Signer::new(
            kid,
            Key::P256(ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)),
        )
    }

    /// A new P-384 key, for ES384 tokens.
    pub fn p384(kid: &str) -> Signer {
        Signer::new(
            kid,
            Key::P384(ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)),
        )
    }

    fn new(kid: &str, key: Key) -> Signer {
        Signer {
            kid: kid.to_owned(),
            key,
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match &self.key {
            Key::Rsa(key) => {
                let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
                json!({"kty": "RSA", "kid": self.kid, "n": b64(&public.n), "e": b64(&public.e)})
            }
            Key::P256(key) | Key::P384(key) => {
                let point = &key.public_key().as_ref()[1..];
                let (x, y) = point.split_at(point.len() / 2);
                let crv = if x.len() == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "crv": crv, "kid": self.kid, "x": b64(x), "y": b64(y)})
            }
        }
    }

    /// A compact token of `claims`, signed with `alg`.
    pub fn sign(&self, alg: &str, claims: &Value) -> String {
        let header = json!({"alg": alg, "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match &self.key {
            Key::Rsa(key) => {
                let padding: &dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    other => panic!("no RSA signing for {other}"),
                };
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(padding, &rng, input.as_bytes(), &mut out)
                    .expect("RSA signing works");
                out
            }
            Key::P256(key) | Key::P384(key) => key
                .sign(&rng, input.as_bytes())
                .expect("EC signing works")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

fn ec(algorithm: &'static signature::EcdsaSigningAlgorithm) -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm, &rng).expect("EC key generation works");
    EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref(), &rng).expect("a fresh key parses")
}

/// A JWKS document publishing the signers' public keys.
pub fn jwks(signers: &[&Signer]) -> String {
    json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()}).to_string()
}
