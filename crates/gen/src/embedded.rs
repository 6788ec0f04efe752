//! The embedded backend: any GGUF model run in-process by llama.cpp.
//!
//! llama.cpp contexts borrow their model, so the model and every session's context live on
//! one worker thread that owns them; sessions are handles that send it jobs. This also
//! serialises generation, which on a few cores is what we want: one turn at a time gets
//! all the threads.

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::vocab::LlamaVocab;

use crate::prompt::Conversation;
use crate::sampler::{RunRole, RunRoles, SamplerConfig};
use lore_mark::Watermark;

use crate::{
    Backend, BackendInfo, GenError, GenParams, Generation, Sampler, Session, StopReason,
    StopScanner, Structured, TextScore,
};

/// How the embedded model runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// The GGUF file.
    pub model: PathBuf,
    /// CPU threads for generation and prompt evaluation.
    pub threads: usize,
    /// Context window per session, in tokens.
    pub n_ctx: u32,
    /// Sessions whose evaluated prefix is kept in memory; the least recently used beyond
    /// this re-evaluate their prompt on their next turn.
    pub max_live_sessions: usize,
    /// How prompts are rendered.
    pub prompt_style: PromptStyle,
}

/// How the embedded backend renders a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptStyle {
    /// The model's own chat template if the GGUF has one, else a transcript.
    Auto,
    /// Always a transcript with stop rules (for base models).
    Transcript,
    /// A chat template built into llama.cpp, by name (`chatml`, `gemma`, `llama3`, ...),
    /// for GGUF files that lack one.
    Named(String),
}

impl EmbeddedConfig {
    /// Defaults for `model`: 2 threads, 4096 tokens of context, 8 live sessions.
    pub fn new(model: PathBuf) -> EmbeddedConfig {
        EmbeddedConfig {
            model,
            threads: 2,
            n_ctx: 4096,
            max_live_sessions: 8,
            prompt_style: PromptStyle::Auto,
        }
    }
}

/// Tokens a reply may run past `max_tokens` to finish its sentence.
const SENTENCE_GRACE: usize = 24;

/// Most replies decoded side by side ([`Session::generate_candidates`]); every context is
/// made with this many sequences.
pub const MAX_CANDIDATES: usize = 8;

enum Job {
    Generate {
        session: u64,
        // Boxed: a conversation is large next to a `Close`.
        conversation: Box<Conversation>,
        params: GenParams,
        events: SyncSender<Event<Generation>>,
    },
    Candidates {
        session: u64,
        conversation: Box<Conversation>,
        params: GenParams,
        samplers: Vec<SamplerConfig>,
        events: SyncSender<Event<Vec<Generation>>>,
    },
    Score {
        session: u64,
        conversation: Box<Conversation>,
        continuation: String,
        reply: SyncSender<Result<TextScore, GenError>>,
    },
    Close {
        session: u64,
    },
    /// Free every context and the model, and end.
    Stop,
}

enum Event<T> {
    Text(String),
    Done(Result<T, GenError>),
}

/// A GGUF model served by a worker thread.
pub struct EmbeddedBackend {
    jobs: Mutex<Sender<Job>>,
    /// Joined on drop (see there).
    worker: Option<thread::JoinHandle<()>>,
    info: BackendInfo,
    next_session: std::sync::atomic::AtomicU64,
}

/// The process-wide llama.cpp state (it may be initialised only once per process); public
/// so that benchmarks can run a bare llama.cpp loop beside the engine in one process.
pub fn llama_backend() -> Result<&'static LlamaBackend, GenError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| GenError::Runtime(e.clone()))
}

/// Checks the file before llama.cpp sees it, so the common mistakes get a clear message.
pub(crate) fn check_model_file(path: &Path) -> Result<(), GenError> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|_| GenError::ModelMissing {
        path: path.to_owned(),
    })?;
    if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        return Err(GenError::NotGguf {
            path: path.to_owned(),
        });
    }
    Ok(())
}

