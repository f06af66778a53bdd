//! The dependency DAG: linking parents to children, cycle rejection, and
//! promotion of cards whose parents finished (or whose schedule arrived).
//!
//! Invariants: the graph of `parent` links is acyclic (checked with one
//! recursive query over the indexed link rows before every new edge); a parent
//! never holds more than 50 links and dependency links are never evicted; a child
//! with unfinished parents is never promoted to `ready`.

use rusqlite::params;
use serde::Serialize;

use super::cards::write;
use super::dispatch::WATCHED;
use super::model::*;
use super::normalize::new_id;
use super::persist::{self, require};
use super::{assert_scope, Scope, Workboard};
use crate::error::{Error, Result};
use crate::store::Tx;

/// Result of `promote_ready`: the cards whose status changed.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    pub cards: Vec<Card>,
    pub count: usize,
}

/// Whether `from` reaches `to` by following parent links (`to` is an ancestor of `from`).
pub(crate) fn reaches(tx: &Tx, from: &str, to: &str) -> Result<bool> {
    let hit: Option<i64> = tx
        .prepare_cached(
            "WITH RECURSIVE up(id) AS (
               SELECT ?1
               UNION
               SELECT l.target_card_id FROM workboard_card_links l JOIN up ON l.card_id = up.id
               WHERE l.type = 'parent' AND l.target_card_id IS NOT NULL)
             SELECT 1 FROM up WHERE id = ?2 LIMIT 1",
        )?
        .query_row(params![from, to], |r| r.get(0))
        .ok();
    Ok(hit.is_some())
}

/// Append `link` keeping at most 50 links by evicting the oldest ordinary link.
pub(crate) fn append_link(meta: &mut Metadata, link: Link) -> Result<()> {
    let new_id = link.id.clone();
    meta.links.push(link);
    if meta.links.len() > MAX_CARD_LINKS {
        match meta
            .links
            .iter()
            .position(|l| !l.is_dependency() && l.id != new_id)
        {
            Some(i) => {
                meta.links.remove(i);
            }
            None => return Err(Error::invalid_state("card link limit reached.")),
        }
    }
    Ok(())
}

fn is_active_child(card: &Card, allow_status_only: bool) -> bool {
    let meta = card.meta();
    meta.claim.is_some()
        || card
            .execution
            .as_ref()
            .is_some_and(|e| e.status == "running")
        || meta.attempts.iter().any(|a| a.status == "running")
        || (!allow_status_only && (card.status == "running" || card.status == "review"))
}

fn dependency_link(kind: &str, target: &str, now: i64) -> Link {
    Link {
        id: new_id(),
        kind: kind.to_string(),
        created_at: now,
        target_card_id: Some(target.to_string()),
        title: None,
        url: None,
    }
}

/// `linkCardsDirect`: make `parent_id` a parent of `child_id`; returns the child.
pub(crate) fn link_in(
    tx: &Tx,
    parent_id: &str,
    child_id: &str,
    allow_status_only_active_child: bool,
    scope: Option<&Scope>,
    now: i64,
) -> Result<Card> {
    if parent_id == child_id {
        return Err(Error::validation("parent and child cards must differ."));
    }
    let parent = require(tx, parent_id)?;
    let child = require(tx, child_id)?;
    assert_scope(&parent, scope)?;
    assert_scope(&child, scope)?;
    if child.status == "done" || child.status == "blocked" {
        let mut all = child.parent_ids();
        if !all.contains(&parent.id) {
            all.push(parent.id.clone());
        }
        let found = persist::statuses(tx, &all)?;
        if found.len() != all.len() || found.iter().any(|(_, s)| s != "done") {
            return Err(Error::invalid_state(
                "terminal child cards cannot gain incomplete parent dependencies.",
            ));
        }
    }
    if is_active_child(&child, allow_status_only_active_child) {
        return Err(Error::invalid_state(
            "active child cards cannot gain parent dependencies.",
        ));
    }
    if reaches(tx, &parent.id, &child.id)? {
        return Err(Error::invalid_state(
            "dependency link would create a cycle.",
        ));
    }
    let mut pmeta = parent.meta();
    if !pmeta.child_ids().contains(&child.id) {
        append_link(&mut pmeta, dependency_link("child", &child.id, now))?;
        let mut next = parent.clone();
        next.set_meta(pmeta);
        write(tx, &parent, next, now)?;
    }
    let child = require(tx, child_id)?;
    let mut cmeta = child.meta();
    let child = if !cmeta.parent_ids().contains(&parent.id) {
        append_link(&mut cmeta, dependency_link("parent", &parent.id, now))?;
        let mut next = child.clone();
        next.set_meta(cmeta);
        write(tx, &child, next, now)?
    } else {
        child
    };
    promote_in(tx, child, now)
}

