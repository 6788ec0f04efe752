//! `lore eval replies`: the output rail on a labelled set of reply sentences.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lore_canon::{CanonStore, World};
use lore_engine::{SessionOptions, TurnPlanner};
use lore_guard::Semantic;
use serde_json::json;

use crate::error::EvalError;
use crate::progress::Progress;
use crate::sets::{REPLY_KINDS, data_lines, p50_p99, rate, verdict_kind};

/// One line of the replies set.
struct ReplyLine {
    line: usize,
    production: String,
    character: String,
    beat: Option<String>,
    expected: String,
    sentence: String,
}

fn read_replies(path: &Path) -> Result<Vec<ReplyLine>, EvalError> {
    let mut out = Vec::new();
    for (n, line) in data_lines(path)? {
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        let [production, character, beat, expected, sentence] = fields.as_slice() else {
            return Err(EvalError::set(
                path,
                n,
                "expected `production<TAB>character<TAB>beat<TAB>kind<TAB>sentence`",
            ));
        };
        if !REPLY_KINDS.contains(expected) {
            return Err(EvalError::set(
                path,
                n,
                format!("kind {expected:?} is not one of {}", REPLY_KINDS.join(", ")),
            ));
        }
        out.push(ReplyLine {
            line: n,
            production: (*production).to_owned(),
            character: (*character).to_owned(),
            beat: (*beat != "-").then(|| (*beat).to_owned()),
            expected: (*expected).to_owned(),
            sentence: (*sentence).to_owned(),
        });
    }
    if out.is_empty() {
        return Err(EvalError::set(path, 0, "no lines"));
    }
    Ok(out)
}

/// What `lore eval replies` measured, per kind of [`REPLY_KINDS`] (`ok` first).
#[derive(Debug, Clone)]
pub struct RepliesReport {
    /// Sentences in the set.
    pub sentences: usize,
    /// Judged by the rules over words alone.
    pub lexical: bool,
    /// Sentences labelled with each kind.
    pub labelled: [usize; REPLY_KINDS.len()],
    /// Of those, withheld at all.
    pub flagged: [usize; REPLY_KINDS.len()],
    /// Of those, found as that kind.
    pub right_kind: [usize; REPLY_KINDS.len()],
    /// Fine sentences withheld by the policy.
    pub ok_by_policy: usize,
    /// Fine sentences withheld by the canon check.
    pub ok_by_canon: usize,
    /// Each sentence judged wrong, with where it is and why.
    pub misses: Vec<String>,
    /// Median latency per sentence, in microseconds.
    pub p50_us: f64,
    /// Its 99th percentile.
    pub p99_us: f64,
}

impl RepliesReport {
    /// Problems labelled, and of those caught.
    pub fn problems(&self) -> (usize, usize) {
        (
            self.labelled[1..].iter().sum(),
            self.flagged[1..].iter().sum(),
        )
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let (problems, caught) = self.problems();
        let recall = caught as f64 / problems.max(1) as f64;
        let false_alarms = self.flagged[0] as f64 / self.labelled[0].max(1) as f64;
        let kinds: serde_json::Map<String, serde_json::Value> = REPLY_KINDS
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, name)| {
                (
                    (*name).to_owned(),
                    json!({"n": self.labelled[k], "caught": rate(self.flagged[k], self.labelled[k]),
                           "right_kind": rate(self.right_kind[k], self.labelled[k])}),
                )
            })
            .collect();
        json!({"problems": {"n": problems, "caught": recall}, "ok": {"n": self.labelled[0],
               "false_alarms": false_alarms, "by_policy": self.ok_by_policy,
               "by_canon": self.ok_by_canon}, "kinds": kinds, "embedding_layer": !self.lexical,
               "latency_us": {"p50": self.p50_us, "p99": self.p99_us}})
    }
}

impl fmt::Display for RepliesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (problems, caught) = self.problems();
        let recall = caught as f64 / problems.max(1) as f64;
        let false_alarms = self.flagged[0] as f64 / self.labelled[0].max(1) as f64;
        writeln!(
            f,
            "output rail on reply sentences: policy and canon check ({}; {} sentences)",
            if self.lexical {
                "rules over words"
            } else {
                "rules over words + embedding layer"
            },
            self.sentences
        )?;
        writeln!(
            f,
            "problems caught: {caught} of {problems} ({:.1}%)   false alarms on fine sentences: {} of {} ({:.1}%)",
            100.0 * recall,
            self.flagged[0],
            self.labelled[0],
            100.0 * false_alarms
        )?;
        if self.flagged[0] > 0 {
            writeln!(
                f,
                "  fine sentences withheld by the policy: {}, by the canon check: {}",
                self.ok_by_policy, self.ok_by_canon
            )?;
        }
        for (k, name) in REPLY_KINDS.iter().enumerate().skip(1) {
            writeln!(
                f,
                "  {name:<20} {:>3} lines  caught {:>5.1}%  as this kind {:>5.1}%",
                self.labelled[k],
                100.0 * rate(self.flagged[k], self.labelled[k]),
                100.0 * rate(self.right_kind[k], self.labelled[k])
            )?;
        }
        writeln!(
            f,
            "latency per sentence: p50 {:.0} µs  p99 {:.0} µs",
            self.p50_us, self.p99_us
        )
    }
}

