//! The simulation backend: Xen's grant tables and event channels emulated with files and Unix
//! datagram sockets, so that any number of "domains" run on one Linux machine without Xen
//! (docs/vchan.md, "The simulation backend").
//!
//! All shared state lives in one directory (a process keeps nothing authoritative of its own),
//! so that several processes, and the two drop-in C libraries (`vchan-sim/`) loaded into one
//! process, agree:
//!
//! ```text
//! <dir>/lock                       flock'd while a dead process's leftovers are reclaimed
//! <dir>/exit/<owner>.<random>      an unmap notify a live process still owes (see below)
//! <dir>/dom<D>/gnt/<ref>           a page domain D granted: 4 KiB of data, then 4 KiB of
//!                                  metadata (grantee, writable, owner, nonce)
//! <dir>/dom<D>/evtchn/<port>       a port of domain D: its owner, the socket of the handle
//!                                  owning it, the domain allowed to connect, and once
//!                                  connected the remote port, its socket and its owner
//! <dir>/dom<D>/evtchn/<port>.claim held while a remote domain connects to the port
//! <dir>/dom<D>/evtchn/pending      one pending bit per port of domain D (a shared page)
//! ```
//!
//! An *owner* is a process, named `<pid>.<start time>` (the start time, from `/proc`, tells a
//! reused pid apart). Records are published atomically (written to a temporary name, then
//! `link`ed into place, which fails if the name is taken, or `rename`d over the old record), so
//! concurrent allocators never collide. Grant references start at 8 (Xen reserves 0–7, and
//! libxenvchan reads 0 as failure), ports at 1; a record whose owner died is reclaimed when an
//! allocation meets it.
//!
//! **Grants.** [`SimBackend::share_pages`] creates one file per page and maps them, in order,
//! into one region reserved with an anonymous `mmap` (so a plain `munmap` releases it, as
//! libxenvchan's close does). [`SimBackend::map_pages`] maps the granter's files the same way,
//! after checking that each page was granted to this domain (`EPERM` otherwise) and, when
//! `writable` is asked, that the grant is writable (`EPERM`); a missing reference is `ENOENT`.
//! Ending a share removes its files; the peer's mappings stay valid, as on Xen.
//!
//! **Event channels.** A [`SimEventChannel`] is one datagram socket (abstract, autobound, so it
//! leaves no file and vanishes with its process) and an epoll descriptor, its [`fd`]. A notify
//! sets the remote port's bit in the remote domain's pending page and, only if the bit was
//! clear, sends one datagram naming the port to the socket of the handle owning it: repeated
//! notifies coalesce as Xen's pending bits do, and a socket never holds more than one datagram
//! per port. The receiver clears the bit as it reads the datagram. A port [`pending`] returns
//! stays masked until [`unmask`]; a notification arriving meanwhile is held and delivered at
//! unmask (the handle signals its own socket, so [`fd`] polls readable). The hot path of a
//! notify is an atomic OR and at most one `sendto` to the peer's address, cached when the port
//! connects.
//!
//! **Unmap notifies and dying processes.** When a mapping with an [`UnmapNotify`] ends (dropped,
//! its handle closed, or the process exits without closing: an `atexit` handler runs what is
//! still owed), the byte is cleared and the port notified. A process killed by a signal runs no
//! handler, so each owed notify is also written to `<dir>/exit/`; an event channel watches the
//! process owning the other end of each of its connected ports (a `pidfd` in its epoll set), and
//! when that process dies, [`pending`] performs what it owed: it clears the byte in the page's
//! file and notifies, exactly as Xen does for a process that dies holding a mapping. So a vchan
//! peer sees the other side die even after `SIGKILL`, provided the mapping and the event channel
//! were in the same process and the watcher polls its event channel.
//!
//! What the simulation cannot do: protect one "domain" from another (every domain is the same
//! Linux user's processes, which can read the directory), span machines, or network
//! namespaces (the sockets are abstract), interrupts other than event channels (no VIRQs),
//! grant operations beyond sharing, mapping and copying whole pages; and ports of one domain are
//! limited to [`MAX_PORT`].
//!
//! [`fd`]: EventChannel::fd
//! [`pending`]: EventChannel::pending
//! [`unmask`]: EventChannel::unmask

mod events;
mod exit;
pub mod ffi;
mod files;
mod grants;
#[cfg(test)]
mod tests;

use std::{
    ffi::OsString,
    fmt, io,
    path::{Path, PathBuf},
    sync::{atomic::AtomicU32, Arc},
};

pub use events::SimEventChannel;
pub use grants::SimMapping;

