//! Dynamic metadata, which HTTP filters leave on a request for the filters
//! after them, and Envoy's `MetadataMatcher` over it: a filter's namespace,
//! a path of keys, and a `ValueMatcher` (`string_match`, `double_match`,
//! `bool_match`, `present_match`, `null_match`, `list_match.one_of`,
//! `or_match`), with `invert`. `jwt_authn` writes verified payloads there,
//! and Istio's RBAC rules for request principals and claims read them;
//! RBAC writes its shadow results (which `ext_authz` reads to decide
//! whether to run) and `access_log_hint`; access logs print any of it.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::r#type::matcher::v3::{
    DoubleMatcher, MetadataMatcher, ValueMatcher, double_matcher, list_matcher,
    metadata_matcher::path_segment, value_matcher,
};
use serde_json::Value;

use super::route::string_matcher;
use super::{At, ConfigError, ValueMatch};

/// Metadata by filter name, carried in a request's extensions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicMetadata(pub BTreeMap<String, serde_json::Map<String, Value>>);

impl DynamicMetadata {
    /// Sets `key` in `filter`'s namespace.
    pub fn set(&mut self, filter: &str, key: &str, value: Value) {
        self.0
            .entry(filter.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
    }

    /// Adds `other`'s keys, replacing those already set, as Envoy merges
    /// what a filter emits into its namespace.
    pub fn merge(&mut self, other: DynamicMetadata) {
        for (filter, keys) in other.0 {
            self.0.entry(filter).or_default().extend(keys);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at `path` (keys into nested objects) in `filter`'s namespace.
    pub fn get(&self, filter: &str, path: &[String]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut value = self.0.get(filter)?.get(first)?;
        for key in rest {
            value = value.as_object()?.get(key)?;
        }
        Some(value)
    }
}

/// A compiled `MetadataMatcher`.
#[derive(Debug)]
pub struct MetadataMatch {
    filter: String,
    path: Vec<String>,
    value: ValueMatcherKind,
    invert: bool,
}

#[derive(Debug)]
enum ValueMatcherKind {
    Null,
    Double(DoubleMatch),
    String(ValueMatch),
    Bool(bool),
    Present(bool),
    ListOneOf(Box<ValueMatcherKind>),
    Or(Vec<ValueMatcherKind>),
}

#[derive(Debug)]
enum DoubleMatch {
    /// `[start, end)`.
    Range(f64, f64),
    Exact(f64),
}

impl MetadataMatch {
    /// Whether the request's metadata matches; no metadata matches nothing
    /// (unless inverted), as in Envoy.
    pub fn matches(&self, metadata: Option<&DynamicMetadata>) -> bool {
        let value = metadata.and_then(|m| m.get(&self.filter, &self.path));
        let matched = value.is_some_and(|v| self.value.matches(v));
        matched != self.invert
    }
}

impl ValueMatcherKind {
    fn matches(&self, value: &Value) -> bool {
        match self {
            ValueMatcherKind::Null => value.is_null(),
            ValueMatcherKind::Double(DoubleMatch::Exact(x)) => value.as_f64() == Some(*x),
            ValueMatcherKind::Double(DoubleMatch::Range(start, end)) => {
                value.as_f64().is_some_and(|v| (*start..*end).contains(&v))
            }
            ValueMatcherKind::String(m) => value
                .as_str()
                .is_some_and(|s| crate::http::route::value_matches(m, s)),
            ValueMatcherKind::Bool(b) => value.as_bool() == Some(*b),
            ValueMatcherKind::Present(present) => *present,
            ValueMatcherKind::ListOneOf(inner) => value
                .as_array()
                .is_some_and(|items| items.iter().any(|item| inner.matches(item))),
            ValueMatcherKind::Or(any) => any.iter().any(|m| m.matches(value)),
        }
    }
}

/// Compiles a `MetadataMatcher`.
pub(super) fn compile(m: &MetadataMatcher, at: &At) -> Result<MetadataMatch, ConfigError> {
    if m.filter.is_empty() {
        return Err(at.field("filter").error("filter is required"));
    }
    let path = m
        .path
        .iter()
        .enumerate()
        .map(|(i, segment)| match &segment.segment {
            Some(path_segment::Segment::Key(key)) => Ok(key.clone()),
            None => Err(at.field("path").index(i).error("key is required")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if path.is_empty() {
        return Err(at.field("path").error("at least one key is required"));
    }
    let value = m
        .value
        .as_ref()
        .ok_or_else(|| at.field("value").error("value is required"))?;
    Ok(MetadataMatch {
        filter: m.filter.clone(),
        path,
        value: value_matcher(value, &at.field("value"))?,
        invert: m.invert,
    })
}

fn value_matcher(m: &ValueMatcher, at: &At) -> Result<ValueMatcherKind, ConfigError> {
    use value_matcher::MatchPattern as P;
    Ok(match &m.match_pattern {
        Some(P::NullMatch(_)) => ValueMatcherKind::Null,
        Some(P::DoubleMatch(d)) => ValueMatcherKind::Double(double(d, &at.field("double_match"))?),
        Some(P::StringMatch(s)) => {
            ValueMatcherKind::String(string_matcher(s, &at.field("string_match"))?)
        }
        Some(P::BoolMatch(b)) => ValueMatcherKind::Bool(*b),
        Some(P::PresentMatch(p)) => ValueMatcherKind::Present(*p),
        Some(P::ListMatch(list)) => {
            let at = at.field("list_match");
            match &list.match_pattern {
                Some(list_matcher::MatchPattern::OneOf(inner)) => ValueMatcherKind::ListOneOf(
                    Box::new(value_matcher(inner, &at.field("one_of"))?),
                ),
                None => return Err(at.field("one_of").error("one_of is required")),
            }
        }
        Some(P::OrMatch(or)) => ValueMatcherKind::Or(
            or.value_matchers
                .iter()
                .enumerate()
                .map(|(i, m)| value_matcher(m, &at.field("or_match").index(i)))
                .collect::<Result<_, _>>()?,
        ),
        None => return Err(at.error("a match pattern is required")),
    })
}

fn double(d: &DoubleMatcher, at: &At) -> Result<DoubleMatch, ConfigError> {
    match &d.match_pattern {
        Some(double_matcher::MatchPattern::Range(r)) => Ok(DoubleMatch::Range(r.start, r.end)),
        Some(double_matcher::MatchPattern::Exact(x)) => Ok(DoubleMatch::Exact(*x)),
        None => Err(at.error("range or exact is required")),
    }
}
