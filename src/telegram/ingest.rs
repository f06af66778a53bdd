//! Ingesting one Telegram update: de-duplication, `/start <code>` pairing,
//! routing, media download, enqueue.
//!
//! Invariants:
//! - the bot is the agent's (`agent_key`) or found by `bot_identity`; the
//!   de-duplication row `(bot, update_id)`, the pairing, the message and its
//!   attachment rows commit in one transaction — a re-delivered update is
//!   `duplicate` and enqueues nothing;
//! - media are downloaded before that transaction (never while holding the
//!   writer); a download failure raises and writes nothing (Telegram re-delivers);
//! - routing: an active binding of `(bot, Telegram user)` or `(bot, chat)` sends the
//!   message to the binding's agent and stable conversation
//!   (`user-agent:<agent>:<user>`); otherwise to the bot's agent on
//!   `telegram:<bot>:<chat>`;
//! - `/start <code>` is never enqueued: it consumes the pairing code (`paired`),
//!   or is `ignored` with the pairing error (an expired code is still marked);
//! - updates that carry nothing to handle are `ignored` and write nothing.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};

use super::bot_api::BotApi;
use super::media::{fetch, FetchedMedia};
use super::settings::{api_config_in, TelegramApiConfig};
use super::update::{parse_update, start_command, IncomingMessage, UpdateBody};
use super::{agent_with_bot, resolve_token};
use crate::agents::{get_in, validate_agent_key};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::metrics::{self, target, Counter};
use crate::queue::payload::attachment_json;
use crate::queue::payload::Attachment;
use crate::queue::EnqueueRequest;
use crate::settings::{message_config_in, DEFAULT_ATTACHMENT_RETENTION_MS};
use crate::store::Tx;

/// What happened to an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    /// A message was enqueued.
    Enqueued,
    /// The update was handled before; nothing was written.
    Duplicate,
    /// A `/start <code>` paired the Telegram user with a consumer user.
    Paired,
    /// Nothing to do (the reason says why).
    Ignored,
}

impl IngestStatus {
    fn as_str(self) -> &'static str {
        match self {
            IngestStatus::Enqueued => "enqueued",
            IngestStatus::Duplicate => "duplicate",
            IngestStatus::Paired => "paired",
            IngestStatus::Ignored => "ignored",
        }
    }
}

/// An attachment that was not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedAttachment {
    /// photo, video, audio, voice or document.
    pub kind: String,
    /// Telegram file id.
    pub telegram_file_id: String,
    /// Why (`too_large`).
    pub reason: String,
}

/// The result of ingesting one update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// What happened.
    pub status: IngestStatus,
    /// The update's id.
    pub update_id: i64,
    /// The bot that received it.
    pub bot_identity: Option<String>,
    /// The agent it went to (for `paired`: the paired agent).
    pub agent_key: Option<String>,
    /// The enqueued message (`enqueued`; for `duplicate`, the first delivery's).
    pub message_id: Option<String>,
    /// Its conversation.
    pub conversation_id: Option<String>,
    /// The consumer user (bound sender, or the paired user).
    pub consumer_user_id: Option<String>,
    /// Why it was ignored (or the first delivery's outcome for `duplicate`).
    pub reason: Option<String>,
    /// Attachments stored with the message.
    pub attachments: i64,
    /// Attachments not stored.
    pub skipped_attachments: Vec<SkippedAttachment>,
}

impl IngestOutcome {
    fn new(status: IngestStatus, update_id: i64, bot: Option<&str>, agent: Option<&str>) -> Self {
        IngestOutcome {
            status,
            update_id,
            bot_identity: bot.map(str::to_string),
            agent_key: agent.map(str::to_string),
            message_id: None,
            conversation_id: None,
            consumer_user_id: None,
            reason: None,
            attachments: 0,
            skipped_attachments: Vec::new(),
        }
    }
}

/// Find the bot and its agent.
fn resolve_bot(
    tx: &Tx,
    agent_key: Option<&str>,
    bot_identity: Option<&str>,
) -> Result<(String, String)> {
    match (agent_key, bot_identity) {
        (Some(agent), given) => {
            let profile = get_in(tx, agent)?
                .ok_or_else(|| Error::not_found(format!("Agent profile '{agent}' not found")))?;
            match (profile.bot_identity, given) {
                (Some(own), Some(g)) if own != g => Err(Error::validation(format!(
                    "bot_identity '{g}' is not the bot of agent '{agent}' ('{own}')"
                ))),
                (Some(own), _) => Ok((agent.to_string(), own)),
                (None, Some(g)) => Ok((agent.to_string(), g.to_string())),
                (None, None) => Err(Error::invalid_state(format!(
                    "Agent '{agent}' is missing botIdentity. Import and verify the Telegram token first."
                ))),
            }
        }
        (None, Some(bot)) => {
            let agent = agent_with_bot(tx, bot, None)?.ok_or_else(|| {
                Error::not_found(format!("no agent has Telegram bot identity '{bot}'"))
            })?;
            Ok((agent, bot.to_string()))
        }
        (None, None) => Err(Error::validation("agent_key or bot_identity is required")),
    }
}

