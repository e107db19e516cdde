//! Generated dispatchers and clients, in process: params validated against the
//! schema with every violation listed, declared errors typed, undeclared ones hidden,
//! answers written at the versions the handler chose.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use vproto_api::{
    AnyVIFBase, ClientError, HostInfo, InstanceInfo, NetworkClient, NetworkNotFoundData, NetworkServer, NetworkService,
    ProtocolError, ServiceError, Uuid, VIFOpenVSwitch,
};
use vproto_support::{
    rpc::{codes, Answer, BoxFuture, CallError, ClientTransport, Handler, Params, Router},
    wire::{Version, VersionedObject},
};

const KNOWN_NETWORK: &str = "b82c1929-051e-481d-8110-4669916c7915";
const BROKEN_NETWORK: &str = "00000000-0000-4000-8000-000000000000";
/// Answers the VIF with its port profile at VIFPortProfileOpenVSwitch 1.0.
const OLD_NETWORK: &str = "10000000-0000-4000-8000-000000000000";
/// Answers the VIF at a VIFOpenVSwitch version the schema does not have.
const IMPOSSIBLE_NETWORK: &str = "90000000-0000-4000-8000-000000000000";

struct Network;

impl NetworkService for Network {
    async fn create_port(
        &self,
        _host_info: HostInfo,
        _instance: InstanceInfo,
        network_id: Uuid,
        _port_id: Uuid,
    ) -> Result<Answer<AnyVIFBase>, ServiceError> {
        let at = |version: &str| version.parse::<Version>().map_err(|e| ServiceError::Internal(e.to_string()));
        match network_id.as_str() {
            KNOWN_NETWORK | OLD_NETWORK | IMPOSSIBLE_NETWORK => {
                let text =
                    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/vif-openvswitch.json"))
                        .map_err(|e| ServiceError::Internal(e.to_string()))?;
                let value: Value = serde_json::from_str(&text).map_err(|e| ServiceError::Internal(e.to_string()))?;
                let vif = VIFOpenVSwitch::from_primitive(&value).map_err(|e| ServiceError::Internal(e.to_string()))?;
                let answer = Answer::current(AnyVIFBase::VIFOpenVSwitch(Box::new(vif)));
                Ok(match network_id.as_str() {
                    OLD_NETWORK => answer.at_version("VIFPortProfileOpenVSwitch", at("1.0")?),
                    IMPOSSIBLE_NETWORK => answer.at_version("VIFOpenVSwitch", at("7.0")?),
                    _ => answer,
                })
            }
            BROKEN_NETWORK => Err(ServiceError::Internal("database password is hunter2".into())),
            _ => Err(ProtocolError::NetworkNotFound(NetworkNotFoundData { network_id }).into()),
        }
    }
}

/// Calls a handler directly, as a transport would.
struct Direct(Arc<dyn Handler>);

impl ClientTransport for Direct {
    fn request<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async move {
            self.0.handle(method, Params::from_json(Some(&params)).unwrap()).await.map_err(CallError::Rpc)
        })
    }
    fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>> {
        Box::pin(async move { self.request(method, params).await.map(drop) })
    }
}

fn router() -> Router {
    Router::new().with(NetworkServer(Arc::new(Network)))
}

fn host_info() -> Value {
    json!({
        "versioned_object.name": "HostInfo", "versioned_object.namespace": "os_vif", "versioned_object.version": "1.0",
        "versioned_object.data": {"plugin_info": []}
    })
}

fn instance() -> Value {
    json!({
        "versioned_object.name": "InstanceInfo", "versioned_object.namespace": "os_vif", "versioned_object.version": "1.0",
        "versioned_object.data": {"uuid": "d0f7e6a2-3c38-4a7e-9a55-2c1f0c3f0f11", "name": "vm1"}
    })
}

fn params(network_id: &str) -> Map<String, Value> {
    let value = json!({
        "host_info": host_info(), "instance": instance(),
        "network_id": network_id, "port_id": "e65867e0-9340-4a7f-a256-09af6eb7a3aa"
    });
    value.as_object().unwrap().clone()
}

#[tokio::test]
async fn a_typed_client_gets_a_typed_result() {
    let client = NetworkClient::new(Direct(Arc::new(router())));
    let host = HostInfo::from_primitive(&host_info()).unwrap();
    let instance = InstanceInfo::from_primitive(&instance()).unwrap();
    let port = Uuid::new("e65867e0-9340-4a7f-a256-09af6eb7a3aa").unwrap();
    let vif = client.create_port(&host, &instance, &Uuid::new(KNOWN_NETWORK).unwrap(), &port).await.unwrap();
    assert_eq!(vif.object_name(), "VIFOpenVSwitch");
}

