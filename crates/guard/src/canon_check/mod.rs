//! The canon check of replies: whether a sentence a character is about to say gives away what
//! it must not, or contradicts canon at the session's story time.
//!
//! - A leak: the sentence names an entity of a restricted fact (a secret, a fact the speaker
//!   does not know, a fact that only becomes true later) and uses one of the fact's telling
//!   words (a word of its statement that no fact the speaker may tell and no description of
//!   an entity uses); or it names the fact's entities and uses a phrase its writers gave as
//!   a giveaway (`lore:giveaway`: "took the Everlight") or, with the embedding layer, means
//!   nearly the same; or it claims a family tie that such a fact states ("Silas is my
//!   brother", where that is a secret), even in everyday kin words that are no telling words.
//! - A dead character spoken of as alive: named with a present or future verb, or as someone
//!   to go and see, in a sentence with no word of death or the past.
//! - A family tie canon does not record: "X is my brother", "my sister X", "X is Y's son",
//!   checked against the relationships between the two, read from either side.
//! - A claim that no longer holds, stated as true now: "Hestia is the Mayor" after she
//!   resigned (a claim of a fact whose span ended before the beat, replaced by another).
//! - A place canon does not have: a capitalised name after a preposition of place ("at",
//!   "the edge of", "going to") that no entity has and no text of canon contains, or,
//!   wherever it stands, a name with a place word ("the Market Place"), a numbered street
//!   ("60th street") or a real-world place (`data/real-world-places.txt`: "burning down
//!   London") that canon never names.
//!
//! These are rules over words, not a parser: they are measured on a labelled set
//! (`lore eval replies`), and what they miss is counted there.

mod words;

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use lore_canon::{EntityId, EntityKind, NameIndex, World};

use crate::encoder::EncoderError;
use crate::semantic::{Embedded, Semantic, cosine};

use words::{
    ALIVE_VERBS, COMMON_CAPITALS, DIRECTED_PREPOSITIONS, FIRST_PERSON, GO_AND_SEE, JOURNEY_WORDS,
    OPEN_PREPOSITIONS, ORGANISATION_HEADS, PART_OF_A_PLACE, PAST_OR_DEATH, PLACE_FIRST_WORDS,
    PLACE_HEADS, PLACE_WORDS_BEFORE_A_NAME, PRESENT_STATE, STREET_WORDS, Token, after_possessive,
    capitalised_phrases, content_words, inverse_group, is_ordinal, kin_group, names_no_place,
    plain_lower, real_world_places, strip_the, tokens, tokens_contain, word,
};

/// How similar in meaning a sentence that names a restricted fact's entities must be to the
/// fact to leak it, when it shares none of the fact's telling words.
pub const LEAK_SIMILARITY: f32 = 0.75;

/// Why a fact may not be told by this speaker at this beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Restriction {
    /// `lore:secret`: kept even by those who know it.
    Secret,
    /// The speaker does not know it.
    Unknown,
    /// It only becomes true at a later beat.
    Future,
}

impl Restriction {
    /// Its name on the wire and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Restriction::Secret => "secret",
            Restriction::Unknown => "unknown_to_speaker",
            Restriction::Future => "future",
        }
    }
}

/// What is wrong with a sentence.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// It tells a restricted fact (IRI).
    Leak {
        /// The fact.
        fact: String,
        /// Why it may not be told.
        restriction: Restriction,
    },
    /// It speaks of a dead character (IRI) as alive.
    DeadAsAlive {
        /// The character.
        character: String,
    },
    /// It claims a family tie (the kin word) between two entities (IRIs) that canon lacks.
    WrongRelationship {
        /// Whose relative.
        of: String,
        /// The claimed relative.
        relative: String,
        /// The kin word used.
        claimed: String,
    },
    /// It states, as still true, a claim (the fact's IRI) that ended before the beat.
    Stale {
        /// The fact whose claim no longer holds.
        fact: String,
    },
    /// It names a place canon does not have.
    UnknownPlace {
        /// The name as written.
        name: String,
    },
}

impl Problem {
    /// Its kind on the wire and in the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Leak { .. } => "leak",
            Problem::DeadAsAlive { .. } => "dead_as_alive",
            Problem::WrongRelationship { .. } => "wrong_relationship",
            Problem::Stale { .. } => "stale_fact",
            Problem::UnknownPlace { .. } => "unknown_place",
        }
    }

    /// The canon node it cites: the fact, the character, or the relative.
    pub fn node(&self) -> &str {
        match self {
            Problem::Leak { fact, .. } => fact,
            Problem::DeadAsAlive { character } => character,
            Problem::WrongRelationship { relative, .. } => relative,
            Problem::Stale { fact } => fact,
            Problem::UnknownPlace { name } => name,
        }
    }
}

