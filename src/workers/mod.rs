//! The worker registry: rows, lifecycle writes, control state and load bookkeeping.
//!
//! Invariants:
//! - status changes follow [`lifecycle`]; a stopped worker keeps the heartbeat it
//!   had when it last ran;
//! - `load` counts the messages a worker holds; `scheduled_shutdown_at` is set when
//!   load drops to zero (`last_claim_at + idle_timeout`) and cleared by a claim;
//! - a sticky worker's `assignment` names the conversation it owns; it survives
//!   complete/fail and is cleared when lease recovery takes its last message.

pub mod heartbeat;
pub mod lifecycle;

use std::sync::LazyLock;

use rusqlite::{params, OptionalExtension, Row};

use crate::error::{column_error, Error, Result};
use crate::factory::Factory;
use crate::store::Tx;
pub use lifecycle::{WorkerMode, WorkerStatus};

/// A worker's claim on one conversation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// Owned conversation.
    pub conversation_id: String,
    /// Agent of that conversation.
    pub agent_key: String,
    /// Lease of the latest message (or `spawn:<workerId>` before the first).
    pub lease_id: String,
    /// When the worker first took the conversation.
    pub assigned_at: i64,
}

/// A worker row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Worker {
    /// Id.
    pub worker_id: String,
    /// `local`, `fly`, …
    pub provider: String,
    /// Sticky or pooled.
    pub mode: WorkerMode,
    /// Lifecycle status.
    pub status: WorkerStatus,
    /// Messages held.
    pub load: i64,
    /// Last sign of life.
    pub heartbeat_at: i64,
    /// Last successful claim.
    pub last_claim_at: Option<i64>,
    /// When an idle worker is due to drain.
    pub scheduled_shutdown_at: Option<i64>,
    /// When it entered stopping/stopped.
    pub stopped_at: Option<i64>,
    /// Why it was stopped.
    pub stop_reason: Option<String>,
    /// Final snapshot.
    pub last_snapshot_id: Option<String>,
    /// Provider machine id.
    pub machine_id: Option<String>,
    /// Provider app.
    pub app_name: Option<String>,
    /// Provider region.
    pub region: Option<String>,
    /// Provider volume.
    pub volume_id: Option<String>,
    /// Owned conversation (sticky workers).
    pub assignment: Option<Assignment>,
    /// Registration time.
    pub created_at: i64,
}

/// How an upsert treats the assignment.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AssignmentUpdate {
    /// Leave it as stored.
    #[default]
    Keep,
    /// Remove it.
    Clear,
    /// Replace it.
    Set(Assignment),
}

/// Input of [`Factory::upsert_worker_state`].
#[derive(Debug, Clone, Default)]
pub struct WorkerStateInput {
    /// Id.
    pub worker_id: String,
    /// Provider name.
    pub provider: String,
    /// Target status (parsed).
    pub status: String,
    /// Load.
    pub load: i64,
    /// Mode for a new row (`None` = sticky); existing rows keep theirs.
    pub mode: Option<WorkerMode>,
    /// Idle shutdown time (`None` keeps the stored one).
    pub scheduled_shutdown_at: Option<i64>,
    /// Stop time for stopping/stopped.
    pub stopped_at: Option<i64>,
    /// Provider machine id (needs `app_name` too).
    pub machine_id: Option<String>,
    /// Provider app.
    pub app_name: Option<String>,
    /// Provider region.
    pub region: Option<String>,
    /// Provider volume.
    pub volume_id: Option<String>,
    /// Assignment change.
    pub assignment: AssignmentUpdate,
    /// Forget the final snapshot.
    pub clear_last_snapshot_id: bool,
    /// Forget the machine.
    pub clear_machine_ref: bool,
    /// Forget the volume.
    pub clear_volume_id: bool,
    /// Why it stops (recorded on stopping/stopped).
    pub stop_reason: Option<String>,
}

/// Why a worker should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// No such worker.
    Unknown,
    /// Draining.
    Draining,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
    /// Idle shutdown time has passed.
    OverdueShutdown,
    /// Heartbeat older than `stale_after_ms`.
    StaleHeartbeat,
}

impl StopReason {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Unknown => "unknown",
            StopReason::Draining => "draining",
            StopReason::Stopping => "stopping",
            StopReason::Stopped => "stopped",
            StopReason::OverdueShutdown => "overdue_shutdown",
            StopReason::StaleHeartbeat => "stale_heartbeat",
        }
    }
}

