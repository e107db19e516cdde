//! vproto-runtime: carries the JSON-RPC vocabulary of `vproto_api::rpc` over the wire.
//!
//! ```text
//!   bytes ──► transport (unix | tcp | stdio | http) ──► framing (one JSON text per line, or an HTTP body)
//!         ──► jsonrpc::Engine: size/depth limits → parse → validate → admit (in-flight) → dispatch
//!         ──► Arc<dyn vproto_api::rpc::Handler> (a generated dispatcher or a Router)
//! ```
//!
//! - [`jsonrpc`]: the JSON-RPC 2.0 message model ([`jsonrpc::Id`], [`jsonrpc::Call`],
//!   [`jsonrpc::Response`]) and the transport-independent [`jsonrpc::Engine`].
//! - [`limits`]: every resource bound a server enforces, in one [`Limits`] struct.
//! - [`auth`]: bearer tokens for TCP and HTTP listeners ([`load_token`]).
//! - [`transport`]: listen addresses ([`ListenAddr`]), line framing, the listeners and the
//!   [`Server`] that binds them, with graceful shutdown through a [`ShutdownHandle`].
//! - [`netlink`]: the network-interface collector (rtnetlink dump + events → `GuestNic`).
//! - [`client`]: a [`Client`] implementing `vproto_api::rpc::ClientTransport` over the same
//!   addresses plus `exec:COMMAND`.
//! - [`xenstore`]: Xen's Xenstore protocol: an async client ([`xenstore::Xenstore`]) over dom0's
//!   socket or a guest's xenbus device, and the embedded server behind `vproto xenstored`.
//!
//! The runtime never reads the schema; it only knows the `Handler` it dispatches to.

#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod jsonrpc;
pub mod limits;
pub mod netlink;
pub mod transport;
pub mod xenstore;

pub use auth::{load_token, Token, TokenError};
pub use client::{Client, ClientOptions};
pub use jsonrpc::Engine;
pub use limits::Limits;
pub use transport::{AddrError, ConnectAddr, ListenAddr, RestRoute, RunningServer, ServeError, Server, ShutdownHandle};
