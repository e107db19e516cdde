//! The Xen backend: grants and event channels through Linux's Xen devices, as Xen's own
//! `libxengnttab` and `libxenevtchn` do it on Linux (`tools/libs/gnttab/linux.c`,
//! `tools/libs/evtchn/linux.c`):
//!
//! - sharing: `/dev/xen/gntalloc`, `IOCTL_GNTALLOC_ALLOC_GREF` (domain, writable flag, page
//!   count → an mmap offset and one grant reference per page), `mmap` at that offset,
//!   `IOCTL_GNTALLOC_SET_UNMAP_NOTIFY`, then at once `IOCTL_GNTALLOC_DEALLOC_GREF` (the pages
//!   live on until the mapping goes: dropping the [`Mapping`] unmaps them, which ends the grant
//!   and runs the notify);
//! - mapping: `/dev/xen/gntdev`, `IOCTL_GNTDEV_MAP_GRANT_REF` with an array of `{domid, ref}`
//!   (→ an mmap offset), `mmap`, `IOCTL_GNTDEV_SET_UNMAP_NOTIFY`; dropping unmaps, then
//!   `IOCTL_GNTDEV_UNMAP_GRANT_REF`;
//! - event channels: `/dev/xen/evtchn`, opened non-blocking, `IOCTL_EVTCHN_BIND_UNBOUND_PORT`,
//!   `IOCTL_EVTCHN_BIND_INTERDOMAIN` (both answer the local port as the ioctl's result),
//!   `IOCTL_EVTCHN_NOTIFY`, `IOCTL_EVTCHN_UNBIND`; `read` of a `u32` is the next pending port
//!   (`EAGAIN`: none), `write` of a `u32` unmasks it; closing the descriptor unbinds every port.
//!
//! An unmap notify always asks for both actions, `UNMAP_NOTIFY_CLEAR_BYTE |
//! UNMAP_NOTIFY_SEND_EVENT`, as libxenvchan does for `cli_live`/`srv_live`.
//!
//! The ioctl numbers are computed as Linux's `_IOC(dir, type, nr, size)` from the sizes of the
//! argument structs, laid out as in Linux's `include/uapi/xen/{gntalloc,gntdev,evtchn}.h`
//! (identical to Debian's `/usr/include/xen/sys/*.h` from libxen-dev); the sizes are asserted at
//! compile time.
//!
//! **Untestable without Xen**: the devices exist only in a Xen domain (dom0 or a guest with the
//! `xen-gntalloc`, `xen-gntdev` and `xen-evtchn` drivers), so nothing here that touches them runs
//! in this project's tests, and [`XenBackend::open`] fails with a message saying so. The unit
//! tests cover what can be checked anywhere: every ioctl number against the value the C headers
//! give (printed by a C program compiled against them), the size and field offsets of every
//! argument struct, the bytes of the variable-length ioctl arguments (a header followed by
//! `count` entries), and `open`'s error when the devices are missing. The ring protocol above
//! this backend is tested on the simulation backend, which implements the same trait.

use std::{
    ffi::CStr,
    fmt, io,
    mem::{offset_of, size_of},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    ptr::NonNull,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Backend, DomId, EventChannel, GrantRef, Mapping, Port, UnmapNotify, PAGE_SIZE};

/// The devices, as Xen's libraries name them.
const GNTALLOC: &CStr = c"/dev/xen/gntalloc";
const GNTDEV: &CStr = c"/dev/xen/gntdev";
const EVTCHN: &CStr = c"/dev/xen/evtchn";

/// Linux's ioctl encoding (`include/uapi/asm-generic/ioctl.h`, and the architectures that
/// override it), and the argument structs of the three Xen devices.
mod sys {
    use super::{offset_of, size_of};

