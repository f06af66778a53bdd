//! Unit tests of specify and decompose.

use serde_json::{json, Value};

use super::*;

use crate::test_support::workboard as wb;

fn obj(v: Value) -> Input {
    v.as_object().cloned().unwrap()
}

#[test]
fn decompose_failure_writes_nothing() {
    let w = wb();
    let parent = w.create(&obj(json!({"title": "P"})), None).unwrap();
    let before = w.change_revision().unwrap().revision;
    let input = obj(json!({"children": [{"title": "A"}, {"notes": "no title"}]}));
    let err = w.decompose(&parent.id, &input, None, None).unwrap_err();
    assert_eq!(err.to_string(), "title is required.");
    assert_eq!(w.change_revision().unwrap().revision, before);
    assert_eq!(w.list(&Default::default()).unwrap().len(), 1);
}

#[test]
fn derived_keys_and_inheritance() {
    let w = wb();
    let card = json!({"title": "P", "board_id": "b", "tenant": "t", "idempotency_key": "k"});
    let parent = w.create(&obj(card), None).unwrap();
    let input =
        obj(json!({"children": [{"title": "A"}, {"title": "B", "idempotency_key": "own"}]}));
    let out = w.decompose(&parent.id, &input, None, None).unwrap();
    let keys: Vec<_> = out
        .children
        .iter()
        .map(|c| c.automation().and_then(|a| a.idempotency_key.clone()))
        .collect();
    assert_eq!(keys, [Some("k:child:1".into()), Some("own".into())]);
    assert!(out.children.iter().all(|c| c.board_id() == "b"));
    assert_eq!(out.parent.status, "done");
    assert_eq!(
        out.parent.events.last().map(|e| e.kind.as_str()),
        Some("decomposed")
    );
}
