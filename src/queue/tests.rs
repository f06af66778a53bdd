//! Core tests of claim ordering, FIFO after retries, fencing and recovery.

use serde_json::json;

use super::{ClaimOptions, EnqueueRequest};
use crate::error::Error;
use crate::factory::Factory;
use crate::test_support::{factory_with_agent, T0};
use crate::workers::WorkerMode;

fn factory() -> Factory {
    factory_with_agent("a")
}

fn req(conv: &str, text: &str, priority: Option<i64>) -> EnqueueRequest {
    EnqueueRequest {
        conversation_id: conv.into(),
        agent_key: "a".into(),
        payload: json!({"provider": "test", "providerUserId": "u", "messageText": text}),
        priority,
        scheduled_for: None,
        max_attempts: None,
    }
}

fn pooled() -> ClaimOptions {
    ClaimOptions {
        conversation_id: None,
        mode: Some(WorkerMode::Pooled),
    }
}

fn text(c: &super::Claim) -> String {
    c.payload["messageText"].as_str().unwrap().to_string()
}

#[test]
fn priority_then_age_across_conversations() {
    let f = factory();
    f.enqueue(&req("c1", "low-old", Some(10)), Some(T0))
        .unwrap();
    f.enqueue(&req("c2", "high", Some(90)), Some(T0 + 1))
        .unwrap();
    f.enqueue(&req("c3", "low-new", Some(10)), Some(T0 + 2))
        .unwrap();
    let order: Vec<String> = (0..3)
        .map(|i| {
            text(
                &f.claim(&format!("w{i}"), &pooled(), Some(T0 + 10))
                    .unwrap()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(order, ["high", "low-old", "low-new"]);
}

#[test]
fn one_in_flight_per_conversation_and_no_head_of_line_blocking() {
    let f = factory();
    for i in 0..50 {
        f.enqueue(&req("busy", &format!("b{i}"), Some(100)), None)
            .unwrap();
    }
    f.enqueue(&req("other", "o0", Some(0)), None).unwrap();
    let first = f.claim("w1", &pooled(), None).unwrap().unwrap();
    assert_eq!(first.conversation_id, "busy");
    // The busy conversation's 49 high-priority messages must not hide the other one.
    let second = f.claim("w2", &pooled(), None).unwrap().unwrap();
    assert_eq!(text(&second), "o0");
    assert!(
        f.claim("w3", &pooled(), None).unwrap().is_none(),
        "busy conversation has one in flight"
    );
}

#[test]
fn fifo_within_a_conversation_survives_retries() {
    let f = factory();
    f.enqueue(&req("c", "m1", None), None).unwrap();
    f.enqueue(&req("c", "m2", None), None).unwrap();
    let c1 = f.claim("w", &pooled(), None).unwrap().unwrap();
    assert_eq!(text(&c1), "m1");
    let out = f
        .fail("w", &c1.message_id, &c1.lease_id, "boom", None)
        .unwrap();
    assert!(out.requeued);
    // m1 is backing off; m2 must not overtake it.
    assert!(f.claim("w", &pooled(), None).unwrap().is_none());
    f.clock().set(out.next_scheduled_for.unwrap());
    let again = f.claim("w", &pooled(), None).unwrap().unwrap();
    assert_eq!(text(&again), "m1");
    assert_eq!(again.attempt, 2);
    assert!(f
        .complete("w", &again.message_id, &again.lease_id, None)
        .unwrap());
    assert_eq!(text(&f.claim("w", &pooled(), None).unwrap().unwrap()), "m2");
}

#[test]
fn stale_owner_is_fenced_after_recovery() {
    let f = factory();
    f.enqueue(&req("c", "m1", None), None).unwrap();
    let old = f.claim("w1", &pooled(), None).unwrap().unwrap();
    f.clock().advance(f.config().lease.lease_ms + 1);
    assert!(
        !f.heartbeat("w1", &old.message_id, &old.lease_id, None)
            .unwrap(),
        "expired lease cannot be extended"
    );
    let out = f.release_stuck_jobs(10, None).unwrap();
    assert_eq!((out.requeued, out.unlocked), (1, 1));
    f.clock().advance(10_000);
    let new = f.claim("w2", &pooled(), None).unwrap().unwrap();
    assert_eq!(new.message_id, old.message_id);
    assert_eq!(new.attempt, 2, "the expired lease counted as an attempt");
    assert!(!f
        .complete("w1", &old.message_id, &old.lease_id, None)
        .unwrap());
    assert!(
        !f.fail("w1", &old.message_id, &old.lease_id, "late", None)
            .unwrap()
            .requeued
    );
    assert!(f
        .complete("w2", &new.message_id, &new.lease_id, None)
        .unwrap());
    assert!(matches!(
        f.complete("w2", "999", &new.lease_id, None),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn repeated_lease_expiry_reaches_dead_letter() {
    let f = factory();
    let id = f
        .enqueue(
            &EnqueueRequest {
                max_attempts: Some(2),
                ..req("c", "poison", None)
            },
            None,
        )
        .unwrap();
    for _ in 0..2 {
        f.clock().advance(200_000);
        let c = f.claim("w", &pooled(), None).unwrap().expect("claimable");
        assert_eq!(c.message_id, id);
        f.clock().advance(f.config().lease.lease_ms + 1);
        f.release_stuck_jobs(10, None).unwrap();
    }
    let job = f.get_job(&id).unwrap().unwrap();
    assert_eq!(job.status, "dead_letter");
    assert_eq!(
        job.last_error.as_deref(),
        Some(super::recovery::LEASE_EXPIRED)
    );
    assert_eq!(f.queue_stats(None).unwrap().dead_letter, 1);
}

#[test]
fn complete_and_claim_hands_over_the_next_message_in_one_call() {
    let f = factory();
    for i in 0..3 {
        f.enqueue(&req(&format!("c{i}"), &format!("m{i}"), None), None)
            .unwrap();
    }
    let mut c = f.claim("w", &pooled(), None).unwrap();
    let mut seen = Vec::new();
    while let Some(claim) = c {
        seen.push(text(&claim));
        c = f
            .complete_and_claim("w", &claim.message_id, &claim.lease_id, &pooled(), None)
            .unwrap();
    }
    assert_eq!(seen, ["m0", "m1", "m2"]);
    let stale = f.complete_and_claim("w", "1", "lease-gone", &pooled(), None);
    assert!(matches!(stale, Err(Error::Conflict(_))));
}

#[test]
fn draining_workers_never_claim_and_cannot_be_reactivated() {
    let f = factory();
    f.enqueue(&req("c", "m", None), None).unwrap();
    let input = |status: &str| crate::workers::WorkerStateInput {
        worker_id: "w".into(),
        provider: "local".into(),
        status: status.into(),
        ..Default::default()
    };
    f.upsert_worker_state(input("active"), None).unwrap();
    f.upsert_worker_state(input("draining"), None).unwrap();
    assert!(f.claim("w", &pooled(), None).unwrap().is_none());
    assert!(matches!(
        f.upsert_worker_state(input("active"), None),
        Err(Error::InvalidState(_))
    ));
}

#[test]
fn enqueue_many_is_all_or_nothing() {
    let f = factory();
    let mut batch = vec![req("c1", "ok", None), req("c2", "ok", None)];
    batch.push(EnqueueRequest {
        agent_key: "missing".into(),
        ..req("c3", "bad", None)
    });
    let err = f.enqueue_many(&batch, None).unwrap_err();
    assert!(err.to_string().starts_with("item 2:"), "{err}");
    assert_eq!(f.queue_stats(None).unwrap().queued_ready, 0);
    assert_eq!(f.enqueue_many(&batch[..2], None).unwrap().len(), 2);
}

fn query_plan(f: &Factory, sql: &str) -> String {
    f.store()
        .read(|tx| {
            let mut stmt = tx.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let rows = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.join("\n"))
        })
        .unwrap()
}

#[test]
fn hot_queries_read_indexes_without_sorting() {
    let f = factory();
    // claim: the front of the ready range, already in claim order, then the
    // head message by row key
    let plan = query_plan(&f, super::claim::pick_sql(false));
    assert!(
        plan.contains("USING INDEX conversations_sched (state=? AND sched_k1>?)"),
        "{plan}"
    );
    assert!(
        plan.contains("SEARCH m USING INTEGER PRIMARY KEY (rowid=?)"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "claim must not sort: {plan}");
    let plan = query_plan(&f, super::claim::pick_sql(true));
    assert!(plan.contains("conversation_id=?"), "{plan}");
    // the head of one conversation
    let plan = query_plan(
        &f,
        "SELECT id FROM messages WHERE conversation_ref = 1 AND pending_rank = 0 ORDER BY order_key, id LIMIT 1",
    );
    assert!(
        plan.contains("messages_conversation (conversation_ref=? AND pending_rank=?)"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    // expired leases: the busy range by expiry
    let plan = query_plan(
        &f,
        "SELECT m.id FROM conversations c JOIN messages m ON m.id = c.lock_message
         WHERE c.state = 'busy' AND c.sched_k1 <= 0 ORDER BY c.sched_k1 LIMIT 5",
    );
    assert!(
        plan.contains("USING INDEX conversations_sched (state=? AND sched_k1<?)"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    // due waiting conversations
    let plan = query_plan(
        &f,
        "SELECT id FROM conversations WHERE state = 'waiting' AND sched_k1 <= 0",
    );
    assert!(
        plan.contains("conversations_sched (state=? AND sched_k1<?)"),
        "{plan}"
    );
}

#[test]
fn requeue_puts_a_dead_letter_behind_waiting_messages_with_fresh_attempts() {
    let f = factory();
    let mut first = req("c1", "poison", None);
    first.max_attempts = Some(1);
    let poison = f.enqueue(&first, Some(T0)).unwrap();
    let c = f.claim("w1", &pooled(), Some(T0 + 1)).unwrap().unwrap();
    let out = f
        .fail("w1", &c.message_id, &c.lease_id, "boom", Some(T0 + 2))
        .unwrap();
    assert!(out.dead_lettered);
    f.enqueue(&req("c1", "later", None), Some(T0 + 3)).unwrap();

    assert!(matches!(
        f.requeue("999999", Some(T0 + 4)),
        Err(Error::NotFound(_))
    ));
    let later = f.list_jobs("queued", 10).unwrap()[0].message_id.clone();
    assert!(matches!(
        f.requeue(&later, Some(T0 + 4)),
        Err(Error::InvalidState(_))
    ));

    let job = f.requeue(&poison, Some(T0 + 5)).unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("queued", 0));
    assert_eq!(job.last_error.as_deref(), Some("boom"));
    assert!(matches!(
        f.requeue(&poison, Some(T0 + 6)),
        Err(Error::InvalidState(_))
    ));
    let order: Vec<String> = (0..2)
        .map(|i| {
            let c = f
                .claim("w1", &pooled(), Some(T0 + 10 + i))
                .unwrap()
                .unwrap();
            f.complete("w1", &c.message_id, &c.lease_id, Some(T0 + 10 + i))
                .unwrap();
            text(&c)
        })
        .collect();
    assert_eq!(order, ["later", "poison"]);
}

#[test]
fn a_claim_writes_only_the_lock_and_readers_report_the_message_in_flight() {
    let f = factory();
    let first = f.enqueue(&req("c", "m1", None), Some(T0)).unwrap();
    let second = f.enqueue(&req("c", "m2", None), Some(T0 + 1)).unwrap();
    let c = f.claim("w", &pooled(), Some(T0 + 5)).unwrap().unwrap();
    assert_eq!(c.message_id, first);
    let raw: (String, Option<String>) = f
        .store
        .read(|tx| {
            Ok(tx.query_row(
                "SELECT status, claimed_by FROM messages WHERE id = ?1",
                [crate::ids::parse_message_id(&first)?],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .unwrap();
    assert_eq!(
        raw,
        ("queued".to_string(), None),
        "the claim leaves the message row alone"
    );
    let job = f.get_job(&first).unwrap().unwrap();
    assert_eq!(job.status, "processing");
    assert_eq!(job.claimed_by.as_deref(), Some("w"));
    assert_eq!(job.lease_expires_at, Some(c.lease_expires_at));
    let ids = |status: &str| -> Vec<String> {
        f.list_jobs(status, 10)
            .unwrap()
            .into_iter()
            .map(|j| j.message_id)
            .collect()
    };
    assert_eq!(ids("processing"), vec![first.clone()]);
    assert_eq!(ids("queued"), vec![second.clone()]);
    let stats = f.queue_stats(Some(T0 + 5)).unwrap();
    assert_eq!(
        (stats.processing, stats.queued_ready, stats.queued_delayed),
        (1, 1, 0)
    );
    assert!(f
        .complete("w", &c.message_id, &c.lease_id, Some(T0 + 6))
        .unwrap());
    let done = f.get_job(&first).unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.claimed_by.as_deref()),
        ("done", Some("w"))
    );
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(ids("processing"), Vec::<String>::new());
    // A failure records the holder too, and the retried message reads as queued.
    let c2 = f.claim("w2", &pooled(), Some(T0 + 7)).unwrap().unwrap();
    assert_eq!(c2.message_id, second);
    f.fail("w2", &c2.message_id, &c2.lease_id, "boom", Some(T0 + 8))
        .unwrap();
    let retried = f.get_job(&second).unwrap().unwrap();
    assert_eq!(
        (
            retried.status.as_str(),
            retried.claimed_by.as_deref(),
            retried.attempts
        ),
        ("queued", Some("w2"), 1)
    );
}
