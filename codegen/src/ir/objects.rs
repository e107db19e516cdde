//! Objects: inheritance flattened, every field with its Rust type and, when it holds objects,
//! the object and the child version each version carries; polymorphic sets.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::Value;

use super::types::{rust_type, RustType};
use crate::{
    model::{Deprecation, Extends, Field, HistoryEntry, Schema, TypeExpr, Version, WireForm},
    resolve::{lineage, object_target},
};

/// An object as emitters see it.
#[derive(Clone, Debug)]
pub struct ObjectIr<'s> {
    /// The schema name.
    pub name: &'s str,
    /// What the object represents.
    pub description: &'s str,
    /// The namespace written to `versioned_object.namespace` (empty for plain objects).
    pub namespace: &'s str,
    /// How the object travels.
    pub wire: WireForm,
    /// The current version.
    pub version: Version,
    /// One note per version, oldest first.
    pub history: &'s [HistoryEntry],
    /// Why and since when the object is deprecated, if it is.
    pub deprecated: Option<&'s Deprecation>,
    /// The base object and which of its versions each version carries.
    pub extends: Option<&'s Extends>,
    /// Readers of the plain wire form skip fields they do not know.
    pub tolerate_unknown_fields: bool,
    /// Never sent itself, only as one of its subclasses.
    pub is_abstract: bool,
    /// Every field of every version, the bases' first (in declaration order), removed ones
    /// included; [`ObjectIr::current_fields`] are the struct's, [`ObjectIr::declared_fields`]
    /// the object's own.
    pub fields: Vec<FieldIr<'s>>,
}

impl<'s> ObjectIr<'s> {
    pub(super) fn new(schema: &'s Schema, name: &'s str) -> Self {
        let object = &schema.objects[name];
        let mut fields = Vec::new();
        for (owner, owner_object) in lineage(schema, name).into_iter().rev() {
            let owner_first = owner_object.history.first().map(|entry| entry.version);
            for (index, (field_name, field)) in owner_object.fields.iter().enumerate() {
                fields.push(FieldIr::new(schema, owner, owner_first, index, field_name, field));
            }
        }
        ObjectIr {
            name,
            description: &object.description,
            namespace: object.namespace.as_deref().unwrap_or_default(),
            wire: object.wire,
            version: object.version,
            history: &object.history,
            deprecated: object.deprecated.as_ref(),
            extends: object.extends.as_ref(),
            tolerate_unknown_fields: object.tolerate_unknown_fields,
            is_abstract: object.is_abstract,
            fields,
        }
    }

    /// The fields of the current version: the struct's fields, base fields first.
    pub fn current_fields(&self) -> impl Iterator<Item = &FieldIr<'s>> {
        self.fields.iter().filter(|field| field.removed.is_none())
    }

    /// The fields this object declares itself (not inherited), removed ones included, in
    /// declaration order: what its descriptor lists.
    pub fn declared_fields(&self) -> impl Iterator<Item = &FieldIr<'s>> {
        self.fields.iter().filter(|field| field.owner == self.name)
    }
}

/// A field as emitters see it.
#[derive(Clone, Debug)]
pub struct FieldIr<'s> {
    /// The object that declares it (itself or a base).
    pub owner: &'s str,
    /// Its position among the owner's declared fields (in the owner's descriptor).
    pub index: usize,
    /// The schema name: the Rust field's name.
    pub name: &'s str,
    /// The name on the wire: the schema's `wire_name`, or the schema name.
    pub wire_name: &'s str,
    /// What the field holds.
    pub description: &'s str,
    /// The type of the values, as the schema writes it.
    pub schema: &'s TypeExpr,
    /// The owner's version that added the field.
    pub since: Version,
    /// The owner's version from which the field is deprecated.
    pub deprecated: Option<Version>,
    /// The owner's version that dropped the field.
    pub removed: Option<Version>,
    /// `null` is a valid value.
    pub nullable: bool,
    /// The field must be present.
    pub required: bool,
    /// The value readers use when the field is absent.
    pub default: Option<&'s Value>,
    /// Every version of the owner carries the field: added in the first, never removed.
    pub in_every_version: bool,
    /// For a field holding objects (directly, in a list or in a map): which.
    pub child: Option<ChildIr<'s>>,
    /// The type stored in the struct, optional wrappers included.
    pub rust_type: RustType,
    /// The type without optional wrappers.
    pub value_type: RustType,
}

impl<'s> FieldIr<'s> {
    fn new(
        schema: &'s Schema,
        owner: &'s str,
        owner_first: Option<Version>,
        index: usize,
        name: &'s str,
        field: &'s Field,
    ) -> Self {
        let value_type = rust_type(&field.schema);
        let mut rust_type = value_type.clone();
        if field.nullable {
            rust_type = RustType::Optional(Box::new(rust_type));
        }
        if !field.required {
            rust_type = RustType::Optional(Box::new(rust_type));
        }
        let child = object_target(&schema.types, &field.schema).map(|(object, polymorphic)| ChildIr {
            object,
            polymorphic,
            versions: &field.child_versions,
        });
        FieldIr {
            owner,
            index,
            name,
            wire_name: field.wire_name.as_deref().unwrap_or(name),
            description: &field.description,
            schema: &field.schema,
            since: field.since,
            deprecated: field.deprecated,
            removed: field.removed,
            nullable: field.nullable,
            required: field.required,
            default: field.default.as_ref(),
            in_every_version: Some(field.since) == owner_first && field.removed.is_none(),
            child,
            rust_type,
            value_type,
        }
    }
}

/// The objects a field holds.
#[derive(Clone, Debug)]
pub struct ChildIr<'s> {
    /// The object (or polymorphic base).
    pub object: &'s str,
    /// Any subclass of the object may stand for it.
    pub polymorphic: bool,
    /// From each listed version of the owner on, the version of the child it carries.
    pub versions: &'s IndexMap<Version, Version>,
}

/// For each base in `bases`: every object that may stand for it (itself unless abstract, and
/// every transitive subclass), sorted.
pub(super) fn polymorphic_sets<'s>(schema: &'s Schema, bases: Vec<&'s str>) -> BTreeMap<&'s str, Vec<&'s str>> {
    let mut sets = BTreeMap::new();
    for base in bases {
        let mut members: Vec<&str> = schema
            .objects
            .iter()
            .filter(|(name, object)| {
                !object.is_abstract && lineage(schema, name).iter().any(|(owner, _)| *owner == base)
            })
            .map(|(name, _)| name.as_str())
            .collect();
        members.sort();
        sets.insert(base, members);
    }
    sets
}
