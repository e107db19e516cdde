//! The vchan interop harness: a Xenstore rendezvous, the simulation libraries, the C peer
//! (`tests/vchan/peer.c`, linked against Xen's real libxenvchan) and the deterministic stream
//! both sides send and check.
//!
//! Behind the `vchan` feature (it brings vproto's xenstored and vchan): a test crate names it
//! as `vproto-test-support = { path = "../test-support", features = ["vchan"] }`.
//!
//! ```no_run
//! use vproto_test_support::vchan::{CPeer, PeerSpec, Rendezvous, CLIENT_DOM, SERVER_DOM};
//!
//! # async fn example() {
//! let Some(rv) = Rendezvous::start().await else { return }; // skipped: a peer is missing
//! let path = rv.vchan_path(SERVER_DOM, "bulk");
//! // The server (dom0) first, until it printed "ready": libxenvchan's client needs its entries.
//! let server = CPeer::start(&rv, SERVER_DOM, &PeerSpec::server(CLIENT_DOM, &path).send(1 << 20)).await;
//! let client = CPeer::start(&rv, CLIENT_DOM, &PeerSpec::client(SERVER_DOM, &path).expect(1 << 20)).await;
//! client.finish().await.assert_ok(0, 1 << 20);
//! server.finish().await.assert_ok(1 << 20, 0);
//! // The same in one call: c_pair(&rv, &server_spec, &client_spec) -> (server, client) outcomes.
//! # }
//! ```
//!
//! A C server that sends less than its ring holds and then closes may be gone before the
//! client connects: give it `wait_close()`, or send more than the ring holds.
//!
//! - [`Rendezvous::start`] serves Xenstore in-process (vproto's own xenstored: a dom0 socket and
//!   guest sockets for [`CLIENT_DOM`] and [`OTHER_DOM`]), makes a simulation directory, and
//!   returns `None` after [`crate::missing_peer`] when gcc or libxenvchan is not
//!   installed (a skip, or a failure under `CI`). [`Rendezvous::env`] is what a process of a
//!   given domain needs: `VPROTO_SIM_DOMID`, `VPROTO_SIM_DIR`, `XENSTORED_PATH` and
//!   `LD_LIBRARY_PATH` (the simulation's `libxengnttab.so.1`/`libxenevtchn.so.1`).
//! - [`CPeer`] runs the C peer under a deadline ([`PEER_TIMEOUT`], or
//!   [`CPeer::finish_within`]); [`PeerSpec`] is its command line; [`c_pair`] runs a C server
//!   and a C client to their end; an [`Outcome`] is an exit status and the peer's summary.
//!   For a Rust side, [`Rendezvous::xenstore`] and [`Rendezvous::sim_backend`] are a domain's
//!   Xenstore connection and simulation backend.
//!   [`Rendezvous::start_with`] runs `vproto xenstored` as a process instead
//!   ([`Xenstored::Program`]), for end-to-end tests. [`Rendezvous::xenstore_tapped`] is a
//!   connection whose replies a test sees ([`XsTap`]): it tells when a client waits.
//! - [`Stream`] and [`stream_bytes`] are the C peer's data stream, byte for byte;
//!   [`data_seed`] says which seed each side sends, [`ChunkSizes`] the call sizes it draws;
//!   [`write_stream_file`] and [`check_stream`] give a program the stream as its input and
//!   check its output; [`one_way_then_close`] is the specs of a transfer ended by a close.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
    task::JoinHandle,
    time::timeout,
};
use vproto_vchan::backend::{sim::SimBackend, Backend};
use vproto_xenstore::{
    server::{self, DomainSocket, Quotas, RunningXenstored, XenstoredConfig},
    Xenstore, XenstoreAddr,
};

/// A domain id, as the C peer's `--domain` and `VPROTO_SIM_DOMID` take it.
pub use vproto_vchan::backend::DomId;

/// The domain servers run in by default (dom0, as a vchan server on a Xen host usually is).
pub const SERVER_DOM: DomId = 0;
/// The guest domain clients run in by default.
pub const CLIENT_DOM: DomId = 5;
/// Another guest, which no channel is meant for (wrong-domain cases).
pub const OTHER_DOM: DomId = 7;

/// How long a peer may take unless a test says otherwise.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// The xorshift64 state used when the seed is 0.
pub const ZERO_SEED_STATE: u64 = 0x9E37_79B9_7F4A_7C15;
/// The call-size generator's seed is the data seed XOR this.
pub const CHUNK_SEED_MASK: u64 = 0xA5A5_A5A5_A5A5_A5A5;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("test-support/ has a parent").to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, or `target/` of the workspace).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace().join(dir),
        None => workspace().join("target"),
    }
}

