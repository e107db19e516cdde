//! The published JSON Schema (2020-12) of the protocol: every named type,
//! every object in its wire form, and the params of every method and event, so third
//! parties can validate messages without reading our Rust.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value};

use crate::{
    ir::{JsonType, ObjectIr, ParamIr, SchemaIr, TypeExpr, WireForm},
    naming::{error_data_def, event_params_def, params_def, polymorphic_name, result_def},
};

/// Where the document is published; `$ref`s inside it are relative to this.
pub const SCHEMA_ID: &str = "https://vproto.dev/schema/vproto.schema.json";

/// Builds the JSON Schema document.
pub fn json_schema(ir: &SchemaIr) -> Value {
    json_schema_with(ir, definitions(ir, Refs::Defs))
}

/// The JSON Schema document around its definitions (`definitions(ir, Refs::Defs)`).
pub(crate) fn json_schema_with(ir: &SchemaIr, defs: Map<String, Value>) -> Value {
    let protocol = &ir.protocol;
    object([
        ("$schema", "https://json-schema.org/draft/2020-12/schema".into()),
        ("$id", SCHEMA_ID.into()),
        ("title", Value::String(format!("{} {}", protocol.name, protocol.version))),
        ("description", Value::String(protocol.description.into())),
        ("$defs", Value::Object(defs)),
    ])
}

/// Where the references of a document point, and so how its strings are written.
///
/// OpenRPC's `components.schemas` are the JSON Schema's `$defs` with every string value that
/// starts with `#/$defs/` (the references, and any text of the schema that happens to) starting
/// with `#/components/schemas/` instead. Building them directly that way, rather than copying and
/// rewriting the `$defs`, saves a pass over the biggest part of both documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refs {
    /// The JSON Schema's own `#/$defs/`.
    Defs,
    /// OpenRPC's `#/components/schemas/`.
    Components,
}

/// The prefix of a reference to a definition in the JSON Schema.
pub(crate) const DEFS: &str = "#/$defs/";
/// The prefix of a reference to a schema in the OpenRPC document.
pub(crate) const COMPONENTS: &str = "#/components/schemas/";

impl Refs {
    /// `{"$ref": ...}` to the definition `name`.
    fn reference(self, name: &str) -> Value {
        let prefix = match self {
            Refs::Defs => DEFS,
            Refs::Components => COMPONENTS,
        };
        object([("$ref", Value::String(format!("{prefix}{name}")))])
    }

    /// A string value of the document (with `Refs::Components`, one that starts with `#/$defs/`
    /// starts with `#/components/schemas/` instead).
    fn text(self, text: String) -> Value {
        match self {
            Refs::Components if text.starts_with(DEFS) => Value::String(format!("{COMPONENTS}{}", &text[DEFS.len()..])),
            _ => Value::String(text),
        }
    }

    /// A copy of a JSON value of the schema (a default) as the document holds it.
    fn value(self, value: &Value) -> Value {
        let mut value = value.clone();
        if self == Refs::Components {
            to_components(&mut value);
        }
        value
    }
}

/// Rewrites references to the JSON Schema's `$defs` into OpenRPC's `#/components/schemas/`, in
/// place: every string value (never a key) that starts with `#/$defs/`.
pub(crate) fn to_components(value: &mut Value) {
    match value {
        Value::String(text) if text.starts_with(DEFS) => text.replace_range(..DEFS.len(), COMPONENTS),
        Value::Array(items) => items.iter_mut().for_each(to_components),
        Value::Object(map) => map.values_mut().for_each(to_components),
        _ => {}
    }
}

/// The definitions of the JSON Schema document (its `$defs`), or with `Refs::Components` the
/// OpenRPC document's `components.schemas`.
///
/// Every value is built in place and moved into its parent: `json!` with an interpolated
/// `Value` copies it through `Serialize`, which for a schema of thousands of objects cost
/// most of the time.
pub(crate) fn definitions(ir: &SchemaIr, refs: Refs) -> Map<String, Value> {
    let objects = ir.objects.values().map(|object| (object.name.to_string(), object_schema(object, refs)));
    definitions_around(ir, refs, objects)
}

