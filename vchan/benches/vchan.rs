//! Benchmark: vproto's vchan against Xen's C libxenvchan on the same simulation backend, and
//! JSON-RPC over vchan against JSON-RPC over a Unix socket, all in one run (docs/benchmarks.md,
//! "vchan").
//!
//! - **Bulk**: the server writes 1 GiB in 64 KiB writes, the client reads it; timed by the
//!   client from connecting to the last byte. Rings of 64 KiB and 1 MiB each way.
//! - **Round trip**: the client sends 64 bytes and waits for them to come back, 20,000 times.
//! - **JSON-RPC**: closed-loop `bench.echo` calls through vproto's `Client` to its `Server`
//!   over `vchan:` and `unix:`, 1 and 16 calls in flight, calls per second.
//!
//! Each pair is two processes, server in dom0 and client in dom5 (the simulation's
//! `VPROTO_SIM_DOMID`): the C pair is `bench_peer.c` linked against Debian's libxenvchan and run
//! on the project's drop-in `libxengnttab.so.1`/`libxenevtchn.so.1` (`cargo xtask vchan-sim`);
//! the Rust pair is this binary run again as `--peer`. Xenstore is vproto's own xenstored, in
//! this process. Rounds alternate C and Rust so that they run seconds apart; the ratios are
//! medians of the rounds' ratios.
//!
//! Environment: `VPROTO_BENCH_ROUNDS` (default 3), `VPROTO_BENCH_BULK_BYTES` (default 1 GiB),
//! `VPROTO_BENCH_ROUND_TRIPS` (default 20000), `VPROTO_BENCH_PARTS` (`vchan`, `rpc` or both,
//! comma-separated; default both), `VPROTO_BENCH_SECS` (seconds per JSON-RPC
//! measurement, default 2), `VPROTO_VCHAN_SPIN_US` (the Rust side's spin time; default the
//! library's), `VPROTO_VCHAN_SIM_LIBS` (the simulation libraries' directory; `cargo xtask bench`
//! builds them, default `target/vchan-sim`). Needs gcc and libxen-dev; says what is missing
//! otherwise. Command-line arguments (criterion's, from `cargo xtask bench -- ...`) are ignored.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vproto_jsonrpc::{Client, ClientOptions, ConnectAddr, ListenAddr, Server};
use vproto_support::rpc::{BoxFuture, ClientTransport, Handler, Params, RpcError};
use vproto_test_support::vchan as vchan_harness;
use vproto_vchan::{backend::sim::SimBackend, Backend, ServerOptions};
use vproto_xenstore::{server, Xenstore, XenstoreAddr};

const SERVER_DOM: u16 = 0;
const CLIENT_DOM: u16 = 5;
const CHUNK: usize = 64 * 1024;
const RINGS: [usize; 2] = [64 * 1024, 1024 * 1024];
const PACKET: usize = 64;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--peer") {
        std::process::exit(rust_peer(&args[at + 1..]));
    }
    if let Some(at) = args.iter().position(|a| a == "--rpc-client") {
        rpc_client(&args[at + 1..]);
        return;
    }
    if let Err(why) = run() {
        eprintln!("vchan benchmark: {why}");
        std::process::exit(1);
    }
}

struct Setup {
    dir: tempfile::TempDir,
    c_peer: PathBuf,
    sim_libs: PathBuf,
}

impl Setup {
    fn xs_socket(&self, domid: u16) -> PathBuf {
        self.dir.path().join(format!("xs{domid}"))
    }

    fn sim_dir(&self) -> PathBuf {
        self.dir.path().join("sim")
    }

    /// The environment of a process of domain `domid`.
    fn env(&self, domid: u16) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("VPROTO_SIM_DOMID", domid.to_string().into()),
            ("VPROTO_SIM_DIR", self.sim_dir().into()),
            ("XENSTORED_PATH", self.xs_socket(domid).into()),
            ("LD_LIBRARY_PATH", self.sim_libs.clone().into()),
            ("VPROTO_VCHAN_BACKEND", "sim".into()),
        ]
    }
}

