"""Observability: core events in Python ``logging``, metrics, Prometheus text and
``agent-factory serve --metrics-port``.

Real parts only: the pool talks HTTP to ``FakeFly`` on loopback, the queue runs
on a real SQLite file under a manual clock, and the metrics endpoint is served
by a real ``agent-factory serve`` subprocess.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent_factory as af
from agent_factory import Factory, FlyProvider, ManualClock, ProviderError, ScalingPolicy
from agent_factory.metrics import Counters, Metrics, MetricsServer, WorkerGauge, counters
from agent_factory.testing import FakeFly
from helpers import payload

APP = "agent-factory-obs-test"
IMAGE = "registry.fly.io/agent-factory-obs-test:test-image"
MACHINES = rf"/apps/{APP}/machines"
#: A token that must never appear in a log record.
SECRET_TOKEN = "fo1_obs-secret-token-DO-NOT-LOG-7f3a9c"
SCALING = ScalingPolicy(
    max_workers=5, queue_per_worker_target=1, spawn_step=1, idle_timeout_ms=300_000, reconcile_interval_ms=15_000
)


@pytest.fixture
def fly_fake() -> Iterator[FakeFly]:
    """A fake Fly API that accepts only :data:`SECRET_TOKEN`."""
    with FakeFly(app_name=APP, token=SECRET_TOKEN) as fake:
        yield fake


@pytest.fixture
def agent(factory: Factory) -> str:
    factory.agents.upsert_agent("obs-agent", version="1.0.0", secrets_ref=[], enabled=True)
    return "obs-agent"


@pytest.fixture
def core_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog at DEBUG for every ``agent_factory`` logger."""
    caplog.set_level(logging.DEBUG, logger="agent_factory")
    return caplog


def fly(fake: FakeFly) -> FlyProvider:
    return FlyProvider(
        app_name=APP,
        organization_slug="personal",
        image=IMAGE,
        region="iad",
        volume_name="obs_data",
        volume_path="/data",
        volume_size_gb=1,
        api_token=SECRET_TOKEN,
        base_url=fake.base_url,
        timeout_ms=2_000,
        max_retries=1,
        backoff_ms=1,
        max_backoff_ms=5,
    )


def seed_secrets(factory: Factory) -> None:
    factory.secrets.import_plaintext("fly.apiToken", SECRET_TOKEN)
    factory.secrets.import_plaintext("convex.url", "https://example.convex.cloud")


def records(caplog: pytest.LogCaptureFixture, logger: str, level: int | None = None) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and (level is None or r.levelno == level)]


def assert_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    for r in caplog.records:
        assert SECRET_TOKEN not in r.getMessage(), r.getMessage()
        assert SECRET_TOKEN not in str(r.args)


def delta(before: Counters, after: Counters) -> dict[str, int]:
    """Non-zero changes of the scalar counters."""
    b, a = before.to_dict(), after.to_dict()
    return {k: a[k] - b[k] for k in a if isinstance(a[k], int) and a[k] != b[k]}


# -- logging ----------------------------------------------------------------------------------


