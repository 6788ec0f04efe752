//! Provenance: a record of what made an artefact, signed with Ed25519.
//!
//! The signature covers the record's exact JSON text, carried as a string in the envelope
//! (as JWS does), so a verifier never depends on re-serialising the record the same way.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keyring::{KeySettings, KeyState, Ring, Stored};
use crate::watermark::hex;
use crate::{MarkError, WatermarkSettings};

/// The C2PA action every record states: the artefact was made here, not edited.
pub const ACTION_CREATED: &str = "c2pa.created";
/// IPTC digital source type of text a trained model generated.
pub const TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";
/// IPTC digital source type of text chosen by the engine without a model (a scripted
/// deflection or refusal).
pub const ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia";

/// IPTC digital source type of a mix of human-written and model-generated text (a
/// transcript of a conversation).
pub const COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia";
/// IPTC digital source type of text made of synthetic parts of several kinds (generated
/// replies beside scripted ones).
pub const COMPOSITE_SYNTHETIC: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeSynthetic";

/// How the tokens were chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Sampling temperature.
    pub temperature: f32,
    /// Top-k (0: none).
    pub top_k: usize,
    /// Top-p.
    pub top_p: f32,
    /// Repetition penalty.
    pub repeat_penalty: f32,
    /// Random seed.
    pub seed: u64,
    /// Most tokens.
    pub max_tokens: usize,
}

/// What made one artefact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `reply`, `quest` or `export`.
    pub artefact: String,
    /// SHA-256 of the artefact's UTF-8 bytes, hex.
    pub content_sha256: String,
    /// `lorekeeper/VERSION`.
    pub engine: String,
    /// `embedded` or `openai`.
    pub backend: String,
    /// The model's name or path.
    pub model: String,
    /// SHA-256 of the model file, when the engine runs it.
    pub model_sha256: Option<String>,
    /// Sampling settings, when the engine sampled.
    pub sampling: Option<Sampling>,
    /// The watermark, or `None`: the backend chose the tokens, or no model wrote the text.
    pub watermark: Option<WatermarkSettings>,
    /// Fingerprint of the canon the artefact was grounded in.
    pub canon_revision: String,
    /// SHA-256 of the prompt (the conversation as a transcript), hex; `None` when no model
    /// was prompted.
    pub prompt_sha256: Option<String>,
    /// The production's IRI.
    pub production: String,
    /// The speaking character's IRI.
    pub character: String,
    /// The session, when there is one.
    pub session: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Always [`ACTION_CREATED`].
    pub action: String,
    /// An IPTC digital source type: [`TRAINED_ALGORITHMIC_MEDIA`] or [`ALGORITHMIC_MEDIA`]
    /// for a reply; an export may be composite.
    pub digital_source_type: String,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex SHA-256 of a file's bytes, read in pieces (model files run to gigabytes).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buffer)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

/// A signed record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedRecord {
    /// The record's JSON text, exactly as signed.
    pub payload: String,
    /// Always `Ed25519`.
    pub alg: String,
    /// The signing key's id.
    pub key_id: String,
    /// Base64 of the 64-byte signature over `payload`'s bytes.
    pub signature: String,
}

impl SignedRecord {
    /// The record, read without checking its signature: for a signer vouching for records it
    /// holds (an export's parts); verifiers use [`verify_record`].
    pub fn unverified_record(&self) -> Option<Provenance> {
        serde_json::from_str(&self.payload).ok()
    }
}

/// A key that signs records.
#[derive(Clone)]
pub struct Signer {
    id: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A public key, as the server publishes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicKey {
    /// The key's id.
    pub id: String,
    /// Always `Ed25519`.
    pub alg: String,
    /// Base64 of the 32-byte public key.
    pub public_key: String,
    /// Active or retired.
    pub state: KeyState,
}

impl Signer {
    fn from_secret(secret: [u8; 32]) -> Signer {
        let key = SigningKey::from_bytes(&secret);
        let id = format!("sig-{}", hex(&key.verifying_key().as_bytes()[..6]));
        Signer { id, key }
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Signs `record`.
    pub fn sign(&self, record: &Provenance) -> SignedRecord {
        let payload = serde_json::to_string(record).expect("records serialise");
        let signature = self.key.sign(payload.as_bytes());
        SignedRecord {
            payload,
            alg: "Ed25519".into(),
            key_id: self.id.clone(),
            signature: BASE64.encode(signature.to_bytes()),
        }
    }

    fn public(&self, state: KeyState) -> PublicKey {
        PublicKey {
            id: self.id.clone(),
            alg: "Ed25519".into(),
            public_key: BASE64.encode(self.key.verifying_key().as_bytes()),
            state,
        }
    }
}

/// Why a record did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// No known key has the record's key id.
    #[error("signed by unknown key {0:?}")]
    UnknownKey(String),
    /// The envelope is malformed.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The signature does not match the payload.
    #[error("the signature does not match the record (it was altered, or signed by another key)")]
    BadSignature,
    /// The record is genuine but describes other content.
    #[error("the record is for other content: it hashes to {expected}, this text to {actual}")]
    ContentMismatch {
        /// The hash in the record.
        expected: String,
        /// The hash of the content given.
        actual: String,
    },
}

/// Checks `signed` against `keys` and, when `content` is given, that it is what the record
/// describes. Returns the record.
pub fn verify_record(
    signed: &SignedRecord,
    keys: &[PublicKey],
    content: Option<&[u8]>,
) -> Result<Provenance, RecordError> {
    if signed.alg != "Ed25519" {
        return Err(RecordError::Malformed(format!(
            "alg {:?}, expected Ed25519",
            signed.alg
        )));
    }
    let key = keys
        .iter()
        .find(|k| k.id == signed.key_id)
        .ok_or_else(|| RecordError::UnknownKey(signed.key_id.clone()))?;
    let public: [u8; 32] = BASE64
        .decode(&key.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            RecordError::Malformed(format!("public key {:?} is not 32 bytes", key.id))
        })?;
    let public = VerifyingKey::from_bytes(&public)
        .map_err(|_| RecordError::Malformed(format!("public key {:?} is invalid", key.id)))?;
    let signature: [u8; 64] = BASE64
        .decode(&signed.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| RecordError::Malformed("signature is not base64 of 64 bytes".into()))?;
    public
        .verify_strict(
            signed.payload.as_bytes(),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| RecordError::BadSignature)?;
    let record: Provenance = serde_json::from_str(&signed.payload)
        .map_err(|e| RecordError::Malformed(format!("payload: {e}")))?;
    if let Some(content) = content {
        let actual = sha256_hex(content);
        if actual != record.content_sha256 {
            return Err(RecordError::ContentMismatch {
                expected: record.content_sha256,
                actual,
            });
        }
    }
    Ok(record)
}

