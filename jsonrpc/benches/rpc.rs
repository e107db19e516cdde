//! Benchmark: JSON-RPC throughput and latency of vproto's [`Server`] against jsonrpsee and a
//! raw newline echo, all in one run (see docs/benchmarks.md, "JSON-RPC throughput and
//! latency").
//!
//! A closed-loop load generator: for each number of concurrent connections (1, 16 and 64),
//! every connection sends one request, waits for its answer and sends the next, for a fixed
//! time after a short warm-up; each request's latency is recorded. The whole table is run
//! several rounds, each level running every target in turn, so that compared targets run
//! seconds apart; it gives each target's median requests per second (and the range over the
//! rounds) and p50/p99 latency, and the ratios against the goals are medians of the rounds'
//! ratios. The targets:
//!
//! - vproto's `Server` answering `bench.echo` with its params (a trivial [`Handler`]) on a
//!   Unix socket, TCP and HTTP;
//! - jsonrpsee's server answering the same method over WebSocket and HTTP (one port serves
//!   both, as jsonrpsee does by default);
//! - a raw newline echo (read a line, write it back) on a Unix socket and TCP, sent the very
//!   bytes of vproto's request: the limit for this framing.
//!
//! Each server is driven twice: by the bench's own minimal clients (one line, HTTP/1.1 or
//! WebSocket frame out, one back; the same code for every server of a protocol), which
//! compares the servers, and by each project's own client library (vproto's [`Client`],
//! jsonrpsee's `WsClient` and `HttpClient`), which compares what users of each get end to end.
//!
//! Then where a request's time goes, in process: `Engine::handle` against serde_json doing the
//! same JSON work. Then schema validation: the generated `AgentServer` (params validated against the JSON
//! Schema) against a hand-written handler that decodes the same params and calls the same
//! `AgentService` without validating, both on a Unix socket, for `agent.hello` with a
//! `DriverRegistration`, alternating within each round; and the same two handlers called in
//! process, without a socket, from one task and from one task per worker.
//!
//! Servers run on one tokio runtime, load generators on another, both in this process; all
//! traffic is on loopback and Unix sockets, and every loop is bounded by time.
//!
//! Environment: `VPROTO_BENCH_SECS` (measured seconds per configuration, default 2),
//! `VPROTO_BENCH_CONNECTIONS` (default `1,16,64`), `VPROTO_BENCH_PAYLOAD` (bytes of the echoed
//! string, default 64), `VPROTO_BENCH_THREADS` (worker threads of each runtime, default the
//! number of CPUs), `VPROTO_BENCH_ROUNDS` (rounds, default 3),
//! `VPROTO_BENCH_FILTER` (comma-separated name parts; `=NAME` for one exact name). Command-line arguments
//! (criterion's, from `cargo xtask bench -- ...`) are ignored.

mod common;

use std::{
    collections::BTreeMap,
    env,
    future::Future,
    hint::black_box,
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{median, micros, runtime};
use jsonrpsee::core::client::ClientT;
use serde_json::{json, Map, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
    runtime::Runtime,
};
use vproto_api::{
    AgentServer, AgentService, Deregistration, DiscoveryState, DiscoveryStatus, DriverRegistration, Endpoint,
    HardwareList, HelloAck, ServiceError, REGISTRY,
};
use vproto_jsonrpc::{Client, ClientOptions, ConnectAddr, ListenAddr, RunningServer, Server};
use vproto_support::rpc::{codes, read_param, Answer, BoxFuture, ClientTransport, Handler, Params, RpcError};

/// What the environment asks for.
struct Settings {
    measure: Duration,
    warmup: Duration,
    levels: Vec<usize>,
    payload: usize,
    threads: usize,
    rounds: usize,
    filter: Option<String>,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str| env::var(name).ok().filter(|value| !value.trim().is_empty());
        let secs: f64 = var("VPROTO_BENCH_SECS").and_then(|v| v.parse().ok()).filter(|s| *s > 0.0).unwrap_or(2.0);
        let measure = Duration::from_secs_f64(secs);
        let levels = var("VPROTO_BENCH_CONNECTIONS")
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).filter(|n| *n > 0).collect::<Vec<usize>>())
            .filter(|levels| !levels.is_empty())
            .unwrap_or_else(|| vec![1, 16, 64]);
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Settings {
            measure,
            warmup: (measure / 4).min(Duration::from_millis(500)),
            levels,
            payload: var("VPROTO_BENCH_PAYLOAD").and_then(|v| v.parse().ok()).unwrap_or(64),
            threads: var("VPROTO_BENCH_THREADS").and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(cpus),
            rounds: var("VPROTO_BENCH_ROUNDS").and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(3),
            filter: var("VPROTO_BENCH_FILTER"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The servers

/// vproto's trivial method: `bench.echo` answers its params.
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

/// The smallest `AgentService`: acknowledges every hello, lists nothing.
struct BenchAgent;

impl AgentService for BenchAgent {
    async fn hello(&self, registration: DriverRegistration) -> Result<Answer<HelloAck>, ServiceError> {
        black_box(&registration);
        Ok(HelloAck { heartbeat_interval: 30, protocol_version: "1.0".to_string() }.into())
    }

    async fn list_hardware(&self) -> Result<Answer<HardwareList>, ServiceError> {
        Ok(HardwareList { hardware: Vec::new() }.into())
    }

    async fn start_discovery(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        Ok(DiscoveryStatus { status: DiscoveryState::Done }.into())
    }

    async fn discovery_status(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        Ok(DiscoveryStatus { status: DiscoveryState::Done }.into())
    }

    async fn deregister(&self, endpoint: Endpoint) -> Result<Answer<Deregistration>, ServiceError> {
        Ok(Deregistration { endpoint, deregistered: false }.into())
    }
}

/// `agent.hello` as the generated `AgentServer` serves it, less the JSON Schema validation:
/// positional params named, the registration decoded (`WireValue::from_wire`, which still
/// checks types and formats), the service called, the answer encoded.
struct Unvalidated(Arc<BenchAgent>);

impl Handler for Unvalidated {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            if method != "agent.hello" {
                return Err(RpcError::method_not_found(method));
            }
            let params = params.into_named(&["registration"])?;
            let registration: DriverRegistration = read_param(&params, "registration")?
                .ok_or_else(|| RpcError::invalid_params([("/registration", "missing required param")]))?;
            let ack = self
                .0
                .hello(registration)
                .await
                .map_err(|error| RpcError::new(codes::INTERNAL_ERROR, format!("{error:?}")))?;
            ack.into_result(&REGISTRY, "agent.hello")
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        vec!["agent.hello"]
    }
}

/// Reads lines and writes each back, until the peer closes.
async fn echo_lines<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(read: R, mut write: W) {
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if write.write_all(&line).await.is_err() {
            break;
        }
    }
}

