//! Read side of the queue: stats, job listings, scheduler counts, conversation
//! views, and appending conversation history.
//!
//! Every query here is served by an index whose size is bounded by live work
//! (pending, in-flight, dead-lettered rows or one conversation's rows), never by
//! the number of finished messages in the whole table.

use rusqlite::{params, Row};
use serde_json::Value;

use super::conversations::{self, validate_conversation_id, HistoryEntry, ROLES};
use super::validate_status;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::store::Tx;

/// Window of history served to workers when a hydration cache matches.
pub const DELTA_WINDOW: i64 = 64;

/// Queue counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Queued and due now.
    pub queued_ready: i64,
    /// Queued but scheduled later or backing off.
    pub queued_delayed: i64,
    /// In flight.
    pub processing: i64,
    /// Dead-lettered.
    pub dead_letter: i64,
    /// When the oldest due message became due.
    pub oldest_ready_at: Option<i64>,
}

/// One message as listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobView {
    /// Message id.
    pub message_id: String,
    /// Conversation.
    pub conversation_id: String,
    /// Agent.
    pub agent_key: String,
    /// Status.
    pub status: String,
    /// Priority.
    pub priority: i64,
    /// Scheduled time (ordering key within the conversation).
    pub scheduled_for: i64,
    /// Retry time after a failure.
    pub next_retry_at: Option<i64>,
    /// Failed deliveries so far.
    pub attempts: i64,
    /// Limit.
    pub max_attempts: i64,
    /// Last error.
    pub last_error: Option<String>,
    /// Worker that holds (or last held) it.
    pub claimed_by: Option<String>,
    /// Lease end while processing.
    pub lease_expires_at: Option<i64>,
    /// Enqueue time.
    pub created_at: i64,
    /// Done or dead-letter time.
    pub finished_at: Option<i64>,
    /// Payload.
    pub payload: Value,
}

/// Scheduler counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConversationCounts {
    /// Conversations whose head can be claimed now.
    pub ready: i64,
    /// Ready plus conversations with a message in flight.
    pub active: i64,
}

/// A conversation with its history and recent messages.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConversationView {
    /// Id.
    pub conversation_id: String,
    /// Bound agent.
    pub agent_key: String,
    /// idle, waiting, ready or busy.
    pub state: String,
    /// History (oldest first, bounded).
    pub context_history: Vec<HistoryEntry>,
    /// Recent messages, newest first.
    pub queue_items: Vec<JobView>,
    /// Whether anything is queued or in flight.
    pub has_queued_jobs: bool,
    /// Worker holding the in-flight message.
    pub locked_by: Option<String>,
    /// Latest user entry time.
    pub last_user_message_at: Option<i64>,
    /// Latest assistant entry time.
    pub last_assistant_message_at: Option<i64>,
}

/// Columns of a [`JobView`] over `messages m JOIN conversations c`. A message
/// in flight reads its status, holder and lease end from the conversation lock
/// (its own row still says `queued`, see [`conversations`]).
pub(crate) const JOB_COLUMNS: &str = "m.id, c.conversation_id, m.agent_key, \
    CASE WHEN c.lock_message = m.id THEN 'processing' ELSE m.status END, m.priority, m.scheduled_for, m.next_retry_at, \
    m.attempts, m.max_attempts, m.last_error, CASE WHEN c.lock_message = m.id THEN c.lock_worker_id ELSE m.claimed_by END, \
    CASE WHEN c.lock_message = m.id THEN c.lock_expires_at END, m.created_at, m.finished_at, m.payload";

/// A [`JobView`] from [`JOB_COLUMNS`], with its raw payload (parsed by [`collect_jobs`]).
pub(crate) fn job_from_row(r: &Row<'_>) -> rusqlite::Result<(JobView, String)> {
    Ok((
        JobView {
            message_id: ids::message_id(r.get(0)?),
            conversation_id: r.get(1)?,
            agent_key: r.get(2)?,
            status: r.get(3)?,
            priority: r.get(4)?,
            scheduled_for: r.get(5)?,
            next_retry_at: r.get(6)?,
            attempts: r.get(7)?,
            max_attempts: r.get(8)?,
            last_error: r.get(9)?,
            claimed_by: r.get(10)?,
            lease_expires_at: r.get(11)?,
            created_at: r.get(12)?,
            finished_at: r.get(13)?,
            payload: Value::Null,
        },
        r.get(14)?,
    ))
}

/// Parse the payloads of rows read by [`job_from_row`].
pub(crate) fn collect_jobs(rows: Vec<(JobView, String)>) -> Result<Vec<JobView>> {
    rows.into_iter()
        .map(|(mut j, p)| {
            j.payload = serde_json::from_str(&p)?;
            Ok(j)
        })
        .collect()
}

/// One message by its row key, inside `tx`.
pub(crate) fn job_in(tx: &Tx, key: i64) -> Result<Option<JobView>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_ref WHERE m.id = ?1"
    );
    let rows = tx
        .prepare_cached(&sql)?
        .query_map([key], job_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(collect_jobs(rows)?.pop())
}

