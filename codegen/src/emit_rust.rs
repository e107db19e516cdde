//! The Rust emitter: types, object descriptors and the conversion entry
//! point, written with `quote` and formatted with `prettyplease`.

use std::collections::HashMap;

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::{
    ir::{has_constraints, FieldIr, JsonType, NamedTypeIr, ObjectIr, SchemaIr},
    naming::{polymorphic_name, variant_name},
    rust_syntax::{constraints_text, constraints_tokens, doc, format_file, type_tokens, SupportPath, GENERATED_HEADER},
    PublishedDocuments,
};

mod objects;

/// Options for the Rust emitter.
#[derive(Clone, Debug)]
pub struct RustOptions {
    /// Where the generated code finds the support crate.
    pub support: SupportPath,
    /// How the module gets the published documents (`JSON_SCHEMA`, `OPENRPC`).
    pub documents: DocumentEmbedding,
}

impl Default for RustOptions {
    fn default() -> Self {
        RustOptions { support: SupportPath::default(), documents: DocumentEmbedding::Inline }
    }
}

/// How the generated module gets the published JSON Schema and OpenRPC documents.
#[derive(Clone, Debug)]
pub enum DocumentEmbedding {
    /// As string literals: the module stands alone (the default, for `build.rs` users).
    Inline,
    /// With `include_str!` of files the caller writes: paths as `include_str!` resolves them,
    /// relative to the generated file. Keeps megabytes of escaped JSON out of the Rust source.
    Include {
        /// The path of the JSON Schema file.
        json_schema: String,
        /// The path of the OpenRPC file.
        openrpc: String,
        /// The folder of the per-service OpenRPC files, `<folder>/<service>.json`.
        service_openrpc_dir: String,
    },
}

/// The Rust generated from a schema, by kind of item. Each part is the items alone, no
/// header: [`RustModules::joined`] is one self-contained module (what a `build.rs` includes),
/// [`RustModules::files`] one file per kind, each a module of a crate whose root re-exports
/// all of them (as `generated/src/lib.rs` does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RustModules {
    /// `PROTOCOL_NAME`, `PROTOCOL_VERSION` and the named value types.
    pub types: String,
    /// The objects, their descriptors, shared field checks, polymorphic enums and `REGISTRY`.
    pub objects: String,
    /// The published documents: `JSON_SCHEMA`, `OPENRPC`, `service_openrpc`.
    pub documents: String,
    /// Declared errors, REST bindings, and per service its trait, dispatcher and client.
    pub services: String,
    /// Per service with events, its `<Service>Event` enum.
    pub events: String,
}

impl RustModules {
    /// The kinds in order, with the file each is written to and what its module holds.
    const KINDS: [(&'static str, &'static str); 5] = [
        ("types.rs", "Protocol constants and named value types."),
        ("objects.rs", "Versioned and plain objects, their descriptors and the registry."),
        ("documents.rs", "The published JSON Schema and OpenRPC documents."),
        ("services.rs", "Declared errors, REST bindings, and each service's trait, dispatcher and client."),
        ("events.rs", "Each service's events: the enum its server publishes and its clients decode."),
    ];

    /// The names of the files [`RustModules::files`] gives, in its order.
    pub fn file_names() -> impl Iterator<Item = &'static str> {
        Self::KINDS.iter().map(|(file, _)| *file)
    }

    fn parts(&self) -> [&str; 5] {
        [&self.types, &self.objects, &self.documents, &self.services, &self.events]
    }

    /// Every kind in one module, under the do-not-edit header.
    pub fn joined(&self) -> String {
        let mut text = format!("{GENERATED_HEADER}\n");
        self.parts().iter().for_each(|part| text.push_str(part));
        text
    }

    /// One file per kind, as `(file name, text)`: the header, the module's doc, and a glob
    /// import of the crate root, which re-exports every kind.
    pub fn files(&self) -> Vec<(String, String)> {
        Self::KINDS
            .iter()
            .zip(self.parts())
            .map(|((file, doc), part)| {
                let text =
                    format!("{GENERATED_HEADER}\n//! {doc}\n\n#[allow(unused_imports)]\nuse super::*;\n\n{part}");
                (file.to_string(), text)
            })
            .collect()
    }
}

