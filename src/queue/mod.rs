//! The durable per-conversation queue.
//!
//! Guarantees (each enforced by one transaction per operation):
//! - at most one message per conversation is `processing` (held by the
//!   conversation's lock, see [`conversations`]);
//! - within a conversation, messages are delivered in `(scheduled_for, enqueue
//!   order)`, also after retries and lease recovery;
//! - across conversations, the ready head with the highest priority, then the
//!   oldest, is claimed first, read from one partial index of ready heads, so
//!   locked or owned conversations never hide others;
//! - every claim gets a fresh unguessable lease id; heartbeat, complete and fail
//!   must present it (fencing), so a stale owner changes nothing;
//! - an expired lease counts as a failed attempt, so a message that keeps killing
//!   its workers reaches dead letter.

mod claim;
pub mod conversations;
mod enqueue;
pub mod payload;
mod recovery;
mod requeue;
mod settle;
pub(crate) mod stats;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use claim::ClaimOptions;
pub use conversations::HistoryEntry;
pub use payload::Attachment;
pub(crate) use recovery::release_expired_in;
pub use recovery::ReleaseOutcome;
pub use settle::FailOutcome;
pub use stats::{ConversationCounts, ConversationView, JobView, QueueStats, DELTA_WINDOW};

/// Lease end of `(worker, message, lease)` if that lease is still the message's
/// current one; `NotFound` for an unknown message.
pub(crate) fn held_lease(
    tx: &crate::store::Tx,
    worker_id: &str,
    message_id: &str,
    lease_id: &str,
) -> crate::error::Result<Option<i64>> {
    Ok(settle::held(tx, worker_id, message_id, lease_id)?.map(|h| h.lease_expires_at))
}

/// A message to enqueue.
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    /// Conversation (created on first use, bound to `agent_key`).
    pub conversation_id: String,
    /// Target agent (must exist and be enabled).
    pub agent_key: String,
    /// Wire payload (camelCase keys).
    pub payload: Value,
    /// 0..=max_priority, higher first (clamped); default from config.
    pub priority: Option<i64>,
    /// Not before this time; default now.
    pub scheduled_for: Option<i64>,
    /// Attempts before dead letter; default from config.
    pub max_attempts: Option<i64>,
}

/// A claimed message.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Claim {
    /// Message id.
    pub message_id: String,
    /// Conversation.
    pub conversation_id: String,
    /// Agent.
    pub agent_key: String,
    /// Worker holding the lease.
    pub worker_id: String,
    /// Fencing token.
    pub lease_id: String,
    /// Lease end.
    pub lease_expires_at: i64,
    /// Which delivery this is (1 = first).
    pub attempt: i64,
    /// Priority.
    pub priority: i64,
    /// The payload JSON.
    pub payload: Value,
}

/// Message statuses.
pub const STATUSES: &[&str] = &["queued", "processing", "done", "dead_letter"];

/// Parse a status filter.
pub fn validate_status(status: &str) -> crate::error::Result<()> {
    if STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(crate::error::Error::validation(format!(
            "status {status:?} must be one of {}",
            STATUSES.join(", ")
        )))
    }
}
