//! The embedded backend on the real model (`scripts/test.sh` fetches it; `LORE_MODEL` points
//! elsewhere). Short greedy generations; assertions on structure, not on exact words.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::path::PathBuf;
use std::sync::OnceLock;

use lore_gen::{
    Backend, Conversation, EmbeddedBackend, EmbeddedConfig, GenError, GenParams, PromptStyle, Role,
    SamplerConfig, Schema, StopReason, Structured, Turn,
};

fn model_path() -> PathBuf {
    std::env::var_os("LORE_MODEL").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/lorekeeper/models/gemma-3-270m-q4_k_m.gguf")
        },
        PathBuf::from,
    )
}

/// One model for all tests in this binary: loading is the slow part.
fn backend() -> &'static EmbeddedBackend {
    static BACKEND: OnceLock<EmbeddedBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let path = model_path();
        assert!(
            path.exists(),
            "the embedded model is missing at {}: run scripts/fetch-model.sh",
            path.display()
        );
        let mut config = EmbeddedConfig::new(path);
        config.n_ctx = 2048;
        EmbeddedBackend::load(config).unwrap()
    })
}

fn conversation(line: &str) -> Conversation {
    Conversation {
        character: "Odile Marrow".into(),
        player: "Visitor".into(),
        others: vec!["Pip Tallow".into()],
        avoid: Vec::new(),
        preamble: "A scene from \"Lanterns of Brindlemoor\".\n\nOdile Marrow is the Harbour Warden of Brindlemoor, a weathered woman who knows every boat on the river.\nHow Odile Marrow speaks: Short, salty sentences; calls people 'love'.\n\nOdile Marrow: Mind the ropes, love.".into(),
        turns: vec![Turn { role: Role::Player, text: line.into(), recalled: vec!["Pip sleeps in the apprentices' loft of the Guildhall.".into()] }],
    }
}

/// Appends the character's reply and the player's next line.
fn next_turn(c: &mut Conversation, reply: &str, line: &str) {
    for (role, text) in [(Role::Character, reply), (Role::Player, line)] {
        c.turns.push(Turn {
            role,
            text: text.into(),
            recalled: vec![],
        });
    }
}

fn params(seed: u64) -> GenParams {
    GenParams {
        max_tokens: 40,
        sampler: SamplerConfig {
            seed,
            ..SamplerConfig::default()
        },
        stop_rules: true,
        ..GenParams::default()
    }
}

/// A small write-up: a title and one to three lines, each bounded.
fn write_up_schema() -> Schema {
    Schema::Object(vec![
        ("title".into(), Schema::String { min: 1, max: 40 }),
        (
            "lines".into(),
            Schema::Array {
                items: Box::new(Schema::String { min: 1, max: 80 }),
                min: 1,
                max: 3,
            },
        ),
    ])
}

#[test]
fn structured_output_always_parses_and_matches_its_schema() {
    let mut session = backend().open_session().unwrap();
    let schema = write_up_schema();
    // Several seeds and a hot sampler: the base model left alone would wander off; the
    // grammar keeps every sample inside the schema.
    for seed in 0..4 {
        let mut convo = conversation("Write the errand as JSON: a title and your lines.");
        convo.preamble.push_str("\n\nOdile Marrow answers in JSON.");
        let params = GenParams {
            max_tokens: 200,
            sampler: SamplerConfig {
                seed,
                temperature: 1.0,
                ..SamplerConfig::default()
            },
            structured: Some(Structured {
                name: "write_up".into(),
                schema: schema.clone(),
            }),
            ..GenParams::default()
        };
        let mut streamed = String::new();
        let g = session
            .generate(&convo, &params, &mut |t| {
                streamed.push_str(t);
                true
            })
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&g.text)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", g.text));
        assert_eq!(schema.check(&value), Ok(()), "seed {seed}: {}", g.text);
        assert_eq!(g.stop, StopReason::EndOfTurn, "the grammar ends the value");
        assert_eq!(streamed.trim_end(), g.text);
    }
}