/// Everything the load generators connect to; dropping it stops the servers.
struct Servers {
    vproto_unix: ListenAddr,
    vproto_tcp: ListenAddr,
    vproto_http: ListenAddr,
    checked_unix: ListenAddr,
    unchecked_unix: ListenAddr,
    jsonrpsee: SocketAddr,
    echo_unix: PathBuf,
    echo_tcp: SocketAddr,
    _running: Vec<RunningServer>,
    _jsonrpsee: jsonrpsee::server::ServerHandle,
    _dir: tempfile::TempDir,
}

/// Binds `server` on `addr`, keeping it running in `running`; the address with its port.
async fn bind(running: &mut Vec<RunningServer>, server: Server, addr: ListenAddr) -> ListenAddr {
    let bound = server.bind(&addr).await.unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
    let local = bound.local_addr().clone();
    running.push(bound);
    local
}

/// Starts every server in the current runtime.
async fn start_servers() -> Servers {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut running = Vec::new();
    let echo = Server::new(Echo);
    let vproto_unix = bind(&mut running, echo.clone(), ListenAddr::Unix(dir.path().join("vproto.sock"))).await;
    let vproto_tcp = bind(&mut running, echo.clone(), "tcp:127.0.0.1:0".parse().unwrap()).await;
    let vproto_http = bind(&mut running, echo, "http://127.0.0.1:0".parse().unwrap()).await;
    let agent = Arc::new(BenchAgent);
    let checked = Server::new(AgentServer(agent.clone()));
    let checked_unix = bind(&mut running, checked, ListenAddr::Unix(dir.path().join("checked.sock"))).await;
    let unchecked = Server::new(Unvalidated(agent));
    let unchecked_unix = bind(&mut running, unchecked, ListenAddr::Unix(dir.path().join("unchecked.sock"))).await;

    let server = jsonrpsee::server::Server::builder().build("127.0.0.1:0").await.expect("jsonrpsee binds");
    let jsonrpsee = server.local_addr().expect("jsonrpsee's address");
    let mut module = jsonrpsee::RpcModule::new(());
    module.register_method("bench.echo", |params, _, _| params.parse::<Value>()).expect("registers bench.echo");
    let jsonrpsee_handle = server.start(module);

    let echo_unix = dir.path().join("echo.sock");
    let unix = UnixListener::bind(&echo_unix).expect("echo binds its socket");
    tokio::spawn(async move {
        while let Ok((stream, _)) = unix.accept().await {
            let (read, write) = stream.into_split();
            tokio::spawn(echo_lines(read, write));
        }
    });
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("echo binds a port");
    let echo_tcp = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let _ = stream.set_nodelay(true);
            let (read, write) = stream.into_split();
            tokio::spawn(echo_lines(read, write));
        }
    });

    Servers {
        vproto_unix,
        vproto_tcp,
        vproto_http,
        checked_unix,
        unchecked_unix,
        jsonrpsee,
        echo_unix,
        echo_tcp,
        _running: running,
        _jsonrpsee: jsonrpsee_handle,
        _dir: dir,
    }
}

