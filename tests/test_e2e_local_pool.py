"""End to end with the local provider: real worker processes, real files.

The pool is driven here by calling ``reconcile`` / ``check_idle_shutdowns`` in
a loop (what the control loop does). Workers are ``python -m agent_factory
worker`` processes running :func:`agent_factory.demo.demo_handler`, which
appends one line per message to ``demo/handled.tsv`` in the worker's data
directory (message id, attempt, worker id, pid, claim time) and replies
``"... (#n in this workspace)"`` — so the files and the conversation history
show which process handled what, and what it found in its data directory.

The SIGKILL test needs leases of seconds inside the worker process, so its
workers run a small entry script that builds the same :class:`agent_factory.Worker`
on a factory with a short ``LeaseConfig``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_factory import Factory, LocalProvider, PoolReport, ScalingPolicy, WorkerRecord
from agent_factory.demo import HANDLED_LOG, PoolDemo, kill_worker_processes

AGENT = "e2e-agent"
RUNNING = ("active", "draining", "stopping")

#: A worker entry point with 1.5 s leases: the same Worker runtime, handler and
#: environment contract as ``agent-factory worker``. A message whose metadata says
#: ``slow_first`` writes ``<id>.started`` (its pid) into ``$E2E_MARKS`` and hangs on
#: its first attempt.
SHORT_LEASE_WORKER = """
import os, sys, time
from pathlib import Path
from agent_factory import Config, Factory, LeaseConfig, ScalingPolicy, Worker
from agent_factory.demo import demo_handler

def handler(ctx):
    if ctx.payload.get("metadata", {}).get("slow_first") and ctx.claim.attempt == 1:
        Path(os.environ["E2E_MARKS"], ctx.message_id + ".started").write_text(str(os.getpid()))
        time.sleep(120)
    return demo_handler(ctx)

