//! `cargo xtask stress [SCENARIO...] [--duration SECONDS] [--connections N]`: load and fault
//! scenarios against real `vproto serve`, `vproto xenstored` and guest agent processes (issue
//! #18, Deliver 3), each printing its figures (docs/reliability.md, "Load and faults").
//!
//! | scenario | what |
//! |---|---|
//! | `idle` | N idle connections (default 10,000) held by one `vproto serve conductor`, each having made one call: the server's VmRSS delta / N, and a call's p50/p99 on another connection meanwhile; then the server at a 256-descriptor limit under 400 connections (accept backoff on EMFILE) |
//! | `slowloris` | 100 clients sending a byte a second, on line TCP and on HTTP: a well-behaved client's p99 with and without them |
//! | `flood` | 100 clients sending oversized, malformed and too-deep frames as fast as they are answered: a well-behaved client's p99 quiet and under the flood, and the ratio |
//! | `xenstored` | one guest domain at every quota (nodes, value size, watches, transactions) over many connections: another domain's and dom0's p99 quiet and meanwhile, the refusals counted |
//! | `soak` | conductor, agent and driver (three processes, one flow), xenstored and the guest agent under steady calls and connection churn for `--duration` (default 600 s): each server's VmRSS growth |
//!
//! The guest agent's fault scenario (xenstored restarts, netlink overruns, 1,000 link flaps a
//! second in a network namespace) is `cargo test -p vproto-guest-agent --test agent flaps --
//! --nocapture` (needs root), which prints its figures. Without a scenario, every one but
//! `soak` runs. `vproto` is built with `--release` first (`--vproto PATH` uses another).
//! Everything runs on loopback and Unix sockets; the servers' logs are in a temporary directory
//! named on stderr.

