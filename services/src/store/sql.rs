//! The SQL backends: SQLite and PostgreSQL through sqlx, one query text for both (`$N`
//! placeholders, `ON CONFLICT`, `RETURNING`), run on whichever pool the state URL opened.
//!
//! # Revisions and the mirror
//!
//! Every transaction that writes agents takes the next value of the one-row `state_revision`
//! counter and stamps the rows it wrote with it (`revision`; `hardware_revision` too when it
//! wrote the inventory); a deregistration leaves the endpoint in `removed_agents` at its
//! revision (migration 2). Each store keeps a [`Mirror`]: every agent as read at some revision
//! R, with its inventory decoded. A read asks only what changed since R (one statement over
//! the `revision` indexes, the inventory text only of the rows whose `hardware_revision` is
//! past R) and applies it, so an unchanged inventory is neither read, decoded nor copied again.
//!
//! Architecture Invariant: revisions commit in the order they are taken, so the rows a
//! snapshot shows past R are all that changed since the snapshot that gave R. A transaction
//! bumps the counter after it locked (wrote) the rows it changes and before it commits, and
//! touches no other row after: the counter's row lock orders the commits (SQLite has one writer
//! at a time anyway) and cannot deadlock with the row locks. Several conductors on one
//! PostgreSQL each read the others' writes at their next read.

use std::{collections::BTreeMap, future::Future, pin::Pin, str::FromStr, sync::Arc, time::Duration};

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
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "agents inventories discovery runs", include_str!("migrations/sqlite/0001_initial.sql")),
    (2, "revisions", include_str!("migrations/sqlite/0002_revisions.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "agents inventories discovery runs", include_str!("migrations/postgres/0001_initial.sql")),
    (2, "revisions", include_str!("migrations/postgres/0002_revisions.sql")),
];

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
    /// The agents as last read. Reads are serialized by this lock (held across the query), so
    /// the changes of one read are applied before the next read asks what changed since.
    mirror: tokio::sync::Mutex<Mirror>,
}

/// Every agent as stored at `revision`, by endpoint.
#[derive(Default)]
struct Mirror {
    revision: i64,
    agents: BTreeMap<String, Mirrored>,
}

/// One agent of the [`Mirror`]: its record, and the revision of the inventory it holds.
struct Mirrored {
    hardware_revision: i64,
    record: AgentRecord,
}

const AGENT_COLUMNS: &str =
    "endpoint, status, protocol_version, first_seen_ms, last_seen_ms, heartbeat_ms, missing, hardware";

/// What changed since revision `$1`: the agents written since (their inventory text only when
/// it was written since), then the agents removed since (`removed` 1, the other columns empty).
const CHANGES: &str = "SELECT endpoint, status, protocol_version, first_seen_ms, last_seen_ms, heartbeat_ms, missing,      revision, hardware_revision, CASE WHEN hardware_revision > $1 THEN hardware END AS hardware,      CAST(0 AS BIGINT) AS removed FROM agents WHERE revision > $1      UNION ALL SELECT endpoint, '', NULL, 0, 0, 0, FALSE, revision, 0, NULL, CAST(1 AS BIGINT)      FROM removed_agents WHERE revision > $1";

/// Takes the next revision (locking the counter until the transaction ends).
const BUMP: &str = "UPDATE state_revision SET value = value + 1 WHERE id = 1 RETURNING value";

/// Stamps an agent's row with a revision (`$1` the endpoint, `$2` the revision), inventory included.
const STAMP_WITH_HARDWARE: &str = "UPDATE agents SET revision = $2, hardware_revision = $2 WHERE endpoint = $1";

/// Takes the next revision in the transaction `$tx` (the counter last, once the rows it stamps are
/// written or locked) and runs `$stamp` once per endpoint of `$endpoints`, `$1` the endpoint and
/// `$2` the revision. Written for both dialects' transactions, as `on!` expands its body twice.
macro_rules! stamp {
    ($tx:ident, $stamp:expr, $endpoints:expr) => {{
        let revision: i64 = sqlx::query_scalar(BUMP).fetch_one(&mut *$tx).await.map_err(query_error)?;
        for endpoint in $endpoints {
            sqlx::query($stamp).bind(endpoint).bind(revision).execute(&mut *$tx).await.map_err(query_error)?;
        }
    }};
}

