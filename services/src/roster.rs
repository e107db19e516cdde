//! Who registered with a component, when each was last heard from, and whether it is alive.
//!
//! Registration doubles as the heartbeat (the schema's `HelloAck`): a member is alive while
//! its last hello is at most three heartbeat intervals old. A member that goes quiet stays
//! listed, not alive, and the roster logs a warning once when it notices (the seed's "if one
//! has reported in previously and then goes away we can have an alarm for that"), and an
//! info line when it comes back.
//!
//! Each of those moments is also a [`Change`] handed to the roster's listener
//! ([`Roster::with_listener`]), which the services turn into their events: a member's first
//! hello is [`Change::Registered`]; noticing that it went missing (by a sweep, or by a hello
//! that arrives after the window before any sweep noticed) is [`Change::Missing`], once per
//! absence; its next hello is [`Change::Back`]. A hello within the window is no change.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use tokio::{task::JoinHandle, time::Instant};
use vproto_api::{Endpoint, ProtocolError, UnsupportedProtocolData};

use crate::time::rfc3339;

/// How many heartbeat intervals a member may stay silent and still count as alive.
pub const MISSED_HEARTBEATS: u32 = 3;

/// The major of the protocol version this build speaks (`vproto_api::PROTOCOL_VERSION`).
fn own_major() -> &'static str {
    vproto_api::PROTOCOL_VERSION.split('.').next().unwrap_or_default()
}

/// Checks the protocol version a hello declared: absent (a component older than protocol 1.3)
/// or of this build's major is accepted; any other major is UnsupportedProtocol, naming the
/// versions accepted (`MAJOR.x`).
pub fn check_protocol(declared: Option<&str>) -> Result<(), ProtocolError> {
    let Some(version) = declared else { return Ok(()) };
    if version.split('.').next() == Some(own_major()) {
        return Ok(());
    }
    tracing::warn!(protocol_version = version, "hello refused: a protocol major this build does not speak");
    Err(ProtocolError::UnsupportedProtocol(UnsupportedProtocolData {
        protocol_version: version.to_string(),
        accepted: vec![format!("{}.x", own_major())],
    }))
}

struct Member<R> {
    registration: R,
    last_seen: Instant,
    last_seen_wall: SystemTime,
    missing: bool,
}

impl<R: Clone> Member<R> {
    fn view(&self, endpoint: &Endpoint, alive: bool) -> MemberView<R> {
        MemberView {
            endpoint: endpoint.clone(),
            registration: self.registration.clone(),
            last_seen: rfc3339(self.last_seen_wall),
            alive,
        }
    }
}

/// One member as of a [`Roster::sweep`].
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView<R> {
    /// The endpoint it registered with; it identifies the member.
    pub endpoint: Endpoint,
    /// What it sent in its last hello.
    pub registration: R,
    /// When its last hello arrived (RFC 3339, UTC).
    pub last_seen: String,
    /// Whether that was at most [`MISSED_HEARTBEATS`] intervals ago.
    pub alive: bool,
}

/// A moment in a member's life the roster reports to its listener.
#[derive(Clone, Debug, PartialEq)]
pub enum Change<R> {
    /// Its first hello: the member as registered now (alive).
    Registered(MemberView<R>),
    /// It went missing: the member as listed now (not alive, `last_seen` its last hello).
    /// Reported once per absence.
    Missing(MemberView<R>),
    /// A hello from a member that had gone missing: the member as listed now (alive again).
    Back {
        /// The member, `last_seen` the hello that brought it back.
        member: MemberView<R>,
        /// Its last hello before it went missing (RFC 3339, UTC).
        missing_since: String,
    },
}

/// What a roster hands its changes to (see [`Roster::with_listener`]).
pub type Listener<R> = Box<dyn Fn(Change<R>) + Send + Sync>;

/// The registered members of one kind (`driver`, `agent`), by endpoint.
pub struct Roster<R> {
    what: &'static str,
    interval: Duration,
    members: Mutex<BTreeMap<Endpoint, Member<R>>>,
    listener: Option<Listener<R>>,
}

impl<R: Clone> Roster<R> {
    /// An empty roster of `what`s that must say hello every `interval`.
    pub fn new(what: &'static str, interval: Duration) -> Self {
        Roster { what, interval, members: Mutex::new(BTreeMap::new()), listener: None }
    }

