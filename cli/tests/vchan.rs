//! `vproto vchan` and JSON-RPC over vchan, end to end: `vproto` processes on the simulation
//! backend (`VPROTO_VCHAN_BACKEND=sim`, docs/vchan.md), `vproto xenstored` as the rendezvous (a
//! process), and for the other end the C peer linked against Xen's real libxenvchan
//! (`tests/vchan/peer.c` on the simulation's drop-in libraries) or a Rust end in this process.
//! The harness is `vproto_test_support::vchan`; these tests skip without gcc or libxen-dev (and
//! fail under CI).
//!
//! - Issue 13's first "done when": the C peer exchanges a checked 64 MiB stream each way with
//!   `vproto vchan listen` and with `vproto vchan connect`; `--keep-open` against the default
//!   close at the end of the input; the peer closing ends vproto (what is left written, exit 0)
//!   even while its input is still open; bad options.
//! - The second: `vproto serve driver --listen vchan:5:…` (dom0) answers `vproto call` and
//!   passes `vproto conform` from dom5, for clients one after the other and at once.

use std::{path::Path, process::Stdio};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::Child,
    task::JoinHandle,
    time::timeout,
};
use vproto_test_support::vchan::{
    check_stream, data_seed, write_stream_file, CPeer, PeerSpec, Rendezvous, Side, Stream, Xenstored, CLIENT_DOM,
    PEER_TIMEOUT, SERVER_DOM,
};

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");

/// 64 MiB: the first "done when" of issue 13.
const BIG: u64 = 64 << 20;

/// A rendezvous served by `vproto xenstored` (a process), with the C peer when `c_peer`; `None`
/// when that cannot be built here (a skip, or a failure under CI).
async fn rendezvous(c_peer: bool) -> Option<Rendezvous> {
    Rendezvous::start_with(Xenstored::Program(VPROTO.into()), c_peer).await
}

/// A `vproto` process in a domain of the rendezvous, on the simulation backend; its stdout is
/// checked against a stream as it comes, its stderr kept.
struct Vproto {
    name: String,
    child: Child,
    stdout: JoinHandle<Result<u64, String>>,
    stderr: JoinHandle<String>,
}

/// How a [`Vproto`] ended.
#[derive(Debug)]
struct Ended {
    name: String,
    code: Option<i32>,
    /// The bytes of stdout that matched the expected stream, or where it differed.
    stdout: Result<u64, String>,
    stderr: String,
}

impl Ended {
    /// Exit 0 with exactly `bytes` of the expected stream on stdout.
    #[track_caller]
    fn assert_ok(&self, bytes: u64) {
        assert_eq!(self.code, Some(0), "{self}");
        assert_eq!(self.stdout, Ok(bytes), "{self}");
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ended { name, code, stdout, stderr } = self;
        write!(f, "{name} exited {code:?}; stdout {stdout:?}; stderr {stderr:?}")
    }
}

impl Vproto {
    /// Starts `vproto ARGS` in `domid` with `stdin`; its stdout must be the stream of `seed`.
    fn spawn(rv: &Rendezvous, domid: u16, args: &[&str], stdin: Stdio, seed: u64) -> Vproto {
        let name = format!("vproto {} (dom{domid})", args.join(" "));
        let mut child = rv
            .command(domid, VPROTO)
            .env("VPROTO_VCHAN_BACKEND", "sim")
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = tokio::spawn(check_stream(child.stdout.take().expect("piped"), seed));
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Vproto { name, child, stdout, stderr }
    }

    /// `vproto vchan ROLE --domain PEER --path PATH EXTRA…` with `stdin`.
    fn vchan(rv: &Rendezvous, role: Side, path: &str, extra: &[&str], stdin: Stdio, seed: u64) -> Vproto {
        let (domid, peer, word) = match role {
            Side::Server => (SERVER_DOM, CLIENT_DOM, "listen"),
            Side::Client => (CLIENT_DOM, SERVER_DOM, "connect"),
        };
        let peer = peer.to_string();
        let args = [&["vchan", word, "--domain", &peer, "--path", path][..], extra].concat();
        Vproto::spawn(rv, domid, &args, stdin, seed)
    }