fn prepare() -> Result<Setup, String> {
    let c_peer = vchan_harness::build_vchan_program("vchan/benches/bench_peer.c", "vchan-bench", "bench_peer")?;
    let sim_libs = vchan_harness::sim_libs().to_path_buf();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    Ok(Setup { dir, c_peer, sim_libs })
}

fn run() -> Result<(), String> {
    let setup = prepare()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let config = server::XenstoredConfig {
        socket: setup.xs_socket(SERVER_DOM),
        domains: vec![server::DomainSocket { domid: u32::from(CLIENT_DOM), path: setup.xs_socket(CLIENT_DOM) }],
        quotas: server::Quotas::default(),
    };
    let xenstored = runtime.block_on(server::serve(config)).map_err(|e| e.to_string())?;
    let rounds = env_or("VPROTO_BENCH_ROUNDS", 3usize);
    let bulk_bytes = env_or("VPROTO_BENCH_BULK_BYTES", 1u64 << 30);
    let trips = env_or("VPROTO_BENCH_ROUND_TRIPS", 20_000u64);
    let self_exe = env::current_exe().map_err(|e| e.to_string())?;

    let parts = env::var("VPROTO_BENCH_PARTS").unwrap_or_else(|_| "vchan,rpc".to_string());
    let parts: Vec<&str> = parts.split(',').collect();
    if parts.contains(&"vchan") {
        println!("vchan: C libxenvchan vs vproto-vchan, same simulation backend, {rounds} rounds");
        println!("{:<34} {:>14} {:>14} {:>12}", "measurement", "C", "Rust", "Rust / C");
    }
    let mut path_index = 0;
    for ring in RINGS.into_iter().filter(|_| parts.contains(&"vchan")) {
        let mut bulk = Vec::new();
        let mut trip = Vec::new();
        for _ in 0..rounds {
            let mut pair = |mode: &str, n: u64, m: usize| -> Result<[f64; 2], String> {
                let mut out = [0.0; 2];
                for (slot, program) in [(0, Program::C(&setup.c_peer)), (1, Program::Rust(&self_exe))] {
                    path_index += 1;
                    let path = format!("/local/domain/0/data/bench{path_index}");
                    out[slot] = run_pair(&setup, &program, &path, ring, mode, n, m)?;
                }
                Ok(out)
            };
            let [c, rust] = pair("bulk", bulk_bytes, CHUNK)?;
            bulk.push((bulk_bytes as f64 / c, bulk_bytes as f64 / rust));
            let [c, rust] = pair("pingpong", trips, PACKET)?;
            trip.push((c / trips as f64 / 1000.0, rust / trips as f64 / 1000.0));
        }
        let gbps = |v: f64| format!("{v:.2} GB/s");
        report(&format!("bulk, {} KiB rings", ring / 1024), &bulk, gbps, |c, r| r / c);
        let micros = |v: f64| format!("{v:.2} µs");
        report(&format!("64 B round trip, {} KiB rings", ring / 1024), &trip, micros, |c, r| r / c);
    }

    if !parts.contains(&"rpc") {
        runtime.block_on(xenstored.shutdown());
        return Ok(());
    }
    let secs = env_or("VPROTO_BENCH_SECS", 2.0f64);
    println!();
    println!("JSON-RPC bench.echo through vproto's Client and Server, {rounds} rounds of {secs} s");
    println!("{:<34} {:>14} {:>14} {:>12}", "calls in flight", "unix", "vchan", "vchan / unix");
    for (key, value) in setup.env(SERVER_DOM) {
        // SAFETY (edition 2021 API): set before the server starts any thread that reads it.
        env::set_var(key, value);
    }
    let unix = ListenAddr::Unix(setup.dir.path().join("rpc.sock"));
    let rpc_path = "/local/domain/0/data/rpc";
    let vchan: ListenAddr = format!("vchan:{CLIENT_DOM}:{rpc_path}").parse().map_err(|e| format!("{e}"))?;
    let vchan_client = format!("vchan:{SERVER_DOM}:{rpc_path}");
    let servers = runtime.block_on(async {
        let a = Server::new(Echo).bind(&unix).await?;
        let b = Server::new(Echo).bind(&vchan).await?;
        Ok::<_, vproto_jsonrpc::ServeError>((a, b))
    });
    let servers = servers.map_err(|e| e.to_string())?;
    for in_flight in [1usize, 16] {
        let mut rows = Vec::new();
        for _ in 0..rounds {
            let u = rpc_rate(&setup, &self_exe, &unix.to_string(), secs, in_flight)?;
            let v = rpc_rate(&setup, &self_exe, &vchan_client, secs, in_flight)?;
            rows.push((u, v));
        }
        report(&in_flight.to_string(), &rows, |v| format!("{v:.0}/s"), |u, v| v / u);
    }
    runtime.block_on(async {
        servers.0.shutdown().await;
        servers.1.shutdown().await;
        xenstored.shutdown().await;
    });
    Ok(())
}

