//! User-agent views: the agents a consumer user has (bound, revoked or being
//! paired), their status, and pairing with a Telegram deep link.
//!
//! Invariants: a view is derived at `now` from the newest binding and pairing
//! codes of one `(user, agent)` (read through the per-user indexes) and the
//! agent's profile; nothing here writes except [`Factory::create_user_agent_pairing`].
//! A deep link is produced only from a known Telegram username (binding
//! metadata, else the metadata of the agent's active Telegram token secret
//! whose bot id matches); the agent key is never taken for a username.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};

use super::bind::{active_binding_in, latest_binding_in};
use super::pairing::{create_pairing_in, pairing_from_row, PairingCode, PAIRING_COLUMNS};
use super::{validate_consumer_user_id, Binding};
use crate::agents::{validate_agent_key, AgentProfile};
use crate::error::Result;
use crate::factory::Factory;
use crate::ids;
use crate::store::Tx;

/// Revoked bindings read for an overview (the seed's bound).
const OVERVIEW_REVOKED: i64 = 100;
/// Pending pairings read for an overview (the seed's bound).
const OVERVIEW_PENDING: i64 = 50;
/// Secret holding the Telegram bot token shared by agents without their own.
pub const TELEGRAM_TOKEN_REF: &str = "telegram.botToken";

/// One agent of a user, as a consumer app shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAgent {
    /// The user.
    pub consumer_user_id: String,
    /// The agent.
    pub agent_key: String,
    /// `metadata.displayName` of the newest binding.
    pub display_name: Option<String>,
    /// The bot's Telegram username, when known.
    pub telegram_username: Option<String>,
    /// Bot identity: profile, else newest binding, else newest pairing code.
    pub bot_identity: Option<String>,
    /// Profile version (`None` when the profile is gone).
    pub version: Option<String>,
    /// `active`, `failed` (bound but profile disabled), `pairing`, `disabled` or `draft`.
    pub status: String,
    /// Status of the newest binding.
    pub binding_status: Option<String>,
    /// `used` when bound, else the newest pending code's `pending`/`expired`.
    pub pairing_status: Option<String>,
    /// Stable conversation of this user and agent.
    pub conversation_id: String,
    /// Whether the user has no active binding (may start a new agent).
    pub can_create_new_agent: bool,
    /// `status == "active"`.
    pub can_disable: bool,
    /// `status == "active"`.
    pub can_chat: bool,
    /// `status == "active"`.
    pub can_manage_push_jobs: bool,
}

/// All agents of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAgentsOverview {
    /// Agents: by newest binding, then by newest pending code.
    pub agents: Vec<UserAgent>,
    /// Agent of the active binding.
    pub active_agent_key: Option<String>,
    /// Whether the user has no active binding.
    pub can_create_new_agent: bool,
}

/// A new pairing code with its Telegram deep link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAgentPairing {
    /// The code.
    pub pairing: PairingCode,
    /// `https://t.me/<username>?start=<code>`, or `None` without a known username.
    pub deep_link: Option<String>,
}

fn meta_str<'a>(m: &'a Option<Map<String, Value>>, key: &str) -> Option<&'a str> {
    m.as_ref()?
        .get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A Telegram username (`@` stripped): 5-32 letters, digits or `_`.
pub fn telegram_username(raw: &str) -> Option<String> {
    let u = raw.trim().trim_start_matches('@');
    let ok =
        (5..=32).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then(|| u.to_string())
}

