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
//! (`conductor.start_discovery`, or [`Conductor::start_discovery_on`]) ends.
//!
//! # Following discovery
//!
//! A run an agent answers IN-PROGRESS is followed by a task polling `agent.discovery_status`
//! (which starts no run) every [`ConductorOptions::discovery_poll`], for at most
//! [`ConductorOptions::discovery_timeout`]; `conductor.discovery_finished` is published once,
//! when the run is answered DONE or FAILED. One follower per agent: a trigger that joins a run
//! already followed adds none. Followers are aborted when the conductor is dropped.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::task::{AbortHandle, JoinHandle};
use vproto_api::{
    AgentClient, AgentDiscovery, AgentDiscoveryList, AgentList, AgentRegistration, AgentState, ComponentStatus,
    ConductorEvent, ConductorService, DiscoveryState, DiscoveryStatus, Endpoint, HardwareList, HelloAck,
    PeerUnavailableData, ProtocolError, ServiceError,
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
    /// How often a discovery run in progress is asked how it stands (`agent.discovery_status`).
    /// Default 200 ms.
    pub discovery_poll: Duration,
    /// How long a discovery run is followed at most; one still in progress then is given up
    /// (logged, no event). Default 10 minutes.
    pub discovery_timeout: Duration,
}

impl Default for ConductorOptions {
    fn default() -> Self {
        ConductorOptions {
            heartbeat_interval: Duration::from_secs(30),
            peer_scheme: PeerScheme::Tcp,
            token: None,
            call_timeout: Duration::from_secs(10),
            events: Publisher::disconnected(),
            discovery_poll: Duration::from_millis(200),
            discovery_timeout: Duration::from_secs(600),
        }
    }
}

/// The conductor.
pub struct Conductor {
    agents: Arc<Roster<AgentRegistration>>,
    peers: Arc<Peers>,
    events: Publisher<ConductorEvent>,
    /// The agents whose discovery run a task follows, and that task.
    followed: Arc<Mutex<BTreeMap<Endpoint, AbortHandle>>>,
    discovery_poll: Duration,
    discovery_timeout: Duration,
}

impl Drop for Conductor {
    fn drop(&mut self) {
        for (_, follower) in std::mem::take(&mut *lock(&self.followed)) {
            follower.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
            followed: Arc::default(),
            discovery_poll: options.discovery_poll.max(Duration::from_millis(1)),
            discovery_timeout: options.discovery_timeout,
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

    /// Starts discovery on the node of the agent at `agent` (`agent.start_discovery`, whether
    /// or not the agent is registered) and answers the state the agent answered. The run is
    /// followed as `conductor.start_discovery` follows it: published as
    /// `conductor.discovery_finished` at once if answered ended (DONE or FAILED: its drivers'
    /// runs were instant, or it has none), else when `agent.discovery_status` says it ended.
    pub async fn start_discovery_on(&self, agent: &Endpoint) -> Result<DiscoveryState, PeerFailure> {
        let status =
            self.peers.call(agent, |client| async move { AgentClient::new(client).start_discovery().await }).await?;
        self.follow(agent, status.status.clone()).await;
        Ok(status.status)
    }

    /// Whether a task follows the discovery run of the agent at `agent`.
    pub fn follows(&self, agent: &Endpoint) -> bool {
        lock(&self.followed).contains_key(agent)
    }

    /// After the agent at `agent` answered a trigger with `state`: publishes an ended run,
    /// or follows one in progress (unless a follower already does, the trigger having joined
    /// the run it follows).
    async fn follow(&self, agent: &Endpoint, state: DiscoveryState) {
        {
            let mut followed = lock(&self.followed);
            if followed.contains_key(agent) {
                // The follower sees this run's end (one answered ended here is the run it follows).
                return;
            }
            if state == DiscoveryState::InProgress {
                let (peers, events, registry) = (self.peers.clone(), self.events.clone(), self.followed.clone());
                let (poll, timeout, endpoint) = (self.discovery_poll, self.discovery_timeout, agent.clone());
                // Spawned with the lock held: the task cannot remove its entry before it is in.
                let task = tokio::spawn(async move {
                    let ended = follow_run(&peers, &endpoint, poll, timeout).await;
                    // Forgotten before publishing, so a trigger after the event follows the next run.
                    lock(&registry).remove(&endpoint);
                    if let Some(state) = ended {
                        discovery_finished(&peers, &events, &endpoint, state).await;
                    }
                });
                followed.insert(agent.clone(), task.abort_handle());
                return;
            }
        }
        discovery_finished(&self.peers, &self.events, agent, state).await;
    }
}

/// Polls `agent.discovery_status` of the agent at `agent` every `poll` until its run ends
/// (its final state) or `timeout` passed (`None`). An agent that cannot be asked for a while is
/// asked again at the next poll.
async fn follow_run(peers: &Peers, agent: &Endpoint, poll: Duration, timeout: Duration) -> Option<DiscoveryState> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tokio::time::sleep(poll).await;
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(endpoint = %agent, ?timeout, "discovery still in progress: no longer followed");
            return None;
        }
        match peers.call(agent, |client| async move { AgentClient::new(client).discovery_status().await }).await {
            Ok(status) if status.status != DiscoveryState::InProgress => return Some(status.status),
            Ok(_) => {}
            Err(failure) => tracing::debug!(endpoint = %agent, reason = %failure, "discovery status unknown for now"),
        }
    }
}

