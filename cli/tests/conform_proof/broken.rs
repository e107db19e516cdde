//! The reference driver and network services (plus `rpc.discover`) served on stdin/stdout,
//! behind a mutation layer that makes exactly one realistic mistake, chosen with a [`Break`].
//!
//! Two layers, so that no mistake is written twice:
//! - [`Mutated`], a `vproto_support::rpc::Handler` wrapper around the reference [`Router`], for
//!   mistakes a service makes (its params, its results, its errors);
//! - [`Server::answer`], around vproto-jsonrpc's [`Engine`], for mistakes a JSON-RPC layer makes
//!   (ids, batches, notifications, standard error codes), rewriting the frame read or the
//!   reply written.
//!
//! [`Break::None`] touches nothing: frames go to the engine and replies come back byte for
//! byte, so the unbroken build is the reference services themselves.

use std::{
    collections::{BTreeMap, BTreeSet},
    str::FromStr,
    sync::Arc,
};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use vproto_api::{service_openrpc, DriverServer, NetworkServer, REGISTRY};
use vproto_jsonrpc::{
    engine::message_too_large,
    transport::framing::{Line, LineReader},
    Engine, Id, InFlight, Limits, Response,
};
use vproto_services::{
    driver::{Driver, DriverConfig},
    network::{NetworkHost, NetworkHostConfig},
};
use vproto_support::{
    rpc::{codes, BoxFuture, Discover, Handler, Params, RpcError},
    wire::keys,
};

/// One deliberate mistake, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    /// No mistake: the reference services as they are.
    None,
    /// Declared errors (UnsupportedVersion, NetworkNotFound, ...) answered with the generic
    /// `-32000 Server error` instead of their schema code.
    WrongErrorCode,
    /// `driver.start_discovery` answers `{}`: the required `status` is missing.
    MissingResultField,
    /// `network.create_port` answers the VIF's boolean `active` as the string `"false"`.
    WrongResultType,
    /// `network.create_port` looks the network up before validating anything, so params of
    /// the wrong type or format get NetworkNotFound instead of `-32602`.
    NoParamValidation,
    /// A versioned object newer than the server knows is read as if it were its current
    /// version, instead of being answered with UnsupportedVersion.
    IgnoresVersions,
    /// A versioned object older than the server's current version is refused with
    /// UnsupportedVersion, as if only the current version could be read.
    RejectsOlderVersions,
    /// UnsupportedVersion's `data.max_version` echoes the version the client sent instead of
    /// the highest the server supports.
    WrongMaxVersion,
    /// A request without `id` is taken as `id: null` and answered.
    AnswersNotifications,
    /// An empty batch `[]` is answered with `[]` instead of one `-32600` error.
    EmptyBatchAnswered,
    /// The last response of a batch of two or more is dropped.
    DropsBatchEntry,
    /// A batch of notifications only is answered with `[]` instead of nothing.
    AnswersNotificationBatch,
    /// Numeric ids are echoed as strings (`1` comes back as `"1"`).
    StringifiedIds,
    /// Responses lack the `jsonrpc` member (a JSON-RPC 1.0 habit).
    NoJsonrpcMember,
    /// A parse error is answered with the id the server guessed from the broken text (or 0)
    /// instead of `null`.
    ParseErrorWithId,
    /// An unknown method is answered `-32600 Invalid Request` instead of `-32601`.
    MethodNotFoundCode,
    /// A request that is valid JSON but not a valid request object is answered `-32700 Parse
    /// error` instead of `-32600`.
    InvalidRequestCode,
    /// Params by position are refused with `-32602`: only params by name are read.
    NoPositionalParams,
    /// Invalid params surface as `-32603 Internal error` (a decoding failure taken for a bug)
    /// instead of `-32602`.
    InvalidParamsAsInternal,
    /// Every result is wrapped in a list (`{...}` comes back as `[{...}]`). Declared errors are
    /// untouched, so on a host whose data no call of the suite names it shows only when
    /// fixtures make a successful call possible.
    WrapsResultsInList,
    /// `network.port_created` is sent after every port created, to every connection, whether
    /// it subscribed or not.
    EventsBeforeSubscribe,
    /// `network.port_created` is sent to its subscribers with params that leave out every
    /// required member (`{}`).
    InvalidEventPayload,
}

