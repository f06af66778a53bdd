//! The write side of snapshots: prepare, finalize, fail, and the one-call upload.
//!
//! Invariants:
//! - `prepare` validates every field before writing and inserts one `uploading`
//!   row that expires `snapshots.retention_ms` after `now`;
//! - `finalize` and `fail` return `false` for a missing snapshot or one prepared
//!   by another worker (the seed's ownership guard) and change nothing then;
//! - only an `uploading` snapshot can be finalized or failed (`InvalidState`
//!   otherwise), and an upload cannot be finalized once the snapshot has expired;
//! - `finalize` re-hashes the blob outside the transaction, then re-checks the
//!   row and the blob's presence and size inside it; on success the snapshot is
//!   `ready`, the worker's `last_snapshot_id` names it, and a `draining` worker
//!   moves to `stopping` (`stopped_at` kept if already set) in the same transaction;
//! - `upload` = prepare → blob put → finalize; a failure after prepare marks the
//!   snapshot `failed` with the reason, so no upload stays `uploading` because of it.

use std::fs::File;
use std::path::PathBuf;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{
    from_row, require_conversation_id, validate_snapshot_id, verify, Snapshot, SnapshotReason,
    SnapshotRow, SnapshotStatus, COLUMNS, FORMAT_VERSION, MAX_ERROR_CHARS,
};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::store::Tx;
use crate::workers::{self, validate_worker_id, WorkerStatus};

/// Input of [`Factory::prepare_snapshot_upload`].
#[derive(Debug, Clone, Default)]
pub struct PrepareSnapshot {
    /// Worker taking the snapshot (the only one that may finalize it).
    pub worker_id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Agent.
    pub agent_key: String,
    /// Conversation the workspace belongs to (required; `None` is rejected).
    pub conversation_id: Option<String>,
    /// `drain`, `signal` or `manual`.
    pub reason: String,
}

/// Result of [`Factory::prepare_snapshot_upload`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotUpload {
    /// Id to pass to finalize / fail.
    pub snapshot_id: String,
    /// Always `uploading`.
    pub status: SnapshotStatus,
    /// When the upload was prepared.
    pub created_at: i64,
    /// End of retention (`created_at + snapshots.retention_ms`).
    pub expires_at: i64,
}

/// Where the archive of [`Factory::upload_snapshot`] comes from.
#[derive(Debug, Clone)]
pub enum SnapshotSource {
    /// The archive's bytes.
    Bytes(Vec<u8>),
    /// A file to stream into the blob store.
    File(PathBuf),
}

/// Which call is guarding a row (wording and the expiry rule differ).
#[derive(Clone, Copy)]
enum Settle {
    Finalize,
    Fail,
}

fn load(tx: &Tx, snapshot_id: &str) -> Result<Option<SnapshotRow>> {
    let sql = format!("SELECT {COLUMNS} FROM snapshots WHERE snapshot_id = ?1");
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([snapshot_id], from_row)
        .optional()?)
}

/// The row if `worker_id` may settle it now; `None` for missing or foreign snapshots.
fn settleable(
    row: Option<SnapshotRow>,
    worker_id: &str,
    now: i64,
    action: Settle,
) -> Result<Option<SnapshotRow>> {
    let Some(row) = row else { return Ok(None) };
    let s = &row.snapshot;
    if s.worker_id != worker_id {
        return Ok(None);
    }
    let verb = match action {
        Settle::Finalize => "finalized",
        Settle::Fail => "failed",
    };
    if s.status != SnapshotStatus::Uploading {
        return Err(Error::invalid_state(format!(
            "snapshot {} is {}; only an uploading snapshot can be {verb}",
            s.snapshot_id,
            s.status.as_str()
        )));
    }
    if matches!(action, Settle::Finalize) && s.expires_at <= now {
        return Err(Error::invalid_state(format!(
            "snapshot {} expired at {} before its upload was finalized",
            s.snapshot_id, s.expires_at
        )));
    }
    Ok(Some(row))
}

