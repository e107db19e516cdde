//! The events the reference services publish (issue #15): each service's publisher connected to
//! a test sink that keeps what it is handed, decoded back through the generated `EventSet` (so
//! every payload is also checked against the event's schema).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{json, Value};
use vproto_api::{
    AgentClient, AgentDiscovery, AgentDiscoveryList, AgentEvent, AgentRegistration, AgentServer, AgentService,
    AgentState, ComponentStatus, ConductorEvent, ConductorService, DeviceType, DiscoveryState, DiscoveryStatus,
    DriverRegistration, DriverServer, Endpoint, NetworkEvent, NetworkServer,
};
use vproto_jsonrpc::{ListenAddr, RunningServer, Server};
use vproto_services::{
    agent::{Agent, AgentOptions},
    conductor::{Conductor, ConductorOptions},
    driver::{Driver, DriverConfig},
    network::{NetworkHost, NetworkHostConfig},
    peer::endpoint_of,
};
use vproto_support::{
    rpc::{
        events::{Event, EventSet, EventSink, Publisher},
        Handler, Params,
    },
    wire::Manifest,
};

/// Keeps every event published into it, in order.
#[derive(Default)]
struct Captured {
    events: Mutex<Vec<Arc<dyn Event>>>,
}

impl EventSink for Captured {
    fn publish(&self, event: Arc<dyn Event>) {
        self.events.lock().unwrap().push(event);
    }
}

impl Captured {
    /// A publisher into a new sink, and the sink.
    fn publisher<E: Event>() -> (Publisher<E>, Arc<Captured>) {
        let sink = Arc::new(Captured::default());
        (Publisher::new(sink.clone()), sink)
    }

    /// The events published since the last call, written at their newest versions and decoded
    /// as `E` (a payload that does not fit its schema fails here).
    fn take<E: EventSet + std::fmt::Debug>(&self) -> Vec<E> {
        let events = std::mem::take(&mut *self.events.lock().unwrap());
        events
            .iter()
            .map(|event| {
                let params = event.to_params(&Manifest::default()).expect("written");
                E::decode(event.name(), &Value::Object(params))
                    .unwrap_or_else(|error| panic!("{}: {error}", event.name()))
                    .unwrap_or_else(|| panic!("{} is not of the set", event.name()))
            })
            .collect()
    }
}

fn endpoint(text: &str) -> Endpoint {
    Endpoint::new(text).unwrap()
}

fn conductor(events: Publisher<ConductorEvent>) -> Conductor {
    Conductor::new(ConductorOptions {
        heartbeat_interval: Duration::from_secs(1),
        call_timeout: Duration::from_secs(2),
        events,
        ..ConductorOptions::default()
    })
}

fn agent_registration(at: &Endpoint) -> AgentRegistration {
    AgentRegistration { endpoint: at.clone(), status: ComponentStatus::Ready, protocol_version: None }
}

#[tokio::test(start_paused = true)]
async fn the_conductor_publishes_registered_missing_once_and_back_once() {
    let (events, sink) = Captured::publisher();
    let conductor = conductor(events);
    let compute = endpoint("compute-1:1337");
    conductor.hello(agent_registration(&compute)).await.unwrap();
    let listed = conductor.list_agents().await.unwrap().into_value().agents;
    assert_eq!(sink.take::<ConductorEvent>(), [ConductorEvent::AgentRegistered { agent: listed[0].clone() }]);

    // Heartbeats within the window, and calls that sweep: nothing to tell.
    for _ in 0..3 {
        tokio::time::advance(Duration::from_millis(500)).await;
        conductor.hello(agent_registration(&compute)).await.unwrap();
        conductor.list_agents().await.unwrap();
    }
    assert!(sink.take::<ConductorEvent>().is_empty(), "a repeated heartbeat is no event");
    let last_hello = conductor.list_agents().await.unwrap().into_value().agents.remove(0).last_seen;

    // Silent past three intervals: missing, once, however often the roster is swept.
    tokio::time::advance(Duration::from_millis(3_001)).await;
    for _ in 0..3 {
        conductor.list_agents().await.unwrap();
        conductor.list_hardware().await.unwrap();
    }
    let missing = AgentState {
        alive: false,
        endpoint: compute.clone(),
        last_seen: last_hello.clone(),
        status: ComponentStatus::Ready,
    };
    assert_eq!(sink.take::<ConductorEvent>(), [ConductorEvent::AgentMissing { agent: missing }]);

    // Back, once: its next heartbeat is no event.
    conductor
        .hello(AgentRegistration {
            endpoint: compute.clone(),
            status: ComponentStatus::NotReady,
            protocol_version: None,
        })
        .await
        .unwrap();
    conductor
        .hello(AgentRegistration {
            endpoint: compute.clone(),
            status: ComponentStatus::NotReady,
            protocol_version: None,
        })
        .await
        .unwrap();
    let now = conductor.list_agents().await.unwrap().into_value().agents.remove(0);
    assert_eq!((now.alive, &now.status), (true, &ComponentStatus::NotReady));
    assert_eq!(sink.take::<ConductorEvent>(), [ConductorEvent::AgentBack { agent: now, missing_since: last_hello }]);
}

