//! `claim`: lease the next message for a worker.
//!
//! One transaction: recover a few expired leases, promote due conversations,
//! then pick one ready conversation head through the `conversations_sched`
//! partial index (its ready range), so the cost does not grow with finished
//! messages or with the backlog of busy conversations, and lease it.
//!
//! The lease is written on the conversation row only (`lock_*`): the message row
//! stays `queued` until it is settled, and readers report it as `processing`
//! while the lock names it (see [`super::conversations`]).
//!
//! Rules: only `active` workers claim; a worker with an assignment (sticky owner
//! or pre-assigned by the scheduler) claims only that conversation; a
//! conversation assigned to another active worker with a fresh heartbeat is
//! skipped (exclusive ownership) until that owner goes stale (takeover); sticky
//! workers take ownership of what they claim, pooled workers do not.

use std::sync::LazyLock;

use rusqlite::{params, OptionalExtension};

use super::{conversations, recovery, Claim};
use crate::config::Config;
use crate::error::{column_error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::store::Tx;
use crate::workers::{self, validate_worker_id, Assignment, WorkerMode, WorkerStatus};

/// Expired leases recovered inline by each claim (the control loop does the rest).
const INLINE_RECOVERY: i64 = 16;

/// How stale a busy pooled worker's heartbeat and last claim may get before a
/// `complete(claim_next)` writes them (its load does not change then). Far
/// below the stale-heartbeat and idle-shutdown horizons, which are minutes.
pub const BOOKKEEPING_INTERVAL_MS: i64 = 1000;

/// Options of a claim.
#[derive(Debug, Clone, Default)]
pub struct ClaimOptions {
    /// Only this conversation.
    pub conversation_id: Option<String>,
    /// Mode used when the claim registers an unknown worker (`None` = sticky).
    pub mode: Option<WorkerMode>,
}

/// The conversation head a claim locked, with what the claim returns of it.
struct Candidate {
    conversation_id: String,
    agent_key: String,
    message: i64,
    priority: i64,
    payload: String,
    attempts: i64,
}

const NOT_OWNED_ELSEWHERE: &str = "NOT EXISTS (SELECT 1 FROM workers o
      WHERE o.assignment_conversation_id = c.conversation_id AND o.assignment_agent_key = c.agent_key
        AND o.worker_id <> ?2 AND o.status = 'active' AND o.heartbeat_at > ?3)";

/// The lock a claim puts on the conversation it picks.
struct Lock<'a> {
    lease_id: &'a str,
    expires: i64,
}

/// A claim restricted to one conversation (and, for an assignment, its agent).
struct Target<'a> {
    conversation_id: &'a str,
    agent_key: Option<&'a str>,
}

/// The pick of a claim: the claimable conversation head with its message, for
/// the whole queue (`ORDER BY` the ready range of `conversations_sched`) or for
/// one conversation (`?4`, and its agent `?5` for an assignment). `?1` now, `?2`
/// the claiming worker, `?3` the stale-heartbeat cutoff.
pub(crate) fn pick_sql(targeted: bool) -> &'static str {
    static SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
        [false, true].map(|targeted| {
            let (filter, order) = if targeted {
                ("c.conversation_id = ?4 AND c.agent_key = coalesce(?5, c.agent_key) AND c.state = 'ready'", "")
            } else {
                ("c.state = 'ready' AND c.sched_k1 IS NOT NULL", "ORDER BY c.sched_k1, c.sched_k2, c.sched_k3")
            };
            format!(
                "SELECT c.id, c.conversation_id, c.agent_key, c.head_message, c.head_priority, m.payload, m.attempts
                 FROM conversations c JOIN messages m ON m.id = c.head_message
                 WHERE {filter} AND c.head_ready_at <= ?1 AND {NOT_OWNED_ELSEWHERE} {order} LIMIT 1"
            )
        })
    });
    &SQL[usize::from(targeted)]
}

