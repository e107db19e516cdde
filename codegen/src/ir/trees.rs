//! Data trees: where each field of an object lives in Xenstore, resolved down to the leaves
//! (their scalar type and constraints), the list keys (and the format their values are
//! canonicalized by) and the fields a reader must find.

use indexmap::IndexMap;

use crate::{
    model::{DataTree, Field, JsonType, Schema, SemVer, TreePath, TypeExpr},
    resolve::{lineage, tree_value_kind, TreeValueKind},
};

/// A data tree: an object laid out as Xenstore paths under a root.
#[derive(Clone, Debug)]
pub struct TreeIr<'s> {
    /// The tree's name in the schema.
    pub name: &'s str,
    /// What the tree publishes and who reads it.
    pub description: &'s str,
    /// The object whose fields the tree holds.
    pub object: &'s str,
    /// The root path, relative to the domain's home path.
    pub root: &'s str,
    /// The key, relative to the root, that holds the layout version.
    pub version_key: &'s str,
    /// The current layout version.
    pub layout_version: LayoutVersion,
    /// One note per layout version, oldest first.
    pub history: Vec<LayoutChange<'s>>,
    /// Where the object's fields live.
    pub node: NodeIr<'s>,
}

impl<'s> TreeIr<'s> {
    pub(super) fn new(schema: &'s Schema, name: &'s str, tree: &'s DataTree) -> Self {
        TreeIr {
            name,
            description: &tree.description,
            object: &tree.object,
            root: &tree.root,
            version_key: &tree.version_key,
            layout_version: layout_version(&tree.layout_version),
            history: tree
                .history
                .iter()
                .map(|entry| LayoutChange { version: layout_version(&entry.version), note: &entry.note })
                .collect(),
            node: NodeIr::new(schema, &tree.object, &tree.paths),
        }
    }
}

/// A layout version, `MAJOR.MINOR.PATCH`: the support crate's, which the generated
/// descriptors are written in.
pub use vproto_support::tree::LayoutVersion;

/// A version the checks accepted.
fn layout_version(version: &SemVer) -> LayoutVersion {
    version.layout_version().expect("the checks accepted the layout version")
}

/// One layout version and what it changed.
#[derive(Clone, Debug)]
pub struct LayoutChange<'s> {
    /// The version.
    pub version: LayoutVersion,
    /// What changed.
    pub note: &'s str,
}

/// Where the fields of one object (of each entry, for a list) live.
#[derive(Clone, Debug)]
pub struct NodeIr<'s> {
    /// The object.
    pub object: &'s str,
    /// Readers skip keys they do not know (the object tolerates unknown fields).
    pub tolerate_unknown_keys: bool,
    /// The mapped fields, in the schema's order.
    pub fields: Vec<TreeFieldIr<'s>>,
}

impl<'s> NodeIr<'s> {
    fn new(schema: &'s Schema, object: &'s str, paths: &'s IndexMap<String, TreePath>) -> Self {
        let fields = paths
            .iter()
            .map(|(field_name, tree_path)| {
                let field = field_of(schema, object, field_name);
                let kind = match tree_value_kind(&schema.types, &field.schema) {
                    TreeValueKind::Scalar { json_type, expr } => {
                        TreeFieldKind::Leaf(LeafIr { scalar: Scalar::of(json_type), constraints: expr })
                    }
                    TreeValueKind::Object(target) => {
                        TreeFieldKind::Object(NodeIr::new(schema, target, &tree_path.fields))
                    }
                    TreeValueKind::ObjectList(target) => {
                        let key_name = tree_path.key.as_deref().expect("the checks require a list key");
                        let key_field = field_of(schema, target, key_name);
                        let key_format = match tree_value_kind(&schema.types, &key_field.schema) {
                            TreeValueKind::Scalar { expr, .. } => expr.format.as_deref(),
                            _ => None,
                        };
                        let key = key_field.wire_name.as_deref().unwrap_or(key_name);
                        TreeFieldKind::List { key, key_format, node: NodeIr::new(schema, target, &tree_path.fields) }
                    }
                    TreeValueKind::Unsupported(why) => unreachable!("the checks refuse {why}"),
                };
                TreeFieldIr {
                    name: field.wire_name.as_deref().unwrap_or(field_name),
                    path: tree_path.path.split('/').filter(|segment| *segment != "{key}").collect(),
                    required: field.required && field.default.is_none() && !field.nullable,
                    kind,
                }
            })
            .collect();
        NodeIr { object, tolerate_unknown_keys: schema.objects[object].tolerate_unknown_fields, fields }
    }
}

/// The field `field` of `object` or of one of its bases.
fn field_of<'s>(schema: &'s Schema, object: &'s str, field: &str) -> &'s Field {
    lineage(schema, object).into_iter().find_map(|(_, o)| o.fields.get(field)).expect("the checks found the field")
}

/// One mapped field.
#[derive(Clone, Debug)]
pub struct TreeFieldIr<'s> {
    /// The field's wire name (its member in the object's JSON).
    pub name: &'s str,
    /// The path's segments relative to the enclosing node, without a list's `{key}`.
    pub path: Vec<&'s str>,
    /// A reader must find the field: it is required, not nullable and has no default.
    pub required: bool,
    /// How its value is laid out.
    pub kind: TreeFieldKind<'s>,
}

/// How a mapped field's value is laid out.
#[derive(Clone, Debug)]
pub enum TreeFieldKind<'s> {
    /// One Xenstore value.
    Leaf(LeafIr<'s>),
    /// A subtree holding one object.
    Object(NodeIr<'s>),
    /// One subtree per element, named by the element's key field.
    List {
        /// The element field whose value names each entry.
        key: &'s str,
        /// The format the key's values are canonicalized by before mangling.
        key_format: Option<&'s str>,
        /// Where each element's fields live, relative to its entry.
        node: NodeIr<'s>,
    },
}

/// One Xenstore value: its type and constraints.
#[derive(Clone, Debug)]
pub struct LeafIr<'s> {
    /// The value's type.
    pub scalar: Scalar,
    /// The type expression that holds its constraints (`$ref`s followed).
    pub constraints: &'s TypeExpr,
}

/// The type of a leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
}

impl Scalar {
    fn of(json_type: JsonType) -> Self {
        match json_type {
            JsonType::String => Scalar::String,
            JsonType::Integer => Scalar::Integer,
            JsonType::Number => Scalar::Number,
            JsonType::Boolean => Scalar::Boolean,
            JsonType::Array | JsonType::Object => unreachable!("arrays and maps are not scalars"),
        }
    }
}
