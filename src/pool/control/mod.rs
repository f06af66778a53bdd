//! The pool's control loop: one component that runs lease recovery, push
//! dispatch, reconcile, idle shutdown and the expiry sweep (snapshots and
//! Telegram attachments) when each is due, and a
//! database lease so that two loops — in two threads or two processes — never
//! act at once (spec §5.5 and weakness 3: the original scheduled overlapping,
//! self-perpetuating reconcile chains).
//!
//! [`ControlLoop::tick`] is one pass: the caller (Python's `factory.pool.run`,
//! `agent-factory serve`) calls it every few hundred milliseconds and sleeps in
//! between; a tick with nothing due costs a lease renewal, a lease-recovery
//! pass and one indexed count.
//!
//! Invariants:
//! - a tick acts only while this loop holds the lease [`CONTROL_LEASE`]: it
//!   renews (or takes) the lease first and, when another live holder has it,
//!   does nothing else (`acting = false`);
//! - every step is fenced by the tenure's token: lease recovery commits inside
//!   [`Factory::with_lease`]; pool cycles and the expiry sweep re-check (and
//!   renew) the lease before they start and before every provider-heavy step,
//!   and stop when it was taken over or lapsed. Pool cycles additionally hold
//!   the cycle lock ([`super::lock`]), so even a loop that lost its lease in
//!   the middle of a cycle cannot overlap a successor's cycle;
//! - a new tenure (first tick, or taking over from another loop) forgets every
//!   schedule: whatever the previous holder left is looked at immediately;
//! - a failed step never aborts the loop: its error goes into the report and
//!   it is retried after a backoff (1 s, doubling, capped by its interval);
//! - reconcile runs at the start of a tenure, every `reconcile_interval_ms`,
//!   and as soon as demand appears (see [`ControlLoop::tick`]); idle shutdown
//!   when a worker's shutdown time or drain deadline passed, sooner while
//!   workers wait on a snapshot or the provider, and at least every
//!   `idle_check_interval_ms`; the expiry sweep every `sweep_interval_ms`;
//!   push dispatch every tick (each slot is enqueued once, whoever dispatches).

mod report;
mod schedule;

use std::cell::Cell;

use super::cycle::{self, CycleInput};
use super::{PoolTarget, RECONCILE_RELEASE_LIMIT};
use crate::config::ScalingPolicy;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::leases::{self, LeaseGrant, MAX_TTL_MS};
use crate::queue::release_expired_in;
use crate::validate;

pub use report::{ReconcileReason, Step, TickReport};
use schedule::{idle_due, idle_due_at, reconcile_reason, CycleMemo, Schedule};

/// Name of the control loop's lease.
pub const CONTROL_LEASE: &str = "pool.control";
/// Default lease time: a crashed loop is replaced within this long.
pub const DEFAULT_LEASE_TTL_MS: i64 = 30_000;
/// Default longest time between idle-shutdown checks.
pub const DEFAULT_IDLE_CHECK_INTERVAL_MS: i64 = 60_000;
/// Default time between snapshot expiry sweeps.
pub const DEFAULT_SWEEP_INTERVAL_MS: i64 = 60_000;
/// Idle checks while workers wait on a final snapshot or the provider run at
/// least this often (or every reconcile interval, if that is shorter).
pub const PENDING_CHECK_INTERVAL_MS: i64 = 5_000;
/// First retry delay of a failed step; it doubles per consecutive failure.
pub const RETRY_BASE_MS: i64 = 1_000;
/// Snapshots expired per sweep.
pub const SWEEP_LIMIT: i64 = 1_000;

/// Due push jobs dispatched per tick (the rest go in the next tick).
pub const PUSH_LIMIT: i64 = 200;

/// How a control loop identifies itself and paces its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlOptions {
    /// Lease holder identity; also sent in provider calls' `User-Agent`.
    pub holder: String,
    /// Lease time; renewed every tick.
    pub lease_ttl_ms: i64,
    /// Workspace passed to spawned workers.
    pub workspace_id: String,
    /// Longest time between idle-shutdown checks.
    pub idle_check_interval_ms: i64,
    /// Time between snapshot expiry sweeps.
    pub sweep_interval_ms: i64,
}

