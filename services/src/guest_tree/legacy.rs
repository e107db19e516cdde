//! The legacy layout that existing Xen toolstacks (xapi's
//! `xapi_guest_metrics`) read, as xe-guest-utilities' `xe-daemon` and
//! `xe-linux-distribution` write it.
//!
//! Written by hand, not described in the schema: its paths are numbered
//! (`attr/vif/<id>/ipv4/<n>`), split one list by address family, drop the
//! prefix length, derive two keys from one field (`os_majorver`/`os_minorver`
//! from the version), hold constants (`attr/PVAddons/*`, `data/updated`) and
//! name NICs by a Xen device id that GuestInfo does not carry. A schema
//! language able to say all that would be a programming language; the
//! schema's `data_trees` stays declarative and this module is the one
//! exception (see docs/guest-data-tree.md for every path and its source).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use serde_json::{json, Value};

use vproto_api::{layouts::GUEST_V1, GuestInfo};
use vproto_support::{
    tree::{children, exists, leaf_value, quote_value, TreeError},
    wire::{WirePath, WireValue},
};

/// What the legacy writer owns: the only places an agent writes or removes.
pub const OWNED_ROOTS: &[&str] = &[
    "data/os_name",
    "data/os_distro",
    "data/os_majorver",
    "data/os_minorver",
    "data/os_uname",
    "data/updated",
    "attr/vif",
    "attr/PVAddons",
];

/// What a legacy reader reads: the owned roots plus the toolstack's frontend
/// nodes (`device/vif/<id>/mac` and `state`), which hold what the legacy
/// layout itself lacks.
pub const READ_ROOTS: &[&str] = &[
    "data/os_name",
    "data/os_distro",
    "data/os_majorver",
    "data/os_minorver",
    "data/os_uname",
    "data/updated",
    "attr/vif",
    "attr/PVAddons",
    "device/vif",
];

/// The protocol identification a legacy tree reads as: it predates layout versions.
pub const LEGACY_LAYOUT_VERSION: &str = "0.0.0";

/// `xenbus` state 4, `XenbusStateConnected`: the frontend is connected.
const XENBUS_CONNECTED: &str = "4";

/// The Xen VIF device id a guest interface name carries: `eth<N>` (netfront's
/// kernel name, numbered in VIF order) or `enX<N>` (systemd's predictable
/// name for Xen netfront, N being the VIF id). Other interfaces are not Xen
/// VIFs as far as the legacy layout can tell and are left out, as
/// xe-guest-utilities leaves out interfaces without a `device/vif/<N>` node.
pub fn vif_id(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("eth").or_else(|| name.strip_prefix("enX"))?;
    canonical_number(digits)
}

fn canonical_number(digits: &str) -> Option<u32> {
    let canonical =
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// `os_majorver` and `os_minorver` from a version, as xe-linux-distribution's
/// `identify_os_release` derives them from VERSION_ID (`^([0-9]*)\.?([0-9]*)`),
/// each `unknown` when empty.
pub fn split_version(version: &str) -> (String, String) {
    let leading_digits = |text: &str| text.chars().take_while(char::is_ascii_digit).collect::<String>();
    let major = leading_digits(version);
    let rest = &version[major.len()..];
    let minor = leading_digits(rest.strip_prefix('.').unwrap_or(rest));
    let known = |part: String| if part.is_empty() { "unknown".to_string() } else { part };
    (known(major), known(minor))
}

/// The legacy leaves of `info` (see the module documentation).
pub fn encode(info: &GuestInfo) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |path: String, value: String| {
        out.insert(path, value);
    };
    put("data/os_name".into(), info.os.name.clone());
    if let Some(distro) = &info.os.distro {
        put("data/os_distro".into(), distro.clone());
    }
    let (major, minor) = split_version(info.os.version.as_deref().unwrap_or(""));
    put("data/os_majorver".into(), major);
    put("data/os_minorver".into(), minor);
    if let Some(kernel) = &info.os.kernel_version {
        put("data/os_uname".into(), kernel.clone());
    }
    let mut ids = BTreeSet::new();
    for nic in &info.nics {
        let Some(id) = vif_id(&nic.name) else { continue };
        if !ids.insert(id) {
            tracing::warn!(name = %nic.name, "a second interface claims VIF {id}; left out of the legacy layout");
            continue;
        }
        let (mut v4, mut v6) = (0usize, 0usize);
        for address in &nic.addresses {
            match address.address.as_str().parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => {
                    put(format!("attr/vif/{id}/ipv4/{v4}"), ip.to_string());
                    v4 += 1;
                }
                Ok(IpAddr::V6(ip)) => {
                    put(format!("attr/vif/{id}/ipv6/{v6}"), ip.to_string());
                    v6 += 1;
                }
                Err(_) => {}
            }
        }
    }
    put("attr/PVAddons/Installed".into(), "1".into());
    put("attr/PVAddons/MajorVersion".into(), env!("CARGO_PKG_VERSION_MAJOR").into());
    put("attr/PVAddons/MinorVersion".into(), env!("CARGO_PKG_VERSION_MINOR").into());
    put("attr/PVAddons/MicroVersion".into(), env!("CARGO_PKG_VERSION_PATCH").into());
    put("attr/PVAddons/BuildVersion".into(), "0".into());
    put("data/updated".into(), "1".into());
    out
}

