//! Broker connections shared by every client and server of a process: one per broker (its
//! address, credentials and TLS), each client or server a channel on it.
//!
//! The first user of a broker opens the connection; the others take a channel on it. When
//! the connection is lost, every user sees it at once ([`SharedChannel::lost`]) and the
//! first one that asks for a channel again opens a new connection, which the others then
//! share: a process reconnects once, not once per client. A connection takes as many
//! channels as the broker allows (`channel_max`, 2,047 by default on RabbitMQ); past that a
//! second connection is opened beside it.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, LazyLock, Mutex,
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;

use super::AmqpBroker;

/// The connections of one broker, and the last failure to open one.
#[derive(Default)]
struct Shared {
    opening: tokio::sync::Mutex<Opening>,
}

#[derive(Default)]
struct Opening {
    connections: Vec<Arc<Slot>>,
    /// When the last attempt to connect failed, and why: callers that queued behind it get
    /// its error instead of trying again each in turn.
    failed: Option<(Instant, BrokerError)>,
}

/// One connection and how many channels are open on it.
struct Slot {
    connection: Connection,
    channels: AtomicUsize,
    capacity: usize,
    lost: watch::Receiver<Option<String>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Slot {
    fn new(connection: Connection) -> Slot {
        let (lost_tx, lost) = watch::channel(None);
        let mut events = Box::pin(connection.events_listener());
        let watcher = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let lapin::Event::Error(error) = event {
                    let _ = lost_tx.send(Some(error.to_string()));
                    return;
                }
            }
            let _ = lost_tx.send(Some("the connection ended".to_string()));
        });
        // Channel 0 is the connection's own; a broker offering 0 sets no limit.
        let capacity = match connection.configuration().channel_max() {
            0 => usize::from(u16::MAX),
            max => usize::from(max),
        };
        Slot { connection, channels: AtomicUsize::new(0), capacity, lost, watcher }
    }

    fn usable(&self) -> bool {
        self.lost.borrow().is_none() && self.connection.status().connected()
    }

    /// Counts one more channel, if there is room for it.
    fn reserve(&self) -> bool {
        self.channels
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < self.capacity).then_some(open + 1))
            .is_ok()
    }

    fn release(&self) {
        self.channels.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a broker connection or channel could not be had: the message, and whether trying again
/// cannot help (the broker's certificate is not trusted, or it refused the credentials) rather
/// than the broker being unreachable for now.
#[derive(Clone, Debug)]
pub(super) struct BrokerError {
    pub(super) message: String,
    pub(super) permanent: bool,
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<BrokerError> for String {
    fn from(error: BrokerError) -> String {
        error.message
    }
}

impl BrokerError {
    /// A failure that may pass: the broker unreachable or slow for now.
    pub(super) fn transient(message: String) -> BrokerError {
        BrokerError { message, permanent: false }
    }
}

/// Whether a failure to connect would fail again the same way: TLS refused (rustls reports a
/// certificate it does not trust as invalid data) or the broker refused the login.
fn is_permanent(error: &lapin::Error) -> bool {
    match error.kind() {
        lapin::ErrorKind::IOError(io) => io.kind() == std::io::ErrorKind::InvalidData,
        // 403 ACCESS_REFUSED: the user, the password or the virtual host.
        lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id() == 403,
        _ => false,
    }
}

/// The brokers this process is connected to.
static BROKERS: LazyLock<Mutex<HashMap<AmqpBroker, Arc<Shared>>>> = LazyLock::new(Default::default);

/// A channel on the shared connection to a broker; closed when dropped.
pub(super) struct SharedChannel {
    /// The channel.
    pub(super) channel: Channel,
    lost: watch::Receiver<Option<String>>,
    slot: Arc<Slot>,
}

impl SharedChannel {
    /// Resolves with why, once the connection this channel is on is lost.
    pub(super) fn lost(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            match lost.wait_for(Option::is_some).await {
                Ok(why) => why.clone().unwrap_or_default(),
                Err(_) => "the connection ended".to_string(),
            }
        }
    }

    /// Closes the channel now (the broker cancels its consumers and deletes its auto-delete
    /// queues), rather than when dropped.
    pub(super) async fn close(&self, why: &str) {
        if self.channel.status().connected() {
            let _ = self.channel.close(200, why).await;
        }
    }
}

impl Drop for SharedChannel {
    fn drop(&mut self) {
        self.slot.release();
        if self.channel.status().connected() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let channel = self.channel.clone();
                runtime.spawn(async move {
                    let _ = channel.close(200, "closed").await;
                });
            }
        }
    }
}

