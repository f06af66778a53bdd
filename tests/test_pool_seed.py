"""Ports of the seed tests (seed-agent-factory.test.ts) covering the worker pool.

Each test's docstring starts with ``Seed: <the seed test title>``. The seed mocked
``fetch`` for the Fly Machines API; here the pool talks real HTTP to
``agent_factory.testing.FakeFly`` on loopback, and the assertions on Fly calls
read its call log. Time is a ManualClock plus explicit ``now_ms``, as the seed's
fake timers and ``nowMs`` arguments.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

import agent_factory as af
from agent_factory import Factory, FlyProvider, ManualClock, NotFoundError, ProviderError, ScalingPolicy
from agent_factory._types import Worker as WorkerRow
from agent_factory.testing import FakeFly
from helpers import payload

APP = "agent-factory-workers-test"
IMAGE = "registry.fly.io/agent-factory-workers-test:test-image"
VOLUME_PREFIX = "openclaw_data_test"
IDLE_TIMEOUT = af.ScalingPolicy().idle_timeout_ms
MACHINES = rf"/apps/{APP}/machines"
VOLUMES = rf"/apps/{APP}/volumes"

#: The seed's TEST_PROVIDER_CONFIG.
TEST_PROVIDER_CONFIG = af.ProviderConfig(
    kind="fly",
    app_name=APP,
    organization_slug="personal",
    image=IMAGE,
    region="iad",
    volume_name=VOLUME_PREFIX,
    volume_path="/data",
    volume_size_gb=10,
)

#: The scaling policy the seed passes to reconcileWorkerPool.
SEED_SCALING = ScalingPolicy(
    max_workers=5, queue_per_worker_target=1, spawn_step=1, idle_timeout_ms=300_000, reconcile_interval_ms=15_000
)


def utc_ms(*args: int) -> int:
    """``Date.UTC(year, monthIndex, day, h, m, s)`` (month is 0-based, as in JavaScript)."""
    year, month, *rest = args
    return int(datetime(year, month + 1, *rest, tzinfo=UTC).timestamp() * 1000)


def stable_hash_base36(value: str) -> str:
    """The seed's ``stableHashBase36``: FNV-1a 32 over UTF-16 code units, base 36."""
    h = 2166136261
    units = value.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h ^= units[i] | (units[i + 1] << 8)
        h = (h * 16777619) & 0xFFFFFFFF
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while h:
        h, r = divmod(h, 36)
        out = digits[r] + out
    return out or "0"


def build_dedicated_volume_name(prefix: str, worker_id: str) -> str:
    """The seed's ``buildDedicatedVolumeName``, written independently of the core."""
    import re

    def sanitize(v: str) -> str:
        v = re.sub(r"[^a-z0-9_]", "_", v.lower())
        return re.sub(r"_+", "_", v).strip("_")

    p = sanitize(prefix) or "openclaw"
    w = sanitize(worker_id) or "worker"
    h = stable_hash_base36(w)[:8]
    return f"{p[: max(1, 30 - 1 - len(h))]}_{h}"


def fly(fake: FakeFly, **overrides: object) -> FlyProvider:
    """The seed's provider config against the fake, with quick retries."""
    settings: dict[str, object] = dict(
        app_name=APP,
        organization_slug="personal",
        image=IMAGE,
        region="iad",
        volume_name=VOLUME_PREFIX,
        volume_path="/data",
        volume_size_gb=10,
        api_token="fly-token",
        base_url=fake.base_url,
        timeout_ms=2_000,
        max_retries=1,
        backoff_ms=1,
        max_backoff_ms=5,
    )
    settings.update(overrides)
    return FlyProvider(**settings)  # type: ignore[arg-type]


def seed_secrets(factory: Factory) -> None:
    """The seed imports these before every reconcile test."""
    factory.secrets.import_plaintext("fly.apiToken", "fly-token")
    factory.secrets.import_plaintext("convex.url", "https://example.convex.cloud")


