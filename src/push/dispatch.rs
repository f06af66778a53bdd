//! Running push jobs: the due-job dispatcher, manual triggers and the audit.
//!
//! Invariants:
//! - the dispatcher reads only due rows of the partial `push_jobs_due` index
//!   (enabled, recurring jobs), oldest slot first; when nothing is due it only
//!   reads that index and takes no write lock;
//! - a slot's run key is `scheduled:<jobId>:<nextRunAt>`; its audit row and its
//!   message commit together, and an existing row for the key means the slot is
//!   skipped, so each slot is enqueued at most once;
//! - each run is routed to the user's binding for the job's agent (a job without
//!   an agent uses the active binding and adopts its agent); no binding, or a
//!   failed enqueue (rolled back to a savepoint), gives a `failed` audit row;
//! - after a slot the job advances to the first slot strictly after now: missed
//!   periods are not back-filled; a job whose schedule cannot be computed is
//!   disabled with a `failed` row so it cannot block the index;
//! - a manual trigger leaves the job's next slot as it is.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{Map, Value};

use super::jobs::{self, JobRow};
use super::schedule::next_run_at;
use super::{
    check_limit, stored_error, validate_id, validate_user_id, DispatchStatus,
    DEFAULT_DISPATCH_LIMIT, DEFAULT_LIST_LIMIT, MAX_DISPATCH_LIMIT, MAX_LIST_LIMIT, NO_BINDING,
};
use crate::agents::validate_agent_key;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::identity::target::{active_target, active_target_for_agent, ConversationTarget};
use crate::metrics::{self, target, Counter};
use crate::queue::EnqueueRequest;
use crate::store::Tx;

/// Counts of one dispatch pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    /// Due jobs read.
    pub scanned: i64,
    /// Slots enqueued.
    pub enqueued: i64,
    /// Slots already dispatched (advanced without a second message).
    pub skipped: i64,
    /// Slots recorded as failed (no binding, enqueue error, broken schedule).
    pub failed: i64,
}

/// The outcome of a manual trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushTrigger {
    /// The enqueued message.
    pub enqueued_message_id: String,
    /// `manual:<jobId>:<now>`.
    pub run_key: String,
}

/// One audit row of a push job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushDispatch {
    /// Id of the row.
    pub dispatch_id: String,
    /// The job.
    pub job_id: String,
    /// Recipient.
    pub consumer_user_id: String,
    /// Agent it was routed to (or the job's agent when it could not be routed).
    pub agent_key: Option<String>,
    /// `scheduled:<jobId>:<slot>` or `manual:<jobId>:<now>`.
    pub run_key: String,
    /// `scheduled` or `manual`.
    pub push_mode: String,
    /// `enqueued` or `failed`.
    pub status: DispatchStatus,
    /// The slot (scheduled) or the trigger time (manual).
    pub scheduled_for: i64,
    /// The message, when enqueued.
    pub enqueued_message_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When the row was written.
    pub created_at: i64,
}

const DISPATCH_COLUMNS: &str =
    "d.id, j.job_id, d.consumer_user_id, d.agent_key, d.run_key, d.push_mode, d.status, \
    d.scheduled_for, d.enqueued_message_id, d.error, d.created_at";

fn dispatch_from_row(r: &Row<'_>) -> rusqlite::Result<PushDispatch> {
    let status: String = r.get(6)?;
    Ok(PushDispatch {
        dispatch_id: r.get::<_, i64>(0)?.to_string(),
        job_id: r.get(1)?,
        consumer_user_id: r.get(2)?,
        agent_key: r.get(3)?,
        run_key: r.get(4)?,
        push_mode: r.get(5)?,
        status: DispatchStatus::parse(&status).map_err(|e| super::column_error(6, e))?,
        scheduled_for: r.get(7)?,
        enqueued_message_id: r.get(8)?,
        error: r.get(9)?,
        created_at: r.get(10)?,
    })
}

/// An audit row to write.
struct Audit<'a> {
    job: &'a JobRow,
    agent_key: Option<&'a str>,
    run_key: &'a str,
    push_mode: &'a str,
    scheduled_for: i64,
    outcome: std::result::Result<String, String>,
}