/// Emits the Rust for the schema, by kind: named types, objects, polymorphic enums,
/// descriptors, the registry, the services and the published `documents` (embedded as
/// `JSON_SCHEMA` and `OPENRPC`).
///
/// Objects, the bulk of large schemas, are emitted and formatted on every CPU; the
/// output does not depend on how many there are.
pub fn emit_rust(ir: &SchemaIr, options: &RustOptions, documents: &PublishedDocuments) -> RustModules {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    emit_rust_on(ir, options, documents, threads)
}

fn emit_rust_on(ir: &SchemaIr, options: &RustOptions, documents: &PublishedDocuments, threads: usize) -> RustModules {
    let wire_path = options.support.module("wire");
    let wire: syn::Path = syn::parse_str(&wire_path).expect("the wire path is a Rust path");
    let checks = ChecksTable::new(ir, &wire_path);
    let objects: Vec<&ObjectIr> = ir.objects.values().collect();
    let chunk_len = objects.len().div_ceil(threads.max(1)).max(1);
    let builder_crate = options.support.builder_crate();
    let writer = objects::ObjectWriter { ir, wire: &wire_path, builder_crate: &builder_crate, checks: &checks };
    let rpc: syn::Path = syn::parse_str(&options.support.module("rpc")).expect("the rpc path is a Rust path");
    std::thread::scope(|scope| {
        let workers: Vec<_> = objects
            .chunks(chunk_len)
            .map(|chunk| {
                let writer = &writer;
                scope.spawn(move || {
                    let mut text = String::with_capacity(chunk.len() * 16 * 1024);
                    for object in chunk {
                        writer.write(&mut text, object);
                    }
                    text
                })
            })
            .collect();
        let types = format_items(emit_prelude(ir, &wire));
        let shared = format_items(emit_shared(ir, &wire, &checks));
        let documents = format_items([emit_documents(options, documents)]);
        let services = format_items([
            crate::emit_services::emit_services(ir, &wire, &rpc),
            crate::emit_services::emit_backlevel(ir, &wire, &rpc),
        ]);
        let events = format_items([crate::emit_events::emit_events(ir, &wire, &rpc)]);
        let mut objects: String =
            workers.into_iter().map(|worker| worker.join().expect("an emitting thread panicked")).collect();
        writer.write_registry(&mut objects);
        objects.push_str(&shared);
        RustModules { types, objects, documents, services, events }
    })
}

