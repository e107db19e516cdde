//! Client side: the bus as a line connection.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;
use futures_util::{stream::FuturesUnordered, StreamExt};
use lapin::{
    options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::{FieldTable, ShortString},
    Channel,
};
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::mpsc,
};

use super::{confirmed, connection, properties, AmqpAddr, Route};
use crate::{
    client::ClientOptions,
    transport::{
        framing::{Line, LineReader},
        IdleFreeReader,
    },
};

/// Why the broker connection of a client ended, as its reading side reports it.
fn lost(addr: &AmqpAddr, why: impl fmt::Display) -> std::io::Error {
    std::io::Error::other(format!(
        "the broker connection for {addr} was lost ({why}); a call in flight may or may not have run"
    ))
}

/// Connects a client to `addr`: a channel in confirm mode on the process's shared connection
/// to the broker (opened if there is none) and an exclusive reply queue. Returns the reading
/// and writing halves of a line connection: each line written is published as one message (a
/// fanout takes notifications only), each message that comes to the reply queue is read as
/// one line. When the broker connection is lost the reading half fails with why. Takes from
/// `options` the connect timeout, the expiry of each message (the request timeout), the
/// largest line, and the TLS to an `amqps://` broker given no TLS of its own.
pub async fn connect(
    addr: &AmqpAddr,
    options: &ClientOptions,
) -> Result<(impl AsyncRead + Unpin + Send + 'static, impl AsyncWrite + Unpin + Send + 'static), String> {
    let connect_timeout = options.connect_timeout;
    let broker = match (&addr.broker.tls, &options.tls) {
        (None, Some(tls)) if addr.broker.secure => (*addr.broker).clone().with_tls(Some(tls.clone())),
        _ => (*addr.broker).clone(),
    };
    let shared = connection::channel(&broker, connect_timeout).await?;
    let setup = async {
        let channel = &shared.channel;
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
        lapin::Result::Ok((reply.name().clone(), consumer))
    };
    let (reply_queue, mut consumer) = match tokio::time::timeout(connect_timeout, setup).await {
        Ok(Ok(parts)) => parts,
        Ok(Err(error)) => return Err(format!("cannot set up a reply queue on {}: {error}", addr.broker)),
        Err(_) => {
            return Err(format!("cannot set up a reply queue on {}: no answer within {connect_timeout:?}", addr.broker))
        }
    };
    let (lines_tx, lines_rx) = mpsc::channel::<std::io::Result<Bytes>>(64);
    // Replies and events: each message one line, until the consumer or the connection ends.
    let replies = {
        let (lines_tx, addr, lost_connection) = (lines_tx.clone(), addr.clone(), shared.lost());
        tokio::spawn(async move {
            let mut lost_connection = std::pin::pin!(lost_connection);
            loop {
                let delivery = tokio::select! {
                    why = &mut lost_connection => {
                        let _ = lines_tx.send(Err(lost(&addr, why))).await;
                        return;
                    }
                    delivery = consumer.next() => delivery,
                };
                match delivery {
                    Some(Ok(delivery)) => {
                        let mut line = delivery.data;
                        line.push(b'\n');
                        if lines_tx.send(Ok(Bytes::from(line))).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(error)) => {
                        let _ = lines_tx.send(Err(lost(&addr, error))).await;
                        return;
                    }
                    None => {
                        let why = "the broker cancelled the reply queue's consumer";
                        let _ = lines_tx.send(Err(lost(&addr, why))).await;
                        return;
                    }
                }
            }
        })
    };
    let (app_side, pump_side) = tokio::io::duplex(64 * 1024);
    let (app_read, app_write) = tokio::io::split(app_side);
    drop(app_read);
    let publisher = Publisher {
        addr: addr.clone(),
        channel: shared.channel.clone(),
        reply_queue,
        expiration: options.request_timeout.as_millis().max(1).to_string(),
        next: AtomicU64::new(1),
    };
    let max_message_size = options.max_message_size;
    tokio::spawn(async move {
        let _replies = AbortOnDrop(replies);
        let (pump_read, _pump_write) = tokio::io::split(pump_side);
        // No read buffer held between frames: a conductor keeps one such client per agent.
        let reader = LineReader::new(IdleFreeReader::new(pump_read), max_message_size);
        if let Err(why) = publisher.run(reader).await {
            let _ = lines_tx.send(Err(std::io::Error::other(why))).await;
        }
        // The channel, not the shared connection: the reply queue goes with its consumer.
        shared.close("client closed").await;
    });
    let reader = tokio_util::io::StreamReader::new(tokio_stream_of(lines_rx));
    Ok((reader, app_write))
}

/// A receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> + Unpin {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

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
    async fn run<R: AsyncRead + Unpin>(&self, mut reader: LineReader<IdleFreeReader<R>>) -> Result<(), String> {
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
pub(super) fn is_request(frame: &[u8]) -> bool {
    let has_id = |value: &Value| value.get("id").is_some();
    match serde_json::from_slice::<Value>(frame) {
        Ok(Value::Array(items)) => items.iter().any(has_id),
        Ok(value) => has_id(&value),
        Err(_) => true,
    }
}
