//! Event channels: port records in `dom<D>/evtchn/`, one pending bit per port in
//! `dom<D>/evtchn/pending`, and one abstract Unix datagram socket per handle.
//!
//! A datagram is four native-endian `u32`s: its kind, the destination port, and the source
//! domain and port. [`EVENT`] is a notify (sent only when it set the destination's pending bit),
//! [`HELLO`] tells a port's owner that a remote port connected to it (it then reads the record
//! again and watches the connector's process), [`REPLAY`] is a handle re-signalling itself with
//! a notification it held while the port was masked.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    fs::{self, OpenOptions},
    io::{self, Write},
    mem::size_of,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::fs::OpenOptionsExt,
    },
    path::{Path, PathBuf},
    ptr::NonNull,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    thread,
    time::Duration,
};

use super::{
    exit, ffi,
    files::{self, Owner},
    Layout, SimBackend, MAX_DOMID, MAX_PORT,
};
use crate::backend::{DomId, EventChannel, Port, PAGE_SIZE};

const EVENT: u32 = 1;
const HELLO: u32 = 2;
const REPLAY: u32 = 3;
const MESSAGE_LEN: usize = 16;

/// How long a notify waits for room in a full peer socket before the event is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// The epoll tag of a watched process (or'ed with its pid); the socket's tag is 0.
const PID_TAG: u64 = 1 << 32;

/// One datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Message {
    kind: u32,
    dest: Port,
    src_domain: u32,
    src_port: Port,
}

impl Message {
    fn bytes(&self) -> [u8; MESSAGE_LEN] {
        let mut bytes = [0u8; MESSAGE_LEN];
        for (chunk, value) in bytes.chunks_exact_mut(4).zip([self.kind, self.dest, self.src_domain, self.src_port]) {
            chunk.copy_from_slice(&value.to_ne_bytes());
        }
        bytes
    }

    fn parse(bytes: &[u8; MESSAGE_LEN]) -> Message {
        let word = |i: usize| u32::from_ne_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        Message { kind: word(0), dest: word(1), src_domain: word(2), src_port: word(3) }
    }
}

/// An abstract Unix socket address, written in records as hex.
#[derive(Clone, Copy)]
struct SockAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl PartialEq for SockAddr {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl SockAddr {
    const PATH_OFFSET: usize = size_of::<libc::sa_family_t>();

    fn empty() -> SockAddr {
        // SAFETY: sockaddr_un is plain data, valid all zero.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        SockAddr { addr, len: Self::PATH_OFFSET as libc::socklen_t }
    }

    /// The address `fd` is bound to.
    fn of(fd: RawFd) -> io::Result<SockAddr> {
        let mut addr = SockAddr::empty();
        addr.len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: addr/len describe a sockaddr_un the kernel may fill.
        let ok = unsafe { libc::getsockname(fd, (&raw mut addr.addr).cast(), &mut addr.len) };
        if ok != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(addr)
    }

    /// The name's bytes (an abstract name starts with a NUL).
    fn name(&self) -> Vec<u8> {
        let n = (self.len as usize).saturating_sub(Self::PATH_OFFSET).min(self.addr.sun_path.len());
        self.addr.sun_path[..n].iter().map(|&c| c as u8).collect()
    }

    fn hex(&self) -> String {
        self.name().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn from_hex(hex: &str) -> Option<SockAddr> {
        let mut addr = SockAddr::empty();
        if hex.len() % 2 != 0 || hex.len() / 2 > addr.addr.sun_path.len() {
            return None;
        }
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
            addr.addr.sun_path[i] = byte as libc::c_char;
        }
        addr.len = (Self::PATH_OFFSET + hex.len() / 2) as libc::socklen_t;
        Some(addr)
    }
}

impl std::str::FromStr for SockAddr {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        SockAddr::from_hex(s).ok_or(())
    }
}

/// `dom<D>/evtchn/<port>`.
#[derive(Clone, Debug)]
struct PortRecord {
    owner: Owner,
    /// The only domain that may connect (unbound) or the connected one.
    remote: DomId,
    /// The socket of the handle owning the port.
    sock: SockAddr,
    /// The remote end, once connected.
    peer: Option<PeerRecord>,
}

