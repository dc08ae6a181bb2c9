//! VirtualService: how requests and connections addressed to a set of hosts
//! are matched and routed (HTTP, TLS by SNI, opaque TCP), with rewrites,
//! redirects, retries, timeouts, fault injection, mirroring and CORS.
//!
//! The checks live in the private `validation` module next to this file.
//!
//! # Validation rules
//!
//! The VirtualService as a whole:
//! - `hosts`: each is an IP address or a host name whose first label may carry a
//!   leading `*`; empty `hosts` makes it a *delegate* VirtualService.
//! - `hosts`: `*` alone is refused unless the VirtualService is bound to gateways only
//!   (`gateways` set and not naming `mesh`).
//! - `hosts`: no two hosts may overlap (`*.example.com` and `api.example.com` do).
//! - `hosts` (gateway-only, with TLS SNI routes): auto-passthrough names
//!   `outbound_.<port>_.<subset>_.<host>` are accepted.
//! - `gateways` (top level and in every match): `mesh`, a gateway name (a DNS name),
//!   or `namespace/name` with both parts DNS labels.
//! - A delegate VirtualService (no hosts) may not set `gateways`, `tls` or `tcp`, and its
//!   HTTP routes may not delegate again (one level only).
//! - At least one of `http`, `tcp` or `tls` must be given.
//! - `exportTo`: each entry is `.`, `*` or a namespace name; no duplicates; `~` is
//!   refused; `*` cannot be combined with other entries.
//!
//! HTTP routes:
//! - A route needs one of `route`, `redirect`, `directResponse` or `delegate`.
//! - `redirect` excludes `route`, `fault`, `rewrite` and `directResponse`.
//! - `directResponse` excludes `route`, `fault` and `rewrite`.
//! - `delegate` excludes `route`, `redirect` and `directResponse`; its `name` is
//!   required and a DNS subdomain, its `namespace` (optional) a DNS label.
//! - `mirror` and `mirrors` cannot both be set.
//! - `timeout`, `retries.perTryTimeout`, `retries.backoff` and `fault.delay.fixedDelay`
//!   are at least 1ms, in whole milliseconds.
//! - `retries.attempts` is not negative; with attempts 0 (or unset), `perTryTimeout`,
//!   `retryOn` and `retryRemoteLocalities` must not be set.
//! - `retries.retryOn` is a comma-separated list of Envoy retry conditions (HTTP and
//!   gRPC) or HTTP status codes.
//! - `fault` has a delay, an abort or both; `delay` needs `fixedDelay`
//!   (`exponentialDelay` is not supported) and `percent` is 0-100; `abort` needs
//!   `httpStatus` (200-599) or `grpcStatus` (a gRPC status name such as `UNAVAILABLE`),
//!   not both (`http2Error` is not supported); fault percentages are 0 or 0.0001-100.
//! - `mirrorPercentage.value` and `mirrors[].percentage.value` are 0-100;
//!   the deprecated `mirrorPercent` is at most 100.
//! - `redirect`: sets at least one of uri, prefixRewrite, authority, scheme, port or
//!   derivePort; `uri` and `prefixRewrite` are exclusive; `prefixRewrite` needs every
//!   `uri` match of the route to be a prefix match; `port` and `derivePort` are
//!   exclusive; `port` is 1-65535; `scheme` is `http` or `https`; `redirectCode` is
//!   one Envoy supports: 301, 302, 303, 307 or 308.
//! - `directResponse.status` is 200-599; `body` has at most one of `string` and
//!   `bytes`; `bytes` is valid base64; the body is at most 1 MiB.
//! - `rewrite` sets at least one of uri, uriRegexRewrite or authority; `uri` and
//!   `uriRegexRewrite` are exclusive; `uriRegexRewrite` needs both `match` (a valid
//!   RE2 regex) and `rewrite`.
//! - The authority is rewritten in one place only: `rewrite.authority` or a
//!   `host`/`:authority` entry of `headers.request.set`/`add`.
//! - `corsPolicy`: `allowOrigins` entries are non-empty string matches;
//!   `allowMethods` are GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS, TRACE
//!   or `*`; `allowHeaders`/`exposeHeaders` are header names or `*`; `maxAge` is a
//!   whole number of seconds, at least 1s.
//! - Header operations (`headers` on a route or a destination): names are valid
//!   header names; request `set`/`add` may name `host`/`:authority` but no other
//!   `:` pseudo-header; request `remove` and all response operations may not name
//!   `host` or a `:` pseudo-header; values have no control characters and every `%`
//!   is `%%` or opens a closed `%VARIABLE%`.
//!
//! Matches:
//! - A string match sets at most one of `exact`, `prefix` or `regex`.
//! - `uri`, `scheme`, `method`, `authority` and `allowOrigins` must set one of them
//!   (an empty match object is an error); in `headers`, `withoutHeaders` and
//!   `queryParams` an empty object is Istio's presence match and is allowed.
//! - `prefix` may be empty only in `uri`; `regex` is never empty, at most 1024
//!   characters and valid RE2 (`withoutHeaders` also takes Istio's presence
//!   shorthand `regex: "*"`).
//! - Match header names (`headers`, `withoutHeaders`) are valid header names, HTTP/2
//!   pseudo-headers or `@request.auth.claims.<claim>` / `@request.auth.claims[<claim>]`;
//!   claim routing is refused unless the VirtualService is bound to gateways only.
//! - `port` is 1-65535; `sourceLabels` are valid label keys and values;
//!   `sourceNamespace` is a DNS label.
//!
//! Destinations and weights:
//! - `destination.host` is a valid host name and not `*`; `subset` is a DNS label;
//!   `port.number` is 1-65535.
//! - A weight is never negative. With more than one destination every weight must
//!   be written and the weights must add up to 100; a lone destination may omit it.
//!
//! TLS and TCP routes:
//! - Each needs at least one destination in `route`.
//! - A TLS route needs at least one match, and each match at least one SNI host.
//! - Each SNI host is a valid (wildcard) host name, or an IP address, and falls within
//!   one of the VirtualService hosts.
//! - `destinationSubnets` and `sourceSubnet` are IP addresses or CIDR blocks.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::selector::PortSelector;
use crate::{Duration, IstioStatus};

