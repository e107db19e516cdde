//! Benchmark: events from vproto's `EventHub` to 1, 16 and 256 subscribers over a Unix socket,
//! against a raw newline fan-out of the same bytes, in one run (docs/benchmarks.md, "Events").
//!
//! The targets:
//!
//! - `vproto hub`: a `Server` with an `EventHub` on a Unix socket; each subscriber sends
//!   `rpc.subscribe` and reads notification lines, and the publisher calls `hub.publish` with an
//!   event whose `to_params` builds its params map (so the hub writes the JSON, once per
//!   publish);
//! - `raw fan-out`: the least a server can do to send those lines to N Unix sockets: the
//!   publisher formats the very same bytes (checked equal before measuring) and hands them to
//!   one writer task per connection (an unbounded channel, a 64 KiB buffered writer flushed when
//!   its channel is empty), as a server must not let one slow socket hold up the others.
//!
//! The subscribers are the same minimal readers for both (lines split with memchr, the event's
//! `seq` and publish time `t` read from its bytes). Each measurement:
//!
//! 1. **Throughput**: the publisher publishes as fast as it may while staying at most
//!    `VPROTO_BENCH_WINDOW` events (default 128) ahead of the slowest subscriber (so no queue
//!    bound is ever reached: a real publisher does not outrun its readers for long), for
//!    `VPROTO_BENCH_SECS`; then waits until every subscriber has every event. Events per second
//!    = events published / time until the last one reached everyone. Every 16th event's latency
//!    (publish → a subscriber read it) is kept: the latency *under load*.
//! 2. **Latency**: one event at a time (the next is published once every subscriber has read
//!    the last), for half as long: publish → receipt at each subscriber, p50 and p99 over every
//!    receipt.
//!
//! Rounds (`VPROTO_BENCH_ROUNDS`, default 3) run every level with both targets in turn; the
//! table gives medians over the rounds, and the ratio hub / raw is the median of the rounds'
//! ratios. Servers and the publisher run on one tokio runtime, subscribers on another
//! (`VPROTO_BENCH_THREADS` workers each, default the CPU count).
//!
//! Environment: `VPROTO_BENCH_SECS` (default 2), `VPROTO_BENCH_ROUNDS` (3),
//! `VPROTO_BENCH_SUBSCRIBERS` (`1,16,256`), `VPROTO_BENCH_PAYLOAD` (bytes of the event's `pad`
//! string, default 64), `VPROTO_BENCH_WINDOW` (128), `VPROTO_BENCH_THREADS`,
//! `VPROTO_BENCH_FILTER` (only the fan-out whose name contains it, `hub` or `raw`: to profile). Command-line
//! arguments (criterion's, from `cargo xtask bench -- ...`) are ignored.

mod common;

use std::{
    collections::BTreeMap,
    env,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{median, micros, runtime};
use serde_json::{Map, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufWriter},
    net::{UnixListener, UnixStream},
    runtime::Runtime,
    sync::{mpsc, Notify},
    task::JoinHandle,
};
use vproto_jsonrpc::{EventHub, ListenAddr, RunningServer, Server};
use vproto_support::{
    rpc::{
        events::{Event, EventSink},
        BoxFuture, Handler, Params, RpcError,
    },
    wire::{Manifest, WireError},
};

/// The one event published.
const EVENT: &str = "bench.tick";

