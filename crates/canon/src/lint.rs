//! `lore check`: findings about canon, each with a place (file and line, or subject IRI) and a fix.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use oxigraph::model::{NamedOrBlankNode, Term};
use oxttl::TriGParser;

use crate::consent;
use crate::error::CanonError;
use crate::names::local_name;
use crate::policy::PolicyKind;
use crate::store::{self, CanonStore};
use crate::vocab::{self, NS};
use crate::world::{EntityKind, World};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Canon works, but likely not as meant.
    Warning,
    /// Canon is wrong: a reply may contradict it or a rule may not fire.
    Error,
}

/// One problem found in canon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// A stable short code, e.g. `unknown-property`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// The node at fault.
    pub subject: String,
    /// The file and 1-based line where the node is first stated, when linting files.
    pub location: Option<(PathBuf, u64)>,
    /// What to do about it.
    pub fix: String,
}

/// Where each subject is first stated in the files being linted.
pub type Positions = HashMap<String, (PathBuf, u64)>;

/// Object properties whose values must be nodes that canon describes.
const REFERENCES: [&str; 13] = [
    "about",
    "knownBy",
    "subject",
    "source",
    "target",
    "appearsIn",
    "memberOf",
    "rating",
    "portrays",
    "knower",
    "knows",
    "supersedes",
    "coversProduction",
];

/// Reads `files` into an in-memory store for linting, with where each subject first appears.
pub fn load_files(files: &[PathBuf]) -> Result<(CanonStore, Positions), CanonError> {
    let store = CanonStore::in_memory()?;
    store.import(
        files,
        crate::CommitMeta::new("lint", "files to check"),
        |_| (),
    )?;
    let mut positions = Positions::new();
    for file in files {
        subject_lines(file, &mut positions)?;
    }
    Ok((store, positions))
}

fn subject_lines(file: &Path, positions: &mut Positions) -> Result<(), CanonError> {
    let line_based = matches!(file.extension().and_then(|e| e.to_str()), Some("nt" | "nq"));
    let is_turtle_family = line_based
        || matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("ttl" | "trig")
        );
    if !is_turtle_family {
        return Ok(()); // JSON-LD has no useful line numbers: findings name the subject.
    }
    let mut record = |subject: &NamedOrBlankNode, line: u64| {
        if let NamedOrBlankNode::NamedNode(n) = subject {
            positions
                .entry(n.as_str().to_owned())
                .or_insert_with(|| (file.to_owned(), line));
        }
    };
    let reader = store::open(file)?;
    let mut parser = (!line_based).then(|| {
        TriGParser::new()
            .with_base_iri(format!("file://{}", file.display()))
            .map(TriGParser::low_level)
    });
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| CanonError::Read {
            path: file.to_owned(),
            source,
        })?;
        let number = index as u64 + 1;
        match &mut parser {
            Some(Ok(parser)) => {
                parser.extend_from_slice(line.as_bytes());
                parser.extend_from_slice(b"\n");
                while let Some(Ok(quad)) = parser.parse_next() {
                    record(&quad.subject, number);
                }
            }
            _ => {
                // N-Triples and N-Quads: one statement a line, subject first.
                if let Some((iri, _)) = line
                    .trim_start()
                    .strip_prefix('<')
                    .and_then(|l| l.split_once('>'))
                    && let Ok(n) = oxigraph::model::NamedNode::new(iri)
                {
                    record(&NamedOrBlankNode::NamedNode(n), number);
                }
            }
        }
    }
    Ok(())
}

