//! The intermediate representation: the checked schema resolved once, for the emitters.
//!
//! Everything an emitter would otherwise work out from the model is worked out here:
//! inheritance is flattened (a subclass lists its base's fields first), every field, param,
//! result and error datum has its Rust type, fields that hold objects know the object and its
//! pins, polymorphic fields know the subclasses they accept, methods carry their declared
//! errors and HTTP binding (events, beside them, their params), and data trees are resolved
//! down to their leaves. Emitters read only this module (with [`crate::naming`] and, for
//! Rust, [`crate::rust_syntax`]); the model's values that need no resolving (versions, type
//! expressions, wire forms, HTTP verbs, deprecations, bases, history notes, examples) are part
//! of its vocabulary, re-exported here.
//!
//! All maps are ordered, and lists keep the schema's order, so emitted output is deterministic.

use std::collections::BTreeMap;

use crate::model::Schema;
pub use crate::model::{
    Deprecation, EventExample, Example, Extends, HistoryEntry, HttpMethod, JsonType, TypeExpr, Version, WireForm,
};

mod objects;
mod services;
mod trees;
mod types;
pub mod view;

pub use objects::{ChildIr, FieldIr, ObjectIr};
pub use services::{ErrorIr, EventIr, HttpIr, MethodIr, ParamIr, ServiceIr, UNSUPPORTED_VERSION};
pub use trees::{LayoutChange, LayoutVersion, LeafIr, NodeIr, Scalar, TreeFieldIr, TreeFieldKind, TreeIr};
pub use types::{has_constraints, NamedTypeIr, RustType, TypeIr};

/// The protocol's identity and history.
#[derive(Clone, Debug)]
pub struct ProtocolIr<'s> {
    /// Short name of the protocol, such as `vproto`.
    pub name: &'s str,
    /// What the protocol is for.
    pub description: &'s str,
    /// The current protocol version.
    pub version: Version,
    /// One note per protocol version, oldest first.
    pub history: &'s [HistoryEntry],
}

/// The resolved schema.
#[derive(Clone, Debug)]
pub struct SchemaIr<'s> {
    /// The protocol's identity and history.
    pub protocol: ProtocolIr<'s>,
    /// Named types by name.
    pub types: BTreeMap<&'s str, NamedTypeIr<'s>>,
    /// Objects by name.
    pub objects: BTreeMap<&'s str, ObjectIr<'s>>,
    /// For each base used in a polymorphic field, param, result, error datum or event param: every object
    /// that may stand for it (itself unless abstract, and every transitive subclass), sorted.
    pub polymorphic: BTreeMap<&'s str, Vec<&'s str>>,
    /// The declared errors, in schema order.
    pub errors: Vec<ErrorIr<'s>>,
    /// The error that carries version negotiation ([`UNSUPPORTED_VERSION`]), when the schema
    /// declares it.
    pub unsupported_version: Option<ErrorIr<'s>>,
    /// The services, in schema order.
    pub services: Vec<ServiceIr<'s>>,
    /// The data trees, in schema order.
    pub data_trees: Vec<TreeIr<'s>>,
}

impl<'s> SchemaIr<'s> {
    /// Resolves a schema that passed [`crate::check`].
    pub fn new(schema: &'s Schema) -> Self {
        let protocol = &schema.protocol;
        let errors: Vec<ErrorIr> = schema.errors.iter().map(|(name, error)| ErrorIr::new(name, error)).collect();
        let objects: BTreeMap<&str, ObjectIr> =
            schema.objects.keys().map(|name| (name.as_str(), ObjectIr::new(schema, name))).collect();
        let services = schema.services.iter().map(|(name, service)| ServiceIr::new(name, service, &errors)).collect();
        let mut ir = SchemaIr {
            protocol: ProtocolIr {
                name: &protocol.name,
                description: &protocol.description,
                version: protocol.version,
                history: &protocol.history,
            },
            types: schema.types.iter().map(|(name, named)| (name.as_str(), NamedTypeIr::new(name, named))).collect(),
            unsupported_version: errors.iter().find(|error| error.name == UNSUPPORTED_VERSION).cloned(),
            objects,
            polymorphic: BTreeMap::new(),
            errors,
            services,
            data_trees: schema.data_trees.iter().map(|(name, tree)| TreeIr::new(schema, name, tree)).collect(),
        };
        ir.polymorphic = objects::polymorphic_sets(schema, ir.polymorphic_bases());
        ir
    }

    /// Objects sent in the versioned envelope.
    pub fn versioned_objects(&self) -> impl Iterator<Item = &ObjectIr<'s>> {
        self.objects.values().filter(|o| o.wire == WireForm::VersionedObject)
    }

    /// The bases that some current field, param, result, error datum or event param holds polymorphically,
    /// in order of first use.
    fn polymorphic_bases(&self) -> Vec<&'s str> {
        let fields = self.objects.values().flat_map(|object| object.current_fields()).map(|field| field.schema);
        let methods = self.services.iter().flat_map(|service| &service.methods);
        let method_types = methods.flat_map(|method| {
            method.params.iter().map(|param| param.schema).chain(method.result.as_ref().map(|result| result.schema))
        });
        let error_data = self.errors.iter().filter_map(|error| error.data.as_ref().map(|data| data.schema));
        let event_params = self.services.iter().flat_map(|service| &service.events).flat_map(|event| &event.params);
        let mut bases = Vec::new();
        for expr in fields.chain(method_types).chain(error_data).chain(event_params.map(|param| param.schema)) {
            types::collect_polymorphic(expr, &mut bases);
        }
        bases
    }
}
