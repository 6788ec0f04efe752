//! Sessions, their transcripts and their memory; turns are recorded by one writer task that
//! commits whatever turns are waiting in one transaction (group commit): each turn is durable
//! before its final event is sent, and the cost of a commit (an fsync) is shared by every turn
//! that arrived meanwhile.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use lore_canon::consent::LikenessUse;
use lore_engine::LikenessScope;
use sqlx::pool::PoolConnection;
use sqlx::{AnyConnection, AnyPool, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::db::error::DbError;

/// Most turns one group commit writes.
const MAX_BATCH: usize = 256;

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    /// Its id.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// The key that created it (its owner).
    pub owner_key: String,
    /// The integrator's id for the player.
    pub player: String,
    /// The production's IRI.
    pub production: String,
    /// The speaking character's IRI.
    #[sqlx(rename = "character_iri")]
    pub character: String,
    /// Story time: the beat's order.
    pub beat: Option<i64>,
    /// Story time as the client named it.
    #[sqlx(rename = "at_label")]
    pub at: Option<String>,
    /// For OpenAI-compatible clients: the conversation this session stands for.
    pub conversation: Option<String>,
    /// Completed turns.
    pub turns: i64,
    /// Facts in the session's graph.
    pub memory_facts: i64,
    /// The player's state (JSON object), for the player model.
    pub player_state: String,
    /// Created at.
    pub created_ms: i64,
    /// Last changed at.
    pub updated_ms: i64,
    /// When the rails ended it; no turn is accepted after.
    pub ended_ms: Option<i64>,
    /// What the client uses the replies as, space-separated (`text voice`).
    pub likeness_uses: String,
    /// The audience's territory, when the client said.
    pub territory: Option<String>,
}

impl SessionRow {
    /// What the session's client asked to do with the character's likeness.
    pub fn likeness(&self) -> LikenessScope {
        LikenessScope::new(
            self.likeness_uses
                .split_whitespace()
                .filter_map(LikenessUse::parse),
            self.territory.clone(),
        )
    }

    /// How `likeness_uses` stores a scope's uses: their names, space-separated.
    pub fn uses_column(scope: &LikenessScope) -> String {
        let names: Vec<&str> = scope.uses.iter().map(|u| u.name()).collect();
        names.join(" ")
    }
}

/// A stored turn.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct TurnRow {
    /// Its index in the session, from 0.
    pub turn: i64,
    /// What the player said.
    pub input: String,
    /// The reply.
    pub reply: String,
    /// Facts written into the player's line of the prompt (JSON array of strings).
    pub recalled: String,
    /// IRIs of the facts the reply is grounded in (JSON array of strings).
    pub facts_used: String,
    /// When it was recorded.
    pub created_ms: i64,
    /// The input rail's decisions (JSON array; empty when the line was allowed).
    pub rails: String,
    /// The output rail's report (JSON object).
    pub output_rail: String,
    /// The reply's signed provenance record (JSON), when the server signs.
    pub provenance: Option<String>,
}

/// A stored fact of a session's graph.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemoryRow {
    /// Its number in the session's graph.
    pub seq: i64,
    /// The transcript line it came from.
    pub line: i64,
    /// `said`, `name` or `event`.
    pub kind: String,
    /// The sentence.
    pub text: String,
    /// IRIs of the canon entities it names, space-separated.
    pub entities: String,
}

/// One turn to record, with what it adds to the session's graph.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    /// The session.
    pub session_id: String,
    /// The turn row; its `turn` must equal the session's count of turns so far.
    pub turn: TurnRow,
    /// New facts of the session's graph.
    pub memory: Vec<MemoryRow>,
    /// Whether this turn ends the session.
    pub ends_session: bool,
    /// The session's count of memory facts the turn was planned on: its new facts are
    /// numbered from it, so a quest update recorded since makes the turn stale.
    pub memory_start: i64,
}

type Ack = oneshot::Sender<Result<(), DbError>>;

const SESSION_COLUMNS: &str = "id, tenant, owner_key, player, production, character_iri, beat, \
     at_label, conversation, turns, memory_facts, player_state, created_ms, updated_ms, ended_ms, \
     likeness_uses, territory";

/// The `sessions`, `turns` and `memory` tables, and the turn writer.
#[derive(Clone)]
pub struct Sessions {
    pool: AnyPool,
    writer: mpsc::Sender<(TurnRecord, Ack)>,
}