/// What a worker should do now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ControlState {
    /// The worker should finish and exit.
    pub should_stop: bool,
    /// The first reason, if any.
    pub reason: Option<StopReason>,
    /// Every reason that applies.
    pub reasons: Vec<StopReason>,
    /// Current status (`None` for an unknown worker).
    pub status: Option<WorkerStatus>,
}

/// Counts over active workers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerStats {
    /// Active workers holding messages.
    pub active_count: i64,
    /// Active workers holding none.
    pub idle_count: i64,
    /// Workers by status.
    pub by_status: Vec<(String, i64)>,
}

/// Check a worker id.
pub fn validate_worker_id(worker_id: &str) -> Result<()> {
    crate::validate::identifier("workerId", worker_id, 128, false)
}

/// How long a spawned worker may take to start before its idle time counts:
/// until its first contact its shutdown time is extended by this much.
pub const STARTUP_GRACE_MS: i64 = 90_000;

impl Worker {
    /// Whether the worker is a pool-spawned worker (pre-assigned with its
    /// `spawn:<id>` lease) that has not been heard from since it was registered:
    /// one still starting.
    pub fn never_contacted(&self) -> bool {
        self.last_claim_at.is_none()
            && self.heartbeat_at == self.created_at
            && self
                .assignment
                .as_ref()
                .is_some_and(|a| a.lease_id == crate::ids::spawn_lease_id(&self.worker_id))
    }

    /// When the worker's idle shutdown falls due: its shutdown time, plus
    /// [`STARTUP_GRACE_MS`] while it has never been heard from (its idle clock
    /// starts at its first contact, see `touch_in`).
    pub fn idle_deadline(&self) -> Option<i64> {
        let grace = if self.never_contacted() {
            STARTUP_GRACE_MS
        } else {
            0
        };
        self.scheduled_shutdown_at.map(|t| t.saturating_add(grace))
    }
}

