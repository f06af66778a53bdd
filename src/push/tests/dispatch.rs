//! Dispatch: routing, exactly-once slots, failures that do not stop a batch,
//! manual jobs that never take the due window, listings and stats.

use super::*;
use crate::error::Error;
use crate::queue::ClaimOptions;

fn claim_payload(f: &Factory) -> (String, serde_json::Value) {
    let c = f
        .claim("w1", &ClaimOptions::default(), Some(T0 + 365 * DAY))
        .unwrap()
        .expect("a message to claim");
    (c.conversation_id, c.payload)
}

#[test]
fn a_due_slot_goes_to_the_stable_conversation_once() {
    let f = setup();
    let job = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    assert_eq!(
        f.dispatch_due_push_jobs(None, Some(BASE)).unwrap(),
        DispatchReport::default()
    );
    let now = BASE + 6 * 60_000;
    let r = f.dispatch_due_push_jobs(Some(50), Some(now)).unwrap();
    assert_eq!((r.scanned, r.enqueued, r.failed, r.skipped), (1, 1, 0, 0));
    let again = f.dispatch_due_push_jobs(Some(50), Some(now)).unwrap();
    assert_eq!(again.scanned, 0);
    let (conv, payload) = claim_payload(&f);
    assert_eq!(conv, "user-agent:push-agent:u1");
    assert_eq!(payload["provider"], "system_push");
    assert_eq!(payload["providerUserId"], "u1");
    let meta = &payload["metadata"];
    assert_eq!(meta["pushJobId"], job.job_id.as_str());
    assert_eq!(meta["pushMode"], "scheduled");
    assert_eq!(meta["conversationTargetSource"], "legacy_user");
    let run_key = format!("scheduled:{}:{}", job.job_id, BASE + 60_000);
    assert_eq!(meta["runKey"], run_key.as_str());
    let after = f.get_push_job(&job.job_id, None).unwrap().unwrap();
    assert_eq!(after.next_run_at, Some(BASE + 60_000 + DAY));
    assert_eq!(
        (after.last_run_at, after.last_run_key.as_deref()),
        (Some(now), Some(run_key.as_str()))
    );
    let rows = f.list_push_dispatches(&job.job_id, Some(10)).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].status, rows[0].scheduled_for),
        (DispatchStatus::Enqueued, BASE + 60_000)
    );
}

#[test]
fn telegram_paired_users_get_telegram_routing_in_the_same_conversation() {
    let f = setup();
    bind(
        &f,
        "u1",
        "push-agent",
        Some(("tg-user-1", "9988776655")),
        Some("co-1"),
    );
    f.create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    f.dispatch_due_push_jobs(None, Some(BASE + 60_000)).unwrap();
    let (conv, payload) = claim_payload(&f);
    assert_eq!(conv, "user-agent:push-agent:u1");
    assert_eq!(payload["provider"], "telegram");
    assert_eq!(payload["providerUserId"], "tg-user-1");
    assert_eq!(payload["metadata"]["telegramChatId"], "9988776655");
    assert_eq!(
        payload["metadata"]["conversationTargetSource"],
        "telegram_chat"
    );
}

#[test]
fn missed_periods_are_not_back_filled() {
    let f = setup();
    let job = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    let late = BASE + 10 * DAY + 2 * 60_000;
    let r = f.dispatch_due_push_jobs(None, Some(late)).unwrap();
    assert_eq!(r.enqueued, 1);
    let j = f.get_push_job(&job.job_id, None).unwrap().unwrap();
    assert_eq!(j.next_run_at, Some(BASE + 60_000 + 11 * DAY));
    assert_eq!(
        f.dispatch_due_push_jobs(None, Some(late)).unwrap().scanned,
        0
    );
}

#[test]
fn no_binding_or_a_binding_to_another_agent_is_a_failed_run_that_advances() {
    let f = setup();
    agent(&f, "other-agent", true);
    let loose = f
        .create_push_job(&new_job("nobody", daily("08:00")), Some(BASE))
        .unwrap();
    let owned = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    bind(&f, "u1", "other-agent", None, Some("co-1"));
    let r = f.dispatch_due_push_jobs(None, Some(BASE + 60_000)).unwrap();
    assert_eq!((r.scanned, r.enqueued, r.failed), (2, 0, 2));
    let d = &f.list_push_dispatches(&loose.job_id, None).unwrap()[0];
    assert_eq!(
        (d.status, d.error.as_deref()),
        (DispatchStatus::Failed, Some(NO_BINDING))
    );
    let d = &f.list_push_dispatches(&owned.job_id, None).unwrap()[0];
    assert_eq!(
        d.error.as_deref(),
        Some("No active agent binding for user: 'u1' is bound to agent 'other-agent', not 'push-agent'")
    );
    assert_eq!(d.agent_key.as_deref(), Some("push-agent"));
    for id in [&loose.job_id, &owned.job_id] {
        let j = f.get_push_job(id, None).unwrap().unwrap();
        assert_eq!(j.next_run_at, Some(BASE + 60_000 + DAY));
    }
    assert_eq!(count(&f, "SELECT count(*) FROM messages"), 0);
}

