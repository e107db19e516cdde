//! Data trees: layout history, plain relative paths that do not overlap, fields a tree can lay
//! out (scalars, objects, lists of objects keyed by a formatted field), every required field
//! mapped, and a version key that is a mapped string.

use indexmap::IndexMap;

use super::{names::is_field_name, Checker};
use crate::{
    diagnostic::pointer,
    model::{JsonType, TreePath},
    resolve::{lineage, tree_value_kind, TreeValueKind},
};

impl Checker<'_> {
    /// Every data tree: its name, object, history, root, version key and paths.
    pub(super) fn data_trees(&mut self) {
        for (name, tree) in &self.schema.data_trees {
            let at = pointer(&["data_trees", name]);
            if !is_field_name(name) {
                self.out.push(
                    &at,
                    format!("`{name}` is not a valid data tree name"),
                    "use lower_snake_case ASCII letters, digits and underscores, starting with a letter",
                );
            }
            if !self.schema.objects.contains_key(&tree.object) {
                self.out.push(
                    format!("{at}/object"),
                    format!("`{}` is not an object of the schema", tree.object),
                    "name an object defined under /objects",
                );
                continue;
            }
            let mut previous = None;
            for (index, entry) in tree.history.iter().enumerate() {
                let Some(version) = entry.version.layout_version() else { continue };
                if previous.is_some_and(|before| version <= before) {
                    self.out.push(
                        format!("{at}/history/{index}/version"),
                        format!("layout version {} does not come after the entry before it", entry.version.0),
                        "list layout versions oldest first, each once",
                    );
                }
                previous = Some(version);
            }
            if tree.history.last().map(|e| &e.version) != Some(&tree.layout_version) {
                self.out.push(
                    format!("{at}/layout_version"),
                    "the layout version must be the last history entry",
                    "add a history entry for it",
                );
            }
            for (key, path) in [("root", &tree.root), ("version_key", &tree.version_key)] {
                if !path.split('/').all(is_tree_segment) {
                    self.out.push(
                        format!("{at}/{key}"),
                        format!("`{path}` is not a relative Xenstore path of plain segments"),
                        "write segments of ASCII letters, digits, `_` and `-`, separated by `/`, without `..`",
                    );
                }
            }
            let mut leaves = Vec::new();
            let paths_at = vec!["data_trees".to_string(), name.clone(), "paths".to_string()];
            self.tree_node(&paths_at, &tree.object, &tree.paths, Some(""), &mut leaves);
            if !leaves.iter().any(|(path, json_type)| *path == tree.version_key && *json_type == JsonType::String) {
                self.out.push(
                    format!("{at}/version_key"),
                    format!("`{}` is not the path of a string field of the tree outside any list", tree.version_key),
                    "point version_key at the mapped field that holds the layout version",
                );
            }
        }
    }

    /// Checks the paths of one object's fields in a data tree. `prefix` is the
    /// path of the object from the tree root, unknown below a list entry.
    fn tree_node(
        &mut self,
        at: &[String],
        object_name: &str,
        paths: &IndexMap<String, TreePath>,
        prefix: Option<&str>,
        leaves: &mut Vec<(String, JsonType)>,
    ) {
        let lineage = lineage(self.schema, object_name);
        let field_of = |name: &str| lineage.iter().find_map(|(_, object)| object.fields.get(name));
        let here = |extra: &[&str]| {
            let mut segments: Vec<&str> = at.iter().map(String::as_str).collect();
            segments.extend_from_slice(extra);
            pointer(&segments)
        };
        let mut claimed: Vec<(&str, Vec<&str>)> = Vec::new();
        for (field_name, tree_path) in paths {
            let Some(field) = field_of(field_name) else {
                self.out.push(
                    here(&[field_name]),
                    format!("{object_name} has no field `{field_name}`"),
                    "map only the object's fields",
                );
                continue;
            };
            if field.removed.is_some() {
                self.out.push(
                    here(&[field_name]),
                    format!("{object_name}.{field_name} is removed, so the tree cannot hold it"),
                    "drop its path in a new layout version",
                );
            }
            let segments: Vec<&str> = tree_path.path.split('/').collect();
            let placeholder = segments.last() == Some(&"{key}");
            let fixed = &segments[..segments.len() - usize::from(placeholder)];
            if fixed.is_empty() || !fixed.iter().all(|s| is_tree_segment(s)) {
                self.out.push(
                    here(&[field_name, "path"]),
                    format!("`{}` is not a relative path of plain segments", tree_path.path),
                    "write segments of ASCII letters, digits, `_` and `-` separated by `/` (no `..`, no leading `/`); \
                     a list ends in one `/{key}`",
                );
            }
            for (other, other_fixed) in &claimed {
                let shorter = fixed.len().min(other_fixed.len());
                if fixed[..shorter] == other_fixed[..shorter] {
                    self.out.push(
                        here(&[field_name, "path"]),
                        format!("`{}` overlaps the path of `{other}`", tree_path.path),
                        "give every field its own subtree: no path may be a prefix of another",
                    );
                }
            }
            claimed.push((field_name, fixed.to_vec()));
            let full =
                prefix.map(|p| if p.is_empty() { tree_path.path.clone() } else { format!("{p}/{}", tree_path.path) });
            match tree_value_kind(&self.schema.types, &field.schema) {
                TreeValueKind::Scalar { json_type, .. } => {
                    if tree_path.key.is_some() || !tree_path.fields.is_empty() || placeholder {
                        self.out.push(
                            here(&[field_name]),
                            format!("{object_name}.{field_name} is a single value: it takes no `key`, `fields` or `{{key}}`"),
                            "give a scalar field only its `path`",
                        );
                    }
                    if let Some(full) = full {
                        leaves.push((full, json_type));
                    }
                }
                TreeValueKind::Object(target) => {
                    if tree_path.key.is_some() || placeholder {
                        self.out.push(
                            here(&[field_name]),
                            format!("{object_name}.{field_name} holds one object: it takes no `key` or `{{key}}`"),
                            "only list fields are keyed",
                        );
                    }
                    if tree_path.fields.is_empty() {
                        self.out.push(
                            here(&[field_name]),
                            format!("{object_name}.{field_name} holds a {target} but maps none of its fields"),
                            format!("map the fields of {target} under `fields`"),
                        );
                    }
                    let mut nested = at.to_vec();
                    nested.extend([field_name.clone(), "fields".to_string()]);
                    self.tree_node(&nested, target, &tree_path.fields, full.as_deref(), leaves);
                }
                TreeValueKind::ObjectList(target) => {
                    self.tree_list(here(&[field_name]), object_name, field_name, target, tree_path, placeholder);
                    let mut nested = at.to_vec();
                    nested.extend([field_name.clone(), "fields".to_string()]);
                    self.tree_node(&nested, target, &tree_path.fields, None, leaves);
                }
                TreeValueKind::Unsupported(why) => self.out.push(
                    here(&[field_name]),
                    format!("{object_name}.{field_name} is {why}, which a data tree cannot lay out"),
                    "lay out scalar fields, objects and lists of objects only",
                ),
            }
        }
        for (owner, object) in &lineage {
            for (field_name, field) in &object.fields {
                let needed = field.required && field.default.is_none() && !field.nullable && field.removed.is_none();
                if needed && !paths.contains_key(field_name) {
                    self.out.push(
                        here(&[]),
                        format!("{owner}.{field_name} is required but the tree gives it no path"),
                        "map it, or give the field a default",
                    );
                }
            }
        }
    }

    /// A list field's entries are named by a key field whose values make short, distinct path segments.
    fn tree_list(
        &mut self,
        at: String,
        object_name: &str,
        field_name: &str,
        target: &str,
        tree_path: &TreePath,
        placeholder: bool,
    ) {
        if !placeholder {
            self.out.push(
                format!("{at}/path"),
                format!("{object_name}.{field_name} is a list: its path must end in `/{{key}}`"),
                "name each entry by its key, as `items/{key}`",
            );
        }
        let Some(key) = &tree_path.key else {
            self.out.push(
                at,
                format!("{object_name}.{field_name} is a list but names no `key` field"),
                format!("set `key` to a field of {target} whose value names each entry (never an index)"),
            );
            return;
        };
        let key_field = lineage(self.schema, target).into_iter().find_map(|(_, object)| object.fields.get(key));
        let Some(key_field) = key_field else {
            self.out.push(
                format!("{at}/key"),
                format!("{target} has no field `{key}`"),
                format!("name a field of {target}"),
            );
            return;
        };
        let formatted = matches!(
            tree_value_kind(&self.schema.types, &key_field.schema),
            TreeValueKind::Scalar { json_type: JsonType::String, expr } if expr.format.is_some()
        );
        if !formatted || !key_field.required || key_field.nullable {
            self.out.push(
                format!("{at}/key"),
                format!("{target}.{key} cannot name entries: a key is a required string with a `format`"),
                "key entries by a formatted value (a MAC or IP address, a UUID); free text such as a name \
                 could collide after mangling or grow without bound, so it stays a value",
            );
        }
        if !tree_path.fields.contains_key(key) {
            self.out.push(
                format!("{at}/fields"),
                format!("the key field `{key}` has no path of its own"),
                "map the key field too: the path segment is mangled and cannot give the value back",
            );
        }
    }
}

/// A Xenstore path segment a tree may use: ASCII letters, digits, `_` and `-`.
fn is_tree_segment(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
