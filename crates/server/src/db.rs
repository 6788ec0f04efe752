//! The session database: API keys, sessions, their transcripts and their memory.
//!
//! One code path for SQLite (the embedded default) and PostgreSQL (scale-out): sqlx's `Any`
//! driver, portable SQL with `$n` parameters, and one set of migrations. Every value reaches
//! the database as a bound parameter, never as SQL text.
//!
//! Turns are written by a single writer task that commits whatever turns are waiting in one
//! transaction (group commit): each turn is durable before its final event is sent, and the
//! cost of a commit (an fsync) is shared by every turn that arrived meanwhile.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::time::Duration;

use lore_canon::consent::LikenessUse;
use lore_engine::LikenessScope;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::pool::PoolConnection;
use sqlx::{AnyConnection, AnyPool, Connection, Row};
use tokio::sync::{mpsc, oneshot};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Most turns one group commit writes.
const MAX_BATCH: usize = 256;

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database cannot be reached (down, or every connection busy).
    #[error("{0}")]
    Unavailable(String),
    /// A write lost a race (another turn of the same session, from another replica).
    #[error("{0}")]
    Conflict(String),
    /// The database URL is not one we can use.
    #[error("database URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Migrations failed.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database: {0}")]
    Other(String),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> DbError {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                DbError::Unavailable(e.to_string())
            }
            other => DbError::Other(other.to_string()),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored API key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The public part of the key.
    pub id: String,
    /// SHA-256 of the secret part, hex.
    pub secret_sha256: String,
    /// The studio it acts for.
    pub tenant: String,
    /// `player`, `writer` or `admin`.
    pub role: String,
    /// A note for people.
    pub label: String,
    /// When it was made.
    pub created_ms: i64,
    /// When it stops working.
    pub expires_ms: Option<i64>,
    /// When it was revoked.
    pub revoked_ms: Option<i64>,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub character: String,
    /// Story time: the beat's order.
    pub beat: Option<i64>,
    /// Story time as the client named it.
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A proposal for canon, waiting for (or decided by) a writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRow {
    /// `p_<hex>`.
    pub id: String,
    /// The studio it belongs to.
    pub tenant: String,
    /// The IRI of the production it was drafted for.
    pub production: String,
    /// `session_fact`, `character` or `import`.
    pub kind: String,
    /// One line for the queue.
    pub summary: String,
    /// Where it came from (JSON: session, excerpt, fact, model, provenance).
    pub source: String,
    /// N-Quads it would add.
    pub additions: String,
    /// N-Quads it would remove.
    pub removals: String,
    /// The commit of canon it was drafted against.
    pub base: String,
    /// What the rails said (JSON).
    pub rails: String,
    /// `pending`, `deferred`, `accepted` or `rejected`.
    pub status: String,
    /// Why it was rejected or deferred.
    pub reason: Option<String>,
    /// Who decided it.
    pub reviewer: Option<String>,
    /// The commit that made it canon.
    pub commit_id: Option<String>,
    /// When it was proposed.
    pub created_ms: i64,
    /// When it was decided.
    pub decided_ms: Option<i64>,
}

const PROPOSAL_COLUMNS: &str = "id, tenant, production, kind, summary, source, additions, \
     removals, base, rails, status, reason, reviewer, commit_id, created_ms, decided_ms";

fn proposal_row(row: &sqlx::any::AnyRow) -> Result<ProposalRow, sqlx::Error> {
    Ok(ProposalRow {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        production: row.try_get(2)?,
        kind: row.try_get(3)?,
        summary: row.try_get(4)?,
        source: row.try_get(5)?,
        additions: row.try_get(6)?,
        removals: row.try_get(7)?,
        base: row.try_get(8)?,
        rails: row.try_get(9)?,
        status: row.try_get(10)?,
        reason: row.try_get(11)?,
        reviewer: row.try_get(12)?,
        commit_id: row.try_get(13)?,
        created_ms: row.try_get(14)?,
        decided_ms: row.try_get(15)?,
    })
}

