//! `lore eval topics`: the topic rails on hand-written player lines, under every character of
//! every production and every rating tier.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lore_canon::policy::Policy;
use lore_canon::{CanonStore, World};
use lore_guard::normalize::views;
use lore_guard::semantic::{Embedded, cosine};
use lore_guard::{Action, Audience, Rail, Rails, Semantic};
use serde_json::json;

use crate::error::EvalError;
use crate::progress::Progress;
use crate::sets::{Prefixes, data_lines, p50_p99, rate};

/// One line of the topics set.
struct TopicLine {
    node: Option<String>,
    text: String,
}

fn read_topics(path: &Path) -> Result<Vec<TopicLine>, EvalError> {
    let mut prefixes = Prefixes::new();
    let mut out = Vec::new();
    for (number, line) in data_lines(path)? {
        if let Some(declared) = prefixes.declare(&line) {
            declared.map_err(|message| EvalError::set(path, number, message))?;
            continue;
        }
        let Some((node, text)) = line.split_once('\t') else {
            return Err(EvalError::set(path, number, "expected `node<TAB>text`"));
        };
        let node = match node {
            "-" => None,
            n => Some(
                prefixes
                    .expand(n)
                    .map_err(|message| EvalError::set(path, number, message))?,
            ),
        };
        out.push(TopicLine {
            node,
            text: text.to_owned(),
        });
    }
    if out.is_empty() {
        return Err(EvalError::set(path, 0, "no lines"));
    }
    Ok(out)
}

/// One place a line is judged: a character of a production, or a rating tier.
struct Judge {
    name: String,
    rails: Rails,
}

/// Lines that should be blocked and were, lines that should be allowed and were.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Lines that should be blocked.
    pub should_block: usize,
    /// Of those, blocked.
    pub blocked: usize,
    /// Lines that should be allowed.
    pub should_allow: usize,
    /// Of those, allowed.
    pub allowed: usize,
}

impl Tally {
    fn add(&mut self, expect_block: bool, blocked: bool) {
        if expect_block {
            self.should_block += 1;
            self.blocked += usize::from(blocked);
        } else {
            self.should_allow += 1;
            self.allowed += usize::from(!blocked);
        }
    }

    /// The shares blocked and allowed.
    pub fn rates(&self) -> (f64, f64) {
        (
            rate(self.blocked, self.should_block),
            rate(self.allowed, self.should_allow),
        )
    }
}

/// How near a set's line may come to a policy example before it is reported as a copy of
/// one: such a line measures what the topics' heads were taught, not how they read new talk.
const NEAR_COPY: f32 = 0.9;

/// What `lore eval topics` measured.
#[derive(Debug, Clone)]
pub struct TopicsReport {
    /// Lines in the set.
    pub lines: usize,
    /// Each context (a character of a production, or a rating tier) with its tally.
    pub contexts: Vec<(String, Tally)>,
    /// Over every context.
    pub total: Tally,
    /// Lines that are near copies of a policy example.
    pub near_copies: Vec<String>,
    /// Each wrong line: in how many contexts, and its first wrong judgement, the costliest
    /// first.
    pub misses: Vec<(usize, String)>,
    /// Median latency of a whole decision, in microseconds.
    pub p50_us: f64,
    /// Its 99th percentile.
    pub p99_us: f64,
}

impl TopicsReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let (blocked, allowed) = self.total.rates();
        let contexts: Vec<_> = self
            .contexts
            .iter()
            .map(|(name, t)| {
                let (b, a) = t.rates();
                json!({"context": name, "off_limits_blocked": b, "allowed_allowed": a,
                       "n_off_limits": t.should_block, "n_allowed": t.should_allow})
            })
            .collect();
        json!({
            "lines": self.lines,
            "interactions": self.total.should_block + self.total.should_allow,
            "off_limits_blocked": blocked,
            "allowed_allowed": allowed,
            "n_off_limits": self.total.should_block,
            "n_allowed": self.total.should_allow,
            "near_copies": self.near_copies.len(),
            "latency_us": {"p50": self.p50_us, "p99": self.p99_us},
            "contexts": contexts,
        })
    }
}

impl fmt::Display for TopicsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = &self.total;
        let (blocked, allowed) = total.rates();
        writeln!(
            f,
            "{} lines × {} contexts = {} interactions",
            self.lines,
            self.contexts.len(),
            total.should_block + total.should_allow
        )?;
        writeln!(
            f,
            "off limits blocked {:.1}% of {}   allowed lines allowed {:.1}% of {}",
            100.0 * blocked,
            total.should_block,
            100.0 * allowed,
            total.should_allow
        )?;
        writeln!(
            f,
            "latency per decision: p50 {:.0} µs  p99 {:.0} µs",
            self.p50_us, self.p99_us
        )?;
        for (name, t) in &self.contexts {
            let (b, a) = t.rates();
            writeln!(
                f,
                "  {:<40} blocked {:>5.1}% of {:>3}   allowed {:>5.1}% of {:>3}",
                name,
                100.0 * b,
                t.should_block,
                100.0 * a,
                t.should_allow
            )?;
        }
        if !self.near_copies.is_empty() {
            writeln!(
                f,
                "{} lines are near copies of policy examples (cosine ≥ {NEAR_COPY}): they \
                 measure what the topics' heads were taught, not unseen talk",
                self.near_copies.len()
            )?;
        }
        Ok(())
    }
}

