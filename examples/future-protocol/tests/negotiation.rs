//! Seed 000's negotiation between a service host and a network host of
//! different ages: a HostInfo newer than the server understands is answered
//! with UnsupportedVersion carrying the highest version it supports; the
//! client backlevels and retries once. And the reverse: a newer server reads
//! an older client's HostInfo, filling in defaults.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use serde_json::{json, Value};
use vproto_support::{
    rpc::{Answer, BoxFuture, CallError, ClientTransport, Handler, Params},
    wire::VersionedObject,
};

/// Calls a handler in process and records every request's HostInfo version.
struct Recording {
    handler: Arc<dyn Handler>,
    calls: AtomicUsize,
    seen_versions: std::sync::Mutex<Vec<String>>,
}

impl Recording {
    fn new(handler: impl Handler) -> Self {
        Recording { handler: Arc::new(handler), calls: AtomicUsize::new(0), seen_versions: Default::default() }
    }
}

impl ClientTransport for Recording {
    fn request<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(version) = params["host_info"]["versioned_object.version"].as_str() {
            self.seen_versions.lock().unwrap().push(version.to_string());
        }
        Box::pin(async move {
            self.handler.handle(method, Params::from_json(Some(&params)).unwrap()).await.map_err(CallError::Rpc)
        })
    }
    fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>> {
        Box::pin(async move { self.request(method, params).await.map(drop) })
    }
}

fn vif() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../vif-openvswitch.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn host_info(version: &str) -> Value {
    let mut data = json!({"plugin_info": [{
        "versioned_object.name": "HostPluginInfo", "versioned_object.namespace": "os_vif",
        "versioned_object.version": "1.0",
        "versioned_object.data": {"plugin_name": "ovs", "vif_info": []}
    }]});
    if version == "1.1" {
        data["hostname"] = json!("compute-1");
    }
    json!({"versioned_object.name": "HostInfo", "versioned_object.namespace": "os_vif",
           "versioned_object.version": version, "versioned_object.data": data})
}

const PORT: &str = "e65867e0-9340-4a7f-a256-09af6eb7a3aa";
const NETWORK: &str = "b82c1929-051e-481d-8110-4669916c7915";

fn instance() -> Value {
    json!({"versioned_object.name": "InstanceInfo", "versioned_object.namespace": "os_vif",
           "versioned_object.version": "1.0",
           "versioned_object.data": {"uuid": "d0f7e6a2-3c38-4a7e-9a55-2c1f0c3f0f11", "name": "vm1"}})
}

/// Today's network host: knows HostInfo 1.0 only, and records what it was given.
#[derive(Default)]
struct TodayNetwork {
    received: std::sync::Mutex<Vec<Value>>,
}

impl vproto_api::NetworkService for TodayNetwork {
    async fn create_port(
        &self,
        host_info: vproto_api::HostInfo,
        _instance: vproto_api::InstanceInfo,
        _network_id: vproto_api::Uuid,
        _port_id: vproto_api::Uuid,
    ) -> Result<Answer<vproto_api::AnyVIFBase>, vproto_api::ServiceError> {
        self.received.lock().unwrap().push(host_info.to_current_primitive());
        let vif = vproto_api::VIFOpenVSwitch::from_primitive(&vif()).unwrap();
        Ok(vproto_api::AnyVIFBase::VIFOpenVSwitch(Box::new(vif)).into())
    }
}

/// Tomorrow's network host: knows HostInfo 1.1.
#[derive(Default)]
struct FutureNetwork {
    hostnames: std::sync::Mutex<Vec<Option<String>>>,
}

impl vproto_future_protocol::NetworkService for FutureNetwork {
    async fn create_port(
        &self,
        host_info: vproto_future_protocol::HostInfo,
        _instance: vproto_future_protocol::InstanceInfo,
        _network_id: vproto_future_protocol::Uuid,
        _port_id: vproto_future_protocol::Uuid,
    ) -> Result<Answer<vproto_future_protocol::AnyVIFBase>, vproto_future_protocol::ServiceError> {
        self.hostnames.lock().unwrap().push(host_info.hostname.clone());
        let vif = vproto_future_protocol::VIFOpenVSwitch::from_primitive(&vif()).unwrap();
        Ok(vproto_future_protocol::AnyVIFBase::VIFOpenVSwitch(Box::new(vif)).into())
    }
}

#[tokio::test]
async fn a_newer_client_backlevels_its_host_info_and_retries_once() {
    use vproto_future_protocol as future;
    let server = Arc::new(TodayNetwork::default());
    let transport = Arc::new(Recording::new(vproto_api::NetworkServer(server.clone())));
    let client = future::NetworkClient::new(SharedTransport(transport.clone()));
    let host = future::HostInfo::from_primitive(&host_info("1.1")).unwrap();
    let instance = future::InstanceInfo::from_primitive(&instance()).unwrap();
    let (network, port) = (future::Uuid::new(NETWORK).unwrap(), future::Uuid::new(PORT).unwrap());

    let vif = client.create_port(&host, &instance, &network, &port).await.unwrap();

    assert_eq!(vif.object_name(), "VIFOpenVSwitch");
    assert_eq!(transport.calls.load(Ordering::SeqCst), 2, "one refusal, one retry");
    assert_eq!(*transport.seen_versions.lock().unwrap(), ["1.1", "1.0"]);
    let received = server.received.lock().unwrap();
    assert_eq!(received.len(), 1);
    assert!(received[0]["versioned_object.data"].get("hostname").is_none(), "1.0 has no hostname");
}

#[tokio::test]
async fn the_refusal_carries_the_highest_supported_version() {
    let server = vproto_api::NetworkServer(Arc::new(TodayNetwork::default()));
    let params = json!({"host_info": host_info("1.1"), "instance": instance(), "network_id": NETWORK, "port_id": PORT});
    let error = server.handle("network.create_port", Params::from_json(Some(&params)).unwrap()).await.unwrap_err();
    assert_eq!(error.code, 1000);
    assert_eq!(error.data, Some(json!({"object": "HostInfo", "max_version": "1.0"})));
}

#[tokio::test]
async fn a_newer_server_reads_an_older_clients_host_info() {
    let server = Arc::new(FutureNetwork::default());
    let transport = Arc::new(Recording::new(vproto_future_protocol::NetworkServer(server.clone())));
    let client = vproto_api::NetworkClient::new(SharedTransport(transport.clone()));
    let host = vproto_api::HostInfo::from_primitive(&host_info("1.0")).unwrap();
    let instance = vproto_api::InstanceInfo::from_primitive(&instance()).unwrap();
    let (network, port) = (vproto_api::Uuid::new(NETWORK).unwrap(), vproto_api::Uuid::new(PORT).unwrap());

    client.create_port(&host, &instance, &network, &port).await.unwrap();

    assert_eq!(transport.calls.load(Ordering::SeqCst), 1, "no negotiation needed");
    assert_eq!(*server.hostnames.lock().unwrap(), [None], "hostname takes its default");
}

/// Lets a test keep a handle on the transport a client owns.
struct SharedTransport(Arc<Recording>);

impl ClientTransport for SharedTransport {
    fn request<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        self.0.request(method, params)
    }
    fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>> {
        self.0.notify(method, params)
    }
}
