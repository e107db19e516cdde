//! The Rust vchan against Xen's real libxenvchan and against itself: C server ↔ Rust client,
//! Rust server ↔ C client and Rust ↔ Rust, on the project's simulation (the C end through the
//! drop-in libraries, the Rust end in-process with `SimBackend`), with vproto's xenstored as
//! the rendezvous (`vproto_test_support::vchan`; C ↔ C is `c_peer.rs`).
//!
//! A Rust end does what the C peer (`tests/vchan/peer.c`) does with the same [`PeerSpec`]: it
//! sends its side's [`Stream`] and checks the other's byte for byte, in calls whose sizes a
//! [`ChunkSizes`] draws, as a stream (`AsyncRead`/`AsyncWrite`; both directions at once through
//! `into_split`) or in packets (`Vchan::send`/`recv`), then waits for the peer's close, closes,
//! or goes without closing (dropped). So any pairing runs from the same two specs.
//!
//! Covered: ring sizes 1 KiB/2 KiB inside the page, 4 KiB, 64 KiB, 1 MiB and an asymmetric
//! 64 KiB/4 KiB, each one way, the other and both at once, as streams and as packets; one
//! transfer past 4 GiB (the 32-bit ring indices wrap) into a Rust end; closing, or going without
//! closing, from either side; a client before the server; the wrong domain; a second client
//! while one holds the channel, with and without a `VchanListener`. Every case runs under a
//! timeout, and waits for events (the C peer's `ready`, `Vchan::accepted`, Xenstore replies),
//! never for time.

use std::{future::Future, io, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    task::JoinHandle,
    time::timeout,
};
use vproto_test_support::vchan::{
    data_seed, mismatch, one_way_then_close, xs_type, CPeer, ChunkSizes, Outcome, PeerSpec, Rendezvous, Side, Stream,
    CLIENT_DOM, OTHER_DOM, PEER_TIMEOUT, SERVER_DOM,
};
use vproto_vchan::{
    backend::{sim::ffi::errno_of, Backend, DomId},
    connect, listen, ServerOptions, Vchan, VchanError, VchanListener,
};

/// The largest call when a spec names none (the C peer's default).
const DEFAULT_MAX_CHUNK: u64 = 65536;
/// The C peer's ring sizes when a server's spec names none: both inside the shared page.
const DEFAULT_RINGS: (u64, u64) = (1024, 2048);

/// Fails the test when `work` takes longer than `limit`.
async fn within<T>(limit: Duration, what: &str, work: impl Future<Output = T>) -> T {
    timeout(limit, work).await.unwrap_or_else(|_| panic!("{what}: not done within {limit:?}"))
}

// ---------------------------------------------------------------------------------------------
// The Rust end.

/// How a Rust end ended, in the C peer's terms: bytes sent, bytes received and checked, and
/// the error it stopped at.
#[derive(Debug)]
struct RustOutcome {
    name: String,
    sent: u64,
    received: u64,
    error: Option<String>,
}

impl RustOutcome {
    #[track_caller]
    fn assert_ok(&self, sent: u64, received: u64) {
        assert_eq!(self.error, None, "{self}");
        assert_eq!((self.sent, self.received), (sent, received), "{self}");
    }

    #[track_caller]
    fn assert_failed(&self, text: &str) {
        let error = self.error.as_deref().unwrap_or_else(|| panic!("expected an error with {text:?}: {self}"));
        assert!(error.contains(text), "expected {text:?}: {self}");
    }
}

impl std::fmt::Display for RustOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, sent, received) = (&self.name, self.sent, self.received);
        write!(f, "{name} sent {sent}, received {received}, ")?;
        match &self.error {
            None => write!(f, "no error"),
            Some(error) => write!(f, "failed: {error}"),
        }
    }
}

/// How either end ended.
#[derive(Debug)]
enum Report {
    C(Outcome),
    Rust(RustOutcome),
}

impl Report {
    #[track_caller]
    fn assert_ok(&self, sent: u64, received: u64) {
        match self {
            Report::C(outcome) => outcome.assert_ok(sent, received),
            Report::Rust(outcome) => outcome.assert_ok(sent, received),
        }
    }
}

/// Bytes moved so far, kept when an end stops early.
#[derive(Default)]
struct Tally {
    sent: u64,
    received: u64,
}

