//! One line-framed connection (unix, tcp, stdio, vchan), served by one task: it frames,
//! authenticates and admits calls, runs them, and writes one response per line; on a server
//! with events, it also answers `rpc.subscribe`/`rpc.unsubscribe` and writes the connection's
//! events as notification lines, through the same writer (so lines never interleave).
//!
//! Backpressure: replies are written by the task that reads, so a peer that stops reading
//! stops being read; a reply that cannot be written within the idle timeout ends the
//! connection. Each reply holds its calls' in-flight slots until it is written. Events wait in
//! the connection's bounded queue (`events.rs`) meanwhile; past its bound the subscription is
//! lost, never the server's memory.
//!
//! Garbage: a connection sending bad frames in a row (too large, not JSON, not a request) has
//! its answer sent and its next frame read after a pause that grows to a second
//! ([`Strikes`]), and the bad frames of all connections together are held to a rate
//! ([`BAD_BYTES_PER_SECOND`]), so a flood of them, even on a new connection per frame, cannot
//! take the server from well-behaved peers.
//!
//! Memory: an idle connection holds no I/O buffer. [`IdleFreeReader`] takes its read buffer
//! only while bytes are arriving and gives it back as soon as a read would wait with nothing
//! left in it; [`Output`] collects replies in a buffer that is released once they are written.
//! What stays is the task, its timers and the socket (docs/reliability.md, "Load and faults").

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{
    future::BoxFuture,
    stream::{FuturesUnordered, StreamExt},
    FutureExt,
};
use serde_json::Value;
use tokio::{
    io::{AsyncBufRead, AsyncRead, AsyncWrite, AsyncWriteExt},
    time::{sleep_until, timeout, Instant, Sleep},
};
use vproto_support::rpc::{
    events::{SUBSCRIBE, UNSUBSCRIBE},
    roles::{self, Caller},
    Params,
};

use vproto_listen::ShutdownSignal;

use super::framing::{Line, LineReader};
use crate::{
    auth::Credentials,
    engine::{message_too_large, unauthorized, Answer, Engine, InFlight, Reply},
    events::{Payload, Subscriber},
    message::{Entry, Id, Incoming, Response},
};

/// The read buffer taken while bytes arrive, and the size of replies written out at once.
const BUFFER: usize = 64 * 1024;

