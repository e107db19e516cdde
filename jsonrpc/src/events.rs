//! Events on the server side (docs/events.md): the [`EventHub`] services publish into, and
//! each connection's `Subscriber` that `rpc.subscribe` registers with it.
//!
//! ```text
//!   Publisher<E> ──► EventHub::publish: one payload per distinct manifest ──► per-connection queue
//!                                              (bounded: past the bound, the subscription is lost)
//!   line connection (lines.rs) / SSE body (http.rs) ◄── woken, drains its queue into its writer
//! ```
//!
//! Publishing never waits for a connection: it takes a read lock on the table of subscribers
//! (held for the push only), writes the event once per distinct version manifest among the
//! subscribers, and appends a shared payload to each subscriber's queue. A queue that is full
//! (the connection does not read) is emptied and replaced by one loss notice, and leaves the
//! table: a slow reader costs the server at most its queue bound.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    ops::Range,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
};

use futures_util::task::AtomicWaker;
use serde_json::{json, Map, Value};
use smallvec::SmallVec;
use vproto_support::{
    rpc::{
        events::{Event, EventSink, SUBSCRIPTION_LOST},
        Params, RpcError,
    },
    wire::{Manifest, Version},
};

use crate::limits::Limits;

/// Where a server's services publish their events, and what its connections subscribe to.
///
/// It knows the names of the events the server serves (`service.event`, the generated
/// `EventSet::NAMES` of each hosted service): a subscription naming anything else is refused
/// with invalid params, and an event published under another name is dropped with a warning.
/// Cheap to clone; clones are the same hub. Give it to the server with
/// [`Server::with_events`](crate::Server::with_events) and to services as
/// `Publisher::new(hub.sink())`:
///
/// ```
/// # use vproto_jsonrpc::{EventHub, Server};
/// # fn example(router: vproto_support::rpc::Router) {
/// let hub = EventHub::new(["conductor.agent_missing", "conductor.agent_back"]);
/// let sink = hub.sink(); // what a service's `Publisher::new` takes
/// let server = Server::new(router).with_events(hub);
/// # let _ = (sink, server); }
/// ```
#[derive(Clone)]
pub struct EventHub {
    hub: Arc<Hub>,
}

/// Counters of an [`EventHub`], for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Connections subscribed now (a connection whose subscription was lost no longer counts).
    pub subscribers: usize,
    /// Events published under a name the hub serves.
    pub published: u64,
    /// Subscriptions ended because their connection fell behind.
    pub lost: u64,
}

struct Hub {
    /// The events served, sorted; an event's index in it is its index everywhere else.
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// Per event index, the queues subscribed to it and the manifest each reads at.
    table: RwLock<Vec<Vec<Entry>>>,
    subscribers: AtomicUsize,
    published: AtomicU64,
    lost: AtomicU64,
}

/// The payloads one publish wrote, by manifest (`None`: it could not be written at it).
type Written<'a> = SmallVec<[(&'a Manifest, Option<Payload>); 2]>;

#[derive(Clone)]
struct Entry {
    queue: Arc<Queue>,
    manifest: Arc<Manifest>,
}

impl EventHub {
    /// A hub serving the events `names` (`service.event`).
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        names.sort_unstable();
        names.dedup();
        let index = names.iter().enumerate().map(|(at, name)| (name.clone(), at)).collect();
        let table = RwLock::new(vec![Vec::new(); names.len()]);
        EventHub {
            hub: Arc::new(Hub {
                names,
                index,
                table,
                subscribers: AtomicUsize::new(0),
                published: AtomicU64::new(0),
                lost: AtomicU64::new(0),
            }),
        }
    }

    /// The sink a service's `Publisher` publishes into.
    pub fn sink(&self) -> Arc<dyn EventSink> {
        Arc::new(self.clone())
    }

    /// The events it serves, sorted.
    pub fn names(&self) -> &[String] {
        &self.hub.names
    }

    /// Its counters now.
    pub fn stats(&self) -> HubStats {
        HubStats {
            subscribers: self.hub.subscribers.load(Ordering::Relaxed),
            published: self.hub.published.load(Ordering::Relaxed),
            lost: self.hub.lost.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub").field("names", &self.hub.names).field("stats", &self.stats()).finish()
    }
}

