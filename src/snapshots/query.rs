//! The read side of snapshots: restore lookup and listings.
//!
//! Invariants: restore reads the partial index of `ready` rows of one exact
//! (workspace, agent, conversation), newest first, and skips rows whose retention
//! has passed but which the sweep has not expired yet; listings read one
//! conversation's or one worker's index, newest first (ties by insertion order),
//! with the seed's `clamp(limit ?? 50, 1, 200)`. Nothing here writes.

use rusqlite::{params, OptionalExtension};

use super::{
    from_row, require_conversation_id, validate_snapshot_id, Snapshot, COLUMNS, DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
};
use crate::error::Result;
use crate::factory::Factory;
use crate::workers::validate_worker_id;

/// Newest ready, unexpired row of one tuple. `+expires_at` keeps the planner on the
/// partial restore index (the expiry index would need a sort).
pub(crate) const RESTORE_WHERE: &str =
    "WHERE workspace_id = ?1 AND agent_key = ?2 AND conversation_id = ?3
       AND status = 'ready' AND +expires_at > ?4
     ORDER BY created_at DESC, id DESC LIMIT 1";
/// One conversation's rows, newest first.
pub(crate) const CONVERSATION_WHERE: &str =
    "WHERE conversation_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2";
/// One worker's rows, newest first.
pub(crate) const WORKER_WHERE: &str =
    "WHERE worker_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2";

fn clamp_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(DEFAULT_LIST_LIMIT).clamp(1, MAX_LIST_LIMIT)
}

impl Factory {
    /// The newest ready, unexpired snapshot of exactly this (workspace, agent,
    /// conversation), or `None`. Older ready snapshots are found even when newer
    /// ones failed or are still uploading.
    pub fn latest_snapshot_for_restore(
        &self,
        workspace_id: &str,
        agent_key: &str,
        conversation_id: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<Option<Snapshot>> {
        crate::validate::workspace_id(workspace_id)?;
        crate::agents::validate_agent_key(agent_key)?;
        let conversation_id = require_conversation_id(conversation_id)?;
        let now = self.now(now_ms)?;
        let row = self.store.read(|tx| {
            let sql = format!("SELECT {COLUMNS} FROM snapshots {RESTORE_WHERE}");
            Ok(tx
                .prepare_cached(&sql)?
                .query_row(
                    params![workspace_id, agent_key, conversation_id, now],
                    from_row,
                )
                .optional()?)
        })?;
        Ok(row.map(|r| self.snapshot_view(r, now)))
    }

    /// Snapshots of one conversation, newest first; `limit` is clamped to 1..=200 (default 50).
    pub fn list_snapshots_for_conversation(
        &self,
        conversation_id: Option<&str>,
        limit: Option<i64>,
        now_ms: Option<i64>,
    ) -> Result<Vec<Snapshot>> {
        let conversation_id = require_conversation_id(conversation_id)?;
        let now = self.now(now_ms)?;
        let rows = self.store.read(|tx| {
            let sql = format!("SELECT {COLUMNS} FROM snapshots {CONVERSATION_WHERE}");
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params![conversation_id, clamp_limit(limit)], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        Ok(rows
            .into_iter()
            .map(|r| self.snapshot_view(r, now))
            .collect())
    }

    /// Snapshots taken by one worker, newest first; `limit` is clamped to 1..=200 (default 50).
    pub fn list_snapshots_for_worker(
        &self,
        worker_id: &str,
        limit: Option<i64>,
        now_ms: Option<i64>,
    ) -> Result<Vec<Snapshot>> {
        validate_worker_id(worker_id)?;
        let now = self.now(now_ms)?;
        let rows = self.store.read(|tx| {
            let sql = format!("SELECT {COLUMNS} FROM snapshots {WORKER_WHERE}");
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params![worker_id, clamp_limit(limit)], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        Ok(rows
            .into_iter()
            .map(|r| self.snapshot_view(r, now))
            .collect())
    }

    /// One snapshot by id, or `None`.
    pub fn get_snapshot(&self, snapshot_id: &str, now_ms: Option<i64>) -> Result<Option<Snapshot>> {
        validate_snapshot_id(snapshot_id)?;
        let now = self.now(now_ms)?;
        let row = self.store.read(|tx| {
            let sql = format!("SELECT {COLUMNS} FROM snapshots WHERE snapshot_id = ?1");
            Ok(tx
                .prepare_cached(&sql)?
                .query_row([snapshot_id], from_row)
                .optional()?)
        })?;
        Ok(row.map(|r| self.snapshot_view(r, now)))
    }
}
