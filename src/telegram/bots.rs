//! Bot tokens and bot identities: `import_token` (seed
//! `importTelegramTokenForAgent`), `reconcile_bot_identity` and the shared
//! `record_bot_in` (seed `syncAgentProfileTelegramBotIdentity`).
//!
//! Invariants:
//! - a bot identity (the `getMe` id) belongs to at most one agent; the check and
//!   the write happen in one transaction (and once more before any call that
//!   would point another agent's bot somewhere);
//! - the token is checked with `getMe` before anything is stored; it is never
//!   echoed in an error;
//! - the bot's username is kept per agent (`telegram_agents.bot_username`) and in
//!   the token secret's metadata, so deep links use the real `@username`, never
//!   the agent key (§10.10);
//! - when an agent's bot identity changes, its webhook verification is cleared
//!   (it was verified for another bot).

use rusqlite::params;
use serde::Serialize;
use serde_json::{Map, Value};

use super::bot_api::{validate_token, BotApi, BotUser};
use super::settings::api_config_in;
use super::{agent_token_ref, agent_with_bot, bot_taken, is_token_ref, resolve_token};
use crate::agents::{get_in, validate_agent_key};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::secrets::{active_plaintext, import_in, validate_secret_ref, ImportedSecret};
use crate::store::Tx;

/// The result of `import_token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedToken {
    /// Secret row id.
    pub secret_id: i64,
    /// Where the token was stored.
    pub secret_ref: String,
    /// Its new version.
    pub version: i64,
    /// The bot (`getMe` id).
    pub bot_identity: String,
    /// The bot's username.
    pub telegram_username: Option<String>,
}

/// The result of `reconcile_bot_identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotIdentity {
    /// The agent.
    pub agent_key: String,
    /// Where the token was read.
    pub secret_ref: String,
    /// The bot (`getMe` id).
    pub bot_identity: String,
    /// The bot's username.
    pub telegram_username: Option<String>,
}

/// Set the agent's bot identity from `getMe` (unique across agents) and record
/// the bot's username and token ref.
pub(crate) fn record_bot_in(
    tx: &Tx,
    agent_key: &str,
    me: &BotUser,
    token_ref: &str,
    now: i64,
) -> Result<()> {
    let bot = me.id.to_string();
    if let Some(other) = agent_with_bot(tx, &bot, Some(agent_key))? {
        return Err(bot_taken(&bot, &other));
    }
    let changed = tx
        .prepare_cached(
            "UPDATE agents SET bot_identity = ?2, updated_at = ?3 WHERE agent_key = ?1 AND bot_identity IS NOT ?2",
        )?
        .execute(params![agent_key, bot, now])?;
    if changed == 0 && get_in(tx, agent_key)?.is_none() {
        return Err(Error::not_found(format!(
            "Agent profile '{agent_key}' not found"
        )));
    }
    tx.prepare_cached(
        "INSERT INTO telegram_agents(agent_key, bot_identity, bot_username, token_secret_ref, identity_checked_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT(agent_key) DO UPDATE SET
           webhook_verified_at = CASE WHEN telegram_agents.bot_identity IS excluded.bot_identity
                                      THEN telegram_agents.webhook_verified_at END,
           bot_identity = excluded.bot_identity, bot_username = excluded.bot_username,
           token_secret_ref = excluded.token_secret_ref, identity_checked_at = excluded.identity_checked_at,
           updated_at = excluded.updated_at",
    )?
    .execute(params![agent_key, bot, me.username, token_ref, now])?;
    Ok(())
}

/// Whether the consumer user has a binding or a pairing code for the agent.
fn user_knows_agent(tx: &Tx, consumer_user_id: &str, agent_key: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM identity_bindings WHERE consumer_user_id = ?1 AND agent_key = ?2)
                 OR EXISTS(SELECT 1 FROM pairing_codes WHERE consumer_user_id = ?1 AND agent_key = ?2)",
        )?
        .query_row(params![consumer_user_id, agent_key], |r| r.get(0))?)
}

fn check_metadata(metadata: Option<&Map<String, Value>>) -> Result<()> {
    if let Some((k, _)) = metadata.and_then(|m| m.iter().find(|(_, v)| !v.is_string())) {
        return Err(Error::validation(format!("metadata.{k} must be a string")));
    }
    Ok(())
}

