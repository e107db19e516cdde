//! [`Vchan`]: one end of a channel, as an async byte stream (tokio's `AsyncRead`/`AsyncWrite`)
//! and as packets ([`Vchan::send`], [`Vchan::recv`]).
//!
//! Back-pressure is the ring itself: a write waits while the peer has not consumed, a read while
//! it has not produced. A side with nothing to do first spins for a moment (a peer on another
//! CPU usually answers within microseconds), then asks the peer for a signal (the notify bytes)
//! and sleeps on the event channel's descriptor, woken by tokio's reactor itself. Whichever half
//! drains the event channel also wakes the other half, so a signal meant for one is never lost
//! to the other.

use std::{
    future::Future,
    io,
    os::fd::RawFd,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_util::task::AtomicWaker;
use tokio::io::{unix::AsyncFd, AsyncRead, AsyncWrite, ReadBuf};

use crate::{
    backend::{EventChannel, Mapping, Port},
    layout::{LIVE_GONE, LIVE_WAITING, NOTIFY_READ, NOTIFY_WRITE},
    rendezvous::Published,
    ring::{CorruptRing, Role, SharedPage},
};

/// How long a side that finds nothing to do spins before it sleeps, unless
/// [`Vchan::set_spin`] says otherwise.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// The mapped memory and event channel of a channel.
#[derive(Debug)]
pub(crate) struct Parts {
    /// The rings over the mappings below.
    pub(crate) shared: SharedPage,
    /// The shared page, then the granted ring pages (if any): only held, so they stay mapped
    /// while `shared` points into them.
    #[allow(dead_code)]
    pub(crate) mappings: Vec<Box<dyn Mapping>>,
    /// The channel's event channel and its local port.
    pub(crate) events: Box<dyn EventChannel>,
    /// The local port of the channel.
    pub(crate) port: Port,
    /// The Xenstore entries a server published, removed at close (unless handed on).
    pub(crate) published: Mutex<Option<Published>>,
}

/// Which half waits.
#[derive(Clone, Copy, Debug)]
enum Side {
    Reader,
    Writer,
}

/// What both halves share. Dropping it (with the last half) closes the channel.
#[derive(Debug)]
struct Inner {
    /// The event channel's descriptor as registered with tokio. Declared before `parts`, which
    /// owns the descriptor, so it is deregistered before the descriptor closes.
    events_fd: AsyncFd<EventFd>,
    parts: Parts,
    reader: AtomicWaker,
    writer: AtomicWaker,
    /// Spin time in nanoseconds ([`Vchan::set_spin`]).
    spin_nanos: AtomicU64,
}

/// A half's state between polls: until when it keeps looking at the ring before it sleeps, and
/// its wait for the event channel (a future owning a handle on the channel, so it can be kept
/// across polls).
#[derive(Default)]
struct Signal {
    spin_until: Option<Instant>,
    signalled: Option<Pin<Box<dyn Future<Output = io::Result<()>> + Send>>>,
}

impl Inner {
    fn notify(&self) {
        if let Err(error) = self.parts.events.notify(self.parts.port) {
            tracing::debug!(%error, port = self.parts.port, "vchan: notify failed");
        }
    }

    fn shared(&self) -> &SharedPage {
        &self.parts.shared
    }

    fn waker(&self, side: Side) -> &AtomicWaker {
        match side {
            Side::Reader => &self.reader,
            Side::Writer => &self.writer,
        }
    }

    /// Marks this side gone and tells the peer. Idempotent.
    fn close(&self) {
        if self.shared().own_live().swap(LIVE_GONE, Ordering::AcqRel) != LIVE_GONE {
            self.notify();
        }
    }

    /// Reads every pending port and unmasks it, then wakes both halves: one of them may be
    /// waiting for what this signal announced.
    fn drain_events(&self) {
        loop {
            match self.parts.events.pending() {
                Ok(Some(port)) => {
                    if let Err(error) = self.parts.events.unmask(port) {
                        tracing::debug!(%error, port, "vchan: unmask failed");
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "vchan: reading the event channel failed");
                    break;
                }
            }
        }
        self.reader.wake();
        self.writer.wake();
    }
}

/// Waits until the event channel signals, then drains it.
async fn signalled(inner: Arc<Inner>) -> io::Result<()> {
    let mut guard = inner.events_fd.readable().await?;
    guard.clear_ready();
    inner.drain_events();
    Ok(())
}

/// Polls `attempt` until it has an answer: at once; then, for up to the spin time, on every poll
/// (the task wakes itself and yields, so other tasks run and a caller that polls only once, as
/// `now_or_never` does, is not held up); then after asking the peer to signal `bit` and
/// registering the waker, once more (a signal sent between the last look and the registration
/// is not lost); then whenever the event channel signals. A failing event channel is `fail`ed.
fn wait<T>(
    inner: &Arc<Inner>,
    signal: &mut Signal,
    cx: &mut Context<'_>,
    side: Side,
    bit: u8,
    mut attempt: impl FnMut() -> Option<T>,
    fail: impl FnOnce(io::Error) -> T,
) -> Poll<T> {
    if let Some(answer) = attempt() {
        signal.spin_until = None;
        return Poll::Ready(answer);
    }
    let spin = Duration::from_nanos(inner.spin_nanos.load(Ordering::Relaxed));
    if !spin.is_zero() {
        let now = Instant::now();
        let until = *signal.spin_until.get_or_insert(now + spin);
        if now < until {
            if until - now < spin / 2 {
                // Half the spin time gone: let a peer waiting for this CPU run first (on a busy
                // two-CPU machine it often is).
                std::thread::yield_now();
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
    }
    loop {
        inner.shared().request_notify(bit);
        inner.waker(side).register(cx.waker());
        if let Some(answer) = attempt() {
            signal.spin_until = None;
            return Poll::Ready(answer);
        }
        let waiting = signal.signalled.get_or_insert_with(|| Box::pin(signalled(inner.clone())));
        match waiting.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => {
                signal.signalled = None;
                if let Err(error) = result {
                    return Poll::Ready(fail(error));
                }
            }
        }
    }
}

fn peer_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "vchan: the peer has closed")
}