/// A signing key has no settings beyond its secret (always Ed25519).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ed25519 {}

impl KeySettings for Ed25519 {
    type Material = Signer;

    fn material(&self, secret: [u8; 32], id: &str) -> Result<Signer, String> {
        let signer = Signer::from_secret(secret);
        if signer.id != id {
            return Err(format!("secret belongs to id {:?}", signer.id));
        }
        Ok(signer)
    }
}

/// The provenance signing keys of one installation: `signing-keys.json`.
pub type SigningKeys = Ring<Ed25519>;

impl Ring<Ed25519> {
    /// The signing keys in `dir`.
    pub fn open_signing(dir: &Path) -> Result<SigningKeys, MarkError> {
        Ring::open(dir, "signing-keys.json")
    }

    /// Makes a key; it signs from now on.
    pub fn create(&mut self) -> Result<&Stored<Ed25519>, MarkError> {
        let secret: [u8; 32] = rand::random();
        let id = Signer::from_secret(secret).id;
        self.push(id, &secret, Ed25519 {})
    }

    /// The current signer, making one if there is none.
    pub fn current_or_create(&mut self) -> Result<Signer, MarkError> {
        if self.current().is_none() {
            self.create()?;
        }
        Ok(self.current().expect("just made").clone())
    }

    /// Every key's public half, for publishing and verifying.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.entries()
            .iter()
            .zip(self.materials())
            .map(|(e, s)| s.public(e.state))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plausible record of `content`, for tests.
    pub(crate) fn record(content: &str) -> Provenance {
        Provenance {
            artefact: "reply".into(),
            content_sha256: sha256_hex(content.as_bytes()),
            engine: "lorekeeper/test".into(),
            backend: "embedded".into(),
            model: "m.gguf".into(),
            model_sha256: Some("ab".repeat(32)),
            sampling: None,
            watermark: None,
            canon_revision: "r1".into(),
            prompt_sha256: Some(sha256_hex(b"prompt")),
            production: "urn:p".into(),
            character: "urn:c".into(),
            session: Some("s1".into()),
            created_ms: 1,
            action: ACTION_CREATED.into(),
            digital_source_type: TRAINED_ALGORITHMIC_MEDIA.into(),
        }
    }

    #[test]
    fn a_signed_record_verifies_and_every_tampering_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = SigningKeys::open_signing(dir.path()).unwrap();
        let signer = keys.current_or_create().unwrap();
        let public = keys.public_keys();
        let signed = signer.sign(&record("Mind the ropes."));
        let back = verify_record(&signed, &public, Some(b"Mind the ropes.")).unwrap();
        assert_eq!(back, record("Mind the ropes."));

        let err = verify_record(&signed, &public, Some(b"Mind the rope.")).unwrap_err();
        assert!(matches!(err, RecordError::ContentMismatch { .. }), "{err}");

        let mut altered = signed.clone();
        altered.payload = altered.payload.replace("urn:c", "urn:d");
        assert_eq!(
            verify_record(&altered, &public, None),
            Err(RecordError::BadSignature)
        );

        let mut unknown = signed.clone();
        unknown.key_id = "sig-000000000000".into();
        assert!(matches!(
            verify_record(&unknown, &public, None),
            Err(RecordError::UnknownKey(_))
        ));

        let mut truncated = signed.clone();
        truncated.signature.truncate(20);
        assert!(matches!(
            verify_record(&truncated, &public, None),
            Err(RecordError::Malformed(_))
        ));

        // A second key: records of the first still verify once it is retired.
        let first = signer.id().to_owned();
        keys.retire(&first).unwrap();
        let second = keys.current_or_create().unwrap();
        assert_ne!(second.id(), first);
        let reopened = SigningKeys::open_signing(dir.path()).unwrap();
        assert!(verify_record(&signed, &reopened.public_keys(), None).is_ok());
        let other = second.sign(&record("x"));
        let only_first: Vec<PublicKey> = reopened
            .public_keys()
            .into_iter()
            .filter(|k| k.id == first)
            .collect();
        assert!(matches!(
            verify_record(&other, &only_first, None),
            Err(RecordError::UnknownKey(_))
        ));
    }
}
