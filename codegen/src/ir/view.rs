//! A serializable view of the IR: what templates ([`crate::emit_templates`]) render.
//!
//! The IR borrows from the schema and speaks Rust (`RustType`); the view is plain data, the
//! same for every language: every object with each of its versions (the fields that version
//! carries, what it added and dropped, the child versions it pins), services with their
//! methods, params, results, declared errors, REST routes and examples, events, errors, named
//! types and every data tree path. A type is a [`TypeView`] (`kind`, `name`, `item`), which
//! the naming helpers of each language turn into that language's type. Every key is always
//! present (absent values are `null`), so templates rendered in strict mode may test any of
//! them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{
    ErrorIr, EventIr, FieldIr, MethodIr, NodeIr, ObjectIr, ParamIr, RustType, Scalar, SchemaIr, ServiceIr,
    TreeFieldKind, TreeIr, TypeExpr, Version, WireForm,
};
use crate::naming;

/// The whole schema as templates see it.
#[derive(Clone, Debug, Serialize)]
pub struct SchemaView {
    /// The protocol's identity and history.
    pub protocol: ProtocolView,
    /// Named types, by name.
    pub types: Vec<NamedTypeView>,
    /// Objects, by name.
    pub objects: Vec<ObjectView>,
    /// Declared errors, in schema order.
    pub errors: Vec<ErrorView>,
    /// The error that carries version negotiation, when the schema declares it.
    pub unsupported_version: Option<ErrorView>,
    /// Services, in schema order.
    pub services: Vec<ServiceView>,
    /// Every method of every service, in schema order.
    pub methods: Vec<MethodView>,
    /// Every event of every service, in schema order.
    pub events: Vec<EventView>,
    /// Data trees, in schema order.
    pub data_trees: Vec<TreeView>,
    /// The published JSON Schema (2020-12) of every type, object and method's params.
    pub json_schema: Value,
}

/// The protocol's identity and history.
#[derive(Clone, Debug, Serialize)]
pub struct ProtocolView {
    /// Short name, such as `vproto`.
    pub name: String,
    /// What the protocol is for.
    pub description: String,
    /// The current protocol version.
    pub version: Version,
    /// One note per protocol version, oldest first.
    pub history: Vec<NoteView>,
}

/// A version and what it brought.
#[derive(Clone, Debug, Serialize)]
pub struct NoteView {
    /// The version (`MAJOR.MINOR`, or `MAJOR.MINOR.PATCH` for data tree layouts).
    pub version: String,
    /// What changed.
    pub note: String,
}

/// A type as templates see it: a `kind` and, by kind, a `name` or an `item`.
#[derive(Clone, Debug, Serialize)]
pub struct TypeView {
    /// `string`, `integer`, `number`, `boolean`, `named` (a named type: `name`, `resolved`),
    /// `object` (an object: `name`), `any_of` (a polymorphic base: `name`, `members`),
    /// `list` or `map` (`item`, maps keyed by strings).
    pub kind: &'static str,
    /// The named type, object or base, for those kinds.
    pub name: Option<String>,
    /// The element type of a list or map.
    pub item: Option<Box<TypeView>>,
    /// For `named`: the type it stands for.
    pub resolved: Option<Box<TypeView>>,
    /// For `any_of`: every object that may stand for the base, sorted.
    pub members: Option<Vec<String>>,
    /// The value must be a versioned object envelope (`object`/`any_of` of versioned objects).
    pub versioned: bool,
    /// The type expression as the schema writes it (constraints, formats, enums).
    pub schema: Value,
}

/// A named type.
#[derive(Clone, Debug, Serialize)]
pub struct NamedTypeView {
    /// The type's name.
    pub name: String,
    /// A file-name-safe key for per-item templates.
    pub slug: String,
    /// What values of the type mean.
    pub description: String,
    /// The protocol version that introduced it.
    pub since: Version,
    /// The protocol version from which it is deprecated.
    pub deprecated: Option<Version>,
    /// For enums: readers keep values they do not know.
    pub open: bool,
    /// The shape of the values.
    #[serde(rename = "type")]
    pub type_: TypeView,
    /// The enum's values, for enums.
    pub enum_values: Option<Vec<String>>,
}

