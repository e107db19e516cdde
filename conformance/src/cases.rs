//! The cases, derived from the description: JSON-RPC protocol cases, valid and invalid calls of
//! every method, version negotiation and tolerance (see the crate docs for the ID scheme).

use std::collections::{BTreeSet, HashSet};

use serde_json::{json, Map, Value};
use vproto_support::{
    rpc::json_type,
    wire::{keys, Manifest, Version},
};

use crate::{
    description::{envelope_versions, Description, Example, Method},
    fixtures::Fixtures,
    generate::{effective, types_of, GenerateError, Generator},
};

/// How the id of an answer must look.
#[derive(Clone, Debug, PartialEq)]
pub enum IdRule {
    /// The id sent, byte for byte (JSON text).
    Echo(String),
    /// `null`.
    Null,
    /// The id sent, or `null` (when a server may fail to read it).
    EchoOrNull(String),
}

/// What an answer to a method call may be.
#[derive(Clone, Debug, PartialEq)]
pub enum Accept {
    /// A result valid against the method's result schema, or an error the method declares with
    /// valid data, except the code `forbid`.
    ResultOrDeclared {
        /// A declared error that is nonetheless wrong here (UnsupportedVersion for an older object).
        forbid: Option<i64>,
    },
    /// The declared UnsupportedVersion error naming `object` and `max_version`.
    UnsupportedVersion {
        /// Its code.
        code: i64,
        /// The object the data must name.
        object: String,
        /// The highest version the data must name.
        max_version: String,
    },
}

/// What must come back for a frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// One error object with `code`.
    Error {
        /// The JSON-RPC error code.
        code: i64,
        /// The id rule.
        id: IdRule,
    },
    /// One answer to a call of `method`.
    Answer {
        /// `service.method`.
        method: String,
        /// The id rule.
        id: IdRule,
        /// What is acceptable.
        accept: Accept,
    },
    /// Nothing at all (notifications).
    Nothing,
    /// An array with exactly these answers, in any order.
    Batch(Vec<Expect>),
    /// The answer of a REST route bound to `method`: a 2xx status with the result as the body,
    /// or another status with an error object the method declares.
    Rest {
        /// `service.method`.
        method: String,
    },
}

impl Expect {
    /// The methods this expectation lets answer with a result (or a declared error): the
    /// calls that could succeed, so that coverage can tell a method none of them ran for.
    pub fn calls(&self) -> Vec<&str> {
        match self {
            Expect::Answer { method, accept: Accept::ResultOrDeclared { .. }, .. } | Expect::Rest { method } => {
                vec![method.as_str()]
            }
            Expect::Batch(items) => items.iter().flat_map(Expect::calls).collect(),
            Expect::Answer { .. } | Expect::Error { .. } | Expect::Nothing => Vec::new(),
        }
    }
}

/// One case: a frame to send and what must come back.
#[derive(Clone, Debug)]
pub struct Case {
    /// The stable ID (see the crate docs).
    pub id: String,
    /// What the case checks, in words.
    pub what: String,
    /// The exact text sent (one line, or one HTTP body).
    pub frame: String,
    /// The expected answer.
    pub expect: Expect,
    /// For REST cases, the HTTP verb and path the frame is sent to (HTTP targets only).
    pub route: Option<(String, String)>,
}

/// What to derive cases for.
pub struct Plan<'d> {
    /// The description.
    pub description: &'d Description,
    /// The services the target serves.
    pub services: Vec<String>,
    /// Seed of generated values.
    pub seed: u64,
    /// Generated valid calls per method.
    pub generated: usize,
    /// Whether the target speaks HTTP, so the schema's REST routes are tested too.
    pub rest: bool,
    /// Param values to use in each method's valid calls, in place of the examples' and
    /// generated ones.
    pub fixtures: &'d Fixtures,
}

