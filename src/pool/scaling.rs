//! The scaling formula (spec §5.3), pure: who is available, how many workers to
//! spawn, for which conversations, and which idle workers to reclaim.
//!
//! Invariants:
//! - `desired = min(#active conversations, max_workers)`;
//! - available capacity = fresh, active, unassigned workers plus the distinct
//!   active conversations covered by fresh active workers' assignments, so
//!   several sticky workers on one conversation count once and a worker pinned
//!   to a conversation with nothing to do counts zero;
//! - fixing the original, `max_workers` also bounds the live machines: every
//!   running worker row in scope (active, draining or stopping) counts, and no
//!   spawn ever takes the count above `max_workers`;
//! - spawn targets are the uncovered active conversations in sorted order,
//!   skipping as many as there are free (unassigned) workers to pick them up;
//! - when the bound blocks a needed spawn, idle workers that hold a seat
//!   without serving an active conversation (pinned to an inactive one, or a
//!   duplicate on a conversation another worker covers) are reclaimed, so the
//!   pool makes progress at the bound instead of waiting for idle timeouts.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::ScalingPolicy;
use crate::workers::{Worker, WorkerStatus};

/// An active conversation: `(agent_key, conversation_id)`.
pub type ConversationKey = (String, String);

/// What one reconcile should do about capacity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScalingPlan {
    /// `min(#active conversations, max_workers)`.
    pub desired: i64,
    /// Capacity already there (see the module invariants).
    pub available: i64,
    /// Running worker rows in scope.
    pub live: i64,
    /// Conversations to spawn a pre-assigned worker for, in order.
    pub targets: Vec<ConversationKey>,
    /// Idle workers to drain to make room under `max_workers`.
    pub reclaim: Vec<String>,
}

/// Whether `w` is active with a heartbeat newer than `now - stale_after_ms`.
pub fn is_fresh_active(w: &Worker, now: i64, stale_after_ms: i64) -> bool {
    w.status == WorkerStatus::Active && w.heartbeat_at > now - stale_after_ms
}

fn key_of(w: &Worker) -> Option<ConversationKey> {
    w.assignment
        .as_ref()
        .map(|a| (a.agent_key.clone(), a.conversation_id.clone()))
}

/// Plan spawns for `active` conversations (sorted) given the running rows in scope.
pub fn plan(
    active: &[ConversationKey],
    workers: &[Worker],
    policy: &ScalingPolicy,
    now: i64,
    stale_after_ms: i64,
) -> ScalingPlan {
    let active_set: BTreeSet<&ConversationKey> = active.iter().collect();
    let fresh: Vec<&Worker> = workers
        .iter()
        .filter(|w| is_fresh_active(w, now, stale_after_ms))
        .collect();
    let unassigned = fresh.iter().filter(|w| w.assignment.is_none()).count();
    let covered: BTreeSet<ConversationKey> = fresh
        .iter()
        .filter_map(|w| key_of(w))
        .filter(|k| active_set.contains(k))
        .collect();
    let available = (unassigned + covered.len()) as i64;
    let desired = (active.len() as i64).min(policy.max_workers.max(0));
    let live = workers.len() as i64;
    let need = (desired - available).max(0);
    let room = (policy.max_workers - live).max(0);
    let to_spawn = policy.spawn_step.max(0).min(need).min(room);
    let targets: Vec<ConversationKey> = active
        .iter()
        .filter(|k| !covered.contains(*k))
        .skip(unassigned)
        .take(to_spawn as usize)
        .cloned()
        .collect();
    let blocked = policy.spawn_step.max(0).min(need) - targets.len() as i64;
    let reclaim = if blocked > 0 {
        reclaimable(&fresh, &active_set)
            .into_iter()
            .take(blocked as usize)
            .collect()
    } else {
        Vec::new()
    };
    ScalingPlan {
        desired,
        available,
        live,
        targets,
        reclaim,
    }
}