    /// `_IOC_NONE` and the width of the size field: powerpc, mips and sparc differ from the
    /// generic layout (x86, arm, riscv, ...).
    #[cfg(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))]
    mod arch {
        pub(super) const IOC_NONE: u32 = 1;
        pub(super) const IOC_SIZEBITS: u32 = 13;
    }
    #[cfg(not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    mod arch {
        pub(super) const IOC_NONE: u32 = 0;
        pub(super) const IOC_SIZEBITS: u32 = 14;
    }

    /// `_IOC_NONE`: no data direction (these ioctls all pass a pointer the driver reads and writes).
    pub(super) const IOC_NONE: u32 = arch::IOC_NONE;
    const IOC_NRSHIFT: u32 = 0;
    const IOC_TYPESHIFT: u32 = 8;
    const IOC_SIZESHIFT: u32 = 16;
    const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + arch::IOC_SIZEBITS;

    /// `_IOC(dir, type, nr, size)`.
    pub(super) const fn ioc(dir: u32, kind: u8, nr: u8, size: usize) -> libc::Ioctl {
        assert!(size < 1 << arch::IOC_SIZEBITS, "ioctl argument too large for _IOC");
        ((dir << IOC_DIRSHIFT)
            | ((size as u32) << IOC_SIZESHIFT)
            | ((kind as u32) << IOC_TYPESHIFT)
            | ((nr as u32) << IOC_NRSHIFT)) as libc::Ioctl
    }

    /// `struct ioctl_gntalloc_alloc_gref`: the header; `count` grant references follow it
    /// (`gref_ids[1]` in C, whose size the ioctl number counts).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct GntallocAllocGref {
        /// IN: the domain given access.
        pub(super) domid: u16,
        /// IN: [`GNTALLOC_FLAG_WRITABLE`] or 0.
        pub(super) flags: u16,
        /// IN: pages.
        pub(super) count: u32,
        /// OUT: the mmap offset.
        pub(super) index: u64,
    }
    /// `struct ioctl_gntalloc_alloc_gref` as C declares it.
    pub(super) type GntallocAllocGrefC = WithArray<GntallocAllocGref, u32>;
    pub(super) const GNTALLOC_FLAG_WRITABLE: u16 = 1;

    /// A C struct ending in a one-element array (`gref_ids[1]`, `refs[1]`), as the headers
    /// declare the variable-length arguments: its size is what `_IOC` encodes. The calls pass
    /// `count` entries (`VarArg`).
    #[repr(C)]
    pub(super) struct WithArray<H, T> {
        pub(super) header: H,
        pub(super) first: [T; 1],
    }

    /// `struct ioctl_gntalloc_dealloc_gref`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct GntallocDeallocGref {
        pub(super) index: u64,
        pub(super) count: u32,
    }

    /// `struct ioctl_gntalloc_unmap_notify` and `struct ioctl_gntdev_unmap_notify` (the same
    /// layout).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct UnmapNotifyArg {
        /// The mmap offset of the byte to clear (the mapping's offset + the byte's).
        pub(super) index: u64,
        pub(super) action: u32,
        pub(super) event_channel_port: u32,
    }
    pub(super) const UNMAP_NOTIFY_CLEAR_BYTE: u32 = 0x1;
    pub(super) const UNMAP_NOTIFY_SEND_EVENT: u32 = 0x2;

    /// `struct ioctl_gntdev_grant_ref`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(super) struct GntdevGrantRef {
        pub(super) domid: u32,
        pub(super) gref: u32,
    }

    /// `struct ioctl_gntdev_map_grant_ref`: the header; `count` [`GntdevGrantRef`]s follow.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct GntdevMapGrantRef {
        /// IN: pages.
        pub(super) count: u32,
        pub(super) pad: u32,
        /// OUT: the mmap offset.
        pub(super) index: u64,
    }
    /// `struct ioctl_gntdev_map_grant_ref` as C declares it.
    pub(super) type GntdevMapGrantRefC = WithArray<GntdevMapGrantRef, GntdevGrantRef>;

    /// `struct ioctl_gntdev_unmap_grant_ref`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct GntdevUnmapGrantRef {
        pub(super) index: u64,
        pub(super) count: u32,
        pub(super) pad: u32,
    }

    /// `struct ioctl_evtchn_bind_interdomain`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct EvtchnBindInterdomain {
        pub(super) remote_domain: u32,
        pub(super) remote_port: u32,
    }
    /// `struct ioctl_evtchn_bind_unbound_port`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct EvtchnBindUnboundPort {
        pub(super) remote_domain: u32,
    }
    /// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify` (one `unsigned int port`).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct EvtchnPort {
        pub(super) port: u32,
    }

    // The layouts of the uapi headers (x86_64 and every other Linux: fixed-width fields only).
    const _: () = assert!(size_of::<GntallocAllocGrefC>() == 24);
    const _: () = assert!(size_of::<GntallocAllocGref>() == offset_of!(GntallocAllocGrefC, first));
    const _: () = assert!(size_of::<GntallocDeallocGref>() == 16);
    const _: () = assert!(size_of::<UnmapNotifyArg>() == 16);
    const _: () = assert!(size_of::<GntdevGrantRef>() == 8);
    const _: () = assert!(size_of::<GntdevMapGrantRefC>() == 24);
    const _: () = assert!(size_of::<GntdevMapGrantRef>() == offset_of!(GntdevMapGrantRefC, first));
    const _: () = assert!(size_of::<GntdevUnmapGrantRef>() == 16);
    const _: () = assert!(size_of::<EvtchnBindInterdomain>() == 8);
    const _: () = assert!(size_of::<EvtchnBindUnboundPort>() == 4);
    const _: () = assert!(size_of::<EvtchnPort>() == 4);

    pub(super) const IOCTL_GNTALLOC_ALLOC_GREF: libc::Ioctl = ioc(IOC_NONE, b'G', 5, size_of::<GntallocAllocGrefC>());
    pub(super) const IOCTL_GNTALLOC_DEALLOC_GREF: libc::Ioctl =
        ioc(IOC_NONE, b'G', 6, size_of::<GntallocDeallocGref>());
    pub(super) const IOCTL_GNTALLOC_SET_UNMAP_NOTIFY: libc::Ioctl = ioc(IOC_NONE, b'G', 7, size_of::<UnmapNotifyArg>());
    pub(super) const IOCTL_GNTDEV_MAP_GRANT_REF: libc::Ioctl = ioc(IOC_NONE, b'G', 0, size_of::<GntdevMapGrantRefC>());
    pub(super) const IOCTL_GNTDEV_UNMAP_GRANT_REF: libc::Ioctl =
        ioc(IOC_NONE, b'G', 1, size_of::<GntdevUnmapGrantRef>());
    pub(super) const IOCTL_GNTDEV_SET_UNMAP_NOTIFY: libc::Ioctl = ioc(IOC_NONE, b'G', 7, size_of::<UnmapNotifyArg>());
    pub(super) const IOCTL_EVTCHN_BIND_INTERDOMAIN: libc::Ioctl =
        ioc(IOC_NONE, b'E', 1, size_of::<EvtchnBindInterdomain>());
    pub(super) const IOCTL_EVTCHN_BIND_UNBOUND_PORT: libc::Ioctl =
        ioc(IOC_NONE, b'E', 2, size_of::<EvtchnBindUnboundPort>());
    pub(super) const IOCTL_EVTCHN_UNBIND: libc::Ioctl = ioc(IOC_NONE, b'E', 3, size_of::<EvtchnPort>());
    pub(super) const IOCTL_EVTCHN_NOTIFY: libc::Ioctl = ioc(IOC_NONE, b'E', 4, size_of::<EvtchnPort>());
}

