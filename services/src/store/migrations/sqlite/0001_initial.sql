-- The conductor's state, version 1 (SQLite). Times are milliseconds since the Unix epoch.
CREATE TABLE agents (
    endpoint TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL,
    protocol_version TEXT,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    missing BOOLEAN NOT NULL DEFAULT FALSE,
    -- The agent's HardwareList as last reported (wire JSON), NULL until it was.
    hardware TEXT
);

CREATE TABLE discovery_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent TEXT NOT NULL,
    state TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT
);

CREATE INDEX discovery_runs_by_agent ON discovery_runs (agent, id);
