//! The shared page of a vchan, byte for byte as Xen's `struct vchan_interface`
//! (`xen/io/libxenvchan.h`), and where the two rings live.
//!
//! ```text
//! offset  field                                   written by
//!      0  left.cons   (u32)   server's read index   server
//!      4  left.prod   (u32)   client's write index  client
//!      8  right.cons  (u32)   client's read index   client
//!     12  right.prod  (u32)   server's write index  server
//!     16  left_order  (u16)   log2 of the left ring
//!     18  right_order (u16)   log2 of the right ring
//!     20  cli_live    (u8)    0 gone, 1 connected, 2 not yet connected
//!     21  srv_live    (u8)    0 gone, 1 connected
//!     22  cli_notify  (u8)    what the server wants to hear of the client (NOTIFY_*)
//!     23  srv_notify  (u8)    what the client wants to hear of the server
//!     24  grants[]    (u32)   left ring's grant refs, then the right ring's
//! ```
//!
//! The left ring carries client → server, the right ring server → client. A ring of order 10 or
//! 11 lives inside the shared page (at 1024 or 2048); a larger one on its own granted pages.

use crate::backend::PAGE_SIZE;

/// Offset of `left.cons`.
pub const LEFT_CONS: usize = 0;
/// Offset of `left.prod`.
pub const LEFT_PROD: usize = 4;
/// Offset of `right.cons`.
pub const RIGHT_CONS: usize = 8;
/// Offset of `right.prod`.
pub const RIGHT_PROD: usize = 12;
/// Offset of `left_order`.
pub const LEFT_ORDER: usize = 16;
/// Offset of `right_order`.
pub const RIGHT_ORDER: usize = 18;
/// Offset of `cli_live`.
pub const CLI_LIVE: usize = 20;
/// Offset of `srv_live`.
pub const SRV_LIVE: usize = 21;
/// Offset of `cli_notify`.
pub const CLI_NOTIFY: usize = 22;
/// Offset of `srv_notify`.
pub const SRV_NOTIFY: usize = 23;
/// Offset of the grant list.
pub const GRANTS: usize = 24;

/// Notify bit: tell me when you have written data.
pub const NOTIFY_WRITE: u8 = 0x1;
/// Notify bit: tell me when you have read (consumed) data.
pub const NOTIFY_READ: u8 = 0x2;

/// `*_live`: that side has gone.
pub const LIVE_GONE: u8 = 0;
/// `*_live`: that side is connected.
pub const LIVE_CONNECTED: u8 = 1;
/// `cli_live`: no client has connected yet.
pub const LIVE_WAITING: u8 = 2;

/// Order of the small in-page ring (1 KiB at offset 1024).
pub const SMALL_ORDER: u8 = 10;
/// Order of the large in-page ring (2 KiB at offset 2048).
pub const LARGE_ORDER: u8 = 11;
/// Order of a ring of whole pages.
pub const PAGE_ORDER: u8 = 12;
/// Largest order libxenvchan accepts (1 MiB): beyond it the grant list outgrows the page.
pub const MAX_ORDER: u8 = 20;

/// Largest ring size, in bytes.
pub const MAX_RING_SIZE: usize = 1 << MAX_ORDER;

/// Why a ring geometry cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// A requested size exceeds 1 MiB.
    #[error("a ring of {0} bytes is larger than vchan's largest, {MAX_RING_SIZE} bytes")]
    TooLarge(usize),
    /// An order read from the shared page is outside 10..=20.
    #[error("ring order {0} is outside vchan's 10..=20")]
    BadOrder(u16),
    /// Both rings claim the same in-page slot.
    #[error("both rings have order {0}, but only one ring fits at each in-page offset")]
    SameInPageSlot(u8),
    /// The grant list would overlap an in-page ring or leave the page.
    #[error("{grants} grant references do not fit in the shared page before offset {limit}")]
    GrantsDoNotFit {
        /// Grant references needed.
        grants: usize,
        /// Where the list must end.
        limit: usize,
    },
}

/// The orders of the two rings, as the server sees them: it reads the left ring and writes the
/// right one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Order of the left ring (client → server).
    pub left: u8,
    /// Order of the right ring (server → client).
    pub right: u8,
}

impl Geometry {
    /// The rings libxenvchan's server picks for at least `left_min` bytes client → server and
    /// `right_min` bytes server → client: in-page rings when they fit (one small, one large),
    /// else the smallest power of two of whole pages.
    pub fn for_sizes(left_min: usize, right_min: usize) -> Result<Geometry, GeometryError> {
        for size in [left_min, right_min] {
            if size > MAX_RING_SIZE {
                return Err(GeometryError::TooLarge(size));
            }
        }
        let small = 1 << SMALL_ORDER;
        let large = 1 << LARGE_ORDER;
        let geometry = if left_min <= small && right_min <= large {
            Geometry { left: SMALL_ORDER, right: LARGE_ORDER }
        } else if left_min <= large && right_min <= small {
            Geometry { left: LARGE_ORDER, right: SMALL_ORDER }
        } else if left_min <= large {
            Geometry { left: LARGE_ORDER, right: pages_order(right_min) }
        } else if right_min <= large {
            Geometry { left: pages_order(left_min), right: LARGE_ORDER }
        } else {
            Geometry { left: pages_order(left_min), right: pages_order(right_min) }
        };
        geometry.check()?;
        Ok(geometry)
    }

