//! The RBAC principals for what a verified JWT says, as istiod writes them:
//! metadata matchers over the payload `jwt_authn` leaves under
//! `envoy.filters.http.jwt_authn` / `payload` (see
//! [`super::super::request_authentication`]).
//!
//! - `requestPrincipals` and `request.auth.principal`: `<iss>/<sub>`,
//!   split at the last `/` (issuers are often URLs), each side matched as
//!   a string, with `*`, `*<suffix>` and `<prefix>*` as istiod reads them.
//! - `request.auth.claims[a][b]`, `request.auth.audiences` (`aud`),
//!   `request.auth.presenter` (`azp`): the claim equals the value, or is
//!   a list holding it.

use envoy_types::pb::envoy::config::rbac::v3::{Principal, principal};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, OrMatcher, StringMatcher, ValueMatcher, list_matcher,
    metadata_matcher, value_matcher,
};

use super::{and_ids, string};
use crate::translate::request_authentication::{FILTER_NAME, PAYLOAD_KEY};

/// A request principal, `<iss>/<sub>` with Istio's wildcards.
pub(super) fn request_principal(value: &str) -> Principal {
    let any = || string("*");
    let (iss, sub) = match value.rsplit_once('/') {
        _ if value == "*" => (any(), any()),
        Some(("*", sub)) if value.starts_with('*') => (any(), exact(sub)),
        Some((iss, sub)) if value.starts_with('*') => (string(iss), exact(sub)),
        None if value.starts_with('*') => (any(), string(value)),
        Some((iss, "*")) if value.ends_with('*') => (exact(iss), any()),
        Some((iss, sub)) if value.ends_with('*') => (exact(iss), string(sub)),
        None if value.ends_with('*') => (string(value), any()),
        Some((iss, sub)) => (exact(iss), exact(sub)),
        None => (exact(value), exact("")),
    };
    and_ids(vec![
        metadata(claim_matcher(&["iss"], string_value(iss))),
        metadata(claim_matcher(&["sub"], string_value(sub))),
    ])
}

/// A claim (a path into nested claims) holding `value`, or a list with it.
pub(super) fn claim(path: &[&str], value: &str) -> Principal {
    let value = string_value(string(value));
    let list = ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
            ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(value.clone()))),
            },
        ))),
    };
    let either = ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::OrMatch(OrMatcher {
            value_matchers: vec![list, value],
        })),
    };
    metadata(claim_matcher(path, either))
}

/// The claim names of `request.auth.claims[a][b]` (here `[a][b]`): `["a",
/// "b"]`; a single bracketed name may contain anything but `]`.
pub(super) fn claim_path(brackets: &str) -> Option<Vec<&str>> {
    let mut names = Vec::new();
    let mut rest = brackets;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        if inner[..end].contains('[') {
            break;
        }
        names.push(&inner[..end]);
        rest = &inner[end + 1..];
    }
    if rest.is_empty() {
        return Some(names);
    }
    let whole = brackets.strip_prefix('[')?.strip_suffix(']')?;
    Some(vec![whole])
}

fn exact(value: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(
            envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Exact(
                value.into(),
            ),
        ),
        ..StringMatcher::default()
    }
}

fn string_value(m: StringMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::StringMatch(m)),
    }
}

fn claim_matcher(path: &[&str], value: ValueMatcher) -> MetadataMatcher {
    let keys = std::iter::once(PAYLOAD_KEY).chain(path.iter().copied());
    MetadataMatcher {
        filter: FILTER_NAME.into(),
        path: keys
            .map(|key| metadata_matcher::PathSegment {
                segment: Some(metadata_matcher::path_segment::Segment::Key(key.into())),
            })
            .collect(),
        value: Some(value),
        invert: false,
    }
}

/// `metadata`, deprecated in Envoy for `sourced_metadata` but what istiod
/// writes and what the proxy reads.
#[allow(deprecated)]
fn metadata(m: MetadataMatcher) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Metadata(m)),
    }
}
