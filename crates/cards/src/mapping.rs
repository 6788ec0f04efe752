//! Cards and lorebooks as canon, and canon as cards.
//!
//! The rule that makes the round trip exact: every field of a card is kept in canon, under a
//! canon property where canon has one (`name` is the character's `rdfs:label`, `description`
//! its `lore:persona`, `creator_notes` its writer-only `lore:writerNote`, an entry's content its
//! `lore:statement`) and verbatim as `field:<name>` otherwise; strings are plain literals, every
//! other value an `rdf:JSON` literal. Order lives in `card:index`. The triples that make a
//! card useful to the engine (which entities an entry is about, who knows it, the concepts its
//! keys name) are derived on import and never read back, so editing them cannot corrupt a card.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use lore_canon::{CanonError, CanonStore, EntityId, Production, World, fold_name as fold, vocab};
use oxigraph::model::{
    GraphNameRef, Literal, NamedNode, NamedNodeRef, NamedOrBlankNodeRef, Quad, Term,
};
use serde_json::{Map, Value};

use crate::charx::AssetFile;
use crate::document::{Card, Lorebook, Spec};

/// Where an imported card or lorebook goes.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// The productions it joins: each extends the document's graph, and a card's character
    /// appears in each. Empty: a production of its own is created for it.
    pub productions: &'a [Production],
    /// The entities of those productions by folded name ([`names`]), for linking entries.
    pub names: &'a HashMap<String, String>,
    /// The studio that owns a production created for the document.
    pub tenant: Option<&'a str>,
}

/// A document as canon: the quads of its own graph, ready for [`CanonStore::replace_graphs`].
#[derive(Debug, Clone)]
pub struct Mapped {
    /// The document's graph, replaced as a whole when the same card is imported again.
    pub graph: NamedNode,
    /// The character's (or standalone book's) IRI.
    pub subject: NamedNode,
    /// Every quad, all in `graph`.
    pub quads: Vec<Quad>,
    /// What became what, and what could not be used, by JSON path.
    pub report: Vec<String>,
    /// The entities it declares (its character, the concepts its keys name), by folded name
    /// as in [`names`]: documents imported after it in one batch link their keys to them.
    pub names: HashMap<String, String>,
}

/// The names of `world`'s entities, folded, to the entity's IRI.
pub fn names(world: &World) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for entity in &world.entities {
        for name in std::iter::once(&entity.name).chain(&entity.aliases) {
            out.entry(fold(name)).or_insert_with(|| entity.iri.clone());
        }
    }
    out
}

/// A card as canon.
pub fn card_to_canon(card: &Card, placement: &Placement<'_>) -> Mapped {
    let base = format!("https://lorekeeper.dev/cards/{}", slug(card.name()));
    let mut out = Builder::new(&base);
    let character = NamedNode::new_unchecked(base.as_str());
    let name = card.name().to_owned();
    out.add(&character, vocab::RDF_TYPE, vocab::CHARACTER);
    out.add(
        &character,
        vocab::CARD_SPEC,
        Literal::new_simple_literal(card.spec.name()),
    );
    if let Some(version) = &card.spec_version {
        out.add(&character, vocab::CARD_SPEC_VERSION, literal(version));
    }
    if !card.envelope.is_empty() {
        out.add(
            &character,
            vocab::CARD_ENVELOPE,
            literal(&Value::Object(card.envelope.clone())),
        );
        out.note(
            "$ (top-level fields besides spec and data)",
            "kept verbatim",
        );
    }
    let path = if card.spec == Spec::V1 { "$" } else { "$.data" };
    let mut own_names = vec![name.clone()];
    own_names.extend(
        card.data
            .get("nickname")
            .and_then(Value::as_str)
            .map(str::to_owned),
    );
    for (field, value) in &card.data {
        let at = format!("{path}.{field}");
        let owner = Owner {
            character: &character,
            names: &own_names,
        };
        out.card_field(&base, owner, field, value, &at, placement);
    }
    if let Some(portrait) = &card.portrait {
        out.add(&character, vocab::CARD_PORTRAIT, base64_literal(portrait));
        out.note("the PNG image", "kept as the character's portrait");
    }
    for (i, file) in card.files.iter().enumerate() {
        let node = NamedNode::new_unchecked(format!("{base}/file/{i}"));
        out.add(&character, vocab::CARD_FILE, node.as_ref());
        out.add(&node, vocab::CARD_INDEX, Literal::from(i as i64));
        out.add(
            &node,
            vocab::CARD_PATH,
            Literal::new_simple_literal(&file.path),
        );
        out.add(&node, vocab::CARD_BYTES, base64_literal(&file.bytes));
        out.note(
            &format!("CHARX entry {:?}", file.path),
            "kept as a file of the card",
        );
    }
    out.place(&base, &character, &name, placement, true);
    for name in &own_names {
        out.names.insert(fold(name), character.as_str().to_owned());
    }
    out.finish(character)
}