// ---------------------------------------------------------------------------------------------
// The deterministic stream.

/// xorshift64 (13, 7, 17), the generator of the C peer.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded with `seed` (0 means [`ZERO_SEED_STATE`]).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 { ZERO_SEED_STATE } else { seed })
    }

    /// The next output: the state after one step.
    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }
}

/// The data stream of a seed: each generator output as 8 little-endian bytes.
#[derive(Clone, Debug)]
pub struct Stream {
    gen: XorShift,
    word: [u8; 8],
    used: usize,
}

impl Stream {
    /// The stream of `seed`, from its first byte.
    pub fn new(seed: u64) -> Stream {
        Stream { gen: XorShift::new(seed), word: [0; 8], used: 8 }
    }

    /// Fills `out` with the next bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() && self.used < 8 {
            out[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        let mut words = out[i..].chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.gen.next_u64().to_le_bytes());
        }
        let rest = words.into_remainder();
        if !rest.is_empty() {
            self.word = self.gen.next_u64().to_le_bytes();
            rest.copy_from_slice(&self.word[..rest.len()]);
            self.used = rest.len();
        }
    }

    /// Checks `got`, the next bytes of a received stream, that starts at stream offset
    /// `offset`; the first difference as `(offset, expected, got)`.
    pub fn check(&mut self, offset: u64, got: &[u8]) -> Result<(), (u64, u8, u8)> {
        let mut want = vec![0; got.len()];
        self.fill(&mut want);
        if want == got {
            return Ok(());
        }
        match want.iter().zip(got).position(|(w, g)| w != g) {
            None => Ok(()),
            Some(i) => Err((offset + i as u64, want[i], got[i])),
        }
    }
}

/// The first `n` bytes of the stream of `seed`.
pub fn stream_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    Stream::new(seed).fill(&mut out);
    out
}

/// Writes the first `n` bytes of the stream of `seed` to a new file at `path` (the input of a
/// program that sends the stream from its stdin).
pub fn write_stream_file(path: &Path, seed: u64, n: u64) {
    use std::io::Write;
    let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    let mut out = std::io::BufWriter::new(file);
    let (mut stream, mut chunk, mut left) = (Stream::new(seed), vec![0; 1 << 20], n);
    while left > 0 {
        let len = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        stream.fill(&mut chunk[..len]);
        out.write_all(&chunk[..len]).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        left -= len as u64;
    }
    out.flush().unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Reads `input` to its end, checking it against the stream of `seed`: the number of bytes,
/// or where it first differs (`data mismatch at offset N: expected X, got Y`).
pub async fn check_stream(mut input: impl AsyncRead + Unpin, seed: u64) -> Result<u64, String> {
    let (mut stream, mut buf, mut offset) = (Stream::new(seed), vec![0; 1 << 20], 0u64);
    loop {
        let n = input.read(&mut buf).await.map_err(|e| format!("read failed after {offset} bytes: {e}"))?;
        if n == 0 {
            return Ok(offset);
        }
        stream.check(offset, &buf[..n]).map_err(mismatch)?;
        offset += n as u64;
    }
}

/// A [`Stream::check`] failure as the C peer words it.
pub fn mismatch((offset, want, got): (u64, u8, u8)) -> String {
    format!("data mismatch at offset {offset}: expected {want:#04x}, got {got:#04x}")
}

/// Which side of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `libxenvchan_server_init`: shares the pages, writes the Xenstore entries.
    Server,
    /// `libxenvchan_client_init`: maps them.
    Client,
}

impl Side {
    /// The role word of the C peer's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

/// The seed of the data `side` sends under the test seed `seed`: the server sends `seed`, the
/// client `seed + 1`, so the two directions differ.
pub fn data_seed(side: Side, seed: u64) -> u64 {
    match side {
        Side::Server => seed,
        Side::Client => seed.wrapping_add(1),
    }
}

/// The call sizes a peer draws: `1 + s % max_chunk` from a generator seeded with
/// `seed ^ CHUNK_SEED_MASK` (the C peer then clamps to what is left, and in packet mode to
/// half the ring).
#[derive(Clone, Debug)]
pub struct ChunkSizes {
    gen: XorShift,
    max_chunk: u64,
}

impl ChunkSizes {
    /// The sizes of test seed `seed`, at most `max_chunk` (≥ 1).
    pub fn new(seed: u64, max_chunk: u64) -> ChunkSizes {
        assert!(max_chunk > 0, "max_chunk must be at least 1");
        ChunkSizes { gen: XorShift::new(seed ^ CHUNK_SEED_MASK), max_chunk }
    }
}

impl Iterator for ChunkSizes {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        Some(1 + self.gen.next_u64() % self.max_chunk)
    }
}

