//! serde's errors, rewritten for operators: the path of the field and a reason
//! in Istio's words (`unknown field "foo"`, with a suggestion where one is near).

use serde_path_to_error::{Error, Segment as SerdeSegment};

use crate::validate::{Path, Segment};

pub(super) fn describe(base: Path, err: &Error<serde_json::Error>) -> (Path, String) {
    let mut segments = base.segments().to_vec();
    for segment in err.path().iter() {
        match segment {
            SerdeSegment::Seq { index } => segments.push(Segment::Index(*index)),
            SerdeSegment::Map { key } => segments.push(Segment::Key(key.clone())),
            SerdeSegment::Enum { .. } | SerdeSegment::Unknown => {}
        }
    }
    let message = err.inner().to_string();
    // serde_json appends " at line L column C", meaningless for a Value.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    if let Some((field, expected)) = parse_listing(&message, "unknown field `") {
        // The path already ends at the unknown field for maps; make sure.
        if segments.last() != Some(&Segment::Key(field.clone())) {
            segments.push(Segment::Key(field.clone()));
        }
        return (
            Path::from(segments),
            with_suggestion(format!("unknown field {field:?}"), &field, &expected),
        );
    }
    if let Some((value, expected)) = parse_listing(&message, "unknown variant `") {
        let reason = format!(
            "unknown value {value:?}; expected one of {}",
            expected.join(", ")
        );
        return (Path::from(segments), reason);
    }
    if let Some(field) = between(&message, "missing field `", "`") {
        segments.push(Segment::Key(field.to_owned()));
        return (
            Path::from(segments),
            format!("required field {field:?} is missing"),
        );
    }
    (Path::from(segments), message)
}

/// Reads serde's "unknown X `name`, expected one of `a`, `b`" form.
fn parse_listing(message: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(prefix)?;
    let (name, tail) = rest.split_once('`')?;
    let expected = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((name.to_owned(), expected))
}

fn between<'a>(message: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(start)?;
    rest.split_once(end).map(|(inner, _)| inner)
}

fn with_suggestion(reason: String, field: &str, expected: &[String]) -> String {
    let nearest = expected
        .iter()
        .map(|candidate| (edit_distance(field, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min();
    match nearest {
        Some((_, candidate)) => format!("{reason}; did you mean {candidate:?}?"),
        None => reason,
    }
}

/// Levenshtein distance, case-insensitive (users often get the case wrong).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_field() {
        let expected = vec!["timeout".to_owned(), "retries".to_owned()];
        assert_eq!(
            with_suggestion("unknown field \"timout\"".into(), "timout", &expected),
            "unknown field \"timout\"; did you mean \"timeout\"?"
        );
        assert_eq!(with_suggestion("x".into(), "zzz", &expected), "x");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
