//! Push templates and jobs: validation, ownership, next-slot planning.

use serde_json::json;

use super::*;
use crate::error::Error;

fn template(key: &str, periodicity: &str, times: Vec<Schedule>) -> NewPushTemplate {
    NewPushTemplate {
        company_id: "co-1".into(),
        template_key: key.into(),
        title: "Daily sync".into(),
        text: "Sync now".into(),
        periodicity: periodicity.into(),
        suggested_times: times,
        enabled: true,
        actor_user_id: "admin".into(),
    }
}

#[test]
fn templates_validate_and_list_newest_first() {
    let f = setup();
    let t = f
        .create_push_template(
            &template("daily-sync", "daily", vec![daily("09:00")]),
            Some(T0),
        )
        .unwrap();
    assert_eq!(t.template_key, "daily-sync");
    let dup = f
        .create_push_template(&template("daily-sync", "daily", vec![]), Some(T0))
        .unwrap_err();
    assert_eq!(
        dup,
        Error::Conflict("Template key 'daily-sync' already exists for company".into())
    );
    let manual = f
        .create_push_template(&template("m", "manual", vec![daily("09:00")]), Some(T0))
        .unwrap_err();
    assert_eq!(
        manual.to_string(),
        "Manual template does not accept suggested times"
    );
    let mixed = f
        .create_push_template(&template("w", "weekly", vec![daily("09:00")]), Some(T0))
        .unwrap_err();
    assert_eq!(
        mixed.to_string(),
        "All suggested times must match template periodicity"
    );
    let second = f
        .create_push_template(&template("other", "manual", vec![]), Some(T0 + 1))
        .unwrap();
    let listed: Vec<_> = f
        .list_push_templates("co-1", false)
        .unwrap()
        .into_iter()
        .map(|t| t.template_key)
        .collect();
    assert_eq!(listed, ["other", "daily-sync"]);
    // Update re-checks the merged periodicity/times.
    let bad = PushTemplatePatch {
        periodicity: Some("weekly".into()),
        ..Default::default()
    };
    assert!(f
        .update_push_template(&t.template_id, &bad, "admin", None)
        .is_err());
    let off = PushTemplatePatch {
        enabled: Some(false),
        ..Default::default()
    };
    let updated = f
        .update_push_template(&second.template_id, &off, "admin-2", Some(T0 + 5))
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.enabled, updated.updated_by.as_str()),
        (false, "admin-2")
    );
    assert_eq!(f.list_push_templates("co-1", false).unwrap().len(), 1);
    assert_eq!(f.list_push_templates("co-1", true).unwrap().len(), 2);
    assert!(f
        .update_push_template("ptpl-missing", &off, "a", None)
        .unwrap()
        .is_none());
    assert!(f.delete_push_template(&second.template_id).unwrap());
    assert!(!f.delete_push_template(&second.template_id).unwrap());
}

#[test]
fn job_from_template_copies_and_takes_the_first_suggested_time() {
    let f = setup();
    let t = f
        .create_push_template(
            &template("daily-sync", "daily", vec![daily("09:00"), daily("18:00")]),
            Some(T0),
        )
        .unwrap();
    let input = PushJobFromTemplate {
        company_id: "co-1".into(),
        consumer_user_id: "u1".into(),
        template_id: t.template_id.clone(),
        timezone: "Europe/Rome".into(),
        schedule: None,
        enabled: true,
        agent_key: None,
    };
    let job = f.create_push_job_from_template(&input, Some(T0)).unwrap();
    assert_eq!(job.schedule, daily("09:00"));
    assert_eq!(
        job.next_run_at,
        Some(T0 + 8 * 3_600_000),
        "09:00 CET = 08:00 UTC"
    );
    assert_eq!(
        job.source_template_id.as_deref(),
        Some(t.template_id.as_str())
    );
    assert_eq!(job.agent_key.as_deref(), Some("push-agent"));
    let other_company = PushJobFromTemplate {
        company_id: "co-2".into(),
        ..input.clone()
    };
    assert_eq!(
        f.create_push_job_from_template(&other_company, None)
            .unwrap_err()
            .to_string(),
        "Template company mismatch"
    );
    let missing = PushJobFromTemplate {
        template_id: "ptpl-nope".into(),
        ..input.clone()
    };
    assert_eq!(
        f.create_push_job_from_template(&missing, None).unwrap_err(),
        Error::NotFound("Template not found".into())
    );
    let empty = f
        .create_push_template(&template("empty", "weekly", vec![]), Some(T0))
        .unwrap();
    let no_schedule = PushJobFromTemplate {
        template_id: empty.template_id,
        ..input.clone()
    };
    assert_eq!(
        f.create_push_job_from_template(&no_schedule, None)
            .unwrap_err()
            .to_string(),
        "Schedule is required for non-manual template"
    );
    let wrong_kind = PushJobFromTemplate {
        schedule: Some(Schedule::Manual),
        ..input
    };
    assert_eq!(
        f.create_push_job_from_template(&wrong_kind, None)
            .unwrap_err()
            .to_string(),
        "Schedule kind must match periodicity"
    );
    let off = PushTemplatePatch {
        enabled: Some(false),
        ..Default::default()
    };
    f.update_push_template(&t.template_id, &off, "admin", None)
        .unwrap();
    let disabled = PushJobFromTemplate {
        company_id: "co-1".into(),
        consumer_user_id: "u1".into(),
        template_id: t.template_id.clone(),
        timezone: "UTC".into(),
        schedule: None,
        enabled: true,
        agent_key: None,
    };
    assert!(matches!(
        f.create_push_job_from_template(&disabled, None),
        Err(Error::InvalidState(m)) if m.contains("is disabled")
    ));
    assert_eq!(count(&f, "SELECT count(*) FROM push_jobs"), 1);
}