fn check_limit(limit: i64, max: i64) -> Result<()> {
    if (1..=max).contains(&limit) {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "limit must be within 1..={max}, got {limit}"
        )))
    }
}

fn conversation_items(tx: &Tx, conv_ref: i64, limit: i64) -> Result<Vec<JobView>> {
    // The newest `limit` of the conversation's finished messages
    // (index order) and of its pending ones, merged by id.
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_ref
         WHERE m.id IN (
           SELECT id FROM (SELECT id FROM messages WHERE conversation_ref = ?1 AND pending_rank = 1
                           ORDER BY order_key, id LIMIT ?2)
           UNION ALL
           SELECT id FROM (SELECT id FROM messages WHERE conversation_ref = ?1 AND pending_rank = 0
                           ORDER BY id DESC LIMIT ?2))
         ORDER BY m.id DESC LIMIT ?2"
    );
    let rows = tx
        .prepare_cached(&sql)?
        .query_map(params![conv_ref, limit], job_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    collect_jobs(rows)
}

impl Factory {
    /// Queue counters at `now`.
    pub fn queue_stats(&self, now_ms: Option<i64>) -> Result<QueueStats> {
        let now = self.now(now_ms)?;
        self.store.read(|tx| {
            // Pending messages live in non-idle conversations: read those through
            // conversations_sched, then each one's pending range.
            let (ready, delayed, oldest): (i64, i64, Option<i64>) = tx.query_row(
                "SELECT coalesce(sum(m.ready_at <= ?1), 0), coalesce(sum(m.ready_at > ?1), 0),
                        min(CASE WHEN m.ready_at <= ?1 THEN m.ready_at END)
                 FROM conversations c JOIN messages m ON m.conversation_ref = c.id AND m.pending_rank = 0
                 WHERE c.sched_k1 IS NOT NULL AND m.id IS NOT c.lock_message",
                [now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let processing: i64 = tx.query_row(
                "SELECT count(*) FROM conversations WHERE state = 'busy' AND sched_k1 IS NOT NULL",
                [],
                |r| r.get(0),
            )?;
            let dead: i64 = tx.query_row("SELECT count(*) FROM messages WHERE status = 'dead_letter'", [], |r| r.get(0))?;
            Ok(QueueStats { queued_ready: ready, queued_delayed: delayed, processing, dead_letter: dead, oldest_ready_at: oldest })
        })
    }

    /// Messages of one status: queued and processing oldest first, done and dead-letter newest first.
    pub fn list_jobs(&self, status: &str, limit: i64) -> Result<Vec<JobView>> {
        validate_status(status)?;
        check_limit(limit, 10_000)?;
        // Pending and in-flight messages are reached through their (non-idle)
        // conversations; finished ones from the newest row back.
        let source = match status {
            "queued" => "FROM conversations c JOIN messages m ON m.conversation_ref = c.id AND m.pending_rank = 0
                         WHERE c.sched_k1 IS NOT NULL AND m.id IS NOT c.lock_message ORDER BY m.scheduled_for, m.id",
            "processing" => "FROM conversations c JOIN messages m ON m.id = c.lock_message
                             WHERE c.state = 'busy' AND c.sched_k1 IS NOT NULL ORDER BY m.scheduled_for, m.id",
            _ => "FROM messages m JOIN conversations c ON c.id = m.conversation_ref WHERE m.status = ?2 ORDER BY m.id DESC",
        };
        self.store.read(|tx| {
            let sql = format!("SELECT {JOB_COLUMNS} {source} LIMIT ?1");
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = if matches!(status, "queued" | "processing") {
                stmt.query_map(params![limit], job_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            } else {
                stmt.query_map(params![limit, status], job_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            collect_jobs(rows)
        })
    }

    /// One message, or `None`.
    pub fn get_job(&self, message_id: &str) -> Result<Option<JobView>> {
        let key = ids::parse_message_id(message_id)?;
        self.store.read(|tx| job_in(tx, key))
    }

    /// Conversations with claimable work, and those plus in-flight ones.
    pub fn conversation_counts(&self, now_ms: Option<i64>) -> Result<ConversationCounts> {
        let now = self.now(now_ms)?;
        self.store.read(|tx| {
            let ready: i64 = tx.query_row(
                "SELECT (SELECT count(*) FROM conversations WHERE state = 'ready' AND sched_k1 IS NOT NULL AND head_ready_at <= ?1)
                      + (SELECT count(*) FROM conversations WHERE state = 'waiting' AND sched_k1 <= ?1)",
                [now],
                |r| r.get(0),
            )?;
            let busy: i64 = tx.query_row(
                "SELECT count(*) FROM conversations WHERE state = 'busy' AND sched_k1 IS NOT NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(ConversationCounts { ready, active: ready + busy })
        })
    }

    /// Active conversations as `(agent_key, conversation_id)`, sorted, at most `limit`.
    pub fn active_conversations(
        &self,
        limit: i64,
        now_ms: Option<i64>,
    ) -> Result<Vec<(String, String)>> {
        check_limit(limit, 100_000)?;
        let now = self.now(now_ms)?;
        self.store.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT agent_key, conversation_id FROM conversations
                 WHERE sched_k1 IS NOT NULL AND (state = 'busy' OR (state IN ('ready', 'waiting') AND head_ready_at <= ?1))
                 ORDER BY agent_key, conversation_id LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Whether a conversation has anything queued or in flight.
    pub fn has_queued_jobs(&self, conversation_id: &str) -> Result<bool> {
        validate_conversation_id(conversation_id)?;
        self.store.read(|tx| {
            Ok(conversations::find(tx, conversation_id)?.is_some_and(|c| c.state != "idle"))
        })
    }

    /// Recent messages of a conversation, newest first.
    pub fn list_conversation_jobs(
        &self,
        conversation_id: &str,
        limit: i64,
    ) -> Result<Vec<JobView>> {
        validate_conversation_id(conversation_id)?;
        check_limit(limit, 500)?;
        self.store
            .read(|tx| match conversations::find(tx, conversation_id)? {
                None => Ok(Vec::new()),
                Some(c) => conversation_items(tx, c.id, limit),
            })
    }

    /// A conversation with history and recent messages, or `None`.
    pub fn conversation_view(
        &self,
        conversation_id: &str,
        limit: i64,
    ) -> Result<Option<ConversationView>> {
        validate_conversation_id(conversation_id)?;
        check_limit(limit, 500)?;
        let history_limit = self.config().queue.history_limit;
        self.store.read(|tx| {
            let Some(c) = conversations::find(tx, conversation_id)? else {
                return Ok(None);
            };
            let history = conversations::history(tx, c.id, history_limit)?;
            let items = conversation_items(tx, c.id, limit)?;
            let locked_by: Option<String> = tx.query_row(
                "SELECT lock_worker_id FROM conversations WHERE id = ?1",
                [c.id],
                |r| r.get(0),
            )?;
            let last_at = |role: &str| {
                history
                    .iter()
                    .filter(|e| e.role == role)
                    .map(|e| e.at)
                    .max()
            };
            Ok(Some(ConversationView {
                last_user_message_at: last_at("user"),
                last_assistant_message_at: last_at("assistant"),
                conversation_id: c.conversation_id,
                agent_key: c.agent_key,
                has_queued_jobs: c.state != "idle",
                state: c.state,
                context_history: history,
                queue_items: items,
                locked_by,
            }))
        })
    }

    /// Append entries to a conversation's history (bounded by `queue.history_limit`).
    /// Returns `(updated, message_count)`; an unknown conversation gives `(false, 0)`.
    pub fn append_conversation_messages(
        &self,
        conversation_id: &str,
        entries: &[(String, String, Option<i64>)],
        workspace_id: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<(bool, i64)> {
        validate_conversation_id(conversation_id)?;
        for (i, (role, content, _)) in entries.iter().enumerate() {
            if !ROLES.contains(&role.as_str()) {
                return Err(Error::validation(format!(
                    "messages[{i}].role must be one of {}, got {role:?}",
                    ROLES.join(", ")
                )));
            }
            if content.len() > 1 << 20 {
                return Err(Error::validation(format!(
                    "messages[{i}].content is larger than 1 MiB"
                )));
            }
        }
        let workspace = workspace_id.unwrap_or("default");
        crate::validate::workspace_id(workspace)?;
        for (i, (_, _, at)) in entries.iter().enumerate() {
            crate::validate::timestamp(&format!("messages[{i}].at"), *at)?;
        }
        let limit = self.config().queue.history_limit;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let Some(c) = conversations::find(tx, conversation_id)? else {
                return Ok((false, 0));
            };
            for (i, (role, content, at)) in entries.iter().enumerate() {
                tx.prepare_cached("INSERT INTO conversation_history(conversation_ref, role, content, at) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![c.id, role, content, at.unwrap_or(now + i as i64)])?;
            }
            tx.prepare_cached(
                "DELETE FROM conversation_history WHERE conversation_ref = ?1 AND id <= coalesce(
                   (SELECT id FROM conversation_history WHERE conversation_ref = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2), 0)",
            )?
            .execute(params![c.id, limit])?;
            let window = conversations::history(tx, c.id, DELTA_WINDOW)?;
            tx.prepare_cached(
                "INSERT INTO hydration_cache(conversation_ref, snapshot_key, last_hydrated_at, delta_fingerprint) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(conversation_ref) DO UPDATE SET snapshot_key = excluded.snapshot_key,
                   last_hydrated_at = excluded.last_hydrated_at, delta_fingerprint = excluded.delta_fingerprint",
            )?
            .execute(params![c.id, format!("{workspace}:{}", c.agent_key), now, conversations::fingerprint(&window)])?;
            let count: i64 =
                tx.query_row("SELECT count(*) FROM conversation_history WHERE conversation_ref = ?1", [c.id], |r| r.get(0))?;
            Ok((true, count))
        })
    }
}
