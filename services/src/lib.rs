//! vproto-services: reference implementations of the services the schema declares, each
//! meant to run as its own process (`vproto serve driver|agent|conductor|network|guest`).
//!
//! - [`driver`]: a Cyborg driver reporting simulated hardware from a config file, with a
//!   discovery run that goes IN-PROGRESS → DONE (or FAILED) over a configured time.
//! - [`agent`]: the Cyborg agent of a node: drivers register with it (`agent.hello`), and it
//!   fans discovery and hardware listing out to its alive drivers.
//! - [`conductor`]: agents register with it; it aggregates hardware across its alive agents
//!   and reports the agents that stopped answering.
//! - [`guest_agent`]: the Xen guest agent (`vproto agent`, not the Cyborg agent): publishes
//!   OS identification and NIC state in the guest's Xenstore data tree, one transaction per change.
//! - [`guest_channel`]: the `guest` service a guest agent serves to dom0 (over vchan) for data
//!   that changes too often for Xenstore: its GuestInfo as it holds it now, and live NIC
//!   counters read from netlink.
//! - [`guest_tree`]: the layouts the guest agent publishes `GuestInfo` in (the schema's
//!   `guest_v1` data tree and the legacy one of xe-guest-utilities), which `vproto guest-info`
//!   reads too.
//! - [`network`]: an os-vif network host: `network.create_port` negotiates a VIF class and
//!   version with the service host's `HostInfo` (seed 000).
//!
//! The shared machinery: [`peer`] (how a registered `host:port` endpoint is reached through
//! vproto-jsonrpc's pool of reconnecting clients, concurrent fan-out with timeouts, and the
//! periodic hello a component sends to the one it registers with) and [`roster`] (who
//! registered, when they were last heard from and whether they are still alive: the agent's
//! drivers), and [`store`] (the conductor's agents, inventories and discovery runs, in memory,
//! SQLite or PostgreSQL).
//!
//! # Endpoints and addresses
//!
//! Cyborg endpoints are `host:port` (the schema's `Endpoint`). A component that contacts
//! registered peers (the agent its drivers, the conductor its agents) maps an endpoint to a
//! JSON-RPC address with its [`PeerScheme`]: `tcp` (the default) dials `tcp:host:port`, `http`
//! dials `http://host:port`. So a driver or agent that registers must listen on `tcp:` or
//! `http://` at the `host:port` it announces (or behind something that forwards there), and
//! every component of a deployment contacted by the same peer speaks the same scheme.
//!
//! # Features
//!
//! `reference-services` (the Cyborg and os-vif services), `guest-agent` (the Xen guest agent)
//! and `guest-channel` (the `guest` service over the agent's live state); all are default.
//! The guest binary (`vproto-guest-agent`) takes only `guest-agent`.

#[cfg(feature = "reference-services")]
pub mod agent;
#[cfg(feature = "reference-services")]
pub mod conductor;
#[cfg(feature = "reference-services")]
pub mod config;
#[cfg(feature = "reference-services")]
pub mod driver;
#[cfg(feature = "guest-agent")]
pub mod guest_agent;
#[cfg(feature = "guest-channel")]
pub mod guest_channel;
#[cfg(feature = "guest-agent")]
pub mod guest_tree;
#[cfg(feature = "reference-services")]
pub mod network;
#[cfg(feature = "reference-services")]
pub mod peer;
#[cfg(feature = "reference-services")]
pub mod peer_policy;
#[cfg(feature = "reference-services")]
pub mod roster;
#[cfg(feature = "reference-services")]
pub mod store;
#[cfg(any(feature = "reference-services", feature = "guest-channel"))]
mod time;

#[cfg(feature = "reference-services")]
pub use peer::{PeerScheme, Peers};
#[cfg(any(feature = "reference-services", feature = "guest-channel"))]
pub use time::{rfc3339, rfc3339_millis};
