//! The guest agent's costs, measured on the real kernel with real processes (`cargo bench -p
//! vproto-cli --bench guest_agent`, as root), for each of its two front ends: `vproto agent` (the
//! release `vproto` binary, every subcommand linked in) and `vproto-guest-agent`, the binary
//! shipped to guests (`cargo xtask guest-agent` builds it; `VPROTO_BENCH_GUEST_AGENT=PATH`
//! measures another build; skipped with a message when it is not built):
//!
//! - latency from a netlink event to the data tree updated: `ip link set va0 down|up` in a
//!   network namespace (sent to a long-running `ip -batch`, so no process start is timed) until
//!   a Xenstore watch on the NIC's `link/admin_up` shows the new value; p50/p99/max over
//!   `VPROTO_BENCH_EVENTS` events (default 400);
//! - the agent's resident memory (`VmRSS`, `VmHWM`, and its split into private `RssAnon` and
//!   file-backed `RssFile`, from /proc/PID/status) after those events;
//! - its CPU while idle: utime + stime (/proc/PID/stat) over `VPROTO_BENCH_IDLE_SECS` (default
//!   10) seconds without events;
//! - the size of its binary.
//!
//! Goals: p99 <= 20 ms, RSS <= 10 MB, no CPU while idle (issue #5); the guest binary's RSS <=
//! 4 MiB (issue #11). Prints a table and whether each goal is met; skips with a message when not
//! root or a tool is missing.

#[path = "../tests/guest_agent_support/mod.rs"]
mod guest_agent_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use guest_agent_support::{skip_reason, start_xenstored, Netns, Process, DEADLINE, VPROTO};
use vproto_xenstore::{Xenstore, XenstoreAddr};

const MAC: &str = "02:00:00:00:00:a0";
const HOME: &str = "/local/domain/9";

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// Fields of /proc/PID/status in KiB, in the order asked.
fn memory_kib<const N: usize>(pid: u32, names: [&str; N]) -> [u64; N] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("agent's /proc status");
    names.map(|name| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    })
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("agent's /proc stat");
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are the 12th and 13th after the command name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100)
}

fn send(batch: &mut ChildStdin, line: &str) {
    batch.write_all(line.as_bytes()).and_then(|()| batch.write_all(b"\n")).and_then(|()| batch.flush()).unwrap();
}

/// One front end of the agent: how to start it.
struct Subject {
    /// As the table names it.
    name: &'static str,
    /// The binary.
    binary: PathBuf,
    /// Arguments before the agent's options (`agent` for `vproto`).
    prefix: &'static [&'static str],
    /// The RSS goal in KiB, and where it comes from.
    rss_goal: (u64, &'static str),
}

/// What one run measured.
struct Measured {
    latencies: Vec<Duration>,
    memory: [u64; 4],
    idle_ticks: u64,
}

/// The shipped guest binary: `$VPROTO_BENCH_GUEST_AGENT`, else what `cargo xtask guest-agent`
/// builds, if it is there.
fn guest_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("VPROTO_BENCH_GUEST_AGENT") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("VPROTO_BENCH_GUEST_AGENT: no file {}", path.display()))
        };
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guest-agent/vproto-guest-agent");
    if let Ok(built) = built.canonicalize() {
        Ok(built)
    } else {
        Err(format!("{} is not built: run `cargo xtask guest-agent` first", built.display()))
    }
}

