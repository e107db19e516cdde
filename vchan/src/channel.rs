//! [`Vchan`]: one end of a channel, as an async byte stream (tokio's `AsyncRead`/`AsyncWrite`)
//! and as packets ([`Vchan::send`], [`Vchan::recv`]).
//!
//! Back-pressure is the ring itself: a write waits while the peer has not consumed, a read while
//! it has not produced. A side about to wait asks the peer for a signal (the notify bytes); one
//! task per channel turns the event channel's signals into wake-ups of the waiting reader and
//! writer.

use std::{
    io,
    os::fd::RawFd,
    pin::Pin,
    sync::{atomic::Ordering, Arc, Mutex},
    task::{Context, Poll},
};

use futures_util::task::AtomicWaker;
use tokio::{
    io::{unix::AsyncFd, AsyncRead, AsyncWrite, ReadBuf},
    task::JoinHandle,
};

use crate::{
    backend::{EventChannel, Mapping, Port},
    layout::{LIVE_GONE, LIVE_WAITING, NOTIFY_READ, NOTIFY_WRITE},
    rendezvous::Published,
    ring::{CorruptRing, Role, SharedPage},
};

/// The mapped memory and event channel of a channel, and the wakers of its waiting halves.
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

#[derive(Debug)]
struct Inner {
    /// The event channel's descriptor as registered with tokio. Declared before `parts`, which
    /// owns the descriptor, so it is deregistered before the descriptor closes.
    events_fd: AsyncFd<EventFd>,
    parts: Parts,
    reader: AtomicWaker,
    writer: AtomicWaker,
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

    /// Reads what is ready into `out`; `Pending` (with the reader's waker registered) when
    /// nothing is and the peer is alive; `Ok(0)` at end of stream.
    fn poll_read(&self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = self.shared();
        let mut registered = false;
        loop {
            let n = shared.read.read(out).map_err(corrupt)?;
            if n > 0 {
                if shared.take_notify_request(NOTIFY_READ) {
                    self.notify();
                }
                return Poll::Ready(Ok(n));
            }
            if shared.peer_live() == LIVE_GONE {
                // Whatever it wrote before going was read above, once more after its live byte.
                let n = shared.read.read(out).map_err(corrupt)?;
                return Poll::Ready(Ok(n));
            }
            if registered {
                return Poll::Pending;
            }
            shared.request_notify(NOTIFY_WRITE);
            self.reader.register(cx.waker());
            registered = true;
        }
    }

    /// Writes as much of `input` as fits; `Pending` while the ring is full.
    fn poll_write(&self, cx: &mut Context<'_>, input: &[u8]) -> Poll<io::Result<usize>> {
        if input.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = self.shared();
        let mut registered = false;
        loop {
            if shared.peer_live() == LIVE_GONE {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "vchan: the peer has closed")));
            }
            let n = shared.write.write(input).map_err(corrupt)?;
            if n > 0 {
                if shared.take_notify_request(NOTIFY_WRITE) {
                    self.notify();
                }
                return Poll::Ready(Ok(n));
            }
            if registered {
                return Poll::Pending;
            }
            shared.request_notify(NOTIFY_READ);
            self.writer.register(cx.waker());
            registered = true;
        }
    }

    /// Waits until `needed` bytes are free (`write == true`) or ready to read.
    fn poll_amount(&self, cx: &mut Context<'_>, needed: u32, write: bool) -> Poll<io::Result<()>> {
        let shared = self.shared();
        let mut registered = false;
        loop {
            let have = if write { shared.write.space() } else { shared.read.ready() }.map_err(corrupt)?;
            if have >= needed {
                return Poll::Ready(Ok(()));
            }
            if shared.peer_live() == LIVE_GONE && (write || shared.read.ready().map_err(corrupt)? < needed) {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "vchan: the peer has closed")));
            }
            if registered {
                return Poll::Pending;
            }
            if write {
                shared.request_notify(NOTIFY_READ);
                self.writer.register(cx.waker());
            } else {
                shared.request_notify(NOTIFY_WRITE);
                self.reader.register(cx.waker());
            }
            registered = true;
        }
    }

    /// Waits until the peer has read everything written, or has gone.
    fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<()> {
        let shared = self.shared();
        let mut registered = false;
        loop {
            let drained = shared.write.space().map(|space| space == shared.write.size()).unwrap_or(true);
            if drained || shared.peer_live() == LIVE_GONE {
                return Poll::Ready(());
            }
            if registered {
                return Poll::Pending;
            }
            shared.request_notify(NOTIFY_READ);
            self.writer.register(cx.waker());
            registered = true;
        }
    }

    /// Marks this side gone and tells the peer. Idempotent.
    fn close(&self) {
        if self.shared().own_live().swap(LIVE_GONE, Ordering::AcqRel) != LIVE_GONE {
            self.notify();
        }
    }
}

fn corrupt(error: CorruptRing) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
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