/// The ring sizes a server spec asks for (the C peer's defaults when it names none), as
/// `ServerOptions`: `left` is the ring the server reads.
fn server_options(spec: &PeerSpec) -> ServerOptions {
    let (left, right) = spec.rings.unwrap_or(DEFAULT_RINGS);
    ServerOptions {
        peer: spec.peer,
        path: spec.path.clone(),
        read_min: usize::try_from(left).unwrap(),
        write_min: usize::try_from(right).unwrap(),
    }
}

/// Runs `spec` on a Rust end: a server first waits for its client (`Vchan::accepted`), then
/// both directions run as the C peer runs them, then the end waits for the peer's close
/// (`wait_close`), and closes (`Vchan::close`, or shutting down the writing half) or is dropped
/// (`no_close`).
async fn run_rust(mut chan: Vchan, spec: &PeerSpec) -> RustOutcome {
    let name = format!("Rust {} (seed {})", spec.side.as_str(), spec.seed);
    let mut tally = Tally::default();
    if spec.side == Side::Server {
        chan.accepted().await;
    }
    let result =
        if spec.packet { run_packets(chan, spec, &mut tally).await } else { run_stream(chan, spec, &mut tally).await };
    RustOutcome { name, sent: tally.sent, received: tally.received, error: result.err() }
}

/// The two directions of a transfer as (this side's send seed, the peer's).
fn seeds(spec: &PeerSpec) -> (u64, u64) {
    let peer = if spec.side == Side::Server { Side::Client } else { Side::Server };
    (data_seed(spec.side, spec.seed), data_seed(peer, spec.seed))
}

/// The call sizes of a direction, drawn from its sender's data seed (so that both ends of a
/// Rust ↔ Rust packet transfer agree on every packet).
fn chunk_sizes(sender_seed: u64, spec: &PeerSpec) -> ChunkSizes {
    ChunkSizes::new(sender_seed, spec.max_chunk.unwrap_or(DEFAULT_MAX_CHUNK))
}

/// Stream semantics: one direction through the channel itself, both at once through its two
/// halves (`into_split`), each half in its own future.
async fn run_stream(chan: Vchan, spec: &PeerSpec, tally: &mut Tally) -> Result<(), String> {
    let (ours, theirs) = seeds(spec);
    if spec.send > 0 && spec.expect > 0 {
        let (mut reader, mut writer) = chan.into_split();
        let (mut sent, mut received) = (0, 0);
        let (sending, receiving) = tokio::join!(
            send_stream(&mut writer, ours, spec.send, chunk_sizes(ours, spec), &mut sent),
            recv_stream(&mut reader, theirs, spec.expect, chunk_sizes(theirs, spec), &mut received),
        );
        (tally.sent, tally.received) = (sent, received);
        sending.and(receiving)?;
        if spec.wait_close {
            expect_end(&mut reader).await?;
        }
        if spec.no_close {
            drop((reader, writer));
        } else {
            writer.shutdown().await.map_err(|e| format!("closing (shutdown) failed: {e}"))?;
        }
        return Ok(());
    }
    let mut chan = chan;
    if spec.send > 0 {
        send_stream(&mut chan, ours, spec.send, chunk_sizes(ours, spec), &mut tally.sent).await?;
    }
    if spec.expect > 0 {
        recv_stream(&mut chan, theirs, spec.expect, chunk_sizes(theirs, spec), &mut tally.received).await?;
    }
    finish(chan, spec).await
}

/// After the transfer: wait for the peer's close if asked, then close or go without closing.
async fn finish(mut chan: Vchan, spec: &PeerSpec) -> Result<(), String> {
    if spec.wait_close {
        expect_end(&mut chan).await?;
    }
    if spec.no_close {
        drop(chan);
    } else {
        chan.close().await;
    }
    Ok(())
}

/// Writes `total` bytes of the stream of `seed`, each `write_all` as large as `sizes` draws.
async fn send_stream(
    to: &mut (impl AsyncWrite + Unpin),
    seed: u64,
    total: u64,
    mut sizes: ChunkSizes,
    sent: &mut u64,
) -> Result<(), String> {
    let mut stream = Stream::new(seed);
    let mut buf = Vec::new();
    while *sent < total {
        let n = next_size(&mut sizes, total - *sent, usize::MAX);
        buf.resize(n, 0);
        stream.fill(&mut buf);
        to.write_all(&buf).await.map_err(|e| write_error(&e))?;
        *sent += n as u64;
    }
    Ok(())
}

