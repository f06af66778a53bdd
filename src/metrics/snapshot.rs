//! `Factory::metrics`: the gauges read from the database plus the process's
//! counters, at one instant.
//!
//! Invariants: the gauges come from the queue's and the worker registry's
//! stats queries, which read only live rows (pending, in flight, dead-lettered)
//! through indexes — never the finished messages; every worker status appears
//! in `workers_by_status`, zero included, so a scraper sees a stable series set.

use std::collections::BTreeMap;

use super::{counters, Counters};
use crate::error::Result;
use crate::factory::Factory;
use crate::workers::WorkerStatus;

/// Gauges: the state of the queue and the pool at one instant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gauges {
    /// Queued messages that can be claimed now.
    pub queued_ready: i64,
    /// Queued messages scheduled later or backing off after a failure.
    pub queued_waiting: i64,
    /// Messages in flight (leased to a worker).
    pub in_flight: i64,
    /// Dead-lettered messages.
    pub dead_letters: i64,
    /// How long the oldest ready message has been ready (0 when none is).
    pub oldest_ready_age_ms: i64,
    /// When the oldest ready message became ready.
    pub oldest_ready_at: Option<i64>,
    /// Workers by status (`active`, `draining`, `stopping`, `stopped`).
    pub workers_by_status: BTreeMap<String, i64>,
    /// Each running (not stopped) worker, by id; at most [`MAX_WORKER_SERIES`].
    pub workers: Vec<WorkerGauge>,
}

/// One running worker's gauges.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerGauge {
    /// Worker id.
    pub worker_id: String,
    /// `active`, `draining` or `stopping`.
    pub status: String,
    /// Messages it holds.
    pub load: i64,
    /// Time since its last heartbeat (0 if it is in the future).
    pub heartbeat_age_ms: i64,
}

/// Most workers listed one by one in [`Gauges::workers`] (oldest ids first).
pub const MAX_WORKER_SERIES: i64 = 1_000;

/// Gauges and counters at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// The instant the gauges describe.
    pub at_ms: i64,
    /// Gauges read from the database.
    pub gauges: Gauges,
    /// Process-wide counters.
    pub counters: Counters,
}

const STATUSES: [WorkerStatus; 4] = [
    WorkerStatus::Active,
    WorkerStatus::Draining,
    WorkerStatus::Stopping,
    WorkerStatus::Stopped,
];

impl Factory {
    /// Gauges of this database at `now` and the process's counters.
    pub fn metrics(&self, now_ms: Option<i64>) -> Result<MetricsSnapshot> {
        let now = self.now(now_ms)?;
        let queue = self.queue_stats(Some(now))?;
        let workers = self.worker_stats()?;
        let running = self.store.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT worker_id, status, load, heartbeat_at FROM workers
                 WHERE status IN ('active', 'draining', 'stopping') ORDER BY worker_id LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([MAX_WORKER_SERIES], |r| {
                    Ok(WorkerGauge {
                        worker_id: r.get(0)?,
                        status: r.get(1)?,
                        load: r.get(2)?,
                        heartbeat_age_ms: now.saturating_sub(r.get::<_, i64>(3)?).max(0),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        let mut by_status: BTreeMap<String, i64> = STATUSES
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for (status, n) in workers.by_status {
            *by_status.entry(status).or_default() += n;
        }
        Ok(MetricsSnapshot {
            at_ms: now,
            gauges: Gauges {
                queued_ready: queue.queued_ready,
                queued_waiting: queue.queued_delayed,
                in_flight: queue.processing,
                dead_letters: queue.dead_letter,
                oldest_ready_age_ms: queue
                    .oldest_ready_at
                    .map_or(0, |t| now.saturating_sub(t).max(0)),
                oldest_ready_at: queue.oldest_ready_at,
                workers_by_status: by_status,
                workers: running,
            },
            counters: counters(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::{get, Counter};
    use crate::queue::EnqueueRequest;
    use crate::test_support::{factory_with_agent, T0};

    #[test]
    fn gauges_follow_the_queue() {
        let f = factory_with_agent("a");
        let before = get(Counter::MessagesEnqueued);
        for (conv, at) in [("c1", T0), ("c2", T0 + 500), ("c3", T0 + 9_000)] {
            f.enqueue(
                &EnqueueRequest {
                    conversation_id: conv.into(),
                    agent_key: "a".into(),
                    payload: serde_json::json!({"provider": "test", "providerUserId": "u", "messageText": "hi"}),
                    priority: None,
                    scheduled_for: Some(at),
                    max_attempts: None,
                },
                Some(T0),
            )
            .unwrap();
        }
        let m = f.metrics(Some(T0 + 1_000)).unwrap();
        assert_eq!(m.gauges.queued_ready, 2);
        assert_eq!(m.gauges.queued_waiting, 1);
        assert_eq!(m.gauges.in_flight, 0);
        assert_eq!(m.gauges.oldest_ready_age_ms, 1_000);
        assert_eq!(m.gauges.workers_by_status.len(), 4);
        assert!(m.counters.values["messages_enqueued"] >= before + 3);
    }
}