impl EmbeddedBackend {
    /// Loads the model on a new worker thread; returns once it is loaded or has failed.
    pub fn load(config: EmbeddedConfig) -> Result<EmbeddedBackend, GenError> {
        check_model_file(&config.model)?;
        // For provenance: which exact weights wrote a reply.
        let model_sha256 =
            lore_mark::provenance::sha256_file(&config.model).map_err(|e| GenError::ModelLoad {
                path: config.model.clone(),
                reason: e.to_string(),
            })?;
        let (jobs, receiver) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let model_name = config.model.display().to_string();
        let worker = thread::Builder::new()
            .name("lore-llama".into())
            .spawn(move || worker(config, receiver, ready_tx))
            .map_err(|e| GenError::Runtime(format!("cannot start the model thread: {e}")))?;
        let chat_template = ready_rx.recv().map_err(|_| GenError::WorkerGone)??;
        Ok(EmbeddedBackend {
            jobs: Mutex::new(jobs),
            worker: Some(worker),
            info: BackendInfo {
                kind: "embedded",
                model: model_name,
                chat_template,
                model_sha256: Some(model_sha256),
            },
            next_session: std::sync::atomic::AtomicU64::new(1),
        })
    }
}

impl Drop for EmbeddedBackend {
    /// Stops the worker and waits for it to free its contexts and the model. A worker left
    /// running frees them (when the last session's sender goes) while the process exits and
    /// tears down llama.cpp's globals: a segfault after the work is done. Sessions still open
    /// get `WorkerGone` from then on.
    fn drop(&mut self) {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        // The worker may already be gone (it failed); then there is nothing to wait for.
        let _ = jobs.send(Job::Stop);
        drop(jobs);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Backend for EmbeddedBackend {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn open_session(&self) -> Result<Box<dyn Session>, GenError> {
        let id = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let jobs = self.jobs.lock().map_err(|_| GenError::WorkerGone)?.clone();
        Ok(Box::new(EmbeddedSession { id, jobs }))
    }
}

struct EmbeddedSession {
    id: u64,
    jobs: Sender<Job>,
}

impl Session for EmbeddedSession {
    fn generate(
        &mut self,
        conversation: &Conversation,
        params: &GenParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GenError> {
        // Bounded, so a slow reader slows the worker rather than growing a buffer.
        let (events, receiver) = mpsc::sync_channel(64);
        self.jobs
            .send(Job::Generate {
                session: self.id,
                conversation: Box::new(conversation.clone()),
                params: params.clone(),
                events,
            })
            .map_err(|_| GenError::WorkerGone)?;
        drain(receiver, on_text, || {
            Generation::nothing(StopReason::Cancelled)
        })
    }

    fn generate_candidates(
        &mut self,
        conversation: &Conversation,
        params: &GenParams,
        samplers: &[SamplerConfig],
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<Generation>, GenError> {
        let (events, receiver) = mpsc::sync_channel(64);
        self.jobs
            .send(Job::Candidates {
                session: self.id,
                conversation: Box::new(conversation.clone()),
                params: params.clone(),
                samplers: samplers.to_vec(),
                events,
            })
            .map_err(|_| GenError::WorkerGone)?;
        drain(receiver, &mut |_| keep_going(), || {
            vec![Generation::nothing(StopReason::Cancelled); samplers.len()]
        })
    }

    fn score(
        &mut self,
        conversation: &Conversation,
        continuation: &str,
    ) -> Result<TextScore, GenError> {
        let (reply, receiver) = mpsc::sync_channel(1);
        self.jobs
            .send(Job::Score {
                session: self.id,
                conversation: Box::new(conversation.clone()),
                continuation: continuation.to_owned(),
                reply,
            })
            .map_err(|_| GenError::WorkerGone)?;
        receiver.recv().map_err(|_| GenError::WorkerGone)?
    }
}

/// Forwards streamed text; dropping the receiver (on cancel) tells the worker to stop, and
/// the result is then `cancelled()`.
fn drain<T>(
    receiver: Receiver<Event<T>>,
    on_text: &mut dyn FnMut(&str) -> bool,
    cancelled: impl FnOnce() -> T,
) -> Result<T, GenError> {
    loop {
        match receiver.recv().map_err(|_| GenError::WorkerGone)? {
            Event::Text(text) => {
                if !on_text(&text) {
                    drop(receiver);
                    return Ok(cancelled());
                }
            }
            Event::Done(result) => return result,
        }
    }
}

impl Drop for EmbeddedSession {
    fn drop(&mut self) {
        // The worker may already be gone at shutdown; nothing to free then.
        let _ = self.jobs.send(Job::Close { session: self.id });
    }
}

/// What the worker holds for every job: the model, its chat template, and each token's part in
/// the sampler's runs.
struct Runtime<'m> {
    model: &'m LlamaModel,
    template: Option<&'m LlamaChatTemplate>,
    run_roles: &'m RunRoles,
}

struct Live<'m> {
    context: LlamaContext<'m>,
    /// Tokens whose keys and values are in the context's cache, in order.
    tokens: Vec<LlamaToken>,
    last_used: u64,
}

fn worker(config: EmbeddedConfig, jobs: Receiver<Job>, ready: Sender<Result<bool, GenError>>) {
    let loaded = llama_backend().and_then(|backend| {
        LlamaModel::load_from_file(backend, &config.model, &LlamaModelParams::default())
            .map(|model| (backend, model))
            .map_err(|e| GenError::ModelLoad {
                path: config.model.clone(),
                reason: e.to_string(),
            })
    });
    let (backend, model) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let template = match &config.prompt_style {
        PromptStyle::Auto => model.chat_template(None).ok(),
        PromptStyle::Transcript => None,
        PromptStyle::Named(name) => {
            // Try the template once now, so an unknown name fails at start, not mid-session.
            let probe = LlamaChatMessage::new("user".into(), "hello".into());
            let template = LlamaChatTemplate::new(name).ok().filter(|t| {
                probe.as_ref().is_ok_and(|m| {
                    model
                        .apply_chat_template(t, std::slice::from_ref(m), true)
                        .is_ok()
                })
            });
            if template.is_none() {
                let _ = ready.send(Err(GenError::Runtime(format!(
                    "llama.cpp has no chat template named {name:?} (try chatml, gemma, llama3)"
                ))));
                return;
            }
            template
        }
    };
    if ready.send(Ok(template.is_some())).is_err() {
        return;
    }
    let run_roles = run_roles(&model);
    let runtime = Runtime {
        model: &model,
        template: template.as_ref(),
        run_roles: &run_roles,
    };
    let mut live: HashMap<u64, Live<'_>> = HashMap::new();
    let mut clock = 0u64;
    for job in jobs {
        match job {
            Job::Close { session } => {
                live.remove(&session);
            }
            Job::Stop => return,
            Job::Generate {
                session,
                conversation,
                params,
                events,
            } => {
                clock += 1;
                let result = live_state(&mut live, session, clock, &model, backend, &config)
                    .and_then(|state| generate(&runtime, state, &conversation, &params, &events));
                if result.is_err() {
                    // A failed turn may leave the cache out of step with `tokens`: start afresh.
                    live.remove(&session);
                }
                let _ = events.send(Event::Done(result));
            }
            Job::Candidates {
                session,
                conversation,
                params,
                samplers,
                events,
            } => {
                clock += 1;
                let result = live_state(&mut live, session, clock, &model, backend, &config)
                    .and_then(|state| {
                        generate_candidates(
                            &runtime,
                            state,
                            &conversation,
                            &params,
                            &samplers,
                            &events,
                        )
                    });
                if result.is_err() {
                    live.remove(&session);
                }
                let _ = events.send(Event::Done(result));
            }
            Job::Score {
                session,
                conversation,
                continuation,
                reply,
            } => {
                clock += 1;
                let result = live_state(&mut live, session, clock, &model, backend, &config)
                    .and_then(|state| {
                        score(
                            &model,
                            template.as_ref(),
                            state,
                            &conversation,
                            &continuation,
                        )
                    });
                if result.is_err() {
                    live.remove(&session);
                }
                let _ = reply.send(result);
            }
        }
    }
}

/// The session's context, made (evicting the least recently used beyond the limit) if it has
/// none.
fn live_state<'a, 'm>(
    live: &'a mut HashMap<u64, Live<'m>>,
    session: u64,
    clock: u64,
    model: &'m LlamaModel,
    backend: &LlamaBackend,
    config: &EmbeddedConfig,
) -> Result<&'a mut Live<'m>, GenError> {
    if !live.contains_key(&session)
        && live.len() >= config.max_live_sessions.max(1)
        && let Some(oldest) = live
            .iter()
            .min_by_key(|(_, l)| l.last_used)
            .map(|(id, _)| *id)
    {
        live.remove(&oldest);
    }
    let state = match live.entry(session) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Live {
            context: new_context(model, backend, config)?,
            tokens: Vec::new(),
            last_used: clock,
        }),
    };
    state.last_used = clock;
    Ok(state)
}

