//! The published JSON Schema (2020-12) of the protocol: every named type,
//! every object in its wire form, and the params of every method, so third
//! parties can validate messages without reading our Rust.

use serde_json::{json, Map, Value};

use crate::{
    ir::{lineage, SchemaIr},
    model::{JsonType, Object, TypeExpr, WireForm},
};

/// Where the document is published; `$ref`s inside it are relative to this.
pub const SCHEMA_ID: &str = "https://vproto.dev/schema/vproto.schema.json";

/// The `$defs` key of a method's params object.
pub fn params_def(service: &str, method: &str) -> String {
    format!("{service}.{method}.params")
}

/// The `$defs` key of a method's result.
pub fn result_def(service: &str, method: &str) -> String {
    format!("{service}.{method}.result")
}

/// The `$defs` key of an error's data.
pub fn error_data_def(error: &str) -> String {
    format!("{error}.data")
}

/// Builds the JSON Schema document.
pub fn json_schema(ir: &SchemaIr) -> Value {
    let schema = ir.schema;
    let mut defs = Map::new();
    for (name, named) in &schema.types {
        let mut def = type_schema(&named.schema);
        annotate(&mut def, &named.description);
        def["x-since"] = json!(named.since.to_string());
        if named.open {
            // Readers keep unknown values: the enum documents the known ones.
            let known = def.as_object_mut().and_then(|d| d.remove("enum")).unwrap_or(Value::Null);
            def["x-known-values"] = known;
        }
        defs.insert(name.clone(), def);
    }
    for (name, object) in &schema.objects {
        defs.insert(name.clone(), object_schema(ir, name, object));
    }
    for (name, members) in &ir.polymorphic {
        let any_of: Vec<Value> = members.iter().map(|m| json!({"$ref": format!("#/$defs/{m}")})).collect();
        defs.insert(
            format!("Any{name}"),
            json!({"description": format!("A {name} or any of its subclasses."), "anyOf": any_of}),
        );
    }
    for (error_name, error) in &schema.errors {
        if let Some(data) = &error.data {
            let mut def = type_schema(data);
            annotate(&mut def, &format!("The data of the {error_name} error ({}).", error.code));
            defs.insert(error_data_def(error_name), def);
        }
    }
    for (service_name, service) in &schema.services {
        for (method_name, method) in &service.methods {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for (param_name, param) in &method.params {
                let mut def = type_schema(&param.schema);
                annotate(&mut def, &param.description);
                properties.insert(param_name.clone(), def);
                if param.required {
                    required.push(Value::String(param_name.clone()));
                }
            }
            defs.insert(
                params_def(service_name, method_name),
                json!({
                    "description": format!("The params of {service_name}.{method_name}, by name."),
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": false,
                }),
            );
            if let Some(result) = &method.result {
                defs.insert(result_def(service_name, method_name), type_schema(result));
            }
        }
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": format!("{} {}", schema.protocol.name, schema.protocol.version),
        "description": schema.protocol.description,
        "$defs": defs,
    })
}

fn annotate(def: &mut Value, description: &str) {
    if let Some(object) = def.as_object_mut() {
        if !object.contains_key("$ref") && !description.is_empty() {
            object.insert("description".into(), Value::String(description.into()));
        }
    }
}

/// The JSON Schema of a type expression.
pub fn type_schema(expr: &TypeExpr) -> Value {
    if let Some(name) = expr.reference.as_deref().and_then(|r| r.strip_prefix("#/types/")) {
        return json!({"$ref": format!("#/$defs/{name}")});
    }
    if let Some(object) = &expr.object {
        let target = if expr.subclasses { format!("Any{object}") } else { object.clone() };
        return json!({"$ref": format!("#/$defs/{target}")});
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
    let keywords: [(&str, Option<Value>); 9] = [
        ("format", expr.format.clone().map(Value::from)),
        ("pattern", expr.pattern.as_ref().map(|p| Value::from(format!("^(?:{p})$")))),
        ("enum", expr.enum_values.clone().map(Value::from)),
        ("minLength", expr.min_length.map(Value::from)),
        ("maxLength", expr.max_length.map(Value::from)),
        ("minimum", expr.minimum.map(Value::from)),
        ("maximum", expr.maximum.map(Value::from)),
        ("minItems", expr.min_items.map(Value::from)),
        ("maxItems", expr.max_items.map(Value::from)),
    ];
    for (keyword, value) in keywords {
        if let Some(value) = value {
            out.insert(keyword.into(), value);
        }
    }
    if let Some(items) = &expr.items {
        out.insert("items".into(), type_schema(items));
    }
    if let Some(values) = &expr.additional_properties {
        out.insert("additionalProperties".into(), type_schema(values));
    }
    Value::Object(out)
}

/// The JSON Schema of an object in its wire form, fields of every version included.
fn object_schema(ir: &SchemaIr, name: &str, object: &Object) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (owner, owner_object) in lineage(ir.schema, name).into_iter().rev() {
        let owner_first = owner_object.history.first().map(|e| e.version);
        for (field_name, field) in &owner_object.fields {
            let mut def = type_schema(&field.schema);
            if field.nullable {
                def = json!({"anyOf": [def, {"type": "null"}]});
            }
            let mut annotated = Map::new();
            annotated.insert("description".into(), Value::String(field.description.clone()));
            annotated.insert("x-since".into(), json!(format!("{owner} {}", field.since)));
            if let Some(removed) = field.removed {
                annotated.insert("x-removed".into(), json!(format!("{owner} {removed}")));
            }
            if let Some(default) = &field.default {
                annotated.insert("default".into(), default.clone());
            }
            annotated.insert("allOf".into(), json!([def]));
            properties.insert(field_name.clone(), Value::Object(annotated));
            // Required on the wire only when every version carries it and nothing fills it in.
            let always = Some(field.since) == owner_first && field.removed.is_none();
            if field.required && field.default.is_none() && always {
                required.push(Value::String(field_name.clone()));
            }
        }
    }
    let history: Vec<Value> =
        object.history.iter().map(|e| json!({"version": e.version.to_string(), "note": e.note})).collect();

    match object.wire {
        WireForm::Plain => json!({
            "description": object.description,
            "x-history": history,
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": object.tolerate_unknown_fields,
        }),
        WireForm::VersionedObject => {
            let versions: Vec<Value> = object.history.iter().map(|e| Value::String(e.version.to_string())).collect();
            json!({
                "description": object.description,
                "x-history": history,
                "type": "object",
                "properties": {
                    "versioned_object.name": {"const": name},
                    "versioned_object.namespace": {"const": object.namespace.clone().unwrap_or_default()},
                    "versioned_object.version": {"enum": versions},
                    "versioned_object.data": {
                        "type": "object",
                        "properties": properties,
                        "required": required,
                    },
                    "versioned_object.changes": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["versioned_object.name", "versioned_object.namespace", "versioned_object.version", "versioned_object.data"],
                "additionalProperties": false,
            })
        }
    }
}
