//! The Cyborg agent of a node (`agent.*`).
//!
//! Drivers register with `agent.hello` (which is also their heartbeat). Discovery and hardware
//! listing fan out concurrently to every alive, READY driver, each call bounded by the peer
//! timeout; a driver that cannot be reached makes the answer DriverUnavailable (after every
//! other driver was still called), one that answers DiscoveryFailed has it passed on. The
//! agent in turn says hello to its conductor ([`say_hello`]).
//!
//! Its events go through [`AgentOptions::events`]: `agent.driver_registered` at a driver's
//! first hello, `agent.driver_missing` once per absence when the agent notices it (a call
//! that lists its drivers, or the watchdog [`Agent::spawn_watchdog`] starts).

use std::{collections::BTreeSet, future::Future, sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use vproto_api::{
    AgentEvent, AgentRegistration, AgentService, ClientError, ComponentStatus, ConductorClient, Deregistration,
    DiscoveryState, DiscoveryStatus, DriverClient, DriverRegistration, Endpoint, HardwareList, HelloAck,
    PeerUnavailableData, ProtocolError, ServiceError,
};
use vproto_jsonrpc::Token;
use vproto_support::rpc::{events::Publisher, Answer};

use crate::{
    peer::{fan_out, hello_ack, HelloLoop, PeerClient, PeerFailure, PeerScheme, Peers},
    roster::{check_protocol, Change, Roster},
};

/// How an agent treats its drivers.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The heartbeat interval drivers are given (whole seconds, at least 1). Default 30 s.
    pub heartbeat_interval: Duration,
    /// How drivers' endpoints are dialled. Default tcp.
    pub peer_scheme: PeerScheme,
    /// The token presented to drivers, if they require one.
    pub token: Option<Token>,
    /// Longest wait for one driver (connection included). Default 5 s.
    pub call_timeout: Duration,
    /// Where its events go: the server's event hub, or nowhere (the default,
    /// `Publisher::disconnected()`).
    pub events: Publisher<AgentEvent>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            heartbeat_interval: Duration::from_secs(30),
            peer_scheme: PeerScheme::Tcp,
            token: None,
            call_timeout: Duration::from_secs(5),
            events: Publisher::disconnected(),
        }
    }
}

/// The agent.
pub struct Agent {
    drivers: Arc<Roster<DriverRegistration>>,
    peers: Arc<Peers>,
}

/// A driver to contact, with when it was last heard from.
struct Target {
    endpoint: Endpoint,
    last_seen: String,
}

impl Agent {
    /// An agent with no driver registered.
    pub fn new(options: AgentOptions) -> Self {
        let interval = Duration::from_secs(options.heartbeat_interval.as_secs().max(1));
        let events = options.events;
        let drivers = Roster::new("driver", interval).with_listener(move |change| {
            if let Some(event) = driver_event(change) {
                events.publish(event);
            }
        });
        Agent {
            drivers: Arc::new(drivers),
            peers: Arc::new(Peers::new(options.peer_scheme, options.token, options.call_timeout)),
        }
    }

    /// The registered drivers.
    pub fn drivers(&self) -> &Arc<Roster<DriverRegistration>> {
        &self.drivers
    }

    /// Checks liveness as soon as a driver can go missing ([`Roster::spawn_watchdog`]), logging
    /// (and publishing `agent.driver_missing` for) drivers that go missing even when nobody calls. Stops when
    /// the task is aborted or the agent dropped.
    pub fn spawn_watchdog(&self) -> JoinHandle<()> {
        self.drivers.spawn_watchdog()
    }

    /// The drivers to contact: alive and READY. The others are skipped.
    fn targets(&self) -> Vec<Target> {
        self.drivers
            .sweep()
            .into_iter()
            .filter(|view| view.alive && view.registration.status == ComponentStatus::Ready)
            .map(|view| Target { endpoint: view.endpoint, last_seen: view.last_seen })
            .collect()
    }
}

/// The event a change of the drivers' roster is, if any (the schema has no event for a driver
/// that comes back: its hello makes it a target again).
fn driver_event(change: Change<DriverRegistration>) -> Option<AgentEvent> {
    match change {
        Change::Registered(view) => Some(AgentEvent::DriverRegistered { driver: view.registration }),
        Change::Missing(view) => {
            Some(AgentEvent::DriverMissing { driver: view.registration, last_seen: view.last_seen })
        }
        Change::Back { .. } => None,
    }
}

