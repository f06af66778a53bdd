//! Card lifecycle: create, get, list, update, move, bulk update, archive, delete.
//!
//! Invariants: `update` applies the stale-lifecycle guard before anything else and
//! returns the card untouched when nothing is left to apply; status holds
//! (dependencies, schedule) are enforced whenever a caller sets a status; a
//! create with parents links them in the same transaction, so a failed link
//! leaves no card behind; idempotent creates are scoped by (board, tenant, key).

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use super::budget::{sync_attempts, trim_to_budget};
use super::events::{self, plain, update_event};
use super::model::*;
use super::normalize::{self as n, given, Input};
use super::normalize_meta as nm;
use super::persist::{self, require};
use super::{assert_scope, deps, Scope, Workboard};
use crate::error::{Error, Result};
use crate::store::Tx;

/// Filters and paging of [`Workboard::list`].
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this board.
    pub board_id: Option<String>,
    /// Only these statuses.
    pub statuses: Option<Vec<String>>,
    /// Only this agent.
    pub agent_id: Option<String>,
    /// `Some(false)` hides archived cards, `Some(true)` shows only archived ones.
    pub archived: Option<bool>,
    /// Page size.
    pub limit: Option<i64>,
    /// Cards to skip.
    pub offset: Option<i64>,
}

/// Result of `bulk_update`.
#[derive(Debug, Clone, Serialize)]
pub struct BulkResult {
    pub cards: Vec<Card>,
}

/// Result of a delete.
#[derive(Debug, Clone, Serialize)]
pub struct Deleted {
    pub deleted: bool,
}

/// Result of `export_cards`: cards and the attachment index (no content).
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    pub cards: Vec<Card>,
    pub attachments: Vec<AttachmentMeta>,
    pub exported_at: i64,
}

/// Result of `runs`.
#[derive(Debug, Clone, Serialize)]
pub struct Runs {
    pub card: Card,
    pub attempts: Vec<Attempt>,
}

pub(crate) const CREATE_KEYS: [&str; 27] = [
    "title",
    "notes",
    "status",
    "priority",
    "labels",
    "agent_id",
    "session_key",
    "run_id",
    "task_id",
    "source_url",
    "execution",
    "metadata",
    "template_id",
    "position",
    "tenant",
    "board_id",
    "created_by_card_id",
    "idempotency_key",
    "skills",
    "workspace",
    "max_runtime_seconds",
    "max_retries",
    "scheduled_at",
    "started_at",
    "completed_at",
    "parents",
    "id",
];

fn check_keys(input: &Input, what: &str, allowed: &[&str]) -> Result<()> {
    match input.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Error::validation(format!("{what} has no field {k:?}."))),
        None => Ok(()),
    }
}

fn metadata_patch(input: &Input) -> Result<Option<&Input>> {
    match input.get("metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(Error::validation("metadata must be a dict.")),
    }
}

fn position(value: Option<&Value>) -> Result<Option<i64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(num)) => {
            let f = num.as_f64().unwrap_or(0.0);
            Ok(Some(if f.is_finite() {
                f.trunc().clamp(0.0, 9e15) as i64
            } else {
                0
            }))
        }
        Some(_) => Err(Error::validation("position must be a number.")),
    }
}

/// Card-level link fields and their caps (bounded, unlike the original).
const CARD_TEXT: [(&str, &str, usize); 5] = [
    ("agent_id", "agent id", 120),
    ("session_key", "session key", 240),
    ("run_id", "run id", 160),
    ("task_id", "task id", 160),
    ("source_url", "source url", 2000),
];

fn set_card_text(card: &mut Card, key: &str, value: Option<String>) {
    match key {
        "agent_id" => card.agent_id = value,
        "session_key" => card.session_key = value,
        "run_id" => card.run_id = value,
        "task_id" => card.task_id = value,
        _ => card.source_url = value,
    }
}

