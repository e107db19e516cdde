//! The two rings and the notify bytes of a mapped shared page: the lock-free half of vchan.
//!
//! Each ring has one writer and one reader, in different domains. The writer copies data in,
//! then publishes it by storing `prod` (release); the reader loads `prod` (acquire), copies the
//! data out, then stores `cons` (release). Indices are free-running `u32`s that wrap at 2^32;
//! their difference is what counts, and a difference larger than the ring is the peer lying.
//! Notifications follow libxenvchan: a side that is about to wait sets a bit in the *peer's*
//! notify byte, and the peer clears it and signals the event channel after its next write or read.

use std::{
    ptr,
    sync::atomic::{fence, AtomicU32, AtomicU8, Ordering},
};

use crate::layout::{CLI_LIVE, CLI_NOTIFY, LEFT_CONS, LEFT_PROD, RIGHT_CONS, RIGHT_PROD, SRV_LIVE, SRV_NOTIFY};

/// The peer's indices say more bytes are in a ring than it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the peer's indices of the {ring} ring ({}, the one this {} {}) are inconsistent: {used} bytes in use of a \
     {size}-byte ring",
    ring.direction(),
    role.name(),
    if self.reading() { "reads" } else { "writes" }
)]
pub struct CorruptRing {
    /// The ring whose indices lie.
    pub ring: RingId,
    /// This side of the channel, which reads the ring or writes it ([`CorruptRing::reading`]).
    pub role: Role,
    /// `prod - cons`, as found.
    pub used: u32,
    /// The ring's size.
    pub size: u32,
}

impl CorruptRing {
    /// Whether this side reads the ring (else it writes it).
    pub fn reading(&self) -> bool {
        self.ring.reader() == self.role
    }
}

/// The two rings of a shared page, named as libxenvchan names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingId {
    /// The left ring: the client writes, the server reads.
    Left,
    /// The right ring: the server writes, the client reads.
    Right,
}

impl RingId {
    /// The side that reads this ring.
    pub fn reader(self) -> Role {
        match self {
            RingId::Left => Role::Server,
            RingId::Right => Role::Client,
        }
    }

    /// Which way its bytes go.
    pub fn direction(self) -> &'static str {
        match self {
            RingId::Left => "client to server",
            RingId::Right => "server to client",
        }
    }
}

impl std::fmt::Display for RingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RingId::Left => "left",
            RingId::Right => "right",
        })
    }
}

/// Which end of the channel this process is; decides which ring it reads and which bytes are its.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Created the channel: reads the left ring, writes the right one.
    Server,
    /// Connected to it: writes the left ring, reads the right one.
    Client,
}

