//! One-time Telegram pairing codes.
//!
//! Codes are [`PAIRING_CODE_LEN`] characters drawn uniformly by the operating
//! system's CSPRNG (`OsRng`) from [`PAIRING_CODE_ALPHABET`] (31 symbols: digits
//! and capitals without the look-alikes 0, 1, I, L, O), i.e. 12 · log2(31) ≈ 59.4
//! bits of entropy; a code also expires after at most 24 hours and works once.
//!
//! Invariants: a code moves `pending → used` or `pending → expired` exactly
//! once (the update is guarded by `status = 'pending'` inside the write
//! transaction, so two concurrent consumers cannot both win); a pending code
//! found past its expiry is persisted as `expired` even though the call that
//! found it reports an error ([`consume_pairing_in`] returns that error *after*
//! the write so the caller commits it); creating a code expires the user's
//! stale pending codes and every pending code of the same agent.

use rand::rngs::OsRng;
use rand::Rng;
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{bind_in, optional_id, required_id, validate_consumer_user_id, BindRequest};
use crate::agents::{check_enabled, validate_agent_key};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::store::Tx;

/// Symbols of a pairing code: digits and capitals minus 0, 1, I, L, O.
pub const PAIRING_CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Length of a pairing code (≈ 59.4 bits of entropy).
pub const PAIRING_CODE_LEN: usize = 12;
/// Default lifetime of a code.
pub const DEFAULT_PAIRING_TTL_MS: i64 = 900_000;
/// Shortest lifetime (shorter requests are raised to it).
pub const MIN_PAIRING_TTL_MS: i64 = 60_000;
/// Longest lifetime (longer requests are lowered to it).
pub const MAX_PAIRING_TTL_MS: i64 = 86_400_000;
/// Codes tried before giving up on uniqueness.
const UNIQUE_ATTEMPTS: usize = 5;

/// A pairing code (the seed's pairing view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairingCode {
    /// The code the user sends as `/start <code>`.
    pub code: String,
    /// User who asked for it.
    pub consumer_user_id: String,
    /// Agent it pairs with.
    pub agent_key: String,
    /// Bot that must receive it.
    pub bot_identity: Option<String>,
    /// `pending`, `used` or `expired` (a pending code past expiry reads as `expired`).
    pub status: String,
    /// Creation time.
    pub created_at: i64,
    /// End of validity.
    pub expires_at: i64,
    /// When it was consumed.
    pub used_at: Option<i64>,
    /// Telegram user that consumed it.
    pub telegram_user_id: Option<String>,
    /// Telegram chat that consumed it.
    pub telegram_chat_id: Option<String>,
}

impl PairingCode {
    /// This view as seen at `now`: a pending code past expiry reads as `expired`.
    pub(crate) fn at(mut self, now: i64) -> PairingCode {
        if self.status == "pending" && self.expires_at <= now {
            self.status = "expired".into();
        }
        self
    }
}

/// Columns read by [`pairing_from_row`], in order (the row key last).
pub(crate) const PAIRING_COLUMNS: &str =
    "code, consumer_user_id, agent_key, bot_identity, status, \
     created_at, expires_at, used_at, telegram_user_id, telegram_chat_id, id";

/// A stored pairing code row (columns of [`PAIRING_COLUMNS`]).
pub(crate) fn pairing_from_row(r: &Row<'_>) -> rusqlite::Result<PairingCode> {
    Ok(PairingCode {
        code: r.get(0)?,
        consumer_user_id: r.get(1)?,
        agent_key: r.get(2)?,
        bot_identity: r.get(3)?,
        status: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        used_at: r.get(7)?,
        telegram_user_id: r.get(8)?,
        telegram_chat_id: r.get(9)?,
    })
}

/// A fresh code from the OS CSPRNG.
pub fn new_pairing_code() -> String {
    (0..PAIRING_CODE_LEN)
        .map(|_| char::from(PAIRING_CODE_ALPHABET[OsRng.gen_range(0..PAIRING_CODE_ALPHABET.len())]))
        .collect()
}