/// One problem found in a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What is wrong.
    pub problem: Problem,
    /// The words that gave it away: a telling word, a name and verb, a phrase.
    pub evidence: String,
    /// 1 for a rule over words; the cosine for a leak found by meaning.
    pub score: f32,
    /// Words a regeneration should stop before (as written, and capitalised).
    pub avoid: Vec<String>,
}

/// `words` as written and with a capital first letter, for case-sensitive stop strings.
fn both_cases<'a>(words: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    for w in words {
        let mut chars = w.chars();
        let capital: String = chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        out.push(w.to_owned());
        if capital != w {
            out.push(capital);
        }
    }
    out
}

/// A fact this speaker may not tell at this beat.
#[derive(Debug)]
struct Restricted {
    iri: String,
    statement: String,
    restriction: Restriction,
    entities: Vec<EntityId>,
    telling: Vec<String>,
    /// Its writers' giveaways: as matched ([`plain_lower`]) and as written.
    giveaways: Vec<(String, String)>,
}

/// A claim that ended before the beat, with the values that hold for it now.
#[derive(Debug)]
struct StaleClaim {
    fact: String,
    subject: EntityId,
    old: ClaimValue,
    current: Vec<ClaimValue>,
}

/// A claim's value as a sentence would say it: an entity, or words.
#[derive(Debug, Clone, PartialEq)]
enum ClaimValue {
    Entity(EntityId),
    Words(String),
}

/// The canon check for one speaker at one beat.
pub struct CanonCheck {
    world: Arc<World>,
    speaker: EntityId,
    names: NameIndex,
    restricted: Vec<Restricted>,
    /// Family ties the restricted facts state, by pair of their entities (both ways round):
    /// the kin group, either way, and the fact's index in `restricted`.
    restricted_ties: HashMap<(EntityId, EntityId), Vec<(&'static str, usize)>>,
    /// Statements of the facts the speaker may tell, by entity.
    tellable_about: HashMap<EntityId, Vec<String>>,
    dead: HashSet<EntityId>,
    stale: Vec<StaleClaim>,
    /// Family groups (see [`kin_group`]) by (entity, relative): what the relative is to it.
    kin: HashMap<(EntityId, EntityId), Vec<&'static str>>,
    known_phrases: HashSet<String>,
    /// Canon's texts, lower case, one a line: a name canon writes in lower case ("the great
    /// clock") is a thing it knows when a reply capitalises it.
    canon_text: String,
    semantic: Option<Arc<Semantic>>,
}

/// How much of a reply canon bears out: of its distinct content words (stemmed) that `line`,
/// the player's line it answers, does not already say, how many stand in one of `facts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Support {
    /// Words of the reply found in canon.
    pub canon: usize,
    /// All the reply's words counted.
    pub words: usize,
}

impl Support {
    /// The share of the reply's words that canon bears out, smoothed so that a reply of one
    /// canon word does not outrank one of three: a short answer that names the fact ranks
    /// above a long one that names it among inventions.
    pub fn share(self) -> f64 {
        self.canon as f64 / (self.words + 1) as f64
    }
}

/// [`Support`] of `reply`, answering `line`, by `facts`.
pub fn support(reply: &str, facts: &[&str], line: &str) -> Support {
    let asked: HashSet<String> = content_words(line).into_iter().collect();
    let canon: HashSet<String> = facts.iter().flat_map(|f| content_words(f)).collect();
    let said: HashSet<String> = content_words(reply)
        .into_iter()
        .filter(|w| !asked.contains(w))
        .collect();
    Support {
        canon: said.iter().filter(|w| canon.contains(*w)).count(),
        words: said.len(),
    }
}

impl std::fmt::Debug for CanonCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanonCheck")
            .field("speaker", &self.speaker)
            .field("restricted", &self.restricted.len())
            .finish_non_exhaustive()
    }
}

