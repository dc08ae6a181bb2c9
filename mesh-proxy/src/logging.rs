//! Changing the log filter at run time: the admin server's `/logging`.
//!
//! - `GET /logging` shows the filter in force (`EnvFilter` syntax).
//! - `POST /logging?level=debug` sets every target to that level, like
//!   `--log debug`.
//! - `POST /logging?<component>=<level>` sets one component and keeps the
//!   rest. A component is a tracing target such as `mesh_proxy::http` or
//!   `hyper`, or one of Envoy's logger names: `admin`, `config`, `hc`,
//!   `http`, `main`, `router`, `tcp`, `upstream`.
//!
//! Levels are `trace`, `debug`, `info`, `warn` (or Envoy's `warning`),
//! `error` (or `critical`) and `off`.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use http::StatusCode;
use tracing_subscriber::reload;
use tracing_subscriber::{EnvFilter, Registry};

/// Something that can replace the process's log filter.
pub trait LogControl: Send + Sync + fmt::Debug {
    /// The filter in force, in `EnvFilter` syntax.
    fn filter(&self) -> String;
    /// Replaces the filter.
    fn set_filter(&self, filter: &str) -> Result<(), String>;
}

/// The [`LogControl`] of a subscriber built with a reloadable [`EnvFilter`].
pub struct ReloadableFilter {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The text of the filter in force, as given.
    text: Mutex<String>,
}

impl fmt::Debug for ReloadableFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableFilter")
            .field("filter", &self.filter())
            .finish()
    }
}

impl ReloadableFilter {
    /// `text` is the filter the subscriber was built with.
    pub fn new(handle: reload::Handle<EnvFilter, Registry>, text: &str) -> ReloadableFilter {
        ReloadableFilter {
            handle,
            text: Mutex::new(text.to_owned()),
        }
    }
}

impl LogControl for ReloadableFilter {
    fn filter(&self) -> String {
        self.text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_filter(&self, filter: &str) -> Result<(), String> {
        let parsed = EnvFilter::try_new(filter).map_err(|err| err.to_string())?;
        let mut text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        self.handle.reload(parsed).map_err(|err| err.to_string())?;
        *text = filter.to_owned();
        Ok(())
    }
}

/// Envoy's logger names, and the targets they stand for here.
const COMPONENTS: [(&str, &str); 8] = [
    ("admin", "mesh_proxy::admin"),
    ("config", "mesh_proxy::config"),
    ("hc", "mesh_proxy::health"),
    ("http", "mesh_proxy::http"),
    ("main", "mesh_proxy"),
    ("router", "mesh_proxy::http::forward"),
    ("tcp", "mesh_proxy::tcp"),
    ("upstream", "mesh_proxy::upstream"),
];

/// Serves `/logging`: `query` is the request's query, `change` whether it was a POST.
pub fn page(
    control: Option<&dyn LogControl>,
    change: bool,
    query: Option<&str>,
) -> (StatusCode, String) {
    let Some(control) = control else {
        return (
            StatusCode::NOT_IMPLEMENTED,
            "the log level cannot be changed in this process\n".into(),
        );
    };
    let query = query.unwrap_or_default();
    if change && !query.is_empty() {
        let filter = match updated(&control.filter(), query) {
            Ok(filter) => filter,
            Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")),
        };
        if let Err(err) = control.set_filter(&filter) {
            return (StatusCode::BAD_REQUEST, format!("{err}\n"));
        }
        tracing::info!(%filter, "log filter changed");
    } else if !query.is_empty() {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "changing the log level needs a POST\n".into(),
        );
    }
    (
        StatusCode::OK,
        format!("active filter: {}\n", control.filter()),
    )
}

/// The filter after the changes a `/logging` query asks for.
pub fn updated(current: &str, query: &str) -> Result<String, String> {
    let mut directives: Vec<String> = current
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (decode(key), decode(value));
        let level = level(&value)?;
        if key == "level" {
            directives = vec![level.to_owned()];
            continue;
        }
        let target = component(&key)?;
        // A later directive for a target wins over an earlier one in
        // EnvFilter only when more specific, so replace instead.
        directives.retain(|d| d.rsplit_once('=').is_none_or(|(t, _)| t != target));
        directives.push(format!("{target}={level}"));
    }
    Ok(directives.join(","))
}

fn level(value: &str) -> Result<&'static str, String> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" => "error",
        "off" => "off",
        _ => return Err(format!("unknown log level {value:?}")),
    })
}

fn component(key: &str) -> Result<String, String> {
    if let Some((_, target)) = COMPONENTS.iter().find(|(name, _)| *name == key) {
        return Ok((*target).to_owned());
    }
    let is_path = !key.is_empty()
        && key.split("::").all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if is_path {
        Ok(key.to_owned())
    } else {
        Err(format!(
            "unknown logger {key:?}: use a tracing target such as mesh_proxy::http"
        ))
    }
}

/// Percent-decodes a query component (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn queries_update_the_filter() {
        assert_eq!(updated("info", "level=debug").unwrap(), "debug");
        assert_eq!(
            updated("info,mesh_proxy::http=warn", "level=warning").unwrap(),
            "warn"
        );
        assert_eq!(
            updated("info", "mesh_proxy::http=debug").unwrap(),
            "info,mesh_proxy::http=debug"
        );
        assert_eq!(
            updated("info,mesh_proxy::http=debug", "http=error&hc=trace").unwrap(),
            "info,mesh_proxy::http=error,mesh_proxy::health=trace"
        );
        assert_eq!(
            updated("info", "mesh_proxy%3A%3Aadmin=debug").unwrap(),
            "info,mesh_proxy::admin=debug"
        );
        assert!(updated("info", "level=loud").is_err());
        assert!(updated("info", "no%20such=debug").is_err());
        assert!(updated("info", "x=").is_err());
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn reloading_changes_what_is_logged() {
        let (filter, handle) = reload::Layer::new(EnvFilter::new("info"));
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(filter).with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
        let control = ReloadableFilter::new(handle, "info");
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("hidden");
            let (status, body) = page(Some(&control), true, Some("level=debug"));
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, "active filter: debug\n")
            );
            tracing::debug!("shown");
            let (status, _) = page(Some(&control), true, Some("mesh_proxy=error"));
            assert_eq!(status, StatusCode::OK);
            tracing::error!(target: "mesh_proxy::x", "kept");
            tracing::warn!(target: "mesh_proxy::x", "dropped");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("hidden") && text.contains("shown"), "{text}");
        assert!(text.contains("kept") && !text.contains("dropped"), "{text}");
        assert_eq!(control.filter(), "debug,mesh_proxy=error");
        assert_eq!(
            page(Some(&control), false, None),
            (
                StatusCode::OK,
                "active filter: debug,mesh_proxy=error\n".into()
            )
        );
        assert_eq!(
            page(Some(&control), false, Some("level=info")).0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            page(Some(&control), true, Some("level=loud")).0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(page(None, false, None).0, StatusCode::NOT_IMPLEMENTED);
    }
}
