-- Portable across SQLite and PostgreSQL: TEXT and BIGINT only, times in Unix milliseconds.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    label TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    revoked_ms BIGINT
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    owner_key TEXT NOT NULL,
    player TEXT NOT NULL,
    production TEXT NOT NULL,
    character_iri TEXT NOT NULL,
    beat BIGINT,
    at_label TEXT,
    conversation TEXT,
    turns BIGINT NOT NULL,
    memory_facts BIGINT NOT NULL,
    player_state TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX sessions_by_owner ON sessions (owner_key, player);
CREATE INDEX sessions_by_tenant ON sessions (tenant, player);
CREATE UNIQUE INDEX sessions_by_conversation ON sessions (owner_key, conversation);

-- One row per completed turn: the player's line and the reply, written in one transaction.
CREATE TABLE turns (
    session_id TEXT NOT NULL,
    turn BIGINT NOT NULL,
    input TEXT NOT NULL,
    reply TEXT NOT NULL,
    recalled TEXT NOT NULL,
    facts_used TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (session_id, turn)
);

-- The session's own graph: what the player said and what happened, as facts.
CREATE TABLE memory (
    session_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    line BIGINT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    entities TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
