//! Binding, revoking and resolving user ↔ agent bindings.
//!
//! Invariants: [`bind_in`] checks everything before its first write; it revokes
//! the user's active binding and any other user's active binding on the same
//! `(bot, Telegram user)` or `(bot, Telegram chat)`, then inserts the new active
//! binding with the stable conversation id. Lookups read partial indexes of
//! active bindings only, so their cost does not grow with revoked history.

use rusqlite::{params, OptionalExtension};

use super::target::ConversationTarget;
use super::{
    binding_from_row, check_limit, optional_id, validate_consumer_user_id, validate_metadata,
    BindRequest, Binding, BINDING_COLUMNS, MAX_HISTORY_LIMIT, SOURCES,
};
use crate::agents::validate_agent_key;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::store::Tx;

/// A request whose fields are checked and trimmed.
struct Checked {
    bot_identity: Option<String>,
    telegram_user_id: Option<String>,
    telegram_chat_id: Option<String>,
    metadata: Option<String>,
}

fn check(req: &BindRequest) -> Result<Checked> {
    validate_consumer_user_id(&req.consumer_user_id)?;
    validate_agent_key(&req.agent_key)?;
    if !SOURCES.contains(&req.source.as_str()) {
        return Err(Error::validation(format!(
            "source {:?} must be one of {}",
            req.source,
            SOURCES.join(", ")
        )));
    }
    let metadata = match &req.metadata {
        None => None,
        Some(m) => {
            validate_metadata("metadata", m)?;
            Some(serde_json::Value::Object(m.clone()).to_string())
        }
    };
    Ok(Checked {
        bot_identity: optional_id("botIdentity", req.bot_identity.as_deref())?,
        telegram_user_id: optional_id("telegramUserId", req.telegram_user_id.as_deref())?,
        telegram_chat_id: optional_id("telegramChatId", req.telegram_chat_id.as_deref())?,
        metadata,
    })
}

/// Bind inside the caller's transaction (pairing and Telegram ingestion use it).
/// All checks run before the first write, so an `Err` leaves `tx` untouched.
pub(crate) fn bind_in(tx: &Tx, req: &BindRequest, now: i64) -> Result<Binding> {
    let c = check(req)?;
    let agent = &req.agent_key;
    let profile = crate::agents::get_in(tx, agent)?
        .ok_or_else(|| Error::not_found(format!("Agent profile '{agent}' not found")))?;
    let bot_identity = c.bot_identity.or_else(|| {
        profile
            .bot_identity
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_string)
    });
    if bot_identity.is_none() && (c.telegram_user_id.is_some() || c.telegram_chat_id.is_some()) {
        return Err(Error::validation(format!(
            "Agent '{agent}' is missing botIdentity: telegramUserId/telegramChatId need a bot identity"
        )));
    }
    let user = &req.consumer_user_id;
    revoke_in(tx, user, now)?;
    if let Some(bot) = &bot_identity {
        if let Some(tg_user) = &c.telegram_user_id {
            tx.prepare_cached(
                "UPDATE identity_bindings SET status = 'revoked', revoked_at = ?3
                 WHERE bot_identity = ?1 AND telegram_user_id = ?2 AND status = 'active' AND telegram_user_id IS NOT NULL",
            )?
            .execute(params![bot, tg_user, now])?;
        }
        if let Some(chat) = &c.telegram_chat_id {
            tx.prepare_cached(
                "UPDATE identity_bindings SET status = 'revoked', revoked_at = ?3
                 WHERE bot_identity = ?1 AND telegram_chat_id = ?2 AND status = 'active' AND telegram_chat_id IS NOT NULL",
            )?
            .execute(params![bot, chat, now])?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO identity_bindings(consumer_user_id, agent_key, conversation_id, bot_identity, status, source,
            telegram_user_id, telegram_chat_id, metadata, bound_at)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        user,
        agent,
        ids::user_agent_conversation_id(agent, user),
        bot_identity,
        req.source,
        c.telegram_user_id,
        c.telegram_chat_id,
        c.metadata,
        now
    ])?;
    let id = tx.last_insert_rowid();
    let sql = format!("SELECT {BINDING_COLUMNS} FROM identity_bindings WHERE id = ?1");
    tx.prepare_cached(&sql)?
        .query_row([id], binding_from_row)
        .optional()?
        .ok_or_else(|| Error::storage("Failed to create identity binding"))
}

/// Revoke every active binding of `user`; returns how many.
pub(crate) fn revoke_in(tx: &Tx, user: &str, now: i64) -> Result<usize> {
    Ok(tx
        .prepare_cached(
            "UPDATE identity_bindings SET status = 'revoked', revoked_at = ?2
             WHERE consumer_user_id = ?1 AND status = 'active'",
        )?
        .execute(params![user, now])?)
}

/// The user's active binding (any agent).
pub(crate) fn active_binding_in(tx: &Tx, user: &str) -> Result<Option<Binding>> {
    let sql = format!(
        "SELECT {BINDING_COLUMNS} FROM identity_bindings WHERE consumer_user_id = ?1 AND status = 'active'"
    );
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([user], binding_from_row)
        .optional()?)
}

