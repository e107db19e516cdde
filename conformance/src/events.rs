//! Event cases (issue #15): subscriptions and notifications on a line connection, derived from
//! the description's `x-events`, never written per event (see docs/events.md for the wire).
//!
//! For each service tested that publishes events, on fresh connections of its own:
//!
//! | ID | does | expects |
//! |---|---|---|
//! | `events/<s>/silent-before-subscribe` | calls every example of the service's methods without subscribing | no notification |
//! | `events/<s>/subscribe/<event>` | `rpc.subscribe` naming one event | `{"subscribed": [<event>]}` |
//! | `events/<s>/subscribe-all` | `rpc.subscribe` without `events` | `subscribed` names every event of the service |
//! | `events/<s>/subscribe-unknown` | `rpc.subscribe` naming an event nobody publishes | `-32602` |
//! | `events/<s>/delivery` | subscribes to the service's events, calls every example | every notification is one subscribed to, its params valid against the event's schema |
//! | `events/<s>/only-subscribed` | (two events or more) subscribes to the first only, calls every example | only that event arrives |
//! | `events/<s>/after-unsubscribe` | subscribes, `rpc.unsubscribe`s, calls every example | `{"unsubscribed": [...]}` naming them, then no notification |
//! | `events/<s>/slow-subscriber` | (`unix:`, `tcp:`) one connection subscribes and never reads while another keeps calling | every call on the other is answered within the wait |
//!
//! What the suite cannot make a target do is reported, not failed ([`EventRun::not_exercised`]):
//! an event no call of the suite made the target publish (its payload was never checked), and a
//! slow subscriber that was never cut off (`rpc.subscription_lost` or the connection closed)
//! because the calls did not publish enough events to exceed the target's bound.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use vproto_jsonrpc::{ConnectAddr, ListenAddr};
use vproto_support::rpc::codes;

use crate::{
    cases::{frame, Plan},
    conn::{Conn, ConnError},
    description::Description,
    run::{Outcome, Patterns, Status, Target},
};

/// How long to wait for events published after the last answer.
const EVENT_GRACE: Duration = Duration::from_millis(200);

/// How long the slow-subscriber case keeps calling.
const SLOW_FOR: Duration = Duration::from_secs(1);

/// The notification that ends a subscription (docs/events.md).
const SUBSCRIPTION_LOST: &str = "rpc.subscription_lost";

/// What the event cases gave on one target.
#[derive(Clone, Debug, Default)]
pub struct EventRun {
    /// The outcome of each event case.
    pub outcomes: Vec<Outcome>,
    /// What could not be exercised, in words (events never published, a bound never reached).
    pub not_exercised: Vec<String>,
}

/// One raw connection with a transcript, collecting the notifications that arrive on it.
pub(crate) struct Wire {
    conn: Conn,
    next: u64,
    /// What was sent (`→`) and received (`←`), in order.
    pub(crate) transcript: Vec<String>,
    /// The notifications that arrived.
    pub(crate) notifications: Vec<Value>,
}

/// Whether connections to `target` reach one server (not `exec:`, which spawns one per connection).
fn shared(target: &Target) -> bool {
    matches!(target.addr, ConnectAddr::Listen(ListenAddr::Unix(_) | ListenAddr::Tcp { .. }))
}

fn is_notification(value: &Value) -> bool {
    value.as_object().is_some_and(|o| o.contains_key("method") && !o.contains_key("id"))
}

impl Wire {
    pub(crate) async fn open(target: &Target) -> Result<Wire, String> {
        let conn = Conn::open(&target.addr, target.token.as_ref(), target.tls.as_ref(), target.wait)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Wire { conn, next: 0, transcript: Vec::new(), notifications: Vec::new() })
    }

    fn take(&mut self, line: String) -> Option<Value> {
        let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        self.transcript.push(format!("← {line}"));
        if is_notification(&value) {
            self.notifications.push(value);
            return None;
        }
        Some(value)
    }

    /// Calls `method`; the response to it (notifications read meanwhile are collected).
    pub(crate) async fn call(&mut self, method: &str, params: &Value) -> Result<Value, String> {
        self.next += 1;
        let id = format!("\"conformance-event-{}\"", self.next);
        let text = frame(method, Some(params), Some(&id));
        self.transcript.push(format!("→ {text}"));
        self.conn.send_line(&text).await.map_err(|e| format!("calling {method}: {e}"))?;
        loop {
            let line = self.conn.read_line().await.map_err(|e| format!("waiting for the answer to {method}: {e}"))?;
            if let Some(value) = self.take(line) {
                if value.get("id").map(Value::to_string).as_deref() == Some(id.as_str()) {
                    return Ok(value);
                }
            }
        }
    }

    /// Reads what arrives until `grace` passes in silence.
    async fn drain(&mut self, grace: Duration) -> Result<(), String> {
        while let Some(line) = self.conn.line_within(grace).await.map_err(|e| format!("reading events: {e}"))? {
            self.take(line);
        }
        Ok(())
    }

    /// Calls every trigger (answers are not judged here: the method cases do that).
    pub(crate) async fn trigger(&mut self, triggers: &[(String, Value)]) -> Result<(), String> {
        for (method, params) in triggers {
            self.call(method, params).await?;
        }
        self.drain(EVENT_GRACE).await
    }
}

