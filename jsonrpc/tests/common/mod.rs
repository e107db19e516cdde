//! Shared test fixtures: a small handler, servers on tempdir Unix sockets and loopback TCP/HTTP,
//! and raw peers that speak bytes, so tests see exactly what goes over the wire.
#![allow(dead_code)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpStream, UnixStream},
    sync::{Barrier, Semaphore},
};
use vproto_jsonrpc::{
    Client, ClientOptions, ConnectAddr, EventHub, Limits, ListenAddr, RestRoute, RunningServer, Server, Token,
};
use vproto_support::{
    rpc::{
        codes,
        events::{Event, EventSink},
        BoxFuture, ClientTransport, Handler, Params, RpcError,
    },
    wire::{Manifest, WireError, WirePath},
};

/// Fails a test that would otherwise hang; not a timing assertion.
pub async fn guard<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future).await.expect("the test hung")
}

/// What the test handler's methods share with the test.
#[derive(Clone)]
pub struct Probe {
    /// `test.block` waits for a permit here.
    pub gate: Arc<Semaphore>,
    /// Calls of `test.block` that have started.
    pub blocked: Arc<AtomicUsize>,
    /// `test.pair` meets another `test.pair` here.
    pub pair: Arc<Barrier>,
    /// Calls of `test.count`.
    pub counted: Arc<AtomicUsize>,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            gate: Arc::new(Semaphore::new(0)),
            blocked: Arc::new(AtomicUsize::new(0)),
            pair: Arc::new(Barrier::new(2)),
            counted: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// echo, add, fail, panic, block, pair, count, slow, plus rpc.discover.
#[derive(Clone, Default)]
pub struct TestHandler {
    pub probe: Probe,
}

pub const METHODS: &[&str] = &[
    "rpc.discover",
    "test.add",
    "test.block",
    "test.count",
    "test.echo",
    "test.fail",
    "test.pair",
    "test.panic",
    "test.slow",
];

fn params_json(params: &Params) -> Value {
    match params {
        Params::None => Value::Null,
        Params::ByName(map) => Value::Object(map.clone()),
        Params::ByPosition(items) => Value::Array(items.clone()),
    }
}

impl Handler for TestHandler {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            match method {
                "rpc.discover" => Ok(json!({ "openrpc": "1.3.2", "methods": METHODS })),
                "test.echo" => Ok(params_json(&params)),
                "test.add" => {
                    let named = params.into_named(&["a", "b"])?;
                    match (named.get("a").and_then(Value::as_i64), named.get("b").and_then(Value::as_i64)) {
                        (Some(a), Some(b)) => Ok(json!(a + b)),
                        _ => {
                            Err(RpcError::standard(codes::INVALID_PARAMS).with_data(json!("a and b must be integers")))
                        }
                    }
                }
                "test.fail" => {
                    let code = params_json(&params).get("code").and_then(Value::as_i64).unwrap_or(1001);
                    Err(RpcError::new(code, "it failed").with_data(json!({ "why": "asked to" })))
                }
                "test.panic" => panic!("test.panic was called"),
                "test.block" => {
                    self.probe.blocked.fetch_add(1, Ordering::SeqCst);
                    self.probe.gate.acquire().await.expect("gate open").forget();
                    Ok(json!("released"))
                }
                "test.pair" => {
                    self.probe.pair.wait().await;
                    Ok(json!("met"))
                }
                "test.count" => Ok(json!(self.probe.counted.fetch_add(1, Ordering::SeqCst) + 1)),
                "test.slow" => {
                    let ms = params_json(&params).get("ms").and_then(Value::as_u64).unwrap_or(50);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(json!(ms))
                }
                other => Err(RpcError::standard(codes::METHOD_NOT_FOUND).with_data(json!(other))),
            }
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        METHODS.to_vec()
    }
}

/// A running server with its handler's probe and its tempdir.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub addr: ListenAddr,
    pub probe: Probe,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            guard(server.shutdown()).await;
        }
    }

    /// The HOST:PORT of a tcp or http server.
    pub fn socket_addr(&self) -> String {
        match &self.addr {
            ListenAddr::Tcp { host, port } | ListenAddr::Http { host, port } => format!("{host}:{port}"),
            other => panic!("{other} has no socket address"),
        }
    }
}