/// Finish a card write: attempts, budget, one event, row, status log, revision.
pub(crate) fn commit(
    tx: &Tx,
    before: Option<&Card>,
    mut next: Card,
    event: Option<Event>,
    now: i64,
    touch: bool,
) -> Result<Card> {
    let mut meta = next.meta();
    let mut seen: Vec<String> = Vec::new();
    meta.links.retain(|l| {
        let fresh = !seen.contains(&l.id);
        seen.push(l.id.clone());
        fresh
    });
    if let Some(exec) = &next.execution {
        sync_attempts(&mut meta, exec, now);
    }
    if meta.automation.as_ref().is_some_and(Automation::is_empty) {
        meta.automation = None;
    }
    trim_to_budget(&mut meta);
    next.set_meta(meta);
    if touch {
        next.updated_at = now;
    }
    let event = match (event, before) {
        (Some(e), _) => e,
        (None, Some(b)) => update_event(b, &next, now),
        (None, None) => plain("edited", now),
    };
    events::push(&mut next, event);
    persist::save(tx, &next)?;
    persist::log_status(tx, &next, before.map(|b| b.status.as_str()), now)?;
    super::notify::log_card_notifications(tx, before, &next)?;
    persist::bump_revision(tx)?;
    Ok(next)
}

/// The status holds (`assertActiveStatusAllowed`).
pub(crate) fn assert_status_allowed(tx: &Tx, existing: &Card, next: &Card, now: i64) -> Result<()> {
    let target = next.status.as_str();
    if ["ready", "running", "review", "done"].contains(&target)
        && !next.parent_ids().is_empty()
        && !persist::parents_done(tx, next)?
    {
        return Err(Error::invalid_state("card dependencies are not done."));
    }
    let scheduled_at = next.automation().and_then(|a| a.scheduled_at);
    if ["ready", "running", "review"].contains(&target)
        && (scheduled_at.is_some_and(|t| t > now)
            || (existing.status == "scheduled" && scheduled_at.is_none()))
    {
        return Err(Error::invalid_state("card is scheduled for later."));
    }
    Ok(())
}

/// Whether a lifecycle status from `src` is older than the card's current status.
fn stale_source(existing: &Card, src: i64) -> bool {
    if let Some(stored) = existing
        .metadata
        .as_ref()
        .and_then(|m| m.lifecycle_status_source_updated_at)
    {
        return src < stored;
    }
    let t = existing.events.iter().rev().find(|e| {
        e.to_status.as_deref() == Some(existing.status.as_str())
            && ((e.kind == "moved" && e.from_status != e.to_status)
                || (e.kind == "created" && existing.status != "todo"))
    });
    t.is_some_and(|e| src < e.at)
}

