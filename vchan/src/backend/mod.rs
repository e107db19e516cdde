//! Grants and event channels, the two hypervisor services a vchan stands on, behind one trait so
//! the ring code never knows whether it runs on Xen or on the simulation.
//!
//! The trait mirrors the calls libxenvchan makes into `libxengnttab` and `libxenevtchn`
//! (`xengntshr_share_page_notify`, `xengnttab_map_domain_grant_refs`,
//! `xenevtchn_bind_unbound_port`, ...), so that the simulation's drop-in C libraries
//! (`vchan-sim/`) are thin wrappers over [`sim::SimBackend`].
//!
//! - [`xen::XenBackend`]: `/dev/xen/gntalloc`, `/dev/xen/gntdev` and `/dev/xen/evtchn`, on a real
//!   Xen host or guest.
//! - [`sim::SimBackend`]: a grant is a page of a shared-memory file, an event channel a Unix
//!   datagram socket; any number of "domains" on one Linux machine (docs/vchan.md).

pub mod sim;
pub mod xen;

use std::{fmt::Debug, io, os::fd::RawFd, path::Path, str::FromStr, sync::Arc};

/// A Xen domain id (`domid_t`).
pub type DomId = u16;
/// A grant reference in the granting domain's grant table (`grant_ref_t`). Xen reserves 0–7, and
/// libxenvchan reads 0 as failure, so a backend never hands those out.
pub type GrantRef = u32;
/// An event-channel port, local to the domain that bound it (`evtchn_port_t`). 0 is never a
/// bound port.
pub type Port = u32;

/// Size of a grantable page.
pub const PAGE_SIZE: usize = 4096;

/// What happens when a shared or mapped page goes away, however it goes (unshared, unmapped, the
/// handle closed, the process exited): the byte at `offset` of the first page is set to 0 and
/// `port` is notified. This is how a vchan peer learns the other side died (`srv_live`,
/// `cli_live`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnmapNotify {
    /// Byte offset in the first page of the mapping.
    pub offset: usize,
    /// Local event-channel port to notify.
    pub port: Port,
}

/// The grant and event-channel services of one domain.
pub trait Backend: Send + Sync + Debug {
    /// Short name for messages (`xen`, `sim`).
    fn name(&self) -> &'static str;

    /// Allocates `pages` zeroed pages and grants them to domain `peer` (writable or read-only).
    /// The returned mapping's [`Mapping::refs`] are the grant references, one per page, not
    /// necessarily consecutive. Dropping it ends the grant and runs `notify`.
    fn share(
        &self,
        peer: DomId,
        pages: usize,
        writable: bool,
        notify: Option<UnmapNotify>,
    ) -> io::Result<Box<dyn Mapping>>;

    /// Maps pages that domain `granter` granted to this domain, `refs` in order, as one
    /// contiguous region. Refused when a page was not granted to this domain, or `writable` is
    /// asked of a read-only grant. Dropping the mapping unmaps it and runs `notify`.
    fn map(
        &self,
        granter: DomId,
        refs: &[GrantRef],
        writable: bool,
        notify: Option<UnmapNotify>,
    ) -> io::Result<Box<dyn Mapping>>;

    /// Opens an event-channel handle (`xenevtchn_open`).
    fn open_events(&self) -> io::Result<Box<dyn EventChannel>>;
}

/// Pages shared with, or mapped from, another domain, mapped into this process. Dropping it ends
/// the grant or unmaps the pages, then runs its [`UnmapNotify`].
pub trait Mapping: Send + Sync + Debug {
    /// The grant references of the pages, in mapping order.
    fn refs(&self) -> &[GrantRef];
    /// Start of the mapped region, page aligned.
    fn as_ptr(&self) -> *mut u8;
    /// Length of the region in bytes (pages × [`PAGE_SIZE`]).
    fn len(&self) -> usize;
    /// Whether the region is empty (never, for a successful share or map).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An event-channel handle: a set of bound ports and one descriptor that becomes readable when
/// one of them is notified. Dropping it unbinds every port.
pub trait EventChannel: Send + Sync + Debug {
    /// Allocates a port that only domain `remote` may connect to (`xenevtchn_bind_unbound_port`).
    fn bind_unbound(&self, remote: DomId) -> io::Result<Port>;
    /// Connects a new local port to `remote_port` of domain `remote`, which must have been bound
    /// unbound for this domain (`xenevtchn_bind_interdomain`).
    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> io::Result<Port>;
    /// Signals the remote end of a local port.
    fn notify(&self, port: Port) -> io::Result<()>;
    /// The next port that was notified, or `None` when nothing is pending; never blocks. A port
    /// returned here stays masked (further notifications are held, not lost) until
    /// [`EventChannel::unmask`].
    fn pending(&self) -> io::Result<Option<Port>>;
    /// Unmasks a port; a notification held while it was masked is delivered now.
    fn unmask(&self, port: Port) -> io::Result<()>;
    /// Closes a local port.
    fn unbind(&self, port: Port) -> io::Result<()>;
    /// A descriptor that polls readable when [`EventChannel::pending`] may return a port
    /// (`xenevtchn_fd`). Non-blocking.
    fn fd(&self) -> RawFd;
}

/// Which backend a channel uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Xen's devices ([`xen::XenBackend`]).
    Xen,
    /// The simulation ([`sim::SimBackend`], configured by `VPROTO_SIM_DOMID` and
    /// `VPROTO_SIM_DIR`).
    Sim,
}

/// The environment variable that picks the backend for `vchan:` addresses.
pub const BACKEND_VAR: &str = "VPROTO_VCHAN_BACKEND";

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "xen" => Ok(BackendKind::Xen),
            "sim" => Ok(BackendKind::Sim),
            other => Err(format!("unknown vchan backend {other:?}: expected xen or sim")),
        }
    }
}

impl BackendKind {
    /// `$VPROTO_VCHAN_BACKEND` if set, else `xen` where Xen's grant device exists and `sim`
    /// elsewhere.
    pub fn from_env() -> Result<BackendKind, String> {
        match std::env::var(BACKEND_VAR) {
            Ok(value) if !value.is_empty() => value.parse().map_err(|error| format!("{BACKEND_VAR}: {error}")),
            _ if Path::new("/dev/xen/gntalloc").exists() => Ok(BackendKind::Xen),
            _ => Ok(BackendKind::Sim),
        }
    }

    /// Opens the backend.
    pub fn open(self) -> io::Result<Arc<dyn Backend>> {
        Ok(match self {
            BackendKind::Xen => Arc::new(xen::XenBackend::open()?),
            BackendKind::Sim => Arc::new(sim::SimBackend::from_env()?),
        })
    }
}
