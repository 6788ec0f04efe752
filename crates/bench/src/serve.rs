//! Server throughput and overhead: the real `lore serve` stack (HTTP, keys, SQLite, retrieval,
//! prompt, group commit) over a stub OpenAI-compatible model server on loopback, so that the
//! model does not dominate, driven by `wrk`.
//!
//! The baseline is the stub itself, hit by the same `wrk` with the same connections in the
//! same run: what the server adds is the difference. Memory per idle session is the growth
//! of this process's resident memory when every session has been played once and kept warm.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lore_canon::CanonStore;
use lore_engine::SessionOptions;
use lore_gen::{GenParams, OpenAiBackend, OpenAiConfig};
use lore_guard::Semantic;
use lore_server::{Role, ServerConfig, TurnLimits};

/// What a serve benchmark does.
#[derive(Debug, Clone)]
pub struct ServeBench {
    /// Sessions to create and keep warm.
    pub sessions: usize,
    /// Concurrent connections of the throughput run.
    pub connections: usize,
    /// Length of the throughput run.
    pub duration: Duration,
    /// Length of each single-connection latency run.
    pub latency_duration: Duration,
    /// Tokens the stub streams per reply.
    pub stub_tokens: usize,
    /// Where the temporary database and snapshots go.
    pub work_dir: PathBuf,
    /// The rails' embedding layer, or `None` for the lexicon only.
    pub semantic: Option<Arc<Semantic>>,
    /// The studio whose key plays the sessions.
    pub tenant: String,
    /// Every session's production (id, IRI or title).
    pub production: String,
    /// Every session's character (id, IRI, name or alias).
    pub character: String,
    /// Every session's story time.
    pub at: Option<String>,
    /// The line each session's first turn plays, to warm it.
    pub warm_line: String,
    /// The line every measured turn plays.
    pub turn_line: String,
}

/// The body that opens session `i` of `bench`.
fn session_request(bench: &ServeBench, i: usize) -> String {
    serde_json::json!({
        "production": bench.production,
        "character": bench.character,
        "player": format!("p{i}"),
        "at": bench.at,
    })
    .to_string()
}

/// One `wrk` run.
#[derive(Debug, Clone, Default)]
pub struct WrkRun {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub per_second: f64,
    /// Latency percentiles in milliseconds: 50, 75, 90, 99.
    pub latency_ms: [f64; 4],
    /// Non-2xx responses plus socket errors.
    pub errors: u64,
    /// CPU time this process (server and stub, not `wrk`) spent per request, in
    /// microseconds: steadier than requests per second on a shared machine.
    pub cpu_us_per_request: f64,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct ServeReport {
    /// The stub alone, one connection.
    pub stub_latency: WrkRun,
    /// Turns through the server, one connection.
    pub server_latency: WrkRun,
    /// The stub alone, many connections.
    pub stub_throughput: WrkRun,
    /// Turns through the server, many connections.
    pub server_throughput: WrkRun,
    /// Resident memory growth per warm, idle session, in bytes.
    pub bytes_per_idle_session: f64,
    /// Database file size per session after the runs, in bytes.
    pub db_bytes_per_session: f64,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeBenchError {
    /// `wrk` is not installed.
    #[error("`wrk` is not installed: apt-get install wrk (scripts/bench.sh does)")]
    NoWrk,
    /// Something else failed.
    #[error("{0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> ServeBenchError {
    ServeBenchError::Failed(e.to_string())
}

/// A stub chat-completions server: the same streamed reply, instantly, to every request.
async fn stub_model(
    tokens: usize,
) -> Result<(String, tokio::task::JoinHandle<()>), ServeBenchError> {
    let mut body = String::new();
    for i in 0..tokens {
        let word = if i + 1 == tokens { "fog." } else { "the " };
        body.push_str(&format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}}}}]}}\n\n"
        ));
    }
    body.push_str(
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    );
    body.push_str(&format!(
        "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":400,\"completion_tokens\":{tokens}}}}}\n\ndata: [DONE]\n\n"
    ));
    let body: &'static str = Box::leak(body.into_boxed_str());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || async move {
            (
                [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                body,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(failed)?;
    let url = format!("http://{}", listener.local_addr().map_err(failed)?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}

/// CPU time (user and system) this process has used, in seconds.
fn process_cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (100 a second on Linux); the
    // command name before them may hold spaces, so count from its closing parenthesis.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

fn resident_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib * 1024.0)
}