/// A variable-length ioctl argument: a fixed header `H` followed by entries `T`, in 8-byte
/// aligned storage (the headers hold a `u64`).
struct VarArg<H, T> {
    words: Vec<u64>,
    len: usize,
    _layout: std::marker::PhantomData<(H, T)>,
}

impl<H: Copy, T: Copy> VarArg<H, T> {
    /// The header then `entries`, as C lays out a struct ending in an array.
    fn new(header: H, entries: &[T]) -> Self {
        const { assert!(std::mem::align_of::<H>() <= 8 && std::mem::align_of::<T>() <= 8) };
        let len = size_of::<H>() + std::mem::size_of_val(entries);
        let mut arg = VarArg { words: vec![0; len.div_ceil(8)], len, _layout: std::marker::PhantomData };
        let base = arg.words.as_mut_ptr().cast::<u8>();
        // SAFETY: `words` holds `len` bytes, 8-byte aligned; `H` and `T` are plain `repr(C)`
        // data, `H`'s size is a multiple of `T`'s alignment (asserted by the struct layouts),
        // so every write is in bounds and aligned.
        unsafe {
            base.cast::<H>().write(header);
            let tail = base.add(size_of::<H>()).cast::<T>();
            for (i, entry) in entries.iter().enumerate() {
                tail.add(i).write(*entry);
            }
        }
        arg
    }

    fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.words.as_mut_ptr().cast()
    }

    /// The header, as the kernel left it.
    fn header(&self) -> H {
        // SAFETY: written by `new` at offset 0, aligned.
        unsafe { self.words.as_ptr().cast::<H>().read() }
    }

    /// Entry `i`, as the kernel left it.
    fn entry(&self, i: usize) -> T {
        assert!(size_of::<H>() + (i + 1) * size_of::<T>() <= self.len, "entry {i} out of range");
        // SAFETY: in bounds (checked) and aligned as in `new`.
        unsafe { self.words.as_ptr().cast::<u8>().add(size_of::<H>()).cast::<T>().add(i).read() }
    }

    #[cfg(test)]
    fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// `ioctl(fd, request, arg)`; the result (≥ 0) or the OS error.
///
/// # Safety
/// `arg` must point to the argument struct `request` expects, valid for reads and writes.
unsafe fn ioctl(fd: RawFd, request: libc::Ioctl, arg: *mut libc::c_void) -> io::Result<libc::c_int> {
    // SAFETY: the caller's contract.
    let rc = unsafe { libc::ioctl(fd, request, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `ioctl` with a fixed-size argument.
fn ioctl_with<A>(fd: RawFd, request: libc::Ioctl, arg: &mut A) -> io::Result<libc::c_int> {
    // SAFETY: `arg` is a live, exclusive `A`, the struct each call site pairs with `request`.
    unsafe { ioctl(fd, request, (arg as *mut A).cast()) }
}

fn with_context(error: io::Error, what: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// Opens a Xen device read-write, close-on-exec (plus `extra` flags).
fn open_device(path: &CStr, extra: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated; `open` takes no other pointer.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | extra) };
    if fd < 0 {
        let error = io::Error::last_os_error();
        let name = path.to_string_lossy();
        return Err(if error.kind() == io::ErrorKind::NotFound {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no {name}: not running on Xen (or the Xen driver for it is not loaded); \
                     use the sim backend outside Xen"
                ),
            )
        } else {
            with_context(error, &format!("cannot open {name}"))
        });
    }
    // SAFETY: a descriptor `open` just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mmap(NULL, len, prot, MAP_SHARED, fd, offset)`.
fn mmap_shared(fd: RawFd, len: usize, prot: libc::c_int, offset: u64) -> io::Result<NonNull<u8>> {
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: a new mapping chosen by the kernel; no existing memory is touched.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, offset) };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(addr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// Unmaps a region this module mapped.
fn munmap(addr: NonNull<u8>, len: usize) {
    // SAFETY: `addr..addr+len` is a mapping made by `mmap_shared` and not yet unmapped; nothing
    // refers to it after this (its owner is being dropped).
    if unsafe { libc::munmap(addr.as_ptr().cast(), len) } != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "xen: munmap failed");
    }
}

/// The unmap-notify ioctl argument for a mapping at mmap offset `index` of `len` bytes.
fn notify_arg(index: u64, len: usize, notify: UnmapNotify) -> io::Result<sys::UnmapNotifyArg> {
    if notify.offset >= len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unmap notify offset {} is outside the {len}-byte mapping", notify.offset),
        ));
    }
    Ok(sys::UnmapNotifyArg {
        index: index + notify.offset as u64,
        action: sys::UNMAP_NOTIFY_CLEAR_BYTE | sys::UNMAP_NOTIFY_SEND_EVENT,
        event_channel_port: notify.port,
    })
}

fn page_count(pages: usize) -> io::Result<(u32, usize)> {
    let count = u32::try_from(pages)
        .ok()
        .filter(|count| *count > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("cannot grant {pages} pages")))?;
    let len = pages
        .checked_mul(PAGE_SIZE)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{pages} pages overflow")))?;
    Ok((count, len))
}

/// Grants and event channels of the Xen domain this process runs in, through
/// `/dev/xen/gntalloc`, `/dev/xen/gntdev` and `/dev/xen/evtchn`.
#[derive(Debug)]
pub struct XenBackend {
    gntalloc: Arc<OwnedFd>,
    gntdev: Arc<OwnedFd>,
}