def worker(factory: Factory, worker_id: str) -> WorkerRow:
    w = factory.workers.get(worker_id)
    assert w is not None, worker_id
    return w


def created_machine_env(fake: FakeFly) -> dict[str, str]:
    (call,) = fake.calls_to("POST", MACHINES)
    return dict(call.body["config"]["env"])


@pytest.fixture
def agent(factory: Factory) -> str:
    factory.agents.upsert_agent("support-agent", version="1.0.0", secrets_ref=[], enabled=True)
    return "support-agent"


def test_idle_shutdown_moves_to_draining(factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str) -> None:
    """Seed: idle shutdown should move worker to draining and prevent reactivation"""
    claim_time = utc_ms(2026, 0, 1, 12, 0, 0)
    manual_clock.set(claim_time)
    message_id = factory.queue.enqueue("telegram:chat:forced-stop", agent, payload("u-stop", "stop me"))
    claim = factory.queue.claim("worker-stop-force-1")
    assert claim is not None and claim.message_id == message_id
    manual_clock.set(claim_time + 60_000)
    assert factory.queue.complete("worker-stop-force-1", message_id, claim.lease_id)

    due = claim_time + IDLE_TIMEOUT + 1
    manual_clock.set(due)
    shutdown = factory.pool.check_idle_shutdowns(provider=fly(fake_fly), now_ms=due)
    assert shutdown.stopped == 1

    w = worker(factory, "worker-stop-force-1")
    assert w.status == "draining"
    assert w.scheduled_shutdown_at == claim_time + IDLE_TIMEOUT
    assert w.stopped_at is None
    assert factory.workers.control_state("worker-stop-force-1").should_stop is True
    assert factory.queue.enqueue("telegram:chat:forced-stop:2", agent, payload("u-stop", "new message"))
    assert factory.queue.claim("worker-stop-force-1") is None


def test_teardown_waits_for_final_snapshot(
    factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str
) -> None:
    """Seed: shutdown teardown should wait for final snapshot before deleting worker volume"""
    worker_id, machine_id, volume_id = "worker-cleanup-1", "machine-cleanup-1", "vol-cleanup-1"
    fake_fly.add_volume(build_dedicated_volume_name(VOLUME_PREFIX, worker_id), region="iad", volume_id=volume_id)
    fake_fly.add_machine(worker_id, machine_id=machine_id, state="started", image=IMAGE, volume_id=volume_id)
    claim_time = utc_ms(2026, 0, 1, 15, 0, 0)
    manual_clock.set(claim_time)
    message_id = factory.queue.enqueue("telegram:chat:cleanup", agent, payload("u-clean", "cleanup"))
    claim = factory.queue.claim(worker_id)
    assert claim is not None and claim.message_id == message_id
    factory.workers.upsert_worker_state(
        worker_id, provider="fly", status="active", load=1, now_ms=claim_time,
        machine_id=machine_id, app_name=APP, region="iad", volume_id=volume_id,
    )
    completion = claim_time + 60_000
    manual_clock.set(completion)
    factory.queue.complete(worker_id, message_id, claim.lease_id, now_ms=completion)

    due = claim_time + IDLE_TIMEOUT + 1
    manual_clock.set(due)
    first = factory.pool.check_idle_shutdowns(provider=fly(fake_fly), now_ms=due)
    assert first.stopped == 1
    assert first.pending == 1
    assert worker(factory, worker_id).status == "draining"
    assert fake_fly.calls_to(None, rf"/apps/{APP}/volumes/{volume_id}") == []

    snapshot = factory.snapshots.upload(
        worker_id, "default", agent, "telegram:chat:cleanup", "drain", b"snapshot-ready", now_ms=due + 1
    )
    assert snapshot.status == "ready"
    assert worker(factory, worker_id).status == "stopping"

    second = factory.pool.check_idle_shutdowns(provider=fly(fake_fly), now_ms=due + 10_000)
    assert second.pending == 0
    assert worker(factory, worker_id).status == "stopped"
    assert len(fake_fly.calls_to("DELETE", rf"/apps/{APP}/machines/{machine_id}")) == 1
    assert len(fake_fly.calls_to("DELETE", rf"/apps/{APP}/volumes/{volume_id}")) == 1
    assert fake_fly.live_machines() == {} and fake_fly.volumes == {}


