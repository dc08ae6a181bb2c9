//! Helpers for the tests of every kind: parse a JSON document into its spec
//! type and look at what semantic validation says about it.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Validate, check};

/// Parses `doc` as a `T`, failing the test if it does not parse.
#[track_caller]
pub(crate) fn parse<T: DeserializeOwned + Validate>(doc: Value) -> T {
    serde_json::from_value(doc).expect("the document parses")
}

/// The (path, reason) of every problem in `doc`, parsed as a `T`.
#[track_caller]
pub(crate) fn problems<T: DeserializeOwned + Validate>(doc: Value) -> Vec<(String, String)> {
    check(&parse::<T>(doc))
        .into_iter()
        .map(|e| (e.path.to_string(), e.reason))
        .collect()
}

/// Asserts that `doc` parses as a `T` and breaks exactly one rule, at `path`,
/// with a reason containing `fragment`.
#[track_caller]
pub(crate) fn assert_only_error<T: DeserializeOwned + Validate>(
    doc: Value,
    path: &str,
    fragment: &str,
) {
    let found = problems::<T>(doc);
    assert_eq!(found.len(), 1, "expected exactly one error, got {found:#?}");
    let (at, reason) = &found[0];
    assert_eq!(at, path, "{found:#?}");
    assert!(
        reason.contains(fragment),
        "reason {reason:?} lacks {fragment:?}"
    );
}

/// Asserts that `doc` parses as a `T` and breaks no rule.
#[track_caller]
pub(crate) fn assert_valid<T: DeserializeOwned + Validate>(doc: Value) {
    let found = problems::<T>(doc);
    assert!(found.is_empty(), "expected no errors, got {found:#?}");
}