#[derive(Clone, Copy, Debug)]
struct PeerRecord {
    port: Port,
    sock: SockAddr,
    owner: Owner,
}

impl PortRecord {
    fn read(path: &Path) -> io::Result<PortRecord> {
        let text = fs::read_to_string(path)?;
        let fields = files::fields(&text);
        let peer = match fields.get("peer") {
            Some(_) => Some(PeerRecord {
                port: files::field(&fields, "peer", path)?,
                sock: files::field(&fields, "peersock", path)?,
                owner: files::field(&fields, "peerowner", path)?,
            }),
            None => None,
        };
        Ok(PortRecord {
            owner: files::field(&fields, "owner", path)?,
            remote: files::field(&fields, "remote", path)?,
            sock: files::field(&fields, "sock", path)?,
            peer,
        })
    }

    fn text(&self) -> String {
        let mut text = format!("owner={} remote={} sock={}", self.owner, self.remote, self.sock.hex());
        if let Some(peer) = &self.peer {
            text += &format!(" peer={} peersock={} peerowner={}", peer.port, peer.sock.hex(), peer.owner);
        }
        text + "\n"
    }
}

/// A domain's pending bits (`dom<D>/evtchn/pending`), mapped.
struct PendingBits {
    ptr: NonNull<AtomicU64>,
}

// SAFETY: the page is only accessed through atomics.
unsafe impl Send for PendingBits {}
// SAFETY: as above.
unsafe impl Sync for PendingBits {}

impl PendingBits {
    fn open(layout: &Layout, domid: DomId) -> io::Result<PendingBits> {
        let path = layout.pending(domid);
        let context = |error: io::Error| files::context(error, &format!("cannot open {}", path.display()));
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(context)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(context)?;
        if file.metadata().map_err(context)?.len() < PAGE_SIZE as u64 {
            // Growing an existing page never shrinks or clears it, so racing creators agree.
            file.set_len(PAGE_SIZE as u64).map_err(context)?;
        }
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh shared mapping of a page-long file.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), PAGE_SIZE, prot, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(context(io::Error::last_os_error()));
        }
        Ok(PendingBits { ptr: NonNull::new(ptr.cast()).expect("mmap succeeded") })
    }

    fn word(&self, port: Port) -> (&AtomicU64, u64) {
        let port = port.min(MAX_PORT) as usize;
        // SAFETY: port / 64 < PAGE_SIZE / 8, inside the mapped page, aligned.
        (unsafe { &*self.ptr.as_ptr().add(port / 64) }, 1 << (port % 64))
    }

    /// Sets `port`'s bit; whether it was clear (the notify must then be sent).
    fn set(&self, port: Port) -> bool {
        let (word, bit) = self.word(port);
        word.fetch_or(bit, Ordering::SeqCst) & bit == 0
    }

    fn clear(&self, port: Port) {
        let (word, bit) = self.word(port);
        word.fetch_and(!bit, Ordering::SeqCst);
    }
}

impl Drop for PendingBits {
    fn drop(&mut self) {
        // SAFETY: the page this value mapped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), PAGE_SIZE) };
    }
}

/// An event-channel handle of the simulation ([`EventChannel`]; module documentation of
/// [`super`]). Dropping it unbinds its ports.
pub struct SimEventChannel {
    backend: SimBackend,
    /// Receives; non-blocking.
    sock: OwnedFd,
    name: SockAddr,
    /// Sends; blocking for at most [`SEND_TIMEOUT`] when the peer's socket is full.
    sender: OwnedFd,
    /// [`EventChannel::fd`]: the socket and the pidfds of the watched processes.
    epoll: OwnedFd,
    own_bits: Arc<PendingBits>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    ports: BTreeMap<Port, PortState>,
    /// The processes owning the remote ends of connected ports, and which ports.
    watches: HashMap<Owner, Watch>,
    /// Pending pages of remote domains.
    bits: HashMap<DomId, Arc<PendingBits>>,
    /// `xenevtchn_restrict`: the only domain this handle may bind to.
    restrict: Option<DomId>,
}

