//! vproto-codegen: loads a vproto schema, checks it, and generates Rust from it.
//!
//! The pipeline is schema file → [`load`] (JSON, duplicate keys, shape
//! against the meta-schema, meaning via [`check`]) → [`model`] →
//! [`ir`] → emitters ([`emit_rust`]). [`lock`] guards published versions.
//!
//! The generator is a library, usable from another project's `build.rs`
//! with its own schema, the way prost-build is used:
//!
//! ```no_run
//! // build.rs
//! fn main() {
//!     let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
//!     vproto_codegen::Generator::new("schema/my-protocol.json")
//!         .write_rust(&out.join("objects.rs"))
//!         .unwrap_or_else(|error| panic!("{error}"));
//!     println!("cargo:rerun-if-changed=schema/my-protocol.json");
//! }
//! ```
//!
//! and in the crate, which depends on `vproto-support` (the schema-independent support
//! the generated code stands on, as prost-types is for prost-build), `serde_json` and
//! `tracing`:
//! `include!(concat!(env!("OUT_DIR"), "/objects.rs"));`

#![allow(clippy::needless_doctest_main)] // the example is a whole build.rs

pub mod check;
pub mod diagnostic;
pub mod diff;
pub mod emit_data_tree;
pub mod emit_events;
pub mod emit_json_schema;
pub mod emit_openapi;
pub mod emit_openrpc;
pub mod emit_rust;
pub mod emit_services;
pub mod emit_templates;
pub mod examples;
pub mod ir;
pub mod load;
pub mod lock;
pub mod meta;
pub mod model;
pub mod naming;
pub mod resolve;
pub mod rust_syntax;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

pub use diagnostic::{Diagnostic, Diagnostics};
pub use load::{load_schema, parse_schema};
pub use model::Schema;

/// The documents published for third parties, built once per run: the JSON Schema
/// (2020-12) of every type, the OpenRPC description of the whole protocol and of each service,
/// and the OpenAPI description of each service's REST routes.
#[derive(Clone, Debug)]
pub struct PublishedDocuments {
    /// `schema/vproto.schema.json`.
    pub json_schema: serde_json::Value,
    /// `schema/vproto.openrpc.json`: every service's methods.
    pub openrpc: serde_json::Value,
    /// `schema/openrpc/<service>.json` by service: what a server hosting that service
    /// answers to `rpc.discover`.
    pub service_openrpc: BTreeMap<String, serde_json::Value>,
    /// `schema/openapi/<service>.json` by service, for services that bind REST routes.
    pub service_openapi: BTreeMap<String, serde_json::Value>,
}

impl PublishedDocuments {
    /// Builds both documents from the IR.
    ///
    /// The OpenRPC components are the JSON Schema's definitions with OpenRPC's references; they
    /// are built from the IR rather than copied from the JSON Schema (building costs less than
    /// copying), and the objects' definitions of both documents are built on every CPU.
    pub fn new(ir: &ir::SchemaIr) -> Self {
        use emit_json_schema::Refs;
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let mut definitions = emit_json_schema::definitions_on(ir, &[Refs::Defs, Refs::Components], threads);
        let components = definitions.pop().expect("one map per document");
        let defs = definitions.pop().expect("one map per document");
        let service_openrpc = ir
            .services
            .iter()
            .map(|service| (service.name.to_string(), emit_openrpc::service_openrpc(ir, service, &components)))
            .collect();
        let service_openapi = ir
            .services
            .iter()
            .filter_map(|service| {
                Some((service.name.to_string(), emit_openapi::service_openapi(ir, service, &components)?))
            })
            .collect();
        PublishedDocuments {
            json_schema: emit_json_schema::json_schema_with(ir, defs),
            openrpc: emit_openrpc::openrpc_with_components(ir, serde_json::Value::Object(components)),
            service_openrpc,
            service_openapi,
        }
    }
}

/// Configures and runs code generation for one schema.
#[derive(Clone, Debug)]
pub struct Generator {
    schema_path: PathBuf,
    lock_path: Option<PathBuf>,
    rust: emit_rust::RustOptions,
    trees: emit_data_tree::TreeOptions,
    view: bool,
}

/// Everything generated from a schema, by purpose.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The Rust of types, objects, documents and services, by kind.
    pub rust: emit_rust::RustModules,
    /// The Rust module of data-tree layout descriptors (`data_trees`).
    pub rust_data_trees: String,
    /// The meta-schema text (the same for every schema).
    pub meta_schema: String,
    /// The published JSON Schema of the protocol.
    pub json_schema: String,
    /// The published OpenRPC document of the protocol.
    pub openrpc: String,
    /// The published OpenRPC document of each service, by service name.
    pub service_openrpc: BTreeMap<String, String>,
    /// The published OpenAPI document of each service that binds REST routes, by service name.
    pub service_openapi: BTreeMap<String, String>,
    /// Object versions the lock does not list yet, as `Object version`.
    pub unpublished: Vec<String>,
    /// The IR's serializable view, which templates render ([`Generated::render_templates`]);
    /// built only for a generator configured [`Generator::with_view`].
    pub view: Option<ir::view::SchemaView>,
}

