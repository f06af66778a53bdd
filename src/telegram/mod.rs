//! Telegram: Bot API client, update ingestion, attachments and webhooks.
//!
//! Invariants:
//! - network I/O (getMe, getFile, file downloads, setWebhook, getWebhookInfo)
//!   never runs inside a database transaction: an operation reads what it needs
//!   in one short transaction, talks to Telegram, then writes in one transaction;
//! - a bot token never appears in a log line, an error message or a `Debug`
//!   output; the webhook secret token is random (CSPRNG), stored encrypted and
//!   compared in constant time;
//! - an update is enqueued at most once per `(bot identity, update_id)`: the
//!   de-duplication row and the message commit together;
//! - a failed operation writes nothing (a pairing code that turned out to be
//!   expired is the one documented exception: it is marked `expired`).

pub mod attachments;
pub mod bot_api;
pub mod bots;
pub mod ingest;
pub mod media;
pub mod onboarding;
pub mod settings;
pub mod update;
pub mod webhook;

#[cfg(test)]
mod tests;

use rusqlite::params;

use crate::agents::AgentProfile;
use crate::error::Result;
use crate::secrets::crypto::MasterKey;
use crate::store::Tx;

pub use attachments::AttachmentExpiry;
pub use bot_api::{BotApi, BotUser, TelegramFile, WebhookInfo};
pub use bots::{BotIdentity, ImportedToken};
pub use ingest::{IngestOutcome, IngestStatus};
pub use onboarding::{OnboardingState, ProviderReadiness, TelegramReadiness};
pub use settings::{TelegramApiConfig, TelegramApiPatch};
pub use webhook::{WebhookSetup, WebhookStatus};

/// The global bot token reference (`telegram.botToken`).
pub const GLOBAL_TOKEN_REF: &str = "telegram.botToken";

/// The per-agent bot token reference, `telegram.botToken.<agentKey>`.
pub fn agent_token_ref(agent_key: &str) -> String {
    format!("{GLOBAL_TOKEN_REF}.{agent_key}")
}

/// The per-agent webhook secret token reference, `telegram.webhookSecret.<agentKey>`.
pub fn webhook_secret_ref(agent_key: &str) -> String {
    format!("telegram.webhookSecret.{agent_key}")
}

/// Whether `secret_ref` names a Telegram bot token (`telegram.botToken[.*]`).
pub fn is_token_ref(secret_ref: &str) -> bool {
    secret_ref == GLOBAL_TOKEN_REF
        || secret_ref
            .strip_prefix(GLOBAL_TOKEN_REF)
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
}

/// Where an agent's bot token is looked up, in order: the profile's
/// `telegram.botToken[.*]` refs, then `telegram.botToken.<agentKey>`, then
/// `telegram.botToken` (de-duplicated).
pub fn token_ref_candidates(profile: &AgentProfile) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let listed = profile
        .secrets_ref
        .iter()
        .filter(|r| is_token_ref(r))
        .cloned();
    for r in listed.chain([
        agent_token_ref(&profile.agent_key),
        GLOBAL_TOKEN_REF.to_string(),
    ]) {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// The agent's bot token and the ref it came from, if one is active.
pub(crate) fn resolve_token(
    tx: &Tx,
    key: &MasterKey,
    profile: &AgentProfile,
) -> Result<Option<(String, String)>> {
    crate::secrets::first_active(tx, key, &token_ref_candidates(profile))
}

/// The ref onboarding reports for the agent's token: the first candidate with an
/// active secret, else the profile's first listed token ref, else the per-agent ref.
pub(crate) fn token_ref_for_display(tx: &Tx, profile: &AgentProfile) -> Result<(String, bool)> {
    let candidates = token_ref_candidates(profile);
    let mut stmt =
        tx.prepare_cached("SELECT 1 FROM secrets WHERE secret_ref = ?1 AND active = 1")?;
    for r in &candidates {
        if stmt.exists(params![r])? {
            return Ok((r.clone(), true));
        }
    }
    let fallback = profile
        .secrets_ref
        .iter()
        .find(|r| is_token_ref(r))
        .cloned()
        .unwrap_or_else(|| agent_token_ref(&profile.agent_key));
    Ok((fallback, false))
}

/// The agent whose profile carries `bot_identity`, if any other than `except`.
pub(crate) fn agent_with_bot(
    tx: &Tx,
    bot_identity: &str,
    except: Option<&str>,
) -> Result<Option<String>> {
    let mut stmt = tx.prepare_cached(
        "SELECT agent_key FROM agents WHERE bot_identity = ?1 AND agent_key <> coalesce(?2, '') ORDER BY agent_key LIMIT 1",
    )?;
    let mut rows = stmt.query(params![bot_identity, except])?;
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

/// The spec's error for a bot identity already used by another agent.
pub(crate) fn bot_taken(bot_identity: &str, other: &str) -> crate::error::Error {
    crate::error::Error::conflict(format!(
        "Telegram bot identity '{bot_identity}' is already assigned to agent '{other}'"
    ))
}
