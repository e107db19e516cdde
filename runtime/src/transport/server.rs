//! The [`Server`] builder, the accept loop shared by the socket listeners, and shutdown.

use std::{io, path::PathBuf, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
    sync::Semaphore,
    task::{JoinHandle, JoinSet},
    time::timeout,
};
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};
use vproto_api::rpc::Handler;

use super::{
    addr::ListenAddr,
    http::{self, HttpShared, RestRoute},
    lines, stdio, tcp,
    unix::{self, SocketFile},
};
use crate::{
    auth::Token,
    jsonrpc::{engine::too_many_connections, Engine, Id, Response},
    Limits,
};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Another server is listening on the socket file.
    #[error("unix:{}: another server is listening on this socket", .0.display())]
    InUse(PathBuf),
    /// The path exists and is not a socket; it is not replaced.
    #[error("unix:{}: the path exists and is not a socket; remove it or choose another path", .0.display())]
    NotASocket(PathBuf),
    /// The configuration does not fit the address (REST routes, for example).
    #[error("{0}")]
    Config(String),
}

/// A signal every connection watches; it fires on shutdown, or when every
/// [`ShutdownHandle`] is gone.
///
/// A tree of cancellation tokens: each connection waits on a child of its own, so waiting does
/// not take a lock shared with every other connection.
#[derive(Clone, Debug)]
pub(crate) struct Signal(CancellationToken);

impl Signal {
    /// A signal and the handle that fires it.
    pub(crate) fn new() -> (Signal, ShutdownHandle) {
        let token = CancellationToken::new();
        (Signal(token.clone()), ShutdownHandle(Arc::new(token.drop_guard())))
    }

    /// A signal of its own for one connection, fired with this one.
    pub(crate) fn child(&self) -> Signal {
        Signal(self.0.child_token())
    }

    /// Waits for shutdown.
    pub(crate) async fn wait(&self) {
        self.0.cancelled().await;
    }

    /// Waits for shutdown, owning what it waits on (to be pinned once and polled many times).
    pub(crate) fn wait_owned(&self) -> WaitForCancellationFutureOwned {
        self.0.clone().cancelled_owned()
    }

    /// Whether shutdown has started (or every handle is gone).
    pub(crate) fn fired(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Asks a running server to shut down gracefully: stop accepting, stop reading, let running
/// calls finish (within [`Limits::shutdown_grace`]) and write their answers, remove the Unix
/// socket file. Cloneable; dropping the [`RunningServer`] and every handle shuts down too.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(Arc<DropGuard>);

impl ShutdownHandle {
    /// Starts the shutdown; returns at once (await [`RunningServer::wait`] for the end).
    pub fn shutdown(&self) {
        self.0.token().cancel();
    }
}

/// A server that is listening.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: ListenAddr,
    handle: ShutdownHandle,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// The address it listens on, with port 0 resolved to the actual port.
    pub fn local_addr(&self) -> &ListenAddr {
        &self.local_addr
    }

    /// A handle to shut it down from elsewhere.
    pub fn handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Shuts down and waits until every connection is closed.
    pub async fn shutdown(self) {
        self.handle.shutdown();
        self.wait().await;
    }

    /// Waits until the server stops (shut down through a handle; for `stdio`, also at the end
    /// of stdin).
    pub async fn wait(self) {
        let RunningServer { handle, task, .. } = self;
        let _ = task.await;
        drop(handle);
    }
}

/// A JSON-RPC server: a handler, its limits, an optional token and REST routes, ready to
/// listen on a [`ListenAddr`].
///
/// ```no_run
/// # async fn example(handler: vproto_api::rpc::Router) -> Result<(), Box<dyn std::error::Error>> {
/// use vproto_runtime::{ListenAddr, Server};
/// let addr: ListenAddr = "unix:/run/vproto.sock".parse()?;
/// let server = Server::new(handler).bind(&addr).await?;
/// server.wait().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    handler: Arc<dyn Handler>,
    limits: Limits,
    token: Option<Token>,
    routes: Vec<RestRoute>,
}

impl Server {
    /// A server for `handler` with default [`Limits`], no token and no REST routes.
    pub fn new(handler: impl Handler) -> Self {
        Server::from_arc(Arc::new(handler))
    }

