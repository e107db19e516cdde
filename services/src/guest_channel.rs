//! The guest channel: the schema's `guest` service, which a guest agent serves to dom0 (over
//! vchan: `vproto agent --vchan XS_PATH`; on any transport: `vproto serve guest`) for data
//! that changes too often for Xenstore.
//!
//! ```text
//!   guest agent loop ──(every NIC reading)──► LiveState ──► guest.info        (its GuestInfo, as published)
//!   (or guest_agent::follow)                            └─► guest.nic_counters ◄── StatsReader (one netlink
//!                                                            NICs by index ──────┘   dump per call)
//! ```
//!
//! - `guest.info` answers the [`Snapshot`]'s GuestInfo: the object the agent publishes in
//!   its data tree (`guest_agent::guest_info`), never read back from Xenstore.
//! - `guest.nic_counters` takes the snapshot's NICs (the agent's, named and identified as in
//!   GuestInfo by `guest_agent::nics`), reads every link's counters in one netlink dump and
//!   joins them by interface index. The reader is opened on first use and reopened after a
//!   failure.
//! - Before the agent's first reading of the NICs, a call waits for it (up to
//!   [`GuestChannel::FIRST_READING_WAIT`]), then fails as an internal error.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;
use vproto_api::{
    GuestInfo, GuestNicCountersList, GuestService, MACAddress, NoCompatibleVersionData, ProtocolError, ServiceError,
    UnknownNicData,
};
use vproto_netlink::{Interface, StatsReader};
use vproto_support::rpc::Answer;
use vproto_support::wire::{PlainObject, Version};

use crate::guest_agent::{follow, nic_counters, LiveState, OsSources, Snapshot};
use crate::guest_tree::GuestLayout;
use crate::rfc3339_millis;

/// The `guest` service over a guest agent's [`LiveState`].
pub struct GuestChannel {
    live: LiveState,
    /// The link counters' socket: opened on first use, dropped when it fails.
    stats: Mutex<Option<StatsReader>>,
    first_reading_wait: Duration,
}

impl GuestChannel {
    /// How long a call waits for the agent's first reading of the NICs by default.
    pub const FIRST_READING_WAIT: Duration = Duration::from_secs(5);

    /// The service answering from `live`, which a guest agent
    /// (`guest_agent::AgentConfig::live`) or `guest_agent::follow` keeps current.
    pub fn new(live: LiveState) -> Self {
        GuestChannel { live, stats: Mutex::new(None), first_reading_wait: Self::FIRST_READING_WAIT }
    }

    /// The service without an agent: this machine's NICs (of the current network namespace)
    /// followed from netlink by [`follow`] (layout v1, the real OS data) in a task spawned on
    /// the current runtime, which the caller aborts to stop. What `vproto serve guest` and
    /// `vproto conform --reference` serve.
    pub fn standalone() -> (Self, tokio::task::JoinHandle<()>) {
        let live = LiveState::new();
        let followed = live.clone();
        let follower = tokio::spawn(async move {
            follow(followed, GuestLayout::V1, &OsSources::default(), std::future::pending()).await
        });
        (Self::new(live), follower)
    }

    /// The same, waiting `wait` rather than [`Self::FIRST_READING_WAIT`] for the first reading.
    pub fn with_first_reading_wait(mut self, wait: Duration) -> Self {
        self.first_reading_wait = wait;
        self
    }

    /// The agent's current snapshot, waiting for its first one.
    async fn snapshot(&self) -> Result<Arc<Snapshot>, ServiceError> {
        self.live.current(self.first_reading_wait).await.ok_or_else(|| {
            ServiceError::Internal(format!(
                "the guest's NICs have not been read within {:?} (is netlink unavailable?)",
                self.first_reading_wait
            ))
        })
    }

    /// Every link's counters, from one dump; the socket is opened first if needed and dropped
    /// after a failure, so the next call opens another.
    async fn link_stats(&self) -> Result<std::collections::BTreeMap<u32, vproto_netlink::LinkStats>, ServiceError> {
        let mut slot = self.stats.lock().await;
        if slot.as_ref().is_some_and(StatsReader::is_closed) {
            *slot = None;
        }
        let reader = match slot.as_mut() {
            Some(reader) => reader,
            None => slot.insert(StatsReader::open().map_err(|error| ServiceError::Internal(error.to_string()))?),
        };
        match reader.read().await {
            Ok(stats) => Ok(stats),
            Err(error) => {
                *slot = None;
                Err(ServiceError::Internal(error.to_string()))
            }
        }
    }
}