struct PortState {
    remote: DomId,
    /// The remote end, once known to be connected.
    peer: Option<Arc<Peer>>,
    /// Returned by `pending` and not unmasked since.
    masked: bool,
    /// Notified while masked: delivered at unmask.
    held: bool,
}

/// The remote end of a connected port, cached for the notify path.
struct Peer {
    port: Port,
    addr: SockAddr,
    bits: Arc<PendingBits>,
}

struct Watch {
    pidfd: OwnedFd,
    ports: BTreeSet<Port>,
}

impl fmt::Debug for SimEventChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never waits: a Debug from inside a locked section must not deadlock.
        let ports: Option<Vec<Port>> = self.state.try_lock().ok().map(|state| state.ports.keys().copied().collect());
        f.debug_struct("SimEventChannel").field("domid", &self.backend.domid()).field("ports", &ports).finish()
    }
}

/// A new socket of `kind` (`SOCK_*` flags or'ed in).
fn socket(kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_UNIX, kind, 0) };
    if fd < 0 {
        return Err(files::context(io::Error::last_os_error(), "cannot create a datagram socket"));
    }
    // SAFETY: a descriptor we just created and own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A socket to send from, whose sends wait at most [`SEND_TIMEOUT`] for room.
fn sending_socket(cloexec: libc::c_int) -> io::Result<OwnedFd> {
    let fd = socket(libc::SOCK_DGRAM | cloexec)?;
    let timeout = libc::timeval { tv_sec: SEND_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 };
    // SAFETY: a timeval option of the right size on our socket.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    Ok(fd)
}

/// Sends `message` from `fd` to `to`.
fn send(fd: &OwnedFd, to: &SockAddr, message: Message) -> io::Result<()> {
    let bytes = message.bytes();
    loop {
        // SAFETY: a valid buffer and address of the given lengths.
        let sent = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
                (&raw const to.addr).cast(),
                to.len,
            )
        };
        if sent >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Whether a failed send means the event is lost rather than an error of the caller: the
/// peer's socket is gone (its process died or closed the handle), or stayed full.
fn lost(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::ENOENT | libc::EAGAIN | libc::EPIPE | libc::ECONNRESET)
    )
}

/// Sets the pending bit of the remote end of `peer` and, if it was clear, sends it the event
/// from `(domain, port)`. Whether the event reached the peer's socket (or was already pending).
fn signal(fd: &OwnedFd, (domain, port): (DomId, Port), peer: &Peer) -> io::Result<bool> {
    if !peer.bits.set(peer.port) {
        return Ok(true);
    }
    let message = Message { kind: EVENT, dest: peer.port, src_domain: domain.into(), src_port: port };
    match send(fd, &peer.addr, message) {
        Ok(()) => Ok(true),
        Err(error) => {
            peer.bits.clear(peer.port);
            if !lost(&error) {
                return Err(error);
            }
            if error.raw_os_error() == Some(libc::EAGAIN) {
                tracing::warn!(port, peer = peer.port, "vchan sim: the peer's socket stayed full; event dropped");
            }
            Ok(false)
        }
    }
}

/// Notifies the remote end of port `port` of domain `domid` on behalf of whoever owns it (an
/// unmap notify paid at drop, at exit or for a dead process): reads the port's record, and does
/// nothing if it is gone or not connected.
pub(super) fn signal_from(layout: &Layout, domid: DomId, port: Port) {
    let Ok(record) = PortRecord::read(&layout.port(domid, port)) else { return };
    let Some(peer) = record.peer else { return };
    let (Ok(bits), Ok(fd)) = (PendingBits::open(layout, record.remote), sending_socket(libc::SOCK_CLOEXEC)) else {
        return;
    };
    let peer = Peer { port: peer.port, addr: peer.sock, bits: Arc::new(bits) };
    if let Err(error) = signal(&fd, (domid, port), &peer) {
        tracing::debug!(%error, domid, port, "vchan sim: unmap notify not sent");
    }
}

/// Held while a remote domain connects to a port (`<port>.claim`), so that two connectors, or
/// a connector and the owner unbinding, never interleave their record updates.
struct Claim(PathBuf);

