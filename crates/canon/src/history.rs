//! Versioned canon: every change is a commit, kept in the store beside the canon it changed.
//!
//! A commit records its author, time, message, provenance (when generation proposed it) and
//! the exact quads it added and removed, as N-Quads in the graph `lore:history`, written in
//! the same transaction as the change itself: canon and its history never disagree. History
//! is linear. A commit names the commit its author saw (its base); when others committed
//! since, the change goes on top only if it touches none of the triples they touched, and is
//! otherwise refused with those triples named. Reverting applies the inverse of a commit's
//! change; a revert that later commits depend on is refused unless they are reverted with it.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::{NamedNode, NamedNodeRef, NamedOrBlankNodeRef, Quad, Term};
use oxigraph::store::Store;

use crate::commit::{
    Base, COMMIT_IRI, Change, Commit, CommitMeta, check_graphs, commit_node, commit_quads,
    is_reserved, new_commit, short, slot,
};
use crate::error::CanonError;
use crate::store::{BULK_LOADER_MEMORY_MB, CanonStore, format_of, open, parser, syntax_error};
use crate::vocab;

/// Triples an error message names before it says how many more there are.
const NAMED_IN_ERRORS: usize = 8;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Quads read from each file, in order.
    pub files: Vec<(PathBuf, u64)>,
    /// Quads in the store after the import.
    pub store_len: usize,
    /// The commit that recorded it; `None` when canon already held every quad.
    pub commit: Option<Commit>,
}