/// Options for [`start`].
#[derive(Default)]
pub struct Setup {
    pub limits: Option<Limits>,
    pub token: Option<&'static str>,
    pub routes: Vec<RestRoute>,
    pub events: Option<EventHub>,
}

/// Starts a server on `kind`: "unix" (a socket in a tempdir), "tcp" or "http" (loopback, port 0).
pub async fn start_with(kind: &str, setup: Setup) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr: ListenAddr = match kind {
        "unix" => format!("unix:{}", dir.path().join("rpc.sock").display()),
        "tcp" => "tcp:127.0.0.1:0".to_string(),
        "http" => "http://127.0.0.1:0".to_string(),
        other => panic!("unknown kind {other}"),
    }
    .parse()
    .expect("address");
    let handler = TestHandler::default();
    let probe = handler.probe.clone();
    let mut server = Server::new(handler).with_limits(setup.limits.unwrap_or_default()).with_rest_routes(setup.routes);
    if let Some(token) = setup.token {
        server = server.with_token(Token::new(token).expect("token"));
    }
    if let Some(hub) = setup.events {
        server = server.with_events(hub);
    }
    let running = server.bind(&addr).await.expect("the server starts");
    let addr = running.local_addr().clone();
    TestServer { server: Some(running), addr, probe, dir }
}

pub async fn start(kind: &str) -> TestServer {
    start_with(kind, Setup::default()).await
}

pub async fn start_limited(kind: &str, limits: Limits) -> TestServer {
    start_with(kind, Setup { limits: Some(limits), ..Setup::default() }).await
}

/// A raw line peer over a unix or tcp connection.
pub enum Raw {
    Unix(BufReader<UnixStream>),
    Tcp(BufReader<TcpStream>),
}

impl Raw {
    pub async fn connect(addr: &ListenAddr) -> Raw {
        match addr {
            ListenAddr::Unix(path) => Raw::Unix(BufReader::new(UnixStream::connect(path).await.expect("connect"))),
            ListenAddr::Tcp { host, port } => {
                Raw::Tcp(BufReader::new(TcpStream::connect((host.as_str(), *port)).await.expect("connect")))
            }
            other => panic!("no raw line peer for {other}"),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let result = match self {
            Raw::Unix(stream) => stream.get_mut().write_all(bytes).await,
            Raw::Tcp(stream) => stream.get_mut().write_all(bytes).await,
        };
        result.expect("send");
    }

    /// Sends one line (a newline is added).
    pub async fn line(&mut self, text: &str) {
        self.send(format!("{text}\n").as_bytes()).await;
    }

    /// Closes the sending side: the server answers what it has and closes.
    pub async fn finish(&mut self) {
        let result = match self {
            Raw::Unix(stream) => stream.get_mut().shutdown().await,
            Raw::Tcp(stream) => stream.get_mut().shutdown().await,
        };
        result.expect("shutdown");
    }

    /// The next line, or `None` at end of stream (or a reset).
    pub async fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = guard(async {
            match self {
                Raw::Unix(stream) => stream.read_line(&mut line).await,
                Raw::Tcp(stream) => stream.read_line(&mut line).await,
            }
        })
        .await;
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_string()),
        }
    }

    /// The next line as JSON.
    pub async fn recv(&mut self) -> Value {
        let line = self.read_line().await.expect("an answer");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {line}"))
    }

    /// Every remaining line until the server closes.
    pub async fn drain(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.read_line().await {
            lines.push(line);
        }
        lines
    }

    /// Whether the server has closed the connection (reads end of stream).
    pub async fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let read = guard(async {
            match self {
                Raw::Unix(stream) => stream.read(&mut byte).await,
                Raw::Tcp(stream) => stream.read(&mut byte).await,
            }
        })
        .await;
        matches!(read, Ok(0) | Err(_))
    }
}

/// Sends `lines`, closes the sending side and returns every line the server answered, as JSON.
pub async fn exchange(addr: &ListenAddr, lines: &[&str]) -> Vec<Value> {
    let mut raw = Raw::connect(addr).await;
    for line in lines {
        raw.line(line).await;
    }
    raw.finish().await;
    raw.drain()
        .await
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {line}")))
        .collect()
}

/// One request line, one answer.
pub async fn ask(addr: &ListenAddr, line: &str) -> Value {
    let answers = exchange(addr, &[line]).await;
    assert_eq!(answers.len(), 1, "one answer to {line}: {answers:?}");
    answers.into_iter().next().unwrap()
}

