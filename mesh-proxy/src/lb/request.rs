//! A request's hash key, from its route's hash policies, as Envoy computes it.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::request::Parts;

use super::hash::{hash, hash_seeded};
use crate::config::{CookieKey, HashKey, HashPolicy, HeaderSource};

/// The addresses of the client's connection; the HTTP server puts it in each
/// request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downstream {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// `local` is the original destination of a redirected connection,
    /// restored by the listener (which ORIGINAL_DST clusters need).
    pub restored: bool,
}

impl Downstream {
    /// Stands in for the addresses of a request that came without them
    /// (never one a listener served); they match no address rule.
    pub const UNKNOWN: Downstream = Downstream {
        remote: SocketAddr::V4(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
        )),
        local: SocketAddr::V4(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
        )),
        restored: false,
    };
}

/// What the hash policies made of one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestHash {
    /// `None` when no policy found anything to hash: the pick is random.
    pub key: Option<u64>,
    /// Cookies made up for the request, to set on the response.
    pub set_cookies: Vec<HeaderValue>,
}

impl RequestHash {
    pub fn new(policies: &[HashPolicy], request: &Parts) -> RequestHash {
        let mut out = RequestHash::default();
        for policy in policies {
            let found = match &policy.key {
                HashKey::Header(source) => header_hash(source, request),
                HashKey::Cookie(cookie) => cookie_hash(cookie, request, &mut out.set_cookies),
                HashKey::SourceIp => request
                    .extensions
                    .get::<Downstream>()
                    .map(|d| hash(d.remote.ip().to_string().as_bytes())),
                HashKey::QueryParameter(name) => {
                    query_value(request, name).map(|v| hash(v.as_bytes()))
                }
            };
            if let Some(found) = found {
                // Rotating keeps two equal keys from cancelling out.
                out.key = Some(out.key.map_or(0, |k| k.rotate_left(1)) ^ found);
            }
            if policy.terminal && out.key.is_some() {
                break;
            }
        }
        out
    }
}

fn header_hash(source: &HeaderSource, request: &Parts) -> Option<u64> {
    let name = match source {
        HeaderSource::Name(name) => name,
        HeaderSource::Authority => {
            let authority = request
                .uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| request.headers.get(header::HOST)?.to_str().ok())?;
            return Some(hash(authority.as_bytes()));
        }
        HeaderSource::Path => {
            let path = request.uri.path_and_query().map_or("/", |p| p.as_str());
            return Some(hash(path.as_bytes()));
        }
        HeaderSource::Method => return Some(hash(request.method.as_str().as_bytes())),
    };
    let mut values: Vec<&[u8]> = request
        .headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    match values.as_slice() {
        [] => None,
        [one] => Some(hash(one)),
        _ => {
            // The same values in any order hash alike, as in Envoy.
            values.sort_unstable();
            Some(values.iter().fold(0, |h, v| hash_seeded(v, h)))
        }
    }
}

fn cookie_hash(
    cookie: &CookieKey,
    request: &Parts,
    set_cookies: &mut Vec<HeaderValue>,
) -> Option<u64> {
    if let Some(value) = cookie_value(request, &cookie.name) {
        return Some(hash(value.as_bytes()));
    }
    let ttl = cookie.ttl?;
    // Envoy's value: the same for every request of a connection, so that
    // requests racing on it get the same cookie.
    let connection = request
        .extensions
        .get::<Downstream>()
        .map(|d| format!("{}{}", d.remote, d.local))
        .unwrap_or_default();
    let value = format!("{:016x}", hash(connection.as_bytes()));
    let mut set = format!("{}={value}", cookie.name);
    if !ttl.is_zero() {
        set.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if !cookie.path.is_empty() {
        set.push_str(&format!("; Path={}", cookie.path));
    }
    for (name, attribute) in &cookie.attributes {
        set.push_str("; ");
        set.push_str(name);
        if !attribute.is_empty() {
            set.push('=');
            set.push_str(attribute);
        }
    }
    set.push_str("; HttpOnly");
    // The parts were checked when the config was compiled.
    if let Ok(header) = HeaderValue::from_str(&set) {
        set_cookies.push(header);
    }
    Some(hash(value.as_bytes()))
}

/// The first value of the cookie `name` in the `cookie` headers, unquoted.
fn cookie_value<'a>(request: &'a Parts, name: &str) -> Option<&'a str> {
    request
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| {
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
}