def test_pool_cycle_logs_spawn_drain_and_teardown(
    factory: Factory, manual_clock: ManualClock, fly_fake: FakeFly, agent: str, core_logs: pytest.LogCaptureFixture
) -> None:
    now = manual_clock.now_ms()
    seed_secrets(factory)
    factory.queue.enqueue("telegram:chat:obs-spawn", agent, payload("u-obs"), now_ms=now)
    before = counters()

    report = factory.pool.reconcile(provider=fly(fly_fake), scaling=SCALING, now_ms=now)
    (worker_id,) = report.spawned_worker_ids
    (spawn,) = records(core_logs, "agent_factory.pool", logging.INFO)
    assert worker_id in spawn.getMessage() and "telegram:chat:obs-spawn" in spawn.getMessage()
    assert spawn.getMessage().startswith(f"spawned worker {worker_id} on {APP}")

    # The spawned worker never reports: a day later it drains (stale heartbeat), needs
    # no final snapshot, stops and is torn down in one idle-shutdown cycle.
    core_logs.clear()
    later = now + 24 * 3_600_000
    manual_clock.set(later)
    shutdown = factory.pool.check_idle_shutdowns(provider=fly(fly_fake), now_ms=later)
    assert shutdown.torn_down == 1, shutdown
    messages = [r.getMessage() for r in records(core_logs, "agent_factory.pool")]
    assert any(m == f"worker {worker_id} draining (stale_heartbeat)" for m in messages), messages
    assert any(m.startswith(f"worker {worker_id} drained (final snapshot ready)") for m in messages), messages
    assert any(m.startswith(f"worker {worker_id} torn down (machine ") for m in messages), messages
    machine = factory.workers.get(worker_id)
    assert machine is not None and machine.status == "stopped"

    d = delta(before, counters())
    assert d["workers_spawned"] == 1 and d["workers_drained"] == 1 and d["workers_torn_down"] == 1
    assert counters().provider_calls["fly"] > before.provider_calls.get("fly", 0)
    assert_no_secret(core_logs)


def test_provider_errors_are_logged_without_the_token(
    factory: Factory, manual_clock: ManualClock, fly_fake: FakeFly, agent: str, core_logs: pytest.LogCaptureFixture
) -> None:
    now = manual_clock.now_ms()
    seed_secrets(factory)
    factory.queue.enqueue("telegram:chat:obs-fail", agent, payload("u-fail"), now_ms=now)
    # The fake answers with the token in its body (a proxy echoing the request, say).
    fly_fake.fail_next("POST", MACHINES, 500, body={"error": f"upstream said Bearer {SECRET_TOKEN}"}, times=10)
    before = counters()
    with pytest.raises(ProviderError) as raised:
        factory.pool.reconcile(provider=fly(fly_fake), scaling=SCALING, now_ms=now)
    assert SECRET_TOKEN not in str(raised.value)

    provider_logs = records(core_logs, "agent_factory.providers")
    retries = [r for r in provider_logs if r.levelno == logging.WARNING]
    errors = [r for r in provider_logs if r.levelno == logging.ERROR]
    assert retries and "retry 1 of 1" in retries[0].getMessage()
    assert errors and f"Fly API POST /apps/{APP}/machines failed: 500" in errors[0].getMessage()
    assert "[redacted]" in errors[0].getMessage()
    (spawn_error,) = records(core_logs, "agent_factory.pool", logging.ERROR)
    assert "spawn of worker afw-" in spawn_error.getMessage()
    assert_no_secret(core_logs)

    after = counters()
    assert after.provider_call_errors["fly"] - before.provider_call_errors.get("fly", 0) >= 1
    assert after.provider_calls["fly"] > before.provider_calls.get("fly", 0)


def test_dead_letter_and_lease_recovery_are_warnings(
    factory: Factory, manual_clock: ManualClock, agent: str, core_logs: pytest.LogCaptureFixture
) -> None:
    before = counters()
    # Dead letter through fail() at the last attempt.
    doomed = factory.queue.enqueue("conv-dead", agent, payload("u1"), max_attempts=1)
    claim = factory.queue.claim("worker-a")
    assert claim is not None and claim.message_id == doomed
    outcome = factory.queue.fail("worker-a", doomed, claim.lease_id, "handler exploded")
    assert outcome.dead_lettered
    (dead,) = records(core_logs, "agent_factory.queue", logging.WARNING)
    assert dead.getMessage() == f"message {doomed} dead-lettered after 1 of 1 attempts"
    assert "handler exploded" not in dead.getMessage()  # error text may hold user data

    # Lease recovery: the lease runs out, recovery requeues the message.
    core_logs.clear()
    msg = factory.queue.enqueue("conv-stuck", agent, payload("u2"), max_attempts=3)
    claim = factory.queue.claim("worker-b")
    assert claim is not None and claim.message_id == msg
    manual_clock.advance(af.Config().lease.lease_ms + 1)
    released = factory.queue.release_stuck_jobs()
    assert released.requeued == 1
    (recovered,) = records(core_logs, "agent_factory.queue", logging.WARNING)
    assert recovered.getMessage() == f"lease of message {msg} expired (worker worker-b, conversation conv-stuck): requeued"

    d = delta(before, counters())
    assert d == {
        "messages_enqueued": 2,
        "messages_claimed": 2,
        "messages_failed": 1,
        "messages_dead_lettered": 1,
        "leases_recovered": 1,
    }