/// Prints medians of both columns and the median of the rounds' ratios.
fn report(name: &str, rows: &[(f64, f64)], show: impl Fn(f64) -> String, ratio: impl Fn(f64, f64) -> f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let c = median(rows.iter().map(|r| r.0).collect());
    let r = median(rows.iter().map(|r| r.1).collect());
    let q = median(rows.iter().map(|r| ratio(r.0, r.1)).collect());
    println!("{name:<34} {:>14} {:>14} {:>11.2}×", show(c), show(r), q);
}

enum Program<'a> {
    C(&'a Path),
    Rust(&'a Path),
}

/// Runs a server and a client of `program`, returns the client's nanoseconds.
fn run_pair(
    setup: &Setup,
    program: &Program,
    path: &str,
    ring: usize,
    mode: &str,
    n: u64,
    m: usize,
) -> Result<f64, String> {
    let command = |role: &str, domain: u16, own: u16| {
        let mut command = match program {
            Program::C(exe) => Command::new(exe),
            Program::Rust(exe) => {
                let mut command = Command::new(exe);
                command.arg("--peer");
                command
            }
        };
        command
            .args([role, &domain.to_string(), path, &ring.to_string(), mode, &n.to_string(), &m.to_string()])
            .envs(setup.env(own))
            .stdout(Stdio::piped());
        command
    };
    let mut server = command("server", CLIENT_DOM, SERVER_DOM).spawn().map_err(|e| e.to_string())?;
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.as_mut().expect("piped")), &mut ready)
        .map_err(|e| e.to_string())?;
    if ready.trim() != "ready" {
        let _ = server.kill();
        return Err(format!("the {mode} server did not start"));
    }
    let client = command("client", SERVER_DOM, CLIENT_DOM).output().map_err(|e| e.to_string())?;
    let server_status = server.wait().map_err(|e| e.to_string())?;
    if !client.status.success() || !server_status.success() {
        return Err(format!(
            "{mode} pair failed: client {}, server {server_status}: {}",
            client.status,
            String::from_utf8_lossy(&client.stderr)
        ));
    }
    String::from_utf8_lossy(&client.stdout).trim().parse().map_err(|e| format!("client printed no time: {e}"))
}

/// The Rust twin of bench_peer.c: `--peer server|client DOMAIN XS_PATH RING bulk|pingpong N M`.
fn rust_peer(args: &[String]) -> i32 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match runtime.block_on(rust_peer_async(args)) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("rust peer: {why}");
            3
        }
    }
}