/// A `telegram_updates` row: agent, outcome, message, conversation, reason.
type RecordedRow = (String, String, Option<i64>, Option<String>, Option<String>);

/// The outcome recorded for a handled update, as a `duplicate` answer.
fn recorded(tx: &Tx, bot: &str, update_id: i64) -> Result<Option<IngestOutcome>> {
    let row: Option<RecordedRow> = tx
        .prepare_cached(
            "SELECT agent_key, outcome, message_ref, conversation_id, reason FROM telegram_updates
             WHERE bot_identity = ?1 AND update_id = ?2",
        )?
        .query_row(params![bot, update_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    Ok(
        row.map(|(agent, outcome, message_ref, conversation, reason)| {
            let mut o =
                IngestOutcome::new(IngestStatus::Duplicate, update_id, Some(bot), Some(&agent));
            o.message_id = message_ref.map(ids::message_id);
            o.conversation_id = conversation;
            o.reason = Some(match reason {
                Some(r) => format!("already handled ({outcome}: {r})"),
                None => format!("already handled ({outcome})"),
            });
            o
        }),
    )
}

fn record(tx: &Tx, bot: &str, o: &IngestOutcome, message_ref: Option<i64>, now: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO telegram_updates(bot_identity, update_id, agent_key, outcome, message_ref, conversation_id, reason, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        bot,
        o.update_id,
        o.agent_key.as_deref().unwrap_or(""),
        o.status.as_str(),
        message_ref,
        o.conversation_id,
        o.reason,
        now
    ])?;
    Ok(())
}

/// What ingestion reads before any network I/O.
struct Context {
    agent: String,
    bot: String,
    duplicate: Option<IngestOutcome>,
    token: Option<String>,
    config: TelegramApiConfig,
    retention_ms: i64,
}

fn kind_label(kind: &str) -> String {
    let mut c = kind.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// The enqueue payload of a message.
fn payload(
    update: &Value,
    update_id: i64,
    bot: &str,
    msg: &IncomingMessage,
    consumer_user_id: Option<&str>,
    fetched: &FetchedMedia,
    expires_at: i64,
) -> Result<(Value, usize)> {
    let mut kinds: Vec<&str> = Vec::new();
    for m in &msg.media {
        if !kinds.contains(&m.kind) {
            kinds.push(m.kind);
        }
    }
    let text = msg
        .text
        .clone()
        .unwrap_or_else(|| format!("[telegram media] {} message", kinds.join(" + ")));
    let mut meta = Map::new();
    let mut put = |k: &str, v: String| {
        meta.insert(k.to_string(), Value::String(v));
    };
    put("telegramBotIdentity", bot.to_string());
    put("telegramChatId", msg.chat_id.clone());
    put("telegramUserId", msg.user_id.clone());
    put("telegramUpdateId", update_id.to_string());
    put("telegramMessageId", msg.message_id.to_string());
    if msg.edited {
        put("edited", "true".into());
    }
    if let Some(u) = consumer_user_id {
        put("consumerUserId", u.to_string());
    }
    if !kinds.is_empty() {
        put("telegramMediaType", kinds.join("+"));
    }
    for m in &msg.media {
        put(
            &format!("telegram{}FileId", kind_label(m.kind)),
            m.file_id.clone(),
        );
    }
    if !fetched.skipped.is_empty() {
        let list: Vec<String> = fetched
            .skipped
            .iter()
            .map(|s| format!("{}:{}", s.item.kind, s.reason))
            .collect();
        put("telegramSkippedMedia", list.join(","));
    }
    let attachments: Vec<Value> = fetched
        .stored
        .iter()
        .map(|s| {
            attachment_json(&Attachment {
                kind: s.item.kind.to_string(),
                status: "ready".into(),
                storage_id: s.sha256.clone(),
                telegram_file_id: s.item.file_id.clone(),
                file_name: s.item.file_name.clone(),
                mime_type: Some(s.mime_type.clone()),
                size_bytes: Some(s.size_bytes),
                expires_at,
            })
        })
        .collect();
    let count = attachments.len();
    let mut p = serde_json::json!({
        "provider": "telegram",
        "providerUserId": msg.user_id,
        "messageText": text,
        "externalMessageId": msg.message_id.to_string(),
        "rawUpdateJson": serde_json::to_string(update)?,
        "metadata": Value::Object(meta),
    });
    if count > 0 {
        p["attachments"] = Value::Array(attachments);
    }
    Ok((p, count))
}

impl Factory {
    /// Ingest one Telegram `Update` (see the module invariants). `agent_key`
    /// names the agent whose bot received it; or pass `bot_identity` to find the
    /// agent by its bot.
    ///
    /// Counted in [`crate::metrics`] (ingested, duplicate, ignored, rejected); a
    /// rejected update (an error) is logged as a warning on
    /// `agent_factory.telegram`, an ignored one at debug.
    pub fn ingest_telegram_update(
        &self,
        update: &Value,
        agent_key: Option<&str>,
        bot_identity: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<IngestOutcome> {
        let out = self.ingest_update(update, agent_key, bot_identity, now_ms);
        let counter = match &out {
            Ok(o) => match o.status {
                IngestStatus::Enqueued | IngestStatus::Paired => Counter::TelegramUpdatesIngested,
                IngestStatus::Duplicate => Counter::TelegramUpdatesDuplicate,
                IngestStatus::Ignored => {
                    log::debug!(
                        target: target::TELEGRAM,
                        "update {} for bot {} ignored: {}",
                        o.update_id,
                        o.bot_identity.as_deref().unwrap_or("-"),
                        o.reason.as_deref().unwrap_or("-")
                    );
                    Counter::TelegramUpdatesIgnored
                }
            },
            Err(e) => {
                let update_id = update.get("update_id").and_then(Value::as_i64);
                log::warn!(
                    target: target::TELEGRAM,
                    "update {} for {} rejected: {e}",
                    update_id.map_or_else(|| "-".to_string(), |u| u.to_string()),
                    match (agent_key, bot_identity) {
                        (_, Some(b)) => format!("bot {b}"),
                        (Some(a), None) => format!("agent {a}"),
                        (None, None) => "no agent".to_string(),
                    }
                );
                Counter::TelegramUpdatesRejected
            }
        };
        metrics::incr(counter);
        out
    }

    fn ingest_update(
        &self,
        update: &Value,
        agent_key: Option<&str>,
        bot_identity: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<IngestOutcome> {
        if let Some(a) = agent_key {
            validate_agent_key(a)?;
        }
        if let Some(b) = bot_identity {
            crate::validate::identifier("botIdentity", b, 128, false)?;
        }
        self.now(now_ms)?;
        let parsed = parse_update(update)?;
        let update_id = parsed.update_id;
        let wants_media = matches!(&parsed.body, UpdateBody::Message(m)
            if !m.media.is_empty() && m.text.as_deref().and_then(start_command).is_none());
        let ctx = self.store.read(|tx| {
            let (agent, bot) = resolve_bot(tx, agent_key, bot_identity)?;
            let duplicate = recorded(tx, &bot, update_id)?;
            let mut token = None;
            if wants_media && duplicate.is_none() {
                let profile = get_in(tx, &agent)?.ok_or_else(|| {
                    Error::not_found(format!("Agent profile '{agent}' not found"))
                })?;
                token = Some(
                    resolve_token(tx, &self.key, &profile)?
                        .map(|(t, _)| t)
                        .ok_or_else(|| {
                            Error::invalid_state(format!(
                                "missing active telegram bot token for agent '{agent}'"
                            ))
                        })?,
                );
            }
            let retention_ms = message_config_in(tx)?
                .and_then(|c| c.telegram_attachment_retention_ms)
                .unwrap_or(DEFAULT_ATTACHMENT_RETENTION_MS);
            Ok(Context {
                agent,
                bot,
                duplicate,
                token,
                config: api_config_in(tx)?,
                retention_ms,
            })
        })?;
        if let Some(d) = ctx.duplicate {
            return Ok(d);
        }
        let msg = match parsed.body {
            UpdateBody::Ignored(reason) => {
                let mut o = IngestOutcome::new(
                    IngestStatus::Ignored,
                    update_id,
                    Some(&ctx.bot),
                    Some(&ctx.agent),
                );
                o.reason = Some(reason);
                return Ok(o);
            }
            UpdateBody::Message(m) => m,
        };
        let fetched = match &ctx.token {
            Some(token) => {
                let api = BotApi::new(&ctx.config, token)?;
                fetch(
                    &api,
                    &self.blobs,
                    &msg.media,
                    ctx.config.max_file_bytes as u64,
                )?
            }
            None => FetchedMedia::default(),
        };
        let now = self.now(now_ms)?;
        let written = self.store.write(|tx| {
            if let Some(d) = recorded(tx, &ctx.bot, update_id)? {
                return Ok(d);
            }
            if let Some(start) = msg.text.as_deref().and_then(start_command) {
                return self.pair_in(tx, &ctx, update_id, &msg, start, now);
            }
            let target = crate::identity::resolve_for_telegram(
                tx,
                Some(&ctx.bot),
                Some(&msg.user_id),
                Some(&msg.chat_id),
            )?;
            let (agent, conversation, consumer) = match &target {
                Some(t) => (
                    t.agent_key.clone(),
                    t.conversation_id.clone(),
                    Some(t.consumer_user_id.clone()),
                ),
                None => (
                    ctx.agent.clone(),
                    format!("telegram:{}:{}", ctx.bot, msg.chat_id),
                    None,
                ),
            };
            let expires_at = now.saturating_add(ctx.retention_ms);
            let (body, stored) = payload(
                update,
                update_id,
                &ctx.bot,
                &msg,
                consumer.as_deref(),
                &fetched,
                expires_at,
            )?;
            let req = EnqueueRequest {
                conversation_id: conversation.clone(),
                agent_key: agent.clone(),
                payload: body,
                priority: None,
                scheduled_for: None,
                max_attempts: None,
            };
            let message_id = self.enqueue_within(tx, &req, now)?;
            let mut o = IngestOutcome::new(
                IngestStatus::Enqueued,
                update_id,
                Some(&ctx.bot),
                Some(&agent),
            );
            o.message_id = Some(message_id.clone());
            o.conversation_id = Some(conversation);
            o.consumer_user_id = consumer;
            o.attachments = stored as i64;
            o.skipped_attachments = fetched
                .skipped
                .iter()
                .map(|s| SkippedAttachment {
                    kind: s.item.kind.to_string(),
                    telegram_file_id: s.item.file_id.clone(),
                    reason: s.reason.clone(),
                })
                .collect();
            record(
                tx,
                &ctx.bot,
                &o,
                Some(ids::parse_message_id(&message_id)?),
                now,
            )?;
            Ok(o)
        })?;
        if written.status == IngestStatus::Duplicate && !fetched.stored.is_empty() {
            self.drop_unused_blobs(&fetched, now)?;
        }
        Ok(written)
    }

    /// `/start [code]` inside the ingest transaction.
    fn pair_in(
        &self,
        tx: &Tx,
        ctx: &Context,
        update_id: i64,
        msg: &IncomingMessage,
        code: Option<&str>,
        now: i64,
    ) -> Result<IngestOutcome> {
        let mut o = IngestOutcome::new(
            IngestStatus::Ignored,
            update_id,
            Some(&ctx.bot),
            Some(&ctx.agent),
        );
        let Some(code) = code else {
            o.reason = Some("missing or invalid pairing code in /start command".into());
            return Ok(o);
        };
        match crate::identity::consume_pairing_in(
            tx,
            code,
            Some(&ctx.bot),
            &msg.user_id,
            &msg.chat_id,
            now,
        )? {
            Ok(pairing) => {
                o.status = IngestStatus::Paired;
                o.conversation_id = Some(ids::user_agent_conversation_id(
                    &pairing.agent_key,
                    &pairing.consumer_user_id,
                ));
                o.agent_key = Some(pairing.agent_key);
                o.consumer_user_id = Some(pairing.consumer_user_id);
            }
            Err(e) => o.reason = Some(e.to_string()),
        }
        record(tx, &ctx.bot, &o, None, now)?;
        Ok(o)
    }

    /// After a race lost to another delivery of the same update: delete the
    /// blobs this delivery stored that nothing uses.
    fn drop_unused_blobs(&self, fetched: &FetchedMedia, now: i64) -> Result<()> {
        let shas: BTreeSet<&str> = fetched.stored.iter().map(|s| s.sha256.as_str()).collect();
        self.store.write(|tx| {
            for sha in shas {
                if !super::attachments::blob_in_use(tx, sha, now)? {
                    self.blobs.delete(sha)?;
                }
            }
            Ok(())
        })
    }
}
