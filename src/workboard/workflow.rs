//! Hand-offs and operator recovery: `complete`, `block`, `unblock`, `reassign`,
//! `reclaim`, `promote`.
//!
//! Invariants: each call is one transaction and one card write (one event); a
//! worker scope must name the current claim (token, else owner) and an absent
//! scope is the operator; `complete` only accepts `created_card_ids` that are
//! linked both ways to the card (a `created_by_card_id` alone is spoofable);
//! status holds are enforced by `complete`, `reassign`, `reclaim` and `promote`
//! (unless forced), never by `block`; a hand-off clears the claim and closes
//! running attempts, and `complete`/`block` notify through the durable log.

use serde_json::Value;

use super::budget::close_running_attempts;
use super::cards::{assert_status_allowed, write};
use super::deps::promote_in;
use super::metadata::notify;
use super::model::*;
use super::normalize::{self as n, new_id, Input};
use super::normalize_meta::{self as nm, keep_last};
use super::persist::{self, require};
use super::{assert_scope, Scope, Workboard};
use crate::error::{Error, Result};
use crate::store::Tx;

const COMPLETE_KEYS: [&str; 4] = ["summary", "proof", "artifacts", "created_card_ids"];

fn check_keys(input: &Input, what: &str, allowed: &[&str]) -> Result<()> {
    match input.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Error::validation(format!("{what} has no field {k:?}."))),
        None => Ok(()),
    }
}

/// Remove the diagnostics of `kinds`.
pub(crate) fn clear_diagnostics(meta: &mut Metadata, kinds: &[&str]) {
    meta.diagnostics
        .retain(|d| !kinds.contains(&d.kind.as_str()));
}

/// Move `next` to `status` with the card timestamp rules of `update`: `started_at`
/// set on entering `running`, `completed_at` only while `done`, and a copied
/// lifecycle source dropped on a status change.
pub(crate) fn set_status(
    existing: &Card,
    next: &mut Card,
    meta: &mut Metadata,
    status: &str,
    now: i64,
) {
    next.status = status.to_string();
    if status == "running" && next.started_at.is_none() {
        next.started_at = Some(now);
    }
    next.completed_at = if status == "done" {
        existing.completed_at.or(Some(now))
    } else {
        None
    };
    if existing.status != status {
        meta.lifecycle_status_source_updated_at = None;
    }
}

fn push_comment(meta: &mut Metadata, body: &str, now: i64) {
    meta.comments.push(Comment {
        id: new_id(),
        body: body.to_string(),
        created_at: now,
        updated_at: None,
    });
    keep_last(&mut meta.comments, MAX_CARD_COMMENTS);
}

fn end_execution(next: &mut Card, status: &str, now: i64) {
    if let Some(e) = next.execution.as_mut().filter(|e| e.status == "running") {
        e.status = status.to_string();
        e.updated_at = now;
    }
}

fn reason(value: Option<&str>, label: &str, max: usize) -> Result<Option<String>> {
    n::text(value.map(|s| Value::String(s.into())).as_ref(), label, max)
}

/// Parsed `complete` input.
struct Handoff {
    summary: Option<String>,
    proof: Option<Proof>,
    artifacts: Vec<Artifact>,
    created: Option<Vec<String>>,
}

fn handoff(input: &Input, now: i64) -> Result<Handoff> {
    check_keys(input, "complete input", &COMPLETE_KEYS)?;
    let summary = n::text(input.get("summary"), "summary", 2000)?;
    let proof = match input.get("proof") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(Proof {
            id: new_id(),
            created_at: now,
            ..nm::proof(o, now)?
        }),
        Some(_) => return Err(Error::validation("proof must be a dict.")),
    };
    let mut artifacts = Vec::new();
    match input.get("artifacts") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::Object(o) = item else {
                    return Err(Error::validation("artifacts entries must be dicts."));
                };
                let a = nm::artifact(o, now)?
                    .ok_or_else(|| Error::validation("artifact url or path is required."))?;
                artifacts.push(Artifact {
                    id: new_id(),
                    created_at: now,
                    ..a
                });
            }
        }
        Some(_) => return Err(Error::validation("artifacts must be a list.")),
    }
    let created = n::string_list(input.get("created_card_ids"), "created card ids", 120)?;
    Ok(Handoff {
        summary,
        proof,
        artifacts,
        created,
    })
}

