//! Sessions' quest logs and the numbered events their clients are told.

use sqlx::{AnyPool, Row};

use crate::db::error::DbError;
use crate::db::sessions::{MemoryRow, TurnRecord, TurnRow, insert_memory};

/// A change to a session's quests, recorded whole or not at all.
#[derive(Debug, Clone)]
pub struct QuestRecord {
    /// The session.
    pub session_id: String,
    /// The session's turn count the change was made on.
    pub turns: i64,
    /// The session's count of memory facts the change was made on (`memory` is numbered from
    /// it).
    pub memory_start: i64,
    /// The quest log (JSON), which replaces the stored one.
    pub player_state: String,
    /// New facts of the session's graph.
    pub memory: Vec<MemoryRow>,
    /// What the session's client is told: (kind, JSON body).
    pub events: Vec<(String, String)>,
    /// When.
    pub at_ms: i64,
}

/// A stored session event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    /// Its number in the session, from 0.
    pub seq: i64,
    /// What kind of event (`quest_offered`, ...).
    pub kind: String,
    /// Its JSON body.
    pub body: String,
    /// When it was recorded.
    pub created_ms: i64,
}

/// The quest log (`sessions.player_state`) and the `session_events` table.
#[derive(Clone)]
pub struct Quests {
    pool: AnyPool,
}

impl Quests {
    pub(crate) fn new(pool: AnyPool) -> Quests {
        Quests { pool }
    }

    /// Records a change to a session's quests whole or not at all: the quest log, its new
    /// memory facts and its events; returns the events' numbers. A conflict if the session
    /// moved on (a turn or another change recorded) since the change was made.
    pub async fn record(&self, record: &QuestRecord) -> Result<Vec<i64>, DbError> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE sessions SET player_state = $1, memory_facts = memory_facts + $2, \
             updated_ms = $3 WHERE id = $4 AND turns = $5 AND memory_facts = $6",
        )
        .bind(&record.player_state)
        .bind(i64::try_from(record.memory.len()).unwrap_or(i64::MAX))
        .bind(record.at_ms)
        .bind(&record.session_id)
        .bind(record.turns)
        .bind(record.memory_start)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Err(DbError::Conflict(format!(
                "session {} changed while its quests were updated (deleted, or a turn or \
                 another update was recorded first); nothing was recorded",
                record.session_id
            )));
        }
        let with_id = TurnRecord {
            session_id: record.session_id.clone(),
            turn: TurnRow::default(),
            memory: record.memory.clone(),
            ends_session: false,
            memory_start: record.memory_start,
        };
        insert_memory(&mut tx, &[&with_id]).await?;
        let next: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq) + 1, 0) AS next_seq FROM session_events \
             WHERE session_id = $1",
        )
        .bind(&record.session_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("next_seq")?;
        let seqs: Vec<i64> = (next..).take(record.events.len()).collect();
        for ((kind, body), seq) in record.events.iter().zip(&seqs) {
            sqlx::query(
                "INSERT INTO session_events (session_id, seq, kind, body, created_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&record.session_id)
            .bind(*seq)
            .bind(kind)
            .bind(body)
            .bind(record.at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(seqs)
    }

    /// Session `id`'s events after `after` (all with `None`), in order.
    pub async fn events(&self, id: &str, after: Option<i64>) -> Result<Vec<EventRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT seq, kind, body, created_ms FROM session_events \
             WHERE session_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(id)
        .bind(after.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await?)
    }
}