/// The socket address of a `tcp:` or `http://` listen address.
fn socket_addr(addr: &ListenAddr) -> SocketAddr {
    match addr {
        ListenAddr::Tcp { host, port } | ListenAddr::Http { host, port } => {
            format!("{host}:{port}").parse().expect("a numeric address")
        }
        other => panic!("{other} has no socket address"),
    }
}

// ---------------------------------------------------------------------------------------------
// The load generators' connections

type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// One open connection that makes one call at a time.
trait Connection: Send {
    /// Sends one request and reads its answer; the first call of a connection checks the
    /// answer in full, later ones only that it is not an error.
    fn call(&mut self) -> CallFuture<'_>;
}

type Reader = BufReader<Box<dyn AsyncRead + Unpin + Send>>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// A Unix or TCP socket.
#[derive(Clone, Debug)]
enum Sock {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

async fn open_sock(sock: &Sock) -> Result<(Reader, Writer), String> {
    let failed = |e: std::io::Error| format!("cannot connect to {sock:?}: {e}");
    Ok(match sock {
        Sock::Unix(path) => {
            let (read, write) = UnixStream::connect(path).await.map_err(failed)?.into_split();
            (BufReader::with_capacity(64 * 1024, Box::new(read) as _), Box::new(write) as _)
        }
        Sock::Tcp(addr) => {
            let stream = TcpStream::connect(addr).await.map_err(failed)?;
            stream.set_nodelay(true).map_err(failed)?;
            let (read, write) = stream.into_split();
            (BufReader::with_capacity(64 * 1024, Box::new(read) as _), Box::new(write) as _)
        }
    })
}

/// What an answer must be.
#[derive(Clone, Debug)]
enum Expect {
    /// The bytes sent, unchanged (the raw echo).
    Same,
    /// A JSON-RPC response whose `result` is this.
    Result(Value),
}

/// Whether `needle` occurs in `haystack` (memchr's vectorized search: the load generator's own
/// work per answer should stay small next to the servers').
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Checks an answer: in full the first time, then only that it is no error.
fn check(answer: &[u8], sent: &[u8], expect: &Expect, first: bool) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(answer).into_owned();
    match expect {
        Expect::Same if answer == sent => Ok(()),
        Expect::Same => Err(format!("the echo differs: {}", shown())),
        Expect::Result(_) if !first && !contains(answer, b"\"error\"") => Ok(()),
        Expect::Result(result) => {
            let value: Value = serde_json::from_slice(answer).map_err(|e| format!("{e}: {}", shown()))?;
            if value.get("result") == Some(result) {
                Ok(())
            } else {
                Err(format!("unexpected answer {}", shown()))
            }
        }
    }
}

/// The bench's line client: writes a request line, reads one line back.
struct LineConnection {
    read: Reader,
    write: Writer,
    request: Arc<Vec<u8>>,
    expect: Expect,
    answer: Vec<u8>,
    first: bool,
}

impl Connection for LineConnection {
    fn call(&mut self) -> CallFuture<'_> {
        Box::pin(async move {
            self.write.write_all(&self.request).await.map_err(|e| e.to_string())?;
            self.answer.clear();
            let n = self.read.read_until(b'\n', &mut self.answer).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            check(&self.answer, &self.request, &self.expect, std::mem::take(&mut self.first))
        })
    }
}

/// The bench's HTTP/1.1 client: one keep-alive connection, one POST at a time.
struct HttpConnection {
    read: Reader,
    write: Writer,
    request: Arc<Vec<u8>>,
    expect: Expect,
    line: Vec<u8>,
    body: Vec<u8>,
    first: bool,
}

impl HttpConnection {
    fn request(addr: SocketAddr, path: &str, body: &[u8]) -> Vec<u8> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    }
}

impl Connection for HttpConnection {
    fn call(&mut self) -> CallFuture<'_> {
        Box::pin(async move {
            self.write.write_all(&self.request).await.map_err(|e| e.to_string())?;
            let mut length = None;
            let mut status = true;
            loop {
                self.line.clear();
                if self.read.read_until(b'\n', &mut self.line).await.map_err(|e| e.to_string())? == 0 {
                    return Err("the server closed the connection".into());
                }
                if status {
                    if !self.line.starts_with(b"HTTP/1.1 200") {
                        return Err(format!("HTTP status {}", String::from_utf8_lossy(&self.line).trim_end()));
                    }
                    status = false;
                } else if self.line == b"\r\n" {
                    break;
                } else if self.line.len() > 15 && self.line[..15].eq_ignore_ascii_case(b"content-length:") {
                    let text = String::from_utf8_lossy(&self.line[15..]);
                    length = Some(text.trim().parse::<usize>().map_err(|e| e.to_string())?);
                }
            }
            let length = length.ok_or("no content-length")?;
            self.body.resize(length, 0);
            self.read.read_exact(&mut self.body).await.map_err(|e| e.to_string())?;
            check(&self.body, &[], &self.expect, std::mem::take(&mut self.first))
        })
    }
}

