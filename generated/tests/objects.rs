//! The generated objects against the wire: round trips, backports, upgrades and typed errors.

use serde_json::{json, Value};
use vproto_api::{convert_primitive, AnyVIFPortProfileBase, Network, VIFOpenVSwitch};
use vproto_support::wire::{Manifest, Version, VersionedObject, WireError};

fn example() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/vif-openvswitch.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn network_at(version: &str, data: Value) -> Value {
    json!({
        "versioned_object.name": "Network",
        "versioned_object.namespace": "os_vif",
        "versioned_object.version": version,
        "versioned_object.data": data,
    })
}

#[test]
fn a_full_vif_round_trips_byte_for_byte() {
    let input = example();
    let vif = VIFOpenVSwitch::from_primitive(&input).unwrap();
    assert!(matches!(vif.port_profile, Some(AnyVIFPortProfileBase::VIFPortProfileOpenVSwitch(_))));
    assert_eq!(vif.to_current_primitive(), input);
}

#[test]
fn backport_drops_fields_newer_than_the_target() {
    let input = example();
    let profile = &input["versioned_object.data"]["port_profile"];
    let old = convert_primitive(profile, Some(Version::new(1, 1)), None).unwrap();
    let data = old["versioned_object.data"].as_object().unwrap();
    assert_eq!(old["versioned_object.version"], "1.1");
    assert!(data.contains_key("datapath_type"), "datapath_type is since 1.1");
    for gone in ["create_port", "create_tap", "multiqueue", "datapath_offload"] {
        assert!(!data.contains_key(gone), "{gone} must be dropped at 1.1: {old}");
    }
    let changes: Vec<&str> =
        old["versioned_object.changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(changes.iter().all(|c| data.contains_key(*c)), "changes only name fields present: {changes:?}");
}

#[test]
fn inherited_fields_follow_the_base_version() {
    let input = example();
    let profile = &input["versioned_object.data"]["port_profile"];
    // VIFPortProfileOpenVSwitch 1.2 carries VIFPortProfileBase 1.1, which has datapath_offload
    // pinned to DatapathOffloadRepresentor 1.0.
    let converted = convert_primitive(profile, Some(Version::new(1, 2)), None).unwrap();
    let offload = &converted["versioned_object.data"]["datapath_offload"];
    assert_eq!(offload["versioned_object.name"], "DatapathOffloadRepresentor");
    assert_eq!(offload["versioned_object.version"], "1.0");
}

#[test]
fn network_backports_to_1_0_where_os_vif_has_no_rule() {
    let network = example()["versioned_object.data"]["network"].clone();
    let old = convert_primitive(&network, Some(Version::new(1, 0)), None).unwrap();
    assert_eq!(old["versioned_object.version"], "1.0");
    assert!(old["versioned_object.data"].get("mtu").is_none());
    assert_eq!(old["versioned_object.data"]["subnets"]["versioned_object.version"], "1.0");
}

#[test]
fn older_data_is_upgraded_with_defaults() {
    let mut network = example()["versioned_object.data"]["network"].clone();
    network["versioned_object.version"] = json!("1.0");
    network["versioned_object.data"].as_object_mut().unwrap().remove("mtu");
    network.as_object_mut().unwrap().remove("versioned_object.changes");
    let parsed = Network::from_primitive(&network).unwrap();
    assert_eq!(parsed.mtu, None, "mtu takes its default, null");
    let current = parsed.to_current_primitive();
    assert_eq!(current["versioned_object.version"], "1.1");
    assert_eq!(current["versioned_object.data"]["mtu"], Value::Null);
}

#[test]
fn manifest_pins_children() {
    // A VIFVHostUser (current 1.1) built from the example's fields.
    let mut input = example();
    input["versioned_object.name"] = json!("VIFVHostUser");
    input["versioned_object.version"] = json!("1.1");
    let data = input["versioned_object.data"].as_object_mut().unwrap();
    data.remove("bridge_name");
    data.insert("path".into(), json!("/var/run/vhu.sock"));
    data.insert("mode".into(), json!("server"));
    input.as_object_mut().unwrap().remove("versioned_object.changes");
    let manifest: Manifest = [("VIFPortProfileBase".to_string(), Version::new(1, 0))].into_iter().collect();
    let out = convert_primitive(&input, Some(Version::new(1, 0)), Some(&manifest)).unwrap();
    assert!(out["versioned_object.data"].get("vif_name").is_none(), "vif_name is since VIFVHostUser 1.1");
    let profile = &out["versioned_object.data"]["port_profile"];
    assert_eq!(profile["versioned_object.version"], "1.0");
    assert!(profile["versioned_object.data"].get("datapath_type").is_none());
    // Not in the manifest: left at its version, as oslo does.
    assert_eq!(out["versioned_object.data"]["network"]["versioned_object.version"], "1.1");
}

fn error_of(value: &Value, to: Version) -> WireError {
    convert_primitive(value, Some(to), None).expect_err("must be rejected")
}

#[test]
fn a_newer_version_names_the_highest_supported() {
    let mut network = example()["versioned_object.data"]["network"].clone();
    network["versioned_object.version"] = json!("1.7");
    let error = error_of(&network, Version::new(1, 0));
    assert!(matches!(&error, WireError::UnsupportedVersion { max_supported, .. } if max_supported == "1.1"), "{error}");
    assert!(error.to_string().contains("highest supported version 1.1"), "{error}");
}

#[test]
fn an_unknown_object_is_named() {
    let mut network = example()["versioned_object.data"]["network"].clone();
    network["versioned_object.name"] = json!("Teapot");
    assert!(error_of(&network, Version::new(1, 0)).to_string().contains("unknown object `Teapot`"));
}

#[test]
fn a_missing_required_field_is_named_with_its_path() {
    let mut input = example();
    input["versioned_object.data"]["network"]["versioned_object.data"].as_object_mut().unwrap().remove("id");
    let error = error_of(&input, Version::new(1, 0));
    assert_eq!(error.to_string(), "network: required field `id` of Network is missing");
}

#[test]
fn a_wrong_type_is_named_with_its_path() {
    let mut input = example();
    input["versioned_object.data"]["network"]["versioned_object.data"]["subnets"]["versioned_object.data"]["objects"]
        [0]["versioned_object.data"]["cidr"] = json!(42);
    let error = error_of(&input, Version::new(1, 0));
    assert_eq!(error.to_string(), "network.subnets.objects[0].cidr: expected a string, found number 42");
}

#[test]
fn formats_are_enforced() {
    let mut input = example();
    input["versioned_object.data"]["address"] = json!("not-a-mac");
    let error = error_of(&input, Version::new(1, 0));
    assert!(error.to_string().starts_with("address: \"not-a-mac\" is not a valid mac-address"), "{error}");
}

#[test]
fn a_version_the_object_never_had_is_refused() {
    let network = example()["versioned_object.data"]["network"].clone();
    let error = error_of(&network, Version::new(1, 5));
    assert!(error.to_string().contains("newer than the highest supported version 1.1"), "{error}");
    let error = error_of(&network, Version::new(0, 9));
    assert!(error.to_string().contains("Network has no version 0.9"), "{error}");
}

#[test]
fn malformed_envelopes_are_explained() {
    let bad = network_at("one", json!({}));
    assert!(error_of(&bad, Version::new(1, 0)).to_string().contains("`one` is not a MAJOR.MINOR version"));
    let mut bad = network_at("1.0", json!({}));
    bad["versioned_object.namespace"] = json!("nova");
    assert!(error_of(&bad, Version::new(1, 0)).to_string().contains("belongs to namespace `os_vif`"));
    let bad = json!({"versioned_object.name": "Network"});
    assert!(error_of(&bad, Version::new(1, 0)).to_string().contains("`versioned_object.namespace` is missing"));
}

#[test]
fn unknown_fields_are_refused_but_fields_of_other_versions_ignored() {
    let mut network = example()["versioned_object.data"]["network"].clone();
    network["versioned_object.data"]["colour"] = json!("blue");
    assert!(error_of(&network, Version::new(1, 0)).to_string().contains("Network has no field `colour`"));
}

#[test]
fn polymorphic_fields_refuse_objects_outside_the_family() {
    let mut input = example();
    let network = input["versioned_object.data"]["network"].clone();
    input["versioned_object.data"]["port_profile"] = network;
    let error = error_of(&input, Version::new(1, 0));
    assert!(error.to_string().contains("unknown object `Network` (expected one of VIFPortProfile8021Qbg"), "{error}");
}

/// The streaming writer and the tree-building path agree byte for byte.
#[test]
fn streaming_and_tree_paths_write_the_same_bytes() {
    use vproto_support::wire::to_json_string;
    let vif = VIFOpenVSwitch::from_primitive(&example()).unwrap();
    let profile_value = example()["versioned_object.data"]["port_profile"].clone();
    let profile = vproto_api::VIFPortProfileOpenVSwitch::from_primitive(&profile_value).unwrap();
    let manifests: Vec<Option<Manifest>> = vec![
        None,
        Some(Manifest::new()),
        Some(
            [("Network".to_string(), Version::new(1, 0)), ("VIFPortProfileBase".to_string(), Version::new(1, 0))]
                .into(),
        ),
        Some([("DatapathOffloadBase".to_string(), Version::new(1, 0))].into()),
    ];
    let names = |names: &[&str]| Some(names.iter().map(|name| name.to_string()).collect::<Vec<_>>());
    let change_lists = [
        vif.obj_changes.clone(),
        None,
        names(&[]),
        names(&["address", "network", "vif_name"]),
        // Unsorted, repeated, and naming fields that are unset or do not exist.
        names(&["vif_name", "address", "no_such_field", "network", "address", "aaa", "zzz"]),
    ];
    for manifest in &manifests {
        for changes in &change_lists {
            let mut vif = vif.clone();
            vif.obj_changes = changes.clone();
            let tree = serde_json::to_string(&vif.to_primitive(None, manifest.as_ref()).unwrap()).unwrap();
            let streamed = to_json_string(&vif, None, manifest.as_ref()).unwrap();
            assert_eq!(streamed, tree, "VIF with {manifest:?} and changes {changes:?}");
        }
        for minor in 0..=4 {
            let target = Some(Version::new(1, minor));
            let tree = serde_json::to_string(&profile.to_primitive(target, manifest.as_ref()).unwrap()).unwrap();
            let streamed = to_json_string(&profile, target, manifest.as_ref()).unwrap();
            assert_eq!(streamed, tree, "profile at 1.{minor} with {manifest:?}");
        }
    }
}

#[test]
fn a_builder_fills_schema_defaults_and_leaves_the_envelope_to_the_wire() {
    use vproto_api::{Uuid, VIFBridge};
    let built = VIFBridge::builder()
        .id(Uuid::new("e65867e0-9340-4a7f-a256-09af6eb7a3aa").unwrap())
        .plugin("linux_bridge")
        .bridge_name("br0")
        .vif_name("tap0")
        .build();
    // The schema's defaults (VIFBase.active is `true`), unset optional fields, no bookkeeping.
    assert!(built.active && !built.has_traffic_filtering && !built.preserve_on_delete);
    assert_eq!((built.address.as_ref(), built.network.as_ref(), built.obj_changes.as_ref()), (None, None, None));
    // What a reader makes of the same fields with the defaults left out: the same object.
    let sparse = json!({
        "versioned_object.name": "VIFBridge", "versioned_object.namespace": "os_vif", "versioned_object.version": "1.0",
        "versioned_object.data": {"id": "e65867e0-9340-4a7f-a256-09af6eb7a3aa", "plugin": "linux_bridge",
                                  "address": null, "network": null,
                                  "bridge_name": "br0", "vif_name": "tap0"}
    });
    let read = VIFBridge::from_primitive(&sparse).unwrap();
    assert_eq!(
        read.to_current_primitive()["versioned_object.data"],
        built.to_current_primitive()["versioned_object.data"]
    );
}
