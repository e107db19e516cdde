//! vproto-api: the Rust side of the vproto schema.
//!
//! [`objects`] is generated from `schema/vproto.json` by `cargo xtask codegen`
//! (never edit it); [`wire`] is the hand-written layer it stands on: the
//! `versioned_object.*` envelope, version conversion driven by the generated
//! descriptors, and validation of every value read from outside. [`rpc`] is
//! the JSON-RPC vocabulary generated servers and clients share with the
//! runtime's transports. Projects
//! that generate their own objects with `vproto-codegen` use [`wire`] too.

#[rustfmt::skip]
pub mod objects;
pub mod rpc;
mod thread_cache;
pub mod tree;
pub mod wire;

pub use objects::*;