/// Parses generated items and prints them with prettyplease.
fn format_items(items: impl IntoIterator<Item = TokenStream>) -> String {
    let items = items.into_iter();
    format_file(quote! { #(#items)* })
}

/// What comes before the objects: protocol constants and named types.
fn emit_prelude(ir: &SchemaIr, wire: &syn::Path) -> Vec<TokenStream> {
    let protocol = &ir.protocol;
    let protocol_name = protocol.name;
    let protocol_version = protocol.version.to_string();
    let mut items = vec![quote! {
        /// The protocol's name.
        pub const PROTOCOL_NAME: &str = #protocol_name;
        /// The protocol's current version.
        pub const PROTOCOL_VERSION: &str = #protocol_version;
    }];
    items.extend(ir.types.values().map(|named| emit_named_type(named, wire)));
    items
}

/// What the objects share: field checks and polymorphic enums.
fn emit_shared(ir: &SchemaIr, wire: &syn::Path, checks: &ChecksTable<'_>) -> Vec<TokenStream> {
    let mut items = vec![checks.emit(wire)];
    items.extend(ir.polymorphic.iter().map(|(base, members)| emit_polymorphic(base, members, wire)));
    items
}

/// The published documents, embedded as the options say.
fn emit_documents(options: &RustOptions, documents: &PublishedDocuments) -> TokenStream {
    let text = |document| serde_json::to_string(document).expect("JSON always serializes");
    let (json_schema, openrpc) = match &options.documents {
        DocumentEmbedding::Inline => {
            let (json_schema, openrpc) = (text(&documents.json_schema), text(&documents.openrpc));
            (quote! { #json_schema }, quote! { #openrpc })
        }
        DocumentEmbedding::Include { json_schema, openrpc, .. } => {
            (quote! { include_str!(#json_schema) }, quote! { include_str!(#openrpc) })
        }
    };
    let service_documents = documents.service_openrpc.iter().map(|(service, document)| {
        let document = match &options.documents {
            DocumentEmbedding::Inline => {
                let literal = text(document);
                quote! { #literal }
            }
            DocumentEmbedding::Include { service_openrpc_dir, .. } => {
                let path = format!("{service_openrpc_dir}/{service}.json");
                quote! { include_str!(#path) }
            }
        };
        quote! { #service => Some(#document), }
    });
    quote! {
        /// The published JSON Schema (2020-12) of the protocol, as `schema/vproto.schema.json`.
        pub const JSON_SCHEMA: &str = #json_schema;
        /// The published OpenRPC document of the whole protocol, every service's methods.
        pub const OPENRPC: &str = #openrpc;
        /// The published OpenRPC document of one service: its methods and the schemas they
        /// use, what a server hosting it answers to `rpc.discover` (several hosted services:
        /// `Discover::merged`). `None` for a name that is not a service of the schema.
        pub fn service_openrpc(service: &str) -> Option<&'static str> {
            match service {
                #(#service_documents)*
                _ => None,
            }
        }
    }
}

/// The distinct `FieldChecks` the objects' fields need, each emitted once as a
/// `FIELD_CHECKS_<n>` static (numbered in order of first use), so a field's read is one call.
/// Built before emitting, so emitting threads only look entries up.
struct ChecksTable<'a> {
    /// The number of each constrained field's checks, by (declaring object, field name).
    by_field: HashMap<(&'a str, &'a str), usize>,
    /// The literals in order of first use.
    literals: Vec<String>,
}

impl<'a> ChecksTable<'a> {
    fn new(ir: &SchemaIr<'a>, wire: &str) -> Self {
        let mut numbers: HashMap<String, usize> = HashMap::new();
        let mut table = ChecksTable { by_field: HashMap::new(), literals: Vec::new() };
        for field in ir.objects.values().flat_map(|object| object.current_fields()) {
            let key = (field.owner, field.name);
            if table.by_field.contains_key(&key) {
                continue; // an inherited field, seen at its owner
            }
            if let Some(literal) = field_checks(field, wire) {
                let number = *numbers.entry(literal.clone()).or_insert_with(|| {
                    table.literals.push(literal);
                    table.literals.len() - 1
                });
                table.by_field.insert(key, number);
            }
        }
        table
    }

    /// The expression `&FIELD_CHECKS_<n>` for `field`, or `&FieldChecks::NONE` when it has none.
    fn reference_text(&self, field: &FieldIr, wire: &str) -> String {
        match self.by_field.get(&(field.owner, field.name)) {
            Some(number) => format!("&FIELD_CHECKS_{number}"),
            None => format!("&{wire}::FieldChecks::NONE"),
        }
    }

    fn emit(&self, wire: &syn::Path) -> TokenStream {
        let statics = self.literals.iter().enumerate().map(|(number, literal)| {
            let ident = format_ident!("FIELD_CHECKS_{number}");
            let checks: TokenStream = literal.parse().expect("a literal the emitter wrote parses");
            quote! {
                /// Constraints shared by object fields (see `FieldChecks`).
                static #ident: #wire::FieldChecks = #checks;
            }
        });
        quote! { #(#statics)* }
    }
}

/// The `FieldChecks` literal of a field whose schema constrains the value or its items, as text.
fn field_checks(field: &FieldIr, wire: &str) -> Option<String> {
    let expr = field.schema;
    let value = (expr.reference.is_none() && has_constraints(expr)).then(|| constraints_text(expr, wire));
    let items = expr
        .items
        .as_deref()
        .filter(|items| items.reference.is_none() && has_constraints(items))
        .map(|items| constraints_text(items, wire));
    if value.is_none() && items.is_none() {
        return None;
    }
    let some = |constraints: Option<String>| match constraints {
        Some(constraints) => format!("Some(&{constraints})"),
        None => "None".to_string(),
    };
    Some(format!("{wire}::FieldChecks {{ value: {}, items: {} }}", some(value), some(items)))
}

fn emit_named_type(named: &NamedTypeIr, wire: &syn::Path) -> TokenStream {
    let ident = format_ident!("{}", named.name);
    let mut text = format!("{}\n\nSince protocol version {}.", named.description, named.since);
    if let Some(deprecated) = named.deprecated {
        text.push_str(&format!(" Deprecated since protocol version {deprecated}."));
    }
    let docs = doc(&text);
    let expr = named.schema;
    if let (Some(values), Some(JsonType::String)) = (&expr.enum_values, expr.json_type) {
        return emit_enum(&ident, &docs, values, named.open, wire);
    }
    let scalar = match expr.json_type {
        Some(JsonType::String) => Some(quote! { String }),
        Some(JsonType::Integer) => Some(quote! { i64 }),
        Some(JsonType::Number) => Some(quote! { f64 }),
        _ => None,
    };
    let Some(scalar) = scalar else {
        let target = type_tokens(&named.rust_type);
        return quote! { #docs pub type #ident = #target; };
    };
    let constraints = constraints_tokens(expr, wire);
    let is_string = expr.json_type == Some(JsonType::String);
    let accessors = if is_string {
        quote! {
            /// The value as text.
            pub fn as_str(&self) -> &str { &self.0 }
        }
    } else {
        quote! {
            /// The value.
            pub fn get(&self) -> #scalar { self.0 }
        }
    };
    let input = if is_string {
        quote! { impl Into<String> }
    } else {
        quote! { #scalar }
    };
    let convert = if is_string {
        quote! { value.into() }
    } else {
        quote! { value }
    };
    let eq = if expr.json_type == Some(JsonType::Number) {
        quote! { PartialEq, PartialOrd }
    } else {
        quote! { PartialEq, Eq, PartialOrd, Ord, Hash }
    };
    quote! {
        #docs
        #[derive(Clone, Debug, #eq)]
        pub struct #ident(#scalar);

        impl #ident {
            /// The constraints every value satisfies.
            pub const CONSTRAINTS: #wire::Constraints = #constraints;

            /// Checks and wraps a value.
            pub fn new(value: #input) -> Result<Self, #wire::WireError> {
                let value: #scalar = #convert;
                <Self as #wire::WireValue>::from_wire(&#wire::WireValue::to_wire(&value), &#wire::WirePath::root())
            }

            #accessors
        }

        impl std::fmt::Display for #ident {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl #wire::StreamValue for #ident {
            fn write_json(&self, out: &mut Vec<u8>, target: Option<#wire::Version>, ctx: &#wire::StreamContext<'_>) -> Result<(), #wire::WireError> {
                #wire::StreamValue::write_json(&self.0, out, target, ctx)
            }
        }

        impl #wire::WireValue for #ident {
            fn from_wire(value: &serde_json::Value, path: &#wire::WirePath) -> Result<Self, #wire::WireError> {
                let inner = <#scalar as #wire::WireValue>::from_wire(value, path)?;
                #wire::check_constraints(value, &Self::CONSTRAINTS, path)?;
                Ok(Self(inner))
            }
            fn to_wire(&self) -> serde_json::Value {
                #wire::WireValue::to_wire(&self.0)
            }
        }
    }
}

fn emit_enum(ident: &Ident, docs: &TokenStream, values: &[String], open: bool, wire: &syn::Path) -> TokenStream {
    let variants: Vec<Ident> = values.iter().map(|v| format_ident!("{}", variant_name(v))).collect();
    let variant_docs = values.iter().map(|v| format!(" The value `{v}`."));
    let (unknown_variant, unknown_str, unknown_read) = if open {
        (
            quote! {
                /// A value this version of the schema does not know; readers keep it.
                Unknown(String),
            },
            quote! { Self::Unknown(value) => value, },
            quote! { Ok(Self::Unknown(other.to_string())) },
        )
    } else {
        let expected = format!("one of {}", values.join(", "));
        (
            quote! {},
            quote! {},
            quote! {
                Err(#wire::WireError::InvalidValue { path: path.clone(), why: format!("{other:?} is not {}", #expected) })
            },
        )
    };
    quote! {
        #docs
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum #ident {
            #(#[doc = #variant_docs] #variants,)*
            #unknown_variant
        }

        impl #ident {
            /// The wire text of the value.
            pub fn as_str(&self) -> &str {
                match self {
                    #(Self::#variants => #values,)*
                    #unknown_str
                }
            }
        }

        impl std::fmt::Display for #ident {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl #wire::StreamValue for #ident {
            fn write_json(&self, out: &mut Vec<u8>, target: Option<#wire::Version>, ctx: &#wire::StreamContext<'_>) -> Result<(), #wire::WireError> {
                let _ = (target, ctx);
                #wire::write_json_str(out, self.as_str());
                Ok(())
            }
        }

        impl #wire::WireValue for #ident {
            fn from_wire(value: &serde_json::Value, path: &#wire::WirePath) -> Result<Self, #wire::WireError> {
                let text = <String as #wire::WireValue>::from_wire(value, path)?;
                match text.as_str() {
                    #(#values => Ok(Self::#variants),)*
                    other => #unknown_read,
                }
            }
            fn to_wire(&self) -> serde_json::Value {
                serde_json::Value::String(self.as_str().to_string())
            }
        }
    }
}

fn emit_polymorphic(base: &str, members: &[&str], wire: &syn::Path) -> TokenStream {
    let ident = format_ident!("{}", polymorphic_name(base));
    let variants: Vec<Ident> = members.iter().map(|m| format_ident!("{}", m)).collect();
    let names = members.iter().copied();
    let names_again = members.iter().copied();
    let names_match = members.iter().copied();
    let text = format!(" A {base} or any of its subclasses, told apart on the wire by `versioned_object.name`.");
    let expected = format!(" (expected one of {})", members.join(", "));
    quote! {
        #[doc = #text]
        #[derive(Clone, Debug, PartialEq)]
        pub enum #ident {
            #(#[doc = concat!(" A ", #names, ".")] #variants(Box<#variants>),)*
        }

        impl #ident {
            /// The registered name of the object held.
            pub fn object_name(&self) -> &'static str {
                match self {
                    #(Self::#variants(_) => #names_again,)*
                }
            }
        }

        impl #wire::StreamValue for #ident {
            fn write_json(&self, out: &mut Vec<u8>, target: Option<#wire::Version>, ctx: &#wire::StreamContext<'_>) -> Result<(), #wire::WireError> {
                match self {
                    #(Self::#variants(object) => #wire::StreamValue::write_json(object.as_ref(), out, target, ctx),)*
                }
            }
            fn object_name(&self) -> Option<&'static str> {
                Some(Self::object_name(self))
            }
        }

        impl #wire::WireValue for #ident {
            fn from_wire(value: &serde_json::Value, path: &#wire::WirePath) -> Result<Self, #wire::WireError> {
                match #wire::Envelope::name(value, path)? {
                    #(#names_match => Ok(Self::#variants(Box::new(#wire::WireValue::from_wire(value, path)?))),)*
                    other => Err(#wire::WireError::UnknownObject { path: path.clone(), name: other.to_string(), expected: #expected.to_string() }),
                }
            }
            fn to_wire(&self) -> serde_json::Value {
                match self {
                    #(Self::#variants(object) => #wire::WireValue::to_wire(object.as_ref()),)*
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_does_not_depend_on_the_number_of_threads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/vproto.json");
        let schema = crate::load_schema(&path).unwrap_or_else(|d| panic!("the project's schema: {d}"));
        let ir = SchemaIr::new(&schema);
        let documents = PublishedDocuments::new(&ir);
        let options = RustOptions::default();
        let one = emit_rust_on(&ir, &options, &documents, 1);
        for threads in [2, 3, 7, 1000] {
            assert!(one == emit_rust_on(&ir, &options, &documents, threads), "{threads} threads differ");
        }
    }
}
