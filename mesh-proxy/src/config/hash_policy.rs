//! Route hash policies (`RouteAction.hash_policy`): what a request is hashed
//! on for `RING_HASH` and `MAGLEV` clusters. Other policies ignore them.
//!
//! Semantics are Envoy's: the policies are evaluated in order and the keys
//! found are combined; a `terminal` policy that produced a key (counting the
//! earlier ones) ends the evaluation. A request without any key is balanced
//! randomly.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::route_action::{
    HashPolicy as EnvoyHashPolicy, hash_policy,
};
use http::HeaderName;

use super::{At, ConfigError, duration};

/// One hash policy of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPolicy {
    pub key: HashKey,
    /// Stop at this policy when a key has been found so far.
    pub terminal: bool,
}

/// Where a request's hash key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The value of a header (all its values, when repeated).
    Header(HeaderSource),
    Cookie(CookieKey),
    /// The client's IP address, without the port.
    SourceIp,
    /// The first value of a query parameter (`""` when it has no `=`).
    QueryParameter(String),
}

/// A header, or one of the HTTP/2 pseudo-headers Envoy allows here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSource {
    Name(HeaderName),
    /// `:authority`: the URI's authority or the `host` header.
    Authority,
    /// `:path`: the path and query.
    Path,
    /// `:method`.
    Method,
}

/// `hash_policy.cookie`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieKey {
    pub name: String,
    /// With a TTL, a request without the cookie gets one made up for it, and
    /// the response sets it; `Some(ZERO)` makes a session cookie.
    pub ttl: Option<Duration>,
    pub path: String,
    /// Extra `name=value` attributes of the `Set-Cookie` (`value` may be empty).
    pub attributes: Vec<(String, String)>,
}

pub(super) fn compile(
    policies: &[EnvoyHashPolicy],
    at: &At,
) -> Result<Vec<HashPolicy>, ConfigError> {
    let mut compiled = Vec::with_capacity(policies.len());
    for (i, policy) in policies.iter().enumerate() {
        let at = at.index(i);
        use hash_policy::PolicySpecifier as P;
        let key = match &policy.policy_specifier {
            Some(P::Header(header)) => {
                let at = at.field("header");
                if header.regex_rewrite.is_some() {
                    return Err(at.field("regex_rewrite").unsupported("regex_rewrite"));
                }
                HashKey::Header(header_source(
                    &header.header_name,
                    &at.field("header_name"),
                )?)
            }
            Some(P::Cookie(cookie)) => {
                let at = at.field("cookie");
                if cookie.name.is_empty() || !cookie.name.bytes().all(is_cookie_token) {
                    return Err(at
                        .field("name")
                        .error(format_args!("{:?} is not a cookie name", cookie.name)));
                }
                let ttl = match &cookie.ttl {
                    Some(ttl) => Some(duration(ttl, &at.field("ttl"))?),
                    None => None,
                };
                if !cookie.path.bytes().all(is_attribute_byte) {
                    return Err(at
                        .field("path")
                        .error(format_args!("{:?} is not a cookie path", cookie.path)));
                }
                let mut attributes = Vec::with_capacity(cookie.attributes.len());
                for (j, attribute) in cookie.attributes.iter().enumerate() {
                    let at = at.field("attributes").index(j);
                    if attribute.name.is_empty() || !attribute.name.bytes().all(is_cookie_token) {
                        return Err(at.field("name").error(format_args!(
                            "{:?} is not a cookie attribute name",
                            attribute.name
                        )));
                    }
                    if !attribute.value.bytes().all(is_attribute_byte) {
                        return Err(at.field("value").error(format_args!(
                            "{:?} is not a cookie attribute value",
                            attribute.value
                        )));
                    }
                    attributes.push((attribute.name.clone(), attribute.value.clone()));
                }
                HashKey::Cookie(CookieKey {
                    name: cookie.name.clone(),
                    ttl,
                    path: cookie.path.clone(),
                    attributes,
                })
            }
            // Envoy accepts `source_ip: false`; it never yields a key.
            Some(P::ConnectionProperties(properties)) if !properties.source_ip => continue,
            Some(P::ConnectionProperties(_)) => HashKey::SourceIp,
            Some(P::QueryParameter(parameter)) => {
                if parameter.name.is_empty() {
                    return Err(at
                        .field("query_parameter")
                        .field("name")
                        .error("a query parameter name is required"));
                }
                HashKey::QueryParameter(parameter.name.clone())
            }
            Some(P::FilterState(_)) => {
                return Err(at.field("filter_state").unsupported("filter_state hashing"));
            }
            None => {
                return Err(at.error(
                    "one of header, cookie, connection_properties or query_parameter is required",
                ));
            }
        };
        compiled.push(HashPolicy {
            key,
            terminal: policy.terminal,
        });
    }
    Ok(compiled)
}