mod validation;

/// gRPC status codes by name, in the order of their numbers (`OK` is 0).
pub const GRPC_STATUSES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Routing rules for traffic addressed to a set of hosts.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "VirtualService",
    plural = "virtualservices",
    shortname = "vs",
    category = "istio-io",
    category = "networking-istio-io",
    namespaced,
    status = "IstioStatus",
    printcolumn = r#"{"name":"Gateways","type":"string","jsonPath":".spec.gateways"}"#,
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    /// Hosts the rules apply to: DNS names (a leading `*` allowed) or IPs; empty for a delegate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways (`[namespace/]name`) and/or `mesh` (all sidecars) that apply the rules; default `mesh`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Ordered HTTP rules; the first that matches a request wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// Ordered rules for TLS that is passed through, matched on SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsRoute>,
    /// Ordered rules for opaque TCP traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces that may use this VirtualService (`.` own, `*` all); default all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

/// A service (and optionally a subset and port) that traffic is sent to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// Service host name from the registry; short names resolve in the rule's namespace.
    pub host: String,
    /// A subset defined in the host's DestinationRule.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subset: String,
    /// The service port, needed only when the service has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// One HTTP rule: when it matches, and what happens to the request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// Name shown in access logs for requests this rule handles.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Conditions, any of which activates the rule; empty matches everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<HttpMatchRequest>,
    /// Weighted destinations the request is forwarded to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with an HTTP redirect instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    /// Answer with a fixed response instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<HttpDirectResponse>,
    /// Take the rules from another (delegate) VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Delegate>,
    /// Rewrite the path or authority before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Overall request timeout; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Delays and aborts injected on the client side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// A destination that also receives a copy of each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Destinations that also receive copies of requests, each with its own percentage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Deprecated whole-number percentage for `mirror`; use `mirrorPercentage`.
    #[serde(
        default,
        alias = "mirror_percent",
        skip_serializing_if = "Option::is_none"
    )]
    pub mirror_percent: Option<u32>,
    /// Share of requests copied to `mirror`; 100% when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Cross-origin resource sharing policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Header changes for all destinations of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// The VirtualService whose HTTP rules are merged in place of this rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delegate {
    /// Name of the delegate VirtualService.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its namespace; the root's namespace by default.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// Header changes on the way to the destination and on the way back.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Headers {
    /// Changes to the request before it is forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Changes to the response before it is returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Headers to overwrite, append to and remove.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderOperations {
    /// Headers to set, replacing any existing value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Values to append to headers (comma-joined with existing ones).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Headers to delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A rule for TLS passed through unterminated, chosen by SNI.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRoute {
    /// Conditions, any of which activates the rule.
    pub r#match: Vec<TlsMatchAttributes>,
    /// Weighted destinations the connection is forwarded to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// A rule for opaque TCP connections.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRoute {
    /// Conditions, any of which activates the rule; empty matches every connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<L4MatchAttributes>,
    /// Weighted destinations the connection is forwarded to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Conditions on an HTTP request; all set fields must hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatchRequest {
    /// Name added to the route name in access logs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// The URI scheme (`http`, `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// The authority (Host header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Request headers by lower-case name; `{}` checks the header is present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// The destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Applies the rule only to client workloads with these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways (or `mesh`) where this match applies, overriding the top-level list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Query parameters by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Compare `uri` exact and prefix matches without regard to case.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_uri_case: bool,
    /// Headers that must not match for the rule to apply.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Applies the rule only to client workloads in this namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_namespace: String,
    /// Prefix for the proxy's per-route statistics.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stat_prefix: String,
}