def test_orphan_volume_cleanup(factory: Factory, fake_fly: FakeFly) -> None:
    """Seed: cleanup should remove orphan worker volumes when the machine is already gone"""
    worker_id, volume_id = "worker-orphan-1", "vol-orphan-1"
    fake_fly.add_volume(build_dedicated_volume_name(VOLUME_PREFIX, worker_id), region="iad", volume_id=volume_id)
    now = utc_ms(2026, 0, 1, 16, 0, 0)
    factory.workers.upsert_worker_state(
        worker_id, provider="fly", status="active", load=0, now_ms=now, scheduled_shutdown_at=now - 1,
        machine_id="machine-orphan-1", app_name=APP, region="iad", volume_id=volume_id,
    )
    result = factory.pool.check_idle_shutdowns(provider=fly(fake_fly), now_ms=now)
    assert result.stopped == 1
    assert result.pending == 0
    assert len(fake_fly.calls_to("DELETE", rf"/apps/{APP}/volumes/{volume_id}")) == 1
    assert fake_fly.calls_to("GET", rf"/apps/{APP}/machines/machine-orphan-1") == []
    assert worker(factory, worker_id).status == "stopped"


def test_reconcile_persists_volume_id(factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str) -> None:
    """Seed: reconcile should persist volumeId on the worker row after spawn"""
    now = utc_ms(2026, 0, 2, 9, 0, 0)
    manual_clock.set(now)
    seed_secrets(factory)
    factory.queue.enqueue("telegram:chat:persist-volume", agent, payload("u-persist-volume"), now_ms=now)
    factory.pool.reconcile(provider=fly(fake_fly), scaling=SEED_SCALING, now_ms=now)

    w = worker(factory, f"afw-{now}-0")
    (machine,) = fake_fly.live_machines().values()
    (volume,) = fake_fly.volumes.values()
    assert w.machine_id == machine.id and machine.name == f"afw-{now}-0"
    assert w.volume_id == volume.id
    assert volume.name == build_dedicated_volume_name(VOLUME_PREFIX, f"afw-{now}-0")
    assert machine.mounts == [{"volume": volume.id, "path": "/data"}]


def test_run_fly_cleanup_destroys_everything(factory: Factory, fake_fly: FakeFly) -> None:
    """Seed: runFlyCleanup should destroy machines and volumes with final verification"""
    factory.secrets.import_plaintext("fly.apiToken", "fly-token")
    factory.config.set_provider_config(TEST_PROVIDER_CONFIG)
    for mid in ("machine-1", "machine-2"):
        fake_fly.add_machine(mid, machine_id=mid)
    for vid in ("volume-1", "volume-2", "volume-3"):
        fake_fly.add_volume(vid, volume_id=vid)

    # The stored config and secret do the work; only the API address is the fake's.
    report = factory.pool.fly_cleanup(provider=FlyProvider(base_url=fake_fly.base_url), poll_interval_ms=10)
    assert report.app_name == APP
    assert (report.machines_found, report.machines_deleted, report.machines_remaining) == (2, 2, 0)
    assert (report.volumes_found, report.volumes_deleted, report.volumes_remaining) == (3, 3, 0)
    assert report.errors == []
    assert report.warnings == []
    deleted_machines = sorted(c.path.rsplit("/", 1)[1] for c in fake_fly.calls_to("DELETE", rf"{MACHINES}/[^/]+"))
    deleted_volumes = sorted(c.path.rsplit("/", 1)[1] for c in fake_fly.calls_to("DELETE", rf"{VOLUMES}/[^/]+"))
    assert deleted_machines == ["machine-1", "machine-2"]
    assert deleted_volumes == ["volume-1", "volume-2", "volume-3"]


