//! Workspace snapshots: archives of a worker's data directory, kept in the
//! content-addressed blob store and keyed by (workspace, agent, conversation).
//!
//! Invariants:
//! - every snapshot names a conversation; a restore only ever sees snapshots of
//!   the exact (workspace, agent, conversation) it asks for;
//! - status moves `uploading → ready | failed` and `ready → expired`, nothing
//!   else; only the worker that prepared a snapshot can finalize or fail it;
//! - a `ready` snapshot's blob existed with exactly its recorded sha256 and size
//!   when it became ready (checked inside the finalizing transaction, under the
//!   same write lock the expiry sweep deletes blobs under);
//! - restore returns the newest `ready`, unexpired snapshot, so a newer failed or
//!   still-uploading snapshot never hides an older good one;
//! - expiry deletes a blob only when no unexpired `ready` snapshot and no `ready`
//!   attachment references the same sha256 (the store deduplicates content);
//! - every operation is one transaction: a rejected call changes nothing.

pub mod archive;
mod expiry;
mod query;
#[cfg(test)]
mod tests;
mod upload;
mod verify;

use rusqlite::Row;
use serde::Serialize;

use crate::error::{column_error, Error, Result};
use crate::factory::Factory;

pub use archive::{ArchiveStats, DirectorySnapshot, RestoreMode, RestoredSnapshot};
pub use expiry::SnapshotExpiry;
pub use upload::{PrepareSnapshot, SnapshotSource, SnapshotUpload};

/// Default retention of a snapshot after its upload is prepared (7 days).
pub const DATA_SNAPSHOT_RETENTION_MS: i64 = 604_800_000;
/// Archive format written by this version.
pub const FORMAT_VERSION: i64 = 1;
/// Default and bounds of listing limits (the seed's `clamp(limit ?? 50, 1, 200)`).
pub const DEFAULT_LIST_LIMIT: i64 = 50;
/// Largest listing page.
pub const MAX_LIST_LIMIT: i64 = 200;
/// Longest stored error text; longer messages are truncated.
pub const MAX_ERROR_CHARS: usize = 4000;

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotReason {
    /// The worker is draining (final snapshot before teardown).
    Drain,
    /// The worker was told to stop.
    Signal,
    /// Taken on request.
    Manual,
}

impl SnapshotReason {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotReason::Drain => "drain",
            SnapshotReason::Signal => "signal",
            SnapshotReason::Manual => "manual",
        }
    }

    /// Parse a user-given or stored name.
    pub fn parse(s: &str) -> Result<SnapshotReason> {
        match s {
            "drain" => Ok(SnapshotReason::Drain),
            "signal" => Ok(SnapshotReason::Signal),
            "manual" => Ok(SnapshotReason::Manual),
            other => Err(Error::validation(format!(
                "reason {other:?} must be one of drain, signal, manual"
            ))),
        }
    }
}

/// Where a snapshot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStatus {
    /// Prepared; the archive is not finalized yet.
    Uploading,
    /// Archive verified and restorable until `expires_at`.
    Ready,
    /// The upload failed or was abandoned.
    Failed,
    /// Past retention; its blob is gone unless shared.
    Expired,
}

impl SnapshotStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotStatus::Uploading => "uploading",
            SnapshotStatus::Ready => "ready",
            SnapshotStatus::Failed => "failed",
            SnapshotStatus::Expired => "expired",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Result<SnapshotStatus> {
        match s {
            "uploading" => Ok(SnapshotStatus::Uploading),
            "ready" => Ok(SnapshotStatus::Ready),
            "failed" => Ok(SnapshotStatus::Failed),
            "expired" => Ok(SnapshotStatus::Expired),
            other => Err(Error::storage(format!(
                "stored snapshot status {other:?} is not one of uploading, ready, failed, expired"
            ))),
        }
    }
}

/// A snapshot as listed, or as handed to a worker that restores it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Id.
    pub snapshot_id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Agent.
    pub agent_key: String,
    /// Conversation the workspace belongs to.
    pub conversation_id: String,
    /// Worker that took it.
    pub worker_id: String,
    /// Why it was taken.
    pub reason: SnapshotReason,
    /// Lifecycle status.
    pub status: SnapshotStatus,
    /// Archive format.
    pub format_version: i64,
    /// Blob id of the archive (set once ready).
    pub sha256: Option<String>,
    /// Archive size (set once ready).
    pub size_bytes: Option<i64>,
    /// Why the upload failed.
    pub error: Option<String>,
    /// When the upload was prepared.
    pub created_at: i64,
    /// When it became ready or failed.
    pub completed_at: Option<i64>,
    /// End of retention.
    pub expires_at: i64,
    /// Local path of the archive: only while ready and unexpired (the seed's `downloadUrl`).
    pub path: Option<String>,
}

/// A stored row before the view-time `path` is derived.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotRow {
    pub(crate) key: i64,
    pub(crate) snapshot: Snapshot,
}

/// Columns read by [`from_row`], in order.
pub(crate) const COLUMNS: &str =
    "id, snapshot_id, workspace_id, agent_key, conversation_id, worker_id, reason, \
    status, format_version, blob_sha256, size_bytes, error, created_at, completed_at, expires_at";

/// A stored row; a status or reason outside the schema's set is a storage error.
pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<SnapshotRow> {
    let reason: String = r.get(6)?;
    let status: String = r.get(7)?;
    Ok(SnapshotRow {
        key: r.get(0)?,
        snapshot: Snapshot {
            snapshot_id: r.get(1)?,
            workspace_id: r.get(2)?,
            agent_key: r.get(3)?,
            conversation_id: r.get(4)?,
            worker_id: r.get(5)?,
            reason: SnapshotReason::parse(&reason).map_err(|e| column_error(6, e))?,
            status: SnapshotStatus::parse(&status).map_err(|e| column_error(7, e))?,
            format_version: r.get(8)?,
            sha256: r.get(9)?,
            size_bytes: r.get(10)?,
            error: r.get(11)?,
            created_at: r.get(12)?,
            completed_at: r.get(13)?,
            expires_at: r.get(14)?,
            path: None,
        },
    })
}

/// Check a snapshot id.
pub fn validate_snapshot_id(snapshot_id: &str) -> Result<()> {
    crate::validate::identifier("snapshotId", snapshot_id, 128, false)
}

/// A snapshot's conversation id: mandatory (snapshots are keyed by it) and well formed.
pub fn require_conversation_id(conversation_id: Option<&str>) -> Result<&str> {
    let id = conversation_id.ok_or_else(|| {
        Error::validation(
            "conversationId is required: snapshots are keyed by (workspaceId, agentKey, conversationId)",
        )
    })?;
    crate::queue::conversations::validate_conversation_id(id)?;
    Ok(id)
}

impl Factory {
    /// The view of a stored row at `now`: `path` is set only while it is restorable.
    pub(crate) fn snapshot_view(&self, row: SnapshotRow, now: i64) -> Snapshot {
        let mut s = row.snapshot;
        if s.status == SnapshotStatus::Ready && s.expires_at > now {
            s.path = s
                .sha256
                .as_deref()
                .and_then(|sha| self.blobs().path_of(sha).ok())
                .map(|p| p.display().to_string());
        }
        s
    }
}