impl Break {
    /// Every kind, [`Break::None`] first.
    pub const ALL: [Break; 22] = [
        Break::None,
        Break::WrongErrorCode,
        Break::MissingResultField,
        Break::WrongResultType,
        Break::NoParamValidation,
        Break::IgnoresVersions,
        Break::RejectsOlderVersions,
        Break::WrongMaxVersion,
        Break::AnswersNotifications,
        Break::EmptyBatchAnswered,
        Break::DropsBatchEntry,
        Break::AnswersNotificationBatch,
        Break::StringifiedIds,
        Break::NoJsonrpcMember,
        Break::ParseErrorWithId,
        Break::MethodNotFoundCode,
        Break::InvalidRequestCode,
        Break::NoPositionalParams,
        Break::InvalidParamsAsInternal,
        Break::WrapsResultsInList,
        Break::EventsBeforeSubscribe,
        Break::InvalidEventPayload,
    ];

    /// The kind's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Break::None => "none",
            Break::WrongErrorCode => "wrong-error-code",
            Break::MissingResultField => "missing-result-field",
            Break::WrongResultType => "wrong-result-type",
            Break::NoParamValidation => "no-param-validation",
            Break::IgnoresVersions => "ignores-versions",
            Break::RejectsOlderVersions => "rejects-older-versions",
            Break::WrongMaxVersion => "wrong-max-version",
            Break::AnswersNotifications => "answers-notifications",
            Break::EmptyBatchAnswered => "empty-batch-answered",
            Break::DropsBatchEntry => "drops-batch-entry",
            Break::AnswersNotificationBatch => "answers-notification-batch",
            Break::StringifiedIds => "stringified-ids",
            Break::NoJsonrpcMember => "no-jsonrpc-member",
            Break::ParseErrorWithId => "parse-error-with-id",
            Break::MethodNotFoundCode => "method-not-found-code",
            Break::InvalidRequestCode => "invalid-request-code",
            Break::NoPositionalParams => "no-positional-params",
            Break::InvalidParamsAsInternal => "invalid-params-as-internal",
            Break::WrapsResultsInList => "wraps-results-in-list",
            Break::EventsBeforeSubscribe => "events-before-subscribe",
            Break::InvalidEventPayload => "invalid-event-payload",
        }
    }
}

impl FromStr for Break {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Break::ALL.into_iter().find(|kind| kind.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Break::ALL.iter().map(|kind| kind.name()).collect();
            format!("unknown break `{text}` (one of {})", names.join(", "))
        })
    }
}

/// The reference router behind one service-level mistake.
struct Mutated {
    inner: Arc<dyn Handler>,
    kind: Break,
    /// The configured network ids, lower case (for [`Break::NoParamValidation`]).
    networks: Vec<String>,
}

/// The declared error NetworkNotFound for `network_id`, as the schema defines it.
fn network_not_found(network_id: &Value) -> RpcError {
    RpcError::new(1002, "Network not found").with_data(json!({ "network_id": network_id }))
}

/// The param `name` at `position` (positional params follow the schema's order).
fn param<'a>(params: &'a Params, name: &str, position: usize) -> Option<&'a Value> {
    match params {
        Params::None => None,
        Params::ByName(map) => map.get(name),
        Params::ByPosition(items) => items.get(position),
    }
}

/// Rewrites every versioned object newer than the registry's to its current version.
fn pretend_current(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let current = map
                .get(keys::NAME)
                .and_then(Value::as_str)
                .and_then(|name| REGISTRY.get(name))
                .map(|info| info.version.to_string());
            if let (Some(current), Some(Value::String(version))) = (current, map.get_mut(keys::VERSION)) {
                if version_key(version) > version_key(&current) {
                    *version = current;
                }
            }
            map.values_mut().for_each(pretend_current);
        }
        Value::Array(items) => items.iter_mut().for_each(pretend_current),
        _ => {}
    }
}

