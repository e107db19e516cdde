//! Reaching other components: a registered endpoint (`host:port`) as a runtime address, a pool
//! of connections to registered peers, concurrent fan-out with a deadline per peer, and the
//! periodic hello a component sends to the one it registers with.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{task::JoinHandle, time::Instant};
use vproto_api::{
    rpc::{BoxFuture, CallError, ClientTransport},
    ClientError, Endpoint, HelloAck, ProtocolError,
};
use vproto_runtime::{Client, ClientOptions, ConnectAddr, ListenAddr, Token};

/// How a registered endpoint `host:port` is dialled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerScheme {
    /// `tcp:host:port`: newline-delimited JSON-RPC over TCP.
    #[default]
    Tcp,
    /// `http://host:port`: JSON-RPC over HTTP (`POST /jsonrpc`).
    Http,
}

impl FromStr for PeerScheme {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "tcp" => Ok(PeerScheme::Tcp),
            "http" => Ok(PeerScheme::Http),
            other => Err(format!("`{other}` is not a peer scheme (expected tcp or http)")),
        }
    }
}

impl fmt::Display for PeerScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerScheme::Tcp => "tcp",
            PeerScheme::Http => "http",
        })
    }
}

impl PeerScheme {
    /// The address `endpoint` is dialled at.
    pub fn connect_addr(self, endpoint: &Endpoint) -> ConnectAddr {
        let host_port = endpoint.as_str();
        let (host, port) = host_port.rsplit_once(':').expect("an Endpoint is host:port");
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = port.parse().expect("an Endpoint's port is 1..65535");
        ConnectAddr::Listen(match self {
            PeerScheme::Tcp => ListenAddr::Tcp { host, port },
            PeerScheme::Http => ListenAddr::Http { host, port },
        })
    }
}

/// The endpoint (`host:port`) a component listening on `addr` can announce: `None` for
/// `unix:` and `stdio`, an error for a wildcard host, which peers cannot dial.
pub fn endpoint_of(addr: &ListenAddr) -> Option<Result<Endpoint, String>> {
    let (host, port) = match addr {
        ListenAddr::Tcp { host, port } | ListenAddr::Http { host, port } => (host, *port),
        ListenAddr::Unix(_) | ListenAddr::Stdio => return None,
    };
    if matches!(host.as_str(), "0.0.0.0" | "::" | "[::]") {
        return Some(Err(format!(
            "{addr} listens on every address, so it cannot tell peers where to reach it: give --endpoint HOST:PORT"
        )));
    }
    let text = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    Some(Endpoint::new(text).map_err(|e| format!("{addr} gives no valid endpoint: {e}")))
}

/// A runtime [`Client`] shared between callers, usable by the generated typed clients.
#[derive(Clone)]
pub struct SharedClient(pub Arc<Client>);

impl ClientTransport for SharedClient {
    fn request<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        self.0.request(method, params)
    }

    fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>> {
        self.0.notify(method, params)
    }
}

/// Why a peer gave no usable answer.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerFailure {
    /// The peer answered with an error the schema declares (passed on, or wrapped, by callers).
    Declared(ProtocolError),
    /// No connection, no answer in time, an undeclared error or an answer that does not fit.
    Unreachable(String),
}

impl fmt::Display for PeerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerFailure::Declared(error) => write!(f, "{}: {error}", error.name()),
            PeerFailure::Unreachable(why) => f.write_str(why),
        }
    }
}

/// Connections to registered peers, by endpoint. A connection is opened on first use and
/// reused; one that breaks is dropped and reopened once for the same call (every call made
/// through the pool is idempotent: hello, discovery triggers, listings).
pub struct Peers {
    scheme: PeerScheme,
    options: ClientOptions,
    timeout: Duration,
    clients: Mutex<HashMap<String, Arc<Client>>>,
}