fn new_context<'m>(
    model: &'m LlamaModel,
    backend: &LlamaBackend,
    config: &EmbeddedConfig,
) -> Result<LlamaContext<'m>, GenError> {
    let threads = i32::try_from(config.threads.max(1)).unwrap_or(i32::MAX);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.n_ctx))
        .with_n_batch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        // Candidate replies share the prompt's cells, so the whole window stays one session's.
        .with_n_seq_max(MAX_CANDIDATES as u32)
        .with_kv_unified(true);
    model
        .new_context(backend, params)
        .map_err(|e| GenError::Runtime(format!("cannot create a context: {e}")))
}

/// Evaluates `tokens` into the session's cache, keeping the longest prefix already there
/// (but always evaluating the last token, for its logits). Returns how many tokens were kept
/// and the batch, whose last entry holds the logits of the next token.
fn prefill<'b>(
    state: &mut Live<'_>,
    tokens: &[LlamaToken],
) -> Result<(usize, LlamaBatch<'b>), GenError> {
    let mut keep = state
        .tokens
        .iter()
        .zip(tokens)
        .take_while(|(a, b)| a == b)
        .count();
    keep = keep.min(tokens.len() - 1);
    state
        .context
        .kv_cache_seq_rm(0, Some(keep as u32), None)
        .map_err(|e| GenError::Runtime(format!("cache: {e}")))?;
    state.tokens.truncate(keep);
    let n_batch = (state.context.n_batch() as usize).max(1);
    let mut batch = LlamaBatch::new(n_batch, 1);
    for (chunk_index, chunk) in tokens[keep..].chunks(n_batch).enumerate() {
        batch.clear();
        let base = keep + chunk_index * n_batch;
        for (i, token) in chunk.iter().enumerate() {
            let pos = base + i;
            batch
                .add(*token, pos as i32, &[0], pos == tokens.len() - 1)
                .map_err(|e| GenError::Runtime(format!("batch: {e}")))?;
        }
        state
            .context
            .decode(&mut batch)
            .map_err(|e| GenError::Runtime(format!("decode: {e}")))?;
        state.tokens.extend_from_slice(chunk);
    }
    Ok((keep, batch))
}