def test_run_fly_cleanup_requires_secret(factory: Factory, fake_fly: FakeFly) -> None:
    """Seed: runFlyCleanup should require an active fly secret"""
    factory.config.set_provider_config(TEST_PROVIDER_CONFIG)
    with pytest.raises(NotFoundError, match=r"^Missing active 'fly\.apiToken' secret\."):
        factory.pool.fly_cleanup(provider=FlyProvider(base_url=fake_fly.base_url))
    assert fake_fly.calls == []


def _idle_workers(factory: Factory, *ids: str) -> None:
    for wid in ids:
        factory.workers.upsert_worker_state(wid, provider="fly", status="active", load=0)


def test_desired_workers_capped_by_distinct_conversations(factory: Factory, fake_fly: FakeFly, agent: str) -> None:
    """Seed: scheduler caps desired workers by distinct ready conversations"""
    seed_secrets(factory)
    factory.queue.enqueue("telegram:chat:cap-1", agent, payload("u-cap", "first"))
    factory.queue.enqueue("telegram:chat:cap-1", agent, payload("u-cap", "second"))
    _idle_workers(factory, "worker-cap-1", "worker-cap-2", "worker-cap-3")
    reconcile = factory.pool.reconcile(provider=fly(fake_fly), scaling=SEED_SCALING)
    assert reconcile.active_workers == 3
    assert reconcile.spawned == 0
    assert reconcile.terminated == 0
    assert fake_fly.calls_to("POST") == []


def test_desired_workers_increase_with_distinct_conversations(factory: Factory, fake_fly: FakeFly, agent: str) -> None:
    """Seed: scheduler desired workers increases with distinct ready conversations"""
    seed_secrets(factory)
    factory.queue.enqueue("telegram:chat:cap-a", agent, payload("u-cap-a"))
    factory.queue.enqueue("telegram:chat:cap-b", agent, payload("u-cap-b"))
    _idle_workers(factory, "worker-cap-4", "worker-cap-5", "worker-cap-6")
    reconcile = factory.pool.reconcile(provider=fly(fake_fly), scaling=SEED_SCALING)
    assert reconcile.active_workers == 3
    assert reconcile.spawned == 0
    assert reconcile.terminated == 0
    assert reconcile.desired_workers == 2


def test_spawn_when_another_conversation_is_processing(
    factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str
) -> None:
    """Seed: scheduler should spawn a new worker when another conversation is already processing"""
    now = utc_ms(2026, 0, 1, 17, 0, 0)
    manual_clock.set(now)
    fake_fly.add_machine("worker-busy-1", machine_id="machine-busy-1", state="started", image=IMAGE)
    seed_secrets(factory)
    factory.queue.enqueue("telegram:chat:spawn-a", agent, payload("u-spawn-a", "first"))
    factory.queue.enqueue("telegram:chat:spawn-b", agent, payload("u-spawn-b", "second"))
    claim = factory.queue.claim("worker-busy-1", now_ms=now)
    assert claim is not None and claim.conversation_id == "telegram:chat:spawn-a"
    factory.workers.upsert_worker_state(
        "worker-busy-1", provider="fly", status="active", load=1, now_ms=now,
        machine_id="machine-busy-1", app_name=APP, region="iad",
    )
    scaling = ScalingPolicy(
        max_workers=5, queue_per_worker_target=1, spawn_step=2, idle_timeout_ms=300_000, reconcile_interval_ms=15_000
    )
    reconcile = factory.pool.reconcile(provider=fly(fake_fly), scaling=scaling, now_ms=now)
    assert reconcile.spawned == 1
    assert reconcile.active_workers == 2
    env = created_machine_env(fake_fly)
    assert env["OPENCLAW_CONVERSATION_ID"] == "telegram:chat:spawn-b"
    assert env["OPENCLAW_AGENT_KEY"] == "support-agent"
    spawned = worker(factory, f"afw-{now}-0")
    assert spawned.assignment == af.Assignment(
        conversation_id="telegram:chat:spawn-b",
        agent_key="support-agent",
        lease_id=f"spawn:afw-{now}-0",
        assigned_at=now,
    )


