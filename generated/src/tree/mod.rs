//! Guest data trees: objects laid out as Xenstore paths.
//!
//! [`layouts`] is generated from the schema's `data_trees` (one [`DataTree`]
//! descriptor each); [`encode`] and [`decode`] interpret any descriptor, so no
//! layout is written by hand except the legacy one of xe-guest-utilities
//! (see [`legacy`], and docs/guest-data-tree.md for why). [`GuestLayout`] is
//! what the guest agent writes with and `vproto guest-info` reads with.
//!
//! Versioning: a writer always publishes its layout version at the tree's
//! version key; a reader refuses a major version it does not know and
//! accepts any minor of its own, skipping keys it does not know below
//! objects that tolerate unknown fields.

mod codec;
mod error;
mod layout;
#[rustfmt::skip]
pub mod layouts;
pub mod legacy;
mod mangle;

use std::{collections::BTreeMap, fmt, str::FromStr};

pub use codec::{children, decode, encode, exists, join, leaf_value, subtree};
pub use error::{quote_value, TreeError};
pub use layout::{DataTree, FieldKind, LayoutChange, LayoutVersion, Leaf, List, Node, Scalar, TreeField};
pub use layouts::{DATA_TREES, GUEST_V1};
pub use mangle::mangle_key;

use crate::GuestInfo;

/// The layouts a guest agent can publish GuestInfo in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GuestLayout {
    /// The schema's `guest_v1` tree under `data/vproto`, versioned (seed 001).
    #[default]
    V1,
    /// The keys existing Xen toolstacks read (`data/os_*`, `attr/vif/*`, `attr/PVAddons/*`).
    Legacy,
}

impl FromStr for GuestLayout {
    type Err = String;

    /// `v1` or `legacy`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "v1" => Ok(GuestLayout::V1),
            "legacy" => Ok(GuestLayout::Legacy),
            other => Err(format!("unknown layout `{other}`: expected `v1` or `legacy`")),
        }
    }
}

impl fmt::Display for GuestLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuestLayout::V1 => "v1",
            GuestLayout::Legacy => "legacy",
        })
    }
}

impl GuestLayout {
    /// Leaf nodes (path relative to the domain's home path, such as
    /// `data/vproto/nics/fa-16-3e-11-22-33/mac`) to value.
    pub fn encode(&self, info: &GuestInfo) -> BTreeMap<String, String> {
        match self {
            GuestLayout::V1 => encode(&GUEST_V1, info),
            GuestLayout::Legacy => legacy::encode(info),
        }
    }

    /// The subtrees this layout owns (relative to the home path): the only
    /// places the agent writes or removes.
    pub fn owned_roots(&self) -> &'static [&'static str] {
        match self {
            GuestLayout::V1 => std::slice::from_ref(&GUEST_V1.root),
            GuestLayout::Legacy => legacy::OWNED_ROOTS,
        }
    }

    /// The subtrees a reader fetches to decode this layout: the owned roots,
    /// plus for the legacy layout the toolstack's `device/vif` nodes.
    pub fn read_roots(&self) -> &'static [&'static str] {
        match self {
            GuestLayout::V1 => std::slice::from_ref(&GUEST_V1.root),
            GuestLayout::Legacy => legacy::READ_ROOTS,
        }
    }

    /// The layout version this side writes (`0.0.0` for the unversioned legacy layout).
    pub fn layout_version(&self) -> LayoutVersion {
        match self {
            GuestLayout::V1 => GUEST_V1.layout_version,
            GuestLayout::Legacy => LayoutVersion::new(0, 0, 0),
        }
    }

    /// Reads a tree back (the form [`encode`](Self::encode) gives, as read
    /// from Xenstore, intermediate directory nodes included), validated
    /// against the schema.
    pub fn decode(&self, entries: &BTreeMap<String, String>) -> Result<GuestInfo, TreeError> {
        match self {
            GuestLayout::V1 => decode(&GUEST_V1, entries),
            GuestLayout::Legacy => legacy::decode(entries),
        }
    }
}
