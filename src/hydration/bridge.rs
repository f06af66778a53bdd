//! Secret resolution for workers: the Telegram bot token and the agent-bridge
//! runtime config, with the seed's naming conventions and precedence.
//!
//! Precedence for a bridge field: the profile's inline value wins (even when
//! empty); otherwise the first active secret among `[preferred ref,
//! "<prefix>.<agentKey>", "<prefix>"]` (de-duplicated, in that order).

use crate::agents::{AgentProfile, BridgeConfig};
use crate::error::Result;
use crate::secrets::crypto::MasterKey;
use crate::secrets::first_active;
use crate::store::Tx;

/// Resolved bridge settings handed to a worker.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct BridgeRuntimeConfig {
    /// Bridge base URL.
    pub base_url: Option<String>,
    /// JSON map app key → base URL.
    pub app_base_url_map_json: Option<String>,
    /// Service id.
    pub service_id: Option<String>,
    /// App key.
    pub app_key: Option<String>,
    /// Service key (a secret).
    pub service_key: Option<String>,
    /// Which secret the service key came from.
    pub service_key_secret_ref: Option<String>,
    /// Telegram bot identity of the agent.
    pub bot_identity: Option<String>,
}

/// `[preferred, "<prefix>.<agentKey>", "<prefix>"]` without duplicates.
pub fn candidates(preferred: Option<&str>, prefix: &str, agent_key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in [
        preferred.map(str::to_string),
        Some(format!("{prefix}.{agent_key}")),
        Some(prefix.to_string()),
    ]
    .into_iter()
    .flatten()
    {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The first `telegram.botToken` / `telegram.botToken.*` ref of the profile with an active secret.
pub fn telegram_bot_token(
    tx: &Tx,
    key: &MasterKey,
    profile: &AgentProfile,
) -> Result<Option<String>> {
    let refs: Vec<String> = profile
        .secrets_ref
        .iter()
        .filter(|r| r.as_str() == "telegram.botToken" || r.starts_with("telegram.botToken."))
        .cloned()
        .collect();
    Ok(first_active(tx, key, &refs)?.map(|(v, _)| v))
}

fn secret(
    tx: &Tx,
    key: &MasterKey,
    preferred: Option<&str>,
    prefix: &str,
    agent: &str,
) -> Result<Option<(String, String)>> {
    first_active(tx, key, &candidates(preferred, prefix, agent))
}

/// The bridge runtime config, or `None` unless the profile enables the bridge.
pub fn bridge_runtime_config(
    tx: &Tx,
    key: &MasterKey,
    profile: &AgentProfile,
) -> Result<Option<BridgeRuntimeConfig>> {
    let Some(b @ BridgeConfig { enabled: true, .. }) = &profile.bridge_config else {
        return Ok(None);
    };
    let agent = profile.agent_key.as_str();
    let inline_or = |inline: &Option<String>, prefix: &str| -> Result<Option<String>> {
        match inline {
            Some(v) => Ok(Some(v.clone())),
            None => Ok(secret(tx, key, None, prefix, agent)?.map(|(v, _)| v)),
        }
    };
    let service_key = secret(
        tx,
        key,
        b.service_key_secret_ref.as_deref(),
        "agent-bridge.serviceKey",
        agent,
    )?;
    Ok(Some(BridgeRuntimeConfig {
        base_url: inline_or(&b.base_url, "agent-bridge.baseUrl")?,
        app_base_url_map_json: secret(
            tx,
            key,
            b.app_base_url_map_json_secret_ref.as_deref(),
            "agent-bridge.baseUrlMapJson",
            agent,
        )?
        .map(|(v, _)| v),
        service_id: inline_or(&b.service_id, "agent-bridge.serviceId")?,
        app_key: inline_or(&b.app_key, "agent-bridge.appKey")?,
        service_key_secret_ref: service_key.as_ref().map(|(_, r)| r.clone()),
        service_key: service_key.map(|(v, _)| v),
        bot_identity: profile.bot_identity.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::candidates;

    #[test]
    fn candidates_are_ordered_and_deduplicated() {
        assert_eq!(
            candidates(
                Some("agent-bridge.serviceKey.a"),
                "agent-bridge.serviceKey",
                "a"
            ),
            vec!["agent-bridge.serviceKey.a", "agent-bridge.serviceKey"]
        );
        assert_eq!(candidates(None, "p", "a"), vec!["p.a", "p"]);
    }
}
