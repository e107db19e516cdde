//! The Rust text of each object: its struct, its `ObjectInfo` descriptor and its wire
//! impls, written straight into a `String` in rustfmt's layout.
//!
//! Objects are the bulk of a large schema, and every object has the same shape, so they are
//! written as text rather than built as token streams and printed with `prettyplease` (the
//! rest of the module is): at 2,000 objects, tokens → `syn` → `prettyplease` took seconds,
//! this takes milliseconds. The text is still checked: the generated crate is compiled and
//! tested, and `cargo xtask codegen --check` compares it byte for byte.

use std::fmt::Write;

use super::ChecksTable;
use crate::{
    ir::{FieldIr, ObjectIr, RustType, SchemaIr, Version, WireForm},
    naming::{field_ident, info_ident},
    rust_syntax::type_text,
};

/// Writes Rust text for objects, with the path of the wire support module (`vproto_support::wire`).
pub(super) struct ObjectWriter<'a> {
    pub(super) ir: &'a SchemaIr<'a>,
    pub(super) wire: &'a str,
    /// The path of the builder derive, re-exported by the support crate.
    pub(super) builder_crate: &'a str,
    pub(super) checks: &'a ChecksTable<'a>,
}

/// Appends formatted text; writing to a `String` cannot fail.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {
        $out.write_fmt(format_args!($($arg)*)).expect("writing to a String")
    };
}