/// [`definitions`] for each of `refs`, on up to `threads` threads. The objects' definitions, most
/// of the work, are built in chunks that the threads take in turn, so a thread that allocates
/// more slowly (a new thread's allocator arena grows as it goes) does less of them.
pub(crate) fn definitions_on(ir: &SchemaIr, refs: &[Refs], threads: usize) -> Vec<Map<String, Value>> {
    /// Objects per chunk: small enough to share the work out evenly, big enough that taking a
    /// chunk costs nothing next to building it.
    const CHUNK: usize = 16;
    let objects: Vec<&ObjectIr> = ir.objects.values().collect();
    let chunks = objects.len().div_ceil(CHUNK);
    let tasks = refs.len() * chunks;
    let next = AtomicUsize::new(0);
    // Task `t` is chunk `t % chunks` for `refs[t / chunks]`.
    let work = || {
        let mut done = Vec::new();
        loop {
            let task = next.fetch_add(1, Ordering::Relaxed);
            if task >= tasks {
                return done;
            }
            let (refs, chunk) = (refs[task / chunks], task % chunks);
            let built: Vec<(String, Value)> = objects[chunk * CHUNK..objects.len().min((chunk + 1) * CHUNK)]
                .iter()
                .map(|object| (object.name.to_string(), object_schema(object, refs)))
                .collect();
            done.push((task, built));
        }
    };
    let mut built: Vec<Vec<(String, Value)>> = (0..tasks).map(|_| Vec::new()).collect();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.min(tasks)).map(|_| scope.spawn(work)).collect();
        let mut done = work();
        for helper in helpers {
            done.extend(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        for (task, objects) in done {
            built[task] = objects;
        }
    });
    let mut built = built.into_iter();
    refs.iter().map(|&refs| definitions_around(ir, refs, built.by_ref().take(chunks).flatten())).collect()
}

/// The definitions with `objects`, the objects' own in the schema's order, in their place.
fn definitions_around(ir: &SchemaIr, refs: Refs, objects: impl Iterator<Item = (String, Value)>) -> Map<String, Value> {
    let mut defs = Map::new();
    for named in ir.types.values() {
        let mut def = type_schema_in(named.schema, refs);
        annotate(&mut def, named.description, refs);
        if let Value::Object(map) = &mut def {
            map.insert("x-since".into(), refs.text(named.since.to_string()));
            if named.open {
                // Readers keep unknown values: the enum documents the known ones.
                let known = map.remove("enum").unwrap_or(Value::Null);
                map.insert("x-known-values".into(), known);
            }
        }
        defs.insert(named.name.into(), def);
    }
    for (name, def) in objects {
        defs.insert(name, def);
    }
    for (name, members) in &ir.polymorphic {
        let any_of: Vec<Value> = members.iter().map(|m| refs.reference(m)).collect();
        defs.insert(
            polymorphic_name(name),
            object([
                ("description", refs.text(format!("A {name} or any of its subclasses."))),
                ("anyOf", Value::Array(any_of)),
            ]),
        );
    }
    for error in &ir.errors {
        if let Some(data) = &error.data {
            let mut def = type_schema_in(data.schema, refs);
            annotate(&mut def, &format!("The data of the {} error ({}).", error.name, error.code), refs);
            defs.insert(error_data_def(error.name), def);
        }
    }
    for method in ir.services.iter().flat_map(|service| &service.methods) {
        let description = format!("The params of {}, by name.", method.wire_name);
        defs.insert(params_def(method.service, method.name), params_schema(&method.params, description, refs));
        if let Some(result) = &method.result {
            defs.insert(result_def(method.service, method.name), type_schema_in(result.schema, refs));
        }
    }
    for event in ir.services.iter().flat_map(|service| &service.events) {
        let description = format!("The params of the event {}, by name.", event.wire_name);
        defs.insert(event_params_def(event.service, event.name), params_schema(&event.params, description, refs));
    }
    defs
}

