//! Diagnostics: the six signals of the seed (`stranded_ready`,
//! `running_without_heartbeat`, `blocked_too_long`, `repeated_failures`,
//! `missing_proof`, `orphaned_session`), computed on demand or refreshed onto
//! the cards.
//!
//! Invariants: `diagnostics` writes nothing; `refresh_diagnostics` is one
//! transaction that re-reads every card it changes, keeps `first_seen_at` and
//! counts repeats of a kind still present, drops kinds that no longer apply, and
//! persists without touching `updated_at` and without an event (it still bumps
//! the change revision); cards that had no diagnostics and get none are not
//! written. Only cards that can carry a signal are read (a SQL pre-filter on the
//! indexed columns), so quiet cards cost nothing beyond the filter.

use rusqlite::params;
use serde::Serialize;

use super::budget::trim_to_budget;
use super::model::*;
use super::persist;
use super::Workboard;
use crate::error::Result;
use crate::store::Tx;

/// `stranded_ready` after this long without an update.
pub const READY_STRANDED_MS: i64 = 60 * 60 * 1000;
/// `running_without_heartbeat` after this long without a heartbeat.
pub const RUNNING_HEARTBEAT_STALE_MS: i64 = 20 * 60 * 1000;
/// `blocked_too_long` after this long blocked.
pub const BLOCKED_TOO_LONG_MS: i64 = 24 * 60 * 60 * 1000;

/// A card and its diagnostics.
#[derive(Debug, Clone, Serialize)]
pub struct CardDiagnostics {
    pub card: Card,
    pub diagnostics: Vec<Diagnostic>,
}

/// Result of `diagnostics` / `refresh_diagnostics`.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticsReport {
    /// Cards with at least one diagnostic, in list order.
    pub diagnostics: Vec<CardDiagnostics>,
    /// Number of diagnostics over all cards listed.
    pub count: usize,
}

fn diag(
    kind: &str,
    severity: &str,
    title: &str,
    detail: &str,
    actions: &[(&str, &str)],
    now: i64,
) -> Diagnostic {
    Diagnostic {
        kind: kind.into(),
        severity: severity.into(),
        title: title.into(),
        detail: detail.into(),
        first_seen_at: now,
        last_seen_at: now,
        count: 1,
        actions: actions
            .iter()
            .map(|(k, l)| DiagnosticAction {
                kind: (*k).into(),
                label: (*l).into(),
            })
            .collect(),
    }
}

/// `computeCardDiagnostics(card, now)`.
pub fn compute(card: &Card, now: i64) -> Vec<Diagnostic> {
    let meta = card.meta();
    let status = card.status.as_str();
    let mut out = Vec::new();
    if ["todo", "backlog", "ready"].contains(&status)
        && card.agent_id.is_some()
        && now.saturating_sub(card.updated_at) > READY_STRANDED_MS
    {
        out.push(diag(
            "stranded_ready",
            "warning",
            "Assigned card is waiting",
            "The card has an assigned agent but has not been claimed recently.",
            &[("claim", "Claim card")],
            now,
        ));
    }
    if status == "running" {
        let last = meta
            .claim
            .as_ref()
            .map(|c| c.last_heartbeat_at)
            .or(card.execution.as_ref().map(|e| e.updated_at))
            .unwrap_or(card.updated_at);
        if now.saturating_sub(last) > RUNNING_HEARTBEAT_STALE_MS {
            out.push(diag(
                "running_without_heartbeat",
                "error",
                "Running card has no recent heartbeat",
                "The linked run or claim has not reported recent activity.",
                &[
                    ("open_session", "Open session"),
                    ("reassign", "Reassign card"),
                ],
                now,
            ));
        }
    }
    if status == "blocked" && now.saturating_sub(card.updated_at) > BLOCKED_TOO_LONG_MS {
        out.push(diag(
            "blocked_too_long",
            "warning",
            "Blocked card needs attention",
            "The card has been blocked for more than a day.",
            &[("unblock", "Move to todo")],
            now,
        ));
    }
    if meta.failure_count >= 2 {
        out.push(diag(
            "repeated_failures",
            "error",
            "Repeated run failures",
            "Multiple attempts failed or blocked on this card.",
            &[("reassign", "Reassign card")],
            now,
        ));
    }
    if status == "done"
        && meta.proof.is_empty()
        && meta.artifacts.is_empty()
        && meta.attachments.is_empty()
    {
        out.push(diag(
            "missing_proof",
            "warning",
            "Done card has no proof",
            "The card is marked done without proof or an attached artifact.",
            &[("add_proof", "Add proof")],
            now,
        ));
    }
    if card.session_key.is_some() && card.execution.is_none() && status == "running" {
        out.push(diag(
            "orphaned_session",
            "warning",
            "Running card has only a loose session link",
            "The card is running but has no execution record for lifecycle handoff.",
            &[("open_session", "Open session")],
            now,
        ));
    }
    out
}

