//! Version conversion of wire data, driven by [`ObjectInfo`] tables.
//!
//! Converting down (backporting) follows oslo.versionedobjects: fields added
//! after the target version are dropped, base-class fields follow the base
//! version the subclass version carries, and child objects are converted to
//! the version pinned for the parent's version (`child_versions`, oslo's
//! `obj_relationships`) or named by a version manifest. Converting up fills
//! in defaults for fields added since the data's version.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{
    keys, mapped_version,
    value::{check_version, Envelope},
    ChildInfo, FieldInfo, ObjectInfo, Registry, Version, WireError, WirePath,
};

/// A version manifest: the version each object should be sent at, by name,
/// as oslo's `obj_to_primitive(version_manifest=...)` takes it.
pub type Manifest = BTreeMap<String, Version>;

/// The object and each of its bases, with the version of each that applies at `version`.
pub(crate) fn lineage(
    registry: &Registry,
    info: &'static ObjectInfo,
    version: Version,
    path: &dyn Fn() -> WirePath,
) -> Result<Vec<(&'static ObjectInfo, Version)>, WireError> {
    let mut chain = vec![(info, version)];
    let (mut current, mut at) = (info, version);
    while let Some(base) = current.base {
        let base_info = registry.get(base.object).ok_or_else(|| WireError::Conversion {
            path: path(),
            why: format!("{} extends {}, which is not registered", current.name, base.object),
        })?;
        at = mapped_version(base.versions, at).ok_or_else(|| WireError::Conversion {
            path: path(),
            why: format!("{} {at} carries no version of {}", current.name, base.object),
        })?;
        chain.push((base_info, at));
        current = base_info;
    }
    Ok(chain)
}

/// The version of base `base` that `info` at `version` carries, walking up its bases
/// (as [`lineage`] does, without building the chain); `None` if `base` is not among them.
fn base_version_at(registry: &Registry, info: &'static ObjectInfo, version: Version, base: &str) -> Option<Version> {
    let (mut current, mut at) = (info, version);
    loop {
        if current.name == base {
            return Some(at);
        }
        let extends = current.base?;
        at = mapped_version(extends.versions, at)?;
        current = registry.get(extends.object)?;
    }
}

fn parse_default(field: &FieldInfo, owner: &ObjectInfo, path: &WirePath) -> Result<Value, WireError> {
    let text = field.default.unwrap_or("null");
    serde_json::from_str(text).map_err(|error| WireError::Conversion {
        path: path.clone(),
        why: format!("the default of {}.{} is not JSON: {error}", owner.name, field.name),
    })
}

/// Fills in the default of every absent field that has one: fields added
/// after `version` (upgrading old data) and fields the sender left unset.
pub fn fill_defaults(
    registry: &Registry,
    info: &'static ObjectInfo,
    data: &mut Map<String, Value>,
    version: Version,
    path: &WirePath,
) -> Result<(), WireError> {
    for (object, _) in lineage(registry, info, version, &|| path.clone())? {
        for field in object.fields {
            if field.removed.is_none() && field.default.is_some() && !data.contains_key(field.name) {
                data.insert(field.name.into(), parse_default(field, object, path)?);
            }
        }
    }
    Ok(())
}

/// Converts the fields of `info` in `data` (written at the current version)
/// down to `target`.
pub(crate) fn backport_data(
    registry: &Registry,
    info: &'static ObjectInfo,
    data: &mut Map<String, Value>,
    target: Version,
    manifest: Option<&Manifest>,
    path: &WirePath,
) -> Result<(), WireError> {
    for (object, version) in lineage(registry, info, target, &|| path.clone())? {
        for field in object.fields {
            if !field.exists_at(version) {
                data.remove(field.name);
                continue;
            }
            if field.removed.is_some() && !data.contains_key(field.name) && field.default.is_some() {
                data.insert(field.name.into(), parse_default(field, object, path)?);
            }
            let Some(child) = field.child else { continue };
            let Some(value) = data.get_mut(field.name) else { continue };
            let field_path = path.field(field.name);
            convert_children(registry, child, version, value, manifest, &field_path)?;
        }
    }
    Ok(())
}

