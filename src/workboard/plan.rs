//! Planning: `specify` (clarify a rough card, which only goes to `todo`) and
//! `decompose` (split a card into linked children).
//!
//! Invariants: each call is one transaction, so the seed's rollback (delete the
//! children created by the call, restore reused idempotent children and the
//! parent) is the transaction's rollback: a failed call writes nothing, and no
//! other writer can observe a half-built decomposition. The parent gets exactly
//! one extra `specified` / `decomposed` event, after the write that changed it.
//! Children are created with the parent as their only dependency, inherit the
//! parent's board and tenant, and derive idempotency keys `<parentKey>:child:<n>`
//! (omitted when longer than 160 characters).

use serde::Serialize;
use serde_json::Value;

use super::cards::{apply_update, assert_status_allowed, commit, create_in, write, CREATE_KEYS};
use super::deps::link_in;
use super::events::plain;
use super::model::*;
use super::normalize::{self as n, new_id, Input};
use super::normalize_meta::keep_last;
use super::persist::require;
use super::workflow::complete_in;
use super::{assert_scope, Scope, Workboard};
use crate::error::{Error, Result};
use crate::store::Tx;

/// Most children one `decompose` call may create.
pub const MAX_DECOMPOSE_CHILDREN: usize = 20;
/// Longest idempotency key (a longer derived child key is omitted).
pub const MAX_IDEMPOTENCY_KEY: usize = 160;

/// Result of `decompose`: the parent and the children in input order.
#[derive(Debug, Clone, Serialize)]
pub struct Decomposed {
    pub parent: Card,
    pub children: Vec<Card>,
}

fn add_comment(meta: &mut Metadata, body: &str, now: i64) {
    meta.comments.push(Comment {
        id: new_id(),
        body: body.to_string(),
        created_at: now,
        updated_at: None,
    });
    keep_last(&mut meta.comments, MAX_CARD_COMMENTS);
}

/// Re-persist `card` with one extra event of `kind` (no other change).
fn mark(tx: &Tx, card: Card, kind: &str, now: i64) -> Result<Card> {
    commit(
        tx,
        Some(&card),
        card.clone(),
        Some(plain(kind, now)),
        now,
        true,
    )
}

fn summary(input: &Input, label: &str) -> Result<Option<String>> {
    n::text(input.get("summary"), label, 2000)
}

/// The create input of child `index` (1-based) of `parent`.
fn child_input(parent: &Card, child: &Value, index: usize) -> Result<Input> {
    let Value::Object(child) = child else {
        return Err(Error::validation("children must be objects."));
    };
    if let Some(k) = child
        .keys()
        .find(|k| !CREATE_KEYS.contains(&k.as_str()) || *k == "parents")
    {
        return Err(Error::validation(format!("child has no field {k:?}.")));
    }
    let mut input = child.clone();
    let automation = parent.automation();
    input.insert("parents".into(), Value::from(vec![parent.id.clone()]));
    input.insert(
        "created_by_card_id".into(),
        Value::String(parent.id.clone()),
    );
    for (key, inherited) in [
        ("board_id", automation.and_then(|a| a.board_id.clone())),
        ("tenant", automation.and_then(|a| a.tenant.clone())),
    ] {
        if n::given(&input, key).is_none() {
            match inherited {
                Some(v) => input.insert(key.into(), Value::String(v)),
                None => input.remove(key),
            };
        }
    }
    if n::given(&input, "idempotency_key").is_none() {
        let derived = automation
            .and_then(|a| a.idempotency_key.as_deref())
            .map(|k| format!("{k}:child:{index}"))
            .filter(|k| k.chars().count() <= MAX_IDEMPOTENCY_KEY);
        match derived {
            Some(k) => input.insert("idempotency_key".into(), Value::String(k)),
            None => input.remove("idempotency_key"),
        };
    }
    Ok(input)
}

/// `completeDirect` of the decomposed parent: the workflow's `complete` with the
/// summary and the children as `created_card_ids` (scope already checked).
fn complete_parent(
    tx: &Tx,
    parent: &Card,
    summary: Option<&str>,
    children: &[String],
    now: i64,
) -> Result<Card> {
    let mut input = Input::new();
    if let Some(s) = summary {
        input.insert("summary".into(), Value::String(s.to_string()));
    }
    input.insert(
        "created_card_ids".into(),
        Value::Array(children.iter().cloned().map(Value::String).collect()),
    );
    complete_in(tx, &parent.id, &input, None, now)
}

