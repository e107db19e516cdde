//! Generated events: the params a publisher writes at a subscriber's versions decode back into
//! the same event, notifications are checked as a server checks params, other events pass
//! through, and a typed client's subscription yields decoded events.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use serde_json::{json, Value};
use vproto_api::{
    AgentEvent, AgentState, AnyVIFBase, AnyVIFPortProfileBase, ComponentStatus, ConductorClient, ConductorEvent,
    DiscoveryState, DiscoveryStatus, Endpoint, InstanceInfo, NetworkEvent, Uuid, VIFOpenVSwitch,
};
use vproto_support::{
    rpc::{
        events::{Event, EventSet, EventStream, RawEvent, RawEvents, Received, Subscription, SUBSCRIPTION_LOST},
        BoxFuture, CallError, ClientTransport,
    },
    wire::{Manifest, Version, VersionedObject, WireError, WireValue},
};

fn version(text: &str) -> Version {
    text.parse().unwrap()
}

fn manifest(entries: &[(&str, &str)]) -> Manifest {
    entries.iter().map(|(object, at)| (object.to_string(), version(at))).collect()
}

fn vif() -> VIFOpenVSwitch {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/vif-openvswitch.json")).unwrap();
    VIFOpenVSwitch::from_primitive(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn port_created() -> NetworkEvent {
    let vif = vif();
    NetworkEvent::PortCreated {
        instance: InstanceInfo::from_primitive(&json!({
            "versioned_object.name": "InstanceInfo", "versioned_object.namespace": "os_vif",
            "versioned_object.version": "1.0",
            "versioned_object.data": {"uuid": "d2b4c6e8-0a1b-4c3d-8e5f-6a7b8c9d0e1f", "name": "instance-0000002a"}
        }))
        .unwrap(),
        network_id: vif.network.as_ref().unwrap().id.clone(),
        port_id: vif.id.clone(),
        vif: AnyVIFBase::VIFOpenVSwitch(Box::new(vif)),
    }
}

fn agent(endpoint: &str, alive: bool) -> AgentState {
    AgentState {
        alive,
        endpoint: Endpoint::from_wire(&json!(endpoint), &Default::default()).unwrap(),
        last_seen: "2024-05-14T09:21:40Z".into(),
        status: ComponentStatus::Ready,
    }
}

/// What a subscriber receives: the event's params at its versions, through JSON text.
fn over_the_wire(event: &dyn Event, versions: &Manifest) -> RawEvent {
    let params = event.to_params(versions).unwrap_or_else(|error| panic!("{error}"));
    let text = serde_json::to_string(&Value::Object(params)).unwrap();
    RawEvent { method: event.name().to_string(), params: serde_json::from_str(&text).unwrap() }
}

#[test]
fn an_event_at_current_versions_round_trips() {
    let event = port_created();
    let raw = over_the_wire(&event, &Manifest::new());
    assert_eq!(raw.method, "network.port_created");
    assert_eq!(raw.params["vif"]["versioned_object.data"]["port_profile"]["versioned_object.version"], "1.4");
    assert_eq!(NetworkEvent::decode(&raw.method, &raw.params).unwrap(), Some(event));

    let event = ConductorEvent::AgentBack {
        agent: agent("compute-2:1337", true),
        missing_since: "2024-05-14T09:00:00Z".into(),
    };
    let raw = over_the_wire(&event, &Manifest::new());
    assert_eq!(
        raw.params,
        json!({"agent": agent("compute-2:1337", true).to_wire(), "missing_since": "2024-05-14T09:00:00Z"})
    );
    assert_eq!(ConductorEvent::decode(&raw.method, &raw.params).unwrap(), Some(event));
}

#[test]
fn an_event_at_an_older_manifest_is_backlevelled_and_decodes() {
    let event = port_created();
    let raw = over_the_wire(&event, &manifest(&[("VIFPortProfileOpenVSwitch", "1.0"), ("Network", "1.0")]));
    let vif = &raw.params["vif"]["versioned_object.data"];
    assert_eq!(raw.params["vif"]["versioned_object.version"], "1.0", "not named: its newest");
    assert_eq!(vif["network"]["versioned_object.version"], "1.0");
    assert!(vif["network"]["versioned_object.data"].get("mtu").is_none(), "Network 1.0 has no mtu");
    let profile = &vif["port_profile"];
    assert_eq!(profile["versioned_object.version"], "1.0");
    for added_later in ["datapath_type", "create_port", "create_tap", "multiqueue", "datapath_offload"] {
        assert!(profile["versioned_object.data"].get(added_later).is_none(), "{added_later} came at 1.0");
    }

    // The older versions decode; fields they lack take their defaults.
    let Some(NetworkEvent::PortCreated { vif: AnyVIFBase::VIFOpenVSwitch(decoded), port_id, .. }) =
        NetworkEvent::decode(&raw.method, &raw.params).unwrap()
    else {
        panic!("not decoded as port_created with a VIFOpenVSwitch");
    };
    assert_eq!(port_id, vif_id());
    assert_eq!(decoded.network.as_ref().unwrap().mtu, None);
    let Some(AnyVIFPortProfileBase::VIFPortProfileOpenVSwitch(profile)) = &decoded.port_profile else {
        panic!("the port profile's class changed");
    };
    assert!(!profile.create_port && !profile.multiqueue);
    assert_eq!(profile.interface_id, original_profile_interface());
}

fn vif_id() -> Uuid {
    vif().id
}

fn original_profile_interface() -> Uuid {
    match vif().port_profile {
        Some(AnyVIFPortProfileBase::VIFPortProfileOpenVSwitch(profile)) => profile.interface_id,
        other => panic!("the example's port profile: {other:?}"),
    }
}

#[test]
fn a_version_the_object_never_had_is_refused_when_publishing() {
    let error = port_created().to_params(&manifest(&[("VIFOpenVSwitch", "7.0")])).unwrap_err();
    assert!(matches!(error, WireError::UnsupportedVersion { .. }), "{error}");
}

#[test]
fn every_example_of_the_schema_decodes() {
    let document: Value = serde_json::from_str(vproto_api::OPENRPC).unwrap();
    let events = document["x-events"].as_array().unwrap();
    assert_eq!(events.len(), 7);
    for event in events {
        let method = event["name"].as_str().unwrap();
        for example in event["examples"].as_array().unwrap() {
            let params: serde_json::Map<String, Value> = example["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|param| (param["name"].as_str().unwrap().to_string(), param["value"].clone()))
                .collect();
            let params = Value::Object(params);
            match method.split('.').next().unwrap() {
                "conductor" => decodes_and_writes_back::<ConductorEvent>(method, &params),
                "agent" => decodes_and_writes_back::<AgentEvent>(method, &params),
                "network" => decodes_and_writes_back::<NetworkEvent>(method, &params),
                other => panic!("an event of {other}"),
            }
        }
    }
}

/// `params` decode as the event `method`, which writes params that decode as the same event
/// (defaults filled in, so not always the same params).
fn decodes_and_writes_back<E: EventSet + Event + PartialEq + std::fmt::Debug>(method: &str, params: &Value) {
    let event = E::decode(method, params).unwrap_or_else(|e| panic!("{method}: {e}")).expect("a known event");
    let written = Value::Object(event.to_params(&Manifest::new()).unwrap());
    assert_eq!(E::decode(method, &written).unwrap(), Some(event), "{method} written back");
}

#[test]
fn names_and_other_events() {
    assert_eq!(
        ConductorEvent::NAMES,
        [
            "conductor.agent_back",
            "conductor.agent_missing",
            "conductor.agent_registered",
            "conductor.discovery_finished"
        ]
    );
    assert_eq!(ConductorEvent::AGENT_MISSING, "conductor.agent_missing");
    assert_eq!(AgentEvent::NAMES, ["agent.driver_missing", "agent.driver_registered"]);
    assert_eq!(ConductorEvent::decode("agent.driver_missing", &json!({})).unwrap(), None);
    assert_eq!(ConductorEvent::decode("conductor.agent_exploded", &json!({})).unwrap(), None);
    assert_eq!(ConductorEvent::decode("conductor.list_agents", &Value::Null).unwrap(), None);
}

#[test]
fn params_are_checked_as_a_server_checks_a_methods() {
    let missing = ConductorEvent::decode("conductor.agent_missing", &json!({})).unwrap_err().to_string();
    assert!(missing.contains("conductor.agent_missing") && missing.contains("agent"), "{missing}");
    let bad =
        json!({"agent": {"endpoint": "compute-1:1337", "status": "SLEEPY", "last_seen": "yesterday", "alive": 1}});
    let error = ConductorEvent::decode("conductor.agent_missing", &bad).unwrap_err().to_string();
    for pointer in ["/agent/status", "/agent/last_seen", "/agent/alive"] {
        assert!(error.contains(pointer), "{pointer} not named in: {error}");
    }
    let error = ConductorEvent::decode("conductor.agent_missing", &json!([1])).unwrap_err().to_string();
    assert!(error.contains("by name"), "{error}");
}

#[test]
fn params_a_newer_server_adds_are_skipped_and_optional_ones_may_be_absent() {
    let params = json!({
        "agent": "compute-1:1337", "status": {"status": "FAILED"}, "reason": "a param of a later version"
    });
    let decoded = ConductorEvent::decode("conductor.discovery_finished", &params).unwrap();
    assert_eq!(
        decoded,
        Some(ConductorEvent::DiscoveryFinished {
            agent: Endpoint::from_wire(&json!("compute-1:1337"), &Default::default()).unwrap(),
            status: DiscoveryStatus { status: DiscoveryState::Failed },
            hardware: None,
        })
    );
    let written = decoded.unwrap().to_params(&Manifest::new()).unwrap();
    assert!(!written.contains_key("hardware") && !written.contains_key("reason"), "{written:?}");
}

/// A transport whose subscription yields queued notifications, recording what was asked; its
/// clones share both.
#[derive(Clone, Default)]
struct Queued {
    asked: Arc<Mutex<Vec<Subscription>>>,
    queue: Arc<Mutex<VecDeque<RawEvent>>>,
}

struct QueuedEvents(Arc<Mutex<VecDeque<RawEvent>>>);

impl RawEvents for QueuedEvents {
    fn next(&mut self) -> BoxFuture<'_, Option<RawEvent>> {
        let next = self.0.lock().unwrap().pop_front();
        Box::pin(async move { next })
    }
}

impl ClientTransport for Queued {
    fn request<'a>(&'a self, _method: &'a str, _params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async { Err(CallError::Transport("no calls here".into())) })
    }
    fn notify<'a>(&'a self, _method: &'a str, _params: Value) -> BoxFuture<'a, Result<(), CallError>> {
        Box::pin(async { Ok(()) })
    }
    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'_, Result<Box<dyn RawEvents>, CallError>> {
        self.asked.lock().unwrap().push(subscription);
        let events: Box<dyn RawEvents> = Box::new(QueuedEvents(self.queue.clone()));
        Box::pin(async move { Ok(events) })
    }
}