impl Role {
    /// `server` or `client`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// One ring as seen from one side: its indices in the shared page and its data.
#[derive(Debug)]
pub(crate) struct Ring {
    cons: *const AtomicU32,
    prod: *const AtomicU32,
    data: *mut u8,
    order: u8,
    /// Which ring it is, and the side viewing it: what a [`CorruptRing`] names.
    id: RingId,
    role: Role,
}

impl Ring {
    /// Ring `id` as `role` sees it, its data at `data`.
    ///
    /// # Safety
    /// `page` must point to a mapped shared page and `data` to `1 << order` mapped bytes, both
    /// outliving the ring.
    unsafe fn new(page: *mut u8, (id, role): (RingId, Role), data: *mut u8, order: u8) -> Ring {
        let (cons, prod) = match id {
            RingId::Left => (LEFT_CONS, LEFT_PROD),
            RingId::Right => (RIGHT_CONS, RIGHT_PROD),
        };
        Ring { cons: page.add(cons).cast(), prod: page.add(prod).cast(), data, order, id, role }
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> u32 {
        1 << self.order
    }

    fn cons(&self) -> &AtomicU32 {
        // SAFETY: `new`'s contract; the offsets are 4-aligned in a page-aligned mapping.
        unsafe { &*self.cons }
    }

    fn prod(&self) -> &AtomicU32 {
        // SAFETY: as `cons`.
        unsafe { &*self.prod }
    }

    fn used(&self) -> Result<u32, CorruptRing> {
        let used = self.prod().load(Ordering::Acquire).wrapping_sub(self.cons().load(Ordering::Acquire));
        if used > self.size() {
            return Err(CorruptRing { ring: self.id, role: self.role, used, size: self.size() });
        }
        Ok(used)
    }

    /// Bytes ready to read (reader's side).
    pub(crate) fn ready(&self) -> Result<u32, CorruptRing> {
        self.used()
    }

    /// Bytes that can be written without waiting (writer's side).
    pub(crate) fn space(&self) -> Result<u32, CorruptRing> {
        Ok(self.size() - self.used()?)
    }

    /// Copies up to `out.len()` ready bytes out and consumes them; returns how many.
    pub(crate) fn read(&self, out: &mut [u8]) -> Result<usize, CorruptRing> {
        let len = (self.ready()? as usize).min(out.len());
        if len == 0 {
            return Ok(0);
        }
        let cons = self.cons().load(Ordering::Relaxed);
        let (first, second) = self.spans(cons, len);
        // SAFETY: the spans lie inside the ring's data (`spans`), which `new`'s contract keeps
        // mapped; `ready` acquired `prod`, so the writer's bytes are visible.
        unsafe {
            ptr::copy_nonoverlapping(self.data.add(first.0), out.as_mut_ptr(), first.1);
            ptr::copy_nonoverlapping(self.data.add(second.0), out.as_mut_ptr().add(first.1), second.1);
        }
        self.cons().store(cons.wrapping_add(len as u32), Ordering::Release);
        Ok(len)
    }

    /// Copies up to `input.len()` bytes in, as far as there is space, and publishes them;
    /// returns how many.
    pub(crate) fn write(&self, input: &[u8]) -> Result<usize, CorruptRing> {
        let len = (self.space()? as usize).min(input.len());
        if len == 0 {
            return Ok(0);
        }
        let prod = self.prod().load(Ordering::Relaxed);
        let (first, second) = self.spans(prod, len);
        // SAFETY: as in `read`; `space` acquired `cons`, so the reader is done with these bytes.
        unsafe {
            ptr::copy_nonoverlapping(input.as_ptr(), self.data.add(first.0), first.1);
            ptr::copy_nonoverlapping(input.as_ptr().add(first.1), self.data.add(second.0), second.1);
        }
        self.prod().store(prod.wrapping_add(len as u32), Ordering::Release);
        Ok(len)
    }

    /// The (offset, length) of the bytes from index `at` for `len` bytes: up to the end of the
    /// ring, then from its start.
    fn spans(&self, at: u32, len: usize) -> ((usize, usize), (usize, usize)) {
        let offset = (at & (self.size() - 1)) as usize;
        let first = len.min(self.size() as usize - offset);
        ((offset, first), (0, len - first))
    }
}

/// The shared page from one side: both rings, the live bytes and the notify bytes.
#[derive(Debug)]
pub(crate) struct SharedPage {
    page: *mut u8,
    role: Role,
    /// The ring this side reads.
    pub(crate) read: Ring,
    /// The ring this side writes.
    pub(crate) write: Ring,
}

// SAFETY: the page and rings are shared memory accessed only through atomics (indices, live and
// notify bytes) and through copies of the byte ranges the protocol gives each side; the mappings
// are owned next to this value by the channel, which drops them after it.
unsafe impl Send for SharedPage {}
// SAFETY: as for Send; no method takes `&mut self`.
unsafe impl Sync for SharedPage {}

impl SharedPage {
    /// Views a mapped page for `role`, with the left ring's data at `left` (order `left_order`)
    /// and the right ring's at `right`.
    ///
    /// # Safety
    /// `page` must be a mapped shared page and `left`/`right` mapped ring data of their orders,
    /// all outliving the value.
    pub(crate) unsafe fn new(
        page: *mut u8,
        role: Role,
        (left, left_order): (*mut u8, u8),
        (right, right_order): (*mut u8, u8),
    ) -> SharedPage {
        let left = Ring::new(page, (RingId::Left, role), left, left_order);
        let right = Ring::new(page, (RingId::Right, role), right, right_order);
        let (read, write) = match role {
            Role::Server => (left, right),
            Role::Client => (right, left),
        };
        SharedPage { page, role, read, write }
    }

    fn byte(&self, offset: usize) -> &AtomicU8 {
        // SAFETY: `new`'s contract; offsets are inside the page.
        unsafe { &*self.page.add(offset).cast::<AtomicU8>() }
    }

    /// This side's live byte.
    pub(crate) fn own_live(&self) -> &AtomicU8 {
        self.byte(match self.role {
            Role::Server => SRV_LIVE,
            Role::Client => CLI_LIVE,
        })
    }

    /// The peer's live byte: 0 gone, 1 connected, 2 (server's view) no client yet.
    pub(crate) fn peer_live(&self) -> u8 {
        self.byte(match self.role {
            Role::Server => CLI_LIVE,
            Role::Client => SRV_LIVE,
        })
        .load(Ordering::Acquire)
    }

