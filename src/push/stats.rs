//! Per user-agent push and conversation counters.
//!
//! Invariants: every count is exact (no row caps): jobs are counted through
//! `push_jobs_user_agent`, dispatches through `push_dispatches_user_agent`
//! (rows routed to that agent), messages and history through their
//! conversation's indexes; all counters of one call come from one read
//! transaction.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::validate_user_id;
use crate::agents::validate_agent_key;
use crate::error::Result;
use crate::factory::Factory;
use crate::identity::target::active_target_for_agent;
use crate::store::Tx;

/// Push counters of one user's agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UserAgentPushStats {
    /// Jobs of the user that belong to the agent.
    pub total_push_jobs: i64,
    /// Of those, the enabled ones.
    pub active_push_jobs: i64,
    /// Audit rows of runs routed to the agent.
    pub total_dispatches: i64,
    /// Newest of those rows.
    pub latest_dispatch_at: Option<i64>,
}

/// Conversation counters of one user's agent (zeros unless it is the user's
/// active agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserAgentConversationStats {
    /// The user-agent conversation (`None` without an active binding to the agent).
    pub conversation_id: Option<String>,
    /// History entries kept for the conversation.
    pub context_messages: i64,
    /// Messages queued or in flight.
    pub queued_messages: i64,
    /// Messages dead-lettered.
    pub failed_messages: i64,
}

/// [`UserAgentPushStats`] and [`UserAgentConversationStats`] together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserAgentUsageStats {
    /// Jobs of the user that belong to the agent.
    pub total_push_jobs: i64,
    /// Of those, the enabled ones.
    pub active_push_jobs: i64,
    /// Audit rows of runs routed to the agent.
    pub total_dispatches: i64,
    /// Newest of those rows.
    pub latest_dispatch_at: Option<i64>,
    /// The user-agent conversation.
    pub conversation_id: Option<String>,
    /// History entries kept for the conversation.
    pub context_messages: i64,
    /// Messages queued or in flight.
    pub queued_messages: i64,
    /// Messages dead-lettered.
    pub failed_messages: i64,
}

fn push_stats(tx: &Tx, user: &str, agent: &str) -> Result<UserAgentPushStats> {
    let (total_push_jobs, active_push_jobs): (i64, Option<i64>) = tx
        .prepare_cached(
            "SELECT count(*), sum(enabled) FROM push_jobs WHERE consumer_user_id = ?1 AND agent_key = ?2",
        )?
        .query_row(params![user, agent], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (total_dispatches, latest_dispatch_at): (i64, Option<i64>) = tx
        .prepare_cached(
            "SELECT count(*), max(created_at) FROM push_dispatches WHERE consumer_user_id = ?1 AND agent_key = ?2",
        )?
        .query_row(params![user, agent], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(UserAgentPushStats {
        total_push_jobs,
        active_push_jobs: active_push_jobs.unwrap_or(0),
        total_dispatches,
        latest_dispatch_at,
    })
}

fn conversation_stats(tx: &Tx, user: &str, agent: &str) -> Result<UserAgentConversationStats> {
    let Some(target) = active_target_for_agent(tx, user, agent)? else {
        return Ok(UserAgentConversationStats::default());
    };
    let mut stats = UserAgentConversationStats {
        conversation_id: Some(target.conversation_id.clone()),
        ..Default::default()
    };
    let conv: Option<i64> = tx
        .prepare_cached("SELECT id FROM conversations WHERE conversation_id = ?1")?
        .query_row([&target.conversation_id], |r| r.get(0))
        .optional()?;
    let Some(conv) = conv else {
        return Ok(stats);
    };
    stats.context_messages = tx
        .prepare_cached("SELECT count(*) FROM conversation_history WHERE conversation_ref = ?1")?
        .query_row([conv], |r| r.get(0))?;
    let (queued, failed): (Option<i64>, Option<i64>) = tx
        .prepare_cached(
            "SELECT sum(status IN ('queued','processing')), sum(status = 'dead_letter')
             FROM messages WHERE conversation_ref = ?1",
        )?
        .query_row([conv], |r| Ok((r.get(0)?, r.get(1)?)))?;
    stats.queued_messages = queued.unwrap_or(0);
    stats.failed_messages = failed.unwrap_or(0);
    Ok(stats)
}

fn check(user: &str, agent: &str) -> Result<()> {
    validate_user_id(user)?;
    validate_agent_key(agent)
}

impl Factory {
    /// Push counters of a user's agent: its jobs (total, enabled) and the runs
    /// routed to it (count, newest).
    pub fn user_agent_push_stats(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
    ) -> Result<UserAgentPushStats> {
        check(consumer_user_id, agent_key)?;
        self.store
            .read(|tx| push_stats(tx, consumer_user_id, agent_key))
    }

    /// Conversation counters of a user's agent: zeros unless `agent_key` is the
    /// agent of the user's active binding.
    pub fn user_agent_conversation_stats(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
    ) -> Result<UserAgentConversationStats> {
        check(consumer_user_id, agent_key)?;
        self.store
            .read(|tx| conversation_stats(tx, consumer_user_id, agent_key))
    }

    /// Push and conversation counters of a user's agent, from one snapshot.
    pub fn user_agent_usage_stats(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
    ) -> Result<UserAgentUsageStats> {
        check(consumer_user_id, agent_key)?;
        self.store.read(|tx| {
            let p = push_stats(tx, consumer_user_id, agent_key)?;
            let c = conversation_stats(tx, consumer_user_id, agent_key)?;
            Ok(UserAgentUsageStats {
                total_push_jobs: p.total_push_jobs,
                active_push_jobs: p.active_push_jobs,
                total_dispatches: p.total_dispatches,
                latest_dispatch_at: p.latest_dispatch_at,
                conversation_id: c.conversation_id,
                context_messages: c.context_messages,
                queued_messages: c.queued_messages,
                failed_messages: c.failed_messages,
            })
        })
    }
}
