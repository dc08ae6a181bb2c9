//! The few fields of a certificate that rustls-webpki does not expose, read
//! from its DER: the serial number and the validity period (only the outer
//! structure up to `validity` is walked; everything else is skipped), and a
//! distinguished name in the text form OpenSSL gives it.

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
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
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

/// A distinguished name (the contents of a `Name`) as OpenSSL prints it
/// with `XN_FLAG_RFC2253`, the form Envoy gives a certificate's subject:
/// attributes last to first, `+` between those of one RDN and `,` between
/// RDNs; common types by their short names (`CN`, `O`, ...), others by
/// their OID with the value's DER in hex (`1.2.3=#0C0161`); RFC 2253's
/// special characters escaped with a backslash, and control characters and
/// the bytes of non-ASCII characters as `\XX`. `None` when not DER.
pub fn rfc2253(name: &[u8]) -> Option<String> {
    let mut attributes = Vec::new();
    let (mut rdns, mut index) = (name, 0);
    while !rdns.is_empty() {
        let (mut rdn, rest) = element(rdns, SET)?;
        rdns = rest;
        while !rdn.is_empty() {
            let (attribute, rest) = element(rdn, SEQUENCE)?;
            rdn = rest;
            let (oid, value) = element(attribute, OID)?;
            attributes.push((index, oid, value));
        }
        index += 1;
    }
    let mut text = String::new();
    let mut previous = None;
    for (index, oid, value) in attributes.into_iter().rev() {
        match previous {
            Some(p) if p == index => text.push('+'),
            Some(_) => text.push(','),
            None => {}
        }
        previous = Some(index);
        match short_name(oid) {
            Some(name) => {
                text.push_str(name);
                text.push('=');
                attribute_value(&mut text, value);
            }
            None => {
                text.push_str(&dotted(oid)?);
                text.push('=');
                hex_value(&mut text, value);
            }
        }
    }
    Some(text)
}

/// OpenSSL's short names for the attribute types certificates commonly use.
fn short_name(oid: &[u8]) -> Option<&'static str> {
    const PAIRS: [(&[u8], &str); 19] = [
        (&[0x55, 0x04, 0x03], "CN"),
        (&[0x55, 0x04, 0x04], "SN"),
        (&[0x55, 0x04, 0x05], "serialNumber"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x09], "street"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (&[0x55, 0x04, 0x0c], "title"),
        (&[0x55, 0x04, 0x11], "postalCode"),
        (&[0x55, 0x04, 0x2a], "GN"),
        (&[0x55, 0x04, 0x2b], "initials"),
        (&[0x55, 0x04, 0x2c], "generationQualifier"),
        (&[0x55, 0x04, 0x2e], "dnQualifier"),
        (&[0x55, 0x04, 0x41], "pseudonym"),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
            "UID",
        ),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
            "DC",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
            "emailAddress",
        ),
    ];
    PAIRS.iter().find(|(o, _)| *o == oid).map(|(_, name)| *name)
}

/// An OID's content octets in dotted form; `None` when malformed.
fn dotted(oid: &[u8]) -> Option<String> {
    if oid.last()? & 0x80 != 0 {
        return None;
    }
    let mut arcs = Vec::new();
    let mut arc: u64 = 0;
    for &byte in oid {
        arc = arc.checked_mul(128)? | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            arcs.push(arc);
            arc = 0;
        }
    }
    let (&first, rest) = arcs.split_first()?;
    let (a, b) = match first {
        0..40 => (0, first),
        40..80 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut text = format!("{a}.{b}");
    for arc in rest {
        text.push_str(&format!(".{arc}"));
    }
    Some(text)
}

/// One attribute value: a string escaped as RFC 2253 asks, or `#` and the
/// DER in hex for types that are not strings.
fn attribute_value(text: &mut String, der: &[u8]) {
    let Some((tag, content)) = der
        .first()
        .and_then(|&tag| Some((tag, element(der, tag)?.0)))
    else {
        return hex_value(text, der);
    };
    let chars: Option<Vec<char>> = match tag {
        // UTF8String
        0x0c => std::str::from_utf8(content)
            .ok()
            .map(|s| s.chars().collect()),
        // NumericString, PrintableString, T61String (read as Latin-1, as
        // OpenSSL does), IA5String, VisibleString
        0x12 | 0x13 | 0x14 | 0x16 | 0x1a => Some(content.iter().map(|&b| char::from(b)).collect()),
        // UniversalString (UCS-4) and BMPString (UCS-2)
        0x1c => wide(content, 4),
        0x1e => wide(content, 2),
        _ => None,
    };
    match chars {
        Some(chars) => escaped(text, &chars),
        None => hex_value(text, der),
    }
}

/// Big-endian code units of `width` bytes as characters.
fn wide(content: &[u8], width: usize) -> Option<Vec<char>> {
    if !content.len().is_multiple_of(width) {
        return None;
    }
    content
        .chunks(width)
        .map(|unit| char::from_u32(unit.iter().fold(0, |n, b| (n << 8) | u32::from(*b))))
        .collect()
}

fn escaped(text: &mut String, chars: &[char]) {
    let last = chars.len().saturating_sub(1);
    for (i, &c) in chars.iter().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if special {
            text.push('\\');
            text.push(c);
        } else if c.is_ascii_control() || !c.is_ascii() {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                text.push_str(&format!("\\{byte:02X}"));
            }
        } else {
            text.push(c);
        }
    }
}

/// `#` and DER in uppercase hex.
fn hex_value(text: &mut String, der: &[u8]) {
    text.push('#');
    for b in der {
        text.push_str(&format!("{b:02X}"));
    }
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
mod tests;