/// A buffered reader whose buffer exists only while it holds bytes or is being filled: when
/// a read finds nothing to read and nothing is left unread, the buffer is freed, so an idle
/// connection holds none. Reading into it does not zero it (`poll_read_buf` writes into its
/// spare capacity), so taking it again costs one allocation.
pub(crate) struct IdleFreeReader<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R> IdleFreeReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        IdleFreeReader { inner, buf: Vec::new(), pos: 0 }
    }

    /// Bytes of buffer held now (0 when idle).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.capacity()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for IdleFreeReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos >= this.buf.len() && out.remaining() >= BUFFER {
            // Nothing buffered and a large read: straight into the caller's buffer.
            this.buf = Vec::new();
            this.pos = 0;
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let available = std::task::ready!(Pin::new(&mut *this).poll_fill_buf(cx))?;
        let n = available.len().min(out.remaining());
        out.put_slice(&available[..n]);
        Pin::new(this).consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for IdleFreeReader<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pos >= this.buf.len() {
            this.buf.clear();
            this.pos = 0;
            if this.buf.capacity() == 0 {
                this.buf.reserve_exact(BUFFER);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf) {
                Poll::Pending => {
                    // Nothing to read, nothing held: give the buffer back while waiting.
                    this.buf = Vec::new();
                    return Poll::Pending;
                }
                Poll::Ready(Err(error)) => {
                    this.buf = Vec::new();
                    return Poll::Ready(Err(error));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
        Poll::Ready(Ok(&this.buf[this.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amount: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amount).min(this.buf.len());
    }
}

/// What the auth step decided about a frame.
enum AuthStep {
    /// Not an auth matter: dispatch it.
    Dispatch,
    /// Answer this (or nothing) and go on.
    Answer(Option<String>),
    /// Answer this and close the connection.
    Refuse(String),
}

/// The token a call to `rpc.auth` carries, by name (`{"token": ...}`) or first position.
fn token_param(params: &Params) -> Option<&str> {
    match params {
        Params::ByName(map) => map.get("token").and_then(Value::as_str),
        Params::ByPosition(items) => items.first().and_then(Value::as_str),
        Params::None => None,
    }
}

/// Handles `rpc.auth`: required first when the connection has credentials (the token given
/// says who the caller is from then on); answered `true` afterwards (and on connections
/// without credentials) unless the handler serves it itself.
fn auth_step(
    engine: &Engine,
    incoming: &Incoming,
    credentials: Option<&Credentials>,
    caller: &mut Option<Caller>,
) -> AuthStep {
    let call = match incoming {
        Incoming::Single(Entry::Call(call)) => Some(call),
        _ => None,
    };
    let is_auth = call.is_some_and(|call| call.method == "rpc.auth");
    if caller.is_some() {
        if is_auth && !engine.serves("rpc.auth") {
            let id = call.and_then(|call| call.id.clone());
            return AuthStep::Answer(id.map(|id| Response::result(id, Value::Bool(true)).to_json()));
        }
        return AuthStep::Dispatch;
    }
    let reply_id = call.and_then(|call| call.id.clone()).unwrap_or_else(Id::null);
    let refuse = |detail: &str| AuthStep::Refuse(Response::error(reply_id.clone(), unauthorized(detail)).to_json());
    let Some(call) = call.filter(|_| is_auth) else {
        return refuse("the first call on this connection must be rpc.auth with the token");
    };
    if call.id.is_none() {
        return refuse("rpc.auth must be a request (with an id), not a notification");
    }
    let Some(given) = token_param(&call.params) else {
        return refuse("rpc.auth needs params {\"token\": \"...\"}");
    };
    match credentials.and_then(|credentials| credentials.identify(given)) {
        Some(identified) => {
            *caller = Some(identified);
            AuthStep::Answer(Some(Response::result(reply_id, Value::Bool(true)).to_json()))
        }
        None => refuse("wrong token"),
    }
}

/// Bad frames in a row a connection may send without a pause (a client's honest mistakes, a
/// test suite's malformed requests).
const FREE_STRIKES: u32 = 8;

/// The pause after the first bad frame past [`FREE_STRIKES`]; it doubles with each further one
/// in a row.
const FIRST_PENALTY: Duration = Duration::from_millis(1);

/// The longest pause between two bad frames of a connection.
const MAX_PENALTY: Duration = Duration::from_secs(1);

/// Bad frames a connection sent in a row (over the size limit, not JSON, not a request: what
/// is answered with an error without calling anything), and the pause before its next frame
/// is read: none for the first [`FREE_STRIKES`], then [`FIRST_PENALTY`], doubling up to
/// [`MAX_PENALTY`]; a good frame clears them. A peer flooding the server with garbage gets about
/// one frame a second through once it has sent some twenty, so a flood cannot take the
/// server's CPU from well-behaved peers (docs/reliability.md, "Load and faults").
#[derive(Default)]
struct Strikes {
    count: u32,
    /// Whether the pause has reached its longest (logged once per spell).
    capped: bool,
}

impl Strikes {
    /// Records a frame; the pause due before the next one is read, when it was bad.
    fn record(&mut self, bad: bool) -> Option<Duration> {
        if !bad {
            *self = Strikes::default();
            return None;
        }
        self.count = self.count.saturating_add(1);
        let past = self.count.checked_sub(FREE_STRIKES + 1)?;
        let pause = FIRST_PENALTY.saturating_mul(1 << past.min(16)).min(MAX_PENALTY);
        if pause == MAX_PENALTY && !std::mem::replace(&mut self.capped, true) {
            tracing::info!(
                bad_frames = self.count,
                "a connection keeps sending bad frames: reading one a second from it"
            );
        }
        Some(pause)
    }
}

/// Bytes of bad frames a process reads per second from all its connections together, past a
/// burst of [`BAD_BURST`] of them: past that, the answer to a bad frame waits until its bytes
/// fit, so garbage from many connections (or a new connection per frame) is held to this rate.
const BAD_BYTES_PER_SECOND: f64 = 8.0 * 1024.0 * 1024.0;

/// How far ahead of the rate bad frames may run before they wait (1 s of it: 8 MiB).
const BAD_BURST: Duration = Duration::from_secs(1);

/// How far past the rate the debt grows at most: a flood that ended costs later bad frames no
/// more than this.
const MAX_BAD_DEBT: Duration = Duration::from_secs(10);

/// What a bad frame costs besides its bytes (reading, parsing and answering it), in bytes.
const BAD_FRAME_COST: usize = 4096;

/// The process's budget of bad frames (GCRA): when the bad frames read so far are paid for
/// at [`BAD_BYTES_PER_SECOND`].
static BAD_FRAMES_PAID_AT: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// Charges a bad frame of `bytes` to `budget`; how long its answer must wait for the rate.
fn charge_bad_frame(budget: &std::sync::Mutex<Option<Instant>>, bytes: usize) -> Duration {
    let cost = Duration::from_secs_f64(bytes.saturating_add(BAD_FRAME_COST) as f64 / BAD_BYTES_PER_SECOND);
    let now = Instant::now();
    let mut paid_at = budget.lock().unwrap_or_else(|poison| poison.into_inner());
    let paid = (paid_at.map_or(now, |at| at.max(now)) + cost).min(now + BAD_BURST + MAX_BAD_DEBT);
    *paid_at = Some(paid);
    paid.saturating_duration_since(now + BAD_BURST)
}

/// The pause due after a frame (`bad`: the bad frame's size): its connection's strikes or the
/// process's budget of bad frames, whichever is longer.
fn pause_for_bad_frame(strikes: &mut Strikes, bad: Option<usize>) -> Option<Duration> {
    let struck = strikes.record(bad.is_some());
    let budget = bad.map(|bytes| charge_bad_frame(&BAD_FRAMES_PAID_AT, bytes)).filter(|wait| !wait.is_zero());
    struck.max(budget)
}

/// Whether a frame gets nothing but errors without any call: not JSON, not a request, over a
/// limit, or a batch of only such members.
fn is_bad(incoming: &Incoming) -> bool {
    match incoming {
        Incoming::Single(entry) => matches!(entry, Entry::Invalid(_)),
        Incoming::Batch(entries) => entries.iter().all(|entry| matches!(entry, Entry::Invalid(_))),
    }
}

/// Whether a frame is a lone call to `rpc.subscribe` or `rpc.unsubscribe` (batched, they go to
/// the handler like any call, and are not found).
fn is_subscription_call(incoming: &Incoming) -> bool {
    matches!(incoming, Incoming::Single(Entry::Call(call)) if call.method == SUBSCRIBE || call.method == UNSUBSCRIBE)
}

/// Answers a lone `rpc.subscribe` or `rpc.unsubscribe` from the connection's subscriber.
fn answer_subscription_call(subscriber: &mut Subscriber, incoming: Incoming) -> Option<String> {
    let Incoming::Single(Entry::Call(call)) = incoming else { return None };
    let outcome =
        if call.method == SUBSCRIBE { subscriber.subscribe(call.params) } else { subscriber.unsubscribe(call.params) };
    call.id.map(|id| Response { id, outcome }.to_json())
}

/// Waits until the connection's subscriber has events (never, without one).
async fn events_ready(subscriber: Option<&Subscriber>) {
    match subscriber {
        Some(subscriber) => subscriber.wait().await,
        None => std::future::pending().await,
    }
}

/// Writes the events waiting for the connection, then its loss notice if it lost its
/// subscription. False once the peer is gone.
async fn deliver<W: AsyncWrite + Unpin>(
    out: &mut Output<W>,
    subscriber: &mut Subscriber,
    waiting: &mut VecDeque<Payload>,
) -> bool {
    let lost = subscriber.take(waiting);
    for payload in waiting.drain(..) {
        if !out.write_line(payload.line()).await {
            return false;
        }
    }
    match lost {
        Some(lost) => out.write_line(&lost.line()).await,
        None => out.alive,
    }
}

/// Serves one line-framed connection until the peer closes it, it idles out, it sends a line
/// slower than `message_timeout` (from the line's first byte to its newline; `None`: no
/// bound), it breaks the auth rule, or the server shuts down; then lets its running calls
/// finish and writes their replies.
///
/// One task does everything: a call whose handler completes at once (most do) is answered
/// from here without a task hand-off, like an echo server; a call that has to wait joins
/// `running` and is answered when it completes. Replies are flushed when no further input is
/// buffered, so pipelined requests share one write.
pub(crate) async fn serve<R, W>(
    engine: Arc<Engine>,
    read: R,
    write: W,
    credentials: Option<Arc<Credentials>>,
    message_timeout: Option<Duration>,
    shutdown: ShutdownSignal,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limits = engine.limits().clone();
    let mut reader = LineReader::new(IdleFreeReader::new(read), limits.max_message_size);
    if let Some(limit) = message_timeout {
        reader = reader.with_message_timeout(limit);
    }
    let mut out = Output::new(write, limits.idle_timeout);
    let mut idle = IdleTimer::new(limits.idle_timeout);
    let mut stopping = std::pin::pin!(shutdown.wait_owned());
    let in_flight = InFlight::new(limits.max_in_flight);
    let mut running: FuturesUnordered<BoxFuture<'_, Reply>> = FuturesUnordered::new();
    // Who the caller is once known: at once without credentials, after `rpc.auth` with them.
    let mut caller = credentials.is_none().then_some(Caller::Trusted);
    let mut refused = false;
    let mut subscriber = engine.events().map(|hub| Subscriber::new(hub, &limits));
    let mut waiting = VecDeque::new();
    let mut strikes = Strikes::default();
    // The pause due (after a bad frame) before the next frame is read.
    let mut penalty = None;
    'serve: loop {
        // Collect the calls that finished meanwhile (also while input keeps coming).
        while !running.is_empty() {
            let Some(Some(reply)) = running.next().now_or_never() else { break };
            if !out.send(reply).await {
                break 'serve;
            }
        }
        // And the events published meanwhile.
        if let Some(subscriber) = subscriber.as_mut().filter(|subscriber| subscriber.ready()) {
            if !deliver(&mut out, subscriber, &mut waiting).await {
                break;
            }
        }
        if let Some(pause) = penalty.take() {
            // The answer to the bad frame waits too, so that a peer waiting for it (one
            // opening a connection per frame, which no strikes slow down) waits as well.
            tokio::select! {
                biased;
                _ = &mut stopping => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        // A line already buffered is read without flushing (checking first that the server is
        // not stopping, which waiting would notice); otherwise the replies so far are sent
        // before waiting (`LineReader::next` is cancel-safe, so trying costs nothing).
        let next = match reader.next().now_or_never() {
            Some(_) if shutdown.fired() => break,
            Some(next) => Ok(next),
            None => {
                if !out.flush().await {
                    break;
                }
                tokio::select! {
                    biased;
                    _ = &mut stopping => break,
                    Some(reply) = running.next(), if !running.is_empty() => {
                        if !out.send(reply).await {
                            break;
                        }
                        continue;
                    }
                    _ = events_ready(subscriber.as_ref()), if subscriber.as_ref().is_some_and(Subscriber::active) => {
                        continue;
                    }
                    _ = idle.elapsed() => Err(Idle),
                    next = reader.next() => Ok(next),
                }
            }
        };
        let line = match next {
            // A subscribed connection is waiting for events, not idle.
            Err(Idle) if !running.is_empty() || subscriber.as_ref().is_some_and(Subscriber::active) => {
                idle.touch();
                continue;
            }
            Err(Idle) => {
                tracing::debug!("closing an idle connection");
                break;
            }
            Ok(Err(error)) if error.kind() == io::ErrorKind::TimedOut => {
                tracing::warn!(%error, "closing a connection whose message arrives too slowly (Limits::message_timeout)");
                break;
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "connection read failed");
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(line))) => line,
        };
        idle.touch();
        let frame = match line {
            Line::Frame(frame) => frame,
            Line::TooLarge => {
                penalty = pause_for_bad_frame(&mut strikes, Some(limits.max_message_size));
                let text = Response::error(Id::null(), message_too_large(limits.max_message_size)).to_json();
                if !out.send(Reply::immediate(Some(text))).await {
                    break;
                }
                continue;
            }
        };
        let incoming = engine.parse(frame);
        penalty = pause_for_bad_frame(&mut strikes, is_bad(&incoming).then_some(frame.len()));
        match auth_step(&engine, &incoming, credentials.as_deref(), &mut caller) {
            AuthStep::Dispatch => {}
            AuthStep::Answer(text) => {
                if !out.send(Reply::immediate(text)).await {
                    break;
                }
                continue;
            }
            AuthStep::Refuse(text) => {
                refused = out.send(Reply::immediate(Some(text))).await && out.flush().await;
                break;
            }
        }
        if let Some(subscriber) = subscriber.as_mut().filter(|_| is_subscription_call(&incoming)) {
            // What is waiting goes first (a loss notice included), so that the answer is
            // followed only by events of the subscription it describes.
            if !deliver(&mut out, subscriber, &mut waiting).await {
                break;
            }
            if !out.send(Reply::immediate(answer_subscription_call(subscriber, incoming))).await {
                break;
            }
            continue;
        }
        let answer = match caller.clone().filter(|caller| *caller != Caller::Trusted) {
            // A role's calls run with the role in place, for the dispatcher to check.
            Some(role) => match roles::with_caller(role.clone(), || engine.start(engine.admit(incoming, &in_flight))) {
                Answer::Waiting(call) => Answer::Waiting(roles::scope(role, call)),
                ready => ready,
            },
            None => engine.start(engine.admit(incoming, &in_flight)),
        };
        match answer {
            Answer::Ready(reply) => {
                if !out.send(reply).await {
                    break;
                }
            }
            // `FuturesUnordered` polls a pushed future again with its own waker.
            Answer::Waiting(call) => running.push(call),
        }
    }
    if refused {
        // Read what the peer already sent for a moment, so closing does not reset the
        // connection before it has read the refusal.
        let _ = timeout(Duration::from_secs(1), async {
            for _ in 0..64 {
                if !matches!(reader.next().await, Ok(Some(_))) {
                    break;
                }
            }
        })
        .await;
    }
    // Running calls finish and their replies are written (or dropped if the peer is gone).
    while let Some(reply) = running.next().await {
        out.send(reply).await;
    }
    out.close().await;
}

/// The connection went idle.
struct Idle;

/// The idle timeout, armed once rather than for every read: activity only records its time,
/// and the timer, when it fires early, is moved to the idle period after the last activity.
struct IdleTimer {
    period: Duration,
    last_activity: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    fn new(period: Duration) -> Self {
        let now = Instant::now();
        IdleTimer { period, last_activity: now, sleep: Box::pin(sleep_until(now + period)) }
    }

    /// Records activity now.
    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Completes once a whole period has passed since the last activity. Cancel-safe.
    async fn elapsed(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let deadline = self.last_activity + self.period;
            if deadline <= Instant::now() {
                return;
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

/// `write` bounded by `limit`; the timer is set only when the write cannot finish at once (most
/// fit in the buffer or the socket), so a reply costs no timer.
async fn bounded(
    limit: Duration,
    write: impl std::future::Future<Output = std::io::Result<()>>,
) -> Result<std::io::Result<()>, tokio::time::error::Elapsed> {
    let mut write = std::pin::pin!(write);
    match write.as_mut().now_or_never() {
        Some(done) => Ok(done),
        None => timeout(limit, write).await,
    }
}

/// The writing side of a connection: replies are collected in a buffer and written out when
/// it passes [`BUFFER`] bytes or on [`Output::flush`], each write bounded by the idle timeout;
/// the buffer is released once written, so a connection waiting for input holds none. Once a
/// write fails or times out the peer counts as gone and later replies are dropped.
struct Output<W> {
    writer: W,
    buf: Vec<u8>,
    idle: Duration,
    alive: bool,
}

/// The first allocation of a reply buffer: most replies (and a pipelined handful) fit.
const FIRST_REPLY_BUFFER: usize = 4 * 1024;

impl<W: AsyncWrite + Unpin> Output<W> {
    fn new(writer: W, idle: Duration) -> Self {
        Output { writer, buf: Vec::new(), idle, alive: true }
    }

    /// Buffers `parts` (one line: the last part ends with its newline), writing out a buffer
    /// past [`BUFFER`] bytes. False once the peer is gone.
    async fn buffer(&mut self, parts: &[&[u8]]) -> bool {
        if !self.alive {
            return false;
        }
        let len: usize = parts.iter().map(|part| part.len()).sum();
        if self.buf.capacity() == 0 {
            self.buf.reserve(len.max(FIRST_REPLY_BUFFER));
        }
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        if self.buf.len() >= BUFFER {
            return self.write_out().await;
        }
        true
    }

    /// Writes out what is buffered and releases the buffer. False once the peer is gone.
    async fn write_out(&mut self) -> bool {
        if self.alive && !self.buf.is_empty() {
            let (writer, buf) = (&mut self.writer, &self.buf);
            let written = bounded(self.idle, async {
                writer.write_all(buf).await?;
                writer.flush().await
            })
            .await;
            self.settle(written);
        }
        self.buf = Vec::new();
        self.alive
    }

    /// Buffers one line that ends with its newline (writing out a full buffer). False once
    /// the peer is gone.
    async fn write_line(&mut self, line: &[u8]) -> bool {
        self.buffer(&[line]).await
    }

    /// Buffers one reply's text and a newline (writing out a full buffer), then frees the
    /// reply's in-flight slots. False once the peer is gone.
    async fn send(&mut self, reply: Reply) -> bool {
        match reply.text.as_deref() {
            Some(text) => self.buffer(&[text.as_bytes(), b"\n"]).await,
            None => self.alive,
        }
    }

    /// Sends what is buffered. False once the peer is gone.
    async fn flush(&mut self) -> bool {
        self.write_out().await
    }

    /// Flushes and shuts the writing side down, if the peer is still there.
    async fn close(&mut self) {
        if self.flush().await {
            let _ = timeout(self.idle, self.writer.shutdown()).await;
        }
    }

    fn settle(&mut self, outcome: Result<std::io::Result<()>, tokio::time::error::Elapsed>) {
        if !matches!(outcome, Ok(Ok(()))) {
            tracing::debug!("peer stopped reading; dropping its answers");
            self.alive = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncBufReadExt, AsyncReadExt};

    /// The reader holds a buffer only while it has bytes: none before any arrive, none once
    /// they are read and the next read would wait, whatever size the lines were.
    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer() {
        let (mut peer, ours) = duplex(1 << 20);
        let mut reader = IdleFreeReader::new(ours);
        assert_eq!(reader.held(), 0);
        for size in [10, 100_000, 3] {
            let line = vec![b'a'; size];
            peer.write_all(&line).await.unwrap();
            peer.write_all(b"\n").await.unwrap();
            let mut got = Vec::new();
            reader.read_until(b'\n', &mut got).await.unwrap();
            assert_eq!(got.len(), size + 1);
            assert!(reader.fill_buf().now_or_never().is_none(), "nothing more to read");
            assert_eq!(reader.held(), 0, "after a line of {size} bytes");
        }
        // Bytes that were buffered are kept until read, and the end of input is seen.
        peer.write_all(b"xyz").await.unwrap();
        drop(peer);
        let mut rest = String::new();
        reader.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "xyz");
    }

    /// Bad frames in a row are free up to FREE_STRIKES, then pause 1 ms doubling to 1 s; a
    /// good frame starts over.
    #[test]
    fn bad_frames_in_a_row_slow_a_connection_down() {
        let mut strikes = Strikes::default();
        let pauses: Vec<Option<u64>> =
            (0..FREE_STRIKES + 12).map(|_| strikes.record(true).map(|p| p.as_millis() as u64)).collect();
        let mut expected = vec![None; FREE_STRIKES as usize];
        expected.extend([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000].map(Some));
        assert_eq!(pauses, expected);
        assert_eq!(strikes.record(false), None);
        assert_eq!(strikes.record(true), None, "a good frame starts over");
    }

    /// Bad frames run free for a burst, then wait for the rate, with the debt bounded.
    #[tokio::test(start_paused = true)]
    async fn bad_frames_of_all_connections_are_held_to_a_rate() {
        let budget = std::sync::Mutex::new(None);
        let mib = 1024 * 1024 - BAD_FRAME_COST;
        // 8 MiB: the burst, free.
        for _ in 0..8 {
            assert_eq!(charge_bad_frame(&budget, mib), Duration::ZERO);
        }
        // Then each MiB waits an eighth of a second more than the last.
        let waits: Vec<u128> = (0..4).map(|_| charge_bad_frame(&budget, mib).as_millis()).collect();
        assert_eq!(waits, [125, 250, 375, 500]);
        // The debt stops growing at MAX_BAD_DEBT, and is paid off as time passes.
        for _ in 0..200 {
            assert!(charge_bad_frame(&budget, mib) <= MAX_BAD_DEBT);
        }
        tokio::time::advance(BAD_BURST + MAX_BAD_DEBT).await;
        assert_eq!(charge_bad_frame(&budget, mib), Duration::ZERO);
    }

    /// Replies are buffered until flushed (one write for several), and the buffer is released
    /// once written.
    #[tokio::test]
    async fn the_output_releases_its_buffer_once_written() {
        let (mut peer, ours) = duplex(1 << 20);
        let mut out = Output::new(ours, Duration::from_secs(5));
        assert!(out.send(Reply::immediate(Some("one".into()))).await);
        assert!(out.write_line(b"two\n").await);
        assert!(out.buf.capacity() > 0);
        assert!(out.flush().await);
        assert_eq!(out.buf.capacity(), 0);
        let big = "x".repeat(BUFFER + 10);
        assert!(out.send(Reply::immediate(Some(big.clone()))).await);
        assert_eq!(out.buf.capacity(), 0, "a buffer past BUFFER is written out at once");
        out.close().await;
        let mut written = String::new();
        peer.read_to_string(&mut written).await.unwrap();
        assert_eq!(written, format!("one\ntwo\n{big}\n"));
    }
}
