//! The descriptor types that generated `layouts.rs` fills in: one
//! [`DataTree`] per entry of the schema's `data_trees`.

use std::{fmt, str::FromStr};

use crate::wire::Constraints;

/// A semantic layout version `MAJOR.MINOR.PATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LayoutVersion {
    /// Incompatible layout changes bump it; a reader refuses a major it does not know.
    pub major: u64,
    /// Compatible additions bump it; a reader accepts any minor of its major.
    pub minor: u64,
    /// Fixes that change no path.
    pub patch: u64,
}

impl LayoutVersion {
    /// The version `major.minor.patch`.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        LayoutVersion { major, minor, patch }
    }
}

impl fmt::Display for LayoutVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why text is not a layout version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutVersionError {
    /// Not three dot-separated decimal numbers without leading zeros.
    #[error("not a semantic version MAJOR.MINOR.PATCH (such as 1.0.0)")]
    Shape,
    /// A number does not fit 64 bits.
    #[error("a version number is too large")]
    TooLarge,
}

impl FromStr for LayoutVersion {
    type Err = LayoutVersionError;

    /// Parses `MAJOR.MINOR.PATCH`: three decimal numbers without leading zeros.
    fn from_str(text: &str) -> Result<Self, LayoutVersionError> {
        let mut numbers = [0u64; 3];
        let mut parts = text.split('.');
        for number in &mut numbers {
            let part = parts.next().ok_or(LayoutVersionError::Shape)?;
            let canonical =
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) && (part == "0" || !part.starts_with('0'));
            if !canonical {
                return Err(LayoutVersionError::Shape);
            }
            *number = part.parse().map_err(|_| LayoutVersionError::TooLarge)?;
        }
        if parts.next().is_some() {
            return Err(LayoutVersionError::Shape);
        }
        Ok(LayoutVersion::new(numbers[0], numbers[1], numbers[2]))
    }
}

/// One layout version and what it changed.
#[derive(Clone, Copy, Debug)]
pub struct LayoutChange {
    /// The version.
    pub version: LayoutVersion,
    /// What changed, for humans.
    pub note: &'static str,
}

/// An object laid out as Xenstore paths under a root.
#[derive(Debug)]
pub struct DataTree {
    /// The tree's name in the schema, such as `guest_v1`.
    pub name: &'static str,
    /// What the tree publishes and who reads it.
    pub description: &'static str,
    /// The object the tree holds.
    pub object: &'static str,
    /// The root, relative to the domain's home path, such as `data/vproto`.
    pub root: &'static str,
    /// The key, relative to the root, holding the layout version.
    pub version_key: &'static str,
    /// The layout version this side writes and reads.
    pub layout_version: LayoutVersion,
    /// Every layout version, oldest first.
    pub history: &'static [LayoutChange],
    /// Where the object's fields live, relative to the root.
    pub node: Node,
}

/// Where the fields of one object live, relative to the object's path.
#[derive(Debug)]
pub struct Node {
    /// The object's schema name.
    pub object: &'static str,
    /// Readers skip keys below the object that no field claims (the object's
    /// `tolerate_unknown_fields`), so newer minor layouts can add them.
    pub tolerate_unknown_keys: bool,
    /// The mapped fields.
    pub fields: &'static [TreeField],
}

impl Node {
    /// The mapped field called `name`.
    pub fn field(&self, name: &str) -> Option<&TreeField> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// The leaf reached by following field names (through objects and list
    /// elements alike), such as `["nics", "mac"]`.
    pub fn leaf(&self, names: &[&str]) -> Option<&Leaf> {
        let (first, rest) = names.split_first()?;
        match (&self.field(first)?.kind, rest.is_empty()) {
            (FieldKind::Leaf(leaf), true) => Some(leaf),
            (FieldKind::Object(node), false) => node.leaf(rest),
            (FieldKind::List(list), false) => list.node.leaf(rest),
            _ => None,
        }
    }
}

/// One field of an object and where it lives.
#[derive(Debug)]
pub struct TreeField {
    /// The field's wire name.
    pub name: &'static str,
    /// Its path segments below the object's path (for a list: the directory
    /// holding one entry per element).
    pub path: &'static [&'static str],
    /// A reader fails when it is absent (required, no default, not nullable).
    pub required: bool,
    /// What the path holds.
    pub kind: FieldKind,
}

/// What a field's path holds.
#[derive(Debug)]
pub enum FieldKind {
    /// One value.
    Leaf(Leaf),
    /// One object's subtree.
    Object(&'static Node),
    /// One subtree per element, named by the mangled key.
    List(List),
}

/// A value stored at one path.
#[derive(Debug)]
pub struct Leaf {
    /// Its JSON type, which fixes its text form.
    pub scalar: Scalar,
    /// The schema's constraints on it.
    pub constraints: Constraints,
}

/// The JSON type of a leaf and so its text form in Xenstore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// The text itself.
    String,
    /// Decimal, without sign for non-negative values, without leading zeros.
    Integer,
    /// A JSON number.
    Number,
    /// `1` for true, `0` for false (Xenstore's convention, as in `feature-*` keys).
    Boolean,
}

/// A list of objects: one subtree per element.
#[derive(Debug)]
pub struct List {
    /// The element field whose value names each entry.
    pub key: &'static str,
    /// The key field's format, which decides its canonical form before mangling.
    pub key_format: Option<&'static str>,
    /// Where each element's fields live, relative to its entry.
    pub node: &'static Node,
}