impl Builder {
    /// Field `field` of a card's data (at JSON path `at`) as canon about its character.
    fn card_field(
        &mut self,
        base: &str,
        owner: Owner<'_>,
        field: &str,
        value: &Value,
        at: &str,
        placement: &Placement<'_>,
    ) {
        let character = owner.character;
        match (field, value) {
            ("character_book", Value::Object(book)) => {
                let node = NamedNode::new_unchecked(format!("{base}/book/0"));
                self.add(character, vocab::CARD_BOOK, node.as_ref());
                let links = Links {
                    owner: Some(owner),
                    names: placement.names,
                };
                self.book(at, &node, book, links);
            }
            ("name", Value::String(_)) => self.text(
                character,
                vocab::RDFS_LABEL,
                value,
                at,
                "the character's name (rdfs:label)",
            ),
            ("description", Value::String(_)) => {
                self.text(character, vocab::PERSONA, value, at, "lore:persona")
            }
            ("creator_notes", Value::String(_)) => self.text(
                character,
                vocab::WRITER_NOTE,
                value,
                at,
                "lore:writerNote (writer-only: never in a prompt)",
            ),
            ("nickname" | "personality" | "scenario" | "first_mes" | "mes_example", _) => {
                self.field(character, field, value);
                self.note(
                    at,
                    "the character's persona and voice in prompts ({{char}}, {{user}} resolved)",
                );
            }
            ("system_prompt" | "post_history_instructions", _) => {
                self.field(character, field, value);
                self.note(at, "kept for export; not put in prompts: Lorekeeper's preamble and rails govern the model");
            }
            _ => {
                self.field(character, field, value);
                self.note(at, "kept verbatim");
            }
        }
    }
}

/// A standalone lorebook as canon; `fallback_name` names it when the book has no name.
pub fn lorebook_to_canon(
    book: &Lorebook,
    fallback_name: &str,
    placement: &Placement<'_>,
) -> Mapped {
    let name = book
        .book
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(fallback_name)
        .to_owned();
    let base = format!("https://lorekeeper.dev/lorebooks/{}", slug(&name));
    let mut out = Builder::new(&base);
    let node = NamedNode::new_unchecked(base.as_str());
    let links = Links {
        owner: None,
        names: placement.names,
    };
    out.book("$", &node, &book.book, links);
    out.place(&base, &node, &name, placement, false);
    out.finish(node)
}

/// The character whose book it is, and the names its keys may use for that character.
#[derive(Clone, Copy)]
struct Owner<'a> {
    character: &'a NamedNode,
    names: &'a [String],
}

/// What a book's entries link to: its owner, if a character's, and the world's names.
#[derive(Clone, Copy)]
struct Links<'a> {
    owner: Option<Owner<'a>>,
    names: &'a HashMap<String, String>,
}

struct Builder {
    graph: NamedNode,
    quads: Vec<Quad>,
    report: Vec<String>,
    names: HashMap<String, String>,
}

