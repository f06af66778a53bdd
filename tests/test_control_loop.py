"""The pool control loop: ticks, ``run`` (blocking and asyncio), ``agent-factory serve``,
and the guarantee that two loops on one database never act at once.

"Only one acts" is asserted from FakeFly's call log: every provider call carries
the ``User-Agent`` of the loop that made it (``agent-factory/<version> (<holder>)``),
so the log tells which loop called when. Holders' calls must form contiguous,
non-overlapping runs: the last call of one holder is answered before the first
call of the next arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

import agent_factory as af
from agent_factory import AsyncFactory, Factory, FlyProvider, ProviderConfig, ScalingPolicy, TickReport
from agent_factory.fakes.fly import FakeCall
from agent_factory.testing import FakeFly
from helpers import payload, read_only

APP = "agent-factory-workers-test"
AGENT = "support-agent"
#: Every decision at once, nothing periodic during a test.
SCALING = ScalingPolicy(max_workers=10, idle_timeout_ms=3_600_000, reconcile_interval_ms=3_600_000)


def fly(fake: FakeFly, **overrides: Any) -> FlyProvider:
    settings: dict[str, Any] = dict(
        app_name=APP, image="img:1", region="iad", volume_name="data", api_token="fly-token",
        base_url=fake.base_url, timeout_ms=2_000, max_retries=0, backoff_ms=1, max_backoff_ms=5,
    )
    settings.update(overrides)
    return FlyProvider(**settings)


def user_agent(holder: str) -> str:
    return f"agent-factory/{af.__version__} ({holder})"


def wait_until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not met in time"
        time.sleep(0.02)


def holder_runs(calls: list[FakeCall]) -> list[tuple[str | None, list[FakeCall]]]:
    """Calls in arrival order, grouped into maximal runs of one User-Agent."""
    runs: list[tuple[str | None, list[FakeCall]]] = []
    for c in sorted(calls, key=lambda c: c.at):
        if runs and runs[-1][0] == c.user_agent:
            runs[-1][1].append(c)
        else:
            runs.append((c.user_agent, [c]))
    return runs


def assert_one_holder_at_a_time(calls: list[FakeCall], holders_in_order: list[str]) -> None:
    """Each holder's calls are one contiguous run, in this order, never overlapping."""
    runs = holder_runs(calls)
    assert [ua for ua, _ in runs] == [user_agent(h) for h in holders_in_order], [ua for ua, _ in runs]
    for (_, before), (_, after) in itertools.pairwise(runs):
        assert max(c.done for c in before) <= min(c.at for c in after), "two loops' calls overlapped"


def enqueue(f: Factory, *conversations: str) -> None:
    for conv in conversations:
        f.queue.enqueue(conv, AGENT, payload())


def lease_row(path: Path) -> tuple[str, int, int] | None:
    with read_only(path) as db:
        row = db.execute("SELECT holder, token, expires_at FROM leases WHERE name = 'pool.control'").fetchone()
    return None if row is None else (row[0], row[1], row[2])


@pytest.fixture
def live(factory_path: Path) -> Factory:
    """A factory on the system clock (loops in threads and processes run on real time)."""
    f = Factory(factory_path)
    f.agents.upsert_agent(AGENT, secrets_ref=[])
    return f


# --- ticks ---------------------------------------------------------------------------


def test_a_tick_with_nothing_to_do(factory: Factory, fake_fly: FakeFly) -> None:
    now = factory.now_ms()
    first = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING)
    assert isinstance(first, TickReport)
    assert first.acting and first.took_over and first.lease_holder == first.holder
    assert first.ran == ["recovery", "push", "reconcile", "sweep"] and first.reconcile_reason == "start"
    assert first.reconcile is not None and first.reconcile.spawned == 0
    assert first.expiry is not None and first.released is not None
    assert first.next_tick_at == now + 10_000, "the lease (30 s) is renewed every third"
    calls = len(fake_fly.calls)

    second = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now + 100)
    assert second.acting and not second.took_over and not second.did_something
    assert second.ran == ["recovery", "push"] and second.active_conversations == 0
    assert second.summary() == "nothing to do"
    assert len(fake_fly.calls) == calls, "an idle tick makes no provider call"
    assert "TickReport(" in repr(second) and second.to_dict()["ran"] == ["recovery", "push"]
    assert factory.pool.release_control() is True
    assert factory.pool.release_control() is False


