//! Admin broadcasts: one message to every active binding of a company.
//!
//! Invariants (fixing the original, which ignored the company and wrote to
//! per-agent pseudo conversations no user ever saw): the targets are the active
//! bindings whose metadata names the company; each target gets one message in
//! its own user-agent conversation, routed like a push (Telegram when paired);
//! every target has an audit row; a target whose enqueue fails is rolled back
//! to a savepoint and recorded as `failed` while the others go on; the
//! broadcast, its messages and its audit commit in one transaction.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{Map, Value};

use super::dispatch::push_request;
use super::{
    check_limit, column_error, new_id, validate_company_id, validate_id, DispatchStatus,
    DEFAULT_LIST_LIMIT, MAX_DISPATCH_LIMIT, MAX_LIST_LIMIT, MAX_TEXT_CHARS, MAX_TITLE_CHARS,
};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::identity::target::active_targets_for_company;
use crate::store::Tx;

/// The outcome of [`Factory::send_push_broadcast`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BroadcastResult {
    /// Id of the broadcast.
    pub broadcast_id: String,
    /// Active bindings of the company.
    pub total_targets: i64,
    /// Messages enqueued.
    pub enqueued: i64,
    /// Targets whose enqueue failed.
    pub failed: i64,
}

/// A stored broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broadcast {
    /// Id.
    pub broadcast_id: String,
    /// Company whose active bindings were targeted.
    pub company_id: String,
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// Who asked for it.
    pub requested_by: String,
    /// When.
    pub requested_at: i64,
    /// `done`, or `failed` when at least one target failed.
    pub status: String,
    /// Targets.
    pub total_targets: i64,
    /// Messages enqueued.
    pub enqueued_count: i64,
    /// Targets that failed.
    pub failed_count: i64,
    /// When it finished.
    pub completed_at: Option<i64>,
}

/// One target of a broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BroadcastDispatch {
    /// Target user.
    pub consumer_user_id: String,
    /// The user's agent.
    pub agent_key: String,
    /// The user-agent conversation the message went to.
    pub conversation_id: String,
    /// `broadcast:<broadcastId>:<consumerUserId>`.
    pub run_key: String,
    /// `enqueued` or `failed`.
    pub status: DispatchStatus,
    /// The message, when enqueued.
    pub enqueued_message_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When the row was written.
    pub created_at: i64,
}

const COLUMNS: &str =
    "broadcast_id, company_id, title, text, requested_by, requested_at, status, total_targets, \
    enqueued_count, failed_count, completed_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Broadcast> {
    Ok(Broadcast {
        broadcast_id: r.get(0)?,
        company_id: r.get(1)?,
        title: r.get(2)?,
        text: r.get(3)?,
        requested_by: r.get(4)?,
        requested_at: r.get(5)?,
        status: r.get(6)?,
        total_targets: r.get(7)?,
        enqueued_count: r.get(8)?,
        failed_count: r.get(9)?,
        completed_at: r.get(10)?,
    })
}

fn dispatch_from_row(r: &Row<'_>) -> rusqlite::Result<BroadcastDispatch> {
    let status: String = r.get(4)?;
    Ok(BroadcastDispatch {
        consumer_user_id: r.get(0)?,
        agent_key: r.get(1)?,
        conversation_id: r.get(2)?,
        run_key: r.get(3)?,
        status: DispatchStatus::parse(&status).map_err(|e| column_error(4, e))?,
        enqueued_message_id: r.get(5)?,
        error: r.get(6)?,
        created_at: r.get(7)?,
    })
}

