//! JSON-RPC 2.0, server side, independent of any transport.
//!
//! - [`message`]: what a frame holds ([`Incoming`]: one [`Entry`] or a batch of them), the
//!   request [`Id`] kept byte for byte, and the [`Response`] written back.
//! - [`depth`]: the cheap nesting scan run before any parsing.
//! - [`engine`]: the [`Engine`] that checks limits, parses, admits calls against a connection's
//!   [`InFlight`] budget and dispatches them to a `vproto_api::rpc::Handler`.

pub mod depth;
pub mod engine;
pub mod message;

pub use engine::{Admitted, Answer, Engine, InFlight, InFlightSlot, Reply};
pub use message::{Call, Entry, Id, Incoming, Response};
