//! YAML to JSON values, remembering the line of every field.
//!
//! Kubernetes reads YAML by converting it to JSON first; this does the same,
//! with the YAML 1.2 core schema for plain scalars, so that typed parsing sees
//! exactly what the API server would. Alongside each document it keeps a
//! [`LineIndex`] from field path to line, so that any problem found later
//! (by serde or by validation) can point at its line.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

use crate::validate::{Path, Segment};

/// One YAML document as JSON, with the lines of its fields.
#[derive(Debug)]
pub struct YamlDocument {
    pub value: Value,
    /// The line where the document's content starts (1-based).
    pub line: usize,
    pub lines: LineIndex,
}

/// Field path to the (1-based) line where that field is written.
#[derive(Debug, Default, Clone)]
pub struct LineIndex(HashMap<Vec<Segment>, usize>);

impl LineIndex {
    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &Path) -> Option<usize> {
        let segments = path.segments();
        (0..=segments.len())
            .rev()
            .find_map(|len| self.0.get(&segments[..len]).copied())
    }

    /// The lines of the value at `prefix`, with paths relative to it.
    pub fn under(&self, prefix: &Path) -> LineIndex {
        let prefix = prefix.segments();
        let inner = self
            .0
            .iter()
            .filter_map(|(path, line)| Some((path.strip_prefix(prefix)?.to_vec(), *line)))
            .collect();
        LineIndex(inner)
    }
}

/// A problem in the YAML text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub reason: String,
}

/// Reads every document of a YAML stream. Documents before a syntax error are
/// returned along with the error, so that one bad document does not hide the
/// others' problems.
pub fn parse_documents(text: &str) -> (Vec<YamlDocument>, Option<YamlError>) {
    let mut builder = Builder::default();
    let mut docs = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            Err(err) => {
                let error = YamlError {
                    line: err.marker().line(),
                    reason: format!("invalid YAML: {}", err.info()),
                };
                return (docs, Some(error));
            }
        };
        match builder.on_event(event, span) {
            Ok(Some(doc)) => docs.push(doc),
            Ok(None) => {}
            Err(error) => return (docs, Some(error)),
        }
    }
    (docs, None)
}

enum Frame {
    Seq {
        items: Vec<Value>,
        path: Vec<Segment>,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        path: Vec<Segment>,
        anchor: usize,
        key: Option<String>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    lines: LineIndex,
    doc_line: Option<usize>,
    root: Option<Value>,
}

impl Builder {
    fn on_event(
        &mut self,
        event: Event<'_>,
        span: Span,
    ) -> Result<Option<YamlDocument>, YamlError> {
        let line = span.start.line();
        match event {
            Event::DocumentStart(_) => {
                self.anchors.clear();
                self.lines = LineIndex::default();
                self.doc_line = None;
                self.root = None;
            }
            Event::DocumentEnd => {
                let value = self.root.take().unwrap_or(Value::Null);
                let doc = YamlDocument {
                    value,
                    line: self.doc_line.unwrap_or(line),
                    lines: std::mem::take(&mut self.lines),
                };
                return Ok(Some(doc));
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = if self.expects_key() {
                    Value::String(text.into_owned())
                } else {
                    resolve_scalar(&text, style, tag.as_deref())
                };
                self.remember(anchor, &value);
                self.deliver(value, line)?;
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                    line,
                    reason: "alias refers to an unknown anchor".into(),
                })?;
                self.deliver(value, line)?;
            }
            Event::SequenceStart(anchor, _) => {
                let path = self.child_path(line)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                let path = self.child_path(line)?;
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    path,
                    anchor,
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    None => return Ok(None),
                };
                self.remember(anchor, &value);
                self.place(value)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(None)
    }

    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn remember(&mut self, anchor: usize, value: &Value) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
    }

    /// The path a new value at the current position will have, recording its line.
    fn child_path(&mut self, line: usize) -> Result<Vec<Segment>, YamlError> {
        let path = match self.stack.last() {
            None => Vec::new(),
            Some(Frame::Seq { items, path, .. }) => {
                let mut path = path.clone();
                path.push(Segment::Index(items.len()));
                path
            }
            Some(Frame::Map {
                key: Some(key),
                path,
                ..
            }) => {
                let mut path = path.clone();
                path.push(Segment::Key(key.clone()));
                path
            }
            Some(Frame::Map { key: None, .. }) => {
                return Err(YamlError {
                    line,
                    reason: "mapping keys must be plain strings, not lists or maps".into(),
                });
            }
        };
        self.doc_line.get_or_insert(line);
        self.lines.0.entry(path.clone()).or_insert(line);
        Ok(path)
    }

    /// A scalar or alias arrived at `line`: record where it sits, then place it.
    fn deliver(&mut self, value: Value, line: usize) -> Result<(), YamlError> {
        if let Some(Frame::Map {
            key: None,
            path,
            map,
            ..
        }) = self.stack.last_mut()
        {
            let Value::String(key) = value else {
                return Err(YamlError {
                    line,
                    reason: "mapping keys must be plain strings".into(),
                });
            };
            if map.contains_key(&key) {
                return Err(YamlError {
                    line,
                    reason: format!("duplicate key {key:?}"),
                });
            }
            let mut field = path.clone();
            field.push(Segment::Key(key.clone()));
            self.lines.0.insert(field, line);
            if let Some(Frame::Map { key: slot, .. }) = self.stack.last_mut() {
                *slot = Some(key);
            }
            return Ok(());
        }
        self.child_path(line)?;
        self.place(value)
    }

    fn place(&mut self, value: Value) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, .. }) => {
                if let Some(key) = key.take() {
                    map.insert(key, value);
                }
            }
        }
        Ok(())
    }
}

