//! The HTTP service: the engine as a long-lived server for game and app integrators.
//!
//! This is the only crate that knows HTTP and JSON wire formats. It serves:
//! - the Lorekeeper API (`/v1/productions`, `/v1/sessions`, turns streamed as Server-Sent
//!   Events), described by `/openapi.json`;
//! - OpenAI-compatible `/v1/models` and `/v1/chat/completions`, where each character is a
//!   model ([`openai`]);
//! - a read-only SPARQL 1.1 Protocol endpoint for writers, and canon's history with writers'
//!   edits and reverts (`/v1/canon/...`), and the review queue of proposed canon with the
//!   audit log (`/v1/proposals`, `/v1/audit`);
//! - `/healthz`, `/readyz` and Prometheus `/metrics`.
//!
//! It is built in layers, each using only those below it: the route modules (`routes/`, and
//! the web pages in `ui/`) never import each other; they call the services (`sessions` finds
//! and holds a visible session, `turn` runs one through `lore_engine::play_turn`, `commits`,
//! `proposals`, `export`, `verifier`), which sit on the turn queue (`runner`, which bounds it
//! and cancels generation when a client goes away) and on persistence ([`db`], one store per
//! area, in SQLite or PostgreSQL).
//!
//! Every route but health and the OpenAPI document needs an API key ([`auth`]) bound to a
//! tenant and a role; a tenant's keys see only its productions and sessions.

pub mod auth;
mod catalog;
mod commits;
pub mod db;
mod error;
pub mod export;
mod metrics;
mod proposals;
mod routes;
mod runner;
mod sessions;
mod state;
mod turn;
mod ui;
mod verifier;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lore_canon::{CanonError, CanonStore};
use lore_engine::SessionOptions;
use lore_gen::Backend;
use tokio::net::TcpListener;
use utoipa::OpenApi;

pub use auth::{Caller, Role};
pub use catalog::Catalog;
pub use db::{Db, DbError};
pub use error::ApiError;
pub use routes::openai;
pub use runner::{TurnLimits, Turns};
pub use state::App;
pub use verifier::{RecordVerdict, Verifier, VerifyOut};
pub use wire::RailsCheckOut;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where derived files (world snapshots) go.
    pub cache: PathBuf,
    /// Per-turn engine settings.
    pub session: SessionOptions,
    /// Turn admission and warm-session limits.
    pub limits: TurnLimits,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// How long shutdown waits for turns in flight before aborting them.
    pub shutdown_grace: Duration,
    /// How long a verified key is trusted without a database lookup.
    pub key_cache_ttl: Duration,
    /// Keys and tokenizer for `/v1/verify` and `/v1/provenance/keys`.
    pub verifier: Verifier,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Canon could not be loaded.
    #[error(transparent)]
    Canon(#[from] CanonError),
    /// The database could not be opened.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The socket failed.
    #[error("listening socket: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Lorekeeper", description = "Canon-grounded AI characters: sessions, streaming turns, OpenAI-compatible characters, SPARQL over canon."),
    paths(
        routes::catalog::list_productions, routes::catalog::get_production,
        routes::catalog::list_characters, routes::catalog::get_character,
        routes::catalog::try_rails, routes::sessions::create_session,
        routes::sessions::list_sessions, routes::sessions::get_session,
        routes::sessions::delete_session, routes::sessions::post_turn,
        routes::quests::list_quests, routes::quests::offer_quest, routes::quests::answer_quest,
        routes::quests::post_event, routes::quests::stream_events, routes::keys::list_keys,
        routes::keys::post_key, routes::keys::delete_key, routes::ops::healthz,
        routes::ops::readyz, routes::ops::metrics, routes::openai::models,
        routes::openai::chat_completions, routes::sparql::get, routes::sparql::post,
        routes::verify::public_keys, routes::verify::verify, routes::export::get_export,
        routes::canon::list_commits, routes::canon::get_commit, routes::canon::diff,
        routes::canon::post_commit, routes::canon::revert, routes::review::propose_fact,
        routes::review::post_proposal, routes::review::list_proposals,
        routes::review::get_proposal, routes::review::accept, routes::review::reject,
        routes::review::defer, routes::review::audit_log, routes::review::draft_character,
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lk_<id>_<secret>")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, generated from the handlers and wire types.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

async fn openapi_document() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_json(),
    )
        .into_response()
}

async fn count_responses(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    app.metrics
        .responses
        .get_or_create(&metrics::Status {
            status: response.status().as_u16(),
        })
        .inc();
    response
}

async fn unknown_route() -> ApiError {
    ApiError::not_found(
        "unknown_route",
        "no such route; GET /openapi.json lists them",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; GET /openapi.json lists them",
    )
}

