//! Boards and aggregate views (board summaries, stats), computed with SQL
//! aggregates over the indexed card columns (no card documents are read).

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use super::model::*;
use super::normalize::{self as n, Input};
use super::persist;
use super::Workboard;
use crate::error::{Error, Result};
use crate::store::Tx;

/// A board with its card counts.
#[derive(Debug, Clone, Serialize)]
pub struct BoardSummary {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub color: Option<String>,
    pub default_workspace: Option<Workspace>,
    pub orchestration: Option<Orchestration>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub archived_at: Option<i64>,
    pub total: i64,
    pub active: i64,
    pub archived: i64,
    pub by_status: BTreeMap<String, i64>,
}

/// Result of `list_boards`.
#[derive(Debug, Clone, Serialize)]
pub struct BoardsList {
    pub boards: Vec<BoardSummary>,
}

/// Card statistics for one board or all.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub id: String,
    pub total: i64,
    pub active: i64,
    pub archived: i64,
    pub by_status: BTreeMap<String, i64>,
    pub by_agent: BTreeMap<String, i64>,
    pub oldest_ready_age_ms: Option<i64>,
    pub updated_at: Option<i64>,
}

fn board_from(r: &Row<'_>) -> rusqlite::Result<Board> {
    let json = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
    Ok(Board {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        icon: r.get(3)?,
        color: r.get(4)?,
        default_workspace: json(5)?.and_then(|s| serde_json::from_str(&s).ok()),
        orchestration: json(6)?.and_then(|s| serde_json::from_str(&s).ok()),
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        archived_at: r.get(9)?,
    })
}

const BOARD_COLUMNS: &str = "id, name, description, icon, color, default_workspace_json, orchestration_json, created_at, updated_at, archived_at";

fn load_board(tx: &Tx, id: &str) -> Result<Option<Board>> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT {BOARD_COLUMNS} FROM workboard_boards WHERE id = ?1"
        ))?
        .query_row([id], board_from)
        .optional()?)
}

fn orchestration(value: &Value) -> Result<Option<Orchestration>> {
    let Some(o) = value.as_object() else {
        return if value.is_null() {
            Ok(None)
        } else {
            Err(Error::validation("orchestration must be a dict."))
        };
    };
    let per = o
        .get("auto_decompose_per_dispatch")
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite())
        .map(|f| (f.trunc() as i64).clamp(1, 20));
    Ok(Some(Orchestration {
        auto_decompose: o.get("auto_decompose").and_then(Value::as_bool),
        auto_decompose_per_dispatch: per,
        default_assignee: n::text(o.get("default_assignee"), "default assignee", 120)?,
        orchestrator_profile: n::text(o.get("orchestrator_profile"), "orchestrator profile", 120)?,
    }))
}

const BOARD_KEYS: [&str; 8] = [
    "id",
    "name",
    "description",
    "icon",
    "color",
    "default_workspace",
    "orchestration",
    "archived",
];

/// The newest `updated_at` of the cards of `k.board_id` in `k.status` (one seek in
/// `workboard_cards_updated`).
const NEWEST_IN_STATUS: &str =
    "(SELECT max(updated_at) FROM workboard_cards WHERE board_id = k.board_id AND status = k.status)";

