//! Onboarding and readiness views (seed `getUserAgentOnboardingState`,
//! `getTelegramAgentReadiness` / `getAgentOperationalReadiness`,
//! `getProviderOperationalReadiness`).
//!
//! Invariants:
//! - read-only, one read transaction each, index lookups only;
//! - `webhook_ready` comes from the agent's persisted webhook state: verified by
//!   `getWebhookInfo` for the agent's current bot, with a stored secret token — not
//!   from the user's binding (§10.10), so `next_action` really walks
//!   `import_token → configure_webhook → create_pairing → complete_pairing → ready`;
//! - the deep link uses the bot's real username (from `getMe`), never the agent key.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use super::{resolve_token, token_ref_for_display, webhook_secret_ref};
use crate::agents::{get_in, validate_agent_key, AgentProfile};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::secrets::active_metadata;
use crate::settings::{message_config_in, provider_config_in};
use crate::store::Tx;

/// Where a consumer user stands in setting up an agent's Telegram bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnboardingState {
    /// The agent.
    pub agent_key: String,
    /// The bot's username (from `getMe`), if known.
    pub telegram_username: Option<String>,
    /// The agent's bot identity, if known.
    pub bot_identity: Option<String>,
    /// The secret ref holding (or meant to hold) the bot token.
    pub token_secret_ref: String,
    /// Whether that secret has an active version.
    pub token_imported: bool,
    /// The agent's webhook was verified for its current bot and has a secret token.
    pub webhook_ready: bool,
    /// The pending pairing code, when one is pending and unexpired.
    pub pairing_code: Option<String>,
    /// `pending`, `used`, `expired` or `None` (no pairing yet).
    pub pairing_status: Option<String>,
    /// `https://t.me/<username>?start=<code>` for a pending code.
    pub pairing_deep_link: Option<String>,
    /// `import_token`, `configure_webhook`, `create_pairing`, `complete_pairing` or `ready`.
    pub next_action: String,
}

/// Whether the provider side is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderReadiness {
    /// A provider runtime config is stored.
    pub provider_runtime_config_present: bool,
    /// A message runtime config is stored.
    pub worker_runtime_config_present: bool,
    /// `missing_provider_runtime_config`, `missing_message_runtime_config`.
    pub issues: Vec<String>,
}

/// Whether an agent is ready to receive Telegram messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TelegramReadiness {
    /// The agent.
    pub agent_key: String,
    /// Profile secrets without an active version, in profile order.
    pub missing_secrets: Vec<String>,
    /// A bot token is active for the agent.
    pub has_telegram_token: bool,
    /// The agent's bot identity, if known.
    pub bot_identity: Option<String>,
    /// See [`OnboardingState::webhook_ready`].
    pub webhook_ready: bool,
    /// The consumer user has an active Telegram binding to the agent.
    pub paired: bool,
    /// A provider runtime config is stored.
    pub provider_runtime_config_present: bool,
    /// A message runtime config is stored.
    pub worker_runtime_config_present: bool,
    /// Provider issues, then `missing_telegram_token`, `missing_bot_identity`,
    /// `webhook_not_verified` as they apply.
    pub issues: Vec<String>,
}

/// The latest binding of (user, agent): (active, telegram-paired, bot, metadata username).
type LatestBinding = (bool, bool, Option<String>, Option<String>);

fn latest_binding(tx: &Tx, user: &str, agent: &str) -> Result<Option<LatestBinding>> {
    Ok(
        crate::identity::latest_binding_in(tx, user, agent)?.map(|b| {
            let username = b
                .metadata
                .as_ref()
                .and_then(|m| m.get("telegramUsername"))
                .and_then(Value::as_str)
                .map(str::to_string);
            (
                b.status == "active",
                b.telegram_user_id.is_some() || b.telegram_chat_id.is_some(),
                b.bot_identity,
                username,
            )
        }),
    )
}

