//! The SQL backends: SQLite and PostgreSQL through sqlx, one query text for both (`$N`
//! placeholders, `ON CONFLICT`, `RETURNING`), run on whichever pool the state URL opened.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    str::FromStr,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use serde_json::Value;
use sqlx::{
    error::BoxDynError,
    migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous},
};
use vproto_api::{ComponentStatus, DiscoveryState, Endpoint, HardwareList};
use vproto_support::wire::{WirePath, WireValue};

use super::{AgentRecord, DiscoveryRun, Hello, Millis, StateUrl, StoreError};

/// The migrations of each dialect, in order: (version, description, SQL). Add a new one at the
/// end; never edit one a release shipped (the migrator checks their checksums).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "agents inventories discovery runs", include_str!("migrations/sqlite/0001_initial.sql"))];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "agents inventories discovery runs", include_str!("migrations/postgres/0001_initial.sql"))];

/// Migrations compiled into the binary, as sqlx's migrator reads them.
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(*version, (*description).into(), MigrationType::Simple, (*sql).into(), false)
                })
                .collect())
        })
    }
}

enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds (the same text for both).
macro_rules! on {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// A state database.
pub struct Sql {
    db: Db,
    url: String,
    /// Decoded inventories by agent endpoint, each with the exact stored text it was decoded
    /// from. Every read still fetches the rows (the database stays the truth: other conductors
    /// may write it); a row whose text equals the remembered one is not decoded and validated
    /// again, any other text is, and replaces the entry.
    inventories: Mutex<HashMap<String, Inventory>>,
}

/// An inventory as stored, and as decoded from that text.
struct Inventory {
    text: String,
    list: HardwareList,
}

const AGENT_COLUMNS: &str =
    "endpoint, status, protocol_version, first_seen_ms, last_seen_ms, heartbeat_ms, missing, hardware";

type AgentRow = (String, String, Option<String>, i64, i64, i64, bool, Option<String>);
type RunRow = (i64, String, String, i64, Option<i64>);

fn query_error(error: sqlx::Error) -> StoreError {
    StoreError::Query(error.to_string())
}

impl Sql {
    pub(super) async fn open(url: &StateUrl) -> Result<Self, StoreError> {
        let shown = url.to_string();
        let opening = |reason: String| StoreError::Open { url: shown.clone(), reason };
        let (db, migrations) = match url {
            StateUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| opening(format!("cannot create the directory {}: {e}", dir.display())))?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5));
                // One connection: SQLite has one writer at a time anyway, and a read-then-write
                // transaction never meets a concurrent writer.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await
                    .map_err(|e| opening(e.to_string()))?;
                (Db::Sqlite(pool), SQLITE_MIGRATIONS)
            }
            StateUrl::Postgres(text) => {
                let options = PgConnectOptions::from_str(text).map_err(|e| opening(e.to_string()))?;
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(|e| opening(e.to_string()))?;
                (Db::Postgres(pool), POSTGRES_MIGRATIONS)
            }
        };
        let known = migrations.last().map_or(0, |(version, _, _)| *version);
        let migrator = Migrator::new(Embedded(migrations))
            .await
            .map_err(|e| StoreError::Migrate { url: shown.clone(), reason: e.to_string() })?;
        on!(&db, pool => migrator.run(pool).await).map_err(|error| match error {
            MigrateError::VersionMissing(version) => StoreError::Newer { url: shown.clone(), version, known },
            other => StoreError::Migrate { url: shown.clone(), reason: other.to_string() },
        })?;
        Ok(Sql { db, url: shown, inventories: Mutex::default() })
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    fn inventories(&self) -> MutexGuard<'_, HashMap<String, Inventory>> {
        self.inventories.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stored inventory `text` of the agent at `endpoint`, decoded: from the memo when it
    /// holds this very text, else decoded, validated and remembered.
    fn inventory(&self, endpoint: &str, text: String) -> Result<HardwareList, StoreError> {
        if let Some(known) = self.inventories().get(endpoint).filter(|known| known.text == text) {
            return Ok(known.list.clone());
        }
        let invalid = |reason: String| StoreError::Invalid { endpoint: endpoint.to_string(), what: "hardware", reason };
        let value: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let list = HardwareList::from_wire(&value, &WirePath::root()).map_err(|e| invalid(e.to_string()))?;
        self.inventories().insert(endpoint.to_string(), Inventory { text, list: list.clone() });
        Ok(list)
    }

    /// The record a row holds (its inventory decoded through the memo).
    fn record(&self, row: AgentRow) -> Result<AgentRecord, StoreError> {
        let (endpoint_text, status, protocol_version, first_seen, last_seen, heartbeat, missing, hardware) = row;
        let hardware = hardware.map(|text| self.inventory(&endpoint_text, text)).transpose()?;
        Ok(AgentRecord {
            status: wire_text::<ComponentStatus>(&endpoint_text, "status", &status)?,
            endpoint: endpoint(&endpoint_text)?,
            protocol_version,
            first_seen,
            last_seen,
            heartbeat,
            missing,
            hardware,
        })
    }

    /// ` FOR UPDATE` where the dialect has it (PostgreSQL; SQLite's one connection serializes).
    fn for_update(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "",
            Db::Postgres(_) => " FOR UPDATE",
        }
    }

    pub(super) async fn hello(&self, hello: &Hello) -> Result<Option<AgentRecord>, StoreError> {
        let select = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE endpoint = $1{}", self.for_update());
        on!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(query_error)?;
            let inserted = sqlx::query(
                "INSERT INTO agents (endpoint, status, protocol_version, first_seen_ms, last_seen_ms, heartbeat_ms, missing) \
                 VALUES ($1, $2, $3, $4, $4, $5, FALSE) ON CONFLICT (endpoint) DO NOTHING",
            )
            .bind(hello.endpoint.as_str())
            .bind(hello.status.as_str())
            .bind(hello.protocol_version.as_deref())
            .bind(hello.at)
            .bind(hello.heartbeat)
            .execute(&mut *tx)
            .await
            .map_err(query_error)?
            .rows_affected();
            let previous = if inserted == 1 {
                None
            } else {
                let row: AgentRow =
                    sqlx::query_as(&select).bind(hello.endpoint.as_str()).fetch_one(&mut *tx).await.map_err(query_error)?;
                sqlx::query(
                    "UPDATE agents SET status = $2, protocol_version = $3, last_seen_ms = $4, heartbeat_ms = $5, \
                     missing = FALSE WHERE endpoint = $1",
                )
                .bind(hello.endpoint.as_str())
                .bind(hello.status.as_str())
                .bind(hello.protocol_version.as_deref())
                .bind(hello.at)
                .bind(hello.heartbeat)
                .execute(&mut *tx)
                .await
                .map_err(query_error)?;
                Some(row)
            };
            tx.commit().await.map_err(query_error)?;
            previous.map(|row| self.record(row)).transpose()
        })
    }

    pub(super) async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let select = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY endpoint");
        let rows: Vec<AgentRow> =
            on!(&self.db, pool => sqlx::query_as(&select).fetch_all(pool).await).map_err(query_error)?;
        // Forget the inventories of agents no longer stored (deregistered by another conductor).
        let stored: HashMap<&str, bool> = rows.iter().map(|row| (row.0.as_str(), row.7.is_some())).collect();
        self.inventories().retain(|endpoint, _| stored.get(endpoint.as_str()).copied().unwrap_or(false));
        rows.into_iter().map(|row| self.record(row)).collect()
    }

    pub(super) async fn mark_missing(&self, now: Millis) -> Result<Vec<AgentRecord>, StoreError> {
        let update = format!(
            "UPDATE agents SET missing = TRUE WHERE missing = FALSE AND last_seen_ms + {} * heartbeat_ms < $1 \
             RETURNING {AGENT_COLUMNS}",
            crate::roster::MISSED_HEARTBEATS
        );
        let mut rows: Vec<AgentRow> =
            on!(&self.db, pool => sqlx::query_as(&update).bind(now).fetch_all(pool).await).map_err(query_error)?;
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.into_iter().map(|row| self.record(row)).collect()
    }

    pub(super) async fn next_deadline(&self) -> Result<Option<Millis>, StoreError> {
        let select = format!(
            "SELECT MIN(last_seen_ms + {} * heartbeat_ms) FROM agents WHERE missing = FALSE",
            crate::roster::MISSED_HEARTBEATS
        );
        on!(&self.db, pool => sqlx::query_scalar::<_, Option<i64>>(&select).fetch_one(pool).await).map_err(query_error)
    }

    pub(super) async fn set_hardware(&self, endpoint: &Endpoint, hardware: &HardwareList) -> Result<bool, StoreError> {
        let text = hardware.to_wire().to_string();
        let updated = on!(&self.db, pool => sqlx::query("UPDATE agents SET hardware = $2 WHERE endpoint = $1")
            .bind(endpoint.as_str())
            .bind(&text)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(query_error)?;
        if updated == 1 {
            self.inventories().insert(endpoint.as_str().to_string(), Inventory { text, list: hardware.clone() });
        }
        Ok(updated == 1)
    }

    pub(super) async fn deregister(&self, endpoint: &Endpoint) -> Result<bool, StoreError> {
        let deleted = on!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(query_error)?;
            sqlx::query("DELETE FROM discovery_runs WHERE agent = $1")
                .bind(endpoint.as_str())
                .execute(&mut *tx)
                .await
                .map_err(query_error)?;
            let deleted = sqlx::query("DELETE FROM agents WHERE endpoint = $1")
                .bind(endpoint.as_str())
                .execute(&mut *tx)
                .await
                .map_err(query_error)?
                .rows_affected();
            tx.commit().await.map_err(query_error)?;
            deleted
        });
        self.inventories().remove(endpoint.as_str());
        Ok(deleted == 1)
    }

    pub(super) async fn discovery_started(
        &self,
        agent: &Endpoint,
        state: &DiscoveryState,
        started: Millis,
        finished: Option<Millis>,
    ) -> Result<i64, StoreError> {
        on!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "INSERT INTO discovery_runs (agent, state, started_ms, finished_ms) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(agent.as_str())
        .bind(state.as_str())
        .bind(started)
        .bind(finished)
        .fetch_one(pool)
        .await)
        .map_err(query_error)
    }

    pub(super) async fn discovery_ended(&self, id: i64, state: &DiscoveryState, at: Millis) -> Result<(), StoreError> {
        on!(&self.db, pool => sqlx::query("UPDATE discovery_runs SET state = $2, finished_ms = $3 WHERE id = $1")
            .bind(id)
            .bind(state.as_str())
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(query_error)
    }

    pub(super) async fn latest_discoveries(&self) -> Result<Vec<DiscoveryRun>, StoreError> {
        let select = "SELECT r.id, r.agent, r.state, r.started_ms, r.finished_ms FROM discovery_runs r \
                      JOIN (SELECT agent, MAX(id) AS id FROM discovery_runs GROUP BY agent) latest ON r.id = latest.id \
                      ORDER BY r.agent";
        let rows: Vec<RunRow> =
            on!(&self.db, pool => sqlx::query_as(select).fetch_all(pool).await).map_err(query_error)?;
        rows.into_iter()
            .map(|(id, agent, state, started, finished)| {
                Ok(DiscoveryRun {
                    id,
                    agent: endpoint(&agent)?,
                    state: wire_text(&agent, "discovery state", &state)?,
                    started,
                    finished,
                })
            })
            .collect()
    }
}