/// The first versioned object in `value` (depth first) older than the registry's current
/// version: `(name, current version)`.
fn older_than_current(value: &Value) -> Option<(String, String)> {
    match value {
        Value::Object(map) => {
            let info = map.get(keys::NAME).and_then(Value::as_str).and_then(|name| REGISTRY.get(name));
            if let (Some(info), Some(version)) = (info, map.get(keys::VERSION).and_then(Value::as_str)) {
                let current = info.version.to_string();
                if version_key(version) < version_key(&current) {
                    return Some((info.name.to_string(), current));
                }
            }
            map.values().find_map(older_than_current)
        }
        Value::Array(items) => items.iter().find_map(older_than_current),
        _ => None,
    }
}

/// `MAJOR.MINOR` as numbers for comparing; anything else sorts first.
fn version_key(text: &str) -> (u64, u64) {
    let mut parts = text.split('.').map(|part| part.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The version at which `params` carry the object `name` (the first found, depth first).
fn sent_version(params: &Params, name: &str) -> Option<String> {
    fn walk(value: &Value, name: &str) -> Option<String> {
        match value {
            Value::Object(map) => {
                if map.get(keys::NAME).and_then(Value::as_str) == Some(name) {
                    if let Some(version) = map.get(keys::VERSION).and_then(Value::as_str) {
                        return Some(version.to_string());
                    }
                }
                map.values().find_map(|item| walk(item, name))
            }
            Value::Array(items) => items.iter().find_map(|item| walk(item, name)),
            _ => None,
        }
    }
    match params {
        Params::None => None,
        Params::ByName(map) => map.values().find_map(|value| walk(value, name)),
        Params::ByPosition(items) => items.iter().find_map(|value| walk(value, name)),
    }
}

fn map_params(params: Params, change: impl Fn(&mut Value)) -> Params {
    match params {
        Params::None => Params::None,
        Params::ByName(mut map) => {
            map.values_mut().for_each(&change);
            Params::ByName(map)
        }
        Params::ByPosition(mut items) => {
            items.iter_mut().for_each(&change);
            Params::ByPosition(items)
        }
    }
}

impl Handler for Mutated {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            let sent = params.clone();
            let params = match self.kind {
                Break::IgnoresVersions => map_params(params, pretend_current),
                Break::NoPositionalParams if matches!(&params, Params::ByPosition(items) if !items.is_empty()) => {
                    return Err(RpcError::invalid_params([("", "params must be given by name")]));
                }
                Break::RejectsOlderVersions => {
                    let values: Vec<&Value> = match &params {
                        Params::None => Vec::new(),
                        Params::ByName(map) => map.values().collect(),
                        Params::ByPosition(items) => items.iter().collect(),
                    };
                    if let Some((object, current)) = values.into_iter().find_map(older_than_current) {
                        return Err(RpcError::new(1000, "Unsupported object version")
                            .with_data(json!({ "object": object, "max_version": current })));
                    }
                    params
                }
                Break::NoParamValidation if method == "network.create_port" => {
                    let network_id = param(&params, "network_id", 2).cloned().unwrap_or(Value::Null);
                    let known = network_id
                        .as_str()
                        .is_some_and(|id| self.networks.iter().any(|known| known.eq_ignore_ascii_case(id)));
                    if !known {
                        return Err(network_not_found(&network_id));
                    }
                    params
                }
                _ => params,
            };
            let mut outcome = self.inner.handle(method, params).await;
            match (self.kind, &mut outcome) {
                (Break::WrongErrorCode, Err(error)) if error.code >= 1000 => {
                    error.code = -32000;
                    error.message = format!("Server error: {}", error.message);
                }
                (Break::InvalidParamsAsInternal, Err(error)) if error.code == codes::INVALID_PARAMS => {
                    *error = RpcError::internal();
                }
                (Break::WrongMaxVersion, Err(error)) if error.code == 1000 => {
                    let object = error.data.as_ref().and_then(|data| data.get("object")).and_then(Value::as_str);
                    if let Some(version) = object.and_then(|object| sent_version(&sent, object)) {
                        if let Some(Value::Object(data)) = &mut error.data {
                            data.insert("max_version".into(), Value::String(version));
                        }
                    }
                }
                (Break::MissingResultField, Ok(Value::Object(result))) if method == "driver.start_discovery" => {
                    result.remove("status");
                }
                (Break::WrongResultType, Ok(result)) if method == "network.create_port" => {
                    if let Some(active) = result.get_mut(keys::DATA).and_then(|data| data.get_mut("active")) {
                        *active = Value::String(active.to_string());
                    }
                }
                (Break::WrapsResultsInList, Ok(result)) => *result = Value::Array(vec![result.take()]),
                _ => {}
            }
            outcome
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        self.inner.methods()
    }
}

/// Applies `change` to each response object of a reply (one, or each of a batch's).
fn each_response(reply: &str, change: impl Fn(&mut Map<String, Value>)) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(reply) else {
        return reply.to_string();
    };
    match &mut value {
        Value::Object(response) => change(response),
        Value::Array(responses) => responses.iter_mut().filter_map(Value::as_object_mut).for_each(change),
        _ => {}
    }
    value.to_string()
}

