//! Clients: `vproto_support::rpc::ClientTransport` over the transports' addresses, in layers.
//!
//! ```text
//!   Client (one connection) ──► Reconnecting<Dial> (opened on use, reopened after a break) ──► Pool (one per address)
//! ```
//!
//! - [`Client`]: line transports (`unix:`, `tcp:`, `stdio`, `exec:COMMAND`) keep one
//!   connection, concurrent requests multiplexed by id, a reader task matching answers to
//!   callers (`line`); over `http://` each call is a `POST /jsonrpc` on a pooled keep-alive
//!   connection (`http`). Connect and request timeouts and the token come from
//!   [`ClientOptions`]. A line client does not reconnect: once its connection is gone every
//!   call fails with [`CallError::Transport`] naming why.
//! - [`Reconnecting`]: opens its connection through a [`Connect`] ([`Dial`] for an address) on
//!   first use and again after a transport failure, resending the failed request once when
//!   its [`RetryPolicy`] says so.
//! - [`Pool`]: one [`Reconnecting`] client per [`ConnectAddr`], shared by its callers, for
//!   the most recently used addresses only (64 by default): the others' connections close
//!   once their calls are answered and are dialled again on their next request.
//!
//! Each layer is a `ClientTransport`, so generated typed clients take any of them. Each also
//! subscribes to events (`ClientTransport::subscribe`, docs/events.md): over a line transport
//! with `rpc.subscribe` on its connection, over `http://` from the `GET /events` stream. A
//! stream keeps its connection open and ends when that connection ends (the server closes it or
//! shuts down, it breaks, or the server cut the subscription off with `rpc.subscription_lost`):
//! events are not resumed on another connection, since those published in between are lost.
//! Subscribe again to go on.

mod events;
mod http;
mod line;
mod pool;
mod reconnect;

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use vproto_support::rpc::{
    events::{RawEvents, Subscription},
    BoxFuture, CallError, ClientTransport,
};

pub use self::{
    pool::Pool,
    reconnect::{Connect, Dial, Reconnecting, RetryPolicy},
};
pub use crate::transport::ConnectAddr;
use crate::{auth::Token, tls::ClientTls, transport::ListenAddr};

/// How a [`Client`] connects and waits.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Longest wait to connect (and, with a token, to be accepted). Default 10 s.
    pub connect_timeout: Duration,
    /// Longest wait for the answer to one request. Default 60 s.
    pub request_timeout: Duration,
    /// Sent as `rpc.auth` on `tcp:` connections and as `Authorization: Bearer` over HTTP.
    pub token: Option<Token>,
    /// TLS on `tcp:` and `http://` connections, and to an `amqps://` broker that was given
    /// none of its own: the server's certificate is checked against the CA and the address's
    /// host; a client certificate is presented when it holds one. None by default: there is
    /// no process-wide TLS, each client is given its own (a service's peers through its
    /// `PeerScheme`).
    pub tls: Option<ClientTls>,
    /// Largest answer accepted, in bytes. Default 16 MiB.
    pub max_message_size: usize,
    /// Events an event stream holds for a caller that has not read them yet. One more, and the
    /// stream ends with an `rpc.subscription_lost` of the client's own once the caller has read
    /// what it holds: the connection's reader never waits for a caller. Default 1,024.
    pub event_queue: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            token: None,
            tls: None,
            max_message_size: 16 * 1024 * 1024,
            event_queue: 1024,
        }
    }
}

/// A JSON-RPC client connected to one server.
pub struct Client {
    inner: Inner,
}

// One per client, built once and never moved on the call path: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Line(line::LineClient),
    Http(http::HttpClient),
}

/// A request (with `id`) or notification as JSON text; `null` params are left out.
fn request_text(method: &str, params: &Value, id: Option<u64>) -> String {
    let mut text = format!(r#"{{"jsonrpc":"2.0","method":{}"#, Value::String(method.to_string()));
    if !params.is_null() {
        text.push_str(&format!(r#","params":{params}"#));
    }
    if let Some(id) = id {
        text.push_str(&format!(r#","id":{id}"#));
    }
    text.push('}');
    text
}

/// An error and its sources, on one line.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

impl Client {
    /// Connects to `addr`; with a token over `tcp:`, also authenticates before returning.
    pub async fn connect(addr: &ConnectAddr, options: ClientOptions) -> Result<Self, CallError> {
        let inner = match addr {
            ConnectAddr::Listen(ListenAddr::Http { host, port }) => {
                Inner::Http(http::HttpClient::new(host, *port, options)?)
            }
            _ => Inner::Line(line::LineClient::connect(addr, options).await?),
        };
        Ok(Client { inner })
    }

    /// A line client over any pair of byte streams (an in-process server, a pipe).
    pub async fn over_io<R, W>(read: R, write: W, options: ClientOptions) -> Result<Self, CallError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        Ok(Client { inner: Inner::Line(line::LineClient::start(read, write, None, options).await?) })
    }
}

impl ClientTransport for Client {
    fn request<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async move {
            match &self.inner {
                Inner::Line(client) => client.request(method, params).await,
                Inner::Http(client) => client.request(method, params).await,
            }
        })
    }

    fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>> {
        Box::pin(async move {
            match &self.inner {
                Inner::Line(client) => client.notify(method, params).await,
                Inner::Http(client) => client.notify(method, params).await,
            }
        })
    }

    /// Subscribes to events: `rpc.subscribe` on a line connection (the answer received before
    /// this returns), `GET /events` over HTTP (its first event received). An empty
    /// `subscription.events` asks for every event the server has; `versions` are the objects'
    /// versions to read at. A line connection has one set of versions for all its events: a
    /// later subscription's versions (when it gives any) apply to the earlier ones' too.
    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'_, Result<Box<dyn RawEvents>, CallError>> {
        Box::pin(async move {
            match &self.inner {
                Inner::Line(client) => client.subscribe(subscription).await,
                Inner::Http(client) => client.subscribe(subscription).await,
            }
        })
    }
}