#[test]
fn a_job_without_an_agent_adopts_the_active_binding() {
    let f = setup();
    let job = f
        .create_push_job(&new_job("late", daily("08:00")), Some(BASE))
        .unwrap();
    assert_eq!(job.agent_key, None);
    bind(&f, "late", "push-agent", None, None);
    f.dispatch_due_push_jobs(None, Some(BASE + 60_000)).unwrap();
    let j = f.get_push_job(&job.job_id, None).unwrap().unwrap();
    assert_eq!(j.agent_key.as_deref(), Some("push-agent"));
}

#[test]
fn a_failed_enqueue_is_rolled_back_and_recorded_while_the_batch_goes_on() {
    let f = setup();
    agent(&f, "off-agent", true);
    bind(&f, "u2", "off-agent", None, Some("co-1"));
    let bad = f
        .create_push_job(&new_job("u2", daily("08:00")), Some(BASE))
        .unwrap();
    let good = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    agent(&f, "off-agent", false);
    let r = f.dispatch_due_push_jobs(None, Some(BASE + 60_000)).unwrap();
    assert_eq!((r.scanned, r.enqueued, r.failed), (2, 1, 1));
    let d = &f.list_push_dispatches(&bad.job_id, None).unwrap()[0];
    assert_eq!(d.status, DispatchStatus::Failed);
    assert!(d.error.as_deref().unwrap().contains("off-agent"), "{d:?}");
    assert_eq!(
        f.list_push_dispatches(&good.job_id, None).unwrap()[0].status,
        DispatchStatus::Enqueued
    );
    assert_eq!(count(&f, "SELECT count(*) FROM messages"), 1);
    assert_eq!(
        count(
            &f,
            "SELECT count(*) FROM conversations WHERE conversation_id = 'user-agent:off-agent:u2'"
        ),
        0,
        "the failed enqueue left no conversation row behind"
    );
}

#[test]
fn many_enabled_manual_jobs_never_starve_a_due_scheduled_job() {
    let f = setup();
    let limit = 5;
    for _ in 0..=limit {
        f.create_push_job(&new_job("u1", Schedule::Manual), Some(BASE))
            .unwrap();
    }
    let job = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    let r = f
        .dispatch_due_push_jobs(Some(limit), Some(BASE + 60_000))
        .unwrap();
    assert_eq!((r.scanned, r.enqueued), (1, 1));
    assert_eq!(f.list_push_dispatches(&job.job_id, None).unwrap().len(), 1);
}

#[test]
fn the_limit_bounds_a_pass_oldest_slot_first() {
    let f = setup();
    let early = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    let later = f
        .create_push_job(&new_job("u1", daily("08:01")), Some(BASE))
        .unwrap();
    let now = BASE + 10 * 60_000;
    assert_eq!(
        f.dispatch_due_push_jobs(Some(1), Some(now))
            .unwrap()
            .enqueued,
        1
    );
    assert_eq!(
        f.list_push_dispatches(&early.job_id, None).unwrap().len(),
        1
    );
    assert!(f
        .list_push_dispatches(&later.job_id, None)
        .unwrap()
        .is_empty());
    assert_eq!(
        f.dispatch_due_push_jobs(Some(1), Some(now))
            .unwrap()
            .enqueued,
        1
    );
    assert!(matches!(
        f.dispatch_due_push_jobs(Some(0), None),
        Err(Error::Validation(_))
    ));
    assert!(matches!(
        f.dispatch_due_push_jobs(Some(1001), None),
        Err(Error::Validation(_))
    ));
}

#[test]
fn dispatch_listing_is_newest_first_beyond_the_limit() {
    let f = setup();
    let job = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    let mut now = BASE + 60_000;
    for _ in 0..30 {
        f.dispatch_due_push_jobs(None, Some(now)).unwrap();
        now += DAY;
    }
    let rows = f.list_push_dispatches(&job.job_id, Some(5)).unwrap();
    let slots: Vec<i64> = rows.iter().map(|d| d.scheduled_for).collect();
    let newest = BASE + 60_000 + 29 * DAY;
    assert_eq!(slots, (0..5).map(|i| newest - i * DAY).collect::<Vec<_>>());
    let for_agent = f
        .list_push_dispatches_for_agent("u1", "push-agent", Some(3))
        .unwrap();
    assert_eq!(for_agent[0].scheduled_for, newest);
    let stats = f.user_agent_push_stats("u1", "push-agent").unwrap();
    assert_eq!(
        (stats.total_dispatches, stats.latest_dispatch_at),
        (30, Some(newest))
    );
    assert_eq!((stats.total_push_jobs, stats.active_push_jobs), (1, 1));
    assert_eq!(
        f.list_push_dispatches("pjob-missing", None).unwrap_err(),
        Error::NotFound("Push job not found".into())
    );
    // Deleting the job takes its audit with it.
    assert!(f.delete_push_job(&job.job_id, None).unwrap());
    assert_eq!(count(&f, "SELECT count(*) FROM push_dispatches"), 0);
}

