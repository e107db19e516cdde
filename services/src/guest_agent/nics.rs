//! The schema's view of the guest's NICs: [`vproto_netlink::Interface`]s (plain data from the
//! kernel) as [`GuestNic`] objects.

use vproto_api::{GuestAddress, GuestNic, IPAddress, LinkState, MACAddress};
use vproto_netlink::Interface;

/// The NICs as the schema's objects, in the order given. A NIC whose MAC, or an address whose
/// text, the schema's formats refuse (which the kernel's values never are) is logged and left
/// out rather than published invalid.
pub fn guest_nics(interfaces: &[Interface]) -> Vec<GuestNic> {
    interfaces.iter().filter_map(guest_nic).collect()
}

fn guest_nic(interface: &Interface) -> Option<GuestNic> {
    let mac = match MACAddress::new(interface.mac.to_string()) {
        Ok(mac) => mac,
        Err(error) => {
            tracing::warn!(interface = %interface.name, %error, "MAC not representable, NIC skipped");
            return None;
        }
    };
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
}