// ---------------------------------------------------------------------------------------------
// What the tests need from the machine, found or built once per test binary.

/// What is missing for the C peer (for [`crate::missing_peer`]), if anything.
fn c_toolchain_missing() -> Option<String> {
    if let Some(gcc) = crate::first_missing(&["gcc"]) {
        return Some(format!("{gcc}: no C compiler to build the vchan peer (apt-get install gcc)"));
    }
    let header = Path::new("/usr/include/libxenvchan.h");
    let library = ["/usr/lib/x86_64-linux-gnu/libxenvchan.so", "/usr/lib/aarch64-linux-gnu/libxenvchan.so"];
    if !header.exists() || !library.iter().any(|lib| Path::new(lib).exists()) {
        return Some("Xen's libxenvchan is not installed (apt-get install libxen-dev libxenmisc4.17)".to_string());
    }
    None
}

/// Compiles `tests/vchan/peer.c` into `<target>/vchan-peer/peer` (every test binary compiles
/// it again: it takes a fraction of a second and is never stale). `Err` is why it cannot be
/// built here.
fn build_c_peer() -> Result<PathBuf, String> {
    build_vchan_program("tests/vchan/peer.c", "vchan-peer", "peer")
}

/// Compiles the C program `source` (relative to the workspace) against Xen's libxenvchan into
/// `<target>/<dir>/<name>`. `Err` is why it cannot be built here (no gcc or libxen-dev); a
/// compile error in the program itself panics, as a bug of ours, not a missing peer.
pub fn build_vchan_program(source: &str, dir: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(missing) = c_toolchain_missing() {
        return Err(missing);
    }
    let dir = target_dir().join(dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = dir.join(name);
    // Built under a private name then renamed: concurrent runs never run half a binary.
    let partial = dir.join(format!("{name}.{}", std::process::id()));
    let source = workspace().join(source);
    let output = std::process::Command::new("gcc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&partial)
        .arg(&source)
        .arg("-lxenvchan")
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !output.status.success() {
        panic!("gcc {} failed ({}):\n{}", source.display(), output.status, String::from_utf8_lossy(&output.stderr));
    }
    std::fs::rename(&partial, &out).map_err(|e| format!("cannot rename {}: {e}", partial.display()))?;
    Ok(out)
}

/// The C peer, built once per test binary; `Err` says what is missing.
pub fn c_peer() -> Result<&'static Path, &'static str> {
    static PEER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PEER.get_or_init(build_c_peer).as_deref().map_err(String::as_str)
}

/// The directory holding the simulation's `libxengnttab.so.1` and `libxenevtchn.so.1`:
/// `VPROTO_VCHAN_SIM_LIBS` when set, else what `cargo xtask vchan-sim` builds (run once per
/// test binary; `cargo xtask test` has run it already, so it only checks they are current).
pub fn sim_libs() -> &'static Path {
    static LIBS: OnceLock<PathBuf> = OnceLock::new();
    LIBS.get_or_init(|| {
        if let Some(dir) = std::env::var_os("VPROTO_VCHAN_SIM_LIBS") {
            return PathBuf::from(dir);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = std::process::Command::new(cargo)
            .args(["xtask", "vchan-sim"])
            .current_dir(workspace())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo xtask vchan-sim: {e}"));
        assert!(
            output.status.success(),
            "cargo xtask vchan-sim failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let dir = target_dir().join("vchan-sim");
        for lib in ["libxengnttab.so.1", "libxenevtchn.so.1"] {
            assert!(dir.join(lib).exists(), "cargo xtask vchan-sim did not build {}", dir.join(lib).display());
        }
        dir
    })
}

// ---------------------------------------------------------------------------------------------
// The rendezvous.

/// Which Xenstore server a [`Rendezvous`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Xenstored {
    /// vproto's xenstored in the test process (`vproto_xenstore::server`).
    InProcess,
    /// `PROGRAM xenstored --socket … --domain 5=… --domain 7=…` as a child process: the
    /// `vproto` binary (`env!("CARGO_BIN_EXE_vproto")`), for the end-to-end tests.
    Program(PathBuf),
}

/// The running Xenstore server of a rendezvous.
enum RunningServer {
    InProcess(RunningXenstored),
    Process(Child),
}

/// Xenstore (vproto's xenstored, in-process or as a `vproto xenstored` process) and a
/// simulation directory shared by the peers of one test: dom0 and the guests [`CLIENT_DOM`] and
/// [`OTHER_DOM`].
pub struct Rendezvous {
    dir: tempfile::TempDir,
    xenstored: RunningServer,
    next_name: AtomicU32,
}

impl std::fmt::Debug for Rendezvous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendezvous").field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

impl Rendezvous {
    /// Starts Xenstore in-process and builds what the C peer needs (the peer itself, the
    /// simulation libraries). `None` when gcc or libxenvchan is missing, after
    /// [`crate::missing_peer`] (which fails the test under `CI`).
    pub async fn start() -> Option<Rendezvous> {
        Rendezvous::start_with(Xenstored::InProcess, true).await
    }

    /// Starts Xenstore in-process and builds the simulation libraries, for tests that run no C
    /// program.
    pub async fn start_without_c_peer() -> Rendezvous {
        Rendezvous::start_with(Xenstored::InProcess, false).await.expect("no C peer asked for")
    }

    /// Starts `xenstored` and builds the simulation libraries, and the C peer when
    /// `needs_c_peer`: `None` when that cannot be built, after [`crate::missing_peer`].
    pub async fn start_with(xenstored: Xenstored, needs_c_peer: bool) -> Option<Rendezvous> {
        if needs_c_peer {
            if let Err(missing) = c_peer() {
                crate::missing_peer(missing);
                return None;
            }
        }
        sim_libs();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sim")).expect("sim dir");
        let socket = |domid: DomId| dir.path().join(format!("dom{domid}.sock"));
        let guests = [CLIENT_DOM, OTHER_DOM];
        let xenstored = match xenstored {
            Xenstored::InProcess => {
                let domains = guests
                    .into_iter()
                    .map(|domid| DomainSocket { domid: u32::from(domid), path: socket(domid) })
                    .collect();
                let config = XenstoredConfig { socket: socket(SERVER_DOM), domains, quotas: Quotas::default() };
                RunningServer::InProcess(server::serve(config).await.expect("xenstored"))
            }
            Xenstored::Program(program) => {
                let mut command = Command::new(&program);
                command.arg("xenstored").arg("--socket").arg(socket(SERVER_DOM));
                for domid in guests {
                    command.arg("--domain").arg(format!("{domid}={}", socket(domid).display()));
                }
                let log = std::fs::File::create(dir.path().join("xenstored.log")).expect("xenstored.log");
                command.stderr(log);
                RunningServer::Process(start_xenstored_process(command).await)
            }
        };
        Some(Rendezvous { dir, xenstored, next_name: AtomicU32::new(0) })
    }

    /// The Xenstore socket of a domain's connections (dom0's is privileged).
    pub fn xenstore_socket(&self, domid: DomId) -> PathBuf {
        assert!([SERVER_DOM, CLIENT_DOM, OTHER_DOM].contains(&domid), "no Xenstore socket for domain {domid}");
        self.dir.path().join(format!("dom{domid}.sock"))
    }

    /// `VPROTO_SIM_DIR`: where the simulated domains keep their grants and ports.
    pub fn sim_dir(&self) -> PathBuf {
        self.dir.path().join("sim")
    }

    /// A scratch directory of the test (removed with the rendezvous).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh Xenstore path for a channel served by `server`:
    /// `/local/domain/<server>/data/vchan/<name>-<n>`. Absolute, as clients need it, and short:
    /// libxenvchan builds `<path>/event-channel` in 64 bytes.
    pub fn vchan_path(&self, server: DomId, name: &str) -> String {
        let n = self.next_name.fetch_add(1, Ordering::Relaxed);
        let path = format!("/local/domain/{server}/data/vchan/{name}-{n}");
        assert!(path.len() + "/event-channel".len() < 64, "{path}: too long for libxenvchan");
        path
    }

    /// The environment of a process of domain `domid`: `VPROTO_SIM_DOMID`, `VPROTO_SIM_DIR`,
    /// `XENSTORED_PATH` and `LD_LIBRARY_PATH`.
    pub fn env(&self, domid: DomId) -> Vec<(&'static str, OsString)> {
        vec![
            ("VPROTO_SIM_DOMID", domid.to_string().into()),
            ("VPROTO_SIM_DIR", self.sim_dir().into_os_string()),
            ("XENSTORED_PATH", self.xenstore_socket(domid).into_os_string()),
            ("LD_LIBRARY_PATH", sim_libs().as_os_str().to_owned()),
        ]
    }

    /// `program` with [`Rendezvous::env`] of `domid` (and without `XENSTORED_RUNDIR`, which
    /// would override the socket).
    pub fn command(&self, domid: DomId, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env(domid)).env_remove("XENSTORED_RUNDIR").kill_on_drop(true);
        command
    }

    /// A Xenstore connection as domain `domid` (for a Rust side).
    pub async fn xenstore(&self, domid: DomId) -> Xenstore {
        let socket = self.xenstore_socket(domid);
        Xenstore::connect(&XenstoreAddr::Unix(socket.clone()))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()))
    }

    /// The simulation backend of domain `domid` in this rendezvous's directory (for a Rust
    /// side; the C peers get the same through [`Rendezvous::env`]).
    pub fn sim_backend(&self, domid: DomId) -> Arc<dyn Backend> {
        Arc::new(SimBackend::new(self.sim_dir(), domid).expect("sim backend"))
    }

    /// Waits until `node` exists in Xenstore (read as dom0, woken by a watch on it): a server
    /// that publishes no "ready" line of its own has published its channel when
    /// `<path>/event-channel` exists.
    pub async fn wait_for_node(&self, node: &str) {
        let xs = self.xenstore(SERVER_DOM).await;
        let mut watch = xs.watch(node, "vproto-test-wait-for-node").await.expect("watch");
        let appeared = async {
            while xs.read(node).await.is_err() {
                watch.next().await.expect("the watch ended");
            }
        };
        if timeout(PEER_TIMEOUT, appeared).await.is_err() {
            panic!("{node} did not appear within {PEER_TIMEOUT:?}");
        }
        let _ = watch.unwatch().await;
    }

    /// A Xenstore connection as domain `domid` whose traffic the returned [`XsTap`] sees: a
    /// test can tell where a Rust side that uses it has got to (a client that found no server
    /// and now waits on its watch).
    pub async fn xenstore_tapped(&self, domid: DomId) -> (Xenstore, XsTap) {
        let socket = self.xenstore_socket(domid);
        let upstream = tokio::net::UnixStream::connect(&socket)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()));
        let (ours, theirs) = tokio::net::UnixStream::pair().expect("socketpair");
        let (tap, replies) = tokio::sync::watch::channel(Vec::new());
        let (gate, mut gate_rx) = tokio::sync::watch::channel(Gate::Open);
        let (holding, held) = tokio::sync::watch::channel(false);
        let (mut from_server, mut to_server) = upstream.into_split();
        let (mut from_client, mut to_client) = theirs.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
            let _ = to_server.shutdown().await;
        });
        tokio::spawn(async move {
            // Frame by frame (a 16-byte header: type, request id, transaction id, length), each
            // reply's type recorded once it is on its way to the client; the one XsTap::hold
            // names waits for XsTap::release first.
            let mut header = [0u8; 16];
            let mut seen = std::collections::HashMap::<u32, usize>::new();
            while from_server.read_exact(&mut header).await.is_ok() {
                let word = |i: usize| u32::from_le_bytes(header[4 * i..4 * i + 4].try_into().expect("4 bytes"));
                let mut payload = vec![0; word(3) as usize];
                if from_server.read_exact(&mut payload).await.is_err() {
                    break;
                }
                let count = seen.entry(word(0)).or_default();
                *count += 1;
                let hold = *gate_rx.borrow() == Gate::HoldAt(word(0), *count);
                if hold {
                    holding.send_replace(true);
                    let _ = gate_rx.wait_for(|gate| *gate == Gate::Open).await;
                    holding.send_replace(false);
                }
                if to_client.write_all(&header).await.is_err() || to_client.write_all(&payload).await.is_err() {
                    break;
                }
                tap.send_modify(|types| types.push(word(0)));
            }
            let _ = to_client.shutdown().await;
        });
        (Xenstore::from_stream(ours, XenstoreAddr::Unix(socket)), XsTap { replies, gate, held })
    }

    /// Stops Xenstore.
    pub async fn shutdown(self) {
        match self.xenstored {
            RunningServer::InProcess(xenstored) => xenstored.shutdown().await,
            RunningServer::Process(mut child) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }
}

