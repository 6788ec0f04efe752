//! C2PA manifest stores in sidecar files: an export's bytes hashed whole, its provenance
//! asserted beside a `c2pa.created` action, signed with the studio's certificate; and the
//! check of a sidecar against the file it sits beside.
//!
//! The studio's credentials are an Ed25519 certificate authority and an end-entity
//! certificate it issued (key usage digitalSignature, extended key usage emailProtection, as
//! the C2PA certificate profile asks). They are made on first use and kept in one private
//! file in the keys directory; the CA certificate is what a studio hands to whoever verifies
//! its exports (`lore keys c2pa ca`). The c2pa crate runs with its pure-Rust crypto; the
//! certificates are made with rcgen over ed25519-dalek, so nothing links OpenSSL or ring.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, PKCS_ED25519, PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use serde::{Deserialize, Serialize};

use crate::keyring::write_private;
use crate::{MarkError, Provenance, SignedRecord};

/// The extension a sidecar adds to its file's name: `story.txt` → `story.txt.c2pa`.
pub const SIDECAR_EXTENSION: &str = "c2pa";
/// The label of the assertion that carries Lorekeeper's own record of the export.
pub const PROVENANCE_ASSERTION: &str = "org.lorekeeper.provenance";
const CREDENTIALS_FILE: &str = "c2pa-credentials.json";
const CA_YEARS: i64 = 20;
const SIGNER_YEARS: i64 = 5;

/// Where the sidecar of `file` lives.
pub fn sidecar_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(SIDECAR_EXTENSION);
    PathBuf::from(name)
}

/// The MIME type a file's name suggests; the manifest states it and the hash covers the
/// whole file whatever it is.
pub fn media_type(file: &Path) -> &'static str {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("txt") => "text/plain",
        Some("md") => "text/markdown",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// What the sidecar's Lorekeeper assertion holds: the export's record and the signed
/// records of the replies it contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportProvenance {
    /// What made the export.
    pub record: Provenance,
    /// The replies' own signed records, in the order they appear.
    pub parts: Vec<SignedRecord>,
}

/// The studio's C2PA signing credentials.
#[derive(Clone, Serialize, Deserialize)]
pub struct StudioCredentials {
    /// Seconds since the Unix epoch when they were made.
    pub created: u64,
    /// The CA certificate, PEM: the trust anchor verifiers need.
    pub ca_certificate: String,
    ca_key: String,
    /// The signing certificate and the CA's, PEM.
    pub signer_chain: String,
    signer_key: String,
}