fn measure(subject: &Subject, events: usize, idle: Duration) -> Measured {
    let netns = Netns::create();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("xenstored.sock");
    let _xenstored = start_xenstored(&netns, &socket, dir.path().join("xenstored.log"));
    netns.ip(&["link", "add", "va0", "address", MAC, "type", "veth", "peer", "name", "vb0"]);
    netns.ip(&["link", "set", "vb0", "up"]);
    let mut command = netns.command(subject.binary.to_str().expect("a UTF-8 path"));
    command.args(subject.prefix).arg("--xenstore").arg(format!("unix:{}", socket.display()));
    command.args(["--domain-path", HOME, "--log", "warn"]);
    let agent = Process::spawn(command, dir.path().join("agent.log"));
    let pid = agent.child.id();

    let mut ip = Command::new("ip")
        .args(["-n", &netns.name, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("ip -batch");
    let mut batch = ip.stdin.take().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let latencies = runtime.block_on(async {
        let xs = Xenstore::connect(&XenstoreAddr::Unix(socket.clone())).await.expect("connect");
        let mangled: String = MAC.chars().map(|c| if c == ':' { '-' } else { c }).collect();
        let path = format!("{HOME}/data/vproto/nics/{mangled}/link/admin_up");
        let mut watch = xs.watch(&path, "bench").await.expect("watch");
        let read = |xs: &Xenstore| {
            let (xs, path) = (xs.clone(), path.clone());
            async move { xs.read(&path).await.ok().map(|value| String::from_utf8_lossy(&value).into_owned()) }
        };
        // The initial publication (va0 down), polled as any reader would.
        let start = Instant::now();
        while read(&xs).await.as_deref() != Some("0") {
            assert!(start.elapsed() < DEADLINE, "the agent did not publish va0: {}", agent.log());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut latencies = Vec::with_capacity(events);
        for n in 0..events + 10 {
            let (command, want) = if n % 2 == 0 { ("link set va0 up", "1") } else { ("link set va0 down", "0") };
            let start = Instant::now();
            send(&mut batch, command);
            loop {
                let event = tokio::time::timeout(DEADLINE, watch.next()).await;
                assert!(matches!(event, Ok(Some(_))), "no watch event for `{command}`: {}", agent.log());
                if read(&xs).await.as_deref() == Some(want) {
                    break;
                }
            }
            // The first events warm up (page faults, first allocations); not counted.
            if n >= 10 {
                latencies.push(start.elapsed());
            }
        }
        latencies
    });
    drop(batch);
    let _ = ip.wait();

    let memory = memory_kib(pid, ["VmRSS", "VmHWM", "RssAnon", "RssFile"]);
    let ticks_before = cpu_ticks(pid);
    std::thread::sleep(idle);
    let idle_ticks = cpu_ticks(pid) - ticks_before;
    Measured { latencies, memory, idle_ticks }
}

fn report(subject: &Subject, measured: &Measured, idle: Duration) {
    let mut sorted = measured.latencies.clone();
    sorted.sort();
    let (p50, p99, max) = (percentile(&sorted, 50.0), percentile(&sorted, 99.0), *sorted.last().unwrap());
    let [rss, hwm, anon, file] = measured.memory;
    let idle_ms = measured.idle_ticks * 1000 / clock_ticks_per_second();
    let size = std::fs::metadata(&subject.binary).map(|meta| meta.len()).unwrap_or(0);
    let (goal_kib, goal_name) = subject.rss_goal;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "{} ({}), netlink event -> Xenstore tree updated, {} events, veth in a netns",
        subject.name,
        subject.binary.display(),
        sorted.len()
    );
    println!("  latency p50 {:>10}", ms(p50));
    println!("  latency p99 {:>10}   goal <= 20 ms: {}", ms(p99), verdict(p99 <= Duration::from_millis(20)));
    println!("  latency max {:>10}", ms(max));
    println!("  VmRSS  {:>8} KiB   goal <= {goal_name}: {}", rss, verdict(rss <= goal_kib));
    println!("  VmHWM  {:>8} KiB", hwm);
    println!(
        "  of which RssAnon {anon} KiB (private), RssFile {file} KiB (pages of the binary and its shared libraries)"
    );
    println!(
        "  CPU idle {} ticks ({idle_ms} ms) over {:?}   goal 0: {}",
        measured.idle_ticks,
        idle,
        verdict(measured.idle_ticks == 0)
    );
    println!("  binary {:.1} MB ({size} bytes)", size as f64 / 1e6);
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name this benchmark skips it.
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    if !args.is_empty() && !args.iter().any(|filter| "guest_agent".contains(filter.as_str())) {
        return;
    }
    if let Some(reason) = skip_reason() {
        eprintln!("guest_agent benchmark SKIPPED: {reason}");
        return;
    }
    let events = env_number("VPROTO_BENCH_EVENTS", 400) as usize;
    let idle = Duration::from_secs(env_number("VPROTO_BENCH_IDLE_SECS", 10));

    let mut subjects = vec![Subject {
        name: "vproto agent",
        binary: PathBuf::from(VPROTO),
        prefix: &["agent"],
        rss_goal: (10 * 1024, "10 MB"),
    }];
    match guest_binary() {
        Ok(binary) => {
            subjects.push(Subject { name: "vproto-guest-agent", binary, prefix: &[], rss_goal: (4 * 1024, "4 MiB") })
        }
        Err(why) => eprintln!("vproto-guest-agent SKIPPED: {why}"),
    }
    for subject in &subjects {
        let measured = measure(subject, events, idle);
        report(subject, &measured, idle);
    }
}
