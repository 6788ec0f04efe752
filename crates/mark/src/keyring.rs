//! Keys on disk, outside canon: one JSON file per kind of key in a keys directory, readable
//! only by its owner, replaced atomically on every change. Keys are never deleted: a retired
//! key marks or signs nothing new, but what it marked or signed stays verifiable.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::MarkError;
use crate::watermark::hex;

/// Whether a key still marks or signs new artefacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// In use: the newest active key marks or signs, and every key is tried at verification.
    Active,
    /// Used for verification only.
    Retired,
}

/// What distinguishes one kind of key: the settings stored beside its secret, and what the
/// two together unlock (a watermark, a signer).
pub trait KeySettings: Serialize + DeserializeOwned {
    /// What the key is used as.
    type Material: Clone;
    /// Builds the material from the secret, checking that it belongs to `id`; `Err` says
    /// what is wrong.
    fn material(&self, secret: [u8; 32], id: &str) -> Result<Self::Material, String>;
}

/// One key as stored: its id, secret, age and state, and its kind's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored<S> {
    /// The key's public id.
    pub id: String,
    secret: String,
    /// Seconds since the Unix epoch when it was made.
    pub created: u64,
    /// Active or retired.
    pub state: KeyState,
    /// The kind's settings.
    #[serde(flatten)]
    pub settings: S,
}

impl<S: KeySettings> Stored<S> {
    fn material(&self) -> Result<S::Material, String> {
        self.settings
            .material(secret_from_hex(&self.secret)?, &self.id)
    }
}

/// The keys of one kind.
#[derive(Debug)]
pub struct Ring<S: KeySettings> {
    path: PathBuf,
    entries: Vec<Stored<S>>,
    materials: Vec<S::Material>,
}

impl<S: KeySettings> Ring<S> {
    /// Reads `file` in `dir`; a missing file is an empty ring.
    pub(crate) fn open(dir: &Path, file: &str) -> Result<Ring<S>, MarkError> {
        let path = dir.join(file);
        let entries: Vec<Stored<S>> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MarkError::BadKeyFile {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(MarkError::Io { path, source }),
        };
        let materials = entries
            .iter()
            .map(|e| {
                e.material().map_err(|reason| MarkError::BadKeyFile {
                    path: path.clone(),
                    reason: format!("key {:?}: {reason}", e.id),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Ring {
            path,
            entries,
            materials,
        })
    }

    /// The stored keys, oldest first.
    pub fn entries(&self) -> &[Stored<S>] {
        &self.entries
    }

    /// Every key's material, oldest first, for verification.
    pub fn materials(&self) -> &[S::Material] {
        &self.materials
    }

    /// The newest active key's material.
    pub fn current(&self) -> Option<&S::Material> {
        self.entries
            .iter()
            .zip(&self.materials)
            .rev()
            .find(|(e, _)| e.state == KeyState::Active)
            .map(|(_, m)| m)
    }

    /// Adds a key made from `secret` with `settings`, which becomes the current one, and
    /// saves.
    pub(crate) fn push(
        &mut self,
        id: String,
        secret: &[u8; 32],
        settings: S,
    ) -> Result<&Stored<S>, MarkError> {
        let entry = Stored {
            id,
            secret: hex(secret),
            created: now_secs(),
            state: KeyState::Active,
            settings,
        };
        let material = entry.material().map_err(MarkError::BadSettings)?;
        self.entries.push(entry);
        self.materials.push(material);
        self.save()?;
        Ok(self.entries.last().expect("just pushed"))
    }

    /// Stops a key marking or signing anything new; it stays for verification.
    pub fn retire(&mut self, id: &str) -> Result<(), MarkError> {
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or_else(|| MarkError::UnknownKey(id.to_owned()))?;
        entry.state = KeyState::Retired;
        self.save()
    }

    fn save(&self) -> Result<(), MarkError> {
        let json = serde_json::to_vec_pretty(&self.entries).expect("keys serialise");
        write_private(&self.path, &json)
    }
}

/// Replaces `path` with `bytes` atomically, readable by its owner only: a crash leaves the
/// old file or the new one, never half of either.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), MarkError> {
    let io = |source| MarkError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = std::path::PathBuf::from(temp);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp).map_err(io)?;
        std::io::Write::write_all(&mut file, bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&temp, path).map_err(io)
}

/// Seconds since the Unix epoch, now.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The 32 bytes of a hex secret.
fn secret_from_hex(hex: &str) -> Result<[u8; 32], String> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or("secret is not hex")?;
    bytes
        .try_into()
        .map_err(|_| "secret is not 32 bytes".to_owned())
}
