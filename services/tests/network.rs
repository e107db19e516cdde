//! The network host's negotiation (seed 000), through the generated dispatcher `vproto serve network` runs.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use vproto_api::NetworkServer;
use vproto_services::network::{NetworkHost, NetworkHostConfig};
use vproto_support::rpc::{codes, Handler, Params};

const NETWORK: &str = "7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50";
const PORT: &str = "3f9e1b2c-8d4a-4e6f-9b1c-2d3e4f5a6b7c";
const INSTANCE: &str = "d2b4c6e8-0a1b-4c3d-8e5f-6a7b8c9d0e1f";

fn config(classes: &[&str]) -> NetworkHostConfig {
    NetworkHostConfig::from_json(&json!({"networks": [{
        "id": NETWORK, "label": "private", "mtu": 1450, "vif_classes": classes,
        "subnets": [{"cidr": "10.0.0.0/29", "gateway": "10.0.0.1", "dns": ["10.0.0.2"]}]
    }]}))
    .unwrap()
}

fn host(classes: &[&str]) -> NetworkServer<NetworkHost> {
    NetworkServer(Arc::new(NetworkHost::new(config(classes))))
}

fn envelope(name: &str, version: &str, data: Value) -> Value {
    json!({"versioned_object.name": name, "versioned_object.namespace": "os_vif",
           "versioned_object.version": version, "versioned_object.data": data})
}

fn profile_info(name: &str, min: &str, max: &str) -> Value {
    envelope("HostPortProfileInfo", "1.0", json!({"profile_object_name": name, "min_version": min, "max_version": max}))
}

fn vif_info(class: &str, min: &str, max: &str, profiles: Option<Vec<Value>>) -> Value {
    match profiles {
        Some(profiles) => envelope(
            "HostVIFInfo",
            "1.1",
            json!({"vif_object_name": class, "min_version": min, "max_version": max, "supported_port_profiles": profiles}),
        ),
        None => {
            envelope("HostVIFInfo", "1.0", json!({"vif_object_name": class, "min_version": min, "max_version": max}))
        }
    }
}

fn plugin(name: &str, vifs: Vec<Value>) -> Value {
    envelope("HostPluginInfo", "1.0", json!({"plugin_name": name, "vif_info": vifs}))
}

fn params(plugins: Vec<Value>, port: &str, instance: &str) -> Params {
    let value = json!({
        "host_info": envelope("HostInfo", "1.0", json!({"plugin_info": plugins})),
        "instance": envelope("InstanceInfo", "1.0", json!({"uuid": instance, "name": "vm"})),
        "network_id": NETWORK,
        "port_id": port,
    });
    Params::ByName(value.as_object().unwrap().clone())
}

async fn create(
    handler: &NetworkServer<NetworkHost>,
    plugins: Vec<Value>,
) -> Result<Value, vproto_support::rpc::RpcError> {
    handler.handle("network.create_port", params(plugins, PORT, INSTANCE)).await
}

fn data(vif: &Value) -> &Map<String, Value> {
    vif["versioned_object.data"].as_object().unwrap()
}

#[tokio::test]
async fn the_vif_is_sent_at_the_highest_version_the_plugin_accepts() {
    let handler = host(&["VIFVHostUser"]);
    let vif = create(&handler, vec![plugin("ovs", vec![vif_info("VIFVHostUser", "1.0", "1.0", None)])]).await.unwrap();
    assert_eq!(
        (vif["versioned_object.name"].as_str(), vif["versioned_object.version"].as_str()),
        (Some("VIFVHostUser"), Some("1.0"))
    );
    assert!(!data(&vif).contains_key("vif_name"), "vif_name is a 1.1 field: {vif}");
    assert!(!data(&vif).contains_key("port_profile"), "HostVIFInfo 1.0 names no profile");
    assert_eq!(data(&vif)["plugin"], "ovs");
    assert_eq!(data(&vif)["path"], "/var/run/openvswitch/vhu3f9e1b2c-8d");

    let handler = host(&["VIFVHostUser"]);
    let vif = create(&handler, vec![plugin("ovs", vec![vif_info("VIFVHostUser", "1.0", "1.9", None)])]).await.unwrap();
    assert_eq!(vif["versioned_object.version"], "1.1");
    assert_eq!(data(&vif)["vif_name"], "vhu3f9e1b2c-8d");
}