impl EventSink for EventHub {
    fn publish(&self, event: Arc<dyn Event>) {
        let hub = &*self.hub;
        let name = event.name();
        let Some(&index) = hub.index.get(name) else {
            tracing::warn!(event = name, "an event this server does not declare was published; dropped");
            return;
        };
        hub.published.fetch_add(1, Ordering::Relaxed);
        let mut lost: SmallVec<[Arc<Queue>; 1]> = SmallVec::new();
        {
            let table = hub.read();
            // Each distinct manifest's payload, written once for this publish (or not at all).
            let mut written: Written<'_> = SmallVec::new();
            for entry in &table[index] {
                let manifest = &*entry.manifest;
                let payload = match written.iter().find(|(seen, _)| std::ptr::eq(*seen, manifest) || *seen == manifest)
                {
                    Some((_, payload)) => payload.clone(),
                    None => {
                        let payload = Payload::write(&*event, index, manifest);
                        written.push((manifest, payload.clone()));
                        payload
                    }
                };
                let Some(payload) = payload else { continue };
                if entry.queue.push(payload) == Push::Lost {
                    lost.push(entry.queue.clone());
                }
            }
        }
        for queue in lost {
            hub.lost.fetch_add(1, Ordering::Relaxed);
            hub.remove(&queue);
        }
    }
}

impl Hub {
    fn read(&self) -> RwLockReadGuard<'_, Vec<Vec<Entry>>> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<Vec<Entry>>> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `queue` out of the table for good (once; later calls do nothing).
    fn remove(&self, queue: &Arc<Queue>) {
        let mut table = self.write();
        {
            let mut state = queue.lock();
            if state.closed {
                return;
            }
            state.closed = true;
        }
        for entries in table.iter_mut() {
            entries.retain(|entry| !Arc::ptr_eq(&entry.queue, queue));
        }
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
    }

    /// The index of each name, or invalid params naming every unknown one (`/events/N`).
    fn resolve(&self, names: &[String]) -> Result<BTreeSet<usize>, RpcError> {
        let mut found = BTreeSet::new();
        let mut unknown = Vec::new();
        for (at, name) in names.iter().enumerate() {
            match self.index.get(name.as_str()) {
                Some(&index) => {
                    found.insert(index);
                }
                None => unknown.push((format!("/events/{at}"), format!("no event `{name}` on this server"))),
            }
        }
        if unknown.is_empty() {
            return Ok(found);
        }
        let served = if self.names.is_empty() { "none".to_string() } else { self.names.join(", ") };
        Err(RpcError::invalid_params(
            unknown.into_iter().map(|(pointer, message)| (pointer, format!("{message} (its events: {served})"))),
        ))
    }
}

/// The capacity of a thread's scratch buffer for writing events; a larger event's buffer is
/// not kept.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
}

/// One event as written for one manifest: the whole JSON-RPC notification line, newline
/// included, shared by every subscriber reading at that manifest (a clone shares the line).
#[derive(Clone)]
pub(crate) struct Payload {
    event: usize,
    name: &'static str,
    line: Arc<[u8]>,
    params: Range<usize>,
}

impl Payload {
    /// `{"jsonrpc":"2.0","method":NAME,"params":{…}}\n`, or `None` (logged) when the event cannot
    /// be written at `manifest`.
    fn write(event: &dyn Event, index: usize, manifest: &Manifest) -> Option<Self> {
        let name = event.name();
        let params = match event.to_params(manifest) {
            Ok(params) => params,
            Err(error) => {
                tracing::warn!(event = name, %error, "an event cannot be written at a subscriber's versions; not sent to it");
                return None;
            }
        };
        // Written into this thread's scratch buffer, then copied once into a line of its exact
        // size (growing a fresh buffer would reallocate, and shrinking it again).
        SCRATCH.with_borrow_mut(|line| {
            line.clear();
            line.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
            serde_json::to_writer(&mut *line, name).ok()?;
            line.extend_from_slice(br#","params":"#);
            let start = line.len();
            if let Err(error) = serde_json::to_writer(&mut *line, &params) {
                tracing::warn!(event = name, %error, "an event's params cannot be written; not sent");
                return None;
            }
            let params = start..line.len();
            line.extend_from_slice(b"}\n");
            let payload = Payload { event: index, name, line: line.as_slice().into(), params };
            if line.capacity() > SCRATCH_KEPT {
                *line = Vec::with_capacity(SCRATCH_KEPT);
            }
            Some(payload)
        })
    }

    /// The notification line, newline included.
    pub(crate) fn line(&self) -> &[u8] {
        &self.line
    }

    /// The event's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The params object's JSON text (one line: compact JSON escapes every newline).
    pub(crate) fn params(&self) -> &[u8] {
        &self.line[self.params.clone()]
    }
}

/// Why a subscription ended: the final [`SUBSCRIPTION_LOST`] notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lost {
    reason: String,
    dropped: u64,
}