fn corrupt(error: CorruptRing) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Reads what is ready into `out`; `Pending` when nothing is and the peer is alive; `Ok(0)` at
/// end of stream.
fn poll_read(inner: &Arc<Inner>, signal: &mut Signal, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
    if out.is_empty() {
        return Poll::Ready(Ok(0));
    }
    let shared = inner.shared();
    let attempt = || {
        let gone = shared.peer_live() == LIVE_GONE;
        // Whatever the peer wrote before going is read after its live byte was seen.
        match shared.read.read(out) {
            Err(error) => Some(Err(corrupt(error))),
            Ok(0) if !gone => None,
            Ok(n) => {
                if n > 0 && shared.take_notify_request(NOTIFY_READ) {
                    inner.notify();
                }
                Some(Ok(n))
            }
        }
    };
    wait(inner, signal, cx, Side::Reader, NOTIFY_WRITE, attempt, Err)
}

/// Writes what fits of `input` now: `None` when the ring is full.
fn write_now(inner: &Inner, input: &[u8]) -> Option<io::Result<usize>> {
    let shared = inner.shared();
    if shared.peer_live() == LIVE_GONE {
        return Some(Err(peer_closed()));
    }
    match shared.write.write(input) {
        Err(error) => Some(Err(corrupt(error))),
        Ok(0) => None,
        Ok(n) => {
            if shared.take_notify_request(NOTIFY_WRITE) {
                inner.notify();
            }
            Some(Ok(n))
        }
    }
}

/// Writes as much of `input` as fits; `Pending` while the ring is full.
fn poll_write(inner: &Arc<Inner>, signal: &mut Signal, cx: &mut Context<'_>, input: &[u8]) -> Poll<io::Result<usize>> {
    if input.is_empty() {
        return Poll::Ready(Ok(0));
    }
    wait(inner, signal, cx, Side::Writer, NOTIFY_READ, || write_now(inner, input), Err)
}

/// Waits until `needed` bytes are free (`side` writer) or ready to read (`side` reader).
fn poll_amount(
    inner: &Arc<Inner>,
    signal: &mut Signal,
    cx: &mut Context<'_>,
    needed: u32,
    side: Side,
) -> Poll<io::Result<()>> {
    let shared = inner.shared();
    let bit = match side {
        Side::Reader => NOTIFY_WRITE,
        Side::Writer => NOTIFY_READ,
    };
    let attempt = || {
        let gone = shared.peer_live() == LIVE_GONE;
        let have = match side {
            Side::Reader => shared.read.ready(),
            Side::Writer if gone => return Some(Err(peer_closed())),
            Side::Writer => shared.write.space(),
        };
        match have {
            Err(error) => Some(Err(corrupt(error))),
            Ok(have) if have >= needed => Some(Ok(())),
            Ok(_) if gone => Some(Err(peer_closed())),
            Ok(_) => None,
        }
    };
    wait(inner, signal, cx, side, bit, attempt, Err)
}