#[test]
fn structured_output_that_cannot_finish_in_budget_says_so() {
    let mut session = backend().open_session().unwrap();
    let params = GenParams {
        max_tokens: 3,
        structured: Some(Structured {
            name: "write_up".into(),
            schema: write_up_schema(),
        }),
        ..GenParams::default()
    };
    let err = session
        .generate(&conversation("Write it up."), &params, &mut |_| true)
        .unwrap_err();
    assert!(
        matches!(err, GenError::Unfinished { max_tokens: 3, .. }),
        "{err}"
    );
}

#[test]
fn replies_stream_and_stay_one_speakers_paragraph() {
    let mut session = backend().open_session().unwrap();
    let mut streamed = String::new();
    let g = session
        .generate(
            &conversation("Evening! Have you seen Pip?"),
            &params(7),
            &mut |t| {
                streamed.push_str(t);
                true
            },
        )
        .unwrap();
    assert_eq!(
        streamed.trim_end(),
        g.text,
        "the stream and the final text differ"
    );
    assert!(!g.text.contains('\n'));
    assert!(
        !g.text.contains("Visitor:") && !g.text.contains("Pip Tallow:"),
        "{}",
        g.text
    );
    assert!(g.generated_tokens >= 1 && g.generated_tokens <= 40 + 24);
    assert!(g.prompt_tokens > 50);
    assert_eq!(
        g.evaluated_tokens, g.prompt_tokens,
        "a new session evaluates its whole prompt"
    );
}

#[test]
fn a_reply_at_its_token_limit_finishes_its_sentence_or_hits_the_grace_cap() {
    let mut session = backend().open_session().unwrap();
    let params = GenParams {
        max_tokens: 5,
        ..params(9)
    };
    let g = session
        .generate(
            &conversation("Tell me about the river, love."),
            &params,
            &mut |_| true,
        )
        .unwrap();
    if g.stop == StopReason::Length {
        assert!(
            g.text.ends_with(['.', '!', '?', '"', '\u{2026}']) || g.generated_tokens == 5 + 24,
            "{} tokens: {:?}",
            g.generated_tokens,
            g.text
        );
    }
    assert!(g.generated_tokens <= 5 + 24);
}