/// Gives a scalar its JSON type: quoted scalars are strings; plain ones follow
/// the YAML 1.2 core schema (null, booleans, integers, floats, else a string).
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag.filter(|t| t.is_yaml_core_schema()) {
        return match tag.suffix.as_str() {
            "str" => Value::String(text.to_owned()),
            "null" => Value::Null,
            _ => resolve_plain(text),
        };
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    resolve_plain(text)
}

/// What a plain (unquoted) scalar means: null, a boolean, a number or a string.
pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(number) = parse_int(text) {
        return Value::Number(number);
    }
    if looks_like_float(text)
        && let Some(number) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(number);
    }
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<Number> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()?
    } else if let Some(octal) = digits.strip_prefix("0o") {
        u64::from_str_radix(octal, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    if negative {
        let value = i64::try_from(magnitude).ok()?;
        Some(Number::from(-value))
    } else {
        Some(Number::from(magnitude))
    }
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole) && digits(frac) && !(whole.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_like_kubernetes() {
        let text = "a: 1\nb: '1'\nc: 1.5\nd: true\ne: ~\nf: [x, 2]\ng: 0x10\nh: 1.5s\ni: -3\n";
        let (docs, err) = parse_documents(text);
        assert!(err.is_none());
        assert_eq!(
            docs[0].value,
            json!({"a": 1, "b": "1", "c": 1.5, "d": true, "e": null, "f": ["x", 2], "g": 16, "h": "1.5s", "i": -3})
        );
    }

    #[test]
    fn remembers_lines_of_fields_and_items() {
        let text = "---\nkind: X\nspec:\n  http:\n  - route:\n    - weight: 50\n    - weight: 40\n---\nkind: Y\n";
        let (docs, err) = parse_documents(text);
        assert!(err.is_none());
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 2);
        assert_eq!(docs[1].line, 9);
        let weight = Path::spec()
            .field("http")
            .index(0)
            .field("route")
            .index(1)
            .field("weight");
        assert_eq!(docs[0].lines.line_of(&weight), Some(7));
        let route0 = Path::spec().field("http").index(0).field("route").index(0);
        assert_eq!(docs[0].lines.line_of(&route0), Some(6));
        let missing = Path::spec().field("http").index(0).field("timeout");
        assert_eq!(docs[0].lines.line_of(&missing), Some(5));
    }

    #[test]
    fn anchors_and_errors() {
        let (docs, err) = parse_documents("a: &x {b: 1}\nc: *x\n");
        assert!(err.is_none());
        assert_eq!(docs[0].value, json!({"a": {"b": 1}, "c": {"b": 1}}));
        let (_, err) = parse_documents("a: 1\na: 2\n");
        assert_eq!(
            err.unwrap(),
            YamlError {
                line: 2,
                reason: "duplicate key \"a\"".into()
            }
        );
        let (docs, err) = parse_documents("a: 1\n---\nb: [\n");
        assert_eq!(docs.len(), 1);
        assert!(err.unwrap().reason.starts_with("invalid YAML"));
    }
}