/// The version map of a child pin or a base: from `from` on, `to`.
#[derive(Clone, Debug, Serialize)]
pub struct VersionPairView {
    /// The owner's version from which the pair applies.
    pub from: Version,
    /// The version of the child or base carried.
    pub to: Version,
}

/// The objects a field holds.
#[derive(Clone, Debug, Serialize)]
pub struct ChildView {
    /// The object (or polymorphic base).
    pub object: String,
    /// Any subclass of it may stand for it.
    pub polymorphic: bool,
    /// From each listed version of the owner on, the child version it carries.
    pub versions: Vec<VersionPairView>,
}

/// A field of an object.
#[derive(Clone, Debug, Serialize)]
pub struct FieldView {
    /// The object that declares it.
    pub owner: String,
    /// The schema name (what generated code names it by).
    pub name: String,
    /// Its name on the wire (the schema's `wire_name`, or `name`).
    pub wire_name: String,
    /// What it holds.
    pub description: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_: TypeView,
    /// The owner's version that added it.
    pub since: Version,
    /// The owner's version from which it is deprecated.
    pub deprecated: Option<Version>,
    /// The owner's version that dropped it.
    pub removed: Option<Version>,
    /// `null` is a valid value.
    pub nullable: bool,
    /// The field must be present.
    pub required: bool,
    /// The value readers use when it is absent.
    pub default: Option<Value>,
    /// The default as compact JSON text (`null` when there is none; a default of `false` or
    /// `0` is a non-empty text, so `{{#if default_json}}` tells whether there is one).
    pub default_json: Option<String>,
    /// The current version carries it.
    pub current: bool,
    /// A base declares it.
    pub inherited: bool,
    /// For a field holding objects: which, and the versions pinned.
    pub child: Option<ChildView>,
}

/// One version of an object.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectVersionView {
    /// The version.
    pub version: Version,
    /// `1_0` for `1.0`: for identifiers.
    pub ident: String,
    /// What it changed.
    pub note: String,
    /// The fields this version carries, in the object's field order (bases' first).
    pub fields: Vec<FieldView>,
    /// Their names.
    pub field_names: Vec<String>,
    /// Fields it carries that the previous version did not.
    pub added: Vec<String>,
    /// Fields the previous version carried that it does not.
    pub removed: Vec<String>,
    /// The base version it carries, if it extends one.
    pub base_version: Option<Version>,
    /// The child versions it pins, by field.
    pub children: Vec<ChildPinView>,
    /// It is the current version.
    pub current: bool,
}

/// The child version an object version pins for one field.
#[derive(Clone, Debug, Serialize)]
pub struct ChildPinView {
    /// The field.
    pub field: String,
    /// The child object.
    pub object: String,
    /// Its version.
    pub version: Version,
}

/// An object with its whole history.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectView {
    /// The schema name.
    pub name: String,
    /// A file-name-safe key for per-item templates.
    pub slug: String,
    /// What it represents.
    pub description: String,
    /// `versioned_object.namespace` (empty for plain objects).
    pub namespace: String,
    /// `versioned_object` or `plain`.
    pub wire: WireForm,
    /// It travels in the `versioned_object.*` envelope.
    pub versioned: bool,
    /// The current version.
    pub version: Version,
    /// Every version, oldest first.
    pub versions: Vec<ObjectVersionView>,
    /// It is never sent itself, only its subclasses.
    pub is_abstract: bool,
    /// Why and since when it is deprecated.
    pub deprecated: Option<NoteView>,
    /// The base it extends and the base version each of its versions carries.
    pub extends: Option<ChildView>,
    /// Readers skip fields they do not know.
    pub tolerate_unknown_fields: bool,
    /// Every field of every version, bases' first, removed ones included.
    pub fields: Vec<FieldView>,
    /// The fields of the current version.
    pub current_fields: Vec<FieldView>,
    /// Objects that extend it directly.
    pub subclasses: Vec<String>,
}

