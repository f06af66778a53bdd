//! `heartbeat`, `complete` and `fail`: every call is fenced by the lease id.
//!
//! A call whose `(message, worker, lease)` no longer matches the lock of the
//! message's conversation changes nothing and reports `false` (an unknown message id is a
//! `NotFound` error instead). A lease that has expired cannot be extended, but
//! its holder may still complete or fail it until recovery hands it to
//! someone else; after that the old lease id no longer matches.

use rusqlite::{params, OptionalExtension};

use super::claim::{self, claim_in};
use super::{conversations, Claim, ClaimOptions};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::metrics::{self, target, Counter};
use crate::store::Tx;
use crate::workers::{self, validate_worker_id};

/// Longest stored error text; longer messages are truncated.
pub const MAX_ERROR_CHARS: usize = 4000;

/// Result of `fail`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailOutcome {
    /// The message will be retried.
    pub requeued: bool,
    /// The message is dead-lettered.
    pub dead_lettered: bool,
    /// When the retry becomes claimable.
    pub next_scheduled_for: Option<i64>,
}

pub(crate) struct Held {
    pub key: i64,
    pub conv_ref: i64,
    pub conversation_id: String,
    pub agent_key: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_expires_at: i64,
    /// The payload names a workboard card (a cheap scan of its text that tells a
    /// card's message, see `workboard::pool_bridge`, from the rest without
    /// parsing JSON).
    pub for_card: bool,
}

/// The message if `(worker, lease)` still holds it; `NotFound` for an unknown id.
pub(crate) fn held(
    tx: &Tx,
    worker_id: &str,
    message_id: &str,
    lease_id: &str,
) -> Result<Option<Held>> {
    let key = ids::parse_message_id(message_id)?;
    let row = tx
        .prepare_hot(
            "SELECT m.conversation_ref, c.conversation_id, c.agent_key, m.attempts, m.max_attempts, c.lock_expires_at,
                    instr(m.payload, '\"workboardCardId\"') > 0
             FROM messages m JOIN conversations c ON c.id = m.conversation_ref
             WHERE m.id = ?1 AND c.lock_message = m.id AND c.lock_lease_id = ?2 AND c.lock_worker_id = ?3",
        )?
        .query_row(params![key, lease_id, worker_id], |r| {
            Ok(Held {
                key,
                conv_ref: r.get(0)?,
                conversation_id: r.get(1)?,
                agent_key: r.get(2)?,
                attempts: r.get(3)?,
                max_attempts: r.get(4)?,
                lease_expires_at: r.get(5)?,
                for_card: r.get(6)?,
            })
        })
        .optional()?;
    if row.is_none() {
        let exists: bool = tx
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM messages WHERE id = ?1)")?
            .query_row([key], |r| r.get(0))?;
        if !exists {
            return Err(Error::not_found(format!("message {message_id} not found")));
        }
    }
    Ok(row)
}

fn check(worker_id: &str, lease_id: &str) -> Result<()> {
    validate_worker_id(worker_id)?;
    if lease_id.is_empty() || lease_id.len() > 200 {
        return Err(Error::validation(
            "leaseId must be a non-empty string of at most 200 characters",
        ));
    }
    Ok(())
}

/// Requeue with backoff or dead-letter a message that was in flight with `worker`.
/// The caller releases the conversation lock ([`conversations::refresh_head`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn retry_or_bury(
    tx: &Tx,
    cfg: &Config,
    key: i64,
    worker: &str,
    attempts: i64,
    max_attempts: i64,
    error: &str,
    now: i64,
) -> Result<FailOutcome> {
    let attempts = attempts + 1;
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    if attempts >= max_attempts {
        tx.prepare_cached(
            "UPDATE messages SET status = 'dead_letter', attempts = ?2, last_error = ?3, dead_lettered_at = ?4,
               finished_at = ?4, next_retry_at = NULL, claimed_by = ?5 WHERE id = ?1",
        )?
        .execute(params![key, attempts, error, now, worker])?;
        crate::workboard::pool_bridge::on_message_failed(tx, key, true, &error, now)?;
        metrics::incr(Counter::MessagesDeadLettered);
        metrics::event(log::Level::Warn, target::QUEUE, || {
            format!(
                "message {} dead-lettered after {attempts} of {max_attempts} attempts",
                ids::message_id(key)
            )
        });
        return Ok(FailOutcome {
            requeued: false,
            dead_lettered: true,
            next_scheduled_for: None,
        });
    }
    let retry_at = now + cfg.retry.retry_delay_ms(attempts, now);
    tx.prepare_cached(
        "UPDATE messages SET attempts = ?2, last_error = ?3, next_retry_at = ?4, ready_at = max(scheduled_for, ?4),
           claimed_by = ?5 WHERE id = ?1",
    )?
    .execute(params![key, attempts, error, retry_at, worker])?;
    crate::workboard::pool_bridge::on_message_failed(tx, key, false, &error, now)?;
    Ok(FailOutcome {
        requeued: true,
        dead_lettered: false,
        next_scheduled_for: Some(retry_at),
    })
}