impl CanonStore {
    /// Imports canon files atomically, as one commit: every file is first parsed in full (so
    /// a syntax error names its line and column and nothing is written), then the quads canon
    /// lacks go through the bulk loader with the commit that records them, and become visible
    /// together at its commit.
    ///
    /// `progress` is called with the number of quads loaded so far.
    pub fn import(
        &self,
        files: &[PathBuf],
        meta: CommitMeta,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<ImportReport, CanonError> {
        let _writer = self.lock_writer();
        let mut counts = Vec::with_capacity(files.len());
        let mut added = HashSet::new();
        for file in files {
            let format = format_of(file)?;
            let mut quads = 0;
            for quad in parser(format, file)?.for_reader(open(file)?) {
                let quad = quad.map_err(|e| syntax_error(file, e))?;
                quads += 1;
                if is_reserved(quad.graph_name.as_ref()) {
                    return Err(CanonError::ReservedGraph {
                        graph: quad.graph_name.to_string(),
                    });
                }
                if !self.oxigraph().contains(&quad)? {
                    added.insert(quad);
                }
            }
            counts.push((file.clone(), quads));
        }
        let commit = if added.is_empty() {
            None
        } else {
            let change = Change::new(added, []);
            let commit = new_commit(self.head()?.as_ref(), None, meta, Vec::new(), &change);
            let mut loader = self
                .oxigraph()
                .bulk_loader()
                .with_max_memory_size_in_megabytes(BULK_LOADER_MEMORY_MB)
                .on_progress(progress);
            let record = commit_quads(&commit, &change);
            loader.load_quads(change.added.into_iter().chain(record))?;
            loader.commit()?;
            Some(commit)
        };
        Ok(ImportReport {
            files: counts,
            store_len: self.oxigraph().len()?,
            commit,
        })
    }

    /// Replaces the named graphs `graphs` with `quads` (which may also add to other graphs) as
    /// one commit: readers see the old graphs or the new ones, never a mix. For documents of
    /// a few thousand quads (a card, a lorebook); whole worlds go through
    /// [`CanonStore::import`]'s bulk loader. `None` when canon already was exactly that.
    pub fn replace_graphs(
        &self,
        graphs: &[NamedNode],
        quads: &[Quad],
        meta: CommitMeta,
    ) -> Result<Option<Commit>, CanonError> {
        let new: HashSet<&Quad> = quads.iter().collect();
        let mut removed = Vec::new();
        for graph in graphs {
            for quad in
                self.oxigraph()
                    .quads_for_pattern(None, None, None, Some(graph.as_ref().into()))
            {
                let quad = quad?;
                if !new.contains(&quad) {
                    removed.push(quad);
                }
            }
        }
        let change = Change::new(quads.iter().cloned(), removed);
        match self.commit_change(&Base::Head, meta, change) {
            Err(CanonError::NoChange) => Ok(None),
            other => other.map(Some),
        }
    }

    /// A fingerprint of the canon in the store: the id of its newest commit (empty before
    /// the first). Every write is a commit, so it changes with every change of canon.
    pub fn revision(&self) -> Result<String, CanonError> {
        Ok(self.head()?.map(|c| c.id).unwrap_or_default())
    }

    /// The newest commit, if canon has any.
    pub fn head(&self) -> Result<Option<Commit>, CanonError> {
        self.head_of(&self.commit_index()?)
    }

    /// Every commit, newest first.
    pub fn log(&self) -> Result<Vec<Commit>, CanonError> {
        let index = self.commit_index()?;
        index
            .0
            .iter()
            .rev()
            .map(|(_, id)| self.commit_info(id))
            .collect()
    }

    /// The commit `rev` names: a full id, a unique prefix of at least 4 hex digits, `head`,
    /// or `head~N` (N commits before the newest).
    pub fn commit(&self, rev: &str) -> Result<Commit, CanonError> {
        self.commit_info(self.commit_index()?.resolve(rev)?)
    }

    /// What commit `rev` itself changed.
    pub fn change(&self, rev: &str) -> Result<Change, CanonError> {
        self.change_of(self.commit_index()?.resolve(rev)?)
    }

    /// The net change from canon as of `from` (`None`: before the first commit) to canon as
    /// of `to`, in either order.
    pub fn diff(&self, from: Option<&str>, to: &str) -> Result<Change, CanonError> {
        let index = self.commit_index()?;
        let from_seq = from.map_or(Ok(0), |r| index.sequence(r))?;
        let to_seq = index.sequence(to)?;
        let (low, high, forward) = if from_seq <= to_seq {
            (from_seq, to_seq, true)
        } else {
            (to_seq, from_seq, false)
        };
        let changes = self.changes_between(&index, low, high)?;
        let net = Change::compose(&changes);
        Ok(if forward { net } else { net.inverse() })
    }

    /// Canon as it stood right after commit `rev`: a copy in memory, for queries.
    pub fn as_of(&self, rev: &str) -> Result<CanonStore, CanonError> {
        let index = self.commit_index()?;
        let target = index.sequence(rev)?;
        let copy = Store::new()?;
        let mut transaction = copy.start_transaction()?;
        for quad in self.oxigraph().iter() {
            let quad = quad?;
            if !is_reserved(quad.graph_name.as_ref()) {
                transaction.insert(&quad);
            }
        }
        let later = self.changes_between(&index, target, u64::MAX)?;
        let undo = Change::compose(&later).inverse();
        for quad in &undo.removed {
            transaction.remove(quad);
        }
        transaction.extend(&undo.added);
        transaction.commit()?;
        Ok(CanonStore::from_oxigraph(copy))
    }

    /// Commits `change` on top of canon, as made against `base`. Additions canon already
    /// holds are dropped; every removal must be held. When others committed after `base`,
    /// the change lands only if it touches none of their triples (nor a value they removed
    /// from the same subject and property), else [`CanonError::Conflict`] names them.
    pub fn commit_change(
        &self,
        base: &Base,
        meta: CommitMeta,
        change: Change,
    ) -> Result<Commit, CanonError> {
        let _writer = self.lock_writer();
        let index = self.commit_index()?;
        let head = self.head_of(&index)?;
        let base_seq = match base {
            Base::Head => head.as_ref().map_or(0, |c| c.sequence),
            Base::Root => 0,
            Base::Commit(rev) => index.sequence(rev)?,
        };
        check_graphs(&change)?;
        let both: Vec<String> = {
            let removed: HashSet<String> = change.removed.iter().map(Quad::to_string).collect();
            change
                .added
                .iter()
                .map(Quad::to_string)
                .filter(|q| removed.contains(q))
                .collect()
        };
        if !both.is_empty() {
            return Err(CanonError::AddedAndRemoved {
                triples: name_some(&both),
            });
        }
        if head.as_ref().is_some_and(|h| h.sequence > base_seq) {
            self.check_conflicts(&index, base_seq, &change)?;
        }
        let change = self.effective(change)?;
        let based_on = match base {
            Base::Commit(_) if head.as_ref().map_or(0, |h| h.sequence) > base_seq => {
                index.at(base_seq).map(str::to_owned)
            }
            _ => None,
        };
        self.write_commit(head.as_ref(), based_on, meta, Vec::new(), change)
    }

    /// Reverts commit `rev`: a new commit with the inverse of its change. When later commits
    /// changed any of the same triples, they depend on it: with `with_dependents` they are
    /// reverted in the same commit, else [`CanonError::RevertBlocked`] names them.
    /// The message is `meta`'s when it has one, else says what was reverted.
    pub fn revert(
        &self,
        rev: &str,
        meta: CommitMeta,
        with_dependents: bool,
    ) -> Result<Commit, CanonError> {
        let _writer = self.lock_writer();
        let index = self.commit_index()?;
        let target = self.commit_info(index.resolve(rev)?)?;
        let target_change = self.change_of(&target.id)?;
        let mut touched: HashSet<String> = target_change.touched().collect();
        let mut shared = BTreeSet::new();
        let later = index.after(target.sequence);
        let mut reverted = vec![(target, target_change)];
        for (_, id) in later {
            let change = self.change_of(id)?;
            let overlap: Vec<String> = change.touched().filter(|q| touched.contains(q)).collect();
            if overlap.is_empty() {
                continue;
            }
            shared.extend(overlap);
            touched.extend(change.touched());
            reverted.push((self.commit_info(id)?, change));
        }
        if reverted.len() > 1 && !with_dependents {
            return Err(CanonError::RevertBlocked {
                commit: reverted[0].0.short_id().to_owned(),
                dependents: reverted[1..]
                    .iter()
                    .map(|(c, _)| format!("{} \"{}\"", c.short_id(), c.message))
                    .collect::<Vec<_>>()
                    .join(", "),
                triples: name_some(&shared.into_iter().collect::<Vec<_>>()),
            });
        }
        let undo = Change::compose(reverted.iter().map(|(_, c)| c)).inverse();
        if undo.is_empty() {
            return Err(CanonError::NoChange);
        }
        let names: Vec<&str> = reverted.iter().map(|(c, _)| c.short_id()).collect();
        let message = match reverted.as_slice() {
            _ if !meta.message.is_empty() => meta.message,
            [(only, _)] => format!("Revert {} \"{}\"", only.short_id(), only.message),
            _ => format!("Revert {} together", names.join(", ")),
        };
        let ids = reverted.iter().map(|(c, _)| c.id.clone()).collect();
        let head = self.head_of(&index)?;
        self.write_commit(
            head.as_ref(),
            None,
            CommitMeta { message, ..meta },
            ids,
            undo,
        )
    }

    /// Refuses `change` when a commit after `base_seq` touched its triples or edited a slot
    /// it changes.
    fn check_conflicts(
        &self,
        index: &CommitIndex,
        base_seq: u64,
        change: &Change,
    ) -> Result<(), CanonError> {
        let mine: HashSet<String> = change.touched().collect();
        let my_slots: HashSet<String> = change
            .added
            .iter()
            .chain(&change.removed)
            .map(slot)
            .collect();
        let my_edits = change.edited_slots();
        let mut commits = Vec::new();
        let mut triples = BTreeSet::new();
        for (_, id) in index.after(base_seq) {
            let theirs = self.change_of(id)?;
            let their_edits = theirs.edited_slots();
            let before = triples.len();
            for quad in theirs.added.iter().chain(&theirs.removed) {
                let text = quad.to_string();
                let key = slot(quad);
                if mine.contains(&text)
                    || (their_edits.contains(&key) && my_slots.contains(&key))
                    || my_edits.contains(&key)
                {
                    triples.insert(text);
                }
            }
            if triples.len() > before {
                commits.push(short(id).to_owned());
            }
        }
        if commits.is_empty() {
            return Ok(());
        }
        Err(CanonError::Conflict {
            base: index
                .at(base_seq)
                .map_or_else(|| "the empty canon".to_owned(), |id| short(id).to_owned()),
            commits: commits.join(", "),
            triples: name_some(&triples.into_iter().collect::<Vec<_>>()),
        })
    }

    /// `change` against canon now: additions already held dropped, removals all held.
    fn effective(&self, change: Change) -> Result<Change, CanonError> {
        let store = self.oxigraph();
        let mut missing = Vec::new();
        for quad in &change.removed {
            if !store.contains(quad)? {
                missing.push(quad.to_string());
            }
        }
        if !missing.is_empty() {
            return Err(CanonError::NotHeld {
                triples: name_some(&missing),
            });
        }
        let mut added = Vec::with_capacity(change.added.len());
        for quad in change.added {
            if !store.contains(&quad)? {
                added.push(quad);
            }
        }
        let change = Change {
            added,
            removed: change.removed,
        };
        if change.is_empty() {
            return Err(CanonError::NoChange);
        }
        Ok(change)
    }

    /// Applies `change` and records it as the commit after `head`, in one transaction.
    fn write_commit(
        &self,
        head: Option<&Commit>,
        based_on: Option<String>,
        meta: CommitMeta,
        reverts: Vec<String>,
        change: Change,
    ) -> Result<Commit, CanonError> {
        if let Some(scope) = &meta.scope {
            if let Some(graph) = change.graphs().into_iter().find(|g| !scope.contains(g)) {
                return Err(CanonError::OutsideScope { graph });
            }
            if change
                .added
                .iter()
                .chain(&change.removed)
                .any(|q| q.graph_name.is_default_graph())
            {
                return Err(CanonError::OutsideScope {
                    graph: "the default graph".to_owned(),
                });
            }
        }
        let commit = new_commit(head, based_on, meta, reverts, &change);
        let mut transaction = self.oxigraph().start_transaction()?;
        for quad in &change.removed {
            transaction.remove(quad);
        }
        transaction.extend(&change.added);
        transaction.extend(&commit_quads(&commit, &change));
        transaction.commit()?;
        tracing::info!(
            commit = commit.short_id(),
            added = commit.added,
            removed = commit.removed,
            "canon commit"
        );
        Ok(commit)
    }

    /// Every commit's sequence number and id, read once for an operation.
    fn commit_index(&self) -> Result<CommitIndex, CanonError> {
        let mut nodes = Vec::new();
        for quad in self.oxigraph().quads_for_pattern(
            None,
            Some(vocab::SEQUENCE),
            None,
            Some(vocab::HISTORY_GRAPH.into()),
        ) {
            let quad = quad?;
            let id = match &quad.subject {
                oxigraph::model::NamedOrBlankNode::NamedNode(n) => {
                    n.as_str().strip_prefix(COMMIT_IRI)
                }
                _ => None,
            };
            let seq = match &quad.object {
                Term::Literal(l) => l.value().parse().ok(),
                _ => None,
            };
            match (id, seq) {
                (Some(id), Some(seq)) => nodes.push((seq, id.to_owned())),
                _ => {
                    return Err(malformed(
                        &quad.subject.to_string(),
                        "a commit without a sequence number",
                    ));
                }
            }
        }
        nodes.sort();
        Ok(CommitIndex(nodes))
    }

    fn head_of(&self, index: &CommitIndex) -> Result<Option<Commit>, CanonError> {
        index
            .0
            .last()
            .map(|(_, id)| self.commit_info(id))
            .transpose()
    }

    /// The changes of the commits with sequence in `(after, up_to]`, in order.
    fn changes_between(
        &self,
        index: &CommitIndex,
        after: u64,
        up_to: u64,
    ) -> Result<Vec<Change>, CanonError> {
        index
            .after(after)
            .iter()
            .take_while(|(seq, _)| *seq <= up_to)
            .map(|(_, id)| self.change_of(id))
            .collect()
    }

    fn commit_info(&self, id: &str) -> Result<Commit, CanonError> {
        let node = commit_node(id);
        let values = |predicate: NamedNodeRef<'_>| -> Result<Vec<Term>, CanonError> {
            self.oxigraph()
                .quads_for_pattern(
                    Some(NamedOrBlankNodeRef::from(node.as_ref())),
                    Some(predicate),
                    None,
                    Some(vocab::HISTORY_GRAPH.into()),
                )
                .map(|q| q.map(|q| q.object).map_err(CanonError::from))
                .collect()
        };
        let text = |predicate| -> Result<Option<String>, CanonError> {
            Ok(values(predicate)?.into_iter().next().map(|t| match t {
                Term::Literal(l) => l.value().to_owned(),
                Term::NamedNode(n) => n
                    .as_str()
                    .strip_prefix(COMMIT_IRI)
                    .unwrap_or(n.as_str())
                    .to_owned(),
                other => other.to_string(),
            }))
        };
        let number = |predicate| -> Result<u64, CanonError> {
            text(predicate)?
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| malformed(node.as_str(), "a commit without its counts"))
        };
        let mut reverts: Vec<String> = values(vocab::REVERTS)?
            .into_iter()
            .filter_map(|t| match t {
                Term::NamedNode(n) => n.as_str().strip_prefix(COMMIT_IRI).map(str::to_owned),
                _ => None,
            })
            .collect();
        reverts.sort();
        let mut graphs: Vec<String> = values(vocab::TOUCHES)?
            .into_iter()
            .filter_map(|t| match t {
                Term::NamedNode(n) => Some(n.into_string()),
                _ => None,
            })
            .collect();
        graphs.sort();
        Ok(Commit {
            id: id.to_owned(),
            sequence: number(vocab::SEQUENCE)?,
            parent: text(vocab::PARENT)?,
            based_on: text(vocab::BASED_ON)?,
            author: text(vocab::AUTHOR)?.unwrap_or_default(),
            time: text(vocab::COMMITTED_AT)?.unwrap_or_default(),
            message: text(vocab::MESSAGE)?.unwrap_or_default(),
            provenance: text(vocab::PROVENANCE)?,
            reverts,
            added: usize::try_from(number(vocab::ADDED_COUNT)?).unwrap_or(usize::MAX),
            removed: usize::try_from(number(vocab::REMOVED_COUNT)?).unwrap_or(usize::MAX),
            graphs,
        })
    }

    fn change_of(&self, id: &str) -> Result<Change, CanonError> {
        let node = commit_node(id);
        let read = |predicate: NamedNodeRef<'_>| -> Result<Vec<Quad>, CanonError> {
            let mut quads = Vec::new();
            for chunk in self.oxigraph().quads_for_pattern(
                Some(NamedOrBlankNodeRef::from(node.as_ref())),
                Some(predicate),
                None,
                Some(vocab::HISTORY_GRAPH.into()),
            ) {
                let Term::Literal(text) = chunk?.object else {
                    return Err(malformed(
                        node.as_str(),
                        "a change that is not N-Quads text",
                    ));
                };
                for quad in RdfParser::from_format(RdfFormat::NQuads).for_slice(text.value()) {
                    quads.push(quad.map_err(|e| malformed(node.as_str(), &e.to_string()))?);
                }
            }
            Ok(quads)
        };
        Ok(Change::new(read(vocab::ADDED)?, read(vocab::REMOVED)?))
    }
}

