//! Retention: the expiry sweep.
//!
//! Invariants:
//! - `ready` snapshots whose `expires_at <= now` become `expired`, oldest expiry
//!   first, at most `limit` rows per call, read from the `(status, expires_at)` index;
//! - their blobs are deleted in the same transaction (so under the write lock a
//!   concurrent finalize also holds), except a blob that an unexpired `ready`
//!   snapshot or a `ready` attachment still references: the store is
//!   content-addressed, so identical archives share one file;
//! - an `uploading` snapshot whose `expires_at` has passed (retention after its
//!   prepare, 7 days by default) can never be finalized any more, so it becomes
//!   `failed` with a reason instead of staying `uploading` forever; those rows
//!   use what is left of `limit` after the ready ones;
//! - if a blob cannot be deleted the whole sweep rolls back and reports it, so
//!   no row is marked expired while its file silently stays behind.

use std::collections::BTreeSet;

use rusqlite::params;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::store::Tx;

/// Stored reason of an upload failed by the sweep.
pub const ABANDONED_UPLOAD_ERROR: &str =
    "upload abandoned: the snapshot reached its expiry before the upload was finalized";

/// Rows of one status whose retention has passed, oldest expiry first.
pub(crate) const DUE_SQL: &str =
    "SELECT id, blob_sha256 FROM snapshots WHERE status = ?1 AND expires_at <= ?2
     ORDER BY expires_at, id LIMIT ?3";
/// Whether an unexpired ready snapshot uses a blob (`+` keeps the lookup on the blob index).
pub(crate) const SNAPSHOT_REF_SQL: &str = "SELECT EXISTS(SELECT 1 FROM snapshots
     WHERE blob_sha256 = ?1 AND +status = 'ready' AND +expires_at > ?2)";
/// Whether a ready attachment uses a blob.
pub(crate) const ATTACHMENT_REF_SQL: &str =
    "SELECT EXISTS(SELECT 1 FROM message_attachments WHERE blob_sha256 = ?1 AND status = 'ready')";

/// Counts of one expiry sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotExpiry {
    /// Ready snapshots moved to `expired`.
    pub expired: i64,
    /// Abandoned uploads moved to `failed`.
    pub failed: i64,
    /// Blob files removed.
    pub blobs_deleted: i64,
    /// Blobs kept because another live snapshot or attachment shares them.
    pub blobs_kept: i64,
}

fn due_keys(tx: &Tx, status: &str, now: i64, limit: i64) -> Result<Vec<(i64, Option<String>)>> {
    let mut stmt = tx.prepare_cached(DUE_SQL)?;
    let rows = stmt
        .query_map(params![status, now, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Whether something that must stay restorable still points at blob `sha`.
fn still_referenced(tx: &Tx, sha: &str, now: i64) -> Result<bool> {
    let by_snapshot: bool = tx
        .prepare_cached(SNAPSHOT_REF_SQL)?
        .query_row(params![sha, now], |r| r.get(0))?;
    if by_snapshot {
        return Ok(true);
    }
    let by_attachment: bool = tx
        .prepare_cached(ATTACHMENT_REF_SQL)?
        .query_row([sha], |r| r.get(0))?;
    Ok(by_attachment)
}

impl Factory {
    /// Expire ready snapshots past retention (deleting unshared blobs) and fail
    /// abandoned uploads; at most `limit` (1..=100000) rows per call.
    pub fn expire_old_snapshots(&self, limit: i64, now_ms: Option<i64>) -> Result<SnapshotExpiry> {
        if !(1..=100_000).contains(&limit) {
            return Err(Error::validation(format!(
                "limit must be within 1..=100000, got {limit}"
            )));
        }
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let ready = due_keys(tx, "ready", now, limit)?;
            let mut expire =
                tx.prepare_cached("UPDATE snapshots SET status = 'expired' WHERE id = ?1")?;
            let mut shas = BTreeSet::new();
            for (key, sha) in &ready {
                expire.execute([key])?;
                shas.extend(sha.clone());
            }
            let room = limit - ready.len() as i64;
            let abandoned = if room > 0 {
                due_keys(tx, "uploading", now, room)?
            } else {
                Vec::new()
            };
            let mut fail = tx.prepare_cached(
                "UPDATE snapshots SET status = 'failed', error = ?2, completed_at = ?3 WHERE id = ?1",
            )?;
            for (key, _) in &abandoned {
                fail.execute(params![key, ABANDONED_UPLOAD_ERROR, now])?;
            }
            let mut outcome = SnapshotExpiry {
                expired: ready.len() as i64,
                failed: abandoned.len() as i64,
                blobs_deleted: 0,
                blobs_kept: 0,
            };
            for sha in &shas {
                if still_referenced(tx, sha, now)? {
                    outcome.blobs_kept += 1;
                } else if self
                    .blobs()
                    .delete(sha)
                    .map_err(|e| e.with_context(&format!("expired snapshot blob {sha}")))?
                {
                    outcome.blobs_deleted += 1;
                }
            }
            Ok(outcome)
        })
    }
}
