//! What every request handler shares.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use lore_canon::CanonStore;

use crate::auth::{Caller, KeyCache};
use crate::catalog::Catalog;
use crate::db::Db;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::runner::Turns;

/// The server's shared state.
pub struct App {
    /// Canon: SPARQL, history and writers' edits.
    pub store: Arc<CanonStore>,
    /// Served productions and planners, as of the newest commit (see [`App::catalog`]).
    pub catalog: RwLock<Arc<Catalog>>,
    /// Held while the catalog reloads, so reloads land in commit order.
    pub reloading: Mutex<()>,
    /// Held while a writer decides a proposal, so each is decided once.
    pub reviews: tokio::sync::Mutex<()>,
    /// Sessions and keys.
    pub db: Db,
    /// Verified keys.
    pub keys: KeyCache,
    /// The turn runner.
    pub turns: Turns,
    /// Metrics.
    pub metrics: Metrics,
    /// Keys and tokenizer for verification.
    pub verifier: crate::verifier::Verifier,
    /// Set once startup finished; cleared when shutdown begins.
    pub ready: AtomicBool,
}

impl App {
    /// The served productions as of the newest commit this server has loaded.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads canon again after a commit, unless the catalog already has it. Sessions pick up
    /// the new canon at their next turn; a turn in flight finishes on the canon it began with.
    pub fn reload_catalog(&self) -> Result<(), lore_canon::CanonError> {
        let _reloading = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.catalog();
        if self.store.revision()? == current.revision {
            return Ok(());
        }
        let fresh = Arc::new(current.reload(&self.store)?);
        tracing::info!(revision = %fresh.revision, "canon reloaded");
        *self.catalog.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}

/// Every route but health and the OpenAPI document knows its caller from the API key.
impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Caller, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing_key",
                "this route needs an API key: send 'Authorization: Bearer lk_<id>_<secret>'",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "invalid_key",
                    "the Authorization header must read 'Bearer lk_<id>_<secret>'",
                )
            })?;
        app.keys.verify(&app.db, token).await
    }
}
