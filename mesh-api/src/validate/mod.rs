//! Semantic validation of Istio resources, as Istio's validating webhook does it.
//!
//! Parsing (in [`crate::load`]) already refuses unknown fields, wrong types and
//! misspelled enum values. The rules here are the ones a schema cannot say:
//! see [`rules`] for the full list.

mod checks;
mod path;
pub mod rules;
#[cfg(test)]
pub(crate) mod testing;

pub use checks::*;
pub use path::{Path, Segment};

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: Path,
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Collects every problem found, so that users see them all at once.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, path: &Path, reason: impl Into<String>) {
        self.0.push(FieldError {
            path: path.clone(),
            reason: reason.into(),
        });
    }

    /// Adds the error of a check, if it failed.
    pub fn check(&mut self, path: &Path, result: Result<(), String>) {
        if let Err(reason) = result {
            self.add(path, reason);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

/// A config type that knows its own semantic rules.
pub trait Validate {
    /// Records every rule broken by `self`, which sits at `at`.
    fn validate(&self, at: &Path, errs: &mut Errors);
}

/// Validates a spec that sits at `spec` and returns its problems.
pub fn check<T: Validate>(spec: &T) -> Vec<FieldError> {
    let mut errs = Errors::default();
    spec.validate(&Path::spec(), &mut errs);
    errs.into_vec()
}

impl<T: Validate + ?Sized> Validate for &T {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        (**self).validate(at, errs);
    }
}

impl<T: Validate> Validate for Option<T> {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if let Some(inner) = self {
            inner.validate(at, errs);
        }
    }
}

/// Validates every element of a list at `at[i]`.
pub fn each<T: Validate>(items: &[T], at: &Path, errs: &mut Errors) {
    for (i, item) in items.iter().enumerate() {
        item.validate(&at.index(i), errs);
    }
}
