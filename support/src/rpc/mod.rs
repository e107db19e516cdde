//! The JSON-RPC 2.0 vocabulary that generated servers and clients share
//! with the transports: error objects, params, the [`Handler`] a
//! server dispatches to and the [`ClientTransport`] a client calls through,
//! and (in [`service`]) the errors and [`Answer`]s of generated services.
//!
//! This module knows no transport and no async runtime; the transport crates
//! carry these over sockets, stdio and HTTP.

use std::{collections::BTreeMap, fmt, future::Future, pin::Pin, sync::Arc};

use serde_json::{value::RawValue, Map, Value};

use crate::wire::WireError;

pub mod compat;
pub mod events;
pub mod roles;
mod service;
mod validate;

pub use service::{Answer, ClientError, DeclaredError, ServiceError};

pub use validate::{
    decode_error, invalid_params, json_type, newer_than_supported, read_param, validate_params, violations,
};

/// The error codes JSON-RPC 2.0 defines.
pub mod codes {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined server error: a limit was exceeded.
    pub const LIMIT_EXCEEDED: i64 = -32000;
    /// Implementation-defined server error: the caller is not authorized.
    pub const UNAUTHORIZED: i64 = -32001;
    /// Implementation-defined server error: the caller's role may not call the method (see
    /// [`super::roles`]).
    pub const FORBIDDEN: i64 = -32003;
}

/// A boxed future that can cross threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A JSON-RPC error object.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Structured details.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    /// One of the errors JSON-RPC 2.0 defines, with the message the specification gives its
    /// `code` (`"Server error"` for the implementation-defined range), and no data. The named
    /// constructors below are these with the data each always carries.
    pub fn standard(code: i64) -> Self {
        let message = match code {
            codes::PARSE_ERROR => "Parse error",
            codes::INVALID_REQUEST => "Invalid Request",
            codes::METHOD_NOT_FOUND => "Method not found",
            codes::INVALID_PARAMS => "Invalid params",
            codes::INTERNAL_ERROR => "Internal error",
            _ => "Server error",
        };
        RpcError::new(code, message)
    }

    /// `-32700 "Parse error"` with the parser's explanation.
    pub fn parse_error(detail: impl Into<String>) -> Self {
        RpcError::standard(codes::PARSE_ERROR).with_data(Value::String(detail.into()))
    }

    /// `-32600 "Invalid Request"` with what is wrong.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        RpcError::standard(codes::INVALID_REQUEST).with_data(Value::String(detail.into()))
    }

    /// `-32601 "Method not found"`, its data naming `method`.
    pub fn method_not_found(method: &str) -> Self {
        RpcError::standard(codes::METHOD_NOT_FOUND).with_data(Value::String(format!("no method `{method}`")))
    }

    /// `-32602 "Invalid params"`, its data every violation as `{pointer, message}` (a JSON
    /// pointer into the params by name, and what is wrong there).
    pub fn invalid_params<P: Into<String>, M: Into<String>>(violations: impl IntoIterator<Item = (P, M)>) -> Self {
        let data = violations
            .into_iter()
            .map(|(pointer, message)| serde_json::json!({"pointer": pointer.into(), "message": message.into()}))
            .collect();
        RpcError::standard(codes::INVALID_PARAMS).with_data(Value::Array(data))
    }

    /// `-32603 "Internal error"` that says nothing about the server's insides.
    pub fn internal() -> Self {
        RpcError::standard(codes::INTERNAL_ERROR)
    }

    /// `-32603 "Internal error"` with why, for answers whose reason may be told.
    pub fn internal_because(why: impl Into<String>) -> Self {
        RpcError::internal().with_data(Value::String(why.into()))
    }

    /// Adds data to the error.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error as a JSON-RPC error object.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("code".into(), self.code.into());
        object.insert("message".into(), self.message.clone().into());
        if let Some(data) = &self.data {
            object.insert("data".into(), data.clone());
        }
        Value::Object(object)
    }

    /// Reads a JSON-RPC error object.
    pub fn from_json(value: &Value) -> Option<Self> {
        let object = value.as_object()?;
        Some(RpcError {
            code: object.get("code")?.as_i64()?,
            message: object.get("message")?.as_str()?.to_string(),
            data: object.get("data").cloned(),
        })
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error {}: {}", self.code, self.message)?;
        if let Some(data) = &self.data {
            write!(f, " ({data})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

/// The params of a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Params {
    /// No `params` member.
    None,
    /// Params by name.
    ByName(Map<String, Value>),
    /// Params by position.
    ByPosition(Vec<Value>),
}

impl Params {
    /// Reads the `params` member of a request; `None` when it is neither an object nor an array.
    pub fn from_json(value: Option<&Value>) -> Option<Self> {
        match value {
            None => Some(Params::None),
            Some(value @ (Value::Object(_) | Value::Array(_))) => Self::from_value(value.clone()),
            Some(_) => None,
        }
    }

    /// Takes a present `params` value without copying it: an object by name, an array by
    /// position; `None` for anything else.
    pub fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Params::ByName(map)),
            Value::Array(items) => Some(Params::ByPosition(items)),
            _ => None,
        }
    }

    /// The params by name, mapping positions onto `names` in order.
    /// Fails when more positions are given than there are names.
    pub fn into_named(self, names: &[&str]) -> Result<Map<String, Value>, RpcError> {
        match self {
            Params::None => Ok(Map::new()),
            Params::ByName(map) => Ok(map),
            Params::ByPosition(items) => {
                if items.len() > names.len() {
                    return Err(RpcError::invalid_params([(
                        "",
                        format!("{} positional params given, the method takes at most {}", items.len(), names.len()),
                    )]));
                }
                Ok(names.iter().map(|name| name.to_string()).zip(items).collect())
            }
        }
    }
}

