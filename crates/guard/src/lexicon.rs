//! The lexicon layer: policy terms found in any view of a text.
//!
//! Terms are folded like the text ([`crate::normalize::fold`]) and matched all at once with
//! Aho-Corasick, so a check costs one pass per view whatever the number of terms. A word with
//! letters hidden behind masks (`f***ing`, `sh#t`) is compared with the one-word terms of its
//! length, letter by letter.

use aho_corasick::{AhoCorasick, MatchKind};

use crate::normalize::{View, ViewKind, fold};

/// Endings a whole-word term may take and still match (`bomb` in `bombs`, `kill` in
/// `killing`).
const INFLECTIONS: &[&str] = &["", "s", "es", "ed", "d", "ing", "er", "ers"];

/// Characters that stand for a hidden letter (`f***`, `sh#t`, `b_tch`, `f--k`).
const MASKS: &[u8] = b"*#_-";

/// Shortest one-word term a masked word is compared with: shorter ones leave too few letters
/// to tell which word was meant.
const MIN_MASKED_TERM: usize = 3;

/// A term of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term<N> {
    /// The words, as written in the policy.
    pub text: String,
    /// What fires when it is found (a policy node).
    pub node: N,
}

/// A term found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<N> {
    /// The node it belongs to.
    pub node: N,
    /// The term, as written in the policy.
    pub term: String,
    /// The reading of the text it was found in.
    pub view: ViewKind,
}

/// What can be wrong with a lexicon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LexiconError {
    /// A term folds to nothing (only spaces, marks or invisible characters).
    #[error("term {0:?} is empty once folded")]
    EmptyTerm(String),
    /// The automaton could not be built.
    #[error("building the lexicon: {0}")]
    Build(#[from] aho_corasick::BuildError),
}

/// Every term of a policy, ready to match.
#[derive(Debug, Clone)]
pub struct Lexicon<N> {
    /// The folded terms, for views with word boundaries.
    matcher: AhoCorasick,
    /// The folded terms with their spaces taken out, for joined letter runs.
    joined: AhoCorasick,
    /// The one-word terms of plain letters, folded, with their index in `terms`, for masked
    /// words.
    words: Vec<(String, usize)>,
    terms: Vec<Term<N>>,
}

impl<N: Clone + PartialEq> Lexicon<N> {
    /// Builds the matcher over `terms`.
    pub fn new(terms: Vec<Term<N>>) -> Result<Lexicon<N>, LexiconError> {
        let mut patterns = Vec::with_capacity(terms.len());
        for term in &terms {
            let folded = fold(&term.text);
            if folded.is_empty() {
                return Err(LexiconError::EmptyTerm(term.text.clone()));
            }
            patterns.push(folded);
        }
        let joined: Vec<String> = patterns.iter().map(|p| p.replace(' ', "")).collect();
        let build = |patterns: &[String]| {
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(patterns)
        };
        let words = patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.len() >= MIN_MASKED_TERM && p.bytes().all(|b| b.is_ascii_lowercase())
            })
            .map(|(index, p)| (p.clone(), index))
            .collect();
        Ok(Lexicon {
            matcher: build(&patterns)?,
            joined: build(&joined)?,
            words,
            terms,
        })
    }

    /// The terms found in `views`, each node once per term (the first view it is found in).
    pub fn find(&self, views: &[View]) -> Vec<Hit<N>> {
        let mut hits: Vec<Hit<N>> = Vec::new();
        for view in views {
            let text = view.text.as_bytes();
            let matcher = if view.whole_words {
                &self.matcher
            } else {
                &self.joined
            };
            for m in matcher.find_overlapping_iter(text) {
                if view.whole_words && !whole_word(text, m.start(), m.end()) {
                    continue;
                }
                self.hit(m.pattern().as_usize(), view.kind, &mut hits);
            }
            if view.whole_words {
                for word in view.text.split(' ').filter_map(masked_word) {
                    for (term, index) in &self.words {
                        if unmasks_to(word, term.as_bytes()) {
                            self.hit(*index, view.kind, &mut hits);
                        }
                    }
                }
            }
        }
        hits
    }

    /// Records the term at `index`, found in a view of `kind`, unless its node was already
    /// found by that term.
    fn hit(&self, index: usize, kind: ViewKind, hits: &mut Vec<Hit<N>>) {
        let term = &self.terms[index];
        if !hits
            .iter()
            .any(|h| h.node == term.node && h.term == term.text)
        {
            hits.push(Hit {
                node: term.node.clone(),
                term: term.text.clone(),
                view: kind,
            });
        }
    }
}

