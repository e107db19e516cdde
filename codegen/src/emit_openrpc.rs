//! The OpenRPC document of the protocol: every method (by its wire name) with its params (by
//! theirs, deprecated ones marked), result, declared errors, history, roles (`x-roles`), HTTP
//! binding and examples, every event under the
//! extension `x-events` (each shaped as a notification's method entry), and every schema
//! under `components.schemas`. Served by `rpc.discover`.

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use crate::{
    emit_json_schema::{object, reachable_components, to_components, type_schema_in, Refs, COMPONENTS},
    ir::{EventIr, MethodIr, ParamIr, SchemaIr, ServiceIr, TypeExpr},
    naming::error_data_def,
};

/// The OpenRPC version the document follows.
pub const OPENRPC_VERSION: &str = "1.3.2";

/// [`crate::emit_json_schema::type_schema`] with OpenRPC's references.
fn component_schema(expr: &TypeExpr) -> Value {
    type_schema_in(expr, Refs::Components)
}

/// Builds the OpenRPC document; `document` is the JSON Schema of [`crate::emit_json_schema::json_schema`], whose
/// definitions become the components.
pub fn openrpc(ir: &SchemaIr, document: &Value) -> Value {
    let mut components = document["$defs"].clone();
    to_components(&mut components);
    openrpc_with_components(ir, components)
}

/// The OpenRPC document with these `components.schemas`
/// (`emit_json_schema::definitions(ir, Refs::Components)`, or [`openrpc`]'s copy).
pub(crate) fn openrpc_with_components(ir: &SchemaIr, components: Value) -> Value {
    let methods = ir.services.iter().flat_map(|service| &service.methods).map(method_entry).collect();
    let events = ir.services.iter().flat_map(|service| &service.events).map(event_entry).collect();
    document(ir, methods, events, components)
}

/// The OpenRPC document of one service, as a server hosting only that service answers
/// `rpc.discover`: its methods and events, and of `components` (the whole protocol's
/// `components.schemas`) only the schemas they reach.
pub(crate) fn service_openrpc(ir: &SchemaIr, service: &ServiceIr, components: &Map<String, Value>) -> Value {
    let methods: Vec<Value> = service.methods.iter().map(method_entry).collect();
    let events: Vec<Value> = service.events.iter().map(event_entry).collect();
    let roots: Vec<Value> = methods.iter().chain(&events).cloned().collect();
    let components = reachable_components(&roots, components);
    document(ir, methods, events, Value::Object(components))
}

/// The document around its methods, events (`x-events`, left out when there are none) and
/// components.
fn document(ir: &SchemaIr, methods: Vec<Value>, events: Vec<Value>, components: Value) -> Value {
    let protocol = &ir.protocol;
    let history: Vec<Value> =
        protocol.history.iter().map(|e| json!({"version": e.version.to_string(), "note": e.note})).collect();
    // Built by moving the parts in: `json!` would copy `components`, the whole JSON Schema.
    let info = object([
        ("title", Value::String(protocol.name.into())),
        ("version", Value::String(protocol.version.to_string())),
        ("description", Value::String(protocol.description.into())),
        ("x-history", Value::Array(history)),
    ]);
    let mut document = object([
        ("openrpc", OPENRPC_VERSION.into()),
        ("info", info),
        ("methods", Value::Array(methods)),
        ("components", object([("schemas", components)])),
    ]);
    if !events.is_empty() {
        document["x-events"] = Value::Array(events);
    }
    document
}

/// A method's or event's params as OpenRPC content descriptors.
fn content_descriptors(params: &[ParamIr]) -> Vec<Value> {
    params
        .iter()
        .map(|param| {
            let mut entry = json!({
                "name": param.wire_name,
                "description": param.description,
                "required": param.required,
                "schema": component_schema(param.schema),
            });
            if let Some(since) = param.since {
                entry["x-since"] = json!(since.to_string());
            }
            // OpenRPC's ContentDescriptor has `deprecated`; the version says since when.
            if let Some(deprecated) = param.deprecated {
                entry["deprecated"] = json!(true);
                entry["x-deprecated-since"] = json!(deprecated.to_string());
            }
            entry
        })
        .collect()
}