/// A request frame with a raw JSON id (`None`: a notification); `params` left out when `None`.
pub fn frame(method: &str, params: Option<&Value>, id: Option<&str>) -> String {
    let mut text = format!(r#"{{"jsonrpc":"2.0","method":{}"#, Value::String(method.to_string()));
    if let Some(params) = params {
        text.push_str(&format!(r#","params":{params}"#));
    }
    if let Some(id) = id {
        text.push_str(&format!(r#","id":{id}"#));
    }
    text.push('}');
    text
}

/// The pointer as used in IDs: segments joined by `/`, no leading slash.
fn id_pointer(pointer: &[String]) -> String {
    pointer.join("/")
}

/// `root` with the value at `pointer` replaced (`Some`) or removed (`None`).
pub fn edit(root: &Value, pointer: &[String], new: Option<Value>) -> Value {
    let mut root = root.clone();
    let Some((last, parents)) = pointer.split_last() else {
        return new.unwrap_or(Value::Null);
    };
    let mut target = &mut root;
    for segment in parents {
        target = match target {
            Value::Object(map) => map.get_mut(segment).expect("the pointer was found by walking this value"),
            Value::Array(items) => &mut items[segment.parse::<usize>().expect("an index")],
            _ => unreachable!("the pointer was found by walking this value"),
        };
    }
    match (target, new) {
        (Value::Object(map), Some(new)) => {
            map.insert(last.clone(), new);
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), Some(new)) => items[last.parse::<usize>().expect("an index")] = new,
        (Value::Array(items), None) => {
            items.remove(last.parse::<usize>().expect("an index"));
        }
        _ => unreachable!("the pointer was found by walking this value"),
    }
    root
}

/// One node of a params value with the schema that applies to it.
struct Node {
    pointer: Vec<String>,
    value: Value,
    schema: Map<String, Value>,
}

/// Every node of `value` (objects' members, arrays' first item) with its effective schema;
/// `anyOf`/`oneOf` resolved to the branch the value satisfies.
fn walk(description: &Description, value: &Value, schema: &Value, pointer: Vec<String>, out: &mut Vec<Node>) {
    if pointer.len() > 32 {
        return;
    }
    let mut merged = effective(description, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(branches)) = merged.remove(key) {
            if let Some(branch) = branches.iter().find(|branch| description.is_valid(branch, value)) {
                for (k, v) in effective(description, branch) {
                    merged.entry(k).or_insert(v);
                }
            }
        }
    }
    match value {
        Value::Object(map) => {
            let properties = merged.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
            let extra = merged.get("additionalProperties").filter(|v| v.is_object()).cloned();
            out.push(Node { pointer: pointer.clone(), value: value.clone(), schema: merged });
            for (name, member) in map {
                let member_schema = properties.get(name).cloned().or_else(|| extra.clone());
                if let Some(member_schema) = member_schema {
                    let mut next = pointer.clone();
                    next.push(name.clone());
                    walk(description, member, &member_schema, next, out);
                }
            }
        }
        Value::Array(items) => {
            let item_schema = merged.get("items").cloned();
            out.push(Node { pointer: pointer.clone(), value: value.clone(), schema: merged });
            if let (Some(first), Some(item_schema)) = (items.first(), item_schema) {
                let mut next = pointer;
                next.push("0".into());
                walk(description, first, &item_schema, next, out);
            }
        }
        _ => out.push(Node { pointer, value: value.clone(), schema: merged }),
    }
}

/// Values of a wrong type, tried in turn until one makes the params invalid.
fn wrong_types() -> [Value; 6] {
    [json!(12345), json!("conformance-wrong-type"), json!(true), json!([]), json!({}), json!(1.5)]
}

/// Candidate values breaking `keyword` of `schema` at a node holding `value`.
fn violations_of(keyword: &str, schema: &Map<String, Value>, value: &Value) -> Vec<Value> {
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    let integer = types_of(schema).contains(&"integer");
    let step = |bound: f64, by: f64| -> Value {
        if integer {
            json!((bound + by) as i64)
        } else {
            json!(bound + by)
        }
    };
    match keyword {
        "pattern" => ["", "!", " conformance not matching ", "\u{7f}"].iter().map(|s| json!(s)).collect(),
        "format" => vec![json!(format!("not-a-{}", schema["format"].as_str().unwrap_or("value")))],
        "enum" if !schema.contains_key("x-known-values") => match schema["enum"].as_array().and_then(|v| v.first()) {
            Some(Value::String(_)) => vec![json!("X-CONFORMANCE-NOT-IN-ENUM")],
            Some(Value::Number(_)) => vec![json!(987654321)],
            _ => vec![json!("X-CONFORMANCE-NOT-IN-ENUM"), json!(987654321)],
        },
        "const" => match &schema["const"] {
            Value::String(text) => vec![json!(format!("{text}-not-the-const"))],
            Value::Number(_) => vec![json!(987654321)],
            Value::Bool(flag) => vec![json!(!flag)],
            _ => vec![json!("not-the-const")],
        },
        "minimum" => number("minimum").map(|b| vec![step(b, -1.0)]).unwrap_or_default(),
        "maximum" => number("maximum").map(|b| vec![step(b, 1.0)]).unwrap_or_default(),
        "exclusiveMinimum" => number("exclusiveMinimum").map(|b| vec![step(b, 0.0)]).unwrap_or_default(),
        "exclusiveMaximum" => number("exclusiveMaximum").map(|b| vec![step(b, 0.0)]).unwrap_or_default(),
        "minLength" => match (schema["minLength"].as_u64(), value.as_str()) {
            (Some(min), Some(text)) if min > 0 => vec![json!(text.chars().take(min as usize - 1).collect::<String>())],
            _ => Vec::new(),
        },
        "maxLength" => match (schema["maxLength"].as_u64(), value.as_str()) {
            (Some(max), Some(text)) => {
                let mut long: String = text.to_string();
                while long.chars().count() <= max as usize {
                    long.push('a');
                }
                vec![json!(long)]
            }
            _ => Vec::new(),
        },
        "minItems" => match (schema["minItems"].as_u64(), value.as_array()) {
            (Some(min), Some(items)) if min > 0 => vec![json!(items[..(min as usize - 1).min(items.len())])],
            _ => Vec::new(),
        },
        "maxItems" | "uniqueItems" => match value.as_array().and_then(|items| items.first().map(|f| (items, f))) {
            Some((items, first)) => {
                let mut longer = items.clone();
                let target = schema["maxItems"].as_u64().map_or(items.len() + 1, |max| max as usize + 1);
                while longer.len() < target.max(items.len() + 1) {
                    longer.push(first.clone());
                }
                vec![json!(longer)]
            }
            None => Vec::new(),
        },
        "additionalProperties" if schema["additionalProperties"] == json!(false) => match value {
            Value::Object(map) => {
                let mut extended = map.clone();
                extended.insert("x_conformance_unknown_member".into(), json!("not allowed"));
                vec![Value::Object(extended)]
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The constraint keywords the invalid cases violate, in ID order.
const KEYWORDS: &[&str] = &[
    "pattern",
    "format",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "additionalProperties",
];

/// Builds cases and keeps their IDs unique.
struct Builder {
    cases: Vec<Case>,
    ids: HashSet<String>,
    next_id: u64,
}

impl Builder {
    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// Adds `case` unless a case with its ID exists.
    fn add(&mut self, case: Case) {
        if self.ids.insert(case.id.clone()) {
            self.cases.push(case);
        }
    }

    fn push(&mut self, id: String, what: impl Into<String>, frame: String, expect: Expect) {
        self.add(Case { id, what: what.into(), frame, expect, route: None });
    }

    /// A call of `method` with `params` by name, expecting `accept`.
    fn call(&mut self, id: String, what: impl Into<String>, method: &Method, params: &Value, accept: Accept) {
        let raw = self.id();
        let frame = frame(&method.name, Some(params), Some(&raw));
        self.push(id, what, frame, Expect::Answer { method: method.name.clone(), id: IdRule::Echo(raw), accept });
    }

    /// A call of `method` with `params`, expecting -32602.
    fn invalid(&mut self, id: String, what: impl Into<String>, method: &Method, params: &Value) {
        let raw = self.id();
        let frame = frame(&method.name, Some(params), Some(&raw));
        self.push(id, what, frame, Expect::Error { code: -32602, id: IdRule::Echo(raw) });
    }
}

const ANY: Accept = Accept::ResultOrDeclared { forbid: None };

/// Why the cases of a plan could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// None of the planned services has a method.
    #[error("the description has no method of the services {services}")]
    NoMethods {
        /// The planned services, comma-separated.
        services: String,
    },
    /// No valid params could be generated for a method.
    #[error("{method}: {why}")]
    Generate {
        /// The method.
        method: String,
        /// Why generation failed.
        why: GenerateError,
    },
}

impl Plan<'_> {
    /// The methods of the planned services.
    pub fn methods(&self) -> Vec<&Method> {
        self.description.methods.iter().filter(|m| self.services.contains(&m.service)).collect()
    }

    /// Every case, protocol cases first, then per method in name order.
    pub fn cases(&self) -> Result<Vec<Case>, CaseError> {
        let mut builder = Builder { cases: Vec::new(), ids: HashSet::new(), next_id: 0 };
        let methods = self.methods();
        if methods.is_empty() {
            return Err(CaseError::NoMethods { services: self.services.join(", ") });
        }
        let mut generator = Generator::new(self.description, self.seed);
        self.protocol(&mut builder, &methods, &mut generator)?;
        for method in methods {
            self.method_cases(&mut builder, method, &mut generator)?;
        }
        Ok(builder.cases)
    }

    /// A valid params object of `method`: its first example's, else generated; with the
    /// fixtures' values.
    pub fn sample(&self, method: &Method, generator: &mut Generator) -> Result<Value, CaseError> {
        match method.examples.first() {
            Some(example) => Ok(self.example_params(method, example)),
            None => self.generated_params(method, generator),
        }
    }

    /// The params of one of `method`'s examples, by name, with the fixtures' values.
    pub fn example_params(&self, method: &Method, example: &Example) -> Value {
        self.fixtures.apply(&method.name, Value::Object(example.params.iter().cloned().collect()))
    }

    /// Every example call of `service`'s methods, as (method, params): what makes a server send
    /// events without knowing more of its state than the description says.
    pub fn example_calls(&self, service: &str) -> Vec<(String, Value)> {
        self.methods()
            .into_iter()
            .filter(|m| m.service == service)
            .flat_map(|m| m.examples.iter().map(move |e| (m.name.clone(), self.example_params(m, e))))
            .collect()
    }

    /// Params of `method` generated from its params' schemas, with the fixtures' values.
    fn generated_params(&self, method: &Method, generator: &mut Generator) -> Result<Value, CaseError> {
        let params = generator
            .valid(&method.params_schema())
            .map_err(|why| CaseError::Generate { method: method.name.clone(), why })?;
        Ok(self.fixtures.apply(&method.name, params))
    }

    fn protocol(&self, b: &mut Builder, methods: &[&Method], generator: &mut Generator) -> Result<(), CaseError> {
        let needs_params = |m: &Method| m.params.iter().any(|p| p.required);
        // The method protocol cases call: one without required params if there is one.
        let probe = methods
            .iter()
            .find(|m| !needs_params(m))
            .or_else(|| methods.iter().find(|m| !m.examples.is_empty()))
            .unwrap_or(&methods[0]);
        let probe_params = if needs_params(probe) { self.sample(probe, generator)? } else { json!({}) };
        // A method with required params, for the params cases, with a valid call of it.
        let with_params = match methods.iter().find(|m| needs_params(m)) {
            Some(method) => Some((*method, self.sample(method, generator)?)),
            None => None,
        };
        let answer = |id: &str| Expect::Answer { method: probe.name.clone(), id: IdRule::Echo(id.into()), accept: ANY };
        let probe_call = |id: &str| frame(&probe.name, Some(&probe_params), Some(id));
        let error = |code: i64, id: IdRule| Expect::Error { code, id };

        b.push(
            "protocol/parse-error".into(),
            "a line that is not JSON gets -32700 with a null id",
            r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#.into(),
            error(-32700, IdRule::Null),
        );
        b.push(
            "protocol/parse-error/truncated".into(),
            "a JSON text cut short gets -32700 with a null id",
            format!(r#"{{"jsonrpc":"2.0","method":"{}","params":{{"#, probe.name),
            error(-32700, IdRule::Null),
        );
        b.push(
            "protocol/invalid-request/not-an-object".into(),
            "a JSON text that is not a request object gets -32600 with a null id",
            "1".into(),
            error(-32600, IdRule::Null),
        );
        let invalid_requests = [
            ("missing-jsonrpc", "no `jsonrpc` member", format!(r#"{{"method":"{}","id":"ir-1"}}"#, probe.name)),
            (
                "wrong-jsonrpc-version",
                "`jsonrpc` other than \"2.0\"",
                format!(r#"{{"jsonrpc":"1.0","method":"{}","id":"ir-2"}}"#, probe.name),
            ),
            ("missing-method", "no `method` member", r#"{"jsonrpc":"2.0","params":{},"id":"ir-3"}"#.to_string()),
            (
                "method-not-string",
                "a `method` that is not a string",
                r#"{"jsonrpc":"2.0","method":1,"id":"ir-4"}"#.into(),
            ),
            (
                "params-not-structured",
                "`params` neither an object nor an array",
                format!(r#"{{"jsonrpc":"2.0","method":"{}","params":"bar","id":"ir-5"}}"#, probe.name),
            ),
        ];
        for (index, (name, what, text)) in invalid_requests.into_iter().enumerate() {
            let id = format!("\"ir-{}\"", index + 1);
            b.push(
                format!("protocol/invalid-request/{name}"),
                format!("{what} gets -32600"),
                text,
                error(-32600, IdRule::EchoOrNull(id)),
            );
        }
        b.push(
            "protocol/invalid-request/id-not-scalar".into(),
            "an object as id gets -32600 with a null id",
            format!(r#"{{"jsonrpc":"2.0","method":"{}","id":{{}}}}"#, probe.name),
            error(-32600, IdRule::Null),
        );
        b.push(
            "protocol/method-not-found".into(),
            "an unknown method gets -32601 with the id echoed",
            frame("conformance.no_such_method", Some(&json!({})), Some("\"mnf\"")),
            error(-32601, IdRule::Echo("\"mnf\"".into())),
        );
        b.push(
            "protocol/rpc-reserved".into(),
            "an unknown method of the reserved rpc. prefix gets -32601",
            frame("rpc.conformance_no_such_method", None, Some("\"rpc\"")),
            error(-32601, IdRule::Echo("\"rpc\"".into())),
        );
        b.push(
            "protocol/notification-no-reply".into(),
            "a notification is never answered",
            frame(&probe.name, Some(&probe_params), None),
            Expect::Nothing,
        );
        b.push(
            "protocol/notification-unknown-method-no-reply".into(),
            "a notification of an unknown method is not answered, not even with an error",
            frame("conformance.no_such_method", None, None),
            Expect::Nothing,
        );
        if let Some((method, _)) = &with_params {
            b.push(
                "protocol/notification-invalid-params-no-reply".into(),
                "a notification with invalid params is not answered, not even with an error",
                frame(&method.name, Some(&json!({})), None),
                Expect::Nothing,
            );
        }
        b.push(
            "protocol/batch/empty".into(),
            "an empty batch gets one -32600 (not an array) with a null id",
            "[]".into(),
            error(-32600, IdRule::Null),
        );
        b.push(
            "protocol/batch/invalid-items".into(),
            "a batch of non-requests gets one -32600 per item",
            "[1,2,3]".into(),
            Expect::Batch(vec![error(-32600, IdRule::Null); 3]),
        );
        b.push(
            "protocol/batch/invalid-json".into(),
            "a batch cut short gets one -32700",
            format!(r#"[{},{{"jsonrpc":"2.0","method"]"#, probe_call("\"bj\"")),
            error(-32700, IdRule::Null),
        );
        let mut items = vec![
            probe_call("\"b-1\""),
            frame(&probe.name, Some(&probe_params), None),
            r#"{"foo":"boo"}"#.to_string(),
            frame("conformance.no_such_method", Some(&json!({})), Some("\"b-2\"")),
        ];
        let mut expected =
            vec![answer("\"b-1\""), error(-32600, IdRule::Null), error(-32601, IdRule::Echo("\"b-2\"".into()))];
        if let Some((method, _)) = &with_params {
            items.push(frame(&method.name, Some(&json!({})), Some("\"b-3\"")));
            expected.push(error(-32602, IdRule::Echo("\"b-3\"".into())));
        }
        b.push(
            "protocol/batch/mixed".into(),
            "a batch of a request, a notification, an invalid item, an unknown method and invalid params gets one answer per non-notification",
            format!("[{}]", items.join(",")),
            Expect::Batch(expected),
        );
        b.push(
            "protocol/batch/all-notifications".into(),
            "a batch of notifications only gets nothing back",
            format!(
                "[{},{}]",
                frame(&probe.name, Some(&probe_params), None),
                frame("conformance.no_such_method", None, None)
            ),
            Expect::Nothing,
        );
        let ids = [
            ("string", "\"conformance-id\""),
            ("empty-string", "\"\""),
            ("integer", "42"),
            ("negative", "-7"),
            ("fractional", "1.5"),
            ("large", "9007199254740993123"),
            ("null", "null"),
        ];
        for (name, id) in ids {
            b.push(
                format!("protocol/id/{name}"),
                format!("a request with id {id} gets its answer with the id echoed byte for byte"),
                probe_call(id),
                answer(id),
            );
        }
        if probe.params.iter().all(|p| !p.required) {
            b.push(
                "protocol/params/omitted".into(),
                "a request without a params member is a call with no params",
                frame(&probe.name, None, Some("\"po\"")),
                answer("\"po\""),
            );
        }
        if let Some((method, Value::Object(named))) = &with_params {
            let answer =
                |id: &str| Expect::Answer { method: method.name.clone(), id: IdRule::Echo(id.into()), accept: ANY };
            b.push(
                "protocol/params/by-name".into(),
                format!("{} called with params by name", method.name),
                frame(&method.name, Some(&Value::Object(named.clone())), Some("\"pn\"")),
                answer("\"pn\""),
            );
            if let Some(positions) = method.positional(named) {
                b.push(
                    "protocol/params/by-position".into(),
                    format!("{} called with params by position", method.name),
                    frame(&method.name, Some(&Value::Array(positions.clone())), Some("\"pp\"")),
                    answer("\"pp\""),
                );
                let mut too_many = positions;
                while too_many.len() <= method.params.len() {
                    too_many.push(json!("conformance-extra"));
                }
                b.push(
                    "protocol/params/too-many-positions".into(),
                    format!("{} called with one positional param more than it declares gets -32602", method.name),
                    frame(&method.name, Some(&Value::Array(too_many)), Some("\"pt\"")),
                    error(-32602, IdRule::Echo("\"pt\"".into())),
                );
            }
        }
        Ok(())
    }

    fn method_cases(&self, b: &mut Builder, method: &Method, generator: &mut Generator) -> Result<(), CaseError> {
        let m = &method.name;
        let schema = method.params_schema();
        let note = self.fixtures.note(m);
        for (index, example) in method.examples.iter().enumerate() {
            let params = self.example_params(method, example);
            let what = format!("the schema's example \"{}\"{note}", example.name);
            b.call(format!("method/{m}/valid/example-{}", index + 1), &what, method, &params, ANY);
            if let Some(positions) = params.as_object().and_then(|named| method.positional(named)) {
                let raw = b.id();
                b.push(
                    format!("method/{m}/valid/example-{}/by-position", index + 1),
                    format!("{what}, params by position"),
                    frame(m, Some(&Value::Array(positions)), Some(&raw)),
                    Expect::Answer { method: m.clone(), id: IdRule::Echo(raw), accept: ANY },
                );
            }
        }
        for index in 0..self.generated {
            let params = self.generated_params(method, generator)?;
            b.call(
                format!("method/{m}/valid/generated-{}", index + 1),
                format!("params generated from the schema{note}"),
                method,
                &params,
                ANY,
            );
        }
        if let (true, Some(route)) = (self.rest, &method.http) {
            let (verb, path) = (&route.verb, &route.path);
            let takes_body = matches!(verb.as_str(), "POST" | "PUT" | "PATCH");
            for (index, example) in method.examples.iter().enumerate() {
                if !takes_body && !example.params.is_empty() {
                    continue;
                }
                let params = if takes_body { Some(self.example_params(method, example)) } else { None };
                let whole = params.as_ref().map_or(String::new(), Value::to_string);
                // A route whose body is one param takes that param's value itself, and the
                // params object (the wrapped form) too: a case for each.
                let flat = route.body.as_ref().and_then(|param| Some((param, params.as_ref()?.get(param)?)));
                let bodies = match flat {
                    Some((param, value)) => vec![
                        ("", value.to_string(), format!(" (the body is `{param}` itself)")),
                        ("/wrapped", whole, format!(" (the params object, wrapping `{param}`)")),
                    ],
                    None => vec![("", whole, String::new())],
                };
                for (suffix, body, form) in bodies {
                    b.add(Case {
                        id: format!("rest/{m}/example-{}{suffix}", index + 1),
                        what: format!(
                            "the schema's example \"{}\"{note} on the REST route {verb} {path}{form}",
                            example.name
                        ),
                        frame: body,
                        expect: Expect::Rest { method: m.clone() },
                        route: Some((verb.clone(), path.clone())),
                    });
                }
            }
        }
        let sample = self.sample(method, generator)?;
        for param in method.params.iter().filter(|p| p.required) {
            if sample.get(&param.name).is_some() {
                let params = edit(&sample, std::slice::from_ref(&param.name), None);
                b.invalid(
                    format!("method/{m}/invalid/missing/{}", param.name),
                    format!("required param `{}` left out", param.name),
                    method,
                    &params,
                );
            }
        }
        let mut nodes = Vec::new();
        walk(self.description, &sample, &schema, Vec::new(), &mut nodes);
        for node in nodes.iter().filter(|node| !node.pointer.is_empty()) {
            let at = id_pointer(&node.pointer);
            let breaks = |candidate: &Value| {
                !self.description.is_valid(&schema, &edit(&sample, &node.pointer, Some(candidate.clone())))
            };
            let original_type = json_type(&node.value);
            if let Some(wrong) = wrong_types().into_iter().find(|c| json_type(c) != original_type && breaks(c)) {
                let params = edit(&sample, &node.pointer, Some(wrong.clone()));
                b.invalid(
                    format!("method/{m}/invalid/type/{at}"),
                    format!("{wrong} ({}) at /{at}", json_type(&wrong)),
                    method,
                    &params,
                );
            }
            for keyword in KEYWORDS.iter().filter(|k| node.schema.contains_key(**k)) {
                if let Some(bad) = violations_of(keyword, &node.schema, &node.value).into_iter().find(|c| breaks(c)) {
                    let params = edit(&sample, &node.pointer, Some(bad.clone()));
                    b.invalid(
                        format!("method/{m}/invalid/constraint/{at}/{keyword}"),
                        format!("`{keyword}` violated at /{at}: {bad}"),
                        method,
                        &params,
                    );
                }
            }
            if let Value::Object(map) = &node.value {
                let required = node.schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
                for name in required.iter().filter_map(Value::as_str).filter(|name| map.contains_key(*name)) {
                    let mut pointer = node.pointer.clone();
                    pointer.push(name.to_string());
                    let params = edit(&sample, &pointer, None);
                    if !self.description.is_valid(&schema, &params) {
                        b.invalid(
                            format!("method/{m}/invalid/missing/{at}/{name}"),
                            format!("required member `{name}` of /{at} left out"),
                            method,
                            &params,
                        );
                    }
                }
                if node.schema.get("additionalProperties") == Some(&json!(true))
                    && node.schema.contains_key("properties")
                {
                    let params = edit(&sample, &node.pointer, Some(with_unknown_member(map)));
                    if self.description.is_valid(&schema, &params) {
                        b.call(
                            format!("tolerance/{m}/unknown-field/{at}"),
                            format!("an unknown member in /{at}, whose schema tolerates unknown fields"),
                            method,
                            &params,
                            ANY,
                        );
                    }
                }
            }
            if node.schema.contains_key("x-known-values") && node.value.is_string() {
                let params = edit(&sample, &node.pointer, Some(json!("X-CONFORMANCE-UNKNOWN-VALUE")));
                if self.description.is_valid(&schema, &params) {
                    b.call(
                        format!("tolerance/{m}/unknown-value/{at}"),
                        format!("a value outside the open enumeration at /{at}"),
                        method,
                        &params,
                        ANY,
                    );
                }
            }
        }
        self.negotiation(b, method, &sample, &nodes);
        Ok(())
    }

    fn negotiation(&self, b: &mut Builder, method: &Method, sample: &Value, nodes: &[Node]) {
        let Some(unsupported) = method.declared_named("UnsupportedVersion") else { return };
        let m = &method.name;
        for param in &method.params {
            let mut seen = BTreeSet::new();
            for node in nodes.iter().filter(|n| n.pointer.first() == Some(&param.name)) {
                let (Some(name), Some(sent)) = (
                    node.value.get(keys::NAME).and_then(Value::as_str),
                    node.value.get(keys::VERSION).and_then(Value::as_str).and_then(|v| v.parse::<Version>().ok()),
                ) else {
                    continue;
                };
                let top = node.pointer.len() == 1;
                if !top && !seen.insert(name.to_string()) {
                    continue;
                }
                let versions = envelope_versions(&node.schema);
                let Some(newest) = versions.iter().max().copied() else { continue };
                let prefix = if top {
                    format!("negotiation/{m}/{}", param.name)
                } else {
                    format!("negotiation/{m}/{}/nested/{name}", param.name)
                };
                let mut newer_pointer = node.pointer.clone();
                newer_pointer.push(keys::VERSION.into());
                let newer = Version::new(newest.major, newest.minor + 1);
                let params = edit(sample, &newer_pointer, Some(json!(newer.to_string())));
                b.call(
                    format!("{prefix}/newer"),
                    format!("{name} at {newer}, newer than the newest the schema knows ({newest})"),
                    method,
                    &params,
                    Accept::UnsupportedVersion {
                        code: unsupported.code,
                        object: name.to_string(),
                        max_version: newest.to_string(),
                    },
                );
                let top_value = &sample[&param.name];
                for older in versions.iter().filter(|v| **v < sent) {
                    let converted = if top {
                        vproto_api::convert_primitive(top_value, Some(*older), None)
                    } else {
                        let manifest: Manifest = [(name.to_string(), *older)].into_iter().collect();
                        vproto_api::convert_primitive(top_value, None, Some(&manifest))
                    };
                    let Ok(converted) = converted else { continue };
                    let params = edit(sample, std::slice::from_ref(&param.name), Some(converted));
                    let reached = params.pointer(&format!(
                        "/{}",
                        newer_pointer
                            .iter()
                            .map(|s| s.replace('~', "~0").replace('/', "~1"))
                            .collect::<Vec<_>>()
                            .join("/")
                    ));
                    if reached != Some(&json!(older.to_string()))
                        || !self.description.is_valid(&method.params_schema(), &params)
                    {
                        continue;
                    }
                    b.call(
                        format!("{prefix}/older/{older}"),
                        format!("{name} backleveled to {older} with vproto's generated conversions"),
                        method,
                        &params,
                        Accept::ResultOrDeclared { forbid: Some(unsupported.code) },
                    );
                }
            }
        }
    }
}

fn with_unknown_member(map: &Map<String, Value>) -> Value {
    let mut extended = map.clone();
    extended.insert("x_conformance_unknown_field".into(), json!("a newer peer's field"));
    Value::Object(extended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(description: &Description, services: &[&str]) -> Vec<Case> {
        let services = services.iter().map(|s| s.to_string()).collect();
        Plan { description, services, seed: 0, generated: 2, rest: true, fixtures: &Fixtures::none() }.cases().unwrap()
    }

    #[test]
    fn cases_are_derived_for_every_category() {
        let description = Description::published().unwrap();
        let cases = plan(&description, &["driver", "network"]);
        let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
        for wanted in [
            "protocol/notification-no-reply",
            "protocol/batch/mixed",
            "method/driver.list_hardware/valid/example-1",
            "method/network.create_port/valid/example-1/by-position",
            "method/network.create_port/invalid/missing/network_id",
            "method/network.create_port/invalid/type/network_id",
            "method/network.create_port/invalid/constraint/network_id/format",
            "negotiation/network.create_port/host_info/newer",
            "negotiation/network.create_port/host_info/nested/HostVIFInfo/newer",
            "negotiation/network.create_port/host_info/nested/HostVIFInfo/older/1.0",
            "rest/network.create_port/example-1",
            "rest/driver.list_hardware/example-1",
        ] {
            assert!(ids.contains(&wanted), "{wanted} missing from {ids:#?}");
        }
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn a_route_with_a_body_param_is_tried_flat_and_wrapped() {
        let description = Description::published().unwrap();
        let cases = plan(&description, &["agent"]);
        let body = |id: &str| -> Value {
            let case = cases.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no case {id}"));
            serde_json::from_str(&case.frame).unwrap()
        };
        let flat = body("rest/agent.hello/example-1");
        assert!(flat.get("registration").is_none() && flat.get("endpoint").is_some(), "{flat}");
        assert_eq!(body("rest/agent.hello/example-1/wrapped"), json!({ "registration": flat }));
    }

    #[test]
    fn tolerance_cases_follow_the_schema() {
        let description = Description::published().unwrap();
        let ids: Vec<String> = plan(&description, &["agent"]).into_iter().map(|c| c.id).collect();
        assert!(ids.contains(&"tolerance/agent.hello/unknown-field/registration".to_string()), "{ids:#?}");
        assert!(ids.contains(&"tolerance/agent.hello/unknown-value/registration/type".to_string()), "{ids:#?}");
    }

    #[test]
    fn fixtures_replace_param_values_in_every_call_that_starts_from_a_valid_one() {
        let description = Description::published().unwrap();
        let own = "0f3d2c1b-9a8e-4d7c-8b6a-5e4f3a2b1c0d";
        let fixtures = Fixtures::from_value(json!({"network.create_port": {"network_id": own}}), &description).unwrap();
        let services = vec!["network".to_string()];
        let plan = Plan { description: &description, services, seed: 0, generated: 2, rest: true, fixtures: &fixtures };
        let cases = plan.cases().unwrap();
        let calls: Vec<&Case> = cases.iter().filter(|c| c.expect.calls().contains(&"network.create_port")).collect();
        assert!(calls.len() > 5, "{cases:#?}");
        for case in &calls {
            assert!(case.frame.contains(own), "{} does not use the fixture: {}", case.id, case.frame);
        }
        for id in ["method/network.create_port/valid/generated-1", "negotiation/network.create_port/host_info/newer"] {
            let case = cases.iter().find(|c| c.id == id).unwrap();
            assert!(case.frame.contains(own), "{id}: {}", case.frame);
        }
        let example = cases.iter().find(|c| c.id == "method/network.create_port/valid/example-1").unwrap();
        assert!(example.what.contains("network_id from --fixtures"), "{}", example.what);
        // The same IDs as without fixtures: the values change, not the cases.
        let plain = Plan { fixtures: &Fixtures::none(), ..plan }.cases().unwrap();
        let ids = |cases: &[Case]| cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&cases), ids(&plain));
        assert!(plain.iter().all(|c| !c.frame.contains(own)));
    }
}