impl Sessions {
    /// Starts the turn writer over `pool`. Must be called inside a Tokio runtime.
    pub(crate) fn new(pool: AnyPool) -> Sessions {
        let (writer, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_turns(pool.clone(), jobs));
        Sessions { pool, writer }
    }

    /// Returns once the turn writer has stopped (after the pool closed), so that no turn is
    /// committed later.
    pub(crate) async fn writer_stopped(&self) {
        self.writer.closed().await;
    }

    /// Stores a new session.
    pub async fn insert(&self, s: &SessionRow) -> Result<(), DbError> {
        sqlx::query(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ))
        .bind(&s.id)
        .bind(&s.tenant)
        .bind(&s.owner_key)
        .bind(&s.player)
        .bind(&s.production)
        .bind(&s.character)
        .bind(s.beat)
        .bind(&s.at)
        .bind(&s.conversation)
        .bind(s.turns)
        .bind(s.memory_facts)
        .bind(&s.player_state)
        .bind(s.created_ms)
        .bind(s.updated_ms)
        .bind(s.ended_ms)
        .bind(&s.likeness_uses)
        .bind(&s.territory)
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                DbError::Conflict(format!("session {} already exists", s.id))
            }
            other => other.into(),
        })?;
        Ok(())
    }

    /// The session `id`.
    pub async fn get(&self, id: &str) -> Result<Option<SessionRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The session that key `owner` opened for OpenAI-compatible `conversation`.
    pub async fn for_conversation(
        &self,
        owner: &str,
        conversation: &str,
    ) -> Result<Option<SessionRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE owner_key = $1 AND conversation = $2"
        ))
        .bind(owner)
        .bind(conversation)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Sessions of `tenant`, only those `owner` opened when given, only `player`'s when
    /// given; newest first, at most `limit`.
    pub async fn list(
        &self,
        tenant: &str,
        owner: Option<&str>,
        player: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SessionRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant = $1 \
             AND ($2 IS NULL OR owner_key = $2) AND ($3 IS NULL OR player = $3) \
             ORDER BY created_ms DESC, id LIMIT $4"
        ))
        .bind(tenant)
        .bind(owner)
        .bind(player)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes session `id` with its turns and memory, in one transaction.
    pub async fn delete(&self, id: &str) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM turns WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM memory WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM session_events WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Turns of session `id` numbered within `range`, in order.
    pub async fn turns(&self, id: &str, range: Range<i64>) -> Result<Vec<TurnRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT turn, input, reply, recalled, facts_used, created_ms, rails, output_rail, \
             provenance FROM turns \
             WHERE session_id = $1 AND turn >= $2 AND turn < $3 ORDER BY turn",
        )
        .bind(id)
        .bind(range.start)
        .bind(range.end)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The facts of session `id`'s graph, in order.
    pub async fn memory(&self, id: &str) -> Result<Vec<MemoryRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT seq, line, kind, text, entities FROM memory WHERE session_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a turn whole or not at all; returns once it is committed.
    pub async fn record_turn(&self, record: TurnRecord) -> Result<(), DbError> {
        let (ack, done) = oneshot::channel();
        self.writer
            .send((record, ack))
            .await
            .map_err(|_| DbError::Unavailable("the turn writer has stopped".into()))?;
        done.await
            .map_err(|_| DbError::Unavailable("the turn writer has stopped".into()))?
    }
}

