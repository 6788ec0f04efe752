//! Reading the hand-written sets (one item a line, `#` comments) and the cast of characters an
//! evaluation speaks as.

use std::path::Path;
use std::sync::Arc;

use lore_canon::{CanonStore, EntityKind, World};
use lore_engine::{SentenceVerdict, SessionOptions, TurnPlanner};

use crate::error::EvalError;

/// The lines of a hand-written set that carry data, with their 1-based numbers: blank lines
/// and `#` comments are skipped.
pub(crate) fn data_lines(path: &Path) -> Result<Vec<(usize, String)>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(EvalError::io(path))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(i, line)| (i + 1, line.to_owned()))
        .collect())
}

/// How a set's line names a node of canon: an IRI, or a prefixed name whose prefix is `lore:` or
/// one the set declares on a line `@prefix p: <IRI> .`.
pub(crate) struct Prefixes(Vec<(String, String)>);

impl Prefixes {
    pub(crate) fn new() -> Prefixes {
        Prefixes(vec![("lore:".into(), lore_canon::vocab::NS.into())])
    }

    /// Reads a declaration, if `line` is one.
    pub(crate) fn declare(&mut self, line: &str) -> Option<Result<(), String>> {
        let rest = line.trim().strip_prefix("@prefix")?;
        let parsed = rest.trim().strip_suffix('.').and_then(|decl| {
            let (name, iri) = decl.trim().split_once(char::is_whitespace)?;
            let iri = iri.trim().strip_prefix('<')?.strip_suffix('>')?;
            name.ends_with(':')
                .then(|| (name.to_owned(), iri.to_owned()))
        });
        Some(match parsed {
            Some(prefix) => {
                self.0.push(prefix);
                Ok(())
            }
            None => Err("expected `@prefix name: <IRI> .`".into()),
        })
    }

    pub(crate) fn expand(&self, name: &str) -> Result<String, String> {
        if name.contains("://") {
            return Ok(name.to_owned());
        }
        self.0
            .iter()
            .find_map(|(p, iri)| {
                name.strip_prefix(p.as_str())
                    .map(|local| format!("{iri}{local}"))
            })
            .ok_or_else(|| {
                let known: Vec<&str> = self.0.iter().map(|(p, _)| p.as_str()).collect();
                format!(
                    "{name:?} is neither an IRI nor a name with a declared prefix ({})",
                    known.join(", ")
                )
            })
    }
}

/// Player lines from a file, one a line (blank lines and `#` comments skipped).
pub fn read_player_lines(path: &Path) -> Result<Vec<String>, EvalError> {
    let lines: Vec<String> = data_lines(path)?
        .into_iter()
        .map(|(_, line)| line.trim().to_owned())
        .collect();
    if lines.is_empty() {
        return Err(EvalError::set(path, 0, "no player lines"));
    }
    Ok(lines)
}

/// A planner for every character of every production in `store` (or of `production`, or only
/// `character` wherever it appears), each without a beat of story time.
pub fn cast(
    store: &CanonStore,
    options: &SessionOptions,
    production: Option<&str>,
    character: Option<&str>,
) -> Result<Vec<TurnPlanner>, EvalError> {
    let productions = match production {
        Some(name) => vec![name.to_owned()],
        None => lore_canon::productions(store)?
            .into_iter()
            .map(|p| p.iri)
            .collect(),
    };
    let mut planners = Vec::new();
    for production in &productions {
        let world = Arc::new(World::load(store, production)?);
        let characters: Vec<String> = match character {
            // Named with the production, it must be there (resolving says why not).
            Some(name) if world.character(name).is_some() || productions.len() == 1 => {
                vec![name.to_owned()]
            }
            Some(_) => Vec::new(),
            None => world
                .entities
                .iter()
                .filter(|e| e.kind == EntityKind::Character)
                .map(|e| e.iri.clone())
                .collect(),
        };
        for name in &characters {
            let resolved = world.resolve(store, name, None)?;
            planners.push(TurnPlanner::new(world.clone(), resolved, options.clone())?);
        }
    }
    if planners.is_empty() {
        return Err(EvalError::Invalid(match character {
            Some(name) => format!("no production of the store has a character {name:?}"),
            None => {
                "the store has no characters; import world/policy.trig and a world first".into()
            }
        }));
    }
    Ok(planners)
}

/// The kinds a reply sentence can be labelled with: fine, off limits by the policy, or one of
/// the canon check's problems.
pub const REPLY_KINDS: [&str; 7] = [
    "ok",
    "off_limits",
    "leak",
    "dead_as_alive",
    "wrong_relationship",
    "stale_fact",
    "unknown_place",
];

/// What the output rail's verdict on a sentence makes it, as a kind of the replies set: off
/// limits when the policy fired, else the canon check's first finding, else ok.
pub fn verdict_kind(verdict: &SentenceVerdict) -> &'static str {
    match (verdict.policy.fired.first(), verdict.canon.first()) {
        (Some(_), _) => "off_limits",
        (None, Some(finding)) => finding.problem.kind(),
        (None, None) => "ok",
    }
}

/// The median and 99th percentile of some timings (0 for none).
pub(crate) fn p50_p99(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        times
            .get(((times.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (quantile(0.5), quantile(0.99))
}

/// A share, 1 of nothing.
pub(crate) fn rate(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}
