//! The lock of published versions (`schema/vproto.lock`).
//!
//! Like oslo.versionedobjects' fingerprint test, the lock records a hash of
//! the shape of every object version. Once a version is published its shape
//! is frozen: changing it (a field added with an old `since`, a type changed,
//! a default dropped) fails codegen and says that a new version is needed.
//! New versions enter the lock only through `cargo xtask lock`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    diagnostic::{pointer, Diagnostics},
    model::{Object, Schema, TypeExpr, Version},
};

/// The lock file's content: object name -> version -> fingerprint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// What the file is, for people who open it.
    #[serde(default)]
    pub comment: String,
    /// Fingerprints of every published object version.
    pub objects: BTreeMap<String, BTreeMap<String, String>>,
}

/// A lock file that does not parse, and why.
#[derive(Debug, thiserror::Error)]
#[error("the lock file is not valid: {0}")]
pub struct LockError(#[source] serde_json::Error);

/// What comparing a schema with its lock found.
#[derive(Clone, Debug, Default)]
pub struct LockReport {
    /// Versions in the schema that the lock does not have yet: `Object version`.
    pub unpublished: Vec<String>,
}

impl Lock {
    /// Parses a lock file.
    pub fn parse(text: &str) -> Result<Lock, LockError> {
        serde_json::from_str(text).map_err(LockError)
    }

    /// The lock that publishes every version of `schema`, keeping entries
    /// for objects or versions the schema no longer has out.
    pub fn of(schema: &Schema) -> Lock {
        let mut objects = BTreeMap::new();
        for (name, object) in &schema.objects {
            let versions = object
                .history
                .iter()
                .map(|entry| (entry.version.to_string(), fingerprint(schema, object, entry.version)))
                .collect();
            objects.insert(name.clone(), versions);
        }
        Lock {
            comment: "Fingerprints of published object versions. Written by `cargo xtask lock`; never edit by hand."
                .into(),
            objects,
        }
    }

    /// The lock as file text.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a lock always serializes");
        text.push('\n');
        text
    }

    /// Compares the schema with this lock: a published version whose shape
    /// changed, or that disappeared, is an error; new versions are listed.
    pub fn verify(&self, schema: &Schema, out: &mut Diagnostics) -> LockReport {
        let current = Lock::of(schema);
        let mut report = LockReport::default();
        for (name, versions) in &self.objects {
            let Some(now) = current.objects.get(name) else {
                out.push(
                    pointer(&["objects", name]),
                    format!("{name} has published versions ({}) but is no longer in the schema", keys(versions)),
                    "published objects cannot be deleted; restore it (deprecate it instead)",
                );
                continue;
            };
            for (version, locked) in versions {
                match now.get(version) {
                    None => out.push(
                        pointer(&["objects", name, "history"]),
                        format!("{name} {version} was published but is gone from its history"),
                        "published versions cannot be deleted; restore the history entry",
                    ),
                    Some(actual) if actual != locked => out.push(
                        pointer(&["objects", name]),
                        format!(
                            "the shape of {name} {version} changed after it was published (fingerprint {actual}, locked {locked})"
                        ),
                        format!(
                            "published versions are frozen: add a new version to {name}'s history, give new or changed fields that `since`, then run `cargo xtask lock`"
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        for (name, versions) in &current.objects {
            for version in versions.keys() {
                if !self.objects.get(name).is_some_and(|locked| locked.contains_key(version)) {
                    report.unpublished.push(format!("{name} {version}"));
                }
            }
        }
        report
    }
}

fn keys(map: &BTreeMap<String, String>) -> String {
    map.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The fingerprint of `object` at `version`: a hash of every field that
/// exists at that version (type with named types resolved, nullability,
/// requiredness, default, pinned child version), the wire form, and the base
/// version carried.
pub fn fingerprint(schema: &Schema, object: &Object, version: Version) -> String {
    let mut fields = serde_json::Map::new();
    for (name, field) in &object.fields {
        let exists = field.since <= version && field.removed.is_none_or(|removed| version < removed);
        if !exists {
            continue;
        }
        let child = field.child_versions.iter().rev().find(|(from, _)| **from <= version).map(|(_, to)| to.to_string());
        fields.insert(
            name.clone(),
            json!({
                "type": resolve(schema, &field.schema, 0),
                "nullable": field.nullable,
                "required": field.required,
                "default": field.default,
                "child_version": child,
            }),
        );
    }
    let base = object.extends.as_ref().map(|extends| {
        let carried = extends.versions.iter().rev().find(|(from, _)| **from <= version).map(|(_, to)| to.to_string());
        json!({"object": extends.object, "version": carried})
    });
    let shape = json!({
        "wire": object.wire,
        "namespace": object.namespace,
        "base": base,
        "fields": Value::Object(fields),
    });
    let digest = Sha256::digest(shape.to_string().as_bytes());
    digest.iter().take(16).map(|byte| format!("{byte:02x}")).collect()
}

/// A type expression with named types replaced by their definitions.
fn resolve(schema: &Schema, expr: &TypeExpr, depth: usize) -> Value {
    if depth > 32 {
        return Value::Null;
    }
    if let Some(name) = expr.reference.as_deref().and_then(|r| r.strip_prefix("#/types/")) {
        if let Some(named) = schema.types.get(name) {
            // The name is not part of the shape: renaming a type changes no byte on the wire.
            return json!({"open": named.open, "schema": resolve(schema, &named.schema, depth + 1)});
        }
    }
    let mut value = serde_json::to_value(expr).expect("a type expression always serializes");
    if let Some(items) = &expr.items {
        value["items"] = resolve(schema, items, depth + 1);
    }
    if let Some(values) = &expr.additional_properties {
        value["additionalProperties"] = resolve(schema, values, depth + 1);
    }
    value
}
