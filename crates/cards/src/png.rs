//! PNG chunks: just enough of the format to find and write a card's `tEXt` chunks.
//!
//! Cards ride in `tEXt` chunks (`ccv3` for V3, `chara` for V2, each base64 of UTF-8 JSON); the
//! image itself is the character's portrait and is carried through untouched.

use std::io::Write;

/// The eight bytes every PNG file starts with.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// The largest chunk we read: card JSON with embedded books runs to megabytes, never to this.
pub const MAX_CHUNK: u32 = 64 << 20;

/// What is wrong with a PNG, at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PngError {
    /// The file does not start with the PNG signature.
    #[error("not a PNG file (no PNG signature)")]
    NotPng,
    /// The file ends inside a chunk.
    #[error("truncated PNG: chunk at byte {offset} runs past the end of the file")]
    Truncated {
        /// Where the chunk starts.
        offset: usize,
    },
    /// A chunk is longer than [`MAX_CHUNK`].
    #[error("PNG chunk {kind:?} at byte {offset} is {length} bytes, over the limit of {MAX_CHUNK}")]
    Oversized {
        /// The chunk type.
        kind: String,
        /// Where the chunk starts.
        offset: usize,
        /// Its declared length.
        length: u32,
    },
    /// A chunk's CRC does not match its contents.
    #[error("PNG chunk {kind:?} at byte {offset} fails its CRC check")]
    Crc {
        /// The chunk type.
        kind: String,
        /// Where the chunk starts.
        offset: usize,
    },
    /// A `tEXt` chunk has no keyword separator.
    #[error("tEXt chunk at byte {offset} has no NUL after its keyword")]
    Text {
        /// Where the chunk starts.
        offset: usize,
    },
    /// No `IEND` chunk: the image is incomplete.
    #[error("PNG has no IEND chunk")]
    NoEnd,
}

/// One chunk, borrowed from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// The four-letter type.
    pub kind: [u8; 4],
    /// The chunk's data.
    pub data: &'a [u8],
    /// Where the chunk starts in the file.
    pub offset: usize,
}

impl Chunk<'_> {
    /// The type as text, for messages.
    pub fn kind_str(&self) -> String {
        String::from_utf8_lossy(&self.kind).into_owned()
    }
}

/// The chunks of a PNG, checked (signature, lengths, CRCs) up to and including `IEND`.
pub fn chunks(png: &[u8]) -> Result<Vec<Chunk<'_>>, PngError> {
    let rest = png.strip_prefix(&SIGNATURE).ok_or(PngError::NotPng)?;
    let mut offset = SIGNATURE.len();
    let mut rest = rest;
    let mut out = Vec::new();
    loop {
        if rest.len() < 12 {
            return if rest.is_empty() {
                Err(PngError::NoEnd)
            } else {
                Err(PngError::Truncated { offset })
            };
        }
        let length = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        if length > MAX_CHUNK {
            return Err(PngError::Oversized {
                kind: String::from_utf8_lossy(&kind).into_owned(),
                offset,
                length,
            });
        }
        let length = length as usize;
        if rest.len() < 12 + length {
            return Err(PngError::Truncated { offset });
        }
        let data = &rest[8..8 + length];
        let crc = u32::from_be_bytes([
            rest[8 + length],
            rest[9 + length],
            rest[10 + length],
            rest[11 + length],
        ]);
        let chunk = Chunk { kind, data, offset };
        if crc != chunk_crc(&kind, data) {
            return Err(PngError::Crc {
                kind: chunk.kind_str(),
                offset,
            });
        }
        out.push(chunk);
        if &kind == b"IEND" {
            return Ok(out);
        }
        rest = &rest[12 + length..];
        offset += 12 + length;
    }
}

/// A `tEXt` chunk. The text of a card chunk is base64, so it is kept as bytes, not decoded
/// from Latin-1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChunk<'a> {
    /// The keyword (`chara`, `ccv3`, ...).
    pub keyword: String,
    /// The text after the keyword's NUL.
    pub text: &'a [u8],
    /// Where the chunk starts in the file.
    pub offset: usize,
}

/// The `tEXt` chunks of a PNG, in file order.
pub fn text_chunks(png: &[u8]) -> Result<Vec<TextChunk<'_>>, PngError> {
    let mut out = Vec::new();
    for chunk in chunks(png)? {
        if &chunk.kind != b"tEXt" {
            continue;
        }
        let nul = chunk
            .data
            .iter()
            .position(|&b| b == 0)
            .ok_or(PngError::Text {
                offset: chunk.offset,
            })?;
        // Keywords are Latin-1; the ones we look for are ASCII.
        let keyword = chunk.data[..nul].iter().map(|&b| b as char).collect();
        out.push(TextChunk {
            keyword,
            text: &chunk.data[nul + 1..],
            offset: chunk.offset,
        });
    }
    Ok(out)
}