#[test]
fn jobs_plan_their_next_slot_and_manual_or_disabled_jobs_have_none() {
    let f = setup();
    let job = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    assert_eq!(job.next_run_at, Some(BASE + 60_000));
    assert_eq!(job.periodicity, Periodicity::Daily);
    let manual = f
        .create_push_job(&new_job("u1", Schedule::Manual), Some(BASE))
        .unwrap();
    assert_eq!(manual.next_run_at, None);
    let off = f
        .set_push_job_enabled(&job.job_id, false, None, Some(BASE + 1))
        .unwrap()
        .unwrap();
    assert_eq!((off.enabled, off.next_run_at), (false, None));
    // Re-enabling after the slot went by plans the next one (no back-fill).
    let on = f
        .set_push_job_enabled(&job.job_id, true, None, Some(BASE + 2 * 60_000))
        .unwrap()
        .unwrap();
    assert_eq!(on.next_run_at, Some(BASE + 60_000 + DAY));
    // The schema refuses a manual job with a slot.
    let bad = f.store.write(|tx| {
        tx.execute(
            "UPDATE push_jobs SET next_run_at = 1 WHERE job_id = ?1",
            [&manual.job_id],
        )?;
        Ok(())
    });
    assert!(bad.is_err());
}

#[test]
fn editing_the_text_keeps_a_pending_slot_and_schedule_changes_replan() {
    let f = setup();
    let job = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    let due = BASE + 60_000;
    let text = PushJobPatch {
        text: Some("new text".into()),
        ..Default::default()
    };
    let edited = f
        .update_push_job(&job.job_id, &text, None, Some(due + 5))
        .unwrap()
        .unwrap();
    assert_eq!(
        (edited.next_run_at, edited.text.as_str()),
        (Some(due), "new text")
    );
    let weekly = PushJobPatch {
        schedule: Some(
            Schedule::from_json(
                "s",
                &json!({"kind": "weekly", "weekday": 1, "time": "08:00"}),
            )
            .unwrap(),
        ),
        timezone: Some("america/new_york".into()),
        ..Default::default()
    };
    let moved = f
        .update_push_job(&job.job_id, &weekly, None, Some(due + 5))
        .unwrap()
        .unwrap();
    assert_eq!(moved.periodicity, Periodicity::Weekly);
    assert_eq!(moved.timezone, "America/New_York");
    // Monday 2026-01-05 08:00 EST = 13:00 UTC.
    assert_eq!(moved.next_run_at, Some(T0 + 4 * DAY + 13 * 3_600_000));
    let mismatch = PushJobPatch {
        periodicity: Some("daily".into()),
        ..Default::default()
    };
    assert_eq!(
        f.update_push_job(&job.job_id, &mismatch, None, None)
            .unwrap_err()
            .to_string(),
        "Schedule kind must match periodicity"
    );
    assert!(f
        .update_push_job("pjob-missing", &text, None, None)
        .unwrap()
        .is_none());
}

