"""The pool against a faulty Fly API (FakeFly on loopback).

Injected 5xx answers, lost answers, timeouts and 412 preconditions during
reconcile and teardown must never leak a machine or a volume and never mark a
worker ``stopped`` while its machine is still live: a failed call is retried by
a later cycle, never taken for "gone".
"""

from __future__ import annotations

import random

import pytest

from agent_factory import Factory, FlyProvider, ManualClock, ProviderError, ScalingPolicy
from agent_factory.testing import FakeFly
from helpers import payload

APP = "agent-factory-workers-test"
MACHINES = rf"/apps/{APP}/machines"
MACHINE = rf"/apps/{APP}/machines/[^/]+"
VOLUMES = rf"/apps/{APP}/volumes"
VOLUME = rf"/apps/{APP}/volumes/[^/]+"
SCALING = ScalingPolicy(max_workers=5, spawn_step=5, idle_timeout_ms=300_000)
# Spawned workers here never talk to the database, so they get the startup
# grace on top of the idle timeout before they count as idle.
STARTUP_GRACE_MS = 90_000


def provider(fake: FakeFly, timeout_ms: int = 2_000) -> FlyProvider:
    return FlyProvider(
        app_name=APP, image="registry.fly.io/worker:test", region="iad", volume_name="data",
        api_token="fly-token", base_url=fake.base_url, timeout_ms=timeout_ms, max_retries=1,
        backoff_ms=1, max_backoff_ms=5,
    )


@pytest.fixture
def agent(factory: Factory) -> str:
    factory.agents.upsert_agent("support-agent", secrets_ref=[])
    return "support-agent"


def spawn_one(factory: Factory, fake: FakeFly, agent: str, conversation: str = "c1") -> str:
    factory.queue.enqueue(conversation, agent, payload())
    report = factory.pool.reconcile(provider=provider(fake), scaling=SCALING)
    assert report.spawned == 1, report
    return report.spawned_worker_ids[0]


def assert_no_leak(factory: Factory, fake: FakeFly) -> None:
    """Every live machine belongs to a running worker; no stopped worker has a live machine."""
    rows = {w.worker_id: w for w in factory.workers.list()}
    for m in fake.live_machines().values():
        w = rows.get(m.name)
        assert w is not None and w.status != "stopped", f"machine {m.id} ({m.name}) leaked: {w}"
    for w in rows.values():
        if w.status == "stopped":
            assert w.machine_id is None and w.volume_id is None
            assert all(m.name != w.worker_id for m in fake.live_machines().values())


def test_a_failed_listing_changes_nothing(factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str) -> None:
    """A 5xx on the machine listing ends the cycle before any decision."""
    wid = spawn_one(factory, fake_fly, agent)
    manual_clock.advance(500_000)  # idle-due and stale: only the listing stands in the way
    fake_fly.fail_next("GET", MACHINES, 500, times=2)  # both attempts of one call
    with pytest.raises(ProviderError, match="listing the machines"):
        factory.pool.check_idle_shutdowns(provider=provider(fake_fly), scaling=SCALING)
    w = factory.workers.get(wid)
    assert w is not None and w.status == "active"
    assert len(fake_fly.live_machines()) == 1
    report = factory.pool.check_idle_shutdowns(provider=provider(fake_fly), scaling=SCALING)
    assert report.torn_down_worker_ids == [wid]
    assert fake_fly.live_machines() == {} and fake_fly.volumes == {}


def test_a_lost_volume_create_answer_is_not_a_second_volume(factory: Factory, fake_fly: FakeFly, agent: str) -> None:
    fake_fly.fail_next("POST", VOLUMES, 500, after_apply=True)
    wid = spawn_one(factory, fake_fly, agent)
    (volume,) = fake_fly.volumes.values()
    w = factory.workers.get(wid)
    assert w is not None and w.volume_id == volume.id


def test_a_timed_out_machine_create_is_not_a_second_machine(factory: Factory, fake_fly: FakeFly, agent: str) -> None:
    factory.queue.enqueue("c1", agent, payload())
    fake_fly.delay_next("POST", MACHINES, 0.6)
    report = factory.pool.reconcile(provider=provider(fake_fly, timeout_ms=300), scaling=SCALING)
    assert report.spawned == 1
    wid = report.spawned_worker_ids[0]
    fake_fly_wait_quiet(fake_fly)
    machines = [m for m in fake_fly.live_machines().values() if m.name == wid]
    assert len(machines) == 1
    w = factory.workers.get(wid)
    assert w is not None and w.machine_id == machines[0].id