#[test]
fn an_existing_run_key_is_skipped_not_sent_twice() {
    let f = setup();
    let job = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    let slot = BASE + 60_000;
    f.dispatch_due_push_jobs(None, Some(slot)).unwrap();
    // Put the job back on the slot it already ran (as a racing writer could).
    f.store
        .write(|tx| {
            tx.execute(
                "UPDATE push_jobs SET next_run_at = ?2 WHERE job_id = ?1",
                rusqlite::params![job.job_id, slot],
            )?;
            Ok(())
        })
        .unwrap();
    let r = f.dispatch_due_push_jobs(None, Some(slot + 1)).unwrap();
    assert_eq!((r.scanned, r.skipped, r.enqueued), (1, 1, 0));
    assert_eq!(count(&f, "SELECT count(*) FROM messages"), 1);
    assert_eq!(
        f.get_push_job(&job.job_id, None)
            .unwrap()
            .unwrap()
            .next_run_at,
        Some(slot + DAY)
    );
}

#[test]
fn a_schedule_that_cannot_be_planned_is_disabled_instead_of_blocking_the_index() {
    let f = setup();
    let job = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    f.store
        .write(|tx| {
            tx.execute(
                "UPDATE push_jobs SET timezone = 'Not/AZone' WHERE job_id = ?1",
                [&job.job_id],
            )?;
            Ok(())
        })
        .unwrap();
    let r = f.dispatch_due_push_jobs(None, Some(BASE + 60_000)).unwrap();
    assert_eq!(r.failed, 1);
    let d = &f.list_push_dispatches(&job.job_id, None).unwrap()[0];
    assert!(d.error.as_deref().unwrap().contains("the job was disabled"));
    assert_eq!(
        count(
            &f,
            "SELECT count(*) FROM push_jobs WHERE next_run_at IS NOT NULL"
        ),
        0
    );
}

#[test]
fn trigger_now_uses_a_manual_run_key_and_keeps_the_next_slot() {
    let f = setup();
    let job = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    let now = BASE + 2 * 60_000; // the 08:00 slot is due but not dispatched yet
    let t = f
        .trigger_push_job_now(&job.job_id, None, Some(now))
        .unwrap();
    assert_eq!(t.run_key, format!("manual:{}:{now}", job.job_id));
    let j = f.get_push_job(&job.job_id, None).unwrap().unwrap();
    assert_eq!(j.next_run_at, Some(BASE + 60_000));
    assert_eq!(j.last_run_key.as_deref(), Some(t.run_key.as_str()));
    assert_eq!(
        f.trigger_push_job_now(&job.job_id, None, Some(now))
            .unwrap_err(),
        Error::Conflict(format!(
            "Push job '{}' was already triggered at {now} (run key '{}')",
            job.job_id, t.run_key
        ))
    );
    let d = &f.list_push_dispatches(&job.job_id, None).unwrap()[0];
    assert_eq!(
        (d.push_mode.as_str(), d.enqueued_message_id.as_deref()),
        ("manual", Some(t.enqueued_message_id.as_str()))
    );
    let (_, payload) = claim_payload(&f);
    assert_eq!(payload["metadata"]["pushMode"], "manual");
    assert_eq!(
        f.trigger_push_job_now("pjob-none", None, None).unwrap_err(),
        Error::NotFound("Push job not found".into())
    );
    let loose = f
        .create_push_job(&new_job("nobody", Schedule::Manual), Some(BASE))
        .unwrap();
    let before = count(&f, "SELECT count(*) FROM push_dispatches");
    assert_eq!(
        f.trigger_push_job_now(&loose.job_id, None, Some(now))
            .unwrap_err(),
        Error::InvalidState(NO_BINDING.into())
    );
    assert_eq!(count(&f, "SELECT count(*) FROM push_dispatches"), before);
}

#[test]
fn conversation_and_usage_stats_count_exactly() {
    let f = setup();
    assert_eq!(
        f.user_agent_conversation_stats("u1", "push-agent")
            .unwrap()
            .conversation_id
            .as_deref(),
        Some("user-agent:push-agent:u1")
    );
    let job = f
        .create_push_job(&new_job("u1", Schedule::Manual), Some(BASE))
        .unwrap();
    for i in 0..3 {
        f.trigger_push_job_now(&job.job_id, None, Some(BASE + i))
            .unwrap();
    }
    f.append_conversation_messages(
        "user-agent:push-agent:u1",
        &[
            ("user".into(), "hi".into(), None),
            ("assistant".into(), "hello".into(), None),
        ],
        None,
        None,
    )
    .unwrap();
    let c = f.user_agent_conversation_stats("u1", "push-agent").unwrap();
    assert_eq!(
        (c.context_messages, c.queued_messages, c.failed_messages),
        (2, 3, 0)
    );
    let u = f.user_agent_usage_stats("u1", "push-agent").unwrap();
    assert_eq!(
        (
            u.total_push_jobs,
            u.active_push_jobs,
            u.total_dispatches,
            u.queued_messages
        ),
        (1, 1, 3, 3)
    );
    agent(&f, "other-agent", true);
    let other = f
        .user_agent_conversation_stats("u1", "other-agent")
        .unwrap();
    assert_eq!(other, UserAgentConversationStats::default());
}