pub(crate) const COLUMNS: &str = "worker_id, provider, mode, status, load, heartbeat_at, last_claim_at, scheduled_shutdown_at, \
    stopped_at, stop_reason, last_snapshot_id, machine_id, app_name, region, volume_id, assignment_conversation_id, \
    assignment_agent_key, assignment_lease_id, assignment_assigned_at, created_at";

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Worker> {
    let mode: String = r.get(2)?;
    let status: String = r.get(3)?;
    let assignment = match (
        r.get::<_, Option<String>>(15)?,
        r.get::<_, Option<String>>(16)?,
    ) {
        (Some(conversation_id), Some(agent_key)) => Some(Assignment {
            conversation_id,
            agent_key,
            lease_id: r.get::<_, Option<String>>(17)?.unwrap_or_default(),
            assigned_at: r.get::<_, Option<i64>>(18)?.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(Worker {
        worker_id: r.get(0)?,
        provider: r.get(1)?,
        mode: WorkerMode::parse(&mode).map_err(|e| column_error(2, e))?,
        status: WorkerStatus::parse(&status).map_err(|e| column_error(3, e))?,
        load: r.get(4)?,
        heartbeat_at: r.get(5)?,
        last_claim_at: r.get(6)?,
        scheduled_shutdown_at: r.get(7)?,
        stopped_at: r.get(8)?,
        stop_reason: r.get(9)?,
        last_snapshot_id: r.get(10)?,
        machine_id: r.get(11)?,
        app_name: r.get(12)?,
        region: r.get(13)?,
        volume_id: r.get(14)?,
        assignment,
        created_at: r.get(19)?,
    })
}

/// Load a worker inside a transaction.
pub(crate) fn get_in(tx: &Tx, worker_id: &str) -> Result<Option<Worker>> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {COLUMNS} FROM workers WHERE worker_id = ?1"));
    Ok(tx
        .prepare_cached(&SQL)?
        .query_row([worker_id], from_row)
        .optional()?)
}

/// Compute the control state of a (possibly missing) worker.
pub fn control_state_of(worker: Option<&Worker>, now: i64, stale_after_ms: i64) -> ControlState {
    let mut reasons = Vec::new();
    match worker {
        None => reasons.push(StopReason::Unknown),
        Some(w) => {
            match w.status {
                WorkerStatus::Active => {}
                WorkerStatus::Draining => reasons.push(StopReason::Draining),
                WorkerStatus::Stopping => reasons.push(StopReason::Stopping),
                WorkerStatus::Stopped => reasons.push(StopReason::Stopped),
            }
            if w.idle_deadline().is_some_and(|t| t <= now) {
                reasons.push(StopReason::OverdueShutdown);
            }
            if w.heartbeat_at <= now - stale_after_ms {
                reasons.push(StopReason::StaleHeartbeat);
            }
        }
    }
    ControlState {
        should_stop: !reasons.is_empty(),
        reason: reasons.first().copied(),
        reasons,
        status: worker.map(|w| w.status),
    }
}

/// Refresh an active worker's heartbeat (a sign of life while idle).
///
/// A spawned worker's first contact (pre-assigned, neither heard from nor
/// claimed yet; see [`Worker::never_contacted`]) starts its idle clock: the shutdown time set at registration
/// moves by the time the worker took to start, so a slow start is not counted
/// as idleness.
pub(crate) fn touch_in(tx: &Tx, worker_id: &str, now: i64) -> Result<bool> {
    let n = tx
        .prepare_hot(
            "UPDATE workers SET heartbeat_at = ?2,
               scheduled_shutdown_at = CASE WHEN heartbeat_at = created_at AND last_claim_at IS NULL
                                                 AND assignment_lease_id = 'spawn:' || worker_id
                                            THEN scheduled_shutdown_at + (?2 - created_at)
                                            ELSE scheduled_shutdown_at END
             WHERE worker_id = ?1 AND status = 'active' AND heartbeat_at < ?2",
        )?
        .execute(params![worker_id, now])?;
    Ok(n > 0)
}

/// Bookkeeping after a worker gives a message back (complete, fail or lease recovery).
///
/// `load` drops by one; when it reaches zero the idle shutdown time is set from the
/// last claim. `refresh_heartbeat` is false for lease recovery: a worker whose
/// lease expired must not look alive because of it. `clear_assignment_for` clears
/// a sticky assignment on that conversation once the worker holds nothing.
pub(crate) fn release_load(
    tx: &Tx,
    worker_id: &str,
    now: i64,
    idle_timeout_ms: i64,
    refresh_heartbeat: bool,
    clear_assignment_for: Option<&str>,
) -> Result<()> {
    tx.prepare_hot(
        "UPDATE workers SET
           load = max(0, load - 1),
           heartbeat_at = CASE WHEN ?3 AND status <> 'stopped' THEN max(heartbeat_at, ?2) ELSE heartbeat_at END,
           scheduled_shutdown_at = CASE WHEN load - 1 > 0 THEN NULL
                                        ELSE coalesce(scheduled_shutdown_at, coalesce(last_claim_at, ?2) + ?4) END,
           assignment_conversation_id = CASE WHEN load - 1 <= 0 AND assignment_conversation_id = ?5 THEN NULL ELSE assignment_conversation_id END,
           assignment_agent_key = CASE WHEN load - 1 <= 0 AND assignment_conversation_id = ?5 THEN NULL ELSE assignment_agent_key END,
           assignment_lease_id = CASE WHEN load - 1 <= 0 AND assignment_conversation_id = ?5 THEN NULL ELSE assignment_lease_id END,
           assignment_assigned_at = CASE WHEN load - 1 <= 0 AND assignment_conversation_id = ?5 THEN NULL ELSE assignment_assigned_at END
         WHERE worker_id = ?1 AND status <> 'stopped'",
    )?
    .execute(params![worker_id, now, refresh_heartbeat, idle_timeout_ms, clear_assignment_for])?;
    Ok(())
}

impl Factory {
    /// Create or update a worker row, enforcing the lifecycle.
    pub fn upsert_worker_state(
        &self,
        input: WorkerStateInput,
        now_ms: Option<i64>,
    ) -> Result<Worker> {
        validate_worker_id(&input.worker_id)?;
        let provider = input.provider.trim();
        if provider.is_empty() || provider.len() > 64 {
            return Err(Error::validation(format!(
                "provider {:?} must be 1-64 characters",
                input.provider
            )));
        }
        let status = WorkerStatus::parse(&input.status)?;
        if input.load < 0 {
            return Err(Error::validation(format!(
                "load must be >= 0, got {}",
                input.load
            )));
        }
        if let AssignmentUpdate::Set(a) = &input.assignment {
            let checked = crate::queue::conversations::validate_conversation_id(&a.conversation_id)
                .and_then(|_| crate::agents::validate_agent_key(&a.agent_key))
                .and_then(|_| crate::validate::text("leaseId", &a.lease_id, 200))
                .and_then(|_| crate::validate::timestamp("assignedAt", Some(a.assigned_at)));
            checked.map_err(|e| Error::validation(format!("assignment: {e}")))?;
        }
        crate::validate::timestamp("scheduledShutdownAt", input.scheduled_shutdown_at)?;
        crate::validate::timestamp("stoppedAt", input.stopped_at)?;
        if let Some(r) = &input.stop_reason {
            crate::validate::optional_text("stopReason", r, 1000)?;
        }
        for (field, v) in [
            ("machineId", &input.machine_id),
            ("appName", &input.app_name),
            ("region", &input.region),
            ("volumeId", &input.volume_id),
        ] {
            if let Some(v) = v {
                crate::validate::text(field, v, 200)?;
            }
        }
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let existing = get_in(tx, &input.worker_id)?;
            let stop_time = |old: Option<i64>| match status {
                WorkerStatus::Stopping | WorkerStatus::Stopped => {
                    Some(input.stopped_at.or(old).unwrap_or(now))
                }
                _ => None,
            };
            let machine = input.machine_id.is_some() && input.app_name.is_some();
            let mut w = match existing {
                None => Worker {
                    worker_id: input.worker_id.clone(),
                    provider: provider.to_string(),
                    mode: input.mode.unwrap_or(WorkerMode::Sticky),
                    status,
                    load: input.load,
                    heartbeat_at: now,
                    last_claim_at: None,
                    scheduled_shutdown_at: input.scheduled_shutdown_at,
                    stopped_at: stop_time(None),
                    stop_reason: input.stop_reason.clone(),
                    last_snapshot_id: None,
                    machine_id: input.machine_id.clone().filter(|_| machine),
                    app_name: input.app_name.clone().filter(|_| machine),
                    region: input.region.clone().filter(|_| machine),
                    volume_id: input.volume_id.clone(),
                    assignment: None,
                    created_at: now,
                },
                Some(old) => {
                    if !old.status.can_transition(status) {
                        return Err(Error::invalid_state(format!(
                            "Worker '{}' cannot transition from '{}' to '{}'.",
                            old.worker_id,
                            old.status.as_str(),
                            status.as_str()
                        )));
                    }
                    let mut w = old.clone();
                    w.provider = provider.to_string();
                    w.status = status;
                    w.load = input.load;
                    if status.is_running() {
                        w.heartbeat_at = now;
                    }
                    w.scheduled_shutdown_at =
                        input.scheduled_shutdown_at.or(old.scheduled_shutdown_at);
                    w.stopped_at = stop_time(old.stopped_at);
                    if input.stop_reason.is_some() {
                        w.stop_reason = input.stop_reason.clone();
                    }
                    if input.clear_last_snapshot_id {
                        w.last_snapshot_id = None;
                    }
                    w.volume_id = if input.clear_volume_id {
                        None
                    } else {
                        input.volume_id.clone().or(old.volume_id)
                    };
                    if input.clear_machine_ref {
                        (w.machine_id, w.app_name, w.region) = (None, None, None);
                    } else if machine {
                        (w.machine_id, w.app_name, w.region) = (
                            input.machine_id.clone(),
                            input.app_name.clone(),
                            input.region.clone(),
                        );
                    }
                    w
                }
            };
            match &input.assignment {
                AssignmentUpdate::Keep => {}
                AssignmentUpdate::Clear => w.assignment = None,
                AssignmentUpdate::Set(a) => w.assignment = Some(a.clone()),
            }
            write_worker(tx, &w)?;
            Ok(w)
        })
    }

    /// A worker, or `None`.
    pub fn get_worker(&self, worker_id: &str) -> Result<Option<Worker>> {
        validate_worker_id(worker_id)?;
        self.store.read(|tx| get_in(tx, worker_id))
    }

    /// Workers, optionally of one status, newest first.
    pub fn list_workers(&self, status: Option<&str>, limit: i64) -> Result<Vec<Worker>> {
        let status = status
            .map(WorkerStatus::parse)
            .transpose()?
            .map(WorkerStatus::as_str);
        if !(1..=100_000).contains(&limit) {
            return Err(Error::validation(format!(
                "limit must be within 1..=100000, got {limit}"
            )));
        }
        self.store.read(|tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM workers WHERE (?1 IS NULL OR status = ?1) ORDER BY created_at DESC, worker_id LIMIT ?2"
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![status, limit], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Whether a worker should stop. `touch` refreshes an active worker's heartbeat
    /// (the worker itself asking is a sign of life) after the state is computed.
    pub fn control_state(
        &self,
        worker_id: &str,
        touch: bool,
        now_ms: Option<i64>,
    ) -> Result<ControlState> {
        validate_worker_id(worker_id)?;
        let now = self.now(now_ms)?;
        let stale = self.config().lease.stale_after_ms;
        let compute = |tx: &Tx| -> Result<ControlState> {
            let worker = get_in(tx, worker_id)?;
            let state = control_state_of(worker.as_ref(), now, stale);
            if touch && !state.should_stop {
                touch_in(tx, worker_id, now)?;
            }
            Ok(state)
        };
        if touch {
            self.store.write(compute)
        } else {
            self.store.read(compute)
        }
    }

    /// Idle heartbeat: an active worker says it is alive. Returns false for unknown or non-active workers.
    pub fn touch_worker(&self, worker_id: &str, now_ms: Option<i64>) -> Result<bool> {
        validate_worker_id(worker_id)?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let exists = get_in(tx, worker_id)?.is_some_and(|w| w.status == WorkerStatus::Active);
            if exists {
                touch_in(tx, worker_id, now)?;
            }
            Ok(exists)
        })
    }

    /// Counts over workers.
    pub fn worker_stats(&self) -> Result<WorkerStats> {
        self.store.read(|tx| {
            let (active_count, idle_count): (i64, i64) = tx.query_row(
                "SELECT coalesce(sum(load > 0), 0), coalesce(sum(load = 0), 0) FROM workers WHERE status = 'active'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let mut stmt = tx.prepare_cached("SELECT status, count(*) FROM workers GROUP BY status ORDER BY status")?;
            let by_status = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(WorkerStats { active_count, idle_count, by_status })
        })
    }
}

fn write_worker(tx: &Tx, w: &Worker) -> Result<()> {
    let a = w.assignment.as_ref();
    tx.prepare_cached(
        "INSERT INTO workers(worker_id, provider, mode, status, load, heartbeat_at, last_claim_at, scheduled_shutdown_at,
            stopped_at, stop_reason, last_snapshot_id, machine_id, app_name, region, volume_id, assignment_conversation_id,
            assignment_agent_key, assignment_lease_id, assignment_assigned_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)
         ON CONFLICT(worker_id) DO UPDATE SET provider = excluded.provider, mode = excluded.mode, status = excluded.status,
            load = excluded.load, heartbeat_at = excluded.heartbeat_at, last_claim_at = excluded.last_claim_at,
            scheduled_shutdown_at = excluded.scheduled_shutdown_at, stopped_at = excluded.stopped_at,
            stop_reason = excluded.stop_reason, last_snapshot_id = excluded.last_snapshot_id, machine_id = excluded.machine_id,
            app_name = excluded.app_name, region = excluded.region, volume_id = excluded.volume_id,
            assignment_conversation_id = excluded.assignment_conversation_id, assignment_agent_key = excluded.assignment_agent_key,
            assignment_lease_id = excluded.assignment_lease_id, assignment_assigned_at = excluded.assignment_assigned_at",
    )?
    .execute(params![
        w.worker_id,
        w.provider,
        w.mode.as_str(),
        w.status.as_str(),
        w.load,
        w.heartbeat_at,
        w.last_claim_at,
        w.scheduled_shutdown_at,
        w.stopped_at,
        w.stop_reason,
        w.last_snapshot_id,
        w.machine_id,
        w.app_name,
        w.region,
        w.volume_id,
        a.map(|a| &a.conversation_id),
        a.map(|a| &a.agent_key),
        a.map(|a| &a.lease_id),
        a.map(|a| a.assigned_at),
        w.created_at,
    ])?;
    Ok(())
}
