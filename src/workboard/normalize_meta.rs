//! Generic metadata patches (`metadata=` on create/update) into the typed document.
//!
//! Invariants: a key present in the patch replaces that field, an absent key
//! keeps the existing value; list entries missing required fields are dropped,
//! over-long values are rejected; dependency links (`parent`/`child`) can never be
//! added or removed here (the existing ones are kept and come first); attachment
//! index entries are owned by the attachment calls, so a patch cannot forge or
//! drop them; every list is cut to its retention cap (the newest entries stay).

use serde_json::Value;

use super::model::*;
use super::normalize::{self as n, Input};
use crate::error::{Error, Result};

const KEYS: [&str; 17] = [
    "attempts",
    "comments",
    "links",
    "proof",
    "artifacts",
    "attachments",
    "worker_logs",
    "worker_protocol",
    "automation",
    "claim",
    "diagnostics",
    "notifications",
    "template_id",
    "archived_at",
    "stale",
    "lifecycle_status_source_updated_at",
    "failure_count",
];

fn entries<'a>(value: &'a Value, key: &str) -> Result<Vec<&'a Input>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => Ok(a.iter().filter_map(Value::as_object).collect()),
        _ => Err(Error::validation(format!("metadata.{key} must be a list."))),
    }
}

/// Keep the last `cap` entries.
pub fn keep_last<T>(list: &mut Vec<T>, cap: usize) {
    if list.len() > cap {
        list.drain(..list.len() - cap);
    }
}

fn id_or_new(o: &Input, label: &str) -> Result<String> {
    Ok(n::text(o.get("id"), label, 160)?.unwrap_or_else(n::new_id))
}

/// A template id, or `None` when unknown.
pub fn template_id(value: Option<&Value>) -> Option<String> {
    let t = value?.as_str()?.trim();
    TEMPLATE_IDS.contains(&t).then(|| t.to_string())
}

/// A link from input; `None` when it has neither a target card nor a URL.
pub fn link(o: &Input, now: i64) -> Result<Option<Link>> {
    let target = n::text(o.get("target_card_id"), "link targetCardId", 120)?;
    let url = n::text(o.get("url"), "link url", 2000)?;
    if target.is_none() && url.is_none() {
        return Ok(None);
    }
    let kind = o
        .get("type")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| LINK_TYPES.contains(t))
        .unwrap_or("relates_to");
    Ok(Some(Link {
        id: id_or_new(o, "link id")?,
        kind: kind.to_string(),
        created_at: n::timestamp(o.get("created_at")).unwrap_or(now),
        target_card_id: target,
        title: n::text(o.get("title"), "link title", 180)?,
        url,
    }))
}

/// A proof entry from input.
pub fn proof(o: &Input, now: i64) -> Result<Proof> {
    let status = o
        .get("status")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| ["passed", "failed", "skipped", "unknown"].contains(s))
        .unwrap_or("unknown");
    Ok(Proof {
        id: id_or_new(o, "proof id")?,
        status: status.to_string(),
        created_at: n::timestamp(o.get("created_at")).unwrap_or(now),
        label: n::text(o.get("label"), "proof label", 160)?,
        command: n::text(o.get("command"), "proof command", 1000)?,
        url: n::text(o.get("url"), "proof url", 2000)?,
        note: n::text(o.get("note"), "proof note", 2000)?,
    })
}

/// An artifact from input; `None` without a URL or path.
pub fn artifact(o: &Input, now: i64) -> Result<Option<Artifact>> {
    let url = n::text(o.get("url"), "artifact url", 2000)?;
    let path = n::text(o.get("path"), "artifact path", 2000)?;
    let label = n::text(o.get("label"), "artifact label", 160)?;
    let mime_type = n::text(o.get("mime_type"), "artifact mimeType", 160)?;
    if url.is_none() && path.is_none() {
        return Ok(None);
    }
    Ok(Some(Artifact {
        id: id_or_new(o, "artifact id")?,
        created_at: n::timestamp(o.get("created_at")).unwrap_or(now),
        label,
        url,
        path,
        mime_type,
    }))
}

/// A worker log from input; `None` without a message.
pub fn worker_log(o: &Input, now: i64) -> Result<Option<WorkerLog>> {
    let Some(message) = n::text(o.get("message"), "worker log message", 800)? else {
        return Ok(None);
    };
    Ok(Some(WorkerLog {
        id: id_or_new(o, "worker log id")?,
        created_at: n::timestamp(o.get("created_at")).unwrap_or(now),
        level: o
            .get("level")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|l| ["info", "warning", "error"].contains(l))
            .unwrap_or("info")
            .to_string(),
        message,
        session_key: n::text(o.get("session_key"), "worker log sessionKey", 240)?,
        run_id: n::text(o.get("run_id"), "worker log runId", 160)?,
    }))
}