async fn rust_peer_async(args: &[String]) -> Result<(), String> {
    let [role, domain, path, ring, mode, n, m] = args else { return Err("bad arguments".into()) };
    let (domain, ring, n, m): (u16, usize, u64, usize) = (
        domain.parse().map_err(|_| "domain")?,
        ring.parse().map_err(|_| "ring")?,
        n.parse().map_err(|_| "n")?,
        m.parse().map_err(|_| "m")?,
    );
    let backend: Arc<dyn Backend> = Arc::new(SimBackend::from_env().map_err(|e| e.to_string())?);
    let xs = Xenstore::connect(&XenstoreAddr::from_env()).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; m];
    if role == "server" {
        let options = ServerOptions { peer: domain, path: path.clone(), read_min: ring, write_min: ring };
        let mut chan = vproto_vchan::listen(backend, &xs, &options).await.map_err(|e| e.to_string())?;
        spin_from_env(&chan);
        println!("ready");
        chan.accepted().await;
        if mode == "bulk" {
            let mut sent = 0u64;
            while sent < n {
                let len = (n - sent).min(m as u64) as usize;
                chan.write_all(&buf[..len]).await.map_err(|e| e.to_string())?;
                sent += len as u64;
            }
            chan.close().await;
        } else {
            while chan.recv(&mut buf).await.is_ok() {
                if chan.send(&buf).await.is_err() {
                    break;
                }
            }
        }
        return Ok(());
    }
    let mut chan = vproto_vchan::connect(backend, &xs, domain, path, None).await.map_err(|e| e.to_string())?;
    spin_from_env(&chan);
    let start = Instant::now();
    if mode == "bulk" {
        let mut got = 0u64;
        while got < n {
            let r = chan.read(&mut buf).await.map_err(|e| e.to_string())?;
            if r == 0 {
                return Err("the server closed early".into());
            }
            got += r as u64;
        }
    } else {
        for _ in 0..n {
            chan.send(&buf).await.map_err(|e| e.to_string())?;
            chan.recv(&mut buf).await.map_err(|e| e.to_string())?;
        }
    }
    println!("{}", start.elapsed().as_nanos());
    Ok(())
}

fn spin_from_env(chan: &vproto_vchan::Vchan) {
    if let Ok(us) = env::var("VPROTO_VCHAN_SPIN_US") {
        if let Ok(us) = us.parse() {
            chan.set_spin(Duration::from_micros(us));
        }
    }
}

/// Answers `bench.echo` with its params.
struct Echo;

impl Handler for Echo {
    fn handle<'a>(&'a self, _method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            Ok(match params {
                Params::ByName(map) => Value::Object(map),
                Params::ByPosition(items) => Value::Array(items),
                Params::None => Value::Null,
            })
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        vec!["bench.echo"]
    }
}

/// Calls per second of a client process (dom5) against `addr`.
fn rpc_rate(setup: &Setup, exe: &Path, addr: &str, secs: f64, in_flight: usize) -> Result<f64, String> {
    let output = Command::new(exe)
        .args(["--rpc-client", addr, &secs.to_string(), &in_flight.to_string()])
        .envs(setup.env(CLIENT_DOM))
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("rpc client on {addr} failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().map_err(|e| format!("rpc client printed no rate: {e}"))
}

/// `--rpc-client ADDR SECS IN_FLIGHT`: closed-loop calls, prints calls per second.
fn rpc_client(args: &[String]) {
    let [addr, secs, in_flight] = args else { panic!("--rpc-client ADDR SECS IN_FLIGHT") };
    let addr: ConnectAddr = addr.parse().expect("address");
    let secs: f64 = secs.parse().expect("seconds");
    let in_flight: usize = in_flight.parse().expect("in flight");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let rate = runtime.block_on(async move {
        let client = Arc::new(Client::connect(&addr, ClientOptions::default()).await.expect("connect"));
        let params = json!({"payload": "x".repeat(64)});
        // Warm up, then measure.
        for _ in 0..100 {
            client.request("bench.echo", params.clone()).await.expect("call");
        }
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let workers: Vec<_> = (0..in_flight)
            .map(|_| {
                let (client, params) = (client.clone(), params.clone());
                tokio::spawn(async move {
                    let mut calls = 0u64;
                    while Instant::now() < deadline {
                        client.request("bench.echo", params.clone()).await.expect("call");
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        let start = Instant::now();
        let mut calls = 0;
        for worker in workers {
            calls += worker.await.expect("worker");
        }
        calls as f64 / start.elapsed().as_secs_f64()
    });
    println!("{rate}");
}