impl XenBackend {
    /// Opens `/dev/xen/gntalloc` and `/dev/xen/gntdev` (each event-channel handle opens its own
    /// `/dev/xen/evtchn`). Outside Xen it fails with `NotFound` and a message naming the missing
    /// device ("no /dev/xen/gntalloc: not running on Xen ...").
    pub fn open() -> io::Result<XenBackend> {
        let gntalloc = Arc::new(open_device(GNTALLOC, 0)?);
        let gntdev = Arc::new(open_device(GNTDEV, 0)?);
        Ok(XenBackend { gntalloc, gntdev })
    }
}

impl Backend for XenBackend {
    fn name(&self) -> &'static str {
        "xen"
    }

    fn share(
        &self,
        peer: DomId,
        pages: usize,
        writable: bool,
        notify: Option<UnmapNotify>,
    ) -> io::Result<Box<dyn Mapping>> {
        let (count, len) = page_count(pages)?;
        let fd = self.gntalloc.as_raw_fd();
        let flags = if writable { sys::GNTALLOC_FLAG_WRITABLE } else { 0 };
        let header = sys::GntallocAllocGref { domid: peer, flags, count, index: 0 };
        let mut arg = VarArg::<sys::GntallocAllocGref, u32>::new(header, &vec![0; pages]);
        // SAFETY: the argument is the alloc header followed by `count` grant refs, as the ioctl
        // expects.
        unsafe { ioctl(fd, sys::IOCTL_GNTALLOC_ALLOC_GREF, arg.as_mut_ptr()) }
            .map_err(|e| with_context(e, &format!("cannot grant {pages} pages to domain {peer}")))?;
        let index = arg.header().index;
        let refs = (0..pages).map(|i| arg.entry(i)).collect();
        let mapped = mmap_shared(fd, len, libc::PROT_READ | libc::PROT_WRITE, index)
            .map_err(|e| with_context(e, "cannot map granted pages"))
            .and_then(|addr| {
                let mapping = Pages { addr, len, refs, origin: Origin::Shared };
                if let Some(notify) = notify {
                    let mut arg = notify_arg(index, len, notify)?;
                    ioctl_with(fd, sys::IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, &mut arg)
                        .map_err(|e| with_context(e, "cannot set the unmap notify of granted pages"))?;
                }
                Ok(mapping)
            });
        // Dropping the offset from the descriptor frees nothing until the pages are unmapped
        // (on error, they already are: the `Pages` were dropped).
        let mut drop_arg = sys::GntallocDeallocGref { index, count };
        if let Err(error) = ioctl_with(fd, sys::IOCTL_GNTALLOC_DEALLOC_GREF, &mut drop_arg) {
            tracing::warn!(%error, "xen: IOCTL_GNTALLOC_DEALLOC_GREF failed");
        }
        Ok(Box::new(mapped?))
    }

    fn map(
        &self,
        granter: DomId,
        refs: &[GrantRef],
        writable: bool,
        notify: Option<UnmapNotify>,
    ) -> io::Result<Box<dyn Mapping>> {
        let (count, len) = page_count(refs.len())?;
        let fd = self.gntdev.as_raw_fd();
        let entries: Vec<sys::GntdevGrantRef> =
            refs.iter().map(|gref| sys::GntdevGrantRef { domid: u32::from(granter), gref: *gref }).collect();
        let mut arg = VarArg::new(sys::GntdevMapGrantRef { count, pad: 0, index: 0 }, &entries);
        // SAFETY: the argument is the map header followed by `count` `{domid, ref}` entries.
        unsafe { ioctl(fd, sys::IOCTL_GNTDEV_MAP_GRANT_REF, arg.as_mut_ptr()) }
            .map_err(|e| with_context(e, &format!("cannot map grants {refs:?} of domain {granter}")))?;
        let index = arg.header().index;
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // The hypervisor answers EAGAIN while a granted page is paged out; Xen's library retries
        // every millisecond. Here for at most ten seconds.
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = loop {
            match mmap_shared(fd, len, prot, index) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    unmap_slots(fd, index, count);
                    return Err(with_context(e, &format!("cannot map grants {refs:?} of domain {granter}")));
                }
                Ok(addr) => break addr,
            }
        };
        let origin = Origin::Mapped { gntdev: self.gntdev.clone(), index, count };
        let mapping = Pages { addr, len, refs: refs.to_vec(), origin };
        if let Some(notify) = notify {
            let mut arg = notify_arg(index, len, notify)?;
            // On error, dropping `mapping` unmaps the pages and the slots.
            ioctl_with(fd, sys::IOCTL_GNTDEV_SET_UNMAP_NOTIFY, &mut arg)
                .map_err(|e| with_context(e, "cannot set the unmap notify of mapped grants"))?;
        }
        Ok(Box::new(mapping))
    }

    fn open_events(&self) -> io::Result<Box<dyn EventChannel>> {
        Ok(Box::new(XenEvents { fd: open_device(EVTCHN, libc::O_NONBLOCK)? }))
    }
}

