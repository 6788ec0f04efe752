//! What every request handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use lore_canon::CanonStore;

use crate::auth::KeyCache;
use crate::catalog::Catalog;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::turns::Turns;

/// The server's shared state.
pub struct App {
    /// Canon, for SPARQL.
    pub store: Arc<CanonStore>,
    /// Served productions and planners.
    pub catalog: Catalog,
    /// Sessions and keys.
    pub db: Db,
    /// Verified keys.
    pub keys: KeyCache,
    /// The turn runner.
    pub turns: Turns,
    /// Metrics.
    pub metrics: Metrics,
    /// Keys and tokenizer for verification.
    pub verifier: crate::verify::Verifier,
    /// Set once startup finished; cleared when shutdown begins.
    pub ready: AtomicBool,
}
