//! The watermark keys: `watermark-keys.json` in the keys directory.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::keyring::{KeySettings, Ring, Stored};
use crate::{MarkError, Watermark, WatermarkKey};

/// What a watermark key marks with, stored beside its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkParams {
    /// Green share.
    pub gamma: f64,
    /// Green bias.
    pub delta: f32,
    /// Steps with a likeliest token above this probability are not biased.
    pub spike: f32,
}

impl KeySettings for WatermarkParams {
    type Material = Watermark;

    fn material(&self, secret: [u8; 32], id: &str) -> Result<Watermark, String> {
        let key = WatermarkKey::from_secret(secret);
        if key.id() != id {
            return Err(format!("secret belongs to id {:?}", key.id()));
        }
        Watermark::new(key, self.gamma, self.delta, self.spike).map_err(|e| e.to_string())
    }
}

/// One watermark key as stored.
pub type StoredKey = Stored<WatermarkParams>;

/// The watermark keys of one installation.
pub type Keyring = Ring<WatermarkParams>;

impl Ring<WatermarkParams> {
    /// The watermark keys in `dir`.
    pub fn open_watermarks(dir: &Path) -> Result<Keyring, MarkError> {
        Ring::open(dir, "watermark-keys.json")
    }

    /// Makes a key with these settings; it becomes the current one.
    pub fn create(&mut self, gamma: f64, delta: f32, spike: f32) -> Result<&StoredKey, MarkError> {
        // Checked before a secret is drawn, so bad settings name themselves.
        Watermark::new(WatermarkKey::from_secret([0; 32]), gamma, delta, spike)?;
        let secret: [u8; 32] = rand::random();
        let id = WatermarkKey::from_secret(secret).id().to_owned();
        self.push(
            id,
            &secret,
            WatermarkParams {
                gamma,
                delta,
                spike,
            },
        )
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
        Ok(self.current().expect("just made").clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyState;

    #[test]
    fn keys_are_made_rotated_retired_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = Keyring::open_watermarks(dir.path()).unwrap();
        assert!(ring.current().is_none());
        let first = ring.current_or_create().unwrap();
        let second_id = ring.create(0.5, 1.5, 0.95).unwrap().id.clone();
        assert_eq!(ring.current().unwrap().key().id(), second_id);
        ring.retire(&second_id).unwrap();
        assert_eq!(ring.current().unwrap(), &first);

        let reopened = Keyring::open_watermarks(dir.path()).unwrap();
        assert_eq!(reopened.entries().len(), 2);
        assert_eq!(reopened.entries()[1].state, KeyState::Retired);
        assert_eq!(reopened.materials()[1].gamma(), 0.5);
        assert_eq!(reopened.current().unwrap(), &first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.path().join("watermark-keys.json");
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key file is private");
        }
        let err = ring.retire("wm-nope").unwrap_err();
        assert!(err.to_string().contains("wm-nope"));
    }

    #[test]
    fn a_damaged_key_file_is_named_with_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = Keyring::open_watermarks(dir.path()).unwrap();
        let id = ring.current_or_create().unwrap().key().id().to_owned();
        let path = dir.path().join("watermark-keys.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let pos = text.find("\"secret\": \"").unwrap() + 11;
        let mut broken = text.clone();
        broken.replace_range(pos..pos + 2, "zz");
        std::fs::write(&path, broken).unwrap();
        let err = Keyring::open_watermarks(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&id) && err.contains("not hex"), "{err}");
        std::fs::write(&path, "{").unwrap();
        let err = Keyring::open_watermarks(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("watermark-keys.json"), "{err}");
    }
}
