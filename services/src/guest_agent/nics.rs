//! The schema's view of the guest's NICs: [`vproto_netlink::Interface`]s (plain data from the
//! kernel) as [`GuestNic`] objects, and their counters ([`vproto_netlink::LinkStats`]) as
//! [`GuestNicCounters`]. Both name and identify a NIC the same way.

use std::collections::BTreeMap;

use vproto_api::{GuestAddress, GuestNic, GuestNicCounters, IPAddress, LinkState, MACAddress, TrafficCounters};
use vproto_netlink::{Counters, Interface, LinkStats};

/// The NICs as the schema's objects, in the order given. A NIC whose MAC, or an address whose
/// text, the schema's formats refuse (which the kernel's values never are) is logged and left
/// out rather than published invalid.
pub fn guest_nics(interfaces: &[Interface]) -> Vec<GuestNic> {
    interfaces.iter().filter_map(guest_nic).collect()
}

/// The NIC's MAC as the schema's type; `None` (logged) when the schema refuses it.
fn mac_of(interface: &Interface) -> Option<MACAddress> {
    MACAddress::new(interface.mac.to_string())
        .inspect_err(|error| tracing::warn!(interface = %interface.name, %error, "MAC not representable, NIC skipped"))
        .ok()
}

fn guest_nic(interface: &Interface) -> Option<GuestNic> {
    let mac = mac_of(interface)?;
    let addresses = interface
        .addresses
        .iter()
        .filter_map(|(address, prefix)| match IPAddress::new(address.to_string()) {
            Ok(ip) => Some(GuestAddress { address: ip, prefix_length: i64::from(*prefix) }),
            Err(error) => {
                tracing::warn!(interface = %interface.name, %address, %error, "address not representable, skipped");
                None
            }
        })
        .collect();
    Some(GuestNic {
        name: interface.name.clone(),
        mac,
        addresses,
        link: LinkState { admin_up: interface.admin_up, carrier: interface.carrier },
    })
}

/// The counters of the NICs among `interfaces`, in the order given, joined by interface index
/// to `stats` (one reading of every link). A NIC [`guest_nics`] leaves out, or that has no
/// counters in `stats` (it went away between the two readings), is left out.
pub fn nic_counters(interfaces: &[Interface], stats: &BTreeMap<u32, LinkStats>) -> Vec<GuestNicCounters> {
    interfaces
        .iter()
        .filter_map(|interface| {
            let counters = stats.get(&interface.index)?;
            Some(GuestNicCounters {
                name: interface.name.clone(),
                mac: mac_of(interface)?,
                rx: traffic(&counters.rx),
                tx: traffic(&counters.tx),
            })
        })
        .collect()
}

/// One direction's counters as the schema's integers, which stop at `i64::MAX` (about 9.2
/// EB, or 292 years of 10^9 packets a second: a kernel counter never reaches it).
fn traffic(counters: &Counters) -> TrafficCounters {
    let integer = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    TrafficCounters {
        bytes: integer(counters.bytes),
        packets: integer(counters.packets),
        errors: integer(counters.errors),
        dropped: integer(counters.dropped),
    }
}

#[cfg(test)]
mod tests {
    use vproto_netlink::Mac;

    use super::*;

    #[test]
    fn an_interface_becomes_a_guest_nic() {
        let interface = Interface {
            index: 3,
            name: "eth0".into(),
            mac: Mac([0x02, 0, 0, 0, 0, 0x0a]),
            addresses: vec![("192.0.2.7".parse().unwrap(), 24), ("2001:db8::1".parse().unwrap(), 64)],
            admin_up: true,
            carrier: false,
        };
        let nics = guest_nics(&[interface]);
        assert_eq!(nics.len(), 1);
        assert_eq!(nics[0].name, "eth0");
        assert_eq!(nics[0].mac.as_str(), "02:00:00:00:00:0a");
        assert_eq!(nics[0].link, LinkState { admin_up: true, carrier: false });
        let shown: Vec<String> =
            nics[0].addresses.iter().map(|a| format!("{}/{}", a.address, a.prefix_length)).collect();
        assert_eq!(shown, ["192.0.2.7/24", "2001:db8::1/64"]);
    }

    #[test]
    fn counters_join_interfaces_by_index() {
        let nic = |index: u32, name: &str| Interface {
            index,
            name: name.into(),
            mac: Mac([0x02, 0, 0, 0, 0, index as u8]),
            addresses: Vec::new(),
            admin_up: true,
            carrier: true,
        };
        let counters = |bytes: u64| Counters { bytes, packets: 2, errors: 3, dropped: 4 };
        let stats = BTreeMap::from([
            (1, LinkStats { rx: counters(1), tx: counters(1) }),
            (2, LinkStats { rx: counters(10), tx: counters(u64::MAX) }),
            (3, LinkStats::default()),
        ]);
        // eth9 (index 9) went away between the readings: left out.
        let answered = nic_counters(&[nic(3, "eth1"), nic(2, "eth0"), nic(9, "eth9")], &stats);
        let names: Vec<&str> = answered.iter().map(|nic| nic.name.as_str()).collect();
        assert_eq!(names, ["eth1", "eth0"], "in the order given, lo (index 1) not among them");
        assert_eq!(answered[1].mac.as_str(), "02:00:00:00:00:02");
        assert_eq!(answered[1].rx, TrafficCounters { bytes: 10, packets: 2, errors: 3, dropped: 4 });
        assert_eq!(answered[1].tx.bytes, i64::MAX, "a counter beyond the schema's integers stops at its maximum");
        assert_eq!(answered[0].rx, TrafficCounters { bytes: 0, packets: 0, errors: 0, dropped: 0 });
    }
}
