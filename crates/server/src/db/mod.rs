//! The session database: API keys; sessions, their transcripts and memory; quests and the
//! events clients are told; the review queue and the audit log. One table group per module,
//! each read by column name.
//!
//! One code path for SQLite (the embedded default) and PostgreSQL (scale-out): sqlx's `Any`
//! driver, portable SQL with `$n` parameters, and one set of migrations. Every value reaches
//! the database as a bound parameter, never as SQL text.

mod error;
mod keys;
mod quests;
mod review;
mod sessions;

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

pub use error::{DbError, now_ms};
pub use keys::{KeyRow, Keys};
pub use quests::{EventRow, QuestRecord, Quests};
pub use review::{AuditRow, Decision, ProposalRow, Review};
pub use sessions::{MemoryRow, SessionRow, Sessions, TurnRecord, TurnRow};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on the database, one field per group of tables. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    /// API keys.
    pub keys: Keys,
    /// Sessions, turns and memory.
    pub sessions: Sessions,
    /// Quest logs and session events.
    pub quests: Quests,
    /// Proposals and the audit log.
    pub review: Review,
    pool: AnyPool,
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
        if sqlite {
            tokio::spawn(checkpoint_wal(pool.clone()));
        }
        Ok(Db {
            keys: Keys::new(pool.clone()),
            sessions: Sessions::new(pool.clone()),
            quests: Quests::new(pool.clone()),
            review: Review::new(pool.clone()),
            pool,
        })
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
        self.sessions.writer_stopped().await;
    }
}

/// How often the WAL is checkpointed beside the writer.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

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
