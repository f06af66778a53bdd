//! Pool cycles end to end over an in-memory provider with fault injection.

use std::collections::BTreeMap;

use serde_json::json;

use super::mem::{Mem, Op};

use super::{PoolSettings, ProviderChoice};
use crate::agents::AgentInput;
use crate::config::ScalingPolicy;
use crate::error::Error;
use crate::factory::Factory;
use crate::queue::{ClaimOptions, EnqueueRequest};
use crate::snapshots::{PrepareSnapshot, SnapshotSource};
use crate::test_support::{factory_with_agent, T0};
use crate::workers::{WorkerStateInput, WorkerStatus};

fn factory() -> Factory {
    factory_with_agent("support-agent")
}

fn settings() -> PoolSettings {
    PoolSettings {
        provider_kind: "fly".into(),
        image: "img".into(),
        region: "iad".into(),
        volume_name: "openclaw_data_test".into(),
        volume_path: "/data".into(),
        volume_size_gb: 10,
        guest: Default::default(),
        env: BTreeMap::new(),
    }
}

fn policy(max_workers: i64) -> ScalingPolicy {
    ScalingPolicy {
        max_workers,
        idle_timeout_ms: 300_000,
        ..Default::default()
    }
}

fn enqueue(f: &Factory, conv: &str, now: i64) -> String {
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
    .unwrap()
}

fn status(f: &Factory, id: &str) -> WorkerStatus {
    f.get_worker(id).unwrap().unwrap().status
}

#[test]
fn reconcile_spawns_a_preassigned_worker_once() {
    let f = factory();
    let p = Mem::default();
    enqueue(&f, "telegram:chat:a", T0);
    let r = f
        .reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap();
    let id = format!("afw-{T0}-0");
    assert_eq!(r.spawned_worker_ids, vec![id.clone()]);
    assert_eq!((r.spawned, r.active_workers, r.desired_workers), (1, 1, 1));
    let w = f.get_worker(&id).unwrap().unwrap();
    let a = w.assignment.clone().unwrap();
    assert_eq!(a.conversation_id, "telegram:chat:a");
    assert_eq!(a.lease_id, format!("spawn:{id}"));
    assert_eq!(w.machine_id.as_deref(), Some("m2"));
    assert_eq!(w.volume_id.as_deref(), Some("vol1"));
    assert_eq!(w.scheduled_shutdown_at, Some(T0 + 300_000));
    let env = p.s.lock().unwrap().env[&id].clone();
    assert_eq!(env["OPENCLAW_CONVERSATION_ID"], "telegram:chat:a");
    assert_eq!(env["WORKER_IDLE_TIMEOUT_MS"], "300000");
    // The conversation is covered now: a second reconcile spawns nothing.
    let r = f
        .reconcile(&p, &settings(), &policy(5), None, Some(T0 + 1))
        .unwrap();
    assert_eq!((r.spawned, r.active_workers), (0, 1));
}

#[test]
fn worker_ids_never_collide_with_existing_rows_or_machines() {
    let f = factory();
    let p = Mem::default();
    f.upsert_worker_state(
        WorkerStateInput {
            worker_id: format!("afw-{T0}-0"),
            provider: "fly".into(),
            status: "stopped".into(),
            ..Default::default()
        },
        Some(T0),
    )
    .unwrap();
    p.add_machine("mx", &format!("afw-{T0}-1"), "started", None);
    enqueue(&f, "c1", T0);
    let r = f
        .reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap();
    assert_eq!(r.spawned_worker_ids, vec![format!("afw-{T0}-2")]);
    assert_eq!(r.untracked_machines, vec!["mx".to_string()]);
}

#[test]
fn spawn_failure_rolls_back_and_reports() {
    let f = factory();
    let p = Mem::default();
    enqueue(&f, "c1", T0);
    p.fail(Op::CreateMachine);
    let err = f
        .reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Provider(m) if m.contains("500 internal server error") && m.contains("rolled back")),
        "{err}"
    );
    let w = f.get_worker(&format!("afw-{T0}-0")).unwrap().unwrap();
    assert_eq!(w.status, WorkerStatus::Stopped);
    assert_eq!((w.machine_id, w.volume_id), (None, None));
    assert_eq!(w.stop_reason.as_deref(), Some("spawn_failed"));
    assert_eq!((p.machine_count(), p.volume_count()), (0, 0));
}