/// Reads and checks `total` bytes of the stream of `seed`, each read asking for as much as
/// `sizes` draws (and taking what is there).
async fn recv_stream(
    from: &mut (impl AsyncRead + Unpin),
    seed: u64,
    total: u64,
    mut sizes: ChunkSizes,
    received: &mut u64,
) -> Result<(), String> {
    let mut stream = Stream::new(seed);
    let mut buf = Vec::new();
    while *received < total {
        buf.resize(next_size(&mut sizes, total - *received, usize::MAX), 0);
        let n = from.read(&mut buf).await.map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("the peer closed while data was still expected".into());
        }
        stream.check(*received, &buf[..n]).map_err(mismatch)?;
        *received += n as u64;
    }
    Ok(())
}

/// Reads until the peer's close: end of stream, and nothing before it.
async fn expect_end(from: &mut (impl AsyncRead + Unpin)) -> Result<(), String> {
    let mut byte = [0u8; 1];
    match from.read(&mut byte).await {
        Ok(0) => Ok(()),
        Ok(_) => Err("data after the expected end".into()),
        Err(e) => Err(format!("waiting for the peer's close: {e}")),
    }
}

/// The next call size: drawn, then clamped to what is left and to `limit`.
fn next_size(sizes: &mut ChunkSizes, left: u64, limit: usize) -> usize {
    let drawn = sizes.next().expect("endless").min(left);
    usize::try_from(drawn).unwrap_or(usize::MAX).min(limit)
}

fn write_error(error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::BrokenPipe {
        format!("the peer closed while data was still to be sent ({error})")
    } else {
        format!("write failed: {error}")
    }
}

/// Packet semantics: whole packets of at most half the ring (as the C peer's `--packet`), one
/// sent, then one received, in turn while either direction has data left. The turns cannot
/// deadlock: a C peer in both directions never blocks, and two Rust ends draw the same sizes
/// for a direction, so each receives the packet the other has just sent.
async fn run_packets(mut chan: Vchan, spec: &PeerSpec, tally: &mut Tally) -> Result<(), String> {
    let (ours, theirs) = seeds(spec);
    let (mut send_sizes, mut recv_sizes) = (chunk_sizes(ours, spec), chunk_sizes(theirs, spec));
    let (mut outgoing, mut incoming) = (Stream::new(ours), Stream::new(theirs));
    let (max_send, max_recv) = (chan.write_ring_size() / 2, chan.read_ring_size() / 2);
    let mut buf = Vec::new();
    while tally.sent < spec.send || tally.received < spec.expect {
        if tally.sent < spec.send {
            buf.resize(next_size(&mut send_sizes, spec.send - tally.sent, max_send), 0);
            outgoing.fill(&mut buf);
            chan.send(&buf).await.map_err(|e| write_error(&e))?;
            tally.sent += buf.len() as u64;
        }
        if tally.received < spec.expect {
            buf.resize(next_size(&mut recv_sizes, spec.expect - tally.received, max_recv), 0);
            chan.recv(&mut buf).await.map_err(|e| format!("recv failed: {e}"))?;
            incoming.check(tally.received, &buf).map_err(mismatch)?;
            tally.received += buf.len() as u64;
        }
    }
    finish(chan, spec).await
}

// ---------------------------------------------------------------------------------------------
// Pairs.

/// Which implementation runs an end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    C,
    Rust,
}

/// A Rust end's Xenstore connection and backend in domain `domid`.
async fn rust_parts(rv: &Rendezvous, domid: DomId) -> (Arc<dyn Backend>, vproto_xenstore::Xenstore) {
    (rv.sim_backend(domid), rv.xenstore(domid).await)
}

/// A running server: a C peer that printed `ready`, or a Rust end that has published.
enum Server {
    C(Box<CPeer>),
    Rust(JoinHandle<RustOutcome>),
}

impl Server {
    /// Starts `spec` in `domid` and returns once a client can connect.
    async fn start(rv: &Rendezvous, lang: Lang, domid: DomId, spec: &PeerSpec) -> Server {
        match lang {
            Lang::C => Server::C(Box::new(CPeer::start(rv, domid, spec).await)),
            Lang::Rust => {
                let (backend, xs) = rust_parts(rv, domid).await;
                let chan = listen(backend, &xs, &server_options(spec)).await.expect("listen");
                let spec = spec.clone();
                Server::Rust(tokio::spawn(async move { run_rust(chan, &spec).await }))
            }
        }
    }