/// The first value of the query parameter `name`, undecoded; `""` without `=`.
fn query_value<'a>(request: &'a Parts, name: &str) -> Option<&'a str> {
    request
        .uri
        .query()?
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderName, Request};

    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts.extensions.insert(Downstream {
            remote: "192.0.2.7:40000".parse().unwrap(),
            local: "10.0.0.1:15001".parse().unwrap(),
            restored: false,
        });
        parts
    }

    fn policy(key: HashKey, terminal: bool) -> HashPolicy {
        HashPolicy { key, terminal }
    }

    fn header(name: &'static str) -> HashKey {
        HashKey::Header(HeaderSource::Name(HeaderName::from_static(name)))
    }

    fn cookie(ttl: Option<Duration>) -> HashKey {
        HashKey::Cookie(CookieKey {
            name: "sticky".into(),
            ttl,
            path: "/app".into(),
            attributes: vec![("SameSite".into(), "Lax".into())],
        })
    }

    fn key(policies: &[HashPolicy], request: &Parts) -> Option<u64> {
        RequestHash::new(policies, request).key
    }

    #[test]
    fn header_query_and_source_ip_keys() {
        let by_user = [policy(header("x-user"), false)];
        let alice = parts("/", &[("x-user", "alice")]);
        assert_eq!(key(&by_user, &alice), Some(hash(b"alice")));
        assert_eq!(key(&by_user, &parts("/", &[])), None);
        assert_ne!(
            key(&by_user, &parts("/", &[("x-user", "bob")])),
            key(&by_user, &alice)
        );

        let by_query = [policy(HashKey::QueryParameter("user".into()), false)];
        assert_eq!(
            key(&by_query, &parts("/p?a=1&user=carol&user=dan", &[])),
            Some(hash(b"carol"))
        );
        assert_eq!(key(&by_query, &parts("/p?user", &[])), Some(hash(b"")));
        assert_eq!(key(&by_query, &parts("/p?username=x", &[])), None);

        let by_ip = [policy(HashKey::SourceIp, false)];
        assert_eq!(key(&by_ip, &parts("/", &[])), Some(hash(b"192.0.2.7")));

        let by_authority = [policy(HashKey::Header(HeaderSource::Authority), false)];
        assert_eq!(
            key(&by_authority, &parts("/", &[("host", "reviews:9080")])),
            Some(hash(b"reviews:9080"))
        );
    }

    #[test]
    fn repeated_headers_hash_alike_in_any_order() {
        let by_user = [policy(header("x-user"), false)];
        let ab = parts("/", &[("x-user", "a"), ("x-user", "b")]);
        let ba = parts("/", &[("x-user", "b"), ("x-user", "a")]);
        assert_eq!(key(&by_user, &ab), key(&by_user, &ba));
        assert_ne!(
            key(&by_user, &ab),
            key(&by_user, &parts("/", &[("x-user", "a")]))
        );
    }

    #[test]
    fn policies_combine_until_a_terminal_one_has_a_key() {
        let request = parts("/?q=1", &[("x-user", "alice"), ("x-team", "blue")]);
        let user = hash(b"alice");
        let team = hash(b"blue");
        let both = [
            policy(header("x-user"), false),
            policy(header("x-team"), false),
        ];
        assert_eq!(key(&both, &request), Some(user.rotate_left(1) ^ team));
        let terminal = [
            policy(header("x-user"), true),
            policy(header("x-team"), false),
        ];
        assert_eq!(key(&terminal, &request), Some(user));
        // A terminal policy without a key lets the next ones run.
        let missing = [
            policy(header("x-none"), true),
            policy(header("x-team"), false),
        ];
        assert_eq!(key(&missing, &request), Some(team));
        // Two equal keys do not cancel out.
        let twice = [
            policy(header("x-user"), false),
            policy(header("x-user"), false),
        ];
        assert_ne!(key(&twice, &request), Some(0));
    }

    #[test]
    fn a_cookie_is_hashed_or_made_up() {
        let by_cookie = [policy(cookie(Some(Duration::from_secs(3600))), false)];
        let with = parts("/", &[("cookie", "a=1; sticky=\"abc\"; b=2")]);
        let hashed = RequestHash::new(&by_cookie, &with);
        assert_eq!(hashed.key, Some(hash(b"abc")));
        assert!(hashed.set_cookies.is_empty());

        let without = parts("/", &[("cookie", "a=1")]);
        let made = RequestHash::new(&by_cookie, &without);
        let [set] = made.set_cookies.as_slice() else {
            panic!("one cookie to set: {made:?}")
        };
        let set = set.to_str().unwrap();
        let value = set
            .strip_prefix("sticky=")
            .and_then(|s| s.split_once(';'))
            .map(|(v, _)| v)
            .unwrap();
        assert_eq!(value.len(), 16);
        assert_eq!(
            set,
            format!("sticky={value}; Max-Age=3600; Path=/app; SameSite=Lax; HttpOnly")
        );
        // The client sending the cookie back lands where the first request did.
        let back = parts("/", &[("cookie", &format!("sticky={value}"))]);
        assert_eq!(key(&by_cookie, &back), made.key);
        // The same connection gets the same cookie.
        assert_eq!(RequestHash::new(&by_cookie, &without), made);

        let session = [policy(cookie(Some(Duration::ZERO)), false)];
        let made = RequestHash::new(&session, &without);
        assert!(
            !made.set_cookies[0].to_str().unwrap().contains("Max-Age"),
            "{made:?}"
        );

        let no_ttl = [policy(cookie(None), false)];
        assert_eq!(RequestHash::new(&no_ttl, &without), RequestHash::default());
    }
}