#[test]
fn a_machine_whose_create_answer_was_lost_is_adopted() {
    let f = factory();
    let p = Mem::default();
    enqueue(&f, "c1", T0);
    p.fail(Op::CreateMachineLost);
    let r = f
        .reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap();
    assert_eq!(r.spawned, 1);
    let w = f.get_worker(&format!("afw-{T0}-0")).unwrap().unwrap();
    assert_eq!(w.status, WorkerStatus::Active);
    assert!(w.machine_id.is_some());
}

#[test]
fn a_failed_listing_decides_nothing() {
    let f = factory();
    let p = Mem::default();
    enqueue(&f, "c1", T0);
    f.reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap();
    p.fail(Op::List);
    let later = T0 + 10 * 60_000;
    let err = f
        .check_idle_shutdowns(&p, &settings(), &policy(5), Some(later))
        .unwrap_err();
    assert!(matches!(err, Error::Provider(m) if m.contains("listing the machines")));
    assert_eq!(status(&f, &format!("afw-{T0}-0")), WorkerStatus::Active);
}

/// Claim and complete one message so the worker has claimed a job.
fn serve_one(f: &Factory, worker: &str, conv: &str, now: i64) {
    enqueue(f, conv, now);
    let c = f
        .claim(worker, &ClaimOptions::default(), Some(now))
        .unwrap()
        .unwrap();
    assert!(f
        .complete(worker, &c.message_id, &c.lease_id, Some(now + 1))
        .unwrap());
}

#[test]
fn idle_workers_drain_snapshot_then_teardown() {
    let f = factory();
    let p = Mem::default();
    f.reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap();
    enqueue(&f, "c1", T0);
    f.reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap();
    let id = format!("afw-{T0}-0");
    let c = f
        .claim(&id, &ClaimOptions::default(), Some(T0 + 10))
        .unwrap()
        .unwrap();
    f.complete(&id, &c.message_id, &c.lease_id, Some(T0 + 20))
        .unwrap();
    // Complete set the shutdown time from the factory's config (the seed's 30 min).
    let due = T0 + 10 + ScalingPolicy::default().idle_timeout_ms;
    let r = f
        .check_idle_shutdowns(&p, &settings(), &policy(5), Some(due))
        .unwrap();
    assert_eq!((r.terminated, r.pending, r.torn_down), (1, 1, 0));
    assert_eq!(status(&f, &id), WorkerStatus::Draining);
    assert_eq!(
        p.calls("delete-volume"),
        0,
        "volume kept until the final snapshot"
    );
    let snap = f
        .upload_snapshot(
            &PrepareSnapshot {
                worker_id: id.clone(),
                workspace_id: "default".into(),
                agent_key: "support-agent".into(),
                conversation_id: Some("c1".into()),
                reason: "drain".into(),
            },
            &SnapshotSource::Bytes(b"archive".to_vec()),
            Some(due + 1),
        )
        .unwrap();
    assert_eq!(status(&f, &id), WorkerStatus::Stopping);
    let r = f
        .check_idle_shutdowns(&p, &settings(), &policy(5), Some(due + 10))
        .unwrap();
    assert_eq!((r.pending, r.torn_down), (0, 1));
    let w = f.get_worker(&id).unwrap().unwrap();
    assert_eq!(w.status, WorkerStatus::Stopped);
    assert_eq!(
        w.last_snapshot_id.as_deref(),
        Some(snap.snapshot_id.as_str())
    );
    assert_eq!((p.machine_count(), p.volume_count()), (0, 0));
    assert_eq!((p.calls("destroy"), p.calls("delete-volume")), (1, 1));
}

#[test]
fn a_silent_draining_worker_is_torn_down_after_the_drain_timeout() {
    let f = factory();
    let p = Mem::default();
    serve_one(&f, "w1", "c1", T0);
    let pol = ScalingPolicy {
        drain_timeout_ms: 60_000,
        ..policy(5)
    };
    let due = T0 + ScalingPolicy::default().idle_timeout_ms;
    f.check_idle_shutdowns(&p, &settings(), &pol, Some(due))
        .unwrap();
    assert_eq!(status(&f, "w1"), WorkerStatus::Draining);
    let r = f
        .check_idle_shutdowns(&p, &settings(), &pol, Some(due + 59_999))
        .unwrap();
    assert_eq!((r.pending, r.next_due_at), (1, Some(due + 60_000)));
    let r = f
        .check_idle_shutdowns(&p, &settings(), &pol, Some(due + 60_000))
        .unwrap();
    assert_eq!(r.torn_down, 1);
    let w = f.get_worker("w1").unwrap().unwrap();
    assert_eq!(w.status, WorkerStatus::Stopped);
    assert_eq!(w.stop_reason.as_deref(), Some("drain_timeout"));
}

