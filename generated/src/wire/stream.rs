//! Writing versioned objects straight to JSON text, converting on the way.
//!
//! [`VersionedObject::to_primitive`](super::VersionedObject::to_primitive)
//! builds a `serde_json::Value` tree and converts it; this writes the same
//! JSON (same keys, same order, same bytes as `serde_json::to_string` of that
//! tree) without the intermediate tree. The conversion rules are shared with
//! `convert.rs` ([`lineage`], [`child_target`]); only where they are applied
//! differs.

use std::collections::BTreeMap;

use super::{
    convert::{child_target, lineage, Manifest},
    ObjectInfo, Registry, Version, WireError, WirePath,
};

/// A value that can write itself as wire JSON.
pub trait StreamValue {
    /// Appends the value's JSON to `out`; objects are written at `target`
    /// (their current version when `None`).
    fn write_json(&self, out: &mut Vec<u8>, target: Option<Version>, ctx: &StreamContext<'_>) -> Result<(), WireError>;

    /// The registered name of the object held, for child-version lookups.
    fn object_name(&self) -> Option<&'static str> {
        None
    }
}

/// What a conversion needs while it writes.
pub struct StreamContext<'a> {
    /// Every object of the schema.
    pub registry: &'static Registry,
    /// The version manifest, if any.
    pub manifest: Option<&'a Manifest>,
}

/// Appends `text` as a JSON string.
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}

impl StreamValue for String {
    fn write_json(&self, out: &mut Vec<u8>, _: Option<Version>, _: &StreamContext<'_>) -> Result<(), WireError> {
        write_json_str(out, self);
        Ok(())
    }
}

impl StreamValue for i64 {
    fn write_json(&self, out: &mut Vec<u8>, _: Option<Version>, _: &StreamContext<'_>) -> Result<(), WireError> {
        out.extend_from_slice(self.to_string().as_bytes());
        Ok(())
    }
}

impl StreamValue for f64 {
    fn write_json(&self, out: &mut Vec<u8>, _: Option<Version>, _: &StreamContext<'_>) -> Result<(), WireError> {
        let value = serde_json::Number::from_f64(*self).map_or(serde_json::Value::Null, serde_json::Value::Number);
        serde_json::to_writer(&mut *out, &value).expect("writing to a Vec cannot fail");
        Ok(())
    }
}

impl StreamValue for bool {
    fn write_json(&self, out: &mut Vec<u8>, _: Option<Version>, _: &StreamContext<'_>) -> Result<(), WireError> {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
        Ok(())
    }
}

impl<T: StreamValue> StreamValue for Option<T> {
    fn write_json(&self, out: &mut Vec<u8>, target: Option<Version>, ctx: &StreamContext<'_>) -> Result<(), WireError> {
        match self {
            Some(value) => value.write_json(out, target, ctx),
            None => {
                out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }
    fn object_name(&self) -> Option<&'static str> {
        self.as_ref().and_then(T::object_name)
    }
}

impl<T: StreamValue> StreamValue for Box<T> {
    fn write_json(&self, out: &mut Vec<u8>, target: Option<Version>, ctx: &StreamContext<'_>) -> Result<(), WireError> {
        T::write_json(self, out, target, ctx)
    }
    fn object_name(&self) -> Option<&'static str> {
        T::object_name(self)
    }
}

impl<T: StreamValue> StreamValue for Vec<T> {
    fn write_json(&self, out: &mut Vec<u8>, target: Option<Version>, ctx: &StreamContext<'_>) -> Result<(), WireError> {
        out.push(b'[');
        for (index, item) in self.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            item.write_json(out, target, ctx)?;
        }
        out.push(b']');
        Ok(())
    }
    fn object_name(&self) -> Option<&'static str> {
        self.first().and_then(T::object_name)
    }
}

