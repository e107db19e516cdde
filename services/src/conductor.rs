//! The Cyborg conductor (`conductor.*`).
//!
//! Agents register with `conductor.hello` (also their heartbeat). The conductor keeps what it
//! learns in its [`Store`] (in memory, SQLite or PostgreSQL, see [`crate::store`]):
//! `conductor.list_agents` lists every agent that ever registered (and did not deregister),
//! with `alive` false for one silent for three heartbeat intervals, and
//! `conductor.list_hardware` answers the inventories of the alive, READY agents as stored.
//! Inventories are refreshed (`agent.list_hardware`) when an agent registers, comes back,
//! turns READY or reports while its inventory is empty, and when a discovery run the conductor
//! follows ends DONE, not on every read; an alive READY agent whose inventory was never
//! obtained is asked at the read, and one that cannot answer makes it AgentUnavailable.
//!
//! The seed worries that "we won't really know when we're missing an agent": an agent that
//! registered once and went away is listed not alive, and a warning is logged when that is
//! noticed (by a call, or by the watchdog that [`Conductor::spawn_watchdog`] starts). The
//! notice is a flag in the store, set once per absence by whichever conductor (of those
//! sharing a database) sees it first, and kept across restarts: an agent that went away while
//! the conductor was down is noticed when it is back, one already noticed is not again.
//!
//! # Events
//!
//! The conductor publishes through [`ConductorOptions::events`]: `conductor.agent_registered`
//! at an agent's first hello, `conductor.agent_missing` once per absence when it is noticed
//! (Cyborg's missing-agent alarm, beside the log line), `conductor.agent_back` at the hello of
//! an agent that had gone missing, and `conductor.discovery_finished` when a discovery run the
//! conductor started on an agent (`conductor.start_discovery`, or
//! [`Conductor::start_discovery_on`]) ends.
//!
//! # Following discovery
//!
//! A run an agent answers IN-PROGRESS is followed by a task polling `agent.discovery_status`
//! (which starts no run) every [`ConductorOptions::discovery_poll`], for at most
//! [`ConductorOptions::discovery_timeout`]; `conductor.discovery_finished` is published once,
//! when the run is answered DONE or FAILED. One follower per agent: a trigger that joins a run
//! already followed adds none. Followers are aborted when the conductor is dropped. Each run
//! is recorded in the store with its outcome, which `Conductor::discovery_status` reads.
//!
//! # Serving it
//!
//! [`ConductorHandler`] is the conductor as a JSON-RPC handler: the generated dispatcher, except
//! that `conductor.list_hardware` is answered as JSON text kept from the last answer while the
//! inventories it was made of do not change ([`Conductor::list_hardware_text`]). At 1,000
//! agents an answer is about 600 KB; a call then costs a copy of it, not a copy of 2,000
//! devices written out again.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use futures_util::future::{FutureExt, Shared};
use serde_json::{value::RawValue, Value};
use tokio::task::{AbortHandle, JoinHandle};
use vproto_api::{
    AgentClient, AgentDiscovery, AgentDiscoveryList, AgentList, AgentRegistration, AgentState, ComponentStatus,
    ConductorEvent, ConductorServer, ConductorService, Deregistration, DiscoveryState, DiscoveryStatus, Endpoint,
    HardwareList, HelloAck, PeerUnavailableData, ProtocolError, ServiceError, JSON_SCHEMA, METHOD_ROLES,
};
use vproto_jsonrpc::Token;
use vproto_support::{
    rpc::{
        events::Publisher, roles, validate_params, Answer, BoxFuture, DeclaredError, Handler, Params, ResultJson,
        RpcError,
    },
    wire::WireValue,
};