/// Whether a reply holds a response with error `code` (for rewriting only what the mistake touches).
fn has_error_code(reply: &str, code: i64) -> bool {
    reply.contains(&format!("\"code\":{code}"))
}

/// The id a careless server finds in text it could not parse: whatever follows `"id":` up to
/// the next `,` or `}`, if that is a number or a string; else 0.
fn guessed_id(frame: &str) -> Value {
    frame
        .split_once("\"id\"")
        .and_then(|(_, rest)| rest.trim_start().strip_prefix(':'))
        .map(|rest| rest.split([',', '}']).next().unwrap_or("").trim())
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .filter(|id| id.is_number() || id.is_string())
        .unwrap_or(json!(0))
}

/// Whether `value` is a request object without an `id`: a notification.
fn is_notification(value: &Value) -> bool {
    value.as_object().is_some_and(|object| object.contains_key("method") && !object.contains_key("id"))
}

/// The engine and the frame-level mistake.
struct Server {
    engine: Engine,
    in_flight: InFlight,
    kind: Break,
}

impl Server {
    /// The reply (one line, no newline) to one frame, with the mistake applied.
    async fn answer(&self, frame: Vec<u8>) -> Option<String> {
        let parsed: Option<Value> = std::str::from_utf8(&frame).ok().and_then(|text| serde_json::from_str(text).ok());
        let mut frame = frame;
        match (self.kind, &parsed) {
            (Break::EmptyBatchAnswered, Some(Value::Array(items))) if items.is_empty() => return Some("[]".into()),
            (Break::AnswersNotifications, Some(value)) => {
                let mut value = value.clone();
                let mark = |item: &mut Value| {
                    if is_notification(item) {
                        item.as_object_mut().map(|object| object.insert("id".into(), Value::Null));
                    }
                };
                match &mut value {
                    Value::Array(items) => items.iter_mut().for_each(mark),
                    other => mark(other),
                }
                frame = value.to_string().into_bytes();
            }
            _ => {}
        }
        let reply = self.engine.handle(&frame, &self.in_flight).await.text;
        let notification_batch =
            matches!(&parsed, Some(Value::Array(items)) if !items.is_empty() && items.iter().all(is_notification));
        let Some(reply) = reply else {
            return (self.kind == Break::AnswersNotificationBatch && notification_batch).then(|| "[]".to_string());
        };
        Some(match self.kind {
            Break::DropsBatchEntry => match serde_json::from_str::<Value>(&reply) {
                Ok(Value::Array(mut responses)) if responses.len() >= 2 => {
                    responses.pop();
                    Value::Array(responses).to_string()
                }
                _ => reply,
            },
            Break::StringifiedIds => each_response(&reply, |response| {
                if let Some(id) = response.get_mut("id").filter(|id| id.is_number()) {
                    *id = Value::String(id.to_string());
                }
            }),
            Break::NoJsonrpcMember => each_response(&reply, |response| {
                response.remove("jsonrpc");
            }),
            Break::ParseErrorWithId if has_error_code(&reply, codes::PARSE_ERROR) => {
                let guess = guessed_id(&String::from_utf8_lossy(&frame));
                each_response(&reply, |response| {
                    if response.get("error").and_then(|e| e.get("code")) == Some(&json!(codes::PARSE_ERROR)) {
                        response.insert("id".into(), guess.clone());
                    }
                })
            }
            Break::MethodNotFoundCode if has_error_code(&reply, codes::METHOD_NOT_FOUND) => {
                recode(&reply, codes::METHOD_NOT_FOUND, codes::INVALID_REQUEST)
            }
            Break::InvalidRequestCode if has_error_code(&reply, codes::INVALID_REQUEST) => {
                recode(&reply, codes::INVALID_REQUEST, codes::PARSE_ERROR)
            }
            _ => reply,
        })
    }
}

