//! Content-addressed blob store beside the database.
//!
//! Invariants:
//! - a blob's name is the lowercase hex SHA-256 of its bytes, stored at
//!   `<root>/<first two hex>/<sha256>`;
//! - writes are atomic: bytes go to a temporary file in the same directory, are
//!   fsynced, then renamed into place, so a reader never sees a partial blob;
//! - reads verify the hash; a corrupted file is reported, never returned;
//! - files are 0600 and directories 0700.
//!
//! `:memory:` factories use a private temporary root removed on drop.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::set_mode;

/// A blob store rooted at one directory.
#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    ephemeral: bool,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Check that `sha` is 64 lowercase hex characters.
pub fn validate_sha256(sha: &str) -> Result<()> {
    if sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "sha256 {sha:?} is not 64 lowercase hex characters"
        )))
    }
}

impl BlobStore {
    /// The store for a database file (`<db>.blobs/`), or a private temporary one for `:memory:`.
    pub fn for_database(db_path: Option<&Path>) -> Result<BlobStore> {
        match db_path {
            Some(p) => {
                let mut name = p.as_os_str().to_os_string();
                name.push(".blobs");
                Ok(BlobStore {
                    root: PathBuf::from(name),
                    ephemeral: false,
                })
            }
            None => {
                let root = std::env::temp_dir().join(format!(
                    "agent-factory-blobs-{}",
                    uuid::Uuid::now_v7().simple()
                ));
                Ok(BlobStore {
                    root,
                    ephemeral: true,
                })
            }
        }
    }

    /// Root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `sha` lives (whether or not it exists).
    pub fn path_of(&self, sha: &str) -> Result<PathBuf> {
        validate_sha256(sha)?;
        Ok(self.root.join(&sha[..2]).join(sha))
    }

    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        for d in [&self.root, dir] {
            if !d.exists() {
                fs::create_dir_all(d)?;
                set_mode(d, 0o700)?;
            }
        }
        Ok(())
    }

    /// Store `bytes`; returns their SHA-256. Idempotent.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let sha = sha256_hex(bytes);
        let dest = self.path_of(&sha)?;
        if dest.exists() {
            return Ok(sha);
        }
        let dir = dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        self.ensure_dir(&dir)?;
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::now_v7().simple()));
        let written = (|| -> Result<()> {
            let mut f = File::create(&tmp)?;
            set_mode(&tmp, 0o600)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &dest)?;
            File::open(&dir)?.sync_all()?;
            Ok(())
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|_| sha)
    }

    /// Store the contents of a file, streaming; returns `(sha256, size)`.
    pub fn put_file(&self, source: &Path) -> Result<(String, u64)> {
        let mut input = File::open(source)
            .map_err(|e| Error::validation(format!("cannot read {}: {e}", source.display())))?;
        self.ensure_dir(&self.root.clone())?;
        let tmp = self
            .root
            .join(format!(".tmp-{}", uuid::Uuid::now_v7().simple()));
        let result = (|| -> Result<(String, u64)> {
            let mut out = File::create(&tmp)?;
            set_mode(&tmp, 0o600)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut size = 0u64;
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                size += n as u64;
            }
            out.sync_all()?;
            let sha = hex::encode(hasher.finalize());
            let dest = self.path_of(&sha)?;
            let dir = dest
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.root.clone());
            self.ensure_dir(&dir)?;
            fs::rename(&tmp, &dest)?;
            File::open(&dir)?.sync_all()?;
            Ok((sha, size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Whether the blob exists.
    pub fn exists(&self, sha: &str) -> Result<bool> {
        Ok(self.path_of(sha)?.is_file())
    }

    /// Size in bytes, or `NotFound`.
    pub fn size(&self, sha: &str) -> Result<u64> {
        let path = self.path_of(sha)?;
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|_| Error::not_found(format!("blob {sha} not found")))
    }

    /// Read and verify a blob.
    pub fn get(&self, sha: &str) -> Result<Vec<u8>> {
        let path = self.path_of(sha)?;
        let bytes =
            fs::read(&path).map_err(|_| Error::not_found(format!("blob {sha} not found")))?;
        if sha256_hex(&bytes) != sha {
            return Err(Error::storage(format!(
                "blob {sha} is corrupt: its contents no longer match the hash"
            )));
        }
        Ok(bytes)
    }

    /// Remove a blob; returns whether it existed.
    pub fn delete(&self, sha: &str) -> Result<bool> {
        let path = self.path_of(sha)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for BlobStore {
    fn drop(&mut self) {
        if self.ephemeral {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_verify_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::for_database(Some(&dir.path().join("f.db"))).unwrap();
        let sha = store.put(b"hello").unwrap();
        assert_eq!(sha, sha256_hex(b"hello"));
        assert_eq!(store.put(b"hello").unwrap(), sha, "idempotent");
        assert_eq!(store.get(&sha).unwrap(), b"hello");
        fs::write(store.path_of(&sha).unwrap(), b"tampered").unwrap();
        assert!(matches!(store.get(&sha), Err(Error::Storage(_))));
        assert!(store.delete(&sha).unwrap());
        assert!(matches!(store.get(&sha), Err(Error::NotFound(_))));
        assert!(matches!(store.get("nothex"), Err(Error::Validation(_))));
    }

    #[test]
    fn put_file_streams_and_ephemeral_root_is_removed() {
        let store = BlobStore::for_database(None).unwrap();
        let root = store.root().to_path_buf();
        let src = tempfile::NamedTempFile::new().unwrap();
        fs::write(src.path(), vec![7u8; 200_000]).unwrap();
        let (sha, size) = store.put_file(src.path()).unwrap();
        assert_eq!(size, 200_000);
        assert_eq!(store.get(&sha).unwrap().len(), 200_000);
        drop(store);
        assert!(!root.exists());
    }
}