    /// Waits for its end.
    async fn finish(self) -> Report {
        match self {
            Server::C(peer) => Report::C(peer.finish().await),
            Server::Rust(task) => {
                Report::Rust(within(PEER_TIMEOUT, "the Rust server", task).await.expect("the Rust server panicked"))
            }
        }
    }
}

/// Runs a client with `spec` in `domid` to its end.
async fn run_client(rv: &Rendezvous, lang: Lang, domid: DomId, spec: &PeerSpec) -> Report {
    match lang {
        Lang::C => Report::C(CPeer::start(rv, domid, spec).await.finish().await),
        Lang::Rust => {
            let (backend, xs) = rust_parts(rv, domid).await;
            let chan = connect(backend, &xs, spec.peer, &spec.path, None).await.expect("connect");
            Report::Rust(within(PEER_TIMEOUT, "the Rust client", run_rust(chan, spec)).await)
        }
    }
}

/// Runs a server and a client to their end: the server until it can be connected to, then the
/// client. Each runs in the domain the other's spec names as its peer.
async fn pair(rv: &Rendezvous, (sl, server): (Lang, &PeerSpec), (cl, client): (Lang, &PeerSpec)) -> (Report, Report) {
    assert_eq!((server.side, client.side), (Side::Server, Side::Client), "pair(server, client)");
    let (server_dom, client_dom) = (client.peer, server.peer);
    let server = Server::start(rv, sl, server_dom, server).await;
    let client = run_client(rv, cl, client_dom, client).await;
    (server.finish().await, client)
}

/// A rendezvous for a pairing: a Rust ↔ Rust pair needs no C peer (and so runs without gcc).
async fn rendezvous(server: Lang, client: Lang) -> Option<Rendezvous> {
    if (server, client) == (Lang::Rust, Lang::Rust) {
        Some(Rendezvous::start_without_c_peer().await)
    } else {
        Rendezvous::start().await
    }
}

/// Bytes moved each way for rings of these sizes (as `c_peer.rs`): several times the larger
/// ring, and an odd amount, so the indices wrap around the rings many times and end mid-ring.
fn amount(left: u64, right: u64) -> u64 {
    (4 * left.max(right)).max(256 << 10) + 12_345
}

/// The transfers of one ring configuration between `server` and `client`: server → client,
/// client → server, both at once, as streams; then one way and both at once in packets. Each
/// run has its own path and seed.
async fn exchange_every_way(name: &str, server: Lang, client: Lang, left: u64, right: u64) {
    let Some(rv) = rendezvous(server, client).await else { return };
    let n = amount(left, right);
    let runs = [(n, 0, false), (0, n, false), (n, n, false), (n, 0, true), (n, n, true)];
    within(PEER_TIMEOUT * 2, name, async {
        for (run, (to_client, to_server, packet)) in runs.into_iter().enumerate() {
            let path = rv.vchan_path(SERVER_DOM, name);
            let seed = run as u64 * 1000 + left + right;
            let mut s = PeerSpec::server(CLIENT_DOM, &path).rings(left, right).send(to_client).expect(to_server);
            let mut c = PeerSpec::client(SERVER_DOM, &path).send(to_server).expect(to_client);
            (s, c) = (s.seed(seed).wait_close(), c.seed(seed));
            if packet {
                (s, c) = (s.packet(), c.packet());
            }
            let (s_report, c_report) = pair(&rv, (server, &s), (client, &c)).await;
            c_report.assert_ok(to_server, to_client);
            s_report.assert_ok(to_client, to_server);
        }
    })
    .await;
    rv.shutdown().await;
}

/// One test per pairing and ring configuration.
macro_rules! ring_tests {
    ($($test:ident: $server:ident <-> $client:ident, $left:expr, $right:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            exchange_every_way(stringify!($test), Lang::$server, Lang::$client, $left, $right).await;
        }
    )*};
}