#[tokio::test]
async fn the_port_profile_is_sent_within_the_plugins_profile_range() {
    let handler = host(&["VIFOpenVSwitch"]);
    let profiles = vec![profile_info("VIFPortProfileOpenVSwitch", "1.0", "1.1")];
    let vif = create(&handler, vec![plugin("ovs", vec![vif_info("VIFOpenVSwitch", "1.0", "1.0", Some(profiles))])])
        .await
        .unwrap();
    let profile = &data(&vif)["port_profile"];
    assert_eq!(profile["versioned_object.version"], "1.1");
    let fields = profile["versioned_object.data"].as_object().unwrap();
    assert_eq!(fields["interface_id"], PORT);
    assert_eq!(fields["datapath_type"], "system");
    assert!(!fields.contains_key("create_port"), "create_port is a 1.3 field: {profile}");
    assert_eq!(data(&vif)["vif_name"], "tap3f9e1b2c-8d");
    // One fixed IP, past the gateway and the DNS server.
    let subnets = &data(&vif)["network"]["versioned_object.data"]["subnets"]["versioned_object.data"]["objects"];
    let ip = &subnets[0]["versioned_object.data"]["ips"]["versioned_object.data"]["objects"][0];
    assert_eq!(ip["versioned_object.data"]["address"], "10.0.0.3");
}

#[tokio::test]
async fn classes_go_in_the_networks_order_and_plugins_that_cannot_take_them_are_passed_over() {
    let handler = host(&["VIFOpenVSwitch", "VIFBridge"]);
    let plugins = vec![
        // Lists OVS, but only with a profile this host does not send: no fit.
        plugin(
            "odd",
            vec![vif_info(
                "VIFOpenVSwitch",
                "1.0",
                "1.0",
                Some(vec![profile_info("VIFPortProfileFPTap", "1.0", "1.1")]),
            )],
        ),
        // A VIF version range holding no version the schema knows: no fit.
        plugin("future", vec![vif_info("VIFOpenVSwitch", "2.0", "2.3", Some(vec![]))]),
        plugin("linux_bridge", vec![vif_info("VIFBridge", "1.0", "1.0", Some(vec![]))]),
    ];
    let vif = create(&handler, plugins).await.unwrap();
    assert_eq!(vif["versioned_object.name"], "VIFBridge");
    assert_eq!(data(&vif)["plugin"], "linux_bridge");
}

#[tokio::test]
async fn no_compatible_vif_names_what_was_tried_and_creates_nothing() {
    let handler = host(&["VIFOpenVSwitch", "VIFBridge"]);
    let error =
        create(&handler, vec![plugin("sriov", vec![vif_info("VIFHostDevice", "1.0", "1.0", None)])]).await.unwrap_err();
    assert_eq!(error.code, 1001, "{error}");
    assert_eq!(error.data, Some(json!({"vif_classes": ["VIFOpenVSwitch", "VIFBridge"], "plugins": ["sriov"]})));
    // Nothing was created: the port id is free for another instance.
    let other = "aaaaaaaa-0a1b-4c3d-8e5f-6a7b8c9d0e1f";
    let plugins = vec![plugin("linux_bridge", vec![vif_info("VIFBridge", "1.0", "1.0", None)])];
    assert!(handler.handle("network.create_port", params(plugins, PORT, other)).await.is_ok());
}

