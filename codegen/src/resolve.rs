//! Following names through a schema that may not have passed the checks: an object's bases,
//! the object a type holds, and how a data tree lays a type out.
//!
//! Shared by [`crate::check`], which reports what does not resolve, and [`crate::ir`], which
//! resolves a checked schema once for the emitters. Every walk is bounded, so a cycle the
//! checks report elsewhere cannot hang it.

use indexmap::IndexMap;

use crate::model::{JsonType, NamedType, Object, Schema, TypeExpr};

/// The object and its bases, the object first.
pub fn lineage<'s>(schema: &'s Schema, name: &'s str) -> Vec<(&'s str, &'s Object)> {
    let mut chain = Vec::new();
    let mut current = name;
    while let Some(object) = schema.objects.get(current) {
        if chain.iter().any(|(seen, _)| *seen == current) {
            break;
        }
        chain.push((current, object));
        match &object.extends {
            Some(extends) => current = &extends.object,
            None => break,
        }
    }
    chain
}

/// The object a type holds (directly, in an array or in a map), and whether it is polymorphic.
pub fn object_target<'a>(types: &'a IndexMap<String, NamedType>, expr: &'a TypeExpr) -> Option<(&'a str, bool)> {
    if let Some(object) = &expr.object {
        return Some((object, expr.subclasses));
    }
    if let Some(items) = expr.items.as_deref().or(expr.additional_properties.as_deref()) {
        return object_target(types, items);
    }
    let name = expr.reference.as_deref()?.strip_prefix("#/types/")?;
    object_target(types, &types.get(name)?.schema)
}

/// How a field's type is laid out in a data tree.
#[derive(Clone, Copy, Debug)]
pub enum TreeValueKind<'a> {
    /// One Xenstore value; `expr` is the type expression that holds its constraints ($ref resolved).
    Scalar {
        /// The JSON type of the value.
        json_type: JsonType,
        /// The resolved type expression.
        expr: &'a TypeExpr,
    },
    /// A subtree holding one object.
    Object(&'a str),
    /// One subtree per element, named by the element's key field.
    ObjectList(&'a str),
    /// Something a tree cannot hold, described for a diagnostic.
    Unsupported(&'static str),
}

/// Classifies a field type for data-tree layout, following `$ref`s.
pub fn tree_value_kind<'a>(types: &'a IndexMap<String, NamedType>, expr: &'a TypeExpr) -> TreeValueKind<'a> {
    let mut expr = expr;
    for _ in 0..=types.len() {
        let Some(name) = expr.reference.as_deref() else { break };
        match name.strip_prefix("#/types/").and_then(|name| types.get(name)) {
            Some(named) => expr = &named.schema,
            None => return TreeValueKind::Unsupported("an unresolved reference"),
        }
    }
    if let Some(object) = &expr.object {
        return if expr.subclasses {
            TreeValueKind::Unsupported("a polymorphic object")
        } else {
            TreeValueKind::Object(object)
        };
    }
    match expr.json_type {
        Some(JsonType::Array) => match expr.items.as_deref() {
            Some(TypeExpr { object: Some(object), subclasses: false, .. }) => TreeValueKind::ObjectList(object),
            _ => TreeValueKind::Unsupported("a list of values other than objects"),
        },
        Some(JsonType::Object) => TreeValueKind::Unsupported("a map"),
        Some(json_type) => TreeValueKind::Scalar { json_type, expr },
        None => TreeValueKind::Unsupported("an unresolved reference"),
    }
}
