//! Reaching the Cyborg components a component registered: a registered endpoint (`host:port`)
//! as a JSON-RPC address, calls through a pool of reconnecting clients with a deadline per
//! call, concurrent fan-out, and the periodic hello a component sends to the one it registers
//! with.
//!
//! The generic layers (the pool, reconnection and retry, building an address from an announced
//! `host:port`) are vproto-jsonrpc's ([`Pool`], `Reconnecting`, `HostPortScheme`); what is here
//! is Cyborg's: endpoints, how a [`PeerScheme`] reaches them, [`PeerFailure`] as the services
//! report it, and hello.
//!
//! On a message bus ([`PeerScheme::Bus`], docs/bus.md) no endpoint is dialled: a component's
//! endpoint names its instance queue, `SERVICE.ENDPOINT`, on the broker every component shares
//! ([`bus_addr`]); one that gives none is `HOSTNAME:BROKER_PORT` ([`bus_endpoint`]).

use std::{fmt, future::Future, str::FromStr, sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use vproto_api::{ClientError, Endpoint, HelloAck, ProtocolError};
use vproto_jsonrpc::{
    transport::{AddrError, AmqpAddr, AmqpBroker, AmqpRoute, UnknownScheme, WildcardHost},
    ClientOptions, ClientTls, ConnectAddr, Dial, HostPortScheme, ListenAddr, Pool, Reconnecting, RetryPolicy, Token,
};
use vproto_support::{
    rpc::{CallError, DeclaredError},
    wire::WireError,
};

/// The client a peer is called through: a pooled, reconnecting JSON-RPC client.
pub type PeerClient = Reconnecting<Dial>;

/// How the endpoints registered with a component are reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PeerScheme {
    /// `tcp:HOST:PORT`: the endpoint dialled over newline-delimited JSON-RPC.
    #[default]
    Tcp,
    /// `http://HOST:PORT`: the endpoint dialled over HTTP (`POST /jsonrpc`).
    Http,
    /// `tcp:HOST:PORT` over TLS: the peer's certificate checked against this CA and HOST, and
    /// this client certificate presented, if it holds one.
    TcpTls(ClientTls),
    /// `http://HOST:PORT` over TLS (HTTPS), checked as [`PeerScheme::TcpTls`].
    HttpTls(ClientTls),
    /// Through a RabbitMQ broker: the peer of endpoint `E` is the instance `SERVICE.E` of
    /// `service` there, whatever `E`'s host and port; nothing is dialled but the broker.
    Bus {
        /// The broker every component shares.
        broker: AmqpBroker,
        /// The peers' service: `driver` for an agent, `agent` for the conductor.
        service: String,
    },
}

impl PeerScheme {
    /// The address the peer announcing `endpoint` is called at.
    pub fn connect_addr(&self, endpoint: &Endpoint) -> Result<ConnectAddr, AddrError> {
        match self {
            PeerScheme::Tcp | PeerScheme::TcpTls(_) => HostPortScheme::Tcp.connect_addr(endpoint.as_str()),
            PeerScheme::Http | PeerScheme::HttpTls(_) => HostPortScheme::Http.connect_addr(endpoint.as_str()),
            PeerScheme::Bus { broker, service } => {
                Ok(ConnectAddr::Listen(ListenAddr::Amqp(bus_addr(broker, service, endpoint))))
            }
        }
    }
}

impl PeerScheme {
    /// This scheme over `tls` (none: unchanged): `tcp` and `http` become their TLS variants
    /// (or change CA); on the bus, an `amqps://` broker given no TLS of its own takes it.
    pub fn with_tls(self, tls: Option<ClientTls>) -> Self {
        let Some(tls) = tls else { return self };
        match self {
            PeerScheme::Tcp | PeerScheme::TcpTls(_) => PeerScheme::TcpTls(tls),
            PeerScheme::Http | PeerScheme::HttpTls(_) => PeerScheme::HttpTls(tls),
            PeerScheme::Bus { broker, service } if broker.secure && broker.tls.is_none() => {
                PeerScheme::Bus { broker: broker.with_tls(Some(tls)), service }
            }
            bus @ PeerScheme::Bus { .. } => bus,
        }
    }

