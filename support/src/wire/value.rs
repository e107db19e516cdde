//! Reading and writing typed values: the [`WireValue`] trait for scalars and
//! containers, and the envelope handling shared by every versioned object.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{
    convert::{backport_data, fill_defaults, Manifest},
    error::json_kind,
    formats::FieldChecks,
    keys, ObjectInfo, Registry, Version, VersionError, WireError, WireForm, WirePath,
};

/// A value that can be read from and written to wire JSON.
pub trait WireValue: Sized {
    /// Reads the value at `path`, checking its type and constraints.
    fn from_wire(value: &Value, path: &WirePath) -> Result<Self, WireError>;
    /// Writes the value as wire JSON.
    fn to_wire(&self) -> Value;
}

fn wrong_type(expected: &str, found: &Value, path: &WirePath) -> WireError {
    WireError::WrongType { path: path.clone(), expected: expected.into(), found: json_kind(found) }
}

impl WireValue for String {
    fn from_wire(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        value.as_str().map(str::to_owned).ok_or_else(|| wrong_type("a string", value, path))
    }
    fn to_wire(&self) -> Value {
        Value::String(self.clone())
    }
}

impl WireValue for i64 {
    fn from_wire(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        value.as_i64().ok_or_else(|| wrong_type("an integer", value, path))
    }
    fn to_wire(&self) -> Value {
        Value::from(*self)
    }
}

impl WireValue for f64 {
    fn from_wire(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        value.as_f64().ok_or_else(|| wrong_type("a number", value, path))
    }
    fn to_wire(&self) -> Value {
        serde_json::Number::from_f64(*self).map_or(Value::Null, Value::Number)
    }
}

impl WireValue for bool {
    fn from_wire(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        value.as_bool().ok_or_else(|| wrong_type("a boolean", value, path))
    }
    fn to_wire(&self) -> Value {
        Value::Bool(*self)
    }
}

impl<T: WireValue> WireValue for Option<T> {
    /// `null` reads as `None`.
    fn from_wire(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        match value {
            Value::Null => Ok(None),
            other => T::from_wire(other, path).map(Some),
        }
    }
    fn to_wire(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_wire)
    }
}

impl<T: WireValue> WireValue for Vec<T> {
    fn from_wire(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        let items = value.as_array().ok_or_else(|| wrong_type("an array", value, path))?;
        items.iter().enumerate().map(|(index, item)| T::from_wire(item, &path.index(index))).collect()
    }
    fn to_wire(&self) -> Value {
        Value::Array(self.iter().map(T::to_wire).collect())
    }
}

impl<T: WireValue> WireValue for BTreeMap<String, T> {
    fn from_wire(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        let entries = value.as_object().ok_or_else(|| wrong_type("an object", value, path))?;
        entries.iter().map(|(key, item)| Ok((key.clone(), T::from_wire(item, &path.key(key))?))).collect()
    }
    fn to_wire(&self) -> Value {
        Value::Object(self.iter().map(|(key, item)| (key.clone(), item.to_wire())).collect())
    }
}

impl<T: WireValue> WireValue for Box<T> {
    fn from_wire(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        T::from_wire(value, path).map(Box::new)
    }
    fn to_wire(&self) -> Value {
        T::to_wire(self)
    }
}

/// The value of a field's schema default, `json` as the schema writes it: what a generated
/// builder gives a field left unset.
///
/// # Panics
/// When `json` is not a valid `T`: the generator checks every default against its field's
/// type, so this is a generator bug, never bad input.
pub fn field_default<T: WireValue>(json: &str) -> T {
    let value: Value = serde_json::from_str(json).expect("the generator writes defaults as JSON");
    T::from_wire(&value, &WirePath::root()).unwrap_or_else(|error| panic!("the default {json} does not fit: {error}"))
}

/// Reads a field that must be present, checking its constraints first.
pub fn read_required<T: WireValue>(
    data: &Map<String, Value>,
    object: &str,
    field: &str,
    checks: &FieldChecks,
    path: &WirePath,
) -> Result<T, WireError> {
    match data.get(field) {
        Some(value) => {
            let path = path.field(field);
            checks.check(value, &path)?;
            T::from_wire(value, &path)
        }
        None => Err(WireError::MissingField { path: path.clone(), object: object.into(), field: field.into() }),
    }
}

/// Reads a field that may be absent, checking its constraints first.
pub fn read_optional<T: WireValue>(
    data: &Map<String, Value>,
    field: &str,
    checks: &FieldChecks,
    path: &WirePath,
) -> Result<Option<T>, WireError> {
    let Some(value) = data.get(field) else { return Ok(None) };
    let path = path.field(field);
    checks.check(value, &path)?;
    T::from_wire(value, &path).map(Some)
}

