//! A nesting scan over raw bytes, run before parsing so that a deeply nested message costs one
//! linear pass and no recursion.

/// Whether `bytes` nest arrays/objects deeper than `max` levels (the top-level value is level
/// 1). Brackets inside strings are ignored; the bytes need not be valid JSON.
pub fn exceeds(bytes: &[u8], max: usize) -> bool {
    // Fast path: fewer opening brackets than the limit cannot nest deeper than it. `[` (0x5B)
    // and `{` (0x7B) differ only in bit 0x20, so one compare finds both, and counting in
    // 255-byte chunks into a byte-wide sum lets the compiler vectorize the loop.
    let opening: usize = bytes
        .chunks(255)
        .map(|chunk| chunk.iter().map(|&byte| u8::from(byte | 0x20 == b'{')).sum::<u8>() as usize)
        .sum();
    if opening <= max {
        return false;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::exceeds;

    #[test]
    fn counts_levels_and_ignores_strings() {
        assert!(!exceeds(b"{}", 1));
        assert!(exceeds(b"[{}]", 1));
        assert!(!exceeds(b"[{}]", 2));
        assert!(!exceeds(br#"{"a":"[[[[{{{{\"[["}"#, 1));
        assert!(!exceeds(b"[][][][]", 1));
        assert!(exceeds(&[b'['; 65], 64));
        assert!(!exceeds(&[b'['; 64], 64));
        // Across the counting chunks, and with characters one bit away from a bracket.
        assert!(exceeds(&[b'{'; 600], 599));
        assert!(!exceeds(&[b'{'; 600], 600));
        assert!(!exceeds(&[b';', b'K', b'Y', b'['].repeat(300), 300));
    }
}