/// Whether `interface` passes the filter: every filter given names it (the MAC in any case).
fn selected(interface: &Interface, name: Option<&str>, mac: Option<&MACAddress>) -> bool {
    name.is_none_or(|name| interface.name == name)
        && mac.is_none_or(|mac| mac.as_str().eq_ignore_ascii_case(&interface.mac.to_string()))
}

/// Checks that the caller reads the GuestInfo this guest writes: a version of its major.
fn check_version(version: Option<&str>) -> Result<(), ServiceError> {
    let Some(text) = version else { return Ok(()) };
    let written = <GuestInfo as PlainObject>::info().version;
    // The dispatcher checked the pattern, so this parses; a text that does not is refused alike.
    let asked: Option<Version> = text.parse().ok();
    if asked.is_some_and(|asked| asked.major == written.major) {
        return Ok(());
    }
    Err(ProtocolError::NoCompatibleVersion(NoCompatibleVersionData {
        object: "GuestInfo".into(),
        max_version: written.to_string(),
    })
    .into())
}

impl GuestService for GuestChannel {
    async fn info(&self, version: Option<String>) -> Result<Answer<GuestInfo>, ServiceError> {
        check_version(version.as_deref())?;
        Ok(self.snapshot().await?.info.clone().into())
    }

    async fn nic_counters(
        &self,
        mac: Option<MACAddress>,
        name: Option<String>,
    ) -> Result<Answer<GuestNicCountersList>, ServiceError> {
        let snapshot = self.snapshot().await?;
        let wanted: Vec<Interface> = snapshot
            .interfaces
            .iter()
            .filter(|interface| selected(interface, name.as_deref(), mac.as_ref()))
            .cloned()
            .collect();
        let filtered = name.is_some() || mac.is_some();
        let unknown = || ProtocolError::UnknownNic(UnknownNicData { name: name.clone(), mac: mac.clone() });
        if filtered && wanted.is_empty() {
            return Err(unknown().into());
        }
        let stats = self.link_stats().await?;
        let read_at = rfc3339_millis(SystemTime::now());
        let nics = nic_counters(&wanted, &stats);
        // The NIC asked for went away between the snapshot and the reading.
        if filtered && nics.is_empty() {
            return Err(unknown().into());
        }
        Ok(GuestNicCountersList { read_at, nics }.into())
    }
}

#[cfg(test)]
mod tests {
    use vproto_netlink::Mac;

    use super::*;

    #[test]
    fn a_filter_must_match_in_every_part_it_gives() {
        let eth0 = Interface {
            index: 2,
            name: "eth0".into(),
            mac: Mac([0xfa, 0x16, 0x3e, 0x11, 0x22, 0x33]),
            addresses: Vec::new(),
            admin_up: true,
            carrier: true,
        };
        let mac = |text: &str| MACAddress::new(text).unwrap();
        assert!(selected(&eth0, None, None));
        assert!(selected(&eth0, Some("eth0"), None));
        assert!(selected(&eth0, None, Some(&mac("FA:16:3E:11:22:33"))), "MACs compare in any case");
        assert!(selected(&eth0, Some("eth0"), Some(&mac("fa:16:3e:11:22:33"))));
        assert!(!selected(&eth0, Some("eth1"), Some(&mac("fa:16:3e:11:22:33"))));
        assert!(!selected(&eth0, Some("eth0"), Some(&mac("fa:16:3e:11:22:34"))));
        assert!(!selected(&eth0, Some("Eth0"), None), "names are exact");
    }

    #[test]
    fn any_version_of_the_guests_major_is_answered() {
        assert!(check_version(None).is_ok());
        assert!(check_version(Some("1.0")).is_ok());
        assert!(check_version(Some("1.1")).is_ok());
        assert!(check_version(Some("1.9")).is_ok(), "a newer minor reads this one");
        for other in ["0.9", "2.0", "not a version"] {
            match check_version(Some(other)) {
                Err(ServiceError::Protocol(ProtocolError::NoCompatibleVersion(data))) => {
                    let written = <GuestInfo as PlainObject>::info().version.to_string();
                    assert_eq!(
                        (data.object.as_str(), data.max_version.as_str()),
                        ("GuestInfo", written.as_str()),
                        "{other}"
                    );
                }
                unexpected => panic!("{other}: {unexpected:?}"),
            }
        }
    }
}
