//! One pool cycle, step by step (spec §5.4), under the cycle lock.
//!
//! Invariants: each step re-reads the worker rows it acts on (earlier steps
//! and the workers themselves may have changed them); the machine listing is
//! read once, before any decision, and a failed listing ends the cycle before
//! anything is decided from it; before every provider-heavy step the cycle
//! checks that it still holds the lock, and that the caller's fence (the
//! control loop's lease, when a loop runs the cycle) still admits it.

use std::collections::BTreeSet;

use super::env::forwarded_openclaw_env;
use super::idle::{self, Draining};
use super::lock::{CycleLock, LOCK_WAIT};
use super::provider_state;
use super::rows::{self, DrainGuard};
use super::scaling::{self, is_fresh_active};
use super::spawn::{spawn_one, SpawnContext};
use super::teardown::{Teardown, TeardownResult};
use super::{PoolReport, PoolSettings, ACTIVE_CONVERSATION_LIMIT, RECONCILE_RELEASE_LIMIT};
use crate::config::ScalingPolicy;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::metrics::{self, target, Counter};
use crate::providers::{Machine, Provider};
use crate::workers::{Worker, WorkerStatus};

/// Inputs of one cycle.
pub(super) struct CycleInput<'a> {
    pub provider: &'a dyn Provider,
    pub settings: &'a PoolSettings,
    pub policy: &'a ScalingPolicy,
    pub workspace_id: &'a str,
    pub now: i64,
    /// Reconcile (lease recovery and spawning) rather than an idle check.
    pub spawn: bool,
    /// Checked with the lock before the cycle starts and before every
    /// provider-heavy step; an error stops the cycle there.
    pub fence: Option<&'a dyn Fn() -> Result<()>>,
}

/// The cycle may go on: it still holds the lock and the caller's fence admits it.
fn ensure_admitted(lock: &CycleLock, fence: Option<&dyn Fn() -> Result<()>>) -> Result<()> {
    lock.ensure_held()?;
    match fence {
        Some(check) => check(),
        None => Ok(()),
    }
}

/// Listed machines that no running row knows by id or name.
pub(super) fn untracked(machines: &[Machine], rows: &[Worker]) -> Vec<String> {
    machines
        .iter()
        .filter(|m| {
            !rows
                .iter()
                .any(|w| w.machine_id.as_deref() == Some(m.id.as_str()) || w.worker_id == m.name)
        })
        .map(|m| m.id.clone())
        .collect()
}

fn load(f: &Factory, app: &str) -> Result<Vec<Worker>> {
    f.store.read(|tx| rows::running_in_scope(tx, app))
}

/// One cycle; a spawn failure (the rest of the cycle ran) is the error.
pub(super) fn run(f: &Factory, input: CycleInput<'_>) -> Result<PoolReport> {
    match run_collecting(f, input)? {
        (report, None) => Ok(report),
        (_, Some(spawn_error)) => Err(spawn_error),
    }
}