impl Generated {
    /// Renders the handlebars templates of `dir` (see [`emit_templates`] for its layout) over
    /// this schema: the files to write, relative to the output directory.
    pub fn render_templates(&self, dir: &Path) -> Result<emit_templates::Rendered, emit_templates::TemplateError> {
        let view = self.view.as_ref().ok_or(emit_templates::TemplateError::NoView)?;
        emit_templates::render_dir(dir, view)
    }
}

impl Generator {
    /// A generator for the schema file at `schema_path`.
    pub fn new(schema_path: impl Into<PathBuf>) -> Self {
        Generator {
            schema_path: schema_path.into(),
            lock_path: None,
            rust: emit_rust::RustOptions::default(),
            trees: emit_data_tree::TreeOptions::default(),
            view: false,
        }
    }

    /// Also builds [`Generated::view`], the serializable view templates render
    /// ([`Generated::render_templates`]); left out by default, since a `build.rs` emitting Rust
    /// does not need it.
    pub fn with_view(mut self) -> Self {
        self.view = true;
        self
    }

    /// Checks the schema against a lock of published versions.
    pub fn lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lock_path = Some(path.into());
        self
    }

    /// The Rust path of the support crate holding the `wire`, `rpc` and `tree` modules the
    /// generated code stands on (default `vproto_support`; set it when the crate is renamed
    /// or re-exported under another path).
    pub fn support_crate(mut self, path: &str) -> Self {
        self.rust.support = rust_syntax::SupportPath::new(path);
        self.trees.support = rust_syntax::SupportPath::new(path);
        self
    }

    /// Makes the generated module read the published documents with `include_str!` of these
    /// paths (relative to the generated file) instead of embedding them as literals; the caller
    /// writes [`Generated::json_schema`] and [`Generated::openrpc`] there, and each of
    /// [`Generated::service_openrpc`] as `<service_openrpc_dir>/<service>.json`.
    pub fn include_documents(mut self, json_schema: &str, openrpc: &str, service_openrpc_dir: &str) -> Self {
        self.rust.documents = emit_rust::DocumentEmbedding::Include {
            json_schema: json_schema.into(),
            openrpc: openrpc.into(),
            service_openrpc_dir: service_openrpc_dir.into(),
        };
        self
    }

    /// Loads, checks and generates, reporting every schema problem at once.
    pub fn generate(&self) -> Result<Generated, Diagnostics> {
        let schema = load_schema(&self.schema_path)?;
        let mut diagnostics = Diagnostics::new(self.schema_path.display().to_string());
        let mut unpublished = Vec::new();
        if let Some(lock_path) = &self.lock_path {
            match std::fs::read_to_string(lock_path)
                .map_err(|e| e.to_string())
                .and_then(|text| lock::Lock::parse(&text).map_err(|e| e.to_string()))
            {
                Ok(lock) => unpublished = lock.verify(&schema, &mut diagnostics).unpublished,
                Err(error) => diagnostics.push(
                    "",
                    format!("cannot read the lock {}: {error}", lock_path.display()),
                    "run `cargo xtask lock` to create it",
                ),
            }
        }
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        let ir = ir::SchemaIr::new(&schema);
        let documents = PublishedDocuments::new(&ir);
        let view = self.view.then(|| ir::view::SchemaView::new(&ir, documents.json_schema.clone()));
        let pretty = |document: &serde_json::Value| {
            let mut text = serde_json::to_string_pretty(document).expect("JSON always serializes");
            text.push('\n');
            text
        };
        let pretty_each = |documents: &BTreeMap<String, serde_json::Value>| -> BTreeMap<String, String> {
            documents.iter().map(|(name, document)| (name.clone(), pretty(document))).collect()
        };
        // The documents' text is written on a thread of its own while the Rust is emitted.
        let ((json_schema, openrpc, service_openrpc, service_openapi), rust) = std::thread::scope(|scope| {
            let texts = scope.spawn(|| {
                (
                    pretty(&documents.json_schema),
                    pretty(&documents.openrpc),
                    pretty_each(&documents.service_openrpc),
                    pretty_each(&documents.service_openapi),
                )
            });
            let rust = emit_rust::emit_rust(&ir, &self.rust, &documents);
            (texts.join().expect("the document writer panicked"), rust)
        });
        Ok(Generated {
            openrpc,
            service_openrpc,
            service_openapi,
            rust,
            rust_data_trees: emit_data_tree::emit_data_trees(&ir, &self.trees),
            meta_schema: meta::meta_schema_text(),
            json_schema,
            unpublished,
            view,
        })
    }

    /// Generates, then renders the templates of `templates` (another language, a site; see
    /// [`emit_templates`]) into the directory `out`, creating it and its folders; returns the
    /// files written, relative to `out`.
    ///
    /// ```no_run
    /// vproto_codegen::Generator::new("schema/my-protocol.json")
    ///     .write_templates("templates/go".as_ref(), "clients/go".as_ref())
    ///     .unwrap_or_else(|error| panic!("{error}"));
    /// ```
    pub fn write_templates(&self, templates: &Path, out: &Path) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
        let rendered = self.clone().with_view().generate()?.render_templates(templates)?;
        for (path, contents) in &rendered {
            let target = out.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::write(&target, contents).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        }
        Ok(rendered.into_keys().collect())
    }

    /// Generates and writes the Rust, every kind in one module, to `path` (for `build.rs`).
    pub fn write_rust(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let generated = self.generate()?;
        std::fs::write(path, generated.rust.joined())?;
        Ok(())
    }
}
