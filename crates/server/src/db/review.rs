//! The review queue (proposals for canon and writers' decisions) and the audit log.

use sqlx::AnyPool;

use crate::db::error::DbError;

/// A proposal for canon, waiting for (or decided by) a writer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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

/// The `proposals` and `audit_log` tables.
#[derive(Clone)]
pub struct Review {
    pool: AnyPool,
}

impl Review {
    pub(crate) fn new(pool: AnyPool) -> Review {
        Review { pool }
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
        Ok(sqlx::query_as(&format!(
            "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = $1 AND tenant = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// `tenant`'s proposals with `status` (any without), newest first.
    pub async fn proposals(
        &self,
        tenant: &str,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ProposalRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE tenant = $1 \
             AND ($2 = '' OR status = $2) ORDER BY created_ms DESC, id LIMIT $3"
        ))
        .bind(tenant)
        .bind(status.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records `decision` on proposal `id` if it is still open (pending or deferred), with
    /// its audit entry; `false` when another decision came first.
    pub async fn decide(
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
        Ok(sqlx::query_as(
            "SELECT id, tenant, actor, action, target, detail, created_ms FROM audit_log \
             WHERE tenant = $1 ORDER BY created_ms DESC, id LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
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