/// Record a ready snapshot on its worker; a draining worker moves to stopping.
fn record_on_worker(tx: &Tx, worker_id: &str, snapshot_id: &str, now: i64) -> Result<()> {
    let Some(worker) = workers::get_in(tx, worker_id)? else {
        return Ok(());
    };
    let next = if worker.status == WorkerStatus::Draining
        && worker.status.can_transition(WorkerStatus::Stopping)
    {
        WorkerStatus::Stopping
    } else {
        worker.status
    };
    tx.prepare_cached(
        "UPDATE workers SET last_snapshot_id = ?2, status = ?3,
           stopped_at = CASE WHEN ?3 = 'stopping' THEN coalesce(stopped_at, ?4) ELSE stopped_at END
         WHERE worker_id = ?1",
    )?
    .execute(params![worker_id, snapshot_id, next.as_str(), now])?;
    Ok(())
}

fn check_settle_ids(worker_id: &str, snapshot_id: &str) -> Result<()> {
    validate_worker_id(worker_id)?;
    validate_snapshot_id(snapshot_id)
}

impl Factory {
    /// Start a snapshot upload: one `uploading` row, expiring after the retention.
    pub fn prepare_snapshot_upload(
        &self,
        req: &PrepareSnapshot,
        now_ms: Option<i64>,
    ) -> Result<SnapshotUpload> {
        validate_worker_id(&req.worker_id)?;
        crate::validate::workspace_id(&req.workspace_id)?;
        crate::agents::validate_agent_key(&req.agent_key)?;
        let conversation_id = require_conversation_id(req.conversation_id.as_deref())?;
        let reason = SnapshotReason::parse(&req.reason)?;
        let now = self.now(now_ms)?;
        let expires_at = now.saturating_add(self.config().snapshots.retention_ms);
        let snapshot_id = ids::new_snapshot_id();
        self.store.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO snapshots(snapshot_id, workspace_id, agent_key, worker_id, conversation_id, reason,
                    format_version, status, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'uploading', ?8, ?9)",
            )?
            .execute(params![
                snapshot_id,
                req.workspace_id,
                req.agent_key,
                req.worker_id,
                conversation_id,
                reason.as_str(),
                FORMAT_VERSION,
                now,
                expires_at
            ])?;
            Ok(SnapshotUpload {
                snapshot_id: snapshot_id.clone(),
                status: SnapshotStatus::Uploading,
                created_at: now,
                expires_at,
            })
        })
    }

    /// Mark an upload ready after checking that blob `sha256` exists with exactly
    /// `size_bytes` bytes and that its contents hash to `sha256`. `false` when the
    /// snapshot is missing or belongs to another worker.
    pub fn finalize_snapshot_upload(
        &self,
        worker_id: &str,
        snapshot_id: &str,
        sha256: &str,
        size_bytes: i64,
        now_ms: Option<i64>,
    ) -> Result<bool> {
        self.finalize_inner(worker_id, snapshot_id, sha256, size_bytes, now_ms, true)
            .map(|s| s.is_some())
    }

    fn finalize_inner(
        &self,
        worker_id: &str,
        snapshot_id: &str,
        sha256: &str,
        size_bytes: i64,
        now_ms: Option<i64>,
        rehash: bool,
    ) -> Result<Option<Snapshot>> {
        check_settle_ids(worker_id, snapshot_id)?;
        crate::blobs::validate_sha256(sha256)?;
        if size_bytes < 0 {
            return Err(Error::validation(format!(
                "sizeBytes must be >= 0, got {size_bytes}"
            )));
        }
        let now = self.now(now_ms)?;
        let before = self.store.read(|tx| load(tx, snapshot_id))?;
        if settleable(before, worker_id, now, Settle::Finalize)?.is_none() {
            return Ok(None);
        }
        if rehash {
            verify::full_check(self.blobs(), sha256, size_bytes, snapshot_id)?;
        }
        self.store.write(|tx| {
            let row = load(tx, snapshot_id)?;
            let Some(row) = settleable(row, worker_id, now, Settle::Finalize)? else {
                return Ok(None);
            };
            verify::quick_check(self.blobs(), sha256, size_bytes, snapshot_id)?;
            tx.prepare_cached(
                "UPDATE snapshots SET status = 'ready', blob_sha256 = ?2, size_bytes = ?3, completed_at = ?4, error = NULL
                 WHERE id = ?1",
            )?
            .execute(params![row.key, sha256, size_bytes, now])?;
            record_on_worker(tx, worker_id, snapshot_id, now)?;
            let stored = load(tx, snapshot_id)?.ok_or_else(|| {
                Error::storage(format!("snapshot {snapshot_id} vanished while it was finalized"))
            })?;
            Ok(Some(self.snapshot_view(stored, now)))
        })
    }

    /// Mark an upload failed with `error` (truncated to 4000 characters). `false`
    /// when the snapshot is missing or belongs to another worker.
    pub fn fail_snapshot_upload(
        &self,
        worker_id: &str,
        snapshot_id: &str,
        error: &str,
        now_ms: Option<i64>,
    ) -> Result<bool> {
        check_settle_ids(worker_id, snapshot_id)?;
        if error.trim().is_empty() {
            return Err(Error::validation("error must not be blank"));
        }
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let row = load(tx, snapshot_id)?;
            let Some(row) = settleable(row, worker_id, now, Settle::Fail)? else {
                return Ok(false);
            };
            tx.prepare_cached(
                "UPDATE snapshots SET status = 'failed', error = ?2, completed_at = ?3 WHERE id = ?1",
            )?
            .execute(params![row.key, error, now])?;
            Ok(true)
        })
    }

    /// Prepare, store the archive in the blob store and finalize, in one call.
    /// A bad `source` path is rejected before anything is written; a failure after
    /// the prepare marks the snapshot `failed` and is returned.
    pub fn upload_snapshot(
        &self,
        req: &PrepareSnapshot,
        source: &SnapshotSource,
        now_ms: Option<i64>,
    ) -> Result<Snapshot> {
        if let SnapshotSource::File(path) = source {
            let readable = File::open(path).and_then(|f| f.metadata());
            match readable {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => {
                    return Err(Error::validation(format!(
                        "path {} is not a regular file",
                        path.display()
                    )))
                }
                Err(e) => {
                    return Err(Error::validation(format!(
                        "path {} cannot be read: {e}",
                        path.display()
                    )))
                }
            }
        }
        let now = self.now(now_ms)?;
        let prepared = self.prepare_snapshot_upload(req, Some(now))?;
        let id = prepared.snapshot_id.as_str();
        match self.store_and_finalize(&req.worker_id, id, source, now) {
            Ok(snapshot) => Ok(snapshot),
            Err(err) => {
                let reason = format!("upload failed: {err}");
                match self.fail_snapshot_upload(&req.worker_id, id, &reason, Some(now)) {
                    Ok(_) => Err(err),
                    Err(also) => Err(err.with_context(&format!(
                        "snapshot {id} could not be marked failed ({also})"
                    ))),
                }
            }
        }
    }

    fn store_and_finalize(
        &self,
        worker_id: &str,
        snapshot_id: &str,
        source: &SnapshotSource,
        now: i64,
    ) -> Result<Snapshot> {
        let put = || -> Result<(String, i64)> {
            let (sha, size) = match source {
                SnapshotSource::Bytes(bytes) => (self.blobs().put(bytes)?, bytes.len() as u64),
                SnapshotSource::File(path) => self.blobs().put_file(path)?,
            };
            let size = i64::try_from(size)
                .map_err(|_| Error::validation(format!("archive of {size} bytes is too large")))?;
            Ok((sha, size))
        };
        // The blob was hashed while it was written, so finalize only re-checks its
        // presence and size. A second attempt covers an expiry sweep that removed an
        // identical, no longer referenced blob between the put and the finalize.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (sha, size) = put()?;
            match self.finalize_inner(worker_id, snapshot_id, &sha, size, Some(now), false) {
                Ok(Some(snapshot)) => return Ok(snapshot),
                Ok(None) => {
                    return Err(Error::storage(format!(
                        "snapshot {snapshot_id} disappeared during its upload"
                    )))
                }
                Err(Error::NotFound(_)) if attempt < 2 => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
