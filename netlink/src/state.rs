//! The interface table built from rtnetlink link and address messages, and its view as the
//! guest's NICs ([`Interface`]).
//!
//! Every message is validated before it touches the table: a message the kernel should never
//! send (interface index 0, no or an impossible name, a prefix longer than the address, an
//! address of the wrong family) is logged with what was wrong and skipped. Nothing here panics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

/// Longest interface name Linux accepts (`IFNAMSIZ` - 1 bytes).
const MAX_IFNAME_LEN: usize = 15;

/// A 48-bit Ethernet (EUI-48) hardware address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// What the table knows about one network interface (one `ifindex`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The kernel's interface index.
    pub index: u32,
    /// The interface name (`IFLA_IFNAME`).
    pub name: String,
    /// The hardware address, when the link is Ethernet-like and has a non-zero 6-byte one.
    pub mac: Option<Mac>,
    /// The device type (`ARPHRD_*`).
    pub link_layer: LinkLayerType,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// `IFF_UP`: administratively enabled.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: the device is running and has carrier (what `ip link` shows as
    /// `LOWER_UP`; its absence on an up link is `NO-CARRIER`).
    pub carrier: bool,
}

impl Link {
    /// Whether this link is reported as a NIC: an Ethernet-type (`ARPHRD_ETHER`) device with a
    /// non-zero 6-byte MAC that is not a loopback. Virtual Ethernet devices (veth, bridges,
    /// VLANs, bonds, tap) count: the host side identifies a NIC by its MAC, and a guest's vif
    /// is one of them. Loopback, tunnels (ipip, gre, wireguard: no MAC) and non-Ethernet
    /// devices do not.
    pub fn is_nic(&self) -> bool {
        self.link_layer == LinkLayerType::Ether && !self.loopback && self.mac.is_some()
    }
}

/// An address as the kernel keys it on an interface: the address and its prefix length.
pub type AddressKey = (IpAddr, u8);

/// A NIC as [`NetState::nics`] reports it: one per MAC, with its addresses and link state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The kernel's interface index of the link reported, which joins it to its counters
    /// ([`crate::StatsReader::read`]). An index may be reused after the link is deleted.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// The hardware address, which identifies the NIC.
    pub mac: Mac,
    /// The addresses with their prefix lengths: IPv4 first, then IPv6, each in numeric order.
    pub addresses: Vec<AddressKey>,
    /// `IFF_UP`: administratively enabled.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: the device is running and has carrier.
    pub carrier: bool,
}

/// How a message changed the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The table changed.
    Changed,
    /// The message was valid but changed nothing (a repeat, or a message about something the
    /// table does not track).
    Unchanged,
    /// The message was invalid or of a kind the collector does not handle; it was logged and
    /// skipped.
    Skipped,
}

/// The links and addresses of one network namespace, as the kernel reported them.
///
/// Addresses are kept per interface index apart from the links, so an address reported before
/// its link (a dump racing with a link creation) is kept until the link's own message arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetState {
    links: BTreeMap<u32, Link>,
    addresses: BTreeMap<u32, BTreeSet<AddressKey>>,
}

impl NetState {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The links by interface index.
    pub fn links(&self) -> &BTreeMap<u32, Link> {
        &self.links
    }

    /// The addresses of the interface with index `index`.
    pub fn addresses(&self, index: u32) -> impl Iterator<Item = &AddressKey> {
        self.addresses.get(&index).into_iter().flatten()
    }

    /// Applies one rtnetlink message (a dump answer or a multicast event).
    pub fn apply(&mut self, message: &RouteNetlinkMessage) -> Applied {
        match message {
            RouteNetlinkMessage::NewLink(link) => self.new_link(link),
            RouteNetlinkMessage::DelLink(link) => self.del_link(link),
            RouteNetlinkMessage::NewAddress(address) => self.new_address(address),
            RouteNetlinkMessage::DelAddress(address) => self.del_address(address),
            other => {
                tracing::debug!(
                    message_type = other.message_type(),
                    "netlink: ignoring a message that is neither link nor address"
                );
                Applied::Skipped
            }
        }
    }