/// Pick the next claimable conversation head and lock it for `worker_id`. Two
/// plain statements (a read of the index front, a write by row key): an
/// `UPDATE … RETURNING` would buffer its output in a temporary b-tree on every
/// claim. The message row is only read: the lock is the whole record of the
/// delivery.
fn pick_and_lock(
    tx: &Tx,
    worker_id: &str,
    target: Option<Target<'_>>,
    now: i64,
    stale_cutoff: i64,
    lock: &Lock<'_>,
) -> Result<Option<Candidate>> {
    let map = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get::<_, i64>(0)?,
            Candidate {
                conversation_id: r.get(1)?,
                agent_key: r.get(2)?,
                message: r.get(3)?,
                priority: r.get(4)?,
                payload: r.get(5)?,
                attempts: r.get(6)?,
            },
        ))
    };
    let mut stmt = tx.prepare_hot(pick_sql(target.is_some()))?;
    let found = match target {
        Some(t) => stmt
            .query_row(
                params![now, worker_id, stale_cutoff, t.conversation_id, t.agent_key],
                map,
            )
            .optional()?,
        None => stmt
            .query_row(params![now, worker_id, stale_cutoff], map)
            .optional()?,
    };
    let Some((key, candidate)) = found else {
        return Ok(None);
    };
    tx.prepare_hot(
        "UPDATE conversations SET state = 'busy', lock_message = head_message, lock_lease_id = ?2, lock_worker_id = ?3,
           lock_expires_at = ?4, lock_heartbeat_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![key, lock.lease_id, worker_id, lock.expires, now])?;
    Ok(Some(candidate))
}

/// What a claim reads of the claiming worker's row (the rest of [`workers::Worker`] is
/// not needed to decide or to record a claim).
struct Claimer {
    status: WorkerStatus,
    mode: WorkerMode,
    heartbeat_at: i64,
    last_claim_at: Option<i64>,
    scheduled_shutdown_at: Option<i64>,
    /// The assigned conversation and its agent, and when it was assigned.
    assignment: Option<(String, String, i64)>,
}

fn claimer(tx: &Tx, worker_id: &str) -> Result<Option<Claimer>> {
    Ok(tx
        .prepare_hot(
            "SELECT status, mode, heartbeat_at, last_claim_at, scheduled_shutdown_at,
                    assignment_conversation_id, assignment_agent_key, assignment_assigned_at
             FROM workers WHERE worker_id = ?1",
        )?
        .query_row([worker_id], |r| {
            let assignment = match (
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ) {
                (Some(conversation_id), Some(agent_key)) => Some((
                    conversation_id,
                    agent_key,
                    r.get::<_, Option<i64>>(7)?.unwrap_or_default(),
                )),
                _ => None,
            };
            Ok(Claimer {
                status: WorkerStatus::parse(r.get_ref(0)?.as_str()?)
                    .map_err(|e| column_error(0, e))?,
                mode: WorkerMode::parse(r.get_ref(1)?.as_str()?).map_err(|e| column_error(1, e))?,
                heartbeat_at: r.get(2)?,
                last_claim_at: r.get(3)?,
                scheduled_shutdown_at: r.get(4)?,
                assignment,
            })
        })
        .optional()?)
}

/// Register an unknown worker that is about to claim (active, load 0).
fn register(tx: &Tx, worker_id: &str, mode: WorkerMode, now: i64) -> Result<Claimer> {
    tx.prepare_cached(
        "INSERT INTO workers(worker_id, provider, mode, status, load, heartbeat_at, created_at) VALUES (?1, 'local', ?2, 'active', 0, ?3, ?3)",
    )?
    .execute(params![worker_id, mode.as_str(), now])?;
    Ok(Claimer {
        status: WorkerStatus::Active,
        mode,
        heartbeat_at: now,
        last_claim_at: None,
        scheduled_shutdown_at: None,
        assignment: None,
    })
}

/// The claimable candidate for `worker_id`, honouring its status and assignment.
fn candidate_for(
    tx: &Tx,
    cfg: &Config,
    worker_id: &str,
    existing: Option<&Claimer>,
    opts: &ClaimOptions,
    now: i64,
    lock: &Lock<'_>,
) -> Result<Option<Candidate>> {
    if existing.is_some_and(|w| w.status != WorkerStatus::Active) {
        return Ok(None);
    }
    let assignment = existing.and_then(|w| w.assignment.as_ref());
    if let (Some((conversation_id, _, _)), Some(wanted)) = (assignment, &opts.conversation_id) {
        if conversation_id != wanted {
            return Ok(None);
        }
    }
    let target = assignment
        .map(|(conversation_id, _, _)| conversation_id.as_str())
        .or(opts.conversation_id.as_deref());
    let stale_cutoff = now - cfg.lease.stale_after_ms;
    let target = target.map(|conversation_id| Target {
        conversation_id,
        agent_key: assignment.map(|(_, agent_key, _)| agent_key.as_str()),
    });
    pick_and_lock(tx, worker_id, target, now, stale_cutoff, lock)
}

/// Whether a pooled worker that just gave a message back and takes the next
/// one can skip writing its row: its load is unchanged, it has no assignment,
/// and its heartbeat and last claim are less than [`BOOKKEEPING_INTERVAL_MS`] old.
fn bookkeeping_is_fresh(
    worker: &Claimer,
    keeps_assignment: bool,
    released: bool,
    now: i64,
) -> bool {
    let fresh = |t: i64| t <= now && now - t < BOOKKEEPING_INTERVAL_MS;
    released
        && !keeps_assignment
        && worker.scheduled_shutdown_at.is_none()
        && fresh(worker.heartbeat_at)
        && worker.last_claim_at.is_some_and(fresh)
}