def _bridge_agent(factory: Factory) -> None:
    factory.agents.upsert_agent(
        "support-agent", version="1.0.0", secrets_ref=[],
        bridge_config={"enabled": True, "service_id": "openclaw-prod"}, enabled=True,
    )


def test_bridge_env_forwarded(factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly) -> None:
    """Seed: scheduler should forward OpenClaw bridge env to spawned machines"""
    now = utc_ms(2026, 0, 1, 17, 5, 0)
    manual_clock.set(now)
    _bridge_agent(factory)
    seed_secrets(factory)
    factory.secrets.import_plaintext("agent-bridge.serviceKey", "abs_live_bridge_key")
    factory.secrets.import_plaintext("agent-bridge.linkingSharedSecret", "abs_linking_secret")
    factory.queue.enqueue("telegram:chat:spawn-env", "support-agent", payload("u-spawn-env"))
    reconcile = factory.pool.reconcile(provider=fly(fake_fly), scaling=SEED_SCALING, now_ms=now)
    assert reconcile.spawned == 1
    env = created_machine_env(fake_fly)
    assert env["OPENCLAW_SERVICE_ID"] == "openclaw-prod"
    assert env["OPENCLAW_SERVICE_KEY"] == "abs_live_bridge_key"
    assert env["OPENCLAW_LINKING_SHARED_SECRET"] == "abs_linking_secret"


def test_bridge_env_unresolved_keys_omitted(factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly) -> None:
    """Seed: scheduler should omit unresolved OpenClaw bridge env keys from spawned machines"""
    now = utc_ms(2026, 0, 1, 17, 6, 0)
    manual_clock.set(now)
    _bridge_agent(factory)
    seed_secrets(factory)
    factory.queue.enqueue("telegram:chat:spawn-env-missing", "support-agent", payload("u-spawn-env-missing"))
    reconcile = factory.pool.reconcile(provider=fly(fake_fly), scaling=SEED_SCALING, now_ms=now)
    assert reconcile.spawned == 1
    env = created_machine_env(fake_fly)
    assert env["OPENCLAW_SERVICE_ID"] == "openclaw-prod"
    assert "OPENCLAW_SERVICE_KEY" not in env
    assert "OPENCLAW_LINKING_SHARED_SECRET" not in env


def test_spawn_when_only_a_pinned_idle_worker_exists(
    factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str
) -> None:
    """Seed: scheduler should spawn when only an idle worker pinned to another conversation exists"""
    now = utc_ms(2026, 0, 1, 17, 45, 0)
    manual_clock.set(now)
    seed_secrets(factory)
    message_a = factory.queue.enqueue("telegram:chat:pinned-a", agent, payload("u-pinned-a", "first"), now_ms=now)
    claim_a = factory.queue.claim("worker-pinned-1", conversation_id="telegram:chat:pinned-a", now_ms=now)
    assert claim_a is not None and claim_a.message_id == message_a
    factory.queue.complete("worker-pinned-1", message_a, claim_a.lease_id, now_ms=now + 1_000)
    factory.queue.enqueue("telegram:chat:pinned-b", agent, payload("u-pinned-b", "second"), now_ms=now + 2_000)
    reconcile = factory.pool.reconcile(provider=fly(fake_fly), scaling=SEED_SCALING, now_ms=now + 2_000)
    assert reconcile.spawned == 1
    assert reconcile.active_workers == 2


