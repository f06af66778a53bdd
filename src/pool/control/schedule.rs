//! When each step of a control loop falls due (pure: no I/O).
//!
//! Invariants: a failing step waits for its retry time whatever else says it
//! is due (1 s, doubling per consecutive failure, capped by its interval); a
//! reconcile that never ran in this tenure is due at once.

use super::{ControlOptions, ReconcileReason, PENDING_CHECK_INTERVAL_MS, RETRY_BASE_MS};
use crate::config::ScalingPolicy;

/// When a periodic step last succeeded and how it is failing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pace {
    pub(super) last_ok: Option<i64>,
    pub(super) failures: u32,
    pub(super) retry_at: i64,
}

impl Pace {
    /// Due by its period (or never run); a failing step is due at its retry time only.
    pub(super) fn due(&self, now: i64, interval: i64) -> bool {
        if self.failures > 0 {
            return now >= self.retry_at;
        }
        self.last_ok
            .is_none_or(|t| now >= t.saturating_add(interval))
    }

    /// When it falls due by period or retry.
    pub(super) fn due_at(&self, interval: i64) -> i64 {
        if self.failures > 0 {
            return self.retry_at;
        }
        self.last_ok
            .map_or(i64::MIN, |t| t.saturating_add(interval))
    }

    /// Failing steps wait out their retry time, whatever else says they are due.
    pub(super) fn may_run(&self, now: i64) -> bool {
        self.failures == 0 || now >= self.retry_at
    }

    pub(super) fn succeeded(&mut self, now: i64) {
        *self = Pace {
            last_ok: Some(now),
            failures: 0,
            retry_at: 0,
        };
    }

    pub(super) fn failed(&mut self, now: i64, interval: i64) {
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(20);
        let delay = RETRY_BASE_MS
            .saturating_mul(1_i64 << exp)
            .min(interval.max(1));
        self.retry_at = now.saturating_add(delay);
    }
}

/// What the last cycle of this tenure left behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct CycleMemo {
    /// Active conversations when the last reconcile ran.
    pub(super) active_at_reconcile: i64,
    /// Fresh active workers after the last cycle.
    pub(super) active_workers: i64,
    /// Workers the last reconcile spawned.
    pub(super) spawned: i64,
    /// Workers waiting on a snapshot or the provider after the last cycle.
    pub(super) pending: i64,
    /// When an idle shutdown or drain timeout falls due.
    pub(super) next_due_at: Option<i64>,
    /// When the last cycle (of either kind) finished its run.
    pub(super) at: i64,
}

/// The schedule of one tenure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Schedule {
    pub(super) reconcile: Pace,
    pub(super) idle: Pace,
    pub(super) sweep: Pace,
    pub(super) memo: Option<CycleMemo>,
    /// Active conversations seen by the previous tick.
    pub(super) seen_active: Option<i64>,
}

/// Why a reconcile should run now, if it should.
pub(super) fn reconcile_reason(
    s: &Schedule,
    active: i64,
    policy: &ScalingPolicy,
    now: i64,
) -> Option<ReconcileReason> {
    let pace = &s.reconcile;
    if !pace.may_run(now) {
        return None;
    }
    if pace.failures > 0 {
        return Some(ReconcileReason::Retry);
    }
    let (Some(_), Some(memo)) = (pace.last_ok, s.memo) else {
        return Some(ReconcileReason::Start);
    };
    let grew = s.seen_active.is_some_and(|seen| active > seen);
    let short = active.min(policy.max_workers) > memo.active_workers
        && (memo.spawned > 0 || active != memo.active_at_reconcile);
    if grew || short {
        return Some(ReconcileReason::Demand);
    }
    pace.due(now, policy.reconcile_interval_ms)
        .then_some(ReconcileReason::Interval)
}

/// How often idle checks run while workers wait.
fn pending_interval(policy: &ScalingPolicy) -> i64 {
    PENDING_CHECK_INTERVAL_MS.min(policy.reconcile_interval_ms)
}

/// When the next idle-shutdown check falls due.
pub(super) fn idle_due_at(s: &Schedule, policy: &ScalingPolicy, o: &ControlOptions) -> i64 {
    let pace = &s.idle;
    if pace.failures > 0 {
        return pace.retry_at;
    }
    let Some(memo) = s.memo else {
        return pace.due_at(o.idle_check_interval_ms);
    };
    let mut at = memo.at.saturating_add(o.idle_check_interval_ms);
    if memo.pending > 0 {
        at = at.min(memo.at.saturating_add(pending_interval(policy)));
    }
    if let Some(due) = memo.next_due_at {
        at = at.min(due);
    }
    at
}

pub(super) fn idle_due(s: &Schedule, policy: &ScalingPolicy, o: &ControlOptions, now: i64) -> bool {
    now >= idle_due_at(s, policy, o)
}