#[tokio::test]
async fn a_typed_client_subscribes_and_receives_decoded_events() {
    let transport = Queued::default();
    let missing = ConductorEvent::AgentMissing { agent: agent("compute-2:1337", false) };
    let unknown = RawEvent { method: "conductor.agent_upgraded".into(), params: json!({"to": "2.0"}) };
    let broken = RawEvent { method: ConductorEvent::AGENT_MISSING.into(), params: json!({"agent": 7}) };
    let lost = RawEvent { method: SUBSCRIPTION_LOST.into(), params: json!({"reason": "too slow", "dropped": 12}) };
    transport.queue.lock().unwrap().extend([
        over_the_wire(&missing, &Manifest::new()),
        unknown.clone(),
        broken,
        lost,
        over_the_wire(&missing, &Manifest::new()),
    ]);
    let client = ConductorClient::new(transport.clone());
    let versions = manifest(&[("AgentState", "1.0")]);
    let mut stream: EventStream<ConductorEvent> =
        client.subscribe(&[ConductorEvent::AGENT_MISSING, "conductor.agent_upgraded"], versions.clone()).await.unwrap();
    assert_eq!(
        *transport.asked.lock().unwrap(),
        [Subscription { events: vec!["conductor.agent_missing".into(), "conductor.agent_upgraded".into()], versions }]
    );
    assert_eq!(stream.next().await.unwrap().unwrap(), Received::Known(missing));
    assert_eq!(stream.next().await.unwrap().unwrap(), Received::Unknown(unknown));
    let error = stream.next().await.unwrap().unwrap_err();
    assert_eq!(error.raw.method, "conductor.agent_missing");
    assert!(error.to_string().contains("conductor.agent_missing"), "{error}");
    assert_eq!(stream.next().await.unwrap().unwrap(), Received::Lost { reason: "too slow".into(), dropped: 12 });
    assert!(stream.next().await.is_none(), "nothing after the subscription is lost");
}

#[tokio::test]
async fn a_transport_without_events_refuses_the_subscription() {
    struct Plain;
    impl ClientTransport for Plain {
        fn request<'a>(&'a self, _: &'a str, _: Value) -> BoxFuture<'a, Result<Value, CallError>> {
            Box::pin(async { Ok(Value::Null) })
        }
        fn notify<'a>(&'a self, _: &'a str, _: Value) -> BoxFuture<'a, Result<(), CallError>> {
            Box::pin(async { Ok(()) })
        }
    }
    let error = ConductorClient::new(Plain).subscribe(ConductorEvent::NAMES, Manifest::new()).await.unwrap_err();
    assert!(error.to_string().contains("carries no events"), "{error}");
}
