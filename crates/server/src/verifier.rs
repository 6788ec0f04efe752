//! What the server verifies texts with (watermark keys, public signing keys, the tokenizer
//! and the studio's C2PA trust anchor), and the verification itself.

use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lore_gen::GgufTokenizer;
use lore_mark::{
    Detection, Provenance, PublicKey, SidecarVerdict, SignedRecord, StudioCredentials, Watermark,
    detect, verify_record, verify_sidecar,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::export::EXPORT_MEDIA_TYPE;

/// What the server verifies with: every watermark key and public signing key of the
/// installation (retired ones too), and the tokenizer replies were written in.
#[derive(Default, Clone)]
pub struct Verifier {
    /// Watermark keys, all tried.
    pub watermarks: Vec<Watermark>,
    /// Public signing keys, as published.
    pub public_keys: Vec<PublicKey>,
    /// The embedded model's tokenizer; without it texts cannot be checked for a watermark.
    pub tokenizer: Option<Arc<GgufTokenizer>>,
    /// The studio's C2PA credentials: they sign exports, and their CA is the trust anchor
    /// sidecars are checked against.
    pub c2pa: Option<StudioCredentials>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("watermarks", &self.watermarks.len())
            .field("public_keys", &self.public_keys.len())
            .field("tokenizer", &self.tokenizer.is_some())
            .field("c2pa", &self.c2pa.is_some())
            .finish()
    }
}

/// A text to check, with the provenance record it came with, if any.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    /// The text.
    pub text: String,
    /// The signed record served with it (`provenance` of a turn).
    #[schema(value_type = Option<Object>)]
    pub provenance: Option<SignedRecord>,
    /// Base64 of the C2PA sidecar exported with it (`c2pa` of an export).
    pub c2pa: Option<String>,
}

/// The verdicts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyOut {
    /// The watermark verdict: z, p_value, key_id, tokens_scored, watermarked, verdict.
    #[schema(value_type = Object)]
    pub watermark: Detection,
    /// The provenance verdict, when a record was given.
    pub provenance: Option<RecordVerdict>,
    /// The sidecar verdict, when a sidecar was given: valid, reason, failures, issuer,
    /// digital_source_type, provenance.
    #[schema(value_type = Option<Object>)]
    pub sidecar: Option<SidecarVerdict>,
}

/// Whether a record is genuine and describes this text.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordVerdict {
    /// Signed by one of this server's keys, unaltered, and over exactly this text.
    pub valid: bool,
    /// Why not, or what matched.
    pub reason: String,
    /// The record, when its signature holds.
    #[schema(value_type = Option<Object>)]
    pub record: Option<Provenance>,
}

impl Verifier {
    /// Checks `request.text` for this installation's watermark and, when given, its
    /// provenance record and C2PA sidecar. Tokenizing a long text is CPU work: call it off the
    /// async threads.
    pub fn check(&self, request: VerifyIn) -> Result<VerifyOut, ApiError> {
        let Some(tokenizer) = &self.tokenizer else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_tokenizer",
                "this server runs no embedded model, so it has no tokenizer to read watermarks with",
            ));
        };
        let text = request.text;
        let sidecar = match request.c2pa {
            None => None,
            Some(encoded) => {
                let bytes = BASE64
                    .decode(encoded.trim())
                    .map_err(|e| ApiError::invalid(format!("c2pa: not base64: {e}")))?;
                Some(match &self.c2pa {
                    Some(credentials) => verify_sidecar(
                        &credentials.ca_certificate,
                        text.as_bytes(),
                        EXPORT_MEDIA_TYPE,
                        &bytes,
                    ),
                    None => SidecarVerdict::unchecked(
                        "this server has no C2PA trust anchor to check sidecars against".into(),
                    ),
                })
            }
        };
        let watermark = detect(&tokenizer.tokenize(&text), &self.watermarks);
        let provenance = request.provenance.map(|signed| {
            match verify_record(&signed, &self.public_keys, Some(text.as_bytes())) {
                Ok(record) => RecordVerdict {
                    valid: true,
                    reason: format!("signed by {} over this text", signed.key_id),
                    record: Some(record),
                },
                Err(e) => RecordVerdict {
                    valid: false,
                    reason: e.to_string(),
                    record: None,
                },
            }
        });
        Ok(VerifyOut {
            watermark,
            provenance,
            sidecar,
        })
    }
}