def test_an_enqueue_is_followed_by_a_spawn_at_the_next_tick(factory: Factory, fake_fly: FakeFly, support_agent: str) -> None:
    now = factory.now_ms()
    factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now)
    enqueue(factory, "telegram:chat:1")
    r = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now + 500)
    assert r.reconcile_reason == "demand" and r.did_something
    assert r.reconcile is not None and r.reconcile.spawned == 1
    assert [m.name for m in fake_fly.live_machines().values()] == r.reconcile.spawned_worker_ids
    assert "reconcile (demand): spawned 1" in r.summary()
    # Every provider call says which loop made it.
    assert {c.user_agent for c in fake_fly.calls} == {user_agent(r.holder)}
    # Covered: the next tick leaves the provider alone.
    calls = len(fake_fly.calls)
    r = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now + 1_000)
    assert r.ran == ["recovery", "push"] and len(fake_fly.calls) == calls


def test_idle_shutdown_runs_when_due(factory: Factory, fake_fly: FakeFly, support_agent: str) -> None:
    now = factory.now_ms()
    scaling = ScalingPolicy(max_workers=2, idle_timeout_ms=60_000, reconcile_interval_ms=3_600_000)
    loop = factory.pool.control_loop(
        provider=fly(fake_fly), scaling=scaling, lease_ttl_ms=3_600_000,
        idle_check_interval_ms=3_600_000, sweep_interval_ms=3_600_000,
    )
    with loop:
        enqueue(factory, "telegram:chat:1")
        r = loop.tick(now_ms=now)
        assert r.reconcile is not None
        (worker_id,) = r.reconcile.spawned_worker_ids
        # Not heard from yet: a spawned worker gets a 90 s startup grace on top.
        due = now + 60_000 + 90_000
        assert r.next_tick_at == due, "the idle shutdown time"
        assert loop.tick(now_ms=due - 1).ran == ["recovery", "push"]
        r = loop.tick(now_ms=due)
        assert r.ran == ["recovery", "push", "idle_shutdown"]
        assert r.idle_shutdown is not None and r.idle_shutdown.drained_worker_ids == [worker_id]
        # Never claimed a job: no final snapshot needed, torn down in the same cycle.
        assert r.idle_shutdown.torn_down_worker_ids == [worker_id]
        assert fake_fly.live_machines() == {}
        assert factory.workers.get(worker_id).status == "stopped"  # type: ignore[union-attr]


def test_provider_errors_are_reported_and_the_next_tick_recovers(
    factory: Factory, fake_fly: FakeFly, support_agent: str
) -> None:
    now = factory.now_ms()
    enqueue(factory, "telegram:chat:1")
    fake_fly.fail_next("GET", rf"/apps/{APP}/machines", 500)
    r = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now)
    assert r.acting and r.did_something and r.reconcile is None
    assert len(r.errors) == 1 and r.errors[0].startswith("reconcile: ") and "500" in r.errors[0]
    assert "error: reconcile" in r.summary()
    assert r.next_tick_at == now + 1_000, "retried after a short backoff"
    # Not hammered while backing off.
    r = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now + 10)
    assert r.ran == ["recovery", "push"] and r.errors == []
    r = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now + 1_000)
    assert r.reconcile_reason == "retry" and r.errors == []
    assert r.reconcile is not None and r.reconcile.spawned == 1


