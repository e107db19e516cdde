//! The transport-independent JSON-RPC server: limits, parsing, admission and dispatch.
//!
//! A transport hands each frame to [`Engine::parse`], admits the calls against the
//! connection's [`InFlight`] budget with [`Engine::admit`], and writes the [`Reply`] that
//! [`Engine::start`] gives at once or once its handlers finish (if any). [`Engine::handle`]
//! does all three.

use std::{
    collections::BTreeSet,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use futures_util::{
    future::{join_all, BoxFuture},
    FutureExt,
};
use serde_json::{json, Value};
use smallvec::{smallvec, SmallVec};
use vproto_support::rpc::{codes, Handler, Params, ResultJson, RpcError};

use super::{
    depth,
    message::{self, Call, Entry, Id, Incoming, Response},
};
use crate::{events::EventHub, limits::Limits};

/// `-32000 "message too large"`, naming the limit.
pub fn message_too_large(limit: usize) -> RpcError {
    RpcError::new(codes::LIMIT_EXCEEDED, "message too large")
        .with_data(json!({ "limit": limit, "detail": format!("messages are limited to {limit} bytes") }))
}

/// `-32000 "too many requests in flight"`, naming the limit.
pub fn too_many_in_flight(limit: usize) -> RpcError {
    RpcError::new(codes::LIMIT_EXCEEDED, "too many requests in flight")
        .with_data(json!({ "limit": limit, "detail": format!("a connection may have {limit} calls running at once") }))
}

/// `-32000 "too many connections"`, naming the limit.
pub fn too_many_connections(limit: usize) -> RpcError {
    RpcError::new(codes::LIMIT_EXCEEDED, "too many connections")
        .with_data(json!({ "limit": limit, "detail": format!("the server serves {limit} connections at once") }))
}

/// `-32600` for a message nested deeper than the limit.
pub fn too_deep(limit: usize) -> RpcError {
    RpcError::new(codes::INVALID_REQUEST, format!("Invalid Request: nesting deeper than the limit of {limit} levels"))
        .with_data(json!({ "limit": limit }))
}

/// `-32001 "Unauthorized"` with the reason.
pub fn unauthorized(detail: impl Into<String>) -> RpcError {
    RpcError::new(codes::UNAUTHORIZED, "Unauthorized").with_data(Value::String(detail.into()))
}

/// The calls a connection may run at once (see [`Limits::max_in_flight`]). Cloning shares the
/// budget.
///
/// Slots are only ever taken with [`InFlight::try_acquire`], never waited for, so an atomic
/// count does what a semaphore would without its lock on every release.
#[derive(Clone, Debug)]
pub struct InFlight {
    running: Arc<AtomicUsize>,
    max: usize,
}

/// One taken slot of an [`InFlight`] budget, freed when dropped.
#[derive(Debug)]
pub struct InFlightSlot(Arc<AtomicUsize>);

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl InFlight {
    /// A budget of `max` calls.
    pub fn new(max: usize) -> Self {
        InFlight { running: Arc::new(AtomicUsize::new(0)), max }
    }

    /// Takes one slot, if one is free; the slot is freed when it is dropped.
    pub fn try_acquire(&self) -> Option<InFlightSlot> {
        self.running
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |running| (running < self.max).then_some(running + 1))
            .ok()
            .map(|_| InFlightSlot(self.running.clone()))
    }

    /// The size of the budget.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// A frame's calls after admission: each either answered already (invalid, or over the
/// in-flight budget) or holding a slot and ready to run.
#[derive(Debug)]
pub struct Admitted {
    batch: bool,
    slots: Vec<Slot>,
}

#[derive(Debug)]
enum Slot {
    Done(Option<Response>),
    Run(Call, InFlightSlot),
}

/// The answer to one frame: the text to send (none for notifications and all-notification
/// batches) and the in-flight slots it holds until it has been written.
#[derive(Debug)]
pub struct Reply {
    /// One JSON text (a response or an array of them), without a newline.
    pub text: Option<String>,
    _slots: SmallVec<[InFlightSlot; 1]>,
}

impl Reply {
    /// A reply holding no slot.
    pub fn immediate(text: Option<String>) -> Self {
        Reply { text, _slots: SmallVec::new() }
    }
}

/// A frame being answered: its reply is ready, or waits for handlers that have yet to finish.
pub enum Answer<'a> {
    /// Every call finished without waiting.
    Ready(Reply),
    /// Some call waits (on I/O, a timer, another service); the future finishes the reply.
    Waiting(BoxFuture<'a, Reply>),
}

/// Answers JSON-RPC frames by dispatching to a handler, within [`Limits`].
pub struct Engine {
    handler: Arc<dyn Handler>,
    limits: Limits,
    /// The methods the handler registers; `rpc.*` names outside it are not found.
    methods: BTreeSet<&'static str>,
    /// Where connections subscribe to events, when the server serves any.
    events: Option<EventHub>,
}

impl Engine {
    /// An engine dispatching to `handler`.
    pub fn new(handler: Arc<dyn Handler>, limits: Limits) -> Self {
        let methods = handler.methods().into_iter().collect();
        Engine { handler, limits, methods, events: None }
    }

    /// The same engine with events: stream transports answer `rpc.subscribe` and
    /// `rpc.unsubscribe` from `hub` (docs/events.md), HTTP serves `GET /events`.
    pub fn with_events(mut self, hub: EventHub) -> Self {
        self.events = Some(hub);
        self
    }

    /// The events hub, when the server serves events.
    pub fn events(&self) -> Option<&EventHub> {
        self.events.as_ref()
    }

    /// Whether the handler registers `method`.
    pub fn serves(&self, method: &str) -> bool {
        self.methods.contains(method)
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Size, UTF-8 and depth checks, then the text.
    fn check<'a>(&self, bytes: &'a [u8]) -> Result<&'a str, RpcError> {
        if bytes.len() > self.limits.max_message_size {
            return Err(message_too_large(self.limits.max_message_size));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|error| RpcError::parse_error(format!("invalid UTF-8 at byte {}", error.valid_up_to())))?;
        if depth::exceeds(bytes, self.limits.max_depth) {
            return Err(too_deep(self.limits.max_depth));
        }
        Ok(text)
    }

    /// Reads one frame into calls; every problem becomes an error entry, never a panic.
    pub fn parse(&self, frame: &[u8]) -> Incoming {
        match self.check(frame) {
            Ok(text) => message::parse(text),
            Err(error) => Incoming::Single(Entry::Invalid(Response::error(Id::null(), error))),
        }
    }

    /// Reads a plain JSON value (a REST body) under the same size, UTF-8 and depth limits.
    pub fn parse_value(&self, bytes: &[u8]) -> Result<Value, RpcError> {
        let text = self.check(bytes)?;
        serde_json::from_str(text).map_err(|error| RpcError::parse_error(error.to_string()))
    }

    /// Gives each call a slot of `in_flight`; requests that find none are answered with
    /// `-32000 "too many requests in flight"`, notifications that find none are dropped.
    pub fn admit(&self, incoming: Incoming, in_flight: &InFlight) -> Admitted {
        let (batch, entries) = match incoming {
            Incoming::Single(entry) => (false, vec![entry]),
            Incoming::Batch(entries) => (true, entries),
        };
        let slots = entries
            .into_iter()
            .map(|entry| match entry {
                Entry::Invalid(response) => Slot::Done(Some(response)),
                Entry::Call(call) => match in_flight.try_acquire() {
                    Some(permit) => Slot::Run(call, permit),
                    None => Slot::Done(call.id.map(|id| Response::error(id, too_many_in_flight(in_flight.max())))),
                },
            })
            .collect();
        Admitted { batch, slots }
    }

    /// Starts answering an admitted frame, running its calls as far as they go without
    /// waiting. A lone request to a registered method (the common case) takes a path that
    /// allocates nothing beyond what its handler does, and sends a result the handler keeps
    /// as JSON text ([`Handler::handle_json`]) as it is.
    pub fn start(&self, mut admitted: Admitted) -> Answer<'_> {
        let registered = match admitted.slots.as_slice() {
            [Slot::Run(call, _)] if !admitted.batch => self.methods.get(call.method.as_str()).copied(),
            _ => None,
        };
        if let Some(method) = registered {
            let Some(Slot::Run(call, slot)) = admitted.slots.pop() else { unreachable!("one call, matched above") };
            return self.start_call(method, call, slot);
        }
        let mut run = self.run(admitted).boxed();
        match run.as_mut().now_or_never() {
            Some(reply) => Answer::Ready(reply),
            None => Answer::Waiting(run),
        }
    }

    /// One call to a registered method: its handler is polled once here, and only a call that
    /// has to wait is put in a future of its own.
    fn start_call(&self, method: &'static str, call: Call, slot: InFlightSlot) -> Answer<'_> {
        let id = call.id;
        let reply = move |outcome: Result<ResultJson, RpcError>| {
            let text = id.map(|id| match outcome {
                Ok(ResultJson::Text(text)) => Response::with_result_text(&id, &text),
                Ok(ResultJson::Value(value)) => Response { id, outcome: Ok(value) }.to_json(),
                Err(error) => Response { id, outcome: Err(error) }.to_json(),
            });
            Reply { text, _slots: smallvec![slot] }
        };
        let mut outcome = AssertUnwindSafe(self.handler.handle_json(method, call.params)).catch_unwind();
        match (&mut outcome).now_or_never() {
            Some(caught) => Answer::Ready(reply(settle(method, caught))),
            None => Answer::Waiting(Box::pin(async move { reply(settle(method, outcome.await)) })),
        }
    }

    /// Runs the admitted calls (a batch's concurrently) and builds the reply.
    ///
    /// Calls run inside the caller's task, not spawned: one task hand-off less per request.
    /// Dropping the future (the connection went away) cancels them.
    pub async fn run(&self, admitted: Admitted) -> Reply {
        enum Pending {
            Done(Option<Response>),
            Call(Option<Id>),
        }
        let mut calls = Vec::new();
        let mut permits = Vec::new();
        let mut pending = Vec::with_capacity(admitted.slots.len());
        for slot in admitted.slots {
            match slot {
                Slot::Done(response) => pending.push(Pending::Done(response)),
                Slot::Run(call, permit) => {
                    permits.push(permit);
                    match self.reserved_check(&call.method) {
                        Err(error) => pending.push(Pending::Done(call.id.map(|id| Response::error(id, error)))),
                        Ok(()) => {
                            calls.push(self.dispatch(call.method, call.params));
                            pending.push(Pending::Call(call.id));
                        }
                    }
                }
            }
        }
        let mut outcomes =
            if calls.len() == 1 { vec![calls.pop().expect("one call").await] } else { join_all(calls).await }
                .into_iter();
        let mut responses = Vec::with_capacity(pending.len());
        for item in pending {
            match item {
                Pending::Done(response) => responses.extend(response),
                Pending::Call(id) => {
                    let outcome = outcomes.next().expect("one outcome per call");
                    responses.extend(id.map(|id| Response { id, outcome }));
                }
            }
        }
        let text = if admitted.batch {
            (!responses.is_empty()).then(|| {
                let items: Vec<String> = responses.iter().map(Response::to_json).collect();
                format!("[{}]", items.join(","))
            })
        } else {
            responses.first().map(Response::to_json)
        };
        Reply { text, _slots: permits.into() }
    }

    /// Parses, admits and runs one frame.
    pub async fn handle(&self, frame: &[u8], in_flight: &InFlight) -> Reply {
        match self.start(self.admit(self.parse(frame), in_flight)) {
            Answer::Ready(reply) => reply,
            Answer::Waiting(reply) => reply.await,
        }
    }

    /// Calls one method directly (REST routes): reserved names are checked, and a handler
    /// that panics yields `-32603` instead of tearing down the connection.
    pub async fn call(&self, method: &str, params: Params) -> Result<Value, RpcError> {
        self.reserved_check(method)?;
        self.dispatch(method.to_string(), params).await
    }

    /// `rpc.*` names are reserved: only those the handler registers are served.
    fn reserved_check(&self, method: &str) -> Result<(), RpcError> {
        if method.starts_with("rpc.") && !self.methods.contains(method) {
            return Err(RpcError::method_not_found(method));
        }
        Ok(())
    }

    /// The handler's answer to one call; a panic in the handler becomes `-32603`.
    async fn dispatch(&self, method: String, params: Params) -> Result<Value, RpcError> {
        let caught = AssertUnwindSafe(self.handler.handle(&method, params)).catch_unwind().await;
        settle(&method, caught)
    }
}