impl CanonCheck {
    /// Settles what `speaker` may not tell at `beat` and what canon says about the living,
    /// families and places. `names` is the world's name index.
    pub fn new(
        world: Arc<World>,
        speaker: EntityId,
        beat: Option<i64>,
        names: NameIndex,
        semantic: Option<Arc<Semantic>>,
    ) -> CanonCheck {
        let restriction = |f: &lore_canon::Fact| {
            if f.secret {
                Some(Restriction::Secret)
            } else if matches!((f.span.from, beat), (Some(from), Some(beat)) if from > beat) {
                Some(Restriction::Future)
            } else if !f.known_by(speaker, beat) {
                Some(Restriction::Unknown)
            } else {
                None
            }
        };
        let entities_of = |f: &lore_canon::Fact| {
            let mut entities = f.about.clone();
            if let Some(claim) = &f.claim {
                entities.extend(world.entity(&claim.subject));
                entities.extend(world.entity(&claim.value));
            }
            entities.sort_unstable();
            entities.dedup();
            entities
        };
        // Words the speaker may use anyway: those of every fact it may tell and of every
        // entity's description. What a restricted fact says beyond them gives it away.
        let mut tellable: HashSet<String> = HashSet::new();
        let mut tellable_about: HashMap<EntityId, Vec<String>> = HashMap::new();
        for f in world.facts.iter().filter(|f| restriction(f).is_none()) {
            tellable.extend(content_words(&f.statement));
            for e in entities_of(f) {
                tellable_about
                    .entry(e)
                    .or_default()
                    .push(f.statement.clone());
            }
        }
        for e in &world.entities {
            let description = e.persona.iter().chain(&e.goals).chain(&e.sample_lines);
            for text in description
                .chain(std::iter::once(&e.name))
                .chain(&e.aliases)
            {
                tellable.extend(content_words(text));
            }
        }
        let restricted: Vec<Restricted> = world
            .facts
            .iter()
            .filter_map(|f| {
                let restriction = restriction(f)?;
                let entities = entities_of(f);
                let mut telling: Vec<String> = content_words(&f.statement)
                    .into_iter()
                    .filter(|w| !tellable.contains(w))
                    .collect();
                telling.sort_unstable();
                telling.dedup();
                Some(Restricted {
                    iri: f.iri.clone(),
                    statement: f.statement.clone(),
                    restriction,
                    entities,
                    telling,
                    giveaways: f
                        .giveaways
                        .iter()
                        .filter(|g| !g.trim().is_empty())
                        .map(|g| (plain_lower(g.trim()), g.trim().to_owned()))
                        .collect(),
                })
            })
            .collect();
        let mut restricted_ties: HashMap<(EntityId, EntityId), Vec<(&'static str, usize)>> =
            HashMap::new();
        for (i, fact) in restricted.iter().enumerate() {
            for group in tokens(&fact.statement)
                .iter()
                .filter_map(|t| kin_group(&t.lower))
            {
                for &a in &fact.entities {
                    for &b in fact.entities.iter().filter(|&&b| b != a) {
                        let ties = restricted_ties.entry((a, b)).or_default();
                        ties.push((group, i));
                        ties.push((inverse_group(group), i));
                    }
                }
            }
        }
        let value_of = |value: &str| match world.entity(value) {
            Some(e) => ClaimValue::Entity(e),
            None => ClaimValue::Words(value.to_lowercase()),
        };
        let mut stale = Vec::new();
        for f in &world.facts {
            let (Some(claim), Some(until), Some(beat)) = (&f.claim, f.span.until, beat) else {
                continue;
            };
            let Some(subject) = world.entity(&claim.subject) else {
                continue;
            };
            if until > beat {
                continue;
            }
            let current: Vec<ClaimValue> = world
                .facts
                .iter()
                .filter(|g| g.span.holds_at(Some(beat)))
                .filter_map(|g| g.claim.as_ref())
                .filter(|c| c.subject == claim.subject && c.property == claim.property)
                .map(|c| value_of(&c.value))
                .collect();
            let old = value_of(&claim.value);
            // Only a claim that something else has replaced is known to be over.
            if !current.is_empty() && !current.contains(&old) {
                stale.push(StaleClaim {
                    fact: f.iri.clone(),
                    subject,
                    old,
                    current,
                });
            }
        }
        let dead = (0..world.entities.len())
            .filter(|&e| world.entities[e].dead_at(beat))
            .collect();
        let mut kin: HashMap<(EntityId, EntityId), Vec<&'static str>> = HashMap::new();
        for r in world.relationships.iter().filter(|r| r.span.holds_at(beat)) {
            // Read as replies are (hyphenated words whole), so "father-in-law" in canon is an
            // in-law, not a father.
            for token in tokens(&r.kind) {
                if let Some(group) = kin_group(&token.lower) {
                    kin.entry((r.source, r.target)).or_default().push(group);
                    kin.entry((r.target, r.source))
                        .or_default()
                        .push(inverse_group(group));
                }
            }
        }
        let mut known_phrases = HashSet::new();
        let mut canon_text = String::new();
        let production = &world.production;
        let texts = world
            .facts
            .iter()
            .map(|f| &f.statement)
            .chain(world.entities.iter().flat_map(|e| {
                e.persona
                    .iter()
                    .chain(&e.goals)
                    .chain(&e.sample_lines)
                    .chain(&e.deflections)
            }))
            .chain(production.premise.iter())
            .chain(std::iter::once(&production.title))
            .chain(world.beats.iter().map(|b| &b.name));
        for text in texts {
            canon_text.push_str(&text.to_lowercase());
            canon_text.push('\n');
            for (_, phrase) in capitalised_phrases(text) {
                known_phrases.insert(phrase.to_lowercase());
            }
            // A world set in the real one names its places, at a sentence's start or not.
            for (_, place) in real_world_places(text) {
                known_phrases.insert(place.to_lowercase());
            }
        }
        for e in &world.entities {
            for name in std::iter::once(&e.name).chain(&e.aliases) {
                known_phrases.insert(strip_the(name).to_lowercase());
            }
        }
        CanonCheck {
            world,
            speaker,
            names,
            restricted,
            restricted_ties,
            tellable_about,
            dead,
            stale,
            kin,
            known_phrases,
            canon_text,
            semantic,
        }
    }

    /// How many facts the speaker may not tell here.
    pub fn restricted_facts(&self) -> usize {
        self.restricted.len()
    }

    /// The problems of one sentence. `embedded` is the sentence's embedding
    /// ([`Semantic::embed_views`]), empty without the embedding layer.
    pub fn check(
        &self,
        sentence: &str,
        embedded: &[Embedded],
    ) -> Result<Vec<Finding>, EncoderError> {
        let mentions = self.names.find(sentence);
        let tokens = tokens(sentence);
        let mut findings = self.leaks(sentence, &mentions, &tokens, embedded)?;
        // Words of death or the past excuse what would otherwise speak of the present; such a
        // word inside a name ("the Drowned Chapel") says nothing of anyone.
        let of_the_past = tokens.iter().any(|t| {
            PAST_OR_DEATH.contains(&t.lower.as_str())
                && !mentions
                    .iter()
                    .any(|(r, _)| r.start <= t.range.start && t.range.end <= r.end)
        });
        if !of_the_past {
            findings.extend(self.dead_as_alive(sentence, &mentions, &tokens));
            findings.extend(self.stale_claims(sentence, &mentions, &tokens));
        }
        // A kin claim may tell a secret the words already gave away: one finding a fact.
        for finding in self.kin_claims(sentence, &mentions, &tokens) {
            if !findings.iter().any(|f| f.problem == finding.problem) {
                findings.push(finding);
            }
        }
        findings.extend(self.unknown_places(sentence, &mentions, &tokens));
        Ok(findings)
    }

    fn leaks(
        &self,
        sentence: &str,
        mentions: &[(Range<usize>, EntityId)],
        tokens: &[Token<'_>],
        embedded: &[Embedded],
    ) -> Result<Vec<Finding>, EncoderError> {
        let mut named: HashSet<EntityId> = mentions.iter().map(|(_, e)| *e).collect();
        if tokens
            .iter()
            .any(|t| FIRST_PERSON.contains(&t.lower.as_str()))
        {
            named.insert(self.speaker);
        }
        let said: HashSet<String> = content_words(sentence).into_iter().collect();
        let lower = plain_lower(sentence);
        let mut tellable_near: HashMap<EntityId, f32> = HashMap::new();
        let mut findings = Vec::new();
        for fact in &self.restricted {
            let shared = fact.entities.iter().filter(|e| named.contains(e)).count();
            if shared == 0 && !fact.entities.is_empty() {
                continue;
            }
            let telling: Vec<&str> = fact
                .telling
                .iter()
                .filter(|w| said.contains(*w))
                .map(String::as_str)
                .collect();
            let enough = if fact.entities.is_empty() { 2 } else { 1 };
            // A giveaway, or a meaning close to the fact, tells it only in a sentence that
            // names its entities (two of them, the speaker by "I"; one if it has one).
            let names_its_entities = shared >= fact.entities.len().min(2) && shared > 0;
            let giveaway = fact
                .giveaways
                .iter()
                .find(|(matched, _)| names_its_entities && tokens_contain(&lower, matched));
            let leak = if telling.len() >= enough {
                Some((telling.join(", "), 1.0, both_cases(telling.iter().copied())))
            } else if let Some((_, written)) = giveaway {
                Some((
                    format!("\"{written}\""),
                    1.0,
                    both_cases([written.as_str()]),
                ))
            } else if names_its_entities {
                self.leak_by_meaning(fact, sentence, mentions, embedded, &mut tellable_near)?
            } else {
                None
            };
            if let Some((evidence, score, avoid)) = leak {
                findings.push(Finding {
                    problem: Problem::Leak {
                        fact: fact.iri.clone(),
                        restriction: fact.restriction,
                    },
                    evidence,
                    score,
                    avoid,
                });
            }
        }
        Ok(findings)
    }

    /// Whether `sentence` tells `fact` by meaning: nearer the fact than [`LEAK_SIMILARITY`]
    /// and nearer it than anything that may be told about the same entities. Facts share
    /// entities, so each entity's nearest tellable statement is found once a sentence
    /// (`tellable_near`). Without the embedding layer, nothing is told by meaning.
    fn leak_by_meaning(
        &self,
        fact: &Restricted,
        sentence: &str,
        mentions: &[(Range<usize>, EntityId)],
        embedded: &[Embedded],
        tellable_near: &mut HashMap<EntityId, f32>,
    ) -> Result<Option<(String, f32, Vec<String>)>, EncoderError> {
        let Some(semantic) = &self.semantic else {
            return Ok(None);
        };
        let nearest = |text: &str| -> Result<f32, EncoderError> {
            let v = semantic.example(text)?;
            Ok(embedded
                .iter()
                .map(|e| cosine(&e.vector, &v))
                .fold(f32::NEG_INFINITY, f32::max))
        };
        let restricted = nearest(&fact.statement)?;
        let mut tellable = f32::NEG_INFINITY;
        for e in &fact.entities {
            let near = match tellable_near.get(e) {
                Some(&near) => near,
                None => {
                    let mut near = f32::NEG_INFINITY;
                    for statement in self.tellable_about.get(e).into_iter().flatten() {
                        near = near.max(nearest(statement)?);
                    }
                    tellable_near.insert(*e, near);
                    near
                }
            };
            tellable = tellable.max(near);
        }
        Ok(Some(restricted)
            .filter(|&c| c >= LEAK_SIMILARITY && c > tellable)
            .map(|c| {
                let names = mentions
                    .iter()
                    .filter(|(_, e)| *e != self.speaker && fact.entities.contains(e))
                    .map(|(r, _)| &sentence[r.clone()]);
                (
                    format!("close in meaning to \"{}\"", fact.statement),
                    c,
                    both_cases(names),
                )
            }))
    }

    fn dead_as_alive(
        &self,
        sentence: &str,
        mentions: &[(Range<usize>, EntityId)],
        tokens: &[Token<'_>],
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (range, entity) in mentions {
            if !self.dead.contains(entity)
                || findings
                    .iter()
                    .any(|f: &Finding| f.problem.node() == self.world.entities[*entity].iri)
            {
                continue;
            }
            let after = tokens.iter().filter(|t| t.range.start >= range.end).take(3);
            let verb = after
                .map(|t| t.lower.as_str())
                .find(|w| ALIVE_VERBS.contains(w));
            let visit = tokens
                .iter()
                .rfind(|t| t.range.end <= range.start)
                .map(|t| t.lower.as_str())
                .filter(|w| GO_AND_SEE.contains(w));
            if let Some(word) = verb.or(visit) {
                findings.push(Finding {
                    problem: Problem::DeadAsAlive {
                        character: self.world.entities[*entity].iri.clone(),
                    },
                    evidence: format!("{} ({word})", self.world.entities[*entity].name),
                    score: 1.0,
                    avoid: vec![sentence[range.clone()].to_owned()],
                });
            }
        }
        findings
    }

    /// The restricted fact that states `relative` is `of`'s kin of `group`, if one does.
    fn restricted_tie(&self, of: EntityId, relative: EntityId, group: &str) -> Option<&Restricted> {
        let ties = self.restricted_ties.get(&(of, relative))?;
        let &(_, i) = ties.iter().find(|(g, _)| *g == group)?;
        Some(&self.restricted[i])
    }

    /// Whose kin of `group` a restricted fact says `relative` is (the first such entity).
    fn restricted_tie_partner(&self, relative: EntityId, group: &str) -> Option<EntityId> {
        self.restricted_ties
            .iter()
            .filter(|((_, r), ties)| *r == relative && ties.iter().any(|(g, _)| *g == group))
            .map(|((of, _), _)| *of)
            .min()
    }

    /// Kin claims: a tie that a restricted fact states is a leak of it; a tie canon does not
    /// record is a wrong relationship.
    fn kin_claims(
        &self,
        sentence: &str,
        mentions: &[(Range<usize>, EntityId)],
        tokens: &[Token<'_>],
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        let recorded = |of: EntityId, relative: EntityId, group: &str| {
            of == relative
                || self
                    .kin
                    .get(&(of, relative))
                    .is_some_and(|groups| groups.contains(&group))
        };
        let mut claim = |of: EntityId, relative: EntityId, word: &str| {
            let Some(group) = kin_group(word) else { return };
            let problem = match self.restricted_tie(of, relative, group) {
                Some(fact) => Problem::Leak {
                    fact: fact.iri.clone(),
                    restriction: fact.restriction,
                },
                None if recorded(of, relative, group) => return,
                None => Problem::WrongRelationship {
                    of: self.world.entities[of].iri.clone(),
                    relative: self.world.entities[relative].iri.clone(),
                    claimed: word.to_owned(),
                },
            };
            findings.push(Finding {
                problem,
                evidence: format!(
                    "{} as {}'s {word}",
                    self.world.entities[relative].name, self.world.entities[of].name
                ),
                score: 1.0,
                avoid: both_cases([word]),
            });
        };
        let characters = |e: &EntityId| self.world.entities[*e].kind == EntityKind::Character;
        let character_at = |token: Option<&&Token<'_>>| {
            let start = token?.range.start;
            mentions
                .iter()
                .find(|(r, e)| r.start == start && characters(e))
                .map(|(_, e)| *e)
        };
        for (range, entity) in mentions.iter().filter(|(_, e)| characters(e)) {
            let possessive = after_possessive(&sentence[range.end..], false).is_some();
            // The words after the name, past a possessive's "s".
            let after: Vec<&Token<'_>> = tokens
                .iter()
                .filter(|t| t.range.start >= range.end)
                .skip(usize::from(possessive))
                .take(5)
                .collect();
            let before: Vec<&Token<'_>> = tokens
                .iter()
                .filter(|t| t.range.end <= range.start)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .take(3)
                .collect();
            // "X is my (adjective)? KIN" and "X's my KIN".
            let is_at = if possessive {
                Some(0)
            } else {
                (word(&after, 0) == "is").then_some(1)
            };
            if let Some(i) = is_at
                && word(&after, i) == "my"
            {
                for kin in [word(&after, i + 1), word(&after, i + 2)] {
                    if kin_group(kin).is_some() {
                        claim(self.speaker, *entity, kin);
                        break;
                    }
                }
            }
            // "my (adjective)? KIN, X".
            if (word(&before, 1) == "my" || word(&before, 2) == "my")
                && kin_group(word(&before, 0)).is_some()
            {
                claim(self.speaker, *entity, word(&before, 0));
            }
            // "X's (adjective)? KIN Y" and "X married Y".
            if possessive {
                for i in [0, 1] {
                    if kin_group(word(&after, i)).is_some()
                        && let Some(relative) = character_at(after.get(i + 1))
                    {
                        claim(*entity, relative, word(&after, i));
                        break;
                    }
                }
            }
            if word(&after, 0) == "married"
                && let Some(spouse) = character_at(after.get(1))
            {
                claim(*entity, spouse, "spouse");
            }
            // "her (adjective)? KIN X" (also "his", "their"): wrong only if it is wrong for
            // every character named before it, since the pronoun may stand for any of them.
            let pronoun = [1, 2]
                .into_iter()
                .find(|&i| ["her", "his", "their"].contains(&word(&before, i)));
            if let Some(i) = pronoun
                && let Some(group) = kin_group(word(&before, 0))
            {
                let pronoun_start = before[i].range.start;
                let named_before: Vec<EntityId> = mentions
                    .iter()
                    .filter(|(r, e)| r.end <= pronoun_start && characters(e) && e != entity)
                    .map(|(_, e)| *e)
                    .collect();
                // A secret tie is told whoever the pronoun stands for: one named before it, or,
                // with none, one named in an earlier sentence ("She does it for her brother
                // Silas.").
                let secret_partner = if named_before.is_empty() {
                    self.restricted_tie_partner(*entity, group)
                } else {
                    named_before
                        .iter()
                        .rev()
                        .copied()
                        .find(|&of| self.restricted_tie(of, *entity, group).is_some())
                };
                if let Some(of) = secret_partner {
                    claim(of, *entity, word(&before, 0));
                } else if let Some(&nearest) = named_before.last()
                    && !named_before.iter().any(|&of| recorded(of, *entity, group))
                {
                    claim(nearest, *entity, word(&before, 0));
                }
            }
            // "X is Y's (adjective)? KIN".
            if word(&after, 0) == "is"
                && let Some((other_range, other)) = mentions
                    .iter()
                    .find(|(r, _)| after.get(1).is_some_and(|t| t.range.start == r.start))
                && after_possessive(&sentence[other_range.end..], false).is_some()
            {
                let rest: Vec<&str> = tokens
                    .iter()
                    .filter(|t| t.range.start > other_range.end)
                    .take(2)
                    .map(|t| t.lower.as_str())
                    .collect();
                if let Some(kin) = rest.into_iter().find(|w| kin_group(w).is_some()) {
                    claim(*other, *entity, kin);
                }
            }
        }
        findings.dedup();
        findings
    }

    fn stale_claims(
        &self,
        sentence: &str,
        mentions: &[(Range<usize>, EntityId)],
        tokens: &[Token<'_>],
    ) -> Vec<Finding> {
        let present = tokens
            .iter()
            .any(|t| PRESENT_STATE.contains(&t.lower.as_str()))
            || sentence.contains("'s ")
            || sentence.contains("'m ");
        if !present {
            return Vec::new();
        }
        let lower = sentence.to_lowercase();
        let says = |value: &ClaimValue| match value {
            ClaimValue::Entity(e) => mentions.iter().any(|(_, m)| m == e),
            ClaimValue::Words(w) => tokens_contain(&lower, w),
        };
        let first_person = tokens
            .iter()
            .any(|t| FIRST_PERSON.contains(&t.lower.as_str()));
        self.stale
            .iter()
            .filter(|c| {
                let named = mentions.iter().any(|(_, e)| *e == c.subject)
                    || (c.subject == self.speaker && first_person);
                named && says(&c.old) && !c.current.iter().any(says)
            })
            .map(|c| Finding {
                problem: Problem::Stale {
                    fact: c.fact.clone(),
                },
                evidence: match &c.old {
                    ClaimValue::Entity(e) => self.world.entities[*e].name.clone(),
                    ClaimValue::Words(w) => w.clone(),
                },
                score: 1.0,
                avoid: match &c.old {
                    ClaimValue::Entity(e) => both_cases([self.world.entities[*e].name.as_str()]),
                    ClaimValue::Words(w) => both_cases([w.as_str()]),
                },
            })
            .collect()
    }

    /// Whether canon knows the name `lower` (lower case): as a name or phrase it writes, the
    /// same written apart ("Guild Hall" for the Guildhall), or words it writes in lower case
    /// ("the Great Clock" for its great clock).
    fn knows_name(&self, lower: &str) -> bool {
        self.known_phrases.contains(lower)
            || self.known_phrases.contains(&lower.replace(' ', ""))
            || (lower.contains(' ') && tokens_contain(&self.canon_text, lower))
    }

    /// Whether `phrase` is a name the world's index knows with an "s" added: a possessive
    /// written without its apostrophe ("at Hestias home").
    fn names_with_an_s(&self, phrase: &str) -> bool {
        phrase.strip_suffix('s').is_some_and(|name| {
            self.names
                .find(name)
                .iter()
                .any(|(r, _)| *r == (0..name.len()))
        })
    }

    fn unknown_places(
        &self,
        sentence: &str,
        mentions: &[(Range<usize>, EntityId)],
        tokens: &[Token<'_>],
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        let word_before =
            |token: &Token<'_>| tokens.iter().rfind(|t| t.range.end <= token.range.start);
        for (range, phrase) in capitalised_phrases(sentence) {
            let before = tokens.iter().rfind(|t| t.range.end <= range.start);
            let (preposition, article) = match before {
                Some(the) if the.lower == "the" => (word_before(the), true),
                word => (word, false),
            };
            // What the preposition follows: "the edge of", "going to".
            let governor = preposition
                .and_then(word_before)
                .map_or("", |t| t.lower.as_str());
            let preposition = preposition.map_or("", |p| p.lower.as_str());
            let last = phrase.rsplit(' ').next().unwrap_or_default();
            let first = phrase.split(' ').next().unwrap_or_default();
            let head = PLACE_HEADS.contains(&last) || PLACE_FIRST_WORDS.contains(&first);
            // A name with a place word is a place wherever it stands ("The River Folly.", "the
            // Great Hall is good"), unless it is a common noun ("the Chapel", "the City Hall");
            // other names, after a preposition of place.
            let place_name = head && phrase.contains(' ') && !["City", "Town"].contains(&first);
            let placed = place_name
                || before.is_some_and(|w| PLACE_WORDS_BEFORE_A_NAME.contains(&w.text))
                || OPEN_PREPOSITIONS.contains(&preposition)
                || (DIRECTED_PREPOSITIONS.contains(&preposition) && (article || head))
                || (preposition == "of" && PART_OF_A_PLACE.contains(&governor))
                || (preposition == "to" && JOURNEY_WORDS.contains(&governor));
            // A sentence's first word is not in the phrase; it may begin the name ("Cooper
            // Street is quiet").
            let lower = match before {
                Some(word)
                    if word.text.chars().next().is_some_and(char::is_uppercase)
                        && sentence[word.range.end..range.start] == *" " =>
                {
                    strip_the(&format!("{} {phrase}", word.text)).to_lowercase()
                }
                _ => phrase.to_lowercase(),
            };
            // A canon name is no finding, but a place word added to one is a place canon
            // lacks ("Brindlemoor Hospital" where canon has only Brindlemoor).
            let named = mentions.iter().any(|(r, _)| {
                r.start < range.end && range.start < r.end && (r.end >= range.end || !head)
            }) || self.names_with_an_s(&phrase);
            if placed
                && !named
                && !ORGANISATION_HEADS.contains(&last)
                && !names_no_place(&phrase, &sentence[range.end..])
                && !self.knows_name(&lower)
                && !phrase.split(' ').all(|w| COMMON_CAPITALS.contains(&w))
            {
                let the = if article { "the " } else { "" };
                let evidence = format!("{preposition} {the}{phrase}");
                findings.push(unknown_place(&phrase, evidence.trim_start().to_owned()));
            }
        }
        // A numbered street ("at 60th street") is of a grid canon never draws.
        for pair in tokens.windows(2) {
            let [number, street] = pair else { continue };
            let name = &sentence[number.range.start..street.range.end];
            if is_ordinal(&number.lower)
                && STREET_WORDS.contains(&street.lower.as_str())
                && !tokens_contain(&self.canon_text, &name.to_lowercase())
            {
                findings.push(unknown_place(name, format!("{name}, a numbered street")));
            }
        }
        for (range, place) in real_world_places(sentence) {
            let named = mentions
                .iter()
                .any(|(r, _)| r.start < range.end && range.start < r.end);
            let reported = findings.iter().any(
                |f| matches!(&f.problem, Problem::UnknownPlace { name } if name.contains(place)),
            );
            if !named && !reported && !self.known_phrases.contains(&place.to_lowercase()) {
                findings.push(unknown_place(place, format!("{place}, a real-world place")));
            }
        }
        findings
    }
}

/// A place canon does not have, named `name` in the sentence: a regeneration avoids the name.
fn unknown_place(name: &str, evidence: String) -> Finding {
    Finding {
        problem: Problem::UnknownPlace {
            name: name.to_owned(),
        },
        evidence,
        score: 1.0,
        avoid: vec![name.to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::{Support, support};

    #[test]
    fn support_counts_the_words_of_canon_a_reply_adds_to_the_line() {
        let facts = [
            "Odile commands the Watch.",
            "The Watch guards the harbour at night.",
        ];
        let line = "What keeps you busy, Warden?";
        // "keep" was asked; "house", "safe" and "rats" are the reply's own, none canon's.
        let none = support("I keep my house safe from rats.", &facts, line);
        assert_eq!((none.canon, none.words), (0, 3));
        // "commands"/"command" meet; "Watch" counts once however often it stands.
        let some = support(
            "I command the Watch; the Watch guards the harbour.",
            &facts,
            line,
        );
        assert_eq!((some.canon, some.words), (4, 4));
        // Words the player already said are no evidence of canon.
        assert_eq!(
            support("The Watch.", &facts, "Tell me about the Watch."),
            Support::default()
        );
        // The short answer outranks the same answer among inventions.
        let long = support(
            "I command the Watch and sail my golden barge to Paris.",
            &facts,
            line,
        );
        assert!(some.share() > long.share(), "{some:?} {long:?}");
    }
}