fn attempt(o: &Input) -> Result<Option<Attempt>> {
    let (Some(id), Some(started_at)) = (
        n::text(o.get("id"), "attempt id", 240)?,
        n::timestamp(o.get("started_at")).filter(|t| *t > 0),
    ) else {
        return Ok(None);
    };
    Ok(Some(Attempt {
        id,
        status: o
            .get("status")
            .and_then(Value::as_str)
            .filter(|s| ["running", "succeeded", "failed", "blocked", "stopped"].contains(s))
            .unwrap_or("running")
            .to_string(),
        started_at,
        ended_at: n::timestamp(o.get("ended_at")),
        engine: n::text(o.get("engine"), "attempt engine", 40)?,
        mode: n::text(o.get("mode"), "attempt mode", 40)?,
        model: n::text(o.get("model"), "attempt model", 160)?,
        session_key: n::text(o.get("session_key"), "attempt sessionKey", 240)?,
        run_id: n::text(o.get("run_id"), "attempt runId", 160)?,
        error: n::text(o.get("error"), "attempt error", 800)?,
    }))
}

fn comment(o: &Input) -> Result<Option<Comment>> {
    let (Some(id), Some(body), Some(created_at)) = (
        n::text(o.get("id"), "comment id", 160)?,
        n::text(o.get("body"), "comment body", 2000)?,
        n::timestamp(o.get("created_at")),
    ) else {
        return Ok(None);
    };
    Ok(Some(Comment {
        id,
        body,
        created_at,
        updated_at: n::timestamp(o.get("updated_at")),
    }))
}

const ACTIONS: [&str; 5] = ["claim", "unblock", "reassign", "add_proof", "open_session"];
const DIAGNOSTIC_KINDS: [&str; 6] = [
    "stranded_ready",
    "running_without_heartbeat",
    "blocked_too_long",
    "repeated_failures",
    "missing_proof",
    "orphaned_session",
];

fn diagnostic(o: &Input, now: i64) -> Result<Option<Diagnostic>> {
    let Some(kind) = o
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| DIAGNOSTIC_KINDS.contains(k))
    else {
        return Ok(None);
    };
    let mut actions = Vec::new();
    if let Some(Value::Array(list)) = o.get("actions") {
        for a in list.iter().filter_map(Value::as_object) {
            let k = a.get("kind").and_then(Value::as_str).unwrap_or("");
            if let (true, Some(label)) = (
                ACTIONS.contains(&k),
                n::text(a.get("label"), "diagnostic action label", 120)?,
            ) {
                actions.push(DiagnosticAction {
                    kind: k.to_string(),
                    label,
                });
            }
        }
    }
    actions.truncate(4);
    let first = n::timestamp(o.get("first_seen_at")).unwrap_or(now);
    Ok(Some(Diagnostic {
        kind: kind.to_string(),
        severity: o
            .get("severity")
            .and_then(Value::as_str)
            .filter(|s| ["warning", "error", "critical"].contains(s))
            .unwrap_or("warning")
            .to_string(),
        title: n::text(o.get("title"), "diagnostic title", 160)?.unwrap_or_default(),
        detail: n::text(o.get("detail"), "diagnostic detail", 800)?.unwrap_or_default(),
        first_seen_at: first,
        last_seen_at: n::timestamp(o.get("last_seen_at")).unwrap_or(first),
        count: n::timestamp(o.get("count")).unwrap_or(1).max(1),
        actions,
    }))
}

/// A notification from input (`run_id` is capped at 160 like every other run id).
pub fn notification(o: &Input, now: i64) -> Result<Option<Notification>> {
    let Some(kind) = o
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| ["completed", "failed", "stale"].contains(k))
    else {
        return Ok(None);
    };
    let Some(message) = n::text(o.get("message"), "notification message", 240)? else {
        return Ok(None);
    };
    Ok(Some(Notification {
        id: id_or_new(o, "notification id")?,
        kind: kind.to_string(),
        created_at: n::timestamp(o.get("created_at")).unwrap_or(now),
        sequence: o.get("sequence").and_then(Value::as_i64),
        message,
        session_key: n::text(o.get("session_key"), "notification sessionKey", 240)?,
        run_id: n::text(o.get("run_id"), "notification runId", 160)?,
    }))
}

/// A stale marker; `null` clears.
pub fn stale(value: &Value, now: i64) -> Result<Option<Stale>> {
    let obj = match value {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        _ => return Err(Error::validation("metadata.stale must be a dict.")),
    };
    Ok(Some(Stale {
        detected_at: n::timestamp(obj.get("detected_at")).unwrap_or(now),
        last_session_updated_at: n::timestamp(obj.get("last_session_updated_at")),
        reason: n::text(obj.get("reason"), "stale reason", 240)?
            .unwrap_or_else(|| "Session has not reported recent activity.".into()),
    }))
}