/// Every commit as (sequence, id), oldest first: read once per operation, so one operation
/// sees one history.
struct CommitIndex(Vec<(u64, String)>);

impl CommitIndex {
    /// Full id of the commit `rev` names: a full id, a unique prefix of at least 4 hex digits,
    /// `head` or `head~N`.
    fn resolve(&self, rev: &str) -> Result<&str, CanonError> {
        let rev = rev.trim();
        let unknown = |hint: &str| CanonError::UnknownCommit {
            rev: rev.to_owned(),
            hint: hint.to_owned(),
        };
        let lower = rev.to_ascii_lowercase();
        if let Some(back) = lower.strip_prefix("head") {
            let back: usize = match back.strip_prefix('~') {
                None if back.is_empty() => 0,
                Some(n) => n
                    .parse()
                    .map_err(|_| unknown("write head~N with N a number"))?,
                None => return Err(unknown("write head or head~N")),
            };
            let count = self.0.len();
            return self
                .0
                .iter()
                .rev()
                .nth(back)
                .map(|(_, id)| id.as_str())
                .ok_or_else(|| unknown(&format!("canon has {count} commits")));
        }
        if lower.len() < 4 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown(
                "give a commit id (at least 4 hex digits), head or head~N",
            ));
        }
        let matches: Vec<&str> = self
            .0
            .iter()
            .map(|(_, id)| id.as_str())
            .filter(|id| id.starts_with(&lower))
            .collect();
        match matches.as_slice() {
            [id] => Ok(id),
            [] => Err(unknown("`lore log` lists the commits")),
            _ => Err(CanonError::AmbiguousCommit {
                rev: rev.to_owned(),
                matches: matches
                    .iter()
                    .map(|m| short(m))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The sequence number of the commit `rev` names.
    fn sequence(&self, rev: &str) -> Result<u64, CanonError> {
        let id = self.resolve(rev)?;
        Ok(self
            .0
            .iter()
            .find(|(_, i)| i == id)
            .map_or(0, |(seq, _)| *seq))
    }

    /// The id of the commit with sequence `seq` (`None` for 0, before the first).
    fn at(&self, seq: u64) -> Option<&str> {
        self.0
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, id)| id.as_str())
    }

    /// The commits after sequence `seq`, oldest first.
    fn after(&self, seq: u64) -> &[(u64, String)] {
        &self.0[self.0.partition_point(|(s, _)| *s <= seq)..]
    }
}

