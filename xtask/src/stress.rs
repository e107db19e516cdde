//! `cargo xtask stress [SCENARIO...] [--duration SECONDS] [--connections N]`: load and fault
//! scenarios against real `vproto serve`, `vproto xenstored` and guest agent processes (issue
//! #18, Deliver 3). Each scenario adds rows to one table printed at the end, with the load
//! average before and after, ready to paste into docs/reliability.md ("Load and faults").
//!
//! | scenario | what |
//! |---|---|
//! | `idle` | N idle connections (default 10,000) held by one `vproto serve conductor`, each having made one call: the server's VmRSS delta / N, a call's p50/p99 on another connection meanwhile, and one more connection served; then the server at a 256-descriptor limit under 400 connections (accept backoff on EMFILE) |
//! | `slowloris` | 100 clients sending a byte a second, on line TCP and on HTTP: a well-behaved client's p99 with and without them, and when the server cut them (`Limits::message_timeout`) |
//! | `flood` | 100 clients (nice 19) sending oversized, malformed and too-deep frames as fast as they are answered, against one conductor while a well-behaved client alternates 2 s windows between it and a second, never flooded one: its p99 on each, the ratio, and the CPU shares of the server, the tool and the machine |
//! | `xenstored` | one guest domain at every quota (connections, nodes, value size, watches, transactions): another domain's and dom0's p99 quiet and meanwhile, the refusals counted |
//! | `soak` | conductor, agent and driver (three processes, one flow), xenstored and the guest agent under steady calls and connection churn for `--duration` (default 600 s): each server's VmRSS growth |
//!
//! The guest agent's fault scenario (xenstored restarts, netlink overruns, 1,000 link flaps a
//! second in a network namespace) is `cargo test -p vproto-guest-agent --test agent flaps --
//! --nocapture` (needs root), which prints its figures. Without a scenario, every one but
//! `soak` runs. `vproto` is built with `--release` first (`--vproto PATH` uses another).
//! Everything runs on loopback and Unix sockets; the servers' logs are in a temporary directory
//! named on stderr. The tool raises its own soft open-file limit to the hard one; the servers
//! raise theirs themselves (a listener fits its connection limit, `Limits::max_connections`).

mod clients;

use std::{
    collections::BTreeMap,
    io::{self, Read, Write},
    net::{Shutdown, TcpStream},
    path::PathBuf,
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use clients::{measure, measure_for, HttpClient, Latencies, LineClient, Xs, READ, TRANSACTION_START, WATCH, WRITE};
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

/// The method every JSON-RPC scenario calls: answered from the conductor's memory.
const CALL: &str = "conductor.list_agents";

/// How often a well-behaved client calls while a scenario measures it, quiet or under load
/// (the same pace both times: a server woken from sleep answers slower than a busy one).
const PACE: Duration = Duration::from_millis(2);

/// The flood's alternating windows: this many quiet and as many flooded.
const FLOOD_ROUNDS: usize = 10;

/// How long each window of the flood measures.
const FLOOD_WINDOW: Duration = Duration::from_secs(2);

/// How long the flood runs before the first window measures.
const FLOOD_SETTLE: Duration = Duration::from_millis(500);

/// How long a scenario measures the quiet server.
const QUIET: Duration = Duration::from_secs(10);

/// Runs the scenarios asked for, in order, then prints the table of their figures.
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
    // The idle scenario holds thousands of sockets in this process too.
    let open_files = raise_own_nofile()?;
    let needed = options.connections as u64 + 256;
    if scenarios.iter().any(|s| s == "idle") && open_files < needed {
        return Err(format!(
            "stress idle: {} connections need {needed} open files in this process, and its hard limit is {open_files}; raise it (ulimit -Hn, as root) or pass --connections",
            options.connections
        ));
    }
    let bench = Bench { vproto, dir, table: Mutex::new(Vec::new()) };
    let load_before = load_average();
    for scenario in &scenarios {
        eprintln!("==> stress {scenario}");
        match scenario.as_str() {
            "idle" => bench.idle(options.connections)?,
            "slowloris" => bench.slowloris()?,
            "flood" => {
                bench.flood(50)?;
                bench.flood(1)?;
            }
            "xenstored" => bench.xenstored()?,
            "soak" => bench.soak(Duration::from_secs(options.duration))?,
            _ => unreachable!("checked above"),
        }
    }
    println!();
    println!(
        "`cargo xtask stress {}`, load average (1, 5, 15 min) {load_before} before, {} after:",
        scenarios.join(" "),
        load_average()
    );
    println!();
    println!("| scenario | figure | value |");
    println!("|---|---|---|");
    for (scenario, figure, value) in bench.table.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("| {scenario} | {figure} | {value} |");
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

/// Raises this process's soft open-file limit to its hard limit; the limit it ends with.
fn raise_own_nofile() -> Result<u64, String> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit(RLIMIT_NOFILE): {}", io::Error::last_os_error()));
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(format!("setrlimit(RLIMIT_NOFILE, {}): {}", limit.rlim_max, io::Error::last_os_error()));
        }
        eprintln!("==> open-file limit of this process raised from {} to {}", limit.rlim_cur, limit.rlim_max);
    }
    Ok(limit.rlim_max)
}