/// `mergeDiagnostics`: keep `first_seen_at` and count repeats of kinds still present.
pub fn merge(previous: &[Diagnostic], current: Vec<Diagnostic>, now: i64) -> Vec<Diagnostic> {
    current
        .into_iter()
        .map(|mut d| {
            if let Some(p) = previous.iter().find(|p| p.kind == d.kind) {
                d.first_seen_at = p.first_seen_at;
                d.count = p.count.saturating_add(1);
            }
            d.last_seen_at = now;
            d
        })
        .collect()
}

/// Cards that can carry a signal at `now`, or carry one already, in list order.
fn candidates(tx: &Tx, now: i64) -> Result<Vec<Card>> {
    persist::load_many(
        tx,
        "SELECT doc FROM workboard_cards
         WHERE (status_rank IN (1, 2, 4) AND agent_id IS NOT NULL AND updated_at < ?1)
            OR status_rank IN (5, 8)
            OR (status = 'blocked' AND updated_at < ?2)
            OR failure_count >= 2
            OR json_type(doc, '$.metadata.diagnostics') IS NOT NULL
         ORDER BY status_rank, position, created_at, id",
        params![
            now.saturating_sub(READY_STRANDED_MS),
            now.saturating_sub(BLOCKED_TOO_LONG_MS)
        ],
    )
}

impl Workboard {
    /// The diagnostics every card would have at `now` (writes nothing).
    pub fn diagnostics(&self, now_ms: Option<i64>) -> Result<DiagnosticsReport> {
        let now = self.now(now_ms)?;
        self.store.read(|tx| {
            let mut out = Vec::new();
            for card in candidates(tx, now)? {
                let diagnostics = compute(&card, now);
                if !diagnostics.is_empty() {
                    out.push(CardDiagnostics { card, diagnostics });
                }
            }
            let count = out.iter().map(|c| c.diagnostics.len()).sum();
            Ok(DiagnosticsReport {
                diagnostics: out,
                count,
            })
        })
    }

    /// Recompute and store every card's diagnostics at `now`, merged with the
    /// previous ones; `updated_at` and the event history are left untouched.
    pub fn refresh_diagnostics(&self, now_ms: Option<i64>) -> Result<DiagnosticsReport> {
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let mut out = Vec::new();
            for card in candidates(tx, now)? {
                let mut meta = card.meta();
                let merged = merge(&meta.diagnostics, compute(&card, now), now);
                if meta.diagnostics.is_empty() && merged.is_empty() {
                    continue;
                }
                meta.diagnostics = merged;
                super::normalize_meta::keep_last(&mut meta.diagnostics, MAX_CARD_DIAGNOSTICS);
                trim_to_budget(&mut meta);
                let mut next = card.clone();
                next.set_meta(meta);
                if next != card {
                    persist::save(tx, &next)?;
                    persist::bump_revision(tx)?;
                }
                let diagnostics = next.meta().diagnostics;
                if !diagnostics.is_empty() {
                    out.push(CardDiagnostics {
                        card: next,
                        diagnostics,
                    });
                }
            }
            let count = out.iter().map(|c| c.diagnostics.len()).sum();
            Ok(DiagnosticsReport {
                diagnostics: out,
                count,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::*;
    use super::{compute, merge, BLOCKED_TOO_LONG_MS};
    use crate::clock::Clock;

    #[test]
    fn merge_keeps_first_sighting_and_drops_resolved_kinds() {
        let w = Workboard::open(
            ":memory:",
            WorkboardOptions {
                store: Default::default(),
                clock: Clock::manual(1_000),
            },
        )
        .unwrap();
        let input = json!({"title": "b", "status": "blocked", "metadata": {"failure_count": 2}});
        let card = w.create(input.as_object().unwrap(), None).unwrap();
        let later = 1_000 + BLOCKED_TOO_LONG_MS + 1;
        let first = compute(&card, later);
        let kinds: Vec<&str> = first.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(kinds, ["blocked_too_long", "repeated_failures"]);
        let again = merge(&first, compute(&card, later + 5), later + 5);
        assert_eq!((again[0].first_seen_at, again[0].count), (later, 2));
        assert!(merge(&first, Vec::new(), later).is_empty());
        let refreshed = w.refresh_diagnostics(Some(later)).unwrap();
        assert_eq!(refreshed.count, 2);
        let stored = w.get(&card.id).unwrap().unwrap();
        assert_eq!(stored.updated_at, card.updated_at);
        assert_eq!(stored.events.len(), card.events.len());
    }
}