/// A code as typed by a user: trimmed and upper-cased; 1-64 letters and digits.
pub fn normalize_code(code: &str) -> Result<String> {
    let c = code.trim();
    if c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::validation(format!(
            "code {code:?} must be 1-64 letters and digits"
        )));
    }
    Ok(c.to_ascii_uppercase())
}

/// The requested lifetime clamped to 1 minute ..= 24 hours (default 15 minutes).
pub fn pairing_ttl(ttl_ms: Option<i64>) -> Result<i64> {
    match ttl_ms {
        Some(t) if t <= 0 => Err(Error::validation(format!(
            "ttlMs must be a positive number of milliseconds, got {t}"
        ))),
        t => Ok(t
            .unwrap_or(DEFAULT_PAIRING_TTL_MS)
            .clamp(MIN_PAIRING_TTL_MS, MAX_PAIRING_TTL_MS)),
    }
}

/// Create a pending code inside `tx` (checks run before the first write).
pub(crate) fn create_pairing_in(
    tx: &Tx,
    user: &str,
    agent: &str,
    ttl_ms: Option<i64>,
    now: i64,
) -> Result<PairingCode> {
    validate_consumer_user_id(user)?;
    validate_agent_key(agent)?;
    let ttl = pairing_ttl(ttl_ms)?;
    let profile = crate::agents::get_in(tx, agent)?;
    check_enabled(agent, profile.as_ref().map(|p| p.enabled))?;
    let bot = profile
        .and_then(|p| p.bot_identity)
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            Error::invalid_state(format!(
                "Agent '{agent}' is missing botIdentity. Import and verify the Telegram token first."
            ))
        })?;
    let mut code = None;
    for _ in 0..UNIQUE_ATTEMPTS {
        let candidate = new_pairing_code();
        let taken = tx
            .prepare_cached("SELECT 1 FROM pairing_codes WHERE code = ?1")?
            .query_row([&candidate], |_| Ok(()))
            .optional()?
            .is_some();
        if !taken {
            code = Some(candidate);
            break;
        }
    }
    let code = code.ok_or_else(|| Error::conflict("Failed to generate unique pairing code"))?;
    tx.prepare_cached(
        "UPDATE pairing_codes SET status = 'expired'
         WHERE consumer_user_id = ?1 AND status = 'pending' AND (expires_at <= ?3 OR agent_key = ?2)",
    )?
    .execute(params![user, agent, now])?;
    tx.prepare_cached(
        "INSERT INTO pairing_codes(code, consumer_user_id, agent_key, bot_identity, status, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)",
    )?
    .execute(params![code, user, agent, bot, now, now + ttl])?;
    Ok(PairingCode {
        code,
        consumer_user_id: user.to_string(),
        agent_key: agent.to_string(),
        bot_identity: Some(bot),
        status: "pending".into(),
        created_at: now,
        expires_at: now + ttl,
        used_at: None,
        telegram_user_id: None,
        telegram_chat_id: None,
    })
}

/// A stored code by its normalized text, with its row key.
pub(crate) fn find_code(tx: &Tx, code: &str) -> Result<Option<(PairingCode, i64)>> {
    let sql = format!("SELECT {PAIRING_COLUMNS} FROM pairing_codes WHERE code = ?1");
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([code], |r| Ok((pairing_from_row(r)?, r.get(10)?)))
        .optional()?)
}