/// Drains the event channel whenever it signals and wakes both halves. It holds the channel's
/// memory until it is aborted, which [`Vchan`]'s drop does.
async fn pump(inner: Arc<Inner>) {
    loop {
        let mut guard = match inner.events_fd.readable().await {
            Ok(guard) => guard,
            Err(error) => {
                tracing::warn!(%error, "vchan: event channel failed");
                break;
            }
        };
        loop {
            match inner.parts.events.pending() {
                Ok(Some(port)) => {
                    if let Err(error) = inner.parts.events.unmask(port) {
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
        guard.clear_ready();
        inner.reader.wake();
        inner.writer.wake();
    }
    // Whoever waits learns of the failure from the live bytes or never; wake them to look.
    inner.reader.wake();
    inner.writer.wake();
}

/// One end of a vchan. Created by [`crate::listen`] (server) or [`crate::connect`] (client).
///
/// Dropping it closes the channel: the peer reads what is left and then end of stream. Call
/// [`Vchan::close`] to also wait until the peer has read everything and, for a server, to remove
/// its Xenstore entries before returning.
#[derive(Debug)]
pub struct Vchan {
    inner: Arc<Inner>,
    pump: JoinHandle<()>,
    role: Role,
}

impl Vchan {
    /// Starts the channel's event pump (inside a tokio runtime).
    pub(crate) fn start(parts: Parts, role: Role) -> io::Result<Vchan> {
        // SAFETY: the descriptor is owned by `parts.events`, which `Inner` drops after
        // `events_fd` (field order), and an event channel's `fd` never changes.
        let events_fd =
            unsafe { AsyncFd::register_with_interest(EventFd(parts.events.fd()), tokio::io::Interest::READABLE) }
                .map_err(|error| error.into_parts().1)?;
        let inner = Arc::new(Inner { events_fd, parts, reader: AtomicWaker::new(), writer: AtomicWaker::new() });
        let pump = tokio::spawn(pump(inner.clone()));
        Ok(Vchan { inner, pump, role })
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
    pub async fn accepted(&self) {
        std::future::poll_fn(|cx| {
            if self.inner.shared().peer_live() != LIVE_WAITING {
                return Poll::Ready(());
            }
            self.inner.reader.register(cx.waker());
            if self.inner.shared().peer_live() != LIVE_WAITING {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }

    /// Writes what fits of `bytes` without waiting; `Ok(0)` when the ring is full.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let waker = futures_util::task::noop_waker();
        match self.inner.poll_write(&mut Context::from_waker(&waker), bytes) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(0),
        }
    }

    /// Sends `packet` whole: waits until the ring has room for all of it. Fails when it is
    /// larger than the ring or the peer has closed.
    pub async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        let size = self.write_ring_size();
        let len = u32::try_from(packet.len()).ok().filter(|len| *len as usize <= size).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("vchan: a {}-byte packet does not fit the {size}-byte ring", packet.len()),
            )
        })?;
        let inner = &self.inner;
        std::future::poll_fn(|cx| inner.poll_amount(cx, len, true)).await?;
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
        let size = self.read_ring_size();
        let len = u32::try_from(packet.len()).ok().filter(|len| *len as usize <= size).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("vchan: a {}-byte packet does not fit the {size}-byte ring", packet.len()),
            )
        })?;
        let inner = &self.inner;
        std::future::poll_fn(|cx| inner.poll_amount(cx, len, false)).await?;
        let read = inner.shared().read.read(packet).map_err(corrupt)?;
        debug_assert_eq!(read, packet.len());
        if inner.shared().take_notify_request(NOTIFY_READ) {
            inner.notify();
        }
        Ok(())
    }

    /// Closes the channel after the peer has read everything written (or has gone), and removes
    /// a server's Xenstore entries.
    pub async fn close(self) {
        let inner = self.inner.clone();
        std::future::poll_fn(|cx| inner.poll_drained(cx)).await;
        inner.close();
        if let Some(published) = self.take_published() {
            published.remove().await;
        }
        drop(self);
    }

    /// Splits into a reading and a writing half that can move to different tasks.
    pub fn into_split(self) -> (VchanReader, VchanWriter) {
        let this = Arc::new(self);
        (VchanReader { chan: this.clone() }, VchanWriter { chan: this })
    }
}

impl Drop for Vchan {
    fn drop(&mut self) {
        self.inner.close();
        self.pump.abort();
        if let Some(published) = self.take_published() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { published.remove().await });
            }
        }
    }
}

impl AsyncRead for Vchan {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        poll_read_into(&self.inner, cx, buf)
    }
}

impl AsyncWrite for Vchan {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are already in the peer's memory.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.inner, cx)
    }
}

fn poll_read_into(inner: &Inner, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    // SAFETY: `read` only writes into the slice (it never reads it), and exactly the bytes it
    // reports, which are then marked initialized.
    let unfilled = unsafe { &mut *(buf.unfilled_mut() as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
    let n = std::task::ready!(inner.poll_read(cx, unfilled))?;
    // SAFETY: `n` bytes were just written.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Poll::Ready(Ok(()))
}

fn poll_shutdown(inner: &Inner, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    std::task::ready!(inner.poll_drained(cx));
    inner.close();
    Poll::Ready(Ok(()))
}

/// The reading half of a [`Vchan`] ([`Vchan::into_split`]).
#[derive(Debug)]
pub struct VchanReader {
    chan: Arc<Vchan>,
}

/// The writing half of a [`Vchan`] ([`Vchan::into_split`]). Shutting it down closes the
/// channel once the peer has read everything.
#[derive(Debug)]
pub struct VchanWriter {
    chan: Arc<Vchan>,
}

impl AsyncRead for VchanReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        poll_read_into(&self.chan.inner, cx, buf)
    }
}

impl AsyncWrite for VchanWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.chan.inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.chan.inner, cx)
    }
}
