//! Webhooks: set-up with a random secret token, status, removal, and the
//! authenticated ingress (`handle_webhook`).
//!
//! Invariants:
//! - the secret token is 48 characters of `A-Za-z0-9_-` from the OS CSPRNG
//!   (288 bits), generated afresh by every `configure_webhook`, stored only as
//!   an encrypted secret (`telegram.webhookSecret.<agentKey>`); the derivable
//!   `af_v1_<botId>` tokens of the original are never accepted;
//! - `handle_webhook` compares the presented token with the stored one in
//!   constant time *before* looking at the body; a missing or wrong token is an
//!   `Unauthorized` error and nothing is written;
//! - `webhook_verified_at` is set only when `getWebhookInfo` reports exactly the
//!   configured URL, and cleared when a later status check sees another URL;
//! - `configure_webhook` checks the bot identity is not another agent's before it
//!   calls `setWebhook`, and re-checks it in the transaction that persists the
//!   state (if that transaction fails, Telegram holds a secret nobody knows and
//!   rejected updates are re-delivered after the next successful configure).

use rand::Rng;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::bot_api::{BotApi, WebhookInfo};
use super::bots::record_bot_in;
use super::ingest::IngestOutcome;
use super::settings::api_config_in;
use super::{agent_with_bot, bot_taken, resolve_token, token_ref_for_display, webhook_secret_ref};
use crate::agents::{get_in, validate_agent_key, AgentProfile};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::secrets::{active_plaintext, import_in};
use crate::store::Tx;

/// The default webhook path (the original's hard-coded one).
pub const DEFAULT_WEBHOOK_PATH: &str = "/agent-factory/telegram/webhook";
/// Length of a generated secret token.
pub const SECRET_TOKEN_LEN: usize = 48;
/// Update kinds requested from Telegram.
const ALLOWED_UPDATES: &[&str] = &["message", "edited_message"];
/// What every rejected webhook request is told.
pub const REJECTED: &str = "missing or invalid telegram webhook secret token";

/// The result of `configure_webhook`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookSetup {
    /// The agent.
    pub agent_key: String,
    /// The URL given to `setWebhook`.
    pub webhook_url: String,
    /// The URL `getWebhookInfo` reported (`None` when empty).
    pub current_url: Option<String>,
    /// The bot (`getMe` id).
    pub bot_identity: String,
    /// The bot's username.
    pub bot_username: Option<String>,
    /// Always true: a fresh random secret token was set and stored.
    pub secret_token_configured: bool,
    /// Whether Telegram reports exactly `webhook_url`.
    pub is_ready: bool,
    /// Updates waiting for delivery.
    pub pending_update_count: i64,
    /// Telegram's last delivery error.
    pub last_error_message: Option<String>,
    /// When it happened (unix seconds).
    pub last_error_date: Option<i64>,
    /// One sentence for a person.
    pub description: String,
}

/// The result of `webhook_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookStatus {
    /// The agent.
    pub agent_key: String,
    /// The agent's bot, if known.
    pub bot_identity: Option<String>,
    /// Where the bot token was found (`None`: no token).
    pub secret_ref: Option<String>,
    /// The URL set by the last `configure_webhook`.
    pub expected_url: Option<String>,
    /// The URL Telegram reports (`None` when empty or not asked).
    pub current_url: Option<String>,
    /// Updates waiting for delivery.
    pub pending_update_count: i64,
    /// Telegram's last delivery error.
    pub last_error_message: Option<String>,
    /// When it happened (unix seconds).
    pub last_error_date: Option<i64>,
    /// Whether a webhook secret token is stored.
    pub secret_configured: bool,
    /// Telegram reports the configured URL and the secret is stored.
    pub webhook_ready: bool,
}

/// A fresh secret token from the OS CSPRNG.
pub fn generate_secret_token() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rngs::OsRng;
    (0..SECRET_TOKEN_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The bot identity a token of the original's derivable scheme names
/// (`af_v1_<botId>`, legacy `af:v1:<botId>`), else `None`. Such tokens are
/// recognised only to explain their rejection.
pub fn legacy_token_bot_identity(value: &str) -> Option<&str> {
    let v = value.trim();
    let id = v
        .strip_prefix("af_v1_")
        .or_else(|| v.strip_prefix("af:v1:"))?
        .trim();
    (!id.is_empty()).then_some(id)
}

/// Check `presented` against the agent's stored webhook secret, in constant time.
pub(crate) fn verify_secret_in(
    tx: &Tx,
    key: &crate::secrets::crypto::MasterKey,
    agent_key: &str,
    presented: Option<&str>,
) -> Result<()> {
    let Some(stored) = active_plaintext(tx, key, &webhook_secret_ref(agent_key))? else {
        return Err(Error::unauthorized(format!(
            "{REJECTED}: no webhook secret is configured for agent '{agent_key}' (run configure_webhook)"
        )));
    };
    let presented = presented.unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(stored.as_bytes())) {
        return Ok(());
    }
    if legacy_token_bot_identity(presented).is_some() {
        return Err(Error::unauthorized(format!(
            "{REJECTED} (derivable 'af_v1_<botId>' tokens are not accepted; run configure_webhook)"
        )));
    }
    Err(Error::unauthorized(REJECTED))
}

