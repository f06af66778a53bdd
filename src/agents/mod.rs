//! Agent profiles: which agents exist, their secrets and bridge settings.
//!
//! Invariants: `agent_key` is unique; the stored `secrets_ref` is the
//! de-duplicated union (first occurrence wins) of the caller's list, the
//! provider token `fly.apiToken`, and, when the bridge is enabled, its service-key
//! and base-URL-map references; only enabled agents receive messages.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::secrets::validate_secret_ref;
use crate::store::Tx;

/// Agent-bridge settings of a profile.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Whether workers get a bridge runtime config.
    pub enabled: bool,
    /// Inline base URL (wins over secrets).
    pub base_url: Option<String>,
    /// Inline service id.
    pub service_id: Option<String>,
    /// Inline app key.
    pub app_key: Option<String>,
    /// Secret holding the service key.
    pub service_key_secret_ref: Option<String>,
    /// Secret holding the app → base URL JSON map.
    pub app_base_url_map_json_secret_ref: Option<String>,
}

/// A stored agent profile.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentProfile {
    /// Unique key.
    pub agent_key: String,
    /// Free-form version label.
    pub version: String,
    /// Secrets the agent needs.
    pub secrets_ref: Vec<String>,
    /// Telegram bot id, when known.
    pub bot_identity: Option<String>,
    /// Bridge settings.
    pub bridge_config: Option<BridgeConfig>,
    /// Whether the agent receives messages.
    pub enabled: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// Input of [`Factory::upsert_agent`].
#[derive(Debug, Clone, Default)]
pub struct AgentInput {
    /// Unique key.
    pub agent_key: String,
    /// Version label.
    pub version: String,
    /// Secrets the agent needs.
    pub secrets_ref: Vec<String>,
    /// Telegram bot id (`None` keeps the stored value on update).
    pub bot_identity: Option<String>,
    /// Bridge settings (`None` keeps the stored value on update).
    pub bridge_config: Option<BridgeConfig>,
    /// Whether the agent receives messages.
    pub enabled: bool,
}

/// Provider token every profile lists.
pub const PROVIDER_TOKEN_REF: &str = "fly.apiToken";

/// Check an agent key.
pub fn validate_agent_key(agent_key: &str) -> Result<()> {
    crate::validate::identifier("agentKey", agent_key, 128, false)
}

fn optional_text(field: &str, value: &Option<String>, max: usize) -> Result<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() > max => Err(Error::validation(format!(
            "{field} is longer than {max} characters"
        ))),
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// The stored `secrets_ref` for an input.
pub fn merged_secrets_ref(input: &AgentInput) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    let mut push = |r: String| {
        if !refs.contains(&r) {
            refs.push(r);
        }
    };
    input.secrets_ref.iter().cloned().for_each(&mut push);
    push(PROVIDER_TOKEN_REF.to_string());
    if let Some(b) = input.bridge_config.as_ref().filter(|b| b.enabled) {
        let key = &input.agent_key;
        push(
            b.service_key_secret_ref
                .clone()
                .unwrap_or_else(|| format!("agent-bridge.serviceKey.{key}")),
        );
        push(
            b.app_base_url_map_json_secret_ref
                .clone()
                .unwrap_or_else(|| format!("agent-bridge.baseUrlMapJson.{key}")),
        );
    }
    refs
}

fn normalise_bridge(b: &BridgeConfig) -> Result<BridgeConfig> {
    let out = BridgeConfig {
        enabled: b.enabled,
        base_url: optional_text("bridgeConfig.baseUrl", &b.base_url, 2048)?,
        service_id: optional_text("bridgeConfig.serviceId", &b.service_id, 256)?,
        app_key: optional_text("bridgeConfig.appKey", &b.app_key, 256)?,
        service_key_secret_ref: optional_text(
            "bridgeConfig.serviceKeySecretRef",
            &b.service_key_secret_ref,
            200,
        )?,
        app_base_url_map_json_secret_ref: optional_text(
            "bridgeConfig.appBaseUrlMapJsonSecretRef",
            &b.app_base_url_map_json_secret_ref,
            200,
        )?,
    };
    for r in [
        &out.service_key_secret_ref,
        &out.app_base_url_map_json_secret_ref,
    ]
    .into_iter()
    .flatten()
    {
        validate_secret_ref(r)?;
    }
    Ok(out)
}

const COLUMNS: &str =
    "agent_key, version, secrets_ref, bot_identity, bridge_config, enabled, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<(AgentProfile, String, Option<String>)> {
    Ok((
        AgentProfile {
            agent_key: r.get(0)?,
            version: r.get(1)?,
            secrets_ref: Vec::new(),
            bot_identity: r.get(3)?,
            bridge_config: None,
            enabled: r.get(5)?,
            created_at: r.get(6)?,
            updated_at: r.get(7)?,
        },
        r.get(2)?,
        r.get(4)?,
    ))
}