/// Starts a `vproto xenstored` command (its stderr set by the caller) and waits until it
/// printed its dom0 socket (it is listening then); killed when dropped.
async fn start_xenstored_process(mut command: Command) -> Child {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    match timeout(PEER_TIMEOUT, stdout.next_line()).await {
        Ok(Ok(Some(line))) if !line.trim().is_empty() => {}
        other => {
            let _ = child.start_kill();
            panic!("{command:?} did not start listening: {other:?}, {:?}", child.wait().await);
        }
    }
    // Nothing more is printed; the pipe stays open so that the server never gets EPIPE.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    child
}

/// Xenstore message types ([`XsTap`]).
pub mod xs_type {
    /// `XS_READ`.
    pub const READ: u32 = 2;
    /// `XS_WATCH`.
    pub const WATCH: u32 = 4;
    /// `XS_WATCH_EVENT`.
    pub const WATCH_EVENT: u32 = 15;
    /// `XS_ERROR`: a request failed (`ENOENT`, `EACCES`, ...).
    pub const ERROR: u32 = 16;
}

/// What the tap does with the next message for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    /// Passes everything.
    Open,
    /// Holds the n-th (from 1) message of this type, and so all after it, until opened.
    HoldAt(u32, usize),
}

/// The types of the messages a tapped Xenstore connection received
/// ([`Rendezvous::xenstore_tapped`]), in order; it can also hold one back, to order a client's
/// view of Xenstore against what other parties do meanwhile.
#[derive(Debug)]
pub struct XsTap {
    replies: tokio::sync::watch::Receiver<Vec<u32>>,
    gate: tokio::sync::watch::Sender<Gate>,
    held: tokio::sync::watch::Receiver<bool>,
}

