//! Request and response header changes of routes, virtual hosts and route
//! configurations (`request_headers_to_add`, `response_headers_to_remove`, ...).

use envoy_types::pb::envoy::config::core::v3::{HeaderValueOption, header_value_option};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{At, ConfigError};

/// Header changes at one level of the route table.
#[derive(Debug, Default, Clone)]
pub struct HeaderMutations {
    pub request_add: Vec<HeaderAdd>,
    pub request_remove: Vec<HeaderName>,
    pub response_add: Vec<HeaderAdd>,
    pub response_remove: Vec<HeaderName>,
}

#[derive(Debug, Clone)]
pub struct HeaderAdd {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub action: AppendAction,
}

/// What to do when the header is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAction {
    Append,
    AddIfAbsent,
    Overwrite,
    OverwriteIfExists,
}

/// The four header lists of one level, as Envoy names them.
pub(super) struct Lists<'a> {
    pub request_add: &'a [HeaderValueOption],
    pub request_remove: &'a [String],
    pub response_add: &'a [HeaderValueOption],
    pub response_remove: &'a [String],
}

pub(super) fn compile(lists: Lists<'_>, at: &At) -> Result<HeaderMutations, ConfigError> {
    Ok(HeaderMutations {
        request_add: adds(lists.request_add, &at.field("request_headers_to_add"))?,
        request_remove: removes(lists.request_remove, &at.field("request_headers_to_remove"))?,
        response_add: adds(lists.response_add, &at.field("response_headers_to_add"))?,
        response_remove: removes(
            lists.response_remove,
            &at.field("response_headers_to_remove"),
        )?,
    })
}

fn adds(options: &[HeaderValueOption], at: &At) -> Result<Vec<HeaderAdd>, ConfigError> {
    options
        .iter()
        .enumerate()
        .map(|(i, option)| {
            let at = at.index(i);
            let header = option
                .header
                .as_ref()
                .ok_or_else(|| at.field("header").error("header is required"))?;
            let name = header_name(&header.key, &at.field("header").field("key"))?;
            let text = if header.value.is_empty() {
                String::from_utf8_lossy(&header.raw_value).into_owned()
            } else {
                header.value.clone()
            };
            if text.replace("%%", "").contains('%') {
                return Err(at
                    .field("header")
                    .field("value")
                    .unsupported("%VARIABLE% substitution"));
            }
            let value = HeaderValue::from_str(&text.replace("%%", "%")).map_err(|_| {
                at.field("header")
                    .field("value")
                    .error(format_args!("{text:?} is not a valid header value"))
            })?;
            use header_value_option::HeaderAppendAction as A;
            #[allow(deprecated)]
            let action = match (
                option.append.as_ref().map(|a| a.value),
                A::try_from(option.append_action),
            ) {
                (Some(true), _) => AppendAction::Append,
                (Some(false), _) => AppendAction::Overwrite,
                (None, Ok(A::AppendIfExistsOrAdd)) => AppendAction::Append,
                (None, Ok(A::AddIfAbsent)) => AppendAction::AddIfAbsent,
                (None, Ok(A::OverwriteIfExistsOrAdd)) => AppendAction::Overwrite,
                (None, Ok(A::OverwriteIfExists)) => AppendAction::OverwriteIfExists,
                (None, Err(_)) => {
                    return Err(at.field("append_action").error("unknown append action"));
                }
            };
            Ok(HeaderAdd {
                name,
                value,
                action,
            })
        })
        .collect()
}

fn removes(names: &[String], at: &At) -> Result<Vec<HeaderName>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| header_name(name, &at.index(i)))
        .collect()
}

fn header_name(name: &str, at: &At) -> Result<HeaderName, ConfigError> {
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        return Err(at.unsupported(format_args!("changing {name:?}")));
    }
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| at.error(format_args!("{name:?} is not a header name")))
}

impl HeaderMutations {
    pub fn apply_request(&self, headers: &mut HeaderMap) {
        apply(&self.request_remove, &self.request_add, headers);
    }

    pub fn apply_response(&self, headers: &mut HeaderMap) {
        apply(&self.response_remove, &self.response_add, headers);
    }
}

/// Removals first, then additions, as Envoy orders them.
fn apply(remove: &[HeaderName], add: &[HeaderAdd], headers: &mut HeaderMap) {
    for name in remove {
        headers.remove(name);
    }
    for header in add {
        let present = headers.contains_key(&header.name);
        match header.action {
            AppendAction::Append => {
                headers.append(header.name.clone(), header.value.clone());
            }
            AppendAction::AddIfAbsent if !present => {
                headers.insert(header.name.clone(), header.value.clone());
            }
            AppendAction::Overwrite => {
                headers.insert(header.name.clone(), header.value.clone());
            }
            AppendAction::OverwriteIfExists if present => {
                headers.insert(header.name.clone(), header.value.clone());
            }
            AppendAction::AddIfAbsent | AppendAction::OverwriteIfExists => {}
        }
    }
}