/// Secrets that may hold the agent's Telegram token, in lookup order: the
/// profile's `telegram.botToken[.*]` references, `telegram.botToken.<agent>`,
/// then the shared `telegram.botToken`.
pub(crate) fn telegram_token_refs(agent_key: &str, profile: Option<&AgentProfile>) -> Vec<String> {
    let mut refs: Vec<String> = profile
        .map(|p| {
            p.secrets_ref
                .iter()
                .filter(|r| *r == TELEGRAM_TOKEN_REF || r.starts_with("telegram.botToken."))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for r in [
        format!("{TELEGRAM_TOKEN_REF}.{agent_key}"),
        TELEGRAM_TOKEN_REF.to_string(),
    ] {
        if !refs.contains(&r) {
            refs.push(r);
        }
    }
    refs
}

/// The bot's username from the newest binding's metadata, else from the
/// metadata of the agent's active token secret (skipping a secret recorded
/// for a different bot id).
pub(crate) fn username_for(
    tx: &Tx,
    agent_key: &str,
    profile: Option<&AgentProfile>,
    binding: Option<&Binding>,
    bot_identity: Option<&str>,
) -> Result<Option<String>> {
    if let Some(u) = binding
        .and_then(|b| meta_str(&b.metadata, "telegramUsername"))
        .and_then(telegram_username)
    {
        return Ok(Some(u));
    }
    for r in telegram_token_refs(agent_key, profile) {
        let Some(meta) = crate::secrets::active_metadata(tx, &r)? else {
            continue;
        };
        let meta = Some(meta);
        let other_bot = match (meta_str(&meta, "telegramBotId"), bot_identity) {
            (Some(id), Some(bot)) => id != bot,
            _ => false,
        };
        if other_bot {
            continue;
        }
        if let Some(u) = meta_str(&meta, "telegramUsername").and_then(telegram_username) {
            return Ok(Some(u));
        }
    }
    Ok(None)
}

fn latest_pairing(
    tx: &Tx,
    user: &str,
    agent: &str,
    pending_only: bool,
) -> Result<Option<PairingCode>> {
    let filter = if pending_only {
        "AND status = 'pending'"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {PAIRING_COLUMNS} FROM pairing_codes WHERE consumer_user_id = ?1 AND agent_key = ?2 {filter}
         ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([user, agent], pairing_from_row)
        .optional()?)
}

/// The view of `(user, agent)` at `now`; `None` when there is no profile, no
/// binding and no pairing code.
fn view_in(
    tx: &Tx,
    user: &str,
    agent: &str,
    user_has_active: bool,
    now: i64,
) -> Result<Option<UserAgent>> {
    let profile = crate::agents::get_in(tx, agent)?;
    let binding = latest_binding_in(tx, user, agent)?;
    let pairing = latest_pairing(tx, user, agent, false)?;
    if profile.is_none() && binding.is_none() && pairing.is_none() {
        return Ok(None);
    }
    let pending = latest_pairing(tx, user, agent, true)?;
    let profile_enabled = profile.as_ref().is_some_and(|p| p.enabled);
    let bound = binding.as_ref().is_some_and(|b| b.status == "active");
    let pending_live = pending.as_ref().is_some_and(|p| p.expires_at > now);
    let status = if bound {
        if profile_enabled {
            "active"
        } else {
            "failed"
        }
    } else if pending_live {
        "pairing"
    } else if binding.as_ref().is_some_and(|b| b.status == "revoked") || !profile_enabled {
        "disabled"
    } else {
        "draft"
    };
    let pairing_status = if bound {
        Some("used".to_string())
    } else {
        pending.as_ref().map(|_| {
            if pending_live {
                "pending".to_string()
            } else {
                "expired".to_string()
            }
        })
    };
    let bot_identity = profile
        .as_ref()
        .and_then(|p| p.bot_identity.clone())
        .or_else(|| binding.as_ref().and_then(|b| b.bot_identity.clone()))
        .or_else(|| pairing.as_ref().and_then(|p| p.bot_identity.clone()))
        .or_else(|| pending.as_ref().and_then(|p| p.bot_identity.clone()));
    let telegram_username = username_for(
        tx,
        agent,
        profile.as_ref(),
        binding.as_ref(),
        bot_identity.as_deref(),
    )?;
    let active = status == "active";
    Ok(Some(UserAgent {
        consumer_user_id: user.to_string(),
        agent_key: agent.to_string(),
        display_name: binding
            .as_ref()
            .and_then(|b| meta_str(&b.metadata, "displayName"))
            .map(str::to_string),
        telegram_username,
        bot_identity,
        version: profile.map(|p| p.version),
        status: status.to_string(),
        binding_status: binding.as_ref().map(|b| b.status.clone()),
        pairing_status,
        conversation_id: binding
            .map(|b| b.conversation_id)
            .unwrap_or_else(|| ids::user_agent_conversation_id(agent, user)),
        can_create_new_agent: !user_has_active,
        can_disable: active,
        can_chat: active,
        can_manage_push_jobs: active,
    }))
}

/// Agent keys of the user: active and newest revoked bindings (newest first),
/// then newest pending codes; each once.
fn agent_keys(tx: &Tx, user: &str, active: Option<&Binding>) -> Result<Vec<String>> {
    let mut bindings: Vec<(i64, String)> = active
        .map(|b| (b.bound_at, b.agent_key.clone()))
        .into_iter()
        .collect();
    let mut stmt = tx.prepare_cached(
        "SELECT bound_at, agent_key FROM identity_bindings WHERE consumer_user_id = ?1 AND status = 'revoked'
         ORDER BY bound_at DESC, id DESC LIMIT ?2",
    )?;
    for row in stmt.query_map(params![user, OVERVIEW_REVOKED], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })? {
        bindings.push(row?);
    }
    bindings.sort_by_key(|b| std::cmp::Reverse(b.0));
    let mut keys: Vec<String> = Vec::new();
    let mut push = |k: String| {
        if !keys.contains(&k) {
            keys.push(k);
        }
    };
    bindings.into_iter().for_each(|(_, k)| push(k));
    let mut stmt = tx.prepare_cached(
        "SELECT agent_key FROM pairing_codes WHERE consumer_user_id = ?1 AND status = 'pending'
         ORDER BY created_at DESC, id DESC LIMIT ?2",
    )?;
    for row in stmt.query_map(params![user, OVERVIEW_PENDING], |r| r.get::<_, String>(0))? {
        push(row?);
    }
    Ok(keys)
}

fn overview_in(tx: &Tx, user: &str, now: i64) -> Result<UserAgentsOverview> {
    let active = active_binding_in(tx, user)?;
    let keys = agent_keys(tx, user, active.as_ref())?;
    let mut agents = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(v) = view_in(tx, user, &k, active.is_some(), now)? {
            agents.push(v);
        }
    }
    Ok(UserAgentsOverview {
        agents,
        can_create_new_agent: active.is_none(),
        active_agent_key: active.map(|b| b.agent_key),
    })
}