impl XsTap {
    /// Holds back the `nth` (from 1, counted since the connection opened) message of type
    /// `msg_type`, and everything after it, until [`XsTap::release`]: the client waits for an
    /// answer the server has already given.
    pub fn hold(&self, msg_type: u32, nth: usize) {
        self.gate.send_replace(Gate::HoldAt(msg_type, nth));
    }

    /// Waits until the message [`XsTap::hold`] named has arrived and is held (within
    /// [`PEER_TIMEOUT`]).
    pub async fn wait_held(&mut self) {
        let held = timeout(PEER_TIMEOUT, self.held.wait_for(|held| *held)).await.map(|r| r.map(drop));
        match held {
            Ok(Ok(())) => {}
            _ => panic!("no message was held within {PEER_TIMEOUT:?}; received {:?}", self.received()),
        }
    }

    /// Lets the held messages through.
    pub fn release(&self) {
        self.gate.send_replace(Gate::Open);
    }

    /// The types received so far ([`xs_type`]).
    pub fn received(&self) -> Vec<u32> {
        self.replies.borrow().clone()
    }

    /// Waits until the received types satisfy `done` (within [`PEER_TIMEOUT`]; `what` names it
    /// when it does not happen).
    pub async fn wait_for(&mut self, what: &str, mut done: impl FnMut(&[u32]) -> bool) {
        let waited = timeout(PEER_TIMEOUT, self.replies.wait_for(|types| done(types))).await.map(|r| r.map(drop));
        match waited {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the tapped Xenstore connection closed before {what}: {:?}", self.received()),
            Err(_) => panic!("not within {PEER_TIMEOUT:?}: {what}; received {:?}", self.received()),
        }
    }

