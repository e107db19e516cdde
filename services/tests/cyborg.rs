//! Driver, agent and conductor talking over real loopback sockets, in one process.

use std::{sync::Arc, time::Duration};

use serde_json::{json, Value};
use vproto_api::{
    AgentRegistration, AgentServer, AgentService, ComponentStatus, ConductorClient, ConductorServer, ConductorService,
    DeviceType, DiscoveryState, DriverRegistration, DriverServer, Endpoint, HardwareList, ProtocolError, ServiceError,
};
use vproto_jsonrpc::{Client, ClientOptions, ListenAddr, RunningServer, Server};
use vproto_services::{
    agent::{self, Agent, AgentOptions},
    conductor::{Conductor, ConductorHandler, ConductorOptions},
    driver::{Driver, DriverConfig},
    peer::{endpoint_of, HelloLoop},
};
use vproto_support::{
    rpc::{
        roles::{self, Caller},
        ClientTransport, Handler, Params,
    },
    wire::{WirePath, WireValue},
};

fn device(uuid: &str, device_type: &str) -> Value {
    json!({
        "uuid": uuid,
        "acc_specs": {"remote": false, "num": 1, "device_type": device_type, "acc_capability": {"num": 1}},
        "acc_status": {"setup_required": false, "reboot_required": false}
    })
}

fn driver_config(device_type: &str, uuids: &[&str], discovery: Value) -> DriverConfig {
    let hardware: Vec<Value> = uuids.iter().map(|uuid| device(uuid, device_type)).collect();
    DriverConfig::from_json(&json!({"device_type": device_type, "hardware": hardware, "discovery": discovery})).unwrap()
}

const CRYPTO_1: &str = "8e45a2ea-5364-4b0d-a252-bf8becaa606e";
const CRYPTO_2: &str = "0b0c5a7e-1d2e-4f30-9a41-b52c63d74e85";
const GPU_1: &str = "c1f0d8a4-27b6-4e9a-9d35-5e0a7b3c2f18";

async fn listen(server: Server) -> (RunningServer, Endpoint) {
    let running = server.bind(&"tcp:127.0.0.1:0".parse::<ListenAddr>().unwrap()).await.unwrap();
    let endpoint = endpoint_of(running.local_addr()).unwrap().unwrap();
    (running, endpoint)
}

/// A driver listening on loopback, its endpoint set.
async fn start_driver(config: DriverConfig) -> (RunningServer, Endpoint) {
    let driver = Arc::new(Driver::new(config));
    let (running, endpoint) = listen(Server::new(DriverServer(driver.clone()))).await;
    driver.set_endpoint(endpoint.clone());
    (running, endpoint)
}

fn agent_options() -> AgentOptions {
    AgentOptions {
        heartbeat_interval: Duration::from_secs(1),
        call_timeout: Duration::from_secs(2),
        ..AgentOptions::default()
    }
}

