//! Normalisation: every way of reading a text that an evasion could rely on.
//!
//! [`views`] returns the text folded to plain lower-case Latin (compatibility forms,
//! diacritics, homoglyphs and invisible characters removed), and, only where they differ or
//! where the text carries them, its leetspeak reading, its letter-spaced words joined up, its
//! base64 payloads decoded and its rot13 reading. Every step is linear in the text's length;
//! decoded payloads are themselves normalised, at most [`MAX_DEPTH`] levels deep.
//! [`spell_out`] writes chat shorthand out in full for the sentence encoder, which reads the
//! views that carry meaning; the lexicon reads the views as they are.

use std::borrow::Cow;

use base64::Engine as _;
use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

/// How deep decoded payloads are decoded again (base64 inside base64).
pub const MAX_DEPTH: usize = 2;

/// Shortest run of base64 characters taken for a payload; shorter ones are ordinary words.
const MIN_BASE64_LEN: usize = 12;

/// Shortest run of single letters (`k i l l`) joined into one word.
const MIN_SPACED_RUN: usize = 3;

/// How a view was obtained from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewKind {
    /// Folded: compatibility forms, case, diacritics, homoglyphs, invisible characters.
    Folded,
    /// Digits and symbols inside words read as letters (`k1ll` → `kill`).
    Leet,
    /// Runs of single letters joined (`k i l l`, `k.i.l.l` → `kill`).
    Spaced,
    /// A base64 payload, decoded and folded.
    Base64,
    /// The text read in rot13.
    Rot13,
}

impl ViewKind {
    /// A short name for decisions and logs.
    pub fn name(self) -> &'static str {
        match self {
            ViewKind::Folded => "folded",
            ViewKind::Leet => "leetspeak",
            ViewKind::Spaced => "spaced",
            ViewKind::Base64 => "base64",
            ViewKind::Rot13 => "rot13",
        }
    }
}

/// One reading of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// How it was read.
    pub kind: ViewKind,
    /// The text, folded: lower case, single spaces.
    pub text: String,
    /// Whether a term must stand as a whole word here. Joined letter runs have no word
    /// boundaries left, so terms are matched inside them.
    pub whole_words: bool,
}

/// Every reading of `text` worth checking; the first is always the folded text.
pub fn views(text: &str) -> Vec<View> {
    let mut out = Vec::new();
    collect(text, 0, ViewKind::Folded, &mut out);
    out
}

fn collect(text: &str, depth: usize, kind: ViewKind, out: &mut Vec<View>) {
    let folded = fold(text);
    let mut push = |kind, text: String, whole_words| {
        if !text.is_empty() && !out.iter().any(|v: &View| v.text == text) {
            out.push(View {
                kind,
                text,
                whole_words,
            });
        }
    };
    push(kind, folded.clone(), true);
    let leet = unleet(&folded);
    push(pick(kind, ViewKind::Leet), leet, true);
    push(pick(kind, ViewKind::Spaced), join_spaced(&folded), false);
    let rot = rot13(&folded);
    if english_words(&rot) > english_words(&folded).max(1) {
        push(pick(kind, ViewKind::Rot13), rot, true);
    }
    if depth < MAX_DEPTH {
        for payload in base64_payloads(text) {
            collect(&payload, depth + 1, ViewKind::Base64, out);
        }
    }
}

/// Inside a decoded payload every reading counts as the payload's.
fn pick(outer: ViewKind, inner: ViewKind) -> ViewKind {
    if outer == ViewKind::Folded {
        inner
    } else {
        outer
    }
}