pub fn client_options(token: Option<&str>) -> ClientOptions {
    ClientOptions { token: token.map(|t| Token::new(t).unwrap()), ..ClientOptions::default() }
}

/// A fresh client's call succeeds: the server is healthy.
pub async fn assert_healthy(addr: &ListenAddr) {
    assert_healthy_with(addr, None).await;
}

pub async fn assert_healthy_with(addr: &ListenAddr, token: Option<&str>) {
    let client = guard(Client::connect(&ConnectAddr::from(addr.clone()), client_options(token)))
        .await
        .unwrap_or_else(|e| panic!("a fresh client connects to {addr}: {e}"));
    let sum = guard(client.request("test.add", json!({"a": 2, "b": 3}))).await.expect("a fresh call succeeds");
    assert_eq!(sum, json!(5));
}

/// The error code of an error response.
pub fn code(answer: &Value) -> i64 {
    answer["error"]["code"].as_i64().unwrap_or_else(|| panic!("not an error response: {answer}"))
}

/// A raw HTTP/1.1 exchange (`Connection: close`): status, lower-cased head, body.
pub async fn http_raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream.write_all(body).await.expect("send body");
    let mut response = Vec::new();
    guard(stream.read_to_end(&mut response)).await.expect("read the answer");
    let text = String::from_utf8(response).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP head: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The events the test servers serve.
pub const EVENTS: &[&str] = &["test.ping", "test.pong"];

/// A hub serving [`EVENTS`].
pub fn test_hub() -> EventHub {
    EventHub::new(EVENTS.iter().copied())
}

/// A schema-independent event: params `{"n": N, "thing": VERSION, "pad": "xxx…"}`, where
/// `thing` is the version the manifest names for the object `Thing` (`"newest"` when it names
/// none), so a payload shows the manifest it was written for; `Thing` at 0.0 cannot be written
/// (a `WireError`). Each `to_params` call is counted in `written`.
#[derive(Debug)]
pub struct TestEvent {
    pub name: &'static str,
    pub n: u64,
    pub pad: usize,
    pub written: Arc<AtomicUsize>,
}

impl TestEvent {
    pub fn new(name: &'static str, n: u64) -> Self {
        TestEvent { name, n, pad: 0, written: Arc::default() }
    }

    pub fn padded(name: &'static str, n: u64, pad: usize) -> Self {
        TestEvent { pad, ..TestEvent::new(name, n) }
    }
}

impl Event for TestEvent {
    fn name(&self) -> &'static str {
        self.name
    }

    fn to_params(&self, manifest: &Manifest) -> Result<serde_json::Map<String, Value>, WireError> {
        self.written.fetch_add(1, Ordering::SeqCst);
        let thing = match manifest.get("Thing") {
            Some(version) if version.to_string() == "0.0" => {
                return Err(WireError::UnknownVersion {
                    path: WirePath::root(),
                    object: "Thing".into(),
                    version: "0.0".into(),
                    known: "1.0, 1.1".into(),
                })
            }
            Some(version) => version.to_string(),
            None => "newest".to_string(),
        };
        let mut params = serde_json::Map::new();
        params.insert("n".into(), self.n.into());
        params.insert("thing".into(), thing.into());
        if self.pad > 0 {
            params.insert("pad".into(), "x".repeat(self.pad).into());
        }
        Ok(params)
    }
}

/// The test handler plus `test.publish` `{"event": NAME, "from": N, "count": C}`, which
/// publishes events `from..from + count` of that name into `sink` and answers how many.
pub struct Publishing {
    pub inner: TestHandler,
    pub sink: Arc<dyn EventSink>,
}

impl Handler for Publishing {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        if method != "test.publish" {
            return self.inner.handle(method, params);
        }
        Box::pin(async move {
            let params = params_json(&params);
            let name = match params.get("event").and_then(Value::as_str) {
                Some("test.pong") => "test.pong",
                _ => "test.ping",
            };
            let from = params.get("from").and_then(Value::as_u64).unwrap_or(0);
            let count = params.get("count").and_then(Value::as_u64).unwrap_or(1);
            for n in from..from + count {
                self.sink.publish(Arc::new(TestEvent::new(name, n)));
            }
            Ok(json!(count))
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        let mut methods = self.inner.methods();
        methods.push("test.publish");
        methods
    }
}
