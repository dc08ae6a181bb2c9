//! What a service listens on and where its upstreams are, from flags and the
//! environment variables the upstream Bookinfo images read.

use std::net::{IpAddr, SocketAddr};

use clap::{Parser, ValueEnum};

use crate::reviews;

/// Looks up one environment variable; tests pass a map instead of the process
/// environment.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The port every Bookinfo service listens on upstream.
pub const DEFAULT_PORT: u16 = 9080;

/// A configuration that cannot be used, with the variable or flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable}={value:?} is not a port number")]
    Port { variable: String, value: String },
    #[error("{variable}={value:?} is not an http:// proxy address (host:port)")]
    Proxy {
        variable: &'static str,
        value: String,
    },
    #[error("reviews version {0:?} is not one of v1, v2, v3")]
    Version(String),
}

/// `bookinfo productpage|details|reviews|ratings [--port N] [--address IP]`
#[derive(Debug, Parser)]
#[command(name = "bookinfo", about = "Istio's Bookinfo sample services")]
pub struct Args {
    /// Which of the four services to run.
    #[arg(value_enum)]
    pub service: ServiceKind,
    /// Port to listen on (0 picks a free one; the log says which).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// reviews only: v1 (no ratings), v2 (black stars) or v3 (red stars).
    /// Overrides SERVICE_VERSION, ENABLE_RATINGS and STAR_COLOR.
    #[arg(long)]
    pub version: Option<String>,
}

/// The service named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceKind {
    Productpage,
    Details,
    Reviews,
    Ratings,
}

/// Everything one service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub service: Service,
    pub upstreams: Upstreams,
}

/// The service to run, with its own settings.
#[derive(Debug, Clone)]
pub enum Service {
    Productpage,
    Details,
    Reviews(reviews::Settings),
    Ratings,
}

/// Where the services a Bookinfo app calls are, and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    pub details: Upstream,
    pub reviews: Upstream,
    pub ratings: Upstream,
    pub proxy: Option<Proxy>,
}

/// One upstream service, as host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

/// An HTTP forward proxy and the hosts that bypass it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `http://host:port/`, the form the TCP connector dials.
    pub address: http::Uri,
    pub no_proxy: Vec<String>,
}

impl Config {
    /// Builds the configuration from parsed flags and an environment.
    pub fn from_args(args: &Args, env: Lookup<'_>) -> Result<Self, ConfigError> {
        let service = match args.service {
            ServiceKind::Productpage => Service::Productpage,
            ServiceKind::Details => Service::Details,
            ServiceKind::Reviews => {
                Service::Reviews(reviews::Settings::from_env(args.version.as_deref(), env)?)
            }
            ServiceKind::Ratings => Service::Ratings,
        };
        Ok(Self {
            listen: SocketAddr::new(args.address, args.port),
            service,
            upstreams: Upstreams::from_env(env)?,
        })
    }
}

impl Upstreams {
    /// Reads `SERVICES_DOMAIN`, `<SVC>_HOSTNAME`, `<SVC>_SERVICE_PORT` and the
    /// proxy variables.
    pub fn from_env(env: Lookup<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            details: Upstream::from_env("details", env)?,
            reviews: Upstream::from_env("reviews", env)?,
            ratings: Upstream::from_env("ratings", env)?,
            proxy: Proxy::from_env(env)?,
        })
    }
}

impl Upstream {
    fn from_env(name: &str, env: Lookup<'_>) -> Result<Self, ConfigError> {
        let prefix = name.to_ascii_uppercase();
        let mut host = env(&format!("{prefix}_HOSTNAME")).unwrap_or_else(|| name.to_owned());
        if let Some(domain) = env("SERVICES_DOMAIN").filter(|d| !d.is_empty()) {
            host = format!("{host}.{domain}");
        }
        let variable = format!("{prefix}_SERVICE_PORT");
        let port = match env(&variable) {
            None => DEFAULT_PORT,
            Some(value) => value
                .trim()
                .parse()
                .map_err(|_| ConfigError::Port { variable, value })?,
        };
        Ok(Self { host, port })
    }

    /// The URL of `path` (which starts with `/`) on this upstream.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host, self.port)
    }
}

