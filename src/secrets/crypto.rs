//! Encryption at rest for secrets: XChaCha20-Poly1305 under a 32-byte master key.
//!
//! Invariants:
//! - the master key comes from `AGENT_FACTORY_MASTER_KEY` (base64 or hex of 32
//!   bytes) or from a key file beside the database, created 0600 on first use;
//!   `:memory:` factories without the variable use a random key for their lifetime;
//! - every value gets a fresh random 24-byte nonce;
//! - the associated data binds a ciphertext to its `(secret_ref, version)`, so a row
//!   copied onto another secret fails to decrypt instead of leaking;
//! - `key_id` fingerprints the key, so a wrong key is reported as such.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::set_mode;

/// Algorithm label stored with each row.
pub const ALGORITHM: &str = "xchacha20poly1305-v1";
/// Environment variable holding the master key.
pub const MASTER_KEY_ENV: &str = "AGENT_FACTORY_MASTER_KEY";

/// The master key and its fingerprint.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    key_id: String,
    source: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("key_id", &self.key_id)
            .field("source", &self.source)
            .finish()
    }
}

/// One encrypted value.
pub struct Sealed {
    /// Random nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext with tag.
    pub ciphertext: Vec<u8>,
}

fn decode_key(text: &str) -> Result<[u8; 32]> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(t).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(t).ok()
    };
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            Error::validation(format!(
                "{MASTER_KEY_ENV} must be 32 bytes encoded as base64 or 64 hex characters"
            ))
        })
}

impl MasterKey {
    fn from_bytes(key: [u8; 32], source: String) -> MasterKey {
        let mut h = Sha256::new();
        h.update(b"agent-factory key id\0");
        h.update(key);
        let key_id = hex::encode(&h.finalize()[..8]);
        MasterKey {
            cipher: XChaCha20Poly1305::new(&key.into()),
            key_id,
            source,
        }
    }

    /// Resolve the key for a database (`None` = `:memory:`).
    pub fn for_database(db_path: Option<&Path>) -> Result<MasterKey> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            if !text.trim().is_empty() {
                return Ok(Self::from_bytes(decode_key(&text)?, "environment".into()));
            }
        }
        match db_path {
            None => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                Ok(Self::from_bytes(key, "ephemeral".into()))
            }
            Some(db) => {
                let mut name = db.as_os_str().to_os_string();
                name.push(".key");
                let file = PathBuf::from(name);
                Ok(Self::from_bytes(
                    load_or_create_key_file(&file)?,
                    file.display().to_string(),
                ))
            }
        }
    }

    /// Fingerprint of the key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Where the key came from (`environment`, `ephemeral` or a file path).
    pub fn source(&self) -> &str {
        &self.source
    }

    fn aad(secret_ref: &str, version: i64) -> Vec<u8> {
        format!("agent-factory/secret/{secret_ref}/{version}").into_bytes()
    }

    /// Encrypt a value for `(secret_ref, version)`.
    pub fn seal(&self, secret_ref: &str, version: i64, plaintext: &str) -> Result<Sealed> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::aad(secret_ref, version);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::storage("secret encryption failed"))?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypt a stored value.
    pub fn open(
        &self,
        secret_ref: &str,
        version: i64,
        key_id: &str,
        sealed: &Sealed,
    ) -> Result<String> {
        if key_id != self.key_id {
            return Err(Error::storage(format!(
                "secret '{secret_ref}' version {version} was encrypted with master key {key_id}, but the current key is {} ({}); set {MASTER_KEY_ENV} to the original key",
                self.key_id, self.source
            )));
        }
        if sealed.nonce.len() != 24 {
            return Err(Error::storage(format!(
                "secret '{secret_ref}' version {version} has a malformed nonce"
            )));
        }
        let aad = Self::aad(secret_ref, version);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
            .map_err(|_| Error::storage(format!("secret '{secret_ref}' version {version} failed authentication (tampered or wrong key)")))?;
        String::from_utf8(plain)
            .map_err(|_| Error::storage(format!("secret '{secret_ref}' is not UTF-8")))
    }
}

fn load_or_create_key_file(file: &Path) -> Result<[u8; 32]> {
    if let Ok(text) = std::fs::read_to_string(file) {
        return decode_key(&text)
            .map_err(|_| Error::storage(format!("master key file {} is corrupt", file.display())));
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(file) {
        Ok(mut f) => {
            f.write_all(
                base64::engine::general_purpose::STANDARD
                    .encode(key)
                    .as_bytes(),
            )?;
            f.sync_all()?;
            set_mode(file, 0o600)?;
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(file)?;
            decode_key(&text).map_err(|_| {
                Error::storage(format!("master key file {} is corrupt", file.display()))
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_binds_ref_and_version() {
        let k = MasterKey::from_bytes([7; 32], "test".into());
        let sealed = k.seal("telegram.botToken", 1, "123:ABC ✓ 😀").unwrap();
        assert!(!sealed.ciphertext.windows(3).any(|w| w == b"ABC"));
        assert_eq!(
            k.open("telegram.botToken", 1, k.key_id(), &sealed).unwrap(),
            "123:ABC ✓ 😀"
        );
        assert!(k.open("telegram.botToken", 2, k.key_id(), &sealed).is_err());
        assert!(k.open("other", 1, k.key_id(), &sealed).is_err());
        let other = MasterKey::from_bytes([8; 32], "other".into());
        assert!(other
            .open("telegram.botToken", 1, k.key_id(), &sealed)
            .unwrap_err()
            .to_string()
            .contains("master key"));
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db.key");
        let a = load_or_create_key_file(&file).unwrap();
        let b = load_or_create_key_file(&file).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