/// Positions scored per decode: each brings a vocabulary's worth of logits (1 MiB for
/// Gemma 3), so a whole reply at once would allocate hundreds of MiB.
const SCORE_CHUNK: usize = 32;

/// How likely the model finds `continuation` after the conversation's prompt.
fn score(
    model: &LlamaModel,
    template: Option<&LlamaChatTemplate>,
    state: &mut Live<'_>,
    conversation: &Conversation,
    continuation: &str,
) -> Result<TextScore, GenError> {
    let (prompt, _) = render(model, template, conversation)?;
    let vocab = model.vocab();
    let prompt_tokens = vocab.tokenize(prompt.as_bytes(), true, template.is_some());
    let text_tokens = vocab.tokenize(continuation.as_bytes(), false, false);
    let n_ctx = state.context.n_ctx() as usize;
    if prompt_tokens.is_empty() {
        return Err(GenError::Runtime("the prompt is empty".into()));
    }
    if prompt_tokens.len() + text_tokens.len() > n_ctx {
        return Err(GenError::ContextFull {
            needed: prompt_tokens.len() + text_tokens.len(),
            n_ctx,
        });
    }
    let (_, batch) = prefill(state, &prompt_tokens)?;
    let mut nll = 0.0;
    let Some((&first, rest)) = text_tokens.split_first() else {
        return Ok(TextScore { tokens: 0, nll });
    };
    nll += negative_log_likelihood(state.context.get_logits_ith(batch.n_tokens() - 1), first);
    // Each chunk feeds tokens i..j and reads the logits that predict tokens i+1..j+1.
    let mut batch = LlamaBatch::new(SCORE_CHUNK, 1);
    let fed: Vec<LlamaToken> = std::iter::once(first).chain(rest.iter().copied()).collect();
    for (chunk_index, chunk) in fed[..fed.len() - 1].chunks(SCORE_CHUNK).enumerate() {
        batch.clear();
        for (i, token) in chunk.iter().enumerate() {
            let pos = state.tokens.len() + i;
            batch
                .add(*token, pos as i32, &[0], true)
                .map_err(|e| GenError::Runtime(format!("batch: {e}")))?;
        }
        state
            .context
            .decode(&mut batch)
            .map_err(|e| GenError::Runtime(format!("decode: {e}")))?;
        state.tokens.extend_from_slice(chunk);
        for i in 0..chunk.len() {
            let next = rest[chunk_index * SCORE_CHUNK + i];
            nll += negative_log_likelihood(state.context.get_logits_ith(i as i32), next);
        }
    }
    Ok(TextScore {
        tokens: text_tokens.len(),
        nll,
    })
}

/// −log p(token) under the softmax of `logits`.
fn negative_log_likelihood(logits: &[f32], token: LlamaToken) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let logit = logits
        .get(token.0 as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    sum.ln() - f64::from(logit - max)
}

