//! Attachment retention: the expiry sweep (seed `expireOldTelegramAttachments`).
//!
//! Invariants:
//! - `ready` attachments whose `expires_at <= now` become `expired`, oldest
//!   expiry first, at most `limit` per call, read from the partial
//!   `message_attachments_expiry` index (cost does not grow with expired rows);
//! - the matching entry of the message's stored payload becomes `expired` in the
//!   same transaction, so a later claim or hydration never offers the file;
//! - a blob is deleted only when no `ready` attachment and no unexpired `ready`
//!   snapshot still uses it (the store is content-addressed and shared); if a
//!   delete fails the whole sweep rolls back;
//! - de-duplication rows of handled updates older than [`UPDATE_RETENTION_MS`]
//!   are pruned (oldest first, within the same `limit`), so that table stays bounded.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::store::Tx;

/// How long a handled update is remembered for de-duplication (7 days; Telegram
/// keeps undelivered updates for at most 24 hours).
pub const UPDATE_RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// Counts of one sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentExpiry {
    /// Attachments moved to `expired` (the seed's return value).
    pub expired: i64,
    /// Messages whose stored payload was updated.
    pub payloads_updated: i64,
    /// Blob files removed.
    pub blobs_deleted: i64,
    /// Blobs kept because something live still uses them.
    pub blobs_kept: i64,
    /// De-duplication rows of old updates removed.
    pub updates_pruned: i64,
}

/// Whether a ready attachment or an unexpired ready snapshot uses blob `sha`.
pub(crate) fn blob_in_use(tx: &Tx, sha: &str, now: i64) -> Result<bool> {
    let by_attachment: bool = tx
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM message_attachments WHERE blob_sha256 = ?1 AND status = 'ready')",
        )?
        .query_row([sha], |r| r.get(0))?;
    if by_attachment {
        return Ok(true);
    }
    Ok(tx
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM snapshots WHERE blob_sha256 = ?1 AND +status = 'ready' AND +expires_at > ?2)",
        )?
        .query_row(params![sha, now], |r| r.get(0))?)
}

/// Mark payload entry `index` (or, if the stored order differs, the first ready
/// entry with the same blob and file id) of message `message_ref` expired.
fn expire_in_payload(tx: &Tx, message_ref: i64, rows: &[(i64, String, String)]) -> Result<bool> {
    let text: String = tx
        .prepare_cached("SELECT payload FROM messages WHERE id = ?1")?
        .query_row([message_ref], |r| r.get(0))?;
    let mut payload: Value = serde_json::from_str(&text)?;
    let ids: Vec<i64> = tx
        .prepare_cached("SELECT id FROM message_attachments WHERE message_ref = ?1 ORDER BY id")?
        .query_map([message_ref], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let Some(items) = payload.get_mut("attachments").and_then(Value::as_array_mut) else {
        return Ok(false);
    };
    let mut changed = false;
    for (row_id, sha, file_id) in rows {
        let same = |v: &Value| {
            v.get("storageId").and_then(Value::as_str) == Some(sha.as_str())
                && v.get("telegramFileId").and_then(Value::as_str) == Some(file_id.as_str())
        };
        let at_index = ids
            .iter()
            .position(|i| i == row_id)
            .filter(|&i| items.get(i).is_some_and(same));
        let index = at_index.or_else(|| {
            items
                .iter()
                .position(|v| same(v) && v.get("status").and_then(Value::as_str) == Some("ready"))
        });
        if let Some(entry) = index
            .and_then(|i| items.get_mut(i))
            .and_then(Value::as_object_mut)
        {
            entry.insert("status".into(), Value::String("expired".into()));
            changed = true;
        }
    }
    if changed {
        tx.prepare_cached("UPDATE messages SET payload = ?2 WHERE id = ?1")?
            .execute(params![message_ref, serde_json::to_string(&payload)?])?;
    }
    Ok(changed)
}

impl Factory {
    /// Expire attachments past retention, update the stored payloads, delete
    /// unshared blobs and prune old update de-duplication rows; at most `limit`
    /// (1..=100000) attachments and `limit` update rows per call.
    pub fn expire_old_telegram_attachments(
        &self,
        limit: i64,
        now_ms: Option<i64>,
    ) -> Result<AttachmentExpiry> {
        if !(1..=100_000).contains(&limit) {
            return Err(Error::validation(format!(
                "limit must be within 1..=100000, got {limit}"
            )));
        }
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let due: Vec<(i64, i64, String, String)> = tx
                .prepare_cached(
                    "SELECT id, message_ref, blob_sha256, telegram_file_id FROM message_attachments
                     WHERE status = 'ready' AND expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2",
                )?
                .query_map(params![now, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut expire = tx.prepare_cached(
                "UPDATE message_attachments SET status = 'expired' WHERE id = ?1",
            )?;
            let mut by_message: BTreeMap<i64, Vec<(i64, String, String)>> = BTreeMap::new();
            let mut shas = BTreeSet::new();
            for (id, message_ref, sha, file_id) in &due {
                expire.execute([id])?;
                by_message.entry(*message_ref).or_default().push((
                    *id,
                    sha.clone(),
                    file_id.clone(),
                ));
                shas.insert(sha.clone());
            }
            let mut outcome = AttachmentExpiry {
                expired: due.len() as i64,
                payloads_updated: 0,
                blobs_deleted: 0,
                blobs_kept: 0,
                updates_pruned: 0,
            };
            for (message_ref, rows) in &by_message {
                if expire_in_payload(tx, *message_ref, rows)? {
                    outcome.payloads_updated += 1;
                }
            }
            for sha in &shas {
                if blob_in_use(tx, sha, now)? {
                    outcome.blobs_kept += 1;
                } else if self
                    .blobs()
                    .delete(sha)
                    .map_err(|e| e.with_context(&format!("expired attachment blob {sha}")))?
                {
                    outcome.blobs_deleted += 1;
                }
            }
            outcome.updates_pruned =
                tx.prepare_cached(
                    "DELETE FROM telegram_updates WHERE (bot_identity, update_id) IN
                     (SELECT bot_identity, update_id FROM telegram_updates
                      WHERE created_at <= ?1 ORDER BY created_at LIMIT ?2)",
                )?
                .execute(params![now - UPDATE_RETENTION_MS, limit])? as i64;
            Ok(outcome)
        })
    }
}