fn worker_protocol(value: &Value, now: i64) -> Result<Option<WorkerProtocol>> {
    let Some(obj) = value.as_object() else {
        return Ok(None);
    };
    let Some(state) = obj
        .get("state")
        .and_then(Value::as_str)
        .filter(|s| ["idle", "running", "completed", "blocked", "violated"].contains(s))
    else {
        return Ok(None);
    };
    Ok(Some(WorkerProtocol {
        state: state.to_string(),
        updated_at: n::timestamp(obj.get("updated_at")).unwrap_or(now),
        detail: n::text(obj.get("detail"), "worker protocol detail", 800)?,
    }))
}

/// Apply a generic metadata patch onto `base` (the existing document).
pub fn apply_patch(base: &Metadata, patch: &Input, now: i64) -> Result<Metadata> {
    let mut m = base.clone();
    for (key, value) in patch {
        match key.as_str() {
            "attempts" => {
                m.attempts = entries(value, key)?
                    .into_iter()
                    .map(attempt)
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .flatten()
                    .collect();
                keep_last(&mut m.attempts, MAX_CARD_ATTEMPTS);
            }
            "comments" => {
                m.comments = entries(value, key)?
                    .into_iter()
                    .map(comment)
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .flatten()
                    .collect();
                keep_last(&mut m.comments, MAX_CARD_COMMENTS);
            }
            "links" => {
                let deps: Vec<Link> = base
                    .links
                    .iter()
                    .filter(|l| l.is_dependency())
                    .cloned()
                    .collect();
                let mut ordinary: Vec<Link> = Vec::new();
                for o in entries(value, key)? {
                    if let Some(l) = link(o, now)? {
                        if !l.is_dependency() {
                            ordinary.push(l);
                        }
                    }
                }
                keep_last(&mut ordinary, MAX_CARD_LINKS.saturating_sub(deps.len()));
                m.links = deps;
                m.links.extend(ordinary);
            }
            "proof" => {
                m.proof = entries(value, key)?
                    .into_iter()
                    .map(|o| proof(o, now))
                    .collect::<Result<Vec<_>>>()?;
                keep_last(&mut m.proof, MAX_CARD_PROOF);
            }
            "artifacts" => {
                m.artifacts = entries(value, key)?
                    .into_iter()
                    .map(|o| artifact(o, now))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .flatten()
                    .collect();
                keep_last(&mut m.artifacts, MAX_CARD_ARTIFACTS);
            }
            // Owned by add_attachment / delete_attachment (no forged index entries).
            "attachments" => {}
            "worker_logs" => {
                m.worker_logs = entries(value, key)?
                    .into_iter()
                    .map(|o| worker_log(o, now))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .flatten()
                    .collect();
                keep_last(&mut m.worker_logs, MAX_CARD_WORKER_LOGS);
            }
            "worker_protocol" => m.worker_protocol = worker_protocol(value, now)?,
            "automation" => m.automation = n::automation(value)?,
            "claim" => m.claim = n::claim(value, base.claim.as_ref(), now)?,
            "diagnostics" => {
                m.diagnostics = entries(value, key)?
                    .into_iter()
                    .map(|o| diagnostic(o, now))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .flatten()
                    .collect();
                keep_last(&mut m.diagnostics, MAX_CARD_DIAGNOSTICS);
            }
            "notifications" => {
                m.notifications = entries(value, key)?
                    .into_iter()
                    .map(|o| notification(o, now))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .flatten()
                    .collect();
                keep_last(&mut m.notifications, MAX_CARD_NOTIFICATIONS);
            }
            "template_id" => m.template_id = template_id(Some(value)),
            "archived_at" => m.archived_at = n::timestamp(Some(value)).filter(|t| *t > 0),
            "stale" => m.stale = stale(value, now)?,
            "lifecycle_status_source_updated_at" => {
                m.lifecycle_status_source_updated_at = n::timestamp(Some(value))
            }
            "failure_count" => {
                m.failure_count = match value {
                    Value::Null => 0,
                    Value::Number(_) => n::timestamp(Some(value)).unwrap_or(0),
                    _ => {
                        return Err(Error::validation(
                            "metadata.failure_count must be a number.",
                        ))
                    }
                }
            }
            other => {
                return Err(Error::validation(format!(
                    "metadata has no field {other:?}; known fields: {}.",
                    KEYS.join(", ")
                )))
            }
        }
    }
    Ok(m)
}