/// Reads a legacy tree (with the toolstack's `device/vif` nodes) back into
/// GuestInfo. What the legacy layout does not carry is derived, as
/// docs/guest-data-tree.md states: the NIC's MAC and link state from the
/// frontend nodes, its name `vif<id>`, host prefixes (32, 128).
pub fn decode(entries: &BTreeMap<String, String>) -> Result<GuestInfo, TreeError> {
    if !OWNED_ROOTS.iter().any(|root| exists(entries, root)) {
        return Err(TreeError::NoTree { root: "data/os_name".into() });
    }
    if !entries.contains_key("data/updated") {
        return Err(TreeError::Missing {
            path: "data/updated".into(),
            why: "legacy readers (xapi) take the data as valid only once data/updated exists".into(),
        });
    }
    let checked = |names: &[&str], path: &str, text: &str| -> Result<Value, TreeError> {
        let leaf = GUEST_V1.node.leaf(names).expect("GuestInfo's layout maps the field");
        leaf_value(leaf, text, path)
    };
    let mut os = serde_json::Map::new();
    let name = entries
        .get("data/os_name")
        .ok_or_else(|| TreeError::Missing { path: "data/os_name".into(), why: "OsInfo.name is required".into() })?;
    os.insert("name".into(), checked(&["os", "name"], "data/os_name", name)?);
    if let Some(distro) = entries.get("data/os_distro") {
        os.insert("distro".into(), checked(&["os", "distro"], "data/os_distro", distro)?);
    }
    let known = |path: &str| entries.get(path).filter(|part| !part.is_empty() && *part != "unknown");
    if let Some(major) = known("data/os_majorver") {
        let version = match known("data/os_minorver") {
            Some(minor) => format!("{major}.{minor}"),
            None => major.clone(),
        };
        os.insert("version".into(), checked(&["os", "version"], "data/os_majorver", &version)?);
    }
    if let Some(uname) = entries.get("data/os_uname") {
        os.insert("kernel_version".into(), checked(&["os", "kernel_version"], "data/os_uname", uname)?);
    }
    let mut nics = Vec::new();
    let mut ids = Vec::new();
    for segment in children(entries, "attr/vif") {
        let id = canonical_number(segment).ok_or_else(|| TreeError::BadValue {
            path: format!("attr/vif/{segment}"),
            value: quote_value(segment),
            why: format!("VIF id {} is not a decimal number", quote_value(segment)),
        })?;
        ids.push(id);
    }
    ids.sort_unstable();
    for id in ids {
        let mac_path = format!("device/vif/{id}/mac");
        let mac = entries.get(&mac_path).ok_or_else(|| TreeError::Missing {
            path: mac_path.clone(),
            why: format!(
                "attr/vif/{id} has addresses but the toolstack's frontend node names no MAC for VIF {id} \
                 (the legacy layout carries none itself)"
            ),
        })?;
        let mac = checked(&["nics", "mac"], &mac_path, mac)?;
        let connected = entries.get(&format!("device/vif/{id}/state")).is_some_and(|state| state == XENBUS_CONNECTED);
        let mut addresses = Vec::new();
        for (family, prefix) in [("ipv4", 32), ("ipv6", 128)] {
            let base = format!("attr/vif/{id}/{family}");
            let mut indices = Vec::new();
            for segment in children(entries, &base) {
                let index = canonical_number(segment).ok_or_else(|| TreeError::BadValue {
                    path: format!("{base}/{segment}"),
                    value: quote_value(segment),
                    why: format!("address index {} is not a decimal number", quote_value(segment)),
                })?;
                indices.push((index, segment));
            }
            indices.sort_unstable();
            for (_, segment) in indices {
                let path = format!("{base}/{segment}");
                let text = entries.get(&path).map(String::as_str).unwrap_or_default();
                let address = if family == "ipv4" {
                    text.parse::<Ipv4Addr>().map(IpAddr::V4)
                } else {
                    text.parse::<Ipv6Addr>().map(IpAddr::V6)
                };
                let address = address.map_err(|_| TreeError::BadValue {
                    path: path.clone(),
                    value: quote_value(text),
                    why: format!("{} is not an {} address", quote_value(text), family.to_uppercase()),
                })?;
                addresses.push(json!({"address": address.to_string(), "prefix_length": prefix}));
            }
        }
        nics.push(json!({
            "name": format!("vif{id}"),
            "mac": mac,
            "addresses": addresses,
            "link": {"admin_up": connected, "carrier": connected},
        }));
    }
    let info = json!({
        "protocol": {"name": "vproto-guest-data", "layout_version": LEGACY_LAYOUT_VERSION},
        "os": os,
        "nics": nics,
    });
    GuestInfo::from_wire(&info, &WirePath::root())
        .map_err(|error| TreeError::Invalid { path: "data".into(), why: error.to_string() })
}
