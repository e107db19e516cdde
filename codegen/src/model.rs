//! The schema language: the Rust model of `schema/vproto.json`.
//!
//! Every struct here is both the serde model the loader parses into and the
//! source of `schema/meta.schema.json` (through schemars), so the meta-schema
//! can never drift from what the loader accepts. Maps are [`IndexMap`]s holding
//! their keys in sorted order (the loader reads through a `serde_json::Value`, whose objects
//! are sorted), so the generated code does not depend on how the schema file orders them.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A `MAJOR.MINOR` version, as oslo.versionedobjects writes them: the support crate's, which the
/// generated code uses too, so the two sides parse versions alike.
pub use vproto_support::wire::Version;

/// A `MAJOR.MINOR.PATCH` semantic version, used for data-tree layouts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SemVer(pub String);

impl SemVer {
    /// The version, parsed as the support crate's tree interpreter parses it; `None` when the
    /// text is not of that shape (the meta-schema refuses it before).
    pub fn layout_version(&self) -> Option<vproto_support::tree::LayoutVersion> {
        self.0.parse().ok()
    }
}

impl JsonSchema for SemVer {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SemVer".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A semantic version MAJOR.MINOR.PATCH, such as \"1.0.0\".",
            "type": "string",
            "pattern": "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)$"
        })
    }
}

/// The whole schema document.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Where editors find the meta-schema; ignored by the loader.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub meta_schema: Option<String>,
    /// The protocol as a whole: its name and version history.
    pub protocol: Protocol,
    /// Named value types (strings with formats, enums, ...), referenced as `#/types/NAME`.
    #[serde(default)]
    pub types: IndexMap<String, NamedType>,
    /// Versioned objects, referenced by name from `{"object": NAME}`.
    #[serde(default)]
    pub objects: IndexMap<String, Object>,
    /// Errors with stable codes, referenced by name from methods.
    #[serde(default)]
    pub errors: IndexMap<String, ErrorDef>,
    /// RPC services, each a group of methods.
    #[serde(default)]
    pub services: IndexMap<String, Service>,
    /// Data trees: how an object is laid out as Xenstore paths.
    #[serde(default)]
    pub data_trees: IndexMap<String, DataTree>,
}

/// The protocol's identity and history.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// Short name of the protocol, such as `vproto`.
    pub name: String,
    /// What the protocol is for.
    pub description: String,
    /// The current protocol version: the last entry of `history`.
    pub version: Version,
    /// One note per protocol version, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// One version and what it changed.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// The version this note describes.
    pub version: Version,
    /// What changed in this version, for humans.
    pub note: String,
}

/// A named value type: a [`TypeExpr`] with documentation and history.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedType {
    /// What values of this type mean.
    pub description: String,
    /// The protocol version that introduced the type.
    pub since: Version,
    /// The protocol version from which the type is deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<Version>,
    /// For enums: whether readers must accept values they do not know
    /// (they keep them as unknown rather than failing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
    /// The shape of the values, in JSON Schema 2020-12 vocabulary.
    pub schema: TypeExpr,
}

/// JSON Schema's primitive type names that the schema language uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    /// A JSON string.
    String,
    /// A JSON number without fraction.
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON array; `items` gives the element type.
    Array,
    /// A JSON object used as a map; `additionalProperties` gives the value type.
    Object,
}

/// A type expression: a subset of JSON Schema 2020-12 plus references to
/// versioned objects.
///
/// Exactly one of `$ref`, `object` and `type` is given; the loader checks
/// that the other keywords fit the chosen kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypeExpr {
    /// A named type, written `#/types/NAME`.
    #[serde(rename = "$ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A versioned object, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// With `object`: the value may be any subclass of the object
    /// (a polymorphic field, resolved on the wire by the object's name).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub subclasses: bool,
    /// A JSON type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub json_type: Option<JsonType>,
    /// For strings: a named format (uuid, mac-address, ipv4, ipv6, ip-address,
    /// ip-network, pci-address, hostname, uri, date-time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// For strings: a regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// For strings: the values allowed.
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<String>>,
    /// For strings: the shortest length allowed.
    #[serde(rename = "minLength", default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    /// For strings: the longest length allowed.
    #[serde(rename = "maxLength", default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// For numbers: the smallest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    /// For numbers: the largest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<i64>,
    /// For arrays: the element type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<TypeExpr>>,
    /// For arrays: the fewest elements allowed.
    #[serde(rename = "minItems", default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u64>,
    /// For arrays: the most elements allowed.
    #[serde(rename = "maxItems", default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    /// For `type: object`: the type of every value of the map.
    #[serde(rename = "additionalProperties", default, skip_serializing_if = "Option::is_none")]
    pub additional_properties: Option<Box<TypeExpr>>,
}

