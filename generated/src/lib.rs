//! vproto-api: the Rust side of the vproto schema, generated from `schema/vproto.json` by
//! `cargo xtask codegen` (never edit these files). It stands on `vproto-support`, the
//! schema-independent layer (envelope, conversions, JSON-RPC vocabulary, data-tree
//! interpreter).
//!
//! The items of every generated module are re-exported at the crate root.

#[rustfmt::skip]
pub mod layouts;
#[rustfmt::skip]
mod objects;

pub use objects::*;

// The support crate's modules under their old paths, while dependents move to `vproto_support`.
#[doc(hidden)]
pub use vproto_support::{rpc, tree, wire};