/// One cycle; the report comes back together with the spawn failure, if any
/// (other errors end the cycle and are returned as the error).
pub(super) fn run_collecting(
    f: &Factory,
    input: CycleInput<'_>,
) -> Result<(PoolReport, Option<Error>)> {
    let CycleInput {
        provider,
        settings,
        policy,
        workspace_id,
        now,
        spawn,
        fence,
    } = input;
    policy.validate()?;
    let lock = CycleLock::acquire(&f.store, LOCK_WAIT)?;
    ensure_admitted(&lock, fence)?;
    let stale = f.config().lease.stale_after_ms;
    let app = provider.app_name().to_string();
    let mut report = PoolReport::default();
    let mut spawn_errors: Vec<Error> = Vec::new();

    if spawn {
        report.released = Some(f.release_stuck_jobs(RECONCILE_RELEASE_LIMIT, Some(now))?);
    }

    let machines = provider
        .list_machines()
        .map_err(|e| Error::from(e).with_context(&format!("listing the machines of {app}")))?;

    // Provider state: machines that stopped or vanished, stale heartbeats, lost creates.
    let drained = provider_state::apply(f, &load(f, &app)?, &machines, &app, now, stale)?;
    report.drained_worker_ids.extend(drained);

    f.store
        .write(|tx| rows::backfill(tx, &app, policy.idle_timeout_ms))?;

    if spawn {
        let rows_now = load(f, &app)?;
        let active = f.active_conversations(ACTIVE_CONVERSATION_LIMIT, Some(now))?;
        let plan = scaling::plan(&active, &rows_now, policy, now, stale);
        report.desired_workers = plan.desired;
        for id in &plan.reclaim {
            let Some(w) = rows_now.iter().find(|w| &w.worker_id == id) else {
                continue;
            };
            let guard = DrainGuard::IdleHeartbeat(w.heartbeat_at);
            if f.store
                .write(|tx| rows::drain(tx, id, now, "capacity", guard))?
            {
                report.drained_worker_ids.push(id.clone());
            }
        }
        if !plan.targets.is_empty() {
            match settings.check_spawnable() {
                Err(e) => spawn_errors.push(e),
                Ok(()) => {
                    let forwarded = forwarded_openclaw_env(f)?;
                    let ctx = SpawnContext {
                        f,
                        provider,
                        settings,
                        policy,
                        workspace_id,
                        forwarded: &forwarded,
                        now,
                    };
                    let mut taken: BTreeSet<String> =
                        machines.iter().map(|m| m.name.clone()).collect();
                    for (index, (agent_key, conversation_id)) in plan.targets.iter().enumerate() {
                        ensure_admitted(&lock, fence)?;
                        match spawn_one(&ctx, index, &mut taken, agent_key, conversation_id)? {
                            Ok(id) => {
                                metrics::incr(Counter::WorkersSpawned);
                                log::info!(
                                    target: target::POOL,
                                    "spawned worker {id} on {app} for conversation {conversation_id} (agent {agent_key})"
                                );
                                report.spawned_worker_ids.push(id);
                            }
                            Err(failure) => {
                                log::error!(
                                    target: target::POOL,
                                    "spawn of worker {} on {app} for conversation {conversation_id} failed: {}",
                                    failure.worker_id,
                                    failure.message
                                );
                                let state = if failure.rolled_back {
                                    "rolled back: worker stopped, volume deleted"
                                } else {
                                    "rollback continues next cycle"
                                };
                                spawn_errors.push(Error::Provider(format!(
                                    "spawn of worker {} failed ({state}): {}",
                                    failure.worker_id, failure.message
                                )));
                            }
                        }
                    }
                }
            }
        }
    }

    // Idle shutdown: idle-due active workers drain (and are never reactivated).
    let rows_now = load(f, &app)?;
    let due = idle::idle_due(&rows_now, now);
    report.checked += due.len() as i64;
    for w in due {
        if f.store
            .write(|tx| rows::drain(tx, &w.worker_id, now, "idle_timeout", DrainGuard::IdleDue))?
        {
            report.drained_worker_ids.push(w.worker_id.clone());
        }
    }

    // Drain progress: final snapshot ready (or not needed), or timed out.
    let mut drain_deadline: Option<i64> = None;
    for w in load(f, &app)?
        .iter()
        .filter(|w| w.status == WorkerStatus::Draining)
    {
        match idle::draining_state(f, w, now, policy.drain_timeout_ms)? {
            Draining::Ready => {
                if f.store
                    .write(|tx| rows::stop(tx, &w.worker_id, now, None, None))?
                {
                    log::info!(
                        target: target::POOL,
                        "worker {} drained (final snapshot ready): stopping",
                        w.worker_id
                    );
                }
            }
            Draining::TimedOut => {
                let observed = Some(w.heartbeat_at);
                let stopped = f.store.write(|tx| {
                    rows::stop(tx, &w.worker_id, now, Some("drain_timeout"), observed)
                })?;
                if stopped {
                    log::warn!(
                        target: target::POOL,
                        "worker {} sent no final snapshot within {} ms: stopping without one",
                        w.worker_id,
                        policy.drain_timeout_ms
                    );
                    report.warnings.push(format!(
                        "worker {} sent no final snapshot within {} ms; tearing it down without one",
                        w.worker_id, policy.drain_timeout_ms
                    ));
                }
            }
            Draining::Waiting { deadline } => {
                report.checked += 1;
                report.pending += 1;
                drain_deadline = Some(drain_deadline.map_or(deadline, |d| d.min(deadline)));
            }
        }
    }

    // Teardown of stopping workers, oldest stop first.
    let rows_now = load(f, &app)?;
    let mut stopping: Vec<&Worker> = rows_now
        .iter()
        .filter(|w| w.status == WorkerStatus::Stopping)
        .collect();
    stopping.sort_by_key(|w| (w.stopped_at, w.worker_id.clone()));
    report.checked += stopping.len() as i64;
    let mut teardown = Teardown::new(f, provider, &machines, &settings.volume_name, &rows_now);
    for w in stopping {
        ensure_admitted(&lock, fence)?;
        match teardown.run(w)? {
            TeardownResult::Done => {
                metrics::incr(Counter::WorkersTornDown);
                log::info!(
                    target: target::POOL,
                    "worker {} torn down (machine {}, volume {})",
                    w.worker_id,
                    w.machine_id.as_deref().unwrap_or("-"),
                    w.volume_id.as_deref().unwrap_or("-")
                );
                report.torn_down_worker_ids.push(w.worker_id.clone());
            }
            TeardownResult::Pending(msg) => {
                report.pending += 1;
                report
                    .warnings
                    .push(format!("worker {}: {msg}", w.worker_id));
            }
            TeardownResult::Failed(msg) => {
                log::error!(target: target::POOL, "teardown of worker {} failed: {msg}", w.worker_id);
                report.pending += 1;
                report.errors.push(format!("worker {}: {msg}", w.worker_id));
            }
        }
    }
    report.warnings.append(&mut teardown.warnings);

    let rows_now = load(f, &app)?;
    report.active_workers = rows_now
        .iter()
        .filter(|w| is_fresh_active(w, now, stale))
        .count() as i64;
    report.next_due_at = match (idle::next_idle_shutdown(&rows_now, now), drain_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    report.untracked_machines = untracked(&machines, &rows_now);
    report.spawned = report.spawned_worker_ids.len() as i64;
    report.terminated = report.drained_worker_ids.len() as i64;
    report.torn_down = report.torn_down_worker_ids.len() as i64;
    drop(lock);
    let spawn_error = match spawn_errors.len() {
        0 => None,
        1 => Some(spawn_errors.remove(0)),
        _ => Some(Error::Provider(
            spawn_errors
                .iter()
                .map(Error::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )),
    };
    Ok((report, spawn_error))
}
