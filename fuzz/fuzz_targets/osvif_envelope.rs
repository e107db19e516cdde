//! The os-vif envelope decoder: any JSON as a `versioned_object.*` envelope, read as each
//! object the schema names (at whatever version it claims) and converted to every version of
//! the object it names, as a client backlevelling after UnsupportedVersion does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vproto_api::{HostInfo, Network, VIFOpenVSwitch, REGISTRY};
use vproto_support::wire::{backport_envelope, VersionedObject, WirePath};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(host) = HostInfo::from_primitive(&value) {
        host.to_primitive(None, None).expect("what was read can be written back");
    }
    let _ = Network::from_primitive(&value);
    let _ = VIFOpenVSwitch::from_primitive(&value);
    let name = value.get("versioned_object.name").and_then(Value::as_str);
    if let Some(info) = name.and_then(|name| REGISTRY.get(name)) {
        for version in info.versions {
            let mut copy = value.clone();
            let _ = backport_envelope(&REGISTRY, &mut copy, *version, None, &WirePath::root());
        }
    }
});