/// Renders the conversation the way this model expects, with its stop strings.
fn render(
    model: &LlamaModel,
    template: Option<&LlamaChatTemplate>,
    conversation: &Conversation,
) -> Result<(String, Vec<String>), GenError> {
    let Some(template) = template else {
        return Ok((conversation.transcript(), conversation.stop_strings()));
    };
    let messages = conversation
        .messages()
        .into_iter()
        .map(|(role, content)| LlamaChatMessage::new(role.to_owned(), content.into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| GenError::Runtime(format!("chat message: {e}")))?;
    let prompt = model
        .apply_chat_template(template, &messages, true)
        .map_err(|e| GenError::Runtime(format!("chat template: {e}")))?;
    // Chat models end their turn with an end-of-generation token; speaker labels still stop
    // a model that starts writing the player's side.
    let mut stops = conversation.stop_strings();
    stops.retain(|s| s != "\n");
    Ok((prompt, stops))
}

/// Each token's part in the sampler's DRY runs ([`RunRole`]), from its text: a line break,
/// colon, double quote or asterisk anywhere makes a breaker; nothing but sentence-ending
/// marks, a sentence end.
fn run_roles(model: &LlamaModel) -> RunRoles {
    let vocab = model.vocab();
    let mut piece = Vec::new();
    (0..model.n_vocab().max(0))
        .map(|id| {
            piece.clear();
            vocab.token_to_piece_into(LlamaToken(id), &mut piece, true, None);
            let text = String::from_utf8_lossy(&piece);
            if text.contains(['\n', ':', '"', '*']) {
                RunRole::Breaker
            } else if !text.trim().is_empty()
                && text
                    .trim()
                    .chars()
                    .all(|c| matches!(c, '.' | '!' | '?' | '\u{2026}'))
            {
                RunRole::SentenceEnd
            } else {
                RunRole::Word
            }
        })
        .collect()
}

/// A generation's prompt: its tokens, how many of them the cache already held, and when the
/// call began and how long the prompt took.
struct Prefilled {
    tokens: usize,
    kept: usize,
    started: Instant,
    time: Duration,
}

/// One reply being decoded: its sampler, its stop rules and what it has written so far.
struct Lane {
    sampler: Sampler,
    scanner: StopScanner,
    utf8: Vec<u8>,
    generated: usize,
    first_token_at: Option<Duration>,
}

impl Lane {
    /// A lane whose sampler has seen `prompt` (its repetition penalty and the watermark's
    /// context start there) and that stops at `stops`.
    fn new(
        sampler: SamplerConfig,
        params: &GenParams,
        run_roles: &RunRoles,
        prompt: &[LlamaToken],
        stops: Vec<String>,
    ) -> Lane {
        let mut sampler = Sampler::new(sampler, params.watermark.clone());
        // Structured output repeats its keys by design: the run penalty is for prose.
        if params.structured.is_none() {
            sampler = sampler.with_run_roles(run_roles.clone());
        }
        for token in prompt {
            sampler.accept(token.0 as u32);
        }
        Lane {
            sampler,
            scanner: StopScanner::new(stops),
            utf8: Vec::new(),
            generated: 0,
            first_token_at: None,
        }
    }

    /// Whether the reply has used its tokens. With stop rules, a reply may run a little past
    /// `max_tokens` to end its sentence rather than stop mid-word in front of the player.
    fn spent(&self, max_tokens: usize, stop_rules: bool) -> bool {
        if self.generated < max_tokens {
            return false;
        }
        let ends_sentence = self
            .scanner
            .text()
            .trim_end()
            .ends_with(['.', '!', '?', '"', '\u{2026}']);
        !stop_rules || ends_sentence || self.generated >= max_tokens + SENTENCE_GRACE
    }

    /// Takes the chosen `token`: the text it lets through, and why the reply ends there if it
    /// does.
    fn take(
        &mut self,
        vocab: &LlamaVocab<'_>,
        token: LlamaToken,
        ends_at_eog: bool,
        started: Instant,
    ) -> (String, Option<StopReason>) {
        self.generated += 1;
        self.first_token_at.get_or_insert_with(|| started.elapsed());
        if ends_at_eog && vocab.is_eog(token) {
            return (String::new(), Some(StopReason::EndOfTurn));
        }
        let shown = self.scanner.push(&piece(vocab, token, &mut self.utf8));
        let stop = self.scanner.stopped().then_some(StopReason::Stop);
        (shown, stop)
    }

    /// The finished reply; `rest` receives what the stop rules still held back.
    fn finish(
        mut self,
        stop: StopReason,
        prompt: &Prefilled,
        params: &GenParams,
        rest: impl FnOnce(String),
    ) -> Generation {
        let held = self.scanner.finish();
        if !held.is_empty() {
            rest(held);
        }
        let started = prompt.started;
        let time_to_first_token = self.first_token_at.unwrap_or_else(|| started.elapsed());
        Generation {
            text: self.scanner.text().trim_end().to_owned(),
            prompt_tokens: prompt.tokens,
            evaluated_tokens: prompt.tokens - prompt.kept,
            generated_tokens: self.generated,
            time_to_first_token,
            prompt_time: prompt.time,
            generation_time: started.elapsed().saturating_sub(time_to_first_token),
            stop,
            watermark: params.watermark.as_ref().map(Watermark::settings),
        }
    }
}

fn generate(
    runtime: &Runtime<'_>,
    state: &mut Live<'_>,
    conversation: &Conversation,
    params: &GenParams,
    events: &SyncSender<Event<Generation>>,
) -> Result<Generation, GenError> {
    let started = Instant::now();
    let n_ctx = state.context.n_ctx() as usize;
    let Runtime {
        model,
        template,
        run_roles,
    } = *runtime;
    let (tokens, stops) = prompt_tokens(model, template, conversation, params, 1, n_ctx)?;
    let vocab = model.vocab();

    let (keep, mut batch) = prefill(state, &tokens)?;
    // Structured output is ended by its grammar, never by a stop string.
    let stop_rules = params.stop_rules && params.structured.is_none();
    let stops = if stop_rules { stops } else { Vec::new() };
    let mut lane = Lane::new(params.sampler.clone(), params, run_roles, &tokens, stops);
    let prompt_time = started.elapsed();

    let mut grammar = params
        .structured
        .as_ref()
        .map(|s| Grammar::new(model, s))
        .transpose()?;
    let mut logits_index = batch.n_tokens() - 1;
    let stop = loop {
        if lane.spent(params.max_tokens, stop_rules) {
            if let Some(structured) = &params.structured {
                return Err(GenError::Unfinished {
                    name: structured.name.clone(),
                    max_tokens: params.max_tokens,
                });
            }
            break StopReason::Length;
        }
        let logits = state.context.get_logits_ith(logits_index);
        let token = match grammar.as_mut() {
            Some(grammar) => grammar.pick(&mut lane.sampler, logits)?,
            None => LlamaToken(lane.sampler.sample(logits) as i32),
        };
        // The grammar allows the end of the text only once the value is complete.
        let ends_at_eog = stop_rules || grammar.is_some();
        let (shown, stop) = lane.take(&vocab, token, ends_at_eog, started);
        if !shown.is_empty() && events.send(Event::Text(shown)).is_err() {
            break StopReason::Cancelled;
        }
        if let Some(stop) = stop {
            break stop;
        }
        decode_next(state, &mut batch, token)?;
        logits_index = 0;
    };
    let prompt = Prefilled {
        tokens: tokens.len(),
        kept: keep,
        started,
        time: prompt_time,
    };
    Ok(lane.finish(stop, &prompt, params, |rest| {
        let _ = events.send(Event::Text(rest));
    }))
}

/// Replies decoded side by side, one per sampler: the prompt is evaluated once into sequence
/// 0, shared with one sequence per further reply, and each step decodes one token of every
/// reply still going in one batch. Afterwards the session's cache holds the prompt alone.
/// An empty [`Event::Text`] after each step lets the caller cancel.
fn generate_candidates(
    runtime: &Runtime<'_>,
    state: &mut Live<'_>,
    conversation: &Conversation,
    params: &GenParams,
    samplers: &[SamplerConfig],
    events: &SyncSender<Event<Vec<Generation>>>,
) -> Result<Vec<Generation>, GenError> {
    let started = Instant::now();
    if samplers.is_empty() || samplers.len() > MAX_CANDIDATES {
        return Err(GenError::Runtime(format!(
            "{} candidate replies asked for; the embedded backend decodes 1 to {MAX_CANDIDATES}",
            samplers.len()
        )));
    }
    if params.structured.is_some() {
        return Err(GenError::Unsupported(
            "candidate replies of structured output",
        ));
    }
    let n_ctx = state.context.n_ctx() as usize;
    let lanes_wanted = samplers.len();
    let Runtime {
        model,
        template,
        run_roles,
    } = *runtime;
    let (tokens, stops) =
        prompt_tokens(model, template, conversation, params, lanes_wanted, n_ctx)?;
    let vocab = model.vocab();
    let (keep, batch) = prefill(state, &tokens)?;
    let stops = if params.stop_rules { stops } else { Vec::new() };
    let mut lanes: Vec<Lane> = samplers
        .iter()
        .map(|s| Lane::new(s.clone(), params, run_roles, &tokens, stops.clone()))
        .collect();
    // The next decode overwrites the prompt's logits, which every lane samples first.
    let first_logits = state.context.get_logits_ith(batch.n_tokens() - 1).to_vec();
    drop(batch);
    for seq in 1..lanes_wanted {
        state
            .context
            .copy_kv_cache_seq(0, seq as i32, None, None)
            .map_err(|e| GenError::Runtime(format!("cache: {e}")))?;
    }
    let prompt_time = started.elapsed();

    let mut stopped: Vec<Option<StopReason>> = vec![None; lanes_wanted];
    // Where each going lane's logits stand in the last batch.
    let mut logits_at: Vec<Option<i32>> = vec![None; lanes_wanted];
    let mut batch = LlamaBatch::new(lanes_wanted, 1);
    let mut pos = tokens.len();
    let result = 'steps: loop {
        batch.clear();
        for (i, lane) in lanes.iter_mut().enumerate() {
            if stopped[i].is_some() {
                continue;
            }
            if lane.spent(params.max_tokens, params.stop_rules) {
                stopped[i] = Some(StopReason::Length);
                continue;
            }
            let logits = match logits_at[i] {
                Some(at) => state.context.get_logits_ith(at),
                None => &first_logits,
            };
            let token = LlamaToken(lane.sampler.sample(logits) as i32);
            if let (_, Some(stop)) = lane.take(&vocab, token, params.stop_rules, started) {
                stopped[i] = Some(stop);
                continue;
            }
            if let Err(e) = batch.add(token, pos as i32, &[i as i32], true) {
                break 'steps Err(GenError::Runtime(format!("batch: {e}")));
            }
            logits_at[i] = Some(batch.n_tokens() - 1);
        }
        if batch.n_tokens() == 0 {
            break Ok(());
        }
        if let Err(e) = state.context.decode(&mut batch) {
            break Err(GenError::Runtime(format!("decode: {e}")));
        }
        pos += 1;
        if events.send(Event::Text(String::new())).is_err() {
            for stop in stopped.iter_mut().filter(|s| s.is_none()) {
                *stop = Some(StopReason::Cancelled);
            }
            break Ok(());
        }
    };
    // The replies leave the cache; the prompt stays for the session's next turn.
    for seq in 1..lanes_wanted {
        let _ = state
            .context
            .clear_kv_cache_seq(Some(seq as u32), None, None);
    }
    state
        .context
        .clear_kv_cache_seq(Some(0), Some(tokens.len() as u32), None)
        .map_err(|e| GenError::Runtime(format!("cache: {e}")))?;
    result?;
    let prompt = Prefilled {
        tokens: tokens.len(),
        kept: keep,
        started,
        time: prompt_time,
    };
    Ok(lanes
        .into_iter()
        .zip(stopped)
        .map(|(lane, stop)| {
            lane.finish(stop.unwrap_or(StopReason::Length), &prompt, params, |_| {})
        })
        .collect())
}

