//! Lease recovery: messages whose lease expired go back to their conversation.
//!
//! A message in flight is its conversation's lock (`state = 'busy'`), and the
//! busy range of `conversations_sched` is ordered by lease expiry, so finding
//! expired leases reads only conversations in flight.
//!
//! An expired lease counts as a failed attempt (the original did not count it,
//! so a message that crashed every worker looped forever): it is retried with
//! backoff or dead-lettered at `max_attempts`. The conversation lock is released
//! and the holder's load and sticky assignment are cleared, without refreshing
//! the holder's heartbeat (it is probably dead).

use rusqlite::params;

use super::conversations;
use super::settle::retry_or_bury;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::metrics::{self, target, Counter};
use crate::store::Tx;
use crate::workers;

/// Error recorded on a message whose lease expired.
pub const LEASE_EXPIRED: &str = "Lease expired while processing";

/// Counts from one recovery pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseOutcome {
    /// Messages put back in the queue.
    pub requeued: i64,
    /// Messages dead-lettered because the expiry was their last attempt.
    pub dead_lettered: i64,
    /// Conversation locks released.
    pub unlocked: i64,
}

/// Recover up to `limit` expired leases inside `tx`.
pub(crate) fn release_expired_in(
    tx: &Tx,
    cfg: &Config,
    now: i64,
    limit: i64,
) -> Result<ReleaseOutcome> {
    let mut stmt = tx.prepare_hot(
        "SELECT m.id, c.id, c.conversation_id, c.lock_worker_id, m.attempts, m.max_attempts
         FROM conversations c JOIN messages m ON m.id = c.lock_message
         WHERE c.state = 'busy' AND c.sched_k1 <= ?1 ORDER BY c.sched_k1 LIMIT ?2",
    )?;
    type Expired = (i64, i64, String, String, i64, i64);
    let expired: Vec<Expired> = stmt
        .query_map(params![now, limit], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    let mut out = ReleaseOutcome::default();
    for (key, conv_ref, conversation_id, worker, attempts, max_attempts) in expired {
        let outcome = retry_or_bury(
            tx,
            cfg,
            key,
            &worker,
            attempts,
            max_attempts,
            LEASE_EXPIRED,
            now,
        )?;
        metrics::incr(Counter::LeasesRecovered);
        metrics::event(log::Level::Warn, target::QUEUE, || {
            let next = if outcome.requeued {
                "requeued"
            } else {
                "dead-lettered"
            };
            format!(
                "lease of message {} expired (worker {}, conversation {conversation_id}): {next}",
                crate::ids::message_id(key),
                worker
            )
        });
        out.requeued += i64::from(outcome.requeued);
        out.dead_lettered += i64::from(outcome.dead_lettered);
        out.unlocked += 1;
        conversations::refresh_head(tx, conv_ref, now)?;
        workers::release_load(
            tx,
            &worker,
            now,
            cfg.scaling.idle_timeout_ms,
            false,
            Some(&conversation_id),
        )?;
    }
    Ok(out)
}

impl Factory {
    /// Requeue (or dead-letter) messages whose lease expired; at most `limit` per call.
    pub fn release_stuck_jobs(&self, limit: i64, now_ms: Option<i64>) -> Result<ReleaseOutcome> {
        if !(1..=100_000).contains(&limit) {
            return Err(Error::validation(format!(
                "limit must be within 1..=100000, got {limit}"
            )));
        }
        let cfg = self.config();
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| release_expired_in(tx, &cfg, now, limit))
    }
}