/// A param of a method or event.
#[derive(Clone, Debug, Serialize)]
pub struct ParamView {
    /// Its schema name (what generated code names it by).
    pub name: String,
    /// Its name on the wire (the schema's `wire_name`, or `name`).
    pub wire_name: String,
    /// What it means.
    pub description: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_: TypeView,
    /// It must be given.
    pub required: bool,
    /// The protocol version that added it.
    pub since: Option<Version>,
    /// The protocol version from which it should no longer be given.
    pub deprecated: Option<Version>,
}

/// A declared error.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorView {
    /// Its name.
    pub name: String,
    /// A file-name-safe key for per-item templates.
    pub slug: String,
    /// Its JSON-RPC code.
    pub code: i64,
    /// Its fixed message.
    pub message: String,
    /// When it is raised and what a client should do.
    pub description: String,
    /// The protocol version that introduced it.
    pub since: Version,
    /// The type of its `data`.
    pub data: Option<TypeView>,
    /// The `$defs` key of its data's schema.
    pub data_def: String,
}

/// A REST binding.
#[derive(Clone, Debug, Serialize)]
pub struct HttpView {
    /// The verb (`GET`, `POST`, ...).
    pub method: String,
    /// The path.
    pub path: String,
    /// The param that is the request body.
    pub body: Option<String>,
}

/// An example call or payload.
#[derive(Clone, Debug, Serialize)]
pub struct ExampleView {
    /// Its name.
    pub name: String,
    /// The params, by name.
    pub params: Value,
    /// The result, for a method's example that has one.
    pub result: Option<Value>,
}

/// A method.
#[derive(Clone, Debug, Serialize)]
pub struct MethodView {
    /// The service.
    pub service: String,
    /// The name within the service.
    pub name: String,
    /// `service.method`.
    pub wire_name: String,
    /// A file-name-safe key for per-item templates (the wire name).
    pub slug: String,
    /// What it does.
    pub description: String,
    /// The protocol version that introduced it.
    pub since: Version,
    /// The protocol version from which it is deprecated.
    pub deprecated: Option<Version>,
    /// Its params, in positional order.
    pub params: Vec<ParamView>,
    /// Its result (`null` for a method answered with `null`).
    pub result: Option<TypeView>,
    /// It is never answered.
    pub notification: bool,
    /// The errors it declares.
    pub errors: Vec<ErrorView>,
    /// It declares UnsupportedVersion: clients backlevel and retry.
    pub negotiates: bool,
    /// The roles whose callers may call it; empty: every caller.
    pub roles: Vec<String>,
    /// Its REST binding.
    pub http: Option<HttpView>,
    /// Example calls.
    pub examples: Vec<ExampleView>,
    /// The `$defs` key of its params object's schema.
    pub params_def: String,
    /// The `$defs` key of its result's schema.
    pub result_def: String,
}

/// An event.
#[derive(Clone, Debug, Serialize)]
pub struct EventView {
    /// The service.
    pub service: String,
    /// The name within the service.
    pub name: String,
    /// `service.event`.
    pub wire_name: String,
    /// A file-name-safe key for per-item templates (the wire name).
    pub slug: String,
    /// When it is sent.
    pub description: String,
    /// The protocol version that introduced it.
    pub since: Version,
    /// The protocol version from which it is deprecated.
    pub deprecated: Option<Version>,
    /// The protocol version from which servers no longer send it.
    pub removed: Option<Version>,
    /// Its params.
    pub params: Vec<ParamView>,
    /// Example payloads.
    pub examples: Vec<ExampleView>,
    /// The `$defs` key of its params object's schema.
    pub params_def: String,
}

