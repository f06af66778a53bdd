//! Input normalization: JSON-shaped inputs (the Python keyword arguments) into
//! the typed model, with the seed's caps and error texts.
//!
//! Invariants: text is trimmed and empty text is absent; a value over its cap is
//! rejected (`<field> must be N characters or fewer.`), never stored; a field of
//! the wrong JSON type is rejected naming the field; timestamps outside
//! `0..=MAX_DATE_TIMESTAMP_MS` are treated as absent.

use serde_json::{Map, Value};

use super::model::*;
use crate::error::{Error, Result};

/// A JSON object input.
pub type Input = Map<String, Value>;

/// A fresh opaque id (UUID v7, time-ordered).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Present and not `null`.
pub fn given<'a>(input: &'a Input, key: &str) -> Option<&'a Value> {
    input.get(key).filter(|v| !v.is_null())
}

fn too_long(label: &str, max: usize) -> Error {
    Error::validation(format!("{label} must be {max} characters or fewer."))
}

/// Optional text: trimmed, empty → `None`, over `max` characters → error.
pub fn text(value: Option<&Value>, label: &str, max: usize) -> Result<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                Ok(None)
            } else if t.chars().count() > max {
                Err(too_long(label, max))
            } else {
                Ok(Some(t.to_string()))
            }
        }
        Some(other) => Err(Error::validation(format!(
            "{label} must be a string, got {}.",
            type_name(other)
        ))),
    }
}

/// Required text.
pub fn required_text(value: Option<&Value>, label: &str, max: usize) -> Result<String> {
    text(value, label, max)?.ok_or_else(|| Error::validation(format!("{label} is required.")))
}

/// JSON type name for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A timestamp (ms): a finite number in `0..=MAX_DATE_TIMESTAMP_MS`, truncated; else `None`.
pub fn timestamp(value: Option<&Value>) -> Option<i64> {
    let f = value?.as_f64()?;
    (f.is_finite() && f >= 0.0 && f <= MAX_DATE_TIMESTAMP_MS as f64).then(|| f.trunc() as i64)
}

/// A timestamp that must be a number when given (`label must be a number.`).
pub fn checked_timestamp(value: Option<&Value>, label: &str) -> Result<Option<i64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(_)) => Ok(timestamp(value)),
        Some(_) => Err(Error::validation(format!("{label} must be a number."))),
    }
}

fn one_of(value: Option<&Value>, allowed: &[&str], label: &str, default: &str) -> Result<String> {
    match value {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) => {
            let t = s.trim().to_ascii_lowercase();
            if t.is_empty() {
                return Ok(default.to_string());
            }
            allowed
                .iter()
                .find(|a| **a == t)
                .map(|a| a.to_string())
                .ok_or_else(|| {
                    Error::validation(format!("{label} must be one of: {}.", allowed.join(", ")))
                })
        }
        Some(_) => Err(Error::validation(format!(
            "{label} must be one of: {}.",
            allowed.join(", ")
        ))),
    }
}

/// A status (`status must be one of: ...`).
pub fn status(value: Option<&Value>, default: &str) -> Result<String> {
    one_of(value, &STATUSES, "status", default)
}

/// A priority (`priority must be one of: ...`).
pub fn priority(value: Option<&Value>, default: &str) -> Result<String> {
    one_of(value, &PRIORITIES, "priority", default)
}

fn lenient(value: Option<&Value>, allowed: &[&str], default: &str) -> String {
    value
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| allowed.contains(&s.as_str()))
        .unwrap_or_else(|| default.to_string())
}