    fn new_link(&mut self, message: &LinkMessage) -> Applied {
        let Some(link) = parse_link(message) else { return Applied::Skipped };
        // An address table entry for this index may already exist (address before link).
        match self.links.insert(link.index, link.clone()) {
            Some(old) if old == link => Applied::Unchanged,
            _ => Applied::Changed,
        }
    }

    fn del_link(&mut self, message: &LinkMessage) -> Applied {
        if !link_family_ok(message) {
            return Applied::Skipped;
        }
        let index = message.header.index;
        if index == 0 {
            tracing::warn!("netlink: RTM_DELLINK with interface index 0 skipped");
            return Applied::Skipped;
        }
        let had_link = self.links.remove(&index).is_some();
        let had_addresses = self.addresses.remove(&index).is_some();
        if had_link || had_addresses {
            Applied::Changed
        } else {
            Applied::Unchanged
        }
    }

    fn new_address(&mut self, message: &AddressMessage) -> Applied {
        let Some((index, key, usable)) = parse_address(message, "RTM_NEWADDR") else { return Applied::Skipped };
        let set = self.addresses.entry(index).or_default();
        let changed = if usable { set.insert(key) } else { set.remove(&key) };
        if set.is_empty() {
            self.addresses.remove(&index);
        }
        if changed {
            Applied::Changed
        } else {
            Applied::Unchanged
        }
    }

    fn del_address(&mut self, message: &AddressMessage) -> Applied {
        let Some((index, key, _)) = parse_address(message, "RTM_DELADDR") else { return Applied::Skipped };
        let Some(set) = self.addresses.get_mut(&index) else { return Applied::Unchanged };
        let changed = set.remove(&key);
        if set.is_empty() {
            self.addresses.remove(&index);
        }
        if changed {
            Applied::Changed
        } else {
            Applied::Unchanged
        }
    }

    /// The NICs (see [`Link::is_nic`]), ordered by name (then index); each NIC's addresses
    /// IPv4 first, then IPv6, each in numeric order.
    ///
    /// The MAC identifies a NIC, so one MAC is reported once: when several links share it (a
    /// VLAN and its parent, a bond and its members, a bridge and the port it took its MAC
    /// from), the one with addresses wins, then the lowest interface index.
    pub fn nics(&self) -> Vec<Interface> {
        let mut by_mac: BTreeMap<Mac, &Link> = BTreeMap::new();
        for link in self.links.values().filter(|link| link.is_nic()) {
            let Some(mac) = link.mac else { continue };
            let rank = |link: &Link| (self.addresses(link.index).next().is_some(), std::cmp::Reverse(link.index));
            by_mac
                .entry(mac)
                .and_modify(|kept| {
                    if rank(link) > rank(kept) {
                        *kept = link;
                    }
                })
                .or_insert(link);
        }
        let mut links: Vec<(Mac, &Link)> = by_mac.into_iter().collect();
        links.sort_by(|(_, a), (_, b)| (&a.name, a.index).cmp(&(&b.name, b.index)));
        links
            .into_iter()
            .map(|(mac, link)| Interface {
                index: link.index,
                name: link.name.clone(),
                mac,
                addresses: self.addresses(link.index).copied().collect(),
                admin_up: link.admin_up,
                carrier: link.carrier,
            })
            .collect()
    }
}

/// Link messages of family `AF_UNSPEC` describe the interface itself. The bridge module sends
/// `RTM_NEWLINK`/`RTM_DELLINK` of family `AF_BRIDGE` about a port's bridge membership on the
/// same group: a `DELLINK` of that family means "left the bridge", not "interface removed".
pub(crate) fn link_family_ok(message: &LinkMessage) -> bool {
    if message.header.interface_family == AddressFamily::Unspec {
        true
    } else {
        tracing::debug!(
            family = ?message.header.interface_family,
            index = message.header.index,
            "netlink: link message of a protocol family (not the interface itself) ignored"
        );
        false
    }
}

