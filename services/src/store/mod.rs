//! The conductor's state: the agents that registered (endpoint, status, protocol version,
//! first and last hello, whether the missing-agent alarm was raised), each agent's hardware
//! inventory as last reported, and the discovery runs the conductor started with their outcome.
//!
//! Three backends behind one [`Store`]:
//! - `sqlite:PATH` ([`StateUrl::Sqlite`]), embedded, for one conductor: the default of
//!   `vproto serve conductor`. One connection in WAL mode with `synchronous=NORMAL`: a
//!   transaction that committed survives the process being killed (SIGKILL), and a crash never
//!   leaves half a transaction; a power loss may lose the last commits, never corrupt the file.
//! - `postgres://...` ([`StateUrl::Postgres`]), for several conductors sharing one state: any of
//!   them answers, and a row lock (`SELECT ... FOR UPDATE`) or a conditional `UPDATE` makes each
//!   change of an agent (registered, missing, back) happen, and be published, once.
//! - in memory ([`Store::memory`]), what [`Conductor::new`](crate::conductor::Conductor::new)
//!   uses in process (tests, `vproto conform --reference`): the same operations on a map.
//!
//! The SQL schema is versioned: migrations (`store/migrations/{sqlite,postgres}/NNNN_*.sql`,
//! embedded in the binary) run at [`Store::open`] through sqlx's migrator, which records them
//! in `_sqlx_migrations`; a database carrying a migration this binary does not know was written
//! by a newer vproto and is refused ([`StoreError::Newer`]).
//!
//! Times are milliseconds since the Unix epoch ([`Millis`]), as the conductor's clock reads them.

mod memory;
mod sql;

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc};

use vproto_api::{ComponentStatus, DiscoveryState, Endpoint, HardwareList};

use crate::roster::MISSED_HEARTBEATS;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Where the conductor keeps its state: `sqlite:PATH` or `postgres://...` (`postgresql://`).
#[derive(Clone, PartialEq, Eq)]
pub enum StateUrl {
    /// An SQLite database file, created when missing (with its directory).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://[USER[:PASSWORD]@]HOST[:PORT]/DB[?...]`).
    Postgres(String),
}

impl FromStr for StateUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!("`{text}`: sqlite: needs a file path, as sqlite:/var/lib/vproto/conductor.db"));
            }
            return Ok(StateUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StateUrl::Postgres(text.to_string()));
        }
        Err(format!(
            "`{text}` is not a state URL: expected sqlite:PATH or postgres://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE"
        ))
    }
}

impl fmt::Display for StateUrl {
    /// The URL, a PostgreSQL password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StateUrl::Postgres(url) => f.write_str(&without_password(url)),
        }
    }
}

impl fmt::Debug for StateUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `url` with the password of its user info (`user:password@`) replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

/// Why the state could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or created.
    #[error("cannot open the conductor state {url}: {reason}")]
    Open {
        /// The state URL (without password).
        url: String,
        /// The driver's message.
        reason: String,
    },
    /// The database carries a migration this binary does not know.
    #[error(
        "the conductor state {url} was written by a newer vproto: it has schema migration {version}, this binary knows \
         migrations 1 to {known}; refusing to use it (run the newer vproto, or give another --state)"
    )]
    Newer {
        /// The state URL (without password).
        url: String,
        /// The unknown migration.
        version: i64,
        /// The newest migration this binary has.
        known: i64,
    },
    /// A migration could not be applied.
    #[error("cannot migrate the conductor state {url}: {reason}")]
    Migrate {
        /// The state URL (without password).
        url: String,
        /// The migrator's message.
        reason: String,
    },
    /// A query failed.
    #[error("conductor state: {0}")]
    Query(String),
    /// A stored value is not what the schema allows (written by hand, or by another program).
    #[error("conductor state: {what} of agent {endpoint}: {reason}")]
    Invalid {
        /// The agent the row is about.
        endpoint: String,
        /// The column.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// One agent as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRecord {
    /// Where it listens; it identifies the agent.
    pub endpoint: Endpoint,
    /// The status of its last hello.
    pub status: ComponentStatus,
    /// The protocol version its last hello declared, if it declared one.
    pub protocol_version: Option<String>,
    /// Its first hello.
    pub first_seen: Millis,
    /// Its last hello.
    pub last_seen: Millis,
    /// The heartbeat interval its last hello was given, in milliseconds.
    pub heartbeat: Millis,
    /// Whether it was found missing (and the alarm raised) since its last hello.
    pub missing: bool,
    /// Its hardware as last reported, if it ever was: shared, not copied, by the records a
    /// store answers while it does not change.
    pub hardware: Option<Arc<HardwareList>>,
}

impl AgentRecord {
    /// The last moment it counts as alive: [`MISSED_HEARTBEATS`] intervals after its last hello.
    pub fn deadline(&self) -> Millis {
        self.last_seen.saturating_add(self.heartbeat.saturating_mul(i64::from(MISSED_HEARTBEATS)))
    }

    /// Whether it is alive at `now`.
    pub fn alive(&self, now: Millis) -> bool {
        now <= self.deadline()
    }
}

/// A hello to record.
#[derive(Clone, Debug)]
pub struct Hello {
    /// The agent's endpoint.
    pub endpoint: Endpoint,
    /// The status it reports.
    pub status: ComponentStatus,
    /// The protocol version it declares, if any.
    pub protocol_version: Option<String>,
    /// When it arrived.
    pub at: Millis,
    /// The heartbeat interval it is given, in milliseconds.
    pub heartbeat: Millis,
}

