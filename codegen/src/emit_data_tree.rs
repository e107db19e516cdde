//! The data-tree emitter: one static `DataTree` descriptor per entry of the
//! schema's `data_trees`, interpreted by the generated crate's hand-written
//! `tree` module (encode to Xenstore leaves, decode and validate them back).
//!
//! Like object conversion, nothing per tree is written by hand: the
//! descriptor says where each field lives, which field names list entries
//! (and the format its values are canonicalized by before mangling), what
//! type and constraints every leaf has, which fields must be present and
//! whether each object tolerates keys it does not know.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::{
    ir::{LayoutVersion, NodeIr, Scalar, SchemaIr, TreeFieldKind, TreeIr},
    naming::tree_ident,
    rust_syntax::{constraints_tokens, format_file, SupportPath, GENERATED_HEADER},
};

/// Options for the data-tree emitter.
#[derive(Clone, Debug, Default)]
pub struct TreeOptions {
    /// Where the descriptors find the support crate (its `tree` and, for `Constraints`, `wire`).
    pub support: SupportPath,
}

/// Emits the module of data-tree descriptors for a schema that passed the checks.
pub fn emit_data_trees(ir: &SchemaIr, options: &TreeOptions) -> String {
    let tree: syn::Path = syn::parse_str(&options.support.module("tree")).expect("the tree path is a Rust path");
    let wire: syn::Path = syn::parse_str(&options.support.module("wire")).expect("the wire path is a Rust path");
    let items = ir.data_trees.iter().map(|data_tree| emit_tree(data_tree, &tree, &wire));
    let idents = ir.data_trees.iter().map(|data_tree| tree_ident(data_tree.name));
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

fn layout_version_tokens(version: LayoutVersion, tree: &syn::Path) -> TokenStream {
    let (major, minor, patch) = (
        Literal::u64_unsuffixed(version.major),
        Literal::u64_unsuffixed(version.minor),
        Literal::u64_unsuffixed(version.patch),
    );
    quote! { #tree::LayoutVersion::new(#major, #minor, #patch) }
}

fn emit_tree(data_tree: &TreeIr, tree: &syn::Path, wire: &syn::Path) -> TokenStream {
    let mut text = format!(
        "{}\n\nObject: {}. Root: `{}`. Layout version key: `{}`.\n\nLayout history:",
        data_tree.description, data_tree.object, data_tree.root, data_tree.version_key
    );
    for entry in &data_tree.history {
        text.push_str(&format!("\n- {}: {}", entry.version, entry.note));
    }
    let doc = text.lines().map(|line| format!(" {line}")).collect::<Vec<_>>();
    let history = data_tree.history.iter().map(|entry| {
        let version = layout_version_tokens(entry.version, tree);
        let note = entry.note;
        quote! { #tree::LayoutChange { version: #version, note: #note } }
    });
    let layout_version = layout_version_tokens(data_tree.layout_version, tree);
    let node = node_tokens(&data_tree.node, tree, wire);
    let ident = tree_ident(data_tree.name);
    let TreeIr { name, description, object, root, version_key, .. } = data_tree;
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

fn node_tokens(node: &NodeIr, tree: &syn::Path, wire: &syn::Path) -> TokenStream {
    let fields = node.fields.iter().map(|field| {
        let kind = match &field.kind {
            TreeFieldKind::Leaf(leaf) => {
                let scalar = match leaf.scalar {
                    Scalar::String => quote! { String },
                    Scalar::Integer => quote! { Integer },
                    Scalar::Number => quote! { Number },
                    Scalar::Boolean => quote! { Boolean },
                };
                let constraints = constraints_tokens(leaf.constraints, wire);
                quote! { #tree::FieldKind::Leaf(#tree::Leaf { scalar: #tree::Scalar::#scalar, constraints: #constraints }) }
            }
            TreeFieldKind::Object(object) => {
                let node = node_tokens(object, tree, wire);
                quote! { #tree::FieldKind::Object(&#node) }
            }
            TreeFieldKind::List { key, key_format, node } => {
                let key_format = match key_format {
                    Some(format) => quote! { Some(#format) },
                    None => quote! { None },
                };
                let node = node_tokens(node, tree, wire);
                quote! { #tree::FieldKind::List(#tree::List { key: #key, key_format: #key_format, node: &#node }) }
            }
        };
        let (name, segments, required) = (field.name, &field.path, field.required);
        quote! {
            #tree::TreeField { name: #name, path: &[#(#segments),*], required: #required, kind: #kind }
        }
    });
    let (object, tolerate) = (node.object, node.tolerate_unknown_keys);
    quote! {
        #tree::Node { object: #object, tolerate_unknown_keys: #tolerate, fields: &[#(#fields),*] }
    }
}