/// How an object travels on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireForm {
    /// oslo.versionedobjects' envelope: `versioned_object.name`,
    /// `.namespace`, `.version`, `.data` and `.changes`, as os-vif sends.
    #[default]
    VersionedObject,
    /// A plain JSON object of its fields, versioned by the schema's history
    /// and the methods that carry it (Cyborg's REST payloads).
    Plain,
}

/// A versioned object.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Object {
    /// What the object represents.
    pub description: String,
    /// The project namespace written to `versioned_object.namespace`
    /// (required for the `versioned_object` wire form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How the object is written on the wire.
    #[serde(default)]
    pub wire: WireForm,
    /// The current version: the last entry of `history`.
    pub version: Version,
    /// One note per version of the object, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The object is only a base for subclasses and never sent itself.
    #[serde(rename = "abstract", default, skip_serializing_if = "std::ops::Not::not")]
    pub is_abstract: bool,
    /// Why and since when the object is deprecated, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<Deprecation>,
    /// The base object this one inherits fields from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<Extends>,
    /// Readers of the plain wire form keep going when they meet fields
    /// they do not know.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tolerate_unknown_fields: bool,
    /// The object's own fields (inherited ones are declared on the base).
    #[serde(default)]
    pub fields: IndexMap<String, Field>,
}

/// A deprecation notice.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deprecation {
    /// The version from which the element is deprecated.
    pub since: Version,
    /// What to use instead.
    pub note: String,
}

/// Inheritance: the base object and which base version each version of the
/// subclass carries.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Extends {
    /// The base object's name.
    pub object: String,
    /// From each listed version of the subclass on (until the next entry),
    /// the version of the base whose fields the subclass carries. The first
    /// key is the subclass's first version.
    pub versions: IndexMap<Version, Version>,
}

/// A field of an object.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// What the field holds.
    pub description: String,
    /// The type of the field's values.
    pub schema: TypeExpr,
    /// The member's name on the wire, when it is not the schema name (which stays the name in
    /// generated code): a foreign protocol's spelling such as `vmID` for the field `vm_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_name: Option<String>,
    /// The object version that added the field.
    pub since: Version,
    /// The object version from which the field should no longer be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<Version>,
    /// The object version that dropped the field. Older versions still
    /// carry it, filled from `default` when converting down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Version>,
    /// `null` is a valid value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nullable: bool,
    /// The field must be present (a default fills it in when data from a
    /// version before `since` is read). An optional field may be left unset.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub required: bool,
    /// The value a reader uses when the field is absent (`null` included).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// For object fields: from each listed version of this object on, the
    /// version of the child object it carries (oslo's `obj_relationships`).
    /// The first key is the field's `since`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub child_versions: IndexMap<Version, Version>,
}

/// Keeps an explicit `null` as `Some(Value::Null)`, unlike `Option`'s default.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// An error with a stable code.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDef {
    /// The JSON-RPC error code; outside -32768..-32000, which JSON-RPC reserves.
    pub code: i64,
    /// The error's fixed message.
    pub message: String,
    /// When the error is raised and what a client should do.
    pub description: String,
    /// The protocol version that introduced the error.
    pub since: Version,
    /// The shape of the error's `data` member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<TypeExpr>,
}

/// A group of methods served together.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// What the service does.
    pub description: String,
    /// The protocol version that introduced the service.
    pub since: Version,
    /// The service's methods, called as `service.method`.
    #[serde(default)]
    pub methods: IndexMap<String, Method>,
    /// The events the service sends to the clients that subscribed to them, as JSON-RPC
    /// notifications whose method is `service.event`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub events: IndexMap<String, Event>,
}

/// An event: a notification a server sends, unasked, to the clients that subscribed to it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// What happened when the event is sent, and what a subscriber can do with it.
    pub description: String,
    /// The protocol version that introduced the event.
    pub since: Version,
    /// The whole name of the event's notification on the wire, when it is not
    /// `service.event`: a foreign protocol's spelling such as QMP's `BLOCK_JOB_COMPLETED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_name: Option<String>,
    /// The protocol version from which the event should no longer be relied on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<Version>,
    /// The protocol version from which servers no longer send the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Version>,
    /// The event's params (its payload), by name, as methods declare theirs. A param added
    /// after the event's `since` must be optional, since older servers do not send it.
    #[serde(default)]
    pub params: IndexMap<String, Param>,
    /// Example payloads, used in docs and by the conformance suite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<EventExample>,
}