/// Runs the benchmark on `store`.
pub fn run(
    store: Arc<CanonStore>,
    bench: &ServeBench,
    progress: &dyn Fn(&str),
) -> Result<ServeReport, ServeBenchError> {
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err(ServeBenchError::NoWrk);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(failed)?;
    let (stub_url, _stub) = runtime.block_on(stub_model(bench.stub_tokens))?;
    let config = server_config(bench);
    let database = format!(
        "sqlite://{}?mode=rwc",
        bench.work_dir.join("bench.db").display()
    );
    let server = Server::start(
        &runtime,
        store,
        &stub_url,
        &database,
        &config,
        &bench.tenant,
    )?;
    progress(&format!("creating {} sessions", bench.sessions));
    let ids = (0..bench.sessions)
        .map(|i| {
            let created = server.post("/v1/sessions", &session_request(bench, i))?;
            let created: serde_json::Value = serde_json::from_str(&created).map_err(failed)?;
            Ok(created["id"].as_str().unwrap_or_default().to_owned())
        })
        .collect::<Result<Vec<_>, ServeBenchError>>()?;
    let before = resident_bytes();
    progress("one turn in every session (so each is warm)");
    let warm = serde_json::json!({ "input": bench.warm_line }).to_string();
    for id in &ids {
        server.post(&format!("/v1/sessions/{id}/turns"), &warm)?;
    }
    let bytes_per_idle_session = (resident_bytes() - before) / bench.sessions.max(1) as f64;
    let (turn_script, stub_script) = write_scripts(bench, &ids, &server.key)?;
    let stub_target = format!("{stub_url}/v1/chat/completions");
    progress("latency: one connection, stub then server");
    let stub_latency = wrk(&stub_target, &stub_script, 1, bench.latency_duration)?;
    let server_latency = wrk(&server.url, &turn_script, 1, bench.latency_duration)?;
    progress(&format!(
        "throughput: {} connections, stub then server",
        bench.connections
    ));
    let stub_throughput = wrk(
        &stub_target,
        &stub_script,
        bench.connections,
        bench.duration,
    )?;
    let server_throughput = wrk(&server.url, &turn_script, bench.connections, bench.duration)?;
    server.stop(&runtime);
    let db_bytes: u64 = ["bench.db", "bench.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(bench.work_dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    Ok(ServeReport {
        stub_latency,
        server_latency,
        stub_throughput,
        server_throughput,
        bytes_per_idle_session,
        db_bytes_per_session: db_bytes as f64 / bench.sessions.max(1) as f64,
    })
}

/// The server's settings for the benchmark: every session warm, queues that never refuse.
fn server_config(bench: &ServeBench) -> ServerConfig {
    ServerConfig {
        cache: bench.work_dir.join("worlds"),
        session: SessionOptions {
            generation: GenParams {
                max_tokens: bench.stub_tokens + 8,
                ..GenParams::default()
            },
            // Without the embedding layer the bench measures the server's own work; with it,
            // the encoder's pass over every line and reply sentence dominates.
            semantic: bench.semantic.clone(),
            ..SessionOptions::default()
        },
        limits: TurnLimits {
            max_in_flight: 4 * bench.connections.max(1),
            generation_slots: 4 * bench.connections.max(1),
            max_hot_sessions: bench.sessions + 1000,
        },
        body_limit: 64 * 1024,
        shutdown_grace: Duration::from_secs(5),
        key_cache_ttl: Duration::from_secs(60),
        // Verification is not what this bench measures.
        verifier: lore_server::Verifier::default(),
    }
}

/// `lore serve` on loopback over the stub model, with a player key of its tenant.
struct Server {
    url: String,
    key: String,
    agent: ureq::Agent,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

impl Server {
    fn start(
        runtime: &tokio::runtime::Runtime,
        store: Arc<CanonStore>,
        stub_url: &str,
        database: &str,
        config: &ServerConfig,
        tenant: &str,
    ) -> Result<Server, ServeBenchError> {
        let backend = Arc::new(OpenAiBackend::new(OpenAiConfig::new(
            format!("{stub_url}/v1"),
            "stub",
        )));
        let (app, listener) = runtime.block_on(async {
            let app = lore_server::build(store, database, backend, config)
                .await
                .map_err(failed)?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(failed)?;
            Ok::<_, ServeBenchError>((app, listener))
        })?;
        let url = format!("http://{}", listener.local_addr().map_err(failed)?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = runtime.spawn({
            let app = app.clone();
            let config = config.clone();
            async move {
                let _ = lore_server::serve(app, listener, &config, async {
                    let _ = stopped.await;
                })
                .await;
            }
        });
        let key = runtime
            .block_on(lore_server::auth::create_key(
                &app.db,
                tenant,
                Role::Player,
                "bench",
                None,
            ))
            .map_err(failed)?
            .key;
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        Ok(Server {
            url,
            key,
            agent,
            stop,
            served,
        })
    }

    /// POSTs `body` to `path` with the key; a status other than success is an error.
    fn post(&self, path: &str, body: &str) -> Result<String, ServeBenchError> {
        let mut response = self
            .agent
            .post(&format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.key))
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(failed)?;
        let status = response.status();
        let text = response.body_mut().read_to_string().map_err(failed)?;
        if !status.is_success() {
            return Err(failed(format!("POST {path}: {status}: {text}")));
        }
        Ok(text)
    }