type AgentRow = (String, String, Option<String>, i64, i64, i64, bool, Option<String>);
type ChangeRow = (String, String, Option<String>, i64, i64, i64, bool, i64, i64, Option<String>, i64);
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
        Ok(Sql { db, url: shown, mirror: tokio::sync::Mutex::default() })
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The record a row holds, its inventory decoded.
    fn record(row: AgentRow) -> Result<AgentRecord, StoreError> {
        let (endpoint_text, status, protocol_version, first_seen, last_seen, heartbeat, missing, hardware) = row;
        let hardware = hardware.map(|text| inventory(&endpoint_text, &text)).transpose()?;
        Ok(AgentRecord {
            status: wire_text::<ComponentStatus>(&endpoint_text, "status", &status)?,
            endpoint: endpoint(&endpoint_text)?,
            protocol_version,
            first_seen,
            last_seen,
            heartbeat,
            missing,
            hardware: hardware.map(Arc::new),
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
                "INSERT INTO agents (endpoint, status, protocol_version, first_seen_ms, last_seen_ms, heartbeat_ms, missing, \
                 revision, hardware_revision) VALUES ($1, $2, $3, $4, $4, $5, FALSE, 0, 0) ON CONFLICT (endpoint) DO NOTHING",
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
                // The new row is ours until the commit: stamp it.
                stamp!(tx, STAMP_WITH_HARDWARE, [hello.endpoint.as_str()]);
                None
            } else {
                let row: AgentRow =
                    sqlx::query_as(&select).bind(hello.endpoint.as_str()).fetch_one(&mut *tx).await.map_err(query_error)?;
                // The row is locked (read FOR UPDATE) before the counter is.
                let revision: i64 = sqlx::query_scalar(BUMP).fetch_one(&mut *tx).await.map_err(query_error)?;
                sqlx::query(
                    "UPDATE agents SET status = $2, protocol_version = $3, last_seen_ms = $4, heartbeat_ms = $5, \
                     missing = FALSE, revision = $6 WHERE endpoint = $1",
                )
                .bind(hello.endpoint.as_str())
                .bind(hello.status.as_str())
                .bind(hello.protocol_version.as_deref())
                .bind(hello.at)
                .bind(hello.heartbeat)
                .bind(revision)
                .execute(&mut *tx)
                .await
                .map_err(query_error)?;
                Some(row)
            };
            tx.commit().await.map_err(query_error)?;
            previous.map(Sql::record).transpose()
        })
    }

    /// Every agent as stored now: the mirror brought up to date with what changed since it
    /// was last read, and its records (inventories shared, not copied).
    pub(super) async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let mut mirror = self.mirror.lock().await;
        loop {
            let rows: Vec<ChangeRow> =
                on!(&self.db, pool => sqlx::query_as(CHANGES).bind(mirror.revision).fetch_all(pool).await)
                    .map_err(query_error)?;
            match mirror.apply(rows) {
                Ok(true) => break,
                // A change the mirror cannot follow (not expected: see the invariant): read
                // everything again.
                Ok(false) if mirror.revision > 0 => {
                    tracing::warn!(state = %self.url, "the conductor's copy of the state fell out of step; reading it all again");
                    *mirror = Mirror::default();
                }
                Ok(false) => return Err(StoreError::Query("the state changed while it was read in full".to_string())),
                Err(error) => {
                    // Not to be trusted after a row it could not apply: read all at the next read.
                    *mirror = Mirror::default();
                    return Err(error);
                }
            }
        }
        Ok(mirror.agents.values().map(|mirrored| mirrored.record.clone()).collect())
    }

    pub(super) async fn mark_missing(&self, now: Millis) -> Result<Vec<AgentRecord>, StoreError> {
        let update = format!(
            "UPDATE agents SET missing = TRUE WHERE missing = FALSE AND last_seen_ms + {} * heartbeat_ms < $1 \
             RETURNING {AGENT_COLUMNS}",
            crate::roster::MISSED_HEARTBEATS
        );
        let mut rows: Vec<AgentRow> = on!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(query_error)?;
            let rows: Vec<AgentRow> = sqlx::query_as(&update).bind(now).fetch_all(&mut *tx).await.map_err(query_error)?;
            if !rows.is_empty() {
                // The rows flagged are locked (written) before the counter is.
                stamp!(tx, "UPDATE agents SET revision = $2 WHERE endpoint = $1", rows.iter().map(|row| row.0.as_str()));
            }
            tx.commit().await.map_err(query_error)?;
            rows
        });
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.into_iter().map(Sql::record).collect()
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
        let updated = on!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(query_error)?;
            let updated = sqlx::query("UPDATE agents SET hardware = $2 WHERE endpoint = $1")
                .bind(endpoint.as_str())
                .bind(&text)
                .execute(&mut *tx)
                .await
                .map_err(query_error)?
                .rows_affected();
            if updated == 1 {
                stamp!(tx, STAMP_WITH_HARDWARE, [endpoint.as_str()]);
            }
            tx.commit().await.map_err(query_error)?;
            updated
        });
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
            if deleted == 1 {
                stamp!(
                    tx,
                    "INSERT INTO removed_agents (endpoint, revision) VALUES ($1, $2) \
                     ON CONFLICT (endpoint) DO UPDATE SET revision = excluded.revision",
                    [endpoint.as_str()]
                );
            }
            tx.commit().await.map_err(query_error)?;
            deleted
        });
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

