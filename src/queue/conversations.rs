//! Conversation rows: agent binding, the pending head, the in-flight lock and history.
//!
//! Invariants:
//! - a conversation is bound forever to the agent of its first message;
//! - the head is the pending (`queued`) message with the smallest
//!   `(scheduled_for, id)`; a retried message keeps its place, so order within a
//!   conversation is strict FIFO also after failures;
//! - `state` is `busy` exactly while one of its messages is in flight (lock_*
//!   set); otherwise `ready`/`waiting` when a head exists (due / not yet due) or
//!   `idle`. [`refresh_head`] is the one place that recomputes it;
//! - the lock is the only record of a delivery: the locked message (always the
//!   head) keeps `status = 'queued'` in its row until it is settled, and every
//!   reader derives `processing` from `lock_message` (`c.lock_message = m.id`). So a claim
//!   writes one row, and a message's `messages_conversation` entry moves once,
//!   when it is settled.

use rusqlite::{params, OptionalExtension};

use crate::error::{Error, Result};
use crate::store::Tx;

/// The columns of a conversation that the queue needs.
#[derive(Debug, Clone)]
pub struct ConversationRow {
    /// Row key.
    pub id: i64,
    /// Public id.
    pub conversation_id: String,
    /// Bound agent.
    pub agent_key: String,
    /// idle, waiting, ready or busy.
    pub state: String,
    /// Head message key.
    pub head_message: Option<i64>,
    /// Head ordering time.
    pub head_order_at: Option<i64>,
}

/// Check a conversation id.
pub fn validate_conversation_id(conversation_id: &str) -> Result<()> {
    if conversation_id.trim().is_empty() || conversation_id.chars().count() > 512 {
        return Err(Error::validation(format!(
            "conversationId {conversation_id:?} must be a non-blank string of at most 512 characters"
        )));
    }
    Ok(())
}

/// Load a conversation by public id.
pub fn find(tx: &Tx, conversation_id: &str) -> Result<Option<ConversationRow>> {
    Ok(tx
        .prepare_cached(
            "SELECT id, conversation_id, agent_key, state, head_message, head_order_at FROM conversations WHERE conversation_id = ?1",
        )?
        .query_row([conversation_id], |r| {
            Ok(ConversationRow {
                id: r.get(0)?,
                conversation_id: r.get(1)?,
                agent_key: r.get(2)?,
                state: r.get(3)?,
                head_message: r.get(4)?,
                head_order_at: r.get(5)?,
            })
        })
        .optional()?)
}

/// Find or create the conversation, enforcing its agent binding.
pub fn bind(tx: &Tx, conversation_id: &str, agent_key: &str, now: i64) -> Result<ConversationRow> {
    if let Some(row) = find(tx, conversation_id)? {
        if row.agent_key != agent_key {
            return Err(Error::conflict(format!(
                "Conversation '{conversation_id}' is already bound to agent '{}', cannot enqueue for '{agent_key}'.",
                row.agent_key
            )));
        }
        return Ok(row);
    }
    tx.prepare_cached("INSERT INTO conversations(conversation_id, agent_key, state, created_at) VALUES (?1, ?2, 'idle', ?3)")?
        .execute(params![conversation_id, agent_key, now])?;
    Ok(ConversationRow {
        id: tx.last_insert_rowid(),
        conversation_id: conversation_id.to_string(),
        agent_key: agent_key.to_string(),
        state: "idle".into(),
        head_message: None,
        head_order_at: None,
    })
}

/// A just-inserted pending message may become the head (idle conversation, or it sorts first).
pub fn offer_head(
    tx: &Tx,
    conv: &mut ConversationRow,
    message: i64,
    priority: i64,
    scheduled_for: i64,
    now: i64,
) -> Result<()> {
    let becomes_head = match conv.state.as_str() {
        "idle" => true,
        "busy" => false,
        _ => {
            (scheduled_for, message)
                < (
                    conv.head_order_at.unwrap_or(i64::MAX),
                    conv.head_message.unwrap_or(i64::MAX),
                )
        }
    };
    if becomes_head {
        let state = if scheduled_for <= now {
            "ready"
        } else {
            "waiting"
        };
        tx.prepare_hot(
            "UPDATE conversations SET state = ?2, head_message = ?3, head_priority = ?4, head_order_at = ?5, head_ready_at = ?5
             WHERE id = ?1",
        )?
        .execute(params![conv.id, state, message, priority, scheduled_for])?;
        conv.state = state.to_string();
        conv.head_message = Some(message);
        conv.head_order_at = Some(scheduled_for);
    }
    Ok(())
}

/// Clear the lock and recompute the head from the pending messages (one
/// statement: both subqueries seek the same `messages_conversation` entry).
pub fn refresh_head(tx: &Tx, conversation_ref: i64, now: i64) -> Result<()> {
    tx.prepare_hot(
        "UPDATE conversations SET
           state = coalesce((SELECT CASE WHEN ready_at <= ?2 THEN 'ready' ELSE 'waiting' END FROM messages
                             WHERE conversation_ref = ?1 AND pending_rank = 0 ORDER BY order_key, id LIMIT 1), 'idle'),
           (head_message, head_priority, head_order_at, head_ready_at) =
             (SELECT id, priority, scheduled_for, ready_at FROM messages
              WHERE conversation_ref = ?1 AND pending_rank = 0 ORDER BY order_key, id LIMIT 1),
           lock_message = NULL, lock_lease_id = NULL, lock_worker_id = NULL, lock_expires_at = NULL, lock_heartbeat_at = NULL
         WHERE id = ?1",
    )?
    .execute(params![conversation_ref, now])?;
    Ok(())
}

/// Move conversations whose head became due from `waiting` to `ready`.
pub fn promote_due(tx: &Tx, now: i64) -> Result<usize> {
    Ok(tx
        .prepare_hot(
            "UPDATE conversations SET state = 'ready' WHERE state = 'waiting' AND sched_k1 <= ?1",
        )?
        .execute([now])?)
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    /// system, user, assistant or tool.
    pub role: String,
    /// Text.
    pub content: String,
    /// Time.
    pub at: i64,
}

/// Roles a history entry may have.
pub const ROLES: &[&str] = &["system", "user", "assistant", "tool"];

/// The newest `limit` history entries, oldest first.
pub fn history(tx: &Tx, conversation_ref: i64, limit: i64) -> Result<Vec<HistoryEntry>> {
    let mut stmt = tx.prepare_cached(
        "SELECT role, content, at FROM (SELECT id, role, content, at FROM conversation_history
           WHERE conversation_ref = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![conversation_ref, limit], |r| {
            Ok(HistoryEntry {
                role: r.get(0)?,
                content: r.get(1)?,
                at: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Fingerprint of a history window: `"f" + hex(fnv1a32_utf16("role:at:content|…"))`.
pub fn fingerprint(entries: &[HistoryEntry]) -> String {
    let joined = entries
        .iter()
        .map(|e| format!("{}:{}:{}", e.role, e.at, e.content))
        .collect::<Vec<_>>()
        .join("|");
    format!("f{:x}", crate::ids::fnv1a32_utf16(&joined))
}