impl std::fmt::Debug for StudioCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudioCredentials")
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl StudioCredentials {
    /// The credentials in `dir`, made (for `organisation`) when there are none yet.
    pub fn open_or_create(dir: &Path, organisation: &str) -> Result<StudioCredentials, MarkError> {
        if let Some(found) = StudioCredentials::open(dir)? {
            return Ok(found);
        }
        let made = StudioCredentials::generate(organisation)?;
        let json = serde_json::to_vec_pretty(&made).expect("credentials serialise");
        write_private(&dir.join(CREDENTIALS_FILE), &json)?;
        Ok(made)
    }

    /// The credentials in `dir`, if they were made.
    pub fn open(dir: &Path) -> Result<Option<StudioCredentials>, MarkError> {
        let path = dir.join(CREDENTIALS_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(MarkError::Io { path, source }),
        };
        let found: StudioCredentials =
            serde_json::from_slice(&bytes).map_err(|e| MarkError::BadKeyFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        // Fail here, naming the file, rather than at the first signature.
        for key in [&found.ca_key, &found.signer_key] {
            ed25519_dalek::SigningKey::from_pkcs8_pem(key).map_err(|e| MarkError::BadKeyFile {
                path: path.clone(),
                reason: format!("private key: {e}"),
            })?;
        }
        Ok(Some(found))
    }

    fn generate(organisation: &str) -> Result<StudioCredentials, MarkError> {
        let bad = |e: rcgen::Error| MarkError::C2pa(format!("making the certificates: {e}"));
        let now = time::OffsetDateTime::now_utc();
        let name = |common: String| {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, common);
            dn.push(DnType::OrganizationName, organisation);
            dn
        };
        let params = |dn: DistinguishedName, years: i64| -> Result<CertificateParams, MarkError> {
            let mut p = CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
            p.distinguished_name = dn;
            p.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
            // An hour's grace for verifiers whose clocks run behind.
            p.not_before = now - time::Duration::hours(1);
            p.not_after = now + time::Duration::days(365 * years);
            Ok(p)
        };

        let ca_key = CertKey::generate();
        let mut ca = params(name(format!("{organisation} C2PA CA")), CA_YEARS)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_certificate = ca.self_signed(&ca_key).map_err(bad)?;

        let signer_key = CertKey::generate();
        let mut signer = params(name(format!("{organisation} Lorekeeper")), SIGNER_YEARS)?;
        signer.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        signer.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
        signer.use_authority_key_identifier_extension = true;
        let signer_certificate = signer
            .signed_by(&signer_key, &Issuer::new(ca, &ca_key))
            .map_err(bad)?;

        Ok(StudioCredentials {
            created: time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64,
            ca_certificate: ca_certificate.pem(),
            ca_key: ca_key.pkcs8_pem(),
            signer_chain: format!("{}{}", signer_certificate.pem(), ca_certificate.pem()),
            signer_key: signer_key.pkcs8_pem(),
        })
    }

    /// A sidecar manifest store for `artefact` (of media type `format`, titled `title`):
    /// a `c2pa.created` action with the record's IPTC digital source type, the record and
    /// its parts in a Lorekeeper assertion, and a hash of every byte of the artefact.
    pub fn sign_sidecar(
        &self,
        artefact: &[u8],
        format: &str,
        title: &str,
        provenance: &ExportProvenance,
    ) -> Result<Vec<u8>, MarkError> {
        if artefact.is_empty() {
            // C2PA's data hash needs bytes to cover; an empty export proves nothing.
            return Err(MarkError::C2pa(format!(
                "{title} is empty: there are no bytes to sign"
            )));
        }
        let fail = |what: &str, e: c2pa::Error| MarkError::C2pa(format!("{what}: {e}"));
        let signer = c2pa::create_signer::from_keys(
            self.signer_chain.as_bytes(),
            self.signer_key.as_bytes(),
            c2pa::SigningAlg::Ed25519,
            None,
        )
        .map_err(|e| fail("loading the signing certificate", e))?;
        let record = &provenance.record;
        let definition = serde_json::json!({
            "claim_generator_info": [{"name": "lorekeeper", "version": env!("CARGO_PKG_VERSION")}],
            "title": title,
            "format": format,
            "assertions": [
                {"label": "c2pa.actions", "data": {"actions": [{
                    "action": record.action,
                    "digitalSourceType": record.digital_source_type,
                    "softwareAgent": {"name": "lorekeeper", "version": env!("CARGO_PKG_VERSION")},
                }]}},
                {"label": PROVENANCE_ASSERTION, "data": provenance},
            ],
        });
        let context = c2pa::Context::new()
            .with_settings(trust_settings(&self.ca_certificate).as_str())
            .map_err(|e| fail("c2pa settings", e))?
            .with_signer(signer);
        let mut builder = c2pa::Builder::from_context(context)
            .with_definition(definition.to_string())
            .map_err(|e| fail("the manifest definition", e))?;
        builder.set_no_embed(true);
        builder
            .update_hash_from_stream(format, &mut Cursor::new(artefact))
            .map_err(|e| fail("hashing the artefact", e))?;
        builder
            .sign_embeddable("application/c2pa")
            .map_err(|e| fail("signing the manifest", e))
    }
}

/// c2pa settings that trust the CAs in `trust_anchors_pem`.
fn trust_settings(trust_anchors_pem: &str) -> String {
    serde_json::json!({
        "trust": {"trust_anchors": trust_anchors_pem},
        "verify": {"verify_trust": true},
        // Exports are text; thumbnails are for images (and the feature is not built).
        "builder": {"thumbnail": {"enabled": false}},
    })
    .to_string()
}

/// What a sidecar says about its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SidecarVerdict {
    /// The signature is good, by a trusted certificate, and the file's bytes are those signed.
    pub valid: bool,
    /// Why not, or what was confirmed, in a sentence.
    pub reason: String,
    /// The C2PA failure codes, e.g. `assertion.dataHash.mismatch`.
    pub failures: Vec<String>,
    /// The signing certificate's issuer, when the sidecar could be read.
    pub issuer: Option<String>,
    /// The IPTC digital source type its `c2pa.created` action states.
    pub digital_source_type: Option<String>,
    /// Lorekeeper's record of the export, when present; shown even when the sidecar is not
    /// valid (to say what it claims), so trust it only when `valid` is.
    pub provenance: Option<ExportProvenance>,
}