#[test]
fn teardown_faults_keep_the_worker_stopping_until_the_provider_confirms() {
    let f = factory();
    let p = Mem::default();
    enqueue(&f, "c1", T0);
    f.reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap();
    let id = format!("afw-{T0}-0");
    // Never heard from: due after the idle timeout plus the startup grace.
    let due = T0 + 300_000 + crate::workers::STARTUP_GRACE_MS;
    let r = f
        .check_idle_shutdowns(&p, &settings(), &policy(5), Some(due - 1))
        .unwrap();
    assert_eq!((r.pending, r.torn_down), (0, 0));
    // Never claimed: no snapshot needed, straight to teardown — which fails.
    p.fail(Op::Destroy);
    let r = f
        .check_idle_shutdowns(&p, &settings(), &policy(5), Some(due))
        .unwrap();
    assert_eq!((r.pending, r.torn_down, r.errors.len()), (1, 0, 1));
    assert!(r.errors[0].contains("500"), "{:?}", r.errors);
    assert_eq!(status(&f, &id), WorkerStatus::Stopping);
    assert_eq!((p.machine_count(), p.volume_count()), (1, 1));
    assert_eq!(p.calls("delete-volume"), 0);
    p.fail(Op::DeleteVolume);
    let r = f
        .check_idle_shutdowns(&p, &settings(), &policy(5), Some(due + 1))
        .unwrap();
    assert_eq!((r.pending, r.torn_down), (1, 0));
    assert_eq!((p.machine_count(), p.volume_count()), (0, 1));
    let r = f
        .check_idle_shutdowns(&p, &settings(), &policy(5), Some(due + 2))
        .unwrap();
    assert_eq!((r.pending, r.torn_down), (0, 1));
    assert_eq!((p.machine_count(), p.volume_count()), (0, 0));
    assert_eq!(status(&f, &id), WorkerStatus::Stopped);
}

#[test]
fn a_live_machine_is_never_stopped_by_provider_errors() {
    let f = factory();
    let p = Mem::default();
    enqueue(&f, "c1", T0);
    f.reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap();
    p.fail(Op::List);
    assert!(f
        .reconcile(&p, &settings(), &policy(5), None, Some(T0 + 200_000))
        .is_err());
    let r = f
        .reconcile(&p, &settings(), &policy(5), None, Some(T0 + 200_000))
        .unwrap();
    assert_eq!(r.terminated, 0);
    assert_eq!(status(&f, &format!("afw-{T0}-0")), WorkerStatus::Active);
}

#[test]
fn max_workers_bounds_live_workers_and_reclaims_idle_seats() {
    let f = factory();
    let p = Mem::default();
    serve_one(&f, "pinned", "c-old", T0);
    enqueue(&f, "c-new", T0 + 5);
    let r = f
        .reconcile(&p, &settings(), &policy(1), None, Some(T0 + 10))
        .unwrap();
    assert_eq!(r.spawned, 0, "the pinned idle worker holds the only seat");
    assert_eq!(r.drained_worker_ids, vec!["pinned".to_string()]);
    assert_eq!(status(&f, "pinned"), WorkerStatus::Draining);
    // Its snapshot arrives; the next reconcile tears it down and, the seat free, spawns.
    f.upload_snapshot(
        &PrepareSnapshot {
            worker_id: "pinned".into(),
            workspace_id: "default".into(),
            agent_key: "support-agent".into(),
            conversation_id: Some("c-old".into()),
            reason: "drain".into(),
        },
        &SnapshotSource::Bytes(b"x".to_vec()),
        Some(T0 + 20),
    )
    .unwrap();
    let r = f
        .reconcile(&p, &settings(), &policy(1), None, Some(T0 + 30))
        .unwrap();
    assert_eq!(r.torn_down_worker_ids, vec!["pinned".to_string()]);
    assert_eq!(r.spawned, 0, "teardown happens after spawning in a cycle");
    let r = f
        .reconcile(&p, &settings(), &policy(1), None, Some(T0 + 40))
        .unwrap();
    assert_eq!(r.spawned, 1);
}

