//! Idle shutdown and drain progress (spec §5.4 steps 5–7, with a bounded drain).
//!
//! Invariants:
//! - an active worker is idle-due when it holds nothing and its shutdown time
//!   has passed; it then drains and is never reactivated. A spawned worker not
//!   yet heard from gets a startup grace on top (its idle clock
//!   starts at its first contact), so a slow start is not drained as idle;
//! - a draining worker may stop once it needs no final snapshot (it never
//!   claimed a job) or its `last_snapshot_id` names a `ready` snapshot — the
//!   volume is kept until then;
//! - a draining worker that shows no sign of life and uploads nothing for
//!   `drain_timeout_ms` (counted from the drain or its last heartbeat) is
//!   stopped anyway with reason `drain_timeout`, instead of waiting forever.

use super::rows;
use crate::error::Result;
use crate::factory::Factory;
use crate::workers::{Worker, WorkerStatus};

/// Where a draining worker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draining {
    /// No final snapshot needed, or it is ready.
    Ready,
    /// Nothing heard for the drain timeout.
    TimedOut,
    /// Waiting for the final snapshot until `deadline`.
    Waiting {
        /// When the drain times out.
        deadline: i64,
    },
}

/// Active workers due for idle shutdown at `now`, earliest shutdown first.
pub fn idle_due(rows: &[Worker], now: i64) -> Vec<&Worker> {
    let mut due: Vec<&Worker> = rows
        .iter()
        .filter(|w| {
            w.status == WorkerStatus::Active
                && w.load == 0
                && w.idle_deadline().is_some_and(|t| t <= now)
        })
        .collect();
    due.sort_by_key(|w| (w.scheduled_shutdown_at, w.worker_id.clone()));
    due
}

/// The drain progress of a draining worker.
pub fn draining_state(
    f: &Factory,
    w: &Worker,
    now: i64,
    drain_timeout_ms: i64,
) -> Result<Draining> {
    if w.last_claim_at.is_none() {
        return Ok(Draining::Ready);
    }
    if let Some(snapshot) = &w.last_snapshot_id {
        if f.store.read(|tx| rows::snapshot_ready(tx, snapshot))? {
            return Ok(Draining::Ready);
        }
    }
    let deadline = w.heartbeat_at.saturating_add(drain_timeout_ms);
    if now >= deadline {
        Ok(Draining::TimedOut)
    } else {
        Ok(Draining::Waiting { deadline })
    }
}

/// The next idle shutdown time after `now` among active idle workers.
pub fn next_idle_shutdown(rows: &[Worker], now: i64) -> Option<i64> {
    rows.iter()
        .filter(|w| w.status == WorkerStatus::Active && w.load == 0)
        .filter_map(Worker::idle_deadline)
        .filter(|t| *t > now)
        .min()
}