/// Converts every child envelope in `value` (an envelope, or an array or map of them).
fn convert_children(
    registry: &Registry,
    child: ChildInfo,
    owner_version: Version,
    value: &mut Value,
    manifest: Option<&Manifest>,
    path: &WirePath,
) -> Result<(), WireError> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => items.iter_mut().enumerate().try_for_each(|(index, item)| {
            convert_children(registry, child, owner_version, item, manifest, &path.index(index))
        }),
        Value::Object(map) if !map.contains_key(keys::NAME) => map.iter_mut().try_for_each(|(key, item)| {
            convert_children(registry, child, owner_version, item, manifest, &path.key(key))
        }),
        Value::Object(_) => {
            let concrete = value.get(keys::NAME).and_then(Value::as_str).unwrap_or_default().to_string();
            let Some(to) = child_target(registry, child, &concrete, owner_version, manifest, &|| path.clone())? else {
                return Ok(());
            };
            backport_envelope(registry, value, to, manifest, path)
        }
        other => Err(WireError::WrongType {
            path: path.clone(),
            expected: format!("a {} object", child.object),
            found: super::error::json_kind(other),
        }),
    }
}

/// The version a child object is converted to, or `None` to leave it as it is.
pub(crate) fn child_target(
    registry: &Registry,
    child: ChildInfo,
    concrete: &str,
    owner_version: Version,
    manifest: Option<&Manifest>,
    path: &dyn Fn() -> WirePath,
) -> Result<Option<Version>, WireError> {
    if let Some(manifest) = manifest {
        // oslo looks up the declared object name; a manifest that names the
        // concrete subclass is more precise, so it wins.
        return Ok(manifest.get(concrete).or_else(|| manifest.get(child.object)).copied());
    }
    let Some(pinned) = mapped_version(child.versions, owner_version) else {
        return Ok(None);
    };
    if concrete == child.object {
        return Ok(Some(pinned));
    }
    // A subclass in a polymorphic field: its newest version whose base
    // version is not newer than the pinned base version.
    let info = registry.get(concrete).ok_or_else(|| WireError::UnknownObject {
        path: path(),
        name: concrete.into(),
        expected: format!(" (expected {} or a subclass)", child.object),
    })?;
    for &version in info.versions.iter().rev() {
        if base_version_at(registry, info, version, child.object).is_some_and(|base| base <= pinned) {
            return Ok(Some(version));
        }
    }
    Err(WireError::Conversion {
        path: path(),
        why: format!("no version of {concrete} carries {} {pinned} or older", child.object),
    })
}

/// Converts every envelope of object `name` inside `value` (`value` itself, or nested at any
/// depth in objects and arrays) to version `to`, as a client does after an UnsupportedVersion
/// error naming that object. Returns how many were converted; the first failure stops it.
pub fn backport_named(
    registry: &Registry,
    value: &mut Value,
    name: &str,
    to: Version,
    path: &WirePath,
) -> Result<usize, WireError> {
    if value.get(keys::NAME).and_then(Value::as_str) == Some(name) {
        backport_envelope(registry, value, to, None, path)?;
        return Ok(1);
    }
    let mut converted = 0;
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                converted += backport_named(registry, item, name, to, &path.field(key))?;
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                converted += backport_named(registry, item, name, to, &path.index(index))?;
            }
        }
        _ => {}
    }
    Ok(converted)
}

/// Converts one envelope in place to version `to` (down, or up by filling defaults).
pub fn backport_envelope(
    registry: &Registry,
    value: &mut Value,
    to: Version,
    manifest: Option<&Manifest>,
    path: &WirePath,
) -> Result<(), WireError> {
    let (envelope, info) = Envelope::parse(value, registry, path)?;
    check_version(info, to, path)?;
    let from = envelope.version;
    let mut data = envelope.data.clone();
    if to > from {
        fill_defaults(registry, info, &mut data, from, path)?;
    }
    if to != info.version || from != info.version || manifest.is_some() {
        backport_data(registry, info, &mut data, to, manifest, path)?;
    }
    let map = value.as_object_mut().expect("parsed as an envelope");
    if let Some(Value::Array(changes)) = map.get_mut(keys::CHANGES) {
        changes.retain(|name| name.as_str().is_some_and(|name| data.contains_key(name)));
        if changes.is_empty() {
            map.remove(keys::CHANGES);
        }
    }
    map.insert(keys::VERSION.into(), Value::String(to.to_string()));
    map.insert(keys::DATA.into(), Value::Object(data));
    Ok(())
}