impl Claim {
    /// Takes the claim of port `port` of `domid`; waits up to `patience` for a holder to let go
    /// (`EBUSY` after that). A claim left by a dead process is reclaimed.
    fn take(backend: &SimBackend, domid: DomId, port: Port, patience: Duration) -> io::Result<Claim> {
        let layout = backend.layout();
        let path = layout.claim(domid, port);
        let text = format!("owner={}\n", backend.owner());
        let started = std::time::Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(mut file) => {
                    file.write_all(text.as_bytes())?;
                    return Ok(Claim(path));
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let dead = files::record_owner(&path).is_some_and(|owner| !owner.alive());
                    if dead && files::reclaim(layout, &path, &files::record_owner)? {
                        continue;
                    }
                    if started.elapsed() >= patience {
                        let message = format!("port {port} of domain {domid} is being connected by another process");
                        return Err(ffi::error(libc::EBUSY, message));
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                Err(error) => return Err(files::context(error, &format!("cannot create {}", path.display()))),
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl SimEventChannel {
    /// [`SimBackend::open_channel`].
    pub(super) fn open(backend: SimBackend, cloexec: bool) -> io::Result<SimEventChannel> {
        let cloexec_flag = if cloexec { libc::SOCK_CLOEXEC } else { 0 };
        let sock = socket(libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | cloexec_flag)?;
        // Autobind: the kernel picks a unique abstract name (no file, gone with the socket).
        let unnamed = SockAddr::empty();
        // SAFETY: binding our socket to an address of the given length.
        if unsafe { libc::bind(sock.as_raw_fd(), (&raw const unnamed.addr).cast(), unnamed.len) } != 0 {
            return Err(files::context(io::Error::last_os_error(), "cannot bind the event channel's socket"));
        }
        let name = SockAddr::of(sock.as_raw_fd())?;
        let sender = sending_socket(cloexec_flag)?;
        // SAFETY: plain epoll creation.
        let epoll = unsafe { libc::epoll_create1(if cloexec { libc::EPOLL_CLOEXEC } else { 0 }) };
        if epoll < 0 {
            return Err(files::context(io::Error::last_os_error(), "cannot create an epoll descriptor"));
        }
        // SAFETY: a descriptor we just created and own.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        epoll_add(&epoll, sock.as_raw_fd(), 0)?;
        let own_bits = Arc::new(PendingBits::open(backend.layout(), backend.domid())?);
        Ok(SimEventChannel { backend, sock, name, sender, epoll, own_bits, state: Mutex::new(State::default()) })
    }

    /// Restricts the handle to binding ports to and from domain `domid` (`xenevtchn_restrict`):
    /// binding any other domain fails with `EPERM`.
    pub fn restrict(&self, domid: DomId) {
        self.lock().restrict = Some(domid);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check_remote(&self, remote: DomId) -> io::Result<()> {
        if remote > MAX_DOMID {
            return Err(ffi::error(libc::EINVAL, format!("domain {remote} is reserved")));
        }
        match self.lock().restrict {
            Some(only) if only != remote => Err(ffi::error(
                libc::EPERM,
                format!("this event channel handle is restricted to domain {only}, not domain {remote}"),
            )),
            _ => Ok(()),
        }
    }

    /// The pending page of `domid`.
    fn bits(&self, state: &mut State, domid: DomId) -> io::Result<Arc<PendingBits>> {
        if domid == self.backend.domid() {
            return Ok(self.own_bits.clone());
        }
        if let Some(bits) = state.bits.get(&domid) {
            return Ok(bits.clone());
        }
        let bits = Arc::new(PendingBits::open(self.backend.layout(), domid)?);
        state.bits.insert(domid, bits.clone());
        Ok(bits)
    }

    /// Publishes `record` under the lowest free port of this domain.
    fn publish_port(&self, record: &PortRecord) -> io::Result<Port> {
        let layout = self.backend.layout();
        let dir = layout.ports(self.backend.domid());
        let (mut file, temp) = files::create_temp(&dir)?;
        let published = file
            .write_all(record.text().as_bytes())
            .and_then(|()| files::allocate(layout, &dir, &temp, (1, MAX_PORT), 1, files::record_owner));
        let _ = fs::remove_file(&temp);
        let port = published?;
        self.own_bits.clear(port);
        Ok(port)
    }

    /// Reads port `port`'s record again and caches its remote end (watching its process); the
    /// remote end, or `None` while it is not connected.
    fn refresh(&self, port: Port) -> io::Result<Option<Arc<Peer>>> {
        let path = self.backend.layout().port(self.backend.domid(), port);
        let record = PortRecord::read(&path).map_err(|error| files::context(error, &format!("port {port}")))?;
        let Some(found) = record.peer else { return Ok(None) };
        let mut state = self.lock();
        let bits = self.bits(&mut state, record.remote)?;
        let peer = Arc::new(Peer { port: found.port, addr: found.sock, bits });
        let Some(port_state) = state.ports.get_mut(&port) else { return Ok(None) };
        port_state.peer = Some(peer.clone());
        let dead = self.watch(&mut state, found.owner, port);
        drop(state);
        if dead {
            exit::reap(self.backend.layout(), found.owner);
        }
        Ok(Some(peer))
    }

    /// Watches `owner`, the process at the remote end of `port`, so that `pending` pays what it
    /// owes if it dies. Whether it is dead already.
    fn watch(&self, state: &mut State, owner: Owner, port: Port) -> bool {
        if owner == self.backend.owner() {
            return false;
        }
        if let Some(watch) = state.watches.get_mut(&owner) {
            watch.ports.insert(port);
            return false;
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, owner.pid as libc::pid_t, 0) };
        if fd < 0 {
            // ESRCH: gone; ENOSYS (before Linux 5.3): no watching, a killed peer goes unseen.
            return io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        }
        // SAFETY: a descriptor pidfd_open just returned.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        // The pid may have been reused before the pidfd was opened: then the owner is dead.
        if !owner.alive() {
            return true;
        }
        if epoll_add(&self.epoll, pidfd.as_raw_fd(), PID_TAG | u64::from(owner.pid)).is_ok() {
            state.watches.insert(owner, Watch { pidfd, ports: BTreeSet::from([port]) });
        }
        false
    }

    /// Stops watching for `port`: a process no port needs any more is no longer watched.
    fn unwatch(&self, state: &mut State, port: Port) {
        let done: Vec<Owner> = state
            .watches
            .iter_mut()
            .filter_map(|(owner, watch)| (watch.ports.remove(&port) && watch.ports.is_empty()).then_some(*owner))
            .collect();
        for owner in done {
            self.forget_watch(state, owner);
        }
    }

    /// Takes `owner`'s pidfd out of the epoll set (explicitly: a forked child may hold a copy of
    /// the descriptor, which would keep it in the set after we close ours) and closes it.
    fn forget_watch(&self, state: &mut State, owner: Owner) {
        if let Some(watch) = state.watches.remove(&owner) {
            // SAFETY: removing a descriptor we hold from our epoll set.
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    watch.pidfd.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
        }
    }

    /// Pays what watched processes that died owed; whether any had died.
    fn reap_watched(&self) -> io::Result<bool> {
        if self.lock().watches.is_empty() {
            return Ok(false);
        }
        // SAFETY: epoll_event is plain data.
        let mut events: [libc::epoll_event; 8] = unsafe { std::mem::zeroed() };
        // SAFETY: a buffer of 8 events, no waiting.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, 0) };
        if n < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted { Ok(true) } else { Err(error) };
        }
        let pids: Vec<u32> = events[..n as usize]
            .iter()
            .map(|event| event.u64)
            .filter(|&tag| tag & PID_TAG != 0)
            .map(|tag| tag as u32)
            .collect();
        let dead: Vec<Owner> = {
            let mut state = self.lock();
            let dead: Vec<Owner> = state.watches.keys().filter(|owner| pids.contains(&owner.pid)).copied().collect();
            for owner in &dead {
                self.forget_watch(&mut state, *owner);
            }
            dead
        };
        for &owner in &dead {
            exit::reap(self.backend.layout(), owner);
        }
        Ok(!dead.is_empty())
    }

    /// Handles one datagram; the port to deliver, if any.
    fn receive(&self, message: Message) -> Option<Port> {
        let port = message.dest;
        match message.kind {
            EVENT => {
                if port <= MAX_PORT {
                    self.own_bits.clear(port);
                }
                let remote = self.lock().ports.get(&port).map(|state| state.remote)?;
                // Only the domain at the other end may signal. Its port is not checked against
                // the record: an event sent just before that end closed (and put this port back
                // to unbound) is delivered, as Xen's pending bit would be; a spurious wake-up
                // costs a vchan nothing, a lost one hangs it.
                if u32::from(remote) != message.src_domain {
                    return None;
                }
                self.deliver(port)
            }
            REPLAY => self.deliver(port),
            HELLO => {
                let _ = self.refresh(port);
                None
            }
            _ => None,
        }
    }

    /// Delivers `port` unless it is masked (then holds the notification for unmask).
    fn deliver(&self, port: Port) -> Option<Port> {
        let mut state = self.lock();
        let port_state = state.ports.get_mut(&port)?;
        if port_state.masked {
            port_state.held = true;
            None
        } else {
            port_state.masked = true;
            Some(port)
        }
    }

    /// Removes port `port`'s record (under its claim, so a connector is not rewriting it). A
    /// connected peer's port goes back to unbound, as Xen's `EVTCHNOP_close` leaves it: the
    /// same domain may bind to it again.
    fn remove_record(&self, port: Port) {
        let domid = self.backend.domid();
        let layout = self.backend.layout();
        let path = layout.port(domid, port);
        let claim = Claim::take(&self.backend, domid, port, Duration::from_millis(200));
        let record = PortRecord::read(&path).ok();
        let _ = fs::remove_file(&path);
        drop(claim);
        self.own_bits.clear(port);
        if let Some((remote, peer)) = record.and_then(|record| Some((record.remote, record.peer?))) {
            self.release_peer(remote, peer.port, port);
        }
    }

    /// Puts port `their_port` of `remote`, connected to our `our_port`, back to unbound.
    fn release_peer(&self, remote: DomId, their_port: Port, our_port: Port) {
        let path = self.backend.layout().port(remote, their_port);
        let Ok(claim) = Claim::take(&self.backend, remote, their_port, Duration::from_millis(200)) else { return };
        if let Ok(theirs) = PortRecord::read(&path) {
            let ours = theirs.peer.is_some_and(|peer| peer.port == our_port && peer.sock == self.name);
            if ours {
                let unbound = PortRecord { peer: None, ..theirs };
                if let Err(error) = files::replace(&path, &unbound.text()) {
                    tracing::debug!(%error, remote, their_port, "vchan sim: the peer's port stays connected");
                }
            }
        }
        drop(claim);
    }
}

fn epoll_add(epoll: &OwnedFd, fd: RawFd, tag: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: tag };
    // SAFETY: adding a descriptor we hold to our epoll set.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } != 0 {
        return Err(files::context(io::Error::last_os_error(), "cannot watch a descriptor"));
    }
    Ok(())
}

fn not_bound(port: Port) -> io::Error {
    ffi::error(libc::ENOTCONN, format!("port {port} is not bound by this event channel handle"))
}

impl EventChannel for SimEventChannel {
    fn bind_unbound(&self, remote: DomId) -> io::Result<Port> {
        self.check_remote(remote)?;
        let record = PortRecord { owner: self.backend.owner(), remote, sock: self.name, peer: None };
        let port = self.publish_port(&record)?;
        self.lock().ports.insert(port, PortState { remote, peer: None, masked: false, held: false });
        Ok(port)
    }

    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> io::Result<Port> {
        self.check_remote(remote)?;
        let (me, my_owner) = (self.backend.domid(), self.backend.owner());
        let layout = self.backend.layout();
        let path = layout.port(remote, remote_port);
        let claim = Claim::take(&self.backend, remote, remote_port, Duration::ZERO)?;
        let theirs = PortRecord::read(&path)
            .map_err(|_| ffi::error(libc::EINVAL, format!("domain {remote} has no port {remote_port}")))?;
        if theirs.peer.is_some() {
            return Err(ffi::error(
                libc::EINVAL,
                format!("port {remote_port} of domain {remote} is already connected"),
            ));
        }
        if theirs.remote != me {
            let message = format!(
                "port {remote_port} of domain {remote} is for domain {} to connect to, not domain {me}",
                theirs.remote
            );
            return Err(ffi::error(libc::EPERM, message));
        }
        if !theirs.owner.alive() {
            let message = format!("port {remote_port} of domain {remote} belongs to a process that has exited");
            return Err(ffi::error(libc::EINVAL, message));
        }
        let peer_record = PeerRecord { port: remote_port, sock: theirs.sock, owner: theirs.owner };
        let mine = PortRecord { owner: my_owner, remote, sock: self.name, peer: Some(peer_record) };
        let port = self.publish_port(&mine)?;
        let connected =
            PortRecord { peer: Some(PeerRecord { port, sock: self.name, owner: my_owner }), ..theirs.clone() };
        if let Err(error) = files::replace(&path, &connected.text()) {
            let _ = fs::remove_file(layout.port(me, port));
            return Err(files::context(error, &format!("cannot connect to port {remote_port} of domain {remote}")));
        }
        drop(claim);
        let mut state = self.lock();
        let bits = self.bits(&mut state, remote)?;
        let peer = Arc::new(Peer { port: remote_port, addr: theirs.sock, bits });
        state.ports.insert(port, PortState { remote, peer: Some(peer), masked: false, held: false });
        let dead = self.watch(&mut state, theirs.owner, port);
        drop(state);
        if dead {
            exit::reap(layout, theirs.owner);
        }
        let hello = Message { kind: HELLO, dest: remote_port, src_domain: me.into(), src_port: port };
        let _ = send(&self.sender, &theirs.sock, hello);
        Ok(port)
    }

