//! What the embedding layer keeps between runs in a cache folder: the embeddings of policy
//! examples (`encoder-examples.bin`), each policy's tuning of the encoder
//! (`encoder-tunings.bin`: the tuned layers and the policy's texts through them) and the topic
//! heads trained on it (`topic-heads.bin`), so that a process does not embed ~2,000
//! examples, tune the encoder and fit a policy's heads again before its first decision.
//!
//! The files only save time. Each is valid for one encoder, known by its embeddings of a few
//! fixed sentences; tunings also for one way of tuning ([`tune::trainer_fingerprint`]), and
//! heads for both and one way of training them ([`topics::trainer_fingerprint`]).
//! A damaged file, or one written for another encoder, is ignored with a warning and written
//! again; writes replace a file whole. Neither grows without end: the heads file keeps the
//! last [`HEADS_KEPT`] policies, and an example no process has used for
//! [`EXAMPLE_WRITES_KEPT`] writes of the example file is dropped (the file is written when a
//! policy's texts had to be embedded, so what is dropped belongs to policies edited since).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lore_canon::cache::{FNV_START, fnv, write_replacing};

use crate::encoder::{Encoder, EncoderError};
use crate::head::Head;
use crate::layer::{LAYER_VALUES, LayerParameters};
use crate::topics::{self, TopicHeads};
use crate::tune;

/// The first bytes of an example cache file.
const EXAMPLES_MAGIC: &[u8; 8] = b"LOREEMB2";

/// How many writes of the example file an example survives unused.
const EXAMPLE_WRITES_KEPT: u8 = 8;

/// The first bytes of a topic-heads cache file.
const HEADS_MAGIC: &[u8; 8] = b"LOREHDS1";

/// The first bytes of a tunings cache file.
const TUNINGS_MAGIC: &[u8; 8] = b"LORETUN1";

/// How many policies' tunings the tunings file keeps, the most recent: each is ~17 MB (two
/// layers in `f32` and the embeddings of ~2,000 texts).
const TUNINGS_KEPT: usize = 4;

/// How many policies' heads the heads file keeps, the most recently trained: a server loads a
/// few tenants' policies, and each edit of a policy is another one.
const HEADS_KEPT: usize = 8;

/// Sentences whose embeddings fingerprint an encoder: short, medium and long, so that every
/// path of a pass (one row or pairs of rows a thread, one window) is taken.
const FINGERPRINT_PROBES: [&str; 3] = [
    "Hello there.",
    "The lamplighter walked along the quay at dusk, lighting every lamp by the river.",
    "Will you tell me, before the fog comes in off the marsh tonight, where the ferry \
     stops, who keeps the lighthouse, and whether the old chapel bell still rings at \
     midnight when nobody is pulling its rope?",
];

/// Policy examples' embeddings, by the text the encoder was handed.
pub(crate) type Examples = HashMap<String, Arc<[f32]>>;

/// An example as the file keeps it: its reading, its embedding, and how many writes of the
/// file it has gone unused.
type StoredExample = (String, Arc<[f32]>, u8);

/// The cache files of one folder, for one encoder.
pub(crate) struct Cache {
    examples_file: PathBuf,
    heads_file: PathBuf,
    tunings_file: PathBuf,
    /// What the encoder makes of [`FINGERPRINT_PROBES`], hashed: a file written by another
    /// encoder, or by arithmetic that gives other bits, has another fingerprint.
    encoder: u64,
    /// The encoder's and the tuner's fingerprints together: tunings are kept under this and
    /// their policy's fingerprint.
    tuning_salt: u64,
    /// The same and the heads trainer's fingerprint: heads are kept under this and their
    /// policy's fingerprint.
    heads_salt: u64,
    /// The examples read from the file and not used since, with the number of writes they
    /// had gone unused before.
    idle: Mutex<HashMap<String, u8>>,
    /// The heads the heads file holds, by key, the most recently trained first.
    stored_heads: Mutex<Vec<(u64, Arc<TopicHeads>)>>,
}