    /// Waits for it to exit (killed after [`PEER_TIMEOUT`]).
    async fn finish(mut self) -> Ended {
        let status = match timeout(PEER_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.expect("wait for vproto"),
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                let stdout = self.stdout.await.expect("the stdout checker panicked");
                let stderr = self.stderr.await.unwrap_or_default();
                panic!(
                    "{} did not exit within {PEER_TIMEOUT:?} (killed); stdout {stdout:?}; stderr {stderr:?}",
                    self.name
                );
            }
        };
        Ended {
            name: self.name,
            code: status.code(),
            stdout: self.stdout.await.expect("the stdout checker panicked"),
            stderr: self.stderr.await.unwrap_or_default(),
        }
    }
}

/// A file of `n` bytes of the stream of `seed`, as a process's stdin.
fn stream_input(rv: &Rendezvous, name: &str, seed: u64, n: u64) -> Stdio {
    let path = rv.scratch().join(name);
    write_stream_file(&path, seed, n);
    Stdio::from(std::fs::File::open(&path).unwrap())
}

/// Issue 13, done when 1 (vproto the server): `vproto vchan listen --keep-open` (dom0) and the
/// C peer (dom5, a client) exchange 64 MiB each way at once, checked byte for byte on both
/// sides; the C peer closes at its end, and vproto, having written everything, exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vproto_listen_exchanges_64_mib_each_way_with_a_c_client() {
    let Some(rv) = rendezvous(true).await else { return };
    let (path, seed) = (rv.vchan_path(SERVER_DOM, "cli-listen"), 11);
    let input = stream_input(&rv, "listen.in", data_seed(Side::Server, seed), BIG);
    let vproto = Vproto::vchan(&rv, Side::Server, &path, &["--keep-open"], input, data_seed(Side::Client, seed));
    rv.wait_for_node(&format!("{path}/event-channel")).await;
    let client = PeerSpec::client(SERVER_DOM, &path).send(BIG).expect(BIG).seed(seed);
    CPeer::start(&rv, CLIENT_DOM, &client).await.finish().await.assert_ok(BIG, BIG);
    vproto.finish().await.assert_ok(BIG);
    rv.shutdown().await;
}

/// Issue 13, done when 1 (vproto the client): the C peer (dom0, a server with 1 MiB rings)
/// and `vproto vchan connect --keep-open` (dom5) exchange 64 MiB each way at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vproto_connect_exchanges_64_mib_each_way_with_a_c_server() {
    let Some(rv) = rendezvous(true).await else { return };
    let (path, seed) = (rv.vchan_path(SERVER_DOM, "cli-connect"), 12);
    let server = PeerSpec::server(CLIENT_DOM, &path).rings(1 << 20, 1 << 20).send(BIG).expect(BIG).seed(seed);
    let server = CPeer::start(&rv, SERVER_DOM, &server).await;
    let input = stream_input(&rv, "connect.in", data_seed(Side::Client, seed), BIG);
    let vproto = Vproto::vchan(&rv, Side::Client, &path, &["--keep-open"], input, data_seed(Side::Server, seed));
    server.finish().await.assert_ok(BIG, BIG);
    vproto.finish().await.assert_ok(BIG);
    rv.shutdown().await;
}