impl Mirror {
    /// Applies what changed since `self.revision` (as [`CHANGES`] reads it): removals first,
    /// then the agents written, each keeping the inventory it had unless a newer one was read.
    /// False when a row refers to an inventory the mirror never read (it has to be read anew).
    fn apply(&mut self, rows: Vec<ChangeRow>) -> Result<bool, StoreError> {
        let since = self.revision;
        let (removed, written): (Vec<ChangeRow>, Vec<ChangeRow>) = rows.into_iter().partition(|row| row.10 == 1);
        for row in removed {
            self.agents.remove(&row.0);
            self.revision = self.revision.max(row.7);
        }
        for row in written {
            let (
                endpoint_text,
                status,
                protocol_version,
                first_seen,
                last_seen,
                heartbeat,
                missing,
                revision,
                hardware_revision,
                text,
                _,
            ) = row;
            let hardware = if hardware_revision > since {
                text.map(|text| inventory(&endpoint_text, &text).map(Arc::new)).transpose()?
            } else {
                match self.agents.get(&endpoint_text) {
                    Some(known) if known.hardware_revision == hardware_revision => known.record.hardware.clone(),
                    _ => return Ok(false),
                }
            };
            let record = AgentRecord {
                status: wire_text::<ComponentStatus>(&endpoint_text, "status", &status)?,
                endpoint: endpoint(&endpoint_text)?,
                protocol_version,
                first_seen,
                last_seen,
                heartbeat,
                missing,
                hardware,
            };
            self.agents.insert(endpoint_text, Mirrored { hardware_revision, record });
            self.revision = self.revision.max(revision);
        }
        Ok(true)
    }
}

/// A stored inventory text, decoded and validated.
fn inventory(endpoint: &str, text: &str) -> Result<HardwareList, StoreError> {
    let invalid = |reason: String| StoreError::Invalid { endpoint: endpoint.to_string(), what: "hardware", reason };
    let value: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    HardwareList::from_wire(&value, &WirePath::root()).map_err(|e| invalid(e.to_string()))
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
    /// though it had the agent and its inventory in its mirror already.
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
        let before = ours.agents().await.unwrap();
        assert_eq!(uuids(&before), [first], "answered again from the mirror");

        // A hello through the other conductor: ours reads the new last hello, and keeps the
        // inventory it had (the same one, not read or decoded again).
        theirs.hello(&Hello { at: 5_000, ..hello.clone() }).await.unwrap();
        let after = ours.agents().await.unwrap();
        assert_eq!((after[0].last_seen, after[0].first_seen), (5_000, 1_000));
        assert!(Arc::ptr_eq(before[0].hardware.as_ref().unwrap(), after[0].hardware.as_ref().unwrap()));

        // The other conductor stores another inventory: ours answers it.
        assert!(theirs.set_hardware(&agent, &hardware(second)).await.unwrap());
        assert_eq!(uuids(&ours.agents().await.unwrap()), [second]);
        assert_eq!(uuids(&ours.mark_missing(i64::MAX).await.unwrap()), [second]);

        // A stored text that no longer decodes is reported, not hidden by the mirror.
        on!(&theirs.db, pool => {
            sqlx::query("UPDATE state_revision SET value = value + 1").execute(pool).await.unwrap();
            sqlx::query(
                "UPDATE agents SET hardware = '{\"hardware\": 7}', revision = (SELECT value FROM state_revision), \
                 hardware_revision = (SELECT value FROM state_revision)",
            )
            .execute(pool)
            .await
            .unwrap();
        });
        let error = ours.agents().await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid { what: "hardware", .. }), "{error}");

        // Forgotten by the other conductor: gone from ours, and from its mirror.
        assert!(theirs.deregister(&agent).await.unwrap());
        assert!(ours.agents().await.unwrap().is_empty());
        assert!(ours.mirror.lock().await.agents.is_empty());

        // Forgotten and registered again between two reads: ours lists it anew, without the
        // inventory it had.
        ours.hello(&hello).await.unwrap();
        assert!(ours.set_hardware(&agent, &hardware(first)).await.unwrap());
        assert_eq!(uuids(&ours.agents().await.unwrap()), [first]);
        assert!(theirs.deregister(&agent).await.unwrap());
        theirs.hello(&Hello { at: 9_000, ..hello.clone() }).await.unwrap();
        let again = ours.agents().await.unwrap();
        assert_eq!((again.len(), again[0].first_seen, again[0].hardware.is_none()), (1, 9_000, true));
    }
}