/// Writes a field that may be unset into an object's data: nothing when it is `None`.
pub fn insert_optional<T: WireValue>(data: &mut Map<String, Value>, field: &str, value: Option<&T>) {
    if let Some(value) = value {
        data.insert(field.into(), value.to_wire());
    }
}

/// The parts of a `versioned_object.*` envelope, checked.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The object's name.
    pub name: &'a str,
    /// The version of the data.
    pub version: Version,
    /// The fields.
    pub data: &'a Map<String, Value>,
    /// The fields the sender marked as changed.
    pub changes: Option<Vec<String>>,
}

/// `value` as an envelope's JSON object.
fn envelope_map<'a>(value: &'a Value, path: &WirePath) -> Result<&'a Map<String, Value>, WireError> {
    value.as_object().ok_or_else(|| WireError::BadEnvelope {
        path: path.clone(),
        why: format!("expected an object, found {}", json_kind(value)),
    })
}

/// The string an envelope holds at `key`.
fn envelope_text<'a>(map: &'a Map<String, Value>, key: &str, path: &WirePath) -> Result<&'a str, WireError> {
    let bad = |why: String| WireError::BadEnvelope { path: path.clone(), why };
    match map.get(key) {
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(bad(format!("`{key}` must be a string, found {}", json_kind(other)))),
        None => Err(bad(format!("`{key}` is missing"))),
    }
}

impl<'a> Envelope<'a> {
    /// The object an envelope names (`versioned_object.name`), before anything else is read:
    /// what a polymorphic field dispatches on. Not an object, or no name, is `BadEnvelope`.
    pub fn name(value: &'a Value, path: &WirePath) -> Result<&'a str, WireError> {
        envelope_text(envelope_map(value, path)?, keys::NAME, path)
    }

    /// Checks the shape of an envelope and finds its object in `registry`.
    pub fn parse(
        value: &'a Value,
        registry: &Registry,
        path: &WirePath,
    ) -> Result<(Self, &'static ObjectInfo), WireError> {
        let bad = |why: String| WireError::BadEnvelope { path: path.clone(), why };
        let map = envelope_map(value, path)?;
        for key in map.keys() {
            if ![keys::NAME, keys::NAMESPACE, keys::VERSION, keys::DATA, keys::CHANGES].contains(&key.as_str()) {
                return Err(bad(format!("unexpected key `{key}`")));
            }
        }
        let text = |key: &str| envelope_text(map, key, path);
        let name = text(keys::NAME)?;
        let info = registry.get(name).filter(|info| info.wire == WireForm::VersionedObject).ok_or_else(|| {
            WireError::UnknownObject { path: path.clone(), name: name.into(), expected: String::new() }
        })?;
        let namespace = text(keys::NAMESPACE)?;
        if namespace != info.namespace {
            return Err(bad(format!("{name} belongs to namespace `{}`, not `{namespace}`", info.namespace)));
        }
        let version_text = text(keys::VERSION)?;
        let version: Version = version_text.parse().map_err(|error: VersionError| bad(error.to_string()))?;
        check_version(info, version, path)?;
        let data = match map.get(keys::DATA) {
            Some(Value::Object(data)) => data,
            Some(other) => return Err(bad(format!("`{}` must be an object, found {}", keys::DATA, json_kind(other)))),
            None => return Err(bad(format!("`{}` is missing", keys::DATA))),
        };
        let changes = match map.get(keys::CHANGES) {
            None => None,
            Some(value) => Some(Vec::<String>::from_wire(value, &path.field(keys::CHANGES))?),
        };
        Ok((Envelope { name, version, data, changes }, info))
    }
}

/// Fails unless `version` is one of the object's versions.
pub(crate) fn check_version(info: &ObjectInfo, version: Version, path: &WirePath) -> Result<(), WireError> {
    if version > info.version {
        return Err(WireError::UnsupportedVersion {
            path: path.clone(),
            object: info.name.into(),
            version: version.to_string(),
            max_supported: info.version.to_string(),
        });
    }
    if !info.versions.contains(&version) {
        return Err(WireError::UnknownVersion {
            path: path.clone(),
            object: info.name.into(),
            version: version.to_string(),
            known: info.versions.iter().map(Version::to_string).collect::<Vec<_>>().join(", "),
        });
    }
    Ok(())
}

/// Rejects fields the object never declared (fields of other versions are ignored, as oslo does).
fn check_known_fields(
    registry: &Registry,
    info: &'static ObjectInfo,
    data: &Map<String, Value>,
    path: &WirePath,
) -> Result<(), WireError> {
    if info.tolerate_unknown_fields {
        return Ok(());
    }
    for key in data.keys() {
        let mut declared = false;
        let mut current = Some(info);
        while let Some(object) = current {
            if object.fields.iter().any(|field| field.name == key) {
                declared = true;
                break;
            }
            current = object.base.and_then(|base| registry.get(base.object));
        }
        if !declared {
            return Err(WireError::UnknownField { path: path.clone(), object: info.name.into(), field: key.clone() });
        }
    }
    Ok(())
}

/// An object sent in the `versioned_object.*` envelope.
///
/// Generated code provides the descriptor and the field-by-field mapping;
/// the provided methods do the envelope, version checks and conversion.
pub trait VersionedObject: Sized {
    /// The registry of every object of the schema.
    fn registry() -> &'static Registry;
    /// The object's descriptor.
    fn info() -> &'static ObjectInfo;
    /// Writes the fields at the current version; child objects as envelopes.
    fn to_data(&self) -> Map<String, Value>;
    /// Reads the fields from data already upgraded to the current version.
    fn from_data(data: &Map<String, Value>, path: &WirePath) -> Result<Self, WireError>;
    /// The fields marked as changed; `None` counts every set field.
    fn changes(&self) -> Option<&[String]>;
    /// Records the fields the sender marked as changed.
    fn set_changes(&mut self, changes: Option<Vec<String>>);