#[test]
fn the_same_seed_gives_the_same_reply() {
    let a = backend()
        .open_session()
        .unwrap()
        .generate(
            &conversation("Any news from the river?"),
            &params(42),
            &mut |_| true,
        )
        .unwrap();
    let b = backend()
        .open_session()
        .unwrap()
        .generate(
            &conversation("Any news from the river?"),
            &params(42),
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(a.text, b.text);
}

#[test]
fn a_reply_already_said_three_times_is_not_said_again() {
    // A small base model copies a line that fills its transcript: once a reply is repeated it
    // is repeated every turn. The run penalty (DRY) steers greedy decoding off it (without it,
    // asked again, this model writes the line a fourth time, word for word).
    let said = "I was on a boat with my sister when the fog came down over the quay.";
    let mut c = conversation("What do you do at night?");
    for line in [
        "Where were you last winter?",
        "Do you have family here?",
        "What do you do at night?",
    ] {
        next_turn(&mut c, said, line);
    }
    let mut greedy = params(1);
    greedy.sampler.temperature = 0.0;
    let reply = backend()
        .open_session()
        .unwrap()
        .generate(&c, &greedy, &mut |_| true)
        .unwrap();
    assert!(
        !reply.text.contains("I was on a boat with my sister"),
        "{:?}",
        reply.text
    );
}

#[test]
fn turn_two_evaluates_only_its_new_tokens() {
    let mut session = backend().open_session().unwrap();
    let mut c = conversation("Evening! Have you seen Pip?");
    let first = session.generate(&c, &params(3), &mut |_| true).unwrap();
    next_turn(&mut c, &first.text, "Thanks, love.");
    let second = session.generate(&c, &params(3), &mut |_| true).unwrap();
    assert!(second.prompt_tokens > first.prompt_tokens);
    // The persona and turn 1 come from the cache; only the new lines (and at most a few
    // tokens where the reply re-tokenizes differently) are evaluated.
    assert!(
        second.evaluated_tokens < 40 && second.evaluated_tokens < second.prompt_tokens / 3,
        "evaluated {} of {}",
        second.evaluated_tokens,
        second.prompt_tokens
    );
}

fn samplers(seeds: std::ops::Range<u64>) -> Vec<SamplerConfig> {
    seeds.map(|seed| params(seed).sampler).collect()
}

#[test]
fn candidates_decoded_side_by_side_are_whole_replies_and_leave_the_prompt_cached() {
    let mut session = backend().open_session().unwrap();
    let c = conversation("Evening! Have you seen Pip?");
    let replies = session
        .generate_candidates(&c, &params(0), &samplers(1..4), &mut || true)
        .unwrap();
    assert_eq!(replies.len(), 3);
    for reply in &replies {
        assert!(!reply.text.trim().is_empty(), "{replies:?}");
        assert!(
            !reply.text.contains("Visitor:"),
            "one speaker: {:?}",
            reply.text
        );
        assert_ne!(reply.stop, StopReason::Cancelled);
        assert_eq!(reply.prompt_tokens, replies[0].prompt_tokens);
    }
    let distinct: std::collections::HashSet<&str> =
        replies.iter().map(|r| r.text.as_str()).collect();
    assert!(distinct.len() >= 2, "three seeds, one reply: {replies:?}");
    // The replies left the cache and the prompt stayed: the same prompt again evaluates only
    // its last token (for its logits).
    let again = session.generate(&c, &params(1), &mut |_| true).unwrap();
    assert_eq!(again.evaluated_tokens, 1);
    assert!(!again.text.trim().is_empty());
}

#[test]
fn cancelling_candidates_cancels_every_one_and_too_many_are_refused() {
    let mut session = backend().open_session().unwrap();
    let c = conversation("Tell me a long story about the river.");
    let mut asked = 0;
    let replies = session
        .generate_candidates(&c, &params(0), &samplers(1..3), &mut || {
            asked += 1;
            asked < 3
        })
        .unwrap();
    assert_eq!(asked, 3);
    assert!(
        replies.iter().all(|r| r.stop == StopReason::Cancelled),
        "{replies:?}"
    );
    let err = session
        .generate_candidates(&c, &params(0), &samplers(0..9), &mut || true)
        .unwrap_err();
    assert!(err.to_string().contains("1 to 8"), "{err}");
}

#[test]
fn cancelling_stops_generation() {
    let mut session = backend().open_session().unwrap();
    let mut calls = 0;
    let g = session
        .generate(
            &conversation("Tell me a long story about the river."),
            &GenParams {
                stop_rules: false,
                ..params(1)
            },
            &mut |_| {
                calls += 1;
                false
            },
        )
        .unwrap();
    assert_eq!(g.stop, StopReason::Cancelled);
    assert_eq!(calls, 1);
    // The session is still usable afterwards.
    let again = session
        .generate(&conversation("Hello?"), &params(1), &mut |_| true)
        .unwrap();
    assert_ne!(again.stop, StopReason::Cancelled);
}

#[test]
fn a_chat_template_renders_messages_and_the_reply_ends_at_end_of_turn() {
    // The base GGUF has no template of its own; llama.cpp's built-in Gemma one exercises the
    // chat path (messages, special tokens, end-of-turn) on the same weights.
    let mut config = EmbeddedConfig::new(model_path());
    config.n_ctx = 2048;
    config.prompt_style = PromptStyle::Named("gemma".into());
    let chat = EmbeddedBackend::load(config).unwrap();
    assert!(chat.info().chat_template);
    let mut session = chat.open_session().unwrap();
    let mut c = conversation("Evening! Have you seen Pip?");
    let first = session.generate(&c, &params(5), &mut |_| true).unwrap();
    assert!(
        !first.text.contains("<start_of_turn>") && !first.text.contains("<end_of_turn>"),
        "{}",
        first.text
    );
    assert!(!first.text.contains("Visitor:"), "{}", first.text);
    next_turn(&mut c, &first.text, "Thanks.");
    let second = session.generate(&c, &params(5), &mut |_| true).unwrap();
    assert!(
        second.evaluated_tokens < second.prompt_tokens / 2,
        "{} of {}",
        second.evaluated_tokens,
        second.prompt_tokens
    );
}

#[test]
fn dropping_the_backend_stops_its_worker_before_returning() {
    // The worker must have freed the model when the backend is gone: a process that exits
    // with it still running crashed in llama.cpp's teardown.
    let mut config = EmbeddedConfig::new(model_path());
    config.n_ctx = 512;
    let backend = EmbeddedBackend::load(config).unwrap();
    let mut session = backend.open_session().unwrap();
    session
        .generate(&conversation("Evening!"), &params(1), &mut |_| true)
        .unwrap();
    drop(backend);
    let after = session.generate(&conversation("Still there?"), &params(1), &mut |_| true);
    assert!(matches!(after, Err(GenError::WorkerGone)), "{after:?}");
}

#[test]
fn an_unknown_template_name_is_an_error() {
    let mut config = EmbeddedConfig::new(model_path());
    config.prompt_style = PromptStyle::Named("no-such-template".into());
    let err = EmbeddedBackend::load(config).err().unwrap();
    assert!(err.to_string().contains("no-such-template"), "{err}");
}

#[test]
fn a_truncated_model_is_a_load_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("lore-truncated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(model_path()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let err = EmbeddedBackend::load(EmbeddedConfig::new(truncated))
        .err()
        .unwrap();
    assert!(matches!(err, GenError::ModelLoad { .. }), "{err}");
    assert!(err.to_string().contains("truncated.gguf"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_model_scores_its_own_reply_likelier_than_the_same_words_shuffled() {
    let mut session = backend().open_session().unwrap();
    let c = conversation("Where is Pip tonight, love?");
    let params = GenParams {
        max_tokens: 30,
        sampler: SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        },
        ..params(3)
    };
    let reply = session.generate(&c, &params, &mut |_| true).unwrap().text;
    let mut words: Vec<&str> = reply.split_whitespace().collect();
    words.reverse();
    let shuffled = words.join(" ");
    let own = session.score(&c, &reply).unwrap();
    let other = session.score(&c, &shuffled).unwrap();
    assert!(own.tokens > 3, "{reply:?}");
    let per_token = |s: lore_gen::TextScore| s.nll / s.tokens as f64;
    assert!(
        per_token(own) < per_token(other),
        "{reply:?}: {own:?} vs {shuffled:?}: {other:?}"
    );
    assert_eq!(session.score(&c, "").unwrap().tokens, 0);
}

#[test]
fn watermarked_replies_record_their_settings_and_are_detected() {
    let key = lore_mark::WatermarkKey::from_secret([9; 32]);
    let watermark = lore_mark::Watermark::new(key, 0.25, 2.0, 0.9).unwrap();
    let mut session = backend().open_session().unwrap();
    let params = GenParams {
        max_tokens: 120,
        stop_rules: false,
        watermark: Some(watermark.clone()),
        ..params(5)
    };
    let g = session
        .generate(
            &conversation("Tell me about the river."),
            &params,
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(g.watermark, Some(watermark.settings()));
    let tokenizer = lore_gen::GgufTokenizer::load(&model_path()).unwrap();
    let tokens = tokenizer.tokenize(&g.text);
    let found = lore_mark::detect(&tokens, std::slice::from_ref(&watermark));
    assert!(found.z > 2.0, "{found:?} for {:?}", g.text);
    let unmarked = session
        .generate(
            &conversation("Tell me about the river."),
            &GenParams {
                watermark: None,
                ..params
            },
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(unmarked.watermark, None);
}
