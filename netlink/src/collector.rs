//! The rtnetlink socket: subscription, dumps, events and overrun recovery.

use std::io;
use std::time::Duration;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{new_multicast_connection, Handle, MulticastGroup};
use tokio::time::Instant;

use crate::state::{Applied, Interface, NetState};

/// Receive buffer asked for the event socket. The kernel caps it at `net.core.rmem_max`; a
/// burst larger than the buffer is an overrun, recovered by a re-dump.
const RECEIVE_BUFFER: usize = 1 << 20;

type Events = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, rtnetlink::sys::SocketAddr)>;

/// Opens an rtnetlink socket subscribed to the link and address groups, with a receive buffer
/// of `bytes` asked for, its connection task spawned.
fn subscribe(bytes: usize) -> Result<(Handle, Events, tokio::task::JoinHandle<()>), NetlinkError> {
    let groups = [MulticastGroup::Link, MulticastGroup::Ipv4Ifaddr, MulticastGroup::Ipv6Ifaddr];
    let (mut connection, handle, events) = new_multicast_connection(&groups).map_err(NetlinkError::Open)?;
    let socket = connection.socket_mut().socket_mut();
    if let Err(error) = socket.set_rx_buf_sz(bytes) {
        tracing::warn!(%error, "netlink: could not enlarge the receive buffer; bursts may overrun sooner");
    }
    Ok((handle, events, tokio::spawn(connection)))
}

/// What can stop the collector. Bad messages never do: they are logged and skipped.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The rtnetlink socket could not be opened, bound to the groups or configured.
    #[error("cannot open the rtnetlink socket (link and address groups): {0}")]
    Open(#[source] io::Error),
    /// The rtnetlink socket of a [`crate::StatsReader`] could not be opened.
    #[error("cannot open the rtnetlink socket for link statistics: {0}")]
    OpenStats(#[source] io::Error),
    /// A dump request failed (the kernel answered with an error, or the socket failed).
    #[error("netlink dump of {what} failed: {source}")]
    Dump {
        /// `links`, `addresses` or `link statistics`.
        what: &'static str,
        /// The error rtnetlink reported.
        #[source]
        source: rtnetlink::Error,
    },
    /// The socket's connection task stopped (the socket failed); open a new collector.
    #[error("the rtnetlink socket closed")]
    Closed,
}

/// How a burst of events is gathered into one change: after the first event the collector keeps
/// reading until no event came for `quiet`, or `max_delay` passed since the first one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coalesce {
    /// A gap this long between events ends the burst.
    pub quiet: Duration,
    /// The longest a burst delays its first event.
    pub max_delay: Duration,
}

impl Default for Coalesce {
    /// 2 ms of quiet, at most 10 ms: one `ip` command's events (a link going down, then its
    /// IPv6 addresses flushed) become one change.
    fn default() -> Self {
        Coalesce { quiet: Duration::from_millis(2), max_delay: Duration::from_millis(10) }
    }
}

/// The network-interface collector of one network namespace (the caller's).
///
/// [`NetlinkCollector::open`] subscribes to `RTMGRP_LINK`, `RTMGRP_IPV4_IFADDR` and
/// `RTMGRP_IPV6_IFADDR` first and dumps links and addresses second, so no change falls between
/// the dump and the events. [`NetlinkCollector::next_change`] then waits (no polling) for
/// events and applies them to the table. When the kernel reports that the socket's buffer
/// overflowed (`ENOBUFS`, seen as an overrun), events were lost: the table is rebuilt from a
/// new dump on a new socket ([`NetlinkCollector::resync`]).
///
/// Every socket is opened in the network namespace of the thread that opens it: run the
/// collector where that is the namespace to follow (the whole process, as `ip netns exec`
/// puts it, or a current-thread runtime on a thread that entered it).
pub struct NetlinkCollector {
    handle: Handle,
    events: Events,
    connection: tokio::task::JoinHandle<()>,
    state: NetState,
    needs_resync: bool,
    resyncs: u64,
    receive_buffer: usize,
}

impl Drop for NetlinkCollector {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl NetlinkCollector {
    /// Opens the socket in the current network namespace, subscribes and takes the initial
    /// dump. Must run inside a tokio runtime (the socket's connection task is spawned on it).
    pub async fn open() -> Result<Self, NetlinkError> {
        Self::open_with_receive_buffer(RECEIVE_BUFFER).await
    }

