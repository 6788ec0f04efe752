//! One typed configuration, from defaults, then `lore.toml`, then the environment, then flags.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lore_gen::{DryConfig, SamplerConfig};
use serde::Deserialize;

/// Which generation backend a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The GGUF model in-process (llama.cpp).
    Embedded,
    /// An OpenAI-compatible server.
    Openai,
}

/// Everything the `lore` command can be configured with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The canon store directory.
    pub store: PathBuf,
    /// Where derived files go: world snapshots (`worlds/`), the rails' embeddings of policy
    /// examples (`encoder-examples.bin`) and topic heads (`topic-heads.bin`) and, by default,
    /// the model.
    pub cache: PathBuf,
    /// Which backend generates.
    pub backend: BackendKind,
    /// The GGUF file of the embedded backend.
    pub model: PathBuf,
    /// Threads of the embedded backend.
    pub threads: usize,
    /// Context window of the embedded backend.
    pub n_ctx: u32,
    /// Prompt rendering of the embedded backend: `auto` (the GGUF's chat template if it has
    /// one, else a transcript), `transcript`, or the name of a llama.cpp built-in template.
    pub prompt_style: String,
    /// Base URL of the OpenAI-compatible backend (up to `/v1`).
    pub openai_url: String,
    /// Model name the OpenAI-compatible backend expects.
    pub openai_model: String,
    /// Name of the environment variable holding the OpenAI-compatible backend's key.
    pub openai_key_env: String,
    /// Seconds to wait on the OpenAI-compatible backend (to connect, and between reads).
    pub openai_timeout_secs: u64,
    /// Most tokens per reply.
    pub max_tokens: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Penalty on tokens that would repeat a run of earlier tokens (DRY's multiplier): keeps a
    /// small model from copying its own earlier replies. 0 turns it off.
    pub repeat_run_penalty: f32,
    /// Sampling seed.
    pub seed: u64,
    /// Replies sampled side by side per turn, of which the one that passes the output rail
    /// and that canon bears out best is kept (1: a single reply, its sentences sent as they
    /// pass). Unset: see
    /// [`Config::candidates`].
    pub candidates: Option<usize>,
    /// Address `lore serve` listens on.
    pub listen: String,
    /// Session database: `sqlite://PATH?mode=rwc` or `postgres://...`.
    pub database: String,
    /// Turns `lore serve` admits at once (generating plus queued); more get 503.
    pub max_in_flight: usize,
    /// Turns generating at once (the embedded model runs one at a time regardless).
    pub generation_slots: usize,
    /// Sessions kept warm in memory.
    pub max_hot_sessions: usize,
    /// Largest request body, in KiB.
    pub body_limit_kib: usize,
    /// Seconds shutdown waits for turns in flight before aborting them.
    pub shutdown_grace_secs: u64,
    /// Directory of the rails' sentence encoder (`model.safetensors`, `tokenizer.json`).
    pub encoder: PathBuf,
    /// A hazard head written by `lore train guard`, instead of the bundled one.
    pub hazard_head: Option<PathBuf>,
    /// Directory of the watermark and signing keys (outside canon; default `$LORE_HOME/keys`).
    pub keys: PathBuf,
}

/// `$LORE_HOME`, else `$XDG_DATA_HOME/lorekeeper`, else `~/.local/share/lorekeeper`.
pub fn lore_home() -> PathBuf {
    if let Some(home) = std::env::var_os("LORE_HOME") {
        return home.into();
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME") {
        return Path::new(&data).join("lorekeeper");
    }
    home_dir().join(".local/share/lorekeeper")
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// `$LORE_CACHE`, else `~/.cache/lorekeeper` (where `scripts/fetch-model.sh` puts the model).
fn default_cache() -> PathBuf {
    std::env::var_os("LORE_CACHE")
        .map_or_else(|| home_dir().join(".cache/lorekeeper"), PathBuf::from)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: lore_home().join("store"),
            cache: default_cache(),
            backend: BackendKind::Embedded,
            model: default_cache().join("models/gemma-3-270m-q4_k_m.gguf"),
            threads: 2,
            n_ctx: 4096,
            prompt_style: "auto".into(),
            openai_url: "http://127.0.0.1:8080/v1".into(),
            openai_model: "default".into(),
            openai_key_env: "OPENAI_API_KEY".into(),
            openai_timeout_secs: 60,
            max_tokens: 96,
            temperature: 0.7,
            repeat_run_penalty: DryConfig::default().multiplier,
            seed: 0x5eed,
            candidates: None,
            listen: "127.0.0.1:8787".into(),
            database: format!(
                "sqlite://{}?mode=rwc",
                lore_home().join("lore.db").display()
            ),
            max_in_flight: 256,
            generation_slots: 64,
            max_hot_sessions: 100_000,
            body_limit_kib: 64,
            shutdown_grace_secs: 30,
            encoder: default_cache().join("models/all-minilm-l6-v2"),
            hazard_head: None,
            keys: lore_home().join("keys"),
        }
    }
}

