//! Events: notifications a server sends, unasked, to the clients that subscribed to them.
//!
//! The contract between the three parties (docs/events.md):
//! - generated code describes each service's events as one enum implementing [`Event`] (to
//!   publish it) and [`EventSet`] (to decode it);
//! - a service publishes through a [`Publisher`] typed by that enum, which hands the event to an
//!   [`EventSink`] — the server's subscription hub in vproto-jsonrpc, or nowhere;
//! - a client receives [`RawEvent`]s from its transport ([`ClientTransport::subscribe`]) and
//!   decodes them into [`Received`] values, passing events a newer server knows and it does not
//!   through as raw.
//!
//! On the wire an event is a JSON-RPC notification whose method is `service.event` and whose
//! params are the event's params object, with every versioned object written at the version the
//! subscriber asked for in its [`Subscription`] (backlevelled as results are).

use std::{fmt, marker::PhantomData, sync::Arc};

use serde_json::{Map, Value};

use super::{violations, BoxFuture, CallError, ClientTransport};
use crate::wire::{backport_envelope, keys, Manifest, Registry, WireError, WirePath, WireValue};

/// The method a client subscribes with: params `{"events": [NAME...], "versions": {OBJECT: "M.m"}}`.
pub const SUBSCRIBE: &str = "rpc.subscribe";
/// The method a client unsubscribes with: params `{"events": [NAME...]}` (every event when absent).
pub const UNSUBSCRIBE: &str = "rpc.unsubscribe";
/// The last event a subscriber that fell too far behind receives before its subscriptions end:
/// params `{"reason": TEXT, "dropped": N}`.
pub const SUBSCRIPTION_LOST: &str = "rpc.subscription_lost";

/// One event of a schema's services, as generated code describes it (an enum per service).
pub trait Event: fmt::Debug + Send + Sync + 'static {
    /// Its wire name, `service.event`: the notification's method.
    fn name(&self) -> &'static str;
    /// Its params object, each versioned object written at the version `manifest` names for its
    /// class, or at its newest version when the manifest names none.
    fn to_params(&self, manifest: &Manifest) -> Result<Map<String, Value>, WireError>;
}

/// Where published events go: a server's subscription hub, which queues each event for the
/// connections subscribed to it.
pub trait EventSink: Send + Sync + 'static {
    /// Hands over one event. Never blocks: a subscriber that cannot keep up loses its
    /// subscription, never the publisher its time.
    fn publish(&self, event: Arc<dyn Event>);
}

/// A service's handle for publishing its events, typed by the generated event enum `E`.
pub struct Publisher<E> {
    sink: Option<Arc<dyn EventSink>>,
    _events: PhantomData<fn(E)>,
}

impl<E> Clone for Publisher<E> {
    fn clone(&self) -> Self {
        Publisher { sink: self.sink.clone(), _events: PhantomData }
    }
}

impl<E> fmt::Debug for Publisher<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher").field("connected", &self.sink.is_some()).finish()
    }
}

impl<E: Event> Publisher<E> {
    /// Publishes into `sink`.
    pub fn new(sink: Arc<dyn EventSink>) -> Self {
        Publisher { sink: Some(sink), _events: PhantomData }
    }

    /// Publishes nowhere (a service run without a server, tests).
    pub fn disconnected() -> Self {
        Publisher { sink: None, _events: PhantomData }
    }

    /// Publishes one event to whoever subscribed to it.
    pub fn publish(&self, event: E) {
        if let Some(sink) = &self.sink {
            sink.publish(Arc::new(event));
        }
    }
}

/// A generated set of events a client can decode (one service's event enum).
pub trait EventSet: Sized + Send + 'static {
    /// The wire names of its events, `service.event`.
    const NAMES: &'static [&'static str];
    /// Decodes a notification: `Ok(None)` when `method` is none of its events, an error when it
    /// is one but its params do not fit the schema.
    fn decode(method: &str, params: &Value) -> Result<Option<Self>, WireError>;
}

/// What a client asks to receive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Event names, `service.event`; empty means every event the server serves.
    pub events: Vec<String>,
    /// The versions of versioned objects it reads (an oslo-style manifest); objects not named
    /// come at their newest version.
    pub versions: Manifest,
}

