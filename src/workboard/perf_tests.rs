//! Tests of the schema V8/V9 bookkeeping: `has_parents` and `open_parents` follow
//! the card's parent links and its parents' statuses, the trigger-kept counters
//! equal a direct aggregate, and the watched-card queries (`INDEXED BY
//! workboard_cards_watch`) still find every card that promotion or dispatch can change.

use serde_json::{json, Value};

use super::normalize::Input;
use super::*;

use crate::test_support::workboard as wb;

fn obj(v: Value) -> Input {
    v.as_object().cloned().unwrap()
}

fn has_parents(w: &Workboard, id: &str) -> i64 {
    let id = id.to_string();
    w.store()
        .read(|tx| {
            Ok(tx.query_row(
                "SELECT has_parents FROM workboard_cards WHERE id = ?1",
                [&id],
                |r| r.get(0),
            )?)
        })
        .unwrap()
}

#[test]
fn has_parents_follows_links_and_promotion_still_finds_held_children() {
    let w = wb();
    let parent = w.create(&obj(json!({"title": "p"})), None).unwrap();
    let loose = w.create(&obj(json!({"title": "l"})), None).unwrap();
    let child = w
        .create(&obj(json!({"title": "c", "parents": [parent.id]})), None)
        .unwrap();
    assert_eq!(has_parents(&w, &child.id), 1);
    assert_eq!(has_parents(&w, &parent.id), 0);
    assert_eq!(has_parents(&w, &loose.id), 0);
    assert_eq!(child.status, "todo");
    w.update(&parent.id, &obj(json!({"status": "done"})), None)
        .unwrap();
    let promoted = w.promote_ready(None).unwrap();
    assert!(promoted.cards.iter().any(|c| c.id == child.id));
    assert_eq!(w.get(&child.id).unwrap().unwrap().status, "ready");
    // A due scheduled card is found by dispatch through the watch index.
    let due = w
        .create(&obj(json!({"title": "s", "scheduled_at": 5_000})), None)
        .unwrap();
    assert_eq!(due.status, "scheduled");
    let r = w.dispatch(Some(6_000), None).unwrap();
    assert!(r.promoted.iter().any(|c| c.id == due.id));
}

/// One `workboard_counts` row: board, status, agent, cards, archived.
type CountRow = (String, String, String, i64, i64);

/// The trigger-maintained counters equal a direct aggregate over the cards.
fn assert_counts_exact(w: &Workboard) {
    let (kept, direct): (Vec<CountRow>, Vec<CountRow>) = w
        .store()
        .read(|tx| {
            let rows = |sql: &str| -> crate::error::Result<Vec<CountRow>> {
                Ok(tx
                    .prepare(sql)?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                    .collect::<rusqlite::Result<_>>()?)
            };
            Ok((
                rows("SELECT board_id, status, agent_key, cards, archived FROM workboard_counts ORDER BY 1, 2, 3")?,
                rows(
                    "SELECT board_id, status, coalesce(agent_id, ''), count(*), count(archived_at) FROM workboard_cards
                     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                )?,
            ))
        })
        .unwrap();
    assert_eq!(kept, direct);
}

#[test]
fn stats_counters_follow_every_write_path() {
    let w = wb();
    let a = w
        .create(&obj(json!({"title": "a", "agent_id": "bot"})), Some(1_000))
        .unwrap();
    let b = w
        .create(&obj(json!({"title": "b", "board_id": "ops"})), Some(2_000))
        .unwrap();
    let c = w
        .create(
            &obj(json!({"title": "c", "board_id": "ops", "status": "ready"})),
            Some(3_000),
        )
        .unwrap();
    assert_counts_exact(&w);
    w.move_card(&a.id, "running", None, None, Some(4_000))
        .unwrap();
    w.update(
        &b.id,
        &obj(json!({"agent_id": "bot", "board_id": "default"})),
        Some(5_000),
    )
    .unwrap();
    assert_counts_exact(&w);
    w.archive(&c.id, true, Some(6_000)).unwrap();
    assert_counts_exact(&w);
    let ops = w.stats(Some("ops"), Some(10_000)).unwrap();
    assert_eq!((ops.total, ops.archived, ops.active), (1, 1, 0));
    assert_eq!(ops.oldest_ready_age_ms, Some(4_000));
    assert_eq!(ops.updated_at, Some(6_000));
    w.archive(&c.id, false, Some(7_000)).unwrap();
    w.delete(&a.id, Some(8_000)).unwrap();
    assert_counts_exact(&w);
    let all = w.stats(None, Some(10_000)).unwrap();
    assert_eq!(all.total, 2);
    assert_eq!(all.by_agent.get("bot"), Some(&1));
    assert_eq!(all.by_agent.get("(default)"), Some(&1));
    assert_eq!(all.updated_at, Some(7_000));
    w.delete(&c.id, Some(9_000)).unwrap();
    assert_counts_exact(&w);
    let boards = w.list_boards().unwrap();
    assert!(boards.boards.iter().all(|s| s.id != "ops" || s.total == 0));
}

