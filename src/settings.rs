//! Runtime settings stored in the database: message config and provider config.
//!
//! Invariants: the message config row exists only when it holds something (a
//! blank system prompt clears it, as the seed does); stored values are already
//! normalised, so readers never re-validate.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::store::Tx;

/// The runtime-config key of the message config.
pub(crate) const MESSAGE_KEY: &str = "message";
const PROVIDER_KEY: &str = "provider";

/// Default retention of Telegram attachments (7 days).
pub const DEFAULT_ATTACHMENT_RETENTION_MS: i64 = 604_800_000;
/// Longest accepted global system prompt.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 32_768;

/// Message handling settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageConfig {
    /// Appended to every enqueued message text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// How long downloaded Telegram attachments are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram_attachment_retention_ms: Option<i64>,
}

/// Where workers run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `local` or `fly`.
    pub kind: String,
    /// Fly app name.
    #[serde(default)]
    pub app_name: String,
    /// Fly organization slug.
    #[serde(default)]
    pub organization_slug: String,
    /// Worker image.
    #[serde(default)]
    pub image: String,
    /// Fly region.
    #[serde(default)]
    pub region: String,
    /// Volume name prefix.
    #[serde(default)]
    pub volume_name: String,
    /// Where the volume is mounted in the worker.
    #[serde(default = "default_volume_path")]
    pub volume_path: String,
    /// Volume size.
    #[serde(default = "default_volume_size")]
    pub volume_size_gb: i64,
}

fn default_volume_path() -> String {
    "/data".into()
}
fn default_volume_size() -> i64 {
    10
}

impl ProviderConfig {
    /// Check the kind and sizes.
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.kind.as_str(), "local" | "fly") {
            return Err(Error::validation(format!(
                "providerConfig.kind must be 'local' or 'fly', got {:?}",
                self.kind
            )));
        }
        if self.volume_size_gb <= 0 {
            return Err(Error::validation(format!(
                "providerConfig.volumeSizeGb must be positive, got {}",
                self.volume_size_gb
            )));
        }
        Ok(())
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(tx: &Tx, key: &str) -> Result<Option<T>> {
    let text: Option<String> = tx
        .prepare_cached("SELECT value FROM runtime_config WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    parse_json(text.as_deref())
}

fn parse_json<T: for<'de> Deserialize<'de>>(text: Option<&str>) -> Result<Option<T>> {
    text.map(|t| serde_json::from_str(t).map_err(Error::from))
        .transpose()
}

/// Parse a raw message-config row read by a caller's own query.
pub(crate) fn parse_message_config(text: Option<&str>) -> Result<Option<MessageConfig>> {
    parse_json(text)
}

fn write_json<T: Serialize>(tx: &Tx, key: &str, value: &T, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO runtime_config(key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, serde_json::to_string(value)?, now],
    )?;
    Ok(())
}

/// The stored message config (inside a transaction).
pub(crate) fn message_config_in(tx: &Tx) -> Result<Option<MessageConfig>> {
    read_json(tx, MESSAGE_KEY)
}

/// The stored provider config (inside a transaction).
pub(crate) fn provider_config_in(tx: &Tx) -> Result<Option<ProviderConfig>> {
    read_json(tx, PROVIDER_KEY)
}

impl Factory {
    /// The message config, or `None` when nothing is set.
    pub fn message_config(&self) -> Result<Option<MessageConfig>> {
        self.store.read(message_config_in)
    }

    /// Replace the message config. A blank prompt is dropped; when nothing is left the row is removed.
    pub fn set_message_config(
        &self,
        config: MessageConfig,
        now_ms: Option<i64>,
    ) -> Result<Option<MessageConfig>> {
        if let Some(p) = &config.system_prompt {
            crate::validate::optional_text("systemPrompt", p, MAX_SYSTEM_PROMPT_CHARS)?;
        }
        if let Some(ms) = config.telegram_attachment_retention_ms {
            if ms <= 0 {
                return Err(Error::validation(format!(
                    "telegramAttachmentRetentionMs must be positive, got {ms}"
                )));
            }
        }
        let normalised = MessageConfig {
            system_prompt: config
                .system_prompt
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty()),
            telegram_attachment_retention_ms: config.telegram_attachment_retention_ms,
        };
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            if normalised == MessageConfig::default() {
                tx.execute("DELETE FROM runtime_config WHERE key = ?1", [MESSAGE_KEY])?;
                Ok(None)
            } else {
                write_json(tx, MESSAGE_KEY, &normalised, now)?;
                Ok(Some(normalised.clone()))
            }
        })
    }

    /// The provider config, if set.
    pub fn provider_config(&self) -> Result<Option<ProviderConfig>> {
        self.store.read(provider_config_in)
    }

    /// Store the provider config.
    pub fn set_provider_config(&self, config: ProviderConfig, now_ms: Option<i64>) -> Result<()> {
        config.validate()?;
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| write_json(tx, PROVIDER_KEY, &config, now))
    }
}
