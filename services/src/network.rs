//! An os-vif network host (`network.create_port`), negotiating with the service host's
//! `HostInfo` as seed 000 describes.
//!
//! # Negotiation
//!
//! For the requested network, the host tries the VIF classes it can produce there, in the
//! network's order of preference (`vif_classes`), against the plugins of the `HostInfo` in
//! their order. A plugin fits a class when it lists it (`HostVIFInfo.vif_object_name`) with a
//! `[min_version, max_version]` range holding a version of the class the schema knows; the
//! highest such version is chosen. Classes that carry a port profile (VIFOpenVSwitch and
//! VIFVHostUser carry a VIFPortProfileOpenVSwitch) also need the profile: a plugin whose
//! `supported_port_profiles` lists the profile gets it at the highest version in that range;
//! one that lists other profiles only does not fit; one that lists none (or sends
//! HostVIFInfo 1.0, which cannot say) gets the VIF without a port profile. The VIF is then
//! serialized at the chosen version (backlevelled with the schema's conversions, as oslo's
//! `obj_to_primitive(target_version)`), its profile at the chosen profile version, with
//! `plugin` naming the plugin. When nothing fits, the answer is NoCompatibleVif, listing the
//! classes tried and the plugins offered; nothing is created.
//!
//! A HostInfo newer than the schema's is answered UnsupportedVersion by the generated
//! dispatcher before this code runs; the service host backlevels and retries, and a retry
//! with the same port, instance and network answers the same port.
//!
//! `create_port` answers the typed VIF with the negotiated versions (an `Answer` naming the
//! VIF class and its port profile), and the generated `NetworkServer` writes it at them.
//!
//! A port created (not a repeated call answering an existing one) is also published as the
//! event `network.port_created` through the host's publisher ([`NetworkHost::with_events`]),
//! its VIF at each subscriber's versions.
//!
//! # Config
//!
//! ```json
//! {"networks": [{
//!     "id": "7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50", "label": "private", "bridge": "br-int", "mtu": 1450,
//!     "subnets": [{"cidr": "10.0.0.0/26", "gateway": "10.0.0.1", "dns": ["10.0.0.2"]}],
//!     "vif_classes": ["VIFOpenVSwitch", "VIFBridge", "VIFVHostUser"],
//!     "vhostuser_socket_dir": "/var/run/openvswitch", "datapath_type": "system"
//! }]}
//! ```
//!
//! Only `id` is required. `bridge` defaults to `br-int`, `vif_classes` to all three producible
//! classes in that order, `vhostuser_socket_dir` to `/var/run/openvswitch`; `datapath_type` (the
//! OVS profile's) defaults to `system` for VIFOpenVSwitch and `netdev` for VIFVHostUser. Each
//! port gets a MAC address `fa:16:3e:..` derived from its id and one fixed IP per subnet.

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    path::Path,
    sync::Mutex,
};

use serde_json::Value;
use vproto_api::{
    AnyVIFBase, AnyVIFPortProfileBase, FixedIP, FixedIPList, HostInfo, HostVIFInfo, IPAddress, IPNetwork, InstanceInfo,
    MACAddress, Network as OsVifNetwork, NetworkEvent, NetworkNotFoundData, NetworkService, NoCompatibleVifData,
    PortInUseData, ProtocolError, RouteList, ServiceError, Subnet, SubnetList, Uuid, VIFBridge, VIFOpenVSwitch,
    VIFPortProfileOpenVSwitch, VIFVHostUser, VIFVHostUserMode, REGISTRY,
};
use vproto_support::{
    rpc::{events::Publisher, Answer},
    wire::{Version, WireError, WirePath},
};

use crate::config::{read_json, shown, ConfigError, Fields};

/// The VIF classes this host can produce, in the default order of preference.
pub const PRODUCIBLE: [&str; 3] = ["VIFOpenVSwitch", "VIFBridge", "VIFVHostUser"];

/// The port profile a VIF class carries, if any.
fn profile_of(class: &str) -> Option<&'static str> {
    match class {
        "VIFOpenVSwitch" | "VIFVHostUser" => Some("VIFPortProfileOpenVSwitch"),
        _ => None,
    }
}