use std::{
    collections::BTreeMap,
    io::{self, BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpStream},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use vproto_test_support::Process;

/// What `cargo xtask stress` was asked.
pub struct Options {
    /// The scenarios to run (empty: all but `soak`).
    pub scenarios: Vec<String>,
    /// The soak's length in seconds.
    pub duration: u64,
    /// Idle connections of the `idle` scenario.
    pub connections: usize,
    /// The `vproto` binary (default: built with --release).
    pub vproto: Option<PathBuf>,
}

const SCENARIOS: &[&str] = &["idle", "slowloris", "flood", "xenstored", "soak"];

/// Runs the scenarios asked for, in order.
pub fn stress(options: Options) -> Result<(), String> {
    let scenarios: Vec<String> = if options.scenarios.is_empty() {
        SCENARIOS.iter().filter(|s| **s != "soak").map(|s| s.to_string()).collect()
    } else {
        options.scenarios.clone()
    };
    if let Some(unknown) = scenarios.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
        return Err(format!("stress: unknown scenario {unknown:?}; known: {}", SCENARIOS.join(", ")));
    }
    let vproto = match &options.vproto {
        Some(path) => path.clone(),
        None => build_vproto()?,
    };
    let dir = std::env::temp_dir().join(format!("vproto-stress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("==> logs in {}", dir.display());
    let bench = Bench { vproto, dir };
    // The idle scenario holds thousands of sockets in this process too.
    set_nofile(std::process::id(), 65_536)?;
    for scenario in &scenarios {
        eprintln!("==> stress {scenario}");
        match scenario.as_str() {
            "idle" => bench.idle(options.connections)?,
            "slowloris" => bench.slowloris()?,
            "flood" => bench.flood()?,
            "xenstored" => bench.xenstored()?,
            "soak" => bench.soak(Duration::from_secs(options.duration))?,
            _ => unreachable!("checked above"),
        }
    }
    Ok(())
}

fn build_vproto() -> Result<PathBuf, String> {
    crate::run(
        "cargo build --release -p vproto-cli --bin vproto",
        crate::cargo().args(["build", "--release", "-p", "vproto-cli", "--bin", "vproto"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::root().join("target"), |dir| crate::root().join(dir));
    Ok(target.join("release/vproto"))
}

/// Sets a process's RLIMIT_NOFILE (soft and hard) with util-linux's `prlimit`.
fn set_nofile(pid: u32, limit: u64) -> Result<(), String> {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limit}:{limit}")])
        .status()
        .map_err(|e| format!("prlimit: {e}"))?;
    if !status.success() {
        return Err(format!("prlimit --pid {pid} --nofile={limit}: {status} (raising the hard limit needs root)"));
    }
    Ok(())
}

/// A process's resident set in KiB (VmRSS of /proc/PID/status).
fn rss_kib(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status: no VmRSS"))
}

/// A process's CPU time so far (utime + stime), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // After the command: state is field 0; utime 11, stime 12.
    field(11).zip(field(12)).map(|(u, s)| u + s).ok_or_else(|| format!("/proc/{pid}/stat: unreadable"))
}

/// Latencies, summarised as p50/p99/max in milliseconds.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(index).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }

    fn p99(&self) -> f64 {
        self.percentile(0.99)
    }

    fn summary(&self) -> String {
        format!(
            "n {} p50 {:.3} ms p99 {:.3} ms max {:.3} ms",
            self.0.len(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(1.0)
        )
    }
}

/// A line-framed JSON-RPC client on TCP.
struct LineClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_id: u64,
    line: String,
}

impl LineClient {
    fn connect(addr: &str) -> io::Result<LineClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(LineClient { reader: BufReader::new(stream.try_clone()?), writer: stream, next_id: 1, line: String::new() })
    }

    /// Calls `method` without params; the time to its answer, which must be a result.
    fn call(&mut self, method: &str) -> Result<Duration, String> {
        let id = self.next_id;
        self.next_id += 1;
        let request = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}\n");
        let start = Instant::now();
        self.writer.write_all(request.as_bytes()).map_err(|e| format!("{method}: write: {e}"))?;
        self.line.clear();
        self.reader.read_line(&mut self.line).map_err(|e| format!("{method}: read: {e}"))?;
        let took = start.elapsed();
        if !self.line.contains("\"result\"") || !self.line.contains(&format!("\"id\":{id}")) {
            return Err(format!("{method}: not a result for id {id}: {}", self.line.trim()));
        }
        Ok(took)
    }

    /// Writes one raw frame (a newline is added) and reads one answer line.
    fn exchange(&mut self, frame: &[u8]) -> io::Result<usize> {
        self.writer.write_all(frame)?;
        self.writer.write_all(b"\n")?;
        self.line.clear();
        self.reader.read_line(&mut self.line)
    }
}

/// A keep-alive HTTP/1.1 client of `POST /jsonrpc`.
struct HttpClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
    next_id: u64,
}

impl HttpClient {
    fn connect(addr: &str) -> io::Result<HttpClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(HttpClient {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            host: addr.to_string(),
            next_id: 1,
        })
    }

    fn call(&mut self, method: &str) -> Result<Duration, String> {
        let id = self.next_id;
        self.next_id += 1;
        let body = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}");
        let request = format!(
            "POST /jsonrpc HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let start = Instant::now();
        self.writer.write_all(request.as_bytes()).map_err(|e| format!("{method}: write: {e}"))?;
        let mut status = String::new();
        self.reader.read_line(&mut status).map_err(|e| format!("{method}: read: {e}"))?;
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).map_err(|e| format!("{method}: read: {e}"))?;
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().map_err(|_| format!("{method}: bad content-length {value:?}"))?;
                }
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer).map_err(|e| format!("{method}: read: {e}"))?;
        let took = start.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        if !status.contains(" 200 ") || !answer.contains("\"result\"") {
            return Err(format!("{method}: {} {answer}", status.trim()));
        }
        Ok(took)
    }
}

/// `samples` calls of `method` one after the other.
fn measure(samples: usize, mut call: impl FnMut() -> Result<Duration, String>) -> Result<Latencies, String> {
    let mut latencies = Latencies::default();
    for _ in 0..samples {
        latencies.0.push(call()?);
    }
    Ok(latencies)
}

