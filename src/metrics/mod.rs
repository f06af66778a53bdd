//! Process-wide counters of the core's events, and the log targets the core
//! writes to.
//!
//! Invariants:
//! - counters only grow (monotonic since the process started, shared by every
//!   `Factory` in the process, as a Prometheus counter expects);
//! - counting is one relaxed atomic add (provider calls: one short mutex over
//!   a map keyed by provider), so the hot path (enqueue, claim, complete) pays
//!   no more than that and never formats or logs anything;
//! - an event inside a write transaction is counted (and logged) only when
//!   that transaction commits ([`events`]): a rolled-back operation counts
//!   nothing.
//!
//! Gauges (queue depth, workers by status) are not kept here: they are read
//! from the database by [`snapshot`], so every process sees the same values.

pub mod events;
pub mod snapshot;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use events::{event, Scope};
pub use snapshot::{Gauges, MetricsSnapshot, WorkerGauge};

/// Log targets (Python logger names) of the core's events.
pub mod target {
    /// Spawn, drain, stop and teardown of pool workers.
    pub const POOL: &str = "agent_factory.pool";
    /// Lease recovery and dead letters.
    pub const QUEUE: &str = "agent_factory.queue";
    /// Remote provider calls (retries, failures).
    pub const PROVIDERS: &str = "agent_factory.providers";
    /// Push dispatch failures.
    pub const PUSH: &str = "agent_factory.push";
    /// Telegram ingest rejections.
    pub const TELEGRAM: &str = "agent_factory.telegram";
}

/// A process-wide event counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Messages enqueued (any path: enqueue, push, broadcast, Telegram).
    MessagesEnqueued,
    /// Messages claimed by a worker.
    MessagesClaimed,
    /// Messages completed by their lease holder.
    MessagesCompleted,
    /// Failures reported by a lease holder (`fail`), retried or not.
    MessagesFailed,
    /// Messages dead-lettered (by `fail` or by lease recovery).
    MessagesDeadLettered,
    /// Expired leases recovered.
    LeasesRecovered,
    /// Pool workers spawned.
    WorkersSpawned,
    /// Pool workers sent to drain.
    WorkersDrained,
    /// Pool workers torn down (machine and volume gone).
    WorkersTornDown,
    /// Push slots enqueued by the scheduler.
    PushSlotsEnqueued,
    /// Push slots recorded as failed by the scheduler.
    PushSlotsFailed,
    /// Telegram updates that enqueued a message or paired a user.
    TelegramUpdatesIngested,
    /// Telegram updates delivered again (nothing written).
    TelegramUpdatesDuplicate,
    /// Telegram updates with nothing to do (not a message, no pairing code, ...).
    TelegramUpdatesIgnored,
    /// Telegram updates refused with an error (malformed, unknown bot, ...).
    TelegramUpdatesRejected,
}

const COUNTERS: usize = 15;

impl Counter {
    /// Every counter, in report order.
    pub const ALL: [Counter; COUNTERS] = [
        Counter::MessagesEnqueued,
        Counter::MessagesClaimed,
        Counter::MessagesCompleted,
        Counter::MessagesFailed,
        Counter::MessagesDeadLettered,
        Counter::LeasesRecovered,
        Counter::WorkersSpawned,
        Counter::WorkersDrained,
        Counter::WorkersTornDown,
        Counter::PushSlotsEnqueued,
        Counter::PushSlotsFailed,
        Counter::TelegramUpdatesIngested,
        Counter::TelegramUpdatesDuplicate,
        Counter::TelegramUpdatesIgnored,
        Counter::TelegramUpdatesRejected,
    ];

