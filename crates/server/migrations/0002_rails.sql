-- The input rail's decisions on each turn (JSON array; empty when it allowed the line), and
-- the time a session was ended by the rails (no turn is accepted after it).
ALTER TABLE turns ADD COLUMN rails TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sessions ADD COLUMN ended_ms BIGINT;
