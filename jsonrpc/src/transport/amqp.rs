//! JSON-RPC over AMQP 0-9-1 (RabbitMQ), routed as oslo.messaging routes RPC
//! ([docs/bus.md](../../../docs/bus.md)).
//!
//! - A broker is `amqp://[USER:PASS@]HOST[:PORT][/VHOST]` ([`AmqpBroker`]); a service on it is
//!   `amqp://[USER:PASS@]HOST[:PORT][/VHOST]/SERVICE[.HOST]` ([`AmqpAddr`]): the last path
//!   segment names the target, a segment before it the virtual host.
//! - A server of `SERVICE` on instance `HOST` consumes the durable queues `SERVICE` (shared by
//!   every instance: whichever is free answers) and `SERVICE.HOST` (this instance alone), and
//!   an exclusive queue bound to the fanout exchange `SERVICE_fanout` (every instance).
//! - Each JSON-RPC frame is one message: persistent, published with confirms (a call fails at
//!   once when the broker cannot route it), carrying `reply_to` (the caller's exclusive reply
//!   queue) and a `correlation_id`, and expiring after the caller's request timeout. A server
//!   acknowledges a message only once its answer is published (and confirmed), so a request
//!   the broker acknowledged is not lost when a server or the broker stops before answering:
//!   it is delivered again. Notifications are casts: no answer is sent. A fanout
//!   (`SERVICE.*`) carries notifications only.
//! - A client sees the bus as a line connection ([`connect`]): what it writes is published
//!   frame by frame, what comes to its reply queue is read line by line, so the line client
//!   (ids, multiplexing, events) works over it unchanged. When the broker connection is lost
//!   the reading side fails with why, failing the calls in flight; a new connection is a new
//!   reply queue.
//! - Events: `rpc.subscribe` sent to an instance subscribes the caller's reply queue; the
//!   server casts every event to it, written at the subscriber's versions, until the queue is
//!   gone or it unsubscribes.
//!
//! The server ([`serve`]) reconnects by itself, with backoff, until it is shut down.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{stream::FuturesUnordered, StreamExt};
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    publisher_confirm::Confirmation,
    types::{FieldTable, ShortString},
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWrite, BufReader},
    sync::{mpsc, oneshot},
    task::JoinSet,
};
use vproto_listen::ShutdownSignal;
use vproto_support::rpc::{
    events::{SUBSCRIBE, UNSUBSCRIBE},
    Params, RpcError,
};

use super::{
    addr::AddrError,
    framing::{Line, LineReader},
};
use crate::{
    engine::{Engine, InFlight},
    events::{Payload, Subscriber},
    message::{Entry, Incoming, Response},
};

/// The AMQP port a broker address without one means.
pub const DEFAULT_PORT: u16 = 5672;

/// The largest queue name AMQP allows, in bytes.
const MAX_QUEUE_NAME: usize = 255;

/// Where a RabbitMQ broker is: `amqp://[USER:PASS@]HOST[:PORT][/VHOST]`.
///
/// Its `Display` leaves the password out (`amqp://USER@HOST:PORT/VHOST`): it is what logs and
/// errors show. [`AmqpBroker::uri`] is the whole address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AmqpBroker {
    /// A host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The port (5672 when not given).
    pub port: u16,
    /// The user (`guest` when not given).
    pub user: String,
    /// The password (`guest` when not given).
    pub password: String,
    /// The virtual host (`/` when not given).
    pub vhost: String,
}

impl fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Which queue or exchange of a service a message goes to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `SERVICE`: the queue every instance of the service consumes; one of them answers.
    Shared,
    /// `SERVICE.HOST`: the queue of one instance.
    Instance(String),
    /// `SERVICE.*`: the fanout exchange `SERVICE_fanout`, which reaches every instance.
    /// Notifications only.
    Fanout,
}

/// A service on a broker: `amqp://[USER:PASS@]HOST[:PORT][/VHOST]/SERVICE[.HOST]`, or
/// `.../SERVICE.*` for its fanout. A server at an address with an instance consumes both the
/// shared and the instance queue (and the fanout); without one, the shared queue and the
/// fanout.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AmqpAddr {
    /// The broker (shared: many addresses name one broker).
    pub broker: Arc<AmqpBroker>,
    /// The service (`agent`, `conductor`, ...): letters, digits, `_` and `-`.
    pub service: String,
    /// Which of its queues.
    pub route: Route,
}

fn invalid(input: &str, reason: impl Into<String>) -> AddrError {
    AddrError { input: input.to_string(), reason: reason.into() }
}