impl Builder {
    fn new(base: &str) -> Builder {
        Builder {
            graph: NamedNode::new_unchecked(format!("{base}/graph")),
            quads: Vec::new(),
            report: Vec::new(),
            names: HashMap::new(),
        }
    }

    fn add(&mut self, subject: &NamedNode, predicate: NamedNodeRef<'_>, object: impl Into<Term>) {
        self.quads.push(Quad::new(
            subject.clone(),
            predicate,
            object,
            self.graph.clone(),
        ));
    }

    fn note(&mut self, at: &str, became: &str) {
        self.report.push(format!("{at}: {became}"));
    }

    fn text(
        &mut self,
        subject: &NamedNode,
        property: NamedNodeRef<'_>,
        value: &Value,
        at: &str,
        became: &str,
    ) {
        self.add(subject, property, literal(value));
        self.note(at, became);
    }

    fn field(&mut self, subject: &NamedNode, field: &str, value: &Value) {
        self.add(subject, field_property(field).as_ref(), literal(value));
    }

    /// A book: a character has at most one, a standalone lorebook is one.
    fn book(&mut self, at: &str, node: &NamedNode, book: &Map<String, Value>, links: Links<'_>) {
        self.add(node, vocab::RDF_TYPE, vocab::CARD_LOREBOOK);
        for (field, value) in book {
            if field != "entries" {
                self.field(node, field, value);
            }
        }
        let entries = book
            .get("entries")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        self.note(
            at,
            &format!(
                "lorebook <{}> with {} entries",
                node.as_str(),
                entries.len()
            ),
        );
        for (i, entry) in entries.iter().enumerate() {
            let Value::Object(entry) = entry else {
                continue;
            };
            let at = format!("{at}.entries[{i}]");
            let node_entry = NamedNode::new_unchecked(format!("{}/entry/{i}", node.as_str()));
            self.entry(&at, (node, &node_entry), i, entry, links);
        }
    }

