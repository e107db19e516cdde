//! The Cyborg lifecycle of protocol 1.3 (issue #14): the protocol version a hello declares
//! (a major not understood is refused with UnsupportedProtocol naming the versions accepted),
//! deregistration at the agent and the conductor, and conductor.discovery_status answering the
//! runs the conductor recorded, without starting one.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::json;
use vproto_api::{
    AgentDiscovery, AgentRegistration, AgentServer, AgentService, ComponentStatus, ConductorService, Deregistration,
    DeviceType, DiscoveryState, DiscoveryStatus, DriverRegistration, DriverServer, DriverService, Endpoint,
    HardwareList, HelloAck, ProtocolError, ServiceError, UnsupportedProtocolData,
};
use vproto_jsonrpc::{ListenAddr, RunningServer, Server};
use vproto_services::{
    agent::{Agent, AgentOptions},
    conductor::{Conductor, ConductorOptions},
    driver::{Driver, DriverConfig},
    peer::{endpoint_of, hello_ack},
};
use vproto_support::rpc::Answer;

async fn listen(server: Server) -> (RunningServer, Endpoint) {
    let running = server.bind(&"tcp:127.0.0.1:0".parse::<ListenAddr>().unwrap()).await.unwrap();
    let endpoint = endpoint_of(running.local_addr()).unwrap().unwrap();
    (running, endpoint)
}

fn agent_registration(endpoint: &str, version: Option<&str>) -> AgentRegistration {
    AgentRegistration {
        endpoint: Endpoint::new(endpoint).unwrap(),
        status: ComponentStatus::NotReady,
        protocol_version: version.map(str::to_string),
    }
}

/// The hello of a READY agent at `endpoint` (no protocol version).
fn ready_agent(endpoint: &Endpoint) -> AgentRegistration {
    AgentRegistration { status: ComponentStatus::Ready, ..agent_registration(endpoint.as_str(), None) }
}

fn driver_registration(endpoint: &Endpoint, version: Option<&str>) -> DriverRegistration {
    DriverRegistration {
        endpoint: endpoint.clone(),
        status: ComponentStatus::Ready,
        r#type: DeviceType::Gpu,
        protocol_version: version.map(str::to_string),
    }
}

