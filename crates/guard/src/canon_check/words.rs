//! The words the canon check reads sentences by: tokens, stems and capitalised names, the
//! word lists of family ties, places and the living, and the real-world places it knows.

use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};

/// The real-world places of `data/real-world-places.txt`, longest first where names overlap
/// ("New York" before "York").
pub(super) static REAL_WORLD_PLACES: LazyLock<Option<(AhoCorasick, Vec<&'static str>)>> =
    LazyLock::new(|| {
        let names: Vec<&'static str> = include_str!("../../data/real-world-places.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        // A fixed list of short names: building cannot fail (a test checks it does not).
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&names)
            .ok()?;
        Some((automaton, names))
    });

/// The real-world places `text` names, as whole, case-sensitive words, with their byte ranges.
pub(super) fn real_world_places(text: &str) -> Vec<(Range<usize>, &'static str)> {
    let Some((automaton, names)) = REAL_WORLD_PLACES.as_ref() else {
        return Vec::new();
    };
    automaton
        .find_iter(text)
        .filter(|m| stands_alone(text, m.range()))
        .map(|m| (m.range(), names[m.pattern().as_usize()]))
        .collect()
}

/// A word of a sentence.
#[derive(Debug)]
pub(super) struct Token<'a> {
    pub(super) range: Range<usize>,
    pub(super) text: &'a str,
    pub(super) lower: String,
}

pub(super) fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        let inside = c.is_alphanumeric() || (c == '-' && start.is_some());
        match (start, inside) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let word = text[s..i].trim_end_matches('-');
                out.push(Token {
                    range: s..s + word.len(),
                    text: word,
                    lower: word.to_lowercase(),
                });
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// `text` in lower case with curly apostrophes made straight, for matching phrases.
pub(super) fn plain_lower(text: &str) -> String {
    text.to_lowercase().replace('\u{2019}', "'")
}

/// Whether `phrase` (lowercase) is in `text` (lowercase) as whole words.
pub(super) fn tokens_contain(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase)
        .any(|(i, _)| stands_alone(text, i..i + phrase.len()))
}

