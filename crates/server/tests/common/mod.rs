//! A real server on a loopback port over a temporary canon store and database, driven with
//! a plain blocking HTTP client.
#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lore_canon::CanonStore;
use lore_engine::SessionOptions;
use lore_gen::{Backend, EmbeddedBackend, EmbeddedConfig, GenParams};
use lore_server::{App, Role, ServerConfig, TurnLimits, Verifier};

/// A second studio's production, to check that tenants never see each other.
const RIVAL: &str = r#"
@prefix lore: <https://lorekeeper.dev/ns/lore#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix rv: <urn:rival:> .
rv:g {
  rv:harbour a lore:Production ; lore:tenant "rival" ; rdfs:label "Harbour Lights" ;
      lore:graph rv:g ; lore:rating lore:Teen .
  rv:mara a lore:Character ; rdfs:label "Mara Quay" ; lore:appearsIn rv:harbour ;
      lore:persona "Mara runs the harbour's night ferry." .
}
"#;

pub fn model_path() -> PathBuf {
    std::env::var_os("LORE_MODEL").map_or_else(
        || {
            Path::new(&std::env::var("HOME").unwrap_or_default())
                .join(".cache/lorekeeper/models/gemma-3-270m-q4_k_m.gguf")
        },
        PathBuf::from,
    )
}

pub fn embedded() -> Arc<dyn Backend> {
    let mut config = EmbeddedConfig::new(model_path());
    config.n_ctx = 2048;
    Arc::new(
        EmbeddedBackend::load(config)
            .expect("the embedded model loads (scripts/test.sh fetches it)"),
    )
}

/// Canon with the sample world (tenant "brindlemoor") and a rival studio's production.
pub struct Canon {
    pub dir: tempfile::TempDir,
    pub store: Arc<CanonStore>,
}

pub fn canon() -> Canon {
    let dir = tempfile::tempdir().unwrap();
    let rival = dir.path().join("rival.trig");
    std::fs::write(&rival, RIVAL).unwrap();
    let world = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../world");
    let store = CanonStore::open(&dir.path().join("store")).unwrap();
    store
        .import(
            &[
                world.join("policy.trig"),
                world.join("brindlemoor.trig"),
                rival,
            ],
            lore_canon::CommitMeta::new("test", "import"),
            |_| (),
        )
        .unwrap();
    Canon {
        dir,
        store: Arc::new(store),
    }
}

pub struct Options {
    pub database: String,
    pub backend: Arc<dyn Backend>,
    pub max_in_flight: usize,
    pub max_tokens: usize,
    /// Off: a reply runs to `max_tokens`, for tests that need a turn to stay in flight.
    pub stop_rules: bool,
    pub history_lines: usize,
    pub shutdown_grace: Duration,
}

