//! Versioned canon against a reference: 1,000 random commits (some on stale bases) and reverts
//! (some with dependents), each outcome and the canon it leaves compared with a model that
//! keeps every state in memory.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::collections::{BTreeSet, HashMap, HashSet};

use lore_canon::{Base, CanonError, CanonStore, Change, CommitMeta};
use oxigraph::model::{GraphNameRef, Literal, NamedNode, Quad};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const STEPS: usize = 1_000;

/// The model: canon after each commit, and what each commit changed.
struct Reference {
    /// `states[n]`: canon after commit n (0: before the first).
    states: Vec<BTreeSet<String>>,
    /// `changes[n - 1]`: quads commit n added and removed.
    changes: Vec<(BTreeSet<String>, BTreeSet<String>)>,
    ids: Vec<String>,
}

impl Reference {
    fn head(&self) -> &BTreeSet<String> {
        self.states.last().unwrap()
    }

    fn push(&mut self, id: String, added: BTreeSet<String>, removed: BTreeSet<String>) {
        let mut state = self.head().clone();
        state.retain(|q| !removed.contains(q));
        state.extend(added.iter().cloned());
        self.states.push(state);
        self.changes.push((added, removed));
        self.ids.push(id);
    }

    fn touched(&self, n: usize) -> impl Iterator<Item = &String> {
        let (added, removed) = &self.changes[n - 1];
        added.iter().chain(removed)
    }
}

/// The quad as the store prints it.
fn text(quad: &Quad) -> String {
    quad.to_string()
}

/// A quad from a small universe, so that edits collide often.
fn random_quad(rng: &mut StdRng) -> Quad {
    Quad::new(
        NamedNode::new_unchecked(format!("urn:s{}", rng.random_range(0..6))),
        NamedNode::new_unchecked(format!("urn:p{}", rng.random_range(0..2))),
        Literal::new_simple_literal(rng.random_range(0..4).to_string()),
        NamedNode::new_unchecked(format!("urn:g{}", rng.random_range(0..2))),
    )
}

/// "graph subject predicate" of an N-Quads line "s p o g".
fn slot(quad: &Quad) -> String {
    format!("{} {} {}", quad.graph_name, quad.subject, quad.predicate)
}

fn canon(store: &CanonStore) -> BTreeSet<String> {
    store
        .oxigraph()
        .iter()
        .map(|q| q.unwrap())
        .filter(|q| {
            !matches!(q.graph_name.as_ref(), GraphNameRef::NamedNode(g)
                if g.as_str().starts_with("https://lorekeeper.dev/ns/lore#"))
        })
        .map(|q| text(&q))
        .collect()
}