def fake_fly_wait_quiet(fake: FakeFly, seconds: float = 0.8) -> None:
    """Let delayed requests land (they take effect after the client gave up)."""
    import time

    time.sleep(seconds)


@pytest.mark.parametrize(
    ("method", "pattern", "status"),
    [("DELETE", MACHINE, 500), ("DELETE", MACHINE, 412), ("DELETE", VOLUME, 500), ("GET", VOLUMES, 503)],
)
def test_teardown_faults_keep_the_worker_stopping(
    factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str, method: str, pattern: str, status: int
) -> None:
    wid = spawn_one(factory, fake_fly, agent)
    manual_clock.advance(SCALING.idle_timeout_ms + STARTUP_GRACE_MS + 1)
    # One call's attempts: a 5xx is retried once, a 412 is not.
    fake_fly.fail_next(method, pattern, status, times=1 if status == 412 else 2)
    report = factory.pool.check_idle_shutdowns(provider=provider(fake_fly), scaling=SCALING)
    assert report.terminated == 1 and report.torn_down == 0 and report.pending == 1
    assert (report.errors or report.warnings), report
    w = factory.workers.get(wid)
    assert w is not None and w.status == "stopping"
    assert len(fake_fly.volumes) == 1, "the volume outlives a failed teardown"
    assert_no_leak(factory, fake_fly)
    manual_clock.advance(1_000)
    report = factory.pool.check_idle_shutdowns(provider=provider(fake_fly), scaling=SCALING)
    assert report.torn_down_worker_ids == [wid], report
    assert fake_fly.live_machines() == {} and fake_fly.volumes == {}
    assert_no_leak(factory, fake_fly)


def test_internal_server_error_never_means_gone(
    factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str
) -> None:
    """The original took Fly's "internal server error" for a vanished machine (spec weakness 8)."""
    wid = spawn_one(factory, fake_fly, agent)
    manual_clock.advance(SCALING.idle_timeout_ms + STARTUP_GRACE_MS + 1)
    fake_fly.fail_next("*", MACHINE + r"(/.*)?", 500, body={"error": "internal server error: machine not found"}, times=12)
    report = factory.pool.check_idle_shutdowns(provider=provider(fake_fly), scaling=SCALING)
    assert report.torn_down == 0
    w = factory.workers.get(wid)
    assert w is not None and w.status == "stopping"
    assert len(fake_fly.live_machines()) == 1
    assert_no_leak(factory, fake_fly)


def test_random_faults_never_leak(factory: Factory, manual_clock: ManualClock, fake_fly: FakeFly, agent: str) -> None:
    """Cycles under random faults keep the no-leak invariant; once faults stop, everything is cleaned up."""
    rng = random.Random(20260101)
    menu = [
        ("GET", MACHINES, 500, False),
        ("POST", MACHINES, 500, False),
        ("POST", MACHINES, 500, True),
        ("POST", VOLUMES, 500, False),
        ("POST", VOLUMES, 502, True),
        ("POST", MACHINE + "/cordon", 500, False),
        ("POST", MACHINE + "/stop", 503, False),
        ("DELETE", MACHINE, 500, False),
        ("DELETE", MACHINE, 412, False),
        ("DELETE", VOLUME, 500, False),
        ("GET", VOLUMES, 500, False),
    ]
    for round_ in range(30):
        if round_ < 20 and rng.random() < 0.5:
            factory.queue.enqueue(f"conv-{round_}", agent, payload())
        for _ in range(rng.randint(0, 2)):
            method, pattern, status, lost = rng.choice(menu)
            fake_fly.fail_next(method, pattern, status, times=rng.randint(1, 3), after_apply=lost)
        manual_clock.advance(rng.choice([1_000, 60_000, 200_000]))
        try:
            if rng.random() < 0.6:
                factory.pool.reconcile(provider=provider(fake_fly), scaling=SCALING)
            else:
                factory.pool.check_idle_shutdowns(provider=provider(fake_fly), scaling=SCALING)
        except ProviderError:
            pass
        assert_no_leak(factory, fake_fly)
    # Faults stop (the queue is left alone, so no new spawns): everything drains away.
    for _ in range(40):
        manual_clock.advance(400_000)
        try:
            report = factory.pool.check_idle_shutdowns(provider=provider(fake_fly), scaling=SCALING)
        except ProviderError:
            continue
        assert_no_leak(factory, fake_fly)
        if report.pending == 0 and not fake_fly.live_machines() and not fake_fly.volumes:
            break
    assert fake_fly.live_machines() == {}
    assert fake_fly.volumes == {}
    assert all(w.status == "stopped" for w in factory.workers.list())
