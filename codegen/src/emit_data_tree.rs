//! The data-tree emitter: one static `DataTree` descriptor per entry of the
//! schema's `data_trees`, interpreted by the generated crate's hand-written
//! `tree` module (encode to Xenstore leaves, decode and validate them back).
//!
//! Like object conversion, nothing per tree is written by hand: the
//! descriptor says where each field lives, which field names list entries
//! (and the format its values are canonicalized by before mangling), what
//! type and constraints every leaf has, which fields must be present and
//! whether each object tolerates keys it does not know.

use indexmap::IndexMap;
use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::{
    ir::SchemaIr,
    model::{DataTree, Field, JsonType, SemVer, TreePath},
    naming::tree_ident,
    resolve::{lineage, tree_value_kind, TreeValueKind},
    rust_syntax::{constraints_tokens, format_file, GENERATED_HEADER},
};

/// Options for the data-tree emitter.
#[derive(Clone, Debug)]
pub struct TreeOptions {
    /// The path of the tree support module, such as `crate::tree`.
    pub tree_path: String,
    /// The path of the wire support module (for `Constraints`), such as `crate::wire`.
    pub wire_path: String,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions { tree_path: "crate::tree".into(), wire_path: "crate::wire".into() }
    }
}

/// Emits the module of data-tree descriptors for a schema that passed the checks.
pub fn emit_data_trees(ir: &SchemaIr, options: &TreeOptions) -> String {
    let tree: syn::Path = syn::parse_str(&options.tree_path).expect("the tree path is a Rust path");
    let wire: syn::Path = syn::parse_str(&options.wire_path).expect("the wire path is a Rust path");
    let mut items = Vec::new();
    let mut idents = Vec::new();
    for (name, data_tree) in &ir.schema.data_trees {
        let ident = tree_ident(name);
        items.push(emit_tree(ir, name, data_tree, &ident, &tree, &wire));
        idents.push(ident);
    }
    let file = quote! {
        #![doc = " Data-tree layouts from the schema's `data_trees`: where each field of an object lives in Xenstore."]
        #![doc = ""]
        #![doc = " Generated: interpreted by the hand-written `tree` module, never edited."]
        #(#items)*
        /// Every data tree of the schema, in schema order.
        pub static DATA_TREES: &[&#tree::DataTree] = &[#(&#idents),*];
    };
    format!("{GENERATED_HEADER}\n{}", format_file(file))
}

fn semver_tokens(version: &SemVer, tree: &syn::Path) -> TokenStream {
    let (major, minor, patch) = version.parts().expect("the checks accepted the layout version");
    let (major, minor, patch) =
        (Literal::u64_unsuffixed(major), Literal::u64_unsuffixed(minor), Literal::u64_unsuffixed(patch));
    quote! { #tree::LayoutVersion::new(#major, #minor, #patch) }
}

fn emit_tree(
    ir: &SchemaIr,
    name: &str,
    data_tree: &DataTree,
    ident: &syn::Ident,
    tree: &syn::Path,
    wire: &syn::Path,
) -> TokenStream {
    let mut text = format!(
        "{}\n\nObject: {}. Root: `{}`. Layout version key: `{}`.\n\nLayout history:",
        data_tree.description, data_tree.object, data_tree.root, data_tree.version_key
    );
    for entry in &data_tree.history {
        text.push_str(&format!("\n- {}: {}", entry.version.0, entry.note));
    }
    let doc = text.lines().map(|line| format!(" {line}")).collect::<Vec<_>>();
    let history = data_tree.history.iter().map(|entry| {
        let version = semver_tokens(&entry.version, tree);
        let note = &entry.note;
        quote! { #tree::LayoutChange { version: #version, note: #note } }
    });
    let layout_version = semver_tokens(&data_tree.layout_version, tree);
    let node = node_tokens(ir, &data_tree.object, &data_tree.paths, tree, wire);
    let (description, object, root, version_key) =
        (&data_tree.description, &data_tree.object, &data_tree.root, &data_tree.version_key);
    quote! {
        #(#[doc = #doc])*
        pub static #ident: #tree::DataTree = #tree::DataTree {
            name: #name,
            description: #description,
            object: #object,
            root: #root,
            version_key: #version_key,
            layout_version: #layout_version,
            history: &[#(#history),*],
            node: #node,
        };
    }
}

fn field_of<'s>(ir: &SchemaIr<'s>, object: &str, field: &str) -> &'s Field {
    let schema = ir.schema;
    let object = schema.objects.get_key_value(object).map(|(name, _)| name.as_str()).expect("checked object");
    lineage(schema, object).into_iter().find_map(|(_, o)| o.fields.get(field)).expect("the checks found the field")
}

fn node_tokens(
    ir: &SchemaIr,
    object: &str,
    paths: &IndexMap<String, TreePath>,
    tree: &syn::Path,
    wire: &syn::Path,
) -> TokenStream {
    let tolerate = ir.schema.objects[object].tolerate_unknown_fields;
    let fields = paths.iter().map(|(field_name, tree_path)| {
        let field = field_of(ir, object, field_name);
        let required = field.required && field.default.is_none() && !field.nullable;
        let segments: Vec<&str> = tree_path.path.split('/').filter(|segment| *segment != "{key}").collect();
        let kind = match tree_value_kind(&ir.schema.types, &field.schema) {
            TreeValueKind::Scalar { json_type, expr } => {
                let scalar = match json_type {
                    JsonType::String => quote! { String },
                    JsonType::Integer => quote! { Integer },
                    JsonType::Number => quote! { Number },
                    JsonType::Boolean => quote! { Boolean },
                    JsonType::Array | JsonType::Object => unreachable!("arrays and maps are not scalars"),
                };
                let constraints = constraints_tokens(expr, wire);
                quote! { #tree::FieldKind::Leaf(#tree::Leaf { scalar: #tree::Scalar::#scalar, constraints: #constraints }) }
            }
            TreeValueKind::Object(target) => {
                let node = node_tokens(ir, target, &tree_path.fields, tree, wire);
                quote! { #tree::FieldKind::Object(&#node) }
            }
            TreeValueKind::ObjectList(target) => {
                let key = tree_path.key.as_deref().expect("the checks require a list key");
                let key_format = match tree_value_kind(&ir.schema.types, &field_of(ir, target, key).schema) {
                    TreeValueKind::Scalar { expr, .. } => expr.format.as_deref(),
                    _ => None,
                };
                let key_format = match key_format {
                    Some(format) => quote! { Some(#format) },
                    None => quote! { None },
                };
                let node = node_tokens(ir, target, &tree_path.fields, tree, wire);
                quote! { #tree::FieldKind::List(#tree::List { key: #key, key_format: #key_format, node: &#node }) }
            }
            TreeValueKind::Unsupported(why) => unreachable!("the checks refuse {why}"),
        };
        quote! {
            #tree::TreeField { name: #field_name, path: &[#(#segments),*], required: #required, kind: #kind }
        }
    });
    quote! {
        #tree::Node { object: #object, tolerate_unknown_keys: #tolerate, fields: &[#(#fields),*] }
    }
}
