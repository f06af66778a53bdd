//! Execution attempts and the 24 KiB metadata budget.
//!
//! Invariants: after [`sync_attempts`] the attempt of the current execution
//! reflects its status and `failure_count` rose once per transition into
//! `blocked`/`failed`; after [`trim_to_budget`] the serialized metadata is at most
//! [`MAX_CARD_METADATA_BYTES`] unless only dependency links remain, and dependency
//! links are never dropped.

use super::model::*;

fn attempt_status(execution_status: &str) -> &'static str {
    match execution_status {
        "running" => "running",
        "blocked" => "blocked",
        "done" | "review" => "succeeded",
        _ => "stopped",
    }
}

/// `syncExecutionAttemptMetadata`: record the execution as an attempt.
pub fn sync_attempts(meta: &mut Metadata, execution: &Execution, now: i64) {
    let status = attempt_status(&execution.status);
    let key = execution
        .run_id
        .clone()
        .or_else(|| execution.session_key.clone())
        .unwrap_or_else(|| execution.id.clone());
    let found = meta.attempts.iter().position(|a| match &execution.run_id {
        Some(run) => a.run_id.as_deref() == Some(run.as_str()),
        None => a.id == key,
    });
    let previous = found.map(|i| meta.attempts[i].clone());
    let attempt = Attempt {
        id: previous.as_ref().map(|p| p.id.clone()).unwrap_or(key),
        status: status.to_string(),
        started_at: previous
            .as_ref()
            .map(|p| p.started_at)
            .unwrap_or(execution.started_at),
        ended_at: (status != "running").then_some(if execution.updated_at > 0 {
            execution.updated_at
        } else {
            now
        }),
        engine: Some(execution.engine.clone()),
        mode: Some(execution.mode.clone()),
        model: Some(execution.model.clone()),
        session_key: execution.session_key.clone(),
        run_id: execution.run_id.clone(),
        error: if status == "succeeded" {
            None
        } else {
            previous.as_ref().and_then(|p| p.error.clone())
        },
    };
    let was_failed = previous
        .as_ref()
        .is_some_and(|p| p.status == "blocked" || p.status == "failed");
    match status {
        "blocked" | "failed" if !was_failed => meta.failure_count += 1,
        "succeeded" => meta.failure_count = 0,
        _ => {}
    }
    match found {
        Some(i) => meta.attempts[i] = attempt,
        None => meta.attempts.push(attempt),
    }
    super::normalize_meta::keep_last(&mut meta.attempts, MAX_CARD_ATTEMPTS);
}

/// `closeRunningAttempts`: end every running attempt with `status` (and `reason`).
pub fn close_running_attempts(meta: &mut Metadata, now: i64, status: &str, reason: Option<&str>) {
    for a in meta.attempts.iter_mut().filter(|a| a.status == "running") {
        a.status = status.to_string();
        a.ended_at = Some(now);
        a.error = reason.and_then(|r| cap_text(r, 800));
    }
}

/// Drop the oldest entries, list by list in the seed's order, until the document
/// fits the budget. Returns the ids of attachments that were dropped.
pub fn trim_to_budget(meta: &mut Metadata) -> Vec<String> {
    let mut dropped = Vec::new();
    let mut size = meta.byte_size();
    while size > MAX_CARD_METADATA_BYTES {
        if !meta.attempts.is_empty() {
            meta.attempts.remove(0);
        } else if !meta.diagnostics.is_empty() {
            meta.diagnostics.remove(0);
        } else if !meta.notifications.is_empty() {
            meta.notifications.remove(0);
        } else if !meta.proof.is_empty() {
            meta.proof.remove(0);
        } else if !meta.artifacts.is_empty() {
            meta.artifacts.remove(0);
        } else if !meta.attachments.is_empty() {
            dropped.push(meta.attachments.remove(0).id);
        } else if !meta.worker_logs.is_empty() {
            meta.worker_logs.remove(0);
        } else if let Some(i) = meta.links.iter().position(|l| !l.is_dependency()) {
            meta.links.remove(i);
        } else if !meta.comments.is_empty() {
            meta.comments.remove(0);
        }
        let next = meta.byte_size();
        if next >= size {
            break;
        }
        size = next;
    }
    dropped
}
