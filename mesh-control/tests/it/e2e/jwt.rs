//! RequestAuthentication and AuthorizationPolicy from mesh-control's
//! config directory to real sidecars: mesh-control fetches the issuers'
//! keys from their `jwksUri` (served by the test, plain HTTP on loopback)
//! and inlines them; `reviews`' sidecar refuses invalid tokens with 401,
//! requests without a principal on the protected path with 403, and hands
//! valid ones to the application with their payload.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::body::Incoming;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use super::mesh::{
    Ca, ControlPlane, Http, Identity, V1Only, serve, wait_for, workspace, write_config,
};

const ISSUER: &str = "https://issuer.example";
/// A second issuer, whose tokens come in their own header.
const PARTNER: &str = "https://partner.example";
const KID: &str = "e2e";

/// An ES256 key made for the test.
struct Signer(EcdsaKeyPair);

impl Signer {
    fn new() -> Signer {
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Signer(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    /// The key set publishing the public key.
    fn jwks(&self) -> String {
        // An uncompressed point: 0x04, x, y.
        let (x, y) = self.0.public_key().as_ref()[1..].split_at(32);
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": KID, "x": x, "y": y}]}).to_string()
    }

    /// A compact token of `claims`.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": KID});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.0.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a token `issuer` gives alice for `reviews`, valid for ten
/// minutes, with `changes`.
fn claims(issuer: &str, changes: Value) -> Value {
    let mut claims = json!({"iss": issuer, "sub": "alice", "aud": ["reviews"],
        "iat": now(), "exp": now() + 600});
    let changes = changes.as_object().unwrap().clone();
    claims.as_object_mut().unwrap().extend(changes);
    claims
}

/// Two issuers' rules for `reviews`, their keys at `keys`; a principal
/// needed under /protected/, none elsewhere.
fn policies(keys: SocketAddr) -> String {
    format!(
        r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: reviews, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: {ISSUER}
    audiences: [reviews]
    jwksUri: http://{keys}/jwks.json
    outputPayloadToHeader: x-jwt-payload
  - issuer: {PARTNER}
    jwksUri: http://{keys}/partner/jwks.json
    fromHeaders: [{{name: x-partner-token, prefix: "Token "}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: reviews, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  rules:
  - to: [{{operation: {{paths: ["/protected/*"]}}}}]
    from: [{{source: {{requestPrincipals: ["*"]}}}}]
  - to: [{{operation: {{notPaths: ["/protected/*"]}}}}]
"#
    )
}

/// The application: answers with the request's headers, as JSON.
fn headers_of(request: &http::Request<Incoming>) -> (u16, String) {
    let headers: BTreeMap<&str, &str> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap_or_default()))
        .collect();
    (200, json!(headers).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_with_the_keys_mesh_control_fetched() {
    let (dir, config_dir) = workspace();
    let key = Signer::new();
    let jwks = key.jwks();
    let keys = serve(move |_| (200, jwks.clone())).await;
    let mesh = V1Only::write(&config_dir, serve(headers_of).await);
    write_config(&config_dir, "jwt.yaml", &policies(keys));
    let plane = ControlPlane::start(dir.path(), 0, 0).await;
    let ca = Ca::new();
    let identity = Identity::Static(&ca);
    let mut proxies = mesh.sidecars(dir.path(), &identity, plane.xds);
    let http = Http::new();
    let call = async |path: &str, headers: &[(&str, &str)]| {
        mesh.get(&http, path, headers)
            .await
            .unwrap_or((0, String::new()))
    };

    // Until the keys are fetched and pushed, no token verifies.
    let valid = key.sign(&claims(ISSUER, json!({})));
    let bearer = format!("Bearer {valid}");
    let reply = wait_for("a valid token accepted", async || {
        for proxy in &mut proxies {
            proxy.assert_alive("a sidecar");
        }
        let (status, body) = call("/protected/x", &[("authorization", &bearer)]).await;
        (status == 200).then_some(body)
    })
    .await;
    let reply: Value = serde_json::from_str(&reply).unwrap();
    let payload = valid.split('.').nth(1).unwrap();
    assert_eq!(reply["x-jwt-payload"], payload);
    assert_eq!(
        reply["authorization"],
        Value::Null,
        "the token is not forwarded"
    );
    // The caller's identity, as the server's sidecar saw it over mTLS.
    let xfcc = reply["x-forwarded-client-cert"]
        .as_str()
        .unwrap_or_default();
    let (by, rest) = xfcc.split_once(";Hash=").unwrap_or_default();
    assert_eq!(by, "By=spiffe://cluster.local/ns/default/sa/reviews-v1");
    let (hash, about_client) = rest.split_once(';').unwrap_or_default();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{xfcc}"
    );
    assert_eq!(
        about_client,
        "Subject=\"CN=rcgen self signed cert\";URI=spiffe://cluster.local/ns/default/sa/client"
    );

    let refused = [
        (json!({"exp": now() - 3600}), "Jwt is expired"),
        (
            json!({"iss": "https://stranger.example"}),
            "Jwt issuer is not configured",
        ),
        (
            json!({"aud": ["ratings"]}),
            "Audiences in Jwt are not allowed",
        ),
    ];
    for (changes, reason) in refused {
        let token = format!("Bearer {}", key.sign(&claims(ISSUER, changes)));
        for path in ["/protected/x", "/open"] {
            let answer = call(path, &[("authorization", &token)]).await;
            assert_eq!(answer, (401, reason.to_owned()), "{path}");
        }
    }

    assert_eq!(call("/open", &[]).await.0, 200);
    let denied = call("/protected/x", &[]).await;
    assert_eq!(denied, (403, "RBAC: access denied".to_owned()));

    // The partner's tokens count in their header, after its prefix only.
    let partner = key.sign(&claims(PARTNER, json!({})));
    let prefixed = format!("Token {partner}");
    for (token, status) in [(&prefixed, 200), (&partner, 403)] {
        let answer = call("/protected/x", &[("x-partner-token", token)]).await;
        assert_eq!(answer.0, status, "x-partner-token: {token}: {answer:?}");
    }
}