/// The `tEXt` keywords that carry cards.
pub const CARD_KEYWORDS: [&str; 2] = ["chara", "ccv3"];

/// `png` without its card chunks and with `texts` written just before `IEND`, in order; every
/// other chunk is copied byte for byte.
pub fn with_card_chunks(png: &[u8], texts: &[(&str, &[u8])]) -> Result<Vec<u8>, PngError> {
    let chunks = chunks(png)?;
    let mut out =
        Vec::with_capacity(png.len() + texts.iter().map(|t| t.1.len() + 32).sum::<usize>());
    out.extend_from_slice(&SIGNATURE);
    for chunk in chunks {
        if &chunk.kind == b"IEND" {
            for (keyword, text) in texts {
                let mut data = Vec::with_capacity(keyword.len() + 1 + text.len());
                data.extend_from_slice(keyword.as_bytes());
                data.push(0);
                data.extend_from_slice(text);
                write_chunk(&mut out, b"tEXt", &data);
            }
        } else if &chunk.kind == b"tEXt" {
            let keyword = chunk.data.split(|&b| b == 0).next().unwrap_or_default();
            if CARD_KEYWORDS
                .iter()
                .chain(texts.iter().map(|(k, _)| k))
                .any(|k| k.as_bytes() == keyword)
            {
                continue;
            }
        }
        write_chunk(&mut out, &chunk.kind, chunk.data);
    }
    Ok(out)
}

/// A plain 256×256 portrait for a character that has none: the card formats need an image.
pub fn placeholder() -> Vec<u8> {
    const SIDE: u32 = 256;
    let mut out = SIGNATURE.to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&SIDE.to_be_bytes());
    header.extend_from_slice(&SIDE.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    write_chunk(&mut out, b"IHDR", &header);
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row: Vec<u8> = std::iter::once(0)
        .chain((0..SIDE).flat_map(|_| [0x3a, 0x3f, 0x4a]))
        .collect();
    for _ in 0..SIDE {
        encoder.write_all(&row).expect("writing to memory");
    }
    let pixels = encoder.finish().expect("writing to memory");
    write_chunk(&mut out, b"IDAT", &pixels);
    write_chunk(&mut out, b"IEND", &[]);
    out
}

fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let length = u32::try_from(data.len()).expect("chunks we write are under 4 GiB");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&chunk_crc(kind, data).to_be_bytes());
}

fn chunk_crc(kind: &[u8; 4], data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(kind);
    hasher.update(data);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_is_a_valid_png_and_text_chunks_round_trip() {
        let png = placeholder();
        let kinds: Vec<_> = chunks(&png).unwrap().iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [*b"IHDR", *b"IDAT", *b"IEND"]);
        let with = with_card_chunks(&png, &[("chara", b"djI="), ("ccv3", b"djM=")]).unwrap();
        let texts = text_chunks(&with).unwrap();
        assert_eq!(texts.len(), 2);
        assert_eq!(
            (texts[0].keyword.as_str(), texts[0].text),
            ("chara", &b"djI="[..])
        );
        // Writing again replaces, never duplicates.
        let again = with_card_chunks(&with, &[("ccv3", b"eA=="), ("other", b"y")]).unwrap();
        let texts = text_chunks(&again).unwrap();
        assert_eq!(texts.len(), 2);
        assert_eq!(texts[0].text, b"eA==");
        assert_eq!(
            with_card_chunks(&with, &[]).unwrap(),
            png,
            "stripping restores the image"
        );
    }

    #[test]
    fn damage_is_named_with_its_offset() {
        let png = placeholder();
        assert_eq!(chunks(b"GIF89a"), Err(PngError::NotPng));
        assert_eq!(chunks(&png[..40]), Err(PngError::Truncated { offset: 33 }));
        let mut bad = png.clone();
        bad[20] ^= 1; // inside IHDR's data
        assert!(matches!(chunks(&bad), Err(PngError::Crc { offset: 8, .. })));
        let mut huge = png.clone();
        huge[33..37].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            chunks(&huge),
            Err(PngError::Oversized { offset: 33, .. })
        ));
        assert_eq!(chunks(&png[..png.len() - 12]), Err(PngError::NoEnd));
    }
}