/// The bench's WebSocket client: one masked text frame out, one text message back.
struct WsConnection {
    read: Reader,
    write: Writer,
    frame: Arc<Vec<u8>>,
    expect: Expect,
    message: Vec<u8>,
    first: bool,
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame (`opcode` 1 for text, 10 for pong).
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ MASK[i % 4]));
    frame
}

impl WsConnection {
    async fn open(addr: SocketAddr, payload: &[u8], expect: Expect) -> Result<Self, String> {
        let (mut read, mut write) = open_sock(&Sock::Tcp(addr)).await?;
        let handshake = format!(
            "GET / HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        );
        write.write_all(handshake.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut line = Vec::new();
        let mut status = true;
        loop {
            line.clear();
            if read.read_until(b'\n', &mut line).await.map_err(|e| e.to_string())? == 0 {
                return Err("the server closed the connection during the handshake".into());
            }
            if status && !line.starts_with(b"HTTP/1.1 101") {
                return Err(format!("WebSocket handshake refused: {}", String::from_utf8_lossy(&line).trim_end()));
            }
            status = false;
            if line == b"\r\n" {
                break;
            }
        }
        Ok(WsConnection {
            read,
            write,
            frame: Arc::new(ws_frame(1, payload)),
            expect,
            message: Vec::new(),
            first: true,
        })
    }
}

impl Connection for WsConnection {
    fn call(&mut self) -> CallFuture<'_> {
        Box::pin(async move {
            let io = |e: std::io::Error| e.to_string();
            self.write.write_all(&self.frame).await.map_err(io)?;
            self.message.clear();
            loop {
                let mut head = [0u8; 2];
                self.read.read_exact(&mut head).await.map_err(io)?;
                let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
                let length = match head[1] & 0x7f {
                    126 => self.read.read_u16().await.map_err(io)? as usize,
                    127 => self.read.read_u64().await.map_err(io)? as usize,
                    n => n as usize,
                };
                let mut mask = None;
                if head[1] & 0x80 != 0 {
                    let mut key = [0u8; 4];
                    self.read.read_exact(&mut key).await.map_err(io)?;
                    mask = Some(key);
                }
                let start = self.message.len();
                self.message.resize(start + length, 0);
                self.read.read_exact(&mut self.message[start..]).await.map_err(io)?;
                if let Some(key) = mask {
                    self.message[start..].iter_mut().enumerate().for_each(|(i, byte)| *byte ^= key[i % 4]);
                }
                match opcode {
                    0x9 => {
                        let pong = ws_frame(0xa, &self.message[start..]);
                        self.message.truncate(start);
                        self.write.write_all(&pong).await.map_err(io)?;
                    }
                    0xa => self.message.truncate(start),
                    0x8 => return Err("the server closed the WebSocket".into()),
                    _ if fin => break,
                    _ => {}
                }
            }
            check(&self.message, &[], &self.expect, std::mem::take(&mut self.first))
        })
    }
}

/// vproto's own [`Client`].
struct VprotoConnection {
    client: Client,
    method: &'static str,
    params: Value,
    expect: Value,
    first: bool,
}

impl Connection for VprotoConnection {
    fn call(&mut self) -> CallFuture<'_> {
        Box::pin(async move {
            let answer = self.client.request(self.method, self.params.clone()).await.map_err(|e| e.to_string())?;
            if std::mem::take(&mut self.first) && answer != self.expect {
                return Err(format!("unexpected result {answer}"));
            }
            Ok(())
        })
    }
}

/// jsonrpsee's own client (WebSocket or HTTP).
struct JsonrpseeConnection<C> {
    client: C,
    params: Map<String, Value>,
    first: bool,
}

