//! The clients the stress scenarios drive servers with (line JSON-RPC on TCP or a Unix
//! socket, HTTP/1.1 keep-alive, the Xenstore wire protocol), and latency bookkeeping.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::TcpStream,
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

/// How long a client waits for an answer before the scenario fails.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Latencies of calls, summarised as percentiles in milliseconds.
#[derive(Default)]
pub struct Latencies(pub Vec<Duration>);

impl Latencies {
    /// The `p` quantile (0..=1) in milliseconds; NaN without samples.
    pub fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(index).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }

    /// The 99th percentile in milliseconds.
    pub fn p99(&self) -> f64 {
        self.percentile(0.99)
    }

    /// `n N, p50 X ms, p99 Y ms, max Z ms`.
    pub fn summary(&self) -> String {
        format!(
            "n {}, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.0.len(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(1.0)
        )
    }
}

/// `samples` calls one after the other.
pub fn measure(samples: usize, mut call: impl FnMut() -> Result<Duration, String>) -> Result<Latencies, String> {
    let mut latencies = Latencies::default();
    for _ in 0..samples {
        latencies.0.push(call()?);
    }
    Ok(latencies)
}

/// Calls for `period`, starting one at most every `pace`.
pub fn measure_for(
    period: Duration,
    pace: Duration,
    mut call: impl FnMut() -> Result<Duration, String>,
) -> Result<Latencies, String> {
    let mut latencies = Latencies::default();
    let start = Instant::now();
    while start.elapsed() < period {
        let began = Instant::now();
        latencies.0.push(call()?);
        if let Some(rest) = pace.checked_sub(began.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok(latencies)
}

/// A TCP connection to `addr` without Nagle's delay, whose reads give up after
/// [`ANSWER_WITHIN`].
pub fn tcp(addr: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(ANSWER_WITHIN))?;
    Ok(stream)
}

/// A Unix socket connection to `path`, whose reads give up after [`ANSWER_WITHIN`].
pub fn unix(path: &Path) -> Result<UnixStream, String> {
    let stream = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    stream.set_read_timeout(Some(ANSWER_WITHIN)).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A line-framed JSON-RPC client over any stream (TCP or Unix), on one descriptor: requests
/// are written past the read buffer, straight to the stream.
pub struct LineClient<S> {
    reader: BufReader<S>,
    next_id: u64,
    line: String,
}

impl LineClient<TcpStream> {
    /// A client on `tcp:` `host:port`.
    pub fn tcp(addr: &str) -> io::Result<Self> {
        Ok(LineClient::new(tcp(addr)?))
    }
}

impl<S: Read + Write> LineClient<S> {
    fn new(stream: S) -> Self {
        LineClient { reader: BufReader::new(stream), next_id: 1, line: String::new() }
    }

    /// Calls `method` without params; the time to its answer, which must be its result.
    pub fn call(&mut self, method: &str) -> Result<Duration, String> {
        let id = self.next_id;
        self.next_id += 1;
        let request = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}\n");
        let start = Instant::now();
        self.reader.get_mut().write_all(request.as_bytes()).map_err(|e| format!("{method}: write: {e}"))?;
        self.line.clear();
        self.reader.read_line(&mut self.line).map_err(|e| format!("{method}: read: {e}"))?;
        let took = start.elapsed();
        if !self.line.contains("\"result\"") || !self.line.contains(&format!("\"id\":{id}")) {
            return Err(format!("{method}: not a result for id {id}: {}", self.line.trim()));
        }
        Ok(took)
    }

    /// Writes one raw frame (a newline is added) and reads one answer line; its length (0: the
    /// server closed the connection).
    pub fn exchange(&mut self, frame: &[u8]) -> io::Result<usize> {
        let stream = self.reader.get_mut();
        stream.write_all(frame)?;
        stream.write_all(b"\n")?;
        self.line.clear();
        self.reader.read_line(&mut self.line)
    }
}

/// A keep-alive HTTP/1.1 client of `POST /jsonrpc`.
pub struct HttpClient {
    reader: BufReader<TcpStream>,
    host: String,
    next_id: u64,
}

impl HttpClient {
    /// A client of `host:port`.
    pub fn connect(addr: &str) -> io::Result<HttpClient> {
        Ok(HttpClient { reader: BufReader::new(tcp(addr)?), host: addr.to_string(), next_id: 1 })
    }

    /// Calls `method` without params; the time to its answer, which must be a 200 with its
    /// result.
    pub fn call(&mut self, method: &str) -> Result<Duration, String> {
        let id = self.next_id;
        self.next_id += 1;
        let body = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}");
        let request = format!(
            "POST /jsonrpc HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let start = Instant::now();
        let fail = |e: io::Error| format!("{method}: {e}");
        self.reader.get_mut().write_all(request.as_bytes()).map_err(fail)?;
        let mut status = String::new();
        self.reader.read_line(&mut status).map_err(fail)?;
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).map_err(fail)?;
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
        self.reader.read_exact(&mut answer).map_err(fail)?;
        let took = start.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        if !status.contains(" 200 ") || !answer.contains("\"result\"") {
            return Err(format!("{method}: {} {answer}", status.trim()));
        }
        Ok(took)
    }
}

/// Xenstore message types (docs/misc/xenstore.txt).
pub const READ: u32 = 2;
/// WATCH.
pub const WATCH: u32 = 4;
/// TRANSACTION_START.
pub const TRANSACTION_START: u32 = 6;
/// WRITE.
pub const WRITE: u32 = 11;
const WATCH_EVENT: u32 = 15;
const ERROR: u32 = 16;

/// A minimal Xenstore wire client: one request at a time, watch events skipped.
pub struct Xs {
    stream: UnixStream,
    next_id: u32,
}

impl Xs {
    /// A connection to the socket `path`.
    pub fn connect(path: &Path) -> Result<Xs, String> {
        Ok(Xs { stream: unix(path)?, next_id: 1 })
    }

    /// Sends one request; `Ok` with its reply's payload, or `Err` with the error's name
    /// (`ENOSPC`, ...) or what went wrong on the connection.
    pub fn request(&mut self, kind: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut frame = Vec::with_capacity(16 + payload.len());
        for word in [kind, id, 0, payload.len() as u32] {
            frame.extend_from_slice(&word.to_le_bytes());
        }
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).map_err(|e| format!("xenstore write: {e}"))?;
        loop {
            let mut header = [0u8; 16];
            self.stream.read_exact(&mut header).map_err(|e| format!("xenstore read: {e}"))?;
            let word =
                |i: usize| u32::from_le_bytes([header[i * 4], header[i * 4 + 1], header[i * 4 + 2], header[i * 4 + 3]]);
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

    /// A request that must succeed.
    pub fn expect_ok(&mut self, kind: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.request(kind, payload).map_err(|error| format!("xenstore request {kind}: {error}"))
    }

    /// A WRITE then a READ of `path`; the time both took.
    pub fn write_read(&mut self, path: &str) -> Result<Duration, String> {
        let start = Instant::now();
        self.expect_ok(WRITE, &[path.as_bytes(), b"\0value"].concat())?;
        self.expect_ok(READ, &[path.as_bytes(), b"\0"].concat())?;
        Ok(start.elapsed())
    }
}
