//! What a control-loop tick runs and when, over the in-memory provider.

use crate::workers::STARTUP_GRACE_MS;
use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::params;
use serde_json::json;

use super::super::mem::{Mem, Op};
use super::schedule::Pace;
use super::*;
use crate::providers::{Machine, MachineSpec, Outcome, Provider, ProviderResult, Volume};
use crate::queue::EnqueueRequest;
use crate::test_support::{factory_with_agent, T0};
use crate::workers::WorkerStatus;

fn factory() -> Arc<Factory> {
    Arc::new(factory_with_agent("support-agent"))
}

fn target(p: &Arc<Mem>) -> PoolTarget {
    PoolTarget {
        provider: p.clone(),
        settings: super::super::PoolSettings {
            provider_kind: "fly".into(),
            image: "img".into(),
            region: "iad".into(),
            volume_name: "data".into(),
            volume_path: "/data".into(),
            volume_size_gb: 1,
            guest: Default::default(),
            env: BTreeMap::new(),
        },
    }
}

fn policy() -> ScalingPolicy {
    ScalingPolicy {
        max_workers: 5,
        idle_timeout_ms: 300_000,
        reconcile_interval_ms: 15_000,
        ..Default::default()
    }
}

fn control(holder: &str) -> ControlLoop {
    ControlLoop::new(ControlOptions {
        holder: holder.into(),
        lease_ttl_ms: 3_000,
        ..Default::default()
    })
    .unwrap()
}

fn enqueue(f: &Factory, conv: &str, now: i64) {
    f.enqueue(
        &EnqueueRequest {
            conversation_id: conv.into(),
            agent_key: "support-agent".into(),
            payload: json!({"provider": "telegram", "providerUserId": "u", "messageText": "hi"}),
            priority: None,
            scheduled_for: None,
            max_attempts: None,
        },
        Some(now),
    )
    .unwrap();
}