impl Hello {
    /// The record after this hello, given the one before (if any): first seen, missing flag
    /// cleared, inventory kept.
    pub fn applied(&self, previous: Option<&AgentRecord>) -> AgentRecord {
        AgentRecord {
            endpoint: self.endpoint.clone(),
            status: self.status.clone(),
            protocol_version: self.protocol_version.clone(),
            first_seen: previous.map_or(self.at, |p| p.first_seen),
            last_seen: self.at,
            heartbeat: self.heartbeat,
            missing: false,
            hardware: previous.and_then(|p| p.hardware.clone()),
        }
    }
}

/// One discovery run the conductor started on an agent.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveryRun {
    /// Its number, increasing with each run recorded.
    pub id: i64,
    /// The agent whose node runs it.
    pub agent: Endpoint,
    /// Its state: as the agent answered the trigger, then as it ended.
    pub state: DiscoveryState,
    /// When it was triggered.
    pub started: Millis,
    /// When it was seen to end, if it was.
    pub finished: Option<Millis>,
}

/// The conductor's state, in one of its backends.
pub enum Store {
    /// In memory, lost with the process.
    Memory(memory::Memory),
    /// SQLite or PostgreSQL.
    Sql(sql::Sql),
}

impl Store {
    /// A store in memory: empty, and gone with the process.
    pub fn memory() -> Self {
        Store::Memory(memory::Memory::default())
    }

    /// Opens (creating when needed) the database at `url` and brings its schema up to date;
    /// refuses one written by a newer vproto.
    pub async fn open(url: &StateUrl) -> Result<Self, StoreError> {
        sql::Sql::open(url).await.map(Store::Sql)
    }

    /// What the store is, for logs: `memory`, or the URL without password.
    pub fn describe(&self) -> String {
        match self {
            Store::Memory(_) => "memory".to_string(),
            Store::Sql(sql) => sql.url().to_string(),
        }
    }

    /// Records `hello` (inserting the agent, or updating it: status, protocol version, last
    /// seen, heartbeat, missing flag cleared) and answers the record as it was before, `None`
    /// for a first hello. Atomic: of concurrent hellos of one agent, each sees the one before.
    pub async fn hello(&self, hello: &Hello) -> Result<Option<AgentRecord>, StoreError> {
        match self {
            Store::Memory(memory) => Ok(memory.hello(hello)),
            Store::Sql(sql) => sql.hello(hello).await,
        }
    }

    /// Every agent, by endpoint.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        match self {
            Store::Memory(memory) => Ok(memory.agents()),
            Store::Sql(sql) => sql.agents().await,
        }
    }

    /// Flags missing every agent not yet flagged whose deadline is before `now`, and answers
    /// those it flagged (each agent's absence is flagged once, by one caller).
    pub async fn mark_missing(&self, now: Millis) -> Result<Vec<AgentRecord>, StoreError> {
        match self {
            Store::Memory(memory) => Ok(memory.mark_missing(now)),
            Store::Sql(sql) => sql.mark_missing(now).await,
        }
    }

    /// The earliest deadline of the agents not flagged missing.
    pub async fn next_deadline(&self) -> Result<Option<Millis>, StoreError> {
        match self {
            Store::Memory(memory) => Ok(memory.next_deadline()),
            Store::Sql(sql) => sql.next_deadline().await,
        }
    }

    /// Records `hardware` as the inventory of the agent at `endpoint`; false when no such
    /// agent is registered.
    pub async fn set_hardware(&self, endpoint: &Endpoint, hardware: &HardwareList) -> Result<bool, StoreError> {
        match self {
            Store::Memory(memory) => Ok(memory.set_hardware(endpoint, hardware)),
            Store::Sql(sql) => sql.set_hardware(endpoint, hardware).await,
        }
    }

    /// Forgets the agent at `endpoint` (and its discovery runs); false when it was not registered.
    pub async fn deregister(&self, endpoint: &Endpoint) -> Result<bool, StoreError> {
        match self {
            Store::Memory(memory) => Ok(memory.deregister(endpoint)),
            Store::Sql(sql) => sql.deregister(endpoint).await,
        }
    }

    /// Records a discovery run triggered on `agent` at `at`, answered `state`; answers its id.
    pub async fn discovery_started(
        &self,
        agent: &Endpoint,
        state: &DiscoveryState,
        at: Millis,
    ) -> Result<i64, StoreError> {
        let finished = (*state != DiscoveryState::InProgress).then_some(at);
        match self {
            Store::Memory(memory) => Ok(memory.discovery_started(agent, state, at, finished)),
            Store::Sql(sql) => sql.discovery_started(agent, state, at, finished).await,
        }
    }

    /// Records that the run `id` ended `state` at `at`.
    pub async fn discovery_ended(&self, id: i64, state: &DiscoveryState, at: Millis) -> Result<(), StoreError> {
        match self {
            Store::Memory(memory) => {
                memory.discovery_ended(id, state, at);
                Ok(())
            }
            Store::Sql(sql) => sql.discovery_ended(id, state, at).await,
        }
    }

    /// The latest run of each agent, by agent.
    pub async fn latest_discoveries(&self) -> Result<Vec<DiscoveryRun>, StoreError> {
        match self {
            Store::Memory(memory) => Ok(memory.latest_discoveries()),
            Store::Sql(sql) => sql.latest_discoveries().await,
        }
    }
}