fn driver_unavailable(target: &Target, failure: &PeerFailure) -> ProtocolError {
    tracing::warn!(endpoint = %target.endpoint, reason = %failure, "driver unavailable");
    ProtocolError::DriverUnavailable(PeerUnavailableData {
        endpoint: target.endpoint.clone(),
        last_seen: target.last_seen.clone(),
        reason: Some(failure.to_string()),
    })
}

impl AgentService for Agent {
    async fn hello(&self, registration: DriverRegistration) -> Result<Answer<HelloAck>, ServiceError> {
        check_protocol(registration.protocol_version.as_deref())?;
        self.drivers.hello(registration.endpoint.clone(), registration);
        Ok(hello_ack(self.drivers.interval()).into())
    }

    async fn deregister(&self, endpoint: Endpoint) -> Result<Answer<Deregistration>, ServiceError> {
        let deregistered = self.drivers.remove(&endpoint);
        Ok(Deregistration { endpoint, deregistered }.into())
    }

    async fn list_hardware(&self) -> Result<Answer<HardwareList>, ServiceError> {
        let targets = self.targets();
        let endpoints = targets.iter().map(|t| t.endpoint.clone()).collect();
        let outcomes =
            fan_out(&self.peers, endpoints, |client| async move { DriverClient::new(client).list_hardware().await })
                .await;
        let mut hardware = Vec::new();
        let mut uuids = BTreeSet::new();
        let mut error = None;
        for (target, (_, outcome)) in targets.iter().zip(outcomes) {
            match outcome {
                Ok(list) => {
                    for device in list.hardware {
                        if uuids.insert(device.uuid.clone()) {
                            hardware.push(device);
                        } else {
                            tracing::warn!(endpoint = %target.endpoint, uuid = %device.uuid, "device listed twice; keeping the first");
                        }
                    }
                }
                Err(failure) => {
                    error.get_or_insert(driver_unavailable(target, &failure));
                }
            }
        }
        match error {
            Some(error) => Err(error.into()),
            None => Ok(HardwareList { hardware }.into()),
        }
    }

    async fn start_discovery(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        self.node_discovery(|client| async move { DriverClient::new(client).start_discovery().await }).await
    }

    async fn discovery_status(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        self.node_discovery(|client| async move { DriverClient::new(client).discovery_status().await }).await
    }
}

impl Agent {
    /// Asks every target driver for its discovery state with `call` (a trigger, or a status
    /// read) and answers the node's ([`combined`]).
    async fn node_discovery<F, Fut>(&self, call: F) -> Result<Answer<DiscoveryStatus>, ServiceError>
    where
        F: Fn(PeerClient) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<DiscoveryStatus, ClientError>> + Send + 'static,
    {
        let targets = self.targets();
        let endpoints = targets.iter().map(|t| t.endpoint.clone()).collect();
        let outcomes = fan_out(&self.peers, endpoints, call).await;
        Ok(DiscoveryStatus { status: combined(&targets, outcomes)? }.into())
    }
}

/// The node's state from its drivers' answers (to `driver.start_discovery` or
/// `driver.discovery_status`): IN-PROGRESS while any run is, else FAILED if any failed, else
/// DONE. A driver's DiscoveryFailed is passed on unchanged, one that cannot be reached is
/// DriverUnavailable (the first error wins; every driver was called before).
fn combined(
    targets: &[Target],
    outcomes: Vec<(Endpoint, Result<DiscoveryStatus, PeerFailure>)>,
) -> Result<DiscoveryState, ProtocolError> {
    let (mut in_progress, mut failed) = (false, false);
    let mut error = None;
    for (target, (_, outcome)) in targets.iter().zip(outcomes) {
        match outcome {
            Ok(status) => match status.status {
                DiscoveryState::InProgress => in_progress = true,
                DiscoveryState::Failed => failed = true,
                DiscoveryState::Done => {}
            },
            // Passed on unchanged.
            Err(PeerFailure::Declared(declared @ ProtocolError::DiscoveryFailed(_))) => {
                tracing::warn!(endpoint = %target.endpoint, error = %declared, "driver could not start discovery");
                error.get_or_insert(declared);
            }
            Err(failure) => {
                error.get_or_insert(driver_unavailable(target, &failure));
            }
        }
    }
    if let Some(error) = error {
        return Err(error);
    }
    Ok(if in_progress {
        DiscoveryState::InProgress
    } else if failed {
        DiscoveryState::Failed
    } else {
        DiscoveryState::Done
    })
}

/// Says hello to the conductor now and every half heartbeat interval after, as `registration`.
pub fn say_hello(hello: HelloLoop, registration: AgentRegistration) -> JoinHandle<()> {
    hello.spawn(move |client| {
        let registration = registration.clone();
        async move { ConductorClient::new(client).hello(&registration).await }
    })
}
