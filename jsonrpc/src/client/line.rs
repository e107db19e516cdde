//! The line-transport client: one connection, requests multiplexed by id, and the events it
//! subscribed to routed to their streams (docs/events.md).
//!
//! Memory: an idle connection holds no I/O buffer, as a server's does (`transport::lines`): its
//! reader takes a read buffer only while bytes arrive ([`IdleFreeReader`]), and its writer
//! writes each batch of requests from the requests' own text. A component calling many peers
//! (a conductor with a pooled connection to each of 1,000 agents) pays for the connections'
//! tasks and sockets, not for 16 KiB of buffers each.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use serde_json::{json, Map, Value};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::{TcpStream, UnixStream},
    process::Child,
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::timeout,
};
use vproto_support::rpc::{
    events::{RawEvent, RawEvents, Subscription, SUBSCRIBE, SUBSCRIPTION_LOST, UNSUBSCRIBE},
    BoxFuture, CallError, RpcError,
};

use super::{
    describe,
    events::{self, EventSender, EventStream, Wants},
    request_text, ClientOptions, ConnectAddr,
};
use crate::transport::{
    framing::{Line, LineReader},
    spawn_exec, IdleFreeReader, ListenAddr,
};

type Answer = Result<Value, CallError>;

/// Requests waiting for their answers, the event streams, and why the connection closed once
/// it has.
#[derive(Default)]
struct State {
    waiting: HashMap<u64, oneshot::Sender<Answer>>,
    closed: Option<String>,
    /// The last error the server sent with an id we could not match (e.g. null).
    unmatched: Option<RpcError>,
    streams: Vec<Stream>,
    next_stream: u64,
}

/// One event stream of the connection, as the reader routes notifications to it.
struct Stream {
    id: u64,
    wants: Wants,
    sender: EventSender,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Marks the connection closed and fails every waiting request.
    fn close(&self, reason: String) {
        let mut state = self.lock();
        if state.closed.is_some() {
            return;
        }
        let reason = match &state.unmatched {
            Some(error) => format!("{reason} (the server's last word: {error})"),
            None => reason,
        };
        for (_, waiter) in state.waiting.drain() {
            let _ = waiter.send(Err(CallError::Transport(reason.clone())));
        }
        // Their streams end once they have read what came before.
        state.streams.clear();
        state.closed = Some(reason);
    }

    fn closed_reason(&self) -> String {
        self.lock().closed.clone().unwrap_or_else(|| "the connection is closed".to_string())
    }

    /// Hands a notification to the streams that want it; a loss ends every stream.
    fn notification(&self, method: &str, params: Option<&Value>) {
        let mut state = self.lock();
        if state.streams.is_empty() {
            tracing::debug!(method, "dropping a notification no stream wants");
            return;
        }
        let event = RawEvent { method: method.to_string(), params: params.cloned().unwrap_or(Value::Null) };
        let lost = method == SUBSCRIPTION_LOST;
        state.streams.retain(|stream| !stream.wants.wants(method) || (stream.sender.send(event.clone()) && !lost));
    }

    /// Delivers one response object to its caller (its result moved, not copied), or a
    /// notification to its streams.
    fn deliver(&self, response: Value) {
        let Value::Object(mut object) = response else { return };
        if let Some(method) = object.get("method").and_then(Value::as_str) {
            // A request from the server is not answered; a notification is an event.
            if !object.contains_key("id") {
                self.notification(method, object.get("params"));
            }
            return;
        }
        let result = object.remove("result");
        let answer = match (object.get("error"), result) {
            (Some(error), _) => match RpcError::from_json(error) {
                Some(error) => Err(CallError::Rpc(error)),
                None => Err(CallError::Transport(format!("malformed error object: {error}"))),
            },
            (None, Some(result)) => Ok(result),
            // Not a response (a request from the peer): nothing to deliver.
            (None, None) => return,
        };
        let mut state = self.lock();
        let waiter = object.get("id").and_then(Value::as_u64).and_then(|id| state.waiting.remove(&id));
        match (waiter, answer) {
            (Some(waiter), answer) => {
                let _ = waiter.send(answer);
            }
            (None, Err(CallError::Rpc(error))) => {
                tracing::warn!(%error, "the server sent an error no request is waiting for");
                state.unmatched = Some(error);
            }
            (None, _) => tracing::debug!("dropping an answer no request is waiting for"),
        }
    }
}

/// Removes a waiting request when its caller gives up (timeout or cancellation).
struct Waiting<'a>(&'a Shared, u64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting.remove(&self.1);
    }
}

/// A client over one line-framed connection.
pub(super) struct LineClient {
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    next_id: AtomicU64,
    options: ClientOptions,
}