/// A writer's decision on a proposal.
#[derive(Debug, Clone)]
pub struct Decision {
    /// `accepted`, `rejected` or `deferred`.
    pub status: &'static str,
    /// Why.
    pub reason: Option<String>,
    /// Who.
    pub reviewer: String,
    /// The commit, when accepted.
    pub commit_id: Option<String>,
    /// The change as accepted (a writer may edit it), as N-Quads.
    pub additions: String,
    /// See `additions`.
    pub removals: String,
    /// When.
    pub at_ms: i64,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Random, unique.
    pub id: String,
    /// The studio.
    pub tenant: String,
    /// Who (`key <id>`).
    pub actor: String,
    /// `proposal_created`, `proposal_accepted`, `proposal_rejected`, `proposal_deferred`,
    /// `canon_commit` or `canon_revert`.
    pub action: String,
    /// What it was done to (a proposal or a commit).
    pub target: String,
    /// Details (JSON).
    pub detail: String,
    /// When.
    pub created_ms: i64,
}

type Ack = oneshot::Sender<Result<(), DbError>>;

/// A handle on the database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    writer: mpsc::Sender<(TurnRecord, Ack)>,
}

const SESSION_COLUMNS: &str = "id, tenant, owner_key, player, production, character_iri, beat, \
     at_label, conversation, turns, memory_facts, player_state, created_ms, updated_ms, ended_ms, \
     likeness_uses, territory";

fn session_row(row: &sqlx::any::AnyRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        owner_key: row.try_get(2)?,
        player: row.try_get(3)?,
        production: row.try_get(4)?,
        character: row.try_get(5)?,
        beat: row.try_get(6)?,
        at: row.try_get(7)?,
        conversation: row.try_get(8)?,
        turns: row.try_get(9)?,
        memory_facts: row.try_get(10)?,
        player_state: row.try_get(11)?,
        created_ms: row.try_get(12)?,
        updated_ms: row.try_get(13)?,
        ended_ms: row.try_get(14)?,
        likeness_uses: row.try_get(15)?,
        territory: row.try_get(16)?,
    })
}

impl Db {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` or `postgres://...`), brings the schema
    /// up to date and starts the turn writer. Must be called inside a Tokio runtime.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if !sqlite && !url.starts_with("postgres:") && !url.starts_with("postgresql:") {
            return Err(DbError::BadUrl {
                url: url.to_owned(),
                reason: "expected sqlite://PATH or postgres://...".into(),
            });
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .and_then(|p| p.split('?').next())
            && let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| DbError::BadUrl {
                url: url.to_owned(),
                reason: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets readers proceed during the writer's commit; FULL keeps every
                        // acknowledged turn across a power cut.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        // `checkpoint_wal` copies the WAL into the database beside the
                        // writer; the writer's own checkpoint, run inside the commit that
                        // crosses this mark (1,000 pages by default), stalls every turn
                        // waiting on that commit, so it is only a backstop (~40 MiB of WAL).
                        sqlx::query("PRAGMA wal_autocheckpoint = 10000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| match e {
                sqlx::Error::Configuration(reason) => DbError::BadUrl {
                    url: url.to_owned(),
                    reason: reason.to_string(),
                },
                other => DbError::from(other),
            })?;
        MIGRATOR.run(&pool).await?;
        let (writer, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_turns(pool.clone(), jobs));
        if sqlite {
            tokio::spawn(checkpoint_wal(pool.clone()));
        }
        Ok(Db { pool, writer })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (after the writer has drained).
    pub async fn close(&self) {
        self.pool.close().await;
        // The pool's close does not wait for a connection still checked out (sqlx 0.8), and
        // the writer holds one between commits until it sees the close: wait until it has
        // stopped (and dropped its receiver), so that no turn is committed after `close`.
        self.writer.closed().await;
    }