impl<T: StreamValue> StreamValue for BTreeMap<String, T> {
    fn write_json(&self, out: &mut Vec<u8>, target: Option<Version>, ctx: &StreamContext<'_>) -> Result<(), WireError> {
        out.push(b'{');
        for (index, (key, item)) in self.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_json_str(out, key);
            out.push(b':');
            item.write_json(out, target, ctx)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Collects the fields of one object's data while deciding, from the
/// schema, which exist at the target version and at which version each
/// child object is written. Generated code calls [`FieldSink::field`] for
/// every set field, in name order.
pub struct FieldSink<'a, 'c> {
    out: Vec<u8>,
    lineage: Vec<(&'static ObjectInfo, Version)>,
    convert: bool,
    ctx: &'a StreamContext<'c>,
    written: Vec<&'static str>,
}

impl<'a, 'c> FieldSink<'a, 'c> {
    /// Writes `name: value` when the field is set (see [`FieldSink::field`]).
    pub fn optional_field<T: StreamValueDyn>(
        &mut self,
        name: &'static str,
        value: Option<&T>,
    ) -> Result<(), WireError> {
        match value {
            Some(value) => self.field(name, value),
            None => Ok(()),
        }
    }

    /// Writes `name: value` unless the field does not exist at the target version.
    pub fn field(&mut self, name: &'static str, value: &dyn StreamValueDyn) -> Result<(), WireError> {
        let mut child_version = None;
        if self.convert {
            let Some((owner, version, field)) = self.lineage.iter().find_map(|(owner, version)| {
                owner.fields.iter().find(|f| f.name == name).map(|f| (*owner, *version, f))
            }) else {
                return Ok(());
            };
            if !field.exists_at(version) {
                return Ok(());
            }
            if let (Some(child), Some(concrete)) = (field.child, value.dyn_object_name()) {
                let path = WirePath::root().field(owner.name).field(name);
                child_version = child_target(self.ctx.registry, child, concrete, version, self.ctx.manifest, &path)?;
            }
        }
        if !self.written.is_empty() {
            self.out.push(b',');
        }
        write_json_str(&mut self.out, name);
        self.out.push(b':');
        value.dyn_write_json(&mut self.out, child_version, self.ctx)?;
        self.written.push(name);
        Ok(())
    }
}

/// [`StreamValue`] in a form usable as a trait object.
pub trait StreamValueDyn {
    /// See [`StreamValue::write_json`].
    fn dyn_write_json(
        &self,
        out: &mut Vec<u8>,
        target: Option<Version>,
        ctx: &StreamContext<'_>,
    ) -> Result<(), WireError>;
    /// See [`StreamValue::object_name`].
    fn dyn_object_name(&self) -> Option<&'static str>;
}

impl<T: StreamValue> StreamValueDyn for T {
    fn dyn_write_json(
        &self,
        out: &mut Vec<u8>,
        target: Option<Version>,
        ctx: &StreamContext<'_>,
    ) -> Result<(), WireError> {
        self.write_json(out, target, ctx)
    }
    fn dyn_object_name(&self) -> Option<&'static str> {
        self.object_name()
    }
}

/// Writes a plain object: its set fields, in name order, as one JSON object.
pub fn write_plain(
    out: &mut Vec<u8>,
    ctx: &StreamContext<'_>,
    fields: impl FnOnce(&mut FieldSink<'_, '_>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut sink =
        FieldSink { out: Vec::with_capacity(128), lineage: Vec::new(), convert: false, ctx, written: Vec::new() };
    fields(&mut sink)?;
    out.push(b'{');
    out.extend_from_slice(&sink.out);
    out.push(b'}');
    Ok(())
}

/// Writes an object's envelope at `target` (its current version when `None`):
/// `changes`, `data`, `name`, `namespace`, `version`, in that (sorted) order.
pub fn write_envelope(
    out: &mut Vec<u8>,
    info: &'static ObjectInfo,
    target: Option<Version>,
    changes: Option<&[String]>,
    ctx: &StreamContext<'_>,
    fields: impl FnOnce(&mut FieldSink<'_, '_>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let version = target.unwrap_or(info.version);
    let path = WirePath::root().field(info.name);
    super::value::check_version(info, version, &path)?;
    // oslo converts whenever the version differs or a manifest is given.
    let convert = version != info.version || ctx.manifest.is_some();
    let lineage = if convert { lineage(ctx.registry, info, version, &path)? } else { Vec::new() };
    let mut sink = FieldSink { out: Vec::with_capacity(256), lineage, convert, ctx, written: Vec::new() };
    fields(&mut sink)?;
    let mut changed: Vec<&str> = match changes {
        Some(changes) => changes.iter().map(String::as_str).filter(|name| sink.written.contains(name)).collect(),
        None => sink.written.clone(),
    };
    changed.sort_unstable();
    changed.dedup();
    out.push(b'{');
    if !changed.is_empty() {
        out.extend_from_slice(b"\"versioned_object.changes\":[");
        for (index, name) in changed.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_json_str(out, name);
        }
        out.extend_from_slice(b"],");
    }
    out.extend_from_slice(b"\"versioned_object.data\":{");
    out.extend_from_slice(&sink.out);
    out.extend_from_slice(b"},\"versioned_object.name\":");
    write_json_str(out, info.name);
    out.extend_from_slice(b",\"versioned_object.namespace\":");
    write_json_str(out, info.namespace);
    out.extend_from_slice(b",\"versioned_object.version\":");
    write_json_str(out, &version.to_string());
    out.push(b'}');
    Ok(())
}
