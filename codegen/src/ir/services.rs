//! Services, their methods and the errors those declare.
//!
//! A method's params, result and errors are resolved here, so an emitter never looks a name
//! up. Events sit beside [`ServiceIr::methods`] as [`EventIr`]s made of the same parts: a wire
//! name, docs and versions, and [`ParamIr`]s, without result, errors or HTTP binding.

use indexmap::IndexMap;

use super::types::{rust_type, RustType, TypeIr};
use crate::{
    model::{ErrorDef, Event, EventExample, Example, HttpMethod, Method, Param, Service, TypeExpr, Version},
    naming::method_wire_name,
};

/// The name of the error that carries version negotiation: its data has `object` and
/// `max_version`.
pub const UNSUPPORTED_VERSION: &str = "UnsupportedVersion";

/// A service: a group of methods served together.
#[derive(Clone, Debug)]
pub struct ServiceIr<'s> {
    /// The service's name, the first part of its methods' wire names.
    pub name: &'s str,
    /// What the service does.
    pub description: &'s str,
    /// The protocol version that introduced the service.
    pub since: Version,
    /// The methods, in schema order.
    pub methods: Vec<MethodIr<'s>>,
    /// The events, in schema order, removed ones included.
    pub events: Vec<EventIr<'s>>,
}

impl<'s> ServiceIr<'s> {
    pub(super) fn new(name: &'s str, service: &'s Service, errors: &[ErrorIr<'s>]) -> Self {
        ServiceIr {
            name,
            description: &service.description,
            since: service.since,
            methods: service
                .methods
                .iter()
                .map(|(method_name, method)| MethodIr::new(name, method_name, method, errors))
                .collect(),
            events: service.events.iter().map(|(event_name, event)| EventIr::new(name, event_name, event)).collect(),
        }
    }

    /// The events a current server sends: those not removed (a removed event's `removed` is a
    /// version of the protocol's history, so never after the current one).
    pub fn current_events(&self) -> impl Iterator<Item = &EventIr<'s>> {
        self.events.iter().filter(|event| event.removed.is_none())
    }
}

/// An event: a notification a server sends to the clients that subscribed to it.
#[derive(Clone, Debug)]
pub struct EventIr<'s> {
    /// The service it belongs to.
    pub service: &'s str,
    /// The event's name within the service.
    pub name: &'s str,
    /// The notification's method: the schema's `wire_name`, or `service.event`.
    pub wire_name: String,
    /// What happened when it is sent.
    pub description: &'s str,
    /// The protocol version that introduced the event.
    pub since: Version,
    /// The protocol version from which it is deprecated.
    pub deprecated: Option<Version>,
    /// The protocol version from which servers no longer send it.
    pub removed: Option<Version>,
    /// Its params (the payload), in schema order.
    pub params: Vec<ParamIr<'s>>,
    /// Example payloads.
    pub examples: &'s [EventExample],
}

impl<'s> EventIr<'s> {
    fn new(service: &'s str, name: &'s str, event: &'s Event) -> Self {
        EventIr {
            service,
            name,
            wire_name: event.wire_name.clone().unwrap_or_else(|| method_wire_name(service, name)),
            description: &event.description,
            since: event.since,
            deprecated: event.deprecated,
            removed: event.removed,
            params: params(&event.params),
            examples: &event.examples,
        }
    }
}

/// The params of a method or event, in schema order.
fn params(params: &IndexMap<String, Param>) -> Vec<ParamIr<'_>> {
    params
        .iter()
        .map(|(param_name, param)| ParamIr {
            name: param_name,
            wire_name: param.wire_name.as_deref().unwrap_or(param_name),
            description: &param.description,
            schema: &param.schema,
            rust_type: rust_type(&param.schema),
            required: param.required,
            since: param.since,
            deprecated: param.deprecated,
        })
        .collect()
}