/// Rewrites errors with code `from` to code `to` and its standard message.
fn recode(reply: &str, from: i64, to: i64) -> String {
    let message = RpcError::standard(to).message;
    each_response(reply, |response| {
        if let Some(Value::Object(error)) = response.get_mut("error") {
            if error.get("code") == Some(&json!(from)) {
                error.insert("code".into(), json!(to));
                error.insert("message".into(), json!(message));
            }
        }
    })
}

/// The network service's events on this one connection (docs/events.md): `rpc.subscribe` and
/// `rpc.unsubscribe` answered here, and `network.port_created` (its payload the schema's example)
/// sent after each port created to a subscribed connection, unless the mistake says otherwise.
struct Events {
    kind: Break,
    /// Each event served, with its payload.
    served: BTreeMap<String, Value>,
    subscribed: BTreeSet<String>,
}

/// The event sent after each port created.
const PORT_CREATED: &str = "network.port_created";

impl Events {
    fn new(kind: Break) -> Result<Self, String> {
        let document: Value =
            serde_json::from_str(vproto_api::OPENRPC).map_err(|e| format!("the OpenRPC document: {e}"))?;
        let served = document["x-events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|event| event["name"].as_str().is_some_and(|name| name.starts_with("network.")))
            .map(|event| {
                let payload: Map<String, Value> = event["examples"][0]["params"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|pair| Some((pair["name"].as_str()?.to_string(), pair["value"].clone())))
                    .collect();
                (event["name"].as_str().unwrap_or_default().to_string(), Value::Object(payload))
            })
            .collect();
        Ok(Events { kind, served, subscribed: BTreeSet::new() })
    }

    /// The answer to `frame` when it is a lone `rpc.subscribe` or `rpc.unsubscribe` request.
    fn subscription(&mut self, frame: &[u8]) -> Option<String> {
        let request: Value = serde_json::from_slice(frame).ok()?;
        let method = request.get("method")?.as_str()?;
        let id = request.get("id")?.clone();
        if method != "rpc.subscribe" && method != "rpc.unsubscribe" {
            return None;
        }
        let names: Vec<String> = match request.pointer("/params/events") {
            None | Some(Value::Null) => self.served.keys().cloned().collect(),
            Some(list) => list.as_array()?.iter().map(|name| name.as_str().unwrap_or_default().to_string()).collect(),
        };
        if let Some(unknown) = names.iter().find(|name| !self.served.contains_key(*name)) {
            let data = [json!({ "pointer": "/events", "message": format!("no event `{unknown}` on this server") })];
            let error = json!({ "code": codes::INVALID_PARAMS, "message": "Invalid params", "data": data });
            return Some(json!({ "jsonrpc": "2.0", "error": error, "id": id }).to_string());
        }
        let result = if method == "rpc.subscribe" {
            self.subscribed.extend(names);
            json!({ "subscribed": self.subscribed })
        } else {
            let gone: Vec<String> = names.into_iter().filter(|name| self.subscribed.remove(name)).collect();
            json!({ "unsubscribed": gone })
        };
        Some(json!({ "jsonrpc": "2.0", "result": result, "id": id }).to_string())
    }

    /// The notification to send after `reply` answered `frame`, if any.
    fn after(&self, frame: &[u8], reply: Option<&str>) -> Option<String> {
        let request: Value = serde_json::from_slice(frame).ok()?;
        let answered: Value = serde_json::from_str(reply?).ok()?;
        if request.get("method")? != "network.create_port" || answered.get("result").is_none() {
            return None;
        }
        let to_everyone = self.kind == Break::EventsBeforeSubscribe;
        if !to_everyone && !self.subscribed.contains(PORT_CREATED) {
            return None;
        }
        let params = match self.kind {
            Break::InvalidEventPayload => json!({}),
            _ => self.served.get(PORT_CREATED)?.clone(),
        };
        Some(json!({ "jsonrpc": "2.0", "method": PORT_CREATED, "params": params }).to_string())
    }
}

/// What `serve-broken` reads from its command line.
pub struct Options {
    /// The mistake.
    pub kind: Break,
    /// The driver's config file.
    pub driver_config: std::path::PathBuf,
    /// The network host's config file.
    pub network_config: std::path::PathBuf,
}

impl Options {
    /// Reads `KIND --driver-config FILE --network-config FILE`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let usage = "usage: serve-broken KIND --driver-config FILE --network-config FILE";
        let kind = args.first().ok_or(usage)?.parse()?;
        let (mut driver_config, mut network_config) = (None, None);
        let mut rest = args[1..].iter();
        while let Some(flag) = rest.next() {
            let slot = match flag.as_str() {
                "--driver-config" => &mut driver_config,
                "--network-config" => &mut network_config,
                other => return Err(format!("unknown option `{other}`; {usage}")),
            };
            *slot = Some(rest.next().ok_or_else(|| format!("{flag} needs a file; {usage}"))?.into());
        }
        Ok(Options {
            kind,
            driver_config: driver_config.ok_or_else(|| format!("--driver-config is missing; {usage}"))?,
            network_config: network_config.ok_or_else(|| format!("--network-config is missing; {usage}"))?,
        })
    }
}