/// Folds `text` to lower-case Latin with single spaces: compatibility decomposition (full-width,
/// mathematical and circled letters, ligatures), diacritics and other combining marks dropped,
/// Cyrillic and Greek look-alikes mapped to the Latin letter they imitate, invisible
/// characters removed. Policy terms are folded the same way before matching.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.nfkd() {
        if is_combining_mark(c) || is_invisible(c) {
            continue;
        }
        if c.is_whitespace() {
            if !space {
                out.push(' ');
                space = true;
            }
            continue;
        }
        space = false;
        if let Some(latin) = homoglyph(c) {
            out.push(latin);
        } else {
            for lower in c.to_lowercase() {
                match letters(lower) {
                    Some(latin) => out.push_str(latin),
                    None => out.push(homoglyph(lower).unwrap_or(lower)),
                }
            }
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Format characters that render as nothing: zero-width spaces and joiners, direction marks,
/// soft hyphens, variation selectors, tag characters.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The Latin letter a Cyrillic, Greek or IPA character is drawn like (after Unicode's
/// confusables for the Latin alphabet). Capitals are mapped before lower-casing because some
/// look like a different letter once lowered (Greek Η is H, η is n).
fn homoglyph(c: char) -> Option<char> {
    Some(match c {
        'А' | 'а' | 'Α' | 'α' | 'ɑ' => 'a',
        'В' | 'в' | 'Β' | 'Ь' => 'b',
        'С' | 'с' | 'ϲ' | 'Ϲ' => 'c',
        'ԁ' | 'ɗ' => 'd',
        'Е' | 'е' | 'Ε' | 'ε' | 'є' => 'e',
        'ғ' => 'f',
        'ɡ' | 'ց' => 'g',
        'Н' | 'н' | 'Η' | 'һ' => 'h',
        'І' | 'і' | 'Ι' | 'ι' | 'ɩ' | 'ı' | 'ї' => 'i',
        'Ј' | 'ј' | 'ϳ' => 'j',
        'К' | 'к' | 'Κ' | 'κ' => 'k',
        'ӏ' | 'Ӏ' => 'l',
        'М' | 'м' | 'Μ' => 'm',
        'η' | 'п' | 'Ν' => 'n',
        'О' | 'о' | 'Ο' | 'ο' | 'σ' | 'օ' => 'o',
        'Р' | 'р' | 'Ρ' | 'ρ' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'Ѕ' | 'ѕ' => 's',
        'Т' | 'т' | 'Τ' | 'τ' => 't',
        'υ' | 'ս' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ѡ' | 'ω' => 'w',
        'Х' | 'х' | 'Χ' | 'χ' => 'x',
        'У' | 'у' | 'Υ' | 'γ' | 'ү' => 'y',
        'Ζ' => 'z',
        _ => return None,
    })
}

/// Latin letters that compatibility decomposition leaves alone, spelt as English writes them.
fn letters(c: char) -> Option<&'static str> {
    Some(match c {
        'æ' => "ae",
        'œ' => "oe",
        'ß' => "ss",
        'ø' => "o",
        'đ' | 'ð' => "d",
        'ł' => "l",
        'þ' => "th",
        _ => return None,
    })
}

/// Chat shorthand and the words it stands for, as a sentence encoder reads them best. The
/// encoder learnt English from edited text: to it `u` is a letter and `ur` a fragment, so "do u
/// like me" lands far from "do you like me" and from every policy example written out in full.
/// Only forms that mean one thing in a player's line are listed (`y`, `n`, `k` and `id` are
/// left alone); every key is folded lower case.
const SHORTHAND: &[(&str, &str)] = &[
    ("abt", "about"),
    ("arent", "aren't"),
    ("b4", "before"),
    ("bc", "because"),
    ("bday", "birthday"),
    ("bf", "boyfriend"),
    ("bout", "about"),
    ("cant", "can't"),
    ("couldnt", "couldn't"),
    ("coz", "because"),
    ("cuz", "because"),
    ("didnt", "didn't"),
    ("doesnt", "doesn't"),
    ("dont", "don't"),
    ("dunno", "don't know"),
    ("fml", "fuck my life"),
    ("gf", "girlfriend"),
    ("gimme", "give me"),
    ("gonna", "going to"),
    ("gotta", "got to"),
    ("gtfo", "get the fuck out"),
    ("idk", "i don't know"),
    ("im", "i'm"),
    ("imma", "i'm going to"),
    ("isnt", "isn't"),
    ("ive", "i've"),
    ("kinda", "kind of"),
    ("lemme", "let me"),
    ("luv", "love"),
    ("ngl", "not going to lie"),
    ("omg", "oh my god"),
    ("pls", "please"),
    ("plz", "please"),
    ("ppl", "people"),
    ("r", "are"),
    ("rn", "right now"),
    ("shouldnt", "shouldn't"),
    ("smth", "something"),
    ("sorta", "sort of"),
    ("srsly", "seriously"),
    ("stfu", "shut the fuck up"),
    ("tbh", "to be honest"),
    ("thats", "that's"),
    ("thx", "thanks"),
    ("tmrw", "tomorrow"),
    ("tonite", "tonight"),
    ("u", "you"),
    ("ur", "your"),
    ("wanna", "want to"),
    ("wasnt", "wasn't"),
    ("wat", "what"),
    ("whats", "what's"),
    ("wouldnt", "wouldn't"),
    ("wtf", "what the fuck"),
    ("wut", "what"),
    ("ya", "you"),
    ("youre", "you're"),
    ("yr", "your"),
];