fn refused(error: ServiceError) -> UnsupportedProtocolData {
    match error {
        ServiceError::Protocol(ProtocolError::UnsupportedProtocol(data)) => data,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_hello_of_a_major_not_understood_is_refused_naming_the_versions_accepted() {
    let conductor = Conductor::new(ConductorOptions::default());
    let data = refused(conductor.hello(agent_registration("compute-1:1337", Some("2.0"))).await.unwrap_err());
    assert_eq!((data.protocol_version.as_str(), data.accepted), ("2.0", vec!["1.x".to_string()]));
    assert!(conductor.list_agents().await.unwrap().into_value().agents.is_empty(), "nothing recorded");

    // Any minor of this major, and no version at all (components older than 1.3), are accepted.
    conductor.hello(agent_registration("compute-1:1337", Some("1.0"))).await.unwrap();
    conductor.hello(agent_registration("compute-2:1337", Some("1.99"))).await.unwrap();
    conductor.hello(agent_registration("compute-3:1337", None)).await.unwrap();
    let stored: Vec<Option<String>> =
        conductor.store().agents().await.unwrap().into_iter().map(|a| a.protocol_version).collect();
    assert_eq!(stored, [Some("1.0".into()), Some("1.99".into()), None]);

    let agent = Agent::new(AgentOptions::default());
    let driver = Endpoint::new("localhost:1337").unwrap();
    let data = refused(agent.hello(driver_registration(&driver, Some("0.9"))).await.unwrap_err());
    assert_eq!(data.accepted, ["1.x"]);
    assert!(agent.drivers().sweep().is_empty());
}

#[tokio::test]
async fn a_deregistered_driver_or_agent_is_forgotten_until_it_says_hello_again() {
    let agent = Agent::new(AgentOptions::default());
    let driver = Endpoint::new("localhost:1337").unwrap();
    agent.hello(driver_registration(&driver, Some(vproto_api::PROTOCOL_VERSION))).await.unwrap();
    let answer = agent.deregister(driver.clone()).await.unwrap().into_value();
    assert_eq!((answer.endpoint, answer.deregistered), (driver.clone(), true));
    assert!(agent.drivers().sweep().is_empty());
    assert!(!agent.deregister(driver.clone()).await.unwrap().into_value().deregistered, "idempotent");

    let conductor = Conductor::new(ConductorOptions::default());
    conductor.hello(agent_registration("compute-1:1337", None)).await.unwrap();
    conductor.hello(agent_registration("compute-2:1337", None)).await.unwrap();
    let gone = Endpoint::new("compute-1:1337").unwrap();
    assert!(conductor.deregister(gone.clone()).await.unwrap().into_value().deregistered);
    assert!(!conductor.deregister(gone.clone()).await.unwrap().into_value().deregistered);
    let listed = conductor.list_agents().await.unwrap().into_value().agents;
    assert_eq!(listed.iter().map(|a| a.endpoint.as_str()).collect::<Vec<_>>(), ["compute-2:1337"]);
    conductor.hello(agent_registration("compute-1:1337", None)).await.unwrap();
    assert_eq!(conductor.list_agents().await.unwrap().into_value().agents.len(), 2, "registered anew");
}

#[tokio::test]
async fn conductor_discovery_status_answers_the_recorded_runs_without_starting_one() {
    // A node whose driver's discovery takes 300 ms.
    let hardware = json!([{
        "uuid": "c1f0d8a4-27b6-4e9a-9d35-5e0a7b3c2f18",
        "acc_specs": {"remote": false, "num": 1, "device_type": "GPU", "acc_capability": {"num": 1}},
        "acc_status": {"setup_required": false, "reboot_required": false}
    }]);
    let config = DriverConfig::from_json(
        &json!({"device_type": "GPU", "hardware": hardware, "discovery": {"duration_ms": 300}}),
    )
    .unwrap();
    let driver = Arc::new(Driver::new(config));
    let (_driver_server, driver_endpoint) = listen(Server::new(DriverServer(driver.clone()))).await;
    driver.set_endpoint(driver_endpoint.clone());
    let agent = Arc::new(Agent::new(AgentOptions::default()));
    agent.hello(driver_registration(&driver_endpoint, None)).await.unwrap();
    let (_agent_server, agent_endpoint) = listen(Server::new(AgentServer(agent))).await;

    let conductor =
        Conductor::new(ConductorOptions { discovery_poll: Duration::from_millis(20), ..ConductorOptions::default() });
    let status = |state| vec![AgentDiscovery { agent: agent_endpoint.clone(), status: state }];
    assert!(conductor.discovery_status(None).await.unwrap().agents.is_empty(), "no run started yet");
    conductor.hello(ready_agent(&agent_endpoint)).await.unwrap();
    let started = conductor.start_discovery(None).await.unwrap().into_value();
    assert_eq!(started.agents, status(DiscoveryState::InProgress));
    assert_eq!(
        ConductorService::discovery_status(&conductor, None).await.unwrap().into_value().agents,
        status(DiscoveryState::InProgress)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let agents = conductor.discovery_status(Some(&agent_endpoint)).await.unwrap().agents;
        if agents == status(DiscoveryState::Done) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the run never ended: {agents:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = Endpoint::new("compute-9:1337").unwrap();
    assert!(conductor.discovery_status(Some(&other)).await.unwrap().agents.is_empty());
    // The inventory the run found was stored: the conductor lists it without asking the agent.
    let listed = conductor.list_hardware().await.unwrap().into_value().hardware;
    assert_eq!(listed.len(), 1);
}

/// An agent of one driver whose `list_hardware` takes 300 ms and is counted.
struct SlowAgent {
    driver: Driver,
    listed: Arc<AtomicUsize>,
}

impl AgentService for SlowAgent {
    async fn hello(&self, _registration: DriverRegistration) -> Result<Answer<HelloAck>, ServiceError> {
        Ok(hello_ack(Duration::from_secs(30)).into())
    }

    async fn deregister(&self, endpoint: Endpoint) -> Result<Answer<Deregistration>, ServiceError> {
        Ok(Deregistration { endpoint, deregistered: false }.into())
    }

    async fn list_hardware(&self) -> Result<Answer<HardwareList>, ServiceError> {
        self.listed.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.driver.list_hardware().await
    }

    async fn start_discovery(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        Ok(DiscoveryStatus { status: DiscoveryState::Done }.into())
    }

    async fn discovery_status(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        Ok(DiscoveryStatus { status: DiscoveryState::Done }.into())
    }
}

#[tokio::test]
async fn listings_while_an_inventory_is_being_fetched_wait_for_that_fetch() {
    let hardware = json!([{
        "uuid": "0b6f3c1e-8a7d-4f2b-9c3e-1d2a3b4c5d6e",
        "acc_specs": {"remote": false, "num": 1, "device_type": "GPU", "acc_capability": {"num": 1}},
        "acc_status": {"setup_required": false, "reboot_required": false}
    }]);
    let config = json!({"device_type": "GPU", "hardware": hardware, "discovery": {"duration_ms": 0}});
    let driver = Driver::new(DriverConfig::from_json(&config).unwrap());
    driver.start_discovery().await.unwrap();
    let listed = Arc::new(AtomicUsize::new(0));
    let agent = SlowAgent { driver, listed: listed.clone() };
    let (_agent_server, agent_endpoint) = listen(Server::new(AgentServer(Arc::new(agent)))).await;
    let conductor = Conductor::new(ConductorOptions::default());
    // A READY agent's hello starts fetching its inventory in the background.
    conductor.hello(ready_agent(&agent_endpoint)).await.unwrap();
    // Three listings meanwhile: each waits for that fetch instead of asking the agent again.
    let listings = (0..3).map(|_| conductor.list_hardware());
    for listing in futures_util::future::join_all(listings).await {
        assert_eq!(listing.unwrap().into_value().hardware.len(), 1);
    }
    assert_eq!(listed.load(Ordering::SeqCst), 1, "the agent was asked once");
    // Stored: the next listing does not ask it either.
    assert_eq!(conductor.list_hardware().await.unwrap().into_value().hardware.len(), 1);
    assert_eq!(listed.load(Ordering::SeqCst), 1);
}
