//! Which provider a pool call drives, and `fly_cleanup` through the factory.
//!
//! Resolution: the caller's [`ProviderChoice`] names the kind (or leaves it to
//! the stored provider config; with nothing stored, the local provider, the
//! embedded default). Fly settings left `None` come from the stored config, so
//! `FlyProvider(base_url=...)` reuses the stored app, image and region; the API
//! token is the caller's or the active `fly.apiToken` secret.
//!
//! Invariants: tokens never appear in `Debug` output or error messages; a
//! local pool needs a database file (its workers are separate processes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{PoolSettings, PoolTarget};
use crate::agents::PROVIDER_TOKEN_REF;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::providers::{
    fly_cleanup, CleanupOptions, CleanupReport, FlyConfig, FlyMachines, Guest, LocalProvider,
    LocalProviderConfig, RetryPolicy, DEFAULT_FLY_BASE_URL,
};
use crate::secrets::active_plaintext;
use crate::settings::ProviderConfig;

/// Longest timeout accepted for provider calls (one hour).
const MAX_MS: i64 = 3_600_000;

/// Fly settings of a pool call; `None` fields come from the stored provider config.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlyOptions {
    /// Fly app.
    pub app_name: Option<String>,
    /// Fly organization.
    pub organization_slug: Option<String>,
    /// Worker image.
    pub image: Option<String>,
    /// Region of machines and volumes.
    pub region: Option<String>,
    /// Prefix of dedicated volume names.
    pub volume_name: Option<String>,
    /// Mount path of the volume in the machine.
    pub volume_path: Option<String>,
    /// Volume size.
    pub volume_size_gb: Option<i64>,
    /// API token (else the active `fly.apiToken` secret).
    pub api_token: Option<String>,
    /// Machines API base URL (tests point it at a fake).
    pub base_url: Option<String>,
    /// Per-request timeout.
    pub timeout_ms: Option<i64>,
    /// Retries after the first attempt.
    pub max_retries: Option<i64>,
    /// First backoff.
    pub backoff_ms: Option<i64>,
    /// Longest backoff.
    pub max_backoff_ms: Option<i64>,
    /// Machine size.
    pub guest: Option<Guest>,
    /// Extra environment for every machine.
    pub env: BTreeMap<String, String>,
    /// `User-Agent` of the API calls (default `agent-factory/<version>`).
    pub user_agent: Option<String>,
}

impl std::fmt::Debug for FlyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyOptions")
            .field("app_name", &self.app_name)
            .field("image", &self.image)
            .field("region", &self.region)
            .field("api_token", &self.api_token.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// Local settings of a pool call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalOptions {
    /// Worker argv (required for the local provider).
    pub command: Vec<String>,
    /// Data root (default `<db>.workers`).
    pub data_root: Option<String>,
    /// Handler `module:function` passed as `AGENT_FACTORY_HANDLER`.
    pub handler: Option<String>,
    /// Extra environment for every worker.
    pub env: BTreeMap<String, String>,
    /// Working directory of the workers.
    pub cwd: Option<String>,
    /// SIGTERM → SIGKILL grace when stopping a worker.
    pub stop_grace_ms: Option<i64>,
    /// Prefix of dedicated volume names.
    pub volume_name: Option<String>,
}

/// The provider a pool call drives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderChoice {
    /// `fly`, `local`, or `None` for the stored config's kind.
    pub kind: Option<String>,
    /// Fly settings.
    pub fly: FlyOptions,
    /// Local settings.
    pub local: LocalOptions,
}

fn millis(field: &str, value: Option<i64>, default: i64, min: i64) -> Result<Duration> {
    let v = value.unwrap_or(default);
    if !(min..=MAX_MS).contains(&v) {
        return Err(Error::validation(format!(
            "{field} must be between {min} and {MAX_MS}, got {v}"
        )));
    }
    Ok(Duration::from_millis(v.unsigned_abs()))
}

fn missing(field: &str) -> Error {
    Error::validation(format!(
        "Missing providerConfig.{field}. Pass providerConfig explicitly when starting/reconciling workers."
    ))
}

/// The stored config with the caller's Fly overrides.
fn fly_config(base: Option<ProviderConfig>, o: &FlyOptions) -> ProviderConfig {
    let base = base.unwrap_or_else(|| ProviderConfig {
        kind: "fly".into(),
        app_name: String::new(),
        organization_slug: String::new(),
        image: String::new(),
        region: String::new(),
        volume_name: String::new(),
        volume_path: "/data".into(),
        volume_size_gb: 10,
    });
    let pick = |v: &Option<String>, old: String| v.clone().unwrap_or(old).trim().to_string();
    ProviderConfig {
        kind: "fly".into(),
        app_name: pick(&o.app_name, base.app_name),
        organization_slug: pick(&o.organization_slug, base.organization_slug),
        image: pick(&o.image, base.image),
        region: pick(&o.region, base.region),
        volume_name: pick(&o.volume_name, base.volume_name),
        volume_path: pick(&o.volume_path, base.volume_path),
        volume_size_gb: o.volume_size_gb.unwrap_or(base.volume_size_gb),
    }
}