/// The first few of `triples`, and how many more there are.
fn name_some(triples: &[String]) -> String {
    let mut named = triples
        .iter()
        .take(NAMED_IN_ERRORS)
        .map(|t| format!("{t} ."))
        .collect::<Vec<_>>()
        .join("; ");
    if triples.len() > NAMED_IN_ERRORS {
        let _ = write!(named, "; and {} more", triples.len() - NAMED_IN_ERRORS);
    }
    named
}

fn malformed(subject: &str, message: &str) -> CanonError {
    CanonError::Malformed {
        subject: subject.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::model::{Literal, LiteralRef};

    fn quad(s: &str, o: &str) -> Quad {
        Quad::new(
            NamedNode::new_unchecked(format!("urn:{s}")),
            NamedNode::new_unchecked("urn:p"),
            Literal::new_simple_literal(o),
            NamedNode::new_unchecked("urn:g"),
        )
    }

    fn meta(message: &str) -> CommitMeta {
        CommitMeta::new("test", message)
    }

    #[test]
    fn commits_apply_and_revert_exactly() {
        let store = CanonStore::in_memory().unwrap();
        let first = store
            .commit_change(&Base::Root, meta("a"), Change::new([quad("a", "1")], []))
            .unwrap();
        assert_eq!(first.sequence, 1);
        assert_eq!(store.revision().unwrap(), first.id);
        let second = store
            .commit_change(
                &Base::Commit(first.id.clone()),
                meta("b"),
                Change::new([quad("b", "2")], [quad("a", "1")]),
            )
            .unwrap();
        assert_eq!(second.parent.as_deref(), Some(first.id.as_str()));
        assert!(!store.oxigraph().contains(&quad("a", "1")).unwrap());
        let revert = store.revert(&second.id[..6], meta(""), false).unwrap();
        assert_eq!(revert.reverts, vec![second.id.clone()]);
        assert!(store.oxigraph().contains(&quad("a", "1")).unwrap());
        assert!(!store.oxigraph().contains(&quad("b", "2")).unwrap());
        let log = store.log().unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(log[0].id, revert.id);
        assert_eq!(
            store.diff(Some(&first.id), &revert.id).unwrap(),
            Change::default()
        );
        let literal_count = store
            .oxigraph()
            .quads_for_pattern(
                None,
                Some(vocab::MESSAGE),
                Some(LiteralRef::new_simple_literal("b").into()),
                None,
            )
            .count();
        assert_eq!(literal_count, 1);
    }

    #[test]
    fn stale_base_conflicts_name_triples() {
        let store = CanonStore::in_memory().unwrap();
        let first = store
            .commit_change(&Base::Head, meta("a"), Change::new([quad("a", "1")], []))
            .unwrap();
        store
            .commit_change(
                &Base::Commit(first.id.clone()),
                meta("edit"),
                Change::new([quad("a", "2")], [quad("a", "1")]),
            )
            .unwrap();
        let err = store
            .commit_change(
                &Base::Commit(first.id.clone()),
                meta("other edit"),
                Change::new([quad("a", "3")], [quad("a", "1")]),
            )
            .unwrap_err();
        let CanonError::Conflict { triples, .. } = &err else {
            panic!("{err}")
        };
        assert!(triples.contains("<urn:a> <urn:p> \"1\""), "{err}");
        // Elsewhere in the graph, the same stale base is fine.
        let landed = store
            .commit_change(
                &Base::Commit(first.id.clone()),
                meta("unrelated"),
                Change::new([quad("z", "9")], []),
            )
            .unwrap();
        assert_eq!(landed.based_on.as_deref(), Some(first.id.as_str()));
    }
}
