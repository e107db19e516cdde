//! The data-tree decoder: Xenstore entries (`path=value` lines, as a host reads a guest's
//! tree) decoded into GuestInfo with the schema's layout; what decodes encodes again to
//! entries that decode to the same value (but the layout version, which a writer sets to its own).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vproto_api::{layouts::GUEST_V1, GuestInfo};
use vproto_support::tree::{decode, encode, mangle_key};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut entries = BTreeMap::new();
    for line in text.lines() {
        let (path, value) = line.split_once('=').unwrap_or((line, ""));
        let _ = mangle_key(Some("ipv6"), value);
        let _ = mangle_key(None, value);
        entries.insert(path.to_string(), value.to_string());
    }
    if let Ok(info) = decode::<GuestInfo>(&GUEST_V1, &entries) {
        let again = encode(&GUEST_V1, &info);
        let decoded = decode::<GuestInfo>(&GUEST_V1, &again).expect("what was encoded decodes");
        // The writer publishes its own layout version, whatever the value held.
        let mut expected = info;
        expected.protocol.layout_version = decoded.protocol.layout_version.clone();
        assert_eq!(decoded, expected);
    }
});
