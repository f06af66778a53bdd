//! `enqueue` and `enqueue_many`.
//!
//! A batch is one transaction: all messages or none. Within it each distinct
//! agent is checked once and each conversation row is read once.

use std::collections::{HashMap, HashSet};

use rusqlite::params;

use super::conversations::{self, validate_conversation_id, ConversationRow};
use super::payload;
use super::EnqueueRequest;
use crate::agents::{check_enabled, require_enabled, validate_agent_key};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::settings::{message_config_in, parse_message_config, MESSAGE_KEY};
use crate::store::Tx;

/// Largest batch accepted by `enqueue_many`.
pub const MAX_BATCH: usize = 100_000;

fn check_request(req: &EnqueueRequest) -> Result<()> {
    validate_conversation_id(&req.conversation_id)?;
    validate_agent_key(&req.agent_key)?;
    if let Some(m) = req.max_attempts {
        if !(1..=1000).contains(&m) {
            return Err(Error::validation(format!(
                "maxAttempts must be within 1..=1000, got {m}"
            )));
        }
    }
    crate::validate::timestamp("scheduledFor", req.scheduled_for)
}

/// What one transaction already checked: enabled agents and bound conversations.
#[derive(Default)]
struct Seen {
    agents: HashSet<String>,
    conversations: HashMap<String, ConversationRow>,
}

/// Settings read once per transaction.
struct Batch<'a> {
    factory: &'a Factory,
    cfg: &'a Config,
    prompt: Option<String>,
    now: i64,
}

/// Insert one message inside `tx`; returns its row key.
fn enqueue_in(tx: &Tx, b: &Batch<'_>, req: &EnqueueRequest, seen: &mut Seen) -> Result<i64> {
    if !seen.agents.contains(&req.agent_key) {
        require_enabled(tx, &req.agent_key)?;
        seen.agents.insert(req.agent_key.clone());
    }
    let prepared = payload::prepare(
        &req.payload,
        b.prompt.as_deref(),
        &b.factory.blobs,
        b.cfg.queue.max_payload_bytes,
    )?;
    if !seen.conversations.contains_key(&req.conversation_id) {
        let row = conversations::bind(tx, &req.conversation_id, &req.agent_key, b.now)?;
        seen.conversations.insert(req.conversation_id.clone(), row);
    }
    let conv = seen
        .conversations
        .get_mut(&req.conversation_id)
        .ok_or_else(|| Error::storage("conversation cache lost an entry"))?;
    if conv.agent_key != req.agent_key {
        return Err(Error::conflict(format!(
            "Conversation '{}' is already bound to agent '{}', cannot enqueue for '{}'.",
            req.conversation_id, conv.agent_key, req.agent_key
        )));
    }
    let priority = req
        .priority
        .unwrap_or(b.cfg.queue.default_priority)
        .clamp(0, b.cfg.queue.max_priority);
    let scheduled_for = req.scheduled_for.unwrap_or(b.now);
    let max_attempts = req.max_attempts.unwrap_or(b.cfg.retry.max_attempts);
    tx.prepare_hot(
        "INSERT INTO messages(conversation_ref, agent_key, payload, status, priority, scheduled_for, ready_at, attempts,
            max_attempts, created_at)
         VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?5, 0, ?6, ?7)",
    )?
    .execute(params![conv.id, req.agent_key, prepared.json, priority, scheduled_for, max_attempts, b.now])?;
    let id = tx.last_insert_rowid();
    for a in &prepared.attachments {
        tx.prepare_cached(
            "INSERT INTO message_attachments(message_ref, conversation_id, agent_key, provider, kind, status, blob_sha256,
                telegram_file_id, file_name, mime_type, size_bytes, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            id,
            req.conversation_id,
            req.agent_key,
            prepared.provider,
            a.kind,
            a.status,
            a.storage_id,
            a.telegram_file_id,
            a.file_name,
            a.mime_type,
            a.size_bytes,
            b.now,
            a.expires_at
        ])?;
    }
    conversations::offer_head(tx, conv, id, priority, scheduled_for, b.now)?;
    crate::metrics::incr(crate::metrics::Counter::MessagesEnqueued);
    Ok(id)
}

