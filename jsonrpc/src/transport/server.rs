//! The [`Server`] builder: binds a listen address and starts its accept loop (or, for
//! `stdio`, its one connection); [`RunningServer`] and graceful shutdown.

use std::sync::Arc;

use tokio::task::JoinHandle;
use vproto_listen::{bind_unix, BindError, ShutdownHandle, ShutdownSignal};
use vproto_support::rpc::Handler;

use super::{
    accept::{accept_loop, Listener, Protocol},
    addr::ListenAddr,
    amqp,
    error::ServeError,
    http::{HttpShared, RestRoute},
    lines, stdio, tcp, vchan,
};
use crate::{
    auth::{Credentials, Token},
    engine::Engine,
    events::EventHub,
    limits::Limits,
    tls::ServerTls,
};

/// A server that is listening. Dropping it (and every [`ShutdownHandle`] taken from it) shuts it
/// down: stop accepting, stop reading, let running calls finish (within
/// [`Limits::shutdown_grace`]) and write their answers, remove the Unix socket file.
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

/// A JSON-RPC server: a handler, its limits, optional credentials and TLS, REST routes and
/// events, ready to listen on a [`ListenAddr`].
///
/// ```no_run
/// # async fn example(handler: vproto_support::rpc::Router) -> Result<(), Box<dyn std::error::Error>> {
/// use vproto_jsonrpc::{ListenAddr, Server};
/// let addr: ListenAddr = "unix:/run/vproto.sock".parse()?;
/// let server = Server::new(handler).bind(&addr).await?;
/// server.wait().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    handler: Arc<dyn Handler>,
    limits: Limits,
    credentials: Option<Credentials>,
    tls: Option<ServerTls>,
    routes: Vec<RestRoute>,
    events: Option<EventHub>,
}

impl Server {
    /// A server for `handler` with default [`Limits`], no token and no REST routes.
    pub fn new(handler: impl Handler) -> Self {
        Server::from_arc(Arc::new(handler))
    }

    /// A server for a shared handler.
    pub fn from_arc(handler: Arc<dyn Handler>) -> Self {
        Server { handler, limits: Limits::default(), credentials: None, tls: None, routes: Vec::new(), events: None }
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Requires a token on `tcp:` and `http://` listeners (Unix sockets and stdio ignore it:
    /// file permissions protect them).
    pub fn with_token(mut self, token: Token) -> Self {
        self.credentials = Some(Credentials::shared(token));
        self
    }

    /// Requires one of these tokens on `tcp:` and `http://` listeners: a role's token makes its
    /// caller that role, whose calls the generated dispatchers check against the schema's
    /// `roles` (see [`Credentials`]). Empty credentials are no credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials).filter(|credentials| !credentials.is_empty());
        self
    }

    /// Speaks TLS on `tcp:` and `http://` listeners (others ignore it).
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Adds REST routes, served on `http://` listeners only.
    pub fn with_rest_routes(mut self, routes: impl IntoIterator<Item = RestRoute>) -> Self {
        self.routes.extend(routes);
        self
    }

    /// Serves the events of `hub` (docs/events.md): its services publish into `hub.sink()`,
    /// stream connections (`unix:`, `tcp:` after `rpc.auth`, `stdio`, `vchan:`) subscribe with
    /// `rpc.subscribe`, and `http://` listeners stream them from `GET /events` as Server-Sent
    /// Events. One hub may serve several servers (the same services on two addresses).
    pub fn with_events(mut self, hub: EventHub) -> Self {
        self.events = Some(hub);
        self
    }

    /// The sink its services publish into, when it serves events ([`Server::with_events`]).
    pub fn event_sink(&self) -> Option<Arc<dyn vproto_support::rpc::events::EventSink>> {
        self.events.as_ref().map(EventHub::sink)
    }

    fn engine(&self) -> Arc<Engine> {
        let engine = Engine::new(self.handler.clone(), self.limits.clone());
        Arc::new(match &self.events {
            Some(hub) => engine.with_events(hub.clone()),
            None => engine,
        })
    }

    /// Listens on `addr` and serves in background tasks until shut down.
    pub async fn bind(self, addr: &ListenAddr) -> Result<RunningServer, ServeError> {
        if !self.routes.is_empty() && !matches!(addr, ListenAddr::Http { .. }) {
            return Err(ServeError::RestRoutesNeedHttp(addr.clone()));
        }
        let (signal, handle) = ShutdownSignal::new();
        let engine = self.engine();
        let bind_error = |source| BindError::Io { addr: addr.to_string(), source };
        let (local_addr, task) = match addr {
            ListenAddr::Unix(path) => {
                let (listener, file) = bind_unix(path).await?;
                let task = accept_loop(Listener::Unix(listener), engine, Protocol::Lines(None), signal, Some(file));
                (addr.clone(), tokio::spawn(task))
            }
            ListenAddr::Tcp { host, port } => {
                let (listener, local) =
                    tcp::bind(host, *port, self.credentials.is_some(), false).await.map_err(bind_error)?;
                let protocol = Protocol::Lines(self.credentials.map(Arc::new));
                let listener = Listener::Tcp(listener, self.tls.as_ref().map(ServerTls::acceptor));
                (local, tokio::spawn(accept_loop(listener, engine, protocol, signal, None)))
            }
            ListenAddr::Stdio => (addr.clone(), tokio::spawn(stdio::serve(engine, signal))),
            ListenAddr::Vchan(vchan_addr) => {
                let listener = vchan::bind(vchan_addr).await.map_err(|why| bind_error(std::io::Error::other(why)))?;
                let task = accept_loop(Listener::Vchan(listener), engine, Protocol::Lines(None), signal, None);
                (addr.clone(), tokio::spawn(task))
            }
            ListenAddr::Amqp(amqp_addr) => {
                // The first connection is made here, so a broker that cannot be reached is an
                // error at once; later losses are reconnected by the serving task.
                let prefetch = u16::try_from(self.limits.max_in_flight).unwrap_or(u16::MAX);
                let session = amqp::open(amqp_addr, prefetch, std::time::Duration::from_secs(10))
                    .await
                    .map_err(|why| bind_error(std::io::Error::other(why)))?;
                (addr.clone(), tokio::spawn(amqp::serve(amqp_addr.clone(), session, engine, signal)))
            }
            ListenAddr::Http { host, port } => {
                let shared = Arc::new(HttpShared::new(engine.clone(), self.credentials.clone(), &self.routes)?);
                let (listener, local) =
                    tcp::bind(host, *port, self.credentials.is_some(), true).await.map_err(bind_error)?;
                let listener = Listener::Tcp(listener, self.tls.as_ref().map(ServerTls::acceptor));
                (local, tokio::spawn(accept_loop(listener, engine, Protocol::Http(shared), signal, None)))
            }
        };
        tracing::info!(address = %local_addr, "serving JSON-RPC");
        Ok(RunningServer { local_addr, handle, task })
    }

    /// Serves one line-framed connection over any pair of byte streams (no token, no message
    /// timeout), returning when the input ends and every answer is written. For in-process
    /// peers and tests.
    pub async fn serve_io<R, W>(self, read: R, write: W)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (signal, _handle) = ShutdownSignal::new();
        lines::serve(self.engine(), read, write, None, None, signal).await;
    }
}