    /// The TLS peers are dialled with, if any (on the bus, the broker's).
    pub fn tls(&self) -> Option<&ClientTls> {
        match self {
            PeerScheme::Tcp | PeerScheme::Http => None,
            PeerScheme::TcpTls(tls) | PeerScheme::HttpTls(tls) => Some(tls),
            PeerScheme::Bus { broker, .. } => broker.tls.as_ref(),
        }
    }
}

impl FromStr for PeerScheme {
    type Err = UnknownScheme;

    /// `tcp` or `http` (a bus is given as a broker, not by name).
    fn from_str(text: &str) -> Result<Self, UnknownScheme> {
        Ok(match text.parse::<HostPortScheme>()? {
            HostPortScheme::Tcp => PeerScheme::Tcp,
            HostPortScheme::Http => PeerScheme::Http,
        })
    }
}

impl fmt::Display for PeerScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerScheme::Tcp => f.write_str("tcp"),
            PeerScheme::Http => f.write_str("http"),
            PeerScheme::TcpTls(_) => f.write_str("tcp (TLS)"),
            PeerScheme::HttpTls(_) => f.write_str("https"),
            PeerScheme::Bus { broker, service } => write!(f, "{broker}/{service}.ENDPOINT"),
        }
    }
}

/// The instance of `service` announcing `endpoint` on `broker`: `amqp://BROKER/SERVICE.ENDPOINT`.
pub fn bus_addr(broker: &AmqpBroker, service: &str, endpoint: &Endpoint) -> AmqpAddr {
    AmqpAddr::new(broker.clone(), service, AmqpRoute::Instance(endpoint.as_str().to_string()))
}

/// The endpoint a component on the bus announces when it is given none: this machine's host
/// name (`localhost` when it is not a valid endpoint host) and the broker's port. Components of
/// different services on one machine share it (their queues differ by service); two of one
/// service on one machine need `--endpoint`.
pub fn bus_endpoint(broker: &AmqpBroker) -> Endpoint {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Endpoint::new(format!("{}:{}", host.trim(), broker.port))
        .or_else(|_| Endpoint::new(format!("localhost:{}", broker.port)))
        .expect("localhost:PORT is an endpoint")
}

/// The endpoint (`host:port`) a component listening on `addr` can announce: `None` for
/// `unix:` and `stdio`, an error for a wildcard host, which peers cannot dial.
pub fn endpoint_of(addr: &ListenAddr) -> Option<Result<Endpoint, EndpointError>> {
    let announced = match addr.announced_host_port()? {
        Ok(host_port) => host_port,
        Err(wildcard) => return Some(Err(EndpointError::Wildcard(Box::new(wildcard)))),
    };
    Some(Endpoint::new(announced).map_err(|why| EndpointError::Invalid { addr: Box::new(addr.clone()), why }))
}

/// Why a listening address gives no endpoint to announce.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The address listens on every host: the endpoint has to be given.
    #[error("{0}: give --endpoint HOST:PORT")]
    Wildcard(Box<WildcardHost>),
    /// The announced `host:port` is not a valid endpoint.
    #[error("{addr} gives no valid endpoint: {why}")]
    Invalid { addr: Box<ListenAddr>, why: WireError },
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

/// Connections to registered peers, by endpoint: a [`Pool`] whose clients reconnect and
/// retry once on a fresh connection when a reused one broke (every call made through it is
/// idempotent: hello, discovery triggers, listings), and a deadline per call.
pub struct Peers {
    scheme: PeerScheme,
    timeout: Duration,
    pool: Pool,
}

impl Peers {
    /// A pool reaching endpoints by `scheme` (over its TLS, if any), presenting `token` (if
    /// any; not on the bus), and giving each call (connection included) `timeout`.
    pub fn new(scheme: PeerScheme, token: Option<Token>, timeout: Duration) -> Self {
        let options = ClientOptions {
            connect_timeout: timeout,
            request_timeout: timeout,
            token,
            tls: scheme.tls().cloned(),
            ..ClientOptions::default()
        };
        Peers { scheme, timeout, pool: Pool::new(options, RetryPolicy::OnceAfterReuse) }
    }

    /// How endpoints are reached.
    pub fn scheme(&self) -> &PeerScheme {
        &self.scheme
    }

