//! Worker-row reads and the pool's guarded lifecycle writes.
//!
//! Invariants:
//! - every write is one short transaction that runs no provider call;
//! - every transition is a compare-and-set on the state the decision was made
//!   from (status, and the heartbeat or idle condition observed): if a worker
//!   claimed, heartbeated or moved on since, the write changes nothing and the
//!   next cycle decides again; statuses only move forward;
//! - entering `draining` refreshes `heartbeat_at` (the drain's start, from
//!   which the drain timeout runs) and, for a worker that ever claimed a job,
//!   forgets `last_snapshot_id`, so only a snapshot finalized during the drain
//!   counts as its final snapshot;
//! - `stopped` clears the machine and volume references and keeps the heartbeat.

use rusqlite::{params, OptionalExtension};

use super::naming::spawned_worker_id;
use crate::error::{Error, Result};
use crate::ids;
use crate::store::Tx;
use crate::workers::{self, Worker, COLUMNS};

/// Indexes tried before giving up on finding a free spawned worker id.
const MAX_ID_PROBES: usize = 10_000;

/// Running rows (active, draining, stopping) in the scope of `app`: rows with
/// no app, or this app. Oldest first.
pub(crate) fn running_in_scope(tx: &Tx, app: &str) -> Result<Vec<Worker>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM workers WHERE status IN ('active', 'draining', 'stopping')
         AND (app_name IS NULL OR app_name = ?1) ORDER BY created_at, worker_id"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([app], workers::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Why and under which observed condition a worker is drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DrainGuard {
    /// Idle: no load and the idle shutdown time has passed.
    IdleDue,
    /// The heartbeat is still the one observed (no sign of life since).
    Heartbeat(i64),
    /// Idle and the heartbeat is still the one observed (capacity reclaim).
    IdleHeartbeat(i64),
}

/// `active → draining`; false when the guard no longer holds.
pub(crate) fn drain(
    tx: &Tx,
    worker_id: &str,
    now: i64,
    reason: &str,
    guard: DrainGuard,
) -> Result<bool> {
    let (idle_due, idle, observed) = match guard {
        DrainGuard::IdleDue => (true, true, None),
        DrainGuard::Heartbeat(hb) => (false, false, Some(hb)),
        DrainGuard::IdleHeartbeat(hb) => (false, true, Some(hb)),
    };
    let n = tx
        .prepare_cached(
            "UPDATE workers SET status = 'draining', heartbeat_at = max(heartbeat_at, ?2), stop_reason = ?3,
               last_snapshot_id = CASE WHEN last_claim_at IS NULL THEN last_snapshot_id END
             WHERE worker_id = ?1 AND status = 'active'
               AND (NOT ?4 OR (scheduled_shutdown_at IS NOT NULL AND scheduled_shutdown_at <= ?2))
               AND (NOT ?5 OR load = 0)
               AND (?6 IS NULL OR heartbeat_at = ?6)",
        )?
        .execute(params![worker_id, now, reason, idle_due, idle, observed])?;
    if n > 0 {
        crate::metrics::incr(crate::metrics::Counter::WorkersDrained);
        crate::metrics::event(log::Level::Info, crate::metrics::target::POOL, || {
            format!("worker {worker_id} draining ({reason})")
        });
    }
    Ok(n > 0)
}

/// `draining → stopping` (`stopped_at` set once); with `observed_heartbeat`,
/// only if the worker showed no sign of life since. A `reason` replaces the
/// recorded stop reason.
pub(crate) fn stop(
    tx: &Tx,
    worker_id: &str,
    now: i64,
    reason: Option<&str>,
    observed_heartbeat: Option<i64>,
) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "UPDATE workers SET status = 'stopping', stopped_at = coalesce(stopped_at, ?2),
               stop_reason = coalesce(?3, stop_reason)
             WHERE worker_id = ?1 AND status = 'draining' AND (?4 IS NULL OR heartbeat_at = ?4)",
        )?
        .execute(params![worker_id, now, reason, observed_heartbeat])?;
    Ok(n > 0)
}

/// `stopping → stopped`, forgetting the machine and the volume.
pub(crate) fn finish(tx: &Tx, worker_id: &str) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "UPDATE workers SET status = 'stopped', machine_id = NULL, app_name = NULL, region = NULL,
               volume_id = NULL
             WHERE worker_id = ?1 AND status = 'stopping'",
        )?
        .execute([worker_id])?;
    Ok(n > 0)
}