/// A handler's outcome, caught: a panic is logged and becomes `-32603`, without details.
fn settle<T>(method: &str, caught: std::thread::Result<Result<T, RpcError>>) -> Result<T, RpcError> {
    caught.unwrap_or_else(|_panic| {
        tracing::error!(method, "the handler panicked");
        Err(RpcError::internal_because("the handler panicked"))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    /// Answers `test.kept` with text it keeps, and `test.value` with a value.
    struct Kept(Arc<RawValue>);

    impl Handler for Kept {
        fn handle<'a>(&'a self, method: &'a str, _params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
            let answer = serde_json::from_str(self.0.get()).map_err(|e| RpcError::internal_because(e.to_string()));
            Box::pin(async move {
                if method == "test.value" {
                    Ok(json!(1))
                } else {
                    answer
                }
            })
        }

        fn handle_json<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<ResultJson, RpcError>> {
            if method != "test.kept" {
                let answer = self.handle(method, params);
                return Box::pin(async move { answer.await.map(ResultJson::Value) });
            }
            let text = self.0.clone();
            Box::pin(async move { Ok(ResultJson::Text(text)) })
        }

        fn methods(&self) -> Vec<&'static str> {
            vec!["test.kept", "test.value"]
        }
    }

    #[tokio::test]
    async fn a_result_kept_as_text_is_sent_as_it_is_and_a_batch_gets_its_value() {
        let text: Arc<RawValue> = RawValue::from_string(r#"{"kept": [1,  2]}"#.to_string()).unwrap().into();
        let engine = Engine::new(Arc::new(Kept(text)), Limits::default());
        let in_flight = InFlight::new(4);
        let reply = |frame: &'static str| {
            let (engine, in_flight) = (&engine, &in_flight);
            async move { engine.handle(frame.as_bytes(), in_flight).await.text.unwrap() }
        };
        let kept = r#"{"jsonrpc":"2.0","result":{"kept": [1,  2]},"id":1}"#;
        assert_eq!(reply(r#"{"jsonrpc":"2.0","method":"test.kept","id":1}"#).await, kept);
        assert_eq!(
            reply(r#"{"jsonrpc":"2.0","method":"test.value","id":2}"#).await,
            r#"{"jsonrpc":"2.0","result":1,"id":2}"#
        );
        // A batch's calls go through `handle`: the same result, written from its value.
        assert_eq!(
            reply(r#"[{"jsonrpc":"2.0","method":"test.kept","id":3}]"#).await,
            r#"[{"jsonrpc":"2.0","result":{"kept":[1,2]},"id":3}]"#
        );
    }

    #[test]
    fn in_flight_slots_are_counted_shared_and_freed() {
        let budget = InFlight::new(2);
        let shared = budget.clone();
        let first = budget.try_acquire().expect("a free slot");
        let _second = shared.try_acquire().expect("a free slot");
        assert!(budget.try_acquire().is_none(), "both slots are taken");
        drop(first);
        assert!(shared.try_acquire().is_some(), "a dropped slot is free again");
        assert!(InFlight::new(0).try_acquire().is_none());
    }
}
