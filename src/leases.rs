//! Named leases in the database: at most one live holder per name, across
//! threads and processes (e.g. the pool's control loop, so two loops never act
//! at once).
//!
//! Invariants:
//! - a lease is held by `holder` while `now < expires_at`; acquiring a lease
//!   that is held by someone else fails until it expires or is released;
//! - the holder renews by acquiring again; renewing keeps the fencing token,
//!   while every change of holder (or re-acquisition after expiry) increments
//!   it, so a token identifies one uninterrupted tenure;
//! - [`Factory::check_lease`] inside a transaction lets an action commit only
//!   while its tenure is still current: a holder that stalled past expiry and
//!   was replaced cannot write on its stale token.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::store::Tx;
use crate::validate;

/// Longest lease time accepted (one day).
pub const MAX_TTL_MS: i64 = 86_400_000;

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseGrant {
    /// Lease name.
    pub name: String,
    /// Holder identity.
    pub holder: String,
    /// Fencing token of this tenure.
    pub token: i64,
    /// When the current tenure began.
    pub acquired_at: i64,
    /// When it lapses unless renewed.
    pub expires_at: i64,
}

/// A `leases` row read as `name, holder, token, acquired_at, expires_at`.
fn grant_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LeaseGrant> {
    Ok(LeaseGrant {
        name: r.get(0)?,
        holder: r.get(1)?,
        token: r.get(2)?,
        acquired_at: r.get(3)?,
        expires_at: r.get(4)?,
    })
}

fn check_args(name: &str, holder: &str) -> Result<()> {
    validate::identifier("lease name", name, 200, false)?;
    validate::text("holder", holder, 200)
}

/// Acquire or renew inside `tx`; `None` when someone else holds it.
pub(crate) fn acquire_in(
    tx: &Tx,
    name: &str,
    holder: &str,
    ttl_ms: i64,
    now: i64,
) -> Result<Option<LeaseGrant>> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO leases(name, holder, token, acquired_at, renewed_at, expires_at)
             VALUES (?1, ?2, 1, ?3, ?3, ?3 + ?4)
             ON CONFLICT(name) DO UPDATE SET
               token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ?3
                            THEN leases.token ELSE leases.token + 1 END,
               acquired_at = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ?3
                                  THEN leases.acquired_at ELSE ?3 END,
               holder = excluded.holder, renewed_at = ?3, expires_at = ?3 + ?4
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ?3
             RETURNING name, holder, token, acquired_at, expires_at",
        )?
        .query_row(params![name, holder, now, ttl_ms], grant_from_row)
        .optional()?)
}

/// The lease row `name` inside `tx` (live or lapsed), if it was ever taken.
pub(crate) fn get_in(tx: &Tx, name: &str) -> Result<Option<LeaseGrant>> {
    Ok(tx
        .prepare_cached(
            "SELECT name, holder, token, acquired_at, expires_at FROM leases WHERE name = ?1",
        )?
        .query_row([name], grant_from_row)
        .optional()?)
}

/// End the tenure `token` of `holder` inside `tx` (it lapses at its last
/// renewal, so it is free at once); `false` when that tenure is not current.
pub(crate) fn release_in(tx: &Tx, name: &str, holder: &str, token: i64) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "UPDATE leases SET expires_at = min(expires_at, renewed_at)
             WHERE name = ?1 AND holder = ?2 AND token = ?3",
        )?
        .execute(params![name, holder, token])?
        > 0)
}

/// A holder identity unique to this process and call: `hostname:pid:random`.
///
/// The hostname keeps only `[A-Za-z0-9._-]` (at most 64 bytes), so the id is
/// also a valid HTTP header value (it names a control loop in `User-Agent`).
pub fn holder_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success (a truncated name is cut at the buffer end below).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let raw = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let mut host: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if host.is_empty() {
        host = "localhost".into();
    }
    let random = rand::random::<u64>() & 0xffff_ffff_ffff;
    format!("{host}:{}:{random:012x}", std::process::id())
}