/// Serves stdin/stdout until stdin closes, one frame at a time.
pub async fn serve(options: Options) -> Result<(), String> {
    let driver = DriverConfig::load(&options.driver_config).map_err(|e| e.to_string())?;
    let network = NetworkHostConfig::load(&options.network_config).map_err(|e| e.to_string())?;
    let networks = network.networks.iter().map(|n| n.id.as_str().to_ascii_lowercase()).collect();
    let router = vproto_support::rpc::Router::new()
        .with(DriverServer(Arc::new(Driver::new(driver))))
        .with(NetworkServer(Arc::new(NetworkHost::new(network))));
    let discover = Discover::hosting(&router, service_openrpc).map_err(|e| format!("the OpenRPC document: {e}"))?;
    let router = router.with(discover);
    let handler = Mutated { inner: Arc::new(router), kind: options.kind, networks };
    let limits = Limits::default();
    let server = Server {
        in_flight: InFlight::new(limits.max_in_flight),
        engine: Engine::new(Arc::new(handler), limits.clone()),
        kind: options.kind,
    };
    // One frame at a time, answered in order: a mistake shows up in the answer to the frame
    // that provoked it, not interleaved with later ones.
    let mut stdout = tokio::io::stdout();
    let mut reader = LineReader::new(BufReader::new(tokio::io::stdin()), limits.max_message_size);
    let mut events = Events::new(options.kind)?;
    while let Some(line) = reader.next().await.map_err(|e| format!("reading stdin: {e}"))? {
        let (text, event) = match line {
            Line::TooLarge => {
                (Some(Response::error(Id::null(), message_too_large(limits.max_message_size)).to_json()), None)
            }
            Line::Frame(frame) => match events.subscription(frame) {
                Some(answer) => (Some(answer), None),
                None => {
                    let frame = frame.to_vec();
                    let text = server.answer(frame.clone()).await;
                    let event = events.after(&frame, text.as_deref());
                    (text, event)
                }
            },
        };
        for mut text in text.into_iter().chain(event) {
            text.push('\n');
            stdout.write_all(text.as_bytes()).await.map_err(|e| format!("writing stdout: {e}"))?;
            stdout.flush().await.map_err(|e| format!("writing stdout: {e}"))?;
        }
    }
    Ok(())
}