/// Idle fresh workers holding a seat without serving an active conversation:
/// first those pinned to an inactive conversation (least recently used first),
/// then duplicates on a conversation another worker keeps.
fn reclaimable(fresh: &[&Worker], active: &BTreeSet<&ConversationKey>) -> Vec<String> {
    let last_used = |w: &Worker| w.last_claim_at.unwrap_or(w.heartbeat_at);
    let mut inactive: Vec<&Worker> = fresh
        .iter()
        .copied()
        .filter(|w| w.load == 0 && key_of(w).is_some_and(|k| !active.contains(&k)))
        .collect();
    inactive.sort_by(|a, b| (last_used(a), &a.worker_id).cmp(&(last_used(b), &b.worker_id)));
    let mut by_key: BTreeMap<ConversationKey, Vec<&Worker>> = BTreeMap::new();
    for w in fresh {
        if let Some(k) = key_of(w).filter(|k| active.contains(k)) {
            by_key.entry(k).or_default().push(w);
        }
    }
    let mut duplicates: Vec<&Worker> = Vec::new();
    for mut group in by_key.into_values() {
        // Keep the busiest, then the most recently used; the rest are duplicates.
        group.sort_by(|a, b| {
            (b.load, last_used(b), &a.worker_id).cmp(&(a.load, last_used(a), &b.worker_id))
        });
        duplicates.extend(group.into_iter().skip(1).filter(|w| w.load == 0));
    }
    inactive
        .into_iter()
        .chain(duplicates)
        .map(|w| w.worker_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::{Assignment, WorkerMode};

    const NOW: i64 = 1_767_225_600_000;
    const STALE: i64 = 420_000;

    fn worker(id: &str, assigned: Option<&str>, load: i64) -> Worker {
        Worker {
            worker_id: id.into(),
            provider: "fly".into(),
            mode: WorkerMode::Sticky,
            status: WorkerStatus::Active,
            load,
            heartbeat_at: NOW,
            last_claim_at: None,
            scheduled_shutdown_at: None,
            stopped_at: None,
            stop_reason: None,
            last_snapshot_id: None,
            machine_id: None,
            app_name: None,
            region: None,
            volume_id: None,
            assignment: assigned.map(|c| Assignment {
                conversation_id: c.into(),
                agent_key: "support-agent".into(),
                lease_id: format!("{id}-lease"),
                assigned_at: NOW,
            }),
            created_at: NOW,
        }
    }

    fn convs(ids: &[&str]) -> Vec<ConversationKey> {
        ids.iter()
            .map(|c| ("support-agent".to_string(), c.to_string()))
            .collect()
    }

    fn policy(max_workers: i64, spawn_step: i64) -> ScalingPolicy {
        ScalingPolicy {
            max_workers,
            spawn_step,
            ..Default::default()
        }
    }

    #[test]
    fn idle_unassigned_workers_cover_demand() {
        let ws = [
            worker("a", None, 0),
            worker("b", None, 0),
            worker("c", None, 0),
        ];
        for active in [convs(&["cap-1"]), convs(&["cap-a", "cap-b"])] {
            let p = plan(&active, &ws, &policy(5, 1), NOW, STALE);
            assert_eq!(p.available, 3);
            assert!(p.targets.is_empty() && p.reclaim.is_empty());
        }
    }

    #[test]
    fn desired_is_capped_by_distinct_conversations_and_max_workers() {
        let p = plan(&convs(&["a", "b", "c"]), &[], &policy(2, 5), NOW, STALE);
        assert_eq!(p.desired, 2);
        assert_eq!(p.targets, convs(&["a", "b"]));
        let p = plan(&convs(&["a", "b", "c"]), &[], &policy(5, 5), NOW, STALE);
        assert_eq!(p.targets.len(), 3);
        let p = plan(&convs(&["a", "b", "c"]), &[], &policy(5, 1), NOW, STALE);
        assert_eq!(p.targets, convs(&["a"]), "spawn_step bounds one reconcile");
    }

    #[test]
    fn a_busy_owner_covers_its_conversation_only() {
        let ws = [worker("busy", Some("spawn-a"), 1)];
        let p = plan(
            &convs(&["spawn-a", "spawn-b"]),
            &ws,
            &policy(5, 2),
            NOW,
            STALE,
        );
        assert_eq!(p.targets, convs(&["spawn-b"]));
    }

    #[test]
    fn a_pinned_idle_worker_is_not_capacity() {
        let ws = [worker("pinned", Some("pinned-a"), 0)];
        let p = plan(&convs(&["pinned-b"]), &ws, &policy(5, 1), NOW, STALE);
        assert_eq!(p.available, 0);
        assert_eq!(p.targets, convs(&["pinned-b"]));
    }

    #[test]
    fn duplicated_sticky_workers_count_once() {
        let ws = [
            worker("d1", Some("dedupe-a"), 0),
            worker("d2", Some("dedupe-a"), 0),
            worker("d3", Some("dedupe-a"), 0),
        ];
        let p = plan(
            &convs(&["dedupe-a", "dedupe-b"]),
            &ws,
            &policy(5, 1),
            NOW,
            STALE,
        );
        assert_eq!(p.available, 1);
        assert_eq!(p.targets, convs(&["dedupe-b"]));
    }

    #[test]
    fn free_workers_are_assumed_to_take_the_first_uncovered_conversations() {
        let ws = [worker("free", None, 0)];
        let p = plan(&convs(&["a", "b", "c"]), &ws, &policy(5, 5), NOW, STALE);
        assert_eq!(p.targets, convs(&["b", "c"]));
    }

    #[test]
    fn stale_and_non_active_workers_are_not_capacity_but_hold_seats() {
        let mut stale = worker("stale", None, 0);
        stale.heartbeat_at = NOW - STALE;
        let mut draining = worker("draining", None, 0);
        draining.status = WorkerStatus::Draining;
        let p = plan(
            &convs(&["a"]),
            &[stale, draining],
            &policy(3, 1),
            NOW,
            STALE,
        );
        assert_eq!((p.available, p.live), (0, 2));
        assert_eq!(p.targets, convs(&["a"]));
        let p = plan(
            &convs(&["a"]),
            &[worker("x", None, 1), worker("y", Some("z"), 1)],
            &policy(2, 1),
            NOW,
            STALE,
        );
        assert_eq!(p.live, 2);
        assert!(p.targets.is_empty(), "max_workers bounds live machines");
    }

    #[test]
    fn at_the_bound_idle_seats_are_reclaimed_inactive_first() {
        let mut old = worker("old", Some("gone-1"), 0);
        old.last_claim_at = Some(NOW - 10_000);
        let mut recent = worker("recent", Some("gone-2"), 0);
        recent.last_claim_at = Some(NOW - 1_000);
        let busy = worker("busy", Some("gone-3"), 1);
        let ws = [recent, busy, old];
        let p = plan(&convs(&["new"]), &ws, &policy(3, 1), NOW, STALE);
        assert!(p.targets.is_empty());
        assert_eq!(p.reclaim, vec!["old".to_string()]);
        // Duplicates come after inactive seats; the busy copy is kept.
        let ws = [
            worker("dup-idle", Some("a"), 0),
            worker("dup-busy", Some("a"), 1),
        ];
        let p = plan(&convs(&["a", "b"]), &ws, &policy(2, 1), NOW, STALE);
        assert_eq!(p.reclaim, vec!["dup-idle".to_string()]);
        // Nothing is reclaimed when there is room or nothing is needed.
        let p = plan(&convs(&["a"]), &ws, &policy(2, 1), NOW, STALE);
        assert!(p.reclaim.is_empty());
    }

    #[test]
    fn zero_max_workers_spawns_nothing() {
        let p = plan(&convs(&["a"]), &[], &policy(0, 1), NOW, STALE);
        assert_eq!((p.desired, p.targets.len()), (0, 0));
    }
}