impl Default for ControlOptions {
    fn default() -> Self {
        ControlOptions {
            holder: leases::holder_id(),
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            workspace_id: super::DEFAULT_WORKSPACE_ID.into(),
            idle_check_interval_ms: DEFAULT_IDLE_CHECK_INTERVAL_MS,
            sweep_interval_ms: DEFAULT_SWEEP_INTERVAL_MS,
        }
    }
}

impl ControlOptions {
    /// Reject values no loop can run with.
    pub fn validate(&self) -> Result<()> {
        validate::text("holder", &self.holder, 200)?;
        // It travels in an HTTP header (`User-Agent`): printable ASCII only.
        if !self.holder.chars().all(|c| (' '..='~').contains(&c)) {
            return Err(Error::validation(format!(
                "holder {:?} must be printable ASCII",
                self.holder
            )));
        }
        validate::workspace_id(&self.workspace_id)?;
        for (field, value, min) in [
            ("lease_ttl_ms", self.lease_ttl_ms, 100),
            ("idle_check_interval_ms", self.idle_check_interval_ms, 1),
            ("sweep_interval_ms", self.sweep_interval_ms, 1),
        ] {
            if !(min..=MAX_TTL_MS).contains(&value) {
                return Err(Error::validation(format!(
                    "{field} must be within {min}..={MAX_TTL_MS}, got {value}"
                )));
            }
        }
        Ok(())
    }
}

/// A control loop's state between ticks. Not shared between threads: each
/// loop (thread, task or process) has its own, with its own holder id.
#[derive(Debug)]
pub struct ControlLoop {
    options: ControlOptions,
    tenure: Option<LeaseGrant>,
    schedule: Schedule,
}

/// Why the lease check of a step failed.
fn lease_lost(holder: &str) -> Error {
    Error::conflict(format!(
        "the control lease '{CONTROL_LEASE}' is no longer held by '{holder}'; this loop stopped acting"
    ))
}

impl ControlLoop {
    /// A loop with `options` (validated).
    pub fn new(options: ControlOptions) -> Result<Self> {
        options.validate()?;
        Ok(ControlLoop {
            options,
            tenure: None,
            schedule: Schedule::default(),
        })
    }

    /// This loop's holder id.
    pub fn holder(&self) -> &str {
        &self.options.holder
    }

    /// Its options.
    pub fn options(&self) -> &ControlOptions {
        &self.options
    }

    /// Pass `workspace_id` to workers spawned from now on.
    pub fn set_workspace_id(&mut self, workspace_id: &str) -> Result<()> {
        validate::workspace_id(workspace_id)?;
        self.options.workspace_id = workspace_id.to_string();
        Ok(())
    }

    /// The tenure this loop believes it holds.
    pub fn tenure(&self) -> Option<&LeaseGrant> {
        self.tenure.as_ref()
    }

    /// Renew the lease of tenure `token` at `now` (explicit or the clock's):
    /// `Conflict` when another holder has it or the tenure lapsed. A lapsed
    /// tenure that this renewal re-took is handed back at once.
    fn renew(&self, f: &Factory, token: i64, explicit_now: Option<i64>) -> Result<()> {
        let now = f.now(explicit_now)?;
        let holder = &self.options.holder;
        match f.acquire_lease(CONTROL_LEASE, holder, self.options.lease_ttl_ms, Some(now))? {
            Some(g) if g.token == token => Ok(()),
            Some(g) => {
                f.release_lease(CONTROL_LEASE, holder, g.token)?;
                Err(lease_lost(holder))
            }
            None => Err(lease_lost(holder)),
        }
    }