/// Calls until `stop` is set, at most one every `pace`.
fn measure_until(
    stop: &AtomicBool,
    pace: Duration,
    mut call: impl FnMut() -> Result<Duration, String>,
) -> Result<Latencies, String> {
    let mut latencies = Latencies::default();
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        latencies.0.push(call()?);
        if let Some(rest) = pace.checked_sub(start.elapsed()) {
            thread::sleep(rest);
        }
    }
    Ok(latencies)
}

/// The `host:port` of a `tcp:HOST:PORT` or `http://HOST:PORT` address.
fn host_port(addr: &str) -> &str {
    addr.trim_start_matches("tcp:").trim_start_matches("http://").trim_end_matches('/')
}

/// What every scenario needs: the binary and a directory for logs and sockets.
struct Bench {
    vproto: PathBuf,
    dir: PathBuf,
}

impl Bench {
    /// `vproto serve ARGS`, waiting until it prints its address.
    fn serve(&self, log: &str, args: &[&str]) -> (Process, String) {
        let mut command = Command::new(&self.vproto);
        command.arg("serve").args(args).env("VPROTO_LOG", "warn");
        Process::serving(command, self.dir.join(format!("{log}.log")), Duration::from_secs(30))
    }

    /// A conductor with its state in memory on `listen`, without credentials.
    fn conductor(&self, log: &str, listen: &str) -> (Process, String) {
        self.serve(log, &["conductor", "--listen", listen, "--state", "memory", "--insecure"])
    }

    fn idle(&self, connections: usize) -> Result<(), String> {
        let (server, addr) = self.conductor("idle-conductor", "tcp:127.0.0.1:0");
        let pid = server.child.id();
        set_nofile(pid, (connections as u64 + 1024).max(4096))?;
        let addr = host_port(&addr).to_string();
        let mut caller = LineClient::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        measure(500, || caller.call("conductor.list_agents"))?;
        let quiet = measure(2000, || caller.call("conductor.list_agents"))?;
        thread::sleep(Duration::from_secs(1));
        let before = rss_kib(pid)?;
        let start = Instant::now();
        let mut held = Vec::with_capacity(connections);
        for i in 0..connections {
            let mut client = LineClient::connect(&addr).map_err(|e| format!("idle connection {i}: {e}"))?;
            client.call("conductor.list_agents").map_err(|e| format!("idle connection {i}: {e}"))?;
            held.push(client);
        }
        let opened = start.elapsed();
        thread::sleep(Duration::from_secs(2));
        let after = rss_kib(pid)?;
        let loaded = measure(2000, || caller.call("conductor.list_agents"))?;
        let mut fresh = LineClient::connect(&addr).map_err(|e| format!("one more connection: {e}"))?;
        fresh.call("conductor.list_agents")?;
        let per_connection = (after.saturating_sub(before) * 1024) as f64 / connections as f64;
        println!("idle: {connections} connections opened (one call each) in {:.1} s", opened.as_secs_f64());
        println!("idle: server VmRSS {before} KiB before, {after} KiB after: {per_connection:.0} bytes per connection");
        println!("idle: calls on another connection, none held: {}", quiet.summary());
        println!("idle: calls on another connection, {connections} held: {}", loaded.summary());
        drop(held);
        drop(server);
        self.descriptor_exhaustion()
    }