impl Cache {
    /// Opens the cache in `dir` for `encoder` (a few encoder passes, to fingerprint it), and
    /// returns the examples' embeddings it holds (each to be reported by [`Cache::used`] when
    /// it is).
    pub(crate) fn open(dir: &Path, encoder: &Encoder) -> Result<(Cache, Examples), EncoderError> {
        let mut fingerprint = FNV_START;
        for probe in FINGERPRINT_PROBES {
            for window in encoder.embed(probe)? {
                for value in window {
                    fingerprint = fnv(fingerprint, &value.to_le_bytes());
                }
            }
        }
        let examples_file = dir.join("encoder-examples.bin");
        let heads_file = dir.join("topic-heads.bin");
        let stored: Vec<StoredExample> =
            read_or_warn(&examples_file, |bytes| read_examples(&bytes, fingerprint));
        let heads = read_or_warn(&heads_file, |bytes| read_heads(&bytes));
        let idle = stored.iter().map(|(r, _, i)| (r.clone(), *i)).collect();
        let examples = stored.into_iter().map(|(r, v, _)| (r, v)).collect();
        let tuning_salt = fnv(fingerprint, &tune::trainer_fingerprint().to_le_bytes());
        let cache = Cache {
            examples_file,
            heads_file,
            tunings_file: dir.join("encoder-tunings.bin"),
            encoder: fingerprint,
            tuning_salt,
            heads_salt: fnv(tuning_salt, &topics::trainer_fingerprint().to_le_bytes()),
            idle: Mutex::new(idle),
            stored_heads: Mutex::new(heads),
        };
        Ok((cache, examples))
    }

    /// Notes that the example read as `reading` was used by this process.
    pub(crate) fn used(&self, reading: &str) {
        lock(&self.idle).remove(reading);
    }

    /// Writes `examples` to the example file: those used by this process as fresh, the others
    /// a write older, and drops from both those unused for more than [`EXAMPLE_WRITES_KEPT`]
    /// writes. A failure is logged, not returned: the cache only saves time.
    pub(crate) fn save_examples(&self, examples: &Mutex<Examples>) {
        let bytes = {
            let mut idle = lock(&self.idle);
            let mut examples = lock(examples);
            for writes in idle.values_mut() {
                *writes = writes.saturating_add(1);
            }
            idle.retain(|reading, writes| {
                let keep = *writes <= EXAMPLE_WRITES_KEPT;
                if !keep {
                    examples.remove(reading);
                }
                keep
            });
            write_examples(&examples, &idle, self.encoder)
        };
        save(&self.examples_file, &bytes);
    }

    /// The heads kept for the policy with fingerprint `policy`, if any.
    pub(crate) fn heads(&self, policy: u64) -> Option<Arc<TopicHeads>> {
        let key = self.heads_key(policy);
        lock(&self.stored_heads)
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, heads)| heads.clone())
    }

    /// Keeps `heads`, just trained for the policy with fingerprint `policy`, in the heads file,
    /// in front of the others. A failure is logged, not returned.
    pub(crate) fn save_heads(&self, policy: u64, heads: &Arc<TopicHeads>) {
        let key = self.heads_key(policy);
        let mut stored = lock(&self.stored_heads);
        stored.retain(|(k, _)| *k != key);
        stored.insert(0, (key, heads.clone()));
        stored.truncate(HEADS_KEPT);
        save(&self.heads_file, &write_heads(&stored));
    }

    fn heads_key(&self, policy: u64) -> u64 {
        fnv(self.heads_salt, &policy.to_le_bytes())
    }

    /// The tuned layers and texts' embeddings kept for the policy with fingerprint `policy`,
    /// if any. The file is read now, not at opening: it is large, and read once per policy.
    pub(crate) fn tuning(&self, policy: u64) -> Option<StoredTuning> {
        let key = fnv(self.tuning_salt, &policy.to_le_bytes());
        let bytes = read_or_warn(&self.tunings_file, Ok);
        let found = tuning_entries(&bytes)
            .map(|entries| entries.into_iter().find(|(k, _)| *k == key))
            .and_then(|entry| entry.map(|(_, body)| read_tuning(body)).transpose());
        match found {
            Ok(tuning) => tuning,
            Err(why) => {
                tracing::warn!(file = %self.tunings_file.display(), "ignoring a tuning: {why}");
                None
            }
        }
    }

    /// Keeps a tuning just made for the policy with fingerprint `policy` in the tunings file,
    /// in front of the others (at most [`TUNINGS_KEPT`] in all). A failure is logged.
    pub(crate) fn save_tuning(
        &self,
        policy: u64,
        layers: &[LayerParameters],
        vectors: &[Arc<[f32]>],
    ) {
        let key = fnv(self.tuning_salt, &policy.to_le_bytes());
        let old = read_or_warn(&self.tunings_file, Ok);
        let kept = tuning_entries(&old).unwrap_or_default();
        let mut out = TUNINGS_MAGIC.to_vec();
        put_tuning(&mut out, key, &write_tuning(layers, vectors));
        for (k, body) in kept
            .into_iter()
            .filter(|(k, _)| *k != key)
            .take(TUNINGS_KEPT - 1)
        {
            put_tuning(&mut out, k, body);
        }
        save(&self.tunings_file, &out);
    }
}

