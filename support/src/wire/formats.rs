//! JSON Schema constraints on scalar values: formats, patterns, lengths and ranges.

use std::{
    cell::RefCell,
    collections::HashMap,
    convert::Infallible,
    net::IpAddr,
    sync::{Mutex, OnceLock},
};

use serde_json::Value;

use super::{WireError, WirePath};
use crate::thread_cache::{with_cached, PerThread};

/// The constraints a schema type puts on a value, as generated code states them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Constraints {
    /// A named string format.
    pub format: Option<&'static str>,
    /// A regular expression the whole string must match.
    pub pattern: Option<&'static str>,
    /// The allowed strings.
    pub one_of: Option<&'static [&'static str]>,
    /// Shortest string, in characters.
    pub min_length: Option<u64>,
    /// Longest string, in characters.
    pub max_length: Option<u64>,
    /// Smallest number.
    pub minimum: Option<i64>,
    /// Largest number.
    pub maximum: Option<i64>,
    /// Fewest array elements.
    pub min_items: Option<u64>,
    /// Most array elements.
    pub max_items: Option<u64>,
}

impl Constraints {
    /// No constraint at all; generated code writes `..Constraints::NONE` after the ones it sets.
    pub const NONE: Constraints = Constraints {
        format: None,
        pattern: None,
        one_of: None,
        min_length: None,
        max_length: None,
        minimum: None,
        maximum: None,
        min_items: None,
        max_items: None,
    };
}

/// What a field's schema checks beyond the JSON type: constraints on the value itself and, for
/// arrays, on each element. Generated code shares one static per distinct set.
#[derive(Clone, Copy, Debug, Default)]
pub struct FieldChecks {
    /// Constraints on the value.
    pub value: Option<&'static Constraints>,
    /// Constraints on each element of an array value.
    pub items: Option<&'static Constraints>,
}

impl FieldChecks {
    /// Nothing to check beyond the type.
    pub const NONE: FieldChecks = FieldChecks { value: None, items: None };

    /// Checks a present value (`null` passes: nullability is the type's business).
    pub fn check(&self, value: &Value, path: &WirePath) -> Result<(), WireError> {
        if value.is_null() {
            return Ok(());
        }
        if let Some(constraints) = self.value {
            check_constraints(value, constraints, path)?;
        }
        if let (Some(constraints), Value::Array(items)) = (self.items, value) {
            for (index, item) in items.iter().enumerate() {
                check_constraints(item, constraints, &path.index(index))?;
            }
        }
        Ok(())
    }
}