/// A method's result as a handler hands it to the transport: a value the transport writes,
/// or JSON text written beforehand and sent as it is. Text is shared, so a handler answering
/// one large result many times writes it once and each answer costs a copy of the bytes.
#[derive(Clone, Debug)]
pub enum ResultJson {
    /// A value, written by the transport.
    Value(Value),
    /// JSON text (checked JSON: a `RawValue`), sent byte for byte.
    Text(Arc<RawValue>),
}

/// Something that answers calls: a generated dispatcher, or a [`Router`] of them.
pub trait Handler: Send + Sync + 'static {
    /// Answers `method` with `params`. Notifications are called too; their
    /// answer is dropped by the transport.
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>>;

    /// Answers `method` as [`Handler::handle`] does, the result possibly as JSON text written
    /// beforehand ([`ResultJson::Text`]): what a transport calls to answer one request. By
    /// default `handle`'s value; a handler that can answer from text it keeps overrides it
    /// (and a wrapper forwards it), answering the same as `handle` would.
    fn handle_json<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<ResultJson, RpcError>> {
        let answer = self.handle(method, params);
        Box::pin(async move { answer.await.map(ResultJson::Value) })
    }

    /// The methods this handler serves, as `service.method`.
    fn methods(&self) -> Vec<&'static str>;
}

/// Routes calls to the handler that serves the method.
#[derive(Clone, Default)]
pub struct Router {
    routes: BTreeMap<&'static str, Arc<dyn Handler>>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds every method of `handler`.
    pub fn with(mut self, handler: impl Handler) -> Self {
        let handler: Arc<dyn Handler> = Arc::new(handler);
        for method in handler.methods() {
            self.routes.insert(method, handler.clone());
        }
        self
    }
}

impl Router {
    /// `call` on the handler of `method`, or the answer that none serves it.
    fn route<'a, T: Send + 'a>(
        &'a self,
        method: &str,
        call: impl FnOnce(&'a Arc<dyn Handler>) -> BoxFuture<'a, Result<T, RpcError>>,
    ) -> BoxFuture<'a, Result<T, RpcError>> {
        match self.routes.get(method) {
            Some(handler) => call(handler),
            None => {
                let error = RpcError::method_not_found(method);
                Box::pin(async move { Err(error) })
            }
        }
    }
}

impl Handler for Router {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        self.route(method, |handler| handler.handle(method, params))
    }

    fn handle_json<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<ResultJson, RpcError>> {
        self.route(method, |handler| handler.handle_json(method, params))
    }

    fn methods(&self) -> Vec<&'static str> {
        self.routes.keys().copied().collect()
    }
}

/// A REST route bound to a method by the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpBinding {
    /// The service, such as `driver`.
    pub service: &'static str,
    /// The HTTP verb, upper case.
    pub http_method: &'static str,
    /// The path, such as `/hardware`.
    pub path: &'static str,
    /// The method called, as `service.method`.
    pub method: &'static str,
    /// The param the request body stands for (the schema's `http.body`); `None` when the
    /// body is the whole params object or array.
    pub body: Option<&'static str>,
}

/// Serves `rpc.discover`: the OpenRPC document of the services a server hosts.
#[derive(Clone)]
pub struct Discover {
    document: Arc<Value>,
}

impl Discover {
    /// Serves the OpenRPC document `text`, such as the generated `service_openrpc("driver")`.
    pub fn new(text: &str) -> Result<Self, serde_json::Error> {
        Ok(Discover { document: Arc::new(serde_json::from_str(text)?) })
    }

