//! A commit of canon and how it is recorded: its author, time, message and exact change, as
//! quads of the graph `lore:history` written in the same transaction as the change.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;

use oxigraph::model::{GraphNameRef, Literal, NamedNode, NamedNodeRef, Quad, Term};
use sha2::{Digest, Sha256};

use crate::error::CanonError;
use crate::vocab;

/// Quads per N-Quads literal of a commit's change, so no single value grows without bound.
const CHUNK_QUADS: usize = 4096;
/// The prefix of a commit's IRI; the rest is its id.
pub(crate) const COMMIT_IRI: &str = "urn:lore:commit:";

/// One commit of canon, without its change (see [`CanonStore::change`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Commit {
    /// SHA-256 (hex) over everything below and the change.
    pub id: String,
    /// 1 for the first commit, then one more for each.
    pub sequence: u64,
    /// The commit before it.
    pub parent: Option<String>,
    /// The commit its author saw, when others committed in between.
    pub based_on: Option<String>,
    /// Who made it (a key's name, a user, `import`).
    pub author: String,
    /// When, RFC 3339 in UTC.
    pub time: String,
    /// Why.
    pub message: String,
    /// The signed provenance record (JSON) of generated material it brought in.
    pub provenance: Option<String>,
    /// The commits it reverts.
    pub reverts: Vec<String>,
    /// Quads added.
    pub added: usize,
    /// Quads removed.
    pub removed: usize,
    /// The named graphs it changed, sorted.
    pub graphs: Vec<String>,
}

impl Commit {
    /// The first 12 hex digits, enough to name a commit in a store of any realistic size.
    pub fn short_id(&self) -> &str {
        short(&self.id)
    }
}

pub(crate) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// What a commit changes: quads added and quads removed (disjoint, each sorted, no repeats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Quads the commit adds.
    pub added: Vec<Quad>,
    /// Quads the commit removes.
    pub removed: Vec<Quad>,
}

impl Change {
    /// A change from any quads: sorted, repeats dropped.
    pub fn new(
        added: impl IntoIterator<Item = Quad>,
        removed: impl IntoIterator<Item = Quad>,
    ) -> Self {
        Self {
            added: sorted(added),
            removed: sorted(removed),
        }
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// The change that undoes this one.
    pub fn inverse(&self) -> Change {
        Change {
            added: self.removed.clone(),
            removed: self.added.clone(),
        }
    }

    /// The net effect of applying `changes` in order.
    pub fn compose<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Change {
        let mut net: BTreeMap<String, (Quad, bool)> = BTreeMap::new();
        for change in changes {
            for (quads, adds) in [(&change.removed, false), (&change.added, true)] {
                for quad in quads {
                    let key = quad.to_string();
                    match net.get(&key) {
                        // Added then removed, or removed then added: no net change.
                        Some((_, was_added)) if *was_added != adds => {
                            net.remove(&key);
                        }
                        _ => {
                            net.insert(key, (quad.clone(), adds));
                        }
                    }
                }
            }
        }
        let (added, removed): (Vec<_>, Vec<_>) = net.into_values().partition(|(_, adds)| *adds);
        Change {
            added: added.into_iter().map(|(q, _)| q).collect(),
            removed: removed.into_iter().map(|(q, _)| q).collect(),
        }
    }

    /// The named graphs it changes, sorted.
    pub fn graphs(&self) -> Vec<String> {
        let graphs: BTreeSet<String> = self
            .added
            .iter()
            .chain(&self.removed)
            .filter_map(|q| match &q.graph_name {
                oxigraph::model::GraphName::NamedNode(g) => Some(g.as_str().to_owned()),
                _ => None,
            })
            .collect();
        graphs.into_iter().collect()
    }

    /// Only the quads in `graphs`.
    pub fn within(&self, graphs: &[String]) -> Change {
        let keep = |q: &&Quad| match &q.graph_name {
            oxigraph::model::GraphName::NamedNode(g) => graphs.iter().any(|x| x == g.as_str()),
            _ => false,
        };
        Change {
            added: self.added.iter().filter(keep).cloned().collect(),
            removed: self.removed.iter().filter(keep).cloned().collect(),
        }
    }

    /// Every quad it touches, as N-Quads text.
    pub(crate) fn touched(&self) -> impl Iterator<Item = String> + '_ {
        self.added.iter().chain(&self.removed).map(Quad::to_string)
    }

    /// The (graph, subject, predicate) slots whose values it removes: a change that adds or
    /// removes a value in the same slot edits the same thing.
    pub(crate) fn edited_slots(&self) -> HashSet<String> {
        self.removed.iter().map(slot).collect()
    }

    /// Its quads as N-Quads text, added lines first with `+`, removed with `-`.
    pub fn to_patch(&self) -> String {
        let mut text = String::new();
        for quad in &self.added {
            let _ = writeln!(text, "+ {quad} .");
        }
        for quad in &self.removed {
            let _ = writeln!(text, "- {quad} .");
        }
        text
    }
}

fn sorted(quads: impl IntoIterator<Item = Quad>) -> Vec<Quad> {
    let by_text: BTreeMap<String, Quad> = quads.into_iter().map(|q| (q.to_string(), q)).collect();
    by_text.into_values().collect()
}

pub(crate) fn slot(quad: &Quad) -> String {
    format!("{} {} {}", quad.graph_name, quad.subject, quad.predicate)
}