    /// A server for a shared handler.
    pub fn from_arc(handler: Arc<dyn Handler>) -> Self {
        Server { handler, limits: Limits::default(), token: None, routes: Vec::new() }
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Requires a token on `tcp:` and `http://` listeners (Unix sockets and stdio ignore it:
    /// file permissions protect them).
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Adds REST routes, served on `http://` listeners only.
    pub fn with_rest_routes(mut self, routes: impl IntoIterator<Item = RestRoute>) -> Self {
        self.routes.extend(routes);
        self
    }

    fn engine(&self) -> Arc<Engine> {
        Arc::new(Engine::new(self.handler.clone(), self.limits.clone()))
    }

    /// Listens on `addr` and serves in background tasks until shut down.
    pub async fn bind(self, addr: &ListenAddr) -> Result<RunningServer, ServeError> {
        if !self.routes.is_empty() && !matches!(addr, ListenAddr::Http { .. }) {
            return Err(ServeError::Config(format!("REST routes are served on http:// addresses only, not on {addr}")));
        }
        let (signal, handle) = Signal::new();
        let engine = self.engine();
        let bind_error = |source| ServeError::Bind { addr: addr.to_string(), source };
        let (local_addr, task) = match addr {
            ListenAddr::Unix(path) => {
                let (listener, file) = unix::bind(path).await?;
                let task = accept_loop(Listener::Unix(listener), engine, Protocol::Lines(None), signal, Some(file));
                (addr.clone(), tokio::spawn(task))
            }
            ListenAddr::Tcp { host, port } => {
                let (listener, local) =
                    tcp::bind(host, *port, self.token.is_some(), false).await.map_err(bind_error)?;
                let protocol = Protocol::Lines(self.token.map(Arc::new));
                (local, tokio::spawn(accept_loop(Listener::Tcp(listener), engine, protocol, signal, None)))
            }
            ListenAddr::Stdio => (addr.clone(), tokio::spawn(stdio::serve(engine, signal))),
            ListenAddr::Http { host, port } => {
                let shared = Arc::new(HttpShared::new(engine.clone(), self.token.clone(), &self.routes)?);
                let (listener, local) = tcp::bind(host, *port, self.token.is_some(), true).await.map_err(bind_error)?;
                (
                    local,
                    tokio::spawn(accept_loop(Listener::Tcp(listener), engine, Protocol::Http(shared), signal, None)),
                )
            }
        };
        tracing::info!(address = %local_addr, "serving JSON-RPC");
        Ok(RunningServer { local_addr, handle, task })
    }

    /// Serves one line-framed connection over any pair of byte streams (no token), returning
    /// when the input ends and every answer is written. For in-process peers and tests.
    pub async fn serve_io<R, W>(self, read: R, write: W)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (signal, _handle) = Signal::new();
        lines::serve(self.engine(), read, write, None, signal).await;
    }
}

/// A bound socket listener.
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// An accepted connection.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// What is spoken on the accepted connections.
enum Protocol {
    /// Newline-delimited JSON-RPC, with the token required first (tcp) or not (unix).
    Lines(Option<Arc<Token>>),
    /// HTTP/1.1.
    Http(Arc<HttpShared>),
}

impl Listener {
    async fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix(listener) => listener.accept().await.map(|(stream, _)| Stream::Unix(stream)),
            Listener::Tcp(listener) => listener.accept().await.map(|(stream, _)| Stream::Tcp(stream)),
        }
    }
}

impl Stream {
    /// Best-effort write to a fresh connection's empty send buffer, without waiting.
    fn try_write(&self, bytes: &[u8]) {
        let _ = match self {
            Stream::Unix(stream) => stream.try_write(bytes),
            Stream::Tcp(stream) => stream.try_write(bytes),
        };
    }

    /// Sends `bytes`, closes the sending side, and reads (and discards) what the peer already
    /// sent for a moment, so that closing does not reset the connection and lose the message.
    async fn say_and_close(self, bytes: Vec<u8>) {
        async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: Vec<u8>) {
            let moment = Duration::from_secs(1);
            if timeout(moment, stream.write_all(&bytes)).await.is_err() {
                return;
            }
            let _ = timeout(moment, stream.shutdown()).await;
            let mut sink = [0u8; 4096];
            let _ = timeout(moment, async {
                let mut left: usize = 64 * 1024;
                while left > 0 {
                    match stream.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => left = left.saturating_sub(n),
                    }
                }
            })
            .await;
        }
        match self {
            Stream::Unix(stream) => linger(stream, bytes).await,
            Stream::Tcp(stream) => linger(stream, bytes).await,
        }
    }
}

/// Refuses a connection over the limit with `message`; a bounded number of refusals linger
/// to be delivered cleanly, the rest are written best-effort and dropped.
fn refuse(stream: Stream, message: Vec<u8>, lingering: &Arc<Semaphore>) {
    match lingering.clone().try_acquire_owned() {
        Ok(permit) => {
            tokio::spawn(async move {
                stream.say_and_close(message).await;
                drop(permit);
            });
        }
        Err(_) => stream.try_write(&message),
    }
}

/// Accepts connections until shutdown, each served in its own task while a connection slot
/// is free; connections beyond [`Limits::max_connections`] get one error and are closed.
async fn accept_loop(
    listener: Listener,
    engine: Arc<Engine>,
    protocol: Protocol,
    signal: Signal,
    socket_file: Option<SocketFile>,
) {
    let limits = engine.limits().clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections.min(Semaphore::MAX_PERMITS)));
    let lingering = Arc::new(Semaphore::new(64));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = signal.wait() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                // Out of file descriptors (or similar): let connections close before retrying.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(limit = limits.max_connections, "refusing a connection: too many connections");
            let error = too_many_connections(limits.max_connections);
            let message = match &protocol {
                Protocol::Lines(_) => format!("{}\n", Response::error(Id::null(), error).to_json()),
                Protocol::Http(_) => http::refusal(&error),
            };
            refuse(stream, message.into_bytes(), &lingering);
            continue;
        };
        let (engine, signal) = (engine.clone(), signal.child());
        match (&protocol, stream) {
            (Protocol::Lines(_), Stream::Unix(stream)) => {
                let (read, write) = stream.into_split();
                connections.spawn(async move {
                    lines::serve(engine, read, write, None, signal).await;
                    drop(slot);
                });
            }
            (Protocol::Lines(token), Stream::Tcp(stream)) => {
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                let token = token.clone();
                connections.spawn(async move {
                    lines::serve(engine, read, write, token, signal).await;
                    drop(slot);
                });
            }
            (Protocol::Http(shared), Stream::Tcp(stream)) => {
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    http::serve_connection(shared, stream, signal).await;
                    drop(slot);
                });
            }
            // HTTP is only bound on TCP.
            (Protocol::Http(_), Stream::Unix(_)) => drop(slot),
        }
    }
    drop(listener);
    drop(socket_file);
    let drained =
        tokio::time::timeout(limits.shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period over: abandoning running calls");
        connections.shutdown().await;
    }
}