fn header_source(name: &str, at: &At) -> Result<HeaderSource, ConfigError> {
    match name.to_ascii_lowercase().as_str() {
        ":authority" => Ok(HeaderSource::Authority),
        ":path" => Ok(HeaderSource::Path),
        ":method" => Ok(HeaderSource::Method),
        lower => HeaderName::from_bytes(lower.as_bytes())
            .map(HeaderSource::Name)
            .map_err(|_| at.error(format_args!("{name:?} is not a header name"))),
    }
}

/// RFC 6265 `token` characters.
fn is_cookie_token(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

/// What a `Set-Cookie` attribute value may hold.
fn is_attribute_byte(b: u8) -> bool {
    (b.is_ascii_graphic() || b == b' ') && b != b';'
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{Action, ListenerKind};
    use crate::testing::{compile as compile_bootstrap, http_bootstrap};

    fn policies(hash_policy: serde_json::Value) -> Result<Vec<HashPolicy>, ConfigError> {
        let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "a", "hash_policy": hash_policy}});
        let bootstrap = http_bootstrap(
            json!([{"name": "all", "domains": ["*"], "routes": [route]}]),
            &["a"],
        );
        let config = compile_bootstrap(&bootstrap)?;
        let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
            panic!("an HTTP listener")
        };
        let Action::Forward(forward) = &manager.routes.virtual_hosts[0].routes[0].action else {
            panic!("a forward")
        };
        Ok(forward.hash_policy.clone())
    }

    #[test]
    fn compiles_every_supported_policy() {
        let compiled = policies(json!([
            {"header": {"header_name": "X-User"}},
            {"header": {"header_name": ":authority"}, "terminal": true},
            {"cookie": {"name": "sticky", "ttl": "60s", "path": "/",
                "attributes": [{"name": "SameSite", "value": "Lax"}, {"name": "Secure"}]}},
            {"connection_properties": {"source_ip": true}},
            {"connection_properties": {"source_ip": false}},
            {"query_parameter": {"name": "user"}}
        ]))
        .unwrap();
        assert_eq!(
            compiled,
            [
                HashPolicy {
                    key: HashKey::Header(HeaderSource::Name(HeaderName::from_static("x-user"))),
                    terminal: false
                },
                HashPolicy {
                    key: HashKey::Header(HeaderSource::Authority),
                    terminal: true
                },
                HashPolicy {
                    key: HashKey::Cookie(CookieKey {
                        name: "sticky".into(),
                        ttl: Some(Duration::from_secs(60)),
                        path: "/".into(),
                        attributes: vec![
                            ("SameSite".into(), "Lax".into()),
                            ("Secure".into(), String::new())
                        ],
                    }),
                    terminal: false
                },
                HashPolicy {
                    key: HashKey::SourceIp,
                    terminal: false
                },
                HashPolicy {
                    key: HashKey::QueryParameter("user".into()),
                    terminal: false
                },
            ]
        );
        assert_eq!(policies(json!([])).unwrap(), []);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let field = "listener \"http\": filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.hash_policy";
        assert_eq!(
            policies(
                json!([{"header": {"header_name": "x-user"}}, {"filter_state": {"key": "k"}}])
            )
            .unwrap_err()
            .to_string(),
            format!("{field}[1].filter_state: filter_state hashing is not supported by this proxy")
        );
        assert_eq!(
            policies(json!([{"header": {"header_name": "bad header"}}]))
                .unwrap_err()
                .to_string(),
            format!("{field}[0].header.header_name: \"bad header\" is not a header name")
        );
        assert_eq!(
            policies(json!([{"cookie": {"name": "a;b"}}]))
                .unwrap_err()
                .to_string(),
            format!("{field}[0].cookie.name: \"a;b\" is not a cookie name")
        );
        assert!(
            policies(json!([{"header": {"header_name": "x", "regex_rewrite": {
                "pattern": {"regex": "a"}, "substitution": "b"}}}]))
            .unwrap_err()
            .to_string()
            .ends_with("[0].header.regex_rewrite: regex_rewrite is not supported by this proxy")
        );
    }
}