def test_dedupe_duplicated_sticky_workers(
    factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str
) -> None:
    """Seed: scheduler should dedupe duplicated sticky workers for the same conversation"""
    now = utc_ms(2026, 0, 1, 17, 48, 0)
    manual_clock.set(now)
    seed_secrets(factory)
    factory.queue.enqueue("telegram:chat:dedupe-a", agent, payload("u-dedupe-a", "first"), now_ms=now)
    factory.queue.enqueue("telegram:chat:dedupe-b", agent, payload("u-dedupe-b", "second"), now_ms=now)
    for wid in ("worker-dedupe-1", "worker-dedupe-2", "worker-dedupe-3"):
        factory.workers.upsert_worker_state(
            wid, provider="fly", status="active", load=0, now_ms=now, scheduled_shutdown_at=now + 300_000,
            machine_id=f"{wid}-machine", app_name=APP, region="iad",
            assignment={
                "conversation_id": "telegram:chat:dedupe-a",
                "agent_key": "support-agent",
                "lease_id": f"{wid}-lease",
                "assigned_at": now,
            },
        )
    reconcile = factory.pool.reconcile(provider=fly(fake_fly), scaling=SEED_SCALING, now_ms=now)
    assert reconcile.spawned == 1
    assert created_machine_env(fake_fly)["OPENCLAW_CONVERSATION_ID"] == "telegram:chat:dedupe-b"


def test_backfill_missing_scheduled_shutdown(factory: Factory, factory_path: Path, fake_fly: FakeFly) -> None:
    """Seed: checkIdleShutdowns should backfill missing scheduledShutdownAt for idle active workers"""
    now = utc_ms(2026, 0, 1, 18, 0, 0)
    factory.workers.upsert_worker_state(
        "worker-missing-shutdown-1", provider="fly", status="active", load=0, now_ms=now - 600_000
    )
    # The seed patches the row directly; so do we (a second connection to the same file).
    with sqlite3.connect(factory_path) as db:
        db.execute(
            "UPDATE workers SET last_claim_at = ?, heartbeat_at = ?, scheduled_shutdown_at = NULL WHERE worker_id = ?",
            (now - 600_000, now, "worker-missing-shutdown-1"),
        )
    result = factory.pool.check_idle_shutdowns(provider=fly(fake_fly), now_ms=now)
    assert result.stopped == 0
    assert result.pending == 0
    w = worker(factory, "worker-missing-shutdown-1")
    assert w.status == "active"
    assert w.scheduled_shutdown_at == now - 600_000 + IDLE_TIMEOUT


def test_provider_stopped_machines(factory: Factory, fake_fly: FakeFly) -> None:
    """Seed: provider-stopped machines should not remain active in the worker table"""
    now = utc_ms(2026, 0, 1, 19, 0, 0)
    fake_fly.add_machine("worker-provider-stopped-1", machine_id="machine-provider-stopped-1", state="stopped")
    factory.workers.upsert_worker_state(
        "worker-provider-stopped-1", provider="fly", status="active", load=1, now_ms=now - 60_000,
        machine_id="machine-provider-stopped-1", app_name=APP, region="iad",
    )
    result = factory.pool.check_idle_shutdowns(provider=fly(fake_fly), now_ms=now)
    assert result.stopped == 1
    assert result.pending == 0
    assert worker(factory, "worker-provider-stopped-1").status == "stopped"
    assert fake_fly.live_machines() == {}


def test_provider_transient_states_remain_active(factory: Factory, fake_fly: FakeFly) -> None:
    """Seed: provider transient machine states should remain active"""
    now = utc_ms(2026, 0, 1, 19, 15, 0)
    fake_fly.add_machine("worker-provider-creating-1", machine_id="machine-provider-creating-1", state="creating")
    factory.workers.upsert_worker_state(
        "worker-provider-creating-1", provider="fly", status="active", load=1, now_ms=now,
        machine_id="machine-provider-creating-1", app_name=APP, region="iad",
    )
    result = factory.pool.check_idle_shutdowns(provider=fly(fake_fly), now_ms=now)
    assert result.stopped == 0
    assert worker(factory, "worker-provider-creating-1").status == "active"