impl Options {
    pub fn new(database: String, backend: Arc<dyn Backend>) -> Options {
        Options {
            database,
            backend,
            max_in_flight: 16,
            max_tokens: 8,
            stop_rules: true,
            history_lines: 16,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("lore.db").display())
}

pub struct Server {
    pub url: String,
    pub app: Arc<App>,
    pub runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

pub fn start(canon: &Canon, options: Options) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Every test server marks and signs, as `lore serve` does, with keys of its own.
    let keys = canon.dir.path().join("keys");
    let mut watermarks = lore_mark::Keyring::open_watermarks(&keys).unwrap();
    let mut signing = lore_mark::SigningKeys::open_signing(&keys).unwrap();
    let watermark = watermarks.current_or_create().unwrap();
    let signer = signing.current_or_create().unwrap();
    let verifier = Verifier {
        watermarks: watermarks.materials().to_vec(),
        public_keys: signing.public_keys(),
        tokenizer: Some(Arc::new(
            lore_gen::GgufTokenizer::load(&model_path()).unwrap(),
        )),
        c2pa: Some(lore_mark::StudioCredentials::open_or_create(&keys, "Test Studio").unwrap()),
    };
    let config = ServerConfig {
        cache: canon.dir.path().join("worlds"),
        session: SessionOptions {
            history_lines: options.history_lines,
            generation: GenParams {
                max_tokens: options.max_tokens,
                stop_rules: options.stop_rules,
                watermark: Some(watermark),
                ..GenParams::default()
            },
            signer: Some(signer),
            ..SessionOptions::default()
        },
        limits: TurnLimits {
            max_in_flight: options.max_in_flight,
            generation_slots: 1,
            max_hot_sessions: 1000,
        },
        // As `lore serve` by default: room for a text with its C2PA sidecar.
        body_limit: 64 * 1024,
        shutdown_grace: options.shutdown_grace,
        key_cache_ttl: Duration::from_secs(5),
        verifier,
    };
    let (app, listener) = runtime.block_on(async {
        let app = lore_server::build(
            canon.store.clone(),
            &options.database,
            options.backend,
            &config,
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        (app, listener)
    });
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = runtime.spawn({
        let app = app.clone();
        async move {
            lore_server::serve(app, listener, &config, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }
    });
    Server {
        url,
        app,
        runtime,
        stop: Some(stop),
        done: Some(done),
    }
}

impl Server {
    pub fn key(&self, tenant: &str, role: Role) -> String {
        self.runtime
            .block_on(lore_server::auth::create_key(
                &self.app.db,
                tenant,
                role,
                "test",
                None,
            ))
            .unwrap()
            .key
    }

    /// Begins a graceful shutdown and returns at once.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits until the server has stopped.
    pub fn stop(mut self) {
        self.begin_shutdown();
        if let Some(done) = self.done.take() {
            self.runtime.block_on(done).unwrap();
        }
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build(),
    )
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request: `method` `url` with an optional key and body (sent as JSON unless
/// `content_type` says otherwise).
pub fn call(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<&[u8]>,
    content_type: Option<&str>,
) -> Reply {
    let mut headers = Vec::new();
    if let Some(key) = key {
        headers.push(("Authorization", format!("Bearer {key}")));
    }
    if body.is_some() {
        headers.push((
            "Content-Type",
            content_type.unwrap_or("application/json").to_owned(),
        ));
    }
    call_with(method, url, &headers, body)
}

/// A web UI page, signed in with `key` as the UI's cookie.
pub fn ui_page(url: &str, key: &str) -> Reply {
    call_with("GET", url, &[("Cookie", format!("lore_key={key}"))], None)
}

fn call_with(method: &str, url: &str, headers: &[(&str, String)], body: Option<&[u8]>) -> Reply {
    let agent = agent();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let request = builder.body(body.unwrap_or_default().to_vec()).unwrap();
    let mut response = agent.run(request).unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let mut body = String::new();
    response
        .body_mut()
        .as_reader()
        .read_to_string(&mut body)
        .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str, key: Option<&str>) -> Reply {
    call("GET", url, key, None, None)
}

pub fn post(url: &str, key: Option<&str>, body: &serde_json::Value) -> Reply {
    call("POST", url, key, Some(body.to_string().as_bytes()), None)
}

/// Opens a session with Odile in Lanterns; returns its id.
pub fn open_session(server: &Server, key: &str, player: &str) -> String {
    let reply = post(
        &format!("{}/v1/sessions", server.url),
        Some(key),
        &serde_json::json!({ "production": "lanterns", "character": "odile", "player": player, "at": "2" }),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// Records a game event in `session`: the player went to the Guildhall.
pub fn go_to_the_guildhall(server: &Server, key: &str, session: &str) {
    let reply = post(
        &format!("{}/v1/sessions/{session}/events", server.url),
        Some(key),
        &serde_json::json!({"action": "goto", "targets": ["the Guildhall"]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// An open SSE response, read event by event.
pub struct Events {
    lines: std::io::Lines<BufReader<Box<dyn Read + Send>>>,
}

impl Events {
    pub fn open(url: &str, key: &str, body: &serde_json::Value) -> Events {
        Events::request("POST", url, key, body.to_string().into_bytes())
    }

    /// A stream a GET opens.
    pub fn get(url: &str, key: &str) -> Events {
        Events::request("GET", url, key, Vec::new())
    }

    fn request(method: &str, url: &str, key: &str, body: Vec<u8>) -> Events {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Authorization", format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .header("Accept", "text/event-stream")
            .body(body)
            .unwrap();
        let response = agent().run(request).unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let reader: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
        Events {
            lines: BufReader::new(reader).lines(),
        }
    }

    /// The next event's name and data; `None` at the end of the stream.
    pub fn next_event(&mut self) -> Option<(String, String)> {
        let mut name = String::from("message");
        let mut data = String::new();
        for line in self.lines.by_ref() {
            let line = line.ok()?;
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                return Some((name, data));
            }
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        None
    }
}