/// The names listed under `key` in a successful response, or why there are none.
fn names_in(response: &Value, key: &str) -> Result<BTreeSet<String>, String> {
    let list = response
        .pointer(&format!("/result/{key}"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no `{key}` array in the result"))?;
    list.iter().map(|name| name.as_str().map(str::to_string).ok_or_else(|| format!("`{key}` holds {name}"))).collect()
}

/// The event cases' context on one target and service.
struct Service<'a> {
    description: &'a Description,
    target: &'a Target,
    events: Vec<String>,
    triggers: Vec<(String, Value)>,
}

impl Service<'_> {
    /// Checks every collected notification: subscribed to, and valid against its event's schema.
    fn check(&self, wire: &Wire, subscribed: &BTreeSet<String>, seen: &mut BTreeSet<String>) -> Result<(), String> {
        for notification in &wire.notifications {
            let name = notification.get("method").and_then(Value::as_str).unwrap_or_default();
            if !subscribed.contains(name) {
                return Err(format!("`{name}` arrived, which the connection did not subscribe to: {notification}"));
            }
            let Some(event) = self.description.events.iter().find(|e| e.name == name) else { continue };
            let params = notification.get("params").cloned().unwrap_or(Value::Null);
            let violations = self.description.violations(&event.params_schema(), &params);
            if !violations.is_empty() {
                return Err(format!("`{name}`'s params do not fit the event's schema: {}", violations.join("; ")));
            }
            seen.insert(name.to_string());
        }
        Ok(())
    }

    async fn subscribe(&self, wire: &mut Wire, events: &[String]) -> Result<BTreeSet<String>, String> {
        let response = wire.call("rpc.subscribe", &json!({ "events": events })).await?;
        let subscribed = names_in(&response, "subscribed")?;
        let wanted: BTreeSet<String> = events.iter().cloned().collect();
        if subscribed != wanted {
            return Err(format!("`subscribed` should name exactly {wanted:?}, names {subscribed:?}"));
        }
        Ok(subscribed)
    }

    /// On a server shared by connections (`unix:`, `tcp:`), a side connection subscribed to the
    /// service's events while the calls run shows what they published; its notifications are
    /// checked too.
    async fn silent_before_subscribe(
        &self,
        wire: &mut Wire,
        seen: &mut BTreeSet<String>,
        serves_events: bool,
    ) -> Result<(), String> {
        // A target that serves no events refuses the side connection's subscription: the
        // silence of the main one is still checked.
        let mut side = match shared(self.target) && serves_events {
            true => {
                let mut side = Wire::open(self.target).await?;
                self.subscribe(&mut side, &self.events).await?;
                Some(side)
            }
            false => None,
        };
        wire.trigger(&self.triggers).await?;
        if let Some(side) = &mut side {
            side.drain(EVENT_GRACE).await?;
            let subscribed = self.events.iter().cloned().collect();
            self.check(side, &subscribed, seen).map_err(|why| format!("on a subscribed side connection: {why}"))?;
        }
        match wire.notifications.first() {
            None => Ok(()),
            Some(first) => Err(format!(
                "{} notification(s) arrived on a connection that never subscribed, the first: {first}",
                wire.notifications.len()
            )),
        }
    }

    async fn subscribe_all(&self, wire: &mut Wire) -> Result<(), String> {
        let response = wire.call("rpc.subscribe", &json!({})).await?;
        let subscribed = names_in(&response, "subscribed")?;
        let missing: Vec<&String> = self.events.iter().filter(|e| !subscribed.contains(*e)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("`subscribed` leaves out {missing:?}"))
        }
    }

    async fn subscribe_unknown(&self, wire: &mut Wire, service: &str) -> Result<(), String> {
        let unknown = format!("{service}.x_conformance_unknown_event");
        let response = wire.call("rpc.subscribe", &json!({ "events": [unknown] })).await?;
        match response.pointer("/error/code").and_then(Value::as_i64) {
            Some(codes::INVALID_PARAMS) => Ok(()),
            other => Err(format!("expected error {}, got {other:?}", codes::INVALID_PARAMS)),
        }
    }

    async fn delivery(&self, wire: &mut Wire, events: &[String], seen: &mut BTreeSet<String>) -> Result<(), String> {
        let subscribed = self.subscribe(wire, events).await?;
        wire.trigger(&self.triggers).await?;
        self.check(wire, &subscribed, seen)
    }

    async fn after_unsubscribe(&self, wire: &mut Wire) -> Result<(), String> {
        self.subscribe(wire, &self.events).await?;
        let response = wire.call("rpc.unsubscribe", &json!({ "events": self.events })).await?;
        let unsubscribed = names_in(&response, "unsubscribed")?;
        let wanted: BTreeSet<String> = self.events.iter().cloned().collect();
        if unsubscribed != wanted {
            return Err(format!("`unsubscribed` should name exactly {wanted:?}, names {unsubscribed:?}"));
        }
        // Events queued before the answer are dropped by the server; none may follow it.
        wire.notifications.clear();
        wire.trigger(&self.triggers).await?;
        match wire.notifications.first() {
            None => Ok(()),
            Some(first) => Err(format!("a notification arrived after rpc.unsubscribe was answered: {first}")),
        }
    }

    /// A subscriber that never reads, while another connection keeps calling; `Ok(Some(note))`
    /// when the cut-off itself was not exercised.
    async fn slow_subscriber(&self, wire: &mut Wire) -> Result<Option<String>, String> {
        let mut slow = Wire::open(self.target).await?;
        self.subscribe(&mut slow, &self.events).await?;
        let started = Instant::now();
        let mut calls = 0;
        while started.elapsed() < SLOW_FOR && !self.triggers.is_empty() {
            for (method, params) in &self.triggers {
                let asked = Instant::now();
                wire.call(method, params).await.map_err(|why| {
                    format!("while a subscriber did not read, call {} on another connection failed: {why}", calls + 1)
                })?;
                calls += 1;
                if asked.elapsed() > self.target.wait {
                    return Err(format!("call {calls} took {:?}, longer than the wait", asked.elapsed()));
                }
            }
            // Keep the transcript short: only the first round is shown.
            wire.transcript.truncate(4 * self.triggers.len());
        }
        let reading = Instant::now();
        let mut cut = false;
        while reading.elapsed() < SLOW_FOR {
            match slow.conn.line_within(EVENT_GRACE).await {
                Ok(None) => break,
                Ok(Some(line)) => {
                    let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    if value.get("method").and_then(Value::as_str) == Some(SUBSCRIPTION_LOST) {
                        cut = true;
                        break;
                    }
                }
                Err(ConnError::Closed) | Err(ConnError::Read(_)) => {
                    cut = true;
                    break;
                }
                Err(why) => return Err(format!("reading the slow subscriber: {why}")),
            }
        }
        Ok((!cut).then(|| {
            format!(
                "the slow subscriber's cut-off: {calls} calls in {SLOW_FOR:?} did not publish enough events to exceed the \
                 target's bound (no {SUBSCRIPTION_LOST}, connection still open)"
            )
        }))
    }
}