/// Consume a code inside `tx`. The outer `Err` is a storage failure (roll back);
/// the inner `Err` is the pairing error, returned after any "mark expired"
/// write so the caller commits that write and then reports the error. The
/// checks follow the seed's order: unknown code, not pending, expired, missing
/// bot identity, other bot.
pub(crate) fn consume_pairing_in(
    tx: &Tx,
    code: &str,
    bot_identity: Option<&str>,
    telegram_user_id: &str,
    telegram_chat_id: &str,
    now: i64,
) -> Result<std::result::Result<PairingCode, Error>> {
    let checked = (|| {
        Ok::<_, Error>((
            normalize_code(code)?,
            optional_id("botIdentity", bot_identity)?,
            required_id("telegramUserId", telegram_user_id)?,
            required_id("telegramChatId", telegram_chat_id)?,
        ))
    })();
    let (code, bot, tg_user, tg_chat) = match checked {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let Some((row, key)) = find_code(tx, &code)? else {
        return Ok(Err(Error::not_found("Pairing code not found")));
    };
    if row.status != "pending" {
        return Ok(Err(Error::invalid_state(
            "Pairing code already used or expired",
        )));
    }
    if row.expires_at <= now {
        tx.prepare_cached(
            "UPDATE pairing_codes SET status = 'expired' WHERE id = ?1 AND status = 'pending'",
        )?
        .execute([key])?;
        return Ok(Err(Error::invalid_state("Pairing code expired")));
    }
    let Some(bot) = bot else {
        return Ok(Err(Error::validation(
            "Missing bot identity for Telegram pairing",
        )));
    };
    if row.bot_identity.as_deref().is_some_and(|b| b != bot) {
        return Ok(Err(Error::validation(
            "Pairing code belongs to a different Telegram bot",
        )));
    }
    let req = BindRequest {
        consumer_user_id: row.consumer_user_id.clone(),
        agent_key: row.agent_key.clone(),
        bot_identity: Some(bot.clone()),
        source: "telegram_pairing".into(),
        telegram_user_id: Some(tg_user.clone()),
        telegram_chat_id: Some(tg_chat.clone()),
        metadata: None,
    };
    match bind_in(tx, &req, now) {
        Ok(_) => {}
        Err(e @ Error::Storage(_)) => return Err(e),
        // bind_in checks before writing, so nothing of this call is in `tx`.
        Err(e) => return Ok(Err(e)),
    }
    let n = tx
        .prepare_cached(
            "UPDATE pairing_codes SET status = 'used', used_at = ?2, bot_identity = ?3,
               telegram_user_id = ?4, telegram_chat_id = ?5
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![key, now, bot, tg_user, tg_chat])?;
    if n != 1 {
        return Err(Error::storage(
            "pairing code changed inside its own transaction",
        ));
    }
    Ok(Ok(PairingCode {
        status: "used".into(),
        used_at: Some(now),
        bot_identity: Some(bot),
        telegram_user_id: Some(tg_user),
        telegram_chat_id: Some(tg_chat),
        ..row
    }))
}

impl Factory {
    /// Create a pending pairing code for `agent_key` (which must be enabled and
    /// have a bot identity). `ttl_ms` is clamped to 1 minute ..= 24 hours
    /// (default 15 minutes). The user's expired pending codes and their pending
    /// codes for the same agent become `expired`.
    pub fn create_pairing_code(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        ttl_ms: Option<i64>,
        now_ms: Option<i64>,
    ) -> Result<PairingCode> {
        validate_consumer_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        pairing_ttl(ttl_ms)?;
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| create_pairing_in(tx, consumer_user_id, agent_key, ttl_ms, now))
    }

    /// Consume a pairing code received by bot `bot_identity` from a Telegram
    /// user and chat: binds the code's user to its agent with those ids and
    /// marks the code `used`. An expired code is persisted as `expired` and the
    /// call then fails with `Pairing code expired`.
    pub fn consume_pairing_code(
        &self,
        code: &str,
        bot_identity: Option<&str>,
        telegram_user_id: &str,
        telegram_chat_id: &str,
        now_ms: Option<i64>,
    ) -> Result<PairingCode> {
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            consume_pairing_in(
                tx,
                code,
                bot_identity,
                telegram_user_id,
                telegram_chat_id,
                now,
            )
        })?
    }

    /// A code's view at `now` (a pending code past expiry reads as `expired`), or `None`.
    pub fn pairing_code_status(
        &self,
        code: &str,
        now_ms: Option<i64>,
    ) -> Result<Option<PairingCode>> {
        let code = normalize_code(code)?;
        let now = self.now(now_ms)?;
        Ok(self
            .store
            .read(|tx| find_code(tx, &code))?
            .map(|(p, _)| p.at(now)))
    }
}