/// At the end of its input, vproto closes the channel once the peer has read everything: the
/// C peer, waiting for that close, gets all of it and exits 0 (as client and as server).
/// With `--keep-open` it does not: a Rust peer reads the whole input, finds the channel still
/// open, and only then sends; vproto writes all of it out and exits 0 when the peer closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_end_of_input_vproto_closes_unless_keep_open() {
    let Some(rv) = rendezvous(true).await else { return };
    let n = 300_000;
    // Default, vproto the client: the C server expects the input and waits for the close.
    let path = rv.vchan_path(SERVER_DOM, "cli-eof-c");
    let server = PeerSpec::server(CLIENT_DOM, &path).rings(4096, 4096).expect(n).seed(1).wait_close();
    let server = CPeer::start(&rv, SERVER_DOM, &server).await;
    let input = stream_input(&rv, "eof-c.in", data_seed(Side::Client, 1), n);
    let vproto = Vproto::vchan(&rv, Side::Client, &path, &[], input, 0);
    server.finish().await.assert_ok(0, n);
    vproto.finish().await.assert_ok(0);

    // Default, vproto the server: the same with a C client.
    let path = rv.vchan_path(SERVER_DOM, "cli-eof-s");
    let input = stream_input(&rv, "eof-s.in", data_seed(Side::Server, 2), n);
    let vproto = Vproto::vchan(&rv, Side::Server, &path, &["--ring-size", "1024"], input, 0);
    rv.wait_for_node(&format!("{path}/event-channel")).await;
    let client = PeerSpec::client(SERVER_DOM, &path).expect(n).seed(2).wait_close();
    CPeer::start(&rv, CLIENT_DOM, &client).await.finish().await.assert_ok(0, n);
    vproto.finish().await.assert_ok(0);

    // --keep-open, vproto the server; the peer a Rust client that reads the input first.
    let path = rv.vchan_path(SERVER_DOM, "cli-keep");
    let (seed, m) = (3, 500_000);
    let input = stream_input(&rv, "keep.in", data_seed(Side::Server, seed), n);
    let vproto = Vproto::vchan(&rv, Side::Server, &path, &["--keep-open"], input, data_seed(Side::Client, seed));
    rv.wait_for_node(&format!("{path}/event-channel")).await;
    let xs = rv.xenstore(CLIENT_DOM).await;
    let mut chan = vproto_vchan::connect(rv.sim_backend(CLIENT_DOM), &xs, SERVER_DOM, &path, None).await.unwrap();
    let read = timeout(PEER_TIMEOUT, check_prefix(&mut chan, data_seed(Side::Server, seed), n)).await;
    read.expect("reading vproto's input timed out").expect("vproto's input");
    assert_eq!(chan.peer_state(), 1, "vproto closed at the end of its input despite --keep-open");
    let mut reply = vec![0; m as usize];
    Stream::new(data_seed(Side::Client, seed)).fill(&mut reply);
    timeout(PEER_TIMEOUT, chan.write_all(&reply)).await.expect("sending timed out").expect("vproto took the reply");
    timeout(PEER_TIMEOUT, chan.close()).await.expect("closing timed out");
    vproto.finish().await.assert_ok(m);
    rv.shutdown().await;
}

/// Reads exactly `n` bytes from `from` and checks them against the stream of `seed`.
async fn check_prefix(from: &mut vproto_vchan::Vchan, seed: u64, n: u64) -> Result<(), String> {
    let mut got = vec![0; n as usize];
    from.read_exact(&mut got).await.map_err(|e| e.to_string())?;
    Stream::new(seed).check(0, &got).map_err(vproto_test_support::vchan::mismatch)
}

/// When the peer closes, vproto writes what is left and exits 0: the C peer sends 1 MiB and a
/// bit through 64 KiB rings and closes at once, as server and as client, to a `vproto vchan
/// --keep-open` whose input is over (without `--keep-open` it would close first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_peer_closes_vproto_writes_what_is_left_and_exits_0() {
    peer_closes(&["--keep-open"], Stdio::null).await;
}

/// The same while vproto's own input is still open (a pipe nobody writes to or closes): the
/// peer's close alone must end it.
///
/// It used to write everything out and then never exit: stdin was read on tokio's blocking
/// pool, which the runtime waits for at exit. It is read on a thread of its own now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_peer_closes_vproto_exits_though_its_input_is_still_open() {
    peer_closes(&[], Stdio::piped).await;
}