/// `updateCard`: apply `patch` to `existing`.
pub(crate) fn apply_update(
    tx: &Tx,
    existing: &Card,
    patch: &Input,
    enforce_holds: bool,
    now: i64,
) -> Result<Card> {
    let mut patch = patch.clone();
    let meta_patch = metadata_patch(&patch)?.cloned();
    let src_key = "lifecycle_status_source_updated_at";
    let src = meta_patch
        .as_ref()
        .filter(|m| m.contains_key(src_key))
        .map(|m| n::timestamp(m.get(src_key)).unwrap_or(0));
    if let (Some(_), Some(s)) = (given(&patch, "status"), src) {
        if stale_source(existing, s) {
            patch.remove("status");
            let mut m = meta_patch.clone().unwrap_or_default();
            m.remove(src_key);
            let empty = m.is_empty();
            patch.insert("metadata".into(), Value::Object(m));
            if empty {
                patch.remove("metadata");
            }
            if patch.is_empty() {
                return Ok(existing.clone());
            }
        }
    }
    let meta_patch = metadata_patch(&patch)?.cloned();
    let src = meta_patch
        .as_ref()
        .filter(|m| m.contains_key(src_key))
        .map(|m| n::timestamp(m.get(src_key)).unwrap_or(0));
    let old_meta = existing.meta();
    let fresh = src.is_some() && src != old_meta.lifecycle_status_source_updated_at;

    let mut next = existing.clone();
    let status_given = given(&patch, "status").is_some();
    next.status = n::status(patch.get("status"), &existing.status)?;
    if patch.contains_key("title") {
        next.title = n::required_text(patch.get("title"), "title", 180)?;
    }
    if patch.contains_key("notes") {
        next.notes = n::text(patch.get("notes"), "notes", 4000)?;
    }
    next.priority = n::priority(patch.get("priority"), &existing.priority)?;
    if patch.contains_key("labels") {
        next.labels = n::labels(patch.get("labels"))?;
    }
    for (key, label, max) in CARD_TEXT {
        if patch.contains_key(key) {
            set_card_text(&mut next, key, n::text(patch.get(key), label, max)?);
        }
    }
    if let Some(p) = position(patch.get("position"))? {
        next.position = p;
    }
    match patch.get("execution") {
        None => {
            if patch.contains_key("session_key") && next.session_key != existing.session_key {
                if let Some(e) = next.execution.as_mut() {
                    e.session_key = next.session_key.clone();
                    e.updated_at = now;
                }
            }
        }
        Some(Value::Null) => next.execution = None,
        Some(v) => next.execution = n::execution(Some(v), now)?,
    }
    let mut meta = match &meta_patch {
        Some(m) => nm::apply_patch(&old_meta, m, now)?,
        None => old_meta.clone(),
    };
    if patch.contains_key("template_id") {
        meta.template_id = nm::template_id(patch.get("template_id"));
    }
    let mut automation = meta.automation.clone().unwrap_or_default();
    for key in n::AUTOMATION_KEYS {
        if let Some(v) = patch.get(key) {
            n::apply_automation_key(&mut automation, key, v)?;
        }
    }
    meta.automation = (!automation.is_empty()).then_some(automation);
    if next.status != existing.status && !fresh {
        meta.lifecycle_status_source_updated_at = None;
    }
    match patch.get("started_at") {
        Some(v) if n::timestamp(Some(v)).unwrap_or(0) == 0 => next.started_at = None,
        Some(v) => next.started_at = n::timestamp(Some(v)),
        None if next.status == "running" && next.started_at.is_none() => {
            next.started_at = Some(now)
        }
        None => {}
    }
    let explicit_completed = patch.get("completed_at");
    next.completed_at = if next.status != "done" {
        None
    } else {
        match explicit_completed {
            Some(v) if n::timestamp(Some(v)).unwrap_or(0) == 0 => None,
            Some(v) => n::timestamp(Some(v)),
            None => existing.completed_at.or(Some(now)),
        }
    };
    next.set_meta(meta);
    if enforce_holds && status_given {
        assert_status_allowed(tx, existing, &next, now)?;
    }
    commit(tx, Some(existing), next, None, now, true)
}

/// An internal write of a changed card (no holds), with the seed's event rules.
pub(crate) fn write(tx: &Tx, existing: &Card, next: Card, now: i64) -> Result<Card> {
    commit(tx, Some(existing), next, None, now, true)
}

