//! Names as users type them: folded for comparison, and listed in errors when none matches.

/// A name with case, spaces and punctuation folded away: `odile-marrow` and `Odile Marrow`
/// fold alike.
pub fn fold_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Case- and separator-insensitive name comparison: `odile-marrow` matches `Odile Marrow`.
pub(crate) fn matches_name(candidate: &str, typed: &str) -> bool {
    let typed = fold_name(typed);
    !typed.is_empty() && fold_name(candidate) == typed
}

/// The part of an IRI after its last `#` or `/`.
pub fn local_name(iri: &str) -> &str {
    iri.rsplit(['#', '/']).next().unwrap_or(iri)
}

/// What an error adds after an unknown name: the names that exist, or what to do when there
/// are none.
pub(crate) fn hint<'a>(names: impl Iterator<Item = &'a str>, otherwise: &str) -> String {
    let names: Vec<_> = names.collect();
    if names.is_empty() {
        format!("; the store has none: {otherwise}")
    } else {
        format!("; known: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_across_case_and_separators() {
        assert!(matches_name("Odile Marrow", "odile-marrow"));
        assert!(matches_name("odile_marrow", "Odile Marrow"));
        assert!(!matches_name("Odile", "Odile Marrow"));
        assert!(!matches_name("x", ""));
    }
}