    /// [`NetlinkCollector::open`] asking for a receive buffer of `bytes` (the kernel doubles
    /// it, and caps it at `net.core.rmem_max`). A small one makes overruns easy to provoke,
    /// which is how the overrun recovery is tested.
    pub async fn open_with_receive_buffer(bytes: usize) -> Result<Self, NetlinkError> {
        let (handle, events, connection) = subscribe(bytes)?;
        let mut collector = NetlinkCollector {
            handle,
            events,
            connection,
            state: NetState::new(),
            needs_resync: true,
            resyncs: 0,
            receive_buffer: bytes,
        };
        collector.dump().await?;
        Ok(collector)
    }

    /// The current table.
    pub fn state(&self) -> &NetState {
        &self.state
    }

    /// The current NICs (see [`NetState::nics`]).
    pub fn nics(&self) -> Vec<Interface> {
        self.state.nics()
    }

    /// How many times the table was rebuilt after an overrun.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Rebuilds the table from a fresh dump, on a new socket subscribed first. The old socket
    /// goes with every event it still holds: after an overrun those are followed by events
    /// the kernel discarded, so applying them after the dump would take the table back to a
    /// state the kernel has left (a link deleted since would come back), and the kernel
    /// reports `ENOBUFS` before the messages it still holds, so they cannot be told apart
    /// from newer ones on that socket. Events that arrive during the dump are applied
    /// afterwards (the table then converges to the kernel's state, as each link or address
    /// message carries its full state).
    ///
    /// Cancel safe: if cancelled, the old table stays and the next [`Self::next_change`]
    /// dumps again.
    pub async fn resync(&mut self) -> Result<(), NetlinkError> {
        self.needs_resync = true;
        let (handle, events, connection) = subscribe(self.receive_buffer)?;
        self.connection.abort();
        (self.handle, self.events, self.connection) = (handle, events, connection);
        self.dump().await?;
        self.resyncs += 1;
        Ok(())
    }

    /// Replaces the table with a dump of links and addresses; events queued meanwhile stay
    /// queued, to be applied after it.
    async fn dump(&mut self) -> Result<(), NetlinkError> {
        let mut state = NetState::new();
        let mut links = self.handle.link().get().execute();
        while let Some(link) = links.try_next().await.map_err(|source| NetlinkError::Dump { what: "links", source })? {
            state.apply(&RouteNetlinkMessage::NewLink(link));
        }
        let mut addresses = self.handle.address().get().execute();
        while let Some(address) =
            addresses.try_next().await.map_err(|source| NetlinkError::Dump { what: "addresses", source })?
        {
            state.apply(&RouteNetlinkMessage::NewAddress(address));
        }
        self.state = state;
        self.needs_resync = false;
        tracing::debug!(links = self.state.links().len(), "netlink: table rebuilt from a dump");
        Ok(())
    }

    /// Waits for the next burst of events that changes the table and applies it (see
    /// [`Coalesce`]); events that change nothing (a repeat, a link property the table does not
    /// keep) do not end the wait. Returns `Ok` once the table changed.
    ///
    /// Cancel safe: events already applied stay applied.
    pub async fn next_change(&mut self, coalesce: Coalesce) -> Result<(), NetlinkError> {
        if self.needs_resync {
            self.resync().await?;
            return Ok(());
        }
        loop {
            let first = self.events.next().await.ok_or(NetlinkError::Closed)?;
            let mut changed = self.handle_event(first.0).await?;
            let deadline = Instant::now() + coalesce.max_delay;
            loop {
                let wait = coalesce.quiet.min(deadline.saturating_duration_since(Instant::now()));
                match tokio::time::timeout(wait, self.events.next()).await {
                    Ok(Some((message, _))) => changed |= self.handle_event(message).await?,
                    Ok(None) => return Err(NetlinkError::Closed),
                    Err(_elapsed) => break,
                }
            }
            if changed {
                return Ok(());
            }
        }
    }

    /// Applies one event; an overrun triggers a re-dump. Returns whether the table changed.
    async fn handle_event(&mut self, message: NetlinkMessage<RouteNetlinkMessage>) -> Result<bool, NetlinkError> {
        match message.payload {
            NetlinkPayload::InnerMessage(inner) => Ok(self.state.apply(&inner) == Applied::Changed),
            NetlinkPayload::Overrun(_) => {
                tracing::warn!("netlink: socket buffer overrun (ENOBUFS), events lost; dumping again");
                let before = self.state.clone();
                self.resync().await?;
                Ok(before != self.state)
            }
            NetlinkPayload::Error(error) => {
                tracing::warn!(%error, "netlink: unexpected error message on the event socket, skipped");
                Ok(false)
            }
            NetlinkPayload::Done(_) | NetlinkPayload::Noop => {
                tracing::debug!("netlink: control message on the event socket, skipped");
                Ok(false)
            }
            other => {
                tracing::warn!(message_type = other.message_type(), "netlink: unknown payload kind, skipped");
                Ok(false)
            }
        }
    }
}
