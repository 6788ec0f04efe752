//! Decisions: which policy nodes a text touches that are off limits for one character in one
//! production, and what the rails do about it.
//!
//! Which nodes are off limits, and why, depends only on the production and the character, so
//! [`Rails::new`] settles it once; a check is then the normalised views of the text run
//! through one automaton of the blocked nodes' terms.

use lore_canon::World;
use lore_canon::policy::{Policy, PolicyKind, RailAction};

use crate::lexicon::{Lexicon, LexiconError, Term};
use crate::normalize::{ViewKind, fold, views};

/// What the rails decided for a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Nothing off limits.
    Allow,
    /// The character steers away in its own voice.
    Deflect,
    /// The character declines plainly.
    Refuse,
    /// The session ends.
    EndSession,
}

impl From<RailAction> for Action {
    fn from(a: RailAction) -> Action {
        match a {
            RailAction::Deflect => Action::Deflect,
            RailAction::Refuse => Action::Refuse,
            RailAction::EndSession => Action::EndSession,
        }
    }
}

impl Action {
    /// Its name on the wire and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deflect => "deflect",
            Action::Refuse => "refuse",
            Action::EndSession => "end_session",
        }
    }
}

/// Why a node is off limits here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// It is (or falls under) a hazard: off limits everywhere. Carries the hazard's IRI.
    Hazard(String),
    /// The production puts it (or a broader node, named) off limits.
    Production(String),
    /// The speaking character puts it (or a broader node, named) off limits.
    Character(String),
    /// It needs a rating (IRI) above the production's.
    Rating(String),
}

/// One policy node that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The node's IRI.
    pub node: String,
    /// The node's name.
    pub label: String,
    /// Why it is off limits here.
    pub rule: Rule,
    /// The term found.
    pub term: String,
    /// The reading of the text it was found in.
    pub view: ViewKind,
    /// How sure the layer is, 0..1 (the lexicon layer: 1).
    pub score: f32,
}

/// The rails' decision on one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// The nodes that fired, most severe first.
    pub fired: Vec<Fired>,
}

/// A node that is off limits here, with why and what to do.
#[derive(Debug, Clone)]
struct Blocked {
    node: String,
    label: String,
    rule: Rule,
    action: Action,
}

/// What can go wrong building the rails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A policy term folds to nothing, so it could never match.
    #[error("policy node {node}: term {term:?} is empty once normalised")]
    EmptyTerm {
        /// The node.
        node: String,
        /// The term.
        term: String,
    },
    /// The matcher could not be built.
    #[error(transparent)]
    Lexicon(#[from] LexiconError),
}

/// The rails for one character of one production.
#[derive(Debug, Clone)]
pub struct Rails {
    blocked: Vec<Blocked>,
    lexicon: Option<Lexicon<usize>>,
}

impl Rails {
    /// Settles which of `world`'s policy nodes are off limits for `character` (an IRI), and
    /// builds the matcher of their terms.
    pub fn new(world: &World, character: &str) -> Result<Rails, GuardError> {
        let policy = &world.policy;
        let age = |rating: &str| policy.rating(rating).map(|r| r.minimum_age);
        // A production without a known rating is treated as the youngest audience.
        let production_age = world
            .production
            .rating
            .as_deref()
            .and_then(age)
            .unwrap_or(0);
        let mut blocked = Vec::new();
        let mut terms = Vec::new();
        for node in &policy.nodes {
            let lineage = policy.lineage(&node.iri);
            let Some(rule) = rule_for(
                policy,
                &lineage,
                &world.policy.production_off_limits,
                policy.off_limits_for(character),
                production_age,
            ) else {
                continue;
            };
            let action = lineage
                .iter()
                .filter_map(|iri| policy.node(iri))
                .filter_map(|n| n.action)
                .max()
                .map_or_else(|| default_action(&rule), Action::from);
            for term in &node.terms {
                if fold(term).is_empty() {
                    return Err(GuardError::EmptyTerm {
                        node: node.iri.clone(),
                        term: term.clone(),
                    });
                }
                terms.push(Term {
                    text: term.clone(),
                    node: blocked.len(),
                });
            }
            blocked.push(Blocked {
                node: node.iri.clone(),
                label: node.label.clone(),
                rule,
                action,
            });
        }
        let lexicon = if terms.is_empty() {
            None
        } else {
            Some(Lexicon::new(terms)?)
        };
        Ok(Rails { blocked, lexicon })
    }

    /// Checks `text` (player input or a sentence of a reply).
    pub fn check(&self, text: &str) -> Decision {
        let Some(lexicon) = &self.lexicon else {
            return allow();
        };
        let mut fired: Vec<(Action, Fired)> = lexicon
            .find(&views(text))
            .into_iter()
            .map(|hit| {
                let b = &self.blocked[hit.node];
                (
                    b.action,
                    Fired {
                        node: b.node.clone(),
                        label: b.label.clone(),
                        rule: b.rule.clone(),
                        term: hit.term,
                        view: hit.view,
                        score: 1.0,
                    },
                )
            })
            .collect();
        fired.sort_by_key(|(action, _)| std::cmp::Reverse(*action));
        Decision {
            action: fired.first().map_or(Action::Allow, |(a, _)| *a),
            fired: fired.into_iter().map(|(_, f)| f).collect(),
        }
    }

    /// How many policy nodes are off limits here.
    pub fn blocked_nodes(&self) -> usize {
        self.blocked.len()
    }
}

fn allow() -> Decision {
    Decision {
        action: Action::Allow,
        fired: Vec::new(),
    }
}

fn default_action(rule: &Rule) -> Action {
    match rule {
        Rule::Hazard(_) => Action::Refuse,
        Rule::Production(_) | Rule::Character(_) | Rule::Rating(_) => Action::Deflect,
    }
}

/// Why a node is off limits here, if it is: the first of hazard, character rule, production
/// rule, rating, looking at the node and every broader node (its `lineage`).
fn rule_for(
    policy: &Policy,
    lineage: &[&str],
    production_off_limits: &[String],
    character_off_limits: &[String],
    production_age: i64,
) -> Option<Rule> {
    let nodes = || lineage.iter().filter_map(|i| policy.node(i));
    if let Some(hazard) = nodes().find(|n| n.kind == PolicyKind::Hazard) {
        return Some(Rule::Hazard(hazard.iri.clone()));
    }
    if let Some(i) = lineage
        .iter()
        .find(|i| character_off_limits.iter().any(|o| o == *i))
    {
        return Some(Rule::Character((*i).to_owned()));
    }
    if let Some(i) = lineage
        .iter()
        .find(|i| production_off_limits.iter().any(|o| o == *i))
    {
        return Some(Rule::Production((*i).to_owned()));
    }
    nodes()
        .filter_map(|n| n.minimum_rating.as_deref())
        .find(|rating| {
            // An unknown rating is checked by `lore check`; here it blocks, to be safe.
            policy
                .rating(rating)
                .is_none_or(|r| r.minimum_age > production_age)
        })
        .map(|rating| Rule::Rating(rating.to_owned()))
}