/// Checks a service name: non-empty letters, digits, `_` and `-`.
fn check_service(input: &str, service: &str) -> Result<(), AddrError> {
    if service.is_empty() {
        return Err(invalid(input, "the service name is missing (expected .../SERVICE[.HOST])"));
    }
    if let Some(bad) = service.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(invalid(input, format!("`{bad}` in the service name `{service}`: use letters, digits, _ and -")));
    }
    Ok(())
}

/// Checks an instance name: printable, no `/`, and short enough that `SERVICE.HOST` is a
/// queue name.
fn check_instance(input: &str, service: &str, host: &str) -> Result<(), AddrError> {
    if host.is_empty() {
        return Err(invalid(input, "the instance after `.` is empty (expected SERVICE.HOST)"));
    }
    if let Some(bad) = host.chars().find(|c| c.is_control() || c.is_whitespace() || *c == '/' || *c == '*') {
        return Err(invalid(input, format!("{bad:?} in the instance name `{host}`")));
    }
    if service.len() + 1 + host.len() > MAX_QUEUE_NAME {
        return Err(invalid(input, format!("`{service}.{host}` is longer than a queue name may be (255 bytes)")));
    }
    Ok(())
}

fn decoded(input: &str, part: &str, what: &str) -> Result<String, AddrError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| invalid(input, format!("the {what} is not UTF-8 once percent-decoded")))
}

