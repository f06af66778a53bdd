//! Unit tests of the workboard core: normalization, budget trimming, the DAG.

use serde_json::{json, Value};

use super::model::*;
use super::normalize::{self as n, Input};
use super::*;

use crate::test_support::workboard as wb;

fn obj(v: Value) -> Input {
    v.as_object().cloned().unwrap()
}

fn create(w: &Workboard, v: Value) -> Card {
    w.create(&obj(v), None).unwrap()
}

#[test]
fn normalization_trims_caps_and_names_fields() {
    assert_eq!(
        n::text(Some(&json!("  hi ")), "x", 5).unwrap(),
        Some("hi".into())
    );
    assert_eq!(n::text(Some(&json!("   ")), "x", 5).unwrap(), None);
    let err = n::text(Some(&json!("toolong")), "title", 3).unwrap_err();
    assert_eq!(err.to_string(), "title must be 3 characters or fewer.");
    assert!(n::text(Some(&json!(3)), "notes", 3)
        .unwrap_err()
        .to_string()
        .contains("notes"));
    assert_eq!(
        n::labels(Some(&json!("release, docs, release,"))).unwrap(),
        vec!["release", "docs"]
    );
    let many: Vec<String> = (0..20).map(|i| format!("l{i}")).collect();
    assert_eq!(n::labels(Some(&json!(many))).unwrap().len(), 12);
    let parents: Vec<String> = (0..21).map(|i| format!("p{i}")).collect();
    assert_eq!(
        n::string_list(Some(&json!(parents)), "parents", 120)
            .unwrap_err()
            .to_string(),
        "parents supports at most 20 entries."
    );
    assert_eq!(
        n::string_list(Some(&json!(["a", 1])), "parents", 120)
            .unwrap_err()
            .to_string(),
        "parents entries must be strings."
    );
    assert_eq!(
        n::board_id(Some(&json!(" Ops.Team "))).unwrap(),
        Some("ops.team".into())
    );
    assert!(n::board_id(Some(&json!("-bad"))).is_err());
    assert!(n::status(Some(&json!("later")), "todo")
        .unwrap_err()
        .to_string()
        .starts_with("status must be one of: triage, backlog"));
    assert_eq!(n::timestamp(Some(&json!(f64::MAX))), None);
    assert_eq!(n::timestamp(Some(&json!(12.7))), Some(12));
    for p in [
        "/Users/me/repo",
        "C:\\Users\\me\\repo",
        "\\\\server\\share\\repo",
    ] {
        assert!(
            n::workspace(Some(&json!({"kind": "dir", "path": p}))).is_ok(),
            "{p}"
        );
    }
    assert!(n::workspace(Some(&json!({"kind": "dir", "path": "repo"})))
        .unwrap_err()
        .to_string()
        .contains("absolute"));
    assert_eq!(
        cap_text(&"x".repeat(300), 240).unwrap().chars().count(),
        240
    );
}

#[test]
fn budget_trimming_keeps_metadata_under_24_kib_and_dependency_links() {
    let mut meta = Metadata::default();
    meta.links.push(Link {
        id: "dep".into(),
        kind: "parent".into(),
        created_at: 1,
        target_card_id: Some("p".into()),
        title: None,
        url: None,
    });
    for i in 0..50 {
        meta.comments.push(Comment {
            id: format!("c{i}"),
            body: format!("{i:02} {}", "x".repeat(1990)),
            created_at: i,
            updated_at: None,
        });
    }
    budget::trim_to_budget(&mut meta);
    assert!(meta.byte_size() <= MAX_CARD_METADATA_BYTES);
    assert!(meta.comments.len() < 50);
    assert!(meta.comments.last().unwrap().body.starts_with("49 "));
    assert_eq!(meta.links.len(), 1, "dependency links are never trimmed");
}

#[test]
fn create_list_order_and_events() {
    let w = wb();
    let review = create(
        &w,
        json!({"title": "Review", "status": "review", "labels": "release, docs"}),
    );
    let todo = create(&w, json!({"title": "Todo"}));
    let ids: Vec<String> = w
        .list(&ListQuery::default())
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec![todo.id.clone(), review.id.clone()]);
    assert_eq!(review.events[0].kind, "created");
    assert!(todo.metadata.is_none());
    let zero = create(&w, json!({"title": "Top", "position": 0}));
    assert_eq!(zero.position, 0);
}