fn write_audit(tx: &Tx, a: &Audit<'_>, now: i64) -> Result<()> {
    let (status, message_id, error) = match &a.outcome {
        Ok(id) => (DispatchStatus::Enqueued, Some(id.as_str()), None),
        Err(e) => (DispatchStatus::Failed, None, Some(e.as_str())),
    };
    tx.prepare_cached(
        "INSERT INTO push_dispatches(job_ref, consumer_user_id, agent_key, run_key, push_mode, scheduled_for,
           enqueued_message_id, status, error, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        a.job.key,
        a.job.job.consumer_user_id,
        a.agent_key,
        a.run_key,
        a.push_mode,
        a.scheduled_for,
        message_id,
        status.as_str(),
        error,
        now
    ])?;
    Ok(())
}

fn run_exists(tx: &Tx, job_ref: i64, run_key: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM push_dispatches WHERE job_ref = ?1 AND run_key = ?2)",
        )?
        .query_row(params![job_ref, run_key], |r| r.get(0))?)
}

/// Where a run of `job` goes: the user's binding for the job's agent, or (no
/// agent yet) the user's active binding. `Err` carries the audit text.
fn route(tx: &Tx, job: &JobRow) -> Result<std::result::Result<ConversationTarget, String>> {
    let user = &job.job.consumer_user_id;
    let Some(agent) = job.job.agent_key.as_deref() else {
        return Ok(active_target(tx, user)?.ok_or_else(|| NO_BINDING.to_string()));
    };
    if let Some(t) = active_target_for_agent(tx, user, agent)? {
        return Ok(Ok(t));
    }
    Ok(Err(match active_target(tx, user)? {
        Some(other) => format!(
            "{NO_BINDING}: '{}' is bound to agent '{}', not '{agent}'",
            super::schedule::shown(user),
            other.agent_key
        ),
        None => NO_BINDING.to_string(),
    }))
}

/// The enqueue request of one run on `target`.
pub(crate) fn push_request(
    target: &ConversationTarget,
    text: &str,
    mut metadata: Map<String, Value>,
    now: i64,
) -> EnqueueRequest {
    let source = if target.telegram_chat_id.is_some() {
        "telegram_chat"
    } else {
        "legacy_user"
    };
    metadata.insert("conversationTargetSource".into(), source.into());
    EnqueueRequest {
        conversation_id: target.conversation_id.clone(),
        agent_key: target.agent_key.clone(),
        payload: target.payload(text, metadata),
        priority: None,
        scheduled_for: Some(now),
        max_attempts: None,
    }
}

impl Factory {
    /// Enqueue `req` inside `tx` under a savepoint: on a rejected enqueue
    /// everything it wrote is undone and the error comes back as the audit text;
    /// a storage error fails the caller's whole operation.
    pub(crate) fn enqueue_isolated(
        &self,
        tx: &Tx,
        req: &EnqueueRequest,
        now: i64,
    ) -> Result<std::result::Result<String, String>> {
        tx.execute_batch("SAVEPOINT push_item")?;
        match self.enqueue_within(tx, req, now) {
            Ok(id) => {
                tx.execute_batch("RELEASE push_item")?;
                Ok(Ok(id))
            }
            Err(e) => {
                tx.execute_batch("ROLLBACK TO push_item; RELEASE push_item")?;
                match e {
                    // Storage trouble is not the item's fault: fail the whole call
                    // (nothing is recorded, the slots stay due for the next pass).
                    Error::Storage(_) => Err(e),
                    _ => Ok(Err(stored_error(&e))),
                }
            }
        }
    }