/// `open_parents` of every card equals a recount from its links and its parents.
fn assert_open_parents_exact(w: &Workboard) {
    let wrong: i64 = w
        .store()
        .read(|tx| {
            Ok(tx.query_row(
                "SELECT count(*) FROM workboard_cards c WHERE c.open_parents <> (
                   SELECT count(*) FROM workboard_card_links l LEFT JOIN workboard_cards p ON p.id = l.target_card_id
                    WHERE l.card_id = c.id AND l.type = 'parent' AND l.target_card_id IS NOT NULL
                      AND (p.id IS NULL OR p.status <> 'done'))",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(wrong, 0);
}

#[test]
fn open_parents_follow_parents_finishing_reopening_and_disappearing() {
    let w = wb();
    let p1 = w.create(&obj(json!({"title": "p1"})), None).unwrap();
    let p2 = w.create(&obj(json!({"title": "p2"})), None).unwrap();
    let child = w
        .create(&obj(json!({"title": "c", "parents": [p1.id, p2.id]})), None)
        .unwrap();
    assert_open_parents_exact(&w);
    w.update(&p1.id, &obj(json!({"status": "done"})), None)
        .unwrap();
    assert_open_parents_exact(&w);
    assert!(w.promote_ready(None).unwrap().cards.is_empty());
    w.update(&p2.id, &obj(json!({"status": "done"})), None)
        .unwrap();
    assert_open_parents_exact(&w);
    let promoted = w.promote_ready(None).unwrap();
    assert_eq!(
        promoted
            .cards
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        [child.id.as_str()]
    );
    // A parent reopening demotes the ready child; deleting it drops the child's link to
    // it, so the child's remaining (done) parent lets it run again.
    w.update(&p1.id, &obj(json!({"status": "todo"})), None)
        .unwrap();
    assert_open_parents_exact(&w);
    assert_eq!(w.promote_ready(None).unwrap().cards[0].status, "todo");
    w.delete(&p1.id, None).unwrap();
    assert_open_parents_exact(&w);
    let child_now = w.get(&child.id).unwrap().unwrap();
    assert_eq!(child_now.parent_ids(), vec![p2.id.clone()]);
    assert_eq!(w.promote_ready(None).unwrap().cards[0].id, child.id);
    assert_open_parents_exact(&w);
}

#[test]
fn kanban_columns_follow_status_order_and_leave_archived_cards_out() {
    let w = wb();
    for i in 0..3 {
        w.create(
            &obj(json!({"title": format!("t{i}"), "board_id": "ops"})),
            None,
        )
        .unwrap();
    }
    let gone = w
        .create(
            &obj(json!({"title": "old", "board_id": "ops", "status": "done"})),
            None,
        )
        .unwrap();
    w.create(&obj(json!({"title": "elsewhere", "board_id": "dev"})), None)
        .unwrap();
    w.archive(&gone.id, true, None).unwrap();
    let k = w.kanban(Some("ops"), 2, None).unwrap();
    let statuses: Vec<&str> = k.columns.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(statuses, super::model::STATUSES);
    let todo = k.columns.iter().find(|c| c.status == "todo").unwrap();
    assert_eq!((todo.total, todo.cards.len()), (3, 2));
    assert!(todo.cards.iter().all(|c| c.board_id() == "ops"));
    let done = k.columns.iter().find(|c| c.status == "done").unwrap();
    assert_eq!((done.total, done.cards.len()), (0, 0));
    assert_eq!(w.kanban(None, 10, None).unwrap().columns[2].total, 4);
    for bad in [0, 1001] {
        assert!(matches!(
            w.kanban(Some("ops"), bad, None),
            Err(crate::error::Error::Validation(_))
        ));
    }
}
