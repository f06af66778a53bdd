//! Lease heartbeats on a dedicated OS thread.
//!
//! A worker that runs a long job must extend its lease before it expires, even
//! when the code running the job never yields (a handler that holds Python's GIL
//! or blocks an event loop). [`Heartbeat::start`] spawns a plain std thread that
//! calls [`Factory::heartbeat`] every `interval` until stopped; it never touches
//! Python, so nothing the job does can starve it.
//!
//! Invariants:
//! - the thread beats only the one `(worker, message, lease)` it was started for;
//! - the first beat happens one interval after start (the claim has just set the
//!   lease), then one per interval, measured from the end of the previous beat;
//! - a beat answered `false` (lease lost, expired or taken over) or `NotFound`
//!   (message gone) marks the heartbeat `lost` and ends the thread: a lost lease
//!   never comes back, so beating on would only add load;
//! - any other error (e.g. a busy database) is recorded as `last_error`, counted,
//!   and retried at the next interval: if it persists past the lease, the next
//!   successful call reports the loss;
//! - [`Heartbeat::stop`] wakes the thread through a condvar (no waiting out the
//!   interval), joins it and is idempotent; dropping a `Heartbeat` stops it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::workers::validate_worker_id;

/// Shortest accepted interval.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Longest accepted interval (one day).
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// What a heartbeat thread has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeartbeatStatus {
    /// Successful beats (each extended the lease).
    pub beats: u64,
    /// Beats that failed with an error other than a lost lease.
    pub failures: u64,
    /// The lease was lost: a beat was answered `false` or the message is gone.
    pub lost: bool,
    /// The thread is still beating.
    pub running: bool,
    /// The most recent error, if any.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    stop: bool,
    status: HeartbeatStatus,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running heartbeat thread for one lease; stops on [`Heartbeat::stop`] or drop.
#[derive(Debug)]
pub struct Heartbeat {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The identity of the lease a thread keeps alive.
struct Lease {
    worker_id: String,
    message_id: String,
    lease_id: String,
}

impl Heartbeat {
    /// Start beating `(worker_id, message_id, lease_id)` every `interval`.
    ///
    /// The ids are checked here, so a typo fails now rather than in the thread.
    /// `interval` must lie within [`MIN_INTERVAL`]..=[`MAX_INTERVAL`]; choose it well
    /// below the lease length (the runtime uses at most a third of it).
    pub fn start(
        factory: Arc<Factory>,
        worker_id: &str,
        message_id: &str,
        lease_id: &str,
        interval: Duration,
    ) -> Result<Heartbeat> {
        validate_worker_id(worker_id)?;
        ids::parse_message_id(message_id)?;
        if lease_id.is_empty() || lease_id.len() > 200 {
            return Err(Error::validation(
                "leaseId must be a non-empty string of at most 200 characters",
            ));
        }
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(Error::validation(format!(
                "heartbeat interval must be within 1 ms..=1 day, got {} ms",
                interval.as_millis()
            )));
        }
        let lease = Lease {
            worker_id: worker_id.to_string(),
            message_id: message_id.to_string(),
            lease_id: lease_id.to_string(),
        };
        let shared = Arc::new(Shared::default());
        shared.lock().status.running = true;
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("agent-factory-heartbeat-{message_id}"))
            .spawn(move || beat_until_stopped(&factory, &lease, interval, &for_thread))
            .map_err(|e| Error::storage(format!("cannot start the heartbeat thread: {e}")))?;
        Ok(Heartbeat {
            shared,
            thread: Some(thread),
        })
    }

    /// What the thread has done so far.
    pub fn status(&self) -> HeartbeatStatus {
        self.shared.lock().status.clone()
    }

    /// Whether the lease was lost.
    pub fn is_lost(&self) -> bool {
        self.shared.lock().status.lost
    }

    /// Stop the thread (at once, even mid-interval), wait for it and return the
    /// final status. A beat already in flight finishes first. Idempotent.
    pub fn stop(&mut self) -> HeartbeatStatus {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                let mut state = self.shared.lock();
                state.status.running = false;
                state.status.last_error = Some("the heartbeat thread panicked".to_string());
            }
        }
        self.status()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread body: wait an interval (or a stop), beat, record, repeat.