/// Where each line is judged: every character of every production of `store`, then every
/// rating tier of the policy (which every production shares).
fn contexts(
    store: &CanonStore,
    semantic: &Arc<Semantic>,
) -> Result<(Vec<Judge>, Policy), EvalError> {
    let mut contexts = Vec::new();
    let mut policy = None;
    for production in lore_canon::productions(store)? {
        let world = World::load(store, &production.iri)?;
        let characters = world
            .entities
            .iter()
            .filter(|e| e.kind == lore_canon::EntityKind::Character);
        for character in characters {
            contexts.push(Judge {
                name: format!("{} / {}", world.production.title, character.name),
                rails: Rails::new(&world, &character.iri, Some(semantic))?,
            });
        }
        policy.get_or_insert(world.policy);
    }
    let Some(policy) = policy else {
        return Err(EvalError::Invalid(
            "the store has no production; import world/policy.trig and a world first".into(),
        ));
    };
    for rating in &policy.ratings {
        contexts.push(Judge {
            name: format!("rating {}", rating.label),
            rails: Rails::for_audience(
                &policy,
                Audience {
                    production_off_limits: &[],
                    character_off_limits: &[],
                    age: rating.minimum_age,
                },
                Some(semantic),
            )?,
        });
    }
    Ok((contexts, policy))
}

/// Contexts whose rails read text alike (one policy, one tuning) share a line's embedding:
/// per context, the first context it shares with.
fn readers(contexts: &[Judge]) -> Vec<usize> {
    contexts
        .iter()
        .map(|c| {
            contexts
                .iter()
                .position(|d| d.rails.embeds_like(&c.rails))
                .unwrap_or(0)
        })
        .collect()
}

/// How a line that is a near copy of a policy example is reported, if it is one.
fn near_copy(
    text: &str,
    embeddings: &[Option<Vec<Embedded>>],
    examples: &[(&str, Arc<[f32]>)],
) -> Option<String> {
    let (similarity, example) = embeddings
        .iter()
        .flatten()
        .flatten()
        .flat_map(|e| examples.iter().map(|(t, v)| (cosine(&e.vector, v), *t)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|n| n.0 >= NEAR_COPY)?;
    Some(format!(
        "near copy ({similarity:.2}): {text:?} ~ policy example {example:?}"
    ))
}

/// The topic rails on a set of player lines: every line under every character of every
/// production of `store`, and under each rating tier.
pub fn evaluate(
    store: &CanonStore,
    semantic: &Arc<Semantic>,
    set: &Path,
    progress: &dyn Progress,
) -> Result<TopicsReport, EvalError> {
    let lines = read_topics(set)?;
    let (contexts, policy) = contexts(store, semantic)?;
    for line in &lines {
        if let Some(node) = &line.node
            && policy.node(node).is_none()
        {
            return Err(EvalError::set(
                set,
                0,
                format!("{node} is not a node of the policy"),
            ));
        }
    }

    let examples = policy
        .nodes
        .iter()
        .flat_map(|n| &n.examples)
        .map(|text| Ok((text.as_str(), semantic.example(text)?)))
        .collect::<Result<Vec<_>, EvalError>>()?;
    let mut near_copies: Vec<String> = Vec::new();

    let bar = progress.stage("judging", lines.len());
    let mut total = Tally::default();
    let mut per_context = vec![Tally::default(); contexts.len()];
    // Per wrong line: how many contexts judged it wrong, and the first such judgement.
    let mut misses: Vec<(usize, String)> = Vec::new();
    // A decision is the line read and embedded once, then judged under one context's rails
    // (what `Rails::check` does).
    let mut micros = Vec::with_capacity(lines.len() * contexts.len());
    let readers = readers(&contexts);
    for line in &lines {
        let start = Instant::now();
        let readings = views(&line.text);
        let mut embeddings: Vec<Option<Vec<Embedded>>> = vec![None; contexts.len()];
        for &reader in &readers {
            if embeddings[reader].is_none() {
                embeddings[reader] = Some(contexts[reader].rails.embed(&readings)?);
            }
        }
        let reading = start.elapsed() / embeddings.iter().flatten().count().max(1) as u32;
        near_copies.extend(near_copy(&line.text, &embeddings, &examples));
        let mut wrong: Option<(usize, String)> = None;
        for (c, context) in contexts.iter().enumerate() {
            let expect_block = line
                .node
                .as_deref()
                .is_some_and(|n| context.rails.blocks(n));
            let start = Instant::now();
            let embedded = embeddings[readers[c]].as_deref().unwrap_or_default();
            let decision = context.rails.decide(&readings, embedded, Rail::Input);
            micros.push((reading + start.elapsed()).as_secs_f64() * 1e6);
            let blocked = decision.action != Action::Allow;
            total.add(expect_block, blocked);
            per_context[c].add(expect_block, blocked);
            if expect_block != blocked {
                let (count, _) = wrong.get_or_insert_with(|| {
                    let why = decision
                        .fired
                        .first()
                        .map(|f| format!(" ({} via {} {:?})", f.label, f.layer.name(), f.term))
                        .unwrap_or_default();
                    let verdict = if expect_block { "missed" } else { "blocked" };
                    (
                        0,
                        format!("{}: {verdict} {:?}{why}", context.name, line.text),
                    )
                });
                *count += 1;
            }
        }
        misses.extend(wrong);
        bar.step();
    }
    drop(bar);
    let (p50, p99) = p50_p99(&mut micros);
    // The lines wrong in the most contexts first: a studio-wide topic's miss counts once per
    // character.
    misses.sort_by_key(|(count, _)| std::cmp::Reverse(*count));
    Ok(TopicsReport {
        lines: lines.len(),
        contexts: contexts
            .iter()
            .zip(per_context)
            .map(|(c, t)| (c.name.clone(), t))
            .collect(),
        total,
        near_copies,
        misses,
        p50_us: p50,
        p99_us: p99,
    })
}
