//! Reconciling worker rows with what the provider reports (spec §5.4 step 2).
//!
//! Invariants:
//! - only a successful machine listing can make a machine "missing"; a failed
//!   call (a 5xx, a timeout) never does — the cycle stops before this step;
//! - a worker whose heartbeat is within the grace window keeps its status
//!   while its machine is missing or in a transient (starting) state, so a
//!   fresh spawn is not drained before the provider lists it;
//! - a live machine never moves its worker out of `active`; a stopped or
//!   missing one moves `active → draining` and `draining → stopping` (a gone
//!   machine cannot upload a snapshot);
//! - an active worker with a stale heartbeat is drained even if its machine
//!   runs (it stopped talking to the database);
//! - a pool-spawned worker whose machine create answer was lost adopts the
//!   machine named after it, so the machine can never leak.

use super::rows::{self, DrainGuard};
use crate::error::Result;
use crate::factory::Factory;
use crate::providers::fly::machine_is_going;
use crate::providers::{Machine, MachineStatus, ACTIVE_STATES};
use crate::workers::{Worker, WorkerStatus};

/// Grace after the last heartbeat during which a missing machine is tolerated.
pub const PROVIDER_RECONCILE_GRACE_MS: i64 = 90_000;

/// What the provider's view means for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Record the live machine named after the worker.
    Adopt {
        /// Machine id.
        machine_id: String,
        /// Machine region.
        region: String,
    },
    /// `active → draining` (observed heartbeat as the guard).
    Drain {
        /// Recorded stop reason.
        reason: String,
        /// Heartbeat the decision was made from.
        heartbeat: i64,
    },
    /// `draining → stopping`: the machine is gone.
    Stop {
        /// Recorded stop reason.
        reason: String,
    },
}

/// The decision for `w` given the machine listing of `app`.
pub fn decide(
    w: &Worker,
    machines: &[Machine],
    app: &str,
    now: i64,
    stale_after_ms: i64,
) -> Option<Decision> {
    if w.status == WorkerStatus::Stopped {
        return None;
    }
    match &w.machine_id {
        Some(id) => {
            let machine = machines.iter().find(|m| &m.id == id);
            if machine.is_none_or(|m| m.status != MachineStatus::Active) {
                let transient = machine.is_none_or(|m| ACTIVE_STATES.contains(&m.state.as_str()));
                if now - w.heartbeat_at <= PROVIDER_RECONCILE_GRACE_MS && transient {
                    return None;
                }
                let reason = match machine {
                    None => "machine_missing".to_string(),
                    Some(m) if m.state.is_empty() => "machine_unknown".to_string(),
                    Some(m) => format!("machine_{}", m.state),
                };
                return match w.status {
                    WorkerStatus::Active => Some(Decision::Drain {
                        reason,
                        heartbeat: w.heartbeat_at,
                    }),
                    WorkerStatus::Draining => Some(Decision::Stop { reason }),
                    _ => None,
                };
            }
        }
        None if w.app_name.as_deref() == Some(app) => {
            if let Some(m) = machines
                .iter()
                .find(|m| m.name == w.worker_id && !machine_is_going(&m.state))
            {
                return Some(Decision::Adopt {
                    machine_id: m.id.clone(),
                    region: m.region.clone(),
                });
            }
        }
        None => {}
    }
    if w.status == WorkerStatus::Active && w.heartbeat_at <= now - stale_after_ms {
        return Some(Decision::Drain {
            reason: "stale_heartbeat".into(),
            heartbeat: w.heartbeat_at,
        });
    }
    None
}