def test_bad_arguments_raise(factory: Factory, fake_fly: FakeFly) -> None:
    with pytest.raises(af.ValidationError, match="lease_ttl_ms"):
        factory.pool.control_loop(lease_ttl_ms=5)
    with pytest.raises(af.ValidationError, match="holder"):
        factory.pool.control_loop(holder="  ")
    with pytest.raises(af.ValidationError, match="printable ASCII"):
        factory.pool.control_loop(holder="héllo")
    with pytest.raises(TypeError, match="provider must be"):
        factory.pool.control_loop(provider="fly")  # type: ignore[arg-type]
    with pytest.raises(af.ValidationError, match="tick_ms"):
        factory.pool.run(provider=fly(fake_fly), tick_ms=0)
    with pytest.raises(TypeError, match="max_ticks"):
        factory.pool.run(provider=fly(fake_fly), max_ticks="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stop must be a threading.Event"):
        factory.pool.run(provider=fly(fake_fly), stop=asyncio.Event(), max_ticks=1)
    with pytest.raises(af.ValidationError, match="scaling.max_workers"):
        factory.pool.tick(provider=fly(fake_fly), scaling=ScalingPolicy(max_workers=-1))
    with pytest.raises(af.NotFoundError, match="Missing Fly API token"):
        factory.pool.tick(provider=FlyProvider(app_name=APP))
    assert lease_row(Path(factory.info()["path"])) is None, "nothing was taken"


# --- run ------------------------------------------------------------------------------


def test_run_stops_after_max_ticks_and_releases_the_lease(factory_path: Path, fake_fly: FakeFly) -> None:
    f = Factory(factory_path)
    seen: list[TickReport] = []
    result = f.pool.run(provider=fly(fake_fly), scaling=SCALING, tick_ms=5, max_ticks=3, on_tick=seen.append, holder="runner")
    assert result == af.ControlRun(holder="runner", ticks=3, acting_ticks=3, reason="max_ticks")
    assert [r.acting for r in seen] == [True, True, True] and seen[0].took_over
    holder, _, expires_at = lease_row(factory_path)  # type: ignore[misc]
    assert holder == "runner" and expires_at <= f.now_ms(), "released on the way out"
    other = f.pool.control_loop(provider=fly(fake_fly), scaling=SCALING)
    with other:
        assert other.tick().acting, "the next loop acts at once"


def test_run_stops_on_the_stop_event(factory_path: Path, fake_fly: FakeFly) -> None:
    f = Factory(factory_path)
    stop = threading.Event()
    ticks: list[TickReport] = []

    def on_tick(r: TickReport) -> None:
        ticks.append(r)
        if len(ticks) == 3:
            stop.set()

    result = f.pool.run(provider=fly(fake_fly), scaling=SCALING, tick_ms=5, stop=stop, on_tick=on_tick)
    assert result.reason == "stop" and result.ticks == 3
    assert lease_row(factory_path)[2] <= f.now_ms()  # type: ignore[index]

    # The pause between ticks ends as soon as the event is set.
    stop.clear()
    timer = threading.Timer(0.3, stop.set)
    started = time.monotonic()
    timer.start()
    result = f.pool.run(provider=fly(fake_fly), scaling=SCALING, tick_ms=60_000, stop=stop)
    timer.join()
    assert result.reason == "stop" and result.ticks == 1
    assert time.monotonic() - started < 10


def test_an_exception_in_on_tick_releases_the_lease(factory_path: Path, fake_fly: FakeFly) -> None:
    f = Factory(factory_path)

    def boom(_: TickReport) -> None:
        raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError, match="handler bug"):
        f.pool.run(provider=fly(fake_fly), scaling=SCALING, tick_ms=5, on_tick=boom)
    assert lease_row(factory_path)[2] <= f.now_ms()  # type: ignore[index]