/// Claim inside an open transaction (shared by `claim` and `complete(claim_next)`).
///
/// `released` says the worker gave a message back earlier in this transaction
/// and its row has not been updated for it yet: the load bookkeeping of the
/// release and of the claim is then written as one update (or skipped, see
/// [`bookkeeping_is_fresh`]).
pub(crate) fn claim_in(
    tx: &Tx,
    f: &Factory,
    cfg: &Config,
    worker_id: &str,
    opts: &ClaimOptions,
    now: i64,
    released: bool,
) -> Result<Option<Claim>> {
    if f.store
        .maintenance_due(now, f.clock.maintenance_interval_ms())
    {
        recovery::release_expired_in(tx, cfg, now, INLINE_RECOVERY)?;
        conversations::promote_due(tx, now)?;
    }
    let existing = claimer(tx, worker_id)?;
    let lease_id = ids::new_lease_id();
    let expires = now + cfg.lease.lease_ms;
    let lock = Lock {
        lease_id: &lease_id,
        expires,
    };
    let Some(c) = candidate_for(tx, cfg, worker_id, existing.as_ref(), opts, now, &lock)? else {
        if released {
            workers::release_load(tx, worker_id, now, cfg.scaling.idle_timeout_ms, true, None)?;
        } else {
            workers::touch_in(tx, worker_id, now)?;
        }
        return Ok(None);
    };
    let worker = match existing {
        Some(w) => w,
        None => register(tx, worker_id, opts.mode.unwrap_or(WorkerMode::Sticky), now)?,
    };
    let keeps_assignment = worker.mode == WorkerMode::Sticky || worker.assignment.is_some();
    if !bookkeeping_is_fresh(&worker, keeps_assignment, released, now) {
        let assignment = keeps_assignment.then(|| Assignment {
            conversation_id: c.conversation_id.clone(),
            agent_key: c.agent_key.clone(),
            lease_id: lease_id.clone(),
            assigned_at: worker
                .assignment
                .as_ref()
                .map_or(now, |&(_, _, assigned_at)| assigned_at),
        });
        let a = assignment.as_ref();
        tx.prepare_hot(
            "UPDATE workers SET load = max(0, load - ?7) + 1, heartbeat_at = max(heartbeat_at, ?2), last_claim_at = ?2,
               scheduled_shutdown_at = NULL, stopped_at = NULL, assignment_conversation_id = ?3, assignment_agent_key = ?4,
               assignment_lease_id = ?5, assignment_assigned_at = ?6
             WHERE worker_id = ?1",
        )?
        .execute(params![
            worker_id,
            now,
            a.map(|a| &a.conversation_id),
            a.map(|a| &a.agent_key),
            a.map(|a| &a.lease_id),
            a.map(|a| a.assigned_at),
            i64::from(released)
        ])?;
    }
    crate::metrics::incr(crate::metrics::Counter::MessagesClaimed);
    Ok(Some(Claim {
        message_id: ids::message_id(c.message),
        conversation_id: c.conversation_id,
        agent_key: c.agent_key,
        worker_id: worker_id.to_string(),
        lease_id,
        lease_expires_at: expires,
        attempt: c.attempts + 1,
        priority: c.priority,
        payload: serde_json::from_str(&c.payload)?,
    }))
}

/// Validate claim arguments.
pub(crate) fn check(worker_id: &str, opts: &ClaimOptions) -> Result<()> {
    validate_worker_id(worker_id)?;
    if let Some(c) = &opts.conversation_id {
        conversations::validate_conversation_id(c)?;
    }
    Ok(())
}

impl Factory {
    /// Lease the next message for `worker_id`, or `None` when nothing is claimable for it.
    pub fn claim(
        &self,
        worker_id: &str,
        opts: &ClaimOptions,
        now_ms: Option<i64>,
    ) -> Result<Option<Claim>> {
        check(worker_id, opts)?;
        let cfg = self.config();
        let now = self.now(now_ms)?;
        self.write_claiming(|tx| claim_in(tx, self, &cfg, worker_id, opts, now, false))
    }

    /// A write transaction that may claim. A claim can run the time-driven
    /// maintenance pass; if the transaction rolls back, that pass is forgotten so
    /// the next claim runs it again.
    pub(crate) fn write_claiming<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let result = self.store.write(f);
        if result.is_err() {
            self.store.forget_maintenance();
        }
        result
    }
}
