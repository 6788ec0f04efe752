-- The writers' room. A proposal is material that would change canon (a session's fact, an
-- import, a generated character) waiting for a writer: its change as N-Quads, the commit it
-- was drafted against, where it came from and what the rails said. Deciding it is recorded
-- here; accepting it is also a commit of canon. The audit log keeps every decision and every
-- change of canon made through the server.
CREATE TABLE proposals (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    production TEXT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    source TEXT NOT NULL,
    additions TEXT NOT NULL,
    removals TEXT NOT NULL,
    base TEXT NOT NULL,
    rails TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    reviewer TEXT,
    commit_id TEXT,
    created_ms BIGINT NOT NULL,
    decided_ms BIGINT
);
CREATE INDEX proposals_by_tenant ON proposals (tenant, status, created_ms);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX audit_by_tenant ON audit_log (tenant, created_ms);
