//! Unit tests of the notification log and cursors.

use serde_json::{json, Value};

use super::*;

use crate::test_support::workboard as wb;

fn obj(v: Value) -> Input {
    v.as_object().cloned().unwrap()
}

#[test]
fn kinds_parse_dedupe_and_name_the_bad_one() {
    let kinds = event_kinds(Some(&json!(" completed, stale,completed"))).unwrap();
    assert_eq!(kinds, Some(vec!["completed".into(), "stale".into()]));
    assert_eq!(event_kinds(Some(&json!([]))).unwrap(), None);
    let err = event_kinds(Some(&json!(["moved"])))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("notification kind must be one of: completed, failed, stale, status."));
    assert!(err.contains("\"moved\""));
}

#[test]
fn cursor_delivers_in_log_order_once() {
    let w = wb();
    let sub = w
        .subscribe_notifications(&obj(json!({"board_id": "ops", "target": "t"})), None)
        .unwrap();
    for (id, at) in [("late-b", 900), ("early-a", 5)] {
        let note = json!({"id": id, "kind": "failed", "created_at": at, "message": id});
        let card = json!({"title": id, "board_id": "ops", "metadata": {"notifications": [note]}});
        w.create(&obj(card), None).unwrap();
    }
    let q = EventsQuery {
        subscription_id: Some(sub.id.clone()),
        limit: Some(1),
        ..Default::default()
    };
    let first = w.advance_notification_events(&q, None).unwrap();
    let second = w.advance_notification_events(&q, None).unwrap();
    let third = w.advance_notification_events(&q, None).unwrap();
    assert_eq!(first.events[0].id, "late-b");
    assert_eq!(second.events[0].id, "early-a");
    assert!(first.events[0].sequence < second.events[0].sequence);
    assert!(third.events.is_empty());
    let stored = third.subscription.unwrap();
    assert_eq!(stored.last_event_sequence, Some(second.events[0].sequence));
    assert_eq!(stored.last_event_at, Some(5));
}
