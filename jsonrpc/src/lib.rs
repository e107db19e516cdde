//! vproto-jsonrpc: carries the JSON-RPC vocabulary of `vproto_support::rpc` (`Handler`, `Params`,
//! `RpcError`, `ClientTransport`) over the wire, on the server side and the client side.
//!
//! ```text
//!   bytes ──► transport (unix | tcp | stdio | http) ──► framing (one JSON text per line, or an HTTP body)
//!         ──► Engine: size/depth limits → parse → validate → admit (in-flight) → dispatch
//!         ──► Arc<dyn vproto_support::rpc::Handler> (a generated dispatcher or a Router)
//! ```
//!
//! - [`message`]: what a frame holds ([`Incoming`]: one [`Entry`] or a batch of them), the
//!   request [`Id`] kept byte for byte, and the [`Response`] written back; [`depth`]: the cheap
//!   nesting scan run before any parsing.
//! - [`engine`]: the transport-independent [`Engine`] that checks limits, parses, admits calls
//!   against a connection's [`InFlight`] budget and dispatches them to a `Handler`.
//! - [`limits`]: every resource bound a server enforces, in one [`Limits`] struct.
//! - [`events`]: the [`EventHub`] services publish events into, and each connection's
//!   subscription (`rpc.subscribe`, `rpc.unsubscribe`; Server-Sent Events over HTTP).
//! - [`auth`]: bearer tokens for TCP and HTTP listeners ([`load_token`]).
//! - [`transport`]: listen addresses ([`ListenAddr`]), line framing, the listeners and the
//!   [`Server`] that binds them, with graceful shutdown through a [`ShutdownHandle`].
//! - [`client`]: a [`Client`] implementing `ClientTransport` over the same addresses plus
//!   `exec:COMMAND`, and the layers over it: [`client::Reconnecting`] (a connection opened on
//!   first use and reopened after it breaks) and [`client::Pool`] (one of those per address).
//!
//! It never reads the schema: it only knows the `Handler` it dispatches to.

#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod depth;
pub mod engine;
pub mod events;
pub mod limits;
pub mod message;
pub mod tls;
pub mod transport;

pub use auth::{load_token, Credentials, CredentialsError, Token, TokenError};
pub use client::{Client, ClientOptions, Dial, Pool, Reconnecting, RetryPolicy};
pub use engine::{Admitted, Answer, Engine, InFlight, InFlightSlot, Reply};
pub use events::{EventHub, HubStats};
pub use limits::Limits;
pub use message::{Call, Entry, Id, Incoming, Response};
pub use tls::{ClientTls, ServerTls, TlsError};
pub use transport::{
    AddrError, ConnectAddr, HostPortScheme, ListenAddr, RestRoute, RunningServer, ServeError, Server, ShutdownHandle,
    VchanAddr,
};
pub use vproto_listen::BindError;