/// Labels: a list or a comma-separated string; trimmed, de-duplicated, at most 12.
pub fn labels(value: Option<&Value>) -> Result<Vec<String>> {
    let raw: Vec<Value> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => s.split(',').map(|p| Value::String(p.into())).collect(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(Error::validation(
                "labels must be an array or comma-separated string.",
            ))
        }
    };
    let mut out: Vec<String> = Vec::new();
    for v in &raw {
        if let Some(l) = text(Some(v), "label", 40)? {
            if !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out.truncate(12);
    Ok(out)
}

/// A string list (`parents`, `skills`, `created card ids`): list or comma string,
/// de-duplicated, at most 20 entries of at most `max` characters.
pub fn string_list(value: Option<&Value>, label: &str, max: usize) -> Result<Option<Vec<String>>> {
    let raw: Vec<Value> = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.split(',').map(|p| Value::String(p.into())).collect(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(Error::validation(format!(
                "{label} must be an array or comma-separated string."
            )))
        }
    };
    let mut out: Vec<String> = Vec::new();
    for v in &raw {
        if !v.is_string() {
            return Err(Error::validation(format!(
                "{label} entries must be strings."
            )));
        }
        if let Some(s) = text(Some(v), &format!("{label} entry"), max)? {
            if !out.contains(&s) {
                if out.len() == MAX_STRING_LIST {
                    return Err(Error::validation(format!(
                        "{label} supports at most {MAX_STRING_LIST} entries."
                    )));
                }
                out.push(s);
            }
        }
    }
    Ok(Some(out))
}

const BOARD_ID_ERROR: &str =
    "board id must start with a letter or number and use letters, numbers, dots, dashes, or underscores.";

/// A board id: trimmed, lower-cased, `^[a-z0-9][a-z0-9._-]{0,79}$`.
pub fn board_id(value: Option<&Value>) -> Result<Option<String>> {
    let Some(raw) = text(value, "board id", 80).map_err(|e| match e {
        Error::Validation(m) if m.contains("must be a string") => Error::validation(BOARD_ID_ERROR),
        other => other,
    })?
    else {
        return Ok(None);
    };
    let id = raw.to_ascii_lowercase();
    let ok = id
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(Some(id))
    } else {
        Err(Error::validation(BOARD_ID_ERROR))
    }
}

fn is_absolute_path(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with('/')
        || p.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && (b[2] == b'/' || b[2] == b'\\'))
}

/// A workspace `{kind, path?, branch?}`.
pub fn workspace(value: Option<&Value>) -> Result<Option<Workspace>> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(Error::validation("workspace must be a dict.")),
    };
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|k| ["scratch", "dir", "worktree"].contains(k))
        .ok_or_else(|| Error::validation("workspace kind must be scratch, dir, or worktree."))?;
    let path = text(obj.get("path"), "workspace path", 2000)?;
    if kind == "dir" && !path.as_deref().is_some_and(is_absolute_path) {
        return Err(Error::validation("dir workspace path must be absolute."));
    }
    Ok(Some(Workspace {
        kind: kind.to_string(),
        path,
        branch: text(obj.get("branch"), "workspace branch", 160)?,
    }))
}

/// A positive integer setting (`max runtime seconds`, `max retries`); `None`, `""` clear it.
pub fn positive_int(value: Option<&Value>, label: &str) -> Result<Option<i64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if !f.is_finite() {
                return Err(Error::validation(format!("{label} must be a number.")));
            }
            Ok(Some((f.trunc().min(i64::MAX as f64) as i64).max(1)))
        }
        Some(_) => Err(Error::validation(format!("{label} must be a number."))),
    }
}

/// The automation keys accepted at the top level of create/update inputs.
pub const AUTOMATION_KEYS: [&str; 9] = [
    "tenant",
    "board_id",
    "created_by_card_id",
    "idempotency_key",
    "skills",
    "workspace",
    "max_runtime_seconds",
    "max_retries",
    "scheduled_at",
];