    fn notify(&self, port: Port) -> io::Result<()> {
        let cached = self.lock().ports.get(&port).ok_or_else(|| not_bound(port))?.peer.clone();
        let peer = match cached {
            Some(peer) => peer,
            // Not connected yet, as far as we know: the record may say otherwise.
            None => match self.refresh(port)? {
                Some(peer) => peer,
                None => return Ok(()), // unbound: nobody to signal, as on Xen
            },
        };
        let from = (self.backend.domid(), port);
        if signal(&self.sender, from, &peer)? {
            return Ok(());
        }
        // The peer's socket is gone: if the record names another one now, try that once.
        match self.refresh(port) {
            Ok(Some(fresh)) if fresh.addr != peer.addr => signal(&self.sender, from, &fresh).map(drop),
            _ => Ok(()),
        }
    }

    fn pending(&self) -> io::Result<Option<Port>> {
        loop {
            let mut bytes = [0u8; MESSAGE_LEN];
            // SAFETY: receiving into a buffer of the given length.
            let n = unsafe {
                libc::recv(self.sock.as_raw_fd(), bytes.as_mut_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT)
            };
            if n == MESSAGE_LEN as isize {
                if let Some(port) = self.receive(Message::parse(&bytes)) {
                    return Ok(Some(port));
                }
                continue;
            }
            if n >= 0 {
                continue; // not ours: ignored
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock if self.reap_watched()? => continue,
                io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(files::context(error, "cannot read the event channel's socket")),
            }
        }
    }

    fn unmask(&self, port: Port) -> io::Result<()> {
        // An unknown port is ignored, as Linux's evtchn driver does.
        let replay = match self.lock().ports.get_mut(&port) {
            Some(state) => {
                state.masked = false;
                std::mem::take(&mut state.held)
            }
            None => false,
        };
        if replay {
            let message = Message { kind: REPLAY, dest: port, src_domain: self.backend.domid().into(), src_port: port };
            send(&self.sender, &self.name, message)
                .map_err(|error| files::context(error, &format!("cannot deliver the event held on port {port}")))?;
        }
        Ok(())
    }

    fn unbind(&self, port: Port) -> io::Result<()> {
        {
            let mut state = self.lock();
            state.ports.remove(&port).ok_or_else(|| not_bound(port))?;
            self.unwatch(&mut state, port);
        }
        self.remove_record(port);
        Ok(())
    }

    fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

impl Drop for SimEventChannel {
    fn drop(&mut self) {
        let ports: Vec<Port> = self.lock().ports.keys().copied().collect();
        for port in ports {
            self.remove_record(port);
        }
    }
}
