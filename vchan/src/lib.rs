//! Xen's vchan: a byte stream between two domains over shared-memory rings, with the wire layout
//! of Xen's own libxenvchan (`struct vchan_interface` in `xen/io/libxenvchan.h`), so a vproto
//! peer talks to any C program linked against it.

pub mod backend;
mod channel;
pub mod layout;
mod listener;
mod rendezvous;
mod ring;

pub use backend::Backend;
pub use channel::{Vchan, VchanReader, VchanWriter, DEFAULT_SPIN};
pub use listener::VchanListener;
pub use rendezvous::{connect, listen, ServerOptions, VchanError};
#[doc(hidden)]
pub use ring::LoopbackPage;
pub use ring::{CorruptRing, RingId, Role};