    /// The roster, handing every [`Change`] to `listener` as it happens, in the order they
    /// happen (it is called with the roster locked, so it must not block or call the roster:
    /// publishing an event is what it is for).
    pub fn with_listener(mut self, listener: impl Fn(Change<R>) + Send + Sync + 'static) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// The heartbeat interval members are given.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long a member may stay silent and still count as alive.
    pub fn window(&self) -> Duration {
        self.interval * MISSED_HEARTBEATS
    }

    fn tell(&self, change: impl FnOnce() -> Change<R>) {
        if let Some(listener) = &self.listener {
            listener(change());
        }
    }

    /// Marks `member` missing, logging and reporting it; `alive` false.
    fn went_missing(&self, endpoint: &Endpoint, member: &mut Member<R>) {
        member.missing = true;
        let last_seen = rfc3339(member.last_seen_wall);
        tracing::warn!(
            %endpoint,
            %last_seen,
            "{} is missing: no hello for {} heartbeat intervals ({:?})",
            self.what,
            MISSED_HEARTBEATS,
            self.window()
        );
        self.tell(|| Change::Missing(member.view(endpoint, false)));
    }

    /// Records a hello from `endpoint`.
    pub fn hello(&self, endpoint: Endpoint, registration: R) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let (now, wall) = (Instant::now(), SystemTime::now());
        match members.get_mut(&endpoint) {
            Some(member) => {
                // Gone for longer than the window, though no sweep noticed yet: it went
                // missing all the same, and is noticed now.
                if !member.missing && now.duration_since(member.last_seen) > self.window() {
                    self.went_missing(&endpoint, member);
                }
                let back = member.missing.then(|| rfc3339(member.last_seen_wall));
                *member = Member { registration, last_seen: now, last_seen_wall: wall, missing: false };
                if let Some(missing_since) = back {
                    tracing::info!(%endpoint, %missing_since, "{} is back", self.what);
                    self.tell(|| Change::Back { member: member.view(&endpoint, true), missing_since });
                }
            }
            None => {
                tracing::info!(%endpoint, "{} registered", self.what);
                let member = Member { registration, last_seen: now, last_seen_wall: wall, missing: false };
                self.tell(|| Change::Registered(member.view(&endpoint, true)));
                members.insert(endpoint, member);
            }
        }
    }

    /// Forgets the member at `endpoint` (deregistered: no change is reported); false when it
    /// was not registered.
    pub fn remove(&self, endpoint: &Endpoint) -> bool {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let removed = members.remove(endpoint).is_some();
        if removed {
            tracing::info!(%endpoint, "{} deregistered", self.what);
        }
        removed
    }

    /// Every member with its liveness now, in endpoint order; logs a warning (and reports
    /// [`Change::Missing`]) for each member found missing since the last sweep.
    pub fn sweep(&self) -> Vec<MemberView<R>> {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let window = self.window();
        members
            .iter_mut()
            .map(|(endpoint, member)| {
                let alive = now.duration_since(member.last_seen) <= window;
                if !alive && !member.missing {
                    self.went_missing(endpoint, member);
                }
                member.view(endpoint, alive)
            })
            .collect()
    }
}

impl<R: Clone + Send + 'static> Roster<R> {
    /// Sweeps when a member can first be found missing (just past the window after its last
    /// hello), and at least every half interval, so a member that goes missing is noticed
    /// (logged and reported) at once even when nobody asks. Runs until the task is aborted or
    /// the roster dropped.
    pub fn spawn_watchdog(self: &Arc<Self>) -> JoinHandle<()> {
        let roster = Arc::downgrade(self);
        let period = self.interval / 2;
        tokio::spawn(async move {
            loop {
                let wake = {
                    let Some(roster) = roster.upgrade() else { return };
                    let latest = Instant::now() + period;
                    roster.next_deadline().map_or(latest, |deadline| deadline.min(latest))
                };
                tokio::time::sleep_until(wake).await;
                let Some(roster) = roster.upgrade() else { return };
                roster.sweep();
            }
        })
    }
}