/// Mark the message done if `(worker, lease)` still holds it and move its
/// conversation to the next head. The worker's row is left to the caller.
/// `false` when fenced off; `NotFound` for an unknown id.
///
/// The fence is a read of the lock ([`held`]), then the write is by row key,
/// both in the caller's transaction: an `UPDATE … RETURNING` would buffer its
/// one row in a temporary b-tree on every completion.
fn finish_message(
    tx: &Tx,
    worker_id: &str,
    message_id: &str,
    lease_id: &str,
    now: i64,
) -> Result<bool> {
    let Some(h) = held(tx, worker_id, message_id, lease_id)? else {
        return Ok(false);
    };
    tx.prepare_hot(
        "UPDATE messages SET status = 'done', finished_at = ?2, claimed_by = ?3, last_error = NULL, next_retry_at = NULL
         WHERE id = ?1",
    )?
    .execute(params![h.key, now, worker_id])?;
    conversations::refresh_head(tx, h.conv_ref, now)?;
    if h.for_card {
        crate::workboard::pool_bridge::on_message_done(tx, h.key, worker_id, now)?;
    }
    metrics::incr(Counter::MessagesCompleted);
    Ok(true)
}

impl Factory {
    /// Run `f` on a message the worker still holds, in one transaction; `lost` when the
    /// lease no longer matches (nothing is written then).
    fn settle<T>(
        &self,
        worker_id: &str,
        message_id: &str,
        lease_id: &str,
        now_ms: Option<i64>,
        lost: T,
        f: impl FnOnce(&Tx, &Config, &Held, i64) -> Result<T>,
    ) -> Result<T> {
        check(worker_id, lease_id)?;
        let cfg = self.config();
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| match held(tx, worker_id, message_id, lease_id)? {
                None => Ok(lost),
                Some(h) => f(tx, &cfg, &h, now),
            })
    }

    /// Extend a live lease. `false` if the lease is lost or already expired.
    pub fn heartbeat(
        &self,
        worker_id: &str,
        message_id: &str,
        lease_id: &str,
        now_ms: Option<i64>,
    ) -> Result<bool> {
        self.settle(worker_id, message_id, lease_id, now_ms, false, |tx, cfg, h, now| {
            if h.lease_expires_at <= now {
                return Ok(false);
            }
            let expires = now + cfg.lease.lease_ms;
            tx.prepare_cached(
                "UPDATE conversations SET lock_expires_at = ?2, lock_heartbeat_at = ?3 WHERE id = ?1 AND lock_lease_id = ?4",
            )?
            .execute(params![h.conv_ref, expires, now, lease_id])?;
            tx.prepare_cached(
                "UPDATE workers SET heartbeat_at = max(heartbeat_at, ?2),
                   assignment_assigned_at = CASE WHEN mode = 'sticky' THEN coalesce(assignment_assigned_at, ?2) ELSE assignment_assigned_at END,
                   assignment_conversation_id = CASE WHEN mode = 'sticky' THEN ?3 ELSE assignment_conversation_id END,
                   assignment_agent_key = CASE WHEN mode = 'sticky' THEN ?4 ELSE assignment_agent_key END,
                   assignment_lease_id = CASE WHEN mode = 'sticky' THEN ?5 ELSE assignment_lease_id END
                 WHERE worker_id = ?1 AND status <> 'stopped'",
            )?
            .execute(params![worker_id, now, h.conversation_id, h.agent_key, lease_id])?;
            Ok(true)
        })
    }

    /// Mark a held message done. `false` if the lease is no longer held.
    pub fn complete(
        &self,
        worker_id: &str,
        message_id: &str,
        lease_id: &str,
        now_ms: Option<i64>,
    ) -> Result<bool> {
        check(worker_id, lease_id)?;
        let cfg = self.config();
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let done = finish_message(tx, worker_id, message_id, lease_id, now)?;
            if done {
                workers::release_load(tx, worker_id, now, cfg.scaling.idle_timeout_ms, true, None)?;
            }
            Ok(done)
        })
    }

    /// Complete a held message and claim the worker's next one in the same
    /// transaction (one commit per message for a busy worker). Raises
    /// `Conflict` if the completion was fenced off (nothing is claimed then).
    pub fn complete_and_claim(
        &self,
        worker_id: &str,
        message_id: &str,
        lease_id: &str,
        opts: &ClaimOptions,
        now_ms: Option<i64>,
    ) -> Result<Option<Claim>> {
        check(worker_id, lease_id)?;
        claim::check(worker_id, opts)?;
        let cfg = self.config();
        let now = self.now(now_ms)?;
        let next = self.write_claiming(|tx| {
            if !finish_message(tx, worker_id, message_id, lease_id, now)? {
                return Ok(None);
            }
            claim_in(tx, self, &cfg, worker_id, opts, now, true).map(Some)
        })?;
        next.ok_or_else(|| {
            Error::conflict(format!("lease {lease_id} of message {message_id} is no longer held by worker '{worker_id}'"))
        })
    }

    /// Record a failure: retry with backoff, or dead-letter at max attempts.
    pub fn fail(
        &self,
        worker_id: &str,
        message_id: &str,
        lease_id: &str,
        error: &str,
        now_ms: Option<i64>,
    ) -> Result<FailOutcome> {
        let lost = FailOutcome {
            requeued: false,
            dead_lettered: false,
            next_scheduled_for: None,
        };
        self.settle(
            worker_id,
            message_id,
            lease_id,
            now_ms,
            lost,
            |tx, cfg, h, now| {
                metrics::incr(Counter::MessagesFailed);
                let outcome = retry_or_bury(
                    tx,
                    cfg,
                    h.key,
                    worker_id,
                    h.attempts,
                    h.max_attempts,
                    error,
                    now,
                )?;
                conversations::refresh_head(tx, h.conv_ref, now)?;
                workers::release_load(tx, worker_id, now, cfg.scaling.idle_timeout_ms, true, None)?;
                Ok(outcome)
            },
        )
    }
}