/// Apply one automation key from an input onto `a` (the key is present).
pub fn apply_automation_key(a: &mut Automation, key: &str, value: &Value) -> Result<()> {
    let v = Some(value);
    match key {
        "tenant" => a.tenant = text(v, "tenant", 80)?,
        "board_id" => a.board_id = board_id(v)?,
        "created_by_card_id" => a.created_by_card_id = text(v, "created by card id", 120)?,
        "idempotency_key" => a.idempotency_key = text(v, "idempotency key", 160)?,
        "skills" => a.skills = string_list(v, "skills", 80)?.filter(|s| !s.is_empty()),
        "workspace" => a.workspace = workspace(v)?,
        "max_runtime_seconds" => a.max_runtime_seconds = positive_int(v, "max runtime seconds")?,
        "max_retries" => a.max_retries = positive_int(v, "max retries")?,
        "scheduled_at" => a.scheduled_at = timestamp(v).filter(|t| *t > 0),
        "summary" => a.summary = text(v, "summary", 2000)?,
        "created_card_ids" => {
            a.created_card_ids = string_list(v, "created card ids", 120)?.filter(|s| !s.is_empty())
        }
        "dispatch_count" => a.dispatch_count = timestamp(v),
        "last_dispatch_at" => a.last_dispatch_at = timestamp(v),
        _ => {}
    }
    Ok(())
}

/// A full automation object (`metadata.automation`).
pub fn automation(value: &Value) -> Result<Option<Automation>> {
    let obj = match value {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        _ => return Err(Error::validation("metadata.automation must be a dict.")),
    };
    let mut a = Automation::default();
    for (k, v) in obj {
        if !v.is_null() {
            apply_automation_key(&mut a, k, v)?;
        }
    }
    Ok((!a.is_empty()).then_some(a))
}

/// An execution: dropped unless it is an object with a `model`.
pub fn execution(value: Option<&Value>, now: i64) -> Result<Option<Execution>> {
    let Some(Value::Object(obj)) = value else {
        return Ok(None);
    };
    let Some(model) = text(obj.get("model"), "execution model", 160)? else {
        return Ok(None);
    };
    let started_at = timestamp(obj.get("started_at"))
        .filter(|t| *t > 0)
        .unwrap_or(now);
    Ok(Some(Execution {
        id: text(obj.get("id"), "execution id", 160)?.unwrap_or_else(new_id),
        kind: "agent-session".into(),
        engine: lenient(obj.get("engine"), &["codex", "claude"], "codex"),
        mode: lenient(obj.get("mode"), &["autonomous", "manual"], "autonomous"),
        status: lenient(
            obj.get("status"),
            &["idle", "running", "review", "blocked", "done"],
            "idle",
        ),
        model,
        session_key: text(obj.get("session_key"), "execution session key", 240)?,
        run_id: text(obj.get("run_id"), "execution run id", 160)?,
        started_at,
        updated_at: timestamp(obj.get("updated_at"))
            .filter(|t| *t > 0)
            .unwrap_or(started_at),
    }))
}

/// A claim from stored/generic metadata, with `fallback` filling missing fields.
pub fn claim(value: &Value, fallback: Option<&Claim>, now: i64) -> Result<Option<Claim>> {
    let obj = match value {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        _ => return Err(Error::validation("metadata.claim must be a dict.")),
    };
    let owner = text(obj.get("owner_id"), "claim ownerId", 120)?
        .or_else(|| fallback.map(|c| c.owner_id.clone()));
    let Some(owner_id) = owner else {
        return Err(Error::validation("claim ownerId is required."));
    };
    let token = text(obj.get("token"), "claim token", 160)?
        .or_else(|| fallback.map(|c| c.token.clone()))
        .unwrap_or_else(new_id);
    let claimed_at = timestamp(obj.get("claimed_at"))
        .or(fallback.map(|c| c.claimed_at))
        .unwrap_or(now);
    let expires_at = match obj.get("expires_at") {
        Some(v) => timestamp(Some(v)).filter(|t| *t > 0),
        None => fallback.and_then(|c| c.expires_at),
    };
    Ok(Some(Claim {
        owner_id,
        token,
        claimed_at,
        last_heartbeat_at: timestamp(obj.get("last_heartbeat_at"))
            .or(fallback.map(|c| c.last_heartbeat_at))
            .unwrap_or(claimed_at),
        expires_at,
    }))
}