/// The status `promoteDependencyReady` wants for `card` (seed-era rules).
fn promotion_target(tx: &Tx, card: &Card, now: i64) -> Result<String> {
    let status = card.status.as_str();
    let scheduled_at = card.automation().and_then(|a| a.scheduled_at);
    let promotable = PROMOTABLE.contains(&status);
    if status == "scheduled" && scheduled_at.is_none() {
        return Ok(status.into());
    }
    let future = scheduled_at.is_some_and(|t| t > now);
    let target = if card.parent_ids().is_empty() {
        if future && promotable {
            "scheduled"
        } else if status == "scheduled" {
            "ready"
        } else {
            status
        }
    } else {
        let done = persist::parents_done(tx, card)?;
        match (done, future && promotable, promotable) {
            (_, true, _) => "scheduled",
            (false, false, true) => "todo",
            (true, false, true) => "ready",
            _ => status,
        }
    };
    Ok(target.into())
}

/// `promoteDependencyReady`: move `card` to its promotion target (no holds).
pub(crate) fn promote_in(tx: &Tx, card: Card, now: i64) -> Result<Card> {
    if card.meta().archived_at.is_some() {
        return Ok(card);
    }
    let target = promotion_target(tx, &card, now)?;
    if target == card.status {
        return Ok(card);
    }
    let mut next = card.clone();
    next.status = target;
    write(tx, &card, next, now)
}

impl Workboard {
    /// Make `parent_id` a parent of `child_id` (rejects cycles, terminal and active children).
    pub fn link_cards(
        &self,
        parent_id: &str,
        child_id: &str,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let (p, c) = (parent_id.trim(), child_id.trim());
        if p.is_empty() || c.is_empty() {
            return Err(Error::validation("parentId and childId are required."));
        }
        self.store.write(|tx| link_in(tx, p, c, false, scope, now))
    }

    /// Promote every promotable card whose parents finished or whose schedule arrived
    /// (and demote ready cards whose parent reopened); returns the changed cards.
    /// Only unarchived cards in promotable statuses with a schedule or parents are
    /// visited (the partial index `workboard_cards_watch`).
    pub fn promote_ready(&self, now_ms: Option<i64>) -> Result<Promoted> {
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            // Only cards with a schedule or parents can change (see `promotion_target`);
            // they are a subset of the watched cards (partial index, schema V9), which
            // leaves out todo cards still waiting on a parent.
            let ids: Vec<String> = tx
                .prepare_cached(&format!(
                    "SELECT id FROM workboard_cards INDEXED BY workboard_cards_watch WHERE {WATCHED}
                     AND (scheduled_at IS NOT NULL OR has_parents = 1)
                     ORDER BY status_rank, position, created_at, id"
                ))?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut cards = Vec::new();
            for id in ids {
                let card = require(tx, &id)?;
                let before = card.status.clone();
                let after = promote_in(tx, card, now)?;
                if after.status != before {
                    cards.push(after);
                }
            }
            let count = cards.len();
            Ok(Promoted { cards, count })
        })
    }
}