/// The newest binding (any status) of `user` for `agent`.
pub(crate) fn latest_binding_in(tx: &Tx, user: &str, agent: &str) -> Result<Option<Binding>> {
    let sql = format!(
        "SELECT {BINDING_COLUMNS} FROM identity_bindings WHERE consumer_user_id = ?1 AND agent_key = ?2
         ORDER BY bound_at DESC, id DESC LIMIT 1"
    );
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([user, agent], binding_from_row)
        .optional()?)
}

fn target_of(b: Binding) -> ConversationTarget {
    ConversationTarget {
        consumer_user_id: b.consumer_user_id,
        agent_key: b.agent_key,
        conversation_id: b.conversation_id,
        bot_identity: b.bot_identity,
        telegram_user_id: b.telegram_user_id,
        telegram_chat_id: b.telegram_chat_id,
    }
}

/// The active binding a Telegram update belongs to. With a bot identity:
/// `(bot, user)` then `(bot, chat)`, never another bot's binding. Without one
/// (legacy callers): `user` then `chat` over every bot, newest binding first.
pub(crate) fn resolve_for_telegram(
    tx: &Tx,
    bot_identity: Option<&str>,
    telegram_user_id: Option<&str>,
    telegram_chat_id: Option<&str>,
) -> Result<Option<ConversationTarget>> {
    let bot = optional_id("botIdentity", bot_identity)?;
    let tg_user = optional_id("telegramUserId", telegram_user_id)?;
    let chat = optional_id("telegramChatId", telegram_chat_id)?;
    // One active binding by a Telegram column, on `bot` when `with_bot`, newest first.
    let find = |column: &str, with_bot: bool, id: &str| -> Result<Option<Binding>> {
        let (bot_clause, id_param) = if with_bot {
            ("bot_identity = ?1 AND", "?2")
        } else {
            ("", "?1")
        };
        let sql = format!(
            "SELECT {BINDING_COLUMNS} FROM identity_bindings
             WHERE {bot_clause} {column} = {id_param} AND status = 'active' AND {column} IS NOT NULL
             ORDER BY bound_at DESC, id DESC LIMIT 1"
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let row = match &bot {
            Some(b) if with_bot => stmt.query_row(params![b, id], binding_from_row),
            _ => stmt.query_row(params![id], binding_from_row),
        };
        Ok(row.optional()?)
    };
    let with_bot = bot.is_some();
    let mut found = None;
    if let Some(u) = &tg_user {
        found = find("telegram_user_id", with_bot, u)?;
    }
    if found.is_none() {
        if let Some(ch) = &chat {
            found = find("telegram_chat_id", with_bot, ch)?;
        }
    }
    Ok(found.map(target_of))
}

impl Factory {
    /// Bind a user to an agent (revoking their previous binding and any other
    /// user's binding of the same Telegram user or chat on the same bot).
    pub fn bind_user_agent(&self, req: &BindRequest, now_ms: Option<i64>) -> Result<Binding> {
        let now = self.now(now_ms)?;
        self.store.write(|tx| bind_in(tx, req, now))
    }

    /// Revoke the user's active binding(s); returns how many were revoked.
    pub fn revoke_user_agent_binding(
        &self,
        consumer_user_id: &str,
        now_ms: Option<i64>,
    ) -> Result<usize> {
        validate_consumer_user_id(consumer_user_id)?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| revoke_in(tx, consumer_user_id, now))
    }

    /// The agent of the user's active binding, if any.
    pub fn resolve_agent_for_user(&self, consumer_user_id: &str) -> Result<Option<String>> {
        validate_consumer_user_id(consumer_user_id)?;
        Ok(self
            .store
            .read(|tx| active_binding_in(tx, consumer_user_id))?
            .map(|b| b.agent_key))
    }

    /// The active binding a Telegram user/chat resolves to (see [`resolve_for_telegram`]).
    pub fn resolve_agent_for_telegram(
        &self,
        bot_identity: Option<&str>,
        telegram_user_id: Option<&str>,
        telegram_chat_id: Option<&str>,
    ) -> Result<Option<ConversationTarget>> {
        self.store
            .read(|tx| resolve_for_telegram(tx, bot_identity, telegram_user_id, telegram_chat_id))
    }

    /// The user's active binding, if any.
    pub fn get_user_agent_binding(&self, consumer_user_id: &str) -> Result<Option<Binding>> {
        validate_consumer_user_id(consumer_user_id)?;
        self.store
            .read(|tx| active_binding_in(tx, consumer_user_id))
    }

    /// The user's bindings (any agent, any status), newest first.
    pub fn list_user_bindings(&self, consumer_user_id: &str, limit: i64) -> Result<Vec<Binding>> {
        validate_consumer_user_id(consumer_user_id)?;
        check_limit(limit, MAX_HISTORY_LIMIT)?;
        self.store.read(|tx| {
            let sql = format!(
                "SELECT {BINDING_COLUMNS} FROM identity_bindings WHERE consumer_user_id = ?1
                 ORDER BY bound_at DESC, id DESC LIMIT ?2"
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params![consumer_user_id, limit], binding_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