fn steal(f: &Factory, holder: &str, until: i64) {
    f.store
        .write(|tx| {
            tx.execute(
                "UPDATE leases SET holder = ?2, token = token + 1, expires_at = ?3 WHERE name = ?1",
                params![CONTROL_LEASE, holder, until],
            )?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_tenure_starts_with_every_step_then_idles_until_something_is_due() {
    let (f, p) = (factory(), Arc::new(Mem::default()));
    let mut c = control("a");
    let r = c.tick(&f, &target(&p), &policy(), Some(T0)).unwrap();
    assert!(r.acting && r.took_over && r.did_something);
    assert_eq!(
        r.ran,
        vec![Step::Recovery, Step::Push, Step::Reconcile, Step::Sweep],
        "a new tenure looks at everything"
    );
    assert_eq!(r.reconcile_reason, Some(ReconcileReason::Start));
    assert_eq!(
        (r.lease_holder.as_deref(), r.lease_token),
        (Some("a"), Some(1))
    );
    assert_eq!(
        r.next_tick_at,
        T0 + 1_000,
        "the lease is renewed every third of its TTL"
    );
    assert_eq!(p.calls("list"), 1);

    let r = c.tick(&f, &target(&p), &policy(), Some(T0 + 500)).unwrap();
    assert!(r.acting && !r.took_over && !r.did_something);
    assert_eq!(r.ran, vec![Step::Recovery, Step::Push]);
    assert_eq!(r.active_conversations, Some(0));
    assert_eq!(p.calls("list"), 1, "nothing due: no provider call");
}

#[test]
fn an_enqueue_is_reconciled_at_the_next_tick() {
    let (f, p) = (factory(), Arc::new(Mem::default()));
    let mut c = control("a");
    c.tick(&f, &target(&p), &policy(), Some(T0)).unwrap();
    enqueue(&f, "telegram:chat:1", T0 + 10);
    let r = c.tick(&f, &target(&p), &policy(), Some(T0 + 20)).unwrap();
    assert_eq!(r.reconcile_reason, Some(ReconcileReason::Demand));
    let spawned = r.reconcile.as_ref().unwrap().spawned_worker_ids.clone();
    assert_eq!(spawned.len(), 1);
    assert!(r.did_something);
    // Covered now: the next tick does not reconcile again.
    let r = c.tick(&f, &target(&p), &policy(), Some(T0 + 30)).unwrap();
    assert_eq!(r.ran, vec![Step::Recovery, Step::Push]);
}

#[test]
fn spawning_continues_tick_by_tick_while_it_makes_progress() {
    let (f, p) = (factory(), Arc::new(Mem::default()));
    let mut c = control("a");
    for i in 0..3 {
        enqueue(&f, &format!("telegram:chat:{i}"), T0);
    }
    // spawn_step 1: one worker per reconcile, and a reconcile per tick while short.
    for (i, now) in [T0 + 1, T0 + 2, T0 + 3].into_iter().enumerate() {
        let r = c.tick(&f, &target(&p), &policy(), Some(now)).unwrap();
        assert_eq!(r.reconcile.as_ref().unwrap().spawned, 1, "tick {i}");
    }
    let r = c.tick(&f, &target(&p), &policy(), Some(T0 + 4)).unwrap();
    assert!(r.reconcile.is_none(), "every conversation is covered");
    assert_eq!(p.calls("create-machine"), 3);
}

#[test]
fn reconcile_and_sweep_repeat_at_their_intervals() {
    let (f, p) = (factory(), Arc::new(Mem::default()));
    let mut c = ControlLoop::new(ControlOptions {
        holder: "a".into(),
        lease_ttl_ms: 3_600_000,
        ..Default::default()
    })
    .unwrap();
    c.tick(&f, &target(&p), &policy(), Some(T0)).unwrap();
    let r = c
        .tick(&f, &target(&p), &policy(), Some(T0 + 14_999))
        .unwrap();
    assert_eq!(r.ran, vec![Step::Recovery, Step::Push]);
    let r = c
        .tick(&f, &target(&p), &policy(), Some(T0 + 15_000))
        .unwrap();
    assert_eq!(r.reconcile_reason, Some(ReconcileReason::Interval));
    assert!(!r.ran.contains(&Step::Sweep));
    let r = c
        .tick(&f, &target(&p), &policy(), Some(T0 + 60_000))
        .unwrap();
    assert!(r.ran.contains(&Step::Sweep) && r.expiry.is_some());
}

#[test]
fn idle_shutdown_runs_when_a_worker_falls_due() {
    let (f, p) = (factory(), Arc::new(Mem::default()));
    let slow = ScalingPolicy {
        reconcile_interval_ms: 3_600_000,
        ..policy()
    };
    let mut c = ControlLoop::new(ControlOptions {
        holder: "a".into(),
        lease_ttl_ms: 3_600_000,
        idle_check_interval_ms: 3_600_000,
        sweep_interval_ms: 3_600_000,
        ..Default::default()
    })
    .unwrap();
    enqueue(&f, "telegram:chat:1", T0);
    let r = c.tick(&f, &target(&p), &slow, Some(T0)).unwrap();
    let id = r.reconcile.as_ref().unwrap().spawned_worker_ids[0].clone();
    assert_eq!(
        r.reconcile.as_ref().unwrap().next_due_at,
        Some(T0 + 300_000 + STARTUP_GRACE_MS)
    );
    // Never heard from yet: the startup grace comes on top of the idle timeout.
    assert_eq!(r.next_tick_at, T0 + 300_000 + STARTUP_GRACE_MS);
    let r = c
        .tick(
            &f,
            &target(&p),
            &slow,
            Some(T0 + 299_999 + STARTUP_GRACE_MS),
        )
        .unwrap();
    assert_eq!(r.ran, vec![Step::Recovery, Step::Push]);
    let r = c
        .tick(
            &f,
            &target(&p),
            &slow,
            Some(T0 + 300_000 + STARTUP_GRACE_MS),
        )
        .unwrap();
    assert_eq!(r.ran, vec![Step::Recovery, Step::Push, Step::IdleShutdown]);
    let idle = r.idle_shutdown.as_ref().unwrap();
    assert_eq!(idle.drained_worker_ids, vec![id.clone()]);
    assert_ne!(
        f.get_worker(&id).unwrap().unwrap().status,
        WorkerStatus::Active
    );
}

#[test]
fn a_failing_provider_is_reported_and_retried_with_backoff() {
    let (f, p) = (factory(), Arc::new(Mem::default()));
    let mut c = control("a");
    enqueue(&f, "telegram:chat:1", T0);
    p.fail(Op::List);
    let r = c.tick(&f, &target(&p), &policy(), Some(T0)).unwrap();
    assert!(r.acting && r.did_something);
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].starts_with("reconcile: ") && r.errors[0].contains("500"));
    assert!(r.next_tick_at <= T0 + RETRY_BASE_MS);
    // Not hammered: the next tick waits for the retry time.
    let r = c.tick(&f, &target(&p), &policy(), Some(T0 + 10)).unwrap();
    assert!(r.reconcile_reason.is_none() && r.errors.is_empty());
    let r = c
        .tick(&f, &target(&p), &policy(), Some(T0 + RETRY_BASE_MS))
        .unwrap();
    assert_eq!(r.reconcile_reason, Some(ReconcileReason::Retry));
    assert_eq!(r.reconcile.as_ref().unwrap().spawned, 1);
    assert!(r.errors.is_empty());
}

#[test]
fn retry_delays_double_up_to_the_interval() {
    let mut pace = Pace::default();
    let mut delays = Vec::new();
    for _ in 0..6 {
        pace.failed(0, 15_000);
        delays.push(pace.retry_at);
    }
    assert_eq!(delays, vec![1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
    pace.succeeded(5);
    assert_eq!((pace.failures, pace.last_ok), (0, Some(5)));
}

#[test]
fn only_the_lease_holder_acts_and_the_other_takes_over_on_release_or_expiry() {
    let (f, p) = (factory(), Arc::new(Mem::default()));
    let (mut a, mut b) = (control("a"), control("b"));
    assert!(a.tick(&f, &target(&p), &policy(), Some(T0)).unwrap().acting);
    let calls = p.calls("");
    let r = b.tick(&f, &target(&p), &policy(), Some(T0 + 1)).unwrap();
    assert!(!r.acting && r.ran.is_empty());
    assert_eq!(r.lease_holder.as_deref(), Some("a"));
    assert_eq!(r.next_tick_at, T0 + 1 + 1_000);
    assert_eq!(p.calls(""), calls, "the standby loop made no provider call");

    // A clean stop hands over at once.
    assert!(a.stop(&f).unwrap());
    let r = b.tick(&f, &target(&p), &policy(), Some(T0 + 2)).unwrap();
    assert!(r.acting && r.took_over);
    assert_eq!(r.reconcile_reason, Some(ReconcileReason::Start));

    // b "crashes" (never stops): a takes over once the lease lapses.
    let r = a
        .tick(&f, &target(&p), &policy(), Some(T0 + 3_001))
        .unwrap();
    assert!(!r.acting);
    let r = a
        .tick(&f, &target(&p), &policy(), Some(T0 + 3_002))
        .unwrap();
    assert!(r.acting && r.took_over && r.lease_token == Some(3));
    // b notices it lost the lease.
    let r = b
        .tick(&f, &target(&p), &policy(), Some(T0 + 3_003))
        .unwrap();
    assert!(!r.acting && r.lost_lease && r.did_something);
    assert!(!b.stop(&f).unwrap(), "nothing to release");
}

/// A provider that lets another loop take the lease while the cycle lists machines.
struct Stealing {
    inner: Arc<Mem>,
    factory: Arc<Factory>,
}

impl Provider for Stealing {
    fn app_name(&self) -> &str {
        self.inner.app_name()
    }
    fn check_access(&self) -> ProviderResult<()> {
        self.inner.check_access()
    }
    fn list_machines(&self) -> ProviderResult<Vec<Machine>> {
        steal(&self.factory, "usurper", T0 + 600_000);
        self.inner.list_machines()
    }
    fn get_machine(&self, id: &str) -> ProviderResult<Option<Machine>> {
        self.inner.get_machine(id)
    }
    fn create_machine(&self, spec: &MachineSpec) -> ProviderResult<Machine> {
        self.inner.create_machine(spec)
    }
    fn cordon_machine(&self, id: &str) -> ProviderResult<Outcome> {
        self.inner.cordon_machine(id)
    }
    fn stop_machine(&self, id: &str) -> ProviderResult<Outcome> {
        self.inner.stop_machine(id)
    }
    fn destroy_machine(&self, id: &str) -> ProviderResult<Outcome> {
        self.inner.destroy_machine(id)
    }
    fn list_volumes(&self) -> ProviderResult<Vec<Volume>> {
        self.inner.list_volumes()
    }
    fn create_volume(&self, name: &str, region: &str, size_gb: u64) -> ProviderResult<Volume> {
        self.inner.create_volume(name, region, size_gb)
    }
    fn delete_volume(&self, id: &str) -> ProviderResult<Outcome> {
        self.inner.delete_volume(id)
    }
}

#[test]
fn a_loop_that_loses_its_lease_mid_cycle_stops_before_touching_the_provider() {
    let (f, mem) = (factory(), Arc::new(Mem::default()));
    let stealing = PoolTarget {
        provider: Arc::new(Stealing {
            inner: mem.clone(),
            factory: f.clone(),
        }),
        ..target(&mem)
    };
    enqueue(&f, "telegram:chat:1", T0);
    let mut c = control("a");
    let r = c.tick(&f, &stealing, &policy(), Some(T0)).unwrap();
    assert!(!r.acting && r.lost_lease);
    assert_eq!(r.lease_holder.as_deref(), Some("usurper"));
    assert!(
        r.errors.iter().any(|e| e.contains("no longer held")),
        "{:?}",
        r.errors
    );
    assert_eq!(mem.calls("create"), 0, "no volume or machine created");
    assert!(c.tenure().is_none());
}

#[test]
fn a_lapsed_tenure_is_a_new_one() {
    let (f, p) = (factory(), Arc::new(Mem::default()));
    let mut c = control("a");
    c.tick(&f, &target(&p), &policy(), Some(T0)).unwrap();
    let r = c
        .tick(&f, &target(&p), &policy(), Some(T0 + 10_000))
        .unwrap();
    assert!(
        r.acting && r.took_over,
        "nobody else took it, but others may have acted"
    );
    assert_eq!(r.reconcile_reason, Some(ReconcileReason::Start));
}

#[test]
fn options_are_validated() {
    let bad = |o: ControlOptions| matches!(ControlLoop::new(o), Err(Error::Validation(_)));
    assert!(bad(ControlOptions {
        holder: " ".into(),
        ..Default::default()
    }));
    assert!(bad(ControlOptions {
        holder: "héllo".into(),
        ..Default::default()
    }));
    assert!(bad(ControlOptions {
        lease_ttl_ms: 10,
        ..Default::default()
    }));
    assert!(bad(ControlOptions {
        sweep_interval_ms: 0,
        ..Default::default()
    }));
    assert!(bad(ControlOptions {
        workspace_id: " ".into(),
        ..Default::default()
    }));
    let c = ControlLoop::new(ControlOptions::default()).unwrap();
    let parts: Vec<&str> = c.holder().split(':').collect();
    assert_eq!(parts.len(), 3, "hostname:pid:random, got {}", c.holder());
    assert_eq!(parts[1], std::process::id().to_string());
}

#[test]
fn bad_arguments_fail_the_tick() {
    let (f, p) = (factory(), Arc::new(Mem::default()));
    let mut c = control("a");
    let bad = ScalingPolicy {
        max_workers: -1,
        ..policy()
    };
    assert!(matches!(
        c.tick(&f, &target(&p), &bad, Some(T0)),
        Err(Error::Validation(_))
    ));
    assert!(matches!(
        c.tick(&f, &target(&p), &policy(), Some(-5)),
        Err(Error::Validation(_))
    ));
    assert!(
        f.get_lease(CONTROL_LEASE).unwrap().is_none(),
        "nothing taken"
    );
}