impl Lost {
    /// Its params: `{"reason": TEXT, "dropped": N}`.
    pub(crate) fn params(&self) -> Value {
        json!({ "reason": self.reason, "dropped": self.dropped })
    }

    /// The notification line, newline included.
    pub(crate) fn line(&self) -> Vec<u8> {
        let mut line =
            json!({ "jsonrpc": "2.0", "method": SUBSCRIPTION_LOST, "params": self.params() }).to_string().into_bytes();
        line.push(b'\n');
        line
    }
}

/// A connection's queue bound (from [`Limits`]).
#[derive(Clone, Copy, Debug)]
struct Bound {
    events: usize,
    bytes: usize,
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
enum Push {
    Queued,
    /// The queue was full: it is emptied, and the subscription lost.
    Lost,
    /// Lost already, or removed.
    Skipped,
}

/// One subscribed connection's queue of events waiting to be written.
struct Queue {
    bound: Bound,
    state: Mutex<QueueState>,
    /// Set while events or a loss wait (a lock-free look for the connection's loop).
    ready: AtomicBool,
    /// The connection's task, when it waits (one waiter: lock-free, unlike tokio's `Notify`).
    waker: AtomicWaker,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Payload>,
    bytes: usize,
    lost: Option<Lost>,
    /// Out of the table for good.
    closed: bool,
}

impl Queue {
    fn new(bound: Bound) -> Self {
        Queue { bound, state: Mutex::default(), ready: AtomicBool::new(false), waker: AtomicWaker::new() }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one payload, or ends the subscription when the bound is reached. One payload is
    /// always taken into an empty queue, however large, so the byte bound never starves a
    /// connection that keeps up.
    fn push(&self, payload: Payload) -> Push {
        let mut state = self.lock();
        if state.lost.is_some() || state.closed {
            return Push::Skipped;
        }
        let len = payload.line.len();
        let full = state.items.len() >= self.bound.events
            || (!state.items.is_empty() && state.bytes.saturating_add(len) > self.bound.bytes);
        if full {
            let dropped = state.items.len() as u64 + 1;
            state.items = VecDeque::new();
            state.bytes = 0;
            state.lost = Some(Lost {
                reason: format!(
                    "the connection did not read its events: more than {} events or {} bytes were waiting",
                    self.bound.events, self.bound.bytes
                ),
                dropped,
            });
            self.ready.store(true, Ordering::Release);
            drop(state);
            self.waker.wake();
            return Push::Lost;
        }
        let was_empty = state.items.is_empty();
        state.items.push_back(payload);
        state.bytes += len;
        if was_empty {
            self.ready.store(true, Ordering::Release);
            drop(state);
            self.waker.wake();
        }
        Push::Queued
    }
}

/// One connection's subscription: what `rpc.subscribe` and `rpc.unsubscribe` change (or an SSE
/// request's query set once). Leaves the hub when dropped.
pub(crate) struct Subscriber {
    hub: Arc<Hub>,
    bound: Bound,
    manifest: Arc<Manifest>,
    /// The registered queue and the events it receives; `None` until subscribed.
    active: Option<Active>,
}

struct Active {
    queue: Arc<Queue>,
    events: BTreeSet<usize>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            self.hub.remove(&active.queue);
        }
    }
}

/// What `rpc.subscribe` and the SSE query ask for.
pub(crate) struct Request {
    /// Event names; `None` for every event the server has.
    pub(crate) events: Option<Vec<String>>,
    /// The manifest to read at; `None` keeps the one in use (newest versions at first).
    pub(crate) versions: Option<Manifest>,
}

impl Subscriber {
    /// A connection's subscriber, not subscribed to anything yet.
    pub(crate) fn new(hub: &EventHub, limits: &Limits) -> Self {
        Subscriber {
            hub: hub.hub.clone(),
            bound: Bound { events: limits.max_queued_events.max(1), bytes: limits.max_queued_event_bytes },
            manifest: Arc::new(Manifest::new()),
            active: None,
        }
    }

