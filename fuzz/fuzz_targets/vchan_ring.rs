//! The vchan ring reader and writer against a peer in another domain that writes any indices
//! into the shared page: the orders a server wrote (`Geometry::from_page`), then a run of
//! operations, each side reading and writing its ring while the peer stores lying producer or
//! consumer indices (absolute, or near the current ones so wraparound at 2^32 is reached).
//! What must hold: no read or write outside a ring (AddressSanitizer), a read or write never
//! moves more than asked or than the indices allow, an index pair further apart than the ring
//! is reported as `CorruptRing` (never used), and until the peer lies the bytes come out of
//! each ring in the order they went in.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use vproto_vchan::{
    layout::{Geometry, LEFT_CONS, LEFT_PROD, RIGHT_CONS, RIGHT_PROD},
    CorruptRing, LoopbackPage, RingId, Role,
};

const INDICES: [usize; 4] = [LEFT_CONS, LEFT_PROD, RIGHT_CONS, RIGHT_PROD];

/// Where `role`'s read ring keeps its indices: (cons, prod).
fn read_indices(role: Role) -> (usize, usize) {
    match role {
        Role::Server => (LEFT_CONS, LEFT_PROD),
        Role::Client => (RIGHT_CONS, RIGHT_PROD),
    }
}

fn write_indices(role: Role) -> (usize, usize) {
    read_indices(match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    })
}

/// What the indices at (cons, prod) must make of a ring of `size` bytes that `role` uses.
fn expected_used(page: &LoopbackPage, role: Role, (cons, prod): (usize, usize), size: u32) -> Result<u32, CorruptRing> {
    let used = page.load_index(prod).wrapping_sub(page.load_index(cons));
    if used > size {
        let ring = if cons == LEFT_CONS { RingId::Left } else { RingId::Right };
        Err(CorruptRing { ring, role, used, size })
    } else {
        Ok(used)
    }
}

fuzz_target!(|data: &[u8]| {
    let [a, b, c, d, rest @ ..] = data else { return };
    let Ok(geometry) = Geometry::from_page(u16::from_le_bytes([*a, *b]), u16::from_le_bytes([*c, *d])) else {
        return;
    };
    let page = LoopbackPage::new(geometry);
    // The bytes in flight in the left (client → server) and right ring, while the peer is honest.
    let mut fifos = [VecDeque::new(), VecDeque::new()];
    let mut honest = true;
    let mut counter = 0u8;
    let mut ops = rest;
    while let [op, x, y, tail @ ..] = ops {
        ops = tail;
        let role = if op & 0x80 == 0 { Role::Server } else { Role::Client };
        let n = usize::from(u16::from_le_bytes([*x, *y])) * 4;
        match op % 5 {
            0 => {
                let offset = INDICES[usize::from(*x) % 4];
                let value = if y & 1 == 0 {
                    // Near the current value: both wraparound and small lies.
                    page.load_index(offset).wrapping_add(u32::from(*y).wrapping_sub(128).wrapping_mul(37))
                } else {
                    let Some((bytes, tail)) = ops.split_first_chunk::<4>() else { break };
                    ops = tail;
                    u32::from_le_bytes(*bytes)
                };
                page.store_index(offset, value);
                honest = false;
            }
            1 => {
                let input: Vec<u8> = (0..n)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                let size = page.read_size(match role {
                    Role::Server => Role::Client,
                    Role::Client => Role::Server,
                });
                let expected = expected_used(&page, role, write_indices(role), size);
                match page.write(role, &input) {
                    Ok(written) => {
                        let used = expected.expect("a write succeeds only on consistent indices");
                        assert!(written <= n && written as u32 <= size - used, "wrote {written} of {n}");
                        if honest {
                            fifos[usize::from(role == Role::Server)].extend(&input[..written]);
                        }
                    }
                    Err(error) => assert_eq!(Err(error), expected),
                }
            }
            2 => {
                let mut out = vec![0u8; n];
                let (cons, _) = read_indices(role);
                let before = page.load_index(cons);
                let expected = expected_used(&page, role, read_indices(role), page.read_size(role));
                match page.read(role, &mut out) {
                    Ok(read) => {
                        let used = expected.expect("a read succeeds only on consistent indices");
                        assert!(read <= n && read as u32 <= used, "read {read} of {n} with {used} ready");
                        if read > 0 {
                            assert_eq!(
                                page.load_index(cons),
                                before.wrapping_add(read as u32),
                                "cons moved by the read"
                            );
                        }
                        if honest {
                            let fifo = &mut fifos[usize::from(role == Role::Client)];
                            let sent: Vec<u8> = fifo.drain(..read).collect();
                            assert_eq!(&out[..read], &sent[..], "bytes come out as they went in");
                        }
                    }
                    Err(error) => assert_eq!(Err(error), expected),
                }
            }
            3 => {
                let expected = expected_used(&page, role, read_indices(role), page.read_size(role));
                assert_eq!(page.ready(role), expected);
            }
            _ => {
                let size = page.read_size(match role {
                    Role::Server => Role::Client,
                    Role::Client => Role::Server,
                });
                let expected = expected_used(&page, role, write_indices(role), size).map(|used| size - used);
                assert_eq!(page.space(role), expected);
            }
        }
    }
});