#[test]
fn provider_choice_validates_kind_and_local_needs_a_file() {
    let f = factory();
    let bad = ProviderChoice {
        kind: Some("ecs".into()),
        ..Default::default()
    };
    assert!(
        matches!(f.pool_target(&bad), Err(Error::Validation(m)) if m == "Unsupported provider 'ecs'")
    );
    let local = ProviderChoice {
        kind: Some("local".into()),
        ..Default::default()
    };
    assert!(
        matches!(f.pool_target(&local), Err(Error::Validation(m)) if m.contains("database file"))
    );
    let fly = ProviderChoice {
        kind: Some("fly".into()),
        ..Default::default()
    };
    assert!(
        matches!(f.pool_target(&fly), Err(Error::Validation(m)) if m.starts_with("Missing providerConfig.appName"))
    );
    let cleanup = f.fly_cleanup(&local, &Default::default()).unwrap_err();
    assert_eq!(
        cleanup.to_string(),
        "Fly cleanup requires a Fly provider configuration."
    );
    let cleanup = f.fly_cleanup(&fly, &Default::default()).unwrap_err();
    assert_eq!(
        cleanup.to_string(),
        "Fly cleanup requires a non-empty Fly app name."
    );
    let mut named = fly.clone();
    named.fly.app_name = Some("x".into());
    let cleanup = f.fly_cleanup(&named, &Default::default()).unwrap_err();
    assert!(cleanup
        .to_string()
        .starts_with("Missing active 'fly.apiToken' secret."));
}

#[test]
fn overlapping_cycles_wait_for_each_other() {
    let f = std::sync::Arc::new(factory());
    let p = std::sync::Arc::new(Mem::default());
    for i in 0..4 {
        enqueue(&f, &format!("c{i}"), T0);
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (f, p) = (f.clone(), p.clone());
            std::thread::spawn(move || {
                f.reconcile(
                    p.as_ref(),
                    &settings(),
                    &ScalingPolicy {
                        spawn_step: 4,
                        ..policy(4)
                    },
                    None,
                    Some(T0),
                )
                .unwrap()
                .spawned
            })
        })
        .collect();
    let spawned: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(spawned, 4, "exactly one worker per conversation");
    assert_eq!(p.machine_count(), 4);
}

#[test]
fn bridge_env_is_forwarded_only_when_resolvable() {
    let f = factory();
    f.upsert_agent(
        AgentInput {
            agent_key: "support-agent".into(),
            version: "1.0.0".into(),
            enabled: true,
            bridge_config: Some(crate::agents::BridgeConfig {
                enabled: true,
                service_id: Some("openclaw-prod".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let env = super::env::forwarded_openclaw_env(&f).unwrap();
    assert_eq!(
        env.into_iter().collect::<Vec<_>>(),
        vec![(
            "OPENCLAW_SERVICE_ID".to_string(),
            "openclaw-prod".to_string()
        )]
    );
    f.import_secret("agent-bridge.serviceKey", "abs_live_bridge_key", None, None)
        .unwrap();
    f.import_secret(
        "agent-bridge.linkingSharedSecret",
        "abs_linking_secret",
        None,
        None,
    )
    .unwrap();
    let env = super::env::forwarded_openclaw_env(&f).unwrap();
    assert_eq!(env["OPENCLAW_SERVICE_KEY"], "abs_live_bridge_key");
    assert_eq!(env["OPENCLAW_LINKING_SHARED_SECRET"], "abs_linking_secret");
}

#[test]
fn a_spawned_worker_idle_clock_starts_at_its_first_contact() {
    let f = factory();
    let p = Mem::default();
    enqueue(&f, "c1", T0);
    f.reconcile(&p, &settings(), &policy(5), None, Some(T0))
        .unwrap();
    let id = format!("afw-{T0}-0");
    let w = f.get_worker(&id).unwrap().unwrap();
    assert!(w.never_contacted());
    // Still starting after the idle timeout: neither the pool nor the worker's
    // own control state treats it as idle.
    let late = T0 + 300_000 + 1;
    assert!(!f.control_state(&id, false, Some(late)).unwrap().should_stop);
    let r = f
        .check_idle_shutdowns(&p, &settings(), &policy(5), Some(late))
        .unwrap();
    assert_eq!(r.drained_worker_ids.len(), 0);
    // First contact 20 s after spawn: the idle clock restarts from there.
    assert!(f.touch_worker(&id, Some(T0 + 20_000)).unwrap());
    let w = f.get_worker(&id).unwrap().unwrap();
    assert!(!w.never_contacted());
    assert_eq!(w.scheduled_shutdown_at, Some(T0 + 320_000));
    assert_eq!(w.idle_deadline(), Some(T0 + 320_000));
    // A second contact does not move it again.
    assert!(f.touch_worker(&id, Some(T0 + 30_000)).unwrap());
    assert_eq!(
        f.get_worker(&id).unwrap().unwrap().scheduled_shutdown_at,
        Some(T0 + 320_000)
    );
    let r = f
        .check_idle_shutdowns(&p, &settings(), &policy(5), Some(T0 + 320_000))
        .unwrap();
    assert_eq!(r.drained_worker_ids, vec![id]);
}
