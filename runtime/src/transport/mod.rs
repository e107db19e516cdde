//! Transports: where a server listens and how bytes become JSON-RPC frames.
//!
//! - [`addr`]: [`ListenAddr`] (`unix:PATH`, `tcp:HOST:PORT`, `stdio`, `http://HOST:PORT`) and
//!   the client's [`ConnectAddr`] (those plus `exec:COMMAND`).
//! - [`framing`]: newline-delimited JSON, bounded by the message size limit.
//! - `lines`: one line-framed connection: reader, writer, auth, idle timeout, in-flight budget.
//! - `unix`, `tcp`, `stdio`, `http`: the listeners (HTTP serves `POST /jsonrpc` and REST routes).
//! - `server`: the [`Server`] builder, the accept loop with its connection limit, and
//!   graceful shutdown ([`RunningServer`], [`ShutdownHandle`]).

pub mod addr;
pub mod framing;
mod http;
mod lines;
mod server;
mod stdio;
mod tcp;
pub(crate) mod unix;

pub use addr::{spawn_exec, AddrError, ConnectAddr, ListenAddr};
pub use http::RestRoute;
pub use server::{RunningServer, ServeError, Server, ShutdownHandle};