/// A service.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceView {
    /// Its name.
    pub name: String,
    /// A file-name-safe key for per-item templates.
    pub slug: String,
    /// What it does.
    pub description: String,
    /// The protocol version that introduced it.
    pub since: Version,
    /// Its methods.
    pub methods: Vec<MethodView>,
    /// Its events, removed ones included.
    pub events: Vec<EventView>,
}

/// One path of a data tree.
#[derive(Clone, Debug, Serialize)]
pub struct TreePathView {
    /// The field, dotted from the tree's object (`nics.mac`).
    pub field: String,
    /// The Xenstore path from the tree's root, `{key}` for a list's entries.
    pub path: String,
    /// `leaf`, `object` or `list`.
    pub kind: &'static str,
    /// A leaf's type: `string`, `integer`, `number` or `boolean`.
    pub scalar: Option<&'static str>,
    /// A reader must find it.
    pub required: bool,
    /// A list's key field.
    pub key: Option<String>,
    /// The format a list's keys are canonicalized by.
    pub key_format: Option<String>,
}

/// A data tree.
#[derive(Clone, Debug, Serialize)]
pub struct TreeView {
    /// Its name.
    pub name: String,
    /// A file-name-safe key for per-item templates.
    pub slug: String,
    /// What it publishes.
    pub description: String,
    /// The object it holds.
    pub object: String,
    /// The root path, relative to the domain's home.
    pub root: String,
    /// The key that holds the layout version.
    pub version_key: String,
    /// The current layout version.
    pub layout_version: String,
    /// One note per layout version.
    pub history: Vec<NoteView>,
    /// Every path, depth first in the schema's order.
    pub paths: Vec<TreePathView>,
}

impl SchemaView {
    /// The view of `ir`, carrying the published JSON Schema `json_schema`.
    pub fn new(ir: &SchemaIr, json_schema: Value) -> Self {
        let errors: Vec<ErrorView> = ir.errors.iter().map(|error| ErrorView::new(ir, error)).collect();
        let services: Vec<ServiceView> = ir.services.iter().map(|service| ServiceView::new(ir, service)).collect();
        SchemaView {
            protocol: ProtocolView {
                name: ir.protocol.name.into(),
                description: ir.protocol.description.into(),
                version: ir.protocol.version,
                history: ir.protocol.history.iter().map(|e| note(e.version, &e.note)).collect(),
            },
            types: ir
                .types
                .values()
                .map(|named| NamedTypeView {
                    name: named.name.into(),
                    slug: slug(named.name),
                    description: named.description.into(),
                    since: named.since,
                    deprecated: named.deprecated,
                    open: named.open,
                    type_: TypeView::of_named_type(ir, named.schema, &named.rust_type),
                    enum_values: named.schema.enum_values.clone(),
                })
                .collect(),
            objects: ir.objects.values().map(|object| ObjectView::new(ir, object)).collect(),
            unsupported_version: ir.unsupported_version.as_ref().map(|error| ErrorView::new(ir, error)),
            errors,
            methods: services.iter().flat_map(|service| service.methods.clone()).collect(),
            events: services.iter().flat_map(|service| service.events.clone()).collect(),
            services,
            data_trees: ir.data_trees.iter().map(TreeView::new).collect(),
            json_schema,
        }
    }
}

fn note(version: impl ToString, note: &str) -> NoteView {
    NoteView { version: version.to_string(), note: note.into() }
}

/// A file-name-safe key: ASCII letters, digits, `.`, `_` and `-` kept, anything else `_`.
fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

fn pairs<'a>(map: impl IntoIterator<Item = (&'a Version, &'a Version)>) -> Vec<VersionPairView> {
    map.into_iter().map(|(from, to)| VersionPairView { from: *from, to: *to }).collect()
}

/// The entry of `map` (ascending `from → to`) that applies at `version`.
fn mapped<'a>(map: impl DoubleEndedIterator<Item = (&'a Version, &'a Version)>, version: Version) -> Option<Version> {
    map.rev().find(|(from, _)| **from <= version).map(|(_, to)| *to)
}