/// The connection's tasks, kept open by the client and by its event streams.
struct Connection {
    outgoing: mpsc::Sender<String>,
    tasks: [JoinHandle<()>; 2],
    _child: Option<Child>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer ends by itself once `outgoing` is dropped, closing our side.
        self.tasks[0].abort();
    }
}

impl LineClient {
    /// Connects to a line address (`unix:`, `tcp:`, `stdio`, `exec:`).
    pub(super) async fn connect(addr: &ConnectAddr, options: ClientOptions) -> Result<Self, CallError> {
        let failed = |why: String| CallError::Transport(format!("cannot connect to {addr}: {why}"));
        let connect_timeout = options.connect_timeout;
        let timed_out = |_| failed(format!("no connection within {connect_timeout:?}"));
        match addr {
            ConnectAddr::Listen(ListenAddr::Unix(path)) => {
                let stream = timeout(connect_timeout, UnixStream::connect(path))
                    .await
                    .map_err(timed_out)?
                    .map_err(|e| failed(e.to_string()))?;
                let (read, write) = stream.into_split();
                LineClient::start(read, write, None, options).await
            }
            ConnectAddr::Listen(ListenAddr::Tcp { host, port }) => {
                let stream = timeout(connect_timeout, TcpStream::connect((host.as_str(), *port)))
                    .await
                    .map_err(timed_out)?
                    .map_err(|e| failed(e.to_string()))?;
                let _ = stream.set_nodelay(true);
                let client = match options.tls.clone() {
                    None => {
                        let (read, write) = stream.into_split();
                        LineClient::start(read, write, None, options).await?
                    }
                    Some(tls) => {
                        let name = crate::tls::server_name(host).map_err(|e| failed(e.to_string()))?;
                        let stream = timeout(connect_timeout, tls.connector().connect(name, stream))
                            .await
                            .map_err(|_| failed(format!("no TLS handshake within {connect_timeout:?}")))?
                            .map_err(|e| failed(format!("TLS: {}", describe(&e))))?;
                        let (read, write) = tokio::io::split(stream);
                        LineClient::start(read, write, None, options).await?
                    }
                };
                client.authenticate().await.map_err(|error| failed(error.to_string()))?;
                Ok(client)
            }
            ConnectAddr::Listen(ListenAddr::Stdio) => {
                LineClient::start(tokio::io::stdin(), tokio::io::stdout(), None, options).await
            }
            ConnectAddr::Exec(command) => {
                let (child, read, write) = spawn_exec(command).map_err(|e| failed(e.to_string()))?;
                LineClient::start(read, write, Some(child), options).await
            }
            ConnectAddr::Listen(ListenAddr::Vchan(vchan_addr)) => {
                let chan = crate::transport::vchan::connect(vchan_addr, connect_timeout).await.map_err(failed)?;
                let (read, write) = chan.into_split();
                LineClient::start(read, write, None, options).await
            }
            ConnectAddr::Listen(ListenAddr::Amqp(amqp_addr)) => {
                let (read, write) = crate::transport::amqp::connect(amqp_addr, &options).await.map_err(failed)?;
                LineClient::start(read, write, None, options).await
            }
            ConnectAddr::Listen(ListenAddr::Http { .. }) => Err(failed("not a line transport".to_string())),
        }
    }