async def test_async_run_with_an_asyncio_event_and_an_async_callback(factory_path: Path, fake_fly: FakeFly) -> None:
    f = AsyncFactory(factory_path)
    await f.agents.upsert_agent(AGENT, secrets_ref=[])
    await f.queue.enqueue("telegram:chat:1", AGENT, payload())
    stop = asyncio.Event()
    seen: list[TickReport] = []

    async def on_tick(r: TickReport) -> None:
        seen.append(r)
        if len(seen) == 4:
            stop.set()

    result = await f.pool.run(provider=fly(fake_fly), scaling=SCALING, tick_ms=10, stop=stop, on_tick=on_tick)
    assert isinstance(result, af.ControlRun) and result.reason == "stop" and result.ticks == 4
    assert seen[0].reconcile is not None and seen[0].reconcile.spawned == 1
    assert lease_row(factory_path)[2] <= f.now_ms()  # type: ignore[index]

    # A cancelled run releases the lease too.
    task = asyncio.create_task(f.pool.run(provider=fly(fake_fly), scaling=SCALING, tick_ms=10, holder="cancelled"))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    holder, _, expires_at = lease_row(factory_path)  # type: ignore[misc]
    assert holder == "cancelled" and expires_at <= f.now_ms()

    async with f.pool.control_loop(provider=fly(fake_fly), scaling=SCALING) as loop:
        assert isinstance(loop, af.AsyncControlLoop)
        assert (await loop.tick()).acting
        r = await f.pool.tick(provider=fly(fake_fly), scaling=SCALING)
        assert not r.acting and r.lease_holder == loop.holder, "the handle's own loop stands by"


async def test_a_run_cancelled_at_any_point_releases_the_lease(factory_path: Path, fake_fly: FakeFly) -> None:
    """Cancelling the await does not stop a native tick already under way: the run
    waits for it before releasing the lease, so a tick that takes the lease late
    cannot leave it held. Cancelled at many points, including before the tick ran."""
    f = AsyncFactory(factory_path)
    await f.agents.upsert_agent(AGENT, secrets_ref=[])
    for i in range(40):
        task = asyncio.create_task(f.pool.run(provider=fly(fake_fly), scaling=SCALING, tick_ms=10, holder=f"run-{i}"))
        for _ in range(i % 8):
            await asyncio.sleep(0)
        if i >= 8:
            await asyncio.sleep((i % 5) / 1000)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        row = lease_row(factory_path)
        assert row is None or row[2] <= f.now_ms(), f"cancel #{i} left the lease held: {row}"


# --- two loops, one database: threads -------------------------------------------------