ring_tests! {
    c_rust_1k_2k: C <-> Rust, 1024, 2048;
    c_rust_4k: C <-> Rust, 4096, 4096;
    c_rust_64k: C <-> Rust, 64 << 10, 64 << 10;
    c_rust_1m: C <-> Rust, 1 << 20, 1 << 20;
    c_rust_64k_4k: C <-> Rust, 64 << 10, 4096;
    rust_c_1k_2k: Rust <-> C, 1024, 2048;
    rust_c_4k: Rust <-> C, 4096, 4096;
    rust_c_64k: Rust <-> C, 64 << 10, 64 << 10;
    rust_c_1m: Rust <-> C, 1 << 20, 1 << 20;
    rust_c_64k_4k: Rust <-> C, 64 << 10, 4096;
    rust_rust_1k_2k: Rust <-> Rust, 1024, 2048;
    rust_rust_4k: Rust <-> Rust, 4096, 4096;
    rust_rust_64k: Rust <-> Rust, 64 << 10, 64 << 10;
    rust_rust_1m: Rust <-> Rust, 1 << 20, 1 << 20;
    rust_rust_64k_4k: Rust <-> Rust, 64 << 10, 4096;
}

/// 4 GiB + 1 MiB + a bit from a C server into a Rust client through 1 MiB rings, every byte
/// checked on the Rust side: the 32-bit ring indices wrap at 4 GiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_to_rust_past_4_gib_the_indices_wrap() {
    let Some(rv) = Rendezvous::start().await else { return };
    let n = (4u64 << 30) + (1 << 20) + 4321;
    let path = rv.vchan_path(SERVER_DOM, "wrap");
    let limit = Duration::from_secs(600);
    let server = PeerSpec::server(CLIENT_DOM, &path).rings(1 << 20, 1 << 20).send(n).seed(7).wait_close();
    let client = PeerSpec::client(SERVER_DOM, &path).expect(n).seed(7).max_chunk(1 << 20);
    let server = CPeer::start(&rv, SERVER_DOM, &server).await;
    let (backend, xs) = rust_parts(&rv, CLIENT_DOM).await;
    let chan = connect(backend, &xs, SERVER_DOM, &path, None).await.expect("connect");
    within(limit, "4 GiB into Rust", run_rust(chan, &client)).await.assert_ok(0, n);
    server.finish_within(limit).await.assert_ok(n, 0);
    rv.shutdown().await;
}

/// One side sends, then closes or goes without closing (a C `--no-close` exit, a Rust end
/// dropped without `close()`); the other, waiting for the close, reads every byte and then the
/// end. In every pairing with a Rust end, from either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_or_going_without_close_from_either_side() {
    let Some(rv) = Rendezvous::start().await else { return };
    let n = 200_000;
    within(PEER_TIMEOUT * 2, "closing", async {
        for (server_lang, client_lang) in [(Lang::C, Lang::Rust), (Lang::Rust, Lang::C), (Lang::Rust, Lang::Rust)] {
            for sender in [Side::Server, Side::Client] {
                for no_close in [false, true] {
                    let path = rv.vchan_path(SERVER_DOM, "close");
                    let (server, client) = one_way_then_close(&path, sender, no_close, n);
                    let (s, c) = pair(&rv, (server_lang, &server), (client_lang, &client)).await;
                    let (to_client, to_server) = if sender == Side::Server { (n, 0) } else { (0, n) };
                    s.assert_ok(to_client, to_server);
                    c.assert_ok(to_server, to_client);
                }
            }
        }
    })
    .await;
    rv.shutdown().await;
}

/// A C peer goes while the Rust end still expects data: the Rust end reads what was sent, then
/// fails with the peer gone (and the other way round, a Rust end dropped mid-transfer fails
/// the C peer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_going_while_data_is_due_is_an_error() {
    let Some(rv) = Rendezvous::start().await else { return };
    within(PEER_TIMEOUT, "early close", async {
        // C server sends 5000 of the 100 000 bytes the Rust client expects (more than its 2 KiB
        // ring, so it cannot be gone before the client connects), then goes.
        for no_close in [false, true] {
            let path = rv.vchan_path(SERVER_DOM, "searly");
            let mut server = PeerSpec::server(CLIENT_DOM, &path).send(5000);
            server.no_close = no_close;
            let client = PeerSpec::client(SERVER_DOM, &path).expect(100_000);
            let (s, c) = pair(&rv, (Lang::C, &server), (Lang::Rust, &client)).await;
            s.assert_ok(5000, 0);
            let Report::Rust(c) = c else { unreachable!() };
            c.assert_failed("the peer closed while data was still expected");
            assert_eq!(c.received, 5000, "{c}");
        }
        // The Rust server sends 100 000 bytes; the C client reads 1000 and closes.
        let path = rv.vchan_path(SERVER_DOM, "cearly");
        let server = PeerSpec::server(CLIENT_DOM, &path).send(100_000);
        let client = PeerSpec::client(SERVER_DOM, &path).expect(1000);
        let (s, c) = pair(&rv, (Lang::Rust, &server), (Lang::C, &client)).await;
        c.assert_ok(0, 1000);
        let Report::Rust(s) = s else { unreachable!() };
        s.assert_failed("the peer closed while data was still to be sent");
    })
    .await;
    rv.shutdown().await;
}