/// Publishes that the discovery run of the node at `agent` ended `state`, with the hardware
/// the agent lists after a DONE run (none when it cannot be asked).
async fn discovery_finished(
    peers: &Peers,
    events: &Publisher<ConductorEvent>,
    agent: &Endpoint,
    state: DiscoveryState,
) {
    let hardware = match state {
        DiscoveryState::Done => {
            match peers.call(agent, |client| async move { AgentClient::new(client).list_hardware().await }).await {
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
    events.publish(ConductorEvent::DiscoveryFinished {
        agent: agent.clone(),
        hardware,
        status: DiscoveryStatus { status: state },
    });
}

/// The `reason` of AgentUnavailable for an agent's failure (its own declared error included).
fn agent_unavailable(endpoint: Endpoint, last_seen: String, failure: &PeerFailure) -> ProtocolError {
    let reason = match failure {
        PeerFailure::Declared(declared) => format!("{}: {}", declared.name(), declared.to_rpc()),
        PeerFailure::Unreachable(why) => why.clone(),
    };
    tracing::warn!(%endpoint, %reason, "agent unavailable");
    ProtocolError::AgentUnavailable(PeerUnavailableData { endpoint, last_seen, reason: Some(reason) })
}

impl Conductor {
    /// The agents to contact (alive and READY; only the one at `only` when given), with their
    /// last hello.
    fn targets(&self, only: Option<&Endpoint>) -> Vec<(Endpoint, String)> {
        self.agents
            .sweep()
            .into_iter()
            .filter(|view| view.alive && view.registration.status == ComponentStatus::Ready)
            .filter(|view| only.is_none_or(|only| *only == view.endpoint))
            .map(|view| (view.endpoint, view.last_seen))
            .collect()
    }
}

impl ConductorService for Conductor {
    async fn hello(&self, registration: AgentRegistration) -> Result<Answer<HelloAck>, ServiceError> {
        self.agents.hello(registration.endpoint.clone(), registration);
        Ok(hello_ack(self.agents.interval()).into())
    }

    async fn list_hardware(&self) -> Result<Answer<HardwareList>, ServiceError> {
        let targets = self.targets(None);
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
                    error.get_or_insert(agent_unavailable(endpoint, last_seen, &failure));
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

    async fn start_discovery(&self, agent: Option<Endpoint>) -> Result<Answer<AgentDiscoveryList>, ServiceError> {
        let mut targets = self.targets(agent.as_ref());
        targets.sort();
        let endpoints = targets.iter().map(|(endpoint, _)| endpoint.clone()).collect();
        let outcomes =
            fan_out(&self.peers, endpoints, |client| async move { AgentClient::new(client).start_discovery().await })
                .await;
        let mut agents = Vec::new();
        let mut error = None;
        for ((endpoint, last_seen), (_, outcome)) in targets.into_iter().zip(outcomes) {
            match outcome {
                Ok(status) => {
                    self.follow(&endpoint, status.status.clone()).await;
                    agents.push(AgentDiscovery { agent: endpoint, status: status.status });
                }
                Err(failure) => {
                    error.get_or_insert(agent_unavailable(endpoint, last_seen, &failure));
                }
            }
        }
        match error {
            Some(error) => Err(error.into()),
            None => Ok(AgentDiscoveryList { agents }.into()),
        }
    }
}
