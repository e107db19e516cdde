//! The layouts a guest agent publishes `GuestInfo` in, and `vproto guest-info` reads: the
//! schema's `guest_v1` data tree (interpreted by `vproto_support::tree` from the generated
//! `vproto_api::layouts::GUEST_V1`) and the legacy layout of xe-guest-utilities (see
//! [`legacy`], and docs/guest-data-tree.md for why it is written by hand).

pub mod legacy;

use std::{collections::BTreeMap, fmt, str::FromStr};

use vproto_api::{layouts::GUEST_V1, GuestInfo};
use vproto_support::tree::{decode, encode, LayoutVersion, TreeError};

/// The layouts a guest agent can publish GuestInfo in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GuestLayout {
    /// The schema's `guest_v1` tree under `data/vproto`, versioned (seed 001).
    #[default]
    V1,
    /// The keys existing Xen toolstacks read (`data/os_*`, `attr/vif/*`, `attr/PVAddons/*`).
    Legacy,
}

/// A layout name that is neither `v1` nor `legacy`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown layout `{0}`: expected `v1` or `legacy`")]
pub struct UnknownLayout(pub String);

impl FromStr for GuestLayout {
    type Err = UnknownLayout;

    /// `v1` or `legacy`.
    fn from_str(text: &str) -> Result<Self, UnknownLayout> {
        match text {
            "v1" => Ok(GuestLayout::V1),
            "legacy" => Ok(GuestLayout::Legacy),
            other => Err(UnknownLayout(other.to_string())),
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
