//! A compatibility policy at run time, as QEMU's `-compat deprecated-input=reject,deprecated-output=hide`:
//! a server can refuse deprecated input and hide deprecated output, so clients can test
//! themselves against the protocol in which the deprecated parts are gone, before it arrives.
//!
//! What is deprecated is read from the service's OpenRPC document, which every generated server
//! publishes ([`Deprecated::from_openrpc`]): `deprecated: true` on a method, on an event of
//! `x-events`, on a param of either (the OpenRPC ContentDescriptor field), and on any JSON Schema
//! reachable from a param, a result or an event's params (a deprecated member of an object).
//!
//! [`Compat`] wraps a [`Handler`]. Under `deprecated-input=reject`:
//! - a call of a deprecated method is answered `-32601 Method not found`, its data saying the
//!   method is deprecated and the policy refuses it (QEMU answers a deprecated command so);
//! - a call giving a deprecated param, or a deprecated member anywhere inside a param, is answered
//!   `-32602 Invalid params`, its data one `{pointer, message}` per deprecated part (the pointer
//!   into the params by name, `/param` or `/param/member`), as any other invalid param is answered
//!   (QEMU answers deprecated arguments as invalid parameters).
//!
//! Under `deprecated-output=hide`, the deprecated members of a result are removed before it is
//! answered, and [`Compat::event_sink`] keeps deprecated events from subscribers and removes the
//! deprecated members of the others. Only object members are removed: a deprecated schema that
//! is a whole result, or an array's items, is left as it is.
//!
//! A union (`anyOf`/`oneOf`) is followed into the branches the value fits by its type, its
//! required members and its `const` members, which is how the generated schemas tell their
//! variants (versioned objects by `versioned_object.name`) apart.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    str::FromStr,
    sync::Arc,
};

use serde_json::{Map, Value};

use super::{
    events::{Event, EventSink},
    BoxFuture, Handler, Params, ResultJson, RpcError,
};
use crate::wire::{Manifest, WireError};

/// What a server does with deprecated input (calls of deprecated methods).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeprecatedInput {
    /// Serve it (the default).
    #[default]
    Accept,
    /// Refuse it as if it were gone.
    Reject,
}

/// What a server does with deprecated output (deprecated events).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeprecatedOutput {
    /// Send it (the default).
    #[default]
    Accept,
    /// Leave it out, as if it were gone.
    Hide,
}

/// The policy: `deprecated-input=accept|reject,deprecated-output=accept|hide`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompatPolicy {
    /// What happens to deprecated input.
    pub deprecated_input: DeprecatedInput,
    /// What happens to deprecated output.
    pub deprecated_output: DeprecatedOutput,
}

/// A policy text that is not `KEY=VALUE[,KEY=VALUE]` of the known keys and values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("compat policy `{text}`: {why}")]
pub struct CompatPolicyError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

impl FromStr for CompatPolicy {
    type Err = CompatPolicyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |why: String| CompatPolicyError { text: text.to_string(), why };
        let mut policy = CompatPolicy::default();
        let mut seen = BTreeSet::new();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| error(format!("`{part}` is not KEY=VALUE")))?;
            if !seen.insert(key) {
                return Err(error(format!("`{key}` is given twice")));
            }
            match (key, value) {
                ("deprecated-input", "accept") => policy.deprecated_input = DeprecatedInput::Accept,
                ("deprecated-input", "reject") => policy.deprecated_input = DeprecatedInput::Reject,
                ("deprecated-output", "accept") => policy.deprecated_output = DeprecatedOutput::Accept,
                ("deprecated-output", "hide") => policy.deprecated_output = DeprecatedOutput::Hide,
                ("deprecated-input", other) => {
                    return Err(error(format!("deprecated-input is accept or reject, not `{other}`")))
                }
                ("deprecated-output", other) => {
                    return Err(error(format!("deprecated-output is accept or hide, not `{other}`")))
                }
                (other, _) => {
                    return Err(error(format!("unknown key `{other}` (deprecated-input, deprecated-output)")))
                }
            }
        }
        Ok(policy)
    }
}