/// `public_base_url` + `path`, checked: https only, no query or fragment.
pub fn webhook_url(public_base_url: &str, path: &str) -> Result<String> {
    let base = public_base_url.trim();
    if base.is_empty() {
        return Err(Error::validation("publicBaseUrl is required."));
    }
    if !base
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    {
        return Err(Error::validation("publicBaseUrl must start with https://"));
    }
    let base = base.trim_end_matches('/');
    let parsed = reqwest::Url::parse(base).map_err(|e| {
        Error::validation(format!("publicBaseUrl {base:?} is not a valid URL: {e}"))
    })?;
    if parsed.query().is_some() || parsed.fragment().is_some() || parsed.host_str().is_none() {
        return Err(Error::validation(format!(
            "publicBaseUrl {base:?} must have a host and no query or fragment"
        )));
    }
    let path_ok = path.starts_with('/')
        && path.len() <= 512
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'%' | b'\\'));
    if !path_ok {
        return Err(Error::validation(format!(
            "path {path:?} must start with '/' and be at most 512 printable characters without ? # % or \\"
        )));
    }
    let url = format!("{base}{path}");
    if url.len() > 2048 {
        return Err(Error::validation(
            "the webhook URL is longer than 2048 characters",
        ));
    }
    Ok(url)
}

/// What a status check or set-up reads before talking to Telegram.
struct Prepared {
    profile: AgentProfile,
    token: Option<(String, String)>,
    display_ref: String,
    config: super::settings::TelegramApiConfig,
    expected_url: Option<String>,
    secret_configured: bool,
}

fn prepare(f: &Factory, tx: &Tx, agent_key: &str) -> Result<Prepared> {
    let profile = get_in(tx, agent_key)?
        .ok_or_else(|| Error::not_found(format!("Agent profile '{agent_key}' not found")))?;
    let token = resolve_token(tx, &f.key, &profile)?;
    let (display_ref, _) = token_ref_for_display(tx, &profile)?;
    let expected_url: Option<String> = tx
        .prepare_cached("SELECT webhook_url FROM telegram_agents WHERE agent_key = ?1")?
        .query_row([agent_key], |r| r.get(0))
        .optional()?
        .flatten();
    let secret_configured = tx
        .prepare_cached("SELECT 1 FROM secrets WHERE secret_ref = ?1 AND active = 1")?
        .exists([webhook_secret_ref(agent_key)])?;
    Ok(Prepared {
        profile,
        token,
        display_ref,
        config: api_config_in(tx)?,
        expected_url,
        secret_configured,
    })
}

fn non_empty(url: &str) -> Option<String> {
    (!url.is_empty()).then(|| url.to_string())
}

/// Persist what `getWebhookInfo` said; `verified` sets or clears the verification.
fn record_info_in(
    tx: &Tx,
    agent_key: &str,
    info: &WebhookInfo,
    verified: bool,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE telegram_agents SET webhook_checked_at = ?2, pending_update_count = ?3, last_error_message = ?4,
           last_error_date = ?5, webhook_verified_at = CASE WHEN ?6 THEN coalesce(webhook_verified_at, ?2) END,
           updated_at = ?2
         WHERE agent_key = ?1",
    )?
    .execute(params![
        agent_key,
        now,
        info.pending_update_count,
        info.last_error_message,
        info.last_error_date,
        verified
    ])?;
    Ok(())
}

impl Factory {
    /// Authenticate a webhook request and ingest its update (see the module invariants).
    pub fn handle_telegram_webhook(
        &self,
        body: &[u8],
        secret_token: Option<&str>,
        agent_key: &str,
        now_ms: Option<i64>,
    ) -> Result<IngestOutcome> {
        validate_agent_key(agent_key)?;
        self.now(now_ms)?;
        self.store
            .read(|tx| verify_secret_in(tx, &self.key, agent_key, secret_token))?;
        let update = super::update::parse_body(body)?;
        self.ingest_telegram_update(&update, Some(agent_key), None, now_ms)
    }

