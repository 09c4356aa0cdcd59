//! Encryption at rest: the master keys that local recording files are sealed with (the file
//! format is `pipelines::crypt`). Without a key, files are written in the clear, and files
//! written earlier with a key need that key to be read.
//!
//! Keys are 32 bytes in standard base64 (`openssl rand -base64 32`). Rotation: make the new key
//! the current one and list the old ones; files keep naming the key that sealed them, so both
//! download. `capstan rewrap` then seals every file with the current key (rewriting headers
//! only), after which the old keys can go.

use crate::setting::ConfigError;
use base64::Engine;
use clap::Args;
use pipelines::crypt::{self, Keyring, KEY_LEN};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Encryption flags; each also reads its environment variable.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionArgs {
    /// Master key (32 bytes, standard base64): local recording files are encrypted with it.
    #[arg(
        long = "encryption-key",
        env = "CAPSTAN_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
    /// A file of master keys, one per line in standard base64: the first is the current key,
    /// the others old ones; `#` starts a comment. Instead of CAPSTAN_ENCRYPTION_KEY.
    #[arg(long = "encryption-key-file", env = "CAPSTAN_ENCRYPTION_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Old master keys, comma-separated: files sealed with them can still be read.
    #[arg(
        long = "encryption-old-keys",
        env = "CAPSTAN_ENCRYPTION_OLD_KEYS",
        hide_env_values = true
    )]
    pub old_keys: Option<String>,
}

impl EncryptionArgs {
    /// Fields set here win over `file`.
    pub fn or(self, file: EncryptionArgs) -> EncryptionArgs {
        EncryptionArgs {
            key: self.key.or(file.key),
            key_file: self.key_file.or(file.key_file),
            old_keys: self.old_keys.or(file.old_keys),
        }
    }

    /// The keyring, or `None` when no key is configured.
    pub fn resolve(&self) -> Result<Option<Keyring>, ConfigError> {
        let mut keys = match (&self.key, &self.key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    names: "CAPSTAN_ENCRYPTION_KEY and CAPSTAN_ENCRYPTION_KEY_FILE",
                })
            }
            (Some(key), None) => vec![decode(key, "CAPSTAN_ENCRYPTION_KEY")?],
            (None, Some(path)) => read_key_file(path)?,
            (None, None) => Vec::new(),
        };
        let old_keys = self.old_keys.iter().flat_map(|l| l.split(','));
        for old in old_keys.map(str::trim).filter(|k| !k.is_empty()) {
            keys.push(decode(old, "CAPSTAN_ENCRYPTION_OLD_KEYS")?);
        }
        match keys.split_first() {
            Some((current, old)) if self.key.is_some() || self.key_file.is_some() => {
                Ok(Some(Keyring::new(current, old)))
            }
            Some(_) => Err(ConfigError::Required {
                name: "CAPSTAN_ENCRYPTION_KEY",
                when: "when CAPSTAN_ENCRYPTION_OLD_KEYS is set",
            }),
            None => Ok(None),
        }
    }
}

/// What [`rewrap_dir`] did.
#[derive(Debug, Default)]
pub struct RewrapReport {
    pub rewrapped: usize,
    pub current: usize,
    pub plain: usize,
    pub failed: Vec<String>,
}

/// Seals every encrypted file under `dir` (the recordings directory and its room
/// directories) with the current key. Blocking; only headers are rewritten.
pub fn rewrap_dir(dir: &Path, keys: &Keyring) -> RewrapReport {
    let mut report = RewrapReport::default();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                report.failed.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            match crypt::is_encrypted(&path)
                .map(|sealed| sealed.then(|| crypt::rewrap(&path, keys)))
            {
                Ok(None) => report.plain += 1,
                Ok(Some(Ok(true))) => report.rewrapped += 1,
                Ok(Some(Ok(false))) => report.current += 1,
                Ok(Some(Err(e))) => report.failed.push(e.to_string()),
                Err(e) => report.failed.push(format!("{}: {e}", path.display())),
            }
        }
    }
    report
}

/// The keys of a key file, in order.
fn read_key_file(path: &Path) -> Result<Vec<[u8; KEY_LEN]>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let keys: Vec<_> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| decode(l, "CAPSTAN_ENCRYPTION_KEY_FILE"))
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(ConfigError::invalid(
            "CAPSTAN_ENCRYPTION_KEY_FILE",
            path.display().to_string(),
            "a file with at least one key",
        ));
    }
    Ok(keys)
}

/// A 32-byte key from standard base64; the error never repeats the value.
fn decode(text: &str, name: &'static str) -> Result<[u8; KEY_LEN], ConfigError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
        .ok_or_else(|| ConfigError::invalid(name, "<hidden>", "32 bytes in standard base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn keys_come_from_the_variable_or_a_file_and_old_ones_follow() {
        let args = EncryptionArgs {
            key: Some(b64(&[1; 32])),
            old_keys: Some(format!("{},{}", b64(&[2; 32]), b64(&[3; 32]))),
            ..Default::default()
        };
        let ring = args.resolve().unwrap().unwrap();
        let expect = Keyring::new(&[1; 32], &[[2; 32], [3; 32]]);
        assert_eq!(ring.ids(), expect.ids());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        let text = format!("# current\n{}\n\n{}  # old\n", b64(&[4; 32]), b64(&[5; 32]));
        std::fs::write(&file, text).unwrap();
        let args = EncryptionArgs {
            key_file: Some(file),
            ..Default::default()
        };
        let ring = args.resolve().unwrap().unwrap();
        assert_eq!(ring.ids(), Keyring::new(&[4; 32], &[[5; 32]]).ids());
        assert!(EncryptionArgs::default().resolve().unwrap().is_none());
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in ["not base64!", &b64(&[1; 16])] {
            let args = EncryptionArgs {
                key: Some(bad.to_string()),
                ..Default::default()
            };
            let error = args.resolve().unwrap_err().to_string();
            assert!(error.contains("CAPSTAN_ENCRYPTION_KEY"), "{error}");
            assert!(error.contains("32 bytes"), "{error}");
            assert!(!error.contains(bad), "{error}");
        }
        let old_only = EncryptionArgs {
            old_keys: Some(b64(&[2; 32])),
            ..Default::default()
        };
        assert!(old_only
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("required"));
        let both = EncryptionArgs {
            key: Some(b64(&[1; 32])),
            key_file: Some("/nonexistent".into()),
            ..Default::default()
        };
        assert!(both.resolve().unwrap_err().to_string().contains("KEY_FILE"));
    }
}