idle = int(os.environ["WORKER_IDLE_TIMEOUT_MS"])
config = Config(
    lease=LeaseConfig(lease_ms=1500, heartbeat_interval_ms=300, stale_after_ms=60000),
    scaling=ScalingPolicy(idle_timeout_ms=idle),
)
worker = Worker(
    Factory(os.environ["AGENT_FACTORY_DB"], config=config),
    os.environ["AGENT_FACTORY_WORKER_ID"],
    handler,
    data_dir=os.environ["AGENT_FACTORY_DATA_DIR"],
    conversation_id=os.environ["OPENCLAW_CONVERSATION_ID"],
    agent_key=os.environ["OPENCLAW_AGENT_KEY"],
    idle_timeout_ms=idle,
    poll_max_ms=100,
)
sys.exit(worker.run().exit_code)
"""


class Pool:
    """A database, an agent and the local provider, driven cycle by cycle."""

    def __init__(self, root: Path, *, command: list[str] | None = None, env: dict[str, str] | None = None,
                 max_workers: int = 3, idle_timeout_ms: int = 3_000) -> None:
        self.db = root / "factory.db"
        self.factory = Factory(self.db)
        self.factory.agents.upsert_agent(AGENT, secrets_ref=[])
        self.data_root = Path(f"{self.db}.workers")
        self.provider = LocalProvider(
            command=command or [sys.executable, "-m", "agent_factory", "worker", "--poll-interval-ms", "100"],
            handler="agent_factory.demo:demo_handler",
            env=env,
            stop_grace_ms=5_000,
        )
        self.scaling = ScalingPolicy(
            max_workers=max_workers, spawn_step=max_workers, idle_timeout_ms=idle_timeout_ms, drain_timeout_ms=30_000
        )
        self.spawned: list[str] = []
        self.reports: list[PoolReport] = []

    def enqueue(self, conversation: str, text: str, **metadata: str) -> str:
        payload: dict[str, Any] = {"provider": "e2e", "providerUserId": conversation, "messageText": text}
        if metadata:
            payload["metadata"] = metadata
        return self.factory.queue.enqueue(conversation, AGENT, payload)

    def cycle(self, *, spawn: bool = True) -> PoolReport:
        """One pool cycle: ``reconcile`` (with spawning) or ``check_idle_shutdowns``."""
        if spawn:
            report = self.factory.pool.reconcile(provider=self.provider, scaling=self.scaling)
        else:
            report = self.factory.pool.check_idle_shutdowns(provider=self.provider, scaling=self.scaling)
        assert report.errors == [], report.errors
        self.spawned.extend(report.spawned_worker_ids)
        self.reports.append(report)
        return report

    def run_until(self, cond: Callable[[], bool], what: str, *, spawn: bool = True, timeout: float = 25.0,
                  each: Callable[[], None] | None = None) -> None:
        """Cycle every 100 ms until ``cond()``; ``each()`` runs after every cycle."""
        deadline = time.monotonic() + timeout
        while True:
            self.cycle(spawn=spawn)
            if each is not None:
                each()
            if cond():
                return
            assert time.monotonic() < deadline, f"{what}: not reached in {timeout} s"
            time.sleep(0.1)

    def settled(self) -> bool:
        """Nothing queued or in flight."""
        s = self.factory.queue.stats()
        return s.queued_ready + s.queued_delayed + s.processing == 0

    def workers(self) -> list[WorkerRecord]:
        return self.factory.workers.list()

    def running(self) -> list[WorkerRecord]:
        return [w for w in self.workers() if w.status in RUNNING]

    def volume(self, worker: WorkerRecord) -> Path:
        assert worker.volume_id is not None
        return self.data_root / "volumes" / worker.volume_id

    def record(self, worker: WorkerRecord) -> dict[str, Any]:
        """The local provider's record of the worker's machine (pid, start time, volume)."""
        assert worker.machine_id is not None
        return json.loads((self.data_root / "machines" / f"{worker.machine_id}.json").read_text())  # type: ignore[no-any-return]

    def replies(self, conversation: str) -> list[str]:
        view = self.factory.queue.conversation(conversation, limit=1)
        assert view is not None
        return [h.content for h in view.context_history if h.role == "assistant"]


def handled(path: Path) -> list[list[str]]:
    """The handler's log lines in a data directory: [message id, attempt, worker id, pid, claimed at]."""
    log = path / HANDLED_LOG
    return [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.fixture
def pool_root(tmp_path: Path) -> Iterator[Path]:
    """A directory for one pool; whatever worker process a failing test leaves is killed."""
    yield tmp_path
    kill_worker_processes(tmp_path / "factory.db.workers")


def test_messages_of_several_conversations_are_handled_by_spawned_worker_processes(pool_root: Path) -> None:
    pool = Pool(pool_root, idle_timeout_ms=60_000)  # keep them alive to look at them
    conversations = [f"e2e:chat:{i}" for i in range(3)]
    ids = {c: [pool.enqueue(c, f"{c} #{n}") for n in range(4)] for c in conversations}
    pool.run_until(pool.settled, "every message handled")

    assert len(pool.spawned) == 3 and len(set(pool.spawned)) == 3
    for c in conversations:
        assert [pool.factory.queue.get_job(m).status for m in ids[c]] == ["done"] * 4  # type: ignore[union-attr]
        assert pool.replies(c) == [f"echo: {c} #{n} (#{n + 1} in this workspace)" for n in range(4)]
    pids = set()
    for w in pool.running():
        assert w.worker_id in pool.spawned and w.assignment is not None
        record = pool.record(w)
        pid = record["pid"]
        assert pid != os.getpid() and alive(pid)
        assert b"agent_factory\x00worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        # The worker's own data directory holds its conversation's messages, in order, all from that process.
        lines = handled(pool.volume(w))
        assert [line[0] for line in lines] == ids[w.assignment.conversation_id]
        assert {(line[2], int(line[3])) for line in lines} == {(w.worker_id, pid)}
        pids.add(pid)
    assert len(pids) == 3
    # The last resort of the demo's Ctrl-C path kills exactly these processes.
    assert kill_worker_processes(pool.data_root) == 3
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "killed workers still alive"
        time.sleep(0.05)
    assert kill_worker_processes(pool.data_root) == 0


def test_a_worker_killed_mid_job_loses_the_message_to_another_worker_that_completes_it_once(pool_root: Path) -> None:
    script = pool_root / "short_lease_worker.py"
    script.write_text(SHORT_LEASE_WORKER)
    marks = pool_root / "marks"
    marks.mkdir()
    # The idle timeout outlasts the lease and the retry backoff, so the replacement worker
    # (spawned as soon as the dead one drains) waits for the message instead of idling out.
    pool = Pool(pool_root, command=[sys.executable, str(script)], env={"E2E_MARKS": str(marks)}, idle_timeout_ms=6_000)
    conversation = "e2e:chat:kill"
    slow = pool.enqueue(conversation, "slow one", slow_first="1")
    after = pool.enqueue(conversation, "after it")

    started = marks / f"{slow}.started"
    pool.run_until(started.exists, "the slow message started")
    (first,) = pool.running()
    pid = pool.record(first)["pid"]
    assert int(started.read_text()) == pid and alive(pid)
    job = pool.factory.queue.get_job(slow)
    assert job is not None and job.status == "processing" and job.claimed_by == first.worker_id

    os.kill(pid, signal.SIGKILL)
    # The lease expires (1.5 s), reconcile recovers the message, the dead worker is torn
    # down and a new worker for the conversation completes both messages, in order.
    pool.run_until(pool.settled, "the message recovered and completed")

    # The expired lease counted as a failed attempt; the second worker handled attempt 2.
    job = pool.factory.queue.get_job(slow)
    assert job is not None and job.status == "done" and job.attempts == 1
    assert pool.factory.queue.get_job(after).status == "done"  # type: ignore[union-attr]
    assert pool.replies(conversation) == ["echo: slow one (#1 in this workspace)", "echo: after it (#2 in this workspace)"]
    (second,) = [w for w in pool.workers() if w.worker_id != first.worker_id]
    lines = handled(pool.volume(second))
    assert [(m, attempt, w) for m, attempt, w, _, _ in lines] == [
        (slow, "2", second.worker_id), (after, "1", second.worker_id),
    ]
    assert int(lines[0][3]) != pid

    dead = pool.factory.workers.get(first.worker_id)
    assert dead is not None and dead.status == "stopped" and dead.stop_reason == "machine_stopped"
    assert not alive(pid)
    assert pool.factory.snapshots.list_for_worker(first.worker_id) == []  # it never got to snapshot
    # The second worker goes idle, drains with a final snapshot and stops.
    pool.run_until(lambda: not pool.running(), "the second worker stopped", spawn=False)
    assert [s.status for s in pool.factory.snapshots.list_for_worker(second.worker_id)] == ["ready"]


def test_idle_workers_drain_take_a_final_snapshot_and_stop(pool_root: Path) -> None:
    pool = Pool(pool_root, idle_timeout_ms=2_000)
    conversations = [f"e2e:chat:{i}" for i in range(3)]
    ids = {c: [pool.enqueue(c, f"{c} #{n}") for n in range(3)] for c in conversations}
    pool.run_until(pool.settled, "every message handled")
    workers = {w.worker_id: w for w in pool.running()}
    pids = {wid: pool.record(w)["pid"] for wid, w in workers.items()}
    volumes = {wid: pool.volume(w) for wid, w in workers.items()}

    def snapshot_before_volume_goes() -> None:
        for wid, volume in volumes.items():
            if not volume.exists():
                ready = [s for s in pool.factory.snapshots.list_for_worker(wid) if s.status == "ready"]
                assert ready, f"volume of {wid} deleted before its final snapshot was ready"

    pool.run_until(lambda: not pool.running(), "idle workers stopped", spawn=False, each=snapshot_before_volume_goes)

    assert set(pool.spawned) == set(workers)
    for wid, w in workers.items():
        row = pool.factory.workers.get(wid)
        assert row is not None and row.status == "stopped"
        assert row.machine_id is None and row.volume_id is None
        assert row.stop_reason in ("idle_timeout", "machine_stopped"), row.stop_reason  # the pool or the worker saw it first
        (snapshot,) = pool.factory.snapshots.list_for_worker(wid)
        # "drain" when the control state stopped it, "manual" when its own idle timer fired first.
        assert snapshot.status == "ready" and snapshot.reason in ("drain", "manual"), snapshot.reason
        assert w.assignment is not None and snapshot.conversation_id == w.assignment.conversation_id
        assert row.stopped_at is not None and snapshot.completed_at is not None
        assert snapshot.completed_at <= row.stopped_at
        assert not volumes[wid].exists() and not alive(pids[wid])
        # The snapshot holds the data directory: the conversation's messages.
        restored = pool_root / "restored" / wid
        pool.factory.snapshots.restore(snapshot.snapshot_id, restored)
        assert [line[0] for line in handled(restored)] == ids[snapshot.conversation_id]
    status = pool.factory.pool.status(provider=pool.provider)
    assert status.machines == [] and status.volumes == [] and status.workers == []
    assert list((pool.data_root / "machines").iterdir()) == []


def test_a_new_worker_for_the_conversation_restores_the_snapshot_files(pool_root: Path) -> None:
    pool = Pool(pool_root, idle_timeout_ms=2_000)
    conversation = "e2e:chat:return"
    before = [pool.enqueue(conversation, f"first visit #{n}") for n in range(3)]
    pool.run_until(pool.settled, "first visit handled")
    (first,) = pool.running()
    pool.run_until(lambda: not pool.running(), "first worker stopped", spawn=False)
    assert pool.factory.snapshots.latest_for_restore("default", AGENT, conversation) is not None

    again = pool.enqueue(conversation, "back again")
    pool.run_until(pool.settled, "second visit handled")
    (second,) = pool.running()
    assert second.worker_id != first.worker_id and second.volume_id != first.volume_id
    # The handler found the three lines the first worker wrote: its reply counts them.
    assert pool.replies(conversation)[-1] == "echo: back again (#4 in this workspace)"
    lines = handled(pool.volume(second))
    assert [line[0] for line in lines] == [*before, again]
    assert [line[2] for line in lines] == [first.worker_id] * 3 + [second.worker_id]
    log = (pool.data_root / "logs" / f"{second.worker_id}.log").read_text()
    assert "restored snapshot" in log
    pool.run_until(lambda: not pool.running(), "second worker stopped", spawn=False)
    assert len(pool.factory.snapshots.list_for_conversation(conversation)) == 2


#: A handler that handles one message twice as far as its data directory can tell
#: (the log line written twice), as a worker would after redoing a job.
DOUBLE_HANDLER = """
from agent_factory.demo import HANDLED_LOG, demo_handler

def handle(ctx):
    reply = demo_handler(ctx)
    if ctx.payload["messageText"] == "message 1 of conversation 0":
        log = ctx.data_dir / HANDLED_LOG
        log.write_text(log.read_text() + log.read_text().splitlines(keepends=True)[-1])
    return reply
"""


def test_the_demo_checks_catch_a_message_handled_twice(tmp_path: Path) -> None:
    (tmp_path / "double_handler.py").write_text(DOUBLE_HANDLER)
    factory = Factory(tmp_path / "demo.db")
    try:
        result = PoolDemo(
            factory, messages=12, conversations=3, workers=3, waves=2, idle_timeout_ms=3_000,
            handler="double_handler:handle", env={"PYTHONPATH": str(tmp_path)},
        ).run()
    finally:
        kill_worker_processes(tmp_path / "demo.db.workers")
    assert result.done == 12 and result.duplicates == 1 and result.order_violations == 1
    assert not result.ok and any("more than once" in p for p in result.problems)
    # Everything else held: every worker snapshotted, stopped and gone.
    assert result.workers_left_running == 0 and result.snapshots_missing == 0
    assert result.restores_verified == result.restores_expected == 3
    assert result.to_dict()["order_verified"] is False
