//! API keys as stored: the public id and the hash of the secret, never the secret itself.

use sqlx::AnyPool;

use crate::db::error::{DbError, now_ms};

/// A stored API key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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

const KEY_COLUMNS: &str =
    "id, secret_sha256, tenant, role, label, created_ms, expires_ms, revoked_ms";

/// The `api_keys` table.
#[derive(Clone)]
pub struct Keys {
    pool: AnyPool,
}

impl Keys {
    pub(crate) fn new(pool: AnyPool) -> Keys {
        Keys { pool }
    }

    /// Stores a new key.
    pub async fn insert(&self, key: &KeyRow) -> Result<(), DbError> {
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
    pub async fn get(&self, id: &str) -> Result<Option<KeyRow>, DbError> {
        Ok(
            sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Keys of `tenant`, or of every tenant, oldest first.
    pub async fn list(&self, tenant: Option<&str>) -> Result<Vec<KeyRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE $1 IS NULL OR tenant = $1 \
             ORDER BY created_ms, id"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes key `id` of `tenant` (any tenant when `None`); false if there is no such key.
    pub async fn revoke(&self, id: &str, tenant: Option<&str>) -> Result<bool, DbError> {
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
}
