//! Hydration bundles: everything a worker needs to process one claimed message.
//!
//! Invariant (fixing the original's leak): a bundle carries plaintext secrets,
//! so it is served only to the worker holding the message's current, unexpired
//! lease ([`Factory::hydrate`]) or through the explicit operator call
//! [`Factory::operator_hydration_bundle`]; knowing a message id is not enough.

pub mod bridge;

use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use crate::agents;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::queue::conversations::{self, HistoryEntry};
use crate::store::Tx;
use bridge::BridgeRuntimeConfig;

/// What a worker receives for one message.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HydrationBundle {
    /// Message id.
    pub message_id: String,
    /// Conversation.
    pub conversation_id: String,
    /// Agent.
    pub agent_key: String,
    /// Payload; ready attachments gain `path` and `downloadUrl` (a `file://` URL of the blob).
    pub payload: Value,
    /// Conversation history (the delta window when the cache matches the workspace).
    pub context_history: Vec<HistoryEntry>,
    /// Telegram bot token of the agent.
    pub telegram_bot_token: Option<String>,
    /// Bridge settings.
    pub bridge_runtime_config: Option<BridgeRuntimeConfig>,
    /// Lease end of the claim.
    pub lease_expires_at: Option<i64>,
}

fn with_attachment_locations(f: &Factory, payload: &mut Value) -> Result<()> {
    let Some(items) = payload.get_mut("attachments").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for item in items {
        let ready = item.get("status").and_then(Value::as_str) == Some("ready");
        let sha = item
            .get("storageId")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let (true, Some(sha), Some(obj)) = (ready, sha, item.as_object_mut()) {
            let path = f.blobs.path_of(&sha)?;
            obj.insert("path".into(), Value::String(path.display().to_string()));
            obj.insert(
                "downloadUrl".into(),
                Value::String(format!("file://{}", path.display())),
            );
        }
    }
    Ok(())
}

fn build(f: &Factory, tx: &Tx, key: i64, workspace_id: &str) -> Result<Option<HydrationBundle>> {
    let row: Option<(i64, String, String, String, Option<i64>)> = tx
        .prepare_cached(
            "SELECT m.conversation_ref, c.conversation_id, m.agent_key, m.payload, c.lock_expires_at
             FROM messages m JOIN conversations c ON c.id = m.conversation_ref WHERE m.id = ?1 AND c.lock_message = m.id",
        )?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    let Some((conv_ref, conversation_id, agent_key, payload_text, lease_expires_at)) = row else {
        return Ok(None);
    };
    let Some(profile) = agents::get_in(tx, &agent_key)? else {
        return Ok(None);
    };
    let mut payload: Value = serde_json::from_str(&payload_text)?;
    with_attachment_locations(f, &mut payload)?;
    let cache_key: Option<String> = tx
        .prepare_cached("SELECT snapshot_key FROM hydration_cache WHERE conversation_ref = ?1")?
        .query_row(params![conv_ref], |r| r.get(0))
        .optional()?;
    let window = if cache_key.as_deref() == Some(format!("{workspace_id}:{agent_key}").as_str()) {
        crate::queue::DELTA_WINDOW
    } else {
        f.config().queue.history_limit
    };
    Ok(Some(HydrationBundle {
        message_id: ids::message_id(key),
        conversation_id,
        context_history: conversations::history(tx, conv_ref, window)?,
        telegram_bot_token: bridge::telegram_bot_token(tx, &f.key, &profile)?,
        bridge_runtime_config: bridge::bridge_runtime_config(tx, &f.key, &profile)?,
        agent_key,
        payload,
        lease_expires_at,
    }))
}

impl Factory {
    /// The bundle for the worker that holds `(message_id, lease_id)`.
    /// `Conflict` when the lease is not (or no longer) held, `NotFound` for an unknown message.
    pub fn hydrate(
        &self,
        worker_id: &str,
        message_id: &str,
        lease_id: &str,
        workspace_id: &str,
        now_ms: Option<i64>,
    ) -> Result<HydrationBundle> {
        crate::workers::validate_worker_id(worker_id)?;
        crate::validate::workspace_id(workspace_id)?;
        let key = ids::parse_message_id(message_id)?;
        let now = self.now(now_ms)?;
        self.store.read(|tx| {
            let held = crate::queue::held_lease(tx, worker_id, message_id, lease_id)?;
            if held.is_none_or(|expires| expires <= now) {
                return Err(Error::conflict(format!(
                    "worker '{worker_id}' does not hold a live lease {lease_id} on message {message_id}"
                )));
            }
            build(self, tx, key, workspace_id)?.ok_or_else(|| Error::not_found(format!("agent of message {message_id} no longer exists")))
        })
    }

    /// Operator call: the bundle of an in-flight message, without a lease.
    pub fn operator_hydration_bundle(
        &self,
        message_id: &str,
        workspace_id: &str,
    ) -> Result<Option<HydrationBundle>> {
        crate::validate::workspace_id(workspace_id)?;
        let key = ids::parse_message_id(message_id)?;
        self.store.read(|tx| build(self, tx, key, workspace_id))
    }
}
