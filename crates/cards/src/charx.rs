//! CHARX: a zip archive with `card.json` at its root and the card's assets beside it.
//!
//! Archives come from strangers, so reading is bounded: entry count, each entry's size and the
//! total are capped by the bytes actually inflated (declared sizes can lie), and an entry whose
//! name would escape a folder (`..`, an absolute path, a drive) is refused by name.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;

use crate::error::CardError;

/// A file carried with a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetFile {
    /// Its path in the CHARX archive.
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// At most this many entries in an archive.
pub const MAX_ENTRIES: usize = 4096;
/// At most this many bytes inflated from one entry.
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;
/// At most this many bytes inflated from the whole archive.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;

/// The card JSON and the other files of a CHARX archive.
pub fn read(file: &Path, bytes: &[u8]) -> Result<(Vec<u8>, Vec<AssetFile>), CardError> {
    let error = |at: Option<String>, message: String| CardError::new(file, at, message);
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| error(None, format!("not a readable CHARX (zip) archive: {e}")))?;
    if archive.len() > MAX_ENTRIES {
        return Err(error(
            None,
            format!(
                "CHARX holds {} entries, over the limit of {MAX_ENTRIES}",
                archive.len()
            ),
        ));
    }
    let mut card = None;
    let mut files = Vec::new();
    let mut total = 0u64;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| error(Some(format!("CHARX entry {index}")), e.to_string()))?;
        let name = entry.name().to_owned();
        let at = Some(format!("CHARX entry {name:?}"));
        if entry.is_dir() {
            continue;
        }
        let escapes = entry.enclosed_name().is_none()
            || name.starts_with('/')
            || name.contains('\\')
            || name.as_bytes().get(1) == Some(&b':')
            || name.split('/').any(|p| p == "..");
        if escapes {
            return Err(error(
                at,
                "path escapes the archive (absolute, drive or `..`); refused".into(),
            ));
        }
        let mut data = Vec::new();
        let read = (&mut entry)
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| error(at.clone(), format!("cannot inflate: {e}")))?;
        if read as u64 > MAX_ENTRY_BYTES {
            return Err(error(
                at,
                format!("inflates past {MAX_ENTRY_BYTES} bytes; refused as a zip bomb"),
            ));
        }
        total += read as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(error(
                at,
                format!("the archive inflates past {MAX_TOTAL_BYTES} bytes; refused as a zip bomb"),
            ));
        }
        if name == "card.json" {
            card = Some(data);
        } else {
            files.push(AssetFile {
                path: name,
                bytes: data,
            });
        }
    }
    let card = card.ok_or_else(|| error(None, "CHARX has no card.json at its root".into()))?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((card, files))
}

/// A CHARX archive of `card_json` and `files`.
pub fn write(card_json: &[u8], files: &[AssetFile]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    // Assets are mostly compressed images already.
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let result: zip::result::ZipResult<()> = (|| {
        zip.start_file("card.json", deflated)?;
        zip.write_all(card_json)?;
        for file in files {
            zip.start_file(file.path.as_str(), stored)?;
            zip.write_all(&file.bytes)?;
        }
        Ok(())
    })();
    result.expect("writing a zip to memory");
    zip.finish().expect("writing a zip to memory").into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            zip.start_file(*name, SimpleFileOptions::default()).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn reads_what_it_writes() {
        let files = vec![AssetFile {
            path: "assets/icon/images/main.png".into(),
            bytes: vec![1, 2, 3],
        }];
        let (card, read_files) = read(Path::new("a.charx"), &write(b"{}", &files)).unwrap();
        assert_eq!(card, b"{}");
        assert_eq!(read_files, files);
    }

    #[test]
    fn traversal_bombs_and_missing_cards_are_refused_by_name() {
        let file = Path::new("evil.charx");
        for name in [
            "../../etc/passwd",
            "/etc/passwd",
            "assets/../../x",
            "a\\..\\b",
        ] {
            let err = read(file, &archive(&[("card.json", b"{}"), (name, b"x")])).unwrap_err();
            assert!(err.to_string().contains("escapes"), "{name}: {err}");
            assert!(err.to_string().contains("evil.charx"));
        }
        let zeros = vec![0u8; (MAX_ENTRY_BYTES + 1) as usize];
        let bomb = {
            let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
            let options =
                SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            zip.start_file("card.json", options).unwrap();
            zip.write_all(&zeros).unwrap();
            zip.finish().unwrap().into_inner()
        };
        assert!(
            bomb.len() < 1 << 20,
            "the bomb should be small: {}",
            bomb.len()
        );
        assert!(read(file, &bomb).unwrap_err().message.contains("zip bomb"));
        assert!(
            read(file, &archive(&[("x.json", b"{}")]))
                .unwrap_err()
                .message
                .contains("no card.json")
        );
        assert!(
            read(file, b"PK\x03\x04garbage")
                .unwrap_err()
                .message
                .contains("not a readable")
        );
    }
}
