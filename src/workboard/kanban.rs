//! `kanban`: a board as columns by status, read in one transaction.
//!
//! Every status is a column, in the workboard's status order. A column's total
//! is its unarchived cards, from the trigger-kept counters (`workboard_counts`,
//! schema V9), and its cards are the first `limit_per_status` unarchived ones in
//! board order (one indexed page per non-empty status). Totals and pages come
//! from the same snapshot, so they always agree.

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use super::cards::{page_in, ListQuery};
use super::model::{Card, STATUSES};
use super::normalize as n;
use super::Workboard;
use crate::error::{Error, Result};

/// The largest `limit_per_status` accepted.
pub const MAX_LIMIT_PER_STATUS: i64 = 1000;

/// One column: a status, its unarchived cards in total and the first of them.
#[derive(Debug, Clone, Serialize)]
pub struct KanbanColumn {
    pub status: String,
    pub total: i64,
    pub cards: Vec<Card>,
}

/// A board (or every board: `board_id` `None`) as kanban columns, read at `at_ms`.
#[derive(Debug, Clone, Serialize)]
pub struct Kanban {
    pub board_id: Option<String>,
    pub columns: Vec<KanbanColumn>,
    pub limit_per_status: i64,
    pub at_ms: i64,
}

impl Workboard {
    /// The board as kanban columns (see the module docs).
    pub fn kanban(
        &self,
        board_id: Option<&str>,
        limit_per_status: i64,
        now_ms: Option<i64>,
    ) -> Result<Kanban> {
        if !(1..=MAX_LIMIT_PER_STATUS).contains(&limit_per_status) {
            return Err(Error::validation(format!(
                "limit_per_status must be an integer within 1..={MAX_LIMIT_PER_STATUS}, got {limit_per_status}"
            )));
        }
        let at_ms = self.now(now_ms)?;
        let board = match board_id {
            Some(b) => n::board_id(Some(&Value::String(b.into())))?,
            None => None,
        };
        self.store.read(|tx| {
            let mut columns = Vec::with_capacity(STATUSES.len());
            for status in STATUSES {
                let total: i64 = tx
                    .prepare_cached(
                        "SELECT coalesce(sum(cards - archived), 0) FROM workboard_counts
                         WHERE status = ?1 AND (?2 IS NULL OR board_id = ?2)",
                    )?
                    .query_row(params![status, board], |r| r.get(0))?;
                let cards = if total == 0 {
                    Vec::new()
                } else {
                    page_in(
                        tx,
                        &ListQuery {
                            board_id: board.clone(),
                            statuses: Some(vec![status.to_string()]),
                            agent_id: None,
                            archived: Some(false),
                            limit: Some(limit_per_status),
                            offset: None,
                        },
                    )?
                };
                columns.push(KanbanColumn {
                    status: status.to_string(),
                    total,
                    cards,
                });
            }
            Ok(Kanban {
                board_id: board,
                columns,
                limit_per_status,
                at_ms,
            })
        })
    }
}