fn registration(endpoint: &Endpoint, status: ComponentStatus) -> DriverRegistration {
    DriverRegistration { endpoint: endpoint.clone(), status, r#type: DeviceType::Crypto, protocol_version: None }
}

fn uuids(list: &vproto_api::HardwareList) -> Vec<&str> {
    list.hardware.iter().map(|h| h.uuid.as_str()).collect()
}

#[tokio::test]
async fn the_agent_gathers_discovery_and_hardware_from_its_ready_drivers() {
    let instant = json!({"duration_ms": 0});
    let (_crypto, crypto) = start_driver(driver_config("CRYPTO", &[CRYPTO_1, CRYPTO_2], instant.clone())).await;
    let (_gpu, gpu) = start_driver(driver_config("GPU", &[GPU_1], instant)).await;
    let agent = Agent::new(agent_options());
    assert_eq!(
        agent.start_discovery().await.unwrap().into_value().status,
        DiscoveryState::Done,
        "no driver: nothing to do"
    );

    let ack = agent.hello(registration(&crypto, ComponentStatus::Ready)).await.unwrap().into_value();
    assert_eq!((ack.heartbeat_interval, ack.protocol_version.as_str()), (1, vproto_api::PROTOCOL_VERSION));
    agent.hello(registration(&gpu, ComponentStatus::NotReady)).await.unwrap();
    assert_eq!(agent.start_discovery().await.unwrap().into_value().status, DiscoveryState::Done);
    assert_eq!(
        uuids(&agent.list_hardware().await.unwrap().into_value()),
        [CRYPTO_1, CRYPTO_2],
        "a NOT-READY driver is skipped"
    );

    // A repeated hello updates the registration.
    agent.hello(registration(&gpu, ComponentStatus::Ready)).await.unwrap();
    agent.start_discovery().await.unwrap();
    let mut all =
        uuids(&agent.list_hardware().await.unwrap().into_value()).into_iter().map(str::to_string).collect::<Vec<_>>();
    all.sort();
    let mut expected = vec![CRYPTO_1, CRYPTO_2, GPU_1];
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(agent.drivers().sweep().len(), 2);
}

#[tokio::test]
async fn discovery_states_combine_in_progress_over_failed_over_done() {
    let (_slow, slow) = start_driver(driver_config("CRYPTO", &[CRYPTO_1], json!({"duration_ms": 60_000}))).await;
    let (_bad, bad) =
        start_driver(driver_config("CRYPTO", &[CRYPTO_2], json!({"duration_ms": 0, "outcome": "FAILED"}))).await;
    let agent = Agent::new(agent_options());
    agent.hello(registration(&bad, ComponentStatus::Ready)).await.unwrap();
    assert_eq!(agent.start_discovery().await.unwrap().into_value().status, DiscoveryState::Failed);
    agent.hello(registration(&slow, ComponentStatus::Ready)).await.unwrap();
    assert_eq!(agent.start_discovery().await.unwrap().into_value().status, DiscoveryState::InProgress);
}

#[tokio::test]
async fn a_driver_that_cannot_start_discovery_is_passed_on_after_the_others_are_triggered() {
    let (_ok, ok) = start_driver(driver_config("CRYPTO", &[CRYPTO_1], json!({"duration_ms": 60_000}))).await;
    let (_broken, broken) =
        start_driver(driver_config("CRYPTO", &[CRYPTO_2], json!({"start_error": "probe tool missing"}))).await;
    let agent = Agent::new(agent_options());
    agent.hello(registration(&ok, ComponentStatus::Ready)).await.unwrap();
    agent.hello(registration(&broken, ComponentStatus::Ready)).await.unwrap();
    let error = agent.start_discovery().await.unwrap_err();
    match error {
        ServiceError::Protocol(ProtocolError::DiscoveryFailed(data)) => {
            assert_eq!((data.endpoint, data.reason.as_str()), (broken, "probe tool missing"));
        }
        other => panic!("{other:?}"),
    }
    // The other driver was triggered all the same.
    let client = Client::connect(&format!("tcp:{ok}").parse().unwrap(), ClientOptions::default()).await.unwrap();
    let status = vproto_api::DriverClient::new(client).start_discovery().await.unwrap();
    assert_eq!(status.status, DiscoveryState::InProgress);
}

#[tokio::test]
async fn an_unreachable_driver_makes_the_answer_driver_unavailable_naming_it() {
    let (running, gone) = start_driver(driver_config("CRYPTO", &[CRYPTO_1], json!({"duration_ms": 0}))).await;
    let (_alive, alive) = start_driver(driver_config("CRYPTO", &[CRYPTO_2], json!({"duration_ms": 0}))).await;
    let agent = Agent::new(agent_options());
    agent.hello(registration(&gone, ComponentStatus::Ready)).await.unwrap();
    agent.hello(registration(&alive, ComponentStatus::Ready)).await.unwrap();
    agent.start_discovery().await.unwrap();
    assert_eq!(agent.list_hardware().await.unwrap().into_value().hardware.len(), 2);

    running.shutdown().await;
    for call in 0..2 {
        let error = agent.list_hardware().await.unwrap_err();
        match error {
            ServiceError::Protocol(ProtocolError::DriverUnavailable(data)) => {
                assert_eq!(data.endpoint, gone, "call {call}");
                assert!(data.reason.is_some() && !data.last_seen.is_empty());
            }
            other => panic!("call {call}: {other:?}"),
        }
    }
    // The registration is kept.
    assert_eq!(agent.drivers().sweep().len(), 2);
}

#[tokio::test]
async fn the_conductor_aggregates_hardware_across_agents_and_lists_them() {
    let (_driver, driver) = start_driver(driver_config("CRYPTO", &[CRYPTO_1], json!({"duration_ms": 0}))).await;
    let agent = Arc::new(Agent::new(agent_options()));
    agent.hello(registration(&driver, ComponentStatus::Ready)).await.unwrap();
    agent.start_discovery().await.unwrap();
    let (agent_server, agent_endpoint) = listen(Server::new(AgentServer(agent.clone()))).await;

    let conductor = Arc::new(Conductor::new(ConductorOptions {
        heartbeat_interval: Duration::from_secs(1),
        call_timeout: Duration::from_secs(2),
        ..ConductorOptions::default()
    }));
    let (_conductor_server, conductor_endpoint) = listen(Server::new(ConductorServer(conductor.clone()))).await;
    assert!(conductor.list_hardware().await.unwrap().into_value().hardware.is_empty());

    // The agent registers through its hello loop, as `vproto serve agent --conductor` does.
    let hello = agent::say_hello(
        HelloLoop {
            target: format!("tcp:{conductor_endpoint}").parse().unwrap(),
            options: ClientOptions::default(),
            retry: Duration::from_millis(100),
            what: "conductor",
        },
        AgentRegistration { endpoint: agent_endpoint.clone(), status: ComponentStatus::Ready, protocol_version: None },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while conductor.list_agents().await.unwrap().into_value().agents.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the agent never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client =
        Client::connect(&format!("tcp:{conductor_endpoint}").parse().unwrap(), ClientOptions::default()).await.unwrap();
    let conductor_client = ConductorClient::new(client);
    let listed = conductor_client.list_hardware().await.unwrap();
    assert_eq!(uuids(&listed), [CRYPTO_1]);
    let agents = conductor_client.list_agents().await.unwrap().agents;
    assert_eq!((agents.len(), agents[0].alive, &agents[0].endpoint), (1, true, &agent_endpoint));
    hello.abort();

    // The agent goes away while it is still counted alive: its inventory is answered as the
    // conductor stored it (refreshed when agents report, not on every read).
    agent_server.shutdown().await;
    assert_eq!(uuids(&conductor_client.list_hardware().await.unwrap()), [CRYPTO_1]);
}

/// Over the wire, `conductor.list_hardware` is answered from the text of the last answer while
/// the stored inventories do not change: what the generated dispatcher answers, with the
/// caller's role and the params checked as the dispatcher checks them.
#[tokio::test]
async fn the_conductor_answers_list_hardware_from_kept_text_as_the_dispatcher_would() {
    let config = driver_config("CRYPTO", &[CRYPTO_1, CRYPTO_2], json!({"duration_ms": 0}));
    let (_driver, driver) = start_driver(config).await;
    let agent = Arc::new(Agent::new(agent_options()));
    agent.hello(registration(&driver, ComponentStatus::Ready)).await.unwrap();
    agent.start_discovery().await.unwrap();
    let (_agent_server, agent_endpoint) = listen(Server::new(AgentServer(agent))).await;
    let conductor = Arc::new(Conductor::new(ConductorOptions::default()));
    let handler = Arc::new(ConductorHandler::new(conductor.clone()));
    let (_server, conductor_endpoint) = listen(Server::from_arc(handler.clone())).await;
    let hello =
        AgentRegistration { endpoint: agent_endpoint.clone(), status: ComponentStatus::Ready, protocol_version: None };
    conductor.hello(hello).await.unwrap();

    // The inventory is fetched in the background after the hello; then the text is kept.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(text) = conductor.list_hardware_text().await.unwrap() {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "the inventory was never stored");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let again = conductor.list_hardware_text().await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &again), "the text is kept while the inventories do not change");
    let dispatched = ConductorServer(conductor.clone()).handle("conductor.list_hardware", Params::None).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(first.get()).unwrap(), dispatched);
    let addr = format!("tcp:{conductor_endpoint}").parse().unwrap();
    let client = Client::connect(&addr, ClientOptions::default()).await.unwrap();
    assert_eq!(client.request("conductor.list_hardware", Value::Null).await.unwrap(), dispatched);

    // Another inventory stored: the next answer is written anew.
    let changed = HardwareList::from_wire(&json!({"hardware": [device(GPU_1, "GPU")]}), &WirePath::root()).unwrap();
    assert!(conductor.store().set_hardware(&agent_endpoint, &changed).await.unwrap());
    assert_eq!(uuids(&ConductorClient::new(client).list_hardware().await.unwrap()), [GPU_1]);

    // A caller without the method's role, and params the method does not take, are refused
    // as the dispatcher refuses them.
    let extra = Params::ByName(json!({"agent": "127.0.0.1:1"}).as_object().unwrap().clone());
    for (caller, params, code) in [(Caller::role("agent"), Params::None, -32003), (Caller::Trusted, extra, -32602)] {
        let ours = roles::scope(caller.clone(), handler.handle_json("conductor.list_hardware", params.clone()));
        let theirs = roles::scope(caller, handler.handle("conductor.list_hardware", params));
        let (ours, theirs) = (ours.await.unwrap_err(), theirs.await.unwrap_err());
        assert_eq!((ours.code, &ours), (code, &theirs));
    }
}

#[tokio::test]
async fn an_agent_error_reaches_the_conductor_caller_as_agent_unavailable_with_its_reason() {
    let agent = Arc::new(Agent::new(agent_options()));
    // A driver that registered but is not listening.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = Endpoint::new(format!("127.0.0.1:{}", unused.local_addr().unwrap().port())).unwrap();
    drop(unused);
    agent.hello(registration(&nobody, ComponentStatus::Ready)).await.unwrap();
    let (_agent_server, agent_endpoint) = listen(Server::new(AgentServer(agent))).await;
    let conductor = Conductor::new(ConductorOptions::default());
    conductor
        .hello(AgentRegistration {
            endpoint: agent_endpoint.clone(),
            status: ComponentStatus::Ready,
            protocol_version: None,
        })
        .await
        .unwrap();
    match conductor.list_hardware().await.unwrap_err() {
        ServiceError::Protocol(ProtocolError::AgentUnavailable(data)) => {
            assert_eq!(data.endpoint, agent_endpoint);
            let reason = data.reason.unwrap();
            assert!(reason.contains("DriverUnavailable") && reason.contains(nobody.as_str()), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn agents_that_are_not_ready_are_listed_but_not_contacted() {
    let conductor = Conductor::new(ConductorOptions::default());
    let endpoint = Endpoint::new("127.0.0.1:9").unwrap();
    conductor
        .hello(AgentRegistration { endpoint: endpoint.clone(), status: ComponentStatus::Error, protocol_version: None })
        .await
        .unwrap();
    assert!(conductor.list_hardware().await.unwrap().into_value().hardware.is_empty());
    let agents = conductor.list_agents().await.unwrap().into_value().agents;
    assert_eq!((agents[0].status.clone(), agents[0].alive), (ComponentStatus::Error, true));
}

#[tokio::test]
async fn the_hello_loop_keeps_trying_until_the_target_is_up() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    let agent = Arc::new(Agent::new(agent_options()));
    let hello = vproto_services::driver::say_hello(
        HelloLoop {
            target: format!("tcp:127.0.0.1:{port}").parse().unwrap(),
            options: ClientOptions { connect_timeout: Duration::from_secs(1), ..ClientOptions::default() },
            retry: Duration::from_millis(50),
            what: "agent",
        },
        registration(&Endpoint::new("localhost:1337").unwrap(), ComponentStatus::Ready),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr: ListenAddr = format!("tcp:127.0.0.1:{port}").parse().unwrap();
    let Ok(_server) = Server::new(AgentServer(agent.clone())).bind(&addr).await else {
        hello.abort();
        eprintln!("port {port} was taken meanwhile; skipping");
        return;
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while agent.drivers().sweep().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the driver never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hello.abort();
    assert_eq!(agent.drivers().sweep()[0].endpoint.as_str(), "localhost:1337");
}
