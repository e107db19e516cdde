//! vproto-import: reads the schemas people already have and writes vproto schemas.
//!
//! * [`vdsm`]: oVirt vdsm's `vdsm-api.yml` (and its `vdsm-events.yml`): types, enums, maps,
//!   unions, aliases, verbs with params and returns, events, `added`/`deprecated`.
//! * [`qapi`]: QEMU's QAPI schema (`qapi-schema.json` with its includes): structs, unions,
//!   alternates, enums, commands, events, features, `if` conditions, `Since:`.
//!
//! Both build a [`vproto_codegen::model::Schema`] and run it through the codegen loader and
//! checker ([`Imported::check`]), so an import either passes every check or says why not. What
//! the schema language cannot say is mapped to the nearest construct or left out, and every such
//! decision is a [`Note`] naming where in the source and why (docs/importers.md has the table).

pub mod names;
pub mod qapi;
pub mod vdsm;

use std::fmt;

use vproto_codegen::{model::Schema, Diagnostics};

/// One construct that was mapped approximately or left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where in the source: file and the construct's path, such as `vdsm-api.yml: types/BalloonInfo`.
    pub location: String,
    /// What was done.
    pub what: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.what)
    }
}

/// An imported schema and the notes taken on the way.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The vproto schema.
    pub schema: Schema,
    /// What was mapped approximately or left out, with where and why.
    pub notes: Vec<Note>,
}

impl Imported {
    /// The schema as vproto schema JSON text (pretty, newline-terminated).
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.schema).expect("a schema always serializes");
        text.push('\n');
        text
    }

    /// Runs the text through codegen's loader and every check, as `vproto check` does.
    pub fn check(&self) -> Result<Schema, Diagnostics> {
        vproto_codegen::parse_schema(&self.to_text(), "imported schema")
    }
}

/// Why an import failed: the source cannot be read or is not of the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The source is not of the expected shape; `location` names where.
    #[error("{location}: {message}")]
    Invalid {
        /// File and construct.
        location: String,
        /// What is wrong.
        message: String,
    },
}

impl ImportError {
    pub(crate) fn invalid(location: impl Into<String>, message: impl Into<String>) -> Self {
        ImportError::Invalid { location: location.into(), message: message.into() }
    }
}

/// A method of the model: built through serde, so members the language gains later (all optional)
/// take their defaults.
pub(crate) fn method(
    description: String,
    since: vproto_codegen::model::Version,
    deprecated: Option<vproto_codegen::model::Version>,
    params: indexmap::IndexMap<String, vproto_codegen::model::Param>,
    result: Option<vproto_codegen::model::TypeExpr>,
) -> vproto_codegen::model::Method {
    let value = serde_json::json!({
        "description": description,
        "since": since,
        "deprecated": deprecated,
        "params": params,
        "result": result,
    });
    let mut value = value;
    if let Some(members) = value.as_object_mut() {
        members.retain(|_, member| !member.is_null());
    }
    serde_json::from_value(value).expect("a method of these members always reads")
}

/// Not yet known: a version replaced by the first release once the history is known.
pub(crate) const UNSET: vproto_codegen::model::Version = vproto_codegen::model::Version { major: 0, minor: 0 };

/// The schema of an import: versions not yet known become the first release, params added after
/// their method or event become optional (as the checks require; one added with it has no
/// `since`), each service starts at its oldest member, and fields holding objects are pinned.
pub(crate) fn assemble(
    protocol: vproto_codegen::model::Protocol,
    types: indexmap::IndexMap<String, vproto_codegen::model::NamedType>,
    objects: indexmap::IndexMap<String, vproto_codegen::model::Object>,
    services: std::collections::BTreeMap<String, vproto_codegen::model::Service>,
) -> Schema {
    let first = protocol.history[0].version;
    let settle = |version: &mut vproto_codegen::model::Version| {
        if *version == UNSET {
            *version = first;
        }
    };
    let settle_params = |params: &mut indexmap::IndexMap<String, vproto_codegen::model::Param>, since| {
        for param in params.values_mut() {
            // Deprecated from a release not before the param exists (its own or its method's).
            if let Some(deprecated) = &mut param.deprecated {
                *deprecated = (*deprecated).max(param.since.unwrap_or(since));
            }
            match param.since {
                Some(added) if added <= since => param.since = None,
                Some(_) => param.required = false,
                None => {}
            }
        }
    };
    let mut types = types;
    for named in types.values_mut() {
        settle(&mut named.since);
        if let Some(deprecated) = &mut named.deprecated {
            settle(deprecated);
            *deprecated = (*deprecated).max(named.since);
        }
    }
    let mut settled = indexmap::IndexMap::new();
    for (name, mut service) in services {
        for method in service.methods.values_mut() {
            settle(&mut method.since);
            if let Some(deprecated) = &mut method.deprecated {
                settle(deprecated);
                *deprecated = (*deprecated).max(method.since);
            }
            settle_params(&mut method.params, method.since);
        }
        for event in service.events.values_mut() {
            settle(&mut event.since);
            if let Some(deprecated) = &mut event.deprecated {
                settle(deprecated);
                *deprecated = (*deprecated).max(event.since);
            }
            settle_params(&mut event.params, event.since);
        }
        let members = service.methods.values().map(|m| m.since).chain(service.events.values().map(|e| e.since));
        service.since = members.min().unwrap_or(first);
        settled.insert(name, service);
    }
    let mut schema = Schema {
        meta_schema: None,
        protocol,
        types,
        objects,
        errors: indexmap::IndexMap::new(),
        services: settled,
        data_trees: indexmap::IndexMap::new(),
    };
    pin_children(&mut schema);
    schema
}

/// Every imported object is at version 1.0: a field holding objects carries them at 1.0 (the
/// pin the checks ask for).
fn pin_children(schema: &mut Schema) {
    let one = vproto_codegen::model::Version { major: 1, minor: 0 };
    let types = schema.types.clone();
    for object in schema.objects.values_mut() {
        for field in object.fields.values_mut() {
            if let Some((_, false)) = vproto_codegen::resolve::object_target(&types, &field.schema) {
                field.child_versions = indexmap::IndexMap::from([(one, one)]);
            }
        }
    }
}

pub(crate) fn read(path: &std::path::Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|error| ImportError::Read { path: path.display().to_string(), error })
}