    /// A server at 256 descriptors under 400 connections: it must not spin while it cannot
    /// accept, and must serve again once connections close.
    fn descriptor_exhaustion(&self) -> Result<(), String> {
        let (server, addr) = self.conductor("emfile-conductor", "tcp:127.0.0.1:0");
        let pid = server.child.id();
        set_nofile(pid, 256)?;
        let addr = host_port(&addr).to_string();
        // Connections the kernel completes (the backlog) whether or not the server accepts.
        let mut held: Vec<TcpStream> = Vec::new();
        for i in 0..400 {
            held.push(TcpStream::connect(&addr).map_err(|e| format!("connection {i}: {e}"))?);
        }
        thread::sleep(Duration::from_secs(1));
        let ticks = cpu_ticks(pid)?;
        thread::sleep(Duration::from_secs(5));
        let spent = cpu_ticks(pid)? - ticks;
        for stream in held.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let start = Instant::now();
        let answered = loop {
            match LineClient::connect(&addr).and_then(|mut c| c.call("conductor.list_agents").map_err(io::Error::other))
            {
                Ok(_) => break start.elapsed(),
                Err(_) if start.elapsed() < Duration::from_secs(30) => thread::sleep(Duration::from_millis(20)),
                Err(error) => return Err(format!("no answer 30 s after the connections closed: {error}")),
            }
        };
        println!("idle: at 256 descriptors with 400 connections: {spent} CPU ticks (1/100 s) in 5 s while out of descriptors; answering again {:.0} ms after they closed", answered.as_secs_f64() * 1e3);
        drop(server);
        Ok(())
    }

    fn slowloris(&self) -> Result<(), String> {
        for (name, listen) in [("line TCP", "tcp:127.0.0.1:0"), ("HTTP", "http://127.0.0.1:0")] {
            let http = listen.starts_with("http");
            let (server, addr) = self.conductor(if http { "slowloris-http" } else { "slowloris-tcp" }, listen);
            let addr = host_port(&addr).to_string();
            let mut call: Box<dyn FnMut() -> Result<Duration, String>> = if http {
                let mut client = HttpClient::connect(&addr).map_err(|e| e.to_string())?;
                Box::new(move || client.call("conductor.list_agents"))
            } else {
                let mut client = LineClient::connect(&addr).map_err(|e| e.to_string())?;
                Box::new(move || client.call("conductor.list_agents"))
            };
            measure(500, &mut call)?;
            let quiet = measure(3000, &mut call)?;
            let stop = Arc::new(AtomicBool::new(false));
            let sent = Arc::new(AtomicU64::new(0));
            let loris = {
                let (stop, sent, addr) = (stop.clone(), sent.clone(), addr.clone());
                thread::spawn(move || {
                    let text: &[u8] = if http {
                        b"POST /jsonrpc HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                    } else {
                        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"conductor.list_agents\",\"params\":{\"slow\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                    };
                    let mut streams: Vec<TcpStream> = (0..100).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
                    let mut at = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let byte = [text[at % text.len()]];
                        streams.retain_mut(|s| s.write_all(&byte).is_ok());
                        sent.fetch_add(streams.len() as u64, Ordering::Relaxed);
                        at += 1;
                        thread::sleep(Duration::from_secs(1));
                    }
                    streams.len()
                })
            };
            thread::sleep(Duration::from_secs(2));
            let slow_stop = AtomicBool::new(false);
            let during = thread::scope(|scope| {
                let timer = scope.spawn(|| {
                    thread::sleep(Duration::from_secs(20));
                    slow_stop.store(true, Ordering::Relaxed);
                });
                let during = measure_until(&slow_stop, Duration::from_millis(2), &mut call);
                let _ = timer.join();
                during
            })?;
            stop.store(true, Ordering::Relaxed);
            let still_open = loris.join().map_err(|_| "the slow-loris thread panicked")?;
            println!("slowloris {name}: quiet: {}", quiet.summary());
            println!(
                "slowloris {name}: 100 clients at a byte a second ({} bytes sent, {still_open} still connected): {}",
                sent.load(Ordering::Relaxed),
                during.summary()
            );
            drop(server);
        }
        Ok(())
    }