impl Peers {
    /// A pool dialling endpoints with `scheme`, presenting `token` (if any), and giving each
    /// call (connection included) `timeout`.
    pub fn new(scheme: PeerScheme, token: Option<Token>, timeout: Duration) -> Self {
        let options =
            ClientOptions { connect_timeout: timeout, request_timeout: timeout, token, ..ClientOptions::default() };
        Peers { scheme, options, timeout, clients: Mutex::new(HashMap::new()) }
    }

    /// The scheme endpoints are dialled with.
    pub fn scheme(&self) -> PeerScheme {
        self.scheme
    }

    fn cached(&self, endpoint: &Endpoint) -> Option<Arc<Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).get(endpoint.as_str()).cloned()
    }

    fn forget(&self, endpoint: &Endpoint, client: &Arc<Client>) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.get(endpoint.as_str()).is_some_and(|cached| Arc::ptr_eq(cached, client)) {
            clients.remove(endpoint.as_str());
        }
    }

    /// Calls the peer at `endpoint` with `call`, within the pool's timeout.
    pub async fn call<T, F, Fut>(&self, endpoint: &Endpoint, call: F) -> Result<T, PeerFailure>
    where
        F: Fn(SharedClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let deadline = Instant::now() + self.timeout;
        let addr = self.scheme.connect_addr(endpoint);
        let late = || PeerFailure::Unreachable(format!("{addr}: no answer within {:?}", self.timeout));
        for attempt in 0..2 {
            let (client, reused) = match self.cached(endpoint) {
                Some(client) => (client, true),
                None => {
                    let connected = tokio::time::timeout_at(deadline, Client::connect(&addr, self.options.clone()))
                        .await
                        .map_err(|_| late())?
                        .map_err(|e| PeerFailure::Unreachable(naming(&addr, transport_reason(&e))))?;
                    let client = Arc::new(connected);
                    self.clients
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(endpoint.as_str().to_string(), client.clone());
                    (client, false)
                }
            };
            let answer = match tokio::time::timeout_at(deadline, call(SharedClient(client.clone()))).await {
                Ok(answer) => answer,
                Err(_) => {
                    // The connection may be wedged: the next call opens a new one.
                    self.forget(endpoint, &client);
                    return Err(late());
                }
            };
            match answer {
                Ok(value) => return Ok(value),
                Err(ClientError::Protocol(error)) => return Err(PeerFailure::Declared(error)),
                Err(ClientError::Call(CallError::Transport(why))) => {
                    self.forget(endpoint, &client);
                    // A reused connection may have been closed by the peer (idle timeout,
                    // restart) since its last use: try once on a fresh one.
                    if reused && attempt == 0 {
                        tracing::debug!(%addr, reason = %why, "reconnecting to peer");
                        continue;
                    }
                    return Err(PeerFailure::Unreachable(naming(&addr, why)));
                }
                Err(ClientError::Call(CallError::Rpc(error))) => {
                    return Err(PeerFailure::Unreachable(format!("{addr} answered {error}")))
                }
                Err(ClientError::Call(CallError::Decode(error))) => {
                    return Err(PeerFailure::Unreachable(format!("{addr} answered something invalid: {error}")))
                }
            }
        }
        unreachable!("the second attempt always returns")
    }
}

/// `why`, naming `addr` unless it already does.
fn naming(addr: &ConnectAddr, why: String) -> String {
    let shown = addr.to_string();
    if why.contains(&shown) {
        why
    } else {
        format!("{shown}: {why}")
    }
}

fn transport_reason(error: &CallError) -> String {
    match error {
        CallError::Transport(why) => why.clone(),
        other => other.to_string(),
    }
}