    /// Answers `rpc.subscribe`: `{"subscribed": [every event the connection now receives]}`.
    pub(crate) fn subscribe(&mut self, params: Params) -> Result<Value, RpcError> {
        let request = read_request(params, true)?;
        let subscribed = self.subscribe_to(request)?;
        Ok(json!({ "subscribed": subscribed }))
    }

    /// Adds events (and sets the manifest when given); returns every event now received.
    pub(crate) fn subscribe_to(&mut self, request: Request) -> Result<Vec<String>, RpcError> {
        let wanted = match &request.events {
            None => (0..self.hub.names.len()).collect(),
            Some(names) => self.hub.resolve(names)?,
        };
        let mut table = self.hub.write();
        if let Some(versions) = request.versions {
            if *self.manifest != versions {
                self.manifest = Arc::new(versions);
                if let Some(active) = &self.active {
                    for &index in &active.events {
                        for entry in table[index].iter_mut().filter(|entry| Arc::ptr_eq(&entry.queue, &active.queue)) {
                            entry.manifest = self.manifest.clone();
                        }
                    }
                }
            }
        }
        if self.active.is_none() && !wanted.is_empty() {
            self.active = Some(Active { queue: Arc::new(Queue::new(self.bound)), events: BTreeSet::new() });
            self.hub.subscribers.fetch_add(1, Ordering::Relaxed);
        }
        let Some(active) = &mut self.active else { return Ok(Vec::new()) };
        for index in wanted {
            if active.events.insert(index) {
                table[index].push(Entry { queue: active.queue.clone(), manifest: self.manifest.clone() });
            }
        }
        Ok(active.events.iter().map(|&index| self.hub.names[index].clone()).collect())
    }

    /// Answers `rpc.unsubscribe`: `{"unsubscribed": [the named events it received]}`; every
    /// event when none are named. Events of those names still waiting are not sent.
    pub(crate) fn unsubscribe(&mut self, params: Params) -> Result<Value, RpcError> {
        let request = read_request(params, false)?;
        let named = match &request.events {
            None => None,
            Some(names) => Some(self.hub.resolve(names)?),
        };
        let Some(active) = &self.active else { return Ok(json!({ "unsubscribed": [] })) };
        let dropping: BTreeSet<usize> = match named {
            None => active.events.clone(),
            Some(named) => active.events.intersection(&named).copied().collect(),
        };
        let unsubscribed: Vec<&str> = dropping.iter().map(|&index| self.hub.names[index].as_str()).collect();
        let answer = json!({ "unsubscribed": unsubscribed });
        if dropping.len() == active.events.len() {
            if let Some(active) = self.active.take() {
                self.hub.remove(&active.queue);
            }
            return Ok(answer);
        }
        let Some(active) = &mut self.active else { return Ok(answer) };
        {
            let mut table = self.hub.write();
            for &index in &dropping {
                table[index].retain(|entry| !Arc::ptr_eq(&entry.queue, &active.queue));
                active.events.remove(&index);
            }
        }
        let mut state = active.queue.lock();
        let QueueState { items, bytes, .. } = &mut *state;
        items.retain(|payload| !dropping.contains(&payload.event));
        *bytes = items.iter().map(|payload| payload.line.len()).sum();
        Ok(answer)
    }

    /// Whether it is subscribed (or has a loss still to announce).
    pub(crate) fn active(&self) -> bool {
        self.active.is_some()
    }

    /// Whether events or a loss are waiting (a lock-free look).
    pub(crate) fn ready(&self) -> bool {
        self.active.as_ref().is_some_and(|active| active.queue.ready.load(Ordering::Acquire))
    }

    /// Waits until events or a loss are waiting; never, while not subscribed. Cancel-safe; one
    /// task waits (the connection's).
    pub(crate) async fn wait(&self) {
        let Some(active) = &self.active else { return std::future::pending().await };
        std::future::poll_fn(|cx| {
            // Registered before looking, so a push after the look wakes this task.
            active.queue.waker.register(cx.waker());
            match active.queue.ready.load(Ordering::Acquire) {
                true => std::task::Poll::Ready(()),
                false => std::task::Poll::Pending,
            }
        })
        .await
    }

