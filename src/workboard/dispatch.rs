//! Dispatch: one pass of promotion (due scheduled and dependency-ready cards),
//! expiry of claims, max-runtime timeouts, retry-budget enforcement, dispatch
//! bookkeeping of ready cards and per-board auto-orchestration of triage cards.
//!
//! Invariants: the whole pass is one transaction; only cards that can change are
//! visited, found through indexes (watched cards: ready, scheduled, failing or held by
//! parents; running cards, live
//! claims by expiry, triage cards of boards with auto-decompose) so the cost does
//! not grow with finished cards; cards are processed in list order; a card that
//! is running under a live claim finishes its in-flight retry; the dispatch
//! bookkeeping and orchestration marks never touch `updated_at`; `count` is the
//! number of promoted, reclaimed, blocked and orchestrated cards.

use std::collections::{BTreeMap, HashSet};

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use super::budget::close_running_attempts;
use super::cards::{commit, write};
use super::deps::promote_in;
use super::events::plain;
use super::metadata::notify;
use super::model::*;
use super::normalize::{self as n, new_id};
use super::normalize_meta::keep_last;
use super::persist::{self, require};
use super::workflow::set_status;
use super::Workboard;
use crate::error::Result;
use crate::store::Tx;

/// Grace after a claim's expiry before dispatch reclaims it.
pub const CLAIM_RECLAIM_MS: i64 = 5 * 60 * 1000;
/// Orchestration marks per board and pass when the board sets no cap.
pub const DEFAULT_AUTO_DECOMPOSE_PER_DISPATCH: i64 = 3;
const TIMEOUT_REASON: &str = "Run exceeded the card max runtime.";
const EXPIRED_REASON: &str = "Claim expired without a recent heartbeat.";
const EXHAUSTED_REASON: &str = "Card exhausted its retry budget.";
const ORCHESTRATION_LOG: &str =
    "Auto orchestration marked this triage card for specification or decomposition.";
const ORCHESTRATION_DETAIL: &str = "Awaiting workboard_specify or workboard_decompose.";

/// Result of `dispatch`.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchResult {
    /// Cards whose status dispatch changed by promotion (or demotion).
    pub promoted: Vec<Card>,
    /// Cards whose expired claim was cleared (not running).
    pub reclaimed: Vec<Card>,
    /// Cards blocked for a timeout, an expired claim or an exhausted retry budget.
    pub blocked: Vec<Card>,
    /// Triage cards marked for specification or decomposition.
    pub orchestrated: Vec<Card>,
    /// Total of the four lists.
    pub count: usize,
}

/// `secondsToDurationMs`: `max(1, s) * 1000`, capped at the largest Date timestamp.
pub fn seconds_to_ms(seconds: i64) -> i64 {
    seconds
        .max(1)
        .saturating_mul(1000)
        .min(MAX_DATE_TIMESTAMP_MS)
}

/// The WHERE clause of the partial index `workboard_cards_watch` (schema V9):
/// unarchived triage..ready cards that can change on their own: ready, scheduled,
/// failing, or with parents unless they are `todo` cards still waiting on one
/// (`open_parents`, kept by triggers). Queries repeat it and name the index
/// (`INDEXED BY`: SQLite has no statistics to prefer it, and refuses the query if
/// the index stops matching).
pub(crate) const WATCHED: &str = "archived_at IS NULL AND status_rank <= 4
    AND (status_rank = 4 OR scheduled_at IS NOT NULL OR failure_count > 0
         OR (has_parents = 1 AND (status_rank <> 2 OR open_parents = 0)))";