    fn flood(&self) -> Result<(), String> {
        let (server, addr) = self.conductor("flood-conductor", "tcp:127.0.0.1:0");
        let addr = host_port(&addr).to_string();
        let mut caller = LineClient::connect(&addr).map_err(|e| e.to_string())?;
        measure(500, || caller.call("conductor.list_agents"))?;
        let quiet = measure(3000, || caller.call("conductor.list_agents"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        // Oversized (just past the 1 MiB limit), malformed JSON, not UTF-8, too deep, a
        // wrong request, and a batch of wrong requests: each answered with one error line.
        let oversized = vec![b'x'; 1024 * 1024 + 1];
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes();
        let kinds: Arc<Vec<Vec<u8>>> = Arc::new(vec![
            oversized,
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":".to_vec(),
            b"\xff\xfe\x00garbage\x80".to_vec(),
            deep,
            b"{\"jsonrpc\":\"1.0\",\"id\":[],\"method\":7}".to_vec(),
            b"[1,2,3,{},{\"id\":true}]".to_vec(),
        ]);
        let flooders: Vec<_> = (0..100)
            .map(|i| {
                let (stop, frames, bytes, kinds, addr) =
                    (stop.clone(), frames.clone(), bytes.clone(), kinds.clone(), addr.clone());
                thread::spawn(move || {
                    let mut k = i;
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut client) = LineClient::connect(&addr) else {
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        };
                        for _ in 0..50 {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let frame = &kinds[k % kinds.len()];
                            k += 1;
                            match client.exchange(frame) {
                                Ok(n) if n > 0 => {
                                    frames.fetch_add(1, Ordering::Relaxed);
                                    bytes.fetch_add(frame.len() as u64 + 1, Ordering::Relaxed);
                                }
                                _ => break,
                            }
                        }
                    }
                })
            })
            .collect();
        thread::sleep(Duration::from_secs(2));
        let (frames_at, bytes_at, start) =
            (frames.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed), Instant::now());
        let flood_stop = AtomicBool::new(false);
        let during = thread::scope(|scope| {
            scope.spawn(|| {
                thread::sleep(Duration::from_secs(20));
                flood_stop.store(true, Ordering::Relaxed);
            });
            measure_until(&flood_stop, Duration::from_millis(2), || caller.call("conductor.list_agents"))
        })?;
        let secs = start.elapsed().as_secs_f64();
        let rate = (frames.load(Ordering::Relaxed) - frames_at) as f64 / secs;
        let mib = (bytes.load(Ordering::Relaxed) - bytes_at) as f64 / secs / (1024.0 * 1024.0);
        stop.store(true, Ordering::Relaxed);
        for flooder in flooders {
            let _ = flooder.join();
        }
        println!("flood: quiet: {}", quiet.summary());
        println!("flood: 100 clients, {rate:.0} bad frames/s answered ({mib:.0} MiB/s): {}", during.summary());
        println!("flood: p99 ratio flood/quiet {:.2}", during.p99() / quiet.p99());
        caller.call("conductor.list_agents")?;
        drop(server);
        Ok(())
    }

    /// `vproto xenstored` with guest sockets for domains 1 and 2.
    fn xenstored_process(&self, log: &str) -> (Process, PathBuf, PathBuf, PathBuf) {
        let (dom0, dom1, dom2) = (self.dir.join("xs.sock"), self.dir.join("dom1.sock"), self.dir.join("dom2.sock"));
        let mut command = Command::new(&self.vproto);
        command
            .arg("xenstored")
            .arg("--socket")
            .arg(&dom0)
            .arg("--domain")
            .arg(format!("1={}", dom1.display()))
            .arg("--domain")
            .arg(format!("2={}", dom2.display()))
            .env("VPROTO_LOG", "warn");
        let (process, _) = Process::serving(command, self.dir.join(format!("{log}.log")), Duration::from_secs(30));
        (process, dom0, dom1, dom2)
    }

    fn xenstored(&self) -> Result<(), String> {
        let (server, dom0, dom1, dom2) = self.xenstored_process("xenstored");
        let pid = server.child.id();
        let mut guest = Xs::connect(&dom2)?;
        let mut host = Xs::connect(&dom0)?;
        let work = |xs: &mut Xs, path: &str| -> Result<Duration, String> {
            let start = Instant::now();
            xs.expect_ok(WRITE, 0, &[path.as_bytes(), b"\0value"].concat())?;
            xs.expect_ok(READ, 0, &[path.as_bytes(), b"\0"].concat())?;
            Ok(start.elapsed())
        };
        measure(500, || work(&mut guest, "data/k"))?;
        let quiet_guest = measure(2000, || work(&mut guest, "data/k"))?;
        let quiet_host = measure(2000, || work(&mut host, "/local/domain/0/data/k"))?;
        let rss_before = rss_kib(pid)?;
        let stop = Arc::new(AtomicBool::new(false));
        let refusals = Arc::new(std::sync::Mutex::new(BTreeMap::<String, u64>::new()));
        let abusers: Vec<_> = (0..20)
            .map(|i| {
                let (stop, refusals, dom1) = (stop.clone(), refusals.clone(), dom1.clone());
                thread::spawn(move || -> Result<(), String> {
                    let mut xs = Xs::connect(&dom1)?;
                    let count = |outcome: Result<Vec<u8>, String>| {
                        if let Err(code) = outcome {
                            *refusals.lock().unwrap().entry(code).or_default() += 1;
                        }
                    };
                    // Every quota once: nodes, value size, watches, transactions.
                    for n in 0..1100 {
                        count(xs.request(WRITE, 0, format!("data/a{i}/n{n}\0v").as_bytes()));
                    }
                    count(xs.request(WRITE, 0, &[b"data/big\0".as_slice(), &[b'x'; 4000]].concat()));
                    for n in 0..200 {
                        count(xs.request(WATCH, 0, format!("data/a{i}/n{n}\0t{n}\0").as_bytes()));
                    }
                    for _ in 0..20 {
                        count(xs.request(TRANSACTION_START, 0, b"\0"));
                    }
                    // Then keep knocking at each, and rewrite what it owns (firing its watches).
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        count(xs.request(WRITE, 0, format!("data/new{i}-{n}\0v").as_bytes()));
                        count(xs.request(TRANSACTION_START, 0, b"\0"));
                        count(xs.request(WATCH, 0, format!("data/w{n}\0t\0").as_bytes()));
                        count(xs.request(WRITE, 0, format!("data/a0/n{}\0v{n}", n % 100).as_bytes()));
                    }
                    Ok(())
                })
            })
            .collect();
        thread::sleep(Duration::from_secs(3));
        let during_stop = AtomicBool::new(false);
        let (abused_guest, abused_host) = thread::scope(|scope| {
            scope.spawn(|| {
                thread::sleep(Duration::from_secs(15));
                during_stop.store(true, Ordering::Relaxed);
            });
            let guest =
                scope.spawn(|| measure_until(&during_stop, Duration::from_millis(1), || work(&mut guest, "data/k")));
            let host =
                measure_until(&during_stop, Duration::from_millis(1), || work(&mut host, "/local/domain/0/data/k"));
            (guest.join().unwrap_or_else(|_| Err("guest thread panicked".into())), host)
        });
        let (abused_guest, abused_host) = (abused_guest?, abused_host?);
        let rss_during = rss_kib(pid)?;
        stop.store(true, Ordering::Relaxed);
        let mut failed = Vec::new();
        for abuser in abusers {
            if let Ok(Err(error)) = abuser.join() {
                failed.push(error);
            }
        }
        // The other guest's own quota is whole: it can still create its nodes.
        let mut fresh = Xs::connect(&dom2)?;
        for n in 0..100 {
            fresh.expect_ok(WRITE, 0, format!("data/after{n}\0v").as_bytes())?;
        }
        println!("xenstored: domain 2 quiet: {}", quiet_guest.summary());
        println!("xenstored: dom0 quiet: {}", quiet_host.summary());
        println!("xenstored: domain 2 while domain 1 (20 connections) sits at every quota: {}", abused_guest.summary());
        println!("xenstored: dom0 meanwhile: {}", abused_host.summary());
        println!(
            "xenstored: p99 ratios: domain 2 {:.2}, dom0 {:.2}; server VmRSS {rss_before} -> {rss_during} KiB",
            abused_guest.p99() / quiet_guest.p99(),
            abused_host.p99() / quiet_host.p99()
        );
        println!(
            "xenstored: refusals to domain 1: {:?}; abuser connections closed by the server: {}",
            refusals.lock().unwrap(),
            failed.len()
        );
        drop(server);
        Ok(())
    }

    fn soak(&self, duration: Duration) -> Result<(), String> {
        let sock = |name: &str| format!("unix:{}", self.dir.join(name).display());
        let (conductor, conductor_addr) = self.serve(
            "soak-conductor",
            &["conductor", "--listen", &sock("conductor.sock"), "--state", "memory", "--heartbeat-interval", "1"],
        );
        let (agent, agent_addr) = self.serve(
            "soak-agent",
            &[
                "agent",
                "--listen",
                &sock("agent.sock"),
                "--conductor",
                &conductor_addr,
                "--heartbeat-interval",
                "1",
                "--hello-retry",
                "100ms",
            ],
        );
        let config = crate::root().join("examples/driver.json");
        let (driver, driver_addr) = self.serve(
            "soak-driver",
            &[
                "driver",
                "--listen",
                &sock("driver.sock"),
                "--config",
                &config.display().to_string(),
                "--agent",
                &agent_addr,
                "--hello-retry",
                "100ms",
            ],
        );
        let (xenstored, dom0, _, dom2) = self.xenstored_process("soak-xenstored");
        let mut guest_command = Command::new(&self.vproto);
        guest_command.args(["agent", "--xenstore", &format!("unix:{}", dom2.display())]).env("VPROTO_LOG", "warn");
        let guest = Process::spawn(guest_command, self.dir.join("soak-guest-agent.log"));
        let servers: Vec<(&str, u32)> = vec![
            ("conductor", conductor.child.id()),
            ("agent", agent.child.id()),
            ("driver", driver.child.id()),
            ("xenstored", xenstored.child.id()),
            ("guest agent (vproto agent)", guest.child.id()),
        ];
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let mut load = Vec::new();
        for (addr, method) in [
            (conductor_addr.clone(), "conductor.list_hardware"),
            (agent_addr.clone(), "agent.list_hardware"),
            (driver_addr.clone(), "driver.list_hardware"),
        ] {
            let path = PathBuf::from(addr.trim_start_matches("unix:"));
            let (stop, calls) = (stop.clone(), calls.clone());
            load.push(thread::spawn(move || -> Result<(), String> {
                let mut n = 0u64;
                let mut client = UnixLineClient::connect(&path)?;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // A connection made and closed every 20 calls, as short-lived callers do.
                    if n % 20 == 0 {
                        client = UnixLineClient::connect(&path)?;
                    }
                    client.call(method)?;
                    calls.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(5));
                }
                Ok(())
            }));
        }
        {
            let (stop, calls) = (stop.clone(), calls.clone());
            load.push(thread::spawn(move || -> Result<(), String> {
                let mut n = 0u64;
                let mut xs = Xs::connect(&dom0)?;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if n % 50 == 0 {
                        xs = Xs::connect(&dom0)?;
                        xs.expect_ok(WATCH, 0, b"/local/domain/0/soak\0t\0")?;
                    }
                    xs.expect_ok(WRITE, 0, format!("/local/domain/0/soak/k{}\0v{n}", n % 100).as_bytes())?;
                    xs.expect_ok(READ, 0, format!("/local/domain/0/soak/k{}\0", n % 100).as_bytes())?;
                    calls.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(5));
                }
                Ok(())
            }));
        }
        let warm_up = Duration::from_secs(30).min(duration / 4);
        thread::sleep(warm_up);
        let first: Vec<u64> = servers.iter().map(|(_, pid)| rss_kib(*pid)).collect::<Result<_, _>>()?;
        let mut peak = first.clone();
        let start = Instant::now();
        while start.elapsed() < duration.saturating_sub(warm_up) {
            thread::sleep(Duration::from_secs(10));
            for (i, (_, pid)) in servers.iter().enumerate() {
                peak[i] = peak[i].max(rss_kib(*pid)?);
            }
            eprintln!(
                "soak: {:.0} s, {} calls",
                (start.elapsed() + warm_up).as_secs_f64(),
                calls.load(Ordering::Relaxed)
            );
        }
        let last: Vec<u64> = servers.iter().map(|(_, pid)| rss_kib(*pid)).collect::<Result<_, _>>()?;
        stop.store(true, Ordering::Relaxed);
        for thread in load {
            thread.join().map_err(|_| "a load thread panicked")??;
        }
        let minutes = start.elapsed().as_secs_f64() / 60.0;
        println!(
            "soak: {:.1} min measured after {:.0} s of warm-up, {} calls in all",
            minutes,
            warm_up.as_secs_f64(),
            calls.load(Ordering::Relaxed)
        );
        println!("| server | VmRSS after warm-up (KiB) | at the end (KiB) | peak (KiB) | growth (KiB) |");
        println!("|---|---|---|---|---|");
        for (i, (name, _)) in servers.iter().enumerate() {
            println!("| {name} | {} | {} | {} | {:+} |", first[i], last[i], peak[i], last[i] as i64 - first[i] as i64);
        }
        drop((conductor, agent, driver, xenstored, guest));
        Ok(())
    }
}