#[tokio::test]
async fn declared_errors_reach_the_client_typed() {
    let client = NetworkClient::new(Direct(Arc::new(router())));
    let host = HostInfo::from_primitive(&host_info()).unwrap();
    let instance = InstanceInfo::from_primitive(&instance()).unwrap();
    let missing = Uuid::new("11111111-2222-4333-8444-555555555555").unwrap();
    let error = client.create_port(&host, &instance, &missing, &missing).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Protocol(ProtocolError::NetworkNotFound(data)) if data.network_id == missing),
        "{error}"
    );
}

#[tokio::test]
async fn undeclared_failures_are_answered_without_internals() {
    let error = router().handle("network.create_port", Params::ByName(params(BROKEN_NETWORK))).await.unwrap_err();
    assert_eq!((error.code, error.message.as_str(), error.data), (codes::INTERNAL_ERROR, "Internal error", None));
}

#[tokio::test]
async fn the_answer_is_written_at_the_version_the_handler_chose() {
    let profile_version =
        |vif: &Value| vif["versioned_object.data"]["port_profile"]["versioned_object.version"].clone();
    let current = router().handle("network.create_port", Params::ByName(params(KNOWN_NETWORK))).await.unwrap();
    let current_version = vproto_api::REGISTRY.get("VIFPortProfileOpenVSwitch").unwrap().version.to_string();
    assert_eq!(profile_version(&current), current_version.as_str());
    assert_ne!(current_version, "1.0", "the profile must be newer than 1.0 for this test to mean anything");
    let old = router().handle("network.create_port", Params::ByName(params(OLD_NETWORK))).await.unwrap();
    assert_eq!(profile_version(&old), "1.0");
    assert_eq!(old["versioned_object.version"], current["versioned_object.version"], "only the profile is named");
    // A version the schema lacks cannot be written: an internal error, nothing sent half-converted.
    let error = router().handle("network.create_port", Params::ByName(params(IMPOSSIBLE_NETWORK))).await.unwrap_err();
    assert_eq!((error.code, error.data), (codes::INTERNAL_ERROR, None));
}

#[tokio::test]
async fn invalid_params_list_every_violation_with_its_pointer() {
    let mut bad = params(KNOWN_NETWORK);
    bad.insert("port_id".into(), json!("not-a-uuid"));
    bad.remove("instance");
    bad.insert("colour".into(), json!("blue"));
    let error = router().handle("network.create_port", Params::ByName(bad)).await.unwrap_err();
    assert_eq!(error.code, codes::INVALID_PARAMS);
    let data = error.data.unwrap();
    let text = data.to_string();
    let pointers: Vec<&str> = data.as_array().unwrap().iter().map(|v| v["pointer"].as_str().unwrap()).collect();
    assert!(pointers.contains(&"/port_id"), "{text}");
    assert!(text.contains("instance") && text.contains("colour"), "{text}");
    assert!(data.as_array().unwrap().len() >= 3, "{text}");
}

#[tokio::test]
async fn params_by_position_are_named_in_schema_order() {
    let named = params(KNOWN_NETWORK);
    let positional: Vec<Value> =
        ["host_info", "instance", "network_id", "port_id"].iter().map(|name| named[*name].clone()).collect();
    let result = router().handle("network.create_port", Params::ByPosition(positional)).await.unwrap();
    assert_eq!(result["versioned_object.name"], "VIFOpenVSwitch");
    let too_many = vec![Value::Null; 5];
    let error = router().handle("network.create_port", Params::ByPosition(too_many)).await.unwrap_err();
    assert_eq!(error.code, codes::INVALID_PARAMS);
}

#[tokio::test]
async fn a_newer_host_info_is_answered_with_the_highest_supported_version() {
    let mut newer = params(KNOWN_NETWORK);
    newer["host_info"]["versioned_object.version"] = json!("1.3");
    let error = router().handle("network.create_port", Params::ByName(newer)).await.unwrap_err();
    assert_eq!(error.code, 1000, "{error}");
    assert_eq!(error.data, Some(json!({"object": "HostInfo", "max_version": "1.0"})));
}

#[tokio::test]
async fn unknown_methods_are_not_found() {
    let error = router().handle("network.delete_everything", Params::None).await.unwrap_err();
    assert_eq!(error.code, codes::METHOD_NOT_FOUND);
}

