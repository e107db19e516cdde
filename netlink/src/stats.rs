//! Traffic counters of links (`IFLA_STATS64`), read on demand.
//!
//! The kernel sends no event when a counter moves, so the collector's table never holds them:
//! [`StatsReader::read`] asks for them (one `RTM_GETLINK` dump for every link) on a socket of
//! its own, and each answer is as fresh as the dump.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{new_connection, Handle};

use crate::collector::NetlinkError;
use crate::state::link_family_ok;

/// The counters of one direction (received or transmitted) of a link, since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes of the packets counted in `packets`.
    pub bytes: u64,
    /// Packets received or transmitted successfully.
    pub packets: u64,
    /// Packets that failed (received with an error, or that could not be sent).
    pub errors: u64,
    /// Sound packets dropped (no buffer space, queue full, no handler, ...).
    pub dropped: u64,
}

/// A link's traffic counters, as the kernel's `struct rtnl_link_stats64` holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// What the link received.
    pub rx: Counters,
    /// What the link transmitted.
    pub tx: Counters,
}

impl LinkStats {
    /// The counters a link message carries: `IFLA_STATS64`, else the 32-bit `IFLA_STATS` that
    /// kernels before 2.6.35 send (whose counters wrap at 2^32); `None` when it has neither.
    pub fn from_message(message: &LinkMessage) -> Option<LinkStats> {
        let mut legacy = None;
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::Stats64(stats) => {
                    return Some(LinkStats {
                        rx: Counters {
                            bytes: stats.rx_bytes,
                            packets: stats.rx_packets,
                            errors: stats.rx_errors,
                            dropped: stats.rx_dropped,
                        },
                        tx: Counters {
                            bytes: stats.tx_bytes,
                            packets: stats.tx_packets,
                            errors: stats.tx_errors,
                            dropped: stats.tx_dropped,
                        },
                    })
                }
                LinkAttribute::Stats(stats) => {
                    legacy = Some(LinkStats {
                        rx: Counters {
                            bytes: stats.rx_bytes.into(),
                            packets: stats.rx_packets.into(),
                            errors: stats.rx_errors.into(),
                            dropped: stats.rx_dropped.into(),
                        },
                        tx: Counters {
                            bytes: stats.tx_bytes.into(),
                            packets: stats.tx_packets.into(),
                            errors: stats.tx_errors.into(),
                            dropped: stats.tx_dropped.into(),
                        },
                    })
                }
                _ => {}
            }
        }
        legacy
    }
}

/// Reads the traffic counters of every link of the current network namespace when asked, on
/// an rtnetlink socket of its own (no multicast group: it hears only the answers to its
/// dumps). Cheap to share: reads may run concurrently, each a dump of its own.
pub struct StatsReader {
    handle: Handle,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for StatsReader {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl StatsReader {
    /// Opens the socket in the current network namespace. Must run inside a tokio runtime
    /// (the socket's connection task is spawned on it).
    pub fn open() -> Result<Self, NetlinkError> {
        let (connection, handle, _unsolicited) = new_connection().map_err(NetlinkError::OpenStats)?;
        Ok(StatsReader { handle, connection: tokio::spawn(connection) })
    }

    /// Whether the socket's connection task stopped (the socket failed): every later read
    /// fails, and a new reader must be opened.
    pub fn is_closed(&self) -> bool {
        self.connection.is_finished()
    }

    /// The counters of every link, by interface index, from one dump. A link message that is
    /// not about an interface (another family, index 0) or carries no counters is left out.
    pub async fn read(&self) -> Result<BTreeMap<u32, LinkStats>, NetlinkError> {
        let mut links = self.handle.link().get().execute();
        let mut stats = BTreeMap::new();
        while let Some(link) =
            links.try_next().await.map_err(|source| NetlinkError::Dump { what: "link statistics", source })?
        {
            if !link_family_ok(&link) || link.header.index == 0 {
                continue;
            }
            match LinkStats::from_message(&link) {
                Some(counters) => {
                    stats.insert(link.header.index, counters);
                }
                None => tracing::debug!(index = link.header.index, "netlink: link without counters left out"),
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_route::link::{Stats, Stats64};

    use super::*;

    #[test]
    fn stats64_is_read_and_preferred_to_the_32_bit_counters() {
        let mut message = LinkMessage::default();
        assert_eq!(LinkStats::from_message(&message), None, "no counters at all");

        let mut legacy = Stats::default();
        (legacy.rx_bytes, legacy.rx_packets, legacy.rx_errors, legacy.rx_dropped) = (1, 2, 3, 4);
        (legacy.tx_bytes, legacy.tx_packets, legacy.tx_errors, legacy.tx_dropped) = (5, 6, 7, 8);
        message.attributes.push(LinkAttribute::Stats(legacy));
        let from_legacy = LinkStats::from_message(&message).unwrap();
        assert_eq!(from_legacy.rx, Counters { bytes: 1, packets: 2, errors: 3, dropped: 4 });
        assert_eq!(from_legacy.tx, Counters { bytes: 5, packets: 6, errors: 7, dropped: 8 });

        let mut wide = Stats64::default();
        (wide.rx_bytes, wide.rx_packets, wide.rx_errors, wide.rx_dropped) = (1 << 40, 20, 30, 40);
        (wide.tx_bytes, wide.tx_packets, wide.tx_errors, wide.tx_dropped) = (u64::MAX, 60, 70, 80);
        message.attributes.push(LinkAttribute::Stats64(wide));
        let from_wide = LinkStats::from_message(&message).unwrap();
        assert_eq!(from_wide.rx, Counters { bytes: 1 << 40, packets: 20, errors: 30, dropped: 40 });
        assert_eq!(from_wide.tx, Counters { bytes: u64::MAX, packets: 60, errors: 70, dropped: 80 });
    }
}
