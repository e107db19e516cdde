//! Server side: a service's queues consumed on a channel of the process's shared broker
//! connection, each message answered through the engine.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{FieldTable, ShortString},
    Channel, ExchangeKind,
};
use serde_json::Value;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
};
use vproto_listen::ShutdownSignal;
use vproto_support::rpc::{
    events::{SUBSCRIBE, UNSUBSCRIBE},
    Params, RpcError,
};

use super::{
    confirmed,
    connection::{self, BrokerError, SharedChannel},
    properties, AmqpAddr, Route,
};
use crate::{
    engine::{Engine, InFlight},
    events::{Payload, Subscriber},
    message::{Entry, Incoming, Response},
};

/// A server's channel on the shared broker connection, with its queues declared; `None` while
/// the broker cannot be reached (the serving loop connects when it can).
pub(in crate::transport) struct ServerSession(Option<Session>);

struct Session {
    channel: SharedChannel,
    queues: Vec<String>,
}

/// Checks `addr` and connects: declares what a server of `addr` consumes (the durable shared
/// queue, the durable instance queue when `addr` names an instance, and an exclusive queue
/// bound to the fanout exchange) on a channel of the shared connection, at most `prefetch`
/// messages handed to it unacknowledged. A broker that cannot be reached within `wait` is not
/// an error: it is logged, and [`serve`] keeps trying with backoff until it can. A broker that
/// answers but cannot be used (its certificate not trusted, the login refused) is.
pub(in crate::transport) async fn open(
    addr: &AmqpAddr,
    prefetch: u16,
    wait: Duration,
) -> Result<ServerSession, String> {
    if addr.route == Route::Fanout {
        return Err(format!("{addr}: a server listens on SERVICE or SERVICE.HOST, not on the fanout"));
    }
    if addr.broker.secure && addr.broker.tls.is_none() {
        return Err(format!("{}: no CA to check the broker's certificate against: give --tls-ca FILE", addr.broker));
    }
    match session(addr, prefetch, wait).await {
        Ok(session) => Ok(ServerSession(Some(session))),
        // Trying again would fail the same way (a certificate not trusted, a login refused).
        Err(why) if why.permanent => Err(format!("{addr}: {why}")),
        Err(why) => {
            tracing::warn!(address = %addr, reason = %why, "the broker cannot be reached yet; serving once it can (retrying every 0.1 to 5 s)");
            Ok(ServerSession(None))
        }
    }
}

async fn session(addr: &AmqpAddr, prefetch: u16, wait: Duration) -> Result<Session, BrokerError> {
    let channel = connection::channel(&addr.broker, wait).await?;
    let setup = async {
        let channel = &channel.channel;
        channel.basic_qos(prefetch.max(1), BasicQosOptions::default()).await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        let mut queues = vec![addr.service.clone()];
        if let Route::Instance(host) = &addr.route {
            queues.push(format!("{}.{host}", addr.service));
        }
        for queue in &queues {
            channel.queue_declare(queue, durable, FieldTable::default()).await?;
        }
        let exchange = addr.fanout_exchange();
        let exchange_options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        channel.exchange_declare(&exchange, ExchangeKind::Fanout, exchange_options, FieldTable::default()).await?;
        let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let fanout = channel.queue_declare("", exclusive, FieldTable::default()).await?;
        channel
            .queue_bind(fanout.name().as_str(), &exchange, "", QueueBindOptions::default(), FieldTable::default())
            .await?;
        queues.push(fanout.name().to_string());
        lapin::Result::Ok(queues)
    };
    match tokio::time::timeout(wait, setup).await {
        Ok(Ok(queues)) => Ok(Session { channel, queues }),
        Ok(Err(error)) => Err(BrokerError::transient(format!("cannot declare the queues of {addr}: {error}"))),
        Err(_) => {
            Err(BrokerError::transient(format!("cannot declare the queues of {addr}: no answer within {wait:?}")))
        }
    }
}

/// The waits between reconnection attempts: 100 ms doubling to 5 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

/// Serves `addr` from `first` until shut down: consumes its queues, answers every message
/// through `engine` and acknowledges it once answered; connects (100 ms to 5 s apart) while
/// the broker cannot be reached, at start or after the connection was lost. At shutdown,
/// stops consuming and lets running calls finish within the grace; what was not acknowledged
/// goes back to the queue.
pub(in crate::transport) async fn serve(
    addr: AmqpAddr,
    first: ServerSession,
    engine: Arc<Engine>,
    shutdown: ShutdownSignal,
) {
    let limits = engine.limits().clone();
    let prefetch = u16::try_from(limits.max_in_flight).unwrap_or(u16::MAX);
    let subscribers = Arc::new(Subscriptions::default());
    let mut connected_before = first.0.is_some();
    let mut session = first.0;
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
                match self::session(&addr, prefetch, Duration::from_secs(10)).await {
                    Ok(current) => {
                        let what =
                            if connected_before { "reconnected to the broker" } else { "connected to the broker" };
                        tracing::info!(address = %addr, "{what}");
                        connected_before = true;
                        current
                    }
                    Err(why) => {
                        attempt += 1;
                        // Once a minute or so at most, once the backoff is at its longest.
                        if attempt % 12 == 0 {
                            tracing::warn!(address = %addr, reason = %why, "the broker is still unreachable");
                        } else {
                            tracing::debug!(address = %addr, reason = %why, "the broker is still unreachable");
                        }
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

/// Serves on one channel until its connection is lost or the server shuts down.
async fn run_session(
    addr: &AmqpAddr,
    session: Session,
    engine: &Arc<Engine>,
    subscribers: &Arc<Subscriptions>,
    shutdown: &ShutdownSignal,
) -> Ended {
    let Session { channel, queues } = session;
    let consume = &channel.channel;
    let mut lost = std::pin::pin!(channel.lost());
    let mut streams = futures_util::stream::SelectAll::new();
    for queue in &queues {
        match consume.basic_consume(queue, "", BasicConsumeOptions::default(), FieldTable::default()).await {
            Ok(consumer) => streams.push(consumer),
            Err(error) => return Ended::Lost(format!("cannot consume {queue}: {error}")),
        }
    }
    tracing::info!(address = %addr, queues = ?queues, "consuming");
    let in_flight = Arc::new(InFlight::new(engine.limits().max_in_flight));
    let publish = Arc::new(consume.clone());
    let mut running = JoinSet::new();
    let ended = loop {
        tokio::select! {
            () = shutdown.wait() => break Ended::Shutdown,
            why = &mut lost => break Ended::Lost(why),
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
        channel.close("server shutting down").await;
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