impl Workboard {
    /// Create or update a board; absent fields keep their values.
    pub fn upsert_board(&self, input: &Input, now_ms: Option<i64>) -> Result<Board> {
        let now = self.now(now_ms)?;
        if let Some(k) = input.keys().find(|k| !BOARD_KEYS.contains(&k.as_str())) {
            return Err(Error::validation(format!("board has no field {k:?}.")));
        }
        let id = n::board_id(input.get("id"))?.unwrap_or_else(|| "default".into());
        self.store.write(|tx| {
            let mut b = load_board(tx, &id)?.unwrap_or(Board {
                id: id.clone(),
                name: None,
                description: None,
                icon: None,
                color: None,
                default_workspace: None,
                orchestration: None,
                created_at: now,
                updated_at: now,
                archived_at: None,
            });
            for (key, label, max) in [
                ("name", "board name", 120),
                ("description", "board description", 1000),
                ("icon", "board icon", 40),
                ("color", "board color", 40),
            ] {
                if input.contains_key(key) {
                    let v = n::text(input.get(key), label, max)?;
                    match key {
                        "name" => b.name = v,
                        "description" => b.description = v,
                        "icon" => b.icon = v,
                        _ => b.color = v,
                    }
                }
            }
            if let Some(v) = input.get("default_workspace") {
                b.default_workspace = n::workspace(Some(v))?;
            }
            if let Some(v) = input.get("orchestration") {
                b.orchestration = orchestration(v)?;
            }
            match input.get("archived") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(false)) => b.archived_at = None,
                Some(_) => b.archived_at = Some(now),
            }
            b.updated_at = now;
            tx.prepare_cached(
                "INSERT INTO workboard_boards(id, name, description, icon, color, default_workspace_json,
                   orchestration_json, created_at, updated_at, archived_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description,
                   icon = excluded.icon, color = excluded.color,
                   default_workspace_json = excluded.default_workspace_json,
                   orchestration_json = excluded.orchestration_json,
                   updated_at = excluded.updated_at, archived_at = excluded.archived_at",
            )?
            .execute(params![
                b.id,
                b.name,
                b.description,
                b.icon,
                b.color,
                b.default_workspace.as_ref().map(serde_json::to_string).transpose()?,
                b.orchestration.as_ref().map(serde_json::to_string).transpose()?,
                b.created_at,
                b.updated_at,
                b.archived_at
            ])?;
            persist::bump_revision(tx)?;
            Ok(b)
        })
    }

    /// Archive (`true`) or unarchive a board.
    pub fn archive_board(&self, id: &str, archived: bool, now_ms: Option<i64>) -> Result<Board> {
        let mut input = Input::new();
        input.insert("id".into(), Value::String(id.into()));
        input.insert("archived".into(), Value::Bool(archived));
        self.upsert_board(&input, now_ms)
    }

    /// Delete an empty board and its subscriptions (`default` cannot be deleted).
    pub fn delete_board(&self, id: &str) -> Result<super::Deleted> {
        let id = n::board_id(Some(&Value::String(id.into())))?
            .ok_or_else(|| Error::validation("board id is required."))?;
        if id == "default" {
            return Err(Error::invalid_state("default board cannot be deleted."));
        }
        self.store.write(|tx| {
            let has_cards: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM workboard_cards WHERE board_id = ?1 LIMIT 1")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            if has_cards.is_some() {
                return Err(Error::invalid_state(
                    "board still has cards; archive it or move/delete the cards first.",
                ));
            }
            tx.prepare_cached("DELETE FROM workboard_subscriptions WHERE board_id = ?1")?
                .execute([&id])?;
            let n = tx
                .prepare_cached("DELETE FROM workboard_boards WHERE id = ?1")?
                .execute([&id])?;
            persist::bump_revision(tx)?;
            Ok(super::Deleted { deleted: n > 0 })
        })
    }

    /// Every board (stored, `default`, and boards only cards mention) with counts;
    /// `default` first, then by id.
    pub fn list_boards(&self) -> Result<BoardsList> {
        self.store.read(|tx| {
            let stored: Vec<Board> = tx
                .prepare_cached(&format!(
                    "SELECT {BOARD_COLUMNS} FROM workboard_boards ORDER BY id"
                ))?
                .query_map([], board_from)?
                .collect::<rusqlite::Result<_>>()?;
            let mut out: BTreeMap<String, BoardSummary> = BTreeMap::new();
            let blank = |id: &str| BoardSummary {
                id: id.to_string(),
                name: None,
                description: None,
                icon: None,
                color: None,
                default_workspace: None,
                orchestration: None,
                created_at: None,
                updated_at: None,
                archived_at: None,
                total: 0,
                active: 0,
                archived: 0,
                by_status: BTreeMap::new(),
            };
            out.insert("default".into(), blank("default"));
            for b in stored {
                out.insert(
                    b.id.clone(),
                    BoardSummary {
                        name: b.name,
                        description: b.description,
                        icon: b.icon,
                        color: b.color,
                        default_workspace: b.default_workspace,
                        orchestration: b.orchestration,
                        created_at: Some(b.created_at),
                        updated_at: Some(b.updated_at),
                        archived_at: b.archived_at,
                        ..blank(&b.id)
                    },
                );
            }
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT k.board_id, k.status, sum(k.cards), sum(k.archived), {NEWEST_IN_STATUS}
                 FROM workboard_counts k GROUP BY k.board_id, k.status"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            for row in rows {
                let (board, status, count, archived, updated) = row?;
                let s = out.entry(board.clone()).or_insert_with(|| blank(&board));
                s.total += count;
                s.archived += archived;
                s.active = s.total - s.archived;
                *s.by_status.entry(status).or_default() += count;
                s.updated_at = Some(s.updated_at.unwrap_or(0).max(updated));
            }
            let mut boards: Vec<BoardSummary> = Vec::with_capacity(out.len());
            if let Some(d) = out.remove("default") {
                boards.push(d);
            }
            boards.extend(out.into_values());
            Ok(BoardsList { boards })
        })
    }

    /// Counts by status and agent, the oldest ready card's age, the latest update.
    pub fn stats(&self, board_id: Option<&str>, now_ms: Option<i64>) -> Result<Stats> {
        let now = self.now(now_ms)?;
        let board = match board_id {
            Some(b) => n::board_id(Some(&Value::String(b.into())))?,
            None => None,
        };
        self.store.read(|tx| {
            let filter = if board.is_some() { "WHERE board_id = ?1" } else { "WHERE ?1 IS NULL" };
            let mut stats = Stats {
                id: board.clone().unwrap_or_else(|| "all".into()),
                total: 0,
                active: 0,
                archived: 0,
                by_status: BTreeMap::new(),
                by_agent: BTreeMap::new(),
                oldest_ready_age_ms: None,
                updated_at: None,
            };
            // Counts from the trigger-maintained counters; times from single index seeks.
            let counts = format!(
                "SELECT status, agent_key, sum(cards), sum(archived) FROM workboard_counts {filter}
                 GROUP BY status, agent_key"
            );
            let mut stmt = tx.prepare_cached(&counts)?;
            let rows = stmt.query_map([&board], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (status, agent, count, archived) = row?;
                let agent = if agent.is_empty() { "(default)".to_string() } else { agent };
                stats.total += count;
                stats.archived += archived;
                *stats.by_status.entry(status).or_default() += count;
                *stats.by_agent.entry(agent).or_default() += count;
            }
            let times = format!(
                "SELECT max({NEWEST_IN_STATUS}),
                   min(CASE WHEN k.status = 'ready' THEN
                     (SELECT min(updated_at) FROM workboard_cards WHERE board_id = k.board_id AND status = 'ready') END)
                 FROM (SELECT DISTINCT board_id, status FROM workboard_counts {filter}) k"
            );
            let (newest, oldest): (Option<i64>, Option<i64>) = tx
                .prepare_cached(&times)?
                .query_row([&board], |r| Ok((r.get(0)?, r.get(1)?)))?;
            stats.updated_at = newest;
            stats.active = stats.total - stats.archived;
            stats.oldest_ready_age_ms = oldest.map(|m| (now - m).max(0));
            Ok(stats)
        })
    }
}