pub(crate) fn create_in(tx: &Tx, input: &Input, now: i64) -> Result<Card> {
    check_keys(input, "card", &CREATE_KEYS)?;
    let requested = n::status(input.get("status"), "todo")?;
    let parents = n::string_list(input.get("parents"), "parents", 120)?.unwrap_or_default();
    let mut automation = Automation::default();
    for key in n::AUTOMATION_KEYS {
        if let Some(v) = given(input, key) {
            n::apply_automation_key(&mut automation, key, v)?;
        }
    }
    let title = n::required_text(input.get("title"), "title", 180)?;
    let priority = n::priority(input.get("priority"), "normal")?;
    let held_by_schedule =
        automation.scheduled_at.is_some_and(|t| t > now) && requested != "blocked";
    let mut status = if held_by_schedule {
        "scheduled".to_string()
    } else {
        requested
    };
    let held_by_deps = !parents.is_empty() && (status == "running" || status == "review");
    if held_by_deps {
        status = "todo".into();
    }
    let board = automation
        .board_id
        .clone()
        .unwrap_or_else(|| "default".into());
    if let Some(key) = &automation.idempotency_key {
        let tenant = automation.tenant.clone().unwrap_or_default();
        let hit = persist::load_many(
            tx,
            "SELECT doc FROM workboard_cards WHERE board_id = ?1 AND tenant = ?2 AND idempotency_key = ?3",
            params![board, tenant, key],
        )?;
        if let Some(card) = hit.into_iter().next() {
            return Ok(card);
        }
    }
    for p in &parents {
        if persist::load(tx, p)?.is_none() {
            return Err(persist::not_found(p));
        }
    }
    if automation.created_by_card_id.is_none() && parents.len() == 1 {
        automation.created_by_card_id = Some(parents[0].clone());
    }
    let mut execution = n::execution(input.get("execution"), now)?;
    if (held_by_schedule || held_by_deps)
        && execution.as_ref().is_some_and(|e| e.status == "running")
    {
        execution = None;
    }
    let explicit_ts = |k: &str| n::timestamp(input.get(k)).filter(|t| *t > 0);
    let started_at = explicit_ts("started_at").or((status == "running").then_some(now));
    let completed_at = explicit_ts("completed_at").or((status == "done").then_some(now));
    let mut meta = match metadata_patch(input)? {
        Some(m) => nm::apply_patch(&Metadata::default(), m, now)?,
        None => Metadata::default(),
    };
    if let Some(t) = given(input, "template_id") {
        meta.template_id = nm::template_id(Some(t));
    }
    if !automation.is_empty() {
        let mut merged = meta.automation.clone().unwrap_or_default();
        for key in n::AUTOMATION_KEYS {
            if let Some(v) = given(input, key) {
                n::apply_automation_key(&mut merged, key, v)?;
            }
        }
        merged.created_by_card_id = automation.created_by_card_id.clone();
        meta.automation = Some(merged);
    }
    let board = meta
        .automation
        .as_ref()
        .and_then(|a| a.board_id.clone())
        .unwrap_or_else(|| "default".into());
    let position = match position(input.get("position"))? {
        Some(p) => p,
        None => {
            let max: Option<i64> = tx
                .prepare_cached(
                    "SELECT max(position) FROM workboard_cards WHERE board_id = ?1 AND status_rank = ?2",
                )?
                .query_row(params![board, status_rank(&status)], |r| r.get(0))?;
            max.unwrap_or(0).max(0) + POSITION_STEP
        }
    };
    let mut card = Card {
        id: n::text(input.get("id"), "id", 120)?.unwrap_or_else(n::new_id),
        title,
        notes: n::text(input.get("notes"), "notes", 4000)?,
        status,
        priority,
        labels: n::labels(input.get("labels"))?,
        agent_id: None,
        session_key: None,
        run_id: None,
        task_id: None,
        source_url: None,
        execution,
        position,
        created_at: now,
        updated_at: now,
        started_at,
        completed_at,
        events: Vec::new(),
        metadata: None,
    };
    for (key, label, max) in CARD_TEXT {
        let v = n::text(input.get(key), label, max)?;
        set_card_text(&mut card, key, v);
    }
    if persist::load(tx, &card.id)?.is_some() {
        return Err(Error::conflict(format!("card {} already exists.", card.id)));
    }
    card.set_meta(meta);
    let mut created = plain("created", now);
    created.to_status = Some(card.status.clone());
    created.session_key = card.card_session_key();
    created.run_id = card.card_run_id();
    let mut card = commit(tx, None, card, Some(created), now, false)?;
    for parent in &parents {
        card = deps::link_in(tx, parent, &card.id, true, None, now)?;
    }
    Ok(card)
}