/// What the environment asks for.
struct Settings {
    measure: Duration,
    levels: Vec<usize>,
    payload: usize,
    window: u64,
    threads: usize,
    rounds: usize,
    /// Only the fan-out whose name contains this (to profile one).
    only: Option<String>,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str| env::var(name).ok().filter(|value| !value.trim().is_empty());
        let number = |name: &str| var(name).and_then(|v| v.trim().parse::<usize>().ok()).filter(|n| *n > 0);
        let secs: f64 = var("VPROTO_BENCH_SECS").and_then(|v| v.parse().ok()).filter(|s| *s > 0.0).unwrap_or(2.0);
        let levels = var("VPROTO_BENCH_SUBSCRIBERS")
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).filter(|n| *n > 0).collect::<Vec<usize>>())
            .filter(|levels| !levels.is_empty())
            .unwrap_or_else(|| vec![1, 16, 256]);
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Settings {
            measure: Duration::from_secs_f64(secs),
            levels,
            payload: var("VPROTO_BENCH_PAYLOAD").and_then(|v| v.parse().ok()).unwrap_or(64),
            window: number("VPROTO_BENCH_WINDOW").unwrap_or(128) as u64,
            threads: number("VPROTO_BENCH_THREADS").unwrap_or(cpus),
            rounds: number("VPROTO_BENCH_ROUNDS").unwrap_or(3),
            only: var("VPROTO_BENCH_FILTER"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The event, and the same bytes written by hand

/// `bench.tick`: `{"pad": "x…x", "seq": N, "t": NANOS}` (keys in order, as serde_json writes
/// a map either way).
#[derive(Debug)]
struct Tick {
    seq: u64,
    t: u64,
    pad: Arc<str>,
}

impl Event for Tick {
    fn name(&self) -> &'static str {
        EVENT
    }

    fn to_params(&self, _manifest: &Manifest) -> Result<Map<String, Value>, WireError> {
        let mut params = Map::new();
        params.insert("pad".into(), Value::String(self.pad.to_string()));
        params.insert("seq".into(), self.seq.into());
        params.insert("t".into(), self.t.into());
        Ok(params)
    }
}

/// The notification line of a tick, formatted directly (what the raw fan-out sends).
fn raw_line(seq: u64, t: u64, pad: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"{EVENT}\",\"params\":{{\"pad\":\"{pad}\",\"seq\":{seq},\"t\":{t}}}}}\n"
    ))
}

/// A server with no methods: only events.
struct NoMethods;

impl Handler for NoMethods {
    fn handle<'a>(&'a self, method: &'a str, _params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        let error = RpcError::method_not_found(method);
        Box::pin(async move { Err(error) })
    }

    fn methods(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------------------------
// The raw fan-out

/// Connections of the raw fan-out server, each fed by its own writer task.
#[derive(Default)]
struct RawFanout {
    connections: Mutex<Vec<mpsc::UnboundedSender<Bytes>>>,
}

impl RawFanout {
    fn connections(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Bytes>>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, line: Bytes) {
        for connection in self.connections().iter() {
            let _ = connection.send(line.clone());
        }
    }
}

async fn raw_accept(listener: UnixListener, fanout: Arc<RawFanout>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (sender, mut lines) = mpsc::unbounded_channel::<Bytes>();
        fanout.connections().push(sender);
        tokio::spawn(async move {
            let mut out = BufWriter::with_capacity(64 * 1024, stream);
            while let Some(line) = lines.recv().await {
                if out.write_all(&line).await.is_err() || (lines.is_empty() && out.flush().await.is_err()) {
                    return;
                }
            }
        });
    }
}

/// What publishes: the hub or the raw fan-out.
#[derive(Clone)]
enum Fanout {
    Hub(EventHub),
    Raw(Arc<RawFanout>),
}

impl Fanout {
    fn publish(&self, seq: u64, t: u64, pad: &Arc<str>) {
        match self {
            Fanout::Hub(hub) => hub.publish(Arc::new(Tick { seq, t, pad: pad.clone() })),
            Fanout::Raw(raw) => raw.publish(raw_line(seq, t, pad)),
        }
    }

