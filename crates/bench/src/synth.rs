//! Synthetic worlds: one production of towns, each with characters, a place, facts over
//! story time, secrets, knowledge and relationships, written as N-Quads.
//!
//! The shape follows the sample world, so retrieval does the same work per turn; names are
//! unique pronounceable words so that mention detection has realistic automata.

use std::io::{self, Write};

const NS: &str = "https://lorekeeper.dev/ns/lore#";
const W: &str = "https://lorekeeper.dev/worlds/synthetic#";
const GRAPH: &str = "https://lorekeeper.dev/worlds/synthetic/graph/main";
const CHARACTERS_PER_TOWN: usize = 10;
const FACTS_PER_TOWN: usize = 40;
const RELATIONSHIPS_PER_TOWN: usize = 20;

/// What a generated world holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synthetic {
    /// Quads written.
    pub quads: u64,
    /// Towns (clusters).
    pub towns: usize,
    /// Characters.
    pub characters: usize,
    /// Facts.
    pub facts: usize,
}

/// The production's IRI in a generated world.
pub fn production() -> String {
    format!("{W}production")
}

/// The IRI of character `c` of town `t`.
pub fn character(t: usize, c: usize) -> String {
    format!("{W}c{t}_{c}")
}

/// The name of character `c` of town `t`.
pub fn character_name(t: usize, c: usize) -> String {
    let id = t * CHARACTERS_PER_TOWN + c;
    format!("{} {}", word(id * 7 + 3, 2), word(id, 3))
}

/// The name of town `t`'s place.
pub fn place_name(t: usize) -> String {
    format!("{}holm", word(t * 13 + 5, 2))
}

/// A pronounceable word unique for each `n` (base-40 syllables).
fn word(n: usize, syllables: usize) -> String {
    const ONSETS: [&str; 8] = ["b", "d", "k", "l", "m", "r", "s", "v"];
    const VOWELS: [&str; 5] = ["a", "e", "i", "o", "u"];
    let mut n = n;
    let mut out = String::new();
    for i in 0..syllables.max(1) {
        let s = n % 40;
        n /= 40;
        out.push_str(ONSETS[s / 5]);
        out.push_str(VOWELS[s % 5]);
        if i == syllables - 1 && n > 0 {
            // More than `syllables` are needed: keep going so the word stays unique.
            out.push_str(&word(n, 1));
        }
    }
    let mut chars = out.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// Writes a world of about `target_quads` quads.
pub fn write(out: &mut impl Write, target_quads: u64) -> io::Result<Synthetic> {
    let mut w = Quads { out, quads: 0 };
    let p = production();
    w.iri(&p, &format!("{RDF}type"), &format!("{NS}Production"))?;
    w.lit(
        &p,
        "http://www.w3.org/2000/01/rdf-schema#label",
        "Synthetic Chronicles",
    )?;
    w.iri(&p, &format!("{NS}graph"), GRAPH)?;
    w.iri(&p, &format!("{NS}rating"), &format!("{NS}Teen"))?;
    for beat in 1..=10 {
        let b = format!("{W}beat{beat}");
        w.iri(&b, &format!("{RDF}type"), &format!("{NS}Beat"))?;
        w.int(&b, &format!("{NS}order"), beat)?;
    }
    let mut towns = 0;
    let mut facts = 0;
    while w.quads < target_quads {
        facts += town(&mut w, towns)?;
        towns += 1;
    }
    w.out.flush()?;
    Ok(Synthetic {
        quads: w.quads,
        towns,
        characters: towns * CHARACTERS_PER_TOWN,
        facts,
    })
}

const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";

fn town(w: &mut Quads<'_, impl Write>, t: usize) -> io::Result<usize> {
    let place = format!("{W}place{t}");
    w.iri(&place, &format!("{RDF}type"), &format!("{NS}Place"))?;
    w.lit(
        &place,
        "http://www.w3.org/2000/01/rdf-schema#label",
        &place_name(t),
    )?;
    let p = production();
    for c in 0..CHARACTERS_PER_TOWN {
        let iri = character(t, c);
        let name = character_name(t, c);
        w.iri(&iri, &format!("{RDF}type"), &format!("{NS}Character"))?;
        w.lit(&iri, "http://www.w3.org/2000/01/rdf-schema#label", &name)?;
        w.iri(&iri, &format!("{NS}appearsIn"), &p)?;
        w.lit(
            &iri,
            &format!("{NS}persona"),
            &format!(
                "{name} is a townsperson of {} with a long memory.",
                place_name(t)
            ),
        )?;
        w.lit(&iri, &format!("{NS}speechStyle"), "Plain and friendly.")?;
        w.lit(&iri, &format!("{NS}goal"), "Keep the town prosperous.")?;
        w.lit(&iri, &format!("{NS}writerNote"), "Synthetic character.")?;
    }
    for f in 0..FACTS_PER_TOWN {
        let iri = format!("{W}f{t}_{f}");
        let a = f % CHARACTERS_PER_TOWN;
        let b = (f * 3 + 1) % CHARACTERS_PER_TOWN;
        w.iri(&iri, &format!("{RDF}type"), &format!("{NS}Fact"))?;
        w.lit(
            &iri,
            &format!("{NS}statement"),
            &format!(
                "{} owes {} a favour (synthetic fact {f}).",
                character_name(t, a),
                character_name(t, b)
            ),
        )?;
        w.iri(&iri, &format!("{NS}about"), &character(t, a))?;
        w.iri(&iri, &format!("{NS}about"), &character(t, b))?;
        if f % 4 == 0 {
            w.iri(&iri, &format!("{NS}about"), &place)?;
        }
        w.int(&iri, &format!("{NS}validFrom"), (f % 5) as i64 + 1)?;
        w.int(&iri, &format!("{NS}validUntil"), (f % 5) as i64 + 4)?;
        if f % 3 == 0 {
            w.lit_typed(
                &iri,
                &format!("{NS}secret"),
                "true",
                "http://www.w3.org/2001/XMLSchema#boolean",
            )?;
            w.iri(&iri, &format!("{NS}knownBy"), &character(t, a))?;
            w.iri(
                &iri,
                &format!("{NS}knownBy"),
                &character(t, (a + 1) % CHARACTERS_PER_TOWN),
            )?;
        } else {
            w.lit_typed(
                &iri,
                &format!("{NS}commonKnowledge"),
                "true",
                "http://www.w3.org/2001/XMLSchema#boolean",
            )?;
        }
    }
    for r in 0..RELATIONSHIPS_PER_TOWN {
        let iri = format!("{W}r{t}_{r}");
        w.iri(&iri, &format!("{RDF}type"), &format!("{NS}Relationship"))?;
        w.iri(
            &iri,
            &format!("{NS}source"),
            &character(t, r % CHARACTERS_PER_TOWN),
        )?;
        w.iri(
            &iri,
            &format!("{NS}target"),
            &character(t, (r * 7 + 3) % CHARACTERS_PER_TOWN),
        )?;
        w.lit(
            &iri,
            &format!("{NS}kind"),
            if r % 2 == 0 { "friend" } else { "rival" },
        )?;
        w.lit_typed(
            &iri,
            &format!("{NS}strength"),
            if r % 2 == 0 { "0.6" } else { "-0.4" },
            "http://www.w3.org/2001/XMLSchema#decimal",
        )?;
    }
    Ok(FACTS_PER_TOWN)
}

struct Quads<'a, O: Write> {
    out: &'a mut O,
    quads: u64,
}

