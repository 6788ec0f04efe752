//! World snapshots: a second load reads the snapshot, and any import makes it stale.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::path::PathBuf;

use lore_canon::{CanonStore, World};

fn facts(world: &World) -> Vec<(String, String)> {
    world
        .facts
        .iter()
        .map(|f| (f.iri.clone(), f.statement.clone()))
        .collect()
}

fn snapshots(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "world")
        })
        .count()
    })
}

#[test]
fn snapshots_are_reused_until_canon_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("worlds");
    let store = CanonStore::open(&dir.path().join("store")).unwrap();
    let world_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../world/brindlemoor.trig");
    store
        .import(
            &[world_file],
            lore_canon::CommitMeta::new("test", "import"),
            |_| (),
        )
        .unwrap();

    let fresh = World::load_cached(&store, "lanterns", &cache).unwrap();
    assert_eq!(snapshots(&cache), 1);
    let cached = World::load_cached(&store, "lanterns", &cache).unwrap();
    assert_eq!(facts(&fresh), facts(&cached));
    assert_eq!(
        cached.entity("https://lorekeeper.dev/worlds/brindlemoor#pip"),
        fresh.entity("https://lorekeeper.dev/worlds/brindlemoor#pip")
    );
    assert!(
        cached.character("Pip").is_some(),
        "the name index is rebuilt after reading a snapshot"
    );

    let more = dir.path().join("more.trig");
    std::fs::write(
        &more,
        r#"<https://lorekeeper.dev/worlds/brindlemoor/graph/lanterns> {
             <urn:new-fact> a <https://lorekeeper.dev/ns/lore#Fact> ;
                <https://lorekeeper.dev/ns/lore#statement> "The river froze." ;
                <https://lorekeeper.dev/ns/lore#commonKnowledge> true . }"#,
    )
    .unwrap();
    store
        .import(
            &[more],
            lore_canon::CommitMeta::new("test", "import"),
            |_| (),
        )
        .unwrap();
    let after = World::load_cached(&store, "lanterns", &cache).unwrap();
    assert!(
        after.facts.iter().any(|f| f.iri == "urn:new-fact"),
        "a stale snapshot was used"
    );
    assert_eq!(snapshots(&cache), 2);
}

#[test]
fn a_corrupt_snapshot_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("worlds");
    let store = CanonStore::open(&dir.path().join("store")).unwrap();
    let world_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../world/brindlemoor.trig");
    store
        .import(
            &[world_file],
            lore_canon::CommitMeta::new("test", "import"),
            |_| (),
        )
        .unwrap();
    let fresh = World::load_cached(&store, "nocturne", &cache).unwrap();
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let rebuilt = World::load_cached(&store, "nocturne", &cache).unwrap();
    assert_eq!(facts(&fresh), facts(&rebuilt));
}