    /// Reads and checks the orders a server wrote (the client's side: it trusts nothing).
    pub fn from_page(left: u16, right: u16) -> Result<Geometry, GeometryError> {
        let order = |o: u16| {
            u8::try_from(o).ok().filter(|o| (SMALL_ORDER..=MAX_ORDER).contains(o)).ok_or(GeometryError::BadOrder(o))
        };
        let geometry = Geometry { left: order(left)?, right: order(right)? };
        geometry.check()?;
        Ok(geometry)
    }

    fn check(self) -> Result<(), GeometryError> {
        if self.left == self.right && self.left < PAGE_ORDER {
            return Err(GeometryError::SameInPageSlot(self.left));
        }
        let grants = pages(self.left) + pages(self.right);
        let limit = [self.left, self.right].into_iter().filter_map(in_page_offset).min().unwrap_or(PAGE_SIZE);
        if GRANTS + 4 * grants > limit {
            return Err(GeometryError::GrantsDoNotFit { grants, limit });
        }
        Ok(())
    }

    /// Grant references in the shared page's list.
    pub fn grant_count(self) -> usize {
        pages(self.left) + pages(self.right)
    }
}

/// Smallest order of whole pages holding `size` bytes.
fn pages_order(size: usize) -> u8 {
    let mut order = PAGE_ORDER;
    while (1usize << order) < size {
        order += 1;
    }
    order
}

/// Offset inside the shared page of an in-page ring, `None` for a ring on its own pages.
pub fn in_page_offset(order: u8) -> Option<usize> {
    match order {
        SMALL_ORDER => Some(1024),
        LARGE_ORDER => Some(2048),
        _ => None,
    }
}

/// Granted pages a ring of `order` needs (0 for in-page rings).
pub fn pages(order: u8) -> usize {
    if order >= PAGE_ORDER {
        1 << (order - PAGE_ORDER)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_those_of_struct_vchan_interface() {
        // Checked against /usr/include/xen/io/libxenvchan.h by the C interop tests; here the
        // arithmetic of the layout: two ring_shared pairs, two u16, four u8, then grants.
        assert_eq!(RIGHT_PROD + 4, LEFT_ORDER);
        assert_eq!(RIGHT_ORDER + 2, CLI_LIVE);
        assert_eq!(SRV_NOTIFY + 1, GRANTS);
    }

    #[test]
    fn sizes_choose_libxenvchans_rings() {
        let g = |l, r| Geometry::for_sizes(l, r).unwrap();
        assert_eq!(g(0, 0), Geometry { left: 10, right: 11 });
        assert_eq!(g(1024, 2048), Geometry { left: 10, right: 11 });
        assert_eq!(g(2048, 1024), Geometry { left: 11, right: 10 });
        assert_eq!(g(2048, 2048), Geometry { left: 11, right: 12 });
        assert_eq!(g(4096, 4096), Geometry { left: 12, right: 12 });
        assert_eq!(g(65536, 100), Geometry { left: 16, right: 11 });
        assert_eq!(g(1 << 20, 1 << 20), Geometry { left: 20, right: 20 });
        assert_eq!(Geometry::for_sizes((1 << 20) + 1, 0), Err(GeometryError::TooLarge((1 << 20) + 1)));
    }

    #[test]
    fn pages_orders_round_up() {
        assert_eq!(pages_order(1), 12);
        assert_eq!(pages_order(4097), 13);
        assert_eq!(pages(12), 1);
        assert_eq!(pages(20), 256);
        assert_eq!(pages(11), 0);
    }

    #[test]
    fn a_servers_page_is_checked() {
        assert_eq!(Geometry::from_page(9, 11), Err(GeometryError::BadOrder(9)));
        assert_eq!(Geometry::from_page(10, 21), Err(GeometryError::BadOrder(21)));
        assert_eq!(Geometry::from_page(10, 10), Err(GeometryError::SameInPageSlot(10)));
        // 256 pages on the right need 1 KiB of grants, which runs into the ring at 1024.
        assert_eq!(Geometry::from_page(10, 20), Err(GeometryError::GrantsDoNotFit { grants: 256, limit: 1024 }));
        assert_eq!(Geometry::from_page(20, 20).unwrap().grant_count(), 512);
    }
}