/// One page of cards for an already normalized `q`, inside `tx`.
pub(crate) fn page_in(tx: &Tx, q: &ListQuery) -> Result<Vec<Card>> {
    let (sql, args) = page_sql(q);
    let boxed = sql_args(&args);
    let refs: Vec<&dyn rusqlite::ToSql> = boxed.iter().map(|b| b.as_ref()).collect();
    persist::load_many(tx, &sql, refs.as_slice())
}

fn page_sql(q: &ListQuery) -> (String, Vec<Value>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(b) = &q.board_id {
        args.push(Value::String(b.clone()));
        clauses.push(format!("board_id = ?{}", args.len()));
    }
    if let Some(st) = &q.statuses {
        args.push(Value::String(serde_json::to_string(st).unwrap_or_default()));
        clauses.push(format!(
            "status IN (SELECT value FROM json_each(?{}))",
            args.len()
        ));
    }
    if let Some(a) = &q.agent_id {
        args.push(Value::String(a.clone()));
        clauses.push(format!("agent_id = ?{}", args.len()));
    }
    match q.archived {
        Some(true) => clauses.push("archived_at IS NOT NULL".into()),
        Some(false) => clauses.push("archived_at IS NULL".into()),
        None => {}
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    args.push(Value::from(q.limit.unwrap_or(-1)));
    args.push(Value::from(q.offset.unwrap_or(0)));
    let sql = format!(
        "SELECT doc FROM workboard_cards {filter} ORDER BY status_rank, position, created_at, id LIMIT ?{} OFFSET ?{}",
        args.len() - 1,
        args.len()
    );
    (sql, args)
}

fn sql_args(args: &[Value]) -> Vec<Box<dyn rusqlite::ToSql>> {
    args.iter()
        .map(|v| -> Box<dyn rusqlite::ToSql> {
            match v {
                Value::Number(x) => Box::new(x.as_i64().unwrap_or(0)),
                other => Box::new(other.as_str().unwrap_or_default().to_string()),
            }
        })
        .collect()
}

impl Workboard {
    /// Create a card (idempotent per board, tenant and idempotency key).
    pub fn create(&self, input: &Input, now_ms: Option<i64>) -> Result<Card> {
        let now = self.now(now_ms)?;
        self.store.write(|tx| create_in(tx, input, now))
    }

    /// The card `id`, or `None`.
    pub fn get(&self, id: &str) -> Result<Option<Card>> {
        let id = id.trim().to_string();
        self.store.read(|tx| persist::load(tx, &id))
    }

    /// Cards in list order (status order, position, creation), filtered and paged in SQL.
    pub fn list(&self, query: &ListQuery) -> Result<Vec<Card>> {
        let mut q = query.clone();
        if let Some(b) = &q.board_id {
            q.board_id = n::board_id(Some(&Value::String(b.clone())))?;
        }
        if let Some(st) = &q.statuses {
            let checked: Result<Vec<String>> = st
                .iter()
                .map(|s| n::status(Some(&Value::String(s.clone())), "todo"))
                .collect();
            q.statuses = Some(checked?);
        }
        for (v, label) in [(q.limit, "limit"), (q.offset, "offset")] {
            if v.is_some_and(|x| x < 0) {
                return Err(Error::validation(format!("{label} must be >= 0.")));
            }
        }
        self.store.read(|tx| page_in(tx, &q))
    }

    /// Update a card (the seed's `update`; status holds enforced when a status is given).
    pub fn update(&self, id: &str, patch: &Input, now_ms: Option<i64>) -> Result<Card> {
        let now = self.now(now_ms)?;
        let mut allowed: Vec<&str> = CREATE_KEYS.to_vec();
        allowed.retain(|k| *k != "parents" && *k != "id");
        check_keys(patch, "patch", &allowed)?;
        let id = id.trim().to_string();
        self.store.write(|tx| {
            let existing = require(tx, &id)?;
            apply_update(tx, &existing, patch, true, now)
        })
    }

    /// Move a card to `status` (and `position`), with holds; `scope` guards claimed cards.
    pub fn move_card(
        &self,
        id: &str,
        status: &str,
        position: Option<i64>,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let mut patch = Input::new();
        patch.insert("status".into(), Value::String(status.into()));
        if let Some(p) = position {
            patch.insert("position".into(), Value::from(p));
        }
        self.store.write(|tx| {
            let existing = require(tx, id.trim())?;
            assert_scope(&existing, scope)?;
            apply_update(tx, &existing, &patch, true, now)
        })
    }

    /// Apply one patch (or an archive flag) to several cards, all or nothing.
    pub fn bulk_update(
        &self,
        ids: &[String],
        patch: Option<&Input>,
        archived: Option<bool>,
        now_ms: Option<i64>,
    ) -> Result<BulkResult> {
        let now = self.now(now_ms)?;
        let ids: Vec<String> = ids
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if ids.is_empty() {
            return Err(Error::validation("ids are required."));
        }
        let empty = Input::new();
        let patch = patch.unwrap_or(&empty);
        self.store.write(|tx| {
            let mut cards = Vec::with_capacity(ids.len());
            for id in &ids {
                let existing = require(tx, id)?;
                cards.push(match archived {
                    Some(a) => archive_in(tx, &existing, a, now)?,
                    None => apply_update(tx, &existing, patch, true, now)?,
                });
            }
            Ok(BulkResult { cards })
        })
    }

    /// Archive (`true`) or unarchive (`false`) a card.
    pub fn archive(&self, id: &str, archived: bool, now_ms: Option<i64>) -> Result<Card> {
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let existing = require(tx, id.trim())?;
            archive_in(tx, &existing, archived, now)
        })
    }

    /// Delete a card, its subscriptions, attachments, and every link targeting it.
    pub fn delete(&self, id: &str, now_ms: Option<i64>) -> Result<Deleted> {
        let now = self.now(now_ms)?;
        let id = id.trim().to_string();
        self.store.write(|tx| delete_in(tx, &id, now))
    }

    /// Every card, the attachment index, and the export time.
    pub fn export_cards(&self, now_ms: Option<i64>) -> Result<Export> {
        let now = self.now(now_ms)?;
        self.store.read(|tx| {
            let cards = persist::load_many(
                tx,
                "SELECT doc FROM workboard_cards ORDER BY status_rank, position, created_at, id",
                [],
            )?;
            let attachments = cards.iter().flat_map(|c| c.meta().attachments).collect();
            Ok(Export {
                cards,
                attachments,
                exported_at: now,
            })
        })
    }

    /// The card and its attempts.
    pub fn runs(&self, id: &str) -> Result<Runs> {
        self.store.read(|tx| {
            let card = require(tx, id.trim())?;
            let attempts = card.meta().attempts;
            Ok(Runs { card, attempts })
        })
    }
}

fn archive_in(tx: &Tx, existing: &Card, archived: bool, now: i64) -> Result<Card> {
    let mut next = existing.clone();
    let mut meta = next.meta();
    meta.archived_at = archived.then_some(now.max(1));
    next.set_meta(meta);
    write(tx, existing, next, now)
}

/// Delete `id`; links to it are stripped from other cards (each a normal write).
pub(crate) fn delete_in(tx: &Tx, id: &str, now: i64) -> Result<Deleted> {
    if persist::load(tx, id)?.is_none() {
        return Ok(Deleted { deleted: false });
    }
    let referencing: Vec<String> = tx
        .prepare_cached(
            "SELECT DISTINCT card_id FROM workboard_card_links WHERE target_card_id = ?1 AND card_id <> ?1",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let deleted = persist::delete_row(tx, id)?;
    for other in referencing {
        if let Some(card) = persist::load(tx, &other)? {
            let mut next = card.clone();
            let mut meta = next.meta();
            meta.links
                .retain(|l| l.target_card_id.as_deref() != Some(id));
            next.set_meta(meta);
            write(tx, &card, next, now)?;
        }
    }
    persist::bump_revision(tx)?;
    Ok(Deleted { deleted })
}
