//! What the agent knows of the guest now, shared with readers other than Xenstore: the guest
//! channel (`vproto_services::guest_channel`) answers from it.
//!
//! The agent's loop publishes a [`Snapshot`] into its [`LiveState`] every time it has read
//! the NICs, before and whether or not it writes the Xenstore tree, so the snapshot stays
//! current while Xenstore is unreachable. Without an agent, [`follow`] keeps a `LiveState`
//! current from netlink alone (what `vproto serve guest` runs).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vproto_api::{GuestInfo, OsInfo};
use vproto_netlink::{Coalesce, Interface};

use super::{collect_os_info, guest_info, Nics, OsSources, DEFAULT_MAX_BACKOFF, DEFAULT_MIN_BACKOFF};
use crate::guest_tree::GuestLayout;

/// The guest's data as the agent last read it.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The GuestInfo the agent publishes (what `guest.info` answers).
    pub info: GuestInfo,
    /// The NICs it was made of, as netlink reported them: their interface indexes join them
    /// to their counters (what `guest.nic_counters` reads).
    pub interfaces: Vec<Interface>,
}

impl Snapshot {
    /// The snapshot of `interfaces` (the NICs netlink reports) for a guest running `os` that
    /// publishes `layout`: its GuestInfo is [`guest_info`]'s, the one the agent publishes.
    pub fn new(layout: GuestLayout, os: &OsInfo, interfaces: Vec<Interface>) -> Self {
        Snapshot { info: guest_info(layout, os, &interfaces), interfaces }
    }
}

/// A shared handle on the current [`Snapshot`]: the agent (or [`follow`]) writes it, the
/// guest channel reads it. Clones share the same state.
#[derive(Clone, Debug)]
pub struct LiveState {
    sender: Arc<watch::Sender<Option<Arc<Snapshot>>>>,
}

impl Default for LiveState {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveState {
    /// A state without a snapshot yet.
    pub fn new() -> Self {
        LiveState { sender: Arc::new(watch::Sender::new(None)) }
    }

    /// Makes `snapshot` the current one if it differs from it; returns whether it did.
    pub fn publish(&self, snapshot: Snapshot) -> bool {
        self.sender.send_if_modified(|current| {
            if current.as_deref() == Some(&snapshot) {
                return false;
            }
            *current = Some(Arc::new(snapshot));
            true
        })
    }

    /// The current snapshot, if there is one yet.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.sender.borrow().clone()
    }

    /// The current snapshot, waiting up to `wait` for the first one (the agent publishes it
    /// once netlink answered its first dump); `None` if none came.
    pub async fn current(&self, wait: Duration) -> Option<Arc<Snapshot>> {
        if let Some(snapshot) = self.latest() {
            return Some(snapshot);
        }
        let mut receiver = self.sender.subscribe();
        let first = tokio::time::timeout(wait, receiver.wait_for(Option::is_some)).await;
        match first {
            Ok(Ok(snapshot)) => snapshot.clone(),
            // The sender lives as long as `self`, so the wait only ends by the timeout.
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

/// Keeps `live` current from netlink until `shutdown` completes, without Xenstore: the NICs
/// of the current network namespace and the OS data of `os_sources` (read once), as the
/// agent would publish them in `layout`. A failing netlink socket is reopened with the
/// agent's backoff (50 ms to 5 s). What `vproto serve guest` runs in place of the agent.
pub async fn follow(live: LiveState, layout: GuestLayout, os_sources: &OsSources, shutdown: impl Future<Output = ()>) {
    let os = collect_os_info(os_sources);
    tokio::pin!(shutdown);
    let mut nics = Nics::new(DEFAULT_MIN_BACKOFF, DEFAULT_MAX_BACKOFF);
    loop {
        let Some(collector) = nics.ready(&mut shutdown).await else { return };
        live.publish(Snapshot::new(layout, &os, collector.nics()));
        tokio::select! {
            () = &mut shutdown => return,
            changed = collector.next_change(Coalesce::default()) => {
                if let Err(error) = changed {
                    nics.failed(&error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use vproto_netlink::Mac;

    use super::*;

    fn os() -> OsInfo {
        OsInfo { name: "Debian GNU/Linux".into(), version: Some("12".into()), kernel_version: None, distro: None }
    }

    fn interface(index: u32, name: &str) -> Interface {
        Interface {
            index,
            name: name.into(),
            mac: Mac([2, 0, 0, 0, 0, index as u8]),
            addresses: Vec::new(),
            admin_up: true,
            carrier: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn readers_wait_for_the_first_snapshot_and_see_changes_only() {
        let live = LiveState::new();
        assert!(live.current(Duration::from_secs(1)).await.is_none(), "no snapshot within the wait");

        let waiting = tokio::spawn({
            let live = live.clone();
            async move { live.current(Duration::from_secs(5)).await }
        });
        tokio::task::yield_now().await;
        assert!(live.publish(Snapshot::new(GuestLayout::V1, &os(), vec![interface(2, "eth0")])));
        let first = waiting.await.unwrap().expect("the waiting reader gets the first snapshot");
        assert_eq!(first.info.nics[0].name, "eth0");
        assert_eq!(first.info.protocol.layout_version, GuestLayout::V1.layout_version().to_string());

        assert!(!live.publish(Snapshot::new(GuestLayout::V1, &os(), vec![interface(2, "eth0")])), "unchanged");
        assert!(live.publish(Snapshot::new(GuestLayout::V1, &os(), vec![interface(2, "eth0"), interface(3, "eth1")])));
        assert_eq!(live.latest().unwrap().interfaces.len(), 2);
    }
}