def test_levels_follow_python_logging_at_once(
    factory: Factory, agent: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No stale level cache: raising the logger's level silences the core, lowering it restores it."""
    caplog.set_level(logging.ERROR, logger="agent_factory.queue")
    doomed = factory.queue.enqueue("conv-level", agent, payload(), max_attempts=1)
    claim = factory.queue.claim("worker-l")
    assert claim is not None
    factory.queue.fail("worker-l", doomed, claim.lease_id, "x")
    assert records(caplog, "agent_factory.queue") == []

    caplog.set_level(logging.WARNING, logger="agent_factory.queue")
    again = factory.queue.enqueue("conv-level-2", agent, payload(), max_attempts=1)
    claim = factory.queue.claim("worker-l2")
    assert claim is not None and claim.message_id == again
    factory.queue.fail("worker-l2", again, claim.lease_id, "x")
    assert len(records(caplog, "agent_factory.queue", logging.WARNING)) == 1


def test_a_log_handler_may_call_back_into_the_factory(
    factory: Factory, agent: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Events go out after the commit, with the writer unlocked: a handler that
    enqueues an alert on a dead letter neither deadlocks nor sees stale state."""
    seen: list[int] = []

    class Alert(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "dead-lettered" in record.getMessage():
                seen.append(factory.queue.stats().dead_letter)
                factory.queue.enqueue("conv-alerts", agent, payload("ops", record.getMessage()))

    handler = Alert(level=logging.WARNING)
    logger = logging.getLogger("agent_factory.queue")
    logger.addHandler(handler)
    caplog.set_level(logging.WARNING, logger="agent_factory.queue")
    try:
        doomed = factory.queue.enqueue("conv-cb", agent, payload(), max_attempts=1)
        claim = factory.queue.claim("worker-cb")
        assert claim is not None
        done = threading.Event()

        def run() -> None:
            factory.queue.fail("worker-cb", doomed, claim.lease_id, "boom")
            done.set()

        t = threading.Thread(target=run)
        t.start()
        t.join(timeout=20)
        assert done.is_set(), "fail() deadlocked inside a log handler"
    finally:
        logger.removeHandler(handler)
    assert seen == [1]
    assert [j.conversation_id for j in factory.queue.list_jobs("queued")] == ["conv-alerts"]


def test_a_rolled_back_operation_counts_and_logs_nothing(
    factory: Factory, agent: str, core_logs: pytest.LogCaptureFixture
) -> None:
    before = counters()
    with pytest.raises(af.AgentFactoryError, match="no-such-agent"):
        factory.queue.enqueue_many(
            [
                {"conversation_id": "conv-rb-1", "agent_key": agent, "payload": payload()},
                {"conversation_id": "conv-rb-2", "agent_key": "no-such-agent", "payload": payload()},
            ]
        )
    assert delta(before, counters()) == {}
    assert factory.queue.stats().queued_ready == 0


def test_async_api_logs_and_counts(
    async_factory: af.AsyncFactory, factory: Factory, agent: str, core_logs: pytest.LogCaptureFixture
) -> None:
    import asyncio

    async def scenario() -> Metrics:
        doomed = await async_factory.queue.enqueue("conv-async", agent, payload(), max_attempts=1)
        claim = await async_factory.queue.claim("worker-async")
        assert claim is not None
        await async_factory.queue.fail("worker-async", doomed, claim.lease_id, "x")
        return await async_factory.metrics()

    m = asyncio.run(scenario())
    assert m.gauges.dead_letters == 1
    assert len(records(core_logs, "agent_factory.queue", logging.WARNING)) == 1


def test_telegram_rejections_are_warnings_and_counted(
    factory: Factory, agent: str, core_logs: pytest.LogCaptureFixture
) -> None:
    before = counters()
    with pytest.raises(af.ValidationError):
        factory.telegram.ingest_update({"update_id": 77, "message": "not an object"}, agent_key=agent)
    (rejected,) = records(core_logs, "agent_factory.telegram", logging.WARNING)
    assert rejected.getMessage().startswith(f"update 77 for agent {agent} rejected: ")
    assert delta(before, counters()) == {"telegram_updates_rejected": 1}


def test_metrics_bad_input_is_typed(factory: Factory) -> None:
    with pytest.raises(af.ValidationError, match="nowMs must be >= 0"):
        factory.metrics(now_ms=-5)
    with pytest.raises(TypeError, match="now_ms"):
        factory.metrics(now_ms="soon")  # type: ignore[arg-type]


def test_core_log_level_is_validated() -> None:
    with pytest.raises(af.ValidationError, match="level must be one of"):
        af.metrics.set_core_log_level("LOUD")
    af.metrics.set_core_log_level("DEBUG")
    af.metrics.set_core_log_level("INFO")


# -- metrics ----------------------------------------------------------------------------------


def test_gauges_match_queue_state_after_a_scripted_sequence(
    factory: Factory, manual_clock: ManualClock, agent: str
) -> None:
    t0 = manual_clock.now_ms()
    before = counters()
    for conv in ("c1", "c2", "c3", "c4"):
        factory.queue.enqueue(conv, agent, payload(conv))
    factory.queue.enqueue("c5", agent, payload("c5"), scheduled_for=t0 + 3_600_000)
    doomed = factory.queue.enqueue("c6", agent, payload("c6"), max_attempts=1)
    manual_clock.advance(5_000)

    claimed = []
    for w in ("w1", "w2", "w3"):
        c = factory.queue.claim(w)
        assert c is not None
        claimed.append(c)
    held, retry, done = claimed[2], claimed[1], claimed[0]
    assert factory.queue.complete(done.worker_id, done.message_id, done.lease_id)
    # One failure goes back with a backoff (waiting); the doomed one is dead-lettered
    # once a fourth worker gets it (completing whatever it claims before).
    if retry.message_id == doomed:
        retry, held = held, retry
    assert factory.queue.fail(retry.worker_id, retry.message_id, retry.lease_id, "again").requeued
    w4_claims: list[str] = []
    if held.message_id == doomed:
        dead_claim = held
        held = None
    else:
        while True:
            c = factory.queue.claim("w4", mode="pooled")
            assert c is not None
            w4_claims.append(c.message_id)
            if c.message_id == doomed:
                dead_claim = c
                break
            assert factory.queue.complete(c.worker_id, c.message_id, c.lease_id)
    assert factory.queue.fail(dead_claim.worker_id, doomed, dead_claim.lease_id, "fatal").dead_lettered

    m = factory.metrics()
    stats = factory.queue.stats()
    g = m.gauges
    assert (g.queued_ready, g.queued_waiting, g.in_flight, g.dead_letters) == (
        stats.queued_ready,
        stats.queued_delayed,
        stats.processing,
        stats.dead_letter,
    )
    in_flight = 0 if held is None else 1
    completed = 1 + sum(1 for x in w4_claims if x != doomed)
    assert g.in_flight == in_flight
    assert g.dead_letters == 1
    assert g.queued_waiting == 2  # c5 scheduled later, the failed one backing off
    assert g.queued_ready == 6 - completed - 2 - in_flight - 1
    assert g.oldest_ready_age_ms == (5_000 if g.queued_ready else 0)
    workers = {"w1", "w2", "w3"} | ({"w4"} if w4_claims else set())
    assert g.workers_by_status == {"active": len(workers), "draining": 0, "stopping": 0, "stopped": 0}
    loads = {w.worker_id: w.load for w in g.workers}
    assert loads == {w: int(held is not None and w == held.worker_id) for w in workers}
    assert m.at_ms == manual_clock.now_ms()

    assert delta(before, m.counters) == {
        "messages_enqueued": 6,
        "messages_claimed": 3 + len(w4_claims),
        "messages_completed": completed,
        "messages_failed": 2,
        "messages_dead_lettered": 1,
    }


def test_oldest_ready_age_and_workers_by_status(factory: Factory, manual_clock: ManualClock, agent: str) -> None:
    t0 = manual_clock.now_ms()
    factory.queue.enqueue("age-1", agent, payload())
    manual_clock.advance(1_234)
    factory.queue.enqueue("age-2", agent, payload())
    manual_clock.advance(1_000)
    g = factory.metrics().gauges
    assert g.queued_ready == 2 and g.oldest_ready_at == t0 and g.oldest_ready_age_ms == 2_234
    assert factory.metrics(now_ms=t0 + 10_000).gauges.oldest_ready_age_ms == 10_000

    factory.workers.upsert_worker_state("idle-1", provider="local", status="active", load=0)
    factory.workers.upsert_worker_state("gone-1", provider="local", status="stopped", load=0)
    g = factory.metrics().gauges
    assert g.workers_by_status == {"active": 1, "draining": 0, "stopping": 0, "stopped": 1}
    assert [w.worker_id for w in g.workers] == ["idle-1"]


def test_metrics_result_is_frozen_with_dict_and_html(factory: Factory) -> None:
    m = factory.metrics()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.at_ms = 1  # type: ignore[misc]
    d = m.to_dict()
    assert set(d) == {"at_ms", "gauges", "counters"}
    assert "workers_by_status" in d["gauges"] and "provider_calls" in d["counters"]
    assert "<table>" in m._repr_html_() and "queued_ready" in m._repr_html_()
    assert isinstance(af.metrics.counters(), Counters)


# -- Prometheus text --------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")


def _labels(text: str) -> dict[str, str]:
    """Parse ``k="v",k2="v2"`` with the text format's escapes (\\\\, \\", \\n)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(text):
        m = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="').match(text, i)
        assert m, f"bad label at {text[i:]!r}"
        key, i = m.group(1), m.end()
        value = []
        while True:
            ch = text[i]
            if ch == "\\":
                nxt = text[i + 1]
                assert nxt in '\\"n', f"bad escape \\{nxt}"
                value.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                assert ch != "\n"
                value.append(ch)
                i += 1
        out[key] = "".join(value)
        if i < len(text):
            assert text[i] == ",", text[i:]
            i += 1
    return out


def parse_prometheus(text: str) -> dict[str, dict[str, object]]:
    """A tiny parser of the text format: families with help, type and samples.
    Checks that HELP and TYPE come first and once per family, and that every
    sample belongs to the family declared last."""
    assert text.endswith("\n")
    families: dict[str, dict[str, object]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, help_text = line[7:].split(" ", 1)
            assert name not in families, f"family {name} declared twice"
            families[name] = {"help": help_text, "type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert name == current and families[name]["type"] is None
            assert kind in ("counter", "gauge")
            families[name]["type"] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"bad sample line {line!r}"
            name, _, labels, value = m.groups()
            assert name == current, f"{name} outside its family"
            families[name]["samples"].append((_labels(labels or ""), float(value)))  # type: ignore[union-attr]
    for name, f in families.items():
        assert name.startswith("agent_factory_")
        assert f["type"] is not None
        if f["type"] == "counter":
            assert name.endswith("_total")
    return families


def test_prometheus_text_parses_and_matches(factory: Factory, manual_clock: ManualClock, agent: str) -> None:
    factory.queue.enqueue("p1", agent, payload())
    manual_clock.advance(1_500)
    factory.workers.upsert_worker_state("prom-w", provider="local", status="active", load=0)
    m = factory.metrics()
    fams = parse_prometheus(m.to_prometheus())
    assert fams["agent_factory_queue_ready_messages"]["samples"] == [({}, 1.0)]
    assert fams["agent_factory_queue_ready_messages"]["type"] == "gauge"
    assert fams["agent_factory_queue_oldest_ready_age_seconds"]["samples"] == [({}, 1.5)]
    assert ({"status": "active"}, 1.0) in fams["agent_factory_workers"]["samples"]  # type: ignore[operator]
    assert fams["agent_factory_worker_load"]["samples"] == [({"worker_id": "prom-w", "status": "active"}, 0.0)]
    enq = fams["agent_factory_messages_enqueued_total"]
    assert enq["type"] == "counter" and enq["samples"] == [({}, float(m.counters.messages_enqueued))]
    assert "agent_factory_provider_calls_total" in fams


def test_prometheus_label_values_are_escaped(factory: Factory) -> None:
    """Worker ids from the database are restricted, but the renderer must not
    trust that: quotes, backslashes and newlines are escaped."""
    nasty = 'w"1\\x\nend'
    m = factory.metrics()
    g = dataclasses.replace(
        m.gauges, workers=[WorkerGauge(worker_id=nasty, status="active", load=2, heartbeat_age_ms=500)]
    )
    c = dataclasses.replace(m.counters, provider_calls={'fly"\\': 3}, provider_call_errors={})
    text = dataclasses.replace(m, gauges=g, counters=c).to_prometheus()
    assert 'worker_id="w\\"1\\\\x\\nend"' in text
    fams = parse_prometheus(text)
    assert fams["agent_factory_worker_load"]["samples"] == [({"worker_id": nasty, "status": "active"}, 2.0)]
    assert fams["agent_factory_worker_heartbeat_age_seconds"]["samples"] == [
        ({"worker_id": nasty, "status": "active"}, 0.5)
    ]
    assert fams["agent_factory_provider_calls_total"]["samples"] == [({"provider": 'fly"\\'}, 3.0)]
    assert fams["agent_factory_provider_call_errors_total"]["samples"] == []


# -- the /metrics endpoint --------------------------------------------------------------------


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_metrics_server_serves_metrics_and_404s(factory: Factory, agent: str) -> None:
    factory.queue.enqueue("srv-1", agent, payload())
    with MetricsServer(lambda: factory.metrics().to_prometheus(), port=0) as server:
        status, ctype, body = _get(server.url)
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        assert parse_prometheus(body)["agent_factory_queue_ready_messages"]["samples"] == [({}, 1.0)]
        assert _get(server.url.replace("/metrics", "/other"))[0] == 404
    with pytest.raises(af.ValidationError, match="metrics port"):
        MetricsServer(lambda: "", port=70_000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_metrics_port_subprocess(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    seeded = Factory(db)
    seeded.agents.upsert_agent("serve-agent", version="1.0.0", secrets_ref=[], enabled=True)
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "agent_factory", "serve", "--db", str(db), "--tick-ms", "100",
            "--max-workers", "0", "--metrics-port", str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, ctype, body = _get(url)
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "metrics endpoint never came up"
                time.sleep(0.1)
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        fams = parse_prometheus(body)
        assert fams["agent_factory_queue_ready_messages"]["samples"] == [({}, 0.0)]
        assert _get(f"http://127.0.0.1:{port}/")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"metrics on http://127.0.0.1:{port}/metrics" in err
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