/// The output rail (the policy and the canon check) on a labelled set of reply sentences,
/// each judged as its character's rail judges a streamed sentence; without `semantic`, by the
/// rules over words alone.
pub fn evaluate(
    store: &CanonStore,
    semantic: Option<Arc<Semantic>>,
    set: &Path,
    progress: &dyn Progress,
) -> Result<RepliesReport, EvalError> {
    let lines = read_replies(set)?;
    let lexical = semantic.is_none();
    let options = SessionOptions {
        semantic,
        ..SessionOptions::default()
    };
    let mut worlds: HashMap<String, Arc<World>> = HashMap::new();
    let mut planners: HashMap<(String, String, Option<String>), TurnPlanner> = HashMap::new();
    let bar = progress.stage("checking", lines.len());
    // Per kind: lines labelled with it, and of those, withheld at all and found as that kind.
    let mut labelled = [0usize; REPLY_KINDS.len()];
    let mut flagged = [0usize; REPLY_KINDS.len()];
    let mut right_kind = [0usize; REPLY_KINDS.len()];
    // Fine sentences withheld by the policy and by the canon check.
    let (mut ok_by_policy, mut ok_by_canon) = (0usize, 0usize);
    let mut latencies = Vec::new();
    let mut misses = Vec::new();
    for line in &lines {
        let at = |e: EvalError| e.at(set, line.line);
        if !worlds.contains_key(&line.production) {
            let world = Arc::new(World::load(store, &line.production).map_err(|e| at(e.into()))?);
            worlds.insert(line.production.clone(), world);
        }
        let key = (
            line.production.clone(),
            line.character.clone(),
            line.beat.clone(),
        );
        if !planners.contains_key(&key) {
            let world = &worlds[&line.production];
            let resolved = world
                .resolve(store, &line.character, line.beat.as_deref())
                .map_err(|e| at(e.into()))?;
            let planner = TurnPlanner::new(world.clone(), resolved, options.clone())
                .map_err(|e| at(e.into()))?;
            planners.insert(key.clone(), planner);
        }
        let started = Instant::now();
        let verdict = planners[&key].check_sentence(&line.sentence)?;
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        let policy_fired = verdict.policy.fired.first();
        let kind = verdict_kind(&verdict);
        let k = REPLY_KINDS
            .iter()
            .position(|k| *k == line.expected)
            .unwrap_or(0);
        labelled[k] += 1;
        flagged[k] += usize::from(kind != "ok");
        right_kind[k] += usize::from(match line.expected.as_str() {
            "ok" => kind == "ok",
            "off_limits" => policy_fired.is_some(),
            expected => verdict.canon.iter().any(|f| f.problem.kind() == expected),
        });
        if line.expected == "ok" {
            ok_by_policy += usize::from(policy_fired.is_some());
            ok_by_canon += usize::from(!verdict.canon.is_empty());
        }
        if (kind == "ok") != (line.expected == "ok") {
            let why = match (policy_fired, verdict.canon.first()) {
                (Some(f), _) => format!(" ({} by {}, {:.2})", f.label, f.layer.name(), f.score),
                (None, Some(f)) => format!(" ({}: {})", f.problem.kind(), f.evidence),
                (None, None) => String::new(),
            };
            misses.push(format!(
                "{}:{} {} / {}: expected {}, got {kind}{why}: {:?}",
                set.display(),
                line.line,
                line.production,
                line.character,
                line.expected,
                line.sentence
            ));
        }
        bar.step();
    }
    drop(bar);
    let (p50, p99) = p50_p99(&mut latencies);
    Ok(RepliesReport {
        sentences: lines.len(),
        lexical,
        labelled,
        flagged,
        right_kind,
        ok_by_policy,
        ok_by_canon,
        misses,
        p50_us: p50,
        p99_us: p99,
    })
}