impl AmqpBroker {
    /// Parses the broker part, `amqp://[USER:PASS@]HOST[:PORT]`, and a vhost (percent-encoded,
    /// `None` for `/`).
    fn parse_parts(input: &str, authority: &str, vhost: Option<&str>) -> Result<AmqpBroker, AddrError> {
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => ("guest".to_string(), "guest".to_string()),
            Some(credentials) => {
                let (user, password) = credentials
                    .split_once(':')
                    .ok_or_else(|| invalid(input, "expected USER:PASS@ before the host (the password is missing)"))?;
                let user = decoded(input, user, "user")?;
                if user.is_empty() {
                    return Err(invalid(input, "the user before `:` is empty"));
                }
                (user, decoded(input, password, "password")?)
            }
        };
        let (host, port) = split_host_port(input, host_port)?;
        let vhost = match vhost {
            None => "/".to_string(),
            Some(vhost) => decoded(input, vhost, "virtual host")?,
        };
        if vhost.is_empty() {
            return Err(invalid(input, "the virtual host is empty (leave it out for `/`)"));
        }
        Ok(AmqpBroker { host, port, user, password, vhost })
    }

    /// The address lapin connects to, credentials included, every part percent-encoded.
    pub fn uri(&self) -> String {
        let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
        format!(
            "amqp://{}:{}@{}:{}/{}",
            encode(&self.user),
            encode(&self.password),
            bracketed(&self.host),
            self.port,
            encode(&self.vhost)
        )
    }

    /// Opens a connection to the broker within `wait`, on the tokio runtime.
    pub async fn connect(&self, wait: Duration) -> Result<Connection, String> {
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        match tokio::time::timeout(wait, Connection::connect(&self.uri(), properties)).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(format!("cannot connect to the broker {self}: {error}")),
            Err(_) => Err(format!("cannot connect to the broker {self}: no connection within {wait:?}")),
        }
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `HOST[:PORT]`, an IPv6 host in brackets.
fn split_host_port(input: &str, text: &str) -> Result<(String, u16), AddrError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| invalid(input, "an IPv6 host needs its closing `]`"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid(input, "expected :PORT after the IPv6 host")),
            },
        }
    } else {
        match text.split_once(':') {
            Some((_, rest)) if rest.contains(':') => {
                return Err(invalid(input, "put an IPv6 host in brackets, as in amqp://[::1]:5672"))
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(invalid(input, "the broker's host is missing (expected amqp://HOST:PORT)"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(invalid(input, format!("`{port}` is not a port number (1-65535)"))),
        },
    };
    Ok((host.to_string(), port))
}

/// The authority and path segments after `amqp://`; `amqps://` is refused with why.
fn split_uri(input: &str) -> Result<(&str, Vec<&str>), AddrError> {
    if input.starts_with("amqps://") {
        return Err(invalid(
            input,
            "amqps (TLS) is not supported; reach the broker over amqp:// on loopback or a tunnel",
        ));
    }
    let rest = input.strip_prefix("amqp://").ok_or_else(|| invalid(input, "expected amqp://HOST:PORT"))?;
    if rest.contains(['?', '#']) {
        return Err(invalid(input, "query parameters and fragments are not understood; leave them out"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut parts = rest.split('/');
    let authority = parts.next().unwrap_or_default();
    Ok((authority, parts.collect()))
}

impl FromStr for AmqpBroker {
    type Err = AddrError;

    fn from_str(input: &str) -> Result<Self, AddrError> {
        let (authority, path) = split_uri(input)?;
        match path.as_slice() {
            [] => AmqpBroker::parse_parts(input, authority, None),
            [vhost] => AmqpBroker::parse_parts(input, authority, Some(vhost)),
            _ => Err(invalid(input, "expected amqp://[USER:PASS@]HOST:PORT[/VHOST] (one path segment at most)")),
        }
    }
}

impl fmt::Display for AmqpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("amqp://")?;
        if (self.user.as_str(), self.password.as_str()) != ("guest", "guest") {
            write!(f, "{}@", utf8_percent_encode(&self.user, NON_ALPHANUMERIC))?;
        }
        write!(f, "{}:{}", bracketed(&self.host), self.port)?;
        if self.vhost != "/" {
            write!(f, "/{}", utf8_percent_encode(&self.vhost, NON_ALPHANUMERIC))?;
        }
        Ok(())
    }
}

impl AmqpAddr {
    /// The address of `service` on `broker`, by `route`.
    pub fn new(broker: impl Into<Arc<AmqpBroker>>, service: impl Into<String>, route: Route) -> Self {
        AmqpAddr { broker: broker.into(), service: service.into(), route }
    }

    /// The queue a message to this address goes to (`None` for a fanout, which goes to an
    /// exchange).
    pub fn queue(&self) -> Option<String> {
        match &self.route {
            Route::Shared => Some(self.service.clone()),
            Route::Instance(host) => Some(format!("{}.{host}", self.service)),
            Route::Fanout => None,
        }
    }

    /// The fanout exchange of the service, `SERVICE_fanout`.
    pub fn fanout_exchange(&self) -> String {
        format!("{}_fanout", self.service)
    }

    /// The exchange and routing key a message to this address is published with.
    fn destination(&self) -> (String, String) {
        match self.queue() {
            Some(queue) => (String::new(), queue),
            None => (self.fanout_exchange(), String::new()),
        }
    }
}

impl FromStr for AmqpAddr {
    type Err = AddrError;

    fn from_str(input: &str) -> Result<Self, AddrError> {
        let (authority, path) = split_uri(input)?;
        let (vhost, target) = match path.as_slice() {
            [target] => (None, *target),
            [vhost, target] => (Some(*vhost), *target),
            _ => {
                return Err(invalid(
                    input,
                    "expected amqp://[USER:PASS@]HOST:PORT[/VHOST]/SERVICE[.HOST] (the service is missing)",
                ))
            }
        };
        let broker = AmqpBroker::parse_parts(input, authority, vhost)?;
        let target = decoded(input, target, "target")?;
        let (service, route) = match target.split_once('.') {
            None => (target.as_str(), Route::Shared),
            Some((service, "*")) => (service, Route::Fanout),
            Some((service, host)) => {
                check_instance(input, service, host)?;
                (service, Route::Instance(host.to_string()))
            }
        };
        check_service(input, service)?;
        Ok(AmqpAddr { broker: Arc::new(broker), service: service.to_string(), route })
    }
}

impl fmt::Display for AmqpAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.broker, self.service)?;
        match &self.route {
            Route::Shared => Ok(()),
            Route::Instance(host) => write!(f, ".{}", utf8_percent_encode(host, TARGET_ESCAPES)),
            Route::Fanout => f.write_str(".*"),
        }
    }
}

/// What is percent-encoded in an instance name when written back into an address.
const TARGET_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'/').add(b'%').add(b' ');

/// Properties of a JSON-RPC message: JSON, persistent, and the rest set by the caller.
fn properties() -> BasicProperties {
    BasicProperties::default().with_content_type("application/json".into()).with_delivery_mode(2)
}