impl Factory {
    /// The user's agents (bound, previously bound or being paired) at `now`;
    /// `include_disabled = false` leaves out agents whose status is `disabled`.
    pub fn list_user_agents(
        &self,
        consumer_user_id: &str,
        include_disabled: bool,
        now_ms: Option<i64>,
    ) -> Result<Vec<UserAgent>> {
        validate_consumer_user_id(consumer_user_id)?;
        let now = self.now(now_ms)?;
        let all = self
            .store
            .read(|tx| overview_in(tx, consumer_user_id, now))?;
        Ok(all
            .agents
            .into_iter()
            .filter(|a| include_disabled || a.status != "disabled")
            .collect())
    }

    /// One agent of the user at `now`; `None` when the agent has no profile and
    /// the user never bound or paired it.
    pub fn get_user_agent(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        now_ms: Option<i64>,
    ) -> Result<Option<UserAgent>> {
        validate_consumer_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        let now = self.now(now_ms)?;
        self.store.read(|tx| {
            let active = active_binding_in(tx, consumer_user_id)?.is_some();
            view_in(tx, consumer_user_id, agent_key, active, now)
        })
    }

    /// The agent of the user's active binding, or `None`.
    pub fn active_user_agent(
        &self,
        consumer_user_id: &str,
        now_ms: Option<i64>,
    ) -> Result<Option<UserAgent>> {
        validate_consumer_user_id(consumer_user_id)?;
        let now = self.now(now_ms)?;
        self.store
            .read(|tx| match active_binding_in(tx, consumer_user_id)? {
                None => Ok(None),
                Some(b) => view_in(tx, consumer_user_id, &b.agent_key, true, now),
            })
    }

    /// All agents of the user, the active one's key and whether a new agent may be created.
    pub fn user_agents_overview(
        &self,
        consumer_user_id: &str,
        now_ms: Option<i64>,
    ) -> Result<UserAgentsOverview> {
        validate_consumer_user_id(consumer_user_id)?;
        let now = self.now(now_ms)?;
        self.store.read(|tx| overview_in(tx, consumer_user_id, now))
    }

    /// Create a pairing code (see [`Factory::create_pairing_code`]) and its
    /// `https://t.me/<username>?start=<code>` deep link when the bot's username is known.
    pub fn create_user_agent_pairing(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        ttl_ms: Option<i64>,
        now_ms: Option<i64>,
    ) -> Result<UserAgentPairing> {
        validate_consumer_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        super::pairing::pairing_ttl(ttl_ms)?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let pairing = create_pairing_in(tx, consumer_user_id, agent_key, ttl_ms, now)?;
            let profile = crate::agents::get_in(tx, agent_key)?;
            let binding = latest_binding_in(tx, consumer_user_id, agent_key)?;
            let username = username_for(
                tx,
                agent_key,
                profile.as_ref(),
                binding.as_ref(),
                pairing.bot_identity.as_deref(),
            )?;
            Ok(UserAgentPairing {
                deep_link: username.map(|u| format!("https://t.me/{u}?start={}", pairing.code)),
                pairing,
            })
        })
    }

    /// The newest pairing code of `(user, agent)` at `now` (a pending code past
    /// expiry reads as `expired`), or `None`.
    pub fn user_agent_pairing_status(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        now_ms: Option<i64>,
    ) -> Result<Option<PairingCode>> {
        validate_consumer_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        let now = self.now(now_ms)?;
        Ok(self
            .store
            .read(|tx| latest_pairing(tx, consumer_user_id, agent_key, false))?
            .map(|p| p.at(now)))
    }
}