impl<O: Write> Quads<'_, O> {
    fn iri(&mut self, s: &str, p: &str, o: &str) -> io::Result<()> {
        self.quads += 1;
        writeln!(self.out, "<{s}> <{p}> <{o}> <{GRAPH}> .")
    }

    fn lit(&mut self, s: &str, p: &str, o: &str) -> io::Result<()> {
        self.quads += 1;
        writeln!(self.out, "<{s}> <{p}> {} <{GRAPH}> .", oxigraph_escape(o))
    }

    fn lit_typed(&mut self, s: &str, p: &str, o: &str, datatype: &str) -> io::Result<()> {
        self.quads += 1;
        writeln!(
            self.out,
            "<{s}> <{p}> {}^^<{datatype}> <{GRAPH}> .",
            oxigraph_escape(o)
        )
    }

    fn int(&mut self, s: &str, p: &str, o: i64) -> io::Result<()> {
        self.lit_typed(
            s,
            p,
            &o.to_string(),
            "http://www.w3.org/2001/XMLSchema#integer",
        )
    }
}

/// An N-Quads string literal.
fn oxigraph_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for t in 0..2000 {
            for c in 0..CHARACTERS_PER_TOWN {
                assert!(
                    seen.insert(character_name(t, c)),
                    "{}",
                    character_name(t, c)
                );
            }
        }
    }

    #[test]
    fn writes_about_the_target_and_parses() {
        let mut buf = Vec::new();
        let s = write(&mut buf, 5_000).unwrap();
        assert!(s.quads >= 5_000 && s.quads < 6_000, "{s:?}");
        let parsed = oxigraph::io::RdfParser::from_format(oxigraph::io::RdfFormat::NQuads)
            .for_slice(&buf)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(parsed.len() as u64, s.quads);
    }
}