    /// Writes the object at `target` (default: the current version),
    /// converting children by their pins or by `manifest`.
    fn to_primitive(&self, target: Option<Version>, manifest: Option<&Manifest>) -> Result<Value, WireError> {
        let info = Self::info();
        let target = target.unwrap_or(info.version);
        check_version(info, target, &WirePath::root())?;
        let mut data = self.to_data();
        // oslo converts whenever a manifest is given, even at the current version.
        if target != info.version || manifest.is_some() {
            backport_data(Self::registry(), info, &mut data, target, manifest, &WirePath::root())?;
        }
        Ok(envelope(info, target, data, self.changes()))
    }

    /// Writes the object at its current version, children at theirs.
    fn to_current_primitive(&self) -> Value {
        envelope(Self::info(), Self::info().version, self.to_data(), self.changes())
    }

    /// Reads an object from any version the schema knows, filling in
    /// defaults for fields added since.
    fn from_primitive(value: &Value) -> Result<Self, WireError> {
        Self::from_primitive_at(value, &WirePath::root())
    }

    /// [`Self::from_primitive`] for a value at `path` inside a larger document.
    fn from_primitive_at(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        let registry = Self::registry();
        let (envelope, info) = Envelope::parse(value, registry, path)?;
        if info.name != Self::info().name {
            return Err(WireError::UnknownObject {
                path: path.clone(),
                name: envelope.name.into(),
                expected: format!(" (expected {})", Self::info().name),
            });
        }
        check_known_fields(registry, info, envelope.data, path)?;
        let mut data = envelope.data.clone();
        fill_defaults(registry, info, &mut data, envelope.version, path)?;
        let mut object = Self::from_data(&data, path)?;
        // As oslo: an envelope without `changes` marks nothing as changed.
        object.set_changes(Some(envelope.changes.unwrap_or_default()));
        Ok(object)
    }
}

/// Builds an envelope; `changes` lists the fields marked changed that the data holds.
fn envelope(info: &ObjectInfo, version: Version, data: Map<String, Value>, changes: Option<&[String]>) -> Value {
    let mut changed: Vec<String> = match changes {
        Some(changes) => changes.iter().filter(|name| data.contains_key(*name)).cloned().collect(),
        None => data.keys().cloned().collect(),
    };
    changed.sort();
    changed.dedup();
    let mut map = Map::new();
    map.insert(keys::NAME.into(), Value::String(info.name.into()));
    map.insert(keys::NAMESPACE.into(), Value::String(info.namespace.into()));
    map.insert(keys::VERSION.into(), Value::String(version.to_string()));
    map.insert(keys::DATA.into(), Value::Object(data));
    if !changed.is_empty() {
        map.insert(keys::CHANGES.into(), Value::Array(changed.into_iter().map(Value::String).collect()));
    }
    Value::Object(map)
}

/// An object sent as a plain JSON object of its fields.
pub trait PlainObject: Sized {
    /// The registry of every object of the schema.
    fn registry() -> &'static Registry;
    /// The object's descriptor.
    fn info() -> &'static ObjectInfo;
    /// Writes the fields.
    fn to_data(&self) -> Map<String, Value>;
    /// Reads the fields.
    fn from_data(data: &Map<String, Value>, path: &WirePath) -> Result<Self, WireError>;

    /// Reads the object from a JSON object, rejecting unknown fields unless
    /// the schema says readers tolerate them.
    fn from_json(value: &Value, path: &WirePath) -> Result<Self, WireError> {
        let data =
            value.as_object().ok_or_else(|| wrong_type(&format!("a {} object", Self::info().name), value, path))?;
        check_known_fields(Self::registry(), Self::info(), data, path)?;
        let mut data = data.clone();
        fill_defaults(Self::registry(), Self::info(), &mut data, Self::info().version, path)?;
        Self::from_data(&data, path)
    }
}