    /// Enqueue every due slot of enabled recurring jobs (`next_run_at <= now`), at
    /// most `limit` jobs (default 200, at most 1000), oldest slot first, in one
    /// transaction. Cheap when nothing is due (one index probe, no write lock).
    pub fn dispatch_due_push_jobs(
        &self,
        limit: Option<i64>,
        now_ms: Option<i64>,
    ) -> Result<DispatchReport> {
        let limit = check_limit(limit, DEFAULT_DISPATCH_LIMIT, MAX_DISPATCH_LIMIT)?;
        let now = self.now(now_ms)?;
        let any_due: bool = self.store.read(|tx| {
            Ok(tx
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM push_jobs WHERE next_run_at IS NOT NULL AND next_run_at <= ?1)",
                )?
                .query_row([now], |r| r.get(0))?)
        })?;
        if !any_due {
            return Ok(DispatchReport::default());
        }
        self.store.write(|tx| {
            let sql = format!(
                "SELECT {} FROM push_jobs WHERE next_run_at IS NOT NULL AND next_run_at <= ?1
                 ORDER BY next_run_at, id LIMIT ?2",
                jobs::COLUMNS
            );
            let due = tx
                .prepare_cached(&sql)?
                .query_map(params![now, limit], jobs::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut report = DispatchReport::default();
            for job in &due {
                report.scanned += 1;
                match self.dispatch_slot(tx, job, now)? {
                    SlotOutcome::Enqueued => {
                        metrics::incr(Counter::PushSlotsEnqueued);
                        report.enqueued += 1
                    }
                    SlotOutcome::Skipped => report.skipped += 1,
                    SlotOutcome::Failed => {
                        metrics::incr(Counter::PushSlotsFailed);
                        report.failed += 1
                    }
                }
            }
            Ok(report)
        })
    }

    fn dispatch_slot(&self, tx: &Tx, job: &JobRow, now: i64) -> Result<SlotOutcome> {
        let slot = job
            .job
            .next_run_at
            .ok_or_else(|| Error::storage("due push job has no next_run_at"))?;
        let run_key = format!("scheduled:{}:{slot}", job.job.job_id);
        let next = job
            .tz()
            .and_then(|tz| next_run_at(&job.job.schedule, tz, now))
            .and_then(|n| n.ok_or_else(|| Error::storage("a recurring schedule has no next slot")));
        let next = match next {
            Ok(n) => n,
            Err(e) => {
                // A schedule that cannot be planned would stay due forever: record
                // it and take the job out of the index.
                metrics::event(log::Level::Warn, target::PUSH, || {
                    format!(
                        "push job {} slot {run_key}: schedule cannot be planned, job disabled: {}",
                        job.job.job_id,
                        stored_error(&e)
                    )
                });
                write_audit(
                    tx,
                    &Audit {
                        job,
                        agent_key: job.job.agent_key.as_deref(),
                        run_key: &run_key,
                        push_mode: "scheduled",
                        scheduled_for: slot,
                        outcome: Err(format!("{}; the job was disabled", stored_error(&e))),
                    },
                    now,
                )?;
                tx.prepare_cached(
                    "UPDATE push_jobs SET enabled = 0, next_run_at = NULL, updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![job.key, now])?;
                return Ok(SlotOutcome::Failed);
            }
        };
        let (outcome, agent) = if run_exists(tx, job.key, &run_key)? {
            (SlotOutcome::Skipped, job.job.agent_key.clone())
        } else {
            let (result, agent) = match route(tx, job)? {
                Ok(target) => {
                    let req = push_request(
                        &target,
                        &job.job.text,
                        run_metadata(job, &run_key, "scheduled"),
                        now,
                    );
                    (
                        self.enqueue_isolated(tx, &req, now)?,
                        Some(target.agent_key),
                    )
                }
                Err(reason) => (Err(reason), job.job.agent_key.clone()),
            };
            let outcome = match &result {
                Ok(_) => SlotOutcome::Enqueued,
                Err(reason) => {
                    metrics::event(log::Level::Warn, target::PUSH, || {
                        format!(
                            "push job {} slot {run_key} failed: {reason}",
                            job.job.job_id
                        )
                    });
                    SlotOutcome::Failed
                }
            };
            write_audit(
                tx,
                &Audit {
                    job,
                    agent_key: agent.as_deref(),
                    run_key: &run_key,
                    push_mode: "scheduled",
                    scheduled_for: slot,
                    outcome: result,
                },
                now,
            )?;
            (outcome, agent)
        };
        tx.prepare_cached(
            "UPDATE push_jobs SET next_run_at = ?2, last_run_at = ?3, last_run_key = ?4, updated_at = ?3,
               agent_key = coalesce(agent_key, ?5) WHERE id = ?1",
        )?
        .execute(params![job.key, next, now, run_key, agent])?;
        Ok(outcome)
    }

    /// Run a job now (any periodicity, also disabled): run key
    /// `manual:<jobId>:<now>`. With `agent_key`, the job must belong to that agent
    /// (`Push job not found for agent`). The job's next slot is not changed.
    pub fn trigger_push_job_now(
        &self,
        job_id: &str,
        agent_key: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<PushTrigger> {
        validate_id("jobId", job_id)?;
        if let Some(a) = agent_key {
            validate_agent_key(a)?;
        }
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let job =
                jobs::get_in(tx, job_id)?.ok_or_else(|| Error::not_found("Push job not found"))?;
            if let Some(a) = agent_key {
                if job.job.agent_key.as_deref() != Some(a) {
                    return Err(Error::not_found("Push job not found for agent"));
                }
            }
            let run_key = format!("manual:{}:{now}", job.job.job_id);
            if run_exists(tx, job.key, &run_key)? {
                return Err(Error::conflict(format!(
                    "Push job '{job_id}' was already triggered at {now} (run key '{run_key}')"
                )));
            }
            let target = route(tx, &job)?.map_err(Error::invalid_state)?;
            let req = push_request(
                &target,
                &job.job.text,
                run_metadata(&job, &run_key, "manual"),
                now,
            );
            let message_id = self.enqueue_within(tx, &req, now)?;
            write_audit(
                tx,
                &Audit {
                    job: &job,
                    agent_key: Some(&target.agent_key),
                    run_key: &run_key,
                    push_mode: "manual",
                    scheduled_for: now,
                    outcome: Ok(message_id.clone()),
                },
                now,
            )?;
            tx.prepare_cached(
                "UPDATE push_jobs SET last_run_at = ?2, last_run_key = ?3, updated_at = ?2,
                   agent_key = coalesce(agent_key, ?4) WHERE id = ?1",
            )?
            .execute(params![job.key, now, run_key, target.agent_key])?;
            Ok(PushTrigger {
                enqueued_message_id: message_id,
                run_key,
            })
        })
    }

    /// A job's audit rows, newest first (`limit` default 50, at most 200);
    /// `Push job not found` for an unknown job.
    pub fn list_push_dispatches(
        &self,
        job_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<PushDispatch>> {
        validate_id("jobId", job_id)?;
        let limit = check_limit(limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
        self.store.read(|tx| {
            let Some(key) = tx
                .prepare_cached("SELECT id FROM push_jobs WHERE job_id = ?1")?
                .query_row([job_id], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                return Err(Error::not_found("Push job not found"));
            };
            let sql = format!(
                "SELECT {DISPATCH_COLUMNS} FROM push_dispatches d JOIN push_jobs j ON j.id = d.job_ref
                 WHERE d.job_ref = ?1 ORDER BY d.created_at DESC, d.id DESC LIMIT ?2"
            );
            let rows = tx
                .prepare_cached(&sql)?
                .query_map(params![key, limit], dispatch_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Audit rows of a user's runs routed to `agent_key`, newest first
    /// (`limit` default 50, at most 200).
    pub fn list_push_dispatches_for_agent(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        limit: Option<i64>,
    ) -> Result<Vec<PushDispatch>> {
        validate_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        let limit = check_limit(limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
        self.store.read(|tx| {
            let sql = format!(
                "SELECT {DISPATCH_COLUMNS} FROM push_dispatches d JOIN push_jobs j ON j.id = d.job_ref
                 WHERE d.consumer_user_id = ?1 AND d.agent_key = ?2
                 ORDER BY d.created_at DESC, d.id DESC LIMIT ?3"
            );
            let rows = tx
                .prepare_cached(&sql)?
                .query_map(params![consumer_user_id, agent_key, limit], dispatch_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

enum SlotOutcome {
    Enqueued,
    Skipped,
    Failed,
}

fn run_metadata(job: &JobRow, run_key: &str, mode: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("pushJobId".into(), job.job.job_id.clone().into());
    m.insert("runKey".into(), run_key.into());
    m.insert("pushMode".into(), mode.into());
    m
}