/// Lints everything in `store`.
pub fn check(store: &CanonStore, positions: &Positions) -> Result<Vec<Finding>, CanonError> {
    let declared = vocab::declared();
    let mut findings = Vec::new();
    let mut report = |severity, code, subject: &str, message: String, fix: String| {
        findings.push(Finding {
            severity,
            code,
            message,
            subject: subject.to_owned(),
            location: positions.get(subject).cloned(),
            fix,
        });
    };

    lint_terms(store, declared, &mut report)?;

    for fact in store.oxigraph().quads_for_pattern(
        None,
        Some(vocab::RDF_TYPE),
        Some(vocab::FACT.into()),
        None,
    ) {
        let fact = fact?.subject;
        let has = |p| {
            store
                .oxigraph()
                .quads_for_pattern(Some(fact.as_ref()), Some(p), None, None)
                .next()
                .is_some()
        };
        if !has(vocab::STATEMENT) {
            report(
                Severity::Error,
                "fact-without-statement",
                &fact.to_string(),
                "a lore:Fact without lore:statement can never be used".into(),
                "add lore:statement \"...\" with the fact in one sentence".into(),
            );
        }
    }

    for production in crate::production::productions(store)? {
        let world = World::load(store, &production.iri)?;
        lint_world(&world, &mut report);
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.location.cmp(&b.location))
            .then(a.subject.cmp(&b.subject))
    });
    findings.dedup();
    Ok(findings)
}

