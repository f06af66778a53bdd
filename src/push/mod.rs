//! Push: per-company push templates, scheduled push jobs in IANA time zones,
//! dispatch with an audit row per slot, and broadcasts.
//!
//! Invariants:
//! - a job's `next_run_at` is set exactly when it is enabled and recurring (a
//!   schema CHECK), so the dispatcher's partial index never holds manual or
//!   disabled jobs and they can never starve a due scheduled job;
//! - a slot has the run key `scheduled:<jobId>:<nextRunAt>` and at most one
//!   audit row per (job, run key) (UNIQUE, checked in the dispatching
//!   transaction), so each slot is enqueued at most once even when dispatchers race;
//! - a dispatch or broadcast item whose enqueue fails is rolled back to a
//!   savepoint and recorded as a `failed` audit row: the batch goes on and no
//!   partial message rows remain;
//! - pushes are routed through [`crate::identity::target`]: the user's binding for
//!   the job's agent (a job without an agent adopts the agent of the user's active
//!   binding), into the stable `user-agent:<agent>:<user>` conversation, over
//!   Telegram when the binding has a chat, else `system_push`;
//! - broadcasts reach the active bindings of their company only;
//! - every public operation is one transaction: a rejected call writes nothing.

mod broadcast;
mod dispatch;
mod jobs;
pub mod schedule;
mod stats;
mod templates;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::error::{Error, Result};

pub use broadcast::{Broadcast, BroadcastDispatch, BroadcastResult};
pub use dispatch::{DispatchReport, PushDispatch, PushTrigger};
pub use jobs::{NewPushJob, PushJob, PushJobFromTemplate, PushJobPatch};
pub use schedule::{next_run_at, parse_timezone, DayOfMonth, Periodicity, Schedule, SlotTime};
pub use stats::{UserAgentConversationStats, UserAgentPushStats, UserAgentUsageStats};
pub use templates::{NewPushTemplate, PushTemplate, PushTemplatePatch};

/// Default page of dispatch listings.
pub const DEFAULT_LIST_LIMIT: i64 = 50;
/// Largest page of dispatch and broadcast listings.
pub const MAX_LIST_LIMIT: i64 = 200;
/// Default number of due jobs one dispatch pass reads.
pub const DEFAULT_DISPATCH_LIMIT: i64 = 200;
/// Largest number of due jobs one dispatch pass reads.
pub const MAX_DISPATCH_LIMIT: i64 = 1000;
/// Longest title (characters).
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest push text (characters).
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Most suggested times on a template.
pub const MAX_SUGGESTED_TIMES: usize = 50;
/// Longest stored error text of an audit row.
pub const MAX_ERROR_CHARS: usize = 2000;
/// The error of a run whose user has no usable binding.
pub const NO_BINDING: &str = "No active agent binding for user";

/// Status of a dispatch or broadcast audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DispatchStatus {
    /// The message was enqueued.
    Enqueued,
    /// Nothing was enqueued; `error` says why.
    Failed,
}

impl DispatchStatus {
    fn as_str(self) -> &'static str {
        match self {
            DispatchStatus::Enqueued => "enqueued",
            DispatchStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<DispatchStatus> {
        match s {
            "enqueued" => Ok(DispatchStatus::Enqueued),
            "failed" => Ok(DispatchStatus::Failed),
            other => Err(Error::storage(format!(
                "stored push dispatch status {other:?} is not enqueued or failed"
            ))),
        }
    }
}

pub(crate) use crate::error::column_error;

/// A fresh opaque, time-ordered id with `prefix`.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Check an id of this area (`templateId`, `jobId`, `broadcastId`).
pub(crate) fn validate_id(field: &str, value: &str) -> Result<()> {
    crate::validate::identifier(field, value, 128, false)
}

/// Check a company id: non-blank, at most 200 characters.
pub(crate) fn validate_company_id(value: &str) -> Result<()> {
    crate::validate::text("companyId", value, 200)
}

/// Check a consumer user id (the identity area's rule).
pub(crate) fn validate_user_id(value: &str) -> Result<()> {
    crate::identity::validate_consumer_user_id(value)
}

/// Check a push title and text.
pub(crate) fn validate_title_text(title: &str, text: &str) -> Result<()> {
    crate::validate::text("title", title, MAX_TITLE_CHARS)?;
    crate::validate::text("text", text, MAX_TEXT_CHARS)
}

/// A listing limit: `None` is the default, otherwise within `1..=max`.
pub(crate) fn check_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64> {
    match limit {
        None => Ok(default),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(l) => Err(Error::validation(format!(
            "limit must be within 1..={max}, got {l}"
        ))),
    }
}

/// An error text as stored on an audit row (bounded).
pub(crate) fn stored_error(err: &Error) -> String {
    let text = err.to_string();
    if text.chars().count() <= MAX_ERROR_CHARS {
        text
    } else {
        text.chars().take(MAX_ERROR_CHARS).collect()
    }
}
