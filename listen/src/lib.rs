//! vproto-listen: what vproto's servers (the JSON-RPC server of `vproto-jsonrpc`, the
//! embedded xenstored of `vproto-xenstore`) share to listen and to stop.
//!
//! - [`unix`]: [`bind_unix`] binds a Unix socket mode 0600 through a private directory,
//!   replacing a stale socket file and refusing a live one; the [`SocketFile`] it returns
//!   removes the file when dropped. [`BindError`] says why an address could not be listened on.
//! - [`shutdown`]: [`ShutdownSignal`], a tree of cancellation tokens every connection watches,
//!   and the [`ShutdownHandle`] that fires it.
//! - [`signals`]: [`TerminationSignals`], SIGINT and SIGTERM watched from the moment a server
//!   (or the guest agent) asks, before it says it is ready.
//!
//! It knows no protocol: nothing here reads or writes a message.

#![warn(missing_docs)]

pub mod shutdown;
pub mod signals;
pub mod unix;

pub use shutdown::{ShutdownHandle, ShutdownSignal};
pub use signals::TerminationSignals;
pub use unix::{bind_unix, BindError, SocketFile};
