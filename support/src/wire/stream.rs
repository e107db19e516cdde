//! Writing versioned objects straight to JSON text, converting on the way.
//!
//! [`VersionedObject::to_primitive`](super::VersionedObject::to_primitive)
//! builds a `serde_json::Value` tree and converts it; this writes the same
//! JSON (same keys, same order, same bytes as `serde_json::to_string` of that
//! tree) without the intermediate tree. The conversion rules are shared with
//! `convert.rs` ([`lineage`], [`child_target`]); only where they are applied
//! differs.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use super::{
    convert::{child_target, lineage, Manifest},
    FieldInfo, ObjectInfo, Registry, Version, WireError, WirePath,
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

/// Appends `text` as a JSON string, escaped exactly as `serde_json` escapes it.
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    // Names, versions and most values need no escaping: copy them as they are.
    if !needs_escape(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
    }
}

/// Whether `bytes` hold a control character, `"` or `\\` (what JSON strings escape),
/// checked eight bytes at a time.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is below `n` (n <= 128) exactly when this sets its high bit.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH != 0;
    let has = |x: u64, byte: u8| below(x ^ (ONES * u64::from(byte)), 1);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if below(x, 0x20) || has(x, b'"') || has(x, b'\\') {
            return true;
        }
    }
    chunks.remainder().iter().any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
}