impl Factory {
    /// Check a bot token with `getMe` and store it for the agent (seed
    /// `importTelegramTokenForAgent`): the secret goes to the profile's first
    /// `telegram.botToken[.*]` ref, else `telegram.botToken.<agentKey>` (added to
    /// the profile), with metadata `telegramBotId` and `telegramUsername`; the
    /// profile's bot identity is set.
    pub fn import_telegram_token(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        token: &str,
        metadata: Option<Map<String, Value>>,
        now_ms: Option<i64>,
    ) -> Result<ImportedToken> {
        crate::identity::validate_consumer_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        let token = token.trim();
        validate_token(token)?;
        check_metadata(metadata.as_ref())?;
        self.now(now_ms)?;
        let not_found = || Error::not_found(format!("Agent profile '{agent_key}' not found"));
        let (secret_ref, config) = self.store.read(|tx| {
            let profile = get_in(tx, agent_key)?.ok_or_else(not_found)?;
            let secret_ref = profile
                .secrets_ref
                .iter()
                .find(|r| is_token_ref(r))
                .cloned()
                .unwrap_or_else(|| agent_token_ref(agent_key));
            if secret_ref != agent_token_ref(agent_key)
                && !user_knows_agent(tx, consumer_user_id, agent_key)?
            {
                return Err(Error::invalid_state(
                    "Agent is not yet associated with the provided consumerUserId",
                ));
            }
            Ok((secret_ref, api_config_in(tx)?))
        })?;
        let me = BotApi::new(&config, token)?.get_me()?;
        let bot = me.id.to_string();
        let now = self.now(now_ms)?;
        let imported: ImportedSecret = self.store.write(|tx| {
            let mut profile = get_in(tx, agent_key)?.ok_or_else(not_found)?;
            if let Some(other) = agent_with_bot(tx, &bot, Some(agent_key))? {
                return Err(bot_taken(&bot, &other));
            }
            if !profile.secrets_ref.contains(&secret_ref) {
                profile.secrets_ref.push(secret_ref.clone());
                tx.prepare_cached(
                    "UPDATE agents SET secrets_ref = ?2, updated_at = ?3 WHERE agent_key = ?1",
                )?
                .execute(params![
                    agent_key,
                    serde_json::to_string(&profile.secrets_ref)?,
                    now
                ])?;
            }
            let mut meta = metadata.clone().unwrap_or_default();
            meta.insert("telegramBotId".into(), Value::String(bot.clone()));
            if let Some(u) = &me.username {
                meta.insert("telegramUsername".into(), Value::String(u.clone()));
            }
            let imported = import_in(tx, &self.key, &secret_ref, token, Some(&meta), now)?;
            record_bot_in(tx, agent_key, &me, &secret_ref, now)?;
            Ok(imported)
        })?;
        Ok(ImportedToken {
            secret_id: imported.secret_id,
            secret_ref: imported.secret_ref,
            version: imported.version,
            bot_identity: bot,
            telegram_username: me.username,
        })
    }

    /// Ask `getMe` which bot the agent's token belongs to and record it on the
    /// profile (seed `reconcileTelegramBotIdentityForAgent`). `secret_ref`
    /// defaults to the agent's token resolution order.
    pub fn reconcile_telegram_bot_identity(
        &self,
        agent_key: &str,
        secret_ref: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<BotIdentity> {
        validate_agent_key(agent_key)?;
        if let Some(r) = secret_ref {
            validate_secret_ref(r)?;
        }
        self.now(now_ms)?;
        let (token, used_ref, config) = self.store.read(|tx| {
            let profile = get_in(tx, agent_key)?.ok_or_else(|| {
                Error::not_found(format!("Agent profile '{agent_key}' not found"))
            })?;
            let found = match secret_ref {
                Some(r) => active_plaintext(tx, &self.key, r)?.map(|v| (v, r.to_string())),
                None => resolve_token(tx, &self.key, &profile)?,
            };
            let missing = secret_ref
                .map(str::to_string)
                .unwrap_or_else(|| agent_token_ref(agent_key));
            let (token, used) = found.ok_or_else(|| {
                Error::invalid_state(format!(
                    "Missing Telegram token. Import an active '{missing}' secret first."
                ))
            })?;
            Ok((token, used, api_config_in(tx)?))
        })?;
        let me = BotApi::new(&config, &token)?.get_me()?;
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| record_bot_in(tx, agent_key, &me, &used_ref, now))?;
        Ok(BotIdentity {
            agent_key: agent_key.to_string(),
            secret_ref: used_ref,
            bot_identity: me.id.to_string(),
            telegram_username: me.username,
        })
    }
}