#[test]
fn thousand_random_commits_and_reverts_match_the_reference() {
    let mut rng = StdRng::seed_from_u64(8);
    let store = CanonStore::in_memory().unwrap();
    let mut reference = Reference {
        states: vec![BTreeSet::new()],
        changes: Vec::new(),
        ids: Vec::new(),
    };
    // Every quad drawn so far, by its text.
    let mut known: HashMap<String, Quad> = HashMap::new();
    let (mut conflicts, mut blocked, mut reverts, mut together, mut stale_landed) = (0, 0, 0, 0, 0);
    for step in 0..STEPS {
        let commits = reference.ids.len();
        let roll = rng.random_range(0..100);
        if roll < 60 || commits == 0 {
            // An edit made against a base the writer saw: usually the newest, sometimes old.
            let base_seq = if commits > 0 && rng.random_bool(0.3) {
                rng.random_range(commits.saturating_sub(8)..commits)
            } else {
                commits
            };
            let seen = &reference.states[base_seq];
            let mut added = Vec::new();
            let mut removed = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                let quad = random_quad(&mut rng);
                if seen.contains(&text(&quad)) {
                    removed.push(quad);
                } else {
                    added.push(quad);
                }
            }
            let change = Change::new(added.clone(), removed.clone());
            let base = if base_seq == 0 {
                Base::Root
            } else {
                Base::Commit(reference.ids[base_seq - 1].clone())
            };
            let result = store.commit_change(
                &base,
                CommitMeta::new("w", format!("edit {step}")),
                change.clone(),
            );
            // What the model expects: a conflict with a commit after the base when it touched
            // one of these quads, or removed a value from a slot this edit changes, or this
            // edit removes a value from a slot it touched.
            for quad in change.added.iter().chain(&change.removed) {
                known.insert(text(quad), quad.clone());
            }
            let mine: HashSet<String> = change
                .added
                .iter()
                .chain(&change.removed)
                .map(text)
                .collect();
            let my_slots: HashSet<String> = change
                .added
                .iter()
                .chain(&change.removed)
                .map(slot)
                .collect();
            let my_edits: HashSet<String> = change.removed.iter().map(slot).collect();
            let conflict = (base_seq + 1..=commits).any(|n| {
                let (their_added, their_removed) = &reference.changes[n - 1];
                let their_edits: HashSet<String> =
                    their_removed.iter().map(|q| slot(&known[q])).collect();
                their_added.iter().chain(their_removed).any(|q| {
                    let at = slot(&known[q]);
                    mine.contains(q)
                        || my_edits.contains(&at)
                        || (their_edits.contains(&at) && my_slots.contains(&at))
                })
            });
            let head = reference.head();
            let effective_added: BTreeSet<String> = change
                .added
                .iter()
                .map(text)
                .filter(|q| !head.contains(q))
                .collect();
            let removed: BTreeSet<String> = change.removed.iter().map(text).collect();
            match result {
                Err(CanonError::Conflict { triples, .. }) => {
                    assert!(
                        conflict,
                        "step {step}: refused as a conflict the model does not see: {triples}"
                    );
                    conflicts += 1;
                }
                Err(CanonError::NoChange) => {
                    assert!(
                        !conflict && effective_added.is_empty() && removed.is_empty(),
                        "step {step}"
                    );
                }
                Err(CanonError::NotHeld { .. }) => {
                    panic!("step {step}: removals come from the base")
                }
                Err(other) => panic!("step {step}: {other}"),
                Ok(commit) => {
                    assert!(!conflict, "step {step}: a conflicting edit landed");
                    assert!(removed.iter().all(|q| head.contains(q)), "step {step}");
                    assert_eq!(commit.sequence as usize, commits + 1);
                    // A stale base is recorded (the empty canon has no commit to name).
                    assert_eq!(
                        commit.based_on.is_some(),
                        base_seq > 0 && base_seq < commits,
                        "step {step}"
                    );
                    stale_landed += usize::from(base_seq < commits);
                    reference.push(commit.id, effective_added, removed);
                }
            }
        } else if roll < 90 {
            let target = rng.random_range(1..=commits);
            let with_dependents = rng.random_bool(0.5);
            // Dependents: later commits touching what the chosen set touched.
            let mut touched: HashSet<&String> = reference.touched(target).collect();
            let mut selected = vec![target];
            for n in target + 1..=commits {
                if reference.touched(n).any(|q| touched.contains(q)) {
                    touched.extend(reference.touched(n));
                    selected.push(n);
                }
            }
            // Each touched quad returns to its state before the first selected commit that
            // touched it.
            let mut expected = reference.head().clone();
            for quad in &touched {
                let first = *selected
                    .iter()
                    .find(|n| reference.touched(**n).any(|q| q == *quad))
                    .unwrap();
                if reference.states[first - 1].contains(*quad) {
                    expected.insert((*quad).clone());
                } else {
                    expected.remove(*quad);
                }
            }
            let result = store.revert(
                &reference.ids[target - 1],
                CommitMeta::new("w", ""),
                with_dependents,
            );
            match result {
                Err(CanonError::RevertBlocked { dependents, .. }) => {
                    assert!(
                        selected.len() > 1 && !with_dependents,
                        "step {step}: {dependents}"
                    );
                    blocked += 1;
                }
                Err(CanonError::NoChange) => {
                    assert_eq!(&expected, reference.head(), "step {step}");
                }
                Err(other) => panic!("step {step}: {other}"),
                Ok(commit) => {
                    assert!(selected.len() == 1 || with_dependents, "step {step}");
                    assert_eq!(commit.reverts.len(), selected.len());
                    let head = reference.head();
                    let added = expected.difference(head).cloned().collect();
                    let removed = head.difference(&expected).cloned().collect();
                    reference.push(commit.id, added, removed);
                    assert_eq!(reference.head(), &expected);
                    reverts += 1;
                    together += usize::from(selected.len() > 1);
                }
            }
        } else {
            // Canon as of a commit, and the diff between two.
            let a = rng.random_range(1..=commits);
            let b = rng.random_range(1..=commits);
            let past = store.as_of(&reference.ids[a - 1]).unwrap();
            assert_eq!(canon(&past), reference.states[a], "step {step}: as of #{a}");
            let diff = store
                .diff(Some(&reference.ids[a - 1]), &reference.ids[b - 1])
                .unwrap();
            let added: BTreeSet<String> = diff.added.iter().map(text).collect();
            let removed: BTreeSet<String> = diff.removed.iter().map(text).collect();
            let (from, to) = (&reference.states[a], &reference.states[b]);
            assert_eq!(added, to.difference(from).cloned().collect(), "step {step}");
            assert_eq!(
                removed,
                from.difference(to).cloned().collect(),
                "step {step}"
            );
        }
        assert_eq!(
            &canon(&store),
            reference.head(),
            "step {step}: canon differs from the model"
        );
        assert_eq!(
            store.revision().unwrap(),
            reference.ids.last().cloned().unwrap_or_default()
        );
    }
    let log = store.log().unwrap();
    assert_eq!(log.len(), reference.ids.len());
    assert!(log.iter().rev().map(|c| &c.id).eq(reference.ids.iter()));
    // Every path was taken, often.
    for (what, n) in [
        ("conflicts", conflicts),
        ("blocked reverts", blocked),
        ("reverts", reverts),
        ("reverts with dependents", together),
        ("stale edits that landed", stale_landed),
    ] {
        assert!(n >= 20, "only {n} {what} in {STEPS} steps");
    }
    eprintln!(
        "{} commits: {conflicts} conflicts refused, {stale_landed} stale edits landed, {reverts} reverts ({together} with dependents), {blocked} blocked",
        log.len()
    );
}