/// The params object of a method or event: each param by name, the required ones required,
/// no other member.
fn params_schema(params: &[ParamIr], description: String, refs: Refs) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for param in params {
        let mut def = type_schema_in(param.schema, refs);
        annotate(&mut def, param.description, refs);
        if let (Some(deprecated), Value::Object(map)) = (param.deprecated, &mut def) {
            map.insert("deprecated".into(), true.into());
            map.insert("x-deprecated-since".into(), refs.text(deprecated.to_string()));
        }
        properties.insert(param.wire_name.into(), def);
        if param.required {
            required.push(refs.text(param.wire_name.into()));
        }
    }
    object([
        ("description", refs.text(description)),
        ("type", "object".into()),
        ("properties", Value::Object(properties)),
        ("required", Value::Array(required)),
        ("additionalProperties", false.into()),
    ])
}

/// Of `components` (`components.schemas` of an OpenRPC or OpenAPI document), the schemas that
/// `roots` reach through `$ref`s, directly or through other schemas, in the map's order.
pub(crate) fn reachable_components(roots: &[Value], components: &Map<String, Value>) -> Map<String, Value> {
    fn references<'v>(value: &'v Value, found: &mut Vec<&'v str>) {
        match value {
            Value::Object(map) => {
                for (key, member) in map {
                    match (key.as_str(), member) {
                        ("$ref", Value::String(target)) => found.extend(target.strip_prefix(COMPONENTS)),
                        _ => references(member, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| references(item, found)),
            _ => {}
        }
    }
    let mut pending = Vec::new();
    roots.iter().for_each(|root| references(root, &mut pending));
    let mut reached = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if reached.insert(name) {
            if let Some(schema) = components.get(name) {
                references(schema, &mut pending);
            }
        }
    }
    components.iter().filter(|(name, _)| reached.contains(name.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A JSON object of these members.
pub(crate) fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map = Map::new();
    for (key, value) in members {
        map.insert(key.into(), value);
    }
    Value::Object(map)
}

fn annotate(def: &mut Value, description: &str, refs: Refs) {
    if let Some(object) = def.as_object_mut() {
        if !object.contains_key("$ref") && !description.is_empty() {
            object.insert("description".into(), refs.text(description.into()));
        }
    }
}

/// The JSON Schema of a type expression.
pub fn type_schema(expr: &TypeExpr) -> Value {
    type_schema_in(expr, Refs::Defs)
}

/// [`type_schema`] as a document with these references holds it.
pub(crate) fn type_schema_in(expr: &TypeExpr, refs: Refs) -> Value {
    if let Some(name) = expr.reference.as_deref().and_then(|r| r.strip_prefix("#/types/")) {
        return refs.reference(name);
    }
    if let Some(object) = &expr.object {
        return if expr.subclasses { refs.reference(&polymorphic_name(object)) } else { refs.reference(object) };
    }
    let mut out = Map::new();
    if let Some(json_type) = expr.json_type {
        let name = match json_type {
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
            JsonType::Array => "array",
            JsonType::Object => "object",
        };
        out.insert("type".into(), name.into());
    }
    if let Some(format) = &expr.format {
        out.insert("format".into(), refs.text(format.clone()));
    }
    if let Some(pattern) = &expr.pattern {
        out.insert("pattern".into(), refs.text(format!("^(?:{pattern})$")));
    }
    if let Some(values) = &expr.enum_values {
        out.insert("enum".into(), values.iter().map(|value| refs.text(value.clone())).collect());
    }
    let numbers = [
        ("minLength", expr.min_length.map(Value::from)),
        ("maxLength", expr.max_length.map(Value::from)),
        ("minimum", expr.minimum.map(Value::from)),
        ("maximum", expr.maximum.map(Value::from)),
        ("minItems", expr.min_items.map(Value::from)),
        ("maxItems", expr.max_items.map(Value::from)),
    ];
    for (keyword, value) in numbers {
        if let Some(value) = value {
            out.insert(keyword.into(), value);
        }
    }
    if let Some(items) = &expr.items {
        out.insert("items".into(), type_schema_in(items, refs));
    }
    if let Some(values) = &expr.additional_properties {
        out.insert("additionalProperties".into(), type_schema_in(values, refs));
    }
    Value::Object(out)
}

/// The JSON Schema of an object in its wire form, fields of every version included.
fn object_schema(object_def: &ObjectIr, refs: Refs) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in &object_def.fields {
        let mut def = type_schema_in(field.schema, refs);
        if field.nullable {
            def = object([("anyOf", Value::Array(vec![def, object([("type", "null".into())])]))]);
        }
        let mut annotated = Map::new();
        annotated.insert("description".into(), refs.text(field.description.into()));
        annotated.insert("x-since".into(), refs.text(format!("{} {}", field.owner, field.since)));
        if let Some(deprecated) = field.deprecated {
            // JSON Schema's own annotation, read by a compatibility policy that hides deprecated
            // output; the version says since when.
            annotated.insert("deprecated".into(), true.into());
            annotated.insert("x-deprecated-since".into(), refs.text(format!("{} {deprecated}", field.owner)));
        }
        if let Some(removed) = field.removed {
            annotated.insert("x-removed".into(), refs.text(format!("{} {removed}", field.owner)));
        }
        if let Some(default) = field.default {
            annotated.insert("default".into(), refs.value(default));
        }
        annotated.insert("allOf".into(), Value::Array(vec![def]));
        properties.insert(field.wire_name.into(), Value::Object(annotated));
        // Required on the wire only when every version carries it and nothing fills it in.
        if field.required && field.default.is_none() && field.in_every_version {
            required.push(refs.text(field.wire_name.into()));
        }
    }
    let history: Vec<Value> = object_def
        .history
        .iter()
        .map(|e| object([("version", refs.text(e.version.to_string())), ("note", refs.text(e.note.clone()))]))
        .collect();

    match object_def.wire {
        WireForm::Plain => object([
            ("description", refs.text(object_def.description.into())),
            ("x-history", Value::Array(history)),
            ("type", "object".into()),
            ("properties", Value::Object(properties)),
            ("required", Value::Array(required)),
            ("additionalProperties", object_def.tolerate_unknown_fields.into()),
        ]),
        WireForm::VersionedObject => {
            let versions: Vec<Value> = object_def.history.iter().map(|e| refs.text(e.version.to_string())).collect();
            let data = object([
                ("type", "object".into()),
                ("properties", Value::Object(properties)),
                ("required", Value::Array(required)),
            ]);
            let changes = object([("type", "array".into()), ("items", object([("type", "string".into())]))]);
            let required = [
                "versioned_object.name",
                "versioned_object.namespace",
                "versioned_object.version",
                "versioned_object.data",
            ];
            object([
                ("description", refs.text(object_def.description.into())),
                ("x-history", Value::Array(history)),
                ("type", "object".into()),
                (
                    "properties",
                    object([
                        ("versioned_object.name", object([("const", refs.text(object_def.name.into()))])),
                        ("versioned_object.namespace", object([("const", refs.text(object_def.namespace.into()))])),
                        ("versioned_object.version", object([("enum", Value::Array(versions))])),
                        ("versioned_object.data", data),
                        ("versioned_object.changes", changes),
                    ]),
                ),
                ("required", required.into_iter().map(Value::from).collect()),
                ("additionalProperties", false.into()),
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_do_not_depend_on_the_number_of_threads_and_components_are_the_rewritten_defs() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/vproto.json");
        let schema = crate::load_schema(&path).unwrap_or_else(|d| panic!("the project's schema: {d}"));
        let ir = SchemaIr::new(&schema);
        let defs = definitions(&ir, Refs::Defs);
        let mut rewritten = Value::Object(defs.clone());
        to_components(&mut rewritten);
        assert_eq!(Value::Object(definitions(&ir, Refs::Components)), rewritten);
        for threads in [1, 2, 3, 7, 1000] {
            let built = definitions_on(&ir, &[Refs::Defs, Refs::Components, Refs::Defs], threads);
            assert!(built[0] == defs && built[2] == defs, "{threads} threads differ");
            assert!(Value::Object(built[1].clone()) == rewritten, "{threads} threads differ");
        }
    }
}