/// Apply the decisions for `rows`; returns the ids moved to draining.
pub fn apply(
    f: &Factory,
    rows: &[Worker],
    machines: &[Machine],
    app: &str,
    now: i64,
    stale_after_ms: i64,
) -> Result<Vec<String>> {
    let mut drained = Vec::new();
    for w in rows {
        let Some(decision) = decide(w, machines, app, now, stale_after_ms) else {
            continue;
        };
        let id = w.worker_id.as_str();
        match decision {
            Decision::Adopt { machine_id, region } => f
                .store
                .write(|tx| rows::record_machine(tx, id, &machine_id, app, &region))?,
            Decision::Drain { reason, heartbeat } => {
                let guard = DrainGuard::Heartbeat(heartbeat);
                if f.store
                    .write(|tx| rows::drain(tx, id, now, &reason, guard))?
                {
                    drained.push(w.worker_id.clone());
                }
            }
            Decision::Stop { reason } => {
                f.store
                    .write(|tx| rows::stop(tx, id, now, Some(&reason), None))?;
            }
        }
    }
    Ok(drained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::WorkerMode;

    const NOW: i64 = 1_767_225_600_000;
    const STALE: i64 = 420_000;

    fn row(status: WorkerStatus, machine: Option<&str>, heartbeat: i64) -> Worker {
        Worker {
            worker_id: "w1".into(),
            provider: "fly".into(),
            mode: WorkerMode::Sticky,
            status,
            load: 0,
            heartbeat_at: heartbeat,
            last_claim_at: None,
            scheduled_shutdown_at: None,
            stopped_at: None,
            stop_reason: None,
            last_snapshot_id: None,
            machine_id: machine.map(str::to_string),
            app_name: Some("app".into()),
            region: None,
            volume_id: None,
            assignment: None,
            created_at: NOW,
        }
    }

    fn machine(id: &str, name: &str, state: &str) -> Machine {
        Machine {
            id: id.into(),
            name: name.into(),
            region: "iad".into(),
            state: state.into(),
            status: MachineStatus::from_state(state),
            image: String::new(),
            volume_ids: vec![],
        }
    }

    fn decide_at(w: &Worker, ms: &[Machine], now: i64) -> Option<Decision> {
        decide(w, ms, "app", now, STALE)
    }

    #[test]
    fn live_machines_keep_workers_active() {
        let w = row(WorkerStatus::Active, Some("m1"), NOW - 60_000);
        assert_eq!(decide_at(&w, &[machine("m1", "w1", "started")], NOW), None);
        assert_eq!(decide_at(&w, &[machine("m1", "w1", "creating")], NOW), None);
    }

    #[test]
    fn stopped_machines_drain_even_within_grace() {
        let w = row(WorkerStatus::Active, Some("m1"), NOW - 60_000);
        let d = decide_at(&w, &[machine("m1", "w1", "stopped")], NOW);
        assert_eq!(
            d,
            Some(Decision::Drain {
                reason: "machine_stopped".into(),
                heartbeat: NOW - 60_000
            })
        );
        let draining = row(WorkerStatus::Draining, Some("m1"), NOW - 60_000);
        assert!(matches!(
            decide_at(&draining, &[machine("m1", "w1", "failed")], NOW),
            Some(Decision::Stop { .. })
        ));
        let stopping = row(WorkerStatus::Stopping, Some("m1"), NOW);
        assert_eq!(decide_at(&stopping, &[], NOW + 1_000_000), None);
    }

    #[test]
    fn missing_machines_get_a_grace_window() {
        let w = row(WorkerStatus::Active, Some("m1"), NOW);
        assert_eq!(decide_at(&w, &[], NOW + 15_000), None);
        assert_eq!(decide_at(&w, &[], NOW + PROVIDER_RECONCILE_GRACE_MS), None);
        assert!(matches!(
            decide_at(&w, &[], NOW + PROVIDER_RECONCILE_GRACE_MS + 1),
            Some(Decision::Drain { reason, .. }) if reason == "machine_missing"
        ));
    }

    #[test]
    fn stale_heartbeats_drain_and_lost_creates_are_adopted() {
        let w = row(WorkerStatus::Active, None, NOW - STALE);
        assert!(matches!(
            decide_at(&w, &[], NOW),
            Some(Decision::Drain { reason, .. }) if reason == "stale_heartbeat"
        ));
        let fresh = row(WorkerStatus::Active, None, NOW);
        assert_eq!(
            decide_at(&fresh, &[machine("m9", "w1", "started")], NOW),
            Some(Decision::Adopt {
                machine_id: "m9".into(),
                region: "iad".into()
            })
        );
        assert_eq!(
            decide_at(&fresh, &[machine("m9", "w1", "destroyed")], NOW),
            None
        );
        let mut other_app = fresh.clone();
        other_app.app_name = None;
        assert_eq!(
            decide_at(&other_app, &[machine("m9", "w1", "started")], NOW),
            None
        );
    }
}
