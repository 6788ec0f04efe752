//! Topic classifiers: for each off-limit topic of a policy, a logistic [`Head`] over sentence
//! embeddings, trained on the policy itself.
//!
//! A topic's examples and terms (and those of its narrower topics) are its positives; the
//! examples and terms of every node unrelated to it (other topics, the hazards, ordinary talk)
//! are its negatives. Nearest-example similarity fires on lines that resemble one example as a
//! whole, setting and all; a head trained against the rest of the policy learns which
//! direction in the embedding space the topic is, so it also reads lines unlike any example.
//! Training uses only the policy's own text, never an evaluation set.

use std::collections::HashMap;
use std::sync::Arc;

use lore_canon::cache::{FNV_START, fnv};
use lore_canon::policy::{Policy, PolicyKind, PolicyNode};

use crate::encoder::EncoderError;
use crate::head::{Example, Fit, Head};

/// How a topic head is fitted: a lighter L2 penalty than a hazard head's, chosen on the
/// development topics set with the heads of the shipped encoder firing at p >= 0.7 (1e-4 and
/// 1e-3 blocked 0.7 and 1.0 points fewer than 3e-4 there, at about the same false alarms).
const TOPIC_FIT: Fit = Fit {
    epochs: 400,
    learning_rate: 0.05,
    l2: 3e-4,
};

/// The trained heads of one policy, by topic IRI.
pub type TopicHeads = HashMap<String, Head>;

/// The embeddings of every node's texts (its examples, then its terms), by node IRI: what the
/// heads are trained on, and what the rails compare a text with.
pub type PolicyTexts = HashMap<String, Vec<Arc<[f32]>>>;

/// The embeddings of the node `iri`'s texts (none for a node `texts` does not hold).
pub(crate) fn node_texts<'a>(texts: &'a PolicyTexts, iri: &str) -> &'a [Arc<[f32]>] {
    texts.get(iri).map_or(&[][..], Vec::as_slice)
}

/// Embeds the texts of every node of `policy` with `embed`.
pub(crate) fn embed_texts(
    policy: &Policy,
    embed: impl Fn(&str) -> Result<Arc<[f32]>, EncoderError>,
) -> Result<PolicyTexts, EncoderError> {
    policy
        .nodes
        .iter()
        .map(|node| {
            let vectors = node.examples.iter().chain(&node.terms).map(|t| embed(t));
            Ok((node.iri.clone(), vectors.collect::<Result<_, _>>()?))
        })
        .collect()
}

/// Each node's lineage ([`Policy::lineage`]: itself, then what is broader), by IRI.
pub(crate) fn lineages(policy: &Policy) -> HashMap<&str, Vec<&str>> {
    policy
        .nodes
        .iter()
        .map(|n| (n.iri.as_str(), policy.lineage(&n.iri)))
        .collect()
}

/// What a policy's heads are trained from, hashed: two policies with the same fingerprint
/// train the same heads. Stable across builds, since heads are kept on disk under it.
pub(crate) fn fingerprint(policy: &Policy) -> u64 {
    // Every text is prefixed with its length and every list with its count, so that no two
    // policies hash the same bytes.
    let field =
        |hash: u64, bytes: &[u8]| fnv(fnv(hash, &(bytes.len() as u64).to_le_bytes()), bytes);
    policy.nodes.iter().fold(FNV_START, |hash, node| {
        let hash = field(field(hash, node.iri.as_bytes()), &[node.kind as u8]);
        [&node.broader, &node.terms, &node.examples]
            .into_iter()
            .fold(hash, |hash, texts| {
                texts.iter().fold(
                    fnv(hash, &(texts.len() as u64).to_le_bytes()),
                    |hash, text| field(hash, text.as_bytes()),
                )
            })
    })
}

/// What this build's [`train`] makes of a fixed toy policy, hashed: heads kept on disk by a
/// build that trains differently (other settings, arithmetic or choice of negatives) are not
/// taken for this one's.
pub(crate) fn trainer_fingerprint() -> u64 {
    let policy = Policy {
        nodes: vec![
            bare_node("a", PolicyKind::Topic, &[], &["x", "y"]),
            bare_node("b", PolicyKind::Topic, &["a"], &["y"]),
            bare_node("c", PolicyKind::Topic, &[], &["z"]),
            bare_node("d", PolicyKind::OrdinaryTalk, &[], &["w"]),
        ],
        ..Policy::default()
    };
    // As wide as MiniLM's embeddings, so that the products take the same vector paths.
    let embed = |text: &str| -> Result<Arc<[f32]>, EncoderError> {
        let seed = text.bytes().map(f32::from).sum::<f32>();
        Ok((0..384)
            .map(|i| (seed * 0.37 + i as f32 * 0.11).sin() / 20.0)
            .collect())
    };
    let Ok(texts) = embed_texts(&policy, embed) else {
        return 0;
    };
    let heads = train(&policy, &texts);
    let mut sorted: Vec<_> = heads.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted.iter().fold(FNV_START, |hash, (iri, head)| {
        head.weights
            .iter()
            .chain([&head.bias])
            .fold(fnv(hash, iri.as_bytes()), |hash, value| {
                fnv(hash, &value.to_le_bytes())
            })
    })
}

/// A node with no more than training reads, for toy policies.
fn bare_node(iri: &str, kind: PolicyKind, broader: &[&str], examples: &[&str]) -> PolicyNode {
    PolicyNode {
        iri: iri.into(),
        label: iri.into(),
        kind,
        code: None,
        broader: broader.iter().map(|b| (*b).into()).collect(),
        terms: Vec::new(),
        examples: examples.iter().map(|e| (*e).into()).collect(),
        threshold: None,
        minimum_rating: None,
        action: None,
    }
}