class LoopThread:
    """``factory.pool.run`` on its own Factory object in a thread, recording its ticks."""

    def __init__(self, path: Path, fake: FakeFly, holder: str, lease_ttl_ms: int = 2_000) -> None:
        self.factory = Factory(path)
        self.holder = holder
        self.stop = threading.Event()
        self.reports: list[TickReport] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(fake, lease_ttl_ms), name=f"loop-{holder}", daemon=True
        )
        self.thread.start()

    def _run(self, fake: FakeFly, lease_ttl_ms: int) -> None:
        try:
            self.factory.pool.run(
                provider=fly(fake), scaling=SCALING, tick_ms=20, stop=self.stop,
                on_tick=self.reports.append, holder=self.holder, lease_ttl_ms=lease_ttl_ms,
            )
        except BaseException as e:  # surfaced by join()
            self.error = e

    def acting(self) -> bool:
        return bool(self.reports) and self.reports[-1].acting

    def spawned(self) -> list[str]:
        return [w for r in self.reports if r.reconcile for w in r.reconcile.spawned_worker_ids]

    def join(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive() and self.error is None, self.error


def test_two_loop_threads_never_act_at_once_and_hand_over_on_stop(
    live: Factory, factory_path: Path, fake_fly: FakeFly
) -> None:
    enqueue(live, "telegram:chat:a1")
    a = LoopThread(factory_path, fake_fly, "loop-a")
    wait_until(lambda: len(a.spawned()) == 1, what="loop a spawned")
    b = LoopThread(factory_path, fake_fly, "loop-b")
    try:
        wait_until(lambda: len(b.reports) >= 5, what="loop b ticked")
        enqueue(live, "telegram:chat:a2", "telegram:chat:a3")
        wait_until(lambda: len(a.spawned()) == 3, what="loop a served the new demand")
        assert not any(r.acting for r in b.reports), "b stood by while a held the lease"
        assert {r.lease_holder for r in b.reports} == {"loop-a"}

        a.join()  # releases the lease
        wait_until(b.acting, timeout=5, what="loop b took over")
        enqueue(live, "telegram:chat:b1")
        wait_until(lambda: len(b.spawned()) == 1, what="loop b served demand")
    finally:
        a.join()
        b.join()
    first_acting = next(r for r in b.reports if r.acting)
    assert first_acting.took_over and first_acting.reconcile_reason == "start"
    assert_one_holder_at_a_time(fake_fly.calls, ["loop-a", "loop-b"])
    assert len(fake_fly.live_machines()) == 4, "no conversation served twice"


def test_a_loop_that_stops_ticking_is_replaced_after_its_lease_expires(
    live: Factory, factory_path: Path, fake_fly: FakeFly
) -> None:
    crashed = live.pool.control_loop(provider=fly(fake_fly), scaling=SCALING, holder="crashed", lease_ttl_ms=800)
    first = crashed.tick()
    assert first.acting and first.lease_expires_at is not None
    # "crashed" never ticks again and never releases: b waits for the lease to lapse.
    b = LoopThread(factory_path, fake_fly, "loop-b")
    try:
        wait_until(b.acting, timeout=10, what="loop b took over")
        enqueue(live, "telegram:chat:1")
        wait_until(lambda: len(b.spawned()) == 1, what="loop b served demand")
        # The old holder comes back: it notices it lost the lease and does nothing.
        calls = len(fake_fly.calls)
        late = crashed.tick()
        assert not late.acting and late.lost_lease and late.lease_holder == "loop-b"
        assert "lost the lease" in late.summary()
    finally:
        b.join()
    took_over = next(r for r in b.reports if r.acting)
    assert took_over.took_over and took_over.at >= first.lease_expires_at
    assert all(r.lease_holder == "crashed" for r in b.reports[: b.reports.index(took_over)])
    assert_one_holder_at_a_time(fake_fly.calls, ["crashed", "loop-b"])
    assert len(fake_fly.calls) >= calls


# --- two loops, one database: agent-factory serve processes ----------------------------


class Serve:
    """An ``agent-factory serve --json`` subprocess and the JSON lines it printed."""

    def __init__(self, db: Path, fake: FakeFly, holder: str, *extra: str) -> None:
        self.holder = holder
        env = {**os.environ, "FLY_API_TOKEN": fake.token, "AGENT_FACTORY_FLY_BASE_URL": fake.base_url}
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "agent_factory", "serve", "--db", str(db), "--provider", "fly",
                "--json", "--tick-ms", "50", "--lease-ttl-ms", "1500", "--holder", holder,
                "--max-workers", "10", "--reconcile-interval-ms", "3600000", "--idle-timeout-ms", "3600000",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream: IO[str] | None, json_lines: bool) -> None:
        assert stream is not None
        for line in stream:
            if json_lines:
                self.lines.append(json.loads(line))
            else:
                self.stderr.append(line)

    def acting(self) -> bool:
        return any(line["took_over"] for line in self.lines)

    def spawned(self) -> list[str]:
        return [w for line in self.lines if line["reconcile"] for w in line["reconcile"]["spawned_worker_ids"]]

    def wait(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


@pytest.fixture
def serving(live: Factory, factory_path: Path, fake_fly: FakeFly) -> Iterator[Callable[[str], Serve]]:
    live.config.set_provider_config(
        ProviderConfig(kind="fly", app_name=APP, image="img:1", region="iad", volume_name="data")
    )
    started: list[Serve] = []

    def start(holder: str) -> Serve:
        s = Serve(factory_path, fake_fly, holder)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def test_two_serve_processes_hand_over_on_sigterm_and_after_sigkill(
    serving: Callable[[str], Serve], live: Factory, fake_fly: FakeFly
) -> None:
    factory = live
    enqueue(factory, "telegram:chat:1")
    a = serving("serve-a")
    wait_until(lambda: len(a.spawned()) == 1, timeout=30, what=f"serve-a spawned ({a.stderr})")
    b = serving("serve-b")
    c = serving("serve-c")
    time.sleep(0.5)  # b and c tick as standbys
    enqueue(factory, "telegram:chat:2")
    wait_until(lambda: len(a.spawned()) == 2, what="serve-a served new demand")
    assert not b.lines and not c.lines, "standbys print nothing: they did nothing"

    a.proc.send_signal(signal.SIGTERM)
    assert a.wait() == 0
    wait_until(lambda: b.acting() or c.acting(), timeout=10, what="a standby took over")
    second, third = (b, c) if b.acting() else (c, b)
    enqueue(factory, "telegram:chat:3")
    wait_until(lambda: len(second.spawned()) == 1, what="the new holder served demand")

    second.proc.kill()  # SIGKILL: the lease is not released, it expires (1.5 s)
    killed_at = time.time() * 1000
    second.wait()
    wait_until(third.acting, timeout=15, what="the last standby took over after the lease expired")
    took_over = next(line for line in third.lines if line["took_over"])
    assert took_over["at"] >= killed_at, "not before the killed holder's lease lapsed"
    enqueue(factory, "telegram:chat:4")
    wait_until(lambda: len(third.spawned()) == 1, what="the last holder served demand")
    third.proc.send_signal(signal.SIGINT)
    assert third.wait() == 0

    assert_one_holder_at_a_time(fake_fly.calls, ["serve-a", second.holder, third.holder])
    assert len(fake_fly.live_machines()) == 4
    assert any("lease released" in line for line in a.stderr), a.stderr


def test_serve_usage_errors_exit_2(tmp_path: Path) -> None:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent_factory", "serve", *args],
            capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
        )

    db = str(tmp_path / "f.db")
    assert run("--provider", "ecs", "--db", db).returncode == 2
    out = run("--provider", "fly", "--db", db, "--max-ticks", "1", env={"FLY_API_TOKEN": ""})
    assert out.returncode == 2 and "Missing" in out.stderr, out.stderr
    assert run("--db", str(tmp_path / "missing" / "f.db"), "--max-ticks", "1").returncode == 2
    assert run("--db", db, "--tick-ms", "0", "--max-ticks", "1").returncode == 2
    helped = run("--help")
    assert helped.returncode == 0 and "pool.control" in helped.stdout and "--lease-ttl-ms" in helped.stdout