/// A weighted HTTP destination.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteDestination {
    /// Where the request goes.
    pub destination: Destination,
    /// Relative share of requests; a lone destination gets all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Header changes for this destination only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A weighted TCP or TLS destination.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDestination {
    /// Where the connection goes.
    pub destination: Destination,
    /// Relative share of connections; a lone destination gets all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// Conditions on a TCP connection; all set fields must hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L4MatchAttributes {
    /// Destination IPs or CIDR blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// The destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Source IP or CIDR block (not generally supported).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_subnet: String,
    /// Applies the rule only to client workloads with these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways (or `mesh`) where this match applies, overriding the top-level list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Applies the rule only to client workloads in this namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_namespace: String,
}

/// Conditions on a TLS connection; all set fields must hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsMatchAttributes {
    /// SNI names to match (a leading `*` allowed), within the VirtualService hosts.
    pub sni_hosts: Vec<String>,
    /// Destination IPs or CIDR blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// The destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Applies the rule only to client workloads with these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways (or `mesh`) where this match applies, overriding the top-level list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Applies the rule only to client workloads in this namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_namespace: String,
}

/// A redirect sent back to the client instead of forwarding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRedirect {
    /// Replaces the whole path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    /// Replaces the authority (host).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// Replaces the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Chooses the port from the scheme or the request instead of a fixed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<RedirectPortSelection>,
    /// Replaces the scheme (`http` or `https`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    /// Status code of the redirect; 301 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_code: Option<u32>,
    /// Replaces the matched path prefix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix_rewrite: String,
}

/// How a redirect picks its port.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// 80 for http, 443 for https.
    #[default]
    FromProtocolDefault,
    /// The port the request arrived on.
    FromRequestPort,
}

/// A fixed response sent back to the client instead of forwarding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpDirectResponse {
    /// HTTP status code of the response.
    pub status: u32,
    /// Response body; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// A response body, as text or as base64-encoded bytes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpBody {
    /// The body as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// The body as base64-encoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// Changes to the request made before forwarding it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRewrite {
    /// New path, or new prefix when the rule matched by prefix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    /// New authority (Host header).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// Rewrites the path with a regex substitution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// A regex substitution on the path.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    /// RE2 regex to find in the path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub r#match: String,
    /// Replacement; `\1`, `\2`... refer to capture groups.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rewrite: String,
}

/// How to match a string: exactly, by prefix or by RE2 regex (full match).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    /// The whole string equals this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The string starts with this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The whole string matches this RE2 regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// Which kind of match a [`StringMatch`] asks for, with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StringMatchKind<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
}

/// Retry policy for failed HTTP requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    /// Number of retries; 0 disables retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Timeout of each attempt, the first included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated Envoy retry conditions and HTTP status codes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub retry_on: String,
    /// Whether retries may go to endpoints in other localities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Whether retries avoid hosts already tried (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base interval between retries (25ms by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

/// Cross-origin resource sharing settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    /// Deprecated exact origins; use `allowOrigins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Origins allowed to make cross-origin requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// Methods allowed (Access-Control-Allow-Methods).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Request headers allowed (Access-Control-Allow-Headers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers browsers may read (Access-Control-Expose-Headers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long browsers may cache a preflight answer (Access-Control-Max-Age).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Whether requests with credentials are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Whether preflights from origins that are not allowed still reach the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// What happens to preflight requests from origins that are not allowed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// Same as FORWARD.
    #[default]
    Unspecified,
    /// Forward them to the upstream.
    Forward,
    /// Answer them at the proxy.
    Ignore,
}

/// Faults injected into requests: a delay, an abort or both.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultInjection {
    /// Wait before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Answer with an error instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
}

/// A delay injected before forwarding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delay {
    /// Deprecated whole-number percentage; use `percentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
    /// How long to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<Duration>,
    /// Exponential delay (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// An error returned instead of forwarding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Abort {
    /// HTTP status code to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// gRPC status name to answer with, such as `UNAVAILABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// HTTP/2 error (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// Share of requests aborted; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// A destination that receives copies of requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMirrorPolicy {
    /// Where the copies go.
    pub destination: Destination,
    /// Share of requests copied; 100% when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// A percentage from 0 to 100, with fractions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    /// The percentage, 0.0 to 100.0.
    #[serde(default)]
    pub value: f64,
}

impl StringMatch {
    /// The kind of match and its value, or `None` for an empty match (which
    /// Istio reads as "the header or parameter is present").
    pub fn kind(&self) -> Option<StringMatchKind<'_>> {
        if let Some(exact) = &self.exact {
            Some(StringMatchKind::Exact(exact))
        } else if let Some(prefix) = &self.prefix {
            Some(StringMatchKind::Prefix(prefix))
        } else {
            self.regex.as_deref().map(StringMatchKind::Regex)
        }
    }
}

#[cfg(test)]
mod tests;
