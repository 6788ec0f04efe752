//! The CHARX (zip) reader: bounded, no traversal, no panic, on archives built from fuzz data.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the runs mutate whole archives (the seeds); half wrap the data as card.json, so the
    // parser behind the archive is reached too.
    if data.first().is_some_and(|b| b & 1 == 0) {
        let _ = lore_cards::read(Path::new("fuzz.charx"), data);
    } else {
        let archive = lore_cards::charx::write(&data[1.min(data.len())..], &[]);
        let _ = lore_cards::read(Path::new("fuzz.charx"), &archive);
    }
});
