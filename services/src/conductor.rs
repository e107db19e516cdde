//! The Cyborg conductor (`conductor.*`).
//!
//! Agents register with `conductor.hello` (also their heartbeat). `conductor.list_hardware`
//! gathers `agent.list_hardware` concurrently from every alive, READY agent;
//! `conductor.list_agents` lists every agent that ever registered, with `alive` false for one
//! silent for three heartbeat intervals. The seed worries that "we won't really know when
//! we're missing an agent": an agent that registered once and went away is listed not alive,
//! and a warning is logged when that is noticed (by a call, or by the watchdog that
//! [`Conductor::spawn_watchdog`] starts).

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use vproto_api::{
    AgentClient, AgentList, AgentRegistration, AgentState, ComponentStatus, ConductorService, Endpoint, HardwareList,
    HelloAck, PeerUnavailableData, ProtocolError, ServiceError,
};
use vproto_jsonrpc::Token;
use vproto_support::rpc::{Answer, DeclaredError};

use crate::{
    peer::{fan_out, hello_ack, PeerFailure, PeerScheme, Peers},
    roster::Roster,
};

/// How a conductor treats its agents.
#[derive(Clone, Debug)]
pub struct ConductorOptions {
    /// The heartbeat interval agents are given (whole seconds, at least 1). Default 30 s.
    pub heartbeat_interval: Duration,
    /// How agents' endpoints are dialled. Default tcp.
    pub peer_scheme: PeerScheme,
    /// The token presented to agents, if they require one.
    pub token: Option<Token>,
    /// Longest wait for one agent (connection included). Default 10 s: an agent waits for its
    /// own drivers.
    pub call_timeout: Duration,
}

impl Default for ConductorOptions {
    fn default() -> Self {
        ConductorOptions {
            heartbeat_interval: Duration::from_secs(30),
            peer_scheme: PeerScheme::Tcp,
            token: None,
            call_timeout: Duration::from_secs(10),
        }
    }
}

/// The conductor.
pub struct Conductor {
    agents: Arc<Roster<AgentRegistration>>,
    peers: Arc<Peers>,
}

impl Conductor {
    /// A conductor with no agent registered.
    pub fn new(options: ConductorOptions) -> Self {
        let interval = Duration::from_secs(options.heartbeat_interval.as_secs().max(1));
        Conductor {
            agents: Arc::new(Roster::new("agent", interval)),
            peers: Arc::new(Peers::new(options.peer_scheme, options.token, options.call_timeout)),
        }
    }

    /// The registered agents.
    pub fn agents(&self) -> &Arc<Roster<AgentRegistration>> {
        &self.agents
    }

    /// Checks liveness every half heartbeat interval, logging agents that go missing even
    /// when nobody calls. Stops when the task is aborted or the conductor dropped.
    pub fn spawn_watchdog(&self) -> JoinHandle<()> {
        self.agents.spawn_watchdog()
    }
}

impl ConductorService for Conductor {
    async fn hello(&self, registration: AgentRegistration) -> Result<Answer<HelloAck>, ServiceError> {
        self.agents.hello(registration.endpoint.clone(), registration);
        Ok(hello_ack(self.agents.interval()).into())
    }

    async fn list_hardware(&self) -> Result<Answer<HardwareList>, ServiceError> {
        let targets: Vec<(Endpoint, String)> = self
            .agents
            .sweep()
            .into_iter()
            .filter(|view| view.alive && view.registration.status == ComponentStatus::Ready)
            .map(|view| (view.endpoint, view.last_seen))
            .collect();
        let endpoints = targets.iter().map(|(endpoint, _)| endpoint.clone()).collect();
        let outcomes =
            fan_out(&self.peers, endpoints, |client| async move { AgentClient::new(client).list_hardware().await })
                .await;
        let mut hardware = Vec::new();
        let mut uuids = BTreeSet::new();
        let mut error = None;
        for ((endpoint, last_seen), (_, outcome)) in targets.into_iter().zip(outcomes) {
            match outcome {
                Ok(list) => {
                    for device in list.hardware {
                        if uuids.insert(device.uuid.clone()) {
                            hardware.push(device);
                        } else {
                            tracing::warn!(%endpoint, uuid = %device.uuid, "device listed twice; keeping the first");
                        }
                    }
                }
                Err(failure) => {
                    // An agent's own error (DriverUnavailable, ...) goes into `reason` too.
                    let reason = match &failure {
                        PeerFailure::Declared(declared) => format!("{}: {}", declared.name(), declared.to_rpc()),
                        PeerFailure::Unreachable(why) => why.clone(),
                    };
                    tracing::warn!(%endpoint, %reason, "agent unavailable");
                    error.get_or_insert(ProtocolError::AgentUnavailable(PeerUnavailableData {
                        endpoint,
                        last_seen,
                        reason: Some(reason),
                    }));
                }
            }
        }
        match error {
            Some(error) => Err(error.into()),
            None => Ok(HardwareList { hardware }.into()),
        }
    }

    async fn list_agents(&self) -> Result<Answer<AgentList>, ServiceError> {
        let agents = self
            .agents
            .sweep()
            .into_iter()
            .map(|view| AgentState {
                alive: view.alive,
                endpoint: view.endpoint,
                last_seen: view.last_seen,
                status: view.registration.status,
            })
            .collect();
        Ok(AgentList { agents }.into())
    }
}