/// Keep the parent open: `triage`/`backlog` → `todo`, summary and children
/// recorded in its automation, holds enforced.
fn keep_parent_open(
    tx: &Tx,
    parent: &Card,
    summary: Option<&str>,
    children: &[String],
    now: i64,
) -> Result<Card> {
    let mut next = parent.clone();
    if parent.status == "triage" || parent.status == "backlog" {
        next.status = "todo".into();
    }
    let mut meta = next.meta();
    if next.status != parent.status {
        meta.lifecycle_status_source_updated_at = None;
    }
    let mut automation = meta.automation.clone().unwrap_or_default();
    if let Some(s) = summary {
        automation.summary = Some(s.to_string());
    }
    automation.created_card_ids = Some(children.to_vec());
    meta.automation = Some(automation);
    next.set_meta(meta);
    assert_status_allowed(tx, parent, &next, now)?;
    write(tx, parent, next, now)
}

impl Workboard {
    /// Clarify a `triage`, `backlog` or `todo` card: apply the patch (the fields of
    /// `update`), move it to `todo` (holds enforced), keep `summary` (at most 2000
    /// characters) as a comment and in `automation.summary`, and append a
    /// `specified` event.
    pub fn specify(
        &self,
        id: &str,
        input: &Input,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        if let Some(k) = input.keys().find(|k| {
            *k != "summary" && (!CREATE_KEYS.contains(&k.as_str()) || *k == "parents" || *k == "id")
        }) {
            return Err(Error::validation(format!(
                "specify input has no field {k:?}."
            )));
        }
        let summary = summary(input, "spec summary")?;
        if let Some(status) = n::given(input, "status") {
            if n::status(Some(status), "todo")? != "todo" {
                return Err(Error::invalid_state("specified cards must move to todo."));
            }
        }
        let mut patch = input.clone();
        patch.remove("summary");
        patch.insert("status".into(), Value::String("todo".into()));
        self.store.write(|tx| {
            let card = require(tx, id.trim())?;
            assert_scope(&card, scope)?;
            if !["triage", "backlog", "todo"].contains(&card.status.as_str()) {
                return Err(Error::invalid_state(
                    "only triage, backlog, or todo cards can be specified.",
                ));
            }
            let mut next = apply_update(tx, &card, &patch, true, now)?;
            if let Some(s) = &summary {
                let mut meta = next.meta();
                add_comment(&mut meta, s, now);
                let mut automation = meta.automation.clone().unwrap_or_default();
                automation.summary = Some(s.clone());
                meta.automation = Some(automation);
                next.set_meta(meta);
            }
            mark(tx, next, "specified", now)
        })
    }

    /// Split a card into 1..=20 children linked to it (each a create with the
    /// parent as dependency, inheriting board and tenant, with a derived
    /// idempotency key). An idempotent hit reuses the existing card and links it.
    /// With `complete_parent` (default) the parent is completed with the children
    /// as `created_card_ids`; otherwise it stays open (`triage`/`backlog` → `todo`).
    /// The parent gets a `decomposed` event. Any error writes nothing.
    pub fn decompose(
        &self,
        id: &str,
        input: &Input,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Decomposed> {
        let now = self.now(now_ms)?;
        if let Some(k) = input
            .keys()
            .find(|k| !["summary", "children", "complete_parent"].contains(&k.as_str()))
        {
            return Err(Error::validation(format!(
                "decompose input has no field {k:?}."
            )));
        }
        let children = match input.get("children") {
            Some(Value::Array(items)) if !items.is_empty() => items.clone(),
            Some(Value::Array(_)) | None | Some(Value::Null) => {
                return Err(Error::validation("children are required."))
            }
            Some(other) => {
                return Err(Error::validation(format!(
                    "children must be a list, got {}.",
                    n::type_name(other)
                )))
            }
        };
        if children.len() > MAX_DECOMPOSE_CHILDREN {
            return Err(Error::validation(
                "at most 20 children can be created at once.",
            ));
        }
        let complete = match input.get("complete_parent") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::validation(format!(
                    "complete_parent must be a bool, got {}.",
                    n::type_name(other)
                )))
            }
        };
        let summary = summary(input, "decompose summary")?;
        self.store.write(|tx| {
            let parent = require(tx, id.trim())?;
            assert_scope(&parent, scope)?;
            let mut ids: Vec<String> = Vec::with_capacity(children.len());
            for (i, child) in children.iter().enumerate() {
                let fresh = require(tx, &parent.id)?;
                let card = create_in(tx, &child_input(&fresh, child, i + 1)?, now)?;
                if !card.parent_ids().contains(&parent.id) {
                    link_in(tx, &parent.id, &card.id, true, None, now)?;
                }
                ids.push(card.id);
            }
            let current = require(tx, &parent.id)?;
            let parent = if complete {
                complete_parent(tx, &current, summary.as_deref(), &ids, now)?
            } else {
                keep_parent_open(tx, &current, summary.as_deref(), &ids, now)?
            };
            let parent = mark(tx, parent, "decomposed", now)?;
            let children = ids
                .iter()
                .map(|c| require(tx, c))
                .collect::<Result<Vec<_>>>()?;
            Ok(Decomposed { parent, children })
        })
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
