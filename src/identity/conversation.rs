//! A user's agent conversation: its queue items, history view, snapshots, and
//! sending a message to it.
//!
//! Invariants: reads address the stable conversation
//! `user-agent:<agentKey>:<consumerUserId>` (every binding of that pair stores
//! exactly that id, so the history outlives re-pairing); a status filter is
//! applied inside the index walk, before the limit; a send requires the user's
//! active binding to be for that agent and enqueues in the same transaction
//! that read the binding.

use rusqlite::params;
use serde::Serialize;
use serde_json::{Map, Value};

use super::target::active_target_for_agent;
use super::{check_limit, validate_consumer_user_id, validate_metadata};
use crate::agents::validate_agent_key;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::queue::conversations::{self, validate_conversation_id};
use crate::queue::stats::{collect_jobs, job_from_row, JOB_COLUMNS};
use crate::queue::{validate_status, ConversationView, EnqueueRequest, JobView};
use crate::snapshots::Snapshot;
use crate::store::Tx;

/// Largest page of queue items.
pub const MAX_QUEUE_ITEMS: i64 = 500;
/// Longest message text sent through [`Factory::send_message_to_user_agent`].
pub const MAX_CONTENT_CHARS: usize = 32_768;

/// A user's agent conversation: the conversation view plus who and the newest message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserAgentConversation {
    /// The user.
    pub consumer_user_id: String,
    /// History, recent queue items and state of the conversation.
    #[serde(flatten)]
    pub view: ConversationView,
    /// Id of the newest queue item, if any.
    pub latest_message_id: Option<String>,
}

/// Which statuses a listing wants (`None`: all).
fn status_filter(statuses: Option<&[String]>) -> Result<[bool; 4]> {
    let Some(list) = statuses else {
        return Ok([true; 4]);
    };
    if list.is_empty() {
        return Err(Error::validation(
            "statuses must name at least one status (or be omitted for all)",
        ));
    }
    let mut want = [false; 4];
    for s in list {
        validate_status(s)?;
        let i = crate::queue::STATUSES
            .iter()
            .position(|x| x == s)
            .unwrap_or_default();
        want[i] = true;
    }
    Ok(want)
}

/// Up to `limit` items of one conversation with a wanted status, newest
/// scheduled first. Queued and in-flight items come from the index range of
/// pending rows (ordered by `scheduled_for`), finished ones from the finished
/// range (newest first), each walked only until `limit` matches are found.
fn items_in(tx: &Tx, conversation_id: &str, want: [bool; 4], limit: i64) -> Result<Vec<JobView>> {
    let Some(conv) = conversations::find(tx, conversation_id)? else {
        return Ok(Vec::new());
    };
    let mut rows: Vec<(JobView, String)> = Vec::new();
    // The pending range holds the queued messages and the one in flight (its row
    // stays `queued`; the conversation lock marks it).
    if want[0] || want[1] {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_ref
             WHERE m.conversation_ref = ?1 AND m.pending_rank = 0
               AND ((?3 AND c.lock_message IS NOT m.id) OR (?4 AND c.lock_message = m.id))
             ORDER BY m.order_key DESC, m.id DESC LIMIT ?2"
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        for row in stmt.query_map(params![conv.id, limit, want[0], want[1]], job_from_row)? {
            rows.push(row?);
        }
    }
    if want[2] || want[3] {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_ref
             WHERE m.conversation_ref = ?1 AND m.pending_rank = 1
               AND ((?3 AND m.status = 'done') OR (?4 AND m.status = 'dead_letter'))
             ORDER BY m.order_key, m.id LIMIT ?2"
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let p = params![conv.id, limit, want[2], want[3]];
        for row in stmt.query_map(p, job_from_row)? {
            rows.push(row?);
        }
    }
    // Message ids are row keys in decimal: they order items enqueued at one time.
    let key = |j: &JobView| ids::parse_message_id(&j.message_id).unwrap_or_default();
    rows.sort_by_key(|(j, _)| std::cmp::Reverse((j.scheduled_for, key(j))));
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    collect_jobs(rows)
}

fn check_user_agent(user: &str, agent: &str) -> Result<String> {
    validate_consumer_user_id(user)?;
    validate_agent_key(agent)?;
    Ok(ids::user_agent_conversation_id(agent, user))
}