#[tokio::test]
async fn a_retry_answers_the_same_port_and_another_instance_gets_port_in_use() {
    let handler = host(&["VIFBridge"]);
    let plugins = || vec![plugin("linux_bridge", vec![vif_info("VIFBridge", "1.0", "1.0", None)])];
    let first = create(&handler, plugins()).await.unwrap();
    let again = create(&handler, plugins()).await.unwrap();
    assert_eq!(first, again);
    let other = "aaaaaaaa-0a1b-4c3d-8e5f-6a7b8c9d0e1f";
    let error = handler.handle("network.create_port", params(plugins(), PORT, other)).await.unwrap_err();
    assert_eq!(error.code, 1003, "{error}");
    assert_eq!(error.data, Some(json!({"port_id": PORT, "instance_uuid": INSTANCE, "network_id": NETWORK})));
    // A second port gets the next address and its own MAC.
    let second = handler
        .handle("network.create_port", params(plugins(), "b0000000-0000-4000-8000-00000000abcd", INSTANCE))
        .await
        .unwrap();
    assert_eq!(data(&second)["address"], "fa:16:3e:00:ab:cd");
    let ips = &data(&second)["network"]["versioned_object.data"]["subnets"]["versioned_object.data"]["objects"][0]
        ["versioned_object.data"]["ips"]["versioned_object.data"]["objects"];
    assert_eq!(ips[0]["versioned_object.data"]["address"], "10.0.0.4");
}

#[tokio::test]
async fn unknown_networks_and_newer_host_info_are_declared_errors() {
    let handler = host(&["VIFBridge"]);
    let mut named = match params(vec![], PORT, INSTANCE) {
        Params::ByName(map) => map,
        _ => unreachable!(),
    };
    named.insert("network_id".into(), json!("11111111-2222-4333-8444-555555555555"));
    let error = handler.handle("network.create_port", Params::ByName(named.clone())).await.unwrap_err();
    assert_eq!((error.code, error.data), (1002, Some(json!({"network_id": "11111111-2222-4333-8444-555555555555"}))));

    named["host_info"]["versioned_object.version"] = json!("1.7");
    let error = handler.handle("network.create_port", Params::ByName(named)).await.unwrap_err();
    assert_eq!((error.code, error.data), (1000, Some(json!({"object": "HostInfo", "max_version": "1.0"}))));

    let error = handler.handle("network.create_port", Params::None).await.unwrap_err();
    assert_eq!(error.code, codes::INVALID_PARAMS);
    assert_eq!(handler.methods(), vec!["network.create_port"]);
}

#[test]
fn a_bad_config_names_the_field() {
    let refused = |value: Value| NetworkHostConfig::from_json(&value).unwrap_err().to_string();
    assert_eq!(refused(json!({})), "field `networks`: missing required field");
    let text = refused(json!({"networks": [{"id": NETWORK, "subnets": [{"cidr": "10.0.0.0/33"}]}]}));
    assert!(text.starts_with("field `networks[0].subnets[0].cidr`"), "{text}");
    let text = refused(json!({"networks": [{"id": NETWORK, "vif_classes": ["VIFOpenVSwitch", "VIFMagic"]}]}));
    assert!(text.starts_with("field `networks[0].vif_classes[1]`: this host cannot produce `VIFMagic`"), "{text}");
    let text =
        refused(json!({"networks": [{"id": NETWORK, "subnets": [{"cidr": "10.0.0.0/24", "gateway": "10.1.0.1"}]}]}));
    assert_eq!(text, "field `networks[0].subnets[0].gateway`: 10.1.0.1 is not in 10.0.0.0/24");
    let text = refused(json!({"networks": [{"id": NETWORK}, {"id": NETWORK}]}));
    assert!(text.starts_with("field `networks[1].id`: network"), "{text}");
    let text = refused(json!({"networks": [{"id": "nope"}]}));
    assert!(text.starts_with("field `networks[0].id`"), "{text}");
    let text = refused(json!({"networks": [{"id": NETWORK, "colour": "blue"}]}));
    assert!(text.starts_with("field `networks[0].colour`: unknown field"), "{text}");
}