/// `complete` inside `tx`.
pub(crate) fn complete_in(
    tx: &Tx,
    id: &str,
    input: &Input,
    scope: Option<&Scope>,
    now: i64,
) -> Result<Card> {
    let h = handoff(input, now)?;
    let card = require(tx, id.trim())?;
    assert_scope(&card, scope)?;
    let children = card.meta().child_ids();
    for cid in h.created.iter().flatten() {
        let created = persist::load(tx, cid)?
            .ok_or_else(|| Error::not_found(format!("created card not found: {cid}")))?;
        if !children.contains(cid) || !created.parent_ids().contains(&card.id) {
            return Err(Error::validation(format!(
                "created card is not linked to this card: {cid}"
            )));
        }
    }
    let mut next = card.clone();
    let mut meta = next.meta();
    clear_diagnostics(&mut meta, &["missing_proof"]);
    if let Some(p) = &h.proof {
        meta.proof.push(p.clone());
        keep_last(&mut meta.proof, MAX_CARD_PROOF);
    }
    meta.artifacts.extend(h.artifacts.iter().cloned());
    keep_last(&mut meta.artifacts, MAX_CARD_ARTIFACTS);
    set_status(&card, &mut next, &mut meta, "done", now);
    end_execution(&mut next, "done", now);
    meta.claim = None;
    close_running_attempts(&mut meta, now, "succeeded", None);
    meta.failure_count = 0;
    let mut automation = meta.automation.clone().unwrap_or_default();
    if let Some(s) = &h.summary {
        automation.summary = Some(s.clone());
        push_comment(&mut meta, s, now);
    }
    if let Some(ids) = &h.created {
        automation.created_card_ids = (!ids.is_empty()).then(|| ids.clone());
    }
    meta.automation = (!automation.is_empty()).then_some(automation);
    notify(
        tx,
        &card,
        &mut meta,
        "completed",
        h.summary.as_deref().unwrap_or("Workboard card completed."),
        card.card_session_key(),
        card.card_run_id(),
        now,
    )?;
    next.set_meta(meta);
    assert_status_allowed(tx, &card, &next, now)?;
    write(tx, &card, next, now)
}

/// `block` inside `tx` with the reason `why`.
pub(crate) fn block_in(
    tx: &Tx,
    id: &str,
    why: &str,
    scope: Option<&Scope>,
    now: i64,
) -> Result<Card> {
    let card = require(tx, id.trim())?;
    assert_scope(&card, scope)?;
    let mut next = card.clone();
    let mut meta = next.meta();
    set_status(&card, &mut next, &mut meta, "blocked", now);
    end_execution(&mut next, "blocked", now);
    meta.claim = None;
    close_running_attempts(&mut meta, now, "blocked", Some(why));
    meta.failure_count += 1;
    push_comment(&mut meta, why, now);
    notify(
        tx,
        &card,
        &mut meta,
        "failed",
        why,
        card.card_session_key(),
        card.card_run_id(),
        now,
    )?;
    next.set_meta(meta);
    write(tx, &card, next, now)
}

impl Workboard {
    /// Complete a card: `done`, claim cleared, running attempts succeeded, failures
    /// reset, the summary kept as a comment and in `automation.summary`, proof and
    /// artifacts appended, a `completed` notification. `created_card_ids` must be
    /// children linked both ways. Dependency holds apply.
    pub fn complete(
        &self,
        id: &str,
        input: &Input,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        self.store
            .write(|tx| complete_in(tx, id, input, scope, now))
    }

    /// Block a card: `blocked`, claim cleared, running attempts blocked with the
    /// reason, one failure counted, the reason kept as a comment, a `failed`
    /// notification. Holds do not apply.
    pub fn block(
        &self,
        id: &str,
        reason_text: Option<&str>,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let why = reason(reason_text, "reason", 2000)?
            .unwrap_or_else(|| "Workboard card blocked.".into());
        self.store.write(|tx| block_in(tx, id, &why, scope, now))
    }