/// Every route, over `app`.
pub fn router(app: Arc<App>, body_limit: usize) -> Router {
    use routes::{
        canon, catalog, export, keys, openai, ops, quests, review, sessions, sparql, verify,
    };
    Router::new()
        .route("/v1/productions", get(catalog::list_productions))
        .route("/v1/productions/{production}", get(catalog::get_production))
        .route(
            "/v1/productions/{production}/characters",
            get(catalog::list_characters),
        )
        .route(
            "/v1/productions/{production}/characters/{character}",
            get(catalog::get_character),
        )
        .route(
            "/v1/productions/{production}/characters/{character}/rails",
            post(catalog::try_rails),
        )
        .route(
            "/v1/sessions",
            post(sessions::create_session).get(sessions::list_sessions),
        )
        .route(
            "/v1/sessions/{id}",
            get(sessions::get_session).delete(sessions::delete_session),
        )
        .route("/v1/sessions/{id}/turns", post(sessions::post_turn))
        .route(
            "/v1/sessions/{id}/quests",
            get(quests::list_quests).post(quests::offer_quest),
        )
        .route(
            "/v1/sessions/{id}/quests/{quest}/{answer}",
            post(quests::answer_quest),
        )
        .route(
            "/v1/sessions/{id}/events",
            get(quests::stream_events).post(quests::post_event),
        )
        .route("/v1/sessions/{id}/export", get(export::get_export))
        .route("/v1/keys", get(keys::list_keys).post(keys::post_key))
        .route("/v1/keys/{id}", axum::routing::delete(keys::delete_key))
        .route("/v1/provenance/keys", get(verify::public_keys))
        .route("/v1/verify", post(verify::verify))
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/sparql", get(sparql::get).post(sparql::post))
        .route(
            "/v1/canon/commits",
            get(canon::list_commits).post(canon::post_commit),
        )
        .route("/v1/canon/commits/{commit}", get(canon::get_commit))
        .route("/v1/canon/commits/{commit}/revert", post(canon::revert))
        .route("/v1/canon/diff", get(canon::diff))
        .route(
            "/v1/proposals",
            get(review::list_proposals).post(review::post_proposal),
        )
        .route("/v1/proposals/character", post(review::draft_character))
        .route("/v1/proposals/{id}", get(review::get_proposal))
        .route("/v1/proposals/{id}/accept", post(review::accept))
        .route("/v1/proposals/{id}/reject", post(review::reject))
        .route("/v1/proposals/{id}/defer", post(review::defer))
        .route("/v1/sessions/{id}/proposals", post(review::propose_fact))
        .route("/v1/audit", get(review::audit_log))
        .merge(ui::router())
        .route("/openapi.json", get(openapi_document))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), count_responses))
        .with_state(app)
}

/// Loads canon and opens the database: everything a server needs but its socket.
pub async fn build(
    store: Arc<CanonStore>,
    database_url: &str,
    backend: Arc<dyn Backend>,
    config: &ServerConfig,
) -> Result<Arc<App>, ServeError> {
    let started = Instant::now();
    let db = Db::connect(database_url).await?;
    let catalog = {
        let store = store.clone();
        let cache = config.cache.clone();
        let options = config.session.clone();
        tokio::task::spawn_blocking(move || Catalog::load(&store, &cache, options))
            .await
            .map_err(std::io::Error::other)??
    };
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "canon loaded and database ready"
    );
    Ok(Arc::new(App {
        store,
        catalog: Arc::new(catalog).into(),
        reloading: std::sync::Mutex::new(()),
        reviews: tokio::sync::Mutex::new(()),
        db,
        keys: auth::KeyCache::new(config.key_cache_ttl),
        turns: Turns::new(backend, config.limits.clone()),
        metrics: metrics::Metrics::default(),
        verifier: config.verifier.clone(),
        ready: true.into(),
    }))
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops gracefully: readiness
/// fails, new turns get 503, turns in flight have `grace` to finish before they are aborted
/// (recording nothing), and queued turn records are committed before the database closes.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    config: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!(%address, "serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let grace = config.shutdown_grace;
    let watcher = {
        let app = app.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: refusing new turns");
            app.ready.store(false, Ordering::Release);
            app.turns.close();
            let _ = stop_tx.send(true);
            let deadline = Instant::now() + grace;
            while app.turns.in_flight() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if app.turns.in_flight() > 0 {
                tracing::warn!(
                    in_flight = app.turns.in_flight(),
                    "grace period over: aborting turns in flight"
                );
                app.turns.abort();
            }
        })
    };
    let mut stop = stop_rx.clone();
    axum::serve(listener, router(app.clone(), config.body_limit))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    let _ = watcher.await;
    app.db.close().await;
    tracing::info!("stopped");
    Ok(())
}
