//! The sample world, for the quest tests.

use std::path::Path;

use lore_canon::{CanonStore, World};

/// A production of the sample world, read from an in-memory store.
pub fn world(production: &str) -> World {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../world");
    let store = CanonStore::in_memory().expect("an in-memory store");
    store
        .import(
            &[root.join("policy.trig"), root.join("brindlemoor.trig")],
            lore_canon::CommitMeta::new("test", "import"),
            |_| (),
        )
        .expect("the sample world imports");
    World::load(&store, production).expect("a production of the sample world")
}
