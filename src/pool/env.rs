//! The environment a spawned worker receives (spec §6 and §3.1).
//!
//! Invariants:
//! - keys with a blank value are dropped (the seed's `compactEnv`), so an
//!   unresolved bridge secret is absent, never empty;
//! - precedence, lowest first: the pool's extra env, the forwarded bridge
//!   values, then the per-worker keys (`WORKER_ID`, `WORKSPACE_ID`,
//!   `WORKER_IDLE_TIMEOUT_MS`, `OPENCLAW_AGENT_KEY`, `OPENCLAW_CONVERSATION_ID`);
//!   providers add their own keys on top (`AGENT_FACTORY_WORKER_ID`, and for
//!   local workers `AGENT_FACTORY_DB` / `AGENT_FACTORY_DATA_DIR` / `AGENT_FACTORY_HANDLER`);
//! - a forwarded bridge value is either the global secret or the one value
//!   every bridge-enabled agent agrees on; an ambiguous value is not sent.

use std::collections::{BTreeMap, BTreeSet};

use crate::agents::AgentProfile;
use crate::error::Result;
use crate::factory::Factory;
use crate::hydration::bridge::candidates;
use crate::secrets::crypto::MasterKey;
use crate::secrets::{active_plaintext, first_active};
use crate::store::Tx;

/// Forwarded service id.
pub const SERVICE_ID: &str = "OPENCLAW_SERVICE_ID";
/// Forwarded service key.
pub const SERVICE_KEY: &str = "OPENCLAW_SERVICE_KEY";
/// Forwarded linking secret.
pub const LINKING_SECRET: &str = "OPENCLAW_LINKING_SHARED_SECRET";

fn unambiguous(values: impl IntoIterator<Item = Option<String>>) -> Option<String> {
    let distinct: BTreeSet<String> = values
        .into_iter()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .collect();
    if distinct.len() == 1 {
        distinct.into_iter().next()
    } else {
        None
    }
}

fn forwarded_in(
    tx: &Tx,
    key: &MasterKey,
    bridged: &[&AgentProfile],
) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    let service_id = match active_plaintext(tx, key, "agent-bridge.serviceId")? {
        Some(v) => Some(v),
        None => {
            let mut per_agent = Vec::new();
            for p in bridged {
                let inline = p.bridge_config.as_ref().and_then(|b| b.service_id.clone());
                per_agent.push(match inline {
                    Some(v) => Some(v),
                    None => first_active(
                        tx,
                        key,
                        &candidates(None, "agent-bridge.serviceId", &p.agent_key),
                    )?
                    .map(|(v, _)| v),
                });
            }
            unambiguous(per_agent)
        }
    };
    let service_key = match active_plaintext(tx, key, "agent-bridge.serviceKey")? {
        Some(v) => Some(v),
        None => {
            let mut per_agent = Vec::new();
            for p in bridged {
                let preferred = p
                    .bridge_config
                    .as_ref()
                    .and_then(|b| b.service_key_secret_ref.as_deref());
                let refs = candidates(preferred, "agent-bridge.serviceKey", &p.agent_key);
                per_agent.push(first_active(tx, key, &refs)?.map(|(v, _)| v));
            }
            unambiguous(per_agent)
        }
    };
    let linking = active_plaintext(tx, key, "agent-bridge.linkingSharedSecret")?;
    for (name, value) in [
        (SERVICE_ID, service_id),
        (SERVICE_KEY, service_key),
        (LINKING_SECRET, linking),
    ] {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            env.insert(name.to_string(), v);
        }
    }
    Ok(env)
}

/// The `OPENCLAW_*` bridge values to forward to every spawned worker (only the resolvable ones).
pub fn forwarded_openclaw_env(f: &Factory) -> Result<BTreeMap<String, String>> {
    let agents = f.list_agents(Some(true))?;
    let bridged: Vec<&AgentProfile> = agents
        .iter()
        .filter(|p| p.bridge_config.as_ref().is_some_and(|b| b.enabled))
        .collect();
    f.store.read(|tx| forwarded_in(tx, &f.key, &bridged))
}

/// What a spawned worker is told about itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerEnv<'a> {
    /// Worker id.
    pub worker_id: &'a str,
    /// Workspace of its snapshots.
    pub workspace_id: &'a str,
    /// Idle timeout of the policy.
    pub idle_timeout_ms: i64,
    /// Pre-assigned agent.
    pub agent_key: Option<&'a str>,
    /// Pre-assigned conversation.
    pub conversation_id: Option<&'a str>,
}

/// The machine environment of one spawned worker (blank values dropped).
pub fn spawn_env(
    extra: &BTreeMap<String, String>,
    forwarded: &BTreeMap<String, String>,
    w: &WorkerEnv<'_>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = extra.clone();
    env.extend(forwarded.iter().map(|(k, v)| (k.clone(), v.clone())));
    let own = [
        ("WORKSPACE_ID", Some(w.workspace_id.to_string())),
        ("WORKER_ID", Some(w.worker_id.to_string())),
        (
            "WORKER_IDLE_TIMEOUT_MS",
            Some(w.idle_timeout_ms.to_string()),
        ),
        ("OPENCLAW_AGENT_KEY", w.agent_key.map(str::to_string)),
        (
            "OPENCLAW_CONVERSATION_ID",
            w.conversation_id.map(str::to_string),
        ),
    ];
    for (k, v) in own {
        match v {
            Some(v) => env.insert(k.to_string(), v),
            None => env.remove(k),
        };
    }
    env.retain(|_, v| !v.trim().is_empty());
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_are_dropped_and_worker_keys_win() {
        let extra: BTreeMap<String, String> = [
            ("CONVEX_URL".to_string(), "".to_string()),
            ("WORKER_ID".to_string(), "spoof".to_string()),
            ("OPENCLAW_CONVERSATION_ID".to_string(), "spoof".to_string()),
            ("NODE_ENV".to_string(), "production".to_string()),
        ]
        .into();
        let forwarded: BTreeMap<String, String> =
            [(SERVICE_ID.to_string(), "openclaw-prod".to_string())].into();
        let env = spawn_env(
            &extra,
            &forwarded,
            &WorkerEnv {
                worker_id: "afw-1-0",
                workspace_id: "default",
                idle_timeout_ms: 300_000,
                agent_key: Some("support-agent"),
                conversation_id: None,
            },
        );
        assert_eq!(env.get("WORKER_ID").map(String::as_str), Some("afw-1-0"));
        assert_eq!(
            env.get("WORKER_IDLE_TIMEOUT_MS").map(String::as_str),
            Some("300000")
        );
        assert_eq!(
            env.get(SERVICE_ID).map(String::as_str),
            Some("openclaw-prod")
        );
        assert!(!env.contains_key("CONVEX_URL"));
        assert!(!env.contains_key("OPENCLAW_CONVERSATION_ID"));
        assert_eq!(env.get("NODE_ENV").map(String::as_str), Some("production"));
    }

    #[test]
    fn only_one_distinct_value_is_unambiguous() {
        assert_eq!(
            unambiguous([Some("a".into()), None, Some("a".into())]),
            Some("a".into())
        );
        assert_eq!(unambiguous([Some("a".into()), Some("b".into())]), None);
        assert_eq!(unambiguous([None, Some(" ".into())]), None);
    }
}