/// A Rust client started before its server: without a wait it is `NoServer` at once; with one
/// it watches the path, and connects once a server (C, then Rust) publishes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_client_before_the_server_waits_for_it() {
    let Some(rv) = Rendezvous::start().await else { return };
    within(PEER_TIMEOUT, "client before server", async {
        for server_lang in [Lang::C, Lang::Rust] {
            let path = rv.vchan_path(SERVER_DOM, "early");
            let (backend, xs) = rust_parts(&rv, CLIENT_DOM).await;
            let refused = connect(backend.clone(), &xs, SERVER_DOM, &path, None).await.unwrap_err();
            assert!(matches!(&refused, VchanError::NoServer { path: p, .. } if *p == path), "{refused:?}");

            // Waits on a tapped Xenstore connection, to know when it is waiting: its watch is
            // set and its first look found nothing.
            let (xs, mut tap) = rv.xenstore_tapped(CLIENT_DOM).await;
            let client = PeerSpec::client(SERVER_DOM, &path).expect(70_000).send(30_000).seed(3);
            let waiting = {
                let (path, client) = (path.clone(), client.clone());
                tokio::spawn(async move {
                    let chan = connect(backend, &xs, SERVER_DOM, &path, Some(PEER_TIMEOUT)).await.expect("connect");
                    run_rust(chan, &client).await
                })
            };
            tap.watching_after_error().await;
            assert!(!waiting.is_finished(), "the client did not wait");
            let server = PeerSpec::server(CLIENT_DOM, &path).send(70_000).expect(30_000).seed(3).wait_close();
            let server = Server::start(&rv, server_lang, SERVER_DOM, &server).await;
            waiting.await.expect("the client panicked").assert_ok(30_000, 70_000);
            server.finish().await.assert_ok(70_000, 30_000);
            assert!(tap.received().contains(&xs_type::WATCH_EVENT), "{:?}", tap.received());
        }
    })
    .await;
    rv.shutdown().await;
}

/// A channel offered to dom5 cannot be taken from dom7: its entries are unreadable there (a Rust
/// client sees no server, with or without waiting; a C client's init fails), and even knowing
/// them, dom7 can neither bind the server's port nor map its page. The right client then still
/// gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_domain_is_refused() {
    let Some(rv) = Rendezvous::start().await else { return };
    within(PEER_TIMEOUT, "wrong domain", async {
        for server_lang in [Lang::C, Lang::Rust] {
            let path = rv.vchan_path(SERVER_DOM, "wrong");
            let server = PeerSpec::server(CLIENT_DOM, &path).send(10).wait_close();
            let server = Server::start(&rv, server_lang, SERVER_DOM, &server).await;

            let (backend, xs) = rust_parts(&rv, OTHER_DOM).await;
            for wait in [None, Some(Duration::from_millis(200))] {
                let refused = connect(backend.clone(), &xs, SERVER_DOM, &path, wait).await.unwrap_err();
                assert!(matches!(refused, VchanError::NoServer { .. }), "{wait:?}: {refused:?}");
            }
            if server_lang == Lang::Rust {
                let intruder = CPeer::spawn(&rv, OTHER_DOM, &PeerSpec::client(SERVER_DOM, &path).expect(10));
                intruder.finish().await.assert_failed(3, "libxenvchan_client_init");
            }
            // dom0 reads what the server published; dom7 may use none of it.
            let dom0 = rv.xenstore(SERVER_DOM).await;
            let number = |node: &str| {
                let dom0 = dom0.clone();
                let node = format!("{path}/{node}");
                async move { String::from_utf8(dom0.read(&node).await.unwrap()).unwrap().parse::<u32>().unwrap() }
            };
            let (ring_ref, port) = (number("ring-ref").await, number("event-channel").await);
            let events = backend.open_events().unwrap();
            let bind = events.bind_interdomain(SERVER_DOM, port).unwrap_err();
            assert_eq!(errno_of(&bind), libc::EPERM, "{bind}");
            let map = backend.map(SERVER_DOM, &[ring_ref], true, None).unwrap_err();
            assert_eq!(errno_of(&map), libc::EPERM, "{map}");

            let client = PeerSpec::client(SERVER_DOM, &path).expect(10);
            run_client(&rv, Lang::Rust, CLIENT_DOM, &client).await.assert_ok(0, 10);
            server.finish().await.assert_ok(10, 0);
        }
    })
    .await;
    rv.shutdown().await;
}

