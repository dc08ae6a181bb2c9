//! The few fields of a certificate that rustls-webpki does not expose, read
//! from its DER: the serial number and the validity period. Only the outer
//! structure up to `validity` is walked; everything else is skipped.

/// What `/certs`, the metrics and the rotation schedule need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Lowercase hex, a pair of digits per byte, as Envoy shows serial numbers.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Reads `Certificate.tbsCertificate`'s serial number and validity.
pub fn fields(der: &[u8]) -> Option<Fields> {
    let (certificate, _) = element(der, SEQUENCE)?;
    let (mut tbs, _) = element(certificate, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = skip(tbs)?;
    }
    let (serial, rest) = element(tbs, INTEGER)?;
    let rest = skip(rest)?; // signature algorithm
    let rest = skip(rest)?; // issuer
    let (validity, _) = element(rest, SEQUENCE)?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    let serial = serial.iter().skip_while(|b| **b == 0).fold(
        String::with_capacity(serial.len() * 2),
        |mut hex, b| {
            hex.push_str(&format!("{b:02x}"));
            hex
        },
    );
    Some(Fields {
        serial,
        not_before,
        not_after,
    })
}

/// The contents of the element at the start of `input` if it has `tag`,
/// and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            let (bytes, rest) = rest.split_at_checked(count)?;
            let length = bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
            (length, rest)
        }
        _ => return None,
    };
    rest.split_at_checked(length)
}

/// What follows the element at the start of `input`, whatever its tag.
fn skip(input: &[u8]) -> Option<&[u8]> {
    let tag = *input.first()?;
    element(input, tag).map(|(_, rest)| rest)
}

/// A `Time` (UTCTime or GeneralizedTime, in UTC as RFC 5280 requires), as
/// Unix seconds.
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let tag = *input.first()?;
    let (text, rest) = element(input, tag)?;
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest_text) = match tag {
        UTC_TIME => {
            let (yy, rest) = text.split_at_checked(2)?;
            let yy: i64 = yy.parse().ok()?;
            // RFC 5280: two-digit years 50..99 are 19xx, the rest 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, rest)
        }
        GENERALIZED_TIME => {
            let (yyyy, rest) = text.split_at_checked(4)?;
            (yyyy.parse().ok()?, rest)
        }
        _ => return None,
    };
    if rest_text.len() != 10 || !rest_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = |i: usize| rest_text[i..i + 2].parse::<i64>().ok();
    let (month, day) = (part(0)?, part(2)?);
    let (hour, minute, second) = (part(4)?, part(6)?, part(8)?);
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some((seconds, rest))
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Unix seconds as RFC 3339 in UTC, for the logs and `/certs`.
pub fn rfc3339(seconds: i64) -> String {
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_before: (i32, u8, u8), not_after: (i32, u8, u8), serial: &[u8]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_serial_and_validity() {
        // 2049 is still a UTCTime, 2050 is a GeneralizedTime.
        let der = certificate((2024, 2, 29), (2050, 1, 1), &[0x01, 0xab, 0xcd]);
        let fields = fields(&der).unwrap();
        assert_eq!(fields.serial, "01abcd");
        assert_eq!(fields.not_before, 1_709_164_800);
        assert_eq!(fields.not_after, 2_524_608_000);
        assert_eq!(rfc3339(fields.not_before), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339(fields.not_after), "2050-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn refuses_what_is_not_a_certificate() {
        assert_eq!(fields(b""), None);
        assert_eq!(fields(&[0x30, 0x03, 0x02, 0x01]), None);
        let der = certificate((2024, 1, 1), (2025, 1, 1), &[7]);
        assert_eq!(fields(&der[..der.len() / 2]), None);
    }
}