/// Appends a field name as a JSON string. Field names need no escaping: the schema checker
/// admits only lower_snake_case ASCII (`check.rs`, `is_field_name`).
fn write_field_name(out: &mut Vec<u8>, name: &str) {
    debug_assert!(!needs_escape(name.as_bytes()), "field names never need escaping");
    out.reserve(name.len() + 3);
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// Appends a version as a JSON string, `"MAJOR.MINOR"`.
fn write_version(out: &mut Vec<u8>, version: Version) {
    let mut digits = itoa::Buffer::new();
    out.push(b'"');
    out.extend_from_slice(digits.format(version.major).as_bytes());
    out.push(b'.');
    out.extend_from_slice(digits.format(version.minor).as_bytes());
    out.push(b'"');
}

impl StreamValue for String {
    fn write_json(&self, out: &mut Vec<u8>, _: Option<Version>, _: &StreamContext<'_>) -> Result<(), WireError> {
        write_json_str(out, self);
        Ok(())
    }
}

impl StreamValue for i64 {
    fn write_json(&self, out: &mut Vec<u8>, _: Option<Version>, _: &StreamContext<'_>) -> Result<(), WireError> {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
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
///
/// An envelope runs the generated field list twice: first probing, which decides for each
/// field whether it exists at the target (and at which version its children are written),
/// since `versioned_object.changes`, listing the fields written, comes first; then writing
/// straight into the output by those decisions, so nested objects are never buffered and
/// copied and the schema is searched once per field.
pub struct FieldSink<'a, 'c> {
    mode: Mode<'a>,
    lineage: &'a [(&'static ObjectInfo, Version)],
    convert: bool,
    ctx: &'a StreamContext<'c>,
}

enum Mode<'a> {
    /// Deciding, field by field, in call order.
    Probe(&'a mut Steps),
    /// Writing by the probe's decisions (`steps`, in the same call order).
    Write { out: &'a mut Vec<u8>, steps: std::slice::Iter<'a, Step>, written: usize },
}

/// The probe's decisions for one object: on the stack for objects of up to 24 set fields.
type Steps = SmallVec<[Step; 24]>;

/// What the probe decided for one call of [`FieldSink::field`].
#[derive(Clone, Copy)]
struct Step {
    name: &'static str,
    /// Whether the field exists at the target version.
    write: bool,
    /// The version its object value is written at (`None`: the value's own choice).
    child_version: Option<Version>,
}

impl<'a, 'c> FieldSink<'a, 'c> {
    /// Writes the field when it is set (see [`FieldSink::field`]).
    pub fn optional_field<T: StreamValueDyn>(
        &mut self,
        owner: &'static ObjectInfo,
        index: usize,
        value: Option<&T>,
    ) -> Result<(), WireError> {
        match value {
            Some(value) => self.field(owner, index, value),
            None => Ok(()),
        }
    }

    /// Writes `name: value` for field `owner.fields[index]` (`owner` being the object or the
    /// base that declares it) unless the field does not exist at the target version.
    pub fn field(
        &mut self,
        owner: &'static ObjectInfo,
        index: usize,
        value: &dyn StreamValueDyn,
    ) -> Result<(), WireError> {
        let field = &owner.fields[index];
        let name = field.name;
        match &mut self.mode {
            Mode::Probe(steps) => {
                let step = decide(self.lineage, self.convert, self.ctx, owner, field, value)?;
                steps.push(step);
            }
            Mode::Write { out, steps, written } => {
                let step = match steps.next() {
                    Some(step) => *step,
                    // Not probed (a plain object): nothing converts, everything is written.
                    None => Step { name, write: true, child_version: None },
                };
                debug_assert_eq!(step.name, name, "the field list runs in the same order twice");
                if step.write {
                    if *written > 0 {
                        out.push(b',');
                    }
                    write_field_name(out, name);
                    out.push(b':');
                    value.dyn_write_json(out, step.child_version, self.ctx)?;
                    *written += 1;
                }
            }
        }
        Ok(())
    }
}

/// Whether `field` of `owner` exists at the target, and the version its object value is written at.
fn decide(
    lineage: &[(&'static ObjectInfo, Version)],
    convert: bool,
    ctx: &StreamContext<'_>,
    owner: &'static ObjectInfo,
    field: &'static FieldInfo,
    value: &dyn StreamValueDyn,
) -> Result<Step, WireError> {
    let name = field.name;
    let skip = Step { name, write: false, child_version: None };
    if !convert {
        return Ok(Step { write: true, ..skip });
    }
    // The owner's version in this conversion; an owner outside the lineage is not carried.
    let Some(&(_, version)) = lineage.iter().find(|(object, _)| std::ptr::eq(*object, owner)) else {
        return Ok(skip);
    };
    if !field.exists_at(version) {
        return Ok(skip);
    }
    let child_version = match (field.child, value.dyn_object_name()) {
        (Some(child), Some(concrete)) => child_target(ctx.registry, child, concrete, version, ctx.manifest, &|| {
            WirePath::root().field(owner.name).field(name)
        })?,
        _ => None,
    };
    Ok(Step { name, write: true, child_version })
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
    fields: impl Fn(&mut FieldSink<'_, '_>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    out.push(b'{');
    let mode = Mode::Write { out: &mut *out, steps: [].iter(), written: 0 };
    fields(&mut FieldSink { mode, lineage: &[], convert: false, ctx })?;
    out.push(b'}');
    Ok(())
}

/// Writes `"versioned_object.changes":[...],` (nothing when empty): the fields written, in name
/// order and once each, that `changes` lists (all fields written when it is `None`). Steps come
/// in name order, as generated code calls the fields.
fn write_changes(out: &mut Vec<u8>, steps: &[Step], changes: Option<&[String]>) {
    let mut written = 0;
    let mut write = |name: &str| {
        out.extend_from_slice(if written == 0 { b"\"versioned_object.changes\":[" } else { b"," });
        write_field_name(out, name);
        written += 1;
    };
    let written_steps = steps.iter().filter(|step| step.write);
    match changes {
        None => written_steps.for_each(|step| write(step.name)),
        // Sorted (as this crate writes them): one merge of the two lists.
        Some(changes) if changes.is_sorted() => {
            let mut listed = changes.iter().map(String::as_str).peekable();
            for step in written_steps {
                while listed.next_if(|name| *name < step.name).is_some() {}
                if listed.peek() == Some(&step.name) {
                    write(step.name);
                }
            }
        }
        Some(changes) => {
            let is_written =
                |name: &str| steps.binary_search_by(|step| step.name.cmp(name)).is_ok_and(|at| steps[at].write);
            let mut changed: Vec<&str> = changes.iter().map(String::as_str).filter(|name| is_written(name)).collect();
            changed.sort_unstable();
            changed.dedup();
            changed.into_iter().for_each(write);
        }
    }
    if written > 0 {
        out.extend_from_slice(b"],");
    }
}

/// Writes an object's envelope at `target` (its current version when `None`):
/// `changes`, `data`, `name`, `namespace`, `version`, in that (sorted) order.
pub fn write_envelope(
    out: &mut Vec<u8>,
    info: &'static ObjectInfo,
    target: Option<Version>,
    changes: Option<&[String]>,
    ctx: &StreamContext<'_>,
    fields: impl Fn(&mut FieldSink<'_, '_>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let version = target.unwrap_or(info.version);
    let path = || WirePath::root().field(info.name);
    if !info.versions.contains(&version) {
        super::value::check_version(info, version, &path())?;
    }
    // oslo converts whenever the version differs or a manifest is given.
    let convert = version != info.version || ctx.manifest.is_some();
    let lineage = if convert { lineage(ctx.registry, info, version, &path)? } else { Vec::new() };
    let mut steps = Steps::new();
    fields(&mut FieldSink { mode: Mode::Probe(&mut steps), lineage: &lineage, convert, ctx })?;
    out.push(b'{');
    write_changes(out, &steps, changes);
    out.extend_from_slice(b"\"versioned_object.data\":{");
    let mode = Mode::Write { out: &mut *out, steps: steps.iter(), written: 0 };
    fields(&mut FieldSink { mode, lineage: &lineage, convert, ctx })?;
    out.extend_from_slice(b"},\"versioned_object.name\":");
    write_json_str(out, info.name);
    out.extend_from_slice(b",\"versioned_object.namespace\":");
    write_json_str(out, info.namespace);
    out.extend_from_slice(b",\"versioned_object.version\":");
    write_version(out, version);
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_does() {
        let mut samples: Vec<String> = vec![String::new(), "plain".into(), "é and 漢字".into(), "x".repeat(40)];
        for byte in 0u8..=0x7f {
            for at in [0, 3, 7, 8, 9, 15, 16, 20] {
                let mut text = "abcdefghijklmnopqrstuvwxyz".to_string();
                text.insert(at, byte as char);
                samples.push(text);
            }
        }
        for text in samples {
            let mut ours = Vec::new();
            write_json_str(&mut ours, &text);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }
}