/// Everything a single enqueue reads before it writes, in one statement: the
/// agent's `enabled` flag, the raw message config and the conversation row.
fn lookup_single(
    tx: &Tx,
    req: &EnqueueRequest,
) -> Result<(Option<bool>, Option<String>, Option<ConversationRow>)> {
    let mut stmt = tx.prepare_hot(
        "SELECT a.enabled, (SELECT value FROM runtime_config WHERE key = ?3),
                c.id, c.conversation_id, c.agent_key, c.state, c.head_message, c.head_order_at
         FROM (SELECT 1) LEFT JOIN agents a ON a.agent_key = ?1 LEFT JOIN conversations c ON c.conversation_id = ?2",
    )?;
    Ok(stmt.query_row(
        params![req.agent_key, req.conversation_id, MESSAGE_KEY],
        |r| {
            let conv = match r.get::<_, Option<i64>>(2)? {
                None => None,
                Some(id) => Some(ConversationRow {
                    id,
                    conversation_id: r.get(3)?,
                    agent_key: r.get(4)?,
                    state: r.get(5)?,
                    head_message: r.get(6)?,
                    head_order_at: r.get(7)?,
                }),
            };
            Ok((r.get(0)?, r.get(1)?, conv))
        },
    )?)
}

impl Factory {
    fn batch<'a>(&'a self, tx: &Tx, cfg: &'a Config, now: i64) -> Result<Batch<'a>> {
        let prompt = message_config_in(tx)?.and_then(|c| c.system_prompt);
        Ok(Batch {
            factory: self,
            cfg,
            prompt,
            now,
        })
    }

    /// Enqueue one message; returns its id.
    pub fn enqueue(&self, req: &EnqueueRequest, now_ms: Option<i64>) -> Result<String> {
        check_request(req)?;
        let cfg = self.config();
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| {
                let (enabled, message_config, conversation) = lookup_single(tx, req)?;
                check_enabled(&req.agent_key, enabled)?;
                let prompt =
                    parse_message_config(message_config.as_deref())?.and_then(|c| c.system_prompt);
                let batch = Batch {
                    factory: self,
                    cfg: &cfg,
                    prompt,
                    now,
                };
                let mut seen = Seen::default();
                seen.agents.insert(req.agent_key.clone());
                if let Some(row) = conversation {
                    seen.conversations.insert(req.conversation_id.clone(), row);
                }
                enqueue_in(tx, &batch, req, &mut seen)
            })
            .map(ids::message_id)
    }

    /// Enqueue one message inside the caller's transaction `tx` (push dispatch,
    /// broadcasts, template sends and Telegram ingestion write their audit rows
    /// in the same transaction). Same checks as [`Factory::enqueue`]; returns the
    /// message id.
    pub(crate) fn enqueue_within(&self, tx: &Tx, req: &EnqueueRequest, now: i64) -> Result<String> {
        check_request(req)?;
        let cfg = self.config();
        let batch = self.batch(tx, &cfg, now)?;
        enqueue_in(tx, &batch, req, &mut Seen::default()).map(ids::message_id)
    }

    /// Enqueue many messages in one transaction: all or nothing. Ids come back in
    /// input order; an error names the (0-based) item.
    pub fn enqueue_many(
        &self,
        reqs: &[EnqueueRequest],
        now_ms: Option<i64>,
    ) -> Result<Vec<String>> {
        if reqs.len() > MAX_BATCH {
            return Err(Error::validation(format!(
                "enqueue_many takes at most {MAX_BATCH} messages, got {}",
                reqs.len()
            )));
        }
        for (i, r) in reqs.iter().enumerate() {
            check_request(r).map_err(|e| e.with_context(&format!("item {i}")))?;
        }
        let cfg = self.config();
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let batch = self.batch(tx, &cfg, now)?;
            let mut seen = Seen::default();
            reqs.iter()
                .enumerate()
                .map(|(i, r)| {
                    enqueue_in(tx, &batch, r, &mut seen)
                        .map(ids::message_id)
                        .map_err(|e| e.with_context(&format!("item {i}")))
                })
                .collect()
        })
    }
}
