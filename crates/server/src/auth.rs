//! API keys: who is calling, for which studio, in which role.
//!
//! A key reads `lk_<id>_<secret>`. The id is public (it names the key in lists and logs); only
//! the SHA-256 of the secret is stored. The secret is 256 random bits, so a fast hash is as
//! safe as a slow one here: there is nothing to guess from. Verified keys are cached for a few
//! seconds so that a turn costs no key lookup; a revocation through this server drops the
//! entry at once, one through another replica takes effect within the cache's lifetime.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::{Db, DbError, KeyRow, now_ms};
use crate::error::ApiError;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Talks to characters through its own sessions.
    Player,
    /// Also queries the tenant's canon.
    Writer,
    /// Also manages the tenant's keys and sees its sessions and metrics.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Player => "player",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    /// The role a name stands for.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "player" => Some(Role::Player),
            "writer" => Some(Role::Writer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The caller of a request, from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's public id.
    pub key_id: String,
    /// The studio it acts for.
    pub tenant: String,
    /// Its role.
    pub role: Role,
}

impl Caller {
    /// Refuses callers below `role` with 403.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs a {} key; this key is a {} key",
                role.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// A freshly made key: the full key (shown once) and its stored form.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// `lk_<id>_<secret>`: give it to the client; it is not stored.
    pub key: String,
    /// What is stored.
    pub row: KeyRow,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Random lowercase hex of `bytes` bytes, from the OS's generator.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

/// Tenant names: what `lore:tenant` and keys share. Plain, so they read well in URLs and logs.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tenant {tenant:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Makes and stores a key for `tenant` with `role`, valid for `valid_for` if given.
pub async fn create_key(
    db: &Db,
    tenant: &str,
    role: Role,
    label: &str,
    valid_for: Option<Duration>,
) -> Result<NewKey, DbError> {
    let id = random_hex(6);
    let secret = random_hex(32);
    let created_ms = now_ms();
    let row = KeyRow {
        id: id.clone(),
        secret_sha256: secret_hash(&secret),
        tenant: tenant.to_owned(),
        role: role.as_str().to_owned(),
        label: label.to_owned(),
        created_ms,
        expires_ms: valid_for
            .map(|d| created_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        revoked_ms: None,
    };
    db.keys.insert(&row).await?;
    Ok(NewKey {
        key: format!("lk_{id}_{secret}"),
        row,
    })
}

/// A verified key: who it is, when it expires, when it was verified.
struct Verified {
    caller: Caller,
    expires_ms: Option<i64>,
    at: Instant,
}

/// Verified keys, by the full key's hash, for a few seconds.
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Verified>>,
}

impl KeyCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Drops every cached entry of key `id`.
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, v| v.caller.key_id != id);
        }
    }

    /// The caller a bearer token stands for, or why it stands for none.
    pub async fn verify(&self, db: &Db, token: &str) -> Result<Caller, ApiError> {
        let cache_key = secret_hash(token);
        let now = now_ms();
        if let Ok(entries) = self.entries.lock()
            && let Some(v) = entries.get(&cache_key)
            && v.at.elapsed() < self.ttl
            && v.expires_ms.is_none_or(|e| e > now)
        {
            return Ok(v.caller.clone());
        }
        let invalid = || {
            ApiError::unauthorized(
                "invalid_key",
                "the API key is not valid: expected 'Authorization: Bearer lk_<id>_<secret>' \
                 with a key from `lore keys create`",
            )
        };
        let (id, secret) = token
            .strip_prefix("lk_")
            .and_then(|rest| rest.split_once('_'))
            .ok_or_else(invalid)?;
        let row = db.keys.get(id).await?.ok_or_else(invalid)?;
        if !constant_time_eq(secret_hash(secret).as_bytes(), row.secret_sha256.as_bytes()) {
            return Err(invalid());
        }
        if row.revoked_ms.is_some() {
            return Err(ApiError::unauthorized(
                "revoked_key",
                format!("key {id} was revoked"),
            ));
        }
        if row.expires_ms.is_some_and(|e| e <= now) {
            return Err(ApiError::unauthorized(
                "expired_key",
                format!("key {id} has expired"),
            ));
        }
        let role = Role::parse(&row.role)
            .ok_or_else(|| ApiError::internal(format!("key {id} has unknown role {}", row.role)))?;
        let caller = Caller {
            key_id: row.id,
            tenant: row.tenant,
            role,
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 100_000 {
                entries.clear();
            }
            entries.insert(
                cache_key,
                Verified {
                    caller: caller.clone(),
                    expires_ms: row.expires_ms,
                    at: Instant::now(),
                },
            );
        }
        Ok(caller)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_named() {
        assert!(Role::Admin > Role::Writer && Role::Writer > Role::Player);
        for role in [Role::Player, Role::Writer, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn tenants_are_plain_names() {
        assert!(check_tenant("brindlemoor").is_ok());
        assert!(check_tenant("a b").is_err());
        assert!(check_tenant("").is_err());
        assert!(check_tenant("x'; DROP TABLE").is_err());
    }
}