impl TypeView {
    fn new(ir: &SchemaIr, schema: &TypeExpr, rust_type: &RustType) -> Self {
        let simple = |kind| TypeView {
            kind,
            name: None,
            item: None,
            resolved: None,
            members: None,
            versioned: false,
            schema: serde_json::to_value(schema).expect("type expressions serialize"),
        };
        match rust_type {
            RustType::String => simple("string"),
            RustType::Integer => simple("integer"),
            RustType::Number => simple("number"),
            RustType::Boolean => simple("boolean"),
            RustType::Optional(inner) => TypeView::new(ir, schema, inner),
            RustType::Named(name) if ir.types.contains_key(name.as_str()) => {
                let named = &ir.types[name.as_str()];
                TypeView {
                    name: Some(name.clone()),
                    resolved: Some(Box::new(TypeView::of_named_type(ir, named.schema, &named.rust_type))),
                    ..simple("named")
                }
            }
            RustType::Named(name) => TypeView {
                name: Some(name.clone()),
                versioned: ir.objects.get(name.as_str()).is_some_and(|object| object.wire == WireForm::VersionedObject),
                ..simple("object")
            },
            RustType::AnyOf(base) => TypeView {
                name: Some(base.clone()),
                members: Some(
                    ir.polymorphic
                        .get(base.as_str())
                        .map(|m| m.iter().map(|s| s.to_string()).collect())
                        .unwrap_or_default(),
                ),
                versioned: ir.objects.get(base.as_str()).is_some_and(|object| object.wire == WireForm::VersionedObject),
                ..simple("any_of")
            },
            RustType::List(item) | RustType::Map(item) => {
                let inner = schema.items.as_deref().or(schema.additional_properties.as_deref());
                let default = TypeExpr::default();
                TypeView {
                    item: Some(Box::new(TypeView::new(ir, inner.unwrap_or(&default), item))),
                    ..simple(if matches!(rust_type, RustType::List(_)) { "list" } else { "map" })
                }
            }
        }
    }

    /// The type a named type's expression stands for (itself a named type only through a `$ref`).
    fn of_named_type(ir: &SchemaIr, schema: &TypeExpr, rust_type: &RustType) -> Self {
        TypeView::new(ir, schema, rust_type)
    }
}

impl FieldView {
    fn new(ir: &SchemaIr, object: &str, field: &FieldIr) -> Self {
        FieldView {
            owner: field.owner.into(),
            name: field.name.into(),
            wire_name: field.wire_name.into(),
            description: field.description.into(),
            type_: TypeView::new(ir, field.schema, &field.value_type),
            since: field.since,
            deprecated: field.deprecated,
            removed: field.removed,
            nullable: field.nullable,
            required: field.required,
            default: field.default.cloned(),
            default_json: field.default.map(|value| value.to_string()),
            current: field.removed.is_none(),
            inherited: field.owner != object,
            child: field.child.as_ref().map(|child| ChildView {
                object: child.object.into(),
                polymorphic: child.polymorphic,
                versions: pairs(child.versions),
            }),
        }
    }
}

