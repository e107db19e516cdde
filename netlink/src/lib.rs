//! vproto-netlink: the guest's network interfaces, their addresses and link state, read from
//! the kernel over rtnetlink and kept up to date by its multicast events.
//!
//! ```text
//!   NETLINK_ROUTE socket (rtnetlink crate) ── groups LINK, IPV4_IFADDR, IPV6_IFADDR
//!     ├─ initial dump: RTM_GETLINK, RTM_GETADDR (after subscribing, so nothing falls between)
//!     ├─ events: RTM_NEWLINK/DELLINK, RTM_NEWADDR/DELADDR ──► NetState (validated, applied)
//!     └─ overrun (ENOBUFS: events lost) ──► dump again
//!   NetState::nics() ──► Vec<Interface>  (index, name, MAC, addresses/prefix, admin_up, carrier)
//!
//!   StatsReader (a NETLINK_ROUTE socket of its own, no group)
//!     └─ on demand: RTM_GETLINK dump ──► LinkStats by index (IFLA_STATS64: rx/tx bytes, packets, errors, dropped)
//! ```
//!
//! Which links are NICs is decided by [`Link::is_nic`]: Ethernet-type devices with a non-zero
//! MAC, loopback excluded. The collector is event driven: between events it sleeps in the
//! socket's receive. Traffic counters move without events, so they are not in the table:
//! [`StatsReader`] reads them when asked, and [`Interface::index`] joins them to a NIC.
//!
//! The message parsing is rtnetlink's (`netlink-packet-route`); a datagram it cannot parse is
//! logged (through the `log` crate) and dropped by `netlink-proto`, and a parsed message that
//! breaks the kernel's own rules is logged (through `tracing`) and skipped by [`NetState`].
//!
//! It knows nothing of vproto's schema: [`Interface`] is plain data, and the guest agent
//! makes the schema's objects of it.

#![warn(missing_docs)]

mod collector;
mod state;
mod stats;

pub use collector::{Coalesce, NetlinkCollector, NetlinkError};
pub use state::{AddressKey, Applied, Interface, Link, Mac, NetState};
pub use stats::{Counters, LinkStats, StatsReader};
