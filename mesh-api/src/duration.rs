//! Durations as Istio's YAML spells them.
//!
//! Istio's API uses `google.protobuf.Duration`, whose JSON form is a string of
//! seconds (`"1.5s"`). Istio's own tooling also accepts Go duration strings
//! (`"200ms"`, `"1m30s"`, `"1h"`), and users write both, so both parse.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative length of time read from a duration string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    pub fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub fn from_millis(millis: u64) -> Self {
        Duration(std::time::Duration::from_millis(millis))
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Reads a command-line duration (`"24h"`, `"1.5s"`), as clap's
    /// `value_parser` wants it: the std duration, or the reason as text.
    pub fn parse_flag(text: &str) -> Result<std::time::Duration, String> {
        text.parse::<Duration>()
            .map(Duration::as_std)
            .map_err(|err| err.to_string())
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

/// Nanoseconds per unit, longest suffix first so that `ms` is not read as `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ParseDurationError {
            input: input.to_owned(),
            reason,
        };
        let mut rest = input.trim();
        if rest.starts_with('-') {
            return Err(fail("must not be negative"));
        }
        rest = rest.strip_prefix('+').unwrap_or(rest);
        if rest.is_empty() {
            return Err(fail("empty"));
        }
        if rest == "0" {
            return Ok(Duration::ZERO);
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| fail("missing unit (use ns, us, ms, s, m or h)"))?;
            let (number, tail) = rest.split_at(digits);
            if number.is_empty() || number == "." {
                return Err(fail("expected a number before the unit"));
            }
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(|| fail("unknown unit (use ns, us, ms, s, m or h)"))?;
            total = total
                .checked_add(scale_number(number, scale).ok_or_else(|| fail("malformed number"))?)
                .ok_or_else(|| fail("too large"))?;
            rest = tail;
        }
        let secs = u64::try_from(total / 1_000_000_000).map_err(|_| fail("too large"))?;
        let nanos = (total % 1_000_000_000) as u32;
        Ok(Duration(std::time::Duration::new(secs, nanos)))
    }
}

/// `number` (decimal, maybe with a fraction) times `scale` nanoseconds,
/// computed in integers so that `0.1s` is exactly 100ms.
fn scale_number(number: &str, scale: u128) -> Option<u128> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole.checked_mul(scale)?;
    let mut place = scale;
    for digit in frac.chars() {
        place /= 10;
        nanos = nanos.checked_add(u128::from(digit.to_digit(10)?) * place)?;
    }
    Some(nanos)
}

impl fmt::Display for Duration {
    /// Prints the protobuf JSON form: seconds with the fraction trimmed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            return write!(f, "{secs}s");
        }
        let frac = format!("{nanos:09}");
        write!(f, "{secs}.{}s", frac.trim_end_matches('0'))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string such as \"1.5s\" or \"200ms\"")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
        text.parse().map_err(E::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as 1.5s, 200ms or 1m30s."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<std::time::Duration, ParseDurationError> {
        s.parse::<Duration>().map(Duration::as_std)
    }

    #[test]
    fn reads_protobuf_and_go_forms() {
        assert_eq!(
            parse("1.5s").unwrap(),
            std::time::Duration::from_millis(1500)
        );
        assert_eq!(
            parse("200ms").unwrap(),
            std::time::Duration::from_millis(200)
        );
        assert_eq!(parse("1m30s").unwrap(), std::time::Duration::from_secs(90));
        assert_eq!(parse("1h").unwrap(), std::time::Duration::from_secs(3600));
        assert_eq!(
            parse("0.1s").unwrap(),
            std::time::Duration::from_millis(100)
        );
        assert_eq!(
            parse("250us").unwrap(),
            std::time::Duration::from_micros(250)
        );
        assert_eq!(parse("0").unwrap(), std::time::Duration::ZERO);
    }

    #[test]
    fn refuses_malformed_strings_with_a_reason() {
        assert_eq!(parse("-1s").unwrap_err().reason, "must not be negative");
        assert!(parse("10").unwrap_err().reason.contains("missing unit"));
        assert!(parse("5d").unwrap_err().reason.contains("unknown unit"));
        assert!(parse("1.2.3s").is_err());
        assert!(parse("").is_err());
        assert!(parse("s").is_err());
    }

    #[test]
    fn prints_seconds() {
        assert_eq!(Duration::from_millis(1500).to_string(), "1.5s");
        assert_eq!(Duration::from_secs(7).to_string(), "7s");
        assert_eq!(Duration::from_millis(200).to_string(), "0.2s");
    }
}