/// A notification as it arrived, before decoding.
#[derive(Clone, Debug, PartialEq)]
pub struct RawEvent {
    /// The notification's method.
    pub method: String,
    /// Its params (`Value::Null` when absent).
    pub params: Value,
}

/// What a client's event stream yields.
#[derive(Clone, Debug, PartialEq)]
pub enum Received<E> {
    /// An event of the set, decoded.
    Known(E),
    /// An event the set does not know (a newer server's), passed through as it came.
    Unknown(RawEvent),
    /// The server ended the subscription ([`SUBSCRIPTION_LOST`]): nothing more will come.
    Lost {
        /// The server's reason.
        reason: String,
        /// Events dropped before it gave up.
        dropped: u64,
    },
}

impl<E: EventSet> Received<E> {
    /// Decodes one raw notification.
    pub fn decode(raw: RawEvent) -> Result<Self, WireError> {
        if raw.method == SUBSCRIPTION_LOST {
            let reason = raw.params.get("reason").and_then(Value::as_str).unwrap_or("unknown").to_string();
            let dropped = raw.params.get("dropped").and_then(Value::as_u64).unwrap_or(0);
            return Ok(Received::Lost { reason, dropped });
        }
        Ok(match E::decode(&raw.method, &raw.params)? {
            Some(event) => Received::Known(event),
            None => Received::Unknown(raw),
        })
    }
}

/// A stream of raw notifications for one subscription: `next` waits for the next one, `None`
/// once the connection or the subscription has ended.
pub trait RawEvents: Send {
    /// The next notification.
    fn next(&mut self) -> BoxFuture<'_, Option<RawEvent>>;
}

/// A notification of a known event whose params do not fit the schema: what an
/// [`EventStream`] yields in its place, with the event as it came.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("event {method}: {error}", method = .raw.method)]
pub struct UndecodableEvent {
    /// The notification as it arrived.
    pub raw: RawEvent,
    /// Why it could not be decoded.
    pub error: WireError,
}

/// A client's typed stream of one subscription's events, decoded as the event set `E` (a
/// generated `<Service>Event`) describes them; what a generated client's `subscribe` returns.
///
/// [`EventStream::next`] waits for the next notification: a known event decoded, an unknown
/// one (a newer server's) passed through as raw, [`Received::Lost`] when the server ended the
/// subscription, after which (as after the connection ends) it yields `None`.
pub struct EventStream<E> {
    raw: Box<dyn RawEvents>,
    ended: bool,
    _events: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for EventStream<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").field("ended", &self.ended).finish_non_exhaustive()
    }
}

impl<E: EventSet> EventStream<E> {
    /// Decodes the notifications of `raw`.
    pub fn new(raw: Box<dyn RawEvents>) -> Self {
        EventStream { raw, ended: false, _events: PhantomData }
    }

    /// Subscribes through `transport` to `events` (wire names, `service.event`; `E::NAMES` for
    /// every event of the set, and names the set does not know are passed through as raw),
    /// versioned objects written at `versions` (an oslo-style manifest; objects it does not
    /// name come at their newest version).
    pub async fn subscribe<T: ClientTransport + ?Sized>(
        transport: &T,
        events: &[&str],
        versions: Manifest,
    ) -> Result<Self, CallError> {
        let subscription = Subscription { events: events.iter().map(|event| (*event).to_string()).collect(), versions };
        Ok(EventStream::new(transport.subscribe(subscription).await?))
    }

    /// The next event; `None` once the subscription or the connection has ended. A known
    /// event whose params do not fit the schema is an error, and the stream goes on.
    pub async fn next(&mut self) -> Option<Result<Received<E>, UndecodableEvent>> {
        if self.ended {
            return None;
        }
        let Some(raw) = self.raw.next().await else {
            self.ended = true;
            return None;
        };
        if raw.method == SUBSCRIPTION_LOST {
            self.ended = true;
            // Rare, so the copy kept for an error costs nothing that matters.
            return Some(Received::decode(raw.clone()).map_err(|error| UndecodableEvent { raw, error }));
        }
        // Decoded from a reference: the raw event moves into `Unknown` or the error, never copied.
        Some(match E::decode(&raw.method, &raw.params) {
            Ok(Some(event)) => Ok(Received::Known(event)),
            Ok(None) => Ok(Received::Unknown(raw)),
            Err(error) => Err(UndecodableEvent { raw, error }),
        })
    }

