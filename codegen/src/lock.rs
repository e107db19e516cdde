//! The lock of published versions (`schema/vproto.lock`).
//!
//! Like oslo.versionedobjects' fingerprint test, the lock records a hash of
//! the shape of every object version. Once a version is published its shape
//! is frozen: changing it (a field added with an old `since`, a type changed,
//! a default dropped) fails codegen and says that a new version is needed.
//! New versions enter the lock only through `cargo xtask lock`.
//!
//! Events are locked the same way, by protocol version: an event's payload is fingerprinted at
//! its `since` and at each later `since` of its params (the versions at which its shape
//! changes), so a published payload never changes either.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    diagnostic::{pointer, Diagnostics},
    model::{Event, Object, Schema, TypeExpr, Version},
};

/// The lock file's content: object name -> version -> fingerprint, and event (`service.event`)
/// -> protocol version -> fingerprint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// What the file is, for people who open it.
    #[serde(default)]
    pub comment: String,
    /// Fingerprints of every published object version.
    pub objects: Fingerprints,
    /// Fingerprints of every published event payload, by the protocol versions at which its
    /// shape was set (see [`event_versions`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: Fingerprints,
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
        let mut events = BTreeMap::new();
        for (service_name, service) in &schema.services {
            for (event_name, event) in &service.events {
                let versions = event_versions(event)
                    .into_iter()
                    .map(|version| (version.to_string(), event_fingerprint(schema, event, version)))
                    .collect();
                events.insert(format!("{service_name}.{event_name}"), versions);
            }
        }
        Lock {
            comment: "Fingerprints of published object versions and event payloads. Written by `cargo xtask lock`; never edit by hand."
                .into(),
            objects,
            events,
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
        for drift in drifts(&self.objects, &current.objects) {
            let (pointer, message, fix) = match drift {
                Drift::Deleted { name, versions } => (
                    pointer(&["objects", name]),
                    format!("{name} has published versions ({versions}) but is no longer in the schema"),
                    "published objects cannot be deleted; restore it (deprecate it instead)".to_string(),
                ),
                Drift::Gone { name, version } => (
                    pointer(&["objects", name, "history"]),
                    format!("{name} {version} was published but is gone from its history"),
                    "published versions cannot be deleted; restore the history entry".to_string(),
                ),
                Drift::Changed { name, version, actual, locked } => (
                    pointer(&["objects", name]),
                    format!("the shape of {name} {version} changed after it was published (fingerprint {actual}, locked {locked})"),
                    format!("published versions are frozen: add a new version to {name}'s history, give new or changed fields that `since`, then run `cargo xtask lock`"),
                ),
            };
            out.push(pointer, message, fix);
        }
        for drift in drifts(&self.events, &current.events) {
            let (name, message, fix) = match drift {
                Drift::Deleted { name, versions } => (
                    name,
                    format!("the event {name} was published ({versions}) but is no longer in the schema"),
                    "published events cannot be deleted; restore it and give it `removed` instead",
                ),
                Drift::Gone { name, version } => (
                    name,
                    format!("the payload of {name} at protocol version {version} was published, but no longer changes there (no `since` of the event or of a param names {version})"),
                    "published payloads are frozen: restore the `since` that named that version",
                ),
                Drift::Changed { name, version, actual, locked } => (
                    name,
                    format!("the payload of {name} at protocol version {version} changed after it was published (fingerprint {actual}, locked {locked})"),
                    "published payloads are frozen: add a param only with a later `since` (and `\"required\": false`), never change or drop one; or add a new event and mark this one `removed`, then run `cargo xtask lock`",
                ),
            };
            let (service, event) = name.split_once('.').unwrap_or((name, ""));
            out.push(pointer(&["services", service, "events", event]), message, fix);
        }
        for (group, locked, now) in [("", &self.objects, &current.objects), ("event ", &self.events, &current.events)] {
            for (name, versions) in now {
                for version in versions.keys() {
                    if !locked.get(name).is_some_and(|locked| locked.contains_key(version)) {
                        report.unpublished.push(format!("{group}{name} {version}"));
                    }
                }
            }
        }
        report
    }
}

/// Fingerprints by name, then by version.
type Fingerprints = BTreeMap<String, BTreeMap<String, String>>;

/// How a published entry of the lock differs from the schema now.
enum Drift<'a> {
    /// The whole entry (an object, an event) is gone; `versions` lists what was published.
    Deleted { name: &'a str, versions: String },
    /// One published version is gone.
    Gone { name: &'a str, version: &'a str },
    /// One published version has another fingerprint now.
    Changed { name: &'a str, version: &'a str, actual: &'a str, locked: &'a str },
}

/// Every way the `locked` fingerprints differ from the `current` ones, in the lock's order; new
/// entries are no drift.
fn drifts<'a>(locked: &'a Fingerprints, current: &'a Fingerprints) -> Vec<Drift<'a>> {
    let mut found = Vec::new();
    for (name, versions) in locked {
        let Some(now) = current.get(name) else {
            found.push(Drift::Deleted { name, versions: keys(versions) });
            continue;
        };
        for (version, locked) in versions {
            match now.get(version) {
                None => found.push(Drift::Gone { name, version }),
                Some(actual) if actual != locked => found.push(Drift::Changed { name, version, actual, locked }),
                Some(_) => {}
            }
        }
    }
    found
}

/// The protocol versions at which an event's payload takes a shape: its `since`, and each later
/// `since` of its params before the event is removed, ascending.
pub fn event_versions(event: &Event) -> Vec<Version> {
    let mut versions: Vec<Version> = std::iter::once(event.since)
        .chain(event.params.values().filter_map(|param| param.since))
        .filter(|version| *version >= event.since && event.removed.is_none_or(|removed| *version < removed))
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// The fingerprint of an event's payload at protocol `version`: a hash of every param that
/// exists then (by wire name: type with named types resolved, requiredness).
pub fn event_fingerprint(schema: &Schema, event: &Event, version: Version) -> String {
    let mut params = serde_json::Map::new();
    for (name, param) in &event.params {
        if param.since.is_some_and(|since| since > version) {
            continue;
        }
        // Keyed by the wire name: what travels is frozen, the schema name may change.
        let wire_name = param.wire_name.as_ref().unwrap_or(name);
        params
            .insert(wire_name.clone(), json!({"type": resolve(schema, &param.schema, 0), "required": param.required}));
    }
    hash(&json!({"params": Value::Object(params)}))
}

/// The first 16 bytes of the SHA-256 of a shape's JSON text, in hex.
fn hash(shape: &Value) -> String {
    let digest = Sha256::digest(shape.to_string().as_bytes());
    digest.iter().take(16).map(|byte| format!("{byte:02x}")).collect()
}

fn keys(map: &BTreeMap<String, String>) -> String {
    map.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The fingerprint of `object` at `version`: a hash of every field that
/// exists at that version (by wire name: type with named types resolved, nullability,
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
        // Keyed by the wire name: what travels is frozen, the schema name may change.
        fields.insert(
            field.wire_name.as_ref().unwrap_or(name).clone(),
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
    hash(&shape)
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