/// The number of connections this process holds open to `broker` now (tests, figures).
pub fn connections_to(broker: &AmqpBroker) -> usize {
    let shared = BROKERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(broker).cloned();
    shared.map_or(0, |shared| {
        shared.opening.try_lock().map_or(0, |opening| opening.connections.iter().filter(|slot| slot.usable()).count())
    })
}

/// The number of channels this process holds open to `broker` now, over all its connections
/// (tests, figures).
pub fn channels_to(broker: &AmqpBroker) -> usize {
    let shared = BROKERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(broker).cloned();
    shared.map_or(0, |shared| {
        shared.opening.try_lock().map_or(0, |opening| {
            opening
                .connections
                .iter()
                .filter(|slot| slot.usable())
                .map(|slot| slot.channels.load(Ordering::Acquire))
                .sum()
        })
    })
}

/// A new channel on the shared connection to `broker`, opening that connection (within `wait`)
/// when there is none or it was lost.
pub(super) async fn channel(broker: &AmqpBroker, wait: Duration) -> Result<SharedChannel, BrokerError> {
    let shared =
        BROKERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(broker.clone()).or_default().clone();
    let asked = Instant::now();
    let slot = {
        let mut opening = tokio::time::timeout(wait, shared.opening.lock()).await.map_err(|_| {
            BrokerError::transient(format!("cannot connect to the broker {broker}: no connection within {wait:?}"))
        })?;
        opening.connections.retain(|slot| slot.usable());
        match opening.connections.iter().find(|slot| slot.reserve()) {
            Some(slot) => slot.clone(),
            None => {
                if let Some((when, why)) = &opening.failed {
                    if *when >= asked {
                        return Err(why.clone());
                    }
                }
                match connect(broker, wait).await {
                    Ok(connection) => {
                        let slot = Arc::new(Slot::new(connection));
                        slot.reserve();
                        opening.connections.push(slot.clone());
                        opening.failed = None;
                        slot
                    }
                    Err(why) => {
                        opening.failed = Some((Instant::now(), why.clone()));
                        return Err(why);
                    }
                }
            }
        }
    };
    match tokio::time::timeout(wait, slot.connection.create_channel()).await {
        Ok(Ok(channel)) => Ok(SharedChannel { channel, lost: slot.lost.clone(), slot }),
        Ok(Err(error)) => {
            slot.release();
            Err(BrokerError::transient(format!("cannot open a channel to the broker {broker}: {error}")))
        }
        Err(_) => {
            slot.release();
            Err(BrokerError::transient(format!(
                "cannot open a channel to the broker {broker}: no answer within {wait:?}"
            )))
        }
    }
}

/// Opens a connection to `broker` within `wait`, on the tokio runtime; over TLS for
/// `amqps://`, trusting the broker's CA only.
async fn connect(broker: &AmqpBroker, wait: Duration) -> Result<Connection, BrokerError> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let tls = match (broker.secure, &broker.tls) {
        (false, _) => lapin::tcp::OwnedTLSConfig::default(),
        (true, Some(tls)) => tls.amqp_config(),
        (true, None) => {
            return Err(BrokerError {
                message: format!(
                    "{broker} is over TLS but no CA was given to check its certificate: give --tls-ca FILE \
                     (ClientOptions::tls or AmqpBroker::tls)"
                ),
                permanent: true,
            })
        }
    };
    match tokio::time::timeout(wait, Connection::connect_with_config(&broker.uri(), properties, tls)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(BrokerError {
            message: format!("cannot connect to the broker {broker}: {error}"),
            permanent: is_permanent(&error),
        }),
        Err(_) => {
            Err(BrokerError::transient(format!("cannot connect to the broker {broker}: no connection within {wait:?}")))
        }
    }
}
