//! Who registered with a component, when each was last heard from, and whether it is alive.
//!
//! Registration doubles as the heartbeat (the schema's `HelloAck`): a member is alive while
//! its last hello is at most three heartbeat intervals old. A member that goes quiet stays
//! listed, not alive, and the roster logs a warning once when it notices (the seed's "if one
//! has reported in previously and then goes away we can have an alarm for that"), and an
//! info line when it comes back.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use tokio::{task::JoinHandle, time::Instant};
use vproto_api::Endpoint;

use crate::time::rfc3339;

/// How many heartbeat intervals a member may stay silent and still count as alive.
pub const MISSED_HEARTBEATS: u32 = 3;

struct Member<R> {
    registration: R,
    last_seen: Instant,
    last_seen_wall: SystemTime,
    missing: bool,
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

/// The registered members of one kind (`driver`, `agent`), by endpoint.
pub struct Roster<R> {
    what: &'static str,
    interval: Duration,
    members: Mutex<BTreeMap<Endpoint, Member<R>>>,
}

impl<R: Clone> Roster<R> {
    /// An empty roster of `what`s that must say hello every `interval`.
    pub fn new(what: &'static str, interval: Duration) -> Self {
        Roster { what, interval, members: Mutex::new(BTreeMap::new()) }
    }

    /// The heartbeat interval members are given.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long a member may stay silent and still count as alive.
    pub fn window(&self) -> Duration {
        self.interval * MISSED_HEARTBEATS
    }

    /// Records a hello from `endpoint`.
    pub fn hello(&self, endpoint: Endpoint, registration: R) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let (now, wall) = (Instant::now(), SystemTime::now());
        match members.get_mut(&endpoint) {
            Some(member) => {
                if member.missing || now.duration_since(member.last_seen) > self.window() {
                    tracing::info!(%endpoint, "{} is back", self.what);
                }
                *member = Member { registration, last_seen: now, last_seen_wall: wall, missing: false };
            }
            None => {
                tracing::info!(%endpoint, "{} registered", self.what);
                members.insert(endpoint, Member { registration, last_seen: now, last_seen_wall: wall, missing: false });
            }
        }
    }

    /// Every member with its liveness now, in endpoint order; logs a warning for each member
    /// found missing since the last sweep.
    pub fn sweep(&self) -> Vec<MemberView<R>> {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let window = self.window();
        members
            .iter_mut()
            .map(|(endpoint, member)| {
                let alive = now.duration_since(member.last_seen) <= window;
                let last_seen = rfc3339(member.last_seen_wall);
                if !alive && !member.missing {
                    member.missing = true;
                    tracing::warn!(
                        %endpoint,
                        %last_seen,
                        "{} is missing: no hello for {} heartbeat intervals ({window:?})",
                        self.what,
                        MISSED_HEARTBEATS
                    );
                }
                MemberView { endpoint: endpoint.clone(), registration: member.registration.clone(), last_seen, alive }
            })
            .collect()
    }
}

impl<R: Clone + Send + 'static> Roster<R> {
    /// Sweeps every half interval, so a member that goes missing is logged even when nobody
    /// asks. Runs until the task is aborted.
    pub fn spawn_watchdog(self: &Arc<Self>) -> JoinHandle<()> {
        let roster = Arc::downgrade(self);
        let period = self.interval / 2;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(roster) = roster.upgrade() else { return };
                roster.sweep();
            }
        })
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
}