impl Factory {
    /// Queue items of the user's agent conversation, newest scheduled first.
    /// `statuses` (default all) filters before `limit` (1..=500) is applied.
    pub fn list_queue_items_for_user_agent(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        statuses: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<JobView>> {
        let conversation_id = check_user_agent(consumer_user_id, agent_key)?;
        let want = status_filter(statuses)?;
        check_limit(limit, MAX_QUEUE_ITEMS)?;
        self.store
            .read(|tx| items_in(tx, &conversation_id, want, limit))
    }

    /// Queue items of any conversation, newest scheduled first (limit 1..=500).
    pub fn list_queue_items_for_conversation(
        &self,
        conversation_id: &str,
        limit: i64,
    ) -> Result<Vec<JobView>> {
        validate_conversation_id(conversation_id)?;
        check_limit(limit, MAX_QUEUE_ITEMS)?;
        self.store
            .read(|tx| items_in(tx, conversation_id, [true; 4], limit))
    }

    /// The user's agent conversation: history, recent queue items (at most
    /// `limit`, 1..=500), whether work is pending, the newest message id and
    /// the last user / assistant message times. An untouched conversation gives
    /// an empty `idle` view.
    pub fn user_agent_conversation_view(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        limit: i64,
    ) -> Result<UserAgentConversation> {
        let conversation_id = check_user_agent(consumer_user_id, agent_key)?;
        let view = self
            .conversation_view(&conversation_id, limit)?
            .unwrap_or_else(|| ConversationView {
                conversation_id: conversation_id.clone(),
                agent_key: agent_key.to_string(),
                state: "idle".into(),
                context_history: Vec::new(),
                queue_items: Vec::new(),
                has_queued_jobs: false,
                locked_by: None,
                last_user_message_at: None,
                last_assistant_message_at: None,
            });
        Ok(UserAgentConversation {
            consumer_user_id: consumer_user_id.to_string(),
            latest_message_id: view.queue_items.first().map(|j| j.message_id.clone()),
            view,
        })
    }

    /// Send `content` to the user's agent now; returns the message id. Needs
    /// the user's active binding for `agent_key` (routed over Telegram when it
    /// has a chat, else `system_push`); metadata gets `source: user_agent_api`.
    pub fn send_message_to_user_agent(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        content: &str,
        metadata: Option<&Map<String, Value>>,
        now_ms: Option<i64>,
    ) -> Result<String> {
        check_user_agent(consumer_user_id, agent_key)?;
        crate::validate::text("content", content, MAX_CONTENT_CHARS)?;
        if let Some(m) = metadata {
            validate_metadata("metadata", m)?;
        }
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let mut meta = metadata.cloned().unwrap_or_default();
            meta.insert("source".into(), "user_agent_api".into());
            self.send_to_user_agent_in(tx, consumer_user_id, agent_key, content, meta, now)
        })
    }

    /// Enqueue `text` for the user's active binding of `agent_key` inside `tx`.
    pub(crate) fn send_to_user_agent_in(
        &self,
        tx: &Tx,
        consumer_user_id: &str,
        agent_key: &str,
        text: &str,
        metadata: Map<String, Value>,
        now: i64,
    ) -> Result<String> {
        let target =
            active_target_for_agent(tx, consumer_user_id, agent_key)?.ok_or_else(|| {
                Error::not_found("No active binding found for consumerUserId and agentKey")
            })?;
        let req = EnqueueRequest {
            conversation_id: target.conversation_id.clone(),
            agent_key: target.agent_key.clone(),
            payload: target.payload(text, metadata),
            priority: None,
            scheduled_for: Some(now),
            max_attempts: None,
        };
        self.enqueue_within(tx, &req, now)
    }

    /// Snapshots of the user's agent conversation only, newest first (limit
    /// clamped to 1..=200, default 50).
    pub fn list_snapshots_for_user_agent(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        limit: Option<i64>,
        now_ms: Option<i64>,
    ) -> Result<Vec<Snapshot>> {
        let conversation_id = check_user_agent(consumer_user_id, agent_key)?;
        self.list_snapshots_for_conversation(Some(&conversation_id), limit, now_ms)
    }

    /// The newest snapshot (any status) of the user's agent conversation, or `None`.
    pub fn latest_snapshot_for_user_agent(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        now_ms: Option<i64>,
    ) -> Result<Option<Snapshot>> {
        Ok(self
            .list_snapshots_for_user_agent(consumer_user_id, agent_key, Some(1), now_ms)?
            .into_iter()
            .next())
    }
}