    /// Move a card back to `todo`, clearing `blocked_too_long` and the stale marker.
    pub fn unblock(&self, id: &str, scope: Option<&Scope>, now_ms: Option<i64>) -> Result<Card> {
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let card = require(tx, id.trim())?;
            assert_scope(&card, scope)?;
            let mut next = card.clone();
            let mut meta = next.meta();
            set_status(&card, &mut next, &mut meta, "todo", now);
            clear_diagnostics(&mut meta, &["blocked_too_long"]);
            meta.stale = None;
            next.set_meta(meta);
            write(tx, &card, next, now)
        })
    }

    /// Reassign a card to `agent_id` (and `status`, holds enforced); unless
    /// `reset_failures` is `false` the failure count and the `blocked_too_long` /
    /// `repeated_failures` diagnostics are cleared. A `reason` becomes a comment.
    #[allow(clippy::too_many_arguments)]
    pub fn reassign(
        &self,
        id: &str,
        agent_id: Option<&str>,
        status: Option<&str>,
        reset_failures: Option<bool>,
        reason_text: Option<&str>,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let agent = reason(agent_id, "agent id", 120)?;
        let status = status
            .map(|s| n::status(Some(&Value::String(s.into())), "todo"))
            .transpose()?;
        let why = reason(reason_text, "reason", 1000)?;
        self.store.write(|tx| {
            let card = require(tx, id.trim())?;
            assert_scope(&card, scope)?;
            let mut next = card.clone();
            let mut meta = next.meta();
            if let Some(a) = &agent {
                next.agent_id = Some(a.clone());
            }
            if let Some(s) = &status {
                set_status(&card, &mut next, &mut meta, s, now);
            }
            if reset_failures != Some(false) {
                meta.failure_count = 0;
                clear_diagnostics(&mut meta, &["blocked_too_long", "repeated_failures"]);
            }
            if let Some(w) = &why {
                push_comment(&mut meta, w, now);
            }
            next.set_meta(meta);
            if status.is_some() {
                assert_status_allowed(tx, &card, &next, now)?;
            }
            write(tx, &card, next, now)
        })
    }

    /// Take a card back from its worker: the claim is cleared, a running execution
    /// removed, running attempts `stopped` with the reason (kept as a comment), the
    /// stale marker cleared; a `running` card goes to `ready` unless `status` is
    /// given (holds enforced), then dependency promotion runs. Failures are unchanged.
    pub fn reclaim(
        &self,
        id: &str,
        status: Option<&str>,
        reason_text: Option<&str>,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let status = status
            .map(|s| n::status(Some(&Value::String(s.into())), "todo"))
            .transpose()?;
        let why = reason(reason_text, "reason", 1000)?
            .unwrap_or_else(|| "Workboard claim reclaimed.".into());
        self.store.write(|tx| {
            let card = require(tx, id.trim())?;
            assert_scope(&card, scope)?;
            let target = match &status {
                Some(s) => s.clone(),
                None if card.status == "running" => "ready".into(),
                None => card.status.clone(),
            };
            let mut next = card.clone();
            let mut meta = next.meta();
            set_status(&card, &mut next, &mut meta, &target, now);
            if next
                .execution
                .as_ref()
                .is_some_and(|e| e.status == "running")
            {
                next.execution = None;
            }
            meta.claim = None;
            close_running_attempts(&mut meta, now, "stopped", Some(&why));
            push_comment(&mut meta, &why, now);
            meta.stale = None;
            next.set_meta(meta);
            assert_status_allowed(tx, &card, &next, now)?;
            let written = write(tx, &card, next, now)?;
            promote_in(tx, written, now)
        })
    }

    /// Move a card to `ready`, clearing `stranded_ready`, `blocked_too_long` and the
    /// stale marker; holds apply unless `force`. A `reason` becomes a comment.
    pub fn promote(
        &self,
        id: &str,
        force: bool,
        reason_text: Option<&str>,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let why = reason(reason_text, "reason", 1000)?;
        self.store.write(|tx| {
            let card = require(tx, id.trim())?;
            assert_scope(&card, scope)?;
            let mut next = card.clone();
            let mut meta = next.meta();
            set_status(&card, &mut next, &mut meta, "ready", now);
            clear_diagnostics(&mut meta, &["stranded_ready", "blocked_too_long"]);
            meta.stale = None;
            if let Some(w) = &why {
                push_comment(&mut meta, w, now);
            }
            next.set_meta(meta);
            if !force {
                assert_status_allowed(tx, &card, &next, now)?;
            }
            write(tx, &card, next, now)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::normalize::Input;
    use super::super::*;

    use crate::test_support::workboard as wb;

    fn obj(v: Value) -> Input {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn complete_is_fenced_by_the_current_token() {
        let w = wb();
        let card = w.create(&obj(json!({"title": "c"})), None).unwrap();
        let first = w
            .claim(&card.id, "main", Some("t1"), Some(1.0), None)
            .unwrap();
        w.reclaim(&card.id, None, None, None, Some(2_000)).unwrap();
        w.claim(&card.id, "main", Some("t2"), None, Some(3_000))
            .unwrap();
        let zombie = Scope {
            owner_id: Some("main".into()),
            token: Some(first.token),
        };
        let err = w
            .complete(
                &card.id,
                &obj(json!({"summary": "late"})),
                Some(&zombie),
                Some(4_000),
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "card is claimed by main.");
        assert_eq!(w.get(&card.id).unwrap().unwrap().status, "running");
        let owner = Scope {
            owner_id: None,
            token: Some("t2".into()),
        };
        let done = w
            .complete(
                &card.id,
                &obj(json!({"summary": "ok"})),
                Some(&owner),
                Some(5_000),
            )
            .unwrap();
        assert_eq!(done.status, "done");
        assert!(done.claim().is_none());
    }

    #[test]
    fn block_counts_one_failure_and_notifies() {
        let w = wb();
        let card = w.create(&obj(json!({"title": "b"})), None).unwrap();
        let blocked = w.block(&card.id, None, None, None).unwrap();
        let meta = blocked.meta();
        assert_eq!(meta.failure_count, 1);
        assert_eq!(meta.notifications[0].message, "Workboard card blocked.");
        assert_eq!(meta.comments[0].body, "Workboard card blocked.");
    }
}