/// A tuning as the file keeps it: the tuned layers, and the embeddings of the policy's texts.
pub(crate) type StoredTuning = (Vec<LayerParameters>, Vec<Arc<[f32]>>);

/// One entry of a tunings file: its key, the length of its body, the body.
fn put_tuning(out: &mut Vec<u8>, key: u64, body: &[u8]) {
    out.extend(key.to_le_bytes());
    out.extend((body.len() as u64).to_le_bytes());
    out.extend(body);
}

/// The entries of a tunings file (empty for no file), each key with its body, or what is wrong.
fn tuning_entries(bytes: &[u8]) -> Result<Vec<(u64, &[u8])>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut reader = Reader::new(bytes, TUNINGS_MAGIC)?;
    let mut entries = Vec::new();
    while !reader.is_done() {
        let key = reader.u64()?;
        let length = usize::try_from(reader.u64()?).map_err(|e| e.to_string())?;
        entries.push((key, reader.slice(length)?));
    }
    Ok(entries)
}

/// A tuning's body: how many layers and each one's values, then how many texts and each
/// one's embedding (each list of values as [`put_floats`] writes it, with no text).
fn write_tuning(layers: &[LayerParameters], vectors: &[Arc<[f32]>]) -> Vec<u8> {
    let mut out = Vec::new();
    put_len(&mut out, layers.len());
    for layer in layers {
        put_floats(&mut out, &layer.values, b"");
    }
    put_len(&mut out, vectors.len());
    for vector in vectors {
        put_floats(&mut out, vector, b"");
    }
    out
}