def test_grace_window_for_fresh_missing_workers(factory: Factory, fake_fly: FakeFly) -> None:
    """Seed: fresh missing provider workers should remain active during grace window"""
    now = utc_ms(2026, 0, 1, 19, 20, 0)
    factory.workers.upsert_worker_state(
        "worker-provider-missing-fresh-1", provider="fly", status="active", load=0, now_ms=now,
        machine_id="machine-provider-missing-fresh-1", app_name=APP, region="iad",
    )
    result = factory.pool.check_idle_shutdowns(provider=fly(fake_fly), now_ms=now + 15_000)
    assert result.stopped == 0
    assert worker(factory, "worker-provider-missing-fresh-1").status == "active"


def test_provider_unavailable_workers_drain_before_teardown(
    factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str
) -> None:
    """Seed: provider-unavailable active workers should enter draining before teardown"""
    now = utc_ms(2026, 0, 1, 19, 30, 0)
    manual_clock.set(now)
    fake_fly.add_machine("worker-provider-draining-1", machine_id="machine-provider-draining-1", state="stopped")
    message_id = factory.queue.enqueue("telegram:chat:provider-draining", agent, payload("u-provider-draining"))
    claim = factory.queue.claim("worker-provider-draining-1", now_ms=now)
    assert claim is not None and claim.message_id == message_id
    factory.workers.upsert_worker_state(
        "worker-provider-draining-1", provider="fly", status="active", load=1, now_ms=now,
        machine_id="machine-provider-draining-1", app_name=APP, region="iad",
    )
    result = factory.pool.check_idle_shutdowns(provider=fly(fake_fly), now_ms=now)
    assert result.stopped == 1
    assert result.pending == 1
    w = worker(factory, "worker-provider-draining-1")
    assert w.status == "draining"
    assert w.stopped_at is None
    teardown = [
        c for c in fake_fly.calls
        if c.path.startswith(f"/apps/{APP}/machines/machine-provider-draining-1/")
        or (c.method == "DELETE" and c.path.endswith("/machine-provider-draining-1"))
    ]
    assert teardown == []


def test_spawn_failure_rolls_back(factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str) -> None:
    """Seed: spawn failure should not leave preregistered worker active"""
    now = utc_ms(2026, 0, 1, 19, 35, 0)
    manual_clock.set(now)
    seed_secrets(factory)
    factory.queue.enqueue("telegram:chat:spawn-failure", agent, payload("u-spawn-failure"), now_ms=now)
    fake_fly.fail_next("POST", MACHINES, 500, body={"error": "simulated spawn failure"}, times=10)
    with pytest.raises(ProviderError, match="simulated spawn failure"):
        factory.pool.reconcile(provider=fly(fake_fly), scaling=SEED_SCALING, now_ms=now)
    w = worker(factory, f"afw-{now}-0")
    assert w.status == "stopped"
    assert w.machine_id is None
    assert w.volume_id is None
    assert w.stop_reason == "spawn_failed"
    assert fake_fly.volumes == {} and fake_fly.live_machines() == {}


def test_dedicated_volume_name_rule_matches_the_seed(
    factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str
) -> None:
    """The core's volume names equal the seed's helper for odd prefixes and ids too."""
    now = manual_clock.now_ms()
    factory.queue.enqueue("telegram:chat:names", agent, payload())
    provider = fly(fake_fly, volume_name="  Open--Claw.Data with a VERY long prefix indeed ")
    factory.pool.reconcile(provider=provider, scaling=SEED_SCALING, now_ms=now)
    (volume,) = fake_fly.volumes.values()
    assert volume.name == build_dedicated_volume_name(
        "  Open--Claw.Data with a VERY long prefix indeed ", f"afw-{now}-0"
    )
    assert len(volume.name) <= 30
