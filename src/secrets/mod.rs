//! Versioned, encrypted secrets.
//!
//! Invariants: at most one active version per `secret_ref` (a unique partial
//! index enforces it); importing creates `max(version) + 1`, deactivates the
//! previous active row and records `rotated_from`; plaintext never touches the
//! database. Plaintext leaves the core only through hydration (lease holder) or
//! [`Factory::reveal_secret`] (an explicit operator call).

pub mod crypto;

use rusqlite::{params, OptionalExtension};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::store::Tx;
use crypto::{MasterKey, Sealed, ALGORITHM};

/// Largest accepted secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Result of an import.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImportedSecret {
    /// Row id.
    pub secret_id: i64,
    /// Reference name.
    pub secret_ref: String,
    /// New version.
    pub version: i64,
}

/// Status of one reference.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SecretStatus {
    /// Reference name.
    pub secret_ref: String,
    /// Whether an active version exists.
    pub has_active: bool,
    /// The active version.
    pub version: Option<i64>,
    /// When the active version was imported.
    pub updated_at: Option<i64>,
}

/// Reject empty or odd secret references.
pub fn validate_secret_ref(secret_ref: &str) -> Result<()> {
    crate::validate::identifier("secretRef", secret_ref, 200, true)
}

/// Decrypt the active value of `secret_ref`, if any.
pub(crate) fn active_plaintext(
    tx: &Tx,
    key: &MasterKey,
    secret_ref: &str,
) -> Result<Option<String>> {
    let row = tx
        .prepare_cached("SELECT version, key_id, nonce, ciphertext FROM secrets WHERE secret_ref = ?1 AND active = 1")?
        .query_row([secret_ref], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, Vec<u8>>(3)?))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((version, key_id, nonce, ciphertext)) => key
            .open(secret_ref, version, &key_id, &Sealed { nonce, ciphertext })
            .map(Some),
    }
}

/// First active value among `refs` (in order), with the ref that matched.
pub(crate) fn first_active(
    tx: &Tx,
    key: &MasterKey,
    refs: &[String],
) -> Result<Option<(String, String)>> {
    for r in refs {
        if let Some(v) = active_plaintext(tx, key, r)? {
            return Ok(Some((v, r.clone())));
        }
    }
    Ok(None)
}

/// Import a new active version of `secret_ref` inside the caller's transaction
/// (the caller has validated the ref, the value and the metadata).
pub(crate) fn import_in(
    tx: &Tx,
    key: &MasterKey,
    secret_ref: &str,
    plaintext: &str,
    metadata: Option<&Map<String, Value>>,
    now: i64,
) -> Result<ImportedSecret> {
    let (max_version, active): (Option<i64>, Option<i64>) = tx.query_row(
        "SELECT max(version), max(CASE WHEN active = 1 THEN version END) FROM secrets WHERE secret_ref = ?1",
        [secret_ref],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let version = max_version.unwrap_or(0) + 1;
    let sealed = key.seal(secret_ref, version, plaintext)?;
    tx.execute(
        "UPDATE secrets SET active = 0 WHERE secret_ref = ?1 AND active = 1",
        [secret_ref],
    )?;
    let meta = metadata.map(|m| Value::Object(m.clone()).to_string());
    tx.execute(
        "INSERT INTO secrets(secret_ref, version, algorithm, key_id, nonce, ciphertext, active, rotated_from, metadata, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9)",
        params![secret_ref, version, ALGORITHM, key.key_id(), sealed.nonce, sealed.ciphertext, active, meta, now],
    )?;
    Ok(ImportedSecret {
        secret_id: tx.last_insert_rowid(),
        secret_ref: secret_ref.to_string(),
        version,
    })
}

/// The metadata of the active version of `secret_ref`, if any.
pub(crate) fn active_metadata(tx: &Tx, secret_ref: &str) -> Result<Option<Map<String, Value>>> {
    let text: Option<Option<String>> = tx
        .prepare_cached("SELECT metadata FROM secrets WHERE secret_ref = ?1 AND active = 1")?
        .query_row([secret_ref], |r| r.get(0))
        .optional()?;
    match text.flatten() {
        None => Ok(None),
        Some(t) => match serde_json::from_str(&t)? {
            Value::Object(m) => Ok(Some(m)),
            _ => Ok(None),
        },
    }
}

impl Factory {
    /// Import a new version of a secret and make it the active one.
    pub fn import_secret(
        &self,
        secret_ref: &str,
        plaintext: &str,
        metadata: Option<Map<String, Value>>,
        now_ms: Option<i64>,
    ) -> Result<ImportedSecret> {
        validate_secret_ref(secret_ref)?;
        if plaintext.trim().is_empty() {
            return Err(Error::validation(format!(
                "plaintextValue for secret '{secret_ref}' must not be blank"
            )));
        }
        if plaintext.len() > MAX_SECRET_BYTES {
            return Err(Error::validation(format!(
                "plaintextValue for secret '{secret_ref}' is {} bytes; the limit is {MAX_SECRET_BYTES}",
                plaintext.len()
            )));
        }
        if let Some(m) = &metadata {
            if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_string()) {
                return Err(Error::validation(format!(
                    "secret metadata.{k} must be a string"
                )));
            }
        }
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| import_in(tx, &self.key, secret_ref, plaintext, metadata.as_ref(), now))
    }

    /// Status of each reference, in the order given.
    pub fn secret_status(&self, secret_refs: &[String]) -> Result<Vec<SecretStatus>> {
        for r in secret_refs {
            validate_secret_ref(r)?;
        }
        self.store.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT version, created_at FROM secrets WHERE secret_ref = ?1 AND active = 1",
            )?;
            secret_refs
                .iter()
                .map(|r| {
                    let row = stmt
                        .query_row([r], |x| Ok((x.get::<_, i64>(0)?, x.get::<_, i64>(1)?)))
                        .optional()?;
                    Ok(SecretStatus {
                        secret_ref: r.clone(),
                        has_active: row.is_some(),
                        version: row.map(|x| x.0),
                        updated_at: row.map(|x| x.1),
                    })
                })
                .collect()
        })
    }

    /// Every reference that has an active version, sorted.
    pub fn list_secret_refs(&self) -> Result<Vec<String>> {
        self.store.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT secret_ref FROM secrets WHERE active = 1 ORDER BY secret_ref",
            )?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(rows)
        })
    }

    /// Operator call: the active plaintext of a secret.
    pub fn reveal_secret(&self, secret_ref: &str) -> Result<Option<String>> {
        validate_secret_ref(secret_ref)?;
        self.store
            .read(|tx| active_plaintext(tx, &self.key, secret_ref))
    }

    /// Fingerprint of the master key in use.
    pub fn master_key_id(&self) -> &str {
        self.key.key_id()
    }
}