    /// Asks the peer to signal after its next action of kind `bit` (`NOTIFY_WRITE`,
    /// `NOTIFY_READ`). The caller must look at the indices again afterwards.
    pub(crate) fn request_notify(&self, bit: u8) {
        let theirs = self.byte(match self.role {
            Role::Server => CLI_NOTIFY,
            Role::Client => SRV_NOTIFY,
        });
        theirs.fetch_or(bit, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// After a write or read (`bit`), whether the peer asked to hear of it; clears the request.
    pub(crate) fn take_notify_request(&self, bit: u8) -> bool {
        fence(Ordering::SeqCst);
        let mine = self.byte(match self.role {
            Role::Server => SRV_NOTIFY,
            Role::Client => CLI_NOTIFY,
        });
        mine.fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }
}

/// A shared page and both rings in this process's memory, both ends driven by the caller: what
/// the fuzz target and the hostile corpus use to play a peer that writes any indices into the
/// page (`store_index`) against the real ring reader and writer. Not part of the API.
#[doc(hidden)]
pub struct LoopbackPage {
    page: *mut [u64; 512],
    left: *mut [u8],
    right: *mut [u8],
    server: SharedPage,
    client: SharedPage,
}

impl LoopbackPage {
    /// A zeroed page with rings of `geometry`'s orders (checked, so at most 1 MiB each).
    pub fn new(geometry: crate::layout::Geometry) -> LoopbackPage {
        let page = Box::into_raw(Box::new([0u64; 512]));
        let left = Box::into_raw(vec![0u8; 1 << geometry.left].into_boxed_slice());
        let right = Box::into_raw(vec![0u8; 1 << geometry.right].into_boxed_slice());
        let view = |role| {
            // SAFETY: the page and ring data are allocated above and freed only by `drop`,
            // after which neither view is used; every access goes through raw pointers.
            unsafe { SharedPage::new(page.cast(), role, (left.cast(), geometry.left), (right.cast(), geometry.right)) }
        };
        LoopbackPage { page, left, right, server: view(Role::Server), client: view(Role::Client) }
    }

    fn side(&self, role: Role) -> &SharedPage {
        match role {
            Role::Server => &self.server,
            Role::Client => &self.client,
        }
    }

    /// `role` reads the ring it reads, as the channel does.
    pub fn read(&self, role: Role, out: &mut [u8]) -> Result<usize, CorruptRing> {
        self.side(role).read.read(out)
    }

    /// `role` writes the ring it writes, as the channel does.
    pub fn write(&self, role: Role, input: &[u8]) -> Result<usize, CorruptRing> {
        self.side(role).write.write(input)
    }

    /// Bytes `role` may read now.
    pub fn ready(&self, role: Role) -> Result<u32, CorruptRing> {
        self.side(role).read.ready()
    }

    /// Bytes `role` may write now.
    pub fn space(&self, role: Role) -> Result<u32, CorruptRing> {
        self.side(role).write.space()
    }

    /// Size of the ring `role` reads.
    pub fn read_size(&self, role: Role) -> u32 {
        self.side(role).read.size()
    }

    /// Stores `value` at an index's offset (`layout::LEFT_CONS`, `LEFT_PROD`, `RIGHT_CONS` or
    /// `RIGHT_PROD`), as a peer in another domain may at any moment.
    ///
    /// # Panics
    /// When `offset` is not one of the four.
    pub fn store_index(&self, offset: usize, value: u32) {
        self.index(offset).store(value, Ordering::Release);
    }

    /// The index at `offset` (as `store_index`).
    pub fn load_index(&self, offset: usize) -> u32 {
        self.index(offset).load(Ordering::Acquire)
    }

    fn index(&self, offset: usize) -> &AtomicU32 {
        assert!([LEFT_CONS, LEFT_PROD, RIGHT_CONS, RIGHT_PROD].contains(&offset), "{offset} is not an index offset");
        // SAFETY: a 4-aligned offset inside the page, which lives as long as `self`.
        unsafe { &*self.page.cast::<u8>().add(offset).cast::<AtomicU32>() }
    }
}

impl Drop for LoopbackPage {
    fn drop(&mut self) {
        // SAFETY: allocated by `new` with Box and freed only here; the views are not used again.
        unsafe {
            drop(Box::from_raw(self.page));
            drop(Box::from_raw(self.left));
            drop(Box::from_raw(self.right));
        }
    }
}

impl std::fmt::Debug for LoopbackPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackPage").field("server", &self.server).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page and ring data in process memory, laid out as `SharedPage` expects.
    struct Fixture {
        page: Box<[u64; 512]>,
        left: Vec<u8>,
        right: Vec<u8>,
    }

    impl Fixture {
        fn new(left_order: u8, right_order: u8) -> Fixture {
            Fixture { page: Box::new([0; 512]), left: vec![0; 1 << left_order], right: vec![0; 1 << right_order] }
        }

        fn side(&mut self, role: Role) -> SharedPage {
            let left_order = self.left.len().trailing_zeros() as u8;
            let right_order = self.right.len().trailing_zeros() as u8;
            // SAFETY: the fixture outlives the views in every test.
            unsafe {
                SharedPage::new(
                    self.page.as_mut_ptr().cast(),
                    role,
                    (self.left.as_mut_ptr(), left_order),
                    (self.right.as_mut_ptr(), right_order),
                )
            }
        }
    }

    #[test]
    fn bytes_cross_both_rings_and_wrap() {
        let mut fixture = Fixture::new(10, 12);
        let server = fixture.side(Role::Server);
        let client = fixture.side(Role::Client);
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let mut got = Vec::new();
        let mut buf = [0u8; 700];
        let mut sent = 0;
        while got.len() < data.len() {
            sent += client.write.write(&data[sent..]).unwrap();
            let n = server.read.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        assert_eq!(server.write.write(&[1; 5000]).unwrap(), 4096, "the right ring holds 4 KiB");
        assert_eq!(client.read.ready().unwrap(), 4096);
    }

    #[test]
    fn indices_wrap_at_u32() {
        let mut fixture = Fixture::new(10, 11);
        // Both indices of the left ring just below 2^32.
        fixture.page[0] = u64::from(u32::MAX - 10) | (u64::from(u32::MAX - 10) << 32);
        let server = fixture.side(Role::Server);
        let client = fixture.side(Role::Client);
        assert_eq!(client.write.write(&[9; 100]).unwrap(), 100);
        let mut out = [0; 100];
        assert_eq!(server.read.read(&mut out).unwrap(), 100);
        assert_eq!(out, [9; 100]);
        assert_eq!(server.read.ready().unwrap(), 0);
    }

    #[test]
    fn lying_indices_are_reported() {
        let mut fixture = Fixture::new(10, 11);
        fixture.page[0] = 5000 << 32; // left.prod = 5000, left.cons = 0
        let server = fixture.side(Role::Server);
        let corrupt = CorruptRing { ring: RingId::Left, role: Role::Server, used: 5000, size: 1024 };
        assert_eq!(server.read.ready(), Err(corrupt));
        assert!(corrupt.reading());
        assert_eq!(
            corrupt.to_string(),
            "the peer's indices of the left ring (client to server, the one this server reads) are inconsistent: \
             5000 bytes in use of a 1024-byte ring"
        );
        // The client writes that ring, and says so.
        let client = fixture.side(Role::Client);
        let corrupt = client.write.space().unwrap_err();
        assert_eq!((corrupt.ring, corrupt.role, corrupt.reading()), (RingId::Left, Role::Client, false));
        assert!(corrupt.to_string().contains("left ring (client to server, the one this client writes)"), "{corrupt}");
        // The right ring, lying to the client that reads it and the server that writes it.
        fixture.page[1] = 9000 << 32; // right.prod = 9000, right.cons = 0
        let client = fixture.side(Role::Client);
        let server = fixture.side(Role::Server);
        let read = client.read.read(&mut [0; 16]).unwrap_err();
        assert_eq!(
            (read.ring, read.role, read.reading(), read.used, read.size),
            (RingId::Right, Role::Client, true, 9000, 2048)
        );
        assert!(read.to_string().contains("right ring (server to client, the one this client reads)"), "{read}");
        let write = server.write.write(&[1; 16]).unwrap_err();
        assert!(write.to_string().contains("right ring (server to client, the one this server writes)"), "{write}");
    }

    #[test]
    fn notify_requests_go_to_the_peer_and_are_taken_once() {
        let mut fixture = Fixture::new(10, 11);
        let server = fixture.side(Role::Server);
        let client = fixture.side(Role::Client);
        server.request_notify(crate::layout::NOTIFY_WRITE);
        assert!(!server.take_notify_request(crate::layout::NOTIFY_WRITE));
        assert!(client.take_notify_request(crate::layout::NOTIFY_WRITE));
        assert!(!client.take_notify_request(crate::layout::NOTIFY_WRITE));
    }
}