    /// Swaps what is waiting into `into` (which must be empty, and is reused from one call to
    /// the next to keep its capacity); returns the loss, after which it is no longer subscribed.
    pub(crate) fn take(&mut self, into: &mut VecDeque<Payload>) -> Option<Lost> {
        let active = self.active.as_ref()?;
        let lost = {
            let mut state = active.queue.lock();
            std::mem::swap(&mut state.items, into);
            state.bytes = 0;
            active.queue.ready.store(false, Ordering::Release);
            state.lost.take()
        };
        if lost.is_some() {
            if let Some(active) = self.active.take() {
                self.hub.remove(&active.queue);
            }
        }
        lost
    }
}

/// Reads the params of `rpc.subscribe` (`events`, `versions`) or `rpc.unsubscribe` (`events`),
/// by name or position; every problem is listed.
fn read_request(params: Params, subscribe: bool) -> Result<Request, RpcError> {
    let names: &[&str] = if subscribe { &["events", "versions"] } else { &["events"] };
    let params: Map<String, Value> = params.into_named(names)?;
    let mut violations = Vec::new();
    for key in params.keys().filter(|key| !names.contains(&key.as_str())) {
        violations.push((format!("/{key}"), format!("unknown param (expected {})", names.join(", "))));
    }
    let events = match params.get("events") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for (at, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(name) => names.push(name.to_string()),
                    None => violations.push((format!("/events/{at}"), "an event name must be a string".to_string())),
                }
            }
            Some(names)
        }
        Some(_) => {
            violations.push(("/events".to_string(), "must be an array of event names".to_string()));
            None
        }
    };
    let versions = match params.get("versions") {
        None | Some(Value::Null) => None,
        Some(Value::Object(members)) => {
            let mut manifest = Manifest::new();
            for (object, version) in members {
                match version.as_str().map(str::parse::<Version>) {
                    Some(Ok(version)) => {
                        manifest.insert(object.clone(), version);
                    }
                    _ => violations.push((format!("/versions/{object}"), "must be a version \"M.m\"".to_string())),
                }
            }
            Some(manifest)
        }
        Some(_) => {
            violations.push(("/versions".to_string(), "must be an object of versions by object name".to_string()));
            None
        }
    };
    if !violations.is_empty() {
        return Err(RpcError::invalid_params(violations));
    }
    Ok(Request { events, versions })
}

#[cfg(test)]
mod tests {
    use vproto_support::wire::WireError;

    use super::*;

    #[derive(Debug)]
    struct Ping(&'static str, u64);

    impl Event for Ping {
        fn name(&self) -> &'static str {
            self.0
        }

        fn to_params(&self, manifest: &Manifest) -> Result<Map<String, Value>, WireError> {
            let mut params = Map::new();
            params.insert("n".into(), self.1.into());
            if let Some(version) = manifest.get("Thing") {
                params.insert("at".into(), version.to_string().into());
            }
            Ok(params)
        }
    }

    fn limits(events: usize, bytes: usize) -> Limits {
        Limits { max_queued_events: events, max_queued_event_bytes: bytes, ..Limits::default() }
    }

    fn subscribe(subscriber: &mut Subscriber, params: Value) -> Result<Value, RpcError> {
        subscriber.subscribe(Params::from_value(params).unwrap())
    }

    fn drain(subscriber: &mut Subscriber) -> (Vec<String>, Option<Lost>) {
        let mut into = VecDeque::new();
        let lost = subscriber.take(&mut into);
        (into.iter().map(|payload| String::from_utf8(payload.line().to_vec()).unwrap()).collect(), lost)
    }