fn read_tuning(body: &[u8]) -> Result<StoredTuning, String> {
    let mut reader = Reader {
        rest: body,
        total: body.len(),
    };
    let layers = (0..reader.len()?)
        .map(|_| {
            let (_, values) = reader.floats(0)?;
            if values.len() != LAYER_VALUES {
                return Err(format!("a layer of {} values", values.len()));
            }
            Ok(LayerParameters { values })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let vectors = (0..reader.len()?)
        .map(|_| Ok(reader.floats(0)?.1.into()))
        .collect::<Result<Vec<_>, String>>()?;
    Ok((layers, vectors))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What `read` makes of `file`; empty, with a warning, if the file is unreadable or damaged
/// (and quietly if there is none yet).
fn read_or_warn<T: Default>(file: &Path, read: impl FnOnce(Vec<u8>) -> Result<T, String>) -> T {
    let why = match std::fs::read(file) {
        Ok(bytes) => match read(bytes) {
            Ok(read) => return read,
            Err(why) => why,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return T::default(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(file = %file.display(), "ignoring the cache file: {why}");
    T::default()
}

fn save(file: &Path, bytes: &[u8]) {
    if let Err(e) = write_replacing(file, bytes) {
        tracing::warn!(file = %file.display(), "could not write the cache file: {e}");
    }
}

/// An example file: [`EXAMPLES_MAGIC`], the encoder's fingerprint, then per example the length
/// of its reading, its dimension, the reading (UTF-8), its values, and how many writes it has
/// gone unused (one byte; `idle` has those above 0), all little-endian.
fn write_examples(examples: &Examples, idle: &HashMap<String, u8>, fingerprint: u64) -> Vec<u8> {
    let mut out = EXAMPLES_MAGIC.to_vec();
    out.extend(fingerprint.to_le_bytes());
    let mut sorted: Vec<_> = examples.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (reading, vector) in sorted {
        put_len(&mut out, reading.len());
        put_floats(&mut out, vector, reading.as_bytes());
        out.push(idle.get(reading).copied().unwrap_or(0));
    }
    out
}

/// The examples of an example file written for the encoder with `fingerprint`, each with how
/// many writes it has gone unused, or what is wrong.
fn read_examples(bytes: &[u8], fingerprint: u64) -> Result<Vec<StoredExample>, String> {
    let mut reader = Reader::new(bytes, EXAMPLES_MAGIC)?;
    if reader.u64()? != fingerprint {
        return Err("written for another encoder".into());
    }
    let mut examples = Vec::new();
    while !reader.is_done() {
        let reading_len = reader.len()?;
        let (reading, vector) = reader.floats(reading_len)?;
        let [idle] = reader.array()?;
        examples.push((reading, vector.into(), idle));
    }
    Ok(examples)
}

/// A heads file: [`HEADS_MAGIC`], then per policy its key and how many heads, and per head the
/// length of its topic's IRI, its dimension, the IRI, its weights and its bias.
fn write_heads(policies: &[(u64, Arc<TopicHeads>)]) -> Vec<u8> {
    let mut out = HEADS_MAGIC.to_vec();
    for (key, heads) in policies {
        out.extend(key.to_le_bytes());
        put_len(&mut out, heads.len());
        let mut sorted: Vec<_> = heads.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (iri, head) in sorted {
            put_len(&mut out, iri.len());
            put_floats(&mut out, &head.weights, iri.as_bytes());
            out.extend(head.bias.to_le_bytes());
        }
    }
    out
}

/// The policies' heads of a heads file, or what is wrong.
fn read_heads(bytes: &[u8]) -> Result<Vec<(u64, Arc<TopicHeads>)>, String> {
    let mut reader = Reader::new(bytes, HEADS_MAGIC)?;
    let mut policies = Vec::new();
    while !reader.is_done() {
        let key = reader.u64()?;
        let count = reader.len()?;
        let mut heads = TopicHeads::new();
        for _ in 0..count {
            let iri_len = reader.len()?;
            let (iri, weights) = reader.floats(iri_len)?;
            let bias = f32::from_le_bytes(reader.array()?);
            heads.insert(iri, Head { weights, bias });
        }
        policies.push((key, Arc::new(heads)));
    }
    Ok(policies)
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend(u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

/// A vector's dimension, the text it belongs to, then its values.
fn put_floats(out: &mut Vec<u8>, values: &[f32], text: &[u8]) {
    put_len(out, values.len());
    out.extend(text);
    for value in values {
        out.extend(value.to_le_bytes());
    }
}

/// Reads a cache file front to back; every error says where the file ends too soon.
struct Reader<'a> {
    rest: &'a [u8],
    total: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], magic: &[u8; 8]) -> Result<Reader<'a>, String> {
        let rest = bytes
            .strip_prefix(magic)
            .ok_or("not this kind of cache file (its first bytes are wrong)")?;
        Ok(Reader {
            rest,
            total: bytes.len(),
        })
    }

    fn is_done(&self) -> bool {
        self.rest.is_empty()
    }

    fn slice(&mut self, n: usize) -> Result<&'a [u8], String> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| format!("cut short at byte {}", self.total - self.rest.len()))?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let head = self.slice(N)?;
        head.try_into().map_err(|_| "cut short".to_owned())
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn len(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    /// What [`put_floats`] wrote, for a text of `text_len` bytes.
    fn floats(&mut self, text_len: usize) -> Result<(String, Vec<f32>), String> {
        let dimension = self.len()?;
        let text = std::str::from_utf8(self.slice(text_len)?)
            .map_err(|e| format!("a text is not UTF-8: {e}"))?
            .to_owned();
        let values = self
            .slice(dimension.saturating_mul(4))?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((text, values))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test should fail loudly")]

    use super::*;

    fn heads() -> Vec<(u64, Arc<TopicHeads>)> {
        let head = |w: f32| Head {
            weights: vec![w, -w, 0.5],
            bias: -w,
        };
        let one: TopicHeads = [("urn:a".to_owned(), head(1.0)), ("urn:b".into(), head(2.0))]
            .into_iter()
            .collect();
        let two: TopicHeads = [("urn:c".to_owned(), head(3.0))].into_iter().collect();
        vec![(7, Arc::new(one)), (9, Arc::new(two))]
    }

    #[test]
    fn heads_read_back_as_written_and_a_cut_file_is_an_error() {
        let written = write_heads(&heads());
        let read = read_heads(&written).unwrap();
        assert_eq!(read.len(), 2);
        for ((k, a), (l, b)) in read.iter().zip(heads().iter()) {
            assert_eq!(k, l);
            assert_eq!(**a, **b);
        }
        let cut = read_heads(&written[..written.len() - 2]).unwrap_err();
        assert!(cut.starts_with("cut short at byte"), "{cut}");
        assert!(
            read_heads(b"LOREEMB1").is_err(),
            "an example file is not a heads file"
        );
    }

    #[test]
    fn examples_read_back_as_written_for_their_encoder_only() {
        let vector: Arc<[f32]> = Arc::from(&[0.25f32, -1.0][..]);
        let examples: Examples = [
            ("hello".to_owned(), vector.clone()),
            ("bye".into(), vector.clone()),
        ]
        .into_iter()
        .collect();
        let idle = [("bye".to_owned(), 3)].into_iter().collect();
        let written = write_examples(&examples, &idle, 42);
        assert_eq!(
            read_examples(&written, 42).unwrap(),
            [
                ("bye".to_owned(), vector.clone(), 3),
                ("hello".into(), vector, 0)
            ]
        );
        assert_eq!(
            read_examples(&written, 43).unwrap_err(),
            "written for another encoder"
        );
    }
}
