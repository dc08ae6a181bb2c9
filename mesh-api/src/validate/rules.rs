//! The rules, documented.
