//! Checking that an archive in the blob store is what a finalize call claims.
//!
//! Invariants: the full check streams the file (constant memory, any archive
//! size) and runs outside any transaction; the quick check (existence and size)
//! is what the finalizing transaction repeats under the write lock, so a blob
//! deleted by a concurrent expiry sweep is never recorded as ready.

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};

use crate::blobs::BlobStore;
use crate::error::{Error, Result};

fn missing(sha: &str, snapshot_id: &str) -> Error {
    Error::not_found(format!(
        "blob {sha} of snapshot {snapshot_id} is not in the blob store; store the archive first (blobs.put / blobs.put_file)"
    ))
}

fn size_mismatch(sha: &str, claimed: i64, actual: u64) -> Error {
    Error::validation(format!(
        "sizeBytes {claimed} does not match blob {sha}, which has {actual} bytes"
    ))
}

/// Existence and size of the blob (cheap; safe inside a transaction).
pub(crate) fn quick_check(
    blobs: &BlobStore,
    sha: &str,
    size_bytes: i64,
    snapshot_id: &str,
) -> Result<()> {
    let path = blobs.path_of(sha)?;
    let meta = std::fs::metadata(&path).map_err(|_| missing(sha, snapshot_id))?;
    if !meta.is_file() {
        return Err(missing(sha, snapshot_id));
    }
    if meta.len() != size_bytes as u64 {
        return Err(size_mismatch(sha, size_bytes, meta.len()));
    }
    Ok(())
}

/// Re-hash the blob and compare its real size and sha256 with the claimed ones.
pub(crate) fn full_check(
    blobs: &BlobStore,
    sha: &str,
    size_bytes: i64,
    snapshot_id: &str,
) -> Result<()> {
    quick_check(blobs, sha, size_bytes, snapshot_id)?;
    let path = blobs.path_of(sha)?;
    let mut file = File::open(&path).map_err(|_| missing(sha, snapshot_id))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != sha {
        return Err(Error::storage(format!(
            "blob {sha} is corrupt: its contents hash to {actual}; snapshot {snapshot_id} was not finalized"
        )));
    }
    if size != size_bytes as u64 {
        return Err(size_mismatch(sha, size_bytes, size));
    }
    Ok(())
}
