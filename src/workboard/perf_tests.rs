//! Tests of the schema V8 bookkeeping: `has_parents` follows the card's parent
//! links, and the watched-card queries (`INDEXED BY workboard_cards_watch`) still
//! find every card that promotion or dispatch can change.

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