impl ObjectWriter<'_> {
    /// Appends everything generated for `object`.
    pub(super) fn write(&self, out: &mut String, object: &ObjectIr) {
        self.write_struct(out, object);
        self.write_info(out, object);
        self.write_impls(out, object);
    }

    /// The struct, with a compile-time checked builder (bon's, through the support crate): a
    /// required field must be set, an optional one may be, a field with a schema default gets it,
    /// and the envelope's bookkeeping (`obj_changes`) is never the caller's to write.
    fn write_struct(&self, out: &mut String, object: &ObjectIr) {
        write_doc(out, "", &object_doc(object));
        let bon = self.builder_crate;
        put!(
            out,
            "#[derive(Clone, Debug, PartialEq, {bon}::Builder)]\n#[builder(crate = {bon}, on(String, into))]\npub struct {} {{\n",
            object.name
        );
        for field in object.current_fields() {
            write_doc(out, "    ", &field_doc(field));
            // An optional field left unset stays unset (its readers apply the default).
            if let (Some(default), false) = (field.default, matches!(field.rust_type, RustType::Optional(_))) {
                let json = default.to_string();
                put!(out, "    #[builder(default = {}::field_default({json:?}))]\n", self.wire);
            }
            put!(out, "    pub {}: {},\n", field_ident(field.name), type_text(&field.rust_type));
        }
        if object.wire == WireForm::VersionedObject {
            out.push_str(concat!(
                "    /// The fields the sender marked as changed (`versioned_object.changes`);\n",
                "    /// `None` counts every set field, as for a newly built object.\n",
                "    #[builder(skip)]\n",
                "    pub obj_changes: Option<Vec<String>>,\n",
            ));
        }
        out.push_str("}\n");
    }

    fn version(&self, version: Version) -> String {
        format!("{}::Version::new({}, {})", self.wire, version.major, version.minor)
    }

    fn version_pairs(&self, pairs: &indexmap::IndexMap<Version, Version>) -> String {
        let pairs: Vec<String> =
            pairs.iter().map(|(from, to)| format!("({}, {})", self.version(*from), self.version(*to))).collect();
        format!("&[{}]", pairs.join(", "))
    }

    fn write_info(&self, out: &mut String, object: &ObjectIr) {
        let (wire, name) = (self.wire, object.name);
        let wire_form = match object.wire {
            WireForm::VersionedObject => "VersionedObject",
            WireForm::Plain => "Plain",
        };
        let versions: Vec<String> = object.history.iter().map(|entry| self.version(entry.version)).collect();
        put!(out, "/// How {name} converts between versions.\n");
        put!(out, "pub static {}: {wire}::ObjectInfo = {wire}::ObjectInfo {{\n", info_ident(name));
        put!(out, "    name: {name:?},\n");
        put!(out, "    namespace: {:?},\n", object.namespace);
        put!(out, "    wire: {wire}::WireForm::{wire_form},\n");
        put!(out, "    version: {},\n", self.version(object.version));
        put!(out, "    versions: &[{}],\n", versions.join(", "));
        if object.declared_fields().next().is_none() {
            out.push_str("    fields: &[],\n");
        } else {
            out.push_str("    fields: &[\n");
            for field in object.declared_fields() {
                put!(out, "        {wire}::FieldInfo::new({:?}, {})", field.wire_name, self.version(field.since));
                if let Some(removed) = field.removed {
                    put!(out, ".removed({})", self.version(removed));
                }
                if let Some(default) = field.default {
                    put!(out, ".default({:?})", default.to_string());
                }
                if let Some(child) = &field.child {
                    let pins = self.version_pairs(child.versions);
                    put!(out, ".child({:?}, {}, {pins})", child.object, child.polymorphic);
                }
                out.push_str(",\n");
            }
            out.push_str("    ],\n");
        }
        match object.extends {
            Some(extends) => put!(
                out,
                "    base: Some({wire}::BaseInfo {{ object: {:?}, versions: {} }}),\n",
                extends.object,
                self.version_pairs(&extends.versions)
            ),
            None => out.push_str("    base: None,\n"),
        }
        put!(out, "    tolerate_unknown_fields: {},\n}};\n", object.tolerate_unknown_fields);
    }

    fn write_impls(&self, out: &mut String, object: &ObjectIr) {
        let (wire, name) = (self.wire, object.name);
        let info = info_ident(name);
        let versioned = object.wire == WireForm::VersionedObject;
        let allow_empty = if object.current_fields().next().is_none() {
            "#[allow(unused_mut, unused_variables, clippy::let_and_return)]\n"
        } else {
            ""
        };
        let (trait_name, target, build_end) = if versioned {
            ("VersionedObject", "target", "            obj_changes: None,\n")
        } else {
            ("PlainObject", "_target", "")
        };
        put!(out, "{allow_empty}impl {wire}::{trait_name} for {name} {{\n");
        put!(out, "    fn registry() -> &'static {wire}::Registry {{\n        &REGISTRY\n    }}\n");
        put!(out, "    fn info() -> &'static {wire}::ObjectInfo {{\n        &{info}\n    }}\n");
        out.push_str("    fn to_data(&self) -> serde_json::Map<String, serde_json::Value> {\n");
        out.push_str("        let mut data = serde_json::Map::new();\n");
        for field in object.current_fields() {
            let ident = field_ident(field.name);
            if field.required {
                put!(
                    out,
                    "        data.insert({:?}.into(), {wire}::WireValue::to_wire(&self.{ident}));\n",
                    field.wire_name
                );
            } else {
                put!(
                    out,
                    "        {wire}::insert_optional(&mut data, {:?}, self.{ident}.as_ref());\n",
                    field.wire_name
                );
            }
        }
        out.push_str("        data\n    }\n");
        put!(out, "    fn from_data(\n        data: &serde_json::Map<String, serde_json::Value>,\n");
        put!(out, "        path: &{wire}::WirePath,\n    ) -> Result<Self, {wire}::WireError> {{\n");
        out.push_str("        Ok(Self {\n");
        for field in object.current_fields() {
            put!(out, "            {}: {},\n", field_ident(field.name), self.read_field(object, field));
        }
        put!(out, "{build_end}        }})\n    }}\n");
        if versioned {
            out.push_str(concat!(
                "    fn changes(&self) -> Option<&[String]> {\n        self.obj_changes.as_deref()\n    }\n",
                "    fn set_changes(&mut self, changes: Option<Vec<String>>) {\n",
                "        self.obj_changes = changes;\n    }\n",
            ));
        }
        out.push_str("}\n");

        put!(out, "impl {wire}::StreamValue for {name} {{\n");
        if !allow_empty.is_empty() {
            put!(out, "    {allow_empty}");
        }
        put!(out, "    fn write_json(\n        &self,\n        out: &mut Vec<u8>,\n");
        put!(out, "        {target}: Option<{wire}::Version>,\n        ctx: &{wire}::StreamContext<'_>,\n");
        put!(out, "    ) -> Result<(), {wire}::WireError> {{\n");
        if versioned {
            put!(
                out,
                "        {wire}::write_envelope(out, &{info}, target, self.obj_changes.as_deref(), ctx, |sink| {{\n"
            );
        } else {
            put!(out, "        {wire}::write_plain(out, ctx, |sink| {{\n");
        }
        let mut sorted: Vec<&FieldIr> = object.current_fields().collect();
        // Written in the order of their wire names, as a JSON map of the fields sorts them.
        sorted.sort_by_key(|field| field.wire_name);
        for field in sorted {
            // The field's descriptor, by its owner (this object or a base) and position there.
            let (owner, index) = (info_ident(field.owner), field.index);
            let ident = field_ident(field.name);
            if field.required {
                put!(out, "            sink.field(&{owner}, {index}, &self.{ident})?;\n");
            } else {
                put!(out, "            sink.optional_field(&{owner}, {index}, self.{ident}.as_ref())?;\n");
            }
        }
        out.push_str("            Ok(())\n        })\n    }\n");
        if versioned {
            put!(out, "    fn object_name(&self) -> Option<&'static str> {{\n        Some({name:?})\n    }}\n");
        }
        out.push_str("}\n");

        let (from_wire, to_wire) = if versioned {
            (
                format!("<Self as {wire}::VersionedObject>::from_primitive_at(value, path)"),
                format!("{wire}::VersionedObject::to_current_primitive(self)"),
            )
        } else {
            (
                format!("<Self as {wire}::PlainObject>::from_json(value, path)"),
                format!("serde_json::Value::Object({wire}::PlainObject::to_data(self))"),
            )
        };
        put!(out, "impl {wire}::WireValue for {name} {{\n");
        put!(out, "    fn from_wire(\n        value: &serde_json::Value,\n        path: &{wire}::WirePath,\n");
        put!(out, "    ) -> Result<Self, {wire}::WireError> {{\n        {from_wire}\n    }}\n");
        put!(out, "    fn to_wire(&self) -> serde_json::Value {{\n        {to_wire}\n    }}\n}}\n");
    }

    /// Appends `REGISTRY`, every object's descriptor, and `convert_primitive`, which converts
    /// a primitive of any versioned object.
    pub(super) fn write_registry(&self, out: &mut String) {
        let wire = self.wire;
        let has_removed = self.ir.objects.values().any(|object| object.declared_fields().any(|f| f.removed.is_some()));
        out.push_str("/// Every object of the schema, sorted by name.\n");
        put!(out, "pub static REGISTRY: {wire}::Registry = {wire}::Registry {{\n    objects: &[\n");
        for name in self.ir.objects.keys() {
            put!(out, "        &{},\n", info_ident(name));
        }
        put!(out, "    ],\n    has_removed_fields: {has_removed},\n}};\n");
        put!(
            out,
            r#"/// Reads a `versioned_object` primitive of any object at any known
/// version, validates it, and writes it at `target` (default: the
/// object's current version), converting children by their pins or
/// by `manifest`.
pub fn convert_primitive(
    value: &serde_json::Value,
    target: Option<{wire}::Version>,
    manifest: Option<&{wire}::Manifest>,
) -> Result<serde_json::Value, {wire}::WireError> {{
    use {wire}::VersionedObject;
    let (envelope, _) = {wire}::Envelope::parse(value, &REGISTRY, &{wire}::WirePath::root())?;
    match envelope.name {{
"#
        );
        for object in self.ir.versioned_objects() {
            let name = object.name;
            put!(out, "        {name:?} => {{\n");
            put!(
                out,
                "            let text = {wire}::to_json_string(&{name}::from_primitive(value)?, target, manifest)?;\n"
            );
            out.push_str(
                "            Ok(serde_json::from_str(&text).expect(\"the writer writes valid JSON\"))\n        }\n",
            );
        }
        put!(
            out,
            r#"        other => Err({wire}::WireError::UnknownObject {{
            path: {wire}::WirePath::root(),
            name: other.to_string(),
            expected: String::new(),
        }}),
    }}
}}
"#
        );
    }

    /// The reading expression of one field in `from_data`.
    fn read_field(&self, object: &ObjectIr, field: &FieldIr) -> String {
        let wire = self.wire;
        let ty = if field.nullable {
            RustType::Optional(Box::new(field.value_type.clone()))
        } else {
            field.value_type.clone()
        };
        let ty = type_text(&ty);
        let checks = self.checks.reference_text(field, wire);
        let name = field.wire_name;
        if field.required {
            format!("{wire}::read_required::<{ty}>(data, {:?}, {name:?}, {checks}, path)?", object.name)
        } else {
            format!("{wire}::read_optional::<{ty}>(data, {name:?}, {checks}, path)?")
        }
    }
}