impl SidecarVerdict {
    /// A verdict against a sidecar that could not be checked at all: missing, unreadable,
    /// or with nothing to check it against.
    pub fn unchecked(reason: String) -> SidecarVerdict {
        SidecarVerdict {
            valid: false,
            reason,
            failures: Vec::new(),
            issuer: None,
            digital_source_type: None,
            provenance: None,
        }
    }
}

/// Checks `sidecar` against the bytes of the file it describes, trusting certificates
/// issued by the CAs in `trust_anchors_pem`.
pub fn verify_sidecar(
    trust_anchors_pem: &str,
    artefact: &[u8],
    format: &str,
    sidecar: &[u8],
) -> SidecarVerdict {
    if sidecar.is_empty() {
        return SidecarVerdict::unchecked("the sidecar is empty".into());
    }
    let reader = c2pa::Context::new()
        .with_settings(trust_settings(trust_anchors_pem).as_str())
        .and_then(|context| {
            c2pa::Reader::from_context(context).with_manifest_data_and_stream(
                sidecar,
                format,
                Cursor::new(artefact),
            )
        });
    let reader = match reader {
        Ok(reader) => reader,
        Err(e) => {
            return SidecarVerdict::unchecked(format!(
                "the sidecar is damaged or truncated, or not a C2PA manifest store: {e}"
            ));
        }
    };
    let Some(manifest) = reader.active_manifest() else {
        return SidecarVerdict::unchecked("the sidecar holds no active manifest".into());
    };
    let failures: Vec<(String, String)> = reader
        .validation_results()
        .and_then(|r| r.active_manifest())
        .map(|codes| {
            codes
                .failure()
                .iter()
                .map(|s| {
                    (
                        s.code().to_owned(),
                        s.explanation().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let actions: Option<serde_json::Value> = manifest
        .find_assertion("c2pa.actions.v2")
        .or_else(|_| manifest.find_assertion("c2pa.actions"))
        .ok();
    let digital_source_type = actions.as_ref().and_then(|a| {
        a["actions"].as_array()?.iter().find_map(|action| {
            (action["action"] == "c2pa.created")
                .then(|| action["digitalSourceType"].as_str().map(str::to_owned))?
        })
    });
    let trusted = reader.validation_state() == c2pa::ValidationState::Trusted;
    let reason = if failures.is_empty() && trusted {
        "signed by a trusted certificate; the file's bytes are those it signed".to_owned()
    } else if failures.is_empty() {
        "the manifest was not validated against a trusted certificate".to_owned()
    } else {
        failures
            .iter()
            .map(|(code, explanation)| describe_failure(code, explanation))
            .collect::<Vec<_>>()
            .join("; ")
    };
    SidecarVerdict {
        valid: failures.is_empty() && trusted,
        reason,
        failures: failures.into_iter().map(|(code, _)| code).collect(),
        issuer: manifest.issuer(),
        digital_source_type,
        provenance: manifest.find_assertion(PROVENANCE_ASSERTION).ok(),
    }
}

/// A failure code in words a trust-and-safety reviewer can act on.
fn describe_failure(code: &str, explanation: &str) -> String {
    match code {
        "assertion.dataHash.mismatch" => {
            "the file's bytes are not those the sidecar signed (the file was changed)".into()
        }
        "claimSignature.mismatch" => {
            "the signature does not match the manifest (the sidecar was changed)".into()
        }
        "signingCredential.untrusted" => {
            "signed by a certificate no trusted CA issued (another studio's, or forged)".into()
        }
        "signingCredential.expired" | "claimSignature.outsideValidity" => {
            "the signing certificate was not valid when the manifest was signed".into()
        }
        _ => format!("{code}: {explanation}"),
    }
}

/// An Ed25519 key rcgen signs certificates with, through ed25519-dalek.
struct CertKey {
    key: ed25519_dalek::SigningKey,
    public: [u8; 32],
}

impl CertKey {
    fn generate() -> CertKey {
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let public = key.verifying_key().to_bytes();
        CertKey { key, public }
    }

    fn pkcs8_pem(&self) -> String {
        self.key
            .to_pkcs8_pem(Default::default())
            .expect("an Ed25519 key encodes as PKCS#8")
            .to_string()
    }
}

impl PublicKeyData for CertKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

impl rcgen::SigningKey for CertKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.key.sign(message).to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::tests::record;

    const TEXT: &[u8] = b"Odile: Mind the ropes, traveller; the ferry leaves at dusk.\n";

    fn export(text: &[u8]) -> ExportProvenance {
        ExportProvenance {
            record: record(std::str::from_utf8(text).unwrap()),
            parts: Vec::new(),
        }
    }

    fn signed(dir: &Path) -> (StudioCredentials, Vec<u8>) {
        let credentials = StudioCredentials::open_or_create(dir, "Test Studio").unwrap();
        let sidecar = credentials
            .sign_sidecar(TEXT, "text/plain", "odile.txt", &export(TEXT))
            .unwrap();
        (credentials, sidecar)
    }

    #[test]
    fn a_sidecar_verifies_against_its_file_and_carries_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let (credentials, sidecar) = signed(dir.path());
        let verdict = verify_sidecar(&credentials.ca_certificate, TEXT, "text/plain", &sidecar);
        assert!(verdict.valid, "{verdict:?}");
        assert!(verdict.failures.is_empty());
        assert_eq!(
            verdict.digital_source_type.as_deref(),
            Some(crate::provenance::TRAINED_ALGORITHMIC_MEDIA)
        );
        assert_eq!(verdict.provenance, Some(export(TEXT)));
        assert!(verdict.issuer.unwrap().contains("Test Studio"));
    }

    #[test]
    fn credentials_are_made_once_kept_private_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let made = StudioCredentials::open_or_create(dir.path(), "Test Studio").unwrap();
        let again = StudioCredentials::open_or_create(dir.path(), "Other").unwrap();
        assert_eq!(made.ca_certificate, again.ca_certificate);
        assert_eq!(made.signer_chain, again.signer_chain);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CREDENTIALS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(CREDENTIALS_FILE), "{\"created\": 1}").unwrap();
        let err = StudioCredentials::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains(CREDENTIALS_FILE), "{err}");
    }

    #[test]
    fn an_edited_file_is_named_as_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (credentials, sidecar) = signed(dir.path());
        let edited = String::from_utf8_lossy(TEXT).replace("dusk", "dawn");
        let verdict = verify_sidecar(
            &credentials.ca_certificate,
            edited.as_bytes(),
            "text/plain",
            &sidecar,
        );
        assert!(!verdict.valid);
        assert_eq!(verdict.failures, ["assertion.dataHash.mismatch"]);
        assert!(
            verdict.reason.contains("file was changed"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn a_changed_or_truncated_sidecar_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (credentials, sidecar) = signed(dir.path());
        let ca = &credentials.ca_certificate;

        // The last bytes are the signature's.
        let mut flipped = sidecar.clone();
        let at = flipped.len() - 40;
        flipped[at] ^= 1;
        let verdict = verify_sidecar(ca, TEXT, "text/plain", &flipped);
        assert!(!verdict.valid);
        assert!(
            verdict
                .failures
                .contains(&"claimSignature.mismatch".to_owned()),
            "{verdict:?}"
        );
        assert!(verdict.reason.contains("sidecar was changed"));

        for cut in [sidecar.len() / 2, 10, 0] {
            let verdict = verify_sidecar(ca, TEXT, "text/plain", &sidecar[..cut]);
            assert!(!verdict.valid);
            assert!(
                verdict.reason.contains("truncated") || verdict.reason.contains("empty"),
                "{cut}: {}",
                verdict.reason
            );
        }
        let verdict = verify_sidecar(ca, TEXT, "text/plain", b"not a manifest at all");
        assert!(!verdict.valid);
    }

    #[test]
    fn another_studios_certificate_is_not_trusted() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        let (credentials, _) = signed(ours.path());
        let (_, their_sidecar) = signed(theirs.path());
        let verdict = verify_sidecar(
            &credentials.ca_certificate,
            TEXT,
            "text/plain",
            &their_sidecar,
        );
        assert!(!verdict.valid);
        assert_eq!(verdict.failures, ["signingCredential.untrusted"]);
        assert!(
            verdict.reason.contains("no trusted CA"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn an_empty_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = StudioCredentials::open_or_create(dir.path(), "Test Studio").unwrap();
        let err = credentials
            .sign_sidecar(b"", "text/plain", "empty.txt", &export(b""))
            .unwrap_err();
        assert!(err.to_string().contains("empty.txt is empty"), "{err}");
        let verdict = verify_sidecar(
            &credentials.ca_certificate,
            b"",
            "text/plain",
            &signed(dir.path()).1,
        );
        assert!(!verdict.valid);
    }

    #[test]
    fn the_sidecar_sits_beside_its_file() {
        assert_eq!(
            sidecar_path(Path::new("/x/odile.txt")),
            Path::new("/x/odile.txt.c2pa")
        );
        assert_eq!(media_type(Path::new("a.TXT")), "text/plain");
        assert_eq!(media_type(Path::new("card")), "application/octet-stream");
    }
}