/// The tokens of `conversation`'s prompt and the stop strings its reply ends at; an empty
/// prompt, or one that leaves no room in the context for `replies` replies of
/// `params.max_tokens`, is refused.
fn prompt_tokens(
    model: &LlamaModel,
    template: Option<&LlamaChatTemplate>,
    conversation: &Conversation,
    params: &GenParams,
    replies: usize,
    n_ctx: usize,
) -> Result<(Vec<LlamaToken>, Vec<String>), GenError> {
    let (prompt, stops) = render(model, template, conversation)?;
    let tokens = model
        .vocab()
        .tokenize(prompt.as_bytes(), true, template.is_some());
    if tokens.is_empty() {
        return Err(GenError::Runtime("the prompt is empty".into()));
    }
    let needed = tokens.len() + replies * (params.max_tokens + SENTENCE_GRACE);
    if needed > n_ctx {
        return Err(GenError::ContextFull { needed, n_ctx });
    }
    Ok((tokens, stops))
}

/// The text `token` adds, as far as it completes UTF-8: bytes of a character split across
/// tokens wait in `utf8` for the next.
fn piece(vocab: &LlamaVocab<'_>, token: LlamaToken, utf8: &mut Vec<u8>) -> String {
    vocab.token_to_piece_into(token, utf8, false, None);
    let valid = match std::str::from_utf8(utf8) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    let piece = String::from_utf8_lossy(&utf8[..valid]).into_owned();
    utf8.drain(..valid);
    piece
}