fn decode((mut p, refs, bridge): (AgentProfile, String, Option<String>)) -> Result<AgentProfile> {
    p.secrets_ref = serde_json::from_str(&refs)?;
    p.bridge_config = bridge.map(|b| serde_json::from_str(&b)).transpose()?;
    Ok(p)
}

/// Load a profile inside a transaction.
pub(crate) fn get_in(tx: &Tx, agent_key: &str) -> Result<Option<AgentProfile>> {
    let sql = format!("SELECT {COLUMNS} FROM agents WHERE agent_key = ?1");
    tx.prepare_cached(&sql)?
        .query_row([agent_key], from_row)
        .optional()?
        .map(decode)
        .transpose()
}

/// Fail unless the agent exists and is enabled (the enqueue rule).
pub(crate) fn require_enabled(tx: &Tx, agent_key: &str) -> Result<()> {
    let enabled: Option<bool> = tx
        .prepare_cached("SELECT enabled FROM agents WHERE agent_key = ?1")?
        .query_row([agent_key], |r| r.get(0))
        .optional()?;
    check_enabled(agent_key, enabled)
}

/// The error for an agent whose `enabled` flag was read as `enabled` (`None`: no such agent).
pub(crate) fn check_enabled(agent_key: &str, enabled: Option<bool>) -> Result<()> {
    match enabled {
        Some(true) => Ok(()),
        Some(false) => Err(Error::invalid_state(format!(
            "Agent profile '{agent_key}' not found or disabled"
        ))),
        None => Err(Error::not_found(format!(
            "Agent profile '{agent_key}' not found or disabled"
        ))),
    }
}

impl Factory {
    /// Create or update an agent profile.
    pub fn upsert_agent(&self, input: AgentInput, now_ms: Option<i64>) -> Result<AgentProfile> {
        validate_agent_key(&input.agent_key)?;
        let version = input.version.trim();
        if version.is_empty() || version.len() > 64 {
            return Err(Error::validation(format!(
                "version {:?} must be 1-64 characters",
                input.version
            )));
        }
        for r in &input.secrets_ref {
            validate_secret_ref(r)?;
        }
        let bot_identity = optional_text("botIdentity", &input.bot_identity, 128)?;
        let bridge = input
            .bridge_config
            .as_ref()
            .map(normalise_bridge)
            .transpose()?;
        let normalised = AgentInput {
            bridge_config: bridge.clone(),
            ..input.clone()
        };
        let refs = serde_json::to_string(&merged_secrets_ref(&normalised))?;
        let bridge_json = bridge.as_ref().map(serde_json::to_string).transpose()?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            tx.execute(
                "INSERT INTO agents(agent_key, version, secrets_ref, bot_identity, bridge_config, enabled, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT(agent_key) DO UPDATE SET
                   version = excluded.version,
                   secrets_ref = excluded.secrets_ref,
                   bot_identity = coalesce(excluded.bot_identity, agents.bot_identity),
                   bridge_config = coalesce(excluded.bridge_config, agents.bridge_config),
                   enabled = excluded.enabled,
                   updated_at = excluded.updated_at",
                params![input.agent_key, version, refs, bot_identity, bridge_json, input.enabled, now],
            )?;
            get_in(tx, &input.agent_key)?.ok_or_else(|| Error::storage("agent vanished after upsert"))
        })
    }

    /// A profile, or `None`.
    pub fn get_agent(&self, agent_key: &str) -> Result<Option<AgentProfile>> {
        validate_agent_key(agent_key)?;
        self.store.read(|tx| get_in(tx, agent_key))
    }

    /// All profiles (optionally only enabled or disabled ones), by key.
    pub fn list_agents(&self, enabled: Option<bool>) -> Result<Vec<AgentProfile>> {
        self.store.read(|tx| {
            let sql = format!("SELECT {COLUMNS} FROM agents WHERE (?1 IS NULL OR enabled = ?1) ORDER BY agent_key");
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map([enabled], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(decode).collect()
        })
    }

    /// Enable or disable an agent.
    pub fn set_agent_enabled(
        &self,
        agent_key: &str,
        enabled: bool,
        now_ms: Option<i64>,
    ) -> Result<AgentProfile> {
        validate_agent_key(agent_key)?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let n = tx.execute(
                "UPDATE agents SET enabled = ?2, updated_at = ?3 WHERE agent_key = ?1",
                params![agent_key, enabled, now],
            )?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "Agent profile '{agent_key}' not found"
                )));
            }
            get_in(tx, agent_key)?.ok_or_else(|| Error::storage("agent vanished after update"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_ref_union_keeps_first_occurrence_and_adds_bridge_refs() {
        let input = AgentInput {
            agent_key: "a".into(),
            secrets_ref: vec![
                "telegram.botToken".into(),
                "fly.apiToken".into(),
                "telegram.botToken".into(),
            ],
            bridge_config: Some(BridgeConfig {
                enabled: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            merged_secrets_ref(&input),
            vec![
                "telegram.botToken",
                "fly.apiToken",
                "agent-bridge.serviceKey.a",
                "agent-bridge.baseUrlMapJson.a"
            ]
        );
    }
}
