//! The moral knowledge graph as a production sees it: hazards, content descriptors, topics,
//! ratings and off-limit rules, read with the rest of its world.
//!
//! Policy is data. Studio-wide nodes live in the graph `lore:policy`; a production's own
//! graphs can add topics and override nodes like any other canon. What fires for which text
//! is the guard's business; this module only says what the policy is.

use std::collections::{HashSet, VecDeque};

/// What sort of policy node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PolicyKind {
    /// An MLCommons hazard category: off limits at every rating.
    Hazard,
    /// A rating's content descriptor.
    Descriptor,
    /// A subject of conversation.
    Topic,
    /// Talk that is never off limits: its examples teach the rails what off-limit talk is
    /// not (everyday lines, and ones that only sound like an off-limit topic).
    OrdinaryTalk,
}

/// What the rails do when a node fires, least to most severe.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum RailAction {
    /// The character steers away in its own voice.
    Deflect,
    /// The character declines plainly.
    Refuse,
    /// The session ends.
    EndSession,
}

/// A node of the policy graph.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyNode {
    /// Its IRI.
    pub iri: String,
    /// Its name.
    pub label: String,
    /// Hazard, descriptor, topic or ordinary talk.
    pub kind: PolicyKind,
    /// The MLCommons code of a hazard (`S1`..`S14`).
    pub code: Option<String>,
    /// IRIs of its broader nodes: a rule on one of them covers this node.
    pub broader: Vec<String>,
    /// Words and phrases that name it.
    pub terms: Vec<String>,
    /// Sentences that fall under it.
    pub examples: Vec<String>,
    /// How similar a text must be to an example to fire it (the rails' default when `None`;
    /// NaN when the graph's value is not a number, which `lore check` reports).
    pub threshold: Option<f32>,
    /// The lowest rating (IRI) at which it may be discussed.
    pub minimum_rating: Option<String>,
    /// What the rails do when it fires, when the policy says.
    pub action: Option<RailAction>,
}

/// An audience rating.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rating {
    /// Its IRI.
    pub iri: String,
    /// Its name.
    pub label: String,
    /// The youngest audience it admits.
    pub minimum_age: i64,
}

/// One production's policy.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// Every node, sorted by IRI.
    pub nodes: Vec<PolicyNode>,
    /// Every rating the policy knows, youngest audience first.
    pub ratings: Vec<Rating>,
    /// Nodes the production puts off limits at any rating.
    pub production_off_limits: Vec<String>,
    /// Nodes each character (IRI) puts off limits.
    pub character_off_limits: Vec<(String, Vec<String>)>,
    /// Nodes the studio puts off limits in every production (`lore:policy lore:offLimits`).
    pub studio_off_limits: Vec<String>,
}

impl Policy {
    /// The node with this IRI.
    pub fn node(&self, iri: &str) -> Option<&PolicyNode> {
        self.nodes
            .binary_search_by(|n| n.iri.as_str().cmp(iri))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// The rating with this IRI.
    pub fn rating(&self, iri: &str) -> Option<&Rating> {
        self.ratings.iter().find(|r| r.iri == iri)
    }

    /// `iri` and every node broader than it, nearest first, each once (cycles, which
    /// `lore check` reports, end the walk rather than loop).
    pub fn lineage<'a>(&'a self, iri: &'a str) -> Vec<&'a str> {
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        let mut queue = VecDeque::from([iri]);
        while let Some(next) = queue.pop_front() {
            if !seen.insert(next) {
                continue;
            }
            order.push(next);
            if let Some(node) = self.node(next) {
                queue.extend(node.broader.iter().map(String::as_str));
            }
        }
        order
    }

    /// The nodes that `character` (IRI) puts off limits.
    pub fn off_limits_for(&self, character: &str) -> &[String] {
        self.character_off_limits
            .iter()
            .find(|(c, _)| c == character)
            .map_or(&[], |(_, nodes)| nodes.as_slice())
    }

    /// Nodes whose `broader` chain comes back to themselves, as the chain.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let mut cycles = Vec::new();
        let mut reported: HashSet<&str> = HashSet::new();
        for node in &self.nodes {
            if reported.contains(node.iri.as_str()) {
                continue;
            }
            // Depth-first from the node along broader links, looking for the node itself.
            let mut stack: Vec<(&str, Vec<&str>)> = vec![(node.iri.as_str(), vec![])];
            let mut visited: HashSet<&str> = HashSet::new();
            while let Some((at, path)) = stack.pop() {
                let Some(current) = self.node(at) else {
                    continue;
                };
                for up in &current.broader {
                    let mut next_path = path.clone();
                    next_path.push(at);
                    if up == &node.iri {
                        reported.extend(next_path.iter().copied());
                        let mut chain: Vec<String> =
                            next_path.iter().map(|s| (*s).to_owned()).collect();
                        chain.push(node.iri.clone());
                        cycles.push(chain);
                        stack.clear();
                        break;
                    }
                    if visited.insert(up.as_str()) {
                        stack.push((up.as_str(), next_path));
                    }
                }
            }
        }
        cycles
    }
}