impl fmt::Display for CompatPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = match self.deprecated_input {
            DeprecatedInput::Accept => "accept",
            DeprecatedInput::Reject => "reject",
        };
        let output = match self.deprecated_output {
            DeprecatedOutput::Accept => "accept",
            DeprecatedOutput::Hide => "hide",
        };
        write!(f, "deprecated-input={input},deprecated-output={output}")
    }
}

/// How deep a schema is followed (refs included) before giving up on it.
const MAX_DEPTH: usize = 64;

/// One param of a method or event, as far as deprecation goes.
#[derive(Clone, Debug, PartialEq)]
struct ParamMarks {
    /// Its name.
    name: String,
    /// Whether the param itself is deprecated.
    deprecated: bool,
    /// Its schema, when a deprecated schema is reachable from it.
    schema: Option<Value>,
}

/// What an OpenRPC document marks deprecated: methods, events, params, and the schemas
/// reachable from params, results and events' params.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deprecated {
    /// `service.method` of every deprecated method.
    pub methods: BTreeSet<String>,
    /// `service.event` of every deprecated event (`x-events`).
    pub events: BTreeSet<String>,
    /// Per method, its params in declared order (only methods with a deprecated param or a
    /// deprecated schema reachable from one).
    params: BTreeMap<String, Vec<ParamMarks>>,
    /// Per method, its result's schema (only those reaching a deprecated schema).
    results: BTreeMap<String, Value>,
    /// Per event, its params (only events with a deprecated param or schema reachable from one).
    event_params: BTreeMap<String, Vec<ParamMarks>>,
    /// The document's `components.schemas`, refs resolve into.
    schemas: Map<String, Value>,
}

/// The schema a `$ref` names: `#/components/schemas/NAME` or `#/$defs/NAME`.
fn ref_name(target: &str) -> Option<&str> {
    target.strip_prefix("#/components/schemas/").or_else(|| target.strip_prefix("#/$defs/"))
}