    /// Shuts the server down and waits for it.
    fn stop(self, runtime: &tokio::runtime::Runtime) {
        let _ = self.stop.send(());
        let _ = runtime.block_on(self.served);
    }
}

/// `wrk`'s scripts: one that plays a turn in each session in turn, one that asks the stub
/// alone for the same reply.
fn write_scripts(
    bench: &ServeBench,
    ids: &[String],
    key: &str,
) -> Result<(PathBuf, PathBuf), ServeBenchError> {
    // Each body is JSON inside a Lua string in single quotes.
    let lua = |json: serde_json::Value| json.to_string().replace('\\', "\\\\").replace('\'', "\\'");
    let turn_script = bench.work_dir.join("turn.lua");
    let sessions_lua: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    std::fs::write(
        &turn_script,
        format!(
            r#"local sessions = {{ {} }}
local n = 0
local headers = {{ ["Content-Type"] = "application/json", ["Authorization"] = "Bearer {key}" }}
local body = '{}'
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/sessions/" .. sessions[(n % #sessions) + 1] .. "/turns", headers, body)
end
"#,
            sessions_lua.join(","),
            lua(serde_json::json!({ "input": bench.turn_line })),
        ),
    )
    .map_err(failed)?;
    let stub_script = bench.work_dir.join("stub.lua");
    let stub_body = serde_json::json!({
        "model": "stub",
        "messages": [{ "role": "user", "content": bench.turn_line }],
        "stream": true,
    });
    std::fs::write(
        &stub_script,
        format!(
            r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{}'
"#,
            lua(stub_body)
        ),
    )
    .map_err(failed)?;
    Ok((turn_script, stub_script))
}

/// Runs `wrk` with `script` against `url` and reads its report.
fn wrk(
    url: &str,
    script: &Path,
    connections: usize,
    duration: Duration,
) -> Result<WrkRun, ServeBenchError> {
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let output = Command::new("wrk")
        .args(["-t", if connections > 1 { "2" } else { "1" }])
        .args(["-c", &connections.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs().max(1))])
        .args(["--timeout", "10s", "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .map_err(failed)?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(failed(format!(
            "wrk failed after {:?}: {}{}",
            started.elapsed(),
            text,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let cpu = process_cpu_seconds() - cpu_before;
    let mut run =
        parse_wrk(&text).ok_or_else(|| failed(format!("cannot read wrk's report:\n{text}")))?;
    run.cpu_us_per_request = cpu * 1e6 / run.requests.max(1) as f64;
    Ok(run)
}

fn millis(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

/// Reads the parts of `wrk --latency`'s report we use.
pub fn parse_wrk(text: &str) -> Option<WrkRun> {
    let mut run = WrkRun::default();
    let mut found = 0;
    for line in text.as_bytes().lines().map_while(Result::ok) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [p, value] if p.ends_with('%') => {
                let slot = match *p {
                    "50%" => 0,
                    "75%" => 1,
                    "90%" => 2,
                    "99%" => 3,
                    _ => continue,
                };
                run.latency_ms[slot] = millis(value)?;
                found += 1;
            }
            ["Requests/sec:", value] => run.per_second = value.parse().ok()?,
            [count, "requests", "in", ..] => run.requests = count.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                run.errors += count.parse::<u64>().ok()?
            }
            ["Socket", "errors:", rest @ ..] => {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                run.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    (found == 4 && run.per_second > 0.0).then_some(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 10s test @ http://127.0.0.1:1\n  2 threads and 64 connections\n\
            Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     90%    2.50ms\n     99%    1.01s\n\
            52000 requests in 10.00s, 9.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
            Non-2xx or 3xx responses: 4\nRequests/sec:   5200.00\n";
        let run = parse_wrk(report).unwrap();
        assert_eq!(run.requests, 52000);
        assert_eq!(run.latency_ms, [0.812, 1.2, 2.5, 1010.0]);
        assert_eq!(run.errors, 7);
        assert_eq!(run.per_second, 5200.0);
        assert!(parse_wrk("garbage").is_none());
    }
}
