//! vproto-xenstore: Xen's Xenstore protocol, an async client and an embedded server.
//!
//! - [`wire`]: headers, message types, error names, payload and path limits of Xen's
//!   `xs_wire.h` and `docs/misc/xenstore.txt`, shared by both ends.
//! - [`Xenstore`]: the client. One connection (dom0's Unix socket or a guest's
//!   `/dev/xen/xenbus`) multiplexed by request id; [`Watch`]es, [`Transaction`]s with
//!   [`Xenstore::transact`] retrying on `EAGAIN`, [`Permission`]s. Every request is checked
//!   before it is sent.
//! - `server` (cargo feature `server`): an in-memory xenstored for development and tests
//!   (`vproto xenstored`), with Xen's semantics for nodes, watches, transactions, permissions
//!   and quotas. It listens through `vproto-listen` (private Unix sockets, the shutdown
//!   signal); a guest, which only needs the client, does not link it.
//!
//! Written here rather than taken from the xenstore-rs crate, which is GPL-3.0 (vproto is
//! Apache-2.0) and has no server; see docs/ARCHITECTURE.md.

#![warn(missing_docs)]

mod addr;
mod client;
mod error;
mod perms;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;

pub use addr::{XenstoreAddr, DEFAULT_RUNDIR, XENBUS_DEVICE};
pub use client::{Transaction, TxFuture, Watch, WatchEvent, Xenstore, DEFAULT_TX_ATTEMPTS};
pub use error::XsError;
pub use perms::{Access, Permission, DOMID_MAX};