/// Whether `text[range]` has no letter or digit right before or after it.
pub(super) fn stands_alone(text: &str, range: Range<usize>) -> bool {
    let before = text[..range.start].chars().next_back();
    let after = text[range.end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

/// The lowercase word at `i` of `list`, or "".
pub(super) fn word<'a>(list: &[&'a Token<'_>], i: usize) -> &'a str {
    list.get(i).map_or("", |t| t.lower.as_str())
}

pub(super) fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The words of `text` that carry meaning, lowercased and stemmed.
pub(super) fn content_words(text: &str) -> Vec<String> {
    words(&text.to_lowercase())
        .filter(|w| w.len() >= 3 && !STOPWORDS.contains(w))
        .map(stem)
        .collect()
}

/// A crude suffix stripper: enough that "burned", "burns" and "burn" meet.
pub(super) fn stem(word: &str) -> String {
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(root) = word.strip_suffix(suffix)
            && root.len() >= 4
        {
            return root.to_owned();
        }
    }
    word.to_owned()
}

pub(super) fn strip_the(name: &str) -> &str {
    name.strip_prefix("the ")
        .or_else(|| name.strip_prefix("The "))
        .unwrap_or(name)
}

/// Runs of capitalised words not at the start of the text (joined by "of": "Tower of Bones"),
/// with their byte ranges. ("and" joins two places as often as it makes one name.)
pub(super) fn capitalised_phrases(text: &str) -> Vec<(Range<usize>, String)> {
    let tokens = tokens(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let capitalised = |t: &Token<'_>| t.text.chars().next().is_some_and(char::is_uppercase);
        let sentence_start = i == 0
            || text[tokens[i - 1].range.end..tokens[i].range.start]
                .chars()
                .any(|c| matches!(c, '.' | '!' | '?' | '"' | '\u{201c}'));
        if !capitalised(&tokens[i]) || sentence_start || tokens[i].text == "I" {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        while end < tokens.len() {
            let gap = &text[tokens[end - 1].range.end..tokens[end].range.start];
            if gap != " " {
                break;
            }
            if capitalised(&tokens[end]) {
                end += 1;
            } else if tokens[end].text == "of"
                && tokens.get(end + 1).is_some_and(capitalised)
                && text[tokens[end].range.end..tokens[end + 1].range.start] == *" "
            {
                end += 2;
            } else {
                break;
            }
        }
        let range = tokens[start].range.start..tokens[end - 1].range.end;
        out.push((range.clone(), text[range].to_owned()));
        i = end;
    }
    out
}

/// The family group a kin word belongs to.
pub(super) fn kin_group(word: &str) -> Option<&'static str> {
    Some(match word {
        "brother" | "sister" | "sibling" | "twin" | "half-brother" | "half-sister" => "sibling",
        "mother" | "father" | "mum" | "mom" | "dad" | "parent" => "parent",
        "son" | "daughter" | "child" => "child",
        "husband" | "wife" | "spouse" => "spouse",
        "uncle" | "aunt" => "parent's sibling",
        "nephew" | "niece" => "sibling's child",
        "cousin" => "cousin",
        "grandmother" | "grandfather" | "grandma" | "grandpa" => "grandparent",
        "grandson" | "granddaughter" | "grandchild" => "grandchild",
        "father-in-law" | "mother-in-law" | "parent-in-law" => "parent-in-law",
        "son-in-law" | "daughter-in-law" | "child-in-law" => "child-in-law",
        "brother-in-law" | "sister-in-law" | "sibling-in-law" => "sibling-in-law",
        "stepfather" | "stepmother" | "step-father" | "step-mother" | "stepparent"
        | "step-parent" => "step-parent",
        "stepson" | "stepdaughter" | "step-son" | "step-daughter" | "stepchild" | "step-child" => {
            "step-child"
        }
        "stepbrother" | "stepsister" | "step-brother" | "step-sister" => "step-sibling",
        _ => return None,
    })
}

/// What the other side of a family tie is: a parent's child, a sibling's sibling.
pub(super) fn inverse_group(group: &'static str) -> &'static str {
    match group {
        "parent" => "child",
        "child" => "parent",
        "parent's sibling" => "sibling's child",
        "sibling's child" => "parent's sibling",
        "grandparent" => "grandchild",
        "grandchild" => "grandparent",
        "parent-in-law" => "child-in-law",
        "child-in-law" => "parent-in-law",
        "step-parent" => "step-child",
        "step-child" => "step-parent",
        same => same,
    }
}

pub(super) const FIRST_PERSON: [&str; 5] = ["i", "me", "my", "mine", "myself"];

pub(super) const ALIVE_VERBS: [&str; 22] = [
    "is",
    "isn",
    "lives",
    "says",
    "keeps",
    "knows",
    "will",
    "can",
    "has",
    "does",
    "wants",
    "thinks",
    "tells",
    "sits",
    "rows",
    "hears",
    "remembers",
    "waits",
    "works",
    "sleeps",
    "likes",
    "needs",
];

/// Words that state something as it is now.
pub(super) const PRESENT_STATE: [&str; 12] = [
    "is", "am", "are", "lives", "works", "keeps", "hangs", "stays", "sits", "runs", "still", "now",
];

pub(super) const GO_AND_SEE: [&str; 7] = ["ask", "see", "visit", "meet", "find", "fetch", "with"];

pub(super) const PAST_OR_DEATH: [&str; 22] = [
    "died", "dead", "death", "drowned", "late", "grave", "buried", "funeral", "ghost", "mourn",
    "mourned", "was", "were", "used", "miss", "missed", "gone", "passed", "rest", "memory",
    "killed", "remember",
];

/// Prepositions after which a capitalised name is a place.
pub(super) const OPEN_PREPOSITIONS: [&str; 11] = [
    "in", "at", "inside", "into", "near", "across", "through", "beyond", "outside", "past", "from",
];

/// Prepositions after which a capitalised name is a place only with "the" or a place word.
pub(super) const DIRECTED_PREPOSITIONS: [&str; 9] = [
    "to", "over", "under", "around", "behind", "toward", "towards", "by", "on",
];

pub(super) const PLACE_HEADS: [&str; 62] = [
    "Street",
    "Lane",
    "Road",
    "Avenue",
    "Place",
    "Row",
    "Terrace",
    "Crescent",
    "Inn",
    "Tavern",
    "Hotel",
    "Bridge",
    "Square",
    "Market",
    "Tower",
    "Gate",
    "Hall",
    "Chapel",
    "Cathedral",
    "Quay",
    "Dock",
    "Docks",
    "Canal",
    "Isle",
    "Island",
    "Forest",
    "Wood",
    "Woods",
    "Mountain",
    "Hill",
    "Valley",
    "Beach",
    "Castle",
    "Harbour",
    "Harbor",
    "Port",
    "Bay",
    "River",
    "Lake",
    "Marsh",
    "Church",
    "Temple",
    "Abbey",
    "Mill",
    "Alley",
    "Court",
    "Park",
    "Gardens",
    "House",
    "Manor",
    "Palace",
    "Cellar",
    "Wharf",
    "Pier",
    "Hospital",
    "School",
    "Station",
    "Prison",
    "Library",
    "Museum",
    "Theatre",
    "Farm",
];

/// Words a place's name follows after "of": "the edge of Torquay", "the town of Eastbourne".
pub(super) const PART_OF_A_PLACE: [&str; 20] = [
    "edge",
    "outskirts",
    "heart",
    "centre",
    "center",
    "middle",
    "city",
    "town",
    "village",
    "port",
    "streets",
    "banks",
    "shores",
    "coast",
    "county",
    "kingdom",
    "suburbs",
    "borders",
    "island",
    "land",
];

/// Words a place's name follows after "to": "going to Stables", "the road to Saltmere". Not
/// "head", as often the noun ("bowing your head to Pan").
pub(super) const JOURNEY_WORDS: [&str; 35] = [
    "go",
    "goes",
    "going",
    "went",
    "gone",
    "come",
    "comes",
    "coming",
    "came",
    "travel",
    "travels",
    "travelled",
    "traveled",
    "travelling",
    "traveling",
    "sail",
    "sails",
    "sailed",
    "sailing",
    "move",
    "moved",
    "moving",
    "walk",
    "walked",
    "walking",
    "headed",
    "heading",
    "return",
    "returned",
    "ride",
    "rode",
    "way",
    "road",
    "trip",
    "journey",
];

/// Lower-case words that make a numbered street of an ordinal before them.
pub(super) const STREET_WORDS: [&str; 4] = ["street", "avenue", "road", "lane"];

/// Whether `word` (lower case) is an ordinal in digits: "60th", "1st", "22nd".
pub(super) fn is_ordinal(word: &str) -> bool {
    let digits = word.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ["st", "nd", "rd", "th"].contains(&&word[digits.len()..])
}

/// Whether the text right after a capitalised phrase shows that the phrase names no place:
/// a closing quotation mark (a title or a name quoted: as in "The Firefly"), or a possessive
/// whose thing is not a place ("Hestan's window", "the Fogwardens' boats"; but "Saltmere's
/// harbour" is one).
pub(super) fn names_no_place(phrase: &str, after: &str) -> bool {
    match after_possessive(after, phrase.ends_with('s')) {
        Some(rest) => {
            let thing = words(rest).next().unwrap_or_default().to_lowercase();
            !PLACE_HEADS.iter().any(|h| h.eq_ignore_ascii_case(&thing))
                && !PLACE_NOUNS.contains(&thing.as_str())
        }
        None => after.starts_with(['"', '\u{201d}', '\'', '\u{2019}']),
    }
}

/// The text after a possessive mark that starts `after` ("'s ", or "' " after a `plural`
/// name ending in s; curly apostrophes alike), or `None` without one.
pub(super) fn after_possessive(after: &str, plural: bool) -> Option<&str> {
    ["'s ", "\u{2019}s ", "' ", "\u{2019} "]
        .iter()
        .filter(|p| plural || p.ends_with("s "))
        .find_map(|p| after.strip_prefix(*p))
}

/// Lowercase words for a place that are not the last word of a place's name
/// ([`PLACE_HEADS`]), for what a possessive owns.
pub(super) const PLACE_NOUNS: [&str; 9] = [
    "town", "city", "village", "shore", "coast", "streets", "quarter", "walls", "waters",
];

/// Last words of a capitalised phrase that name a body of people, not a place ("from the
/// Council").
pub(super) const ORGANISATION_HEADS: [&str; 8] = [
    "Council",
    "Guild",
    "Company",
    "Society",
    "Committee",
    "Crew",
    "Gazette",
    "Brotherhood",
];

/// First words that make a capitalised phrase a place ("River Folly", "Lake Garda").
pub(super) const PLACE_FIRST_WORDS: [&str; 7] =
    ["River", "Lake", "Mount", "Isle", "Port", "Fort", "Cape"];

/// Lower-case words that make the capitalised name after them a place ("the river Avon").
pub(super) const PLACE_WORDS_BEFORE_A_NAME: [&str; 2] = ["river", "lake"];

/// Capitalised words that name no place: days, months, titles.
pub(super) const COMMON_CAPITALS: [&str; 30] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "God",
    "Sir",
    "Madam",
    "Miss",
    "Mister",
    "Mr",
    "Mrs",
    "Ms",
    "Lady",
    "Lord",
    "Christmas",
];

pub(super) const STOPWORDS: [&str; 60] = [
    "the", "and", "but", "for", "nor", "yet", "are", "was", "were", "been", "being", "has", "have",
    "had", "his", "her", "hers", "its", "their", "theirs", "our", "ours", "your", "yours", "she",
    "him", "they", "them", "who", "whom", "which", "that", "this", "these", "those", "with",
    "from", "into", "onto", "upon", "over", "under", "than", "then", "there", "here", "when",
    "where", "what", "why", "how", "all", "any", "every", "each", "not", "does", "did", "one",
    "would",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capitalised_runs_skip_sentence_starts() {
        let found: Vec<String> = capitalised_phrases(
            "Meet me at the Silver Anchor. Then we row to Tower of Bones and Lantern Quay.",
        )
        .into_iter()
        .map(|(_, p)| p)
        .collect();
        assert_eq!(found, ["Silver Anchor", "Tower of Bones", "Lantern Quay"]);
    }

    #[test]
    fn real_world_places_are_found_as_whole_words() {
        assert!(REAL_WORLD_PLACES.is_some());
        let found: Vec<&str> = real_world_places(
            "London burns, they sail for New York; Parisian lace and Londoners do not count.",
        )
        .into_iter()
        .map(|(_, p)| p)
        .collect();
        assert_eq!(found, ["London", "New York"]);
        assert!(real_world_places("a london fog").is_empty());
    }

    #[test]
    fn stems_meet() {
        assert_eq!(stem("burned"), stem("burns"));
        assert_eq!(stem("burn"), "burn");
        assert_eq!(content_words("The Guild's charter"), ["guild", "charter"]);
    }

    #[test]
    fn family_ties_read_both_ways() {
        assert_eq!(inverse_group(kin_group("son").unwrap()), "parent");
        assert_eq!(inverse_group(kin_group("sister").unwrap()), "sibling");
        assert_eq!(kin_group("friend"), None);
        assert_eq!(kin_group("father-in-law"), Some("parent-in-law"));
        assert_eq!(
            inverse_group(kin_group("father-in-law").unwrap()),
            "child-in-law"
        );
        assert_eq!(inverse_group(kin_group("stepson").unwrap()), "step-parent");
        assert_eq!(kin_group("half-sister"), Some("sibling"));
    }
}