/// The C peer sends and closes, as server then as client; vproto runs with `extra` and its
/// stdin from `stdin` (held open, when a pipe, until vproto has exited).
async fn peer_closes(extra: &[&str], stdin: fn() -> Stdio) {
    let Some(rv) = rendezvous(true).await else { return };
    let n = (1 << 20) + 777;
    // The C server sends and closes; vproto connects.
    let path = rv.vchan_path(SERVER_DOM, "cli-peer-s");
    let server = PeerSpec::server(CLIENT_DOM, &path).rings(65536, 65536).send(n).seed(4);
    let server = CPeer::start(&rv, SERVER_DOM, &server).await;
    let mut vproto = Vproto::vchan(&rv, Side::Client, &path, extra, stdin(), data_seed(Side::Server, 4));
    let open_input = vproto.child.stdin.take();
    server.finish().await.assert_ok(n, 0);
    vproto.finish().await.assert_ok(n);
    drop(open_input);

    // vproto listens; the C client sends and closes.
    let path = rv.vchan_path(SERVER_DOM, "cli-peer-c");
    let mut vproto = Vproto::vchan(&rv, Side::Server, &path, extra, stdin(), data_seed(Side::Client, 5));
    let open_input = vproto.child.stdin.take();
    rv.wait_for_node(&format!("{path}/event-channel")).await;
    let client = PeerSpec::client(SERVER_DOM, &path).send(n).seed(5);
    CPeer::start(&rv, CLIENT_DOM, &client).await.finish().await.assert_ok(n, 0);
    vproto.finish().await.assert_ok(n);
    drop(open_input);
    rv.shutdown().await;
}

/// Bad options: a ring larger than 1 MiB is a usage error (exit 2) naming the size and the
/// limit; no server within `--wait` is a failure (exit 1) naming the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_and_no_server() {
    let rv = rendezvous(false).await.expect("no C peer needed");
    let path = rv.vchan_path(SERVER_DOM, "cli-bad");
    let too_big = Vproto::vchan(&rv, Side::Server, &path, &["--ring-size", "2097152"], Stdio::null(), 0);
    let ended = too_big.finish().await;
    assert_eq!(ended.code, Some(2), "{ended}");
    for text in ["2097152", "1048576", "larger"] {
        assert!(ended.stderr.contains(text), "{text:?} in {ended}");
    }

    let nobody = Vproto::vchan(&rv, Side::Client, &path, &["--wait", "300ms"], Stdio::null(), 0);
    let ended = nobody.finish().await;
    assert_eq!(ended.code, Some(1), "{ended}");
    assert!(ended.stderr.contains(&path) && ended.stderr.contains("no server"), "{ended}");
    rv.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC over vchan.

/// The driver's channel: published by dom0 for dom5.
const RPC_PATH: &str = "/local/domain/0/data/rpc";

