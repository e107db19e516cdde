//! Transports: where a server listens and how bytes become JSON-RPC frames.
//!
//! - [`addr`]: [`ListenAddr`] (`unix:PATH`, `tcp:HOST:PORT`, `stdio`, `http://HOST:PORT`),
//!   the client's [`ConnectAddr`] (those plus `exec:COMMAND`), and the `host:port` a server
//!   announces to peers ([`HostPortScheme`]).
//! - [`framing`]: newline-delimited JSON, bounded by the message size limit.
//! - `lines`: one line-framed connection: reader, writer, auth, idle timeout, in-flight budget.
//! - [`amqp`]: JSON-RPC over a RabbitMQ broker, routed as oslo.messaging routes RPC (a server
//!   consuming its service's queues, a client seeing the bus as a line connection).
//! - `tcp`, `stdio`, `http`: the listeners (HTTP serves `POST /jsonrpc`, REST routes and, on
//!   a server with events, the event stream `GET /events`);
//!   Unix sockets are bound by `vproto_listen::bind_unix`.
//! - `accept`: the accept loop of the socket listeners, with its connection limit.
//! - `server`: the [`Server`] builder and [`RunningServer`]; `error`: [`ServeError`].
//!
//! Imports run one way: `server` → `accept` → `lines`, `http` → `framing`, `error`; the
//! shutdown signal every connection watches comes from `vproto_listen`.

mod accept;
pub mod addr;
pub mod amqp;
mod error;
pub mod framing;
mod http;
mod lines;
mod server;
mod stdio;
mod tcp;
pub mod vchan;

pub use addr::{
    spawn_exec, AddrError, AmqpAddr, AmqpBroker, AmqpRoute, ConnectAddr, HostPortScheme, ListenAddr, UnknownScheme,
    VchanAddr, WildcardHost,
};
pub use error::ServeError;
pub use http::{RestRoute, EVENTS_PATH, SUBSCRIBED_EVENT};
pub(crate) use lines::IdleFreeReader;
pub use server::{RunningServer, Server};
pub use vproto_listen::ShutdownHandle;