fn endpoint(text: &str) -> Result<Endpoint, StoreError> {
    Endpoint::new(text).map_err(|e| StoreError::Invalid {
        endpoint: text.to_string(),
        what: "endpoint",
        reason: e.to_string(),
    })
}

/// A stored wire string (a status, a discovery state) read with its generated type.
fn wire_text<T: WireValue>(endpoint: &str, what: &'static str, text: &str) -> Result<T, StoreError> {
    T::from_wire(&Value::String(text.to_string()), &WirePath::root()).map_err(|e| StoreError::Invalid {
        endpoint: endpoint.to_string(),
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hardware(uuid: &str) -> HardwareList {
        let value = serde_json::json!({"hardware": [{
            "uuid": uuid,
            "acc_specs": {"remote": false, "num": 1, "device_type": "GPU", "acc_capability": {"num": 1}},
            "acc_status": {"setup_required": false, "reboot_required": false}
        }]});
        HardwareList::from_wire(&value, &WirePath::root()).unwrap()
    }

    fn uuids(records: &[AgentRecord]) -> Vec<String> {
        records
            .iter()
            .flat_map(|record| record.hardware.iter().flat_map(|list| list.hardware.iter().map(|d| d.uuid.to_string())))
            .collect()
    }

    /// Two conductors sharing one database: what one writes, the other's next read answers,
    /// though it had the inventory before it remembered decoded.
    #[tokio::test]
    async fn a_changed_stored_inventory_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let url: StateUrl = format!("sqlite:{}", dir.path().join("state.db").display()).parse().unwrap();
        let (ours, theirs) = (Sql::open(&url).await.unwrap(), Sql::open(&url).await.unwrap());
        let agent = Endpoint::new("127.0.0.1:7001").unwrap();
        let hello = Hello {
            endpoint: agent.clone(),
            status: ComponentStatus::Ready,
            protocol_version: None,
            at: 1_000,
            heartbeat: 1_000,
        };
        ours.hello(&hello).await.unwrap();
        let (first, second) = ("6f1c2a54-0000-4000-8000-000000000001", "6f1c2a54-0000-4000-8000-000000000002");
        assert!(ours.set_hardware(&agent, &hardware(first)).await.unwrap());
        assert_eq!(uuids(&ours.agents().await.unwrap()), [first]);
        assert_eq!(uuids(&ours.agents().await.unwrap()), [first], "answered again from the memo");

        // The other conductor stores another inventory: ours answers it.
        assert!(theirs.set_hardware(&agent, &hardware(second)).await.unwrap());
        assert_eq!(uuids(&ours.agents().await.unwrap()), [second]);
        assert_eq!(uuids(&ours.mark_missing(i64::MAX).await.unwrap()), [second]);

        // A stored text that no longer decodes is reported, not hidden by the memo.
        on!(&theirs.db, pool => sqlx::query("UPDATE agents SET hardware = '{\"hardware\": 7}'").execute(pool).await.map(|_| ()))
            .unwrap();
        let error = ours.agents().await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid { what: "hardware", .. }), "{error}");

        // Forgotten by the other conductor: gone from ours, and from its memo.
        assert!(theirs.deregister(&agent).await.unwrap());
        assert!(ours.agents().await.unwrap().is_empty());
        assert!(ours.inventories().is_empty());
    }
}