impl Config {
    /// Replies written per turn: as set, else 3 on the embedded backend (which decodes them
    /// side by side for about 1.5x one reply's time) and 1 on an OpenAI-compatible server
    /// (where each would be a request of its own).
    pub fn candidates(&self) -> usize {
        self.candidates.unwrap_or(match self.backend {
            BackendKind::Embedded => 3,
            BackendKind::Openai => 1,
        })
    }

    /// The sampler these settings describe.
    pub fn sampler(&self) -> SamplerConfig {
        SamplerConfig {
            temperature: self.temperature,
            seed: self.seed,
            dry: DryConfig {
                multiplier: self.repeat_run_penalty,
                ..DryConfig::default()
            },
            ..SamplerConfig::default()
        }
    }

    /// Defaults, overlaid by the config file (`--config`, else `$LORE_HOME/lore.toml` if it
    /// exists), then by `LORE_*` environment variables. Flags are applied by the caller.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let implicit = lore_home().join("lore.toml");
        let path = match file {
            Some(path) => Some(path.to_owned()),
            None => implicit.exists().then_some(implicit),
        };
        let mut config = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        if let Some(n) = config.candidates
            && !(1..=lore_gen::MAX_CANDIDATES).contains(&n)
        {
            bail!(
                "candidates = {n} in the config: replies per turn must be 1 to {}",
                lore_gen::MAX_CANDIDATES
            );
        }
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, value: String) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            value
                .parse()
                .map_err(|e| anyhow::anyhow!("environment variable {name}={value:?}: {e}"))
        }
        if let Some(v) = var("LORE_STORE") {
            self.store = v.into();
        }
        if let Some(v) = var("LORE_MODEL") {
            self.model = v.into();
        }
        if let Some(v) = var("LORE_KEYS") {
            self.keys = v.into();
        }
        if let Some(v) = var("LORE_ENCODER") {
            self.encoder = v.into();
        }
        if let Some(v) = var("LORE_BACKEND") {
            self.backend = match v.as_str() {
                "embedded" => BackendKind::Embedded,
                "openai" => BackendKind::Openai,
                other => bail!(
                    "environment variable LORE_BACKEND={other:?}: expected embedded or openai"
                ),
            };
        }
        if let Some(v) = var("LORE_THREADS") {
            self.threads = parse("LORE_THREADS", v)?;
        }
        if let Some(v) = var("LORE_OPENAI_URL") {
            self.openai_url = v;
        }
        if let Some(v) = var("LORE_OPENAI_MODEL") {
            self.openai_model = v;
        }
        if let Some(v) = var("LORE_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = var("LORE_DATABASE_URL") {
            self.database = v;
        }
        if let Some(v) = var("LORE_SEED") {
            self.seed = parse("LORE_SEED", v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_default_by_backend_unless_set() {
        assert_eq!(Config::default().candidates(), 3);
        let remote: Config = toml::from_str("backend = \"openai\"\n").unwrap();
        assert_eq!(remote.candidates(), 1);
        let set: Config = toml::from_str("backend = \"openai\"\ncandidates = 2\n").unwrap();
        assert_eq!(set.candidates(), 2);
    }

    #[test]
    fn file_then_env_override_defaults() {
        let mut config: Config = toml::from_str("threads = 4\nmax_tokens = 10\n").unwrap();
        assert_eq!(config.threads, 4);
        assert_eq!(config.n_ctx, Config::default().n_ctx);
        config
            .apply_env(|n| (n == "LORE_THREADS").then(|| "3".to_owned()))
            .unwrap();
        assert_eq!(config.threads, 3);
        assert_eq!(config.max_tokens, 10);
    }

    #[test]
    fn the_repeat_run_penalty_reaches_the_sampler() {
        let config: Config = toml::from_str("repeat_run_penalty = 0\ntemperature = 0.5\n").unwrap();
        let sampler = config.sampler();
        assert_eq!(sampler.dry.multiplier, 0.0);
        assert_eq!(sampler.temperature, 0.5);
        assert_eq!(Config::default().sampler().dry, DryConfig::default());
    }

    #[test]
    fn bad_values_are_named() {
        assert!(
            toml::from_str::<Config>("thread = 4\n")
                .unwrap_err()
                .to_string()
                .contains("thread")
        );
        let err = Config::default()
            .apply_env(|n| (n == "LORE_THREADS").then(|| "many".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("LORE_THREADS"));
    }
}