/// Checks `value` against `constraints`; the JSON type was checked already.
pub fn check_constraints(value: &Value, constraints: &Constraints, path: &WirePath) -> Result<(), WireError> {
    let invalid = |why: String| Err(WireError::InvalidValue { path: path.clone(), why });
    match value {
        Value::String(text) => {
            let length = text.chars().count() as u64;
            if let Some(min) = constraints.min_length.filter(|min| length < *min) {
                return invalid(format!("{text:?} is shorter than {min} characters"));
            }
            if let Some(max) = constraints.max_length.filter(|max| length > *max) {
                return invalid(format!("string of {length} characters is longer than {max}"));
            }
            if let Some(allowed) = constraints.one_of {
                if !allowed.contains(&text.as_str()) {
                    return invalid(format!("{text:?} is not one of {}", allowed.join(", ")));
                }
            }
            if let Some(format) = constraints.format {
                if let Err(why) = check_format(format, text) {
                    return invalid(format!("{text:?} is not a valid {format}: {why}"));
                }
            }
            if let Some(pattern) = constraints.pattern {
                if !matches_pattern(pattern, text) {
                    return invalid(format!("{text:?} does not match the pattern {pattern}"));
                }
            }
        }
        Value::Number(number) => {
            if let Some(min) = constraints.minimum {
                if number.as_f64().is_some_and(|n| n < min as f64) {
                    return invalid(format!("{number} is less than the minimum {min}"));
                }
            }
            if let Some(max) = constraints.maximum {
                if number.as_f64().is_some_and(|n| n > max as f64) {
                    return invalid(format!("{number} is more than the maximum {max}"));
                }
            }
        }
        Value::Array(items) => {
            let count = items.len() as u64;
            if let Some(min) = constraints.min_items.filter(|min| count < *min) {
                return invalid(format!("{count} elements, fewer than {min}"));
            }
            if let Some(max) = constraints.max_items.filter(|max| count > *max) {
                return invalid(format!("{count} elements, more than {max}"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether `text` matches the whole of `pattern`.
///
/// Each pattern is compiled once; each thread keeps its own clone in a short list keyed by the
/// pattern's address, so a match takes no lock and hashes nothing, and runs with that thread's
/// warm search cache (a `Regex` clone shares the program but has a cache pool of its own).
fn matches_pattern(pattern: &'static str, text: &str) -> bool {
    thread_local! {
        static USED: PerThread<usize, regex::Regex> = const { RefCell::new(Vec::new()) };
    }
    let compile = || Ok::<_, Infallible>(compiled_pattern(pattern));
    let Ok(matched) = with_cached(&USED, pattern.as_ptr() as usize, compile, |regex| regex.is_match(text));
    matched
}

/// The compiled, anchored form of `pattern` (one that does not compile matches nothing; the
/// schema checker rejects such patterns before they get here).
fn compiled_pattern(pattern: &'static str) -> regex::Regex {
    static COMPILED: OnceLock<Mutex<HashMap<&'static str, regex::Regex>>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(Default::default);
    let mut compiled = compiled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let regex = compiled.entry(pattern).or_insert_with(|| {
        regex::Regex::new(&format!("^(?:{pattern})$")).unwrap_or_else(|_| regex::Regex::new("$^").expect("valid"))
    });
    regex.clone()
}

/// The formats [`format_is_valid`] knows.
pub const FORMATS: &[&str] =
    &["uuid", "mac-address", "ipv4", "ipv6", "ip-address", "ip-network", "pci-address", "hostname", "uri", "date-time"];

/// Whether `text` is a valid value of the named `format` (`false` for a format not in
/// [`FORMATS`]).
pub fn format_is_valid(format: &str, text: &str) -> bool {
    check_format(format, text).is_ok()
}

/// Why a string is not a valid value of its format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not a UUID.
    #[error("expected 8-4-4-4-12 hexadecimal digits")]
    Uuid,
    /// Not a MAC address.
    #[error("expected six colon-separated pairs of hexadecimal digits")]
    Mac,
    /// Not an IP address (of the family the format names).
    #[error("{0}")]
    Address(#[from] std::net::AddrParseError),
    /// An IP network without its `/PREFIX`.
    #[error("expected ADDRESS/PREFIX")]
    NetworkShape,
    /// An IP network whose prefix length is out of its family's range.
    #[error("prefix length must be 0..={0}")]
    PrefixLength(u32),
    /// Not a PCI address.
    #[error("expected DDDD:BB:SS.F")]
    Pci,
    /// Not a host name.
    #[error("expected dot-separated labels of letters, digits and hyphens")]
    Hostname,
    /// A URI without a scheme.
    #[error("no URI scheme")]
    UriScheme,
    /// Not an RFC 3339 date and time.
    #[error("expected RFC 3339 YYYY-MM-DDTHH:MM:SS with an offset")]
    DateTime,
    /// A format not in [`FORMATS`].
    #[error("unknown format {0}")]
    Unknown(String),
}

/// Checks a string against a named format; the error says what is wrong.
pub fn check_format(format: &str, text: &str) -> Result<(), FormatError> {
    let valid = |ok: bool, error: FormatError| if ok { Ok(()) } else { Err(error) };
    match format {
        "uuid" => valid(is_uuid(text), FormatError::Uuid),
        "mac-address" => valid(is_mac(text), FormatError::Mac),
        "ipv4" => text.parse::<std::net::Ipv4Addr>().map(drop).map_err(FormatError::from),
        "ipv6" => text.parse::<std::net::Ipv6Addr>().map(drop).map_err(FormatError::from),
        "ip-address" => text.parse::<IpAddr>().map(drop).map_err(FormatError::from),
        "ip-network" => check_network(text),
        "pci-address" => valid(is_pci(text), FormatError::Pci),
        "hostname" => valid(is_hostname(text), FormatError::Hostname),
        "uri" => valid(
            text.split_once(':').is_some_and(|(scheme, _)| {
                !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            }),
            FormatError::UriScheme,
        ),
        "date-time" => valid(is_date_time(text), FormatError::DateTime),
        other => Err(FormatError::Unknown(other.to_string())),
    }
}

fn hex_group(part: &str, length: usize) -> bool {
    part.len() == length && part.bytes().all(|b| b.is_ascii_hexdigit())
}

/// 8-4-4-4-12 hexadecimal digits.
fn is_uuid(text: &str) -> bool {
    let lengths = [8, 4, 4, 4, 12];
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5 && parts.iter().zip(lengths).all(|(part, length)| hex_group(part, length))
}

/// Six colon-separated pairs of hexadecimal digits.
fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6 && parts.iter().all(|part| hex_group(part, 2))
}

/// `ADDRESS/PREFIX`, the prefix length within the address family's bits.
fn check_network(text: &str) -> Result<(), FormatError> {
    let (address, prefix) = text.split_once('/').ok_or(FormatError::NetworkShape)?;
    let address: IpAddr = address.parse()?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(length) if u32::from(length) <= bits && !prefix.starts_with('+') => Ok(()),
        _ => Err(FormatError::PrefixLength(bits)),
    }
}

/// `DDDD:BB:SS.F`, hexadecimal, the function 0 to 7.
fn is_pci(text: &str) -> bool {
    let parts = || {
        let (domain, rest) = text.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (slot, function) = rest.split_once('.')?;
        Some((domain, bus, slot, function))
    };
    parts().is_some_and(|(domain, bus, slot, function)| {
        hex_group(domain, 4)
            && hex_group(bus, 2)
            && hex_group(slot, 2)
            && function.len() == 1
            && matches!(function.as_bytes()[0], b'0'..=b'7')
    })
}

/// Dot-separated labels of letters, digits and hyphens.
fn is_hostname(text: &str) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    text.len() <= 253 && text.split('.').all(label_ok)
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SS` followed by fractions and an offset.
fn is_date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|b| b.iter().all(u8::is_ascii_digit));
    bytes.len() >= 20
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && matches!(bytes[10], b'T' | b't')
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_accept_good_and_reject_bad_values() {
        assert!(format_is_valid("uuid", "8e45a2ea-5364-4b0d-a252-bf8becaa606e"));
        assert!(!format_is_valid("uuid", "8e45a2ea-5364-4b0d-a252"));
        assert!(format_is_valid("mac-address", "fa:16:3e:00:00:01"));
        assert!(!format_is_valid("mac-address", "fa:16:3e:00:00"));
        assert!(format_is_valid("ip-network", "10.0.0.0/24"));
        assert!(!format_is_valid("ip-network", "10.0.0.0/33"));
        assert!(format_is_valid("ip-network", "2001:db8::/64"));
        assert!(format_is_valid("pci-address", "0000:0a:00.1"));
        assert!(!format_is_valid("pci-address", "0000:0a:00.8"));
        assert!(format_is_valid("ip-address", "::1"));
        assert!(!format_is_valid("ip-address", "1.2.3"));
    }

    #[test]
    fn patterns_match_whole_strings() {
        assert!(matches_pattern("[a-z]+:[0-9]+", "host:80"));
        assert!(!matches_pattern("[a-z]+:[0-9]+", "host:80x"));
    }
}