    fn entry(
        &mut self,
        at: &str,
        (book, node): (&NamedNode, &NamedNode),
        index: usize,
        entry: &Map<String, Value>,
        Links { owner, names }: Links<'_>,
    ) {
        self.add(node, vocab::RDF_TYPE, vocab::CARD_ENTRY_CLASS);
        self.add(book, vocab::CARD_ENTRY, node.as_ref());
        self.add(node, vocab::CARD_INDEX, Literal::from(index as i64));
        for (field, value) in entry {
            match (field.as_str(), value) {
                ("content", Value::String(content)) => {
                    let (decorators, body) = split_decorators(content);
                    if !decorators.is_empty() {
                        let decorators =
                            Value::Array(decorators.into_iter().map(Value::String).collect());
                        self.add(node, vocab::CARD_DECORATORS, literal(&decorators));
                    }
                    if let Some(body) = body {
                        self.add(node, vocab::STATEMENT, Literal::new_simple_literal(body));
                        if !body.trim().is_empty() {
                            self.add(node, vocab::RDF_TYPE, vocab::FACT);
                        }
                    }
                }
                _ => self.field(node, field, value),
            }
        }
        // Who knows it: a character's own book is what that character knows; a standalone
        // book is the world's common knowledge.
        match owner {
            Some(owner) => self.add(node, vocab::KNOWN_BY, owner.character.as_ref()),
            None => self.add(node, vocab::COMMON_KNOWLEDGE, Literal::from(true)),
        }
        // What it is about: the entities its keys name; a constant entry of a character's book
        // is about the character, so it stands in every prompt.
        let regex = entry.get("use_regex").and_then(Value::as_bool) == Some(true);
        let keys: Vec<&str> = entry
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|k| !k.trim().is_empty())
            .collect();
        let mut about: Vec<String> = Vec::new();
        let mut unnamed: Vec<&str> = Vec::new();
        if !regex {
            for key in &keys {
                let folded = fold(key);
                if let Some(owner) = owner.filter(|o| o.names.iter().any(|n| fold(n) == folded)) {
                    about.push(owner.character.as_str().to_owned());
                } else if let Some(iri) = names.get(&folded) {
                    about.push(iri.clone());
                } else {
                    unnamed.push(key);
                }
            }
        }
        if let Some(owner) =
            owner.filter(|_| entry.get("constant").and_then(Value::as_bool) == Some(true))
        {
            about.push(owner.character.as_str().to_owned());
        }
        if let Some((first, rest)) = unnamed.split_first() {
            let concept = NamedNode::new_unchecked(format!("{}/keys", node.as_str()));
            self.add(&concept, vocab::RDF_TYPE, vocab::CONCEPT);
            self.add(
                &concept,
                vocab::RDFS_LABEL,
                Literal::new_simple_literal(*first),
            );
            for alias in rest {
                self.add(&concept, vocab::ALIAS, Literal::new_simple_literal(*alias));
            }
            self.add(&concept, vocab::CARD_KEYS_OF, node.as_ref());
            for key in &unnamed {
                self.names
                    .entry(fold(key))
                    .or_insert_with(|| concept.as_str().to_owned());
            }
            about.push(concept.as_str().to_owned());
        }
        about.sort();
        about.dedup();
        for iri in &about {
            self.add(node, vocab::ABOUT, NamedNode::new_unchecked(iri.as_str()));
        }
        let linked = match (regex, about.is_empty(), unnamed.is_empty()) {
            (true, _, _) => {
                "its keys are regular expressions: kept, but it is retrieved only if constant"
                    .to_owned()
            }
            (_, true, _) => "it has no keys: kept, never retrieved".to_owned(),
            (_, _, true) => format!("about {}", about.join(", ")),
            _ => format!(
                "about {} (keys naming no entity became a lore:Concept)",
                about.join(", ")
            ),
        };
        self.note(at, &format!("fact <{}>; {linked}", node.as_str()));
    }

    /// Puts the document into its productions, or a production of its own.
    fn place(
        &mut self,
        base: &str,
        subject: &NamedNode,
        name: &str,
        placement: &Placement<'_>,
        character: bool,
    ) {
        let graph = self.graph.clone();
        if placement.productions.is_empty() {
            let production = NamedNode::new_unchecked(format!("{base}/production"));
            self.add(&production, vocab::RDF_TYPE, vocab::PRODUCTION);
            self.add(
                &production,
                vocab::RDFS_LABEL,
                Literal::new_simple_literal(name),
            );
            self.add(&production, vocab::GRAPH, graph.clone());
            // The strictest rating until a writer sets one: policy errs towards refusing.
            self.add(
                &production,
                vocab::RATING,
                NamedNode::new_unchecked(format!("{}Everyone", vocab::NS)),
            );
            if let Some(tenant) = placement.tenant {
                self.add(
                    &production,
                    vocab::TENANT,
                    Literal::new_simple_literal(tenant),
                );
            }
            if character {
                self.add(subject, vocab::APPEARS_IN, production.as_ref());
            }
            self.note(
                "production",
                &format!(
                    "created <{}> rated Everyone (set lore:rating to change)",
                    production.as_str()
                ),
            );
        }
        for production in placement.productions {
            let iri = NamedNode::new_unchecked(production.iri.as_str());
            self.add(&iri, vocab::EXTENDS, graph.clone());
            if character {
                self.add(subject, vocab::APPEARS_IN, iri.as_ref());
            }
            self.note("production", &format!("joins <{}>", production.iri));
        }
    }

    fn finish(self, subject: NamedNode) -> Mapped {
        Mapped {
            graph: self.graph,
            subject,
            quads: self.quads,
            report: self.report,
            names: self.names,
        }
    }
}