    /// Serves the document of exactly the services `handler` hosts: the services its methods
    /// belong to (`service.method`; `rpc.*` and unknown services left out), each described by
    /// `document_of` (the generated `service_openrpc`), merged as [`Discover::merged`] does.
    pub fn hosting(
        handler: &dyn Handler,
        document_of: impl Fn(&str) -> Option<&'static str>,
    ) -> Result<Self, serde_json::Error> {
        let mut services: Vec<&str> = handler
            .methods()
            .into_iter()
            .filter_map(|method| method.split_once('.'))
            .map(|(service, _)| service)
            .collect();
        services.sort_unstable();
        services.dedup();
        Self::merged(services.into_iter().filter(|service| *service != "rpc").filter_map(document_of))
    }

    /// Serves one document describing several hosted services: the first document's `info`,
    /// every document's methods and events (`x-events`) in order, and the union of their
    /// `components.schemas` (the
    /// generated per-service documents of one protocol agree on every schema they share).
    pub fn merged<'t>(texts: impl IntoIterator<Item = &'t str>) -> Result<Self, serde_json::Error> {
        let mut merged: Option<Value> = None;
        for text in texts {
            let document: Value = serde_json::from_str(text)?;
            let Some(into) = merged.as_mut() else {
                merged = Some(document);
                continue;
            };
            let Value::Object(mut document) = document else { continue };
            for list in ["methods", "x-events"] {
                let Some(Value::Array(more)) = document.remove(list) else { continue };
                match into.get_mut(list) {
                    Some(Value::Array(items)) => items.extend(more),
                    _ => {
                        if let Some(into) = into.as_object_mut() {
                            into.insert(list.to_string(), Value::Array(more));
                        }
                    }
                }
            }
            let schemas = document.get_mut("components").and_then(|c| c.get_mut("schemas")).map(Value::take);
            if let (Some(Value::Object(into)), Some(Value::Object(more))) =
                (into.pointer_mut("/components/schemas"), schemas)
            {
                for (name, schema) in more {
                    into.entry(name).or_insert(schema);
                }
            }
        }
        Ok(Discover {
            document: Arc::new(merged.unwrap_or_else(|| serde_json::json!({"openrpc": "1.3.2", "methods": []}))),
        })
    }
}

impl Handler for Discover {
    fn handle<'a>(&'a self, _method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            match params {
                Params::None => Ok((*self.document).clone()),
                Params::ByName(map) if map.is_empty() => Ok((*self.document).clone()),
                Params::ByPosition(items) if items.is_empty() => Ok((*self.document).clone()),
                _ => Err(RpcError::invalid_params([("", "rpc.discover takes no params")])),
            }
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        vec!["rpc.discover"]
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error object.
    #[error("the server answered {0}")]
    Rpc(RpcError),
    /// The transport failed (connection, framing, timeout).
    #[error("transport: {0}")]
    Transport(String),
    /// The answer did not fit the schema.
    #[error("the result does not fit the schema: {0}")]
    Decode(WireError),
}

/// How a generated client reaches a server.
pub trait ClientTransport: Send + Sync {
    /// Sends a request and waits for its answer.
    fn request<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>>;
    /// Sends a notification; nothing comes back.
    fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>>;
    /// Subscribes to events ([`events`]) and returns the stream of what comes. Transports that
    /// cannot carry events refuse.
    fn subscribe(
        &self,
        subscription: events::Subscription,
    ) -> BoxFuture<'_, Result<Box<dyn events::RawEvents>, CallError>> {
        let _ = subscription;
        Box::pin(async { Err(CallError::Transport("this transport carries no events".to_string())) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merged_documents_keep_every_services_methods_and_events() {
        let first = json!({"openrpc": "1.3.2", "info": {"title": "a"}, "methods": [{"name": "a.m"}],
            "x-events": [{"name": "a.e"}], "components": {"schemas": {"A": {}}}});
        let second = json!({"openrpc": "1.3.2", "info": {"title": "b"}, "methods": [{"name": "b.m"}],
            "x-events": [{"name": "b.e"}], "components": {"schemas": {"B": {}}}});
        let third = json!({"openrpc": "1.3.2", "methods": [{"name": "c.m"}]});
        let texts = [first.to_string(), second.to_string(), third.to_string()];
        let merged = Discover::merged(texts.iter().map(String::as_str)).unwrap();
        let names = |merged: &Discover, list: &str| -> Vec<String> {
            merged.document[list].as_array().unwrap().iter().map(|item| item["name"].as_str().unwrap().into()).collect()
        };
        assert_eq!(names(&merged, "methods"), ["a.m", "b.m", "c.m"]);
        assert_eq!(names(&merged, "x-events"), ["a.e", "b.e"]);
        assert_eq!(merged.document["info"]["title"], "a");
        assert!(merged.document["components"]["schemas"].get("B").is_some());

        // Events of a later document survive a first one without any.
        let texts = [third.to_string(), second.to_string()];
        let merged = Discover::merged(texts.iter().map(String::as_str)).unwrap();
        assert_eq!(names(&merged, "x-events"), ["b.e"]);
    }
}