/// One subnet of a configured network.
#[derive(Clone, Debug, PartialEq)]
pub struct SubnetConfig {
    /// The subnet, in CIDR notation.
    pub cidr: IPNetwork,
    /// The default gateway, if any.
    pub gateway: Option<IPAddress>,
    /// DNS servers.
    pub dns: Vec<IPAddress>,
    base: IpAddr,
    prefix: u8,
}

/// A network the host serves ports on.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Its id.
    pub id: Uuid,
    /// A human-readable name.
    pub label: Option<String>,
    /// The host bridge ports attach to.
    pub bridge: String,
    /// The MTU, when known.
    pub mtu: Option<i64>,
    /// Its subnets; a port gets one fixed IP on each.
    pub subnets: Vec<SubnetConfig>,
    /// The VIF classes ports on it may take, most preferred first.
    pub vif_classes: Vec<&'static str>,
    /// Where vhost-user sockets live.
    pub vhostuser_socket_dir: String,
    /// The OVS profile's datapath type, when configured.
    pub datapath_type: Option<String>,
}

/// The network host's config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkHostConfig {
    /// The networks served.
    pub networks: Vec<NetworkConfig>,
}

impl NetworkHostConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_json(&read_json(path)?).map_err(|e| e.in_file(path))
    }

    /// Reads and checks a config document.
    pub fn from_json(value: &Value) -> Result<Self, ConfigError> {
        let fields = Fields::new(value, WirePath::root(), &["networks"])?;
        let list = fields.raw("networks").ok_or_else(|| ConfigError::field("networks", "missing required field"))?;
        let items = list.as_array().ok_or_else(|| ConfigError::field("networks", "expected an array of networks"))?;
        let mut networks: Vec<NetworkConfig> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = fields.path("networks").index(index);
            let network = read_network(item, path.clone())?;
            if networks.iter().any(|other| same_uuid(&other.id, &network.id)) {
                return Err(ConfigError::field(
                    shown(&path.field("id")),
                    format!("network {} is listed twice", network.id),
                ));
            }
            networks.push(network);
        }
        Ok(NetworkHostConfig { networks })
    }
}

fn read_network(value: &Value, path: WirePath) -> Result<NetworkConfig, ConfigError> {
    let fields = Fields::new(
        value,
        path,
        &["id", "label", "bridge", "mtu", "subnets", "vif_classes", "vhostuser_socket_dir", "datapath_type"],
    )?;
    let mtu = fields.optional::<i64>("mtu")?;
    if let Some(mtu) = mtu {
        if !(68..=65_535).contains(&mtu) {
            return Err(ConfigError::field(shown(&fields.path("mtu")), format!("{mtu} is not an MTU (68-65535)")));
        }
    }
    let mut subnets = Vec::new();
    if let Some(list) = fields.raw("subnets") {
        let items = list
            .as_array()
            .ok_or_else(|| ConfigError::field(shown(&fields.path("subnets")), "expected an array of subnets"))?;
        for (index, item) in items.iter().enumerate() {
            subnets.push(read_subnet(item, fields.path("subnets").index(index))?);
        }
    }
    let vif_classes = match fields.optional::<Vec<String>>("vif_classes")? {
        None => PRODUCIBLE.to_vec(),
        Some(names) => {
            let mut classes = Vec::new();
            for (index, name) in names.iter().enumerate() {
                let class = PRODUCIBLE.iter().find(|known| *known == name).ok_or_else(|| {
                    ConfigError::field(
                        shown(&fields.path("vif_classes").index(index)),
                        format!("this host cannot produce `{name}` (it produces {})", PRODUCIBLE.join(", ")),
                    )
                })?;
                classes.push(*class);
            }
            if classes.is_empty() {
                return Err(ConfigError::field(shown(&fields.path("vif_classes")), "name at least one VIF class"));
            }
            classes
        }
    };
    Ok(NetworkConfig {
        id: fields.required("id")?,
        label: fields.optional("label")?,
        bridge: fields.optional("bridge")?.unwrap_or_else(|| "br-int".to_string()),
        mtu,
        subnets,
        vif_classes,
        vhostuser_socket_dir: fields
            .optional("vhostuser_socket_dir")?
            .unwrap_or_else(|| "/var/run/openvswitch".to_string()),
        datapath_type: fields.optional("datapath_type")?,
    })
}