#[test]
fn agent_ownership_rules() {
    let f = setup();
    agent(&f, "other-agent", true);
    let mut input = new_job("u1", daily("08:00"));
    input.agent_key = Some("other-agent".into());
    assert_eq!(
        f.create_push_job(&input, None).unwrap_err(),
        Error::Conflict("Agent key must match the current active binding for the user".into())
    );
    input.agent_key = Some("push-agent".into());
    let job = f.create_push_job(&input, Some(BASE)).unwrap();
    assert_eq!(job.agent_key.as_deref(), Some("push-agent"));
    let patch = PushJobPatch {
        title: Some("x".into()),
        ..Default::default()
    };
    assert!(f
        .update_push_job(&job.job_id, &patch, Some("other-agent"), None)
        .unwrap()
        .is_none());
    assert!(f
        .get_push_job(&job.job_id, Some("other-agent"))
        .unwrap()
        .is_none());
    assert!(!f.delete_push_job(&job.job_id, Some("other-agent")).unwrap());
    assert_eq!(
        f.trigger_push_job_now(&job.job_id, Some("other-agent"), None)
            .unwrap_err(),
        Error::NotFound("Push job not found for agent".into())
    );
    assert_eq!(
        f.list_push_jobs_for_agent("u1", "push-agent", true)
            .unwrap()
            .len(),
        1
    );
    assert!(f
        .list_push_jobs_for_agent("u1", "other-agent", true)
        .unwrap()
        .is_empty());
    assert!(f
        .get_push_job(&job.job_id, Some("push-agent"))
        .unwrap()
        .is_some());
    // A user without a binding gets a job without an agent (adopted at its first run).
    let loose = f
        .create_push_job(&new_job("nobody", daily("08:00")), Some(BASE))
        .unwrap();
    assert_eq!(loose.agent_key, None);
    // A disabled agent is not adopted at creation.
    agent(&f, "push-agent", false);
    let later = f
        .create_push_job(&new_job("u1", daily("09:00")), Some(BASE))
        .unwrap();
    assert_eq!(later.agent_key, None);
}

#[test]
fn listings_filter_disabled_jobs_and_sort_by_last_change() {
    let f = setup();
    let a = f
        .create_push_job(&new_job("u1", daily("08:00")), Some(BASE))
        .unwrap();
    let b = f
        .create_push_job(&new_job("u1", daily("09:00")), Some(BASE + 1))
        .unwrap();
    f.set_push_job_enabled(&a.job_id, false, None, Some(BASE + 2))
        .unwrap();
    let all: Vec<_> = f
        .list_push_jobs_for_user("u1", true)
        .unwrap()
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(all, [a.job_id.clone(), b.job_id.clone()]);
    let enabled: Vec<_> = f
        .list_push_jobs_for_user("u1", false)
        .unwrap()
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(enabled, [b.job_id]);
    assert!(f.delete_push_job(&a.job_id, None).unwrap());
    assert!(f.get_push_job(&a.job_id, None).unwrap().is_none());
}

#[test]
fn bad_job_input_is_rejected_before_anything_is_written() {
    let f = setup();
    let cases: Vec<(NewPushJob, &str)> = vec![
        (
            NewPushJob {
                title: " ".into(),
                ..new_job("u1", daily("08:00"))
            },
            "title",
        ),
        (
            NewPushJob {
                text: String::new(),
                ..new_job("u1", daily("08:00"))
            },
            "text",
        ),
        (
            NewPushJob {
                timezone: "Nowhere/City".into(),
                ..new_job("u1", daily("08:00"))
            },
            "Invalid timezone",
        ),
        (
            NewPushJob {
                timezone: String::new(),
                ..new_job("u1", daily("08:00"))
            },
            "Timezone is required",
        ),
        (
            NewPushJob {
                company_id: String::new(),
                ..new_job("u1", daily("08:00"))
            },
            "companyId",
        ),
        (new_job(" u1", daily("08:00")), "consumerUserId"),
        (
            NewPushJob {
                periodicity: Some("hourly".into()),
                ..new_job("u1", daily("08:00"))
            },
            "periodicity",
        ),
        (
            NewPushJob {
                periodicity: Some("weekly".into()),
                ..new_job("u1", daily("08:00"))
            },
            "Schedule kind",
        ),
        (
            NewPushJob {
                agent_key: Some("bad key".into()),
                ..new_job("u1", daily("08:00"))
            },
            "agentKey",
        ),
    ];
    for (input, needle) in cases {
        let e = f.create_push_job(&input, Some(BASE)).unwrap_err();
        assert!(matches!(e, Error::Validation(_)), "{needle}: {e:?}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
    assert!(f
        .create_push_job(&new_job("u1", daily("08:00")), Some(-1))
        .is_err());
    assert_eq!(count(&f, "SELECT count(*) FROM push_jobs"), 0);
}