    /// Subscribers it serves now.
    fn subscribers(&self) -> usize {
        match self {
            Fanout::Hub(hub) => hub.stats().subscribers,
            Fanout::Raw(raw) => raw.connections().iter().filter(|connection| !connection.is_closed()).count(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The subscribers

/// What the subscribers share with the publisher.
struct Readers {
    /// Per subscriber, the events it has read (the last `seq` + 1).
    received: Vec<AtomicU64>,
    /// Latency samples, nanoseconds, of every subscriber.
    samples: Mutex<Vec<u64>>,
    /// Keep the latency of events whose `seq` is a multiple of this (0: none).
    sample_every: AtomicU64,
    /// Subscribers whose subscription is answered (hub) or who are connected (raw).
    ready: AtomicUsize,
    /// Pulsed after each read, for the publisher waiting for the slowest.
    progress: Notify,
    base: Instant,
}

impl Readers {
    fn slowest(&self) -> u64 {
        self.received.iter().map(|received| received.load(Ordering::Acquire)).min().unwrap_or(0)
    }

    /// Waits until every subscriber has read `count` events.
    async fn reached(&self, count: u64) {
        loop {
            let progress = self.progress.notified();
            if self.slowest() >= count {
                return;
            }
            progress.await;
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// The number after what `key` finds in `line`.
fn number_after(line: &[u8], key: &memchr::memmem::Finder<'_>) -> Option<u64> {
    let at = key.find(line)? + key.needle().len();
    let digits = line[at..].iter().take_while(|byte| byte.is_ascii_digit()).count();
    line[at..at + digits].iter().try_fold(0u64, |n, digit| n.checked_mul(10)?.checked_add(u64::from(digit - b'0')))
}

/// One subscriber: connects, subscribes (hub), and reads lines until the connection ends.
async fn subscriber(path: PathBuf, hub: bool, index: usize, readers: Arc<Readers>) {
    let mut stream = UnixStream::connect(&path).await.expect("the subscriber connects");
    if hub {
        let subscribe = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"rpc.subscribe\",\"params\":{{\"events\":[\"{EVENT}\"]}},\"id\":1}}\n"
        );
        stream.write_all(subscribe.as_bytes()).await.expect("subscribes");
    } else {
        readers.ready.fetch_add(1, Ordering::AcqRel);
    }
    let (seq_key, t_key) = (memchr::memmem::Finder::new(b"\"seq\":"), memchr::memmem::Finder::new(b"\"t\":"));
    let mut buffer = vec![0u8; 64 * 1024];
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        match stream.read(&mut buffer[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        let mut start = 0;
        while let Some(end) = memchr::memchr(b'\n', &buffer[start..filled]) {
            let line = &buffer[start..start + end];
            start += end + 1;
            let Some(seq) = number_after(line, &seq_key) else {
                if memchr::memmem::find(line, b"\"subscribed\"").is_some() {
                    readers.ready.fetch_add(1, Ordering::AcqRel);
                }
                continue;
            };
            readers.received[index].store(seq + 1, Ordering::Release);
            let every = readers.sample_every.load(Ordering::Relaxed);
            if every > 0 && seq % every == 0 {
                let latency = readers.now().saturating_sub(number_after(line, &t_key).unwrap_or(0));
                readers.samples.lock().unwrap_or_else(PoisonError::into_inner).push(latency);
            }
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
        readers.progress.notify_one();
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

#[derive(Clone, Copy, Debug)]
struct Stats {
    events_per_sec: f64,
    loaded_p50: Duration,
    loaded_p99: Duration,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[u64], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    Duration::from_nanos(sorted[at])
}

fn take_samples(readers: &Readers) -> Vec<u64> {
    let mut samples = std::mem::take(&mut *readers.samples.lock().unwrap_or_else(PoisonError::into_inner));
    samples.sort_unstable();
    samples
}

/// Publishes within the window for `duration`, then until everyone has everything; returns the
/// next seq and the events per second.
async fn throughput(
    fanout: &Fanout,
    readers: &Readers,
    pad: &Arc<str>,
    mut seq: u64,
    window: u64,
    duration: Duration,
) -> (u64, f64) {
    let first = seq;
    let start = Instant::now();
    while start.elapsed() < duration {
        let progress = readers.progress.notified();
        let limit = readers.slowest() + window;
        if seq >= limit {
            progress.await;
            continue;
        }
        while seq < limit {
            fanout.publish(seq, readers.now(), pad);
            seq += 1;
        }
    }
    readers.reached(seq).await;
    (seq, (seq - first) as f64 / start.elapsed().as_secs_f64())
}

/// One event at a time for `duration` (at most 20,000); returns the next seq.
async fn one_at_a_time(fanout: &Fanout, readers: &Readers, pad: &Arc<str>, mut seq: u64, duration: Duration) -> u64 {
    let start = Instant::now();
    for _ in 0..20_000 {
        if start.elapsed() >= duration {
            break;
        }
        fanout.publish(seq, readers.now(), pad);
        seq += 1;
        readers.reached(seq).await;
    }
    seq
}

/// One measurement: `subscribers` subscribers of `fanout` at `path`, warm-up, throughput, then
/// latency.
fn measure(
    runtimes: (&Runtime, &Runtime),
    fanout: &Fanout,
    path: &Path,
    subscribers: usize,
    settings: &Settings,
    pad: &Arc<str>,
) -> Stats {
    let (servers, clients) = runtimes;
    let readers = Arc::new(Readers {
        received: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
        samples: Mutex::new(Vec::new()),
        sample_every: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        progress: Notify::new(),
        base: Instant::now(),
    });
    let hub = matches!(fanout, Fanout::Hub(_));
    let tasks: Vec<JoinHandle<()>> = (0..subscribers)
        .map(|index| clients.spawn(subscriber(path.to_path_buf(), hub, index, readers.clone())))
        .collect();
    let publishing = fanout.clone();
    let (pad, window, measure) = (pad.clone(), settings.window, settings.measure);
    let publisher = readers.clone();
    let stats = servers.block_on(servers.spawn(async move {
        let (readers, fanout) = (&*publisher, &publishing);
        while readers.ready.load(Ordering::Acquire) < subscribers || fanout.subscribers() < subscribers {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let warmup = (measure / 4).min(Duration::from_millis(500));
        let (seq, _) = throughput(fanout, readers, &pad, 0, window, warmup).await;
        take_samples(readers);
        readers.sample_every.store(16, Ordering::Relaxed);
        let (seq, events_per_sec) = throughput(fanout, readers, &pad, seq, window, measure).await;
        readers.sample_every.store(0, Ordering::Relaxed);
        let loaded = take_samples(readers);
        readers.sample_every.store(1, Ordering::Relaxed);
        one_at_a_time(fanout, readers, &pad, seq, measure / 2).await;
        readers.sample_every.store(0, Ordering::Relaxed);
        let paced = take_samples(readers);
        Stats {
            events_per_sec,
            loaded_p50: percentile(&loaded, 0.50),
            loaded_p99: percentile(&loaded, 0.99),
            p50: percentile(&paced, 0.50),
            p99: percentile(&paced, 0.99),
        }
    }));
    for task in tasks {
        task.abort();
    }
    let stats = stats.expect("the publisher finished");
    // Every connection gone before the next measurement: the raw writers end with their
    // channels, the hub's connections when they read the end of their subscribers' sockets.
    if let Fanout::Raw(raw) = &fanout {
        raw.connections().clear();
    }
    servers.block_on(async {
        while fanout.subscribers() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    stats
}

fn median_duration(values: impl Iterator<Item = Duration>) -> Duration {
    Duration::from_secs_f64(median(values.map(|d| d.as_secs_f64()).collect()))
}

fn main() {
    let settings = Settings::from_env();
    let servers: Runtime = runtime("servers", settings.threads);
    let clients: Runtime = runtime("subscribers", settings.threads);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let hub_path = dir.path().join("hub.sock");
    let raw_path = dir.path().join("raw.sock");
    let hub = EventHub::new([EVENT]);
    let running: RunningServer = servers.block_on(async {
        let addr = ListenAddr::Unix(hub_path.clone());
        Server::new(NoMethods).with_events(hub.clone()).bind(&addr).await.expect("the hub's server starts")
    });
    let raw = Arc::new(RawFanout::default());
    let listener = servers.block_on(async { UnixListener::bind(&raw_path).expect("the raw server binds") });
    servers.spawn(raw_accept(listener, raw.clone()));

    // The same bytes on both: what a subscriber of the hub reads is the raw fan-out's line.
    let pad: Arc<str> = "x".repeat(settings.payload).into();
    let expected = raw_line(12, 345, &pad);
    let hub_line = clients.block_on(async {
        let mut stream = UnixStream::connect(&hub_path).await.expect("connects");
        let subscribe = b"{\"jsonrpc\":\"2.0\",\"method\":\"rpc.subscribe\",\"id\":1}\n";
        stream.write_all(subscribe).await.expect("subscribes");
        let mut read = Vec::new();
        let mut byte = [0u8; 1];
        while !read.ends_with(b"\n") {
            stream.read_exact(&mut byte).await.expect("the answer");
            read.push(byte[0]);
        }
        hub.publish(Arc::new(Tick { seq: 12, t: 345, pad: pad.clone() }));
        read.clear();
        while !read.ends_with(b"\n") {
            stream.read_exact(&mut byte).await.expect("the event");
            read.push(byte[0]);
        }
        read
    });
    assert_eq!(hub_line, &expected[..], "the raw fan-out sends the hub's bytes");
    servers.block_on(async {
        while hub.stats().subscribers > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });

    println!("Events: publish → N subscribers over a Unix socket, vproto's EventHub against a raw newline fan-out");
    println!(
        "{:?} of throughput (window {} events) and {:?} one at a time per measurement, {} rounds; {} worker threads \
         for the servers and {} for the subscribers; {} CPUs",
        settings.measure,
        settings.window,
        settings.measure / 2,
        settings.rounds,
        settings.threads,
        settings.threads,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("event: {} bytes: {}", expected.len(), String::from_utf8_lossy(&expected).trim_end());
    println!();

    let targets =
        [("vproto hub", Fanout::Hub(hub.clone()), &hub_path), ("raw fan-out", Fanout::Raw(raw.clone()), &raw_path)];
    let mut rounds: Vec<BTreeMap<(usize, &str), Stats>> = Vec::new();
    for round in 0..settings.rounds {
        let mut results = BTreeMap::new();
        for &subscribers in &settings.levels {
            for (name, fanout, path) in &targets {
                if settings.only.as_deref().is_some_and(|only| !name.contains(only)) {
                    continue;
                }
                let stats = measure((&servers, &clients), fanout, path, subscribers, &settings, &pad);
                println!(
                    "round {round}  {subscribers:>3} subscribers  {name:<12} {:>9.0} events/s  loaded p50 {:>8} us p99 \
                     {:>8} us  one at a time p50 {:>8} us p99 {:>8} us",
                    stats.events_per_sec,
                    micros(stats.loaded_p50),
                    micros(stats.loaded_p99),
                    micros(stats.p50),
                    micros(stats.p99)
                );
                results.insert((subscribers, *name), stats);
            }
        }
        rounds.push(results);
    }
    println!();
    println!(
        "| subscribers | fan-out | events/s (median) | min–max over rounds | deliveries/s | p50 µs | p99 µs | under load: \
         p50 µs | p99 µs |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &subscribers in &settings.levels {
        for (name, _, _) in &targets {
            let measured: Vec<Stats> =
                rounds.iter().filter_map(|round| round.get(&(subscribers, *name)).copied()).collect();
            let rates: Vec<f64> = measured.iter().map(|stats| stats.events_per_sec).collect();
            let (low, high) =
                rates.iter().fold((f64::MAX, 0f64), |(low, high), rate| (low.min(*rate), high.max(*rate)));
            let rate = median(rates.clone());
            println!(
                "| {subscribers} | {name} | {rate:.0} | {low:.0}–{high:.0} | {:.0} | {} | {} | {} | {} |",
                rate * subscribers as f64,
                micros(median_duration(measured.iter().map(|stats| stats.p50))),
                micros(median_duration(measured.iter().map(|stats| stats.p99))),
                micros(median_duration(measured.iter().map(|stats| stats.loaded_p50))),
                micros(median_duration(measured.iter().map(|stats| stats.loaded_p99))),
            );
        }
    }
    println!();
    println!("| subscribers | hub / raw events/s (median of rounds; each round) | goal ≥ 0.6 | hub p99 one at a time | goal < 5 ms |");
    println!("|---:|---:|---|---:|---|");
    for &subscribers in &settings.levels {
        let ratios: Vec<f64> = rounds
            .iter()
            .filter_map(|round| {
                let hub = round.get(&(subscribers, "vproto hub"))?;
                let raw = round.get(&(subscribers, "raw fan-out"))?;
                Some(hub.events_per_sec / raw.events_per_sec)
            })
            .collect();
        let each = ratios.iter().map(|ratio| format!("{ratio:.2}")).collect::<Vec<_>>().join(", ");
        let ratio = median(ratios);
        let p99 = median_duration(
            rounds.iter().filter_map(|round| round.get(&(subscribers, "vproto hub"))).map(|stats| stats.p99),
        );
        println!(
            "| {subscribers} | {ratio:.2} ({each}) | {} | {} µs | {} |",
            if ratio >= 0.6 { "met" } else { "NOT met" },
            micros(p99),
            if p99 < Duration::from_millis(5) { "met" } else { "NOT met" }
        );
    }

    servers.block_on(running.shutdown());
    drop(dir);
    servers.shutdown_timeout(Duration::from_secs(1));
    clients.shutdown_timeout(Duration::from_secs(1));
}