/// Idle active workers in scope without a shutdown time get
/// `(last_claim_at ?? heartbeat_at) + idle_timeout_ms`; returns how many.
pub(crate) fn backfill(tx: &Tx, app: &str, idle_timeout_ms: i64) -> Result<usize> {
    Ok(tx
        .prepare_cached(
            "UPDATE workers SET scheduled_shutdown_at = coalesce(last_claim_at, heartbeat_at) + ?2
             WHERE status = 'active' AND load = 0 AND scheduled_shutdown_at IS NULL
               AND (app_name IS NULL OR app_name = ?1)",
        )?
        .execute(params![app, idle_timeout_ms])?)
}

/// A worker to register before its machine is created.
#[derive(Debug, Clone)]
pub(crate) struct Preregistration<'a> {
    /// Provider kind recorded on the row (`fly`, `local`).
    pub provider_kind: &'a str,
    /// Provider app (puts the row in scope before it has a machine).
    pub app_name: &'a str,
    /// First index to try in `afw-<now>-<index>`.
    pub index: usize,
    /// Names that must not be used (live machine names of the app).
    pub taken: &'a std::collections::BTreeSet<String>,
    /// Pre-assigned conversation.
    pub agent_key: &'a str,
    /// Pre-assigned conversation.
    pub conversation_id: &'a str,
    /// Idle timeout of the policy.
    pub idle_timeout_ms: i64,
    /// Registration time.
    pub now: i64,
}

/// Register a pre-assigned active worker under a fresh `afw-<now>-<i>` id: the
/// first index from `p.index` that no row and no live machine uses. Runs in
/// one write transaction, so concurrent registrations never share an id.
pub(crate) fn preregister(tx: &Tx, p: &Preregistration<'_>) -> Result<String> {
    let mut exists = tx.prepare_cached("SELECT 1 FROM workers WHERE worker_id = ?1")?;
    let mut chosen = None;
    for index in p.index..p.index + MAX_ID_PROBES {
        let id = spawned_worker_id(p.now, index);
        if !p.taken.contains(&id) && exists.query_row([&id], |_| Ok(())).optional()?.is_none() {
            chosen = Some(id);
            break;
        }
    }
    drop(exists);
    let id = chosen.ok_or_else(|| {
        Error::conflict(format!(
            "no free worker id afw-{}-<i> for i in {}..{}",
            p.now,
            p.index,
            p.index + MAX_ID_PROBES
        ))
    })?;
    tx.prepare_cached(
        "INSERT INTO workers(worker_id, provider, mode, status, load, heartbeat_at, scheduled_shutdown_at, app_name,
           assignment_conversation_id, assignment_agent_key, assignment_lease_id, assignment_assigned_at, created_at)
         VALUES (?1, ?2, 'sticky', 'active', 0, ?3, ?4, ?5, ?6, ?7, ?8, ?3, ?3)",
    )?
    .execute(params![
        id,
        p.provider_kind,
        p.now,
        p.now + p.idle_timeout_ms,
        p.app_name,
        p.conversation_id,
        p.agent_key,
        ids::spawn_lease_id(&id),
    ])?;
    Ok(id)
}

/// Record the worker's dedicated volume.
pub(crate) fn record_volume(tx: &Tx, worker_id: &str, volume_id: &str) -> Result<()> {
    tx.prepare_cached("UPDATE workers SET volume_id = ?2 WHERE worker_id = ?1")?
        .execute(params![worker_id, volume_id])?;
    Ok(())
}

/// Record the worker's machine (whatever its status: teardown must find it).
pub(crate) fn record_machine(
    tx: &Tx,
    worker_id: &str,
    machine_id: &str,
    app_name: &str,
    region: &str,
) -> Result<()> {
    let region = Some(region).filter(|r| !r.is_empty());
    tx.prepare_cached(
        "UPDATE workers SET machine_id = ?2, app_name = ?3, region = coalesce(?4, region) WHERE worker_id = ?1",
    )?
    .execute(params![worker_id, machine_id, app_name, region])?;
    Ok(())
}

/// Whether `snapshot_id` names a `ready` snapshot.
pub(crate) fn snapshot_ready(tx: &Tx, snapshot_id: &str) -> Result<bool> {
    let status: Option<String> = tx
        .prepare_cached("SELECT status FROM snapshots WHERE snapshot_id = ?1")?
        .query_row([snapshot_id], |r| r.get(0))
        .optional()?;
    Ok(status.as_deref() == Some("ready"))
}