impl ObjectView {
    fn new(ir: &SchemaIr, object: &ObjectIr) -> Self {
        let fields: Vec<FieldView> = object.fields.iter().map(|field| FieldView::new(ir, object.name, field)).collect();
        let mut versions: Vec<ObjectVersionView> = Vec::new();
        for entry in object.history {
            let owner_versions = owner_versions(ir, object, entry.version);
            let carried: Vec<&FieldIr> = object
                .fields
                .iter()
                .filter(|field| {
                    owner_versions
                        .get(field.owner)
                        .is_some_and(|at| field.since <= *at && field.removed.is_none_or(|removed| *at < removed))
                })
                .collect();
            let names: Vec<String> = carried.iter().map(|field| field.name.to_string()).collect();
            let previous = versions.last().map(|v| v.field_names.clone()).unwrap_or_default();
            versions.push(ObjectVersionView {
                version: entry.version,
                ident: format!("{}_{}", entry.version.major, entry.version.minor),
                note: entry.note.clone(),
                added: names.iter().filter(|name| !previous.contains(name)).cloned().collect(),
                removed: previous.iter().filter(|name| !names.contains(name)).cloned().collect(),
                fields: carried.iter().map(|field| FieldView::new(ir, object.name, field)).collect(),
                field_names: names,
                base_version: object.extends.and_then(|extends| mapped(extends.versions.iter(), entry.version)),
                children: carried
                    .iter()
                    .filter_map(|field| {
                        let child = field.child.as_ref()?;
                        let at = owner_versions[field.owner];
                        Some(ChildPinView {
                            field: field.name.into(),
                            object: child.object.into(),
                            version: mapped(child.versions.iter(), at)?,
                        })
                    })
                    .collect(),
                current: entry.version == object.version,
            });
        }
        ObjectView {
            name: object.name.into(),
            slug: slug(object.name),
            description: object.description.into(),
            namespace: object.namespace.into(),
            wire: object.wire,
            versioned: object.wire == WireForm::VersionedObject,
            version: object.version,
            versions,
            is_abstract: object.is_abstract,
            deprecated: object.deprecated.map(|d| note(d.since, &d.note)),
            extends: object.extends.map(|extends| ChildView {
                object: extends.object.clone(),
                polymorphic: false,
                versions: pairs(&extends.versions),
            }),
            tolerate_unknown_fields: object.tolerate_unknown_fields,
            current_fields: fields.iter().filter(|field| field.current).cloned().collect(),
            fields,
            subclasses: ir
                .objects
                .values()
                .filter(|other| other.extends.is_some_and(|extends| extends.object == object.name))
                .map(|other| other.name.to_string())
                .collect(),
        }
    }
}

/// The version of the object and of each of its bases that `object` at `version` carries,
/// by name (a walk bounded by the number of objects).
fn owner_versions<'s>(ir: &SchemaIr<'s>, object: &ObjectIr<'s>, version: Version) -> BTreeMap<&'s str, Version> {
    let mut found = BTreeMap::from([(object.name, version)]);
    let (mut current, mut at) = (object, version);
    while let Some(extends) = current.extends {
        let Some(base) = ir.objects.get(extends.object.as_str()) else { break };
        let Some(base_at) = mapped(extends.versions.iter(), at) else { break };
        if found.insert(base.name, base_at).is_some() {
            break;
        }
        (current, at) = (base, base_at);
    }
    found
}

fn params(ir: &SchemaIr, params: &[ParamIr]) -> Vec<ParamView> {
    params
        .iter()
        .map(|param| ParamView {
            name: param.name.into(),
            wire_name: param.wire_name.into(),
            description: param.description.into(),
            type_: TypeView::new(ir, param.schema, &param.rust_type),
            required: param.required,
            since: param.since,
            deprecated: param.deprecated,
        })
        .collect()
}

fn json_map<V: Serialize>(map: &indexmap::IndexMap<String, V>) -> Value {
    serde_json::to_value(map).expect("JSON values serialize")
}

impl ErrorView {
    fn new(ir: &SchemaIr, error: &ErrorIr) -> Self {
        ErrorView {
            name: error.name.into(),
            slug: slug(error.name),
            code: error.code,
            message: error.message.into(),
            description: error.description.into(),
            since: error.since,
            data: error.data.as_ref().map(|data| TypeView::new(ir, data.schema, &data.rust_type)),
            data_def: naming::error_data_def(error.name),
        }
    }
}

