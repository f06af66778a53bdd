//! `enqueue` and `enqueue_many`.

use rusqlite::{params, Transaction};

use super::conversations::{self, validate_conversation_id};
use super::payload;
use super::EnqueueRequest;
use crate::agents::{require_enabled, validate_agent_key};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::settings::message_config_in;

/// Largest batch accepted by `enqueue_many`.
pub const MAX_BATCH: usize = 100_000;

fn check_request(req: &EnqueueRequest, cfg: &Config) -> Result<()> {
    validate_conversation_id(&req.conversation_id)?;
    validate_agent_key(&req.agent_key)?;
    if let Some(m) = req.max_attempts {
        if !(1..=1000).contains(&m) {
            return Err(Error::validation(format!(
                "maxAttempts must be within 1..=1000, got {m}"
            )));
        }
    }
    if let Some(s) = req.scheduled_for {
        if s < 0 {
            return Err(Error::validation(format!(
                "scheduledFor must be >= 0, got {s}"
            )));
        }
    }
    let _ = cfg;
    Ok(())
}

/// Insert one message inside `tx`; returns its row key.
fn enqueue_in(
    tx: &Transaction<'_>,
    f: &Factory,
    cfg: &Config,
    prompt: Option<&str>,
    req: &EnqueueRequest,
    now: i64,
) -> Result<i64> {
    require_enabled(tx, &req.agent_key)?;
    let prepared = payload::prepare(&req.payload, prompt, &f.blobs, cfg.queue.max_payload_bytes)?;
    let conv = conversations::bind(tx, &req.conversation_id, &req.agent_key, now)?;
    let priority = req
        .priority
        .unwrap_or(cfg.queue.default_priority)
        .clamp(0, cfg.queue.max_priority);
    let scheduled_for = req.scheduled_for.unwrap_or(now);
    let max_attempts = req.max_attempts.unwrap_or(cfg.retry.max_attempts);
    tx.prepare_cached(
        "INSERT INTO messages(conversation_ref, agent_key, payload, status, priority, scheduled_for, ready_at, attempts,
            max_attempts, created_at)
         VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?5, 0, ?6, ?7)",
    )?
    .execute(params![conv.id, req.agent_key, prepared.json, priority, scheduled_for, max_attempts, now])?;
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
            now,
            a.expires_at
        ])?;
    }
    conversations::offer_head(tx, &conv, id, priority, scheduled_for, now)?;
    Ok(id)
}

fn system_prompt(tx: &Transaction<'_>) -> Result<Option<String>> {
    Ok(message_config_in(tx)?.and_then(|c| c.system_prompt))
}

impl Factory {
    /// Enqueue one message; returns its id.
    pub fn enqueue(&self, req: &EnqueueRequest, now_ms: Option<i64>) -> Result<String> {
        let cfg = self.config();
        check_request(req, &cfg)?;
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| {
                let prompt = system_prompt(tx)?;
                enqueue_in(tx, self, &cfg, prompt.as_deref(), req, now)
            })
            .map(ids::message_id)
    }

    /// Enqueue many messages in one transaction: all or nothing. Ids come back in input order.
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
        let cfg = self.config();
        for (i, r) in reqs.iter().enumerate() {
            check_request(r, &cfg).map_err(|e| Error::validation(format!("item {i}: {e}")))?;
        }
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let prompt = system_prompt(tx)?;
            reqs.iter()
                .enumerate()
                .map(|(i, r)| {
                    enqueue_in(tx, self, &cfg, prompt.as_deref(), r, now)
                        .map(ids::message_id)
                        .map_err(|e| match e {
                            Error::Validation(m) => Error::Validation(format!("item {i}: {m}")),
                            Error::NotFound(m) => Error::NotFound(format!("item {i}: {m}")),
                            Error::InvalidState(m) => Error::InvalidState(format!("item {i}: {m}")),
                            Error::Conflict(m) => Error::Conflict(format!("item {i}: {m}")),
                            other => other,
                        })
                })
                .collect()
        })
    }
}