/// Calls every endpoint of `targets` concurrently through `peers` and returns the outcomes in
/// the order of `targets`.
pub async fn fan_out<T, F, Fut>(
    peers: &Arc<Peers>,
    targets: Vec<Endpoint>,
    call: F,
) -> Vec<(Endpoint, Result<T, PeerFailure>)>
where
    T: Send + 'static,
    F: Fn(SharedClient) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<T, ClientError>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (index, endpoint) in targets.iter().cloned().enumerate() {
        let (peers, call) = (peers.clone(), call.clone());
        tasks.spawn(async move { (index, peers.call(&endpoint, call).await) });
    }
    let mut outcomes: Vec<Option<Result<T, PeerFailure>>> = targets.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, outcome)) => outcomes[index] = Some(outcome),
            Err(error) => tracing::error!(%error, "a peer call task failed"),
        }
    }
    targets
        .into_iter()
        .zip(outcomes)
        .map(|(endpoint, outcome)| {
            let outcome = outcome.unwrap_or_else(|| Err(PeerFailure::Unreachable("the call task failed".into())));
            (endpoint, outcome)
        })
        .collect()
}

/// The periodic hello a component sends to the one it registers with (a driver to its agent,
/// an agent to its conductor): at start, then every half `heartbeat_interval` of the last
/// answer (so a late hello still lands within the interval), retrying every `retry` while the
/// target cannot be reached. Runs until the returned task is aborted.
pub struct HelloLoop {
    /// Who to say hello to.
    pub target: ConnectAddr,
    /// Connection options (timeouts, token).
    pub options: ClientOptions,
    /// Wait between attempts while the target is unreachable.
    pub retry: Duration,
    /// What the target is, for logs: `agent`, `conductor`.
    pub what: &'static str,
}

impl HelloLoop {
    /// Starts the loop; `hello` sends one hello through the given client.
    pub fn spawn<F, Fut>(self, hello: F) -> JoinHandle<()>
    where
        F: Fn(SharedClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HelloAck, ClientError>> + Send + 'static,
    {
        tokio::spawn(async move { self.run(hello).await })
    }

    async fn run<F, Fut>(self, hello: F)
    where
        F: Fn(SharedClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HelloAck, ClientError>> + Send + 'static,
    {
        let HelloLoop { target, options, retry, what } = self;
        let mut client: Option<Arc<Client>> = None;
        let mut registered: Option<bool> = None;
        let mut last_interval = None;
        loop {
            let answer = match &client {
                Some(client) => Ok(client.clone()),
                None => Client::connect(&target, options.clone()).await.map(Arc::new).map_err(|e| transport_reason(&e)),
            };
            let answer = match answer {
                Ok(connected) => {
                    client = Some(connected.clone());
                    match tokio::time::timeout(options.request_timeout, hello(SharedClient(connected))).await {
                        Ok(Ok(ack)) => Ok(ack),
                        Ok(Err(error)) => Err(error.to_string()),
                        Err(_) => Err(format!("no answer within {:?}", options.request_timeout)),
                    }
                }
                Err(why) => Err(why),
            };
            match answer {
                Ok(ack) => {
                    let interval = Duration::from_secs(ack.heartbeat_interval.max(1) as u64);
                    if registered != Some(true) || last_interval != Some(interval) {
                        tracing::info!(
                            target_addr = %target,
                            heartbeat_interval = ?interval,
                            protocol_version = %ack.protocol_version,
                            "registered with the {what}"
                        );
                    }
                    registered = Some(true);
                    last_interval = Some(interval);
                    tokio::time::sleep(interval / 2).await;
                }
                Err(why) => {
                    client = None;
                    if registered != Some(false) {
                        tracing::warn!(target_addr = %target, reason = %why, retry = ?retry, "cannot say hello to the {what}");
                    } else {
                        tracing::debug!(target_addr = %target, reason = %why, "hello failed again");
                    }
                    registered = Some(false);
                    tokio::time::sleep(retry).await;
                }
            }
        }
    }
}

/// An ack as the one answering hello gives it.
pub fn hello_ack(heartbeat_interval: Duration) -> HelloAck {
    HelloAck {
        protocol_version: vproto_api::PROTOCOL_VERSION.to_string(),
        heartbeat_interval: heartbeat_interval.as_secs().max(1) as i64,
    }
}