    /// The raw notifications, undecoded.
    pub fn into_raw(self) -> Box<dyn RawEvents> {
        self.raw
    }
}

/// What generated `Event::to_params` returns: `params` (each written by `WireValue::to_wire`,
/// at its current version) with every versioned object at the version `manifest` names for its
/// class, or left at its newest when the manifest names none; children follow the manifest
/// too, as oslo's `obj_to_primitive(version_manifest=...)` converts them. Objects are found at
/// any depth of a param (in arrays, maps and plain objects).
pub fn params_at(
    registry: &Registry,
    mut params: Map<String, Value>,
    manifest: &Manifest,
) -> Result<Map<String, Value>, WireError> {
    if manifest.is_empty() {
        return Ok(params);
    }
    for (name, value) in params.iter_mut() {
        versions_at(registry, value, manifest, &WirePath::root().field(name))?;
    }
    Ok(params)
}

/// Converts every envelope in `value` (itself, or the outermost ones below it) as [`params_at`]
/// says; an envelope converts its own children.
fn versions_at(registry: &Registry, value: &mut Value, manifest: &Manifest, path: &WirePath) -> Result<(), WireError> {
    match value {
        Value::Object(map) if map.contains_key(keys::NAME) => {
            let name = map.get(keys::NAME).and_then(Value::as_str).unwrap_or_default();
            let info = registry.get(name).ok_or_else(|| WireError::UnknownObject {
                path: path.clone(),
                name: name.to_string(),
                expected: String::new(),
            })?;
            let target = manifest.get(name).copied().unwrap_or(info.version);
            backport_envelope(registry, value, target, Some(manifest), path)
        }
        Value::Object(map) => {
            map.iter_mut().try_for_each(|(key, item)| versions_at(registry, item, manifest, &path.field(key)))
        }
        Value::Array(items) => items
            .iter_mut()
            .enumerate()
            .try_for_each(|(index, item)| versions_at(registry, item, manifest, &path.index(index))),
        _ => Ok(()),
    }
}

/// What generated `EventSet::decode` reads an event's params with: the params object of
/// `method` (`null` reads as no params) without the params the event does not declare in
/// `known` (a newer server's, skipped as readers of tolerant objects skip fields), checked
/// as a server checks a method's params, against `def`, the event's params definition in the
/// JSON Schema `document`. Every violation is named in the error.
pub fn event_params(
    document: &'static str,
    def: &'static str,
    method: &str,
    known: &[&str],
    params: &Value,
) -> Result<Map<String, Value>, WireError> {
    let path = || WirePath::root().field(method);
    let named: Map<String, Value> = match params {
        Value::Null => Map::new(),
        Value::Object(map) => {
            map.iter().filter(|(name, _)| known.contains(&name.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        other => {
            return Err(WireError::WrongType {
                path: path(),
                expected: "params by name (an object)".into(),
                found: if other.is_array() { "an array".into() } else { other.to_string() },
            })
        }
    };
    let named = Value::Object(named);
    let found = violations(document, def, &named)
        .map_err(|error| WireError::InvalidValue { path: path(), why: format!("cannot check the params: {error}") })?;
    if !found.is_empty() {
        let listed: Vec<String> = found.iter().map(|(pointer, message)| format!("{pointer}: {message}")).collect();
        return Err(WireError::InvalidValue {
            path: path(),
            why: format!("the params do not fit the schema ({})", listed.join("; ")),
        });
    }
    let Value::Object(named) = named else { unreachable!("built as an object above") };
    Ok(named)
}

/// Reads the optional param `name` of event `method` from params [`event_params`] checked.
pub fn event_param<T: WireValue>(
    params: &Map<String, Value>,
    method: &str,
    name: &str,
) -> Result<Option<T>, WireError> {
    params.get(name).map(|value| T::from_wire(value, &WirePath::root().field(method).field(name))).transpose()
}

/// Reads the required param `name` of event `method` from params [`event_params`] checked.
pub fn required_event_param<T: WireValue>(
    params: &Map<String, Value>,
    method: &str,
    name: &str,
) -> Result<T, WireError> {
    event_param(params, method, name)?.ok_or_else(|| WireError::MissingField {
        path: WirePath::root().field(method),
        object: method.to_string(),
        field: name.to_string(),
    })
}