    /// The counter's name (snake_case, the key in [`Counters::values`]).
    pub fn name(self) -> &'static str {
        match self {
            Counter::MessagesEnqueued => "messages_enqueued",
            Counter::MessagesClaimed => "messages_claimed",
            Counter::MessagesCompleted => "messages_completed",
            Counter::MessagesFailed => "messages_failed",
            Counter::MessagesDeadLettered => "messages_dead_lettered",
            Counter::LeasesRecovered => "leases_recovered",
            Counter::WorkersSpawned => "workers_spawned",
            Counter::WorkersDrained => "workers_drained",
            Counter::WorkersTornDown => "workers_torn_down",
            Counter::PushSlotsEnqueued => "push_slots_enqueued",
            Counter::PushSlotsFailed => "push_slots_failed",
            Counter::TelegramUpdatesIngested => "telegram_updates_ingested",
            Counter::TelegramUpdatesDuplicate => "telegram_updates_duplicate",
            Counter::TelegramUpdatesIgnored => "telegram_updates_ignored",
            Counter::TelegramUpdatesRejected => "telegram_updates_rejected",
        }
    }
}

static VALUES: [AtomicU64; COUNTERS] = [const { AtomicU64::new(0) }; COUNTERS];

/// Calls and failed calls of one provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ProviderCounts {
    calls: u64,
    errors: u64,
}

static PROVIDERS: Mutex<BTreeMap<String, ProviderCounts>> = Mutex::new(BTreeMap::new());

/// Add `n` to a counter (when the open write transaction commits, if any).
#[inline]
pub fn add(counter: Counter, n: u64) {
    if events::in_scope() {
        events::hold_count(counter, n);
    } else {
        VALUES[counter as usize].fetch_add(n, Ordering::Relaxed);
    }
}

/// Add one to a counter.
#[inline]
pub fn incr(counter: Counter) {
    add(counter, 1);
}

/// The current value of a counter.
pub fn get(counter: Counter) -> u64 {
    VALUES[counter as usize].load(Ordering::Relaxed)
}

/// The provider label of an HTTP service name: its first word, lowercased
/// (`Fly API` → `fly`).
pub fn provider_label(service: &str) -> String {
    service
        .split_whitespace()
        .next()
        .unwrap_or("unknown")
        .to_ascii_lowercase()
}

/// Count one finished call to `provider` (with its retries), failed or not.
pub fn provider_call(provider: &str, failed: bool) {
    let mut map = PROVIDERS.lock().unwrap_or_else(|e| e.into_inner());
    let entry = match map.get_mut(provider) {
        Some(e) => e,
        None => map.entry(provider.to_string()).or_default(),
    };
    entry.calls += 1;
    entry.errors += u64::from(failed);
}

/// Every counter at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Counters {
    /// Event counters by name (every [`Counter`], zero included).
    pub values: BTreeMap<String, u64>,
    /// Remote provider calls by provider.
    pub provider_calls: BTreeMap<String, u64>,
    /// Remote provider calls that failed (after retries) by provider.
    pub provider_call_errors: BTreeMap<String, u64>,
}

/// Read every counter.
pub fn counters() -> Counters {
    let values = Counter::ALL
        .iter()
        .map(|c| (c.name().to_string(), get(*c)))
        .collect();
    let map = PROVIDERS.lock().unwrap_or_else(|e| e.into_inner());
    Counters {
        values,
        provider_calls: map.iter().map(|(k, v)| (k.clone(), v.calls)).collect(),
        provider_call_errors: map.iter().map(|(k, v)| (k.clone(), v.errors)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexes_match() {
        let names: std::collections::BTreeSet<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), COUNTERS);
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn counters_grow_by_exact_amounts() {
        // Other tests run in parallel in this process: compare deltas of a
        // counter no other unit test touches.
        let before = get(Counter::TelegramUpdatesRejected);
        add(Counter::TelegramUpdatesRejected, 3);
        incr(Counter::TelegramUpdatesRejected);
        assert!(get(Counter::TelegramUpdatesRejected) >= before + 4);
        assert_eq!(counters().values.len(), COUNTERS);
    }

    #[test]
    fn provider_calls_are_kept_per_provider() {
        provider_call("unit-test-provider", false);
        provider_call("unit-test-provider", true);
        let c = counters();
        assert_eq!(c.provider_calls["unit-test-provider"], 2);
        assert_eq!(c.provider_call_errors["unit-test-provider"], 1);
    }

    #[test]
    fn provider_labels() {
        assert_eq!(provider_label("Fly API"), "fly");
        assert_eq!(provider_label("  "), "unknown");
    }
}