impl<R> Roster<R> {
    /// The first moment a member not yet missing will be found missing if it stays silent: a
    /// millisecond past the window after its last hello (a member is alive for the whole
    /// window). Hellos only move it later.
    fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.interval * MISSED_HEARTBEATS + Duration::from_millis(1);
        members.values().filter(|member| !member.missing).map(|member| member.last_seen + window).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_member_stays_listed_not_alive_until_it_says_hello_again() {
        let roster = Roster::new("agent", Duration::from_secs(2));
        let endpoint = Endpoint::new("compute-1:1337").unwrap();
        roster.hello(endpoint.clone(), "READY");
        assert!(roster.sweep()[0].alive);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(roster.sweep()[0].alive, "exactly three intervals is still alive");
        tokio::time::advance(Duration::from_millis(1)).await;
        let views = roster.sweep();
        assert_eq!((views.len(), views[0].alive), (1, false));
        roster.hello(endpoint, "READY");
        assert!(roster.sweep()[0].alive);
    }

    #[tokio::test(start_paused = true)]
    async fn members_are_listed_by_endpoint_and_updated_in_place() {
        let roster = Roster::new("driver", Duration::from_secs(1));
        roster.hello(Endpoint::new("b:2").unwrap(), 1);
        roster.hello(Endpoint::new("a:1").unwrap(), 2);
        roster.hello(Endpoint::new("b:2").unwrap(), 3);
        let views: Vec<(String, i32)> =
            roster.sweep().into_iter().map(|v| (v.endpoint.to_string(), v.registration)).collect();
        assert_eq!(views, vec![("a:1".to_string(), 2), ("b:2".to_string(), 3)]);
    }

    type Changes = Arc<Mutex<Vec<Change<&'static str>>>>;

    /// A roster whose changes land in the returned list.
    fn recorded(interval: Duration) -> (Roster<&'static str>, Changes) {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let sink = changes.clone();
        let roster = Roster::new("agent", interval).with_listener(move |change| sink.lock().unwrap().push(change));
        (roster, changes)
    }

    /// The changes reported since the last call, as `kind endpoint alive`; a Back's
    /// `missing_since` must be the `last_seen` of the Missing before it.
    fn taken(changes: &Mutex<Vec<Change<&'static str>>>) -> Vec<String> {
        let taken = std::mem::take(&mut *changes.lock().unwrap());
        taken
            .into_iter()
            .map(|change| match change {
                Change::Registered(view) => format!("registered {} {}", view.endpoint, view.alive),
                Change::Missing(view) => format!("missing {} {} {}", view.endpoint, view.alive, view.last_seen),
                Change::Back { member, missing_since } => {
                    format!("back {} {} {missing_since}", member.endpoint, member.alive)
                }
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn changes_are_reported_once_per_transition() {
        let (roster, changes) = recorded(Duration::from_secs(1));
        let endpoint = Endpoint::new("compute-1:1337").unwrap();
        roster.hello(endpoint.clone(), "READY");
        assert_eq!(taken(&changes), ["registered compute-1:1337 true"]);
        roster.hello(endpoint.clone(), "READY");
        let seen = roster.sweep().remove(0).last_seen;
        assert!(taken(&changes).is_empty(), "a heartbeat within the window is no change");

        tokio::time::advance(Duration::from_millis(3_001)).await;
        roster.sweep();
        roster.sweep();
        assert_eq!(taken(&changes), [format!("missing compute-1:1337 false {seen}")], "reported once");
        roster.hello(endpoint.clone(), "READY");
        roster.hello(endpoint.clone(), "READY");
        assert_eq!(taken(&changes), [format!("back compute-1:1337 true {seen}")], "back once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hello_after_an_unnoticed_absence_reports_missing_then_back() {
        let (roster, changes) = recorded(Duration::from_secs(1));
        let endpoint = Endpoint::new("compute-1:1337").unwrap();
        roster.hello(endpoint.clone(), "READY");
        let seen = roster.sweep().remove(0).last_seen;
        tokio::time::advance(Duration::from_secs(4)).await;
        roster.hello(endpoint.clone(), "READY");
        assert_eq!(
            taken(&changes),
            [
                "registered compute-1:1337 true".to_string(),
                format!("missing compute-1:1337 false {seen}"),
                format!("back compute-1:1337 true {seen}")
            ]
        );
        roster.sweep();
        assert!(taken(&changes).is_empty());
    }
}
