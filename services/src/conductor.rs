//! The Cyborg conductor (`conductor.*`).
//!
//! Agents register with `conductor.hello` (also their heartbeat). `conductor.list_hardware`
//! gathers `agent.list_hardware` concurrently from every alive, READY agent;
//! `conductor.list_agents` lists every agent that ever registered, with `alive` false for one
//! silent for three heartbeat intervals. The seed worries that "we won't really know when
//! we're missing an agent": an agent that registered once and went away is listed not alive,
//! and a warning is logged when that is noticed (by a call, or by the watchdog that
//! [`Conductor::spawn_watchdog`] starts).
//!
//! # Events
//!
//! The conductor publishes through [`ConductorOptions::events`]: `conductor.agent_registered`
//! at an agent's first hello, `conductor.agent_missing` once per absence when it is noticed
//! (Cyborg's missing-agent alarm, beside the log line), `conductor.agent_back` at the hello of
//! an agent that had gone missing (the roster's [`Change`]s), and
//! `conductor.discovery_finished` when a discovery run the conductor started on an agent
//! ([`Conductor::start_discovery`]) is answered as ended.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use vproto_api::{
    AgentClient, AgentList, AgentRegistration, AgentState, ComponentStatus, ConductorEvent, ConductorService,
    DiscoveryState, DiscoveryStatus, Endpoint, HardwareList, HelloAck, PeerUnavailableData, ProtocolError,
    ServiceError,
};
use vproto_jsonrpc::Token;
use vproto_support::rpc::{events::Publisher, Answer, DeclaredError};

use crate::{
    peer::{fan_out, hello_ack, PeerFailure, PeerScheme, Peers},
    roster::{Change, MemberView, Roster},
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
    /// Where its events go: the server's event hub, or nowhere (the default,
    /// `Publisher::disconnected()`).
    pub events: Publisher<ConductorEvent>,
}

impl Default for ConductorOptions {
    fn default() -> Self {
        ConductorOptions {
            heartbeat_interval: Duration::from_secs(30),
            peer_scheme: PeerScheme::Tcp,
            token: None,
            call_timeout: Duration::from_secs(10),
            events: Publisher::disconnected(),
        }
    }
}

/// The conductor.
pub struct Conductor {
    agents: Arc<Roster<AgentRegistration>>,
    peers: Arc<Peers>,
    events: Publisher<ConductorEvent>,
}

/// An agent as `conductor.list_agents` lists it.
fn agent_state(view: MemberView<AgentRegistration>) -> AgentState {
    AgentState {
        alive: view.alive,
        endpoint: view.endpoint,
        last_seen: view.last_seen,
        status: view.registration.status,
    }
}

/// The event a change of the agents' roster is.
fn agent_event(change: Change<AgentRegistration>) -> ConductorEvent {
    match change {
        Change::Registered(view) => ConductorEvent::AgentRegistered { agent: agent_state(view) },
        Change::Missing(view) => ConductorEvent::AgentMissing { agent: agent_state(view) },
        Change::Back { member, missing_since } => {
            ConductorEvent::AgentBack { agent: agent_state(member), missing_since }
        }
    }
}

impl Conductor {
    /// A conductor with no agent registered.
    pub fn new(options: ConductorOptions) -> Self {
        let interval = Duration::from_secs(options.heartbeat_interval.as_secs().max(1));
        let events = options.events;
        let publisher = events.clone();
        let agents = Roster::new("agent", interval).with_listener(move |change| publisher.publish(agent_event(change)));
        Conductor {
            agents: Arc::new(agents),
            peers: Arc::new(Peers::new(options.peer_scheme, options.token, options.call_timeout)),
            events,
        }
    }

    /// The registered agents.
    pub fn agents(&self) -> &Arc<Roster<AgentRegistration>> {
        &self.agents
    }

    /// Checks liveness as soon as an agent can go missing ([`Roster::spawn_watchdog`]), logging
    /// (and publishing `conductor.agent_missing` for) agents that go missing even when nobody
    /// calls. Stops when the task is aborted or the conductor dropped.
    pub fn spawn_watchdog(&self) -> JoinHandle<()> {
        self.agents.spawn_watchdog()
    }

    /// Starts discovery on the node of the agent at `agent` (`agent.start_discovery`) and
    /// answers the state the agent answered. A run answered as ended (DONE or FAILED: its
    /// drivers' runs were instant, or it has none) is published as
    /// `conductor.discovery_finished`, with the hardware the agent lists after a DONE run (none
    /// when it cannot be asked). A run answered IN-PROGRESS is not followed further: the schema
    /// offers no way to ask how a run stands without triggering another (a later
    /// `agent.start_discovery` starts a new run once this one ended).
    pub async fn start_discovery(&self, agent: &Endpoint) -> Result<DiscoveryState, PeerFailure> {
        let status =
            self.peers.call(agent, |client| async move { AgentClient::new(client).start_discovery().await }).await?;
        if status.status != DiscoveryState::InProgress {
            self.discovery_finished(agent, status.status.clone()).await;
        }
        Ok(status.status)
    }

    /// Publishes that the discovery run of the node at `agent` ended `state`.
    async fn discovery_finished(&self, agent: &Endpoint, state: DiscoveryState) {
        let hardware = match state {
            DiscoveryState::Done => {
                match self
                    .peers
                    .call(agent, |client| async move { AgentClient::new(client).list_hardware().await })
                    .await
                {
                    Ok(list) => Some(list),
                    Err(failure) => {
                        tracing::warn!(endpoint = %agent, reason = %failure, "cannot list the hardware discovery found");
                        None
                    }
                }
            }
            _ => None,
        };
        tracing::info!(endpoint = %agent, status = %state, "discovery finished");
        self.events.publish(ConductorEvent::DiscoveryFinished {
            agent: agent.clone(),
            hardware,
            status: DiscoveryStatus { status: state },
        });
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
        let agents = self.agents.sweep().into_iter().map(agent_state).collect();
        Ok(AgentList { agents }.into())
    }
}