/// `word` without the punctuation around it, if it is a masked word: a letter first, then
/// letters and at least one mask.
fn masked_word(word: &str) -> Option<&[u8]> {
    let word = word
        .trim_start_matches(|c: char| !c.is_ascii_alphabetic())
        .trim_end_matches(|c: char| !(c.is_ascii_alphabetic() || is_mask(c)));
    let bytes = word.as_bytes();
    let is_masked = bytes.iter().any(|b| MASKS.contains(b))
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphabetic() || MASKS.contains(b));
    is_masked.then_some(bytes)
}

/// Whether `c` is one of the [`MASKS`].
fn is_mask(c: char) -> bool {
    u8::try_from(c).is_ok_and(|b| MASKS.contains(&b))
}

/// Whether the masked `word` is `term`, or `term` with one of its [`INFLECTIONS`]: every
/// visible letter of the term's part in place and the ending written out.
fn unmasks_to(word: &[u8], term: &[u8]) -> bool {
    let Some((stem, ending)) = word.split_at_checked(term.len()) else {
        return false;
    };
    INFLECTIONS.iter().any(|e| ending == e.as_bytes())
        && stem
            .iter()
            .zip(term)
            .all(|(w, t)| w == t || MASKS.contains(w))
}

/// Whether `text[start..end]` stands as a word, allowing an inflectional ending.
fn whole_word(text: &[u8], start: usize, end: usize) -> bool {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
    if start > 0 && is_word(text[start - 1]) {
        return false;
    }
    let rest = &text[end..];
    let word_end = rest.iter().position(|&b| !is_word(b)).unwrap_or(rest.len());
    INFLECTIONS
        .iter()
        .any(|ending| &rest[..word_end] == ending.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test should fail loudly")]

    use super::*;
    use crate::normalize::views;

    fn lexicon() -> Lexicon<&'static str> {
        let terms = [
            ("bomb", "weapons"),
            ("pipe bomb", "weapons"),
            ("kill", "violence"),
            ("whisky", "alcohol"),
            ("Ærondel", "brand"),
        ];
        Lexicon::new(
            terms
                .into_iter()
                .map(|(text, node)| Term {
                    text: text.into(),
                    node,
                })
                .collect(),
        )
        .unwrap()
    }

    fn nodes(text: &str) -> Vec<(&'static str, String, ViewKind)> {
        lexicon()
            .find(&views(text))
            .into_iter()
            .map(|h| (h.node, h.term, h.view))
            .collect()
    }

    #[test]
    fn whole_words_with_their_endings_match_and_nothing_inside_words() {
        assert_eq!(
            nodes("He was killing time"),
            [("violence", "kill".into(), ViewKind::Folded)]
        );
        assert!(nodes("a skilled kilnmaker").is_empty());
        assert!(nodes("bombastic talk").is_empty());
        let found = nodes("two pipe bombs");
        assert!(found.iter().any(|(_, t, _)| t == "pipe bomb"), "{found:?}");
        assert!(found.iter().any(|(_, t, _)| t == "bomb"), "{found:?}");
    }

    #[test]
    fn each_evasion_is_caught() {
        for (text, view) in [
            ("a glass of whіsky", ViewKind::Folded), // Cyrillic і
            ("a glass of wh\u{200B}isky", ViewKind::Folded),
            ("a glass of wh1sky", ViewKind::Leet),
            ("a glass of w h i s k y", ViewKind::Spaced),
            ("n tynff bs juvfxl", ViewKind::Rot13),
            ("YSBnbGFzcyBvZiB3aGlza3k=", ViewKind::Base64),
        ] {
            assert_eq!(
                nodes(text),
                [("alcohol", "whisky".into(), view)],
                "{text:?}"
            );
        }
    }

    #[test]
    fn masked_letters_are_read_against_terms_of_the_same_length() {
        for text in [
            "a w***ky sour",
            "w#isky!",
            "\"wh_sky\"",
            "more wh--ky",
            "k*lling time",
            "two b*mbs",
        ] {
            assert_eq!(nodes(text).len(), 1, "{text:?}: {:?}", nodes(text));
        }
        // Letters that differ, a length no term has, masks alone, a mask first, or a term too
        // short to guess: nothing.
        for text in [
            "w***kx",
            "wh*sk",
            "w*******y",
            "*** ***",
            "*ill",
            "k*",
            "5 * 3",
            "co-op",
            "well-known",
        ] {
            assert!(nodes(text).is_empty(), "{text:?}: {:?}", nodes(text));
        }
    }

    #[test]
    fn terms_are_folded_like_the_text() {
        assert_eq!(nodes("the AERONDEL logo")[0].0, "brand");
        assert_eq!(nodes("the ærondel logo")[0].0, "brand");
    }

    #[test]
    fn an_empty_term_is_an_error() {
        let err = Lexicon::new(vec![Term {
            text: "\u{200B} ".into(),
            node: 0,
        }])
        .unwrap_err();
        assert!(err.to_string().contains("empty once folded"), "{err}");
    }
}
