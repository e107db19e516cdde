//! The OpenAPI 3.1 document of a service's REST routes (`http` bindings), for people who call
//! a service with curl or an OpenAPI client rather than JSON-RPC. One document per service,
//! since services are served on listeners of their own and may bind the same path.
//!
//! A route's request body is its `body` param's value when the binding names one, else the
//! method's params object; answers are the result (200) or a JSON-RPC error object, with the
//! status codes of vproto-jsonrpc's HTTP transport.

use serde_json::{json, Map, Value};

use crate::{
    emit_json_schema::{object, reachable_components, type_schema_in, Refs, COMPONENTS},
    ir::{HttpIr, HttpMethod, MethodIr, SchemaIr, ServiceIr},
    naming::{params_def, result_def},
};

/// The OpenAPI version the documents follow.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// The name of the JSON-RPC error object's schema among the components.
const ERROR_SCHEMA: &str = "JsonRpcError";

/// The OpenAPI document of `service_name`'s REST routes, with the schemas they reach out of
/// `components` (the protocol's `components.schemas`); `None` when the service binds no route.
pub(crate) fn service_openapi(ir: &SchemaIr, service: &ServiceIr, components: &Map<String, Value>) -> Option<Value> {
    let service_name = service.name;
    let mut paths: Map<String, Value> = Map::new();
    for method in &service.methods {
        let Some(http) = &method.http else { continue };
        let operation = operation(method, http);
        let verb = http.method.as_str().to_ascii_lowercase();
        let item = paths.entry(http.path).or_insert_with(|| Value::Object(Map::new()));
        item.as_object_mut().expect("path items are objects").insert(verb, operation);
    }
    if paths.is_empty() {
        return None;
    }
    let paths = Value::Object(paths);
    let mut schemas = reachable_components(std::slice::from_ref(&paths), components);
    schemas.insert(ERROR_SCHEMA.into(), error_schema());
    let protocol = &ir.protocol;
    Some(object([
        ("openapi", OPENAPI_VERSION.into()),
        (
            "info",
            json!({
                "title": format!("{} {service_name}", protocol.name),
                "version": protocol.version.to_string(),
                "description": format!(
                    "{}\n\nThe REST routes of the `{service_name}` service. Every method, routes or not, is also \
                     served as JSON-RPC 2.0 on `POST /jsonrpc`; its OpenRPC document is `rpc.discover`'s answer.",
                    service.description
                ),
            }),
        ),
        ("paths", paths),
        (
            "components",
            object([
                ("schemas", Value::Object(schemas)),
                ("securitySchemes", json!({"bearer": {"type": "http", "scheme": "bearer"}})),
            ]),
        ),
        // A listener may run without a token; with one, every route needs it.
        ("security", json!([{}, {"bearer": []}])),
    ]))
}

/// The operation of one method bound to `http`.
fn operation(method: &MethodIr, http: &HttpIr) -> Value {
    let mut operation = Map::new();
    operation.insert("operationId".into(), json!(method.wire_name));
    operation.insert("summary".into(), json!(method.wire_name));
    operation.insert("description".into(), json!(method.description));
    operation.insert("tags".into(), json!([method.service]));
    if method.deprecated.is_some() {
        operation.insert("deprecated".into(), json!(true));
    }
    operation.insert("x-since".into(), json!(method.since.to_string()));
    // Who may call it: every route takes the bearer token, and only these roles' tokens pass.
    if !method.roles.is_empty() {
        operation.insert("x-roles".into(), json!(method.roles));
    }
    if matches!(http.method, HttpMethod::Post | HttpMethod::Put) {
        operation.insert("requestBody".into(), request_body(method));
    }
    let result = match &method.result {
        Some(_) => json!({"$ref": format!("{COMPONENTS}{}", result_def(method.service, method.name))}),
        None => json!({"type": "null"}),
    };
    let error = |description: String| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": format!("{COMPONENTS}{ERROR_SCHEMA}")}}},
        })
    };
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "The method's result.", "content": {"application/json": {"schema": result}}}),
    );
    responses.insert("400".into(), error("The body is not JSON (-32700) or the params are invalid (-32602).".into()));
    responses.insert("401".into(), error("A token is required and was not given or is wrong.".into()));
    if !method.roles.is_empty() {
        let roles = method.roles.join(", ");
        responses.insert("403".into(), error(format!("The token's role is not one of {roles} (-32003 Forbidden).")));
    }
    if !method.errors.is_empty() {
        let names: Vec<&str> = method.errors.iter().map(|error| error.name).collect();
        responses.insert("409".into(), error(format!("A declared error of the method: {}.", names.join(", "))));
    }
    responses.insert("413".into(), error("The body is over the server's size limit.".into()));
    responses.insert("429".into(), error("Too many calls in flight.".into()));
    responses.insert("500".into(), error("An internal error (-32603).".into()));
    operation.insert("responses".into(), Value::Object(responses));
    Value::Object(operation)
}

/// The request body of a route: the `body` param's value, or the params object.
fn request_body(method: &MethodIr) -> Value {
    let params_ref = json!({"$ref": format!("{COMPONENTS}{}", params_def(method.service, method.name))});
    match method.body_param() {
        Some(param) => json!({
            "description": format!(
                "The `{name}` param itself. {} The wrapped form `{{\"{name}\": ...}}` (the params object) is \
                 accepted too.",
                param.description,
                name = param.wire_name
            ),
            "required": param.required,
            "content": {"application/json": {"schema": type_schema_in(param.schema, Refs::Components)}},
        }),
        None => json!({
            "description": "The params, by name (an empty body is no params).",
            "required": method.params.iter().any(|param| param.required),
            "content": {"application/json": {"schema": params_ref}},
        }),
    }
}

/// The JSON-RPC error object the routes answer with on failure.
fn error_schema() -> Value {
    json!({
        "description": "A JSON-RPC 2.0 error object: a stable code, a message and the error's data.",
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "data": {},
        },
    })
}