/// Granted or mapped pages, mapped into this process until dropped.
struct Pages {
    addr: NonNull<u8>,
    len: usize,
    refs: Vec<GrantRef>,
    origin: Origin,
}

/// Where [`Pages`] come from, which says how they are released.
#[derive(Debug)]
enum Origin {
    /// Granted by this domain (`/dev/xen/gntalloc`): the offset was dropped from the descriptor
    /// at share time, so unmapping frees the pages, ends the grant and runs the unmap notify.
    Shared,
    /// Granted by another domain and mapped here (`/dev/xen/gntdev`): unmapping runs the notify,
    /// then the driver's slots are released (it refuses while they are mapped).
    Mapped { gntdev: Arc<OwnedFd>, index: u64, count: u32 },
}

// SAFETY: the pointer is to shared memory this value owns until it is dropped; the memory is
// accessed through `Mapping::as_ptr` by callers who synchronise as the ring protocol requires.
unsafe impl Send for Pages {}
// SAFETY: as above; `&self` methods only read the address, length and refs.
unsafe impl Sync for Pages {}

impl fmt::Debug for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("addr", &self.addr)
            .field("len", &self.len)
            .field("refs", &self.refs)
            .field("origin", &self.origin)
            .finish()
    }
}

impl Mapping for Pages {
    fn refs(&self) -> &[GrantRef] {
        &self.refs
    }
    fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        munmap(self.addr, self.len);
        if let Origin::Mapped { gntdev, index, count } = &self.origin {
            unmap_slots(gntdev.as_raw_fd(), *index, *count);
        }
    }
}

/// Releases gntdev's slots of a mapping (`IOCTL_GNTDEV_UNMAP_GRANT_REF`).
fn unmap_slots(fd: RawFd, index: u64, count: u32) {
    let mut arg = sys::GntdevUnmapGrantRef { index, count, pad: 0 };
    if let Err(error) = ioctl_with(fd, sys::IOCTL_GNTDEV_UNMAP_GRANT_REF, &mut arg) {
        tracing::warn!(%error, "xen: IOCTL_GNTDEV_UNMAP_GRANT_REF failed");
    }
}

/// An event-channel handle: one non-blocking `/dev/xen/evtchn` descriptor.
#[derive(Debug)]
struct XenEvents {
    fd: OwnedFd,
}

impl XenEvents {
    fn port_ioctl(&self, request: libc::Ioctl, port: Port, what: &str) -> io::Result<()> {
        let mut arg = sys::EvtchnPort { port };
        ioctl_with(self.fd.as_raw_fd(), request, &mut arg)
            .map_err(|e| with_context(e, &format!("{what} port {port}")))?;
        Ok(())
    }
}

/// The port an evtchn bind ioctl answered.
fn bound_port(rc: libc::c_int) -> io::Result<Port> {
    Port::try_from(rc).ok().filter(|port| *port != 0).ok_or_else(|| io::Error::other(format!("bad port {rc}")))
}

