//! `lore check`'s findings, on the sample world (clean) and on files with each kind of fault.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::path::{Path, PathBuf};

use lore_canon::lint::{self, Finding, Severity};

fn world_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../world")
        .join(name)
}

#[test]
fn the_sample_world_and_the_default_policy_are_clean() {
    let files = [world_file("policy.trig"), world_file("brindlemoor.trig")];
    let (store, positions) = lint::load_files(&files).unwrap();
    let findings = lint::check(&store, &positions).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
}

const BROKEN: &str = r#"@prefix lore: <https://lorekeeper.dev/ns/lore#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix : <urn:t:> .
:g {
  :prod a lore:Production ; rdfs:label "Untitled" ; lore:graph :g .
  :ann a lore:Character ; rdfs:label "Ann" .
  :bob a lore:Character ; rdfs:label "Bob" ; lore:persna "Bob is a baker." ; lore:persona "Bob bakes." .
  :f1 a lore:Fact ; lore:statement "Ann is in the mill." ; lore:about :ann ;
      lore:subject :ann ; lore:property lore:locatedIn ; lore:value :mill ; lore:validFrom 1 ; lore:validUntil 5 ; lore:commonKnowledge true .
  :f2 a lore:Fact ; lore:statement "Ann is at sea." ; lore:about :ann, :ghost ;
      lore:subject :ann ; lore:property lore:locatedIn ; lore:value :sea ; lore:validFrom 4 ; lore:commonKnowledge true .
  :f3 a lore:Fact ; lore:statement "Fine." ; lore:about :ann ;
      lore:subject :ann ; lore:property lore:locatedIn ; lore:value :sea ; lore:validFrom 5 ; lore:commonKnowledge true .
  :f4 a lore:Fakt ; lore:about :ann .
  :f5 a lore:Fact ; lore:statement "A secret told to all." ; lore:about :ann ; lore:secret true ; lore:commonKnowledge true .
  :f6 a lore:Fact ; lore:about :ann .
  :mill a lore:Place ; rdfs:label "the mill" .
  :sea a lore:Place ; rdfs:label "the sea" .
}
"#;

fn findings_for(text: &str) -> (Vec<Finding>, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.trig");
    std::fs::write(&file, text).unwrap();
    let (store, positions) = lint::load_files(std::slice::from_ref(&file)).unwrap();
    (lint::check(&store, &positions).unwrap(), file, dir)
}

fn find<'a>(findings: &'a [Finding], code: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code} in {findings:#?}"))
}

fn line_of(f: &Finding, file: &Path) -> u64 {
    let (path, line) = f
        .location
        .as_ref()
        .unwrap_or_else(|| panic!("{f:?} has no location"));
    assert_eq!(path, file);
    *line
}

#[test]
fn each_fault_is_found_with_its_place_and_a_fix() {
    let (findings, file, _dir) = findings_for(BROKEN);

    let rating = find(&findings, "production-without-rating");
    assert_eq!(line_of(rating, &file), 5);
    assert!(rating.fix.contains("lore:rating"));

    let persona = find(&findings, "character-without-persona");
    assert_eq!(persona.subject, "urn:t:ann");
    assert_eq!(line_of(persona, &file), 6);

    let unknown_property = find(&findings, "unknown-property");
    assert!(unknown_property.message.contains("persna"));
    assert_eq!(unknown_property.fix, "did you mean lore:persona?");
    assert_eq!(line_of(unknown_property, &file), 7);

    let unknown_class = find(&findings, "unknown-class");
    assert!(unknown_class.message.contains("Fakt"));
    assert_eq!(unknown_class.fix, "did you mean lore:Fact?");

    let dangling = find(&findings, "dangling-reference");
    assert!(dangling.message.contains("urn:t:ghost"));
    assert_eq!(line_of(dangling, &file), 10);

    let contradictions: Vec<_> = findings
        .iter()
        .filter(|f| f.code == "contradiction")
        .collect();
    assert_eq!(
        contradictions.len(),
        1,
        "f1 [1,5) overlaps f2 [4,..); f3 [5,..) agrees with f2: {contradictions:#?}"
    );
    assert!(
        contradictions[0].message.contains("urn:t:f1")
            && contradictions[0].message.contains("urn:t:f2")
    );

    let tenant = find(&findings, "production-without-tenant");
    assert_eq!(line_of(tenant, &file), 5);
    assert!(tenant.fix.contains("lore:tenant"));

    find(&findings, "secret-common-knowledge");
    find(&findings, "fact-without-statement");
    let warnings = ["secret-known-by-none", "production-without-tenant"];
    assert!(
        findings
            .iter()
            .all(|f| f.severity == Severity::Error || warnings.contains(&f.code)),
        "{findings:#?}"
    );
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.ttl");
    std::fs::write(
        &file,
        "@prefix : <urn:x:> .\n:a :b :c .\n:a :b \"unterminated .\n",
    )
    .unwrap();
    let err = lint::load_files(&[file]).err().unwrap();
    let text = err.to_string();
    assert!(text.contains("bad.ttl:3:"), "{text}");
}