use crate::{
    peer::{fan_out, hello_ack, PeerFailure, PeerScheme, Peers},
    roster::check_protocol,
    store::{AgentRecord, Hello, Millis, Store, StoreError},
    time::{rfc3339_of_millis, Clock},
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
    store: Arc<Store>,
    clock: Clock,
    interval: Duration,
    peers: Arc<Peers>,
    events: Publisher<ConductorEvent>,
    /// The agents whose discovery run a task follows, and that task (`None` while it starts).
    followed: Arc<Mutex<BTreeMap<Endpoint, Option<AbortHandle>>>>,
    /// The inventory fetches under way, by agent.
    fetching: Arc<Mutex<BTreeMap<Endpoint, Fetch>>>,
    /// The last `conductor.list_hardware` answer as text, reused while it would be assembled
    /// from the very same inventories.
    listing: Mutex<Option<Listing>>,
    discovery_poll: Duration,
    discovery_timeout: Duration,
}

impl Drop for Conductor {
    fn drop(&mut self) {
        for follower in std::mem::take(&mut *lock(&self.followed)).into_values().flatten() {
            follower.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A store failure as the caller sees it: an internal error (logged by the dispatcher).
fn internal(error: StoreError) -> ServiceError {
    ServiceError::Internal(error.to_string())
}

/// An agent as `conductor.list_agents` lists it at `now`.
fn agent_state(record: &AgentRecord, now: Millis) -> AgentState {
    AgentState {
        alive: record.alive(now),
        endpoint: record.endpoint.clone(),
        last_seen: rfc3339_of_millis(record.last_seen),
        status: record.status.clone(),
    }
}

/// Logs and publishes that the agents of `records` (just flagged missing) went missing.
fn report_missing(events: &Publisher<ConductorEvent>, records: &[AgentRecord], window: Duration) {
    for record in records {
        let last_seen = rfc3339_of_millis(record.last_seen);
        tracing::warn!(
            endpoint = %record.endpoint,
            %last_seen,
            "agent is missing: no hello for {} heartbeat intervals ({window:?})",
            crate::roster::MISSED_HEARTBEATS
        );
        let mut state = agent_state(record, record.deadline().saturating_add(1));
        state.alive = false;
        events.publish(ConductorEvent::AgentMissing { agent: state });
    }
}

impl Conductor {
    /// A conductor with no agent registered, keeping its state in memory.
    pub fn new(options: ConductorOptions) -> Self {
        Conductor::with_store(options, Store::memory())
    }

    /// A conductor keeping its state in `store` (which may already list agents: they are
    /// judged alive or not by their last hello, as stored).
    pub fn with_store(options: ConductorOptions, store: Store) -> Self {
        Conductor {
            store: Arc::new(store),
            clock: Clock::now(),
            interval: Duration::from_secs(options.heartbeat_interval.as_secs().max(1)),
            peers: Arc::new(Peers::new(options.peer_scheme, options.token, options.call_timeout)),
            events: options.events,
            followed: Arc::default(),
            fetching: Arc::default(),
            listing: Mutex::default(),
            discovery_poll: options.discovery_poll.max(Duration::from_millis(1)),
            discovery_timeout: options.discovery_timeout,
        }
    }

    /// Where the conductor keeps its state.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How long an agent may stay silent and still count as alive.
    fn window(&self) -> Duration {
        self.interval * crate::roster::MISSED_HEARTBEATS
    }

    /// Flags (logs, publishes) the agents found missing at `now`.
    async fn sweep(&self, now: Millis) -> Result<(), StoreError> {
        let flagged = self.store.mark_missing(now).await?;
        report_missing(&self.events, &flagged, self.window());
        Ok(())
    }

    /// Every agent as stored, by endpoint, after flagging those found missing at `now`. The
    /// flagging write runs only when a record read is past its deadline and not yet flagged:
    /// none else can be flagged, so a read with no deadline passed writes nothing. The records
    /// answered are those read (flagging changes only `missing`, which callers do not use).
    async fn agents(&self, now: Millis) -> Result<Vec<AgentRecord>, StoreError> {
        let records = self.store.agents().await?;
        if records.iter().any(|record| !record.missing && !record.alive(now)) {
            self.sweep(now).await?;
        }
        Ok(records)
    }

    /// Checks liveness as soon as an agent can go missing (a millisecond past the earliest
    /// deadline of the agents not yet noticed, and at least every half interval, for agents
    /// another conductor sharing the store heard from), logging and publishing
    /// `conductor.agent_missing` for agents that go missing even when nobody calls; at once,
    /// too, for agents that went away while no conductor watched. Stops when the task is
    /// aborted or the conductor dropped.
    pub fn spawn_watchdog(&self) -> JoinHandle<()> {
        let store: Weak<Store> = Arc::downgrade(&self.store);
        let (clock, events, period, window) = (self.clock, self.events.clone(), self.interval / 2, self.window());
        tokio::spawn(async move {
            loop {
                let wake = {
                    let Some(store) = store.upgrade() else { return };
                    let now = clock.now_millis();
                    match store.mark_missing(now).await {
                        Ok(flagged) => report_missing(&events, &flagged, window),
                        Err(error) => tracing::error!(%error, "cannot check which agents are missing"),
                    }
                    let latest = now.saturating_add(period.as_millis() as Millis);
                    match store.next_deadline().await {
                        Ok(Some(deadline)) => deadline.saturating_add(1).min(latest),
                        Ok(None) => latest,
                        Err(error) => {
                            tracing::error!(%error, "cannot read when agents are due");
                            latest
                        }
                    }
                };
                tokio::time::sleep_until(clock.instant_at(wake)).await;
            }
        })
    }

    /// Fetches the inventory of the agent at `endpoint` in the background and stores it, or
    /// joins the fetch of it already under way; whoever needs the outcome awaits it.
    fn fetch(&self, endpoint: &Endpoint) -> Fetch {
        let mut fetching = lock(&self.fetching);
        if let Some(fetch) = fetching.get(endpoint) {
            return fetch.clone();
        }
        let (store, peers, registry, agent) =
            (self.store.clone(), self.peers.clone(), self.fetching.clone(), endpoint.clone());
        let fetch = async move {
            let outcome = fetch_inventory(&store, &peers, &agent).await;
            match &outcome {
                Ok(list) => tracing::debug!(endpoint = %agent, devices = list.hardware.len(), "inventory refreshed"),
                Err(failure) => {
                    tracing::warn!(endpoint = %agent, reason = %failure, "cannot refresh the agent's inventory")
                }
            }
            lock(&registry).remove(&agent);
            outcome
        }
        .boxed()
        .shared();
        fetching.insert(endpoint.clone(), fetch.clone());
        tokio::spawn(fetch.clone());
        fetch
    }

    /// Refreshes the inventory of the agent at `endpoint` in the background.
    fn refresh(&self, endpoint: &Endpoint) {
        drop(self.fetch(endpoint));
    }

    /// Starts discovery on the node of the agent at `agent` (`agent.start_discovery`, whether
    /// or not the agent is registered) and answers the state the agent answered. The run is
    /// recorded and followed as `conductor.start_discovery` does: published as
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

    /// The latest discovery run the conductor recorded for each agent (only the one at
    /// `agent` when given), by agent, as `conductor.discovery_status` answers: its state as
    /// last known, IN-PROGRESS while followed. Starts no run.
    pub async fn discovery_status(&self, agent: Option<&Endpoint>) -> Result<AgentDiscoveryList, StoreError> {
        let runs = self.store.latest_discoveries().await?;
        let agents = runs
            .into_iter()
            .filter(|run| agent.is_none_or(|only| *only == run.agent))
            .map(|run| AgentDiscovery { agent: run.agent, status: run.state })
            .collect();
        Ok(AgentDiscoveryList { agents })
    }

    /// Forgets the agent at `endpoint`: no longer listed, alarmed on or contacted (until it
    /// says hello again, which registers it anew). False when it was not registered.
    pub async fn deregister_agent(&self, endpoint: &Endpoint) -> Result<bool, StoreError> {
        let removed = self.store.deregister(endpoint).await?;
        if removed {
            tracing::info!(%endpoint, "agent deregistered");
        }
        Ok(removed)
    }

    /// After the agent at `agent` answered a trigger with `state`: records the run, and
    /// publishes it ended or follows it in progress (unless a follower already does, the
    /// trigger having joined the run it follows: then nothing is recorded).
    async fn follow(&self, agent: &Endpoint, state: DiscoveryState) {
        {
            let mut followed = lock(&self.followed);
            if followed.contains_key(agent) {
                // The follower sees this run's end (one answered ended here is the run it follows).
                return;
            }
            if state == DiscoveryState::InProgress {
                // Reserved while the run is recorded: a concurrent trigger joins it.
                followed.insert(agent.clone(), None);
            }
        }
        let run = match self.store.discovery_started(agent, &state, self.clock.now_millis()).await {
            Ok(id) => Some(id),
            Err(error) => {
                tracing::error!(endpoint = %agent, %error, "cannot record the discovery run");
                None
            }
        };
        if state != DiscoveryState::InProgress {
            discovery_finished(&self.finisher(), agent, state).await;
            return;
        }
        let (finisher, registry) = (self.finisher(), self.followed.clone());
        let (peers, poll, timeout, endpoint) =
            (self.peers.clone(), self.discovery_poll, self.discovery_timeout, agent.clone());
        let mut followed = lock(&self.followed);
        // Spawned with the lock held: the task cannot remove its entry before it is in.
        let task = tokio::spawn(async move {
            let ended = follow_run(&peers, &endpoint, poll, timeout).await;
            // Forgotten before publishing, so a trigger after the event follows the next run.
            lock(&registry).remove(&endpoint);
            if let Some(state) = ended {
                if let Some(id) = run {
                    if let Err(error) = finisher.store.discovery_ended(id, &state, finisher.clock.now_millis()).await {
                        tracing::error!(%endpoint, %error, "cannot record the end of the discovery run");
                    }
                }
                discovery_finished(&finisher, &endpoint, state).await;
            }
        });
        followed.insert(agent.clone(), Some(task.abort_handle()));
    }

    fn finisher(&self) -> Finisher {
        Finisher {
            store: self.store.clone(),
            clock: self.clock,
            peers: self.peers.clone(),
            events: self.events.clone(),
        }
    }
}

/// A `conductor.list_hardware` answer as JSON text and the inventories (the store's shared
/// copies, in order) it was assembled from.
struct Listing {
    from: Vec<Arc<HardwareList>>,
    text: Arc<RawValue>,
}

impl Listing {
    /// Whether it was assembled from exactly `inventories` (the same copies, so unchanged).
    fn is_of(&self, inventories: &[&Arc<HardwareList>]) -> bool {
        self.from.len() == inventories.len()
            && self.from.iter().zip(inventories).all(|(ours, theirs)| Arc::ptr_eq(ours, theirs))
    }
}

/// The devices of `inventories` (of the agents at their endpoints, in order), each uuid once:
/// a device listed again is logged and left out.
fn assemble<'a>(inventories: impl IntoIterator<Item = (&'a Endpoint, &'a HardwareList)>) -> HardwareList {
    let mut hardware = Vec::new();
    let mut uuids = BTreeSet::new();
    for (endpoint, list) in inventories {
        for device in &list.hardware {
            if uuids.insert(&device.uuid) {
                hardware.push(device.clone());
            } else {
                tracing::warn!(%endpoint, uuid = %device.uuid, "device listed twice; keeping the first");
            }
        }
    }
    HardwareList { hardware }
}

/// What publishing a run's end needs.
struct Finisher {
    store: Arc<Store>,
    clock: Clock,
    peers: Arc<Peers>,
    events: Publisher<ConductorEvent>,
}

/// An inventory fetch under way, shared by everyone waiting for it.
type Fetch = Shared<BoxFuture<'static, Result<Arc<HardwareList>, PeerFailure>>>;

/// Asks the agent at `endpoint` for its hardware and stores it (a store that fails is logged:
/// the inventory is still the answer, and is asked for again while it is not stored).
async fn fetch_inventory(store: &Store, peers: &Peers, endpoint: &Endpoint) -> Result<Arc<HardwareList>, PeerFailure> {
    let list = peers.call(endpoint, |client| async move { AgentClient::new(client).list_hardware().await }).await?;
    if let Err(error) = store.set_hardware(endpoint, &list).await {
        tracing::error!(%endpoint, %error, "cannot store the agent's inventory");
    }
    Ok(Arc::new(list))
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
/// the agent lists after a DONE run (none when it cannot be asked), which becomes its stored
/// inventory.
async fn discovery_finished(finisher: &Finisher, agent: &Endpoint, state: DiscoveryState) {
    let hardware = match state {
        // Fetched afresh, not joined to a fetch under way: that one began before the run ended.
        DiscoveryState::Done => match fetch_inventory(&finisher.store, &finisher.peers, agent).await {
            Ok(list) => Some(Arc::unwrap_or_clone(list)),
            Err(failure) => {
                tracing::warn!(endpoint = %agent, reason = %failure, "cannot list the hardware discovery found");
                None
            }
        },
        _ => None,
    };
    tracing::info!(endpoint = %agent, status = %state, "discovery finished");
    finisher.events.publish(ConductorEvent::DiscoveryFinished {
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
    /// The agents to contact at `now` (alive and READY; only the one at `only` when given),
    /// by endpoint, after flagging those found missing.
    async fn targets(&self, now: Millis, only: Option<&Endpoint>) -> Result<Vec<AgentRecord>, StoreError> {
        let records = self.agents(now).await?;
        Ok(records
            .into_iter()
            .filter(|record| record.alive(now) && record.status == ComponentStatus::Ready)
            .filter(|record| only.is_none_or(|only| *only == record.endpoint))
            .collect())
    }

    /// Records a hello and tells what it changed: registered, or back (after missing, noticed
    /// now if no sweep had), and refreshes the inventory when it may have changed.
    async fn record_hello(&self, registration: &AgentRegistration) -> Result<(), StoreError> {
        let now = self.clock.now_millis();
        let hello = Hello {
            endpoint: registration.endpoint.clone(),
            status: registration.status.clone(),
            protocol_version: registration.protocol_version.clone(),
            at: now,
            heartbeat: self.interval.as_millis() as Millis,
        };
        let previous = self.store.hello(&hello).await?;
        let current = hello.applied(previous.as_ref());
        let ready = current.status == ComponentStatus::Ready;
        let Some(previous) = previous else {
            tracing::info!(endpoint = %current.endpoint, "agent registered");
            self.events.publish(ConductorEvent::AgentRegistered { agent: agent_state(&current, now) });
            if ready {
                self.refresh(&current.endpoint);
            }
            return Ok(());
        };
        if !previous.missing && !previous.alive(now) {
            // Gone for longer than the window, though no sweep noticed yet: it went missing
            // all the same, and is noticed now.
            let mut flagged = previous.clone();
            flagged.missing = true;
            report_missing(&self.events, &[flagged], self.window());
        }
        if previous.missing || !previous.alive(now) {
            let missing_since = rfc3339_of_millis(previous.last_seen);
            tracing::info!(endpoint = %current.endpoint, %missing_since, "agent is back");
            self.events.publish(ConductorEvent::AgentBack { agent: agent_state(&current, now), missing_since });
            if ready {
                self.refresh(&current.endpoint);
            }
        } else if ready
            && (previous.status != ComponentStatus::Ready
                || previous.hardware.as_ref().is_none_or(|list| list.hardware.is_empty()))
        {
            self.refresh(&current.endpoint);
        }
        Ok(())
    }
}

impl Conductor {
    /// `conductor.list_hardware`'s answer as JSON text (its wire form, as the generated
    /// dispatcher writes it) when every agent it lists has a stored inventory: the text of the
    /// last answer while it was made of the very same inventories, else written now and kept.
    /// `None` when some inventory was never obtained (answering asks those agents first, as
    /// [`ConductorService::list_hardware`] does).
    pub async fn list_hardware_text(&self) -> Result<Option<Arc<RawValue>>, ServiceError> {
        let now = self.clock.now_millis();
        let targets = self.targets(now, None).await.map_err(internal)?;
        let known: Vec<&Arc<HardwareList>> = targets.iter().filter_map(|record| record.hardware.as_ref()).collect();
        if known.len() != targets.len() {
            return Ok(None);
        }
        if let Some(listing) = lock(&self.listing).as_ref().filter(|listing| listing.is_of(&known)) {
            return Ok(Some(listing.text.clone()));
        }
        let answer = assemble(targets.iter().zip(&known).map(|(record, list)| (&record.endpoint, list.as_ref())));
        let text: Arc<RawValue> = serde_json::value::to_raw_value(&answer.to_wire())
            .map_err(|error| ServiceError::Internal(format!("cannot write the hardware list: {error}")))?
            .into();
        let from = known.into_iter().cloned().collect();
        *lock(&self.listing) = Some(Listing { from, text: text.clone() });
        Ok(Some(text))
    }
}

/// `conductor.list_hardware`, the method [`ConductorHandler`] answers as text.
const LIST_HARDWARE: &str = "conductor.list_hardware";

/// The conductor as a JSON-RPC handler: the generated dispatcher ([`ConductorServer`]), except
/// that a request for `conductor.list_hardware` is answered with
/// [`Conductor::list_hardware_text`] when it has the answer as text. The caller's role and the
/// params are checked first, as the dispatcher checks them (the roles the schema gives the
/// method, the params against its JSON Schema); anything else, and that method when an
/// inventory was never obtained, is the dispatcher's.
pub struct ConductorHandler(ConductorServer<Conductor>);

impl ConductorHandler {
    /// The handler of `conductor`.
    pub fn new(conductor: Arc<Conductor>) -> Self {
        ConductorHandler(ConductorServer(conductor))
    }

    /// `conductor.list_hardware` as text, or as the dispatcher answers it.
    async fn list_hardware(&self, roles: &[&str], params: Params) -> Result<ResultJson, RpcError> {
        roles::check(LIST_HARDWARE, roles)?;
        let params = validate_params(JSON_SCHEMA, "conductor.list_hardware.params", params.into_named(&[])?)?;
        match self.0 .0.list_hardware_text().await {
            Ok(Some(text)) => Ok(ResultJson::Text(text)),
            Ok(None) => self.0.handle(LIST_HARDWARE, Params::ByName(params)).await.map(ResultJson::Value),
            Err(error) => Err(error.into_rpc(LIST_HARDWARE, &[])),
        }
    }
}

impl Handler for ConductorHandler {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        self.0.handle(method, params)
    }

    fn handle_json<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<ResultJson, RpcError>> {
        if method == LIST_HARDWARE {
            if let Some((_, roles)) = METHOD_ROLES.iter().find(|(name, _)| *name == LIST_HARDWARE) {
                return Box::pin(self.list_hardware(roles, params));
            }
        }
        self.0.handle_json(method, params)
    }

    fn methods(&self) -> Vec<&'static str> {
        self.0.methods()
    }
}

impl ConductorService for Conductor {
    async fn hello(&self, registration: AgentRegistration) -> Result<Answer<HelloAck>, ServiceError> {
        check_protocol(registration.protocol_version.as_deref())?;
        self.record_hello(&registration).await.map_err(internal)?;
        Ok(hello_ack(self.interval).into())
    }

    async fn list_hardware(&self) -> Result<Answer<HardwareList>, ServiceError> {
        let now = self.clock.now_millis();
        let targets = self.targets(now, None).await.map_err(internal)?;
        let known: Vec<&Arc<HardwareList>> = targets.iter().filter_map(|record| record.hardware.as_ref()).collect();
        if known.len() == targets.len() {
            // Every inventory known (over the wire, ConductorHandler answers from the text of
            // the last answer instead).
            let answer = assemble(targets.iter().zip(&known).map(|(record, list)| (&record.endpoint, list.as_ref())));
            return Ok(answer.into());
        }
        // Inventories never obtained are asked for now (or the fetch under way awaited).
        let unknown = targets.iter().filter(|record| record.hardware.is_none()).map(|record| {
            let fetch = self.fetch(&record.endpoint);
            async move { (record.endpoint.clone(), fetch.await) }
        });
        let mut fetched: BTreeMap<Endpoint, Result<Arc<HardwareList>, PeerFailure>> =
            futures_util::future::join_all(unknown).await.into_iter().collect();
        let mut inventories: Vec<(Endpoint, Arc<HardwareList>)> = Vec::new();
        let mut error = None;
        for record in targets {
            let list = match (record.hardware, fetched.remove(&record.endpoint)) {
                (Some(list), _) => list,
                (None, Some(Ok(list))) => list,
                (None, Some(Err(failure))) => {
                    // An agent's own error (DriverUnavailable, ...) goes into `reason` too.
                    error.get_or_insert(agent_unavailable(
                        record.endpoint,
                        rfc3339_of_millis(record.last_seen),
                        &failure,
                    ));
                    continue;
                }
                (None, None) => continue,
            };
            inventories.push((record.endpoint, list));
        }
        match error {
            Some(error) => Err(error.into()),
            None => Ok(assemble(inventories.iter().map(|(endpoint, list)| (endpoint, list.as_ref()))).into()),
        }
    }

    async fn discovery_status(&self, agent: Option<Endpoint>) -> Result<Answer<AgentDiscoveryList>, ServiceError> {
        Ok(Conductor::discovery_status(self, agent.as_ref()).await.map_err(internal)?.into())
    }

    async fn deregister(&self, endpoint: Endpoint) -> Result<Answer<Deregistration>, ServiceError> {
        let deregistered = self.deregister_agent(&endpoint).await.map_err(internal)?;
        Ok(Deregistration { endpoint, deregistered }.into())
    }

    async fn list_agents(&self) -> Result<Answer<AgentList>, ServiceError> {
        let now = self.clock.now_millis();
        let records = Conductor::agents(self, now).await.map_err(internal)?;
        let agents = records.iter().map(|record| agent_state(record, now)).collect();
        Ok(AgentList { agents }.into())
    }

    async fn start_discovery(&self, agent: Option<Endpoint>) -> Result<Answer<AgentDiscoveryList>, ServiceError> {
        let targets = self.targets(self.clock.now_millis(), agent.as_ref()).await.map_err(internal)?;
        let endpoints = targets.iter().map(|record| record.endpoint.clone()).collect();
        let outcomes =
            fan_out(&self.peers, endpoints, |client| async move { AgentClient::new(client).start_discovery().await })
                .await;
        let mut agents = Vec::new();
        let mut error = None;
        for (record, (_, outcome)) in targets.into_iter().zip(outcomes) {
            match outcome {
                Ok(status) => {
                    self.follow(&record.endpoint, status.status.clone()).await;
                    agents.push(AgentDiscovery { agent: record.endpoint, status: status.status });
                }
                Err(failure) => {
                    let last_seen = rfc3339_of_millis(record.last_seen);
                    error.get_or_insert(agent_unavailable(record.endpoint, last_seen, &failure));
                }
            }
        }
        match error {
            Some(error) => Err(error.into()),
            None => Ok(AgentDiscoveryList { agents }.into()),
        }
    }
}