fn read_subnet(value: &Value, path: WirePath) -> Result<SubnetConfig, ConfigError> {
    let fields = Fields::new(value, path, &["cidr", "gateway", "dns"])?;
    let cidr: IPNetwork = fields.required("cidr")?;
    let (address, prefix) = cidr.as_str().split_once('/').expect("an IPNetwork has a prefix length");
    let (address, prefix): (IpAddr, u8) = (
        address.parse().expect("an IPNetwork holds an IP address"),
        prefix.parse().expect("an IPNetwork has a numeric prefix length"),
    );
    let base = network_address(address, prefix);
    let subnet = SubnetConfig {
        cidr,
        gateway: fields.optional("gateway")?,
        dns: fields.optional("dns")?.unwrap_or_default(),
        base,
        prefix,
    };
    if let Some(gateway) = &subnet.gateway {
        if !subnet.contains(parse_ip(gateway)) {
            return Err(ConfigError::field(
                shown(&fields.path("gateway")),
                format!("{gateway} is not in {}", subnet.cidr),
            ));
        }
    }
    Ok(subnet)
}

fn parse_ip(address: &IPAddress) -> IpAddr {
    address.as_str().parse().expect("an IPAddress holds an IP address")
}

fn same_uuid(a: &Uuid, b: &Uuid) -> bool {
    a.as_str().eq_ignore_ascii_case(b.as_str())
}

fn network_address(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    }
}

impl SubnetConfig {
    fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.base.is_ipv4() && network_address(address, self.prefix) == self.base
    }

    /// The first host address that is not the network, broadcast, gateway, a DNS server or
    /// taken (up to 65,536 candidates).
    fn allocate(&self, taken: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        let reserved: BTreeSet<IpAddr> =
            self.gateway.iter().chain(&self.dns).map(parse_ip).chain(taken.iter().copied()).collect();
        let (bits, base) = match self.base {
            IpAddr::V4(v4) => (32u32, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (128u32, u128::from(v6)),
        };
        let host_bits = bits - u32::from(self.prefix);
        let size: u128 = if host_bits >= 127 { u128::MAX } else { 1u128 << host_bits };
        // IPv4 networks larger than /31 reserve their first (network) and last (broadcast).
        let (first, end) = if self.base.is_ipv4() && host_bits > 1 { (1, size - 1) } else { (1, size) };
        (first..end.min(first + 65_536))
            .map(|offset| match self.base {
                IpAddr::V4(_) => IpAddr::from(((base + offset) as u32).to_be_bytes()),
                IpAddr::V6(_) => IpAddr::from((base + offset).to_be_bytes()),
            })
            .find(|candidate| !reserved.contains(candidate))
    }
}

/// A port that was created.
#[derive(Clone, Debug)]
struct Port {
    instance: Uuid,
    network: Uuid,
    mac: MACAddress,
    ips: Vec<IpAddr>,
}

/// The VIF class, plugin and versions a negotiation settled on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The VIF class.
    pub class: &'static str,
    /// The plugin that will consume it.
    pub plugin: String,
    /// The version the VIF is sent at.
    pub version: Version,
    /// The version its port profile is sent at; `None`: no port profile.
    pub profile: Option<Version>,
}

/// The highest version of `object` the schema knows within `[min, max]`.
fn highest_within(object: &str, min: &str, max: &str) -> Option<Version> {
    let (min, max) = (min.parse::<Version>().ok()?, max.parse::<Version>().ok()?);
    REGISTRY.get(object)?.versions.iter().rev().find(|v| min <= **v && **v <= max).copied()
}

/// How `vif` (a plugin's entry for `class`) can take `class`, if at all.
fn fits(class: &'static str, plugin: &str, vif: &HostVIFInfo) -> Option<Choice> {
    let version = highest_within(class, &vif.min_version, &vif.max_version)?;
    let profile = match (profile_of(class), &vif.supported_port_profiles) {
        (None, _) | (Some(_), None) => None,
        (Some(_), Some(profiles)) if profiles.is_empty() => None,
        (Some(name), Some(profiles)) => {
            let listed = profiles.iter().find(|p| p.profile_object_name == name)?;
            Some(highest_within(name, &listed.min_version, &listed.max_version)?)
        }
    };
    Some(Choice { class, plugin: plugin.to_string(), version, profile })
}