/// The latest pairing code of (user, agent): (code, status as reported now, bot).
fn latest_pairing(
    tx: &Tx,
    user: &str,
    agent: &str,
    now: i64,
) -> Result<Option<(String, String, Option<String>)>> {
    Ok(tx
        .prepare_cached(
            "SELECT code, CASE WHEN status = 'pending' AND expires_at <= ?3 THEN 'expired' ELSE status END, bot_identity
             FROM pairing_codes WHERE consumer_user_id = ?1 AND agent_key = ?2
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )?
        .query_row(params![user, agent, now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

/// The agent's persisted Telegram state: (verified webhook for the current bot, username).
fn agent_state(tx: &Tx, profile: &AgentProfile) -> Result<(bool, Option<String>)> {
    let row: Option<(Option<String>, Option<String>, bool)> = tx
        .prepare_cached(
            "SELECT bot_identity, bot_username, webhook_url IS NOT NULL AND webhook_verified_at IS NOT NULL
             FROM telegram_agents WHERE agent_key = ?1",
        )?
        .query_row([&profile.agent_key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((bot, username, verified)) = row else {
        return Ok((false, None));
    };
    let secret = tx
        .prepare_cached("SELECT 1 FROM secrets WHERE secret_ref = ?1 AND active = 1")?
        .exists([webhook_secret_ref(&profile.agent_key)])?;
    let same_bot = bot.is_some() && bot == profile.bot_identity;
    Ok((verified && secret && same_bot, username))
}

fn provider_readiness_in(tx: &Tx) -> Result<ProviderReadiness> {
    let provider = provider_config_in(tx)?.is_some();
    let message = message_config_in(tx)?.is_some();
    let mut issues = Vec::new();
    if !provider {
        issues.push("missing_provider_runtime_config".to_string());
    }
    if !message {
        issues.push("missing_message_runtime_config".to_string());
    }
    Ok(ProviderReadiness {
        provider_runtime_config_present: provider,
        worker_runtime_config_present: message,
        issues,
    })
}

fn profile_in(tx: &Tx, agent_key: &str) -> Result<AgentProfile> {
    get_in(tx, agent_key)?
        .ok_or_else(|| Error::not_found(format!("Agent profile '{agent_key}' not found")))
}

impl Factory {
    /// The consumer user's onboarding state for the agent's Telegram bot.
    pub fn telegram_onboarding_state(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        now_ms: Option<i64>,
    ) -> Result<OnboardingState> {
        crate::identity::validate_consumer_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        let now = self.now(now_ms)?;
        self.store.read(|tx| {
            let profile = profile_in(tx, agent_key)?;
            let (token_secret_ref, token_imported) = token_ref_for_display(tx, &profile)?;
            let (webhook_ready, bot_username) = agent_state(tx, &profile)?;
            let binding = latest_binding(tx, consumer_user_id, agent_key)?;
            let pairing = latest_pairing(tx, consumer_user_id, agent_key, now)?;
            let bot_identity = profile
                .bot_identity
                .clone()
                .or_else(|| binding.as_ref().and_then(|b| b.2.clone()))
                .or_else(|| pairing.as_ref().and_then(|p| p.2.clone()));
            let telegram_username = match bot_username {
                Some(u) => Some(u),
                None => active_metadata(tx, &token_secret_ref)?
                    .and_then(|m| {
                        m.get("telegramUsername")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .or_else(|| binding.as_ref().and_then(|b| b.3.clone())),
            };
            let paired = binding.as_ref().is_some_and(|b| b.0 && b.1);
            let pending = pairing
                .as_ref()
                .filter(|p| p.1 == "pending")
                .map(|p| p.0.clone());
            let pairing_status = if binding.as_ref().is_some_and(|b| b.0) {
                Some("used".to_string())
            } else {
                pairing.as_ref().map(|p| p.1.clone())
            };
            let next_action = if !token_imported || bot_identity.is_none() {
                "import_token"
            } else if !webhook_ready {
                "configure_webhook"
            } else if paired {
                "ready"
            } else if pending.is_some() {
                "complete_pairing"
            } else {
                "create_pairing"
            };
            let pairing_deep_link = match (&telegram_username, &pending) {
                (Some(u), Some(code)) => Some(format!("https://t.me/{u}?start={code}")),
                _ => None,
            };
            Ok(OnboardingState {
                agent_key: agent_key.to_string(),
                telegram_username,
                bot_identity,
                token_secret_ref,
                token_imported,
                webhook_ready,
                pairing_code: pending,
                pairing_status,
                pairing_deep_link,
                next_action: next_action.to_string(),
            })
        })
    }

    /// Whether the agent can receive Telegram messages, with the issues in the way.
    pub fn telegram_readiness(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
    ) -> Result<TelegramReadiness> {
        crate::identity::validate_consumer_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        self.store.read(|tx| {
            let profile = profile_in(tx, agent_key)?;
            let mut active =
                tx.prepare_cached("SELECT 1 FROM secrets WHERE secret_ref = ?1 AND active = 1")?;
            let mut missing_secrets = Vec::new();
            for r in &profile.secrets_ref {
                if !active.exists([r])? {
                    missing_secrets.push(r.clone());
                }
            }
            let has_telegram_token = resolve_token(tx, &self.key, &profile)?.is_some();
            let (webhook_ready, _) = agent_state(tx, &profile)?;
            let paired =
                latest_binding(tx, consumer_user_id, agent_key)?.is_some_and(|b| b.0 && b.1);
            let provider = provider_readiness_in(tx)?;
            let mut issues = provider.issues.clone();
            if !has_telegram_token {
                issues.push("missing_telegram_token".into());
            }
            if profile.bot_identity.is_none() {
                issues.push("missing_bot_identity".into());
            }
            if !webhook_ready {
                issues.push("webhook_not_verified".into());
            }
            Ok(TelegramReadiness {
                agent_key: agent_key.to_string(),
                missing_secrets,
                has_telegram_token,
                bot_identity: profile.bot_identity.clone(),
                webhook_ready,
                paired,
                provider_runtime_config_present: provider.provider_runtime_config_present,
                worker_runtime_config_present: provider.worker_runtime_config_present,
                issues,
            })
        })
    }

    /// Whether the provider and message runtime configs are stored.
    pub fn provider_readiness(&self) -> Result<ProviderReadiness> {
        self.store.read(provider_readiness_in)
    }
}