#[test]
fn dag_rejects_cycles_and_links_both_ways() {
    let w = wb();
    let a = create(&w, json!({"title": "A"}));
    let b = create(&w, json!({"title": "B", "parents": [a.id]}));
    let c = create(&w, json!({"title": "C", "parents": [b.id]}));
    assert_eq!(b.status, "todo");
    let err = w.link_cards(&c.id, &a.id, None, None).unwrap_err();
    assert_eq!(err.to_string(), "dependency link would create a cycle.");
    let parent = w.get(&a.id).unwrap().unwrap();
    assert_eq!(parent.meta().child_ids(), vec![b.id.clone()]);
    w.move_card(&a.id, "done", None, None, None).unwrap();
    let promoted = w.promote_ready(None).unwrap();
    assert_eq!(promoted.cards.len(), 1);
    assert_eq!(promoted.cards[0].id, b.id);
    assert_eq!(promoted.cards[0].status, "ready");
}

#[test]
fn failed_create_with_parents_leaves_nothing() {
    let w = wb();
    let err = w
        .create(
            &obj(json!({"title": "Orphan", "parents": ["missing"]})),
            None,
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "card not found: missing");
    assert!(w.list(&ListQuery::default()).unwrap().is_empty());
}

#[test]
fn claims_cap_ttl_and_extend_by_original_ttl() {
    let w = wb();
    let card = create(&w, json!({"title": "Long run"}));
    let claimed = w
        .claim(&card.id, "main", None, Some(60.0), Some(1_000))
        .unwrap();
    assert_eq!(claimed.card.status, "running");
    let hb = w
        .heartbeat(&card.id, None, Some("main"), None, Some(31_000))
        .unwrap();
    assert_eq!(hb.claim().unwrap().expires_at, Some(91_000));
    let other = create(&w, json!({"title": "Max"}));
    let c = w
        .claim(
            &other.id,
            "main",
            None,
            Some(9_007_199_254_740_991.0),
            Some(1_000),
        )
        .unwrap();
    assert_eq!(
        c.card.claim().unwrap().expires_at,
        Some(MAX_DATE_TIMESTAMP_MS)
    );
}

#[test]
fn attachments_require_canonical_base64() {
    assert!(attachments::decode_canonical("b2s=").is_ok());
    assert!(attachments::decode_canonical("b2s=\n").is_err());
    assert!(
        attachments::decode_canonical("b2t=").is_err(),
        "non-canonical padding bits"
    );
}

#[test]
fn events_follow_the_seed_priority_rules() {
    let w = wb();
    let card = create(&w, json!({"title": "Events"}));
    let mut next = card.clone();
    next.status = "ready".into();
    let mut meta = next.meta();
    meta.comments.push(Comment {
        id: "c".into(),
        body: "b".into(),
        created_at: 1,
        updated_at: None,
    });
    next.set_meta(meta);
    // A status change wins over a comment.
    assert_eq!(events::update_event(&card, &next, 5).kind, "moved");
    let mut archived = card.clone();
    let mut meta = archived.meta();
    meta.archived_at = Some(5);
    archived.set_meta(meta);
    assert_eq!(events::update_event(&card, &archived, 5).kind, "archived");
    assert_eq!(events::update_event(&archived, &card, 5).kind, "unarchived");
    assert_eq!(events::update_event(&card, &card, 5).kind, "edited");
}

#[test]
fn attempts_count_each_failure_once_and_reset_on_success() {
    let mut meta = Metadata::default();
    let mut exec = Execution {
        id: "e".into(),
        kind: "agent-session".into(),
        engine: "codex".into(),
        mode: "autonomous".into(),
        status: "running".into(),
        model: "m".into(),
        session_key: None,
        run_id: Some("run-1".into()),
        started_at: 10,
        updated_at: 10,
    };
    budget::sync_attempts(&mut meta, &exec, 10);
    exec.status = "blocked".into();
    exec.updated_at = 20;
    budget::sync_attempts(&mut meta, &exec, 20);
    budget::sync_attempts(&mut meta, &exec, 21);
    assert_eq!(
        meta.failure_count, 1,
        "a repeated blocked write is not a new failure"
    );
    assert_eq!(meta.attempts[0].ended_at, Some(20));
    exec.status = "done".into();
    budget::sync_attempts(&mut meta, &exec, 30);
    assert_eq!(meta.failure_count, 0);
    assert_eq!(meta.attempts.len(), 1);
}

#[test]
fn holds_block_runnable_statuses_until_parents_finish() {
    let w = wb();
    let parent = create(&w, json!({"title": "P", "status": "running"}));
    let child = create(
        &w,
        json!({"title": "C", "parents": [parent.id], "status": "running"}),
    );
    assert_eq!(child.status, "todo", "held by dependencies at create");
    for status in ["ready", "running", "review", "done"] {
        let err = w
            .move_card(&child.id, status, None, None, None)
            .unwrap_err();
        assert_eq!(err.to_string(), "card dependencies are not done.");
    }
    let sched = create(&w, json!({"title": "S", "scheduled_at": 5_000}));
    assert_eq!(sched.status, "scheduled");
    let err = w.claim(&sched.id, "main", None, None, None).unwrap_err();
    assert_eq!(err.to_string(), "card is scheduled for later.");
}
