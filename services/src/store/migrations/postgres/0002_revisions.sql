-- The conductor's state, version 2 (PostgreSQL): revisions, so a conductor reads only what changed
-- since its last read. Every transaction that writes agents takes the next value of
-- state_revision and stamps the rows it wrote with it (revision; hardware_revision too when
-- it wrote the inventory); a deregistered agent leaves its endpoint in removed_agents at the
-- revision of its removal. Rows written before this migration are at revision 1.
CREATE TABLE state_revision (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO state_revision (id, value) VALUES (1, 1);

ALTER TABLE agents ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
ALTER TABLE agents ADD COLUMN hardware_revision BIGINT NOT NULL DEFAULT 1;
CREATE INDEX agents_by_revision ON agents (revision);

CREATE TABLE removed_agents (
    endpoint TEXT PRIMARY KEY NOT NULL,
    revision BIGINT NOT NULL
);
CREATE INDEX removed_agents_by_revision ON removed_agents (revision);
