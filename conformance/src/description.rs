//! The published description the suite is derived from: an OpenRPC document (methods, params,
//! results, declared errors, examples) whose `components.schemas` are JSON Schema 2020-12, and
//! validation of any value against any schema of it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::{json, Map, Value};
use vproto_support::wire;

/// Why a description could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the protocol description, at {pointer}: {why}")]
pub struct DescriptionError {
    /// A JSON pointer into the OpenRPC document.
    pub pointer: String,
    /// What is wrong.
    pub why: String,
}

/// A schema of the description that does not compile to a validator.
#[derive(Debug, thiserror::Error)]
#[error("the schema does not compile: {0}")]
struct Uncompilable(jsonschema::ValidationError<'static>);

fn bad(pointer: impl Into<String>, why: impl Into<String>) -> DescriptionError {
    DescriptionError { pointer: pointer.into(), why: why.into() }
}

/// One param of a method.
#[derive(Clone, Debug)]
pub struct Param {
    /// The param's name.
    pub name: String,
    /// Whether a call must give it.
    pub required: bool,
    /// Its JSON Schema (refs point into `#/$defs/`).
    pub schema: Value,
}

/// An error a method declares.
#[derive(Clone, Debug)]
pub struct DeclaredError {
    /// The error code.
    pub code: i64,
    /// The error's name (`x-name`), such as `UnsupportedVersion`.
    pub name: String,
    /// The error's message.
    pub message: String,
    /// The schema of its `data`, if it has data.
    pub data: Option<Value>,
}

/// One example call of a method.
#[derive(Clone, Debug)]
pub struct Example {
    /// Its title.
    pub name: String,
    /// The params, in the order the example lists them.
    pub params: Vec<(String, Value)>,
    /// The example result, if given.
    pub result: Option<Value>,
}

/// A method of the description.
#[derive(Clone, Debug)]
pub struct Method {
    /// `service.method`.
    pub name: String,
    /// The service: the part of the name before the first dot.
    pub service: String,
    /// Its params, in declared (positional) order.
    pub params: Vec<Param>,
    /// The schema of its result.
    pub result: Value,
    /// The errors it declares.
    pub errors: Vec<DeclaredError>,
    /// Its examples.
    pub examples: Vec<Example>,
    /// The REST route bound to it (`x-http`).
    pub http: Option<HttpRoute>,
    /// Marked `deprecated` (a compatibility policy may refuse it).
    pub deprecated: bool,
}

/// A method's REST route, as `x-http` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute {
    /// The HTTP verb, upper case.
    pub verb: String,
    /// The exact path.
    pub path: String,
    /// The param the request body stands for (`x-http.body`); `None` when the body is the
    /// params object.
    pub body: Option<String>,
}

impl Method {
    /// The schema of the params by name: an object of the declared params.
    pub fn params_schema(&self) -> Value {
        params_object_schema(&self.params)
    }

    /// The declared error with `code`.
    pub fn declared(&self, code: i64) -> Option<&DeclaredError> {
        self.errors.iter().find(|error| error.code == code)
    }

    /// The declared error named `name`.
    pub fn declared_named(&self, name: &str) -> Option<&DeclaredError> {
        self.errors.iter().find(|error| error.name == name)
    }

    /// Params by name as positions, in declared order; `None` when a param before a given one
    /// is missing (positions cannot skip).
    pub fn positional(&self, named: &Map<String, Value>) -> Option<Vec<Value>> {
        let mut values = Vec::new();
        let mut gap = false;
        for param in &self.params {
            match named.get(&param.name) {
                Some(value) if !gap => values.push(value.clone()),
                Some(_) => return None,
                None => gap = true,
            }
        }
        (values.len() == named.len()).then_some(values)
    }
}

/// An event a service publishes (`x-events`): a notification sent to the clients that
/// subscribed to it (docs/events.md).
#[derive(Clone, Debug)]
pub struct Event {
    /// `service.event`.
    pub name: String,
    /// The service: the part of the name before the first dot.
    pub service: String,
    /// Its params (the payload), in declared order.
    pub params: Vec<Param>,
    /// Its examples (their `result` is always `None`).
    pub examples: Vec<Example>,
}

impl Event {
    /// The schema of the payload: an object of the declared params.
    pub fn params_schema(&self) -> Value {
        params_object_schema(&self.params)
    }
}

fn params_object_schema(params: &[Param]) -> Value {
    let properties: Map<String, Value> = params.iter().map(|p| (p.name.clone(), p.schema.clone())).collect();
    let required: Vec<Value> = params.iter().filter(|p| p.required).map(|p| p.name.clone().into()).collect();
    json!({"type": "object", "properties": properties, "required": required})
}

/// Compiled validators by schema text.
type Cache = Mutex<HashMap<String, Arc<jsonschema::Validator>>>;

