//! What a control-loop tick reports.
//!
//! Invariant: `did_something` is derived from the rest of the report by
//! [`TickReport::finish`], called once when the tick is complete.

use serde::Serialize;

use crate::pool::PoolReport;
use crate::push::DispatchReport;
use crate::queue::ReleaseOutcome;
use crate::snapshots::SnapshotExpiry;
use crate::telegram::AttachmentExpiry;

/// A step of a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Expired job leases put back in the queue.
    Recovery,
    /// A reconcile cycle.
    Reconcile,
    /// An idle-shutdown cycle.
    IdleShutdown,
    /// Due push jobs dispatched (every tick; one index read when nothing is due).
    Push,
    /// Expiry of snapshots and Telegram attachments.
    Sweep,
}

/// Why a reconcile ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileReason {
    /// First tick of a tenure.
    Start,
    /// Conversations need workers the pool does not have.
    Demand,
    /// `reconcile_interval_ms` passed.
    Interval,
    /// The previous attempt failed.
    Retry,
}

/// What one tick did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TickReport {
    /// This loop's holder id.
    pub holder: String,
    /// Whether this loop held the lease and ran its steps.
    pub acting: bool,
    /// Who holds the lease now (this loop when acting), if anyone.
    pub lease_holder: Option<String>,
    /// Fencing token of this loop's tenure (when acting).
    pub lease_token: Option<i64>,
    /// When the current holder's lease lapses unless renewed.
    pub lease_expires_at: Option<i64>,
    /// This tick began a new tenure (first tick, or a takeover).
    pub took_over: bool,
    /// This loop held the lease before and lost it (taken over or lapsed).
    pub lost_lease: bool,
    /// The time the tick ran at.
    pub at: i64,
    /// Steps that ran, in order (failed ones included).
    pub ran: Vec<Step>,
    /// Why the reconcile ran, when it did.
    pub reconcile_reason: Option<ReconcileReason>,
    /// Active conversations (claimable or in flight) seen by the tick.
    pub active_conversations: Option<i64>,
    /// Lease recovery.
    pub released: Option<ReleaseOutcome>,
    /// The reconcile cycle's report.
    pub reconcile: Option<PoolReport>,
    /// The idle-shutdown cycle's report.
    pub idle_shutdown: Option<PoolReport>,
    /// The push dispatch pass.
    pub push: Option<DispatchReport>,
    /// The snapshot expiry sweep.
    pub expiry: Option<SnapshotExpiry>,
    /// The Telegram attachment expiry sweep.
    pub attachment_expiry: Option<AttachmentExpiry>,
    /// Failed steps (each retried later), prefixed with the step.
    pub errors: Vec<String>,
    /// Whether the tick changed anything or has something to say: a lease
    /// change, recovered jobs, spawned/drained/torn-down workers, dispatched
    /// push slots, expired snapshots or attachments, warnings or errors.
    pub did_something: bool,
    /// The latest time the next tick should run (something falls due, or the
    /// lease needs renewing); a loop also ticks more often to notice demand.
    pub next_tick_at: i64,
}

impl TickReport {
    /// An empty report of `holder` at `at`.
    pub(super) fn new(holder: &str, at: i64) -> Self {
        TickReport {
            holder: holder.to_string(),
            acting: false,
            lease_holder: None,
            lease_token: None,
            lease_expires_at: None,
            took_over: false,
            lost_lease: false,
            at,
            ran: Vec::new(),
            reconcile_reason: None,
            active_conversations: None,
            released: None,
            reconcile: None,
            idle_shutdown: None,
            push: None,
            expiry: None,
            attachment_expiry: None,
            errors: Vec::new(),
            did_something: false,
            next_tick_at: at,
        }
    }

    /// Derive `did_something` from the rest of the report.
    pub(super) fn finish(&mut self) {
        let cycle_changed = |r: &Option<PoolReport>| {
            r.as_ref().is_some_and(|r| {
                r.spawned + r.terminated + r.torn_down > 0
                    || !r.warnings.is_empty()
                    || !r.errors.is_empty()
            })
        };
        self.did_something = self.took_over
            || self.lost_lease
            || !self.errors.is_empty()
            || self
                .released
                .as_ref()
                .is_some_and(|r| r.requeued + r.dead_lettered + r.unlocked > 0)
            || cycle_changed(&self.reconcile)
            || cycle_changed(&self.idle_shutdown)
            || self
                .push
                .as_ref()
                .is_some_and(|p| p.enqueued + p.failed > 0)
            || self
                .expiry
                .as_ref()
                .is_some_and(|e| e.expired + e.failed + e.blobs_deleted > 0)
            || self
                .attachment_expiry
                .as_ref()
                .is_some_and(|e| e.expired + e.blobs_deleted + e.updates_pruned > 0);
    }
}