#[test]
fn errors_name_what_is_wrong() {
    let store = CanonStore::in_memory().unwrap();
    let quad = |o: &str| {
        Quad::new(
            NamedNode::new_unchecked("urn:odile"),
            NamedNode::new_unchecked("urn:persona"),
            Literal::new_simple_literal(o),
            NamedNode::new_unchecked("urn:lanterns"),
        )
    };
    let first = store
        .commit_change(
            &Base::Head,
            CommitMeta::new("w", "a"),
            Change::new([quad("warden")], []),
        )
        .unwrap();
    let err = store
        .commit_change(
            &Base::Head,
            CommitMeta::new("w", "b"),
            Change::new([], [quad("baker")]),
        )
        .unwrap_err();
    assert!(matches!(err, CanonError::NotHeld { .. }), "{err}");
    assert!(err.to_string().contains("\"baker\""), "{err}");
    let err = store
        .commit_change(
            &Base::Head,
            CommitMeta::new("w", "c"),
            Change::new([quad("warden")], []),
        )
        .unwrap_err();
    assert!(matches!(err, CanonError::NoChange), "{err}");
    let system = Quad::new(
        NamedNode::new_unchecked("urn:x"),
        NamedNode::new_unchecked("urn:y"),
        Literal::new_simple_literal("z"),
        NamedNode::new_unchecked("https://lorekeeper.dev/ns/lore#history"),
    );
    let err = store
        .commit_change(
            &Base::Head,
            CommitMeta::new("w", "d"),
            Change::new([system], []),
        )
        .unwrap_err();
    assert!(err.to_string().contains("lore#history"), "{err}");
    for (rev, says) in [
        ("zz", "at least 4 hex digits"),
        ("0000", "lore log"),
        ("head~5", "canon has 1 commits"),
    ] {
        let err = store.commit(rev).unwrap_err();
        assert!(err.to_string().contains(says), "{rev}: {err}");
    }
    assert_eq!(store.commit("HEAD").unwrap().id, first.id);
    // A stale edit of the same persona names the triple both touch.
    store
        .commit_change(
            &Base::Commit(first.id.clone()),
            CommitMeta::new("w", "e"),
            Change::new([quad("lamplighter")], [quad("warden")]),
        )
        .unwrap();
    let err = store
        .commit_change(
            &Base::Commit(first.id[..8].to_owned()),
            CommitMeta::new("w2", "f"),
            Change::new([quad("archivist")], [quad("warden")]),
        )
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("conflict") && message.contains("\"warden\""),
        "{message}"
    );
    let err = store
        .revert(&first.id, CommitMeta::new("w", ""), false)
        .unwrap_err();
    assert!(err.to_string().contains("--with-dependents"), "{err}");
}