/// An entry's leading `@@decorator` lines and the text after them (`None` when the content is
/// only decorators with no line break after the last).
fn split_decorators(content: &str) -> (Vec<String>, Option<&str>) {
    let mut decorators = Vec::new();
    let mut rest = content;
    while rest.starts_with("@@") {
        match rest.find('\n') {
            Some(end) => {
                decorators.push(rest[..end].to_owned());
                rest = &rest[end + 1..];
            }
            None => {
                decorators.push(rest.to_owned());
                return (decorators, None);
            }
        }
    }
    (decorators, Some(rest))
}

/// The inverse of [`split_decorators`].
fn join_decorators(decorators: &[String], body: Option<&str>) -> String {
    let mut out = decorators.join("\n");
    if let Some(body) = body {
        if !decorators.is_empty() {
            out.push('\n');
        }
        out.push_str(body);
    }
    out
}

fn literal(value: &Value) -> Literal {
    match value {
        Value::String(s) => Literal::new_simple_literal(s),
        other => Literal::new_typed_literal(other.to_string(), vocab::RDF_JSON),
    }
}

fn base64_literal(bytes: &[u8]) -> Literal {
    Literal::new_typed_literal(
        base64::engine::general_purpose::STANDARD.encode(bytes),
        vocab::XSD_BASE64,
    )
}

/// `field:<name>`, the name percent-encoded where it is not a plain identifier.
fn field_property(name: &str) -> NamedNode {
    let mut local = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.') {
            local.push(byte as char);
        } else {
            local.push_str(&format!("%{byte:02X}"));
        }
    }
    NamedNode::new_unchecked(format!("{}{local}", vocab::CARD_FIELD_NS))
}

/// The field a `field:` property holds.
fn field_name(property: &str) -> Option<String> {
    let local = property.strip_prefix(vocab::CARD_FIELD_NS)?;
    let mut bytes = Vec::with_capacity(local.len());
    let mut rest = local.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' && tail.len() >= 2 {
            let hex = std::str::from_utf8(&tail[..2]).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// A URL-safe name for IRIs: ASCII letters and digits, dashes between words; names with no
/// such letters get a hash.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let ascii_only = name.is_ascii();
    if out.is_empty() || !ascii_only {
        // Non-ASCII names (and names that differ only there) must not collide.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        return if out.is_empty() {
            format!("{hash:016x}")
        } else {
            format!("{out}-{:08x}", hash as u32)
        };
    }
    out.to_owned()
}

// --- Back out of canon ----------------------------------------------------------------

/// A node's properties as one production sees them: the production's own graph overrides the
/// graphs it extends, property by property (as [`World`] reads them).
type Description = BTreeMap<String, Vec<Term>>;

fn describe(
    store: &CanonStore,
    production: &Production,
    subject: &str,
) -> Result<Description, CanonError> {
    let subject = NamedNode::new(subject).map_err(|e| malformed(subject, e.to_string()))?;
    let mut out = Description::new();
    let mut priority_of: BTreeMap<String, usize> = BTreeMap::new();
    let graphs = production
        .extends
        .iter()
        .chain(std::iter::once(&production.graph));
    for (priority, graph) in graphs.enumerate() {
        let graph = NamedNode::new(graph.as_str())
            .map_err(|e| malformed(&production.iri, e.to_string()))?;
        for quad in store.oxigraph().quads_for_pattern(
            Some(NamedOrBlankNodeRef::NamedNode(subject.as_ref())),
            None,
            None,
            Some(GraphNameRef::NamedNode(graph.as_ref())),
        ) {
            let quad = quad?;
            let predicate = quad.predicate.into_string();
            if priority_of.get(&predicate).is_some_and(|&p| p < priority) {
                out.remove(&predicate);
            }
            priority_of.insert(predicate.clone(), priority);
            out.entry(predicate).or_default().push(quad.object);
        }
    }
    for values in out.values_mut() {
        values.sort_by_key(Term::to_string);
    }
    Ok(out)
}

fn malformed(subject: &str, message: impl Into<String>) -> CanonError {
    CanonError::Malformed {
        subject: subject.to_owned(),
        message: message.into(),
    }
}

