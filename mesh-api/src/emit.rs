//! Writes JSON values as block-style YAML, for manifests people read and keep
//! in git. Strings that YAML would read as something else are double-quoted.

use serde_json::Value;

/// One YAML document per value, each starting with `---`.
pub fn to_yaml_stream<'a>(values: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        out.push_str(&to_yaml(value));
    }
    out
}

/// One YAML document (without the leading `---`).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => write_seq(items, 0, &mut out),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

fn write_map(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (key, value) in map {
        push_indent(indent, out);
        out.push_str(&string_text(key));
        out.push(':');
        write_child(value, indent, out);
    }
}

fn write_seq(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        push_indent(indent, out);
        out.push('-');
        match item {
            // A map in a list starts on the dash's line: `- key: value`.
            Value::Object(map) if !map.is_empty() => {
                let mut nested = String::new();
                write_map(map, indent + 2, &mut nested);
                out.push(' ');
                out.push_str(nested.trim_start());
            }
            other => write_child(other, indent, out),
        }
    }
}

/// Writes what follows a `key:` or `-`: a scalar on the same line, or a block below.
fn write_child(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(map, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(items, indent, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn push_indent(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_text(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string plain when YAML reads it back as the same string, else quoted.
fn string_text(s: &str) -> String {
    let plain_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " _./-()=+$@,".contains(c));
    let starts_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || "_./".contains(c));
    let reads_back = matches!(crate::load::resolve_plain_scalar(s), Value::String(_));
    if plain_chars && starts_ok && !s.ends_with(' ') && reads_back {
        s.to_owned()
    } else {
        serde_json::to_string(s).expect("strings always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_through_the_loader() {
        let value = json!({
            "a": {"b": [1, "two", {"c": true, "d": ["x"]}], "e": {}},
            "quoted": ["1", "true", "null", "a: b", "#x", "", " lead", "multi\nline", "1.5"],
            "plain": "reviews.default.svc.cluster.local",
            "empty": [],
            "n": null
        });
        let text = to_yaml(&value);
        let (docs, err) = crate::load::parse_documents(&text);
        assert!(err.is_none(), "{text}");
        assert_eq!(docs[0].value, value, "{text}");
        assert!(
            text.contains("plain: reviews.default.svc.cluster.local\n"),
            "{text}"
        );
    }
}