    /// Calls the peer at `endpoint` with `call`, within the pool's timeout.
    pub async fn call<T, F, Fut>(&self, endpoint: &Endpoint, call: F) -> Result<T, PeerFailure>
    where
        F: FnOnce(PeerClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let addr = self.scheme.connect_addr(endpoint).map_err(|e| PeerFailure::Unreachable(e.to_string()))?;
        let client = self.pool.client(&addr);
        let answer = match tokio::time::timeout(self.timeout, call(client.clone())).await {
            Ok(answer) => answer,
            Err(_) => {
                // The connection may be wedged: the next call opens a new one.
                client.disconnect().await;
                return Err(PeerFailure::Unreachable(format!("{addr}: no answer within {:?}", self.timeout)));
            }
        };
        answer.map_err(|error| match error {
            ClientError::Protocol(error) => PeerFailure::Declared(error),
            ClientError::Call(CallError::Transport(why)) => PeerFailure::Unreachable(naming(&addr, why)),
            ClientError::Call(CallError::Rpc(error)) => PeerFailure::Unreachable(format!("{addr} answered {error}")),
            ClientError::Call(CallError::Decode(error)) => {
                PeerFailure::Unreachable(format!("{addr} answered something invalid: {error}"))
            }
        })
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

/// Calls every endpoint of `targets` concurrently through `peers` and returns the outcomes in
/// the order of `targets`.
pub async fn fan_out<T, F, Fut>(
    peers: &Arc<Peers>,
    targets: Vec<Endpoint>,
    call: F,
) -> Vec<(Endpoint, Result<T, PeerFailure>)>
where
    T: Send + 'static,
    F: Fn(PeerClient) -> Fut + Clone + Send + Sync + 'static,
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
///
/// The connection is closed after each answered hello and a new one dialled for the next: the
/// target (a conductor of thousands of agents) holds no connection per registrant between
/// beats, only while a hello is being answered.
pub struct HelloLoop {
    /// Who to say hello to.
    pub target: ConnectAddr,
    /// Connection options (timeouts, token, TLS).
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
        F: Fn(PeerClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HelloAck, ClientError>> + Send + 'static,
    {
        tokio::spawn(async move { self.run(hello).await })
    }

    async fn run<F, Fut>(self, hello: F)
    where
        F: Fn(PeerClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HelloAck, ClientError>> + Send + 'static,
    {
        let HelloLoop { target, options, retry, what } = self;
        let request_timeout = options.request_timeout;
        // A failed hello is not sent again at once: the loop says hello again after `retry`.
        let client = Reconnecting::new(Dial { addr: target, options }, RetryPolicy::Never);
        let target = &client.connector().addr;
        let mut registered: Option<bool> = None;
        let mut last_interval = None;
        loop {
            let answer = match tokio::time::timeout(request_timeout, hello(client.clone())).await {
                Ok(Ok(ack)) => Ok(ack),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => {
                    client.disconnect().await;
                    Err(format!("no answer within {request_timeout:?}"))
                }
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
                    client.disconnect().await;
                    tokio::time::sleep(interval / 2).await;
                }
                Err(why) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_reach_an_endpoint_by_address_or_by_its_queue_on_the_bus() {
        let endpoint = Endpoint::new("compute-1:1337").unwrap();
        assert_eq!(PeerScheme::Tcp.connect_addr(&endpoint).unwrap().to_string(), "tcp:compute-1:1337");
        assert_eq!(
            "http".parse::<PeerScheme>().unwrap().connect_addr(&endpoint).unwrap().to_string(),
            "http://compute-1:1337"
        );
        let broker: AmqpBroker = "amqp://127.0.0.1:5673".parse().unwrap();
        let bus = PeerScheme::Bus { broker: broker.clone(), service: "agent".into() };
        assert_eq!(bus.connect_addr(&endpoint).unwrap().to_string(), "amqp://127.0.0.1:5673/agent.compute-1:1337");
        assert!("amqp".parse::<PeerScheme>().is_err());
        // Whatever this machine is called, its default endpoint is a valid one on the broker's port.
        assert!(bus_endpoint(&broker).as_str().ends_with(":5673"));
    }
}