/// Terms canon uses that the vocabulary does not declare, and references to IRIs canon does
/// not describe, each reported once.
fn lint_terms(
    store: &CanonStore,
    declared: &vocab::Declared,
    report: &mut impl FnMut(Severity, &'static str, &str, String, String),
) -> Result<(), CanonError> {
    let mut typed: HashSet<String> = HashSet::new();
    for quad in store
        .oxigraph()
        .quads_for_pattern(None, Some(vocab::RDF_TYPE), None, None)
    {
        if let NamedOrBlankNode::NamedNode(n) = quad?.subject {
            typed.insert(n.into_string());
        }
    }
    let mut reported = HashSet::new();
    for quad in store.oxigraph().iter() {
        let quad = quad?;
        let subject = match &quad.subject {
            NamedOrBlankNode::NamedNode(n) => n.as_str().to_owned(),
            NamedOrBlankNode::BlankNode(b) => format!("_:{}", b.as_str()),
        };
        let predicate = quad.predicate.as_str();
        if predicate.starts_with(NS)
            && !declared.properties.contains(predicate)
            && reported.insert(("p", predicate.to_owned()))
        {
            report(
                Severity::Error,
                "unknown-property",
                &subject,
                format!(
                    "lore:{} is not a property of the lore vocabulary",
                    local_name(predicate)
                ),
                suggestion(
                    local_name(predicate),
                    &declared.properties,
                    "docs/vocabulary.md lists the properties",
                ),
            );
        }
        let Term::NamedNode(object) = &quad.object else {
            continue;
        };
        let object = object.as_str();
        if quad.predicate == vocab::RDF_TYPE {
            if object.starts_with(NS)
                && !declared.classes.contains(object)
                && reported.insert(("c", object.to_owned()))
            {
                report(
                    Severity::Error,
                    "unknown-class",
                    &subject,
                    format!(
                        "lore:{} is not a class of the lore vocabulary",
                        local_name(object)
                    ),
                    suggestion(
                        local_name(object),
                        &declared.classes,
                        "docs/vocabulary.md lists the classes",
                    ),
                );
            }
            continue;
        }
        let is_reference = predicate
            .strip_prefix(NS)
            .is_some_and(|local| REFERENCES.contains(&local));
        if is_reference
            && !typed.contains(object)
            && !declared.individuals.contains(object)
            && reported.insert(("d", format!("{subject} {object}")))
        {
            report(
                Severity::Error,
                "dangling-reference",
                &subject,
                format!(
                    "lore:{} points to <{object}>, which canon does not describe",
                    local_name(predicate)
                ),
                format!("declare <{object}> with a type (and a label), or fix the IRI"),
            );
        }
    }
    Ok(())
}

fn lint_world(
    world: &World,
    report: &mut impl FnMut(Severity, &'static str, &str, String, String),
) {
    let production = &world.production;
    if production.rating.is_none() {
        report(
            Severity::Error,
            "production-without-rating",
            &production.iri,
            format!(
                "production '{}' has no audience rating, so no rating policy can apply",
                production.title
            ),
            "add lore:rating lore:Everyone (or Everyone10, Teen, Mature, AdultsOnly)".into(),
        );
    }
    if production.tenant.is_none() {
        report(
            Severity::Warning,
            "production-without-tenant",
            &production.iri,
            format!(
                "production '{}' has no tenant, so `lore serve` shows it to no API key",
                production.title
            ),
            "add lore:tenant \"your-studio\"".into(),
        );
    }
    lint_policy(world, report);
    for entity in &world.entities {
        if entity.kind == EntityKind::Character && entity.persona.is_none() {
            report(
                Severity::Error,
                "character-without-persona",
                &entity.iri,
                format!(
                    "character '{}' has no persona in production '{}'",
                    entity.name, production.title
                ),
                "add lore:persona \"who they are, in the third person\"".into(),
            );
        }
    }
    lint_consent(world, report);
    let functional = &vocab::declared().functional;
    let mut by_claim: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (id, fact) in world.facts.iter().enumerate() {
        if fact.secret && fact.common {
            report(
                Severity::Error,
                "secret-common-knowledge",
                &fact.iri,
                "a fact is both lore:secret and lore:commonKnowledge".into(),
                "remove one of the two".into(),
            );
        }
        if fact.secret && fact.knowers.is_empty() {
            report(
                Severity::Warning,
                "secret-known-by-none",
                &fact.iri,
                "a secret that no character knows can never be used in a reply".into(),
                "add lore:knownBy for the characters who keep it".into(),
            );
        }
        if let Some(claim) = &fact.claim
            && functional.contains(&claim.property)
        {
            by_claim
                .entry((&claim.subject, &claim.property))
                .or_default()
                .push(id);
        }
    }
    for ((subject, property), facts) in by_claim {
        for (i, &a) in facts.iter().enumerate() {
            for &b in &facts[i + 1..] {
                let (fa, fb) = (&world.facts[a], &world.facts[b]);
                let (ca, cb) = (fa.claim.as_ref(), fb.claim.as_ref());
                if ca.map(|c| &c.value) != cb.map(|c| &c.value) && fa.span.overlaps(&fb.span) {
                    report(
                        Severity::Error,
                        "contradiction",
                        &fa.iri,
                        format!(
                            "in '{}', <{}> and <{}> give <{subject}> two values of lore:{} over the same story time",
                            production.title,
                            fa.iri,
                            fb.iri,
                            local_name(property)
                        ),
                        "bound one fact with lore:validUntil and the other with lore:validFrom, or drop one".into(),
                    );
                }
            }
        }
    }
}

/// Likeness consent as legal staff recorded it: a record must say what it grants, where and
/// until when in a form the engine can compare, or every request is refused.
fn lint_consent(
    world: &World,
    report: &mut impl FnMut(Severity, &'static str, &str, String, String),
) {
    for portrayal in &world.portrayals {
        if portrayal.consents.is_empty() {
            report(
                Severity::Warning,
                "portrayal-without-consent",
                &portrayal.iri,
                format!(
                    "{} portrays <{}> with no consent record, so every session with that character is refused",
                    portrayal.performer_name, portrayal.character
                ),
                "add lore:consent with a lore:LikenessConsent record".into(),
            );
        }
        if let Some(died) = &portrayal.performer_died
            && !consent::is_date(died)
        {
            report(
                Severity::Error,
                "consent-date",
                &portrayal.performer,
                format!("schema:deathDate '{died}' is not a date YYYY-MM-DD"),
                "write the date as \"2030-01-31\"^^xsd:date".into(),
            );
        }
        for record in &portrayal.consents {
            let mut gaps = Vec::new();
            if record.uses.is_empty() {
                gaps.push(
                    "grants no use (lore:allowsUse lore:TextUse, lore:VoiceUse or lore:ImageUse)"
                        .to_owned(),
                );
            }
            if record.productions.is_empty() {
                gaps.push("covers no production (lore:coversProduction)".to_owned());
            }
            if record.territories.is_empty() {
                gaps.push(
                    "covers no territory (lore:territory \"WORLD\" or ISO codes such as \"GB\")"
                        .to_owned(),
                );
            }
            for territory in &record.territories {
                let iso = territory.len() == 2 && territory.bytes().all(|b| b.is_ascii_uppercase());
                if !iso && territory != "WORLD" {
                    gaps.push(format!(
                        "territory '{territory}' is neither WORLD nor an ISO 3166-1 alpha-2 code"
                    ));
                }
            }
            if let Some(expires) = &record.expires
                && !consent::is_date(expires)
            {
                gaps.push(format!("lore:expires '{expires}' is not a date YYYY-MM-DD"));
            }
            for gap in gaps {
                report(
                    Severity::Error,
                    "consent-record",
                    &record.iri,
                    format!("the consent record {gap}"),
                    "complete the record; until then requests it should allow are refused".into(),
                );
            }
        }
    }
}

/// The policy as this production reads it: cycles, references to nodes or ratings that do
/// not exist, and rules that contradict each other.
fn lint_policy(
    world: &World,
    report: &mut impl FnMut(Severity, &'static str, &str, String, String),
) {
    let policy = &world.policy;
    let title = &world.production.title;
    let node_iris: HashSet<String> = policy.nodes.iter().map(|n| n.iri.clone()).collect();
    let mut unknown_node = |subject: &str, property: &str, iri: &str| {
        if !node_iris.contains(iri) {
            report(
                Severity::Error,
                "unknown-policy-node",
                subject,
                format!(
                    "{property} names <{iri}>, which production '{title}' knows as no \
                     lore:Hazard, lore:ContentDescriptor or lore:Topic"
                ),
                suggestion(
                    local_name(iri),
                    &node_iris,
                    "define it (the default policy is world/policy.trig, graph lore:policy) \
                     or correct the IRI",
                ),
            );
        }
    };
    for iri in &policy.production_off_limits {
        unknown_node(&world.production.iri, "lore:offLimits", iri);
    }
    for iri in &policy.studio_off_limits {
        unknown_node(vocab::POLICY_GRAPH.as_str(), "lore:offLimits", iri);
    }
    for (character, nodes) in &policy.character_off_limits {
        for iri in nodes {
            unknown_node(character, "lore:offLimits", iri);
        }
    }
    for node in &policy.nodes {
        for iri in &node.broader {
            unknown_node(&node.iri, "lore:broader", iri);
        }
    }
    for node in &policy.nodes {
        if let Some(threshold) = node.threshold
            && !(0.0..=1.0).contains(&threshold)
        {
            report(
                Severity::Error,
                "policy-threshold",
                &node.iri,
                format!(
                    "lore:threshold of '{}' must be a number from 0 to 1 (a cosine similarity)",
                    node.label
                ),
                "write e.g. lore:threshold 0.6, or remove it to use the rails' default".into(),
            );
        }
        if node.threshold.is_some() && node.kind == PolicyKind::Topic {
            report(
                Severity::Warning,
                "topic-threshold",
                &node.iri,
                format!(
                    "lore:threshold on topic '{}' has no effect: a topic is read by a head \
                     trained on its examples, not by similarity to one of them",
                    node.label
                ),
                "remove it; to catch more or fewer lines, add examples to the topic or to \
                 lore:OrdinaryTalk"
                    .into(),
            );
        }
    }
    // Ordinary talk is never off limits: a rule on it, or a node under it, would be ignored.
    for node in policy
        .nodes
        .iter()
        .filter(|n| n.kind == PolicyKind::OrdinaryTalk)
    {
        let named_off_limits = policy
            .production_off_limits
            .iter()
            .chain(&policy.studio_off_limits)
            .chain(
                policy
                    .character_off_limits
                    .iter()
                    .flat_map(|(_, nodes)| nodes),
            )
            .any(|iri| *iri == node.iri);
        let rules = [
            (named_off_limits, "is named by lore:offLimits"),
            (node.minimum_rating.is_some(), "has a lore:minimumRating"),
            (!node.broader.is_empty(), "has a lore:broader node"),
            (
                policy.nodes.iter().any(|n| n.broader.contains(&node.iri)),
                "is the lore:broader node of another node",
            ),
        ];
        for (_, what) in rules.iter().filter(|(applies, _)| *applies) {
            report(
                Severity::Error,
                "ordinary-talk-rule",
                &node.iri,
                format!(
                    "'{}' is lore:OrdinaryTalk, which is never off limits, yet it {what}",
                    node.label
                ),
                "make it a lore:Topic if it can be off limits, or remove the rule".into(),
            );
        }
    }
    for cycle in policy.cycles() {
        report(
            Severity::Error,
            "policy-cycle",
            &cycle[0],
            format!("lore:broader goes round in a circle: {}", cycle.join(" → ")),
            "remove one lore:broader link of the circle".into(),
        );
    }

    let rating_iris: HashSet<&str> = policy.ratings.iter().map(|r| r.iri.as_str()).collect();
    let rated = world
        .production
        .rating
        .as_deref()
        .map(|r| (world.production.iri.as_str(), r))
        .into_iter()
        .chain(
            policy
                .nodes
                .iter()
                .filter_map(|n| Some((n.iri.as_str(), n.minimum_rating.as_deref()?))),
        );
    for (subject, iri) in rated {
        if !rating_iris.contains(iri) {
            report(
                Severity::Error,
                "unknown-rating",
                subject,
                format!("rating <{iri}> has no lore:minimumAge in production '{title}'s policy"),
                "import the policy that defines it (world/policy.trig) or give it \
                 lore:minimumAge"
                    .into(),
            );
        }
    }
    for node in &policy.nodes {
        let Some(rating) = &node.minimum_rating else {
            continue;
        };
        let lineage = policy.lineage(&node.iri);
        let above: Vec<_> = lineage
            .iter()
            .skip(1)
            .filter_map(|i| policy.node(i))
            .collect();
        if let Some(hazard) = above
            .iter()
            .copied()
            .chain(std::iter::once(node))
            .find(|n| n.kind == PolicyKind::Hazard)
        {
            report(
                Severity::Error,
                "contradictory-rule",
                &node.iri,
                format!(
                    "'{}' falls under the hazard '{}', which no rating allows, yet \
                     lore:minimumRating allows it from <{rating}>",
                    node.label, hazard.label
                ),
                "remove lore:minimumRating, or move the topic out from under the hazard".into(),
            );
        }
        let age = |iri: &str| policy.rating(iri).map(|r| r.minimum_age);
        for broader in above {
            if let Some(broader_rating) = &broader.minimum_rating
                && age(broader_rating) > age(rating)
            {
                report(
                    Severity::Error,
                    "contradictory-rule",
                    &node.iri,
                    format!(
                        "'{}' is allowed from <{rating}> but the broader '{}' only from \
                         <{broader_rating}>, and a rule on the broader topic covers it",
                        node.label, broader.label
                    ),
                    format!("raise its lore:minimumRating to <{broader_rating}> or drop it"),
                );
            }
        }
    }
    // A descriptor fires through its narrower topics; a node with neither words nor narrower
    // nodes never fires.
    let broader: HashSet<&str> = policy
        .nodes
        .iter()
        .flat_map(|n| n.broader.iter().map(String::as_str))
        .collect();
    for node in &policy.nodes {
        if node.terms.is_empty() && node.examples.is_empty() && !broader.contains(node.iri.as_str())
        {
            report(
                Severity::Warning,
                "policy-node-never-fires",
                &node.iri,
                format!(
                    "policy node '{}' has no lore:term, no lore:example and no narrower node",
                    node.label
                ),
                "add lore:term \"...\" (words that name it) or lore:example \"...\"".into(),
            );
        }
    }
}

fn suggestion(local: &str, known: &HashSet<String>, otherwise: &str) -> String {
    let lower = local.to_lowercase();
    known
        .iter()
        .map(|iri| local_name(iri))
        .find(|k| k.to_lowercase() == lower || strsim_close(&k.to_lowercase(), &lower))
        .map_or_else(
            || otherwise.to_owned(),
            |k| format!("did you mean lore:{k}?"),
        )
}

/// True when two words differ by at most one edit: enough to catch typos like `persna`.
fn strsim_close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let (mut i, mut j, mut edits) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        edits += 1;
        if edits > 1 {
            return false;
        }
        match a.len().cmp(&b.len()) {
            std::cmp::Ordering::Greater => i += 1,
            std::cmp::Ordering::Less => j += 1,
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    edits + (a.len() - i) + (b.len() - j) <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_edit_apart() {
        assert!(strsim_close("persona", "persna"));
        assert!(strsim_close("persona", "persone"));
        assert!(strsim_close("goal", "goals"));
        assert!(!strsim_close("goal", "gaol2"));
    }
}