fn beat_until_stopped(factory: &Factory, lease: &Lease, interval: Duration, shared: &Shared) {
    loop {
        let deadline = Instant::now() + interval;
        let mut state = shared.lock();
        while !state.stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = shared
                .wake
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if state.stop {
            state.status.running = false;
            return;
        }
        drop(state);
        let outcome = factory.heartbeat(&lease.worker_id, &lease.message_id, &lease.lease_id, None);
        let mut state = shared.lock();
        match outcome {
            Ok(true) => state.status.beats += 1,
            Ok(false) => {
                state.status.lost = true;
                state.status.last_error = Some(format!(
                    "lease {} on message {} is no longer held by worker {}",
                    lease.lease_id, lease.message_id, lease.worker_id
                ));
            }
            Err(Error::NotFound(m)) => {
                state.status.lost = true;
                state.status.last_error = Some(m);
            }
            Err(e) => {
                state.status.failures += 1;
                state.status.last_error = Some(e.to_string());
            }
        }
        if state.status.lost {
            state.status.running = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::{Config, LeaseConfig};
    use crate::factory::FactoryOptions;
    use crate::queue::{ClaimOptions, EnqueueRequest};

    fn factory(clock: Clock, lease_ms: i64) -> Arc<Factory> {
        let options = FactoryOptions {
            config: Config {
                lease: LeaseConfig {
                    lease_ms,
                    ..LeaseConfig::default()
                },
                ..Config::default()
            },
            clock,
            ..FactoryOptions::default()
        };
        let f = Factory::open(":memory:", options).unwrap();
        f.upsert_agent(
            crate::agents::AgentInput {
                agent_key: "agent".into(),
                version: "1".into(),
                enabled: true,
                ..Default::default()
            },
            None,
        )
        .unwrap();
        Arc::new(f)
    }

    fn claim(f: &Factory) -> crate::queue::Claim {
        let req = EnqueueRequest {
            conversation_id: "conv-1".into(),
            agent_key: "agent".into(),
            payload: serde_json::json!({"provider": "t", "providerUserId": "u", "messageText": "hi"}),
            priority: None,
            scheduled_for: None,
            max_attempts: None,
        };
        f.enqueue(&req, None).unwrap();
        f.claim("w-1", &ClaimOptions::default(), None)
            .unwrap()
            .expect("a message to claim")
    }

    fn wait_for(hb: &Heartbeat, what: impl Fn(&HeartbeatStatus) -> bool) -> HeartbeatStatus {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let s = hb.status();
            if what(&s) || Instant::now() > until {
                return s;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn beats_extend_the_lease_past_its_original_expiry() {
        let f = factory(Clock::System, 300);
        let c = claim(&f);
        let mut hb = Heartbeat::start(
            f.clone(),
            "w-1",
            &c.message_id,
            &c.lease_id,
            Duration::from_millis(50),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        // The original lease expired long ago: only the thread kept it alive.
        assert_eq!(f.release_stuck_jobs(100, None).unwrap().requeued, 0);
        let status = hb.stop();
        assert!(status.beats >= 5, "{status:?}");
        assert!(!status.lost && !status.running, "{status:?}");
        assert!(f.complete("w-1", &c.message_id, &c.lease_id, None).unwrap());
    }

    #[test]
    fn a_lost_lease_is_recorded_and_ends_the_thread() {
        let clock = Clock::manual(1_000_000);
        let f = factory(clock.clone(), 1_000);
        let c = claim(&f);
        let hb = Heartbeat::start(
            f.clone(),
            "w-1",
            &c.message_id,
            &c.lease_id,
            Duration::from_millis(10),
        )
        .unwrap();
        // Freeze beats out: the lease expires and recovery hands the message back.
        clock.advance(60_000);
        f.release_stuck_jobs(100, None).unwrap();
        let status = wait_for(&hb, |s| !s.running);
        assert!(status.lost, "{status:?}");
        assert!(status.last_error.unwrap().contains("no longer held"));
        assert!(!f.complete("w-1", &c.message_id, &c.lease_id, None).unwrap());
    }

    #[test]
    fn stop_is_immediate_and_idempotent() {
        let f = factory(Clock::System, 360_000);
        let c = claim(&f);
        let mut hb = Heartbeat::start(
            f,
            "w-1",
            &c.message_id,
            &c.lease_id,
            Duration::from_secs(3600),
        )
        .unwrap();
        let started = Instant::now();
        let status = hb.stop();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(status.beats, 0);
        assert!(!status.running);
        assert_eq!(hb.stop(), status);
    }

    #[test]
    fn bad_arguments_are_rejected_before_a_thread_starts() {
        let f = factory(Clock::System, 360_000);
        let ms = Duration::from_millis(10);
        let bad = [
            Heartbeat::start(f.clone(), "", "1", "l", ms),
            Heartbeat::start(f.clone(), "w", "x1", "l", ms),
            Heartbeat::start(f.clone(), "w", "1", "", ms),
            Heartbeat::start(f.clone(), "w", "1", "l", Duration::ZERO),
            Heartbeat::start(f, "w", "1", "l", Duration::from_secs(90_000)),
        ];
        for r in bad {
            assert!(matches!(r, Err(Error::Validation(_))), "{r:?}");
        }
    }

    #[test]
    fn an_unknown_message_counts_as_lost() {
        let f = factory(Clock::System, 360_000);
        let hb = Heartbeat::start(f, "w-1", "424242", "lease", Duration::from_millis(5)).unwrap();
        let status = wait_for(&hb, |s| !s.running);
        assert!(status.lost, "{status:?}");
    }
}
