//! `lore serve`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lore_server::{ServerConfig, TurnLimits};

use crate::config::{BackendKind, Config};
use crate::wiring::{backend, open_writable, runtime, session_options, verifier};

/// Runs the server until Ctrl-C or SIGTERM.
pub fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    // The server owns canon while it runs: writers change it through its API.
    let store = Arc::new(open_writable(config)?);
    let backend: Arc<dyn lore_gen::Backend> = Arc::from(backend(config)?);
    let server = ServerConfig {
        cache: config.cache.join("worlds"),
        session: session_options(config)?,
        limits: TurnLimits {
            max_in_flight: config.max_in_flight,
            // One llama.cpp worker generates at a time; more slots would only queue there.
            generation_slots: match config.backend {
                BackendKind::Embedded => 1,
                BackendKind::Openai => config.generation_slots,
            },
            max_hot_sessions: config.max_hot_sessions,
        },
        body_limit: config.body_limit_kib * 1024,
        shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        key_cache_ttl: Duration::from_secs(5),
        verifier: verifier(config)?,
    };
    runtime()?.block_on(async {
        let app = lore_server::build(store, &config.database, backend, &server).await?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        eprintln!(
            "lore serve: listening on http://{} (API description at /openapi.json)",
            listener.local_addr()?
        );
        lore_server::serve(app, listener, &server, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