use super::{Backend, DomId, EventChannel, GrantRef, Mapping, Port, UnmapNotify};
use files::Owner;

/// The environment variable naming the calling process's domain id (default 0).
pub const DOMID_VAR: &str = "VPROTO_SIM_DOMID";
/// The environment variable naming the directory of the shared state (default
/// [`default_dir`]).
pub const DIR_VAR: &str = "VPROTO_SIM_DIR";
/// The largest domain id (`DOMID_FIRST_RESERVED - 1`; Xen reserves the ids above for itself).
pub const MAX_DOMID: DomId = 0x7fef;
/// The first grant reference handed out: Xen reserves 0–7.
pub const FIRST_REF: GrantRef = 8;
/// The largest grant reference (libxenvchan writes references as a C `int`).
pub const MAX_REF: GrantRef = 0x7fff_ffff;
/// The largest port of a domain (the pending page holds one bit per port).
pub const MAX_PORT: Port = (super::PAGE_SIZE * 8 - 1) as Port;

/// The directory the simulation uses when [`DIR_VAR`] is not set:
/// `$XDG_RUNTIME_DIR/vproto-vchan-sim` if `XDG_RUNTIME_DIR` is set, else
/// `/tmp/vproto-vchan-sim-<uid>`.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) if !runtime.is_empty() => Path::new(&runtime).join("vproto-vchan-sim"),
        // SAFETY: geteuid cannot fail.
        _ => PathBuf::from(format!("/tmp/vproto-vchan-sim-{}", unsafe { libc::geteuid() })),
    }
}

/// What to do when a shared or mapped region ends: clear the byte at `clear_byte` of its first
/// page, notify `event` (a local port). Either may be left out, as the C API allows (`-1`);
/// [`UnmapNotify`] asks for both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimNotify {
    /// Byte offset in the first page to set to 0.
    pub clear_byte: Option<usize>,
    /// Local event-channel port to notify.
    pub event: Option<Port>,
}

impl From<Option<UnmapNotify>> for SimNotify {
    fn from(notify: Option<UnmapNotify>) -> Self {
        match notify {
            Some(UnmapNotify { offset, port }) => SimNotify { clear_byte: Some(offset), event: Some(port) },
            None => SimNotify::default(),
        }
    }
}

/// The grant and event-channel services of one simulated domain, over the shared directory
/// (module documentation). Cheap to clone; one process may hold several, for several domains.
#[derive(Clone)]
pub struct SimBackend {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    domid: DomId,
    owner: Owner,
    /// Where the next grant allocation starts looking (references need not be consecutive, and
    /// starting after the last one avoids stepping over this process's own).
    next_ref: AtomicU32,
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBackend").field("dir", &self.inner.layout.root).field("domid", &self.inner.domid).finish()
    }
}

impl SimBackend {
    /// The backend of domain `domid` over the shared state in `dir`, created if missing.
    /// Reclaims what dead processes left owing in the directory.
    pub fn new(dir: impl Into<PathBuf>, domid: DomId) -> io::Result<SimBackend> {
        if domid > MAX_DOMID {
            return Err(ffi::error(
                libc::EINVAL,
                format!("domain id {domid} is reserved (the largest is {MAX_DOMID})"),
            ));
        }
        // Absolute, so that processes started in other directories agree.
        let layout = Layout { root: std::path::absolute(dir.into())? };
        let context =
            |error: io::Error| files::context(error, &format!("vchan sim directory {}", layout.root.display()));
        files::create_private_dir(&layout.root).map_err(context)?;
        for dir in [layout.exits(), layout.grants(domid), layout.ports(domid)] {
            std::fs::create_dir_all(&dir).map_err(context)?;
        }
        let owner = Owner::current()?;
        let inner = Arc::new(Inner { layout, domid, owner, next_ref: AtomicU32::new(FIRST_REF) });
        let backend = SimBackend { inner };
        exit::reap_dead(&backend.inner.layout);
        Ok(backend)
    }

    /// The backend the environment describes: domain `$VPROTO_SIM_DOMID` (default 0) over
    /// `$VPROTO_SIM_DIR` (default [`default_dir`], which must then belong to this user).
    pub fn from_env() -> io::Result<SimBackend> {
        let domid = parse_domid(std::env::var_os(DOMID_VAR))?;
        match std::env::var_os(DIR_VAR) {
            Some(dir) if !dir.is_empty() => SimBackend::new(dir, domid),
            _ => {
                let dir = default_dir();
                files::create_private_dir(&dir)?;
                files::check_owned(&dir)?;
                SimBackend::new(dir, domid)
            }
        }
    }