/// An example of an event's payload.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventExample {
    /// What the example shows.
    pub name: String,
    /// The params, by name.
    pub params: IndexMap<String, serde_json::Value>,
}

/// One RPC method.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Method {
    /// What the method does.
    pub description: String,
    /// The protocol version that introduced the method.
    pub since: Version,
    /// The whole name the method is called by on the wire, when it is not `service.method`:
    /// a foreign protocol's spelling such as vdsm's `Host.getCapabilities` or QMP's
    /// `query-status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_name: Option<String>,
    /// The protocol version from which the method is deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<Version>,
    /// Named parameters, in positional order.
    #[serde(default)]
    pub params: IndexMap<String, Param>,
    /// The result's type; absent for notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TypeExpr>,
    /// The method is a notification: it is never answered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notification: bool,
    /// Names of the errors the method may answer with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// A REST binding for HTTP transports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpBinding>,
    /// The roles whose callers may call the method (lower_snake_case names, such as `driver`
    /// or `operator`), checked by the generated dispatcher against the role of the token the
    /// caller presented; absent, every caller may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Example calls, used in docs and by the conformance suite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
}

/// A method parameter.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// What the parameter means.
    pub description: String,
    /// The parameter's type.
    pub schema: TypeExpr,
    /// The member's name on the wire, when it is not the schema name (which stays the name in
    /// generated code): a foreign protocol's spelling such as `vmID` for the param `vm_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_name: Option<String>,
    /// The parameter must be given.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub required: bool,
    /// The protocol version that added the parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Version>,
    /// The protocol version from which the parameter should no longer be given (servers still
    /// accept it; a compatibility policy may refuse it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<Version>,
}

/// HTTP verbs a method can be bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// Read without side effects.
    Get,
    /// Create or trigger.
    Post,
    /// Replace.
    Put,
    /// Remove.
    Delete,
}

impl HttpMethod {
    /// The verb as HTTP writes it (`GET`, `POST`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// A REST binding of a method.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpBinding {
    /// The HTTP verb.
    pub method: HttpMethod,
    /// The path, starting with `/`.
    pub path: String,
    /// Which param the request body is, as google.api.http's `body: "registration"`: the body
    /// is that param's value (`POST /hello` with the registration object itself). Absent, the
    /// body is the params object (by name) or array (by position). Either way a body that is an
    /// object whose only member is named like the param is read as params by name, so the
    /// wrapped form keeps working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// An example call of a method.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// What the example shows.
    pub name: String,
    /// The params, by name.
    pub params: IndexMap<String, serde_json::Value>,
    /// The result expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// A data tree: an object laid out as Xenstore paths under a root.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataTree {
    /// What the tree publishes and who reads it.
    pub description: String,
    /// The object whose fields the tree holds.
    pub object: String,
    /// The root path of the tree, relative to the domain's home path.
    pub root: String,
    /// The key, relative to the root, that holds the layout version.
    pub version_key: String,
    /// The current layout version; readers accept any minor of a major they know.
    pub layout_version: SemVer,
    /// One note per layout version, oldest first.
    pub history: Vec<LayoutHistoryEntry>,
    /// Where each field of the object lives, relative to the root.
    pub paths: IndexMap<String, TreePath>,
}

/// One layout version and what it changed.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutHistoryEntry {
    /// The layout version this note describes.
    pub version: SemVer,
    /// What changed.
    pub note: String,
}

/// Where a field lives in a data tree.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TreePath {
    /// The path relative to the enclosing object's path (the tree root at the
    /// top): segments of ASCII letters, digits, `_` and `-`. A list field's
    /// path ends in one `/{key}` segment, filled per element from its `key`
    /// field.
    pub path: String,
    /// For list fields: the element field whose value names each entry. It
    /// must be a required string with a `format`; its value is put in the
    /// format's canonical form (IPv6 per RFC 5952, MACs lower-cased), then
    /// lower-cased with every character outside `[a-z0-9]` written as `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// For object fields and lists of objects: where each field of the object
    /// (of each element) lives, relative to this path (the entry's path).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fields: IndexMap<String, TreePath>,
}
