//! Client side: the bus as a line connection.

use futures_util::{stream::FuturesUnordered, StreamExt};
use lapin::options::BasicPublishOptions;
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::mpsc,
};
use vproto_support::rpc::events::SUBSCRIBE;

use super::{
    confirmed, properties,
    replies::{self, Registration},
    AmqpAddr, AmqpBroker, Route,
};
use crate::{
    client::ClientOptions,
    transport::{
        framing::{Line, LineReader},
        IdleFreeReader,
    },
};

/// Connects a client to `addr`: a registration on the process's shared reply queue of the
/// broker (`replies`; the shared connection, channel and queue are opened if there are none).
/// Returns the reading and writing halves of a line connection: each line written is
/// published as one message (a fanout takes notifications only), each reply that comes back
/// for it is read as one line. A client that subscribes to events moves to a reply queue of
/// its own, so that the server learns it left when it goes. When the broker connection is
/// lost the reading half fails with why. Takes from `options` the connect timeout, the expiry
/// of each message (the request timeout), the largest line, and the TLS to an `amqps://`
/// broker given no TLS of its own.
pub async fn connect(
    addr: &AmqpAddr,
    options: &ClientOptions,
) -> Result<(impl AsyncRead + Unpin + Send + 'static, impl AsyncWrite + Unpin + Send + 'static), String> {
    let connect_timeout = options.connect_timeout;
    let broker = match (&addr.broker.tls, &options.tls) {
        (None, Some(tls)) if addr.broker.secure => (*addr.broker).clone().with_tls(Some(tls.clone())),
        _ => (*addr.broker).clone(),
    };
    let (lines, lines_rx) = mpsc::unbounded_channel();
    let shared = replies::register(&broker, addr, connect_timeout, lines.clone()).await?;
    if addr.route == Route::Fanout {
        let exchange = addr.fanout_exchange();
        tokio::time::timeout(connect_timeout, shared.hub.declare_fanout(&exchange)).await.map_err(|_| {
            format!("cannot declare the fanout exchange {exchange}: no answer within {connect_timeout:?}")
        })??;
    }
    let (app_side, pump_side) = tokio::io::duplex(64 * 1024);
    let (app_read, app_write) = tokio::io::split(app_side);
    drop(app_read);
    let publisher = Publisher {
        addr: addr.clone(),
        broker,
        connect_timeout,
        shared,
        own: tokio::sync::OnceCell::new(),
        lines,
        expiration: options.request_timeout.as_millis().max(1).to_string(),
    };
    let max_message_size = options.max_message_size;
    tokio::spawn(async move {
        let (pump_read, _pump_write) = tokio::io::split(pump_side);
        // No read buffer held between frames: a conductor keeps one such client per agent.
        let reader = LineReader::new(IdleFreeReader::new(pump_read), max_message_size);
        if let Err(why) = publisher.run(reader).await {
            let _ = publisher.lines.send(Err(std::io::Error::other(why)));
        }
    });
    let reader = tokio_util::io::StreamReader::new(tokio_stream_of(lines_rx));
    Ok((reader, app_write))
}

/// A receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> + Unpin {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Publishes a client's frames, with the reply queue its replies come back to.
struct Publisher {
    addr: AmqpAddr,
    broker: AmqpBroker,
    connect_timeout: std::time::Duration,
    /// Its place on the process's shared reply queue.
    shared: Registration,
    /// Its own reply queue, once it subscribes to events.
    own: tokio::sync::OnceCell<Registration>,
    lines: replies::Lines,
    expiration: String,
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
                        if self.own.get().is_none() && is_subscription(&frame) {
                            // Before anything after it is published: the frames keep their order.
                            self.own_reply_queue().await?;
                        }
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
        let replies = self.own.get().unwrap_or(&self.shared);
        let properties = properties()
            .with_reply_to(replies.hub.queue().clone())
            .with_correlation_id(replies.next_correlation_id())
            .with_expiration(self.expiration.as_str().into());
        let (exchange, key) = self.addr.destination();
        // A message no queue takes comes back (mandatory) instead of vanishing, except on the
        // fanout, where no instance listening is not an error.
        let options = BasicPublishOptions { mandatory: self.addr.route != Route::Fanout, ..Default::default() };
        confirmed(replies.hub.channel().basic_publish(&exchange, &key, options, &frame, properties).await, &to).await
    }

    /// The client's own reply queue, opened at its first subscription: the server casts events
    /// to the queue that subscribed, and stops once that queue is gone with the client.
    async fn own_reply_queue(&self) -> Result<&Registration, String> {
        self.own
            .get_or_try_init(|| {
                replies::register_alone(&self.broker, &self.addr, self.connect_timeout, self.lines.clone())
            })
            .await
    }
}

/// Whether a frame may subscribe to events (a cheap test: a false positive only costs a queue).
fn is_subscription(frame: &[u8]) -> bool {
    memchr::memmem::find(frame, SUBSCRIBE.as_bytes()).is_some()
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