impl Proxy {
    /// Reads `http_proxy` (then `HTTP_PROXY`) and `no_proxy` (then `NO_PROXY`);
    /// lower case first, as curl does.
    fn from_env(env: Lookup<'_>) -> Result<Option<Self>, ConfigError> {
        let Some((variable, value)) = first_set(env, ["http_proxy", "HTTP_PROXY"]) else {
            return Ok(None);
        };
        let error = || ConfigError::Proxy {
            variable,
            value: value.clone(),
        };
        let authority = match value.split_once("://") {
            Some(("http", rest)) => rest,
            Some(_) => return Err(error()),
            None => value.as_str(),
        };
        let authority: http::uri::Authority = authority
            .trim_end_matches('/')
            .parse()
            .map_err(|_| error())?;
        let port = authority.port_u16().unwrap_or(80);
        let address = format!("http://{}:{port}/", authority.host())
            .parse()
            .map_err(|_| error())?;
        let no_proxy = first_set(env, ["no_proxy", "NO_PROXY"])
            .map(|(_, list)| parse_no_proxy(&list))
            .unwrap_or_default();
        Ok(Some(Self { address, no_proxy }))
    }

    /// Whether calls to `host` go through the proxy. A `no_proxy` entry matches
    /// the host itself and, like curl, every subdomain of it.
    pub fn applies_to(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        !self.no_proxy.iter().any(|entry| {
            entry == "*"
                || host == *entry
                || host
                    .strip_suffix(entry.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

fn first_set<const N: usize>(
    env: Lookup<'_>,
    names: [&'static str; N],
) -> Option<(&'static str, String)> {
    names
        .into_iter()
        .find_map(|name| env(name).filter(|v| !v.is_empty()).map(|v| (name, v)))
}

fn parse_no_proxy(list: &str) -> Vec<String> {
    list.split(',')
        .map(|entry| entry.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn upstreams(vars: &[(&str, &str)]) -> Result<Upstreams, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Upstreams::from_env(&|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_kubernetes_service_names() {
        let up = upstreams(&[]).unwrap();
        assert_eq!(
            up.details.url("/details/0"),
            "http://details:9080/details/0"
        );
        assert_eq!(
            up.reviews.url("/reviews/0"),
            "http://reviews:9080/reviews/0"
        );
        assert_eq!(
            up.ratings.url("/ratings/0"),
            "http://ratings:9080/ratings/0"
        );
        assert_eq!(up.proxy, None);
    }

    #[test]
    fn hostname_port_and_domain_come_from_the_environment() {
        let up = upstreams(&[
            ("SERVICES_DOMAIN", "bookinfo.svc.cluster.local"),
            ("REVIEWS_HOSTNAME", "reviews-v2"),
            ("RATINGS_SERVICE_PORT", "9999"),
        ])
        .unwrap();
        assert_eq!(up.details.host, "details.bookinfo.svc.cluster.local");
        assert_eq!(up.reviews.host, "reviews-v2.bookinfo.svc.cluster.local");
        assert_eq!(up.ratings.port, 9999);
    }

    #[test]
    fn a_bad_port_names_its_variable() {
        let err = upstreams(&[("DETAILS_SERVICE_PORT", "http")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DETAILS_SERVICE_PORT=\"http\" is not a port number"
        );
    }

    #[test]
    fn proxy_prefers_lower_case_and_accepts_a_bare_authority() {
        let up = upstreams(&[
            ("http_proxy", "127.0.0.1:15001"),
            ("HTTP_PROXY", "http://10.0.0.1:3128/"),
        ])
        .unwrap();
        assert_eq!(up.proxy.unwrap().address, "http://127.0.0.1:15001/");

        let proxy = upstreams(&[("HTTP_PROXY", "http://10.0.0.1/")])
            .unwrap()
            .proxy
            .unwrap();
        assert_eq!(proxy.address, "http://10.0.0.1:80/");
    }

    #[test]
    fn an_https_proxy_is_refused() {
        let err = upstreams(&[("HTTP_PROXY", "https://proxy:443")]).unwrap_err();
        assert!(err.to_string().starts_with("HTTP_PROXY="), "{err}");
    }

    #[test]
    fn no_proxy_matches_hosts_and_their_subdomains() {
        let proxy = upstreams(&[
            ("HTTP_PROXY", "proxy:3128"),
            ("NO_PROXY", "localhost, .example.com"),
        ])
        .unwrap()
        .proxy
        .unwrap();
        assert!(!proxy.applies_to("localhost"));
        assert!(!proxy.applies_to("a.example.com"));
        assert!(!proxy.applies_to("example.com"));
        assert!(proxy.applies_to("notexample.com"));
        assert!(proxy.applies_to("reviews"));
    }
}
