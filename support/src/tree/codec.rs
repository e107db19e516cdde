//! Encoding any object into its data tree's leaves and decoding them back,
//! driven only by a generated [`DataTree`] descriptor.
//!
//! Both directions go through the object's plain JSON form (`WireValue`):
//! encoding walks the descriptor over `to_wire()`, decoding builds that JSON
//! from the leaves (checking every leaf's type and constraints where it
//! sits, so errors name the Xenstore path) and hands it to `from_wire()`,
//! which applies defaults and the schema's own checks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{
    error::quote_value,
    layout::{DataTree, FieldKind, Leaf, Node, Scalar},
    mangle::mangle_key,
    TreeError,
};
use crate::wire::{check_constraints, WireError, WirePath, WireValue};

/// Joins a base path and a relative one with `/` (either may be empty).
pub fn join(base: &str, relative: &str) -> String {
    match (base.is_empty(), relative.is_empty()) {
        (true, _) => relative.to_string(),
        (_, true) => base.to_string(),
        _ => format!("{base}/{relative}"),
    }
}

/// The leaves of `value` laid out by `tree`: path (relative to the domain's
/// home) to value, the layout version at the tree's version key.
///
/// A list element whose key mangles to the segment of an earlier element
/// (two NICs with one MAC, as a VLAN interface and its parent have) is left
/// out with a warning: the first in list order keeps the entry, so the
/// tree never mixes two elements' leaves.
pub fn encode<T: WireValue>(tree: &DataTree, value: &T) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Value::Object(data) = value.to_wire() {
        encode_node(&tree.node, &data, tree.root, &mut out);
    }
    out.insert(join(tree.root, tree.version_key), tree.layout_version.to_string());
    out
}

fn encode_node(node: &Node, data: &Map<String, Value>, base: &str, out: &mut BTreeMap<String, String>) {
    for field in node.fields {
        let Some(value) = data.get(field.name).filter(|value| !value.is_null()) else { continue };
        let path = join(base, &field.path.join("/"));
        match &field.kind {
            FieldKind::Leaf(leaf) => {
                if let Some(text) = leaf_text(leaf.scalar, value) {
                    out.insert(path, text);
                }
            }
            FieldKind::Object(child) => {
                if let Value::Object(child_data) = value {
                    encode_node(child, child_data, &path, out);
                }
            }
            FieldKind::List(list) => {
                let mut seen = BTreeSet::new();
                for element in value.as_array().into_iter().flatten() {
                    let Value::Object(element) = element else { continue };
                    let Some(key) = element.get(list.key).and_then(Value::as_str) else { continue };
                    let segment = mangle_key(list.key_format, key);
                    if !seen.insert(segment.clone()) {
                        tracing::warn!(
                            list = %path, key = %key,
                            "two {} entries name the same entry `{segment}`; the later one is left out",
                            list.node.object
                        );
                        continue;
                    }
                    encode_node(list.node, element, &join(&path, &segment), out);
                }
            }
        }
    }
}

