//! The wire layer that generated code stands on: versions, object
//! descriptors, the `versioned_object.*` envelope, version conversion and
//! validation of every value read from outside.
//!
//! Nothing here knows a particular object: generated code describes each
//! object with a static [`ObjectInfo`] (fields, `since`, child-version pins,
//! the base it extends) and the functions here convert any object from those
//! tables, so conversions are derived from the schema, never hand-written.

mod convert;
mod error;
mod formats;
mod stream;
mod value;

pub use convert::{backport_envelope, backport_named, fill_defaults, Manifest};
pub use error::{WireError, WirePath};
pub use formats::{check_constraints, check_format, format_is_valid, Constraints, FieldChecks, FormatError, FORMATS};
pub use stream::{write_envelope, write_json_str, write_plain, FieldSink, StreamContext, StreamValue, StreamValueDyn};
pub use value::{
    field_default, insert_optional, read_optional, read_required, Envelope, PlainObject, VersionedObject, WireValue,
};

use std::{cmp::Ordering, fmt, str::FromStr};

/// The keys of the oslo.versionedobjects envelope.
pub mod keys {
    /// The object's registered name.
    pub const NAME: &str = "versioned_object.name";
    /// The project namespace.
    pub const NAMESPACE: &str = "versioned_object.namespace";
    /// The `MAJOR.MINOR` version the data is written at.
    pub const VERSION: &str = "versioned_object.version";
    /// The fields, as a JSON object.
    pub const DATA: &str = "versioned_object.data";
    /// The fields the sender marks as changed.
    pub const CHANGES: &str = "versioned_object.changes";
}

/// An object version, `MAJOR.MINOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// Incompatible changes bump it.
    pub major: u32,
    /// Compatible additions bump it.
    pub minor: u32,
}

impl Version {
    /// The version `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Version { major, minor }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor).cmp(&(other.major, other.minor))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Text that is not a `MAJOR.MINOR` version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a MAJOR.MINOR version")]
pub struct VersionError {
    /// The text as given.
    pub text: String,
}

impl FromStr for Version {
    type Err = VersionError;

    /// Parses `MAJOR.MINOR` (decimal numbers without leading zeros).
    fn from_str(text: &str) -> Result<Self, VersionError> {
        let bad = || VersionError { text: text.to_string() };
        let (major, minor) = text.split_once('.').ok_or_else(bad)?;
        let part = |digits: &str| {
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            canonical.then(|| digits.parse::<u32>().ok()).flatten().ok_or_else(bad)
        };
        Ok(Version::new(part(major)?, part(minor)?))
    }
}

/// Written as its `MAJOR.MINOR` text.
impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Read from `MAJOR.MINOR` text; anything else is refused with the parser's message.
impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for Version {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Version".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A MAJOR.MINOR version, such as \"1.4\".",
            "type": "string",
            "pattern": "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)$"
        })
    }
}

/// How an object is written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireForm {
    /// The `versioned_object.*` envelope.
    VersionedObject,
    /// A plain JSON object of the fields.
    Plain,
}

/// What a field holds, as far as version conversion cares.
#[derive(Clone, Copy, Debug)]
pub struct ChildInfo {
    /// The declared object name.
    pub object: &'static str,
    /// Any subclass of `object` may be sent.
    pub polymorphic: bool,
    /// From each version of the owner on, the child version it carries.
    pub versions: &'static [(Version, Version)],
}

/// A field, as version conversion sees it.
#[derive(Clone, Copy, Debug)]
pub struct FieldInfo {
    /// The wire name.
    pub name: &'static str,
    /// The owner's version that added it.
    pub since: Version,
    /// The owner's version that dropped it.
    pub removed: Option<Version>,
    /// The default as JSON text, used when the field is absent.
    pub default: Option<&'static str>,
    /// Set when the field holds objects.
    pub child: Option<ChildInfo>,
}