fn parse_link(message: &LinkMessage) -> Option<Link> {
    if !link_family_ok(message) {
        return None;
    }
    let header = &message.header;
    if header.index == 0 {
        tracing::warn!("netlink: RTM_NEWLINK with interface index 0 skipped");
        return None;
    }
    let mut name = None;
    let mut hardware = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(value) => name = Some(value),
            LinkAttribute::Address(value) => hardware = Some(value),
            _ => {}
        }
    }
    let Some(name) = name else {
        tracing::warn!(index = header.index, "netlink: RTM_NEWLINK without IFLA_IFNAME skipped");
        return None;
    };
    if let Err(why) = check_ifname(name) {
        tracing::warn!(index = header.index, name = ?name, "netlink: RTM_NEWLINK with an invalid name skipped: {why}");
        return None;
    }
    let mac = match hardware {
        Some(bytes) if header.link_layer_type == LinkLayerType::Ether => match <[u8; 6]>::try_from(bytes.as_slice()) {
            Ok(bytes) if bytes != [0; 6] => Some(Mac(bytes)),
            Ok(_) => None,
            Err(_) => {
                tracing::warn!(
                    interface = %name,
                    length = bytes.len(),
                    "netlink: Ethernet link with a hardware address that is not 6 bytes; treated as having no MAC"
                );
                None
            }
        },
        _ => None,
    };
    Some(Link {
        index: header.index,
        name: name.clone(),
        mac,
        link_layer: header.link_layer_type,
        loopback: header.flags.contains(LinkFlags::Loopback),
        admin_up: header.flags.contains(LinkFlags::Up),
        carrier: header.flags.contains(LinkFlags::LowerUp),
    })
}

/// The kernel's own rule for interface names (`dev_valid_name`): 1 to 15 bytes, not `.` or
/// `..`, no `/`, `:` or whitespace. A name breaking it did not come from a sane kernel.
fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_IFNAME_LEN {
        return Err("length must be 1 to 15 bytes");
    }
    if name == "." || name == ".." {
        return Err("`.` and `..` are not interface names");
    }
    if name.chars().any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace()) {
        return Err("contains `/`, `:`, NUL or whitespace");
    }
    Ok(())
}

