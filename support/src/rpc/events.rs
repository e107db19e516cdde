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

use super::BoxFuture;
use crate::wire::{Manifest, WireError};

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
    /// Event names, `service.event`.
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