fn one<'a>(d: &'a Description, p: NamedNodeRef<'_>) -> Option<&'a Term> {
    d.get(p.as_str()).and_then(|v| v.first())
}

fn nodes(d: &Description, p: NamedNodeRef<'_>) -> Vec<String> {
    d.get(p.as_str())
        .into_iter()
        .flatten()
        .filter_map(|t| match t {
            Term::NamedNode(n) => Some(n.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

fn value(subject: &str, term: &Term) -> Result<Value, CanonError> {
    match term {
        Term::Literal(l) if l.datatype() == vocab::RDF_JSON => serde_json::from_str(l.value())
            .map_err(|e| malformed(subject, format!("a card value is not JSON: {e}"))),
        Term::Literal(l) => Ok(Value::String(l.value().to_owned())),
        other => Ok(Value::String(other.to_string())),
    }
}

fn bytes(subject: &str, term: Option<&Term>) -> Result<Option<Vec<u8>>, CanonError> {
    let Some(Term::Literal(l)) = term else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(l.value())
        .map(Some)
        .map_err(|e| malformed(subject, format!("card bytes are not base64: {e}")))
}

fn index(d: &Description) -> i64 {
    one(d, vocab::CARD_INDEX)
        .and_then(|t| match t {
            Term::Literal(l) => l.value().parse().ok(),
            _ => None,
        })
        .unwrap_or(i64::MAX)
}

/// The fields kept on a node: `field:` properties, and the canon properties in `renamed`.
fn fields(
    subject: &str,
    d: &Description,
    renamed: &[(NamedNodeRef<'_>, &str)],
) -> Result<Map<String, Value>, CanonError> {
    let mut out = Map::new();
    for (property, terms) in d {
        let Some(term) = terms.first() else { continue };
        let name = match renamed.iter().find(|(p, _)| p.as_str() == property) {
            Some((_, name)) => Some((*name).to_owned()),
            None => field_name(property),
        };
        if let Some(name) = name {
            out.insert(name, value(subject, term)?);
        }
    }
    Ok(out)
}

/// Nodes linked from `d` by `p`, described and in `card:index` order.
fn children(
    store: &CanonStore,
    production: &Production,
    d: &Description,
    p: NamedNodeRef<'_>,
) -> Result<Vec<(String, Description)>, CanonError> {
    let mut out = Vec::new();
    for iri in nodes(d, p) {
        let description = describe(store, production, &iri)?;
        out.push((iri, description));
    }
    out.sort_by_key(|(iri, d)| (index(d), iri.clone()));
    Ok(out)
}

fn book_from(
    store: &CanonStore,
    production: &Production,
    iri: &str,
    d: &Description,
) -> Result<Map<String, Value>, CanonError> {
    let mut book = fields(iri, d, &[])?;
    let mut entries = Vec::new();
    for (entry_iri, e) in children(store, production, d, vocab::CARD_ENTRY)? {
        let mut entry = fields(&entry_iri, &e, &[])?;
        let decorators: Vec<String> = match one(&e, vocab::CARD_DECORATORS)
            .map(|t| value(&entry_iri, t))
            .transpose()?
        {
            Some(Value::Array(items)) => items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let body = match one(&e, vocab::STATEMENT) {
            Some(Term::Literal(l)) => Some(l.value().to_owned()),
            _ => None,
        };
        if !(decorators.is_empty() && body.is_none() && entry.contains_key("content")) {
            entry.insert(
                "content".into(),
                Value::String(join_decorators(&decorators, body.as_deref())),
            );
        }
        entries.push(Value::Object(entry));
    }
    book.insert("entries".into(), Value::Array(entries));
    Ok(book)
}

/// The card of `character` in `world`: for a character that came from a card, that card's
/// fields as canon holds them now; for one written in canon, a card made from its persona,
/// voice and the facts it knows (secrets left out), with its Lorekeeper-only properties under
/// `extensions.lorekeeper`.
pub fn card_from_canon(
    store: &CanonStore,
    world: &World,
    character: EntityId,
) -> Result<Card, CanonError> {
    let production = &world.production;
    let entity = &world.entities[character];
    let d = describe(store, production, &entity.iri)?;
    let spec = match one(&d, vocab::CARD_SPEC) {
        Some(Term::Literal(l)) => Spec::from_name(l.value()),
        _ => None,
    };
    let mut data = fields(
        &entity.iri,
        &d,
        &[
            (vocab::RDFS_LABEL, "name"),
            (vocab::PERSONA, "description"),
            (vocab::WRITER_NOTE, "creator_notes"),
        ],
    )?;
    let books = children(store, production, &d, vocab::CARD_BOOK)?;
    if let Some((iri, book)) = books.first() {
        data.insert(
            "character_book".into(),
            Value::Object(book_from(store, production, iri, book)?),
        );
    }
    let mut files = Vec::new();
    for (iri, f) in children(store, production, &d, vocab::CARD_FILE)? {
        let path = match one(&f, vocab::CARD_PATH) {
            Some(Term::Literal(l)) => l.value().to_owned(),
            _ => continue,
        };
        if let Some(bytes) = bytes(&iri, one(&f, vocab::CARD_BYTES))? {
            files.push(AssetFile { path, bytes });
        }
    }
    let Some(spec) = spec else {
        return Ok(native_card(world, character, data));
    };
    let envelope = match one(&d, vocab::CARD_ENVELOPE)
        .map(|t| value(&entity.iri, t))
        .transpose()?
    {
        Some(Value::Object(envelope)) => envelope,
        _ => Map::new(),
    };
    Ok(Card {
        spec,
        spec_version: one(&d, vocab::CARD_SPEC_VERSION)
            .map(|t| value(&entity.iri, t))
            .transpose()?,
        data,
        envelope,
        files,
        portrait: bytes(&entity.iri, one(&d, vocab::CARD_PORTRAIT))?,
    })
}

fn native_card(world: &World, character: EntityId, mut data: Map<String, Value>) -> Card {
    let entity = &world.entities[character];
    let text = |s: &str| Value::String(s.to_owned());
    if let Some(style) = &entity.speech_style {
        data.insert("personality".into(), text(style));
    }
    if let Some(premise) = &world.production.premise {
        data.insert("scenario".into(), text(premise));
    }
    let examples: String = entity
        .sample_lines
        .iter()
        .map(|line| format!("<START>\n{{{{char}}}}: {line}\n"))
        .collect();
    data.insert("mes_example".into(), text(&examples));
    data.insert(
        "creator".into(),
        text(world.production.tenant.as_deref().unwrap_or_default()),
    );
    data.insert(
        "tags".into(),
        Value::Array(vec![text(&world.production.title)]),
    );
    let mut lorekeeper = Map::new();
    lorekeeper.insert("iri".into(), text(&entity.iri));
    lorekeeper.insert("production".into(), text(&world.production.iri));
    let list = |items: &[String]| Value::Array(items.iter().map(|s| text(s)).collect());
    lorekeeper.insert("aliases".into(), list(&entity.aliases));
    lorekeeper.insert("goals".into(), list(&entity.goals));
    lorekeeper.insert("deflections".into(), list(&entity.deflections));
    if let Some(style) = &entity.speech_style {
        lorekeeper.insert("speech_style".into(), text(style));
    }
    let mut extensions = Map::new();
    extensions.insert("lorekeeper".into(), Value::Object(lorekeeper));
    data.insert("extensions".into(), Value::Object(extensions));
    // The book: what the character knows that is not a secret, keyed by what it is about.
    let mut entries = Vec::new();
    for fact in world
        .facts
        .iter()
        .filter(|f| f.known_by(character, None) && !f.secret)
    {
        let mut keys: Vec<Value> = Vec::new();
        for &about in fact.about.iter().filter(|&&a| a != character) {
            let e = &world.entities[about];
            keys.extend(std::iter::once(&e.name).chain(&e.aliases).map(|n| text(n)));
        }
        let constant = keys.is_empty();
        if constant && !fact.about.contains(&character) {
            continue;
        }
        let id = entries.len();
        let mut entry = Map::new();
        entry.insert("id".into(), Value::from(id));
        entry.insert("keys".into(), Value::Array(keys));
        entry.insert("content".into(), text(&fact.statement));
        entry.insert("enabled".into(), Value::Bool(true));
        entry.insert("insertion_order".into(), Value::from(id));
        entry.insert("constant".into(), Value::Bool(constant));
        entry.insert("use_regex".into(), Value::Bool(false));
        entry.insert("comment".into(), text(&fact.iri));
        entry.insert("extensions".into(), Value::Object(Map::new()));
        entries.push(Value::Object(entry));
    }
    if !entries.is_empty() {
        let mut book = Map::new();
        book.insert(
            "name".into(),
            text(&format!(
                "{}: what {} knows",
                world.production.title, entity.name
            )),
        );
        book.insert("extensions".into(), Value::Object(Map::new()));
        book.insert("entries".into(), Value::Array(entries));
        data.insert("character_book".into(), Value::Object(book));
    }
    Card {
        spec: Spec::V3,
        spec_version: None,
        data,
        envelope: Map::new(),
        files: Vec::new(),
        portrait: None,
    }
}

/// The standalone lorebooks of a production (those no character owns), by IRI.
pub fn lorebooks(store: &CanonStore, production: &Production) -> Result<Vec<String>, CanonError> {
    let mut out = Vec::new();
    for graph in production
        .extends
        .iter()
        .chain(std::iter::once(&production.graph))
    {
        let graph = NamedNode::new(graph.as_str())
            .map_err(|e| malformed(&production.iri, e.to_string()))?;
        for quad in store.oxigraph().quads_for_pattern(
            None,
            Some(vocab::RDF_TYPE),
            Some(vocab::CARD_LOREBOOK.into()),
            Some(graph.as_ref().into()),
        ) {
            let quad = quad?;
            let NamedOrBlankNodeRef::NamedNode(book) = quad.subject.as_ref() else {
                continue;
            };
            let owned = store
                .oxigraph()
                .quads_for_pattern(None, Some(vocab::CARD_BOOK), Some(book.into()), None)
                .next()
                .is_some();
            if !owned {
                out.push(book.as_str().to_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A lorebook (a character's book or a standalone one) as canon holds it now.
pub fn lorebook_from_canon(
    store: &CanonStore,
    production: &Production,
    book: &str,
) -> Result<Map<String, Value>, CanonError> {
    let d = describe(store, production, book)?;
    book_from(store, production, book, &d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decorators_split_and_join_exactly() {
        for content in [
            "",
            "plain",
            "@@depth 4\nbody",
            "@@a\n@@b\n",
            "@@only",
            "@@a\r\nbody\n@@not",
            "\n@@x",
        ] {
            let (decorators, body) = split_decorators(content);
            assert_eq!(join_decorators(&decorators, body), content, "{content:?}");
        }
        assert_eq!(
            split_decorators("@@depth 4\n@@role system\nHi").0,
            ["@@depth 4", "@@role system"]
        );
    }

    #[test]
    fn field_names_survive_any_characters() {
        for name in ["first_mes", "weird key/ü %", "", "a.b-c"] {
            assert_eq!(
                field_name(field_property(name).as_str()).as_deref(),
                Some(name)
            );
        }
    }

    #[test]
    fn slugs_are_stable_and_do_not_collide_on_non_ascii() {
        assert_eq!(slug("Ada Lovelace!"), "ada-lovelace");
        assert_ne!(slug("Zoë"), slug("Zoé"));
        assert!(!slug("李白").is_empty());
    }
}