/// The description: its methods and the schema definitions they refer to.
pub struct Description {
    /// Every method, sorted by name.
    pub methods: Vec<Method>,
    /// Every event (`x-events`), sorted by name.
    pub events: Vec<Event>,
    /// The schema definitions (`components.schemas`), refs rewritten to `#/$defs/`.
    pub defs: Map<String, Value>,
    /// The protocol version (`info.version`).
    pub version: String,
    /// The OpenRPC document as read (what `rpc.discover` answers).
    pub document: Value,
    cache: Cache,
}

/// Rewrites OpenRPC component refs into `$defs` refs, everywhere in `value`.
/// The versions a versioned object's JSON Schema allows in `versioned_object.version`, oldest first.
pub fn envelope_versions(schema: &Map<String, Value>) -> Vec<wire::Version> {
    let mut versions: Vec<wire::Version> = schema
        .get("properties")
        .and_then(|p| p.get(wire::keys::VERSION))
        .and_then(|v| v.get("enum"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect();
    versions.sort();
    versions
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref") {
                if let Some(name) = target.strip_prefix("#/components/schemas/") {
                    *target = format!("#/$defs/{name}");
                }
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn string<'a>(value: &'a Value, key: &str, at: &str) -> Result<&'a str, DescriptionError> {
    value.get(key).and_then(Value::as_str).ok_or_else(|| bad(format!("{at}/{key}"), "a string is required"))
}

impl Description {
    /// The description vproto publishes (`vproto_api::OPENRPC`).
    pub fn published() -> Result<Self, DescriptionError> {
        Self::from_openrpc_text(vproto_api::OPENRPC)
    }

    /// Reads an OpenRPC document.
    pub fn from_openrpc_text(text: &str) -> Result<Self, DescriptionError> {
        let original: Value = serde_json::from_str(text).map_err(|e| bad("", format!("not JSON: {e}")))?;
        let mut document = original.clone();
        rewrite_refs(&mut document);
        let defs = match document.pointer("/components/schemas") {
            None => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => return Err(bad("/components/schemas", "an object of schemas is required")),
        };
        let version = document.pointer("/info/version").and_then(Value::as_str).unwrap_or("").to_string();
        let Some(Value::Array(raw_methods)) = document.get("methods") else {
            return Err(bad("/methods", "an array of methods is required"));
        };
        let mut methods = Vec::new();
        for (index, raw) in raw_methods.iter().enumerate() {
            let at = format!("/methods/{index}");
            methods.push(Self::method(raw, &at)?);
        }
        methods.sort_by(|a, b| a.name.cmp(&b.name));
        let mut events = Vec::new();
        match document.get("x-events") {
            None => {}
            Some(Value::Array(raw_events)) => {
                for (index, raw) in raw_events.iter().enumerate() {
                    let at = format!("/x-events/{index}");
                    let method = Self::method(raw, &at)?;
                    let Method { name, service, params, examples, .. } = method;
                    events.push(Event { name, service, params, examples });
                }
            }
            Some(_) => return Err(bad("/x-events", "an array of events is required")),
        }
        events.sort_by(|a, b| a.name.cmp(&b.name));
        let description = Description { methods, events, defs, version, document: original, cache: Mutex::default() };
        // Every schema must compile, so a broken description fails here, not mid-run.
        for (index, method) in description.methods.iter().enumerate() {
            let at = format!("method {}", method.name);
            description
                .validator(&method.params_schema())
                .map_err(|why| bad(format!("/methods/{index}"), why.to_string()))?;
            description.validator(&method.result).map_err(|why| bad(format!("{at} result"), why.to_string()))?;
        }
        for event in &description.events {
            description
                .validator(&event.params_schema())
                .map_err(|why| bad(format!("event {}", event.name), why.to_string()))?;
        }
        Ok(description)
    }

    fn method(raw: &Value, at: &str) -> Result<Method, DescriptionError> {
        let name = string(raw, "name", at)?.to_string();
        let service = name.split_once('.').map(|(service, _)| service.to_string()).unwrap_or_else(|| name.clone());
        let mut params = Vec::new();
        if let Some(list) = raw.get("params") {
            let list = list.as_array().ok_or_else(|| bad(format!("{at}/params"), "an array is required"))?;
            for (index, param) in list.iter().enumerate() {
                let at = format!("{at}/params/{index}");
                params.push(Param {
                    name: string(param, "name", &at)?.to_string(),
                    required: param.get("required").and_then(Value::as_bool).unwrap_or(false),
                    schema: param.get("schema").cloned().unwrap_or(json!({})),
                });
            }
        }
        let result = raw.pointer("/result/schema").cloned().unwrap_or(json!({}));
        let mut errors = Vec::new();
        if let Some(list) = raw.get("errors").and_then(Value::as_array) {
            for (index, error) in list.iter().enumerate() {
                let at = format!("{at}/errors/{index}");
                let code = error.get("code").and_then(Value::as_i64).ok_or_else(|| bad(&at, "an integer code"))?;
                let name = error
                    .get("x-name")
                    .or_else(|| error.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let message = error.get("message").and_then(Value::as_str).unwrap_or(&name).to_string();
                errors.push(DeclaredError { code, name, message, data: error.get("data").cloned() });
            }
        }
        let mut examples = Vec::new();
        if let Some(list) = raw.get("examples").and_then(Value::as_array) {
            for (index, example) in list.iter().enumerate() {
                let at = format!("{at}/examples/{index}");
                let mut pairs = Vec::new();
                for (position, pair) in
                    example.get("params").and_then(Value::as_array).into_iter().flatten().enumerate()
                {
                    let at = format!("{at}/params/{position}");
                    let value = pair.get("value").cloned().ok_or_else(|| bad(&at, "a value is required"))?;
                    pairs.push((string(pair, "name", &at)?.to_string(), value));
                }
                examples.push(Example {
                    name: example.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                    params: pairs,
                    result: example.pointer("/result/value").cloned(),
                });
            }
        }
        let http = match raw.get("x-http") {
            None => None,
            Some(binding) => {
                let at = format!("{at}/x-http");
                let body = match binding.get("body") {
                    None => None,
                    Some(_) => Some(string(binding, "body", &at)?.to_string()),
                };
                Some(HttpRoute {
                    verb: string(binding, "method", &at)?.to_uppercase(),
                    path: string(binding, "path", &at)?.to_string(),
                    body,
                })
            }
        };
        let deprecated = raw.get("deprecated").and_then(Value::as_bool).unwrap_or(false);
        Ok(Method { name, service, params, result, errors, examples, http, deprecated })
    }

    /// The method called `name`.
    pub fn method_named(&self, name: &str) -> Option<&Method> {
        self.methods.iter().find(|method| method.name == name)
    }

    /// The events of `service`, by name.
    pub fn events_of(&self, service: &str) -> Vec<&Event> {
        self.events.iter().filter(|event| event.service == service).collect()
    }

    /// The services, in order of first appearance among the sorted methods.
    pub fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = Vec::new();
        for method in &self.methods {
            if !services.contains(&method.service) {
                services.push(method.service.clone());
            }
        }
        services
    }

    /// A compiled validator for `schema` (refs into the description's definitions).
    fn validator(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, Uncompilable> {
        let key = schema.to_string();
        if let Some(found) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(found.clone());
        }
        let document = json!({"$defs": self.defs, "allOf": [schema]});
        let mut options =
            jsonschema::options().with_draft(jsonschema::Draft::Draft202012).should_validate_formats(true);
        for format in wire::FORMATS {
            options = options.with_format(*format, move |text: &str| wire::format_is_valid(format, text));
        }
        let compiled = Arc::new(options.build(&document).map_err(Uncompilable)?);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, compiled.clone());
        Ok(compiled)
    }

    /// Every violation of `schema` by `value`, as `(JSON pointer, message)`; empty when valid.
    pub fn violation_pairs(&self, schema: &Value, value: &Value) -> Vec<(String, String)> {
        match self.validator(schema) {
            Ok(validator) => validator
                .iter_errors(value)
                .map(|error| (error.instance_path().to_string(), error.to_string()))
                .collect(),
            Err(why) => vec![(String::new(), why.to_string())],
        }
    }

    /// Every violation of `schema` by `value`, as `pointer: message`; empty when valid.
    pub fn violations(&self, schema: &Value, value: &Value) -> Vec<String> {
        self.violation_pairs(schema, value)
            .into_iter()
            .map(|(pointer, message)| format!("{}: {message}", if pointer.is_empty() { "(root)" } else { &pointer }))
            .collect()
    }

    /// Whether `value` satisfies `schema`.
    pub fn is_valid(&self, schema: &Value, value: &Value) -> bool {
        self.validator(schema).map(|validator| validator.is_valid(value)).unwrap_or(false)
    }

    /// Follows `$ref`s until a schema that is not a bare reference.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..64 {
            match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
                Some(name) => match self.defs.get(&name.replace("~1", "/").replace("~0", "~")) {
                    Some(target) => schema = target,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_from_x_events() {
        let description = Description::published().unwrap();
        let network = description.events_of("network");
        assert_eq!(network.len(), 1, "{network:#?}");
        let event = network[0];
        assert_eq!(event.name, "network.port_created");
        let example = Value::Object(event.examples[0].params.iter().cloned().collect());
        assert!(description.is_valid(&event.params_schema(), &example));
        assert!(!description.is_valid(&event.params_schema(), &json!({})));
        assert!(description.events_of("driver").is_empty());
    }

    #[test]
    fn the_published_description_loads() {
        let description = Description::published().unwrap();
        assert!(description.method_named("network.create_port").is_some());
        let hello = description.method_named("agent.hello").unwrap();
        assert_eq!(hello.params[0].name, "registration");
        assert!(hello.params[0].required);
        let example: Map<String, Value> = hello.examples[0].params.iter().cloned().collect();
        assert!(description.violations(&hello.params_schema(), &Value::Object(example)).is_empty());
        assert!(!description.is_valid(&hello.params_schema(), &json!({})));
    }

    #[test]
    fn a_broken_description_names_where() {
        let error = Description::from_openrpc_text(r#"{"methods":[{"params":[]}]}"#).err().unwrap();
        assert_eq!(error.pointer, "/methods/0/name");
    }
}
