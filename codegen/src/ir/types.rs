//! Types: the Rust shape of a type expression, and named types.

use crate::model::{JsonType, NamedType, TypeExpr, Version};

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

/// A type as the emitters need it: the schema's expression (for the published documents)
/// and its Rust type (for the code).
#[derive(Clone, Debug)]
pub struct TypeIr<'s> {
    /// The type expression, as the schema writes it.
    pub schema: &'s TypeExpr,
    /// Its Rust type.
    pub rust_type: RustType,
}

impl<'s> TypeIr<'s> {
    /// The type of `schema`.
    pub fn new(schema: &'s TypeExpr) -> Self {
        TypeIr { schema, rust_type: rust_type(schema) }
    }
}

/// A named type (`#/types/NAME`).
#[derive(Clone, Debug)]
pub struct NamedTypeIr<'s> {
    /// The type's name.
    pub name: &'s str,
    /// What values of this type mean.
    pub description: &'s str,
    /// The protocol version that introduced the type.
    pub since: Version,
    /// The protocol version from which the type is deprecated.
    pub deprecated: Option<Version>,
    /// For enums: readers keep values they do not know.
    pub open: bool,
    /// The shape of the values, as the schema writes it.
    pub schema: &'s TypeExpr,
    /// The Rust type of the values (what an alias names).
    pub rust_type: RustType,
}

impl<'s> NamedTypeIr<'s> {
    pub(super) fn new(name: &'s str, named: &'s NamedType) -> Self {
        NamedTypeIr {
            name,
            description: &named.description,
            since: named.since,
            deprecated: named.deprecated,
            open: named.open,
            schema: &named.schema,
            rust_type: rust_type(&named.schema),
        }
    }
}

/// The Rust type of a type expression.
pub(super) fn rust_type(expr: &TypeExpr) -> RustType {
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

/// Adds the polymorphic base `expr` holds (directly, in an array or in a map) to `out`, once.
pub(super) fn collect_polymorphic<'s>(expr: &'s TypeExpr, out: &mut Vec<&'s str>) {
    if let (Some(object), true) = (&expr.object, expr.subclasses) {
        if !out.contains(&object.as_str()) {
            out.push(object);
        }
    }
    if let Some(inner) = expr.items.as_deref().or(expr.additional_properties.as_deref()) {
        collect_polymorphic(inner, out);
    }
}
