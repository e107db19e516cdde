//! Validation of params against the published JSON Schema, reporting every
//! violation with its JSON pointer, as JSON-RPC's -32602 `data`.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use serde_json::{Map, Value};

use super::RpcError;
use crate::{
    thread_cache::{with_cached, PerThread},
    wire::{self, WireError, WireValue},
};

/// Compiled validators by (schema document address, definition name).
type ValidatorCache = Mutex<HashMap<(usize, &'static str), Arc<jsonschema::Validator>>>;

/// A compiled validator for `#/$defs/{def}` of the JSON Schema document `document`: found in
/// this thread's cache by the two strings' addresses, compiled once for all threads.
fn validator(document: &'static str, def: &'static str) -> Result<Arc<jsonschema::Validator>, RpcError> {
    thread_local! {
        static USED: PerThread<(usize, usize), Arc<jsonschema::Validator>> = const { RefCell::new(Vec::new()) };
    }
    let address = (document.as_ptr() as usize, def.as_ptr() as usize);
    with_cached(&USED, address, || compiled_validator(document, def), Arc::clone)
}

/// The shared cache behind [`validator`]: compiles a validator the first time it is asked for.
fn compiled_validator(document: &'static str, def: &'static str) -> Result<Arc<jsonschema::Validator>, RpcError> {
    static CACHE: OnceLock<ValidatorCache> = OnceLock::new();
    let key = (document.as_ptr() as usize, def);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(found.clone());
    }
    let internal = RpcError::internal_because;
    let mut schema: Value = serde_json::from_str(document).map_err(|e| internal(format!("schema document: {e}")))?;
    schema["$ref"] = Value::String(format!("#/$defs/{}", def.replace('~', "~0").replace('/', "~1")));
    // The `regex` engine: linear time whatever the input (no backtracking to exploit), and the
    // engine the generated decoders match patterns with, so both agree on every string.
    let mut options = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_pattern_options(jsonschema::PatternOptions::regex());
    for format in wire::FORMATS {
        options = options.with_format(*format, move |text: &str| wire::format_is_valid(format, text));
    }
    let compiled = Arc::new(options.build(&schema).map_err(|e| internal(format!("schema {def}: {e}")))?);
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, compiled.clone());
    Ok(compiled)
}

/// [`RpcError::invalid_params`], by the name generated dispatchers call.
pub fn invalid_params(violations: Vec<(String, String)>) -> RpcError {
    RpcError::invalid_params(violations)
}

/// Checks params by name against the params definition `def` of
/// `document`, reporting every violation.
pub fn validate_params(
    document: &'static str,
    def: &'static str,
    named: Map<String, Value>,
) -> Result<Map<String, Value>, RpcError> {
    let validator = validator(document, def)?;
    let instance = Value::Object(named);
    // The common case: valid, checked without building error reports.
    if validator.is_valid(&instance) {
        let Value::Object(named) = instance else { unreachable!("built as an object above") };
        return Ok(named);
    }
    let violations: Vec<(String, String)> =
        validator.iter_errors(&instance).map(|error| (error.instance_path().to_string(), error.to_string())).collect();
    if !violations.is_empty() {
        return Err(RpcError::invalid_params(violations));
    }
    match instance {
        Value::Object(named) => Ok(named),
        _ => unreachable!("built as an object above"),
    }
}

/// Checks a value against a definition of `document` (results, error data),
/// returning every violation as `(pointer, message)`.
pub fn violations(document: &'static str, def: &'static str, value: &Value) -> Result<Vec<(String, String)>, RpcError> {
    let validator = validator(document, def)?;
    Ok(validator.iter_errors(value).map(|error| (error.instance_path().to_string(), error.to_string())).collect())
}

/// Reads one param after validation; a failure (a constraint the JSON
/// Schema cannot state) is still answered as invalid params.
pub fn read_param<T: WireValue>(params: &Map<String, Value>, name: &str) -> Result<Option<T>, RpcError> {
    params
        .get(name)
        .map(|value| T::from_wire(value, &wire::WirePath::root().field(name)))
        .transpose()
        .map_err(|error| RpcError::invalid_params([(format!("/{name}"), error.to_string())]))
}

/// Turns a decode failure of a result or error into a client error.
pub fn decode_error(error: WireError) -> super::CallError {
    super::CallError::Decode(error)
}

/// The first versioned object in `params` (at any depth) that is newer than
/// this side supports, with the highest version supported: what an
/// UnsupportedVersion answer carries (seed 000's negotiation).
pub fn newer_than_supported(registry: &wire::Registry, params: &Map<String, Value>) -> Option<(String, wire::Version)> {
    fn walk(registry: &wire::Registry, value: &Value) -> Option<(String, wire::Version)> {
        match value {
            Value::Object(map) => {
                let name = map.get(wire::keys::NAME).and_then(Value::as_str);
                let version =
                    map.get(wire::keys::VERSION).and_then(Value::as_str).and_then(|v| v.parse::<wire::Version>().ok());
                if let (Some(info), Some(version)) = (name.and_then(|n| registry.get(n)), version) {
                    if version > info.version {
                        return Some((info.name.to_string(), info.version));
                    }
                }
                map.values().find_map(|item| walk(registry, item))
            }
            Value::Array(items) => items.iter().find_map(|item| walk(registry, item)),
            _ => None,
        }
    }
    params.values().find_map(|value| walk(registry, value))
}

/// The JSON Schema `type` a value has: `integer` for a number without a fraction (which also
/// fits `number`), else `null`, `boolean`, `number`, `string`, `array` or `object`.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