/// `Conflict` unless `holder` still holds `name` with `token` at `now`.
pub(crate) fn check_in(tx: &Tx, name: &str, holder: &str, token: i64, now: i64) -> Result<()> {
    let current: Option<(String, i64, i64)> = tx
        .prepare_cached("SELECT holder, token, expires_at FROM leases WHERE name = ?1")?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match current {
        Some((h, t, expires)) if h == holder && t == token && expires > now => Ok(()),
        _ => Err(Error::conflict(format!(
            "lease '{name}' is no longer held by '{holder}' with token {token}"
        ))),
    }
}

impl Factory {
    /// Acquire (or renew) the lease `name` for `ttl_ms`; `None` while another
    /// holder's lease is live.
    pub fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: Option<i64>,
    ) -> Result<Option<LeaseGrant>> {
        check_args(name, holder)?;
        if !(1..=MAX_TTL_MS).contains(&ttl_ms) {
            return Err(Error::validation(format!(
                "ttlMs must be within 1..={MAX_TTL_MS}, got {ttl_ms}"
            )));
        }
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| acquire_in(tx, name, holder, ttl_ms, now))
    }

    /// Give the lease up if `holder` holds it with `token`; `false` otherwise.
    pub fn release_lease(&self, name: &str, holder: &str, token: i64) -> Result<bool> {
        check_args(name, holder)?;
        self.store.write(|tx| release_in(tx, name, holder, token))
    }

    /// The current state of lease `name` (live or lapsed), if it was ever taken.
    pub fn get_lease(&self, name: &str) -> Result<Option<LeaseGrant>> {
        validate::identifier("lease name", name, 200, false)?;
        self.store.read(|tx| get_in(tx, name))
    }

    /// Run `f` in one write transaction only while `holder` still holds `name`
    /// with `token`; `Conflict` (and nothing written) otherwise.
    pub fn with_lease<T>(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        now: i64,
        f: impl FnOnce(&Tx) -> Result<T>,
    ) -> Result<T> {
        self.store.write(|tx| {
            check_in(tx, name, holder, token, now)?;
            f(tx)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FactoryOptions;

    fn factory() -> Factory {
        Factory::open(":memory:", FactoryOptions::default()).unwrap()
    }

    #[test]
    fn one_holder_at_a_time_and_tokens_fence_tenures() {
        let f = factory();
        let a = f
            .acquire_lease("control", "a", 1000, Some(10))
            .unwrap()
            .unwrap();
        assert_eq!((a.token, a.expires_at), (1, 1010));
        assert!(f
            .acquire_lease("control", "b", 1000, Some(500))
            .unwrap()
            .is_none());
        let renewed = f
            .acquire_lease("control", "a", 1000, Some(900))
            .unwrap()
            .unwrap();
        assert_eq!(
            (renewed.token, renewed.acquired_at, renewed.expires_at),
            (1, 10, 1900)
        );
        // a stalls past expiry; b takes over with a new token
        let b = f
            .acquire_lease("control", "b", 1000, Some(1900))
            .unwrap()
            .unwrap();
        assert_eq!(b.token, 2);
        let stale = f.with_lease("control", "a", 1, 1950, |_| Ok(()));
        assert!(matches!(stale, Err(Error::Conflict(_))));
        assert!(f.with_lease("control", "b", 2, 1950, |_| Ok(())).is_ok());
        assert!(!f.release_lease("control", "a", 1).unwrap());
        assert!(f.release_lease("control", "b", 2).unwrap());
        let a2 = f
            .acquire_lease("control", "a", 1000, Some(1960))
            .unwrap()
            .unwrap();
        assert_eq!(a2.token, 3, "a released lease is free at once");
    }

    #[test]
    fn bad_arguments_are_rejected() {
        let f = factory();
        assert!(matches!(
            f.acquire_lease("", "a", 10, None),
            Err(Error::Validation(_))
        ));
        assert!(matches!(
            f.acquire_lease("x", "a", 0, None),
            Err(Error::Validation(_))
        ));
        assert!(matches!(
            f.acquire_lease("x", "", 10, None),
            Err(Error::Validation(_))
        ));
        assert!(f.get_lease("x").unwrap().is_none());
    }
}