    /// One pass of the loop at `now_ms` (the factory clock when `None`).
    ///
    /// Takes or renews the lease; without it, reports `acting = false` and does
    /// nothing else. With it, runs lease recovery, then a reconcile when one is
    /// due — at the start of a tenure, after `policy.reconcile_interval_ms`, or
    /// on demand: the active conversations grew since the previous tick, or
    /// `min(active conversations, max_workers)` exceeds the live workers of
    /// the last cycle while the last reconcile made progress or the demand
    /// changed since — otherwise an idle-shutdown cycle when one is due, then
    /// the expiry sweep when due. Errors of the steps are collected in the
    /// report; only bad arguments fail the call.
    pub fn tick(
        &mut self,
        f: &Factory,
        target: &PoolTarget,
        policy: &ScalingPolicy,
        now_ms: Option<i64>,
    ) -> Result<TickReport> {
        policy.validate()?;
        let now = f.now(now_ms)?;
        let holder = self.options.holder.clone();
        let mut report = TickReport::new(&holder, now);

        let grant =
            match f.acquire_lease(CONTROL_LEASE, &holder, self.options.lease_ttl_ms, Some(now)) {
                Ok(g) => g,
                Err(e) => {
                    // Nothing is known about the lease: act on nothing, try again soon.
                    report.errors.push(format!("lease: {e}"));
                    report.next_tick_at = now.saturating_add(RETRY_BASE_MS);
                    report.finish();
                    return Ok(report);
                }
            };
        let Some(grant) = grant else {
            report.lost_lease = self.tenure.take().is_some();
            self.schedule = Schedule::default();
            self.standby(f, &mut report, now);
            report.finish();
            return Ok(report);
        };
        if self.tenure.as_ref().map(|t| t.token) != Some(grant.token) {
            report.took_over = true;
            self.schedule = Schedule::default();
        }
        report.acting = true;
        report.lease_holder = Some(grant.holder.clone());
        report.lease_token = Some(grant.token);
        report.lease_expires_at = Some(grant.expires_at);
        let token = grant.token;
        self.tenure = Some(grant);

        let lost = Cell::new(false);
        let fence = || {
            self.renew(f, token, now_ms).inspect_err(|e| {
                if matches!(e, Error::Conflict(_)) {
                    lost.set(true);
                }
            })
        };

        // Lease recovery: every tick, committed only under this tenure.
        report.ran.push(Step::Recovery);
        let cfg = f.config();
        match f.with_lease(CONTROL_LEASE, &holder, token, now, |tx| {
            release_expired_in(tx, &cfg, now, RECONCILE_RELEASE_LIMIT)
        }) {
            Ok(r) => report.released = Some(r),
            Err(e) => {
                if matches!(e, Error::Conflict(_)) {
                    lost.set(true);
                }
                report.errors.push(format!("recovery: {e}"));
            }
        }

        // Push dispatch: every tick, so a slot is sent within a tick of falling due.
        if !lost.get() {
            report.ran.push(Step::Push);
            match fence().and_then(|()| f.dispatch_due_push_jobs(Some(PUSH_LIMIT), Some(now))) {
                Ok(r) => report.push = Some(r),
                Err(e) => report.errors.push(format!("push: {e}")),
            }
        }

        let mut schedule = self.schedule.clone();
        let mut reconciled = false;
        if !lost.get() {
            match f.conversation_counts(Some(now)) {
                Ok(counts) => {
                    report.active_conversations = Some(counts.active);
                    let reason = reconcile_reason(&schedule, counts.active, policy, now);
                    schedule.seen_active = Some(counts.active);
                    if let Some(reason) = reason {
                        reconciled = true;
                        report.reconcile_reason = Some(reason);
                        report.ran.push(Step::Reconcile);
                        let out = cycle::run_collecting(
                            f,
                            CycleInput {
                                provider: target.provider.as_ref(),
                                settings: &target.settings,
                                policy,
                                workspace_id: &self.options.workspace_id,
                                now,
                                spawn: true,
                                fence: Some(&fence),
                            },
                        );
                        let interval = policy.reconcile_interval_ms;
                        match out {
                            Ok((r, spawn_error)) => {
                                schedule.memo = Some(CycleMemo {
                                    active_at_reconcile: counts.active,
                                    active_workers: r.active_workers,
                                    spawned: r.spawned,
                                    pending: r.pending,
                                    next_due_at: r.next_due_at,
                                    at: now,
                                });
                                // A reconcile includes every idle-shutdown step.
                                schedule.idle.succeeded(now);
                                match spawn_error {
                                    None => schedule.reconcile.succeeded(now),
                                    Some(e) => {
                                        schedule.reconcile.failed(now, interval);
                                        report.errors.push(format!("reconcile: {e}"));
                                    }
                                }
                                report.reconcile = Some(r);
                            }
                            Err(e) => {
                                // The idle check needs the same provider: it backs off too.
                                schedule.reconcile.failed(now, interval);
                                schedule
                                    .idle
                                    .failed(now, self.options.idle_check_interval_ms);
                                report.errors.push(format!("reconcile: {e}"));
                            }
                        }
                    }
                }
                Err(e) => report.errors.push(format!("demand: {e}")),
            }
        }

        if !lost.get() && !reconciled && idle_due(&schedule, policy, &self.options, now) {
            report.ran.push(Step::IdleShutdown);
            let out = cycle::run_collecting(
                f,
                CycleInput {
                    provider: target.provider.as_ref(),
                    settings: &target.settings,
                    policy,
                    workspace_id: &self.options.workspace_id,
                    now,
                    spawn: false,
                    fence: Some(&fence),
                },
            );
            match out {
                Ok((r, _)) => {
                    let memo = schedule.memo.get_or_insert_with(CycleMemo::default);
                    memo.active_workers = r.active_workers;
                    memo.pending = r.pending;
                    memo.next_due_at = r.next_due_at;
                    memo.at = now;
                    schedule.idle.succeeded(now);
                    report.idle_shutdown = Some(r);
                }
                Err(e) => {
                    schedule
                        .idle
                        .failed(now, self.options.idle_check_interval_ms);
                    report.errors.push(format!("idle_shutdown: {e}"));
                }
            }
        }

        if !lost.get() && schedule.sweep.due(now, self.options.sweep_interval_ms) {
            report.ran.push(Step::Sweep);
            let swept = fence()
                .and_then(|()| f.expire_old_snapshots(SWEEP_LIMIT, Some(now)))
                .and_then(|snapshots| {
                    report.expiry = Some(snapshots);
                    fence()?;
                    f.expire_old_telegram_attachments(SWEEP_LIMIT, Some(now))
                });
            match swept {
                Ok(e) => {
                    schedule.sweep.succeeded(now);
                    report.attachment_expiry = Some(e);
                }
                Err(e) => {
                    schedule.sweep.failed(now, self.options.sweep_interval_ms);
                    report.errors.push(format!("sweep: {e}"));
                }
            }
        }

        if lost.get() {
            // Another loop acts now; this one starts over if it ever gets the lease back.
            report.lost_lease = true;
            report.acting = false;
            self.tenure = None;
            self.schedule = Schedule::default();
            self.standby(f, &mut report, now);
        } else {
            self.schedule = schedule;
            report.next_tick_at = self.next_tick_at(policy, now);
        }
        report.finish();
        Ok(report)
    }