/// The text form of a leaf value.
fn leaf_text(scalar: Scalar, value: &Value) -> Option<String> {
    match (scalar, value) {
        (Scalar::String, Value::String(text)) => Some(text.clone()),
        (Scalar::Integer | Scalar::Number, Value::Number(number)) => Some(number.to_string()),
        (Scalar::Boolean, Value::Bool(flag)) => Some(if *flag { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

/// The entries strictly below `base`, as (path relative to `base`, value).
pub fn subtree<'a>(entries: &'a BTreeMap<String, String>, base: &str) -> impl Iterator<Item = (&'a str, &'a str)> {
    let prefix = if base.is_empty() { String::new() } else { format!("{base}/") };
    let length = prefix.len();
    entries.range(prefix.clone()..).take_while(move |(path, _)| path.starts_with(&prefix)).filter_map(
        move |(path, value)| {
            let relative = &path[length..];
            (!relative.is_empty()).then_some((relative, value.as_str()))
        },
    )
}

/// Whether `path` exists as a node or has nodes below it.
pub fn exists(entries: &BTreeMap<String, String>, path: &str) -> bool {
    entries.contains_key(path) || subtree(entries, path).next().is_some()
}

/// The names of the nodes directly below `base`.
pub fn children<'a>(entries: &'a BTreeMap<String, String>, base: &str) -> BTreeSet<&'a str> {
    subtree(entries, base).map(|(relative, _)| relative.split('/').next().unwrap_or(relative)).collect()
}

/// Reads `tree` back from `entries` (as [`encode`] writes them, plus any
/// intermediate directory nodes), checking the layout version first and
/// every value against the schema.
pub fn decode<T: WireValue>(tree: &DataTree, entries: &BTreeMap<String, String>) -> Result<T, TreeError> {
    if !exists(entries, tree.root) {
        return Err(TreeError::NoTree { root: tree.root.to_string() });
    }
    check_version(tree, entries)?;
    let data = decode_node(&tree.node, entries, tree.root, Some(tree.version_key))?;
    T::from_wire(&Value::Object(data), &WirePath::root())
        .map_err(|error| TreeError::Invalid { path: tree.root.to_string(), why: error.to_string() })
}

fn check_version(tree: &DataTree, entries: &BTreeMap<String, String>) -> Result<(), TreeError> {
    let path = join(tree.root, tree.version_key);
    let text = entries.get(&path).ok_or_else(|| TreeError::MissingVersion { path: path.clone() })?;
    let found = text.parse::<super::LayoutVersion>().map_err(|why| TreeError::BadVersion {
        path: path.clone(),
        value: quote_value(text),
        why: why.to_string(),
    })?;
    if found.major != tree.layout_version.major {
        return Err(TreeError::UnsupportedLayout { path, found: found.to_string(), reads: tree.layout_version.major });
    }
    Ok(())
}

/// Reads one object below `base`. `version_key` (at the tree root only) is
/// claimed even when no field maps it.
fn decode_node(
    node: &Node,
    entries: &BTreeMap<String, String>,
    base: &str,
    version_key: Option<&str>,
) -> Result<Map<String, Value>, TreeError> {
    let mut data = Map::new();
    for field in node.fields {
        let path = join(base, &field.path.join("/"));
        let missing =
            || TreeError::Missing { path: path.clone(), why: format!("{}.{} is required", node.object, field.name) };
        match &field.kind {
            FieldKind::Leaf(leaf) => match entries.get(&path) {
                Some(text) => {
                    data.insert(field.name.to_string(), leaf_value(leaf, text, &path)?);
                }
                None if field.required => return Err(missing()),
                None => {}
            },
            FieldKind::Object(child) => {
                if exists(entries, &path) {
                    data.insert(field.name.to_string(), Value::Object(decode_node(child, entries, &path, None)?));
                } else if field.required {
                    return Err(missing());
                }
            }
            FieldKind::List(list) => {
                if !exists(entries, &path) {
                    if field.required {
                        return Err(missing());
                    }
                    continue;
                }
                let mut elements = Vec::new();
                for segment in children(entries, &path) {
                    let entry = join(&path, segment);
                    let element = decode_node(list.node, entries, &entry, None)?;
                    let key = element.get(list.key).and_then(Value::as_str).unwrap_or_default();
                    let expected = mangle_key(list.key_format, key);
                    if expected != segment {
                        return Err(TreeError::KeyMismatch {
                            path: entry,
                            segment: segment.to_string(),
                            key: list.key.to_string(),
                            value: quote_value(key),
                            expected,
                        });
                    }
                    elements.push(Value::Object(element));
                }
                data.insert(field.name.to_string(), Value::Array(elements));
            }
        }
    }
    if !node.tolerate_unknown_keys {
        let version_key =
            |relative: &str| version_key.is_some_and(|key| key == relative || key.starts_with(&format!("{relative}/")));
        let unclaimed = |(relative, _): &(&str, &str)| !claimed(node, relative) && !version_key(relative);
        if let Some((relative, _)) = subtree(entries, base).find(unclaimed) {
            return Err(TreeError::UnknownKey { path: join(base, relative), object: node.object.to_string() });
        }
    }
    Ok(data)
}

/// Whether some field of `node` owns the node at `relative` (its own path,
/// a directory on the way to it, or, for objects and lists, anything below).
fn claimed(node: &Node, relative: &str) -> bool {
    let segments: Vec<&str> = relative.split('/').collect();
    node.fields.iter().any(|field| {
        let shared = segments.len().min(field.path.len());
        if segments[..shared] != field.path[..shared] {
            return false;
        }
        segments.len() <= field.path.len() || !matches!(field.kind, FieldKind::Leaf(_))
    })
}

/// A leaf's text read as its JSON type and checked against its constraints.
pub fn leaf_value(leaf: &Leaf, text: &str, path: &str) -> Result<Value, TreeError> {
    let bad = |why: String| TreeError::BadValue { path: path.to_string(), value: quote_value(text), why };
    let value = match leaf.scalar {
        Scalar::String => Value::String(text.to_string()),
        Scalar::Integer => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'))
                && text != "-0";
            match text.parse::<i64>() {
                Ok(number) if canonical => Value::from(number),
                _ => return Err(bad(format!("{} is not a decimal integer", quote_value(text)))),
            }
        }
        Scalar::Number => match serde_json::from_str::<serde_json::Number>(text) {
            Ok(number) => Value::Number(number),
            Err(_) => return Err(bad(format!("{} is not a number", quote_value(text)))),
        },
        Scalar::Boolean => match text {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            _ => return Err(bad(format!("{} is not a boolean, written 1 or 0", quote_value(text)))),
        },
    };
    check_constraints(&value, &leaf.constraints, &WirePath::root()).map_err(|error| match error {
        WireError::InvalidValue { why, .. } => bad(why),
        other => bad(other.to_string()),
    })?;
    Ok(value)
}
