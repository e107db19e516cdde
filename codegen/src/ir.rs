//! The intermediate representation: the schema resolved for emitters.
//!
//! Inheritance is flattened (a subclass lists its base's fields first), every
//! field has its Rust type, and polymorphic fields know the subclasses they
//! accept. All maps are ordered, so emitted output is deterministic.

use std::collections::BTreeMap;

use crate::{
    model::{Field, JsonType, NamedType, Object, Schema, TypeExpr, WireForm},
    resolve::lineage,
};

/// The Rust shape of a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RustType {
    /// `String`.
    String,
    /// `i64`.
    Integer,
    /// `f64`.
    Number,
    /// `bool`.
    Boolean,
    /// A generated named type or object, by schema name.
    Named(String),
    /// The generated enum of a polymorphic base, by the base's name.
    AnyOf(String),
    /// `Vec<T>`.
    List(Box<RustType>),
    /// `BTreeMap<String, T>`.
    Map(Box<RustType>),
    /// `Option<T>`.
    Optional(Box<RustType>),
}

/// A field as emitters see it.
#[derive(Clone, Debug)]
pub struct FieldIr<'s> {
    /// The object that declares it (itself or a base).
    pub owner: &'s str,
    /// The wire name.
    pub name: &'s str,
    /// The schema's definition.
    pub field: &'s Field,
    /// The type stored in the struct, optional wrappers included.
    pub rust_type: RustType,
    /// The type without optional wrappers.
    pub value_type: RustType,
}

/// An object as emitters see it.
#[derive(Clone, Debug)]
pub struct ObjectIr<'s> {
    /// The schema name.
    pub name: &'s str,
    /// The schema's definition.
    pub object: &'s Object,
    /// Every field, base fields first; fields removed at the current version are left out.
    pub fields: Vec<FieldIr<'s>>,
}

/// The resolved schema.
#[derive(Clone, Debug)]
pub struct SchemaIr<'s> {
    /// The schema itself.
    pub schema: &'s Schema,
    /// Named types by name.
    pub types: BTreeMap<&'s str, &'s NamedType>,
    /// Objects by name.
    pub objects: BTreeMap<&'s str, ObjectIr<'s>>,
    /// For each base used in a polymorphic field: every object that may stand
    /// for it (itself unless abstract, and every transitive subclass), sorted.
    pub polymorphic: BTreeMap<&'s str, Vec<&'s str>>,
}

impl<'s> SchemaIr<'s> {
    /// Resolves a schema that passed [`crate::check`].
    pub fn new(schema: &'s Schema) -> Self {
        let mut ir = SchemaIr {
            schema,
            types: schema.types.iter().map(|(name, named)| (name.as_str(), named)).collect(),
            objects: BTreeMap::new(),
            polymorphic: BTreeMap::new(),
        };
        for (name, object) in &schema.objects {
            let mut fields = Vec::new();
            for (owner, owner_object) in lineage(schema, name).into_iter().rev() {
                for (field_name, field) in &owner_object.fields {
                    if field.removed.is_some() {
                        continue;
                    }
                    let value_type = rust_type(&field.schema);
                    let mut rust_type = value_type.clone();
                    if field.nullable {
                        rust_type = RustType::Optional(Box::new(rust_type));
                    }
                    if !field.required {
                        rust_type = RustType::Optional(Box::new(rust_type));
                    }
                    fields.push(FieldIr { owner, name: field_name, field, rust_type, value_type });
                }
            }
            ir.objects.insert(name, ObjectIr { name, object, fields });
        }
        let mut bases = Vec::new();
        for object in ir.objects.values() {
            for field in &object.fields {
                collect_polymorphic(&field.field.schema, &mut bases);
            }
        }
        for service in schema.services.values() {
            for method in service.methods.values() {
                for param in method.params.values() {
                    collect_polymorphic(&param.schema, &mut bases);
                }
                if let Some(result) = &method.result {
                    collect_polymorphic(result, &mut bases);
                }
            }
        }
        for error in schema.errors.values() {
            if let Some(data) = &error.data {
                collect_polymorphic(data, &mut bases);
            }
        }
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
            ir.polymorphic.insert(base, members);
        }
        ir
    }

    /// Objects sent in the versioned envelope.
    pub fn versioned_objects(&self) -> impl Iterator<Item = &ObjectIr<'s>> {
        self.objects.values().filter(|o| o.object.wire == WireForm::VersionedObject)
    }
}

fn collect_polymorphic<'s>(expr: &'s TypeExpr, out: &mut Vec<&'s str>) {
    if let (Some(object), true) = (&expr.object, expr.subclasses) {
        if !out.contains(&object.as_str()) {
            out.push(object);
        }
    }
    if let Some(inner) = expr.items.as_deref().or(expr.additional_properties.as_deref()) {
        collect_polymorphic(inner, out);
    }
}

/// The Rust type of a type expression.
pub fn rust_type(expr: &TypeExpr) -> RustType {
    if let Some(name) = expr.reference.as_deref().and_then(|r| r.strip_prefix("#/types/")) {
        return RustType::Named(name.to_string());
    }
    if let Some(object) = &expr.object {
        return if expr.subclasses { RustType::AnyOf(object.clone()) } else { RustType::Named(object.clone()) };
    }
    match expr.json_type {
        Some(JsonType::String) | None => RustType::String,
        Some(JsonType::Integer) => RustType::Integer,
        Some(JsonType::Number) => RustType::Number,
        Some(JsonType::Boolean) => RustType::Boolean,
        Some(JsonType::Array) => {
            RustType::List(Box::new(rust_type(expr.items.as_deref().unwrap_or(&TypeExpr::default()))))
        }
        Some(JsonType::Object) => {
            RustType::Map(Box::new(rust_type(expr.additional_properties.as_deref().unwrap_or(&TypeExpr::default()))))
        }
    }
}

/// Whether a type expression constrains values beyond their JSON type.
pub fn has_constraints(expr: &TypeExpr) -> bool {
    expr.format.is_some()
        || expr.pattern.is_some()
        || expr.enum_values.is_some()
        || expr.min_length.is_some()
        || expr.max_length.is_some()
        || expr.minimum.is_some()
        || expr.maximum.is_some()
        || expr.min_items.is_some()
        || expr.max_items.is_some()
}