/// Sets another process's RLIMIT_NOFILE (soft and hard) with util-linux's `prlimit`.
fn set_nofile(pid: u32, limit: u64) -> Result<(), String> {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limit}:{limit}")])
        .status()
        .map_err(|e| format!("prlimit: {e}"))?;
    if !status.success() {
        return Err(format!("prlimit --pid {pid} --nofile={limit}: {status}"));
    }
    Ok(())
}

/// A process's soft open-file limit, from /proc/PID/limits.
fn soft_nofile(pid: u32) -> Result<String, String> {
    let limits =
        std::fs::read_to_string(format!("/proc/{pid}/limits")).map_err(|e| format!("/proc/{pid}/limits: {e}"))?;
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .ok_or_else(|| format!("/proc/{pid}/limits: no open-file limit"))
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

/// The machine's CPU time so far, in clock ticks: (busy, all), from the `cpu` line of
/// /proc/stat (idle and iowait are the time not busy).
fn machine_ticks() -> Result<(u64, u64), String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let line = stat.lines().find(|line| line.starts_with("cpu ")).ok_or("/proc/stat: no cpu line")?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
    if ticks.len() < 5 {
        return Err(format!("/proc/stat: unreadable cpu line {line:?}"));
    }
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let all: u64 = ticks.iter().take(8).sum();
    Ok((all - ticks[3] - ticks[4], all))
}

/// CPU ticks so far of a server, of this tool and of the whole machine (busy, all cores); the
/// difference of two tells where the CPU went between them.
#[derive(Clone, Copy, Default)]
struct CpuTicks {
    server: u64,
    tool: u64,
    busy: u64,
    all: u64,
}

impl CpuTicks {
    /// The ticks of `server`, of this process and of the machine now.
    fn now(server: u32) -> Result<CpuTicks, String> {
        let (busy, all) = machine_ticks()?;
        Ok(CpuTicks { server: cpu_ticks(server)?, tool: cpu_ticks(std::process::id())?, busy, all })
    }

    /// Adds the ticks spent from `from` to `to`.
    fn add(&mut self, from: CpuTicks, to: CpuTicks) {
        self.server += to.server.saturating_sub(from.server);
        self.tool += to.tool.saturating_sub(from.tool);
        self.busy += to.busy.saturating_sub(from.busy);
        self.all += to.all.saturating_sub(from.all);
    }

    /// Of ticks added up: the server's and the tool's share of one core, the machine's of all.
    fn summary(&self) -> String {
        let cores = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        // All cores' ticks over the cores: the elapsed ticks of one core.
        let elapsed = (self.all as f64 / cores).max(1.0);
        let percent = |ticks: u64| 100.0 * ticks as f64 / elapsed;
        format!(
            "server {:.1}%, stress tool {:.1}% of a core; machine {:.0}% busy ({cores} cores, the rest other processes)",
            percent(self.server),
            percent(self.tool),
            100.0 * self.busy as f64 / (self.all as f64).max(1.0),
        )
    }
}