/// Escapes a member name as a JSON pointer segment.
fn segment(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

impl Deprecated {
    /// Reads the marks of `openrpc` (a whole-protocol or per-service document; refs may point
    /// into `#/components/schemas/` or `#/$defs/`).
    pub fn from_openrpc(openrpc: &Value) -> Deprecated {
        let marked = |entry: &Value| entry["deprecated"] == Value::Bool(true);
        let mut deprecated = Deprecated {
            schemas: openrpc.pointer("/components/schemas").and_then(Value::as_object).cloned().unwrap_or_default(),
            ..Deprecated::default()
        };
        for (key, events) in [("methods", false), ("x-events", true)] {
            for entry in openrpc[key].as_array().into_iter().flatten() {
                let Some(name) = entry["name"].as_str() else { continue };
                if marked(entry) {
                    if events { &mut deprecated.events } else { &mut deprecated.methods }.insert(name.to_string());
                }
                let params: Vec<ParamMarks> = entry["params"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|param| {
                        Some(ParamMarks {
                            name: param["name"].as_str()?.to_string(),
                            deprecated: marked(param),
                            schema: deprecated.reaches(&param["schema"]).then(|| param["schema"].clone()),
                        })
                    })
                    .collect();
                if params.iter().any(|param| param.deprecated || param.schema.is_some()) {
                    if events { &mut deprecated.event_params } else { &mut deprecated.params }
                        .insert(name.to_string(), params);
                }
                let result = &entry["result"]["schema"];
                if !events && deprecated.reaches(result) {
                    deprecated.results.insert(name.to_string(), result.clone());
                }
            }
        }
        deprecated
    }

    /// Whether nothing at all is deprecated (the policy then changes nothing).
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
            && self.events.is_empty()
            && self.params.is_empty()
            && self.results.is_empty()
            && self.event_params.is_empty()
    }

    /// The deprecated params of `method` (those marked on the param itself), in declared order.
    pub fn deprecated_params(&self, method: &str) -> Vec<&str> {
        let params = self.params.get(method).into_iter().flatten();
        params.filter(|param| param.deprecated).map(|param| param.name.as_str()).collect()
    }

    /// Whether a result of `method` may carry deprecated members.
    pub fn result_may_carry(&self, method: &str) -> bool {
        self.results.contains_key(method)
    }

    /// Whether the params of the event `name` may carry deprecated parts.
    pub fn event_may_carry(&self, name: &str) -> bool {
        self.event_params.contains_key(name)
    }

    /// The deprecated parts of a call of `method`: JSON pointers into its params by name (a
    /// param given by position is named as its declared name), `/param` for a deprecated param,
    /// `/param/...` for a deprecated member inside one.
    pub fn input_parts(&self, method: &str, params: &Params) -> Vec<String> {
        let Some(marks) = self.params.get(method) else { return Vec::new() };
        let given: Vec<(&ParamMarks, &Value)> = match params {
            Params::None => Vec::new(),
            Params::ByName(map) => marks.iter().filter_map(|m| map.get(&m.name).map(|v| (m, v))).collect(),
            Params::ByPosition(items) => marks.iter().zip(items).collect(),
        };
        self.params_parts(&given)
    }

    /// The deprecated parts of `result`, a result of `method`: JSON pointers into it.
    pub fn output_parts(&self, method: &str, result: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(schema) = self.results.get(method) {
            self.parts(schema, result, &mut String::new(), &mut out, 0);
        }
        out
    }

    /// The deprecated parts of `params`, the params of the event `name`: JSON pointers into them.
    pub fn event_parts(&self, name: &str, params: &Map<String, Value>) -> Vec<String> {
        let Some(marks) = self.event_params.get(name) else { return Vec::new() };
        let given: Vec<(&ParamMarks, &Value)> =
            marks.iter().filter_map(|m| params.get(&m.name).map(|v| (m, v))).collect();
        self.params_parts(&given)
    }

    fn params_parts(&self, given: &[(&ParamMarks, &Value)]) -> Vec<String> {
        let mut out = Vec::new();
        for (marks, value) in given {
            let mut pointer = format!("/{}", segment(&marks.name));
            if marks.deprecated {
                out.push(pointer);
            } else if let Some(schema) = &marks.schema {
                self.parts(schema, value, &mut pointer, &mut out, 0);
            }
        }
        out
    }

    fn resolve<'s>(&'s self, schema: &'s Value) -> Option<&'s Value> {
        schema.get("$ref").and_then(Value::as_str).and_then(ref_name).and_then(|name| self.schemas.get(name))
    }

    /// Whether a deprecated schema is reachable from `schema` (itself included).
    fn reaches(&self, schema: &Value) -> bool {
        self.reaches_from(schema, &mut BTreeSet::new(), 0)
    }

    fn reaches_from<'s>(&'s self, schema: &'s Value, seen: &mut BTreeSet<&'s str>, depth: usize) -> bool {
        let Value::Object(map) = schema else { return false };
        if depth > MAX_DEPTH {
            return false;
        }
        if map.get("deprecated") == Some(&Value::Bool(true)) {
            return true;
        }
        if let Some(name) = map.get("$ref").and_then(Value::as_str).and_then(ref_name) {
            if seen.insert(name) {
                if let Some(target) = self.schemas.get(name) {
                    if self.reaches_from(target, seen, depth + 1) {
                        return true;
                    }
                }
            }
        }
        let lists = ["allOf", "anyOf", "oneOf", "prefixItems"].into_iter().filter_map(|key| map.get(key));
        let singles = ["items", "additionalProperties"].into_iter().filter_map(|key| map.get(key));
        let members = ["properties", "patternProperties"]
            .into_iter()
            .filter_map(|key| map.get(key).and_then(Value::as_object))
            .flat_map(|members| members.values());
        let mut children = lists.flat_map(|list| list.as_array().into_iter().flatten()).chain(singles).chain(members);
        children.any(|child| self.reaches_from(child, seen, depth + 1))
    }

    /// Collects into `out` the pointers (under `pointer`) of the parts of `value` whose schema
    /// (`schema` or one below it) is deprecated.
    fn parts(&self, schema: &Value, value: &Value, pointer: &mut String, out: &mut Vec<String>, depth: usize) {
        let Value::Object(map) = schema else { return };
        if depth > MAX_DEPTH {
            return;
        }
        if map.get("deprecated") == Some(&Value::Bool(true)) {
            if !out.contains(pointer) {
                out.push(pointer.clone());
            }
            return;
        }
        if let Some(target) = self.resolve(schema) {
            self.parts(target, value, pointer, out, depth + 1);
        }
        for sub in map.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.parts(sub, value, pointer, out, depth + 1);
        }
        for key in ["anyOf", "oneOf"] {
            for branch in map.get(key).and_then(Value::as_array).into_iter().flatten() {
                if self.fits(branch, value, depth + 1) {
                    self.parts(branch, value, pointer, out, depth + 1);
                }
            }
        }
        let len = pointer.len();
        match value {
            Value::Object(members) => {
                let properties = map.get("properties").and_then(Value::as_object);
                for (name, member) in members {
                    let sub = properties.and_then(|p| p.get(name)).or_else(|| map.get("additionalProperties"));
                    if let Some(sub) = sub {
                        pointer.push('/');
                        pointer.push_str(&segment(name));
                        self.parts(sub, member, pointer, out, depth + 1);
                        pointer.truncate(len);
                    }
                }
            }
            Value::Array(items) => {
                let prefix = map.get("prefixItems").and_then(Value::as_array);
                for (index, item) in items.iter().enumerate() {
                    let sub = prefix.and_then(|p| p.get(index)).or_else(|| map.get("items"));
                    if let Some(sub) = sub {
                        pointer.push_str(&format!("/{index}"));
                        self.parts(sub, item, pointer, out, depth + 1);
                        pointer.truncate(len);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether `value` fits the union branch `schema` by its type, required members and `const`
    /// members (following refs and `allOf`).
    fn fits(&self, schema: &Value, value: &Value, depth: usize) -> bool {
        let Value::Object(map) = schema else { return schema != &Value::Bool(false) };
        if depth > MAX_DEPTH {
            return false;
        }
        if let Some(target) = self.resolve(schema) {
            if !self.fits(target, value, depth + 1) {
                return false;
            }
        }
        if let Some(constant) = map.get("const") {
            if constant != value {
                return false;
            }
        }
        if let Some(types) = map.get("type") {
            let type_of = super::json_type(value);
            let allowed = |t: &Value| t == type_of || (t == "number" && type_of == "integer");
            let ok = match types {
                Value::String(_) => allowed(types),
                Value::Array(list) => list.iter().any(allowed),
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        if let Value::Object(members) = value {
            let required = map.get("required").and_then(Value::as_array).into_iter().flatten();
            if !required.filter_map(Value::as_str).all(|name| members.contains_key(name)) {
                return false;
            }
            let properties = map.get("properties").and_then(Value::as_object).into_iter().flatten();
            for (name, sub) in properties {
                if let (Some(constant), Some(member)) = (sub.get("const"), members.get(name)) {
                    if constant != member {
                        return false;
                    }
                }
            }
        }
        map.get("allOf").and_then(Value::as_array).into_iter().flatten().all(|sub| self.fits(sub, value, depth + 1))
    }
}

/// Removes the object members at `pointers` from `value` (a pointer to the whole value, or to an
/// array element, removes nothing).
pub fn remove_parts(value: &mut Value, pointers: &[String]) {
    for pointer in pointers {
        let Some((parent, last)) = pointer.rsplit_once('/') else { continue };
        let name = last.replace("~1", "/").replace("~0", "~");
        if let Some(Value::Object(members)) = value.pointer_mut(parent) {
            members.remove(&name);
        }
    }
}

/// A handler under a compatibility policy.
pub struct Compat<H> {
    inner: H,
    policy: CompatPolicy,
    deprecated: Arc<Deprecated>,
}

impl<H: Handler> Compat<H> {
    /// `inner` under `policy`, with what `deprecated` marks.
    pub fn new(inner: H, policy: CompatPolicy, deprecated: impl Into<Arc<Deprecated>>) -> Self {
        Compat { inner, policy, deprecated: deprecated.into() }
    }

    /// Whether a publisher keeps the event `name` (`service.event`) from subscribers.
    pub fn hides_event(&self, name: &str) -> bool {
        self.policy.hides_event(&self.deprecated, name)
    }

    /// `sink` under the policy's output rule: what [`Compat::event_sink`] makes of it.
    pub fn event_sink(&self, sink: Arc<dyn EventSink>) -> Arc<dyn EventSink> {
        event_sink(sink, self.policy, self.deprecated.clone())
    }
}

impl CompatPolicy {
    /// Whether this policy keeps the event `name` (`service.event`) from subscribers.
    pub fn hides_event(&self, deprecated: &Deprecated, name: &str) -> bool {
        self.deprecated_output == DeprecatedOutput::Hide && deprecated.events.contains(name)
    }
}

/// `sink` under `policy`: with `deprecated-output=hide`, deprecated events are dropped and the
/// deprecated members of the others' params removed; otherwise `sink` itself.
pub fn event_sink(sink: Arc<dyn EventSink>, policy: CompatPolicy, deprecated: Arc<Deprecated>) -> Arc<dyn EventSink> {
    if policy.deprecated_output == DeprecatedOutput::Accept || deprecated.is_empty() {
        return sink;
    }
    Arc::new(HidingSink { sink, policy, deprecated })
}

/// An event sink that hides deprecated output.
struct HidingSink {
    sink: Arc<dyn EventSink>,
    policy: CompatPolicy,
    deprecated: Arc<Deprecated>,
}

impl EventSink for HidingSink {
    fn publish(&self, event: Arc<dyn Event>) {
        let name = event.name();
        if self.policy.hides_event(&self.deprecated, name) {
            tracing::debug!(event = name, "deprecated event not sent (compat policy)");
            return;
        }
        if self.deprecated.event_may_carry(name) {
            self.sink.publish(Arc::new(Stripped { inner: event, deprecated: self.deprecated.clone() }));
        } else {
            self.sink.publish(event);
        }
    }
}

/// An event whose params are written without their deprecated parts.
struct Stripped {
    inner: Arc<dyn Event>,
    deprecated: Arc<Deprecated>,
}

impl fmt::Debug for Stripped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripped").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Event for Stripped {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn to_params(&self, manifest: &Manifest) -> Result<Map<String, Value>, WireError> {
        let params = self.inner.to_params(manifest)?;
        let parts = self.deprecated.event_parts(self.inner.name(), &params);
        if parts.is_empty() {
            return Ok(params);
        }
        let mut value = Value::Object(params);
        remove_parts(&mut value, &parts);
        match value {
            Value::Object(params) => Ok(params),
            _ => unreachable!("removing members keeps an object an object"),
        }
    }
}

impl<H> Compat<H> {
    /// The refusal `deprecated-input=reject` gives a call of `method` with `params`, if any.
    fn refusal(&self, method: &str, params: &Params) -> Option<RpcError> {
        if self.policy.deprecated_input != DeprecatedInput::Reject {
            return None;
        }
        if self.deprecated.methods.contains(method) {
            return Some(RpcError::method_not_found(method).with_data(Value::String(format!(
                "`{method}` is deprecated and the server's compat policy ({}) refuses deprecated input",
                self.policy
            ))));
        }
        let parts = self.deprecated.input_parts(method, params);
        if parts.is_empty() {
            return None;
        }
        let policy = self.policy;
        Some(RpcError::invalid_params(parts.into_iter().map(|pointer| {
            let message = format!(
                "`{pointer}` of `{method}` is deprecated and the server's compat policy ({policy}) \
                 refuses deprecated input"
            );
            (pointer, message)
        })))
    }

    /// Whether `deprecated-output=hide` may have to strip `method`'s result.
    fn strips(&self, method: &str) -> bool {
        self.policy.deprecated_output == DeprecatedOutput::Hide && self.deprecated.result_may_carry(method)
    }
}

impl<H: Handler> Handler for Compat<H> {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        if let Some(refused) = self.refusal(method, &params) {
            return Box::pin(async move { Err(refused) });
        }
        if self.strips(method) {
            let answer = self.inner.handle(method, params);
            return Box::pin(async move {
                let mut result = answer.await?;
                let parts = self.deprecated.output_parts(method, &result);
                remove_parts(&mut result, &parts);
                Ok(result)
            });
        }
        self.inner.handle(method, params)
    }

    /// As [`Compat::handle`]; a result the policy leaves alone keeps the inner handler's text.
    fn handle_json<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<ResultJson, RpcError>> {
        if self.refusal(method, &params).is_some() || self.strips(method) {
            let answer = self.handle(method, params);
            return Box::pin(async move { answer.await.map(ResultJson::Value) });
        }
        self.inner.handle_json(method, params)
    }

    fn methods(&self) -> Vec<&'static str> {
        self.inner.methods()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rpc::codes;

    /// Answers every call with its method's name.
    struct Echo;

    impl Handler for Echo {
        fn handle<'a>(&'a self, method: &'a str, _params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
            Box::pin(async move { Ok(Value::String(method.to_string())) })
        }
        fn methods(&self) -> Vec<&'static str> {
            vec!["shop.old", "shop.new"]
        }
    }

    fn document() -> Value {
        json!({
            "methods": [{"name": "shop.old", "deprecated": true}, {"name": "shop.new", "deprecated": false}],
            "x-events": [{"name": "shop.sold", "deprecated": true}, {"name": "shop.bought", "deprecated": false}]
        })
    }

    fn call(handler: &impl Handler, method: &str) -> Result<Value, RpcError> {
        let params = Params::None;
        ready(handler.handle(method, params))
    }

    /// Polls a future that never waits (the handlers here answer at once).
    fn ready<T>(future: BoxFuture<'_, T>) -> T {
        use std::task::{Context, Poll, Waker};
        let mut future = future;
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("the handler waited"),
        }
    }

    /// Answers with text it keeps, as the conductor's `list_hardware` does.
    struct KeptText;

    impl Handler for KeptText {
        fn handle<'a>(&'a self, method: &'a str, _params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
            Box::pin(async move { Ok(json!({"from": "value", "method": method})) })
        }
        fn handle_json<'a>(&'a self, _method: &'a str, _params: Params) -> BoxFuture<'a, Result<ResultJson, RpcError>> {
            let text = serde_json::value::RawValue::from_string(r#"{"from":"text"}"#.into()).unwrap();
            Box::pin(async move { Ok(ResultJson::Text(text.into())) })
        }
        fn methods(&self) -> Vec<&'static str> {
            vec!["shop.old", "shop.new"]
        }
    }

    #[test]
    fn kept_text_passes_through_unless_the_policy_refuses() {
        let deprecated = Deprecated::from_openrpc(&document());
        let policy: CompatPolicy = "deprecated-input=reject,deprecated-output=hide".parse().unwrap();
        let compat = Compat::new(KeptText, policy, deprecated);
        match ready(compat.handle_json("shop.new", Params::None)) {
            Ok(ResultJson::Text(text)) => assert_eq!(text.get(), r#"{"from":"text"}"#),
            other => panic!("the kept text, as is: {other:?}"),
        }
        let refused = ready(compat.handle_json("shop.old", Params::None)).map(|_| ()).unwrap_err();
        assert_eq!(refused.code, codes::METHOD_NOT_FOUND);
    }

    #[test]
    fn policies_parse_as_qemu_writes_them() {
        let policy: CompatPolicy = "deprecated-input=reject,deprecated-output=hide".parse().unwrap();
        assert_eq!(policy.deprecated_input, DeprecatedInput::Reject);
        assert_eq!(policy.deprecated_output, DeprecatedOutput::Hide);
        assert_eq!(policy.to_string(), "deprecated-input=reject,deprecated-output=hide");
        assert_eq!("".parse::<CompatPolicy>().unwrap(), CompatPolicy::default());
        for bad in [
            "deprecated-input=hide",
            "deprecated-output",
            "unstable-input=reject",
            "deprecated-input=reject,deprecated-input=accept",
        ] {
            let error = bad.parse::<CompatPolicy>().unwrap_err();
            assert!(error.to_string().starts_with(&format!("compat policy `{bad}`: ")), "{error}");
        }
    }

    #[test]
    fn deprecated_input_is_refused_and_deprecated_events_hidden_only_under_the_policy() {
        let deprecated = Deprecated::from_openrpc(&document());
        assert_eq!(deprecated.methods, BTreeSet::from(["shop.old".to_string()]));
        assert_eq!(deprecated.events, BTreeSet::from(["shop.sold".to_string()]));
        let strict =
            Compat::new(Echo, "deprecated-input=reject,deprecated-output=hide".parse().unwrap(), deprecated.clone());
        let refused = call(&strict, "shop.old").unwrap_err();
        assert_eq!(refused.code, codes::METHOD_NOT_FOUND);
        assert!(refused.data.unwrap().as_str().unwrap().contains("deprecated"));
        assert_eq!(call(&strict, "shop.new").unwrap(), json!("shop.new"));
        assert!(strict.hides_event("shop.sold") && !strict.hides_event("shop.bought"));
        let lenient = Compat::new(Echo, CompatPolicy::default(), deprecated);
        assert_eq!(call(&lenient, "shop.old").unwrap(), json!("shop.old"));
        assert!(!lenient.hides_event("shop.sold"));
        assert_eq!(lenient.methods(), vec!["shop.old", "shop.new"]);
    }

    /// A document as codegen writes one: a deprecated param (ContentDescriptor), a deprecated
    /// member reachable from a param, from a result (through a ref and a union) and from an
    /// event's params.
    fn members_document() -> Value {
        json!({
            "methods": [{
                "name": "shop.buy",
                "params": [
                    {"name": "item", "required": true, "schema": {"$ref": "#/components/schemas/Item"}},
                    {"name": "coupon", "deprecated": true, "schema": {"type": "string"}},
                    {"name": "note", "schema": {"type": "string"}}
                ],
                "result": {"name": "result", "schema": {"$ref": "#/components/schemas/Receipt"}}
            }, {
                "name": "shop.plain",
                "params": [{"name": "note", "schema": {"type": "string"}}],
                "result": {"name": "result", "schema": {"type": "string"}}
            }],
            "x-events": [{
                "name": "shop.sold",
                "params": [{"name": "item", "schema": {"$ref": "#/components/schemas/Item"}}]
            }],
            "components": {"schemas": {
                "Item": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "legacy_code": {"type": "string", "deprecated": true}
                }},
                "Receipt": {"type": "object", "properties": {
                    "total": {"type": "integer"},
                    "cashier": {"type": "string", "deprecated": true},
                    "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                    "payment": {"anyOf": [
                        {"type": "object", "required": ["kind"], "properties": {
                            "kind": {"const": "card"}, "pin_hint": {"type": "string", "deprecated": true}}},
                        {"type": "object", "required": ["kind"], "properties": {
                            "kind": {"const": "cash"}, "pin_hint": {"type": "string"}}},
                        {"type": "null"}
                    ]}
                }}
            }}
        })
    }

    /// Answers `shop.buy` with a receipt carrying every deprecated member.
    struct Till;

    impl Handler for Till {
        fn handle<'a>(&'a self, method: &'a str, _params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
            let result = match method {
                "shop.buy" => json!({
                    "total": 3, "cashier": "ann",
                    "lines": [{"name": "tea", "legacy_code": "T1"}, {"name": "cup"}],
                    "payment": {"kind": "card", "pin_hint": "1…"}
                }),
                _ => json!("ok"),
            };
            Box::pin(async move { Ok(result) })
        }
        fn methods(&self) -> Vec<&'static str> {
            vec!["shop.buy", "shop.plain"]
        }
    }

    #[test]
    fn deprecated_params_and_members_are_found_by_name_and_position() {
        let deprecated = Deprecated::from_openrpc(&members_document());
        assert!(!deprecated.is_empty());
        assert!(Deprecated::from_openrpc(&json!({"methods": [{"name": "a.b"}]})).is_empty());
        assert_eq!(deprecated.deprecated_params("shop.buy"), vec!["coupon"]);
        assert!(deprecated.deprecated_params("shop.plain").is_empty());
        let by_name = |params: Value| Params::ByName(params.as_object().unwrap().clone());
        assert!(deprecated.input_parts("shop.buy", &by_name(json!({"item": {"name": "tea"}}))).is_empty());
        assert_eq!(
            deprecated.input_parts("shop.buy", &by_name(json!({"item": {"name": "tea"}, "coupon": "X"}))),
            vec!["/coupon"]
        );
        assert_eq!(
            deprecated.input_parts("shop.buy", &Params::ByPosition(vec![json!({"legacy_code": "T"}), json!("X")])),
            vec!["/item/legacy_code", "/coupon"]
        );
        assert!(deprecated.input_parts("shop.plain", &by_name(json!({"note": "n"}))).is_empty());
        let receipt = json!({"total": 1, "cashier": "bo", "lines": [{"legacy_code": "a"}], "payment": {"kind": "cash", "pin_hint": "x"}});
        assert_eq!(deprecated.output_parts("shop.buy", &receipt), vec!["/cashier", "/lines/0/legacy_code"]);
        assert!(deprecated.result_may_carry("shop.buy") && !deprecated.result_may_carry("shop.plain"));
        let sold = json!({"item": {"name": "tea", "legacy_code": "T1"}});
        assert_eq!(deprecated.event_parts("shop.sold", sold.as_object().unwrap()), vec!["/item/legacy_code"]);
    }

    #[test]
    fn reject_refuses_deprecated_params_naming_them_and_hide_removes_deprecated_members() {
        let strict = Compat::new(
            Till,
            "deprecated-input=reject,deprecated-output=hide".parse().unwrap(),
            Deprecated::from_openrpc(&members_document()),
        );
        let params = json!({"item": {"name": "tea"}, "coupon": "X"}).as_object().unwrap().clone();
        let refused = ready(strict.handle("shop.buy", Params::ByName(params))).unwrap_err();
        assert_eq!(refused.code, codes::INVALID_PARAMS);
        let data = refused.data.unwrap();
        assert_eq!(data[0]["pointer"], "/coupon");
        assert!(data[0]["message"].as_str().unwrap().contains("deprecated-input=reject"), "{data}");
        let params = json!({"item": {"name": "tea"}}).as_object().unwrap().clone();
        let result = ready(strict.handle("shop.buy", Params::ByName(params.clone()))).unwrap();
        assert_eq!(
            result,
            json!({"total": 3, "lines": [{"name": "tea"}, {"name": "cup"}], "payment": {"kind": "card"}})
        );
        let lenient = Compat::new(Till, CompatPolicy::default(), Deprecated::from_openrpc(&members_document()));
        let result = ready(lenient.handle("shop.buy", Params::ByName(params))).unwrap();
        assert_eq!(result["cashier"], "ann");
        assert_eq!(result["payment"]["pin_hint"], "1…");
    }

    /// An event whose params are fixed.
    #[derive(Debug)]
    struct Fixed(&'static str, Value);

    impl Event for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn to_params(&self, _manifest: &Manifest) -> Result<Map<String, Value>, WireError> {
            Ok(self.1.as_object().unwrap().clone())
        }
    }

    /// Keeps what is published into it, written with the default manifest.
    #[derive(Default)]
    struct Kept(std::sync::Mutex<Vec<(String, Map<String, Value>)>>);

    impl EventSink for Kept {
        fn publish(&self, event: Arc<dyn Event>) {
            let params = event.to_params(&Manifest::default()).unwrap();
            self.0.lock().unwrap().push((event.name().to_string(), params));
        }
    }

    #[test]
    fn hide_drops_deprecated_events_and_strips_deprecated_members_of_the_others() {
        let mut document = members_document();
        document["x-events"].as_array_mut().unwrap().push(json!({"name": "shop.closed", "deprecated": true}));
        let deprecated = Arc::new(Deprecated::from_openrpc(&document));
        let kept = Arc::new(Kept::default());
        let hide = "deprecated-output=hide".parse().unwrap();
        let sink = event_sink(kept.clone(), hide, deprecated.clone());
        sink.publish(Arc::new(Fixed("shop.closed", json!({}))));
        sink.publish(Arc::new(Fixed("shop.sold", json!({"item": {"name": "tea", "legacy_code": "T1"}}))));
        let seen = kept.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, "shop.sold");
        assert_eq!(Value::Object(seen[0].1.clone()), json!({"item": {"name": "tea"}}));
        let accept = event_sink(kept.clone(), CompatPolicy::default(), deprecated);
        accept.publish(Arc::new(Fixed("shop.closed", json!({}))));
        assert_eq!(kept.0.lock().unwrap().len(), 2);
    }
}