    /// Starts the reader and writer tasks over a connection.
    pub(super) async fn start<R, W>(
        read: R,
        write: W,
        child: Option<Child>,
        options: ClientOptions,
    ) -> Result<Self, CallError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        let (outgoing, rx) = mpsc::channel(64);
        let reader = tokio::spawn(read_answers(
            LineReader::new(IdleFreeReader::new(read), options.max_message_size),
            shared.clone(),
        ));
        let writer = tokio::spawn(write_requests(write, rx, shared.clone()));
        let connection = Arc::new(Connection { outgoing, tasks: [reader, writer], _child: child });
        Ok(LineClient { shared, connection, next_id: AtomicU64::new(1), options })
    }

    /// Sends `rpc.auth` with the token, if there is one, within the connect timeout.
    async fn authenticate(&self) -> Result<(), CallError> {
        let Some(token) = &self.options.token else { return Ok(()) };
        let params = json!({ "token": token.secret() });
        match timeout(self.options.connect_timeout, self.request("rpc.auth", params)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(CallError::Transport("no answer to rpc.auth".to_string())),
        }
    }

    /// Sends a request and waits for its answer, within the request timeout.
    pub(super) async fn request(&self, method: &str, params: Value) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if let Some(reason) = &state.closed {
                return Err(CallError::Transport(reason.clone()));
            }
            state.waiting.insert(id, tx);
        }
        let _waiting = Waiting(&self.shared, id);
        if self.connection.outgoing.send(request_text(method, &params, Some(id))).await.is_err() {
            return Err(CallError::Transport(self.shared.closed_reason()));
        }
        match timeout(self.options.request_timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(CallError::Transport(self.shared.closed_reason())),
            Err(_) => {
                Err(CallError::Transport(format!("no answer to `{method}` within {:?}", self.options.request_timeout)))
            }
        }
    }

    /// Sends a notification.
    pub(super) async fn notify(&self, method: &str, params: Value) -> Result<(), CallError> {
        if let Some(reason) = &self.shared.lock().closed {
            return Err(CallError::Transport(reason.clone()));
        }
        self.connection
            .outgoing
            .send(request_text(method, &params, None))
            .await
            .map_err(|_| CallError::Transport(self.shared.closed_reason()))
    }

    /// Subscribes with `rpc.subscribe` and returns the stream of the events named (of every
    /// event when none are). The stream is registered before the request goes, so no event
    /// that follows the answer is missed; it keeps the connection open, and ends when the
    /// connection does.
    pub(super) async fn subscribe(&self, subscription: Subscription) -> Result<Box<dyn RawEvents>, CallError> {
        let (sender, stream) = events::channel(self.options.event_queue);
        let wants = Wants::of(&subscription);
        let id = {
            let mut state = self.shared.lock();
            if let Some(reason) = &state.closed {
                return Err(CallError::Transport(reason.clone()));
            }
            state.next_stream += 1;
            let id = state.next_stream;
            state.streams.push(Stream { id, wants: wants.clone(), sender });
            id
        };
        let mut events = LineEvents {
            stream,
            id,
            wants,
            subscribed: false,
            shared: self.shared.clone(),
            connection: self.connection.clone(),
        };
        self.request(SUBSCRIBE, events::subscribe_params(&subscription)).await?;
        events.subscribed = true;
        Ok(Box::new(events))
    }
}

/// One subscription's events over a line connection. Dropping it unsubscribes the events no
/// other stream of the connection wants.
struct LineEvents {
    stream: EventStream,
    id: u64,
    wants: Wants,
    subscribed: bool,
    shared: Arc<Shared>,
    connection: Arc<Connection>,
}

impl RawEvents for LineEvents {
    fn next(&mut self) -> BoxFuture<'_, Option<RawEvent>> {
        Box::pin(self.stream.recv())
    }
}

impl Drop for LineEvents {
    fn drop(&mut self) {
        let params = {
            let mut state = self.shared.lock();
            state.streams.retain(|stream| stream.id != self.id);
            if !self.subscribed || state.closed.is_some() {
                return;
            }
            let others = &state.streams;
            match &self.wants {
                // What the server sends to the others is theirs; with none left, stop it all.
                Wants::All if others.is_empty() => Value::Object(Map::new()),
                Wants::All => return,
                Wants::Names(_) if others.iter().any(|other| matches!(other.wants, Wants::All)) => return,
                Wants::Names(names) => {
                    let unwanted: Vec<&String> =
                        names.iter().filter(|name| !others.iter().any(|other| other.wants.wants(name))).collect();
                    if unwanted.is_empty() {
                        return;
                    }
                    json!({ "events": unwanted })
                }
            }
        };
        // A notification: nothing to wait for, and nothing waits for it if the queue is full.
        let _ = self.connection.outgoing.try_send(request_text(UNSUBSCRIBE, &params, None));
    }
}

async fn read_answers<R: AsyncRead + Unpin>(mut reader: LineReader<IdleFreeReader<R>>, shared: Arc<Shared>) {
    let reason = loop {
        match reader.next().await {
            Ok(Some(Line::Frame(bytes))) => match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Array(responses)) => responses.into_iter().for_each(|response| shared.deliver(response)),
                Ok(response) => shared.deliver(response),
                Err(error) => tracing::warn!(%error, "the server sent a line that is not JSON"),
            },
            Ok(Some(Line::TooLarge)) => tracing::warn!("the server sent an answer over the size limit; dropped"),
            Ok(None) => break "the server closed the connection".to_string(),
            Err(error) => break format!("reading from the server failed: {}", describe(&error)),
        }
    };
    shared.close(reason);
}

/// Writes the requests queued by the callers, each followed by a newline: those queued
/// together in one write, from the first one's text (no buffer is kept between writes).
async fn write_requests<W: AsyncWrite + Unpin>(mut write: W, mut rx: mpsc::Receiver<String>, shared: Arc<Shared>) {
    while let Some(mut text) = rx.recv().await {
        text.push('\n');
        while let Ok(more) = rx.try_recv() {
            text.push_str(&more);
            text.push('\n');
        }
        let written = async {
            write.write_all(text.as_bytes()).await?;
            write.flush().await
        }
        .await;
        if let Err(error) = written {
            shared.close(format!("writing to the server failed: {}", describe(&error)));
            return;
        }
    }
    let _ = write.shutdown().await;
}
