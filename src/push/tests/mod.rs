//! Core tests of push: schedules, templates, jobs, dispatch, broadcasts, stats.

mod broadcast;
mod dispatch;
mod jobs;
mod schedule;

use rusqlite::params;
use serde_json::json;

use super::*;
use crate::agents::AgentInput;
use crate::factory::Factory;
use crate::ids;
use crate::test_support::{factory, T0};

/// 2026-01-01T07:59:00Z (the seed's base time); [`T0`] is midnight of that day.
pub(super) const BASE: i64 = T0 + 7 * 3_600_000 + 59 * 60_000;
pub(super) const DAY: i64 = 86_400_000;

pub(super) fn agent(f: &Factory, key: &str, enabled: bool) {
    f.upsert_agent(
        AgentInput {
            agent_key: key.into(),
            version: "1.0.0".into(),
            enabled,
            ..Default::default()
        },
        None,
    )
    .unwrap();
}

/// An active binding written with SQL (revoking the user's previous one).
pub(super) fn bind(
    f: &Factory,
    user: &str,
    agent: &str,
    chat: Option<(&str, &str)>,
    company: Option<&str>,
) {
    let metadata = company.map(|c| json!({ "companyId": c }).to_string());
    f.store
        .write(|tx| {
            tx.execute(
                "UPDATE identity_bindings SET status = 'revoked', revoked_at = 0
                 WHERE consumer_user_id = ?1 AND status = 'active'",
                [user],
            )?;
            tx.execute(
                "INSERT INTO identity_bindings(consumer_user_id, agent_key, conversation_id, bot_identity, status,
                   source, telegram_user_id, telegram_chat_id, metadata, bound_at)
                 VALUES (?1, ?2, ?3, ?4, 'active', 'manual', ?5, ?6, ?7, ?8)",
                params![
                    user,
                    agent,
                    ids::user_agent_conversation_id(agent, user),
                    chat.map(|_| "bot-1"),
                    chat.map(|c| c.0),
                    chat.map(|c| c.1),
                    metadata,
                    T0
                ],
            )?;
            Ok(())
        })
        .unwrap();
}

pub(super) fn daily(time: &str) -> Schedule {
    Schedule::from_json("schedule", &json!({"kind": "daily", "time": time})).unwrap()
}

pub(super) fn new_job(user: &str, schedule: Schedule) -> NewPushJob {
    NewPushJob {
        company_id: "co-1".into(),
        consumer_user_id: user.into(),
        title: "Daily check".into(),
        text: "Ping automatico".into(),
        periodicity: None,
        timezone: "UTC".into(),
        schedule,
        enabled: true,
        agent_key: None,
    }
}

pub(super) fn count(f: &Factory, sql: &str) -> i64 {
    f.store
        .read(|tx| Ok(tx.query_row(sql, [], |r| r.get(0))?))
        .unwrap()
}

/// A factory with agent `push-agent` and user `u1` bound to it in company `co-1`.
pub(super) fn setup() -> Factory {
    let f = factory();
    agent(&f, "push-agent", true);
    bind(&f, "u1", "push-agent", None, Some("co-1"));
    f
}