/// Waits for the broker's confirm of one publish; a return (nothing to route it to) or a
/// nack is an error naming `to`.
async fn confirmed(confirm: lapin::Result<lapin::publisher_confirm::PublisherConfirm>, to: &str) -> Result<(), String> {
    let confirmation = match confirm {
        Ok(confirm) => confirm.await,
        Err(error) => Err(error),
    };
    match confirmation {
        Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => Ok(()),
        Ok(Confirmation::Ack(Some(returned))) | Ok(Confirmation::Nack(Some(returned))) => Err(format!(
            "the broker cannot route to {to} ({} {}): no server has declared it",
            returned.reply_code, returned.reply_text
        )),
        Ok(Confirmation::Nack(None)) => Err(format!("the broker refused the message to {to} (nack)")),
        Err(error) => Err(format!("publishing to {to} failed: {error}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Client side: the bus as a line connection.

/// Why the broker connection of a client ended, as its reading side reports it.
fn lost(addr: &AmqpAddr, why: impl fmt::Display) -> std::io::Error {
    std::io::Error::other(format!(
        "the broker connection for {addr} was lost ({why}); a call in flight may or may not have run"
    ))
}

/// Connects a client to `addr`: a broker connection, a channel in confirm mode and an
/// exclusive reply queue. Returns the reading and writing halves of a line connection: each
/// line written is published as one message (a fanout takes notifications only), each
/// message that comes to the reply queue is read as one line. When the broker connection is
/// lost the reading half fails with why. At most `max_message_size` bytes a line; each
/// message expires after `request_timeout` unanswered.
pub async fn connect(
    addr: &AmqpAddr,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_message_size: usize,
) -> Result<(impl AsyncRead + Unpin + Send + 'static, impl AsyncWrite + Unpin + Send + 'static), String> {
    let connection = addr.broker.connect(connect_timeout).await?;
    let setup = async {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let reply = channel.queue_declare("", options, FieldTable::default()).await?;
        let consumer = channel
            .basic_consume(
                reply.name().as_str(),
                "",
                BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
                FieldTable::default(),
            )
            .await?;
        lapin::Result::Ok((channel, reply.name().clone(), consumer))
    };
    let (channel, reply_queue, mut consumer) = match tokio::time::timeout(connect_timeout, setup).await {
        Ok(Ok(parts)) => parts,
        Ok(Err(error)) => return Err(format!("cannot set up a reply queue on {}: {error}", addr.broker)),
        Err(_) => {
            return Err(format!("cannot set up a reply queue on {}: no answer within {connect_timeout:?}", addr.broker))
        }
    };
    let (lines_tx, lines_rx) = mpsc::channel::<std::io::Result<Bytes>>(64);
    let watcher = {
        let (lines_tx, addr) = (lines_tx.clone(), addr.clone());
        on_error(&connection, move |error| {
            let _ = lines_tx.try_send(Err(lost(&addr, error)));
        })
    };
    let connection = Arc::new(connection);
    // Replies and events: each message one line.
    let replies = {
        let (lines_tx, addr, connection) = (lines_tx.clone(), addr.clone(), connection.clone());
        tokio::spawn(async move {
            let _connection = connection;
            while let Some(delivery) = consumer.next().await {
                match delivery {
                    Ok(delivery) => {
                        let mut line = delivery.data;
                        line.push(b'\n');
                        if lines_tx.send(Ok(Bytes::from(line))).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        let _ = lines_tx.send(Err(lost(&addr, error))).await;
                        return;
                    }
                }
            }
            let _ = lines_tx.send(Err(lost(&addr, "the broker cancelled the reply queue's consumer"))).await;
        })
    };
    let (app_side, pump_side) = tokio::io::duplex(64 * 1024);
    let (app_read, app_write) = tokio::io::split(app_side);
    drop(app_read);
    let publisher = Publisher {
        addr: addr.clone(),
        channel,
        reply_queue,
        expiration: request_timeout.as_millis().max(1).to_string(),
        next: AtomicU64::new(1),
    };
    tokio::spawn(async move {
        let _tasks = (AbortOnDrop(replies), AbortOnDrop(watcher));
        let (pump_read, _pump_write) = tokio::io::split(pump_side);
        let reader = LineReader::new(BufReader::new(pump_read), max_message_size);
        if let Err(why) = publisher.run(reader).await {
            let _ = lines_tx.send(Err(std::io::Error::other(why))).await;
        }
        let _ = connection.close(200, "client closed").await;
    });
    let reader = tokio_util::io::StreamReader::new(tokio_stream_of(lines_rx));
    Ok((reader, app_write))
}

/// Runs `handle` on each error the connection reports (its loss among them), in a task.
fn on_error(
    connection: &Connection,
    mut handle: impl FnMut(lapin::Error) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut events = Box::pin(connection.events_listener());
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let lapin::Event::Error(error) = event {
                handle(error);
            }
        }
    })
}

/// A receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> + Unpin {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Publishes a client's frames.
struct Publisher {
    addr: AmqpAddr,
    channel: Channel,
    reply_queue: ShortString,
    expiration: String,
    next: AtomicU64,
}

impl Publisher {
    /// Publishes each line read until the client closes its side (`Ok`) or a publish fails;
    /// confirms are awaited concurrently, so frames are pipelined.
    async fn run<R: AsyncRead + Unpin>(&self, mut reader: LineReader<BufReader<R>>) -> Result<(), String> {
        let mut confirms = FuturesUnordered::new();
        loop {
            tokio::select! {
                line = reader.next() => match line {
                    Ok(Some(Line::Frame(frame))) => {
                        let frame = frame.to_vec();
                        confirms.push(self.publish(frame));
                    }
                    Ok(Some(Line::TooLarge)) => return Err(format!("a frame to {} is over the size limit", self.addr)),
                    Ok(None) | Err(_) => break,
                },
                Some(outcome) = confirms.next(), if !confirms.is_empty() => outcome?,
            }
        }
        while let Some(outcome) = confirms.next().await {
            outcome?;
        }
        Ok(())
    }

    /// Publishes one frame and waits for its confirm.
    async fn publish(&self, frame: Vec<u8>) -> Result<(), String> {
        let to = self.addr.to_string();
        if self.addr.route == Route::Fanout && is_request(&frame) {
            return Err(format!(
                "{to} is a fanout: it carries notifications only; call {}/{} or one instance",
                self.addr.broker, self.addr.service
            ));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let properties = properties()
            .with_reply_to(self.reply_queue.clone())
            .with_correlation_id(id.to_string().into())
            .with_expiration(self.expiration.as_str().into());
        let (exchange, key) = self.addr.destination();
        // A message no queue takes comes back (mandatory) instead of vanishing, except on the
        // fanout, where no instance listening is not an error.
        let options = BasicPublishOptions { mandatory: self.addr.route != Route::Fanout, ..Default::default() };
        confirmed(self.channel.basic_publish(&exchange, &key, options, &frame, properties).await, &to).await
    }
}

/// Whether a frame holds a request (a call with an id), lone or batched.
fn is_request(frame: &[u8]) -> bool {
    let has_id = |value: &Value| value.get("id").is_some();
    match serde_json::from_slice::<Value>(frame) {
        Ok(Value::Array(items)) => items.iter().any(has_id),
        Ok(value) => has_id(&value),
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Server side.

/// A server's connection to the broker, with its queues declared.
pub(super) struct ServerSession {
    connection: Connection,
    consume: Channel,
    publish: Channel,
    queues: Vec<String>,
}

/// Connects and declares what a server of `addr` consumes: the durable shared queue, the
/// durable instance queue (when `addr` names an instance), and an exclusive queue bound to the
/// fanout exchange. At most `prefetch` messages are handed to it unacknowledged.
pub(super) async fn open(addr: &AmqpAddr, prefetch: u16, wait: Duration) -> Result<ServerSession, String> {
    if addr.route == Route::Fanout {
        return Err(format!("{addr}: a server listens on SERVICE or SERVICE.HOST, not on the fanout"));
    }
    let connection = addr.broker.connect(wait).await?;
    let setup = async {
        let consume = connection.create_channel().await?;
        consume.basic_qos(prefetch.max(1), BasicQosOptions::default()).await?;
        let publish = connection.create_channel().await?;
        publish.confirm_select(ConfirmSelectOptions::default()).await?;
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        let mut queues = vec![addr.service.clone()];
        if let Route::Instance(host) = &addr.route {
            queues.push(format!("{}.{host}", addr.service));
        }
        for queue in &queues {
            consume.queue_declare(queue, durable, FieldTable::default()).await?;
        }
        let exchange = addr.fanout_exchange();
        let exchange_options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        consume.exchange_declare(&exchange, ExchangeKind::Fanout, exchange_options, FieldTable::default()).await?;
        let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let fanout = consume.queue_declare("", exclusive, FieldTable::default()).await?;
        consume
            .queue_bind(fanout.name().as_str(), &exchange, "", QueueBindOptions::default(), FieldTable::default())
            .await?;
        queues.push(fanout.name().to_string());
        lapin::Result::Ok((consume, publish, queues))
    };
    match tokio::time::timeout(wait, setup).await {
        Ok(Ok((consume, publish, queues))) => Ok(ServerSession { connection, consume, publish, queues }),
        Ok(Err(error)) => Err(format!("cannot declare the queues of {addr}: {error}")),
        Err(_) => Err(format!("cannot declare the queues of {addr}: no answer within {wait:?}")),
    }
}

/// The waits between reconnection attempts: 100 ms doubling to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

/// Serves `addr` from `first` until shut down: consumes its queues, answers every message
/// through `engine` and acknowledges it once answered; reconnects (100 ms to 5 s apart) when
/// the broker connection is lost. At shutdown, stops consuming and lets running calls finish
/// within the grace; what was not acknowledged goes back to the queue.
pub(super) async fn serve(addr: AmqpAddr, first: ServerSession, engine: Arc<Engine>, shutdown: ShutdownSignal) {
    let limits = engine.limits().clone();
    let prefetch = u16::try_from(limits.max_in_flight).unwrap_or(u16::MAX);
    let subscribers = Arc::new(Subscriptions::default());
    let mut session = Some(first);
    let mut attempt = 0;
    loop {
        let current = match session.take() {
            Some(current) => current,
            None => {
                let wait = backoff(attempt);
                tokio::select! {
                    () = shutdown.wait() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                match open(&addr, prefetch, Duration::from_secs(10)).await {
                    Ok(current) => {
                        tracing::info!(address = %addr, "reconnected to the broker");
                        current
                    }
                    Err(why) => {
                        attempt += 1;
                        tracing::debug!(address = %addr, reason = %why, "the broker is still unreachable");
                        continue;
                    }
                }
            }
        };
        attempt = 0;
        match run_session(&addr, current, &engine, &subscribers, &shutdown).await {
            Ended::Shutdown => return,
            Ended::Lost(why) => {
                tracing::warn!(address = %addr, reason = %why, "lost the broker connection; reconnecting");
                subscribers.clear();
            }
        }
    }
}

enum Ended {
    Shutdown,
    Lost(String),
}

/// Serves one broker connection until it is lost or the server shuts down.
async fn run_session(
    addr: &AmqpAddr,
    session: ServerSession,
    engine: &Arc<Engine>,
    subscribers: &Arc<Subscriptions>,
    shutdown: &ShutdownSignal,
) -> Ended {
    let ServerSession { connection, consume, publish, queues } = session;
    let (lost_tx, mut lost_rx) = mpsc::channel::<String>(1);
    let _watcher = AbortOnDrop(on_error(&connection, move |error| {
        let _ = lost_tx.try_send(error.to_string());
    }));
    let mut streams = futures_util::stream::SelectAll::new();
    for queue in &queues {
        match consume.basic_consume(queue, "", BasicConsumeOptions::default(), FieldTable::default()).await {
            Ok(consumer) => streams.push(consumer),
            Err(error) => return Ended::Lost(format!("cannot consume {queue}: {error}")),
        }
    }
    tracing::info!(address = %addr, queues = ?queues, "consuming");
    let in_flight = Arc::new(InFlight::new(engine.limits().max_in_flight));
    let publish = Arc::new(publish);
    let mut running = JoinSet::new();
    let ended = loop {
        tokio::select! {
            () = shutdown.wait() => break Ended::Shutdown,
            Some(why) = lost_rx.recv() => break Ended::Lost(why),
            delivery = streams.next() => match delivery {
                Some(Ok(delivery)) => {
                    let (engine, publish, in_flight, subscribers) =
                        (engine.clone(), publish.clone(), in_flight.clone(), subscribers.clone());
                    running.spawn(answer(delivery, engine, publish, in_flight, subscribers));
                }
                Some(Err(error)) => break Ended::Lost(error.to_string()),
                None => break Ended::Lost("the broker cancelled the consumers".to_string()),
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    };
    drop(streams);
    if matches!(ended, Ended::Shutdown) {
        // Running calls finish and are acknowledged; what is still queued stays for another
        // instance, and whatever was delivered but not answered goes back to its queue.
        let grace = engine.limits().shutdown_grace;
        let drain = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(address = %addr, "calls still running after the shutdown grace; their messages are requeued");
        }
        let _ = connection.close(200, "server shutting down").await;
    }
    running.abort_all();
    ended
}

/// Answers one message: runs it through the engine (or the subscription table, for a lone
/// `rpc.subscribe`/`rpc.unsubscribe`), publishes the answer to its `reply_to` with its
/// `correlation_id`, and acknowledges it once the answer is confirmed.
async fn answer(
    delivery: lapin::message::Delivery,
    engine: Arc<Engine>,
    publish: Arc<Channel>,
    in_flight: Arc<InFlight>,
    subscribers: Arc<Subscriptions>,
) {
    let reply_to = delivery.properties.reply_to().clone();
    let correlation = delivery.properties.correlation_id().clone();
    let text = match subscription_call(&engine, &delivery.data) {
        Some(incoming) => match &reply_to {
            Some(reply_to) => subscribers.answer(&engine, &publish, reply_to, incoming).await,
            None => None,
        },
        None => engine.handle(&delivery.data, &in_flight).await.text,
    };
    if let Some(text) = text {
        match &reply_to {
            Some(reply_to) => {
                let mut properties = properties();
                if let Some(correlation) = correlation {
                    properties = properties.with_correlation_id(correlation);
                }
                let published = publish
                    .basic_publish("", reply_to.as_str(), BasicPublishOptions::default(), text.as_bytes(), properties)
                    .await;
                if let Err(why) = confirmed(published, reply_to.as_str()).await {
                    // Not acknowledged: the request is delivered again (to a new connection).
                    tracing::warn!(reason = %why, "cannot publish an answer");
                    return;
                }
            }
            None => tracing::debug!("a request without reply_to: its answer is dropped"),
        }
    }
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        tracing::debug!(%error, "cannot acknowledge a message (the connection is gone; it will be redelivered)");
    }
}

/// A lone `rpc.subscribe` or `rpc.unsubscribe`, when the server has events.
fn subscription_call(engine: &Engine, frame: &[u8]) -> Option<Incoming> {
    engine.events()?;
    // A cheap look before parsing every frame twice.
    let text = std::str::from_utf8(frame).ok()?;
    if !text.contains("rpc.subscribe") && !text.contains("rpc.unsubscribe") {
        return None;
    }
    let incoming = engine.parse(frame);
    matches!(&incoming, Incoming::Single(Entry::Call(call)) if call.method == SUBSCRIBE || call.method == UNSUBSCRIBE)
        .then_some(incoming)
}

/// The reply queues subscribed to events: each has a task owning its subscriber, which answers
/// its subscription calls and casts its events to it.
#[derive(Default)]
struct Subscriptions {
    by_queue: std::sync::Mutex<HashMap<String, mpsc::Sender<Command>>>,
}

/// A subscription call for the task of one reply queue.
struct Command {
    subscribe: bool,
    params: Params,
    answer: oneshot::Sender<Result<Value, RpcError>>,
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Command>>> {
        self.by_queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets every subscription (their queues went with the broker connection): their
    /// tasks end.
    fn clear(&self) {
        self.lock().clear();
    }

    /// Answers a subscription call from `reply_to`, starting its task at its first call.
    async fn answer(
        self: &Arc<Self>,
        engine: &Engine,
        publish: &Arc<Channel>,
        reply_to: &ShortString,
        incoming: Incoming,
    ) -> Option<String> {
        let Incoming::Single(Entry::Call(call)) = incoming else { return None };
        let hub = engine.events()?;
        let queue = reply_to.to_string();
        let (answer, outcome) = oneshot::channel();
        let mut command = Command { subscribe: call.method == SUBSCRIBE, params: call.params, answer };
        // Twice at most: a task that has just ended leaves a closed sender behind.
        for _ in 0..2 {
            let sender = self
                .lock()
                .entry(queue.clone())
                .or_insert_with(|| {
                    let (sender, commands) = mpsc::channel(16);
                    let subscriber = Subscriber::new(hub, engine.limits());
                    tokio::spawn(cast_events(self.clone(), queue.clone(), subscriber, commands, publish.clone()));
                    sender
                })
                .clone();
            match sender.send(command).await {
                Ok(()) => break,
                Err(mpsc::error::SendError(returned)) => {
                    command = returned;
                    self.lock().remove(&queue);
                }
            }
        }
        let outcome =
            outcome.await.unwrap_or_else(|_| Err(RpcError::new(-32603, "the subscription ended while answering")));
        call.id.map(|id| Response { id, outcome }.to_json())
    }
}

/// Owns the subscriber of one reply queue: answers its subscription calls and casts its events
/// to it until it is no longer subscribed, loses its subscription, its queue is gone (the broker
/// returns what it cannot route), or the broker connection is.
async fn cast_events(
    subscriptions: Arc<Subscriptions>,
    queue: String,
    mut subscriber: Subscriber,
    mut commands: mpsc::Receiver<Command>,
    publish: Arc<Channel>,
) {
    let mut waiting: VecDeque<Payload> = VecDeque::new();
    let options = BasicPublishOptions { mandatory: true, ..Default::default() };
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(Command { subscribe, params, answer }) = command else { break };
                let outcome = if subscribe { subscriber.subscribe(params) } else { subscriber.unsubscribe(params) };
                let _ = answer.send(outcome);
                if !subscriber.active() {
                    break;
                }
            }
            () = subscriber.wait(), if subscriber.active() => {
                let lost = subscriber.take(&mut waiting);
                let mut lines: Vec<Vec<u8>> = waiting.drain(..).map(|payload| trimmed(payload.line())).collect();
                lines.extend(lost.map(|lost| trimmed(&lost.line())));
                let mut gone = false;
                for line in lines {
                    let published = publish.basic_publish("", &queue, options, &line, properties()).await;
                    if let Err(why) = confirmed(published, &queue).await {
                        tracing::debug!(reason = %why, "an event subscriber is gone");
                        gone = true;
                        break;
                    }
                }
                if gone || !subscriber.active() {
                    break;
                }
            }
        }
    }
    // Its sender in the table is closed now, unless a newer task for the queue replaced it.
    drop(commands);
    let mut by_queue = subscriptions.lock();
    if by_queue.get(&queue).is_some_and(mpsc::Sender::is_closed) {
        by_queue.remove(&queue);
    }
}

/// A line without its newline.
fn trimmed(line: &[u8]) -> Vec<u8> {
    line.strip_suffix(b"\n").unwrap_or(line).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses_parse_with_defaults_and_print_without_the_password() {
        let broker: AmqpBroker = "amqp://127.0.0.1:5673".parse().unwrap();
        assert_eq!((broker.user.as_str(), broker.password.as_str(), broker.vhost.as_str()), ("guest", "guest", "/"));
        assert_eq!(broker.to_string(), "amqp://127.0.0.1:5673");
        assert_eq!(broker.uri(), "amqp://guest:guest@127.0.0.1:5673/%2F");

        let broker: AmqpBroker = "amqp://nova:s%40cret@[::1]/prod".parse().unwrap();
        assert_eq!((broker.host.as_str(), broker.port), ("::1", DEFAULT_PORT));
        assert_eq!((broker.user.as_str(), broker.password.as_str(), broker.vhost.as_str()), ("nova", "s@cret", "prod"));
        assert_eq!(broker.to_string(), "amqp://nova@[::1]:5672/prod");
        assert_eq!("amqp://h:1/%2f".parse::<AmqpBroker>().unwrap().vhost, "/");
    }

    #[test]
    fn service_addresses_name_a_queue_an_instance_or_the_fanout() {
        let addr: AmqpAddr = "amqp://127.0.0.1:5672/agent".parse().unwrap();
        assert_eq!((addr.service.as_str(), &addr.route, addr.queue()), ("agent", &Route::Shared, Some("agent".into())));
        let addr: AmqpAddr = "amqp://127.0.0.1:5672/vh/agent.compute-1:5672".parse().unwrap();
        assert_eq!(addr.route, Route::Instance("compute-1:5672".into()));
        assert_eq!(addr.broker.vhost, "vh");
        assert_eq!(addr.queue().unwrap(), "agent.compute-1:5672");
        assert_eq!(addr.to_string(), "amqp://127.0.0.1:5672/vh/agent.compute-1:5672");
        let fanout: AmqpAddr = "amqp://h/agent.*".parse().unwrap();
        assert_eq!(
            (fanout.route.clone(), fanout.destination()),
            (Route::Fanout, ("agent_fanout".into(), String::new()))
        );
        for text in ["amqp://h:1/agent", "amqp://h:1/v/agent.x.y", "amqp://h:1/agent.*"] {
            let addr: AmqpAddr = text.parse().unwrap();
            assert_eq!(addr.to_string().parse::<AmqpAddr>().unwrap(), addr);
        }
        // The password is never shown.
        let secret: AmqpAddr = "amqp://u:p@h:1/v/agent.x.y".parse().unwrap();
        assert_eq!(secret.to_string(), "amqp://u@h:1/v/agent.x.y");
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let cases = [
            ("amqp://", "service is missing"),
            ("amqp:///agent", "host is missing"),
            ("amqp://h:0/agent", "not a port"),
            ("amqp://h:x/agent", "not a port"),
            ("amqp://::1/agent", "brackets"),
            ("amqp://u@h/agent", "password is missing"),
            ("amqp://h/", "service is missing"),
            ("amqp://h/a/b/c", "service is missing"),
            ("amqp://h/ag ent", "service name"),
            ("amqp://h/agent.", "empty"),
            ("amqps://h/agent", "TLS"),
            ("amqp://h/agent?x=1", "query"),
        ];
        for (text, why) in cases {
            let error = text.parse::<AmqpAddr>().unwrap_err();
            assert!(error.reason.contains(why), "{text}: {error}");
        }
        assert!("amqp://h/a/b".parse::<AmqpBroker>().unwrap_err().reason.contains("one path segment"));
        let long = format!("amqp://h/agent.{}", "x".repeat(250));
        assert!(long.parse::<AmqpAddr>().unwrap_err().reason.contains("longer than a queue name"));
    }

    #[test]
    fn requests_are_told_from_notifications() {
        assert!(is_request(br#"{"jsonrpc":"2.0","method":"m","id":1}"#));
        assert!(!is_request(br#"{"jsonrpc":"2.0","method":"m"}"#));
        assert!(is_request(br#"[{"jsonrpc":"2.0","method":"m"},{"jsonrpc":"2.0","method":"m","id":2}]"#));
        assert!(!is_request(br#"[{"jsonrpc":"2.0","method":"m"}]"#));
    }

    #[test]
    fn backoff_grows_to_five_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }
}