/// Waits until the peer has read everything written, or has gone.
fn poll_drained(inner: &Arc<Inner>, signal: &mut Signal, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let shared = inner.shared();
    let attempt = || {
        let drained = shared.write.space().map(|space| space == shared.write.size()).unwrap_or(true);
        (drained || shared.peer_live() == LIVE_GONE).then_some(Ok(()))
    };
    wait(inner, signal, cx, Side::Writer, NOTIFY_READ, attempt, Err)
}

/// Closes after the peer has read everything (a half's or the channel's shutdown).
fn poll_shutdown(inner: &Arc<Inner>, signal: &mut Signal, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    std::task::ready!(poll_drained(inner, signal, cx))?;
    inner.close();
    Poll::Ready(Ok(()))
}

fn poll_read_into(
    inner: &Arc<Inner>,
    signal: &mut Signal,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: `read` only writes into the slice (it never reads it), and exactly the bytes it
    // reports, which are then marked initialized.
    let unfilled = unsafe { &mut *(buf.unfilled_mut() as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
    let n = std::task::ready!(poll_read(inner, signal, cx, unfilled))?;
    // SAFETY: `n` bytes were just written.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Poll::Ready(Ok(()))
}

/// The event channel's descriptor, registered with tokio (it stays owned by the event-channel
/// handle).
#[derive(Debug)]
struct EventFd(RawFd);

impl std::os::fd::AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
        if let Some(published) = self.parts.published.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
        {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { published.remove().await });
            }
        }
    }
}

/// One end of a vchan. Created by [`crate::listen`] (server) or [`crate::connect`] (client).
///
/// Dropping it closes the channel: the peer reads what is left and then end of stream. Call
/// [`Vchan::close`] to also wait until the peer has read everything and, for a server, to remove
/// its Xenstore entries before returning.
pub struct Vchan {
    inner: Arc<Inner>,
    read_signal: Signal,
    write_signal: Signal,
    role: Role,
}

impl std::fmt::Debug for Vchan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vchan").field("role", &self.role).field("port", &self.inner.parts.port).finish_non_exhaustive()
    }
}

impl Vchan {
    /// Registers the channel's event channel with tokio (inside a tokio runtime).
    pub(crate) fn start(parts: Parts, role: Role) -> io::Result<Vchan> {
        // SAFETY: the descriptor is owned by `parts.events`, which `Inner` drops after
        // `events_fd` (field order), and an event channel's `fd` never changes.
        let events_fd =
            unsafe { AsyncFd::register_with_interest(EventFd(parts.events.fd()), tokio::io::Interest::READABLE) }
                .map_err(|error| error.into_parts().1)?;
        let inner = Arc::new(Inner {
            events_fd,
            parts,
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
            spin_nanos: AtomicU64::new(DEFAULT_SPIN.as_nanos() as u64),
        });
        Ok(Vchan { inner, read_signal: Signal::default(), write_signal: Signal::default(), role })
    }

    /// Signals the peer without writing (a client announcing itself).
    pub(crate) fn wake_peer(&self) {
        self.inner.notify();
    }

    /// Server: leaves the published Xenstore entries in place when this channel closes, for
    /// the next channel published at the same path ([`crate::VchanListener`]).
    pub fn keep_path_on_close(&self) {
        self.take_published();
    }

    fn take_published(&self) -> Option<Published> {
        self.inner.parts.published.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }

    /// How long a read or write that finds nothing to do looks again before it sleeps
    /// ([`DEFAULT_SPIN`]). Spinning trades CPU time for latency: a peer on another CPU usually
    /// answers within microseconds, a signal takes tens. Zero sleeps at once, as libxenvchan.
    pub fn set_spin(&self, spin: Duration) {
        self.inner.spin_nanos.store(u64::try_from(spin.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Server or client.
    pub fn role(&self) -> Role {
        self.role
    }

    /// libxenvchan's `is_open`: 0 when the peer has gone, 1 when it is connected, 2 (server
    /// only) while no client has connected yet.
    pub fn peer_state(&self) -> u8 {
        self.inner.shared().peer_live()
    }

    /// Size of the ring this side reads, in bytes.
    pub fn read_ring_size(&self) -> usize {
        self.inner.shared().read.size() as usize
    }

    /// Size of the ring this side writes, in bytes: the largest packet [`Vchan::send`] takes.
    pub fn write_ring_size(&self) -> usize {
        self.inner.shared().write.size() as usize
    }

    /// Server: waits until a client has connected (or has come and gone).
    pub async fn accepted(&mut self) {
        let (inner, signal) = (&self.inner, &mut self.read_signal);
        let attempt = || (inner.shared().peer_live() != LIVE_WAITING).then_some(());
        std::future::poll_fn(|cx| wait(inner, signal, cx, Side::Reader, 0, attempt, drop)).await
    }

    /// Writes what fits of `bytes` without waiting; `Ok(0)` when the ring is full.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        write_now(&self.inner, bytes).unwrap_or(Ok(0))
    }

    /// Sends `packet` whole: waits until the ring has room for all of it. Fails when it is
    /// larger than the ring or the peer has closed.
    pub async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        let len = packet_len(packet.len(), self.write_ring_size())?;
        let (inner, signal) = (&self.inner, &mut self.write_signal);
        std::future::poll_fn(|cx| poll_amount(inner, signal, cx, len, Side::Writer)).await?;
        let written = inner.shared().write.write(packet).map_err(corrupt)?;
        debug_assert_eq!(written, packet.len());
        if inner.shared().take_notify_request(NOTIFY_WRITE) {
            inner.notify();
        }
        Ok(())
    }

    /// Receives exactly `packet.len()` bytes: waits until all are there. Fails when more is
    /// asked than the ring holds, or the peer closed before sending them.
    pub async fn recv(&mut self, packet: &mut [u8]) -> io::Result<()> {
        let len = packet_len(packet.len(), self.read_ring_size())?;
        let (inner, signal) = (&self.inner, &mut self.read_signal);
        std::future::poll_fn(|cx| poll_amount(inner, signal, cx, len, Side::Reader)).await?;
        let read = inner.shared().read.read(packet).map_err(corrupt)?;
        debug_assert_eq!(read, packet.len());
        if inner.shared().take_notify_request(NOTIFY_READ) {
            inner.notify();
        }
        Ok(())
    }

    /// Closes the channel after the peer has read everything written (or has gone), and removes
    /// a server's Xenstore entries.
    pub async fn close(mut self) {
        let (inner, signal) = (&self.inner, &mut self.write_signal);
        let _ = std::future::poll_fn(|cx| poll_drained(inner, signal, cx)).await;
        self.inner.close();
        if let Some(published) = self.take_published() {
            published.remove().await;
        }
    }

    /// Splits into a reading and a writing half that can move to different tasks. The channel
    /// closes when both are dropped, or when the writing half is shut down.
    pub fn into_split(self) -> (VchanReader, VchanWriter) {
        (
            VchanReader { inner: self.inner.clone(), signal: Signal::default() },
            VchanWriter { inner: self.inner, signal: Signal::default() },
        )
    }
}

/// The length of a packet that must fit the ring.
fn packet_len(len: usize, ring: usize) -> io::Result<u32> {
    u32::try_from(len).ok().filter(|len| *len as usize <= ring).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("vchan: a {len}-byte packet does not fit the {ring}-byte ring"),
        )
    })
}

impl AsyncRead for Vchan {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_read_into(&this.inner, &mut this.read_signal, cx, buf)
    }
}

impl AsyncWrite for Vchan {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_write(&this.inner, &mut this.write_signal, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are already in the peer's memory.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_shutdown(&this.inner, &mut this.write_signal, cx)
    }
}

/// The reading half of a [`Vchan`] ([`Vchan::into_split`]).
pub struct VchanReader {
    inner: Arc<Inner>,
    signal: Signal,
}

/// The writing half of a [`Vchan`] ([`Vchan::into_split`]). Shutting it down closes the
/// channel once the peer has read everything.
pub struct VchanWriter {
    inner: Arc<Inner>,
    signal: Signal,
}

impl std::fmt::Debug for VchanReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VchanReader").field("port", &self.inner.parts.port).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for VchanWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VchanWriter").field("port", &self.inner.parts.port).finish_non_exhaustive()
    }
}

impl AsyncRead for VchanReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_read_into(&this.inner, &mut this.signal, cx, buf)
    }
}

impl AsyncWrite for VchanWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_write(&this.inner, &mut this.signal, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_shutdown(&this.inner, &mut this.signal, cx)
    }
}