/// Without a listener, a channel holds one client: a second one is refused while the first
/// holds it, with `Taken` whether it waits (it gives up when its time is over) or not (the
/// page's claim is taken before any port is bound). The first client's transfer is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_client_is_refused_while_one_holds_the_channel() {
    let rv = Rendezvous::start_without_c_peer().await;
    within(PEER_TIMEOUT, "second client", async {
        let path = rv.vchan_path(SERVER_DOM, "second");
        let server = PeerSpec::server(CLIENT_DOM, &path).rings(4096, 4096).send(50_000).expect(50_000).wait_close();
        let (backend, xs) = rust_parts(&rv, SERVER_DOM).await;
        let mut server_chan = listen(backend, &xs, &server_options(&server)).await.expect("listen");

        let (backend, xs) = rust_parts(&rv, CLIENT_DOM).await;
        let first = connect(backend.clone(), &xs, SERVER_DOM, &path, None).await.expect("the first client");
        server_chan.accepted().await;

        let waited = connect(backend.clone(), &xs, SERVER_DOM, &path, Some(Duration::from_millis(300))).await;
        match waited {
            Err(VchanError::Taken { path: p }) => assert_eq!(p, path),
            other => panic!("a second client waiting 300 ms: expected Taken, got {other:?}"),
        }
        // Not waiting, it learns the same at once: the page's claim is taken before any port is
        // bound.
        let at_once = connect(backend, &xs, SERVER_DOM, &path, None).await;
        match at_once {
            Err(VchanError::Taken { path: p }) => assert_eq!(p, path),
            other => panic!("a second client not waiting: expected Taken, got {other:?}"),
        }

        let client = PeerSpec::client(SERVER_DOM, &path).send(50_000).expect(50_000);
        let server_end = tokio::spawn(async move { run_rust(server_chan, &server).await });
        run_rust(first, &client).await.assert_ok(50_000, 50_000);
        server_end.await.unwrap().assert_ok(50_000, 50_000);
    })
    .await;
    rv.shutdown().await;
}

/// With a `VchanListener`, a second client gets the next channel at the same path: Rust
/// clients while the first still holds its channel (the second waits for the next one), then
/// C clients one after the other (each started once the listener has published again). Each
/// channel carries its own checked transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_gives_each_client_its_own_channel() {
    let Some(rv) = Rendezvous::start().await else { return };
    within(PEER_TIMEOUT, "listener", async {
        let path = rv.vchan_path(SERVER_DOM, "listener");
        let (backend, xs) = rust_parts(&rv, SERVER_DOM).await;
        let options = ServerOptions { peer: CLIENT_DOM, path: path.clone(), read_min: 4096, write_min: 4096 };
        let mut listener = VchanListener::bind(backend, xs, options).await.expect("bind");

        // Two Rust clients: the second connects while the first holds the first channel.
        let (backend, xs) = rust_parts(&rv, CLIENT_DOM).await;
        let wait = Some(PEER_TIMEOUT);
        let (first, first_server) =
            tokio::join!(connect(backend.clone(), &xs, SERVER_DOM, &path, wait), listener.accept());
        let (first, first_server) = (first.expect("the first client"), first_server.expect("the first accept"));
        let (second, second_server) = tokio::join!(connect(backend, &xs, SERVER_DOM, &path, wait), listener.accept());
        let (second, second_server) = (second.expect("the second client"), second_server.expect("the second accept"));
        let mut ends = Vec::new();
        for (seed, (client_chan, server_chan)) in
            [(first, first_server), (second, second_server)].into_iter().enumerate()
        {
            let seed = seed as u64 + 10;
            let server = PeerSpec::server(CLIENT_DOM, &path).send(40_000).expect(20_000).seed(seed).wait_close();
            let client = PeerSpec::client(SERVER_DOM, &path).send(20_000).expect(40_000).seed(seed);
            ends.push(tokio::spawn(async move { run_rust(server_chan, &server).await.assert_ok(40_000, 20_000) }));
            ends.push(tokio::spawn(async move { run_rust(client_chan, &client).await.assert_ok(20_000, 40_000) }));
        }
        for end in ends {
            end.await.expect("an end failed");
        }

        // C clients, one after the other: each reads the entries once, so each starts after the
        // listener has published the next channel (the previous accept returned).
        for seed in [20, 21] {
            let client = PeerSpec::client(SERVER_DOM, &path).send(20_000).expect(40_000).seed(seed);
            let c_client = CPeer::start(&rv, CLIENT_DOM, &client).await;
            let server_chan = listener.accept().await.expect("accept a C client");
            let server = PeerSpec::server(CLIENT_DOM, &path).send(40_000).expect(20_000).seed(seed).wait_close();
            run_rust(server_chan, &server).await.assert_ok(40_000, 20_000);
            c_client.finish().await.assert_ok(20_000, 40_000);
        }
    })
    .await;
    rv.shutdown().await;
}

