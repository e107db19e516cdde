//! Mangling list keys into Xenstore path segments.
//!
//! A list entry is named by its key field's value (a NIC by its MAC address,
//! an address by itself), never by an index. The value is first put in the
//! canonical form of its format (IP addresses as `std::net` prints them,
//! which for IPv6 is RFC 5952: lower-case hex, the longest run of zero
//! groups compressed; MAC addresses lower-cased), then lower-cased with every
//! character outside `[a-z0-9]` written as `-`. The result can never contain
//! `/`, `..`, NUL or upper case, so no value can escape or alias the tree;
//! free-form text (an interface name) is never a key, only a value.

use std::net::IpAddr;

/// The path segment naming a list entry whose key field (of `format`) holds `value`.
pub fn mangle_key(format: Option<&str>, value: &str) -> String {
    let canonical = match format {
        Some("ipv4" | "ipv6" | "ip-address") => {
            value.parse::<IpAddr>().map(|address| address.to_string()).unwrap_or_else(|_| value.to_string())
        }
        _ => value.to_string(),
    };
    canonical.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::mangle_key;

    #[test]
    fn macs_and_addresses_as_the_schema_describes() {
        assert_eq!(mangle_key(Some("mac-address"), "fa:16:3e:11:22:33"), "fa-16-3e-11-22-33");
        assert_eq!(mangle_key(Some("mac-address"), "FA:16:3E:11:22:33"), "fa-16-3e-11-22-33");
        assert_eq!(mangle_key(Some("ip-address"), "2001:db8::1"), "2001-db8--1");
        assert_eq!(mangle_key(Some("ip-address"), "192.0.2.10"), "192-0-2-10");
    }

    #[test]
    fn ipv6_is_made_canonical_first() {
        assert_eq!(mangle_key(Some("ip-address"), "2001:DB8:0:0:0:0:0:1"), "2001-db8--1");
        assert_eq!(mangle_key(Some("ipv6"), "2001:db8:0:0:1:0:0:1"), "2001-db8--1-0-0-1");
        assert_eq!(mangle_key(Some("ipv6"), "fe80:0000::0001"), "fe80--1");
        assert_eq!(mangle_key(Some("ip-address"), "::ffff:192.0.2.1"), "--ffff-192-0-2-1");
    }

    #[test]
    fn nothing_can_escape_the_tree() {
        for hostile in ["../../etc", "a/b", "x\0y", "Ä/..", "/local/domain/0"] {
            let segment = mangle_key(None, hostile);
            assert!(segment.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{segment}");
        }
    }
}