impl EventChannel for XenEvents {
    fn bind_unbound(&self, remote: DomId) -> io::Result<Port> {
        let mut arg = sys::EvtchnBindUnboundPort { remote_domain: u32::from(remote) };
        let rc = ioctl_with(self.fd.as_raw_fd(), sys::IOCTL_EVTCHN_BIND_UNBOUND_PORT, &mut arg)
            .map_err(|e| with_context(e, &format!("cannot allocate an event channel for domain {remote}")))?;
        bound_port(rc)
    }

    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> io::Result<Port> {
        let mut arg = sys::EvtchnBindInterdomain { remote_domain: u32::from(remote), remote_port };
        let rc = ioctl_with(self.fd.as_raw_fd(), sys::IOCTL_EVTCHN_BIND_INTERDOMAIN, &mut arg)
            .map_err(|e| with_context(e, &format!("cannot bind to event channel {remote_port} of domain {remote}")))?;
        bound_port(rc)
    }

    fn notify(&self, port: Port) -> io::Result<()> {
        self.port_ioctl(sys::IOCTL_EVTCHN_NOTIFY, port, "cannot notify")
    }

    fn pending(&self) -> io::Result<Option<Port>> {
        let mut port: Port = 0;
        // SAFETY: reads at most 4 bytes into `port`.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut port as *mut Port).cast(), size_of::<Port>()) };
        if n < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(error) };
        }
        if n as usize != size_of::<Port>() {
            return Err(io::Error::other(format!("short read of {n} bytes from {}", EVTCHN.to_string_lossy())));
        }
        Ok(Some(port))
    }

    fn unmask(&self, port: Port) -> io::Result<()> {
        // SAFETY: writes the 4 bytes of `port`.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), (&port as *const Port).cast(), size_of::<Port>()) };
        if n < 0 {
            return Err(with_context(io::Error::last_os_error(), &format!("cannot unmask port {port}")));
        }
        Ok(())
    }

    fn unbind(&self, port: Port) -> io::Result<()> {
        self.port_ioctl(sys::IOCTL_EVTCHN_UNBIND, port, "cannot unbind")
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::{sys::*, *};

    /// The values the C headers give on x86_64 (and every architecture with the generic `_IOC`
    /// layout): printed by a C program including `<xen/sys/gntalloc.h>`, `<xen/sys/gntdev.h>`
    /// and `<xen/sys/evtchn.h>` from Debian's libxen-dev.
    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64", target_arch = "arm"))]
    fn ioctl_numbers_match_the_c_headers() {
        let expected: [(&str, libc::Ioctl, libc::Ioctl); 10] = [
            ("IOCTL_GNTALLOC_ALLOC_GREF", IOCTL_GNTALLOC_ALLOC_GREF, 0x0018_4705),
            ("IOCTL_GNTALLOC_DEALLOC_GREF", IOCTL_GNTALLOC_DEALLOC_GREF, 0x0010_4706),
            ("IOCTL_GNTALLOC_SET_UNMAP_NOTIFY", IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, 0x0010_4707),
            ("IOCTL_GNTDEV_MAP_GRANT_REF", IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700),
            ("IOCTL_GNTDEV_UNMAP_GRANT_REF", IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x0010_4701),
            ("IOCTL_GNTDEV_SET_UNMAP_NOTIFY", IOCTL_GNTDEV_SET_UNMAP_NOTIFY, 0x0010_4707),
            ("IOCTL_EVTCHN_BIND_INTERDOMAIN", IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501),
            ("IOCTL_EVTCHN_BIND_UNBOUND_PORT", IOCTL_EVTCHN_BIND_UNBOUND_PORT, 0x0004_4502),
            ("IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND, 0x0004_4503),
            ("IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY, 0x0004_4504),
        ];
        for (name, ours, c) in expected {
            assert_eq!(ours, c, "{name}: {ours:#010x} != {c:#010x}");
        }
        // _IOC's field order: dir, size, type, nr.
        assert_eq!(ioc(IOC_NONE, 0xAB, 0xCD, 0x123), 0x0123_ABCD);
    }

    #[test]
    fn struct_layouts_match_the_uapi_headers() {
        assert_eq!(size_of::<GntallocAllocGrefC>(), 24);
        assert_eq!(offset_of!(GntallocAllocGref, domid), 0);
        assert_eq!(offset_of!(GntallocAllocGref, flags), 2);
        assert_eq!(offset_of!(GntallocAllocGref, count), 4);
        assert_eq!(offset_of!(GntallocAllocGref, index), 8);
        assert_eq!(offset_of!(GntallocAllocGrefC, first), 16);

        assert_eq!(size_of::<GntallocDeallocGref>(), 16);
        assert_eq!((offset_of!(GntallocDeallocGref, index), offset_of!(GntallocDeallocGref, count)), (0, 8));

        assert_eq!(size_of::<UnmapNotifyArg>(), 16);
        assert_eq!(offset_of!(UnmapNotifyArg, index), 0);
        assert_eq!(offset_of!(UnmapNotifyArg, action), 8);
        assert_eq!(offset_of!(UnmapNotifyArg, event_channel_port), 12);

        assert_eq!(size_of::<GntdevGrantRef>(), 8);
        assert_eq!((offset_of!(GntdevGrantRef, domid), offset_of!(GntdevGrantRef, gref)), (0, 4));
        assert_eq!(size_of::<GntdevMapGrantRefC>(), 24);
        assert_eq!(offset_of!(GntdevMapGrantRef, count), 0);
        assert_eq!(offset_of!(GntdevMapGrantRef, index), 8);
        assert_eq!(offset_of!(GntdevMapGrantRefC, first), 16);

        assert_eq!(size_of::<GntdevUnmapGrantRef>(), 16);
        assert_eq!((offset_of!(GntdevUnmapGrantRef, index), offset_of!(GntdevUnmapGrantRef, count)), (0, 8));

        assert_eq!(size_of::<EvtchnBindInterdomain>(), 8);
        assert_eq!(offset_of!(EvtchnBindInterdomain, remote_port), 4);
        assert_eq!(size_of::<EvtchnBindUnboundPort>(), 4);
        assert_eq!(size_of::<EvtchnPort>(), 4);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn variable_length_arguments_are_laid_out_as_in_c() {
        let refs = [GntdevGrantRef { domid: 5, gref: 8 }, GntdevGrantRef { domid: 5, gref: 0x1234 }];
        let mut arg = VarArg::new(GntdevMapGrantRef { count: 2, pad: 0, index: 0 }, &refs);
        #[rustfmt::skip]
        let expected: [u8; 32] = [
            2, 0, 0, 0, 0, 0, 0, 0,       // count, pad
            0, 0, 0, 0, 0, 0, 0, 0,       // index
            5, 0, 0, 0, 8, 0, 0, 0,       // refs[0]
            5, 0, 0, 0, 0x34, 0x12, 0, 0, // refs[1]
        ];
        assert_eq!(arg.bytes(), expected);
        // What the kernel writes back is read back.
        // SAFETY: the index field of the header, inside the buffer.
        unsafe { arg.as_mut_ptr().cast::<u8>().add(8).cast::<u64>().write(0x7000) };
        assert_eq!(arg.header().index, 0x7000);
        assert_eq!(arg.entry(1), refs[1]);

        let alloc = VarArg::<GntallocAllocGref, u32>::new(
            GntallocAllocGref { domid: 7, flags: GNTALLOC_FLAG_WRITABLE, count: 3, index: 0 },
            &[0; 3],
        );
        assert_eq!(alloc.bytes().len(), 16 + 3 * 4);
        assert_eq!(&alloc.bytes()[..8], [7, 0, 1, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn notify_argument_clears_the_byte_and_sends_the_event() {
        let arg = notify_arg(0x10000, 2 * PAGE_SIZE, UnmapNotify { offset: 4097, port: 9 }).unwrap();
        assert_eq!(arg.index, 0x10000 + 4097);
        assert_eq!(arg.action, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT);
        assert_eq!(arg.event_channel_port, 9);
        let outside = notify_arg(0, PAGE_SIZE, UnmapNotify { offset: PAGE_SIZE, port: 1 }).unwrap_err();
        assert_eq!(outside.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn page_counts() {
        assert_eq!(page_count(3).unwrap(), (3, 3 * PAGE_SIZE));
        assert_eq!(page_count(0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(page_count(usize::MAX).is_err());
    }

    #[test]
    fn open_outside_xen_says_so() {
        if std::path::Path::new("/dev/xen/gntalloc").exists() {
            eprintln!("SKIPPED: /dev/xen/gntalloc exists (this is a Xen domain)");
            return;
        }
        let error = XenBackend::open().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let message = error.to_string();
        assert!(message.starts_with("no /dev/xen/gntalloc: not running on Xen"), "{message}");
    }
}