/// Validates an address message: the interface index, the family, the address (`IFA_LOCAL`
/// for IPv4, the local end on point-to-point links; else `IFA_ADDRESS`) matching the family
/// and the prefix length fitting it. Returns the index, the key and whether the address is
/// usable (an IPv6 address that failed duplicate address detection is not).
fn parse_address(message: &AddressMessage, what: &str) -> Option<(u32, AddressKey, bool)> {
    let header = &message.header;
    let bits = match header.family {
        AddressFamily::Inet => 32,
        AddressFamily::Inet6 => 128,
        other => {
            tracing::debug!(family = ?other, "netlink: {what} of a family other than IPv4/IPv6 ignored");
            return None;
        }
    };
    if header.index == 0 {
        tracing::warn!("netlink: {what} with interface index 0 skipped");
        return None;
    }
    let mut local = None;
    let mut address = None;
    let mut flags = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(value) => flags = Some(*value),
            _ => {}
        }
    }
    let Some(ip) = local.or(address) else {
        tracing::warn!(index = header.index, "netlink: {what} without IFA_LOCAL or IFA_ADDRESS skipped");
        return None;
    };
    if ip.is_ipv4() != (bits == 32) {
        tracing::warn!(index = header.index, %ip, family = ?header.family, "netlink: {what} address does not match its family; skipped");
        return None;
    }
    if u32::from(header.prefix_len) > bits {
        tracing::warn!(index = header.index, %ip, prefix = header.prefix_len, "netlink: {what} prefix longer than {bits} bits; skipped");
        return None;
    }
    // IFA_FLAGS carries all 32 bits; without it the header's 8 bits are all there is.
    let flags = flags.unwrap_or_else(|| AddressFlags::from_bits_retain(u32::from(header.flags.bits())));
    let usable = !flags.contains(AddressFlags::Dadfailed);
    Some((header.index, (ip, header.prefix_len), usable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::address::AddressHeaderFlags;

    fn link(index: u32, name: &str, mac: Option<Vec<u8>>, flags: LinkFlags) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.link_layer_type = LinkLayerType::Ether;
        message.header.flags = flags;
        message.attributes.push(LinkAttribute::IfName(name.into()));
        if let Some(mac) = mac {
            message.attributes.push(LinkAttribute::Address(mac));
        }
        message
    }

    fn address(index: u32, ip: &str, prefix: u8) -> AddressMessage {
        let ip: IpAddr = ip.parse().unwrap();
        let mut message = AddressMessage::default();
        message.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        message.header.index = index;
        message.header.prefix_len = prefix;
        message.attributes.push(AddressAttribute::Address(ip));
        if ip.is_ipv4() {
            message.attributes.push(AddressAttribute::Local(ip));
        }
        message
    }

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

    #[test]
    fn link_and_addresses_become_a_nic() {
        let mut state = NetState::new();
        let up = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Running;
        assert_eq!(state.apply(&RouteNetlinkMessage::NewLink(link(3, "eth0", Some(MAC.into()), up))), Applied::Changed);
        assert_eq!(state.apply(&RouteNetlinkMessage::NewAddress(address(3, "2001:db8::1", 64))), Applied::Changed);
        assert_eq!(state.apply(&RouteNetlinkMessage::NewAddress(address(3, "192.0.2.7", 24))), Applied::Changed);
        assert_eq!(state.apply(&RouteNetlinkMessage::NewAddress(address(3, "192.0.2.7", 24))), Applied::Unchanged);
        let nics = state.nics();
        assert_eq!(nics.len(), 1);
        assert_eq!((nics[0].index, nics[0].name.as_str()), (3, "eth0"));
        assert_eq!(nics[0].mac.to_string(), "02:00:00:00:00:0a");
        assert_eq!((nics[0].admin_up, nics[0].carrier), (true, true));
        let shown: Vec<String> =
            nics[0].addresses.iter().map(|(address, prefix)| format!("{address}/{prefix}")).collect();
        assert_eq!(shown, ["192.0.2.7/24", "2001:db8::1/64"]);

        let down = link(3, "eth0", Some(MAC.into()), LinkFlags::empty());
        assert_eq!(state.apply(&RouteNetlinkMessage::NewLink(down)), Applied::Changed);
        assert_eq!((state.nics()[0].admin_up, state.nics()[0].carrier), (false, false));
        assert_eq!(state.apply(&RouteNetlinkMessage::DelAddress(address(3, "192.0.2.7", 24))), Applied::Changed);
        assert_eq!(state.nics()[0].addresses.len(), 1);
        assert_eq!(
            state.apply(&RouteNetlinkMessage::DelLink(link(3, "eth0", None, LinkFlags::empty()))),
            Applied::Changed
        );
        assert!(state.nics().is_empty());
        assert!(state.addresses(3).next().is_none(), "addresses go with their link");
    }

    #[test]
    fn loopback_and_macless_links_are_not_nics() {
        let mut state = NetState::new();
        let mut lo = link(1, "lo", Some(vec![0; 6]), LinkFlags::Up | LinkFlags::Loopback);
        lo.header.link_layer_type = LinkLayerType::Loopback;
        state.apply(&RouteNetlinkMessage::NewLink(lo));
        let mut tunnel = link(2, "ipip0", Some(vec![10, 0, 0, 1]), LinkFlags::Up);
        tunnel.header.link_layer_type = LinkLayerType::Tunnel;
        state.apply(&RouteNetlinkMessage::NewLink(tunnel));
        state.apply(&RouteNetlinkMessage::NewLink(link(4, "zero0", Some(vec![0; 6]), LinkFlags::Up)));
        state.apply(&RouteNetlinkMessage::NewLink(link(5, "nomac0", None, LinkFlags::Up)));
        assert_eq!(state.links().len(), 4);
        assert!(state.nics().is_empty());
    }

    #[test]
    fn one_nic_per_mac() {
        let mut state = NetState::new();
        state.apply(&RouteNetlinkMessage::NewLink(link(2, "eth0", Some(MAC.into()), LinkFlags::Up)));
        state.apply(&RouteNetlinkMessage::NewLink(link(5, "eth0.100", Some(MAC.into()), LinkFlags::Up)));
        state.apply(&RouteNetlinkMessage::NewLink(link(6, "eth0.200", Some(MAC.into()), LinkFlags::Up)));
        assert_eq!(state.nics().iter().map(|nic| nic.name.as_str()).collect::<Vec<_>>(), ["eth0"]);
        state.apply(&RouteNetlinkMessage::NewAddress(address(6, "192.0.2.1", 24)));
        assert_eq!(state.nics().iter().map(|nic| nic.name.as_str()).collect::<Vec<_>>(), ["eth0.200"]);
    }

    #[test]
    fn address_before_its_link_is_kept() {
        let mut state = NetState::new();
        state.apply(&RouteNetlinkMessage::NewAddress(address(7, "198.51.100.1", 32)));
        state.apply(&RouteNetlinkMessage::NewLink(link(7, "veth1", Some(MAC.into()), LinkFlags::Up)));
        assert_eq!(state.nics()[0].addresses.len(), 1);
    }

    #[test]
    fn invalid_messages_are_skipped() {
        let mut state = NetState::new();
        let mac = Some(MAC.to_vec());
        assert_eq!(
            state.apply(&RouteNetlinkMessage::NewLink(link(0, "eth0", mac.clone(), LinkFlags::Up))),
            Applied::Skipped
        );
        for name in ["", "..", "a/b", "a:b", "with space", "sixteen-bytes-xx"] {
            let message = link(3, name, mac.clone(), LinkFlags::Up);
            assert_eq!(state.apply(&RouteNetlinkMessage::NewLink(message)), Applied::Skipped, "{name:?}");
        }
        let mut nameless = link(3, "x", mac.clone(), LinkFlags::Up);
        nameless.attributes.retain(|a| !matches!(a, LinkAttribute::IfName(_)));
        assert_eq!(state.apply(&RouteNetlinkMessage::NewLink(nameless)), Applied::Skipped);
        let mut bridge = link(3, "eth0", mac.clone(), LinkFlags::Up);
        bridge.header.interface_family = AddressFamily::Bridge;
        assert_eq!(state.apply(&RouteNetlinkMessage::NewLink(bridge.clone())), Applied::Skipped);
        // A bad hardware address length keeps the link but without a MAC.
        assert_eq!(
            state.apply(&RouteNetlinkMessage::NewLink(link(3, "eth0", Some(vec![1, 2, 3]), LinkFlags::Up))),
            Applied::Changed
        );
        assert!(state.nics().is_empty());
        // A bridge-family DELLINK does not remove the interface.
        assert_eq!(state.apply(&RouteNetlinkMessage::DelLink(bridge)), Applied::Skipped);
        assert_eq!(state.links().len(), 1);

        assert_eq!(state.apply(&RouteNetlinkMessage::NewAddress(address(3, "192.0.2.1", 33))), Applied::Skipped);
        assert_eq!(state.apply(&RouteNetlinkMessage::NewAddress(address(3, "2001:db8::1", 129))), Applied::Skipped);
        assert_eq!(state.apply(&RouteNetlinkMessage::NewAddress(address(0, "192.0.2.1", 24))), Applied::Skipped);
        let mut mismatched = address(3, "192.0.2.1", 24);
        mismatched.header.family = AddressFamily::Inet6;
        assert_eq!(state.apply(&RouteNetlinkMessage::NewAddress(mismatched)), Applied::Skipped);
        let mut empty = address(3, "192.0.2.1", 24);
        empty.attributes.clear();
        assert_eq!(state.apply(&RouteNetlinkMessage::NewAddress(empty)), Applied::Skipped);
        assert!(state.addresses(3).next().is_none());
    }

    #[test]
    fn dad_failed_address_is_dropped() {
        let mut state = NetState::new();
        state.apply(&RouteNetlinkMessage::NewAddress(address(3, "2001:db8::5", 64)));
        let mut failed = address(3, "2001:db8::5", 64);
        failed.header.flags = AddressHeaderFlags::from_bits_retain(0x08);
        assert_eq!(state.apply(&RouteNetlinkMessage::NewAddress(failed)), Applied::Changed);
        assert!(state.addresses(3).next().is_none());
    }
}