fn broadcast_key(tx: &Tx, broadcast_id: &str) -> Result<i64> {
    tx.prepare_cached("SELECT id FROM push_broadcasts WHERE broadcast_id = ?1")?
        .query_row([broadcast_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::not_found(format!("Broadcast '{broadcast_id}' not found")))
}

impl Factory {
    /// Send `title\n\ntext` (trimmed) to every active binding of `company_id`, one
    /// message per target into its user-agent conversation, in one transaction.
    pub fn send_push_broadcast(
        &self,
        company_id: &str,
        title: &str,
        text: &str,
        requested_by: &str,
        now_ms: Option<i64>,
    ) -> Result<BroadcastResult> {
        validate_company_id(company_id)?;
        crate::validate::optional_text("title", title, MAX_TITLE_CHARS)?;
        crate::validate::optional_text("text", text, MAX_TEXT_CHARS)?;
        crate::validate::text("requestedBy", requested_by, 200)?;
        let message = format!("{title}\n\n{text}").trim().to_string();
        if message.is_empty() {
            return Err(Error::validation(
                "title and text are both blank: a broadcast needs a message",
            ));
        }
        let now = self.now(now_ms)?;
        let broadcast_id = new_id("pbc");
        self.store.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO push_broadcasts(broadcast_id, company_id, title, text, requested_by, requested_at,
                   status, total_targets, enqueued_count, failed_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', 0, 0, 0)",
            )?
            .execute(params![broadcast_id, company_id, title, text, requested_by, now])?;
            let key = tx.last_insert_rowid();
            let targets = active_targets_for_company(tx, company_id)?;
            let (mut enqueued, mut failed) = (0_i64, 0_i64);
            for target in &targets {
                let run_key = format!("broadcast:{broadcast_id}:{}", target.consumer_user_id);
                let mut metadata = Map::new();
                metadata.insert("broadcastId".into(), broadcast_id.clone().into());
                metadata.insert("runKey".into(), run_key.clone().into());
                metadata.insert("adminInitiated".into(), Value::from("true"));
                metadata.insert("companyId".into(), company_id.into());
                let req = push_request(target, &message, metadata, now);
                let outcome = self.enqueue_isolated(tx, &req, now)?;
                let (status, message_id, error) = match &outcome {
                    Ok(id) => {
                        enqueued += 1;
                        (DispatchStatus::Enqueued, Some(id.as_str()), None)
                    }
                    Err(e) => {
                        failed += 1;
                        (DispatchStatus::Failed, None, Some(e.as_str()))
                    }
                };
                tx.prepare_cached(
                    "INSERT INTO push_broadcast_dispatches(broadcast_ref, consumer_user_id, agent_key, conversation_id,
                       run_key, enqueued_message_id, status, error, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    key,
                    target.consumer_user_id,
                    target.agent_key,
                    target.conversation_id,
                    run_key,
                    message_id,
                    status.as_str(),
                    error,
                    now
                ])?;
            }
            let total = targets.len() as i64;
            tx.prepare_cached(
                "UPDATE push_broadcasts SET status = ?2, total_targets = ?3, enqueued_count = ?4, failed_count = ?5,
                   completed_at = ?6 WHERE id = ?1",
            )?
            .execute(params![
                key,
                if failed > 0 { "failed" } else { "done" },
                total,
                enqueued,
                failed,
                now
            ])?;
            Ok(BroadcastResult {
                broadcast_id: broadcast_id.clone(),
                total_targets: total,
                enqueued,
                failed,
            })
        })
    }

    /// One broadcast, or `None`.
    pub fn get_push_broadcast(&self, broadcast_id: &str) -> Result<Option<Broadcast>> {
        validate_id("broadcastId", broadcast_id)?;
        self.store.read(|tx| {
            let sql = format!("SELECT {COLUMNS} FROM push_broadcasts WHERE broadcast_id = ?1");
            Ok(tx
                .prepare_cached(&sql)?
                .query_row([broadcast_id], from_row)
                .optional()?)
        })
    }

    /// A company's broadcasts, newest first (`limit` default 50, at most 200).
    pub fn list_push_broadcasts(
        &self,
        company_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<Broadcast>> {
        validate_company_id(company_id)?;
        let limit = check_limit(limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
        self.store.read(|tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM push_broadcasts WHERE company_id = ?1
                 ORDER BY requested_at DESC, id DESC LIMIT ?2"
            );
            let rows = tx
                .prepare_cached(&sql)?
                .query_map(params![company_id, limit], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The targets of a broadcast by user id, optionally only those with `status`
    /// (`enqueued` or `failed`); `limit` default 200, at most 1000.
    pub fn list_push_broadcast_dispatches(
        &self,
        broadcast_id: &str,
        status: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<BroadcastDispatch>> {
        validate_id("broadcastId", broadcast_id)?;
        if let Some(s) = status {
            DispatchStatus::parse(s).map_err(|_| {
                Error::validation(format!(
                    "status '{}' must be enqueued or failed",
                    super::schedule::shown(s)
                ))
            })?;
        }
        let limit = check_limit(limit, MAX_LIST_LIMIT, MAX_DISPATCH_LIMIT)?;
        self.store.read(|tx| {
            let key = broadcast_key(tx, broadcast_id)?;
            let rows = tx
                .prepare_cached(
                    "SELECT consumer_user_id, agent_key, conversation_id, run_key, status, enqueued_message_id, error,
                       created_at FROM push_broadcast_dispatches
                     WHERE broadcast_ref = ?1 AND (?2 IS NULL OR status = ?2)
                     ORDER BY consumer_user_id LIMIT ?3",
                )?
                .query_map(params![key, status, limit], dispatch_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