fn ids(tx: &Tx, sql: &str, p: impl rusqlite::Params) -> Result<Vec<String>> {
    Ok(tx
        .prepare_cached(sql)?
        .query_map(p, |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Ids of the cards a pass may change (indexed lookups only).
fn candidates(tx: &Tx, board: Option<&str>, now: i64) -> Result<HashSet<String>> {
    let mut out: HashSet<String> = HashSet::new();
    // Triage..ready cards that can change on their own: ready (bookkeeping),
    // scheduled, failing (retry budget) or held by parents. The condition is the
    // partial index `workboard_cards_watch` (V9) verbatim, so only those rows are read.
    out.extend(ids(
        tx,
        &format!(
            "SELECT id FROM workboard_cards INDEXED BY workboard_cards_watch WHERE {WATCHED}
                   AND (?1 IS NULL OR board_id = ?1)"
        ),
        params![board],
    )?);
    // Running cards with a deadline (partial index on running cards).
    out.extend(ids(
        tx,
        "SELECT id FROM workboard_cards WHERE status = 'running' AND max_runtime_ms IS NOT NULL
           AND (?1 IS NULL OR board_id = ?1)",
        params![board],
    )?);
    // Claims past their expiry plus the grace (index on claim expiry).
    out.extend(ids(
        tx,
        "SELECT id FROM workboard_cards WHERE claim_owner IS NOT NULL
           AND claim_expires_at < ?1 AND (?2 IS NULL OR board_id = ?2)",
        params![now.saturating_sub(CLAIM_RECLAIM_MS), board],
    )?);
    Ok(out)
}

/// Boards with auto-decompose on (and their cap), restricted to `board`.
fn auto_boards(tx: &Tx, board: Option<&str>) -> Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, Option<String>)> = tx
        .prepare_cached(
            "SELECT id, orchestration_json FROM workboard_boards
             WHERE orchestration_json IS NOT NULL AND (?1 IS NULL OR id = ?1)",
        )?
        .query_map(params![board], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = BTreeMap::new();
    for (id, json) in rows {
        let o: Option<Orchestration> = json.and_then(|j| serde_json::from_str(&j).ok());
        if let Some(o) = o.filter(|o| o.auto_decompose == Some(true)) {
            let cap = o
                .auto_decompose_per_dispatch
                .unwrap_or(DEFAULT_AUTO_DECOMPOSE_PER_DISPATCH);
            out.insert(id, cap);
        }
    }
    Ok(out)
}

fn runtime_started_at(card: &Card) -> Option<i64> {
    let meta = card.meta();
    meta.attempts
        .iter()
        .rev()
        .find(|a| a.status == "running")
        .map(|a| a.started_at)
        .or(meta.claim.as_ref().map(|c| c.claimed_at))
        .or(card.started_at)
}

/// Block `card` for `reason` (no holds): claim cleared, attempts closed, failure
/// counted, `failed` notification.
fn block_for(tx: &Tx, card: &Card, reason: &str, now: i64) -> Result<Card> {
    let mut next = card.clone();
    let mut meta = next.meta();
    set_status(card, &mut next, &mut meta, "blocked", now);
    if let Some(e) = next.execution.as_mut().filter(|e| e.status == "running") {
        e.status = "blocked".into();
        e.updated_at = now;
    }
    meta.claim = None;
    close_running_attempts(&mut meta, now, "blocked", Some(reason));
    meta.failure_count += 1;
    notify(tx, card, &mut meta, "failed", reason, None, None, now)?;
    next.set_meta(meta);
    write(tx, card, next, now)
}

/// `recordDispatch`: count the pass on a ready card without touching `updated_at`.
fn record_dispatch(tx: &Tx, card: &Card, now: i64) -> Result<Card> {
    let mut next = card.clone();
    let mut meta = next.meta();
    let mut a = meta.automation.clone().unwrap_or_default();
    a.dispatch_count = Some(a.dispatch_count.unwrap_or(0).saturating_add(1));
    a.last_dispatch_at = Some(now);
    meta.automation = Some(a);
    next.set_meta(meta);
    commit(
        tx,
        Some(card),
        next,
        Some(plain("dispatch", now)),
        now,
        false,
    )
}

/// `recordOrchestrationCandidate`: mark a triage card for specify/decompose.
fn record_orchestration(tx: &Tx, card: &Card, now: i64) -> Result<Card> {
    let mut next = card.clone();
    let mut meta = next.meta();
    meta.worker_logs.push(WorkerLog {
        id: new_id(),
        created_at: now,
        level: "info".into(),
        message: ORCHESTRATION_LOG.into(),
        session_key: None,
        run_id: None,
    });
    keep_last(&mut meta.worker_logs, MAX_CARD_WORKER_LOGS);
    meta.worker_protocol = Some(WorkerProtocol {
        state: "idle".into(),
        updated_at: now,
        detail: Some(ORCHESTRATION_DETAIL.into()),
    });
    next.set_meta(meta);
    commit(
        tx,
        Some(card),
        next,
        Some(plain("orchestration", now)),
        now,
        false,
    )
}

fn list_order(a: &Card, b: &Card) -> std::cmp::Ordering {
    (status_rank(&a.status), a.position, a.created_at, &a.id).cmp(&(
        status_rank(&b.status),
        b.position,
        b.created_at,
        &b.id,
    ))
}

fn pass(tx: &Tx, board: Option<&str>, now: i64) -> Result<DispatchResult> {
    let mut wanted = candidates(tx, board, now)?;
    let auto = auto_boards(tx, board)?;
    for b in auto.keys() {
        wanted.extend(ids(
            tx,
            "SELECT id FROM workboard_cards WHERE board_id = ?1 AND status_rank = 0
               AND archived_at IS NULL",
            [b],
        )?);
    }
    let mut cards: Vec<Card> = Vec::with_capacity(wanted.len());
    for id in &wanted {
        if let Some(c) = persist::load(tx, id)? {
            cards.push(c);
        }
    }
    cards.sort_by(list_order);
    let mut used: BTreeMap<String, i64> = BTreeMap::new();
    let mut r = DispatchResult {
        promoted: Vec::new(),
        reclaimed: Vec::new(),
        blocked: Vec::new(),
        orchestrated: Vec::new(),
        count: 0,
    };
    for stale in cards {
        // Re-read: an earlier card of this pass may have changed it (a demotion).
        let card = require(tx, &stale.id)?;
        let mut latest = promote_in(tx, card.clone(), now)?;
        let was_promoted = latest.status != card.status;
        let max_runtime = latest.automation().and_then(|a| a.max_runtime_seconds);
        let timed_out = match (max_runtime, runtime_started_at(&latest)) {
            (Some(s), Some(t)) => now.saturating_sub(t) > seconds_to_ms(s),
            _ => false,
        };
        let expired = latest
            .claim()
            .and_then(|c| c.expires_at)
            .is_some_and(|e| now.saturating_sub(e) > CLAIM_RECLAIM_MS);
        if latest.status == "running" && (timed_out || expired) {
            let reason = if timed_out {
                TIMEOUT_REASON
            } else {
                EXPIRED_REASON
            };
            latest = block_for(tx, &latest, reason, now)?;
            r.blocked.push(latest.clone());
        } else if expired {
            let mut next = latest.clone();
            let mut meta = next.meta();
            meta.claim = None;
            next.set_meta(meta);
            latest = write(tx, &latest, next, now)?;
            r.reclaimed.push(latest.clone());
        }
        if latest.claim().is_none()
            && latest.retry_budget_exhausted()
            && PROMOTABLE.contains(&latest.status.as_str())
        {
            latest = block_for(tx, &latest, EXHAUSTED_REASON, now)?;
            r.blocked.push(latest.clone());
        }
        if latest.status == "ready" {
            latest = record_dispatch(tx, &latest, now)?;
        }
        let board_id = latest.board_id();
        if latest.status == "triage"
            && latest.meta().archived_at.is_none()
            && latest
                .meta()
                .worker_protocol
                .as_ref()
                .is_none_or(|p| p.state != "idle")
        {
            if let Some(cap) = auto.get(&board_id) {
                let n = used.entry(board_id).or_insert(0);
                if *n < *cap {
                    *n += 1;
                    latest = record_orchestration(tx, &latest, now)?;
                    r.orchestrated.push(latest.clone());
                }
            }
        }
        if was_promoted && latest.status != "blocked" {
            r.promoted.push(latest);
        }
    }
    r.count = r.promoted.len() + r.reclaimed.len() + r.blocked.len() + r.orchestrated.len();
    Ok(r)
}

impl Workboard {
    /// One dispatch pass at `now` over every board, or only `board_id`: promote due
    /// scheduled and dependency-ready cards (and demote ready cards whose parent
    /// reopened), block running cards past their max runtime or with a claim
    /// expired for more than 5 minutes, clear other expired claims, block unclaimed
    /// cards that exhausted their retry budget, count the pass on ready cards, and
    /// mark up to the board's cap of triage cards for orchestration.
    pub fn dispatch(&self, now_ms: Option<i64>, board_id: Option<&str>) -> Result<DispatchResult> {
        let now = self.now(now_ms)?;
        let board = match board_id {
            Some(b) => n::board_id(Some(&Value::String(b.into())))?,
            None => None,
        };
        self.store.write(|tx| pass(tx, board.as_deref(), now))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::model::MAX_DATE_TIMESTAMP_MS;
    use super::super::normalize::Input;

    use super::seconds_to_ms;

    use crate::test_support::workboard as wb;

    fn obj(v: Value) -> Input {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn duration_caps_at_the_largest_date() {
        assert_eq!(seconds_to_ms(0), 1000);
        assert_eq!(seconds_to_ms(i64::MAX), MAX_DATE_TIMESTAMP_MS);
    }

    #[test]
    fn dispatch_blocks_timeouts_and_expired_claims_and_counts_ready_cards() {
        let w = wb();
        let ready = w
            .create(&obj(json!({"title": "r", "status": "ready"})), None)
            .unwrap();
        let expired = w
            .create(&obj(json!({"title": "e", "status": "running"})), None)
            .unwrap();
        w.claim(&expired.id, "main", None, Some(1.0), None).unwrap();
        let timed = w
            .create(
                &obj(json!({"title": "t", "status": "running", "max_runtime_seconds": 1})),
                None,
            )
            .unwrap();
        let todo = w.create(&obj(json!({"title": "q"})), None).unwrap();
        w.claim(&todo.id, "main", None, Some(1.0), None).unwrap();
        w.release_claim(&todo.id, None, Some("main"), Some("todo"), None)
            .unwrap();
        let r = w.dispatch(Some(600_000), None).unwrap();
        assert_eq!(r.count, 2);
        let blocked: Vec<&str> = r.blocked.iter().map(|c| c.id.as_str()).collect();
        assert!(blocked.contains(&expired.id.as_str()) && blocked.contains(&timed.id.as_str()));
        let ready = w.get(&ready.id).unwrap().unwrap();
        let a = ready.automation().unwrap();
        assert_eq!(
            (a.dispatch_count, a.last_dispatch_at),
            (Some(1), Some(600_000))
        );
        assert_eq!(ready.updated_at, 1_000);
        assert_eq!(ready.events.last().unwrap().kind, "dispatch");
        // A second pass changes nothing but the ready card's bookkeeping.
        let again = w.dispatch(Some(600_001), None).unwrap();
        assert_eq!(again.count, 0);
    }
}
