-- What a session's client is told happened, in order: quests offered, answered, advanced,
-- completed or failed, and game events recorded (JSON bodies). An SSE client resumes from the
-- last seq it saw; the quest log itself is sessions.player_state.
CREATE TABLE session_events (
    session_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