impl MethodView {
    fn new(ir: &SchemaIr, method: &MethodIr) -> Self {
        MethodView {
            service: method.service.into(),
            name: method.name.into(),
            wire_name: method.wire_name.clone(),
            slug: slug(&method.wire_name),
            description: method.description.into(),
            since: method.since,
            deprecated: method.deprecated,
            params: params(ir, &method.params),
            result: method.result.as_ref().map(|result| TypeView::new(ir, result.schema, &result.rust_type)),
            notification: method.notification,
            errors: method.errors.iter().map(|error| ErrorView::new(ir, error)).collect(),
            negotiates: method.negotiates,
            roles: method.roles.iter().map(|role| role.to_string()).collect(),
            http: method.http.as_ref().map(|http| HttpView {
                method: http.method.as_str().into(),
                path: http.path.into(),
                body: http.body.map(str::to_string),
            }),
            examples: method
                .examples
                .iter()
                .map(|example| ExampleView {
                    name: example.name.clone(),
                    params: json_map(&example.params),
                    result: example.result.clone(),
                })
                .collect(),
            params_def: naming::params_def(method.service, method.name),
            result_def: naming::result_def(method.service, method.name),
        }
    }
}

impl EventView {
    fn new(ir: &SchemaIr, event: &EventIr) -> Self {
        EventView {
            service: event.service.into(),
            name: event.name.into(),
            wire_name: event.wire_name.clone(),
            slug: slug(&event.wire_name),
            description: event.description.into(),
            since: event.since,
            deprecated: event.deprecated,
            removed: event.removed,
            params: params(ir, &event.params),
            examples: event
                .examples
                .iter()
                .map(|example| ExampleView {
                    name: example.name.clone(),
                    params: json_map(&example.params),
                    result: None,
                })
                .collect(),
            params_def: naming::event_params_def(event.service, event.name),
        }
    }
}

impl ServiceView {
    fn new(ir: &SchemaIr, service: &ServiceIr) -> Self {
        ServiceView {
            name: service.name.into(),
            slug: slug(service.name),
            description: service.description.into(),
            since: service.since,
            methods: service.methods.iter().map(|method| MethodView::new(ir, method)).collect(),
            events: service.events.iter().map(|event| EventView::new(ir, event)).collect(),
        }
    }
}

impl TreeView {
    fn new(tree: &TreeIr) -> Self {
        let mut paths = Vec::new();
        tree_paths(&tree.node, "", "", &mut paths);
        TreeView {
            name: tree.name.into(),
            slug: slug(tree.name),
            description: tree.description.into(),
            object: tree.object.into(),
            root: tree.root.into(),
            version_key: tree.version_key.into(),
            layout_version: tree.layout_version.to_string(),
            history: tree.history.iter().map(|change| note(change.version, change.note)).collect(),
            paths,
        }
    }
}

/// Every path under `node`, depth first, `field` and `path` prefixed by the enclosing ones.
fn tree_paths(node: &NodeIr, field_prefix: &str, path_prefix: &str, out: &mut Vec<TreePathView>) {
    for field in &node.fields {
        let name = format!("{field_prefix}{}", field.name);
        let path = format!("{path_prefix}{}", field.path.join("/"));
        let mut view = TreePathView {
            field: name.clone(),
            path: path.clone(),
            kind: "leaf",
            scalar: None,
            required: field.required,
            key: None,
            key_format: None,
        };
        match &field.kind {
            TreeFieldKind::Leaf(leaf) => {
                view.scalar = Some(match leaf.scalar {
                    Scalar::String => "string",
                    Scalar::Integer => "integer",
                    Scalar::Number => "number",
                    Scalar::Boolean => "boolean",
                });
                out.push(view);
            }
            TreeFieldKind::Object(inner) => {
                view.kind = "object";
                out.push(view);
                tree_paths(inner, &format!("{name}."), &format!("{path}/"), out);
            }
            TreeFieldKind::List { key, key_format, node: inner } => {
                view.kind = "list";
                view.key = Some(key.to_string());
                view.key_format = key_format.map(str::to_string);
                out.push(view);
                tree_paths(inner, &format!("{name}[]."), &format!("{path}/{{key}}/"), out);
            }
        }
    }
}