    /// Waits until a client of this connection registered a watch and then got an error back
    /// (`connect` with a wait: the server's entries were missing, and it now waits on the
    /// watch for them).
    pub async fn watching_after_error(&mut self) {
        self.wait_for("a watch, then an error reply", |types| {
            types.iter().position(|t| *t == xs_type::WATCH).is_some_and(|w| types[w..].contains(&xs_type::ERROR))
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The C peer.

/// The C peer's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// Server or client.
    pub side: Side,
    /// The other side's domain (`--domain`).
    pub peer: DomId,
    /// The Xenstore path (`--path`).
    pub path: String,
    /// The server's ring sizes (`--left`, the ring the server reads; `--right`, the one it
    /// writes); the peer's defaults (1024, 2048) when `None`.
    pub rings: Option<(u64, u64)>,
    /// Bytes to send (`--send`).
    pub send: u64,
    /// Bytes to receive and check (`--expect`).
    pub expect: u64,
    /// The test seed (`--seed`).
    pub seed: u64,
    /// The largest call (`--max-chunk`); 65536 when `None`.
    pub max_chunk: Option<u64>,
    /// `--packet`: libxenvchan_send/recv.
    pub packet: bool,
    /// `--no-close`: exit without libxenvchan_close.
    pub no_close: bool,
    /// `--wait-close`: wait for the peer to close before exiting.
    pub wait_close: bool,
}

impl PeerSpec {
    /// A server in the domain it runs in, for a client in `peer`.
    pub fn server(peer: DomId, path: &str) -> PeerSpec {
        PeerSpec::new(Side::Server, peer, path)
    }

    /// A client of the server in `peer`.
    pub fn client(peer: DomId, path: &str) -> PeerSpec {
        PeerSpec::new(Side::Client, peer, path)
    }

    fn new(side: Side, peer: DomId, path: &str) -> PeerSpec {
        PeerSpec {
            side,
            peer,
            path: path.to_string(),
            rings: None,
            send: 0,
            expect: 0,
            seed: 0,
            max_chunk: None,
            packet: false,
            no_close: false,
            wait_close: false,
        }
    }

    /// Ring sizes (server only).
    pub fn rings(mut self, left: u64, right: u64) -> PeerSpec {
        self.rings = Some((left, right));
        self
    }

    /// Bytes to send.
    pub fn send(mut self, bytes: u64) -> PeerSpec {
        self.send = bytes;
        self
    }

    /// Bytes to receive and check.
    pub fn expect(mut self, bytes: u64) -> PeerSpec {
        self.expect = bytes;
        self
    }

    /// The test seed.
    pub fn seed(mut self, seed: u64) -> PeerSpec {
        self.seed = seed;
        self
    }

    /// The largest call.
    pub fn max_chunk(mut self, bytes: u64) -> PeerSpec {
        self.max_chunk = Some(bytes);
        self
    }

    /// Whole packets (libxenvchan_send/recv).
    pub fn packet(mut self) -> PeerSpec {
        self.packet = true;
        self
    }

    /// Exit without closing.
    pub fn no_close(mut self) -> PeerSpec {
        self.no_close = true;
        self
    }

    /// Wait for the peer to close.
    pub fn wait_close(mut self) -> PeerSpec {
        self.wait_close = true;
        self
    }

    /// The arguments after the program name.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![self.side.as_str().to_string()];
        args.extend(["--domain".into(), self.peer.to_string(), "--path".into(), self.path.clone()]);
        if let Some((left, right)) = self.rings {
            args.extend(["--left".into(), left.to_string(), "--right".into(), right.to_string()]);
        }
        let numbers = [("--send", Some(self.send)), ("--expect", Some(self.expect)), ("--seed", Some(self.seed))];
        for (flag, value) in numbers.into_iter().chain([("--max-chunk", self.max_chunk)]) {
            if let Some(value) = value.filter(|v| *v != 0) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        for (flag, set) in [("--packet", self.packet), ("--no-close", self.no_close), ("--wait-close", self.wait_close)]
        {
            if set {
                args.push(flag.to_string());
            }
        }
        args
    }
}

/// The specs of a one-way transfer of `n` bytes at `path` between a server in [`SERVER_DOM`]
/// (rings 4 KiB in, 64 KiB out) and a client in [`CLIENT_DOM`]: `sender` sends, then closes or,
/// with `no_close`, goes without closing; the other side expects the bytes and waits for the
/// close. As `(server, client)`.
pub fn one_way_then_close(path: &str, sender: Side, no_close: bool, n: u64) -> (PeerSpec, PeerSpec) {
    let server = PeerSpec::server(CLIENT_DOM, path).rings(4096, 65536);
    let client = PeerSpec::client(SERVER_DOM, path);
    let (mut server, mut client) = match sender {
        Side::Server => (server.send(n), client.expect(n).wait_close()),
        Side::Client => (server.expect(n).wait_close(), client.send(n)),
    };
    let sends = if sender == Side::Server { &mut server } else { &mut client };
    sends.no_close = no_close;
    (server, client)
}

/// A running C peer, killed when dropped.
pub struct CPeer {
    name: String,
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
    seen: Vec<String>,
}

impl std::fmt::Debug for CPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CPeer").field("name", &self.name).finish_non_exhaustive()
    }
}

impl CPeer {
    /// Starts the C peer in domain `domid` without waiting for it to be ready.
    pub fn spawn(rv: &Rendezvous, domid: DomId, spec: &PeerSpec) -> CPeer {
        let program = c_peer().expect("Rendezvous::start checked that the C peer builds");
        let name = format!("C {} (dom{domid})", spec.side.as_str());
        let mut child = rv
            .command(domid, program)
            .args(spec.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        CPeer { name, child, stdout, stderr, seen: Vec::new() }
    }

    /// Starts the C peer and waits until it printed `ready` (initialised).
    pub async fn start(rv: &Rendezvous, domid: DomId, spec: &PeerSpec) -> CPeer {
        let mut peer = CPeer::spawn(rv, domid, spec);
        peer.ready().await;
        peer
    }

    /// Waits for the `ready` line; panics with the peer's output when it exits first or takes
    /// longer than [`PEER_TIMEOUT`].
    pub async fn ready(&mut self) {
        let line = timeout(PEER_TIMEOUT, self.stdout.next_line()).await;
        match line {
            Ok(Ok(Some(line))) if line == "ready" => {}
            Ok(Ok(Some(line))) => {
                self.seen.push(line);
                let outcome = self.outcome().await;
                panic!("{} printed something other than ready: {outcome}", self.name);
            }
            Ok(_) => {
                let outcome = self.outcome().await;
                panic!("{} ended before it was ready: {outcome}", self.name);
            }
            Err(_) => panic!("{} was not ready within {PEER_TIMEOUT:?}", self.name),
        }
    }

    /// Waits for the peer to exit, within [`PEER_TIMEOUT`].
    pub async fn finish(self) -> Outcome {
        self.finish_within(PEER_TIMEOUT).await
    }

    /// Waits for the peer to exit within `limit`; on timeout kills it and panics with what it
    /// printed.
    pub async fn finish_within(mut self, limit: Duration) -> Outcome {
        match timeout(limit, self.outcome()).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let _ = self.child.start_kill();
                let outcome = self.outcome().await;
                panic!("{} did not finish within {limit:?} (killed): {outcome}", self.name);
            }
        }
    }