impl<C: ClientT + Send + Sync> Connection for JsonrpseeConnection<C> {
    fn call(&mut self) -> CallFuture<'_> {
        Box::pin(async move {
            let answer: Value =
                self.client.request("bench.echo", self.params.clone()).await.map_err(|e| e.to_string())?;
            if std::mem::take(&mut self.first) && answer != Value::Object(self.params.clone()) {
                return Err(format!("unexpected result {answer}"));
            }
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Targets and measurement

/// How a target's connections are made.
#[derive(Clone)]
enum Kind {
    Line { sock: Sock, request: Arc<Vec<u8>>, expect: Expect },
    Http { addr: SocketAddr, request: Arc<Vec<u8>>, expect: Expect },
    Ws { addr: SocketAddr, payload: Arc<Vec<u8>>, expect: Expect },
    Vproto { addr: ListenAddr, method: &'static str, params: Value, expect: Value },
    JsonrpseeWs { url: String, params: Map<String, Value> },
    JsonrpseeHttp { url: String, params: Map<String, Value> },
}

/// One server and transport, with the client that drives it.
#[derive(Clone)]
struct Target {
    name: &'static str,
    kind: Kind,
}

impl Target {
    async fn open(&self) -> Result<Box<dyn Connection>, String> {
        Ok(match &self.kind {
            Kind::Line { sock, request, expect } => {
                let (read, write) = open_sock(sock).await?;
                Box::new(LineConnection {
                    read,
                    write,
                    request: request.clone(),
                    expect: expect.clone(),
                    answer: Vec::with_capacity(4096),
                    first: true,
                })
            }
            Kind::Http { addr, request, expect } => {
                let (read, write) = open_sock(&Sock::Tcp(*addr)).await?;
                Box::new(HttpConnection {
                    read,
                    write,
                    request: request.clone(),
                    expect: expect.clone(),
                    line: Vec::with_capacity(256),
                    body: Vec::with_capacity(4096),
                    first: true,
                })
            }
            Kind::Ws { addr, payload, expect } => Box::new(WsConnection::open(*addr, payload, expect.clone()).await?),
            Kind::Vproto { addr, method, params, expect } => {
                let client = Client::connect(&ConnectAddr::Listen(addr.clone()), ClientOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
                Box::new(VprotoConnection {
                    client,
                    method,
                    params: params.clone(),
                    expect: expect.clone(),
                    first: true,
                })
            }
            Kind::JsonrpseeWs { url, params } => {
                let client = jsonrpsee::ws_client::WsClientBuilder::default()
                    .build(url)
                    .await
                    .map_err(|e| format!("cannot connect to {url}: {e}"))?;
                Box::new(JsonrpseeConnection { client, params: params.clone(), first: true })
            }
            Kind::JsonrpseeHttp { url, params } => {
                let client = jsonrpsee::http_client::HttpClientBuilder::default()
                    .build(url)
                    .map_err(|e| format!("cannot make a client for {url}: {e}"))?;
                Box::new(JsonrpseeConnection { client, params: params.clone(), first: true })
            }
        })
    }
}

/// Whether `VPROTO_BENCH_FILTER` selects the target `name`: a comma-separated list of name
/// parts, each matching names that contain it, or exactly the name when it starts with `=`.
fn selects(filter: &str, name: &str) -> bool {
    filter.split(',').map(str::trim).any(|part| match part.strip_prefix('=') {
        Some(exact) => name == exact,
        None => name.contains(part),
    })
}

/// One measurement.
#[derive(Clone, Debug)]
struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// `connections` connections call back to back for the warm-up, then for the measured time.
async fn measure(target: &Target, connections: usize, settings: &Settings) -> Result<Stats, String> {
    let mut opened = Vec::with_capacity(connections);
    for _ in 0..connections {
        opened.push(target.open().await?);
    }
    let warm_end = Instant::now() + settings.warmup;
    let end = warm_end + settings.measure;
    let tasks: Vec<_> = opened
        .into_iter()
        .map(|mut connection| {
            tokio::spawn(async move {
                connection.call().await?;
                while Instant::now() < warm_end {
                    connection.call().await?;
                }
                let mut latencies = Vec::with_capacity(16 * 1024);
                loop {
                    let start = Instant::now();
                    if start >= end {
                        break;
                    }
                    connection.call().await?;
                    latencies.push(start.elapsed());
                }
                Ok::<_, String>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failure = None;
    for task in tasks {
        match task.await {
            Ok(Ok(mine)) => latencies.extend(mine),
            Ok(Err(error)) => failure = Some(error),
            Err(error) => failure = Some(error.to_string()),
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    if latencies.is_empty() {
        return Err("no request completed".into());
    }
    latencies.sort_unstable();
    let at = |percent: usize| latencies[(latencies.len() * percent / 100).min(latencies.len() - 1)];
    Ok(Stats { rps: latencies.len() as f64 / settings.measure.as_secs_f64(), p50: at(50), p99: at(99) })
}

/// Measures and logs one configuration; `None` (logged) when it failed.
async fn run(target: &Target, connections: usize, round: usize, settings: &Settings) -> Option<Stats> {
    let name = target.name;
    match measure(target, connections, settings).await {
        Ok(stats) => {
            let (p50, p99) = (micros(stats.p50), micros(stats.p99));
            eprintln!(
                "round {round} {connections:>3} conn  {name:<28} {:>9.0} rps  p50 {p50:>7} us  p99 {p99:>7} us",
                stats.rps
            );
            Some(stats)
        }
        Err(error) => {
            eprintln!("round {round} {connections:>3} conn  {name:<28} FAILED: {error}");
            None
        }
    }
}

/// Medians over rounds.
struct Summary {
    rps: f64,
    min_rps: f64,
    max_rps: f64,
    p50: Duration,
    p99: Duration,
}

impl Summary {
    fn of(rounds: &[Stats]) -> Option<Self> {
        if rounds.is_empty() {
            return None;
        }
        let rps: Vec<f64> = rounds.iter().map(|s| s.rps).collect();
        let at = |f: fn(&Stats) -> Duration| {
            Duration::from_secs_f64(median(rounds.iter().map(|s| f(s).as_secs_f64()).collect()))
        };
        Some(Summary {
            rps: median(rps.clone()),
            min_rps: rps.iter().copied().fold(f64::INFINITY, f64::min),
            max_rps: rps.iter().copied().fold(0.0, f64::max),
            p50: at(|s| s.p50),
            p99: at(|s| s.p99),
        })
    }
}

/// Runs `call` back to back for `duration`; nanoseconds per call.
async fn per_call<F: Future<Output = ()>>(duration: Duration, mut call: impl FnMut() -> F) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            call().await;
        }
        calls += 64;
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

/// `tasks` tasks call `handler` in process back to back for `duration`; calls per second, all
/// tasks together.
async fn in_parallel(
    handler: &Arc<dyn Handler>,
    params: &Arc<Map<String, Value>>,
    duration: Duration,
    tasks: usize,
) -> f64 {
    let running: Vec<_> = (0..tasks)
        .map(|_| {
            let (handler, params) = (handler.clone(), params.clone());
            tokio::spawn(async move {
                per_call(duration, || async {
                    let answer = handler.handle("agent.hello", Params::ByName((*params).clone())).await;
                    black_box(answer.expect("agent.hello answers"));
                })
                .await
            })
        })
        .collect();
    let mut calls_per_second = 0.0;
    for task in running {
        calls_per_second += 1e9 / task.await.expect("an in-process task");
    }
    calls_per_second
}

fn main() {
    let settings = Settings::from_env();
    let servers_runtime: Runtime = runtime("servers", settings.threads);
    let clients_runtime: Runtime = runtime("clients", settings.threads);
    let servers = servers_runtime.block_on(start_servers());

    // The same request everywhere: `bench.echo` with one string of the payload size.
    let text: String = "x".repeat(settings.payload);
    let params = json!({ "text": text });
    let params_map = params.as_object().unwrap().clone();
    let request = format!(r#"{{"jsonrpc":"2.0","method":"bench.echo","params":{params},"id":1}}"#);
    let line = Arc::new(format!("{request}\n").into_bytes());
    let result = Expect::Result(params.clone());
    let vproto_http = socket_addr(&servers.vproto_http);
    let jsonrpsee = servers.jsonrpsee;

    let targets = vec![
        Target {
            name: "vproto unix",
            kind: Kind::Line {
                sock: Sock::Unix(match &servers.vproto_unix {
                    ListenAddr::Unix(path) => path.clone(),
                    _ => unreachable!(),
                }),
                request: line.clone(),
                expect: result.clone(),
            },
        },
        Target {
            name: "vproto tcp",
            kind: Kind::Line {
                sock: Sock::Tcp(socket_addr(&servers.vproto_tcp)),
                request: line.clone(),
                expect: result.clone(),
            },
        },
        Target {
            name: "vproto http",
            kind: Kind::Http {
                addr: vproto_http,
                request: Arc::new(HttpConnection::request(vproto_http, "/jsonrpc", request.as_bytes())),
                expect: result.clone(),
            },
        },
        Target {
            name: "jsonrpsee ws",
            kind: Kind::Ws { addr: jsonrpsee, payload: Arc::new(request.clone().into_bytes()), expect: result.clone() },
        },
        Target {
            name: "jsonrpsee http",
            kind: Kind::Http {
                addr: jsonrpsee,
                request: Arc::new(HttpConnection::request(jsonrpsee, "/", request.as_bytes())),
                expect: result.clone(),
            },
        },
        Target {
            name: "echo unix",
            kind: Kind::Line {
                sock: Sock::Unix(servers.echo_unix.clone()),
                request: line.clone(),
                expect: Expect::Same,
            },
        },
        Target {
            name: "echo tcp",
            kind: Kind::Line { sock: Sock::Tcp(servers.echo_tcp), request: line.clone(), expect: Expect::Same },
        },
        Target {
            name: "vproto unix, vproto Client",
            kind: Kind::Vproto {
                addr: servers.vproto_unix.clone(),
                method: "bench.echo",
                params: params.clone(),
                expect: params.clone(),
            },
        },
        Target {
            name: "vproto tcp, vproto Client",
            kind: Kind::Vproto {
                addr: servers.vproto_tcp.clone(),
                method: "bench.echo",
                params: params.clone(),
                expect: params.clone(),
            },
        },
        Target {
            name: "vproto http, vproto Client",
            kind: Kind::Vproto {
                addr: servers.vproto_http.clone(),
                method: "bench.echo",
                params: params.clone(),
                expect: params.clone(),
            },
        },
        Target {
            name: "jsonrpsee ws, WsClient",
            kind: Kind::JsonrpseeWs { url: format!("ws://{jsonrpsee}"), params: params_map.clone() },
        },
        Target {
            name: "jsonrpsee http, HttpClient",
            kind: Kind::JsonrpseeHttp { url: format!("http://{jsonrpsee}"), params: params_map.clone() },
        },
    ];
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|target| settings.filter.as_deref().is_none_or(|filter| selects(filter, target.name)))
        .collect();

    println!("JSON-RPC throughput and latency (closed loop, one request in flight per connection)");
    println!(
        "measured {:?} per configuration after {:?} of warm-up; {} worker threads for the servers and {} for the \
         load generators; {} CPUs",
        settings.measure,
        settings.warmup,
        settings.threads,
        settings.threads,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("request: {} bytes + newline: {request}", request.len());
    println!();

    // Throughput and latency: rounds of every level, each level running every target in turn,
    // so that compared targets run seconds apart; medians over the rounds are reported.
    let mut rounds: Vec<BTreeMap<(usize, &'static str), Stats>> = Vec::new();
    for round in 0..settings.rounds {
        let mut results = BTreeMap::new();
        for &connections in &settings.levels {
            for target in &targets {
                if let Some(stats) = clients_runtime.block_on(run(target, connections, round, &settings)) {
                    results.insert((connections, target.name), stats);
                }
            }
        }
        rounds.push(results);
    }

    println!(
        "| connections | server, transport (client) | requests/s (median) | min–max over rounds | p50 µs | p99 µs |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    for &connections in &settings.levels {
        for target in &targets {
            let measured: Vec<Stats> =
                rounds.iter().filter_map(|results| results.get(&(connections, target.name)).cloned()).collect();
            match Summary::of(&measured) {
                Some(summary) => println!(
                    "| {connections} | {} | {:.0} | {:.0}–{:.0} | {} | {} |",
                    target.name,
                    summary.rps,
                    summary.min_rps,
                    summary.max_rps,
                    micros(summary.p50),
                    micros(summary.p99)
                ),
                None => println!("| {connections} | {} | failed | | | |", target.name),
            }
        }
    }
    println!();

    // Ratios against the goals: the median of each round's ratio. The echo rows have no goal:
    // they are the most any server could reach on that framing, so they bound the others.
    let ratios: [(&str, &str, Option<f64>); 10] = [
        ("vproto unix", "jsonrpsee ws", Some(2.0)),
        ("vproto tcp", "jsonrpsee ws", Some(2.0)),
        ("vproto http", "jsonrpsee http", Some(2.0)),
        ("vproto unix, vproto Client", "jsonrpsee ws, WsClient", Some(2.0)),
        ("vproto tcp, vproto Client", "jsonrpsee ws, WsClient", Some(2.0)),
        ("vproto http, vproto Client", "jsonrpsee http, HttpClient", Some(2.0)),
        ("vproto unix", "echo unix", Some(0.6)),
        ("vproto tcp", "echo tcp", Some(0.6)),
        ("echo unix", "jsonrpsee ws", None),
        ("echo tcp", "jsonrpsee ws", None),
    ];
    println!(
        "| ratio of requests/s (median of rounds) | goal | {} |",
        settings.levels.map_join(" | ", |c| format!("{c} conn"))
    );
    println!("|---|---:|{}", settings.levels.map_join("", |_| "---:|".to_string()));
    for (mine, theirs, goal) in ratios {
        let cells = settings.levels.map_join(" | ", |&c| {
            let each: Vec<f64> = rounds
                .iter()
                .filter_map(|results| Some(results.get(&(c, mine))?.rps / results.get(&(c, theirs))?.rps))
                .collect();
            if each.is_empty() {
                return "-".to_string();
            }
            let ratio = median(each);
            match goal {
                Some(goal) => format!("{ratio:.2} {}", if ratio >= goal { "met" } else { "NOT met" }),
                None => format!("{ratio:.2}"),
            }
        });
        let goal = goal.map_or("(bound)".to_string(), |goal| format!("≥ {goal}"));
        println!("| {mine} / {theirs} | {goal} | {cells} |");
    }
    println!();

    // Where a vproto request's time goes, in process (no socket), on a worker thread of the load
    // generators' runtime as in a server: the engine alone (parse, admit, the call in its own
    // task, the response text), and plain serde_json doing the same JSON work (parse the
    // request, write the response).
    let engine = Arc::new(vproto_jsonrpc::Engine::new(Arc::new(Echo), vproto_jsonrpc::Limits::default()));
    let in_flight = vproto_jsonrpc::InFlight::new(64);
    let slice = (settings.measure / 4).max(Duration::from_millis(100));
    let (rounds_n, frame) = (settings.rounds, request.clone());
    let (engine_ns, serde_ns) = clients_runtime.block_on(async move {
        let task = tokio::spawn(async move {
            let (mut engine_ns, mut serde_ns) = (Vec::new(), Vec::new());
            for _ in 0..rounds_n {
                let run = per_call(slice, || async {
                    let reply = engine.handle(frame.as_bytes(), &in_flight).await;
                    black_box(reply.text.expect("an answer"));
                });
                engine_ns.push(run.await);
                let run = per_call(slice, || async {
                    let value: Value = serde_json::from_str(black_box(&frame)).expect("JSON");
                    let answer = json!({"jsonrpc": "2.0", "result": value["params"], "id": value["id"]});
                    black_box(answer.to_string());
                });
                serde_ns.push(run.await);
            }
            (engine_ns, serde_ns)
        });
        task.await.expect("the in-process measurement")
    });
    println!(
        "in process (no socket): vproto's Engine::handle {:.2} µs per bench.echo request; serde_json parsing the \
         request and writing the response {:.2} µs",
        median(engine_ns) / 1000.0,
        median(serde_ns) / 1000.0
    );
    println!();

    // Schema validation: the generated AgentServer against the same call unvalidated.
    let registration = json!({
        "registration": {"endpoint": "compute-1.example.org:1337", "status": "READY", "type": "CRYPTO"}
    });
    let hello = format!(r#"{{"jsonrpc":"2.0","method":"agent.hello","params":{registration},"id":1}}"#);
    let hello_line = Arc::new(format!("{hello}\n").into_bytes());
    let ack = Expect::Result(json!({"heartbeat_interval": 30, "protocol_version": "1.0"}));
    let unix_path = |addr: &ListenAddr| match addr {
        ListenAddr::Unix(path) => path.clone(),
        _ => unreachable!(),
    };
    let checked = Target {
        name: "agent.hello validated",
        kind: Kind::Line {
            sock: Sock::Unix(unix_path(&servers.checked_unix)),
            request: hello_line.clone(),
            expect: ack.clone(),
        },
    };
    let unchecked = Target {
        name: "agent.hello not validated",
        kind: Kind::Line { sock: Sock::Unix(unix_path(&servers.unchecked_unix)), request: hello_line, expect: ack },
    };
    if settings.filter.as_deref().is_none_or(|filter| selects(filter, checked.name) || selects(filter, unchecked.name))
    {
        println!(
            "schema validation: agent.hello over a Unix socket, {} rounds (validated and not, alternating)",
            settings.rounds
        );
        println!("request: {} bytes + newline: {hello}", hello.len());
        println!();
        println!(
            "| connections | validated requests/s | not validated requests/s | throughput cost, median of rounds \
             (each round) | validated p50 / p99 µs | not validated p50 / p99 µs |"
        );
        println!("|---:|---:|---:|---:|---:|---:|");
        for &connections in &settings.levels {
            let (mut on, mut off, mut costs) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..settings.rounds {
                let order = if round % 2 == 0 { [&checked, &unchecked] } else { [&unchecked, &checked] };
                let mut pair = [None, None];
                for target in order {
                    let validated = std::ptr::eq(target, &checked);
                    pair[usize::from(!validated)] =
                        clients_runtime.block_on(run(target, connections, round, &settings));
                }
                if let [Some(validated), Some(unvalidated)] = pair {
                    costs.push((unvalidated.rps - validated.rps) / unvalidated.rps * 100.0);
                    on.push(validated);
                    off.push(unvalidated);
                }
            }
            let (Some(on), Some(off)) = (Summary::of(&on), Summary::of(&off)) else {
                println!("| {connections} | failed | | | | |");
                continue;
            };
            let each = costs.map_join(", ", |cost| format!("{cost:.0}"));
            let cost = median(costs);
            println!(
                "| {connections} | {:.0} | {:.0} | {cost:.1} % ({each}) {} | {} / {} | {} / {} |",
                on.rps,
                off.rps,
                if cost <= 10.0 { "goal ≤ 10 %: met" } else { "goal ≤ 10 %: NOT met" },
                micros(on.p50),
                micros(on.p99),
                micros(off.p50),
                micros(off.p99),
            );
        }
        println!();

        // The same two handlers called in process: the cost of validation alone, from one task,
        // then from one task per worker thread at once (what the server does under load).
        let params = Arc::new(registration.as_object().unwrap().clone());
        let agent = Arc::new(BenchAgent);
        let validated: Arc<dyn Handler> = Arc::new(AgentServer(agent.clone()));
        let unvalidated: Arc<dyn Handler> = Arc::new(Unvalidated(agent));
        let slice = (settings.measure / 4).max(Duration::from_millis(100));
        for tasks in [1, settings.threads] {
            let (mut on, mut off) = (Vec::new(), Vec::new());
            for _ in 0..settings.rounds {
                on.push(clients_runtime.block_on(in_parallel(&validated, &params, slice, tasks)));
                off.push(clients_runtime.block_on(in_parallel(&unvalidated, &params, slice, tasks)));
            }
            let (on, off) = (median(on), median(off));
            println!(
                "in process (no socket), {tasks} task(s) calling at once: agent.hello validated {:.0} calls/s, not \
                 validated {:.0} calls/s: validation costs {:.1} % of the throughput",
                on,
                off,
                (off - on) / off * 100.0
            );
        }
    }

    drop(servers);
    servers_runtime.shutdown_timeout(Duration::from_secs(1));
    clients_runtime.shutdown_timeout(Duration::from_secs(1));
}

/// Joins the cells of a table row.
trait MapJoin<T> {
    fn map_join(&self, separator: &str, cell: impl FnMut(&T) -> String) -> String;
}

impl<T> MapJoin<T> for Vec<T> {
    fn map_join(&self, separator: &str, cell: impl FnMut(&T) -> String) -> String {
        self.iter().map(cell).collect::<Vec<_>>().join(separator)
    }
}