    /// This backend's domain.
    pub fn domid(&self) -> DomId {
        self.inner.domid
    }

    /// The directory of the shared state.
    pub fn dir(&self) -> &Path {
        &self.inner.layout.root
    }

    /// Allocates `pages` zeroed pages granted to domain `peer` and maps them as one region
    /// (the [`Backend::share`] of the C API's `xengntshr_share_pages` and
    /// `xengntshr_share_page_notify`).
    pub fn share_pages(&self, peer: DomId, pages: usize, writable: bool, notify: SimNotify) -> io::Result<SimMapping> {
        grants::share(self, peer, pages, writable, notify)
    }

    /// Maps `pages`, each a (granting domain, reference), in order as one region (the
    /// [`Backend::map`] of the C API's `xengnttab_map_grant_refs` and friends).
    pub fn map_pages(&self, pages: &[(DomId, GrantRef)], writable: bool, notify: SimNotify) -> io::Result<SimMapping> {
        grants::map(self, pages, writable, notify)
    }

    /// Copies `buf.len()` bytes at `offset` of page `gref` that domain `granter` granted to this
    /// domain into `buf` (a grant copy with a foreign source).
    pub fn copy_from_grant(&self, granter: DomId, gref: GrantRef, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        grants::copy_from(self, granter, gref, offset, buf)
    }

    /// Copies `data` to `offset` of page `gref` that domain `granter` granted, writable, to this
    /// domain (a grant copy with a foreign destination).
    pub fn copy_to_grant(&self, granter: DomId, gref: GrantRef, offset: usize, data: &[u8]) -> io::Result<()> {
        grants::copy_to(self, granter, gref, offset, data)
    }

    /// Opens an event-channel handle; `cloexec` false keeps its descriptors across `exec`
    /// (`XENEVTCHN_NO_CLOEXEC`).
    pub fn open_channel(&self, cloexec: bool) -> io::Result<SimEventChannel> {
        SimEventChannel::open(self.clone(), cloexec)
    }

    fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    fn owner(&self) -> Owner {
        self.inner.owner
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn share(
        &self,
        peer: DomId,
        pages: usize,
        writable: bool,
        notify: Option<UnmapNotify>,
    ) -> io::Result<Box<dyn Mapping>> {
        Ok(Box::new(self.share_pages(peer, pages, writable, notify.into())?))
    }

    fn map(
        &self,
        granter: DomId,
        refs: &[GrantRef],
        writable: bool,
        notify: Option<UnmapNotify>,
    ) -> io::Result<Box<dyn Mapping>> {
        let pages: Vec<(DomId, GrantRef)> = refs.iter().map(|&gref| (granter, gref)).collect();
        Ok(Box::new(self.map_pages(&pages, writable, notify.into())?))
    }

    fn open_events(&self) -> io::Result<Box<dyn EventChannel>> {
        Ok(Box::new(self.open_channel(true)?))
    }
}

/// `$VPROTO_SIM_DOMID`'s value as a domain id (0 when unset).
fn parse_domid(value: Option<OsString>) -> io::Result<DomId> {
    let Some(value) = value else { return Ok(0) };
    let text = value.to_string_lossy();
    match text.trim().parse::<DomId>() {
        Ok(domid) if domid <= MAX_DOMID => Ok(domid),
        _ => Err(ffi::error(
            libc::EINVAL,
            format!("{DOMID_VAR}={text:?} is not a domain id (a number from 0 to {MAX_DOMID})"),
        )),
    }
}

/// Where things are in the directory (module documentation).
#[derive(Debug)]
struct Layout {
    root: PathBuf,
}

impl Layout {
    fn grants(&self, domid: DomId) -> PathBuf {
        self.root.join(format!("dom{domid}/gnt"))
    }

    fn grant(&self, domid: DomId, gref: GrantRef) -> PathBuf {
        self.grants(domid).join(gref.to_string())
    }

    fn ports(&self, domid: DomId) -> PathBuf {
        self.root.join(format!("dom{domid}/evtchn"))
    }

    fn port(&self, domid: DomId, port: Port) -> PathBuf {
        self.ports(domid).join(port.to_string())
    }

    fn claim(&self, domid: DomId, port: Port) -> PathBuf {
        self.ports(domid).join(format!("{port}.claim"))
    }

    fn pending(&self, domid: DomId) -> PathBuf {
        self.ports(domid).join("pending")
    }

    fn exits(&self) -> PathBuf {
        self.root.join("exit")
    }

    fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }
}
