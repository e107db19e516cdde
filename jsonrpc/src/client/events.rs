//! The client's end of an event stream: a bounded channel from the connection's reader to the
//! caller's `RawEvents`, which never makes the reader wait.
//!
//! A caller that does not read its stream loses it, as a server's subscriber does: the event
//! that does not fit ends the channel, and once the caller has read what it holds, the stream
//! yields one `rpc.subscription_lost` of its own and ends.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc::{self, error::TrySendError};
use vproto_support::rpc::events::{RawEvent, Subscription, SUBSCRIPTION_LOST};

/// What a stream receives.
#[derive(Clone, Debug)]
pub(super) enum Wants {
    /// Every event (the subscription named none).
    All,
    /// These events.
    Names(BTreeSet<String>),
}

impl Wants {
    pub(super) fn of(subscription: &Subscription) -> Self {
        match subscription.events.is_empty() {
            true => Wants::All,
            false => Wants::Names(subscription.events.iter().cloned().collect()),
        }
    }

    /// Whether an event of this name belongs to the stream (a loss belongs to every stream).
    pub(super) fn wants(&self, method: &str) -> bool {
        match self {
            Wants::All => true,
            Wants::Names(names) => names.contains(method) || method == SUBSCRIPTION_LOST,
        }
    }
}

/// The params of `rpc.subscribe` for a subscription: `events` unless it names none (every
/// event), `versions` unless empty (the connection keeps the versions it reads at).
pub(super) fn subscribe_params(subscription: &Subscription) -> Value {
    let mut params = Map::new();
    if !subscription.events.is_empty() {
        params.insert("events".into(), json!(subscription.events));
    }
    if !subscription.versions.is_empty() {
        let versions: Map<String, Value> = subscription
            .versions
            .iter()
            .map(|(object, version)| (object.clone(), Value::String(version.to_string())))
            .collect();
        params.insert("versions".into(), Value::Object(versions));
    }
    Value::Object(params)
}

/// The reader's end.
pub(super) struct EventSender {
    tx: mpsc::Sender<RawEvent>,
    behind: Arc<AtomicU64>,
}

/// The caller's end.
pub(super) struct EventStream {
    rx: mpsc::Receiver<RawEvent>,
    behind: Arc<AtomicU64>,
    capacity: usize,
}

/// A stream holding up to `capacity` events the caller has not read.
pub(super) fn channel(capacity: usize) -> (EventSender, EventStream) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let behind = Arc::new(AtomicU64::new(0));
    (EventSender { tx, behind: behind.clone() }, EventStream { rx, behind, capacity })
}

impl EventSender {
    /// Hands one event over without waiting; false once the stream is over (the caller
    /// dropped it, or fell behind: the sender should then be dropped).
    pub(super) fn send(&self, event: RawEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Closed(_)) => false,
            Err(TrySendError::Full(_)) => {
                self.behind.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

impl EventStream {
    /// The next event; after the events the caller fell behind on, one `rpc.subscription_lost`.
    pub(super) async fn recv(&mut self) -> Option<RawEvent> {
        if let Some(event) = self.rx.recv().await {
            return Some(event);
        }
        let dropped = self.behind.swap(0, Ordering::Relaxed);
        (dropped > 0).then(|| RawEvent {
            method: SUBSCRIPTION_LOST.to_string(),
            params: json!({
                "reason": format!("the client did not read its events: more than {} were waiting", self.capacity),
                "dropped": dropped,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> RawEvent {
        RawEvent { method: "s.a".into(), params: json!({ "n": n }) }
    }

    #[tokio::test]
    async fn a_caller_that_falls_behind_reads_what_fitted_then_a_loss() {
        let (sender, mut stream) = channel(2);
        assert!(sender.send(event(1)) && sender.send(event(2)));
        assert!(!sender.send(event(3)), "the third does not fit");
        drop(sender);
        assert_eq!(stream.recv().await, Some(event(1)));
        assert_eq!(stream.recv().await, Some(event(2)));
        let lost = stream.recv().await.expect("a loss");
        assert_eq!(lost.method, SUBSCRIPTION_LOST);
        assert_eq!(lost.params["dropped"], json!(1));
        assert_eq!(stream.recv().await, None);
    }

    #[test]
    fn params_name_events_and_versions_only_when_given() {
        assert_eq!(subscribe_params(&Subscription::default()), json!({}));
        let mut subscription = Subscription { events: vec!["s.a".into()], ..Subscription::default() };
        subscription.versions.insert("Thing".into(), "1.2".parse().unwrap());
        assert_eq!(subscribe_params(&subscription), json!({"events": ["s.a"], "versions": {"Thing": "1.2"}}));
        assert!(Wants::of(&subscription).wants(SUBSCRIPTION_LOST));
        assert!(!Wants::of(&subscription).wants("s.b"));
        assert!(Wants::of(&Subscription::default()).wants("s.b"));
    }
}