/// The group-commit loop: takes every turn waiting, writes them in one transaction.
async fn write_turns(pool: AnyPool, mut jobs: mpsc::Receiver<(TurnRecord, Ack)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The writer keeps one connection between commits: taking one from the pool costs a
    // round trip (the pool's liveness ping) in every commit. One that failed is dropped, so
    // the next commit connects afresh (a database that went down and came back). The pool's
    // close waits for it, so the writer stops when the pool closes; turns sent after that
    // find the writer gone (`DbError::Unavailable`).
    let mut held: Option<PoolConnection<sqlx::Any>> = None;
    let closed = pool.close_event();
    tokio::pin!(closed);
    loop {
        let received = tokio::select! {
            received = jobs.recv_many(&mut batch, MAX_BATCH) => received,
            () = &mut closed => 0,
        };
        if received == 0 {
            return;
        }
        let conn = match held.take() {
            Some(conn) => Ok(conn),
            None => pool.acquire().await,
        };
        let outcome = match conn {
            Ok(mut conn) => {
                let outcome = commit(&mut conn, &batch).await;
                if outcome.is_ok() {
                    held = Some(conn);
                }
                outcome
            }
            Err(e) => Err(DbError::from(e)),
        };
        match outcome {
            Ok(results) => {
                for ((_, ack), result) in batch.drain(..).zip(results) {
                    let _ = ack.send(result);
                }
            }
            Err(e) => {
                let message = e.to_string();
                let unavailable = matches!(e, DbError::Unavailable(_));
                for (_, ack) in batch.drain(..) {
                    let _ = ack.send(Err(if unavailable {
                        DbError::Unavailable(message.clone())
                    } else {
                        DbError::Other(message.clone())
                    }));
                }
            }
        }
    }
}

/// Writes `batch` in one transaction: one statement advances every session, one inserts
/// every turn, one inserts every memory fact (a few more for a very large batch). A turn whose
/// session moved on (or vanished) since it was planned is skipped with a conflict; the others
/// commit.
async fn commit(
    conn: &mut AnyConnection,
    batch: &[(TurnRecord, Ack)],
) -> Result<Vec<Result<(), DbError>>, DbError> {
    let records: Vec<&TurnRecord> = batch.iter().map(|(record, _)| record).collect();
    let mut tx = conn.begin().await?;
    let mut advanced = vec![false; records.len()];
    // A session twice in one batch (two replicas racing) is advanced once per round, so each
    // turn's guard is checked against the count its predecessor left.
    let mut pending: Vec<usize> = (0..records.len()).collect();
    while !pending.is_empty() {
        let mut seen = HashSet::new();
        let (round, later): (Vec<usize>, Vec<usize>) = pending
            .into_iter()
            .partition(|&i| seen.insert(records[i].session_id.as_str()));
        let moved = advance_sessions(&mut tx, &round, &records).await?;
        for i in round {
            let record = records[i];
            advanced[i] = moved.get(record.session_id.as_str()) == Some(&record.turn.turn);
        }
        pending = later;
    }
    let kept: Vec<&TurnRecord> = records
        .iter()
        .zip(&advanced)
        .filter_map(|(record, &ok)| ok.then_some(*record))
        .collect();
    insert_turns(&mut tx, &kept).await?;
    insert_memory(&mut tx, &kept).await?;
    tx.commit().await?;
    Ok(records
        .iter()
        .zip(advanced)
        .map(|(record, ok)| {
            if ok {
                Ok(())
            } else {
                Err(DbError::Conflict(format!(
                    "session {} changed while turn {} was generated (deleted, or another turn \
                     was recorded first); the turn was not recorded",
                    record.session_id, record.turn.turn
                )))
            }
        })
        .collect())
}