    #[test]
    fn only_named_events_reach_a_subscriber_at_its_versions() {
        let hub = EventHub::new(["s.a", "s.b"]);
        let mut first = Subscriber::new(&hub, &Limits::default());
        let mut second = Subscriber::new(&hub, &Limits::default());
        hub.publish(Arc::new(Ping("s.a", 0)));
        assert_eq!(subscribe(&mut first, json!({"events": ["s.a"]})).unwrap(), json!({"subscribed": ["s.a"]}));
        let all = subscribe(&mut second, json!({"versions": {"Thing": "1.2"}})).unwrap();
        assert_eq!(all, json!({"subscribed": ["s.a", "s.b"]}));
        hub.publish(Arc::new(Ping("s.a", 1)));
        hub.publish(Arc::new(Ping("s.b", 2)));
        assert!(first.ready() && second.ready());
        let (lines, lost) = drain(&mut first);
        assert_eq!(lines, vec!["{\"jsonrpc\":\"2.0\",\"method\":\"s.a\",\"params\":{\"n\":1}}\n"]);
        assert_eq!(lost, None);
        assert!(!first.ready());
        let (lines, _) = drain(&mut second);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains(r#""params":{"at":"1.2","n":1}"#), "{}", lines[0]);
        assert_eq!(hub.stats(), HubStats { subscribers: 2, published: 3, lost: 0 });
        drop(first);
        assert_eq!(hub.stats().subscribers, 1);
    }

    #[test]
    fn unknown_names_and_bad_params_are_refused_with_every_violation() {
        let hub = EventHub::new(["s.a"]);
        let mut subscriber = Subscriber::new(&hub, &Limits::default());
        let error = subscribe(&mut subscriber, json!({"events": ["s.a", "s.x", "s.y"]})).unwrap_err();
        assert_eq!(error.code, -32602);
        let data = error.data.unwrap().to_string();
        assert!(data.contains("/events/1") && data.contains("s.x") && data.contains("/events/2"), "{data}");
        let error =
            subscribe(&mut subscriber, json!({"events": "s.a", "versions": {"T": "x"}, "more": 1})).unwrap_err();
        let data = error.data.unwrap().to_string();
        assert!(data.contains("/events") && data.contains("/versions/T") && data.contains("/more"), "{data}");
        assert!(!subscriber.active(), "nothing was subscribed");
        assert_eq!(subscribe(&mut subscriber, json!([["s.a"], {"T": "1.0"}])).unwrap(), json!({"subscribed": ["s.a"]}));
    }

    #[test]
    fn unsubscribing_stops_events_and_drops_those_waiting() {
        let hub = EventHub::new(["s.a", "s.b"]);
        let mut subscriber = Subscriber::new(&hub, &Limits::default());
        subscribe(&mut subscriber, json!({})).unwrap();
        hub.publish(Arc::new(Ping("s.a", 1)));
        hub.publish(Arc::new(Ping("s.b", 2)));
        let answer = subscriber.unsubscribe(Params::from_value(json!({"events": ["s.a"]})).unwrap()).unwrap();
        assert_eq!(answer, json!({"unsubscribed": ["s.a"]}));
        hub.publish(Arc::new(Ping("s.a", 3)));
        let (lines, _) = drain(&mut subscriber);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("s.b"));
        let answer = subscriber.unsubscribe(Params::None).unwrap();
        assert_eq!(answer, json!({"unsubscribed": ["s.b"]}));
        assert!(!subscriber.active());
        assert_eq!(hub.stats().subscribers, 0);
    }

    #[test]
    fn a_full_queue_loses_the_subscription_and_frees_its_events() {
        let hub = EventHub::new(["s.a"]);
        let mut slow = Subscriber::new(&hub, &limits(3, usize::MAX));
        let mut fast = Subscriber::new(&hub, &Limits::default());
        subscribe(&mut slow, json!({})).unwrap();
        subscribe(&mut fast, json!({})).unwrap();
        for n in 0..5 {
            hub.publish(Arc::new(Ping("s.a", n)));
        }
        assert_eq!(hub.stats(), HubStats { subscribers: 1, published: 5, lost: 1 });
        let (lines, lost) = drain(&mut slow);
        assert!(lines.is_empty());
        let lost = lost.expect("lost");
        assert_eq!(lost.dropped, 4, "three queued and the one that did not fit");
        assert!(String::from_utf8(lost.line())
            .unwrap()
            .starts_with(r#"{"jsonrpc":"2.0","method":"rpc.subscription_lost""#));
        assert!(!slow.active());
        assert_eq!(drain(&mut fast).0.len(), 5);
    }

    #[test]
    fn the_byte_bound_admits_one_large_event_into_an_empty_queue() {
        let hub = EventHub::new(["s.a"]);
        let mut subscriber = Subscriber::new(&hub, &limits(100, 10));
        subscribe(&mut subscriber, json!({})).unwrap();
        hub.publish(Arc::new(Ping("s.a", 1)));
        assert_eq!(drain(&mut subscriber).0.len(), 1);
        hub.publish(Arc::new(Ping("s.a", 2)));
        hub.publish(Arc::new(Ping("s.a", 3)));
        let (lines, lost) = drain(&mut subscriber);
        assert!(lines.is_empty());
        assert_eq!(lost.map(|lost| lost.dropped), Some(2));
    }
}
