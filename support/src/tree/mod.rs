//! Guest data trees: objects laid out as Xenstore paths.
//!
//! A schema's `data_trees` are generated into static [`DataTree`] descriptors
//! (vproto's own into `vproto_api::layouts`); [`encode`] and [`decode`]
//! interpret any descriptor, so no layout is written by hand.
//!
//! Versioning: a writer always publishes its layout version at the tree's
//! version key; a reader refuses a major version it does not know and
//! accepts any minor of its own, skipping keys it does not know below
//! objects that tolerate unknown fields.

mod codec;
mod error;
mod layout;
mod mangle;

pub use codec::{children, decode, encode, exists, join, leaf_value, subtree};
pub use error::{quote_value, TreeError};
pub use layout::{
    DataTree, FieldKind, LayoutChange, LayoutVersion, LayoutVersionError, Leaf, List, Node, Scalar, TreeField,
};
pub use mangle::mangle_key;