/// Evaluates `token`, the next of the session's context.
fn decode_next(
    state: &mut Live<'_>,
    batch: &mut LlamaBatch<'_>,
    token: LlamaToken,
) -> Result<(), GenError> {
    batch.clear();
    let pos = state.tokens.len();
    batch
        .add(token, pos as i32, &[0], true)
        .map_err(|e| GenError::Runtime(format!("batch: {e}")))?;
    state
        .context
        .decode(batch)
        .map_err(|e| GenError::Runtime(format!("decode: {e}")))?;
    state.tokens.push(token);
    Ok(())
}

/// How many of the likeliest tokens the grammar judges before it judges them all.
const GRAMMAR_SHORTLIST: usize = 256;

/// llama.cpp's grammar sampler over our [`Sampler`]: our sampler proposes a token (so the
/// watermark and settings apply as to any reply); the grammar keeps it if it may come next,
/// and otherwise masks every token it forbids and our sampler picks again among the rest.
/// Checking the one proposal first spares a pass over the whole vocabulary on most steps.
struct Grammar {
    sampler: LlamaSampler,
    masked: Vec<f32>,
}

impl Grammar {
    fn new(model: &LlamaModel, structured: &Structured) -> Result<Grammar, GenError> {
        let gbnf = structured.schema.to_gbnf();
        let sampler = LlamaSampler::grammar(model, &gbnf, "root").map_err(|e| {
            GenError::Runtime(format!(
                "the grammar of {} does not compile: {e}",
                structured.name
            ))
        })?;
        Ok(Grammar {
            sampler,
            masked: Vec::new(),
        })
    }

