//! The Xenstore wire decoder as a client reads replies: frames (header and payload, length
//! bounded), the strings a payload holds, paths and permission lists.
#![no_main]

use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;
use vproto_xenstore::{
    wire::{check_path, read_message, split_strings},
    Permission,
};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while let Some(Ok(message)) = read_message(&mut input).now_or_never() {
        let _ = message.kind();
        let parts = split_strings(&message.payload);
        for part in &parts {
            let _ = check_path(part, true);
        }
        let texts: Vec<&str> = parts.iter().filter_map(|part| std::str::from_utf8(part).ok()).collect();
        let _ = Permission::parse_list(texts.iter().copied());
        let encoded = message.encode();
        let again = read_message(&mut encoded.as_slice()).now_or_never().expect("a slice never waits");
        assert_eq!(again.expect("what was read encodes to a frame").payload, message.payload);
    }
});
