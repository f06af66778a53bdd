//! Identity: consumer users bound to agents, pairing codes, user-agent views.
//!
//! Invariants:
//! - a user has at most one `active` binding (a partial unique index enforces
//!   it; rebinding revokes the old binding in the same transaction), and a
//!   `(bot, Telegram user)` or `(bot, Telegram chat)` pair belongs to at most one
//!   active binding (binding it elsewhere revokes the other user's binding);
//! - a binding's conversation id is the stable `user-agent:<agentKey>:<consumerUserId>`
//!   whatever the channel, so history survives re-pairing;
//! - Telegram ids are only ever stored together with a bot identity;
//! - a pairing code (CSPRNG, see [`pairing`]) moves `pending → used | expired`
//!   exactly once; an expired code is persisted as `expired` even though the
//!   consume call that found it reports an error;
//! - every public operation is one transaction: a rejected call writes nothing
//!   (except the documented "mark expired" of a stale pairing code).

mod bind;
mod conversation;
pub mod pairing;
pub mod target;
#[cfg(test)]
mod tests;
mod user_agents;

use rusqlite::Row;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub(crate) use bind::{bind_in, latest_binding_in, resolve_for_telegram};
pub use conversation::UserAgentConversation;
pub(crate) use pairing::consume_pairing_in;
pub use pairing::{PairingCode, PAIRING_CODE_ALPHABET, PAIRING_CODE_LEN};
pub use target::ConversationTarget;
pub use user_agents::{UserAgent, UserAgentPairing, UserAgentsOverview};

/// Largest number of metadata entries on a binding.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata value, in characters.
pub const MAX_METADATA_VALUE_CHARS: usize = 2000;
/// Longest consumer user id, in characters.
pub const MAX_USER_ID_CHARS: usize = 256;
/// Default page of binding history.
pub const DEFAULT_HISTORY_LIMIT: i64 = 100;
/// Largest page of binding history.
pub const MAX_HISTORY_LIMIT: i64 = 1000;

/// How a binding came about.
pub const SOURCES: &[&str] = &["manual", "telegram_pairing", "api"];

/// Input of [`crate::factory::Factory::bind_user_agent`].
#[derive(Debug, Clone, PartialEq)]
pub struct BindRequest {
    /// The consumer app's user id.
    pub consumer_user_id: String,
    /// The agent to bind to (its profile must exist; it need not be enabled).
    pub agent_key: String,
    /// Telegram bot id; blank falls back to the profile's bot identity.
    pub bot_identity: Option<String>,
    /// `manual`, `telegram_pairing` or `api` (the usual default).
    pub source: String,
    /// Telegram user id (needs a bot identity).
    pub telegram_user_id: Option<String>,
    /// Telegram chat id (needs a bot identity).
    pub telegram_chat_id: Option<String>,
    /// String-valued metadata (`companyId`, `displayName`, `telegramUsername`, ...).
    pub metadata: Option<Map<String, Value>>,
}

impl BindRequest {
    /// A request with source `api` and no Telegram ids or metadata.
    pub fn new(consumer_user_id: &str, agent_key: &str) -> BindRequest {
        BindRequest {
            consumer_user_id: consumer_user_id.to_string(),
            agent_key: agent_key.to_string(),
            bot_identity: None,
            source: "api".into(),
            telegram_user_id: None,
            telegram_chat_id: None,
            metadata: None,
        }
    }
}

/// A stored binding (the seed's binding view).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Binding {
    /// The bound consumer user.
    pub consumer_user_id: String,
    /// The bound agent.
    pub agent_key: String,
    /// Stable conversation of this user and agent.
    pub conversation_id: String,
    /// Telegram bot id, if any.
    pub bot_identity: Option<String>,
    /// `active` or `revoked`.
    pub status: String,
    /// `manual`, `telegram_pairing` or `api`.
    pub source: String,
    /// Telegram user id, if paired.
    pub telegram_user_id: Option<String>,
    /// Telegram chat id, if paired.
    pub telegram_chat_id: Option<String>,
    /// String-valued metadata.
    pub metadata: Option<Map<String, Value>>,
    /// When it was created.
    pub bound_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// Columns read by [`binding_from_row`], in order.
pub(crate) const BINDING_COLUMNS: &str =
    "consumer_user_id, agent_key, conversation_id, bot_identity, status, \
     source, telegram_user_id, telegram_chat_id, metadata, bound_at, revoked_at";

/// A stored binding row; corrupt metadata is a storage error.
pub(crate) fn binding_from_row(r: &Row<'_>) -> rusqlite::Result<Binding> {
    let consumer_user_id: String = r.get(0)?;
    let agent_key: String = r.get(1)?;
    let stored: String = r.get(2)?;
    let conversation_id = if stored.trim().is_empty() {
        crate::ids::user_agent_conversation_id(&agent_key, &consumer_user_id)
    } else {
        stored.trim().to_string()
    };
    let metadata: Option<String> = r.get(8)?;
    let metadata = metadata
        .map(|m| serde_json::from_str::<Map<String, Value>>(&m))
        .transpose()
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, Box::new(e))
        })?;
    Ok(Binding {
        consumer_user_id,
        agent_key,
        conversation_id,
        bot_identity: r.get(3)?,
        status: r.get(4)?,
        source: r.get(5)?,
        telegram_user_id: r.get(6)?,
        telegram_chat_id: r.get(7)?,
        metadata,
        bound_at: r.get(9)?,
        revoked_at: r.get(10)?,
    })
}

/// Check a consumer user id: 1-256 characters, not blank, no surrounding
/// whitespace and no control characters (it is part of a conversation id).
pub fn validate_consumer_user_id(value: &str) -> Result<()> {
    let n = value.chars().count();
    if value.trim().is_empty()
        || n > MAX_USER_ID_CHARS
        || value.trim() != value
        || value.chars().any(char::is_control)
    {
        return Err(Error::validation(format!(
            "consumerUserId {value:?} must be 1-{MAX_USER_ID_CHARS} characters without surrounding whitespace or control characters"
        )));
    }
    Ok(())
}

/// A trimmed optional id: blank is `None`, otherwise letters, digits and `._:-`.
pub(crate) fn optional_id(field: &str, value: Option<&str>) -> Result<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => {
            crate::validate::identifier(field, v, 128, false)?;
            Ok(Some(v.to_string()))
        }
    }
}

/// A required id (trimmed): letters, digits and `._:-`, 1-128 characters.
pub(crate) fn required_id(field: &str, value: &str) -> Result<String> {
    optional_id(field, Some(value))?
        .ok_or_else(|| Error::validation(format!("{field} is required and must not be blank")))
}

/// Check string-valued metadata (the seed's `record<string, string>`).
pub fn validate_metadata(field: &str, metadata: &Map<String, Value>) -> Result<()> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::validation(format!(
            "{field} has {} entries; the limit is {MAX_METADATA_ENTRIES}",
            metadata.len()
        )));
    }
    for (k, v) in metadata {
        if k.trim().is_empty() || k.chars().count() > 128 {
            return Err(Error::validation(format!(
                "{field} key {k:?} must be 1-128 characters and not blank"
            )));
        }
        let Some(s) = v.as_str() else {
            return Err(Error::validation(format!("{field}.{k} must be a string")));
        };
        crate::validate::optional_text(&format!("{field}.{k}"), s, MAX_METADATA_VALUE_CHARS)?;
    }
    Ok(())
}

/// Check a listing limit against `1..=max`.
pub(crate) fn check_limit(limit: i64, max: i64) -> Result<()> {
    if (1..=max).contains(&limit) {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "limit must be within 1..={max}, got {limit}"
        )))
    }
}