/// Lowers the calling thread's CPU priority to nice 19 (Linux: `setpriority` on a thread id
/// affects that thread alone), so that load generators do not take the CPU from the client
/// being measured; the server keeps its own priority.
fn nice_this_thread() {
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The `host:port` of a `tcp:HOST:PORT` or `http://HOST:PORT` address.
fn host_port(addr: &str) -> &str {
    addr.trim_start_matches("tcp:").trim_start_matches("http://").trim_end_matches('/')
}

/// Lines of a server's log that contain `needle`.
fn log_lines(log: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(log).map_or(0, |text| text.lines().filter(|line| line.contains(needle)).count())
}

/// What every scenario needs: the binary, a directory for logs and sockets, and the table.
struct Bench {
    vproto: PathBuf,
    dir: PathBuf,
    /// Rows of the table printed at the end: scenario, figure, value.
    table: Mutex<Vec<(String, String, String)>>,
}

impl Bench {
    /// Adds a row to the table (and says it at once on stderr).
    fn row(&self, scenario: &str, figure: &str, value: impl Into<String>) {
        let value = value.into();
        eprintln!("{scenario}: {figure}: {value}");
        self.table.lock().unwrap_or_else(|p| p.into_inner()).push((scenario.into(), figure.into(), value));
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// `vproto serve ARGS`, waiting until it prints its address.
    fn serve(&self, log: &str, args: &[&str]) -> (Process, String) {
        let mut command = Command::new(&self.vproto);
        command.arg("serve").args(args).env("VPROTO_LOG", "warn");
        Process::serving(command, self.log(log), Duration::from_secs(30))
    }

    /// A conductor with its state in memory on `listen`, without credentials.
    fn conductor(&self, log: &str, listen: &str) -> (Process, String) {
        self.serve(log, &["conductor", "--listen", listen, "--state", "memory", "--insecure"])
    }

    fn idle(&self, connections: usize) -> Result<(), String> {
        let (server, addr) = self.conductor("idle-conductor", "tcp:127.0.0.1:0");
        let pid = server.child.id();
        let addr = host_port(&addr).to_string();
        let mut caller = LineClient::tcp(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        measure(500, || caller.call(CALL))?;
        let quiet = measure(2000, || caller.call(CALL))?;
        thread::sleep(Duration::from_secs(1));
        let before = rss_kib(pid)?;
        let start = Instant::now();
        let mut held = Vec::with_capacity(connections);
        for i in 0..connections {
            let mut client = LineClient::tcp(&addr).map_err(|e| format!("idle connection {i}: {e}"))?;
            client.call(CALL).map_err(|e| format!("idle connection {i}: {e}"))?;
            held.push(client);
        }
        let opened = start.elapsed();
        thread::sleep(Duration::from_secs(2));
        let after = rss_kib(pid)?;
        let loaded = measure(2000, || caller.call(CALL))?;
        let mut fresh = LineClient::tcp(&addr).map_err(|e| format!("one more connection: {e}"))?;
        fresh.call(CALL).map_err(|e| format!("connection {}: {e}", connections + 2))?;
        let per_connection = (after.saturating_sub(before) * 1024) as f64 / connections as f64;
        let s = "idle";
        self.row(
            s,
            "connections held (one call each)",
            format!("{connections}, opened in {:.1} s", opened.as_secs_f64()),
        );
        self.row(s, "server's soft open-file limit (raised by itself)", soft_nofile(pid)?);
        self.row(s, "server VmRSS before → after", format!("{before} → {after} KiB"));
        self.row(s, "bytes per idle connection", format!("{per_connection:.0}"));
        self.row(s, "a call on another connection, none held", quiet.summary());
        self.row(s, &format!("a call on another connection, {connections} held"), loaded.summary());
        self.row(s, &format!("connection {} (one more) answered", connections + 2), "yes");
        drop(held);
        drop(server);
        self.descriptor_exhaustion()
    }

    /// A server at 256 descriptors under up to 400 connections: it must not spin while it
    /// cannot accept, and must serve again once connections close.
    fn descriptor_exhaustion(&self) -> Result<(), String> {
        let (server, addr) = self.conductor("emfile-conductor", "tcp:127.0.0.1:0");
        let pid = server.child.id();
        set_nofile(pid, 256)?;
        let addr = host_port(&addr).to_string();
        // Connections the kernel completes (into the listen backlog) whether or not the server
        // accepts, until the backlog is full too.
        let socket: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let mut held: Vec<TcpStream> = Vec::new();
        for _ in 0..400 {
            match TcpStream::connect_timeout(&socket, Duration::from_millis(500)) {
                Ok(stream) => held.push(stream),
                Err(_) => break,
            }
        }
        let completed = held.len();
        thread::sleep(Duration::from_secs(1));
        let ticks = cpu_ticks(pid)?;
        thread::sleep(Duration::from_secs(5));
        let spent = cpu_ticks(pid)? - ticks;
        for stream in held.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let start = Instant::now();
        let answered = loop {
            match LineClient::tcp(&addr).and_then(|mut c| c.call(CALL).map_err(io::Error::other)) {
                Ok(_) => break start.elapsed(),
                Err(_) if start.elapsed() < Duration::from_secs(30) => thread::sleep(Duration::from_millis(20)),
                Err(error) => return Err(format!("no answer 30 s after the connections closed: {error}")),
            }
        };
        let s = "idle";
        self.row(
            s,
            "at 256 descriptors: connections made (of 400 tried, until the backlog was full)",
            completed.to_string(),
        );
        self.row(
            s,
            "at 256 descriptors: server CPU while out of descriptors",
            format!("{spent} ticks (1/100 s) in 5 s"),
        );
        self.row(
            s,
            "at 256 descriptors: answering again after they closed",
            format!("{:.0} ms", answered.as_secs_f64() * 1e3),
        );
        drop(server);
        Ok(())
    }

    fn slowloris(&self) -> Result<(), String> {
        for (name, listen) in [("line TCP", "tcp:127.0.0.1:0"), ("HTTP", "http://127.0.0.1:0")] {
            let http = listen.starts_with("http");
            let log = if http { "slowloris-http" } else { "slowloris-tcp" };
            let (server, addr) = self.conductor(log, listen);
            let addr = host_port(&addr).to_string();
            let mut call: Box<dyn FnMut() -> Result<Duration, String>> = if http {
                let mut client = HttpClient::connect(&addr).map_err(|e| e.to_string())?;
                Box::new(move || client.call(CALL))
            } else {
                let mut client = LineClient::tcp(&addr).map_err(|e| e.to_string())?;
                Box::new(move || client.call(CALL))
            };
            measure(500, &mut call)?;
            let quiet = measure_for(QUIET, PACE, &mut call)?;
            let text: &'static [u8] = if http {
                b"POST /jsonrpc HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            } else {
                b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"conductor.list_agents\",\"params\":{\"slow\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            };
            // Longer than the server's message timeout (30 s), so that it cuts them meanwhile.
            let period = Duration::from_secs(40);
            let loris = {
                let addr = addr.clone();
                thread::spawn(move || slow_clients(&addr, 100, text, period + Duration::from_secs(2)))
            };
            thread::sleep(Duration::from_secs(2));
            let during = measure_for(period, PACE, &mut call)?;
            let (sent, cut) = loris.join().map_err(|_| "the slow-loris thread panicked")??;
            let s = format!("slowloris {name}");
            self.row(&s, "a call, quiet", quiet.summary());
            self.row(&s, "a call, 100 clients sending a byte a second", during.summary());
            self.row(&s, "p99 ratio slow-loris/quiet", format!("{:.2}", during.p99() / quiet.p99()));
            let (first, last) = (cut.iter().min().copied(), cut.iter().max().copied());
            let when = first.zip(last).map_or(String::new(), |(first, last)| {
                format!(", {:.0}-{:.0} s after their first byte", first.as_secs_f64(), last.as_secs_f64())
            });
            self.row(&s, "slow clients cut by the server", format!("{} of 100 ({sent} bytes sent){when}", cut.len()));
            self.row(
                &s,
                "server log lines \"arrives too slowly\"",
                log_lines(&self.log(log), "arrives too slowly").to_string(),
            );
            drop(server);
        }
        Ok(())
    }

    /// 100 clients sending bad frames, each on a connection for `per_connection` frames (1:
    /// a new connection for every frame, which escapes a connection's penalty for them).
    ///
    /// The flood runs throughout against one conductor; the well-behaved client's calls
    /// alternate, in [`FLOOD_ROUNDS`] windows each, between it and a second conductor that is
    /// never flooded (the quiet reference), so that both see the same load from the rest of
    /// the machine (on a shared machine it moves from second to second). The flooders run at
    /// nice 19; the CPU shares of each server, of this tool and of the machine in its windows
    /// tell whose the time is.
    fn flood(&self, per_connection: usize) -> Result<(), String> {
        let (server, addr) = self.conductor(&format!("flood-{per_connection}"), "tcp:127.0.0.1:0");
        let pid = server.child.id();
        let addr = host_port(&addr).to_string();
        let mut caller = LineClient::tcp(&addr).map_err(|e| e.to_string())?;
        measure(500, || caller.call(CALL))?;
        // The same server, never flooded: the quiet reference.
        let (quiet_server, quiet_addr) = self.conductor(&format!("flood-{per_connection}-quiet"), "tcp:127.0.0.1:0");
        let quiet_pid = quiet_server.child.id();
        let mut quiet_caller = LineClient::tcp(host_port(&quiet_addr)).map_err(|e| e.to_string())?;
        measure(500, || quiet_caller.call(CALL))?;
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
                    nice_this_thread();
                    let mut k = i;
                    let go = || !stop.load(Ordering::Relaxed);
                    while go() {
                        let Ok(mut client) = LineClient::tcp(&addr) else {
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        };
                        for _ in 0..per_connection {
                            if !go() {
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
        let (mut quiet, mut during) = (Latencies::default(), Latencies::default());
        let (mut quiet_cpu, mut during_cpu) = (CpuTicks::default(), CpuTicks::default());
        let (mut flood_frames, mut flood_bytes, mut flood_secs) = (0, 0, 0.0);
        thread::sleep(FLOOD_SETTLE);
        for _ in 0..FLOOD_ROUNDS {
            let at = CpuTicks::now(quiet_pid)?;
            quiet.0.extend(measure_for(FLOOD_WINDOW, PACE, || quiet_caller.call(CALL))?.0);
            quiet_cpu.add(at, CpuTicks::now(quiet_pid)?);
            let (frames_at, bytes_at, start, at) =
                (frames.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed), Instant::now(), CpuTicks::now(pid)?);
            during.0.extend(measure_for(FLOOD_WINDOW, PACE, || caller.call(CALL))?.0);
            during_cpu.add(at, CpuTicks::now(pid)?);
            flood_secs += start.elapsed().as_secs_f64();
            flood_frames += frames.load(Ordering::Relaxed) - frames_at;
            flood_bytes += bytes.load(Ordering::Relaxed) - bytes_at;
        }
        let rate = flood_frames as f64 / flood_secs;
        let mib = flood_bytes as f64 / flood_secs / (1024.0 * 1024.0);
        stop.store(true, Ordering::Relaxed);
        for flooder in flooders {
            let _ = flooder.join();
        }
        caller.call(CALL)?;
        let s = &format!("flood, {per_connection} per connection");
        self.row(s, "a call, quiet", quiet.summary());
        self.row(
            s,
            &format!("a call, 100 clients flooding ({rate:.0} bad frames/s answered, {mib:.0} MiB/s)"),
            during.summary(),
        );
        self.row(s, "p99 ratio flood/quiet", format!("{:.2}", during.p99() / quiet.p99()));
        self.row(s, "CPU, quiet server's windows (flood running)", quiet_cpu.summary());
        self.row(s, "CPU, flooded server's windows (flooders at nice 19)", during_cpu.summary());
        drop(server);
        drop(quiet_server);
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
        let (process, _) = Process::serving(command, self.log(log), Duration::from_secs(30));
        (process, dom0, dom1, dom2)
    }

    fn xenstored(&self) -> Result<(), String> {
        let (server, dom0, dom1, dom2) = self.xenstored_process("xenstored");
        let pid = server.child.id();
        let mut guest = Xs::connect(&dom2)?;
        let mut host = Xs::connect(&dom0)?;
        measure(500, || guest.write_read("data/k"))?;
        let quiet_guest = measure_for(QUIET, PACE, || guest.write_read("data/k"))?;
        let quiet_host = measure_for(QUIET, PACE, || host.write_read("/local/domain/0/data/k"))?;
        let rss_before = rss_kib(pid)?;
        let stop = Arc::new(AtomicBool::new(false));
        let refusals = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
        // More connections than domain 1 may hold (32 by default): the rest are refused.
        let abusers: Vec<_> = (0..40)
            .map(|i| {
                let (stop, refusals, dom1) = (stop.clone(), refusals.clone(), dom1.clone());
                thread::spawn(move || abuse(i, &dom1, &stop, &refusals))
            })
            .collect();
        thread::sleep(Duration::from_secs(3));
        let period = Duration::from_secs(15);
        let (abused_guest, abused_host) = thread::scope(|scope| {
            let guest = scope.spawn(|| measure_for(period, PACE, || guest.write_read("data/k")));
            let host = measure_for(period, PACE, || host.write_read("/local/domain/0/data/k"));
            (guest.join().unwrap_or_else(|_| Err("guest thread panicked".into())), host)
        });
        let (abused_guest, abused_host) = (abused_guest?, abused_host?);
        let rss_during = rss_kib(pid)?;
        stop.store(true, Ordering::Relaxed);
        let mut closed = 0;
        for abuser in abusers {
            if let Ok(Err(_)) = abuser.join() {
                closed += 1;
            }
        }
        // The other guest's own quota is whole: it can still create its nodes.
        let mut fresh = Xs::connect(&dom2)?;
        for n in 0..100 {
            fresh.expect_ok(WRITE, format!("data/after{n}\0v").as_bytes())?;
        }
        let s = "xenstored";
        self.row(s, "domain 2 write+read, quiet", quiet_guest.summary());
        self.row(s, "dom0 write+read, quiet", quiet_host.summary());
        self.row(s, "domain 2 while domain 1 (40 connections) sits at every quota", abused_guest.summary());
        self.row(s, "dom0 meanwhile", abused_host.summary());
        self.row(
            s,
            "p99 ratios (abused/quiet)",
            format!(
                "domain 2 {:.2}, dom0 {:.2}",
                abused_guest.p99() / quiet_guest.p99(),
                abused_host.p99() / quiet_host.p99()
            ),
        );
        self.row(s, "server VmRSS before → during", format!("{rss_before} → {rss_during} KiB"));
        let refusals = refusals.lock().unwrap_or_else(|p| p.into_inner());
        let refusals: Vec<String> = refusals.iter().map(|(why, n)| format!("{why} {n}")).collect();
        self.row(s, "refusals to domain 1", refusals.join(", "));
        self.row(s, "domain 1 connections that ended in an error", format!("{closed} of 40"));
        self.row(s, "domain 2 creates 100 nodes afterwards", "yes");
        drop(server);
        Ok(())
    }

    fn soak(&self, duration: Duration) -> Result<(), String> {
        // On loopback TCP without credentials: peers announce and dial host:port endpoints.
        let tcp = "tcp:127.0.0.1:0";
        let (conductor, conductor_addr) = self.serve(
            "soak-conductor",
            &["conductor", "--listen", tcp, "--insecure", "--state", "memory", "--heartbeat-interval", "1"],
        );
        let (agent, agent_addr) = self.serve(
            "soak-agent",
            &[
                "agent",
                "--listen",
                tcp,
                "--insecure",
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
                tcp,
                "--insecure",
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
            let addr = host_port(&addr).to_string();
            let (stop, calls) = (stop.clone(), calls.clone());
            load.push(thread::spawn(move || -> Result<(), String> {
                let mut n = 0u64;
                let connect = || LineClient::tcp(&addr).map_err(|e| format!("{addr}: {e}"));
                let mut client = connect()?;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // A connection made and closed every 20 calls, as short-lived callers do.
                    if n % 20 == 0 {
                        client = connect()?;
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
                        xs.expect_ok(WATCH, b"/local/domain/0/soak\0t\0")?;
                    }
                    xs.expect_ok(WRITE, format!("/local/domain/0/soak/k{}\0v{n}", n % 100).as_bytes())?;
                    xs.expect_ok(READ, format!("/local/domain/0/soak/k{}\0", n % 100).as_bytes())?;
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
        let s = "soak";
        self.row(
            s,
            "measured",
            format!(
                "{:.1} min after {:.0} s of warm-up, {} calls in all",
                start.elapsed().as_secs_f64() / 60.0,
                warm_up.as_secs_f64(),
                calls.load(Ordering::Relaxed)
            ),
        );
        for (i, (name, _)) in servers.iter().enumerate() {
            let growth = last[i] as i64 - first[i] as i64;
            self.row(
                s,
                &format!("{name} VmRSS after warm-up → end (peak), growth"),
                format!("{} → {} KiB ({} KiB), {growth:+} KiB", first[i], last[i], peak[i]),
            );
        }
        drop((conductor, agent, driver, xenstored, guest));
        Ok(())
    }
}

/// `count` connections to `addr`, each sending the next byte of `text` every second, for
/// `period`; the bytes sent, and when (after the first byte) each connection the server
/// closed was found closed.
fn slow_clients(addr: &str, count: usize, text: &[u8], period: Duration) -> Result<(u64, Vec<Duration>), String> {
    let mut open: Vec<TcpStream> = Vec::new();
    for i in 0..count {
        let stream = TcpStream::connect(addr).map_err(|e| format!("slow client {i}: {e}"))?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        open.push(stream);
    }
    let start = Instant::now();
    let (mut sent, mut cut, mut at) = (0u64, Vec::new(), 0usize);
    while start.elapsed() < period && !open.is_empty() {
        open.retain_mut(|stream| {
            // Closed by the server: the end of its input (or a reset).
            let mut byte = [0u8; 1];
            let closed = match stream.read(&mut byte) {
                Ok(0) => true,
                Ok(_) => false,
                Err(error) => error.kind() != io::ErrorKind::WouldBlock,
            };
            if closed || stream.write_all(&[text[at % text.len()]]).is_err() {
                cut.push(start.elapsed());
                return false;
            }
            sent += 1;
            true
        });
        at += 1;
        thread::sleep(Duration::from_secs(1));
    }
    Ok((sent, cut))
}

/// One connection of domain 1 trying every quota once (connections past the domain's quota
/// are refused at their first request), then knocking at each until `stop`; its refusals are
/// counted by error name.
fn abuse(
    i: usize,
    dom1: &std::path::Path,
    stop: &AtomicBool,
    refusals: &Mutex<BTreeMap<String, u64>>,
) -> Result<(), String> {
    let mut xs = Xs::connect(dom1)?;
    let count = |outcome: Result<Vec<u8>, String>| -> Result<(), String> {
        match outcome {
            Ok(_) => Ok(()),
            Err(why) if why.starts_with('E') => {
                *refusals.lock().unwrap_or_else(|p| p.into_inner()).entry(why).or_default() += 1;
                Ok(())
            }
            Err(broken) => Err(broken),
        }
    };
    for n in 0..1100 {
        count(xs.request(WRITE, format!("data/a{i}/n{n}\0v").as_bytes()))?;
    }
    count(xs.request(WRITE, &[b"data/big\0".as_slice(), &[b'x'; 4000]].concat()))?;
    for n in 0..200 {
        count(xs.request(WATCH, format!("data/a{i}/n{n}\0t{n}\0").as_bytes()))?;
    }
    for _ in 0..20 {
        count(xs.request(TRANSACTION_START, b"\0"))?;
    }
    // Then keep knocking at each, and rewrite what it owns (firing its watches).
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        count(xs.request(WRITE, format!("data/new{i}-{n}\0v").as_bytes()))?;
        count(xs.request(TRANSACTION_START, b"\0"))?;
        count(xs.request(WATCH, format!("data/w{n}\0t\0").as_bytes()))?;
        count(xs.request(WRITE, format!("data/a0/n{}\0v{n}", n % 100).as_bytes()))?;
    }
    Ok(())
}
