//! Bot API client settings, stored in `runtime_config` under the key `telegram`
//! so every process on the database (webhook servers, the control loop) talks
//! to the same API.
//!
//! Invariants: a stored value is always valid (it is validated before it is
//! written); a missing row means the defaults (`https://api.telegram.org`).

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::store::Tx;

/// The `runtime_config` key of these settings.
const KEY: &str = "telegram";

/// The public Bot API.
pub const DEFAULT_BASE_URL: &str = "https://api.telegram.org";
/// Largest file the public Bot API lets a bot download (20 MiB).
pub const DEFAULT_MAX_FILE_BYTES: i64 = 20 * 1024 * 1024;
/// Largest cap accepted (a local Bot API server serves files up to 2000 MB).
const MAX_FILE_BYTES_LIMIT: i64 = 2_000 * 1024 * 1024;

/// How agent-factory talks to the Bot API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramApiConfig {
    /// Base URL without a trailing slash (tests point it at a loopback fake).
    pub base_url: String,
    /// Whole-request timeout of one attempt, in ms.
    pub timeout_ms: i64,
    /// Retries after the first attempt (429, 5xx, timeouts, connection errors).
    pub max_retries: u32,
    /// First backoff wait, in ms (doubling, with jitter).
    pub backoff_ms: i64,
    /// Longest computed backoff wait, in ms.
    pub max_backoff_ms: i64,
    /// Longest `retry_after` honoured; a 429 asking for longer fails the call at once.
    pub max_retry_after_ms: i64,
    /// Largest file downloaded from Telegram; larger attachments are skipped.
    pub max_file_bytes: i64,
}

impl Default for TelegramApiConfig {
    fn default() -> Self {
        TelegramApiConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            timeout_ms: 30_000,
            max_retries: 3,
            backoff_ms: 500,
            max_backoff_ms: 10_000,
            max_retry_after_ms: 30_000,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

fn positive(field: &str, v: i64, max: i64) -> Result<()> {
    if (1..=max).contains(&v) {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{field} must be within 1..={max}, got {v}"
        )))
    }
}

impl TelegramApiConfig {
    /// Check every field; the base URL loses a trailing `/`.
    pub fn normalised(mut self) -> Result<Self> {
        let base = self.base_url.trim().trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| Error::validation(format!("baseUrl {base:?} is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.query().is_some()
            || url.fragment().is_some()
            || url.host_str().is_none()
        {
            return Err(Error::validation(format!(
                "baseUrl {base:?} must be an http(s) URL with a host and without a query"
            )));
        }
        self.base_url = base;
        positive("timeoutMs", self.timeout_ms, 600_000)?;
        if self.max_retries > 10 {
            return Err(Error::validation(format!(
                "maxRetries must be within 0..=10, got {}",
                self.max_retries
            )));
        }
        positive("backoffMs", self.backoff_ms, 600_000)?;
        positive("maxBackoffMs", self.max_backoff_ms, 600_000)?;
        positive("maxRetryAfterMs", self.max_retry_after_ms, 3_600_000)?;
        positive("maxFileBytes", self.max_file_bytes, MAX_FILE_BYTES_LIMIT)?;
        Ok(self)
    }

    /// The retry policy of these settings.
    pub fn retry_policy(&self) -> crate::providers::http::RetryPolicy {
        use std::time::Duration;
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        crate::providers::http::RetryPolicy {
            max_retries: self.max_retries,
            base_delay: ms(self.backoff_ms),
            max_delay: ms(self.max_backoff_ms.max(self.backoff_ms)),
            retry_after_cap: ms(self.max_retry_after_ms),
        }
    }
}

/// A change to the stored settings: `None` keeps a field's current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramApiPatch {
    /// See [`TelegramApiConfig::base_url`].
    pub base_url: Option<String>,
    /// See [`TelegramApiConfig::timeout_ms`].
    pub timeout_ms: Option<i64>,
    /// See [`TelegramApiConfig::max_retries`].
    pub max_retries: Option<u32>,
    /// See [`TelegramApiConfig::backoff_ms`].
    pub backoff_ms: Option<i64>,
    /// See [`TelegramApiConfig::max_backoff_ms`].
    pub max_backoff_ms: Option<i64>,
    /// See [`TelegramApiConfig::max_retry_after_ms`].
    pub max_retry_after_ms: Option<i64>,
    /// See [`TelegramApiConfig::max_file_bytes`].
    pub max_file_bytes: Option<i64>,
}

impl TelegramApiPatch {
    /// `config` with this patch applied (not yet validated).
    pub fn apply(&self, mut config: TelegramApiConfig) -> TelegramApiConfig {
        if let Some(v) = &self.base_url {
            config.base_url = v.clone();
        }
        config.timeout_ms = self.timeout_ms.unwrap_or(config.timeout_ms);
        config.max_retries = self.max_retries.unwrap_or(config.max_retries);
        config.backoff_ms = self.backoff_ms.unwrap_or(config.backoff_ms);
        config.max_backoff_ms = self.max_backoff_ms.unwrap_or(config.max_backoff_ms);
        config.max_retry_after_ms = self.max_retry_after_ms.unwrap_or(config.max_retry_after_ms);
        config.max_file_bytes = self.max_file_bytes.unwrap_or(config.max_file_bytes);
        config
    }
}

/// The stored settings, or the defaults.
pub(crate) fn api_config_in(tx: &Tx) -> Result<TelegramApiConfig> {
    let text: Option<String> = tx
        .prepare_cached("SELECT value FROM runtime_config WHERE key = ?1")?
        .query_row([KEY], |r| r.get(0))
        .optional()?;
    match text {
        None => Ok(TelegramApiConfig::default()),
        Some(t) => Ok(serde_json::from_str(&t)?),
    }
}

impl Factory {
    /// The Bot API client settings (defaults when none are stored).
    pub fn telegram_api_config(&self) -> Result<TelegramApiConfig> {
        self.store.read(api_config_in)
    }

    /// Change the stored Bot API client settings (fields left `None` keep their
    /// value); the result is validated before it is written and returned.
    pub fn set_telegram_api_config(
        &self,
        patch: &TelegramApiPatch,
        now_ms: Option<i64>,
    ) -> Result<TelegramApiConfig> {
        patch.apply(TelegramApiConfig::default()).normalised()?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let config = patch.apply(api_config_in(tx)?).normalised()?;
            tx.execute(
                "INSERT INTO runtime_config(key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![KEY, serde_json::to_string(&config)?, now],
            )?;
            Ok(config)
        })
    }
}