/// Who makes a change and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMeta {
    /// Who (a key's name, a user, `import`).
    pub author: String,
    /// Why.
    pub message: String,
    /// The provenance record of generated material it brings in.
    pub provenance: Option<String>,
    /// The named graphs the author may change; `None`: any.
    pub scope: Option<Vec<String>>,
}

impl CommitMeta {
    /// A change by `author` for `message`, not generated, in any graph.
    pub fn new(author: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            author: author.into(),
            message: message.into(),
            provenance: None,
            scope: None,
        }
    }
}

/// The commit a change was made against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// Whatever is newest when it lands (imports and tools that hold no earlier view).
    Head,
    /// Canon before its first commit.
    Root,
    /// A commit, by id, unique prefix, `head` or `head~N`.
    Commit(String),
}

/// A commit's record (the change not yet stored): its id hashes everything it says.
pub(crate) fn new_commit(
    head: Option<&Commit>,
    based_on: Option<String>,
    meta: CommitMeta,
    reverts: Vec<String>,
    change: &Change,
) -> Commit {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut commit = Commit {
        id: String::new(),
        sequence: head.map_or(1, |h| h.sequence + 1),
        parent: head.map(|h| h.id.clone()),
        based_on,
        author: meta.author,
        time,
        message: meta.message,
        provenance: meta.provenance,
        reverts,
        added: change.added.len(),
        removed: change.removed.len(),
        graphs: change.graphs(),
    };
    let mut hasher = Sha256::new();
    let header = hashed_header(&commit);
    hasher.update(header.as_bytes());
    hasher.update(change.to_patch().as_bytes());
    commit.id = hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
    commit
}

/// The commit's fields, one per line, in a fixed order (what its id hashes).
fn hashed_header(commit: &Commit) -> String {
    format!(
        "sequence {}\nparent {:?}\nbased_on {:?}\nauthor {:?}\ntime {:?}\nmessage {:?}\nprovenance {:?}\nreverts {:?}\n",
        commit.sequence,
        commit.parent,
        commit.based_on,
        commit.author,
        commit.time,
        commit.message,
        commit.provenance,
        commit.reverts
    )
}

pub(crate) fn commit_node(id: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{COMMIT_IRI}{id}"))
}

/// The quads of the graph `lore:history` that record `commit` and its change.
pub(crate) fn commit_quads(commit: &Commit, change: &Change) -> Vec<Quad> {
    let node = commit_node(&commit.id);
    let graph = vocab::HISTORY_GRAPH;
    let mut quads = Vec::new();
    let mut put = |predicate: NamedNodeRef<'_>, object: Term| {
        quads.push(Quad::new(node.clone(), predicate, object, graph));
    };
    put(oxigraph::model::vocab::rdf::TYPE, vocab::COMMIT.into());
    let integer = |n: usize| {
        Term::from(Literal::new_typed_literal(
            n.to_string(),
            oxigraph::model::vocab::xsd::INTEGER,
        ))
    };
    put(
        vocab::SEQUENCE,
        integer(usize::try_from(commit.sequence).unwrap_or(usize::MAX)),
    );
    put(vocab::ADDED_COUNT, integer(commit.added));
    put(vocab::REMOVED_COUNT, integer(commit.removed));
    for (predicate, other) in [
        (vocab::PARENT, &commit.parent),
        (vocab::BASED_ON, &commit.based_on),
    ] {
        if let Some(other) = other {
            put(predicate, commit_node(other).into());
        }
    }
    for reverted in &commit.reverts {
        put(vocab::REVERTS, commit_node(reverted).into());
    }
    for graph in &commit.graphs {
        put(vocab::TOUCHES, NamedNode::new_unchecked(graph).into());
    }
    put(
        vocab::AUTHOR,
        Literal::new_simple_literal(&commit.author).into(),
    );
    put(
        vocab::COMMITTED_AT,
        Literal::new_typed_literal(&commit.time, oxigraph::model::vocab::xsd::DATE_TIME).into(),
    );
    put(
        vocab::MESSAGE,
        Literal::new_simple_literal(&commit.message).into(),
    );
    if let Some(provenance) = &commit.provenance {
        put(
            vocab::PROVENANCE,
            Literal::new_simple_literal(provenance).into(),
        );
    }
    for (predicate, part) in [
        (vocab::ADDED, &change.added),
        (vocab::REMOVED, &change.removed),
    ] {
        for chunk in part.chunks(CHUNK_QUADS) {
            let mut text = String::new();
            for quad in chunk {
                let _ = writeln!(text, "{quad} .");
            }
            put(predicate, Literal::new_simple_literal(text).into());
        }
    }
    quads
}

/// The engine's own graphs, which no change of canon may touch.
pub(crate) fn is_reserved(graph: GraphNameRef<'_>) -> bool {
    graph == GraphNameRef::from(vocab::HISTORY_GRAPH)
        || graph == GraphNameRef::from(vocab::SYSTEM_GRAPH)
}

pub(crate) fn check_graphs(change: &Change) -> Result<(), CanonError> {
    match change
        .added
        .iter()
        .chain(&change.removed)
        .find(|q| is_reserved(q.graph_name.as_ref()))
    {
        Some(quad) => Err(CanonError::ReservedGraph {
            graph: quad.graph_name.to_string(),
        }),
        None => Ok(()),
    }
}