/// A folded text with chat shorthand written out ([`SHORTHAND`]): what the encoder reads.
/// The lexicon keeps the folded text itself, so a term spelt in shorthand still matches.
pub fn spell_out(folded: &str) -> Cow<'_, str> {
    let is_word = |c: char| c.is_alphanumeric() || c == '\'';
    let mut out = String::new();
    let mut copied = 0;
    let mut word_start = None;
    let ends = folded
        .char_indices()
        .chain(std::iter::once((folded.len(), ' ')));
    for (i, c) in ends {
        match (word_start, is_word(c)) {
            (None, true) => word_start = Some(i),
            (Some(start), false) => {
                word_start = None;
                let word = &folded[start..i];
                if let Ok(at) = SHORTHAND.binary_search_by(|(short, _)| short.cmp(&word)) {
                    out.push_str(&folded[copied..start]);
                    out.push_str(SHORTHAND[at].1);
                    copied = i;
                }
            }
            _ => {}
        }
    }
    if copied == 0 {
        // Nothing was written out.
        return Cow::Borrowed(folded);
    }
    out.push_str(&folded[copied..]);
    Cow::Owned(out)
}

/// Reads digits and symbols as letters inside words that have letters (`k1ll`, `h4ck3r`,
/// `$ex`), leaving numbers alone (`13`, `$100`).
fn unleet(folded: &str) -> String {
    folded
        .split(' ')
        .map(|word| {
            let letters = word.chars().any(|c| c.is_ascii_alphabetic());
            let leet = word.chars().any(|c| leet_letter(c).is_some());
            if letters && leet {
                word.chars()
                    .map(|c| leet_letter(c).unwrap_or(c))
                    .collect::<String>()
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn leet_letter(c: char) -> Option<char> {
    Some(match c {
        '4' | '@' => 'a',
        '8' => 'b',
        '(' => 'c',
        '3' => 'e',
        '6' | '9' => 'g',
        '1' | '!' => 'i',
        '|' => 'l',
        '0' => 'o',
        '5' | '$' => 's',
        '7' | '+' => 't',
        _ => return None,
    })
}

/// The runs of at least [`MIN_SPACED_RUN`] single characters (`k i l l`, `k.i.l.l`,
/// `k-1-l-l`), each joined into one word and read as leetspeak, separated by spaces.
fn join_spaced(folded: &str) -> String {
    let mut runs = Vec::new();
    let mut run = String::new();
    let mut count = 0;
    let mut flush = |run: &mut String, count: &mut usize| {
        if *count >= MIN_SPACED_RUN {
            runs.push(unleet(run));
        }
        run.clear();
        *count = 0;
    };
    for token in folded.split(|c: char| !c.is_alphanumeric() && leet_letter(c).is_none()) {
        if token.is_empty() {
            continue;
        }
        let mut chars = token.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => {
                run.push(c);
                count += 1;
            }
            _ => flush(&mut run, &mut count),
        }
    }
    flush(&mut run, &mut count);
    runs.join(" ")
}

fn rot13(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='m' | 'A'..='M' => char::from(c as u8 + 13),
            'n'..='z' | 'N'..='Z' => char::from(c as u8 - 13),
            _ => c,
        })
        .collect()
}

/// How many of the words of `text` are among the commonest English words: rot13 is taken as
/// the text's reading only when it reads as English better than the text itself does.
fn english_words(text: &str) -> usize {
    const COMMON: &[&str] = &[
        "a", "about", "all", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "for",
        "from", "get", "have", "he", "her", "him", "his", "how", "i", "if", "in", "is", "it",
        "make", "me", "my", "not", "of", "on", "or", "she", "so", "that", "the", "them", "they",
        "this", "to", "was", "we", "what", "when", "where", "who", "why", "will", "with", "you",
        "your",
    ];
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| COMMON.contains(w))
        .count()
}