/// A waiting client reads a channel's entries; before it attaches, that channel closes and the
/// server publishes a new one at the same path, whose event port gets the number the old one
/// freed (the lowest free port, as on Xen) — what a `VchanListener` does when a short client
/// leaves while another connects. The waiting client must end up on the new channel.
///
/// Found by `serve_driver_over_vchan_serves_clients_at_once` in cli/tests/vchan.rs: `attach`
/// used to bind the stale port number first (by then the *new* channel's port) and then fail to
/// map the stale ring-ref. It now maps and claims the page first, and `connect` looks again when
/// the entries changed while it attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_client_whose_entries_went_stale_connects_to_the_next_channel() {
    let rv = Rendezvous::start_without_c_peer().await;
    within(PEER_TIMEOUT, "stale entries", async {
        let path = rv.vchan_path(SERVER_DOM, "stale");
        let spec = PeerSpec::server(CLIENT_DOM, &path).rings(4096, 4096);
        let (backend, xs) = rust_parts(&rv, SERVER_DOM).await;
        let first = listen(backend.clone(), &xs, &server_options(&spec)).await.expect("listen");

        // The client's second read (event-channel, after ring-ref) is answered, and held.
        let (client_xs, mut tap) = rv.xenstore_tapped(CLIENT_DOM).await;
        tap.hold(xs_type::READ, 2);
        let client_backend = rv.sim_backend(CLIENT_DOM);
        let waiting = {
            let path = path.clone();
            tokio::spawn(
                async move { connect(client_backend, &client_xs, SERVER_DOM, &path, Some(PEER_TIMEOUT)).await },
            )
        };
        tap.wait_held().await;
        // Meanwhile the first channel closes and a second one is published at the same path.
        first.close().await;
        let second = listen(backend, &xs, &server_options(&spec)).await.expect("listen again");
        tap.release();

        let client = waiting.await.expect("the client panicked").expect("the waiting client connects");
        let server_spec = spec.send(10_000).expect(10_000).wait_close();
        let client_spec = PeerSpec::client(SERVER_DOM, &path).send(10_000).expect(10_000);
        let server = tokio::spawn(async move { run_rust(second, &server_spec).await });
        run_rust(client, &client_spec).await.assert_ok(10_000, 10_000);
        server.await.unwrap().assert_ok(10_000, 10_000);
    })
    .await;
    rv.shutdown().await;
}

/// On Xen, closing one end of an interdomain event channel returns the other end to unbound
/// for the same remote domain (`evtchn_close`: `ECS_UNBOUND`, `remote_domid`), so a server's
/// port that a client bound and let go can be bound again.
///
/// The simulation used to remove only the closing side's record (vchan/src/backend/sim/
/// events.rs), leaving the server's port connected to a dead one for good.
#[tokio::test]
async fn a_port_whose_peer_unbound_can_be_bound_again() {
    let rv = Rendezvous::start_without_c_peer().await;
    let server = rv.sim_backend(SERVER_DOM).open_events().unwrap();
    let port = server.bind_unbound(CLIENT_DOM).unwrap();
    let first = rv.sim_backend(CLIENT_DOM).open_events().unwrap();
    first.bind_interdomain(SERVER_DOM, port).expect("the first binding");
    drop(first);
    let second = rv.sim_backend(CLIENT_DOM).open_events().unwrap();
    second.bind_interdomain(SERVER_DOM, port).expect("binding again after the first let go");
    rv.shutdown().await;
}
