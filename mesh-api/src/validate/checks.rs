//! Field-level checks shared by every kind. Each returns the reason a value
//! is wrong, ready to be recorded against the field's path.

use std::net::IpAddr;
use std::sync::OnceLock;

use regex::Regex;

use crate::Duration;
use crate::validate::{Errors, Path};

/// A check's verdict: the reason a value is wrong, if it is.
pub type Check = Result<(), String>;

const MAX_HOST_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;

/// A DNS-1123 label as Istio reads it: letters (either case), digits and inner dashes.
pub fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A host name, where the first label alone may carry a leading `*`
/// (`*`, `*.example.com`, `*-api.example.com`). Short names are allowed.
pub fn wildcard_host(host: &str) -> Check {
    if host.is_empty() {
        return Err("host must not be empty".into());
    }
    if host.len() > MAX_HOST_LEN {
        return Err(format!(
            "host {host:?} is longer than {MAX_HOST_LEN} characters"
        ));
    }
    let (first, rest) = match host.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (host, None),
    };
    let first_ok = match first.strip_prefix('*') {
        Some("") => true,
        Some(tail) => is_dns_label(tail.trim_start_matches('-')) || tail == "-",
        None => is_dns_label(first),
    };
    if !first_ok {
        return Err(format!(
            "host {host:?} is not a valid domain name (a wildcard may only lead the first label)"
        ));
    }
    if let Some(bad) = rest.and_then(|rest| rest.split('.').find(|label| !is_dns_label(label))) {
        return Err(format!(
            "host {host:?} is not a valid domain name (label {bad:?} is invalid)"
        ));
    }
    Ok(())
}

/// A host name with no wildcard at all.
pub fn exact_host(host: &str) -> Check {
    wildcard_host(host)?;
    if host.contains('*') {
        return Err(format!("host {host:?} must not contain a wildcard"));
    }
    Ok(())
}

/// A host written `namespace/host`, where namespace may be `*`, `.` or `~`.
pub fn namespaced_host(value: &str) -> Check {
    let Some((namespace, host)) = value.split_once('/') else {
        return Err(format!("{value:?} must be written namespace/host"));
    };
    if !matches!(namespace, "*" | "." | "~") && !is_dns_label(namespace) {
        return Err(format!("{value:?} has an invalid namespace {namespace:?}"));
    }
    wildcard_host(host)
}

/// A DNS-1123 label in lower case, as Kubernetes names and subset names are.
pub fn dns_label(name: &str) -> Check {
    if is_dns_label(name) && !name.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be a lower-case DNS label (a-z, 0-9 and '-', at most 63 characters)"
        ))
    }
}

/// A DNS-1123 subdomain: lower-case labels joined by dots.
pub fn dns_subdomain(name: &str) -> Check {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| dns_label(label).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} must be a lower-case DNS subdomain"))
    }
}

/// A regular expression in RE2 syntax (the `regex` crate speaks the same dialect).
pub fn re2(pattern: &str) -> Check {
    Regex::new(pattern).map(|_| ()).map_err(|err| {
        let detail = match err {
            regex::Error::Syntax(text) => text
                .lines()
                .filter(|line| line.starts_with("error:"))
                .map(|line| line.trim_start_matches("error:").trim().to_owned())
                .next()
                .unwrap_or(text),
            other => other.to_string(),
        };
        format!("{pattern:?} is not a valid RE2 regex: {detail}")
    })
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
pub fn ip_or_cidr(value: &str) -> Check {
    let invalid = || format!("{value:?} is not a valid IP address or CIDR block");
    let Some((address, length)) = value.split_once('/') else {
        return value.parse::<IpAddr>().map(drop).map_err(|_| invalid());
    };
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let digits = !length.is_empty() && length.bytes().all(|b| b.is_ascii_digit());
    match length.parse::<u8>() {
        Ok(bits) if digits && bits <= max => Ok(()),
        _ => Err(format!(
            "{value:?} is not a valid CIDR block (prefix length 0 to {max})"
        )),
    }
}

/// Which kinds may use `~` (visible to no one) in `exportTo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportToNone {
    Allowed,
    /// Istio allows `~` only on ServiceEntry.
    Refused,
}

/// `exportTo`: `.` (own namespace), `*` (every namespace), namespace names,
/// and `~` where allowed; no duplicates; `*` and `~` stand alone.
pub fn export_to(list: &[String], none: ExportToNone, at: &Path, errs: &mut Errors) {
    let mut seen = std::collections::BTreeSet::new();
    let allowed = match none {
        ExportToNone::Allowed => "\".\", \"*\", \"~\" or a namespace name",
        ExportToNone::Refused => "\".\", \"*\" or a namespace name",
    };
    for (i, entry) in list.iter().enumerate() {
        let here = at.index(i);
        if !seen.insert(entry.as_str()) {
            errs.add(
                &here,
                format!("exportTo entry {entry:?} is listed more than once"),
            );
        } else if entry == "~" && none == ExportToNone::Refused {
            errs.add(&here, format!("exportTo \"~\" (visible to no one) is only allowed on ServiceEntry; use {allowed}"));
        } else if !matches!(entry.as_str(), "." | "*" | "~") && dns_label(entry).is_err() {
            errs.add(&here, format!("exportTo entry {entry:?} must be {allowed}"));
        }
    }
    for (alone, meaning) in [("*", "every namespace"), ("~", "no namespace")] {
        if list.len() > 1 && seen.contains(alone) {
            errs.add(
                at,
                format!(
                    "exportTo {alone:?} means {meaning} and cannot be combined with other entries"
                ),
            );
        }
    }
}