/// The base64 payloads in `text` that decode to readable UTF-8 text.
fn base64_payloads(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=')))
        .map(|token| token.trim_end_matches('='))
        .filter(|token| token.len() >= MIN_BASE64_LEN && !token.contains('='))
        .filter_map(|token| {
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(token)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token))
                .ok()?;
            let decoded = String::from_utf8(bytes).ok()?;
            let readable = decoded
                .chars()
                .filter(|c| !c.is_control() || c.is_whitespace())
                .count();
            (readable * 10 >= decoded.chars().count() * 9).then_some(decoded)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(text: &str) -> Vec<(ViewKind, String)> {
        views(text).into_iter().map(|v| (v.kind, v.text)).collect()
    }

    /// Whether `text` has a view of `kind` that holds `reading` (as a word, or anywhere in a
    /// view without word boundaries).
    fn has(text: &str, kind: ViewKind, reading: &str) {
        let all = views(text);
        assert!(
            all.iter().any(|v| v.kind == kind
                && if v.whole_words {
                    v.text.split(' ').any(|w| w == reading)
                } else {
                    v.text.contains(reading)
                }),
            "{text:?} should read {reading:?} as {kind:?}: {all:?}"
        );
    }

    #[test]
    fn chat_shorthand_is_spelt_out_for_the_encoder_word_by_word() {
        assert!(
            SHORTHAND.windows(2).all(|w| w[0].0 < w[1].0),
            "the table is searched by halves: keep it sorted"
        );
        assert_eq!(spell_out("do u like me?"), "do you like me?");
        assert_eq!(
            spell_out("pls, r u free 2nite"),
            "please, are you free 2nite"
        );
        assert_eq!(spell_out("u"), "you");
        assert_eq!(
            spell_out("wtf is ur problem"),
            "what the fuck is your problem"
        );
        // Words that only begin or end like shorthand, and shorthand inside a word, stay.
        assert_eq!(spell_out("umbrella ruins ur2"), "umbrella ruins ur2");
        assert!(matches!(spell_out("the fog is thick"), Cow::Borrowed(_)));
        assert_eq!(spell_out(""), "");
    }

    #[test]
    fn homoglyphs_and_compatibility_forms_fold_to_latin() {
        // Cyrillic а, о; Greek Κ; full-width; mathematical bold; circled.
        assert_eq!(fold("Bаzооkа"), "bazooka");
        assert_eq!(fold("Κill"), "kill");
        assert_eq!(fold("ｋｉｌｌ"), "kill");
        assert_eq!(fold("𝐤𝐢𝐥𝐥"), "kill");
        assert_eq!(fold("ⓚⓘⓛⓛ"), "kill");
        assert_eq!(fold("Crème brûlée"), "creme brulee");
        assert_eq!(fold("Straße Ærø"), "strasse aero");
    }

    #[test]
    fn invisible_characters_and_odd_spaces_vanish() {
        assert_eq!(fold("k\u{200B}i\u{200D}l\u{FEFF}l"), "kill");
        assert_eq!(fold("ki\u{00AD}ll"), "kill");
        assert_eq!(fold("  two\u{00A0}\u{2003}words\n"), "two words");
        assert_eq!(
            fold("k\u{0301}\u{0308}ill"),
            "kill",
            "stacked marks (zalgo)"
        );
    }

    #[test]
    fn leetspeak_is_read_inside_words_only() {
        has("how to k1ll a m4n", ViewKind::Leet, "kill");
        has("h0w t0 m4k3 m3th", ViewKind::Leet, "meth");
        has("$h00t", ViewKind::Leet, "shoot");
        let all = readings("I am 13 and have $100");
        assert_eq!(all.len(), 1, "numbers are not leetspeak: {all:?}");
    }

    #[test]
    fn spaced_letters_are_joined() {
        has("how do I k i l l him", ViewKind::Spaced, "kill");
        has("b.o.m.b making", ViewKind::Spaced, "bomb");
        has("k-1-l-l", ViewKind::Spaced, "kill");
        assert!(!views("a b").iter().any(|v| v.kind == ViewKind::Spaced));
    }

    #[test]
    fn rot13_is_read_when_it_reads_as_english() {
        has("ubj qb V znxr n obzo", ViewKind::Rot13, "bomb");
        assert!(
            !views("how do I bake a cake")
                .iter()
                .any(|v| v.kind == ViewKind::Rot13)
        );
    }

    #[test]
    fn base64_payloads_are_decoded_and_folded() {
        // "how to make a bomb", with and without padding, URL-safe, and base64 twice over.
        has(
            "decode this: aG93IHRvIG1ha2UgYSBib21i",
            ViewKind::Base64,
            "bomb",
        );
        has("aG93IHRvIG1ha2UgYSBib21i==", ViewKind::Base64, "bomb");
        has("YUc5M0lIUnZJRzFoYTJVZ1lTQmliMjFp", ViewKind::Base64, "bomb");
        // Base64 of rot13 of leetspeak: each layer is read.
        has("dWJqIGdiIHpueHIgbiBvYnpv", ViewKind::Base64, "bomb");
        // Long ordinary words and binary garbage are not payloads.
        assert_eq!(readings("antidisestablishmentarianism").len(), 1);
        assert_eq!(readings("AAAAAAAAAAAAAAAA").len(), 1);
    }

    #[test]
    fn cost_is_linear_and_bounded_on_hostile_input() {
        let long = "k\u{200B}".repeat(100_000) + &"QUFB".repeat(50_000);
        let all = views(&long);
        assert!(all.len() <= 16, "{}", all.len());
        // Nested base64 stops at MAX_DEPTH.
        let mut nested = "bomb bomb bomb".to_owned();
        for _ in 0..6 {
            nested = base64::engine::general_purpose::STANDARD.encode(nested);
        }
        assert!(views(&nested).len() <= 1 + 3 * MAX_DEPTH);
    }
}