/// One RPC method.
#[derive(Clone, Debug)]
pub struct MethodIr<'s> {
    /// The service it belongs to.
    pub service: &'s str,
    /// The method's name within the service.
    pub name: &'s str,
    /// The name it is called by: the schema's `wire_name`, or `service.method`.
    pub wire_name: String,
    /// What the method does.
    pub description: &'s str,
    /// The protocol version that introduced the method.
    pub since: Version,
    /// The protocol version from which the method is deprecated.
    pub deprecated: Option<Version>,
    /// The params, in positional order.
    pub params: Vec<ParamIr<'s>>,
    /// The result; `None` for a method answered with `null` and for notifications.
    pub result: Option<TypeIr<'s>>,
    /// The method is a notification: it is never answered.
    pub notification: bool,
    /// The errors the method declares, in the schema's order.
    pub errors: Vec<ErrorIr<'s>>,
    /// The method declares [`UNSUPPORTED_VERSION`]: a server answers it before validating
    /// params that hold objects newer than it knows.
    pub negotiates: bool,
    /// The REST binding, for HTTP transports.
    pub http: Option<HttpIr<'s>>,
    /// The roles that may call it; empty: every caller.
    pub roles: Vec<&'s str>,
    /// Example calls.
    pub examples: &'s [Example],
}

impl<'s> MethodIr<'s> {
    fn new(service: &'s str, name: &'s str, method: &'s Method, errors: &[ErrorIr<'s>]) -> Self {
        let declared: Vec<ErrorIr> = method
            .errors
            .iter()
            .filter_map(|declared| errors.iter().find(|error| error.name == declared.as_str()).cloned())
            .collect();
        MethodIr {
            service,
            name,
            wire_name: method.wire_name.clone().unwrap_or_else(|| method_wire_name(service, name)),
            description: &method.description,
            since: method.since,
            deprecated: method.deprecated,
            params: params(&method.params),
            result: method.result.as_ref().map(TypeIr::new),
            notification: method.notification,
            negotiates: declared.iter().any(|error| error.name == UNSUPPORTED_VERSION),
            errors: declared,
            http: method.http.as_ref().map(|http| HttpIr {
                method: http.method,
                path: &http.path,
                // The body is named on the wire as its param is.
                body: http.body.as_deref().map(|body| match method.params.get(body) {
                    Some(param) => param.wire_name.as_deref().unwrap_or(body),
                    None => body,
                }),
            }),
            roles: method.roles.iter().flatten().map(String::as_str).collect(),
            examples: &method.examples,
        }
    }

    /// The param a REST route's request body is, when its binding names one.
    pub fn body_param(&self) -> Option<&ParamIr<'s>> {
        let body = self.http.as_ref()?.body?;
        self.params.iter().find(|param| param.wire_name == body)
    }
}

/// A param of a method or event.
#[derive(Clone, Debug)]
pub struct ParamIr<'s> {
    /// The param's schema name (the Rust name), and its place in [`MethodIr::params`]
    /// (positional).
    pub name: &'s str,
    /// The name params by name give it on the wire: the schema's `wire_name`, or the name.
    pub wire_name: &'s str,
    /// What the param means.
    pub description: &'s str,
    /// The param's type, as the schema writes it.
    pub schema: &'s TypeExpr,
    /// Its Rust type, without the `Option` an optional param adds.
    pub rust_type: RustType,
    /// The param must be given.
    pub required: bool,
    /// The protocol version that added the param.
    pub since: Option<Version>,
    /// The protocol version from which it should no longer be given.
    pub deprecated: Option<Version>,
}

/// A REST binding of a method.
#[derive(Clone, Debug)]
pub struct HttpIr<'s> {
    /// The HTTP verb.
    pub method: HttpMethod,
    /// The path, starting with `/`.
    pub path: &'s str,
    /// The wire name of the param the request body is, if the binding names one (see
    /// [`MethodIr::body_param`]).
    pub body: Option<&'s str>,
}

/// A declared error.
#[derive(Clone, Debug)]
pub struct ErrorIr<'s> {
    /// The error's name.
    pub name: &'s str,
    /// Its stable JSON-RPC code.
    pub code: i64,
    /// Its fixed message.
    pub message: &'s str,
    /// When it is raised and what a client should do.
    pub description: &'s str,
    /// The protocol version that introduced it.
    pub since: Version,
    /// The type of its `data` member, if it has one.
    pub data: Option<TypeIr<'s>>,
}

impl<'s> ErrorIr<'s> {
    pub(super) fn new(name: &'s str, error: &'s ErrorDef) -> Self {
        ErrorIr {
            name,
            code: error.code,
            message: &error.message,
            description: &error.description,
            since: error.since,
            data: error.data.as_ref().map(TypeIr::new),
        }
    }
}