/// Whether `target` serves events at all: `rpc.subscribe` is not answered `-32601`.
async fn serves_events(target: &Target) -> Result<bool, String> {
    let mut wire = Wire::open(target).await?;
    let response = wire.call("rpc.subscribe", &json!({ "events": [] })).await?;
    Ok(response.pointer("/error/code").and_then(Value::as_i64) != Some(codes::METHOD_NOT_FOUND))
}

/// Runs the event cases of every service of `plan` that publishes events, against `target`.
pub async fn run_events(plan: &Plan<'_>, target: &Target, only: &Patterns) -> EventRun {
    let mut run = EventRun::default();
    let description = plan.description;
    let line = !matches!(target.addr, ConnectAddr::Listen(ListenAddr::Http { .. }));
    let selected = |id: &str| only.is_empty() || only.matches(id);
    for service in &plan.services {
        let events: Vec<String> = description.events_of(service).iter().map(|e| e.name.clone()).collect();
        if events.is_empty() {
            continue;
        }
        if !line {
            run.not_exercised.push(format!(
                "{}: the events of `{service}`: event cases run on line transports only, not over HTTP's \
                 Server-Sent Events",
                target.label
            ));
            continue;
        }
        let triggers = plan.example_calls(service);
        let ctx = Service { description, target, events: events.clone(), triggers };
        let mut seen = BTreeSet::new();
        let serves_events = match serves_events(target).await {
            Ok(serves) => serves,
            Err(why) => {
                run.not_exercised.push(format!("{}: the events of `{service}`: {why}", target.label));
                continue;
            }
        };
        let mut ids: Vec<(String, String)> = vec![(
            format!("events/{service}/silent-before-subscribe"),
            "no notification on a connection that never subscribed, while its calls publish events".into(),
        )];
        for event in &events {
            ids.push((format!("events/{service}/subscribe/{event}"), format!("rpc.subscribe to {event} alone")));
        }
        ids.push((format!("events/{service}/subscribe-all"), "rpc.subscribe to every event".into()));
        ids.push((format!("events/{service}/subscribe-unknown"), "rpc.subscribe to an unknown event: -32602".into()));
        ids.push((
            format!("events/{service}/delivery"),
            "subscribed to the service's events: every notification is subscribed to and valid".into(),
        ));
        if events.len() > 1 {
            ids.push((
                format!("events/{service}/only-subscribed"),
                format!("subscribed to {} alone: nothing else arrives", events[0]),
            ));
        }
        ids.push((format!("events/{service}/after-unsubscribe"), "nothing arrives after rpc.unsubscribe".into()));
        if shared(target) {
            ids.push((
                format!("events/{service}/slow-subscriber"),
                "a subscriber that never reads does not hold up another connection's calls".into(),
            ));
        } else {
            run.not_exercised.push(format!(
                "{}: events/{service}/slow-subscriber: needs two connections to one server (unix: or tcp:)",
                target.label
            ));
        }
        if !serves_events {
            run.not_exercised.push(format!(
                "{}: the events of `{service}`: the target answers rpc.subscribe with -32601 (it serves no events); \
                 only events/{service}/silent-before-subscribe ran",
                target.label
            ));
            ids.truncate(1);
        }
        for (id, what) in ids.into_iter().filter(|(id, _)| selected(id)) {
            let started = Instant::now();
            let mut wire = match Wire::open(target).await {
                Ok(wire) => wire,
                Err(why) => {
                    run.outcomes.push(outcome(&id, target, &what, Vec::new(), Err(why), started));
                    continue;
                }
            };
            let case = id.rsplit_once(&format!("events/{service}/")).map_or("", |(_, rest)| rest);
            let verdict = match case {
                "silent-before-subscribe" => ctx.silent_before_subscribe(&mut wire, &mut seen, serves_events).await,
                "subscribe-all" => ctx.subscribe_all(&mut wire).await,
                "subscribe-unknown" => ctx.subscribe_unknown(&mut wire, service).await,
                "delivery" => ctx.delivery(&mut wire, &events, &mut seen).await,
                "only-subscribed" => ctx.delivery(&mut wire, &events[..1], &mut seen).await,
                "after-unsubscribe" => ctx.after_unsubscribe(&mut wire).await,
                "slow-subscriber" => ctx.slow_subscriber(&mut wire).await.map(|note| {
                    if let Some(note) = note {
                        run.not_exercised.push(format!("{}: {id}: {note}", target.label));
                    }
                }),
                one => match one.strip_prefix("subscribe/") {
                    Some(event) => ctx.subscribe(&mut wire, &[event.to_string()]).await.map(drop),
                    None => Err(format!("no event case `{one}`")),
                },
            };
            run.outcomes.push(outcome(&id, target, &what, wire.transcript, verdict, started));
        }
        for event in events.iter().filter(|e| !seen.contains(*e)) {
            run.not_exercised.push(format!(
                "{}: event {event}: no call of the suite made the target publish it, so its payload was not checked",
                target.label
            ));
        }
    }
    run
}

fn outcome(
    id: &str,
    target: &Target,
    what: &str,
    transcript: Vec<String>,
    verdict: Result<(), String>,
    started: Instant,
) -> Outcome {
    Outcome {
        id: id.to_string(),
        target: target.label.clone(),
        what: what.to_string(),
        status: if verdict.is_ok() { Status::Pass } else { Status::Fail },
        request: transcript.iter().filter(|l| l.starts_with('→')).cloned().collect::<Vec<_>>().join("\n"),
        response: transcript.join("\n"),
        expected: what.to_string(),
        why: verdict.err().unwrap_or_default(),
        duration: started.elapsed(),
    }
}