impl FieldInfo {
    /// A field added at `since`, never removed, without default, holding no objects.
    /// The other builders below fill in the rest, so generated tables stay one line per field.
    pub const fn new(name: &'static str, since: Version) -> Self {
        FieldInfo { name, since, removed: None, default: None, child: None }
    }

    /// The field was dropped at `version` of its owner.
    pub const fn removed(mut self, version: Version) -> Self {
        self.removed = Some(version);
        self
    }

    /// The default, as JSON text, used when the field is absent.
    pub const fn default(mut self, json: &'static str) -> Self {
        self.default = Some(json);
        self
    }

    /// The field holds objects of `object` (`polymorphic`: or any subclass), at the pinned `versions`.
    pub const fn child(
        mut self,
        object: &'static str,
        polymorphic: bool,
        versions: &'static [(Version, Version)],
    ) -> Self {
        self.child = Some(ChildInfo { object, polymorphic, versions });
        self
    }

    /// Whether the field exists at `version` of its owner.
    pub fn exists_at(&self, version: Version) -> bool {
        self.since <= version && self.removed.is_none_or(|removed| version < removed)
    }
}

/// The base an object extends.
#[derive(Clone, Copy, Debug)]
pub struct BaseInfo {
    /// The base object's name.
    pub object: &'static str,
    /// From each version of the subclass on, the base version it carries.
    pub versions: &'static [(Version, Version)],
}

/// Everything conversion needs to know about one object.
#[derive(Debug)]
pub struct ObjectInfo {
    /// The registered name.
    pub name: &'static str,
    /// The namespace written to the envelope.
    pub namespace: &'static str,
    /// How it travels.
    pub wire: WireForm,
    /// The current version.
    pub version: Version,
    /// Every version, oldest first.
    pub versions: &'static [Version],
    /// The object's own fields.
    pub fields: &'static [FieldInfo],
    /// The base it extends.
    pub base: Option<BaseInfo>,
    /// Readers accept fields they do not know (plain form only).
    pub tolerate_unknown_fields: bool,
}

/// All objects of one schema, sorted by name.
#[derive(Debug)]
pub struct Registry {
    /// The objects, sorted by name so lookups can bisect.
    pub objects: &'static [&'static ObjectInfo],
    /// Some field of some object is removed at a later version (known when generating).
    pub has_removed_fields: bool,
}

impl Registry {
    /// The object called `name`.
    pub fn get(&self, name: &str) -> Option<&'static ObjectInfo> {
        self.objects.binary_search_by(|info| info.name.cmp(name)).ok().map(|index| self.objects[index])
    }

    /// The names of every object, for error messages.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.objects.iter().map(|info| info.name)
    }
}

/// Writes `object` as JSON text at `target` (default: its current version),
/// converting children by their pins or by `manifest`, without building a
/// `serde_json::Value` tree; the bytes equal `serde_json::to_string` of
/// [`VersionedObject::to_primitive`]'s result.
pub fn to_json_string<T: VersionedObject + StreamValue>(
    object: &T,
    target: Option<Version>,
    manifest: Option<&Manifest>,
) -> Result<String, WireError> {
    let registry = T::registry();
    // Removed fields are filled in from defaults when converting down; the
    // tree-building path does that, the streaming one does not.
    if registry.has_removed_fields {
        let value = object.to_primitive(target, manifest)?;
        return Ok(serde_json::to_string(&value).expect("a JSON value always serializes"));
    }
    let mut out = Vec::with_capacity(4096);
    object.write_json(&mut out, target, &StreamContext { registry, manifest })?;
    Ok(String::from_utf8(out).expect("only UTF-8 is written"))
}

/// The entry of a version map that applies at `version`: the last whose key is not after it.
pub fn mapped_version(map: &[(Version, Version)], version: Version) -> Option<Version> {
    map.iter().rev().find(|(from, _)| *from <= version).map(|(_, to)| *to)
}