#[tokio::test]
async fn rpc_discover_describes_every_served_method() {
    use vproto_support::rpc::Discover;
    let router = router().with(Discover::new(vproto_api::OPENRPC).unwrap());
    let document = router.handle("rpc.discover", Params::None).await.unwrap();
    assert_eq!(document["openrpc"], "1.3.2");
    assert_eq!(document["info"]["version"], vproto_api::PROTOCOL_VERSION);
    let names: Vec<&str> =
        document["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    for method in router.methods().into_iter().filter(|m| !m.starts_with("rpc.")) {
        assert!(names.contains(&method), "{method} is served but not described");
    }
    let create_port =
        document["methods"].as_array().unwrap().iter().find(|m| m["name"] == "network.create_port").unwrap();
    let codes: Vec<i64> =
        create_port["errors"].as_array().unwrap().iter().map(|e| e["code"].as_i64().unwrap()).collect();
    assert!(codes.contains(&1000), "UnsupportedVersion is declared: {codes:?}");
    assert_eq!(create_port["x-http"], json!({"method": "POST", "path": "/ports"}));
    // Every reference resolves inside the document.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(document["components"]["schemas"].get(name).is_some(), "dangling reference to {name}");
    }
}

#[test]
fn rest_bindings_come_from_the_schema() {
    let bindings: Vec<(&str, &str, &str)> =
        vproto_api::HTTP_BINDINGS.iter().map(|b| (b.http_method, b.path, b.method)).collect();
    assert!(bindings.contains(&("POST", "/discovery", "driver.start_discovery")), "{bindings:?}");
    assert!(bindings.contains(&("GET", "/hardware", "conductor.list_hardware")), "{bindings:?}");
}

/// A network host that reads HostVIFInfo only up to 1.0: it answers a HostInfo carrying a
/// nested HostVIFInfo 1.1 with UnsupportedVersion, and records every call it gets.
struct OldNetworkHost {
    inner: Direct,
    calls: std::sync::Mutex<Vec<Value>>,
}

impl ClientTransport for OldNetworkHost {
    fn request<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(params.clone());
            let text = params.to_string();
            if text.contains(r#""versioned_object.name":"HostVIFInfo","versioned_object.namespace":"os_vif","versioned_object.version":"1.1""#) {
                let error = vproto_support::rpc::RpcError::new(1000, "Unsupported object version")
                    .with_data(json!({"object": "HostVIFInfo", "max_version": "1.0"}));
                return Err(CallError::Rpc(error));
            }
            self.inner.request(method, params).await
        })
    }
    fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>> {
        Box::pin(async move { self.request(method, params).await.map(drop) })
    }
}

#[tokio::test]
async fn a_nested_object_named_by_unsupported_version_is_backleveled_and_retried_once() {
    let transport = Arc::new(OldNetworkHost { inner: Direct(Arc::new(router())), calls: Default::default() });
    let host = HostInfo::from_primitive(&json!({
        "versioned_object.name": "HostInfo", "versioned_object.namespace": "os_vif", "versioned_object.version": "1.0",
        "versioned_object.data": {"plugin_info": [{
            "versioned_object.name": "HostPluginInfo", "versioned_object.namespace": "os_vif",
            "versioned_object.version": "1.0",
            "versioned_object.data": {"plugin_name": "ovs", "vif_info": [{
                "versioned_object.name": "HostVIFInfo", "versioned_object.namespace": "os_vif",
                "versioned_object.version": "1.1",
                "versioned_object.data": {"vif_object_name": "VIFOpenVSwitch", "min_version": "1.0",
                    "max_version": "1.0", "supported_port_profiles": []}
            }]}
        }]}
    }))
    .unwrap();
    let client = NetworkClient::new(SharedTransport(transport.clone()));
    let instance = InstanceInfo::from_primitive(&instance()).unwrap();
    let port = Uuid::new("e65867e0-9340-4a7f-a256-09af6eb7a3aa").unwrap();
    let vif = client.create_port(&host, &instance, &Uuid::new(KNOWN_NETWORK).unwrap(), &port).await.unwrap();
    assert_eq!(vif.object_name(), "VIFOpenVSwitch");
    let calls = transport.calls.lock().unwrap();
    assert_eq!(calls.len(), 2, "one refusal, one retry");
    let retried =
        &calls[1]["host_info"]["versioned_object.data"]["plugin_info"][0]["versioned_object.data"]["vif_info"][0];
    assert_eq!(retried["versioned_object.version"], "1.0");
    assert!(retried["versioned_object.data"].get("supported_port_profiles").is_none(), "{retried}");
}

/// Lets a test keep a handle on the transport it gives a client.
struct SharedTransport<T>(Arc<T>);

impl<T: ClientTransport> ClientTransport for SharedTransport<T> {
    fn request<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        self.0.request(method, params)
    }
    fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>> {
        self.0.notify(method, params)
    }
}