/// Chooses the first class of `classes` (in order) that a plugin of `host_info` (in order)
/// can consume.
pub fn negotiate(host_info: &HostInfo, classes: &[&'static str]) -> Option<Choice> {
    classes.iter().find_map(|class| {
        host_info.plugin_info.iter().find_map(|plugin| {
            plugin
                .vif_info
                .iter()
                .filter(|vif| vif.vif_object_name == *class)
                .find_map(|vif| fits(class, &plugin.plugin_name, vif))
        })
    })
}

/// The network host.
pub struct NetworkHost {
    config: NetworkHostConfig,
    ports: Mutex<HashMap<String, Port>>,
    events: Publisher<NetworkEvent>,
}

impl NetworkHost {
    /// A host serving the configured networks, with no port yet, publishing nowhere.
    pub fn new(config: NetworkHostConfig) -> Self {
        NetworkHost { config, ports: Mutex::new(HashMap::new()), events: Publisher::disconnected() }
    }

    /// The host, publishing `network.port_created` through `events`.
    pub fn with_events(mut self, events: Publisher<NetworkEvent>) -> Self {
        self.events = events;
        self
    }

    /// The port `port_id` for `instance` on `network`: the existing one, PortInUse, or a new
    /// one with addresses allocated; and whether it is new.
    fn port(&self, network: &NetworkConfig, instance: &Uuid, port_id: &Uuid) -> Result<(Port, bool), ServiceError> {
        let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let key = port_id.as_str().to_ascii_lowercase();
        if let Some(existing) = ports.get(&key) {
            if same_uuid(&existing.instance, instance) && same_uuid(&existing.network, &network.id) {
                return Ok((existing.clone(), false));
            }
            return Err(ProtocolError::PortInUse(PortInUseData {
                port_id: port_id.clone(),
                instance_uuid: existing.instance.clone(),
                network_id: existing.network.clone(),
            })
            .into());
        }
        let taken: BTreeSet<IpAddr> =
            ports.values().filter(|p| same_uuid(&p.network, &network.id)).flat_map(|p| p.ips.iter().copied()).collect();
        let mut ips = Vec::new();
        for subnet in &network.subnets {
            let address = subnet
                .allocate(&taken)
                .ok_or_else(|| ServiceError::Internal(format!("subnet {} has no free address", subnet.cidr)))?;
            ips.push(address);
        }
        let hex: String = key.chars().filter(char::is_ascii_hexdigit).collect();
        let tail = &hex[hex.len() - 6..];
        let mac = MACAddress::new(format!("fa:16:3e:{}:{}:{}", &tail[0..2], &tail[2..4], &tail[4..6]))
            .map_err(|e| ServiceError::Internal(format!("MAC address: {e}")))?;
        let port = Port { instance: instance.clone(), network: network.id.clone(), mac, ips };
        ports.insert(key, port.clone());
        Ok((port, true))
    }

    fn build(
        &self,
        network: &NetworkConfig,
        port: &Port,
        port_id: &Uuid,
        choice: &Choice,
    ) -> Result<AnyVIFBase, ServiceError> {
        let internal = |what: &str, e: WireError| ServiceError::Internal(format!("{what}: {e}"));
        let subnets = network
            .subnets
            .iter()
            .zip(&port.ips)
            .map(|(subnet, address)| {
                let ip = FixedIP::builder()
                    .address(IPAddress::new(address.to_string()).map_err(|e| internal("fixed IP", e))?)
                    .floating_ips(Vec::new())
                    .build();
                Ok(Subnet::builder()
                    .cidr(subnet.cidr.clone())
                    .dns(subnet.dns.clone())
                    .maybe_gateway(subnet.gateway.clone())
                    .ips(FixedIPList::builder().objects(vec![ip]).build())
                    .routes(RouteList::builder().objects(Vec::new()).build())
                    .build())
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        let os_vif_network = OsVifNetwork::builder()
            .id(network.id.clone())
            .bridge(network.bridge.clone())
            .maybe_label(network.label.clone())
            .maybe_mtu(network.mtu)
            .subnets(SubnetList::builder().objects(subnets).build())
            .build();
        let short = &port_id.as_str().to_ascii_lowercase()[..11];
        let profile = |default_datapath: &str| {
            choice.profile.map(|_| {
                let datapath = network.datapath_type.clone().unwrap_or_else(|| default_datapath.to_string());
                let profile = VIFPortProfileOpenVSwitch::builder()
                    .datapath_type(Some(datapath))
                    .interface_id(port_id.clone())
                    .build();
                AnyVIFPortProfileBase::VIFPortProfileOpenVSwitch(Box::new(profile))
            })
        };
        let (address, network_field, plugin) = (port.mac.clone(), os_vif_network, choice.plugin.clone());
        let tap = format!("tap{short}");
        Ok(match choice.class {
            "VIFOpenVSwitch" => AnyVIFBase::VIFOpenVSwitch(Box::new(
                VIFOpenVSwitch::builder()
                    .active(false)
                    .address(address)
                    .has_traffic_filtering(true)
                    .id(port_id.clone())
                    .network(network_field)
                    .plugin(plugin)
                    .maybe_port_profile(profile("system"))
                    .bridge_name(network.bridge.clone())
                    .vif_name(tap)
                    .build(),
            )),
            "VIFBridge" => AnyVIFBase::VIFBridge(Box::new(
                VIFBridge::builder()
                    .active(false)
                    .address(address)
                    .id(port_id.clone())
                    .network(network_field)
                    .plugin(plugin)
                    .bridge_name(network.bridge.clone())
                    .vif_name(tap)
                    .build(),
            )),
            "VIFVHostUser" => AnyVIFBase::VIFVHostUser(Box::new(
                VIFVHostUser::builder()
                    .active(false)
                    .address(address)
                    .id(port_id.clone())
                    .network(network_field)
                    .plugin(plugin)
                    .maybe_port_profile(profile("netdev"))
                    .mode(VIFVHostUserMode::Server)
                    .path(format!("{}/vhu{short}", network.vhostuser_socket_dir.trim_end_matches('/')))
                    .vif_name(format!("vhu{short}"))
                    .build(),
            )),
            other => return Err(ServiceError::Internal(format!("cannot build a {other}"))),
        })
    }
}

impl NetworkService for NetworkHost {
    async fn create_port(
        &self,
        host_info: HostInfo,
        instance: InstanceInfo,
        network_id: Uuid,
        port_id: Uuid,
    ) -> Result<Answer<AnyVIFBase>, ServiceError> {
        let network =
            self.config.networks.iter().find(|network| same_uuid(&network.id, &network_id)).ok_or_else(|| {
                ProtocolError::NetworkNotFound(NetworkNotFoundData { network_id: network_id.clone() })
            })?;
        let Some(choice) = negotiate(&host_info, &network.vif_classes) else {
            let plugins: Vec<String> = host_info.plugin_info.iter().map(|p| p.plugin_name.clone()).collect();
            tracing::info!(network = %network_id, ?plugins, classes = ?network.vif_classes, "no compatible VIF");
            return Err(ProtocolError::NoCompatibleVif(NoCompatibleVifData {
                vif_classes: network.vif_classes.iter().map(|c| c.to_string()).collect(),
                plugins,
            })
            .into());
        };
        let (port, created) = self.port(network, &instance.uuid, &port_id)?;
        tracing::info!(
            port = %port_id, instance = %instance.uuid, network = %network_id, class = choice.class,
            version = %choice.version, plugin = %choice.plugin, created, "port answered"
        );
        let vif = self.build(network, &port, &port_id, &choice)?;
        if created {
            self.events.publish(NetworkEvent::PortCreated {
                instance,
                network_id: network.id.clone(),
                port_id: port_id.clone(),
                vif: vif.clone(),
            });
        }
        let answer = Answer::current(vif).at_version(choice.class, choice.version);
        Ok(match (profile_of(choice.class), choice.profile) {
            (Some(profile), Some(version)) => answer.at_version(profile, version),
            _ => answer,
        })
    }
}