/// A TCP/UDP port number.
pub fn port(number: u32) -> Check {
    if (1..=65535).contains(&number) {
        Ok(())
    } else {
        Err(format!("port number {number} must be between 1 and 65535"))
    }
}

/// A percentage between 0 and 100.
pub fn percent(value: f64) -> Check {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("percentage {value} must be between 0 and 100"))
    }
}

/// A duration of at least 1ms with millisecond precision, as Envoy needs.
pub fn duration_ms(value: Duration) -> Check {
    let d = value.as_std();
    if d < std::time::Duration::from_millis(1) {
        return Err(format!("duration {value} must be at least 1ms"));
    }
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(format!(
            "duration {value} has more than millisecond precision"
        ));
    }
    Ok(())
}

/// An HTTP header name (an RFC 7230 token).
pub fn header_name(name: &str) -> Check {
    const SPECIAL: &[u8] = b"!#$%&'*+-.^_`|~";
    if name.is_empty() {
        return Err("header name must not be empty".into());
    }
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || SPECIAL.contains(&b))
    {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid HTTP header name"))
    }
}

/// A Kubernetes label key: optional DNS-subdomain prefix, `/`, then a name.
pub fn label_key(key: &str) -> Check {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns_subdomain(prefix).map_err(|_| format!("label key {key:?} has an invalid prefix"))?;
    }
    if is_label_value(name) && !name.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "label key {key:?} is invalid (at most 63 of a-z, A-Z, 0-9, '-', '_', '.', starting and ending alphanumeric)"
        ))
    }
}

/// A Kubernetes label value (may be empty).
pub fn label_value(value: &str) -> Check {
    if is_label_value(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} is invalid (at most 63 of a-z, A-Z, 0-9, '-', '_', '.', starting and ending alphanumeric)"
        ))
    }
}

fn is_label_value(value: &str) -> bool {
    static LABEL: OnceLock<Regex> = OnceLock::new();
    let re = LABEL.get_or_init(|| {
        Regex::new(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$").expect("static regex")
    });
    value.len() <= MAX_LABEL_LEN && re.is_match(value)
}

/// Records a problem when more than one of a protobuf `oneof`'s fields is set.
pub fn one_of(set: &[(&str, bool)]) -> Check {
    let chosen: Vec<&str> = set.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
    if chosen.len() > 1 {
        Err(format!("only one of {} may be set", chosen.join(", ")))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in [
            "*",
            "reviews",
            "reviews.default.svc.cluster.local",
            "*.example.com",
            "*-api.example.com",
            "Ex.COM",
        ] {
            assert_eq!(wildcard_host(good), Ok(()), "{good}");
        }
        for bad in [
            "", "rev*iews", "*.*.com", "a..b", "foo.*", "-a.com", "a_b.com",
        ] {
            assert!(wildcard_host(bad).is_err(), "{bad}");
        }
        assert!(exact_host("*.example.com").is_err());
        assert_eq!(
            namespaced_host("./reviews.default.svc.cluster.local"),
            Ok(())
        );
        assert_eq!(namespaced_host("*/*"), Ok(()));
        assert!(namespaced_host("reviews").is_err());
    }

    #[test]
    fn regexes_and_numbers() {
        assert_eq!(re2("^/api/v[0-9]+/.*"), Ok(()));
        let err = re2("^/api/(v1").unwrap_err();
        assert!(err.contains("not a valid RE2 regex"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert!(port(0).is_err() && port(65536).is_err() && port(9080).is_ok());
        assert!(percent(100.5).is_err() && percent(-1.0).is_err() && percent(f64::NAN).is_err());
        assert!(duration_ms(Duration::ZERO).is_err());
        assert!(duration_ms(Duration::from_millis(1500)).is_ok());
    }

    #[test]
    fn labels_and_names() {
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("bad key").is_err());
        assert!(label_value("v1").is_ok() && label_value("").is_ok());
        assert!(label_value("-v1").is_err());
        assert!(dns_label("v2-mysql").is_ok());
        assert!(dns_label("V2").is_err());
        assert_eq!(
            one_of(&[("exact", true), ("prefix", true), ("regex", false)]).unwrap_err(),
            "only one of exact, prefix may be set"
        );
    }
}