    /// Sets `masked` to `logits` where the grammar allows the token among `tokens`, and to
    /// minus infinity elsewhere; whether any was allowed.
    fn mask(&mut self, logits: &[f32], tokens: impl Iterator<Item = usize>) -> bool {
        let mut candidates = LlamaTokenDataArray::from_iter(
            tokens.map(|i| LlamaTokenData::new(LlamaToken(i as i32), logits[i], 0.0)),
            false,
        );
        self.sampler.apply(&mut candidates);
        self.masked.clear();
        self.masked.resize(logits.len(), f32::NEG_INFINITY);
        let mut any = false;
        for d in &candidates.data {
            if d.logit().is_finite() {
                self.masked[d.id().0 as usize] = d.logit();
                any = true;
            }
        }
        any
    }

    fn allows(&mut self, token: LlamaToken) -> bool {
        let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
        self.sampler.apply(&mut one);
        one.data[0].logit().is_finite()
    }

    fn pick(&mut self, sampler: &mut Sampler, logits: &[f32]) -> Result<LlamaToken, GenError> {
        let proposed = sampler.choose(logits);
        let token = if self.allows(LlamaToken(proposed as i32)) {
            sampler.accept(proposed);
            proposed
        } else {
            // The grammar's verdict on the likeliest tokens first: among them is nearly always
            // one it allows, and judging 262k tokens costs tens of milliseconds. Only when
            // none is allowed does the whole vocabulary go through it.
            let mut top: Vec<usize> = (0..logits.len()).collect();
            let k = GRAMMAR_SHORTLIST.min(top.len());
            top.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
                logits[b].total_cmp(&logits[a])
            });
            top.truncate(k);
            if !self.mask(logits, top.into_iter()) && !self.mask(logits, 0..logits.len()) {
                return Err(GenError::Runtime("the grammar allows no next token".into()));
            }
            sampler.sample(&self.masked)
        };
        self.sampler.accept(LlamaToken(token as i32));
        Ok(LlamaToken(token as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_non_gguf_files_are_named() {
        let dir = std::env::temp_dir().join(format!("lore-gen-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("nope.gguf");
        let err = EmbeddedBackend::load(EmbeddedConfig::new(missing.clone()))
            .err()
            .unwrap();
        assert!(matches!(err, GenError::ModelMissing { .. }), "{err}");
        assert!(err.to_string().contains("nope.gguf"));

        let text = dir.join("notes.gguf");
        std::fs::write(&text, "hello, not a model").unwrap();
        let err = EmbeddedBackend::load(EmbeddedConfig::new(text))
            .err()
            .unwrap();
        assert!(matches!(err, GenError::NotGguf { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