/// `vproto ARGS` as domain `domid` on the simulation backend, to its end: exit code, stdout
/// and stderr. Killed after [`PEER_TIMEOUT`], failing the test with what it printed.
async fn run_vproto(rv: &Rendezvous, domid: u16, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = rv
        .command(domid, VPROTO)
        .env("VPROTO_VCHAN_BACKEND", "sim")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vproto runs");
    let read_all = |mut pipe: Box<dyn tokio::io::AsyncRead + Send + Unpin>| {
        tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped")));
    let status = timeout(PEER_TIMEOUT, child.wait()).await;
    if status.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    let (stdout, stderr) = (stdout.await.unwrap_or_default(), stderr.await.unwrap_or_default());
    match status {
        Ok(status) => (status.expect("wait for vproto").code(), stdout, stderr),
        Err(_) => panic!(
            "vproto {} did not exit within {PEER_TIMEOUT:?} (killed)\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- serve's log\n{}",
            args.join(" "),
            serve_log(rv)
        ),
    }
}

/// What `vproto serve` logged so far.
fn serve_log(rv: &Rendezvous) -> String {
    std::fs::read_to_string(rv.scratch().join("serve.log")).unwrap_or_default()
}

/// `vproto call --connect vchan:0:RPC_PATH driver.list_hardware` as dom5: the result.
async fn list_hardware(rv: &Rendezvous) -> Value {
    let target = format!("vchan:{SERVER_DOM}:{RPC_PATH}");
    let (code, stdout, stderr) =
        run_vproto(rv, CLIENT_DOM, &["call", "--connect", &target, "driver.list_hardware"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}\n--- serve's log\n{}", serve_log(rv));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// `vproto conform --target vchan:0:RPC_PATH` as dom5, its JSON report in `out`: every case
/// passes and every method is covered.
async fn conform(rv: &Rendezvous, out: &Path) {
    let target = format!("vchan:{SERVER_DOM}:{RPC_PATH}");
    let out_arg = out.to_str().unwrap();
    let args = ["conform", "--target", &target, "--report", "json", "--out", out_arg];
    let (code, stdout, stderr) = run_vproto(rv, CLIENT_DOM, &args).await;
    let text = std::fs::read_to_string(out).unwrap_or_else(|e| panic!("no report ({e}): {stdout}\n{stderr}"));
    let report: Value = serde_json::from_str(&text).unwrap();
    let cases = report["cases"].as_array().expect("cases");
    let failed: Vec<&Value> = cases.iter().filter(|case| case["status"] != "pass").collect();
    assert!(failed.is_empty(), "failed cases: {failed:#?}\n{stderr}\n--- serve's log\n{}", serve_log(rv));
    assert_eq!(report["summary"]["uncovered"], serde_json::json!([]), "{:#}", report["coverage"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(cases.len() >= 30, "only {} cases ran", cases.len());
}

/// `vproto serve driver --listen vchan:5:RPC_PATH --config examples/driver.json` as dom0,
/// once it printed its address (the channel is published then); killed when dropped.
async fn serve_driver(rv: &Rendezvous) -> Child {
    let config = vproto_test_support::vchan::workspace().join("examples/driver.json");
    let listen = format!("vchan:{CLIENT_DOM}:{RPC_PATH}");
    let mut serve = rv
        .command(SERVER_DOM, VPROTO)
        .env("VPROTO_VCHAN_BACKEND", "sim")
        .args(["serve", "driver", "--listen", &listen, "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(rv.scratch().join("serve.log")).unwrap())
        .spawn()
        .expect("vproto serve starts");
    let mut stdout = BufReader::new(serve.stdout.take().unwrap()).lines();
    let line = timeout(PEER_TIMEOUT, stdout.next_line()).await.expect("serve did not start in time");
    assert_eq!(line.expect("serve's stdout").as_deref(), Some(listen.as_str()), "{}", serve_log(rv));
    // It prints nothing more; the pipe stays open.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    serve
}

/// Issue 13, done when 2: `vproto serve driver --listen vchan:5:RPC_PATH` as dom0 answers
/// `vproto call` from dom5 and passes `vproto conform` over vchan, clients one after the
/// other (each gets a channel of its own: the listener publishes the next one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_driver_over_vchan_answers_call_and_passes_conform() {
    let rv = rendezvous(false).await.expect("no C peer needed");
    let mut serve = serve_driver(&rv).await;
    // No discovery has run yet: the answer is an empty list (conform runs one).
    assert_eq!(list_hardware(&rv).await, serde_json::json!({"hardware": []}));
    conform(&rv, &rv.scratch().join("first.json")).await;
    assert!(list_hardware(&rv).await["hardware"].is_array());
    conform(&rv, &rv.scratch().join("second.json")).await;
    serve.start_kill().unwrap();
    let _ = serve.wait().await;
    rv.shutdown().await;
}

/// The same with clients at once: two suites and a call, five times over.
///
/// This used to fail now and then: a client that read the entries of a channel which then
/// closed, while the listener published another with the same port number, failed to map the
/// gone page and left the new channel's port bound on the simulation. vchan/tests/pairs.rs's
/// `a_waiting_client_whose_entries_went_stale_connects_to_the_next_channel` and
/// `a_port_whose_peer_unbound_can_be_bound_again` reproduce both halves deterministically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_driver_over_vchan_serves_clients_at_once() {
    let rv = rendezvous(false).await.expect("no C peer needed");
    let mut serve = serve_driver(&rv).await;
    for round in 0..5 {
        let (one, two) = (rv.scratch().join(format!("{round}a.json")), rv.scratch().join(format!("{round}b.json")));
        let (_, _, listed) = tokio::join!(conform(&rv, &one), conform(&rv, &two), list_hardware(&rv));
        assert!(listed["hardware"].is_array(), "{listed}");
    }
    serve.start_kill().unwrap();
    let _ = serve.wait().await;
    rv.shutdown().await;
}