/// A line-framed JSON-RPC client on a Unix socket.
struct UnixLineClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl UnixLineClient {
    fn connect(path: &Path) -> Result<UnixLineClient, String> {
        let stream = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(UnixLineClient { reader, writer: stream, next_id: 1 })
    }

    fn call(&mut self, method: &str) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        let request = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}\n");
        self.writer.write_all(request.as_bytes()).map_err(|e| format!("{method}: {e}"))?;
        let mut line = String::new();
        self.reader.read_line(&mut line).map_err(|e| format!("{method}: {e}"))?;
        if !line.contains("\"result\"") {
            return Err(format!("{method}: {}", line.trim()));
        }
        Ok(())
    }
}

const READ: u32 = 2;
const WATCH: u32 = 4;
const TRANSACTION_START: u32 = 6;
const WRITE: u32 = 11;
const ERROR: u32 = 16;
const WATCH_EVENT: u32 = 15;

/// A minimal Xenstore wire client (docs/misc/xenstore.txt): one request at a time, watch
/// events skipped.
struct Xs {
    stream: UnixStream,
    next_id: u32,
}

impl Xs {
    fn connect(path: &Path) -> Result<Xs, String> {
        let stream = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        Ok(Xs { stream, next_id: 1 })
    }

    /// Sends one request; its reply's payload, or the error's name (`ENOSPC`, ...).
    fn request(&mut self, kind: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut frame = Vec::with_capacity(16 + payload.len());
        for word in [kind, id, tx, payload.len() as u32] {
            frame.extend_from_slice(&word.to_le_bytes());
        }
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).map_err(|e| format!("xenstore write: {e}"))?;
        loop {
            let mut header = [0u8; 16];
            self.stream.read_exact(&mut header).map_err(|e| format!("xenstore read: {e}"))?;
            let word = |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
            let mut body = vec![0; word(3) as usize];
            self.stream.read_exact(&mut body).map_err(|e| format!("xenstore read: {e}"))?;
            match word(0) {
                WATCH_EVENT => continue,
                ERROR => return Err(String::from_utf8_lossy(&body).trim_end_matches('\0').to_string()),
                _ if word(1) == id => return Ok(body),
                other => return Err(format!("xenstore: reply {other} for request {} while waiting for {id}", word(1))),
            }
        }
    }

    fn expect_ok(&mut self, kind: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.request(kind, tx, payload).map_err(|error| format!("xenstore request {kind}: {error}"))
    }
}