/// Writes `text` as `///` lines at `indent`.
fn write_doc(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            put!(out, "{indent}///\n");
        } else {
            put!(out, "{indent}/// {line}\n");
        }
    }
}

fn object_doc(object: &ObjectIr) -> String {
    let mut text = object.description.to_string();
    let wire_form = match object.wire {
        WireForm::VersionedObject => "`versioned_object` envelope",
        WireForm::Plain => "plain JSON object",
    };
    put!(text, "\n\nWire form: {wire_form}. Current version: {}.", object.version);
    if let Some(extends) = object.extends {
        put!(text, " Extends {}.", extends.object);
    }
    if let Some(deprecation) = object.deprecated {
        put!(text, "\n\nDeprecated since {}: {}", deprecation.since, deprecation.note);
    }
    text.push_str("\n\nVersion history:");
    for entry in object.history {
        put!(text, "\n- {}: {}", entry.version, entry.note);
    }
    text
}

fn field_doc(field: &FieldIr) -> String {
    let mut text = format!("{}\n\nSince {} {}.", field.description, field.owner, field.since);
    if let Some(deprecated) = field.deprecated {
        put!(text, " Deprecated since {} {deprecated}.", field.owner);
    }
    if field.nullable {
        text.push_str(" May be null.");
    }
    if !field.required {
        text.push_str(" May be left unset.");
    }
    if let Some(default) = field.default {
        put!(text, " Default: `{default}`.");
    }
    text
}
