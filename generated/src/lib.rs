//! vproto-api: the Rust side of the vproto schema, generated from `schema/vproto.json` by
//! `cargo xtask codegen` (never edit these files). It stands on `vproto-support`, the
//! schema-independent layer (envelope, conversions, JSON-RPC vocabulary, data-tree
//! interpreter).
//!
//! The items of every generated module are re-exported at the crate root.

#[rustfmt::skip]
mod documents;
#[rustfmt::skip]
mod events;
#[rustfmt::skip]
pub mod layouts;
#[rustfmt::skip]
mod objects;
#[rustfmt::skip]
mod services;
#[rustfmt::skip]
mod types;

pub use documents::*;
pub use events::*;
pub use objects::*;
pub use services::*;
pub use types::*;