    /// Reads what is left of stdout and stderr, and the exit status.
    async fn outcome(&mut self) -> Outcome {
        while let Ok(Some(line)) = self.stdout.next_line().await {
            self.seen.push(line);
        }
        let status = self.child.wait().await.expect("wait for the C peer");
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        let summary = self.seen.iter().rev().find_map(|line| parse_summary(line));
        Outcome {
            name: self.name.clone(),
            status,
            sent: summary.map(|s| s.0),
            received: summary.map(|s| s.1),
            stdout: self.seen.join("\n"),
            stderr,
        }
    }
}

/// Runs a C server and a C client to their end: the server until ready, then the client; their
/// outcomes, server first. Each runs in the domain the other's spec names as its peer.
pub async fn c_pair(rv: &Rendezvous, server: &PeerSpec, client: &PeerSpec) -> (Outcome, Outcome) {
    assert_eq!((server.side, client.side), (Side::Server, Side::Client), "c_pair(server, client)");
    let (server_dom, client_dom) = (client.peer, server.peer);
    let server = CPeer::start(rv, server_dom, server).await;
    let client = CPeer::start(rv, client_dom, client).await.finish().await;
    (server.finish().await, client)
}

/// `{"sent":N,"received":N}`.
fn parse_summary(line: &str) -> Option<(u64, u64)> {
    let body = line.strip_prefix("{\"sent\":")?.strip_suffix('}')?;
    let (sent, received) = body.split_once(",\"received\":")?;
    Some((sent.parse().ok()?, received.parse().ok()?))
}

/// How a C peer ended.
#[derive(Debug)]
pub struct Outcome {
    /// Which peer.
    pub name: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Bytes sent, from its summary line (none when it printed none).
    pub sent: Option<u64>,
    /// Bytes received and checked, from its summary line.
    pub received: Option<u64>,
    /// Its stdout lines after `ready`.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Outcome {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Exit 0 with this summary.
    #[track_caller]
    pub fn assert_ok(&self, sent: u64, received: u64) {
        assert!(self.status.success(), "{self}");
        assert_eq!((self.sent, self.received), (Some(sent), Some(received)), "{self}");
    }

    /// Exit `code`, with `text` in stderr.
    #[track_caller]
    pub fn assert_failed(&self, code: i32, text: &str) {
        assert_eq!(self.code(), Some(code), "{self}");
        assert!(self.stderr.contains(text), "expected {text:?} in stderr: {self}");
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} exited {}; stdout: {:?}; stderr: {:?}", self.name, self.status, self.stdout, self.stderr)
    }
}