/// Trains a head for every topic of `policy` that has examples or terms, from the embeddings
/// of its texts.
pub(crate) fn train(policy: &Policy, texts: &PolicyTexts) -> TopicHeads {
    // In the policy's order, so that the fit sums in the same order on every run.
    let embedded: Vec<(&str, &Arc<[f32]>)> = policy
        .nodes
        .iter()
        .flat_map(|n| {
            node_texts(texts, &n.iri)
                .iter()
                .map(|v| (n.iri.as_str(), v))
        })
        .collect();
    // Each node's lineage once, not once per text and topic.
    let lineages = lineages(policy);
    let topics: Vec<&PolicyNode> = policy
        .nodes
        .iter()
        .filter(|n| n.kind == PolicyKind::Topic)
        .collect();
    // Each head is fitted on its own; the topics are shared out among the cores.
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = topics.len().div_ceil(threads).max(1);
    let fit_one = |topic: &PolicyNode| -> Option<(String, Head)> {
        // Positive: the topic and what is narrower; left out: what is broader (a descriptor
        // covers its topics); negative: the rest.
        let narrower = |iri: &str| lineages[iri].contains(&topic.iri.as_str());
        let broader = |iri: &str| lineages[topic.iri.as_str()].contains(&iri);
        let mut examples = Vec::new();
        for (iri, vector) in &embedded {
            let is_positive = narrower(iri);
            if !is_positive && broader(iri) {
                continue;
            }
            examples.push(Example {
                features: vector,
                is_positive,
                weight: 1.0,
            });
        }
        examples
            .iter()
            .any(|e| e.is_positive)
            .then(|| (topic.iri.clone(), Head::fit(&examples, TOPIC_FIT)))
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = topics
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(|| chunk.iter().filter_map(|t| fit_one(t)).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::bare_node as node;

    /// Drinks lie along the first axis, small talk along the second, weather along the third.
    fn embed(text: &str) -> Result<Arc<[f32]>, EncoderError> {
        let v: [f32; 3] = match text {
            "ale" | "beer" | "cider" => [1.0, 0.1, 0.0],
            "sip" | "gulp" => [0.9, 0.0, 0.2],
            "hello" | "morning" | "thanks" => [0.0, 1.0, 0.1],
            "rain" | "fog" => [0.1, 0.0, 1.0],
            _ => [0.0, 0.0, 0.0],
        };
        Ok(Arc::from(&v[..]))
    }

    fn policy() -> Policy {
        Policy {
            nodes: vec![
                node(
                    "urn:a:drink",
                    PolicyKind::Topic,
                    &["urn:d:d"],
                    &["ale", "beer", "cider"],
                ),
                node(
                    "urn:a:sip",
                    PolicyKind::Topic,
                    &["urn:a:drink"],
                    &["sip", "gulp"],
                ),
                node("urn:a:weather", PolicyKind::Topic, &[], &["rain", "fog"]),
                node(
                    "urn:b:chat",
                    PolicyKind::OrdinaryTalk,
                    &[],
                    &["hello", "morning", "thanks"],
                ),
                node("urn:d:d", PolicyKind::Descriptor, &[], &[]),
            ],
            ..Policy::default()
        }
    }

    #[test]
    fn each_topic_with_examples_gets_a_head_that_reads_its_direction() {
        let heads = train(&policy(), &embed_texts(&policy(), embed).unwrap());
        let mut topics: Vec<&str> = heads.keys().map(String::as_str).collect();
        topics.sort();
        assert_eq!(topics, ["urn:a:drink", "urn:a:sip", "urn:a:weather"]);
        let drink = &heads["urn:a:drink"];
        assert!(drink.score(&[1.0, 0.0, 0.0]) > 0.5);
        assert!(
            drink.score(&[0.0, 1.0, 0.0]) < 0.5,
            "small talk is a negative"
        );
        assert!(
            drink.score(&[0.0, 0.0, 1.0]) < 0.5,
            "another topic is a negative"
        );
    }

    #[test]
    fn narrower_topics_teach_the_broader_one_and_not_the_reverse() {
        let heads = train(&policy(), &embed_texts(&policy(), embed).unwrap());
        // A sip is a drink: the drink head learnt it as a positive.
        assert!(heads["urn:a:drink"].score(&[0.9, 0.0, 0.2]) > 0.5);
        // Not every drink is a sip, but ale is no counter-example either: the sip head was
        // not taught that the drink direction is negative.
        assert!(heads["urn:a:sip"].score(&[1.0, 0.1, 0.0]) > 0.5);
    }

    #[test]
    fn the_trainer_fingerprint_is_the_same_on_every_call() {
        assert_eq!(trainer_fingerprint(), trainer_fingerprint());
        assert_ne!(trainer_fingerprint(), 0);
    }

    #[test]
    fn the_fingerprint_follows_what_heads_are_trained_from() {
        let a = policy();
        let mut b = policy();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.nodes[2].examples.push("hail".into());
        assert_ne!(fingerprint(&a), fingerprint(&b));
        let mut c = policy();
        c.nodes[1].broader.clear();
        assert_ne!(fingerprint(&a), fingerprint(&c));
        // A text moved from one list to the next is another policy.
        let mut d = policy();
        let example = d.nodes[2].examples.pop().unwrap();
        d.nodes[2].terms.push(example);
        assert_ne!(fingerprint(&a), fingerprint(&d));
    }
}