def test_serve_with_the_local_provider_runs_the_whole_lifecycle(live: Factory, factory_path: Path) -> None:
    """serve spawns a local worker for a queued message; the worker answers it, goes
    idle, drains and stops; serve tears it down; SIGTERM ends serve with exit 0."""
    message_id = live.queue.enqueue("telegram:chat:local", AGENT, payload(text="ping"))
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "agent_factory", "serve", "--db", str(factory_path), "--json",
            "--tick-ms", "100", "--idle-timeout-ms", "1500", "--max-workers", "2",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        f = live
        wait_until(lambda: f.queue.get_job(message_id).status == "done", timeout=60, what="message done")  # type: ignore[union-attr]
        wait_until(
            lambda: [w.status for w in f.workers.list()] == ["stopped"], timeout=60, what="worker stopped and torn down"
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    reports = [json.loads(line) for line in out.splitlines()]
    assert reports[0]["took_over"] and reports[0]["holder"].count(":") == 2
    spawned = [w for r in reports if r["reconcile"] for w in r["reconcile"]["spawned_worker_ids"]]
    torn_down = [
        w for r in reports for cycle in (r["reconcile"], r["idle_shutdown"]) if cycle for w in cycle["torn_down_worker_ids"]
    ]
    assert len(spawned) == 1 and torn_down == spawned


def test_ctrl_c_stops_a_blocking_run_and_releases_the_lease(live: Factory, factory_path: Path, fake_fly: FakeFly) -> None:
    script = f"""
import sys
from agent_factory import Factory, FlyProvider, ScalingPolicy
f = Factory({str(factory_path)!r})
provider = FlyProvider(app_name={APP!r}, image="img:1", region="iad", volume_name="data", api_token="fly-token",
                       base_url={fake_fly.base_url!r})
def on_tick(report):
    if report.acting:
        print("acting", flush=True)
try:
    f.pool.run(provider=provider, scaling=ScalingPolicy(max_workers=2), tick_ms=60_000, holder="interrupted", on_tick=on_tick)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(0)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "acting"
        proc.send_signal(signal.SIGINT)  # lands in the 60 s pause between ticks
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.strip() == "interrupted", err
    holder, _, expires_at = lease_row(factory_path)  # type: ignore[misc]
    assert holder == "interrupted" and expires_at <= live.now_ms()


def test_fly_calls_carry_a_configurable_user_agent(factory: Factory, fake_fly: FakeFly) -> None:
    client = af.FlyMachines(APP, "fly-token", base_url=fake_fly.base_url, user_agent="my-bot/2 (ops)")
    client.list_machines()
    af.FlyMachines(APP, "fly-token", base_url=fake_fly.base_url).list_volumes()
    assert [c.user_agent for c in fake_fly.calls] == ["my-bot/2 (ops)", f"agent-factory/{af.__version__}"]
    assert all(c.done >= c.at > 0 for c in fake_fly.calls)
    with pytest.raises(af.ValidationError, match="user_agent"):
        af.FlyMachines(APP, "fly-token", base_url=fake_fly.base_url, user_agent="bad\nagent")
    # A loop keeps an explicit User-Agent; without one it sends its holder id.
    fake_fly.clear_calls()
    factory.pool.tick(provider=fly(fake_fly, user_agent="custom/1"), scaling=SCALING)
    assert {c.user_agent for c in fake_fly.calls} == {"custom/1"}


def test_serve_with_the_stored_provider_and_nothing_stored_runs_locally(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    out = subprocess.run(
        [sys.executable, "-m", "agent_factory", "serve", "--db", str(db), "--provider", "stored", "--json",
         "--max-ticks", "2", "--tick-ms", "10", "--holder", "h-1"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    (line,) = [json.loads(x) for x in out.stdout.splitlines()]  # the second tick did nothing
    assert line["took_over"] and line["holder"] == "h-1" and line["errors"] == []
    assert "provider local" in out.stderr and "lease released" in out.stderr
    assert lease_row(db)[2] <= int(time.time() * 1000)  # type: ignore[index]


def test_each_tick_dispatches_due_push_jobs_once(factory: Factory, fake_fly: FakeFly, support_agent: str) -> None:
    """The control loop sends scheduled pushes: a daily slot is enqueued by the first
    tick after it falls due, once, into the user's stable conversation."""
    now = factory.now_ms()  # 2026-01-01T00:00Z
    factory.identity.bind("user-1", AGENT, source="manual", now_ms=now)
    job = factory.push.create_job(
        "co-1", "user-1", "Morning", "Good morning", "UTC", {"kind": "daily", "time": "00:05"}, now_ms=now
    )
    assert job.next_run_at == now + 5 * 60_000
    r = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now)
    assert "push" in r.ran and r.push is not None and r.push.enqueued == 0
    r = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now + 5 * 60_000)
    assert r.push is not None and (r.push.enqueued, r.push.failed) == (1, 0)
    assert r.did_something and "push: enqueued 1" in r.summary()
    again = factory.pool.tick(provider=fly(fake_fly), scaling=SCALING, now_ms=now + 5 * 60_000 + 500)
    assert again.push is not None and again.push.enqueued == 0
    (item,) = factory.identity.queue_items("user-1", AGENT)
    assert item.conversation_id == f"user-agent:{AGENT}:user-1"
    assert item.payload["messageText"] == "Good morning"
