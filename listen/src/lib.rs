//! vproto-listen: what vproto's servers (the JSON-RPC server of `vproto-jsonrpc`, the
//! embedded xenstored of `vproto-xenstore`) share to listen and to stop.
//!
//! - [`unix`]: [`bind_unix`] binds a Unix socket mode 0600 through a private directory,
//!   replacing a stale socket file and refusing a live one; the [`SocketFile`] it returns
//!   removes the file when dropped. [`BindError`] says why an address could not be listened on.
//! - [`shutdown`]: [`ShutdownSignal`], a tree of cancellation tokens every connection watches,
//!   and the [`ShutdownHandle`] that fires it.
//!
//! It knows no protocol: nothing here reads or writes a message.

#![warn(missing_docs)]

pub mod shutdown;
pub mod unix;

pub use shutdown::{ShutdownHandle, ShutdownSignal};
pub use unix::{bind_unix, BindError, SocketFile};
