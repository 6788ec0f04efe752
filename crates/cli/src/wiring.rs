//! What commands build from the configuration: the canon store, the generation backend, the
//! per-turn settings with the rails' encoder and the keys, the studio's credentials, the async
//! runtime.

use std::sync::Arc;

use anyhow::{Context, bail};
use lore_canon::{CanonStore, World};
use lore_engine::SessionOptions;
use lore_gen::{
    Backend, EmbeddedBackend, EmbeddedConfig, GenParams, OpenAiBackend, OpenAiConfig, PromptStyle,
};
use lore_guard::{HazardHead, Semantic};
use lore_mark::{Keyring, SigningKeys, StudioCredentials};

use crate::SessionArgs;
use crate::config::{BackendKind, Config};

/// The organisation named on certificates made on first use.
const ORGANISATION: &str = "Lorekeeper studio";

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Every key of the installation, and the embedded model's tokenizer (a remote backend's
/// replies carry no watermark to read).
pub(crate) fn verifier(config: &Config) -> anyhow::Result<lore_server::Verifier> {
    let watermarks = lore_mark::Keyring::open_watermarks(&config.keys)?;
    let signing = lore_mark::SigningKeys::open_signing(&config.keys)?;
    let tokenizer = match config.backend {
        BackendKind::Embedded => Some(Arc::new(lore_gen::GgufTokenizer::load(&config.model)?)),
        BackendKind::Openai => None,
    };
    Ok(lore_server::Verifier {
        watermarks: watermarks.materials().to_vec(),
        public_keys: signing.public_keys(),
        tokenizer,
        c2pa: Some(credentials(config)?),
    })
}

/// Opens the configured store for reading; a missing store is an error, not a new empty one.
pub fn open_store(config: &Config) -> anyhow::Result<CanonStore> {
    require_store(config)?;
    Ok(CanonStore::open_read_only(&config.store)?)
}

/// Opens the configured store for writing; a missing store is an error, not a new empty one.
pub fn open_writable(config: &Config) -> anyhow::Result<CanonStore> {
    require_store(config)?;
    Ok(CanonStore::open(&config.store)?)
}

fn require_store(config: &Config) -> anyhow::Result<()> {
    if !config.store.exists() {
        bail!(
            "no canon store at {}; import canon first with `lore import --store {} FILE...`",
            config.store.display(),
            config.store.display()
        );
    }
    Ok(())
}

/// The world of `args.production`, and its character and beat.
pub(crate) fn load(
    config: &Config,
    args: &SessionArgs,
) -> anyhow::Result<(Arc<World>, lore_canon::Resolved, CanonStore)> {
    let store = open_store(config)?;
    let world = World::load_cached(&store, &args.production, &config.cache.join("worlds"))?;
    let resolved = world.resolve(&store, &args.character, args.at.as_deref())?;
    Ok((Arc::new(world), resolved, store))
}

pub(crate) fn backend(config: &Config) -> anyhow::Result<Box<dyn Backend>> {
    Ok(match config.backend {
        BackendKind::Embedded => {
            let mut embedded = EmbeddedConfig::new(config.model.clone());
            embedded.threads = config.threads;
            embedded.n_ctx = config.n_ctx;
            embedded.prompt_style = match config.prompt_style.as_str() {
                "auto" => PromptStyle::Auto,
                "transcript" => PromptStyle::Transcript,
                name => PromptStyle::Named(name.to_owned()),
            };
            Box::new(EmbeddedBackend::load(embedded)?)
        }
        BackendKind::Openai => {
            let mut openai =
                OpenAiConfig::new(config.openai_url.clone(), config.openai_model.clone());
            openai.api_key = std::env::var(&config.openai_key_env).ok();
            openai.connect_timeout = std::time::Duration::from_secs(config.openai_timeout_secs);
            openai.read_timeout = std::time::Duration::from_secs(config.openai_timeout_secs);
            Box::new(OpenAiBackend::new(openai))
        }
    })
}

/// Per-turn settings from the configuration, with the rails' embedding layer loaded and the
/// current watermark and signing keys (made on first use, so that no reply goes unmarked
/// or unsigned).
pub(crate) fn session_options(config: &Config) -> anyhow::Result<SessionOptions> {
    let watermark = Keyring::open_watermarks(&config.keys)?.current_or_create()?;
    let signer = SigningKeys::open_signing(&config.keys)?.current_or_create()?;
    Ok(SessionOptions {
        generation: GenParams {
            max_tokens: config.max_tokens,
            sampler: config.sampler(),
            stop_rules: true,
            watermark: Some(watermark),
            structured: None,
        },
        candidates: config.candidates(),
        semantic: Some(Arc::new(load_semantic(config)?)),
        signer: Some(signer),
        ..SessionOptions::default()
    })
}

/// The rails' embedding layer: the encoder from `config.encoder`, with the bundled hazard head
/// or the one `config.hazard_head` names, keeping policy examples' embeddings under
/// `config.cache`.
pub(crate) fn load_semantic(config: &Config) -> anyhow::Result<Semantic> {
    let mut semantic = Semantic::load(&config.encoder).with_context(|| {
        format!(
            "loading the rails' encoder from {} (scripts/setup.sh fetches it; LORE_ENCODER \
             points elsewhere)",
            config.encoder.display()
        )
    })?;
    if let Some(path) = &config.hazard_head {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the hazard head {}", path.display()))?;
        let head = HazardHead::from_json(&text)
            .with_context(|| format!("{} is not a hazard head", path.display()))?;
        semantic = Semantic::new(semantic.encoder().clone(), head);
    }
    // Policy examples' embeddings, tunings and topic heads survive between runs: a policy's
    // rails are then built without embedding every example, tuning the encoder and fitting
    // its heads again. Tuning takes minutes, the first time a policy is seen: it shows a bar.
    Ok(semantic
        .with_cache(&config.cache)?
        .with_progress(Arc::new(tuning_progress())))
}

/// A progress bar for tuning the encoder to a policy, drawn when tuning starts.
fn tuning_progress() -> impl Fn(usize, usize) + Send + Sync {
    let bar = std::sync::OnceLock::<indicatif::ProgressBar>::new();
    move |done, all| {
        let bar = bar.get_or_init(|| {
            let bar = indicatif::ProgressBar::new(all as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {bar:30} {pos}/{len} pairs, {eta} left",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message("tuning the encoder to the policy (once per policy edit)");
            bar
        });
        bar.set_position(done as u64);
        if done == all {
            bar.finish_and_clear();
        }
    }
}

/// The studio's C2PA credentials, made on first use.
pub(crate) fn credentials(config: &Config) -> anyhow::Result<StudioCredentials> {
    Ok(StudioCredentials::open_or_create(
        &config.keys,
        ORGANISATION,
    )?)
}