    /// Fill in who holds the lease, and when this standby loop should look again.
    fn standby(&self, f: &Factory, report: &mut TickReport, now: i64) {
        let renew = now.saturating_add(self.options.lease_ttl_ms / 3);
        report.next_tick_at = renew;
        match f.get_lease(CONTROL_LEASE) {
            Ok(Some(g)) if g.expires_at > now => {
                report.lease_holder = Some(g.holder);
                report.lease_expires_at = Some(g.expires_at);
                report.next_tick_at = renew.min(g.expires_at);
            }
            Ok(_) => {}
            Err(e) => report.errors.push(format!("lease: {e}")),
        }
    }

    /// The earliest time something falls due, bounded by the lease renewal.
    fn next_tick_at(&self, policy: &ScalingPolicy, now: i64) -> i64 {
        let s = &self.schedule;
        let mut next = now.saturating_add(self.options.lease_ttl_ms / 3);
        next = next.min(s.reconcile.due_at(policy.reconcile_interval_ms));
        next = next.min(s.sweep.due_at(self.options.sweep_interval_ms));
        next = next.min(idle_due_at(s, policy, &self.options));
        next.max(now)
    }

    /// Give the lease up (if held) so another loop can take over at once.
    pub fn stop(&mut self, f: &Factory) -> Result<bool> {
        self.schedule = Schedule::default();
        match self.tenure.take() {
            Some(t) => f.release_lease(CONTROL_LEASE, &t.holder, t.token),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests;