impl Factory {
    fn fly_token(&self, explicit: &Option<String>) -> Result<Option<String>> {
        if let Some(t) = explicit.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            return Ok(Some(t.to_string()));
        }
        let stored = self
            .store
            .read(|tx| active_plaintext(tx, &self.key, PROVIDER_TOKEN_REF))?;
        Ok(stored
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()))
    }

    fn fly_client(&self, app: &str, token: String, o: &FlyOptions) -> Result<FlyMachines> {
        let retries = o.max_retries.unwrap_or(3);
        if !(0..=10).contains(&retries) {
            return Err(Error::validation(format!(
                "fly.max_retries must be between 0 and 10, got {retries}"
            )));
        }
        let config = FlyConfig {
            app_name: app.to_string(),
            api_token: token,
            base_url: o
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_FLY_BASE_URL.to_string()),
            timeout: millis("fly.timeout_ms", o.timeout_ms, 30_000, 1)?,
            retry: RetryPolicy {
                max_retries: retries as u32,
                base_delay: millis("fly.backoff_ms", o.backoff_ms, 250, 0)?,
                max_delay: millis("fly.max_backoff_ms", o.max_backoff_ms, 10_000, 0)?,
                ..RetryPolicy::default()
            },
            user_agent: o.user_agent.clone(),
        };
        FlyMachines::new(config).map_err(Error::from)
    }

    /// Resolve the provider and spawn settings of a pool call.
    pub fn pool_target(&self, choice: &ProviderChoice) -> Result<PoolTarget> {
        let stored = self.provider_config()?;
        let kind = choice
            .kind
            .clone()
            .or_else(|| stored.as_ref().map(|c| c.kind.clone()))
            .unwrap_or_else(|| "local".into());
        match kind.as_str() {
            "fly" => {
                let config = fly_config(stored, &choice.fly);
                if config.app_name.is_empty() {
                    return Err(missing("appName"));
                }
                let token = self.fly_token(&choice.fly.api_token)?.ok_or_else(|| {
                    Error::not_found(
                        "Missing Fly API token. Import an active 'fly.apiToken' secret or pass api_token explicitly.",
                    )
                })?;
                let provider = self.fly_client(&config.app_name, token, &choice.fly)?;
                let settings = PoolSettings {
                    guest: choice.fly.guest.clone().unwrap_or_default(),
                    env: choice.fly.env.clone(),
                    ..PoolSettings::from_provider_config(&config)
                };
                Ok(PoolTarget {
                    provider: Arc::new(provider),
                    settings,
                })
            }
            "local" => {
                let o = &choice.local;
                let db = self.store.path().ok_or_else(|| {
                    Error::validation(
                        "the local provider runs workers as separate processes, which need a database file; open the factory on a path, not \":memory:\"",
                    )
                })?;
                if o.command.is_empty() {
                    return Err(Error::validation(
                        "local.command is required: the worker argv, e.g. [python, -m, agent_factory, worker]",
                    ));
                }
                let data_root = o
                    .data_root
                    .as_ref()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| LocalProviderConfig::default_data_root(db));
                let config = LocalProviderConfig {
                    command: o.command.clone(),
                    data_root,
                    db_path: Some(db.to_path_buf()),
                    handler: o.handler.clone().filter(|h| !h.trim().is_empty()),
                    env: o.env.clone(),
                    cwd: o.cwd.as_ref().map(PathBuf::from),
                    stop_grace: millis("local.stop_grace_ms", o.stop_grace_ms, 10_000, 0)?,
                };
                let provider = LocalProvider::new(config)?;
                let prefix = o
                    .volume_name
                    .clone()
                    .or_else(|| stored.map(|c| c.volume_name))
                    .unwrap_or_default();
                Ok(PoolTarget {
                    provider: Arc::new(provider),
                    settings: PoolSettings::local(prefix),
                })
            }
            other => Err(Error::validation(format!("Unsupported provider '{other}'"))),
        }
    }

    /// Destroy every machine and volume of the Fly app and verify (spec §3.7).
    pub fn fly_cleanup(
        &self,
        choice: &ProviderChoice,
        options: &CleanupOptions,
    ) -> Result<CleanupReport> {
        let stored = self.provider_config()?;
        let kind = choice
            .kind
            .clone()
            .or_else(|| stored.as_ref().map(|c| c.kind.clone()))
            .unwrap_or_else(|| "fly".into());
        if kind != "fly" {
            return Err(Error::invalid_state(
                "Fly cleanup requires a Fly provider configuration.",
            ));
        }
        let config = fly_config(stored, &choice.fly);
        if config.app_name.is_empty() {
            return Err(Error::validation(
                "Fly cleanup requires a non-empty Fly app name.",
            ));
        }
        let token = self.fly_token(&choice.fly.api_token)?.ok_or_else(|| {
            Error::not_found(
                "Missing active 'fly.apiToken' secret. Import it before running Fly cleanup.",
            )
        })?;
        let provider = self.fly_client(&config.app_name, token, &choice.fly)?;
        fly_cleanup(&provider, options).map_err(Error::from)
    }
}