/// Most bound parameters in one statement: under SQLite's (32,766) and PostgreSQL's (65,535).
const MAX_PARAMETERS: usize = 30_000;

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` parameters.
fn placeholders(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", row * columns + column + 1));
        }
        sql.push(')');
    }
    sql
}

/// Counts one more turn in each session of `round` (each session at most once) whose count
/// still equals the turn's index; returns, for each session that moved, the index recorded.
async fn advance_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    round: &[usize],
    records: &[&TurnRecord],
) -> Result<HashMap<String, i64>, DbError> {
    let mut moved = HashMap::new();
    for chunk in round.chunks(MAX_PARAMETERS / 6) {
        // VALUES columns are column1.. in both SQLite and PostgreSQL.
        let sql = format!(
            "UPDATE sessions SET turns = sessions.turns + 1, \
             memory_facts = sessions.memory_facts + v.column3, updated_ms = v.column4, \
             ended_ms = CASE WHEN v.column5 = 1 THEN v.column4 ELSE sessions.ended_ms END \
             FROM (VALUES {}) AS v \
             WHERE sessions.id = v.column1 AND sessions.turns = v.column2 \
             AND sessions.memory_facts = v.column6 \
             RETURNING sessions.id, sessions.turns",
            placeholders(chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for &i in chunk {
            let record = records[i];
            query = query
                .bind(&record.session_id)
                .bind(record.turn.turn)
                .bind(i64::try_from(record.memory.len()).unwrap_or(i64::MAX))
                .bind(record.turn.created_ms)
                .bind(i64::from(record.ends_session))
                .bind(record.memory_start);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let id: String = row.try_get("id")?;
            let turns: i64 = row.try_get("turns")?;
            moved.insert(id, turns - 1);
        }
    }
    Ok(moved)
}

async fn insert_turns(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    records: &[&TurnRecord],
) -> Result<(), DbError> {
    for chunk in records.chunks(MAX_PARAMETERS / 10) {
        let sql = format!(
            "INSERT INTO turns (session_id, turn, input, reply, recalled, facts_used, created_ms, \
             rails, output_rail, provenance) VALUES {}",
            placeholders(chunk.len(), 10)
        );
        let mut query = sqlx::query(&sql);
        for record in chunk {
            let turn = &record.turn;
            query = query
                .bind(&record.session_id)
                .bind(turn.turn)
                .bind(&turn.input)
                .bind(&turn.reply)
                .bind(&turn.recalled)
                .bind(&turn.facts_used)
                .bind(turn.created_ms)
                .bind(&turn.rails)
                .bind(&turn.output_rail)
                .bind(&turn.provenance);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) async fn insert_memory(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    records: &[&TurnRecord],
) -> Result<(), DbError> {
    let facts: Vec<(&str, &MemoryRow)> = records
        .iter()
        .flat_map(|r| r.memory.iter().map(|m| (r.session_id.as_str(), m)))
        .collect();
    for chunk in facts.chunks(MAX_PARAMETERS / 6) {
        let sql = format!(
            "INSERT INTO memory (session_id, seq, line, kind, text, entities) VALUES {}",
            placeholders(chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for (session_id, m) in chunk {
            query = query
                .bind(*session_id)
                .bind(m.seq)
                .bind(m.line)
                .bind(&m.kind)
                .bind(&m.text)
                .bind(&m.entities);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test should fail loudly")]

    use std::time::{Duration, Instant};

    use super::*;
    use crate::db::{Db, QuestRecord};

    fn session(id: &str) -> SessionRow {
        SessionRow {
            id: id.into(),
            tenant: "t".into(),
            owner_key: "k".into(),
            player: "p".into(),
            production: "urn:p".into(),
            character: "urn:c".into(),
            beat: None,
            at: None,
            conversation: None,
            turns: 0,
            memory_facts: 0,
            player_state: "{}".into(),
            created_ms: 0,
            updated_ms: 0,
            ended_ms: None,
            likeness_uses: "text".into(),
            territory: None,
        }
    }

    /// A database in a new temporary directory (kept alive by the returned guard), and
    /// its file.
    async fn temporary_db() -> (tempfile::TempDir, std::path::PathBuf, Db) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        (dir, path, db)
    }

    fn record(session_id: &str, turn: i64, facts: i64) -> (TurnRecord, Ack) {
        let memory = (0..facts)
            .map(|seq| MemoryRow {
                seq: turn * 10 + seq,
                line: turn * 2,
                kind: "said".into(),
                text: format!("line {turn} fact {seq}"),
                entities: String::new(),
            })
            .collect();
        let turn = TurnRow {
            turn,
            input: format!("input {turn}"),
            reply: format!("reply {turn}"),
            recalled: "[]".into(),
            facts_used: "[]".into(),
            created_ms: 1,
            rails: "[]".into(),
            output_rail: "{}".into(),
            provenance: None,
        };
        let (ack, _) = oneshot::channel();
        let session_id = session_id.into();
        (
            TurnRecord {
                session_id,
                turn,
                memory,
                ends_session: false,
                memory_start: 0,
            },
            ack,
        )
    }

    #[tokio::test]
    async fn committed_turns_reach_the_database_file_without_the_writer_checkpointing() {
        let (_dir, path, db) = temporary_db().await;
        db.sessions.insert(&session("a")).await.unwrap();
        let file_before = std::fs::metadata(&path).unwrap().len();
        // ~400 KiB of turns: far below the writer's own checkpoint mark (10,000 pages), so
        // only `checkpoint_wal` can move them from the WAL into the database file.
        for turn in 0..100 {
            let (mut record, _) = record("a", turn, 0);
            record.turn.reply = "x".repeat(4096);
            db.sessions.record_turn(record).await.unwrap();
        }
        let deadline = Instant::now() + 20 * crate::db::CHECKPOINT_EVERY;
        while std::fs::metadata(&path).unwrap().len() < file_before + 100 * 4096 {
            assert!(
                Instant::now() < deadline,
                "database file still {} bytes (was {file_before}): the WAL was not checkpointed",
                std::fs::metadata(&path).unwrap().len()
            );
            tokio::time::sleep(crate::db::CHECKPOINT_EVERY / 5).await;
        }
        assert_eq!(
            db.sessions.turns("a", 0..i64::MAX).await.unwrap().len(),
            100
        );
    }

    #[tokio::test]
    async fn close_returns_once_the_writer_has_committed() {
        let (_dir, _, db) = temporary_db().await;
        db.sessions.insert(&session("a")).await.unwrap();
        db.sessions.record_turn(record("a", 0, 1).0).await.unwrap();
        // The writer keeps its connection between commits; closing must take it back.
        tokio::time::timeout(Duration::from_secs(10), db.close())
            .await
            .expect("Db::close hung");
        let after = db.sessions.record_turn(record("a", 1, 0).0).await;
        assert!(matches!(after, Err(DbError::Unavailable(_))), "{after:?}");
    }

    #[tokio::test]
    async fn a_batch_records_in_order_and_refuses_stale_turns() {
        let (_dir, _, db) = temporary_db().await;
        db.sessions.insert(&session("a")).await.unwrap();
        db.sessions.insert(&session("b")).await.unwrap();

        // a's turns 0 and 1 in one batch (two rounds); b's turn 3 is stale (b has 0 turns);
        // "gone" does not exist.
        let mut batch = vec![
            record("a", 0, 2),
            record("b", 3, 1),
            record("a", 1, 1),
            record("gone", 0, 1),
        ];
        // a's second turn was planned after its first, on the two facts it left.
        batch[2].0.memory_start = 2;
        let results = commit(&mut db.sessions.pool.acquire().await.unwrap(), &batch)
            .await
            .unwrap();
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(DbError::Conflict(_))));
        assert!(matches!(results[3], Err(DbError::Conflict(_))));

        let a = db.sessions.get("a").await.unwrap().unwrap();
        assert_eq!((a.turns, a.memory_facts), (2, 3));
        let turns = db.sessions.turns("a", 0..i64::MAX).await.unwrap();
        assert_eq!(turns.iter().map(|t| t.turn).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(db.sessions.memory("a").await.unwrap().len(), 3);
        let b = db.sessions.get("b").await.unwrap().unwrap();
        assert_eq!(
            (b.turns, b.memory_facts),
            (0, 0),
            "nothing of a refused turn is kept"
        );
        assert!(
            db.sessions
                .turns("b", 0..i64::MAX)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(db.sessions.memory("b").await.unwrap().is_empty());

        // A quest update made on a's state lands; one made on a stale state does not, and
        // a turn planned before the update is stale too.
        let quest = |memory_start: i64| QuestRecord {
            session_id: "a".into(),
            turns: 2,
            memory_start,
            player_state: format!("{{\"at\": {memory_start}}}"),
            memory: vec![MemoryRow {
                seq: memory_start,
                line: 4,
                kind: "event".into(),
                text: "The visitor went to the quay.".into(),
                entities: String::new(),
            }],
            events: vec![
                ("event_recorded".into(), "{}".into()),
                ("step_done".into(), "{}".into()),
            ],
            at_ms: 5,
        };
        assert_eq!(db.quests.record(&quest(3)).await.unwrap(), [0, 1]);
        assert!(matches!(
            db.quests.record(&quest(3)).await,
            Err(DbError::Conflict(_))
        ));
        assert_eq!(db.quests.record(&quest(4)).await.unwrap(), [2, 3]);
        let a = db.sessions.get("a").await.unwrap().unwrap();
        assert_eq!(
            (a.memory_facts, a.player_state.as_str()),
            (5, "{\"at\": 4}")
        );
        let events = db.quests.events("a", Some(1)).await.unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        let mut stale = vec![record("a", 2, 1)];
        stale[0].0.memory_start = 3;
        let results = commit(&mut db.sessions.pool.acquire().await.unwrap(), &stale)
            .await
            .unwrap();
        assert!(
            matches!(results[0], Err(DbError::Conflict(_))),
            "{results:?}"
        );
    }

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
