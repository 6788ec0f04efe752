//! The `lore:` vocabulary: IRI constants and the ontology's declared terms.

use std::collections::HashSet;
use std::sync::OnceLock;

use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::{NamedNodeRef, Term};

/// The namespace of the `lore:` vocabulary.
pub const NS: &str = "https://lorekeeper.dev/ns/lore#";

/// The ontology in Turtle, as shipped (also in `crates/canon/vocab/lore.ttl`).
pub const ONTOLOGY_TTL: &str = include_str!("../vocab/lore.ttl");

macro_rules! terms {
    ($($(#[$doc:meta])* $name:ident = $local:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: NamedNodeRef<'static> =
                NamedNodeRef::new_unchecked(concat!("https://lorekeeper.dev/ns/lore#", $local));
        )*
    };
}

terms! {
    /// `lore:Production`
    PRODUCTION = "Production";
    /// `lore:graph`
    GRAPH = "graph";
    /// `lore:extends`
    EXTENDS = "extends";
    /// `lore:rating`
    RATING = "rating";
    /// `lore:premise`
    PREMISE = "premise";
    /// `lore:tenant`
    TENANT = "tenant";
    /// `lore:Character`
    CHARACTER = "Character";
    /// `lore:Place`
    PLACE = "Place";
    /// `lore:Object`
    OBJECT = "Object";
    /// `lore:Faction`
    FACTION = "Faction";
    /// `lore:Event`
    EVENT = "Event";
    /// `lore:Concept`: a named idea (a custom, a legend, a word) facts can be about.
    CONCEPT = "Concept";
    /// `lore:alias`
    ALIAS = "alias";
    /// `lore:appearsIn`
    APPEARS_IN = "appearsIn";
    /// `lore:persona`
    PERSONA = "persona";
    /// `lore:speechStyle`
    SPEECH_STYLE = "speechStyle";
    /// `lore:goal`
    GOAL = "goal";
    /// `lore:sampleLine`
    SAMPLE_LINE = "sampleLine";
    /// `lore:deflection`
    DEFLECTION = "deflection";
    /// `lore:locatedIn`
    LOCATED_IN = "locatedIn";
    /// `lore:heldBy`: as a claim's property, who holds an object.
    HELD_BY = "heldBy";
    /// `lore:Beat`
    BEAT = "Beat";
    /// `lore:order`
    ORDER = "order";
    /// `lore:validFrom`
    VALID_FROM = "validFrom";
    /// `lore:validUntil`
    VALID_UNTIL = "validUntil";
    /// `lore:Fact`
    FACT = "Fact";
    /// `lore:statement`
    STATEMENT = "statement";
    /// `lore:about`
    ABOUT = "about";
    /// `lore:subject`
    SUBJECT = "subject";
    /// `lore:property`
    PROPERTY = "property";
    /// `lore:value`
    VALUE = "value";
    /// `lore:supersedes`
    SUPERSEDES = "supersedes";
    /// `lore:commonKnowledge`
    COMMON_KNOWLEDGE = "commonKnowledge";
    /// `lore:secret`
    SECRET = "secret";
    /// `lore:giveaway`
    GIVEAWAY = "giveaway";
    /// `lore:knownBy`
    KNOWN_BY = "knownBy";
    /// `lore:Knowledge`
    KNOWLEDGE = "Knowledge";
    /// `lore:knower`
    KNOWER = "knower";
    /// `lore:knows`
    KNOWS = "knows";
    /// `lore:since`
    SINCE = "since";
    /// `lore:Relationship`
    RELATIONSHIP = "Relationship";
    /// `lore:source`
    SOURCE = "source";
    /// `lore:target`
    TARGET = "target";
    /// `lore:kind`
    KIND = "kind";
    /// `lore:strength`
    STRENGTH = "strength";
    /// `lore:description`
    DESCRIPTION = "description";
    /// `lore:writerNote`: never read by retrieval.
    WRITER_NOTE = "writerNote";
    /// `lore:system`: the named graph of the engine's own bookkeeping.
    SYSTEM_GRAPH = "system";
    /// `lore:history`: the named graph of canon's commits.
    HISTORY_GRAPH = "history";
    /// `lore:Commit`
    COMMIT = "Commit";
    /// `lore:sequence`: a commit's place in history, from 1.
    SEQUENCE = "sequence";
    /// `lore:parent`
    PARENT = "parent";
    /// `lore:basedOn`: the commit a change's author saw, when others landed in between.
    BASED_ON = "basedOn";
    /// `lore:author`
    AUTHOR = "author";
    /// `lore:committedAt`
    COMMITTED_AT = "committedAt";
    /// `lore:message`
    MESSAGE = "message";
    /// `lore:provenance`: a signed provenance record (JSON).
    PROVENANCE = "provenance";
    /// `lore:reverts`
    REVERTS = "reverts";
    /// `lore:touches`: a named graph a commit changed.
    TOUCHES = "touches";
    /// `lore:added`: N-Quads a commit added (one literal per chunk).
    ADDED = "added";
    /// `lore:removed`: N-Quads a commit removed.
    REMOVED = "removed";
    /// `lore:addedCount`
    ADDED_COUNT = "addedCount";
    /// `lore:removedCount`
    REMOVED_COUNT = "removedCount";
    /// `lore:policy`: the named graph of the studio-wide policy, beneath every production.
    POLICY_GRAPH = "policy";
    /// `lore:Rating`
    RATING_CLASS = "Rating";
    /// `lore:minimumAge`
    MINIMUM_AGE = "minimumAge";
    /// `lore:Hazard`
    HAZARD = "Hazard";
    /// `lore:ContentDescriptor`
    CONTENT_DESCRIPTOR = "ContentDescriptor";
    /// `lore:Topic`
    TOPIC = "Topic";
    /// `lore:OrdinaryTalk`
    ORDINARY_TALK = "OrdinaryTalk";
    /// `lore:broader`
    BROADER = "broader";
    /// `lore:hazardCode`
    HAZARD_CODE = "hazardCode";
    /// `lore:term`
    TERM = "term";
    /// `lore:example`
    EXAMPLE = "example";
    /// `lore:threshold`
    THRESHOLD = "threshold";
    /// `lore:minimumRating`
    MINIMUM_RATING = "minimumRating";
    /// `lore:offLimits`
    OFF_LIMITS = "offLimits";
    /// `lore:railAction`
    RAIL_ACTION = "railAction";
    /// `lore:Deflect`
    DEFLECT = "Deflect";
    /// `lore:Refuse`
    REFUSE = "Refuse";
    /// `lore:EndSession`
    END_SESSION = "EndSession";
    /// `lore:diedAt`: the beat order from which a character is dead.
    DIED_AT = "diedAt";
    /// `lore:Portrayal`
    PORTRAYAL = "Portrayal";
    /// `lore:portrays`
    PORTRAYS = "portrays";
    /// `lore:performer`
    PERFORMER = "performer";
    /// `lore:consent`
    CONSENT = "consent";
    /// `lore:LikenessConsent`
    LIKENESS_CONSENT = "LikenessConsent";
    /// `lore:allowsUse`
    ALLOWS_USE = "allowsUse";
    /// `lore:TextUse`
    TEXT_USE = "TextUse";
    /// `lore:VoiceUse`
    VOICE_USE = "VoiceUse";
    /// `lore:ImageUse`
    IMAGE_USE = "ImageUse";
    /// `lore:coversProduction`
    COVERS_PRODUCTION = "coversProduction";
    /// `lore:territory`
    TERRITORY = "territory";
    /// `lore:expires`
    EXPIRES = "expires";
    /// `lore:posthumousUse`
    POSTHUMOUS_USE = "posthumousUse";
}

/// The namespace of the `card:` vocabulary: how a character card or lorebook that came in
/// through `lore import` is kept in canon, so that `lore export` can write it back unchanged.
pub const CARD_NS: &str = "https://lorekeeper.dev/ns/card#";

/// The namespace of card fields kept verbatim: `field:<name>` holds the card's field `<name>`
/// (a string as a plain literal, anything else as an `rdf:JSON` literal) where canon has no
/// property of its own for it.
pub const CARD_FIELD_NS: &str = "https://lorekeeper.dev/ns/card/field#";

macro_rules! card_terms {
    ($ns:literal: $($(#[$doc:meta])* $name:ident = $local:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: NamedNodeRef<'static> =
                NamedNodeRef::new_unchecked(concat!($ns, $local));
        )*
    };
}

card_terms! {
    "https://lorekeeper.dev/ns/card#":
    /// `card:spec`: the spec a card was written to (`chara_card_v3`, ...).
    CARD_SPEC = "spec";
    /// `card:specVersion`: its `spec_version`, as written.
    CARD_SPEC_VERSION = "specVersion";
    /// `card:envelope`: the card's top-level fields besides `spec`, `spec_version`, `data`.
    CARD_ENVELOPE = "envelope";
    /// `card:Lorebook`: a character book or standalone lorebook.
    CARD_LOREBOOK = "Lorebook";
    /// `card:book`: a character's embedded book.
    CARD_BOOK = "book";
    /// `card:entry`: an entry of a book.
    CARD_ENTRY = "entry";
    /// `card:Entry`: a lorebook entry; also a `lore:Fact` when it has text to tell.
    CARD_ENTRY_CLASS = "Entry";
    /// `card:index`: the place of an entry or file in its list.
    CARD_INDEX = "index";
    /// `card:decorators`: an entry's leading `@@decorator` lines (`rdf:JSON` array).
    CARD_DECORATORS = "decorators";
    /// `card:keysOf`: on a `lore:Concept`, the entry whose activation keys name it.
    CARD_KEYS_OF = "keysOf";
    /// `card:file`: a file carried with a card (a CHARX asset).
    CARD_FILE = "file";
    /// `card:path`: the file's path in the archive.
    CARD_PATH = "path";
    /// `card:bytes`: the file's bytes (`xsd:base64Binary`).
    CARD_BYTES = "bytes";
    /// `card:portrait`: the PNG a card came in (`xsd:base64Binary`).
    CARD_PORTRAIT = "portrait";
}

card_terms! {
    "https://lorekeeper.dev/ns/card/field#":
    /// The card field `nickname`: another name for the character.
    FIELD_NICKNAME = "nickname";
    /// The card field `personality`.
    FIELD_PERSONALITY = "personality";
    /// The card field `scenario`.
    FIELD_SCENARIO = "scenario";
    /// The card field `first_mes`: the character's greeting.
    FIELD_FIRST_MES = "first_mes";
    /// The card field `mes_example`: example dialogue.
    FIELD_MES_EXAMPLE = "mes_example";
    /// The entry field `enabled`.
    FIELD_ENABLED = "enabled";
}

/// `rdf:JSON`: the datatype of card values that are not strings.
pub const RDF_JSON: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON");

/// `xsd:base64Binary`
pub const XSD_BASE64: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/2001/XMLSchema#base64Binary");

/// `schema:deathDate`: when a performer died.
pub const SCHEMA_DEATH_DATE: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("https://schema.org/deathDate");

/// `rdf:type`
pub const RDF_TYPE: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/1999/02/22-rdf-syntax-ns#type");
/// `rdfs:label`
pub const RDFS_LABEL: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/2000/01/rdf-schema#label");
const OWL_CLASS: &str = "http://www.w3.org/2002/07/owl#Class";
const OWL_PROPERTIES: [&str; 3] = [
    "http://www.w3.org/2002/07/owl#ObjectProperty",
    "http://www.w3.org/2002/07/owl#DatatypeProperty",
    "http://www.w3.org/2002/07/owl#FunctionalProperty",
];

/// The terms the ontology declares, read once from [`ONTOLOGY_TTL`].
#[derive(Debug)]
pub struct Declared {
    /// `lore:` classes.
    pub classes: HashSet<String>,
    /// `lore:` properties.
    pub properties: HashSet<String>,
    /// `lore:` individuals (ratings, knowledge sources, likeness uses).
    pub individuals: HashSet<String>,
    /// Properties declared `owl:FunctionalProperty`: one value per subject at a time.
    pub functional: HashSet<String>,
}

/// The declared terms of the shipped ontology.
pub fn declared() -> &'static Declared {
    static DECLARED: OnceLock<Declared> = OnceLock::new();
    DECLARED.get_or_init(|| {
        let mut declared = Declared {
            classes: HashSet::new(),
            properties: HashSet::new(),
            individuals: HashSet::new(),
            functional: HashSet::new(),
        };
        for triple in RdfParser::from_format(RdfFormat::Turtle).for_slice(ONTOLOGY_TTL) {
            let Ok(quad) = triple else {
                // The ontology is compiled in and parsed by a test; a failure here is a build bug.
                continue;
            };
            let subject = quad.subject.to_string();
            let Some(iri) = subject
                .strip_prefix('<')
                .and_then(|s| s.strip_suffix('>'))
                .filter(|s| s.starts_with(NS))
            else {
                continue;
            };
            if quad.predicate != RDF_TYPE {
                continue;
            }
            let Term::NamedNode(class) = &quad.object else {
                continue;
            };
            let class = class.as_str();
            if class == OWL_CLASS {
                declared.classes.insert(iri.to_owned());
            } else if OWL_PROPERTIES.contains(&class) {
                declared.properties.insert(iri.to_owned());
                if class == OWL_PROPERTIES[2] {
                    declared.functional.insert(iri.to_owned());
                }
            } else if class.starts_with(NS) {
                declared.individuals.insert(iri.to_owned());
            }
        }
        declared
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ontology_parses_and_declares_core_terms() {
        for quad in RdfParser::from_format(RdfFormat::Turtle).for_slice(ONTOLOGY_TTL) {
            quad.unwrap();
        }
        let d = declared();
        assert!(d.classes.contains(FACT.as_str()));
        assert!(d.classes.contains(CHARACTER.as_str()));
        assert!(d.properties.contains(WRITER_NOTE.as_str()));
        assert!(d.functional.contains(LOCATED_IN.as_str()));
        assert!(!d.functional.contains(GOAL.as_str()));
        assert!(d.individuals.contains(&format!("{NS}Teen")));
    }

    #[test]
    fn every_constant_is_declared() {
        let d = declared();
        for term in [
            PRODUCTION,
            GRAPH,
            EXTENDS,
            RATING,
            PREMISE,
            TENANT,
            ALIAS,
            PERSONA,
            STATEMENT,
            KNOWN_BY,
            SINCE,
            STRENGTH,
            RATING_CLASS,
            MINIMUM_AGE,
            HAZARD,
            CONTENT_DESCRIPTOR,
            TOPIC,
            BROADER,
            HAZARD_CODE,
            TERM,
            EXAMPLE,
            THRESHOLD,
            MINIMUM_RATING,
            OFF_LIMITS,
            RAIL_ACTION,
        ] {
            assert!(
                d.classes.contains(term.as_str()) || d.properties.contains(term.as_str()),
                "{term} is not declared in lore.ttl"
            );
        }
    }
}
