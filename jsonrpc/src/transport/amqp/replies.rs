//! One reply queue per broker connection, shared by every client of the process, as
//! oslo.messaging keeps one per transport: a client is an entry in a table, not a channel
//! with a queue of its own, so a process calling a thousand services holds one channel and
//! one queue for all of them, and a new client costs the broker nothing.
//!
//! Every client's frames are published on the hub's channel (in confirm mode) with `reply_to`
//! naming the hub's exclusive queue and a `correlation_id` of `CLIENT.SEQUENCE`; the hub's
//! consumer hands each reply to the client its correlation id names. When the connection or
//! the channel is lost, every client registered learns it at once and the next client opens
//! a new hub. Event subscriptions need a queue of their own (a gone queue is how a server
//! learns its subscriber left): the client module gives one to a client that subscribes.

use std::{
    collections::{HashMap, HashSet},
    fmt, io,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, LazyLock, Mutex, PoisonError,
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::{
    options::{BasicConsumeOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions},
    types::{FieldTable, ShortString},
    Channel, ExchangeKind,
};
use tokio::sync::mpsc;

use super::{client::AbortOnDrop, connection, connection::SharedChannel, AmqpAddr, AmqpBroker};

/// Where the lines read by a client go: each reply as one line, or why the hub ended.
pub(super) type Lines = mpsc::UnboundedSender<io::Result<Bytes>>;

/// Why the broker connection of a client ended, as its reading side reports it.
fn lost(addr: &AmqpAddr, why: impl fmt::Display) -> io::Error {
    io::Error::other(format!(
        "the broker connection for {addr} was lost ({why}); a call in flight may or may not have run"
    ))
}

/// A broker connection's shared reply queue and the channel every client publishes on.
pub(super) struct ReplyHub {
    channel: SharedChannel,
    queue: ShortString,
    routes: Mutex<Routes>,
    /// A hub of one client (its own queue, for events): everything is its, casts included.
    alone: bool,
    next_client: AtomicU64,
    /// The fanout exchanges declared on this channel (publishing to one that does not exist
    /// would close the channel every client shares).
    fanouts: Mutex<HashSet<String>>,
    _consumer: AbortOnDrop,
}

/// The clients registered, until the hub ends (then why).
#[derive(Default)]
struct Routes {
    clients: HashMap<u64, Client>,
    ended: Option<String>,
}

/// A registered client: where its replies go, and the address it calls (for errors).
struct Client {
    lines: Lines,
    addr: AmqpAddr,
}

/// A client's place in a hub: the correlation ids it publishes with; unregistered when dropped.
pub(super) struct Registration {
    /// The hub.
    pub(super) hub: Arc<ReplyHub>,
    client: u64,
    next: AtomicU64,
}

/// The current hub of one broker (`None` before the first client), locked while one opens.
type HubCell = Arc<tokio::sync::Mutex<Option<Arc<ReplyHub>>>>;

/// The hub of each broker this process calls, opened on first use and again once lost.
static HUBS: LazyLock<Mutex<HashMap<AmqpBroker, HubCell>>> = LazyLock::new(Default::default);

/// Registers a client of `addr` (reached through `broker`) whose replies go to `lines` on the
/// process's hub of `broker`, opening the hub (within `wait`) when there is none or the last
/// one ended.
pub(super) async fn register(
    broker: &AmqpBroker,
    addr: &AmqpAddr,
    wait: Duration,
    lines: Lines,
) -> Result<Registration, String> {
    let cell = HUBS.lock().unwrap_or_else(PoisonError::into_inner).entry(broker.clone()).or_default().clone();
    let mut current = tokio::time::timeout(wait, cell.lock())
        .await
        .map_err(|_| format!("cannot set up a reply queue on {broker}: no answer within {wait:?}"))?;
    if let Some(registration) = current.as_ref().and_then(|hub| hub.add(addr, lines.clone())) {
        return Ok(registration);
    }
    let hub = ReplyHub::open(broker, wait, false).await?;
    *current = Some(hub.clone());
    hub.add(addr, lines).ok_or_else(|| format!("the reply queue on {broker} ended as it was set up"))
}

/// Registers a client on a hub of its own (not shared): a client that subscribes to events
/// needs a queue that goes when it goes.
pub(super) async fn register_alone(
    broker: &AmqpBroker,
    addr: &AmqpAddr,
    wait: Duration,
    lines: Lines,
) -> Result<Registration, String> {
    ReplyHub::open(broker, wait, true)
        .await?
        .add(addr, lines)
        .ok_or_else(|| format!("the reply queue on {broker} ended as it was set up"))
}

impl ReplyHub {
    /// A channel in confirm mode on the shared connection, an exclusive reply queue and its
    /// consumer, which routes each reply to its client (`alone`: to its one client, events
    /// included).
    async fn open(broker: &AmqpBroker, wait: Duration, alone: bool) -> Result<Arc<ReplyHub>, String> {
        let channel = connection::channel(broker, wait).await?;
        let setup = async {
            let lapin = &channel.channel;
            lapin.confirm_select(ConfirmSelectOptions::default()).await?;
            let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
            let queue = lapin.queue_declare("", options, FieldTable::default()).await?;
            let consumer = lapin
                .basic_consume(
                    queue.name().as_str(),
                    "",
                    BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
                    FieldTable::default(),
                )
                .await?;
            lapin::Result::Ok((queue.name().clone(), consumer))
        };
        let (queue, mut consumer) = match tokio::time::timeout(wait, setup).await {
            Ok(Ok(parts)) => parts,
            Ok(Err(error)) => return Err(format!("cannot set up a reply queue on {broker}: {error}")),
            Err(_) => return Err(format!("cannot set up a reply queue on {broker}: no answer within {wait:?}")),
        };
        let lost = channel.lost();
        Ok(Arc::new_cyclic(|hub: &std::sync::Weak<ReplyHub>| {
            let hub = hub.clone();
            let consumer = tokio::spawn(async move {
                let mut lost = std::pin::pin!(lost);
                let why = loop {
                    let delivery = tokio::select! {
                        why = &mut lost => break why,
                        delivery = consumer.next() => delivery,
                    };
                    let Some(hub) = hub.upgrade() else { return };
                    match delivery {
                        Some(Ok(delivery)) => hub.route(delivery),
                        Some(Err(error)) => break error.to_string(),
                        None => break "the broker cancelled the reply queue's consumer".to_string(),
                    }
                };
                if let Some(hub) = hub.upgrade() {
                    hub.end(why);
                }
            });
            ReplyHub {
                channel,
                queue,
                routes: Mutex::new(Routes::default()),
                alone,
                next_client: AtomicU64::new(1),
                fanouts: Mutex::new(HashSet::new()),
                _consumer: AbortOnDrop(consumer),
            }
        }))
    }

    /// Registers a client, unless the hub has ended.
    fn add(self: &Arc<Self>, addr: &AmqpAddr, lines: Lines) -> Option<Registration> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if routes.ended.is_some() || !self.channel.channel.status().connected() {
            return None;
        }
        let client = self.next_client.fetch_add(1, Ordering::Relaxed);
        routes.clients.insert(client, Client { lines, addr: addr.clone() });
        Some(Registration { hub: self.clone(), client, next: AtomicU64::new(1) })
    }

    /// Hands a reply to the client its correlation id names (anything to the one client of a
    /// hub `alone`); one for a client gone is dropped.
    fn route(&self, delivery: lapin::message::Delivery) {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let client = if self.alone {
            routes.clients.values().next()
        } else {
            delivery
                .properties
                .correlation_id()
                .as_ref()
                .and_then(|id| id.as_str().split_once('.'))
                .and_then(|(client, _)| client.parse::<u64>().ok())
                .and_then(|client| routes.clients.get(&client))
        };
        match client {
            Some(client) => {
                let mut line = delivery.data;
                line.push(b'\n');
                let _ = client.lines.send(Ok(Bytes::from(line)));
            }
            None => tracing::debug!(queue = %self.queue, "a reply for a client that is gone: dropped"),
        }
    }

    /// Ends the hub: every client registered reads why.
    fn end(&self, why: String) {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, client) in routes.clients.drain() {
            let _ = client.lines.send(Err(lost(&client.addr, &why)));
        }
        routes.ended = Some(why);
    }

    /// The channel every client publishes on.
    pub(super) fn channel(&self) -> &Channel {
        &self.channel.channel
    }

    /// The shared reply queue.
    pub(super) fn queue(&self) -> &ShortString {
        &self.queue
    }

    /// Declares the fanout exchange `exchange` as its servers do, once per hub, so that a
    /// publish to it never closes the shared channel for want of it.
    pub(super) async fn declare_fanout(&self, exchange: &str) -> Result<(), String> {
        if self.fanouts.lock().unwrap_or_else(PoisonError::into_inner).contains(exchange) {
            return Ok(());
        }
        let options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        self.channel()
            .exchange_declare(exchange, ExchangeKind::Fanout, options, FieldTable::default())
            .await
            .map_err(|error| format!("cannot declare the fanout exchange {exchange}: {error}"))?;
        self.fanouts.lock().unwrap_or_else(PoisonError::into_inner).insert(exchange.to_string());
        Ok(())
    }
}

impl Registration {
    /// The correlation id of the client's next frame, `CLIENT.SEQUENCE`.
    pub(super) fn next_correlation_id(&self) -> ShortString {
        format!("{}.{}", self.client, self.next.fetch_add(1, Ordering::Relaxed)).into()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.routes.lock().unwrap_or_else(PoisonError::into_inner).clients.remove(&self.client);
    }
}