    /// Stores a new key.
    pub async fn insert_key(&self, key: &KeyRow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO api_keys (id, secret_sha256, tenant, role, label, created_ms, \
             expires_ms, revoked_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&key.id)
        .bind(&key.secret_sha256)
        .bind(&key.tenant)
        .bind(&key.role)
        .bind(&key.label)
        .bind(key.created_ms)
        .bind(key.expires_ms)
        .bind(key.revoked_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The key with public id `id`.
    pub async fn key(&self, id: &str) -> Result<Option<KeyRow>, DbError> {
        let row = sqlx::query(
            "SELECT id, secret_sha256, tenant, role, label, created_ms, expires_ms, revoked_ms \
             FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| key_row(&r)).transpose().map_err(DbError::from)
    }

    /// Keys of `tenant`, or of every tenant, oldest first.
    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRow>, DbError> {
        let rows = sqlx::query(
            "SELECT id, secret_sha256, tenant, role, label, created_ms, expires_ms, revoked_ms \
             FROM api_keys WHERE $1 IS NULL OR tenant = $1 ORDER BY created_ms, id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(key_row)
            .collect::<Result<_, _>>()
            .map_err(DbError::from)
    }

    /// Revokes key `id` of `tenant` (any tenant when `None`); false if there is no such key.
    pub async fn revoke_key(&self, id: &str, tenant: Option<&str>) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND ($3 IS NULL OR tenant = $3) \
             AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a new session.
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), DbError> {
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
    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| session_row(&r))
            .transpose()
            .map_err(DbError::from)
    }

    /// The session that key `owner` opened for OpenAI-compatible `conversation`.
    pub async fn session_for_conversation(
        &self,
        owner: &str,
        conversation: &str,
    ) -> Result<Option<SessionRow>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE owner_key = $1 AND conversation = $2"
        ))
        .bind(owner)
        .bind(conversation)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| session_row(&r))
            .transpose()
            .map_err(DbError::from)
    }

    /// Sessions of `tenant`, only those `owner` opened when given, only `player`'s when
    /// given; newest first, at most `limit`.
    pub async fn sessions(
        &self,
        tenant: &str,
        owner: Option<&str>,
        player: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SessionRow>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant = $1 \
             AND ($2 IS NULL OR owner_key = $2) AND ($3 IS NULL OR player = $3) \
             ORDER BY created_ms DESC, id LIMIT $4"
        ))
        .bind(tenant)
        .bind(owner)
        .bind(player)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(session_row)
            .collect::<Result<_, _>>()
            .map_err(DbError::from)
    }

    /// Deletes session `id` with its turns and memory, in one transaction.
    pub async fn delete_session(&self, id: &str) -> Result<bool, DbError> {
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
        let rows = sqlx::query(
            "SELECT turn, input, reply, recalled, facts_used, created_ms, rails, output_rail, \
             provenance FROM turns \
             WHERE session_id = $1 AND turn >= $2 AND turn < $3 ORDER BY turn",
        )
        .bind(id)
        .bind(range.start)
        .bind(range.end)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TurnRow {
                    turn: r.try_get(0)?,
                    input: r.try_get(1)?,
                    reply: r.try_get(2)?,
                    recalled: r.try_get(3)?,
                    facts_used: r.try_get(4)?,
                    created_ms: r.try_get(5)?,
                    rails: r.try_get(6)?,
                    output_rail: r.try_get(7)?,
                    provenance: r.try_get(8)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// The facts of session `id`'s graph, in order.
    pub async fn memory(&self, id: &str) -> Result<Vec<MemoryRow>, DbError> {
        let rows = sqlx::query(
            "SELECT seq, line, kind, text, entities FROM memory WHERE session_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MemoryRow {
                    seq: r.try_get(0)?,
                    line: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    text: r.try_get(3)?,
                    entities: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Records a change to a session's quests whole or not at all: the quest log, its new
    /// memory facts and its events; returns the events' numbers. A conflict if the session
    /// moved on (a turn or another change recorded) since the change was made.
    pub async fn record_quest(&self, record: &QuestRecord) -> Result<Vec<i64>, DbError> {
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
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM session_events WHERE session_id = $1",
        )
        .bind(&record.session_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
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
    pub async fn session_events(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> Result<Vec<EventRow>, DbError> {
        let rows = sqlx::query(
            "SELECT seq, kind, body, created_ms FROM session_events \
             WHERE session_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(id)
        .bind(after.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    seq: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    body: r.try_get(2)?,
                    created_ms: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Stores a new proposal and its audit entry together.
    pub async fn insert_proposal(&self, p: &ProposalRow, audit: &AuditRow) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO proposals ({PROPOSAL_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&p.id)
        .bind(&p.tenant)
        .bind(&p.production)
        .bind(&p.kind)
        .bind(&p.summary)
        .bind(&p.source)
        .bind(&p.additions)
        .bind(&p.removals)
        .bind(&p.base)
        .bind(&p.rails)
        .bind(&p.status)
        .bind(&p.reason)
        .bind(&p.reviewer)
        .bind(&p.commit_id)
        .bind(p.created_ms)
        .bind(p.decided_ms)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The proposal `id` of `tenant`.
    pub async fn proposal(&self, tenant: &str, id: &str) -> Result<Option<ProposalRow>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = $1 AND tenant = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(proposal_row).transpose()?)
    }

    /// `tenant`'s proposals with `status` (any without), newest first.
    pub async fn proposals(
        &self,
        tenant: &str,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ProposalRow>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE tenant = $1 \
             AND ($2 = '' OR status = $2) ORDER BY created_ms DESC, id LIMIT $3"
        ))
        .bind(tenant)
        .bind(status.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(proposal_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Records `decision` on proposal `id` if it is still open (pending or deferred), with
    /// its audit entry; `false` when another decision came first.
    pub async fn decide_proposal(
        &self,
        id: &str,
        decision: &Decision,
        audit: &AuditRow,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE proposals SET status = $1, reason = $2, reviewer = $3, commit_id = $4, \
             additions = $5, removals = $6, decided_ms = $7 \
             WHERE id = $8 AND status IN ('pending', 'deferred')",
        )
        .bind(decision.status)
        .bind(&decision.reason)
        .bind(&decision.reviewer)
        .bind(&decision.commit_id)
        .bind(&decision.additions)
        .bind(&decision.removals)
        .bind(decision.at_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Adds an entry to the audit log.
    pub async fn audit(&self, entry: &AuditRow) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `tenant`'s audit log, newest first.
    pub async fn audit_log(&self, tenant: &str, limit: i64) -> Result<Vec<AuditRow>, DbError> {
        let rows = sqlx::query(
            "SELECT id, tenant, actor, action, target, detail, created_ms FROM audit_log \
             WHERE tenant = $1 ORDER BY created_ms DESC, id LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get(0)?,
                    tenant: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    target: r.try_get(4)?,
                    detail: r.try_get(5)?,
                    created_ms: r.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
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

async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry: &AuditRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant, actor, action, target, detail, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&entry.id)
    .bind(&entry.tenant)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.detail)
    .bind(entry.created_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn key_row(r: &sqlx::any::AnyRow) -> Result<KeyRow, sqlx::Error> {
    Ok(KeyRow {
        id: r.try_get(0)?,
        secret_sha256: r.try_get(1)?,
        tenant: r.try_get(2)?,
        role: r.try_get(3)?,
        label: r.try_get(4)?,
        created_ms: r.try_get(5)?,
        expires_ms: r.try_get(6)?,
        revoked_ms: r.try_get(7)?,
    })
}

/// How often the WAL is checkpointed beside the writer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies committed WAL pages into the SQLite database from a connection of its own, so the
/// writer's own checkpoint (when the WAL reaches `wal_autocheckpoint`) finds little left to
/// copy and commits do not stall behind it. Ends when the pool is closed.
async fn checkpoint_wal(pool: AnyPool) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if pool.is_closed() {
            return;
        }
        // PASSIVE: copies what it can without waiting for readers or the writer.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "WAL checkpoint");
        }
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
            let id: String = row.try_get(0)?;
            let turns: i64 = row.try_get(1)?;
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

async fn insert_memory(
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

    use super::*;
    use std::time::Instant;

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
        db.insert_session(&session("a")).await.unwrap();
        let file_before = std::fs::metadata(&path).unwrap().len();
        // ~400 KiB of turns: far below the writer's own checkpoint mark (10,000 pages), so
        // only `checkpoint_wal` can move them from the WAL into the database file.
        for turn in 0..100 {
            let (mut record, _) = record("a", turn, 0);
            record.turn.reply = "x".repeat(4096);
            db.record_turn(record).await.unwrap();
        }
        let deadline = Instant::now() + 20 * CHECKPOINT_EVERY;
        while std::fs::metadata(&path).unwrap().len() < file_before + 100 * 4096 {
            assert!(
                Instant::now() < deadline,
                "database file still {} bytes (was {file_before}): the WAL was not checkpointed",
                std::fs::metadata(&path).unwrap().len()
            );
            tokio::time::sleep(CHECKPOINT_EVERY / 5).await;
        }
        assert_eq!(db.turns("a", 0..i64::MAX).await.unwrap().len(), 100);
    }

    #[tokio::test]
    async fn close_returns_once_the_writer_has_committed() {
        let (_dir, _, db) = temporary_db().await;
        db.insert_session(&session("a")).await.unwrap();
        db.record_turn(record("a", 0, 1).0).await.unwrap();
        // The writer keeps its connection between commits; closing must take it back.
        tokio::time::timeout(Duration::from_secs(10), db.close())
            .await
            .expect("Db::close hung");
        let after = db.record_turn(record("a", 1, 0).0).await;
        assert!(matches!(after, Err(DbError::Unavailable(_))), "{after:?}");
    }

    #[tokio::test]
    async fn a_batch_records_in_order_and_refuses_stale_turns() {
        let (_dir, _, db) = temporary_db().await;
        db.insert_session(&session("a")).await.unwrap();
        db.insert_session(&session("b")).await.unwrap();

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
        let results = commit(&mut db.pool.acquire().await.unwrap(), &batch)
            .await
            .unwrap();
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(DbError::Conflict(_))));
        assert!(matches!(results[3], Err(DbError::Conflict(_))));

        let a = db.session("a").await.unwrap().unwrap();
        assert_eq!((a.turns, a.memory_facts), (2, 3));
        let turns = db.turns("a", 0..i64::MAX).await.unwrap();
        assert_eq!(turns.iter().map(|t| t.turn).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(db.memory("a").await.unwrap().len(), 3);
        let b = db.session("b").await.unwrap().unwrap();
        assert_eq!(
            (b.turns, b.memory_facts),
            (0, 0),
            "nothing of a refused turn is kept"
        );
        assert!(db.turns("b", 0..i64::MAX).await.unwrap().is_empty());
        assert!(db.memory("b").await.unwrap().is_empty());

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
        assert_eq!(db.record_quest(&quest(3)).await.unwrap(), [0, 1]);
        assert!(matches!(
            db.record_quest(&quest(3)).await,
            Err(DbError::Conflict(_))
        ));
        assert_eq!(db.record_quest(&quest(4)).await.unwrap(), [2, 3]);
        let a = db.session("a").await.unwrap().unwrap();
        assert_eq!(
            (a.memory_facts, a.player_state.as_str()),
            (5, "{\"at\": 4}")
        );
        let events = db.session_events("a", Some(1)).await.unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        let mut stale = vec![record("a", 2, 1)];
        stale[0].0.memory_start = 3;
        let results = commit(&mut db.pool.acquire().await.unwrap(), &stale)
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
