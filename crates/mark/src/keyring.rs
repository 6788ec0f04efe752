//! Watermark keys on disk, outside canon: `watermark-keys.json` in a keys directory,
//! readable only by its owner, replaced atomically on every change.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::watermark::hex;
use crate::{MarkError, Watermark, WatermarkKey};

const FILE: &str = "watermark-keys.json";

/// Whether a key still marks new replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Marks new replies (the newest active key does) and is tried at detection.
    Active,
    /// Marks nothing new, but is still tried at detection: what it marked stays provable.
    Retired,
}

/// One key as stored, with the settings it marks with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    /// The key's public id.
    pub id: String,
    secret: String,
    /// Seconds since the Unix epoch when it was made.
    pub created: u64,
    /// Active or retired.
    pub state: KeyState,
    /// Green share.
    pub gamma: f64,
    /// Green bias.
    pub delta: f32,
    /// Steps with a likeliest token above this probability are not biased.
    pub spike: f32,
}

impl StoredKey {
    fn watermark(&self, path: &Path) -> Result<Watermark, MarkError> {
        let bad = |reason: String| MarkError::BadKeyFile {
            path: path.to_owned(),
            reason: format!("key {:?}: {reason}", self.id),
        };
        let bytes = (0..self.secret.len())
            .step_by(2)
            .map(|i| {
                self.secret
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| bad("secret is not hex".into()))?;
        let secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("secret is not 32 bytes".into()))?;
        let key = WatermarkKey::from_secret(secret);
        if key.id() != self.id {
            return Err(bad(format!("secret belongs to id {:?}", key.id())));
        }
        Watermark::new(key, self.gamma, self.delta, self.spike).map_err(|e| bad(e.to_string()))
    }
}

/// The watermark keys of one installation.
#[derive(Debug)]
pub struct Keyring {
    path: PathBuf,
    keys: Vec<StoredKey>,
    watermarks: Vec<Watermark>,
}

impl Keyring {
    /// Reads the keyring in `dir`; a missing file is an empty ring.
    pub fn open(dir: &Path) -> Result<Keyring, MarkError> {
        let path = dir.join(FILE);
        let keys: Vec<StoredKey> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MarkError::BadKeyFile {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(MarkError::Io { path, source }),
        };
        let watermarks = keys
            .iter()
            .map(|k| k.watermark(&path))
            .collect::<Result<_, _>>()?;
        Ok(Keyring {
            path,
            keys,
            watermarks,
        })
    }

    /// The keys, oldest first.
    pub fn keys(&self) -> &[StoredKey] {
        &self.keys
    }

    /// Every key, for detection.
    pub fn watermarks(&self) -> &[Watermark] {
        &self.watermarks
    }

    /// The key that marks new replies: the newest active one.
    pub fn current(&self) -> Option<&Watermark> {
        self.keys
            .iter()
            .zip(&self.watermarks)
            .rev()
            .find(|(k, _)| k.state == KeyState::Active)
            .map(|(_, w)| w)
    }

    /// Makes a key with these settings; it becomes the current one.
    pub fn create(&mut self, gamma: f64, delta: f32, spike: f32) -> Result<&StoredKey, MarkError> {
        let watermark = Watermark::new(WatermarkKey::generate(), gamma, delta, spike)?;
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.keys.push(StoredKey {
            id: watermark.key().id().to_owned(),
            secret: hex(watermark.key().secret()),
            created,
            state: KeyState::Active,
            gamma,
            delta,
            spike,
        });
        self.watermarks.push(watermark);
        self.save()?;
        Ok(self.keys.last().expect("just pushed"))
    }

    /// The current key, making one with the default settings if there is none.
    pub fn current_or_create(&mut self) -> Result<Watermark, MarkError> {
        if let Some(current) = self.current() {
            return Ok(current.clone());
        }
        self.create(
            Watermark::DEFAULT_GAMMA,
            Watermark::DEFAULT_DELTA,
            Watermark::DEFAULT_SPIKE,
        )?;
        Ok(self.watermarks.last().expect("just made").clone())
    }

    /// Stops a key marking new replies; it is still tried at detection.
    pub fn retire(&mut self, id: &str) -> Result<(), MarkError> {
        let key = self
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| MarkError::UnknownKey(id.to_owned()))?;
        key.state = KeyState::Retired;
        self.save()
    }

    fn save(&self) -> Result<(), MarkError> {
        let io = |source| MarkError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(&self.keys).expect("keys serialise");
        let temp = self.path.with_extension("json.tmp");
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temp).map_err(io)?;
            std::io::Write::write_all(&mut file, &json).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&temp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_rotated_retired_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = Keyring::open(dir.path()).unwrap();
        assert!(ring.current().is_none());
        let first = ring.current_or_create().unwrap();
        let second_id = ring.create(0.5, 1.5, 0.95).unwrap().id.clone();
        assert_eq!(ring.current().unwrap().key().id(), second_id);
        ring.retire(&second_id).unwrap();
        assert_eq!(ring.current().unwrap(), &first);

        let reopened = Keyring::open(dir.path()).unwrap();
        assert_eq!(reopened.keys().len(), 2);
        assert_eq!(reopened.keys()[1].state, KeyState::Retired);
        assert_eq!(reopened.watermarks()[1].gamma(), 0.5);
        assert_eq!(reopened.current().unwrap(), &first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key file is private");
        }
        let err = ring.retire("wm-nope").unwrap_err();
        assert!(err.to_string().contains("wm-nope"));
    }

    #[test]
    fn a_damaged_key_file_is_named_with_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = Keyring::open(dir.path()).unwrap();
        let id = ring.current_or_create().unwrap().key().id().to_owned();
        let path = dir.path().join(FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let pos = text.find("\"secret\": \"").unwrap() + 11;
        let mut broken = text.clone();
        broken.replace_range(pos..pos + 2, "zz");
        std::fs::write(&path, broken).unwrap();
        let err = Keyring::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&id) && err.contains("not hex"), "{err}");
        std::fs::write(&path, "{").unwrap();
        let err = Keyring::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("watermark-keys.json"), "{err}");
    }
}