#[tokio::test(start_paused = true)]
async fn the_conductor_watchdog_notices_a_missing_agent_without_a_call() {
    let (events, sink) = Captured::publisher();
    let conductor = conductor(events);
    let watchdog = conductor.spawn_watchdog();
    conductor.hello(agent_registration(&endpoint("compute-1:1337"))).await.unwrap();
    conductor.hello(agent_registration(&endpoint("compute-2:1337"))).await.unwrap();
    assert_eq!(sink.take::<ConductorEvent>().len(), 2);
    // The watchdog wakes when the window is over: missing just past three intervals.
    tokio::time::sleep(Duration::from_millis(2_990)).await;
    assert!(sink.take::<ConductorEvent>().is_empty(), "alive for three whole intervals");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let events = sink.take::<ConductorEvent>();
    let missing: Vec<&str> = events
        .iter()
        .map(|event| match event {
            ConductorEvent::AgentMissing { agent } => agent.endpoint.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(missing, ["compute-1:1337", "compute-2:1337"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(sink.take::<ConductorEvent>().is_empty(), "missing is told once");
    watchdog.abort();
}

#[tokio::test(start_paused = true)]
async fn the_agent_publishes_driver_registered_and_driver_missing_once() {
    let (events, sink) = Captured::publisher();
    let agent =
        Agent::new(AgentOptions { heartbeat_interval: Duration::from_secs(2), events, ..AgentOptions::default() });
    let watchdog = agent.spawn_watchdog();
    let driver = DriverRegistration {
        endpoint: endpoint("localhost:1337"),
        status: ComponentStatus::Ready,
        r#type: DeviceType::Crypto,
        protocol_version: None,
    };
    agent.hello(driver.clone()).await.unwrap();
    agent.hello(driver.clone()).await.unwrap();
    assert_eq!(sink.take::<AgentEvent>(), [AgentEvent::DriverRegistered { driver: driver.clone() }]);
    let last_seen = agent.drivers().sweep().remove(0).last_seen;

    tokio::time::sleep(Duration::from_secs(7)).await;
    agent.list_hardware().await.unwrap();
    assert_eq!(sink.take::<AgentEvent>(), [AgentEvent::DriverMissing { driver: driver.clone(), last_seen }]);
    // Its return is no event of the schema's, and a later absence is told again.
    agent.hello(driver.clone()).await.unwrap();
    assert!(sink.take::<AgentEvent>().is_empty());
    // The watchdog alone notices this time (it sweeps every second here).
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    assert!(matches!(sink.take::<AgentEvent>()[..], [AgentEvent::DriverMissing { .. }]));
    watchdog.abort();
}

#[tokio::test]
async fn a_service_without_a_sink_publishes_nowhere() {
    let conductor = Conductor::new(ConductorOptions::default());
    conductor.hello(agent_registration(&endpoint("compute-1:1337"))).await.unwrap();
    assert_eq!(conductor.list_agents().await.unwrap().into_value().agents.len(), 1);
}

async fn listen(server: Server) -> (RunningServer, Endpoint) {
    let running = server.bind(&"tcp:127.0.0.1:0".parse::<ListenAddr>().unwrap()).await.unwrap();
    let endpoint = endpoint_of(running.local_addr()).unwrap().unwrap();
    (running, endpoint)
}

/// An agent on loopback with one registered driver whose runs behave as `discovery` says.
async fn node(discovery: Value) -> (Vec<RunningServer>, Endpoint) {
    let (servers, endpoint, _) = node_with_driver(discovery).await;
    (servers, endpoint)
}

/// [`node`], with its driver.
async fn node_with_driver(discovery: Value) -> (Vec<RunningServer>, Endpoint, Arc<Driver>) {
    let config = DriverConfig::from_json(&json!({
        "device_type": "CRYPTO",
        "hardware": [{
            "uuid": "8e45a2ea-5364-4b0d-a252-bf8becaa606e",
            "acc_specs": {"remote": false, "num": 1, "device_type": "CRYPTO", "acc_capability": {"num": 1}},
            "acc_status": {"setup_required": false, "reboot_required": false}
        }],
        "discovery": discovery,
    }))
    .unwrap();
    let driver = Arc::new(Driver::new(config));
    let (driver_server, driver_endpoint) = listen(Server::new(DriverServer(driver.clone()))).await;
    driver.set_endpoint(driver_endpoint.clone());
    let agent = Arc::new(Agent::new(AgentOptions { call_timeout: Duration::from_secs(2), ..AgentOptions::default() }));
    agent
        .hello(DriverRegistration {
            endpoint: driver_endpoint,
            status: ComponentStatus::Ready,
            r#type: DeviceType::Crypto,
            protocol_version: None,
        })
        .await
        .unwrap();
    let (agent_server, agent_endpoint) = listen(Server::new(AgentServer(agent))).await;
    (vec![driver_server, agent_server], agent_endpoint, driver)
}

#[tokio::test]
async fn discovery_the_conductor_started_is_published_when_it_is_answered_as_ended() {
    let (events, sink) = Captured::publisher();
    let conductor = conductor(events);

    let (_done, done) = node(json!({"duration_ms": 0})).await;
    assert_eq!(conductor.start_discovery_on(&done).await.unwrap(), DiscoveryState::Done);
    match &sink.take::<ConductorEvent>()[..] {
        [ConductorEvent::DiscoveryFinished { agent, hardware: Some(list), status }] => {
            assert_eq!((agent, status), (&done, &DiscoveryStatus { status: DiscoveryState::Done }));
            assert_eq!(list.hardware.len(), 1);
        }
        other => panic!("{other:?}"),
    }

    let (_failed, failed) = node(json!({"duration_ms": 0, "outcome": "FAILED"})).await;
    assert_eq!(conductor.start_discovery_on(&failed).await.unwrap(), DiscoveryState::Failed);
    assert_eq!(
        sink.take::<ConductorEvent>(),
        [ConductorEvent::DiscoveryFinished {
            agent: failed,
            hardware: None,
            status: DiscoveryStatus { status: DiscoveryState::Failed }
        }]
    );

    // A run still going is no event (yet: it is followed); neither is an agent that cannot be
    // reached.
    let (_slow, slow) = node(json!({"duration_ms": 60_000})).await;
    assert_eq!(conductor.start_discovery_on(&slow).await.unwrap(), DiscoveryState::InProgress);
    assert!(conductor.follows(&slow));
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = endpoint(&format!("127.0.0.1:{}", unused.local_addr().unwrap().port()));
    drop(unused);
    assert!(conductor.start_discovery_on(&nobody).await.is_err());
    assert!(sink.take::<ConductorEvent>().is_empty());
}

/// Polls `sink` until it holds an event (at most 10 s), then waits a little for any other.
async fn wait_for_events(sink: &Captured) -> Vec<ConductorEvent> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.events.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    sink.take::<ConductorEvent>()
}

#[tokio::test]
async fn the_conductor_follows_the_discovery_it_starts_to_one_discovery_finished() {
    let (events, sink) = Captured::publisher();
    let conductor = Conductor::new(ConductorOptions {
        heartbeat_interval: Duration::from_secs(30),
        call_timeout: Duration::from_secs(2),
        events,
        discovery_poll: Duration::from_millis(20),
        ..ConductorOptions::default()
    });
    let (_node, agent, driver) = node_with_driver(json!({"duration_ms": 400})).await;
    let agents = AgentClient::new(
        vproto_jsonrpc::Client::connect(
            &format!("tcp:{agent}").parse().unwrap(),
            vproto_jsonrpc::ClientOptions::default(),
        )
        .await
        .unwrap(),
    );

    // Status is read without starting a run: before any, DONE with nothing found.
    assert_eq!(agents.discovery_status().await.unwrap().status, DiscoveryState::Done);
    assert_eq!(driver.state(), None);
    // Nobody registered: nothing triggered.
    assert!(ConductorService::start_discovery(&conductor, None).await.unwrap().into_value().agents.is_empty());

    conductor.hello(agent_registration(&agent)).await.unwrap();
    assert!(matches!(&sink.take::<ConductorEvent>()[..], [ConductorEvent::AgentRegistered { .. }]));
    let expected = AgentDiscoveryList {
        agents: vec![AgentDiscovery { agent: agent.clone(), status: DiscoveryState::InProgress }],
    };
    assert_eq!(ConductorService::start_discovery(&conductor, None).await.unwrap().into_value(), expected);
    // A second trigger joins the run (and its follower).
    assert_eq!(
        ConductorService::start_discovery(&conductor, Some(agent.clone())).await.unwrap().into_value(),
        expected
    );
    assert!(conductor.follows(&agent));
    assert_eq!(agents.discovery_status().await.unwrap().status, DiscoveryState::InProgress);
    // Another agent's endpoint selects no agent.
    let other = endpoint("compute-9:1337");
    assert!(ConductorService::start_discovery(&conductor, Some(other)).await.unwrap().into_value().agents.is_empty());

    match &wait_for_events(&sink).await[..] {
        [ConductorEvent::DiscoveryFinished { agent: finished, hardware: Some(list), status }] => {
            assert_eq!((finished, status), (&agent, &DiscoveryStatus { status: DiscoveryState::Done }));
            assert_eq!(list.hardware.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(!conductor.follows(&agent));
    // Reading the status again starts nothing: still DONE, no new run, no new event.
    assert_eq!(agents.discovery_status().await.unwrap().status, DiscoveryState::Done);
    assert_eq!(driver.state(), Some(DiscoveryState::Done));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sink.take::<ConductorEvent>().is_empty());

    // The next trigger is a new run, followed to its own single event.
    assert_eq!(ConductorService::start_discovery(&conductor, None).await.unwrap().into_value(), expected);
    assert!(matches!(&wait_for_events(&sink).await[..], [ConductorEvent::DiscoveryFinished { .. }]));
}

#[tokio::test]
async fn a_followed_run_is_given_up_after_the_timeout_and_an_agent_that_fails_is_agent_unavailable() {
    let (events, sink) = Captured::publisher();
    let conductor = Conductor::new(ConductorOptions {
        call_timeout: Duration::from_secs(2),
        events,
        discovery_poll: Duration::from_millis(20),
        discovery_timeout: Duration::from_millis(200),
        ..ConductorOptions::default()
    });
    let (_slow, slow) = node(json!({"duration_ms": 60_000})).await;
    conductor.hello(agent_registration(&slow)).await.unwrap();
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = endpoint(&format!("127.0.0.1:{}", unused.local_addr().unwrap().port()));
    drop(unused);
    conductor.hello(agent_registration(&nobody)).await.unwrap();
    assert_eq!(sink.take::<ConductorEvent>().len(), 2); // agent_registered, twice
    let error = ConductorService::start_discovery(&conductor, None).await.unwrap_err();
    assert!(error.to_string().contains("Agent unavailable") || error.to_string().contains(nobody.as_str()), "{error}");
    // The reachable agent was still triggered, and its run followed until the timeout.
    assert!(conductor.follows(&slow));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!conductor.follows(&slow));
    assert!(sink.take::<ConductorEvent>().is_empty());
}

const NETWORK: &str = "7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50";

fn create_port(port: &str, instance: &str) -> Params {
    let envelope = |name: &str, data: Value| {
        json!({"versioned_object.name": name, "versioned_object.namespace": "os_vif",
               "versioned_object.version": "1.0", "versioned_object.data": data})
    };
    let vif =
        envelope("HostVIFInfo", json!({"vif_object_name": "VIFBridge", "min_version": "1.0", "max_version": "1.0"}));
    let plugin = envelope("HostPluginInfo", json!({"plugin_name": "linux_bridge", "vif_info": [vif]}));
    let value = json!({
        "host_info": envelope("HostInfo", json!({"plugin_info": [plugin]})),
        "instance": envelope("InstanceInfo", json!({"uuid": instance, "name": "vm"})),
        "network_id": NETWORK,
        "port_id": port,
    });
    let Value::Object(map) = value else { unreachable!() };
    Params::ByName(map)
}

#[tokio::test]
async fn the_network_host_publishes_a_port_once_when_it_is_created() {
    let (events, sink) = Captured::publisher();
    let config = NetworkHostConfig::from_json(&json!({"networks": [{
        "id": NETWORK, "subnets": [{"cidr": "10.0.0.0/29", "gateway": "10.0.0.1"}]
    }]}))
    .unwrap();
    let server = NetworkServer(Arc::new(NetworkHost::new(config).with_events(events)));
    let (port, instance) = ("3f9e1b2c-8d4a-4e6f-9b1c-2d3e4f5a6b7c", "d2b4c6e8-0a1b-4c3d-8e5f-6a7b8c9d0e1f");
    let answered = server.handle("network.create_port", create_port(port, instance)).await.unwrap();
    let events = sink.take::<NetworkEvent>();
    let [NetworkEvent::PortCreated { instance: created_for, network_id, port_id, vif }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!((created_for.uuid.as_str(), network_id.as_str(), port_id.as_str()), (instance, NETWORK, port));
    // The VIF as the caller got it (both at VIFBridge 1.0 here, the newest it has).
    let published = vproto_support::wire::WireValue::to_wire(vif);
    assert_eq!(published["versioned_object.data"]["address"], answered["versioned_object.data"]["address"]);
    assert_eq!(published["versioned_object.name"], json!("VIFBridge"));

    // The same call again answers the same port: no event; neither for a port in use.
    server.handle("network.create_port", create_port(port, instance)).await.unwrap();
    let other_instance = "0b0c5a7e-1d2e-4f30-9a41-b52c63d74e85";
    assert!(server.handle("network.create_port", create_port(port, other_instance)).await.is_err());
    assert!(sink.take::<NetworkEvent>().is_empty());
}