const BAD_POLICY: &str = r#"@prefix lore: <https://lorekeeper.dev/ns/lore#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix : <urn:t:> .
lore:policy {
  lore:Teen a lore:Rating ; lore:minimumAge 13 .
  lore:Mature a lore:Rating ; lore:minimumAge 17 .
  :dice a lore:Topic ; rdfs:label "dice" ; lore:minimumRating lore:Casino ; lore:term "dice" .
  lore:Mature a lore:Rating ; lore:minimumAge 17 .
  :dice a lore:Topic ; rdfs:label "dice" ; lore:minimumRating lore:Casino ; lore:term "dice" .
  :a a lore:Topic ; rdfs:label "a" ; lore:broader :b ; lore:term "a" .
  :b a lore:Topic ; rdfs:label "b" ; lore:broader :a ; lore:term "b" .
  :weapons a lore:Hazard ; rdfs:label "weapons" ; lore:term "bomb" .
  :fireworks a lore:Topic ; rdfs:label "fireworks" ; lore:broader :weapons ;
      lore:minimumRating lore:Teen ; lore:term "firework" .
  :drink a lore:Topic ; rdfs:label "drink" ; lore:minimumRating lore:Mature ; lore:term "ale" .
  :sip a lore:Topic ; rdfs:label "sip" ; lore:broader :drink ; lore:minimumRating lore:Teen ;
      lore:term "sip" .
  :silent a lore:Topic ; rdfs:label "silent" .
  :loose a lore:Topic ; rdfs:label "loose" ; lore:term "loose" ; lore:threshold 1.5 .
  :vague a lore:Topic ; rdfs:label "vague" ; lore:term "vague" ; lore:threshold "high" .
  :chat a lore:OrdinaryTalk ; rdfs:label "chat" ; lore:minimumRating lore:Teen ; lore:example "Hello there." .
}
:g {
  :prod a lore:Production ; rdfs:label "P" ; lore:graph :g ; lore:tenant "t" ;
      lore:rating lore:Teen ; lore:offLimits :romanse .
  :ann a lore:Character ; rdfs:label "Ann" ; lore:persona "Ann." ; lore:offLimits :nowhere, :chat .
}
"#;

#[test]
fn policy_faults_are_found() {
    let (findings, _file, _dir) = findings_for(BAD_POLICY);
    let by_code =
        |code: &str| -> Vec<&Finding> { findings.iter().filter(|f| f.code == code).collect() };

    let unknown = by_code("unknown-policy-node");
    assert_eq!(unknown.len(), 2, "{unknown:#?}");
    assert!(
        unknown
            .iter()
            .any(|f| f.subject == "urn:t:prod" && f.message.contains("romanse"))
    );
    assert!(
        unknown
            .iter()
            .any(|f| f.subject == "urn:t:ann" && f.message.contains("nowhere"))
    );

    let cycles = by_code("policy-cycle");
    assert_eq!(cycles.len(), 1, "one report per circle: {cycles:#?}");
    assert!(cycles[0].message.contains("urn:t:a") && cycles[0].message.contains("urn:t:b"));

    let contradictions = by_code("contradictory-rule");
    assert_eq!(contradictions.len(), 2, "{contradictions:#?}");
    assert!(
        contradictions
            .iter()
            .any(|f| f.subject == "urn:t:fireworks" && f.message.contains("hazard"))
    );
    assert!(
        contradictions
            .iter()
            .any(|f| f.subject == "urn:t:sip" && f.message.contains("drink"))
    );

    let unknown_rating = by_code("unknown-rating");
    assert_eq!(
        unknown_rating.len(),
        1,
        "only Casino is undefined: {unknown_rating:#?}"
    );
    assert_eq!(unknown_rating[0].subject, "urn:t:dice");

    assert_eq!(
        find(&findings, "policy-node-never-fires").subject,
        "urn:t:silent"
    );

    let subjects = |code: &str| {
        let mut subjects: Vec<&str> = by_code(code).iter().map(|f| f.subject.as_str()).collect();
        subjects.sort();
        subjects
    };
    assert_eq!(subjects("policy-threshold"), ["urn:t:loose", "urn:t:vague"]);
    // Both are topics, which similarity does not read: the threshold is noted as inert.
    assert_eq!(subjects("topic-threshold"), ["urn:t:loose", "urn:t:vague"]);

    let mut ordinary: Vec<&str> = by_code("ordinary-talk-rule")
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    ordinary.sort();
    assert_eq!(ordinary.len(), 2, "{ordinary:#?}");
    assert!(ordinary[0].contains("lore:minimumRating"), "{ordinary:#?}");
    assert!(ordinary[1].contains("lore:offLimits"), "{ordinary:#?}");
}

#[test]
fn likeness_consent_is_read_and_bad_records_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consent.trig");
    std::fs::write(
        &file,
        r#"
        @prefix lore: <https://lorekeeper.dev/ns/lore#> .
        @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
        @prefix schema: <https://schema.org/> .
        @prefix : <urn:c:> .
        :g { :p a lore:Production ; rdfs:label "P" ; lore:graph :g ; lore:rating lore:Everyone ; lore:tenant "t" .
             :a a lore:Character ; rdfs:label "Ada" ; lore:persona "Ada keeps bees." .
             :kim a schema:Person ; rdfs:label "Kim Lee" ; schema:deathDate "2030-02-30" .
             :pa a lore:Portrayal ; lore:portrays :a ; lore:performer :kim ; lore:consent :ca .
             :ca a lore:LikenessConsent ; lore:allowsUse lore:TextUse ; lore:coversProduction :p ;
                 lore:territory "Europe" ; lore:expires "soon" . }
        "#,
    )
    .unwrap();
    let (store, positions) = lore_canon::lint::load_files(&[file]).unwrap();
    let world = lore_canon::World::load(&store, "P").unwrap();
    let portrayal = world.portrayal("urn:c:a").unwrap();
    assert_eq!(portrayal.performer_name, "Kim Lee");
    assert_eq!(
        portrayal.consents[0].uses,
        [lore_canon::consent::LikenessUse::Text]
    );
    let findings = lore_canon::lint::check(&store, &positions).unwrap();
    let messages: Vec<String> = findings
        .iter()
        .filter(|f| f.code == "consent-record" || f.code == "consent-date")
        .map(|f| f.message.clone())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("'Europe'")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("'soon'")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("2030-02-30")),
        "{messages:?}"
    );
}