    /// Point the agent's bot at `public_base_url + path` with a fresh random secret token.
    pub fn configure_telegram_webhook(
        &self,
        agent_key: &str,
        public_base_url: &str,
        path: &str,
        now_ms: Option<i64>,
    ) -> Result<WebhookSetup> {
        validate_agent_key(agent_key)?;
        let url = webhook_url(public_base_url, path)?;
        self.now(now_ms)?;
        let p = self.store.read(|tx| prepare(self, tx, agent_key))?;
        let Some((token, token_ref)) = p.token else {
            return Err(Error::invalid_state(format!(
                "Missing Telegram token. Import an active '{}' secret before pairing.",
                p.display_ref
            )));
        };
        let api = BotApi::new(&p.config, &token)?;
        let me = api.get_me()?;
        let bot = me.id.to_string();
        if let Some(other) = self
            .store
            .read(|tx| agent_with_bot(tx, &bot, Some(agent_key)))?
        {
            return Err(bot_taken(&bot, &other));
        }
        let secret = generate_secret_token();
        api.set_webhook(&url, &secret, ALLOWED_UPDATES)?;
        let info = api.get_webhook_info()?;
        let ready = info.url == url;
        let now = self.now(now_ms)?;
        let secret_ref = webhook_secret_ref(agent_key);
        self.store.write(|tx| {
            record_bot_in(tx, &p.profile.agent_key, &me, &token_ref, now)?;
            let mut meta = Map::new();
            meta.insert("telegramBotId".into(), Value::String(bot.clone()));
            meta.insert("webhookUrl".into(), Value::String(url.clone()));
            import_in(tx, &self.key, &secret_ref, &secret, Some(&meta), now)?;
            tx.prepare_cached(
                "UPDATE telegram_agents SET webhook_url = ?2, webhook_secret_ref = ?3, webhook_configured_at = ?4,
                   webhook_verified_at = NULL, updated_at = ?4 WHERE agent_key = ?1",
            )?
            .execute(params![agent_key, url, secret_ref, now])?;
            record_info_in(tx, agent_key, &info, ready, now)
        })?;
        let description = if ready {
            "Telegram webhook configured and verified.".to_string()
        } else {
            format!(
                "Telegram webhook configured, but getWebhookInfo reports url {:?} instead of {url:?}.",
                info.url
            )
        };
        Ok(WebhookSetup {
            agent_key: agent_key.to_string(),
            webhook_url: url,
            current_url: non_empty(&info.url),
            bot_identity: bot,
            bot_username: me.username.clone(),
            secret_token_configured: true,
            is_ready: ready,
            pending_update_count: info.pending_update_count,
            last_error_message: info.last_error_message.clone(),
            last_error_date: info.last_error_date,
            description,
        })
    }

    /// Ask Telegram about the agent's webhook and record the answer (a URL other
    /// than the configured one clears the verification). Without a bot token
    /// nothing is asked and the webhook is reported not ready.
    pub fn telegram_webhook_status(
        &self,
        agent_key: &str,
        now_ms: Option<i64>,
    ) -> Result<WebhookStatus> {
        validate_agent_key(agent_key)?;
        self.now(now_ms)?;
        let p = self.store.read(|tx| prepare(self, tx, agent_key))?;
        let mut status = WebhookStatus {
            agent_key: agent_key.to_string(),
            bot_identity: p.profile.bot_identity.clone(),
            secret_ref: p.token.as_ref().map(|(_, r)| r.clone()),
            expected_url: p.expected_url.clone(),
            current_url: None,
            pending_update_count: 0,
            last_error_message: None,
            last_error_date: None,
            secret_configured: p.secret_configured,
            webhook_ready: false,
        };
        let Some((token, _)) = p.token else {
            return Ok(status);
        };
        let info = BotApi::new(&p.config, &token)?.get_webhook_info()?;
        let ready = p.secret_configured && p.expected_url.as_deref() == Some(info.url.as_str());
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| record_info_in(tx, agent_key, &info, ready, now))?;
        status.current_url = non_empty(&info.url);
        status.pending_update_count = info.pending_update_count;
        status.last_error_message = info.last_error_message;
        status.last_error_date = info.last_error_date;
        status.webhook_ready = ready;
        Ok(status)
    }

    /// Remove the agent's webhook at Telegram (`deleteWebhook`) and forget its
    /// URL and verification; returns the status afterwards.
    pub fn delete_telegram_webhook(
        &self,
        agent_key: &str,
        drop_pending_updates: bool,
        now_ms: Option<i64>,
    ) -> Result<WebhookStatus> {
        validate_agent_key(agent_key)?;
        self.now(now_ms)?;
        let p = self.store.read(|tx| prepare(self, tx, agent_key))?;
        let Some((token, token_ref)) = p.token else {
            return Err(Error::invalid_state(format!(
                "Missing Telegram token. Import an active '{}' secret first.",
                p.display_ref
            )));
        };
        BotApi::new(&p.config, &token)?.delete_webhook(drop_pending_updates)?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            tx.prepare_cached(
                "UPDATE telegram_agents SET webhook_url = NULL, webhook_configured_at = NULL,
                   webhook_verified_at = NULL, webhook_checked_at = ?2, updated_at = ?2 WHERE agent_key = ?1",
            )?
            .execute(params![agent_key, now])?;
            Ok(())
        })?;
        Ok(WebhookStatus {
            agent_key: agent_key.to_string(),
            bot_identity: p.profile.bot_identity,
            secret_ref: Some(token_ref),
            expected_url: None,
            current_url: None,
            pending_update_count: 0,
            last_error_message: None,
            last_error_date: None,
            secret_configured: p.secret_configured,
            webhook_ready: false,
        })
    }
}