/// One event's entry of `x-events`, shaped as a method's (a notification's) entry is: its
/// wire name, params as content descriptors, history and example payloads.
fn event_entry(event: &EventIr) -> Value {
    let mut entry = Map::new();
    entry.insert("name".into(), json!(event.wire_name));
    entry.insert("description".into(), json!(event.description));
    entry.insert("tags".into(), json!([{"name": event.service}]));
    entry.insert("paramStructure".into(), json!("by-name"));
    entry.insert("params".into(), Value::Array(content_descriptors(&event.params)));
    entry.insert("deprecated".into(), json!(event.deprecated.is_some()));
    entry.insert("x-since".into(), json!(event.since.to_string()));
    if let Some(deprecated) = event.deprecated {
        entry.insert("x-deprecated-since".into(), json!(deprecated.to_string()));
    }
    if let Some(removed) = event.removed {
        entry.insert("x-removed".into(), json!(removed.to_string()));
    }
    let examples: Vec<Value> =
        event.examples.iter().map(|example| example_pairing(&example.name, &example.params)).collect();
    if !examples.is_empty() {
        entry.insert("examples".into(), Value::Array(examples));
    }
    Value::Object(entry)
}

/// An example as an OpenRPC example pairing: its name and params, each `{name, value}`.
fn example_pairing(name: &str, params: &IndexMap<String, Value>) -> Value {
    let params: Vec<Value> = params.iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
    json!({"name": name, "params": params})
}

/// One method's entry: params, result, declared errors, history, HTTP binding and examples.
fn method_entry(method: &MethodIr) -> Value {
    let params = content_descriptors(&method.params);
    let errors: Vec<Value> = method
        .errors
        .iter()
        .map(|error| {
            let mut entry = json!({"code": error.code, "message": error.message, "x-name": error.name});
            if error.data.is_some() {
                entry["data"] = json!({"$ref": format!("{COMPONENTS}{}", error_data_def(error.name))});
            }
            entry
        })
        .collect();
    let mut entry = Map::new();
    entry.insert("name".into(), json!(method.wire_name));
    entry.insert("description".into(), json!(method.description));
    entry.insert("tags".into(), json!([{"name": method.service}]));
    entry.insert("paramStructure".into(), json!("either"));
    entry.insert("params".into(), Value::Array(params));
    if let Some(result) = &method.result {
        entry.insert("result".into(), json!({"name": "result", "schema": component_schema(result.schema)}));
    }
    entry.insert("errors".into(), Value::Array(errors));
    entry.insert("deprecated".into(), json!(method.deprecated.is_some()));
    entry.insert("x-since".into(), json!(method.since.to_string()));
    if let Some(deprecated) = method.deprecated {
        entry.insert("x-deprecated-since".into(), json!(deprecated.to_string()));
    }
    if method.notification {
        entry.insert("x-notification".into(), json!(true));
    }
    // Who may call it (the schema's `roles`); absent, every caller may.
    if !method.roles.is_empty() {
        entry.insert("x-roles".into(), json!(method.roles));
    }
    if let Some(http) = &method.http {
        let mut binding = json!({"method": http.method, "path": http.path});
        if let Some(body) = http.body {
            binding["body"] = json!(body);
        }
        entry.insert("x-http".into(), binding);
    }
    let examples: Vec<Value> = method
        .examples
        .iter()
        .map(|example| {
            let mut pairing = example_pairing(&example.name, &example.params);
            if let Some(result) = &example.result {
                pairing["result"] = json!({"name": "result", "value": result});
            }
            pairing
        })
        .collect();
    if !examples.is_empty() {
        entry.insert("examples".into(), Value::Array(examples));
    }
    Value::Object(entry)
}
